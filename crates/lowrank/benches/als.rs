//! Kernels of the ALS family: one explicit ALS sweep, one implicit ALS sweep
//! (CG and Cholesky), and the small dense Cholesky against faer's.
//!
//! `cargo bench -p lowrank --bench als`

use divan::Bencher;
use lowrank::Ratings;
use lowrank::data::synth::{RatingsSpec, ratings_like};
use lowrank::model::FactorModel;
use lowrank::rng;
use lowrank::solve::als::implicit::RowSolver;
use lowrank::solve::als::{Als, ImplicitAls};
use lowrank::solve::{IterState, Solver};

fn main() {
    divan::main();
}

/// 20,000 users x 2,000 items, 200,000 ratings (a fifth of `synth1m`).
fn data() -> Ratings {
    let spec = RatingsSpec { users: 20_000, items: 2_000, count: 200_000, rank: 16, ..RatingsSpec::default() };
    let r = ratings_like(&spec).expect("synthetic data");
    let _ = (r.csr(), r.csc());
    r
}

#[divan::bench(args = [10, 16, 50])]
fn als_sweep(bencher: Bencher, rank: usize) {
    let r = data();
    let mut s = Als { rank, ..Als::default() }.check().unwrap();
    let m0: FactorModel = s.init(&r, &mut rng::rng(0)).unwrap();
    bencher.with_inputs(|| m0.clone()).bench_local_values(|mut m| {
        s.step(&r, &mut m, &mut IterState::default()).unwrap();
        m
    });
}

#[divan::bench(args = [("cg", 64), ("cholesky", 64)])]
fn ials_sweep(bencher: Bencher, (solver, rank): (&str, usize)) {
    let r = data().map_values(|_| 1.0);
    let solver = if solver == "cg" { RowSolver::Cg } else { RowSolver::Cholesky };
    let mut s = ImplicitAls { rank, solver, ..ImplicitAls::default() }.check().unwrap();
    let m0: FactorModel = s.init(&r, &mut rng::rng(0)).unwrap();
    bencher.with_inputs(|| m0.clone()).bench_local_values(|mut m| {
        s.step(&r, &mut m, &mut IterState::default()).unwrap();
        m
    });
}

fn spd(d: usize) -> Vec<f64> {
    let mut g = rng::rng(d as u64);
    let b: Vec<f64> = (0..(d + 4) * d).map(|_| rng::normal(&mut g)).collect();
    let mut a = vec![0.0; d * d];
    lowrank::solve::als::linalg::syrk_upper(&mut a, d, &b);
    for p in 0..d {
        a[p * d + p] += 1.0;
    }
    lowrank::solve::als::linalg::symmetrize(&mut a, d);
    a
}

#[divan::bench(args = [11, 17, 51, 65])]
fn cholesky_solve_hand(bencher: Bencher, d: usize) {
    let a = spd(d);
    let b: Vec<f64> = (0..d).map(|t| t as f64).collect();
    let mut w = Vec::new();
    bencher.with_inputs(|| (a.clone(), b.clone())).bench_local_refs(|(a, b)| {
        lowrank::solve::als::linalg::solve_spd(a, d, b, &mut w);
    });
}

#[divan::bench(args = [11, 17, 51, 65])]
fn cholesky_solve_faer(bencher: Bencher, d: usize) {
    use faer::linalg::solvers::Solve;
    let a = spd(d);
    let am = faer::Mat::from_fn(d, d, |i, j| a[i * d + j]);
    let b = faer::Mat::from_fn(d, 1, |i, _| i as f64);
    bencher.bench_local(|| am.llt(faer::Side::Lower).unwrap().solve(&b));
}
