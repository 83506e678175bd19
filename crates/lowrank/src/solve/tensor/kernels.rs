//! Dense kernels of CP-ALS on a C-order 3-way tensor `T` (`d0 x d1 x d2`).
//!
//! The MTTKRPs (matricized tensor times Khatri-Rao product) never form the
//! Khatri-Rao product of two whole factors: one pass over the tensor
//! contracts it with one factor (`X ×₃ C`, `X ×₂ B` or `X ×₁ A`, the
//! register-tiled kernels of `super::tiles`), and both MTTKRPs of the two
//! other modes follow from that partial contraction in `O(N R / d)` (the
//! 3-way dimension tree). CP-ALS pairs consecutive updates on one
//! contraction: 1.5 passes over the tensor per iteration.
//!
//! Parallelism: every pass splits its *output rows* between rayon's threads
//! (one block for small problems), and every output is summed in a fixed
//! order, so the result does not depend on the thread count.

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::Solve;
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;

use super::tiles;
use crate::data::Tensor3;
use crate::error::{Result, ensure};
use crate::solve::als::linalg;
use crate::team::Team;

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

/// `W = X ×₃ C`: `W[(i,j), :] = Σ_k T[i,j,k] C[k, :]`, `T` read as the
/// row-major `(d0 d1) x d2` matrix; `w` becomes `(d0 d1)` padded rows
/// ([`tiles::pack_rows`] layout).
pub(crate) fn contract_last(data: &[f64], dims: [usize; 3], c: &Mat<f64>, w: &mut Vec<f64>, team: Option<&Team>) {
    let [d0, d1, d2] = dims;
    let rp = tiles::padded(c.ncols());
    w.resize(d0 * d1 * rp, 0.0);
    tiles::x_times_f(team, data, d0 * d1, d2, &tiles::pack_rows(c.as_ref()), rp, w);
}

/// `W = X ×₁ A`: `W[(j,k), :] = Σ_i T[i,j,k] A[i, :]`, `T` read as the
/// row-major `d0 x (d1 d2)` matrix, transposed; `w` becomes `(d1 d2)` padded
/// rows.
pub(crate) fn contract_first(data: &[f64], dims: [usize; 3], a: &Mat<f64>, w: &mut Vec<f64>, team: Option<&Team>) {
    let [d0, d1, d2] = dims;
    let rp = tiles::padded(a.ncols());
    w.resize(d1 * d2 * rp, 0.0);
    tiles::xt_times_f(team, data, d0, d1 * d2, d1 * d2, &tiles::pack_rows(a.as_ref()), rp, w);
}

/// `W = X ×₂ B`: `W[(i,k), :] = Σ_j T[i,j,k] B[j, :]`, one `X_iᵀ B` per
/// slice `i`; `w` becomes `(d0 d2)` padded rows.
pub(crate) fn contract_middle(data: &[f64], dims: [usize; 3], b: &Mat<f64>, w: &mut Vec<f64>, team: Option<&Team>) {
    let [d0, d1, d2] = dims;
    let rp = tiles::padded(b.ncols());
    w.resize(d0 * d2 * rp, 0.0);
    tiles::slices_t_times_f(team, data, d0, d1, d2, &tiles::pack_rows(b.as_ref()), rp, w);
}

/// MTTKRP of the slow index `p` of a partial contraction `w` (rows `(p, q)`,
/// `q` fastest, `f.nrows()` of them): `M[p, :] = Σ_q W[(p,q), :] ∘ F[q, :]`
/// (`np x R`). From `X ×₃ C` with `F = B`: the mode-0 MTTKRP.
pub(crate) fn mttkrp0_from_w(w: &[f64], f: &Mat<f64>, np: usize, team: Option<&Team>) -> Mat<f64> {
    let (nq, r) = (f.nrows(), f.ncols());
    let rp = tiles::padded(r);
    let mut out = vec![0.0; np * rp];
    tiles::mttkrp_slow(team, w, &tiles::pack_rows(f.as_ref()), np, nq, rp, &mut out);
    tiles::unpack_rows(&out, np, r)
}

/// MTTKRP of the fast index `q` of a partial contraction `w` (rows `(p, q)`,
/// `f.nrows()` values of `p`): `M[q, :] = Σ_p F[p, :] ∘ W[(p,q), :]`
/// (`nq x R`). From `X ×₃ C` with `F = A`: the mode-1 MTTKRP.
pub(crate) fn mttkrp1_from_w(w: &[f64], f: &Mat<f64>, nq: usize, team: Option<&Team>) -> Mat<f64> {
    let (np, r) = (f.nrows(), f.ncols());
    let rp = tiles::padded(r);
    let mut out = vec![0.0; nq * rp];
    tiles::mttkrp_fast(team, w, &tiles::pack_rows(f.as_ref()), np, nq, rp, &mut out);
    tiles::unpack_rows(&out, nq, r)
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
/// by `X ×₂ B` and the fast-index MTTKRP (no Khatri-Rao product is formed).
pub(crate) fn mttkrp2(data: &[f64], dims: [usize; 3], a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    let mut w = Vec::new();
    contract_middle(data, dims, b, &mut w, None);
    mttkrp1_from_w(&w, a, dims[2], None)
}

/// The MTTKRP of `t` for `mode` (0, 1 or 2) with the three factors (the one of
/// `mode` is ignored): `M_mode = T_(mode) (⊙ of the other two factors)`, with
/// `T_(0)[i, j d2 + k] = T[i,j,k]` and the Khatri-Rao rows ordered to match.
/// Missing entries count as 0.
pub fn mttkrp(t: &Tensor3, factors: &[Mat<f64>; 3], mode: usize) -> Result<Mat<f64>> {
    ensure!(mode < 3, "mode must be 0, 1 or 2, got {mode}");
    let dims = t.dims();
    let r = factors[0].ncols();
    ensure!(r >= 1, "the factors need at least one column");
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
    if mode == 2 {
        return Ok(mttkrp2(t.data(), dims, a, b));
    }
    let mut w = Vec::new();
    contract_last(t.data(), dims, c, &mut w, None);
    Ok(if mode == 0 { mttkrp0_from_w(&w, b, dims[0], None) } else { mttkrp1_from_w(&w, a, dims[1], None) })
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

/// Cholesky factorization `g = Rᵀ R` of the symmetric row-major `r x r` `g`
/// in place ([`linalg::cholesky`]: `R` in the upper triangle); false when a
/// pivot is not safely positive (below `1e-13` of the largest diagonal entry:
/// the system is then solved with a ridge, or by the pseudo-inverse).
pub(crate) fn cholesky_in_place(g: &mut [f64], r: usize) -> bool {
    let max_diag = (0..r).map(|i| g[i * r + i]).fold(0.0f64, f64::max);
    max_diag > 0.0
        && max_diag.is_finite()
        && linalg::cholesky(g, r)
        && (0..r).all(|j| g[j * r + j] * g[j * r + j] > 1e-13 * max_diag)
}

/// Rows solved together by [`solve_gram`].
const SUB_ROWS: usize = 8;

/// `X = M (V + reg I)^{-1}` for a symmetric positive semi-definite `V`
/// (`R x R`): Cholesky (hand-written: at the ranks of CP, `R <= ~50`, faer's
/// allocations and dispatch cost more than the arithmetic); if it fails,
/// Cholesky with a tiny ridge (`1e-12 · mean diagonal`); if that fails too,
/// the pseudo-inverse from the eigendecomposition (the minimum-norm
/// least-squares solution).
pub(crate) fn solve_gram(v: &Mat<f64>, reg: f64, m: &Mat<f64>) -> Mat<f64> {
    let r = v.nrows();
    let mut vv = v.clone();
    for i in 0..r {
        vv[(i, i)] += reg;
    }
    // symmetric: its columns are its rows
    let mut l = Vec::with_capacity(r * r);
    for c in 0..r {
        l.extend_from_slice(vv.col_as_slice(c));
    }
    if cholesky_in_place(&mut l, r) {
        // X Rᵀ R = M, forward then back substitution along the columns, for
        // blocks of SUB_ROWS rows at once: the block's column in registers,
        // one multiply-add per entry of R, independent across the rows (a
        // row at a time is a chain of dependent multiply-adds)
        let d = m.nrows();
        let nb = d.div_ceil(SUB_ROWS);
        // blk[b * r + c][t] = M[b * SUB_ROWS + t, c] (zero beyond the last row)
        let mut blk = vec![[0.0f64; SUB_ROWS]; nb * r];
        for c in 0..r {
            for (i, v) in m.col_as_slice(c).iter().enumerate() {
                blk[(i / SUB_ROWS) * r + c][i % SUB_ROWS] = *v;
            }
        }
        // X Rᵀ R = M: forward with Rᵀ (entry (i, k) is R[k][i]), back with R
        for cols in blk.chunks_exact_mut(r) {
            for i in 0..r {
                let mut acc = cols[i];
                for k in 0..i {
                    let (lik, xk) = (l[k * r + i], &cols[k]);
                    for t in 0..SUB_ROWS {
                        acc[t] -= lik * xk[t];
                    }
                }
                let inv = 1.0 / l[i * r + i];
                cols[i] = acc.map(|a| a * inv);
            }
            for i in (0..r).rev() {
                let mut acc = cols[i];
                for k in i + 1..r {
                    let (lki, xk) = (l[i * r + k], &cols[k]);
                    for t in 0..SUB_ROWS {
                        acc[t] -= lki * xk[t];
                    }
                }
                let inv = 1.0 / l[i * r + i];
                cols[i] = acc.map(|a| a * inv);
            }
        }
        let x = Mat::from_fn(d, r, |i, c| blk[(i / SUB_ROWS) * r + c][i % SUB_ROWS]);
        if (0..r).all(|c| x.col_as_slice(c).iter().all(|v| v.is_finite())) {
            return x;
        }
    }
    let mean_diag = (0..r).map(|i| vv[(i, i)].abs()).sum::<f64>() / r as f64;
    // the fast path found a pivot not safely positive: a tiny ridge
    let ridge = 1e-12 * mean_diag.max(f64::MIN_POSITIVE);
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
/// (`d_mode x d_mode`), by matrix products over the C-order data; on rayon
/// from 2²⁴ multiply-adds (faer splits a product over blocks of its output
/// only: the same bits on any thread count), sequential below (a thread
/// hand-off costs more than a 30³ tensor's Gram matrix).
pub(crate) fn unfolding_gram(data: &[f64], dims: [usize; 3], mode: usize) -> Mat<f64> {
    let [d0, d1, d2] = dims;
    let madds = dims[mode] * d0 * d1 * d2;
    let par = if madds >= 1 << 24 { Par::rayon(0) } else { Par::Seq };
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

    #[test]
    fn solve_gram_solves_the_normal_equations() {
        // row counts around the 8-row blocks, ranks 1..20: the residual of
        // X (V + reg I) = M against M
        let mut g = rng::rng(11);
        for (d, r) in [(1, 1), (7, 3), (8, 20), (37, 7), (20, 20)] {
            let f = gaussian(&mut g, r + 5, r);
            let v = gram(&f);
            let m = gaussian(&mut g, d, r);
            for reg in [0.0, 0.3] {
                let x = solve_gram(&v, reg, &m);
                let mut vr = v.clone();
                for i in 0..r {
                    vr[(i, i)] += reg;
                }
                let err = (&(&x * &vr) - &m).norm_max();
                assert!(err < 1e-9 * (1.0 + m.norm_max()), "d {d} r {r} reg {reg}: {err}");
            }
        }
        // a singular V (rank 2 of 4) with a consistent right-hand side: the
        // fallbacks (ridge, then pseudo-inverse) still solve X V = M
        let f = gaussian(&mut g, 2, 4);
        let v = gram(&f);
        let m = &gaussian(&mut g, 5, 2) * &f;
        let x = solve_gram(&v, 0.0, &m);
        assert!((&(&x * &v) - &m).norm_max() < 1e-8);
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
        // big enough for the passes to split between threads (2^21 multiply-adds)
        let dims = [80, 60, 60];
        let mut g = rng::rng(5);
        let data: Vec<f64> = (0..dims[0] * dims[1] * dims[2]).map(|_| rng::normal(&mut g)).collect();
        let t = Tensor3::new(dims, data).unwrap();
        let f = [gaussian(&mut g, 80, 6), gaussian(&mut g, 60, 6), gaussian(&mut g, 60, 6)];
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
        let mut wa = Vec::new();
        contract_first(t.data(), dims, a, &mut wa, None);
        let mut wb = Vec::new();
        contract_middle(t.data(), dims, b, &mut wb, None);
        close(&mttkrp0_from_w(&wa, c, 7, None), &want[1]);
        close(&mttkrp1_from_w(&wa, b, 3, None), &want[2]);
        close(&mttkrp0_from_w(&wb, c, 5, None), &want[0]);
        close(&mttkrp1_from_w(&wb, a, 3, None), &want[2]);
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
