//! The one error type of the library.
//!
//! Every fallible function returns [`Result<T>`]. Input problems carry the file
//! and line they come from, so a front end can print `error: FILE:LINE: reason`.
//! Not converging is never an error (see [`crate::solve::Termination`]); a
//! non-finite loss or factor is ([`Error::Diverged`]).

use std::path::PathBuf;

/// Library result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in lowrank.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be parsed.
    #[error("{}{}: {reason}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
    Parse {
        /// The file being read.
        path: PathBuf,
        /// 1-based line number (0 when the problem is not tied to a line).
        line: u64,
        /// What is wrong, in words.
        reason: String,
    },
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// Parameters or data that make the requested computation impossible.
    #[error("{0}")]
    InvalidInput(String),
    /// A loss, gradient or factor became non-finite.
    #[error("diverged at iteration {iteration}: {what} is not finite; {hint}")]
    Diverged {
        /// The iteration (epoch) at which it was detected.
        iteration: usize,
        /// Which quantity became non-finite.
        what: String,
        /// What to change to avoid it.
        hint: String,
    },
    /// The objective stayed finite but grew far beyond its starting value
    /// (by more than [`crate::solve::BLOW_UP`]): the iterations diverge.
    #[error("diverged at iteration {iteration}: the objective grew from {from:.4e} to {to:.4e}; {hint}")]
    BlewUp {
        /// The iteration (epoch) at which it was detected.
        iteration: usize,
        /// The objective at the starting point.
        from: f64,
        /// The objective now.
        to: f64,
        /// What to change to avoid it.
        hint: String,
    },
    /// A configuration problem (unknown key, wrong type, ...).
    #[error("{0}")]
    Config(String),
    /// A numerical routine failed (e.g. an SVD that did not converge).
    #[error("numerical failure: {0}")]
    Numerical(String),
}

impl Error {
    /// A parse error at `path:line`.
    pub fn parse(path: impl Into<PathBuf>, line: u64, reason: impl Into<String>) -> Self {
        Error::Parse { path: path.into(), line, reason: reason.into() }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// An invalid-input error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    /// True when the error is the user's input (file, parameter, config), as
    /// opposed to a failed computation. Front ends map this to exit code 2.
    pub fn is_input_error(&self) -> bool {
        matches!(self, Error::Parse { .. } | Error::Io { .. } | Error::InvalidInput(_) | Error::Config(_))
    }
}

/// Return an [`Error::InvalidInput`] unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        {
            let holds: bool = $cond;
            if !holds {
                return Err($crate::error::Error::InvalidInput(format!($($arg)+)));
            }
        }
    };
}
pub(crate) use ensure;

/// Refuse, with a clear error, work that needs `values` f64 numbers in
/// memory at once (dense matrices, factors, tensors) when they cannot fit:
/// more than this machine's physical memory (Linux: `MemTotal` of
/// `/proc/meminfo`), or more than 2^40 values anywhere. Without the check an
/// allocation of that size aborts the process. `what` names the need, e.g.
/// `"nmf on a 100000 x 100000 matrix (3 dense copies)"`; `alternative`, when
/// not empty, says what to use instead.
pub fn ensure_fits_in_memory(values: u128, what: &str, alternative: &str) -> Result<()> {
    let bytes = values.saturating_mul(8);
    let limit: u128 = physical_memory_bytes().map_or(8u128 << 40, u128::from).min(8u128 << 40);
    if bytes > limit {
        return Err(Error::InvalidInput(format!(
            "{what} needs {:.1} GB of memory, more than this process may use ({:.1} GB){}",
            bytes as f64 / 1e9,
            limit as f64 / 1e9,
            if alternative.is_empty() { String::new() } else { format!("; {alternative}") }
        )));
    }
    Ok(())
}

/// The memory this process may use, in bytes, when the system says (Linux):
/// the physical memory, lowered by a container's cgroup limit and by the
/// process's address-space limit (`ulimit -v`), whichever is smallest.
fn physical_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut limit = kb.checked_mul(1024)?;
    // cgroup v2, then v1 ("max" or a huge number when unlimited)
    for f in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
        if let Some(v) = std::fs::read_to_string(f).ok().and_then(|t| t.trim().parse::<u64>().ok()) {
            limit = limit.min(v);
        }
    }
    // "Max address space   <soft>   <hard>   bytes"
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    if let Some(soft) = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok())
    {
        limit = limit.min(soft);
    }
    Some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_that_cannot_fit_in_memory_is_an_input_error() {
        assert!(ensure_fits_in_memory(1000, "a small matrix", "").is_ok());
        let e = ensure_fits_in_memory(1u128 << 60, "nmf on a huge matrix", "use sgd").unwrap_err();
        assert!(e.is_input_error());
        let msg = e.to_string();
        assert!(msg.contains("nmf on a huge matrix") && msg.contains("GB") && msg.ends_with("; use sgd"), "{msg}");
    }
}
