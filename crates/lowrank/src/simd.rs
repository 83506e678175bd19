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

/// Run the one-time detection work of the CPU-dependent code paths: the
/// feature checks above and the dense kernels' cache-size probe (faer's
/// blocked products read the cache topology from `/sys` the first time one
/// runs in a process: 1.5-2 ms here, which would otherwise land inside the
/// first solver step that calls a QR or a product of moderate size). Cheap
/// after the first call; a program can run it on a spare thread while it
/// parses its arguments and reads its data.
pub fn warm_up() {
    let _ = has_avx512();
    let a = faer::Mat::<f64>::from_fn(96, 48, |i, j| if i == j { 1.0 } else { 0.0 });
    // sequential at this size: the global thread pool is not started
    let (q, _) = crate::solve::spectral::svd::thin_qr(a.as_ref());
    let mut c = faer::Mat::<f64>::zeros(48, 48);
    faer::linalg::matmul::matmul(c.as_mut(), faer::Accum::Replace, q.transpose(), q.as_ref(), 1.0, faer::Par::Seq);
}
