//! Truncated and randomized SVD.
//!
//! - [`Svd::truncated`]: the best rank-`k` approximation of a dense matrix
//!   (faer's thin SVD, cut at `k`). By Eckart-Young its Frobenius error is
//!   `sqrt(sum_{i > k} sigma_i^2)` (the lab's comparison, seed `003`).
//! - [`Svd::randomized`]: Halko, Martinsson and Tropp (2011), Algorithms 4.4
//!   and 5.1: a Gaussian test block of `k + oversample` columns, `power_iters`
//!   subspace iterations with QR re-orthonormalization after every product,
//!   then the exact SVD of the small projected matrix. Works on any
//!   [`LinOp`] (dense, sparse, sparse + low-rank) without forming it.
//!   [`Svd::randomized_from`] starts from a given block instead of a random
//!   one (warm starts inside iterative solvers).
//! - [`SvdParams`] / `--algo svd`: the truncated SVD of a ratings matrix,
//!   centred by the mean, missing = 0 (scikit-learn's `TruncatedSVD` peer),
//!   returned as a [`FactorModel`] `mean + U S V^T`.

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::linop::{LinOp, SparseOp, mul, par_for};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::{IterState, Solver};

/// A (truncated) singular value decomposition `U diag(s) V^T`.
#[derive(Clone, Debug)]
pub struct Svd {
    /// Left singular vectors, `m x k`, orthonormal columns.
    pub u: Mat<f64>,
    /// Singular values, non-increasing.
    pub s: Vec<f64>,
    /// Right singular vectors, `n x k`, orthonormal columns.
    pub v: Mat<f64>,
}

/// Thin SVD with non-convergence reported as [`Error::Numerical`];
/// sequential for small matrices (see [`par_for`]).
pub fn thin_svd(a: MatRef<'_, f64>) -> Result<Svd> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::svd::{ComputeSvdVectors, svd, svd_scratch};
    ensure!(
        (0..a.ncols()).all(|j| a.col(j).iter().all(|x| x.is_finite())),
        "cannot take the SVD of a matrix with non-finite entries"
    );
    let (m, n) = a.shape();
    let size = m.min(n);
    let par = par_for(m, n, size);
    let (mut u, mut v, mut s) = (Mat::zeros(m, size), Mat::zeros(n, size), faer::diag::Diag::<f64>::zeros(size));
    let thin = ComputeSvdVectors::Thin;
    let mut buf = MemBuffer::new(svd_scratch::<f64>(m, n, thin, thin, par, Default::default()));
    svd(a, s.as_mut(), Some(u.as_mut()), Some(v.as_mut()), par, MemStack::new(&mut buf), Default::default())
        .map_err(|e| Error::Numerical(format!("the SVD did not converge ({e:?})")))?;
    Ok(Svd { u, s: s.column_vector().iter().copied().collect(), v })
}

/// An orthonormal basis of the columns of `y` (thin Q of a Householder QR;
/// sequential for small blocks, see [`par_for`]).
pub fn orthonormalize(y: MatRef<'_, f64>) -> Mat<f64> {
    thin_qr(y).0
}

/// Thin QR `y = Q R` (`Q` m x min(m, n) with orthonormal columns, `R`
/// min(m, n) x n upper trapezoidal) by Householder reflections, sequential
/// for small blocks (see [`par_for`]).
pub fn thin_qr(y: MatRef<'_, f64>) -> (Mat<f64>, Mat<f64>) {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::householder::{
        apply_block_householder_sequence_on_the_left_in_place_scratch as apply_scratch,
        apply_block_householder_sequence_on_the_left_in_place_with_conj as apply,
    };
    use faer::linalg::qr::no_pivoting::factor::{qr_in_place, qr_in_place_scratch, recommended_block_size};
    let (m, n) = y.shape();
    let size = m.min(n);
    let par = par_for(m, n, size);
    let block = recommended_block_size::<f64>(m, n);
    let mut qr = y.to_owned();
    let mut coeff = Mat::zeros(block, size);
    let mut buf = MemBuffer::new(qr_in_place_scratch::<f64>(m, n, block, par, Default::default()));
    qr_in_place(qr.as_mut(), coeff.as_mut(), par, MemStack::new(&mut buf), Default::default());
    let r = Mat::from_fn(size, n, |i, j| if i <= j { qr[(i, j)] } else { 0.0 });
    // the Householder basis, in place: the strictly lower part of the first
    // `size` columns with a unit diagonal (as faer's `Qr` stores it)
    for j in 0..size {
        qr[(j, j)] = 1.0;
        for i in 0..j {
            qr[(i, j)] = 0.0;
        }
    }
    let mut q = Mat::identity(m, size);
    let mut buf = MemBuffer::new(apply_scratch::<f64>(m, block, size));
    let basis = qr.as_ref().subcols(0, size);
    apply(basis, coeff.as_ref(), faer::Conj::No, q.as_mut(), par, MemStack::new(&mut buf));
    (q, r)
}

fn gaussian(g: &mut Rng, m: usize, n: usize) -> Mat<f64> {
    Mat::from_fn(m, n, |_, _| rng::normal(g))
}

/// Options of the randomized SVD (defaults: scikit-learn's `randomized_svd`,
/// 10 oversamples; 4 power iterations as the `sklearn-rsvd` peer is run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RsvdOptions {
    /// Extra columns of the test block.
    pub oversample: usize,
    /// Subspace (power) iterations.
    pub power_iters: usize,
    /// Seed of the Gaussian test block.
    pub seed: u64,
}

impl Default for RsvdOptions {
    fn default() -> Self {
        RsvdOptions { oversample: 10, power_iters: 4, seed: 0 }
    }
}

impl Svd {
    /// Best rank-`k` approximation of a dense matrix (exact thin SVD, cut).
    /// `k` must be in `1..=min(m, n)`.
    pub fn truncated(a: MatRef<'_, f64>, k: usize) -> Result<Svd> {
        let (m, n) = (a.nrows(), a.ncols());
        ensure!(k >= 1 && k <= m.min(n), "k must be in 1..={} for a {m}x{n} matrix, got {k}", m.min(n));
        let full = thin_svd(a)?;
        Ok(full.cut(k))
    }

    /// Keep the first `k` triplets.
    pub fn cut(self, k: usize) -> Svd {
        let k = k.min(self.s.len());
        Svd { u: self.u.subcols(0, k).to_owned(), s: self.s[..k].to_vec(), v: self.v.subcols(0, k).to_owned() }
    }

    /// Rank-`k` randomized SVD of an operator (`k` in `1..=min(m, n)`).
    pub fn randomized<O: LinOp + ?Sized>(op: &O, k: usize, opts: &RsvdOptions) -> Result<Svd> {
        let (m, n) = op.shape();
        ensure!(k >= 1 && k <= m.min(n), "k must be in 1..={} for a {m}x{n} matrix, got {k}", m.min(n));
        let l = (k + opts.oversample).min(m.min(n));
        let omega = gaussian(&mut rng::rng(opts.seed), n, l);
        Self::randomized_from(op, omega.as_ref(), k, opts.power_iters)
    }

    /// Randomized SVD from a given `n x l` start block (`l >= k`), e.g. the
    /// right singular vectors of the previous iterate plus a few random
    /// columns.
    pub fn randomized_from<O: LinOp + ?Sized>(
        op: &O,
        start: MatRef<'_, f64>,
        k: usize,
        power_iters: usize,
    ) -> Result<Svd> {
        let (m, n) = op.shape();
        ensure!(start.nrows() == n, "the start block has {} rows, the operator {n} columns", start.nrows());
        ensure!(
            k >= 1 && k <= start.ncols() && k <= m.min(n),
            "k = {k} must be in 1..={}",
            start.ncols().min(m.min(n))
        );
        let mut q = orthonormalize(op.apply(start).as_ref());
        for _ in 0..power_iters {
            let z = orthonormalize(op.apply_t(q.as_ref()).as_ref());
            q = orthonormalize(op.apply(z.as_ref()).as_ref());
        }
        // B^T = A^T Q (n x l); B^T = W S Z^T  =>  A ~ Q B = (Q Z) S W^T.
        let bt = op.apply_t(q.as_ref());
        ensure!(
            (0..bt.ncols()).all(|j| bt.col(j).iter().all(|x| x.is_finite())),
            "the operator produced non-finite values"
        );
        let small = thin_svd(bt.as_ref())?;
        let u = mul(q.as_ref(), small.v.as_ref());
        Ok(Svd { u, s: small.s, v: small.u }.cut(k))
    }

    /// Number of triplets.
    pub fn rank(&self) -> usize {
        self.s.len()
    }

    /// `U diag(s) V^T` as a dense matrix.
    pub fn to_dense(&self) -> Mat<f64> {
        let us = Mat::from_fn(self.u.nrows(), self.s.len(), |i, t| self.u[(i, t)] * self.s[t]);
        mul(us.as_ref(), self.v.as_ref().transpose())
    }

    /// Balanced factors `(U S^1/2, V S^1/2)`.
    pub fn balanced_factors(&self) -> (Mat<f64>, Mat<f64>) {
        let a = Mat::from_fn(self.u.nrows(), self.s.len(), |i, t| self.u[(i, t)] * self.s[t].sqrt());
        let b = Mat::from_fn(self.v.nrows(), self.s.len(), |j, t| self.v[(j, t)] * self.s[t].sqrt());
        (a, b)
    }

    /// A factor model `offset + U S V^T` (balanced factors, f32).
    pub fn to_factor_model(&self, offset: f64) -> FactorModel {
        let (a, b) = self.balanced_factors();
        let mut m = FactorModel::from_dense(&a, &b);
        m.global_mean = offset;
        m
    }
}

/// One-shot helper: best rank-`k` approximation of a dense matrix.
pub fn truncated(a: &Mat<f64>, k: usize) -> Result<Svd> {
    Svd::truncated(a.as_ref(), k)
}

/// `--algo svd`: truncated SVD of a ratings matrix, missing = 0, centred by
/// the mean (scikit-learn `TruncatedSVD` on the centred sparse matrix, as the
/// `sklearn-truncsvd` peer). Defaults: rank 20, 10 oversamples, 5 power
/// iterations (`TruncatedSVD`'s `n_iter = 5`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvdParams {
    /// Number of singular triplets kept.
    pub rank: usize,
    /// Randomized SVD oversampling.
    pub oversample: usize,
    /// Randomized SVD power iterations.
    pub power_iters: usize,
    /// Subtract the mean of the observed values first (missing entries then
    /// stand for the mean). Also given as `"mean"` / `"none"`, the words the
    /// other spectral algorithms take.
    #[serde(deserialize_with = "mean_or_none")]
    pub center: bool,
    /// `randomized` (any size) or `exact` (dense thin SVD of the filled
    /// matrix; small problems).
    pub method: String,
}

/// `center` of [`SvdParams`]: a boolean, or `"mean"` (true) / `"none"`
/// (false); `"biases"` is refused with what to use instead.
fn mean_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Flag(bool),
        Word(String),
    }
    match Either::deserialize(d)? {
        Either::Flag(b) => Ok(b),
        Either::Word(w) => match w.as_str() {
            "mean" => Ok(true),
            "none" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "center must be true/\"mean\" or false/\"none\" for svd, got \"{other}\" (biases: softimpute, \
                 hard-impute)"
            ))),
        },
    }
}

impl Default for SvdParams {
    fn default() -> Self {
        SvdParams { rank: 20, oversample: 10, power_iters: 5, center: true, method: "randomized".into() }
    }
}

impl SvdParams {
    /// Validate into a solver (the rank against the data in `init`).
    pub fn check(self) -> Result<SvdSolver> {
        ensure!(self.rank >= 1, "rank must be >= 1, got {}", self.rank);
        ensure!(
            self.method == "randomized" || self.method == "exact",
            "method must be 'randomized' or 'exact', got '{}'",
            self.method
        );
        Ok(SvdSolver { params: self, seed: None })
    }
}

/// The validated `svd` solver: one step computes the decomposition.
#[derive(Clone, Debug)]
pub struct SvdSolver {
    params: SvdParams,
    seed: Option<u64>,
}

impl SvdSolver {
    /// The decomposition of the (centred) ratings matrix and the offset.
    pub fn decompose(&self, data: &Ratings, seed: u64) -> Result<(Svd, f64, f64)> {
        let (m, n) = data.shape();
        let k = self.params.rank;
        ensure!(k <= m.min(n), "rank must be <= min(m, n) = {}, got {k}", m.min(n));
        let shift = if self.params.center { data.mean() } else { 0.0 };
        let op = SparseOp::new(data, shift);
        let total = op.frob_sq().unwrap_or(0.0);
        let svd = if self.params.method == "exact" {
            // the filled matrix and faer's thin SVD (factors and workspace:
            // one 50 GB allocation, ~7 m n values, at 30000 x 30000)
            crate::error::ensure_fits_in_memory(
                8 * (m as u128) * (n as u128),
                &format!("svd with method = \"exact\" on a {m} x {n} matrix (the dense filled matrix)"),
                "use method = \"randomized\" (the default), which works on the observed entries",
            )?;
            let mut a = Mat::zeros(m, n);
            for (i, j, v) in data.iter() {
                a[(i, j)] = v as f64 - shift;
            }
            Svd::truncated(a.as_ref(), k)?
        } else {
            let opts = RsvdOptions { oversample: self.params.oversample, power_iters: self.params.power_iters, seed };
            Svd::randomized(&op, k, &opts)?
        };
        Ok((svd, shift, total))
    }
}

impl Solver for SvdSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn fixed_sizes(&self) -> bool {
        false // the model's rank can be below the requested one (a numerical rank cap)
    }

    fn name(&self) -> &'static str {
        "svd"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        ensure!(!data.is_empty(), "the training data has no entries");
        let (m, n) = data.shape();
        ensure!(self.params.rank <= m.min(n), "rank must be <= min(m, n) = {}, got {}", m.min(n), self.params.rank);
        // The seed of the test block, drawn once so a rerun is identical.
        let seed = rng::uniform(rng).to_bits();
        self.seed = Some(seed);
        Ok(FactorModel::zeros(m, n, self.params.rank))
    }

    fn step(&mut self, data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let (svd, shift, total) = self.decompose(data, self.seed.unwrap_or(0))?;
        *model = svd.to_factor_model(shift);
        // Eckart-Young / trace identity: the residual of the filled matrix.
        let kept: f64 = svd.s.iter().map(|s| s * s).sum();
        let residual = (total - kept).max(0.0);
        state.record.objective = Some(residual);
        if total > 0.0 {
            // ||A - U S V^T||_F / ||A||_F of the (centred, missing = 0) matrix
            state.record.values.insert("rel_residual".into(), (residual / total).sqrt());
        }
        state.record.values.insert("sigma_1".into(), svd.s[0]);
        state.record.vectors.insert("singular_values".into(), svd.s.clone());
        state.converged = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solve::Executor;

    /// `center` takes the booleans and the words of the other spectral
    /// algorithms; `biases` (which svd does not fit) is a config error.
    #[test]
    fn center_takes_a_boolean_or_mean_or_none() {
        use crate::solve::registry::parse_params;
        let keys = crate::solve::spectral::ALGOS[0].keys;
        let parse = |v: serde_json::Value| {
            let p = serde_json::json!({ "center": v });
            parse_params::<SvdParams>("svd", p.as_object().unwrap(), keys)
        };
        for (v, want) in [(serde_json::json!(true), true), (serde_json::json!("mean"), true)] {
            assert_eq!(parse(v).unwrap().center, want);
        }
        for v in [serde_json::json!(false), serde_json::json!("none")] {
            assert!(!parse(v).unwrap().center);
        }
        let e = parse(serde_json::json!("biases")).unwrap_err().to_string();
        assert!(e.contains("center") && e.contains("biases"), "{e}");
    }

    fn randm(seed: u64, m: usize, n: usize) -> Mat<f64> {
        gaussian(&mut rng::rng(seed), m, n)
    }

    #[test]
    fn thin_qr_reconstructs_with_orthonormal_q_on_both_parallelism_paths() {
        // tall, wide and square; the last is above `SEQUENTIAL_BELOW`
        for (m, n) in [(100, 30), (7, 12), (1, 1), (160, 140)] {
            let y = randm(m as u64 + n as u64, m, n);
            let (q, r) = thin_qr(y.as_ref());
            let k = m.min(n);
            assert_eq!((q.nrows(), q.ncols(), r.nrows(), r.ncols()), (m, k, k, n));
            let qtq = mul(q.transpose(), q.as_ref());
            assert!((&qtq - Mat::<f64>::identity(k, k)).norm_l2() < 1e-13 * k as f64, "{m}x{n}: Q^T Q != I");
            assert!((&y - mul(q.as_ref(), r.as_ref())).norm_l2() < 1e-13 * y.norm_l2(), "{m}x{n}: QR != Y");
            assert!((0..k).all(|i| (0..i.min(n)).all(|j| r[(i, j)] == 0.0)), "{m}x{n}: R not upper");
            // the same subspace as faer's own QR
            let qf = y.qr().compute_thin_Q();
            let proj = mul(q.transpose(), qf.as_ref());
            let sv = thin_svd(proj.as_ref()).unwrap();
            assert!(sv.s.iter().all(|s| (s - 1.0).abs() < 1e-12), "{m}x{n}: {:?}", sv.s);
        }
        const { assert!(160 * 140 * 140 >= super::super::linop::SEQUENTIAL_BELOW) };
    }

    #[test]
    fn thin_svd_matches_faer_singular_values() {
        for (m, n) in [(30, 20), (5, 9), (150, 150)] {
            let a = randm(7, m, n);
            let ours = thin_svd(a.as_ref()).unwrap();
            let theirs = a.singular_values().unwrap();
            assert_eq!(ours.s.len(), theirs.len());
            for (x, y) in ours.s.iter().zip(&theirs) {
                assert!((x - y).abs() < 1e-12 * theirs[0], "{m}x{n}: {x} vs {y}");
            }
            let us = Mat::from_fn(m, ours.s.len(), |i, t| ours.u[(i, t)] * ours.s[t]);
            assert!((&a - mul(us.as_ref(), ours.v.transpose())).norm_l2() < 1e-12 * a.norm_l2());
        }
    }

    #[test]
    fn eckart_young_tail() {
        let a = randm(1, 30, 20);
        let full = thin_svd(a.as_ref()).unwrap();
        for k in [1, 5, 19, 20] {
            let t = truncated(&a, k).unwrap();
            let err = (&a - t.to_dense()).norm_l2();
            let tail: f64 = full.s[k..].iter().map(|s| s * s).sum::<f64>().sqrt();
            assert!((err - tail).abs() < 1e-10 * a.norm_l2(), "k={k}: {err} vs {tail}");
            // other rank-k matrices do worse (perturbed optimal factors)
            for seed in 0..5 {
                let mut p = t.clone();
                p.u += randm(seed, 30, k) * faer::Scale(1e-2);
                assert!((&a - p.to_dense()).norm_l2() >= err);
            }
        }
    }

    #[test]
    fn invalid_rank_rejected() {
        let a = randm(2, 4, 3);
        assert!(matches!(Svd::truncated(a.as_ref(), 0), Err(Error::InvalidInput(_))));
        assert!(matches!(Svd::truncated(a.as_ref(), 4), Err(Error::InvalidInput(_))));
        assert!(Svd::randomized(&a, 4, &RsvdOptions::default()).is_err());
        let mut nan = a.clone();
        nan[(0, 0)] = f64::NAN;
        assert!(Svd::truncated(nan.as_ref(), 1).is_err());
    }

    #[test]
    fn randomized_exact_on_low_rank_and_close_on_decaying_spectrum() {
        // exactly rank 6: the randomized SVD of rank 6 is exact
        let l = &randm(3, 80, 6) * randm(4, 50, 6).transpose();
        let r = Svd::randomized(&l, 6, &RsvdOptions { power_iters: 0, ..Default::default() }).unwrap();
        assert!((&l - r.to_dense()).norm_l2() < 1e-10 * l.norm_l2());
        // decaying spectrum: singular values within 1e-6 of the exact ones
        let q1 = orthonormalize(randm(5, 80, 50).as_ref());
        let q2 = orthonormalize(randm(6, 50, 50).as_ref());
        let d = Mat::from_fn(50, 50, |i, j| if i == j { 0.7f64.powi(i as i32) } else { 0.0 });
        let a = &q1 * &d * q2.transpose();
        let r = Svd::randomized(&a, 8, &RsvdOptions { power_iters: 4, ..Default::default() }).unwrap();
        for (t, s) in r.s.iter().enumerate() {
            assert!((s - 0.7f64.powi(t as i32)).abs() < 1e-6, "{t}: {s}");
        }
        // orthonormal factors
        let utu = r.u.transpose() * &r.u;
        assert!((utu - Mat::<f64>::identity(8, 8)).norm_max() < 1e-10);
    }

    #[test]
    fn svd_solver_on_ratings_matches_exact() {
        let p = crate::data::synth::planted_completion_rect(40, 30, 3, 600, 9).unwrap();
        let fit = |method: &str| {
            let s = SvdParams { rank: 3, method: method.into(), power_iters: 8, ..Default::default() }.check().unwrap();
            Executor::new(s, &p.observed).max_iters(5).run().unwrap()
        };
        let (a, b) = (fit("randomized"), fit("exact"));
        assert_eq!(a.iterations, 1);
        let (sa, sb) = (&a.history[0].vectors["singular_values"], &b.history[0].vectors["singular_values"]);
        for (x, y) in sa.iter().zip(sb) {
            assert!((x - y).abs() < 1e-6 * sb[0], "{x} vs {y}");
        }
        assert!((a.history[0].objective.unwrap() - b.history[0].objective.unwrap()).abs() < 1e-5 * sb[0] * sb[0]);
        assert!((a.model.global_mean - p.observed.mean()).abs() < 1e-12);
        assert!(SvdParams { rank: 31, ..Default::default() }.check().unwrap().decompose(&p.observed, 0).is_err());
    }

    #[test]
    #[ignore]
    fn timing_faer_svd() {
        for n in [100, 1000] {
            let a = randm(1, n, n);
            for _ in 0..3 {
                let t = std::time::Instant::now();
                let _ = thin_svd(a.as_ref()).unwrap();
                eprintln!("thin svd {n}x{n}: {:.4} s", t.elapsed().as_secs_f64());
                let t = std::time::Instant::now();
                let _ = a.self_adjoint_eigen(faer::Side::Lower).unwrap();
                eprintln!("evd {n}x{n}: {:.4} s", t.elapsed().as_secs_f64());
                let t = std::time::Instant::now();
                let _ = a.qr().compute_thin_Q();
                eprintln!("qr {n}x{n}: {:.4} s", t.elapsed().as_secs_f64());
            }
        }
    }
}
