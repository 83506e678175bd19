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

/// The notebook's problem: one `altmin` (lstsq) iteration on the 40x70
/// rank-2 checkerboard at 25 % density, on the calling thread (the
/// small-problem path: no rayon, no allocation per row).
#[divan::bench]
fn checkerboard_step(bencher: Bencher) {
    use lowrank::data::synth::{checkerboard, subsample};
    use lowrank::solve::als::AltMin;
    let obs = subsample(&checkerboard(40, 70), 0.25, 1).unwrap();
    let mut s = AltMin { rank: 2, ..AltMin::default() }.check().unwrap();
    let m0: FactorModel = s.init(&obs, &mut rng::rng(0)).unwrap();
    bencher.with_inputs(|| m0.clone()).bench_local_values(|mut m| {
        s.step(&obs, &mut m, &mut IterState::default()).unwrap();
        m
    });
}

/// Eight 17 x 17 systems (rank 16 + bias) factored and solved side by side
/// ([`lowrank::solve::als::linalg::cholesky_lanes`]), against eight calls of
/// the per-row kernel and of faer (`cholesky_solve_hand/faer` at d = 17
/// above, times 8).
#[divan::bench(args = [11, 17, 33])]
fn cholesky_lanes_8(bencher: Bencher, d: usize) {
    use lowrank::solve::als::linalg::{LANES, Lane, cholesky_lanes};
    let a = spd(d);
    let mut ab: Vec<Lane> = vec![[0.0; LANES]; d * d];
    for (t, v) in a.iter().enumerate() {
        ab[t] = [*v; LANES];
    }
    let bb: Vec<Lane> = (0..d).map(|t| [t as f64; LANES]).collect();
    let mut inv: Vec<Lane> = vec![[0.0; LANES]; d];
    bencher.with_inputs(|| (ab.clone(), bb.clone())).bench_local_refs(|(a, b)| cholesky_lanes(a, d, b, &mut inv));
}

/// The Gram matrix and right-hand side of one row with 450 entries (a
/// synthetic-10M item) at d = 16 / 17 / 51.
#[divan::bench(args = [16, 17, 51])]
fn gram_padded_450(bencher: Bencher, d: usize) {
    use lowrank::solve::als::linalg::{gram_padded, padded};
    let dp = padded(d);
    let mut g = rng::rng(1);
    let xs: Vec<f64> = (0..450 * dp).map(|t| if t % dp < d { rng::normal(&mut g) } else { 0.0 }).collect();
    let ts: Vec<f64> = (0..450).map(|_| rng::normal(&mut g)).collect();
    let mut a = vec![0.0; d * dp];
    let mut rhs = vec![0.0; dp];
    bencher.bench_local(|| {
        a.fill(0.0);
        rhs.fill(0.0);
        gram_padded(&mut a, d, dp, &xs, &ts, &mut rhs);
    });
}
