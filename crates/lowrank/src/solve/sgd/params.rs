//! Settings of `--algo sgd` and their validation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::solver::SgdSolver;
use crate::error::{Error, Result, ensure};

/// How the learning rate evolves.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// `lr` at every epoch.
    Constant,
    /// `lr / (1 + decay * epoch)` (epoch 0-based).
    #[default]
    Inverse,
    /// LIBMF's per-coordinate adaptive rate (Chin, Zhuang, Juan, Lin 2015,
    /// an AdaGrad with one accumulator per factor row): row `u` steps by
    /// `lr / sqrt(G_u)` with `G_u = 1 + sum over its updates of
    /// |gradient|^2 / rank`; the biases get their own accumulators.
    Adaptive,
}

/// Distribution of the initial factors.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// `N(0, init_scale^2)` (Surprise, Funk).
    #[default]
    Normal,
    /// `U(0, 1) * init_scale` (LIBMF, with `init_scale = 1/sqrt(rank)`).
    Uniform,
}

/// Biased matrix factorization by stochastic gradient descent (`--algo sgd`):
/// `r_ui ~ mu + b_u + b_i + p_u . q_i`, each observed entry minimizing
/// `1/2 e^2 + reg/2 (|p_u|^2 + |q_i|^2) + reg_bias/2 (b_u^2 + b_i^2)` with
/// `e = r_ui - prediction` (Funk 2006; Koren, Bell, Volinsky 2009), so
/// `p_u += lr (e q_i - reg p_u)`, `q_i += lr (e p_u - reg q_i)` (both with the
/// old values), `b_u += lr_bias (e - reg_bias b_u)`.
///
/// The defaults are the `movielens` preset: tuned on the mean of the five
/// canonical MovieLens-100k folds (`u1`..`u5`), checked on the 90/10 split
/// (see `bench/RESULTS.md`). `preset = "libmf"` gives LIBMF's defaults (no
/// biases, adaptive rate, uniform init) for side-by-side runs, and
/// `preset = "funk"` Surprise's `SVD` defaults.
///
/// Parallel epochs follow FPSGD (Zhuang et al. 2013) with a fixed schedule:
/// the (randomly relabelled) matrix is cut into a `grid x grid` array of
/// blocks; an epoch is `grid` sub-epochs, each running `grid` blocks that
/// share no row and no column in parallel. The result depends on the seed
/// and the grid only, so the same seed and thread count give the same model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Sgd {
    /// Rank (number of latent factors).
    pub rank: usize,
    /// Base learning rate of the factors.
    pub lr: f64,
    /// Learning rate of the biases (`None`: same as `lr`).
    pub lr_bias: Option<f64>,
    /// L2 penalty on the factors, per update.
    pub reg: f64,
    /// L2 penalty on the biases, per update.
    pub reg_bias: f64,
    /// Learn the global mean and user/item biases (false: plain `P Q^T`, as LIBMF).
    pub biases: bool,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Decay of the `inverse` schedule.
    pub decay: f64,
    /// Initial factor distribution.
    pub init: Init,
    /// Scale of the initial factors (`None`: `1/sqrt(rank)`).
    pub init_scale: Option<f64>,
    /// Project the factors onto `>= 0` after every update (non-negative MF).
    pub nonneg: bool,
    /// Blocks per side of the schedule grid (0: `max(8, 2 * threads)`).
    pub grid: usize,
    /// A named preset the other settings start from (`movielens`, `libmf`, `funk`).
    pub preset: Option<String>,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd::movielens()
    }
}

/// Names of the settings `--algo sgd` understands.
pub const SGD_KEYS: &[&str] = &[
    "rank",
    "lr",
    "lr_bias",
    "reg",
    "reg_bias",
    "biases",
    "schedule",
    "decay",
    "init",
    "init_scale",
    "nonneg",
    "grid",
    "preset",
];

/// Default number of epochs of `--algo sgd`.
pub const SGD_EPOCHS: usize = 100;

impl Sgd {
    /// The default: biased MF tuned on the mean of the five MovieLens-100k
    /// folds (rank 128, lr 0.02 with `1/(1 + 0.1 t)` decay, bias lr 0.005,
    /// reg 0.09, bias reg 0.02, `N(0, 0.02^2)` init, 100 epochs): fold mean
    /// test RMSE 0.907, 90/10 split 0.891. The small init matters (0.1 gives
    /// 0.912).
    pub fn movielens() -> Sgd {
        Sgd {
            rank: 128,
            lr: 0.02,
            lr_bias: Some(0.005),
            reg: 0.09,
            reg_bias: 0.02,
            biases: true,
            schedule: LrSchedule::Inverse,
            decay: 0.1,
            init: Init::Normal,
            init_scale: Some(0.02),
            nonneg: false,
            grid: 0,
            preset: None,
        }
    }

    /// LIBMF's defaults (`mf-train`: k 8... the Python binding's 50, eta 0.1,
    /// lambda 0.05, adaptive rate, `U(0, 1) / sqrt(k)` init, no biases).
    pub fn libmf() -> Sgd {
        Sgd {
            rank: 50,
            lr: 0.1,
            lr_bias: None,
            reg: 0.05,
            reg_bias: 0.0,
            biases: false,
            schedule: LrSchedule::Adaptive,
            decay: 0.0,
            init: Init::Uniform,
            init_scale: None,
            nonneg: false,
            grid: 0,
            preset: Some("libmf".into()),
        }
    }

    /// Surprise's `SVD` defaults (100 factors, lr 0.005, reg 0.02, `N(0, 0.1^2)`).
    pub fn funk() -> Sgd {
        Sgd {
            rank: 100,
            lr: 0.005,
            lr_bias: None,
            reg: 0.02,
            reg_bias: 0.02,
            biases: true,
            schedule: LrSchedule::Constant,
            decay: 0.0,
            init: Init::Normal,
            init_scale: Some(0.1),
            nonneg: false,
            grid: 0,
            preset: Some("funk".into()),
        }
    }

    /// A preset by name.
    pub fn preset(name: &str) -> Result<Sgd> {
        let mut p = match name {
            "movielens" | "default" => Sgd::movielens(),
            "libmf" => Sgd::libmf(),
            "funk" | "surprise" => Sgd::funk(),
            other => {
                return Err(Error::Config(format!(
                    "unknown sgd preset '{other}'{}; presets: movielens, libmf, funk",
                    crate::solve::registry::did_you_mean(other, &["movielens", "libmf", "funk"])
                )));
            }
        };
        p.preset = Some(name.to_string());
        Ok(p)
    }

    /// Settings from a JSON map: the preset named by `preset` (default
    /// `movielens`), overridden by every other key given.
    pub fn from_map(params: &Map<String, Value>) -> Result<Sgd> {
        crate::solve::registry::parse_params::<Sgd>("sgd", params, SGD_KEYS)?;
        let base = match params.get("preset") {
            None | Some(Value::Null) => Sgd::movielens(),
            Some(Value::String(s)) => Sgd::preset(s)?,
            Some(v) => return Err(Error::Config(format!("'sgd': preset must be a string, got {v}"))),
        };
        let mut merged = match serde_json::to_value(&base) {
            Ok(Value::Object(m)) => m,
            _ => unreachable!("Sgd serializes to an object"),
        };
        for (k, v) in params {
            merged.insert(k.clone(), v.clone());
        }
        crate::solve::registry::parse_params("sgd", &merged, SGD_KEYS)
    }

    /// The bias learning rate.
    pub fn bias_lr(&self) -> f64 {
        self.lr_bias.unwrap_or(self.lr)
    }

    /// The initial factor scale.
    pub fn scale(&self) -> f64 {
        self.init_scale.unwrap_or(1.0 / (self.rank.max(1) as f64).sqrt())
    }

    /// Validate everything that does not depend on the data (the rank
    /// against the shape is checked by [`crate::solve::Solver::init`]).
    pub fn validate(&self) -> Result<()> {
        let pos = |x: f64| x > 0.0 && x.is_finite();
        let nonneg = |x: f64| x >= 0.0 && x.is_finite();
        ensure!(self.rank >= 1, "rank must be at least 1");
        ensure!(self.rank <= 65_536, "rank {} is too large (at most 65536)", self.rank);
        ensure!(pos(self.lr), "lr must be a positive number, got {}", self.lr);
        if let Some(b) = self.lr_bias {
            ensure!(pos(b), "lr_bias must be a positive number, got {b}");
        }
        ensure!(nonneg(self.reg), "reg must be >= 0, got {}", self.reg);
        ensure!(nonneg(self.reg_bias), "reg_bias must be >= 0, got {}", self.reg_bias);
        ensure!(nonneg(self.decay), "decay must be >= 0, got {}", self.decay);
        ensure!(nonneg(self.scale()), "init_scale must be >= 0, got {}", self.scale());
        ensure!(self.grid <= 4096, "grid {} is too large (at most 4096 blocks per side)", self.grid);
        Ok(())
    }

    /// Validate into a solver.
    pub fn check(self) -> Result<SgdSolver> {
        self.validate()?;
        Ok(SgdSolver::new(self))
    }
}
