//! Optimization layer (work in progress): optimizers, step-size schedules,
//! line searches, projections and generic drivers.
