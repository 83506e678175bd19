//! The hot loop: SGD over the entries of one block.
//!
//! Factors are contiguous f32 rows whose length `kp` is the rank rounded up
//! to a multiple of [`LANES`] (the padding lanes start at zero and stay zero:
//! their gradient is `e * 0 - reg * 0`). The dot product and the two axpys
//! are written over `[f32; 8]` lanes so they compile to 8-wide SIMD (AVX2 +
//! FMA when the CPU has it, chosen once at run time; SSE2 otherwise), with no
//! bounds checks and no allocation per update.

/// SIMD width the rank is padded to.
pub const LANES: usize = 8;

/// The rank rounded up to a multiple of [`LANES`].
pub fn padded(rank: usize) -> usize {
    rank.div_ceil(LANES) * LANES
}

/// One observed entry inside a block: its column (relative to the block's
/// first column) and value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Entry {
    /// Column index relative to the column block.
    pub col: u32,
    /// Observed value.
    pub val: f32,
}

/// A run of entries of one row inside a block: `row` (relative to the row
/// block) owns the entries up to `end` (exclusive, global position).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Run {
    /// Row index relative to the row block.
    pub row: u32,
    /// One past the last entry of the run (position in the entry array).
    pub end: u32,
}

/// Per-row scalars beside the factor row: the bias and the adaptive-rate
/// accumulators.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aux {
    /// Row (user) or column (item) bias.
    pub bias: f32,
    /// Accumulated squared factor gradient (LIBMF's `G`, starts at 1).
    pub g: f32,
    /// Accumulated squared bias gradient (starts at 1).
    pub gb: f32,
    /// Padding to 16 bytes.
    pub pad: f32,
}

impl Default for Aux {
    fn default() -> Self {
        Aux { bias: 0.0, g: 1.0, gb: 1.0, pad: 0.0 }
    }
}

/// The rates and penalties of one epoch.
#[derive(Clone, Copy, Debug)]
pub struct Hyper {
    /// Factor learning rate (after the schedule).
    pub lr: f32,
    /// Bias learning rate (after the schedule).
    pub lr_b: f32,
    /// L2 penalty on factors.
    pub reg: f32,
    /// L2 penalty on biases.
    pub reg_b: f32,
    /// Global mean (0 without biases).
    pub mu: f32,
    /// `1 / rank` (the adaptive accumulator averages over the true rank).
    pub inv_k: f32,
}

/// What the kernel does besides plain SGD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// Biases (and the global mean) are learned.
    pub bias: bool,
    /// LIBMF's adaptive per-row rate.
    pub adaptive: bool,
    /// Project the factors onto `>= 0`.
    pub nonneg: bool,
    /// Use the AVX2 + FMA build.
    pub avx2: bool,
}

/// Whether this CPU can run the AVX2 + FMA build.
pub fn has_avx2_fma() -> bool {
    crate::simd::has_avx2_fma()
}

/// The mutable state one block touches: the factor rows and aux scalars of
/// its row range and of its column range.
pub struct BlockState<'a> {
    /// Row factors of the row block (`rows x kp`).
    pub p: &'a mut [f32],
    /// Row scalars of the row block.
    pub pa: &'a mut [Aux],
    /// Column factors of the column block (`cols x kp`).
    pub q: &'a mut [f32],
    /// Column scalars of the column block.
    pub qa: &'a mut [Aux],
}

/// SGD over one block: every entry of `runs` (positions `start..`), in order.
/// Returns the sum of the squared errors seen before each update.
///
/// Panics if a run or entry points outside `st` (checked once per block, not
/// per update) or if `kp` is not a multiple of [`LANES`].
pub fn run_block(
    flags: Flags,
    kp: usize,
    st: BlockState<'_>,
    runs: &[Run],
    ent: &[Entry],
    start: usize,
    h: Hyper,
) -> f64 {
    assert!(kp.is_multiple_of(LANES) && kp > 0, "padded rank must be a positive multiple of {LANES}");
    let rows = st.pa.len();
    let cols = st.qa.len();
    assert!(st.p.len() == rows * kp && st.q.len() == cols * kp, "factor slices do not match the aux slices");
    let end = runs.last().map_or(start, |r| r.end as usize);
    assert!(start <= end && end <= ent.len(), "runs point outside the entries");
    assert!(runs.iter().all(|r| (r.row as usize) < rows), "a run's row is outside the row block");
    assert!(ent[start..end].iter().all(|e| (e.col as usize) < cols), "an entry's column is outside the column block");
    let mut prev = start;
    for r in runs {
        assert!(r.end as usize >= prev, "runs are not in order");
        prev = r.end as usize;
    }
    let args = Args {
        kp,
        p: st.p.as_mut_ptr(),
        pa: st.pa.as_mut_ptr(),
        q: st.q.as_mut_ptr(),
        qa: st.qa.as_mut_ptr(),
        runs,
        ent,
        start,
        h,
    };
    macro_rules! go {
        ($b:literal, $a:literal, $n:literal) => {{
            #[cfg(target_arch = "x86_64")]
            if flags.avx2 && has_avx2_fma() {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above);
                // the pointers and indices were validated above.
                return unsafe { body_avx2::<$b, $a, $n>(args) };
            }
            // SAFETY: the pointers and indices were validated above.
            unsafe { body::<$b, $a, $n, false>(args) }
        }};
    }
    match (flags.bias, flags.adaptive, flags.nonneg) {
        (false, false, false) => go!(false, false, false),
        (false, false, true) => go!(false, false, true),
        (false, true, false) => go!(false, true, false),
        (false, true, true) => go!(false, true, true),
        (true, false, false) => go!(true, false, false),
        (true, false, true) => go!(true, false, true),
        (true, true, false) => go!(true, true, false),
        (true, true, true) => go!(true, true, true),
    }
}

struct Args<'a> {
    kp: usize,
    p: *mut f32,
    pa: *mut Aux,
    q: *mut f32,
    qa: *mut Aux,
    runs: &'a [Run],
    ent: &'a [Entry],
    start: usize,
    h: Hyper,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn body_avx2<const BIAS: bool, const ADA: bool, const NN: bool>(a: Args<'_>) -> f64 {
    // SAFETY: forwarded contract of `body`.
    unsafe { body::<BIAS, ADA, NN, true>(a) }
}

#[inline(always)]
fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

#[inline(always)]
fn hsum(x: [f32; LANES]) -> f32 {
    ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]))
}

/// The portable build of the three row operations, over `[f32; 8]` lanes
/// (LLVM turns the dot product into 8-wide SIMD; the symmetric updates it
/// only partly vectorizes, which is why x86-64 has [`avx`]).
mod portable {
    use super::{LANES, hsum};

    /// `p . q` over `chunks` 8-lane chunks.
    ///
    /// # Safety
    /// `p` and `q` point to `8 * chunks` floats.
    #[inline(always)]
    pub unsafe fn dot(p: *const f32, q: *const f32, chunks: usize) -> f32 {
        let mut acc = [0.0f32; LANES];
        for c in 0..chunks {
            let (pc, qc) =
                unsafe { (*(p.add(c * LANES) as *const [f32; LANES]), *(q.add(c * LANES) as *const [f32; LANES])) };
            for l in 0..LANES {
                acc[l] += pc[l] * qc[l];
            }
        }
        hsum(acc)
    }

    /// `p, q <- decay p + step q, decay q + step p` (then `max(0, .)` if `NN`).
    ///
    /// # Safety
    /// `p` and `q` point to `8 * chunks` floats each, not overlapping.
    #[inline(always)]
    pub unsafe fn sgd<const NN: bool>(p: *mut f32, q: *mut f32, chunks: usize, step: f32, decay: f32) {
        for c in 0..chunks {
            let (pc, qc) = unsafe { (p.add(c * LANES) as *mut [f32; LANES], q.add(c * LANES) as *mut [f32; LANES]) };
            let (pv, qv) = unsafe { (*pc, *qc) };
            let mut np = [0.0f32; LANES];
            let mut nq = [0.0f32; LANES];
            for l in 0..LANES {
                let a = decay * pv[l] + step * qv[l];
                let b = decay * qv[l] + step * pv[l];
                np[l] = if NN { a.max(0.0) } else { a };
                nq[l] = if NN { b.max(0.0) } else { b };
            }
            unsafe {
                *pc = np;
                *qc = nq;
            }
        }
    }

    /// LIBMF's step: `g_p = reg p - err q`, `p -= ep g_p` (same for `q`);
    /// returns `(|g_p|^2, |g_q|^2)`.
    ///
    /// # Safety
    /// As [`sgd`].
    #[inline(always)]
    pub unsafe fn ada<const NN: bool>(
        p: *mut f32,
        q: *mut f32,
        chunks: usize,
        reg: f32,
        err: f32,
        ep: f32,
        eq: f32,
    ) -> (f32, f32) {
        let mut gp = [0.0f32; LANES];
        let mut gq = [0.0f32; LANES];
        for c in 0..chunks {
            let (pc, qc) = unsafe { (p.add(c * LANES) as *mut [f32; LANES], q.add(c * LANES) as *mut [f32; LANES]) };
            let (pv, qv) = unsafe { (*pc, *qc) };
            let mut np = [0.0f32; LANES];
            let mut nq = [0.0f32; LANES];
            for l in 0..LANES {
                let g1 = reg * pv[l] - err * qv[l];
                let g2 = reg * qv[l] - err * pv[l];
                gp[l] += g1 * g1;
                gq[l] += g2 * g2;
                let a = pv[l] - ep * g1;
                let b = qv[l] - eq * g2;
                np[l] = if NN { a.max(0.0) } else { a };
                nq[l] = if NN { b.max(0.0) } else { b };
            }
            unsafe {
                *pc = np;
                *qc = nq;
            }
        }
        (hsum(gp), hsum(gq))
    }
}

/// The AVX2 + FMA build of the row operations (same contracts as
/// [`portable`]), written with intrinsics: LLVM's SLP vectorizer pairs the
/// `p` and `q` lanes of the symmetric update into 128-bit shuffles instead
/// of using 256-bit rows (checked in the assembly).
#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(x: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// # Safety
    /// `p` and `q` point to `8 * chunks` floats; the CPU has AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(p: *const f32, q: *const f32, chunks: usize) -> f32 {
        // two accumulators: halves the FMA latency chain
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut c = 0;
        while c + 2 <= chunks {
            unsafe {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(c * 8)), _mm256_loadu_ps(q.add(c * 8)), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(c * 8 + 8)), _mm256_loadu_ps(q.add(c * 8 + 8)), a1);
            }
            c += 2;
        }
        if c < chunks {
            unsafe {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(c * 8)), _mm256_loadu_ps(q.add(c * 8)), a0);
            }
        }
        hsum(_mm256_add_ps(a0, a1))
    }

    /// # Safety
    /// `p` and `q` point to `8 * chunks` floats each, not overlapping; AVX2 + FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sgd<const NN: bool>(p: *mut f32, q: *mut f32, chunks: usize, step: f32, decay: f32) {
        let (s, d, z) = (_mm256_set1_ps(step), _mm256_set1_ps(decay), _mm256_setzero_ps());
        for c in 0..chunks {
            unsafe {
                let (pp, qq) = (p.add(c * 8), q.add(c * 8));
                let (pv, qv) = (_mm256_loadu_ps(pp), _mm256_loadu_ps(qq));
                let mut np = _mm256_fmadd_ps(s, qv, _mm256_mul_ps(d, pv));
                let mut nq = _mm256_fmadd_ps(s, pv, _mm256_mul_ps(d, qv));
                if NN {
                    np = _mm256_max_ps(np, z);
                    nq = _mm256_max_ps(nq, z);
                }
                _mm256_storeu_ps(pp, np);
                _mm256_storeu_ps(qq, nq);
            }
        }
    }

    /// # Safety
    /// As [`sgd`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn ada<const NN: bool>(
        p: *mut f32,
        q: *mut f32,
        chunks: usize,
        reg: f32,
        err: f32,
        ep: f32,
        eq: f32,
    ) -> (f32, f32) {
        let (r, ne, nep, neq, z) =
            (_mm256_set1_ps(reg), _mm256_set1_ps(-err), _mm256_set1_ps(-ep), _mm256_set1_ps(-eq), _mm256_setzero_ps());
        let (mut gp, mut gq) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for c in 0..chunks {
            unsafe {
                let (pp, qq) = (p.add(c * 8), q.add(c * 8));
                let (pv, qv) = (_mm256_loadu_ps(pp), _mm256_loadu_ps(qq));
                let g1 = _mm256_fmadd_ps(r, pv, _mm256_mul_ps(ne, qv));
                let g2 = _mm256_fmadd_ps(r, qv, _mm256_mul_ps(ne, pv));
                gp = _mm256_fmadd_ps(g1, g1, gp);
                gq = _mm256_fmadd_ps(g2, g2, gq);
                let mut np = _mm256_fmadd_ps(nep, g1, pv);
                let mut nq = _mm256_fmadd_ps(neq, g2, qv);
                if NN {
                    np = _mm256_max_ps(np, z);
                    nq = _mm256_max_ps(nq, z);
                }
                _mm256_storeu_ps(pp, np);
                _mm256_storeu_ps(qq, nq);
            }
        }
        (hsum(gp), hsum(gq))
    }
}

/// Row operations of the build `SIMD` (true: [`avx`], only reached after the
/// CPU check; false: [`portable`]).
#[inline(always)]
unsafe fn dot<const SIMD: bool>(p: *const f32, q: *const f32, chunks: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        return unsafe { avx::dot(p, q, chunks) };
    }
    unsafe { portable::dot(p, q, chunks) }
}

#[inline(always)]
unsafe fn sgd_rows<const SIMD: bool, const NN: bool>(p: *mut f32, q: *mut f32, chunks: usize, step: f32, decay: f32) {
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        return unsafe { avx::sgd::<NN>(p, q, chunks, step, decay) };
    }
    unsafe { portable::sgd::<NN>(p, q, chunks, step, decay) }
}

#[inline(always)]
unsafe fn ada_rows<const SIMD: bool, const NN: bool>(
    p: *mut f32,
    q: *mut f32,
    chunks: usize,
    reg: f32,
    err: f32,
    ep: f32,
    eq: f32,
) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        return unsafe { avx::ada::<NN>(p, q, chunks, reg, err, ep, eq) };
    }
    unsafe { portable::ada::<NN>(p, q, chunks, reg, err, ep, eq) }
}

/// The loop itself.
///
/// # Safety
/// `p`/`pa` hold `rows` rows, `q`/`qa` hold `cols` rows (of `kp` floats /
/// one [`Aux`]), every `run.row < rows`, every entry column `< cols`, runs
/// ordered with `start <= run.end <= ent.len()`, `kp` a multiple of 8, the
/// row and column storage do not overlap, and with `SIMD` the CPU has AVX2
/// and FMA.
#[inline(always)]
unsafe fn body<const BIAS: bool, const ADA: bool, const NN: bool, const SIMD: bool>(a: Args<'_>) -> f64 {
    let Args { kp, p, pa, q, qa, runs, ent, start, h } = a;
    let chunks = kp / LANES;
    let decay = 1.0 - h.lr * h.reg;
    let decay_b = 1.0 - h.lr_b * h.reg_b;
    let mut sq = 0.0f64;
    let mut pos = start;
    for run in runs {
        let u = run.row as usize;
        // SAFETY (whole loop): indices validated by the caller.
        let prow = unsafe { p.add(u * kp) };
        let pu = unsafe { &mut *pa.add(u) };
        let end = run.end as usize;
        while pos < end {
            let en = unsafe { *ent.get_unchecked(pos) };
            pos += 1;
            let i = en.col as usize;
            let qrow = unsafe { q.add(i * kp) };
            let qi = unsafe { &mut *qa.add(i) };
            let dot = unsafe { dot::<SIMD>(prow, qrow, chunks) };
            let pred = if BIAS { h.mu + pu.bias + qi.bias + dot } else { dot };
            let err = en.val - pred;
            sq += (err as f64) * (err as f64);
            if BIAS {
                if ADA {
                    let gu = h.reg_b * pu.bias - err;
                    let gi = h.reg_b * qi.bias - err;
                    pu.bias -= h.lr_b / pu.gb.sqrt() * gu;
                    qi.bias -= h.lr_b / qi.gb.sqrt() * gi;
                    pu.gb += gu * gu;
                    qi.gb += gi * gi;
                } else {
                    let step = h.lr_b * err;
                    pu.bias = fmadd::<SIMD>(decay_b, pu.bias, step);
                    qi.bias = fmadd::<SIMD>(decay_b, qi.bias, step);
                }
            }
            if ADA {
                let ep = h.lr / pu.g.sqrt();
                let eq = h.lr / qi.g.sqrt();
                let (gp, gq) = unsafe { ada_rows::<SIMD, NN>(prow, qrow, chunks, h.reg, err, ep, eq) };
                pu.g = fmadd::<SIMD>(gp, h.inv_k, pu.g);
                qi.g = fmadd::<SIMD>(gq, h.inv_k, qi.g);
            } else {
                unsafe { sgd_rows::<SIMD, NN>(prow, qrow, chunks, h.lr * err, decay) };
            }
        }
    }
    sq
}
