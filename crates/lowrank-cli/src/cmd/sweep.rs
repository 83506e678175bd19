//! `lowrank sweep`: a grid of runs, N at a time, with a results table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use clap::Args;
use lowrank::io::atomic_write;
use lowrank_experiment::{FitPlan, RawConfig};

/// Arguments of `lowrank sweep`.
#[derive(Args, Debug)]
#[command(after_help = "Example (the research code's matrix-completion sweep):
  lowrank sweep --config configs/mat-cmpl/run.toml --config configs/opt/grouprmsprop.toml \\
      --grid problem_observed=2000,5000 --grid depth=2,3,4 --grid init_scale=1e-3,1e-4,1e-5,1e-6 \\
      --grid lr=0.001,0.0003 --jobs 2 --name mat-cmpl
Runs go to LOG_DIR/NAME/<number>; finished runs (same resolved config) are skipped on restart;
results.csv and results.md in LOG_DIR/NAME hold the final metrics.")]
pub struct SweepArgs {
    /// Base config file(s), merged in order.
    #[arg(long = "config")]
    pub configs: Vec<PathBuf>,
    /// Fixed overrides for every run: key=value.
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// A grid axis: key=v1,v2,... (repeatable; the runs are the cartesian product).
    #[arg(long = "grid")]
    pub grids: Vec<String>,
    /// Repeat every grid point with seeds 0..N.
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Runs at the same time.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Sweep name (directory under the log dir).
    #[arg(long)]
    pub name: String,
    /// Log directory.
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,
}

struct Point {
    sets: Vec<String>,
    label: BTreeMap<String, String>,
    raw: RawConfig,
}

/// The runs under `dir` that finished, and those that were interrupted with
/// a checkpoint to resume from, with their merged configs.
fn earlier_runs(dir: &Path) -> (Vec<(PathBuf, RawConfig)>, Vec<(PathBuf, RawConfig)>) {
    let (mut finished, mut resumable) = (Vec::new(), Vec::new());
    let Ok(rd) = std::fs::read_dir(dir) else { return (finished, resumable) };
    let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    dirs.sort();
    for p in dirs {
        let mut raw = RawConfig::default();
        if raw.merge_file(&p.join("config.toml")).is_err() {
            continue;
        }
        if super::run::finished_termination(&p).is_some() {
            finished.push((p, raw));
        } else if p.join("checkpoint.bin").exists() {
            resumable.push((p, raw));
        }
    }
    (finished, resumable)
}

/// `lowrank sweep`.
pub fn run(a: SweepArgs) -> anyhow::Result<()> {
    if a.jobs == 0 {
        return Err(lowrank::Error::invalid("--jobs must be at least 1").into());
    }
    if a.seeds == Some(0) {
        return Err(lowrank::Error::invalid(
            "--seeds must be at least 1 (it repeats every grid point with seeds 0..N)",
        )
        .into());
    }
    // the sweep's directory is one name under the log dir
    let plain = std::path::Path::new(&a.name).components().count() == 1
        && !a.name.is_empty()
        && a.name != "."
        && a.name != ".."
        && !a.name.contains(['/', '\\']);
    if !plain {
        return Err(lowrank::Error::invalid(format!(
            "--name '{}' must be a plain name (no '/', '..' or '.'): it names a directory under the log dir",
            a.name
        ))
        .into());
    }
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    for g in &a.grids {
        let (k, vs) = g
            .split_once('=')
            .ok_or_else(|| lowrank::Error::Config(format!("--grid expects key=v1,v2,..., got '{g}'")))?;
        let vals: Vec<String> = vs.split(',').map(|v| v.trim().to_string()).collect();
        if k.trim().is_empty() || vals.iter().any(String::is_empty) {
            return Err(
                lowrank::Error::Config(format!("--grid expects key=v1,v2,... with no empty value, got '{g}'")).into()
            );
        }
        let k = k.trim().replace('-', "_");
        if axes.iter().any(|(a, _)| *a == k) || (k == "seed" && a.seeds.is_some()) {
            return Err(lowrank::Error::Config(format!(
                "--grid {k} is given twice (or with --seeds): list all its values in one --grid"
            ))
            .into());
        }
        axes.push((k, vals));
    }
    if let Some(n) = a.seeds {
        axes.push(("seed".into(), (0..n).map(|s| s.to_string()).collect()));
    }
    // a --set of a grid's key would silently lose to the grid
    for set in &a.sets {
        let key = set.split_once('=').map_or(set.as_str(), |(k, _)| k).trim().replace('-', "_");
        if axes.iter().any(|(k, _)| *k == key) {
            let by = if key == "seed" && a.seeds.is_some() { "--seeds" } else { "--grid" };
            return Err(lowrank::Error::Config(format!(
                "--set {key}=... and {by} both give '{key}' (the grid's values would win): drop one"
            ))
            .into());
        }
    }
    // cartesian product
    let mut combos: Vec<Vec<(String, String)>> = vec![vec![]];
    for (k, vals) in &axes {
        combos = combos
            .iter()
            .flat_map(|c| {
                vals.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((k.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let threads_each = (std::thread::available_parallelism().map_or(1, |n| n.get()) / a.jobs).max(1);
    // resolve every point before running anything
    let mut points = Vec::new();
    for c in &combos {
        let mut sets = a.sets.clone();
        sets.extend(c.iter().map(|(k, v)| format!("{k}={v}")));
        let mut raw = RawConfig::layered(&a.configs, &sets)?;
        // (the grid's values travel as --set overrides: errors name --grid)
        for (k, _) in c {
            raw.origin.insert(k.replace('-', "_"), "--grid".into());
        }
        super::run::refuse_save_model(&raw)?;
        if !raw.table.contains_key("threads") {
            raw.table.insert("threads".into(), toml::Value::Integer(threads_each as i64));
            sets.push(format!("threads={threads_each}"));
        }
        FitPlan::resolve(&raw)?;
        points.push(Point { sets, label: c.iter().cloned().collect(), raw });
    }
    let dir = a.log_dir.join(&a.name);
    super::ensure_dir(&dir)?;
    // one sweep at a time per directory: a second one would not see the
    // first one's points (not finished yet) and run each again
    let busy = |pid: u32| {
        format!(
            "sweep '{}' in {} is being run by another process ({pid}); wait for it to end (then run the same \
             command to start what is left), or give this sweep another --name",
            a.name,
            a.log_dir.display()
        )
    };
    let _lock = lowrank::solve::ProcessLock::acquire(&dir.join("sweep.lock"), &busy)?;
    let (done, resumable) = earlier_runs(&dir);
    let same = |runs: &[(PathBuf, RawConfig)], p: &Point| {
        runs.iter().find(|(_, r)| r.table == p.raw.table).map(|(d, _)| d.clone())
    };
    let mut run_of: Vec<Option<PathBuf>> = points.iter().map(|p| same(&done, p)).collect();
    // an interrupted run of a point continues from its checkpoint
    let resume_of: Vec<Option<PathBuf>> = points.iter().map(|p| same(&resumable, p)).collect();
    let skipped = run_of.iter().filter(|r| r.is_some()).count();
    let total = points.len();
    let exe = std::env::current_exe()?;
    let resumed = (0..total).filter(|&i| run_of[i].is_none() && resume_of[i].is_some()).count();
    // the threads the runs use: the config's when it sets them, else the share of the cores
    let mut per_run: Vec<i64> = points.iter().filter_map(|p| p.raw.table.get("threads")?.as_integer()).collect();
    per_run.dedup();
    let threads = match per_run.as_slice() {
        [t] => format!("{t} thread(s) each"),
        _ => "threads as each run's config says".to_string(),
    };
    eprintln!(
        "sweep '{}': {total} runs ({skipped} already finished, {resumed} to resume), {} at a time, {threads}",
        a.name, a.jobs
    );
    let mut queue: Vec<usize> = (0..total).filter(|&i| run_of[i].is_none()).collect();
    queue.reverse();
    let status_dir = dir.join(".status");
    super::ensure_dir(&status_dir)?;
    let mut status: Vec<RunStatus> =
        run_of.iter().map(|r| if r.is_some() { RunStatus::Skipped } else { RunStatus::Queued }).collect();
    let mut table = LiveTable::new(&a.name, a.jobs);
    let started = std::time::Instant::now();
    let mut active: Vec<(usize, Child)> = Vec::new();
    let mut failed = 0usize;
    // failures that were the settings' fault (exit 2), and the first message
    let mut failed_on_input = 0usize;
    let mut first_failure: Option<String> = None;
    let mut finished = skipped;
    // Ctrl-C: no new runs; the running ones (same process group) checkpoint
    // and stop, and the next sweep resumes them
    let interrupted = super::fit::interrupt_flag();
    let stopping = || interrupted.load(std::sync::atomic::Ordering::Relaxed);
    while (!queue.is_empty() && !stopping()) || !active.is_empty() {
        while active.len() < a.jobs && !stopping() {
            let Some(i) = queue.pop() else { break };
            let mut cmd = Command::new(&exe);
            cmd.arg("run").arg("--json").arg("--quiet");
            if let Some(d) = &resume_of[i] {
                cmd.arg("--resume").arg(d);
            } else {
                cmd.arg("--log-dir").arg(&dir);
                for c in &a.configs {
                    cmd.arg("--config").arg(c);
                }
                for s in &points[i].sets {
                    cmd.arg("--set").arg(s);
                }
            }
            let sf = status_dir.join(format!("{i}.json"));
            let _ = std::fs::remove_file(&sf);
            cmd.env(crate::progress::STATUS_FILE_ENV, &sf);
            let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
            status[i] = RunStatus::Running(std::time::Instant::now());
            active.push((i, child));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut k = 0;
        while k < active.len() {
            if active[k].1.try_wait()?.is_some() {
                let (i, child) = active.swap_remove(k);
                let out = child.wait_with_output()?;
                finished += 1;
                let label: Vec<String> = points[i].label.iter().map(|(k, v)| format!("{k}={v}")).collect();
                // an interrupted run exits 130 after saving its summary and checkpoint
                let run_stopped = out.status.code() == Some(130);
                if out.status.success() || run_stopped {
                    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                    run_of[i] = v["run_dir"].as_str().map(PathBuf::from);
                    let metric = ["rel_error", "test_rmse", "train_rmse"]
                        .iter()
                        .find_map(|m| v[m].as_f64().map(|x| format!("{m} {x:.4e}")))
                        .unwrap_or_default();
                    // an interrupted run (Ctrl-C) keeps its checkpoint: the next sweep resumes it
                    let word = if run_stopped || v["termination"] == "interrupted" { "stopped" } else { "done  " };
                    table.println(&format!("[{finished}/{total}] {word} {} -> {metric}", label.join(" ")));
                    status[i] =
                        RunStatus::Done(if word == "stopped" { format!("interrupted, {metric}") } else { metric });
                } else {
                    failed += 1;
                    failed_on_input += (out.status.code() == Some(2)) as usize;
                    let err = String::from_utf8_lossy(&out.stderr);
                    let first = err.lines().next().unwrap_or("").to_string();
                    first_failure.get_or_insert_with(|| format!("{}: {first}", label.join(" ")));
                    table.println(&format!("[{finished}/{total}] FAILED {}: {first}", label.join(" ")));
                    status[i] = RunStatus::Failed(first);
                }
            } else {
                k += 1;
            }
        }
        let rows = status_rows(&points, &status, &status_dir);
        table.update(finished, total, failed, started.elapsed(), &rows);
        // the same table as a file, for a sweep watched from elsewhere
        let _ = write_status(&dir, &a.name, finished, total, failed, started.elapsed(), &rows);
    }
    table.finish();
    let _ = std::fs::remove_dir_all(&status_dir);
    let failed_points: Vec<bool> = status.iter().map(|s| matches!(s, RunStatus::Failed(_))).collect();
    write_results(&dir, &axes, &points, &run_of, &failed_points)?;
    eprintln!("results: {}/results.csv and results.md", dir.display());
    if stopping() {
        eprintln!("sweep interrupted: run the same command again to resume the stopped runs and start the rest");
        std::process::exit(130);
    }
    let first = first_failure.unwrap_or_default();
    if failed > 0 && failed_on_input == failed {
        // every failure was a bad setting or input: a usage error (exit 2)
        return Err(lowrank::Error::Config(format!(
            "{failed} of {total} runs failed on their settings; first: {first}"
        ))
        .into());
    }
    if failed > 0 {
        return Err(lowrank::Error::Numerical(format!("{failed} of {total} runs failed; first: {first}")).into());
    }
    Ok(())
}

/// Where one grid point stands.
enum RunStatus {
    /// Finished before this sweep started (same resolved config).
    Skipped,
    /// Waiting for a free slot.
    Queued,
    /// Running since.
    Running(std::time::Instant),
    /// Finished, with its headline metric.
    Done(String),
    /// Failed, with the first line of its error.
    Failed(String),
}

/// One line of the status table per grid point: `(label, state, progress)`.
fn status_rows(points: &[Point], status: &[RunStatus], status_dir: &Path) -> Vec<(String, String, String)> {
    points
        .iter()
        .zip(status)
        .enumerate()
        .map(|(i, (p, st))| {
            let label: Vec<String> = p.label.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let (state, detail) = match st {
                RunStatus::Skipped => ("skipped".to_string(), "finished earlier".to_string()),
                RunStatus::Queued => ("queued".to_string(), String::new()),
                RunStatus::Done(m) => ("done".to_string(), m.clone()),
                RunStatus::Failed(e) => ("FAILED".to_string(), e.clone()),
                RunStatus::Running(t0) => {
                    let v: serde_json::Value = std::fs::read_to_string(status_dir.join(format!("{i}.json")))
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default();
                    let mut d = format!("{:.0}s", t0.elapsed().as_secs_f64());
                    if let Some(it) = v["iteration"].as_u64() {
                        d.push_str(&format!("  iter {it}/{}", v["max_iters"].as_u64().unwrap_or(0)));
                    }
                    if let Some((k, x)) = v["metrics"].as_object().and_then(|m| m.iter().next()) {
                        d.push_str(&format!("  {k} {:.4e}", x.as_f64().unwrap_or(f64::NAN)));
                    } else if let Some(o) = v["objective"].as_f64() {
                        d.push_str(&format!("  objective {o:.4e}"));
                    }
                    ("running".to_string(), d)
                }
            };
            (label.join(" "), state, detail)
        })
        .collect()
}

/// Write `status.md` in the sweep directory: the whole table, atomically.
fn write_status(
    dir: &Path,
    name: &str,
    finished: usize,
    total: usize,
    failed: usize,
    elapsed: std::time::Duration,
    rows: &[(String, String, String)],
) -> lowrank::Result<()> {
    atomic_write(&dir.join("status.md"), |w| {
        writeln!(w, "# sweep {name}: {finished}/{total} finished, {failed} failed, {:.0} s", elapsed.as_secs_f64())?;
        writeln!(w)?;
        writeln!(w, "| point | state | progress |")?;
        writeln!(w, "|---|---|---|")?;
        for (l, s, d) in rows {
            writeln!(w, "| {l} | {s} | {d} |")?;
        }
        Ok(())
    })
}

/// The live status table on a terminal: a header bar (finished / total) and
/// one line per running run, redrawn in place (indicatif); hidden when
/// stderr is not a terminal, where finished runs are printed one per line.
struct LiveTable {
    multi: indicatif::MultiProgress,
    header: indicatif::ProgressBar,
    lines: Vec<indicatif::ProgressBar>,
    tty: bool,
}

impl LiveTable {
    fn new(name: &str, jobs: usize) -> LiveTable {
        use std::io::IsTerminal;
        let tty = std::io::stderr().is_terminal();
        let multi = if tty {
            indicatif::MultiProgress::new()
        } else {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
        };
        let header = multi.add(indicatif::ProgressBar::new(0));
        header.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        header.set_prefix(format!("sweep {name}"));
        let style = indicatif::ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let lines = (0..jobs)
            .map(|_| {
                let b = multi.add(indicatif::ProgressBar::new(0));
                b.set_style(style.clone());
                b
            })
            .collect();
        LiveTable { multi, header, lines, tty }
    }

    fn println(&self, line: &str) {
        if self.tty {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    fn update(
        &mut self,
        finished: usize,
        total: usize,
        failed: usize,
        _elapsed: std::time::Duration,
        rows: &[(String, String, String)],
    ) {
        self.header.set_length(total as u64);
        self.header.set_position(finished as u64);
        self.header.set_message(if failed > 0 { format!("{failed} failed") } else { String::new() });
        let running: Vec<&(String, String, String)> = rows.iter().filter(|r| r.1 == "running").collect();
        for (k, bar) in self.lines.iter().enumerate() {
            match running.get(k) {
                Some((l, _, d)) => bar.set_message(format!("{l:<48} {d}")),
                None => bar.set_message(String::new()),
            }
        }
    }

    fn finish(&self) {
        for b in &self.lines {
            b.finish_and_clear();
        }
        self.header.finish_and_clear();
    }
}

const METRICS: &[&str] =
    &["rel_error", "test_rmse", "test_mae", "train_rmse", "effective_rank", "iterations", "fit_seconds", "termination"];

fn write_results(
    dir: &Path,
    axes: &[(String, Vec<String>)],
    points: &[Point],
    run_of: &[Option<PathBuf>],
    failed: &[bool],
) -> anyhow::Result<()> {
    let mut header: Vec<String> = vec!["run".into()];
    header.extend(axes.iter().map(|(k, _)| k.clone()));
    header.extend(METRICS.iter().map(|m| m.to_string()));
    let mut rows: Vec<Vec<String>> = Vec::new();
    for ((p, r), &failed) in points.iter().zip(run_of).zip(failed) {
        let summary: serde_json::Value = r
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("summary.json")).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let mut row =
            vec![r.as_ref().and_then(|d| d.file_name()).map_or("-".into(), |n| n.to_string_lossy().into_owned())];
        row.extend(axes.iter().map(|(k, _)| p.label.get(k).cloned().unwrap_or_default()));
        row.extend(METRICS.iter().map(|m| match &summary[*m] {
            // a run that failed has no summary: say so where its termination goes
            serde_json::Value::Null if failed && *m == "termination" => "failed".into(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        }));
        rows.push(row);
    }
    atomic_write(&dir.join("results.csv"), |w| {
        writeln!(w, "{}", header.join(","))?;
        for r in &rows {
            writeln!(w, "{}", r.join(","))?;
        }
        Ok(())
    })?;
    atomic_write(&dir.join("results.md"), |w| {
        writeln!(w, "| {} |", header.join(" | "))?;
        writeln!(w, "|{}", "---|".repeat(header.len()))?;
        for r in &rows {
            writeln!(w, "| {} |", r.join(" | "))?;
        }
        Ok(())
    })?;
    Ok(())
}
