//! Seed 001: implicit regularization in deep matrix factorization (Arora,
//! Cohen, Hu, Luo 2019) — the reproduction table.
//!
//! For n = 100, rank 5 planted matrices (`||W||_F = n`) with 2000 and 5000
//! observed entries, fits depth 1 (nuclear-norm minimization, `nuclear-min`,
//! when registered), 2, 3, 4 (`deep`, group RMSprop lr 1e-3 as
//! `configs/opt/grouprmsprop.toml`) from init_scale 1e-3 ... 1e-6 over
//! several seeds, and prints a markdown table of the test error
//! (`||W - W*||_F / ||W*||_F`) and the effective rank (medians over seeds,
//! with the range), plus one JSON line per run to `--jsonl FILE`.
//!
//! ```text
//! cargo run --release -p lowrank --example deep_mf -- \
//!     [--seeds 3] [--iters 60000] [--workers 2] [--optimizer group_rmsprop] [--lr 1e-3] \
//!     [--depths 2,3,4] [--scales 1e-3,1e-4,1e-5,1e-6] [--obs 2000,5000] [--jsonl out.jsonl]
//! ```
//! Each run uses one thread; `--workers` runs go side by side.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use lowrank::data::synth;
use lowrank::io::Dataset;
use lowrank::solve::registry::{self, FitRequest};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Job {
    obs: usize,
    depth: usize,
    scale: f64,
    seed: u64,
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2])
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str, d: &str| -> String {
        args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| d.to_string())
    };
    let seeds: u64 = get("--seeds", "3").parse()?;
    let iters: usize = get("--iters", "60000").parse()?;
    let workers: usize = get("--workers", "2").parse()?;
    let optimizer = get("--optimizer", "group_rmsprop");
    let lr: f64 = get("--lr", "1e-3").parse()?;
    let depths: Vec<usize> = list(&get("--depths", "2,3,4"));
    let scales: Vec<f64> = list(&get("--scales", "1e-3,1e-4,1e-5,1e-6"));
    let obs: Vec<usize> = list(&get("--obs", "2000,5000"));
    let jsonl = get("--jsonl", "");

    let mut jobs = Vec::new();
    for &o in &obs {
        for seed in 0..seeds {
            jobs.push(Job { obs: o, depth: 1, scale: 0.0, seed });
            for &d in &depths {
                for &s in &scales {
                    jobs.push(Job { obs: o, depth: d, scale: s, seed });
                }
            }
        }
    }
    let have_nuc = registry::find("nuclear-min").is_ok();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(Job, Value)>> = Mutex::new(Vec::new());
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..workers.max(1) {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i).cloned() else { break };
                    if job.depth == 1 && !have_nuc {
                        continue;
                    }
                    let prob = synth::planted_completion(100, 5, job.obs, job.seed).expect("planted problem");
                    let data = Dataset::Ratings(prob.observed.clone());
                    let mut req = if job.depth == 1 {
                        FitRequest::new("nuclear-min", &data)
                    } else {
                        FitRequest::new("deep", &data)
                            .set("depth", job.depth)
                            .set("init_scale", job.scale)
                            .set("optimizer", optimizer.as_str())
                            .set("lr", lr)
                            .set("n_dev_iters", 1000)
                    };
                    req.truth = Some(&prob.truth);
                    req.seed = job.seed;
                    req.threads = 1;
                    if job.depth > 1 {
                        req.epochs = Some(iters);
                    }
                    let out = match registry::fit(req) {
                        Ok(o) => Value::Object(o.summary),
                        Err(e) => json!({ "error": e.to_string() }),
                    };
                    eprintln!(
                        "[{:>6.1}s] obs {} depth {} init {:e} seed {}: rel {} erank {} iters {}",
                        t0.elapsed().as_secs_f64(),
                        job.obs,
                        job.depth,
                        job.scale,
                        job.seed,
                        out.get("rel_error").unwrap_or(&Value::Null),
                        out.get("effective_rank").unwrap_or(&Value::Null),
                        out.get("iterations").unwrap_or(&Value::Null)
                    );
                    results.lock().expect("results").push((job, out));
                }
            });
        }
    });
    let results = results.into_inner().expect("results");
    if !jsonl.is_empty() {
        let mut s = String::new();
        for (j, v) in &results {
            s.push_str(
                &json!({"obs": j.obs, "depth": j.depth, "init_scale": j.scale, "seed": j.seed, "summary": v})
                    .to_string(),
            );
            s.push('\n');
        }
        std::fs::write(&jsonl, s)?;
    }
    println!(
        "| observed | depth | init_scale | test rel. error (median [min, max]) | effective rank (median) | iterations (median) | converged | seconds (median) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &o in &obs {
        let mut keys: Vec<(usize, f64)> = vec![(1, 0.0)];
        for &d in &depths {
            for &s in &scales {
                keys.push((d, s));
            }
        }
        for (d, s) in keys {
            let runs: Vec<&Value> =
                results.iter().filter(|(j, _)| j.obs == o && j.depth == d && j.scale == s).map(|(_, v)| v).collect();
            if runs.is_empty() {
                continue;
            }
            let f = |k: &str| -> Vec<f64> { runs.iter().filter_map(|v| v.get(k).and_then(Value::as_f64)).collect() };
            let rel = f("rel_error");
            let (lo, hi) = rel.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            let conv =
                runs.iter().filter(|v| v.get("termination").and_then(Value::as_str) == Some("converged")).count();
            let name = if d == 1 { "1 (nuclear-min)".to_string() } else { d.to_string() };
            let scale = if d == 1 { "-".to_string() } else { format!("{s:e}") };
            println!(
                "| {o} | {name} | {scale} | {:.2e} [{lo:.1e}, {hi:.1e}] | {:.2} | {:.0} | {conv}/{} | {:.1} |",
                median(rel.clone()),
                median(f("effective_rank")),
                median(f("iterations")),
                runs.len(),
                median(f("fit_seconds"))
            );
        }
    }
    eprintln!("table done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
