//! The alternating least squares family.
//!
//! - [`explicit`] (`--algo als`): regularized ALS on explicit ratings, with
//!   weighted-lambda (ALS-WR) or plain ridge, optional global mean and biases,
//!   optional non-negativity.
//! - `altmin` (`--algo altmin`): the course notebook's alternating
//!   minimization (unregularized row-wise least squares), and its
//!   single-gradient-step variant.
//! - `implicit` (`--algo ials`): implicit-feedback ALS (Hu, Koren, Volinsky
//!   2008) with the Gram-matrix trick, solved by Cholesky or by a few
//!   warm-started conjugate-gradient steps.
//!
//! All of them solve many small independent least-squares problems per
//! sweep, one per row, in parallel; [`linalg`] holds the small dense kernels.

pub mod altmin;
pub mod explicit;
pub mod implicit;
pub mod linalg;

use rayon::prelude::*;
use serde_json::{Value, json};

use super::registry::{AlgoEntry, FitOutcome, FitRequest, FittedModel, parse_params, run_factor_solver};
use crate::data::Ratings;
use crate::error::{Error, Result};
use crate::metrics;

pub use altmin::{AltMin, AltMinSolver};
pub use explicit::{Als, AlsSolver, SweepOrder};
pub use implicit::{IalsInit, ImplicitAls, ImplicitAlsSolver};

/// Algorithms of this family, registered by name.
pub static ALGOS: &[AlgoEntry] = &[
    AlgoEntry {
        name: "als",
        about: "alternating least squares on explicit ratings: weighted-lambda (ALS-WR) or plain ridge, biases, optional non-negativity",
        keys: ALS_KEYS,
        run: run_als,
        validate: |p| crate::solve::registry::parse_params::<Als>("als", p, ALS_KEYS)?.check().map(drop),
    },
    AlgoEntry {
        name: "altmin",
        about: "the course notebook's alternating minimization: unregularized row-wise least squares (or one gradient step per block)",
        keys: ALTMIN_KEYS,
        run: run_altmin,
        validate: |p| crate::solve::registry::parse_params::<AltMin>("altmin", p, ALTMIN_KEYS)?.check().map(drop),
    },
    AlgoEntry {
        name: "ials",
        about: "implicit-feedback ALS (Hu, Koren, Volinsky 2008): ratings >= positive_threshold are positives; \
                CG or Cholesky row solves; reports P@10, NDCG@10, recall@10",
        keys: IALS_KEYS,
        run: run_ials,
        validate: |p| crate::solve::registry::parse_params::<ImplicitAls>("ials", p, IALS_KEYS)?.check().map(drop),
    },
];

const ALS_KEYS: &[&str] =
    &["rank", "reg", "reg_bias", "weighted_reg", "biases", "nonnegative", "init_scale", "tol", "first"];

const ALTMIN_KEYS: &[&str] = &["rank", "update", "lr", "init", "init_scale", "ridge", "tol"];

fn run_altmin(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: AltMin = parse_params("altmin", &req.params, ALTMIN_KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    run_factor_solver(req, solver, &train, altmin::DEFAULT_EPOCHS, false).map(|(o, _)| o)
}

fn run_als(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: Als = parse_params("als", &req.params, ALS_KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    run_factor_solver(req, solver, &train, explicit::DEFAULT_EPOCHS, true).map(|(o, _)| o)
}

const IALS_KEYS: &[&str] = &[
    "rank",
    "reg",
    "alpha",
    "confidence",
    "epsilon",
    "solver",
    "cg_steps",
    "init_scale",
    "init",
    "track_objective",
    "positive_threshold",
    "binarize",
];

/// Number of recommendations scored by `ials`'s ranking metrics.
pub const TOP_K: usize = 10;

/// Top-`k` ranking quality of `model` on the positives of `test` (already in
/// the model's index space), recommending for each user with at least one
/// test positive the `k` best items not among its `train` positives, as
/// `run_peer.py implicit-als` does.
pub fn evaluate_ranking(
    model: &crate::FactorModel,
    train: &Ratings,
    test: &Ratings,
    k: usize,
) -> metrics::RankingMetrics {
    let (tr, te) = (train.csr(), test.csr());
    let users: Vec<usize> = (0..test.nrows()).filter(|&u| te.lane_len(u) > 0).collect();
    let recs: Vec<Vec<u32>> = users
        .par_iter()
        .map(|&u| {
            let seen = if u < tr.outer_len() { tr.lane(u).0 } else { &[] };
            model.recommend(u, k, seen).into_iter().map(|(j, _)| j).collect()
        })
        .collect();
    let rel: Vec<Vec<u32>> = users.iter().map(|&u| te.lane(u).0.to_vec()).collect();
    metrics::ranking_metrics(&recs, &rel, k)
}

fn run_ials(mut req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: ImplicitAls = parse_params("ials", &req.params, IALS_KEYS)?;
    let (thr, binarize) = (p.positive_threshold, p.binarize);
    let solver = p.check()?;
    let train = req.train_ratings()?;
    let positives = train.filter(|_, _, v| v as f64 >= thr);
    let positives = if binarize { positives.map_values(|_| 1.0) } else { positives };
    if positives.is_empty() {
        return Err(Error::invalid(format!(
            "no training rating is >= positive_threshold = {thr}; lower it with --set positive_threshold=..."
        )));
    }
    let test = req.test.take();
    let (mut out, _) = run_factor_solver(req, solver, &positives, implicit::DEFAULT_EPOCHS, false)?;
    let s = &mut out.summary;
    s.insert("n_train_pos".into(), json!(positives.len()));
    s.insert("positive_threshold".into(), json!(thr));
    s.insert(
        "train_rmse_note".into(),
        json!("train_rmse is the RMSE of the scores against 1 on the training positives"),
    );
    if let Some(t) = test {
        let test = t.clone().into_ratings()?;
        let test_pos_all = test.filter(|_, _, v| v as f64 >= thr);
        let (test_pos, unseen) = train.align(&test_pos_all);
        let FittedModel::Factor(model) = &out.model else { unreachable!("ials produces factors") };
        let t0 = std::time::Instant::now();
        let r = evaluate_ranking(model, &positives, &test_pos, TOP_K);
        s.insert("p_at_10".into(), json!(r.precision));
        s.insert("precision_at_10_plain".into(), json!(r.precision_plain));
        s.insert("recall_at_10".into(), json!(r.recall));
        s.insert("ndcg_at_10".into(), json!(r.ndcg));
        s.insert("n_users".into(), json!(r.users));
        s.insert("n_test".into(), json!(test.len()));
        s.insert("n_test_pos".into(), json!(test_pos.len()));
        s.insert("test_unseen_pos".into(), json!(unseen));
        s.insert("eval_seconds".into(), json!(t0.elapsed().as_secs_f64()));
    }
    s.insert("test_rmse".into(), Value::Null);
    s.insert("test_mae".into(), Value::Null);
    Ok(out)
}
