//! Register-tiled kernels of the dense CP-ALS passes over the tensor.
//!
//! One ALS pass contracts the tensor with one factor (`X ×ₙ F`, `N R`
//! multiply-adds for `N` entries and rank `R`); at 200³ and rank 10 that is
//! 80 M multiply-adds over 64 MB, a product too thin (`R` columns) for a
//! general GEMM: faer packs the tensor block before its micro-kernel, and
//! reached ~10 G multiply-adds/s here. These kernels read every tensor entry
//! once, straight from the tensor, and keep a tile of the output in
//! registers:
//! - [`x_times_f`]: `out = X F` for a row-major `X` (`n x l`): `P` output rows
//!   × `NV` 4-wide vectors of columns, one broadcast of `X[p, k]` and one
//!   vector load of `F[k, :]` per `P·NV` vector multiply-adds;
//! - [`xt_times_f`]: `out = Xᵀ F`, the same tile with `P` consecutive columns
//!   of `X` (one contiguous load of `P` values per row of `X`).
//!
//! Factors and outputs are row-major with rows padded to [`padded`]`(R)`
//! (zeros in the padding), so a row of the output is whole vectors. Every
//! output element is a sum in a fixed order (over `k`, or over the rows of
//! `X`) whatever the tiling or the split between threads: the result does not
//! depend on the thread count. With AVX2 + FMA (checked at run time) the sums
//! use fused multiply-adds; the portable path rounds after each multiply.
//!
//! The two MTTKRPs from a partial contraction `W` ([`mttkrp_slow`],
//! [`mttkrp_fast`]) are `O(rows(W)·R)`, split by output rows between the
//! threads when large (each output still summed in one fixed order).

use faer::{Mat, MatRef};
use rayon::prelude::*;

use crate::team::Team;

/// Doubles per vector of a tile (one AVX2 register; AVX-512 machines run
/// the same code on 256-bit registers).
pub(crate) const LANES: usize = 4;
/// Widest column block of a tile, in vectors (32 columns).
const MAX_NV: usize = 8;
/// Below this many multiply-adds a pass runs on one thread (at 30³ rank 20,
/// 0.54 M per pass, two threads made an iteration slower: 0.09-0.12 ms
/// against 0.077 ms on one).
pub(crate) const PAR_MIN_MADDS: usize = 1 << 21;
/// The same for the MTTKRPs from a partial contraction (memory-bound: worth
/// splitting from smaller sizes; at 200³ rank 10, 0.48 M).
const MTTKRP_PAR_MIN: usize = 1 << 18;

/// `r` rounded up to whole vectors.
pub(crate) fn padded(r: usize) -> usize {
    r.next_multiple_of(LANES)
}

/// `f` (`d x R`) as row-major rows of [`padded`]`(R)` values, zero-padded.
pub(crate) fn pack_rows(f: MatRef<'_, f64>) -> Vec<f64> {
    let (d, r) = (f.nrows(), f.ncols());
    let rp = padded(r);
    let mut out = vec![0.0; d * rp];
    for c in 0..r {
        for (i, row) in out.chunks_exact_mut(rp).enumerate() {
            row[c] = f[(i, c)];
        }
    }
    out
}

/// The `d x r` matrix held in `buf` as padded row-major rows.
pub(crate) fn unpack_rows(buf: &[f64], d: usize, r: usize) -> Mat<f64> {
    let rp = padded(r);
    Mat::from_fn(d, r, |i, c| buf[i * rp + c])
}

/// Ask for every cache line of `s` to be brought into cache (a hint: the
/// hardware prefetchers do not keep up with the few interleaved row streams
/// of a tile).
#[inline(always)]
fn prefetch(s: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    for k in (0..s.len()).step_by(8) {
        // SAFETY: a prefetch never faults and does not change memory; the
        // address is inside `s`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(s.as_ptr().add(k).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = s;
}

#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Rows per tile for a block of `nv` vectors: the accumulators, one row of
/// `F` and a broadcast fit in AVX2's 16 registers.
const fn rows_per_tile(nv: usize, wide: bool) -> usize {
    if wide {
        // 32 registers (AVX-512VL)
        match nv {
            1 | 2 => 8,
            3 => 6,
            4 => 5,
            5 => 4,
            6 | 7 => 3,
            _ => 2,
        }
    } else {
        match nv {
            1 => 8,
            2 => 6,
            3 => 3,
            4 => 2,
            _ => 1,
        }
    }
}

/// `out[p, c0..c0 + 4 NV] = Σ_k X[p0 + p, k] F[k, c0..]` for `p < P`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn xf_tile<const P: usize, const NV: usize, const FMA: bool>(
    x: &[f64],
    l: usize,
    p0: usize,
    f: &[f64],
    rp: usize,
    c0: usize,
    out: &mut [f64],
) {
    let rows: [&[f64]; P] = std::array::from_fn(|p| &x[(p0 + p) * l..(p0 + p + 1) * l]);
    // the rows of the tile after next, one cache line per row every 8 steps
    let next = ((p0 + 2 * P) * l).min(x.len());
    let ahead = &x[next..(next + P * l).min(x.len())];
    let mut acc = [[[0.0f64; LANES]; NV]; P];
    for k in 0..l {
        if k % 8 == 0 {
            for p in 0..P {
                if let Some(v) = ahead.get(p * l + k) {
                    prefetch(std::slice::from_ref(v));
                }
            }
        }
        let fr = &f[k * rp + c0..k * rp + c0 + NV * LANES];
        for p in 0..P {
            let s = rows[p][k];
            for v in 0..NV {
                for q in 0..LANES {
                    acc[p][v][q] = madd::<FMA>(s, fr[v * LANES + q], acc[p][v][q]);
                }
            }
        }
    }
    for p in 0..P {
        let o = &mut out[(p0 + p) * rp + c0..(p0 + p) * rp + c0 + NV * LANES];
        for v in 0..NV {
            o[v * LANES..(v + 1) * LANES].copy_from_slice(&acc[p][v]);
        }
    }
}

/// `out[t, c0..c0 + 4 NV] (+)= Σ_g rows[g][t] F_g` for every output row `t`
/// of `out` (`F_g` the vectors `fr[g]`): `G` rows of `X` at once, their `F`
/// rows held in registers, each output row loaded and stored once per group.
/// `first`: the group starts the sums (no load).
#[inline(always)]
fn xtf_group<const G: usize, const NV: usize, const FMA: bool>(
    rows: [&[f64]; G],
    ahead: [&[f64]; G],
    fr: [&[f64]; G],
    out: &mut [f64],
    rp: usize,
    c0: usize,
    first: bool,
) {
    let fv: [[[f64; LANES]; NV]; G] =
        std::array::from_fn(|g| std::array::from_fn(|v| std::array::from_fn(|q| fr[g][v * LANES + q])));
    for (t, o) in out.chunks_exact_mut(rp).enumerate() {
        if t % 8 == 0 {
            // the rows of the group after next, one cache line per row every 8 steps
            for a in &ahead {
                if let Some(v) = a.get(t) {
                    prefetch(std::slice::from_ref(v));
                }
            }
        }
        let o = &mut o[c0..c0 + NV * LANES];
        let mut acc = [[0.0f64; LANES]; NV];
        if !first {
            for v in 0..NV {
                acc[v].copy_from_slice(&o[v * LANES..(v + 1) * LANES]);
            }
        }
        for g in 0..G {
            let s = rows[g][t];
            for v in 0..NV {
                for q in 0..LANES {
                    acc[v][q] = madd::<FMA>(s, fv[g][v][q], acc[v][q]);
                }
            }
        }
        for v in 0..NV {
            o[v * LANES..(v + 1) * LANES].copy_from_slice(&acc[v]);
        }
    }
}

/// Rows per group of [`xtf_group`] for a block of `nv` vectors (the `F` rows
/// that do not fit in registers are read from L1 by the multiply-adds).
const fn group_rows(nv: usize, wide: bool) -> usize {
    if wide {
        match nv {
            1..=3 => 8,
            4 => 6,
            5 => 5,
            6 => 4,
            _ => 3,
        }
    } else {
        match nv {
            1 => 8,
            2 => 6,
            _ => 4,
        }
    }
}

/// Output rows per block of [`xtf_body`] (about 64 KB of output, in L2).
fn q_block(rp: usize) -> usize {
    (8192 / rp).max(16)
}

/// All of `out` (`n x rp`, rows `0..n` of the output) for `X F`, `X` the rows
/// `x` (`n x l`).
#[inline(always)]
fn xf_body<const FMA: bool, const WIDE: bool>(x: &[f64], n: usize, l: usize, f: &[f64], rp: usize, out: &mut [f64]) {
    macro_rules! run {
        ($nv:literal, $c0:expr) => {{
            if WIDE { run!(@ $nv, $c0, rows_per_tile($nv, true)) } else { run!(@ $nv, $c0, rows_per_tile($nv, false)) }
        }};
        (@ $nv:literal, $c0:expr, $p:expr) => {{
            const P: usize = $p;
            let mut p0 = 0;
            while p0 + P <= n {
                xf_tile::<P, $nv, FMA>(x, l, p0, f, rp, $c0, out);
                p0 += P;
            }
            while p0 < n {
                xf_tile::<1, $nv, FMA>(x, l, p0, f, rp, $c0, out);
                p0 += 1;
            }
        }};
    }
    let mut c0 = 0;
    while c0 < rp {
        let nv = ((rp - c0) / LANES).min(MAX_NV);
        match nv {
            1 => run!(1, c0),
            2 => run!(2, c0),
            3 => run!(3, c0),
            4 => run!(4, c0),
            5 => run!(5, c0),
            6 => run!(6, c0),
            7 => run!(7, c0),
            _ => run!(8, c0),
        }
        c0 += nv * LANES;
    }
}

/// Rows `q0..q0 + n_out` of `Xᵀ F` into `out` (`n_out x rp`), `X` with `n`
/// rows of stride `stride`: blocks of output rows that stay in cache while
/// groups of rows of `X` stream by (every entry of `X` read once, in order
/// within each row). Each output is summed over the rows of `X` in order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn xtf_body<const FMA: bool, const WIDE: bool>(
    x: &[f64],
    n: usize,
    stride: usize,
    q0: usize,
    n_out: usize,
    f: &[f64],
    rp: usize,
    out: &mut [f64],
) {
    if n == 0 {
        out[..n_out * rp].iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    macro_rules! run {
        ($nv:literal, $c0:expr, $b0:expr, $bn:expr) => {{
            if WIDE {
                run!(@ $nv, $c0, $b0, $bn, group_rows($nv, true))
            } else {
                run!(@ $nv, $c0, $b0, $bn, group_rows($nv, false))
            }
        }};
        (@ $nv:literal, $c0:expr, $b0:expr, $bn:expr, $g:expr) => {{
            const G: usize = $g;
            let ob = &mut out[$b0 * rp..($b0 + $bn) * rp];
            let row = |i: usize| &x[i * stride + q0 + $b0..i * stride + q0 + $b0 + $bn];
            let frow = |i: usize| &f[i * rp + $c0..i * rp + $c0 + $nv * LANES];
            let mut i = 0;
            // rows to prefetch: past the last row, the first rows of the next
            // block, or (last block) whatever follows the matrix in `x` (the
            // next slice when the caller passes the rest of the tensor)
            let next_b0 = $b0 + $bn;
            let ahead = |i: usize| -> &[f64] {
                let start = if i < n {
                    i * stride + q0 + $b0
                } else if next_b0 < n_out {
                    (i - n) * stride + q0 + next_b0
                } else {
                    i * stride + q0 + $b0
                };
                x.get(start..).map_or(&[], |r| &r[..$bn.min(r.len())])
            };
            while i + G <= n {
                let rows: [&[f64]; G] = std::array::from_fn(|g| row(i + g));
                let next: [&[f64]; G] = std::array::from_fn(|g| ahead(i + 2 * G + g));
                let fr: [&[f64]; G] = std::array::from_fn(|g| frow(i + g));
                xtf_group::<G, $nv, FMA>(rows, next, fr, ob, rp, $c0, i == 0);
                i += G;
            }
            while i < n {
                xtf_group::<1, $nv, FMA>([row(i)], [ahead(i + 1)], [frow(i)], ob, rp, $c0, i == 0);
                i += 1;
            }
        }};
    }
    let qb = q_block(rp);
    let mut b0 = 0;
    while b0 < n_out {
        let bn = qb.min(n_out - b0);
        let mut c0 = 0;
        while c0 < rp {
            let nv = ((rp - c0) / LANES).min(MAX_NV);
            match nv {
                1 => run!(1, c0, b0, bn),
                2 => run!(2, c0, b0, bn),
                3 => run!(3, c0, b0, bn),
                4 => run!(4, c0, b0, bn),
                5 => run!(5, c0, b0, bn),
                6 => run!(6, c0, b0, bn),
                7 => run!(7, c0, b0, bn),
                _ => run!(8, c0, b0, bn),
            }
            c0 += nv * LANES;
        }
        b0 += bn;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn xf_avx2(x: &[f64], n: usize, l: usize, f: &[f64], rp: usize, out: &mut [f64]) {
    xf_body::<true, false>(x, n, l, f, rp, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
fn xf_avx512(x: &[f64], n: usize, l: usize, f: &[f64], rp: usize, out: &mut [f64]) {
    xf_body::<true, true>(x, n, l, f, rp, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn xtf_avx2(x: &[f64], n: usize, stride: usize, q0: usize, n_out: usize, f: &[f64], rp: usize, out: &mut [f64]) {
    xtf_body::<true, false>(x, n, stride, q0, n_out, f, rp, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn xtf_avx512(x: &[f64], n: usize, stride: usize, q0: usize, n_out: usize, f: &[f64], rp: usize, out: &mut [f64]) {
    xtf_body::<true, true>(x, n, stride, q0, n_out, f, rp, out)
}

fn xf_rows(x: &[f64], n: usize, l: usize, f: &[f64], rp: usize, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx512() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { xf_avx512(x, n, l, f, rp, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { xf_avx2(x, n, l, f, rp, out) };
        return;
    }
    xf_body::<false, false>(x, n, l, f, rp, out)
}

#[allow(clippy::too_many_arguments)]
fn xtf_rows(x: &[f64], n: usize, stride: usize, q0: usize, n_out: usize, f: &[f64], rp: usize, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx512() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { xtf_avx512(x, n, stride, q0, n_out, f, rp, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { xtf_avx2(x, n, stride, q0, n_out, f, rp, out) };
        return;
    }
    xtf_body::<false, false>(x, n, stride, q0, n_out, f, rp, out)
}

/// The first `rows` output rows of `width` values each, split in halves on
/// the team: `part(first_row, n_rows, out_rows)` for rows `0..rows/2` here
/// and the rest on the helper thread (each row computed by the same code
/// either way, so the result is the one-thread result).
fn halves_on(team: &Team, rows: usize, width: usize, out: &mut [f64], part: impl Fn(usize, usize, &mut [f64]) + Sync) {
    let h = rows / 2;
    let (o1, o2) = out[..rows * width].split_at_mut(h * width);
    team.join(|| part(0, h, o1), || part(h, rows - h, o2));
}

/// How many blocks to split `rows` output rows into for `madds` work of a
/// pass (threshold [`PAR_MIN_MADDS`]) or of an MTTKRP ([`MTTKRP_PAR_MIN`]).
fn blocks_above(rows: usize, madds: usize, min: usize) -> usize {
    if madds < min { 1 } else { rayon::current_num_threads().clamp(1, rows.max(1)) }
}

fn blocks(rows: usize, madds: usize) -> usize {
    blocks_above(rows, madds, PAR_MIN_MADDS)
}

/// `out = X F`: `X` the row-major `n x l` matrix `x`, `F` (`l x rp`) and
/// `out` (`n x rp`) padded row-major ([`pack_rows`]). Parallel over blocks of
/// output rows; the result does not depend on the thread count.
/// A pass too small for rayon is split on `team` when one is given.
pub(crate) fn x_times_f(team: Option<&Team>, x: &[f64], n: usize, l: usize, f: &[f64], rp: usize, out: &mut [f64]) {
    assert!(x.len() >= n * l && f.len() >= l * rp && out.len() >= n * rp && rp.is_multiple_of(LANES));
    let nb = blocks(n, n * l * rp);
    if nb == 1 {
        if let Some(t) = team.filter(|_| n >= 2) {
            return halves_on(t, n, rp, out, |r0, rows, o| xf_rows(&x[r0 * l..(r0 + rows) * l], rows, l, f, rp, o));
        }
        return xf_rows(x, n, l, f, rp, out);
    }
    let chunk = n.div_ceil(nb);
    out[..n * rp].par_chunks_mut(chunk * rp).enumerate().for_each(|(b, o)| {
        let r0 = b * chunk;
        let rows = o.len() / rp;
        xf_rows(&x[r0 * l..(r0 + rows) * l], rows, l, f, rp, o);
    });
}

/// `out = Xᵀ F`: `X` the `n x m` matrix whose row `i` starts at `x[i * stride]`,
/// `F` (`n x rp`) and `out` (`m x rp`) padded row-major. Parallel over blocks
/// of output rows; the result does not depend on the thread count.
/// A pass too small for rayon is split on `team` when one is given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn xt_times_f(
    team: Option<&Team>,
    x: &[f64],
    n: usize,
    m: usize,
    stride: usize,
    f: &[f64],
    rp: usize,
    out: &mut [f64],
) {
    assert!(n == 0 || x.len() >= (n - 1) * stride + m);
    assert!(f.len() >= n * rp && out.len() >= m * rp && rp.is_multiple_of(LANES));
    let nb = blocks(m, n * m * rp);
    if nb == 1 {
        if let Some(t) = team.filter(|_| m >= 2) {
            return halves_on(t, m, rp, out, |q0, rows, o| xtf_rows(x, n, stride, q0, rows, f, rp, o));
        }
        return xtf_rows(x, n, stride, 0, m, f, rp, out);
    }
    let chunk = m.div_ceil(nb);
    out[..m * rp].par_chunks_mut(chunk * rp).enumerate().for_each(|(b, o)| {
        xtf_rows(x, n, stride, b * chunk, o.len() / rp, f, rp, o);
    });
}

/// `out = X_iᵀ F` for every slice `i` of `s` slices `X_i` (`n x m` row-major,
/// consecutive in `x`), stacked: `out` is `(s m) x rp`. Parallel over blocks
/// of whole slices.
/// A pass too small for rayon is split on `team` when one is given (by
/// slices).
#[allow(clippy::too_many_arguments)]
pub(crate) fn slices_t_times_f(
    team: Option<&Team>,
    x: &[f64],
    s: usize,
    n: usize,
    m: usize,
    f: &[f64],
    rp: usize,
    out: &mut [f64],
) {
    assert!(x.len() >= s * n * m && f.len() >= n * rp && out.len() >= s * m * rp);
    let nb = blocks(s, s * n * m * rp);
    let per = s.div_ceil(nb.max(1)).max(1);
    // slices first.. into `o` (whole slices)
    let run = |first: usize, o: &mut [f64]| {
        for (t, os) in o.chunks_exact_mut(m * rp).enumerate() {
            let i = first + t;
            // the rest of the tensor, so that the last rows prefetch the next slice
            xtf_rows(&x[i * n * m..], n, m, 0, m, f, rp, os);
        }
    };
    let body = |(b, o): (usize, &mut [f64])| run(b * per, o);
    if nb <= 1 {
        if let Some(t) = team.filter(|_| s >= 2) {
            // whole slices of `m` output rows each
            return halves_on(t, s, m * rp, out, |first, _, o| run(first, o));
        }
        body((0, &mut out[..s * m * rp]));
    } else {
        out[..s * m * rp].par_chunks_mut(per * m * rp).enumerate().for_each(body);
    }
}

/// `out[c] = Σ_t a[t·sa + c] b[t·sb + c]` for the `K · LANES` columns `c`
/// of `K` vectors, each summed in order of `t` in a register: `K`
/// independent multiply-add chains (one chain at a time is bound by the
/// latency of the multiply-add, not its throughput).
#[inline(always)]
fn strided_block_dot<const K: usize, const FMA: bool>(
    a: &[f64],
    sa: usize,
    b: &[f64],
    sb: usize,
    n: usize,
    out: &mut [f64],
) {
    let w = K * LANES;
    let mut acc = [[0.0f64; LANES]; K];
    for t in 0..n {
        let (x, y) = (&a[t * sa..t * sa + w], &b[t * sb..t * sb + w]);
        for k in 0..K {
            for q in 0..LANES {
                acc[k][q] = madd::<FMA>(x[k * LANES + q], y[k * LANES + q], acc[k][q]);
            }
        }
    }
    for (o, v) in out[..w].chunks_exact_mut(LANES).zip(&acc) {
        o.copy_from_slice(v);
    }
}

/// `out[c] = Σ_t a[t·sa + c] b[t·sb + c]` for the `rp` columns of a padded
/// row, in blocks of up to [`MAX_NV`] vectors (every column summed in order of
/// `t`, whatever the block).
#[inline(always)]
fn strided_row_dot<const FMA: bool>(a: &[f64], sa: usize, b: &[f64], sb: usize, n: usize, rp: usize, out: &mut [f64]) {
    // the match below covers block widths 1..=MAX_NV of whole vectors
    const _: () = assert!(MAX_NV == 8);
    debug_assert!(rp.is_multiple_of(LANES));
    let mut v = 0;
    while v < rp {
        let k = ((rp - v) / LANES).min(MAX_NV);
        let (a, b, o) = (&a[v..], &b[v..], &mut out[v..]);
        match k {
            1 => strided_block_dot::<1, FMA>(a, sa, b, sb, n, o),
            2 => strided_block_dot::<2, FMA>(a, sa, b, sb, n, o),
            3 => strided_block_dot::<3, FMA>(a, sa, b, sb, n, o),
            4 => strided_block_dot::<4, FMA>(a, sa, b, sb, n, o),
            5 => strided_block_dot::<5, FMA>(a, sa, b, sb, n, o),
            6 => strided_block_dot::<6, FMA>(a, sa, b, sb, n, o),
            7 => strided_block_dot::<7, FMA>(a, sa, b, sb, n, o),
            _ => strided_block_dot::<8, FMA>(a, sa, b, sb, n, o),
        }
        v += k * LANES;
    }
}

#[inline(always)]
fn mttkrp_slow_body<const FMA: bool>(w: &[f64], f: &[f64], np: usize, nq: usize, rp: usize, out: &mut [f64]) {
    for (p, o) in out.chunks_exact_mut(rp).take(np).enumerate() {
        let wp = &w[p * nq * rp..(p + 1) * nq * rp];
        strided_row_dot::<FMA>(wp, rp, f, rp, nq, rp, o);
    }
}

/// `out[t] (+)= Σ_g W[(p + g, q0 + t)] ∘ F[p + g]` for the `G` row groups
/// `p..p + G` of `W` (each `nq` rows): every output row loaded and stored once
/// per group, the `G` rows of `W` read in order. `first`: the group starts
/// the sums (from zero, as the one-row-at-a-time sum did).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fast_group<const G: usize, const FMA: bool>(
    w: &[f64],
    f: &[f64],
    p: usize,
    nq: usize,
    rp: usize,
    q0: usize,
    out: &mut [f64],
    first: bool,
) {
    let n_out = out.len() / rp;
    let rows: [&[f64]; G] = std::array::from_fn(|g| &w[((p + g) * nq + q0) * rp..((p + g) * nq + q0 + n_out) * rp]);
    let fr: [&[f64]; G] = std::array::from_fn(|g| &f[(p + g) * rp..(p + g + 1) * rp]);
    for (t, o) in out.chunks_exact_mut(rp).enumerate() {
        for c in 0..rp {
            let mut acc = if first { 0.0 } else { o[c] };
            for g in 0..G {
                acc = madd::<FMA>(rows[g][t * rp + c], fr[g][c], acc);
            }
            o[c] = acc;
        }
    }
}

/// Rows `q0..q0 + out.len() / rp` of [`mttkrp_fast`]: the row groups `p` of
/// `W` streamed in order, [`FAST_GROUP`] at a time, into the output rows
/// (which stay in cache). Each output is summed over `p` in order, from
/// zero: the sum the strided dot product over `p` computed, bit for bit.
#[inline(always)]
fn mttkrp_fast_body<const FMA: bool>(
    w: &[f64],
    f: &[f64],
    np: usize,
    nq: usize,
    rp: usize,
    q0: usize,
    out: &mut [f64],
) {
    let n_out = (out.len() / rp).min(nq - q0);
    let out = &mut out[..n_out * rp];
    if np == 0 {
        out.fill(0.0);
        return;
    }
    let mut p = 0;
    while p < np {
        let first = p == 0;
        match (np - p).min(FAST_GROUP) {
            4 => fast_group::<4, FMA>(w, f, p, nq, rp, q0, out, first),
            3 => fast_group::<3, FMA>(w, f, p, nq, rp, q0, out, first),
            2 => fast_group::<2, FMA>(w, f, p, nq, rp, q0, out, first),
            _ => fast_group::<1, FMA>(w, f, p, nq, rp, q0, out, first),
        }
        p += (np - p).min(FAST_GROUP);
    }
}

/// Row groups of `W` per pass of [`mttkrp_fast_body`] over its output rows.
const FAST_GROUP: usize = 4;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn mttkrp_slow_avx2(w: &[f64], f: &[f64], np: usize, nq: usize, rp: usize, out: &mut [f64]) {
    mttkrp_slow_body::<true>(w, f, np, nq, rp, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn mttkrp_fast_avx2(w: &[f64], f: &[f64], np: usize, nq: usize, rp: usize, q0: usize, out: &mut [f64]) {
    mttkrp_fast_body::<true>(w, f, np, nq, rp, q0, out)
}

/// MTTKRP of the slow index `p` of a partial contraction `W` with rows
/// `(p, q)` (`q` fastest, `nq` of them): `out[p, :] = Σ_q W[(p,q), :] ∘ F[q, :]`
/// (`F` is `nq x rp`, `out` `np x rp`, all padded row-major).
/// One too small for rayon is split on `team` when one is given.
pub(crate) fn mttkrp_slow(team: Option<&Team>, w: &[f64], f: &[f64], np: usize, nq: usize, rp: usize, out: &mut [f64]) {
    assert!(w.len() >= np * nq * rp && f.len() >= nq * rp && out.len() >= np * rp);
    let nb = blocks_above(np, np * nq * rp, MTTKRP_PAR_MIN);
    if nb == 1
        && let Some(t) = team.filter(|_| np >= 2)
    {
        let rows_of_w = nq * rp;
        return halves_on(t, np, rp, out, |p0, n, o| {
            slow_rows(&w[p0 * rows_of_w..(p0 + n) * rows_of_w], f, n, nq, rp, o)
        });
    }
    if nb > 1 {
        let chunk = np.div_ceil(nb);
        return out[..np * rp].par_chunks_mut(chunk * rp).enumerate().for_each(|(b, o)| {
            let p0 = b * chunk;
            let n = o.len() / rp;
            slow_rows(&w[p0 * nq * rp..(p0 + n) * nq * rp], f, n, nq, rp, o);
        });
    }
    slow_rows(w, f, np, nq, rp, out)
}

/// [`mttkrp_slow`] on one thread.
fn slow_rows(w: &[f64], f: &[f64], np: usize, nq: usize, rp: usize, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { mttkrp_slow_avx2(w, f, np, nq, rp, out) };
        return;
    }
    mttkrp_slow_body::<false>(w, f, np, nq, rp, out)
}

/// MTTKRP of the fast index `q` of a partial contraction `W` with rows
/// `(p, q)`: `out[q, :] = Σ_p F[p, :] ∘ W[(p,q), :]` (`F` is `np x rp`, `out`
/// `nq x rp`, all padded row-major).
/// One too small for rayon is split on `team` when one is given.
pub(crate) fn mttkrp_fast(team: Option<&Team>, w: &[f64], f: &[f64], np: usize, nq: usize, rp: usize, out: &mut [f64]) {
    assert!(w.len() >= np * nq * rp && f.len() >= np * rp && out.len() >= nq * rp);
    let nb = blocks_above(nq, np * nq * rp, MTTKRP_PAR_MIN);
    if nb == 1
        && let Some(t) = team.filter(|_| nq >= 2)
    {
        return halves_on(t, nq, rp, out, |q0, _, o| fast_rows(w, f, np, nq, rp, q0, o));
    }
    if nb > 1 {
        // each block reads its columns q0.. of every row-group p of W
        let chunk = nq.div_ceil(nb);
        return out[..nq * rp].par_chunks_mut(chunk * rp).enumerate().for_each(|(b, o)| {
            fast_rows(w, f, np, nq, rp, b * chunk, o);
        });
    }
    fast_rows(w, f, np, nq, rp, 0, out)
}

/// Rows `q0..` of [`mttkrp_fast`] into `out`.
fn fast_rows(w: &[f64], f: &[f64], np: usize, nq: usize, rp: usize, q0: usize, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { mttkrp_fast_avx2(w, f, np, nq, rp, q0, out) };
        return;
    }
    mttkrp_fast_body::<false>(w, f, np, nq, rp, q0, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    fn random(n: usize, seed: u64) -> Vec<f64> {
        let mut g = rng::rng(seed);
        (0..n).map(|_| rng::normal(&mut g)).collect()
    }

    /// Padded row-major `d x r` with zero padding.
    fn random_padded(d: usize, r: usize, seed: u64) -> Vec<f64> {
        let m = random(d * r, seed);
        pack_rows(Mat::from_fn(d, r, |i, c| m[i * r + c]).as_ref())
    }

    fn close(a: f64, b: f64, scale: f64) -> bool {
        (a - b).abs() <= 1e-12 * scale
    }

    #[test]
    fn products_match_the_triple_loop_for_every_tile_shape() {
        // ranks across all column-block widths (1..=8 vectors, and two blocks),
        // row counts with and without a tile remainder
        for r in [1, 3, 4, 5, 9, 12, 20, 23, 32, 33, 45] {
            let rp = padded(r);
            for (n, l) in [(1, 1), (7, 5), (13, 30), (26, 9)] {
                let x = random(n * l, 1 + r as u64);
                let f = random_padded(l, r, 2);
                let mut out = vec![f64::NAN; n * rp];
                x_times_f(None, &x, n, l, &f, rp, &mut out);
                let scale: f64 = x.iter().map(|v| v.abs()).sum::<f64>() * 10.0;
                for p in 0..n {
                    for c in 0..rp {
                        let want: f64 = (0..l).map(|k| x[p * l + k] * f[k * rp + c]).sum();
                        assert!(close(out[p * rp + c], want, scale), "XF r={r} n={n} l={l} ({p},{c})");
                    }
                }
                // Xᵀ F with X n x m = the same data read with a stride
                let (rows, m, stride) = (n, l.saturating_sub(1).max(1), l);
                let g = random_padded(rows, r, 3);
                let mut out = vec![f64::NAN; m * rp];
                xt_times_f(None, &x, rows, m, stride, &g, rp, &mut out);
                for q in 0..m {
                    for c in 0..rp {
                        let want: f64 = (0..rows).map(|i| x[i * stride + q] * g[i * rp + c]).sum();
                        assert!(close(out[q * rp + c], want, scale), "XtF r={r} n={n} l={l} ({q},{c})");
                    }
                }
            }
        }
    }

    #[test]
    fn padding_columns_stay_zero_and_slices_stack() {
        let (s, n, m, r) = (3, 4, 5, 6);
        let rp = padded(r);
        let x = random(s * n * m, 9);
        let f = random_padded(n, r, 10);
        let mut out = vec![f64::NAN; s * m * rp];
        slices_t_times_f(None, &x, s, n, m, &f, rp, &mut out);
        for i in 0..s {
            for q in 0..m {
                for c in 0..rp {
                    let want: f64 = (0..n).map(|j| x[i * n * m + j * m + q] * f[j * rp + c]).sum();
                    assert!(close(out[(i * m + q) * rp + c], want, 100.0));
                    if c >= r {
                        assert_eq!(out[(i * m + q) * rp + c], 0.0);
                    }
                }
            }
        }
    }

    #[test]
    fn mttkrps_from_a_partial_contraction_match_the_sums() {
        let (np, nq, r) = (5, 7, 10);
        let rp = padded(r);
        let w = random(np * nq * rp, 4);
        let fq = random_padded(nq, r, 5);
        let fp = random_padded(np, r, 6);
        let mut slow = vec![f64::NAN; np * rp];
        mttkrp_slow(None, &w, &fq, np, nq, rp, &mut slow);
        let mut fast = vec![f64::NAN; nq * rp];
        mttkrp_fast(None, &w, &fp, np, nq, rp, &mut fast);
        for c in 0..rp {
            for p in 0..np {
                let want: f64 = (0..nq).map(|q| w[(p * nq + q) * rp + c] * fq[q * rp + c]).sum();
                assert!(close(slow[p * rp + c], want, 100.0));
            }
            for q in 0..nq {
                let want: f64 = (0..np).map(|p| w[(p * nq + q) * rp + c] * fp[p * rp + c]).sum();
                assert!(close(fast[q * rp + c], want, 100.0));
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let (n, l, r) = (1000, 200, 10); // above the parallel threshold
        let rp = padded(r);
        let x = random(n * l, 7);
        let f = random_padded(l, r, 8);
        let g = random_padded(n, r, 9);
        let (np, nq) = (400, 500);
        let w = random(np * nq * rp, 10);
        let (fq, fp) = (random_padded(nq, r, 11), random_padded(np, r, 12));
        assert!(np * nq * rp >= PAR_MIN_MADDS && n * l * rp >= PAR_MIN_MADDS);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut a = vec![0.0; n * rp];
                x_times_f(None, &x, n, l, &f, rp, &mut a);
                let mut b = vec![0.0; l * rp];
                xt_times_f(None, &x, n, l, l, &g, rp, &mut b);
                // a partial contraction with np x nq rows (p, q)
                let mut slow = vec![0.0; np * rp];
                mttkrp_slow(None, &w, &fq, np, nq, rp, &mut slow);
                let mut fast = vec![0.0; nq * rp];
                mttkrp_fast(None, &w, &fp, np, nq, rp, &mut fast);
                (a, b, slow, fast)
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}
