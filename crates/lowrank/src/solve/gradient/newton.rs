//! `newton`: Newton's method for the masked factorization objective of
//! seed 002, `f(U, V) = sum_Omega (u_i . v_j - x_ij)^2 + reg (||U||^2 +
//! ||V||^2)`, rank 1 (the notebook) or rank `k`.
//!
//! Two ways to get the Newton direction:
//!
//! - **dense** (small problems): the exact `(m + n) k` square Hessian
//!   ([`super::masked::MaskedProblem::dense_hessian`]) made positive definite
//!   by either
//!   - `correction = eig`: the notebook's shift by the smallest eigenvalue,
//!     `H + max(0, delta - lambda_min) I` (then Cholesky), or
//!   - `correction = cholesky`: the modified Cholesky factorization of Gill,
//!     Murray and Wright (1981; Nocedal & Wright, section 3.4), which adds
//!     the smallest diagonal it needs while factoring, `L D L^T = H + E`.
//!
//!   Cost `O(((m + n) k)^3)` per iteration: what made the notebook crawl.
//! - **cg** (real data): line-search Newton-CG (Nocedal & Wright, Algorithm
//!   7.1) with exact Hessian-vector products, `O(|Omega| k)` each, and a
//!   block-Jacobi preconditioner made of the per-row blocks
//!   `2 sum_j v_j v_j^T + 2 reg I` and per-column blocks
//!   `2 sum_i u_i u_i^T + 2 reg I` (the exact diagonal blocks of the
//!   Hessian: for fixed `V` the problem separates by rows, so these blocks
//!   are what ALS inverts). Without regularization the objective is flat
//!   along `(U X, -V X^T)` (the `GL(k)` symmetry `U V^T = (U A)(V A^-T)^T`),
//!   so the Hessian is singular at every minimizer; CG then runs on the
//!   complement of those directions (projected preconditioner `P M^-1 P`),
//!   and `balance` keeps the column norms of `U` and `V` equal between
//!   steps, so the iterates do not drift along the flat valley where the
//!   gradient grows while the objective stands still. CG stops at the
//!   forcing tolerance
//!   `min(forcing, sqrt(|g| / |g_0|)) |g|` (superlinear convergence), or at
//!   negative curvature, where it returns the iterate so far (or the
//!   preconditioned steepest-descent direction on the first CG step).
//!
//! We chose Newton-CG over Gauss-Newton/Levenberg-Marquardt because it keeps
//! the exact Hessian (so the fast local convergence is that of Newton, also
//! on the non-zero-residual MovieLens problem where Gauss-Newton is only
//! linear), needs no dense matrix, and handles the indefinite regions
//! through the negative-curvature test; the per-row structure enters as the
//! preconditioner.
//!
//! The line search works on the exact quartic `f(theta + a p)`
//! ([`super::masked::MaskedProblem::line_poly`]): `exact` takes its global
//! minimizer over `a > 0`, `armijo` backtracks from `a = 1` on it. Neither
//! needs another pass over the data nor suffers from cancellation in
//! `f(theta + a p) - f(theta)`, which is what lets the gradient norm fall by
//! many orders of magnitude.
//!
//! Records: `objective`, `grad_norm` (at the new point), `step`, `cg_iters`,
//! `shift` (the eigenvalue shift or the largest modified-Cholesky addition),
//! `negative_curvature` (1 when CG met it); the first record also has
//! `grad_norm_initial`. Converged when `grad_norm <= gtol * grad_norm_initial`.
//! A line search that finds no decrease ends the run as `stalled`.

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::masked::{MaskedProblem, dot_par, poly_delta, quartic_min, sum_sq};
use super::{Init, pack, to_model, unpack};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::optim::Armijo;
use crate::rng::Rng;
use crate::solve::{IterState, Solver};

/// Iterations when `--epochs` is not given.
pub const DEFAULT_EPOCHS: usize = 100;

/// Settings `newton` understands.
pub const KEYS: &[&str] = &[
    "rank",
    "reg",
    "method",
    "correction",
    "delta",
    "line_search",
    "init",
    "init_scale",
    "center",
    "gtol",
    "max_cg",
    "forcing",
    "dense_max",
    "balance",
];

/// How the Newton direction is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewtonMethod {
    /// `dense` when `(m + n) k <= dense_max`, else `cg`.
    Auto,
    /// Dense Hessian with correction.
    Dense,
    /// Newton-CG with Hessian-vector products.
    Cg,
}

/// Hessian correction of the dense method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// `H + max(0, delta - lambda_min) I` (seed 002).
    Eig,
    /// Gill-Murray-Wright modified Cholesky.
    Cholesky,
}

/// Line search along the Newton direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineSearchKind {
    /// Global minimizer of the exact quartic along the direction.
    Exact,
    /// Armijo backtracking from the full step.
    Armijo,
}

/// Parameters of Newton's method.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Newton {
    /// Rank (1, as seed 002).
    pub rank: usize,
    /// L2 penalty `reg (||U||^2 + ||V||^2)` (0, as seed 002).
    pub reg: f64,
    /// `auto` (default), `dense` or `cg`.
    pub method: NewtonMethod,
    /// Dense correction: `eig` (default, seed 002) or `cholesky`.
    pub correction: Correction,
    /// Smallest eigenvalue after the `eig` shift (seed 002: 1e-6).
    pub delta: f64,
    /// `exact` (default) or `armijo`.
    pub line_search: LineSearchKind,
    /// Initialization: `abs_gaussian` (default; seed 002's first start
    /// `u = |randn|`), `gaussian` (seed 002's `theta0 = randn`), `uniform` or
    /// `blog`. On ratings (all positive) a sign-mixed start can fall into a
    /// valley whose infimum is not attained without regularization: a user
    /// factor shrinks to 0 while the factors of items only that user rated
    /// grow without bound, and the gradient cannot vanish; the positive
    /// start avoids it (see `examples/newton_rank1.rs`).
    pub init: Init,
    /// Scale of the initial entries (1, seed 002).
    pub init_scale: f64,
    /// Fit `X - mean` (false).
    pub center: bool,
    /// Converged when `grad_norm <= gtol * grad_norm_initial` (1e-10).
    pub gtol: f64,
    /// CG iterations per Newton step (500).
    pub max_cg: usize,
    /// Cap of the CG forcing term: CG stops when the residual is below
    /// `min(forcing, sqrt(|g| / |g_0|)) |g|` (0.01).
    pub forcing: f64,
    /// Largest dimension `(m + n) k` that `auto` solves densely (1000).
    pub dense_max: usize,
    /// After every step, rescale each column pair so that
    /// `||U[:, t]|| = ||V[:, t]||` (true). `U V^T` is unchanged, so is the
    /// SSE, and the penalty can only decrease; without it the iterates drift
    /// along the flat direction `(c U, V / c)` of the objective, where the
    /// gradient norm grows like `c` while the objective stands still.
    pub balance: bool,
}

impl Default for Newton {
    fn default() -> Self {
        Newton {
            rank: 1,
            reg: 0.0,
            method: NewtonMethod::Auto,
            correction: Correction::Eig,
            delta: 1e-6,
            line_search: LineSearchKind::Exact,
            init: Init::AbsGaussian,
            init_scale: 1.0,
            center: false,
            gtol: 1e-10,
            max_cg: 500,
            forcing: 0.01,
            dense_max: 1000,
            balance: true,
        }
    }
}

impl Newton {
    /// Validate into a solver.
    pub fn check(self) -> Result<NewtonSolver> {
        ensure!(self.rank >= 1, "the rank must be at least 1");
        ensure!(self.reg >= 0.0 && self.reg.is_finite(), "reg must be >= 0, got {}", self.reg);
        ensure!(self.delta > 0.0 && self.delta.is_finite(), "delta must be > 0, got {}", self.delta);
        ensure!(
            self.init_scale > 0.0 && self.init_scale.is_finite(),
            "init_scale must be > 0, got {}",
            self.init_scale
        );
        ensure!(self.gtol >= 0.0 && self.gtol.is_finite(), "gtol must be >= 0, got {}", self.gtol);
        ensure!(self.max_cg >= 1, "max_cg must be at least 1");
        ensure!(self.forcing > 0.0 && self.forcing < 1.0, "forcing must be in (0, 1), got {}", self.forcing);
        Ok(NewtonSolver { params: self, initial: None, st: None })
    }
}

#[derive(Clone, Debug)]
struct State {
    prob: MaskedProblem,
    theta: Vec<f64>,
    e: Vec<f64>,
    grad: Vec<f64>,
    obj: f64,
    gnorm: f64,
    fresh: bool,
    g0: f64,
    dense: bool,
}

/// The validated Newton solver.
#[derive(Clone, Debug)]
pub struct NewtonSolver {
    params: Newton,
    initial: Option<Vec<f64>>,
    st: Option<State>,
}

/// What one direction computation did.
struct Direction {
    p: Vec<f64>,
    cg_iters: usize,
    shift: f64,
    negative_curvature: bool,
}

impl NewtonSolver {
    /// Start from given factors (`u` is `m x k`, `v` is `n x k`, row-major).
    pub fn with_initial_factors(mut self, u: &[f64], v: &[f64]) -> Self {
        let mut t = u.to_vec();
        t.extend_from_slice(v);
        self.initial = Some(t);
        self
    }

    /// Reject data the settings cannot fit.
    pub fn check_data(&self, data: &Ratings) -> Result<()> {
        let (m, n) = data.shape();
        ensure!(!data.is_empty(), "the training data has no observed entries");
        ensure!(
            self.params.rank <= m.min(n),
            "rank {} is larger than the {m}x{n} matrix allows ({})",
            self.params.rank,
            m.min(n)
        );
        if self.params.method == NewtonMethod::Dense {
            let d = (m + n) * self.params.rank;
            ensure!(d <= 20_000, "method = dense needs a {d}x{d} Hessian; use method = cg for a problem this size");
        }
        Ok(())
    }

    /// The current parameters `[vec(U); vec(V)]` (after `init`).
    pub fn theta(&self) -> Option<&[f64]> {
        self.st.as_ref().map(|s| &s.theta[..])
    }

    fn evaluate(&self, st: &mut State) {
        let p = &st.prob;
        p.residuals(&st.theta, &mut st.e);
        p.sse_grad(&st.theta, &st.e, &mut st.grad);
        let reg = self.params.reg;
        let mut obj = sum_sq(&st.e);
        if reg > 0.0 {
            st.grad.iter_mut().zip(&st.theta).for_each(|(g, &t)| *g += 2.0 * reg * t);
            obj += reg * sum_sq(&st.theta);
        }
        st.obj = obj;
        st.gnorm = sum_sq(&st.grad).sqrt();
        st.fresh = true;
    }

    fn dense_direction(&self, st: &State) -> Result<Direction> {
        let d = st.prob.dim();
        let mut h = st.prob.dense_hessian(&st.theta, &st.e, self.params.reg);
        let rhs = Mat::from_fn(d, 1, |i, _| -st.grad[i]);
        match self.params.correction {
            Correction::Eig => {
                let lam = h
                    .self_adjoint_eigenvalues(Side::Lower)
                    .map_err(|e| Error::Numerical(format!("Hessian eigenvalues: {e:?}")))?;
                let lmin = lam.first().copied().unwrap_or(0.0);
                let mut shift = (self.params.delta - lmin).max(0.0);
                let base = shift;
                for attempt in 0..8 {
                    let extra = if attempt == 0 { shift } else { shift - base };
                    for i in 0..d {
                        h[(i, i)] += extra;
                    }
                    if let Ok(llt) = h.llt(Side::Lower) {
                        let x = llt.solve(&rhs);
                        let p: Vec<f64> = (0..d).map(|i| x[(i, 0)]).collect();
                        if p.iter().all(|v| v.is_finite()) {
                            return Ok(Direction { p, cg_iters: 0, shift, negative_curvature: lmin < 0.0 });
                        }
                    }
                    // rounding left the shifted matrix not quite positive definite
                    for i in 0..d {
                        h[(i, i)] -= extra;
                    }
                    shift = base
                        + self.params.delta.max(1e-12 * lam.last().copied().unwrap_or(1.0).abs()) * 10f64.powi(attempt);
                }
                Err(Error::Numerical("the shifted Hessian is not positive definite".into()))
            }
            Correction::Cholesky => {
                let f = modified_cholesky(&h);
                let p = f.solve(&st.grad.iter().map(|g| -g).collect::<Vec<f64>>());
                Ok(Direction { p, cg_iters: 0, shift: f.max_added, negative_curvature: f.max_added > 0.0 })
            }
        }
    }

    fn cg_direction(&self, st: &State) -> Direction {
        let prob = &st.prob;
        let d = prob.dim();
        let k = prob.k;
        let prec = BlockPrec::new(prob.diag_blocks(&st.theta, self.params.reg), k);
        // without regularization the objective is flat along (U X, -V X^T):
        // CG works on the horizontal complement (preconditioner P M^-1 P)
        let gauge = if self.params.reg == 0.0 { Gauge::new(&st.theta, prob.m, k) } else { None };
        let apply = |r: &[f64], y: &mut [f64]| match &gauge {
            Some(g) => {
                let mut pr = r.to_vec();
                g.project(&mut pr);
                prec.apply(&pr, y);
                g.project(y);
            }
            None => prec.apply(r, y),
        };
        let eta = (st.gnorm / st.g0.max(f64::MIN_POSITIVE)).sqrt().min(self.params.forcing);
        let tol = eta * st.gnorm;
        let mut z = vec![0.0; d];
        let mut r = st.grad.clone();
        let mut y = vec![0.0; d];
        apply(&r, &mut y);
        let mut dir: Vec<f64> = y.iter().map(|v| -v).collect();
        let mut ry = dot_par(&r, &y);
        let mut hd = vec![0.0; d];
        let mut scratch = vec![0.0; prob.nnz()];
        for j in 0..self.params.max_cg {
            prob.hess_vec(&st.theta, &st.e, self.params.reg, &dir, &mut scratch, &mut hd);
            let kappa = dot_par(&dir, &hd);
            if kappa <= 0.0 || !kappa.is_finite() {
                let p = if j == 0 { dir } else { z };
                return Direction { p, cg_iters: j + 1, shift: 0.0, negative_curvature: true };
            }
            let alpha = ry / kappa;
            z.par_iter_mut().zip(dir.par_iter()).with_min_len(4096).for_each(|(z, &d)| *z += alpha * d);
            r.par_iter_mut().zip(hd.par_iter()).with_min_len(4096).for_each(|(r, &h)| *r += alpha * h);
            let rnorm = match &gauge {
                Some(g) => {
                    let mut pr = r.clone();
                    g.project(&mut pr);
                    sum_sq(&pr).sqrt()
                }
                None => sum_sq(&r).sqrt(),
            };
            if rnorm <= tol {
                return Direction { p: z, cg_iters: j + 1, shift: 0.0, negative_curvature: false };
            }
            apply(&r, &mut y);
            let ry_new = dot_par(&r, &y);
            let beta = ry_new / ry;
            ry = ry_new;
            dir.par_iter_mut().zip(y.par_iter()).with_min_len(4096).for_each(|(d, &y)| *d = -y + beta * *d);
        }
        Direction { p: z, cg_iters: self.params.max_cg, shift: 0.0, negative_curvature: false }
    }
}

impl Solver for NewtonSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn name(&self) -> &'static str {
        "newton"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        self.check_data(data)?;
        let k = self.params.rank;
        let offset = if self.params.center { data.mean() } else { 0.0 };
        let prob = MaskedProblem::new(data, k, offset)?;
        let (m, n) = (prob.m, prob.n);
        let theta = match &self.initial {
            Some(t) => {
                ensure!(
                    t.len() == prob.dim(),
                    "initial factors have {} values, a {m}x{n} rank-{k} model needs {}",
                    t.len(),
                    prob.dim()
                );
                t.clone()
            }
            None => self.params.init.draw(m, n, k, self.params.init_scale, rng),
        };
        let dense = match self.params.method {
            NewtonMethod::Dense => true,
            NewtonMethod::Cg => false,
            NewtonMethod::Auto => prob.dim() <= self.params.dense_max,
        };
        let mut model = FactorModel::zeros(m, n, k);
        to_model(&prob, &theta, &mut model);
        let (nnz, dim) = (prob.nnz(), prob.dim());
        self.st = Some(State {
            prob,
            theta,
            e: vec![0.0; nnz],
            grad: vec![0.0; dim],
            obj: 0.0,
            gnorm: 0.0,
            fresh: false,
            g0: f64::NAN,
            dense,
        });
        Ok(model)
    }

    fn step(&mut self, _data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let mut st = self.st.take().ok_or_else(|| Error::invalid("newton: step before init"))?;
        if !st.fresh {
            self.evaluate(&mut st);
        }
        if state.iteration == 0 || !st.g0.is_finite() {
            st.g0 = st.gnorm;
            state.record.values.insert("grad_norm_initial".into(), st.gnorm);
        }
        let rec = &mut state.record;
        if st.gnorm == 0.0 || st.gnorm <= self.params.gtol * st.g0 {
            // already stationary
            rec.objective = Some(st.obj);
            rec.values.insert("grad_norm".into(), st.gnorm);
            rec.values.insert("step".into(), 0.0);
            state.converged = true;
            self.st = Some(st);
            return Ok(());
        }
        let mut dir = if st.dense { self.dense_direction(&st)? } else { self.cg_direction(&st) };
        let (mut b, mut c) = (vec![0.0; st.prob.nnz()], vec![0.0; st.prob.nnz()]);
        let mut poly = st.prob.line_poly(&st.theta, &st.e, self.params.reg, &dir.p, &mut b, &mut c);
        if poly[1].is_nan() || poly[1] >= 0.0 {
            // not a descent direction (rounding in a nearly singular solve):
            // fall back to steepest descent
            dir.p = st.grad.iter().map(|g| -g).collect();
            poly = st.prob.line_poly(&st.theta, &st.e, self.params.reg, &dir.p, &mut b, &mut c);
        }
        let alpha = match self.params.line_search {
            LineSearchKind::Exact => quartic_min(&poly),
            LineSearchKind::Armijo => {
                let r = Armijo::default().search(|a| poly_delta(&poly, a), 0.0, poly[1]);
                r.moved().then_some(r.alpha)
            }
        };
        rec.values.insert("cg_iters".into(), dir.cg_iters as f64);
        rec.values.insert("shift".into(), dir.shift);
        rec.values.insert("negative_curvature".into(), dir.negative_curvature as u8 as f64);
        let Some(alpha) = alpha.filter(|a| poly_delta(&poly, *a) < 0.0) else {
            rec.objective = Some(st.obj);
            rec.values.insert("grad_norm".into(), st.gnorm);
            rec.values.insert("step".into(), 0.0);
            state.stalled = Some(format!(
                "the line search found no decrease along the Newton direction (gradient norm {:.3e}, {:.1e} of the initial); the objective is at the limit of floating-point precision",
                st.gnorm,
                st.gnorm / st.g0
            ));
            self.st = Some(st);
            return Ok(());
        };
        st.theta.par_iter_mut().zip(dir.p.par_iter()).with_min_len(4096).for_each(|(t, &p)| *t += alpha * p);
        if self.params.balance {
            balance(&mut st.theta, st.prob.m, st.prob.k);
        }
        self.evaluate(&mut st);
        rec.objective = Some(st.obj);
        rec.values.insert("grad_norm".into(), st.gnorm);
        rec.values.insert("step".into(), alpha);
        if st.gnorm <= self.params.gtol * st.g0 {
            state.converged = true;
        }
        to_model(&st.prob, &st.theta, model);
        self.st = Some(st);
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        "the factors grew without bound: add a little regularization (reg = 0.01) or start smaller (init_scale = 0.1)"
            .into()
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        let st = self.st.as_ref().ok_or_else(|| Error::invalid("newton: no state to save"))?;
        Ok(pack(&[&st.theta], &[st.g0]))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let st = self.st.as_mut().ok_or_else(|| Error::invalid("newton: load_state before init"))?;
        let bad = || Error::invalid("newton: the checkpoint's solver state is damaged");
        let (parts, sc, _) = unpack(bytes).ok_or_else(bad)?;
        let theta = parts.into_iter().next().ok_or_else(bad)?;
        ensure!(theta.len() == st.theta.len(), "newton: the checkpoint is for a different problem size");
        st.theta = theta;
        st.g0 = *sc.first().ok_or_else(bad)?;
        st.fresh = false;
        Ok(())
    }
}

/// The orthogonal projector onto the horizontal space: the complement of the
/// directions `(U X, -V X^T)` (`X` any `k x k` matrix) along which
/// `U V^T`, hence the unregularized objective, does not change to first
/// order. The projection of `(a, b)` subtracts `(U X, -V X^T)` where `X`
/// solves the Sylvester equation `U^T U X + X V^T V = U^T a - b^T V` (by the
/// eigendecompositions of the two `k x k` Gram matrices).
struct Gauge {
    m: usize,
    k: usize,
    u: Vec<f64>,
    v: Vec<f64>,
    q1: Mat<f64>,
    l1: Vec<f64>,
    q2: Mat<f64>,
    l2: Vec<f64>,
}

impl Gauge {
    fn new(theta: &[f64], m: usize, k: usize) -> Option<Gauge> {
        let (u, v) = theta.split_at(m * k);
        let gram = |a: &[f64]| {
            let mut g = Mat::<f64>::zeros(k, k);
            for row in a.chunks(k) {
                for s in 0..k {
                    for t in 0..k {
                        g[(s, t)] += row[s] * row[t];
                    }
                }
            }
            g
        };
        let e1 = gram(u).self_adjoint_eigen(Side::Lower).ok()?;
        let e2 = gram(v).self_adjoint_eigen(Side::Lower).ok()?;
        let l1: Vec<f64> = (0..k).map(|i| e1.S()[i]).collect();
        let l2: Vec<f64> = (0..k).map(|i| e2.S()[i]).collect();
        Some(Gauge { m, k, u: u.to_vec(), v: v.to_vec(), q1: e1.U().to_owned(), l1, q2: e2.U().to_owned(), l2 })
    }

    fn project(&self, x: &mut [f64]) {
        let k = self.k;
        let (a, b) = x.split_at_mut(self.m * k);
        // C = U^T a - b^T V
        let mut c = Mat::<f64>::zeros(k, k);
        for (ur, ar) in self.u.chunks(k).zip(a.chunks(k)) {
            for s in 0..k {
                for t in 0..k {
                    c[(s, t)] += ur[s] * ar[t];
                }
            }
        }
        for (br, vr) in b.chunks(k).zip(self.v.chunks(k)) {
            for s in 0..k {
                for t in 0..k {
                    c[(s, t)] -= br[s] * vr[t];
                }
            }
        }
        let mut y = self.q1.transpose() * &c * &self.q2;
        for s in 0..k {
            for t in 0..k {
                let d = self.l1[s] + self.l2[t];
                y[(s, t)] = if d > 0.0 { y[(s, t)] / d } else { 0.0 };
            }
        }
        let xm = &self.q1 * &y * self.q2.transpose();
        // a -= U X, b += V X^T
        for (ur, ar) in self.u.chunks(k).zip(a.chunks_mut(k)) {
            for t in 0..k {
                ar[t] -= (0..k).map(|s| ur[s] * xm[(s, t)]).sum::<f64>();
            }
        }
        for (vr, br) in self.v.chunks(k).zip(b.chunks_mut(k)) {
            for s in 0..k {
                br[s] += (0..k).map(|t| vr[t] * xm[(s, t)]).sum::<f64>();
            }
        }
    }
}

/// Rescale column `t` of `U` by `c_t` and of `V` by `1 / c_t` so that both
/// have the same norm (`U V^T` unchanged).
pub fn balance(theta: &mut [f64], m: usize, k: usize) {
    let (u, v) = theta.split_at_mut(m * k);
    for t in 0..k {
        let a: f64 = u.iter().skip(t).step_by(k).map(|x| x * x).sum::<f64>().sqrt();
        let b: f64 = v.iter().skip(t).step_by(k).map(|x| x * x).sum::<f64>().sqrt();
        if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() {
            let c = (b / a).sqrt();
            u.iter_mut().skip(t).step_by(k).for_each(|x| *x *= c);
            v.iter_mut().skip(t).step_by(k).for_each(|x| *x /= c);
        }
    }
}

/// Block-Jacobi preconditioner: Cholesky factors of the `k x k` diagonal
/// blocks (identity for a block that is not positive definite).
struct BlockPrec {
    k: usize,
    /// Cholesky factors `R` (upper triangle, row-major, `A = R^T R`; the
    /// blocks are symmetric), one per block; identity where `ok` is false.
    chol: Vec<f64>,
    ok: Vec<bool>,
}

impl BlockPrec {
    fn new(mut blocks: Vec<f64>, k: usize) -> BlockPrec {
        let kk = k * k;
        let ok: Vec<bool> = blocks
            .par_chunks_mut(kk)
            .with_min_len(64)
            .map(|a| {
                // tiny relative shift guards exactly singular blocks
                let tr: f64 = (0..k).map(|s| a[s * k + s]).sum::<f64>() / k as f64;
                if tr.is_nan() || tr <= 0.0 {
                    return false;
                }
                for s in 0..k {
                    a[s * k + s] += 1e-12 * tr;
                }
                crate::solve::als::linalg::cholesky(a, k)
            })
            .collect();
        BlockPrec { k, chol: blocks, ok }
    }

    fn apply(&self, r: &[f64], out: &mut [f64]) {
        let k = self.k;
        out.par_chunks_mut(k).zip(r.par_chunks(k)).enumerate().with_min_len(64).for_each(|(b, (o, r))| {
            o.copy_from_slice(r);
            if self.ok[b] {
                crate::solve::als::linalg::cholesky_solve(&self.chol[b * k * k..(b + 1) * k * k], k, o);
            }
        });
    }
}

/// The result of [`modified_cholesky`]: `L D L^T = A + E` with `E` diagonal,
/// non-negative.
pub struct ModifiedCholesky {
    /// Unit lower-triangular factor.
    pub l: Mat<f64>,
    /// Positive diagonal.
    pub d: Vec<f64>,
    /// Largest diagonal addition `max E_jj` (0 when `A` was factored as is).
    pub max_added: f64,
}

impl ModifiedCholesky {
    /// Solve `L D L^T x = b`.
    pub fn solve(&self, b: &[f64]) -> Vec<f64> {
        let n = self.d.len();
        let l = &self.l;
        let mut x = b.to_vec();
        for i in 0..n {
            let mut s = x[i];
            for j in 0..i {
                s -= l[(i, j)] * x[j];
            }
            x[i] = s;
        }
        for i in 0..n {
            x[i] /= self.d[i];
        }
        for i in (0..n).rev() {
            let mut s = x[i];
            for j in i + 1..n {
                s -= l[(j, i)] * x[j];
            }
            x[i] = s;
        }
        x
    }
}

/// Gill-Murray-Wright modified Cholesky (Nocedal & Wright, 2nd ed., section
/// 3.4, without pivoting): `d_j = max(|c_jj|, (theta_j / beta)^2, delta)`
/// with `beta^2 = max(gamma, xi / sqrt(n^2 - 1), eps)` (`gamma`, `xi` the
/// largest diagonal and off-diagonal magnitudes) and
/// `delta = eps max(gamma + xi, 1)`. A sufficiently positive definite `A` is
/// factored unchanged; otherwise the result is positive definite with a
/// bounded diagonal addition.
pub fn modified_cholesky(a: &Mat<f64>) -> ModifiedCholesky {
    let n = a.nrows();
    let eps = f64::EPSILON;
    let mut gamma = 0.0f64;
    let mut xi = 0.0f64;
    for j in 0..n {
        gamma = gamma.max(a[(j, j)].abs());
        for i in j + 1..n {
            xi = xi.max(a[(i, j)].abs());
        }
    }
    let nu = ((n * n) as f64 - 1.0).sqrt().max(1.0);
    let beta2 = gamma.max(xi / nu).max(eps);
    let delta = eps * (gamma + xi).max(1.0);
    // c holds the lower triangle being transformed, column by column
    let mut c = Mat::<f64>::zeros(n, n);
    for j in 0..n {
        for i in j..n {
            c[(i, j)] = a[(i, j)];
        }
    }
    let mut l = Mat::<f64>::identity(n, n);
    let mut d = vec![0.0; n];
    let mut max_added = 0.0f64;
    for j in 0..n {
        // c_ij = a_ij - sum_{s<j} d_s l_is l_js, for i >= j
        for s in 0..j {
            let ljs = l[(j, s)] * d[s];
            if ljs == 0.0 {
                continue;
            }
            for i in j..n {
                c[(i, j)] -= ljs * l[(i, s)];
            }
        }
        let cjj = c[(j, j)];
        let theta = (j + 1..n).fold(0.0f64, |m, i| m.max(c[(i, j)].abs()));
        let dj = cjj.abs().max(theta * theta / beta2).max(delta);
        max_added = max_added.max(dj - cjj);
        d[j] = dj;
        for i in j + 1..n {
            l[(i, j)] = c[(i, j)] / dj;
        }
    }
    ModifiedCholesky { l, d, max_added }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth;
    use crate::solve::Executor;

    fn rel_reduction(h: &[crate::observe::Record]) -> f64 {
        h.last().unwrap().get("grad_norm").unwrap() / h[0].get("grad_norm_initial").unwrap()
    }

    #[test]
    fn modified_cholesky_is_exact_on_positive_definite_matrices() {
        let a = faer::mat![[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]];
        let f = modified_cholesky(&a);
        assert_eq!(f.max_added, 0.0);
        let b = [1.0, -2.0, 0.5];
        let x = f.solve(&b);
        let rhs = Mat::from_fn(3, 1, |i, _| b[i]);
        let y = a.llt(Side::Lower).unwrap().solve(&rhs);
        for i in 0..3 {
            assert!((x[i] - y[(i, 0)]).abs() < 1e-14);
        }
    }

    #[test]
    fn modified_cholesky_fixes_indefinite_matrices() {
        // eigenvalues of [[1, 2], [2, 1]] are 3 and -1
        let a = faer::mat![[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, -0.5]];
        let f = modified_cholesky(&a);
        assert!(f.max_added > 0.0 && f.d.iter().all(|&d| d > 0.0));
        // L D L^T - A is diagonal and non-negative
        let n = 3;
        for i in 0..n {
            for j in 0..n {
                let s: f64 = (0..n).map(|t| f.l[(i, t)] * f.d[t] * f.l[(j, t)]).sum();
                let e = s - a[(i, j)];
                if i == j {
                    assert!(e >= -1e-12);
                } else {
                    assert!(e.abs() < 1e-12);
                }
            }
        }
        // so its solution is a descent direction for any gradient
        let g = [0.3, -1.0, 2.0];
        let p = f.solve(&g.map(|x| -x));
        assert!(g.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>() < 0.0);
    }

    #[test]
    fn block_preconditioner_inverts_the_blocks() {
        // two 2x2 blocks
        let blocks = vec![4.0, 1.0, 1.0, 3.0, 2.0, 0.0, 0.0, 5.0];
        let p = BlockPrec::new(blocks.clone(), 2);
        let r = [1.0, 2.0, 3.0, 4.0];
        let mut z = [0.0; 4];
        p.apply(&r, &mut z);
        // A z = r blockwise (up to the 1e-12 relative guard)
        for b in 0..2 {
            for s in 0..2 {
                let az: f64 = (0..2).map(|t| blocks[b * 4 + s * 2 + t] * z[b * 2 + t]).sum();
                assert!((az - r[b * 2 + s]).abs() < 1e-10);
            }
        }
    }

    fn planted(seed: u64) -> synth::PlantedCompletion {
        synth::planted_completion_rect(15, 12, 1, 120, seed).unwrap()
    }

    #[test]
    fn every_variant_converges_quadratically_on_a_planted_rank_one_matrix() {
        // exact rank-1 data: the minimum is 0 and Newton converges to
        // machine precision; each variant must cut the gradient by 1e8
        let pc = planted(1);
        let variants = [
            Newton { method: NewtonMethod::Dense, correction: Correction::Eig, ..Default::default() },
            Newton { method: NewtonMethod::Dense, correction: Correction::Cholesky, ..Default::default() },
            Newton { method: NewtonMethod::Dense, line_search: LineSearchKind::Armijo, ..Default::default() },
            Newton { method: NewtonMethod::Cg, ..Default::default() },
            Newton { method: NewtonMethod::Cg, line_search: LineSearchKind::Armijo, ..Default::default() },
        ];
        for p in variants {
            let fit = Executor::new(p.clone().check().unwrap(), &pc.observed).max_iters(100).seed(2).run().unwrap();
            let red = rel_reduction(&fit.history);
            assert!(red < 1e-8, "{p:?}: reduction {red}, {:?}", fit.termination);
            let rel = crate::metrics::relative_error(&fit.model, &pc.truth);
            assert!(rel < 1e-3, "{p:?}: relative error {rel}");
            // objective never increases
            let obj: Vec<f64> = fit.history.iter().map(|r| r.objective.unwrap()).collect();
            assert!(obj.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-12) + 1e-300));
        }
    }

    #[test]
    fn rank_k_with_noise_and_regularization() {
        // rank 2 with noise and reg: a non-zero-residual problem; Newton-CG
        // and dense Newton reach the same stationary point objective
        let pc = synth::planted_completion_rect(14, 11, 2, 110, 8).unwrap();
        let noisy = pc.observed.map_values(|v| v + 0.01 * (v * 37.0).sin());
        let mk = |method| Newton { rank: 2, reg: 0.01, method, init_scale: 0.5, ..Default::default() };
        let a = Executor::new(mk(NewtonMethod::Cg).check().unwrap(), &noisy).max_iters(200).seed(3).run().unwrap();
        let b = Executor::new(mk(NewtonMethod::Dense).check().unwrap(), &noisy).max_iters(200).seed(3).run().unwrap();
        assert!(rel_reduction(&a.history) < 1e-8, "{:?}", a.termination);
        assert!(rel_reduction(&b.history) < 1e-8, "{:?}", b.termination);
        let (fa, fb) = (a.history.last().unwrap().objective.unwrap(), b.history.last().unwrap().objective.unwrap());
        // both are local minima; from the same start they land on the same one here
        assert!((fa - fb).abs() < 1e-8 * fa.max(1e-12), "{fa} vs {fb}");
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(Newton { rank: 0, ..Default::default() }.check().is_err());
        assert!(Newton { reg: -1.0, ..Default::default() }.check().is_err());
        assert!(Newton { delta: 0.0, ..Default::default() }.check().is_err());
        assert!(Newton { max_cg: 0, ..Default::default() }.check().is_err());
        let s = Newton { rank: 20, ..Default::default() }.check().unwrap();
        assert!(s.check_data(&planted(1).observed).is_err());
    }
}
