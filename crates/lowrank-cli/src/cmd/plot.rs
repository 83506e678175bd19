//! `lowrank plot`: convergence curves and singular-value dynamics of runs.

use std::path::PathBuf;

use clap::Args;
use lowrank_experiment::plot;

/// Arguments of `lowrank plot`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  lowrank plot logs/3 logs/4 --out convergence.svg                 # objective and rel_error, log scale
  lowrank plot logs/3 --kind train-test --out curves.png
  lowrank plot logs/3 --kind singular-values --out sv.svg          # needs a solver that records them (deep)
  lowrank plot logs/3 --key grad_norm --out g.svg
  lowrank plot logs/3 --kind heatmap --out decomposition.png     # truth, observed, reconstruction, U, V^T
  lowrank plot logs/3 --kind lr-heatmap --out lr.png             # gd with record_lr = true
  lowrank plot logs/3 --kind lr-heatmap --out lr.gif --frames 50 # the same, animated over iterations")]
pub struct PlotArgs {
    /// Run directories (each with a trace.jsonl).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output file: .svg or .png (lr-heatmap also .gif: an animation).
    #[arg(long)]
    pub out: PathBuf,
    /// convergence, train-test, singular-values, heatmap or lr-heatmap.
    #[arg(long, default_value = "convergence")]
    pub kind: String,
    /// Plot this record value instead (e.g. grad_norm, test_rmse).
    #[arg(long)]
    pub key: Option<String>,
    /// How many singular values (singular-values), or panels (lr-heatmap as an image).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Frames of an animated .gif (spread evenly over the recorded iterations).
    #[arg(long, default_value_t = 40)]
    pub frames: usize,
    /// Time each frame of an animated .gif is shown, in milliseconds.
    #[arg(long, default_value_t = 150)]
    pub delay_ms: u32,
}

fn factor_rank(run: &std::path::Path) -> anyhow::Result<usize> {
    match lowrank::model::load_any(&run.join("model.safetensors"))? {
        lowrank::model::ModelFile::Factor(m) => Ok(m.rank),
        _ => Err(lowrank::Error::invalid("the run's model is not a factor model").into()),
    }
}

/// Ground truth, observed entries, reconstruction and factors of a run (the
/// notebook's plot_decomposition).
fn matrix_panels(run: &std::path::Path) -> anyhow::Result<Vec<plot::Panel>> {
    let mut raw = lowrank_experiment::RawConfig::default();
    raw.merge_file(&run.join("config.toml"))?;
    let plan = lowrank_experiment::FitPlan::resolve(&raw)?;
    let (train, _, truth) = plan.load_data(None)?;
    let observed = match train {
        lowrank::io::Dataset::Ratings(r) => lowrank::data::dense::masked_dense(&r),
        lowrank::io::Dataset::Dense(d) => d,
        lowrank::io::Dataset::Tensor(_) => {
            return Err(lowrank::Error::invalid("heatmaps are for matrices, not tensors").into());
        }
    };
    let mut panels = Vec::new();
    if let Some(t) = truth {
        panels.push(("ground truth".to_string(), t));
    }
    panels.push(("observed".to_string(), observed));
    use lowrank::metrics::Predict;
    match lowrank::model::load_any(&run.join("model.safetensors"))? {
        lowrank::model::ModelFile::Factor(m) => {
            panels.push(("reconstruction".to_string(), m.to_dense()));
            panels.push(("U".to_string(), m.u_dense()));
            panels.push(("V^T".to_string(), m.v_dense().transpose().to_owned()));
        }
        lowrank::model::ModelFile::Dense(m) => panels.push(("reconstruction".to_string(), m.x)),
        _ => return Err(lowrank::Error::invalid("unsupported model kind for heatmaps").into()),
    }
    Ok(panels)
}

/// The records carrying per-parameter learning rates, and the factor rank.
fn lr_records<'t>(
    run: &std::path::Path,
    trace: &'t [lowrank::observe::Record],
) -> anyhow::Result<(Vec<&'t lowrank::observe::Record>, usize)> {
    let k = factor_rank(run)?;
    let with: Vec<&lowrank::observe::Record> = trace.iter().filter(|r| r.vectors.contains_key("lr_u")).collect();
    if with.is_empty() || k == 0 {
        return Err(lowrank::Error::invalid(
            "the trace has no per-parameter learning rates (run gd with record_lr = true)",
        )
        .into());
    }
    Ok((with, k))
}

/// `frames` records spread evenly over `with` (first and last included).
fn spread<'a, T>(with: &'a [T], frames: usize) -> impl Iterator<Item = &'a T> + 'a {
    let frames = frames.max(1).min(with.len());
    (0..frames).map(move |f| &with[f * (with.len() - 1) / (frames.max(2) - 1).max(1)])
}

/// The learning rates of `U` and `V` at one record, as matrices.
fn lr_matrices(r: &lowrank::observe::Record, k: usize) -> Vec<plot::Panel> {
    let mut out = Vec::new();
    for (key, name) in [("lr_u", "U"), ("lr_v", "V")] {
        if let Some(v) = r.vectors.get(key) {
            let m = v.len() / k;
            out.push((format!("lr of {name}"), faer::Mat::from_fn(m, k, |i, t| v[i * k + t])));
        }
    }
    out
}

/// Learning-rate heatmaps (record vectors `lr_u`, `lr_v`) at a few iterations.
fn lr_panels(
    run: &std::path::Path,
    trace: &[lowrank::observe::Record],
    frames: usize,
) -> anyhow::Result<Vec<plot::Panel>> {
    let (with, k) = lr_records(run, trace)?;
    let mut panels = Vec::new();
    for r in spread(&with, frames) {
        let v = &r.vectors["lr_u"];
        let m = v.len() / k;
        panels.push((format!("lr_u @ {}", r.iteration), faer::Mat::from_fn(m, k, |i, t| v[i * k + t])));
    }
    Ok(panels)
}

/// `lowrank plot`.
pub fn run(a: PlotArgs) -> anyhow::Result<()> {
    if a.top == 0 || a.frames == 0 {
        return Err(lowrank::Error::invalid("--top and --frames must be at least 1").into());
    }
    // a GIF frame delay is a 16-bit count of hundredths of a second
    if !(10..=655_350).contains(&a.delay_ms) {
        return Err(
            lowrank::Error::invalid(format!("--delay-ms must be between 10 and 655350, got {}", a.delay_ms)).into()
        );
    }
    let traces: Vec<(String, Vec<lowrank::observe::Record>)> =
        a.runs.iter().map(|r| Ok((r.display().to_string(), plot::read_trace(r)?))).collect::<lowrank::Result<_>>()?;
    let multi = traces.len() > 1;
    let name = |run: &str, key: &str| if multi { format!("{run}: {key}") } else { key.to_string() };
    let (title, ylabel, curves): (&str, &str, Vec<plot::Series>) = match (a.key.as_deref(), a.kind.as_str()) {
        (Some(k), _) => ("", k, traces.iter().map(|(r, t)| (name(r, k), plot::series(t, k))).collect()),
        (None, "convergence") => (
            "convergence",
            "objective / distance",
            traces
                .iter()
                .flat_map(|(r, t)| ["objective", "rel_error"].map(|k| (name(r, k), plot::series(t, k))))
                .collect(),
        ),
        (None, "train-test") => (
            "train and test error",
            "RMSE / loss",
            traces
                .iter()
                .flat_map(|(r, t)| {
                    ["train_rmse", "train_loss", "test_rmse", "test_loss"].map(|k| (name(r, k), plot::series(t, k)))
                })
                .collect(),
        ),
        (None, "singular-values") => {
            let (r, t) = &traces[0];
            let _ = r;
            ("singular values", "sigma", plot::singular_series(t, a.top))
        }
        (None, "heatmap") => {
            super::ensure_parent(&a.out)?;
            let panels = matrix_panels(&a.runs[0])?;
            plot::heatmaps(&a.out, "decomposition", &panels)?;
            eprintln!("wrote {}", a.out.display());
            return Ok(());
        }
        (None, "lr-heatmap") if a.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif")) => {
            super::ensure_parent(&a.out)?;
            let (with, k) = lr_records(&a.runs[0], &traces[0].1)?;
            let frames: Vec<(String, Vec<plot::Panel>)> =
                spread(&with, a.frames).map(|r| (format!("iteration {}", r.iteration), lr_matrices(r, k))).collect();
            plot::heatmap_animation(&a.out, "per-parameter learning rates", &frames, a.delay_ms)?;
            eprintln!("wrote {} ({} frames)", a.out.display(), frames.len());
            return Ok(());
        }
        (None, "lr-heatmap") => {
            super::ensure_parent(&a.out)?;
            let panels = lr_panels(&a.runs[0], &traces[0].1, a.top.min(8))?;
            plot::heatmaps(&a.out, "per-parameter learning rates over iterations", &panels)?;
            eprintln!("wrote {}", a.out.display());
            return Ok(());
        }
        (None, other) => {
            return Err(lowrank::Error::invalid(format!(
                "unknown plot kind '{other}' (convergence, train-test, singular-values, heatmap, lr-heatmap)"
            ))
            .into());
        }
    };
    super::ensure_parent(&a.out)?;
    plot::line_chart(&a.out, if title.is_empty() { ylabel } else { title }, ylabel, &curves)?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
