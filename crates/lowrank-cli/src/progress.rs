//! A progress bar observer (indicatif, on stderr, hidden when stderr is not a
//! terminal or with `--quiet`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use lowrank::observe::{Control, Observer, Record};
use lowrank::solve::Termination;

/// Shows iteration / total and the latest objective and test RMSE.
pub struct Progress {
    bar: ProgressBar,
    /// When the message was last rebuilt (at most every [`MESSAGE_EVERY`]:
    /// fast solvers run tens of thousands of iterations a second).
    last_message: Option<std::time::Instant>,
}

/// The shortest interval between two rebuilds of the bar's message.
const MESSAGE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Progress {
    /// A bar, hidden when `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() { ProgressBar::hidden() } else { ProgressBar::new(0) };
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Progress { bar, last_message: None }
    }

    /// A spinner for reading files (entries read so far).
    pub fn loader(quiet: bool) -> Option<std::sync::Arc<dyn Fn(u64) + Send + Sync>> {
        if quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("reading {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Some(std::sync::Arc::new(move |n| {
            bar.set_message(format!("{n} entries"));
            bar.tick();
        }))
    }
}

impl Observer for Progress {
    fn start(&mut self, solver: &str, max_iters: usize) {
        self.bar.set_prefix(solver.to_string());
        self.bar.set_length(max_iters as u64);
    }
    fn observe(&mut self, r: &Record) -> Control {
        if self.bar.is_hidden() {
            return Control::Continue;
        }
        self.bar.set_position(r.iteration as u64);
        if self.last_message.is_some_and(|t| t.elapsed() < MESSAGE_EVERY) {
            return Control::Continue;
        }
        self.last_message = Some(std::time::Instant::now());
        let mut msg = String::new();
        if let Some(o) = r.objective {
            msg.push_str(&format!("obj {o:.6e}"));
        }
        for k in ["test_rmse", "rel_error", "grad_norm"] {
            if let Some(v) = r.values.get(k) {
                msg.push_str(&format!(" {k} {v:.5}"));
            }
        }
        self.bar.set_message(msg);
        Control::Continue
    }
    fn finish(&mut self, _t: &Termination) {
        self.bar.finish_and_clear();
    }
}

/// Environment variable naming the file a run reports its live status to
/// (set by `lowrank sweep` for each child run).
pub const STATUS_FILE_ENV: &str = "LOWRANK_STATUS_FILE";

/// Writes the latest iteration of a run to a small JSON file (atomically, at
/// most every quarter second and at the end), for `lowrank sweep`'s live
/// status table: `{"iteration", "max_iters", "elapsed", "objective",
/// "metrics": {...}, "finished"}`.
pub struct StatusFile {
    path: std::path::PathBuf,
    max_iters: usize,
    last_write: Option<std::time::Instant>,
    last: Option<Record>,
}

impl StatusFile {
    /// The observer named by [`STATUS_FILE_ENV`], if it is set.
    pub fn from_env() -> Option<StatusFile> {
        let p = std::env::var_os(STATUS_FILE_ENV)?;
        Some(StatusFile { path: p.into(), max_iters: 0, last_write: None, last: None })
    }

    fn write(&self, finished: Option<&str>) {
        let Some(r) = &self.last else { return };
        let metrics: serde_json::Map<String, serde_json::Value> = ["rel_error", "test_rmse", "train_rmse", "grad_norm"]
            .iter()
            .filter_map(|k| r.values.get(*k).map(|v| (k.to_string(), serde_json::json!(v))))
            .collect();
        let v = serde_json::json!({
            "iteration": r.iteration, "max_iters": self.max_iters, "elapsed": r.elapsed,
            "objective": r.objective, "metrics": metrics, "finished": finished,
        });
        // best effort: a status line is not worth failing a run for
        let _ = lowrank::io::atomic_write(&self.path, |w| w.write_all(v.to_string().as_bytes()));
    }
}

impl Observer for StatusFile {
    fn start(&mut self, _solver: &str, max_iters: usize) {
        self.max_iters = max_iters;
    }
    fn observe(&mut self, r: &Record) -> Control {
        self.last = Some(r.clone());
        let due = self.last_write.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(250));
        if due {
            self.write(None);
            self.last_write = Some(std::time::Instant::now());
        }
        Control::Continue
    }
    fn finish(&mut self, t: &Termination) {
        self.write(Some(t.name()));
    }
}
