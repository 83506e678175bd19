//! `deep-svd`: the SVD-parametrized deep factorization of seed 001,
//! `W = U diag(s_N ⊙ ⋯ ⊙ s_1) Vᵀ`, with `U` (`m x r`) and `V` (`n x r`)
//! kept orthonormal and `N` "sigma layers" `s_k ∈ R^r` (elementwise
//! product `d = s_N ⊙ ⋯ ⊙ s_1`).
//!
//! Depth enters only through the sigma layers: `dL/ds_k = diag(Uᵀ G V) ⊙
//! ∏_{l≠k} s_l`, so a singular value `d_t` moves at a rate proportional to
//! `d_t^{2 - 2/N}` (for balanced layers) — small ones are attenuated and
//! large ones amplified, the same bias towards low rank as the product of
//! full layers (Arora, Cohen, Hazan 2018), at the cost of `O(m r + n r)`
//! parameters for the orthogonal parts instead of `N n²`.
//!
//! # Keeping `U` and `V` orthonormal: a QR retraction
//! Each step gives the optimizer the *Riemannian* gradient of the Stiefel
//! manifold (the Euclidean gradient projected on the tangent space,
//! `G_U − U sym(Uᵀ G_U)`), then maps the updated `U − η ξ` back to the
//! manifold with `qf`, the Q factor of its thin Householder QR with the signs
//! of `diag(R)` made positive (Absil, Mahony, Sepulchre 2008, Example
//! 4.1.3). Why QR rather than the alternatives:
//! - **Cayley** (`(I − η/2 A)⁻¹ (I + η/2 A) U` with a skew `m x m` `A`)
//!   needs an `m x m` solve per step (or a `2r x 2r` one with the
//!   Woodbury form) and still drifts off the manifold by rounding over
//!   10⁴-10⁵ steps unless re-orthonormalized — which is a QR anyway.
//! - **Givens** parametrizations (one angle per pair, `r(2m − r − 1)/2`
//!   angles) are exactly orthogonal but their products and gradients are
//!   long sequential chains of rotations, hard to vectorize or parallelize.
//! - **QR**: `O(m r²)` with faer's blocked Householder QR, orthonormal to
//!   machine precision after *every* step (no drift: the tests check
//!   `||UᵀU − I|| < 1e-10` after many steps), deterministic, and a
//!   first-order retraction, so for small steps it follows the Riemannian
//!   gradient flow. With group RMSprop or SGD (one scalar rate) the update
//!   direction is tangent; with Adam's per-coordinate rates it is not, and
//!   `qf` then acts as a projection back to the manifold.
//!
//! # Preconditioning `U` and `V` (`precondition`, default true)
//! The plain Riemannian gradient rotates the singular vectors at rate `d²`
//! where the full-layer model rotates them at `N d^(2−2/N)`: from a small
//! initialization they never leave their random start (n = 100, rank 5,
//! GD: rel. error 0.90 after 20k steps). Each column `t` of the `U`, `V`
//! gradients is therefore scaled by `N |d_t|^(−2/N)` before the projection
//! (depth >= 2). Measured on the peers' n = 100 problem (2000 entries):
//! rel. error 0.018 (GD lr 3, 20k steps) and 0.019 (group RMSprop lr 1e-3,
//! 60k steps) — the right five singular values, but a sixth one grows
//! slowly from the init; from `init_scale` 1e-7 (GD lr 3) that component
//! stays at 0 and it converges to 2.7e-4 in 53.6k steps (see
//! `bench/RESULTS_deep.md`). With GD keep lr <= 3: the curvature along `U`,
//! `V` is about `N` times that along the sigma layers (lr 10 is unstable).
//!
//! Initialization: `U`, `V` uniformly random orthonormal (sign-fixed QR of
//! Gaussian matrices), every `s_k,t = d₀^(1/N)` with
//! `d₀ = init_scale · sqrt(min(m, n) / r)`, so that `||W||_F =
//! init_scale · sqrt(min(m, n))` exactly, the convention of `deep`.

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::common::{DevEval, OptimizerKind, Target, check_optimizer, put_f64s, put_u64};
use super::kernels::{self, mul_into, to_buf, transpose_into, view};
use super::product::sign_fixed_q;
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::ModelState;
use crate::optim::Optimizer;
use crate::rng::{self, Rng};
use crate::solve::{IterState, Solver};

/// Parameters of `--algo deep-svd` (defaults as `deep`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeepSvd {
    /// Number of sigma layers `N` (3).
    pub depth: usize,
    /// Number of singular triplets `r` (default `min(m, n)`).
    pub rank: Option<usize>,
    /// `||W||_F / sqrt(min(m, n))` at initialization.
    pub init_scale: f64,
    /// Optimizer (group_rmsprop; also sgd, adam).
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Optimizer epsilon (group_rmsprop 1e-4, adam 1e-8).
    pub eps: Option<f64>,
    /// Stop when the training loss is at most this.
    pub train_thres: f64,
    /// Iteration limit when `epochs` is not given.
    pub n_iters: usize,
    /// Dev record every this many iterations (1000).
    pub n_dev_iters: Option<usize>,
    /// Number of top singular values recorded (10).
    pub n_singulars_save: usize,
    /// Matrix sensing with this many Gaussian measurements (0 = completion).
    pub measurements: usize,
    /// Clip test-set predictions to the training range.
    pub clip: bool,
    /// Precondition the gradients of `U` and `V` column by column by
    /// `N |d_t|^(-2/N)` (true; depth >= 2), so that the singular vectors
    /// rotate at the rate of the full-layer model instead of `d²` (see
    /// `bench/RESULTS_deep.md`); false gives the plain Riemannian gradient.
    pub precondition: bool,
}

impl Default for DeepSvd {
    fn default() -> Self {
        let d = super::DeepMf::default();
        DeepSvd {
            depth: d.depth,
            rank: None,
            init_scale: d.init_scale,
            optimizer: d.optimizer,
            lr: d.lr,
            eps: d.eps,
            train_thres: d.train_thres,
            n_iters: d.n_iters,
            n_dev_iters: d.n_dev_iters,
            n_singulars_save: d.n_singulars_save,
            measurements: 0,
            clip: false,
            precondition: true,
        }
    }
}

impl DeepSvd {
    /// Validate the shape-independent settings into a solver.
    pub fn check(self) -> Result<DeepSvdSolver> {
        ensure!(self.depth >= 1, "depth must be >= 1, got {}", self.depth);
        ensure!(self.depth <= 64, "depth must be <= 64, got {}", self.depth);
        ensure!(self.rank != Some(0), "rank must be >= 1");
        ensure!(
            self.init_scale > 0.0 && self.init_scale.is_finite(),
            "init_scale must be > 0, got {}",
            self.init_scale
        );
        ensure!(
            self.train_thres >= 0.0 && self.train_thres.is_finite(),
            "train_thres must be >= 0, got {}",
            self.train_thres
        );
        ensure!(self.n_iters >= 1, "n_iters must be >= 1");
        ensure!(self.n_dev_iters != Some(0), "n_dev_iters must be >= 1");
        check_optimizer(self.optimizer, self.lr, self.eps)?;
        Ok(DeepSvdSolver {
            p: self,
            r: 0,
            target: None,
            opt: None,
            ws: Work::default(),
            eval: DevEval::default(),
            max_iters: 0,
            dev_every: 1,
        })
    }

    /// The number of triplets for an `m x n` matrix.
    pub fn rank_for(&self, m: usize, n: usize) -> Result<usize> {
        let r = self.rank.unwrap_or(m.min(n));
        ensure!(r >= 1 && r <= m.min(n), "rank must be in 1..={} for a {m}x{n} matrix, got {r}", m.min(n));
        Ok(r)
    }
}

/// `U diag(s_N ⊙ ⋯ ⊙ s_1) Vᵀ`.
#[derive(Clone, Debug, PartialEq)]
pub struct SvdModel {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Number of triplets.
    pub r: usize,
    /// `m x r`, orthonormal columns, column-major.
    pub u: Vec<f64>,
    /// `n x r`, orthonormal columns, column-major.
    pub v: Vec<f64>,
    /// The sigma layers, `N` vectors of length `r`.
    pub s: Vec<Vec<f64>>,
}

impl SvdModel {
    /// `d = s_N ⊙ ⋯ ⊙ s_1`, the (signed) singular values.
    pub fn sigma(&self) -> Vec<f64> {
        (0..self.r).map(|t| self.s.iter().map(|s| s[t]).product()).collect()
    }

    /// The end-to-end matrix.
    pub fn end_to_end(&self) -> Mat<f64> {
        let d = self.sigma();
        let mut ud = self.u.clone();
        for (t, col) in ud.chunks_mut(self.m).enumerate() {
            col.iter_mut().for_each(|x| *x *= d[t]);
        }
        let mut e = vec![0.0; self.m * self.n];
        mul_into(&mut e, view(&ud, self.m, self.r), view(&self.v, self.n, self.r).transpose());
        kernels::to_mat(&e, self.m, self.n)
    }

    /// `max |UᵀU − I|` and `max |VᵀV − I|`.
    pub fn orthogonality_error(&self) -> (f64, f64) {
        let err = |a: &[f64], rows: usize| {
            let a = view(a, rows, self.r);
            let g = a.transpose() * a;
            let mut worst = 0.0f64;
            for i in 0..self.r {
                for j in 0..self.r {
                    worst = worst.max((g[(i, j)] - if i == j { 1.0 } else { 0.0 }).abs());
                }
            }
            worst
        };
        (err(&self.u, self.m), err(&self.v, self.n))
    }
}

impl ModelState for SvdModel {
    fn is_finite(&self) -> bool {
        kernels::all_finite(&self.u) && kernels::all_finite(&self.v) && self.s.iter().all(|s| kernels::all_finite(s))
    }
    fn data_dims(&self) -> Vec<usize> {
        vec![self.m, self.n]
    }
    fn sizes(&self) -> Vec<usize> {
        vec![self.r, self.s.len()]
    }
    fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = b"LRDSVD01".to_vec();
        for x in [self.m, self.n, self.r, self.s.len()] {
            put_u64(&mut w, x as u64);
        }
        put_f64s(&mut w, &self.u);
        put_f64s(&mut w, &self.v);
        for s in &self.s {
            put_f64s(&mut w, s);
        }
        Ok(w)
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        ensure!(bytes.len() >= 40 && &bytes[..8] == b"LRDSVD01", "not a deep-svd checkpoint");
        let mut rd = super::common::Bytes { b: bytes, pos: 8 };
        let (m, n, r, depth) = (rd.u64()? as usize, rd.u64()? as usize, rd.u64()? as usize, rd.u64()? as usize);
        let bad = || Error::invalid("bad deep-svd checkpoint header");
        let mr = m.checked_mul(r).ok_or_else(bad)?;
        let nr = n.checked_mul(r).ok_or_else(bad)?;
        ensure!(depth <= 64, "bad deep-svd checkpoint header");
        let u = rd.f64s(mr)?;
        let v = rd.f64s(nr)?;
        let s = (0..depth).map(|_| rd.f64s(r)).collect::<Result<Vec<_>>>()?;
        ensure!(rd.pos == bytes.len(), "trailing bytes after the deep-svd model");
        Ok(SvdModel { m, n, r, u, v, s })
    }
}

#[derive(Clone, Debug, Default)]
struct Work {
    /// `(U diag d)ᵀ` (`r x m`).
    udt: Vec<f64>,
    /// `Vᵀ` (`r x n`).
    vt: Vec<f64>,
    /// `Uᵀ` (`r x m`).
    ut: Vec<f64>,
    /// `(G V)ᵀ` (`r x m`).
    gvt: Vec<f64>,
    /// `Uᵀ G` (`r x n`).
    utg: Vec<f64>,
    /// Euclidean gradients: `U`, `V`, then the sigma layers.
    grads: Vec<Vec<f64>>,
    /// Dense scratch (sensing).
    dense: Vec<f64>,
}

/// The validated `deep-svd` solver.
pub struct DeepSvdSolver {
    p: DeepSvd,
    r: usize,
    target: Option<Target>,
    opt: Option<Optimizer>,
    ws: Work,
    eval: DevEval,
    max_iters: usize,
    dev_every: usize,
}

impl DeepSvdSolver {
    /// Use this target instead of the ratings passed to [`Solver::init`].
    pub fn with_target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }

    /// Evaluate against a truth / test set in the dev records.
    pub fn with_eval(mut self, e: DevEval) -> Self {
        self.eval = e;
        self
    }

    /// The iteration limit the run will use.
    pub fn with_max_iters(mut self, n: usize) -> Self {
        self.max_iters = n;
        self
    }

    /// The settings.
    pub fn params(&self) -> &DeepSvd {
        &self.p
    }

    /// Prepare for `data` (target, buffers, optimizer) without a model.
    pub fn prepare(&mut self, data: &Ratings) -> Result<()> {
        if self.target.is_none() {
            self.target = Some(super::common::make_target(data, None, 0, 0)?);
        }
        let (m, n) = self.target.as_ref().expect("set").shape();
        let r = self.p.rank_for(m, n)?;
        let depth = self.p.depth;
        self.r = r;
        self.ws = Work {
            udt: vec![0.0; r * m],
            vt: vec![0.0; r * n],
            ut: vec![0.0; r * m],
            gvt: vec![0.0; r * m],
            utg: vec![0.0; r * n],
            grads: std::iter::once(m * r)
                .chain(std::iter::once(n * r))
                .chain(std::iter::repeat_n(r, depth))
                .map(|l| vec![0.0; l])
                .collect(),
            dense: if self.target.as_ref().is_some_and(|t| t.needs_dense()) { vec![0.0; m * n] } else { Vec::new() },
        };
        let sizes: Vec<usize> = self.ws.grads.iter().map(|g| g.len()).collect();
        if self.opt.as_ref().is_none_or(|o| o.block_sizes() != sizes) {
            self.opt = Some(self.p.optimizer.build(self.p.lr, self.p.eps, &sizes)?);
        }
        self.dev_every = self.p.n_dev_iters.unwrap_or(1000);
        Ok(())
    }

    /// The initial model for an `m x n` problem.
    pub fn init_model(&self, m: usize, n: usize, rng: &mut Rng) -> Result<SvdModel> {
        let r = self.p.rank_for(m, n)?;
        let gu = Mat::from_fn(m, r, |_, _| rng::normal(rng));
        let gv = Mat::from_fn(n, r, |_, _| rng::normal(rng));
        let u = to_buf(sign_fixed_q(&gu).as_ref());
        let v = to_buf(sign_fixed_q(&gv).as_ref());
        let d0 = self.p.init_scale * (m.min(n) as f64 / r as f64).sqrt();
        let s0 = d0.powf(1.0 / self.p.depth as f64);
        Ok(SvdModel { m, n, r, u, v, s: vec![vec![s0; r]; self.p.depth] })
    }

    /// Loss and Euclidean gradients (into the work buffers).
    fn loss_grad(&mut self, model: &SvdModel) -> f64 {
        let target = self.target.as_mut().expect("prepared");
        let (m, n, r) = (model.m, model.n, model.r);
        let ws = &mut self.ws;
        let d = model.sigma();
        // (U diag d)ᵀ, Vᵀ, Uᵀ
        transpose_into(&mut ws.ut, &model.u, m, r);
        transpose_into(&mut ws.vt, &model.v, n, r);
        for i in 0..m {
            for t in 0..r {
                ws.udt[i * r + t] = ws.ut[i * r + t] * d[t];
            }
        }
        // loss and (G V)ᵀ (E = (U diag d) Vᵀ: first factor U diag d, R_0 = Vᵀ)
        let loss = target.loss_first(&ws.udt, &ws.vt, r, &mut ws.gvt, &mut ws.dense);
        // Uᵀ G
        target.at_g(&ws.ut, r, &mut ws.utg);
        let (gu, rest) = ws.grads.split_first_mut().expect("blocks");
        let (gv, gs) = rest.split_first_mut().expect("blocks");
        // dL/dU = G V diag d (m x r), dL/dV = Gᵀ U diag d (n x r)
        for t in 0..r {
            for i in 0..m {
                gu[t * m + i] = ws.gvt[i * r + t] * d[t];
            }
            for j in 0..n {
                gv[t * n + j] = ws.utg[j * r + t] * d[t];
            }
        }
        // dL/dd_t = (Uᵀ G V)_tt = sum_i U_it (G V)_it
        let dd: Vec<f64> = (0..r).map(|t| (0..m).map(|i| model.u[t * m + i] * ws.gvt[i * r + t]).sum()).collect();
        for (k, g) in gs.iter_mut().enumerate() {
            for t in 0..r {
                let others: f64 = model.s.iter().enumerate().filter(|(l, _)| *l != k).map(|(_, s)| s[t]).product();
                g[t] = dd[t] * others;
            }
        }
        loss
    }

    /// Loss and Euclidean gradients `[dU, dV, ds_1, ..., ds_N]` at `model`
    /// (for tests and finite differences).
    pub fn loss_and_grads(&mut self, model: &SvdModel) -> (f64, Vec<Vec<f64>>) {
        let l = self.loss_grad(model);
        (l, self.ws.grads.clone())
    }
}

/// Riemannian gradient on the Stiefel manifold, in place:
/// `g <- g − X sym(Xᵀ g)` for `X` (`rows x r`, orthonormal columns).
fn project_tangent(x: &[f64], g: &mut [f64], rows: usize, r: usize) {
    let xv = view(x, rows, r);
    let mut xtg = vec![0.0; r * r];
    mul_into(&mut xtg, xv.transpose(), view(g, rows, r));
    let mut sym = vec![0.0; r * r];
    for j in 0..r {
        for i in 0..r {
            sym[j * r + i] = 0.5 * (xtg[j * r + i] + xtg[i * r + j]);
        }
    }
    let mut corr = vec![0.0; rows * r];
    mul_into(&mut corr, xv, view(&sym, r, r));
    g.iter_mut().zip(&corr).for_each(|(g, c)| *g -= c);
}

/// The preconditioner of the orthogonal factors: column `t` of the
/// Euclidean gradient of `U` (`G V diag(d)`, and likewise of `V`) times
/// `N |d_t|^(-2/N)`, i.e. `N sign(d_t) |d_t|^(1 - 2/N) G v_t`.
///
/// Why: for balanced sigma layers the end-to-end matrix of `deep` (full
/// layers) moves as `Ẇ = −U [Σ_j D^(2(j−1)/N) (Uᵀ ∇L V) D^(2(N−j)/N)] Vᵀ`
/// (Arora, Cohen, Hu, Luo 2019): the diagonal (`Ḋ`) at rate
/// `N d_t^(2−2/N)`, which the sigma layers reproduce exactly, and the
/// off-diagonal part (the rotation of the singular vectors) at
/// `N d^(2−2/N)` too when the singular values are equal. Plain Riemannian
/// gradient steps on `U`, `V` rotate at rate `d²` instead: from a small
/// initialization (`d = 1e-5`) that is `d^(2/N)` ≈ 5e-4 times slower at
/// depth 3, so the singular vectors never leave their random start and the
/// fit stalls (measured: one singular value grown after 20k GD steps, rel.
/// error 0.90). With the factor the rotation rate is `N d^(2−2/N)` (equal
/// singular values), the curvature seen by `U`, `V` is of the order of the
/// sigma layers' (`N d^(2−2/N)` instead of `d²`), and one learning rate
/// serves both.
pub(super) fn precondition_columns(g: &mut [f64], rows: usize, d: &[f64], depth: usize) {
    let q = 2.0 / depth as f64;
    for (col, &dt) in g.chunks_mut(rows).zip(d) {
        let a = dt.abs();
        // the column is proportional to d_t: a zero d_t has a zero column
        let c = if a > 0.0 { depth as f64 * a.powf(-q) } else { 0.0 };
        col.iter_mut().for_each(|x| *x *= c);
    }
}

/// The QR retraction `qf`: replace `x` (`rows x r`) by the sign-fixed Q of
/// its thin QR.
fn retract(x: &mut [f64], rows: usize, r: usize) {
    let q = sign_fixed_q(&kernels::to_mat(x, rows, r));
    x.copy_from_slice(&to_buf(q.as_ref()));
}

impl Solver for DeepSvdSolver {
    type Data = Ratings;
    type Model = SvdModel;

    fn name(&self) -> &'static str {
        "deep-svd"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<SvdModel> {
        self.prepare(data)?;
        let (m, n) = self.target.as_ref().expect("prepared").shape();
        self.init_model(m, n, rng)
    }

    fn step(&mut self, _data: &Ratings, model: &mut SvdModel, state: &mut IterState) -> Result<()> {
        ensure!(
            model.r == self.r && model.s.len() == self.p.depth,
            "the model does not match the solver's rank or depth"
        );
        let loss = self.loss_grad(model);
        state.record.objective = Some(loss);
        if state.iteration == 0 {
            // the loss at the start of the first iteration: the starting point's
            state.start_objective = Some(loss);
        }
        let converged = loss <= self.p.train_thres;
        let it = state.iteration;
        let last = self.max_iters > 0 && it + 1 >= self.max_iters;
        let dev = it.is_multiple_of(self.dev_every) || converged || last || !loss.is_finite();
        let (m, n, r) = (model.m, model.n, model.r);
        if !converged && loss.is_finite() {
            {
                let (gu, rest) = self.ws.grads.split_first_mut().expect("blocks");
                let gv = &mut rest[0];
                if self.p.precondition && self.p.depth >= 2 {
                    let d = model.sigma();
                    precondition_columns(gu, m, &d, self.p.depth);
                    precondition_columns(gv, n, &d, self.p.depth);
                }
                project_tangent(&model.u, gu, m, r);
                project_tangent(&model.v, gv, n, r);
            }
            let opt = self.opt.as_mut().expect("prepared");
            let grads: Vec<&[f64]> = self.ws.grads.iter().map(|g| &g[..]).collect();
            let mut params: Vec<&mut [f64]> = vec![&mut model.u[..], &mut model.v[..]];
            params.extend(model.s.iter_mut().map(|s| &mut s[..]));
            opt.step(&mut params, &grads)?;
            if model.is_finite() {
                retract(&mut model.u, m, r);
                retract(&mut model.v, n, r);
            }
        }
        if dev {
            let rec = &mut state.record;
            let sq: f64 = self.ws.grads.iter().map(|g| kernels::sum_sq(g)).sum();
            let count: usize = self.ws.grads.iter().map(|g| g.len()).sum();
            rec.values.insert("train_loss".into(), loss);
            rec.values.insert("grad_norm".into(), sq.sqrt());
            rec.values.insert("grad_rms".into(), (sq / count as f64).sqrt());
            rec.values.insert("lr".into(), self.opt.as_ref().expect("prepared").group_lr());
            if loss.is_finite() && model.is_finite() {
                let (eu, ev) = model.orthogonality_error();
                rec.values.insert("orthogonality_error".into(), eu.max(ev));
                self.eval.record_periodic(&model.end_to_end(), self.p.depth, rec)?;
            }
        }
        state.converged = converged;
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        format!("lower lr (now {:e}) or init_scale (now {:e})", self.p.lr, self.p.init_scale)
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        Ok(self.opt.as_ref().map(|o| o.to_bytes()).unwrap_or_default())
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        if !bytes.is_empty() {
            let o = Optimizer::from_bytes(bytes)?;
            let cur = self.opt.as_ref().ok_or_else(|| Error::invalid("deep-svd: load_state before init"))?;
            self.opt = Some(cur.resumed_from(o)?);
        }
        Ok(())
    }
}
