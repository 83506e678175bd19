//! The lab's algorithm, faithfully (source material 003, sections 1 and 3).
//!
//! ```text
//! for epoch in 1..=N
//!   for r in 1..=m
//!     for c in 1..=n            (only where A[r, c] is observed, for the masked version)
//!       e      = A[r, c] - U[r, :] . V[c, :]
//!       U[r, :] += lr * e * V[c, :]
//!       V[c, :] += lr * e * U[r, :]      <- the *updated* U row
//! ```
//!
//! `U` and `V` start from `U(0, 1)`. Everything is computed in f64 on dense
//! matrices, as the lab does in PyTorch. [`LabSgd`] is the same algorithm as a
//! [`Solver`] over [`Ratings`] (`--algo lab-sgd`): rows in order, and within a
//! row the observed columns in increasing order, which is exactly the lab's
//! sweep restricted to the observed entries.

use faer::Mat;
use serde::{Deserialize, Serialize};

use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::{IterState, Solver};

/// The lab's default number of epochs.
pub const LAB_EPOCHS: usize = 1000;
/// The lab's default learning rate.
pub const LAB_LR: f64 = 0.01;

fn check_lab(m: usize, n: usize, rank: usize, num_epochs: usize, lr: f64) -> Result<()> {
    ensure!(m > 0 && n > 0, "the matrix is empty ({m}x{n})");
    ensure!(rank >= 1 && rank <= m.min(n), "rank must be in 1..={} for a {m}x{n} matrix, got {rank}", m.min(n));
    ensure!(num_epochs >= 1, "num_epochs must be at least 1");
    ensure!(lr > 0.0 && lr.is_finite(), "lr must be a positive number, got {lr}");
    Ok(())
}

/// `U(0, 1)` factors, `U` first (row-major), then `V`.
fn lab_init(m: usize, n: usize, rank: usize, g: &mut Rng) -> (Mat<f64>, Mat<f64>) {
    let mut u = Mat::<f64>::zeros(m, rank);
    let mut v = Mat::<f64>::zeros(n, rank);
    for i in 0..m {
        for t in 0..rank {
            u[(i, t)] = rng::uniform(g);
        }
    }
    for j in 0..n {
        for t in 0..rank {
            v[(j, t)] = rng::uniform(g);
        }
    }
    (u, v)
}

/// One lab update of rows `r` of `U` and `c` of `V` toward `a_rc`.
#[inline]
fn lab_update(u: &mut Mat<f64>, v: &mut Mat<f64>, r: usize, c: usize, a_rc: f64, lr: f64) {
    let k = u.ncols();
    let mut pred = 0.0;
    for t in 0..k {
        pred += u[(r, t)] * v[(c, t)];
    }
    let e = a_rc - pred;
    for t in 0..k {
        u[(r, t)] += lr * e * v[(c, t)];
    }
    for t in 0..k {
        v[(c, t)] += lr * e * u[(r, t)];
    }
}

fn lab_loop(
    a: &Mat<f64>,
    observed: impl Fn(usize, usize) -> bool,
    rank: usize,
    num_epochs: usize,
    lr: f64,
    seed: u64,
) -> Result<(Mat<f64>, Mat<f64>)> {
    let (m, n) = (a.nrows(), a.ncols());
    check_lab(m, n, rank, num_epochs, lr)?;
    let mut g = rng::rng(seed);
    let (mut u, mut v) = lab_init(m, n, rank, &mut g);
    for epoch in 1..=num_epochs {
        for r in 0..m {
            for c in 0..n {
                if observed(r, c) {
                    lab_update(&mut u, &mut v, r, c, a[(r, c)], lr);
                }
            }
        }
        let finite = (0..rank).all(|t| (0..m).all(|i| u[(i, t)].is_finite()) && (0..n).all(|j| v[(j, t)].is_finite()));
        if !finite {
            return Err(Error::Diverged {
                iteration: epoch,
                what: "the factors".into(),
                hint: format!("lower the learning rate (lr = {lr}; try {})", (lr / 10.0).min(LAB_LR)),
            });
        }
    }
    Ok((u, v))
}

/// The lab's `sgd_factorise(A, rank, num_epochs, lr)`: per-entry SGD on every
/// entry of the dense matrix `a`, rows then columns, `U` row first and then
/// the `V` row with the updated `U` row; `U(0, 1)` initialisation drawn from
/// `seed`. Returns `(U, V)` with `A ~ U V^T` (`m x rank`, `n x rank`).
///
/// Errors: an empty matrix, a non-finite entry, rank 0 or above `min(m, n)`,
/// `num_epochs` 0, `lr <= 0` ([`Error::InvalidInput`]); non-finite factors
/// ([`Error::Diverged`], naming the epoch).
///
/// ```
/// use lowrank::solve::sgd::{LAB_EPOCHS, LAB_LR, sgd_factorise, reconstruction_loss};
/// let a = lowrank::data::synth::lab_matrix();
/// let (u, v) = sgd_factorise(&a, 2, LAB_EPOCHS, LAB_LR, 0)?;
/// assert!(reconstruction_loss(&a, &u, &v) < 0.2);
/// # Ok::<(), lowrank::Error>(())
/// ```
pub fn sgd_factorise(a: &Mat<f64>, rank: usize, num_epochs: usize, lr: f64, seed: u64) -> Result<(Mat<f64>, Mat<f64>)> {
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            ensure!(
                a[(i, j)].is_finite(),
                "entry ({i}, {j}) is not finite; use sgd_factorise_masked for missing entries"
            );
        }
    }
    lab_loop(a, |_, _| true, rank, num_epochs, lr, seed)
}

/// The lab's `sgd_factorise_masked(A, M, rank, num_epochs, lr)`: as
/// [`sgd_factorise`], updating only where `mask` is non-zero (1 = observed).
/// Masked-out entries of `a` may hold anything, NaN included.
///
/// Errors: as [`sgd_factorise`], plus a mask of another shape, a mask that
/// observes nothing, or a non-finite observed entry.
pub fn sgd_factorise_masked(
    a: &Mat<f64>,
    mask: &Mat<f64>,
    rank: usize,
    num_epochs: usize,
    lr: f64,
    seed: u64,
) -> Result<(Mat<f64>, Mat<f64>)> {
    ensure!(
        a.nrows() == mask.nrows() && a.ncols() == mask.ncols(),
        "the matrix is {}x{} but the mask is {}x{}",
        a.nrows(),
        a.ncols(),
        mask.nrows(),
        mask.ncols()
    );
    let mut any = false;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            if mask[(i, j)] != 0.0 {
                any = true;
                ensure!(a[(i, j)].is_finite(), "observed entry ({i}, {j}) is not finite");
            }
        }
    }
    ensure!(any, "the mask observes no entry");
    lab_loop(a, |i, j| mask[(i, j)] != 0.0, rank, num_epochs, lr, seed)
}

/// The 0/1 mask of the non-NaN entries of `a` (the lab's `M`).
pub fn nan_mask(a: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| if a[(i, j)].is_nan() { 0.0 } else { 1.0 })
}

/// `||A - U V^T||_F^2` over all entries (the lab's `mse_loss(reduction='sum')`).
pub fn reconstruction_loss(a: &Mat<f64>, u: &Mat<f64>, v: &Mat<f64>) -> f64 {
    let r = a - u * v.transpose();
    r.squared_norm_l2()
}

/// `sum over observed (mask != 0) of (A - U V^T)^2`.
pub fn masked_loss(a: &Mat<f64>, mask: &Mat<f64>, u: &Mat<f64>, v: &Mat<f64>) -> f64 {
    let x = u * v.transpose();
    let mut s = 0.0;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            if mask[(i, j)] != 0.0 {
                s += (a[(i, j)] - x[(i, j)]).powi(2);
            }
        }
    }
    s
}

/// The lab's section 2: the SVD of `a` with all but the `keep` largest
/// singular values set to zero, multiplied back (`U_t S_t V_t^T`), and the
/// singular values. By Eckart-Young this is the best rank-`keep`
/// approximation in Frobenius norm.
pub fn truncated_svd_reconstruction(a: &Mat<f64>, keep: usize) -> Result<(Mat<f64>, Vec<f64>)> {
    ensure!(
        keep <= a.nrows().min(a.ncols()),
        "cannot keep {keep} singular values of a {}x{} matrix",
        a.nrows(),
        a.ncols()
    );
    let svd = a.thin_svd().map_err(|e| Error::Numerical(format!("the SVD did not converge ({e:?})")))?;
    let s: Vec<f64> = svd.S().column_vector().iter().copied().collect();
    let (u, v) = (svd.U(), svd.V());
    let rec = Mat::from_fn(a.nrows(), a.ncols(), |i, j| (0..keep).map(|t| u[(i, t)] * s[t] * v[(j, t)]).sum());
    Ok((rec, s))
}

/// Settings of `--algo lab-sgd`: the lab's algorithm on the observed entries
/// (no biases, no regularization, `U(0, 1)` init, constant rate).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LabSgd {
    /// Rank (the lab factorises at rank 2).
    pub rank: usize,
    /// Learning rate (the lab's default 0.01).
    pub lr: f64,
}

impl Default for LabSgd {
    fn default() -> Self {
        LabSgd { rank: 2, lr: LAB_LR }
    }
}

impl LabSgd {
    /// Validate into a solver (the shape is checked in `init`).
    pub fn check(self) -> Result<LabSgdSolver> {
        ensure!(self.rank >= 1, "rank must be at least 1");
        ensure!(self.lr > 0.0 && self.lr.is_finite(), "lr must be a positive number, got {}", self.lr);
        Ok(LabSgdSolver { params: self, u: Mat::new(), v: Mat::new(), epoch: 0, reload: false })
    }
}

/// The validated [`LabSgd`] solver (f64 working factors).
#[derive(Clone, Debug)]
pub struct LabSgdSolver {
    params: LabSgd,
    u: Mat<f64>,
    v: Mat<f64>,
    epoch: usize,
    reload: bool,
}

impl Solver for LabSgdSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn name(&self) -> &'static str {
        "lab-sgd"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        let (m, n) = data.shape();
        check_lab(m, n, self.params.rank, 1, self.params.lr)?;
        ensure!(!data.is_empty(), "the training data has no entries");
        let (u, v) = lab_init(m, n, self.params.rank, rng);
        self.u = u;
        self.v = v;
        Ok(FactorModel::from_dense(&self.u, &self.v))
    }

    fn step(&mut self, data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        if self.reload {
            self.u = model.u_dense();
            self.v = model.v_dense();
            self.reload = false;
        }
        self.epoch = state.iteration + 1;
        let csr = data.csr();
        let mut sq = 0.0;
        for r in 0..data.nrows() {
            let (cols, vals) = csr.lane(r);
            for (&c, &x) in cols.iter().zip(vals) {
                let c = c as usize;
                let pred: f64 = (0..self.params.rank).map(|t| self.u[(r, t)] * self.v[(c, t)]).sum();
                sq += (x as f64 - pred).powi(2);
                lab_update(&mut self.u, &mut self.v, r, c, x as f64, self.params.lr);
            }
        }
        *model = FactorModel::from_dense(&self.u, &self.v);
        state.record.objective = Some(sq);
        state.record.values.insert("train_rmse_running".into(), (sq / data.len() as f64).sqrt());
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        format!(
            "the updates blew up in epoch {}: lower lr (now {}; try {})",
            self.epoch,
            self.params.lr,
            // a tenth of it, but no more than the default
            (self.params.lr / 10.0).min(LAB_LR)
        )
    }

    /// The f64 factors the updates run on (the model holds them rounded to
    /// f32, so resuming from the model alone would drift by one rounding).
    fn save_state(&self) -> Result<Vec<u8>> {
        let cols = |a: &Mat<f64>| -> Vec<f64> { (0..a.ncols()).flat_map(|j| a.col_as_slice(j).to_vec()).collect() };
        let state = serde_json::json!({"rows": self.u.nrows(), "cols": self.v.nrows(), "rank": self.u.ncols(),
            "u": cols(&self.u), "v": cols(&self.v)});
        serde_json::to_vec(&state).map_err(|e| Error::invalid(format!("lab-sgd state: {e}")))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            // a checkpoint from before the state was saved: start from the model
            self.reload = true;
            return Ok(());
        }
        #[derive(serde::Deserialize)]
        struct State {
            rows: usize,
            cols: usize,
            rank: usize,
            u: Vec<f64>,
            v: Vec<f64>,
        }
        let st: State = serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("bad lab-sgd state: {e}")))?;
        // the sizes `init` gave for this data and rank (the executor checked
        // the model's; the state must agree with them too)
        ensure!(
            (st.rows, st.cols, st.rank) == (self.u.nrows(), self.v.nrows(), self.u.ncols())
                && st.rows.checked_mul(st.rank) == Some(st.u.len())
                && st.cols.checked_mul(st.rank) == Some(st.v.len()),
            "bad lab-sgd state: factor sizes"
        );
        self.u = Mat::from_fn(st.rows, st.rank, |i, t| st.u[t * st.rows + i]);
        self.v = Mat::from_fn(st.cols, st.rank, |j, t| st.v[t * st.cols + j]);
        self.reload = false;
        Ok(())
    }
}
