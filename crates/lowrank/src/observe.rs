//! Watching a run: one [`Record`] per iteration goes to every [`Observer`].
//!
//! Observers are how a run is seen: progress bars, JSON-lines traces, the
//! curves of plots. An observer can stop the run by returning
//! [`Control::Stop`] (the Sink contract of ripgrep's searcher).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What happened in one iteration (epoch).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Iterations completed so far (1 after the first step).
    pub iteration: usize,
    /// Seconds since the run started (excluding time before a resume).
    pub elapsed: f64,
    /// The solver's objective, if it tracks one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub objective: Option<f64>,
    /// Named scalar values: `train_rmse`, `test_rmse`, `grad_norm`, `step`, ...
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
    /// Named vectors: `singular_values`, per-parameter learning rates, ...
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub vectors: BTreeMap<String, Vec<f64>>,
}

impl Record {
    /// A scalar by name (`objective` included).
    pub fn get(&self, key: &str) -> Option<f64> {
        if key == "objective" {
            return self.objective;
        }
        self.values.get(key).copied()
    }
}

/// Whether the run goes on.
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Stop now, with a reason.
    Stop(String),
}

/// Receives every record of a run.
pub trait Observer: Send {
    /// Called once before the first iteration with the solver's name.
    fn start(&mut self, _solver: &str, _max_iters: usize) {}
    /// Called once before [`Observer::start`] with the iteration the run
    /// starts from (0, or a checkpoint's): records of later iterations that
    /// an observer kept from an earlier attempt (a run killed after its last
    /// checkpoint) are stale.
    fn resumed_at(&mut self, _iteration: usize) {}
    /// Called after every iteration.
    fn observe(&mut self, record: &Record) -> Control;
    /// Called once at the end with the reason the run stopped.
    fn finish(&mut self, _termination: &crate::solve::Termination) {}
}

/// Writes one JSON object per record to a file (`trace.jsonl`).
pub struct JsonlTrace {
    out: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    failed: bool,
}

impl JsonlTrace {
    /// Create (or append to, when resuming) the trace file.
    pub fn create(path: &Path, append: bool) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(JsonlTrace { out: std::io::BufWriter::new(f), path: path.to_path_buf(), failed: false })
    }
}

impl JsonlTrace {
    /// Keep only the records up to `iteration` (and drop a line cut short by
    /// a crash), atomically, then go on appending.
    fn truncate_after(&mut self, iteration: usize) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let keep = |line: &&str| serde_json::from_str::<Record>(line).is_ok_and(|r| r.iteration <= iteration);
        let kept: Vec<&str> = text.lines().filter(keep).collect();
        if kept.len() == text.lines().count() {
            return Ok(());
        }
        crate::io::atomic_write(&self.path, |w| kept.iter().try_for_each(|l| writeln!(w, "{l}")))?;
        *self = JsonlTrace::create(&self.path.clone(), true)?;
        Ok(())
    }
}

impl Observer for JsonlTrace {
    fn resumed_at(&mut self, iteration: usize) {
        if self.truncate_after(iteration).is_err() {
            self.failed = true;
        }
    }

    fn observe(&mut self, record: &Record) -> Control {
        if self.failed {
            return Control::Stop(format!("cannot write the trace {}", self.path.display()));
        }
        let line = serde_json::to_string(record).expect("records serialize");
        if writeln!(self.out, "{line}").and_then(|_| self.out.flush()).is_err() {
            self.failed = true;
            return Control::Stop(format!("cannot write the trace {}", self.path.display()));
        }
        Control::Continue
    }
}

/// Collects every record in memory (what plots and tests use).
#[derive(Default, Clone)]
pub struct History {
    /// The records so far.
    pub records: std::sync::Arc<std::sync::Mutex<Vec<Record>>>,
}

impl Observer for History {
    fn observe(&mut self, record: &Record) -> Control {
        self.records.lock().expect("history lock").push(record.clone());
        Control::Continue
    }
}

/// Stops the run after `iterations` records (used to test stopping).
pub struct StopAfter(pub usize);

impl Observer for StopAfter {
    fn observe(&mut self, record: &Record) -> Control {
        if record.iteration >= self.0 {
            Control::Stop(format!("stopped after {} iterations", self.0))
        } else {
            Control::Continue
        }
    }
}

/// A closure as an observer.
pub struct FnObserver<F: FnMut(&Record) -> Control + Send>(pub F);

impl<F: FnMut(&Record) -> Control + Send> Observer for FnObserver<F> {
    fn observe(&mut self, record: &Record) -> Control {
        (self.0)(record)
    }
}
