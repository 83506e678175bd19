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
    #[error("{}:{line}: {reason}", path.display())]
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
