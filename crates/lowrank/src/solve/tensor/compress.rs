//! Tucker compression of a dense 3-way tensor for CP-ALS (the compression
//! step of Tensorlab's `cpd`, Bro & Andersson 1998 "Improving the speed of
//! multiway algorithms: Part II. Compression").
//!
//! A rank-`R` CP model has factor matrices of `R` columns, so its mode-`n`
//! fibers live in an `R`-dimensional subspace: with orthonormal bases `U_n`
//! (`I_n x J_n`, `J_n = min(I_n, R)`) of the leading singular subspaces of the
//! unfoldings, `T ≈ G ×₁ U₁ ×₂ U₂ ×₃ U₃` with a core `G = T ×₁ U₁ᵀ ×₂ U₂ᵀ ×₃ U₃ᵀ`
//! of `J₀ J₁ J₂` entries, and ALS on `G` costs `J₀J₁J₂ / I₀I₁I₂` of ALS on `T`
//! (at 200³ rank 10: 1/8000). A model `(λ, A_c, B_c, C_c)` of the core
//! expands to `(λ, U₁A_c, U₂B_c, U₃C_c)` with the same column norms, and its
//! error on the full tensor is exact, not estimated:
//! `‖T − T̂‖² = (‖T‖² − ‖G‖²) + ‖G − Ĝ‖²`, the first term being the part of
//! `T` outside the bases (Pythagoras: `T̂` lies in their span).
//!
//! The bases come from a sequentially truncated HOSVD (Vannieuwenhoven,
//! Vandebril, Meerbergen 2012): mode by mode, the leading eigenvectors of the
//! unfolding's Gram matrix, then the tensor is contracted with the basis
//! before the next mode is treated, so later modes work on a smaller tensor.
//! Where the Gram matrix would cost more than two passes over the tensor
//! (`I_n > 2 (J_n + p)`), the subspace is found by a randomized range finder
//! (Halko, Martinsson, Tropp 2011) with a Khatri-Rao structured Gaussian test
//! matrix (one MTTKRP with `J_n + p` random columns, `p = 10` oversampling),
//! followed by the exact truncation within the sketched range; one pass to
//! sketch, one to contract.

use faer::Mat;

use super::kernels;
use super::tiles;
use crate::data::Tensor3;
use crate::error::{Error, Result};
use crate::rng::{self, Rng};
use crate::solve::spectral::svd::orthonormalize;
use crate::team::Team;

/// Extra columns of the randomized range finder.
const OVERSAMPLE: usize = 10;
/// Below this fraction of `‖T‖²`, `‖T‖² − ‖G‖²` (absolute error ~1e-16
/// `‖T‖²`) is replaced by the explicit `‖T − G ×₁ U₁ ×₂ U₂ ×₃ U₃‖²`, so that
/// the errors recorded on the core stay accurate to a few digits down to
/// relative errors of 1e-8 and below (nearly exact low-rank tensors).
const EXPLICIT_LOSS_BELOW: f64 = 1e-10;

/// A Tucker compression `T ≈ G ×₁ U₁ ×₂ U₂ ×₃ U₃`.
pub(crate) struct Tucker {
    /// The core `G` (`J₀ x J₁ x J₂`, fully observed).
    pub(crate) core: Tensor3,
    /// The orthonormal bases `U_n` (`I_n x J_n`).
    pub(crate) bases: [Mat<f64>; 3],
    /// `‖T‖² − ‖G‖²` (clamped at 0): the squared norm of the part of `T`
    /// outside the bases, which no model in their span can fit.
    pub(crate) lost_sq: f64,
}

/// The core sizes `min(I_n, R)`, or `None` when they would not make the
/// problem at least twice smaller.
pub(crate) fn core_dims(dims: [usize; 3], rank: usize) -> Option<[usize; 3]> {
    let core = dims.map(|d| d.min(rank));
    let (full, small) = (dims.iter().product::<usize>(), core.iter().product::<usize>());
    (2 * small <= full).then_some(core)
}

/// `w` (`rows x padded(width)`) without its padding, as `rows x width`
/// row-major values.
fn unpad(w: &[f64], rows: usize, width: usize) -> Vec<f64> {
    let rp = tiles::padded(width);
    if rp == width {
        return w[..rows * width].to_vec();
    }
    let mut out = Vec::with_capacity(rows * width);
    for row in w.chunks_exact(rp).take(rows) {
        out.extend_from_slice(&row[..width]);
    }
    out
}

/// `XᵀX` for `X` the row-major `rows x n` matrix `x`, sequentially (the same
/// bits on any number of threads).
fn gram_of_rows(x: &[f64], n: usize) -> Mat<f64> {
    let mut g = Mat::<f64>::zeros(n, n);
    let xm = faer::MatRef::from_row_major_slice(x, x.len() / n.max(1), n);
    faer::linalg::matmul::matmul(g.as_mut(), faer::Accum::Replace, xm.transpose(), xm, 1.0, faer::Par::Seq);
    g
}

/// The `j` leading eigenvectors of the symmetric `g` (by decreasing
/// eigenvalue).
fn leading_eigenvectors(g: &Mat<f64>, j: usize) -> Result<Mat<f64>> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::evd::{ComputeEigenvectors, self_adjoint_evd, self_adjoint_evd_scratch};
    let n = g.nrows();
    // sequential: `Mat::self_adjoint_eigen` takes faer's global parallelism,
    // whose thread hand-offs cost more than a 30 x 30 problem (0.5 ms vs 0.1)
    let par = faer::Par::Seq;
    let mut s = faer::diag::Diag::<f64>::zeros(n);
    let mut u = Mat::<f64>::zeros(n, n);
    let scratch = self_adjoint_evd_scratch::<f64>(n, ComputeEigenvectors::Yes, par, Default::default());
    let mut buf = MemBuffer::new(scratch);
    self_adjoint_evd(g.as_ref(), s.as_mut(), Some(u.as_mut()), par, MemStack::new(&mut buf), Default::default())
        .map_err(|e| Error::Numerical(format!("Tucker compression: eigendecomposition failed ({e:?})")))?;
    // eigenvalues ascending: the leading vectors are the last columns
    Ok(Mat::from_fn(n, j, |i, c| u[(i, n - 1 - c)]))
}

/// Contract mode 0 of `x` (`[n, a, b]`, C order) with the basis `u`
/// (`n x j`): the result `x ×₁ uᵀ` cyclically permuted, `[a, b, j]`.
fn contract_and_rotate(x: &[f64], dims: [usize; 3], u: &Mat<f64>, team: Option<&Team>) -> Vec<f64> {
    let [_, a, b] = dims;
    let mut w = Vec::new();
    kernels::contract_first(x, dims, u, &mut w, team);
    unpad(&w, a * b, u.ncols())
}

/// `x` (`[n, a, b]`) cyclically permuted to `[a, b, n]` (the identity basis).
fn rotate(x: &[f64], dims: [usize; 3]) -> Vec<f64> {
    let [n, a, b] = dims;
    let mut out = vec![0.0; x.len()];
    for i in 0..n {
        for (jk, v) in x[i * a * b..(i + 1) * a * b].iter().enumerate() {
            out[jk * n + i] = *v;
        }
    }
    out
}

/// Sum of squares, in a fixed order.
fn frob_sq(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}

/// An orthonormal basis (`n x j`) of the leading `j`-dimensional left
/// singular subspace of the mode-0 unfolding of `x` (`[n, a, b]`), and `x`
/// contracted with it and rotated (`[a, b, j]`).
fn compress_mode0(
    x: &[f64],
    dims: [usize; 3],
    j: usize,
    rng: &mut Rng,
    team: Option<&Team>,
) -> Result<(Mat<f64>, Vec<f64>)> {
    let [n, a, b] = dims;
    let s = (j + OVERSAMPLE).min(n);
    if 2 * s >= n {
        // exact: the Gram matrix of the unfolding costs n / (2 s) <= 1 of the randomized passes
        let u = leading_eigenvectors(&kernels::unfolding_gram(x, dims, 0), j)?;
        let rotated = contract_and_rotate(x, dims, &u, team);
        return Ok((u, rotated));
    }
    // randomized range finder: Y = X_(0) (Ω_a ⊙ Ω_b), one MTTKRP with random factors
    let mut gaussian = |d: usize| {
        let v: Vec<f64> = (0..d * s).map(|_| rng::normal(rng)).collect();
        Mat::from_fn(d, s, |i, c| v[i * s + c])
    };
    let (om_a, om_b) = (gaussian(a), gaussian(b));
    let mut wc = Vec::new();
    kernels::contract_last(x, dims, &om_b, &mut wc, team);
    let y = kernels::mttkrp0_from_w(&wc, &om_a, n, team);
    drop(wc);
    let q = orthonormalize(y.as_ref());
    // X ×₁ Qᵀ, then the exact truncation to j within span(Q)
    let w = contract_and_rotate(x, dims, &q, team);
    let v = leading_eigenvectors(&gram_of_rows(&w, s), j)?;
    let u = &q * &v;
    let wm = faer::MatRef::from_row_major_slice(&w, a * b, s);
    let mut out = vec![0.0; a * b * j];
    let om = faer::MatMut::from_row_major_slice_mut(&mut out, a * b, j);
    faer::linalg::matmul::matmul(om, faer::Accum::Replace, wm, v.as_ref(), 1.0, faer::Par::Seq);
    Ok((u, out))
}

/// Compress the fully observed `t` (of squared norm `norm_sq`) to a core of
/// sizes `core` (each at most the tensor's size; a mode whose core size
/// equals its size keeps the identity basis).
pub(crate) fn compress(
    t: &Tensor3,
    norm_sq: f64,
    core: [usize; 3],
    rng: &mut Rng,
    team: Option<&Team>,
) -> Result<Tucker> {
    let dims = t.dims();
    let mut cur: Option<Vec<f64>> = None;
    let mut cur_dims = dims;
    let mut bases: Vec<Mat<f64>> = Vec::with_capacity(3);
    for m in 0..3 {
        let x = cur.as_deref().unwrap_or(t.data());
        let (u, next) = if core[m] == dims[m] {
            (Mat::<f64>::identity(dims[m], dims[m]), rotate(x, cur_dims))
        } else {
            compress_mode0(x, cur_dims, core[m], rng, team)?
        };
        cur_dims = [cur_dims[1], cur_dims[2], core[m]];
        cur = Some(next);
        bases.push(u);
    }
    let g = cur.unwrap_or_default();
    let core = Tensor3::new(cur_dims, g)?;
    let bases: [Mat<f64>; 3] = bases.try_into().map_err(|_| Error::invalid("three bases"))?;
    let mut tk = Tucker { lost_sq: (norm_sq - frob_sq(core.data())).max(0.0), core, bases };
    if tk.lost_sq < EXPLICIT_LOSS_BELOW * norm_sq {
        // the difference of norms has lost its digits to cancellation: one pass instead
        tk.lost_sq = tk.residual_sq(t);
    }
    Ok(tk)
}

impl Tucker {
    /// `‖T − G ×₁ U₁ ×₂ U₂ ×₃ U₃‖²`, slice by slice of mode 0 (the
    /// expansion `H = G ×₂ U₂ ×₃ U₃`, `J₀ x I₁ x I₂`, is formed once; each
    /// slice `i` is then `Σ_a U₁[i, a] H_a`), summed in slice order.
    fn residual_sq(&self, t: &Tensor3) -> f64 {
        use rayon::prelude::*;
        let [d0, d1, d2] = t.dims();
        let [j0, j1, j2] = self.core.dims();
        let [u0, u1, u2] = &self.bases;
        // H[a, j, k] = Σ_{b,c} G[a, b, c] U₂[j, b] U₃[k, c]
        let mut h = vec![0.0; j0 * d1 * d2];
        let g = self.core.data();
        for a in 0..j0 {
            // (G_a U₃ᵀ): j1 x d2, then U₂ (G_a U₃ᵀ): d1 x d2
            let ga = faer::MatRef::from_row_major_slice(&g[a * j1 * j2..(a + 1) * j1 * j2], j1, j2);
            let gc = ga * u2.transpose();
            let ha = u1 * &gc;
            for j in 0..d1 {
                for k in 0..d2 {
                    h[(a * d1 + j) * d2 + k] = ha[(j, k)];
                }
            }
        }
        let per_slice: Vec<f64> = t
            .data()
            .par_chunks(d1 * d2)
            .enumerate()
            .map(|(i, ti)| {
                let mut s = 0.0;
                let mut row = vec![0.0; d2];
                for j in 0..d1 {
                    row.copy_from_slice(&ti[j * d2..(j + 1) * d2]);
                    for a in 0..j0 {
                        let w = u0[(i, a)];
                        let ha = &h[(a * d1 + j) * d2..(a * d1 + j + 1) * d2];
                        for (r, x) in row.iter_mut().zip(ha) {
                            *r -= w * x;
                        }
                    }
                    s += row.iter().map(|r| r * r).sum::<f64>();
                }
                s
            })
            .collect();
        debug_assert_eq!(per_slice.len(), d0);
        per_slice.iter().sum()
    }

    /// `U_n F` for a core-space factor `f` of mode `n`.
    pub(crate) fn expand(&self, mode: usize, f: &Mat<f64>) -> Mat<f64> {
        &self.bases[mode] * f
    }

    /// `U_nᵀ F` for a full-space factor `f` of mode `n` (its component in
    /// the basis).
    pub(crate) fn project(&self, mode: usize, f: &Mat<f64>) -> Mat<f64> {
        self.bases[mode].transpose() * f
    }
}
