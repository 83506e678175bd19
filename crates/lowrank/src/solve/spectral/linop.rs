//! Linear operators applied to blocks of vectors, never formed.
//!
//! [`LinOp`] is what the randomized SVD, the power method and the spectral
//! completion solvers need from a matrix: `A X` and `A^T Y` for thin blocks
//! `X`, `Y`. Implementations:
//! - dense matrices ([`Mat<f64>`], [`DenseOp`]);
//! - [`SparseOp`]: the observed entries of a [`Ratings`] (CSR for `A X`, CSC
//!   for `A^T Y`), with any values aligned to the triplets (e.g. residuals, or
//!   ratings minus their mean, missing = 0);
//! - [`SparsePlusLowRank`]: `S + U V^T` with `S` sparse, the matrix
//!   `P_Omega(X - Z) + Z` of SoftImpute, in `O(nnz b + (m + n) r b)` per
//!   product.
//!
//! Sparse products run in parallel over rows (columns) of the output, each
//! written by one task, so results do not depend on the thread count.

use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

use crate::data::Compressed;
use crate::data::Ratings;

/// A matrix seen only through products with blocks of vectors.
pub trait LinOp: Sync {
    /// `(nrows, ncols)`.
    fn shape(&self) -> (usize, usize);
    /// `A X` (`X` is `ncols x b`).
    fn apply(&self, x: MatRef<'_, f64>) -> Mat<f64>;
    /// `A^T Y` (`Y` is `nrows x b`).
    fn apply_t(&self, y: MatRef<'_, f64>) -> Mat<f64>;
    /// `||A||_F^2` when cheap to know.
    fn frob_sq(&self) -> Option<f64> {
        None
    }
}

/// The parallelism faer should use here (the current rayon pool's size).
pub(crate) fn par() -> Par {
    Par::rayon(rayon::current_num_threads())
}

/// Multiply-adds below which a dense kernel runs on the calling thread:
/// rayon's fork-join costs tens of microseconds, more than it saves on
/// small blocks (`cargo bench --bench spectral`: a 100 x 30 thin QR in a
/// two-thread pool ~100 us through faer's global parallelism, ~62 us on
/// the calling thread; nuclear-min's randomized-SVD start on a 100 x 100
/// problem, a dozen such QRs and products: 6.7-18.8 ms against 1.8-2.0 ms).
pub(crate) const SEQUENTIAL_BELOW: usize = 1 << 21;

/// [`par`] for a dense kernel of `m n k` multiply-adds (a product, or a
/// factorization of an `m x n` matrix with `k = min(m, n)`): sequential
/// below [`SEQUENTIAL_BELOW`]. (`deep`'s `kernels::par_for` is the same
/// rule with the threshold measured for its products.)
pub(crate) fn par_for(m: usize, n: usize, k: usize) -> Par {
    if (m as f64) * (n as f64) * (k as f64) < SEQUENTIAL_BELOW as f64 { Par::Seq } else { par() }
}

/// `a * b` with [`par_for`] its size.
pub(crate) fn mul(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    faer::linalg::matmul::matmul(&mut out, Accum::Replace, a, b, 1.0, par_for(a.nrows(), a.ncols(), b.ncols()));
    out
}

/// `out += alpha * a * b` with [`par_for`] its size.
pub(crate) fn mul_add(out: &mut Mat<f64>, a: MatRef<'_, f64>, b: MatRef<'_, f64>, alpha: f64) {
    faer::linalg::matmul::matmul(out, Accum::Add, a, b, alpha, par_for(a.nrows(), a.ncols(), b.ncols()));
}

/// A borrowed dense matrix as an operator.
#[derive(Clone, Copy, Debug)]
pub struct DenseOp<'a>(pub MatRef<'a, f64>);

impl LinOp for DenseOp<'_> {
    fn shape(&self) -> (usize, usize) {
        (self.0.nrows(), self.0.ncols())
    }
    fn apply(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        mul(self.0, x)
    }
    fn apply_t(&self, y: MatRef<'_, f64>) -> Mat<f64> {
        mul(self.0.transpose(), y)
    }
    fn frob_sq(&self) -> Option<f64> {
        Some(self.0.squared_norm_l2())
    }
}

impl LinOp for Mat<f64> {
    fn shape(&self) -> (usize, usize) {
        (self.nrows(), self.ncols())
    }
    fn apply(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        mul(self.as_ref(), x)
    }
    fn apply_t(&self, y: MatRef<'_, f64>) -> Mat<f64> {
        mul(self.as_ref().transpose(), y)
    }
    fn frob_sq(&self) -> Option<f64> {
        Some(self.squared_norm_l2())
    }
}

/// Row-major copy of a block (`rows x b`).
fn to_row_major(x: MatRef<'_, f64>) -> Vec<f64> {
    let b = x.ncols();
    let mut out = vec![0.0; x.nrows() * b];
    for t in 0..b {
        let col = x.col(t);
        for i in 0..x.nrows() {
            out[i * b + t] = col[i];
        }
    }
    out
}

fn from_row_major(v: &[f64], rows: usize, b: usize) -> Mat<f64> {
    Mat::from_fn(rows, b, |i, t| v[i * b + t])
}

/// `out[o, :] = sum_k vals[k] * x[indices[k], :]` over the lanes of a
/// compressed view (row-major blocks of width `b`).
fn spmm(c: &Compressed, vals: &[f64], x: &[f64], b: usize) -> Vec<f64> {
    let outer = c.outer_len();
    let mut out = vec![0.0; outer * b];
    if b == 0 {
        return out;
    }
    let one_row = |(o, row): (usize, &mut [f64])| {
        let lane = c.indptr[o]..c.indptr[o + 1];
        let (idx, v) = (&c.indices[lane.clone()], &vals[lane]);
        #[cfg(target_arch = "x86_64")]
        if crate::simd::has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { spmm_row_avx2(row, idx, v, x) };
            return;
        }
        spmm_row(row, idx, v, x);
    };
    // below ~a quarter million multiply-adds the threads cost more than
    // they save (a 100 x 100 matrix with 5000 entries and 30 columns:
    // 0.1 ms of work)
    if c.indices.len() * b < SPMM_PARALLEL_MIN {
        out.chunks_mut(b).enumerate().for_each(one_row);
    } else {
        out.par_chunks_mut(b).with_min_len(64).enumerate().for_each(one_row);
    }
    out
}

/// Multiply-adds below which [`spmm`] runs on the calling thread.
const SPMM_PARALLEL_MIN: usize = 1 << 18;

/// One output row of [`spmm`]: `row += sum_k v[k] x[idx[k], :]`.
#[inline(always)]
fn spmm_row(row: &mut [f64], idx: &[u32], v: &[f64], x: &[f64]) {
    let b = row.len();
    for (&q, &w) in idx.iter().zip(v) {
        let src = &x[q as usize * b..][..b];
        for (r, s) in row.iter_mut().zip(src) {
            *r += w * s;
        }
    }
}

/// [`spmm_row`] in 256-bit vectors (separate multiply and add, as the
/// portable version: the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn spmm_row_avx2(row: &mut [f64], idx: &[u32], v: &[f64], x: &[f64]) {
    spmm_row(row, idx, v, x)
}

/// The observed entries of a [`Ratings`] as a sparse matrix (missing = 0),
/// with values of one's choosing.
#[derive(Clone, Debug)]
pub struct SparseOp<'a> {
    m: usize,
    n: usize,
    csr: &'a Compressed,
    csc: &'a Compressed,
    csr_vals: Vec<f64>,
    csc_vals: Vec<f64>,
}

impl<'a> SparseOp<'a> {
    /// The ratings' values minus `shift` (0 for the raw matrix, the mean for
    /// the centred matrix of scikit-learn's `TruncatedSVD` peer).
    pub fn new(r: &'a Ratings, shift: f64) -> Self {
        let vals: Vec<f64> = r.values().iter().map(|&v| v as f64 - shift).collect();
        Self::with_values(r, &vals)
    }

    /// Sparsity pattern of `r`, values `vals[e]` for triplet `e`.
    pub fn with_values(r: &'a Ratings, vals: &[f64]) -> Self {
        let (csr, csc) = (r.csr(), r.csc());
        let csr_vals = csr.entry.iter().map(|&e| vals[e as usize]).collect();
        let csc_vals = csc.entry.iter().map(|&e| vals[e as usize]).collect();
        SparseOp { m: r.nrows(), n: r.ncols(), csr, csc, csr_vals, csc_vals }
    }

    /// Replace the values (aligned to the triplets), keeping the pattern.
    pub fn set_values(&mut self, vals: &[f64]) {
        for (d, &e) in self.csr_vals.iter_mut().zip(&self.csr.entry) {
            *d = vals[e as usize];
        }
        for (d, &e) in self.csc_vals.iter_mut().zip(&self.csc.entry) {
            *d = vals[e as usize];
        }
    }
}

impl LinOp for SparseOp<'_> {
    fn shape(&self) -> (usize, usize) {
        (self.m, self.n)
    }
    fn apply(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        let b = x.ncols();
        let out = spmm(self.csr, &self.csr_vals, &to_row_major(x), b);
        from_row_major(&out, self.m, b)
    }
    fn apply_t(&self, y: MatRef<'_, f64>) -> Mat<f64> {
        let b = y.ncols();
        let out = spmm(self.csc, &self.csc_vals, &to_row_major(y), b);
        from_row_major(&out, self.n, b)
    }
    fn frob_sq(&self) -> Option<f64> {
        Some(self.csr_vals.iter().map(|v| v * v).sum())
    }
}

/// `S + U V^T`: a sparse matrix plus a low-rank one, never formed.
pub struct SparsePlusLowRank<'a, S: LinOp> {
    /// The sparse part.
    pub sparse: &'a S,
    /// Left factor, `m x r`.
    pub u: MatRef<'a, f64>,
    /// Right factor, `n x r`.
    pub v: MatRef<'a, f64>,
}

impl<S: LinOp> LinOp for SparsePlusLowRank<'_, S> {
    fn shape(&self) -> (usize, usize) {
        self.sparse.shape()
    }
    fn apply(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        let mut out = self.sparse.apply(x);
        if self.u.ncols() > 0 {
            let vtx = mul(self.v.transpose(), x);
            mul_add(&mut out, self.u, vtx.as_ref(), 1.0);
        }
        out
    }
    fn apply_t(&self, y: MatRef<'_, f64>) -> Mat<f64> {
        let mut out = self.sparse.apply_t(y);
        if self.u.ncols() > 0 {
            let uty = mul(self.u.transpose(), y);
            mul_add(&mut out, self.v, uty.as_ref(), 1.0);
        }
        out
    }
}

/// `(U V^T)[i, j]` for the listed entries (`U` is `m x r`, `V` is `n x r`),
/// in parallel, deterministic.
pub fn low_rank_at(u: MatRef<'_, f64>, v: MatRef<'_, f64>, rows: &[u32], cols: &[u32]) -> Vec<f64> {
    let r = u.ncols();
    let ur = to_row_major(u);
    let vr = to_row_major(v);
    rows.par_iter()
        .zip(cols.par_iter())
        .with_min_len(1024)
        .map(|(&i, &j)| {
            let a = &ur[i as usize * r..][..r];
            let b = &vr[j as usize * r..][..r];
            crate::optim::optimizer::dot_lanes(a, b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dense::masked_dense;
    use crate::rng;

    fn randm(seed: u64, m: usize, n: usize) -> Mat<f64> {
        let mut g = rng::rng(seed);
        Mat::from_fn(m, n, |_, _| rng::normal(&mut g))
    }

    #[test]
    fn sparse_and_low_rank_products_match_dense() {
        let p = crate::data::synth::planted_completion_rect(13, 9, 2, 50, 3).unwrap();
        let mut dense = masked_dense(&p.observed);
        for j in 0..9 {
            for i in 0..13 {
                if dense[(i, j)].is_nan() {
                    dense[(i, j)] = 0.0;
                }
            }
        }
        let s = SparseOp::new(&p.observed, 0.0);
        let x = randm(1, 9, 4);
        let y = randm(2, 13, 3);
        assert!((s.apply(x.as_ref()) - &dense * &x).norm_max() < 1e-5);
        assert!((s.apply_t(y.as_ref()) - dense.transpose() * &y).norm_max() < 1e-5);
        let u = randm(3, 13, 2);
        let v = randm(4, 9, 2);
        let op = SparsePlusLowRank { sparse: &s, u: u.as_ref(), v: v.as_ref() };
        let full = &dense + &u * v.transpose();
        assert!((op.apply(x.as_ref()) - &full * &x).norm_max() < 1e-5);
        assert!((op.apply_t(y.as_ref()) - full.transpose() * &y).norm_max() < 1e-5);
        let at = low_rank_at(u.as_ref(), v.as_ref(), p.observed.rows(), p.observed.cols());
        let uv = &u * v.transpose();
        for (k, (i, j, _)) in p.observed.iter().enumerate() {
            assert!((at[k] - uv[(i, j)]).abs() < 1e-12);
        }
    }
}
