//! `ials`: alternating least squares for implicit feedback (Hu, Koren and
//! Volinsky 2008, "Collaborative filtering for implicit feedback datasets").
//!
//! Every stored entry `(u, i, r)` is a positive (preference `p_ui = 1`) with
//! confidence `c_ui`; every other entry of the matrix is a zero with
//! confidence 1. The loss over the whole matrix is
//!
//! `sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + reg (sum |x_u|^2 + sum |y_i|^2)`.
//!
//! With `Y` fixed, each user's normal equations are
//! `(Y^T Y + Y^T (C_u - I) Y + reg I) x_u = Y^T C_u p_u`; `Y^T Y` is computed
//! once per half-sweep (the Gram-matrix trick), so the rest costs
//! `O(|I_u| k^2)` per user and one iteration `O(nnz k^2 + (m + n) k^3)` with
//! Cholesky, or `O(cg_steps (nnz k + (m + n) k^2))` with `solver = "cg"`: a
//! few conjugate-gradient steps warm-started at the previous factors
//! (Takacs, Pilaszy and Tikk 2011), as the `implicit` library does by default.
//!
//! Confidence (`confidence`):
//! - `linear`: `c = 1 + alpha r` (Hu et al.);
//! - `log`: `c = 1 + alpha log(1 + r / epsilon)` (Hu et al.'s variant);
//! - `proportional`: `c = alpha r`, the convention of the `implicit` library
//!   (with `alpha = 1` and binary data a positive then weighs as much as a
//!   zero). Use it to compare with `implicit` on equal terms.
//!
//! Rows are solved in parallel; each row depends only on the fixed side, and
//! the Gram matrix is summed over fixed blocks in a fixed order, so results
//! are identical for a given seed whatever the thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::linalg;
use crate::data::{Compressed, Ratings};
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::{IterState, Solver};

/// How a stored value becomes a confidence.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// `1 + alpha r`.
    #[default]
    Linear,
    /// `1 + alpha log(1 + r / epsilon)`.
    Log,
    /// `alpha r` (the `implicit` library's convention).
    Proportional,
}

/// How each row's system is solved.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RowSolver {
    /// `cg_steps` conjugate-gradient steps warm-started at the current factors.
    #[default]
    Cg,
    /// Exact solve by Cholesky.
    Cholesky,
}

/// Distribution of the initial factors.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IalsInit {
    /// `N(0, init_scale^2)` entries.
    #[default]
    Gaussian,
    /// `U[0, init_scale)` entries: the `implicit` library's start
    /// (`random((n, factors)) * 0.01`), non-negative.
    Uniform,
}

/// Parameters of implicit-feedback ALS (`--algo ials`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImplicitAls {
    /// Number of latent factors (default 100, `implicit`'s).
    pub rank: usize,
    /// L2 penalty on all factors (default 0.01, `implicit`'s).
    pub reg: f64,
    /// Confidence scale (default 1, `implicit`'s and `run_peer.py`'s).
    pub alpha: f64,
    /// Confidence function (default `linear`, Hu et al.'s, which scored
    /// better than `implicit`'s `proportional` on MovieLens-100k at alpha 1:
    /// see `bench/RESULTS_als.md`).
    pub confidence: Confidence,
    /// `epsilon` of the `log` confidence (default 1).
    pub epsilon: f64,
    /// Row solver (default `cg`).
    pub solver: RowSolver,
    /// Conjugate-gradient steps per row and half-sweep (default 3, `implicit`'s).
    pub cg_steps: usize,
    /// Scale of the initial factors (default 0.01: the standard deviation
    /// with `init = "gaussian"`, the upper bound with `"uniform"`).
    pub init_scale: f64,
    /// Initial distribution (default `gaussian`; `uniform` is `implicit`'s).
    pub init: IalsInit,
    /// Record the full-matrix loss every iteration (default false, as
    /// `implicit`'s `calculate_training_loss`: it costs about a fifth of an
    /// iteration).
    pub track_objective: bool,
    /// Used by `lowrank fit --algo ials`: ratings `>= positive_threshold` are
    /// the positives (default 4, as `run_peer.py implicit-als`); the others are
    /// dropped.
    pub positive_threshold: f64,
    /// Used by `lowrank fit --algo ials`: replace each positive's value by 1
    /// (default true, as `run_peer.py implicit-als`); false keeps the values
    /// (e.g. play counts) for the confidence.
    pub binarize: bool,
}

impl Default for ImplicitAls {
    fn default() -> Self {
        ImplicitAls {
            rank: 100,
            reg: 0.01,
            alpha: 1.0,
            confidence: Confidence::Linear,
            epsilon: 1.0,
            solver: RowSolver::Cg,
            cg_steps: 3,
            init_scale: 0.01,
            init: IalsInit::Gaussian,
            track_objective: false,
            positive_threshold: 4.0,
            binarize: true,
        }
    }
}

/// Default number of iterations of `ials` (`implicit`'s 15).
pub const DEFAULT_EPOCHS: usize = 15;

impl ImplicitAls {
    /// Validate into a solver.
    pub fn check(self) -> Result<ImplicitAlsSolver> {
        ensure!(self.rank >= 1, "rank must be at least 1, got {}", self.rank);
        ensure!(self.rank <= 4096, "rank {} is too large for dense k x k solves (at most 4096)", self.rank);
        ensure!(self.reg >= 0.0 && self.reg.is_finite(), "reg must be finite and >= 0, got {}", self.reg);
        ensure!(self.alpha > 0.0 && self.alpha.is_finite(), "alpha must be finite and > 0, got {}", self.alpha);
        ensure!(self.epsilon > 0.0 && self.epsilon.is_finite(), "epsilon must be finite and > 0, got {}", self.epsilon);
        ensure!(
            self.solver == RowSolver::Cholesky || self.cg_steps >= 1,
            "cg_steps must be at least 1 with solver = \"cg\""
        );
        ensure!(
            self.init_scale > 0.0 && self.init_scale.is_finite(),
            "init_scale must be finite and > 0, got {}",
            self.init_scale
        );
        ensure!(self.positive_threshold.is_finite(), "positive_threshold must be finite");
        Ok(ImplicitAlsSolver { params: self })
    }
}

/// The validated implicit ALS solver.
#[derive(Clone, Debug)]
pub struct ImplicitAlsSolver {
    params: ImplicitAls,
}

/// `F^T F` (`k x k`, full, row-major) summed over fixed blocks of rows in a
/// fixed order: identical whatever the thread count.
pub fn gram(f: &[f32], k: usize) -> Vec<f64> {
    const BLOCK: usize = 256;
    let parts: Vec<Vec<f64>> = f
        .par_chunks(BLOCK * k)
        .map(|blk| {
            let xs: Vec<f64> = blk.iter().map(|&v| v as f64).collect();
            let mut a = vec![0.0; k * k];
            linalg::syrk_upper(&mut a, k, &xs);
            a
        })
        .collect();
    let mut g = vec![0.0; k * k];
    for p in parts {
        for (x, y) in g.iter_mut().zip(p) {
            *x += y;
        }
    }
    linalg::symmetrize(&mut g, k);
    g
}

#[derive(Default)]
struct Scratch {
    ys: Vec<f64>,
    c: Vec<f64>,
    cm1: Vec<f32>,
    ys32: Vec<f32>,
    v32: Vec<f32>,
    out32: Vec<f32>,
    a: Vec<f64>,
    b: Vec<f64>,
    x: Vec<f64>,
    r: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    work: Vec<f64>,
}

impl ImplicitAlsSolver {
    /// The parameters.
    pub fn params(&self) -> &ImplicitAls {
        &self.params
    }

    /// Confidence of a stored value.
    #[inline]
    pub fn confidence(&self, r: f32) -> f64 {
        let (a, r) = (self.params.alpha, r as f64);
        match self.params.confidence {
            Confidence::Linear => 1.0 + a * r,
            Confidence::Log => 1.0 + a * (1.0 + r / self.params.epsilon).ln(),
            Confidence::Proportional => a * r,
        }
    }

    /// The full-matrix loss `sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + reg (|X|^2
    /// + |Y|^2)`, in `O(nnz k + (m + n) k^2)`: the all-zeros part is
    /// `<X^T X, Y^T Y>`, corrected on the stored entries.
    pub fn objective(&self, data: &Ratings, m: &FactorModel) -> f64 {
        let k = m.rank;
        let (gu, gv) = (gram(&m.u, k), gram(&m.v, k));
        let zeros: f64 = gu.iter().zip(&gv).map(|(a, b)| a * b).sum();
        let csr = data.csr();
        let per_row: Vec<f64> = (0..data.nrows())
            .into_par_iter()
            .with_min_len(64)
            .map(|u| {
                let (idx, vals) = csr.lane(u);
                let x = m.user(u);
                let mut s = 0.0;
                for (&i, &r) in idx.iter().zip(vals) {
                    let y = m.item(i as usize);
                    let d: f64 = x.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum();
                    s += self.confidence(r) * (1.0 - d) * (1.0 - d) - d * d;
                }
                s
            })
            .collect();
        let norms: f64 = m.u.iter().chain(&m.v).map(|&v| (v as f64).powi(2)).sum();
        zeros + per_row.iter().sum::<f64>() + self.params.reg * norms
    }

    /// Solve every row of one side (`lanes`) with `other` fixed, in place in
    /// `own` (warm start for CG).
    pub fn half_step(&self, lanes: &Compressed, own: &mut [f32], other: &[f32], k: usize) -> Result<()> {
        let mut g = gram(other, k);
        for p in 0..k {
            g[p * k + p] += self.params.reg;
        }
        let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
        own.par_chunks_mut(k)
            .enumerate()
            .with_min_len(16)
            .try_for_each_init(Scratch::default, |s, (u, x)| {
                if self.solve_row(lanes, u, other, &g, &g32, k, s, x) { Ok(()) } else { Err(u) }
            })
            .map_err(|u| Error::Numerical(format!("the system of row {u} could not be solved (non-finite values?)")))
    }

    fn solve_row(
        &self,
        lanes: &Compressed,
        u: usize,
        other: &[f32],
        g: &[f64],
        g32: &[f32],
        k: usize,
        s: &mut Scratch,
        x: &mut [f32],
    ) -> bool {
        let (idx, vals) = lanes.lane(u);
        s.ys.clear();
        s.c.clear();
        s.cm1.clear();
        s.ys32.clear();
        s.b.clear();
        s.b.resize(k, 0.0);
        let cg = self.params.solver == RowSolver::Cg;
        for (t, (&i, &r)) in idx.iter().zip(vals).enumerate() {
            if let Some(&ahead) = idx.get(t + super::explicit::PREFETCH) {
                super::explicit::prefetch(&other[ahead as usize * k..]);
            }
            let y = &other[i as usize * k..(i as usize + 1) * k];
            let c = self.confidence(r);
            // b = sum_i c_i y_i
            for (bp, &yp) in s.b.iter_mut().zip(y) {
                *bp += c * yp as f64;
            }
            // an entry of confidence exactly 1 weighs as much as an
            // unobserved zero: it changes b only, not the matrix (with
            // `proportional`, alpha 1 and binary data that is every entry,
            // and each row's matrix is the shared Y^T Y + reg I)
            if c == 1.0 {
                continue;
            }
            if cg {
                s.ys32.extend_from_slice(y);
                s.cm1.push((c - 1.0) as f32);
            } else {
                s.ys.extend(y.iter().map(|&v| v as f64));
                s.c.push(c);
            }
        }
        match self.params.solver {
            RowSolver::Cholesky => {
                s.a.clear();
                s.a.extend_from_slice(g);
                for (t, &c) in s.c.iter().enumerate() {
                    linalg::syr_upper(&mut s.a, k, &s.ys[t * k..(t + 1) * k], c - 1.0);
                }
                if !linalg::solve_spd(&mut s.a, k, &mut s.b, &mut s.work) {
                    return false;
                }
                for p in 0..k {
                    x[p] = s.b[p] as f32;
                }
            }
            RowSolver::Cg => {
                s.x.clear();
                s.x.extend(x.iter().map(|&v| v as f64));
                // r = b - A x
                s.r.clear();
                s.r.extend_from_slice(&s.b);
                apply(g32, &s.ys32, &s.cm1, k, &s.x, &mut s.ap, &mut s.v32, &mut s.out32);
                for (r, a) in s.r.iter_mut().zip(&s.ap) {
                    *r -= a;
                }
                s.p.clear();
                s.p.extend_from_slice(&s.r);
                let mut rs_old: f64 = s.r.iter().map(|v| v * v).sum();
                for _ in 0..self.params.cg_steps {
                    if rs_old < 1e-20 {
                        break;
                    }
                    apply(g32, &s.ys32, &s.cm1, k, &s.p, &mut s.ap, &mut s.v32, &mut s.out32);
                    let pap: f64 = s.p.iter().zip(&s.ap).map(|(a, b)| a * b).sum();
                    if pap.is_nan() || pap <= 0.0 {
                        break;
                    }
                    let alpha = rs_old / pap;
                    for q in 0..k {
                        s.x[q] += alpha * s.p[q];
                        s.r[q] -= alpha * s.ap[q];
                    }
                    let rs_new: f64 = s.r.iter().map(|v| v * v).sum();
                    let beta = rs_new / rs_old;
                    for q in 0..k {
                        s.p[q] = s.r[q] + beta * s.p[q];
                    }
                    rs_old = rs_new;
                }
                if s.x.iter().any(|v| !v.is_finite()) {
                    return false;
                }
                for p in 0..k {
                    x[p] = s.x[p] as f32;
                }
            }
        }
        true
    }
}

/// `out = (G + sum_t (c_t - 1) y_t y_t^T) v` with `G` full `k x k`
/// (`cm1` holds `c_t - 1`), computed in f32.
fn apply(
    g: &[f32],
    ys: &[f32],
    cm1: &[f32],
    k: usize,
    v: &[f64],
    out: &mut Vec<f64>,
    v32: &mut Vec<f32>,
    out32: &mut Vec<f32>,
) {
    v32.clear();
    v32.extend(v.iter().map(|&x| x as f32));
    out32.clear();
    out32.resize(k, 0.0);
    linalg::gram_apply32(g, ys, cm1, k, v32, out32);
    out.clear();
    out.extend(out32.iter().map(|&x| x as f64));
}

impl Solver for ImplicitAlsSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn name(&self) -> &'static str {
        "ials"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        let (m, n) = data.shape();
        ensure!(!data.is_empty(), "the training data has no positives");
        let k = self.params.rank;
        ensure!(k <= m.min(n), "rank {k} exceeds min(rows, cols) = {} of the {m}x{n} data", m.min(n));
        if let Some(v) = data.values().iter().find(|&&v| v < 0.0) {
            return Err(Error::invalid(format!(
                "implicit feedback values must be >= 0 (counts or 1 for a positive), found {v}"
            )));
        }
        let mut model = FactorModel::zeros(m, n, k);
        let s = self.params.init_scale;
        let mut draw = |len: usize| -> Vec<f32> {
            match self.params.init {
                IalsInit::Gaussian => (0..len).map(|_| (rng::normal(rng) * s) as f32).collect(),
                IalsInit::Uniform => (0..len).map(|_| (rng::uniform(rng) * s) as f32).collect(),
            }
        };
        model.u = draw(m * k);
        model.v = draw(n * k);
        model.row_ids = data.row_ids.clone();
        model.col_ids = data.col_ids.clone();
        model.solver = "ials".into();
        model.params = serde_json::to_value(&self.params).unwrap_or_default();
        let _ = (data.csr(), data.csc());
        Ok(model)
    }

    fn step(&mut self, data: &Ratings, m: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let k = m.rank;
        let mut u = std::mem::take(&mut m.u);
        let r = self.half_step(data.csr(), &mut u, &m.v, k);
        m.u = u;
        r?;
        let mut v = std::mem::take(&mut m.v);
        let r = self.half_step(data.csc(), &mut v, &m.u, k);
        m.v = v;
        r?;
        if self.params.track_objective {
            state.record.objective = Some(self.objective(data, m));
        }
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        "implicit ALS solves positive-definite systems; a non-finite value means extreme confidences: \
         lower alpha or use confidence = \"log\", or raise reg"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solve::Executor;
    use faer::Mat;
    use faer::linalg::solvers::Solve;

    fn tiny() -> Ratings {
        // 6 users x 5 items, values are counts
        let e = [
            (0, 0, 1.0),
            (0, 2, 3.0),
            (1, 1, 2.0),
            (2, 0, 1.0),
            (2, 3, 1.0),
            (2, 4, 5.0),
            (3, 2, 1.0),
            (5, 1, 1.0),
            (5, 4, 2.0),
        ];
        Ratings::new(
            6,
            5,
            e.iter().map(|x| x.0).collect(),
            e.iter().map(|x| x.1).collect(),
            e.iter().map(|x| x.2).collect(),
        )
        .unwrap()
    }

    fn params(conf: Confidence, solver: RowSolver) -> ImplicitAls {
        ImplicitAls {
            rank: 2,
            reg: 0.1,
            alpha: 2.0,
            confidence: conf,
            solver,
            init_scale: 0.5,
            track_objective: true,
            ..ImplicitAls::default()
        }
    }

    /// Each user's dense weighted least-squares problem over all items, solved
    /// with faer: `(Y^T C_u Y + reg I) x = Y^T C_u p_u`.
    fn brute_force_users(s: &ImplicitAlsSolver, data: &Ratings, m: &FactorModel) -> Vec<Vec<f64>> {
        let (nu, ni, k) = (data.nrows(), data.ncols(), m.rank);
        let mut c = Mat::<f64>::from_fn(nu, ni, |_, _| 1.0);
        let mut p = Mat::<f64>::zeros(nu, ni);
        for (u, i, r) in data.iter() {
            c[(u, i)] = s.confidence(r);
            p[(u, i)] = 1.0;
        }
        let y = m.v_dense();
        (0..nu)
            .map(|u| {
                let mut a = Mat::<f64>::zeros(k, k);
                let mut b = Mat::<f64>::zeros(k, 1);
                for i in 0..ni {
                    for q in 0..k {
                        b[(q, 0)] += c[(u, i)] * p[(u, i)] * y[(i, q)];
                        for t in 0..k {
                            a[(q, t)] += c[(u, i)] * y[(i, q)] * y[(i, t)];
                        }
                    }
                }
                for q in 0..k {
                    a[(q, q)] += s.params.reg;
                }
                let x = a.llt(faer::Side::Lower).unwrap().solve(&b);
                (0..k).map(|q| x[(q, 0)]).collect()
            })
            .collect()
    }

    #[test]
    fn cholesky_half_step_equals_dense_weighted_least_squares() {
        for conf in [Confidence::Linear, Confidence::Log, Confidence::Proportional] {
            let data = tiny();
            let mut s = params(conf, RowSolver::Cholesky).check().unwrap();
            let mut m = s.init(&data, &mut rng::rng(3)).unwrap();
            let want = brute_force_users(&s, &data, &m);
            let mut u = std::mem::take(&mut m.u);
            s.half_step(data.csr(), &mut u, &m.v, 2).unwrap();
            m.u = u;
            for (uu, w) in want.iter().enumerate() {
                for q in 0..2 {
                    let got = m.user(uu)[q] as f64;
                    assert!((got - w[q]).abs() < 1e-5 * (1.0 + w[q].abs()), "{conf:?} user {uu}: {got} vs {}", w[q]);
                }
            }
        }
    }

    #[test]
    fn unit_confidence_entries_and_the_uniform_start() {
        // alpha 0.5 proportional: the entries of value 2 have confidence
        // exactly 1 and are left out of the matrix (not of b); both solvers
        // still equal the dense weighted least squares
        for solver in [RowSolver::Cholesky, RowSolver::Cg] {
            let p = ImplicitAls {
                alpha: 0.5,
                cg_steps: 8,
                init: IalsInit::Uniform,
                ..params(Confidence::Proportional, solver)
            };
            let data = tiny();
            let mut s = p.check().unwrap();
            assert!(data.values().iter().any(|&v| s.confidence(v) == 1.0));
            let mut m = s.init(&data, &mut rng::rng(4)).unwrap();
            assert!(m.u.iter().chain(&m.v).all(|&v| (0.0..0.5).contains(&v)), "U[0, init_scale)");
            let want = brute_force_users(&s, &data, &m);
            let mut u = std::mem::take(&mut m.u);
            s.half_step(data.csr(), &mut u, &m.v, 2).unwrap();
            m.u = u;
            for (uu, w) in want.iter().enumerate() {
                for q in 0..2 {
                    let got = m.user(uu)[q] as f64;
                    assert!((got - w[q]).abs() < 1e-5 * (1.0 + w[q].abs()), "{solver:?} user {uu}: {got} vs {}", w[q]);
                }
            }
        }
    }

    #[test]
    fn enough_cg_steps_give_the_exact_solution() {
        let data = tiny();
        let mut exact = params(Confidence::Linear, RowSolver::Cholesky).check().unwrap();
        let cg = ImplicitAls { cg_steps: 8, ..params(Confidence::Linear, RowSolver::Cg) }.check().unwrap();
        let m0 = exact.init(&data, &mut rng::rng(9)).unwrap();
        let (mut a, mut b) = (m0.u.clone(), m0.u.clone());
        exact.half_step(data.csr(), &mut a, &m0.v, 2).unwrap();
        cg.half_step(data.csr(), &mut b, &m0.v, 2).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5 * (1.0 + x.abs()), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn objective_matches_the_dense_sum_and_never_increases() {
        let data = tiny();
        for solver in [RowSolver::Cholesky, RowSolver::Cg] {
            let s = params(Confidence::Linear, solver).check().unwrap();
            let fit = Executor::new(s.clone(), &data).max_iters(10).seed(2).run().unwrap();
            let obj: Vec<f64> = fit.history.iter().map(|h| h.objective.unwrap()).collect();
            assert!(obj.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-6)), "{solver:?}: {obj:?}");
            // brute force over every entry of the matrix
            let m = &fit.model;
            let mut dense = 0.0;
            for u in 0..6 {
                for i in 0..5 {
                    let d: f64 = m.user(u).iter().zip(m.item(i)).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let stored = data.iter().find(|&(a, b, _)| a == u && b == i);
                    dense += match stored {
                        Some((_, _, r)) => s.confidence(r) * (1.0 - d).powi(2),
                        None => d * d,
                    };
                }
            }
            dense += 0.1 * m.u.iter().chain(&m.v).map(|&v| (v as f64).powi(2)).sum::<f64>();
            let got = s.objective(&data, m);
            assert!((got - dense).abs() < 1e-9 * dense, "{got} vs {dense}");
        }
    }

    #[test]
    fn recommends_the_held_out_items_of_each_community() {
        // two communities of 20 users x 15 items; each user saw 12 items of
        // its own community; the 3 others must come first in its top-3
        let (mut r, mut c, mut tr, mut tc) = (vec![], vec![], vec![], vec![]);
        for u in 0..40u32 {
            let base = if u < 20 { 0 } else { 15 };
            for t in 0..15u32 {
                let i = base + (t + u) % 15;
                if t < 12 {
                    r.push(u);
                    c.push(i);
                } else {
                    tr.push(u);
                    tc.push(i);
                }
            }
        }
        let n = r.len();
        let train = Ratings::new(40, 30, r, c, vec![1.0; n]).unwrap();
        let test = Ratings::new(40, 30, tr, tc, vec![1.0; 120]).unwrap();
        let s = ImplicitAls { rank: 4, alpha: 10.0, init_scale: 0.1, ..ImplicitAls::default() }.check().unwrap();
        let fit = Executor::new(s, &train).max_iters(10).seed(1).run().unwrap();
        let res = super::super::evaluate_ranking(&fit.model, &train, &test, 3);
        assert_eq!(res.users, 40);
        // a random top-3 among the 18 unseen items scores 3/18; the community
        // structure alone allows 1
        assert!(res.precision >= 0.9, "{res:?}");
    }

    #[test]
    fn same_seed_same_result_with_two_threads() {
        let data = super::super::explicit::tests::random_ratings(300, 120, 0.05, 4);
        let run = |threads| {
            let s = ImplicitAls { rank: 8, ..ImplicitAls::default() }.check().unwrap();
            Executor::new(s, &data).max_iters(3).seed(5).threads(threads).run().unwrap().model
        };
        let a = run(2);
        assert_eq!(a, run(2));
        assert_eq!(a, run(1));
    }

    #[test]
    fn invalid_params_and_data_are_rejected() {
        assert!(ImplicitAls { rank: 0, ..ImplicitAls::default() }.check().is_err());
        assert!(ImplicitAls { reg: -1.0, ..ImplicitAls::default() }.check().is_err());
        assert!(ImplicitAls { alpha: 0.0, ..ImplicitAls::default() }.check().is_err());
        assert!(ImplicitAls { epsilon: 0.0, ..ImplicitAls::default() }.check().is_err());
        assert!(ImplicitAls { cg_steps: 0, ..ImplicitAls::default() }.check().is_err());
        let neg = Ratings::new(3, 3, vec![0, 1, 2], vec![0, 1, 2], vec![1.0, -2.0, 1.0]).unwrap();
        let mut s = ImplicitAls { rank: 2, ..ImplicitAls::default() }.check().unwrap();
        assert!(matches!(s.init(&neg, &mut rng::rng(0)), Err(Error::InvalidInput(_))));
    }
}
