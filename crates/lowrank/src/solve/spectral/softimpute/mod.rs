//! Spectral-regularization methods for matrix completion: SoftImpute,
//! SoftImpute-ALS, singular value thresholding (SVT) and hard impute.
//!
//! All four work on the observed entries `P_Omega(X)` of a ratings matrix
//! (optionally centred first, see [`Center`]) and keep their iterate in
//! factored form `Z = U diag(s) V^T` ([`LowRank`]); the dense `m x n`
//! matrix is never formed. The filled matrix `P_Omega(X) + P_Omega_perp(Z)`
//! is written `P_Omega(X - Z) + Z`, a sparse residual plus the low-rank
//! iterate ([`super::linop::SparsePlusLowRank`]), whose
//! top singular triplets come from the randomized SVD
//! ([`Svd::randomized_from`](super::svd::Svd::randomized_from)) started
//! from the previous right singular vectors plus a few Gaussian columns, in
//! `O(|Omega| l + (m + n) r l)` per product.
//!
//! - `softimpute` ([`soft`]): Mazumder, Hastie and Tibshirani (2010),
//!   "Spectral regularization algorithms for learning large incomplete
//!   matrices", Algorithm 1 and its large-scale variant (section 5): iterate
//!   `Z <- S_lambda(P_Omega(X) + P_Omega_perp(Z))`, `S_lambda` the
//!   soft-thresholding of the singular values, which minimizes
//!   `0.5 ||P_Omega(X - Z)||_F^2 + lambda ||Z||_*`. The SVD is capped at
//!   `rank` triplets; `lambda` follows a short geometric path from
//!   `lambda_max = sigma_max(P_Omega(X))` (where the solution is 0) down to
//!   the target, each solution warm-starting the next (the paper's
//!   pathwise strategy). Stops when `||Z_new - Z_old||_F^2 / ||Z_old||_F^2 <
//!   tol` at the last `lambda` (the paper's criterion, computed from the
//!   factors).
//! - `softimpute-als` ([`als`]): Hastie, Mazumder, Lee and Zadeh (2015),
//!   "Matrix completion and low-rank SVD via fast alternating least
//!   squares", Algorithm 3.1: alternating ridge regressions of the filled
//!   matrix on `A = U D` and `B = V D`; the `k x k` ridge systems
//!   `(A^T A + lambda I)` are diagonal in that parametrization. Same
//!   objective and path as `softimpute`; each iteration costs two sparse
//!   products with `k` columns instead of a randomized SVD.
//! - `svt` ([`svt`]): Cai, Candes and Shen (2010), "A singular value
//!   thresholding algorithm for matrix completion": `X^k = D_tau(Y^{k-1})`,
//!   `Y^k = Y^{k-1} + delta P_Omega(M - X^k)` with `Y` supported on `Omega`,
//!   the partial SVD's size grown by `rank_step` until a singular value
//!   below `tau` is seen; stops when `||P_Omega(X^k - M)||_F /
//!   ||P_Omega(M)||_F <= tol`.
//! - `hard-impute` ([`hard`]): iterative SVD (Troyanskaya et al. 2001;
//!   Mazumder et al. 2010, section 10): `Z <- best rank-k approximation of
//!   P_Omega(X) + P_Omega_perp(Z)`, optionally warm-started from a
//!   `softimpute` solution.
//!
//! Centring (`center`): `none`, `mean`, or `biases` (global mean plus
//! ridge-penalized row/column biases). `softimpute` and `softimpute-als`
//! (default `biases`) refit the biases jointly with `Z` (one ridge sweep per
//! iteration); `svt` (default `none`, the paper's algorithm) and
//! `hard-impute` (default `mean`) subtract them once before the fit. When no
//! `lambda` is given, `softimpute` and `softimpute-als` select it on a 10%
//! hold-out of the training entries (`soft::select_lambda`); see
//! `bench/RESULTS_softimpute.md` for the MovieLens-100k figures.
//!
//! Every method returns a [`FactorModel`] with balanced factors
//! `U diag(sqrt(s))`, `V diag(sqrt(s))` plus the centring offsets (global
//! mean, and row/column biases with `center = "biases"`). The solver state
//! (factors in f64, path position, seeds) is checkpointed exactly, so a
//! resumed run equals a straight one.

pub mod als;
pub mod hard;
pub mod soft;
pub mod svt;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::linop::{LinOp, SparseOp, SparsePlusLowRank, low_rank_at, mul};
use super::svd::{RsvdOptions, Svd};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::registry::{AlgoEntry, FitOutcome, FitRequest, parse_params, run_factor_solver};

pub use als::{SoftImputeAls, SoftImputeAlsParams};
pub use hard::{HardImpute, HardImputeParams};
pub use soft::{SoftImpute, SoftImputeParams};
pub use svt::{Svt, SvtParams};

/// Algorithms of this module, registered by name.
pub static ALGOS: &[AlgoEntry] = &[
    AlgoEntry {
        name: "softimpute",
        about: "SoftImpute (Mazumder-Hastie-Tibshirani 2010): iterative soft-thresholded SVD of the filled matrix, nuclear-norm regularized, lambda path",
        keys: soft::KEYS,
        run: run_soft,
        validate: |p| {
            crate::solve::registry::parse_params::<SoftImputeParams>("softimpute", p, soft::KEYS)?.check().map(drop)
        },
    },
    AlgoEntry {
        name: "softimpute-als",
        about: "SoftImpute-ALS (Hastie-Mazumder-Lee-Zadeh 2015): alternating ridge regressions on the filled matrix, same objective as softimpute",
        keys: als::KEYS,
        run: run_als,
        validate: |p| {
            crate::solve::registry::parse_params::<SoftImputeAlsParams>("softimpute-als", p, als::KEYS)?
                .check()
                .map(drop)
        },
    },
    AlgoEntry {
        name: "svt",
        about: "singular value thresholding (Cai-Candes-Shen 2010): shrinkage + dual ascent on the observed entries",
        keys: svt::KEYS,
        run: run_svt,
        validate: |p| crate::solve::registry::parse_params::<SvtParams>("svt", p, svt::KEYS)?.check().map(drop),
    },
    AlgoEntry {
        name: "hard-impute",
        about: "hard impute / iterative SVD (Troyanskaya et al. 2001): rank-k truncated SVD of the filled matrix, optional softimpute warm start",
        keys: hard::KEYS,
        run: run_hard,
        validate: |p| {
            let params = crate::solve::registry::parse_params::<HardImputeParams>("hard-impute", p, hard::KEYS)?;
            check_warm_start_keys(p, &params)?;
            params.check().map(drop)
        },
    },
];

/// Adds the last record's `lambda`, `lambda_max` and singular values to the
/// summary.
fn add_summary(out: &mut FitOutcome, keys: &[&str]) {
    if let Some(rec) = out.history.last() {
        for k in keys {
            if let Some(v) = rec.values.get(*k) {
                out.summary.insert((*k).to_string(), Value::from(*v));
            }
        }
        if let Some(s) = rec.vectors.get("singular_values") {
            out.summary.insert("singular_values".into(), Value::from(s.clone()));
        }
    }
}

fn run_soft(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: SoftImputeParams = parse_params("softimpute", &req.params, soft::KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    let (mut out, _) = run_factor_solver(req, solver, &train, soft::DEFAULT_EPOCHS, true)?;
    add_summary(&mut out, &["lambda", "lambda_max", "z_rank"]);
    Ok(out)
}

fn run_als(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: SoftImputeAlsParams = parse_params("softimpute-als", &req.params, als::KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    let (mut out, _) = run_factor_solver(req, solver, &train, als::DEFAULT_EPOCHS, true)?;
    add_summary(&mut out, &["lambda", "lambda_max", "z_rank"]);
    Ok(out)
}

fn run_svt(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: SvtParams = parse_params("svt", &req.params, svt::KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    let (mut out, _) = run_factor_solver(req, solver, &train, svt::DEFAULT_EPOCHS, true)?;
    add_summary(&mut out, &["tau", "delta", "rel_residual", "z_rank"]);
    Ok(out)
}

/// `lambda_frac` and `warm_iters` shape hard-impute's SoftImpute warm start:
/// set with `init = "zero"` they would do nothing, which is an error.
fn check_warm_start_keys(given: &serde_json::Map<String, serde_json::Value>, p: &HardImputeParams) -> Result<()> {
    if p.init == hard::HardInit::Zero {
        let idle: Vec<&str> = ["lambda_frac", "warm_iters"].into_iter().filter(|k| given.contains_key(*k)).collect();
        ensure!(
            idle.is_empty(),
            "{} only apply to the SoftImpute warm start: set init = \"softimpute\" as well, or leave them out",
            idle.join(" and ")
        );
    }
    Ok(())
}

fn run_hard(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: HardImputeParams = parse_params("hard-impute", &req.params, hard::KEYS)?;
    check_warm_start_keys(&req.params, &p)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    let (mut out, _) = run_factor_solver(req, solver, &train, hard::DEFAULT_EPOCHS, true)?;
    add_summary(&mut out, &["z_rank"]);
    Ok(out)
}

/// How the observed values are centred before the low-rank fit; the offsets
/// are added back in the returned model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Center {
    /// Fit the raw values (missing = 0).
    None,
    /// Subtract the global mean of the observed values.
    Mean,
    /// Subtract the global mean and regularized row and column biases
    /// (`mu + b_i + c_j`, Koren's baseline fitted by alternating ridge
    /// sweeps with penalty `bias_reg`), in the spirit of
    /// `softImpute::biScale`; `softimpute` and `softimpute-als` refit them
    /// jointly with `Z`.
    Biases,
}

/// Alternating sweeps used to fit the biases (the baseline converges in a
/// handful; 20 leaves changes far below f32 resolution on ratings).
const BIAS_SWEEPS: usize = 20;

/// The centring offsets `mu + b_i + c_j` (biases rounded to f32 so the
/// model's offsets are exactly those the solver used).
#[derive(Clone, Debug, PartialEq)]
pub struct Offsets {
    /// Global offset.
    pub mean: f64,
    /// Row biases (with [`Center::Biases`]).
    pub row: Option<Vec<f64>>,
    /// Column biases (with [`Center::Biases`]).
    pub col: Option<Vec<f64>>,
}

impl Offsets {
    /// Fit the offsets of `data` (non-empty) for a centring mode.
    pub fn fit(data: &Ratings, center: Center, reg: f64) -> Offsets {
        match center {
            Center::None => Offsets { mean: 0.0, row: None, col: None },
            Center::Mean => Offsets { mean: data.mean(), row: None, col: None },
            Center::Biases => {
                let mu = data.mean();
                let (m, n) = data.shape();
                let mut b = vec![0.0f64; m];
                let mut c = vec![0.0f64; n];
                let (csr, csc) = (data.csr(), data.csc());
                for _ in 0..BIAS_SWEEPS {
                    for (j, cj) in c.iter_mut().enumerate() {
                        let (rows, vals) = csc.lane(j);
                        let s: f64 = rows.iter().zip(vals).map(|(&i, &x)| x as f64 - mu - b[i as usize]).sum();
                        *cj = s / (reg + rows.len() as f64).max(f64::MIN_POSITIVE);
                    }
                    for (i, bi) in b.iter_mut().enumerate() {
                        let (cols, vals) = csr.lane(i);
                        let s: f64 = cols.iter().zip(vals).map(|(&j, &x)| x as f64 - mu - c[j as usize]).sum();
                        *bi = s / (reg + cols.len() as f64).max(f64::MIN_POSITIVE);
                    }
                }
                let round = |v: Vec<f64>| v.into_iter().map(|x| x as f32 as f64).collect();
                Offsets { mean: mu, row: Some(round(b)), col: Some(round(c)) }
            }
        }
    }

    /// One ridge sweep of the biases (columns, then rows) towards
    /// `target[e] = x_e - mean - Z_e`, warm-started from the current biases:
    /// the block-coordinate step of `0.5 ||P_Omega(X - mu - b 1^T - 1 c^T -
    /// Z)||^2 + reg / 2 (||b||^2 + ||c||^2)` in the biases. No-op without
    /// biases.
    pub fn sweep(&mut self, data: &Ratings, target: &[f64], reg: f64) {
        let (Some(b), Some(c)) = (self.row.as_mut(), self.col.as_mut()) else {
            return;
        };
        let (csr, csc) = (data.csr(), data.csc());
        for (j, cj) in c.iter_mut().enumerate() {
            let (rows, _) = csc.lane(j);
            let ents = &csc.entry[csc.indptr[j]..csc.indptr[j + 1]];
            let s: f64 = rows.iter().zip(ents).map(|(&i, &e)| target[e as usize] - b[i as usize]).sum();
            *cj = (s / (reg + rows.len() as f64).max(f64::MIN_POSITIVE)) as f32 as f64;
        }
        for (i, bi) in b.iter_mut().enumerate() {
            let (cols, _) = csr.lane(i);
            let ents = &csr.entry[csr.indptr[i]..csr.indptr[i + 1]];
            let s: f64 = cols.iter().zip(ents).map(|(&j, &e)| target[e as usize] - c[j as usize]).sum();
            *bi = (s / (reg + cols.len() as f64).max(f64::MIN_POSITIVE)) as f32 as f64;
        }
    }

    /// `reg / 2 (||b||^2 + ||c||^2)` (0 without biases).
    pub fn penalty(&self, reg: f64) -> f64 {
        let sq = |v: &Option<Vec<f64>>| v.as_ref().map_or(0.0, |v| v.iter().map(|x| x * x).sum::<f64>());
        0.5 * reg * (sq(&self.row) + sq(&self.col))
    }

    fn write(&self, w: &mut Writer) {
        w.vec(self.row.as_deref().unwrap_or(&[]));
        w.vec(self.col.as_deref().unwrap_or(&[]));
    }

    fn read(&mut self, r: &mut Reader<'_>) -> Result<()> {
        let (b, c) = (r.vec()?, r.vec()?);
        if let (Some(rb), Some(rc)) = (self.row.as_mut(), self.col.as_mut()) {
            ensure!(b.len() == rb.len() && c.len() == rc.len(), "the checkpoint's biases do not fit the data");
            *rb = b;
            *rc = c;
        }
        Ok(())
    }

    /// The centred observed values, aligned to the triplets.
    pub fn residuals(&self, data: &Ratings) -> Vec<f64> {
        data.iter()
            .map(|(i, j, x)| {
                x as f64 - self.mean - self.row.as_ref().map_or(0.0, |b| b[i]) - self.col.as_ref().map_or(0.0, |c| c[j])
            })
            .collect()
    }

    /// Put the offsets into a model.
    fn apply(&self, model: &mut FactorModel) {
        model.global_mean = self.mean;
        model.row_bias = self.row.as_ref().map(|b| b.iter().map(|&x| x as f32).collect());
        model.col_bias = self.col.as_ref().map(|c| c.iter().map(|&x| x as f32).collect());
    }
}

/// A low-rank matrix `U diag(s) V^T` (`U` is `m x r`, `V` is `n x r`; the
/// solvers keep `U`, `V` orthonormal and `s >= 0`, but the norms below do
/// not assume it).
#[derive(Clone, Debug, PartialEq)]
pub struct LowRank {
    /// Left factor.
    pub u: Mat<f64>,
    /// Weights (the singular values when `U`, `V` are orthonormal).
    pub s: Vec<f64>,
    /// Right factor.
    pub v: Mat<f64>,
}

impl LowRank {
    /// The zero matrix of shape `m x n` (rank 0).
    pub fn zero(m: usize, n: usize) -> LowRank {
        LowRank { u: Mat::zeros(m, 0), s: Vec::new(), v: Mat::zeros(n, 0) }
    }

    /// Number of terms.
    pub fn rank(&self) -> usize {
        self.s.len()
    }

    /// `U diag(s)`.
    pub fn us(&self) -> Mat<f64> {
        Mat::from_fn(self.u.nrows(), self.s.len(), |i, t| self.u[(i, t)] * self.s[t])
    }

    /// The entries at the observed positions of `data`, aligned to its
    /// triplets.
    pub fn at(&self, data: &Ratings) -> Vec<f64> {
        low_rank_at(self.us().as_ref(), self.v.as_ref(), data.rows(), data.cols())
    }

    /// `<self, other>_F = sum_ij s_i (U1^T U2)_ij t_j (V1^T V2)_ij`, from the
    /// factors (`O((m + n) r1 r2)`).
    pub fn inner(&self, other: &LowRank) -> f64 {
        if self.rank() == 0 || other.rank() == 0 {
            return 0.0;
        }
        let uu = mul(self.u.as_ref().transpose(), other.u.as_ref());
        let vv = mul(self.v.as_ref().transpose(), other.v.as_ref());
        let mut acc = 0.0;
        for j in 0..other.rank() {
            for i in 0..self.rank() {
                acc += self.s[i] * uu[(i, j)] * other.s[j] * vv[(i, j)];
            }
        }
        acc
    }

    /// `||Z||_F^2`.
    pub fn frob_sq(&self) -> f64 {
        self.inner(self).max(0.0)
    }

    /// `||Z_self - Z_other||_F^2` from the factors.
    pub fn diff_sq(&self, other: &LowRank) -> f64 {
        (self.frob_sq() + other.frob_sq() - 2.0 * self.inner(other)).max(0.0)
    }

    /// The paper's convergence measure `||Z_new - Z_old||_F^2 /
    /// ||Z_old||_F^2` (`self` is the old iterate): 0 when both are 0,
    /// infinite when only the old one is.
    pub fn rel_change(&self, new: &LowRank) -> f64 {
        let d = self.diff_sq(new);
        let base = self.frob_sq();
        if base > 0.0 {
            d / base
        } else if d == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    }

    /// Dense `U diag(s) V^T` (tests and small problems).
    pub fn to_dense(&self) -> Mat<f64> {
        mul(self.us().as_ref(), self.v.as_ref().transpose())
    }

    /// The factor model `offsets + (U sqrt(s)) (V sqrt(s))^T` (a zero
    /// column when the rank is 0, so the model always has a factor).
    pub fn model(&self, off: &Offsets) -> FactorModel {
        let (m, n) = (self.u.nrows(), self.v.nrows());
        let mut model = if self.rank() == 0 {
            FactorModel::zeros(m, n, 1)
        } else {
            let a = Mat::from_fn(m, self.rank(), |i, t| self.u[(i, t)] * self.s[t].max(0.0).sqrt());
            let b = Mat::from_fn(n, self.rank(), |j, t| self.v[(j, t)] * self.s[t].max(0.0).sqrt());
            FactorModel::from_dense(&a, &b)
        };
        off.apply(&mut model);
        model
    }

    /// Keep the terms whose weight is positive.
    fn keep_positive(u: MatRef<'_, f64>, s: &[f64], v: MatRef<'_, f64>) -> LowRank {
        let idx: Vec<usize> = (0..s.len()).filter(|&t| s[t] > 0.0).collect();
        LowRank {
            u: Mat::from_fn(u.nrows(), idx.len(), |i, t| u[(i, idx[t])]),
            s: idx.iter().map(|&t| s[t]).collect(),
            v: Mat::from_fn(v.nrows(), idx.len(), |j, t| v[(j, idx[t])]),
        }
    }

    fn write(&self, w: &mut Writer) {
        w.mat(&self.u);
        w.vec(&self.s);
        w.mat(&self.v);
    }

    fn read(r: &mut Reader<'_>, m: usize, n: usize) -> Result<LowRank> {
        let u = r.mat()?;
        let s = r.vec()?;
        let v = r.mat()?;
        ensure!(
            u.nrows() == m && v.nrows() == n && u.ncols() == s.len() && v.ncols() == s.len(),
            "the checkpoint's factors do not fit a {m}x{n} problem"
        );
        Ok(LowRank { u, s, v })
    }
}

/// After an update of `z`: with biases, one joint ridge sweep of the biases
/// towards `x - mean - Z`; then the centred values `y` and the residual `y -
/// Z` on the observed entries.
fn refresh(data: &Ratings, off: &mut Offsets, reg: f64, z: &LowRank) -> (Vec<f64>, Vec<f64>) {
    let zv = z.at(data);
    if off.row.is_some() {
        let target: Vec<f64> = data.values().iter().zip(&zv).map(|(&x, zi)| x as f64 - off.mean - zi).collect();
        off.sweep(data, &target, reg);
    }
    let y = off.residuals(data);
    let res = y.iter().zip(&zv).map(|(a, b)| a - b).collect();
    (y, res)
}

/// Settings shared by the randomized SVD of the filled matrix.
#[derive(Clone, Copy, Debug)]
struct SvdCfg {
    oversample: usize,
    power_iters: usize,
}

/// Top-`k` singular triplets of `P_Omega(res) + Z` (sparse residual plus the
/// iterate), by a randomized SVD whose start block holds `Z`'s right
/// singular vectors, then Gaussian columns from `rng`.
fn top_svd_filled(data: &Ratings, res: &[f64], z: &LowRank, k: usize, cfg: SvdCfg, rng: &mut Rng) -> Result<Svd> {
    let sparse = SparseOp::with_values(data, res);
    let us = z.us();
    let op = SparsePlusLowRank { sparse: &sparse, u: us.as_ref(), v: z.v.as_ref() };
    top_svd(&op, Some(z.v.as_ref()), k, cfg, rng)
}

/// Top-`k` triplets of an operator from a warm start block (columns of
/// `warm`, at most `k + oversample` of them) completed with Gaussian columns.
fn top_svd<O: LinOp>(op: &O, warm: Option<MatRef<'_, f64>>, k: usize, cfg: SvdCfg, rng: &mut Rng) -> Result<Svd> {
    let (m, n) = op.shape();
    let l = (k + cfg.oversample).min(m.min(n)).max(k);
    let w = warm.map_or(0, |w| w.ncols().min(l));
    let start = Mat::from_fn(n, l, |j, t| match warm {
        Some(wv) if t < w => wv[(j, t)],
        _ => 0.0,
    });
    // Gaussian columns drawn column by column so the stream does not depend on `w`'s layout.
    let mut start = start;
    for t in w..l {
        for j in 0..n {
            start[(j, t)] = rng::normal(rng);
        }
    }
    Svd::randomized_from(op, start.as_ref(), k, cfg.power_iters)
}

/// `sigma_max` of the centred observed matrix (randomized SVD of rank 1 with
/// 10 oversamples and 8 power iterations: accurate to a few digits, which is
/// all `lambda_frac` needs).
fn sigma_max(data: &Ratings, y: &[f64], seed: u64) -> Result<f64> {
    let op = SparseOp::with_values(data, y);
    let svd = Svd::randomized(&op, 1, &RsvdOptions { oversample: 10, power_iters: 8, seed })?;
    Ok(svd.s.first().copied().unwrap_or(0.0))
}

/// The sequence of `lambda`s: `path` values geometric between `lambda_max`
/// (excluded: the solution there is 0) and `target` (included); just
/// `[target]` when `path == 1`, `target == 0` or `target >= lambda_max`.
fn lambda_path(lambda_max: f64, target: f64, path: usize) -> Vec<f64> {
    if path <= 1 || target <= 0.0 || target >= lambda_max {
        return vec![target];
    }
    let ratio = target / lambda_max;
    (1..=path).map(|t| if t == path { target } else { lambda_max * ratio.powf(t as f64 / path as f64) }).collect()
}

/// Position on the lambda path and the stage bookkeeping shared by
/// `softimpute` and `softimpute-als`.
#[derive(Clone, Debug, PartialEq)]
struct PathState {
    lambdas: Vec<f64>,
    lambda_max: f64,
    stage: usize,
    stage_iter: usize,
}

impl PathState {
    fn lambda(&self) -> f64 {
        self.lambdas[self.stage.min(self.lambdas.len() - 1)]
    }

    fn last(&self) -> bool {
        self.stage + 1 >= self.lambdas.len()
    }

    /// Account for one iteration with relative change `delta`; returns true
    /// when the run has converged at the last `lambda`.
    fn advance(&mut self, delta: f64, tol: f64, path_iters: usize) -> bool {
        self.stage_iter += 1;
        let conv = delta < tol;
        if self.last() {
            return conv;
        }
        if conv || self.stage_iter >= path_iters {
            self.stage += 1;
            self.stage_iter = 0;
        }
        false
    }

    fn write(&self, w: &mut Writer) {
        w.vec(&self.lambdas);
        w.f64(self.lambda_max);
        w.u64(self.stage as u64);
        w.u64(self.stage_iter as u64);
    }

    fn read(r: &mut Reader<'_>) -> Result<PathState> {
        let lambdas = r.vec()?;
        ensure!(!lambdas.is_empty(), "the checkpoint's lambda path is empty");
        let lambda_max = r.f64()?;
        let stage = r.u64()? as usize;
        let stage_iter = r.u64()? as usize;
        ensure!(stage < lambdas.len(), "the checkpoint's path stage is out of range");
        Ok(PathState { lambdas, lambda_max, stage, stage_iter })
    }

    /// The path a resumed run follows: the checkpoint's (`self`), unless the
    /// settings now `given` (`lambda` or `lambda_frac`) make another target
    /// than its last `lambda`; then that target (of `fresh`, the path the
    /// settings make on this data), warm-started from the checkpoint's
    /// iterate. Returns whether the target changed.
    fn resumed(self, fresh: &PathState, given: bool) -> (PathState, bool) {
        let (Some(&was), Some(&now)) = (self.lambdas.last(), fresh.lambdas.last()) else {
            return (self, false);
        };
        if given && (was - now).abs() > 1e-12 * was.abs().max(now.abs()) {
            (PathState { lambdas: vec![now], lambda_max: self.lambda_max, stage: 0, stage_iter: 0 }, true)
        } else {
            (self, false)
        }
    }
}

/// The target `lambda` from the absolute or relative setting.
fn target_lambda(lambda: Option<f64>, lambda_frac: Option<f64>, default_frac: f64, lambda_max: f64) -> f64 {
    lambda.unwrap_or_else(|| lambda_frac.unwrap_or(default_frac) * lambda_max)
}

/// Validation shared by the lambda settings.
fn check_lambda(lambda: Option<f64>, lambda_frac: Option<f64>) -> Result<()> {
    if let Some(l) = lambda {
        ensure!(l >= 0.0 && l.is_finite(), "lambda must be >= 0 and finite, got {l}");
    }
    if let Some(f) = lambda_frac {
        ensure!(
            (0.0..=1.0).contains(&f),
            "lambda_frac must be in [0, 1] (a fraction of lambda_max, where the solution is already 0), got {f:e}"
        );
    }
    ensure!(
        lambda.is_none() || lambda_frac.is_none(),
        "set either lambda (absolute) or lambda_frac (relative), not both"
    );
    Ok(())
}

/// Validation of the rank against the data.
fn check_rank(rank: usize, data: &Ratings) -> Result<()> {
    let (m, n) = data.shape();
    ensure!(!data.is_empty(), "the training data has no entries");
    ensure!(rank >= 1 && rank <= m.min(n), "rank must be in 1..={} (min(m, n)), got {rank}", m.min(n));
    Ok(())
}

/// Little-endian writer of the solver states.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f64(&mut self, x: f64) {
        self.u64(x.to_bits());
    }
    fn vec(&mut self, v: &[f64]) {
        self.u64(v.len() as u64);
        for &x in v {
            self.f64(x);
        }
    }
    fn mat(&mut self, a: &Mat<f64>) {
        self.u64(a.nrows() as u64);
        self.u64(a.ncols() as u64);
        for j in 0..a.ncols() {
            for i in 0..a.nrows() {
                self.f64(a[(i, j)]);
            }
        }
    }
}

/// Reader of [`Writer`]'s bytes; every failure is a damaged-state error.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Self {
        Reader { b, pos: 0, what }
    }
    fn bad(&self) -> Error {
        Error::invalid(format!("{}: the checkpoint's solver state is damaged", self.what))
    }
    fn u64(&mut self) -> Result<u64> {
        let s = self.b.get(self.pos..self.pos + 8).ok_or_else(|| self.bad())?;
        self.pos += 8;
        let arr: [u8; 8] = s.try_into().map_err(|_| self.bad())?;
        Ok(u64::from_le_bytes(arr))
    }
    fn f64(&mut self) -> Result<f64> {
        self.u64().map(f64::from_bits)
    }
    fn len(&mut self) -> Result<usize> {
        let n = self.u64()? as usize;
        if n > self.b.len() / 8 {
            return Err(self.bad());
        }
        Ok(n)
    }
    fn vec(&mut self) -> Result<Vec<f64>> {
        let n = self.len()?;
        (0..n).map(|_| self.f64()).collect()
    }
    fn mat(&mut self) -> Result<Mat<f64>> {
        let r = self.len()?;
        let c = self.len()?;
        if r.saturating_mul(c) > self.b.len() / 8 {
            return Err(self.bad());
        }
        let mut a = Mat::zeros(r, c);
        for j in 0..c {
            for i in 0..r {
                a[(i, j)] = self.f64()?;
            }
        }
        Ok(a)
    }
    fn done(&self) -> Result<()> {
        if self.pos == self.b.len() { Ok(()) } else { Err(self.bad()) }
    }
    /// Whether every byte has been read (an optional trailing field absent).
    fn at_end(&self) -> bool {
        self.pos == self.b.len()
    }
}

#[cfg(test)]
mod tests_algos;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Dataset;
    use crate::solve::registry::{self, FitRequest};

    #[test]
    fn low_rank_norms_match_dense() {
        let mut g = rng::rng(1);
        let mut rand = |m: usize, n: usize| Mat::from_fn(m, n, |_, _| rng::normal(&mut g));
        let a = LowRank { u: rand(7, 3), s: vec![2.0, 1.0, 0.5], v: rand(5, 3) };
        let b = LowRank { u: rand(7, 2), s: vec![1.5, -0.3], v: rand(5, 2) };
        let (da, db) = (a.to_dense(), b.to_dense());
        assert!((a.frob_sq() - da.squared_norm_l2()).abs() < 1e-10 * da.squared_norm_l2());
        assert!((a.diff_sq(&b) - (&da - &db).squared_norm_l2()).abs() < 1e-10 * da.squared_norm_l2());
        assert_eq!(LowRank::zero(7, 5).rel_change(&LowRank::zero(7, 5)), 0.0);
        assert!(LowRank::zero(7, 5).rel_change(&a).is_infinite());
        let mut w = Writer::default();
        a.write(&mut w);
        let mut r = Reader::new(&w.0, "t");
        assert_eq!(LowRank::read(&mut r, 7, 5).unwrap(), a);
        r.done().unwrap();
        assert!(LowRank::read(&mut Reader::new(&w.0[..w.0.len() - 1], "t"), 7, 5).is_err());
    }

    #[test]
    fn path_is_geometric_and_ends_at_target() {
        let p = lambda_path(8.0, 1.0, 3);
        assert_eq!(p.len(), 3);
        assert!((p[0] - 4.0).abs() < 1e-12 && (p[1] - 2.0).abs() < 1e-12 && p[2] == 1.0);
        assert_eq!(lambda_path(8.0, 0.0, 3), vec![0.0]);
        assert_eq!(lambda_path(8.0, 9.0, 3), vec![9.0]);
    }

    #[test]
    fn bias_centring_matches_closed_form_without_penalty() {
        // x_ij = 1 + r_i + c_j exactly, fully observed: unpenalized biases
        // reproduce it, so the residuals vanish.
        let (m, n) = (6usize, 5usize);
        let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
        for i in 0..m {
            for j in 0..n {
                rows.push(i as u32);
                cols.push(j as u32);
                vals.push(1.0 + 0.25 * i as f32 - 0.5 * j as f32);
            }
        }
        let r = Ratings::new(m, n, rows, cols, vals).unwrap();
        let off = Offsets::fit(&r, Center::Biases, 0.0);
        assert!(off.residuals(&r).iter().all(|e| e.abs() < 1e-5));
        let mean = Offsets::fit(&r, Center::Mean, 0.0);
        assert!((mean.mean - r.mean()).abs() < 1e-12 && mean.row.is_none());
    }

    #[test]
    fn every_algorithm_runs_from_the_registry_on_dense_nan_input() {
        let mut a = crate::data::synth::planted_completion(12, 2, 144, 3).unwrap().truth;
        for (i, j) in [(0, 0), (3, 4), (7, 1), (11, 11)] {
            a[(i, j)] = f64::NAN;
        }
        let ds = Dataset::Dense(a);
        for algo in ["softimpute", "softimpute-als", "svt", "hard-impute"] {
            let mut req = FitRequest::new(algo, &ds).set("rank", 2);
            req.epochs = Some(20);
            let out = registry::fit(req).unwrap_or_else(|e| panic!("{algo}: {e}"));
            assert!(out.summary["train_rmse"].as_f64().unwrap().is_finite(), "{algo}");
            assert!(out.summary.contains_key("singular_values"), "{algo}");
            let mut bad = FitRequest::new(algo, &ds).set("rank", 2).set("tol", 0.0);
            bad.epochs = Some(2);
            assert!(registry::fit(bad).unwrap_err().is_input_error(), "{algo}: tol 0 accepted");
        }
    }
}
