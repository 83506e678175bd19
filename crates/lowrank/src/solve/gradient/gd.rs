//! `gd`: full-batch gradient descent for masked factorization.
//!
//! Minimizes `cost(U V^T - X on Omega) + reg (||U||_F^2 + ||V||_F^2)` where
//! `cost` is `sse = sum e^2`, `mse = sse / |Omega|` or `rmse = sqrt(mse)` (the
//! Adagrad blog, seed 004, optimizes the RMSE directly), with any
//! [`Optimizer`] method. Each iteration evaluates the gradient once over all
//! observed entries (parallel over the CSR rows for `U` and the CSC columns
//! for `V`), takes one optimizer step, and (with `nonnegative`) projects onto
//! `U, V >= 0`.
//!
//! Records per iteration: `objective`, `cost`, `grad_norm` (at the new
//! point; the norm of the projected gradient with `nonnegative`), `lr`, and
//! with `record_lr = true` the per-parameter effective learning rates as the
//! vectors `lr_u` (`m x k`, row-major) and `lr_v` (`n x k`): the blog's
//! heatmaps. The first record also carries `grad_norm_initial`.

use serde::{Deserialize, Serialize};

use super::masked::{MaskedProblem, sum_sq};
use super::{Init, pack, to_model, unpack};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::optim::{Method, Optimizer, Schedule, projection};
use crate::rng::Rng;
use crate::solve::{IterState, Solver};

/// Iterations when `--epochs` is not given.
pub const DEFAULT_EPOCHS: usize = 200;

/// Settings `gd` understands.
pub const KEYS: &[&str] = &[
    "rank",
    "lr",
    "optimizer",
    "momentum",
    "beta1",
    "beta2",
    "alpha",
    "eps",
    "cost",
    "reg",
    "nonnegative",
    "init",
    "init_scale",
    "center",
    "schedule",
    "gamma",
    "every",
    "gtol",
    "record_lr",
];

/// The loss on the observed entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cost {
    /// `sum e^2` (seed 002's objective).
    Sse,
    /// `sum e^2 / |Omega|`.
    Mse,
    /// `sqrt(sum e^2 / |Omega|)` (seed 004's cost).
    Rmse,
}

/// Parameters of full-batch gradient descent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GradientDescent {
    /// Rank `k` (10).
    pub rank: usize,
    /// Base learning rate (0.01; the blog uses 0.1 with Adagrad).
    pub lr: f64,
    /// `sgd`, `momentum`, `nesterov`, `adagrad`, `rmsprop`, `group_rmsprop`
    /// or `adam` (default `adam`, the PyTorch comparison's optimizer).
    pub optimizer: String,
    /// Momentum coefficient (momentum/Nesterov; 0.9).
    pub momentum: Option<f64>,
    /// Adam's first-moment decay (0.9).
    pub beta1: Option<f64>,
    /// Adam's second-moment decay (0.999).
    pub beta2: Option<f64>,
    /// RMSprop / group RMSprop decay (0.99).
    pub alpha: Option<f64>,
    /// The optimizer's eps (Adagrad 1e-8 as the blog, RMSprop 1e-8, group
    /// RMSprop 1e-4 as the research code, Adam 1e-8).
    pub eps: Option<f64>,
    /// `sse`, `mse` (default) or `rmse`.
    pub cost: Cost,
    /// L2 penalty `reg (||U||^2 + ||V||^2)` added to the cost (0).
    pub reg: f64,
    /// Project onto `U, V >= 0` after every step (false).
    pub nonnegative: bool,
    /// `gaussian` (default), `uniform` or `blog` (the blog's poor start).
    pub init: Init,
    /// Scale of the initial entries (0.1).
    pub init_scale: f64,
    /// Fit `X - mean` and store the mean as the model's global mean (false:
    /// fit `X` itself, as the seeds do).
    pub center: bool,
    /// Step-size schedule: `constant` (default), `step` (`gamma`, `every`),
    /// `exponential` (`gamma`), `inverse_time` (`gamma` is the decay),
    /// `inverse_sqrt`, `cosine` (over `every` steps).
    pub schedule: String,
    /// Schedule factor / decay.
    pub gamma: Option<f64>,
    /// Schedule period.
    pub every: Option<usize>,
    /// Stop (converged) when `grad_norm <= gtol * grad_norm_initial` (0: run
    /// all epochs).
    pub gtol: f64,
    /// Record the per-parameter learning rates `lr_u`, `lr_v` every
    /// iteration.
    pub record_lr: bool,
}

impl Default for GradientDescent {
    fn default() -> Self {
        GradientDescent {
            rank: 10,
            lr: 0.01,
            optimizer: "adam".into(),
            momentum: None,
            beta1: None,
            beta2: None,
            alpha: None,
            eps: None,
            cost: Cost::Mse,
            reg: 0.0,
            nonnegative: false,
            init: Init::Gaussian,
            init_scale: 0.1,
            center: false,
            schedule: "constant".into(),
            gamma: None,
            every: None,
            gtol: 0.0,
            record_lr: false,
        }
    }
}

impl GradientDescent {
    /// The optimizer method with the given hyperparameters.
    pub fn method(&self) -> Result<Method> {
        let mut m = Method::by_name(&self.optimizer)?;
        let unused = |what: &str, v: Option<f64>| -> Result<()> {
            ensure!(v.is_none(), "optimizer '{}' has no setting '{what}'", self.optimizer);
            Ok(())
        };
        match &mut m {
            Method::Sgd => {
                for (n, v) in [
                    ("momentum", self.momentum),
                    ("beta1", self.beta1),
                    ("beta2", self.beta2),
                    ("alpha", self.alpha),
                    ("eps", self.eps),
                ] {
                    unused(n, v)?;
                }
            }
            Method::Momentum { beta, .. } => {
                *beta = self.momentum.unwrap_or(*beta);
                for (n, v) in [("beta1", self.beta1), ("beta2", self.beta2), ("alpha", self.alpha), ("eps", self.eps)] {
                    unused(n, v)?;
                }
            }
            Method::Adagrad { eps } => {
                *eps = self.eps.unwrap_or(*eps);
                for (n, v) in
                    [("momentum", self.momentum), ("beta1", self.beta1), ("beta2", self.beta2), ("alpha", self.alpha)]
                {
                    unused(n, v)?;
                }
            }
            Method::RmsProp { alpha, eps } | Method::GroupRmsProp { alpha, eps } => {
                *alpha = self.alpha.unwrap_or(*alpha);
                *eps = self.eps.unwrap_or(*eps);
                for (n, v) in [("momentum", self.momentum), ("beta1", self.beta1), ("beta2", self.beta2)] {
                    unused(n, v)?;
                }
            }
            Method::Adam { beta1, beta2, eps } => {
                *beta1 = self.beta1.unwrap_or(*beta1);
                *beta2 = self.beta2.unwrap_or(*beta2);
                *eps = self.eps.unwrap_or(*eps);
                for (n, v) in [("momentum", self.momentum), ("alpha", self.alpha)] {
                    unused(n, v)?;
                }
            }
        }
        m.check()?;
        Ok(m)
    }

    /// The step-size schedule.
    pub fn schedule(&self) -> Result<Schedule> {
        let gamma = |d: f64| self.gamma.unwrap_or(d);
        let s = match self.schedule.as_str() {
            "constant" => Schedule::Constant,
            "step" => Schedule::Step { every: self.every.unwrap_or(100), gamma: gamma(0.5) },
            "exponential" => Schedule::Exponential { gamma: gamma(0.99) },
            "inverse_time" => Schedule::InverseTime { decay: gamma(0.01) },
            "inverse_sqrt" => Schedule::InverseSqrt,
            "cosine" => Schedule::Cosine { total: self.every.unwrap_or(DEFAULT_EPOCHS), min: 0.0 },
            other => {
                let names = ["constant", "step", "exponential", "inverse_time", "inverse_sqrt", "cosine"];
                return Err(Error::Config(format!(
                    "unknown schedule '{other}'{}; known: {}",
                    crate::solve::registry::did_you_mean(other, &names),
                    names.join(", ")
                )));
            }
        };
        s.check()?;
        Ok(s)
    }

    /// Validate into a solver.
    pub fn check(self) -> Result<GradientDescentSolver> {
        ensure!(self.rank >= 1, "the rank must be at least 1");
        ensure!(self.lr > 0.0 && self.lr.is_finite(), "the learning rate must be > 0, got {}", self.lr);
        ensure!(self.reg >= 0.0 && self.reg.is_finite(), "reg must be >= 0, got {}", self.reg);
        ensure!(
            self.init_scale > 0.0 && self.init_scale.is_finite(),
            "init_scale must be > 0, got {}",
            self.init_scale
        );
        ensure!(self.gtol >= 0.0 && self.gtol.is_finite(), "gtol must be >= 0, got {}", self.gtol);
        let method = self.method()?;
        let schedule = self.schedule()?;
        Ok(GradientDescentSolver { params: self, method, schedule, initial: None, st: None })
    }
}

/// The working state (built in `init`).
#[derive(Clone, Debug)]
struct State {
    prob: MaskedProblem,
    theta: Vec<f64>,
    opt: Optimizer,
    e: Vec<f64>,
    grad: Vec<f64>,
    cost: f64,
    obj: f64,
    gnorm: f64,
    /// `e`, `grad`, `cost`, `gnorm` belong to `theta`.
    fresh: bool,
    g0: f64,
}

/// The validated gradient-descent solver.
#[derive(Clone, Debug)]
pub struct GradientDescentSolver {
    params: GradientDescent,
    method: Method,
    schedule: Schedule,
    initial: Option<Vec<f64>>,
    st: Option<State>,
}

impl GradientDescentSolver {
    /// Start from given factors instead of a random draw: `u` is `m x k`,
    /// `v` is `n x k`, both row-major (e.g. the blog's printed `W` and
    /// `H^T`).
    pub fn with_initial_factors(mut self, u: &[f64], v: &[f64]) -> Self {
        let mut t = u.to_vec();
        t.extend_from_slice(v);
        self.initial = Some(t);
        self
    }

    /// The settings.
    pub fn params(&self) -> &GradientDescent {
        &self.params
    }

    /// Reject data the settings cannot fit (rank larger than the matrix).
    pub fn check_data(&self, data: &Ratings) -> Result<()> {
        let (m, n) = data.shape();
        ensure!(!data.is_empty(), "the training data has no observed entries");
        ensure!(
            self.params.rank <= m.min(n),
            "rank {} is larger than the {m}x{n} matrix allows ({})",
            self.params.rank,
            m.min(n)
        );
        Ok(())
    }

    /// The current parameters `[vec(U); vec(V)]` in f64 (after `init`).
    pub fn theta(&self) -> Option<&[f64]> {
        self.st.as_ref().map(|s| &s.theta[..])
    }

    /// The optimizer (after `init`).
    pub fn optimizer(&self) -> Option<&Optimizer> {
        self.st.as_ref().map(|s| &s.opt)
    }

    /// Objective and gradient at `theta` (cost + reg), into the state.
    /// The cost of the zero model (predicting the offset everywhere): the
    /// data's scale, a floor under the start objective for divergence
    /// detection (a start at a near-perfect fit must not make rounding noise
    /// look like a blow-up).
    fn zero_model_cost(&self, p: &MaskedProblem) -> f64 {
        let mut e = vec![0.0; p.nnz()];
        p.residuals(&vec![0.0; p.dim()], &mut e);
        let sse = sum_sq(&e);
        let nn = p.nnz() as f64;
        match self.params.cost {
            Cost::Sse => sse,
            Cost::Mse => sse / nn,
            Cost::Rmse => (sse / nn).sqrt(),
        }
    }

    fn evaluate(&self, st: &mut State) {
        let p = &st.prob;
        p.residuals(&st.theta, &mut st.e);
        let sse = sum_sq(&st.e);
        let nn = p.nnz() as f64;
        let (cost, scale) = match self.params.cost {
            Cost::Sse => (sse, 2.0),
            Cost::Mse => (sse / nn, 2.0 / nn),
            Cost::Rmse => {
                let r = (sse / nn).sqrt();
                (r, if r > 0.0 { 1.0 / (nn * r) } else { 0.0 })
            }
        };
        p.weighted_sums(&st.theta, &st.e, scale, &mut st.grad);
        let reg = self.params.reg;
        let mut obj = cost;
        if reg > 0.0 {
            for (g, &t) in st.grad.iter_mut().zip(&st.theta) {
                *g += 2.0 * reg * t;
            }
            obj += reg * sum_sq(&st.theta);
        }
        st.cost = cost;
        st.obj = obj;
        st.gnorm = if self.params.nonnegative {
            // projected gradient: components that would leave the orthant vanish
            let pg: Vec<f64> =
                st.theta.iter().zip(&st.grad).map(|(&t, &g)| if t <= 0.0 && g > 0.0 { 0.0 } else { g }).collect();
            sum_sq(&pg).sqrt()
        } else {
            sum_sq(&st.grad).sqrt()
        };
        st.fresh = true;
    }
}

impl Solver for GradientDescentSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn name(&self) -> &'static str {
        "gd"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        self.check_data(data)?;
        let k = self.params.rank;
        let offset = if self.params.center { data.mean() } else { 0.0 };
        let prob = MaskedProblem::new(data, k, offset)?;
        let (m, n) = (prob.m, prob.n);
        let mut theta = match &self.initial {
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
        if self.params.nonnegative {
            projection::nonneg(&mut theta);
        }
        let opt = Optimizer::new(self.method.clone(), self.params.lr, &[m * k, n * k])?;
        let nnz = prob.nnz();
        let dim = prob.dim();
        let mut model = FactorModel::zeros(m, n, k);
        to_model(&prob, &theta, &mut model);
        self.st = Some(State {
            prob,
            theta,
            opt,
            e: vec![0.0; nnz],
            grad: vec![0.0; dim],
            cost: 0.0,
            obj: 0.0,
            gnorm: 0.0,
            fresh: false,
            g0: f64::NAN,
        });
        Ok(model)
    }

    fn step(&mut self, _data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let mut st = self.st.take().ok_or_else(|| Error::invalid("gd: step before init"))?;
        if !st.fresh {
            self.evaluate(&mut st);
        }
        if state.iteration == 0 || !st.g0.is_finite() {
            state.start_objective = Some(st.obj.max(self.zero_model_cost(&st.prob)));
            st.g0 = st.gnorm;
            state.record.values.insert("grad_norm_initial".into(), st.gnorm);
        }
        let lr = self.schedule.rate(self.params.lr, state.iteration);
        st.opt.set_lr(lr)?;
        let mk = st.prob.m * st.prob.k;
        {
            let (u, v) = st.theta.split_at_mut(mk);
            let (gu, gv) = st.grad.split_at(mk);
            st.opt.step(&mut [u, v], &[gu, gv])?;
        }
        if self.params.nonnegative {
            projection::nonneg(&mut st.theta);
        }
        self.evaluate(&mut st);
        let rec = &mut state.record;
        rec.objective = Some(st.obj);
        rec.values.insert("cost".into(), st.cost);
        rec.values.insert("grad_norm".into(), st.gnorm);
        rec.values.insert("lr".into(), lr);
        if matches!(self.method, Method::GroupRmsProp { .. }) {
            rec.values.insert("group_lr".into(), st.opt.group_lr());
        }
        if self.params.record_lr {
            rec.vectors.insert("lr_u".into(), st.opt.effective_lr(0));
            rec.vectors.insert("lr_v".into(), st.opt.effective_lr(1));
        }
        if self.params.gtol > 0.0 && st.gnorm <= self.params.gtol * st.g0 {
            state.converged = true;
        }
        to_model(&st.prob, &st.theta, model);
        self.st = Some(st);
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        let p = &self.params;
        let mut h = format!("lower the learning rate (lr = {})", p.lr);
        if p.cost == Cost::Sse {
            h.push_str("; with cost = sse the gradient grows with the number of entries, try cost = mse");
        }
        if matches!(self.method, Method::Sgd | Method::Momentum { .. }) {
            h.push_str("; or use an adaptive optimizer (adam, adagrad)");
        }
        h
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        let st = self.st.as_ref().ok_or_else(|| Error::invalid("gd: no state to save"))?;
        let mut b = pack(&[&st.theta], &[st.g0]);
        b.extend_from_slice(&st.opt.to_bytes());
        Ok(b)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let st = self.st.as_mut().ok_or_else(|| Error::invalid("gd: load_state before init"))?;
        let bad = || Error::invalid("gd: the checkpoint's solver state is damaged");
        let (parts, sc, rest) = unpack(bytes).ok_or_else(bad)?;
        let theta = parts.into_iter().next().ok_or_else(bad)?;
        ensure!(theta.len() == st.theta.len(), "gd: the checkpoint is for a different problem size");
        let opt = st.opt.resumed_from(Optimizer::from_bytes(rest)?)?;
        st.theta = theta;
        st.g0 = *sc.first().ok_or_else(bad)?;
        st.opt = opt;
        st.fresh = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{dense, synth};
    use crate::metrics::{self, Predict};
    use crate::observe::{History, StopAfter};
    use crate::solve::{BLOW_UP, Executor};

    fn blog() -> Ratings {
        dense::ratings_from_masked(&synth::blog_matrix()).unwrap()
    }

    /// The gradient the solver uses, against central differences of the
    /// objective it reports, for every cost, with reg and centering.
    #[test]
    fn gradient_matches_finite_differences_for_every_cost() {
        let data = blog();
        for cost in [Cost::Sse, Cost::Mse, Cost::Rmse] {
            let p = GradientDescent { rank: 2, cost, reg: 0.05, center: true, init_scale: 0.7, ..Default::default() };
            let mut s = p.check().unwrap();
            s.init(&data, &mut crate::rng::rng(1)).unwrap();
            let mut st = s.st.take().unwrap();
            s.evaluate(&mut st);
            let g = st.grad.clone();
            let h = 1e-6;
            for i in 0..st.theta.len() {
                let mut a = st.clone();
                a.theta[i] += h;
                s.evaluate(&mut a);
                let mut b = st.clone();
                b.theta[i] -= h;
                s.evaluate(&mut b);
                let fd = (a.obj - b.obj) / (2.0 * h);
                assert!((fd - g[i]).abs() < 1e-6 * (1.0 + g[i].abs()), "{cost:?} {i}: {fd} vs {}", g[i]);
            }
        }
    }

    #[test]
    fn recovers_a_planted_low_rank_matrix() {
        // 30x30 rank 2, 400 observed (of 900): Adam on the MSE fits the
        // observed entries and the held-out truth to within a few percent
        let pc = synth::planted_completion(30, 2, 400, 3).unwrap();
        let p = GradientDescent { rank: 2, lr: 0.02, init_scale: 0.3, ..Default::default() };
        let fit = Executor::new(p.check().unwrap(), &pc.observed).max_iters(3000).seed(4).run().unwrap();
        let rel = metrics::relative_error(&fit.model, &pc.truth);
        assert!(rel < 0.02, "relative error {rel}");
        let g: Vec<f64> = fit.history.iter().map(|r| r.get("grad_norm").unwrap()).collect();
        assert!(g.last().unwrap() < &(1e-2 * fit.history[0].get("grad_norm_initial").unwrap()));
    }

    /// The blog's printed initial values (numpy seed 0): `W` (4x2) and
    /// `V = H^T` (3x2), row-major.
    pub(crate) fn blog_init() -> (Vec<f64>, Vec<f64>) {
        let h = [[-8.82026173, -2.00078604, -4.89368992], [-11.204466, -9.33778995, -4.8863894]];
        let w = vec![0.95008842, 0.15135721, 0.10321885, 0.4105985, 0.14404357, 1.45427351, 0.76103773, 0.12167502];
        (w, (0..3).flat_map(|j| [h[0][j], h[1][j]]).collect())
    }

    #[test]
    fn adagrad_blog_run_completes_the_matrix() {
        // seed 004: rank 2, RMSE cost, Adagrad lr 0.1, the blog's poor init,
        // 2000 iterations
        let data = blog();
        let p = GradientDescent {
            rank: 2,
            lr: 0.1,
            optimizer: "adagrad".into(),
            cost: Cost::Rmse,
            init: Init::Blog,
            record_lr: true,
            ..Default::default()
        };
        let (w, v) = blog_init();
        let mut s = p.clone().check().unwrap().with_initial_factors(&w, &v);
        s.init(&data, &mut crate::rng::rng(0)).unwrap();
        let mut st = s.st.take().unwrap();
        s.evaluate(&mut st);
        // the blog prints cost(param_init) = 11.651268820608442 (its inputs are
        // printed to 8 decimals)
        assert!((st.cost - 11.651268820608442).abs() < 1e-6, "{}", st.cost);
        let s = p.clone().check().unwrap().with_initial_factors(&w, &v);
        let fit = Executor::new(s, &data).max_iters(2000).run().unwrap();
        let last = fit.history.last().unwrap();
        // 11 observations, 10 degrees of freedom of a rank-2 4x3 matrix: the
        // cost cannot reach 0; it plateaus below 0.1
        assert!(last.get("cost").unwrap() < 0.1, "final rmse {}", last.get("cost").unwrap());
        let expect = [[5.0, 4.0, 5.0], [4.0, 4.0, 5.0], [5.0, 3.0, 4.0], [2.0, 3.0, 3.0]];
        for (i, row) in expect.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                assert_eq!(fit.model.predict(i, j).round(), x, "({i}, {j})");
            }
        }
        // learning rates: one per parameter, positive and shrinking (Adagrad's
        // running sums only grow)
        assert_eq!(last.vectors["lr_u"].len(), 8);
        assert_eq!(last.vectors["lr_v"].len(), 6);
        for key in ["lr_u", "lr_v"] {
            let a = &fit.history[9].vectors[key];
            let b = &last.vectors[key];
            assert!(a.iter().zip(b).all(|(x, y)| *y > 0.0 && y <= x), "{key}");
        }
        // our own seeded draw of the same poor init also completes the matrix
        let fit = Executor::new(p.check().unwrap(), &data).max_iters(2000).seed(0).run().unwrap();
        assert_eq!(fit.model.predict(0, 0).round(), 5.0);
        assert!(fit.history.last().unwrap().get("cost").unwrap() < 0.1);
    }

    #[test]
    fn nonnegative_keeps_factors_in_the_orthant() {
        let data = blog();
        let p = GradientDescent { rank: 2, lr: 0.05, nonnegative: true, init: Init::Blog, ..Default::default() };
        let fit = Executor::new(p.check().unwrap(), &data).max_iters(500).run().unwrap();
        assert!(fit.model.u.iter().chain(&fit.model.v).all(|&x| x >= 0.0));
        assert!(metrics::rmse(&fit.model, &data) < 0.5);
    }

    #[test]
    fn deterministic_and_resumable() {
        let pc = synth::planted_completion(20, 2, 150, 5).unwrap();
        let p = GradientDescent { rank: 2, optimizer: "group_rmsprop".into(), lr: 0.01, ..Default::default() };
        let a = Executor::new(p.clone().check().unwrap(), &pc.observed).max_iters(30).seed(2).threads(1).run().unwrap();
        let b = Executor::new(p.clone().check().unwrap(), &pc.observed).max_iters(30).seed(2).threads(2).run().unwrap();
        assert_eq!(a.model.u, b.model.u);
        // stop at 12, resume to 30: identical to the straight run
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("gd.ckpt");
        let h = History::default();
        let _ = Executor::new(p.clone().check().unwrap(), &pc.observed)
            .max_iters(30)
            .seed(2)
            .checkpoint(&ck, 4)
            .observer(StopAfter(12))
            .observer(h.clone())
            .run()
            .unwrap();
        let c = Executor::new(p.check().unwrap(), &pc.observed)
            .max_iters(30)
            .seed(2)
            .checkpoint(&ck, 4)
            .resume(true)
            .run()
            .unwrap();
        assert_eq!(c.iterations, 30);
        assert_eq!(a.model.u, c.model.u);
        assert_eq!(a.history.last().unwrap().objective, c.history.last().unwrap().objective);
    }

    #[test]
    fn bad_settings_are_rejected_before_work() {
        let bad = [
            GradientDescent { rank: 0, ..Default::default() },
            GradientDescent { lr: -1.0, ..Default::default() },
            GradientDescent { reg: -0.1, ..Default::default() },
            GradientDescent { optimizer: "adamw".into(), ..Default::default() },
            GradientDescent { optimizer: "sgd".into(), beta1: Some(0.9), ..Default::default() },
            GradientDescent { beta2: Some(1.0), ..Default::default() },
            GradientDescent { schedule: "cosin".into(), ..Default::default() },
            GradientDescent { init_scale: 0.0, ..Default::default() },
        ];
        for p in bad {
            assert!(p.clone().check().is_err(), "{p:?}");
        }
        let s = GradientDescent { rank: 4, ..Default::default() }.check().unwrap();
        assert!(s.check_data(&blog()).is_err());
    }

    #[test]
    fn divergence_is_reported_with_a_hint() {
        let data = blog();
        let p = GradientDescent {
            rank: 2,
            lr: 10.0,
            optimizer: "sgd".into(),
            cost: Cost::Sse,
            init_scale: 1.0,
            ..Default::default()
        };
        let err = Executor::new(p.clone().check().unwrap(), &data).max_iters(200).run().unwrap_err();
        let msg = err.to_string();
        // the loss passes 1e8 times its start before it overflows
        let Error::BlewUp { iteration, from, to, .. } = err else { panic!("{msg}") };
        assert!(iteration <= 10 && to > BLOW_UP * from && msg.contains("cost = mse"), "{msg}");
        // a finite but exploding loss is caught too (the run used to end "successfully" at 1e35)
        let q = GradientDescent { rank: 2, lr: 1e10, optimizer: "sgd".into(), ..Default::default() };
        let err = Executor::new(q.check().unwrap(), &data).max_iters(50).run().unwrap_err();
        assert!(matches!(err, Error::BlewUp { iteration: 1, .. }), "{err}");
        // a start at an exact fit (objective ~1e-30) is not a baseline for blow-ups:
        // Adam's first steps (about lr each) raise the loss far more than 1e8-fold,
        // yet stay tiny against the data's scale (the zero model's cost)
        let (u, v) = ([1.1, 2.3, -1.7, 0.3], [2.9, -1.3, 3.7]);
        let full: Vec<(usize, usize, f64)> = (0..4).flat_map(|i| (0..3).map(move |j| (i, j, u[i] * v[j]))).collect();
        let exact = Ratings::new(
            4,
            3,
            full.iter().map(|e| e.0 as u32).collect(),
            full.iter().map(|e| e.1 as u32).collect(),
            full.iter().map(|e| e.2 as f32).collect(),
        )
        .unwrap();
        let p = GradientDescent { rank: 1, lr: 1e-3, optimizer: "adam".into(), center: false, ..Default::default() };
        let mut probe = p.clone().check().unwrap().with_initial_factors(&u, &v);
        probe.init(&exact, &mut crate::rng::rng(0)).unwrap();
        let mut st = probe.st.take().unwrap();
        probe.evaluate(&mut st);
        let start = st.obj; // the data rounded to f32 against the f64 products
        assert!(start > 0.0 && start < 1e-12, "{start}");
        let s = p.check().unwrap().with_initial_factors(&u, &v);
        let fit = Executor::new(s, &exact).max_iters(20).run().unwrap();
        assert!(fit.history.iter().any(|r| r.objective.unwrap() > BLOW_UP * start), "{start}");
    }
}
