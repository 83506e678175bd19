//! `FactorModel`: `X[i, j] = mu + b_i + c_j + U_i . V_j`.

use faer::Mat;
use faer::linalg::solvers::Solve;
use rayon::prelude::*;
use serde_json::Value;

use super::ModelState;
use crate::data::IdMap;
use crate::error::{Error, Result, ensure};
use crate::metrics::Predict;

/// A factorization `X[i, j] = global_mean + row_bias[i] + col_bias[j] +
/// U[i, :] . V[j, :]`, with the external ids of rows and columns.
///
/// Factors are stored as contiguous f32 rows (`u[i * rank .. (i + 1) * rank]`);
/// predictions accumulate in f64. Solvers only produce factors: prediction,
/// recommendation, similarity, fold-in and persistence are written once here.
#[derive(Clone, Debug, PartialEq)]
pub struct FactorModel {
    /// Rank (number of latent factors).
    pub rank: usize,
    /// Row factors, `nrows x rank`, row-major.
    pub u: Vec<f32>,
    /// Column factors, `ncols x rank`, row-major.
    pub v: Vec<f32>,
    /// Row (user) biases, if the model has them.
    pub row_bias: Option<Vec<f32>>,
    /// Column (item) biases, if the model has them.
    pub col_bias: Option<Vec<f32>>,
    /// Global offset (0 when unused).
    pub global_mean: f64,
    /// External ids of the rows.
    pub row_ids: IdMap,
    /// External ids of the columns.
    pub col_ids: IdMap,
    /// Name of the solver that produced the model.
    pub solver: String,
    /// The solver's parameters (for the record).
    pub params: Value,
    /// The range the fit clipped the predictions it scored to (the training
    /// values' `(min, max)`; the rating algorithms do), so that `lowrank
    /// eval` scores the saved model as the fit did; `None`: no clipping.
    /// [`Predict::predict`] does not apply it.
    pub clip: Option<(f64, f64)>,
    /// The prediction the fit's scoring gave an entry whose row or column
    /// it had not seen (the training mean); `None`: `global_mean`.
    pub unseen_value: Option<f64>,
}

impl FactorModel {
    /// A model with all-zero factors of the given shape and rank.
    pub fn zeros(nrows: usize, ncols: usize, rank: usize) -> Self {
        FactorModel {
            rank,
            u: vec![0.0; nrows * rank],
            v: vec![0.0; ncols * rank],
            row_bias: None,
            col_bias: None,
            global_mean: 0.0,
            row_ids: IdMap::identity(nrows),
            col_ids: IdMap::identity(ncols),
            solver: String::new(),
            params: Value::Null,
            clip: None,
            unseen_value: None,
        }
    }

    /// Build from dense f64 factors (`U` is `m x k`, `V` is `n x k`).
    pub fn from_dense(u: &Mat<f64>, v: &Mat<f64>) -> Self {
        assert_eq!(u.ncols(), v.ncols(), "U and V must have the same number of columns");
        let k = u.ncols();
        let mut m = FactorModel::zeros(u.nrows(), v.nrows(), k);
        for i in 0..u.nrows() {
            for t in 0..k {
                m.u[i * k + t] = u[(i, t)] as f32;
            }
        }
        for j in 0..v.nrows() {
            for t in 0..k {
                m.v[j * k + t] = v[(j, t)] as f32;
            }
        }
        m
    }

    /// Number of rows (users).
    pub fn nrows(&self) -> usize {
        self.u.len().checked_div(self.rank).unwrap_or(self.row_ids.len())
    }
    /// Number of columns (items).
    pub fn ncols(&self) -> usize {
        self.v.len().checked_div(self.rank).unwrap_or(self.col_ids.len())
    }
    /// Factor row `i` of `U`.
    #[inline]
    pub fn user(&self, i: usize) -> &[f32] {
        &self.u[i * self.rank..(i + 1) * self.rank]
    }
    /// Factor row `j` of `V`.
    #[inline]
    pub fn item(&self, j: usize) -> &[f32] {
        &self.v[j * self.rank..(j + 1) * self.rank]
    }

    /// `U` as a dense f64 matrix.
    pub fn u_dense(&self) -> Mat<f64> {
        let k = self.rank;
        Mat::from_fn(self.nrows(), k, |i, t| self.u[i * k + t] as f64)
    }
    /// `V` as a dense f64 matrix.
    pub fn v_dense(&self) -> Mat<f64> {
        let k = self.rank;
        Mat::from_fn(self.ncols(), k, |j, t| self.v[j * k + t] as f64)
    }

    /// Bias part of entry `(i, j)`.
    #[inline]
    fn offset(&self, i: usize, j: usize) -> f64 {
        self.global_mean
            + self.row_bias.as_ref().map_or(0.0, |b| b[i] as f64)
            + self.col_bias.as_ref().map_or(0.0, |b| b[j] as f64)
    }

    /// Predictions for many `(row, col)` pairs, in parallel.
    pub fn predict_many(&self, pairs: &[(usize, usize)]) -> Vec<f64> {
        pairs.par_iter().map(|&(i, j)| self.predict(i, j)).collect()
    }

    /// Predict by external ids; `None` when either id is unknown.
    pub fn predict_ids(&self, row: &str, col: &str) -> Option<f64> {
        Some(self.predict(self.row_ids.get(row)? as usize, self.col_ids.get(col)? as usize))
    }

    /// Scores of every column for row `i` (`mu + b_i + c_j + U_i . V_j`).
    pub fn scores(&self, i: usize) -> Vec<f64> {
        self.scores_for(self.user(i), self.row_bias.as_ref().map_or(0.0, |b| b[i] as f64))
    }

    fn scores_for(&self, x: &[f32], row_bias: f64) -> Vec<f64> {
        (0..self.ncols())
            .into_par_iter()
            .with_min_len(1024)
            .map(|j| {
                self.global_mean + row_bias + self.col_bias.as_ref().map_or(0.0, |b| b[j] as f64) + dot(x, self.item(j))
            })
            .collect()
    }

    /// The `n` best columns for row `i`, excluding the columns in `exclude`
    /// (e.g. the items the user already rated), best first, ties by index.
    pub fn recommend(&self, i: usize, n: usize, exclude: &[u32]) -> Vec<(u32, f64)> {
        top_n(self.scores(i), n, exclude)
    }

    /// The `n` best columns for a factor vector `x` (e.g. from [`Self::fold_in`]).
    pub fn recommend_vector(&self, x: &[f32], row_bias: f64, n: usize, exclude: &[u32]) -> Vec<(u32, f64)> {
        top_n(self.scores_for(x, row_bias), n, exclude)
    }

    /// The `n` columns most similar to column `j` by cosine similarity of
    /// their factors (excluding `j` itself).
    pub fn similar_items(&self, j: usize, n: usize) -> Vec<(u32, f64)> {
        let q = self.item(j);
        let qn = norm(q);
        let sims: Vec<f64> = (0..self.ncols())
            .into_par_iter()
            .map(|c| {
                let d = norm(self.item(c)) * qn;
                if d > 0.0 { dot(q, self.item(c)) / d } else { 0.0 }
            })
            .collect();
        top_n(sims, n, &[j as u32])
    }

    /// Factors (and bias, when the model has row biases) of a new row from its
    /// observed `(col, value)` pairs, by ridge regression with penalty `reg`
    /// on the fixed column factors.
    pub fn fold_in(&self, observed: &[(usize, f64)], reg: f64) -> Result<(Vec<f32>, f64)> {
        ensure!(!observed.is_empty(), "fold-in needs at least one observed value");
        ensure!(reg >= 0.0 && reg.is_finite(), "the fold-in regularization must be a finite number >= 0, got {reg}");
        let k = self.rank;
        let with_bias = self.row_bias.is_some();
        let d = k + with_bias as usize;
        let mut a = Mat::<f64>::zeros(d, d);
        let mut b = Mat::<f64>::zeros(d, 1);
        let mut x = vec![0.0; d];
        for &(j, r) in observed {
            ensure!(j < self.ncols(), "column {j} is outside the model ({} columns)", self.ncols());
            let target = r - self.global_mean - self.col_bias.as_ref().map_or(0.0, |c| c[j] as f64);
            for t in 0..k {
                x[t] = self.v[j * k + t] as f64;
            }
            if with_bias {
                x[k] = 1.0;
            }
            for p in 0..d {
                b[(p, 0)] += x[p] * target;
                for q in 0..d {
                    a[(p, q)] += x[p] * x[q];
                }
            }
        }
        for p in 0..d {
            a[(p, p)] += reg.max(1e-9);
        }
        let sol = a
            .llt(faer::Side::Lower)
            .map_err(|_| Error::Numerical("fold-in system is not positive definite".into()))?
            .solve(&b);
        let f: Vec<f32> = (0..k).map(|t| sol[(t, 0)] as f32).collect();
        Ok((f, if with_bias { sol[(k, 0)] } else { 0.0 }))
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

fn norm(a: &[f32]) -> f64 {
    dot(a, a).sqrt()
}

/// Indices of the `n` largest scores not in `exclude`, best first.
pub(crate) fn top_n(scores: Vec<f64>, n: usize, exclude: &[u32]) -> Vec<(u32, f64)> {
    let ex: std::collections::HashSet<u32> = exclude.iter().copied().collect();
    let mut cand: Vec<(u32, f64)> = scores
        .into_iter()
        .enumerate()
        .filter(|(j, s)| !ex.contains(&(*j as u32)) && !s.is_nan())
        .map(|(j, s)| (j as u32, s))
        .collect();
    let cmp = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if n < cand.len() {
        cand.select_nth_unstable_by(n, cmp);
        cand.truncate(n);
    }
    cand.sort_by(cmp);
    cand
}

impl Predict for FactorModel {
    #[inline]
    fn predict(&self, i: usize, j: usize) -> f64 {
        self.offset(i, j) + dot(self.user(i), self.item(j))
    }
    fn shape(&self) -> (usize, usize) {
        (self.nrows(), self.ncols())
    }
}

impl ModelState for FactorModel {
    fn is_finite(&self) -> bool {
        self.u.iter().chain(&self.v).all(|x| x.is_finite())
            && self.row_bias.iter().flatten().chain(self.col_bias.iter().flatten()).all(|x| x.is_finite())
            && self.global_mean.is_finite()
    }
    fn data_dims(&self) -> Vec<usize> {
        vec![self.nrows(), self.ncols()]
    }
    fn sizes(&self) -> Vec<usize> {
        vec![self.rank, self.row_bias.is_some() as usize, self.col_bias.is_some() as usize]
    }
    fn to_bytes(&self) -> Result<Vec<u8>> {
        super::persist::factor_to_bytes(self)
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        match super::persist::from_bytes(bytes, "checkpoint")? {
            super::ModelFile::Factor(m) => Ok(m),
            _ => Err(Error::invalid("checkpoint does not hold a factor model")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> FactorModel {
        let u = faer::mat![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let v = faer::mat![[1.0, 2.0], [3.0, 0.0], [0.5, 0.5], [-1.0, 0.0]];
        FactorModel::from_dense(&u, &v)
    }

    #[test]
    fn predict_and_recommend() {
        let mut m = model();
        assert_eq!(m.predict(2, 0), 3.0);
        m.global_mean = 1.0;
        m.col_bias = Some(vec![0.0, 0.0, 0.0, 10.0]);
        assert_eq!(m.predict(0, 3), 10.0);
        let r = m.recommend(0, 2, &[3]);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 0]);
    }

    #[test]
    fn similar_items_cosine() {
        let m = model();
        // item 2 (0.5, 0.5) is closest in angle to item 0 (1, 2)
        let s = m.similar_items(2, 1);
        assert_eq!(s[0].0, 0);
    }

    #[test]
    fn fold_in_recovers_exact_factors() {
        let m = model();
        // a user with factors (2, -1): ratings on all 4 items
        let obs: Vec<(usize, f64)> = (0..4).map(|j| (j, 2.0 * m.item(j)[0] as f64 - m.item(j)[1] as f64)).collect();
        let (x, _) = m.fold_in(&obs, 1e-9).unwrap();
        assert!((x[0] - 2.0).abs() < 1e-4 && (x[1] + 1.0).abs() < 1e-4);
    }
}
