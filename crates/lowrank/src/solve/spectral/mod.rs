//! Spectral and convex methods: truncated and randomized SVD over linear
//! operators, SoftImpute, SVT, hard impute, projected gradient on the
//! nuclear-norm ball, Frank-Wolfe, exact nuclear-norm minimization and NMF.

pub mod linop;
pub mod nucmin;
pub mod svd;

use super::registry::AlgoEntry;

pub use svd::{RsvdOptions, Svd, SvdParams};

/// Algorithms of this family, registered by name.
pub static ALGOS: &[AlgoEntry] = &[];
