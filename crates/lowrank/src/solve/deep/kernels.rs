//! Dense and sparse kernels of the deep factorizations.
//!
//! Matrices are plain column-major `Vec<f64>` buffers (contiguous, so the
//! optimizer can update them as flat blocks) viewed as faer matrices. The
//! loss gradient with respect to the end-to-end matrix is sparse for matrix
//! completion (one entry per observation), so the products with it are done
//! by hand: `G Bᵀ` and `Aᵀ G` cost `nnz · p` instead of a dense `m n p`
//! matmul. Every parallel loop writes disjoint columns and reduces in a fixed
//! order, so results depend on nothing but the inputs.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::data::Ratings;
use crate::team::Team;

/// Columns of an output matrix handled per parallel task by the sparse
/// kernels (small enough to balance 2 cores on 100 columns, large enough
/// that task overhead stays negligible).
const COLS_PER_TASK: usize = 16;

/// Sparse passes with fewer multiply-adds than this run on the calling
/// thread (the same task split, so the same results): waking a second
/// thread costs more than the ~50 µs such a pass takes.
const SPARSE_PAR_MIN: usize = 1 << 20;

/// Minimum number of tasks per parallel job for a sparse pass of `work`
/// multiply-adds.
fn min_tasks(work: usize) -> usize {
    if work < SPARSE_PAR_MIN { usize::MAX } else { 1 }
}

/// Matmul parallelism for a product of the given sizes: single-threaded
/// below ~2·10⁷ multiply-adds (a 100×100×100 product takes ~40 µs, where
/// splitting it costs more than it saves), all threads of the current pool
/// above.
pub(crate) fn par_for(m: usize, n: usize, k: usize) -> Par {
    if (m as f64) * (n as f64) * (k as f64) >= 2.0e7 && rayon::current_num_threads() > 1 {
        Par::rayon(rayon::current_num_threads())
    } else {
        Par::Seq
    }
}

/// A column-major view of `buf` as an `r x c` matrix.
pub(crate) fn view(buf: &[f64], r: usize, c: usize) -> MatRef<'_, f64> {
    MatRef::from_column_major_slice(buf, r, c)
}

/// A mutable column-major view of `buf` as an `r x c` matrix.
pub(crate) fn view_mut(buf: &mut [f64], r: usize, c: usize) -> MatMut<'_, f64> {
    MatMut::from_column_major_slice_mut(buf, r, c)
}

/// `dst = a * b` (`dst` column-major `a.nrows() x b.ncols()`).
pub(crate) fn mul_into(dst: &mut [f64], a: MatRef<'_, f64>, b: MatRef<'_, f64>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    debug_assert_eq!(k, b.nrows());
    matmul(view_mut(dst, m, n), Accum::Replace, a, b, 1.0, par_for(m, n, k));
}

/// `dst = a * b` using every thread of the pool when there is more than one
/// (for a product nothing else can run beside).
pub(crate) fn mul_into_par(dst: &mut [f64], a: MatRef<'_, f64>, b: MatRef<'_, f64>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let par = if rayon::current_num_threads() > 1 && m * n * k >= 1 << 18 {
        Par::rayon(rayon::current_num_threads())
    } else {
        Par::Seq
    };
    matmul(view_mut(dst, m, n), Accum::Replace, a, b, 1.0, par);
}

/// Transpose of an `r x c` column-major buffer into `dst` (`c x r`).
pub(crate) fn transpose_into(dst: &mut [f64], src: &[f64], r: usize, c: usize) {
    debug_assert_eq!(src.len(), r * c);
    debug_assert_eq!(dst.len(), r * c);
    // blocked to stay in cache for the large MovieLens shapes
    const B: usize = 32;
    for j0 in (0..c).step_by(B) {
        for i0 in (0..r).step_by(B) {
            for j in j0..(j0 + B).min(c) {
                for i in i0..(i0 + B).min(r) {
                    dst[i * c + j] = src[j * r + i];
                }
            }
        }
    }
}

/// A column-major buffer of a faer matrix.
pub(crate) fn to_buf(a: MatRef<'_, f64>) -> Vec<f64> {
    let (r, c) = (a.nrows(), a.ncols());
    let mut out = vec![0.0; r * c];
    for j in 0..c {
        for i in 0..r {
            out[j * r + i] = a[(i, j)];
        }
    }
    out
}

/// A faer matrix from a column-major buffer.
pub(crate) fn to_mat(buf: &[f64], r: usize, c: usize) -> Mat<f64> {
    view(buf, r, c).to_owned()
}

/// True when every value is finite: `x * 0` is `0` for finite `x` and NaN
/// otherwise, summed in 8 independent lanes (vectorizes; the executor calls
/// this on every iteration).
pub(crate) fn all_finite(x: &[f64]) -> bool {
    dispatch!(all_finite_impl(x))
}

/// The body of [`all_finite`] (compiled twice: portable and AVX2).
#[inline(always)]
fn all_finite_impl(x: &[f64]) -> bool {
    let mut acc = [0.0f64; 8];
    let c = x.chunks_exact(8);
    let rest = c.remainder();
    for v in c {
        for t in 0..8 {
            acc[t] += v[t] * 0.0;
        }
    }
    acc.iter().all(|a| *a == 0.0) && rest.iter().all(|v| v.is_finite())
}

/// Sum of squares of a buffer, in a fixed order.
pub(crate) fn sum_sq(x: &[f64]) -> f64 {
    crate::optim::optimizer::sum_sq(x)
}

/// The observed entries of an `m x n` matrix in f64, sorted by row (CSR
/// order), with a column-wise index into them, and `dL/dE` per entry.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Rows of the matrix.
    pub m: usize,
    /// Columns of the matrix.
    pub n: usize,
    rows: Vec<u32>,
    cols: Vec<u32>,
    vals: Vec<f64>,
    /// Entries `row_ptr[i]..row_ptr[i+1]` are in row `i`.
    row_ptr: Vec<usize>,
    /// `0..nnz` (the row-wise order is the storage order).
    row_ent: Vec<u32>,
    /// Entries `col_ent[col_ptr[j]..col_ptr[j+1]]` are in column `j`.
    col_ptr: Vec<usize>,
    col_ent: Vec<u32>,
    /// `dL/dE` at each observed entry (filled by the loss).
    pub(crate) grad: Vec<f64>,
}

impl Observed {
    /// From ratings (values converted to f64).
    pub fn new(r: &Ratings) -> Observed {
        let (m, n) = r.shape();
        let mut order: Vec<usize> = (0..r.len()).collect();
        let (rr, cc) = (r.rows(), r.cols());
        order.sort_by_key(|&e| (rr[e], cc[e]));
        let rows: Vec<u32> = order.iter().map(|&e| rr[e]).collect();
        let cols: Vec<u32> = order.iter().map(|&e| cc[e]).collect();
        let vals: Vec<f64> = order.iter().map(|&e| r.values()[e] as f64).collect();
        let index = |key: &[u32], len: usize| {
            let mut ptr = vec![0usize; len + 1];
            for &k in key {
                ptr[k as usize + 1] += 1;
            }
            for i in 0..len {
                ptr[i + 1] += ptr[i];
            }
            let mut next = ptr.clone();
            let mut ent = vec![0u32; key.len()];
            for (e, &k) in key.iter().enumerate() {
                ent[next[k as usize]] = e as u32;
                next[k as usize] += 1;
            }
            (ptr, ent)
        };
        let (row_ptr, row_ent) = index(&rows, m);
        let (col_ptr, col_ent) = index(&cols, n);
        let grad = vec![0.0; vals.len()];
        Observed { m, n, rows, cols, vals, row_ptr, row_ent, col_ptr, col_ent, grad }
    }

    /// Number of observed entries.
    pub fn len(&self) -> usize {
        self.vals.len()
    }

    /// True when nothing is observed.
    pub fn is_empty(&self) -> bool {
        self.vals.is_empty()
    }

    /// The mean squared error over the observed entries of `E = F R` given `ft = Fᵀ` (`p x m`, column `i` = row `i`
    /// of `F`) and `r` (`p x n`); stores `dL/dE = 2 (E - Y) / nnz` per entry
    /// and, in the same pass over `r`, writes `(G Rᵀ)ᵀ = R Gᵀ` (`p x m`) to
    /// `out` (the gradient of the first factor, in its row-major layout).
    pub fn loss_first(&mut self, ft: &[f64], r: &[f64], p: usize, out: &mut [f64]) -> f64 {
        assert!(
            ft.len() >= p * self.m && r.len() >= p * self.n && out.len() == p * self.m,
            "loss_first: bad buffer sizes"
        );
        let nnz = self.vals.len();
        let scale = 2.0 / nnz as f64;
        let (row_ptr, cols, vals) = (&self.row_ptr, &self.cols, &self.vals);
        // split the output columns and the per-entry gradients into row tasks
        let mut tasks = Vec::with_capacity(self.m / COLS_PER_TASK + 1);
        let (mut out_rest, mut g_rest) = (out, &mut self.grad[..]);
        let mut i0 = 0;
        while i0 < self.m {
            let i1 = (i0 + COLS_PER_TASK).min(self.m);
            let (o, orest) = out_rest.split_at_mut((i1 - i0) * p);
            let (g, grest) = g_rest.split_at_mut(row_ptr[i1] - row_ptr[i0]);
            tasks.push((i0, o, g));
            (out_rest, g_rest) = (orest, grest);
            i0 = i1;
        }
        // partial sums per task, added in task order: deterministic
        let parts: Vec<f64> = tasks
            .into_par_iter()
            .with_min_len(min_tasks(2 * nnz * p))
            .map(|(i0, o, g)| {
                let i1 = i0 + o.len() / p;
                loss_rows_best(o, g, p, &row_ptr[i0..=i1], cols, vals, scale, ft, r, i0)
            })
            .collect();
        parts.iter().sum::<f64>() / nnz as f64
    }

    /// [`Observed::loss_first`] on a two-thread team: the same 16-row tasks
    /// (split between the threads at the task boundary nearest half the
    /// entries), their partial sums added in task order — bitwise the
    /// single-threaded result.
    pub(crate) fn loss_first_team(&mut self, ft: &[f64], r: &[f64], p: usize, out: &mut [f64], team: &Team) -> f64 {
        assert!(
            ft.len() >= p * self.m && r.len() >= p * self.n && out.len() == p * self.m,
            "loss_first: bad buffer sizes"
        );
        let nnz = self.vals.len();
        let scale = 2.0 / nnz as f64;
        let (m, row_ptr, cols, vals) = (self.m, &self.row_ptr, &self.cols, &self.vals);
        let ntask = m.div_ceil(COLS_PER_TASK);
        let bound = |t: usize| (t * COLS_PER_TASK).min(m);
        let s = (0..=ntask).min_by_key(|&t| row_ptr[bound(t)].abs_diff(nnz / 2)).unwrap_or(0);
        let mut parts = [0.0f64; 64];
        let mut parts_vec;
        let parts: &mut [f64] = if ntask <= 64 {
            &mut parts[..ntask]
        } else {
            parts_vec = vec![0.0; ntask];
            &mut parts_vec
        };
        let (pa, pb) = parts.split_at_mut(s);
        let (oa, ob) = out.split_at_mut(bound(s) * p);
        let (ga, gb) = self.grad.split_at_mut(row_ptr[bound(s)]);
        // tasks t0.. of a side, their outputs, entry gradients and partial sums
        let run = |t0: usize, out: &mut [f64], g: &mut [f64], parts: &mut [f64]| {
            let (mut o_rest, mut g_rest) = (out, g);
            for (k, part) in parts.iter_mut().enumerate() {
                let (i0, i1) = (bound(t0 + k), bound(t0 + k + 1));
                let (o, orest) = o_rest.split_at_mut((i1 - i0) * p);
                let (g, grest) = g_rest.split_at_mut(row_ptr[i1] - row_ptr[i0]);
                *part = loss_rows_best(o, g, p, &row_ptr[i0..=i1], cols, vals, scale, ft, r, i0);
                (o_rest, g_rest) = (orest, grest);
            }
        };
        team.join(|| run(0, oa, ga, pa), || run(s, ob, gb, pb));
        parts.iter().sum::<f64>() / nnz as f64
    }

    /// The column splitting the entries in halves (for [`Observed::at_g_cols`]
    /// on two threads).
    pub(crate) fn at_g_split(&self) -> usize {
        let half = self.len() / 2;
        (0..=self.n).min_by_key(|&j| self.col_ptr[j].abs_diff(half)).unwrap_or(0)
    }

    /// Columns `j0..j1` of [`Observed::at_g`] into `out` (`p x (j1 - j0)`),
    /// each exactly as in the whole pass.
    pub(crate) fn at_g_cols(&self, at: &[f64], p: usize, out: &mut [f64], j0: usize, j1: usize) {
        assert!(at.len() >= p * self.m && j0 <= j1 && j1 <= self.n && out.len() == p * (j1 - j0), "at_g: bad sizes");
        gather_cols_best(out, p, &self.col_ptr[j0..=j1], &self.col_ent, &self.rows, &self.grad, at)
    }

    /// [`Observed::at_g`] on a two-thread team: the output columns split at
    /// the column nearest half the entries (each column is computed exactly
    /// as in the single-threaded pass).
    pub(crate) fn at_g_team(&self, at: &[f64], p: usize, out: &mut [f64], team: &Team) {
        assert!(at.len() >= p * self.m && out.len() == p * self.n, "at_g: bad buffer sizes");
        let s = self.at_g_split();
        let (oa, ob) = out.split_at_mut(s * p);
        team.join(|| self.at_g_cols(at, p, oa, 0, s), || self.at_g_cols(at, p, ob, s, self.n));
    }

    /// Loss when the iterate is the `m x n` matrix `e` itself (depth 1).
    pub fn loss_direct(&mut self, e: &[f64]) -> f64 {
        let nnz = self.vals.len();
        let scale = 2.0 / nnz as f64;
        let m = self.m;
        let mut s = 0.0;
        for k in 0..nnz {
            let res = e[self.cols[k] as usize * m + self.rows[k] as usize] - self.vals[k];
            s += res * res;
            self.grad[k] = scale * res;
        }
        s / nnz as f64
    }

    /// Scatter the gradient into a dense `m x n` column-major buffer.
    pub fn grad_dense(&self, out: &mut [f64]) {
        out.fill(0.0);
        for k in 0..self.len() {
            out[self.cols[k] as usize * self.m + self.rows[k] as usize] = self.grad[k];
        }
    }

    /// `(G Bᵀ)ᵀ = B Gᵀ` into `out` (`p x m`), where `b` is `p x n`: column
    /// `i` of the result is `sum_{j in row i} g_ij b[:, j]`.
    pub fn b_gt(&self, b: &[f64], p: usize, out: &mut [f64]) {
        assert!(b.len() >= p * self.n && out.len() == p * self.m, "b_gt: bad buffer sizes");
        if min_tasks(self.len() * p) == usize::MAX {
            // one pass over all columns (same sums in the same order as the
            // task split): each 32-row block of `b` stays in L1 throughout
            gather_cols_best(out, p, &self.row_ptr, &self.row_ent, &self.cols, &self.grad, b);
            return;
        }
        out.par_chunks_mut(p * COLS_PER_TASK).with_min_len(min_tasks(self.len() * p)).enumerate().for_each(
            |(c, chunk)| {
                let i0 = c * COLS_PER_TASK;
                let i1 = i0 + chunk.len() / p;
                gather_cols_best(chunk, p, &self.row_ptr[i0..=i1], &self.row_ent, &self.cols, &self.grad, b)
            },
        );
    }

    /// `Aᵀ G` into `out` (`p x n`), where `at` is `Aᵀ` (`p x m`): column `j`
    /// of the result is `sum_{i in col j} g_ij at[:, i]`.
    pub fn at_g(&self, at: &[f64], p: usize, out: &mut [f64]) {
        assert!(at.len() >= p * self.m && out.len() == p * self.n, "at_g: bad buffer sizes");
        if min_tasks(self.len() * p) == usize::MAX {
            // one pass, as in `b_gt`
            gather_cols_best(out, p, &self.col_ptr, &self.col_ent, &self.rows, &self.grad, at);
            return;
        }
        out.par_chunks_mut(p * COLS_PER_TASK).with_min_len(min_tasks(self.len() * p)).enumerate().for_each(
            |(c, chunk)| {
                let j0 = c * COLS_PER_TASK;
                let j1 = j0 + chunk.len() / p;
                gather_cols_best(chunk, p, &self.col_ptr[j0..=j1], &self.col_ent, &self.rows, &self.grad, at)
            },
        );
    }
}

/// Calls `fma::name` (compiled for AVX2 + FMA) when the CPU has them, else
/// the portable `name`. Both are deterministic; they differ only in rounding
/// (fused multiply-adds) and summation order inside a dot product.
macro_rules! dispatch {
    ($name:ident($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if crate::simd::has_avx2_fma() {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above);
                // the index contracts are those of the portable version.
                unsafe { fma::$name($($arg),*) }
            } else {
                $name($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $name($($arg),*)
        }
    }};
}
use dispatch;

/// Widest hidden width the AVX-512 kernels hold in registers (16 vectors of
/// 8 doubles: one output row or column plus the dot-product accumulators fit
/// in the 32 registers).
const AVX512_MAX_P: usize = 128;

/// [`loss_rows`] by the fastest kernel the CPU has: AVX-512 for widths up to
/// [`AVX512_MAX_P`] (the output column stays in registers across the row's
/// entries, each source column is read once from L2), else AVX2 + FMA, else
/// portable. The kernels differ only in the summation order of the dot
/// products; each is deterministic.
#[allow(clippy::too_many_arguments)]
fn loss_rows_best(
    out: &mut [f64],
    g: &mut [f64],
    p: usize,
    ptr: &[usize],
    cols: &[u32],
    vals: &[f64],
    scale: f64,
    ft: &[f64],
    r: &[f64],
    i0: usize,
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if p <= AVX512_MAX_P && crate::simd::has_avx512() {
        // SAFETY: AVX-512F, AVX2 and FMA are available (checked above);
        // every access is bounds-checked through slices.
        return unsafe { avx512::loss_rows(out, g, p, ptr, cols, vals, scale, ft, r, i0) };
    }
    dispatch!(loss_rows(out, g, p, ptr, cols, vals, scale, ft, r, i0))
}

/// [`gather_cols`] by the fastest kernel the CPU has (as [`loss_rows_best`];
/// the AVX-512 and AVX2 kernels give the same bits: every output element
/// sums its entries in list order with fused multiply-adds).
fn gather_cols_best(out: &mut [f64], p: usize, ptr: &[usize], ent: &[u32], other: &[u32], grad: &[f64], src: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    if p <= AVX512_MAX_P && crate::simd::has_avx512() {
        // SAFETY: as in `loss_rows_best`.
        unsafe { avx512::gather_cols(out, p, ptr, ent, other, grad, src) };
        return;
    }
    dispatch!(gather_cols(out, p, ptr, ent, other, grad, src))
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! AVX-512 kernels for hidden widths up to `AVX512_MAX_P`: `NV = ceil(p /
    //! 8)` vectors per column, the last one masked, unrolled by a const
    //! generic so the accumulators live in registers.
    use std::arch::x86_64::*;

    /// Mask of the last vector of a `p`-long column of `nv` vectors.
    fn last_mask(p: usize, nv: usize) -> __mmask8 {
        let rem = p - 8 * (nv - 1);
        ((1u32 << rem) - 1) as __mmask8
    }

    /// Vector `t` of a column (`NV` vectors, the last masked).
    ///
    /// # Safety
    /// AVX-512F; `col` valid for `8 t + 8` doubles, or for the unmasked lanes
    /// of the last vector.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn ld<const NV: usize>(col: *const f64, t: usize, last: __mmask8) -> __m512d {
        // SAFETY: the caller's contract.
        unsafe {
            if t + 1 < NV { _mm512_loadu_pd(col.add(8 * t)) } else { _mm512_maskz_loadu_pd(last, col.add(8 * t)) }
        }
    }

    /// Store vector `t` of a column (as [`ld`]).
    ///
    /// # Safety
    /// As [`ld`], for writing.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn st<const NV: usize>(col: *mut f64, t: usize, last: __mmask8, v: __m512d) {
        // SAFETY: the caller's contract.
        unsafe {
            if t + 1 < NV {
                _mm512_storeu_pd(col.add(8 * t), v)
            } else {
                _mm512_mask_storeu_pd(col.add(8 * t), last, v)
            }
        }
    }

    macro_rules! by_width {
        ($f:ident, $p:expr, ($($arg:expr),*)) => {
            match $p.div_ceil(8) {
                1 => $f::<1>($($arg),*),
                2 => $f::<2>($($arg),*),
                3 => $f::<3>($($arg),*),
                4 => $f::<4>($($arg),*),
                5 => $f::<5>($($arg),*),
                6 => $f::<6>($($arg),*),
                7 => $f::<7>($($arg),*),
                8 => $f::<8>($($arg),*),
                9 => $f::<9>($($arg),*),
                10 => $f::<10>($($arg),*),
                11 => $f::<11>($($arg),*),
                12 => $f::<12>($($arg),*),
                13 => $f::<13>($($arg),*),
                14 => $f::<14>($($arg),*),
                15 => $f::<15>($($arg),*),
                16 => $f::<16>($($arg),*),
                _ => unreachable!("width checked by the caller"),
            }
        };
    }

    /// [`super::loss_rows`] for `1 <= p <= 128`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn loss_rows(
        out: &mut [f64],
        g: &mut [f64],
        p: usize,
        ptr: &[usize],
        cols: &[u32],
        vals: &[f64],
        scale: f64,
        ft: &[f64],
        r: &[f64],
        i0: usize,
    ) -> f64 {
        assert!((1..=super::AVX512_MAX_P).contains(&p), "loss_rows: width {p} out of range");
        assert!(out.len().is_multiple_of(p), "loss_rows: the output is not whole columns");
        // SAFETY: AVX-512F, AVX2 and FMA (the caller's contract).
        unsafe { by_width!(loss_rows_nv, p, (out, g, p, ptr, cols, vals, scale, ft, r, i0)) }
    }

    /// Four entries of a row at a time: their dot products with the row of
    /// the first factor in four independent 8-lane chains, then each
    /// entry's column added, scaled by its gradient, to the output column
    /// held in `NV` registers (the source columns are still in L1).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn loss_rows_nv<const NV: usize>(
        out: &mut [f64],
        g: &mut [f64],
        p: usize,
        ptr: &[usize],
        cols: &[u32],
        vals: &[f64],
        scale: f64,
        ft: &[f64],
        r: &[f64],
        i0: usize,
    ) -> f64 {
        let last = last_mask(p, NV);
        let base = ptr[0];
        let mut s = 0.0;
        for (c, col) in out.chunks_mut(p).enumerate() {
            let i = i0 + c;
            let a = ft[i * p..(i + 1) * p].as_ptr();
            let (e0, e1) = (ptr[c], ptr[c + 1]);
            // SAFETY: every column pointer below comes from a bounds-checked
            // slice of `p` doubles (`a`, `src`; `col` is a whole column, the
            // entry point asserts `out.len()` is a multiple of `p`), and `ld` /
            // `st` touch only its first `p` doubles.
            unsafe {
                let mut acc = [_mm512_setzero_pd(); NV];
                let mut e = e0;
                while e < e1 {
                    let nq = (e1 - e).min(4);
                    let src = |q: usize| r[cols[e + q.min(nq - 1)] as usize * p..][..p].as_ptr();
                    let b = [src(0), src(1), src(2), src(3)];
                    let mut d = [_mm512_setzero_pd(); 4];
                    for t in 0..NV {
                        let av = ld::<NV>(a, t, last);
                        for q in 0..4 {
                            d[q] = _mm512_fmadd_pd(av, ld::<NV>(b[q], t, last), d[q]);
                        }
                    }
                    for q in 0..nq {
                        let res = _mm512_reduce_add_pd(d[q]) - vals[e + q];
                        s += res * res;
                        let gv = scale * res;
                        g[e + q - base] = gv;
                        let gv = _mm512_set1_pd(gv);
                        for (t, x) in acc.iter_mut().enumerate() {
                            *x = _mm512_fmadd_pd(gv, ld::<NV>(b[q], t, last), *x);
                        }
                    }
                    e += nq;
                }
                let o = col.as_mut_ptr();
                for (t, x) in acc.iter().enumerate() {
                    st::<NV>(o, t, last, *x);
                }
            }
        }
        s
    }

    /// [`super::gather_cols`] for `1 <= p <= 128`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn gather_cols(
        out: &mut [f64],
        p: usize,
        ptr: &[usize],
        ent: &[u32],
        other: &[u32],
        grad: &[f64],
        src: &[f64],
    ) {
        assert!((1..=super::AVX512_MAX_P).contains(&p), "gather_cols: width {p} out of range");
        assert!(out.len().is_multiple_of(p), "gather_cols: the output is not whole columns");
        // SAFETY: AVX-512F, AVX2 and FMA (the caller's contract).
        unsafe { by_width!(gather_cols_nv, p, (out, p, ptr, ent, other, grad, src)) }
    }

    /// Each output column in `NV` registers, its entries added in list
    /// order.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn gather_cols_nv<const NV: usize>(
        out: &mut [f64],
        p: usize,
        ptr: &[usize],
        ent: &[u32],
        other: &[u32],
        grad: &[f64],
        src: &[f64],
    ) {
        let last = last_mask(p, NV);
        for (c, col) in out.chunks_mut(p).enumerate() {
            // SAFETY: as in `loss_rows_nv`: bounds-checked slices of `p`.
            unsafe {
                let mut acc = [_mm512_setzero_pd(); NV];
                for &e in &ent[ptr[c]..ptr[c + 1]] {
                    let e = e as usize;
                    let sp = src[other[e] as usize * p..][..p].as_ptr();
                    let gv = _mm512_set1_pd(grad[e]);
                    for (t, x) in acc.iter_mut().enumerate() {
                        *x = _mm512_fmadd_pd(gv, ld::<NV>(sp, t, last), *x);
                    }
                }
                let o = col.as_mut_ptr();
                for (t, x) in acc.iter().enumerate() {
                    st::<NV>(o, t, last, *x);
                }
            }
        }
    }
}

/// Doubles of an output column kept in registers at a time (8 AVX2
/// accumulators); also the block over which the gathers are L1-resident
/// (`BLOCK x n` doubles of the source: 25 KB for n = 100).
const BLOCK: usize = 32;

#[cfg(target_arch = "x86_64")]
mod fma {
    //! The kernels compiled with AVX2 + FMA enabled, with explicit 256-bit
    //! fused multiply-adds (the auto-vectorizer picks 128-bit shuffles here).
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn all_finite_impl(x: &[f64]) -> bool {
        super::all_finite_impl(x)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; indices as in the portable version.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn loss_rows(
        out: &mut [f64],
        g: &mut [f64],
        p: usize,
        ptr: &[usize],
        cols: &[u32],
        vals: &[f64],
        scale: f64,
        ft: &[f64],
        r: &[f64],
        i0: usize,
    ) -> f64 {
        let base = ptr[0];
        let mut s = 0.0;
        for (c, col) in out.chunks_mut(p).enumerate() {
            let i = i0 + c;
            let a = &ft[i * p..(i + 1) * p];
            let (e0, e1) = (ptr[c], ptr[c + 1]);
            let mut e = e0;
            // four entries of the row at a time: eight independent FMA
            // chains instead of two (the single dot is latency-bound)
            while e + 4 <= e1 {
                let b = |q: usize| {
                    let j = cols[e + q] as usize;
                    &r[j * p..(j + 1) * p]
                };
                // SAFETY: AVX2 + FMA available (the caller's contract).
                let d = unsafe { dot4(a, [b(0), b(1), b(2), b(3)]) };
                for (q, dq) in d.iter().enumerate() {
                    let res = dq - vals[e + q];
                    s += res * res;
                    g[e + q - base] = scale * res;
                }
                e += 4;
            }
            while e < e1 {
                let j = cols[e] as usize;
                // SAFETY: AVX2 + FMA available (the caller's contract).
                let res = unsafe { dot(a, &r[j * p..(j + 1) * p]) } - vals[e];
                s += res * res;
                g[e - base] = scale * res;
                e += 1;
            }
            // SAFETY: as above; the columns just read are L1-resident.
            unsafe { gather_one(col, p, &g[e0 - base..e1 - base], &cols[e0..e1], r) };
        }
        s
    }

    /// `col = sum_t g[t] src[:, idx[t]]`, 32 doubles in registers at a time.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `src` holds `p` doubles for every
    /// index in `idx`, `col.len() == p`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gather_one(col: &mut [f64], p: usize, g: &[f64], idx: &[u32], src: &[f64]) {
        assert!(col.len() == p && idx.iter().all(|&k| (k as usize + 1) * p <= src.len()));
        let mut b0 = 0;
        while b0 + BLOCK <= p {
            // SAFETY: loads read src[k p + b0 .. k p + b0 + 32] with
            // (k + 1) p <= src.len() (asserted above); stores write
            // col[b0 .. b0 + 32], b0 + 32 <= p.
            unsafe {
                let mut acc = [_mm256_setzero_pd(); 8];
                for (&gv, &k) in g.iter().zip(idx) {
                    let k = k as usize;
                    let gv = _mm256_set1_pd(gv);
                    let sp = src.as_ptr().add(k * p + b0);
                    for (t, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_pd(gv, _mm256_loadu_pd(sp.add(4 * t)), *a);
                    }
                }
                for (t, a) in acc.iter().enumerate() {
                    _mm256_storeu_pd(col.as_mut_ptr().add(b0 + 4 * t), *a);
                }
            }
            b0 += BLOCK;
        }
        if b0 < p {
            // SAFETY: as above, for the last p - b0 < 32 rows.
            unsafe { tail(col, p, b0, || g.iter().zip(idx).map(|(&gv, &k)| (gv, k as usize)), src) };
        }
    }

    /// Rows `b0..p` (fewer than 32) of one output column: `col[b0..p] =
    /// sum over (g, k) of g src[k p + b0 .. (k + 1) p]`, in register blocks
    /// of `4 nv` rows and a scalar remainder, each element summing the
    /// pairs in order with fused multiply-adds.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `(k + 1) p <= src.len()` for every
    /// pair, `col.len() == p`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tail<I: Iterator<Item = (f64, usize)>>(
        col: &mut [f64],
        p: usize,
        b0: usize,
        pairs: impl Fn() -> I,
        src: &[f64],
    ) {
        let nv = (p - b0) / 4;
        let (d, sp) = (col.as_mut_ptr(), src.as_ptr());
        // SAFETY: the caller's contract; 4 nv <= p - b0.
        unsafe {
            match nv {
                1 => vec_block::<1, I>(d, p, b0, pairs(), sp),
                2 => vec_block::<2, I>(d, p, b0, pairs(), sp),
                3 => vec_block::<3, I>(d, p, b0, pairs(), sp),
                4 => vec_block::<4, I>(d, p, b0, pairs(), sp),
                5 => vec_block::<5, I>(d, p, b0, pairs(), sp),
                6 => vec_block::<6, I>(d, p, b0, pairs(), sp),
                7 => vec_block::<7, I>(d, p, b0, pairs(), sp),
                _ => {}
            }
        }
        let r0 = b0 + 4 * nv;
        if r0 < p {
            let rest = &mut col[r0..];
            rest.fill(0.0);
            for (gv, k) in pairs() {
                for (y, x) in rest.iter_mut().zip(&src[k * p + r0..(k + 1) * p]) {
                    *y = gv.mul_add(*x, *y);
                }
            }
        }
    }

    /// `dst[b0 .. b0 + 4 NV] = sum over (g, k) of g src[k p + b0 ..]`, the
    /// `NV` vectors held in registers.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `dst` valid for `b0 + 4 NV`
    /// doubles, `src` for `k p + b0 + 4 NV` doubles for every pair.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn vec_block<const NV: usize, I: Iterator<Item = (f64, usize)>>(
        dst: *mut f64,
        p: usize,
        b0: usize,
        pairs: I,
        src: *const f64,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            let mut acc = [_mm256_setzero_pd(); NV];
            for (gv, k) in pairs {
                let g = _mm256_set1_pd(gv);
                let sp = src.add(k * p + b0);
                for (t, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_pd(g, _mm256_loadu_pd(sp.add(4 * t)), *a);
                }
            }
            for (t, a) in acc.iter().enumerate() {
                _mm256_storeu_pd(dst.add(b0 + 4 * t), *a);
            }
        }
    }

    /// Output column `c` = `sum_{e in ent[ptr[c]..ptr[c+1]]} grad[e]
    /// src[:, other[e]]`, block by block of 32 rows so that the block of
    /// `src` stays in L1 across the columns of the task; each output element
    /// still sums its entries in list order.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `src` holds `p` doubles for every
    /// index in `other`, and `out.len()` is a multiple of `p`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gather_cols(
        out: &mut [f64],
        p: usize,
        ptr: &[usize],
        ent: &[u32],
        other: &[u32],
        grad: &[f64],
        src: &[f64],
    ) {
        let ncol = out.len() / p;
        assert!(
            out.len() == ncol * p
                && ent[ptr[0]..ptr[ncol]].iter().all(|&e| (other[e as usize] as usize + 1) * p <= src.len())
        );
        let mut b0 = 0;
        while b0 + BLOCK <= p {
            for c in 0..ncol {
                // SAFETY: loads read src[k p + b0 .. + 32] with (k + 1) p <=
                // src.len() (asserted above for every entry of the columns);
                // stores write out[c p + b0 .. + 32] with b0 + 32 <= p.
                unsafe {
                    let mut acc = [_mm256_setzero_pd(); 8];
                    for &e in &ent[ptr[c]..ptr[c + 1]] {
                        let e = e as usize;
                        let k = other[e] as usize;
                        let g = _mm256_set1_pd(grad[e]);
                        let sp = src.as_ptr().add(k * p + b0);
                        for (t, a) in acc.iter_mut().enumerate() {
                            *a = _mm256_fmadd_pd(g, _mm256_loadu_pd(sp.add(4 * t)), *a);
                        }
                    }
                    let op = out.as_mut_ptr().add(c * p + b0);
                    for (t, a) in acc.iter().enumerate() {
                        _mm256_storeu_pd(op.add(4 * t), *a);
                    }
                }
            }
            b0 += BLOCK;
        }
        if b0 < p {
            for (c, col) in out.chunks_mut(p).enumerate() {
                let es = &ent[ptr[c]..ptr[c + 1]];
                let pairs = || es.iter().map(|&e| (grad[e as usize], other[e as usize] as usize));
                // SAFETY: as above, for the last p - b0 < 32 rows.
                unsafe { tail(col, p, b0, pairs, src) };
            }
        }
    }

    /// The four dot products `a · b[q]` (every `b[q]` at least as long as
    /// `a`), each summed in two 4-wide accumulators (even and odd blocks of
    /// four), then the tail in order.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot4(a: &[f64], b: [&[f64]; 4]) -> [f64; 4] {
        let n = a.len();
        assert!(b.iter().all(|x| x.len() >= n));
        let pa = a.as_ptr();
        let pb = [b[0].as_ptr(), b[1].as_ptr(), b[2].as_ptr(), b[3].as_ptr()];
        let mut k = 0;
        // SAFETY: every load reads 4 doubles at k..k+4 <= n of slices of
        // length >= n (asserted above).
        unsafe {
            let mut x = [_mm256_setzero_pd(); 4];
            let mut y = [_mm256_setzero_pd(); 4];
            while k + 8 <= n {
                let (a0, a1) = (_mm256_loadu_pd(pa.add(k)), _mm256_loadu_pd(pa.add(k + 4)));
                for q in 0..4 {
                    x[q] = _mm256_fmadd_pd(a0, _mm256_loadu_pd(pb[q].add(k)), x[q]);
                    y[q] = _mm256_fmadd_pd(a1, _mm256_loadu_pd(pb[q].add(k + 4)), y[q]);
                }
                k += 8;
            }
            if k + 4 <= n {
                let a0 = _mm256_loadu_pd(pa.add(k));
                for q in 0..4 {
                    x[q] = _mm256_fmadd_pd(a0, _mm256_loadu_pd(pb[q].add(k)), x[q]);
                }
                k += 4;
            }
            for q in 0..4 {
                x[q] = _mm256_add_pd(x[q], y[q]);
            }
            // horizontal sums of the four accumulators into one vector
            let s01 = _mm256_hadd_pd(x[0], x[1]);
            let s23 = _mm256_hadd_pd(x[2], x[3]);
            let lo = _mm256_permute2f128_pd(s01, s23, 0x20);
            let hi = _mm256_permute2f128_pd(s01, s23, 0x31);
            let mut out = [0.0f64; 4];
            _mm256_storeu_pd(out.as_mut_ptr(), _mm256_add_pd(lo, hi));
            while k < n {
                for q in 0..4 {
                    out[q] = a[k].mul_add(b[q][k], out[q]);
                }
                k += 1;
            }
            out
        }
    }

    /// `sum a_i b_i` over the common length.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut k = 0;
        // SAFETY: every load reads 4 doubles at k..k+4 <= n of both slices.
        unsafe {
            let (mut a0, mut a1) = (_mm256_setzero_pd(), _mm256_setzero_pd());
            while k + 8 <= n {
                a0 = _mm256_fmadd_pd(_mm256_loadu_pd(pa.add(k)), _mm256_loadu_pd(pb.add(k)), a0);
                a1 = _mm256_fmadd_pd(_mm256_loadu_pd(pa.add(k + 4)), _mm256_loadu_pd(pb.add(k + 4)), a1);
                k += 8;
            }
            if k + 4 <= n {
                a0 = _mm256_fmadd_pd(_mm256_loadu_pd(pa.add(k)), _mm256_loadu_pd(pb.add(k)), a0);
                k += 4;
            }
            let acc = _mm256_add_pd(a0, a1);
            let h = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
            let mut s = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
            while k < n {
                s = a[k].mul_add(b[k], s);
                k += 1;
            }
            s
        }
    }
}

/// Portable [`fma::loss_rows`]: residuals of the entries of rows
/// `i0..i0 + out.len() / p` (`ptr` their row pointers), squared-error sum,
/// `g` per entry, and the first factor's gradient columns in `out`.
#[allow(clippy::too_many_arguments)]
fn loss_rows(
    out: &mut [f64],
    g: &mut [f64],
    p: usize,
    ptr: &[usize],
    cols: &[u32],
    vals: &[f64],
    scale: f64,
    ft: &[f64],
    r: &[f64],
    i0: usize,
) -> f64 {
    let base = ptr[0];
    let mut s = 0.0;
    for (c, col) in out.chunks_mut(p).enumerate() {
        let i = i0 + c;
        let a = &ft[i * p..(i + 1) * p];
        col.fill(0.0);
        for e in ptr[c]..ptr[c + 1] {
            let j = cols[e] as usize;
            let b = &r[j * p..(j + 1) * p];
            let res = dot(a, b) - vals[e];
            s += res * res;
            let gv = scale * res;
            g[e - base] = gv;
            axpy(col, gv, b);
        }
    }
    s
}

/// Portable [`fma::gather_cols`].
fn gather_cols(out: &mut [f64], p: usize, ptr: &[usize], ent: &[u32], other: &[u32], grad: &[f64], src: &[f64]) {
    for (c, col) in out.chunks_mut(p).enumerate() {
        col.fill(0.0);
        for &e in &ent[ptr[c]..ptr[c + 1]] {
            let e = e as usize;
            let k = other[e] as usize;
            axpy(col, grad[e], &src[k * p..(k + 1) * p]);
        }
    }
}

#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for t in 0..4 {
            acc[t] += x[t] * y[t];
        }
    }
    let mut s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline(always)]
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
        Mat::from_fn(a.nrows(), b.ncols(), |i, j| (0..a.ncols()).map(|k| a[(i, k)] * b[(k, j)]).sum())
    }

    fn example() -> (Observed, Mat<f64>) {
        // 5x4 matrix with 9 observed entries (unsorted); the dense G is the
        // scatter of the per-entry gradient
        let r =
            Ratings::new(5, 4, vec![4, 0, 1, 2, 2, 3, 0, 4, 1], vec![1, 3, 1, 0, 2, 3, 0, 2, 2], vec![1.0; 9]).unwrap();
        let mut o = Observed::new(&r);
        for (k, g) in o.grad.iter_mut().enumerate() {
            *g = (k as f64 + 1.0) * 0.37 - 1.0;
        }
        let mut gd = vec![0.0; 20];
        o.grad_dense(&mut gd);
        (o, to_mat(&gd, 5, 4))
    }

    /// Every kernel (AVX-512 when the CPU has it, AVX2 + FMA, portable)
    /// against the portable one, at widths around the vector boundaries and
    /// the register limit, to rounding; the AVX-512 and AVX2 gathers agree
    /// bit for bit (each element sums its entries in list order with fused
    /// multiply-adds).
    #[test]
    fn simd_kernels_agree_with_the_portable_ones() {
        let (m, n) = (23, 19);
        let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
        for i in 0..m {
            for j in 0..n {
                if (i * 7 + j * 3) % 4 != 0 {
                    rows.push(i as u32);
                    cols.push(j as u32);
                    vals.push(((i + 2 * j) % 5) as f32 - 2.0);
                }
            }
        }
        let o = Observed::new(&Ratings::new(m, n, rows, cols, vals).unwrap());
        let scale = 2.0 / o.len() as f64;
        for p in [1, 7, 8, 9, 16, 33, 100, 127, 128, 129] {
            let ft: Vec<f64> = (0..p * m).map(|k| ((k * 13) % 11) as f64 * 0.1 - 0.5).collect();
            let r: Vec<f64> = (0..p * n).map(|k| ((k * 7) % 9) as f64 * 0.1 - 0.4).collect();
            let (mut out0, mut g0) = (vec![0.0; p * m], vec![0.0; o.len()]);
            let l0 = loss_rows(&mut out0, &mut g0, p, &o.row_ptr, &o.cols, &o.vals, scale, &ft, &r, 0);
            let (mut out1, mut g1) = (vec![0.0; p * m], vec![0.0; o.len()]);
            let l1 = loss_rows_best(&mut out1, &mut g1, p, &o.row_ptr, &o.cols, &o.vals, scale, &ft, &r, 0);
            assert!((l0 - l1).abs() <= 1e-12 * l0.abs().max(1.0), "p = {p}: {l0} vs {l1}");
            let gmax = g0.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            assert!(g0.iter().zip(&g1).all(|(a, b)| (a - b).abs() <= 1e-12 * gmax), "p = {p}: entry gradients");
            let omax = out0.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            assert!(out0.iter().zip(&out1).all(|(a, b)| (a - b).abs() <= 1e-11 * omax), "p = {p}: first gradient");
            // a range of rows not starting at 0 (as a task of the split)
            let (r0, r1) = (5, 12);
            let (e0, e1) = (o.row_ptr[r0], o.row_ptr[r1]);
            let ptr = &o.row_ptr[r0..=r1];
            let (mut out2, mut g2) = (vec![0.0; p * (r1 - r0)], vec![0.0; e1 - e0]);
            let l2 = loss_rows_best(&mut out2, &mut g2, p, ptr, &o.cols, &o.vals, scale, &ft, &r, r0);
            let (mut out3, mut g3) = (vec![0.0; p * (r1 - r0)], vec![0.0; e1 - e0]);
            let l3 = loss_rows(&mut out3, &mut g3, p, ptr, &o.cols, &o.vals, scale, &ft, &r, r0);
            assert!((l2 - l3).abs() <= 1e-12 * l3.abs().max(1.0), "p = {p}: rows {r0}..{r1}");
            assert!(g2.iter().zip(&g0[e0..e1]).all(|(a, b)| (a - b).abs() <= 1e-12 * gmax), "p = {p}: rows {r0}..{r1}");
            assert!(out3.iter().zip(&out0[r0 * p..r1 * p]).all(|(a, b)| a == b), "p = {p}: the portable sub-range");
            assert!(out2.iter().zip(&out3).all(|(a, b)| (a - b).abs() <= 1e-11 * omax), "p = {p}: rows {r0}..{r1}");
            // the gathers, from the same entry gradients
            let mut z0 = vec![0.0; p * n];
            gather_cols(&mut z0, p, &o.col_ptr, &o.col_ent, &o.rows, &g0, &ft);
            let mut z1 = vec![0.0; p * n];
            gather_cols_best(&mut z1, p, &o.col_ptr, &o.col_ent, &o.rows, &g0, &ft);
            let zmax = z0.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            assert!(z0.iter().zip(&z1).all(|(a, b)| (a - b).abs() <= 1e-12 * zmax), "p = {p}: gather");
            let mut z2 = vec![0.0; p * n];
            dispatch!(gather_cols(&mut z2, p, &o.col_ptr, &o.col_ent, &o.rows, &g0, &ft));
            assert!(z1.iter().zip(&z2).all(|(a, b)| a.to_bits() == b.to_bits()), "p = {p}: gather bits");
        }
    }

    #[test]
    fn sparse_products_match_dense() {
        let (o, g) = example();
        // p = 37 exercises the 32-wide register blocks and the tail
        for p in [3, 37] {
            let b = Mat::from_fn(p, 4, |i, j| (i * 7 + j * 3) as f64 * 0.1 - 0.5);
            let mut out = vec![0.0; p * 5];
            o.b_gt(&to_buf(b.as_ref()), p, &mut out);
            let want = naive(b.as_ref(), g.transpose());
            assert!((to_mat(&out, p, 5) - &want).norm_l2() < 1e-13);
            let mut port = vec![0.0; p * 5];
            gather_cols(&mut port, p, &o.row_ptr, &o.row_ent, &o.cols, &o.grad, &to_buf(b.as_ref()));
            assert!((to_mat(&port, p, 5) - &want).norm_l2() < 1e-13);
            let a = Mat::from_fn(5, p, |i, j| (i * 5 + j * 2) as f64 * 0.1 - 0.7);
            let mut at = vec![0.0; p * 5];
            transpose_into(&mut at, &to_buf(a.as_ref()), 5, p);
            let mut out = vec![0.0; p * 4];
            o.at_g(&at, p, &mut out);
            let want = naive(a.transpose(), g.as_ref());
            assert!((to_mat(&out, p, 4) - want).norm_l2() < 1e-13);
        }
    }

    #[test]
    fn fused_loss_with_long_rows_matches_dense() {
        // rows with 0..=11 entries: the 4-entry dot kernel, its remainder
        // and empty rows; p = 100 and 37 exercise the 8-, 4- and 1-wide tails
        let (m, n) = (7, 12);
        let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
        for i in 0..m {
            for j in 0..(i * 2).min(n) {
                rows.push(i as u32);
                cols.push(((j * 5 + i) % n) as u32);
                vals.push(((i + j) % 3) as f32 - 1.0);
            }
        }
        let mut o = Observed::new(&Ratings::new(m, n, rows, cols, vals).unwrap());
        for p in [5, 37, 100] {
            let f = Mat::from_fn(m, p, |i, j| ((i * 3 + j) % 7) as f64 * 0.2 - 0.6);
            let r = Mat::from_fn(p, n, |i, j| ((i + 2 * j) % 5) as f64 * 0.3 - 0.5);
            let e = naive(f.as_ref(), r.as_ref());
            let mut ft = vec![0.0; p * m];
            transpose_into(&mut ft, &to_buf(f.as_ref()), m, p);
            let mut out = vec![0.0; p * m];
            let loss = o.loss_first(&ft, &to_buf(r.as_ref()), p, &mut out);
            let (mut want, mut gd) = (0.0, Mat::<f64>::zeros(m, n));
            for k in 0..o.len() {
                let (i, j) = (o.rows[k] as usize, o.cols[k] as usize);
                let res = e[(i, j)] - o.vals[k];
                want += res * res / o.len() as f64;
                gd[(i, j)] = 2.0 * res / o.len() as f64;
            }
            assert!((loss - want).abs() < 1e-12 * want, "p = {p}: {loss} vs {want}");
            let want_first = naive(r.as_ref(), gd.transpose());
            assert!((to_mat(&out, p, m) - &want_first).norm_l2() < 1e-12 * want_first.norm_l2(), "p = {p}");
            let mut z = vec![0.0; p * n];
            o.at_g(&ft, p, &mut z);
            let want_z = naive(f.transpose(), gd.as_ref());
            assert!((to_mat(&z, p, n) - &want_z).norm_l2() < 1e-12 * want_z.norm_l2(), "p = {p}");
        }
    }

    #[test]
    fn fused_loss_matches_dense_and_portable() {
        let (mut o, _) = example();
        for p in [3, 37] {
            let f = Mat::from_fn(5, p, |i, j| ((i * 3 + j) % 7) as f64 * 0.2 - 0.6);
            let r = Mat::from_fn(p, 4, |i, j| ((i + 2 * j) % 5) as f64 * 0.3 - 0.5);
            let e = &f * &r;
            let mut ft = vec![0.0; p * 5];
            transpose_into(&mut ft, &to_buf(f.as_ref()), 5, p);
            let rb = to_buf(r.as_ref());
            let mut out = vec![0.0; p * 5];
            let loss = o.loss_first(&ft, &rb, p, &mut out);
            // independent: residuals from the dense product
            let mut want = 0.0;
            let mut gd = Mat::<f64>::zeros(5, 4);
            for k in 0..o.len() {
                let (i, j) = (o.rows[k] as usize, o.cols[k] as usize);
                let res = e[(i, j)] - o.vals[k];
                want += res * res / o.len() as f64;
                gd[(i, j)] = 2.0 * res / o.len() as f64;
            }
            assert!((loss - want).abs() < 1e-13 * want.max(1.0));
            let want_first = naive(r.as_ref(), gd.transpose());
            assert!((to_mat(&out, p, 5) - &want_first).norm_l2() < 1e-13);
            // the portable kernel agrees
            let mut g2 = vec![0.0; o.len()];
            let mut out2 = vec![0.0; p * 5];
            let l2 = loss_rows(&mut out2, &mut g2, p, &o.row_ptr, &o.cols, &o.vals, 2.0 / o.len() as f64, &ft, &rb, 0);
            assert!((l2 / o.len() as f64 - want).abs() < 1e-13);
            assert!((to_mat(&out2, p, 5) - &want_first).norm_l2() < 1e-13);
        }
    }
}
