//! Seed 004: matrix factorization with Adagrad on a matrix with a missing
//! (NaN) entry.
//!
//! The 4x3 matrix of the blog post with entry (0, 0) missing, rank 2, the
//! masked RMSE as the cost, Adagrad (lr 0.1, eps 1e-8, the blog's running sum
//! of `eps + g^2`) for 2000 iterations from the blog's deliberately poor
//! start: `H = -5 |N(0, 1)|`, `W = |N(0, 1)|`. We start from the exact values
//! the blog prints (so the run is the blog's run), then once more from our own
//! seeded draw of the same distribution. Prints the cost curve, the completed
//! matrix (the blog's rounds to [[5,4,5],[4,4,5],[5,3,4],[2,3,3]]) and a
//! summary of the per-parameter learning rates (the blog's heatmaps).
//!
//! Run: `cargo run --release -p lowrank --example adagrad_nan`

use lowrank::data::{dense, synth};
use lowrank::metrics::Predict;
use lowrank::solve::Executor;
use lowrank::solve::gradient::gd::{Cost, GradientDescent};
use lowrank::solve::gradient::{GradientDescentSolver, Init};

fn params(init: Init) -> GradientDescent {
    GradientDescent {
        rank: 2,
        lr: 0.1,
        optimizer: "adagrad".into(),
        eps: Some(1e-8),
        cost: Cost::Rmse,
        init,
        record_lr: true,
        ..Default::default()
    }
}

fn run(name: &str, solver: GradientDescentSolver) -> lowrank::Result<()> {
    let a = synth::blog_matrix();
    let data = dense::ratings_from_masked(&a)?;
    let fit = Executor::new(solver, &data).max_iters(2000).seed(0).run()?;
    println!("--- {name}");
    let h = &fit.history;
    let first = h[0].get("grad_norm_initial").unwrap_or(f64::NAN);
    println!("cost (masked RMSE) by iteration:");
    for &t in &[1usize, 10, 100, 500, 1000, 2000] {
        let r = &h[t - 1];
        println!("  {t:>5}: {:.6}   grad_norm {:.3e}", r.get("cost").unwrap(), r.get("grad_norm").unwrap());
    }
    println!("gradient norm: initial {first:.3e}, final {:.3e}", h.last().unwrap().get("grad_norm").unwrap());
    let pred = fit.model.to_dense();
    println!("completed matrix (rounded; the missing entry is (0, 0)):");
    for i in 0..pred.nrows() {
        let row: Vec<String> = (0..pred.ncols()).map(|j| format!("{:>2}", pred[(i, j)].round())).collect();
        let raw: Vec<String> = (0..pred.ncols()).map(|j| format!("{:6.3}", pred[(i, j)])).collect();
        println!("  [{}]    ({})", row.join(", "), raw.join(", "));
    }
    // learning-rate evolution of H (the blog's second heatmap): lr_v is V = H^T
    for &t in &[1usize, 10, 100, 2000] {
        let lr_v = &h[t - 1].vectors["lr_v"];
        let lr_u = &h[t - 1].vectors["lr_u"];
        let range =
            |v: &Vec<f64>| (v.iter().cloned().fold(f64::INFINITY, f64::min), v.iter().cloned().fold(0.0, f64::max));
        let (a, b) = range(lr_u);
        let (c, d) = range(lr_v);
        println!("  iteration {t:>4}: learning rates of W in [{a:.4}, {b:.4}], of H in [{c:.4}, {d:.4}]");
    }
    println!();
    Ok(())
}

fn main() -> lowrank::Result<()> {
    // The blog's printed initial values (numpy seed 0): H is 2x3, W is 4x2.
    let h_init = [[-8.82026173, -2.00078604, -4.89368992], [-11.204466, -9.33778995, -4.8863894]];
    let w_init = [0.95008842, 0.15135721, 0.10321885, 0.4105985, 0.14404357, 1.45427351, 0.76103773, 0.12167502];
    // V = H^T, row-major 3x2
    let v: Vec<f64> = (0..3).flat_map(|j| [h_init[0][j], h_init[1][j]]).collect();
    // cost of the initial factors (the blog prints 11.651268820608442)
    let a = synth::blog_matrix();
    let mut sq = 0.0;
    let mut cnt = 0.0;
    for i in 0..4 {
        for j in 0..3 {
            if !a[(i, j)].is_nan() {
                let pred = w_init[2 * i] * v[2 * j] + w_init[2 * i + 1] * v[2 * j + 1];
                sq += (pred - a[(i, j)]).powi(2);
                cnt += 1.0;
            }
        }
    }
    println!("cost of the blog's initial factors: {:.9} (the blog: 11.651268820608442)\n", (sq / cnt).sqrt());
    let blog = params(Init::Blog).check()?.with_initial_factors(&w_init, &v);
    run("the blog's exact initial values", blog)?;
    run("our seeded draw of the same poor init (seed 0)", params(Init::Blog).check()?)?;
    Ok(())
}
