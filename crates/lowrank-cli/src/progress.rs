//! A progress bar observer (indicatif, on stderr, hidden when stderr is not a
//! terminal or with `--quiet`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use lowrank::observe::{Control, Observer, Record};
use lowrank::solve::Termination;

/// Shows iteration / total and the latest objective and test RMSE.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar, hidden when `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() { ProgressBar::hidden() } else { ProgressBar::new(0) };
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Progress { bar }
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
        self.bar.set_position(r.iteration as u64);
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
