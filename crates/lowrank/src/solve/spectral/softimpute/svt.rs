//! `svt`: singular value thresholding, Cai, Candes and Shen (2010),
//! equations (3.1)-(3.3) and section 5.1.
//!
//! With `M` the (centred) observed matrix, `Y^0 = k0 delta P_Omega(M)`,
//! `k0 = ceil(tau / (delta ||P_Omega(M)||_2))`, then for `k = 1, 2, ...`:
//!
//! - `X^k = D_tau(Y^{k-1})`: the singular triplets of `Y^{k-1}` above `tau`,
//!   shrunk by `tau`. `Y` is supported on `Omega`, so its partial SVD is a
//!   randomized SVD of a sparse operator, warm-started from `X^{k-1}`'s right
//!   singular vectors. Its size follows the paper: `s_k = r_{k-1} + 1`,
//!   increased by `rank_step` (the paper's `l = 5`) until a singular value
//!   `<= tau` is among those computed (or `rank`, the cap, is reached);
//! - stop when `||P_Omega(X^k - M)||_F / ||P_Omega(M)||_F <= tol`;
//! - `Y^k = Y^{k-1} + delta P_Omega(M - X^k)`.
//!
//! The iteration converges to the minimizer of `tau ||X||_* + 0.5
//! ||X||_F^2` subject to `P_Omega(X) = P_Omega(M)` (the paper's Theorem 4.2
//! for `0 < delta < 2`), which for large `tau` is the minimum-nuclear-norm
//! completion. Defaults: `tau = 5 sqrt(m n) sd(a)`, the paper's
//! `5 sqrt(m n)` in units of the standard deviation `sd(a)` of the fitted
//! entries, so that the default does not depend on the data's units (the
//! paper's test matrices, products of standard normal factors of rank `r`,
//! have `sd ~ sqrt(r)`: this threshold is `sqrt(r)` times theirs there);
//! the paper's `delta = 1.2 m n / |Omega|` (when it fails, as with few
//! observed entries, where it exceeds the theory's `delta < 2` by far: the
//! residual overshoots to twice the data's, or does not halve in 50
//! iterations, the run starts over with half the step, down to 1.9),
//! `tol = 1e-4`, `rank_step = 5`; no centring (the paper fits the raw
//! matrix). A checkpoint keeps the run's `tau` and `delta`.

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::{Center, LowRank, Offsets, Reader, SvdCfg, Writer, sigma_max, top_svd};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::spectral::linop::SparseOp;
use crate::solve::{IterState, Solver};

/// Settings understood by `svt`.
pub const KEYS: &[&str] =
    &["tau", "delta", "tol", "rank", "rank_step", "center", "bias_reg", "oversample", "power_iters"];

/// Default iteration limit of the registry runner.
pub const DEFAULT_EPOCHS: usize = 500;

/// A relative residual `||P_Omega(M - X)|| / ||P_Omega(M)||` above this is a
/// divergence (the step `delta` too large), reported as an error.
const DIVERGED_RESIDUAL: f64 = 1e4;

/// Settings of `svt`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvtParams {
    /// Threshold (default `5 sqrt(m n) sd(a)`, `sd(a)` the standard
    /// deviation of the fitted entries, or their root mean square when they
    /// are all equal: the paper's `5 sqrt(m n)` in the data's units).
    pub tau: Option<f64>,
    /// Step size (default `1.2 m n / |Omega|`, the paper's; when that
    /// overshoots (an observed residual twice the data's) or stalls (it
    /// does not halve in 50 iterations), the run starts over with half the
    /// step, down to 1.9, within the theory's `delta < 2`; a given `delta`
    /// is kept, and its divergence is an error).
    pub delta: Option<f64>,
    /// Stop when the relative residual on the observed entries is `<= tol`.
    pub tol: f64,
    /// Cap on the size of the partial SVD (default `min(m, n)`).
    pub rank: Option<usize>,
    /// Increment of the partial SVD's size.
    pub rank_step: usize,
    /// Centring before the fit.
    pub center: Center,
    /// Ridge penalty of the biases (`center = "biases"`).
    pub bias_reg: f64,
    /// Extra columns of the randomized SVD.
    pub oversample: usize,
    /// Power iterations of each randomized SVD.
    pub power_iters: usize,
}

impl Default for SvtParams {
    fn default() -> Self {
        SvtParams {
            tau: None,
            delta: None,
            tol: 1e-4,
            rank: None,
            rank_step: 5,
            center: Center::None,
            bias_reg: 5.0,
            oversample: 10,
            power_iters: 3,
        }
    }
}

impl SvtParams {
    /// Validate into a solver (the rank against the data in `init`).
    pub fn check(self) -> Result<Svt> {
        if let Some(t) = self.tau {
            ensure!(t > 0.0 && t.is_finite(), "tau must be > 0, got {t}");
        }
        if let Some(d) = self.delta {
            ensure!(d > 0.0 && d.is_finite(), "delta must be > 0, got {d}");
        }
        ensure!(self.tol > 0.0 && self.tol.is_finite(), "tol must be > 0, got {}", self.tol);
        if let Some(r) = self.rank {
            ensure!(r >= 1, "rank must be >= 1, got {r}");
        }
        ensure!(self.rank_step >= 1, "rank_step must be >= 1, got {}", self.rank_step);
        ensure!(self.bias_reg >= 0.0 && self.bias_reg.is_finite(), "bias_reg must be >= 0, got {}", self.bias_reg);
        Ok(Svt { params: self, st: None })
    }
}

#[derive(Clone, Debug)]
struct State {
    off: Offsets,
    /// `P_Omega(M)` (triplet order).
    y: Vec<f64>,
    norm_y: f64,
    /// `Y^k` on `Omega`.
    yk: Vec<f64>,
    /// `X^k` (`s` = shrunk singular values).
    x: LowRank,
    /// `||P_Omega(M)||_2` (the kicking start's scale).
    norm2: f64,
    /// The last `STALL_WINDOW` relative residuals since the (re)start.
    recent: std::collections::VecDeque<f64>,
    tau: f64,
    delta: f64,
    cap: usize,
    seed: u64,
}

/// The paper's kicking start `Y^0 = k0 delta P_Omega(M)`, `k0 = ceil(tau /
/// (delta ||P_Omega(M)||_2))`: the first iterates below the threshold are
/// skipped.
fn kicked_start(y: &[f64], norm2: f64, tau: f64, delta: f64) -> Vec<f64> {
    let k0 = if norm2 > 0.0 { (tau / (delta * norm2)).ceil() } else { 0.0 };
    y.iter().map(|&e| k0 * delta * e).collect()
}

/// The step a run with the default `delta` restarts with after diverging:
/// half the last one, and `SAFE_DELTA` (within the theory's `delta < 2`)
/// once that is below 2.
fn backed_off(delta: f64) -> f64 {
    if delta / 2.0 > SAFE_DELTA { delta / 2.0 } else { SAFE_DELTA }
}

/// A relative residual above this, twice that of the zero matrix, is an
/// overshoot of a default step above 2: such a step may oscillate at this
/// level for ever without growing (it is outside the theory's range), so
/// the run starts over with a smaller one.
const OVERSHOT_RESIDUAL: f64 = 2.0;

/// Iterations in which a default step above 2 must halve the residual (an
/// oscillating step neither converges nor grows).
const STALL_WINDOW: usize = 50;

/// The last step of the default's back-off (Theorem 4.2 needs `delta < 2`).
const SAFE_DELTA: f64 = 1.9;

/// The validated `svt` solver.
#[derive(Clone, Debug)]
pub struct Svt {
    params: SvtParams,
    st: Option<State>,
}

impl Svt {
    /// The current `X^k` (after `init`).
    pub fn iterate(&self) -> Option<&LowRank> {
        self.st.as_ref().map(|s| &s.x)
    }
}

impl Solver for Svt {
    type Data = Ratings;
    type Model = FactorModel;

    fn fixed_sizes(&self) -> bool {
        false // the rank follows the data (thresholded singular values)
    }

    fn name(&self) -> &'static str {
        "svt"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        ensure!(!data.is_empty(), "the training data has no entries");
        let (m, n) = data.shape();
        let cap = self.params.rank.unwrap_or(m.min(n));
        ensure!(cap >= 1 && cap <= m.min(n), "rank must be in 1..={} (min(m, n)), got {cap}", m.min(n));
        let off = Offsets::fit(data, self.params.center, self.params.bias_reg);
        let y = off.residuals(data);
        let seed = rng::uniform(rng).to_bits();
        let norm_y = y.iter().map(|e| e * e).sum::<f64>().sqrt();
        // the paper's 5 sqrt(m n) is for entries of spread ~1: scale it by
        // the entries' standard deviation, so that scaling the data by c
        // scales the whole iteration by c (D_{c tau}(c Y) = c D_tau(Y))
        let len = y.len() as f64;
        let mean = y.iter().sum::<f64>() / len;
        let sd = (y.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / len).sqrt();
        let rms = norm_y / len.sqrt();
        let size = if sd > 0.0 && sd.is_finite() {
            sd
        } else if rms > 0.0 && rms.is_finite() {
            rms
        } else {
            1.0
        };
        let tau = self.params.tau.unwrap_or(5.0 * ((m * n) as f64).sqrt() * size);
        let delta = self.params.delta.unwrap_or(1.2 * (m * n) as f64 / data.len() as f64);
        let norm2 = sigma_max(data, &y, seed)?;
        let yk = kicked_start(&y, norm2, tau, delta);
        let x = LowRank::zero(m, n);
        let model = x.model(&off);
        self.st = Some(State { off, y, norm_y, norm2, recent: Default::default(), yk, x, tau, delta, cap, seed });
        Ok(model)
    }

    fn step(&mut self, data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let cfg = SvdCfg { oversample: self.params.oversample, power_iters: self.params.power_iters };
        let (tol, inc) = (self.params.tol, self.params.rank_step);
        let st = self.st.as_mut().ok_or_else(|| Error::invalid("svt: step before init"))?;
        let op = SparseOp::with_values(data, &st.yk);
        let mut g = rng::stream(st.seed, state.iteration as u64);
        let mut sk = (st.x.rank() + 1).min(st.cap);
        let svd = loop {
            let warm: Option<Mat<f64>> = (st.x.rank() > 0).then(|| st.x.v.clone());
            let svd = top_svd(&op, warm.as_ref().map(|w| w.as_ref()), sk, cfg, &mut g)?;
            if sk >= st.cap || svd.s.last().is_none_or(|&s| s <= st.tau) {
                break svd;
            }
            sk = (sk + inc).min(st.cap);
        };
        let s: Vec<f64> = svd.s.iter().map(|&x| (x - st.tau).max(0.0)).collect();
        st.x = LowRank::keep_positive(svd.u.as_ref(), &s, svd.v.as_ref());
        let xv = st.x.at(data);
        let mut rsq = 0.0;
        for ((yk, &m), &x) in st.yk.iter_mut().zip(&st.y).zip(&xv) {
            let r = m - x;
            rsq += r * r;
            *yk += st.delta * r;
        }
        let rel = if st.norm_y > 0.0 { rsq.sqrt() / st.norm_y } else { rsq.sqrt() };
        // progress of a default step above 2: the residual halves within
        // `STALL_WINDOW` iterations, or the step is too large
        let stalled = st.recent.len() == STALL_WINDOW && st.recent.front().is_some_and(|&old| rel > 0.5 * old);
        st.recent.push_back(rel);
        if st.recent.len() > STALL_WINDOW {
            st.recent.pop_front();
        }
        if (rel > OVERSHOT_RESIDUAL || stalled) && self.params.delta.is_none() && st.delta > SAFE_DELTA {
            st.recent.clear();
            // the paper's default step overshoots (few entries observed, or
            // an uneven pattern): start over with a smaller one, down to the
            // theory's range
            st.delta = backed_off(st.delta);
            st.yk = kicked_start(&st.y, st.norm2, st.tau, st.delta);
            st.x = LowRank::zero(st.x.u.nrows(), st.x.v.nrows());
            let rec = &mut state.record;
            rec.values.insert("rel_residual".into(), 1.0);
            rec.values.insert("tau".into(), st.tau);
            rec.values.insert("delta".into(), st.delta);
            rec.values.insert("z_rank".into(), 0.0);
            rec.values.insert("restarted".into(), 1.0);
            rec.objective = Some(0.0);
            *model = st.x.model(&st.off);
            return Ok(());
        }
        // the iterates stay finite for a long time while the step overshoots:
        // a residual ten thousand times the data is a blow-up, not progress
        if rel > DIVERGED_RESIDUAL {
            return Err(Error::Numerical(format!(
                "svt diverged at iteration {}: the relative residual grew to {rel:.1e}; lower delta (now {:.3}; the \
                 default 1.2 m n / |Omega| exceeds the theory's delta < 2 when few entries are observed), or \
                 raise tau (now {:.3e}; default 5 sqrt(m n) sd(a))",
                state.iteration + 1,
                st.delta,
                st.tau
            )));
        }
        let nuc: f64 = st.x.s.iter().sum();
        let fro: f64 = st.x.s.iter().map(|x| x * x).sum();
        let rec = &mut state.record;
        rec.objective = Some(st.tau * nuc + 0.5 * fro);
        rec.values.insert("rel_residual".into(), rel);
        rec.values.insert("tau".into(), st.tau);
        rec.values.insert("delta".into(), st.delta);
        rec.values.insert("z_rank".into(), st.x.rank() as f64);
        rec.values.insert("svd_size".into(), sk as f64);
        rec.vectors.insert("singular_values".into(), st.x.s.clone());
        state.converged = rel <= tol;
        *model = st.x.model(&st.off);
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        "lower delta (the step; the theory asks for delta < 2), or check tau (the threshold; default 5 sqrt(m n) \
         sd(a))"
            .into()
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        let st = self.st.as_ref().ok_or_else(|| Error::invalid("svt: no state to save"))?;
        let mut w = Writer::default();
        w.u64(st.seed);
        w.vec(&st.yk);
        st.x.write(&mut w);
        // the threshold and step the run was made with (the defaults
        // depend on the data and on the version that chose them)
        w.f64(st.tau);
        w.f64(st.delta);
        Ok(w.0)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let st = self.st.as_mut().ok_or_else(|| Error::invalid("svt: load_state before init"))?;
        let mut r = Reader::new(bytes, "svt");
        let seed = r.u64()?;
        let yk = r.vec()?;
        ensure!(yk.len() == st.y.len(), "svt: the checkpoint is for a different problem");
        let x = LowRank::read(&mut r, st.x.u.nrows(), st.x.v.nrows())?;
        // a tau or delta given now takes effect; otherwise the run goes on
        // with the checkpoint's (a state without them was written when the
        // default tau was 5 sqrt(m n) and the default delta the current one)
        let (saved_tau, saved_delta) = if r.at_end() {
            let (m, n) = (st.x.u.nrows(), st.x.v.nrows());
            (5.0 * ((m * n) as f64).sqrt(), st.delta)
        } else {
            (r.f64()?, r.f64()?)
        };
        r.done()?;
        ensure!(
            saved_tau > 0.0 && saved_tau.is_finite() && saved_delta > 0.0 && saved_delta.is_finite(),
            "svt: the checkpoint's solver state is damaged"
        );
        if self.params.tau.is_none() {
            st.tau = saved_tau;
        }
        if self.params.delta.is_none() {
            st.delta = saved_delta;
        }
        st.seed = seed;
        st.yk = yk;
        st.x = x;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::planted_completion;
    use crate::solve::IterState;

    #[test]
    fn a_checkpoint_keeps_tau_and_delta_and_an_older_one_gets_the_old_default() {
        let data = planted_completion(20, 2, 200, 3).unwrap().observed;
        let started = |p: SvtParams| {
            let mut s = p.check().unwrap();
            let mut model = s.init(&data, &mut rng::rng(1)).unwrap();
            s.step(&data, &mut model, &mut IterState::default()).unwrap();
            s
        };
        let a = started(SvtParams { tau: Some(123.0), delta: Some(1.5), ..Default::default() });
        let bytes = a.save_state().unwrap();
        // resumed with default settings: the checkpoint's values
        let mut b = started(SvtParams::default());
        b.load_state(&bytes).unwrap();
        let st = b.st.as_ref().unwrap();
        assert_eq!((st.tau, st.delta), (123.0, 1.5));
        // a tau given on resume takes effect
        let mut c = started(SvtParams { tau: Some(77.0), ..Default::default() });
        c.load_state(&bytes).unwrap();
        assert_eq!(c.st.as_ref().unwrap().tau, 77.0);
        // the state of earlier versions (no tau, delta): their default tau
        let mut d = started(SvtParams::default());
        let delta_now = d.st.as_ref().unwrap().delta;
        d.load_state(&bytes[..bytes.len() - 16]).unwrap();
        let st = d.st.as_ref().unwrap();
        assert_eq!((st.tau, st.delta), (5.0 * 20.0, delta_now));
        // a damaged trailing field is refused
        assert!(started(SvtParams::default()).load_state(&bytes[..bytes.len() - 8]).is_err());
    }
}
