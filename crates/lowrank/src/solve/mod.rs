//! The solver contract and the executor that runs every solver.
//!
//! A [`Solver`] is a step function: [`Solver::init`] makes the first model,
//! [`Solver::step`] improves it by one iteration (epoch). The [`Executor`]
//! owns the loop: iteration limit, time budget, Ctrl-C, evaluation on a
//! validation set, observers, early stopping, the divergence guard,
//! checkpoints and resume (the shape of argmin's Solver/Executor).
//!
//! Conventions every solver follows:
//! - randomness inside `step` derives from the seed and `state.iteration`
//!   (e.g. [`crate::rng::stream`]), so a resumed run continues exactly;
//! - parameters are validated before any work (`check()`), returning
//!   [`crate::Error::InvalidInput`];
//! - not converging is a [`Termination`], never an error; a non-finite
//!   objective or model is [`crate::Error::Diverged`], raised by the executor.

pub mod als;
pub mod baseline;
mod checkpoint_lock;
pub use checkpoint_lock::ProcessLock;
pub mod deep;
pub mod gradient;
pub mod registry;
pub mod sgd;
pub mod spectral;
pub mod tensor;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::observe::{Control, Observer, Record};
use crate::rng::Rng;

/// Per-iteration scratch the solver fills in: its objective and any named
/// values (`grad_norm`, `step`, ...) go into `record`.
#[derive(Clone, Debug, Default)]
pub struct IterState {
    /// 0-based index of the iteration being run.
    pub iteration: usize,
    /// The iteration budget of the run (the executor's `max_iters`), for a
    /// solver that plans its last iterations; `None` when the caller has none.
    pub max_iters: Option<usize>,
    /// The record of this iteration; the executor adds timing and evaluations.
    pub record: Record,
    /// Set by the solver when its own convergence test passed.
    pub converged: bool,
    /// Set by the solver when it cannot make progress (e.g. a line search
    /// found no decrease); the run ends with [`Termination::Stalled`].
    pub stalled: Option<String>,
    /// Set by a solver that checked every parameter it changed while
    /// updating (`Some(true)`: the model is finite): the executor then skips
    /// its own pass over the model. `None`: the executor checks.
    pub model_finite: Option<bool>,
    /// The objective at the starting point, set by a solver that minimizes
    /// its objective and evaluates it there (its first step): a later
    /// objective [`BLOW_UP`] times larger stops the run with
    /// [`Error::BlewUp`], even while it is finite.
    pub start_objective: Option<f64>,
}

/// How many times its starting value an objective may grow before the run is
/// reported as diverging (a minimizing method that multiplies its loss by
/// 10⁸ is not coming back; with a step size too large by a factor ten the
/// loss typically grows by that much within a few iterations).
pub const BLOW_UP: f64 = 1e8;

/// A step-function solver.
pub trait Solver: Send {
    /// What the solver fits: [`crate::Ratings`], a dense matrix, a tensor.
    type Data: ?Sized + Sync;
    /// What it produces.
    type Model: ModelState;

    /// Short name (`sgd`, `als`, ...).
    fn name(&self) -> &'static str;

    /// The initial model. Called on fresh runs and on resume (before the
    /// checkpointed model replaces the returned one), so it may also build
    /// caches derived from the data.
    fn init(&mut self, data: &Self::Data, rng: &mut Rng) -> Result<Self::Model>;

    /// One iteration.
    fn step(&mut self, data: &Self::Data, model: &mut Self::Model, state: &mut IterState) -> Result<()>;

    /// Whether the model keeps the sizes of [`Solver::init`]'s (rank, hidden
    /// widths) for the whole run, so that a checkpoint with other sizes is
    /// refused; false for solvers whose rank adapts (nuclear-norm methods).
    fn fixed_sizes(&self) -> bool {
        true
    }

    /// Advice printed when the run diverges.
    fn divergence_hint(&self) -> String {
        "lower the learning rate or raise the regularization".into()
    }

    /// Solver state beyond the model, for checkpoints (optimizer moments, ...).
    fn save_state(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Restore [`Solver::save_state`].
    fn load_state(&mut self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Last chance to adjust the model after the loop (e.g. to fold a
    /// normalization back in). Called once, also after an early stop.
    fn finalize(&mut self, _data: &Self::Data, _model: &mut Self::Model) -> Result<()> {
        Ok(())
    }
}

/// Why a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Termination {
    /// The iteration limit was reached.
    MaxIters,
    /// The solver's convergence test passed.
    Converged,
    /// The time budget ran out.
    Timeout,
    /// Ctrl-C (or another interrupt flag).
    Interrupted,
    /// Validation did not improve for `patience` evaluations; the best model
    /// (from `best_iteration`) is returned.
    EarlyStopped {
        /// Iteration of the returned model.
        best_iteration: usize,
    },
    /// An observer stopped the run.
    Stopped {
        /// The observer's reason.
        message: String,
    },
    /// The solver could not make progress.
    Stalled {
        /// The solver's reason.
        message: String,
    },
}

impl Termination {
    /// Short name (`max_iters`, `converged`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Termination::MaxIters => "max_iters",
            Termination::Converged => "converged",
            Termination::Timeout => "timeout",
            Termination::Interrupted => "interrupted",
            Termination::EarlyStopped { .. } => "early_stopped",
            Termination::Stopped { .. } => "stopped",
            Termination::Stalled { .. } => "stalled",
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Fit<M> {
    /// The fitted model.
    pub model: M,
    /// Why the run ended.
    pub termination: Termination,
    /// Iterations completed (including those before a resume).
    pub iterations: usize,
    /// One record per iteration.
    pub history: Vec<Record>,
    /// Wall-clock seconds of this run: its setup (`Solver::init`) and its loop.
    pub seconds: f64,
}

/// Early stopping on a validation value (lower is better).
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    /// Record value to watch, e.g. `test_rmse`.
    pub key: String,
    /// Evaluations without improvement before stopping.
    pub patience: usize,
    /// Smallest decrease that counts as an improvement.
    pub min_delta: f64,
}

type Evaluator<'a, M> = Box<dyn Fn(&M) -> Vec<(String, f64)> + Send + Sync + 'a>;

/// Runs a [`Solver`]; see the module docs.
pub struct Executor<'a, S: Solver> {
    solver: S,
    data: &'a S::Data,
    seed: u64,
    max_iters: usize,
    time_budget: Option<Duration>,
    observers: Vec<Box<dyn Observer + 'a>>,
    evaluator: Option<Evaluator<'a, S::Model>>,
    eval_every: usize,
    early: Option<EarlyStopping>,
    checkpoint: Option<(PathBuf, usize)>,
    checkpoint_gap: Duration,
    resume: bool,
    data_fingerprint: Option<u64>,
    interrupt: Option<Arc<AtomicBool>>,
    threads: Option<usize>,
}

const CKPT_MAGIC: &[u8; 8] = b"LRCKPT02";

/// The magic of checkpoints without the trailing checksum (still read).
const CKPT_MAGIC_V1: &[u8; 8] = b"LRCKPT01";

#[derive(Serialize, Deserialize)]
struct CheckpointHeader {
    solver: String,
    iteration: usize,
    seed: u64,
    history: Vec<Record>,
    /// [`crate::io::Dataset::fingerprint`] of the data, when the run knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<u64>,
    /// [`IterState::start_objective`] of the run, so that a resumed run
    /// still detects a blow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_objective: Option<f64>,
}

impl<'a, S: Solver> Executor<'a, S> {
    /// An executor for `solver` on `data`, 100 iterations, seed 0.
    pub fn new(solver: S, data: &'a S::Data) -> Self {
        Executor {
            solver,
            data,
            seed: 0,
            max_iters: 100,
            time_budget: None,
            observers: Vec::new(),
            evaluator: None,
            eval_every: 1,
            early: None,
            checkpoint: None,
            checkpoint_gap: Duration::ZERO,
            resume: false,
            data_fingerprint: None,
            interrupt: None,
            threads: None,
        }
    }

    /// Seed of the initial model's random generator.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Iteration limit.
    pub fn max_iters(mut self, n: usize) -> Self {
        self.max_iters = n;
        self
    }
    /// Wall-clock budget for the loop.
    pub fn time_budget(mut self, d: Duration) -> Self {
        self.time_budget = Some(d);
        self
    }
    /// Add an observer.
    pub fn observer(mut self, o: impl Observer + 'a) -> Self {
        self.observers.push(Box::new(o));
        self
    }
    /// Add a boxed observer.
    pub fn boxed_observer(mut self, o: Box<dyn Observer + 'a>) -> Self {
        self.observers.push(o);
        self
    }
    /// Evaluate the model every `every` iterations (and after the last one);
    /// the returned values are added to the record (e.g. `test_rmse`).
    pub fn evaluate(mut self, every: usize, f: impl Fn(&S::Model) -> Vec<(String, f64)> + Send + Sync + 'a) -> Self {
        self.eval_every = every.max(1);
        self.evaluator = Some(Box::new(f));
        self
    }
    /// Stop when `key` has not improved for `patience` evaluations; the best
    /// model is returned.
    pub fn early_stopping(mut self, e: EarlyStopping) -> Self {
        self.early = Some(e);
        self
    }
    /// Write a checkpoint to `path` every `every` iterations (atomically).
    pub fn checkpoint(mut self, path: impl Into<PathBuf>, every: usize) -> Self {
        self.checkpoint = Some((path.into(), every.max(1)));
        self
    }
    /// Write a scheduled checkpoint only when at least `gap` has passed since
    /// the previous one (the last iteration and any stop are always
    /// checkpointed). A checkpoint holds the run's whole history, so for
    /// fast iterations a time gap keeps checkpointing from dominating the
    /// run. Default: no gap.
    pub fn checkpoint_min_interval(mut self, gap: Duration) -> Self {
        self.checkpoint_gap = gap;
        self
    }
    /// A fingerprint of the data (e.g. [`crate::io::Dataset::fingerprint`]),
    /// written into checkpoints: resuming on data with another fingerprint
    /// is refused.
    pub fn data_fingerprint(mut self, fingerprint: u64) -> Self {
        self.data_fingerprint = Some(fingerprint);
        self
    }

    /// Resume from the checkpoint path when the file exists.
    pub fn resume(mut self, yes: bool) -> Self {
        self.resume = yes;
        self
    }
    /// A flag that interrupts the run when set (Ctrl-C handlers set it).
    pub fn interrupt(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = Some(flag);
        self
    }
    /// Run on a dedicated pool of `n` threads (default: rayon's global pool).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }

    /// Run the loop. A run with a checkpoint holds its lock (see
    /// `checkpoint_lock`) until it returns: a second run on the same
    /// checkpoint file is refused.
    pub fn run(self) -> Result<Fit<S::Model>> {
        let _lock = match &self.checkpoint {
            Some((path, _)) => Some(checkpoint_lock::CheckpointLock::acquire(path)?),
            None => None,
        };
        match self.threads {
            Some(n) => {
                let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
                if n > 4 * cores {
                    return Err(Error::invalid(format!(
                        "{n} threads on a machine with {cores} cores: more than 4 per core only adds switching \
                         (it can make a run many times slower); use at most {}",
                        4 * cores
                    )));
                }
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::invalid(format!("cannot start {n} threads: {e}")))?;
                pool.install(move || self.run_here())
            }
            None => self.run_here(),
        }
    }

    /// Write the checkpoint of iteration `iteration`.
    fn save_checkpoint(
        &self,
        path: &Path,
        model: &S::Model,
        iteration: usize,
        history: &[Record],
        start_objective: Option<f64>,
    ) -> Result<()> {
        let meta = (self.seed, self.data_fingerprint, start_objective);
        write_checkpoint(path, &self.solver, model, iteration, history, meta)
    }

    /// A numerical failure (a decomposition that did not converge, a
    /// system that could not be solved) with the solver, where it happened
    /// and the solver's hint; a message that already names the solver
    /// carries its own context and is kept as it is.
    fn in_context(&self, e: Error, when: &str) -> Error {
        match e {
            Error::Numerical(msg) if !msg.starts_with(self.solver.name()) => Error::Numerical(format!(
                "{} ({when}): {msg}. This usually means extreme values in the data or the settings; {}",
                self.solver.name(),
                self.solver.divergence_hint()
            )),
            e => e,
        }
    }

    fn run_here(mut self) -> Result<Fit<S::Model>> {
        let mut rng = crate::rng::rng(self.seed);
        // setup (caches, a radius or lambda chosen from the data) counts in
        // the reported time and the time budget, like the iterations
        let setup_start = Instant::now();
        let mut model = self.solver.init(self.data, &mut rng).map_err(|e| self.in_context(e, "setup"))?;
        let mut history: Vec<Record> = Vec::new();
        let mut start_iter = 0usize;
        let mut start_objective: Option<f64> = None;
        if let (true, Some((path, _))) = (self.resume, &self.checkpoint)
            && path.exists()
        {
            let (hdr, state, m) = read_checkpoint::<S::Model>(path)?;
            if hdr.solver != self.solver.name() {
                return Err(Error::invalid(format!(
                    "checkpoint {} is from solver '{}', not '{}'",
                    path.display(),
                    hdr.solver,
                    self.solver.name()
                )));
            }
            if m.data_dims() != model.data_dims() {
                return Err(Error::invalid(format!(
                    "checkpoint {} was made on data of shape {:?}, but this data has shape {:?}: resume with the \
                     same data, or delete the checkpoint to start over",
                    path.display(),
                    m.data_dims(),
                    model.data_dims()
                )));
            }
            if let (Some(was), Some(now)) = (hdr.data, self.data_fingerprint)
                && was != now
            {
                return Err(Error::invalid(format!(
                    "checkpoint {} was made on other data (same shape, different entries): resume with the same \
                     data, or delete the checkpoint to start over",
                    path.display()
                )));
            }
            if self.solver.fixed_sizes() && m.sizes() != model.sizes() {
                return Err(Error::invalid(format!(
                    "checkpoint {} holds a model of sizes {:?} (rank and the like), but these settings make {:?}: \
                     resume with the checkpoint's settings, or delete it to start over",
                    path.display(),
                    m.sizes(),
                    model.sizes()
                )));
            }
            if hdr.iteration > self.max_iters {
                return Err(Error::invalid(format!(
                    "checkpoint {} is at iteration {}, beyond the {} asked for: ask for more iterations (--epochs)",
                    path.display(),
                    hdr.iteration,
                    self.max_iters
                )));
            }
            self.solver.load_state(&state).map_err(|e| in_checkpoint(path, e))?;
            model = m;
            start_iter = hdr.iteration;
            history = hdr.history;
            start_objective = hdr.start_objective;
        }
        if !model.is_finite() {
            return Err(Error::Diverged {
                iteration: 0,
                what: "the initial model".into(),
                hint: self.solver.divergence_hint(),
            });
        }
        let name = self.solver.name();
        for o in self.observers.iter_mut() {
            o.resumed_at(start_iter);
            o.start(name, self.max_iters);
        }
        let offset = history.last().map_or(0.0, |r| r.elapsed);
        let setup = setup_start.elapsed();
        let t0 = Instant::now();
        let mut last_checkpoint = t0;
        let mut checkpointed_at = start_iter;
        let mut best: Option<(f64, usize, S::Model)> = None;
        let mut since_best = 0usize;
        let mut termination = Termination::MaxIters;
        let mut it = start_iter;
        while it < self.max_iters {
            if self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
                termination = Termination::Interrupted;
                break;
            }
            if self.time_budget.is_some_and(|b| setup + t0.elapsed() >= b) {
                termination = Termination::Timeout;
                break;
            }
            let mut state = IterState { iteration: it, max_iters: Some(self.max_iters), ..Default::default() };
            if let Err(e) = self.solver.step(self.data, &mut model, &mut state) {
                return Err(self.in_context(e, &format!("iteration {}", it + 1)));
            }
            it += 1;
            let mut rec = std::mem::take(&mut state.record);
            rec.iteration = it;
            let last = it == self.max_iters || state.converged || state.stalled.is_some();
            if let Some(ev) = &self.evaluator
                && (it.is_multiple_of(self.eval_every) || last)
            {
                for (k, v) in ev(&model) {
                    rec.values.insert(k, v);
                }
            }
            rec.elapsed = offset + t0.elapsed().as_secs_f64();
            // divergence guard
            let bad = rec
                .objective
                .filter(|o| !o.is_finite())
                .map(|_| "the objective".to_string())
                .or_else(|| rec.values.iter().find(|(_, v)| !v.is_finite()).map(|(k, _)| k.clone()))
                .or_else(|| {
                    (!state.model_finite.unwrap_or_else(|| model.is_finite())).then(|| "the model".to_string())
                });
            if let Some(what) = bad {
                return Err(Error::Diverged { iteration: it, what, hint: self.solver.divergence_hint() });
            }
            if start_objective.is_none() {
                start_objective = state.start_objective.filter(|o| o.is_finite() && *o > 0.0);
                // recorded once, for whoever judges the run against its start
                if let Some(s) = start_objective {
                    rec.values.insert("start_objective".into(), s);
                }
            }
            if let (Some(from), Some(to)) = (start_objective, rec.objective)
                && to > BLOW_UP * from
            {
                return Err(Error::BlewUp { iteration: it, from, to, hint: self.solver.divergence_hint() });
            }
            let mut stop: Option<Termination> = None;
            for o in self.observers.iter_mut() {
                if let Control::Stop(msg) = o.observe(&rec) {
                    stop.get_or_insert(Termination::Stopped { message: msg });
                }
            }
            if let Some(e) = &self.early
                && let Some(v) = rec.get(&e.key)
            {
                if best.as_ref().is_none_or(|b| v < b.0 - e.min_delta) {
                    best = Some((v, it, model.clone()));
                    since_best = 0;
                } else {
                    since_best += 1;
                    if since_best >= e.patience {
                        stop.get_or_insert(Termination::EarlyStopped {
                            best_iteration: best.as_ref().map_or(it, |b| b.1),
                        });
                    }
                }
            }
            history.push(rec);
            if let Some((path, every)) = &self.checkpoint {
                let due = it.is_multiple_of(*every) && last_checkpoint.elapsed() >= self.checkpoint_gap;
                if due || last || stop.is_some() {
                    self.save_checkpoint(path, &model, it, &history, start_objective)?;
                    last_checkpoint = Instant::now();
                    checkpointed_at = it;
                }
            }
            if let Some(s) = stop {
                termination = s;
                break;
            }
            if let Some(msg) = state.stalled {
                termination = Termination::Stalled { message: msg };
                break;
            }
            if state.converged {
                termination = Termination::Converged;
                break;
            }
        }
        // an interrupted or timed-out run resumes where it stopped, not at the
        // last scheduled checkpoint
        if matches!(termination, Termination::Interrupted | Termination::Timeout)
            && let Some((path, _)) = &self.checkpoint
            && checkpointed_at != it
        {
            self.save_checkpoint(path, &model, it, &history, start_objective)?;
        }
        if let Termination::EarlyStopped { .. } = termination
            && let Some((_, _, m)) = best
        {
            model = m;
        }
        self.solver.finalize(self.data, &mut model)?;
        if !model.is_finite() {
            return Err(Error::Diverged {
                iteration: it,
                what: "the final model".into(),
                hint: self.solver.divergence_hint(),
            });
        }
        for o in self.observers.iter_mut() {
            o.finish(&termination);
        }
        let seconds = (setup + t0.elapsed()).as_secs_f64();
        Ok(Fit { model, termination, iterations: it, history, seconds })
    }
}

/// `meta`: the seed, the data's fingerprint and the start objective.
fn write_checkpoint<S: Solver>(
    path: &Path,
    solver: &S,
    model: &S::Model,
    iteration: usize,
    history: &[Record],
    meta: (u64, Option<u64>, Option<f64>),
) -> Result<()> {
    let (seed, data, start_objective) = meta;
    let hdr = CheckpointHeader {
        solver: solver.name().to_string(),
        iteration,
        seed,
        history: history.to_vec(),
        data,
        start_objective,
    };
    let hdr = serde_json::to_vec(&hdr).map_err(|e| Error::invalid(e.to_string()))?;
    let state = solver.save_state()?;
    let m = model.to_bytes()?;
    crate::io::atomic_write(path, |w| {
        // a CRC-32 of everything before it closes the file: a flipped bit or a
        // checkpoint cut short is refused at resume instead of loaded
        let mut crc = flate2::Crc::new();
        let mut put = |bytes: &[u8]| -> std::io::Result<()> {
            crc.update(bytes);
            w.write_all(bytes)
        };
        put(CKPT_MAGIC)?;
        for part in [&hdr, &state, &m] {
            put(&(part.len() as u64).to_le_bytes())?;
            put(part)?;
        }
        w.write_all(&crc.sum().to_le_bytes())
    })
}

fn read_checkpoint<M: ModelState>(path: &Path) -> Result<(CheckpointHeader, Vec<u8>, M)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = || Error::parse(path, 0, "not a lowrank checkpoint, or a truncated one");
    let bytes = match bytes.get(..8) {
        Some(m) if m == CKPT_MAGIC => {
            let body = bytes.len().checked_sub(4).filter(|&n| n >= 8).ok_or_else(bad)?;
            let mut crc = flate2::Crc::new();
            crc.update(&bytes[..body]);
            if crc.sum().to_le_bytes() != bytes[body..] {
                return Err(Error::parse(
                    path,
                    0,
                    "the checkpoint is damaged (its checksum does not match): delete it to start over",
                ));
            }
            &bytes[..body]
        }
        // written before checkpoints carried a checksum
        Some(m) if m == CKPT_MAGIC_V1 => &bytes[..],
        _ => return Err(bad()),
    };
    let mut pos = 8;
    let mut parts = Vec::new();
    for _ in 0..3 {
        let len = u64::from_le_bytes(bytes.get(pos..pos + 8).ok_or_else(bad)?.try_into().unwrap()) as usize; // ok: the slice has 8 bytes
        pos += 8;
        parts.push(bytes.get(pos..pos.checked_add(len).ok_or_else(bad)?).ok_or_else(bad)?.to_vec());
        pos += len;
    }
    let hdr: CheckpointHeader = serde_json::from_slice(&parts[0]).map_err(|_| bad())?;
    let model = M::from_bytes(&parts[2]).map_err(|e| in_checkpoint(path, e))?;
    Ok((hdr, std::mem::take(&mut parts[1]), model))
}

/// An error about a checkpoint's content, naming the checkpoint file.
fn in_checkpoint(path: &Path, e: Error) -> Error {
    match e {
        Error::Parse { line, reason, .. } => Error::parse(path, line, reason),
        Error::InvalidInput(m) => Error::InvalidInput(format!("checkpoint {}: {m}", path.display())),
        e => e,
    }
}

#[cfg(test)]
mod json_tests {
    /// Checkpoint headers and several solvers' states are JSON: every f64
    /// must come back with the same bits, or a resumed run drifts from a
    /// straight one (serde_json's default float parser can be 1 ulp off; the
    /// workspace enables its `float_roundtrip` feature).
    #[test]
    fn floats_round_trip_through_json_bit_for_bit() {
        let mut g = crate::rng::rng(5);
        let mut xs: Vec<f64> =
            (0..20_000).map(|_| crate::rng::normal(&mut g) * 10f64.powi((g_exp(&mut g)) as i32)).collect();
        xs.extend([24.088861200568182, 0.1 + 0.2, f64::MIN_POSITIVE, 5e-324, f64::MAX, -0.0, 1.0 / 3.0]);
        let back: Vec<f64> = serde_json::from_slice(&serde_json::to_vec(&xs).unwrap()).unwrap();
        for (a, b) in xs.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a:e} came back as {b:e}");
        }
    }

    fn g_exp(g: &mut crate::rng::Rng) -> i64 {
        (crate::rng::uniform(g) * 40.0) as i64 - 20
    }
}

#[cfg(test)]
mod thread_tests {
    use super::*;

    #[test]
    fn more_than_four_threads_per_core_is_refused() {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let data = crate::data::synth::planted_completion(8, 1, 40, 1).unwrap().observed;
        let solver = || crate::solve::baseline::Baseline::default().check().unwrap();
        let err = Executor::new(solver(), &data).threads(4 * cores + 1).max_iters(1).run().unwrap_err();
        assert!(err.is_input_error() && err.to_string().contains("use at most"), "{err}");
        assert!(Executor::new(solver(), &data).threads(cores).max_iters(1).run().is_ok());
    }
}

#[cfg(test)]
mod context_tests {
    use super::*;
    use crate::model::DenseModel;

    /// Fails at its second step with a numerical error `msg`.
    struct FailsAtStep2(&'static str);

    impl Solver for FailsAtStep2 {
        type Data = crate::Ratings;
        type Model = DenseModel;
        fn name(&self) -> &'static str {
            "failing"
        }
        fn init(&mut self, data: &crate::Ratings, _rng: &mut Rng) -> Result<DenseModel> {
            Ok(DenseModel::new(faer::Mat::zeros(data.nrows(), data.ncols())))
        }
        fn step(&mut self, _: &crate::Ratings, _: &mut DenseModel, state: &mut IterState) -> Result<()> {
            if state.iteration == 1 {
                return Err(Error::Numerical(self.0.into()));
            }
            Ok(())
        }
        fn divergence_hint(&self) -> String {
            "lower the knob".into()
        }
    }

    #[test]
    fn numerical_failures_name_the_solver_the_iteration_and_the_hint() {
        let data = crate::data::synth::planted_completion(6, 1, 20, 1).unwrap().observed;
        let e = Executor::new(FailsAtStep2("the SVD did not converge"), &data).max_iters(5).run().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("failing (iteration 2): the SVD did not converge"), "{msg}");
        assert!(msg.contains("lower the knob"), "{msg}");
        // a message that names the solver already is kept as it is
        let e = Executor::new(FailsAtStep2("failing diverged: lower the knob"), &data).max_iters(5).run().unwrap_err();
        assert_eq!(e.to_string().matches("lower the knob").count(), 1, "{e}");
    }
}
