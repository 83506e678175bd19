//! Stochastic gradient descent factorization.
//!
//! - The lab's algorithm (source material 003), faithfully:
//!   [`sgd_factorise`] / [`sgd_factorise_masked`] on dense matrices, and
//!   [`LabSgd`] (`--algo lab-sgd`) on observed entries.
//! - Biased matrix factorization for ratings ([`Sgd`], `--algo sgd`): global
//!   mean, user/item biases, L2 on factors and biases, constant / inverse
//!   decay / LIBMF's adaptive learning rate, Gaussian or uniform init,
//!   optional non-negative factors, and a parallel block-stratified kernel in
//!   the manner of FPSGD with a fixed, seeded schedule (same seed and thread
//!   count, same model).
//!
//! ```
//! use lowrank::data::synth;
//! use lowrank::solve::{Executor, sgd::{LrSchedule, Sgd}};
//!
//! let problem = synth::planted_completion(40, 2, 800, 1)?;
//! let params = Sgd { rank: 2, lr: 0.05, reg: 0.0, biases: false, schedule: LrSchedule::Constant, ..Sgd::default() };
//! let fit = Executor::new(params.check()?, &problem.observed).max_iters(200).seed(3).run()?;
//! assert!(lowrank::metrics::relative_error(&fit.model, &problem.truth) < 0.05);
//! # Ok::<(), lowrank::Error>(())
//! ```

pub mod grid;
pub mod kernel;
mod lab;
mod params;
mod solver;
#[cfg(test)]
mod tests;

pub use lab::{
    LAB_EPOCHS, LAB_LR, LabSgd, LabSgdSolver, masked_loss, nan_mask, reconstruction_loss, sgd_factorise,
    sgd_factorise_masked, truncated_svd_reconstruction,
};
pub use params::{Init, LrSchedule, SGD_EPOCHS, SGD_KEYS, Sgd};
pub use solver::SgdSolver;

use std::time::Instant;

use serde_json::json;

use super::registry::{AlgoEntry, FitOutcome, FitRequest, parse_params, run_factor_solver};
use crate::data::Ratings;
use crate::error::{Result, ensure};
use crate::io::Dataset;

/// Algorithms of this family, registered by name.
pub static ALGOS: &[AlgoEntry] = &[
    AlgoEntry {
        name: "sgd",
        about: "biased MF by parallel SGD (FPSGD-style blocks): biases, L2, lr schedules (inverse/constant/adaptive), nonneg; presets movielens (default), libmf, funk",
        keys: SGD_KEYS,
        run: run_sgd,
        validate: |p| Sgd::from_map(p)?.check().map(drop),
    },
    AlgoEntry {
        name: "lab-sgd",
        about: "the lab's per-entry SGD (U row, then V row with the updated U row; U(0,1) init), rows then columns",
        keys: &["rank", "lr"],
        run: run_lab_sgd,
        validate: |p| crate::solve::registry::parse_params::<LabSgd>("lab-sgd", p, &["rank", "lr"])?.check().map(drop),
    },
];

fn run_sgd(req: FitRequest<'_>) -> Result<FitOutcome> {
    let t0 = Instant::now();
    ensure!(req.epochs != Some(0), "epochs must be at least 1");
    let params = Sgd::from_map(&req.params)?;
    let solver = params.check()?;
    // borrow ratings instead of copying them (100M ratings are 1.2 GB)
    let owned;
    let train: &Ratings = match req.train {
        Dataset::Ratings(r) => r,
        other => {
            owned = other.clone().into_ratings()?;
            &owned
        }
    };
    let (mut out, fit) = run_factor_solver(req, solver, train, SGD_EPOCHS, true)?;
    let total = t0.elapsed().as_secs_f64();
    let epochs = fit.iterations.max(1) as f64;
    let sum = |key: &str| fit.history.iter().filter_map(|r| r.get(key)).sum::<f64>();
    let (init, steps) = (sum("init_seconds"), sum("step_seconds"));
    // training alone (grid + init + epochs, no evaluation): what LIBMF's fit time measures
    out.summary.insert("train_seconds".into(), json!(init + steps));
    out.summary.insert("init_seconds".into(), json!(init));
    out.summary.insert("epoch_seconds".into(), json!(steps / epochs));
    out.summary.insert("total_seconds".into(), json!(total));
    Ok(out)
}

fn run_lab_sgd(req: FitRequest<'_>) -> Result<FitOutcome> {
    ensure!(req.epochs != Some(0), "epochs must be at least 1");
    let params: LabSgd = parse_params("lab-sgd", &req.params, &["rank", "lr"])?;
    let solver = params.check()?;
    let train = req.train_ratings()?;
    run_factor_solver(req, solver, &train, LAB_EPOCHS, false).map(|(o, _)| o)
}
