//! Projections onto constraint sets (work in progress).
