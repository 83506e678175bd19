//! `altmin`: the course notebook's alternating minimization for matrix
//! completion.
//!
//! Minimize `1/2 ||P_Omega(A - X Y^T)||_F^2` by alternating exact
//! minimizations: with `Y` fixed, every row `x_u` solves the least-squares
//! problem over its observed entries only (the notebook's `update_left`,
//! `np.linalg.lstsq(siX, sia)` per row), then the same for `Y` with `X`
//! fixed. There is no regularization: only a tiny ridge, `ridge` (default
//! 1e-10) times the mean diagonal of the row's `k x k` Gram matrix, as a
//! numerical safeguard. For a row with fewer observations than the rank (an
//! underdetermined problem) that ridge picks, in the limit, the
//! minimum-norm solution, which is what `lstsq` returns; for well-determined
//! rows it changes the solution by about `ridge * cond`. Empty rows get zero
//! factors.
//!
//! `update = "gradient"` is the notebook's single-gradient-step variant
//! (`altmin_gd`): one gradient step on `X`, then one on `Y`. The step is
//! `lr` when given (the notebook uses 1 with orthonormal initial factors);
//! by default the exact minimizing step along the negative gradient, which
//! is closed-form because the objective is quadratic in each block:
//! `eta = ||G||^2 / ||P_Omega(G Y^T)||^2`.
//!
//! The initial factors are `N(0, init_scale^2)` (the notebook: `N(0, 1)`), or
//! with `init = "orthonormal"` the Q factor of such a matrix (the gradient
//! variant's `np.linalg.qr`). The notebook notes that convergence depends
//! strongly on the random initialization; `examples/checkerboard.rs` measures
//! how often.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::explicit::{HalfStep, RowReg};
use crate::data::{Compressed, Ratings};
use crate::error::{Result, ensure};
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::{IterState, Solver};

/// How each block is updated.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AltMinUpdate {
    /// Exact row-wise least squares (the notebook's `altmin`).
    #[default]
    Lstsq,
    /// One gradient step per block (the notebook's `altmin_gd`).
    Gradient,
}

/// Initial factors.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AltMinInit {
    /// i.i.d. `N(0, init_scale^2)` entries (the notebook's `altmin`).
    #[default]
    Gaussian,
    /// Orthonormal columns: the Q factor of a Gaussian matrix (the notebook's
    /// `altmin_gd`).
    Orthonormal,
}

/// Parameters of alternating minimization (`--algo altmin`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AltMin {
    /// Rank of the factorization (default 10; the notebook's checkerboard
    /// uses 2).
    pub rank: usize,
    /// Exact least squares or a single gradient step per block.
    pub update: AltMinUpdate,
    /// Fixed step of the gradient variant; exact line search when absent.
    pub lr: Option<f64>,
    /// Initial factors.
    pub init: AltMinInit,
    /// Standard deviation of the Gaussian initial entries (default 1, the
    /// notebook's).
    pub init_scale: f64,
    /// Relative ridge of the row solves, a numerical safeguard only
    /// (default 1e-10; 0 disables it, singular rows then fall back to the
    /// solver's jitter).
    pub ridge: f64,
    /// Stop when the RMSE on the observed entries falls below `tol` times
    /// their root mean square (default 0: never).
    pub tol: f64,
}

impl Default for AltMin {
    fn default() -> Self {
        AltMin {
            rank: 10,
            update: AltMinUpdate::Lstsq,
            lr: None,
            init: AltMinInit::Gaussian,
            init_scale: 1.0,
            ridge: 1e-10,
            tol: 0.0,
        }
    }
}

/// Default number of iterations of `altmin` (the notebook runs 10).
pub const DEFAULT_EPOCHS: usize = 10;

impl AltMin {
    /// Validate into a solver.
    pub fn check(self) -> Result<AltMinSolver> {
        ensure!(self.rank >= 1, "rank must be at least 1, got {}", self.rank);
        ensure!(self.rank <= 4096, "rank {} is too large for dense k x k solves (at most 4096)", self.rank);
        if let Some(lr) = self.lr {
            ensure!(lr > 0.0 && lr.is_finite(), "lr must be finite and > 0, got {lr}");
            ensure!(self.update == AltMinUpdate::Gradient, "lr is only used by update = \"gradient\"");
        }
        ensure!(
            self.init_scale > 0.0 && self.init_scale.is_finite(),
            "init_scale must be finite and > 0, got {}",
            self.init_scale
        );
        ensure!(
            (0.0..1.0).contains(&self.ridge),
            "ridge must be in [0, 1), got {} (it is a relative safeguard, not a regularizer)",
            self.ridge
        );
        ensure!(self.tol >= 0.0 && self.tol.is_finite(), "tol must be finite and >= 0, got {}", self.tol);
        Ok(AltMinSolver { params: self, value_rms: 0.0 })
    }
}

/// The validated alternating-minimization solver.
#[derive(Clone, Debug)]
pub struct AltMinSolver {
    params: AltMin,
    value_rms: f64,
}

/// `1/2 ||P_Omega(A - X Y^T)||^2`, summed per row in row order.
pub fn objective(m: &FactorModel, data: &Ratings) -> f64 {
    0.5 * super::explicit::squared_error(m, data.csr())
}

fn orthonormal(rng: &mut Rng, rows: usize, k: usize, scale: f64) -> Vec<f32> {
    let g = faer::Mat::from_fn(rows, k, |_, _| rng::normal(rng) * scale);
    let q = g.qr().compute_thin_Q();
    let mut out = vec![0.0f32; rows * k];
    for i in 0..rows {
        for t in 0..k {
            out[i * k + t] = q[(i, t)] as f32;
        }
    }
    out
}

/// One gradient step on `own` (rows of `lanes`) with `other` fixed: returns
/// the step used.
fn gradient_half(lanes: &Compressed, own: &mut [f32], other: &[f32], k: usize, lr: Option<f64>) -> f64 {
    // G_u = -sum_i e_ui y_i
    let grads: Vec<f64> = own
        .par_chunks(k)
        .enumerate()
        .with_min_len(32)
        .flat_map_iter(|(u, x)| {
            let (idx, vals) = lanes.lane(u);
            let mut g = vec![0.0f64; k];
            for (&i, &r) in idx.iter().zip(vals) {
                let y = &other[i as usize * k..(i as usize + 1) * k];
                let e = r as f64 - x.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>();
                for (gp, &yp) in g.iter_mut().zip(y) {
                    *gp -= e * yp as f64;
                }
            }
            g
        })
        .collect();
    let eta = match lr {
        Some(lr) => lr,
        None => {
            let parts: Vec<(f64, f64)> = (0..lanes.outer_len())
                .into_par_iter()
                .with_min_len(32)
                .map(|u| {
                    let g = &grads[u * k..(u + 1) * k];
                    let gg: f64 = g.iter().map(|v| v * v).sum();
                    let (idx, _) = lanes.lane(u);
                    let mut pg = 0.0;
                    for &i in idx {
                        let y = &other[i as usize * k..(i as usize + 1) * k];
                        let d: f64 = g.iter().zip(y).map(|(&a, &b)| a * b as f64).sum();
                        pg += d * d;
                    }
                    (gg, pg)
                })
                .collect();
            let (gg, pg) = parts.iter().fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            if pg > 0.0 { gg / pg } else { 0.0 }
        }
    };
    own.par_iter_mut().zip(grads.par_iter()).with_min_len(1024).for_each(|(x, g)| {
        *x = (*x as f64 - eta * g) as f32;
    });
    eta
}

impl Solver for AltMinSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn name(&self) -> &'static str {
        "altmin"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        let (m, n) = data.shape();
        ensure!(!data.is_empty(), "the training data has no entries");
        let k = self.params.rank;
        ensure!(k <= m.min(n), "rank {k} exceeds min(rows, cols) = {} of the {m}x{n} data", m.min(n));
        let mut model = FactorModel::zeros(m, n, k);
        let s = self.params.init_scale;
        match self.params.init {
            AltMinInit::Gaussian => {
                model.u = (0..m * k).map(|_| (rng::normal(rng) * s) as f32).collect();
                model.v = (0..n * k).map(|_| (rng::normal(rng) * s) as f32).collect();
            }
            AltMinInit::Orthonormal => {
                model.u = orthonormal(rng, m, k, s);
                model.v = orthonormal(rng, n, k, s);
            }
        }
        model.row_ids = data.row_ids.clone();
        model.col_ids = data.col_ids.clone();
        model.solver = "altmin".into();
        model.params = serde_json::to_value(&self.params).unwrap_or_default();
        self.value_rms = (data.values().iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / data.len() as f64).sqrt();
        let _ = (data.csr(), data.csc());
        Ok(model)
    }

    fn step(&mut self, data: &Ratings, m: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let k = m.rank;
        let mut sq = None;
        match self.params.update {
            AltMinUpdate::Lstsq => {
                let reg = RowReg { factor: 0.0, bias: 0.0, weighted: false, relative: self.params.ridge };
                fn half<'a>(
                    lanes: &'a Compressed,
                    other: &'a [f32],
                    k: usize,
                    reg: RowReg,
                    track_error: bool,
                ) -> HalfStep<'a> {
                    HalfStep { lanes, other, other_bias: None, mu: 0.0, k, reg, nonnegative: false, track_error }
                }
                let mut u = std::mem::take(&mut m.u);
                let r = half(data.csr(), &m.v, k, reg, false).run(&mut u, None);
                m.u = u;
                r?;
                let mut v = std::mem::take(&mut m.v);
                let r = half(data.csc(), &m.u, k, reg, true).run(&mut v, None);
                m.v = v;
                // the second half's residuals are the objective after the sweep
                sq = Some(r?);
            }
            AltMinUpdate::Gradient => {
                let lr = self.params.lr;
                let ex = gradient_half(data.csr(), &mut m.u, &m.v, k, lr);
                let ey = gradient_half(data.csc(), &mut m.v, &m.u, k, lr);
                state.record.values.insert("step_x".into(), ex);
                state.record.values.insert("step_y".into(), ey);
            }
        }
        let obj = sq.map_or_else(|| objective(m, data), |sq| 0.5 * sq);
        state.record.objective = Some(obj);
        let rmse = (2.0 * obj / data.len() as f64).sqrt();
        state.record.values.insert("train_rmse".into(), rmse);
        if self.params.tol > 0.0 && rmse <= self.params.tol * self.value_rms {
            state.converged = true;
        }
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        match self.params.update {
            AltMinUpdate::Gradient if self.params.lr.is_some() => {
                "the fixed gradient step is too large for this data; lower lr or leave it out for the exact line search"
                    .into()
            }
            _ => "alternating least squares without regularization can blow up on rows with very few observations; \
                  use --algo als with reg > 0"
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth;
    use crate::metrics;
    use crate::solve::Executor;

    #[test]
    fn recovers_the_checkerboard_from_a_good_start() {
        // rank 2 checkerboard 40x70 at 25 %: the notebook's example. Most
        // seeds recover it to 1e-6 (the example counts how many); seed 0 does.
        let a = synth::checkerboard(40, 70);
        let obs = synth::subsample(&a, 0.25, 1).unwrap();
        let mut recovered = 0;
        for seed in 0..4 {
            let s = AltMin { rank: 2, ..AltMin::default() }.check().unwrap();
            let fit = Executor::new(s, &obs).max_iters(50).seed(seed).run().unwrap();
            recovered += (metrics::relative_error(&fit.model, &a) < 1e-6) as usize;
        }
        assert!(recovered >= 2, "only {recovered} of 4 seeds recovered the checkerboard");
    }

    #[test]
    fn lstsq_half_step_solves_the_unregularized_problem() {
        // with X fixed and full column rank per column's observed rows, the
        // Y update zeroes the gradient P_Omega(A - X Y^T)^T X
        let p = synth::planted_completion_rect(30, 20, 3, 400, 2).unwrap();
        let s = AltMin { rank: 3, ..AltMin::default() }.check().unwrap();
        let mut s2 = s.clone();
        let mut m = s2.init(&p.observed, &mut rng::rng(5)).unwrap();
        s2.step(&p.observed, &mut m, &mut IterState::default()).unwrap();
        for (j, &n) in p.observed.col_counts().iter().enumerate() {
            assert!(n >= 3);
            let (rows, vals) = p.observed.csc().lane(j);
            let mut g = [0.0f64; 3];
            let mut scale = 0.0;
            for (&u, &r) in rows.iter().zip(vals) {
                let e = r as f64 - metrics::Predict::predict(&m, u as usize, j);
                for t in 0..3 {
                    g[t] += e * m.user(u as usize)[t] as f64;
                    scale += (r as f64 * m.user(u as usize)[t] as f64).abs();
                }
            }
            assert!(g.iter().all(|v| v.abs() < 1e-5 * (1.0 + scale)), "column {j}: {g:?}");
        }
    }

    #[test]
    fn gradient_variant_decreases_the_objective() {
        let p = synth::planted_completion_rect(30, 25, 2, 500, 4).unwrap();
        let s = AltMin { rank: 2, update: AltMinUpdate::Gradient, init: AltMinInit::Orthonormal, ..AltMin::default() }
            .check()
            .unwrap();
        let fit = Executor::new(s, &p.observed).max_iters(200).seed(3).run().unwrap();
        let obj: Vec<f64> = fit.history.iter().map(|h| h.objective.unwrap()).collect();
        // monotone until the factors reach f32 resolution (objective ~1e-12 here)
        let floor = 1e-9 * obj[0];
        assert!(
            obj.windows(2).all(|w| w[0] < floor || w[1] <= w[0] * (1.0 + 1e-6)),
            "exact line search never increases: {obj:?}"
        );
        assert!(obj[obj.len() - 1] < 1e-6 * obj[0], "{} -> {}", obj[0], obj[obj.len() - 1]);
    }

    #[test]
    fn exact_step_is_the_line_minimum() {
        // compare the closed-form step with a brute-force scan of f(X - eta G)
        let p = synth::planted_completion_rect(12, 10, 2, 70, 6).unwrap();
        let data = &p.observed;
        let mut s = AltMin { rank: 2, update: AltMinUpdate::Gradient, ..AltMin::default() }.check().unwrap();
        let m0 = s.init(data, &mut rng::rng(1)).unwrap();
        let f_at = |eta: f64| {
            let mut m = m0.clone();
            gradient_half(data.csr(), &mut m.u, &m0.v, 2, Some(eta));
            objective(&m, data)
        };
        let mut m = m0.clone();
        let eta = gradient_half(data.csr(), &mut m.u, &m0.v, 2, None);
        let best = (1..400).map(|t| eta * t as f64 / 200.0).map(f_at).fold(f64::INFINITY, f64::min);
        assert!(f_at(eta) <= best + 1e-6 * best.abs().max(1.0), "{} vs {best}", f_at(eta));
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(AltMin { rank: 0, ..AltMin::default() }.check().is_err());
        assert!(AltMin { lr: Some(0.1), ..AltMin::default() }.check().is_err(), "lr without the gradient update");
        assert!(AltMin { update: AltMinUpdate::Gradient, lr: Some(-1.0), ..AltMin::default() }.check().is_err());
        assert!(AltMin { ridge: -1e-3, ..AltMin::default() }.check().is_err());
        assert!(AltMin { init_scale: f64::INFINITY, ..AltMin::default() }.check().is_err());
    }
}
