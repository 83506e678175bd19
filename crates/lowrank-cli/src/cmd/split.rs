//! `lowrank split`.

use std::path::PathBuf;

use clap::Args;
use lowrank::data::split;
use lowrank::io::write_triplets;

/// Arguments of `lowrank split`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  lowrank split --data u.data --out splits --method holdout --fraction 0.1 --seed 42
  lowrank split --data u.data --out splits --method leave-k-out --k 10
  lowrank split --data u.data --out splits --method kfold --folds 5
Writes train.tsv/test.tsv (or fold1.train.tsv, fold1.test.tsv, ...) with the original ids.")]
pub struct SplitArgs {
    /// Ratings file.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    read: super::ReadArgs,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// holdout, leave-k-out or kfold.
    #[arg(long, default_value = "holdout")]
    pub method: String,
    /// Test fraction (holdout).
    #[arg(long, default_value_t = 0.1)]
    pub fraction: f64,
    /// Entries per user held out (leave-k-out).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Number of folds (kfold).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `lowrank split`.
pub fn run(a: SplitArgs) -> anyhow::Result<()> {
    let r = lowrank::io::read_ratings(&a.data, &a.read.options()?)?;
    super::ensure_dir(&a.out)?;
    let pairs = match a.method.as_str() {
        "holdout" => vec![split::holdout(&r, a.fraction, a.seed)?],
        "leave-k-out" => vec![split::leave_k_out(&r, a.k, a.seed)?],
        "kfold" | "k-fold" => split::k_fold(&r, a.folds, a.seed)?,
        o => {
            return Err(
                lowrank::Error::invalid(format!("unknown split method '{o}' (holdout, leave-k-out, kfold)")).into()
            );
        }
    };
    let multi = pairs.len() > 1;
    let prefix = |f: usize| if multi { format!("fold{}.", f + 1) } else { String::new() };
    for (f, (train, test)) in pairs.iter().enumerate() {
        let p = prefix(f);
        super::refuse_overwriting_inputs(
            &[a.data.as_path()],
            &[("--out", &a.out.join(format!("{p}train.tsv"))), ("--out", &a.out.join(format!("{p}test.tsv")))],
        )?;
        if train.is_empty() || test.is_empty() {
            let (what, n) = if test.is_empty() { ("test", test.len()) } else { ("training", train.len()) };
            return Err(lowrank::Error::invalid(format!(
                "{p}the {what} set would be empty ({n} of {} ratings): change --fraction, --k or --folds",
                r.len()
            ))
            .into());
        }
    }
    for (f, (train, test)) in pairs.iter().enumerate() {
        let prefix = prefix(f);
        write_triplets(&a.out.join(format!("{prefix}train.tsv")), train)?;
        write_triplets(&a.out.join(format!("{prefix}test.tsv")), test)?;
        eprintln!("{prefix}train.tsv: {} entries, {prefix}test.tsv: {} entries", train.len(), test.len());
    }
    Ok(())
}
