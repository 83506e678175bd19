//! CP-ALS kernels: the MTTKRP of each mode (no Khatri-Rao product formed) and
//! fifty ALS iterations (plain, and Tucker-compressed), on the notebook's 30³
//! rank-20 problem and on 200³ rank 10.
//!
//! `cargo bench -p lowrank --bench tensor` (add `-- --threads 1` etc. for divan's
//! own thread count; the kernels use rayon's global pool).

use divan::Bencher;
use faer::Mat;
use lowrank::data::{Tensor3, synth};
use lowrank::solve::Executor;
use lowrank::solve::tensor::{CpAls, CpInit, mttkrp};

fn main() {
    divan::main();
}

fn problem(d: usize, rank: usize) -> (Tensor3, [Mat<f64>; 3]) {
    let (t, _, f) = synth::random_cp([d, d, d], rank, 1e-5, 1).expect("valid problem");
    (t, f)
}

/// One MTTKRP (`(d, rank, mode)`).
#[divan::bench(args = [(30, 20, 0), (30, 20, 1), (30, 20, 2), (200, 10, 0), (200, 10, 2)])]
fn mttkrp_mode(bencher: Bencher, (d, rank, mode): (usize, usize, usize)) {
    let (t, f) = problem(d, rank);
    bencher.bench(|| mttkrp(&t, &f, mode).expect("shapes match"));
}

/// Fifty CP-ALS iterations from a Gaussian start (`(d, rank, compress)`),
/// plain and with the Tucker-compressed middle iterations (the default);
/// divide by 50 for the time per iteration.
#[divan::bench(args = [(30, 20, false), (30, 20, true), (200, 10, false), (200, 10, true)], sample_count = 5)]
fn cp_als_50_iterations(bencher: Bencher, (d, rank, compress): (usize, usize, bool)) {
    let (t, _) = problem(d, rank);
    bencher.bench(|| {
        let p = CpAls { rank, init: CpInit::Gaussian, compress, ..Default::default() };
        Executor::new(p.check().expect("valid"), &t).seed(0).max_iters(50).run().expect("runs").model
    });
}
