//! Coordinate text tensors `i j k value` (work in progress).
