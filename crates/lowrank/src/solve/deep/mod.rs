//! Deep matrix factorization (Arora, Cohen, Hu, Luo 2019, "Implicit
//! Regularization in Deep Matrix Factorization"; seed 001) and its
//! SVD-parametrized variant.
//!
//! - `deep` ([`DeepMf`]): the end-to-end matrix `W = W_N ⋯ W_1` of a linear
//!   network with hidden widths `hidden_sizes` (default all `n`, the
//!   research code's `[m] + [n] * depth`), trained from a small
//!   initialization by group RMSprop (default), plain gradient descent or
//!   Adam from [`crate::optim`]. See [`product`] for how the gradient is
//!   computed (cached prefix/suffix products, sparse products with the
//!   gradient of the loss, no autodiff).
//! - `deep-svd` ([`DeepSvd`]): `W = U diag(s_N ⊙ ⋯ ⊙ s_1) Vᵀ` with `U`, `V`
//!   kept orthonormal by a QR retraction, the "sigma layers" of seed 001;
//!   see [`svd`].
//!
//! # Conventions (what is implemented, exactly)
//! - **Loss**: the mean (not half the mean) of the squared errors over the
//!   observed entries, `L = (1/|Ω|) Σ_Ω (W_ij − Y_ij)²`, as `main.py`'s
//!   `(ys - ys_).pow(2).mean()`. Matrix sensing (`measurements = K`): the
//!   mean of `(<A_k, W> − y_k)²` over `K` Gaussian measurements
//!   (`gen_obs.py`: `A_k = randn(n, n) / n`, `y_k = <A_k, W*>`).
//!   PyTorch's `torch-dmf` peer uses `½ Σ` instead: its GD step `lr` equals
//!   ours at `lr · |Ω| / 2` (0.01 at 2000 observations = our 10).
//! - **Initialization**: each layer is drawn (`gaussian`: i.i.d.
//!   `N(0, 1/n)`; `uniform`: the same variance; `orthogonal`:
//!   (semi-)orthogonal; `identity`), then *all* layers are multiplied by the
//!   same factor `c` so that `||W_N ⋯ W_1||_F = init_scale · sqrt(min(m, n))`
//!   exactly. The research code draws `gaussian` / `uniform` layers with
//!   standard deviation `init_scale^(1/N) / sqrt(n)`, which gives this norm
//!   in expectation and only *checks* it within ±20 %; its `identity` gives
//!   it exactly; its `orthogonal` branch scales by
//!   `(init_scale · sqrt(n))^(1/N)`, i.e. `||W||_F = init_scale · n`, which
//!   disagrees with its own convention — we use `init_scale · sqrt(n)` for
//!   every initialization.
//! - **Stopping**: before each step the training loss is evaluated; at or
//!   below `train_thres` the run ends `converged` without stepping (as
//!   `main.py` breaks before `optimizer.step()`), else after `epochs` (or
//!   `n_iters`) steps.
//! - **Defaults** (research code: depth 1, `init_scale` 1e-3, GroupRMSprop
//!   lr 1e-3 / eps 1e-4, `train_thres` 1e-6): ours are depth 3, GroupRMSprop
//!   lr 1e-3 / eps 1e-4, `init_scale` **1e-5** and `train_thres` **1e-8**.
//!   Measured on the peers' planted problem (100x100, rank 5, 2000
//!   entries): from `init_scale` 1e-3 the unneeded singular values grow to
//!   0.1-0.2 (a ~2e-3 floor on the relative error); at `train_thres` 1e-6
//!   the test error is still ~5x the training RMSE (5e-3). With the defaults
//!   `deep` reaches 4.9e-4 (44.5k iterations).
//! - **Records**: every iteration's `objective` is the training loss at the
//!   start of the iteration. Every `n_dev_iters` iterations (and at the last
//!   one) the record also has `train_loss`, `test_loss` (MSE over all
//!   entries vs the ground truth, when one is given), `rel_error`
//!   (`||W − W*||_F / ||W*||_F`), `test_rmse` / `test_mae` (test set),
//!   `schatten` (`Σ σ_i^(2/N)`, as `main.py` logs it), `effective_rank`
//!   (Roy & Vetterli), `nuclear_norm`, `grad_norm` (Euclidean over all
//!   parameters), `grad_rms` (the research code's "grad"), `lr` (group
//!   RMSprop's adjusted learning rate of the step, else the base rate) and
//!   the vector `singular_values` (top `n_singulars_save`). With
//!   `n_singulars_save = 0` the periodic records skip the SVD (the spectral
//!   values are then only in the final summary), which makes a record cost
//!   about one matrix product instead of an SVD (~1-3 ms at n = 100).
//!
//! # The reproduction
//! `configs/mat-cmpl/*.toml` + `configs/opt/*.toml` mirror the research
//! code's configs; `examples/deep_mf.rs` runs the 2000/5000 × depth ×
//! `init_scale` table and `bench/RESULTS_deep.md` has the figures.

pub mod common;
pub mod kernels;
pub mod product;
pub mod svd;

use serde_json::{Map, Value, json};

pub use common::{DevEval, OptimizerKind, Sensing, Spectrum, Target};
pub use product::{DeepMf, DeepMfSolver, DeepModel, Init};
pub use svd::{DeepSvd, DeepSvdSolver, SvdModel};

use super::registry::{
    AlgoEntry, FitOutcome, FitRequest, FittedModel, eval_sets, insert_run_summary, insert_test_summary, parse_params,
};
use super::{Fit, Solver};
use crate::data::Ratings;
use crate::error::Result;
use crate::model::ModelState;
use crate::observe::Record;

/// Settings of `deep`.
pub const DEEP_KEYS: &[&str] = &[
    "depth",
    "hidden_sizes",
    "init_scale",
    "initialization",
    "optimizer",
    "lr",
    "eps",
    "train_thres",
    "n_iters",
    "n_dev_iters",
    "n_singulars_save",
    "measurements",
    "clip",
];

/// Settings of `deep-svd`.
pub const DEEP_SVD_KEYS: &[&str] = &[
    "depth",
    "rank",
    "init_scale",
    "optimizer",
    "lr",
    "eps",
    "train_thres",
    "n_iters",
    "n_dev_iters",
    "n_singulars_save",
    "measurements",
    "clip",
    "precondition",
];

/// Algorithms of this family, registered by name.
pub static ALGOS: &[AlgoEntry] = &[
    AlgoEntry {
        name: "deep",
        about: "deep matrix factorization W = W_N...W_1 from small init, group RMSprop/GD/Adam (Arora et al. 2019)",
        keys: DEEP_KEYS,
        run: run_deep,
        validate: |p| crate::solve::registry::parse_params::<DeepMf>("deep", p, DEEP_KEYS)?.check().map(drop),
    },
    AlgoEntry {
        name: "deep-svd",
        about: "SVD-parametrized deep factorization U diag(s_N...s_1) V^T, U and V kept orthonormal by a QR retraction",
        keys: DEEP_SVD_KEYS,
        run: run_deep_svd,
        validate: |p| crate::solve::registry::parse_params::<DeepSvd>("deep-svd", p, DEEP_SVD_KEYS)?.check().map(drop),
    },
];

fn run_deep_svd(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: DeepSvd = parse_params("deep-svd", &req.params, DEEP_SVD_KEYS)?;
    let (measurements, clip, n_iters, nsing, depth) = (p.measurements, p.clip, p.n_iters, p.n_singulars_save, p.depth);
    let solver = p.check()?;
    let train = req.train_ratings()?;
    ensure_dense_fits("deep-svd", train.shape(), depth, measurements)?;
    let target = common::make_target(&train, req.truth, measurements, req.seed)?;
    let (m, n) = target.shape();
    let rank = solver.params().rank_for(m, n)?;
    let eval = dev_eval(&req, &train, clip, nsing)?;
    let iters = req.epochs.unwrap_or(n_iters);
    let solver = solver.with_target(target).with_eval(eval.clone()).with_max_iters(iters);
    run_dense(req, solver, &train, iters, eval, depth, rank, |m: &SvdModel| m.end_to_end())
}

fn run_deep(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: DeepMf = parse_params("deep", &req.params, DEEP_KEYS)?;
    let (measurements, clip, n_iters, nsing) = (p.measurements, p.clip, p.n_iters, p.n_singulars_save);
    let depth = p.depth;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    ensure_dense_fits("deep", train.shape(), depth, measurements)?;
    let target = common::make_target(&train, req.truth, measurements, req.seed)?;
    let (m, n) = target.shape();
    let dims = solver.params().dims(m, n)?;
    // factors, their gradients and the optimizer's state for every layer
    let layer_values: u128 = dims.windows(2).map(|w| w[0] as u128 * w[1] as u128).sum();
    crate::error::ensure_fits_in_memory(
        4 * layer_values,
        &format!("deep with widths {dims:?} (factors, gradients, optimizer state)"),
        "use smaller hidden_sizes",
    )?;
    let eval = dev_eval(&req, &train, clip, nsing)?;
    let iters = req.epochs.unwrap_or(n_iters);
    let solver = solver.with_target(target).with_eval(eval.clone()).with_max_iters(iters);
    let rank = *dims.iter().min().expect("dims");
    run_dense(req, solver, &train, iters, eval, depth, rank, |m: &DeepModel| m.end_to_end())
}

/// Refuse a deep run whose dense matrices cannot fit in memory: the
/// end-to-end `m x n` matrix, its gradient and work buffers, one factor per
/// layer (widths up to `max(m, n)` by default) and, for matrix sensing, one
/// dense `m x n` measurement matrix each.
fn ensure_dense_fits(algo: &str, (m, n): (usize, usize), depth: usize, measurements: usize) -> Result<()> {
    let mn = (m as u128) * (n as u128);
    let side = (m.max(n) as u128).pow(2);
    let values = 4 * mn + (depth as u128) * side + (measurements as u128) * mn;
    crate::error::ensure_fits_in_memory(
        values,
        &format!("{algo} on a {m} x {n} matrix (dense products and factors)"),
        "use an algorithm that works on the observed entries only (sgd, als, softimpute-als)",
    )
}

/// The dev evaluation of a request: truth (checked against the shape), test
/// set, clipping range.
fn dev_eval(req: &FitRequest<'_>, train: &Ratings, clip: bool, nsing: usize) -> Result<DevEval> {
    let (test, truth) = eval_sets(req, train)?;
    let clip = if clip { train.value_range().map(|(a, b)| (a as f64, b as f64)) } else { None };
    Ok(DevEval { truth, test, clip, n_singulars_save: nsing })
}

/// Run a solver whose model has a dense end-to-end matrix and build the
/// standard summary.
#[allow(clippy::too_many_arguments)]
fn run_dense<'a, S, F>(
    mut req: FitRequest<'a>,
    solver: S,
    train: &'a Ratings,
    iters: usize,
    eval: DevEval,
    depth: usize,
    rank: usize,
    e2e: F,
) -> Result<FitOutcome>
where
    S: Solver<Data = Ratings>,
    S::Model: ModelState,
    F: Fn(&S::Model) -> faer::Mat<f64>,
{
    let algo = req.algo.clone();
    let params = req.params.clone();
    let (seed, threads) = (req.seed, req.threads);
    // ratings carry ids: the saved model keeps them (a dense input is positional)
    let with_ids = matches!(req.train, crate::io::Dataset::Ratings(_));
    let ex = req.executor(solver, train, iters);
    let fit: Fit<S::Model> = ex.run()?;
    let e = e2e(&fit.model);
    if e.col_iter().any(|c| c.iter().any(|x| !x.is_finite())) {
        // a run that stopped (time budget, interrupt, patience) between dev
        // records with finite factors whose product overflows
        return Err(crate::error::Error::Diverged {
            iteration: fit.iterations,
            what: "the end-to-end matrix".into(),
            hint: "the factors are finite but their product overflows; lower lr or init_scale".into(),
        });
    }
    let mut s = Map::new();
    s.insert("algo".into(), json!(algo));
    s.insert("rank".into(), json!(rank));
    s.insert("depth".into(), json!(depth));
    s.insert("epochs".into(), json!(fit.iterations));
    s.insert("iterations".into(), json!(fit.iterations));
    let train_rmse = crate::metrics::rmse(&e, train);
    s.insert("train_rmse".into(), json!(train_rmse));
    let last_obj = fit.history.last().and_then(|r| r.objective);
    s.insert("train_loss".into(), json!(last_obj));
    let mut rec = Record::default();
    eval.record(&e, depth, &mut rec)?;
    insert_test_summary(&mut s, eval.test.as_deref(), &e, eval.clip);
    for k in ["rel_error", "test_loss"] {
        s.insert(k.into(), rec.values.get(k).map_or(Value::Null, |v| json!(v)));
    }
    for k in ["effective_rank", "schatten", "nuclear_norm"] {
        s.insert(k.into(), rec.values.get(k).map_or(Value::Null, |v| json!(v)));
    }
    if let Some(sv) = rec.vectors.get("singular_values") {
        s.insert("singular_values".into(), json!(sv));
    }
    // first dev record at or below a relative error of 1e-3 (time-to-target)
    let hit = fit.history.iter().find(|r| r.values.get("rel_error").is_some_and(|&v| v <= 1e-3));
    s.insert("iters_to_rel_1e-3".into(), hit.map_or(Value::Null, |r| json!(r.iteration)));
    s.insert("seconds_to_rel_1e-3".into(), hit.map_or(Value::Null, |r| json!(r.elapsed)));
    s.insert("n_train".into(), json!(train.len()));
    insert_run_summary(&mut s, fit.seconds, &fit.termination, threads, seed, params);
    Ok(FitOutcome {
        model: FittedModel::Dense({
            let m = crate::model::DenseModel::new(e);
            if with_ids { m.labelled(train) } else { m }
        }),
        summary: s,
        history: fit.history,
        termination: fit.termination,
    })
}

#[cfg(test)]
mod tests;
