//! The course notebook's nuclear-norm-ball example (seed 000, "Comparison
//! with gradient descent and nuclear norm projection", `example2`): a random
//! symmetric rank-10 matrix `A = U L U^T` with `||A||_* = 1` (`U` from the QR
//! of a Gaussian, `L` uniform then normalized), each entry observed with
//! probability 1/2, and projected gradient descent onto the unit nuclear-norm
//! ball, 40 steps of 0.2, from a random point of norm 1. Then Frank-Wolfe on
//! the same problem for the same number of steps. Prints the objective
//! `1/2 ||P_Omega(A - X)||_F^2` and the distance `||A - X||_F^2` per iteration
//! (the notebook's two curves), and the time of the loop.
//!
//! ```text
//! cargo run --release -p lowrank --example nuclear_ball
//! cargo run --release -p lowrank --example nuclear_ball -- --n 1000 --steps 40 --lr 0.2 --threads 2
//! cargo run --release -p lowrank --example nuclear_ball -- --svd full     # the notebook's dense SVD every step
//! ```
//! Flags: `--n N`, `--rank K`, `--steps T`, `--lr X`, `--svd truncated|full`,
//! `--svd-tol X` (relative residual of the truncated projection, default 1e-5 as the library),
//! `--threads T` (0 = all cores), `--seed S`, `--json` (one JSON line).
//! The notebook's `X0` is the projection of `G G^T` for a Gaussian `G`,
//! which is rank one up to rounding (its top eigenvalue is separated by far
//! more than 1 from the next); here it is `u v^T` for random unit vectors,
//! also a rank-one point on the unit sphere.

use std::time::Instant;

use faer::Mat;
use lowrank::data::Ratings;
use lowrank::model::FactorModel;
use lowrank::rng;
use lowrank::solve::Executor;
use lowrank::solve::spectral::nuclear_ball::{FrankWolfe, PgdNuclear};

struct Args {
    n: usize,
    rank: usize,
    steps: usize,
    lr: f64,
    svd: String,
    svd_tol: f64,
    threads: usize,
    seed: u64,
    json: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        n: 1000,
        rank: 10,
        steps: 40,
        lr: 0.2,
        svd: "truncated".into(),
        svd_tol: 1e-5,
        threads: 0,
        seed: 0,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            a.json = true;
            continue;
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {val}: {e}");
        match flag.as_str() {
            "--n" => a.n = val.parse().map_err(|e| bad(&e))?,
            "--rank" => a.rank = val.parse().map_err(|e| bad(&e))?,
            "--steps" => a.steps = val.parse().map_err(|e| bad(&e))?,
            "--lr" => a.lr = val.parse().map_err(|e| bad(&e))?,
            "--svd" => a.svd = val,
            "--svd-tol" => a.svd_tol = val.parse().map_err(|e| bad(&e))?,
            "--threads" => a.threads = val.parse().map_err(|e| bad(&e))?,
            "--seed" => a.seed = val.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.rank == 0 || a.rank > a.n {
        return Err(format!("--rank must be in 1..={}", a.n));
    }
    Ok(a)
}

/// The notebook's problem: `A = U L U^T` (U n x k orthonormal, `sum L = 1`)
/// and the entries where a fair coin says "observed".
fn problem(n: usize, k: usize, seed: u64) -> (Mat<f64>, Vec<f64>, Ratings) {
    let mut g = rng::rng(seed);
    let gauss = Mat::from_fn(n, k, |_, _| rng::normal(&mut g));
    let u = gauss.qr().compute_thin_Q();
    let mut l: Vec<f64> = (0..k).map(|_| rng::uniform(&mut g)).collect();
    let total: f64 = l.iter().sum();
    l.iter_mut().for_each(|x| *x /= total);
    let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    let mut row = vec![0.0; n];
    for i in 0..n {
        for (j, r) in row.iter_mut().enumerate() {
            *r = (0..k).map(|t| u[(i, t)] * l[t] * u[(j, t)]).sum();
        }
        for (j, &r) in row.iter().enumerate() {
            if rng::uniform(&mut g) < 0.5 {
                rows.push(i as u32);
                cols.push(j as u32);
                vals.push(r as f32);
            }
        }
    }
    let data = Ratings::new(n, n, rows, cols, vals).expect("valid triplets"); // ok: indices are in range
    (u, l, data)
}

/// `||A - X||_F^2` for `A = U diag(l) U^T` and the model `X = P Q^T`, from
/// small Gram matrices: `||A||^2 - 2 tr(L U^T P Q^T U) + tr(P^T P Q^T Q)`.
fn dist2(u: &Mat<f64>, l: &[f64], m: &FactorModel) -> f64 {
    let aa: f64 = l.iter().map(|x| x * x).sum();
    if m.rank == 0 {
        return aa;
    }
    let (p, q) = (m.u_dense(), m.v_dense());
    let up = u.transpose() * &p;
    let uq = u.transpose() * &q;
    let mut cross = 0.0;
    for t in 0..l.len() {
        for s in 0..m.rank {
            cross += l[t] * up[(t, s)] * uq[(t, s)];
        }
    }
    let pp = p.transpose() * &p;
    let qq = q.transpose() * &q;
    let mut xx = 0.0;
    for a in 0..m.rank {
        for b in 0..m.rank {
            xx += pp[(a, b)] * qq[(a, b)];
        }
    }
    aa - 2.0 * cross + xx
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let t = Instant::now();
    let (u, l, data) = problem(a.n, a.rank, a.seed);
    let setup = t.elapsed().as_secs_f64();
    let pgd = PgdNuclear {
        tau: Some(1.0),
        lr: a.lr,
        init: "random".into(),
        svd: a.svd.clone(),
        svd_tol: a.svd_tol,
        tol: 0.0,
        center: "none".into(), // the notebook's uncentred problem
        ..Default::default()
    };
    let fw = FrankWolfe { tau: Some(1.0), tol: 0.0, center: "none".into(), ..Default::default() };
    let threads = if a.threads == 0 { rayon::current_num_threads() } else { a.threads };

    // timing runs: the loop alone (the notebook times gradient_descent)
    let time_pgd = Executor::new(pgd.clone().check().expect("valid settings"), &data) // ok: fixed settings
        .max_iters(a.steps)
        .threads(threads)
        .run()
        .expect("pgd runs"); // ok: a well-formed problem
    let time_fw = Executor::new(fw.clone().check().expect("valid settings"), &data) // ok: fixed settings
        .max_iters(a.steps)
        .threads(threads)
        .run()
        .expect("fw runs"); // ok: a well-formed problem

    // curve runs: the same, with the distance to A after every step
    let (u2, l2) = (u.clone(), l.clone());
    let pgd_fit = Executor::new(pgd.check().expect("valid settings"), &data) // ok: fixed settings
        .max_iters(a.steps)
        .threads(threads)
        .evaluate(1, move |m| vec![("dist".to_string(), dist2(&u2, &l2, m))])
        .run()
        .expect("pgd runs"); // ok: a well-formed problem
    let (u3, l3) = (u.clone(), l.clone());
    let fw_fit = Executor::new(fw.check().expect("valid settings"), &data) // ok: fixed settings
        .max_iters(a.steps)
        .threads(threads)
        .evaluate(1, move |m| vec![("dist".to_string(), dist2(&u3, &l3, m))])
        .run()
        .expect("fw runs"); // ok: a well-formed problem

    let curve = |fit: &lowrank::solve::Fit<FactorModel>, key: &str| -> Vec<f64> {
        fit.history
            .iter()
            .map(|r| if key == "objective" { r.objective.unwrap_or(f64::NAN) } else { r.get(key).unwrap_or(f64::NAN) })
            .collect()
    };
    if a.json {
        let out = serde_json::json!({
            "impl": "lowrank (Rust)", "n": a.n, "rank": a.rank, "steps": a.steps, "lr": a.lr, "svd": a.svd, "svd_tol": a.svd_tol,
            "threads": threads, "observed": data.len(), "setup_s": setup,
            "pgd_loop_s": time_pgd.seconds, "fw_loop_s": time_fw.seconds,
            "pgd_objective": curve(&pgd_fit, "objective"), "pgd_dist": curve(&pgd_fit, "dist"),
            "pgd_rank": curve(&pgd_fit, "rank"), "pgd_svd_iters": curve(&pgd_fit, "svd_iters"),
            "pgd_svd_block": curve(&pgd_fit, "svd_block"), "pgd_svd_full": curve(&pgd_fit, "svd_full"),
            "fw_power_iters": curve(&fw_fit, "power_iters"), "pgd_nuclear_norm": curve(&pgd_fit, "nuclear_norm"),
            "fw_objective": curve(&fw_fit, "objective"), "fw_dist": curve(&fw_fit, "dist"), "fw_gap": curve(&fw_fit, "gap"),
        });
        println!("{out}");
        return;
    }
    println!(
        "notebook example2: n = {}, rank {}, {} observed entries, ||A||_* = 1, tau = 1, {} threads",
        a.n,
        a.rank,
        data.len(),
        threads
    );
    println!("\nprojected gradient ({} steps of {}, svd {}):", a.steps, a.lr, a.svd);
    println!("{:>4} {:>14} {:>14} {:>6} {:>10}", "it", "objective", "||A - X||^2", "rank", "||X||_*");
    for r in &pgd_fit.history {
        println!(
            "{:>4} {:>14.6e} {:>14.6e} {:>6} {:>10.6}",
            r.iteration,
            r.objective.unwrap_or(f64::NAN),
            r.get("dist").unwrap_or(f64::NAN),
            r.get("rank").unwrap_or(f64::NAN),
            r.get("nuclear_norm").unwrap_or(f64::NAN)
        );
    }
    println!("\nFrank-Wolfe ({} steps, exact line search):", a.steps);
    println!("{:>4} {:>14} {:>14} {:>14} {:>6}", "it", "objective", "||A - X||^2", "gap", "rank");
    for r in &fw_fit.history {
        println!(
            "{:>4} {:>14.6e} {:>14.6e} {:>14.6e} {:>6}",
            r.iteration,
            r.objective.unwrap_or(f64::NAN),
            r.get("dist").unwrap_or(f64::NAN),
            r.get("gap").unwrap_or(f64::NAN),
            r.get("rank").unwrap_or(f64::NAN)
        );
    }
    println!(
        "\ntime of the loop: pgd {:.3} s ({:.2} ms/step), frank-wolfe {:.3} s ({:.2} ms/step); setup {:.2} s",
        time_pgd.seconds,
        1e3 * time_pgd.seconds / a.steps as f64,
        time_fw.seconds,
        1e3 * time_fw.seconds / a.steps as f64,
        setup
    );
}
