//! Seeded randomness.
//!
//! All randomness in lowrank flows from a user `seed` through [`Rng`], a
//! xoshiro256++ generator. Parallel code derives one independent stream per
//! worker with [`stream`], so results depend only on the seed and the thread
//! count, never on scheduling.

use rand::SeedableRng;

/// The generator used everywhere in lowrank.
pub type Rng = rand_xoshiro::Xoshiro256PlusPlus;

/// A generator seeded from `seed`.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// The `index`-th independent stream derived from `seed` (SplitMix64 mixing of
/// both numbers, so streams of nearby seeds and indices do not overlap in
/// practice).
pub fn stream(seed: u64, index: u64) -> Rng {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    Rng::seed_from_u64(z)
}

/// Standard normal sample.
pub fn normal(rng: &mut Rng) -> f64 {
    use rand_distr::Distribution;
    rand_distr::StandardNormal.sample(rng)
}

/// Uniform sample in `[0, 1)`.
pub fn uniform(rng: &mut Rng) -> f64 {
    use rand::RngExt;
    rng.random::<f64>()
}

/// Uniform integer in `0..n` (n > 0).
pub fn below(rng: &mut Rng, n: usize) -> usize {
    use rand::RngExt;
    rng.random_range(0..n)
}

/// Fisher-Yates shuffle.
pub fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i + 1);
        items.swap(i, j);
    }
}
