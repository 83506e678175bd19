//! Spectral kernels where the size decides the threading: the thin QR of a
//! small block (sequential below `linop::SEQUENTIAL_BELOW` multiply-adds)
//! against faer's `Qr` on the global pool, and nuclear-min's one-step
//! exact recovery on the cvxpy peer's planted problem (100 x 100, rank 5,
//! 5000 entries, eps 1e-6, tol 1e-4: `bench/RESULTS_nucmin.md`).
//!
//! `cargo bench -p lowrank --bench spectral`

use divan::Bencher;
use faer::Mat;
use lowrank::data::synth;
use lowrank::solve::spectral::nucmin::{NuclearMin, nuclear_norm_min};
use lowrank::solve::spectral::svd::thin_qr;

fn main() {
    divan::main();
}

fn block(m: usize, n: usize) -> Mat<f64> {
    Mat::from_fn(m, n, |i, j| ((i * 31 + j * 17) % 101) as f64 / 101.0 - 0.5 + if i == j { 1.0 } else { 0.0 })
}

fn two_threads() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a 2-thread pool")
}

/// `svd::thin_qr` (`(m, n)`) inside a 2-thread pool.
#[divan::bench(args = [(100, 30), (1000, 50)])]
fn thin_qr_sized(bencher: Bencher, (m, n): (usize, usize)) {
    let (y, pool) = (block(m, n), two_threads());
    bencher.bench(|| pool.install(|| thin_qr(y.as_ref()).0));
}

/// faer's `qr().compute_thin_Q()` (global parallelism) inside the same pool.
#[divan::bench(args = [(100, 30), (1000, 50)])]
fn faer_qr_global(bencher: Bencher, (m, n): (usize, usize)) {
    let (y, pool) = (block(m, n), two_threads());
    bencher.bench(|| pool.install(|| y.qr().compute_thin_Q()));
}

/// nuclear-min on the planted 100 x 100 rank-5 problem with 5000 entries:
/// one certified step (the exact-recovery shortcut).
#[divan::bench(sample_count = 30)]
fn nuclear_min_exact_recovery_5000(bencher: Bencher) {
    let p = synth::planted_completion(100, 5, 5000, 42).expect("valid problem");
    let params = NuclearMin { eps: 1e-6, tol: 1e-4, ..Default::default() };
    lowrank::warm_up();
    bencher.bench(|| {
        let r = nuclear_norm_min(&p.observed, params.clone(), 100).expect("solves");
        assert_eq!(r.iterations, 1, "the shortcut certifies in one step");
        r.x
    });
}
