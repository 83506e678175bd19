//! `DenseModel`: a full `m x n` matrix iterate.

use faer::Mat;

use super::ModelState;
use crate::data::IdMap;
use crate::error::{Error, Result};
use crate::metrics::Predict;

/// A dense matrix model, for methods whose iterate is a full matrix (nuclear
/// norm methods, deep products). Convert to a [`super::FactorModel`] with
/// [`DenseModel::to_factors`] to serve recommendations.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseModel {
    /// The matrix.
    pub x: Mat<f64>,
    /// The external ids of its rows and columns, when it was fit to ratings
    /// read with ids (`lowrank eval` then matches entries by id, as for a
    /// factor model); `None`: indexed by position.
    pub ids: Option<(IdMap, IdMap)>,
    /// The prediction the fit's scoring gave an entry whose row or column it
    /// had not seen (the training mean), with `ids`.
    pub unseen_value: Option<f64>,
}

impl DenseModel {
    /// A model indexed by position.
    pub fn new(x: Mat<f64>) -> DenseModel {
        DenseModel { x, ids: None, unseen_value: None }
    }

    /// This model labelled with the ids of `train` (the ratings it was fit
    /// to) and its mean as the prediction for unseen ids.
    pub fn labelled(self, train: &crate::data::Ratings) -> DenseModel {
        DenseModel {
            ids: Some((train.row_ids.clone(), train.col_ids.clone())),
            unseen_value: Some(train.mean()),
            ..self
        }
    }

    /// Rank-`k` factor model of the matrix by truncated SVD (`U S^1/2`, `V S^1/2`).
    pub fn to_factors(&self, k: usize) -> Result<super::FactorModel> {
        let svd = self.x.thin_svd().map_err(|e| Error::Numerical(format!("SVD failed: {e:?}")))?;
        let k = k.min(self.x.nrows()).min(self.x.ncols());
        let s = svd.S().column_vector();
        let u = Mat::from_fn(self.x.nrows(), k, |i, t| svd.U()[(i, t)] * s[t].sqrt());
        let v = Mat::from_fn(self.x.ncols(), k, |j, t| svd.V()[(j, t)] * s[t].sqrt());
        Ok(super::FactorModel::from_dense(&u, &v))
    }
}

impl Predict for DenseModel {
    fn predict(&self, i: usize, j: usize) -> f64 {
        self.x[(i, j)]
    }
    fn shape(&self) -> (usize, usize) {
        (self.x.nrows(), self.x.ncols())
    }
    fn to_dense(&self) -> Mat<f64> {
        self.x.clone()
    }
}

impl ModelState for DenseModel {
    fn is_finite(&self) -> bool {
        (0..self.x.ncols()).all(|j| (0..self.x.nrows()).all(|i| self.x[(i, j)].is_finite()))
    }
    fn data_dims(&self) -> Vec<usize> {
        vec![self.x.nrows(), self.x.ncols()]
    }
    fn sizes(&self) -> Vec<usize> {
        Vec::new()
    }
    fn to_bytes(&self) -> Result<Vec<u8>> {
        super::persist::dense_to_bytes(self)
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        match super::persist::from_bytes(bytes, "checkpoint")? {
            super::ModelFile::Dense(m) => Ok(m),
            _ => Err(Error::invalid("checkpoint does not hold a dense model")),
        }
    }
}
