//! `lowrank run`: one experiment in a numbered run directory.

use std::path::{Path, PathBuf};

use clap::Args;
use lowrank::io::atomic_write;
use lowrank_experiment::{FitPlan, RawConfig};
use serde_json::Value;

/// Arguments of `lowrank run`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  lowrank run --config configs/mat-cmpl/run.toml --config configs/mat-cmpl/2000.toml \\
              --config configs/opt/grouprmsprop.toml --set depth=3 --log-dir logs
  lowrank run --resume logs/7            # continue an interrupted run
Each run gets the next free number in the log dir and writes config.toml, trace.jsonl,
summary.json, model.safetensors, log.txt (and checkpoint.bin while it runs).")]
pub struct RunArgs {
    /// Config file(s), merged in order.
    #[arg(long = "config")]
    pub configs: Vec<PathBuf>,
    /// Override a setting: key=value (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// Directory holding the numbered runs.
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,
    /// Print the merged config (stderr) and continue.
    #[arg(long)]
    pub print_config: bool,
    /// Continue the interrupted run in this directory.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Create the next free numbered directory in `log_dir` (safe when several
/// runs start at once: `create_dir` fails for all but one of them).
pub fn allocate_run_dir(log_dir: &Path) -> anyhow::Result<PathBuf> {
    super::ensure_dir(log_dir)?;
    let mut next = std::fs::read_dir(log_dir)
        .map_err(|e| lowrank::Error::io(log_dir, e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .map_or(0, |m| m + 1);
    loop {
        let d = log_dir.join(next.to_string());
        match std::fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
            Err(e) => return Err(lowrank::Error::io(&d, e).into()),
        }
    }
}

/// How the run in `dir` ended, when it finished (a `summary.json` whose
/// termination is not `interrupted`); `None` for a run that can resume.
pub fn finished_termination(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let t = v.get("termination").and_then(Value::as_str).unwrap_or("finished").to_string();
    (t != "interrupted").then_some(t)
}

/// `lowrank run`.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let (raw, dir, resuming) = match &a.resume {
        Some(d) => {
            if !a.configs.is_empty() || !a.sets.is_empty() {
                return Err(lowrank::Error::invalid(
                    "--resume continues a run with its own config.toml; --config and --set cannot change it \
                     (start a new run instead)",
                )
                .into());
            }
            let cfg = d.join("config.toml");
            if !cfg.exists() {
                return Err(lowrank::Error::invalid(format!(
                    "{} is not a run directory (no config.toml)",
                    d.display()
                ))
                .into());
            }
            if let Some(t) = finished_termination(d) {
                return Err(lowrank::Error::invalid(format!(
                    "run {} already finished ({t}; see its summary.json): start a new run to fit again",
                    d.display()
                ))
                .into());
            }
            let mut raw = RawConfig::default();
            raw.merge_file(&cfg)?;
            (raw, d.clone(), true)
        }
        None => (RawConfig::layered(&a.configs, &a.sets)?, PathBuf::new(), false),
    };
    if a.print_config {
        eprintln!("{}", raw.to_toml());
    }
    refuse_save_model(&raw)?;
    let mut plan = FitPlan::resolve(&raw)?;
    // everything is validated and loaded before any output is created
    let data = plan.load_data(crate::progress::Progress::loader(a.quiet || a.json))?;
    let dir = if resuming { dir } else { allocate_run_dir(&a.log_dir)? };
    if !resuming {
        let text = raw.to_toml();
        atomic_write(&dir.join("config.toml"), |w| w.write_all(text.as_bytes()))?;
    }
    plan.save_model = Some(dir.join("model.safetensors"));
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let out = super::fit::execute_loaded(
        &plan,
        data,
        a.quiet || a.json,
        Some((dir.join("trace.jsonl"), resuming)),
        Some((dir.join("checkpoint.bin"), resuming)),
    );
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = atomic_write(&dir.join("error.txt"), |w| writeln!(w, "{msg}"));
            return Err(e);
        }
    };
    // an interrupted run keeps its checkpoint for `run --resume`
    if out.termination != lowrank::solve::Termination::Interrupted {
        let _ = std::fs::remove_file(dir.join("checkpoint.bin"));
    }
    let mut summary = out.summary.clone();
    summary.insert("run_dir".into(), Value::String(dir.display().to_string()));
    let text = serde_json::to_string_pretty(&Value::Object(summary.clone()))?;
    atomic_write(&dir.join("summary.json"), |w| writeln!(w, "{text}"))?;
    let log: Vec<String> =
        summary.iter().filter(|(k, _)| k.as_str() != "params").map(|(k, v)| format!("{k} = {v}")).collect();
    atomic_write(&dir.join("log.txt"), |w| {
        writeln!(w, "started (unix seconds) = {started}")?;
        writeln!(w, "{}", log.join("\n"))
    })?;
    if a.json {
        println!("{}", serde_json::to_string(&Value::Object(summary))?);
    } else {
        eprintln!("run directory: {}", dir.display());
        super::fit::print_summary(&summary);
    }
    super::fit::exit_if_interrupted(&out.termination);
    Ok(())
}

/// A run writes its model in its directory: a `save_model` it would ignore
/// is an error (for `run` and, before any run starts, `sweep`).
pub fn refuse_save_model(raw: &RawConfig) -> lowrank::Result<()> {
    if raw.table.contains_key("save_model") {
        return Err(lowrank::Error::Config(format!(
            "save_model{} applies to `lowrank fit`; a run writes its model to RUN_DIR/model.safetensors",
            raw.from("save_model")
        )));
    }
    Ok(())
}
