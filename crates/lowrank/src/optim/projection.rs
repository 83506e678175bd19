//! Euclidean projections onto the constraint sets of the source material.
//!
//! - [`simplex`]: onto `{x >= 0, sum x = tau}` (the probability simplex when
//!   `tau = 1`), by the sort-based algorithm of Duchi, Shalev-Shwartz, Singer
//!   and Chandra (2008), `O(n log n)`.
//! - [`simplex_ball`]: onto the "filled" simplex `{x >= 0, sum x <= tau}`:
//!   clip to the orthant, and only if the clipped vector sums above `tau`,
//!   project onto the simplex (the notebook's `simplex_projection`, with the
//!   case of negative entries summing below `tau` done right).
//! - [`l1_ball`]: onto `{||x||_1 <= tau}` (signs kept, magnitudes projected).
//! - [`nonneg`]: onto the non-negative orthant.
//! - [`nuclear_ball`]: onto `{X : ||X||_* <= tau}`: thin SVD, project the
//!   singular values with [`simplex_ball`] (the notebook's
//!   `nuclear_projection`); [`nuclear_ball_svd`] returns the factors.
//!
//! The vector projections work in place on `&mut [f64]`, so a driver can pass
//! them as its projection hook. A non-finite input makes the whole output NaN
//! (it is never silently clipped to 0), so the executor's divergence guard
//! sees it. A radius that is negative or not finite is
//! [`crate::Error::InvalidInput`].

use faer::{Mat, MatRef};

use crate::error::{Error, Result, ensure};

fn check_radius(tau: f64) -> Result<()> {
    ensure!(tau.is_finite() && tau >= 0.0, "the projection radius must be finite and >= 0, got {tau}");
    Ok(())
}

/// Fill with NaN and return true when some entry is not finite.
fn poison(v: &mut [f64]) -> bool {
    if v.iter().all(|x| x.is_finite()) {
        return false;
    }
    v.iter_mut().for_each(|x| *x = f64::NAN);
    true
}

/// The threshold `theta` of the projection of `v` onto `{x >= 0, sum x = tau}`:
/// the projection is `max(v - theta, 0)` (Duchi et al. 2008, Fig. 1).
pub fn simplex_threshold(v: &[f64], tau: f64) -> f64 {
    let mut u: Vec<f64> = v.to_vec();
    u.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut cum = 0.0;
    let mut theta = 0.0;
    for (j, &uj) in u.iter().enumerate() {
        cum += uj;
        let t = (cum - tau) / (j + 1) as f64;
        // rho = the largest j with u_j - (cum_j - tau) / j > 0; the condition
        // holds for a prefix of the sorted order, so the last hit wins. It
        // holds at j = 0 in exact arithmetic (u_0 - t = tau), also when
        // rounding says otherwise (tau = 0, or tau below the spacing of the
        // floats near u_0: theta 0 would skip the projection)
        if j == 0 || uj - t > 0.0 {
            theta = t;
        } else {
            break;
        }
    }
    theta
}

/// Project `v` in place onto `{x >= 0, sum x = tau}` (`tau >= 0`). Fails on an
/// empty vector with `tau > 0` (the set is empty).
pub fn simplex(v: &mut [f64], tau: f64) -> Result<()> {
    check_radius(tau)?;
    ensure!(!v.is_empty() || tau == 0.0, "cannot project an empty vector onto a simplex of radius {tau}");
    if poison(v) {
        return Ok(());
    }
    let theta = simplex_threshold(v, tau);
    v.iter_mut().for_each(|x| *x = (*x - theta).max(0.0));
    Ok(())
}

/// Project `v` in place onto `{x >= 0, sum x <= tau}` (`tau >= 0`).
pub fn simplex_ball(v: &mut [f64], tau: f64) -> Result<()> {
    check_radius(tau)?;
    if poison(v) {
        return Ok(());
    }
    let clipped: f64 = v.iter().map(|x| x.max(0.0)).sum();
    if clipped <= tau {
        v.iter_mut().for_each(|x| *x = x.max(0.0));
        return Ok(());
    }
    // The constraint is active: the projection lies on the simplex.
    let theta = simplex_threshold(v, tau);
    v.iter_mut().for_each(|x| *x = (*x - theta).max(0.0));
    Ok(())
}

/// Project `v` in place onto the l1 ball `{||x||_1 <= tau}` (`tau >= 0`).
pub fn l1_ball(v: &mut [f64], tau: f64) -> Result<()> {
    check_radius(tau)?;
    if poison(v) {
        return Ok(());
    }
    if v.iter().map(|x| x.abs()).sum::<f64>() <= tau {
        return Ok(());
    }
    let a: Vec<f64> = v.iter().map(|x| x.abs()).collect();
    let theta = simplex_threshold(&a, tau);
    v.iter_mut().for_each(|x| *x = x.signum() * (x.abs() - theta).max(0.0));
    Ok(())
}

/// Project `v` in place onto the non-negative orthant (NaN stays NaN).
pub fn nonneg(v: &mut [f64]) {
    v.iter_mut().for_each(|x| {
        if *x < 0.0 {
            *x = 0.0
        }
    });
}

/// A matrix in thin-SVD form `U diag(s) V^T`, columns with `s = 0` dropped.
#[derive(Clone, Debug)]
pub struct SvdFactors {
    /// Left singular vectors, `m x r`.
    pub u: Mat<f64>,
    /// Singular values, descending, all > 0.
    pub s: Vec<f64>,
    /// Right singular vectors, `n x r`.
    pub v: Mat<f64>,
}

impl SvdFactors {
    /// The dense matrix `U diag(s) V^T`.
    pub fn to_dense(&self) -> Mat<f64> {
        let us = Mat::from_fn(self.u.nrows(), self.s.len(), |i, t| self.u[(i, t)] * self.s[t]);
        &us * self.v.transpose()
    }

    /// The nuclear norm (sum of the singular values).
    pub fn nuclear_norm(&self) -> f64 {
        // from +0.0: `Sum` of an empty f64 iterator is -0.0
        self.s.iter().fold(0.0, |a, b| a + b)
    }
}

/// Projection onto `{||X||_* <= tau}` in SVD form: the singular values of `x`
/// projected onto `{s >= 0, sum s <= tau}`, the zero ones dropped.
pub fn nuclear_ball_svd(x: MatRef<'_, f64>, tau: f64) -> Result<SvdFactors> {
    check_radius(tau)?;
    let (m, n) = (x.nrows(), x.ncols());
    let finite = (0..n).all(|j| (0..m).all(|i| x[(i, j)].is_finite()));
    if !finite {
        // keep NaN visible to the divergence guard
        let k = m.min(n).min(1);
        return Ok(SvdFactors {
            u: Mat::from_fn(m, k, |_, _| f64::NAN),
            s: vec![f64::NAN; k],
            v: Mat::from_fn(n, k, |_, _| f64::NAN),
        });
    }
    let svd = x.thin_svd().map_err(|e| Error::Numerical(format!("SVD did not converge: {e:?}")))?;
    let mut s: Vec<f64> = svd.S().column_vector().iter().copied().collect();
    simplex_ball(&mut s, tau)?;
    let r = s.iter().take_while(|&&v| v > 0.0).count();
    let u = svd.U().subcols(0, r).to_owned();
    let v = svd.V().subcols(0, r).to_owned();
    s.truncate(r);
    Ok(SvdFactors { u, s, v })
}

/// Euclidean (Frobenius) projection of `x` onto the nuclear-norm ball of
/// radius `tau`.
pub fn nuclear_ball(x: MatRef<'_, f64>, tau: f64) -> Result<Mat<f64>> {
    let f = nuclear_ball_svd(x, tau)?;
    if f.s.is_empty() {
        return Ok(Mat::zeros(x.nrows(), x.ncols()));
    }
    Ok(f.to_dense())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    fn randv(seed: u64, n: usize, scale: f64) -> Vec<f64> {
        let mut r = rng::rng(seed);
        (0..n).map(|_| scale * rng::normal(&mut r)).collect()
    }

    /// Variational inequality of a projection `p` of `v` onto a polytope with
    /// vertices `verts`: `<v - p, y - p> <= 0` for every vertex `y` (enough,
    /// since it is linear in `y`), plus feasibility checked by the caller.
    fn vi_holds(v: &[f64], p: &[f64], verts: &[Vec<f64>]) -> bool {
        verts.iter().all(|y| {
            let s: f64 = v.iter().zip(p).zip(y).map(|((vi, pi), yi)| (vi - pi) * (yi - pi)).sum();
            s <= 1e-10
        })
    }

    fn simplex_vertices(n: usize, tau: f64, with_zero: bool) -> Vec<Vec<f64>> {
        let mut out: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let mut e = vec![0.0; n];
                e[i] = tau;
                e
            })
            .collect();
        if with_zero {
            out.push(vec![0.0; n]);
        }
        out
    }

    #[test]
    fn radii_at_and_below_the_rounding_of_the_entries_still_project() {
        // tau = 0: the only point of the set is 0
        let mut v = vec![3.0, -1.0, 2.0];
        simplex(&mut v, 0.0).unwrap();
        assert_eq!(v, vec![0.0; 3]);
        let mut v = vec![3.0, -1.0, 2.0];
        l1_ball(&mut v, 0.0).unwrap();
        assert_eq!(v, vec![0.0; 3]);
        // tau far below the spacing of the floats near the entries: within
        // rounding of the exact projection (tau, 0, 0), inside the ball
        for tau in [1e-16, 1e-100, 1e-320] {
            let mut v = vec![10.0, 3.0, 0.5];
            simplex_ball(&mut v, tau).unwrap();
            assert!(v.iter().all(|&x| (0.0..=tau).contains(&x)), "{tau}: {v:?}");
            assert!(v.iter().sum::<f64>() <= tau);
            let mut w = vec![-10.0, 3.0, 0.5];
            l1_ball(&mut w, tau).unwrap();
            assert!(w.iter().map(|x| x.abs()).sum::<f64>() <= tau, "{tau}: {w:?}");
        }
    }

    #[test]
    fn simplex_satisfies_kkt() {
        for seed in 0..50 {
            let n = 1 + (seed as usize % 9);
            let tau = 0.5 + seed as f64 * 0.1;
            let v = randv(seed, n, 2.0);
            let mut p = v.clone();
            simplex(&mut p, tau).unwrap();
            assert!(p.iter().all(|&x| x >= 0.0));
            assert!((p.iter().sum::<f64>() - tau).abs() < 1e-12);
            assert!(vi_holds(&v, &p, &simplex_vertices(n, tau, false)), "seed {seed}: {v:?} -> {p:?}");
        }
    }

    #[test]
    fn simplex_matches_bisection_brute_force() {
        // theta solves sum max(v - theta, 0) = tau; find it by bisection.
        for seed in 100..130 {
            let v = randv(seed, 12, 1.0);
            let tau = 1.0;
            let f = |t: f64| v.iter().map(|x| (x - t).max(0.0)).sum::<f64>() - tau;
            let (mut lo, mut hi) = (-100.0, 100.0);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if f(mid) > 0.0 { lo = mid } else { hi = mid }
            }
            let mut p = v.clone();
            simplex(&mut p, tau).unwrap();
            for (a, b) in p.iter().zip(v.iter().map(|x| (x - lo).max(0.0))) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn simplex_ball_kkt_and_interior() {
        for seed in 200..260 {
            let n = 1 + (seed as usize % 7);
            let tau = 1.0;
            let v = randv(seed, n, if seed % 2 == 0 { 0.3 } else { 3.0 });
            let mut p = v.clone();
            simplex_ball(&mut p, tau).unwrap();
            assert!(p.iter().all(|&x| x >= 0.0));
            assert!(p.iter().sum::<f64>() <= tau + 1e-12);
            assert!(vi_holds(&v, &p, &simplex_vertices(n, tau, true)), "seed {seed}");
        }
        // negative entries with a small sum: the answer is the clipped vector,
        // not the equality-simplex projection (the notebook's shortcut).
        let mut p = vec![0.2, -5.0, 0.1];
        simplex_ball(&mut p, 1.0).unwrap();
        assert_eq!(p, vec![0.2, 0.0, 0.1]);
    }

    #[test]
    fn l1_ball_kkt_brute_force() {
        for seed in 300..340 {
            let n = 1 + (seed as usize % 5);
            let tau = 0.7;
            let v = randv(seed, n, 1.5);
            let mut p = v.clone();
            l1_ball(&mut p, tau).unwrap();
            assert!(p.iter().map(|x| x.abs()).sum::<f64>() <= tau + 1e-12);
            let mut verts = Vec::new();
            for i in 0..n {
                for s in [-tau, tau] {
                    let mut e = vec![0.0; n];
                    e[i] = s;
                    verts.push(e);
                }
            }
            assert!(vi_holds(&v, &p, &verts), "seed {seed}");
        }
    }

    #[test]
    fn nonneg_and_poison() {
        let mut v = vec![-1.0, 2.0, 0.0];
        nonneg(&mut v);
        assert_eq!(v, vec![0.0, 2.0, 0.0]);
        let mut w = vec![1.0, f64::NAN];
        simplex(&mut w, 1.0).unwrap();
        assert!(w.iter().all(|x| x.is_nan()));
        let mut w = vec![1.0, f64::INFINITY];
        simplex_ball(&mut w, 1.0).unwrap();
        assert!(w.iter().all(|x| x.is_nan()));
    }

    #[test]
    fn invalid_radius() {
        let mut v = vec![1.0];
        assert!(matches!(simplex(&mut v, -1.0), Err(Error::InvalidInput(_))));
        assert!(matches!(simplex_ball(&mut v, f64::NAN), Err(Error::InvalidInput(_))));
        assert!(l1_ball(&mut v, f64::INFINITY).is_err());
        assert!(simplex(&mut [], 1.0).is_err());
        assert!(nuclear_ball(Mat::<f64>::zeros(2, 2).as_ref(), -0.5).is_err());
    }

    fn op_norm(a: &Mat<f64>) -> f64 {
        a.thin_svd().unwrap().S().column_vector()[0]
    }

    #[test]
    fn nuclear_ball_kkt() {
        // P is the projection of X onto {||Y||_* <= tau} iff P is feasible and
        // <X - P, Y - P> <= 0 for all feasible Y, i.e. (the support function
        // of the nuclear ball is tau ||.||_op)
        // tau ||X - P||_op <= <X - P, P>.
        for seed in 0..6u64 {
            let (m, n) = (5 + seed as usize, 4);
            let mut r = rng::rng(seed);
            let x = Mat::from_fn(m, n, |_, _| rng::normal(&mut r));
            let tau = 1.0 + seed as f64 * 0.5;
            let p = nuclear_ball(x.as_ref(), tau).unwrap();
            let sv = p.thin_svd().unwrap();
            let nuc: f64 = sv.S().column_vector().iter().sum();
            assert!(nuc <= tau + 1e-9, "nuclear norm {nuc} > {tau}");
            let d = &x - &p;
            let inner: f64 = (0..n).map(|j| (0..m).map(|i| d[(i, j)] * p[(i, j)]).sum::<f64>()).sum();
            assert!(tau * op_norm(&d) <= inner + 1e-9, "KKT: {} > {}", tau * op_norm(&d), inner);
        }
        // inside the ball: unchanged
        let x = Mat::from_fn(3, 3, |i, j| if i == j { 0.1 } else { 0.0 });
        let p = nuclear_ball(x.as_ref(), 1.0).unwrap();
        assert!((&p - &x).norm_max() < 1e-12);
        // factored form reproduces the dense projection
        let f = nuclear_ball_svd(Mat::from_fn(4, 3, |i, j| (i * 3 + j) as f64).as_ref(), 2.0).unwrap();
        assert!((f.nuclear_norm() - 2.0).abs() < 1e-10);
    }
}
