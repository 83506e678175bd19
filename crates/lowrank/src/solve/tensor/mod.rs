//! Tensor methods: CP decomposition of 3-way tensors by alternating least
//! squares ([`CpAls`], `--algo cp-als`), with tensor completion for partially
//! observed tensors, and the [`CpModel`] it produces.
//!
//! ```
//! use lowrank::data::synth;
//! use lowrank::solve::tensor::CpAls;
//!
//! // a noiseless rank-3 tensor is recovered exactly
//! let (t, _, _) = synth::random_cp([8, 7, 6], 3, 0.0, 1)?;
//! let fit = CpAls { rank: 3, init: lowrank::solve::tensor::CpInit::Svd, ..Default::default() }.fit(&t, 200, 0)?;
//! assert!(fit.model.relative_error(&t)? < 1e-8);
//! # Ok::<(), lowrank::Error>(())
//! ```
//!
//! N-way tensors are not supported: [`crate::Tensor3`] is the data model, and
//! the kernels use the 3-way dimension tree.

mod compress;
mod cp_als;
pub mod kernels;
mod model;
mod tiles;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

pub use cp_als::{Completion, CpAls, CpAlsSolver, CpInit, KEYS, REFINE_ITERS};
pub use kernels::mttkrp;
pub use model::CpModel;

use super::registry::{AlgoEntry, FitOutcome, FitRequest, FittedModel, insert_run_summary, parse_params};
use crate::error::{Error, Result};
use crate::io::Dataset;

/// Algorithms of this family, registered by name.
pub static ALGOS: &[AlgoEntry] = &[AlgoEntry {
    name: "cp-als",
    about: "CP (PARAFAC) decomposition of a 3-way tensor by alternating least squares; completion of missing entries (weighted ALS or EM)",
    keys: KEYS,
    run: run_cp_als,
    validate: |p| crate::solve::registry::parse_params::<CpAls>("cp-als", p, KEYS)?.check().map(drop),
}];

/// The `cp-als` runner: the data must be a [`Dataset::Tensor`]; an optional
/// test set is a tensor of the same shape whose observed entries are held
/// out. Summary: `algo`, `rank`, `epochs`, `iterations`, `rel_error`
/// (`‖T̂ − T‖_F / ‖T‖_F` over the observed entries, computed explicitly),
/// `train_rmse`, `test_rmse`, `test_mae` (null without a test tensor),
/// `fit_seconds`, `threads`, `seed`, `termination`, `n_train`, `shape`,
/// `params`. Default 500 iterations (the notebook).
fn run_cp_als(mut req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: CpAls = parse_params("cp-als", &req.params, KEYS)?;
    let solver = p.check()?;
    let train = match req.train {
        Dataset::Tensor(t) => t,
        other => {
            let hint = if matches!(other, Dataset::Ratings(_)) {
                "; a text file of 'i j k value' lines reads as ratings (user item rating timestamp) unless it is \
                 named *.tns, starts with a '# tensor D1 D2 D3' header, or --format tensor-text is given"
            } else {
                ""
            };
            return Err(Error::invalid(format!(
                "cp-als needs a 3-way tensor (a 3-D .npy or coordinate text 'i j k value'), got {}{hint}",
                other.describe()
            )));
        }
    };
    let test = match req.test {
        None => None,
        Some(Dataset::Tensor(tt)) => {
            if tt.dims() != train.dims() {
                return Err(Error::invalid(format!(
                    "the test tensor has shape {:?}, the training tensor {:?}",
                    tt.dims(),
                    train.dims()
                )));
            }
            Some(tt)
        }
        Some(other) => {
            return Err(Error::invalid(format!(
                "cp-als needs a test tensor of the training shape, got {}",
                other.describe()
            )));
        }
    };
    let (seed, threads, algo, params, eval_every) =
        (req.seed, req.threads, req.algo.clone(), req.params.clone(), req.eval_every);
    let mut ex = req.executor(solver, train, 500);
    if let Some(tt) = test {
        ex = ex.evaluate(eval_every, move |m: &CpModel| {
            vec![
                ("test_rmse".to_string(), m.rmse(tt).unwrap_or(f64::NAN)),
                ("test_mae".to_string(), m.mae(tt).unwrap_or(f64::NAN)),
            ]
        });
    }
    let fit = ex.run()?;
    let mut model = fit.model;
    model.solver = algo.clone();
    model.params = Value::Object(params.clone());
    let mut summary = Map::new();
    summary.insert("algo".into(), json!(algo));
    summary.insert("rank".into(), json!(model.rank()));
    summary.insert("epochs".into(), json!(fit.iterations));
    summary.insert("iterations".into(), json!(fit.iterations));
    summary.insert("rel_error".into(), json!(model.relative_error(train)?));
    summary.insert("train_rmse".into(), json!(model.rmse(train)?));
    match test {
        Some(tt) => {
            summary.insert("test_rmse".into(), json!(model.rmse(tt)?));
            summary.insert("test_mae".into(), json!(model.mae(tt)?));
            summary.insert("n_test".into(), json!(tt.n_observed()));
        }
        None => {
            summary.insert("test_rmse".into(), Value::Null);
            summary.insert("test_mae".into(), Value::Null);
        }
    }
    summary.insert("n_train".into(), json!(train.n_observed()));
    summary.insert("shape".into(), json!(train.dims()));
    insert_run_summary(&mut summary, fit.seconds, &fit.termination, threads, seed, params);
    Ok(FitOutcome { model: FittedModel::Cp(model), summary, history: fit.history, termination: fit.termination })
}
