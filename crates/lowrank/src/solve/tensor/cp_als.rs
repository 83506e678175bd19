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
//! Compression (`compress`, on by default; Bro & Andersson 1998, Tensorlab's
//! `cpd`): a rank-`R` model's factors span at most `R` dimensions per mode,
//! so after one iteration on the full tensor the iterations run on a Tucker
//! core of sizes `min(I_n, R)` (a sequentially truncated HOSVD, randomized
//! for large modes; 8000 times fewer entries at 200³ rank 10), with the model
//! expanded back after each one and its exact error on the full tensor
//! recorded, and the last [`REFINE_ITERS`] iterations run on the full tensor,
//! which moves the factors out of the bases' span: the same iterations and
//! the same final error as plain ALS (to 6 digits in our tests, planted
//! tensors with noise 1e-5), in a fraction of the time. Used only when the core has at most
//! half the entries and the compression error is at most 1 % of `‖T‖`
//! (computed first, then discarded when larger). A run that stops on the
//! core (interrupt, time budget, `tol`) gets the refinement iterations in
//! `finalize`.
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

use super::compress::{self, Tucker};
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
    /// Run the middle iterations on a Tucker-compressed core (see the module
    /// documentation) when it has at most half the entries of the tensor
    /// (sizes `min(I_n, R)`; fully observed tensors without `non_negative`)
    /// and its compression error is at most 1 % of the tensor's norm: the
    /// first iteration runs on the full tensor (so the path is plain ALS's
    /// from the same start), and so do the last [`REFINE_ITERS`] of the
    /// budget (without one, or with `tol_change`, those after the core phase
    /// stalls); a run that stops on the core (interrupt, time budget, `tol`,
    /// an observer) gets them in `finalize`. The recorded `rel_error` is the
    /// exact error of the expanded model on the full tensor in both phases,
    /// and `on_core` (1 or 0) says where each iteration ran. A run resumed
    /// with a larger budget continues on the full tensor if its compressed
    /// phase had ended, so it is correct but not the path of a run that had
    /// the larger budget from the start.
    pub compress: bool,
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
            compress: true,
        }
    }
}

/// The setting keys of `cp-als` (for the registry).
pub const KEYS: &[&str] =
    &["rank", "tol", "tol_change", "init", "non_negative", "line_search", "completion", "reg", "compress"];

/// Iterations run on the full tensor at the end of a compressed run (they
/// move the factors out of the compression's subspaces; the error reached is
/// then that of ALS on the full tensor, see `bench/RESULTS_tensor.md`).
pub const REFINE_ITERS: usize = 3;
/// Without a known iteration budget (or with `tol_change`), the compressed
/// phase ends when the relative error changes by less than this fraction of
/// itself in one iteration (or by less than `tol_change`).
const CORE_STALL: f64 = 1e-9;
/// The compressed phase runs only when the compression's relative error
/// `‖T − G ×₁ U₁ ×₂ U₂ ×₃ U₃‖ / ‖T‖` is at most this: the core's optimum is
/// then close enough to the tensor's for [`REFINE_ITERS`] iterations to
/// close the gap (a tensor that is far from multilinear rank `R`, e.g. with
/// 5 % noise, runs on the full tensor throughout).
const COMPRESS_MAX_LOSS: f64 = 1e-2;

/// Below this relative error the cheap error formula is replaced by an
/// explicit reconstruction (cancellation in `‖T‖² − 2⟨T,T̂⟩ + ‖T̂‖²` costs
/// about `1e-16 ‖T‖²` absolute, i.e. `1e-8` in the relative error).
const EXPLICIT_BELOW: f64 = 1e-6;
/// Line-search failures before the extrapolation exponent grows.
const LS_MAX_FAIL: usize = 4;
/// First iteration (0-based) with a line search; it runs on even iterations
/// (TensorLy: even iterations after the 5th).
const LS_START: usize = 6;
/// Core passes shorter than this run on one thread (splitting them on the
/// team costs more than it saves).
const CORE_TEAM_MIN_MADDS: usize = 1 << 16;

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
        Ok(CpAlsSolver {
            p: self,
            cache: None,
            prev_rel: None,
            acc_pow: 2.0,
            acc_fail: 0,
            core_over: false,
            last_on_core: false,
            team: None,
        })
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

/// The compressed phase of a dense run.
struct CoreState {
    tucker: Tucker,
    /// `‖G‖²`.
    norm_sq: f64,
    /// The model in core coordinates (`None`: project the full model).
    model: Option<CpModel>,
    bufs: Bufs,
    /// The team for the core's passes (`None`: sequential).
    team: Option<Team>,
}

enum Kind {
    /// Fully observed; `core` while the compressed phase lasts.
    Full {
        core: Option<Box<CoreState>>,
    },
    Em {
        filled: Vec<f64>,
        refill: bool,
    },
    Wals {
        fibers: Box<[Fibers; 3]>,
    },
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
    /// The compressed phase is over (a resumed run stays on the full tensor).
    #[serde(default)]
    core_over: bool,
    /// The model in core coordinates, bit for bit (weights, then each
    /// factor column-major), so that a resumed run continues exactly.
    #[serde(default)]
    core_model: Option<Vec<u64>>,
}

/// The validated CP-ALS solver.
pub struct CpAlsSolver {
    p: CpAls,
    cache: Option<Cache>,
    prev_rel: Option<f64>,
    acc_pow: f64,
    acc_fail: usize,
    core_over: bool,
    /// The last iteration ran on the core (a run that stops there gets its
    /// refinement iterations in `finalize`).
    last_on_core: bool,
    /// Two threads on a dense tensor whose passes are too short for rayon
    /// (below `tiles::PAR_MIN_MADDS`, e.g. the notebook's 30³): the passes
    /// and MTTKRPs split in halves on this team (each output row computed
    /// exactly as on one thread).
    team: Option<Team>,
}

/// The model of the full tensor whose factors are `U_n F_n` for the core
/// model's `F_n` (same weights and column norms: the bases are orthonormal).
fn expand_into(tucker: &Tucker, core_model: &CpModel, model: &mut CpModel) {
    model.weights.clone_from(&core_model.weights);
    for m in 0..3 {
        model.factors[m] = tucker.expand(m, &core_model.factors[m]);
    }
}

/// The core-coordinates model of a full-space `model` (its components in the
/// bases), normalized.
fn project(tucker: &Tucker, model: &CpModel) -> CpModel {
    let [a, b, c] = &model.factors;
    let cs = kernels::scale_columns(c.as_ref(), &model.weights);
    let factors = [tucker.project(0, a), tucker.project(1, b), tucker.project(2, &cs)];
    let mut m =
        CpModel { weights: vec![1.0; model.rank()], factors, solver: String::new(), params: Default::default() };
    m.normalize();
    m
}

/// A core model as bits: weights, then each factor column-major.
fn model_bits(m: &CpModel) -> Vec<u64> {
    let mut out: Vec<u64> = m.weights.iter().map(|w| w.to_bits()).collect();
    for f in &m.factors {
        for c in 0..f.ncols() {
            out.extend(f.col_as_slice(c).iter().map(|x| x.to_bits()));
        }
    }
    out
}

/// The inverse of [`model_bits`] for a core of `dims` and rank `r`.
fn model_from_bits(bits: &[u64], dims: [usize; 3], r: usize) -> Result<CpModel> {
    let want = r * (1 + dims.iter().sum::<usize>());
    ensure!(bits.len() == want, "bad cp-als checkpoint state: a core model of {} numbers, expected {want}", bits.len());
    let x = |i: usize| f64::from_bits(bits[i]);
    let weights: Vec<f64> = (0..r).map(x).collect();
    let mut at = r;
    let factors = dims.map(|d| {
        let f = Mat::from_fn(d, r, |i, c| x(at + c * d + i));
        at += d * r;
        f
    });
    CpModel::new(weights, factors)
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
    if !kernels::cholesky_in_place(g, r) {
        return false;
    }
    crate::solve::als::linalg::cholesky_solve(g, r, b);
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

    /// The starting factors, and the Tucker compression when `core` asks for
    /// one (computed after the Gaussian draws, so that the start does not
    /// depend on it, and before the spectral start, which takes its bases).
    fn initial_factors(
        &self,
        t: &Tensor3,
        norm_sq: f64,
        core: Option<[usize; 3]>,
        rng: &mut Rng,
    ) -> Result<([Mat<f64>; 3], Option<Tucker>)> {
        let dims = t.dims();
        let r = self.p.rank;
        let mut fs: [Mat<f64>; 3] = dims.map(|d| {
            let v: Vec<f64> = (0..d * r).map(|_| rng::normal(rng)).collect();
            Mat::from_fn(d, r, |i, c| v[i * r + c])
        });
        let tucker = match core {
            Some(core) => Some(compress::compress(t, norm_sq, core, rng, self.team.as_ref())?),
            None => None,
        };
        let svd = match self.p.init {
            CpInit::Auto => t.mask().is_some(),
            CpInit::Gaussian => false,
            CpInit::Svd => true,
        };
        for (m, f) in fs.iter_mut().enumerate() {
            let d = dims[m];
            if let (true, Some(tk)) = (svd, tucker.as_ref().filter(|tk| tk.core.dims()[m] < d)) {
                // the compression's bases: a sequentially truncated HOSVD (the leading
                // singular vectors of each unfolding of the partly compressed tensor);
                // a mode kept whole (identity basis) takes the unfolding's eigenvectors below
                let u = &tk.bases[m];
                for c in 0..r.min(u.ncols()) {
                    for i in 0..d {
                        f[(i, c)] = u[(i, c)];
                    }
                }
            } else if svd {
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
        }
        Ok((fs, tucker))
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
        team: Option<&Team>,
    ) -> (f64, f64) {
        let [d0, d1, d2] = dims;
        let CpModel { weights, factors, .. } = model;
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

    /// One dense iteration on the fully observed `t` (and the line search
    /// when asked); returns the relative error on `t` and the line-search
    /// step tried.
    fn dense_step(
        &mut self,
        t: &Tensor3,
        norm_sq: f64,
        iteration: usize,
        model: &mut CpModel,
        bufs: &mut Bufs,
        team: Option<&Team>,
    ) -> (f64, Option<f64>) {
        let prev = self.p.line_search.then(|| model.clone());
        let (inner, hat) = self.dense_sweep(t.data(), t.dims(), iteration, model, bufs, team);
        let rel = Self::full_rel(t, model, norm_sq, inner, hat);
        match prev.filter(|_| iteration >= LS_START && iteration.is_multiple_of(2)) {
            Some(prev) => {
                let (rel, step, accepted) = self.line_search(t, norm_sq, iteration, &prev, model, rel);
                if accepted {
                    bufs.w_b_valid = false;
                }
                (rel, Some(step))
            }
            None => (rel, None),
        }
    }

    /// The compressed phase's state for `tucker`: the core's passes run on
    /// the solver's team when they are long enough to be worth splitting.
    fn core_state(&self, tucker: Tucker) -> Result<Box<CoreState>> {
        let norm_sq = tucker.core.norm().powi(2);
        let [j0, j1, j2] = tucker.core.dims();
        let pass_madds = j0 * j1 * j2 * super::tiles::padded(self.p.rank);
        let team = if pass_madds >= CORE_TEAM_MIN_MADDS && rayon::current_num_threads() >= 2 {
            Some(Team::new()?)
        } else {
            None
        };
        Ok(Box::new(CoreState { tucker, norm_sq, model: None, bufs: Bufs::default(), team }))
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

    /// The relative error of `model` on the fully observed `t` from
    /// `(⟨T, T̂⟩, ‖T̂‖²)`, explicit when small.
    fn full_rel(t: &Tensor3, model: &CpModel, norm_sq: f64, inner: f64, hat: f64) -> f64 {
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
        let rel_c = Self::full_rel(t, &cm, norm_sq, inner, hat);
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
        let pass_madds = d0 * d1 * d2 * super::tiles::padded(r);
        let small = pass_madds < super::tiles::PAR_MIN_MADDS;
        self.team = match (masked, self.p.completion, self.team.take()) {
            (true, Completion::Wals, _) => None,
            (_, _, Some(team)) if small => Some(team),
            _ if small && rayon::current_num_threads() >= 2 => Some(Team::new()?),
            _ => None,
        };
        let core_dims =
            if masked || self.p.non_negative || !self.p.compress { None } else { compress::core_dims(dims, r) };
        let (factors, tucker) = self.initial_factors(t, norm_sq, core_dims, rng)?;
        let kind = match (masked, self.p.completion) {
            (false, _) => {
                // a lossy compression would leave the refinement iterations too far to go
                let accurate = tucker.filter(|tk| tk.lost_sq <= COMPRESS_MAX_LOSS * COMPRESS_MAX_LOSS * norm_sq);
                Kind::Full { core: accurate.map(|tk| self.core_state(tk)).transpose()? }
            }
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
        self.cache = Some(Cache { norm_sq, kind, bufs: Bufs::default() });
        self.prev_rel = None;
        self.acc_pow = 2.0;
        self.acc_fail = 0;
        self.core_over = false;
        self.last_on_core = false;
        Ok(model)
    }

    fn step(&mut self, t: &Tensor3, model: &mut CpModel, state: &mut IterState) -> Result<()> {
        let mut cache = self.cache.take().ok_or_else(|| Error::invalid("cp-als: step before init"))?;
        let norm_sq = cache.norm_sq;
        let dims = t.dims();
        let mut ls_step = None;
        let mut switched = false;
        let rel = match &mut cache.kind {
            Kind::Full { core } => {
                // the first iteration runs on the full tensor: it puts every factor in the bases' span (up
                // to the compression error), so the path that follows is plain ALS's from the same start,
                // whereas projecting the Gaussian start onto the bases would change its Gram matrices
                let on_core = state.iteration >= 1
                    && state.max_iters.is_none_or(|n| state.iteration + REFINE_ITERS < n)
                    && !self.core_over;
                match core.as_deref_mut().filter(|_| on_core) {
                    Some(c) => {
                        let CoreState { tucker, norm_sq: core_sq, model: core_model, bufs, team } = c;
                        let mut cm = match core_model.take() {
                            Some(m) => m,
                            None => project(tucker, model),
                        };
                        let (rel_core, step) =
                            self.dense_step(&tucker.core, *core_sq, state.iteration, &mut cm, bufs, team.as_ref());
                        ls_step = step;
                        // both terms accurate: `lost_sq` is explicit where small (see `compress`),
                        // the core residual explicit where small (`full_rel` on the core)
                        let rel = ((tucker.lost_sq + rel_core * rel_core * *core_sq) / norm_sq).sqrt();
                        expand_into(tucker, &cm, model);
                        *core_model = Some(cm);
                        state.record.values.insert("on_core".into(), 1.0);
                        self.last_on_core = true;
                        // the full tensor's carried contraction is of an older factor
                        cache.bufs.w_b_valid = false;
                        // without a budget (or with tol_change), the compressed phase ends where it stalls
                        if let Some(prev) = self.prev_rel {
                            let change = (prev - rel).abs();
                            if change < self.p.tol_change || (state.max_iters.is_none() && change <= CORE_STALL * rel) {
                                self.core_over = true;
                                switched = true;
                            }
                        }
                        rel
                    }
                    None => {
                        // a compressed run: it has its core, or ended its compressed phase
                        if core.is_some() || self.core_over {
                            state.record.values.insert("on_core".into(), 0.0);
                        }
                        if state.iteration >= 1 && core.is_some() {
                            // the compressed phase is over for good (also for a run resumed with a
                            // larger budget): free the core, its bases and its team
                            *core = None;
                            self.core_over = true;
                        }
                        self.last_on_core = false;
                        let team = self.team.take();
                        let (rel, step) =
                            self.dense_step(t, norm_sq, state.iteration, model, &mut cache.bufs, team.as_ref());
                        self.team = team;
                        ls_step = step;
                        rel
                    }
                }
            }
            Kind::Em { filled, refill } => {
                if *refill {
                    Self::em_fill(t, model, filled);
                    *refill = false;
                }
                self.dense_sweep(filled, dims, state.iteration, model, &mut cache.bufs, self.team.as_ref());
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
            && !switched
            && self.p.tol_change > 0.0
            && (prev - rel).abs() < self.p.tol_change
        {
            state.converged = true;
        }
        self.prev_rel = Some(rel);
        Ok(())
    }

    /// A run that stopped on the core (interrupt, time budget, early stop,
    /// an observer, `tol`) gets the [`REFINE_ITERS`] full-tensor iterations
    /// it would have had at the end of its budget, so that its model is not
    /// confined to the compression's subspaces (they are not recorded as
    /// iterations; the summary's `rel_error` is the refined model's).
    fn finalize(&mut self, t: &Tensor3, model: &mut CpModel) -> Result<()> {
        if !self.last_on_core {
            return Ok(());
        }
        self.last_on_core = false;
        let Some(mut cache) = self.cache.take() else { return Ok(()) };
        let team = self.team.take();
        cache.bufs.w_b_valid = false;
        for it in 0..REFINE_ITERS {
            // even iterations first: the carried contraction is computed, not assumed
            self.dense_sweep(t.data(), t.dims(), 2 * it, model, &mut cache.bufs, team.as_ref());
        }
        self.team = team;
        self.cache = Some(cache);
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        "the factors blew up (a degenerate CP problem); lower the rank, add reg (e.g. --set reg=1e-6) or use init=svd"
            .into()
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        let core_model = match self.cache.as_ref().map(|c| &c.kind) {
            Some(Kind::Full { core: Some(c) }) => c.model.as_ref().map(model_bits),
            _ => None,
        };
        let s = ExtraState {
            prev_rel: self.prev_rel,
            acc_pow: self.acc_pow,
            acc_fail: self.acc_fail,
            core_over: self.core_over,
            core_model,
        };
        serde_json::to_vec(&s).map_err(|e| Error::invalid(e.to_string()))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let s: ExtraState =
            serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("bad cp-als checkpoint state: {e}")))?;
        self.prev_rel = s.prev_rel;
        self.acc_pow = s.acc_pow;
        self.acc_fail = s.acc_fail;
        self.core_over = s.core_over;
        self.last_on_core = false;
        match self.cache.as_mut().map(|c| &mut c.kind) {
            Some(Kind::Em { refill, .. }) => *refill = true,
            Some(Kind::Full { core: Some(c) }) => {
                c.model = match s.core_model {
                    Some(bits) => Some(model_from_bits(&bits, c.tucker.core.dims(), self.p.rank)?),
                    None => None,
                }
            }
            _ => {}
        }
        Ok(())
    }
}
