//! `deep`: the depth-`N` linear network `W = W_N ⋯ W_1` trained by a
//! first-order method on the observed entries (see the module docs of
//! [`super`] for conventions and defaults).
//!
//! Internally the factors are kept left to right, `W = F_0 F_1 ⋯ F_{N-1}`,
//! with `F_k` of shape `h_k x h_{k+1}` and `h = hidden_sizes`
//! (`h_0 = m` rows, `h_N = n` columns): `F_0 = W_N` is the output layer,
//! `F_{N-1} = W_1` the input layer — the research code's `hidden_sizes`
//! order (`e2e = fc_1.weightᵀ ⋯ fc_N.weightᵀ`).
//!
//! The gradient of `L(E)` with respect to `F_k` is `L_kᵀ G R_kᵀ`, where
//! `G = dL/dE`, `L_k = F_0 ⋯ F_{k-1}` and `R_k = F_{k+1} ⋯ F_{N-1}` (empty
//! products are identities). One step
//! 1. caches the suffixes `R_k` (`N-2` dense products);
//! 2. in one pass over the observed entries computes `E_ij = F_0[i,:] R_0[:,j]`,
//!    the loss, `G`, and `grad_0 = G R_0ᵀ` (sparse: `|Ω| h_1` multiply-adds
//!    each, instead of dense `m n h_1`);
//! 3. `Z_1 = F_0ᵀ G` (sparse), then `Z_k = F_{k-1}ᵀ Z_{k-1} = L_kᵀ G`
//!    (`N-2` dense products, the last of which is `grad_{N-1}`);
//! 4. `grad_k = Z_k R_kᵀ` for the `N-2` middle layers (dense, in parallel
//!    with the last `Z` product).
//!
//! Depth 2 needs no dense product at all, depth 3 three `n³` products per
//! step (autograd through `W_3 W_2 W_1` does six plus the dense scatter).
//! Every gradient is checked against central finite differences in the
//! tests.
//!
//! With two or more threads (matrix completion, small dense products) a step
//! runs on a persistent two-thread [`crate::team::Team`] instead of rayon:
//! four phases (suffix products by column halves; the fused loss by row
//! tasks; `Z` and `grad_{N-1}` per column range of `G`; the middle
//! gradients by column halves, with the gradient-descent update fused in),
//! each split at fixed boundaries (no work stealing): the sparse passes at
//! the single-threaded path's own task boundaries, the dense products by
//! column blocks, which faer's sequential matmul computes exactly as the
//! whole product (faer 0.24; the tests check that 1- and 2-thread runs agree
//! bit for bit, for depths 2-4 and all three optimizers). Group RMSprop
//! and Adam update after the gradient phases (group RMSprop split in halves,
//! Adam on the calling thread).

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::common::{DevEval, OptimizerKind, Target, check_optimizer, put_f64s, put_u64};
use rayon::prelude::*;

use super::kernels::{self, mul_into, mul_into_par, transpose_into, view, view_mut};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::metrics::Predict;
use crate::model::{DenseModel, ModelState};
use crate::optim::Optimizer;
use crate::optim::optimizer::Method;
use crate::rng::{self, Rng};
use crate::solve::{IterState, Solver};
use crate::team::Team;

/// How the layers are initialized before the common rescaling that makes
/// `||W_N ⋯ W_1||_F = init_scale · sqrt(min(m, n))` exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// I.i.d. `N(0, 1/n)` entries (the research code's `gaussian`).
    Gaussian,
    /// I.i.d. uniform entries of the same variance (`uniform`).
    Uniform,
    /// (Semi-)orthogonal layers: the Q factor of a Gaussian matrix with the
    /// signs of `diag(R)` folded in (PyTorch's `orthogonal_`).
    Orthogonal,
    /// Identity layers (ones on the main diagonal of rectangular layers).
    Identity,
}

/// Parameters of `--algo deep` (defaults: the research code, Arora et al.
/// 2019, `main.py` and `configs/opt/grouprmsprop.toml`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeepMf {
    /// Number of layers `N` (3; the research code's flag default is 1 and
    /// its experiments use 1-4).
    pub depth: usize,
    /// Widths `[m, h_1, ..., h_{N-1}, n]` (rows first, as the research
    /// code's `hidden_sizes`); default `[m, n, ..., n]`.
    pub hidden_sizes: Option<Vec<usize>>,
    /// Frobenius norm of the initial end-to-end matrix divided by
    /// `sqrt(min(m, n))` (1e-5; the research code's flag default is 1e-3 and
    /// its sweep 1e-3 ... 1e-6: from 1e-3 the leftover singular values stay
    /// near 0.1-0.2 on the n = 100 problem, a 2e-3 floor on the relative
    /// error, see `bench/RESULTS_deep.md`).
    pub init_scale: f64,
    /// Layer initialization (gaussian).
    pub initialization: Init,
    /// Optimizer (group_rmsprop; also sgd, adam).
    pub optimizer: OptimizerKind,
    /// Learning rate (1e-3, `configs/opt/grouprmsprop.toml`).
    pub lr: f64,
    /// Optimizer epsilon (group_rmsprop 1e-4 as the research code builds it;
    /// adam 1e-8).
    pub eps: Option<f64>,
    /// Stop when the training loss (MSE over the observed entries) is at most
    /// this (1e-8; the research code's 1e-6 stops while the test error is
    /// still ~5x the training RMSE, e.g. 5e-3 on the peers' problem).
    pub train_thres: f64,
    /// Iteration limit when `epochs` is not given (100000; the research code
    /// has 10⁶, reached only by runs that never fit).
    pub n_iters: usize,
    /// Record the dev statistics every this many iterations (1000: the
    /// research code's `max(1, n_iters // 1000)` with its class default
    /// `n_iters = 10⁶`, evaluated once).
    pub n_dev_iters: Option<usize>,
    /// Number of top singular values recorded (10).
    pub n_singulars_save: usize,
    /// Matrix sensing with this many Gaussian measurements of the ground
    /// truth instead of completion from the observed entries (0 = completion).
    pub measurements: usize,
    /// Clip test-set predictions to the training range (false; set it for
    /// star ratings as the peers do).
    pub clip: bool,
}

impl Default for DeepMf {
    fn default() -> Self {
        DeepMf {
            depth: 3,
            hidden_sizes: None,
            init_scale: 1e-5,
            initialization: Init::Gaussian,
            optimizer: OptimizerKind::GroupRmsProp,
            lr: 1e-3,
            eps: None,
            train_thres: 1e-8,
            n_iters: 100_000,
            n_dev_iters: None,
            n_singulars_save: 10,
            measurements: 0,
            clip: false,
        }
    }
}

impl DeepMf {
    /// Validate the shape-independent settings into a solver.
    pub fn check(self) -> Result<DeepMfSolver> {
        ensure!(self.depth >= 1, "depth must be >= 1, got {}", self.depth);
        ensure!(self.depth <= 64, "depth must be <= 64, got {}", self.depth);
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
        if let Some(h) = &self.hidden_sizes {
            ensure!(
                h.len() == self.depth + 1,
                "hidden_sizes must list depth + 1 = {} widths [rows, hidden..., cols], got {} ({h:?})",
                self.depth + 1,
                h.len()
            );
            ensure!(h.iter().all(|&w| w >= 1), "hidden_sizes must be >= 1, got {h:?}");
        }
        Ok(DeepMfSolver {
            p: self,
            dims: Vec::new(),
            target: None,
            opt: None,
            ws: Work::default(),
            eval: DevEval::default(),
            max_iters: 0,
            dev_every: 1,
            team: None,
        })
    }

    /// The widths `[m, h_1, ..., n]` for an `m x n` matrix, checking that
    /// given `hidden_sizes` chain from `m` rows to `n` columns.
    pub fn dims(&self, m: usize, n: usize) -> Result<Vec<usize>> {
        match &self.hidden_sizes {
            Some(h) => {
                ensure!(
                    h.len() == self.depth + 1 && h[0] == m && h[self.depth] == n,
                    "hidden_sizes {h:?} do not chain a {m}x{n} matrix: they must have depth + 1 = {} entries, \
                     start with the {m} rows and end with the {n} columns",
                    self.depth + 1
                );
                Ok(h.clone())
            }
            None => Ok(std::iter::once(m).chain(std::iter::repeat_n(n, self.depth)).collect()),
        }
    }
}

/// The factors of a deep product, `W = F_0 F_1 ⋯ F_{N-1}`, `F_k` of shape
/// `dims[k] x dims[k+1]`. `F_1 ... F_{N-1}` are stored column-major; `F_0`
/// (the output layer, `m x h_1`) is stored **row-major** (i.e. `F_0ᵀ`
/// column-major), the layout its products and its gradient come in, which
/// saves two transposes per step. [`DeepModel::factor`] hides this.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepModel {
    /// Widths `[m, h_1, ..., n]`.
    pub dims: Vec<usize>,
    /// The factors, left (output layer `W_N`) to right (input layer `W_1`).
    pub factors: Vec<Vec<f64>>,
}

impl DeepModel {
    /// Number of layers.
    pub fn depth(&self) -> usize {
        self.factors.len()
    }

    /// Factor `k` (`dims[k] x dims[k+1]`) as a faer matrix.
    pub fn factor(&self, k: usize) -> Mat<f64> {
        if k == 0 {
            view(&self.factors[0], self.dims[1], self.dims[0]).transpose().to_owned()
        } else {
            kernels::to_mat(&self.factors[k], self.dims[k], self.dims[k + 1])
        }
    }

    /// The end-to-end matrix `F_0 ⋯ F_{N-1}` (`m x n`).
    pub fn end_to_end(&self) -> Mat<f64> {
        let (m, h1) = (self.dims[0], self.dims[1]);
        let n = *self.dims.last().expect("dims");
        let f0 = view(&self.factors[0], h1, m).transpose();
        if self.depth() == 1 {
            return f0.to_owned();
        }
        // R_0 = F_1 ⋯ F_{N-1}, then E = F_0 R_0
        let mut acc = self.factors[self.depth() - 1].clone();
        for k in (1..self.depth() - 1).rev() {
            let mut next = vec![0.0; self.dims[k] * n];
            mul_into(
                &mut next,
                view(&self.factors[k], self.dims[k], self.dims[k + 1]),
                view(&acc, self.dims[k + 1], n),
            );
            acc = next;
        }
        let mut e = vec![0.0; m * n];
        mul_into(&mut e, f0, view(&acc, h1, n));
        kernels::to_mat(&e, m, n)
    }

    /// The end-to-end matrix as a [`DenseModel`].
    pub fn to_dense(&self) -> DenseModel {
        DenseModel::new(self.end_to_end())
    }
}

impl ModelState for DeepModel {
    fn is_finite(&self) -> bool {
        self.factors.iter().all(|f| kernels::all_finite(f))
    }
    fn data_dims(&self) -> Vec<usize> {
        vec![self.dims[0], self.dims[self.dims.len() - 1]]
    }
    fn sizes(&self) -> Vec<usize> {
        self.dims[1..self.dims.len() - 1].to_vec()
    }
    fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = b"LRDEEP01".to_vec();
        put_u64(&mut w, self.dims.len() as u64);
        for &d in &self.dims {
            put_u64(&mut w, d as u64);
        }
        for f in &self.factors {
            put_f64s(&mut w, f);
        }
        Ok(w)
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        ensure!(bytes.len() >= 16 && &bytes[..8] == b"LRDEEP01", "not a deep factorization checkpoint");
        let mut r = super::common::Bytes { b: bytes, pos: 8 };
        let nd = r.u64()? as usize;
        ensure!((2..=65).contains(&nd), "bad deep model header");
        let dims: Vec<usize> = (0..nd).map(|_| r.u64().map(|d| d as usize)).collect::<Result<_>>()?;
        let mut factors = Vec::new();
        for k in 0..nd - 1 {
            let len = dims[k].checked_mul(dims[k + 1]).ok_or_else(|| Error::invalid("bad deep model header"))?;
            factors.push(r.f64s(len)?);
        }
        ensure!(r.pos == bytes.len(), "trailing bytes after the deep model");
        Ok(DeepModel { dims, factors })
    }
}

impl Predict for DeepModel {
    fn predict(&self, i: usize, j: usize) -> f64 {
        // row i of F_0 through the chain, then column j (for spot checks;
        // evaluation uses the dense end-to-end matrix)
        let h1 = self.dims[1];
        let mut row: Vec<f64> = self.factors[0][i * h1..(i + 1) * h1].to_vec();
        for k in 1..self.depth() {
            let (r, c) = (self.dims[k], self.dims[k + 1]);
            row = (0..c).map(|t| (0..r).map(|s| row[s] * self.factors[k][t * r + s]).sum()).collect();
        }
        row[j]
    }
    fn shape(&self) -> (usize, usize) {
        (self.dims[0], *self.dims.last().expect("dims"))
    }
    fn to_dense(&self) -> Mat<f64> {
        self.end_to_end()
    }
}

/// Buffers reused by every step.
#[derive(Clone, Debug, Default)]
struct Work {
    /// `r[k] = R_k` (`h_{k+1} x n`) for `k = 0..N-3` (`R_{N-2}` is the
    /// last factor).
    r: Vec<Vec<f64>>,
    /// `z[k] = L_kᵀ G` (`h_k x n`) for `k = 1..N-2` (index 0 unused).
    z: Vec<Vec<f64>>,
    /// Gradients, shaped as the factors.
    grads: Vec<Vec<f64>>,
    /// Dense end-to-end matrix (sensing, depth 1).
    dense: Vec<f64>,
}

/// The validated `deep` solver.
pub struct DeepMfSolver {
    p: DeepMf,
    dims: Vec<usize>,
    target: Option<Target>,
    opt: Option<Optimizer>,
    ws: Work,
    eval: DevEval,
    max_iters: usize,
    dev_every: usize,
    /// The two-thread team of a completion run on a pool of >= 2 threads
    /// whose dense products are small (see [`DeepMfSolver::wants_team`]).
    team: Option<Team>,
}

/// Dense products of at least this many multiply-adds run on the rayon pool
/// (the path without a team); below it the two-thread team splits every
/// phase of a step (a 100 x 100 x 100 product takes ~20-40 µs, where a
/// rayon wake-up costs as much as it saves).
const TEAM_MAX_WORK: f64 = 2.0e7;

impl DeepMfSolver {
    /// The settings.
    pub fn params(&self) -> &DeepMf {
        &self.p
    }

    /// Use this target (observed entries or measurements) instead of the
    /// ratings passed to [`Solver::init`].
    pub fn with_target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }

    /// Evaluate against a truth / test set in the dev records.
    pub fn with_eval(mut self, e: DevEval) -> Self {
        self.eval = e;
        self
    }

    /// The iteration limit the run will use (for the default `n_dev_iters`
    /// and a final dev record).
    pub fn with_max_iters(mut self, n: usize) -> Self {
        self.max_iters = n;
        self
    }

    /// The initial factors for an `m x n` problem (deterministic in `rng`).
    pub fn init_model(&self, m: usize, n: usize, rng: &mut Rng) -> Result<DeepModel> {
        let dims = self.p.dims(m, n)?;
        let depth = self.p.depth;
        // the research code's per-entry standard deviation before scaling
        let sd = 1.0 / (n as f64).sqrt();
        let mut factors = Vec::with_capacity(depth);
        for k in 0..depth {
            let (r, c) = (dims[k], dims[k + 1]);
            let f = match self.p.initialization {
                Init::Gaussian => (0..r * c).map(|_| rng::normal(rng) * sd).collect(),
                Init::Uniform => (0..r * c).map(|_| (2.0 * rng::uniform(rng) - 1.0) * 3f64.sqrt() * sd).collect(),
                Init::Identity => {
                    let mut f = vec![0.0; r * c];
                    for t in 0..r.min(c) {
                        f[t * r + t] = 1.0;
                    }
                    f
                }
                Init::Orthogonal => orthogonal(r, c, rng),
            };
            if k == 0 {
                // the output layer is stored row-major
                let mut t = vec![0.0; r * c];
                transpose_into(&mut t, &f, r, c);
                factors.push(t);
            } else {
                factors.push(f);
            }
        }
        let mut model = DeepModel { dims, factors };
        let norm = model.end_to_end().norm_l2();
        ensure!(norm > 0.0 && norm.is_finite(), "the initial product is zero; use another initialization");
        let target = self.p.init_scale * (m.min(n) as f64).sqrt();
        let c = (target / norm).powf(1.0 / depth as f64);
        for f in model.factors.iter_mut() {
            f.iter_mut().for_each(|x| *x *= c);
        }
        Ok(model)
    }

    /// Training loss and gradients (into `grads`) of the model; `dense`
    /// asks for the end-to-end matrix to be formed as well (returned).
    fn loss_grad(&mut self, model: &DeepModel) -> f64 {
        let target = self.target.as_mut().expect("init ran");
        let dims = &self.dims;
        let f = &model.factors;
        let depth = f.len();
        let (m, n) = (dims[0], dims[depth]);
        let ws = &mut self.ws;
        if depth == 1 {
            // E = F_0 (stored row-major): work on the column-major copy
            transpose_into(&mut ws.dense, &f[0], n, m);
            let loss = target.loss_direct(&ws.dense);
            target.grad_dense(&mut ws.dense);
            transpose_into(&mut ws.grads[0], &ws.dense, m, n);
            return loss;
        }
        // suffixes R_k = F_{k+1} ⋯ F_{N-1} (R_{N-2} = F_{N-1} itself)
        let r = &mut ws.r;
        for k in (0..depth - 2).rev() {
            let (cur, next) = r.split_at_mut(k + 1);
            let rn: &[f64] = if k + 1 == depth - 2 { &f[depth - 1] } else { &next[0] };
            mul_into_par(&mut cur[k], view(&f[k + 1], dims[k + 1], dims[k + 2]), view(rn, dims[k + 2], n));
        }
        let rs: Vec<&[f64]> =
            (0..depth - 1).map(|k| if k == depth - 2 { &f[depth - 1][..] } else { &ws.r[k][..] }).collect();
        let (g_first, rest) = ws.grads.split_first_mut().expect("depth >= 2");
        // loss and grad_0 = G R_0ᵀ (row-major like factor 0) in one pass
        let loss = target.loss_first(&f[0], rs[0], dims[1], g_first, &mut ws.dense);
        if depth == 2 {
            // grad_1 = F_0ᵀ G
            target.at_g(&f[0], dims[1], &mut rest[0]);
            return loss;
        }
        // Z_1 = F_0ᵀ G (sparse), Z_k = F_{k-1}ᵀ Z_{k-1} = L_kᵀ G (h_k x n)
        let z = &mut ws.z;
        target.at_g(&f[0], dims[1], &mut z[1]);
        for k in 2..depth - 1 {
            let (prev, cur) = z.split_at_mut(k);
            mul_into(
                &mut cur[0],
                view(&f[k - 1], dims[k - 1], dims[k]).transpose(),
                view(&prev[k - 1], dims[k - 1], n),
            );
        }
        // grad_{N-1} = Z_{N-1} = F_{N-2}ᵀ Z_{N-2}; grad_k = Z_k R_kᵀ for the
        // middle layers: independent products, run in parallel
        let z = &ws.z;
        let (g_mid, g_last) = rest.split_at_mut(depth - 2);
        rayon::join(
            || {
                mul_into(
                    &mut g_last[0],
                    view(&f[depth - 2], dims[depth - 2], dims[depth - 1]).transpose(),
                    view(&z[depth - 2], dims[depth - 2], n),
                )
            },
            || {
                g_mid.par_iter_mut().enumerate().for_each(|(t, g)| {
                    let k = t + 1;
                    mul_into(g, view(&z[k], dims[k], n), view(rs[k], dims[k + 1], n).transpose());
                })
            },
        );
        loss
    }

    /// [`DeepMfSolver::loss_grad`] on the two-thread team (completion, depth
    /// at least 2), every phase split between the threads at fixed
    /// boundaries (each output column computed exactly as on one thread):
    /// 1. the suffixes `R_k` by column halves;
    /// 2. the loss and `grad_0` by the single-threaded path's row tasks;
    /// 3. per column range of `G` (split at half the entries): `Z_1 = F_0ᵀ G`,
    ///    `Z_k = F_{k-1}ᵀ Z_{k-1}` and `grad_{N-1} = F_{N-2}ᵀ Z_{N-2}`, all
    ///    column-local, so one phase;
    /// 4. the middle gradients `grad_k = Z_k R_kᵀ` by column halves, and,
    ///    when `sgd_rate` is given and the loss is above `train_thres`, the
    ///    gradient step of every factor (`F_0` by flat halves, `F_k` by the
    ///    column halves just computed, `F_{N-1}` by row halves — each thread
    ///    writes only rows of `F_{N-1}` that it alone reads in this phase).
    ///
    /// With `norms` (group RMSprop), phase 4 also sums the squares of the
    /// whole `grad_0` and `grad_{N-1}`, one on each thread.
    fn loss_grad_team(&mut self, model: &mut DeepModel, sgd_rate: Option<f64>, norms: bool) -> TeamStep {
        let thres = self.p.train_thres;
        let team = self.team.as_ref().expect("wants_team"); // ok: only called when the team exists
        // ok: the team is only started for matrix completion (`prepare`)
        let Some(Target::Completion(obs)) = self.target.as_mut() else { unreachable!("the team runs completion only") };
        let dims = &self.dims;
        let depth = model.factors.len();
        let n = dims[depth];
        let ws = &mut self.ws;
        // 1. suffixes R_k = F_{k+1} ⋯ F_{N-1} (R_{N-2} = F_{N-1} itself)
        {
            let f = &model.factors;
            let r = &mut ws.r;
            for k in (0..depth - 2).rev() {
                let (cur, next) = r.split_at_mut(k + 1);
                let rn: &[f64] = if k + 1 == depth - 2 { &f[depth - 1] } else { &next[0] };
                mul_cols_team(team, &mut cur[k], view(&f[k + 1], dims[k + 1], dims[k + 2]), view(rn, dims[k + 2], n));
            }
        }
        // 2. loss and grad_0 = G R_0ᵀ (row-major like factor 0)
        let loss = {
            let f = &model.factors;
            let r0: &[f64] = if depth == 2 { &f[1] } else { &ws.r[0] };
            obs.loss_first_team(&f[0], r0, dims[1], &mut ws.grads[0], team)
        };
        if depth == 2 {
            obs.at_g_team(&model.factors[0], dims[1], &mut ws.grads[1], team);
            return TeamStep { loss, applied: false, finite: true, first_last_sq: None };
        }
        let converged = loss <= thres;
        let rate = sgd_rate.filter(|_| !converged);
        // 3. column ranges [0, s) here and [s, n) on the helper
        let s = obs.at_g_split();
        {
            let f = &model.factors;
            let (mut za, mut zb): (Vec<&mut [f64]>, Vec<&mut [f64]>) = (Vec::new(), Vec::new());
            for (k, z) in ws.z.iter_mut().enumerate().skip(1) {
                let (a, b) = z.split_at_mut(s * dims[k]);
                za.push(a);
                zb.push(b);
            }
            let (ga, gb) = ws.grads[depth - 1].split_at_mut(s * dims[depth - 1]);
            let obs = &*obs;
            let side = |j0: usize, j1: usize, mut zs: Vec<&mut [f64]>, g: &mut [f64]| {
                let w = j1 - j0;
                obs.at_g_cols(&f[0], dims[1], zs[0], j0, j1);
                for k in 2..depth - 1 {
                    let (prev, cur) = zs.split_at_mut(k - 1);
                    mul_seq(
                        view_mut(cur[0], dims[k], w),
                        view(&f[k - 1], dims[k - 1], dims[k]).transpose(),
                        view(prev[k - 2], dims[k - 1], w),
                    );
                }
                mul_seq(
                    view_mut(g, dims[depth - 1], w),
                    view(&f[depth - 2], dims[depth - 2], dims[depth - 1]).transpose(),
                    view(zs[depth - 3], dims[depth - 2], w),
                );
            };
            team.join(|| side(0, s, za, ga), || side(s, n, zb, gb));
        }
        // 4. middle gradients by column halves (+ the fused SGD step)
        let (z, r) = (&ws.z, &ws.r);
        let (g0, grest) = ws.grads.split_first_mut().expect("depth >= 2"); // ok: one gradient per layer, depth >= 2 here
        let (g_mid, g_last) = grest.split_at_mut(depth - 2);
        let g_last: &[f64] = &g_last[0];
        let (f0, frest) = model.factors.split_first_mut().expect("depth >= 2"); // ok: one factor per layer
        let (f_mid, f_last) = frest.split_at_mut(depth - 2);
        let hl = dims[depth - 1];
        let cl = hl / 2;
        let (fla, flb) = view_mut(&mut f_last[0], hl, n).split_at_row_mut(cl);
        let mut sides: [Side<'_>; 2] = [Side::new(fla, 0), Side::new(flb, cl)];
        let half0 = f0.len() / 2;
        let (f0a, f0b) = f0.split_at_mut(half0);
        let (g0a, g0b) = g0.split_at(half0);
        sides[0].flat = Some((f0a, g0a));
        sides[1].flat = Some((f0b, g0b));
        for (t, (g, fk)) in g_mid.iter_mut().zip(f_mid.iter_mut()).enumerate() {
            let k = t + 1;
            let (h, w) = (dims[k], dims[k + 1]);
            let c = w / 2;
            let (ga, gb) = g.split_at_mut(c * h);
            let (fa, fb) = fk.split_at_mut(c * h);
            sides[0].mid.push((k, 0, ga, fa));
            sides[1].mid.push((k, c, gb, fb));
        }
        if norms {
            // group RMSprop's norm: the whole first and last gradients, one
            // on each side (each summed exactly as `sum_sq` on one thread)
            sides[0].norm_of = Some(&g0[..]);
            sides[1].norm_of = Some(g_last);
        }
        let [sa, sb] = sides;
        let side = |sd: Side<'_>| {
            let Side { mut last, last_row0, mid, flat, norm_of } = sd;
            let mut finite = true;
            for (k, c0, g, fk) in mid {
                let (h, w) = (dims[k], g.len() / dims[k]);
                // rows c0..c0 + w of R_k (for the last middle layer R_k is
                // F_{N-1}: this side's rows of it)
                let rk = if k == depth - 2 { last.as_ref() } else { view(&r[k], dims[k + 1], n).subrows(c0, w) };
                mul_seq(view_mut(g, h, w), view(&z[k], h, n), rk.transpose());
                if let Some(rate) = rate {
                    finite &= sub_scaled(fk, g, rate);
                }
            }
            if let Some(rate) = rate {
                if let Some((f, g)) = flat {
                    finite &= sub_scaled(f, g, rate);
                }
                // F_{N-1}[rows, :] -= rate grad_{N-1}[rows, :]
                let rows = last.nrows();
                for j in 0..n {
                    // ok: a column of an owned faer matrix is contiguous
                    let col = last.as_mut().col_mut(j).try_as_col_major_mut().expect("column-major").as_slice_mut();
                    finite &= sub_scaled(col, &g_last[j * hl + last_row0..j * hl + last_row0 + rows], rate);
                }
            }
            // sequential: the helper thread is not in the rayon pool
            SideOut { finite, sq: norm_of.map_or(0.0, crate::optim::optimizer::sum_sq_seq) }
        };
        let mut out_b = SideOut { finite: true, sq: 0.0 };
        let out_a = team.join(|| side(sa), || out_b = side(sb));
        TeamStep {
            loss,
            applied: rate.is_some(),
            finite: out_a.finite & out_b.finite,
            first_last_sq: norms.then_some((out_a.sq, out_b.sq)),
        }
    }

    /// Loss and flat gradients at `model` (for tests and finite differences).
    pub fn loss_and_grads(&mut self, model: &DeepModel) -> (f64, Vec<Vec<f64>>) {
        let l = if self.team.is_some() {
            self.loss_grad_team(&mut model.clone(), None, false).loss
        } else {
            self.loss_grad(model)
        };
        (l, self.ws.grads.clone())
    }

    fn setup(&mut self, dims: Vec<usize>) -> Result<()> {
        let depth = dims.len() - 1;
        let (m, n) = (dims[0], dims[depth]);
        self.ws = Work {
            r: (0..depth.saturating_sub(2)).map(|k| vec![0.0; dims[k + 1] * n]).collect(),
            z: (0..depth.saturating_sub(1)).map(|k| if k == 0 { Vec::new() } else { vec![0.0; dims[k] * n] }).collect(),
            grads: (0..depth).map(|k| vec![0.0; dims[k] * dims[k + 1]]).collect(),
            dense: if depth == 1 || self.target.as_ref().is_some_and(|t| t.needs_dense()) {
                vec![0.0; m * n]
            } else {
                Vec::new()
            },
        };
        let sizes: Vec<usize> = (0..depth).map(|k| dims[k] * dims[k + 1]).collect();
        if self.opt.as_ref().is_none_or(|o| o.block_sizes() != sizes) {
            self.opt = Some(self.p.optimizer.build(self.p.lr, self.p.eps, &sizes)?);
        }
        self.dims = dims;
        self.dev_every = self.p.n_dev_iters.unwrap_or(1000);
        if !self.wants_team() {
            self.team = None;
        } else if self.team.is_none() {
            self.team = Some(Team::new()?);
        }
        Ok(())
    }

    /// Whether the steps run on the two-thread [`Team`] (decided when the
    /// solver is prepared, see `wants_team`).
    pub fn uses_team(&self) -> bool {
        self.team.is_some()
    }

    /// Whether a step runs on the two-thread [`Team`]: matrix completion at
    /// depth >= 2, the current rayon pool has >= 2 threads, and every dense
    /// product of a step is below [`TEAM_MAX_WORK`]. Decided by the thread
    /// count and the shapes only, so a run is reproducible for a given
    /// thread count (and, since every phase splits at the single-threaded
    /// path's own task boundaries, bitwise equal to the one-thread run).
    fn wants_team(&self) -> bool {
        let d = &self.dims;
        let n = d.last().copied().unwrap_or(0) as f64;
        d.len() >= 3
            && rayon::current_num_threads() >= 2
            && matches!(self.target, Some(Target::Completion(_)))
            && d.windows(2).all(|w| (w[0] as f64) * (w[1] as f64) * n < TEAM_MAX_WORK)
    }

    /// Prepare for `data` (target, buffers, optimizer) without a model.
    pub fn prepare(&mut self, data: &Ratings) -> Result<()> {
        if self.target.is_none() {
            self.target = Some(super::common::make_target(data, None, 0, 0)?);
        }
        let (m, n) = self.target.as_ref().expect("set").shape();
        let dims = self.p.dims(m, n)?;
        self.setup(dims)
    }
}

/// What a team step reports.
struct TeamStep {
    /// The training loss.
    loss: f64,
    /// Whether the fused gradient-descent update was applied.
    applied: bool,
    /// Whether every parameter the fused update changed is finite.
    finite: bool,
    /// `(sum_sq(grad_0), sum_sq(grad_{N-1}))` when asked for.
    first_last_sq: Option<(f64, f64)>,
}

/// One thread's share of the last phase of a team step.
struct Side<'a> {
    /// Its rows of the last factor `F_{N-1}` ...
    last: faer::MatMut<'a, f64>,
    /// ... starting at this row.
    last_row0: usize,
    /// `(k, first column, grad_k columns, F_k columns)` of the middle layers.
    mid: Vec<(usize, usize, &'a mut [f64], &'a mut [f64])>,
    /// Its part of the first factor and of its gradient (flat).
    flat: Option<(&'a mut [f64], &'a [f64])>,
    /// A whole gradient whose sum of squares this side computes (group
    /// RMSprop's norm: `grad_0` on one side, `grad_{N-1}` on the other).
    norm_of: Option<&'a [f64]>,
}

impl<'a> Side<'a> {
    fn new(last: faer::MatMut<'a, f64>, last_row0: usize) -> Self {
        Side { last, last_row0, mid: Vec::new(), flat: None, norm_of: None }
    }
}

/// What one side of the last phase reports: whether every parameter it
/// updated is finite, and the sum of squares of its `norm_of` gradient.
#[derive(Clone, Copy)]
struct SideOut {
    finite: bool,
    sq: f64,
}

/// `dst = a * b` on the calling thread.
fn mul_seq(dst: faer::MatMut<'_, f64>, a: faer::MatRef<'_, f64>, b: faer::MatRef<'_, f64>) {
    faer::linalg::matmul::matmul(dst, faer::Accum::Replace, a, b, 1.0, faer::Par::Seq);
}

/// `p -= rate * g` elementwise (the optimizer's SGD / group RMSprop update,
/// the same arithmetic); returns whether every updated value is finite
/// (`x * 0` summed in 8 lanes: 0 unless some `x` is NaN or infinite), so the
/// executor need not pass over the model again.
fn sub_scaled(p: &mut [f64], g: &[f64], rate: f64) -> bool {
    let mut acc = [0.0f64; 8];
    let mut pc = p.chunks_exact_mut(8);
    let mut gc = g.chunks_exact(8);
    for (pv, gv) in (&mut pc).zip(&mut gc) {
        for t in 0..8 {
            pv[t] -= rate * gv[t];
            acc[t] += pv[t] * 0.0;
        }
    }
    let mut finite = acc.iter().all(|a| *a == 0.0);
    for (x, &y) in pc.into_remainder().iter_mut().zip(gc.remainder()) {
        *x -= rate * y;
        finite &= x.is_finite();
    }
    finite
}

/// `dst = a * b` on the team: the left half of the columns on the calling
/// thread, the right half on the helper, each single-threaded.
fn mul_cols_team(team: &Team, dst: &mut [f64], a: faer::MatRef<'_, f64>, b: faer::MatRef<'_, f64>) {
    let (m, n) = (a.nrows(), b.ncols());
    let c = n / 2;
    let (d0, d1) = dst.split_at_mut(m * c);
    let half = |d: &mut [f64], j0: usize, w: usize| mul_seq(view_mut(d, m, w), a, b.subcols(j0, w));
    team.join(|| half(d0, 0, c), || half(d1, c, n - c));
}

/// `params[b] -= rate * grads[b]` for every block, the flat parameter vector
/// split in halves between the team's threads (elementwise: the same values
/// as one thread); returns whether every updated parameter is finite.
fn update_team(team: &Team, params: &mut [Vec<f64>], grads: &[Vec<f64>], rate: f64) -> bool {
    let total: usize = params.iter().map(|p| p.len()).sum();
    let half = total / 2;
    let (mut a, mut b): (Vec<(&mut [f64], &[f64])>, Vec<(&mut [f64], &[f64])>) = (Vec::new(), Vec::new());
    let mut pos = 0;
    for (p, g) in params.iter_mut().zip(grads) {
        let len = p.len();
        let cut = half.saturating_sub(pos).min(len);
        let (p0, p1) = p.split_at_mut(cut);
        let (g0, g1) = g.split_at(cut);
        if !p0.is_empty() {
            a.push((p0, g0));
        }
        if !p1.is_empty() {
            b.push((p1, g1));
        }
        pos += len;
    }
    let apply = |v: Vec<(&mut [f64], &[f64])>| v.into_iter().fold(true, |ok, (p, g)| sub_scaled(p, g, rate) & ok);
    let mut ok_b = true;
    let ok_a = team.join(|| apply(a), || ok_b = apply(b));
    ok_a & ok_b
}

/// A `r x c` matrix with orthonormal columns (`r >= c`) or rows, the Q of a
/// Householder QR of a Gaussian matrix with the signs of `diag(R)` folded in
/// (uniform on the Stiefel manifold; PyTorch's `orthogonal_`).
pub(crate) fn orthogonal(r: usize, c: usize, rng: &mut Rng) -> Vec<f64> {
    let (tall_r, tall_c) = (r.max(c), r.min(c));
    let g = Mat::from_fn(tall_r, tall_c, |_, _| rng::normal(rng));
    let q = sign_fixed_q(&g);
    if r >= c { kernels::to_buf(q.as_ref()) } else { kernels::to_buf(q.transpose()) }
}

/// Thin Q of `a` with `diag(R) >= 0` (the QR retraction's `qf`).
pub(crate) fn sign_fixed_q(a: &Mat<f64>) -> Mat<f64> {
    let qr = a.qr();
    let mut q = qr.compute_thin_Q();
    let rr = qr.thin_R();
    for j in 0..q.ncols() {
        if rr[(j, j)] < 0.0 {
            for i in 0..q.nrows() {
                q[(i, j)] = -q[(i, j)];
            }
        }
    }
    q
}

impl Solver for DeepMfSolver {
    type Data = Ratings;
    type Model = DeepModel;

    fn name(&self) -> &'static str {
        "deep"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<DeepModel> {
        self.prepare(data)?;
        let (m, n) = (self.dims[0], self.dims[self.p.depth]);
        self.init_model(m, n, rng)
    }

    fn step(&mut self, _data: &Ratings, model: &mut DeepModel, state: &mut IterState) -> Result<()> {
        ensure!(
            model.dims == self.dims,
            "the model's widths {:?} do not match the solver's {:?}",
            model.dims,
            self.dims
        );
        // on the team, plain gradient descent is fused into the last phase;
        // the rate is the optimizer's in use (after a resume, the settings'
        // rate with the checkpoint's state, as on one thread)
        let method = self.opt.as_ref().map(|o| o.method());
        let sgd_rate = self.opt.as_ref().and_then(|o| matches!(o.method(), Method::Sgd).then(|| o.lr()));
        let grms = matches!(method, Some(Method::GroupRmsProp { .. }));
        let (loss, fused, first_last_sq) = if self.team.is_some() {
            let r = self.loss_grad_team(model, sgd_rate, grms);
            if r.applied {
                state.model_finite = Some(r.finite);
            }
            (r.loss, r.applied, r.first_last_sq)
        } else {
            (self.loss_grad(model), false, None)
        };
        state.record.objective = Some(loss);
        if state.iteration == 0 {
            // the loss at the start of the first iteration: the starting point's
            state.start_objective = Some(loss);
        }
        let converged = loss <= self.p.train_thres;
        let it = state.iteration;
        let last = self.max_iters > 0 && it + 1 >= self.max_iters;
        let dev = it.is_multiple_of(self.dev_every) || converged || last || !loss.is_finite();
        if !converged {
            let opt = self.opt.as_mut().expect("prepared");
            if fused {
                // the step's bookkeeping (the update itself is done)
                let rate = opt.begin_uniform_step(|| 0.0);
                debug_assert_eq!(rate, sgd_rate);
            } else {
                let grads = &self.ws.grads;
                let total: usize = grads.iter().map(|g| g.len()).sum();
                // plain GD and group RMSprop update `p -= rate g` themselves,
                // checking finiteness as they go: on the team, or on one
                // thread (or a model too small to split); otherwise the
                // optimizer's parallel update and the executor's check
                let uniform = matches!(opt.method(), Method::Sgd | Method::GroupRmsProp { .. });
                let serial = rayon::current_num_threads() == 1 || total < 1 << 16;
                if uniform && (self.team.is_some() || serial) {
                    // the gradients' sum of squares in `Optimizer::step`'s
                    // order (on the team the first and last come from phase 4)
                    let sq_all = || {
                        let each = grads.iter().enumerate().map(|(k, g)| match first_last_sq {
                            Some((first, _)) if k == 0 => first,
                            Some((_, last)) if k + 1 == grads.len() => last,
                            _ => kernels::sum_sq(g),
                        });
                        each.sum()
                    };
                    let rate = opt.begin_uniform_step(sq_all).expect("a uniform method"); // ok: checked just above
                    let finite = match &self.team {
                        Some(team) => update_team(team, &mut model.factors, grads, rate),
                        None => {
                            model.factors.iter_mut().zip(grads).fold(true, |ok, (p, g)| sub_scaled(p, g, rate) & ok)
                        }
                    };
                    state.model_finite = Some(finite);
                } else {
                    let grads: Vec<&[f64]> = grads.iter().map(|g| &g[..]).collect();
                    let mut params: Vec<&mut [f64]> = model.factors.iter_mut().map(|f| &mut f[..]).collect();
                    opt.step(&mut params, &grads)?;
                }
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
                let e = model.end_to_end();
                self.eval.record_periodic(&e, self.p.depth, rec)?;
            }
        }
        state.converged = converged;
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        match self.p.optimizer {
            OptimizerKind::Sgd => format!(
                "plain gradient descent at lr {} is unstable for this depth and data; lower lr (the stable rate shrinks as the \
                 product grows) or use optimizer = \"group_rmsprop\"",
                self.p.lr
            ),
            _ => format!("lower lr (now {:e}) or init_scale (now {:e})", self.p.lr, self.p.init_scale),
        }
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        Ok(self.opt.as_ref().map(|o| o.to_bytes()).unwrap_or_default())
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        if !bytes.is_empty() {
            let o = Optimizer::from_bytes(bytes)?;
            let cur = self.opt.as_ref().ok_or_else(|| Error::invalid("deep: load_state before init"))?;
            self.opt = Some(cur.resumed_from(o)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod update_tests {
    use super::sub_scaled;

    #[test]
    fn the_update_reports_non_finite_results_and_matches_the_plain_loop() {
        for len in [0, 3, 8, 13, 64] {
            let g: Vec<f64> = (0..len).map(|k| (k as f64 * 0.37).sin()).collect();
            let p0: Vec<f64> = (0..len).map(|k| (k as f64 * 0.11).cos()).collect();
            let mut p = p0.clone();
            assert!(sub_scaled(&mut p, &g, 0.3), "len {len}");
            for k in 0..len {
                assert_eq!(p[k].to_bits(), (p0[k] - 0.3 * g[k]).to_bits());
            }
            if len == 0 {
                continue;
            }
            // an overflow anywhere (in the 8-lane body or the tail) is seen
            for bad in [0, len - 1] {
                let mut p = p0.clone();
                let mut g2 = g.clone();
                g2[bad] = -1.0;
                p[bad] = f64::MAX;
                assert!(!sub_scaled(&mut p, &g2, f64::MAX), "len {len}, overflow at {bad}");
                let mut p = p0.clone();
                p[bad] = f64::NAN;
                assert!(!sub_scaled(&mut p, &g, 0.3), "len {len}, NaN at {bad}");
            }
        }
    }
}
