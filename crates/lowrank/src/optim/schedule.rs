//! Step-size schedules: the learning rate of step `t` (0-based) from a base
//! rate.

use serde::{Deserialize, Serialize};

use crate::error::{Result, ensure};

/// A step-size schedule. `rate(base, t)` is the rate of the `t`-th step
/// (0-based); every schedule starts at `base`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// `base` at every step.
    #[default]
    Constant,
    /// `base * gamma^floor(t / every)` (PyTorch `StepLR`).
    Step {
        /// Steps between decays (> 0).
        every: usize,
        /// Factor in `(0, 1]`.
        gamma: f64,
    },
    /// `base * gamma^t` (PyTorch `ExponentialLR`).
    Exponential {
        /// Factor in `(0, 1]`.
        gamma: f64,
    },
    /// `base / (1 + decay t)`: the classic `1/t` schedule of stochastic
    /// approximation.
    InverseTime {
        /// Decay (>= 0).
        decay: f64,
    },
    /// `base / sqrt(1 + t)`: the step size of subgradient methods and online
    /// convex optimization.
    InverseSqrt,
    /// Cosine annealing from `base` to `min` over `total` steps, then `min`.
    Cosine {
        /// Steps of the half period (> 0).
        total: usize,
        /// Final rate (>= 0).
        min: f64,
    },
}

impl Schedule {
    /// Reject impossible settings.
    pub fn check(&self) -> Result<()> {
        match *self {
            Schedule::Constant | Schedule::InverseSqrt => {}
            Schedule::Step { every, gamma } => {
                ensure!(every > 0, "a step schedule needs every > 0");
                ensure!(gamma > 0.0 && gamma <= 1.0, "the schedule factor gamma must be in (0, 1], got {gamma}");
            }
            Schedule::Exponential { gamma } => {
                ensure!(gamma > 0.0 && gamma <= 1.0, "the schedule factor gamma must be in (0, 1], got {gamma}")
            }
            Schedule::InverseTime { decay } => {
                ensure!(decay >= 0.0 && decay.is_finite(), "the decay must be >= 0, got {decay}")
            }
            Schedule::Cosine { total, min } => {
                ensure!(total > 0, "a cosine schedule needs total > 0");
                ensure!(min >= 0.0 && min.is_finite(), "the final rate must be >= 0, got {min}");
            }
        }
        Ok(())
    }

    /// The rate of step `t` (0-based).
    pub fn rate(&self, base: f64, t: usize) -> f64 {
        let tf = t as f64;
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((t / every.max(1)) as i32),
            Schedule::Exponential { gamma } => base * gamma.powf(tf),
            Schedule::InverseTime { decay } => base / (1.0 + decay * tf),
            Schedule::InverseSqrt => base / (1.0 + tf).sqrt(),
            Schedule::Cosine { total, min } => {
                if t >= total {
                    min
                } else {
                    min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * tf / total as f64).cos())
                }
            }
        }
    }

    /// The first `n` rates: the `steps` list of the source material's drivers.
    pub fn rates(&self, base: f64, n: usize) -> Vec<f64> {
        (0..n).map(|t| self.rate(base, t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_by_hand() {
        assert_eq!(Schedule::Constant.rates(0.5, 3), vec![0.5; 3]);
        assert_eq!(Schedule::Step { every: 2, gamma: 0.5 }.rates(1.0, 5), vec![1.0, 1.0, 0.5, 0.5, 0.25]);
        assert_eq!(Schedule::Exponential { gamma: 0.5 }.rates(1.0, 3), vec![1.0, 0.5, 0.25]);
        assert_eq!(Schedule::InverseTime { decay: 1.0 }.rates(1.0, 3), vec![1.0, 0.5, 1.0 / 3.0]);
        assert_eq!(Schedule::InverseSqrt.rate(1.0, 3), 0.5);
        let c = Schedule::Cosine { total: 4, min: 0.0 };
        assert!((c.rate(1.0, 2) - 0.5).abs() < 1e-15);
        assert_eq!(c.rate(1.0, 0), 1.0);
        assert_eq!(c.rate(1.0, 9), 0.0);
    }

    #[test]
    fn bad_schedules() {
        assert!(Schedule::Step { every: 0, gamma: 0.5 }.check().is_err());
        assert!(Schedule::Exponential { gamma: 1.5 }.check().is_err());
        assert!(Schedule::InverseTime { decay: -1.0 }.check().is_err());
        assert!(Schedule::Cosine { total: 10, min: 0.0 }.check().is_ok());
    }
}
