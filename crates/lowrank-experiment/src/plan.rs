//! A validated fit plan: a [`RawConfig`] resolved into data to load (or a
//! synthetic problem to generate), run settings and algorithm settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use faer::Mat;
use lowrank::data::synth;
use lowrank::io::{self, Dataset, Format, IdMode, ReadOptions};
use lowrank::solve::registry::{self, did_you_mean};
use lowrank::{Error, Result};
use serde_json::{Map, Value as Json};
use toml::Value;

use crate::config::{RawConfig, toml_to_json};

/// Keys that configure the run rather than the algorithm.
pub const RUN_KEYS: &[&str] = &[
    "algo",
    "data",
    "test",
    "truth",
    "format",
    "ids",
    "epochs",
    "seed",
    "threads",
    "save_model",
    "checkpoint_every",
    "checkpoint_seconds",
    "time_budget",
    "patience",
    "eval_every",
    "problem",
    "problem_n",
    "problem_m",
    "problem_rank",
    "problem_observed",
    "problem_density",
    "problem_seed",
    "problem_noise",
    "problem_users",
    "problem_items",
    "problem_count",
    "problem_skew",
    "problem_stars",
    "problem_test_fraction",
    "problem_dims",
    "name",
];

/// Where the data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// Files.
    Files {
        /// Training data.
        data: PathBuf,
        /// Optional test data.
        test: Option<PathBuf>,
        /// Optional dense ground truth (`.npy` or any dense format).
        truth: Option<PathBuf>,
        /// Format of the files.
        format: Format,
        /// Id handling.
        ids: IdMode,
    },
    /// A synthetic problem generated from the config.
    Problem(Map<String, Json>),
}

/// A resolved fit.
#[derive(Clone, Debug)]
pub struct FitPlan {
    /// Algorithm name (validated against the registry).
    pub algo: String,
    /// Data source.
    pub source: DataSource,
    /// Iterations; the algorithm's default when `None`.
    pub epochs: Option<usize>,
    /// Seed.
    pub seed: u64,
    /// Threads (0 = all cores).
    pub threads: usize,
    /// Where to save the model.
    pub save_model: Option<PathBuf>,
    /// Checkpoint frequency (iterations) when a checkpoint path is given.
    pub checkpoint_every: usize,
    /// Least time between two scheduled checkpoints (seconds; default 30,
    /// or 0 when `checkpoint_every` is set: then exactly every
    /// `checkpoint_every` iterations). The last iteration and a
    /// stop (Ctrl-C, time budget) are always checkpointed.
    pub checkpoint_seconds: f64,
    /// Time budget.
    pub time_budget: Option<Duration>,
    /// Early-stopping patience on `test_rmse` (needs a test set).
    pub patience: Option<usize>,
    /// Evaluate the test set every this many iterations.
    pub eval_every: usize,
    /// The algorithm's settings.
    pub params: Map<String, Json>,
    /// The merged config the plan came from.
    pub raw: RawConfig,
}

fn as_usize(v: &Value, key: &str) -> Result<usize> {
    match v {
        Value::Integer(i) if *i >= 0 => Ok(*i as usize),
        Value::Float(f) if *f >= 0.0 && f.fract() == 0.0 => Ok(*f as usize),
        _ => Err(Error::Config(format!("'{key}' must be a non-negative integer, got {v}"))),
    }
}

fn as_f64(v: &Value, key: &str) -> Result<f64> {
    match v {
        Value::Integer(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        _ => Err(Error::Config(format!("'{key}' must be a number, got {v}"))),
    }
}

fn as_string(v: &Value, key: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(_) | Value::Float(_) | Value::Boolean(_) => Ok(v.to_string()),
        _ => Err(Error::Config(format!("'{key}' must be a string, got {v}"))),
    }
}

impl FitPlan {
    /// Validate a raw config: known algorithm, well-typed run keys, and
    /// algorithm settings the algorithm knows (checked again, fully, by the
    /// algorithm itself before any work).
    pub fn resolve(raw: &RawConfig) -> Result<FitPlan> {
        let t = &raw.table;
        let algo = match t.get("algo") {
            Some(v) => as_string(v, "algo")?,
            None => return Err(Error::Config("no algorithm given: set 'algo' (e.g. --algo sgd)".into())),
        };
        let entry = registry::find(&algo)?;
        let mut params = Map::new();
        for (k, v) in t {
            if RUN_KEYS.contains(&k.as_str()) {
                continue;
            }
            if !entry.keys.contains(&k.as_str()) {
                let mut all: Vec<&str> = RUN_KEYS.to_vec();
                all.extend_from_slice(entry.keys);
                return Err(Error::Config(format!(
                    "unknown key '{k}'{} for algorithm '{algo}'{}; '{algo}' settings: {}",
                    raw.from(k),
                    did_you_mean(k, &all),
                    entry.keys.join(", ")
                )));
            }
            if let toml::Value::Float(f) = v
                && !f.is_finite()
            {
                return Err(Error::Config(format!(
                    "'{k}' = {f}{} for algorithm '{algo}': settings must be finite numbers",
                    raw.from(k)
                )));
            }
            params.insert(k.clone(), toml_to_json(v));
        }
        // the settings' types and ranges, before any data is read or run started
        (entry.validate)(&params).map_err(|e| raw.locate(e))?;
        let get_usize = |k: &str| t.get(k).map(|v| as_usize(v, k)).transpose();
        let format = match t.get("format") {
            Some(v) => Format::parse(&as_string(v, "format")?)?,
            None => Format::Auto,
        };
        let ids = match t.get("ids").map(|v| as_string(v, "ids")).transpose()?.as_deref() {
            None | Some("map") => IdMode::Map,
            Some("zero-based" | "0") => IdMode::ZeroBased,
            Some("one-based" | "1") => IdMode::OneBased,
            Some(o) => return Err(Error::Config(format!("'ids' must be map, zero-based or one-based, got '{o}'"))),
        };
        let path =
            |k: &str| -> Result<Option<PathBuf>> { t.get(k).map(|v| as_string(v, k).map(PathBuf::from)).transpose() };
        let source = match (path("data")?, t.get("problem")) {
            (Some(_), Some(_)) => return Err(Error::Config("give either 'data' or 'problem', not both".into())),
            (Some(data), None) => {
                // a problem's settings without the problem would be silently unused
                if let Some(k) = t.keys().find(|k| k.starts_with("problem_")) {
                    return Err(Error::Config(format!(
                        "'{k}'{} sets up a generated 'problem', but the data come from the file '{}'; \
                         remove it (or set 'problem' instead of 'data')",
                        raw.from(k),
                        data.display()
                    )));
                }
                DataSource::Files { data, test: path("test")?, truth: path("truth")?, format, ids }
            }
            (None, Some(_)) => {
                // a generated problem brings its own test set and truth
                if let Some(k) = ["test", "truth"].into_iter().find(|k| t.contains_key(*k)) {
                    return Err(Error::Config(format!(
                        "'{k}'{} goes with 'data' files, not with a generated 'problem' (which makes its own)",
                        raw.from(k)
                    )));
                }
                let mut m = Map::new();
                for (k, v) in t.iter().filter(|(k, _)| k.starts_with("problem")) {
                    m.insert(k.clone(), toml_to_json(v));
                }
                DataSource::Problem(m)
            }
            (None, None) => return Err(Error::Config(
                "no data: set 'data' (a file) or 'problem' (planted, checkerboard, ratings, cp, lab, lab-masked, blog)"
                    .into(),
            )),
        };
        let seed = get_usize("seed")?.unwrap_or(0) as u64;
        let time_budget = t.get("time_budget").map(|v| as_f64(v, "time_budget")).transpose()?;
        // (at most ~584 years: what a Duration holds)
        let seconds = |s: f64| Duration::try_from_secs_f64(s).ok();
        if time_budget.is_some_and(|s| s <= 0.0 || seconds(s).is_none()) {
            return Err(Error::Config(format!(
                "'time_budget' must be a positive number of seconds below 1.8e19, got {}",
                time_budget.unwrap_or_default()
            )));
        }
        let checkpoint_seconds = t
            .get("checkpoint_seconds")
            .map(|v| as_f64(v, "checkpoint_seconds"))
            .transpose()?
            .unwrap_or(if t.contains_key("checkpoint_every") { 0.0 } else { 30.0 });
        if checkpoint_seconds < 0.0 || seconds(checkpoint_seconds).is_none() {
            return Err(Error::Config(format!(
                "'checkpoint_seconds' must be a number of seconds >= 0 and below 1.8e19, got {checkpoint_seconds}"
            )));
        }
        let epochs = get_usize("epochs")?;
        if epochs == Some(0) {
            return Err(Error::InvalidInput("epochs must be at least 1".into()));
        }
        Ok(FitPlan {
            algo,
            source,
            epochs,
            seed,
            threads: get_usize("threads")?.unwrap_or(0),
            save_model: path("save_model")?,
            checkpoint_every: get_usize("checkpoint_every")?.unwrap_or(1).max(1),
            checkpoint_seconds,
            time_budget: time_budget.and_then(seconds),
            patience: get_usize("patience")?,
            eval_every: get_usize("eval_every")?.unwrap_or(1).max(1),
            params,
            raw: raw.clone(),
        })
    }

    /// Load or generate the data: (train, test, ground truth).
    pub fn load_data(
        &self,
        progress: Option<std::sync::Arc<dyn Fn(u64) + Send + Sync>>,
    ) -> Result<(Dataset, Option<Dataset>, Option<Mat<f64>>)> {
        match &self.source {
            DataSource::Files { data, test, truth, format, ids } => {
                let opts = ReadOptions { format: *format, ids: *ids, progress, ..Default::default() };
                let train = io::load(data, &opts)?;
                let test_file = test.clone();
                let test =
                    test.as_ref().map(|p| io::load(p, &ReadOptions { progress: None, ..opts.clone() })).transpose()?;
                // cp-als is the one algorithm that fits 3-way tensors (it
                // explains itself what it needs when given a matrix)
                if self.algo != "cp-als" {
                    let files = std::iter::once((data.as_path(), &train));
                    for (path, d) in files.chain(test.as_ref().map(|t| (test_path(&test_file), t))) {
                        if matches!(d, Dataset::Tensor(_)) {
                            return Err(Error::parse(
                                path,
                                0,
                                format!(
                                    "the file holds a 3-way tensor, but '{}' fits matrices (cp-als fits tensors)",
                                    self.algo
                                ),
                            ));
                        }
                    }
                }
                // nmf's one requirement on the values, reported with the file's name
                if self.algo == "nmf"
                    && let Some(why) = lowrank::solve::spectral::nmf::negative_values(&train)
                {
                    return Err(Error::parse(data, 0, why));
                }
                let mut train = train;
                let truth = match truth {
                    None => None,
                    Some(p) => {
                        let t = io::read_truth(p, &ReadOptions::default())?;
                        // with positional ids the data's shape is only its largest
                        // index: a truth at least as large declares the full shape
                        // (a planted problem whose last rows or columns were not sampled)
                        let base = match ids {
                            IdMode::ZeroBased => Some(0),
                            IdMode::OneBased => Some(1),
                            IdMode::Map => None,
                        };
                        if let (Some(base), Dataset::Ratings(r)) = (base, &train)
                            && t.nrows() >= r.nrows()
                            && t.ncols() >= r.ncols()
                            && (t.nrows(), t.ncols()) != (r.nrows(), r.ncols())
                        {
                            let wider = lowrank::Ratings::with_ids(
                                r.rows().to_vec(),
                                r.cols().to_vec(),
                                r.values().to_vec(),
                                lowrank::IdMap::offset(t.nrows(), base),
                                lowrank::IdMap::offset(t.ncols(), base),
                            )?;
                            train = Dataset::Ratings(wider);
                        }
                        if let Some((m, n)) = train.matrix_shape()
                            && (t.nrows(), t.ncols()) != (m, n)
                        {
                            return Err(Error::parse(
                                p,
                                0,
                                format!("the ground truth is {}x{} but the data is {m}x{n}", t.nrows(), t.ncols()),
                            ));
                        }
                        Some(t)
                    }
                };
                Ok((train, test, truth))
            }
            DataSource::Problem(m) => generate_problem(m),
        }
    }
}

fn test_path(p: &Option<PathBuf>) -> &Path {
    p.as_deref().unwrap_or(Path::new("test"))
}

fn num(m: &Map<String, Json>, k: &str, default: f64) -> Result<f64> {
    match m.get(k) {
        None => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| Error::Config(format!("'{k}' must be a number, got {v}"))),
    }
}

fn int(m: &Map<String, Json>, k: &str, default: usize) -> Result<usize> {
    let v = num(m, k, default as f64)?;
    if v < 0.0 || v.fract() != 0.0 {
        return Err(Error::Config(format!("'{k}' must be a non-negative integer, got {v}")));
    }
    Ok(v as usize)
}

/// Generate the synthetic problem described by `problem*` keys.
pub fn generate_problem(m: &Map<String, Json>) -> Result<(Dataset, Option<Dataset>, Option<Mat<f64>>)> {
    let kind = m.get("problem").and_then(Json::as_str).unwrap_or("");
    // the keys each problem reads: any other problem_* key would be ignored
    let keys: &[&str] = match kind {
        "planted" | "completion" => &["n", "m", "rank", "observed", "seed"],
        "checkerboard" => &["m", "n", "density", "seed"],
        "ratings" => &["users", "items", "count", "rank", "noise", "stars", "skew", "test_fraction", "seed"],
        "cp" | "tensor" => &["dims", "rank", "noise", "seed"],
        "lab" | "lab-masked" | "blog" => &[],
        other => {
            return Err(Error::Config(format!(
                "unknown problem '{other}' (planted, checkerboard, ratings, cp, lab, lab-masked, blog)"
            )));
        }
    };
    for k in m.keys().filter_map(|k| k.strip_prefix("problem_")) {
        if !keys.contains(&k) {
            let known: Vec<String> = keys.iter().map(|k| format!("problem_{k}")).collect();
            return Err(Error::Config(format!(
                "'problem_{k}' does not apply to problem '{kind}' (its settings: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
    }
    let seed = int(m, "problem_seed", 0)? as u64;
    match kind {
        "planted" | "completion" => {
            let n = int(m, "problem_n", 100)?;
            let rows = int(m, "problem_m", n)?;
            let p = synth::planted_completion_rect(
                rows,
                n,
                int(m, "problem_rank", 5)?,
                int(m, "problem_observed", 2000)?,
                seed,
            )?;
            Ok((Dataset::Ratings(p.observed), None, Some(p.truth)))
        }
        "checkerboard" => {
            let a = synth::checkerboard(int(m, "problem_m", 40)?, int(m, "problem_n", 70)?);
            let obs = synth::subsample(&a, num(m, "problem_density", 0.25)?, seed)?;
            Ok((Dataset::Ratings(obs), None, Some(a)))
        }
        "ratings" => {
            let spec = synth::RatingsSpec {
                users: int(m, "problem_users", 2000)?,
                items: int(m, "problem_items", 500)?,
                count: int(m, "problem_count", 100_000)?,
                rank: int(m, "problem_rank", 16)?,
                noise: num(m, "problem_noise", 0.1)?,
                stars: match m.get("problem_stars") {
                    None => false,
                    Some(Json::Bool(b)) => *b,
                    Some(v) => return Err(Error::Config(format!("'problem_stars' must be true or false, got {v}"))),
                },
                skew: num(m, "problem_skew", 0.0)?,
                seed,
            };
            let all = synth::ratings_like(&spec)?;
            let (train, test) = lowrank::data::split::holdout(&all, num(m, "problem_test_fraction", 0.1)?, seed)?;
            Ok((Dataset::Ratings(train), Some(Dataset::Ratings(test)), None))
        }
        "cp" | "tensor" => {
            let d = int(m, "problem_dims", 30)?;
            let (t, _, _) =
                synth::random_cp([d, d, d], int(m, "problem_rank", 20)?, num(m, "problem_noise", 1e-5)?, seed)?;
            Ok((Dataset::Tensor(t), None, None))
        }
        "lab" => Ok((Dataset::Dense(synth::lab_matrix()), None, Some(synth::lab_matrix()))),
        "lab-masked" => Ok((Dataset::Dense(synth::lab_matrix_masked()), None, Some(synth::lab_matrix()))),
        "blog" => Ok((Dataset::Dense(synth::blog_matrix()), None, None)),
        other => Err(Error::Config(format!(
            "unknown problem '{other}' (planted, checkerboard, ratings, cp, lab, lab-masked, blog)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(sets: &[&str]) -> RawConfig {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RawConfig::layered(&[] as &[&str], &sets).unwrap()
    }

    #[test]
    fn resolve_and_reject() {
        let p = FitPlan::resolve(&raw(&[
            "algo=baseline",
            "problem=planted",
            "problem_n=20",
            "problem_observed=100",
            "reg_user=3",
        ]))
        .unwrap();
        assert_eq!(p.params["reg_user"], serde_json::json!(3));
        let (train, _, truth) = p.load_data(None).unwrap();
        assert!(matches!(train, Dataset::Ratings(ref r) if r.len() == 100));
        assert_eq!(truth.unwrap().nrows(), 20);
        let e = FitPlan::resolve(&raw(&["algo=baseline", "problem=planted", "reg_usr=3"])).unwrap_err().to_string();
        assert!(e.contains("did you mean 'reg_user'"), "{e}");
        assert!(FitPlan::resolve(&raw(&["algo=nope", "problem=planted"])).is_err());
        assert!(FitPlan::resolve(&raw(&["algo=baseline"])).is_err());
        assert!(FitPlan::resolve(&raw(&["algo=baseline", "problem=planted", "epochs=0"])).is_err());
        assert!(FitPlan::resolve(&raw(&["algo=baseline", "problem=planted", "epochs=\"x\""])).is_err());
        // beyond what a Duration holds: an error, not a panic
        for set in ["time_budget=1e300", "checkpoint_seconds=2e19"] {
            let e = FitPlan::resolve(&raw(&["algo=baseline", "problem=planted", set])).unwrap_err().to_string();
            assert!(e.contains("below 1.8e19"), "{e}");
        }
        // problem settings that would be ignored or misread
        let load =
            |sets: &[&str]| FitPlan::resolve(&raw(sets)).unwrap().load_data(None).map(|_| ()).unwrap_err().to_string();
        let e = load(&["algo=baseline", "problem=ratings", "problem_n=7"]);
        assert!(e.contains("'problem_n' does not apply to problem 'ratings'") && e.contains("problem_users"), "{e}");
        let e = load(&["algo=baseline", "problem=ratings", "problem_stars=yes"]);
        assert!(e.contains("'problem_stars' must be true or false"), "{e}");
        let e = load(&["algo=baseline", "problem=lab", "problem_seed=3"]);
        assert!(e.contains("its settings: none"), "{e}");
        // a problem's settings next to a data file would be silently unused
        let e = FitPlan::resolve(&raw(&["algo=baseline", "data=\"r.tsv\"", "problem_n=50"])).unwrap_err().to_string();
        assert!(e.contains("'problem_n' (from --set) sets up a generated 'problem'") && e.contains("r.tsv"), "{e}");
    }
}
