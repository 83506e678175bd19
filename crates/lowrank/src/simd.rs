//! Run-time CPU feature detection for the hand-written kernels (SGD, ALS,
//! deep factorization, CP passes), in one place: each kernel family keeps
//! its portable version and dispatches on these answers. The standard
//! library caches the detection, so the calls are cheap enough for a hot
//! path.

/// AVX2 with fused multiply-add (x86-64 only; `false` elsewhere).
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512F and AVX-512VL besides AVX2 and FMA: 32 vector registers and
/// 512-bit (or masked 256-bit) operations.
#[inline]
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma() && std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
