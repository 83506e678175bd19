//! The data model: observed entries ([`Ratings`]), id maps ([`IdMap`]),
//! masked dense matrices ([`dense`]), 3-way tensors ([`Tensor3`]), splits
//! ([`split`]) and synthetic problems ([`synth`]).

pub mod dense;
mod idmap;
mod ratings;
pub mod split;
pub mod synth;
mod tensor;

pub use idmap::IdMap;
pub use ratings::{Compressed, Ratings};
pub use tensor::Tensor3;
