//! Optimization layer: optimizers, step-size schedules, line searches,
//! projections and generic drivers.
//!
//! - [`Optimizer`] with [`Method`]: SGD, momentum/Nesterov, Adagrad (the blog's
//!   semantics), RMSprop, group RMSprop (deep matrix factorization), Adam, over
//!   any number of flat `f64` parameter blocks, with per-parameter effective
//!   learning rates and serializable state ([`optimizer`]).
//! - [`Schedule`]: step-size schedules (constant, step, exponential, `1/t`,
//!   `1/sqrt(t)`, cosine).
//! - [`line_search`]: Armijo backtracking, golden-section search (seed 000's
//!   `gss`), strong Wolfe; a failed search is a [`line_search::Status`], never
//!   a panic.
//! - [`drivers`]: seed 000's `gradient_descent(init, steps, grad, proj, keep)`,
//!   `conditional_gradient(init, steps, oracle, keep)` and `random_search`.
//! - [`projection`]: simplex, non-negative orthant, nuclear-norm ball.

pub mod drivers;
pub mod line_search;
pub mod optimizer;
pub mod projection;
pub mod schedule;

pub use drivers::{conditional_gradient, gradient_descent, random_search};
pub use line_search::{Armijo, LineSearch, StrongWolfe, golden_section, gss};
pub use optimizer::{Method, Optimizer};
pub use schedule::Schedule;
