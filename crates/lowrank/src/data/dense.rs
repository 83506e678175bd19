//! Dense matrices with NaN for missing entries, to and from [`Ratings`].

use faer::Mat;

use super::{IdMap, Ratings};
use crate::error::{Result, ensure};

/// The observed (non-NaN) entries of a dense matrix. Infinite values are an
/// error; a matrix with no observed entry is an error.
pub fn ratings_from_masked(a: &Mat<f64>) -> Result<Ratings> {
    let (m, n) = (a.nrows(), a.ncols());
    let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..m {
        for j in 0..n {
            let v = a[(i, j)];
            if v.is_nan() {
                continue;
            }
            ensure!(v.is_finite(), "entry ({i}, {j}) is infinite");
            rows.push(i as u32);
            cols.push(j as u32);
            vals.push(v as f32);
        }
    }
    ensure!(!vals.is_empty(), "the {m}x{n} matrix has no observed (non-NaN) entry");
    Ratings::with_ids(rows, cols, vals, IdMap::identity(m), IdMap::identity(n))
}

/// The observed entries of `a` where `mask` is non-zero (the lab's
/// `sgd_factorise_masked` convention: 1 = observed, 0 = missing).
pub fn ratings_from_mask(a: &Mat<f64>, mask: &Mat<f64>) -> Result<Ratings> {
    ensure!(
        a.nrows() == mask.nrows() && a.ncols() == mask.ncols(),
        "matrix is {}x{} but mask is {}x{}",
        a.nrows(),
        a.ncols(),
        mask.nrows(),
        mask.ncols()
    );
    let masked = Mat::from_fn(a.nrows(), a.ncols(), |i, j| if mask[(i, j)] != 0.0 { a[(i, j)] } else { f64::NAN });
    ratings_from_masked(&masked)
}

/// A dense `nrows x ncols` matrix with the observed values and NaN elsewhere.
pub fn masked_dense(r: &Ratings) -> Mat<f64> {
    let mut a = Mat::from_fn(r.nrows(), r.ncols(), |_, _| f64::NAN);
    for (i, j, v) in r.iter() {
        a[(i, j)] = v as f64;
    }
    a
}

/// A dense matrix with the observed values and `fill` elsewhere.
pub fn filled_dense(r: &Ratings, fill: f64) -> Mat<f64> {
    let mut a = Mat::from_fn(r.nrows(), r.ncols(), |_, _| fill);
    for (i, j, v) in r.iter() {
        a[(i, j)] = v as f64;
    }
    a
}

/// The 0/1 observation mask of `r` as a dense matrix.
pub fn mask_of(r: &Ratings) -> Mat<f64> {
    let mut m = Mat::zeros(r.nrows(), r.ncols());
    for (i, j, _) in r.iter() {
        m[(i, j)] = 1.0;
    }
    m
}

/// Every entry of a fully observed dense matrix as ratings (errors on NaN or
/// infinite entries).
pub fn ratings_from_full(a: &Mat<f64>) -> Result<Ratings> {
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            ensure!(a[(i, j)].is_finite(), "entry ({i}, {j}) is not finite");
        }
    }
    ratings_from_masked(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_nan_mask() {
        let a = faer::mat![[1.0, f64::NAN], [3.0, 4.0]];
        let r = ratings_from_masked(&a).unwrap();
        assert_eq!(r.len(), 3);
        let b = masked_dense(&r);
        assert!(b[(0, 1)].is_nan());
        assert_eq!(b[(1, 0)], 3.0);
        let all_nan = faer::mat![[f64::NAN]];
        assert!(ratings_from_masked(&all_nan).is_err());
        let inf = faer::mat![[f64::INFINITY]];
        assert!(ratings_from_masked(&inf).is_err());
    }
}
