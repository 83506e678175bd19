//! Accuracy metrics: RMSE/MAE on observed entries, MSE and relative Frobenius
//! error against a dense ground truth, and top-k ranking metrics.

use faer::Mat;
use rayon::prelude::*;

use crate::data::Ratings;

/// Anything that predicts entry `(i, j)` of an `nrows x ncols` matrix.
pub trait Predict: Sync {
    /// Predicted value of entry `(i, j)`.
    fn predict(&self, i: usize, j: usize) -> f64;
    /// Shape of the predicted matrix.
    fn shape(&self) -> (usize, usize);
    /// The full predicted matrix (dense).
    fn to_dense(&self) -> Mat<f64> {
        let (m, n) = self.shape();
        Mat::from_fn(m, n, |i, j| self.predict(i, j))
    }
}

impl Predict for Mat<f64> {
    fn predict(&self, i: usize, j: usize) -> f64 {
        self[(i, j)]
    }
    fn shape(&self) -> (usize, usize) {
        (self.nrows(), self.ncols())
    }
    fn to_dense(&self) -> Mat<f64> {
        self.clone()
    }
}

/// Predictions clipped to a range (e.g. the 1..5 star scale).
pub struct Clipped<'a, P: Predict + ?Sized> {
    /// The model.
    pub model: &'a P,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

impl<P: Predict + ?Sized> Predict for Clipped<'_, P> {
    fn predict(&self, i: usize, j: usize) -> f64 {
        self.model.predict(i, j).clamp(self.lo, self.hi)
    }
    fn shape(&self) -> (usize, usize) {
        self.model.shape()
    }
}

/// Sum of squared and absolute errors over `data` (parallel, f64).
fn errors<P: Predict + ?Sized>(model: &P, data: &Ratings) -> (f64, f64) {
    let (rows, cols, vals) = (data.rows(), data.cols(), data.values());
    (0..data.len())
        .into_par_iter()
        .with_min_len(4096)
        .map(|k| {
            let e = model.predict(rows[k] as usize, cols[k] as usize) - vals[k] as f64;
            (e * e, e.abs())
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Root mean squared error over the entries of `data` (NaN when empty).
pub fn rmse<P: Predict + ?Sized>(model: &P, data: &Ratings) -> f64 {
    (errors(model, data).0 / data.len() as f64).sqrt()
}

/// Mean absolute error over the entries of `data` (NaN when empty).
pub fn mae<P: Predict + ?Sized>(model: &P, data: &Ratings) -> f64 {
    errors(model, data).1 / data.len() as f64
}

/// Mean squared error over all entries of a dense ground truth.
pub fn mse_dense<P: Predict + ?Sized>(model: &P, truth: &Mat<f64>) -> f64 {
    let (m, n) = (truth.nrows(), truth.ncols());
    let s: f64 = (0..m)
        .into_par_iter()
        .map(|i| (0..n).map(|j| (model.predict(i, j) - truth[(i, j)]).powi(2)).sum::<f64>())
        .sum();
    s / (m * n) as f64
}

/// `||X - W||_F / ||W||_F` over all entries of the ground truth `W`.
pub fn relative_error<P: Predict + ?Sized>(model: &P, truth: &Mat<f64>) -> f64 {
    let (m, n) = (truth.nrows(), truth.ncols());
    let num = mse_dense(model, truth) * (m * n) as f64;
    num.sqrt() / truth.norm_l2()
}

/// Top-k ranking quality of a recommender on held-out positives.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RankingMetrics {
    /// `implicit`'s precision@k: total hits / total `min(k, positives)`.
    pub precision: f64,
    /// Mean over users of hits / k.
    pub precision_plain: f64,
    /// Mean over users of hits / positives.
    pub recall: f64,
    /// Mean NDCG@k with binary gains.
    pub ndcg: f64,
    /// Number of users evaluated (with at least one held-out positive).
    pub users: usize,
}

/// Ranking metrics at `k`, given for each user the recommended list (already
/// excluding training items) and the held-out relevant items.
pub fn ranking_metrics(recommended: &[Vec<u32>], relevant: &[Vec<u32>], k: usize) -> RankingMetrics {
    let mut hits_total = 0.0;
    let mut denom_total = 0.0;
    let (mut pp, mut rec, mut ndcg) = (0.0, 0.0, 0.0);
    let mut users = 0usize;
    for (recs, rel) in recommended.iter().zip(relevant) {
        if rel.is_empty() {
            continue;
        }
        users += 1;
        let relset: std::collections::HashSet<u32> = rel.iter().copied().collect();
        let mut hits = 0.0;
        let mut dcg = 0.0;
        for (pos, item) in recs.iter().take(k).enumerate() {
            if relset.contains(item) {
                hits += 1.0;
                dcg += 1.0 / ((pos + 2) as f64).log2();
            }
        }
        let ideal: f64 = (0..k.min(rel.len())).map(|p| 1.0 / ((p + 2) as f64).log2()).sum();
        hits_total += hits;
        denom_total += k.min(rel.len()) as f64;
        pp += hits / k as f64;
        rec += hits / rel.len() as f64;
        ndcg += dcg / ideal;
    }
    if users == 0 {
        return RankingMetrics::default();
    }
    let u = users as f64;
    RankingMetrics {
        precision: hits_total / denom_total,
        precision_plain: pp / u,
        recall: rec / u,
        ndcg: ndcg / u,
        users,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmse_mae_by_hand() {
        let truth = faer::mat![[1.0, 2.0], [3.0, 4.0]];
        let obs = Ratings::new(2, 2, vec![0, 1], vec![0, 1], vec![2.0, 2.0]).unwrap();
        // errors: -1 and +2
        assert!((rmse(&truth, &obs) - (2.5f64).sqrt()).abs() < 1e-12);
        assert!((mae(&truth, &obs) - 1.5).abs() < 1e-12);
        let zero = Mat::<f64>::zeros(2, 2);
        assert!((relative_error(&zero, &truth) - 1.0).abs() < 1e-12);
        assert!((mse_dense(&zero, &truth) - 7.5).abs() < 1e-12);
    }

    #[test]
    fn ranking_by_hand() {
        // user 0: hits at positions 0 and 2 of 3 relevant; user 1: none relevant
        let recs = vec![vec![5, 6, 7], vec![1, 2, 3]];
        let rel = vec![vec![5, 7, 9], vec![]];
        let m = ranking_metrics(&recs, &rel, 3);
        assert_eq!(m.users, 1);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!((m.ndcg - dcg / idcg).abs() < 1e-12);
    }
}
