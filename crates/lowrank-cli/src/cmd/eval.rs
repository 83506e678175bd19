//! `lowrank eval`.

use std::path::PathBuf;

use clap::Args;
use lowrank::FactorModel;
use lowrank::solve::registry::TestSet;
use serde_json::json;

/// Arguments of `lowrank eval`.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  lowrank fit --data train.tsv --algo baseline --save-model m.safetensors\n  lowrank eval --model m.safetensors --data test.tsv --json"
)]
pub struct EvalArgs {
    /// A model saved by `lowrank fit --save-model`.
    #[arg(long)]
    pub model: PathBuf,
    /// Ratings to evaluate on (ids matched to the model's ids).
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    read: super::ReadArgs,
    /// Clip predictions to this range, e.g. 1,5 (default: no clipping).
    #[arg(long, value_delimiter = ',')]
    pub clip: Option<Vec<f64>>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `lowrank eval`.
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let model = FactorModel::load(&a.model)?;
    let data = lowrank::io::read_ratings(&a.data, &a.read.options()?)?;
    // express the model's id space as ratings to align the test set
    let ids_only = lowrank::Ratings::with_ids(vec![], vec![], vec![], model.row_ids.clone(), model.col_ids.clone())?;
    let mut t = TestSet::new(&ids_only, &data);
    // unseen entries are predicted by the model's global mean
    let mu = model.global_mean;
    let (mut sq, mut ab) = (0.0, 0.0);
    if t.unseen > 0 {
        let mut rm = model.row_ids.clone();
        let mut cm = model.col_ids.clone();
        for (i, j, v) in data.iter() {
            if rm.lookup(&data.row_ids.id(i)).is_none() || cm.lookup(&data.col_ids.id(j)).is_none() {
                sq += (v as f64 - mu).powi(2);
                ab += (v as f64 - mu).abs();
            }
        }
    }
    t.unseen_sq = sq;
    t.unseen_abs = ab;
    let clip = match a.clip.as_deref() {
        None => None,
        Some([lo, hi]) if lo < hi => Some((*lo, *hi)),
        Some(c) => return Err(lowrank::Error::invalid(format!("--clip expects LO,HI with LO < HI, got {c:?}")).into()),
    };
    let (rmse, mae) = t.evaluate(&model, clip);
    let out = json!({"model": a.model.display().to_string(), "data": a.data.display().to_string(),
        "n": t.total, "unseen": t.unseen, "rmse": rmse, "mae": mae});
    if a.json {
        println!("{out}");
    } else {
        println!("entries  {}\nunseen   {}\nrmse     {rmse:.6}\nmae      {mae:.6}", t.total, t.unseen);
    }
    Ok(())
}
