//! (work in progress)

use super::registry::AlgoEntry;

/// Algorithms of this family, registered by name.
pub static ALGOS: &[AlgoEntry] = &[];
