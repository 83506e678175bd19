//! The SGD kernel: one epoch of block-parallel SGD on 1M synthetic ratings,
//! reported as ratings per second (divan's throughput counter).
//!
//! `cargo bench -p lowrank --bench sgd`

use divan::{Bencher, counter::ItemsCount};
use lowrank::Ratings;
use lowrank::data::synth::{RatingsSpec, ratings_like};
use lowrank::model::FactorModel;
use lowrank::rng;
use lowrank::solve::sgd::Sgd;
use lowrank::solve::{IterState, Solver};

fn main() {
    divan::main();
}

/// 20,000 users x 2,000 items, 1,000,000 ratings (`synth.py large --size small`).
fn data() -> Ratings {
    let spec = RatingsSpec { users: 20_000, items: 2_000, count: 1_000_000, rank: 16, ..RatingsSpec::default() };
    ratings_like(&spec).expect("synthetic data")
}

#[divan::bench(args = [16, 64], sample_count = 10)]
fn sgd_epoch(bencher: Bencher, rank: usize) {
    let r = data();
    let mut s = Sgd { rank, ..Sgd::libmf() }.check().unwrap();
    let m0: FactorModel = s.init(&r, &mut rng::rng(0)).unwrap();
    bencher.counter(ItemsCount::new(r.len())).with_inputs(|| m0.clone()).bench_local_values(|mut m| {
        s.step(&r, &mut m, &mut IterState::default()).unwrap();
        m
    });
}
