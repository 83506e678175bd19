//! `lowrank recommend`.

use std::path::PathBuf;

use clap::Args;
use lowrank::{Error, FactorModel};
use serde_json::json;

/// Arguments of `lowrank recommend`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  lowrank recommend --model m.safetensors --user 196 -n 10 --exclude-seen train.tsv
  lowrank recommend --model m.safetensors --similar-to 242 -n 5
  lowrank recommend --model m.safetensors --fold-in 242:5,302:3,377:1 -n 10")]
pub struct RecommendArgs {
    /// A model saved by `lowrank fit --save-model`.
    #[arg(long)]
    pub model: PathBuf,
    /// The user (external id) to recommend for.
    #[arg(long)]
    pub user: Option<String>,
    /// Items similar (cosine of factors) to this item id.
    #[arg(long)]
    pub similar_to: Option<String>,
    /// A new user's ratings, item:rating,item:rating,... (fold-in, no refit).
    #[arg(long)]
    pub fold_in: Option<String>,
    /// Ridge penalty of the fold-in solve.
    #[arg(long, default_value_t = 0.1)]
    pub fold_in_reg: f64,
    /// How many items.
    #[arg(short, long, default_value_t = 10)]
    pub n: usize,
    /// Exclude the items each user rated in this ratings file.
    #[arg(long)]
    pub exclude_seen: Option<PathBuf>,
    #[command(flatten)]
    read: super::ReadArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn norm_of_item(m: &FactorModel, j: usize) -> f64 {
    m.item(j).iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt()
}

/// `lowrank recommend`.
pub fn run(a: RecommendArgs) -> anyhow::Result<()> {
    if a.n == 0 {
        return Err(Error::invalid("-n must be at least 1").into());
    }
    let model = FactorModel::load(&a.model)?;
    let mut col_ids = model.col_ids.clone();
    let item_index = |ids: &mut lowrank::IdMap, id: &str| -> anyhow::Result<usize> {
        Ok(ids.lookup(id).ok_or_else(|| Error::invalid(format!("item '{id}' is not in the model")))? as usize)
    };
    let (list, what): (Vec<(u32, f64)>, String) = match (&a.user, &a.similar_to, &a.fold_in) {
        (Some(u), None, None) => {
            let mut rows = model.row_ids.clone();
            let i = rows.lookup(u).ok_or_else(|| {
                Error::invalid(format!("user '{u}' is not in the model (use --fold-in for a new user)"))
            })? as usize;
            let mut exclude = Vec::new();
            if let Some(p) = &a.exclude_seen {
                let seen = lowrank::io::read_ratings(p, &a.read.options()?)?;
                let mut srows = seen.row_ids.clone();
                if let Some(si) = srows.lookup(u) {
                    for (r, c, _) in seen.iter() {
                        if r == si as usize
                            && let Some(j) = col_ids.lookup(&seen.col_ids.id(c))
                        {
                            exclude.push(j);
                        }
                    }
                }
            }
            (model.recommend(i, a.n, &exclude), format!("user {u}"))
        }
        (None, Some(item), None) => {
            let j = item_index(&mut col_ids, item)?;
            if model.rank == 0 || norm_of_item(&model, j) == 0.0 {
                let why = if model.rank == 0 {
                    "the model has no item factors (rank 0, e.g. baseline)"
                } else {
                    "its factor vector is zero"
                };
                return Err(Error::invalid(format!("no similarity to item '{item}': {why}")).into());
            }
            (model.similar_items(j, a.n), format!("items similar to {item}"))
        }
        (None, None, Some(spec)) => {
            let mut obs = Vec::new();
            let mut exclude = Vec::new();
            for part in spec.split(',').filter(|s| !s.trim().is_empty()) {
                let (id, r) = part
                    .split_once(':')
                    .ok_or_else(|| Error::invalid(format!("--fold-in expects item:rating pairs, got '{part}'")))?;
                let r: f64 = r.trim().parse().map_err(|_| Error::invalid(format!("rating '{r}' is not a number")))?;
                // ratings are stored as f32 everywhere else (the Ratings store)
                if !r.is_finite() || r.abs() > f32::MAX as f64 {
                    return Err(Error::invalid(format!(
                        "--fold-in: rating '{}' of item '{}' is not a finite number",
                        r,
                        id.trim()
                    ))
                    .into());
                }
                let j = item_index(&mut col_ids, id.trim())?;
                if exclude.contains(&(j as u32)) {
                    return Err(Error::invalid(format!("--fold-in: item '{}' is rated twice", id.trim())).into());
                }
                obs.push((j, r));
                exclude.push(j as u32);
            }
            let (x, b) = model.fold_in(&obs, a.fold_in_reg)?;
            (model.recommend_vector(&x, b, a.n, &exclude), "a folded-in user".into())
        }
        _ => return Err(Error::invalid("give exactly one of --user, --similar-to, --fold-in").into()),
    };
    if a.json {
        let items: Vec<_> =
            list.iter().map(|(j, s)| json!({"item": model.col_ids.id(*j as usize), "score": s})).collect();
        println!("{}", json!({"for": what, "items": items}));
    } else {
        println!("top {} for {what}:", list.len());
        for (rank, (j, s)) in list.iter().enumerate() {
            println!("{:>3}. {:<12} {s:.4}", rank + 1, model.col_ids.id(*j as usize));
        }
    }
    Ok(())
}
