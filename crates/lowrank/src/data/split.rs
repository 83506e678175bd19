//! Deterministic train/test splits of [`Ratings`].
//!
//! Every split keeps the full shape and the id maps of the input, so models
//! trained on the train part predict the test part directly.

use super::Ratings;
use crate::error::{Result, ensure};
use crate::rng;

/// Random holdout: each entry goes to test with probability about
/// `test_fraction` (exactly `round(test_fraction * n)` entries go to test).
pub fn holdout(r: &Ratings, test_fraction: f64, seed: u64) -> Result<(Ratings, Ratings)> {
    Ok(parts(r, &holdout_mask(r.len(), test_fraction, seed)?))
}

/// Which of `n` entries [`holdout`] puts in test.
pub fn holdout_mask(n: usize, test_fraction: f64, seed: u64) -> Result<Vec<bool>> {
    ensure!(test_fraction > 0.0 && test_fraction < 1.0, "the test fraction must be in (0, 1), got {test_fraction}");
    let mut perm: Vec<usize> = (0..n).collect();
    rng::shuffle(&mut rng::rng(seed), &mut perm);
    let ntest = (test_fraction * n as f64).round() as usize;
    let mut is_test = vec![false; n];
    for &e in &perm[..ntest] {
        is_test[e] = true;
    }
    Ok(is_test)
}

/// Leave-k-out: for every row with more than `k` entries, `k` random entries
/// go to test (rows with `k` or fewer entries stay entirely in train).
pub fn leave_k_out(r: &Ratings, k: usize, seed: u64) -> Result<(Ratings, Ratings)> {
    Ok(parts(r, &leave_k_out_mask(r, k, seed)?))
}

/// Which entries [`leave_k_out`] puts in test.
pub fn leave_k_out_mask(r: &Ratings, k: usize, seed: u64) -> Result<Vec<bool>> {
    ensure!(k > 0, "k must be at least 1");
    let csr = r.csr();
    let mut g = rng::rng(seed);
    let mut is_test = vec![false; r.len()];
    for u in 0..r.nrows() {
        let (a, b) = (csr.indptr[u], csr.indptr[u + 1]);
        if b - a <= k {
            continue;
        }
        let mut lane: Vec<u32> = csr.entry[a..b].to_vec();
        rng::shuffle(&mut g, &mut lane);
        for &e in &lane[..k] {
            is_test[e as usize] = true;
        }
    }
    Ok(is_test)
}

/// K-fold: a random partition into `folds` parts; returns `(train, test)` for
/// each fold, the test parts being disjoint and covering every entry.
pub fn k_fold(r: &Ratings, folds: usize, seed: u64) -> Result<Vec<(Ratings, Ratings)>> {
    let fold_of = k_fold_assignment(r.len(), folds, seed)?;
    Ok((0..folds)
        .map(|f| {
            let is_test: Vec<bool> = fold_of.iter().map(|&g| g == f).collect();
            parts(r, &is_test)
        })
        .collect())
}

/// The fold of each of `n` entries in [`k_fold`].
pub fn k_fold_assignment(n: usize, folds: usize, seed: u64) -> Result<Vec<usize>> {
    ensure!(folds >= 2, "k-fold needs at least 2 folds, got {folds}");
    ensure!(folds <= n, "{folds} folds but only {n} entries");
    let mut perm: Vec<usize> = (0..n).collect();
    rng::shuffle(&mut rng::rng(seed), &mut perm);
    let mut fold_of = vec![0usize; n];
    for (p, &e) in perm.iter().enumerate() {
        fold_of[e] = p % folds;
    }
    Ok(fold_of)
}

/// `(train, test)` of a test mask, entries in their original order.
fn parts(r: &Ratings, is_test: &[bool]) -> (Ratings, Ratings) {
    let test: Vec<usize> = (0..r.len()).filter(|&e| is_test[e]).collect();
    let train: Vec<usize> = (0..r.len()).filter(|&e| !is_test[e]).collect();
    (r.subset(&train), r.subset(&test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(m: usize, n: usize) -> Ratings {
        let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
        for i in 0..m {
            for j in 0..n {
                rows.push(i as u32);
                cols.push(j as u32);
                vals.push((i * n + j) as f32);
            }
        }
        Ratings::new(m, n, rows, cols, vals).unwrap()
    }

    #[test]
    fn holdout_is_a_partition_and_deterministic() {
        let r = grid(10, 10);
        let (tr, te) = holdout(&r, 0.2, 7).unwrap();
        assert_eq!((tr.len(), te.len()), (80, 20));
        let (tr2, te2) = holdout(&r, 0.2, 7).unwrap();
        assert_eq!(te.values(), te2.values());
        assert_eq!(tr.values(), tr2.values());
        let mut all: Vec<f32> = tr.values().iter().chain(te.values()).copied().collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, (0..100).map(|v| v as f32).collect::<Vec<_>>());
        let (_, te3) = holdout(&r, 0.2, 8).unwrap();
        assert_ne!(te.values(), te3.values());
    }

    #[test]
    fn leave_k_out_per_row() {
        let r = grid(5, 6);
        let (tr, te) = leave_k_out(&r, 2, 1).unwrap();
        assert_eq!(te.row_counts(), vec![2; 5]);
        assert_eq!(tr.row_counts(), vec![4; 5]);
    }

    #[test]
    fn k_fold_partition() {
        let r = grid(4, 5);
        let folds = k_fold(&r, 3, 3).unwrap();
        let total: usize = folds.iter().map(|(_, te)| te.len()).sum();
        assert_eq!(total, 20);
        for (tr, te) in &folds {
            assert_eq!(tr.len() + te.len(), 20);
        }
    }
}
