//! Fitted models: [`FactorModel`] (U, V, biases, global mean) serves every
//! matrix solver; [`DenseModel`] holds a full matrix for methods whose iterate
//! is not factored (nuclear-norm methods, deep products).

mod dense_model;
mod factor;
pub(crate) mod persist;

pub use dense_model::DenseModel;
pub use factor::FactorModel;
pub use persist::{FORMAT_VERSION, ModelFile, load_any};

/// What every model must offer the executor: finiteness checks (divergence
/// guard) and a byte serialization (checkpoints).
pub trait ModelState: Clone + Send + Sync + Sized {
    /// True when every stored number is finite.
    fn is_finite(&self) -> bool;
    /// The dimensions of the data the model fits (`[m, n]`, `[d0, d1, d2]`):
    /// a checkpoint resumes only on data of these dimensions.
    fn data_dims(&self) -> Vec<usize>;
    /// What else sizes the model (rank, hidden widths, which biases are
    /// fitted): a checkpoint of a fixed-size solver resumes only with
    /// settings that give the same sizes.
    fn sizes(&self) -> Vec<usize>;
    /// Serialize for a checkpoint.
    fn to_bytes(&self) -> crate::Result<Vec<u8>>;
    /// Restore from [`ModelState::to_bytes`].
    fn from_bytes(bytes: &[u8]) -> crate::Result<Self>;
}
