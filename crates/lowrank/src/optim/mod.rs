//! Optimization layer: optimizers, step-size schedules, line searches,
//! projections and generic drivers.

pub mod projection;
