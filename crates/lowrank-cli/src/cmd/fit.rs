//! `lowrank fit`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use lowrank::observe::JsonlTrace;
use lowrank::solve::EarlyStopping;
use lowrank::solve::registry::{self, FitOutcome, FitRequest};
use lowrank_experiment::{FitPlan, RawConfig};
use serde_json::Value;

use crate::progress::Progress;

/// Arguments of `lowrank fit`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  lowrank fit --data u.data --algo baseline --json
  lowrank fit --data train.tsv --test test.tsv --algo sgd --rank 64 --epochs 20 --threads 2
  lowrank fit --config configs/mat-cmpl/run.toml --set depth=3
  lowrank fit --algo baseline --set problem=planted --set problem_n=100

Settings not listed here go through --set key=value or a config file;
`lowrank algos` lists each algorithm's settings.")]
pub struct FitArgs {
    /// Training data file (any supported format, .gz ok).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Test data file (RMSE/MAE reported; ids matched to the training ids).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Dense ground truth (.npy or dense text) for the relative error over all entries.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// File format (auto detects by name and content).
    #[arg(long)]
    pub format: Option<String>,
    /// How ids become indices: map, zero-based, one-based.
    #[arg(long)]
    pub ids: Option<String>,
    /// Algorithm (`lowrank algos` lists them).
    #[arg(long)]
    pub algo: Option<String>,
    /// Rank (number of factors).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Iterations / epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate (gradient methods).
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Regularization strength.
    #[arg(long, allow_negative_numbers = true)]
    pub reg: Option<f64>,
    /// Random seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Config file(s), merged in order.
    #[arg(long = "config")]
    pub configs: Vec<PathBuf>,
    /// Override a setting: key=value (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// Save the fitted model here (safetensors).
    #[arg(long)]
    pub save_model: Option<PathBuf>,
    /// Write a checkpoint here every --checkpoint-every iterations (default: at most every 30 s, see checkpoint_seconds).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Checkpoint frequency.
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Resume from --checkpoint if it exists.
    #[arg(long)]
    pub resume: bool,
    /// Write one JSON record per iteration to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Stop after this many seconds (checked between iterations: the one
    /// running when the budget runs out finishes, then the run checkpoints).
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// Early stopping: iterations without test RMSE improvement.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the merged config and continue.
    #[arg(long)]
    pub print_config: bool,
}

impl FitArgs {
    /// The layered config: files, then flags, then --set.
    pub fn raw_config(&self) -> anyhow::Result<RawConfig> {
        let mut raw = RawConfig::layered(&self.configs, &[])?;
        let mut put = |k: &str, v: toml::Value| {
            raw.table.insert(k.to_string(), v);
        };
        let s = |p: &PathBuf| toml::Value::String(p.display().to_string());
        if let Some(v) = &self.data {
            put("data", s(v));
        }
        if let Some(v) = &self.test {
            put("test", s(v));
        }
        if let Some(v) = &self.truth {
            put("truth", s(v));
        }
        if let Some(v) = &self.format {
            put("format", toml::Value::String(v.clone()));
        }
        if let Some(v) = &self.ids {
            put("ids", toml::Value::String(v.clone()));
        }
        if let Some(v) = &self.algo {
            put("algo", toml::Value::String(v.clone()));
        }
        if let Some(v) = self.rank {
            put("rank", toml::Value::Integer(v as i64));
        }
        if let Some(v) = self.epochs {
            put("epochs", toml::Value::Integer(v as i64));
        }
        if let Some(v) = self.lr {
            put("lr", toml::Value::Float(v));
        }
        if let Some(v) = self.reg {
            put("reg", toml::Value::Float(v));
        }
        if let Some(v) = self.seed {
            put("seed", toml::Value::Integer(v as i64));
        }
        if let Some(v) = self.threads {
            put("threads", toml::Value::Integer(v as i64));
        }
        if let Some(v) = &self.save_model {
            put("save_model", s(v));
        }
        if let Some(v) = self.checkpoint_every {
            put("checkpoint_every", toml::Value::Integer(v as i64));
        }
        if let Some(v) = self.time_budget {
            put("time_budget", toml::Value::Float(v));
        }
        if let Some(v) = self.patience {
            put("patience", toml::Value::Integer(v as i64));
        }
        for set in &self.sets {
            raw.set(set)?;
        }
        Ok(raw)
    }
}

/// Ctrl-C sets this flag; the executor stops at the next iteration.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        let g = f.clone();
        let _ = ctrlc::set_handler(move || {
            if g.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            // (stderr may be a pipe whose reader is gone: never fail here)
            let _ = writeln!(
                std::io::stderr(),
                "\ninterrupted: finishing the current iteration (interrupt again to abort)"
            );
        });
        f
    })
    .clone()
}

/// Run a resolved plan with optional trace/checkpoint; shared with `run`.
pub fn execute(
    plan: &FitPlan,
    quiet: bool,
    trace: Option<(PathBuf, bool)>,
    checkpoint: Option<(PathBuf, bool)>,
) -> anyhow::Result<FitOutcome> {
    let data = plan.load_data(Progress::loader(quiet))?;
    execute_loaded(plan, data, quiet, trace, checkpoint)
}

/// Data of a plan: (train, test, ground truth).
pub type PlanData = (lowrank::io::Dataset, Option<lowrank::io::Dataset>, Option<faer::Mat<f64>>);

/// [`execute`] with the data already loaded (so a caller can validate
/// everything before creating any output).
pub fn execute_loaded(
    plan: &FitPlan,
    data: PlanData,
    quiet: bool,
    trace: Option<(PathBuf, bool)>,
    checkpoint: Option<(PathBuf, bool)>,
) -> anyhow::Result<FitOutcome> {
    let (train, test, truth) = data;
    let mut req = FitRequest::new(&plan.algo, &train);
    req.params = plan.params.clone();
    req.test = test.as_ref();
    req.truth = truth.as_ref();
    req.epochs = plan.epochs;
    req.seed = plan.seed;
    req.threads = plan.threads;
    req.time_budget = plan.time_budget;
    req.eval_every = plan.eval_every;
    req.interrupt = Some(interrupt_flag());
    if let Some(p) = plan.patience {
        if test.is_none() {
            return Err(lowrank::Error::Config("patience (early stopping) needs a test set (--test)".into()).into());
        }
        req.early_stopping = Some(EarlyStopping { key: "test_rmse".into(), patience: p, min_delta: 0.0 });
    }
    req.observers.push(Box::new(Progress::new(quiet)));
    if let Some(status) = crate::progress::StatusFile::from_env() {
        req.observers.push(Box::new(status));
    }
    if let Some((path, append)) = trace {
        req.observers.push(Box::new(JsonlTrace::create(&path, append)?));
    }
    if let Some((path, resume)) = checkpoint {
        req.checkpoint = Some((path, plan.checkpoint_every));
        // (checked by FitPlan::resolve)
        req.checkpoint_min_interval =
            std::time::Duration::try_from_secs_f64(plan.checkpoint_seconds).unwrap_or(std::time::Duration::MAX);
        req.resume = resume;
    }
    let out = registry::fit(req).map_err(|e| plan.raw.locate(e))?;
    if let Some(w) = out.summary.get("warning").and_then(Value::as_str) {
        eprintln!("warning: {w}");
    }
    if let Some(p) = &plan.save_model {
        super::ensure_parent(p)?;
        out.model.save(p)?;
    }
    Ok(out)
}

/// `lowrank fit`.
pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let raw = args.raw_config()?;
    if args.print_config {
        eprintln!("{}", raw.to_toml());
    }
    let plan = FitPlan::resolve(&raw)?;
    if args.resume && args.checkpoint.is_none() {
        return Err(lowrank::Error::Config("--resume needs --checkpoint PATH".into()).into());
    }
    if args.checkpoint_every.is_some() && args.checkpoint.is_none() {
        return Err(lowrank::Error::Config("--checkpoint-every needs --checkpoint PATH".into()).into());
    }
    // the data files and the config files are all inputs
    let mut inputs: Vec<&std::path::Path> = args.configs.iter().map(PathBuf::as_path).collect();
    if let lowrank_experiment::plan::DataSource::Files { data, test, truth, .. } = &plan.source {
        inputs.extend(std::iter::once(data.as_path()).chain(test.as_deref()).chain(truth.as_deref()));
    }
    let outputs: Vec<(&str, &std::path::Path)> = [
        ("--save-model", plan.save_model.as_deref()),
        ("--trace", args.trace.as_deref()),
        ("--checkpoint", args.checkpoint.as_deref()),
    ]
    .into_iter()
    .filter_map(|(f, p)| Some((f, p?)))
    .collect();
    super::refuse_overwriting_inputs(&inputs, &outputs)?;
    // outputs that cannot be written fail now, not after the work
    super::check_outputs(&outputs)?;
    let trace = args.trace.clone().map(|p| (p, args.resume));
    let checkpoint = args.checkpoint.clone().map(|p| (p, args.resume));
    let out = execute(&plan, args.quiet || args.json, trace, checkpoint)?;
    if args.json {
        println!("{}", serde_json::to_string(&Value::Object(out.summary))?);
    } else {
        print_summary(&out.summary);
    }
    exit_if_interrupted(&out.termination);
    Ok(())
}

/// A run stopped by Ctrl-C exits 130 (after its outputs and checkpoint are
/// saved), so that `lowrank fit ... && next-step` does not go on with a
/// partial model.
pub fn exit_if_interrupted(t: &lowrank::solve::Termination) {
    if *t == lowrank::solve::Termination::Interrupted {
        let _ = std::io::stdout().flush();
        std::process::exit(130);
    }
}

/// Human-readable summary.
pub fn print_summary(s: &serde_json::Map<String, Value>) {
    for (k, v) in s {
        if k == "params" {
            continue;
        }
        let shown = match v {
            Value::Number(n) if n.is_f64() => format!("{:.6}", n.as_f64().unwrap_or(f64::NAN)),
            Value::Null => "-".into(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!("{k:<16} {shown}");
    }
}
