//! The masked factorization objective and its derivatives, shared by `gd`
//! and `newton`.
//!
//! Parameters are one flat vector `theta = [vec(U); vec(V)]` (`U` is `m x k`,
//! `V` is `n x k`, both row-major, f64). For the observed set `Omega` with
//! residuals `e_ij = u_i . v_j - x_ij`:
//!
//! - `SSE = sum_Omega e_ij^2` (seed 002's `obj`);
//! - `grad_{u_i} SSE = 2 sum_j e_ij v_j`, `grad_{v_j} SSE = 2 sum_i e_ij u_i`;
//! - Hessian blocks: `H_{u_i u_i} = 2 sum_j v_j v_j^T`,
//!   `H_{v_j v_j} = 2 sum_i u_i u_i^T`, and for `(i, j)` observed
//!   `H_{u_i v_j} = 2 (v_j u_i^T + e_ij I)`; all other blocks are 0.
//!   (The notebook's `fsecond` drops the factors 2 and the `v_j u_i^T` term:
//!   one reason its Newton steps went nowhere.)
//!
//! Along a direction `(P, Q)` every residual is a quadratic in the step,
//! `e_ij(a) = e_ij + a b_ij + a^2 c_ij` with `b_ij = p_i . v_j + u_i . q_j`
//! and `c_ij = p_i . q_j`, so the objective along a line is an exact quartic
//! ([`MaskedProblem::line_poly`]): line searches on it need no extra pass
//! over the data and do not lose precision to `f(x + a p) - f(x)`.
//!
//! Every pass is parallel over rows (CSR) or columns (CSC) with one task
//! owning each output, and sums are taken over fixed chunks in order, so the
//! results do not depend on the thread count.

use faer::Mat;
use rayon::prelude::*;

use crate::data::Ratings;
use crate::error::{Result, ensure};

/// Rows (or columns) per parallel task.
const ROWS_PER_TASK: usize = 32;
/// Entries per task of the elementwise passes.
const CHUNK: usize = 4096;

/// The observed entries in the layouts the kernels need.
#[derive(Clone, Debug)]
pub struct MaskedProblem {
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
    /// Rank.
    pub k: usize,
    /// Value subtracted from every target (the global mean when centering).
    pub offset: f64,
    indptr: Vec<usize>,
    col: Vec<u32>,
    row: Vec<u32>,
    /// Targets in CSR order, minus `offset`.
    x: Vec<f64>,
    cptr: Vec<usize>,
    crow: Vec<u32>,
    /// CSR position of each CSC position.
    cpos: Vec<u32>,
}

impl MaskedProblem {
    /// Lay out `data` for rank `k`, subtracting `offset` from every value.
    pub fn new(data: &Ratings, k: usize, offset: f64) -> Result<MaskedProblem> {
        ensure!(!data.is_empty(), "the training data has no observed entries");
        let (m, n) = data.shape();
        ensure!(k >= 1, "the rank must be at least 1");
        let csr = data.csr();
        let csc = data.csc();
        let nnz = data.len();
        let mut pos_of_entry = vec![0u32; nnz];
        for (p, &t) in csr.entry.iter().enumerate() {
            pos_of_entry[t as usize] = p as u32;
        }
        let cpos = csc.entry.iter().map(|&t| pos_of_entry[t as usize]).collect();
        let mut row = vec![0u32; nnz];
        for i in 0..m {
            row[csr.indptr[i]..csr.indptr[i + 1]].fill(i as u32);
        }
        Ok(MaskedProblem {
            m,
            n,
            k,
            offset,
            indptr: csr.indptr.clone(),
            col: csr.indices.clone(),
            row,
            x: csr.values.iter().map(|&v| v as f64 - offset).collect(),
            cptr: csc.indptr.clone(),
            crow: csc.indices.clone(),
            cpos,
        })
    }

    /// Number of observed entries.
    pub fn nnz(&self) -> usize {
        self.x.len()
    }

    /// Length of the parameter vector, `(m + n) k`.
    pub fn dim(&self) -> usize {
        (self.m + self.n) * self.k
    }

    /// Split `theta` into `(U, V)`.
    pub fn split<'a>(&self, theta: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        theta.split_at(self.m * self.k)
    }

    /// Residuals `e = u_i . v_j - x_ij` in CSR order.
    pub fn residuals(&self, theta: &[f64], e: &mut [f64]) {
        let k = self.k;
        let (u, v) = self.split(theta);
        e.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            let base = c * CHUNK;
            for (t, o) in out.iter_mut().enumerate() {
                let p = base + t;
                let (i, j) = (self.row[p] as usize, self.col[p] as usize);
                *o = dot(&u[i * k..(i + 1) * k], &v[j * k..(j + 1) * k]) - self.x[p];
            }
        });
    }

    /// `b_ij = p_i . v_j + u_i . q_j` and, if asked, `c_ij = p_i . q_j` for a
    /// direction `dir = [vec(P); vec(Q)]`, in CSR order.
    pub fn directional(&self, theta: &[f64], dir: &[f64], b: &mut [f64], c: Option<&mut [f64]>) {
        let k = self.k;
        let (u, v) = self.split(theta);
        let (pu, pv) = self.split(dir);
        let work = |base: usize, bo: &mut [f64], mut co: Option<&mut [f64]>| {
            for t in 0..bo.len() {
                let p = base + t;
                let (i, j) = (self.row[p] as usize, self.col[p] as usize);
                let (ui, vj) = (&u[i * k..(i + 1) * k], &v[j * k..(j + 1) * k]);
                let (pi, qj) = (&pu[i * k..(i + 1) * k], &pv[j * k..(j + 1) * k]);
                bo[t] = dot(pi, vj) + dot(ui, qj);
                if let Some(co) = co.as_deref_mut() {
                    co[t] = dot(pi, qj);
                }
            }
        };
        match c {
            Some(c) => b
                .par_chunks_mut(CHUNK)
                .zip(c.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(ch, (bo, co))| work(ch * CHUNK, bo, Some(co))),
            None => b.par_chunks_mut(CHUNK).enumerate().for_each(|(ch, bo)| work(ch * CHUNK, bo, None)),
        }
    }

    /// `out_{u_i} = scale sum_j w_ij a_j` and `out_{v_j} = scale sum_i w_ij
    /// a_i` where `a` is the other factor of `src` (`V` for the rows, `U` for
    /// the columns) and `w` a weight per observed entry in CSR order. With
    /// `w = e`, `src = theta` and `scale = 2` this is the SSE gradient.
    pub fn weighted_sums(&self, src: &[f64], w: &[f64], scale: f64, out: &mut [f64]) {
        let k = self.k;
        let (su, sv) = self.split(src);
        let (ou, ov) = out.split_at_mut(self.m * k);
        ou.par_chunks_mut(k * ROWS_PER_TASK).enumerate().for_each(|(blk, o)| {
            for (r, gi) in o.chunks_mut(k).enumerate() {
                let i = blk * ROWS_PER_TASK + r;
                gi.fill(0.0);
                for p in self.indptr[i]..self.indptr[i + 1] {
                    let j = self.col[p] as usize;
                    axpy(gi, w[p], &sv[j * k..(j + 1) * k]);
                }
                gi.iter_mut().for_each(|g| *g *= scale);
            }
        });
        ov.par_chunks_mut(k * ROWS_PER_TASK).enumerate().for_each(|(blk, o)| {
            for (r, gj) in o.chunks_mut(k).enumerate() {
                let j = blk * ROWS_PER_TASK + r;
                gj.fill(0.0);
                for q in self.cptr[j]..self.cptr[j + 1] {
                    let i = self.crow[q] as usize;
                    axpy(gj, w[self.cpos[q] as usize], &su[i * k..(i + 1) * k]);
                }
                gj.iter_mut().for_each(|g| *g *= scale);
            }
        });
    }

    /// Gradient of `SSE` (without regularization) into `g`, given the
    /// residuals `e`.
    pub fn sse_grad(&self, theta: &[f64], e: &[f64], g: &mut [f64]) {
        self.weighted_sums(theta, e, 2.0, g);
    }

    /// Hessian-vector product of `SSE + reg ||theta||^2` at `theta` (with
    /// residuals `e`) times `dir`, into `out`. `b` is scratch of length nnz.
    pub fn hess_vec(&self, theta: &[f64], e: &[f64], reg: f64, dir: &[f64], b: &mut [f64], out: &mut [f64]) {
        let k = self.k;
        // 2 sum_j b_ij v_j (u rows) and 2 sum_i b_ij u_i (v rows)
        self.directional(theta, dir, b, None);
        self.weighted_sums(theta, b, 2.0, out);
        // + 2 sum_j e_ij q_j (u rows) and + 2 sum_i e_ij p_i (v rows)
        let (pu, pv) = self.split(dir);
        let (ou, ov) = out.split_at_mut(self.m * k);
        ou.par_chunks_mut(k * ROWS_PER_TASK).enumerate().for_each(|(blk, o)| {
            for (r, oi) in o.chunks_mut(k).enumerate() {
                let i = blk * ROWS_PER_TASK + r;
                for p in self.indptr[i]..self.indptr[i + 1] {
                    let j = self.col[p] as usize;
                    axpy(oi, 2.0 * e[p], &pv[j * k..(j + 1) * k]);
                }
            }
        });
        ov.par_chunks_mut(k * ROWS_PER_TASK).enumerate().for_each(|(blk, o)| {
            for (r, oj) in o.chunks_mut(k).enumerate() {
                let j = blk * ROWS_PER_TASK + r;
                for q in self.cptr[j]..self.cptr[j + 1] {
                    let i = self.crow[q] as usize;
                    axpy(oj, 2.0 * e[self.cpos[q] as usize], &pu[i * k..(i + 1) * k]);
                }
            }
        });
        if reg != 0.0 {
            out.par_iter_mut().zip(dir.par_iter()).with_min_len(CHUNK).for_each(|(o, &d)| *o += 2.0 * reg * d);
        }
    }

    /// The diagonal blocks of the Hessian of `SSE + reg ||theta||^2`:
    /// `2 sum_j v_j v_j^T + 2 reg I` for every row, then
    /// `2 sum_i u_i u_i^T + 2 reg I` for every column, each `k x k`
    /// row-major.
    pub fn diag_blocks(&self, theta: &[f64], reg: f64) -> Vec<f64> {
        let k = self.k;
        let kk = k * k;
        let (u, v) = self.split(theta);
        let mut out = vec![0.0; (self.m + self.n) * kk];
        let (bu, bv) = out.split_at_mut(self.m * kk);
        let fill = |blk: &mut [f64], vecs: &mut dyn Iterator<Item = &[f64]>| {
            for a in vecs {
                for s in 0..k {
                    for t in 0..k {
                        blk[s * k + t] += 2.0 * a[s] * a[t];
                    }
                }
            }
            for s in 0..k {
                blk[s * k + s] += 2.0 * reg;
            }
        };
        bu.par_chunks_mut(kk).enumerate().with_min_len(ROWS_PER_TASK).for_each(|(i, blk)| {
            let mut it = (self.indptr[i]..self.indptr[i + 1])
                .map(|p| &v[self.col[p] as usize * k..(self.col[p] as usize + 1) * k]);
            fill(blk, &mut it);
        });
        bv.par_chunks_mut(kk).enumerate().with_min_len(ROWS_PER_TASK).for_each(|(j, blk)| {
            let mut it = (self.cptr[j]..self.cptr[j + 1])
                .map(|q| &u[self.crow[q] as usize * k..(self.crow[q] as usize + 1) * k]);
            fill(blk, &mut it);
        });
        out
    }

    /// The dense Hessian of `SSE + reg ||theta||^2` (`(m + n) k` square; for
    /// small problems and tests).
    pub fn dense_hessian(&self, theta: &[f64], e: &[f64], reg: f64) -> Mat<f64> {
        let k = self.k;
        let d = self.dim();
        let mk = self.m * k;
        let (u, v) = self.split(theta);
        let mut h = Mat::<f64>::zeros(d, d);
        let blocks = self.diag_blocks(theta, reg);
        for b in 0..self.m + self.n {
            for s in 0..k {
                for t in 0..k {
                    h[(b * k + s, b * k + t)] = blocks[b * k * k + s * k + t];
                }
            }
        }
        for p in 0..self.nnz() {
            let (i, j) = (self.row[p] as usize, self.col[p] as usize);
            for s in 0..k {
                for t in 0..k {
                    // d^2 / du_{i s} dv_{j t} = 2 (v_{j s} u_{i t} + e_ij [s == t])
                    let val = 2.0 * (v[j * k + s] * u[i * k + t] + if s == t { e[p] } else { 0.0 });
                    h[(i * k + s, mk + j * k + t)] = val;
                    h[(mk + j * k + t, i * k + s)] = val;
                }
            }
        }
        h
    }

    /// Coefficients `[a0, a1, a2, a3, a4]` of `SSE(theta + a dir) + reg
    /// ||theta + a dir||^2` as a polynomial in `a`. `b` and `c` are scratch
    /// of length nnz.
    pub fn line_poly(&self, theta: &[f64], e: &[f64], reg: f64, dir: &[f64], b: &mut [f64], c: &mut [f64]) -> [f64; 5] {
        self.directional(theta, dir, b, Some(c));
        let parts: Vec<[f64; 5]> = e
            .par_chunks(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .zip(c.par_chunks(CHUNK))
            .map(|((e, b), c)| {
                let mut s = [0.0; 5];
                for t in 0..e.len() {
                    let (e, b, c) = (e[t], b[t], c[t]);
                    s[0] += e * e;
                    s[1] += 2.0 * e * b;
                    s[2] += b * b + 2.0 * e * c;
                    s[3] += 2.0 * b * c;
                    s[4] += c * c;
                }
                s
            })
            .collect();
        let mut s = [0.0; 5];
        for p in parts {
            for t in 0..5 {
                s[t] += p[t];
            }
        }
        if reg != 0.0 {
            s[0] += reg * sum_sq(theta);
            s[1] += 2.0 * reg * dot_par(theta, dir);
            s[2] += reg * sum_sq(dir);
        }
        s
    }
}

/// Deterministic parallel sum of squares.
pub fn sum_sq(x: &[f64]) -> f64 {
    crate::optim::optimizer::sum_sq(x)
}

/// Deterministic parallel dot product (fixed chunks summed in order).
pub fn dot_par(a: &[f64], b: &[f64]) -> f64 {
    let parts: Vec<f64> = a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)).map(|(x, y)| dot(x, y)).collect();
    parts.iter().sum()
}

#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for t in 0..a.len().min(b.len()) {
        s += a[t] * b[t];
    }
    s
}

#[inline]
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Evaluate a polynomial with coefficients `c[0] + c[1] a + ...`, without the
/// constant term (the change from `a = 0`).
pub fn poly_delta(c: &[f64; 5], a: f64) -> f64 {
    a * (c[1] + a * (c[2] + a * (c[3] + a * c[4])))
}

/// The global minimizer over `a > 0` of the quartic `c` (a critical point
/// where the polynomial is lowest), or `None` when the polynomial is
/// unbounded below for `a > 0` or does not decrease.
pub fn quartic_min(c: &[f64; 5]) -> Option<f64> {
    // derivative: c1 + 2 c2 a + 3 c3 a^2 + 4 c4 a^3
    let roots = real_roots_cubic(4.0 * c[4], 3.0 * c[3], 2.0 * c[2], c[1]);
    let deriv = |a: f64| c[1] + a * (2.0 * c[2] + a * (3.0 * c[3] + a * 4.0 * c[4]));
    let second = |a: f64| 2.0 * c[2] + a * (6.0 * c[3] + a * 12.0 * c[4]);
    // unbounded below along a -> +inf?
    let lead = [c[4], c[3], c[2], c[1]].into_iter().find(|&x| x != 0.0).unwrap_or(0.0);
    if lead < 0.0 {
        return None;
    }
    let mut best: Option<(f64, f64)> = None;
    for mut a in roots {
        // Newton polish of the root
        for _ in 0..3 {
            let s = second(a);
            if s != 0.0 {
                let na = a - deriv(a) / s;
                if na.is_finite() {
                    a = na;
                }
            }
        }
        if a > 0.0 && a.is_finite() {
            let f = poly_delta(c, a);
            if f < 0.0 && best.is_none_or(|b| f < b.1) {
                best = Some((a, f));
            }
        }
    }
    best.map(|b| b.0)
}

/// Real roots of `a x^3 + b x^2 + c x + d` (lower degrees handled).
fn real_roots_cubic(a: f64, b: f64, c: f64, d: f64) -> Vec<f64> {
    let scale = [a, b, c, d].iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if scale == 0.0 {
        return vec![];
    }
    if a.abs() <= 1e-14 * scale {
        // quadratic b x^2 + c x + d
        if b.abs() <= 1e-14 * scale {
            return if c != 0.0 { vec![-d / c] } else { vec![] };
        }
        let disc = c * c - 4.0 * b * d;
        if disc < 0.0 {
            return vec![];
        }
        let q = -0.5 * (c + c.signum() * disc.sqrt());
        let mut r = vec![q / b];
        if q != 0.0 {
            r.push(d / q);
        }
        return r;
    }
    // depressed cubic t^3 + p t + q with x = t - b / (3a)
    let (b, c, d) = (b / a, c / a, d / a);
    let p = c - b * b / 3.0;
    let q = 2.0 * b * b * b / 27.0 - b * c / 3.0 + d;
    let shift = -b / 3.0;
    let disc = q * q / 4.0 + p * p * p / 27.0;
    if disc > 0.0 {
        let s = disc.sqrt();
        let t = (-q / 2.0 + s).cbrt() + (-q / 2.0 - s).cbrt();
        vec![t + shift]
    } else if p == 0.0 {
        vec![shift]
    } else {
        let r = 2.0 * (-p / 3.0).sqrt();
        let arg = (3.0 * q / (p * r)).clamp(-1.0, 1.0);
        let phi = arg.acos() / 3.0;
        (0..3).map(|m| r * (phi - 2.0 * std::f64::consts::PI * m as f64 / 3.0).cos() + shift).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn small_problem() -> (Ratings, MaskedProblem, Vec<f64>) {
        // 4 x 3 with 8 observed entries, rank 2
        let rows = vec![0, 0, 1, 1, 2, 3, 3, 2];
        let cols = vec![0, 2, 1, 2, 0, 1, 2, 1];
        let vals = vec![1.0, -2.0, 0.5, 3.0, 2.5, -1.0, 0.25, 1.5];
        let r = Ratings::new(4, 3, rows, cols, vals).unwrap();
        let p = MaskedProblem::new(&r, 2, 0.1).unwrap();
        let mut g = crate::rng::rng(5);
        let theta: Vec<f64> = (0..p.dim()).map(|_| crate::rng::normal(&mut g)).collect();
        (r, p, theta)
    }

    fn sse(p: &MaskedProblem, theta: &[f64], reg: f64) -> f64 {
        let mut e = vec![0.0; p.nnz()];
        p.residuals(theta, &mut e);
        e.iter().map(|x| x * x).sum::<f64>() + reg * theta.iter().map(|x| x * x).sum::<f64>()
    }

    #[test]
    fn residuals_match_the_definition() {
        let (r, p, theta) = small_problem();
        let mut e = vec![0.0; p.nnz()];
        p.residuals(&theta, &mut e);
        let (u, v) = p.split(&theta);
        let mut total = 0.0;
        for (i, j, x) in r.iter() {
            let pred = u[2 * i] * v[2 * j] + u[2 * i + 1] * v[2 * j + 1];
            total += (pred - (x as f64 - 0.1)).powi(2);
        }
        assert!((e.iter().map(|x| x * x).sum::<f64>() - total).abs() < 1e-12);
    }

    #[test]
    fn gradient_and_hessian_match_finite_differences() {
        let (_, p, theta) = small_problem();
        let reg = 0.3;
        let d = p.dim();
        let mut e = vec![0.0; p.nnz()];
        p.residuals(&theta, &mut e);
        let mut g = vec![0.0; d];
        p.sse_grad(&theta, &e, &mut g);
        for i in 0..d {
            g[i] += 2.0 * reg * theta[i];
        }
        // central differences: error O(h^2 f''') ~ 1e-10 at h = 1e-5 on a
        // quartic of unit-sized coefficients, round-off ~ 1e-16 / 1e-5
        let h = 1e-5;
        let h_dense = p.dense_hessian(&theta, &e, reg);
        let mut b = vec![0.0; p.nnz()];
        for i in 0..d {
            let mut tp = theta.clone();
            let mut tm = theta.clone();
            tp[i] += h;
            tm[i] -= h;
            let fd = (sse(&p, &tp, reg) - sse(&p, &tm, reg)) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-7 * (1.0 + g[i].abs()), "grad {i}: {fd} vs {}", g[i]);
            // Hessian column i by differences of the analytic gradient
            let grad_at = |t: &[f64]| {
                let mut e = vec![0.0; p.nnz()];
                p.residuals(t, &mut e);
                let mut g = vec![0.0; d];
                p.sse_grad(t, &e, &mut g);
                (0..d).map(|s| g[s] + 2.0 * reg * t[s]).collect::<Vec<f64>>()
            };
            let (gp, gm) = (grad_at(&tp), grad_at(&tm));
            let mut unit = vec![0.0; d];
            unit[i] = 1.0;
            let mut hv = vec![0.0; d];
            p.hess_vec(&theta, &e, reg, &unit, &mut b, &mut hv);
            for s in 0..d {
                let fd = (gp[s] - gm[s]) / (2.0 * h);
                assert!(
                    (fd - h_dense[(s, i)]).abs() < 1e-7 * (1.0 + fd.abs()),
                    "H[{s},{i}]: {fd} vs {}",
                    h_dense[(s, i)]
                );
                assert!((hv[s] - h_dense[(s, i)]).abs() < 1e-12 * (1.0 + fd.abs()), "Hv[{s},{i}]");
            }
        }
    }

    #[test]
    fn line_polynomial_is_exact() {
        let (_, p, theta) = small_problem();
        let reg = 0.2;
        let mut g = crate::rng::rng(9);
        let dir: Vec<f64> = (0..p.dim()).map(|_| crate::rng::normal(&mut g)).collect();
        let mut e = vec![0.0; p.nnz()];
        p.residuals(&theta, &mut e);
        let (mut b, mut c) = (vec![0.0; p.nnz()], vec![0.0; p.nnz()]);
        let poly = p.line_poly(&theta, &e, reg, &dir, &mut b, &mut c);
        let f0 = sse(&p, &theta, reg);
        assert!((poly[0] - f0).abs() < 1e-12 * f0);
        for a in [-1.0, 0.3, 2.0] {
            let t: Vec<f64> = theta.iter().zip(&dir).map(|(x, d)| x + a * d).collect();
            let f = sse(&p, &t, reg);
            assert!((f0 + poly_delta(&poly, a) - f).abs() < 1e-10 * f.max(1.0), "a = {a}");
        }
    }

    #[test]
    fn quartic_minimizer_by_brute_force() {
        // a few quartics with known and brute-forced minimizers over a > 0
        let cases: [[f64; 5]; 4] = [
            [0.0, -2.0, 1.0, 0.0, 0.0],  // (a - 1)^2 - 1: minimizer 1
            [0.0, -1.0, 0.0, 0.0, 1.0],  // a^4 - a: minimizer (1/4)^(1/3)
            [5.0, -3.0, -4.0, 0.5, 1.0], // two local minima
            [0.0, -1.0, 3.0, -3.0, 1.0], // (a - 1)^4 - 1 + ... shape
        ];
        for c in cases {
            let a = quartic_min(&c).unwrap();
            let mut best = (0.0, 0.0);
            for s in 1..=400_000 {
                let x = s as f64 * 1e-5;
                let f = poly_delta(&c, x);
                if f < best.1 {
                    best = (x, f);
                }
            }
            assert!((a - best.0).abs() < 2e-3 && poly_delta(&c, a) <= best.1 + 1e-12, "{c:?}: {a} vs {best:?}");
        }
        assert!((quartic_min(&[0.0, -1.0, 0.0, 0.0, 1.0]).unwrap() - 0.25f64.cbrt()).abs() < 1e-14);
        assert_eq!(quartic_min(&[0.0, -1.0, 0.0, 0.0, 0.0]), None); // unbounded
        assert_eq!(quartic_min(&[0.0, 1.0, 1.0, 0.0, 0.0]), None); // increasing
    }
}
