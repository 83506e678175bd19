//! `cp-als`: CP decomposition of a 3-way tensor by alternating least squares,
//! with tensor completion for partially observed tensors.
//!
//! Fully observed tensors (the course notebook's algorithm, seed 000, and
//! TensorLy's `parafac`): each iteration updates `A`, `B`, `C` in turn by the
//! exact least-squares solution `A = T_(0) (B ⊙ C) (BᵀB ∗ CᵀC)⁻¹` (`∗` the
//! Hadamard product), with the MTTKRPs of [`super::kernels`] (no Khatri-Rao
//! product is formed) and the `R x R` system solved by Cholesky (tiny ridge,
//! then pseudo-inverse, as fallbacks). Columns are normalized after every
//! update, their norms kept as the weights `λ`. The relative error
//! `‖T̂ − T‖_F / ‖T‖_F` is recorded every iteration from quantities the
//! iteration already has: `‖T‖² − 2⟨T, T̂⟩ + ‖T̂‖²` with `⟨T, T̂⟩ = ⟨M_C, C⟩`
//! and `‖T̂‖² = 1ᵀ(AᵀA ∗ BᵀB ∗ CᵀC)1` (clamped at 0); below a relative error of
//! `1e-6` that difference loses digits to cancellation, so the error is then
//! computed explicitly from a reconstruction.
//!
//! Options: `init = "svd"` (HOSVD: leading eigenvectors of each unfolding's
//! Gram matrix, Gaussian columns beyond the dimension), `non_negative` (each
//! update is then one sweep of HALS, exact non-negative coordinate descent, so
//! the error never increases), `line_search` (TensorLy's extrapolation of
//! Bro 1998: after every even iteration from the 6th (0-based) try
//! `X_prev + (it+1)^(1/p) (X_new − X_prev)` and keep it if its error is lower
//! than the plain iteration's; `p` starts at 2 and grows by one after 4
//! failures), `reg` (ridge `reg ‖·‖²` on every factor).
//!
//! Partially observed tensors (a mask in [`Tensor3`]): `completion = "wals"`
//! (default) solves, for every row of the factor being updated, the
//! least-squares problem over that slice's observed entries only (the
//! notebook's row-wise ALS for matrix completion, one mode at a time);
//! `completion = "em"` fills the missing entries with the current model and
//! runs the dense iteration on the filled tensor (cheap per iteration, slower
//! to converge when few entries are observed). The recorded `rel_error` is
//! then over the observed entries.

use faer::Mat;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::kernels::{
    self, frob_dot, gram, hadamard, mttkrp0_from_w, mttkrp1_from_w, mttkrp2, normalize_columns, solve_gram,
};
use super::model::CpModel;
use crate::data::Tensor3;
use crate::error::{Error, Result, ensure};
use crate::rng::{self, Rng};
use crate::solve::{Executor, Fit, IterState, Solver};
use crate::team::Team;

/// How the factors start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpInit {
    /// `gaussian` for fully observed tensors (the notebook), `svd` for
    /// partially observed ones (spectral initialization from the zero-filled
    /// tensor: in our tests, weighted ALS on a planted 20³ rank-3 tensor with
    /// 30% observed entries got stuck from a Gaussian start for 2 of 4 seeds,
    /// and recovered it from the SVD start for all).
    #[default]
    Auto,
    /// Entries drawn from `N(0, 1)`, columns normalized (the notebook).
    Gaussian,
    /// HOSVD: the leading left singular vectors of each unfolding (Gaussian
    /// columns where the rank exceeds the dimension).
    Svd,
}

/// How missing entries are handled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    /// Weighted ALS: row-wise least squares over the observed entries.
    #[default]
    Wals,
    /// EM imputation: fill the missing entries with the model, then a dense
    /// ALS iteration.
    Em,
}

/// Parameters of CP-ALS.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CpAls {
    /// CP rank (the notebook: 20).
    pub rank: usize,
    /// Stop when the relative error drops below this (0 = never; the
    /// notebook's `ε`).
    pub tol: f64,
    /// Stop when the relative error changes by less than this between two
    /// iterations (0 = never; TensorLy's `tol`).
    pub tol_change: f64,
    /// Initialization (`auto`: the notebook's Gaussian start for fully
    /// observed tensors, HOSVD for partially observed ones).
    pub init: CpInit,
    /// Constrain every factor and weight to be non-negative (HALS updates).
    pub non_negative: bool,
    /// Extrapolate between iterations (TensorLy's `linesearch`); fully
    /// observed tensors only.
    pub line_search: bool,
    /// Completion method for partially observed tensors.
    pub completion: Completion,
    /// Ridge penalty `reg (‖A‖² + ‖B‖² + ‖C‖²)` added to every least-squares
    /// update (the notebook: 0).
    pub reg: f64,
}

impl Default for CpAls {
    fn default() -> Self {
        CpAls {
            rank: 20,
            tol: 0.0,
            tol_change: 0.0,
            init: CpInit::Auto,
            non_negative: false,
            line_search: false,
            completion: Completion::Wals,
            reg: 0.0,
        }
    }
}

/// The setting keys of `cp-als` (for the registry).
pub const KEYS: &[&str] = &["rank", "tol", "tol_change", "init", "non_negative", "line_search", "completion", "reg"];

/// Below this relative error the cheap error formula is replaced by an
/// explicit reconstruction (cancellation in `‖T‖² − 2⟨T,T̂⟩ + ‖T̂‖²` costs
/// about `1e-16 ‖T‖²` absolute, i.e. `1e-8` in the relative error).
const EXPLICIT_BELOW: f64 = 1e-6;
/// Line-search failures before the extrapolation exponent grows.
const LS_MAX_FAIL: usize = 4;
/// First iteration (0-based) with a line search; it runs on even iterations
/// (TensorLy: even iterations after the 5th).
const LS_START: usize = 6;

impl CpAls {
    /// Parameters with this rank and the defaults otherwise.
    pub fn with_rank(rank: usize) -> Self {
        CpAls { rank, ..Default::default() }
    }

    /// Validate into a solver (data-dependent checks happen in `init`, still
    /// before any work).
    pub fn check(self) -> Result<CpAlsSolver> {
        ensure!(self.rank >= 1, "rank must be at least 1, got {}", self.rank);
        ensure!(self.tol >= 0.0 && self.tol.is_finite(), "tol must be a finite number >= 0, got {}", self.tol);
        ensure!(
            self.tol_change >= 0.0 && self.tol_change.is_finite(),
            "tol_change must be a finite number >= 0, got {}",
            self.tol_change
        );
        ensure!(self.reg >= 0.0 && self.reg.is_finite(), "reg must be a finite number >= 0, got {}", self.reg);
        Ok(CpAlsSolver { p: self, cache: None, prev_rel: None, acc_pow: 2.0, acc_fail: 0, team: None })
    }

    /// Fit `t` with at most `max_iters` iterations from `seed` (a one-shot
    /// helper over [`Executor`]).
    pub fn fit(self, t: &Tensor3, max_iters: usize, seed: u64) -> Result<Fit<CpModel>> {
        Executor::new(self.check()?, t).seed(seed).max_iters(max_iters).run()
    }
}

/// Observed entries grouped by their index along one mode.
struct Fibers {
    /// `offsets[p]..offsets[p + 1]` are the entries with index `p`.
    offsets: Vec<usize>,
    /// The two other indices (in mode order).
    idx: Vec<[u32; 2]>,
    /// The values.
    vals: Vec<f64>,
}

enum Kind {
    Full,
    Em { filled: Vec<f64>, refill: bool },
    Wals { fibers: Box<[Fibers; 3]> },
}

/// Partial contractions of the dense iteration (allocated on first use).
#[derive(Default)]
struct Bufs {
    /// `X ×₃ C`, `(d0 d1)` padded rows ([`super::tiles`] layout).
    w_c: Vec<f64>,
    /// `X ×₁ A`, `(d1 d2)` padded rows.
    w_a: Vec<f64>,
    /// `X ×₂ B`, `(d0 d2)` padded rows; carried from an even iteration to the next.
    w_b: Vec<f64>,
    /// Whether `w_b` holds `X ×₂ B` for the current data and `B`.
    w_b_valid: bool,
}

struct Cache {
    norm_sq: f64,
    kind: Kind,
    bufs: Bufs,
}

/// Solver state beyond the model (checkpointed).
#[derive(Serialize, Deserialize)]
struct ExtraState {
    prev_rel: Option<f64>,
    acc_pow: f64,
    acc_fail: usize,
}

/// The validated CP-ALS solver.
pub struct CpAlsSolver {
    p: CpAls,
    cache: Option<Cache>,
    prev_rel: Option<f64>,
    acc_pow: f64,
    acc_fail: usize,
    /// Two threads on a dense tensor whose passes are too short for rayon
    /// (below `tiles::PAR_MIN_MADDS`, e.g. the notebook's 30³): the passes
    /// and MTTKRPs split in halves on this team (each output row computed
    /// exactly as on one thread).
    team: Option<Team>,
}

fn others(mode: usize) -> (usize, usize) {
    match mode {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    }
}

fn build_fibers(t: &Tensor3, mode: usize) -> Fibers {
    let dims = t.dims();
    let (o1, o2) = others(mode);
    let mask = t.mask();
    let data = t.data();
    let mut counts = vec![0usize; dims[mode] + 1];
    let each = |f: &mut dyn FnMut([usize; 3], usize)| {
        for i in 0..dims[0] {
            for j in 0..dims[1] {
                for k in 0..dims[2] {
                    let p = (i * dims[1] + j) * dims[2] + k;
                    if mask.is_none_or(|m| m[p]) {
                        f([i, j, k], p);
                    }
                }
            }
        }
    };
    each(&mut |ix, _| counts[ix[mode] + 1] += 1);
    for q in 1..counts.len() {
        counts[q] += counts[q - 1];
    }
    let n = counts[dims[mode]];
    let mut pos = counts.clone();
    let mut idx = vec![[0u32; 2]; n];
    let mut vals = vec![0.0; n];
    each(&mut |ix, p| {
        let slot = &mut pos[ix[mode]];
        idx[*slot] = [ix[o1] as u32, ix[o2] as u32];
        vals[*slot] = data[p];
        *slot += 1;
    });
    Fibers { offsets: counts, idx, vals }
}

fn row_major(f: &Mat<f64>) -> Vec<f64> {
    let r = f.ncols();
    let mut out = vec![0.0; f.nrows() * r];
    for c in 0..r {
        for (i, x) in f.col_as_slice(c).iter().enumerate() {
            out[i * r + c] = *x;
        }
    }
    out
}

/// Solve `g x = b` (`g` symmetric, `r x r`, overwritten) by Cholesky; false
/// when a pivot is not safely positive.
fn chol_solve(g: &mut [f64], r: usize, b: &mut [f64]) -> bool {
    let max_diag = (0..r).map(|i| g[i * r + i]).fold(0.0f64, f64::max);
    if max_diag <= 0.0 || !max_diag.is_finite() {
        return false;
    }
    for j in 0..r {
        let mut d = g[j * r + j];
        for k in 0..j {
            d -= g[j * r + k] * g[j * r + k];
        }
        if d <= 1e-13 * max_diag {
            return false;
        }
        let d = d.sqrt();
        g[j * r + j] = d;
        for i in j + 1..r {
            let mut s = g[i * r + j];
            for k in 0..j {
                s -= g[i * r + k] * g[j * r + k];
            }
            g[i * r + j] = s / d;
        }
    }
    for i in 0..r {
        let mut s = b[i];
        for k in 0..i {
            s -= g[i * r + k] * b[k];
        }
        b[i] = s / g[i * r + i];
    }
    for i in (0..r).rev() {
        let mut s = b[i];
        for k in i + 1..r {
            s -= g[k * r + i] * b[k];
        }
        b[i] = s / g[i * r + i];
    }
    true
}

/// The least-squares (or non-negative) update of one row from its normal
/// equations `g x = b`; `x` holds the current row on entry (used by HALS).
fn solve_row(g: &[f64], b: &[f64], r: usize, non_negative: bool, x: &mut [f64], scratch: &mut [f64]) {
    if non_negative {
        for c in 0..r {
            let gcc = g[c * r + c];
            if gcc <= 0.0 {
                x[c] = 0.0;
                continue;
            }
            let gx: f64 = (0..r).map(|s| g[c * r + s] * x[s]).sum();
            x[c] = (x[c] + (b[c] - gx) / gcc).max(0.0);
        }
        return;
    }
    let mean_diag = (0..r).map(|i| g[i * r + i]).sum::<f64>() / r as f64;
    for ridge in [0.0, 1e-10 * mean_diag] {
        scratch.copy_from_slice(g);
        for i in 0..r {
            scratch[i * r + i] += ridge;
        }
        x.copy_from_slice(b);
        if chol_solve(scratch, r, x) {
            return;
        }
    }
    // no information about this row (no observed entry): the minimum-norm solution
    x.iter_mut().for_each(|t| *t = 0.0);
}

impl CpAlsSolver {
    /// The parameters.
    pub fn params(&self) -> &CpAls {
        &self.p
    }

    fn initial_factors(&self, t: &Tensor3, rng: &mut Rng) -> Result<[Mat<f64>; 3]> {
        let dims = t.dims();
        let r = self.p.rank;
        let mut gaussian = |d: usize| {
            let v: Vec<f64> = (0..d * r).map(|_| rng::normal(rng)).collect();
            Mat::from_fn(d, r, |i, c| v[i * r + c])
        };
        let svd = match self.p.init {
            CpInit::Auto => t.mask().is_some(),
            CpInit::Gaussian => false,
            CpInit::Svd => true,
        };
        let mut fs: Vec<Mat<f64>> = Vec::with_capacity(3);
        for (m, &d) in dims.iter().enumerate() {
            let mut f = gaussian(d);
            if svd {
                let g = kernels::unfolding_gram(t.data(), dims, m);
                let evd = g
                    .self_adjoint_eigen(faer::Side::Lower)
                    .map_err(|e| Error::Numerical(format!("HOSVD eigendecomposition failed: {e:?}")))?;
                let u = evd.U();
                // eigenvalues ascending: the leading vectors are the last columns
                for c in 0..r.min(d) {
                    for i in 0..d {
                        f[(i, c)] = u[(i, d - 1 - c)];
                    }
                }
            }
            if self.p.non_negative {
                for c in 0..r {
                    f.col_as_slice_mut(c).iter_mut().for_each(|x| *x = x.abs());
                }
            }
            fs.push(f);
        }
        fs.try_into().map_err(|_| Error::invalid("three factors"))
    }

    fn update(&self, f: &mut Mat<f64>, weights: &[f64], v: &Mat<f64>, m: &Mat<f64>) {
        if self.p.non_negative {
            let mut x = kernels::scale_columns(f.as_ref(), weights);
            kernels::hals_sweep(v, self.p.reg, m, &mut x);
            *f = x;
        } else {
            *f = solve_gram(v, self.p.reg, m);
        }
    }

    /// One dense ALS iteration on `data`; returns `(⟨T, T̂⟩, ‖T̂‖²)` of the
    /// new model, which comes back normalized.
    ///
    /// Partial contractions are shared by consecutive updates (the cyclic
    /// order A, B, C, A, ... makes updates `u` and `u + 1` both need `X`
    /// contracted with the factor updated at `u − 1`): even iterations compute
    /// `X ×₃ C` (for A and B) and `X ×₂ B` (for C and the next A), odd
    /// iterations reuse that `X ×₂ B` for A and compute `X ×₁ A` (for B and
    /// C): 1.5 passes over the tensor per iteration instead of 2. `carried`
    /// holds `X ×₂ B` between iterations; when it is missing (first iteration,
    /// resume, line-search jump, EM refill) it is recomputed, bit for bit.
    fn dense_sweep(
        &self,
        data: &[f64],
        dims: [usize; 3],
        iteration: usize,
        model: &mut CpModel,
        bufs: &mut Bufs,
    ) -> (f64, f64) {
        let [d0, d1, d2] = dims;
        let CpModel { weights, factors, .. } = model;
        let team = self.team.as_ref();
        let [a, b, c] = factors;
        let (m_c, v2) = if iteration.is_multiple_of(2) {
            let w = &mut bufs.w_c;
            kernels::contract_last(data, dims, c, w, team);
            let gc = gram(c);
            let m = mttkrp0_from_w(w, b, d0, team);
            self.update(a, weights, &hadamard(&gram(b), &gc), &m);
            *weights = normalize_columns(a);
            let ga = gram(a);
            let m = mttkrp1_from_w(w, a, d1, team);
            self.update(b, weights, &hadamard(&ga, &gc), &m);
            *weights = normalize_columns(b);
            kernels::contract_middle(data, dims, b, &mut bufs.w_b, team);
            bufs.w_b_valid = true;
            (mttkrp1_from_w(&bufs.w_b, a, d2, team), hadamard(&ga, &gram(b)))
        } else {
            if !bufs.w_b_valid {
                kernels::contract_middle(data, dims, b, &mut bufs.w_b, team);
            }
            bufs.w_b_valid = false;
            let gc = gram(c);
            let m = mttkrp0_from_w(&bufs.w_b, c, d0, team);
            self.update(a, weights, &hadamard(&gram(b), &gc), &m);
            *weights = normalize_columns(a);
            let ga = gram(a);
            let wa = &mut bufs.w_a;
            kernels::contract_first(data, dims, a, wa, team);
            let m = mttkrp0_from_w(wa, c, d1, team);
            self.update(b, weights, &hadamard(&ga, &gc), &m);
            *weights = normalize_columns(b);
            (mttkrp1_from_w(wa, b, d2, team), hadamard(&ga, &gram(b)))
        };
        self.update(c, weights, &v2, &m_c);
        let inner = frob_dot(&m_c, c);
        let hat = frob_dot(&v2, &gram(c));
        *weights = normalize_columns(c);
        (inner, hat)
    }

    /// `(⟨T, T̂⟩, ‖T̂‖²)` of an arbitrary model on full data, via one MTTKRP.
    fn inner_and_norm(data: &[f64], dims: [usize; 3], model: &CpModel) -> (f64, f64) {
        let [a, b, c] = &model.factors;
        let cs = kernels::scale_columns(c.as_ref(), &model.weights);
        let m = mttkrp2(data, dims, a, b);
        let inner = frob_dot(&m, &cs);
        let hat = frob_dot(&hadamard(&gram(a), &gram(b)), &gram(&cs));
        (inner, hat)
    }

    /// The relative error of `model` on the full tensor from
    /// `(⟨T, T̂⟩, ‖T̂‖²)`, explicit when small.
    fn full_rel(&self, t: &Tensor3, model: &CpModel, norm_sq: f64, inner: f64, hat: f64) -> f64 {
        let res = (norm_sq - 2.0 * inner + hat).max(0.0);
        let rel = (res / norm_sq).sqrt();
        if rel < EXPLICIT_BELOW {
            (kernels::explicit_residual_sq(t.data(), None, &model.weights, &model.factors) / norm_sq).sqrt()
        } else {
            rel
        }
    }

    /// Fill the missing entries of `filled` with the model; returns the
    /// squared residual over the observed entries.
    fn em_fill(t: &Tensor3, model: &CpModel, filled: &mut [f64]) -> f64 {
        let [_, d1, d2] = t.dims();
        let mask = t.mask().expect("EM runs on masked tensors");
        let [a, b, c] = &model.factors;
        let cs = kernels::scale_columns(c.as_ref(), &model.weights);
        let sums: Vec<f64> = filled
            .par_chunks_mut(d1 * d2)
            .zip(t.data().par_chunks(d1 * d2))
            .zip(mask.par_chunks(d1 * d2))
            .enumerate()
            .map_init(
                || vec![0.0; d1 * d2],
                |rec, (i, ((fs, ts), ms))| {
                    kernels::reconstruct_slice(a.as_ref(), b.as_ref(), cs.as_ref(), i, rec);
                    let mut s = 0.0;
                    for p in 0..fs.len() {
                        if ms[p] {
                            let e = ts[p] - rec[p];
                            s += e * e;
                        } else {
                            fs[p] = rec[p];
                        }
                    }
                    s
                },
            )
            .collect();
        sums.iter().sum()
    }

    /// One weighted-ALS iteration over the observed entries; returns the
    /// squared residual over them.
    fn wals_sweep(&self, fibers: &[Fibers; 3], model: &mut CpModel) -> f64 {
        let r = model.rank();
        let nn = self.p.non_negative;
        let reg = self.p.reg;
        for mode in 0..3 {
            let (o1, o2) = others(mode);
            let f1 = row_major(&model.factors[o1]);
            let f2 = row_major(&model.factors[o2]);
            let cur = row_major(&kernels::scale_columns(model.factors[mode].as_ref(), &model.weights));
            let fb = &fibers[mode];
            let d = model.factors[mode].nrows();
            let mut rows = vec![0.0; d * r];
            rows.par_chunks_mut(r).enumerate().for_each_init(
                || (vec![0.0; r * r], vec![0.0; r], vec![0.0; r], vec![0.0; r * r]),
                |(g, bv, z, scratch), (p, x)| {
                    g.iter_mut().for_each(|v| *v = 0.0);
                    bv.iter_mut().for_each(|v| *v = 0.0);
                    for e in fb.offsets[p]..fb.offsets[p + 1] {
                        let [q, s] = fb.idx[e];
                        let (q, s) = (q as usize, s as usize);
                        let v = fb.vals[e];
                        for c in 0..r {
                            z[c] = f1[q * r + c] * f2[s * r + c];
                        }
                        for c in 0..r {
                            let zc = z[c];
                            bv[c] += v * zc;
                            let row = &mut g[c * r..c * r + c + 1];
                            for (gv, zs) in row.iter_mut().zip(&z[..=c]) {
                                *gv += zc * zs;
                            }
                        }
                    }
                    for c in 0..r {
                        g[c * r + c] += reg;
                        for s in 0..c {
                            g[s * r + c] = g[c * r + s];
                        }
                    }
                    x.copy_from_slice(&cur[p * r..(p + 1) * r]);
                    solve_row(g, bv, r, nn, x, scratch);
                },
            );
            let f = Mat::from_fn(d, r, |i, c| rows[i * r + c]);
            model.factors[mode] = f;
            model.weights = normalize_columns(&mut model.factors[mode]);
        }
        // squared residual over the observed entries (mode-0 grouping)
        let [a, b, c] = &model.factors;
        let (ra, rb, rc) = (row_major(a), row_major(b), row_major(c));
        let w = &model.weights;
        let fb = &fibers[0];
        let sums: Vec<f64> = (0..a.nrows())
            .into_par_iter()
            .map(|i| {
                let ai: Vec<f64> = (0..r).map(|c| ra[i * r + c] * w[c]).collect();
                let mut s = 0.0;
                for e in fb.offsets[i]..fb.offsets[i + 1] {
                    let [j, k] = fb.idx[e];
                    let (j, k) = (j as usize, k as usize);
                    let pred: f64 = (0..r).map(|c| ai[c] * rb[j * r + c] * rc[k * r + c]).sum();
                    let err = fb.vals[e] - pred;
                    s += err * err;
                }
                s
            })
            .collect();
        sums.iter().sum()
    }

    /// TensorLy's line search: extrapolate from `prev` through `model`; keep
    /// the extrapolation when its error is lower. Returns the (possibly new)
    /// relative error, the step tried and whether it was accepted.
    fn line_search(
        &mut self,
        t: &Tensor3,
        norm_sq: f64,
        iteration: usize,
        prev: &CpModel,
        model: &mut CpModel,
        rel: f64,
    ) -> (f64, f64, bool) {
        let jump = ((iteration + 1) as f64).powf(1.0 / self.acc_pow);
        let fold = |m: &CpModel| -> [Mat<f64>; 3] {
            let [a, b, c] = &m.factors;
            [a.clone(), b.clone(), kernels::scale_columns(c.as_ref(), &m.weights)]
        };
        let (p, n) = (fold(prev), fold(model));
        let cand: Vec<Mat<f64>> = (0..3)
            .map(|m| {
                Mat::from_fn(n[m].nrows(), n[m].ncols(), |i, c| {
                    let v = p[m][(i, c)] + jump * (n[m][(i, c)] - p[m][(i, c)]);
                    if self.p.non_negative { v.max(0.0) } else { v }
                })
            })
            .collect();
        let cand: [Mat<f64>; 3] = match cand.try_into() {
            Ok(c) => c,
            Err(_) => return (rel, jump, false),
        };
        let Ok(mut cm) = CpModel::new(vec![1.0; model.rank()], cand) else { return (rel, jump, false) };
        cm.normalize();
        let (inner, hat) = Self::inner_and_norm(t.data(), t.dims(), &cm);
        let rel_c = self.full_rel(t, &cm, norm_sq, inner, hat);
        if rel_c.is_finite() && rel_c < rel {
            cm.solver = std::mem::take(&mut model.solver);
            cm.params = std::mem::take(&mut model.params);
            *model = cm;
            self.acc_fail = 0;
            (rel_c, jump, true)
        } else {
            self.acc_fail += 1;
            if self.acc_fail >= LS_MAX_FAIL {
                self.acc_pow += 1.0;
                self.acc_fail = 0;
            }
            (rel, jump, false)
        }
    }
}

impl Solver for CpAlsSolver {
    type Data = Tensor3;
    type Model = CpModel;

    fn name(&self) -> &'static str {
        "cp-als"
    }

    fn init(&mut self, t: &Tensor3, rng: &mut Rng) -> Result<CpModel> {
        let dims = t.dims();
        let [d0, d1, d2] = dims;
        let r = self.p.rank;
        let bound = (d0 * d1).min(d0 * d2).min(d1 * d2);
        ensure!(
            r <= bound,
            "rank {r} is larger than any CP rank of a {d0}x{d1}x{d2} tensor (at most {bound}); lower --rank"
        );
        let norm_sq = t.norm().powi(2);
        ensure!(t.n_observed() > 0, "the tensor has no observed entry");
        ensure!(
            norm_sq.is_finite() && norm_sq > 0.0,
            "the tensor is zero on all its observed entries; there is nothing to decompose"
        );
        let masked = t.mask().is_some();
        ensure!(
            !(self.p.line_search && masked),
            "line_search is only available for fully observed tensors ({} of {} entries are observed)",
            t.n_observed(),
            d0 * d1 * d2
        );
        let kind = match (masked, self.p.completion) {
            (false, _) => Kind::Full,
            (true, Completion::Em) => {
                let mean = t.data().iter().sum::<f64>() / t.n_observed() as f64;
                let mask = t.mask().expect("masked");
                let mut filled = crate::mem::huge_vec(t.data().len());
                filled.extend(t.data().iter().zip(mask).map(|(&v, &o)| if o { v } else { mean }));
                Kind::Em { filled, refill: false }
            }
            (true, Completion::Wals) => {
                Kind::Wals { fibers: Box::new([build_fibers(t, 0), build_fibers(t, 1), build_fibers(t, 2)]) }
            }
        };
        let factors = self.initial_factors(t, rng)?;
        let mut model = CpModel::new(vec![1.0; r], factors)?;
        model.normalize();
        if self.p.non_negative {
            // HALS starts from the current iterate: give it the best scale
            let data = match &kind {
                Kind::Em { filled, .. } => filled.as_slice(),
                _ => t.data(),
            };
            let (inner, hat) = Self::inner_and_norm(data, dims, &model);
            if inner > 0.0 && hat > 0.0 {
                let s = (inner / hat).cbrt();
                for f in model.factors.iter_mut() {
                    for c in 0..r {
                        f.col_as_slice_mut(c).iter_mut().for_each(|x| *x *= s);
                    }
                }
                model.normalize();
            }
        }
        model.solver = "cp-als".into();
        model.params = serde_json::to_value(&self.p).unwrap_or_default();
        let pass_madds = d0 * d1 * d2 * super::tiles::padded(r);
        let small = pass_madds < super::tiles::PAR_MIN_MADDS;
        self.team = match (&kind, self.team.take()) {
            (Kind::Wals { .. }, _) => None,
            (_, Some(team)) if small => Some(team),
            _ if small && rayon::current_num_threads() >= 2 => Some(Team::new()?),
            _ => None,
        };
        self.cache = Some(Cache { norm_sq, kind, bufs: Bufs::default() });
        self.prev_rel = None;
        self.acc_pow = 2.0;
        self.acc_fail = 0;
        Ok(model)
    }

    fn step(&mut self, t: &Tensor3, model: &mut CpModel, state: &mut IterState) -> Result<()> {
        let mut cache = self.cache.take().ok_or_else(|| Error::invalid("cp-als: step before init"))?;
        let norm_sq = cache.norm_sq;
        let dims = t.dims();
        let mut ls_step = None;
        let rel = match &mut cache.kind {
            Kind::Full => {
                let prev = self.p.line_search.then(|| model.clone());
                let (inner, hat) = self.dense_sweep(t.data(), dims, state.iteration, model, &mut cache.bufs);
                let mut rel = self.full_rel(t, model, norm_sq, inner, hat);
                if let Some(prev) = prev.filter(|_| state.iteration >= LS_START && state.iteration.is_multiple_of(2)) {
                    let (r2, step, accepted) = self.line_search(t, norm_sq, state.iteration, &prev, model, rel);
                    rel = r2;
                    ls_step = Some(step);
                    if accepted {
                        cache.bufs.w_b_valid = false;
                    }
                }
                rel
            }
            Kind::Em { filled, refill } => {
                if *refill {
                    Self::em_fill(t, model, filled);
                    *refill = false;
                }
                self.dense_sweep(filled, dims, state.iteration, model, &mut cache.bufs);
                let res = Self::em_fill(t, model, filled);
                // the filled tensor changed: no partial contraction carries over
                cache.bufs.w_b_valid = false;
                (res / norm_sq).sqrt()
            }
            Kind::Wals { fibers } => (self.wals_sweep(fibers, model) / norm_sq).sqrt(),
        };
        self.cache = Some(cache);
        state.record.objective = Some(0.5 * rel * rel * norm_sq);
        state.record.values.insert("rel_error".into(), rel);
        if let Some(s) = ls_step {
            state.record.values.insert("ls_step".into(), s);
        }
        if self.p.tol > 0.0 && rel < self.p.tol {
            state.converged = true;
        }
        if let Some(prev) = self.prev_rel
            && self.p.tol_change > 0.0
            && (prev - rel).abs() < self.p.tol_change
        {
            state.converged = true;
        }
        self.prev_rel = Some(rel);
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        "the factors blew up (a degenerate CP problem); lower the rank, add reg (e.g. --set reg=1e-6) or use init=svd"
            .into()
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        let s = ExtraState { prev_rel: self.prev_rel, acc_pow: self.acc_pow, acc_fail: self.acc_fail };
        serde_json::to_vec(&s).map_err(|e| Error::invalid(e.to_string()))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let s: ExtraState =
            serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("bad cp-als checkpoint state: {e}")))?;
        self.prev_rel = s.prev_rel;
        self.acc_pow = s.acc_pow;
        self.acc_fail = s.acc_fail;
        if let Some(Cache { kind: Kind::Em { refill, .. }, .. }) = self.cache.as_mut() {
            *refill = true;
        }
        Ok(())
    }
}
