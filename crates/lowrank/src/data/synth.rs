//! Synthetic problems of the source material, deterministic by seed.

use faer::Mat;

use super::{IdMap, Ratings, Tensor3};
use crate::error::{Result, ensure};
use crate::rng::{self, Rng};

fn gaussian(g: &mut Rng, m: usize, n: usize) -> Mat<f64> {
    Mat::from_fn(m, n, |_, _| rng::normal(g))
}

/// The planted completion problem of the deep matrix factorization code
/// (`gen_gt` / `gen_obs`): `W = U V^T` with Gaussian `U`, `V` (`n x rank`),
/// scaled so that `||W||_F = n`, and `observed` distinct entries sampled
/// uniformly without replacement.
#[derive(Clone, Debug)]
pub struct PlantedCompletion {
    /// The ground truth (dense `n x n`).
    pub truth: Mat<f64>,
    /// The observed entries.
    pub observed: Ratings,
}

/// Generate a [`PlantedCompletion`] problem (square `n x n`).
pub fn planted_completion(n: usize, rank: usize, observed: usize, seed: u64) -> Result<PlantedCompletion> {
    planted_completion_rect(n, n, rank, observed, seed)
}

/// [`planted_completion`] for an `m x n` matrix (scaled so `||W||_F = sqrt(m n)`).
pub fn planted_completion_rect(
    m: usize,
    n: usize,
    rank: usize,
    observed: usize,
    seed: u64,
) -> Result<PlantedCompletion> {
    ensure!(m > 0 && n > 0, "the matrix must be non-empty");
    ensure!(rank >= 1 && rank <= m.min(n), "rank must be in 1..={}, got {rank}", m.min(n));
    crate::error::ensure_fits_in_memory(
        2 * (m as u128) * (n as u128),
        &format!("a planted {m} x {n} problem (its dense ground truth)"),
        "choose a smaller n",
    )?;
    ensure!(observed >= 1 && observed <= m * n, "observed must be in 1..={}, got {observed}", m * n);
    let mut g = rng::rng(seed);
    let u = gaussian(&mut g, m, rank);
    let v = gaussian(&mut g, n, rank);
    let mut w = &u * v.transpose();
    let scale = ((m * n) as f64).sqrt() / w.norm_l2();
    w *= faer::Scale(scale);
    let picks = sample_distinct(&mut g, m * n, observed);
    let rows = picks.iter().map(|&p| (p / n) as u32).collect();
    let cols = picks.iter().map(|&p| (p % n) as u32).collect();
    let vals = picks.iter().map(|&p| w[(p / n, p % n)] as f32).collect();
    let observed = Ratings::with_ids(rows, cols, vals, IdMap::identity(m), IdMap::identity(n))?;
    Ok(PlantedCompletion { truth: w, observed })
}

/// `count` distinct integers from `0..total`, sorted (Floyd's algorithm for
/// sparse samples, a partial shuffle for dense ones).
pub fn sample_distinct(g: &mut Rng, total: usize, count: usize) -> Vec<usize> {
    assert!(count <= total);
    let mut out: Vec<usize> = if count * 4 > total {
        let mut all: Vec<usize> = (0..total).collect();
        for i in 0..count {
            let j = i + rng::below(g, total - i);
            all.swap(i, j);
        }
        all.truncate(count);
        all
    } else {
        let mut set = std::collections::HashSet::with_capacity(count * 2);
        for j in total - count..total {
            let t = rng::below(g, j + 1);
            if !set.insert(t) {
                set.insert(j);
            }
        }
        set.into_iter().collect()
    };
    out.sort_unstable();
    out
}

/// The course notebook's rank-2 checkerboard (`rows x cols`, default 40x70):
/// `-3`/`+3` on even/odd rows plus `+1`/`-1` on even/odd columns.
pub fn checkerboard(rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| (if i % 2 == 0 { -3.0 } else { 3.0 }) + (if j % 2 == 0 { 1.0 } else { -1.0 }))
}

/// The notebook's `subsample(A, density)`: each entry is observed
/// independently with probability `density`. Returns the observed entries.
pub fn subsample(a: &Mat<f64>, density: f64, seed: u64) -> Result<Ratings> {
    ensure!(density > 0.0 && density <= 1.0, "density must be in (0, 1], got {density}");
    ensure!(
        a.nrows() > 0 && a.ncols() > 0,
        "the matrix is empty ({}x{}): rows and columns must be at least 1",
        a.nrows(),
        a.ncols()
    );
    let mut g = rng::rng(seed);
    let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            if rng::uniform(&mut g) <= density {
                rows.push(i as u32);
                cols.push(j as u32);
                vals.push(a[(i, j)] as f32);
            }
        }
    }
    ensure!(!vals.is_empty(), "the subsample observed nothing; raise the density");
    Ratings::with_ids(rows, cols, vals, IdMap::identity(a.nrows()), IdMap::identity(a.ncols()))
}

/// Parameters of a ratings-like sparse data set.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RatingsSpec {
    /// Number of users (rows).
    pub users: usize,
    /// Number of items (columns).
    pub items: usize,
    /// Number of ratings (distinct pairs).
    pub count: usize,
    /// Rank of the ground truth `P Q^T`.
    pub rank: usize,
    /// Standard deviation of the added Gaussian noise.
    pub noise: f64,
    /// Map values to a `1..=5` star scale (shift to mean 3.5, round, clip).
    pub stars: bool,
    /// Zipf-like popularity skew of items and users (0 = uniform).
    pub skew: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for RatingsSpec {
    fn default() -> Self {
        RatingsSpec {
            users: 20_000,
            items: 2_000,
            count: 1_000_000,
            rank: 16,
            noise: 0.1,
            stars: false,
            skew: 0.0,
            seed: 42,
        }
    }
}

/// A ratings-like data set: `P Q^T` with `P, Q ~ N(0, 1/sqrt(rank))` (unit
/// variance entries), plus `N(0, noise^2)`, on `count` distinct pairs drawn
/// uniformly or with popularity skew. Also returns nothing else: the ground
/// truth factors are regenerated from the seed when needed.
///
/// Runs in parallel (one RNG stream per block of entries), and is identical
/// for a given spec whatever the thread count.
pub fn ratings_like(spec: &RatingsSpec) -> Result<Ratings> {
    use rayon::prelude::*;
    let (m, n, k) = (spec.users, spec.items, spec.rank);
    ensure!(m > 0 && n > 0, "users and items must be positive");
    ensure!(k >= 1, "rank must be at least 1");
    ensure!(spec.noise >= 0.0 && spec.noise.is_finite(), "noise must be a finite number >= 0, got {}", spec.noise);
    ensure!(spec.noise <= 1e30, "noise {:e} would overflow the ratings (32-bit floats)", spec.noise);
    ensure!(spec.skew >= 0.0 && spec.skew.is_finite(), "skew must be a finite number >= 0, got {}", spec.skew);
    ensure!(
        (spec.count as f64) <= 0.5 * m as f64 * n as f64,
        "{} ratings is more than half of the {m}x{n} grid; use a dense generator",
        spec.count
    );
    ensure!(spec.count < u32::MAX as usize, "count too large");
    let s = 1.0 / (k as f64).sqrt().sqrt();
    let mut g = rng::rng(spec.seed);
    let p: Vec<f32> = (0..m * k).map(|_| (rng::normal(&mut g) * s) as f32).collect();
    let q: Vec<f32> = (0..n * k).map(|_| (rng::normal(&mut g) * s) as f32).collect();
    // candidate pairs per block, deduplicated globally afterwards
    let sampler = |g: &mut Rng, size: usize| -> usize {
        let u = rng::uniform(g);
        if spec.skew == 0.0 {
            ((u * size as f64) as usize).min(size - 1)
        } else {
            // power-law: index ~ size * u^(1 + skew)
            ((u.powf(1.0 + spec.skew) * size as f64) as usize).min(size - 1)
        }
    };
    let block = 1 << 18;
    let mut keys: Vec<u64> = Vec::with_capacity(spec.count + spec.count / 8);
    let mut round = 0u64;
    while keys.len() < spec.count {
        let need = (spec.count - keys.len()) + (spec.count - keys.len()) / 16 + 1024;
        let nblocks = need.div_ceil(block);
        let fresh: Vec<u64> = (0..nblocks)
            .into_par_iter()
            .flat_map_iter(|b| {
                let mut g = rng::stream(spec.seed ^ 0xA5A5, round * 1_000_003 + b as u64);
                let len = block.min(need - b * block);
                (0..len)
                    .map(move |_| {
                        let i = sampler(&mut g, m) as u64;
                        let j = sampler(&mut g, n) as u64;
                        (i << 32) | j
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.extend(fresh);
        keys.par_sort_unstable();
        keys.dedup();
        round += 1;
        ensure!(round < 64, "could not sample {} distinct pairs (skew too high?)", spec.count);
    }
    // random subset of exactly `count` keys, then shuffle the order
    let mut g2 = rng::stream(spec.seed, 0x5EED);
    rng::shuffle(&mut g2, &mut keys);
    keys.truncate(spec.count);
    let entries: Vec<(u32, u32, f32)> = keys
        .par_chunks(block)
        .enumerate()
        .flat_map_iter(|(b, chunk)| {
            let mut g = rng::stream(spec.seed ^ 0x0015E, b as u64);
            let (p, q) = (&p, &q);
            chunk
                .iter()
                .map(move |&key| {
                    let (i, j) = ((key >> 32) as usize, (key & 0xFFFF_FFFF) as usize);
                    let mut v: f64 = (0..k).map(|t| p[i * k + t] as f64 * q[j * k + t] as f64).sum();
                    v += spec.noise * rng::normal(&mut g);
                    if spec.stars {
                        v = (3.5 + v).round().clamp(1.0, 5.0);
                    }
                    (i as u32, j as u32, v as f32)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let rows = entries.iter().map(|e| e.0).collect();
    let cols = entries.iter().map(|e| e.1).collect();
    let vals = entries.iter().map(|e| e.2).collect();
    Ratings::with_ids(rows, cols, vals, IdMap::identity(m), IdMap::identity(n))
}

/// A random CP tensor as the course notebook builds it: factor entries
/// `N(0, 1)`, each column normalized to unit length,
/// `T = [[A, B, C]] + mu * ||[[A, B, C]]||_F / ||N||_F * N` with Gaussian `N`.
/// Returns the noisy tensor, the clean one and the factors `[A, B, C]`.
pub fn random_cp(dims: [usize; 3], rank: usize, mu: f64, seed: u64) -> Result<(Tensor3, Tensor3, [Mat<f64>; 3])> {
    ensure!(rank >= 1, "rank must be at least 1");
    ensure!(dims.iter().all(|&d| d > 0), "dimensions must be positive");
    ensure!(mu >= 0.0 && mu.is_finite(), "noise level must be a finite number >= 0, got {mu}");
    let entries = dims.iter().map(|&d| d as u128).product::<u128>();
    crate::error::ensure_fits_in_memory(
        2 * entries,
        &format!("a {} x {} x {} tensor (clean and noisy copies)", dims[0], dims[1], dims[2]),
        "choose smaller dimensions",
    )?;
    let mut g = rng::rng(seed);
    let mut factors = [0, 1, 2].map(|m| gaussian(&mut g, dims[m], rank));
    for f in factors.iter_mut() {
        for c in 0..rank {
            let norm = f.col(c).norm_l2();
            for i in 0..f.nrows() {
                f[(i, c)] /= norm;
            }
        }
    }
    let [a, b, c] = &factors;
    let mut clean = crate::mem::huge_zeros(dims[0] * dims[1] * dims[2]);
    for i in 0..dims[0] {
        for j in 0..dims[1] {
            for k in 0..dims[2] {
                let mut s = 0.0;
                for r in 0..rank {
                    s += a[(i, r)] * b[(j, r)] * c[(k, r)];
                }
                clean[(i * dims[1] + j) * dims[2] + k] = s;
            }
        }
    }
    // the noise is drawn into the buffer of the noisy tensor, then scaled
    let mut noisy = crate::mem::huge_vec(clean.len());
    noisy.extend((0..clean.len()).map(|_| rng::normal(&mut g)));
    let cn = clean.iter().map(|v| v * v).sum::<f64>().sqrt();
    let nn = noisy.iter().map(|v| v * v).sum::<f64>().sqrt();
    let scale = if nn > 0.0 { mu * cn / nn } else { 0.0 };
    for (z, c) in noisy.iter_mut().zip(&clean) {
        *z = c + scale * *z;
    }
    Ok((Tensor3::new(dims, noisy)?, Tensor3::new(dims, clean)?, factors))
}

/// The lab's 3x3 matrix (seed 003).
pub fn lab_matrix() -> Mat<f64> {
    faer::mat![[0.3374, 0.6005, 0.1735], [3.3359, 0.0492, 1.8374], [2.9407, 0.5301, 2.2620]]
}

/// The lab's masked 3x3 matrix: entries (1, 0) and (2, 1) missing (NaN).
pub fn lab_matrix_masked() -> Mat<f64> {
    let mut a = lab_matrix();
    a[(1, 0)] = f64::NAN;
    a[(2, 1)] = f64::NAN;
    a
}

/// The Adagrad blog's 4x3 matrix with its one missing entry (seed 004):
/// `[[3,4,5,2],[4,4,3,3],[5,5,4,3]]^T` with entry (0, 0) masked.
pub fn blog_matrix() -> Mat<f64> {
    faer::mat![[f64::NAN, 4.0, 5.0], [4.0, 4.0, 5.0], [5.0, 3.0, 4.0], [2.0, 3.0, 3.0]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_is_scaled_and_deterministic() {
        let p = planted_completion(30, 3, 200, 1).unwrap();
        assert!((p.truth.norm_l2() - 30.0).abs() < 1e-9);
        assert_eq!(p.observed.len(), 200);
        assert!(p.observed.find_duplicate().is_none());
        let q = planted_completion(30, 3, 200, 1).unwrap();
        assert_eq!(p.observed.values(), q.observed.values());
        // rank: singular value 4 is ~0
        let s = p.truth.singular_values().unwrap();
        assert!(s[3] < 1e-9 * s[0]);
    }

    #[test]
    fn checkerboard_is_rank_two() {
        let a = checkerboard(40, 70);
        assert_eq!(a[(0, 0)], -2.0);
        assert_eq!(a[(1, 1)], 2.0);
        let s = a.singular_values().unwrap();
        assert!(s[1] > 1.0 && s[2] < 1e-9);
    }

    #[test]
    fn ratings_like_deterministic_and_distinct() {
        let spec = RatingsSpec { users: 300, items: 200, count: 5000, ..Default::default() };
        let a = ratings_like(&spec).unwrap();
        let b = ratings_like(&spec).unwrap();
        assert_eq!(a.len(), 5000);
        assert_eq!(a.values(), b.values());
        assert!(a.find_duplicate().is_none());
        let sd = (a.values().iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 5000.0).sqrt();
        assert!((sd - 1.0).abs() < 0.1, "value sd {sd}");
    }

    #[test]
    fn cp_noise_level() {
        let (t, clean, _) = random_cp([6, 5, 4], 3, 1e-3, 9).unwrap();
        let diff: f64 = t.data().iter().zip(clean.data()).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        assert!((diff / clean.norm() - 1e-3).abs() < 1e-12);
    }
}
