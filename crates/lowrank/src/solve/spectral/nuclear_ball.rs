//! Matrix completion over the nuclear-norm ball: projected gradient
//! (`--algo pgd-nuclear`) and Frank-Wolfe (`--algo frank-wolfe`).
//!
//! Both minimize the completion loss of the course notebook (seed 000,
//! lecture 5 and "Comparison with gradient descent and nuclear norm
//! projection")
//!
//! ```text
//! f(X) = 1/2 ||P_Omega(X - A)||_F^2   subject to   ||X||_* <= tau,
//! ```
//!
//! whose gradient `P_Omega(X - A)` is 1-Lipschitz, so every step size
//! `lr <= 1` decreases `f` monotonically (and `lr < 2` converges).
//!
//! **Projected gradient** ([`PgdNuclear`]): `X <- Proj_tau(X - lr * grad)`.
//! The projection onto the ball is an SVD whose singular values are projected
//! onto `{s >= 0, sum s <= tau}` ([`crate::optim::projection`]), the notebook's
//! `nuclear_projection`. The iterate is kept in SVD form `U diag(s) V^T`, so
//! `X - lr * grad` is "low rank + sparse" ([`SparsePlusLowRank`]) and its top
//! singular triplets come from a restarted block Krylov method (block
//! Golub-Kahan-Lanczos with Rayleigh-Ritz, `krylov_svd`) warm-started at the
//! previous `V`, of block width `rank + margin`. When at least one entry in
//! eight is observed (and `m n <= 2^24`) `X - lr * grad` is formed densely
//! (the dense iterate is kept from the previous step): a dense block product
//! then costs less than the indexed sparse one; otherwise the `m x n` matrix
//! is never formed.
//!
//! *Why the truncated projection is exact.* Let `sigma_1 >= sigma_2 >= ...` be
//! all singular values of `Y` and `theta_l` the simplex threshold computed
//! from the top `l` only (`sum_{i <= l} (sigma_i - theta_l)_+ = tau`). If
//! `theta_l >= sigma_{l}` then, for every `j > l`, `sigma_j <= sigma_l <=
//! theta_l`, so `(sigma_j - theta_l)_+ = 0` and `theta_l` solves the equation
//! over *all* singular values; the left side is strictly decreasing in theta
//! where positive, so `theta_l` is the threshold of the full projection and
//! the triplets `i < l` with `sigma_i > theta_l` are all that survive. The
//! solver therefore checks that at least one computed triplet falls at or
//! below the threshold (and that those up to it have converged: residual
//! `||Y^T u_i - sigma_i v_i|| <= svd_tol sigma_1`, `Y v_i = sigma_i u_i` holds by
//! construction); otherwise it doubles the block, and past half the smaller
//! dimension it takes the dense SVD (exact, `O(m n min(m, n))`). When the
//! constraint is inactive (`sum sigma <= tau`) the projection is the identity,
//! which needs every non-zero singular value, so the same test applies with
//! `theta = 0` (singular values below `1e-12 sigma_1` count as zero).
//!
//! **Frank-Wolfe** ([`FrankWolfe`], conditional gradient; Jaggi 2013,
//! "Revisiting Frank-Wolfe: projection-free sparse convex optimization"):
//! the linear minimization oracle over the ball is `S = -tau u_1 v_1^T` for the
//! top singular pair of the gradient, found by the restarted block Krylov
//! method of width 2 (block Lanczos, warm-started from the previous pair plus
//! a Gaussian column, stopped on the relative residual of the pair). The step
//! is `2 / (t + 2)` or the exact line search of the quadratic (closed form
//! `gamma = gap / ||P_Omega(S - X)||^2`, clipped to `[0, 1]`). The iterate is a
//! list of rank-one atoms `(w, u, v)`, re-compressed to SVD form after each
//! step (QR of both sides and an SVD of the small core, so the atoms stay
//! orthogonal and their weights are the nuclear norm); the values of `X` on
//! the observed entries are updated incrementally, so with sparse data the
//! dense `m x n` iterate is never formed. The duality gap `<X - S, grad>`
//! bounds `f(X) - f*` and is recorded as `gap` (with an inexact oracle
//! the recorded value is a lower estimate of the true gap).
//!
//! Centring (`center`, both solvers): by default (`mean`) the ball holds the
//! deviations from the mean of the observed values, `X` fits `A - mean` and
//! the model predicts `mean + X`; on ratings (mean 3.5) the uncentred ball
//! spends its radius on the constant part and completes the held-out entries
//! no better than predicting the mean. `center = "none"` is the notebook's
//! problem (the reproduction in `examples/nuclear_ball.rs` and
//! `configs/examples/nuclear-ball.toml` set it).
//!
//! Both record per iteration: `objective`, `nuclear_norm`, `rank`, and
//! `rel_error` to the ground truth when one is given (`fit --truth`, planted
//! problems). Output: a [`FactorModel`] with the balanced factors
//! `(U sqrt(s), V sqrt(s))`.
//!
//! Radius `tau`: explicit (the notebook takes it from the truth, `tau = 1`
//! for its nuclear-norm-1 matrix), or by default [`default_tau`]: the sum of
//! the singular values of the rescaled zero-filled matrix `P_Omega(A) / p`
//! (`p` = fraction observed) that rise above the sampling-noise edge
//! `e = s (sqrt m + sqrt n)`, `s^2 = (1 - p) / p * mean(a^2)`, each debiased
//! to `sqrt(sigma^2 - e^2)` (the spectral
//! estimator of Keshavan, Montanari and Oh 2010; all of them when fully
//! observed, so then `tau = ||A||_*`). The nuclear norm of the whole rescaled
//! matrix would include the noise bulk and, on the planted 1000 x 1000 rank-10
//! problem at half density, overshoot `||A||_*` about tenfold.

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::linop::{LinOp, SparseOp, SparsePlusLowRank, low_rank_at, mul};
use super::softimpute::{Center, SoftImputeParams};
use super::svd::{orthonormalize, thin_svd};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::optim::projection::{SvdFactors, nuclear_ball_svd, simplex_threshold};
use crate::rng::{self, Rng};
use crate::solve::registry::{AlgoEntry, FitOutcome, FitRequest, parse_params, run_factor_solver};
use crate::solve::{Executor, IterState, Solver};

/// Settings of `pgd-nuclear`.
pub const PGD_KEYS: &[&str] =
    &["tau", "lr", "init", "svd", "margin", "svd_tol", "svd_iters", "tol", "center", "tau_rule"];
/// Settings of `frank-wolfe`.
pub const FW_KEYS: &[&str] = &["tau", "step", "power_iters", "power_tol", "tol", "center", "tau_rule"];

/// Algorithms of this module, registered by name.
pub static ALGOS: &[AlgoEntry] = &[
    AlgoEntry {
        name: "pgd-nuclear",
        about: "projected gradient on the nuclear-norm ball ||X||_* <= tau (notebook lecture 5), truncated-SVD projection",
        keys: PGD_KEYS,
        run: run_pgd,
        validate: |p| crate::solve::registry::parse_params::<PgdNuclear>("pgd-nuclear", p, PGD_KEYS)?.check().map(drop),
    },
    AlgoEntry {
        name: "frank-wolfe",
        about: "Frank-Wolfe (conditional gradient) on the nuclear-norm ball: block Lanczos oracle, factored iterate, duality gap",
        keys: FW_KEYS,
        run: run_fw,
        validate: |p| crate::solve::registry::parse_params::<FrankWolfe>("frank-wolfe", p, FW_KEYS)?.check().map(drop),
    },
];

fn run_pgd(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: PgdNuclear = parse_params("pgd-nuclear", &req.params, PGD_KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    let (mut out, fit) = run_factor_solver(req, solver, &train, PGD_DEFAULT_EPOCHS, false)?;
    add_summary(&mut out, &fit.history, &["tau", "nuclear_norm"]);
    Ok(out)
}

fn run_fw(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: FrankWolfe = parse_params("frank-wolfe", &req.params, FW_KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    let (mut out, fit) = run_factor_solver(req, solver, &train, FW_DEFAULT_EPOCHS, false)?;
    add_summary(&mut out, &fit.history, &["tau", "nuclear_norm", "gap"]);
    Ok(out)
}

fn add_summary(out: &mut FitOutcome, history: &[crate::observe::Record], keys: &[&str]) {
    if let Some(last) = history.last() {
        for k in keys {
            if let Some(v) = last.values.get(*k) {
                out.summary.insert((*k).into(), serde_json::json!(v));
            }
        }
        if let Some(o) = last.objective {
            out.summary.insert("objective".into(), serde_json::json!(o));
        }
    }
}

/// Iterations of `pgd-nuclear` when `epochs` is not given.
pub const PGD_DEFAULT_EPOCHS: usize = 100;
/// Iterations of `frank-wolfe` when `epochs` is not given.
pub const FW_DEFAULT_EPOCHS: usize = 200;

// ---------------------------------------------------------------- shared

/// `U diag(s)`.
fn scaled_u(x: &SvdFactors) -> Mat<f64> {
    Mat::from_fn(x.u.nrows(), x.s.len(), |i, t| x.u[(i, t)] * x.s[t])
}

/// The empty (zero) iterate of an `m x n` problem.
fn zero_iterate(m: usize, n: usize) -> SvdFactors {
    SvdFactors { u: Mat::zeros(m, 0), s: Vec::new(), v: Mat::zeros(n, 0) }
}

/// `X` on the observed entries of `data`.
fn values_at(x: &SvdFactors, data: &Ratings) -> Vec<f64> {
    if x.s.is_empty() {
        return vec![0.0; data.len()];
    }
    low_rank_at(scaled_u(x).as_ref(), x.v.as_ref(), data.rows(), data.cols())
}

/// `0.5 sum (x - a)^2`.
fn half_sq(x: &[f64], a: &[f64]) -> f64 {
    0.5 * x.iter().zip(a).map(|(p, q)| (p - q) * (p - q)).sum::<f64>()
}

/// `<X, Y>` for two iterates in SVD form, in `O((m + n) r1 r2)`.
fn inner(x: &SvdFactors, y: &SvdFactors) -> f64 {
    if x.s.is_empty() || y.s.is_empty() {
        return 0.0;
    }
    // tr(Sx Ux^T Uy Sy Vy^T Vx)
    let uu = mul(x.u.as_ref().transpose(), y.u.as_ref());
    let vv = mul(y.v.as_ref().transpose(), x.v.as_ref());
    let mut t = 0.0;
    for a in 0..x.s.len() {
        for b in 0..y.s.len() {
            t += x.s[a] * uu[(a, b)] * y.s[b] * vv[(b, a)];
        }
    }
    t
}

/// `||X - Y||_F` for two iterates in SVD form, to about `eps ||X||`. The
/// expansion `||X||^2 + ||Y||^2 - 2 <X, Y>` (`O((m + n) r_x r_y)`) has an
/// absolute error of `eps ||X||^2`: it serves while the distance is above
/// `1e-6 ||X||` (then within `5e-5` relative); below, where it cancels
/// down to `sqrt(eps) ||X||` (and so hid the convergence of `pgd-nuclear`
/// below about `1e-8` relative), the distance is `||A R^T||_F` for `X - Y =
/// A B^T`, `A = [U_x S_x, -U_y S_y]`, `B = [V_x, V_y] = Q R`
/// (`O((m + n) (r_x + r_y)^2)`).
fn frob_dist(x: &SvdFactors, y: &SvdFactors) -> f64 {
    let (m, n) = (x.u.nrows(), x.v.nrows());
    let (rx, ry) = (x.s.len(), y.s.len());
    if rx + ry == 0 {
        return 0.0;
    }
    let nx: f64 = x.s.iter().map(|s| s * s).sum();
    let ny: f64 = y.s.iter().map(|s| s * s).sum();
    let cheap = (nx + ny - 2.0 * inner(x, y)).max(0.0).sqrt();
    if cheap > 1e-6 * nx.max(ny).sqrt() {
        return cheap;
    }
    let b = Mat::from_fn(n, rx + ry, |j, t| if t < rx { x.v[(j, t)] } else { y.v[(j, t - rx)] });
    let (_, r) = super::svd::thin_qr(b.as_ref());
    let a =
        Mat::from_fn(m, rx + ry, |i, t| if t < rx { x.u[(i, t)] * x.s[t] } else { -y.u[(i, t - rx)] * y.s[t - rx] });
    pmul(a.as_ref(), r.transpose()).norm_l2()
}

/// The balanced factor model `(U sqrt(s), V sqrt(s))` plus the offset `mean`.
fn to_model(x: &SvdFactors, mean: f64) -> FactorModel {
    let a = Mat::from_fn(x.u.nrows(), x.s.len(), |i, t| x.u[(i, t)] * x.s[t].sqrt());
    let b = Mat::from_fn(x.v.nrows(), x.s.len(), |j, t| x.v[(j, t)] * x.s[t].sqrt());
    let mut model = FactorModel::from_dense(&a, &b);
    model.global_mean = mean;
    model
}

/// The offset subtracted from the observed values (`center`: `none` → 0,
/// `mean` → their mean) and the centred values: what both solvers fit. The
/// radius is chosen separately ([`choose_tau`]), at the first step, so that a
/// resumed run (whose checkpoint carries it) does not choose it again.
fn ball_problem(data: &Ratings, center: &str) -> (f64, Vec<f64>) {
    let vals: Vec<f64> = data.values().iter().map(|&v| v as f64).collect();
    let mean = if center == "mean" && !vals.is_empty() { vals.iter().sum::<f64>() / vals.len() as f64 } else { 0.0 };
    let a: Vec<f64> = vals.into_iter().map(|v| v - mean).collect();
    (mean, a)
}

/// Validate the settings both solvers share: `tau`, `center`, `tau_rule`.
fn check_ball_settings(tau: Option<f64>, center: &str, tau_rule: &str) -> Result<()> {
    check_tau(tau)?;
    ensure!(center == "none" || center == "mean", "center must be 'none' or 'mean', got '{center}'");
    ensure!(
        matches!(tau_rule, "auto" | "spectral" | "softimpute"),
        "tau_rule must be 'auto', 'spectral' or 'softimpute', got '{tau_rule}'"
    );
    Ok(())
}

/// The radius when none is given (`tau_rule`): `spectral` is
/// [`default_tau`]'s estimate on the values being fit; `softimpute` the
/// nuclear norm of the SoftImpute solution (same centring) at the `lambda`
/// its hold-out selects — the penalized problem `min f(X) + lambda ||X||_*`
/// and the ball of that radius share their solution, so the ball inherits
/// the hold-out's choice; `auto`: `softimpute` with missing entries,
/// `spectral` (then exactly `||A||_*` of the centred matrix) without.
fn choose_tau(data: &Ratings, values: &[f64], rule: &str, center: &str, seed: u64) -> Result<f64> {
    let (m, n) = data.shape();
    let partial = (data.len() as u128) < (m as u128) * (n as u128);
    if rule == "spectral" || (rule == "auto" && !partial) {
        return default_tau_of(data, values, seed);
    }
    // (the zero-filled data have rank <= |Omega|: a larger cap only costs,
    // O((m + n) rank^2) per iteration on a huge, nearly empty shape)
    let p = SoftImputeParams {
        rank: 100.min(m.min(n)).min(data.len()),
        center: if center == "mean" { Center::Mean } else { Center::None },
        ..Default::default()
    };
    let tau: f64 = match Executor::new(p.check()?, data).seed(seed).max_iters(500).run() {
        Ok(fit) => fit.history.last().and_then(|r| r.vectors.get("singular_values")).map_or(0.0, |s| s.iter().sum()),
        // e.g. too few entries for its hold-out: fall back below
        Err(_) => 0.0,
    };
    // a zero solution (the hold-out preferred no low-rank part) or none:
    // the spectral estimate instead of an empty ball
    if tau > 0.0 && tau.is_finite() { Ok(tau) } else { default_tau_of(data, values, seed) }
}

/// Threshold of the projection of the (non-negative, descending) values `s`
/// onto `{x >= 0, sum x <= tau}`: 0 when the constraint is inactive.
fn ball_threshold(s: &[f64], tau: f64) -> f64 {
    let total: f64 = s.iter().map(|x| x.max(0.0)).sum();
    if total <= tau { 0.0 } else { simplex_threshold(s, tau) }
}

/// Number of values that survive a threshold (values below `1e-12 s_1`
/// count as zero: the numerical rank).
fn surviving(s: &[f64], theta: f64) -> usize {
    let floor = 1e-12 * s.first().copied().unwrap_or(0.0);
    s.iter().take_while(|&&x| x > theta && x > floor).count()
}

/// Top singular triplets of an operator by block subspace iteration.
struct TopSvd {
    u: Mat<f64>,
    s: Vec<f64>,
    v: Mat<f64>,
    iters: usize,
    resid: f64,
}

/// Subspace iteration from `start` (`n x l`): `Z = orth(Y^T Q)`, then the
/// SVD of `Y Z = Q S R^T` gives triplets `(Q, S, Z R)` with `Y v_i = s_i u_i`
/// exactly; it stops when the residuals `||Y^T u_i - s_i v_i||` of the
/// triplets up to the first one at or below `cut(s)` are `<= tol s_1`.
fn top_svd<O: LinOp + ?Sized>(
    op: &O,
    start: MatRef<'_, f64>,
    cut: &dyn Fn(&[f64]) -> f64,
    tol: f64,
    max_iters: usize,
) -> Result<TopSvd> {
    let l = start.ncols();
    let mut z = orthonormalize(start);
    let mut iters = 0usize;
    loop {
        let w = op.apply(z.as_ref());
        let sv = thin_svd(w.as_ref())?;
        let v = mul(z.as_ref(), sv.v.as_ref());
        let (u, s) = (sv.u, sv.s);
        let p = op.apply_t(u.as_ref());
        let need = (surviving(&s, cut(&s)) + 1).min(l);
        let scale = s.first().copied().unwrap_or(0.0);
        let mut resid = 0.0f64;
        for i in 0..need {
            let r2: f64 = (0..v.nrows()).map(|j| (p[(j, i)] - s[i] * v[(j, i)]).powi(2)).sum();
            resid = resid.max(r2.sqrt());
        }
        iters += 1;
        let rel = if scale > 0.0 { resid / scale } else { 0.0 };
        if rel <= tol || iters > max_iters {
            return Ok(TopSvd { u, s, v, iters, resid: rel });
        }
        z = orthonormalize(p.as_ref());
    }
}

/// An orthonormal basis of the part of the columns of `p` orthogonal to the
/// orthonormal columns of `k` (`p.ncols()` columns; block classical
/// Gram-Schmidt applied twice, a Householder QR, and a re-projection when the
/// QR of a nearly dependent block has leaked back into `span(k)`). When
/// `p` lies (numerically) inside `span(k)` the result is still orthonormal and
/// orthogonal to `k`: it then adds arbitrary directions, harmless to a
/// Rayleigh-Ritz step.
fn orth_against(k: MatRef<'_, f64>, mut p: Mat<f64>) -> Mat<f64> {
    if k.ncols() == 0 {
        return orthonormalize(p.as_ref());
    }
    for _ in 0..2 {
        let c = pmul(k.transpose(), p.as_ref());
        p -= pmul(k, c.as_ref());
    }
    let mut q = orthonormalize(p.as_ref());
    for _ in 0..3 {
        let c = pmul(k.transpose(), q.as_ref());
        if c.norm_max() <= 1e-13 {
            break;
        }
        q -= pmul(k, c.as_ref());
        q = orthonormalize(q.as_ref());
    }
    q
}

/// Top singular triplets of an operator by a restarted block Krylov method
/// (block Golub-Kahan-Lanczos with full re-orthogonalization; Musco and
/// Musco 2015, "Randomized block Krylov methods for stronger and faster
/// approximate singular value decomposition"). From an orthonormal `n x b`
/// block `Z` it grows the orthonormal basis `K = [Z, Z_1, Z_2, ...]` of
/// `span(Z, Y^T Y Z, (Y^T Y)^2 Z, ...)` one block at a time (at most
/// `max_blocks` blocks and `min(m, n)` columns), keeping `Y K` and `Y^T Y K`.
/// From the third block on (earlier when the basis is full) a Rayleigh-Ritz
/// step follows every block: the eigenvectors `W` of the Gram matrix `(Y
/// K)^T (Y K)` give triplets `v = K w`, `s = ||Y K w||`, `u = Y K w / s` with
/// `Y v = s u` exactly, and the residuals `||Y^T u - s v||` come for free from
/// `Y^T Y K`. It stops when the residuals of the triplets up to the first one
/// at or below `cut(s)` are `<= tol s_1`, where the last of them (the one
/// that certifies the cut) also passes when `s + residual <= cut(s)`: it is
/// only needed to lie below the cut, or when it is numerically zero (at or
/// below `1e-12 s_1`, as in [`surviving`]: an operator of low rank). The
/// values are counted after they are recomputed as `||Y K w||`: the Gram
/// matrix's eigenvalues resolve singular values only down to about
/// `sqrt(eps) s_1`. When the basis is full it restarts from
/// `Y^T` of the top `max(b, need)` left Ritz vectors, at most `max_cycles`
/// times in all. Returns those `max(b, need)` triplets (at most the basis
/// size); `iters` counts blocks.
fn krylov_svd<O: LinOp + ?Sized>(
    op: &O,
    start: MatRef<'_, f64>,
    max_blocks: usize,
    cut: &dyn Fn(&[f64]) -> f64,
    tol: f64,
    max_cycles: usize,
) -> Result<TopSvd> {
    let (m, n) = op.shape();
    let kmax = m.min(n).max(1);
    let mut z = if start.ncols() == 0 {
        orthonormalize(Mat::<f64>::from_fn(n, 1, |_, _| 1.0).as_ref())
    } else {
        orthonormalize(start.subcols(0, start.ncols().min(kmax)))
    };
    let (mut cycles, mut blocks) = (0usize, 0usize);
    loop {
        cycles += 1;
        let b = z.ncols();
        let cap = (b * max_blocks.max(1)).min(kmax).max(b);
        let first_rr = (3 * b).min(cap);
        let mut basis = Mat::<f64>::zeros(n, cap);
        let mut image = Mat::<f64>::zeros(m, cap);
        let mut back = Mat::<f64>::zeros(n, cap);
        let mut cols = 0usize;
        let mut blk = z;
        loop {
            let bw = blk.ncols();
            let w = op.apply(blk.as_ref());
            let p = op.apply_t(w.as_ref());
            blocks += 1;
            basis.subcols_mut(cols, bw).copy_from(&blk);
            image.subcols_mut(cols, bw).copy_from(&w);
            back.subcols_mut(cols, bw).copy_from(&p);
            cols += bw;
            if cols >= first_rr {
                let img = image.subcols(0, cols);
                let (mut s, w) = ritz_pairs(img)?;
                let width = ((surviving(&s, cut(&s)) + 1).min(cols)).max(b).min(cols);
                let wm = w.subcols(0, width);
                let v = pmul(basis.subcols(0, cols), wm);
                let mut u = pmul(img, wm);
                let mut yu = pmul(back.subcols(0, cols), wm);
                for t in 0..width {
                    let nu = u.col(t).norm_l2();
                    s[t] = nu;
                    if nu > 0.0 {
                        u.col_mut(t).iter_mut().for_each(|x| *x /= nu);
                        yu.col_mut(t).iter_mut().for_each(|x| *x /= nu);
                    }
                }
                // the values from the Gram matrix resolve only `sqrt(eps) s_1`:
                // count the needed triplets on the recomputed ones
                let theta = cut(&s);
                let need = (surviving(&s[..width], theta) + 1).min(width);
                let floor = 1e-12 * s.first().copied().unwrap_or(0.0);
                let mut resid = 0.0f64;
                for i in 0..need {
                    let r = (0..n).map(|j| (yu[(j, i)] - s[i] * v[(j, i)]).powi(2)).sum::<f64>().sqrt();
                    // the last one certifies the cut by lying below it, or by
                    // being numerically zero (the numerical rank, as `surviving`)
                    let certifies = i + 1 == need && i + 1 < cols && (s[i] + r <= theta || s[i] <= floor);
                    if !certifies {
                        resid = resid.max(r);
                    }
                }
                let scale = s.first().copied().unwrap_or(0.0);
                let rel = if scale > 0.0 { resid / scale } else { 0.0 };
                if rel <= tol || (cols >= cap && cycles >= max_cycles) {
                    s.truncate(width);
                    return Ok(TopSvd { u, s, v, iters: blocks, resid: rel });
                }
                if cols >= cap {
                    z = orthonormalize(yu.as_ref());
                    break;
                }
            }
            let next = (cap - cols).min(b);
            blk = orth_against(basis.subcols(0, cols), p.subcols(0, next).to_owned());
        }
    }
}

/// Ritz values (decreasing) and right Ritz vectors (`cols x cols`, the
/// coordinates in the basis) of the image block `Y K`: the eigenpairs of its
/// Gram matrix, or, when that eigenproblem does not converge (faer's can
/// fail on a large cluster of numerically zero eigenvalues, e.g. an operator
/// of rank 2 and a basis of 270 columns), the right singular pairs of the
/// block itself.
fn ritz_pairs(img: MatRef<'_, f64>) -> Result<(Vec<f64>, Mat<f64>)> {
    let cols = img.ncols();
    let gram = pmul(img.transpose(), img);
    match gram.self_adjoint_eigen(faer::Side::Lower) {
        Ok(eig) => {
            let s = (0..cols).rev().map(|i| eig.S()[i].max(0.0).sqrt()).collect();
            Ok((s, Mat::from_fn(cols, cols, |a, t| eig.U()[(a, cols - 1 - t)])))
        }
        Err(_) => {
            let sv = thin_svd(img).map_err(|e| {
                Error::Numerical(format!("the Rayleigh-Ritz step did not converge (eigenproblem and SVD): {e}"))
            })?;
            Ok((sv.s, sv.v))
        }
    }
}

/// Blocks at most per cycle of the truncated projection's block Krylov method.
const PGD_KRYLOV_BLOCKS: usize = 8;
/// Blocks (of width 2) at most per cycle of the Frank-Wolfe oracle.
const FW_KRYLOV_BLOCKS: usize = 10;

/// Options of the truncated projection ([`project_truncated`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TruncatedOptions {
    /// Extra columns beyond the warm start's rank.
    pub margin: usize,
    /// Relative residual at which the block Krylov iteration stops.
    pub tol: f64,
    /// Block Krylov cycles at most (per block width).
    pub max_iters: usize,
}

impl Default for TruncatedOptions {
    fn default() -> Self {
        TruncatedOptions { margin: 10, tol: 1e-10, max_iters: 100 }
    }
}

/// How a projection was computed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProjectionInfo {
    /// Width of the block that certified the projection (`min(m, n)` for the
    /// dense SVD).
    pub block: usize,
    /// Block Krylov blocks (block products with `Y` and `Y^T`), all block
    /// widths together.
    pub iters: usize,
    /// Relative residual of the kept triplets.
    pub resid: f64,
    /// Whether the dense SVD was needed.
    pub full: bool,
    /// The threshold subtracted from the singular values.
    pub theta: f64,
}

/// Projection of the operator `op` onto `{||X||_* <= tau}` from its top
/// singular triplets (see the module docs for why it is exact), starting the
/// subspace iteration from `warm` (`n x r`, e.g. the previous `V`) plus
/// `margin` Gaussian columns from `g`; doubles the block when the threshold is
/// not certified and calls `dense()` for an exact dense SVD past half of
/// `min(m, n)`.
pub fn project_truncated<O: LinOp + ?Sized>(
    op: &O,
    tau: f64,
    warm: Option<MatRef<'_, f64>>,
    opts: &TruncatedOptions,
    g: &mut Rng,
    dense: &dyn Fn() -> Mat<f64>,
) -> Result<(SvdFactors, ProjectionInfo)> {
    ensure!(tau.is_finite() && tau >= 0.0, "tau must be finite and >= 0, got {tau}");
    let (m, n) = op.shape();
    let kmax = m.min(n);
    let r = warm.map_or(0, |w| w.ncols()).min(kmax);
    let mut l = (r + opts.margin).max(1);
    let mut total_iters = 0usize;
    while 2 * l <= kmax {
        let start = Mat::from_fn(n, l, |j, t| match warm {
            Some(w) if t < r => w[(j, t)],
            _ => rng::normal(g),
        });
        let cut = |s: &[f64]| ball_threshold(s, tau);
        let top = krylov_svd(op, start.as_ref(), PGD_KRYLOV_BLOCKS, &cut, opts.tol, opts.max_iters)?;
        total_iters += top.iters;
        let theta = ball_threshold(&top.s, tau);
        let keep = surviving(&top.s, theta);
        if keep < top.s.len() {
            let f = SvdFactors {
                u: top.u.subcols(0, keep).to_owned(),
                s: top.s[..keep].iter().map(|x| x - theta).collect(),
                v: top.v.subcols(0, keep).to_owned(),
            };
            let info = ProjectionInfo { block: l, iters: total_iters, resid: top.resid, full: false, theta };
            return Ok((f, info));
        }
        l *= 2;
    }
    let y = dense();
    let sv = thin_svd(y.as_ref())?;
    let theta = ball_threshold(&sv.s, tau);
    let keep = surviving(&sv.s, theta);
    let f = nuclear_ball_svd(y.as_ref(), tau)?;
    // same triplets as `sv` (same matrix, same routine); drop the numerically zero ones
    let keep = keep.min(f.s.len());
    let f =
        SvdFactors { u: f.u.subcols(0, keep).to_owned(), s: f.s[..keep].to_vec(), v: f.v.subcols(0, keep).to_owned() };
    Ok((f, ProjectionInfo { block: kmax, iters: total_iters, resid: 0.0, full: true, theta }))
}

/// The default radius of the uncentred problem (`center = "none"`; the
/// solvers apply the same estimate to the centred values by default; see
/// the module docs): the sum of the singular values
/// `sigma` of `P_Omega(A) / p` above the sampling-noise edge `e = s (sqrt m +
/// sqrt n)`, `s^2 = (1 - p) / p * mean(a^2)`, each debiased to `sqrt(sigma^2 -
/// e^2)` (noise adds its energy to a spike's); the top singular value when
/// none rises above the edge.
pub fn default_tau(data: &Ratings, seed: u64) -> Result<f64> {
    let values: Vec<f64> = data.values().iter().map(|&v| v as f64).collect();
    default_tau_of(data, &values, seed)
}

/// [`default_tau`] for the entries of `data` with the values `values` (the
/// centred values with `center = "mean"`).
fn default_tau_of(data: &Ratings, values: &[f64], seed: u64) -> Result<f64> {
    ensure!(!data.is_empty(), "the training data has no entries");
    let (m, n) = data.shape();
    let p = data.len() as f64 / (m as f64 * n as f64);
    let vals: Vec<f64> = values.iter().map(|&v| v / p).collect();
    let ms: f64 = values.iter().map(|&v| v * v).sum::<f64>() / data.len() as f64;
    let edge = ((1.0 - p) / p * ms).max(0.0).sqrt() * ((m as f64).sqrt() + (n as f64).sqrt());
    let op = SparseOp::with_values(data, &vals);
    let kmax = m.min(n);
    let sum_above = |s: &[f64]| -> f64 {
        let floor = 1e-12 * s.first().copied().unwrap_or(0.0);
        let t: f64 = s.iter().filter(|&&x| x > edge && x > floor).map(|x| (x * x - edge * edge).sqrt()).sum();
        if t > 0.0 { t } else { s.first().copied().unwrap_or(0.0) }
    };
    let mut g = rng::stream(seed, u64::MAX);
    let mut l = 16usize.min(kmax);
    while 2 * l <= kmax {
        let start = Mat::from_fn(n, l, |_, _| rng::normal(&mut g));
        let top = top_svd(&op, start.as_ref(), &|_| edge, 1e-6, 50)?;
        if top.s[l - 1] <= edge {
            return Ok(sum_above(&top.s));
        }
        l *= 2;
    }
    let mut a = Mat::zeros(m, n);
    for (k, (i, j, _)) in data.iter().enumerate() {
        a[(i, j)] = vals[k];
    }
    Ok(sum_above(&thin_svd(a.as_ref())?.s))
}

fn check_tau(tau: Option<f64>) -> Result<()> {
    if let Some(t) = tau {
        ensure!(t.is_finite() && t > 0.0, "tau must be a finite number > 0, got {t}");
    }
    Ok(())
}

/// Checkpoint state of both solvers (serde_json round-trips f64 exactly).
#[derive(Serialize, Deserialize)]
struct Saved {
    m: usize,
    n: usize,
    u: Vec<f64>,
    s: Vec<f64>,
    v: Vec<f64>,
    tau: f64,
    seed: u64,
    warm: Vec<f64>,
    /// The offset of `center` the iterate is relative to (absent in
    /// checkpoints from before centring: 0).
    #[serde(default)]
    mean: f64,
}

fn col_major(a: &Mat<f64>) -> Vec<f64> {
    (0..a.ncols()).flat_map(|t| (0..a.nrows()).map(move |i| a[(i, t)])).collect()
}

fn save(x: &SvdFactors, tau: f64, seed: u64, warm: &[f64], mean: f64) -> Result<Vec<u8>> {
    let s = Saved {
        mean,
        m: x.u.nrows(),
        n: x.v.nrows(),
        u: col_major(&x.u),
        s: x.s.clone(),
        v: col_major(&x.v),
        tau,
        seed,
        warm: warm.to_vec(),
    };
    serde_json::to_vec(&s).map_err(|e| Error::invalid(e.to_string()))
}

/// The saved state; `mean` is the offset of the current settings and data,
/// which must be the one the checkpoint's iterate is relative to.
fn load(bytes: &[u8], mean: f64) -> Result<(SvdFactors, f64, u64, Vec<f64>)> {
    let s: Saved =
        serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("bad nuclear-ball solver state: {e}")))?;
    ensure!(
        (s.mean - mean).abs() <= 1e-12 * s.mean.abs().max(mean.abs()).max(1.0),
        "the checkpoint's iterate is relative to an offset of {} (center = \"{}\"), these settings and data give {}: \
         resume with the center it was written with",
        s.mean,
        if s.mean == 0.0 { "none" } else { "mean" },
        mean
    );
    let r = s.s.len();
    ensure!(s.u.len() == s.m * r && s.v.len() == s.n * r, "bad nuclear-ball solver state: factor sizes");
    let u = Mat::from_fn(s.m, r, |i, t| s.u[t * s.m + i]);
    let v = Mat::from_fn(s.n, r, |j, t| s.v[t * s.n + j]);
    Ok((SvdFactors { u, s: s.s, v }, s.tau, s.seed, s.warm))
}

fn check_shape(x: &SvdFactors, data: &Ratings) -> Result<()> {
    ensure!(
        x.u.nrows() == data.nrows() && x.v.nrows() == data.ncols(),
        "the checkpoint is for a {}x{} matrix, the data is {}x{}",
        x.u.nrows(),
        x.v.nrows(),
        data.nrows(),
        data.ncols()
    );
    Ok(())
}

// ---------------------------------------------------------------- PGD

/// `--algo pgd-nuclear`: projected gradient descent on the nuclear-norm
/// ball (module docs). Defaults: `lr = 1` (= 1/L, the largest step that is
/// monotone for this 1-Lipschitz gradient; the notebook uses 0.2), `tau` from
/// [`default_tau`], start at zero, truncated projection with a margin of 10,
/// relative residual 1e-5 and at most 30 block Krylov cycles per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgdNuclear {
    /// Radius of the ball; `None` = [`default_tau`] of the values being fit
    /// (the centred ones with `center = "mean"`).
    pub tau: Option<f64>,
    /// Step size, in `(0, 2)` (default 1: the gradient is 1-Lipschitz, see
    /// the module docs).
    pub lr: f64,
    /// `zero`, or `random`: `tau u v^T` for random unit vectors `u`, `v` (a
    /// point on the boundary, like the notebook's nearly rank-one start;
    /// when the radius is chosen at the first step, the model before that
    /// step is `u v^T`).
    pub init: String,
    /// `truncated` (block Krylov, certified; dense SVD fallback) or
    /// `full` (the dense SVD every step, as the notebook).
    pub svd: String,
    /// Extra columns of the subspace-iteration block beyond the rank.
    pub margin: usize,
    /// Relative residual of the truncated SVD (`||Y^T u - sigma v|| <=
    /// svd_tol sigma_1`). Default 1e-5: on the notebook's n = 1000 example
    /// the objective and distance curves then differ from dense-SVD
    /// projections by at most 2e-8 relative (`bench/RESULTS_spectral.md`);
    /// lower it for more.
    pub svd_tol: f64,
    /// Block Krylov cycles (restarts) at most per projection.
    pub svd_iters: usize,
    /// Stop when `||X_{t+1} - X_t||_F <= tol ||X_{t+1}||_F` (0 = never);
    /// when the gradient step `lr ||grad||` is itself that small while the
    /// gradient is not (`> sqrt(tol)` times the data's norm), the run stops
    /// as stalled, with a message to raise `lr`, instead of converged.
    pub tol: f64,
    /// `mean` (default): fit `X` to the observed values minus their mean, and
    /// predict `mean + X` (the ball then holds the deviations: on ratings,
    /// an uncentred ball spends its radius on the constant 3.5); `none`: the
    /// notebook's uncentred problem.
    pub center: String,
    /// How the radius is chosen when `tau` is not given: `auto` (default:
    /// `softimpute` with missing entries, `spectral` without), `spectral`
    /// ([`default_tau`], built for uniformly sampled planted problems; on
    /// MovieLens-100k about 10x too large) or `softimpute` (the nuclear
    /// norm of the SoftImpute fit at its hold-out `lambda`; a few seconds on
    /// MovieLens-100k).
    pub tau_rule: String,
}

impl Default for PgdNuclear {
    fn default() -> Self {
        PgdNuclear {
            tau: None,
            lr: 1.0,
            init: "zero".into(),
            svd: "truncated".into(),
            margin: 10,
            svd_tol: 1e-5,
            svd_iters: 30,
            tol: 1e-10,
            center: "mean".into(),
            tau_rule: "auto".into(),
        }
    }
}

impl PgdNuclear {
    /// Validate into a solver.
    pub fn check(self) -> Result<PgdNuclearSolver> {
        check_ball_settings(self.tau, &self.center, &self.tau_rule)?;
        ensure!(
            self.lr.is_finite() && self.lr > 0.0 && self.lr < 2.0,
            "lr must be in (0, 2), got {:e}: the completion loss's gradient is 1-Lipschitz, so projected gradient \
             converges for lr < 2 and decreases the loss at every step for lr <= 1 (the default)",
            self.lr
        );
        ensure!(self.init == "zero" || self.init == "random", "init must be 'zero' or 'random', got '{}'", self.init);
        ensure!(self.svd == "truncated" || self.svd == "full", "svd must be 'truncated' or 'full', got '{}'", self.svd);
        ensure!(self.margin >= 1, "margin must be >= 1, got {}", self.margin);
        ensure!(self.svd_tol.is_finite() && self.svd_tol > 0.0, "svd_tol must be > 0, got {}", self.svd_tol);
        ensure!(self.svd_iters >= 1, "svd_iters must be >= 1, got {}", self.svd_iters);
        ensure!(self.tol.is_finite() && self.tol >= 0.0, "tol must be >= 0, got {}", self.tol);
        Ok(PgdNuclearSolver {
            p: self,
            mean: 0.0,
            tau: f64::NAN,
            tau_pending: true,
            seed: 0,
            x: zero_iterate(0, 0),
            x_obs: Vec::new(),
            a: Vec::new(),
            x_dense: None,
        })
    }
}

/// The validated `pgd-nuclear` solver.
#[derive(Clone, Debug)]
pub struct PgdNuclearSolver {
    p: PgdNuclear,
    /// The offset of `center` (0 for `none`).
    mean: f64,
    /// The radius; `NaN` until chosen (`tau_pending`).
    tau: f64,
    /// No radius was given and none chosen yet: [`choose_tau`] runs at the
    /// first step unless a checkpoint supplied one.
    tau_pending: bool,
    seed: u64,
    x: SvdFactors,
    x_obs: Vec<f64>,
    a: Vec<f64>,
    /// `U diag(s) V^T` of `x` as a dense matrix, kept between steps on the
    /// dense path ([`dense_is_cheaper`]).
    x_dense: Option<Mat<f64>>,
}

/// Whether `X - lr G` is better formed densely: at least one entry in eight
/// observed (a dense product then costs less than the indexed sparse one) and
/// at most `2^24` entries (128 MiB).
fn dense_is_cheaper(m: usize, n: usize, nnz: usize) -> bool {
    let mn = m.saturating_mul(n);
    mn <= 1 << 24 && nnz.saturating_mul(8) >= mn
}

/// `a * b`, the rows of the output split over the rayon pool, each block a
/// sequential faer product. faer's own parallel product synchronizes its
/// threads by spinning, which on a machine with more runnable threads than
/// cores (a shared box) cost a factor 3 here; independent row blocks do not
/// wait on each other. The split depends only on the pool size, so the result
/// is the same for the same thread count.
pub(crate) fn pmul(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    use rayon::prelude::*;
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let mut out = Mat::zeros(m, n);
    let chunks = rayon::current_num_threads().min(m / 64).max(1);
    if chunks == 1 || m.saturating_mul(k).saturating_mul(n) < 1 << 20 {
        faer::linalg::matmul::matmul(&mut out, faer::Accum::Replace, a, b, 1.0, faer::Par::Seq);
        return out;
    }
    let step = m.div_ceil(chunks);
    let parts: Vec<(usize, Mat<f64>)> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let i0 = (c * step).min(m);
            let rows = step.min(m - i0);
            let mut part = Mat::zeros(rows, n);
            faer::linalg::matmul::matmul(&mut part, faer::Accum::Replace, a.subrows(i0, rows), b, 1.0, faer::Par::Seq);
            (i0, part)
        })
        .collect();
    for (i0, part) in parts {
        out.subrows_mut(i0, part.nrows()).copy_from(&part);
    }
    out
}

/// A dense matrix as an operator, products by [`pmul`].
struct DenseY<'a>(MatRef<'a, f64>);

impl LinOp for DenseY<'_> {
    fn shape(&self) -> (usize, usize) {
        (self.0.nrows(), self.0.ncols())
    }
    fn apply(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        pmul(self.0, x)
    }
    fn apply_t(&self, y: MatRef<'_, f64>) -> Mat<f64> {
        pmul(self.0.transpose(), y)
    }
}

/// `U diag(s) V^T` as a dense `m x n` matrix.
fn dense_iterate(x: &SvdFactors) -> Mat<f64> {
    if x.s.is_empty() {
        return Mat::zeros(x.u.nrows(), x.v.nrows());
    }
    pmul(scaled_u(x).as_ref(), x.v.as_ref().transpose())
}

impl PgdNuclearSolver {
    /// The current iterate in SVD form.
    pub fn iterate(&self) -> &SvdFactors {
        &self.x
    }
    /// The radius in use: after [`Solver::init`] when `tau` was given,
    /// otherwise once the first step (or a resume) has fixed it; `None` before.
    pub fn tau(&self) -> Option<f64> {
        (!self.tau_pending).then_some(self.tau)
    }
}

impl Solver for PgdNuclearSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn fixed_sizes(&self) -> bool {
        false // the rank grows with the iterations (one atom per step)
    }

    fn name(&self) -> &'static str {
        "pgd-nuclear"
    }

    fn divergence_hint(&self) -> String {
        "use lr <= 1 (the gradient of the completion loss is 1-Lipschitz)".into()
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        ensure!(!data.is_empty(), "the training data has no entries");
        let (m, n) = data.shape();
        if self.p.svd == "full" {
            // the iterate, its copy, and faer's dense SVD (factors and
            // workspace: one 50 GB allocation, ~7 m n values, at 30000 x 30000)
            crate::error::ensure_fits_in_memory(
                8 * (m as u128) * (n as u128),
                &format!("pgd-nuclear with svd = \"full\" on a {m} x {n} matrix (dense SVD every step)"),
                "use svd = \"truncated\" (the default), which works on the observed entries",
            )?;
        }
        self.seed = rng::uniform(rng).to_bits();
        (self.mean, self.a) = ball_problem(data, &self.p.center);
        (self.tau, self.tau_pending) = (self.p.tau.unwrap_or(f64::NAN), self.p.tau.is_none());
        // a random start is a unit atom, scaled to the radius once it is known
        self.x = if self.p.init == "random" {
            let mut unit = |k: usize| {
                let c: Vec<f64> = (0..k).map(|_| rng::normal(rng)).collect();
                let nrm = c.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
                Mat::from_fn(k, 1, |i, _| c[i] / nrm)
            };
            let u = unit(m);
            let v = unit(n);
            SvdFactors { u, s: vec![if self.tau_pending { 1.0 } else { self.tau }], v }
        } else {
            zero_iterate(m, n)
        };
        self.x_dense = None;
        self.x_obs = values_at(&self.x, data);
        Ok(to_model(&self.x, self.mean))
    }

    fn step(&mut self, data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        check_shape(&self.x, data)?;
        if self.tau_pending {
            self.tau = choose_tau(data, &self.a, &self.p.tau_rule, &self.p.center, self.seed)?;
            self.tau_pending = false;
            if self.p.init == "random" {
                self.x.s.iter_mut().for_each(|s| *s = self.tau);
                self.x_dense = None;
                self.x_obs.clear();
            }
        }
        let (m, n) = data.shape();
        let dense_path = self.p.svd == "full" || dense_is_cheaper(m, n, data.len());
        if self.x_obs.len() != data.len() {
            if dense_path {
                let xd = dense_iterate(&self.x);
                self.x_obs = data.iter().map(|(i, j, _)| xd[(i, j)]).collect();
                self.x_dense = Some(xd);
            } else {
                self.x_obs = values_at(&self.x, data);
            }
        }
        let lr = self.p.lr;
        let vals: Vec<f64> = self.x_obs.iter().zip(&self.a).map(|(x, a)| -lr * (x - a)).collect();
        // the gradient's norm, ||P_Omega(X - A)||, before the step
        let grad_norm = (2.0 * half_sq(&self.x_obs, &self.a)).sqrt();
        let opts = TruncatedOptions { margin: self.p.margin, tol: self.p.svd_tol, max_iters: self.p.svd_iters };
        let mut g = rng::stream(self.seed, state.iteration as u64);
        let warm = (!self.x.s.is_empty()).then(|| self.x.v.as_ref());
        let (next, info) = if dense_path {
            // Y = X - lr G formed densely (X cached from the previous step)
            let mut y = match self.x_dense.take() {
                Some(xd) if xd.nrows() == m && xd.ncols() == n => xd,
                _ => dense_iterate(&self.x),
            };
            for (k, (i, j, _)) in data.iter().enumerate() {
                y[(i, j)] += vals[k];
            }
            if self.p.svd == "full" {
                let f = nuclear_ball_svd(y.as_ref(), self.tau)?;
                (f, ProjectionInfo { block: m.min(n), full: true, ..Default::default() })
            } else {
                let op = DenseY(y.as_ref());
                project_truncated(&op, self.tau, warm, &opts, &mut g, &|| y.clone())?
            }
        } else {
            let sp = SparseOp::with_values(data, &vals);
            let us = scaled_u(&self.x);
            let op = SparsePlusLowRank { sparse: &sp, u: us.as_ref(), v: self.x.v.as_ref() };
            let dense = || {
                let mut y = dense_iterate(&self.x);
                for (k, (i, j, _)) in data.iter().enumerate() {
                    y[(i, j)] += vals[k];
                }
                y
            };
            project_truncated(&op, self.tau, warm, &opts, &mut g, &dense)?
        };
        let moved = frob_dist(&self.x, &next);
        let size: f64 = next.s.iter().map(|s| s * s).sum::<f64>().sqrt();
        self.x = next;
        if dense_path {
            let xd = dense_iterate(&self.x);
            self.x_obs = data.iter().map(|(i, j, _)| xd[(i, j)]).collect();
            self.x_dense = Some(xd);
        } else {
            self.x_obs = values_at(&self.x, data);
        }
        let obj = half_sq(&self.x_obs, &self.a);
        *model = to_model(&self.x, self.mean);
        let r = &mut state.record;
        r.objective = Some(obj);
        r.values.insert("nuclear_norm".into(), self.x.nuclear_norm());
        r.values.insert("rank".into(), self.x.s.len() as f64);
        r.values.insert("tau".into(), self.tau);
        r.values.insert("step_norm".into(), moved);
        r.values.insert("svd_block".into(), info.block as f64);
        r.values.insert("svd_iters".into(), info.iters as f64);
        r.values.insert("svd_resid".into(), info.resid);
        r.values.insert("svd_full".into(), if info.full { 1.0 } else { 0.0 });
        if self.p.tol > 0.0 && moved <= self.p.tol * size.max(f64::MIN_POSITIVE) {
            state.converged = true;
            // a step too small to move the iterate passes the test too: the
            // gradient step itself below the tolerance while the gradient is
            // not small (an interior optimum has a zero gradient; one on the
            // boundary, a gradient step the projection undoes, not a tiny one)
            let scale = size.max(self.a.iter().map(|a| a * a).sum::<f64>().sqrt());
            if lr * grad_norm <= self.p.tol * size && grad_norm > self.p.tol.sqrt() * scale {
                state.converged = false;
                state.stalled = Some(format!(
                    "the gradient step lr ||grad|| = {:.3e} is below tol ||X|| = {:.3e} while the gradient \
                     ||grad|| = {grad_norm:.3e} is not small: lr = {lr:e} is too small to make progress; raise lr \
                     (1, the default, always converges: the gradient is 1-Lipschitz)",
                    lr * grad_norm,
                    self.p.tol * size
                ));
            }
        }
        Ok(())
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        save(&self.x, self.tau, self.seed, &[], self.mean)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let (x, tau, seed, _) = load(bytes, self.mean)?;
        self.x = x;
        (self.tau, self.tau_pending) = (tau, false);
        self.seed = seed;
        self.x_dense = None;
        self.x_obs.clear();
        Ok(())
    }
}

// ---------------------------------------------------------------- Frank-Wolfe

/// `--algo frank-wolfe`: conditional gradient on the nuclear-norm ball
/// (module docs). Defaults: `tau` from [`default_tau`], exact line search,
/// block Lanczos oracle of at most 100 products with the gradient, stopped at a
/// relative residual of `1e-9`, stop when the gap falls below `tol * f(0)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrankWolfe {
    /// Radius of the ball; `None` = [`default_tau`] of the values being fit
    /// (the centred ones with `center = "mean"`).
    pub tau: Option<f64>,
    /// `line-search` (exact, closed form) or `open-loop` (`2 / (t + 2)`).
    pub step: String,
    /// Products with the gradient at most per oracle call (rounded up to
    /// whole Krylov cycles; the name is kept from the power method).
    pub power_iters: usize,
    /// Relative residual `||G^T u - sigma v|| / sigma` at which the oracle
    /// stops.
    pub power_tol: f64,
    /// Stop when the duality gap is `<= tol * f(0)` (0 = never).
    pub tol: f64,
    /// `mean` (default) or `none`, as [`PgdNuclear::center`].
    pub center: String,
    /// As [`PgdNuclear::tau_rule`].
    pub tau_rule: String,
}

impl Default for FrankWolfe {
    fn default() -> Self {
        FrankWolfe {
            tau: None,
            step: "line-search".into(),
            power_iters: 100,
            power_tol: 1e-9,
            tol: 1e-8,
            center: "mean".into(),
            tau_rule: "auto".into(),
        }
    }
}

impl FrankWolfe {
    /// Validate into a solver.
    pub fn check(self) -> Result<FrankWolfeSolver> {
        check_ball_settings(self.tau, &self.center, &self.tau_rule)?;
        ensure!(
            self.step == "line-search" || self.step == "open-loop",
            "step must be 'line-search' or 'open-loop', got '{}'",
            self.step
        );
        ensure!(self.power_iters >= 1, "power_iters must be >= 1, got {}", self.power_iters);
        ensure!(self.power_tol.is_finite() && self.power_tol > 0.0, "power_tol must be > 0, got {}", self.power_tol);
        ensure!(self.tol.is_finite() && self.tol >= 0.0, "tol must be >= 0, got {}", self.tol);
        Ok(FrankWolfeSolver {
            p: self,
            mean: 0.0,
            tau: f64::NAN,
            tau_pending: true,
            seed: 0,
            x: zero_iterate(0, 0),
            x_obs: Vec::new(),
            a: Vec::new(),
            v1: Vec::new(),
        })
    }
}

/// The validated `frank-wolfe` solver.
#[derive(Clone, Debug)]
pub struct FrankWolfeSolver {
    p: FrankWolfe,
    /// The offset of `center` (0 for `none`).
    mean: f64,
    /// As [`PgdNuclearSolver`]'s.
    tau: f64,
    /// As [`PgdNuclearSolver`]'s.
    tau_pending: bool,
    seed: u64,
    x: SvdFactors,
    x_obs: Vec<f64>,
    a: Vec<f64>,
    v1: Vec<f64>,
}

/// Top singular pair `(u, sigma, v)` of an operator: the block
/// Krylov method ([`krylov_svd`]) from the block `[v0, r]` (`r` Gaussian: an
/// exact lower singular pair, e.g. the top one of an earlier gradient, would
/// otherwise pass the residual test), at most `FW_KRYLOV_BLOCKS` blocks per
/// cycle and `max_products` block products with `G` and `G^T` (rounded up
/// to whole cycles).
/// `G v = sigma u`, hence `u^T G v = sigma`, holds exactly for the returned
/// pair; it stops when the other residual `||G^T u - sigma v||` is `<= tol
/// sigma` (for a simple top singular value this bounds the error of the pair
/// by `tol sigma / (sigma_1 - sigma_2)`). Returns the blocks used (each
/// one product with `G` and one with `G^T`).
fn top_pair<O: LinOp + ?Sized>(
    g: &O,
    v0: &[f64],
    r: &[f64],
    max_products: usize,
    tol: f64,
) -> Result<(Vec<f64>, f64, Vec<f64>, usize)> {
    let n = v0.len();
    let start = Mat::from_fn(n, 2, |j, t| if t == 0 { v0[j] } else { r[j] });
    let cycles = max_products.div_ceil(FW_KRYLOV_BLOCKS).max(1);
    let first = |s: &[f64]| s.first().copied().unwrap_or(0.0);
    let top = krylov_svd(g, start.as_ref(), FW_KRYLOV_BLOCKS, &first, tol, cycles)?;
    let sigma = top.s.first().copied().unwrap_or(0.0);
    let u: Vec<f64> = (0..top.u.nrows()).map(|i| top.u[(i, 0)]).collect();
    let v: Vec<f64> = (0..top.v.nrows()).map(|j| top.v[(j, 0)]).collect();
    Ok((u, sigma, v, top.iters))
}

/// `X <- w_old * X + w u v^T` in SVD form: QR of both sides and an SVD of
/// the small core (exact re-compression; values below `1e-13 s_1` dropped).
fn add_atom(x: &SvdFactors, keep: f64, w: f64, u: &[f64], v: &[f64]) -> Result<SvdFactors> {
    let (m, n, r) = (x.u.nrows(), x.v.nrows(), x.s.len());
    let ua = Mat::from_fn(m, r + 1, |i, t| if t < r { x.u[(i, t)] } else { u[i] });
    let va = Mat::from_fn(n, r + 1, |j, t| if t < r { x.v[(j, t)] } else { v[j] });
    let wts: Vec<f64> = x.s.iter().map(|s| s * keep).chain([w]).collect();
    let (qu, qv) = (ua.qr(), va.qr());
    let (ru, rv) = (qu.thin_R(), qv.thin_R());
    let core = Mat::from_fn(ru.nrows(), rv.nrows(), |a, b| (0..r + 1).map(|t| ru[(a, t)] * wts[t] * rv[(b, t)]).sum());
    let sv = thin_svd(core.as_ref())?;
    let s1 = sv.s.first().copied().unwrap_or(0.0);
    let k = sv.s.iter().take_while(|&&s| s > 1e-13 * s1 && s > 0.0).count();
    let u = mul(qu.compute_thin_Q().as_ref(), sv.u.subcols(0, k));
    let v = mul(qv.compute_thin_Q().as_ref(), sv.v.subcols(0, k));
    Ok(SvdFactors { u, s: sv.s[..k].to_vec(), v })
}

impl FrankWolfeSolver {
    /// The current iterate in SVD form.
    pub fn iterate(&self) -> &SvdFactors {
        &self.x
    }
}

impl Solver for FrankWolfeSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn fixed_sizes(&self) -> bool {
        false // the rank follows the data (thresholded singular values)
    }

    fn name(&self) -> &'static str {
        "frank-wolfe"
    }

    fn divergence_hint(&self) -> String {
        match self.p.tau {
            Some(t) => format!("lower the radius tau (now {t:e}), or leave it unset to choose it from the data"),
            None => "set a smaller radius tau".into(),
        }
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        ensure!(!data.is_empty(), "the training data has no entries");
        let (m, n) = data.shape();
        self.seed = rng::uniform(rng).to_bits();
        (self.mean, self.a) = ball_problem(data, &self.p.center);
        (self.tau, self.tau_pending) = (self.p.tau.unwrap_or(f64::NAN), self.p.tau.is_none());
        self.x = zero_iterate(m, n);
        self.x_obs = vec![0.0; data.len()];
        let mut g = rng::stream(self.seed, u64::MAX - 1);
        self.v1 = (0..n).map(|_| rng::normal(&mut g)).collect();
        Ok(to_model(&self.x, self.mean))
    }

    fn step(&mut self, data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        check_shape(&self.x, data)?;
        if self.tau_pending {
            self.tau = choose_tau(data, &self.a, &self.p.tau_rule, &self.p.center, self.seed)?;
            self.tau_pending = false;
        }
        let t = state.iteration;
        if self.x_obs.len() != data.len() || (t > 0 && t.is_multiple_of(50)) {
            // fresh values now and then, against drift of the incremental update
            self.x_obs = values_at(&self.x, data);
        }
        if self.v1.len() != data.ncols() {
            let mut g = rng::stream(self.seed, u64::MAX - 1);
            self.v1 = (0..data.ncols()).map(|_| rng::normal(&mut g)).collect();
        }
        let grad: Vec<f64> = self.x_obs.iter().zip(&self.a).map(|(x, a)| x - a).collect();
        // warm start plus a random column
        let mut g = rng::stream(self.seed, t as u64);
        let r: Vec<f64> = (0..data.ncols()).map(|_| rng::normal(&mut g)).collect();
        let (m, n) = data.shape();
        let (u1, sigma, v1, piters) = if dense_is_cheaper(m, n, data.len()) {
            let mut gd = Mat::<f64>::zeros(m, n);
            for (k, (i, j, _)) in data.iter().enumerate() {
                gd[(i, j)] = grad[k];
            }
            top_pair(&DenseY(gd.as_ref()), &self.v1, &r, self.p.power_iters, self.p.power_tol)?
        } else {
            let sp = SparseOp::with_values(data, &grad);
            top_pair(&sp, &self.v1, &r, self.p.power_iters, self.p.power_tol)?
        };
        let tau = self.tau;
        let xg: f64 = self.x_obs.iter().zip(&grad).map(|(x, g)| x * g).sum();
        let gap = xg + tau * sigma;
        let (rows, cols) = (data.rows(), data.cols());
        let s_obs: Vec<f64> = rows.iter().zip(cols).map(|(&i, &j)| -tau * u1[i as usize] * v1[j as usize]).collect();
        let gamma = if self.p.step == "open-loop" {
            2.0 / (t as f64 + 2.0)
        } else {
            let dd: f64 = s_obs.iter().zip(&self.x_obs).map(|(s, x)| (s - x) * (s - x)).sum();
            if dd > 0.0 { (gap / dd).clamp(0.0, 1.0) } else { 0.0 }
        };
        if gamma > 0.0 {
            let neg_u: Vec<f64> = u1.iter().map(|x| -x).collect();
            self.x = add_atom(&self.x, 1.0 - gamma, gamma * tau, &neg_u, &v1)?;
            for (x, s) in self.x_obs.iter_mut().zip(&s_obs) {
                *x = (1.0 - gamma) * *x + gamma * s;
            }
        }
        if sigma > 0.0 {
            self.v1 = v1;
        }
        let obj = half_sq(&self.x_obs, &self.a);
        *model = to_model(&self.x, self.mean);
        let r = &mut state.record;
        r.objective = Some(obj);
        r.values.insert("gap".into(), gap);
        r.values.insert("gamma".into(), gamma);
        r.values.insert("sigma_1".into(), sigma);
        r.values.insert("power_iters".into(), piters as f64);
        r.values.insert("nuclear_norm".into(), self.x.nuclear_norm());
        r.values.insert("rank".into(), self.x.s.len() as f64);
        r.values.insert("tau".into(), tau);
        let f0 = 0.5 * self.a.iter().map(|a| a * a).sum::<f64>();
        if self.p.tol > 0.0 && gap <= self.p.tol * f0 {
            state.converged = true;
        }
        Ok(())
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        save(&self.x, self.tau, self.seed, &self.v1, self.mean)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let (x, tau, seed, warm) = load(bytes, self.mean)?;
        self.x = x;
        (self.tau, self.tau_pending) = (tau, false);
        self.seed = seed;
        self.v1 = warm;
        self.x_obs.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dense::ratings_from_full;
    use crate::solve::Executor;

    fn randm(seed: u64, m: usize, n: usize) -> Mat<f64> {
        let mut g = rng::rng(seed);
        Mat::from_fn(m, n, |_, _| rng::normal(&mut g))
    }

    /// A rank-`k` `m x n` matrix with `||A||_* = 1` and roughly half the
    /// entries observed (the notebook's example, small and rectangular).
    fn problem(m: usize, n: usize, k: usize, frac: f64, seed: u64) -> (Mat<f64>, Ratings) {
        let a = &randm(seed, m, k) * randm(seed + 1, n, k).transpose();
        let nn: f64 = thin_svd(a.as_ref()).unwrap().s.iter().sum();
        let a = a * faer::Scale(1.0 / nn);
        let mut g = rng::rng(seed + 2);
        let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
        for i in 0..m {
            for j in 0..n {
                if rng::uniform(&mut g) < frac {
                    rows.push(i as u32);
                    cols.push(j as u32);
                    vals.push(a[(i, j)] as f32);
                }
            }
        }
        (a, Ratings::new(m, n, rows, cols, vals).unwrap())
    }

    fn dense_of(x: &SvdFactors) -> Mat<f64> {
        if x.s.is_empty() {
            return Mat::zeros(x.u.nrows(), x.v.nrows());
        }
        x.to_dense()
    }

    fn run_pgd(p: PgdNuclear, data: &Ratings, iters: usize) -> (crate::solve::Fit<FactorModel>, PgdNuclearSolver) {
        let s = p.check().unwrap();
        // run the steps by hand to keep the solver (and its iterate)
        let mut s2 = s.clone();
        let mut rng = rng::rng(0);
        let mut model = s2.init(data, &mut rng).unwrap();
        for it in 0..iters {
            let mut st = IterState { iteration: it, ..Default::default() };
            s2.step(data, &mut model, &mut st).unwrap();
        }
        let fit = Executor::new(s, data).max_iters(iters).run().unwrap();
        (fit, s2)
    }

    #[test]
    fn truncated_projection_equals_full() {
        // a low-rank-plus-sparse operator: X - lr G of the solver
        let (_, data) = problem(60, 50, 3, 0.5, 1);
        let x0 = SvdFactors {
            u: orthonormalize(randm(3, 60, 4).as_ref()),
            s: vec![0.5, 0.3, 0.2, 0.1],
            v: orthonormalize(randm(4, 50, 4).as_ref()),
        };
        let vals: Vec<f64> =
            values_at(&x0, &data).iter().zip(data.values()).map(|(x, &a)| -0.7 * (x - a as f64)).collect();
        let sp = SparseOp::with_values(&data, &vals);
        let us = scaled_u(&x0);
        let op = SparsePlusLowRank { sparse: &sp, u: us.as_ref(), v: x0.v.as_ref() };
        let mut y = x0.to_dense();
        for (k, (i, j, _)) in data.iter().enumerate() {
            y[(i, j)] += vals[k];
        }
        let sfull = thin_svd(y.as_ref()).unwrap().s;
        for tau in [0.3, 0.8, 0.95, 10.0] {
            let exact = nuclear_ball_svd(y.as_ref(), tau).unwrap().to_dense();
            let opts = TruncatedOptions { margin: 3, tol: 1e-12, max_iters: 500 };
            let (f, info) =
                project_truncated(&op, tau, Some(x0.v.as_ref()), &opts, &mut rng::rng(5), &|| y.clone()).unwrap();
            let err = (dense_of(&f) - &exact).norm_max();
            assert!(err < 1e-9, "tau {tau}: {err} ({info:?})");
            // the certificate: the threshold is at or above the first dropped value
            if !info.full {
                assert!(info.theta >= sfull[f.s.len()] - 1e-9, "{tau}: {info:?}");
            }
            let nn: f64 = f.s.iter().sum();
            assert!(nn <= tau * (1.0 + 1e-9));
            if tau < 0.9 {
                assert!(!info.full, "tau {tau} should not need the dense SVD: {info:?}");
            }
        }
    }

    /// The block Krylov kernel against the dense SVD: the values up to and
    /// including the first one at or below the cut, and the exact relation
    /// `Y v = s u` with `||Y^T u - s v||` small, on a dense operator (products
    /// by `pmul`) and on the sparse-plus-low-rank one.
    #[test]
    fn krylov_svd_matches_dense_svd() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            // spectrum 1, 0.9, ..., with a dense tail: like X - lr G
            let (m, n) = (90, 70);
            let q1 = orthonormalize(randm(31, m, n).as_ref());
            let q2 = orthonormalize(randm(32, n, n).as_ref());
            let sv: Vec<f64> =
                (0..n).map(|i| if i < 8 { 1.0 - 0.1 * i as f64 } else { 0.2 / (1.0 + i as f64) }).collect();
            let y = Mat::from_fn(m, n, |i, j| (0..n).map(|t| q1[(i, t)] * sv[t] * q2[(j, t)]).sum::<f64>());
            let truth = thin_svd(y.as_ref()).unwrap().s;
            let cut = |s: &[f64]| s.get(11).copied().unwrap_or(0.0) * 0.999;
            let start = randm(33, n, 6);
            let top = krylov_svd(&DenseY(y.as_ref()), start.as_ref(), 8, &cut, 1e-12, 20).unwrap();
            assert!(top.resid <= 1e-12, "{}", top.resid);
            let need = surviving(&top.s, cut(&top.s)) + 1;
            assert!(need <= top.s.len() && need >= 12);
            for i in 0..need {
                assert!((top.s[i] - truth[i]).abs() < 1e-10, "{i}: {} vs {}", top.s[i], truth[i]);
                let yv = &y * top.v.col(i);
                let e = (0..m).map(|r| (yv[r] - top.s[i] * top.u[(r, i)]).powi(2)).sum::<f64>().sqrt();
                assert!(e < 1e-12, "{e}");
            }
            // orthonormal factors
            let uu = top.u.transpose() * &top.u;
            let vv = top.v.transpose() * &top.v;
            let w = top.s.len();
            assert!((uu - Mat::<f64>::identity(w, w)).norm_max() < 1e-10);
            assert!((vv - Mat::<f64>::identity(w, w)).norm_max() < 1e-10);
            // pmul splits rows over the pool and matches the plain product
            let x = randm(34, n, 5);
            assert!((pmul(y.as_ref(), x.as_ref()) - &y * &x).norm_max() < 1e-13);
            let big = randm(35, 300, 200);
            let z = randm(36, 200, 40);
            assert!((pmul(big.as_ref(), z.as_ref()) - &big * &z).norm_max() < 1e-11);
            assert!(
                (pmul(big.as_ref().transpose(), randm(37, 300, 40).as_ref()) - big.transpose() * randm(37, 300, 40))
                    .norm_max()
                    < 1e-11
            );
        });
    }

    /// The Frank-Wolfe oracle on the sparse operator and on the dense one
    /// against the dense SVD's top pair.
    #[test]
    fn top_pair_sparse_and_dense_match_dense_svd() {
        let (_, data) = problem(50, 40, 3, 0.3, 41);
        let vals: Vec<f64> = data.values().iter().enumerate().map(|(k, &a)| a as f64 - 0.01 * (k % 7) as f64).collect();
        let sp = SparseOp::with_values(&data, &vals);
        let mut gd = Mat::<f64>::zeros(50, 40);
        for (k, (i, j, _)) in data.iter().enumerate() {
            gd[(i, j)] = vals[k];
        }
        let sv = thin_svd(gd.as_ref()).unwrap();
        let v0 = vec![1.0; 40];
        let r: Vec<f64> = randm(42, 40, 1).col(0).iter().copied().collect();
        for (u, sigma, v, _) in [
            top_pair(&sp, &v0, &r, 2000, 1e-13).unwrap(),
            top_pair(&DenseY(gd.as_ref()), &v0, &r, 2000, 1e-13).unwrap(),
        ] {
            assert!((sigma - sv.s[0]).abs() < 1e-12 * sv.s[0], "{sigma} vs {}", sv.s[0]);
            // the rank-one atom u v^T is unique up to sign
            let d = Mat::from_fn(50, 40, |i, j| u[i] * v[j] - sv.u[(i, 0)] * sv.v[(j, 0)]);
            let d2 = Mat::from_fn(50, 40, |i, j| u[i] * v[j] + sv.u[(i, 0)] * sv.v[(j, 0)]);
            assert!(d.norm_max().min(d2.norm_max()) < 1e-8, "{}", d.norm_max());
        }
    }

    #[test]
    fn pgd_stays_in_ball_and_decreases() {
        let (_, data) = problem(60, 50, 3, 0.5, 7);
        for (lr, init) in [(0.2, "random"), (1.0, "zero"), (0.6, "random")] {
            let p = PgdNuclear { tau: Some(0.8), lr, init: init.into(), tol: 0.0, ..Default::default() };
            let fit = Executor::new(p.check().unwrap(), &data).max_iters(40).run().unwrap();
            let mut prev = f64::INFINITY;
            for r in &fit.history {
                let o = r.objective.unwrap();
                assert!(o <= prev * (1.0 + 1e-12) + 1e-15, "lr {lr}: {o} > {prev}");
                prev = o;
                assert!(r.values["nuclear_norm"] <= 0.8 * (1.0 + 1e-9));
            }
        }
    }

    /// `frob_dist` against the dense difference, for iterates far apart and
    /// for nearly equal ones (where the old expansion through `<X, Y>` was
    /// off by `sqrt(eps) ||X||`), and for iterates of different ranks.
    #[test]
    fn frob_dist_is_accurate_for_nearly_equal_iterates() {
        let svd_of = |a: &Mat<f64>| {
            let sv = thin_svd(a.as_ref()).unwrap();
            SvdFactors { u: sv.u, s: sv.s, v: sv.v }
        };
        let a = &randm(3, 30, 4) * randm(4, 20, 4).transpose();
        for (scale, rank_b) in [(1.0, 4), (1e-9, 4), (1e-12, 4), (1e-3, 2)] {
            let mut b = &a + scale * (&randm(5, 30, rank_b) * randm(6, 20, rank_b).transpose());
            if rank_b == 2 {
                b = &randm(7, 30, 2) * randm(8, 20, 2).transpose();
            }
            let (x, y) = (svd_of(&a), svd_of(&b));
            // the dense difference of the two factored forms (not of a, b:
            // their SVDs carry their own rounding)
            let want = (dense_of(&x) - dense_of(&y)).norm_l2();
            let got = frob_dist(&x, &y);
            let norm = a.norm_l2();
            assert!((got - want).abs() <= 1e-13 * norm, "scale {scale}: {got:e} vs {want:e} (|X| {norm})");
        }
        let x = svd_of(&a);
        assert!(frob_dist(&x, &x) <= 1e-14 * a.norm_l2());
        assert_eq!(frob_dist(&zero_iterate(30, 20), &zero_iterate(30, 20)), 0.0);
    }

    /// A step size so small that the step cannot move the iterate used to
    /// pass the step-length test and report convergence after one step; it
    /// stalls with a message, while a default run converges to the same
    /// test on the same problem (its gradient steps are not tiny).
    #[test]
    fn pgd_with_a_vanishing_step_stalls_instead_of_converging() {
        use crate::solve::Termination;
        let (_, data) = problem(40, 30, 2, 0.5, 13);
        for lr in [1e-300, 1e-12] {
            let p = PgdNuclear { tau: Some(0.8), lr, init: "random".into(), ..Default::default() };
            let fit = Executor::new(p.check().unwrap(), &data).max_iters(20).run().unwrap();
            match &fit.termination {
                Termination::Stalled { message } => assert!(message.contains("raise lr"), "{message}"),
                t => panic!("lr {lr}: {t:?}"),
            }
        }
        let p = PgdNuclear { tau: Some(0.8), init: "random".into(), tol: 1e-8, ..Default::default() };
        let fit = Executor::new(p.check().unwrap(), &data).max_iters(5000).run().unwrap();
        assert_eq!(fit.termination, Termination::Converged, "{:?}", fit.termination);
    }

    #[test]
    fn pgd_full_svd_matches_truncated_run() {
        let (_, data) = problem(60, 50, 3, 0.5, 11);
        let base = PgdNuclear { tau: Some(0.7), lr: 0.5, svd_tol: 1e-13, tol: 0.0, ..Default::default() };
        let (_, a) = run_pgd(base.clone(), &data, 15);
        let (_, b) = run_pgd(PgdNuclear { svd: "full".into(), ..base }, &data, 15);
        let d = (dense_of(a.iterate()) - dense_of(b.iterate())).norm_max();
        assert!(d < 1e-9, "{d}");
    }

    #[test]
    fn pgd_recovers_fully_observed_matrix_inside_the_ball() {
        let a = &randm(20, 30, 3) * randm(21, 25, 3).transpose();
        let nn: f64 = thin_svd(a.as_ref()).unwrap().s.iter().sum();
        let data = ratings_from_full(&a).unwrap();
        // f32 storage: the data is A rounded to f32
        let af = Mat::from_fn(30, 25, |i, j| a[(i, j)] as f32 as f64);
        let p = PgdNuclear { tau: Some(nn * 1.01), lr: 0.5, tol: 0.0, center: "none".into(), ..Default::default() };
        let (_, s) = run_pgd(p.clone(), &data, 60);
        let err = (dense_of(s.iterate()) - &af).norm_l2() / af.norm_l2();
        assert!(err < 1e-12, "{err}");
        // the default radius of a fully observed matrix is its nuclear norm
        let t = default_tau(&data, 3).unwrap();
        let nnf: f64 = thin_svd(af.as_ref()).unwrap().s.iter().sum();
        assert!((t - nnf).abs() < 1e-9 * nnf, "{t} vs {nnf}");
    }

    /// `center = "mean"`: a fully observed `3.5 + M` is recovered exactly
    /// from a ball of radius `||A - mean||_*` (the centred matrix is feasible,
    /// so it is the minimizer), and the model predicts `mean + X`.
    #[test]
    fn centred_pgd_recovers_an_offset_matrix() {
        let a = &randm(30, 30, 3) * randm(31, 25, 3).transpose();
        let a = Mat::from_fn(30, 25, |i, j| 3.5 + a[(i, j)]);
        let data = ratings_from_full(&a).unwrap();
        let af = Mat::from_fn(30, 25, |i, j| a[(i, j)] as f32 as f64);
        let mean = (0..30).flat_map(|i| (0..25).map(move |j| (i, j))).map(|(i, j)| af[(i, j)]).sum::<f64>() / 750.0;
        let centred = Mat::from_fn(30, 25, |i, j| af[(i, j)] - mean);
        let nn: f64 = thin_svd(centred.as_ref()).unwrap().s.iter().sum();
        let p = PgdNuclear { tau: Some(nn * 1.01), lr: 1.0, tol: 0.0, ..Default::default() };
        let (fit, s) = run_pgd(p, &data, 5);
        assert!((fit.model.global_mean - mean).abs() < 1e-12);
        assert!((dense_of(s.iterate()) - &centred).norm_l2() < 1e-10 * centred.norm_l2());
        let pairs: Vec<(usize, usize)> = (0..30).flat_map(|i| (0..25).map(move |j| (i, j))).collect();
        let pred = fit.model.predict_many(&pairs);
        let worst = pairs.iter().zip(&pred).map(|(&(i, j), p)| (p - af[(i, j)]).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-5, "{worst}"); // the model stores f32 factors
    }

    /// On ratings-like data (an offset of 3.5 plus a rank-2 matrix, half the
    /// entries observed), with the spectral radius, the centred problem
    /// completes the held-out entries far better than the uncentred ball, for
    /// both solvers (measured: RMSE 0.26 / 0.15 centred, 0.67 / 0.68
    /// uncentred, against 0.69 for predicting the offset); the default
    /// hold-out radius (`tau_rule = "auto"` → SoftImpute's) does well either
    /// way (0.21 / 0.14 centred, 0.15 / 0.19 uncentred).
    #[test]
    fn centring_helps_on_offset_data_with_missing_entries() {
        let (m, n) = (40, 30);
        let low = &randm(40, m, 2) * randm(41, n, 2).transpose();
        let full = Mat::from_fn(m, n, |i, j| 3.5 + 0.5 * low[(i, j)]);
        let mut g = rng::rng(42);
        let (mut train, mut test) = ((vec![], vec![], vec![]), vec![]);
        for i in 0..m {
            for j in 0..n {
                if rng::uniform(&mut g) < 0.5 {
                    train.0.push(i as u32);
                    train.1.push(j as u32);
                    train.2.push(full[(i, j)] as f32);
                } else {
                    test.push((i, j));
                }
            }
        }
        let data = Ratings::new(m, n, train.0, train.1, train.2).unwrap();
        let rmse = |model: &FactorModel| {
            let pred = model.predict_many(&test);
            (test.iter().zip(&pred).map(|(&(i, j), p)| (p - full[(i, j)]).powi(2)).sum::<f64>() / test.len() as f64)
                .sqrt()
        };
        let spread = (0..m).flat_map(|i| (0..n).map(move |j| (i, j))).map(|(i, j)| (full[(i, j)] - 3.5).powi(2));
        let scale = (spread.sum::<f64>() / (m * n) as f64).sqrt();
        for (center, rule) in [("mean", "spectral"), ("none", "spectral"), ("mean", "auto"), ("none", "auto")] {
            let pgd = PgdNuclear { center: center.into(), tau_rule: rule.into(), tol: 0.0, ..Default::default() };
            let pgd_fit = Executor::new(pgd.check().unwrap(), &data).max_iters(200).run().unwrap();
            let fw = FrankWolfe { center: center.into(), tau_rule: rule.into(), tol: 0.0, ..Default::default() };
            let fw_fit = Executor::new(fw.check().unwrap(), &data).max_iters(200).run().unwrap();
            let (e_pgd, e_fw) = (rmse(&pgd_fit.model), rmse(&fw_fit.model));
            if rule == "auto" {
                // the hold-out radius completes well with or without centring
                assert!(e_pgd < 0.35 * scale && e_fw < 0.35 * scale, "{center} auto: {e_pgd} {e_fw} (scale {scale})");
                continue;
            }
            if center == "mean" {
                assert!(e_pgd < 0.45 * scale && e_fw < 0.45 * scale, "centred: {e_pgd} {e_fw} (scale {scale})");
            } else {
                assert!(e_pgd > 0.8 * scale && e_fw > 0.8 * scale, "uncentred: {e_pgd} {e_fw} (scale {scale})");
            }
        }
    }

    /// The projection optimality condition at a fixed point `X*`:
    /// `<-grad f(X*), Y - X*> <= 0` for all `Y` in the ball, i.e. the
    /// Frank-Wolfe gap `<X*, G> + tau sigma_1(G)` vanishes; and the
    /// Frank-Wolfe run reaches the same optimum.
    #[test]
    fn fixed_point_optimality_and_frank_wolfe_agree() {
        let (_, data) = problem(40, 30, 3, 0.6, 13);
        let tau = 0.6;
        let p = PgdNuclear {
            tau: Some(tau),
            lr: 1.0,
            tol: 0.0,
            svd_tol: 1e-13,
            center: "none".into(),
            ..Default::default()
        };
        let (_, s) = run_pgd(p, &data, 400);
        let x = dense_of(s.iterate());
        let mut g = Mat::zeros(40, 30);
        for (i, j, a) in data.iter() {
            g[(i, j)] = x[(i, j)] - a as f64;
        }
        let sigma1 = thin_svd(g.as_ref()).unwrap().s[0];
        let xg: f64 = (0..30).map(|j| (0..40).map(|i| x[(i, j)] * g[(i, j)]).sum::<f64>()).sum();
        let f_pgd = {
            let xo = values_at(s.iterate(), &data);
            half_sq(&xo, &data.values().iter().map(|&v| v as f64).collect::<Vec<_>>())
        };
        let gap = xg + tau * sigma1;
        assert!(gap.abs() < 1e-9 * f_pgd.max(1e-12), "gap {gap} at f = {f_pgd}");
        // the constraint is active and the iterate is on the sphere
        assert!((s.iterate().nuclear_norm() - tau).abs() < 1e-9);
        // Frank-Wolfe with line search reaches the same optimum; its exact
        // duality gap (dense SVD of the gradient) bounds its suboptimality, and
        // the recorded gap (power method) is a close lower estimate of it
        let fw = FrankWolfe {
            tau: Some(tau),
            tol: 0.0,
            power_tol: 1e-10,
            power_iters: 200,
            center: "none".into(),
            ..Default::default()
        };
        let mut s = fw.check().unwrap();
        let mut model = s.init(&data, &mut rng::rng(0)).unwrap();
        let mut st = IterState::default();
        for it in 0..800 {
            st = IterState { iteration: it, ..Default::default() };
            s.step(&data, &mut model, &mut st).unwrap();
        }
        let xf = dense_of(s.iterate());
        let f_fw = st.record.objective.unwrap();
        let ad = crate::data::dense::filled_dense(&data, f64::NAN);
        let gf = Mat::from_fn(40, 30, |i, j| if ad[(i, j)].is_nan() { 0.0 } else { xf[(i, j)] - ad[(i, j)] });
        let true_gap = (0..30).map(|j| (0..40).map(|i| xf[(i, j)] * gf[(i, j)]).sum::<f64>()).sum::<f64>()
            + tau * thin_svd(gf.as_ref()).unwrap().s[0];
        assert!(f_fw >= f_pgd * (1.0 - 1e-9), "{f_fw} < {f_pgd}");
        assert!(f_fw - f_pgd <= true_gap * (1.0 + 1e-9) + 1e-15, "{f_fw} - {f_pgd} > {true_gap}");
        assert!((f_fw - f_pgd) / f_pgd < 1e-2, "fw {f_fw} vs pgd {f_pgd}");
        assert!(s.iterate().nuclear_norm() <= tau * (1.0 + 1e-9));
    }

    #[test]
    fn frank_wolfe_gap_decreases_like_one_over_t() {
        let (_, data) = problem(40, 30, 3, 0.6, 17);
        let fw = FrankWolfe {
            tau: Some(0.6),
            step: "open-loop".into(),
            tol: 0.0,
            power_tol: 1e-12,
            power_iters: 1000,
            center: "none".into(),
            ..Default::default()
        };
        let fit = Executor::new(fw.check().unwrap(), &data).max_iters(400).run().unwrap();
        // Jaggi (2013), Theorem 2: min_{s <= t} gap_s <= 27/4 * C_f / (t + 2)
        // with C_f <= diam^2 L = (2 tau)^2 for this 1-Lipschitz gradient
        let cf = (2.0f64 * 0.6).powi(2);
        let mut best = f64::INFINITY;
        for (t, r) in fit.history.iter().enumerate() {
            best = best.min(r.values["gap"]);
            assert!(best >= -1e-12);
            if t >= 1 {
                assert!(best <= 6.75 * cf / (t as f64 + 2.0), "t {t}: {best}");
            }
        }
        // and the objective's primal error also falls like 1/t: f(X_t) - f(X_400) <= 2 C_f / (t + 2)
        let fend = fit.history.last().unwrap().objective.unwrap();
        for (t, r) in fit.history.iter().enumerate() {
            assert!(r.objective.unwrap() - fend <= 2.0 * cf / (t as f64 + 3.0) + 1e-12);
        }
    }

    /// The factored iterate with incremental observed values equals a
    /// dense Frank-Wolfe that forms X and takes the exact SVD of the gradient.
    #[test]
    fn factored_frank_wolfe_equals_dense() {
        let (_, data) = problem(30, 20, 2, 0.7, 19);
        let tau = 0.5;
        let fw = FrankWolfe {
            tau: Some(tau),
            tol: 0.0,
            power_tol: 1e-15,
            power_iters: 5000,
            center: "none".into(),
            ..Default::default()
        };
        let mut s = fw.check().unwrap();
        let mut rng = rng::rng(0);
        let mut model = s.init(&data, &mut rng).unwrap();
        let mut x = Mat::<f64>::zeros(30, 20);
        let mask = crate::data::dense::mask_of(&data);
        let a = crate::data::dense::filled_dense(&data, 0.0);
        for it in 0..25 {
            let mut st = IterState { iteration: it, ..Default::default() };
            s.step(&data, &mut model, &mut st).unwrap();
            // dense reference
            let g = Mat::from_fn(30, 20, |i, j| mask[(i, j)] * (x[(i, j)] - a[(i, j)]));
            let sv = thin_svd(g.as_ref()).unwrap();
            let sm = Mat::from_fn(30, 20, |i, j| -tau * sv.u[(i, 0)] * sv.v[(j, 0)]);
            let d = &sm - &x;
            let gap: f64 = -(0..20).map(|j| (0..30).map(|i| g[(i, j)] * d[(i, j)]).sum::<f64>()).sum::<f64>();
            let dd: f64 = (0..20).map(|j| (0..30).map(|i| mask[(i, j)] * d[(i, j)].powi(2)).sum::<f64>()).sum();
            let gamma = (gap / dd).clamp(0.0, 1.0);
            x = &x + d * faer::Scale(gamma);
            assert!((st.record.values["gap"] - gap).abs() < 1e-9 * gap.abs().max(1e-6), "{it}");
            let diff = (dense_of(s.iterate()) - &x).norm_l2();
            assert!(diff < 1e-8 * x.norm_l2(), "it {it}: {diff}");
            // the model is the same matrix
            let md = &model.u_dense() * model.v_dense().transpose();
            assert!((md - &x).norm_max() < 1e-6);
        }
    }

    /// An operator of rank 2 on a large shape: the block Krylov basis grows
    /// past the operator's rank, and the Gram matrix's cluster of
    /// numerically zero eigenvalues used to count as surviving values (its
    /// eigenvalues resolve only `sqrt(eps) s_1`) until faer's eigensolver
    /// gave up ("Rayleigh-Ritz eigenproblem did not converge" at iteration
    /// 2). The projection onto the ball of radius 0.5 of `diag(-0.5, 0.5)`
    /// (the two centred entries) shrinks both singular values by 0.25, and
    /// a radius from the data (>= 1, the data's nuclear norm) interpolates.
    /// (Only the observed entries are unique: the unobserved ones of a
    /// minimizer may be anything that keeps it in the ball.)
    #[test]
    fn rank_two_operator_on_a_large_shape() {
        use crate::metrics::Predict;
        let data = Ratings::new(1000, 1000, vec![0, 999], vec![0, 999], vec![1.0, 2.0]).unwrap();
        for tau in [Some(0.5), None] {
            let want = if tau.is_some() { [1.25, 1.75] } else { [1.0, 2.0] };
            // from zero with lr 1 the first step is the projection of the data itself
            let pgd =
                PgdNuclear { tau, tau_rule: "spectral".into(), lr: 1.0, init: "zero".into(), ..Default::default() };
            let fw = FrankWolfe { tau, tau_rule: "spectral".into(), ..Default::default() };
            let models = [
                Executor::new(pgd.check().unwrap(), &data).max_iters(50).run().unwrap().model,
                Executor::new(fw.check().unwrap(), &data).max_iters(200).run().unwrap().model,
            ];
            for (name, m) in ["pgd", "fw"].iter().zip(&models) {
                let got = [Predict::predict(m, 0, 0), Predict::predict(m, 999, 999)];
                // the model keeps f32 factors: 1e-6 is a few of their ulps here
                for (g, w) in got.iter().zip(want) {
                    assert!((g - w).abs() < 1e-6, "{name} tau {tau:?}: {got:?} vs {want:?}");
                }
            }
        }
    }

    #[test]
    fn invalid_settings_are_errors() {
        assert!(PgdNuclear { tau: Some(-1.0), ..Default::default() }.check().is_err());
        assert!(PgdNuclear { tau: Some(f64::NAN), ..Default::default() }.check().is_err());
        assert!(PgdNuclear { lr: 0.0, ..Default::default() }.check().is_err());
        // at and beyond 2 projected gradient need not converge (1e200 gave a
        // zero model reported as converged)
        for lr in [2.0, 1e200, f64::INFINITY] {
            let e = PgdNuclear { lr, ..Default::default() }.check().unwrap_err().to_string();
            assert!(e.contains("lr must be in (0, 2)"), "{e}");
        }
        assert!(PgdNuclear { lr: 1.9, ..Default::default() }.check().is_ok());
        assert!(PgdNuclear { init: "x".into(), ..Default::default() }.check().is_err());
        assert!(PgdNuclear { svd: "x".into(), ..Default::default() }.check().is_err());
        assert!(FrankWolfe { step: "x".into(), ..Default::default() }.check().is_err());
        assert!(FrankWolfe { power_iters: 0, ..Default::default() }.check().is_err());
        let e = crate::solve::registry::fit(
            FitRequest::new("pgd-nuclear", &crate::io::Dataset::Dense(Mat::zeros(3, 3))).set("tua", 1.0),
        );
        assert!(matches!(e, Err(Error::Config(_))));
    }

    #[test]
    fn registry_run_records_rel_error_and_resumes() {
        let p = crate::data::synth::planted_completion_rect(50, 40, 2, 1200, 3).unwrap();
        let ds = crate::io::Dataset::Ratings(p.observed.clone());
        let mut req = FitRequest::new("pgd-nuclear", &ds);
        req.truth = Some(&p.truth);
        req.epochs = Some(30);
        let out = crate::solve::registry::fit(req).unwrap();
        let first = out.history[0].values["rel_error"];
        let last = out.history.last().unwrap().values["rel_error"];
        eprintln!(
            "tau {} truth {} rel {first} -> {last}",
            out.summary["tau"],
            thin_svd(p.truth.as_ref()).unwrap().s.iter().sum::<f64>()
        );
        assert!(last < 0.3 && last < first, "{first} -> {last}");
        assert!(out.summary["tau"].as_f64().unwrap() > 0.0);
        // checkpoint-resume gives the same iterate as a straight run
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ck");
        let solver = || FrankWolfe { tau: Some(30.0), tol: 0.0, ..Default::default() }.check().unwrap();
        let straight = Executor::new(solver(), &p.observed).max_iters(12).run().unwrap();
        Executor::new(solver(), &p.observed).max_iters(5).checkpoint(&ck, 1).run().unwrap();
        let resumed = Executor::new(solver(), &p.observed).max_iters(12).checkpoint(&ck, 1).resume(true).run().unwrap();
        let (a, b) = (straight.history.last().unwrap(), resumed.history.last().unwrap());
        assert!((a.objective.unwrap() - b.objective.unwrap()).abs() < 1e-9 * a.objective.unwrap());
        // a checkpoint of the centred problem does not resume uncentred
        let none = FrankWolfe { tau: Some(30.0), tol: 0.0, center: "none".into(), ..Default::default() };
        let err = Executor::new(none.check().unwrap(), &p.observed)
            .max_iters(12)
            .checkpoint(&ck, 1)
            .resume(true)
            .run()
            .unwrap_err()
            .to_string();
        assert!(err.contains("resume with the center"), "{err}");
    }

    /// Without `tau`, the radius is chosen at the first step, not in `init`
    /// (a SoftImpute fit with `tau_rule = "auto"`: seconds on real data), so a
    /// resumed run takes its checkpoint's radius without choosing one first;
    /// both solvers, and a resumed run matches a straight one.
    #[test]
    fn radius_is_chosen_at_the_first_step_and_kept_on_resume() {
        let p = crate::data::synth::planted_completion_rect(40, 30, 2, 700, 5).unwrap();
        let mut rng = rng::rng(1);
        let mut pgd = PgdNuclear { init: "random".into(), tol: 0.0, ..Default::default() }.check().unwrap();
        let mut model = pgd.init(&p.observed, &mut rng).unwrap();
        assert_eq!(pgd.tau(), None);
        let mut st = IterState::default();
        pgd.step(&p.observed, &mut model, &mut st).unwrap();
        let tau = pgd.tau().unwrap();
        assert!(tau > 0.0 && tau.is_finite());
        // the random start was scaled to the radius before the first step:
        // the same step, bit for bit, as with that radius given
        let given = PgdNuclear { init: "random".into(), tol: 0.0, tau: Some(tau), ..Default::default() };
        let mut given = given.check().unwrap();
        let mut mg = given.init(&p.observed, &mut rng::rng(1)).unwrap();
        given.step(&p.observed, &mut mg, &mut IterState::default()).unwrap();
        let (x1, x2) = (pgd.iterate(), given.iterate());
        assert_eq!(x1.s, x2.s);
        assert!(x1.u.col_iter().zip(x2.u.col_iter()).all(|(a, b)| a.iter().zip(b.iter()).all(|(p, q)| p == q)));
        // a checkpoint's radius replaces the choice (a deliberately odd one)
        let bytes = save(&pgd.x, 0.5 * tau, pgd.seed, &[], pgd.mean).unwrap();
        let mut again = PgdNuclear { init: "random".into(), tol: 0.0, ..Default::default() }.check().unwrap();
        let mut m2 = again.init(&p.observed, &mut rng::rng(1)).unwrap();
        again.load_state(&bytes).unwrap();
        assert_eq!(again.tau(), Some(0.5 * tau));
        let mut st = IterState { iteration: 1, ..Default::default() };
        again.step(&p.observed, &mut m2, &mut st).unwrap();
        assert_eq!(st.record.values["tau"], 0.5 * tau);
        assert!(again.iterate().nuclear_norm() <= 0.5 * tau * (1.0 + 1e-9));
        // Frank-Wolfe: straight 10 steps = 4 steps, checkpoint, 6 more
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ck");
        let fw = || FrankWolfe { tol: 0.0, ..Default::default() }.check().unwrap();
        let straight = Executor::new(fw(), &p.observed).max_iters(10).run().unwrap();
        Executor::new(fw(), &p.observed).max_iters(4).checkpoint(&ck, 1).run().unwrap();
        let resumed = Executor::new(fw(), &p.observed).max_iters(10).checkpoint(&ck, 1).resume(true).run().unwrap();
        let (a, b) = (straight.history.last().unwrap(), resumed.history.last().unwrap());
        assert_eq!(a.values["tau"], b.values["tau"]);
        assert!((a.objective.unwrap() - b.objective.unwrap()).abs() <= 1e-9 * a.objective.unwrap());
    }
}
