//! The `sgd` solver: epochs of block-stratified parallel SGD.

use rayon::prelude::*;

use super::grid::{Grid, epoch_schedule};
use super::kernel::{self, Aux, BlockState, Flags, Hyper};
use super::params::{Init, LrSchedule, Sgd};
use crate::data::Ratings;
use crate::error::{Error, Result, ensure};
use crate::model::FactorModel;
use crate::rng::{self, Rng};
use crate::solve::{IterState, Solver};

/// The validated [`Sgd`] solver. Holds the working copy of the model: factor
/// rows padded to a multiple of 8 floats, in the grid's relabelled order,
/// plus the per-row biases and adaptive-rate accumulators.
#[derive(Clone, Debug)]
pub struct SgdSolver {
    params: Sgd,
    seed: u64,
    grid: Option<Grid>,
    kp: usize,
    p: Vec<f32>,
    q: Vec<f32>,
    pa: Vec<Aux>,
    qa: Vec<Aux>,
    mu: f64,
    flags: Flags,
    epoch: usize,
    reload: Option<Vec<u8>>,
    init_seconds: Option<f64>,
}

impl SgdSolver {
    pub(crate) fn new(params: Sgd) -> SgdSolver {
        let flags = Flags {
            bias: params.biases,
            adaptive: params.schedule == LrSchedule::Adaptive,
            nonneg: params.nonneg,
            avx2: kernel::has_avx2_fma(),
        };
        SgdSolver {
            kp: kernel::padded(params.rank),
            params,
            seed: 0,
            grid: None,
            p: Vec::new(),
            q: Vec::new(),
            pa: Vec::new(),
            qa: Vec::new(),
            mu: 0.0,
            flags,
            epoch: 0,
            reload: None,
            init_seconds: None,
        }
    }

    /// The settings.
    pub fn params(&self) -> &Sgd {
        &self.params
    }

    /// Use (or not) the AVX2 + FMA kernel when the CPU has it (on by default;
    /// off gives the portable 8-lane build, for comparisons).
    pub fn with_simd(mut self, yes: bool) -> Self {
        self.flags.avx2 = yes && kernel::has_avx2_fma();
        self
    }

    /// The grid (after `init`).
    pub fn grid(&self) -> Option<&Grid> {
        self.grid.as_ref()
    }

    /// Factor and bias learning rates of epoch `t` (0-based).
    pub fn rates(&self, t: usize) -> (f64, f64) {
        let f = match self.params.schedule {
            LrSchedule::Inverse => 1.0 / (1.0 + self.params.decay * t as f64),
            LrSchedule::Constant | LrSchedule::Adaptive => 1.0,
        };
        (self.params.lr * f, self.params.bias_lr() * f)
    }

    fn hyper(&self, t: usize) -> Hyper {
        let (lr, lr_b) = self.rates(t);
        Hyper {
            lr: lr as f32,
            lr_b: lr_b as f32,
            reg: self.params.reg as f32,
            reg_b: self.params.reg_bias as f32,
            mu: self.mu as f32,
            inv_k: 1.0 / self.params.rank as f32,
        }
    }

    /// Copy the working factors into `model` (original order, true rank).
    fn write_model(&self, model: &mut FactorModel) {
        let (k, kp) = (self.params.rank, self.kp);
        let grid = self.grid.as_ref().expect("initialised");
        let copy = |dst: &mut [f32], src: &[f32], new: &[u32]| {
            dst.par_chunks_mut(k).with_min_len(1024).zip(new.par_iter()).for_each(|(d, &x)| {
                d.copy_from_slice(&src[x as usize * kp..x as usize * kp + k]);
            });
        };
        copy(&mut model.u, &self.p, &grid.row_new);
        copy(&mut model.v, &self.q, &grid.col_new);
        if self.params.biases {
            model.global_mean = self.mu;
            model.row_bias = Some(grid.row_new.iter().map(|&x| self.pa[x as usize].bias).collect());
            model.col_bias = Some(grid.col_new.iter().map(|&x| self.qa[x as usize].bias).collect());
        }
    }

    /// Copy `model` into the working factors (after a resume).
    fn read_model(&mut self, model: &FactorModel) -> Result<()> {
        let (k, kp) = (self.params.rank, self.kp);
        let grid = self.grid.as_ref().expect("initialised");
        ensure!(
            model.rank == k && model.nrows() == grid.row_new.len() && model.ncols() == grid.col_new.len(),
            "the checkpointed model does not match the data and rank"
        );
        for (i, &x) in grid.row_new.iter().enumerate() {
            self.p[x as usize * kp..x as usize * kp + k].copy_from_slice(model.user(i));
            if let Some(b) = &model.row_bias {
                self.pa[x as usize].bias = b[i];
            }
        }
        for (j, &x) in grid.col_new.iter().enumerate() {
            self.q[x as usize * kp..x as usize * kp + k].copy_from_slice(model.item(j));
            if let Some(b) = &model.col_bias {
                self.qa[x as usize].bias = b[j];
            }
        }
        self.mu = model.global_mean;
        Ok(())
    }

    /// `1/2 sum_entries (reg (|p_u|^2 + |q_i|^2) + reg_bias (b_u^2 + b_i^2))`
    /// with the current factors.
    fn penalty(&self) -> f64 {
        let grid = self.grid.as_ref().expect("initialised");
        let kp = self.kp;
        let side = |f: &[f32], a: &[Aux], counts: &[u32]| -> f64 {
            counts
                .par_iter()
                .enumerate()
                .with_min_len(1024)
                .map(|(x, &c)| {
                    let n2: f64 = f[x * kp..(x + 1) * kp].iter().map(|&v| (v as f64) * (v as f64)).sum();
                    let b = a[x].bias as f64;
                    c as f64 * (self.params.reg * n2 + self.params.reg_bias * b * b)
                })
                .sum()
        };
        0.5 * (side(&self.p, &self.pa, &grid.row_counts) + side(&self.q, &self.qa, &grid.col_counts))
    }

    /// One epoch over every block; returns the sum of squared errors seen.
    fn epoch(&mut self, t: usize) -> f64 {
        let h = self.hyper(t);
        let (flags, kp) = (self.flags, self.kp);
        let grid = self.grid.as_ref().expect("initialised");
        let g = grid.g;
        let (perm, order) = epoch_schedule(g, self.seed, t as u64);
        let parallel = rayon::current_num_threads() > 1;
        let mut per_block = vec![0.0f64; g * g];
        for &s in &order {
            let ps = split(&mut self.p, &grid.row_bounds, kp);
            let pas = split(&mut self.pa, &grid.row_bounds, 1);
            let mut qs: Vec<Option<&mut [f32]>> =
                split(&mut self.q, &grid.col_bounds, kp).into_iter().map(Some).collect();
            let mut qas: Vec<Option<&mut [Aux]>> =
                split(&mut self.qa, &grid.col_bounds, 1).into_iter().map(Some).collect();
            let tasks: Vec<(usize, BlockState<'_>)> = ps
                .into_iter()
                .zip(pas)
                .enumerate()
                .map(|(rb, (p, pa))| {
                    let cb = perm[(rb + s as usize) % g] as usize;
                    let q = qs[cb].take().expect("each column block once per stratum");
                    let qa = qas[cb].take().expect("each column block once per stratum");
                    (rb * g + cb, BlockState { p, pa, q, qa })
                })
                .collect();
            let run = |(b, st): (usize, BlockState<'_>)| -> (usize, f64) {
                if grid.block_len(b) == 0 {
                    return (b, 0.0);
                }
                (b, kernel::run_block(flags, kp, st, grid.runs_of(b), &grid.ent, grid.block_start[b], h))
            };
            let done: Vec<(usize, f64)> =
                if parallel { tasks.into_par_iter().map(run).collect() } else { tasks.into_iter().map(run).collect() };
            for (b, sq) in done {
                per_block[b] = sq;
            }
        }
        per_block.iter().sum()
    }
}

/// Split `buf` (rows of `stride` items) at the block bounds.
fn split<'a, T>(buf: &'a mut [T], bounds: &[usize], stride: usize) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(bounds.len() - 1);
    let mut rest = buf;
    for w in bounds.windows(2) {
        let (a, tail) = rest.split_at_mut((w[1] - w[0]) * stride);
        out.push(a);
        rest = tail;
    }
    out
}

/// Initial factors of `rows` rows: `rank` values per padded row from the
/// configured distribution, one RNG stream per 4096 rows (parallel and
/// independent of the thread count).
fn init_factors(params: &Sgd, rows: usize, kp: usize, seed: u64, side: u64) -> Vec<f32> {
    const CHUNK: usize = 4096;
    let (k, scale) = (params.rank, params.scale());
    let mut f = vec![0.0f32; rows * kp];
    f.par_chunks_mut(CHUNK * kp).enumerate().for_each(|(c, block)| {
        let mut g = rng::stream(seed ^ side, c as u64);
        for row in block.chunks_mut(kp) {
            for x in row[..k].iter_mut() {
                let v = match params.init {
                    Init::Normal => rng::normal(&mut g) * scale,
                    Init::Uniform => rng::uniform(&mut g) * scale,
                };
                *x = if params.nonneg { v.abs() as f32 } else { v as f32 };
            }
        }
    });
    f
}

impl Solver for SgdSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn name(&self) -> &'static str {
        "sgd"
    }

    fn init(&mut self, data: &Ratings, rng: &mut Rng) -> Result<FactorModel> {
        let t0 = std::time::Instant::now();
        let (m, n) = data.shape();
        ensure!(!data.is_empty(), "the training data has no entries");
        ensure!(
            self.params.rank <= m.min(n),
            "rank must be in 1..={} for a {m}x{n} matrix, got {}",
            m.min(n),
            self.params.rank
        );
        self.seed = rand::Rng::next_u64(rng);
        let g = match self.params.grid {
            0 => (2 * rayon::current_num_threads()).max(8),
            g => g,
        };
        let grid = Grid::build(data, g, self.seed)?;
        let kp = self.kp;
        self.p = init_factors(&self.params, m, kp, self.seed, 0x0055_4552);
        self.q = init_factors(&self.params, n, kp, self.seed, 0x4954_454D);
        self.pa = vec![Aux::default(); m];
        self.qa = vec![Aux::default(); n];
        self.mu = if self.params.biases { data.mean() } else { 0.0 };
        self.grid = Some(grid);
        let mut model = FactorModel::zeros(m, n, self.params.rank);
        self.write_model(&mut model);
        model.row_ids = data.row_ids.clone();
        model.col_ids = data.col_ids.clone();
        model.solver = "sgd".into();
        model.params = serde_json::to_value(&self.params).unwrap_or_default();
        self.init_seconds = Some(t0.elapsed().as_secs_f64());
        Ok(model)
    }

    fn step(&mut self, data: &Ratings, model: &mut FactorModel, state: &mut IterState) -> Result<()> {
        if let Some(bytes) = self.reload.take() {
            self.read_model(model)?;
            self.restore_accumulators(&bytes)?;
        }
        let t0 = std::time::Instant::now();
        let t = state.iteration;
        self.epoch = t + 1;
        let sq = self.epoch(t);
        self.write_model(model);
        let secs = t0.elapsed().as_secs_f64();
        let (lr, _) = self.rates(t);
        let n = data.len() as f64;
        state.record.objective = Some(0.5 * sq + self.penalty());
        state.record.values.insert("train_rmse_running".into(), (sq / n).sqrt());
        state.record.values.insert("lr".into(), lr);
        // wall time of the epoch itself (updates + copying the factors out)
        state.record.values.insert("step_seconds".into(), secs);
        if let Some(s) = self.init_seconds.take() {
            // grid + initial factors, reported once
            state.record.values.insert("init_seconds".into(), s);
        }
        Ok(())
    }

    fn divergence_hint(&self) -> String {
        let lr = self.params.lr;
        let extra = if self.params.schedule == LrSchedule::Adaptive { "" } else { ", or schedule=adaptive" };
        // a tenth of it, but no more than the default (from lr = 1e6, ten
        // tries of a tenth each would still diverge)
        let default = Sgd::default().lr;
        let try_lr = if lr / 10.0 > default { format!("{default}, the default") } else { format!("{}", lr / 10.0) };
        format!("the SGD updates overflowed in epoch {}: use a smaller lr (now {lr}; try {try_lr}){extra}", self.epoch)
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity((self.pa.len() + self.qa.len()) * 8);
        for a in self.pa.iter().chain(&self.qa) {
            out.extend_from_slice(&a.g.to_le_bytes());
            out.extend_from_slice(&a.gb.to_le_bytes());
        }
        Ok(out)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.reload = Some(bytes.to_vec());
        Ok(())
    }
}

impl SgdSolver {
    fn restore_accumulators(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if bytes.len() != (self.pa.len() + self.qa.len()) * 8 {
            return Err(Error::invalid("the checkpoint's solver state does not match the data"));
        }
        for (a, c) in self.pa.iter_mut().chain(self.qa.iter_mut()).zip(bytes.chunks_exact(8)) {
            a.g = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            a.gb = f32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        }
        Ok(())
    }
}
