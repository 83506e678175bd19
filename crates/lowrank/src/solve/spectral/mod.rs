//! Spectral and convex methods: truncated and randomized SVD over linear
//! operators, SoftImpute, SVT, hard impute, projected gradient on the
//! nuclear-norm ball, Frank-Wolfe, exact nuclear-norm minimization and NMF.
//!
//! Each file registers its own algorithms in an `ALGOS` table; the registry
//! chains them (see [`algos`]).

pub mod linop;
pub mod nmf;
pub mod nuclear_ball;
pub mod nucmin;
pub mod softimpute;
pub mod svd;

use serde_json::Value;

use super::registry::{AlgoEntry, FitOutcome, FitRequest, parse_params, run_factor_solver};
use crate::error::Result;

pub use svd::{RsvdOptions, Svd, SvdParams};

/// The `svd` entry (this file); the other algorithms of the family are in
/// the tables of their own modules.
pub static ALGOS: &[AlgoEntry] = &[AlgoEntry {
    name: "svd",
    about: "truncated SVD of the (mean-centred, missing = 0) matrix: randomized (Halko-Martinsson-Tropp) or exact",
    keys: &["rank", "oversample", "power_iters", "center", "method"],
    run: run_svd,
    validate: |p| crate::solve::registry::parse_params::<SvdParams>("svd", p, ALGOS[0].keys)?.check().map(drop),
}];

/// Every algorithm of the family, table by table.
pub fn algos() -> impl Iterator<Item = &'static AlgoEntry> {
    [ALGOS, softimpute::ALGOS, nuclear_ball::ALGOS, nucmin::ALGOS, nmf::ALGOS].into_iter().flatten()
}

/// The `svd` runner: [`run_factor_solver`] plus `singular_values` and
/// `rel_residual` (`||A - U S V^T||_F / ||A||_F` of the centred matrix with
/// missing entries as 0, by the trace identity) in the summary.
fn run_svd(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: SvdParams = parse_params("svd", &req.params, ALGOS[0].keys)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    let (mut out, fit) = run_factor_solver(req, solver, &train, 1, false)?;
    if let Some(last) = fit.history.last() {
        if let Some(s) = last.vectors.get("singular_values") {
            out.summary.insert("singular_values".into(), Value::from(s.clone()));
        }
        if let Some(r) = last.values.get("rel_residual") {
            out.summary.insert("rel_residual".into(), Value::from(*r));
        }
    }
    Ok(out)
}
