//! `lowrank demo`: the main job on embedded synthetic data, no files needed.

use std::time::Instant;

use clap::Args;
use lowrank::data::{split, synth};
use lowrank::io::Dataset;
use lowrank::solve::registry::{self, FitRequest};

/// Arguments of `lowrank demo`.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  lowrank demo\n  lowrank demo --users 20000 --items 2000 --count 1000000 --threads 2"
)]
pub struct DemoArgs {
    /// Users in the synthetic ratings.
    #[arg(long, default_value_t = 3000)]
    pub users: usize,
    /// Items in the synthetic ratings.
    #[arg(long, default_value_t = 1000)]
    pub items: usize,
    /// Number of ratings.
    #[arg(long, default_value_t = 200_000)]
    pub count: usize,
    /// Rank of the planted matrix.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `lowrank demo`.
pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let noise = 0.1;
    // the demo fits ALS and SGD at the planted rank: check it before any work
    if a.rank == 0 || a.rank > a.users.min(a.items) || a.rank > 4096 {
        return Err(lowrank::Error::invalid(format!(
            "--rank {} must be between 1 and min(--users, --items) = {} (and at most 4096, ALS's dense solves)",
            a.rank,
            a.users.min(a.items)
        ))
        .into());
    }
    println!(
        "lowrank demo: {} users x {} items, {} ratings of a rank-{} matrix plus N(0, {noise}^2) noise; 90/10 split (seed {})",
        a.users, a.items, a.count, a.rank, a.seed
    );
    let t0 = Instant::now();
    let spec = synth::RatingsSpec {
        users: a.users,
        items: a.items,
        count: a.count,
        rank: a.rank,
        noise,
        stars: false,
        skew: 0.0,
        seed: a.seed,
    };
    let all = synth::ratings_like(&spec)?;
    let (train, test) = split::holdout(&all, 0.1, a.seed)?;
    if test.is_empty() {
        return Err(lowrank::Error::invalid(format!(
            "--count {} leaves no test ratings in the 90/10 split: use at least 10",
            a.count
        ))
        .into());
    }
    println!(
        "generated in {:.2} s; the best possible test RMSE is about {noise} (the noise)\n",
        t0.elapsed().as_secs_f64()
    );
    let (train, test) = (Dataset::Ratings(train), Dataset::Ratings(test));
    let known: Vec<&str> = registry::algos().map(|e| e.name).collect();
    let mut plan: Vec<(&str, Vec<(&str, serde_json::Value)>, usize)> = vec![("baseline", vec![], 10)];
    for (name, params, epochs) in [
        ("als", vec![("rank", serde_json::json!(a.rank)), ("reg", serde_json::json!(0.05))], 10),
        ("sgd", vec![("rank", serde_json::json!(a.rank)), ("preset", serde_json::json!("libmf"))], 30),
    ] {
        if known.contains(&name) {
            plan.push((name, params, epochs));
        }
    }
    println!("{:<10} {:>10} {:>10} {:>10} {:>8}", "algo", "train_rmse", "test_rmse", "seconds", "epochs");
    for (name, params, epochs) in plan {
        let mut req = FitRequest::new(name, &train);
        req.test = Some(&test);
        req.seed = a.seed;
        req.epochs = Some(epochs);
        req.threads = a.threads.unwrap_or(0);
        for (k, v) in params {
            req.params.insert(k.into(), v);
        }
        let out = registry::fit(req)?;
        let g = |k: &str| out.summary.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        println!(
            "{:<10} {:>10.4} {:>10.4} {:>10.3} {:>8}",
            name,
            g("train_rmse"),
            g("test_rmse"),
            g("fit_seconds"),
            epochs
        );
    }
    println!("\nnext:");
    println!("  lowrank algos                                   # every algorithm and its settings");
    println!(
        "  lowrank fit --data u.data --algo als --json     # your own ratings (MovieLens, CSV, Matrix Market, .npy)"
    );
    println!(
        "  lowrank gen planted --out /tmp/p && lowrank fit --data /tmp/p/train.tsv --ids zero-based --truth /tmp/p/gt.npy --algo baseline"
    );
    Ok(())
}
