//! First-order optimizers over flat `f64` parameter blocks.
//!
//! An [`Optimizer`] owns the per-block state (moments, running sums) of a
//! list of parameter blocks (e.g. `[U, V]`, or the layers of a deep
//! factorization) and updates them in place from their gradients:
//!
//! ```
//! use lowrank::optim::{Method, Optimizer};
//!
//! // minimize (x - 3)^2 + (y + 1)^2 with Adam
//! let mut opt = Optimizer::new(Method::adam(), 0.1, &[2])?;
//! let mut x = vec![0.0, 0.0];
//! for _ in 0..2000 {
//!     let g = vec![2.0 * (x[0] - 3.0), 2.0 * (x[1] + 1.0)];
//!     opt.step(&mut [&mut x[..]], &[&g[..]])?;
//! }
//! assert!((x[0] - 3.0).abs() < 1e-3 && (x[1] + 1.0).abs() < 1e-3);
//! # Ok::<(), lowrank::Error>(())
//! ```
//!
//! The update rules (`g` the gradient, `t` the 1-based step count, all
//! operations elementwise):
//!
//! | method | state | update |
//! |---|---|---|
//! | [`Method::Sgd`] | none | `p -= lr g` |
//! | [`Method::Momentum`] | `b` | `b = beta b + g`; `p -= lr b`, or `p -= lr (g + beta b)` with Nesterov (PyTorch `SGD(momentum, nesterov)`) |
//! | [`Method::Adagrad`] | `s` | `s = s + eps + g^2`; `p -= lr g / sqrt(s)` (the Adagrad blog post, seed 004: `eps` is added to the running sum at every step) |
//! | [`Method::RmsProp`] | `v` | `v = alpha v + (1 - alpha) g^2`; `p -= lr g / (sqrt(v) + eps)` (PyTorch `RMSprop`) |
//! | [`Method::GroupRmsProp`] | one scalar `a` for all blocks | `a = alpha a + (1 - alpha) sum_all g^2`; `lr_t = lr / (sqrt(a / (1 - alpha^t)) + eps)`; `p -= lr_t g` |
//! | [`Method::Adam`] | `m`, `v` | `m = b1 m + (1 - b1) g`; `v = b2 v + (1 - b2) g^2`; `p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)` (PyTorch `Adam`) |
//!
//! `GroupRmsProp` is the optimizer of the deep matrix factorization research
//! code (Arora, Cohen, Hu, Luo 2019, `opt.py` of `deep_matrix_factorization`,
//! seed 001): the second moment is one number, the exponential average of the
//! squared gradient norm summed over *all* parameters (not a mean), with bias
//! correction, and `eps` is added after the square root. The research code
//! constructs it with `alpha = 0.99`, `eps = 1e-4` ([`Method::group_rms_prop`]).
//!
//! The effective per-parameter learning rate of the last step (what the blog
//! draws as heatmaps) is [`Optimizer::effective_lr`]; before the first step it
//! is the base rate. The state is serializable with serde, and exactly (bit for
//! bit) with [`Optimizer::to_bytes`] / [`Optimizer::from_bytes`] for
//! checkpoints.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ensure};

/// Blocks at least this long are updated in parallel (elementwise, so the
/// result does not depend on the thread count).
const PAR_MIN: usize = 1 << 14;
/// Fixed chunk length of deterministic parallel reductions.
const CHUNK: usize = 1 << 12;

/// The update rule and its hyperparameters (the learning rate is separate, so
/// schedules can change it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Method {
    /// Plain gradient descent.
    Sgd,
    /// Heavy-ball momentum, optionally Nesterov (PyTorch semantics,
    /// dampening 0).
    Momentum {
        /// Momentum coefficient in `[0, 1)` (common default 0.9).
        beta: f64,
        /// Use the Nesterov look-ahead form.
        nesterov: bool,
    },
    /// Adagrad as in the blog post (seed 004): running sum of `eps + g^2`.
    Adagrad {
        /// Added to the running sum at every step (blog: 1e-8).
        eps: f64,
    },
    /// RMSprop (PyTorch semantics: `eps` outside the square root).
    RmsProp {
        /// Decay of the second moment (PyTorch: 0.99).
        alpha: f64,
        /// Added to the root (PyTorch: 1e-8).
        eps: f64,
    },
    /// Group RMSprop of the deep matrix factorization code: one global,
    /// bias-corrected second moment over all blocks.
    GroupRmsProp {
        /// Decay of the global second moment (research code: 0.99).
        alpha: f64,
        /// Added to the root (research code: 1e-4).
        eps: f64,
    },
    /// Adam with bias correction (PyTorch semantics).
    Adam {
        /// First-moment decay (0.9).
        beta1: f64,
        /// Second-moment decay (0.999).
        beta2: f64,
        /// Added to the root (1e-8).
        eps: f64,
    },
}

impl Method {
    /// Momentum 0.9, not Nesterov.
    pub fn momentum() -> Method {
        Method::Momentum { beta: 0.9, nesterov: false }
    }
    /// Nesterov momentum 0.9.
    pub fn nesterov() -> Method {
        Method::Momentum { beta: 0.9, nesterov: true }
    }
    /// Adagrad with the blog's `eps = 1e-8`.
    pub fn adagrad() -> Method {
        Method::Adagrad { eps: 1e-8 }
    }
    /// RMSprop with PyTorch's defaults (`alpha = 0.99`, `eps = 1e-8`).
    pub fn rms_prop() -> Method {
        Method::RmsProp { alpha: 0.99, eps: 1e-8 }
    }
    /// Group RMSprop as the research code runs it (`alpha = 0.99`,
    /// `eps = 1e-4`).
    pub fn group_rms_prop() -> Method {
        Method::GroupRmsProp { alpha: 0.99, eps: 1e-4 }
    }
    /// Adam with the usual defaults (`0.9`, `0.999`, `1e-8`).
    pub fn adam() -> Method {
        Method::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// The method by name (`sgd`, `momentum`, `nesterov`, `adagrad`,
    /// `rmsprop`, `group_rmsprop`, `adam`) with its default hyperparameters.
    pub fn by_name(name: &str) -> Result<Method> {
        Ok(match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "sgd" | "gd" => Method::Sgd,
            "momentum" => Method::momentum(),
            "nesterov" => Method::nesterov(),
            "adagrad" => Method::adagrad(),
            "rmsprop" | "rms_prop" => Method::rms_prop(),
            "group_rmsprop" | "grouprmsprop" | "group_rms_prop" => Method::group_rms_prop(),
            "adam" => Method::adam(),
            other => {
                return Err(Error::Config(format!(
                    "unknown optimizer '{other}'{}; known: {}",
                    crate::solve::registry::did_you_mean(other, Self::NAMES),
                    Self::NAMES.join(", ")
                )));
            }
        })
    }

    /// Names accepted by [`Method::by_name`].
    pub const NAMES: &'static [&'static str] =
        &["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "group_rmsprop", "adam"];

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Sgd => "sgd",
            Method::Momentum { nesterov: false, .. } => "momentum",
            Method::Momentum { nesterov: true, .. } => "nesterov",
            Method::Adagrad { .. } => "adagrad",
            Method::RmsProp { .. } => "rmsprop",
            Method::GroupRmsProp { .. } => "group_rmsprop",
            Method::Adam { .. } => "adam",
        }
    }

    /// Check the hyperparameters.
    pub fn check(&self) -> Result<()> {
        let unit = |x: f64| (0.0..1.0).contains(&x);
        let pos = |x: f64| x > 0.0 && x.is_finite();
        match *self {
            Method::Sgd => {}
            Method::Momentum { beta, .. } => ensure!(unit(beta), "momentum must be in [0, 1), got {beta}"),
            Method::Adagrad { eps } => ensure!(eps >= 0.0 && eps.is_finite(), "adagrad eps must be >= 0, got {eps}"),
            Method::RmsProp { alpha, eps } | Method::GroupRmsProp { alpha, eps } => {
                ensure!(unit(alpha), "{} alpha must be in [0, 1), got {alpha}", self.name());
                ensure!(pos(eps), "{} eps must be > 0, got {eps}", self.name());
            }
            Method::Adam { beta1, beta2, eps } => {
                ensure!(unit(beta1), "adam beta1 must be in [0, 1), got {beta1}");
                ensure!(unit(beta2), "adam beta2 must be in [0, 1), got {beta2}");
                ensure!(pos(eps), "adam eps must be > 0, got {eps}");
            }
        }
        Ok(())
    }

    /// Number of state vectors per block.
    fn slots(&self) -> usize {
        match self {
            Method::Sgd | Method::GroupRmsProp { .. } => 0,
            Method::Momentum { .. } | Method::Adagrad { .. } | Method::RmsProp { .. } => 1,
            Method::Adam { .. } => 2,
        }
    }
}

/// An optimizer with its state for a fixed list of parameter blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    method: Method,
    lr: f64,
    /// Steps taken.
    t: u64,
    /// Block lengths.
    sizes: Vec<usize>,
    /// Per block, `method.slots()` state vectors of the block's length.
    state: Vec<Vec<Vec<f64>>>,
    /// GroupRmsProp's global second moment.
    group_sq: f64,
    /// GroupRmsProp's effective learning rate of the last step.
    group_lr: f64,
}

impl Optimizer {
    /// An optimizer for blocks of the given lengths. Fails on a non-positive
    /// or non-finite learning rate or bad hyperparameters.
    pub fn new(method: Method, lr: f64, sizes: &[usize]) -> Result<Optimizer> {
        ensure!(lr > 0.0 && lr.is_finite(), "the learning rate must be > 0, got {lr}");
        method.check()?;
        let slots = method.slots();
        let state = sizes.iter().map(|&n| (0..slots).map(|_| vec![0.0; n]).collect()).collect();
        Ok(Optimizer { method, lr, t: 0, sizes: sizes.to_vec(), state, group_sq: 0.0, group_lr: lr })
    }

    /// The update rule.
    pub fn method(&self) -> &Method {
        &self.method
    }
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }
    /// Change the base learning rate (schedules); must be > 0.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        ensure!(lr > 0.0 && lr.is_finite(), "the learning rate must be > 0, got {lr}");
        self.lr = lr;
        Ok(())
    }
    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }
    /// Lengths of the blocks.
    pub fn block_sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// One update of every block: `params[b] -= rate * direction(grads[b])`.
    /// Fails (before changing anything) when the number or lengths of the
    /// blocks do not match the optimizer's.
    pub fn step(&mut self, params: &mut [&mut [f64]], grads: &[&[f64]]) -> Result<()> {
        ensure!(
            params.len() == self.sizes.len() && grads.len() == self.sizes.len(),
            "the optimizer has {} parameter blocks, got {} parameters and {} gradients",
            self.sizes.len(),
            params.len(),
            grads.len()
        );
        for (b, &n) in self.sizes.iter().enumerate() {
            ensure!(
                params[b].len() == n && grads[b].len() == n,
                "block {b} has length {n}, got a parameter of length {} and a gradient of length {}",
                params[b].len(),
                grads[b].len()
            );
        }
        self.t += 1;
        let t = self.t as f64;
        let lr = self.lr;
        if let Method::GroupRmsProp { alpha, eps } = self.method {
            let sq: f64 = grads.iter().map(|g| sum_sq(g)).sum();
            self.group_sq = alpha * self.group_sq + (1.0 - alpha) * sq;
            let avg = (self.group_sq / (1.0 - alpha.powf(t))).sqrt() + eps;
            self.group_lr = lr / avg;
        }
        let group_lr = self.group_lr;
        for (b, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let st = &mut self.state[b];
            let p: &mut [f64] = p;
            match self.method {
                Method::Sgd => zip_apply(p, g, |p, g| *p -= lr * g),
                Method::GroupRmsProp { .. } => zip_apply(p, g, |p, g| *p -= group_lr * g),
                Method::Momentum { beta, nesterov } => zip_apply1(p, g, &mut st[0], |p, g, buf| {
                    *buf = beta * *buf + g;
                    *p -= lr * if nesterov { g + beta * *buf } else { *buf };
                }),
                Method::Adagrad { eps } => zip_apply1(p, g, &mut st[0], |p, g, s| {
                    *s += eps + g * g;
                    // s > 0 unless g == 0 on every step so far with eps == 0
                    if *s > 0.0 {
                        *p -= lr * g / s.sqrt();
                    }
                }),
                Method::RmsProp { alpha, eps } => zip_apply1(p, g, &mut st[0], |p, g, v| {
                    *v = alpha * *v + (1.0 - alpha) * g * g;
                    *p -= lr * g / (v.sqrt() + eps);
                }),
                Method::Adam { beta1, beta2, eps } => {
                    let (bc1, bc2) = (1.0 - beta1.powf(t), (1.0 - beta2.powf(t)).sqrt());
                    let (m, v) = st.split_at_mut(1);
                    zip_apply2(p, g, &mut m[0], &mut v[0], |p, g, m, v| {
                        *m = beta1 * *m + (1.0 - beta1) * g;
                        *v = beta2 * *v + (1.0 - beta2) * g * g;
                        *p -= (lr / bc1) * *m / (v.sqrt() / bc2 + eps);
                    });
                }
            }
        }
        Ok(())
    }

    /// For the methods whose update is one rate times the gradient
    /// ([`Method::Sgd`], [`Method::GroupRmsProp`]): do a step's bookkeeping
    /// (step count; group RMSprop's second moment from `sum_sq_all`, the sum
    /// of squares of all gradients, called only by group RMSprop) and return
    /// the rate `r`, leaving the update `p -= r g` of every parameter to the
    /// caller (who may split it across threads). Applying `*p -= r * g` to
    /// every parameter then gives exactly what [`Optimizer::step`] gives when
    /// `sum_sq_all` returns `sum` over blocks (in order) of [`sum_sq`].
    /// Returns `None`, changing nothing, for the other methods.
    pub fn begin_uniform_step(&mut self, sum_sq_all: impl FnOnce() -> f64) -> Option<f64> {
        match self.method {
            Method::Sgd => {
                self.t += 1;
                Some(self.lr)
            }
            Method::GroupRmsProp { alpha, eps } => {
                self.t += 1;
                let t = self.t as f64;
                self.group_sq = alpha * self.group_sq + (1.0 - alpha) * sum_sq_all();
                let avg = (self.group_sq / (1.0 - alpha.powf(t))).sqrt() + eps;
                self.group_lr = self.lr / avg;
                Some(self.group_lr)
            }
            _ => None,
        }
    }

    /// Convenience for a single block.
    pub fn step_one(&mut self, param: &mut [f64], grad: &[f64]) -> Result<()> {
        self.step(&mut [param], &[grad])
    }

    /// The effective learning rate of each parameter of block `b` at the last
    /// step (the base rate before the first step): the factor that multiplied
    /// the gradient (SGD, Adagrad, RMSprop, group RMSprop) or, for Adam, the
    /// bias-corrected first moment; for momentum the base rate.
    pub fn effective_lr(&self, b: usize) -> Vec<f64> {
        let n = self.sizes[b];
        let lr = self.lr;
        if self.t == 0 {
            return vec![lr; n];
        }
        let st = &self.state[b];
        match self.method {
            Method::Sgd | Method::Momentum { .. } => vec![lr; n],
            Method::GroupRmsProp { .. } => vec![self.group_lr; n],
            Method::Adagrad { .. } => st[0].iter().map(|&s| if s > 0.0 { lr / s.sqrt() } else { lr }).collect(),
            Method::RmsProp { eps, .. } => st[0].iter().map(|&v| lr / (v.sqrt() + eps)).collect(),
            Method::Adam { beta1, beta2, eps } => {
                let t = self.t as f64;
                let (bc1, bc2) = (1.0 - beta1.powf(t), (1.0 - beta2.powf(t)).sqrt());
                st[1].iter().map(|&v| (lr / bc1) / (v.sqrt() / bc2 + eps)).collect()
            }
        }
    }

    /// The global effective learning rate of [`Method::GroupRmsProp`]
    /// (`adjusted_lr` in the research code); the base rate for other methods.
    pub fn group_lr(&self) -> f64 {
        if matches!(self.method, Method::GroupRmsProp { .. }) { self.group_lr } else { self.lr }
    }

    /// Forget all moments and the step count (keeps method, rate and blocks).
    pub fn reset(&mut self) {
        self.t = 0;
        self.group_sq = 0.0;
        self.group_lr = self.lr;
        for s in self.state.iter_mut().flatten() {
            s.fill(0.0);
        }
    }

    /// Exact binary encoding of the whole state (for checkpoints; JSON would
    /// round the floats).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(b"LROPT001");
        let head = serde_json::to_vec(&self.method).expect("methods serialize");
        put_u64(&mut w, head.len() as u64);
        w.extend_from_slice(&head);
        // floats of the method as bits, so hyperparameters are exact too
        for x in method_floats(&self.method) {
            put_f64(&mut w, x);
        }
        put_f64(&mut w, self.lr);
        put_u64(&mut w, self.t);
        put_f64(&mut w, self.group_sq);
        put_f64(&mut w, self.group_lr);
        put_u64(&mut w, self.sizes.len() as u64);
        for &n in &self.sizes {
            put_u64(&mut w, n as u64);
        }
        for v in self.state.iter().flatten() {
            for &x in v {
                put_f64(&mut w, x);
            }
        }
        w
    }

    /// The optimizer to continue with when a checkpoint holding `saved` is
    /// resumed under settings that built `self`: the saved state (moments,
    /// step count, group average) with `self`'s base learning rate, so a
    /// `--set lr=...` given on resume takes effect (unchanged settings
    /// continue bit for bit). A different method or hyperparameters, or
    /// other block sizes, are an error: the saved moments would not mean
    /// what the new method expects.
    pub fn resumed_from(&self, mut saved: Optimizer) -> Result<Optimizer> {
        ensure!(
            saved.sizes == self.sizes,
            "the checkpoint's optimizer has blocks {:?}, the model needs {:?}",
            saved.sizes,
            self.sizes
        );
        ensure!(
            saved.method == self.method,
            "the checkpoint was written with the optimizer {:?}, the settings ask for {:?}; resume with the same \
             optimizer settings, or start afresh without --resume",
            saved.method,
            self.method
        );
        saved.lr = self.lr;
        Ok(saved)
    }

    /// Decode [`Optimizer::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Optimizer> {
        let bad = || Error::invalid("not an optimizer state, or a truncated one");
        let mut r = Reader { b: bytes, pos: 0 };
        if r.take(8).ok_or_else(bad)? != b"LROPT001" {
            return Err(bad());
        }
        let hl = r.u64().ok_or_else(bad)? as usize;
        let mut method: Method = serde_json::from_slice(r.take(hl).ok_or_else(bad)?).map_err(|_| bad())?;
        let nf = method_floats(&method).len();
        let floats: Vec<f64> = (0..nf).map(|_| r.f64()).collect::<Option<_>>().ok_or_else(bad)?;
        set_method_floats(&mut method, &floats);
        let lr = r.f64().ok_or_else(bad)?;
        let t = r.u64().ok_or_else(bad)?;
        let group_sq = r.f64().ok_or_else(bad)?;
        let group_lr = r.f64().ok_or_else(bad)?;
        let nb = r.u64().ok_or_else(bad)? as usize;
        ensure!(nb <= bytes.len(), "not an optimizer state, or a truncated one");
        let sizes: Vec<usize> = (0..nb).map(|_| r.u64().map(|x| x as usize)).collect::<Option<_>>().ok_or_else(bad)?;
        let total: usize =
            sizes.iter().try_fold(0usize, |a, &n| a.checked_add(n.checked_mul(method.slots())?)).ok_or_else(bad)?;
        ensure!(total.checked_mul(8).is_some_and(|x| x <= bytes.len()), "not an optimizer state, or a truncated one");
        let mut state = Vec::with_capacity(nb);
        for &n in &sizes {
            let mut blk = Vec::new();
            for _ in 0..method.slots() {
                blk.push((0..n).map(|_| r.f64()).collect::<Option<Vec<f64>>>().ok_or_else(bad)?);
            }
            state.push(blk);
        }
        ensure!(r.pos == bytes.len(), "trailing bytes after the optimizer state");
        method.check()?;
        Ok(Optimizer { method, lr, t, sizes, state, group_sq, group_lr })
    }
}

fn method_floats(m: &Method) -> Vec<f64> {
    match *m {
        Method::Sgd => vec![],
        Method::Momentum { beta, .. } => vec![beta],
        Method::Adagrad { eps } => vec![eps],
        Method::RmsProp { alpha, eps } | Method::GroupRmsProp { alpha, eps } => vec![alpha, eps],
        Method::Adam { beta1, beta2, eps } => vec![beta1, beta2, eps],
    }
}

fn set_method_floats(m: &mut Method, f: &[f64]) {
    match m {
        Method::Sgd => {}
        Method::Momentum { beta, .. } => *beta = f[0],
        Method::Adagrad { eps } => *eps = f[0],
        Method::RmsProp { alpha, eps } | Method::GroupRmsProp { alpha, eps } => {
            *alpha = f[0];
            *eps = f[1];
        }
        Method::Adam { beta1, beta2, eps } => {
            *beta1 = f[0];
            *beta2 = f[1];
            *eps = f[2];
        }
    }
}

fn put_u64(w: &mut Vec<u8>, x: u64) {
    w.extend_from_slice(&x.to_le_bytes());
}
fn put_f64(w: &mut Vec<u8>, x: f64) {
    w.extend_from_slice(&x.to_bits().to_le_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn f64(&mut self) -> Option<f64> {
        self.u64().map(f64::from_bits)
    }
}

/// Sum of squares, deterministic for any thread count (fixed chunks summed in
/// order; within a chunk, 8 interleaved partial sums).
pub fn sum_sq(x: &[f64]) -> f64 {
    if x.len() < PAR_MIN {
        return sum_sq_lanes(x);
    }
    let parts: Vec<f64> = x.par_chunks(CHUNK).map(sum_sq_lanes).collect();
    parts.iter().sum()
}

/// `Σ a_i b_i` over the common length in eight partial sums (element `i`
/// to lane `i mod 8`, the lanes added pairwise, then the tail in order): the
/// fixed order of [`sum_sq`]'s lanes, which the compiler vectorizes, instead
/// of one running sum bound by the latency of an add.
#[inline]
pub fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for t in 0..8 {
            acc[t] += x[t] * y[t];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// [`sum_sq`] on the calling thread only (the same chunks, added in the same
/// order: the same bits), for code that runs outside the rayon pool.
pub fn sum_sq_seq(x: &[f64]) -> f64 {
    if x.len() < PAR_MIN {
        return sum_sq_lanes(x);
    }
    x.chunks(CHUNK).map(sum_sq_lanes).sum()
}

/// Sum of squares with 8 independent accumulators (element `i` goes to lane
/// `i mod 8`, the lanes are added pairwise, then the tail in order): a fixed
/// order that the compiler vectorizes, instead of one serial chain of adds
/// whose latency bounds the single-accumulator sum.
#[inline]
fn sum_sq_lanes(x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let c = x.chunks_exact(8);
    let rest = c.remainder();
    for v in c {
        for t in 0..8 {
            acc[t] += v[t] * v[t];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for v in rest {
        s += v * v;
    }
    s
}

fn zip_apply(p: &mut [f64], g: &[f64], f: impl Fn(&mut f64, f64) + Sync) {
    if p.len() >= PAR_MIN {
        p.par_iter_mut().zip(g.par_iter()).with_min_len(CHUNK).for_each(|(p, &g)| f(p, g));
    } else {
        p.iter_mut().zip(g).for_each(|(p, &g)| f(p, g));
    }
}

fn zip_apply1(p: &mut [f64], g: &[f64], s: &mut [f64], f: impl Fn(&mut f64, f64, &mut f64) + Sync) {
    if p.len() >= PAR_MIN {
        p.par_iter_mut()
            .zip(g.par_iter())
            .zip(s.par_iter_mut())
            .with_min_len(CHUNK)
            .for_each(|((p, &g), s)| f(p, g, s));
    } else {
        p.iter_mut().zip(g).zip(s.iter_mut()).for_each(|((p, &g), s)| f(p, g, s));
    }
}

fn zip_apply2(
    p: &mut [f64],
    g: &[f64],
    a: &mut [f64],
    b: &mut [f64],
    f: impl Fn(&mut f64, f64, &mut f64, &mut f64) + Sync,
) {
    if p.len() >= PAR_MIN {
        p.par_iter_mut()
            .zip(g.par_iter())
            .zip(a.par_iter_mut())
            .zip(b.par_iter_mut())
            .with_min_len(CHUNK)
            .for_each(|(((p, &g), a), b)| f(p, g, a, b));
    } else {
        p.iter_mut().zip(g).zip(a.iter_mut()).zip(b.iter_mut()).for_each(|(((p, &g), a), b)| f(p, g, a, b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The 2-parameter problem: params p = (1, -2), gradients g1 = (0.5, -1)
    // then g2 = (1, 2); every expected value below is computed by hand from
    // the update rules in the module docs.
    const P0: [f64; 2] = [1.0, -2.0];
    const G1: [f64; 2] = [0.5, -1.0];
    const G2: [f64; 2] = [1.0, 2.0];

    fn two_steps(m: Method, lr: f64) -> (Vec<f64>, Vec<f64>, Optimizer) {
        let mut o = Optimizer::new(m, lr, &[2]).unwrap();
        let mut p = P0.to_vec();
        o.step_one(&mut p, &G1).unwrap();
        let p1 = p.clone();
        o.step_one(&mut p, &G2).unwrap();
        (p1, p, o)
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn sgd_by_hand() {
        let (p1, p2, o) = two_steps(Method::Sgd, 0.1);
        close(&p1, &[0.95, -1.9], 1e-15);
        close(&p2, &[0.85, -2.1], 1e-15);
        assert_eq!(o.effective_lr(0), vec![0.1, 0.1]);
    }

    #[test]
    fn momentum_by_hand() {
        // buf1 = g1 = (0.5, -1); p1 = p0 - 0.1 buf1 = (0.95, -1.9)
        // buf2 = 0.9 buf1 + g2 = (1.45, 1.1); p2 = (0.805, -2.01)
        let (p1, p2, _) = two_steps(Method::Momentum { beta: 0.9, nesterov: false }, 0.1);
        close(&p1, &[0.95, -1.9], 1e-15);
        close(&p2, &[0.805, -2.01], 1e-14);
        // Nesterov: step1 uses g1 + 0.9 buf1 = 1.9 g1 = (0.95, -1.9) -> p1 = (0.905, -1.81)
        // step2 uses g2 + 0.9 buf2 = (1 + 1.305, 2 + 0.99) -> p2 = (0.6745, -2.109)
        let (p1, p2, _) = two_steps(Method::Momentum { beta: 0.9, nesterov: true }, 0.1);
        close(&p1, &[0.905, -1.81], 1e-15);
        close(&p2, &[0.6745, -2.109], 1e-14);
    }

    #[test]
    fn adagrad_by_hand_blog_semantics() {
        // eps = 0.01 to make it visible: s1 = 0.01 + g1^2 = (0.26, 1.01)
        // p1 = p0 - 0.1 g1 / sqrt(s1)
        let (p1, p2, o) = two_steps(Method::Adagrad { eps: 0.01 }, 0.1);
        let s1 = [0.26f64, 1.01];
        let e1 = [1.0 - 0.1 * 0.5 / s1[0].sqrt(), -2.0 + 0.1 / s1[1].sqrt()];
        close(&p1, &e1, 1e-15);
        // s2 = s1 + 0.01 + g2^2 = (1.27, 5.02)
        let s2 = [1.27f64, 5.02];
        let e2 = [e1[0] - 0.1 / s2[0].sqrt(), e1[1] - 0.2 / s2[1].sqrt()];
        close(&p2, &e2, 1e-15);
        close(&o.effective_lr(0), &[0.1 / s2[0].sqrt(), 0.1 / s2[1].sqrt()], 1e-15);
    }

    #[test]
    fn rmsprop_by_hand() {
        // v1 = 0.1 g1^2 = (0.025, 0.1); step = lr g / (sqrt(v) + eps)
        let (p1, p2, _) = two_steps(Method::RmsProp { alpha: 0.9, eps: 1e-8 }, 0.01);
        let v1 = [0.025f64, 0.1];
        let e1 = [1.0 - 0.01 * 0.5 / (v1[0].sqrt() + 1e-8), -2.0 + 0.01 / (v1[1].sqrt() + 1e-8)];
        close(&p1, &e1, 1e-15);
        // v2 = 0.9 v1 + 0.1 g2^2 = (0.1225, 0.49)
        let v2 = [0.1225f64, 0.49];
        let e2 = [e1[0] - 0.01 / (v2[0].sqrt() + 1e-8), e1[1] - 0.02 / (v2[1].sqrt() + 1e-8)];
        close(&p2, &e2, 1e-15);
    }

    #[test]
    fn group_rmsprop_by_hand() {
        // one global moment: a1 = 0.01 |g1|^2 = 0.0125; bias-corrected avg =
        // a1 / (1 - 0.99) = 1.25 -> lr1 = 0.01 / (sqrt(1.25) + 1e-4)
        let (p1, p2, o) = two_steps(Method::group_rms_prop(), 0.01);
        let lr1 = 0.01 / (1.25f64.sqrt() + 1e-4);
        let e1 = [1.0 - lr1 * 0.5, -2.0 + lr1];
        close(&p1, &e1, 1e-15);
        // a2 = 0.99 a1 + 0.01 |g2|^2 = 0.012375 + 0.05 = 0.062375;
        // corrected by 1 - 0.99^2 = 0.0199
        let lr2 = 0.01 / ((0.062375f64 / 0.0199).sqrt() + 1e-4);
        close(&p2, &[e1[0] - lr2, e1[1] - 2.0 * lr2], 1e-15);
        assert!((o.group_lr() - lr2).abs() < 1e-16);
        close(&o.effective_lr(0), &[lr2, lr2], 1e-16);
    }

    #[test]
    fn group_rmsprop_is_global_over_blocks() {
        // the same gradients split into two blocks give the same update
        let mut a = Optimizer::new(Method::group_rms_prop(), 0.01, &[2]).unwrap();
        let mut b = Optimizer::new(Method::group_rms_prop(), 0.01, &[1, 1]).unwrap();
        let mut pa = P0.to_vec();
        let (mut x, mut y) = ([P0[0]], [P0[1]]);
        for g in [G1, G2] {
            a.step_one(&mut pa, &g).unwrap();
            b.step(&mut [&mut x[..], &mut y[..]], &[&g[..1], &g[1..]]).unwrap();
        }
        assert_eq!(pa, vec![x[0], y[0]]);
    }

    #[test]
    fn adam_by_hand() {
        // first step of Adam moves every coordinate by lr * sign(g) (up to eps)
        let (p1, p2, _) = two_steps(Method::adam(), 0.1);
        close(&p1, &[0.9, -1.9], 1e-8);
        // step 2: m = 0.9*0.1 g1 + 0.1 g2 = (0.145, 0.11); v = 0.999*0.001 g1^2 + 0.001 g2^2
        let m = [0.145f64, 0.11];
        let v = [0.999 * 0.001 * 0.25 + 0.001, 0.999 * 0.001 + 0.004];
        let (bc1, bc2) = (1.0 - 0.81, 1.0 - 0.999f64 * 0.999);
        let e2: Vec<f64> = (0..2).map(|i| p1[i] - 0.1 * (m[i] / bc1) / ((v[i] / bc2).sqrt() + 1e-8)).collect();
        close(&p2, &e2, 1e-12);
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(Optimizer::new(Method::Sgd, 0.0, &[1]).is_err());
        assert!(Optimizer::new(Method::Sgd, f64::NAN, &[1]).is_err());
        assert!(Optimizer::new(Method::Adam { beta1: 1.0, beta2: 0.9, eps: 1e-8 }, 0.1, &[1]).is_err());
        assert!(Optimizer::new(Method::RmsProp { alpha: 0.9, eps: 0.0 }, 0.1, &[1]).is_err());
        assert!(Method::by_name("adamm").unwrap_err().to_string().contains("did you mean 'adam'"));
        let mut o = Optimizer::new(Method::Sgd, 0.1, &[2]).unwrap();
        let mut p = vec![0.0; 3];
        assert!(o.step_one(&mut p, &[0.0; 3]).is_err());
        assert_eq!(o.steps(), 0);
    }

    #[test]
    fn state_round_trips_exactly() {
        for m in [
            Method::adam(),
            Method::adagrad(),
            Method::group_rms_prop(),
            Method::nesterov(),
            Method::Sgd,
            Method::rms_prop(),
        ] {
            let (_, _, o) = two_steps(m, 0.1);
            let back = Optimizer::from_bytes(&o.to_bytes()).unwrap();
            assert_eq!(back, o);
            let json = serde_json::to_string(&o).unwrap();
            let j: Optimizer = serde_json::from_str(&json).unwrap();
            assert_eq!(j.method(), o.method());
            // resumed state continues identically
            let (mut a, mut b) = (o.clone(), back);
            let (mut pa, mut pb) = (vec![0.3, 0.4], vec![0.3, 0.4]);
            a.step_one(&mut pa, &G1).unwrap();
            b.step_one(&mut pb, &G1).unwrap();
            assert_eq!(pa, pb);
        }
        assert!(Optimizer::from_bytes(b"LROPT001").is_err());
        assert!(Optimizer::from_bytes(&[]).is_err());
    }

    #[test]
    fn sum_sq_matches_a_naive_sum() {
        // every remainder length of the 8-lane sum, and the parallel path;
        // integers (exact in f64 at these sizes) make the sum exact
        for n in (0..40).chain([PAR_MIN - 1, PAR_MIN + 13, 3 * CHUNK + 5]) {
            let x: Vec<f64> = (0..n).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
            let want: f64 = x.iter().map(|v| v * v).sum();
            assert_eq!(sum_sq(&x), want, "n = {n}");
        }
        // fractions: equal up to rounding
        let x: Vec<f64> = (0..1001).map(|i| (i as f64 * 0.37).sin()).collect();
        let want: f64 = x.iter().map(|v| v * v).sum();
        assert!((sum_sq(&x) - want).abs() < 1e-12 * want);
    }

    #[test]
    fn parallel_blocks_match_serial() {
        // a block long enough to take the parallel path equals the
        // elementwise serial result
        let n = PAR_MIN + 17;
        let g: Vec<f64> = (0..n).map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect();
        let mut o = Optimizer::new(Method::adam(), 0.01, &[n]).unwrap();
        let mut p = vec![1.0; n];
        o.step_one(&mut p, &g).unwrap();
        for i in [0, 1, n / 2, n - 1] {
            let expect = 1.0 - 0.01 * g[i] / (g[i].abs() + 1e-8);
            assert!((p[i] - expect).abs() < 1e-12);
        }
    }

    #[test]
    fn uniform_step_equals_step_bitwise() {
        let sizes = [37usize, 5, 64];
        let grads: Vec<Vec<Vec<f64>>> = (0..3)
            .map(|t| {
                sizes.iter().map(|&n| (0..n).map(|i| ((i * 7 + t * 3) % 11) as f64 * 0.13 - 0.6).collect()).collect()
            })
            .collect();
        for method in [Method::Sgd, Method::group_rms_prop()] {
            let mut a = Optimizer::new(method.clone(), 0.05, &sizes).unwrap();
            let mut b = a.clone();
            let mut pa: Vec<Vec<f64>> = sizes.iter().map(|&n| (0..n).map(|i| i as f64 * 0.01).collect()).collect();
            let mut pb = pa.clone();
            for g in &grads {
                let gs: Vec<&[f64]> = g.iter().map(|x| &x[..]).collect();
                let mut ps: Vec<&mut [f64]> = pa.iter_mut().map(|x| &mut x[..]).collect();
                a.step(&mut ps, &gs).unwrap();
                let rate = b.begin_uniform_step(|| g.iter().map(|x| sum_sq(x)).sum()).unwrap();
                for (p, g) in pb.iter_mut().zip(g) {
                    p.iter_mut().zip(g).for_each(|(p, &g)| *p -= rate * g);
                }
            }
            assert_eq!(pa, pb, "{method:?}");
            assert_eq!(a, b, "{method:?}");
        }
        let mut adam = Optimizer::new(Method::adam(), 0.1, &sizes).unwrap();
        assert!(adam.begin_uniform_step(|| 1.0).is_none());
        assert_eq!(adam.steps(), 0);
    }
}
