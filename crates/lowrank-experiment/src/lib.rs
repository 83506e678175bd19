//! Experiments over lowrank: layered TOML configs ([`config`]), validated fit
//! plans ([`plan`]).
//!
//! `lowrank fit --config X.toml` and `lowrank run --config X.toml` read the
//! same file: a flat table of `lowrank fit` flag names plus the algorithm's own
//! settings.
//!
//! ```
//! use lowrank_experiment::{FitPlan, RawConfig};
//!
//! let raw = RawConfig::layered(&[] as &[&str], &[
//!     "algo=baseline".to_string(),
//!     "problem=planted".to_string(),
//!     "problem_n=20".to_string(),
//!     "reg_user=5".to_string(),
//! ])?;
//! let plan = FitPlan::resolve(&raw)?;
//! assert_eq!(plan.algo, "baseline");
//! assert_eq!(plan.params["reg_user"], serde_json::json!(5));
//! # Ok::<(), lowrank::Error>(())
//! ```

pub mod config;
pub mod plan;
pub mod plot;

pub use config::RawConfig;
pub use plan::FitPlan;
