//! `lowrank inspect`.

use std::path::PathBuf;

use clap::Args;
use lowrank::io::Dataset;
use serde_json::json;

/// Arguments of `lowrank inspect`.
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  lowrank inspect --data u.data.gz")]
pub struct InspectArgs {
    /// Data file.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    read: super::ReadArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn quantiles(mut v: Vec<usize>) -> serde_json::Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_unstable();
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    json!({"min": q(0.0), "p25": q(0.25), "median": q(0.5), "p75": q(0.75), "p99": q(0.99), "max": q(1.0),
           "empty": v.iter().filter(|&&c| c == 0).count()})
}

fn histogram(vals: &[f32]) -> serde_json::Value {
    let distinct: std::collections::BTreeMap<String, usize> = {
        let mut m = std::collections::BTreeMap::new();
        for &v in vals.iter().take(5_000_000) {
            *m.entry(format!("{v}")).or_insert(0usize) += 1;
            if m.len() > 20 {
                break;
            }
        }
        m
    };
    if distinct.len() <= 20 && vals.len() <= 5_000_000 {
        return json!(distinct);
    }
    let (lo, hi) = vals.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let bins = 10usize;
    let w = ((hi - lo) / bins as f32).max(f32::MIN_POSITIVE);
    let mut counts = vec![0usize; bins];
    for &v in vals {
        counts[(((v - lo) / w) as usize).min(bins - 1)] += 1;
    }
    let m: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .enumerate()
        .map(|(b, c)| (format!("[{:.3}, {:.3})", lo + b as f32 * w, lo + (b + 1) as f32 * w), json!(c)))
        .collect();
    serde_json::Value::Object(m)
}

/// `lowrank inspect`.
pub fn run(a: InspectArgs) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let d = lowrank::io::load(&a.data, &a.read.options()?)?;
    let secs = t0.elapsed().as_secs_f64();
    let out = match &d {
        Dataset::Ratings(r) => {
            let (lo, hi) = r.value_range().unwrap_or((0.0, 0.0));
            json!({"file": a.data.display().to_string(), "kind": "ratings", "rows": r.nrows(), "cols": r.ncols(),
                "entries": r.len(), "density": r.density(), "mean": r.mean(), "min": lo, "max": hi,
                "integer_ids": r.row_ids.is_integer() && r.col_ids.is_integer(),
                "values": histogram(r.values()), "per_row": quantiles(r.row_counts()), "per_col": quantiles(r.col_counts()),
                "read_seconds": secs})
        }
        Dataset::Dense(m) => {
            let mut vals = Vec::new();
            for i in 0..m.nrows() {
                for j in 0..m.ncols() {
                    if !m[(i, j)].is_nan() {
                        vals.push(m[(i, j)] as f32);
                    }
                }
            }
            json!({"file": a.data.display().to_string(), "kind": "dense", "rows": m.nrows(), "cols": m.ncols(),
                "observed": vals.len(), "missing": m.nrows() * m.ncols() - vals.len(),
                "density": vals.len() as f64 / (m.nrows() * m.ncols()) as f64, "values": histogram(&vals), "read_seconds": secs})
        }
        Dataset::Tensor(t) => {
            json!({"file": a.data.display().to_string(), "kind": "tensor", "dims": t.dims(), "observed": t.n_observed(),
                "norm": t.norm(), "read_seconds": secs})
        }
    };
    if a.json {
        println!("{out}");
    } else {
        for (k, v) in out.as_object().into_iter().flatten() {
            println!("{k:<12} {v}");
        }
    }
    Ok(())
}
