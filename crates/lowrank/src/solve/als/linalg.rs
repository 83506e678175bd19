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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gram_padded_avx2(a: &mut [f64], d: usize, dp: usize, xs: &[f64], ts: &[f64], rhs: &mut [f64]) {
    gram_padded_body::<true>(a, d, dp, xs, ts, rhs)
}

/// `A += X^T X` (upper triangle) and `rhs += X^T t` for the rows of `xs`
/// (row stride `dp = padded(d)`, entries past `d` zero) and targets `ts`.
/// `a` is `d x dp` row-major (row stride `dp`); entries of the strict lower
/// triangle inside the diagonal 8-blocks are also written, the rest of the
/// lower triangle is left alone. `rhs` has length `dp`.
///
/// The hot loop of every ALS sweep, with fixed-width vector operations.
/// Uses AVX2 + FMA when the CPU has them (checked at run time; results are
/// then identical run to run on the same machine).
pub fn gram_padded(a: &mut [f64], d: usize, dp: usize, xs: &[f64], ts: &[f64], rhs: &mut [f64]) {
    debug_assert!(dp % 8 == 0 && dp >= d && a.len() >= d * dp && rhs.len() == dp);
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
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
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
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
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { gram_apply32_avx512(g, xs, ws, k, v, y) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
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
    for j in 0..d {
        // R[j][j] = sqrt(A[j][j] - sum_{t<j} R[t][j]^2)
        let mut s = a[j * d + j];
        for t in 0..j {
            let r = a[t * d + j];
            s -= r * r;
        }
        if s.is_nan() || s <= 0.0 || !s.is_finite() {
            return false;
        }
        let rjj = s.sqrt();
        a[j * d + j] = rjj;
        let inv = 1.0 / rjj;
        // R[j][q] = (A[j][q] - sum_{t<j} R[t][j] R[t][q]) / R[j][j], q > j
        for t in 0..j {
            let rtj = a[t * d + j];
            if rtj != 0.0 {
                let (head, tail) = a.split_at_mut(j * d);
                let src = &head[t * d + j + 1..t * d + d];
                let dst = &mut tail[j + 1..d];
                for (x, &y) in dst.iter_mut().zip(src) {
                    *x -= rtj * y;
                }
            }
        }
        for q in j + 1..d {
            a[j * d + q] *= inv;
        }
    }
    true
}

/// Solve `R^T R x = b` in place given the factor of [`cholesky`].
pub fn cholesky_solve(r: &[f64], d: usize, b: &mut [f64]) {
    // forward: R^T y = b
    for i in 0..d {
        let mut s = b[i];
        for t in 0..i {
            s -= r[t * d + i] * b[t];
        }
        b[i] = s / r[i * d + i];
    }
    // backward: R x = y
    for i in (0..d).rev() {
        let mut s = b[i];
        for t in i + 1..d {
            s -= r[i * d + t] * b[t];
        }
        b[i] = s / r[i * d + i];
    }
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
