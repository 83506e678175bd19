//! Algorithms by name: what `lowrank fit --algo NAME` and experiment configs
//! run.
//!
//! Every algorithm family registers its [`AlgoEntry`]s (its `ALGOS`), listed by [`algos`]. Its
//! runner receives a [`FitRequest`] (data, settings as a JSON map, seed,
//! threads, observers, checkpointing) and returns a [`FitOutcome`] (the model
//! and a summary object). Settings are deserialized into the family's params
//! struct with `deny_unknown_fields`, so a misspelled key is an error with a
//! suggestion.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use faer::Mat;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::{EarlyStopping, Executor, Fit, Solver, Termination};
use crate::data::Ratings;
use crate::error::{Error, Result};
use crate::io::Dataset;
use crate::metrics::{self, Clipped, Predict};
use crate::model::{DenseModel, FactorModel, ModelState};
use crate::observe::{Observer, Record};

/// Everything a run needs besides the algorithm's own settings.
pub struct FitRequest<'a> {
    /// Algorithm name.
    pub algo: String,
    /// The algorithm's settings (`rank`, `lr`, `reg`, and its own keys).
    pub params: Map<String, Value>,
    /// Training data.
    pub train: &'a Dataset,
    /// Optional test data (ratings aligned to the training ids).
    pub test: Option<&'a Dataset>,
    /// Optional dense ground truth (relative error over all entries).
    pub truth: Option<&'a Mat<f64>>,
    /// Iterations (epochs); the algorithm's default when `None`.
    pub epochs: Option<usize>,
    /// Seed.
    pub seed: u64,
    /// Threads (0 = all cores).
    pub threads: usize,
    /// Observers of the run.
    pub observers: Vec<Box<dyn Observer + 'a>>,
    /// Checkpoint file and frequency.
    pub checkpoint: Option<(PathBuf, usize)>,
    /// Least time between two scheduled checkpoints (see
    /// [`Executor::checkpoint_min_interval`]); zero by default.
    pub checkpoint_min_interval: Duration,
    /// Resume from the checkpoint if it exists.
    pub resume: bool,
    /// Interrupt flag (Ctrl-C).
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Time budget.
    pub time_budget: Option<Duration>,
    /// Early stopping (needs a test set for `test_rmse`).
    pub early_stopping: Option<EarlyStopping>,
    /// Evaluate the test set every this many iterations (default 1).
    pub eval_every: usize,
}

impl<'a> FitRequest<'a> {
    /// A request with defaults: no test set, seed 0, all threads.
    pub fn new(algo: &str, train: &'a Dataset) -> Self {
        FitRequest {
            algo: algo.to_string(),
            params: Map::new(),
            train,
            test: None,
            truth: None,
            epochs: None,
            seed: 0,
            threads: 0,
            observers: Vec::new(),
            checkpoint: None,
            checkpoint_min_interval: Duration::ZERO,
            resume: false,
            interrupt: None,
            time_budget: None,
            early_stopping: None,
            eval_every: 1,
        }
    }

    /// Set one setting.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.to_string(), value.into());
        self
    }

    /// Configure an executor with everything in this request.
    pub fn executor<S: Solver>(&mut self, solver: S, data: &'a S::Data, default_epochs: usize) -> Executor<'a, S> {
        let mut ex = Executor::new(solver, data).seed(self.seed).max_iters(self.epochs.unwrap_or(default_epochs));
        if self.threads > 0 {
            ex = ex.threads(self.threads);
        }
        for o in self.observers.drain(..) {
            ex = ex.boxed_observer(o);
        }
        if let Some((p, every)) = self.checkpoint.clone() {
            ex = ex
                .checkpoint(p, every)
                .checkpoint_min_interval(self.checkpoint_min_interval)
                .resume(self.resume)
                .data_fingerprint(self.train.fingerprint());
        }
        if let Some(f) = self.interrupt.clone() {
            ex = ex.interrupt(f);
        }
        if let Some(d) = self.time_budget {
            ex = ex.time_budget(d);
        }
        if let Some(e) = self.early_stopping.clone() {
            ex = ex.early_stopping(e);
        }
        ex
    }

    /// The training data as ratings (dense input converts, NaN = missing).
    pub fn train_ratings(&self) -> Result<Ratings> {
        self.train.clone().into_ratings()
    }
}

/// A fitted model of any kind.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum FittedModel {
    /// Factors (+ biases).
    Factor(FactorModel),
    /// A dense matrix.
    Dense(DenseModel),
    /// A CP tensor model.
    Cp(super::tensor::CpModel),
}

impl FittedModel {
    /// Save to a file (atomically).
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        match self {
            FittedModel::Factor(m) => m.save(path),
            FittedModel::Dense(m) => {
                let b = m.to_bytes()?;
                crate::io::atomic_write(path, |w| w.write_all(&b))
            }
            FittedModel::Cp(m) => m.save(path),
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct FitOutcome {
    /// The model.
    pub model: FittedModel,
    /// Summary object (the `fit --json` contract: `algo`, `rank`, `epochs`,
    /// `train_rmse`, `test_rmse`, `test_mae`, `fit_seconds`, `threads`, `seed`,
    /// `iterations`, `termination`, plus algorithm-specific keys).
    pub summary: Map<String, Value>,
    /// One record per iteration.
    pub history: Vec<Record>,
    /// Why the run ended.
    pub termination: Termination,
}

/// One registered algorithm.
pub struct AlgoEntry {
    /// Name used by `--algo`.
    pub name: &'static str,
    /// One-line description.
    pub about: &'static str,
    /// Keys the runner understands (for `--help` and suggestions).
    pub keys: &'static [&'static str],
    /// Run it.
    pub run: fn(FitRequest<'_>) -> Result<FitOutcome>,
    /// Check settings without data (types, ranges): what [`AlgoEntry::run`]
    /// checks first, so that configs and sweeps fail before loading data or
    /// starting runs. Data-dependent checks (rank vs shape) stay in `run`.
    pub validate: fn(&Map<String, Value>) -> Result<()>,
}

/// Every algorithm lowrank knows, family by family.
pub fn algos() -> impl Iterator<Item = &'static AlgoEntry> {
    [BASELINE, super::sgd::ALGOS, super::als::ALGOS, super::gradient::ALGOS]
        .into_iter()
        .flatten()
        .chain(super::spectral::algos())
        .chain([super::deep::ALGOS, super::tensor::ALGOS].into_iter().flatten())
}

static BASELINE: &[AlgoEntry] = &[AlgoEntry {
    name: "baseline",
    about: "global mean + regularized user/item biases (Surprise BaselineOnly), fitted by ALS sweeps",
    keys: &["reg_user", "reg_item"],
    run: run_baseline,
    validate: |p| {
        crate::solve::registry::parse_params::<super::baseline::Baseline>("baseline", p, &["reg_user", "reg_item"])?
            .check()
            .map(drop)
    },
}];

/// Look up an algorithm by name (with a suggestion when unknown).
pub fn find(name: &str) -> Result<&'static AlgoEntry> {
    algos().find(|a| a.name == name).ok_or_else(|| {
        let names: Vec<&str> = algos().map(|a| a.name).collect();
        Error::Config(format!("unknown algorithm '{name}'{}; known: {}", did_you_mean(name, &names), names.join(", ")))
    })
}

/// Run a request.
pub fn fit(req: FitRequest<'_>) -> Result<FitOutcome> {
    let entry = find(&req.algo)?;
    // every matrix algorithm keeps factors (or their work copies) for every
    // row and column: a few ids far beyond the rest (`--ids zero-based` with
    // an id of 1e8) must fail here, not in the allocator
    if let Some((m, n)) = req.train.matrix_shape() {
        // (a rank beyond the matrix gets the runner's own error)
        let rank =
            req.params.get("rank").and_then(Value::as_u64).unwrap_or(10).clamp(1, m.min(n).max(1) as u64) as u128;
        crate::error::ensure_fits_in_memory(
            (m as u128 + n as u128) * rank * 4,
            &format!("'{}' on a {m} x {n} matrix at rank {rank} (factors and work copies)", req.algo),
            "check the ids: with --ids zero-based or one-based the largest id sets the dimension",
        )?;
    }
    let algo = req.algo.clone();
    let rank_given = req.params.contains_key("rank");
    let mut out = (entry.run)(req).map_err(|e| match e {
        // a rank the user never set is the algorithm's default: say so
        Error::InvalidInput(m) if !rank_given && m.starts_with("rank") => {
            Error::InvalidInput(format!("{m} (the default rank of '{algo}'; set --rank)"))
        }
        e => e,
    })?;
    if let Some(w) = rising_objective(&algo, &out.history) {
        out.summary.insert("warning".into(), json!(w));
    }
    Ok(out)
}

/// Algorithms whose recorded objective is the loss they minimize, so that a
/// run ending above where it started went wrong (a step too large that did
/// not blow up to the 10⁸ of [`super::BLOW_UP`]).
const MINIMIZING: &[&str] = &["gd", "pgd-nuclear", "frank-wolfe", "deep", "deep-svd", "sgd", "lab-sgd"];

/// A warning when a minimizing algorithm's last objective is above its first.
pub fn rising_objective(algo: &str, history: &[Record]) -> Option<String> {
    if !MINIMIZING.contains(&algo) {
        return None;
    }
    let objectives: Vec<f64> = history.iter().filter_map(|r| r.objective).collect();
    // the objective at the starting point when the solver reported it, else the first record's
    let start = history.iter().find_map(|r| r.get("start_objective")).or(objectives.first().copied());
    match (start, objectives.last()) {
        (Some(first), Some(&last)) if objectives.len() > 1 && last > first => {
            let advice = match algo {
                // the truncated projection stops at svd_tol: a rise at small lr is that error, not the step
                "pgd-nuclear" => {
                    "the step is too large (lower lr), or the truncated projection is too inexact (lower svd_tol, \
                     raise svd_iters, or use svd = \"full\" on a small matrix)"
                }
                "frank-wolfe" => {
                    "the linear oracle is too inexact (raise power_iters or lower power_tol), or the open-loop \
                     step overshoots (use step = \"line-search\", the default)"
                }
                _ => "the step is likely too large (lower lr or the method's step setting)",
            };
            Some(format!("the objective rose from {first:.4e} to {last:.4e} over the run: {advice}"))
        }
        _ => None,
    }
}

/// `" (did you mean 'x'?)"` when a candidate is close to `word`, else `""`.
pub fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    let best = candidates.iter().map(|c| (levenshtein(word, c), *c)).min();
    match best {
        Some((d, c)) if d <= 2.max(word.len() / 3) => format!(" (did you mean '{c}'?)"),
        _ => String::new(),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + (ca != cb) as usize).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Deserialize an algorithm's settings, mapping serde's messages to a clear
/// config error (unknown key with a suggestion, wrong type).
pub fn parse_params<T: DeserializeOwned>(algo: &str, params: &Map<String, Value>, keys: &[&str]) -> Result<T> {
    for k in params.keys() {
        if !keys.contains(&k.as_str()) {
            return Err(Error::Config(format!(
                "'{algo}' has no setting '{k}'{}; its settings: {}",
                did_you_mean(k, keys),
                keys.join(", ")
            )));
        }
    }
    serde_json::from_value(Value::Object(params.clone())).map_err(|e| {
        // serde names the wrong type, not the key: find the key that fails on
        // its own (the settings are `#[serde(default)]` structs)
        let culprit = params.iter().find(|(k, v)| {
            let one: Map<String, Value> = std::iter::once(((*k).clone(), (*v).clone())).collect();
            serde_json::from_value::<T>(Value::Object(one)).is_err()
        });
        match culprit {
            Some((k, v)) => Error::Config(format!("'{algo}': setting '{k}' = {v}: {e}")),
            None => Error::Config(format!("'{algo}': {e}")),
        }
    })
}

/// Test ratings aligned to the training ids, with the squared and absolute
/// errors of the entries whose user or item is unknown (predicted by the
/// training mean), for evaluation in the peers' protocol.
pub struct TestSet {
    /// Aligned known entries.
    pub known: Ratings,
    /// Number of test entries with an unseen user or item.
    pub unseen: usize,
    /// Sum of squared errors of the unseen entries (predicted by the mean).
    pub unseen_sq: f64,
    /// Sum of absolute errors of the unseen entries.
    pub unseen_abs: f64,
    /// Total number of test entries.
    pub total: usize,
}

impl TestSet {
    /// Align `test` to `train`'s ids.
    pub fn new(train: &Ratings, test: &Ratings) -> TestSet {
        let (known, unseen) = train.align(test);
        let mu = train.mean();
        let mut known_keys = std::collections::HashSet::new();
        let mut sq = 0.0;
        let mut ab = 0.0;
        if unseen > 0 {
            let mut rmap = train.row_ids.clone();
            let mut cmap = train.col_ids.clone();
            for (i, j, v) in test.iter() {
                let ok = rmap.lookup(&test.row_ids.id(i)).is_some() && cmap.lookup(&test.col_ids.id(j)).is_some();
                if !ok {
                    let e = v as f64 - mu;
                    sq += e * e;
                    ab += e.abs();
                } else {
                    known_keys.insert((i, j));
                }
            }
        }
        TestSet { total: known.len() + unseen, known, unseen, unseen_sq: sq, unseen_abs: ab }
    }

    /// RMSE and MAE of a model over all test entries (unseen ones predicted
    /// by the training mean); predictions clipped to `clip` if given.
    pub fn evaluate<P: Predict + ?Sized>(&self, model: &P, clip: Option<(f64, f64)>) -> (f64, f64) {
        let (rmse_k, mae_k) = match clip {
            Some((lo, hi)) => {
                let c = Clipped { model, lo, hi };
                (metrics::rmse(&c, &self.known), metrics::mae(&c, &self.known))
            }
            None => (metrics::rmse(model, &self.known), metrics::mae(model, &self.known)),
        };
        let n = self.known.len() as f64;
        let (sq, ab) = if n > 0.0 { (rmse_k * rmse_k * n, mae_k * n) } else { (0.0, 0.0) };
        let t = self.total as f64;
        (((sq + self.unseen_sq) / t).sqrt(), (ab + self.unseen_abs) / t)
    }
}

/// The evaluation sets of a request against its training ratings: the test
/// set aligned to the training ids, and the dense ground truth, checked
/// against the training shape.
pub fn eval_sets(req: &FitRequest<'_>, train: &Ratings) -> Result<(Option<Arc<TestSet>>, Option<Arc<Mat<f64>>>)> {
    if let Some(w) = req.truth {
        crate::error::ensure!(
            w.nrows() == train.nrows() && w.ncols() == train.ncols(),
            "the ground truth is {}x{} but the data is {}x{}",
            w.nrows(),
            w.ncols(),
            train.nrows(),
            train.ncols()
        );
    }
    let test = match req.test {
        Some(t) => Some(Arc::new(TestSet::new(train, &t.clone().into_ratings()?))),
        None => None,
    };
    Ok((test, req.truth.cloned().map(Arc::new)))
}

/// Put the test figures of `model` into a summary: `test_rmse`, `test_mae`,
/// `test_unseen`, `n_test`, or `test_rmse` and `test_mae` as null without a
/// test set.
pub fn insert_test_summary<P: Predict + ?Sized>(
    s: &mut Map<String, Value>,
    test: Option<&TestSet>,
    model: &P,
    clip: Option<(f64, f64)>,
) {
    match test {
        Some(t) => {
            let (r, a) = t.evaluate(model, clip);
            s.insert("test_rmse".into(), json!(r));
            s.insert("test_mae".into(), json!(a));
            s.insert("test_unseen".into(), json!(t.unseen));
            s.insert("n_test".into(), json!(t.total));
        }
        None => {
            s.insert("test_rmse".into(), Value::Null);
            s.insert("test_mae".into(), Value::Null);
        }
    }
}

/// Put the closing keys of every summary: `fit_seconds`, `threads` (the pool
/// size when 0 was asked), `seed`, `termination`, `termination_message` (why
/// a run stalled or was stopped, with what to change; only then), `params`.
pub fn insert_run_summary(
    s: &mut Map<String, Value>,
    fit_seconds: f64,
    termination: &Termination,
    threads: usize,
    seed: u64,
    params: Map<String, Value>,
) {
    s.insert("fit_seconds".into(), json!(fit_seconds));
    s.insert("threads".into(), json!(if threads == 0 { rayon::current_num_threads() } else { threads }));
    s.insert("seed".into(), json!(seed));
    s.insert("termination".into(), json!(termination.name()));
    if let Termination::Stalled { message } | Termination::Stopped { message } = termination {
        s.insert("termination_message".into(), json!(message));
    }
    s.insert("params".into(), Value::Object(params));
}

/// Run a solver on ratings that produces a [`FactorModel`], with the standard
/// evaluation: `test_rmse` per iteration when a test set is given (clipped to
/// the training range when `clip`), relative error to a ground truth, and the
/// standard summary.
pub fn run_factor_solver<'a, S>(
    mut req: FitRequest<'a>,
    solver: S,
    train: &'a Ratings,
    default_epochs: usize,
    clip: bool,
) -> Result<(FitOutcome, Fit<FactorModel>)>
where
    S: Solver<Data = Ratings, Model = FactorModel>,
{
    let (test, truth) = eval_sets(&req, train)?;
    let range = if clip { train.value_range().map(|(a, b)| (a as f64, b as f64)) } else { None };
    let eval_every = req.eval_every;
    let seed = req.seed;
    let threads = req.threads;
    let algo = req.algo.clone();
    let params = req.params.clone();
    let mut ex = req.executor(solver, train, default_epochs);
    if test.is_some() || truth.is_some() {
        let (t2, tr2) = (test.clone(), truth.clone());
        ex = ex.evaluate(eval_every, move |m: &FactorModel| {
            let mut out = Vec::new();
            if let Some(t) = t2.as_ref() {
                let (r, a) = t.evaluate(m, range);
                out.push(("test_rmse".to_string(), r));
                out.push(("test_mae".to_string(), a));
            }
            if let Some(w) = tr2.as_ref() {
                out.push(("rel_error".to_string(), metrics::relative_error(m, w)));
            }
            out
        });
    }
    let fit = ex.run()?;
    let mut model = fit.model.clone();
    model.row_ids = train.row_ids.clone();
    model.col_ids = train.col_ids.clone();
    model.solver = algo.clone();
    model.params = Value::Object(params.clone());
    // how the scores below treat predictions, kept for `lowrank eval`
    model.clip = range;
    model.unseen_value = Some(train.mean());
    let mut summary = Map::new();
    summary.insert("algo".into(), json!(algo));
    summary.insert("rank".into(), json!(model.rank));
    summary.insert("epochs".into(), json!(fit.iterations));
    summary.insert("iterations".into(), json!(fit.iterations));
    let train_rmse = match range {
        Some((lo, hi)) => metrics::rmse(&Clipped { model: &model, lo, hi }, train),
        None => metrics::rmse(&model, train),
    };
    summary.insert("train_rmse".into(), json!(train_rmse));
    insert_test_summary(&mut summary, test.as_deref(), &model, range);
    if let Some(w) = truth.as_ref() {
        summary.insert("rel_error".into(), json!(metrics::relative_error(&model, w)));
    }
    summary.insert("n_train".into(), json!(train.len()));
    insert_run_summary(&mut summary, fit.seconds, &fit.termination, threads, seed, params);
    let outcome = FitOutcome {
        model: FittedModel::Factor(model),
        summary,
        history: fit.history.clone(),
        termination: fit.termination.clone(),
    };
    Ok((outcome, fit))
}

fn run_baseline(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: super::baseline::Baseline = parse_params("baseline", &req.params, &["reg_user", "reg_item"])?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    run_factor_solver(req, solver, &train, 10, true).map(|(o, _)| o)
}

#[cfg(test)]
mod param_tests {
    use super::*;

    #[test]
    fn summary_says_why_a_run_stalled_or_was_stopped() {
        let message = "line search found no decrease: lower lr".to_string();
        for (t, want) in [
            (Termination::Stalled { message: message.clone() }, Some(message.as_str())),
            (Termination::Stopped { message: message.clone() }, Some(message.as_str())),
            (Termination::MaxIters, None),
            (Termination::Converged, None),
        ] {
            let mut s = Map::new();
            insert_run_summary(&mut s, 1.0, &t, 1, 0, Map::new());
            assert_eq!(s["termination"], json!(t.name()));
            assert_eq!(s.get("termination_message").and_then(|v| v.as_str()), want, "{}", t.name());
        }
    }

    #[test]
    fn a_setting_of_the_wrong_type_is_named() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"rank": 4, "reg": "abc", "lr": 0.1}"#).expect("valid JSON");
        let keys = crate::solve::sgd::ALGOS[0].keys;
        let e = parse_params::<crate::solve::sgd::Sgd>("sgd", &params, keys).unwrap_err().to_string();
        assert!(e.contains("setting 'reg' = \"abc\""), "{e}");
    }

    #[test]
    fn a_default_rank_too_large_says_it_was_the_default() {
        let r = Ratings::new(1, 1, vec![0], vec![0], vec![5.0]).unwrap();
        let data = Dataset::Ratings(r);
        let e = fit(FitRequest::new("sgd", &data)).map(|_| ()).unwrap_err().to_string();
        assert!(e.ends_with("(the default rank of 'sgd'; set --rank)"), "{e}");
        let e = fit(FitRequest::new("sgd", &data).set("rank", 3)).map(|_| ()).unwrap_err().to_string();
        assert!(!e.contains("default"), "{e}");
    }

    #[test]
    fn a_minimizing_run_that_ends_above_its_start_is_flagged() {
        let rec = |o: f64| Record { objective: Some(o), ..Default::default() };
        let rising = [rec(1759.0), rec(5e3), rec(6.7e5)];
        let w = rising_objective("pgd-nuclear", &rising).expect("flagged");
        assert!(w.contains("1.7590e3") && w.contains("6.7000e5"), "{w}");
        // the advice fits the method: pgd-nuclear's projection, frank-wolfe's oracle
        assert!(w.contains("lower lr") && w.contains("svd_tol"), "{w}");
        let w = rising_objective("frank-wolfe", &rising).expect("flagged");
        assert!(w.contains("power_iters") && !w.contains("lower lr"), "{w}");
        assert!(rising_objective("gd", &rising).expect("flagged").contains("lower lr"));
        assert!(rising_objective("pgd-nuclear", &[rec(3.0), rec(5.0), rec(1.0)]).is_none());
        // the nuclear norm of nuclear-min grows by design
        assert!(rising_objective("nuclear-min", &rising).is_none());
        assert!(rising_objective("gd", &rising[..1]).is_none());
        // from the starting point when the solver reported it: a first step that
        // jumped 1e6-fold is not the baseline
        let mut jumped = vec![rec(6e7), rec(4e4), rec(3e4)];
        jumped[0].values.insert("start_objective".into(), 13.7);
        let w = rising_objective("gd", &jumped).expect("flagged");
        assert!(w.contains("from 1.3700e1"), "{w}");
    }

    #[test]
    fn every_algorithm_validates_its_settings_without_data() {
        for a in algos() {
            (a.validate)(&Map::new()).unwrap_or_else(|e| panic!("{}: defaults rejected: {e}", a.name));
            let mut bad = Map::new();
            bad.insert(a.keys[0].to_string(), Value::String("not a value".into()));
            let e = (a.validate)(&bad).expect_err(a.name).to_string();
            assert!(e.contains(a.keys[0]), "{}: {e}", a.name);
            // the same check as the runner's: a negative rank or rate is refused
            for key in ["rank", "lr"].into_iter().filter(|k| a.keys.contains(k)) {
                let mut neg = Map::new();
                neg.insert(key.to_string(), serde_json::json!(-1.0));
                assert!((a.validate)(&neg).is_err(), "{}: {key} = -1 accepted", a.name);
            }
        }
    }
}
