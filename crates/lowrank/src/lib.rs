//! lowrank: low-rank matrix and tensor factorization and matrix completion.
//!
//! The vocabulary:
//! - [`Ratings`]: the observed entries of a partially observed matrix
//!   (triplets, CSR/CSC views on demand, external ids in [`IdMap`]s);
//!   [`data::dense`] converts NaN-masked dense matrices; [`Tensor3`] holds
//!   3-way data.
//! - [`io`]: readers (MovieLens, delimited triplets, Matrix Market, dense
//!   CSV/TSV, `.npy`, gzip) and writers; [`io::load`] detects the format.
//! - [`solve`]: the [`solve::Solver`] contract (init + step) and the
//!   [`solve::Executor`] that runs every solver with observers, early stopping,
//!   a divergence guard and checkpoints; [`solve::registry`] runs algorithms
//!   by name.
//! - [`model::FactorModel`]: predict, recommend, similar items, fold-in,
//!   save/load (safetensors).
//! - [`metrics`]: RMSE, MAE, relative error, ranking metrics.
//!
//! ```
//! use lowrank::data::synth;
//! use lowrank::solve::{Executor, baseline::Baseline};
//! use lowrank::metrics;
//!
//! let problem = synth::planted_completion(30, 2, 400, 7)?;
//! let fit = Executor::new(Baseline::default().check()?, &problem.observed)
//!     .max_iters(5)
//!     .run()?;
//! let err = metrics::rmse(&fit.model, &problem.observed);
//! assert!(err.is_finite());
//! # Ok::<(), lowrank::Error>(())
//! ```

pub mod data;
pub mod error;
pub mod io;
mod mem;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod optim;
pub mod rng;
mod simd;
pub mod solve;
pub mod team;

pub use data::{IdMap, Ratings, Tensor3};
pub use error::{Error, Result};
pub use model::FactorModel;
pub use simd::warm_up;
