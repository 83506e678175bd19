//! The inner solve of one outer step: L-BFGS on the augmented Lagrangian
//! `phi(L, R)` of the module docs, and `phi`'s value and gradient.
//!
//! This is where a `nuclear-min` run spends its time (on the planted
//! 100 x 100 problem with 2000 entries, 2,000-4,000 preconditioned L-BFGS
//! iterations at factor rank 28): per iteration, the two-loop recursion's `4 memory` dot
//! products and axpys over the `(m + n) r` factor entries, and `phi`'s
//! `|Omega|` rank-`r` dot products (the entries of `L R^T`) and `2 |Omega|`
//! rank-`r` axpys (the two sparse gradient passes, the `L` one fused with the
//! values). The loops are written once, generic over `FMA`, and compiled
//! twice: for AVX2 (fused multiply-adds, 32 accumulation lanes for the long
//! vectors) and portable (no fused multiply-add, the 8 lanes of
//! [`dot_lanes`](crate::optim::optimizer::dot_lanes)). The CPU picks one
//! once per inner solve ([`crate::simd`]), so a run gives the same result
//! every time on the same machine.

use std::collections::VecDeque;

use super::Pattern;
use crate::optim::optimizer::dot_lanes;

/// Augmented Lagrangian value and gradient at `x = (L, R)`; fills `g`, the
/// entry values `xe = (L R^T)_e` and `ge = rho (w - proj(w))`.
pub(super) struct Al<'a> {
    p: &'a Pattern,
    r: usize,
    /// `y_e / rho` (computed once, not per evaluation).
    y_over_rho: Vec<f64>,
    rho: f64,
    eps: f64,
    /// `(L R^T)_e` at the last evaluation.
    pub(super) xe: Vec<f64>,
    /// `rho (w_e - proj(w_e))` at the last evaluation.
    pub(super) ge: Vec<f64>,
}

/// Block-diagonal preconditioner of `phi`'s Hessian in the factors (the
/// scaled gradient of Tong, Ma and Chi 2021; Riemannian preconditioning of
/// Mishra and Sepulchre 2016): the penalty's curvature in a direction `dL`
/// is about `rho p ||dL R^T||^2 = rho p tr(dL R^T R dL^T)` for the sampling
/// rate `p = |Omega| / (m n)`, so the rows of the `L` part are multiplied by
/// `(I + rho p R^T R)^{-1}` and those of the `R` part by
/// `(I + rho p L^T L)^{-1}` (r x r), fixed for one inner solve.
pub(super) struct Precond {
    m: usize,
    n: usize,
    r: usize,
    pl: faer::Mat<f64>,
    pr: faer::Mat<f64>,
    buf: Vec<f64>,
}

impl Precond {
    /// The preconditioner at `x = (L, R)`; `None` when a block is not
    /// positive definite (non-finite factors).
    pub(super) fn new(p: &Pattern, r: usize, x: &[f64], rho: f64) -> Option<Precond> {
        use faer::{Accum, MatRef, Par, Side};
        let (m, n) = (p.m, p.n);
        let c = rho * p.a.len() as f64 / (m as f64 * n as f64);
        let (l, rr) = x.split_at(m * r);
        let block = |f: MatRef<f64>| -> Option<faer::Mat<f64>> {
            let mut g = faer::Mat::<f64>::identity(r, r);
            faer::linalg::matmul::matmul(g.as_mut(), Accum::Add, f.transpose(), f, c, Par::Seq);
            let inv = faer::linalg::solvers::DenseSolveCore::inverse(&g.llt(Side::Lower).ok()?);
            let finite = inv.col_iter().all(|col| col.iter().all(|v| v.is_finite()));
            finite.then_some(inv)
        };
        let pl = block(MatRef::from_row_major_slice(rr, n, r))?;
        let pr = block(MatRef::from_row_major_slice(l, m, r))?;
        Some(Precond { m, n, r, pl, pr, buf: vec![0.0; m.max(n) * r] })
    }

    /// `d <- P d`.
    pub(super) fn apply(&mut self, d: &mut [f64]) {
        use faer::{Accum, MatMut, MatRef, Par};
        let (m, n, r) = (self.m, self.n, self.r);
        let (dl, dr) = d.split_at_mut(m * r);
        for (part, rows, blk) in [(dl, m, &self.pl), (dr, n, &self.pr)] {
            let out = &mut self.buf[..rows * r];
            faer::linalg::matmul::matmul(
                MatMut::from_row_major_slice_mut(out, rows, r),
                Accum::Replace,
                MatRef::from_row_major_slice(part, rows, r),
                blk.as_ref(),
                1.0,
                Par::Seq,
            );
            part.copy_from_slice(out);
        }
    }
}

/// The instruction set the hot loops run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// AVX2 + FMA (the same 256-bit kernels on AVX-512 CPUs: one version to
    /// keep, and the two-loop recursion is bound by cache bandwidth).
    Avx2,
    /// Baseline (no fused multiply-add).
    Portable,
}

impl Isa {
    /// The best the CPU supports.
    pub(super) fn detect() -> Isa {
        if crate::simd::has_avx2_fma() { Isa::Avx2 } else { Isa::Portable }
    }
}

impl<'a> Al<'a> {
    /// `phi` for factor rank `r`, multipliers `y`, penalty `rho` and box
    /// half-width `eps`.
    pub(super) fn new(p: &'a Pattern, r: usize, y: &[f64], rho: f64, eps: f64) -> Al<'a> {
        let n = p.a.len();
        Al { p, r, y_over_rho: y.iter().map(|v| v / rho).collect(), rho, eps, xe: vec![0.0; n], ge: vec![0.0; n] }
    }

    /// `phi(x)`, its gradient into `g`, and `xe`, `ge` (see the type).
    pub(super) fn eval(&mut self, x: &[f64], g: &mut [f64]) -> f64 {
        self.eval_on(Isa::detect(), x, g)
    }

    /// [`Al::eval`] on the given instruction set (tests compare them).
    pub(super) fn eval_on(&mut self, isa: Isa, x: &[f64], g: &mut [f64]) -> f64 {
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU features are checked in the guard.
            Isa::Avx2 if crate::simd::has_avx2_fma() => unsafe { eval_avx2(self, x, g) },
            _ => eval_body::<false>(self, x, g),
        }
    }
}

/// Stopping settings of [`minimize`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Most iterations.
    pub(super) max_iter: usize,
    /// Curvature pairs kept.
    pub(super) memory: usize,
    /// Stop when `||g|| <= gtol`.
    pub(super) gtol: f64,
}

/// Minimize `phi` over `x` by L-BFGS (Nocedal and Wright, alg. 7.4) with an
/// Armijo backtracking line search and the initial inverse Hessian
/// `gamma P` (`gamma I` without a preconditioner), on the instruction set
/// `isa` (normally [`Isa::detect`]), until `||g|| <= gtol`, no decrease is
/// possible, or `max_iter`; `gamma` is updated to the last scale. Returns
/// the iterations used.
pub(super) fn minimize(
    isa: Isa,
    al: &mut Al,
    pre: Option<&mut Precond>,
    x: &mut [f64],
    lim: Limits,
    gamma: &mut f64,
) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU features are checked in the guard.
        Isa::Avx2 if crate::simd::has_avx2_fma() => unsafe { lbfgs_avx2(al, pre, x, lim, gamma) },
        _ => lbfgs_body::<false>(al, pre, x, lim, gamma),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn eval_avx2(al: &mut Al, x: &[f64], g: &mut [f64]) -> f64 {
    eval_body::<true>(al, x, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn lbfgs_avx2(al: &mut Al, pre: Option<&mut Precond>, x: &mut [f64], lim: Limits, gamma: &mut f64) -> usize {
    lbfgs_body::<true>(al, pre, x, lim, gamma)
}

/// `a b + c`, fused when `FMA`.
#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Reduce 8 lanes in the fixed order of `dot_lanes`.
#[inline(always)]
fn reduce8(acc: [f64; 8]) -> f64 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Dot product of two long vectors. With `FMA`: [`dot_long_avx2`];
/// without: `dot_lanes`.
#[inline(always)]
fn dot_long<const FMA: bool>(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` bodies run only inside the AVX2 entry points, after
        // the CPU was checked for AVX2 and FMA.
        return unsafe { dot_long_avx2(&a[..n], &b[..n]) };
    }
    dot_lanes(a, b)
}

/// `d += c x`, then `dot_long(z, d)` of the updated `d` in the same pass (0
/// when `z` is empty): the same values and summation order as the two
/// operations apart.
#[inline(always)]
fn axpy_dot<const FMA: bool>(d: &mut [f64], c: f64, x: &[f64], z: &[f64]) -> f64 {
    let n = d.len();
    let x = &x[..n];
    if z.is_empty() {
        d.iter_mut().zip(x).for_each(|(a, b)| *a = madd::<FMA>(c, *b, *a));
        return 0.0;
    }
    let z = &z[..n];
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: as in `dot_long`.
        return unsafe { axpy_dot_avx2(d, c, x, z) };
    }
    let mut acc = [0.0f64; 8];
    let body = n / 8 * 8;
    for ((dv, xv), zv) in d[..body].chunks_exact_mut(8).zip(x[..body].chunks_exact(8)).zip(z[..body].chunks_exact(8)) {
        for t in 0..8 {
            dv[t] += c * xv[t];
            acc[t] += zv[t] * dv[t];
        }
    }
    let mut s = reduce8(acc);
    for i in body..n {
        d[i] += c * x[i];
        s += z[i] * d[i];
    }
    s
}

/// The end of the fused long reductions: 32 lanes in eight 4-wide
/// registers (lane `4k + q` in register `k`), folded to 8 lanes (lane `t`
/// gets `t`, `t + 8`, `t + 16`, `t + 24`), then the remaining 8-chunks of
/// `a . b`, then the 8 lanes in [`reduce8`]'s order, then the scalar tail.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` and `b` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn finish_avx2(acc: [std::arch::x86_64::__m256d; 8], a: &[f64], b: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    let n = a.len();
    let (mut lo, mut hi) = (
        _mm256_add_pd(_mm256_add_pd(acc[0], acc[4]), _mm256_add_pd(acc[2], acc[6])),
        _mm256_add_pd(_mm256_add_pd(acc[1], acc[5]), _mm256_add_pd(acc[3], acc[7])),
    );
    let body = n / 8 * 8;
    let mut i = 0;
    // SAFETY: i + 8 <= body <= n for both slices.
    unsafe {
        while i < body {
            lo = _mm256_fmadd_pd(_mm256_loadu_pd(a.as_ptr().add(i)), _mm256_loadu_pd(b.as_ptr().add(i)), lo);
            hi = _mm256_fmadd_pd(_mm256_loadu_pd(a.as_ptr().add(i + 4)), _mm256_loadu_pd(b.as_ptr().add(i + 4)), hi);
            i += 8;
        }
    }
    let mut l8 = [0.0f64; 8];
    // SAFETY: `l8` has 8 entries.
    unsafe {
        _mm256_storeu_pd(l8.as_mut_ptr(), lo);
        _mm256_storeu_pd(l8.as_mut_ptr().add(4), hi);
    }
    let mut s = reduce8(l8);
    for k in body..n {
        s = a[k].mul_add(b[k], s);
    }
    s
}

/// `a . b` over 32 lanes with fused multiply-adds (enough independent
/// chains to hide their latency), finished by [`finish_avx2`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a.len() == b.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot_long_avx2(a: &[f64], b: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    let n = a.len();
    let body = n / 32 * 32;
    let mut acc = [_mm256_setzero_pd(); 8];
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    // SAFETY: i + 32 <= body <= n for both slices.
    unsafe {
        while i < body {
            for k in 0..8 {
                acc[k] =
                    _mm256_fmadd_pd(_mm256_loadu_pd(pa.add(i + 4 * k)), _mm256_loadu_pd(pb.add(i + 4 * k)), acc[k]);
            }
            i += 32;
        }
        finish_avx2(acc, &a[body..], &b[body..])
    }
}

/// `d += c x` and `z . d` in one pass over 32 lanes (see [`dot_long_avx2`]).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `d`, `x` and `z` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn axpy_dot_avx2(d: &mut [f64], c: f64, x: &[f64], z: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    let n = d.len();
    let body = n / 32 * 32;
    let mut acc = [_mm256_setzero_pd(); 8];
    let cv = _mm256_set1_pd(c);
    let (pd, px, pz) = (d.as_mut_ptr(), x.as_ptr(), z.as_ptr());
    let mut i = 0;
    // SAFETY: i + 32 <= body <= n for the three slices.
    unsafe {
        while i < body {
            for k in 0..8 {
                let o = i + 4 * k;
                let dv = _mm256_fmadd_pd(cv, _mm256_loadu_pd(px.add(o)), _mm256_loadu_pd(pd.add(o)));
                _mm256_storeu_pd(pd.add(o), dv);
                acc[k] = _mm256_fmadd_pd(_mm256_loadu_pd(pz.add(o)), dv, acc[k]);
            }
            i += 32;
        }
    }
    // the rest of `d` is updated first, then its dot product finished
    for k in body..n {
        d[k] = c.mul_add(x[k], d[k]);
    }
    // SAFETY: the CPU features were checked by the caller.
    unsafe { finish_avx2(acc, &z[body..], &d[body..]) }
}

/// Dot product of two rank-length rows: 8 lanes (fused when `FMA`, in two
/// 4-wide registers).
#[inline(always)]
fn dot_row<const FMA: bool>(a: &[f64], b: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        let n = a.len().min(b.len());
        // SAFETY: as in `dot_long`.
        return unsafe { dot_row_avx2(&a[..n], &b[..n]) };
    }
    dot_lanes(a, b)
}

/// `g += c x` over a rank-length row.
#[inline(always)]
fn axpy_row<const FMA: bool>(g: &mut [f64], c: f64, x: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        let n = g.len();
        // SAFETY: as in `dot_long`.
        unsafe { axpy_row_avx2(g, c, &x[..n]) };
        return;
    }
    g.iter_mut().zip(x).for_each(|(a, b)| *a = madd::<FMA>(c, *b, *a));
}

/// [`dot_row`] with fused multiply-adds: the 8-lane end of the long
/// reductions, from zero.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a.len() == b.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot_row_avx2(a: &[f64], b: &[f64]) -> f64 {
    // SAFETY: the caller checked the CPU; the accumulators start at zero
    unsafe { finish_avx2([std::arch::x86_64::_mm256_setzero_pd(); 8], a, b) }
}

/// [`axpy_row`] with fused multiply-adds.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `g.len() == x.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn axpy_row_avx2(g: &mut [f64], c: f64, x: &[f64]) {
    use std::arch::x86_64::*;
    let n = g.len();
    let body = n / 4 * 4;
    let cv = _mm256_set1_pd(c);
    let (pg, px) = (g.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    // SAFETY: i + 4 <= body <= n for both slices.
    unsafe {
        while i < body {
            _mm256_storeu_pd(pg.add(i), _mm256_fmadd_pd(cv, _mm256_loadu_pd(px.add(i)), _mm256_loadu_pd(pg.add(i))));
            i += 4;
        }
    }
    for k in body..n {
        g[k] = c.mul_add(x[k], g[k]);
    }
}

/// The body of [`Al::eval`]: one CSR pass for the entry values, the
/// penalty, the multiplier estimates and the `L` gradient, one CSC pass for
/// the `R` gradient.
#[inline(always)]
fn eval_body<const FMA: bool>(al: &mut Al, x: &[f64], g: &mut [f64]) -> f64 {
    let (p, r, rho, eps) = (al.p, al.r, al.rho, al.eps);
    let (l, rr) = x.split_at(p.m * r);
    g.copy_from_slice(x);
    let (gl, gr) = g.split_at_mut(p.m * r);
    let mut pen = 0.0;
    for i in 0..p.m {
        let li = &l[i * r..][..r];
        let gi = &mut gl[i * r..][..r];
        for e in p.row_ptr[i]..p.row_ptr[i + 1] {
            let rj = &rr[p.cols[e] as usize * r..][..r];
            let v = dot_row::<FMA>(li, rj);
            al.xe[e] = v;
            let w = v - p.a[e] + al.y_over_rho[e];
            let d = w - w.clamp(-eps, eps);
            pen += d * d;
            let c = rho * d;
            al.ge[e] = c;
            if c != 0.0 {
                axpy_row::<FMA>(gi, c, rj);
            }
        }
    }
    for j in 0..p.n {
        let gj = &mut gr[j * r..][..r];
        for &e in &p.csc_to_csr[p.col_ptr[j]..p.col_ptr[j + 1]] {
            let c = al.ge[e];
            if c != 0.0 {
                axpy_row::<FMA>(gj, c, &l[p.rows[e] as usize * r..][..r]);
            }
        }
    }
    0.5 * dot_long::<FMA>(x, x) + 0.5 * rho * pen
}

/// The body of [`minimize`].
#[inline(always)]
fn lbfgs_body<const FMA: bool>(
    al: &mut Al,
    mut pre: Option<&mut Precond>,
    x: &mut [f64],
    lim: Limits,
    gamma: &mut f64,
) -> usize {
    let Limits { max_iter, memory, gtol } = lim;
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut f = eval_body::<FMA>(al, x, &mut g);
    // (s, y, 1 / s^T y), oldest first; buffers are recycled
    let mut hist: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(memory);
    let mut alpha = vec![0.0; memory];
    let mut d = vec![0.0; n];
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    let mut py = if pre.is_some() { vec![0.0; n] } else { Vec::new() };
    for it in 0..max_iter {
        if !f.is_finite() || dot_long::<FMA>(&g, &g).sqrt() <= gtol {
            return it;
        }
        d.iter_mut().zip(&g).for_each(|(a, b)| *a = -b);
        // the two-loop recursion; each update of `d` also takes the dot
        // product the next one needs, in the same pass over `d`
        let k = hist.len();
        if k > 0 {
            let mut sd = dot_long::<FMA>(&hist[k - 1].0, &d);
            for t in (0..k).rev() {
                let (_, y, rho) = &hist[t];
                alpha[t] = rho * sd;
                let next = if t > 0 { &hist[t - 1].0[..] } else { &[][..] };
                sd = axpy_dot::<FMA>(&mut d, -alpha[t], y, next);
            }
        }
        if let Some(pc) = pre.as_deref_mut() {
            pc.apply(&mut d);
        }
        d.iter_mut().for_each(|a| *a *= *gamma);
        if k > 0 {
            let mut yd = dot_long::<FMA>(&hist[0].1, &d);
            for t in 0..k {
                let (s, _, rho) = &hist[t];
                let beta = rho * yd;
                let next = if t + 1 < k { &hist[t + 1].1[..] } else { &[][..] };
                yd = axpy_dot::<FMA>(&mut d, alpha[t] - beta, s, next);
            }
        }
        let mut slope = dot_long::<FMA>(&g, &d);
        if slope >= 0.0 || !slope.is_finite() {
            // not a descent direction: restart from scaled steepest descent
            hist.clear();
            d.iter_mut().zip(&g).for_each(|(a, b)| *a = -*gamma * b);
            if let Some(pc) = pre.as_deref_mut() {
                pc.apply(&mut d);
            }
            slope = dot_long::<FMA>(&g, &d);
        }
        let mut step = 1.0;
        let mut fnew;
        let mut tries = 0;
        loop {
            xn.iter_mut().zip(x.iter().zip(&d)).for_each(|(a, (b, c))| *a = madd::<FMA>(step, *c, *b));
            fnew = eval_body::<FMA>(al, &xn, &mut gn);
            if fnew <= f + 1e-4 * step * slope || tries >= 50 {
                break;
            }
            step *= 0.5;
            tries += 1;
        }
        if fnew.is_nan() || fnew > f {
            return it;
        }
        let (mut s, mut y) = if hist.len() == memory {
            let (s, y, _) = hist.pop_front().unwrap_or_default(); // ok: non-empty (len == memory >= 1)
            (s, y)
        } else {
            (vec![0.0; n], vec![0.0; n])
        };
        s.iter_mut().zip(xn.iter().zip(x.iter())).for_each(|(a, (b, c))| *a = b - c);
        y.iter_mut().zip(gn.iter().zip(&g)).for_each(|(a, (b, c))| *a = b - c);
        let sy = dot_long::<FMA>(&s, &y);
        let yy = dot_long::<FMA>(&y, &y);
        if sy > 1e-12 * yy.max(f64::MIN_POSITIVE).sqrt() * dot_long::<FMA>(&s, &s).sqrt() && yy > 0.0 {
            *gamma = match pre.as_deref_mut() {
                // the scale of `gamma P` that fits the last pair: s^T y / y^T P y
                Some(pc) => {
                    py.copy_from_slice(&y);
                    pc.apply(&mut py);
                    let ypy = dot_long::<FMA>(&y, &py);
                    if ypy > 0.0 { sy / ypy } else { 1.0 }
                }
                None => sy / yy,
            };
            hist.push_back((s, y, 1.0 / sy));
        }
        x.copy_from_slice(&xn);
        g.copy_from_slice(&gn);
        let fold = f;
        f = fnew;
        if fold - f <= 1e-16 * fold.abs() {
            return it + 1;
        }
    }
    max_iter
}
