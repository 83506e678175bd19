//! Full-batch gradient methods for masked factorization.
//!
//! - [`gd`] (`--algo gd`): full-batch gradient descent on `X ~ U V^T` over
//!   the observed entries with any [`crate::optim::Optimizer`] (SGD,
//!   momentum, Adagrad, RMSprop, group RMSprop, Adam), cost SSE, MSE or RMSE
//!   (the Adagrad blog optimizes RMSE directly), L2 regularization, optional
//!   non-negativity, per-parameter learning rates recorded for heatmaps.
//! - [`newton`] (`--algo newton`): Newton's method on the SSE objective of
//!   seed 002 with exact gradient and Hessian: dense with Hessian correction
//!   (smallest-eigenvalue shift or modified Cholesky) for small problems, and
//!   Newton-CG with Hessian-vector products and a block-Jacobi
//!   preconditioner for real data.
//! - [`masked`]: the shared objective, gradient, Hessian, Hessian-vector
//!   product and exact line polynomial.
//!
//! Every solver here records `grad_norm` per iteration, and the runners add
//! `grad_norm_initial`, `grad_norm_final`, `iterations` and `termination` to
//! the `fit --json` summary.

pub mod gd;
pub mod masked;
pub mod newton;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::registry::{AlgoEntry, FitOutcome, FitRequest, parse_params, run_factor_solver};
use crate::error::Result;
use crate::observe::Record;
use crate::rng::{self, Rng};

pub use gd::{GradientDescent, GradientDescentSolver};
pub use newton::{Newton, NewtonSolver};

/// Algorithms of this family, registered by name.
pub static ALGOS: &[AlgoEntry] = &[
    AlgoEntry {
        name: "gd",
        about: "full-batch gradient descent on the observed entries with any optimizer (sgd, momentum, adagrad, rmsprop, group_rmsprop, adam) and cost sse | mse | rmse",
        keys: gd::KEYS,
        run: run_gd,
        validate: |p| crate::solve::registry::parse_params::<gd::GradientDescent>("gd", p, gd::KEYS)?.check().map(drop),
    },
    AlgoEntry {
        name: "newton",
        about: "Newton's method on the masked factorization loss: dense with Hessian correction, or Newton-CG with Hessian-vector products",
        keys: newton::KEYS,
        run: run_newton,
        validate: |p| {
            crate::solve::registry::parse_params::<newton::Newton>("newton", p, newton::KEYS)?.check().map(drop)
        },
    },
];

/// How the factors start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Every entry of `U` and `V` from `N(0, init_scale^2)`.
    Gaussian,
    /// Every entry from `U(0, init_scale)` (the lab's `U(0, 1)`).
    Uniform,
    /// Every entry from `|N(0, init_scale^2)|` (seed 002's first start,
    /// `u = |randn|`): positive factors for positive data such as ratings.
    AbsGaussian,
    /// The Adagrad blog's deliberately poor start: `U = |N(0, 1)|`,
    /// `V = -5 |N(0, 1)|` (the blog's `W` and `H^T`); `init_scale` is not
    /// used.
    Blog,
}

impl Init {
    /// Draw `U` (`m x k`) and `V` (`n x k`) as one vector `[vec(U); vec(V)]`.
    pub fn draw(self, m: usize, n: usize, k: usize, scale: f64, g: &mut Rng) -> Vec<f64> {
        let mut theta = vec![0.0; (m + n) * k];
        match self {
            Init::Gaussian => theta.iter_mut().for_each(|x| *x = scale * rng::normal(g)),
            Init::Uniform => theta.iter_mut().for_each(|x| *x = scale * rng::uniform(g)),
            Init::AbsGaussian => theta.iter_mut().for_each(|x| *x = scale * rng::normal(g).abs()),
            Init::Blog => {
                let (u, v) = theta.split_at_mut(m * k);
                // the blog draws H first, then W
                v.iter_mut().for_each(|x| *x = -5.0 * rng::normal(g).abs());
                u.iter_mut().for_each(|x| *x = rng::normal(g).abs());
            }
        }
        theta
    }
}

/// Put `grad_norm_initial` and `grad_norm_final` (from the records) into a
/// summary.
fn add_grad_summary(out: &mut FitOutcome) {
    let first = out.history.first().and_then(|r: &Record| r.get("grad_norm_initial"));
    let last = out.history.last().and_then(|r| r.get("grad_norm"));
    out.summary.insert("grad_norm_initial".into(), first.map_or(Value::Null, |x| json!(x)));
    out.summary.insert("grad_norm_final".into(), last.map_or(Value::Null, |x| json!(x)));
    if let (Some(a), Some(b)) = (first, last) {
        out.summary.insert("grad_norm_reduction".into(), if b > 0.0 { json!(a / b) } else { Value::Null });
    }
    if let Some(o) = out.history.last().and_then(|r| r.objective) {
        out.summary.insert("objective".into(), json!(o));
    }
}

fn run_gd(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: GradientDescent = parse_params("gd", &req.params, gd::KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    solver.check_data(&train)?;
    let (mut out, _) = run_factor_solver(req, solver, &train, gd::DEFAULT_EPOCHS, true)?;
    add_grad_summary(&mut out);
    Ok(out)
}

fn run_newton(req: FitRequest<'_>) -> Result<FitOutcome> {
    let p: Newton = parse_params("newton", &req.params, newton::KEYS)?;
    let solver = p.check()?;
    let train = req.train_ratings()?;
    solver.check_data(&train)?;
    let (mut out, _) = run_factor_solver(req, solver, &train, newton::DEFAULT_EPOCHS, false)?;
    add_grad_summary(&mut out);
    Ok(out)
}

/// Exact binary encoding of f64 vectors for solver checkpoints.
fn pack(parts: &[&[f64]], scalars: &[f64]) -> Vec<u8> {
    let mut w = Vec::new();
    w.extend_from_slice(&(scalars.len() as u64).to_le_bytes());
    for &s in scalars {
        w.extend_from_slice(&s.to_bits().to_le_bytes());
    }
    w.extend_from_slice(&(parts.len() as u64).to_le_bytes());
    for p in parts {
        w.extend_from_slice(&(p.len() as u64).to_le_bytes());
        for &x in *p {
            w.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }
    w
}

/// Decode [`pack`]; returns the vectors, the scalars and the bytes after them.
fn unpack(b: &[u8]) -> Option<(Vec<Vec<f64>>, Vec<f64>, &[u8])> {
    let mut pos = 0usize;
    let u64_at = |pos: &mut usize| -> Option<u64> {
        let s = b.get(*pos..*pos + 8)?;
        *pos += 8;
        Some(u64::from_le_bytes(s.try_into().ok()?))
    };
    let ns = u64_at(&mut pos)? as usize;
    if ns > b.len() {
        return None;
    }
    let scalars = (0..ns).map(|_| u64_at(&mut pos).map(f64::from_bits)).collect::<Option<Vec<f64>>>()?;
    let np = u64_at(&mut pos)? as usize;
    if np > b.len() {
        return None;
    }
    let mut parts = Vec::with_capacity(np);
    for _ in 0..np {
        let n = u64_at(&mut pos)? as usize;
        if n > b.len() / 8 {
            return None;
        }
        parts.push((0..n).map(|_| u64_at(&mut pos).map(f64::from_bits)).collect::<Option<Vec<f64>>>()?);
    }
    Some((parts, scalars, &b[pos..]))
}

/// The factors as a [`crate::FactorModel`] (f32 storage).
fn to_model(p: &masked::MaskedProblem, theta: &[f64], model: &mut crate::FactorModel) {
    let (u, v) = p.split(theta);
    model.rank = p.k;
    model.u.resize(u.len(), 0.0);
    model.v.resize(v.len(), 0.0);
    for (d, s) in model.u.iter_mut().zip(u) {
        *d = *s as f32;
    }
    for (d, s) in model.v.iter_mut().zip(v) {
        *d = *s as f32;
    }
    model.global_mean = p.offset;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip() {
        let a = vec![1.0, f64::MIN_POSITIVE, -0.1];
        let b = vec![];
        let bytes = pack(&[&a, &b], &[std::f64::consts::PI]);
        let (parts, sc, rest) = unpack(&bytes).unwrap();
        assert_eq!(parts, vec![a, b]);
        assert_eq!(sc, vec![std::f64::consts::PI]);
        assert!(rest.is_empty());
        assert!(unpack(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn registry_runs_on_dense_nan_input_with_settings() {
        use crate::io::Dataset;
        use crate::solve::registry::{self, FitRequest};
        let ds = Dataset::Dense(crate::data::synth::blog_matrix());
        let req = FitRequest::new("gd", &ds)
            .set("rank", 2)
            .set("lr", 0.1)
            .set("optimizer", "adagrad")
            .set("cost", "rmse")
            .set("init", "blog")
            .set("record_lr", true);
        let mut req = req;
        req.epochs = Some(50);
        let out = registry::fit(req).unwrap();
        for key in ["grad_norm_initial", "grad_norm_final", "iterations", "termination"] {
            assert!(out.summary.get(key).is_some_and(|v| !v.is_null()), "{key}");
        }
        assert_eq!(out.summary["iterations"], 50);
        assert!(out.history[0].vectors.contains_key("lr_u"));
        // a misspelled setting is a config error with a suggestion
        let err = registry::fit(FitRequest::new("gd", &ds).set("optimiser", "adam")).unwrap_err();
        assert!(err.to_string().contains("did you mean 'optimizer'"), "{err}");
        let err = registry::fit(FitRequest::new("newton", &ds).set("rank", 9)).unwrap_err();
        assert!(err.is_input_error(), "{err}");
        // newton through the registry: converges on the blog matrix with a little reg
        let mut req = FitRequest::new("newton", &ds).set("rank", 2).set("reg", 0.01);
        req.epochs = Some(100);
        let out = registry::fit(req).unwrap();
        assert_eq!(out.summary["termination"], "converged");
        let (a, b) =
            (out.summary["grad_norm_initial"].as_f64().unwrap(), out.summary["grad_norm_final"].as_f64().unwrap());
        assert!(b <= 1e-10 * a, "{a} -> {b}");
    }

    #[test]
    fn blog_init_signs() {
        let t = Init::Blog.draw(4, 3, 2, 1.0, &mut rng::rng(0));
        assert!(t[..8].iter().all(|&x| x >= 0.0));
        assert!(t[8..].iter().all(|&x| x <= 0.0));
        let t = Init::Uniform.draw(4, 3, 2, 0.5, &mut rng::rng(0));
        assert!(t.iter().all(|&x| (0.0..0.5).contains(&x)));
    }
}
