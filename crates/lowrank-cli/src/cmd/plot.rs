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
  lowrank plot logs/3 --key grad_norm --out g.svg")]
pub struct PlotArgs {
    /// Run directories (each with a trace.jsonl).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output file: .svg or .png.
    #[arg(long)]
    pub out: PathBuf,
    /// convergence, train-test or singular-values.
    #[arg(long, default_value = "convergence")]
    pub kind: String,
    /// Plot this record value instead (e.g. grad_norm, test_rmse).
    #[arg(long)]
    pub key: Option<String>,
    /// How many singular values (singular-values).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// `lowrank plot`.
pub fn run(a: PlotArgs) -> anyhow::Result<()> {
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
                .flat_map(|(r, t)| ["train_rmse", "train_loss", "test_rmse", "test_loss"].map(|k| (name(r, k), plot::series(t, k))))
                .collect(),
        ),
        (None, "singular-values") => {
            let (r, t) = &traces[0];
            let _ = r;
            ("singular values", "sigma", plot::singular_series(t, a.top))
        }
        (None, other) => {
            return Err(lowrank::Error::invalid(format!("unknown plot kind '{other}' (convergence, train-test, singular-values)")).into());
        }
    };
    super::ensure_parent(&a.out)?;
    plot::line_chart(&a.out, if title.is_empty() { ylabel } else { title }, ylabel, &curves)?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
