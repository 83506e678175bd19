//! Non-negative matrix factorization `X ~ W H`, `W, H >= 0` (`--algo nmf`).
//!
//! Loss `1/2 ||M o (X - W H)||_F^2 + reg/2 (||W||_F^2 + ||H||_F^2)` (`M` the
//! 0/1 mask of observed entries: NaN in a dense input, absent triplets in a
//! sparse one; all ones for a complete matrix), or the generalized
//! Kullback-Leibler divergence for `method = "mu-kl"`. Methods:
//!
//! - `hals` (default): hierarchical alternating least squares, the exact
//!   coordinate minimization of one column of `W` (row of `H`) at a time
//!   (Cichocki and Phan 2009, "Fast local algorithms for large scale
//!   nonnegative matrix and tensor factorizations"). For a complete matrix it
//!   runs Gillis and Glineur's acceleration (2012, "Accelerated multiplicative
//!   updates and hierarchical ALS algorithms for nonnegative matrix
//!   factorization"): `X H^T` and `H H^T` are computed once per half-step and
//!   reused for up to `1 + alpha rho` inner sweeps (`alpha = 0.5`, `rho` the
//!   ratio of the cost of those products to a sweep), stopped when a sweep
//!   changes the factor by less than `delta = 0.1` of the first one. With
//!   missing entries the residual `M o (X - W H)` is kept and updated after
//!   each column (one sweep per half-step).
//! - `mu`: Lee and Seung's (2001, "Algorithms for non-negative matrix
//!   factorization") multiplicative updates for the Frobenius loss,
//!   `H <- H o (W^T (M o X)) / (W^T (M o W H) + reg H)`, which never increase
//!   the loss (the update minimizes a separable quadratic majorizer; a zero
//!   denominator leaves the entry unchanged instead of adding an epsilon, which
//!   would break the majorization argument).
//! - `mu-kl`: the multiplicative updates for the KL divergence
//!   `sum M o (X log(X / WH) - X + WH)`, same reference.
//!
//! Initialization (`init`): `random` (scikit-learn's: `sqrt(mean(X) / k) |N(0,
//! 1)|`), `nndsvd` (Boutsidis and Gallopoulos 2008: the positive parts of the
//! top-`k` singular pairs), `nndsvda` (default, scikit-learn's default: NNDSVD
//! with its zeros replaced by the mean of `X`). Missing entries count as the
//! mean of the observed ones for the SVD of the initialization only.
//!
//! Negative observed values are an error. The result is a
//! [`FactorModel`] with `u = W` and `v = H^T` (rank `k`), non-negative.
//! Per iteration the record holds `loss` (`1/2 ||M o (X - WH)||^2`, or the KL
//! divergence), the objective (loss plus the L2 terms) and the inner sweeps.

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::linop::{DenseOp, mul};
use super::nuclear_ball::pmul;
use super::svd::{RsvdOptions, Svd};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::io::Dataset;
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::registry::{AlgoEntry, FitOutcome, FitRequest, parse_params, run_factor_solver};
use crate::solve::{IterState, Solver};

/// Settings of `nmf`.
pub const KEYS: &[&str] = &["rank", "method", "init", "reg", "tol", "max_inner"];
/// Iterations when `epochs` is not given (scikit-learn's `max_iter = 200`).
pub const DEFAULT_EPOCHS: usize = 200;

/// Algorithms of this module, registered by name.
pub static ALGOS: &[AlgoEntry] = &[AlgoEntry {
    name: "nmf",
    about: "non-negative matrix factorization X ~ W H: accelerated HALS (default), Lee-Seung multiplicative updates (Frobenius, KL); missing entries masked",
    keys: KEYS,
    run: run_nmf,
    validate: |p| crate::solve::registry::parse_params::<Nmf>("nmf", p, KEYS)?.check().map(drop),
}];

fn run_nmf(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: Nmf = parse_params("nmf", &req.params, KEYS)?;
    let solver = p.check()?;
    if let Some((m, n)) = req.train.matrix_shape() {
        crate::error::ensure_fits_in_memory(
            4 * (m as u128) * (n as u128),
            &format!("nmf on a {m} x {n} matrix (dense data, mask and products)"),
            "use an algorithm that works on the observed entries only (sgd, als, softimpute-als)",
        )?;
    }
    let (a, mask) = match req.train {
        Dataset::Dense(x) => dense_input(x)?,
        Dataset::Ratings(r) => ratings_input(r)?,
        Dataset::Tensor(_) => return Err(Error::invalid("nmf needs a matrix, found a 3-way tensor")),
    };
    let solver = solver.with_matrix(a, mask)?;
    let train = req.train_ratings()?;
    let t0 = std::time::Instant::now();
    let (mut out, fit) = run_factor_solver(req, solver, &train, DEFAULT_EPOCHS, false)?;
    out.summary.insert("total_seconds".into(), json!(t0.elapsed().as_secs_f64()));
    if let Some(r) = fit.history.last() {
        if let Some(l) = r.values.get("loss") {
            out.summary.insert("loss".into(), json!(l));
        }
        if let Some(o) = r.objective {
            out.summary.insert("objective".into(), json!(o));
        }
    }
    Ok(out)
}

/// Why `data` cannot be factorized by `nmf`, when it holds a negative or
/// infinite value: the first such entry in reading order (a dense matrix by
/// rows, positions counted from 1 as in its file; ratings by their ids), how
/// many there are, and what to do. `None` when every (observed) value is
/// finite and `>= 0` (and for a tensor, which `nmf` refuses anyway). The
/// front end prefixes the file's name.
pub fn negative_values(data: &Dataset) -> Option<String> {
    match data {
        Dataset::Dense(x) => dense_negatives(x.as_ref()),
        Dataset::Ratings(r) => ratings_negatives(r),
        Dataset::Tensor(_) => None,
    }
}

/// [`negative_values`] of a NaN-masked dense matrix (NaN = missing).
fn dense_negatives(x: MatRef<'_, f64>) -> Option<String> {
    let bad = |i: usize, j: usize| {
        let v = x[(i, j)];
        !(v.is_nan() || (v.is_finite() && v >= 0.0))
    };
    let (m, n) = (x.nrows(), x.ncols());
    let count = (0..n).map(|j| (0..m).filter(|&i| bad(i, j)).count()).sum::<usize>();
    let (i, j) = (0..m).flat_map(|i| (0..n).map(move |j| (i, j))).find(|&(i, j)| bad(i, j))?;
    Some(not_nonnegative(&format!("row {}, column {} (counting from 1) is {}", i + 1, j + 1, x[(i, j)]), count))
}

/// [`negative_values`] of ratings.
fn ratings_negatives(r: &Ratings) -> Option<String> {
    let bad = |v: f32| !(v.is_finite() && v >= 0.0);
    let count = r.values().iter().filter(|&&v| bad(v)).count();
    let (i, j, v) = r.iter().find(|&(_, _, v)| bad(v))?;
    Some(not_nonnegative(
        &format!("the entry of row '{}', column '{}' is {v}", r.row_ids.id(i), r.col_ids.id(j)),
        count,
    ))
}

fn not_nonnegative(first: &str, count: usize) -> String {
    let more = if count > 1 { format!(" ({count} values are negative or not finite)") } else { String::new() };
    format!(
        "nmf needs non-negative data: {first}{more}; shift or clip the data, or use a factorization that allows \
         signs (svd, als)"
    )
}

/// A NaN-masked dense matrix as (values with missing = 0, mask if any missing).
pub fn dense_input(x: &Mat<f64>) -> Result<(Mat<f64>, Option<Mat<f64>>)> {
    let (m, n) = (x.nrows(), x.ncols());
    ensure!(m > 0 && n > 0, "nmf needs a non-empty matrix");
    if let Some(why) = dense_negatives(x.as_ref()) {
        return Err(Error::invalid(why));
    }
    let missing = x.col_iter().any(|c| c.iter().any(|v| v.is_nan()));
    let a = Mat::from_fn(m, n, |i, j| if x[(i, j)].is_nan() { 0.0 } else { x[(i, j)] });
    let mask = missing.then(|| Mat::from_fn(m, n, |i, j| if x[(i, j)].is_nan() { 0.0 } else { 1.0 }));
    ensure!(!missing || mask.as_ref().is_some_and(|k| k.sum() > 0.0), "nmf: every entry is missing");
    Ok((a, mask))
}

/// Sparse ratings as (values with missing = 0, mask unless complete).
pub fn ratings_input(r: &Ratings) -> Result<(Mat<f64>, Option<Mat<f64>>)> {
    ensure!(!r.is_empty(), "the training data has no entries");
    if let Some(why) = ratings_negatives(r) {
        return Err(Error::invalid(why));
    }
    let (m, n) = r.shape();
    let a = crate::data::dense::filled_dense(r, 0.0);
    let mask = (r.len() < m * n).then(|| crate::data::dense::mask_of(r));
    Ok((a, mask))
}

/// Factor of the default penalty of `nmf` on data with missing entries:
/// `reg = AUTO_REG * rms(a_ij)` over the observed entries. The loss grows with
/// the square of the data's scale and `||W||^2 + ||H||^2` with the scale
/// itself, so the penalty must grow linearly for the fit not to depend on the
/// units (`0.35 mean(a^2)`, the first rule, was the same on 1-5 star ratings
/// and shrank every model to zero on data 100 times larger).
pub const AUTO_REG: f64 = 1.3;

/// `--algo nmf` settings. Defaults: rank 20, `hals`, `nndsvda` (scikit-learn's
/// default init), no regularization on complete data (see [`Nmf::reg`]), `tol = 0` (run all iterations, as the
/// scikit-learn peer with `tol = 0`), at most `1 + alpha rho` inner sweeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nmf {
    /// Number of components `k`.
    pub rank: usize,
    /// `hals`, `mu` (Frobenius) or `mu-kl` (Kullback-Leibler).
    pub method: String,
    /// `random`, `nndsvd` or `nndsvda`.
    pub init: String,
    /// L2 penalty `reg/2 (||W||^2 + ||H||^2)`. Unset: 0 for a fully
    /// observed matrix; with missing entries [`AUTO_REG`] times the root mean
    /// square of the observed values, because a row or column with few
    /// observed entries leaves its factors unbounded otherwise (on
    /// MovieLens-100k, rank 10, no penalty predicts test entries of 10^7;
    /// this default gives test RMSE 0.94).
    pub reg: Option<f64>,
    /// Stop when the loss decreases by less than `tol` (relative) in an
    /// iteration (0 = never).
    pub tol: f64,
    /// Cap on HALS inner sweeps per half-step (0 = Gillis-Glineur's rule).
    pub max_inner: usize,
}

impl Default for Nmf {
    fn default() -> Self {
        Nmf { rank: 20, method: "hals".into(), init: "nndsvda".into(), reg: None, tol: 0.0, max_inner: 0 }
    }
}

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Hals,
    Mu,
    MuKl,
}

impl Nmf {
    /// Validate into a solver (the rank against the data when it is given).
    pub fn check(self) -> Result<NmfSolver> {
        ensure!(self.rank >= 1, "rank must be >= 1, got {}", self.rank);
        let method = match self.method.as_str() {
            "hals" => Method::Hals,
            "mu" => Method::Mu,
            "mu-kl" => Method::MuKl,
            o => return Err(Error::invalid(format!("method must be hals, mu or mu-kl, got '{o}'"))),
        };
        ensure!(
            ["random", "nndsvd", "nndsvda"].contains(&self.init.as_str()),
            "init must be random, nndsvd or nndsvda, got '{}'",
            self.init
        );
        if let Some(reg) = self.reg {
            ensure!(reg.is_finite() && reg >= 0.0, "reg must be >= 0, got {reg}");
        }
        ensure!(self.tol.is_finite() && self.tol >= 0.0, "tol must be >= 0, got {}", self.tol);
        Ok(NmfSolver {
            p: self,
            method,
            a: None,
            mask: None,
            w: Mat::zeros(0, 0),
            ht: Mat::zeros(0, 0),
            resid: None,
            prev_loss: f64::INFINITY,
            a_sq: f64::NAN,
            reg: 0.0,
        })
    }
}

/// The validated `nmf` solver. Holds the f64 matrix (from
/// [`NmfSolver::with_matrix`], or built from the ratings in `init`).
#[derive(Clone, Debug)]
pub struct NmfSolver {
    p: Nmf,
    method: Method,
    a: Option<Mat<f64>>,
    mask: Option<Mat<f64>>,
    w: Mat<f64>,
    ht: Mat<f64>,
    resid: Option<Mat<f64>>,
    prev_loss: f64,
    /// `||X||_F^2` of the complete matrix (NaN until first needed).
    a_sq: f64,
    /// The penalty in use (the setting, or the default for the data).
    reg: f64,
}

impl NmfSolver {
    /// Fit this matrix (missing entries 0, `mask` 1 where observed; `None`
    /// = complete) instead of the f32 values of the ratings passed to the
    /// executor (which must have the same shape).
    pub fn with_matrix(mut self, a: Mat<f64>, mask: Option<Mat<f64>>) -> Result<Self> {
        ensure!(a.nrows() > 0 && a.ncols() > 0, "nmf needs a non-empty matrix");
        if let Some(k) = &mask {
            ensure!(k.nrows() == a.nrows() && k.ncols() == a.ncols(), "the mask's shape differs from the matrix's");
        }
        for j in 0..a.ncols() {
            for i in 0..a.nrows() {
                let v = a[(i, j)];
                if mask.as_ref().is_some_and(|k| k[(i, j)] == 0.0) {
                    continue;
                }
                ensure!(
                    v.is_finite() && v >= 0.0,
                    "nmf needs non-negative data: row {}, column {} (counting from 1) is {v}",
                    i + 1,
                    j + 1
                );
            }
        }
        let mut a = a;
        if let Some(mk) = &mask {
            // hidden values never enter a product
            for j in 0..a.ncols() {
                for i in 0..a.nrows() {
                    if mk[(i, j)] == 0.0 {
                        a[(i, j)] = 0.0;
                    }
                }
            }
        }
        let k = self.p.rank;
        ensure!(k <= a.nrows().min(a.ncols()), "rank must be <= min(m, n) = {}, got {k}", a.nrows().min(a.ncols()));
        self.a_sq = f64::NAN;
        self.a = Some(a);
        self.mask = mask;
        Ok(self)
    }

    /// The factors `(W, H^T)` (`m x k`, `n x k`).
    pub fn factors(&self) -> (&Mat<f64>, &Mat<f64>) {
        (&self.w, &self.ht)
    }

    fn model(&self) -> FactorModel {
        FactorModel::from_dense(&self.w, &self.ht)
    }
}

/// `sum x^2` of a matrix.
fn sq(a: MatRef<'_, f64>) -> f64 {
    a.squared_norm_l2()
}

/// `<A, B>` of two equally shaped matrices.
fn dot(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
    (0..a.ncols()).map(|j| (0..a.nrows()).map(|i| a[(i, j)] * b[(i, j)]).sum::<f64>()).sum()
}

/// NNDSVD (Boutsidis and Gallopoulos 2008) of the dense `a` (`m x n`), rank
/// `k`; with `fill_mean`, zeros become `mean(a)` (nndsvda).
fn nndsvd(a: &Mat<f64>, k: usize, fill_mean: bool, seed: u64) -> Result<(Mat<f64>, Mat<f64>)> {
    let (m, n) = (a.nrows(), a.ncols());
    let svd = if k + 10 >= m.min(n) {
        Svd::truncated(a.as_ref(), k)?
    } else {
        Svd::randomized(&DenseOp(a.as_ref()), k, &RsvdOptions { oversample: 10, power_iters: 4, seed })?
    };
    let mut w = Mat::zeros(m, k);
    let mut ht = Mat::zeros(n, k);
    let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
    for t in 0..k {
        let x: Vec<f64> = (0..m).map(|i| svd.u[(i, t)]).collect();
        let y: Vec<f64> = (0..n).map(|j| svd.v[(j, t)]).collect();
        let (u, v, sigma) = if t == 0 {
            // the leading pair can be taken non-negative (Perron-Frobenius)
            let u: Vec<f64> = x.iter().map(|v| v.abs()).collect();
            let v: Vec<f64> = y.iter().map(|v| v.abs()).collect();
            (u, v, 1.0)
        } else {
            let xp: Vec<f64> = x.iter().map(|v| v.max(0.0)).collect();
            let xn: Vec<f64> = x.iter().map(|v| (-v).max(0.0)).collect();
            let yp: Vec<f64> = y.iter().map(|v| v.max(0.0)).collect();
            let yn: Vec<f64> = y.iter().map(|v| (-v).max(0.0)).collect();
            let (nxp, nyp, nxn, nyn) = (norm(&xp), norm(&yp), norm(&xn), norm(&yn));
            let (mp, mn) = (nxp * nyp, nxn * nyn);
            if mp > mn {
                (xp.iter().map(|v| v / nxp).collect(), yp.iter().map(|v| v / nyp).collect(), mp)
            } else if mn > 0.0 {
                (xn.iter().map(|v| v / nxn).collect(), yn.iter().map(|v| v / nyn).collect(), mn)
            } else {
                (vec![0.0; m], vec![0.0; n], 0.0)
            }
        };
        let l = (svd.s[t] * sigma).sqrt();
        for i in 0..m {
            w[(i, t)] = l * u[i];
        }
        for j in 0..n {
            ht[(j, t)] = l * v[j];
        }
    }
    let mean = a.sum() / (m * n) as f64;
    for f in [&mut w, &mut ht] {
        for t in 0..k {
            for x in f.col_as_slice_mut(t) {
                if *x < 1e-6 {
                    *x = if fill_mean { mean } else { 0.0 };
                }
            }
        }
    }
    Ok((w, ht))
}

/// One (accelerated) HALS half-step on `f` (`rows x k`) for the normal
/// equations `f Q = P` (`P = X H^T`, `Q = H H^T` for `W`): Gauss-Seidel over
/// the columns, each `f_t <- max(0, f_t + (P_t - reg f_t - f Q_t) / (Q_tt +
/// reg))`, repeated while a sweep changes `f` by more than `delta` times the
/// first sweep's change, at most `max_inner` times. Returns the sweeps done.
///
/// The update of a row of `f` involves only that row (and `P`'s), so the
/// rows are split into one block per thread of the pool and each block runs
/// the sweep on its own; only the change is summed between sweeps (in block
/// order: the same result for the same thread count).
fn hals_sweeps(f: &mut Mat<f64>, p: &Mat<f64>, q: &Mat<f64>, reg: f64, max_inner: usize, delta: f64) -> usize {
    use rayon::prelude::*;
    let rows = f.nrows();
    let chunks = rayon::current_num_threads().min(rows / 256).max(1);
    let step = rows.div_ceil(chunks);
    let mut parts: Vec<(usize, Mat<f64>, Mat<f64>)> = (0..chunks)
        .map(|c| {
            let i0 = (c * step).min(rows);
            let len = step.min(rows - i0);
            (i0, f.subrows(i0, len).to_owned(), p.subrows(i0, len).to_owned())
        })
        .collect();
    let mut first = 0.0;
    let mut sweeps = 0;
    for inner in 0..max_inner.max(1) {
        let changes: Vec<f64> = if chunks == 1 {
            parts.iter_mut().map(|(_, fc, pc)| hals_sweep(fc, pc, q, reg)).collect()
        } else {
            parts.par_iter_mut().map(|(_, fc, pc)| hals_sweep(fc, pc, q, reg)).collect()
        };
        let change: f64 = changes.iter().sum();
        sweeps += 1;
        if inner == 0 {
            first = change;
        } else if change <= delta * delta * first {
            break;
        }
    }
    for (i0, fc, _) in parts {
        f.subrows_mut(i0, fc.nrows()).copy_from(&fc);
    }
    sweeps
}

/// One Gauss-Seidel sweep of [`hals_sweeps`] over the columns of `f`;
/// returns the squared change.
fn hals_sweep(f: &mut Mat<f64>, p: &Mat<f64>, q: &Mat<f64>, reg: f64) -> f64 {
    let (rows, k) = (f.nrows(), f.ncols());
    let mut g = vec![0.0; rows];
    let mut change = 0.0;
    for t in 0..k {
        let den = q[(t, t)] + reg;
        if den <= 0.0 {
            continue;
        }
        g.copy_from_slice(p.col_as_slice(t));
        for s in 0..k {
            let qs = q[(s, t)];
            if qs != 0.0 {
                for (gi, fi) in g.iter_mut().zip(f.col_as_slice(s)) {
                    *gi -= fi * qs;
                }
            }
        }
        for (fi, gi) in f.col_as_slice_mut(t).iter_mut().zip(&g) {
            let old = *fi;
            let new = (old + (gi - reg * old) / den).max(0.0);
            change += (new - old) * (new - old);
            *fi = new;
        }
    }
    change
}

/// HALS half-step with a mask: `r = M o (X - W H)` is kept up to date;
/// column `t` of `f` (`W`, or `H^T` with everything transposed) becomes
/// `max(0, sum_j M (r + f_t h_t) h_t / (sum_j M h_t^2 + reg))` row by row.
/// `other` is the factor not being updated (`H^T` when `f = W`), `by_rows`
/// says whether rows of `f` are rows of `r`.
fn hals_masked(f: &mut Mat<f64>, other: &Mat<f64>, r: &mut Mat<f64>, mask: &Mat<f64>, reg: f64, by_rows: bool) {
    let k = f.ncols();
    let (m, n) = (r.nrows(), r.ncols());
    for t in 0..k {
        let h = other.col_as_slice(t);
        let fc = f.col_as_slice_mut(t);
        if by_rows {
            // f = W (m x k), h = H^T[:, t] (n)
            let mut num = vec![0.0; m];
            let mut den = vec![0.0; m];
            for j in 0..n {
                let hj = h[j];
                if hj == 0.0 {
                    continue;
                }
                let (rc, mc) = (r.col_as_slice(j), mask.col_as_slice(j));
                for i in 0..m {
                    num[i] += rc[i] * hj;
                    den[i] += mc[i] * hj * hj;
                }
            }
            let mut delta = vec![0.0; m];
            for i in 0..m {
                let old = fc[i];
                let new = if den[i] + reg > 0.0 { ((num[i] + old * den[i]) / (den[i] + reg)).max(0.0) } else { old };
                delta[i] = new - old;
                fc[i] = new;
            }
            for j in 0..n {
                let hj = h[j];
                if hj == 0.0 {
                    continue;
                }
                let mc = mask.col_as_slice(j).to_vec();
                let rc = r.col_as_slice_mut(j);
                for i in 0..m {
                    rc[i] -= mc[i] * delta[i] * hj;
                }
            }
        } else {
            // f = H^T (n x k), h = W[:, t] (m)
            for j in 0..n {
                let (rc, mc) = (r.col_as_slice(j), mask.col_as_slice(j));
                let mut num = 0.0;
                let mut den = 0.0;
                for i in 0..m {
                    num += rc[i] * h[i];
                    den += mc[i] * h[i] * h[i];
                }
                let old = fc[j];
                let new = if den + reg > 0.0 { ((num + old * den) / (den + reg)).max(0.0) } else { old };
                let d = new - old;
                fc[j] = new;
                if d != 0.0 {
                    let mc = mask.col_as_slice(j).to_vec();
                    let rc = r.col_as_slice_mut(j);
                    for i in 0..m {
                        rc[i] -= mc[i] * d * h[i];
                    }
                }
            }
        }
    }
}

/// `f <- f o num / den` entrywise (unchanged where `den <= 0`).
fn mu_apply(f: &mut Mat<f64>, num: &Mat<f64>, den: &Mat<f64>) {
    for t in 0..f.ncols() {
        let (nc, dc) = (num.col_as_slice(t), den.col_as_slice(t));
        for (i, x) in f.col_as_slice_mut(t).iter_mut().enumerate() {
            if dc[i] > 0.0 {
                *x *= nc[i].max(0.0) / dc[i];
            }
        }
    }
}

/// Generalized KL divergence `sum M (x log(x / y) - x + y)`, `y = W H`.
fn kl(a: &Mat<f64>, mask: Option<&Mat<f64>>, wh: &Mat<f64>) -> f64 {
    let mut t = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            if mask.is_some_and(|k| k[(i, j)] == 0.0) {
                continue;
            }
            let (x, y) = (a[(i, j)], wh[(i, j)]);
            t += if x > 0.0 { x * (x / y).ln() - x + y } else { y };
        }
    }
    t
}

impl NmfSolver {
    fn loss(&self, a: &Mat<f64>) -> f64 {
        match self.method {
            Method::MuKl => {
                let wh = mul(self.w.as_ref(), self.ht.as_ref().transpose());
                kl(a, self.mask.as_ref(), &wh)
            }
            _ => match &self.resid {
                Some(r) => 0.5 * sq(r.as_ref()),
                None => self.frob_loss(a),
            },
        }
    }

    fn frob_loss(&self, a: &Mat<f64>) -> f64 {
        let mut r = mul(self.w.as_ref(), self.ht.as_ref().transpose());
        for j in 0..a.ncols() {
            for i in 0..a.nrows() {
                let m = self.mask.as_ref().map_or(1.0, |k| k[(i, j)]);
                r[(i, j)] = m * (a[(i, j)] - r[(i, j)]);
            }
        }
        0.5 * sq(r.as_ref())
    }

    fn reg_term(&self) -> f64 {
        0.5 * self.reg * (sq(self.w.as_ref()) + sq(self.ht.as_ref()))
    }

    fn masked_product(&self) -> Mat<f64> {
        let mut wh = mul(self.w.as_ref(), self.ht.as_ref().transpose());
        if let Some(k) = &self.mask {
            for j in 0..wh.ncols() {
                for i in 0..wh.nrows() {
                    wh[(i, j)] *= k[(i, j)];
                }
            }
        }
        wh
    }
}

impl Solver for NmfSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn name(&self) -> &'static str {
        "nmf"
    }

    fn divergence_hint(&self) -> String {
        "check the data for huge values, or use method = hals".into()
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        if self.a.is_none() {
            let (a, mask) = ratings_input(data)?;
            *self = self.clone().with_matrix(a, mask)?;
        }
        let Some(a) = self.a.as_ref() else { return Err(Error::invalid("nmf: no data")) }; // ok: set just above
        let (m, n) = (a.nrows(), a.ncols());
        ensure!(
            data.shape() == (m, n),
            "the ratings are {}x{}, the nmf matrix {m}x{n}",
            data.shape().0,
            data.shape().1
        );
        let k = self.p.rank;
        let count = self.mask.as_ref().map_or((m * n) as f64, |x| x.sum());
        let mean = a.sum() / count;
        // hidden entries are 0 in `a`, so the sum of squares is over the observed ones
        self.reg =
            self.p.reg.unwrap_or(if self.mask.is_some() { AUTO_REG * (sq(a.as_ref()) / count).sqrt() } else { 0.0 });
        let (w, ht) = match self.p.init.as_str() {
            "random" => {
                let s = (mean / k as f64).sqrt();
                let w = Mat::from_fn(m, k, |_, _| s * rng::normal(rng).abs());
                let ht = Mat::from_fn(n, k, |_, _| s * rng::normal(rng).abs());
                (w, ht)
            }
            init => {
                let filled = match &self.mask {
                    Some(mk) => Mat::from_fn(m, n, |i, j| if mk[(i, j)] > 0.0 { a[(i, j)] } else { mean }),
                    None => a.clone(),
                };
                nndsvd(&filled, k, init == "nndsvda", rng::uniform(rng).to_bits())?
            }
        };
        self.w = w;
        self.ht = ht;
        self.resid = None;
        if let (Method::Hals, Some(mk)) = (self.method, &self.mask) {
            let wh = mul(self.w.as_ref(), self.ht.as_ref().transpose());
            self.resid = Some(Mat::from_fn(m, n, |i, j| mk[(i, j)] * (a[(i, j)] - wh[(i, j)])));
        }
        self.prev_loss = f64::INFINITY;
        Ok(self.model())
    }

    fn step(&mut self, _data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let a = self.a.take().ok_or_else(|| Error::invalid("nmf: step before init"))?;
        let (m, n) = (a.nrows(), a.ncols());
        let k = self.p.rank;
        let reg = self.reg;
        let mut sweeps = 0usize;
        let mut loss = match (self.method, self.mask.clone()) {
            (Method::Hals, None) => {
                // Gillis-Glineur: rho = 1 + (cost of X H^T and H H^T) / (cost of a sweep)
                let inner = |rows: usize, cols: usize| {
                    if self.p.max_inner > 0 {
                        self.p.max_inner
                    } else {
                        let rho = 1.0 + (rows * cols * k + cols * k * k) as f64 / (rows * (k + 1) * k) as f64;
                        1 + (0.5 * rho).floor() as usize
                    }
                };
                let p = pmul(a.as_ref(), self.ht.as_ref()); // X H^T, m x k
                let q = pmul(self.ht.as_ref().transpose(), self.ht.as_ref());
                sweeps += hals_sweeps(&mut self.w, &p, &q, reg, inner(m, n), 0.1);
                let p = pmul(a.as_ref().transpose(), self.w.as_ref()); // X^T W, n x k
                let q = pmul(self.w.as_ref().transpose(), self.w.as_ref());
                sweeps += hals_sweeps(&mut self.ht, &p, &q, reg, inner(n, m), 0.1);
                // ||X - W H||^2 = ||X||^2 - 2 <X^T W, H^T> + <W^T W, H H^T>
                let hh = pmul(self.ht.as_ref().transpose(), self.ht.as_ref());
                if !self.a_sq.is_finite() {
                    self.a_sq = sq(a.as_ref());
                }
                let v = self.a_sq - 2.0 * dot(p.as_ref(), self.ht.as_ref()) + dot(q.as_ref(), hh.as_ref());
                0.5 * v.max(0.0)
            }
            (Method::Hals, Some(mk)) => {
                let mut r = self.resid.take().ok_or_else(|| Error::invalid("nmf: step before init"))?;
                hals_masked(&mut self.w, &self.ht, &mut r, &mk, reg, true);
                hals_masked(&mut self.ht, &self.w, &mut r, &mk, reg, false);
                sweeps = 2;
                let l = 0.5 * sq(r.as_ref());
                self.resid = Some(r);
                l
            }
            (Method::Mu, _) => {
                // H first (Lee-Seung order), then W; the data has missing = 0, so W^T (M o X) = W^T X
                let wh = self.masked_product();
                let num = mul(a.as_ref().transpose(), self.w.as_ref()); // (W^T X)^T
                let mut den = mul(wh.as_ref().transpose(), self.w.as_ref());
                den += &self.ht * faer::Scale(reg);
                mu_apply(&mut self.ht, &num, &den);
                let wh = self.masked_product();
                let num = mul(a.as_ref(), self.ht.as_ref());
                let mut den = mul(wh.as_ref(), self.ht.as_ref());
                den += &self.w * faer::Scale(reg);
                mu_apply(&mut self.w, &num, &den);
                sweeps = 2;
                self.frob_loss(&a)
            }
            (Method::MuKl, mk) => {
                // H <- H o W^T (M o X / WH) / (W^T M + reg H), then W likewise
                let ratio = |w: &Mat<f64>, ht: &Mat<f64>| {
                    let wh = mul(w.as_ref(), ht.as_ref().transpose());
                    Mat::from_fn(m, n, |i, j| {
                        let x = a[(i, j)];
                        if x > 0.0 && mk.as_ref().is_none_or(|q| q[(i, j)] > 0.0) { x / wh[(i, j)] } else { 0.0 }
                    })
                };
                let ones = mk.clone().unwrap_or_else(|| Mat::from_fn(m, n, |_, _| 1.0));
                let q = ratio(&self.w, &self.ht);
                let num = mul(q.as_ref().transpose(), self.w.as_ref());
                let mut den = mul(ones.as_ref().transpose(), self.w.as_ref());
                den += &self.ht * faer::Scale(reg);
                mu_apply(&mut self.ht, &num, &den);
                let q = ratio(&self.w, &self.ht);
                let num = mul(q.as_ref(), self.ht.as_ref());
                let mut den = mul(ones.as_ref(), self.ht.as_ref());
                den += &self.w * faer::Scale(reg);
                mu_apply(&mut self.w, &num, &den);
                sweeps = 2;
                let wh = mul(self.w.as_ref(), self.ht.as_ref().transpose());
                kl(&a, mk.as_ref(), &wh)
            }
        };
        // all of W or all of H zero while the data has a positive entry: a
        // fixed point of every update (no later step moves it), reached
        // when the penalty outweighs the fit, or when the data span so many
        // orders of magnitude that the residual's rounding swamps the small
        // entries (one 1e25 among 1-5 ratings)
        let top = a.norm_max();
        if (sq(self.w.as_ref()) == 0.0 || sq(self.ht.as_ref()) == 0.0) && top > 0.0 {
            if self.method != Method::MuKl {
                // exact, from the data (the masked residual kept by HALS may
                // have lost it): W H = 0 here
                loss = self.frob_loss(&a);
            }
            let least = (0..n).flat_map(|j| (0..m).map(move |i| (i, j))).fold(f64::INFINITY, |lo, (i, j)| {
                let v = a[(i, j)];
                if v > 0.0 && self.mask.as_ref().is_none_or(|k| k[(i, j)] > 0.0) { lo.min(v) } else { lo }
            });
            state.stalled = Some(format!(
                "nmf: the factors became zero, a fixed point of the updates (no later iteration moves them); the \
                 positive data span {least:.3e} to {top:.3e} and reg is {reg:.3e}: try a smaller reg, init = \
                 \"random\", or rescale or clip the extreme values"
            ));
        }
        self.a = Some(a);
        let obj = loss + self.reg_term();
        *model = self.model();
        let r = &mut state.record;
        r.objective = Some(obj);
        r.values.insert("loss".into(), loss);
        r.values.insert("sweeps".into(), sweeps as f64);
        if self.p.tol > 0.0 && self.prev_loss.is_finite() && self.prev_loss - obj <= self.p.tol * self.prev_loss.abs() {
            state.converged = true;
        }
        self.prev_loss = obj;
        Ok(())
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        let col = |x: &Mat<f64>| -> Vec<f64> { (0..x.ncols()).flat_map(|t| x.col_as_slice(t).to_vec()).collect() };
        let s = json!({"w": col(&self.w), "ht": col(&self.ht), "prev": self.prev_loss.is_finite().then_some(self.prev_loss)});
        serde_json::to_vec(&s).map_err(|e| Error::invalid(e.to_string()))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        #[derive(Deserialize)]
        struct S {
            w: Vec<f64>,
            ht: Vec<f64>,
            prev: Option<f64>,
        }
        let s: S = serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("bad nmf state: {e}")))?;
        let (m, n, k) = (self.w.nrows(), self.ht.nrows(), self.p.rank);
        ensure!(s.w.len() == m * k && s.ht.len() == n * k, "bad nmf state: factor sizes");
        self.w = Mat::from_fn(m, k, |i, t| s.w[t * m + i]);
        self.ht = Mat::from_fn(n, k, |j, t| s.ht[t * n + j]);
        self.prev_loss = s.prev.unwrap_or(f64::INFINITY);
        if let (Some(a), Some(mk)) = (&self.a, &self.mask)
            && self.method == Method::Hals
        {
            let wh = mul(self.w.as_ref(), self.ht.as_ref().transpose());
            self.resid = Some(Mat::from_fn(m, n, |i, j| mk[(i, j)] * (a[(i, j)] - wh[(i, j)])));
        }
        Ok(())
    }
}

impl NmfSolver {
    /// The current loss (for tests and callers driving `step` by hand).
    pub fn current_loss(&self) -> Option<f64> {
        self.a.as_ref().map(|a| self.loss(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solve::Executor;

    fn planted(m: usize, n: usize, k: usize, seed: u64) -> Mat<f64> {
        let mut g = rng::rng(seed);
        let w = Mat::from_fn(m, k, |_, _| rng::uniform(&mut g));
        let h = Mat::from_fn(k, n, |_, _| rng::uniform(&mut g));
        &w * &h
    }

    fn noisy(m: usize, n: usize, k: usize, seed: u64) -> Mat<f64> {
        let mut a = planted(m, n, k, seed);
        let mut g = rng::rng(seed + 100);
        for j in 0..n {
            for i in 0..m {
                a[(i, j)] += 0.3 * rng::uniform(&mut g);
            }
        }
        a
    }

    fn fit(a: &Mat<f64>, p: Nmf, iters: usize) -> (crate::solve::Fit<FactorModel>, Vec<f64>) {
        let (x, mask) = dense_input(a).unwrap();
        let s = p.check().unwrap().with_matrix(x, mask).unwrap();
        let data = crate::data::dense::ratings_from_masked(a).unwrap();
        let fit = Executor::new(s, &data).max_iters(iters).run().unwrap();
        let losses = fit.history.iter().map(|r| r.values["loss"]).collect();
        (fit, losses)
    }

    fn nonneg(m: &FactorModel) -> bool {
        m.u.iter().chain(&m.v).all(|&x| x >= 0.0)
    }

    /// Factors that became zero stop the run with a message (they are a
    /// fixed point of every update) and the loss reported is the zero
    /// model's, computed exactly: on 1-5 values with one 1e25 among them
    /// (masked HALS: the residual's rounding swamps the small entries) and
    /// on ordinary data with a penalty that outweighs the fit.
    #[test]
    fn factors_that_become_zero_stop_the_run_with_the_exact_loss() {
        // 1-5 values, 42 % observed (as a MovieLens-like sample)
        let (m, n) = (60, 40);
        let mut a = noisy(m, n, 3, 7);
        for j in 0..n {
            for i in 0..m {
                a[(i, j)] = if (7 * i + 13 * j) % 12 >= 5 { f64::NAN } else { 1.0 + (a[(i, j)] * 4.0 / 3.3).round() };
            }
        }
        let zero_loss = |a: &Mat<f64>| {
            0.5 * (0..n)
                .flat_map(|j| (0..m).map(move |i| a[(i, j)]))
                .filter(|v| !v.is_nan())
                .map(|v| v * v)
                .sum::<f64>()
        };
        let mut outlier = a.clone();
        outlier[(3, 8)] = 1e25;
        for (data, p) in [
            (outlier, Nmf { rank: 2, ..Default::default() }),
            (a.clone(), Nmf { rank: 2, reg: Some(1e6), ..Default::default() }),
            (a.clone(), Nmf { rank: 2, reg: Some(1e6), method: "mu".into(), ..Default::default() }),
        ] {
            let (fit, losses) = fit(&data, p.clone(), 50);
            let zero = fit.model.u.iter().all(|&x| x == 0.0) || fit.model.v.iter().all(|&x| x == 0.0);
            assert!(zero, "{p:?}: expected the factors to vanish here");
            match &fit.termination {
                crate::solve::Termination::Stalled { message } => assert!(message.contains("became zero"), "{message}"),
                t => panic!("{p:?}: {t:?}"),
            }
            let want = zero_loss(&data);
            let got = *losses.last().unwrap();
            assert!((got - want).abs() <= 1e-12 * want, "{p:?}: loss {got:e}, zero model {want:e}");
        }
        // ordinary data and settings do not stop this way
        let (fit, _) = fit(&a, Nmf { rank: 2, ..Default::default() }, 20);
        assert!(matches!(fit.termination, crate::solve::Termination::MaxIters), "{:?}", fit.termination);
    }

    /// The row-split HALS sweeps (two blocks in a 2-thread pool) equal the
    /// single-block sweeps (one thread): the rows are independent.
    #[test]
    fn parallel_hals_sweeps_equal_serial() {
        let mut g = rng::rng(5);
        let (rows, k) = (700, 6);
        let f0 = Mat::from_fn(rows, k, |_, _| rng::uniform(&mut g));
        let hh = Mat::from_fn(40, k, |_, _| rng::uniform(&mut g));
        let q = hh.transpose() * &hh;
        let p = Mat::from_fn(rows, k, |_, _| 10.0 * rng::uniform(&mut g));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut f = f0.clone();
            // delta = 0: every sweep runs, so the stop test cannot differ
            let sweeps = pool.install(|| hals_sweeps(&mut f, &p, &q, 0.1, 5, 0.0));
            (f, sweeps)
        };
        let (a, sa) = run(1);
        let (b, sb) = run(2);
        assert_eq!((sa, sb), (5, 5));
        assert!((a - b).norm_max() == 0.0);
    }

    #[test]
    fn mu_is_monotone() {
        let a = noisy(30, 20, 3, 1);
        let mut masked = a.clone();
        masked[(0, 0)] = f64::NAN;
        masked[(5, 7)] = f64::NAN;
        for (x, method, init) in
            [(&a, "mu", "random"), (&a, "mu-kl", "random"), (&masked, "mu", "nndsvda"), (&masked, "mu-kl", "nndsvda")]
        {
            for reg in [0.0, 0.1] {
                let (f, losses) = fit(
                    x,
                    Nmf { rank: 4, method: method.into(), init: init.into(), reg: Some(reg), ..Default::default() },
                    200,
                );
                let objs: Vec<f64> = f.history.iter().map(|r| r.objective.unwrap()).collect();
                for w in objs.windows(2) {
                    assert!(w[1] <= w[0] * (1.0 + 1e-12), "{method} {init} reg {reg}: {} -> {}", w[0], w[1]);
                }
                assert!(losses[199] < losses[0]);
                assert!(nonneg(&f.model));
            }
        }
    }

    #[test]
    fn hals_reaches_long_mu_loss() {
        let a = noisy(30, 20, 3, 2);
        let (_, mu) = fit(&a, Nmf { rank: 3, method: "mu".into(), ..Default::default() }, 20000);
        let (f, hals) = fit(&a, Nmf { rank: 3, ..Default::default() }, 300);
        let (best_mu, h) = (mu[mu.len() - 1], hals[hals.len() - 1]);
        assert!(h <= best_mu * (1.0 + 1e-6), "hals {h} vs mu {best_mu}");
        // the recorded loss (from Gram matrices) equals the direct one
        let wh = &f.model.u_dense() * f.model.v_dense().transpose();
        let direct = 0.5 * (&a - wh).squared_norm_l2();
        assert!((direct - h).abs() < 1e-5 * h, "{direct} vs {h}");
        // KKT of the non-negative least squares at the HALS solution:
        // grad_W = (WH - X) H^T >= 0, W o grad_W = 0 (relative to the scale)
        let (w, ht) = (f.model.u_dense(), f.model.v_dense());
        let gw = (&w * ht.transpose() - &a) * &ht;
        let scale = (&a * &ht).norm_max();
        for t in 0..3 {
            for i in 0..30 {
                assert!(gw[(i, t)] >= -1e-3 * scale);
                assert!((w[(i, t)] * gw[(i, t)]).abs() <= 1e-3 * scale * w.norm_max());
            }
        }
    }

    #[test]
    fn exact_factorization_of_planted_matrix() {
        let a = planted(40, 30, 3, 3);
        for init in ["nndsvda", "nndsvd", "random"] {
            let (f, l) = fit(&a, Nmf { rank: 3, init: init.into(), ..Default::default() }, 500);
            let rel = (2.0 * l[l.len() - 1]).sqrt() / a.norm_l2();
            assert!(rel < 1e-4, "{init}: {rel}");
            assert!(nonneg(&f.model));
        }
        // masked HALS on 80% of the planted entries fits them too and predicts the rest
        let mut g = rng::rng(9);
        let x = Mat::from_fn(40, 30, |i, j| if rng::uniform(&mut g) < 0.2 { f64::NAN } else { a[(i, j)] });
        // (noiseless: no penalty, so the fit can be exact)
        let (f, l) = fit(&x, Nmf { rank: 3, reg: Some(0.0), ..Default::default() }, 1500);
        assert!((2.0 * l[l.len() - 1]).sqrt() / a.norm_l2() < 1e-3, "{}", l[l.len() - 1]);
        let wh = &f.model.u_dense() * f.model.v_dense().transpose();
        assert!((&wh - &a).norm_l2() / a.norm_l2() < 2e-2, "{}", (&wh - &a).norm_l2() / a.norm_l2());
    }

    #[test]
    fn the_default_penalty_follows_the_data_scale() {
        // a masked matrix and the same matrix in units 100 times larger: the
        // default penalty must not shrink the second fit to zero (it did when
        // it grew with the square of the scale)
        let a = noisy(30, 20, 3, 8);
        let mut g = rng::rng(3);
        let x = Mat::from_fn(30, 20, |i, j| if rng::uniform(&mut g) < 0.3 { f64::NAN } else { a[(i, j)] });
        let rel = |scale: f64| {
            let xs = Mat::from_fn(30, 20, |i, j| x[(i, j)] * scale);
            let (f, _) = fit(&xs, Nmf { rank: 3, ..Default::default() }, 200);
            let wh = &f.model.u_dense() * f.model.v_dense().transpose();
            let (mut e, mut t) = (0.0, 0.0);
            for j in 0..20 {
                for i in 0..30 {
                    if !xs[(i, j)].is_nan() {
                        e += (xs[(i, j)] - wh[(i, j)]).powi(2);
                        t += xs[(i, j)].powi(2);
                    }
                }
            }
            (e / t).sqrt()
        };
        let (one, hundred) = (rel(1.0), rel(100.0));
        assert!(one < 0.2 && (hundred - one).abs() < 0.05 * one, "{one} vs {hundred}");
    }

    #[test]
    fn masked_entries_do_not_matter() {
        let a = noisy(25, 15, 2, 4);
        let mut x = a.clone();
        let holes = [(0, 0), (3, 4), (10, 14), (24, 2)];
        for &(i, j) in &holes {
            x[(i, j)] = f64::NAN;
        }
        for method in ["hals", "mu", "mu-kl"] {
            let p = Nmf { rank: 3, method: method.into(), ..Default::default() };
            // the same mask over different hidden values: identical fits
            let (xa, ma) = dense_input(&x).unwrap();
            let mut xb = xa.clone();
            for &(i, j) in &holes {
                xb[(i, j)] = 1e3;
            }
            let data = crate::data::dense::ratings_from_masked(&x).unwrap();
            let sa = p.clone().check().unwrap().with_matrix(xa, ma.clone()).unwrap();
            let sb = p.clone().check().unwrap().with_matrix(xb, ma).unwrap();
            let fa = Executor::new(sa, &data).max_iters(30).run().unwrap();
            let fb = Executor::new(sb, &data).max_iters(30).run().unwrap();
            assert_eq!(fa.model.u, fb.model.u, "{method}");
            assert_eq!(fa.model.v, fb.model.v, "{method}");
            // and the recorded loss is over the observed entries only
            let wh = &fa.model.u_dense() * fa.model.v_dense().transpose();
            if method != "mu-kl" {
                let mut l = 0.0;
                for j in 0..15 {
                    for i in 0..25 {
                        if !x[(i, j)].is_nan() {
                            l += 0.5 * (x[(i, j)] - wh[(i, j)]).powi(2);
                        }
                    }
                }
                let rec = fa.history.last().unwrap().values["loss"];
                assert!((l - rec).abs() < 1e-5 * rec, "{method}: {l} vs {rec}");
            }
        }
    }

    #[test]
    fn sparse_ratings_through_the_registry() {
        let a = planted(20, 12, 2, 5);
        let mut rows = vec![];
        let mut cols = vec![];
        let mut vals = vec![];
        for i in 0..20 {
            for j in 0..12 {
                if (i + j) % 4 != 0 {
                    rows.push(i as u32);
                    cols.push(j as u32);
                    vals.push(a[(i, j)] as f32);
                }
            }
        }
        let r = Ratings::new(20, 12, rows, cols, vals).unwrap();
        let ds = Dataset::Ratings(r);
        let mut req = FitRequest::new("nmf", &ds).set("rank", 2).set("reg", 0.0);
        req.epochs = Some(400);
        let out = crate::solve::registry::fit(req).unwrap();
        assert!(out.summary["train_rmse"].as_f64().unwrap() < 1e-3, "{:?}", out.summary);
        // the default penalty on missing data: sparse 1..5 ratings (100 x 200,
        // 1,200 entries, many items seen once or twice) at rank 10; without a
        // penalty the free factors of thinly observed rows predict held-out
        // entries in the hundreds (test RMSE > 100 when this was written)
        let spec = crate::data::synth::RatingsSpec {
            users: 100,
            items: 200,
            count: 1500,
            rank: 3,
            stars: true,
            seed: 1,
            ..Default::default()
        };
        let all = crate::data::synth::ratings_like(&spec).unwrap();
        let (train, test) = crate::data::split::holdout(&all, 0.2, 1).unwrap();
        let rmse = |reg: Option<f64>| {
            let ds = Dataset::Ratings(train.clone());
            let mut req = FitRequest::new("nmf", &ds).set("rank", 10);
            if let Some(r) = reg {
                req = req.set("reg", r);
            }
            let tds = Dataset::Ratings(test.clone());
            req.test = Some(&tds);
            crate::solve::registry::fit(req).unwrap().summary["test_rmse"].as_f64().unwrap()
        };
        let (free, auto) = (rmse(Some(0.0)), rmse(None));
        assert!(auto < 2.0, "default penalty: test RMSE {auto}");
        assert!(free > 2.0 * auto, "no penalty {free} vs default {auto}: the case no longer needs one");
        assert!(out.summary["loss"].as_f64().is_some());
        let crate::solve::registry::FittedModel::Factor(m) = &out.model else { panic!("not a factor model") };
        assert!(nonneg(m));
        assert_eq!(m.rank, 2);
    }

    #[test]
    fn invalid_settings_and_negative_data_are_errors() {
        assert!(Nmf { rank: 0, ..Default::default() }.check().is_err());
        assert!(Nmf { method: "als".into(), ..Default::default() }.check().is_err());
        assert!(Nmf { init: "svd".into(), ..Default::default() }.check().is_err());
        assert!(Nmf { reg: Some(-1.0), ..Default::default() }.check().is_err());
        assert!(Nmf { tol: f64::NAN, ..Default::default() }.check().is_err());
        let mut a = planted(5, 4, 2, 6);
        assert!(Nmf { rank: 5, ..Default::default() }.check().unwrap().with_matrix(a.clone(), None).is_err());
        a[(2, 3)] = -0.5;
        let ds = Dataset::Dense(a);
        let e = crate::solve::registry::fit(FitRequest::new("nmf", &ds).set("rank", 2)).unwrap_err().to_string();
        // positions counted from 1, as in a dense file
        assert!(e.contains("row 3, column 4 (counting from 1) is -0.5;"), "{e}");
        check_first_bad_value_and_count();
        let r = Ratings::new(2, 2, vec![0, 1], vec![0, 1], vec![1.0, -2.0]).unwrap();
        let ds = Dataset::Ratings(r);
        let e = crate::solve::registry::fit(FitRequest::new("nmf", &ds).set("rank", 1)).unwrap_err().to_string();
        assert!(e.contains("-2"), "{e}");
        let e = crate::solve::registry::fit(FitRequest::new("nmf", &ds).set("rnak", 1)).unwrap_err();
        assert!(matches!(e, Error::Config(_)));
    }

    /// The first bad value in reading order (by rows), and how many there are;
    /// missing (NaN) entries of a dense matrix are not bad.
    fn check_first_bad_value_and_count() {
        let x = Mat::from_fn(3, 3, |i, j| match (i, j) {
            (0, 2) => f64::NAN,
            (1, 0) => -1.0,
            (0, 1) => f64::INFINITY,
            (2, 2) => -3.0,
            _ => 1.0,
        });
        let why = negative_values(&Dataset::Dense(x)).unwrap();
        assert!(why.contains("row 1, column 2 (counting from 1) is inf (3 values"), "{why}");
        assert_eq!(
            negative_values(&Dataset::Dense(Mat::from_fn(2, 2, |i, _| if i == 0 { f64::NAN } else { 0.0 }))),
            None
        );
    }
}
