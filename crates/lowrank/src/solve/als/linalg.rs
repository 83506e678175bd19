//! Small dense kernels of the ALS family: the `k x k` (or `(k+1) x (k+1)`)
//! symmetric systems every row solve builds.
//!
//! Matrices are row-major `d x d` slices of f64. Only the upper triangle is
//! accumulated by [`syr_upper`]; [`cholesky`] reads the upper triangle and
//! writes the factor `R` (with `A = R^T R`) in place. A hand-written
//! Cholesky is used because these systems are tiny (d <= ~256) and solved
//! once per row per sweep: a call into a general library costs more than the
//! factorization itself at d = 10..64 (measured in `benches/als.rs`).

/// `A[p][q] += w * x[p] * x[q]` for `q >= p` (upper triangle, row-major `d x d`).
#[inline]
pub fn syr_upper(a: &mut [f64], d: usize, x: &[f64], w: f64) {
    for p in 0..d {
        let s = w * x[p];
        let row = &mut a[p * d + p..p * d + d];
        for (r, &xq) in row.iter_mut().zip(&x[p..d]) {
            *r += s * xq;
        }
    }
}

/// `A += sum_t X_t X_t^T` over the rows of `xs` (`n x d`, row-major), upper
/// triangle only; four rows at a time so that `A` is loaded and stored once
/// per four rank-one updates.
pub fn syrk_upper(a: &mut [f64], d: usize, xs: &[f64]) {
    let n = xs.len() / d.max(1);
    let mut t = 0;
    while t + 4 <= n {
        let (x0, x1, x2, x3) = (&xs[t * d..], &xs[(t + 1) * d..], &xs[(t + 2) * d..], &xs[(t + 3) * d..]);
        for p in 0..d {
            let (s0, s1, s2, s3) = (x0[p], x1[p], x2[p], x3[p]);
            let row = &mut a[p * d + p..p * d + d];
            let (y0, y1, y2, y3) = (&x0[p..d], &x1[p..d], &x2[p..d], &x3[p..d]);
            for q in 0..row.len() {
                row[q] += s0 * y0[q] + s1 * y1[q] + s2 * y2[q] + s3 * y3[q];
            }
        }
        t += 4;
    }
    while t < n {
        syr_upper(a, d, &xs[t * d..(t + 1) * d], 1.0);
        t += 1;
    }
}

/// Round `d` up to a multiple of 8 (the row stride of [`gram_padded`]).
#[inline]
pub fn padded(d: usize) -> usize {
    d.div_ceil(8) * 8
}

#[inline(always)]
fn madd<const FMA: bool>(x: f64, y: f64, acc: f64) -> f64 {
    if FMA { x.mul_add(y, acc) } else { x * y + acc }
}

#[inline(always)]
fn gram_padded_body<const FMA: bool>(a: &mut [f64], d: usize, dp: usize, xs: &[f64], ts: &[f64], rhs: &mut [f64]) {
    let n = xs.len() / dp.max(1);
    let mut t = 0;
    while t + 2 <= n {
        let x0 = &xs[t * dp..(t + 1) * dp];
        let x1 = &xs[(t + 1) * dp..(t + 2) * dp];
        let (t0, t1) = (ts[t], ts[t + 1]);
        for ((r, y0), y1) in rhs.chunks_exact_mut(8).zip(x0.chunks_exact(8)).zip(x1.chunks_exact(8)) {
            for q in 0..8 {
                r[q] = madd::<FMA>(t1, y1[q], madd::<FMA>(t0, y0[q], r[q]));
            }
        }
        for p in 0..d {
            let (s0, s1) = (x0[p], x1[p]);
            // upper triangle, whole blocks of 8 from the block holding p
            let c0 = p / 8 * 8;
            let row = &mut a[p * dp + c0..(p + 1) * dp];
            for ((r, y0), y1) in row.chunks_exact_mut(8).zip(x0[c0..].chunks_exact(8)).zip(x1[c0..].chunks_exact(8)) {
                for q in 0..8 {
                    r[q] = madd::<FMA>(s1, y1[q], madd::<FMA>(s0, y0[q], r[q]));
                }
            }
        }
        t += 2;
    }
    if t < n {
        let x0 = &xs[t * dp..(t + 1) * dp];
        let t0 = ts[t];
        for (r, y0) in rhs.chunks_exact_mut(8).zip(x0.chunks_exact(8)) {
            for q in 0..8 {
                r[q] = madd::<FMA>(t0, y0[q], r[q]);
            }
        }
        for p in 0..d {
            let s0 = x0[p];
            let c0 = p / 8 * 8;
            let row = &mut a[p * dp + c0..(p + 1) * dp];
            for (r, y0) in row.chunks_exact_mut(8).zip(x0[c0..].chunks_exact(8)) {
                for q in 0..8 {
                    r[q] = madd::<FMA>(s0, y0[q], r[q]);
                }
            }
        }
    }
}

/// The Gram matrix by register tiles: for each tile of `R` rows x 8 columns
/// of the upper triangle, the `R x 8` accumulators stay in registers while
/// every row of `xs` streams by (one vector load and `R` broadcasts per `R`
/// vector multiply-adds), instead of loading and storing `A` for every row.
/// `R = 8` with AVX-512 (8 of its 32 registers), 4 with AVX2 (8 of 16).
#[inline(always)]
fn gram_tiled_body<const R: usize>(a: &mut [f64], d: usize, dp: usize, xs: &[f64], ts: &[f64], rhs: &mut [f64]) {
    let n = xs.len() / dp.max(1);
    let xs = &xs[..n * dp];
    for (r, x) in rhs.chunks_exact_mut(8).enumerate() {
        let mut acc = [0.0f64; 8];
        for (row, &t) in xs.chunks_exact(dp).zip(ts) {
            let y = &row[r * 8..r * 8 + 8];
            for q in 0..8 {
                acc[q] = t.mul_add(y[q], acc[q]);
            }
        }
        for q in 0..8 {
            x[q] += acc[q];
        }
    }
    let mut p0 = 0;
    while p0 < d {
        // column blocks that meet the upper triangle of rows p0..p0+R
        for c0 in (p0 / 8 * 8..dp).step_by(8) {
            let mut acc = [[0.0f64; 8]; R];
            for row in xs.chunks_exact(dp) {
                let y = &row[c0..c0 + 8];
                let s = &row[p0..p0 + R];
                for i in 0..R {
                    for q in 0..8 {
                        acc[i][q] = s[i].mul_add(y[q], acc[i][q]);
                    }
                }
            }
            for i in 0..R.min(d - p0) {
                let dst = &mut a[(p0 + i) * dp + c0..(p0 + i) * dp + c0 + 8];
                for q in 0..8 {
                    dst[q] += acc[i][q];
                }
            }
        }
        p0 += R;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gram_padded_avx2(a: &mut [f64], d: usize, dp: usize, xs: &[f64], ts: &[f64], rhs: &mut [f64]) {
    gram_tiled_body::<4>(a, d, dp, xs, ts, rhs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn gram_padded_avx512(a: &mut [f64], d: usize, dp: usize, xs: &[f64], ts: &[f64], rhs: &mut [f64]) {
    gram_tiled_body::<8>(a, d, dp, xs, ts, rhs)
}

/// `A += X^T X` (upper triangle) and `rhs += X^T t` for the rows of `xs`
/// (row stride `dp = padded(d)`, entries past `d` zero) and targets `ts`.
/// `a` is `d x dp` row-major (row stride `dp`); entries of the strict lower
/// triangle inside the diagonal blocks are also written, the rest of the
/// lower triangle is left alone. `rhs` has length `dp`.
///
/// The hot loop of every ALS sweep. Register-tiled with AVX-512 or AVX2 +
/// FMA when the CPU has them (checked at run time; results are then
/// identical run to run on the same machine), else the portable loop.
pub fn gram_padded(a: &mut [f64], d: usize, dp: usize, xs: &[f64], ts: &[f64], rhs: &mut [f64]) {
    debug_assert!(dp.is_multiple_of(8) && dp >= d && a.len() >= d * dp && rhs.len() == dp);
    debug_assert!(xs.len().is_multiple_of(dp.max(1)) && ts.len() >= xs.len() / dp.max(1));
    if d <= 4 {
        // tiny systems (the notebook's rank 2): the exact upper triangle,
        // not whole 8-wide tiles of padding
        for (row, &t) in xs.chunks_exact(dp).zip(ts) {
            for p in 0..d {
                let xp = row[p];
                rhs[p] += t * xp;
                for q in p..d {
                    a[p * dp + q] += xp * row[q];
                }
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if crate::simd::has_avx512() {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { gram_padded_avx512(a, d, dp, xs, ts, rhs) };
            return;
        }
        if crate::simd::has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { gram_padded_avx2(a, d, dp, xs, ts, rhs) };
            return;
        }
    }
    gram_padded_body::<false>(a, d, dp, xs, ts, rhs)
}

#[inline(always)]
fn dot_body<const FMA: bool>(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for q in 0..8 {
            acc[q] = madd::<FMA>(x[q], y[q], acc[q]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s = madd::<FMA>(*x, *y, s);
    }
    s
}

#[inline(always)]
fn axpy_body<const FMA: bool>(y: &mut [f64], a: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = madd::<FMA>(a, *xi, *yi);
    }
}

/// `y = G v + sum_t w_t (x_t . v) x_t` where `G` is full `k x k` row-major,
/// `xs` holds rows of length `k` and `ws` their weights: the matrix-vector
/// product of implicit ALS's conjugate gradient.
#[inline(always)]
fn gram_apply_body<const FMA: bool>(g: &[f64], xs: &[f64], ws: &[f64], k: usize, v: &[f64], y: &mut [f64]) {
    for p in 0..k {
        y[p] = dot_body::<FMA>(&g[p * k..(p + 1) * k], v);
    }
    for (t, &w) in ws.iter().enumerate() {
        let x = &xs[t * k..(t + 1) * k];
        let c = w * dot_body::<FMA>(x, v);
        axpy_body::<FMA>(y, c, x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gram_apply_avx2(g: &[f64], xs: &[f64], ws: &[f64], k: usize, v: &[f64], y: &mut [f64]) {
    gram_apply_body::<true>(g, xs, ws, k, v, y)
}

/// `y = (G + sum_t w_t x_t x_t^T) v` without forming the matrix (`G` full
/// `k x k` row-major, `xs` rows of length `k`); AVX2 + FMA when available.
pub fn gram_apply(g: &[f64], xs: &[f64], ws: &[f64], k: usize, v: &[f64], y: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::simd::has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { gram_apply_avx2(g, xs, ws, k, v, y) };
            return;
        }
    }
    gram_apply_body::<false>(g, xs, ws, k, v, y)
}

#[inline(always)]
fn madd32<const FMA: bool>(x: f32, y: f32, acc: f32) -> f32 {
    if FMA { x.mul_add(y, acc) } else { x * y + acc }
}

#[inline(always)]
fn dot32_body<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for q in 0..16 {
            acc[q] = madd32::<FMA>(x[q], y[q], acc[q]);
        }
    }
    let mut h = [0.0f32; 8];
    for q in 0..8 {
        h[q] = acc[q] + acc[q + 8];
    }
    let mut s = ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]));
    for (x, y) in ra.iter().zip(rb) {
        s = madd32::<FMA>(*x, *y, s);
    }
    s
}

#[inline(always)]
fn gram_apply32_body<const FMA: bool>(g: &[f32], xs: &[f32], ws: &[f32], k: usize, v: &[f32], y: &mut [f32]) {
    // G v as a sum of rows (G is symmetric): no horizontal reductions
    y.iter_mut().for_each(|e| *e = 0.0);
    for q in 0..k {
        let vq = v[q];
        for (yi, gi) in y.iter_mut().zip(&g[q * k..(q + 1) * k]) {
            *yi = madd32::<FMA>(vq, *gi, *yi);
        }
    }
    for (t, &w) in ws.iter().enumerate() {
        let x = &xs[t * k..(t + 1) * k];
        let c = w * dot32_body::<FMA>(x, v);
        for (yi, xi) in y.iter_mut().zip(x) {
            *yi = madd32::<FMA>(c, *xi, *yi);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gram_apply32_avx2(g: &[f32], xs: &[f32], ws: &[f32], k: usize, v: &[f32], y: &mut [f32]) {
    gram_apply32_body::<true>(g, xs, ws, k, v, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn gram_apply32_avx512(g: &[f32], xs: &[f32], ws: &[f32], k: usize, v: &[f32], y: &mut [f32]) {
    gram_apply32_body::<true>(g, xs, ws, k, v, y)
}

/// [`gram_apply`] in f32 (8 lanes per AVX2 vector instead of 4): what the
/// conjugate-gradient row solves of implicit ALS use, as the `implicit`
/// library does; the CG scalars and iterates stay f64.
pub fn gram_apply32(g: &[f32], xs: &[f32], ws: &[f32], k: usize, v: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::simd::has_avx512() {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { gram_apply32_avx512(g, xs, ws, k, v, y) };
            return;
        }
        if crate::simd::has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { gram_apply32_avx2(g, xs, ws, k, v, y) };
            return;
        }
    }
    gram_apply32_body::<false>(g, xs, ws, k, v, y)
}

/// Copy the upper triangle into the lower one.
pub fn symmetrize(a: &mut [f64], d: usize) {
    for p in 0..d {
        for q in 0..p {
            a[p * d + q] = a[q * d + p];
        }
    }
}

/// In-place Cholesky `A = R^T R` from the upper triangle of `a` (row-major
/// `d x d`); `R` is written to the upper triangle. Returns `false` when `A`
/// is not (numerically) positive definite.
pub fn cholesky(a: &mut [f64], d: usize) -> bool {
    cholesky_strided(a, d, d)
}

#[inline(always)]
fn cholesky_body<const FMA: bool>(a: &mut [f64], d: usize, stride: usize) -> bool {
    // right-looking: after row j of R is final, update the trailing upper
    // triangle with its outer product; every inner loop is contiguous and
    // the rows p > j are independent of each other
    for j in 0..d {
        let ajj = a[j * stride + j];
        if !(ajj > 0.0 && ajj.is_finite()) {
            return false;
        }
        let rjj = ajj.sqrt();
        let inv = 1.0 / rjj;
        let (head, tail) = a.split_at_mut((j + 1) * stride);
        let rj = &mut head[j * stride..j * stride + d];
        rj[j] = rjj;
        for v in &mut rj[j + 1..] {
            *v *= inv;
        }
        for p in j + 1..d {
            let rjp = -rj[p];
            let row = &mut tail[(p - j - 1) * stride + p..(p - j - 1) * stride + d];
            for (x, &y) in row.iter_mut().zip(&rj[p..]) {
                *x = madd::<FMA>(rjp, y, *x);
            }
        }
    }
    true
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cholesky_avx2(a: &mut [f64], d: usize, stride: usize) -> bool {
    cholesky_body::<true>(a, d, stride)
}

/// [`cholesky`] of the `d x d` upper triangle of a matrix with row stride
/// `stride >= d` (e.g. the output of [`gram_padded`]), in place. AVX2 + FMA
/// when the CPU has them.
pub fn cholesky_strided(a: &mut [f64], d: usize, stride: usize) -> bool {
    debug_assert!(stride >= d && a.len() >= d.saturating_sub(1) * stride + d);
    #[cfg(target_arch = "x86_64")]
    {
        if crate::simd::has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { cholesky_avx2(a, d, stride) };
        }
    }
    cholesky_body::<false>(a, d, stride)
}

/// Number of systems [`cholesky_lanes`] factors at once (one f64 AVX-512
/// vector, two AVX2 vectors).
pub const LANES: usize = 8;

/// One entry of [`LANES`] interleaved systems.
pub type Lane = [f64; LANES];

#[inline(always)]
fn cholesky_lanes_body(a: &mut [Lane], d: usize, b: &mut [Lane], inv: &mut [Lane]) -> [bool; LANES] {
    let mut ok = [true; LANES];
    for j in 0..d {
        let mut ajj = a[j * d + j];
        for l in 0..LANES {
            // a failed lane continues on a harmless 1 and is reported
            if !(ajj[l] > 0.0 && ajj[l].is_finite()) {
                ok[l] = false;
                ajj[l] = 1.0;
            }
        }
        let mut rjj = [0.0; LANES];
        let mut ij = [0.0; LANES];
        for l in 0..LANES {
            rjj[l] = ajj[l].sqrt();
            ij[l] = 1.0 / rjj[l];
        }
        a[j * d + j] = rjj;
        inv[j] = ij;
        for q in j + 1..d {
            let r = &mut a[j * d + q];
            for l in 0..LANES {
                r[l] *= ij[l];
            }
        }
        for p in j + 1..d {
            let rjp = a[j * d + p];
            for q in p..d {
                let rjq = a[j * d + q];
                let t = &mut a[p * d + q];
                for l in 0..LANES {
                    t[l] = (-rjp[l]).mul_add(rjq[l], t[l]);
                }
            }
        }
    }
    // forward R^T y = b, then backward R x = y, with the stored inverses
    for i in 0..d {
        let mut y = b[i];
        for l in 0..LANES {
            y[l] *= inv[i][l];
        }
        b[i] = y;
        for q in i + 1..d {
            let r = a[i * d + q];
            let t = &mut b[q];
            for l in 0..LANES {
                t[l] = (-r[l]).mul_add(y[l], t[l]);
            }
        }
    }
    for i in (0..d).rev() {
        let mut acc = b[i];
        for q in i + 1..d {
            let (r, x) = (a[i * d + q], b[q]);
            for l in 0..LANES {
                acc[l] = (-r[l]).mul_add(x[l], acc[l]);
            }
        }
        for l in 0..LANES {
            acc[l] *= inv[i][l];
        }
        b[i] = acc;
    }
    ok
}

/// [`cholesky_lanes_body`] with one AVX-512 vector per [`Lane`], written
/// with intrinsics (the auto-vectorized body gathers and scatters).
///
/// # Safety
/// The CPU must support AVX-512F; `a.len() >= d * d`, `b.len() >= d`,
/// `inv.len() >= d`.
// The AVX-512 intrinsics and `target_feature(enable = "avx512f")` are
// stable since Rust 1.89 (the workspace's rust-version).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn cholesky_lanes_avx512(a: &mut [Lane], d: usize, b: &mut [Lane], inv: &mut [Lane]) -> [bool; LANES] {
    use std::arch::x86_64::*;
    // SAFETY: every index below is < d * d into `a`, < d into `b` and
    // `inv` (checked by the caller), and a `Lane` is 8 contiguous f64.
    unsafe {
        let ap = a.as_mut_ptr().cast::<f64>();
        let bp = b.as_mut_ptr().cast::<f64>();
        let ip = inv.as_mut_ptr().cast::<f64>();
        let ld = |p: *mut f64, i: usize| _mm512_loadu_pd(p.add(i * 8));
        let st = |p: *mut f64, i: usize, v: __m512d| _mm512_storeu_pd(p.add(i * 8), v);
        let (zero, one, inf) = (_mm512_setzero_pd(), _mm512_set1_pd(1.0), _mm512_set1_pd(f64::INFINITY));
        let mut bad: __mmask8 = 0;
        for j in 0..d {
            let ajj = ld(ap, j * d + j);
            // positive and finite (NaN fails both ordered comparisons)
            let good = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(ajj, zero) & _mm512_cmp_pd_mask::<_CMP_LT_OQ>(ajj, inf);
            bad |= !good;
            let r = _mm512_sqrt_pd(_mm512_mask_blend_pd(good, one, ajj));
            let iv = _mm512_div_pd(one, r);
            st(ap, j * d + j, r);
            st(ip, j, iv);
            for q in j + 1..d {
                st(ap, j * d + q, _mm512_mul_pd(ld(ap, j * d + q), iv));
            }
            for p in j + 1..d {
                let rjp = ld(ap, j * d + p);
                for q in p..d {
                    st(ap, p * d + q, _mm512_fnmadd_pd(rjp, ld(ap, j * d + q), ld(ap, p * d + q)));
                }
            }
        }
        for i in 0..d {
            let y = _mm512_mul_pd(ld(bp, i), ld(ip, i));
            st(bp, i, y);
            for q in i + 1..d {
                st(bp, q, _mm512_fnmadd_pd(ld(ap, i * d + q), y, ld(bp, q)));
            }
        }
        for i in (0..d).rev() {
            let mut acc = ld(bp, i);
            for q in i + 1..d {
                acc = _mm512_fnmadd_pd(ld(ap, i * d + q), ld(bp, q), acc);
            }
            st(bp, i, _mm512_mul_pd(acc, ld(ip, i)));
        }
        let mut ok = [true; LANES];
        for (l, o) in ok.iter_mut().enumerate() {
            *o = bad >> l & 1 == 0;
        }
        ok
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cholesky_lanes_avx2(a: &mut [Lane], d: usize, b: &mut [Lane], inv: &mut [Lane]) -> [bool; LANES] {
    cholesky_lanes_body(a, d, b, inv)
}

/// Solve [`LANES`] symmetric positive definite `d x d` systems at once:
/// `a` holds the interleaved matrices (entry `(p, q)` of system `l` at
/// `a[p * d + q][l]`, upper triangle read, overwritten by the Cholesky
/// factors), `b` the right-hand sides (`b[p][l]`), overwritten by the
/// solutions. Returns which systems were positive definite; the others hold
/// garbage and must be solved again (e.g. with [`solve_spd`]).
///
/// A single small system is a chain of dependent square roots, divisions
/// and multiply-adds (latency-bound); eight side by side in one vector cost
/// about as much as one. `inv` is scratch of length `d`.
pub fn cholesky_lanes(a: &mut [Lane], d: usize, b: &mut [Lane], inv: &mut [Lane]) -> [bool; LANES] {
    assert!(a.len() >= d * d && b.len() >= d && inv.len() >= d, "cholesky_lanes: buffers too small");
    #[cfg(target_arch = "x86_64")]
    {
        if crate::simd::has_avx512() {
            // SAFETY: the CPU supports AVX-512F; the lengths were checked above.
            return unsafe { cholesky_lanes_avx512(a, d, b, inv) };
        }
        if crate::simd::has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { cholesky_lanes_avx2(a, d, b, inv) };
        }
    }
    cholesky_lanes_body(a, d, b, inv)
}

/// Solve `R^T R x = b` in place given the factor of [`cholesky`].
pub fn cholesky_solve(r: &[f64], d: usize, b: &mut [f64]) {
    cholesky_solve_strided(r, d, d, b)
}

/// [`cholesky_solve`] for a factor stored with row stride `stride`.
pub fn cholesky_solve_strided(r: &[f64], d: usize, stride: usize, b: &mut [f64]) {
    // forward: R^T y = b, by columns of R^T (rows of R): contiguous
    for i in 0..d {
        let row = &r[i * stride..i * stride + d];
        let yi = b[i] / row[i];
        b[i] = yi;
        for (bq, &rq) in b[i + 1..d].iter_mut().zip(&row[i + 1..]) {
            *bq -= rq * yi;
        }
    }
    // backward: R x = y
    for i in (0..d).rev() {
        let row = &r[i * stride..i * stride + d];
        let s: f64 = row[i + 1..].iter().zip(&b[i + 1..d]).map(|(a, b)| a * b).sum();
        b[i] = (b[i] - s) / row[i];
    }
}

#[inline(always)]
fn residual_sq_body<const FMA: bool>(xs: &[f64], dp: usize, ts: &[f64], z: &[f64]) -> f64 {
    let mut s = 0.0;
    for (x, &t) in xs.chunks_exact(dp).zip(ts) {
        let e = t - dot_body::<FMA>(x, z);
        s = madd::<FMA>(e, e, s);
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn residual_sq_avx2(xs: &[f64], dp: usize, ts: &[f64], z: &[f64]) -> f64 {
    residual_sq_body::<true>(xs, dp, ts, z)
}

/// `sum_t (ts[t] - x_t . z)^2` over the rows `x_t` of `xs` (row stride `dp`,
/// `z` of length `dp`): the squared residuals of one row's least-squares
/// problem, on the rows [`gram_padded`] used. AVX2 + FMA when available.
pub fn residual_sq(xs: &[f64], dp: usize, ts: &[f64], z: &[f64]) -> f64 {
    debug_assert!(z.len() == dp && xs.len() == ts.len() * dp);
    #[cfg(target_arch = "x86_64")]
    {
        if crate::simd::has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { residual_sq_avx2(xs, dp, ts, z) };
        }
    }
    residual_sq_body::<false>(xs, dp, ts, z)
}

/// Solve the symmetric positive (semi)definite system `A x = b` (upper
/// triangle of `a` used, `a` destroyed, `b` overwritten by `x`).
///
/// When the Cholesky factorization fails (a singular or indefinite system,
/// e.g. a row with fewer observations than the rank and no regularization),
/// it is retried with a growing diagonal jitter `eps * mean(diag A)`,
/// `eps = 1e-12, 1e-9, 1e-6`: the numerical safeguard of the family, which
/// tends to the minimum-norm least-squares solution as `eps -> 0`. Returns
/// `false` only when even that fails (a non-finite system).
pub fn solve_spd(a: &mut [f64], d: usize, b: &mut [f64], work: &mut Vec<f64>) -> bool {
    work.clear();
    work.extend_from_slice(a);
    if cholesky(a, d) {
        cholesky_solve(a, d, b);
        return true;
    }
    let mean_diag = (0..d).map(|p| work[p * d + p].abs()).sum::<f64>() / d.max(1) as f64;
    let base = if mean_diag > 0.0 && mean_diag.is_finite() { mean_diag } else { 1.0 };
    for eps in [1e-12, 1e-9, 1e-6] {
        a.copy_from_slice(work);
        for p in 0..d {
            a[p * d + p] += eps * base;
        }
        if cholesky(a, d) {
            cholesky_solve(a, d, b);
            return true;
        }
    }
    false
}

/// Non-negative least squares on the normal equations: minimize
/// `1/2 x^T A x - b^T x` subject to `x[p] >= 0` for `p < constrained`
/// (the remaining coordinates, e.g. a bias, are free), for a symmetric
/// positive definite `A` (full row-major `d x d`).
///
/// The active-set method of Lawson and Hanson in the "fast NNLS" form of
/// Bro and De Jong (1997), which only needs `A = Phi^T Phi` and
/// `b = Phi^T y`. Terminates in finitely many steps; the result satisfies
/// the KKT conditions `x >= 0`, `w = b - A x <= tol`, `x_p w_p = 0` (up to
/// rounding). `x` is overwritten.
pub fn nnls(a: &[f64], b: &[f64], d: usize, constrained: usize, x: &mut [f64]) -> bool {
    let mut passive = vec![false; d];
    for p in constrained..d {
        passive[p] = true;
    }
    x.iter_mut().for_each(|v| *v = 0.0);
    let scale = (0..d).map(|p| a[p * d + p].abs()).fold(0.0, f64::max).max(1e-300);
    let bscale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    let tol = 1e-12 * bscale.max(scale);
    let mut z = vec![0.0; d];
    let mut sub = Vec::with_capacity(d * d);
    let mut rhs = Vec::with_capacity(d);
    let mut work = Vec::new();
    let mut idx: Vec<usize> = Vec::with_capacity(d);
    // solve the unconstrained problem on the passive set into z
    let mut solve_passive = |passive: &[bool], z: &mut [f64]| -> bool {
        idx.clear();
        idx.extend((0..d).filter(|&p| passive[p]));
        let m = idx.len();
        sub.clear();
        rhs.clear();
        for &p in idx.iter() {
            for &q in idx.iter() {
                sub.push(a[p * d + q]);
            }
            rhs.push(b[p]);
        }
        z.iter_mut().for_each(|v| *v = 0.0);
        if m == 0 {
            return true;
        }
        if !solve_spd(&mut sub, m, &mut rhs, &mut work) {
            return false;
        }
        for (t, &p) in idx.iter().enumerate() {
            z[p] = rhs[t];
        }
        true
    };
    if constrained < d {
        if !solve_passive(&passive, &mut z) {
            return false;
        }
        x.copy_from_slice(&z);
    }
    let max_outer = 3 * d + 10;
    for _ in 0..max_outer {
        // gradient of the negative objective: w = b - A x
        let mut best = None;
        for p in 0..constrained {
            if passive[p] {
                continue;
            }
            let w = b[p] - (0..d).map(|q| a[p * d + q] * x[q]).sum::<f64>();
            if w > tol && best.is_none_or(|(_, bw)| w > bw) {
                best = Some((p, w));
            }
        }
        let Some((p, _)) = best else { return true };
        passive[p] = true;
        let mut inner = 0;
        loop {
            inner += 1;
            if !solve_passive(&passive, &mut z) {
                return false;
            }
            let infeasible = (0..constrained).any(|q| passive[q] && z[q] <= 0.0);
            if !infeasible || inner > 3 * d + 10 {
                x.copy_from_slice(&z);
                for q in 0..constrained {
                    if x[q] < 0.0 {
                        x[q] = 0.0;
                    }
                }
                break;
            }
            // step from x toward z until the first constrained coordinate hits 0
            let mut alpha = 1.0f64;
            for q in 0..constrained {
                if passive[q] && z[q] <= 0.0 {
                    let den = x[q] - z[q];
                    if den > 0.0 {
                        alpha = alpha.min(x[q] / den);
                    }
                }
            }
            for q in 0..d {
                x[q] += alpha * (z[q] - x[q]);
            }
            for q in 0..constrained {
                if passive[q] && x[q] <= 1e-15 * (1.0 + z[q].abs()) {
                    passive[q] = false;
                    x[q] = 0.0;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;
    use faer::linalg::solvers::Solve;

    fn random_spd(d: usize, seed: u64) -> (Vec<f64>, Mat<f64>) {
        let mut g = crate::rng::rng(seed);
        let b = Mat::from_fn(d + 3, d, |_, _| crate::rng::normal(&mut g));
        let a = b.transpose() * &b + Mat::<f64>::identity(d, d) * faer::Scale(0.1);
        let flat = (0..d * d).map(|t| a[(t / d, t % d)]).collect();
        (flat, a)
    }

    #[test]
    fn cholesky_matches_faer() {
        for d in [1, 2, 5, 17, 64] {
            let (mut flat, a) = random_spd(d, d as u64);
            let rhs: Vec<f64> = (0..d).map(|t| (t as f64).sin()).collect();
            let mut x = rhs.clone();
            let mut w = Vec::new();
            assert!(solve_spd(&mut flat, d, &mut x, &mut w));
            let bm = Mat::from_fn(d, 1, |i, _| rhs[i]);
            let want = a.llt(faer::Side::Lower).unwrap().solve(&bm);
            for i in 0..d {
                assert!((x[i] - want[(i, 0)]).abs() < 1e-9 * (1.0 + want[(i, 0)].abs()), "d={d}");
            }
        }
    }

    #[test]
    fn strided_cholesky_of_the_padded_gram_matches_faer() {
        // the path of every explicit ALS row: gram_padded, then the strided
        // factorization and solve in place, against faer on the same system
        for (d, n) in [(1, 3), (3, 7), (16, 40), (17, 30), (51, 80)] {
            let dp = padded(d);
            let mut g = crate::rng::rng(d as u64 + 100);
            let mut xs = vec![0.0; n * dp];
            for t in 0..n {
                for p in 0..d {
                    xs[t * dp + p] = crate::rng::normal(&mut g);
                }
            }
            let ts: Vec<f64> = (0..n).map(|_| crate::rng::normal(&mut g)).collect();
            let mut a = vec![0.0; d * dp];
            let mut rhs = vec![0.0; dp];
            gram_padded(&mut a, d, dp, &xs, &ts, &mut rhs);
            for p in 0..d {
                a[p * dp + p] += 0.5;
            }
            let am = Mat::from_fn(d, d, |i, j| {
                (0..n).map(|t| xs[t * dp + i] * xs[t * dp + j]).sum::<f64>() + if i == j { 0.5 } else { 0.0 }
            });
            let bm = Mat::from_fn(d, 1, |i, _| (0..n).map(|t| xs[t * dp + i] * ts[t]).sum::<f64>());
            let want = am.llt(faer::Side::Lower).unwrap().solve(&bm);
            assert!(cholesky_strided(&mut a, d, dp));
            let mut x = rhs[..d].to_vec();
            cholesky_solve_strided(&a, d, dp, &mut x);
            for i in 0..d {
                assert!((x[i] - want[(i, 0)]).abs() < 1e-10 * (1.0 + want[(i, 0)].abs()), "d {d} i {i}");
            }
            // the residual of the solution, against a direct sum
            let mut z = x.clone();
            z.resize(dp, 0.0);
            let direct: f64 =
                (0..n).map(|t| (ts[t] - (0..d).map(|p| xs[t * dp + p] * x[p]).sum::<f64>()).powi(2)).sum();
            assert!((residual_sq(&xs, dp, &ts, &z) - direct).abs() < 1e-12 * (1.0 + direct));
        }
        // not positive definite: reported, not a garbage factor
        let mut a = vec![1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!(!cholesky_strided(&mut a, 2, 8));
    }

    #[test]
    fn cholesky_lanes_matches_faer_and_flags_bad_systems() {
        for d in [1, 2, 7, 16, 17, 33] {
            let mut a = vec![[0.0; LANES]; d * d];
            let mut b = vec![[0.0; LANES]; d];
            let mut want = vec![vec![0.0; d]; LANES];
            for l in 0..LANES {
                let (flat, am) = random_spd(d, 1000 + (d * LANES + l) as u64);
                let rhs: Vec<f64> = (0..d).map(|t| ((t + l) as f64).cos()).collect();
                for p in 0..d {
                    for q in 0..d {
                        a[p * d + q][l] = flat[p * d + q];
                    }
                    b[p][l] = rhs[p];
                }
                let z = am.llt(faer::Side::Lower).unwrap().solve(&Mat::from_fn(d, 1, |i, _| rhs[i]));
                want[l] = (0..d).map(|i| z[(i, 0)]).collect();
            }
            // lane 3: indefinite (negative last pivot); lane 5: NaN
            let bad = d - 1;
            a[bad * d + bad][3] = -1e6;
            a[0][5] = f64::NAN;
            // the dispatched kernel (AVX-512 where available) and the portable body
            // (what machines without AVX-512 run) must both agree with faer
            type Kernel = fn(&mut [Lane], usize, &mut [Lane], &mut [Lane]) -> [bool; LANES];
            for (name, kernel) in
                [("dispatched", cholesky_lanes as Kernel), ("portable", cholesky_lanes_body as Kernel)]
            {
                let (mut a, mut b) = (a.clone(), b.clone());
                let mut inv = vec![[0.0; LANES]; d];
                let ok = kernel(&mut a, d, &mut b, &mut inv);
                for l in 0..LANES {
                    assert_eq!(ok[l], l != 3 && l != 5, "{name}: d {d} lane {l}");
                    if ok[l] {
                        for i in 0..d {
                            let (got, w) = (b[i][l], want[l][i]);
                            assert!((got - w).abs() < 1e-9 * (1.0 + w.abs()), "{name}: d {d} l {l} i {i}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn syrk_matches_rank_one_updates() {
        let d = 7;
        let xs: Vec<f64> = (0..9 * d).map(|t| ((t * 7 % 11) as f64) - 5.0).collect();
        let mut a = vec![0.0; d * d];
        syrk_upper(&mut a, d, &xs);
        for p in 0..d {
            for q in p..d {
                let want: f64 = (0..9).map(|t| xs[t * d + p] * xs[t * d + q]).sum();
                assert_eq!(a[p * d + q], want);
            }
        }
    }

    #[test]
    fn gram_padded_matches_rank_one_updates() {
        for (d, n) in [(3, 5), (8, 4), (17, 9), (11, 1)] {
            let dp = padded(d);
            let mut xs = vec![0.0; n * dp];
            for t in 0..n {
                for p in 0..d {
                    xs[t * dp + p] = ((t * 7 + p * 3) % 11) as f64 - 5.0;
                }
            }
            let ts: Vec<f64> = (0..n).map(|t| t as f64 - 2.0).collect();
            let mut a = vec![0.0; d * dp];
            let mut rhs = vec![0.0; dp];
            gram_padded(&mut a, d, dp, &xs, &ts, &mut rhs);
            for p in 0..d {
                for q in p..d {
                    let want: f64 = (0..n).map(|t| xs[t * dp + p] * xs[t * dp + q]).sum();
                    assert_eq!(a[p * dp + q], want, "d {d} p {p} q {q}");
                }
                let want: f64 = (0..n).map(|t| xs[t * dp + p] * ts[t]).sum();
                assert_eq!(rhs[p], want);
            }
        }
    }

    #[test]
    fn gram_apply_matches_the_formed_matrix() {
        let k = 19;
        let (g, _) = random_spd(k, 4);
        let xs: Vec<f64> = (0..5 * k).map(|t| ((t * 13 % 7) as f64 - 3.0) * 0.25).collect();
        let ws = [0.5, 2.0, 0.0, 1.5, 3.0];
        let v: Vec<f64> = (0..k).map(|t| (t as f64).cos()).collect();
        let mut want = vec![0.0; k];
        for p in 0..k {
            let mut s = (0..k).map(|q| g[p * k + q] * v[q]).sum::<f64>();
            for t in 0..5 {
                let xv: f64 = (0..k).map(|q| xs[t * k + q] * v[q]).sum();
                s += ws[t] * xv * xs[t * k + p];
            }
            want[p] = s;
        }
        let mut y = vec![0.0; k];
        gram_apply(&g, &xs, &ws, k, &v, &mut y);
        let to32 = |a: &[f64]| a.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let mut y32 = vec![0.0f32; k];
        gram_apply32(&to32(&g), &to32(&xs), &to32(&ws), k, &to32(&v), &mut y32);
        let scale = want.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for p in 0..k {
            assert!((y[p] - want[p]).abs() < 1e-12 * scale);
            assert!((y32[p] as f64 - want[p]).abs() < 1e-5 * scale, "f32: {} vs {}", y32[p], want[p]);
        }
    }

    #[test]
    fn singular_system_gets_the_min_norm_solution() {
        // A = [1 1; 1 1], b = [2, 2]: min-norm solution (1, 1)
        let mut a = vec![1.0, 1.0, 1.0, 1.0];
        let mut b = vec![2.0, 2.0];
        let mut w = Vec::new();
        assert!(solve_spd(&mut a, 2, &mut b, &mut w));
        assert!((b[0] - 1.0).abs() < 1e-5 && (b[1] - 1.0).abs() < 1e-5, "{b:?}");
    }

    #[test]
    fn nnls_kkt_and_brute_force() {
        // against brute force over all 2^d active sets on random problems
        for seed in 0..20u64 {
            let d = 5;
            let (a, _) = random_spd(d, 100 + seed);
            let mut g = crate::rng::rng(seed);
            let b: Vec<f64> = (0..d).map(|_| crate::rng::normal(&mut g) * 3.0).collect();
            let mut x = vec![0.0; d];
            assert!(nnls(&a, &b, d, d, &mut x));
            let obj = |x: &[f64]| {
                let mut s = 0.0;
                for p in 0..d {
                    for q in 0..d {
                        s += 0.5 * x[p] * a[p * d + q] * x[q];
                    }
                    s -= b[p] * x[p];
                }
                s
            };
            // KKT
            for p in 0..d {
                let w = b[p] - (0..d).map(|q| a[p * d + q] * x[q]).sum::<f64>();
                assert!(x[p] >= 0.0);
                assert!(w <= 1e-9, "seed {seed} p {p} w {w}");
                assert!((x[p] * w).abs() <= 1e-9, "complementarity");
            }
            // brute force: best feasible unconstrained solution on every support
            let mut best = 0.0f64; // x = 0
            for mask in 1u32..(1 << d) {
                let idx: Vec<usize> = (0..d).filter(|p| mask >> p & 1 == 1).collect();
                let m = idx.len();
                let mut sub: Vec<f64> =
                    idx.iter().flat_map(|&p| idx.iter().map(move |&q| (p, q))).map(|(p, q)| a[p * d + q]).collect();
                let mut rhs: Vec<f64> = idx.iter().map(|&p| b[p]).collect();
                let mut w = Vec::new();
                assert!(solve_spd(&mut sub, m, &mut rhs, &mut w));
                if rhs.iter().all(|&v| v >= 0.0) {
                    let mut z = vec![0.0; d];
                    for (t, &p) in idx.iter().enumerate() {
                        z[p] = rhs[t];
                    }
                    best = best.min(obj(&z));
                }
            }
            assert!((obj(&x) - best).abs() < 1e-9 * (1.0 + best.abs()), "seed {seed}: {} vs {best}", obj(&x));
        }
    }

    #[test]
    fn nnls_free_coordinate_is_unconstrained() {
        // minimize (x0 - 1)^2 + (x1 + 2)^2 with x0 >= 0 only: x = (1, -2)
        let a = vec![1.0, 0.0, 0.0, 1.0];
        let b = vec![1.0, -2.0];
        let mut x = vec![0.0; 2];
        assert!(nnls(&a, &b, 2, 1, &mut x));
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] + 2.0).abs() < 1e-12);
    }
}
