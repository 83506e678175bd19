//! `nuclear-min`: exact nuclear-norm minimization,
//! `min ||X||_*  s.t.  |X_ij - A_ij| <= eps  on the observed entries Omega`
//! (the depth-1 baseline of deep matrix factorization, Arora, Cohen, Hu and
//! Luo 2019, seed `001`, solved there by cvxpy; `eps = 1e-3` as there).
//!
//! # Method
//! Burer-Monteiro factorization (Burer and Monteiro 2003, 2005) of the
//! nuclear norm, `||X||_* = min_{L R^T = X} (||L||_F^2 + ||R||_F^2) / 2`
//! (Srebro, Rennie and Jaakkola 2005; Recht, Fazel and Parrilo 2010), with
//! the box constraints handled by a Powell-Hestenes-Rockafellar augmented
//! Lagrangian (Rockafellar 1973; Nocedal and Wright, ch. 17):
//!
//! `phi(L, R) = (||L||^2 + ||R||^2) / 2 + rho / 2 sum_e dist(w_e, [-eps, eps])^2`,
//! `w_e = (L R^T)_e - a_e + y_e / rho`.
//!
//! One iteration of the run (`step`) is one outer step: `phi` is minimized
//! over the factors by preconditioned L-BFGS (below) to a relative gradient
//! tolerance `omega` (an iteration costs `O(|Omega| r + (m + n) r^2)`, no
//! SVD of the full matrix), the multipliers
//! take `y <- rho (w - proj(w))`, the factors are rebalanced through the SVD
//! of `L R^T` computed from QR factors (`O((m + n) r^2)`; columns whose
//! singular value vanished are dropped), and when the violation did not
//! halve the penalty `rho` doubles; `omega` (from 1e-3) shrinks 0.3x per step
//! (inexact ALM, Conn, Gould and Toint 1991).
//!
//! # Inner solver
//! `phi`'s curvature in the factors is badly scaled: in a direction `dL`
//! the penalty grows like `rho p ||dL R^T||^2` (sampling rate
//! `p = |Omega| / (m n)`), i.e. with the squared singular values of `R`,
//! which at the 2000-entry planted problem span 48 to 0.07 at rank 28, and
//! with `rho`. Plain L-BFGS then runs into its iteration cap (500) on every
//! outer step once `rho` has grown. The initial inverse Hessian of the
//! two-loop recursion is therefore `gamma P` with the block-diagonal
//! `P = diag((I + rho p R^T R)^{-1}, (I + rho p L^T L)^{-1})` acting on the
//! rows of the two factors (the scaled gradient of Tong, Ma and Chi 2021;
//! Mishra and Sepulchre 2016), fixed for one inner solve, and
//! `gamma = s^T y / y^T P y` from the last curvature pair (Nocedal and
//! Wright, eq. 7.20, in the metric of `P`). Setting `precondition = false`
//! gives plain L-BFGS (`gamma = s^T y / y^T y`). The hot loops
//! (`inner.rs`) run on AVX2 with fused multiply-adds when the CPU has them.
//!
//! # Rank
//! The factor rank `r` starts at `rank` (automatic by default: the number of
//! singular values of the rescaled zero-filled data above 10% of the
//! largest, at least 2) and grows when the current one is too small: at a
//! stationary point `L = Z R`, `R = Z^T L` for the dual matrix
//! `Z = -P*(y)`, so `Z` has singular values 1 on the span of the factors, and
//! the point is the global minimum iff `||Z||_op <= 1` (Burer and Monteiro
//! 2005; Journee, Bach, Absil and Sepulchre 2010). A few subspace iterations
//! on `(I - U U^T) Z (I - V V^T)` find the singular pairs `(s, u, v)` outside
//! the factors; each with `s > 1` is a descent direction `X + t u v^T` of the
//! augmented Lagrangian (first-order change `t (1 - s)`), added as a new
//! column pair at the step `t = (s - 1) / (rho ||P(u v^T)||^2)` that
//! minimizes its quadratic model.
//!
//! # Certificate and stopping rule
//! Weak duality: for any `Z` supported on `Omega` with `||Z||_op <= 1` and any
//! feasible `X'`, `||X'||_* >= <Z, X'> = <z, a> + <z, X'_Omega - a> >=
//! <z, a> - eps ||z||_1 =: d(z)`. The multipliers give `z = -y`; scaled into
//! the dual ball (divided by `max(1, ||Z||_op)`, the largest singular value of
//! the dense `m x n` matrix `Z` computed exactly), `d` is a proven lower bound
//! on the optimum. The run stops (termination `converged`) when the
//! constraint violation `max_e (|X_e - a_e| - eps)_+ <= tol max_e |a_e|` and
//! the relative duality gap `|(||X||_* - d) / ||X||_*| <= tol`: then `X` is
//! within `tol` (relative) of optimal among the feasible matrices, up to its
//! own violation. Records carry `nuclear_norm`, `violation`, `rel_gap`, `dual`,
//! `dual_norm` (`||Z||_op` before scaling), `rank` (singular values of `X`
//! above `tol sigma_1`), `effective_rank` (Roy and Vetterli 2007),
//! `factor_rank`, `rho`, `inner_iters`; the certificate (a dense SVD) is
//! computed once the violation is within `10 tol`, before that `rel_gap` is
//! absent. `rel_gap` is recorded signed, `(||X||_* - d) / ||X||_*`: a value
//! slightly below zero (about `-tol` at most) is an `X` slightly outside the
//! box, whose norm is below the feasible optimum that `d` bounds.
//!
//! # Exact-recovery shortcut
//! When the box is within the tolerance (`eps <= tol max|a|`) and the
//! entries determine a low-rank matrix (the exact-recovery regime of
//! matrix completion, Candes and Recht 2009), the minimizer is the low-rank
//! interpolant itself. The first step tries that before any augmented-
//! Lagrangian work: the rank at the widest relative gap of the starting
//! spectrum, an interpolant of that rank by alternating least squares
//! (stopped when it no longer converges), the least-squares dual on its
//! tangent space (`refine_dual` with every entry active), and the certificate
//! above. Only a certified interpolant is kept (record key
//! `interpolation_sweeps`, `inner_iters` 0); otherwise the step goes on
//! from the unchanged spectral start. On the planted 100 x 100 rank-5
//! problem with 5000 entries and `eps = 1e-6` this is the whole run (one
//! step, relative error 1.4e-8 to the truth); with 2000 entries the
//! nuclear-norm minimizer is not the rank-5 matrix (error 0.218) and the
//! certificate rejects it.
//!
//! Internally the data are divided by `max_e |a_e|` so that the defaults do
//! not depend on the units; reported values are in data units.

use faer::Mat;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use self::inner::Al;
use super::linop::{SparseOp, mul};
use super::svd::{RsvdOptions, Svd, orthonormalize, thin_qr, thin_svd};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::metrics;
use crate::model::DenseModel;
use crate::optim::optimizer::dot_lanes as dot;
use crate::rng::{self, Rng};
use crate::solve::registry::{
    AlgoEntry, FitOutcome, FitRequest, FittedModel, eval_sets, insert_run_summary, insert_test_summary, parse_params,
};
use crate::solve::{IterState, Solver};

/// Settings of `nuclear-min`.
const KEYS: &[&str] = &["eps", "tol", "rank", "max_rank", "rho", "inner_iters", "memory", "precondition"];

/// Algorithms of this module, registered by name.
pub static ALGOS: &[AlgoEntry] = &[AlgoEntry {
    name: "nuclear-min",
    about: "exact nuclear-norm minimization s.t. |X_ij - A_ij| <= eps on the observed entries \
            (Burer-Monteiro augmented Lagrangian + preconditioned L-BFGS, duality-gap certificate; dense model)",
    keys: KEYS,
    run: run_nuclear_min,
    validate: |p| crate::solve::registry::parse_params::<NuclearMin>("nuclear-min", p, KEYS)?.check().map(drop),
}];

/// Parameters of `nuclear-min`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NuclearMin {
    /// Half-width of the box around each observed value (the research
    /// code's cvxpy problem: 1e-3).
    pub eps: f64,
    /// Tolerance, in `(0, 1)`, on the relative duality gap and on the
    /// constraint violation relative to `max |a|` (default 1e-5). 1e-6 (SCS's
    /// `eps` as the cvxpy peer runs it) costs far more for digits the box
    /// `eps` makes moot: on the planted 100 x 100 rank-5 problem with 5000
    /// entries and `eps = 1e-3`, 379 outer steps (9.5 s) instead of 20
    /// (0.19 s) for a relative error of 7.32e-4 instead of 7.37e-4; with 2000
    /// entries 1.7 s instead of 1.1 s, the same error to six digits. When
    /// tightening `eps` well below 1e-3, tighten `tol` with it (the
    /// violation allowed is `tol max |a|`).
    pub tol: f64,
    /// Initial factor rank `r` (it grows when the certificate shows it is too
    /// small); 0 = automatic (see the module docs). At most `min(m, n)`.
    pub rank: usize,
    /// Largest factor rank; 0 = `min(m, n)`.
    pub max_rank: usize,
    /// Initial penalty, relative to `10 / sigma_1` of the rescaled
    /// zero-filled data (default 10: over 54 planted problems,
    /// `bench/nucmin_rho_study.sh`, it takes 0.79x the L-BFGS iterations of
    /// 1 with the default box and 0.63x at `eps = tol = 1e-6`, to the same
    /// minimizers; 30 is no better).
    pub rho: f64,
    /// Most L-BFGS iterations per outer step (default 500).
    pub inner_iters: usize,
    /// L-BFGS memory (default 10).
    pub memory: usize,
    /// Precondition the inner L-BFGS with the factors' scaled-gradient
    /// metric (module docs, "Inner solver"; default true). On the planted
    /// 100 x 100 rank-5 problems it halves the L-BFGS iterations at 2000
    /// entries and takes the 5000-entry run at `tol = 1e-6` from 160 outer
    /// steps to 28; `false` gives plain L-BFGS.
    pub precondition: bool,
}

impl Default for NuclearMin {
    fn default() -> Self {
        NuclearMin {
            eps: 1e-3,
            tol: 1e-5,
            rank: 0,
            max_rank: 0,
            rho: 10.0,
            inner_iters: 500,
            memory: 10,
            precondition: true,
        }
    }
}

impl NuclearMin {
    /// Validate into a solver.
    pub fn check(self) -> Result<NuclearMinSolver> {
        ensure!(self.eps > 0.0 && self.eps.is_finite(), "eps must be > 0, got {}", self.eps);
        ensure!(self.tol > 0.0 && self.tol < 1.0, "tol must be in (0, 1), got {}", self.tol);
        ensure!(self.rho > 0.0 && self.rho.is_finite(), "rho must be > 0, got {}", self.rho);
        ensure!(self.inner_iters >= 1, "inner_iters must be >= 1");
        ensure!(self.memory >= 1, "memory must be >= 1");
        ensure!(
            self.max_rank == 0 || self.rank <= self.max_rank,
            "rank ({}) must be <= max_rank ({})",
            self.rank,
            self.max_rank
        );
        Ok(NuclearMinSolver { params: self, st: None })
    }
}

/// Entries in CSR order, with the permutation to CSC order.
#[derive(Clone, Debug)]
struct Pattern {
    m: usize,
    n: usize,
    /// Row of each entry (CSR order).
    rows: Vec<u32>,
    /// Column of each entry (CSR order).
    cols: Vec<u32>,
    /// Observed value of each entry divided by `scale` (CSR order).
    a: Vec<f64>,
    /// Position in the triplets of each CSR entry.
    entry: Vec<u32>,
    row_ptr: Vec<usize>,
    /// CSC traversal: `col_ptr` and the CSR index of each CSC position.
    col_ptr: Vec<usize>,
    csc_to_csr: Vec<usize>,
    /// `max_e |a_e|` of the data (1 when all are 0).
    scale: f64,
}

impl Pattern {
    fn new(r: &Ratings) -> Pattern {
        let csr = r.csr();
        let csc = r.csc();
        let mut rows = Vec::with_capacity(r.len());
        for i in 0..r.nrows() {
            rows.extend(std::iter::repeat_n(i as u32, csr.lane_len(i)));
        }
        let mut pos_of_entry = vec![0usize; r.len()];
        for (k, &e) in csr.entry.iter().enumerate() {
            pos_of_entry[e as usize] = k;
        }
        let csc_to_csr = csc.entry.iter().map(|&e| pos_of_entry[e as usize]).collect();
        let amax = csr.values.iter().fold(0.0f64, |s, &v| s.max((v as f64).abs()));
        let scale = if amax > 0.0 && amax.is_finite() { amax } else { 1.0 };
        Pattern {
            m: r.nrows(),
            n: r.ncols(),
            rows,
            cols: csr.indices.clone(),
            a: csr.values.iter().map(|&v| v as f64 / scale).collect(),
            entry: csr.entry.clone(),
            row_ptr: csr.indptr.clone(),
            col_ptr: csc.indptr.clone(),
            csc_to_csr,
            scale,
        }
    }

    /// `(L R^T)_e` for every entry.
    fn values(&self, r: usize, x: &[f64], out: &mut [f64]) {
        let (l, rr) = x.split_at(self.m * r);
        for i in 0..self.m {
            let li = &l[i * r..][..r];
            for e in self.row_ptr[i]..self.row_ptr[i + 1] {
                let j = self.cols[e] as usize;
                out[e] = dot(li, &rr[j * r..][..r]);
            }
        }
    }

    /// `out (m x k) = Z V` for the sparse `Z` with values `z` (CSR order).
    fn z_mul(&self, z: &[f64], v: &Mat<f64>) -> Mat<f64> {
        let k = v.ncols();
        let mut out = Mat::zeros(self.m, k);
        for t in 0..k {
            let vc = v.col(t);
            for i in 0..self.m {
                let mut s = 0.0;
                for e in self.row_ptr[i]..self.row_ptr[i + 1] {
                    s += z[e] * vc[self.cols[e] as usize];
                }
                out[(i, t)] = s;
            }
        }
        out
    }

    /// `out (n x k) = Z^T U`.
    fn zt_mul(&self, z: &[f64], u: &Mat<f64>) -> Mat<f64> {
        let k = u.ncols();
        let mut out = Mat::zeros(self.n, k);
        for t in 0..k {
            let uc = u.col(t);
            for j in 0..self.n {
                let mut s = 0.0;
                for &e in &self.csc_to_csr[self.col_ptr[j]..self.col_ptr[j + 1]] {
                    s += z[e] * uc[self.rows[e] as usize];
                }
                out[(j, t)] = s;
            }
        }
        out
    }

    /// The dense `m x n` matrix with values `z` on the pattern.
    fn dense(&self, z: &[f64]) -> Mat<f64> {
        let mut d = Mat::zeros(self.m, self.n);
        for e in 0..z.len() {
            d[(self.rows[e] as usize, self.cols[e] as usize)] = z[e];
        }
        d
    }
}

/// Solver state beyond the model (checkpointed).
#[derive(Clone, Debug)]
struct State {
    /// Factor rank.
    r: usize,
    /// `L` (m x r) then `R` (n x r), row-major, in units of `scale`.
    x: Vec<f64>,
    /// Multipliers, CSR order, in the scaled problem.
    y: Vec<f64>,
    /// Penalty.
    rho: f64,
    /// Relative gradient tolerance of the next inner solve.
    omega: f64,
    /// Violation (scaled) after the previous outer step.
    last_violation: f64,
    /// L-BFGS initial inverse-Hessian scale carried between inner solves.
    gamma: f64,
    /// Seed of the subspace iterations.
    seed: u64,
}

impl State {
    /// Exact little-endian serialization (every `f64` by its bits, so a
    /// resumed run continues bit for bit).
    fn to_bytes(&self) -> Vec<u8> {
        let mut w: Vec<u64> = vec![
            self.r as u64,
            self.x.len() as u64,
            self.y.len() as u64,
            self.rho.to_bits(),
            self.omega.to_bits(),
            self.last_violation.to_bits(),
            self.gamma.to_bits(),
            self.seed,
        ];
        w.extend(self.x.iter().chain(&self.y).map(|v| v.to_bits()));
        w.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn from_bytes(b: &[u8]) -> Result<State> {
        ensure!(b.len().is_multiple_of(8) && b.len() >= 64, "bad nuclear-min state ({} bytes)", b.len());
        let w: Vec<u64> = b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        let (nx, ny) = (w[1] as usize, w[2] as usize);
        ensure!(w.len() == 8 + nx + ny, "bad nuclear-min state (length)");
        let f = |v: u64| f64::from_bits(v);
        Ok(State {
            r: w[0] as usize,
            x: w[8..8 + nx].iter().map(|&v| f(v)).collect(),
            y: w[8 + nx..].iter().map(|&v| f(v)).collect(),
            rho: f(w[3]),
            omega: f(w[4]),
            last_violation: f(w[5]),
            gamma: f(w[6]),
            seed: w[7],
        })
    }
}

/// The validated `nuclear-min` solver (model: [`DenseModel`]).
#[derive(Clone, Debug)]
pub struct NuclearMinSolver {
    params: NuclearMin,
    st: Option<(Pattern, State)>,
}

/// Scalars of the certificate of a solution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    /// `||X||_*`.
    pub nuclear_norm: f64,
    /// The proven lower bound `d(z / max(1, ||Z||_op))` on the optimum.
    pub dual: f64,
    /// `(||X||_* - dual) / ||X||_*` (negative only when `X` is infeasible).
    pub rel_gap: f64,
    /// `max_e (|X_e - a_e| - eps)_+` over the observed entries.
    pub violation: f64,
    /// `||Z||_op` before scaling (1 at an exact solution).
    pub dual_norm: f64,
    /// Numerical rank of `X` (singular values above `tol sigma_1`).
    pub rank: usize,
}

/// A solution of [`nuclear_norm_min`].
#[derive(Clone, Debug)]
pub struct NuclearMinResult {
    /// The dense solution.
    pub x: Mat<f64>,
    /// The dual variable `z` (aligned with the data's triplets), scaled into
    /// the dual ball: `Z = P*(z)` has `||Z||_op <= 1`.
    pub z: Vec<f64>,
    /// Its certificate.
    pub certificate: Certificate,
    /// Outer (augmented-Lagrangian) steps taken.
    pub iterations: usize,
    /// True when the gap and violation reached the tolerance.
    pub converged: bool,
}

/// Solve `min ||X||_* s.t. |X_ij - A_ij| <= eps` on the observed entries and
/// return the dense solution with its certificate and dual variable.
pub fn nuclear_norm_min(data: &Ratings, params: NuclearMin, max_iters: usize) -> Result<NuclearMinResult> {
    let mut solver = params.check()?;
    let mut model = solver.init(data, &mut rng::rng(0))?;
    let mut last = Certificate::default();
    let mut converged = false;
    let mut iterations = 0;
    for it in 0..max_iters {
        let mut state = IterState { iteration: it, ..Default::default() };
        solver.step(data, &mut model, &mut state)?;
        iterations = it + 1;
        if let Some(c) = solver.last_certificate(&state) {
            last = c;
        }
        if state.converged {
            converged = true;
            break;
        }
        if state.stalled.is_some() {
            break;
        }
    }
    let z = solver.dual_variable(data)?;
    Ok(NuclearMinResult { x: model.x, z, certificate: last, iterations, converged })
}

/// Singular values, left and right factors of `L R^T` through thin QR of the
/// factors: `L R^T = (Q_L U_c) S (Q_R V_c)^T`.
fn factor_svd(p: &Pattern, r: usize, x: &[f64]) -> Result<(Vec<f64>, Mat<f64>, Mat<f64>)> {
    let (l, rr) = x.split_at(p.m * r);
    let lm = Mat::from_fn(p.m, r, |i, t| l[i * r + t]);
    let rm = Mat::from_fn(p.n, r, |j, t| rr[j * r + t]);
    let ((ql, rl), (qr, rr)) = (thin_qr(lm.as_ref()), thin_qr(rm.as_ref()));
    let core = mul(rl.as_ref(), rr.transpose());
    let c = thin_svd(core.as_ref())?;
    let u = mul(ql.as_ref(), c.u.as_ref());
    let v = mul(qr.as_ref(), c.v.as_ref());
    Ok((c.s, u, v))
}

/// Effective rank of Roy and Vetterli (2007), `exp(H(s / sum s))`.
fn effective_rank(s: &[f64]) -> f64 {
    let total: f64 = s.iter().map(|x| x.max(0.0)).sum();
    if total <= 0.0 || !total.is_finite() {
        return 0.0;
    }
    let h: f64 = s.iter().map(|&x| x.max(0.0) / total).filter(|&q| q > 0.0).map(|q| -q * q.ln()).sum();
    h.exp()
}

impl NuclearMinSolver {
    /// The settings.
    pub fn params(&self) -> &NuclearMin {
        &self.params
    }

    /// The certificate recorded in `state` by the last step, when it has one.
    fn last_certificate(&self, state: &IterState) -> Option<Certificate> {
        let v = &state.record.values;
        let g = |k: &str| v.get(k).copied();
        Some(Certificate {
            nuclear_norm: g("nuclear_norm")?,
            dual: g("dual")?,
            rel_gap: g("rel_gap")?,
            violation: g("violation")?,
            dual_norm: g("dual_norm")?,
            rank: g("rank")? as usize,
        })
    }

    /// The current dual variable `z = -y` scaled into the dual ball, aligned
    /// with the data's triplets.
    fn dual_variable(&self, data: &Ratings) -> Result<Vec<f64>> {
        let (p, st) = self.st.as_ref().ok_or_else(|| Error::invalid("nuclear-min: not initialized"))?;
        let z: Vec<f64> = st.y.iter().map(|v| -v).collect();
        let norm = dense_op_norm(p, &z)?;
        let mut out = vec![0.0; data.len()];
        for (k, &e) in p.entry.iter().enumerate() {
            out[e as usize] = z[k] / norm.max(1.0);
        }
        Ok(out)
    }

    /// Rebalance the factors to `U S^1/2, V S^1/2` (same `X`, least
    /// `(||L||^2 + ||R||^2) / 2 = ||X||_*`), dropping columns whose singular
    /// value is below `1e-12 sigma_1`. Returns the singular values and the
    /// orthonormal `U`, `V` of the kept columns.
    fn rebalance(p: &Pattern, st: &mut State) -> Result<(Vec<f64>, Mat<f64>, Mat<f64>)> {
        let (s, u, v) = factor_svd(p, st.r, &st.x)?;
        let top = s.first().copied().unwrap_or(0.0);
        let keep = s.iter().filter(|&&x| x > 1e-12 * top && x > 0.0).count().max(1);
        st.x = balanced_rows(&s, &u, &v, keep);
        st.r = keep;
        Ok((s[..keep].to_vec(), u.subcols(0, keep).to_owned(), v.subcols(0, keep).to_owned()))
    }

    /// Top singular triplets of `(I - U U^T) Z (I - V V^T)` by subspace
    /// iteration from a seeded Gaussian block of `b` columns.
    fn outside_pairs(
        p: &Pattern,
        z: &[f64],
        u: &Mat<f64>,
        v: &Mat<f64>,
        b: usize,
        g: &mut Rng,
    ) -> Result<(Vec<f64>, Mat<f64>, Mat<f64>)> {
        let proj = |q: &Mat<f64>, w: Mat<f64>| -> Mat<f64> {
            let c = mul(q.transpose(), w.as_ref());
            let mut w = w;
            super::linop::mul_add(&mut w, q.as_ref(), c.as_ref(), -1.0);
            w
        };
        let mut vb = proj(v, Mat::from_fn(p.n, b, |_, _| rng::normal(g)));
        vb = orthonormalize(vb.as_ref());
        for _ in 0..4 {
            let ub = orthonormalize(proj(u, p.z_mul(z, &vb)).as_ref());
            vb = orthonormalize(proj(v, p.zt_mul(z, &ub)).as_ref());
        }
        let w = proj(u, p.z_mul(z, &vb));
        let sv = thin_svd(w.as_ref())?;
        let right = mul(vb.as_ref(), sv.v.as_ref());
        Ok((sv.s, sv.u, right))
    }

    /// Certificate of the factors `x` with multipliers `y_new` (scaled
    /// problem), given the singular values `s` of `X`.
    fn certify(&self, p: &Pattern, xe: &[f64], z: &[f64], s: &[f64]) -> Result<Certificate> {
        let eps = self.params.eps / p.scale;
        let dual_norm = dense_op_norm(p, z)?;
        let dual = (dot(z, &p.a) - eps * z.iter().map(|v| v.abs()).sum::<f64>()) / dual_norm.max(1.0);
        let nuc: f64 = s.iter().sum();
        let viol = violation(p, xe, eps);
        let top = s.first().copied().unwrap_or(0.0);
        Ok(Certificate {
            nuclear_norm: nuc * p.scale,
            dual: dual * p.scale,
            rel_gap: if nuc > 0.0 { (nuc - dual) / nuc } else { -dual.min(0.0) },
            violation: viol * p.scale,
            dual_norm,
            rank: s.iter().filter(|&&x| x > self.params.tol * top && x > 0.0).count(),
        })
    }
}

impl NuclearMinSolver {
    /// The exact-recovery shortcut of the first step (see the module docs):
    /// interpolate the entries at the starting factor rank by alternating
    /// least squares, build the least-squares dual on the tangent space of
    /// the interpolant, and certify. On success the state, the model and the
    /// record are those of a converged step and `true` is returned; on
    /// failure nothing is changed (the run goes on from the same point as
    /// without the shortcut).
    fn certify_interpolant(
        &self,
        p: &Pattern,
        st: &mut State,
        model: &mut DenseModel,
        state: &mut IterState,
    ) -> Result<bool> {
        let eps = self.params.eps / p.scale;
        let tol = self.params.tol;
        // the rank at the widest relative gap of the starting spectrum
        let (s0, u0, v0) = factor_svd(p, st.r, &st.x)?;
        let k0 = gap_rank(&s0);
        let mut trial = st.clone();
        trial.r = k0;
        trial.x = balanced_rows(&s0, &u0, &v0, k0);
        // feasible is enough: the data are f32 values, whose rank-r
        // interpolant is exact only to ~1e-8 relative
        let (sweeps, worst) = interpolate(p, trial.r, &mut trial.x, INTERPOLATION_SWEEPS, eps);
        if worst.is_nan() || worst - eps > tol {
            return Ok(false);
        }
        let (s, u, v) = Self::rebalance(p, &mut trial)?;
        let top = s.first().copied().unwrap_or(0.0);
        let k = s.iter().filter(|&&x| x > tol * top && x > 0.0).count().max(1);
        let mut xe = vec![0.0; p.a.len()];
        p.values(trial.r, &trial.x, &mut xe);
        let all = vec![true; p.a.len()];
        let (uk, vk) = (u.subcols(0, k).to_owned(), v.subcols(0, k).to_owned());
        let z = refine_dual(p, &vec![0.0; p.a.len()], &all, &uk, &vk, 100, REFINE_REL_TOL * tol);
        let c = self.certify(p, &xe, &z, &s)?;
        let certified = c.violation / p.scale <= tol && c.rel_gap.abs() <= tol;
        if !certified {
            return Ok(false);
        }
        trial.y = z.iter().map(|v| -v).collect();
        *st = trial;
        let rec = &mut state.record;
        rec.objective = Some(c.nuclear_norm);
        let vals = &mut rec.values;
        vals.insert("nuclear_norm".into(), c.nuclear_norm);
        vals.insert("violation".into(), c.violation);
        vals.insert("rho".into(), st.rho);
        vals.insert("inner_iters".into(), 0.0);
        vals.insert("interpolation_sweeps".into(), sweeps as f64);
        vals.insert("factor_rank".into(), st.r as f64);
        vals.insert("rank".into(), c.rank as f64);
        vals.insert("effective_rank".into(), effective_rank(&s));
        vals.insert("dual".into(), c.dual);
        vals.insert("rel_gap".into(), c.rel_gap);
        vals.insert("dual_norm".into(), c.dual_norm);
        state.converged = true;
        model.x = dense_of(p, st);
        Ok(true)
    }
}

/// The `k` (at least 1) with the largest ratio `s[k - 1] / s[k]` among the
/// positive singular values `s` (decreasing): where a low-rank signal ends.
fn gap_rank(s: &[f64]) -> usize {
    let pos = s.iter().take_while(|&&x| x > 0.0).count();
    (1..pos).max_by(|&a, &b| (s[a - 1] / s[a]).total_cmp(&(s[b - 1] / s[b]))).unwrap_or(1)
}

/// Residual reduction, relative to `tol`, at which the shortcut's
/// least-squares dual stops: its error enters `||Z||_op` and the gap at
/// about this relative size, a tenth of the gap allowed (on the planted
/// 100 x 100 rank-5 problem with 5000 entries at `tol` 1e-4: relative gap
/// 3.2e-6, against 1.0e-6 at 1e-2 for ~5 more CG iterations).
const REFINE_REL_TOL: f64 = 1e-1;

/// Most alternating-least-squares sweeps of the first step's interpolation.
const INTERPOLATION_SWEEPS: usize = 200;

/// Rank-`r` interpolation of the entries by alternating least squares from
/// the factors `x` (rows of `L`, then of `R`): each half-sweep solves every
/// row's normal equations exactly (a row with fewer entries than `r` gets the
/// minimum-norm-leaning jittered solution of `solve_spd`). Stops when the
/// largest `|(L R^T)_e - a_e|` is at most `target`, when it no longer halves
/// over five sweeps (no interpolant of this rank, or too slow to be worth
/// it), or after `sweeps`. Returns the sweeps run and that largest residual.
fn interpolate(p: &Pattern, r: usize, x: &mut [f64], sweeps: usize, target: f64) -> (usize, f64) {
    use crate::solve::als::linalg::{solve_spd, syrk_upper};
    let (m, n) = (p.m, p.n);
    let mut a = vec![0.0; r * r];
    let mut b = vec![0.0; r];
    let mut work = Vec::new();
    // the factor rows of one row's (or column's) entries, gathered
    let mut block: Vec<f64> = Vec::new();
    // normal equations of the rows `idx` of the other factor `f` against
    // the values `vals`, solved into `out` (left unchanged if singular)
    let mut solve_row = |f: &[f64], idx: &[u32], vals: &[f64], out: &mut [f64]| {
        match r {
            1 => normal_equations_small::<1>(f, idx, vals, &mut a, &mut b),
            2 => normal_equations_small::<2>(f, idx, vals, &mut a, &mut b),
            3 => normal_equations_small::<3>(f, idx, vals, &mut a, &mut b),
            4 => normal_equations_small::<4>(f, idx, vals, &mut a, &mut b),
            5 => normal_equations_small::<5>(f, idx, vals, &mut a, &mut b),
            6 => normal_equations_small::<6>(f, idx, vals, &mut a, &mut b),
            7 => normal_equations_small::<7>(f, idx, vals, &mut a, &mut b),
            8 => normal_equations_small::<8>(f, idx, vals, &mut a, &mut b),
            _ => {
                block.clear();
                b.fill(0.0);
                for (&q, &v) in idx.iter().zip(vals) {
                    let fq = &f[q as usize * r..][..r];
                    block.extend_from_slice(fq);
                    b.iter_mut().zip(fq).for_each(|(s, c)| *s += v * c);
                }
                a.fill(0.0);
                syrk_upper(&mut a, r, &block);
            }
        }
        if solve_spd(&mut a, r, &mut b, &mut work) {
            out.copy_from_slice(&b);
        }
    };
    // the entries in column order
    let col_csr = &p.csc_to_csr;
    let col_rows: Vec<u32> = col_csr.iter().map(|&e| p.rows[e]).collect();
    let col_vals: Vec<f64> = col_csr.iter().map(|&e| p.a[e]).collect();
    let mut xe = vec![0.0; p.a.len()];
    let worst = |x: &[f64], xe: &mut [f64]| -> f64 {
        p.values(r, x, xe);
        xe.iter().zip(&p.a).fold(0.0f64, |w, (v, t)| w.max((v - t).abs()))
    };
    let mut history = vec![worst(x, &mut xe)];
    for sweep in 1..=sweeps {
        let (l, rr) = x.split_at_mut(m * r);
        for i in 0..m {
            let es = p.row_ptr[i]..p.row_ptr[i + 1];
            solve_row(rr, &p.cols[es.clone()], &p.a[es], &mut l[i * r..][..r]);
        }
        for j in 0..n {
            let es = p.col_ptr[j]..p.col_ptr[j + 1];
            solve_row(l, &col_rows[es.clone()], &col_vals[es], &mut rr[j * r..][..r]);
        }
        let w = worst(x, &mut xe);
        history.push(w);
        if !w.is_finite() || w <= target {
            return (sweep, w);
        }
        if sweep >= 5 && w > 0.5 * history[sweep - 5] {
            return (sweep, w);
        }
    }
    (sweeps, *history.last().unwrap_or(&f64::INFINITY))
}

/// The normal equations of one row for a small constant rank `R`: the
/// upper triangle of `F_Q^T F_Q` into `a` (row-major `R x R`, zero below)
/// and `F_Q^T v` into `b`, over the rows `idx` of the factor `f` (row-major,
/// `R` columns) with the values `vals`. The accumulators live in registers
/// (the generic path gathers the rows and calls `syrk_upper`, several times
/// slower at these sizes). A Cholesky solve in registers was tried too: its
/// chain of dependent divisions made it slower than `solve_spd`.
fn normal_equations_small<const R: usize>(f: &[f64], idx: &[u32], vals: &[f64], a: &mut [f64], b: &mut [f64]) {
    let mut acc = [[0.0f64; R]; R];
    let mut rhs = [0.0f64; R];
    for (&q, &v) in idx.iter().zip(vals) {
        let fq = &f[q as usize * R..q as usize * R + R];
        for s in 0..R {
            rhs[s] += v * fq[s];
            for t in s..R {
                acc[s][t] += fq[s] * fq[t];
            }
        }
    }
    for s in 0..R {
        b[s] = rhs[s];
        a[s * R..s * R + R].copy_from_slice(&acc[s]);
    }
}

/// Least-squares dual refinement (the "least-squares multiplier" estimate,
/// Nocedal and Wright sec. 18.3; the least-squares dual certificate of
/// Candes and Recht 2009): starting from `z0` (the augmented-Lagrangian
/// estimate, or zero), conjugate gradients on
/// `min ||P_T(P*(z)) - U V^T||_F^2` over `z` supported on `act` (the
/// estimated active set), `T` the tangent space at `X = U S V^T`. At an
/// optimum `P_T(Z) = U V^T` exactly, so this removes the noise that a large
/// penalty puts into `rho (w - proj(w))`.
///
/// Stops when the residual norm has fallen by `rel_tol` or after `iters`
/// iterations. `U`, `V` and the products are held as row-major `k`-vectors
/// per row (one pass over the entries per product).
fn refine_dual(
    p: &Pattern,
    z0: &[f64],
    act: &[bool],
    u: &Mat<f64>,
    v: &Mat<f64>,
    iters: usize,
    rel_tol: f64,
) -> Vec<f64> {
    let k = u.ncols();
    let mut ts = TangentSpace::new(u, v);
    let rhs: Vec<f64> = (0..z0.len())
        .map(|e| {
            if !act[e] {
                return 0.0;
            }
            let (i, j) = (p.rows[e] as usize, p.cols[e] as usize);
            dot(&ts.ur[i * k..][..k], &ts.vr[j * k..][..k])
        })
        .collect();
    let mut pt = |z: &[f64], out: &mut [f64]| match k {
        1 => tangent_product_k::<1>(p, act, z, out, &mut ts),
        2 => tangent_product_k::<2>(p, act, z, out, &mut ts),
        3 => tangent_product_k::<3>(p, act, z, out, &mut ts),
        4 => tangent_product_k::<4>(p, act, z, out, &mut ts),
        5 => tangent_product_k::<5>(p, act, z, out, &mut ts),
        6 => tangent_product_k::<6>(p, act, z, out, &mut ts),
        7 => tangent_product_k::<7>(p, act, z, out, &mut ts),
        8 => tangent_product_k::<8>(p, act, z, out, &mut ts),
        _ => tangent_product(k, p, act, z, out, &mut ts),
    };
    let mut z = z0.to_vec();
    let mut nz = vec![0.0; z.len()];
    pt(&z, &mut nz);
    let mut res: Vec<f64> = rhs.iter().zip(&nz).map(|(a, b)| a - b).collect();
    let mut d = res.clone();
    let mut rr = dot(&res, &res);
    let r0 = rr;
    let mut nd = vec![0.0; z.len()];
    for _ in 0..iters {
        if rr <= rel_tol * rel_tol * r0.max(f64::MIN_POSITIVE) || rr == 0.0 {
            break;
        }
        pt(&d, &mut nd);
        let dnd = dot(&d, &nd);
        if dnd.is_nan() || dnd <= 0.0 {
            break;
        }
        let alpha = rr / dnd;
        z.iter_mut().zip(&d).for_each(|(a, b)| *a += alpha * b);
        res.iter_mut().zip(&nd).for_each(|(a, b)| *a -= alpha * b);
        let rr2 = dot(&res, &res);
        let beta = rr2 / rr;
        rr = rr2;
        d.iter_mut().zip(&res).for_each(|(a, b)| *a = b + beta * *a);
    }
    z
}

/// The tangent space at `X = U S V^T` for [`tangent_product`]: the
/// row-major `U` (m x k) and `V` (n x k), and the work space `B = M V`
/// (m x k), `A = M^T U` (n x k), `U C` (m x k) and `C = U^T B` (k x k).
struct TangentSpace {
    ur: Vec<f64>,
    vr: Vec<f64>,
    b: Vec<f64>,
    a: Vec<f64>,
    ucm: Vec<f64>,
    c: Vec<f64>,
}

impl TangentSpace {
    fn new(u: &Mat<f64>, v: &Mat<f64>) -> TangentSpace {
        let (m, n, k) = (u.nrows(), v.nrows(), u.ncols());
        TangentSpace {
            ur: (0..m * k).map(|x| u[(x / k, x % k)]).collect(),
            vr: (0..n * k).map(|x| v[(x / k, x % k)]).collect(),
            b: vec![0.0; m * k],
            a: vec![0.0; n * k],
            ucm: vec![0.0; m * k],
            c: vec![0.0; k * k],
        }
    }
}

/// [`tangent_product`] for a constant `K` (the per-entry loops unrolled).
fn tangent_product_k<const K: usize>(p: &Pattern, act: &[bool], z: &[f64], out: &mut [f64], ts: &mut TangentSpace) {
    tangent_product(K, p, act, z, out, ts)
}

/// `P_T(P*(z))` at the entries on `act` (0 elsewhere), with `M = P*(z)`:
/// `U U^T M + M V V^T - U U^T M V V^T` for the `k` columns of the tangent
/// space `ts`, in one pass over the entries for `B = M V` and `A = M^T U`
/// and one for the values.
#[inline(always)]
fn tangent_product(k: usize, p: &Pattern, act: &[bool], z: &[f64], out: &mut [f64], ts: &mut TangentSpace) {
    let TangentSpace { ur, vr, b, a, ucm, c } = ts;
    let m = p.m;
    b.fill(0.0);
    a.fill(0.0);
    for e in 0..z.len() {
        if !act[e] || z[e] == 0.0 {
            continue;
        }
        let (i, j) = (p.rows[e] as usize, p.cols[e] as usize);
        let (ze, vj, ui) = (z[e], &vr[j * k..j * k + k], &ur[i * k..i * k + k]);
        let bi = &mut b[i * k..i * k + k];
        for t in 0..k {
            bi[t] += ze * vj[t];
        }
        let aj = &mut a[j * k..j * k + k];
        for t in 0..k {
            aj[t] += ze * ui[t];
        }
    }
    c.fill(0.0);
    for i in 0..m {
        let (ui, bi) = (&ur[i * k..i * k + k], &b[i * k..i * k + k]);
        for s in 0..k {
            let cs = &mut c[s * k..s * k + k];
            for t in 0..k {
                cs[t] += ui[s] * bi[t];
            }
        }
    }
    for i in 0..m {
        let (ui, o) = (&ur[i * k..i * k + k], &mut ucm[i * k..i * k + k]);
        o.fill(0.0);
        for s in 0..k {
            let cs = &c[s * k..s * k + k];
            for t in 0..k {
                o[t] += ui[s] * cs[t];
            }
        }
    }
    for e in 0..z.len() {
        out[e] = if act[e] {
            let (i, j) = (p.rows[e] as usize, p.cols[e] as usize);
            let (ui, aj, vj) = (&ur[i * k..i * k + k], &a[j * k..j * k + k], &vr[j * k..j * k + k]);
            let (bi, ci) = (&b[i * k..i * k + k], &ucm[i * k..i * k + k]);
            let mut sum = 0.0;
            for t in 0..k {
                sum += ui[t] * aj[t] + (bi[t] - ci[t]) * vj[t];
            }
            sum
        } else {
            0.0
        };
    }
}

/// `max_e (|x_e - a_e| - eps)_+` (scaled units).
fn violation(p: &Pattern, xe: &[f64], eps: f64) -> f64 {
    xe.iter().zip(&p.a).fold(0.0f64, |v, (x, a)| v.max((x - a).abs() - eps))
}

/// `||P*(z)||_op`, exactly: the square root of the largest eigenvalue of
/// the Gram matrix `Z Z^T` (or `Z^T Z`, the smaller one) by a dense
/// symmetric eigensolver (tridiagonal QR, backward stable: the eigenvalue
/// is accurate to about `1e-16 ||Z||^2`, which is `||Z||` to ~1e-16
/// relative; half the time of the dense singular values).
fn dense_op_norm(p: &Pattern, z: &[f64]) -> Result<f64> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch};
    if z.iter().all(|&v| v == 0.0) {
        return Ok(0.0);
    }
    let d = p.dense(z);
    let (small, other) = if p.m <= p.n { (d.as_ref(), d.transpose()) } else { (d.transpose(), d.as_ref()) };
    let k = small.nrows();
    let mut g = Mat::zeros(k, k);
    let gram_par = super::linop::par_for(k, k, small.ncols());
    faer::linalg::matmul::matmul(g.as_mut(), faer::Accum::Replace, small, other, 1.0, gram_par);
    let par = super::linop::par_for(k, k, k);
    let no = faer::linalg::evd::ComputeEigenvectors::No;
    let mut buf = MemBuffer::new(self_adjoint_evd_scratch::<f64>(k, no, par, Default::default()));
    let mut e = faer::diag::Diag::<f64>::zeros(k);
    self_adjoint_evd(g.as_ref(), e.as_mut(), None, par, MemStack::new(&mut buf), Default::default())
        .map_err(|e| Error::Numerical(format!("nuclear-min: the eigenvalue solver did not converge ({e:?})")))?;
    let e = e.column_vector();
    if e.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numerical("nuclear-min: the dual matrix has non-finite entries".into()));
    }
    Ok(e.iter().fold(0.0f64, |a, &b| a.max(b)).max(0.0).sqrt())
}

impl Solver for NuclearMinSolver {
    type Data = Ratings;
    type Model = DenseModel;

    fn name(&self) -> &'static str {
        "nuclear-min"
    }

    fn divergence_hint(&self) -> String {
        "lower rho (the initial penalty) or check the data for extreme values".into()
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<DenseModel> {
        ensure!(!data.is_empty(), "nuclear-min: the training data has no entries");
        ensure!(data.iter().all(|(_, _, v)| v.is_finite()), "nuclear-min: the data has non-finite values");
        data.check_duplicates()?;
        let (m, n) = data.shape();
        let k = m.min(n);
        ensure!(self.params.rank <= k, "rank must be <= min(m, n) = {k}, got {}", self.params.rank);
        ensure!(self.params.max_rank <= k, "max_rank must be <= min(m, n) = {k}, got {}", self.params.max_rank);
        let p = Pattern::new(data);
        let seed: u64 = rng::below(rng, 1 << 30) as u64;
        // Spectral start (the standard initialization, Keshavan, Montanari
        // and Oh 2010): the top singular triplets of the rescaled zero-filled
        // matrix, as balanced factors, shrunk so the start is not
        // over-fitted.
        let zs: Vec<f64> = {
            let mut t = vec![0.0; p.a.len()];
            for (kk, &e) in p.entry.iter().enumerate() {
                t[e as usize] = p.a[kk] * (m * n) as f64 / data.len() as f64;
            }
            t
        };
        let op = SparseOp::with_values(data, &zs);
        let probe = if self.params.rank == 0 { k.min(20) } else { self.params.rank.max(1) };
        let svd = Svd::randomized(&op, probe, &RsvdOptions { oversample: 10, power_iters: 4, seed })?;
        let top = svd.s.first().copied().unwrap_or(0.0);
        let r = if self.params.rank == 0 {
            svd.s.iter().filter(|&&x| x > 0.1 * top).count().max(2).min(k)
        } else {
            self.params.rank
        }
        .min(if self.params.max_rank == 0 { k } else { self.params.max_rank })
        .max(1);
        let half: Vec<f64> = svd.s.iter().map(|s| 0.5 * s).collect();
        let x = balanced_rows(&half, &svd.u, &svd.v, r);
        // sigma_1 of the plain zero-filled data (scaled), for the penalty
        let sigma = top * data.len() as f64 / (m * n) as f64;
        let rho = self.params.rho * 10.0 / sigma.max(1e-12);
        let st = State {
            r,
            x,
            y: vec![0.0; data.len()],
            rho,
            omega: 1e-3,
            last_violation: f64::INFINITY,
            gamma: 1.0 / (1.0 + rho),
            seed,
        };
        let model = DenseModel::new(dense_of(&p, &st));
        self.st = Some((p, st));
        Ok(model)
    }

    fn step(&mut self, _data: &Ratings, model: &mut DenseModel, state: &mut IterState) -> Result<()> {
        let (p, mut st) = self.st.take().ok_or_else(|| Error::invalid("nuclear-min: step before init"))?;
        let res = self.outer(&p, &mut st, model, state);
        self.st = Some((p, st));
        res
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        match &self.st {
            Some((_, st)) => Ok(st.to_bytes()),
            None => Ok(Vec::new()),
        }
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let st = State::from_bytes(bytes)?;
        if let Some((p, old)) = self.st.as_mut() {
            ensure!(
                st.y.len() == old.y.len() && st.r >= 1 && st.x.len() == (p.m + p.n) * st.r,
                "the nuclear-min checkpoint does not match the data"
            );
            *old = st;
        }
        Ok(())
    }
}

/// The factor rows `[L; R]` (row-major, `r` columns) of `L = U S^1/2`,
/// `R = V S^1/2` from the first `r` singular triplets (`s` clamped at 0;
/// columns beyond `s.len()` stay zero).
fn balanced_rows(s: &[f64], u: &Mat<f64>, v: &Mat<f64>, r: usize) -> Vec<f64> {
    let (m, n) = (u.nrows(), v.nrows());
    let mut x = vec![0.0; (m + n) * r];
    for t in 0..r.min(s.len()) {
        let w = s[t].max(0.0).sqrt();
        for i in 0..m {
            x[i * r + t] = u[(i, t)] * w;
        }
        for j in 0..n {
            x[(m + j) * r + t] = v[(j, t)] * w;
        }
    }
    x
}

/// `scale * L R^T`.
fn dense_of(p: &Pattern, st: &State) -> Mat<f64> {
    let r = st.r;
    let (l, rr) = st.x.split_at(p.m * r);
    let lm = Mat::from_fn(p.m, r, |i, t| l[i * r + t] * p.scale);
    let rm = Mat::from_fn(p.n, r, |j, t| rr[j * r + t]);
    mul(lm.as_ref(), rm.as_ref().transpose())
}

impl NuclearMinSolver {
    /// One outer step (see the module docs).
    fn outer(&self, p: &Pattern, st: &mut State, model: &mut DenseModel, state: &mut IterState) -> Result<()> {
        let eps = self.params.eps / p.scale;
        let tol = self.params.tol;
        let max_rank = if self.params.max_rank == 0 { p.m.min(p.n) } else { self.params.max_rank };
        // 0. first step with a box within the tolerance: an interpolant of
        // the starting rank, kept only when certified optimal
        if state.iteration == 0 && eps <= tol && self.certify_interpolant(p, st, model, state)? {
            return Ok(());
        }
        // 1. inner solve
        let mut al = Al::new(p, st.r, &st.y, st.rho, eps);
        let gtol = st.omega * dot(&st.x, &st.x).sqrt().max(1e-300);
        let mut x = st.x.clone();
        let mut gamma = st.gamma;
        // the preconditioned solve starts from the plain scale of its `P`
        let mut pre = if self.params.precondition { inner::Precond::new(p, st.r, &x, st.rho) } else { None };
        if pre.is_some() {
            gamma = 1.0;
        }
        let lim = inner::Limits { max_iter: self.params.inner_iters, memory: self.params.memory, gtol };
        let inner = inner::minimize(inner::Isa::detect(), &mut al, pre.as_mut(), &mut x, lim, &mut gamma);
        let mut g = vec![0.0; x.len()];
        al.eval(&x, &mut g);
        let (xe, y_new) = (std::mem::take(&mut al.xe), std::mem::take(&mut al.ge));
        st.x = x;
        st.gamma = gamma;
        // 2. rebalance, certificate
        let (s, u, v) = Self::rebalance(p, st)?;
        let viol = violation(p, &xe, eps);
        let nuc: f64 = s.iter().sum();
        let top = s.first().copied().unwrap_or(0.0);
        let rec = &mut state.record;
        rec.objective = Some(nuc * p.scale);
        let vals = &mut rec.values;
        vals.insert("nuclear_norm".into(), nuc * p.scale);
        vals.insert("violation".into(), viol * p.scale);
        vals.insert("rho".into(), st.rho);
        vals.insert("inner_iters".into(), inner as f64);
        vals.insert("factor_rank".into(), st.r as f64);
        vals.insert("rank".into(), s.iter().filter(|&&x| x > tol * top && x > 0.0).count() as f64);
        vals.insert("effective_rank".into(), effective_rank(&s));
        let mut converged = false;
        let mut cert_gap = None;
        let mut z: Vec<f64> = y_new.iter().map(|v| -v).collect();
        if viol <= 10.0 * tol {
            let k = s.iter().filter(|&&x| x > tol * top && x > 0.0).count().max(1);
            let (uk, vk) = (u.subcols(0, k).to_owned(), v.subcols(0, k).to_owned());
            let act: Vec<bool> = z.iter().map(|&x| x != 0.0).collect();
            let zr = refine_dual(p, &z, &act, &uk, &vk, 50, 1e-14);
            let c0 = self.certify(p, &xe, &z, &s)?;
            let c1 = self.certify(p, &xe, &zr, &s)?;
            let c = if c1.dual > c0.dual {
                z = zr;
                c1
            } else {
                c0
            };
            vals.insert("dual".into(), c.dual);
            vals.insert("rel_gap".into(), c.rel_gap);
            vals.insert("dual_norm".into(), c.dual_norm);
            converged = viol <= tol && c.rel_gap.abs() <= tol;
            cert_gap = Some(c.rel_gap);
        }
        state.converged = converged;
        model.x = dense_of(p, st);
        if converged {
            st.y = z.iter().map(|v| -v).collect();
            return Ok(());
        }
        // 3. rank growth along the singular pairs of Z with s > 1: exact
        // (dense SVD) once certified, else by subspace iteration outside
        // the factors
        let room = max_rank.saturating_sub(st.r);
        let mut added = 0;
        if room > 0 {
            let (sv, uo, vo, thresh) = match cert_gap {
                Some(gap) => {
                    let d = thin_svd(p.dense(&z).as_ref())?;
                    (d.s, d.u, d.v, 1.0 + tol.max(0.25 * gap.abs()))
                }
                None => {
                    let mut g = rng::stream(st.seed, state.iteration as u64);
                    let (a, b, c) = Self::outside_pairs(p, &z, &u, &v, room.min(4), &mut g)?;
                    (a, b, c, 1.01)
                }
            };
            let mut cols: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
            for t in 0..sv.len().min(room) {
                if sv[t] <= thresh {
                    break;
                }
                // ||P(u v^T)||_F^2
                let mut pn = 0.0;
                for e in 0..p.a.len() {
                    let q = uo[(p.rows[e] as usize, t)] * vo[(p.cols[e] as usize, t)];
                    pn += q * q;
                }
                let step = ((sv[t] - 1.0) / (st.rho * pn.max(1e-300))).min(top.max(1e-12));
                let w = step.sqrt();
                cols.push((uo.col(t).iter().map(|a| a * w).collect(), vo.col(t).iter().map(|a| a * w).collect()));
            }
            added = cols.len();
            if added > 0 {
                let (r, r2) = (st.r, st.r + added);
                let mut x2 = vec![0.0; (p.m + p.n) * r2];
                for row in 0..p.m + p.n {
                    x2[row * r2..][..r].copy_from_slice(&st.x[row * r..][..r]);
                    for (t, (cu, cv)) in cols.iter().enumerate() {
                        x2[row * r2 + r + t] = if row < p.m { cu[row] } else { cv[row - p.m] };
                    }
                }
                st.x = x2;
                st.r = r2;
            }
            vals.insert("outside_norm".into(), sv.first().copied().unwrap_or(0.0));
        }
        vals.insert("added_rank".into(), added as f64);
        // 4. multipliers, penalty, inner tolerance
        st.y = z.iter().map(|v| -v).collect();
        if viol > tol && viol > 0.5 * st.last_violation {
            st.rho = (st.rho * 2.0).min(1e12);
        }
        st.last_violation = viol;
        st.omega = (st.omega * 0.3).max(1e-3 * tol);
        Ok(())
    }
}

/// The `nuclear-min` runner: ratings in, [`DenseModel`] out. Summary: the
/// standard keys (`algo`, `rank` = numerical rank of `X`, `epochs`,
/// `iterations` = outer steps, `train_rmse`, `test_rmse`, `test_mae`,
/// `fit_seconds`, `threads`, `seed`, `termination`, `rel_error` with a
/// ground truth) and the certificate: `nuclear_norm`, `violation`,
/// `rel_gap`, `dual`, `dual_norm` (null when the last step was not yet
/// certified), `effective_rank`, `factor_rank`, `inner_iters` (total L-BFGS
/// iterations). Default 500 outer steps.
fn run_nuclear_min(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: NuclearMin = parse_params("nuclear-min", &req.params, KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    let (m, n) = train.shape();
    crate::error::ensure_fits_in_memory(
        2 * (m as u128) * (n as u128),
        &format!("nuclear-min on a {m} x {n} matrix (dense dual certificate)"),
        "use an algorithm that works on the observed entries only (sgd, als, softimpute-als)",
    )?;
    run_on(req, solver, &train)
}

fn run_on<'a>(mut req: FitRequest<'a>, solver: NuclearMinSolver, train: &'a Ratings) -> Result<FitOutcome> {
    let (test, truth) = eval_sets(&req, train)?;
    let (seed, threads, algo, params, eval_every) =
        (req.seed, req.threads, req.algo.clone(), req.params.clone(), req.eval_every);
    // ratings carry ids: the saved model keeps them (a dense input is positional)
    let with_ids = matches!(req.train, crate::io::Dataset::Ratings(_));
    let mut ex = req.executor(solver, train, 500);
    if test.is_some() || truth.is_some() {
        let (t2, w2) = (test.clone(), truth.clone());
        ex = ex.evaluate(eval_every, move |m: &DenseModel| {
            let mut out = Vec::new();
            if let Some(t) = t2.as_ref() {
                let (r, a) = t.evaluate(m, None);
                out.push(("test_rmse".to_string(), r));
                out.push(("test_mae".to_string(), a));
            }
            if let Some(w) = w2.as_ref() {
                out.push(("rel_error".to_string(), metrics::relative_error(m, w)));
            }
            out
        });
    }
    let fit = ex.run()?;
    let model = fit.model;
    let last = fit.history.last().map(|r| r.values.clone()).unwrap_or_default();
    let get = |k: &str| last.get(k).map_or(Value::Null, |v| json!(v));
    // counts as integers (the records hold every value as f64)
    let count = |k: &str| last.get(k).map_or(Value::Null, |v| json!(*v as u64));
    let mut s = Map::new();
    s.insert("algo".into(), json!(algo));
    s.insert("rank".into(), count("rank"));
    s.insert("epochs".into(), json!(fit.iterations));
    s.insert("iterations".into(), json!(fit.iterations));
    s.insert("train_rmse".into(), json!(metrics::rmse(&model, train)));
    insert_test_summary(&mut s, test.as_deref(), &model, None);
    if let Some(w) = truth.as_ref() {
        s.insert("rel_error".into(), json!(metrics::relative_error(&model, w)));
    }
    for k in ["nuclear_norm", "violation", "rel_gap", "dual", "dual_norm", "effective_rank"] {
        s.insert(k.into(), get(k));
    }
    s.insert("factor_rank".into(), count("factor_rank"));
    let inner: f64 = fit.history.iter().filter_map(|r| r.values.get("inner_iters")).sum();
    s.insert("inner_iters".into(), json!(inner as u64));
    s.insert("n_train".into(), json!(train.len()));
    insert_run_summary(&mut s, fit.seconds, &fit.termination, threads, seed, params);
    let model = if with_ids { model.labelled(train) } else { model };
    Ok(FitOutcome { model: FittedModel::Dense(model), summary: s, history: fit.history, termination: fit.termination })
}

mod inner;
#[cfg(test)]
mod tests;
