//! Fitted models: [`FactorModel`] (U, V, biases, global mean) serves every
//! matrix solver; [`DenseModel`] holds a full matrix for methods whose iterate
//! is not factored (nuclear-norm methods, deep products).

mod dense_model;
mod factor;
mod persist;

pub use dense_model::DenseModel;
pub use factor::FactorModel;
pub use persist::{FORMAT_VERSION, ModelFile, load_any};

/// What every model must offer the executor: finiteness checks (divergence
/// guard) and a byte serialization (checkpoints).
pub trait ModelState: Clone + Send + Sync + Sized {
    /// True when every stored number is finite.
    fn is_finite(&self) -> bool;
    /// Serialize for a checkpoint.
    fn to_bytes(&self) -> crate::Result<Vec<u8>>;
    /// Restore from [`ModelState::to_bytes`].
    fn from_bytes(bytes: &[u8]) -> crate::Result<Self>;
}
