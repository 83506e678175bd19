//! Experiments over lowrank: layered TOML configs ([`config`]), validated fit
//! plans ([`plan`]).
//!
//! `lowrank fit --config X.toml` and `lowrank run --config X.toml` read the
//! same file: a flat table of `lowrank fit` flag names plus the algorithm's own
//! settings.

pub mod config;
pub mod plan;
pub mod plot;

pub use config::RawConfig;
pub use plan::FitPlan;
