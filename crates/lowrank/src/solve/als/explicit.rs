//! `als`: regularized alternating least squares on explicit ratings.
//!
//! The model is `r_ui ~ mu + b_u + c_i + x_u . y_i` (global mean and biases
//! optional). One iteration solves, for every user `u` with the item factors
//! fixed, the ridge regression
//!
//! `min_{x_u, b_u} sum_{i in I_u} (r_ui - mu - c_i - b_u - x_u . y_i)^2
//!   + w_u (reg |x_u|^2 + reg_bias b_u^2)`
//!
//! (the `(k+1) x (k+1)` normal equations with the bias as an extra column of
//! ones, solved by Cholesky), and the same for every item with the user
//! factors fixed; `first` picks which side goes first ([`SweepOrder`]). Rows
//! are solved in fixed blocks of eight whose systems are factored side by
//! side ([`linalg::cholesky_lanes`]). `w_u = |I_u|` with `weighted_reg` (the weighted-lambda
//! regularization of Zhou et al. 2008, "ALS-WR", also Spark MLlib's), else 1.
//! Each half-step minimizes the objective exactly over one side, so the
//! objective never increases. With `nonnegative`, each row's system is solved
//! by an active-set NNLS on the normal equations (the biases stay free).
//!
//! Rows are solved in parallel with rayon; each row's solve depends only on
//! the other side's factors, so the result is independent of the thread count
//! and of scheduling. Empty rows and columns get zero factors and biases.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::linalg;
use crate::data::{Compressed, Ratings};
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::{IterState, Solver};

/// Parameters of explicit ALS (`--algo als`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Als {
    /// Number of latent factors (default 50: the rank of the best peer on
    /// MovieLens-100k, LIBMF; ALS with weighted-lambda does not overfit with
    /// rank).
    pub rank: usize,
    /// L2 penalty on the factors (default 0.12, with `weighted_reg`: chosen on
    /// MovieLens-100k's five canonical splits u1..u5, see `bench/RESULTS_als.md`;
    /// Spark's default is 0.1).
    pub reg: f64,
    /// L2 penalty on the biases (default: `reg`).
    pub reg_bias: Option<f64>,
    /// Scale each row's penalty by its number of ratings (ALS-WR, Zhou et al.
    /// 2008, as Spark MLlib; default true). False: the plain `reg`.
    pub weighted_reg: bool,
    /// Fit a global mean (the training mean) and per-row and per-column
    /// biases (default true). False: the pure factor model `x_u . y_i`.
    pub biases: bool,
    /// Constrain the factors to be non-negative (NNLS per row; default false).
    pub nonnegative: bool,
    /// Standard deviation of the Gaussian initial factors, times
    /// `1/sqrt(rank)` (default 1: unit-norm rows on average). With
    /// `nonnegative` the absolute values are used.
    pub init_scale: f64,
    /// Stop when the objective decreases by less than `tol` times its value
    /// in one iteration (default 0: run every iteration).
    pub tol: f64,
    /// Which side each sweep solves first (default `auto`: the side with
    /// fewer rows, see [`SweepOrder`]).
    pub first: SweepOrder,
}

/// Which side of the matrix a sweep solves first.
///
/// From a random start the first half-step is a random sketch of the data;
/// solving first the side with fewer rows (so more ratings per row, each row
/// averaging over more random vectors) escapes the initial plateau sooner.
/// On the synthetic 10M set (200k users, 20k items, rank 16, weighted reg
/// 0.02) items first gives test RMSE 0.2198 after 10 iterations, users first
/// 0.2826 (Spark MLlib, which always solves items first: 0.2207); see
/// `bench/RESULTS_als.md`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SweepOrder {
    /// The side with fewer rows first (users on a tie).
    #[default]
    Auto,
    /// Users (rows) first, then items.
    Users,
    /// Items (columns) first, then users, as Spark MLlib.
    Items,
}

impl SweepOrder {
    /// Whether an `m x n` problem solves the items (columns) first.
    pub fn items_first(self, m: usize, n: usize) -> bool {
        match self {
            SweepOrder::Auto => n < m,
            SweepOrder::Users => false,
            SweepOrder::Items => true,
        }
    }
}

impl Default for Als {
    fn default() -> Self {
        Als {
            rank: 50,
            reg: 0.12,
            reg_bias: None,
            weighted_reg: true,
            biases: true,
            nonnegative: false,
            init_scale: 1.0,
            tol: 0.0,
            first: SweepOrder::Auto,
        }
    }
}

/// Default number of iterations of `als`.
pub const DEFAULT_EPOCHS: usize = 15;

impl Als {
    /// Validate into a solver.
    pub fn check(self) -> Result<AlsSolver> {
        ensure!(self.rank >= 1, "rank must be at least 1, got {}", self.rank);
        ensure!(self.rank <= 4096, "rank {} is too large for ALS's dense k x k solves (at most 4096)", self.rank);
        ensure!(self.reg >= 0.0 && self.reg.is_finite(), "reg must be finite and >= 0, got {}", self.reg);
        let rb = self.reg_bias.unwrap_or(self.reg);
        ensure!(rb >= 0.0 && rb.is_finite(), "reg_bias must be finite and >= 0, got {rb}");
        ensure!(
            self.init_scale > 0.0 && self.init_scale.is_finite(),
            "init_scale must be finite and > 0, got {}",
            self.init_scale
        );
        ensure!(self.tol >= 0.0 && self.tol.is_finite(), "tol must be finite and >= 0, got {}", self.tol);
        let reg = RowReg { factor: self.reg, bias: rb, weighted: self.weighted_reg, relative: 0.0 };
        Ok(AlsSolver { params: self, reg, last_objective: None })
    }
}

/// Regularization of one row's system.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RowReg {
    /// Penalty on the factors.
    pub factor: f64,
    /// Penalty on the bias.
    pub bias: f64,
    /// Multiply both by the row's number of entries.
    pub weighted: bool,
    /// Ridge relative to the mean diagonal of the Gram matrix (altmin's
    /// numerical safeguard).
    pub relative: f64,
}

/// One side of a sweep: the lanes (CSR for users, CSC for items) and the fixed
/// other side.
#[derive(Clone, Copy)]
pub(crate) struct HalfStep<'a> {
    pub lanes: &'a Compressed,
    pub other: &'a [f32],
    pub other_bias: Option<&'a [f32]>,
    pub mu: f64,
    pub k: usize,
    pub reg: RowReg,
    pub nonnegative: bool,
    /// Also return the sum of squared residuals of this side's entries with
    /// the new factors (the training error after the sweep when this is its
    /// second half), computed from the gathered rows without another pass.
    pub track_error: bool,
}

#[derive(Default)]
struct Scratch {
    phi: Vec<f64>,
    a: Vec<f64>,
    rhs: Vec<f64>,
    ts: Vec<f64>,
    x: Vec<f64>,
    work: Vec<f64>,
    /// The Gram matrices (`d x dp` each) and right-hand sides (`dp` each)
    /// of one block of rows.
    grams: Vec<f64>,
    rhss: Vec<f64>,
    /// The same systems interleaved for [`linalg::cholesky_lanes`].
    ab: Vec<linalg::Lane>,
    bb: Vec<linalg::Lane>,
    inv: Vec<linalg::Lane>,
}

/// Below this many multiply-adds (`nnz * d^2`) a half-step runs on the calling
/// thread: rayon's fork-join costs more than the work (the notebook's
/// 40 x 70 rank-2 checkerboard is ~6,000).
const SEQUENTIAL_WORK: usize = 1 << 16;
/// Largest system size solved by [`HalfStep::accumulate_small`] (no padded gather).
const SMALL_D: usize = 4;

const LANES: usize = linalg::LANES;

impl HalfStep<'_> {
    /// Solve every row of this side into `out` (`rows x k`) and `out_bias`;
    /// returns the sum of squared residuals over this side's entries with the
    /// new factors when `track_error` (else 0), summed in row order.
    /// Errors name the first row whose system could not be solved.
    ///
    /// Rows are solved in fixed blocks of [`LANES`] consecutive rows (their
    /// systems factored side by side), so the result does not depend on the
    /// thread count or on whether the problem is small enough to run on the
    /// calling thread.
    pub fn run(&self, out: &mut [f32], out_bias: Option<&mut [f32]>) -> Result<f64> {
        // a large other side is gathered in random order: copy it once to a
        // cache-line-aligned buffer so that a row of 16 f32 is one line, not two
        if self.other.len() * 4 >= ALIGN_COPY_BYTES && !(self.other.as_ptr() as usize).is_multiple_of(64) {
            let lines = aligned_copy(self.other);
            return HalfStep { other: lines_as_f32(&lines, self.other.len()), ..*self }.run_aligned(out, out_bias);
        }
        self.run_aligned(out, out_bias)
    }

    fn run_aligned(&self, out: &mut [f32], out_bias: Option<&mut [f32]>) -> Result<f64> {
        let k = self.k;
        let rows = self.lanes.outer_len();
        let with_bias = out_bias.is_some();
        let d = k + with_bias as usize;
        let fail = |u: usize| {
            Error::Numerical(format!("the least-squares system of row {u} could not be solved (non-finite values?)"))
        };
        let mut dummy;
        let bias: &mut [f32] = match out_bias {
            Some(b) => b,
            None => {
                dummy = vec![0.0f32; rows];
                &mut dummy
            }
        };
        let mut errs = vec![0.0f64; rows];
        let nnz = self.lanes.indices.len();
        let blocks = out.chunks_mut(LANES * k).zip(bias.chunks_mut(LANES)).zip(errs.chunks_mut(LANES));
        if nnz.saturating_mul(d * d) < SEQUENTIAL_WORK {
            // on the calling thread, with its reusable scratch (no allocation
            // per half-step once warm)
            thread_local! {
                static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
            }
            SCRATCH.with(|cell| -> Result<()> {
                let mut fresh = Scratch::default();
                let mut guard = cell.try_borrow_mut();
                let s = match guard.as_deref_mut() {
                    Ok(s) => s,
                    Err(_) => &mut fresh,
                };
                for (blk, ((x, b), e)) in blocks.enumerate() {
                    self.solve_block(blk * LANES, with_bias, s, x, b, e).map_err(fail)?;
                }
                Ok(())
            })?;
        } else {
            // blocks per task: enough work per task to amortize the fork-join
            let avg = nnz / rows.max(1) + 1;
            let min_len = (8192 / (LANES * avg * d)).clamp(1, 64);
            out.par_chunks_mut(LANES * k)
                .zip(bias.par_chunks_mut(LANES))
                .zip(errs.par_chunks_mut(LANES))
                .enumerate()
                .with_min_len(min_len)
                .try_for_each_init(Scratch::default, |s, (blk, ((x, b), e))| {
                    self.solve_block(blk * LANES, with_bias, s, x, b, e)
                })
                .map_err(fail)?;
        }
        Ok(if self.track_error { errs.iter().sum() } else { 0.0 })
    }

    /// Gather row `u`'s entries: the other side's rows (and a 1 for the
    /// bias) into `s.phi` with row stride `padded(d)`, the targets into
    /// `s.ts`. Returns the number of entries.
    fn gather(&self, u: usize, with_bias: bool, s: &mut Scratch) -> usize {
        let k = self.k;
        let dp = linalg::padded(k + with_bias as usize);
        let (idx, vals) = self.lanes.lane(u);
        let n = idx.len();
        // every row of phi is written whole (padding included): no memset
        if s.phi.len() < n * dp {
            s.phi.resize(n * dp, 0.0);
        }
        for &i in &idx[..n.min(PREFETCH)] {
            prefetch(&self.other[i as usize * k..]);
        }
        s.ts.clear();
        for (t, (&i, &r)) in idx.iter().zip(vals).enumerate() {
            if let Some(&ahead) = idx.get(t + PREFETCH) {
                prefetch(&self.other[ahead as usize * k..]);
            }
            let i = i as usize;
            let row = &mut s.phi[t * dp..(t + 1) * dp];
            for (p, &y) in self.other[i * k..(i + 1) * k].iter().enumerate() {
                row[p] = y as f64;
            }
            row[k..].fill(0.0);
            if with_bias {
                row[k] = 1.0;
            }
            s.ts.push(r as f64 - self.mu - self.other_bias.map_or(0.0, |c| c[i] as f64));
        }
        n
    }

    /// Row `u`'s Gram matrix (upper triangle, row stride `dp`, added to `g`)
    /// and right-hand side (added to `rhs`) straight from the other side's
    /// rows, for `d <= SMALL_D` (the notebook's rank 2): the same sums in the
    /// same order as [`Self::gather`] + [`linalg::gram_padded`], without the
    /// padded copy. Returns `sum t^2`.
    fn accumulate_small(&self, u: usize, with_bias: bool, g: &mut [f64], dp: usize, rhs: &mut [f64]) -> f64 {
        let k = self.k;
        let d = k + with_bias as usize;
        let (idx, vals) = self.lanes.lane(u);
        let mut tt = 0.0;
        for (&i, &r) in idx.iter().zip(vals) {
            let i = i as usize;
            let t = r as f64 - self.mu - self.other_bias.map_or(0.0, |c| c[i] as f64);
            tt += t * t;
            let mut row = [0.0f64; SMALL_D];
            for (p, &y) in self.other[i * k..(i + 1) * k].iter().enumerate() {
                row[p] = y as f64;
            }
            if with_bias {
                row[k] = 1.0;
            }
            for p in 0..d {
                let xp = row[p];
                rhs[p] += t * xp;
                for q in p..d {
                    g[p * dp + q] += xp * row[q];
                }
            }
        }
        tt
    }

    /// The penalties added to the diagonal of a row's Gram matrix `a` (row
    /// stride `dp`) with `n` entries: `[factors, bias]`.
    fn diagonal(&self, a: &[f64], d: usize, dp: usize, n: usize, with_bias: bool) -> [f64; 2] {
        let w = if self.reg.weighted { n as f64 } else { 1.0 };
        let rel = if self.reg.relative > 0.0 {
            self.reg.relative * (0..d).map(|p| a[p * dp + p]).sum::<f64>() / d as f64
        } else {
            0.0
        };
        let f = w * self.reg.factor + rel;
        [f, if with_bias { w * self.reg.bias + rel } else { f }]
    }

    /// Solve the rows `u0..u0 + b.len()` (at most [`LANES`]) into `x`, `b`
    /// and their squared residuals into `e`; `Err(row)` names a row that
    /// could not be solved.
    fn solve_block(
        &self,
        u0: usize,
        with_bias: bool,
        s: &mut Scratch,
        x: &mut [f32],
        b: &mut [f32],
        e: &mut [f64],
    ) -> std::result::Result<(), usize> {
        let k = self.k;
        let nb = b.len();
        if self.nonnegative {
            for l in 0..nb {
                e[l] = self.solve_row(u0 + l, with_bias, s, &mut x[l * k..(l + 1) * k], &mut b[l]).ok_or(u0 + l)?;
            }
            return Ok(());
        }
        let d = k + with_bias as usize;
        let dp = linalg::padded(d);
        let mut active = [false; LANES];
        let mut tt = [0.0f64; LANES];
        let mut diag = [[0.0f64; 2]; LANES];
        s.grams.clear();
        s.grams.resize(LANES * d * dp, 0.0);
        s.rhss.clear();
        s.rhss.resize(LANES * dp, 0.0);
        for l in 0..nb {
            let n = if d <= SMALL_D { self.lanes.lane(u0 + l).0.len() } else { self.gather(u0 + l, with_bias, s) };
            if n == 0 {
                x[l * k..(l + 1) * k].fill(0.0);
                b[l] = 0.0;
                e[l] = 0.0;
                continue;
            }
            active[l] = true;
            let g = &mut s.grams[l * d * dp..(l + 1) * d * dp];
            let rhs = &mut s.rhss[l * dp..(l + 1) * dp];
            if d <= SMALL_D {
                tt[l] = self.accumulate_small(u0 + l, with_bias, g, dp, rhs);
            } else {
                tt[l] = s.ts.iter().map(|t| t * t).sum();
                linalg::gram_padded(g, d, dp, &s.phi[..n * dp], &s.ts, rhs);
            }
            diag[l] = self.diagonal(g, d, dp, n, with_bias);
            for p in 0..d {
                g[p * dp + p] += diag[l][(p >= k) as usize];
            }
        }
        // interleave; idle lanes get the identity
        s.ab.clear();
        s.ab.resize(d * d, [0.0; LANES]);
        s.bb.clear();
        s.bb.resize(d, [0.0; LANES]);
        s.inv.resize(d, [0.0; LANES]);
        for l in 0..LANES {
            if !active[l] {
                for p in 0..d {
                    s.ab[p * d + p][l] = 1.0;
                }
                continue;
            }
            let g = &s.grams[l * d * dp..(l + 1) * d * dp];
            for p in 0..d {
                for q in p..d {
                    s.ab[p * d + q][l] = g[p * dp + q];
                }
                s.bb[p][l] = s.rhss[l * dp + p];
            }
        }
        let ok = linalg::cholesky_lanes(&mut s.ab, d, &mut s.bb, &mut s.inv);
        for l in 0..nb {
            if !active[l] {
                continue;
            }
            if !ok[l] || (0..d).any(|p| !s.bb[p][l].is_finite()) {
                // singular or non-finite: the per-row path with its safeguard
                e[l] = self.solve_row(u0 + l, with_bias, s, &mut x[l * k..(l + 1) * k], &mut b[l]).ok_or(u0 + l)?;
                continue;
            }
            for p in 0..k {
                x[l * k + p] = s.bb[p][l] as f32;
            }
            b[l] = if with_bias { s.bb[k][l] as f32 } else { 0.0 };
            if self.track_error {
                // |t - Phi z|^2 = t.t - 2 z.(Phi^T t) + z^T (Phi^T Phi) z, with
                // the stored (f32) solution; Phi^T Phi = the system minus
                // its diagonal penalties
                let z = |p: usize| if p < k { x[l * k + p] as f64 } else { b[l] as f64 };
                let g = &s.grams[l * d * dp..(l + 1) * d * dp];
                let rhs = &s.rhss[l * dp..l * dp + d];
                let mut quad = 0.0;
                let mut lin = 0.0;
                for p in 0..d {
                    let zp = z(p);
                    let row = &g[p * dp..p * dp + d];
                    let off: f64 = (p + 1..d).map(|q| row[q] * z(q)).sum();
                    quad += zp * ((row[p] - diag[l][(p >= k) as usize]) * zp + 2.0 * off);
                    lin += zp * rhs[p];
                }
                e[l] = (tt[l] - 2.0 * lin + quad).max(0.0);
            }
        }
        Ok(())
    }

    /// Solve row `u` alone (non-negative rows, and the rare systems the
    /// blocked Cholesky rejects); returns its sum of squared residuals with
    /// the new factors (0 unless `track_error`), `None` when the system could
    /// not be solved.
    fn solve_row(&self, u: usize, with_bias: bool, s: &mut Scratch, x: &mut [f32], b: &mut f32) -> Option<f64> {
        let k = self.k;
        let d = k + with_bias as usize;
        let dp = linalg::padded(d);
        let n = self.gather(u, with_bias, s);
        if n == 0 {
            x.fill(0.0);
            *b = 0.0;
            return Some(0.0);
        }
        // the Gram matrix, upper triangle, row stride dp
        s.a.clear();
        s.a.resize(d * dp, 0.0);
        s.rhs.clear();
        s.rhs.resize(dp, 0.0);
        linalg::gram_padded(&mut s.a, d, dp, &s.phi[..n * dp], &s.ts, &mut s.rhs);
        let diag = self.diagonal(&s.a, d, dp, n, with_bias);
        for p in 0..d {
            s.a[p * dp + p] += diag[(p >= k) as usize];
        }
        s.x.clear();
        s.x.extend_from_slice(&s.rhs[..d]);
        let ok = if self.nonnegative {
            let mut full = Vec::with_capacity(d * d);
            for p in 0..d {
                full.extend_from_slice(&s.a[p * dp..p * dp + d]);
            }
            linalg::symmetrize(&mut full, d);
            linalg::nnls(&full, &s.rhs[..d], d, k, &mut s.x)
        } else {
            // compact copy, solved with the jitter safeguard
            s.work.clear();
            for p in 0..d {
                s.work.extend_from_slice(&s.a[p * dp..p * dp + d]);
            }
            std::mem::swap(&mut s.a, &mut s.work);
            linalg::solve_spd(&mut s.a, d, &mut s.x, &mut s.work)
        };
        if !ok || s.x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        for p in 0..k {
            x[p] = s.x[p] as f32;
        }
        *b = if with_bias { s.x[k] as f32 } else { 0.0 };
        if !self.track_error {
            return Some(0.0);
        }
        // residuals with the stored (f32) solution
        for p in 0..k {
            s.x[p] = x[p] as f64;
        }
        if with_bias {
            s.x[k] = *b as f64;
        }
        s.x.resize(dp, 0.0);
        Some(linalg::residual_sq(&s.phi[..n * dp], dp, &s.ts, &s.x))
    }
}

/// How many entries ahead the factor rows are prefetched: the gather of the
/// other side's rows in random order is memory-latency bound (the first
/// `PREFETCH` rows of a lane are requested together before its loop).
pub(crate) const PREFETCH: usize = 24;

/// Other sides at least this large (bytes) are copied to an aligned buffer
/// before a half-step (the copy costs ~1 % of the half-step's gathers).
const ALIGN_COPY_BYTES: usize = 1 << 20;

/// One cache line of f32.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

fn aligned_copy(x: &[f32]) -> Vec<Line> {
    let mut v = vec![Line([0.0; 16]); x.len().div_ceil(16)];
    for (l, c) in v.iter_mut().zip(x.chunks(16)) {
        l.0[..c.len()].copy_from_slice(c);
    }
    v
}

fn lines_as_f32(v: &[Line], len: usize) -> &[f32] {
    assert!(len <= v.len() * 16, "lines_as_f32: length out of range");
    // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with size 64 = 16 * 4,
    // so `v` is `16 * v.len()` contiguous initialized f32, and `len` is
    // within it; the borrow of `v` bounds the lifetime.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), len) }
}

/// Hint the CPU to load the cache line holding `x[0]` (a no-op elsewhere).
#[inline(always)]
pub(crate) fn prefetch(x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch never faults; `x` points into a live slice.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(x.as_ptr() as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Sum of squared residuals per row over `lanes`, summed in row order
/// (deterministic whatever the thread count), and the number of entries.
pub(crate) fn squared_error(m: &FactorModel, csr: &Compressed) -> f64 {
    let k = m.rank;
    let per_row: Vec<f64> = (0..csr.outer_len())
        .into_par_iter()
        .with_min_len(64)
        .map(|u| {
            let (idx, vals) = csr.lane(u);
            let xu = &m.u[u * k..(u + 1) * k];
            let bu = m.global_mean + m.row_bias.as_ref().map_or(0.0, |b| b[u] as f64);
            let mut s = 0.0;
            for (&i, &r) in idx.iter().zip(vals) {
                let i = i as usize;
                let yi = &m.v[i * k..(i + 1) * k];
                let dot: f64 = xu.iter().zip(yi).map(|(&a, &b)| a as f64 * b as f64).sum();
                let e = r as f64 - bu - m.col_bias.as_ref().map_or(0.0, |c| c[i] as f64) - dot;
                s += e * e;
            }
            s
        })
        .collect();
    per_row.iter().sum()
}

/// Penalty `sum_rows w_row (reg |f_row|^2 + reg_bias b_row^2)` of one side.
pub(crate) fn penalty(f: &[f32], bias: Option<&[f32]>, k: usize, counts: &Compressed, reg: &RowReg) -> f64 {
    (0..counts.outer_len())
        .map(|u| {
            let w = if reg.weighted { counts.lane_len(u) as f64 } else { 1.0 };
            let sq: f64 = f[u * k..(u + 1) * k].iter().map(|&v| (v as f64).powi(2)).sum();
            let b = bias.map_or(0.0, |b| (b[u] as f64).powi(2));
            w * (reg.factor * sq + reg.bias * b)
        })
        .sum()
}

/// Gaussian initial factors (`scale / sqrt(k)` per entry; absolute values when
/// `nonnegative`).
pub(crate) fn gaussian_factors(rng: &mut Rng, len: usize, k: usize, scale: f64, nonnegative: bool) -> Vec<f32> {
    let s = scale / (k as f64).sqrt();
    (0..len)
        .map(|_| {
            let v = rng::normal(rng) * s;
            (if nonnegative { v.abs() } else { v }) as f32
        })
        .collect()
}

/// The validated explicit ALS solver.
#[derive(Clone, Debug)]
pub struct AlsSolver {
    params: Als,
    reg: RowReg,
    last_objective: Option<f64>,
}

impl AlsSolver {
    /// The parameters.
    pub fn params(&self) -> &Als {
        &self.params
    }

    /// The objective `sum_obs (r - prediction)^2 + penalties` of `m` on `data`.
    pub fn objective(&self, data: &Ratings, m: &FactorModel) -> f64 {
        let k = m.rank;
        squared_error(m, data.csr())
            + penalty(&m.u, m.row_bias.as_deref(), k, data.csr(), &self.reg)
            + penalty(&m.v, m.col_bias.as_deref(), k, data.csc(), &self.reg)
    }

    /// Solve the user side with the item side fixed (one half of a sweep).
    pub fn update_users(&self, data: &Ratings, m: &mut FactorModel) -> Result<()> {
        self.half(data, m, true, false).map(|_| ())
    }

    /// Solve the item side with the user side fixed (the other half).
    pub fn update_items(&self, data: &Ratings, m: &mut FactorModel) -> Result<()> {
        self.half(data, m, false, false).map(|_| ())
    }

    /// One half-sweep (`users`: the user side, else the item side); with
    /// `track_error`, returns the training sum of squared residuals after it.
    fn half(&self, data: &Ratings, m: &mut FactorModel, users: bool, track_error: bool) -> Result<f64> {
        let (mut own, mut own_bias, other, other_bias, lanes) = if users {
            (std::mem::take(&mut m.u), m.row_bias.take(), &m.v, m.col_bias.as_deref(), data.csr())
        } else {
            (std::mem::take(&mut m.v), m.col_bias.take(), &m.u, m.row_bias.as_deref(), data.csc())
        };
        let r = HalfStep {
            lanes,
            other,
            other_bias,
            mu: m.global_mean,
            k: m.rank,
            reg: self.reg,
            nonnegative: self.params.nonnegative,
            track_error,
        }
        .run(&mut own, own_bias.as_deref_mut());
        if users {
            m.u = own;
            m.row_bias = own_bias;
        } else {
            m.v = own;
            m.col_bias = own_bias;
        }
        r
    }
}

impl Solver for AlsSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn name(&self) -> &'static str {
        "als"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        let (m, n) = data.shape();
        ensure!(!data.is_empty(), "the training data has no entries");
        let k = self.params.rank;
        ensure!(k <= m.min(n), "rank {k} exceeds min(rows, cols) = {} of the {m}x{n} data", m.min(n));
        let mut model = FactorModel::zeros(m, n, k);
        model.u = gaussian_factors(rng, m * k, k, self.params.init_scale, self.params.nonnegative);
        model.v = gaussian_factors(rng, n * k, k, self.params.init_scale, self.params.nonnegative);
        if self.params.biases {
            model.global_mean = data.mean();
            model.row_bias = Some(vec![0.0; m]);
            model.col_bias = Some(vec![0.0; n]);
        }
        model.row_ids = data.row_ids.clone();
        model.col_ids = data.col_ids.clone();
        model.solver = "als".into();
        model.params = serde_json::to_value(&self.params).unwrap_or_default();
        self.last_objective = None;
        // build both views now (outside the timed iterations' first step)
        let _ = (data.csr(), data.csc());
        Ok(model)
    }

    fn step(&mut self, data: &Ratings, m: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let (rows, cols) = data.shape();
        let users_first = !self.params.first.items_first(rows, cols);
        self.half(data, m, users_first, false)?;
        // the second half returns the training error after the sweep
        let sq = self.half(data, m, !users_first, true)?;
        let obj = sq
            + penalty(&m.u, m.row_bias.as_deref(), m.rank, data.csr(), &self.reg)
            + penalty(&m.v, m.col_bias.as_deref(), m.rank, data.csc(), &self.reg);
        state.record.objective = Some(obj);
        state.record.values.insert("train_rmse".into(), (sq / data.len() as f64).sqrt());
        if let Some(prev) = self.last_objective
            && self.params.tol > 0.0
            && prev - obj <= self.params.tol * prev.abs()
        {
            state.converged = true;
        }
        self.last_objective = Some(obj);
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        "ALS solves each least-squares problem exactly, so a non-finite value comes from extreme input values; \
         check the data for huge ratings or raise reg"
            .into()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::synth;
    use crate::metrics;
    use crate::solve::Executor;
    use faer::Mat;
    use faer::linalg::solvers::Solve;

    /// Random 1..5 ratings on an `m x n` matrix at the given density.
    pub(crate) fn random_ratings(m: usize, n: usize, density: f64, seed: u64) -> Ratings {
        let mut g = rng::rng(seed);
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for i in 0..m {
            for j in 0..n {
                if rng::uniform(&mut g) < density {
                    r.push(i as u32);
                    c.push(j as u32);
                    v.push(1.0 + rng::below(&mut g, 5) as f32);
                }
            }
        }
        Ratings::new(m, n, r, c, v).unwrap()
    }

    fn solver(rank: usize, reg: f64, weighted: bool, biases: bool, nonneg: bool) -> AlsSolver {
        Als {
            rank,
            reg,
            reg_bias: Some(reg * 0.5),
            weighted_reg: weighted,
            biases,
            nonnegative: nonneg,
            ..Als::default()
        }
        .check()
        .unwrap()
    }

    /// The normal equations of every user, built independently with faer:
    /// `(Phi^T Phi + D) z = Phi^T t`.
    fn user_system(data: &Ratings, m: &FactorModel, u: usize, s: &AlsSolver) -> (Mat<f64>, Mat<f64>) {
        let k = m.rank;
        let bias = m.row_bias.is_some();
        let d = k + bias as usize;
        let (idx, vals) = data.csr().lane(u);
        let phi = Mat::from_fn(idx.len(), d, |t, p| if p < k { m.item(idx[t] as usize)[p] as f64 } else { 1.0 });
        let tgt = Mat::from_fn(idx.len(), 1, |t, _| {
            vals[t] as f64 - m.global_mean - m.col_bias.as_ref().map_or(0.0, |c| c[idx[t] as usize] as f64)
        });
        let w = if s.params.weighted_reg { idx.len() as f64 } else { 1.0 };
        let mut a = phi.transpose() * &phi;
        for p in 0..d {
            a[(p, p)] += w * if p < k { s.params.reg } else { s.params.reg_bias.unwrap() };
        }
        (a, phi.transpose() * tgt)
    }

    #[test]
    fn half_step_equals_closed_form_ridge() {
        // the 6 x 5 problems run on the calling thread, the 300 x 60 ones
        // (nnz d^2 > SEQUENTIAL_WORK) in parallel
        for (weighted, biases, rows, rank) in [
            (true, true, 6, 2),
            (false, false, 6, 2),
            (true, false, 6, 2),
            (true, true, 300, 7),
            (false, false, 300, 8),
        ] {
            let data = random_ratings(rows, rows / 5 * 4 + 1, 0.6, 3);
            let s = solver(rank, 0.3, weighted, biases, false);
            let mut m = s.clone().init(&data, &mut rng::rng(1)).unwrap();
            if let Some(c) = m.col_bias.as_mut() {
                c.iter_mut().enumerate().for_each(|(j, v)| *v = 0.1 * (j % 5) as f32 - 0.2);
            }
            s.update_users(&data, &mut m).unwrap();
            for u in 0..rows {
                if data.csr().lane_len(u) == 0 {
                    continue;
                }
                let (a, b) = user_system(&data, &m, u, &s);
                let z = a.llt(faer::Side::Lower).unwrap().solve(&b);
                for p in 0..rank {
                    assert!((m.user(u)[p] as f64 - z[(p, 0)]).abs() < 1e-5 * (1.0 + z[(p, 0)].abs()), "u {u} p {p}");
                }
                if biases {
                    assert!(
                        (m.row_bias.as_ref().unwrap()[u] as f64 - z[(rank, 0)]).abs()
                            < 1e-5 * (1.0 + z[(rank, 0)].abs())
                    );
                }
            }
        }
    }

    #[test]
    fn normal_equations_hold_after_a_sweep() {
        // after a sweep the items were solved last: the gradient of the
        // objective with respect to each item's factors and bias is ~0
        let s0 = solver(4, 0.1, true, true, false);
        let data = random_ratings(30, 20, 0.3, 5);
        let s = AlsSolver { params: Als { first: SweepOrder::Users, ..s0.params.clone() }, ..s0 };
        let mut m = s.clone().init(&data, &mut rng::rng(2)).unwrap();
        let mut st = IterState::default();
        let mut s2 = s.clone();
        s2.step(&data, &mut m, &mut st).unwrap();
        let k = 4;
        for i in 0..20 {
            let (users, vals) = data.csc().lane(i);
            let w = users.len() as f64;
            let mut g = vec![0.0f64; k + 1];
            let mut scale = 0.0f64;
            for (&u, &r) in users.iter().zip(vals) {
                let u = u as usize;
                let e = r as f64 - metrics::Predict::predict(&m, u, i);
                for p in 0..k {
                    g[p] -= 2.0 * e * m.user(u)[p] as f64;
                    scale += (2.0 * m.user(u)[p] as f64 * r as f64).abs();
                }
                g[k] -= 2.0 * e;
            }
            for p in 0..k {
                g[p] += 2.0 * w * 0.1 * m.item(i)[p] as f64;
            }
            g[k] += 2.0 * w * 0.05 * m.col_bias.as_ref().unwrap()[i] as f64;
            for p in 0..=k {
                assert!(g[p].abs() < 1e-5 * (1.0 + scale), "item {i} coord {p}: {}", g[p]);
            }
        }
    }

    #[test]
    fn recovers_a_planted_low_rank_matrix() {
        let p = synth::planted_completion_rect(60, 50, 3, 1500, 11).unwrap();
        let s = Als { rank: 3, reg: 1e-9, weighted_reg: false, biases: false, ..Als::default() }.check().unwrap();
        let fit = Executor::new(s, &p.observed).max_iters(60).seed(4).run().unwrap();
        let e = metrics::relative_error(&fit.model, &p.truth);
        assert!(e < 1e-4, "relative error {e}");
    }

    #[test]
    fn objective_never_increases() {
        for (weighted, biases, nonneg) in [(true, true, false), (false, false, false), (true, true, true)] {
            let data = random_ratings(40, 30, 0.2, 9);
            let s = solver(5, 0.05, weighted, biases, nonneg);
            let fit = Executor::new(s, &data).max_iters(15).seed(1).run().unwrap();
            let obj: Vec<f64> = fit.history.iter().map(|h| h.objective.unwrap()).collect();
            for w in obj.windows(2) {
                // exact in real arithmetic; f32 storage of the factors may add ~1e-7
                assert!(w[1] <= w[0] * (1.0 + 1e-6), "{obj:?}");
            }
        }
    }

    #[test]
    fn empty_rows_and_columns_get_zero_factors() {
        // row 2 and column 4 have no entries
        let data =
            Ratings::new(4, 5, vec![0, 0, 1, 3, 3, 1], vec![0, 1, 2, 3, 0, 1], vec![5.0, 3.0, 4.0, 1.0, 2.0, 2.0])
                .unwrap();
        for biases in [true, false] {
            let s = solver(2, 0.1, true, biases, false);
            let fit = Executor::new(s, &data).max_iters(5).run().unwrap();
            let m = &fit.model;
            assert!(m.user(2).iter().all(|&v| v == 0.0) && m.item(4).iter().all(|&v| v == 0.0));
            if biases {
                assert_eq!(m.row_bias.as_ref().unwrap()[2], 0.0);
                assert_eq!(m.col_bias.as_ref().unwrap()[4], 0.0);
            }
            assert!(metrics::Predict::predict(m, 2, 4).is_finite());
        }
        // plain ridge with reg 0 and a row with fewer entries than the rank:
        // the safeguard gives a finite (minimum-norm) answer
        let s = solver(3, 0.0, false, false, false);
        let fit = Executor::new(s, &data).max_iters(3).run().unwrap();
        assert!(fit.model.u.iter().chain(&fit.model.v).all(|v| v.is_finite()));
    }

    #[test]
    fn nonnegative_rows_satisfy_kkt() {
        let data = random_ratings(25, 15, 0.4, 21);
        let s = solver(4, 0.1, true, true, true);
        let mut m = s.clone().init(&data, &mut rng::rng(3)).unwrap();
        s.update_items(&data, &mut m).unwrap();
        s.update_users(&data, &mut m).unwrap();
        assert!(m.u.iter().chain(&m.v).all(|&v| v >= 0.0));
        let mut active = 0;
        for u in 0..25 {
            let (a, b) = user_system(&data, &m, u, &s);
            let z: Vec<f64> =
                m.user(u).iter().map(|&v| v as f64).chain([m.row_bias.as_ref().unwrap()[u] as f64]).collect();
            let scale =
                (0..5).map(|p| a[(p, p)]).fold(1.0, f64::max) * (1.0 + z.iter().fold(0.0f64, |s, v| s.max(v.abs())));
            for p in 0..5 {
                let w = b[(p, 0)] - (0..5).map(|q| a[(p, q)] * z[q]).sum::<f64>();
                if p < 4 {
                    assert!(w <= 1e-5 * scale, "u {u} p {p}: gradient {w} points into the feasible set");
                    assert!((w * z[p]).abs() <= 1e-5 * scale * (1.0 + z[p]), "complementarity u {u} p {p}");
                    active += (z[p] == 0.0) as usize;
                } else {
                    assert!(w.abs() <= 1e-5 * scale, "the bias is free: {w}");
                }
            }
        }
        assert!(active > 0, "the test should exercise the bound");
    }

    #[test]
    fn same_seed_same_result_with_two_threads() {
        let data = random_ratings(200, 80, 0.1, 8);
        let run = |threads| {
            Executor::new(solver(6, 0.05, true, true, false), &data)
                .max_iters(4)
                .seed(7)
                .threads(threads)
                .run()
                .unwrap()
                .model
        };
        let a = run(2);
        assert_eq!(a, run(2));
        assert_eq!(a, run(1));
    }

    #[test]
    fn sweep_order_and_the_recorded_objective() {
        // auto solves the side with fewer rows first; the objective and
        // train RMSE recorded from the second half's residuals equal a
        // direct evaluation over all entries
        assert!(SweepOrder::Auto.items_first(200, 20) && !SweepOrder::Auto.items_first(20, 200));
        assert!(!SweepOrder::Auto.items_first(20, 20));
        for (rows, cols, first, biases) in [
            (60, 25, SweepOrder::Auto, true),
            (25, 60, SweepOrder::Auto, false),
            (300, 70, SweepOrder::Items, true),
            (300, 70, SweepOrder::Users, false),
        ] {
            let data = random_ratings(rows, cols, 0.2, 13);
            let s = AlsSolver {
                params: Als { first, ..solver(5, 0.05, true, biases, false).params },
                ..solver(5, 0.05, true, biases, false)
            };
            let m0 = s.clone().init(&data, &mut rng::rng(6)).unwrap();
            let mut m = m0.clone();
            let mut st = IterState::default();
            s.clone().step(&data, &mut m, &mut st).unwrap();
            // the same sweep by hand, in the expected order
            let mut h = m0.clone();
            if first.items_first(rows, cols) {
                s.update_items(&data, &mut h).unwrap();
                s.update_users(&data, &mut h).unwrap();
            } else {
                s.update_users(&data, &mut h).unwrap();
                s.update_items(&data, &mut h).unwrap();
            }
            assert_eq!(m, h, "{rows}x{cols} {first:?}");
            let want = s.objective(&data, &m);
            let got = st.record.objective.unwrap();
            assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
            let rmse = (squared_error(&m, data.csr()) / data.len() as f64).sqrt();
            assert!((st.record.values["train_rmse"] - rmse).abs() < 1e-9 * rmse);
        }
    }

    #[test]
    fn items_first_matches_users_first_on_the_transpose() {
        // solving items first is solving users first on the transposed data
        let data = random_ratings(40, 25, 0.3, 17);
        let params = Als { rank: 3, first: SweepOrder::Items, ..Als::default() };
        let t = data.transpose();
        let pt = Als { first: SweepOrder::Users, ..params };
        let mut s = pt.check().unwrap();
        // same start, swapped
        let m0 = s.clone().init(&data, &mut rng::rng(9)).unwrap();
        let mut mt = s.clone().init(&t, &mut rng::rng(9)).unwrap();
        (mt.u, mt.v) = (m0.v.clone(), m0.u.clone());
        (mt.row_bias, mt.col_bias) = (m0.col_bias.clone(), m0.row_bias.clone());
        let mut m = m0;
        let mut si = Als { first: SweepOrder::Items, ..s.params.clone() }.check().unwrap();
        for _ in 0..3 {
            si.step(&data, &mut m, &mut IterState::default()).unwrap();
            s.step(&t, &mut mt, &mut IterState::default()).unwrap();
        }
        assert_eq!(m.u, mt.v);
        assert_eq!(m.v, mt.u);
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(Als { rank: 0, ..Als::default() }.check().is_err());
        assert!(Als { reg: -1.0, ..Als::default() }.check().is_err());
        assert!(Als { reg: f64::NAN, ..Als::default() }.check().is_err());
        assert!(Als { reg_bias: Some(-0.1), ..Als::default() }.check().is_err());
        assert!(Als { init_scale: 0.0, ..Als::default() }.check().is_err());
        let data = random_ratings(5, 4, 0.5, 1);
        let mut s = Als { rank: 5, ..Als::default() }.check().unwrap();
        assert!(matches!(s.init(&data, &mut rng::rng(0)), Err(Error::InvalidInput(_))));
    }
}
