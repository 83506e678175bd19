//! `softimpute-als`: Hastie, Mazumder, Lee and Zadeh (2015), Algorithm 3.1.
//!
//! The iterate is `Z = A B^T` with `A = U D`, `B = V D` (`U`, `V`
//! orthonormal, `D` diagonal), fitted to the filled matrix `X* =
//! P_Omega(X - Z) + Z` by alternating ridge regressions:
//!
//! - `B~ = X*^T A (A^T A + lambda I)^{-1} = (S^T U + V D^2) D (D^2 + lambda
//!   I)^{-1}` with `S = P_Omega(X - Z)`: the `k x k` system is diagonal in
//!   this parametrization; then the SVD `B~ D = V~ D~^2 R^T` gives `V <- V~`,
//!   `D <- D~`, `U <- U R`;
//! - the same for `A` with the roles of rows and columns swapped.
//!
//! `S^T U` and `S V` are sparse products, parallel over the columns (rows) of
//! the output with each one written by one task, so the result does not
//! depend on scheduling. The objective `0.5 ||P_Omega(X - A B^T)||^2 +
//! lambda/2 (||A||_F^2 + ||B||_F^2)` equals SoftImpute's `0.5 ||P_Omega(X -
//! Z)||^2 + lambda ||Z||_*` here because `A` and `B` are balanced (`||A||_F^2
//! = ||B||_F^2 = tr D^2 = ||Z||_*`), and its minimum over rank-`k` factors is
//! SoftImpute's when `k` is at least the solution's rank. When the change
//! criterion is met at the target `lambda`, the paper's final step 5 is
//! applied (`X* V = U D_sigma R^T`, `V <- V R`, `D^2 <- (D_sigma -
//! lambda)_+`), which makes the output an exact soft-thresholded SVD.
//!
//! Defaults follow `softimpute` (rank 100, biases refitted jointly after
//! every sweep, `lambda` selected on a 10% hold-out by a SoftImpute path
//! unless given, path of 5, `tol` 1e-5); the initial `U` is a random
//! orthonormal `m x k` matrix and `D = I` (the paper's initialization).

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::soft::{DEFAULT_LAMBDA_FRAC, Pilot, residual, select_lambda};
use super::{
    Center, LowRank, Offsets, PathState, Reader, SvdCfg, Writer, check_lambda, check_rank, lambda_path, refresh,
    sigma_max, target_lambda,
};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::spectral::linop::{LinOp, SparseOp};
use crate::solve::spectral::svd::{orthonormalize, thin_svd};
use crate::solve::{IterState, Solver};

/// Settings understood by `softimpute-als`.
pub const KEYS: &[&str] = &["rank", "lambda", "lambda_frac", "path", "path_iters", "center", "bias_reg", "tol"];

/// Default iteration limit of the registry runner.
pub const DEFAULT_EPOCHS: usize = 200;

/// Settings of `softimpute-als`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoftImputeAlsParams {
    /// Rank of the factors `A`, `B`; `1..=min(m, n)`.
    pub rank: usize,
    /// Target `lambda`, absolute (excludes `lambda_frac`).
    pub lambda: Option<f64>,
    /// Target `lambda` as a fraction of `sigma_max(P_Omega(X))` of the
    /// centred data; with neither set, selected on a hold-out as
    /// `softimpute` does.
    pub lambda_frac: Option<f64>,
    /// Number of lambdas on the path from `lambda_max` down to the target.
    pub path: usize,
    /// Iteration cap on each intermediate lambda of the path.
    pub path_iters: usize,
    /// Centring before the fit.
    pub center: Center,
    /// Ridge penalty of the biases (`center = "biases"`).
    pub bias_reg: f64,
    /// Stop when `||Z_new - Z_old||_F^2 / ||Z_old||_F^2 < tol` at the target.
    pub tol: f64,
}

impl Default for SoftImputeAlsParams {
    fn default() -> Self {
        SoftImputeAlsParams {
            rank: 100,
            lambda: None,
            lambda_frac: None,
            path: 5,
            path_iters: 10,
            center: Center::Biases,
            bias_reg: 5.0,
            tol: 1e-5,
        }
    }
}

impl SoftImputeAlsParams {
    /// Validate into a solver (the rank against the data in `init`).
    pub fn check(self) -> Result<SoftImputeAls> {
        ensure!(self.rank >= 1, "rank must be >= 1, got {}", self.rank);
        check_lambda(self.lambda, self.lambda_frac)?;
        ensure!(self.path >= 1, "path must be >= 1, got {}", self.path);
        ensure!(self.path_iters >= 1, "path_iters must be >= 1, got {}", self.path_iters);
        ensure!(self.tol > 0.0 && self.tol.is_finite(), "tol must be > 0, got {}", self.tol);
        ensure!(self.bias_reg >= 0.0 && self.bias_reg.is_finite(), "bias_reg must be >= 0, got {}", self.bias_reg);
        Ok(SoftImputeAls { params: self, st: None })
    }
}

#[derive(Clone, Debug)]
struct State {
    off: Offsets,
    y: Vec<f64>,
    /// `Z = U diag(s) V^T` with `s = D^2`.
    z: LowRank,
    res: Vec<f64>,
    path: PathState,
    /// True once the final step 5 has been applied.
    finished: bool,
}

/// The validated `softimpute-als` solver.
#[derive(Clone, Debug)]
pub struct SoftImputeAls {
    params: SoftImputeAlsParams,
    st: Option<State>,
}

/// `(P x + W diag(s)) diag(s / (s + lambda))`: the ridge solution times `D`
/// (`px` is the sparse product, `w` the other side's factor).
fn ridge_times_d(px: Mat<f64>, w: &Mat<f64>, s: &[f64], lambda: f64) -> Mat<f64> {
    let mut out = px;
    for t in 0..s.len() {
        let shrink = if s[t] + lambda > 0.0 { s[t] / (s[t] + lambda) } else { 0.0 };
        for i in 0..out.nrows() {
            out[(i, t)] = (out[(i, t)] + w[(i, t)] * s[t]) * shrink;
        }
    }
    out
}

impl SoftImputeAls {
    /// The current iterate `U diag(D^2) V^T` (after `init`).
    pub fn iterate(&self) -> Option<&LowRank> {
        self.st.as_ref().map(|s| &s.z)
    }
}

/// One full ALS sweep (B then A) at `lambda`; updates `z` and `res` (the
/// biases, if any, are refreshed by the caller).
fn sweep(data: &Ratings, y: &[f64], z: &mut LowRank, res: &mut Vec<f64>, lambda: f64) -> Result<()> {
    // B step: B~ D = (S^T U + V D^2) D^2 (D^2 + lambda)^{-1}.
    let op = SparseOp::with_values(data, res);
    let bd = ridge_times_d(op.apply_t(z.u.as_ref()), &z.v, &z.s, lambda);
    let svd = thin_svd(bd.as_ref())?;
    // B~ D = V~ S~ R^T  =>  Z = U D B~^T = (U R) S~ V~^T
    z.u = crate::solve::spectral::linop::mul(z.u.as_ref(), svd.v.as_ref());
    z.v = svd.u;
    z.s = svd.s;
    *res = residual(data, y, z);
    // A step.
    let op = SparseOp::with_values(data, res);
    let ad = ridge_times_d(op.apply(z.v.as_ref()), &z.u, &z.s, lambda);
    let svd = thin_svd(ad.as_ref())?;
    z.v = crate::solve::spectral::linop::mul(z.v.as_ref(), svd.v.as_ref());
    z.u = svd.u;
    z.s = svd.s;
    *res = residual(data, y, z);
    Ok(())
}

/// The paper's step 5: `X* V = U D_sigma R^T`, `V <- V R`, singular values
/// soft-thresholded; terms that vanish are dropped.
fn final_step(data: &Ratings, y: &[f64], z: &mut LowRank, res: &mut Vec<f64>, lambda: f64) -> Result<()> {
    let op = SparseOp::with_values(data, res);
    let mut m = op.apply(z.v.as_ref());
    for t in 0..z.rank() {
        for i in 0..m.nrows() {
            m[(i, t)] += z.u[(i, t)] * z.s[t];
        }
    }
    let svd = thin_svd(m.as_ref())?;
    let v = crate::solve::spectral::linop::mul(z.v.as_ref(), svd.v.as_ref());
    let s: Vec<f64> = svd.s.iter().map(|&x| (x - lambda).max(0.0)).collect();
    *z = LowRank::keep_positive(svd.u.as_ref(), &s, v.as_ref());
    *res = residual(data, y, z);
    Ok(())
}

impl Solver for SoftImputeAls {
    type Data = Ratings;
    type Model = FactorModel;

    fn fixed_sizes(&self) -> bool {
        false // the rank follows the data (thresholded singular values)
    }

    fn name(&self) -> &'static str {
        "softimpute-als"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        check_rank(self.params.rank, data)?;
        let (m, n) = data.shape();
        let k = self.params.rank;
        let off = Offsets::fit(data, self.params.center, self.params.bias_reg);
        let y = off.residuals(data);
        let seed = rng::uniform(rng).to_bits();
        let lambda_max = sigma_max(data, &y, seed)?;
        let target = match (self.params.lambda, self.params.lambda_frac) {
            (None, None) => {
                let pilot = Pilot {
                    rank: k,
                    center: self.params.center,
                    bias_reg: self.params.bias_reg,
                    cfg: SvdCfg { oversample: 10, power_iters: 2 },
                    path_iters: self.params.path_iters,
                };
                select_lambda(data, &pilot, seed)?
            }
            (l, f) => target_lambda(l, f, DEFAULT_LAMBDA_FRAC, lambda_max),
        };
        let path = PathState {
            lambdas: lambda_path(lambda_max, target, self.params.path),
            lambda_max,
            stage: 0,
            stage_iter: 0,
        };
        let g = Mat::from_fn(m, k, |_, _| rng::normal(rng));
        let z = LowRank { u: orthonormalize(g.as_ref()), s: vec![1.0; k], v: Mat::zeros(n, k) };
        let model = LowRank::zero(m, n).model(&off);
        self.st = Some(State { off, res: y.clone(), y, z, path, finished: false });
        Ok(model)
    }

    fn step(&mut self, data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let (tol, path_iters, bias_reg) = (self.params.tol, self.params.path_iters, self.params.bias_reg);
        let st = self.st.as_mut().ok_or_else(|| Error::invalid("softimpute-als: step before init"))?;
        if st.res.len() != st.y.len() {
            st.y = st.off.residuals(data);
            st.res = residual(data, &st.y, &st.z);
        }
        let lambda = st.path.lambda();
        let old = st.z.clone();
        let delta = if st.finished {
            0.0
        } else {
            sweep(data, &st.y, &mut st.z, &mut st.res, lambda)?;
            (st.y, st.res) = refresh(data, &mut st.off, bias_reg, &st.z);
            old.rel_change(&st.z)
        };
        let converged = st.path.advance(delta, tol, path_iters);
        if converged && !st.finished {
            final_step(data, &st.y, &mut st.z, &mut st.res, lambda)?;
            // the biases stay those of the last sweep, so `res` is exact for the output
            st.finished = true;
        }
        let loss = 0.5 * st.res.iter().map(|e| e * e).sum::<f64>();
        let nuc: f64 = st.z.s.iter().sum();
        let rec = &mut state.record;
        rec.objective = Some(loss + lambda * nuc + st.off.penalty(bias_reg));
        rec.values.insert("lambda".into(), lambda);
        rec.values.insert("lambda_max".into(), st.path.lambda_max);
        rec.values.insert("z_rank".into(), st.z.s.iter().filter(|&&x| x > 0.0).count() as f64);
        rec.values.insert("rel_change".into(), delta.min(f64::MAX));
        rec.values.insert("nuclear_norm".into(), nuc);
        rec.vectors.insert("singular_values".into(), st.z.s.clone());
        state.converged = converged;
        *model = st.z.model(&st.off);
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        "check the data for extreme values; raise lambda".into()
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        let st = self.st.as_ref().ok_or_else(|| Error::invalid("softimpute-als: no state to save"))?;
        let mut w = Writer::default();
        w.u64(st.finished as u64);
        st.path.write(&mut w);
        st.z.write(&mut w);
        st.off.write(&mut w);
        Ok(w.0)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let st = self.st.as_mut().ok_or_else(|| Error::invalid("softimpute-als: load_state before init"))?;
        let mut r = Reader::new(bytes, "softimpute-als");
        let finished = r.u64()? != 0;
        let path = PathState::read(&mut r)?;
        let z = LowRank::read(&mut r, st.z.u.nrows(), st.z.v.nrows())?;
        st.off.read(&mut r)?;
        r.done()?;
        // a lambda given now takes effect (from the checkpoint's iterate)
        let given = self.params.lambda.is_some() || self.params.lambda_frac.is_some();
        let (path, retargeted) = path.resumed(&st.path, given);
        st.finished = finished && !retargeted;
        st.path = path;
        st.z = z;
        st.res.clear();
        Ok(())
    }
}
