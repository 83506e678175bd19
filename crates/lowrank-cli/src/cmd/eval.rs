//! `lowrank eval`.

use std::path::PathBuf;

use clap::Args;
use lowrank::FactorModel;
use lowrank::io::Dataset;
use lowrank::model::ModelFile;
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
    /// Clip predictions to this range, e.g. 1,5 (default: the range the fit
    /// clipped to, saved with the model by the rating algorithms, so that
    /// eval scores as `fit --test` did; none for the others).
    #[arg(long, value_delimiter = ',', conflicts_with = "no_clip")]
    pub clip: Option<Vec<f64>>,
    /// Score the raw predictions, without the model's saved clipping range.
    #[arg(long)]
    pub no_clip: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `lowrank eval`: factor models are matched by external ids; so is a dense
/// model (e.g. `nuclear-min`) fit to ratings (it keeps their ids); one fit
/// to a dense matrix is matched by position, so its data must be a dense
/// matrix of the model's shape (NaN = missing) or triplets read with `--ids
/// zero-based` / `one-based`; a CP model needs a tensor of the model's shape.
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let clip = match a.clip.as_deref() {
        None => None,
        Some([lo, hi]) if lo < hi => Some((*lo, *hi)),
        Some(c) => return Err(lowrank::Error::invalid(format!("--clip expects LO,HI with LO < HI, got {c:?}")).into()),
    };
    let opts = a.read.options()?;
    let (n, unseen, rmse, mae) = match lowrank::model::load_any(&a.model)? {
        ModelFile::Factor(model) => {
            let data = lowrank::io::read_ratings(&a.data, &opts)?;
            let clip = if a.no_clip { None } else { clip.or(model.clip) };
            eval_factor(&model, &data, clip)?
        }
        ModelFile::Dense(dm) => {
            let x = &dm.x;
            let data = match lowrank::io::load(&a.data, &opts)? {
                Dataset::Dense(d) => {
                    if d.shape() != x.shape() {
                        return Err(shape_error(&a, x.shape(), d.shape()).into());
                    }
                    lowrank::data::dense::ratings_from_masked(&d)?
                }
                Dataset::Ratings(r) => {
                    // fit to ratings: the model knows their ids, and entries are matched by id
                    if let Some((rows, cols)) = &dm.ids {
                        let fallback = dm.unseen_value.unwrap_or(0.0);
                        let result = eval_by_ids(&dm, rows, cols, fallback, &r, clip)?;
                        return print_eval(&a, result);
                    }
                    if opts.ids == lowrank::io::IdMode::Map {
                        return Err(lowrank::Error::invalid(format!(
                            "{}: this dense model was fit to a dense matrix and is indexed by position; pass a dense \
                             matrix, or read triplets whose ids are positions with --ids zero-based or --ids one-based",
                            a.model.display()
                        ))
                        .into());
                    }
                    if r.nrows() > x.nrows() || r.ncols() > x.ncols() {
                        return Err(shape_error(&a, x.shape(), r.shape()).into());
                    }
                    r
                }
                Dataset::Tensor(_) => {
                    return Err(lowrank::Error::invalid(format!(
                        "{}: a matrix model cannot be evaluated on a tensor",
                        a.data.display()
                    ))
                    .into());
                }
            };
            let t = TestSet::new(&data, &data);
            let (r, m) = t.evaluate(&dm, clip);
            (t.total, 0, r, m)
        }
        ModelFile::Cp(model) => {
            let Dataset::Tensor(t) = lowrank::io::load(&a.data, &opts)? else {
                return Err(lowrank::Error::invalid(format!(
                    "{}: a CP model is evaluated on a 3-way tensor (.npy or 'i j k value' text)",
                    a.data.display()
                ))
                .into());
            };
            if t.dims() != model.dims() {
                return Err(lowrank::Error::invalid(format!(
                    "{}: tensor shape {:?}, the model's {:?}",
                    a.data.display(),
                    t.dims(),
                    model.dims()
                ))
                .into());
            }
            (t.n_observed(), 0, model.rmse(&t)?, model.mae(&t)?)
        }
        _ => return Err(lowrank::Error::invalid("unsupported model kind").into()),
    };
    print_eval(&a, (n, unseen, rmse, mae))
}

/// Print `(entries, unseen, rmse, mae)`, as JSON with `--json`.
fn print_eval(a: &EvalArgs, (n, unseen, rmse, mae): (usize, usize, f64, f64)) -> anyhow::Result<()> {
    let out = json!({"model": a.model.display().to_string(), "data": a.data.display().to_string(),
        "n": n, "unseen": unseen, "rmse": rmse, "mae": mae});
    if a.json {
        println!("{out}");
    } else {
        println!("entries  {n}\nunseen   {unseen}\nrmse     {rmse:.6}\nmae      {mae:.6}");
    }
    Ok(())
}

fn shape_error(a: &EvalArgs, model: (usize, usize), data: (usize, usize)) -> lowrank::Error {
    lowrank::Error::invalid(format!(
        "{}: data of shape {}x{} does not fit the dense model {} of shape {}x{}",
        a.data.display(),
        data.0,
        data.1,
        a.model.display(),
        model.0,
        model.1
    ))
}

/// Evaluate a factor model on ratings matched by external ids; entries with
/// an unseen user or item are predicted as the fit's scores did (the
/// training mean, saved with the model; the global mean for older files).
fn eval_factor(
    model: &FactorModel,
    data: &lowrank::Ratings,
    clip: Option<(f64, f64)>,
) -> anyhow::Result<(usize, usize, f64, f64)> {
    let fallback = model.unseen_value.unwrap_or(model.global_mean);
    eval_by_ids(model, &model.row_ids, &model.col_ids, fallback, data, clip)
}

/// Evaluate a model whose rows and columns carry the ids `rows`, `cols` on
/// ratings matched by those ids; an entry with an unseen user or item is
/// predicted as `fallback`.
fn eval_by_ids<P: lowrank::metrics::Predict + ?Sized>(
    model: &P,
    rows: &lowrank::IdMap,
    cols: &lowrank::IdMap,
    fallback: f64,
    data: &lowrank::Ratings,
    clip: Option<(f64, f64)>,
) -> anyhow::Result<(usize, usize, f64, f64)> {
    // express the model's id space as ratings to align the test set
    let ids_only = lowrank::Ratings::with_ids(vec![], vec![], vec![], rows.clone(), cols.clone())?;
    let mut t = TestSet::new(&ids_only, data);
    let (mut sq, mut ab) = (0.0, 0.0);
    if t.unseen > 0 {
        let mut rm = rows.clone();
        let mut cm = cols.clone();
        for (i, j, v) in data.iter() {
            if rm.lookup(&data.row_ids.id(i)).is_none() || cm.lookup(&data.col_ids.id(j)).is_none() {
                sq += (v as f64 - fallback).powi(2);
                ab += (v as f64 - fallback).abs();
            }
        }
    }
    if t.total > 0 && t.unseen == t.total {
        // legitimate for a cold-start evaluation, but most often the wrong file
        eprintln!(
            "warning: none of the {} entries has both its user and its item in the model (other ids, or another \
             dataset?): the scores are the global mean's alone",
            t.total
        );
    }
    t.unseen_sq = sq;
    t.unseen_abs = ab;
    let (rmse, mae) = t.evaluate(model, clip);
    Ok((t.total, t.unseen, rmse, mae))
}
