//! Seed 002: rank-1 factorization of MovieLens ratings by Newton's method.
//!
//! The notebook minimizes `f(u, v) = sum_Omega (u_i v_j - x_ij)^2` from
//! `theta0 = randn`, with a dense Hessian, the smallest-eigenvalue shift and a
//! line search, and stalls with the gradient norm near 1e5 (its Hessian
//! misses terms and its steps shrink to 1e-10). Here, on MovieLens-100k
//! (943 x 1682, 100,000 ratings, 2,625 parameters):
//!
//! 1. Newton-CG (exact Hessian-vector products, block-Jacobi preconditioner,
//!    exact line search on the quartic) from the notebook's first start
//!    `u, v = |randn|`, to a relative gradient norm of 1e-10, in about a
//!    second;
//! 2. the same from the notebook's second start `theta0 = randn`, which
//!    falls into a valley without a minimum (shown, with the reason);
//! 3. the notebook's own method done right: the dense 2,625 x 2,625 Hessian,
//!    shifted by its smallest eigenvalue, Cholesky solve, for 3 iterations
//!    (each costs an eigendecomposition).
//!
//! Reads /work/shared/data/ml-100k/u.data.gz (or the path given as the first
//! argument); skips with a message when absent.
//!
//! Run: `cargo run --release -p lowrank --example newton_rank1 [-- PATH]`

use std::path::PathBuf;

use lowrank::io::{ReadOptions, read_ratings};
use lowrank::observe::Record;
use lowrank::solve::Executor;
use lowrank::solve::gradient::Init;
use lowrank::solve::gradient::newton::{Newton, NewtonMethod};

fn report(name: &str, h: &[Record], seconds: f64, termination: &str) {
    println!("--- {name}");
    println!("{:>5} {:>16} {:>12} {:>10} {:>8} {:>10}", "iter", "objective", "grad_norm", "step", "cg_iters", "shift");
    let g0 = h[0].get("grad_norm_initial").unwrap();
    println!("{:>5} {:>16} {:>12.4e}", 0, "", g0);
    for r in h {
        println!(
            "{:>5} {:>16.6} {:>12.4e} {:>10.3e} {:>8} {:>10.3e}",
            r.iteration,
            r.objective.unwrap_or(f64::NAN),
            r.get("grad_norm").unwrap_or(f64::NAN),
            r.get("step").unwrap_or(f64::NAN),
            r.get("cg_iters").unwrap_or(0.0),
            r.get("shift").unwrap_or(0.0)
        );
    }
    let g = h.last().unwrap().get("grad_norm").unwrap();
    println!(
        "gradient norm {g0:.4e} -> {g:.4e}: reduced by {:.2e} in {} iterations, {seconds:.2} s ({termination})\n",
        g0 / g,
        h.len()
    );
}

fn main() -> lowrank::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/data/ml-100k/u.data.gz"));
    if !path.exists() {
        println!(
            "skipping: {} not found (pass the path of MovieLens-100k's u.data as the first argument)",
            path.display()
        );
        return Ok(());
    }
    let data = read_ratings(&path, &ReadOptions::default())?;
    println!("{}: {} x {}, {} ratings\n", path.display(), data.nrows(), data.ncols(), data.len());

    // 1. Newton-CG from the notebook's first start, u = |randn|, v = |randn|
    let cg = Newton { method: NewtonMethod::Cg, init: Init::AbsGaussian, ..Default::default() }.check()?;
    let fit = Executor::new(cg, &data).max_iters(100).seed(0).run()?;
    report("Newton-CG from u, v = |randn| (seed 002's first start)", &fit.history, fit.seconds, fit.termination.name());
    let train_rmse = lowrank::metrics::rmse(&fit.model, &data);
    println!("rank-1 fit: train RMSE {train_rmse:.4}\n");

    // 2. the same from theta0 = randn (the notebook's second start): a
    //    sign-mixed start can land in a valley whose infimum is not attained
    let cg = Newton { method: NewtonMethod::Cg, init: Init::Gaussian, ..Default::default() }.check()?;
    let fit = Executor::new(cg, &data).max_iters(100).seed(0).run()?;
    report("Newton-CG from theta0 = randn", &fit.history, fit.seconds, fit.termination.name());
    let m = &fit.model;
    let big = m.v.iter().cloned().fold(0.0f32, |a, x| a.max(x.abs()));
    let small = m.u.iter().cloned().fold(f32::INFINITY, |a, x| a.min(x.abs()));
    println!(
        "from this start the objective keeps falling while max |v_j| = {big:.1} grows and min |u_i| = {small:.4} shrinks:\n\
         the infimum of this valley is at infinity, so the gradient cannot vanish; a positive start or reg > 0 avoids it\n"
    );

    // 3. seed 002's own method, done right: dense Hessian, eigenvalue shift
    let dense = Newton { method: NewtonMethod::Dense, init: Init::AbsGaussian, ..Default::default() }.check()?;
    let fit = Executor::new(dense, &data).max_iters(3).seed(0).run()?;
    report(
        "dense Newton with the eigenvalue shift (seed 002's method), 3 iterations",
        &fit.history,
        fit.seconds,
        fit.termination.name(),
    );
    Ok(())
}
