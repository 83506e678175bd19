//! Pieces shared by `deep` and `deep-svd`: the training target (observed
//! entries or Gaussian measurements), the optimizer choice, spectral
//! statistics and the periodic ("dev") record.

use std::sync::Arc;

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::kernels::{self, Observed};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::observe::Record;
use crate::optim::{Method, Optimizer};
use crate::rng;
use crate::solve::registry::TestSet;

/// The optimizer of a deep factorization (the research code's `optimizer`
/// flag: `GroupRMSprop`, `SGD` (full-batch gradient descent), `Adam`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Group RMSprop (one global second moment, `alpha = 0.99`), the
    /// research code's default, with `eps = 1e-4` as it constructs it.
    #[serde(alias = "GroupRMSprop", alias = "grouprmsprop", alias = "group_rms_prop", rename = "group_rmsprop")]
    GroupRmsProp,
    /// Plain full-batch gradient descent (PyTorch `SGD` without momentum).
    #[serde(alias = "SGD", alias = "gd", alias = "GD", rename = "sgd")]
    Sgd,
    /// Adam (PyTorch defaults: `0.9`, `0.999`, `eps = 1e-8`).
    #[serde(alias = "Adam", rename = "adam")]
    Adam,
}

impl OptimizerKind {
    /// The optimizer for blocks of the given sizes; `eps` overrides the
    /// method's default (`1e-4` for group RMSprop, `1e-8` for Adam).
    pub fn build(self, lr: f64, eps: Option<f64>, sizes: &[usize]) -> Result<Optimizer> {
        let method = match self {
            OptimizerKind::GroupRmsProp => Method::GroupRmsProp { alpha: 0.99, eps: eps.unwrap_or(1e-4) },
            OptimizerKind::Sgd => Method::Sgd,
            OptimizerKind::Adam => Method::Adam { beta1: 0.9, beta2: 0.999, eps: eps.unwrap_or(1e-8) },
        };
        Optimizer::new(method, lr, sizes)
    }
}

/// Validate the optimizer settings shared by both algorithms.
pub(crate) fn check_optimizer(kind: OptimizerKind, lr: f64, eps: Option<f64>) -> Result<()> {
    ensure!(lr > 0.0 && lr.is_finite(), "lr must be > 0, got {lr}");
    if let Some(e) = eps {
        ensure!(e > 0.0 && e.is_finite(), "eps must be > 0, got {e}");
        ensure!(kind != OptimizerKind::Sgd, "eps has no meaning for the sgd optimizer");
    }
    Ok(())
}

/// Gaussian matrix sensing (the research code's `gen_obs.py`,
/// `problem = "matrix-sensing"`): `K` measurement matrices `A_k` with i.i.d.
/// `N(0, 1/(m n))` entries (`randn(n, n) / n` for the square case) and
/// measurements `y_k = <A_k, W*>`.
#[derive(Clone, Debug)]
pub struct Sensing {
    m: usize,
    n: usize,
    /// `K x (m n)`: row `k` is `vec(A_k)` (column-major).
    a: Mat<f64>,
    y: Vec<f64>,
    /// Dense `dL/dE` (`m x n`, column-major).
    g: Vec<f64>,
}

impl Sensing {
    /// Draw `count` Gaussian measurements of `truth` from `seed`.
    pub fn gaussian(truth: &Mat<f64>, count: usize, seed: u64) -> Result<Sensing> {
        let (m, n) = (truth.nrows(), truth.ncols());
        ensure!(count >= 1, "the number of measurements must be >= 1");
        ensure!(
            count.checked_mul(m * n).is_some_and(|t| t <= 200_000_000),
            "{count} dense {m}x{n} measurement matrices would not fit in memory"
        );
        let sd = 1.0 / ((m * n) as f64).sqrt();
        // one stream per measurement: independent of the thread count
        let mut a = Mat::zeros(count, m * n);
        for k in 0..count {
            let mut g = rng::stream(seed, 0x5E45_0000 + k as u64);
            for t in 0..m * n {
                a[(k, t)] = rng::normal(&mut g) * sd;
            }
        }
        let w = kernels::to_buf(truth.as_ref());
        let mut y = vec![0.0; count];
        kernels::mul_into(&mut y, a.as_ref(), kernels::view(&w, m * n, 1));
        Ok(Sensing { m, n, a, y, g: vec![0.0; m * n] })
    }

    /// Number of measurements.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there are no measurements.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Mean squared measurement error of the dense `e`; stores `dL/dE`.
    fn loss(&mut self, e: &[f64]) -> f64 {
        let k = self.y.len();
        let mut pred = vec![0.0; k];
        kernels::mul_into(&mut pred, self.a.as_ref(), kernels::view(e, self.m * self.n, 1));
        let mut s = 0.0;
        for (p, y) in pred.iter_mut().zip(&self.y) {
            *p -= y;
            s += *p * *p;
            *p *= 2.0 / k as f64;
        }
        kernels::mul_into(&mut self.g, self.a.transpose(), kernels::view(&pred, k, 1));
        s / k as f64
    }
}

/// What the factorization is fitted to.
#[derive(Clone, Debug)]
pub enum Target {
    /// Matrix completion: the observed entries.
    Completion(Observed),
    /// Matrix sensing: Gaussian linear measurements.
    Sensing(Sensing),
}

impl Target {
    /// Shape of the end-to-end matrix.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Target::Completion(o) => (o.m, o.n),
            Target::Sensing(s) => (s.m, s.n),
        }
    }

    /// Whether the loss needs a dense `m x n` scratch buffer (sensing).
    pub fn needs_dense(&self) -> bool {
        matches!(self, Target::Sensing(_))
    }

    /// Loss of `E = F R` given `ft = Fᵀ` (`p x m`) and `r` (`p x n`); stores
    /// `dL/dE` and writes `(G Rᵀ)ᵀ` (`p x m`, the first factor's gradient in
    /// its row-major layout) to `out`. `dense` is an `m x n` scratch buffer
    /// (sensing only; may be empty for completion).
    pub fn loss_first(&mut self, ft: &[f64], r: &[f64], p: usize, out: &mut [f64], dense: &mut [f64]) -> f64 {
        match self {
            Target::Completion(o) => o.loss_first(ft, r, p, out),
            Target::Sensing(s) => {
                let (m, n) = (s.m, s.n);
                kernels::mul_into(dense, kernels::view(ft, p, m).transpose(), kernels::view(r, p, n));
                let loss = s.loss(dense);
                kernels::mul_into(out, kernels::view(r, p, n), kernels::view(&s.g, m, n).transpose());
                loss
            }
        }
    }

    /// Loss of the `m x n` iterate `e` itself.
    pub fn loss_direct(&mut self, e: &[f64]) -> f64 {
        match self {
            Target::Completion(o) => o.loss_direct(e),
            Target::Sensing(s) => s.loss(e),
        }
    }

    /// `dL/dE` as a dense `m x n` column-major buffer.
    pub fn grad_dense(&self, out: &mut [f64]) {
        match self {
            Target::Completion(o) => o.grad_dense(out),
            Target::Sensing(s) => out.copy_from_slice(&s.g),
        }
    }

    /// `(G Bᵀ)ᵀ = B Gᵀ` (`p x m`) for `b` (`p x n`).
    pub fn b_gt(&self, b: &[f64], p: usize, out: &mut [f64]) {
        match self {
            Target::Completion(o) => o.b_gt(b, p, out),
            Target::Sensing(s) => {
                kernels::mul_into(out, kernels::view(b, p, s.n), kernels::view(&s.g, s.m, s.n).transpose())
            }
        }
    }

    /// `Aᵀ G` (`p x n`) for `at = Aᵀ` (`p x m`).
    pub fn at_g(&self, at: &[f64], p: usize, out: &mut [f64]) {
        match self {
            Target::Completion(o) => o.at_g(at, p, out),
            Target::Sensing(s) => kernels::mul_into(out, kernels::view(at, p, s.m), kernels::view(&s.g, s.m, s.n)),
        }
    }
}

/// Singular-value statistics of the end-to-end matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrum {
    /// Singular values, non-increasing.
    pub s: Vec<f64>,
}

impl Spectrum {
    /// The singular values of `e`.
    pub fn of(e: &Mat<f64>) -> Result<Spectrum> {
        let mut s =
            e.singular_values().map_err(|err| Error::Numerical(format!("the SVD did not converge ({err:?})")))?;
        s.sort_by(|a, b| b.total_cmp(a));
        Ok(Spectrum { s })
    }

    /// The research code's "Schatten norm" `sum_i sigma_i^(2/N)`: the
    /// Schatten-`2/N` quasi-norm raised to the power `2/N` (the quantity that
    /// depth-`N` gradient flow is conjectured to minimize), without the outer
    /// root, exactly as `main.py` logs it.
    pub fn schatten(&self, depth: usize) -> f64 {
        let q = 2.0 / depth as f64;
        self.s.iter().map(|&x| x.max(0.0).powf(q)).sum()
    }

    /// Effective rank of Roy and Vetterli (2007): `exp(H(p))` with
    /// `p_i = sigma_i / sum_j sigma_j` and the Shannon entropy `H` (natural
    /// log, `0 ln 0 = 0`). Between 1 and the number of singular values; 0 for
    /// the zero matrix.
    pub fn effective_rank(&self) -> f64 {
        let total: f64 = self.s.iter().map(|x| x.max(0.0)).sum();
        if total <= 0.0 || !total.is_finite() {
            return 0.0;
        }
        let h: f64 = self.s.iter().map(|&x| x.max(0.0) / total).filter(|&p| p > 0.0).map(|p| -p * p.ln()).sum();
        h.exp()
    }
}

/// Evaluation data of the periodic record.
#[derive(Clone, Default)]
pub struct DevEval {
    /// Dense ground truth (`test_loss`, `rel_error`).
    pub truth: Option<Arc<Mat<f64>>>,
    /// Held-out ratings (`test_rmse`, `test_mae`).
    pub test: Option<Arc<TestSet>>,
    /// Clip predictions of the test set to this range.
    pub clip: Option<(f64, f64)>,
    /// Number of top singular values saved in the record.
    pub n_singulars_save: usize,
}

impl DevEval {
    /// Add the dev values of the end-to-end matrix `e` to `rec`: `test_loss`
    /// (MSE over all entries vs the truth), `rel_error`, `test_rmse`,
    /// `test_mae`, `schatten`, `effective_rank`, `nuclear_norm`, and the
    /// vector `singular_values` (top `n_singulars_save`).
    pub fn record(&self, e: &Mat<f64>, depth: usize, rec: &mut Record) -> Result<()> {
        self.record_with(e, depth, rec, true)
    }

    /// [`DevEval::record`] for the periodic records: the spectral values
    /// (one SVD of the end-to-end matrix, by far the most expensive part of a
    /// record) only when `n_singulars_save > 0`.
    pub fn record_periodic(&self, e: &Mat<f64>, depth: usize, rec: &mut Record) -> Result<()> {
        self.record_with(e, depth, rec, self.n_singulars_save > 0)
    }

    fn record_with(&self, e: &Mat<f64>, depth: usize, rec: &mut Record, spectrum: bool) -> Result<()> {
        if e.col_iter().any(|c| c.iter().any(|x| !x.is_finite())) {
            // finite factors whose product overflows: record the
            // (non-finite) norm, which the executor reports as divergence,
            // instead of failing in the SVD
            rec.values.insert("end_to_end_norm".into(), e.norm_l2());
            return Ok(());
        }
        if let Some(w) = &self.truth {
            let (mse, wsq) = diff_sq(e, w);
            rec.values.insert("test_loss".into(), mse / (w.nrows() * w.ncols()) as f64);
            rec.values.insert("rel_error".into(), (mse / wsq).sqrt());
        }
        if let Some(t) = &self.test {
            let (r, a) = t.evaluate(e, self.clip);
            rec.values.insert("test_rmse".into(), r);
            rec.values.insert("test_mae".into(), a);
        }
        if !spectrum {
            return Ok(());
        }
        let sp = Spectrum::of(e)?;
        rec.values.insert("schatten".into(), sp.schatten(depth));
        rec.values.insert("effective_rank".into(), sp.effective_rank());
        rec.values.insert("nuclear_norm".into(), sp.s.iter().sum());
        if self.n_singulars_save > 0 {
            rec.vectors.insert("singular_values".into(), sp.s.iter().take(self.n_singulars_save).copied().collect());
        }
        Ok(())
    }
}

/// `(||e − w||_F², ||w||_F²)` for matrices of the same shape, column by
/// column in 4 interleaved partial sums (a fixed order: deterministic).
fn diff_sq(e: &Mat<f64>, w: &Mat<f64>) -> (f64, f64) {
    let (mut d, mut n) = ([0.0f64; 4], [0.0f64; 4]);
    for j in 0..w.ncols() {
        for i in 0..w.nrows() {
            let (x, y) = (e[(i, j)], w[(i, j)]);
            d[i % 4] += (x - y) * (x - y);
            n[i % 4] += y * y;
        }
    }
    ((d[0] + d[1]) + (d[2] + d[3]), (n[0] + n[1]) + (n[2] + n[3]))
}

/// Build the training target: the observed entries, or `measurements`
/// Gaussian measurements of the truth.
pub(crate) fn make_target(train: &Ratings, truth: Option<&Mat<f64>>, measurements: usize, seed: u64) -> Result<Target> {
    if measurements == 0 {
        ensure!(!train.is_empty(), "the training data has no entries");
        return Ok(Target::Completion(Observed::new(train)));
    }
    let w = truth.ok_or_else(|| {
        Error::invalid("matrix sensing (measurements > 0) needs a ground truth: a planted problem or --truth FILE")
    })?;
    Ok(Target::Sensing(Sensing::gaussian(w, measurements, seed)?))
}

/// Read exact f64s from a checkpoint byte stream.
pub(crate) struct Bytes<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
}

impl Bytes<'_> {
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let s = self.b.get(self.pos..self.pos + 8).ok_or_else(|| Error::invalid("truncated deep model bytes"))?;
        self.pos += 8;
        Ok(u64::from_le_bytes(s.try_into().expect("8 bytes")))
    }
    pub(crate) fn f64s(&mut self, n: usize) -> Result<Vec<f64>> {
        ensure!(n.checked_mul(8).is_some_and(|b| self.pos + b <= self.b.len()), "truncated deep model bytes");
        (0..n).map(|_| self.u64().map(f64::from_bits)).collect()
    }
}

/// Append u64s and f64s (bit-exact) to a byte buffer.
pub(crate) fn put_u64(w: &mut Vec<u8>, x: u64) {
    w.extend_from_slice(&x.to_le_bytes());
}

/// Append f64s bit-exactly.
pub(crate) fn put_f64s(w: &mut Vec<u8>, xs: &[f64]) {
    for x in xs {
        w.extend_from_slice(&x.to_bits().to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_rank_and_schatten_by_hand() {
        // equal singular values: effective rank = their number
        let sp = Spectrum { s: vec![2.0, 2.0, 2.0, 0.0] };
        assert!((sp.effective_rank() - 3.0).abs() < 1e-12);
        // p = (3/4, 1/4): H = -(0.75 ln 0.75 + 0.25 ln 0.25)
        let sp = Spectrum { s: vec![3.0, 1.0] };
        let h: f64 = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        assert!((sp.effective_rank() - h.exp()).abs() < 1e-12);
        // depth 2: sum of sigma^1 = nuclear norm; depth 1: squared Frobenius
        assert!((sp.schatten(2) - 4.0).abs() < 1e-12);
        assert!((sp.schatten(1) - 10.0).abs() < 1e-12);
        assert_eq!(Spectrum { s: vec![0.0, 0.0] }.effective_rank(), 0.0);
    }

    #[test]
    fn sensing_measures_the_truth() {
        // y_k = <A_k, W>: the loss of the truth is 0, and E[y^2] = ||W||^2/(mn)
        let w = Mat::from_fn(6, 5, |i, j| (i as f64 - 2.0) * (j as f64 + 1.0) * 0.3);
        let mut s = Sensing::gaussian(&w, 400, 3).unwrap();
        let wb = kernels::to_buf(w.as_ref());
        assert!(s.loss(&wb) < 1e-24);
        let ms: f64 = s.y.iter().map(|y| y * y).sum::<f64>() / 400.0;
        let want = w.norm_l2().powi(2) / 30.0;
        // 400 chi-square(1) samples: relative sd sqrt(2/400) ~ 0.07
        assert!((ms / want - 1.0).abs() < 0.3, "{ms} vs {want}");
        assert!(Sensing::gaussian(&w, 0, 3).is_err());
    }
}
