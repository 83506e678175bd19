//! Dense kernels of CP-ALS on a C-order 3-way tensor `T` (`d0 x d1 x d2`).
//!
//! The MTTKRPs (matricized tensor times Khatri-Rao product) never form the
//! Khatri-Rao product of two whole factors:
//! - modes 0 and 1 share one product `W = X C` where `X` is `T` viewed as the
//!   row-major `(d0 d1) x d2` matrix (no copy): `M0[i,r] = Σ_j W[(i,j),r] B[j,r]`
//!   and `M1[j,r] = Σ_i W[(i,j),r] A[i,r]` are then `O(d0 d1 R)`; since ALS
//!   updates `A` and `B` before `C` changes, one `W` per iteration serves both
//!   (the 3-way dimension tree: `4 N R` flops per iteration instead of `6 N R`);
//! - mode 2, `M2 = X^T (A ⊙ B)`, runs over blocks of a few slices `i`, forming
//!   only the `(slices·d1) x R` block of the Khatri-Rao product that the block
//!   needs (loop fusion), accumulated by matrix products.
//!
//! Parallelism: every kernel splits its *output rows* into as many blocks as
//! rayon has threads (one block for small problems), so no floating-point
//! reduction depends on scheduling: the same thread count gives bitwise the
//! same result.

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::Solve;
use faer::reborrow::ReborrowMut;
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;

use crate::data::Tensor3;
use crate::error::{Result, ensure};

/// Below this many flops a kernel runs on one thread (thread hand-off costs
/// more than it saves).
const PAR_MIN_FLOPS: usize = 1 << 18;
/// Rows of the Khatri-Rao block formed at once by the mode-2 kernel.
const KR_BLOCK_ROWS: usize = 1024;

/// How many output blocks to use for `rows` output rows and `flops` work.
fn parts(rows: usize, flops: usize) -> usize {
    if flops < PAR_MIN_FLOPS { 1 } else { rayon::current_num_threads().clamp(1, rows.max(1)) }
}

/// Scale every column of `f` to unit norm; returns the norms. A zero (or
/// non-finite-norm) column becomes the constant unit column and reports 0.
pub(crate) fn normalize_columns(f: &mut Mat<f64>) -> Vec<f64> {
    let d = f.nrows();
    (0..f.ncols())
        .map(|r| {
            let col = f.col_as_slice_mut(r);
            let n = col.iter().map(|x| x * x).sum::<f64>().sqrt();
            if n > 0.0 && n.is_finite() {
                col.iter_mut().for_each(|x| *x /= n);
                n
            } else if n == 0.0 {
                col.iter_mut().for_each(|x| *x = 1.0 / (d as f64).sqrt());
                0.0
            } else {
                n
            }
        })
        .collect()
}

/// `f · diag(w)`.
pub(crate) fn scale_columns(f: MatRef<'_, f64>, w: &[f64]) -> Mat<f64> {
    Mat::from_fn(f.nrows(), f.ncols(), |i, r| f[(i, r)] * w[r])
}

/// Slice `i` of the CP tensor `(A, B, Cs)` (weights folded into `Cs`) into
/// `out` (`d1 x d2`, row-major): `out = (B diag(A[i,:])) Cs^T`.
pub(crate) fn reconstruct_slice(
    a: MatRef<'_, f64>,
    b: MatRef<'_, f64>,
    cs: MatRef<'_, f64>,
    i: usize,
    out: &mut [f64],
) {
    let (d1, d2) = (b.nrows(), cs.nrows());
    let bi = Mat::from_fn(d1, b.ncols(), |j, r| b[(j, r)] * a[(i, r)]);
    let dst = MatMut::from_row_major_slice_mut(out, d1, d2);
    matmul(dst, Accum::Replace, bi.as_ref(), cs.transpose(), 1.0, Par::Seq);
}

/// `Σ (T - T̂)²` over the observed entries (all when `mask` is `None`),
/// computed by reconstructing one slice at a time (parallel over slices, the
/// per-slice sums added in slice order).
pub(crate) fn explicit_residual_sq(
    data: &[f64],
    mask: Option<&[bool]>,
    weights: &[f64],
    factors: &[Mat<f64>; 3],
) -> f64 {
    let [a, b, c] = factors;
    let (d1, d2) = (b.nrows(), c.nrows());
    let cs = scale_columns(c.as_ref(), weights);
    let per_slice: Vec<f64> = data
        .par_chunks(d1 * d2)
        .enumerate()
        .map_init(
            || vec![0.0; d1 * d2],
            |rec, (i, ts)| {
                reconstruct_slice(a.as_ref(), b.as_ref(), cs.as_ref(), i, rec);
                match mask {
                    None => ts.iter().zip(rec.iter()).map(|(x, y)| (x - y) * (x - y)).sum::<f64>(),
                    Some(m) => {
                        let ms = &m[i * d1 * d2..(i + 1) * d1 * d2];
                        ts.iter()
                            .zip(rec.iter())
                            .zip(ms)
                            .filter(|(_, o)| **o)
                            .map(|((x, y), _)| (x - y) * (x - y))
                            .sum::<f64>()
                    }
                }
            },
        )
        .collect();
    per_slice.iter().sum()
}

/// `W = X C`: `T` viewed as the row-major `(d0 d1) x d2` matrix times `C`
/// (`d2 x R`), into `w` (`(d0 d1) x R`).
pub(crate) fn contract_last(data: &[f64], dims: [usize; 3], c: &Mat<f64>, w: &mut Mat<f64>) {
    let [d0, d1, d2] = dims;
    let rows = d0 * d1;
    let r = c.ncols();
    let np = parts(rows, 2 * rows * d2 * r);
    let chunk = rows.div_ceil(np);
    let body = |(blk, out): (usize, MatMut<'_, f64>)| {
        let r0 = blk * chunk;
        let n = out.nrows();
        let x = MatRef::from_row_major_slice(&data[r0 * d2..(r0 + n) * d2], n, d2);
        matmul(out, Accum::Replace, x, c.as_ref(), 1.0, Par::Seq);
    };
    if np == 1 {
        body((0, w.as_mut()));
    } else {
        w.as_mut().par_row_chunks_mut(chunk).enumerate().for_each(body);
    }
}

/// `W_A = X ×₁ A`: `W_A[(j,k), r] = Σ_i T[i,j,k] A[i,r]`, into `w`
/// (`(d1 d2) x R`): `T` viewed as the row-major `d0 x (d1 d2)` matrix,
/// transposed, times `A`; parallel over blocks of output rows.
pub(crate) fn contract_first(data: &[f64], dims: [usize; 3], a: &Mat<f64>, w: &mut Mat<f64>) {
    let [d0, d1, d2] = dims;
    let cols = d1 * d2;
    let r = a.ncols();
    let np = parts(cols, 2 * d0 * cols * r);
    let chunk = cols.div_ceil(np);
    let body = |(blk, out): (usize, MatMut<'_, f64>)| {
        let q0 = blk * chunk;
        let n = out.nrows();
        let x = MatRef::from_row_major_slice_with_stride(&data[q0..], d0, n, cols);
        matmul(out, Accum::Replace, x.transpose(), a.as_ref(), 1.0, Par::Seq);
    };
    if np == 1 {
        body((0, w.as_mut()));
    } else {
        w.as_mut().par_row_chunks_mut(chunk).enumerate().for_each(body);
    }
}

/// `W_B = X ×₂ B`: `W_B[(i,k), r] = Σ_j T[i,j,k] B[j,r]`, into `w`
/// (`(d0 d2) x R`): one product `X_iᵀ B` per slice `i`; parallel over blocks
/// of whole slices.
pub(crate) fn contract_middle(data: &[f64], dims: [usize; 3], b: &Mat<f64>, w: &mut Mat<f64>) {
    let [d0, d1, d2] = dims;
    let r = b.ncols();
    let np = parts(d0, 2 * d0 * d1 * d2 * r);
    let slices = d0.div_ceil(np);
    let body = |(blk, mut out): (usize, MatMut<'_, f64>)| {
        let i0 = blk * slices;
        let ns = out.nrows() / d2;
        for s in 0..ns {
            let i = i0 + s;
            let x = MatRef::from_row_major_slice(&data[i * d1 * d2..(i + 1) * d1 * d2], d1, d2);
            matmul(out.rb_mut().subrows_mut(s * d2, d2), Accum::Replace, x.transpose(), b.as_ref(), 1.0, Par::Seq);
        }
    };
    if np == 1 {
        body((0, w.as_mut()));
    } else {
        w.as_mut().par_row_chunks_mut(slices * d2).enumerate().for_each(body);
    }
}

/// Mode-0 MTTKRP from `W = X C`: `M0[i,r] = Σ_j W[(i,j),r] B[j,r]`. In
/// general, for any partial contraction `W` with rows `(p, q)` (`q` fastest,
/// `q < b.nrows()`), the MTTKRP of the slow index `p`.
pub(crate) fn mttkrp0_from_w(w: &Mat<f64>, b: &Mat<f64>, d0: usize, m0: &mut Mat<f64>) {
    let d1 = b.nrows();
    for r in 0..b.ncols() {
        let wc = w.col_as_slice(r);
        let bc = b.col_as_slice(r);
        let out = m0.col_as_slice_mut(r);
        for i in 0..d0 {
            out[i] = dot(&wc[i * d1..(i + 1) * d1], bc);
        }
    }
}

/// Mode-1 MTTKRP from `W = X C`: `M1[j,r] = Σ_i A[i,r] W[(i,j),r]`. In
/// general, the MTTKRP of the fast index `q` of a partial contraction.
pub(crate) fn mttkrp1_from_w(w: &Mat<f64>, a: &Mat<f64>, d1: usize, m1: &mut Mat<f64>) {
    let d0 = a.nrows();
    for r in 0..a.ncols() {
        let wc = w.col_as_slice(r);
        let ac = a.col_as_slice(r);
        let out = m1.col_as_slice_mut(r);
        out.iter_mut().for_each(|x| *x = 0.0);
        for i in 0..d0 {
            let s = ac[i];
            for (o, x) in out.iter_mut().zip(&wc[i * d1..(i + 1) * d1]) {
                *o += s * x;
            }
        }
    }
}

#[inline]
fn dot(x: &[f64], y: &[f64]) -> f64 {
    // four accumulators: vectorizes, fixed order
    let mut acc = [0.0f64; 4];
    let n4 = x.len() / 4 * 4;
    for (cx, cy) in x[..n4].chunks_exact(4).zip(y[..n4].chunks_exact(4)) {
        for t in 0..4 {
            acc[t] += cx[t] * cy[t];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for t in n4..x.len() {
        s += x[t] * y[t];
    }
    s
}

/// Mode-2 MTTKRP `M2 = X^T (A ⊙ B)`, i.e. `M2[k,r] = Σ_ij T[i,j,k] A[i,r] B[j,r]`,
/// forming the Khatri-Rao product only in blocks of [`KR_BLOCK_ROWS`] rows;
/// parallel over blocks of output rows `k`.
pub(crate) fn mttkrp2(data: &[f64], dims: [usize; 3], a: &Mat<f64>, b: &Mat<f64>, m2: &mut Mat<f64>) {
    let [d0, d1, d2] = dims;
    let r = a.ncols();
    let spb = (KR_BLOCK_ROWS / d1).clamp(1, d0); // slices per block
    let np = parts(d2, 2 * d0 * d1 * d2 * r);
    let chunk = d2.div_ceil(np);
    let body = |(blk, mut out): (usize, MatMut<'_, f64>)| {
        let k0 = blk * chunk;
        let kn = out.nrows();
        let mut kr = Mat::<f64>::zeros(spb * d1, r);
        let mut i0 = 0;
        while i0 < d0 {
            let ns = spb.min(d0 - i0);
            for c in 0..r {
                let bc = b.col_as_slice(c);
                let kc = kr.col_as_slice_mut(c);
                for s in 0..ns {
                    let ai = a[(i0 + s, c)];
                    for (o, x) in kc[s * d1..(s + 1) * d1].iter_mut().zip(bc) {
                        *o = ai * x;
                    }
                }
            }
            let x = MatRef::from_row_major_slice_with_stride(&data[i0 * d1 * d2 + k0..], ns * d1, kn, d2);
            let acc = if i0 == 0 { Accum::Replace } else { Accum::Add };
            matmul(out.rb_mut(), acc, x.transpose(), kr.as_ref().subrows(0, ns * d1), 1.0, Par::Seq);
            i0 += ns;
        }
    };
    if np == 1 {
        body((0, m2.as_mut()));
    } else {
        m2.as_mut().par_row_chunks_mut(chunk).enumerate().for_each(body);
    }
}

/// The MTTKRP of `t` for `mode` (0, 1 or 2) with the three factors (the one of
/// `mode` is ignored): `M_mode = T_(mode) (⊙ of the other two factors)`, with
/// `T_(0)[i, j d2 + k] = T[i,j,k]` and the Khatri-Rao rows ordered to match.
/// Missing entries count as 0.
pub fn mttkrp(t: &Tensor3, factors: &[Mat<f64>; 3], mode: usize) -> Result<Mat<f64>> {
    ensure!(mode < 3, "mode must be 0, 1 or 2, got {mode}");
    let dims = t.dims();
    let r = factors[0].ncols();
    for (m, f) in factors.iter().enumerate() {
        ensure!(
            f.nrows() == dims[m] && f.ncols() == r,
            "factor {m} has shape {}x{}, expected {}x{r}",
            f.nrows(),
            f.ncols(),
            dims[m]
        );
    }
    let [a, b, c] = factors;
    let mut out = Mat::zeros(dims[mode], r);
    if mode == 2 {
        mttkrp2(t.data(), dims, a, b, &mut out);
    } else {
        let mut w = Mat::zeros(dims[0] * dims[1], r);
        contract_last(t.data(), dims, c, &mut w);
        if mode == 0 {
            mttkrp0_from_w(&w, b, dims[0], &mut out);
        } else {
            mttkrp1_from_w(&w, a, dims[1], &mut out);
        }
    }
    Ok(out)
}

/// `F^T F`.
pub(crate) fn gram(f: &Mat<f64>) -> Mat<f64> {
    let r = f.ncols();
    let mut g = Mat::zeros(r, r);
    matmul(g.as_mut(), Accum::Replace, f.transpose(), f.as_ref(), 1.0, Par::Seq);
    g
}

/// Elementwise product.
pub(crate) fn hadamard(x: &Mat<f64>, y: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] * y[(i, j)])
}

/// `Σ_ij X[i,j] Y[i,j]`.
pub(crate) fn frob_dot(x: &Mat<f64>, y: &Mat<f64>) -> f64 {
    (0..x.ncols()).map(|j| dot(x.col_as_slice(j), y.col_as_slice(j))).sum()
}

/// `X = M (V + reg I)^{-1}` for a symmetric positive semi-definite `V`
/// (`R x R`): Cholesky; if it fails, Cholesky with a tiny ridge
/// (`1e-12 · mean diagonal`); if that fails too, the pseudo-inverse from the
/// eigendecomposition (the minimum-norm least-squares solution).
pub(crate) fn solve_gram(v: &Mat<f64>, reg: f64, m: &Mat<f64>) -> Mat<f64> {
    let r = v.nrows();
    let mut vv = v.clone();
    for i in 0..r {
        vv[(i, i)] += reg;
    }
    let mean_diag = (0..r).map(|i| vv[(i, i)].abs()).sum::<f64>() / r as f64;
    for ridge in [0.0, 1e-12 * mean_diag.max(f64::MIN_POSITIVE)] {
        let mut w = vv.clone();
        for i in 0..r {
            w[(i, i)] += ridge;
        }
        if let Ok(llt) = w.llt(Side::Lower) {
            let mut xt = m.transpose().to_owned();
            llt.solve_in_place(xt.as_mut());
            if (0..xt.ncols()).all(|j| xt.col_as_slice(j).iter().all(|x| x.is_finite())) {
                return xt.transpose().to_owned();
            }
        }
    }
    match vv.self_adjoint_eigen(Side::Lower) {
        Ok(evd) => {
            let pinv = evd.pseudoinverse();
            let mut x = Mat::zeros(m.nrows(), r);
            matmul(x.as_mut(), Accum::Replace, m.as_ref(), pinv.as_ref(), 1.0, Par::Seq);
            x
        }
        Err(_) => Mat::from_fn(m.nrows(), r, |_, _| f64::NAN),
    }
}

/// One sweep of non-negative coordinate descent (HALS) on every row `x` of
/// `x` for `min_x ½ xᵀ(V + reg I)x − mᵀx, x ≥ 0` (rows share `V`): column by
/// column, `x_r ← max(0, x_r + (m_r − (x V)_r) / V_rr)`. Each coordinate step
/// is an exact minimization, so the objective never increases.
pub(crate) fn hals_sweep(v: &Mat<f64>, reg: f64, m: &Mat<f64>, x: &mut Mat<f64>) {
    let (d, r) = (x.nrows(), x.ncols());
    let mut num = vec![0.0; d];
    for c in 0..r {
        let vcc = v[(c, c)] + reg;
        if vcc <= 0.0 {
            x.col_as_slice_mut(c).iter_mut().for_each(|t| *t = 0.0);
            continue;
        }
        num.copy_from_slice(m.col_as_slice(c));
        for s in 0..r {
            let vs = v[(s, c)] + if s == c { reg } else { 0.0 };
            if vs != 0.0 {
                for (n, xs) in num.iter_mut().zip(x.col_as_slice(s)) {
                    *n -= xs * vs;
                }
            }
        }
        for (xi, n) in x.col_as_slice_mut(c).iter_mut().zip(&num) {
            *xi = (*xi + n / vcc).max(0.0);
        }
    }
}

/// Gram matrix of the mode-`mode` unfolding, `T_(mode) T_(mode)^T`
/// (`d_mode x d_mode`), by matrix products over the C-order data.
pub(crate) fn unfolding_gram(data: &[f64], dims: [usize; 3], mode: usize) -> Mat<f64> {
    let [d0, d1, d2] = dims;
    let par = Par::rayon(0);
    match mode {
        0 => {
            let x = MatRef::from_row_major_slice(data, d0, d1 * d2);
            let mut g = Mat::zeros(d0, d0);
            matmul(g.as_mut(), Accum::Replace, x, x.transpose(), 1.0, par);
            g
        }
        1 => {
            let mut g = Mat::zeros(d1, d1);
            for i in 0..d0 {
                let x = MatRef::from_row_major_slice(&data[i * d1 * d2..(i + 1) * d1 * d2], d1, d2);
                matmul(g.as_mut(), if i == 0 { Accum::Replace } else { Accum::Add }, x, x.transpose(), 1.0, par);
            }
            g
        }
        _ => {
            let x = MatRef::from_row_major_slice(data, d0 * d1, d2);
            let mut g = Mat::zeros(d2, d2);
            matmul(g.as_mut(), Accum::Replace, x.transpose(), x, 1.0, par);
            g
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    fn gaussian(g: &mut rng::Rng, m: usize, n: usize) -> Mat<f64> {
        let v: Vec<f64> = (0..m * n).map(|_| rng::normal(g)).collect();
        Mat::from_fn(m, n, |i, j| v[i * n + j])
    }

    /// The textbook MTTKRP: the explicit unfolding times the explicit
    /// Khatri-Rao product.
    fn explicit_mttkrp(t: &Tensor3, f: &[Mat<f64>; 3], mode: usize) -> Mat<f64> {
        let d = t.dims();
        let (o1, o2) = match mode {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        let r = f[0].ncols();
        // unfolding: rows = index of `mode`, columns = (o1, o2) with o2 fastest
        let unf = Mat::from_fn(d[mode], d[o1] * d[o2], |p, col| {
            let (q, s) = (col / d[o2], col % d[o2]);
            let mut idx = [0; 3];
            idx[mode] = p;
            idx[o1] = q;
            idx[o2] = s;
            t.get(idx[0], idx[1], idx[2])
        });
        let kr = Mat::from_fn(d[o1] * d[o2], r, |row, c| f[o1][(row / d[o2], c)] * f[o2][(row % d[o2], c)]);
        &unf * &kr
    }

    #[test]
    fn mttkrp_matches_the_explicit_khatri_rao_formula() {
        let mut g = rng::rng(3);
        // odd sizes; d1 > KR block rows / few slices would not matter here
        for (dims, r) in [([5, 4, 3], 3), ([7, 2, 9], 4), ([1, 6, 2], 2), ([3, 3, 3], 5)] {
            let data: Vec<f64> = (0..dims[0] * dims[1] * dims[2]).map(|_| rng::normal(&mut g)).collect();
            let t = Tensor3::new(dims, data).unwrap();
            let f = [gaussian(&mut g, dims[0], r), gaussian(&mut g, dims[1], r), gaussian(&mut g, dims[2], r)];
            for mode in 0..3 {
                let fast = mttkrp(&t, &f, mode).unwrap();
                let slow = explicit_mttkrp(&t, &f, mode);
                let err = (&fast - &slow).norm_l2() / slow.norm_l2();
                assert!(err < 1e-13, "mode {mode} dims {dims:?}: {err}");
            }
        }
        let t = Tensor3::new([2, 2, 2], vec![1.0; 8]).unwrap();
        let f = [Mat::zeros(2, 1), Mat::zeros(3, 1), Mat::zeros(2, 1)];
        assert!(mttkrp(&t, &f, 0).is_err());
    }

    #[test]
    fn mttkrp_in_parallel_blocks_matches_one_block() {
        // big enough for several blocks (and several Khatri-Rao row blocks)
        let dims = [40, 60, 30];
        let mut g = rng::rng(5);
        let data: Vec<f64> = (0..dims[0] * dims[1] * dims[2]).map(|_| rng::normal(&mut g)).collect();
        let t = Tensor3::new(dims, data).unwrap();
        let f = [gaussian(&mut g, 40, 6), gaussian(&mut g, 60, 6), gaussian(&mut g, 30, 6)];
        let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        for mode in 0..3 {
            let one = pool(1).install(|| mttkrp(&t, &f, mode).unwrap());
            let three = pool(3).install(|| mttkrp(&t, &f, mode).unwrap());
            let slow = explicit_mttkrp(&t, &f, mode);
            assert!((&one - &slow).norm_l2() / slow.norm_l2() < 1e-13);
            assert!((&three - &slow).norm_l2() / slow.norm_l2() < 1e-13);
            let again = pool(3).install(|| mttkrp(&t, &f, mode).unwrap());
            assert_eq!(three, again, "same thread count, same bits");
        }
    }

    #[test]
    fn all_three_partial_contractions_give_the_mttkrps() {
        let dims = [5, 7, 3];
        let mut g = rng::rng(9);
        let data: Vec<f64> = (0..105).map(|_| rng::normal(&mut g)).collect();
        let t = Tensor3::new(dims, data).unwrap();
        let f = [gaussian(&mut g, 5, 4), gaussian(&mut g, 7, 4), gaussian(&mut g, 3, 4)];
        let want: Vec<Mat<f64>> = (0..3).map(|m| explicit_mttkrp(&t, &f, m)).collect();
        let close = |x: &Mat<f64>, y: &Mat<f64>| assert!((x - y).norm_l2() < 1e-13 * y.norm_l2());
        let [a, b, c] = &f;
        let mut wa = Mat::zeros(21, 4);
        contract_first(t.data(), dims, a, &mut wa);
        let mut wb = Mat::zeros(15, 4);
        contract_middle(t.data(), dims, b, &mut wb);
        let mut m = Mat::zeros(7, 4);
        mttkrp0_from_w(&wa, c, 7, &mut m);
        close(&m, &want[1]);
        let mut m = Mat::zeros(3, 4);
        mttkrp1_from_w(&wa, b, 3, &mut m);
        close(&m, &want[2]);
        let mut m = Mat::zeros(5, 4);
        mttkrp0_from_w(&wb, c, 5, &mut m);
        close(&m, &want[0]);
        let mut m = Mat::zeros(3, 4);
        mttkrp1_from_w(&wb, a, 3, &mut m);
        close(&m, &want[2]);
    }

    #[test]
    fn solve_gram_handles_singular_systems() {
        let mut g = rng::rng(1);
        let f = gaussian(&mut g, 6, 3);
        let v = gram(&f);
        let x_true = gaussian(&mut g, 4, 3);
        let m = &x_true * &v;
        let x = solve_gram(&v, 0.0, &m);
        assert!((&x - &x_true).norm_l2() < 1e-10);
        // rank-1 V: pseudo-inverse / ridge, finite and consistent
        let v1 = Mat::from_fn(3, 3, |_, _| 1.0);
        let m1 = Mat::from_fn(2, 3, |i, _| i as f64 + 1.0);
        let x1 = solve_gram(&v1, 0.0, &m1);
        let back = &x1 * &v1;
        assert!((&back - &m1).norm_l2() < 1e-6 * m1.norm_l2(), "{back:?}");
    }

    #[test]
    fn hals_sweep_never_increases_the_objective_and_stays_non_negative() {
        let mut g = rng::rng(2);
        let f = gaussian(&mut g, 8, 4);
        let v = gram(&f);
        let m = gaussian(&mut g, 5, 4);
        let obj = |x: &Mat<f64>| 0.5 * frob_dot(&(x * &v), x) - frob_dot(&m, x);
        let mut x = Mat::from_fn(5, 4, |_, _| 0.5);
        let mut last = obj(&x);
        for _ in 0..20 {
            hals_sweep(&v, 0.0, &m, &mut x);
            let o = obj(&x);
            assert!(o <= last + 1e-12);
            last = o;
            assert!((0..4).all(|c| x.col_as_slice(c).iter().all(|&t| t >= 0.0)));
        }
    }
}
