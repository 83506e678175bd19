//! `Tensor3`: a dense 3-way tensor with an optional mask of observed entries.

use crate::error::{Result, ensure};

/// A dense `d0 x d1 x d2` tensor in C order (last index fastest), with an
/// optional mask (`true` = observed). Missing entries hold 0 in `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor3 {
    dims: [usize; 3],
    data: Vec<f64>,
    mask: Option<Vec<bool>>,
}

impl Tensor3 {
    /// A fully observed tensor. Errors on a length mismatch or non-finite data.
    pub fn new(dims: [usize; 3], data: Vec<f64>) -> Result<Self> {
        ensure!(dims.iter().all(|&d| d > 0), "tensor dimensions must be positive, got {dims:?}");
        ensure!(
            data.len() == dims[0] * dims[1] * dims[2],
            "tensor of shape {dims:?} needs {} values, got {}",
            dims[0] * dims[1] * dims[2],
            data.len()
        );
        if let Some(p) = data.iter().position(|v| !v.is_finite()) {
            return Err(crate::Error::invalid(format!("tensor entry {:?} is not finite", Self::unravel(dims, p))));
        }
        Ok(Tensor3 { dims, data, mask: None })
    }

    /// A tensor where NaN marks a missing entry (infinite values are errors;
    /// at least one entry must be observed).
    pub fn from_nan_masked(dims: [usize; 3], mut data: Vec<f64>) -> Result<Self> {
        ensure!(dims.iter().all(|&d| d > 0), "tensor dimensions must be positive, got {dims:?}");
        ensure!(
            data.len() == dims[0] * dims[1] * dims[2],
            "tensor of shape {dims:?} needs {} values, got {}",
            dims[0] * dims[1] * dims[2],
            data.len()
        );
        let mut mask = vec![true; data.len()];
        let mut any_missing = false;
        for (p, v) in data.iter_mut().enumerate() {
            if v.is_nan() {
                mask[p] = false;
                *v = 0.0;
                any_missing = true;
            } else if !v.is_finite() {
                return Err(crate::Error::invalid(format!("tensor entry {:?} is infinite", Self::unravel(dims, p))));
            }
        }
        ensure!(mask.iter().any(|&m| m), "the tensor has no observed entry");
        Ok(Tensor3 { dims, data, mask: any_missing.then_some(mask) })
    }

    /// Attach a mask (`true` = observed); missing entries are zeroed.
    pub fn with_mask(mut self, mask: Vec<bool>) -> Result<Self> {
        ensure!(mask.len() == self.data.len(), "mask length does not match the tensor");
        ensure!(mask.iter().any(|&m| m), "the tensor has no observed entry");
        for (v, &m) in self.data.iter_mut().zip(&mask) {
            if !m {
                *v = 0.0;
            }
        }
        self.mask = if mask.iter().all(|&m| m) { None } else { Some(mask) };
        Ok(self)
    }

    fn unravel(dims: [usize; 3], p: usize) -> [usize; 3] {
        [p / (dims[1] * dims[2]), (p / dims[2]) % dims[1], p % dims[2]]
    }

    /// The three dimensions.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    /// Values in C order (missing entries are 0).
    pub fn data(&self) -> &[f64] {
        &self.data
    }
    /// The mask, if some entries are missing.
    pub fn mask(&self) -> Option<&[bool]> {
        self.mask.as_deref()
    }
    /// Linear index of `(i, j, k)`.
    #[inline]
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        (i * self.dims[1] + j) * self.dims[2] + k
    }
    /// Value at `(i, j, k)`.
    #[inline]
    pub fn get(&self, i: usize, j: usize, k: usize) -> f64 {
        self.data[self.index(i, j, k)]
    }
    /// Whether `(i, j, k)` is observed.
    #[inline]
    pub fn observed(&self, i: usize, j: usize, k: usize) -> bool {
        self.mask.as_ref().is_none_or(|m| m[self.index(i, j, k)])
    }
    /// Number of observed entries.
    pub fn n_observed(&self) -> usize {
        self.mask.as_ref().map_or(self.data.len(), |m| m.iter().filter(|&&b| b).count())
    }
    /// Frobenius norm over the observed entries.
    pub fn norm(&self) -> f64 {
        self.data.iter().map(|v| v * v).sum::<f64>().sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexing_and_masks() {
        let t = Tensor3::new([2, 3, 4], (0..24).map(f64::from).collect()).unwrap();
        assert_eq!(t.get(1, 2, 3), 23.0);
        assert_eq!(t.get(1, 0, 0), 12.0);
        let mut d: Vec<f64> = (0..24).map(f64::from).collect();
        d[5] = f64::NAN;
        let t = Tensor3::from_nan_masked([2, 3, 4], d).unwrap();
        assert!(!t.observed(0, 1, 1));
        assert_eq!(t.n_observed(), 23);
        assert!(Tensor3::new([2, 2, 2], vec![0.0; 7]).is_err());
        assert!(Tensor3::from_nan_masked([1, 1, 1], vec![f64::NAN]).is_err());
        assert!(Tensor3::new([0, 2, 2], vec![]).is_err());
    }
}
