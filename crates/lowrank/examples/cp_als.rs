//! The course notebook's CP-ALS experiment (seed 000, "Tensor completion
//! factorization"): a random rank-`R` CP tensor with unit-norm Gaussian factor
//! columns plus Gaussian noise of relative size `μ`, decomposed by ALS from a
//! Gaussian start for a fixed number of iterations; the relative error against
//! the noisy and the clean tensor, and the time per iteration, over several
//! seeds (the notebook's seeds count down from 999).
//!
//! ```text
//! cargo run --release -p lowrank --example cp_als                       # 30^3, rank 20, mu 1e-5, 500 its, 5 seeds
//! cargo run --release -p lowrank --example cp_als -- --dims 200 --rank 10 --iters 50 --seeds 1
//! cargo run --release -p lowrank --example cp_als -- --write-npy /tmp/cp   # also write noisy/clean .npy per seed
//! cargo run --release -p lowrank --example cp_als -- --npy T.npy --clean C.npy --rank 20 --iters 500
//! ```
//! Flags: `--dims D` (cubic) or `--shape a,b,c`, `--rank R`, `--mu X`,
//! `--iters N`, `--seeds S`, `--threads T` (0 = all cores), `--init
//! gaussian|svd`, `--line-search`, `--no-compress` (ALS on the full tensor in
//! every iteration, see `CpAls::compress`), `--tol X`, `--json` (one JSON line per
//! run), `--write-npy DIR`, `--npy FILE [--clean FILE]` (fit a given tensor).

use std::path::{Path, PathBuf};
use std::time::Instant;

use lowrank::data::{Tensor3, synth};
use lowrank::io::{self, ReadOptions};
use lowrank::solve::Executor;
use lowrank::solve::tensor::{CpAls, CpInit};

#[derive(Clone)]
struct Args {
    shape: [usize; 3],
    rank: usize,
    mu: f64,
    iters: usize,
    seeds: usize,
    threads: usize,
    init: CpInit,
    line_search: bool,
    compress: bool,
    tol: f64,
    json: bool,
    write_npy: Option<PathBuf>,
    npy: Option<PathBuf>,
    clean: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        shape: [30, 30, 30],
        rank: 20,
        mu: 1e-5,
        iters: 500,
        seeds: 5,
        threads: 0,
        init: CpInit::Gaussian,
        line_search: false,
        compress: true,
        tol: 0.0,
        json: false,
        write_npy: None,
        npy: None,
        clean: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |s: String| s.parse::<f64>().map_err(|_| format!("bad number '{s}'"));
        let int = |s: String| s.parse::<usize>().map_err(|_| format!("bad integer '{s}'"));
        match flag.as_str() {
            "--dims" => {
                let d = int(val()?)?;
                a.shape = [d, d, d];
            }
            "--shape" => {
                let v: Vec<usize> = val()?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| format!("bad shape '{s}'")))
                    .collect::<Result<_, _>>()?;
                a.shape = v.try_into().map_err(|_| "--shape needs three sizes a,b,c".to_string())?;
            }
            "--rank" => a.rank = int(val()?)?,
            "--mu" => a.mu = num(val()?)?,
            "--iters" => a.iters = int(val()?)?,
            "--seeds" => a.seeds = int(val()?)?,
            "--threads" => a.threads = int(val()?)?,
            "--tol" => a.tol = num(val()?)?,
            "--init" => {
                a.init = match val()?.as_str() {
                    "gaussian" => CpInit::Gaussian,
                    "svd" => CpInit::Svd,
                    o => return Err(format!("unknown init '{o}' (gaussian, svd)")),
                }
            }
            "--line-search" => a.line_search = true,
            "--no-compress" => a.compress = false,
            "--json" => a.json = true,
            "--write-npy" => a.write_npy = Some(PathBuf::from(val()?)),
            "--npy" => a.npy = Some(PathBuf::from(val()?)),
            "--clean" => a.clean = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                println!("see the doc comment of examples/cp_als.rs for the flags");
                std::process::exit(0);
            }
            o => return Err(format!("unknown flag '{o}'")),
        }
    }
    Ok(a)
}

fn load_tensor(p: &Path) -> lowrank::Result<Tensor3> {
    match io::load(p, &ReadOptions::default())? {
        io::Dataset::Tensor(t) => Ok(t),
        other => {
            Err(lowrank::Error::invalid(format!("{}: expected a 3-D tensor, found {}", p.display(), other.describe())))
        }
    }
}

struct Outcome {
    rel_noisy: f64,
    rel_recorded: f64,
    rel_clean: Option<f64>,
    seconds: f64,
    iterations: usize,
}

fn fit(a: &Args, t: &Tensor3, clean: Option<&Tensor3>, seed: u64) -> lowrank::Result<Outcome> {
    let p = CpAls {
        rank: a.rank,
        init: a.init,
        line_search: a.line_search,
        tol: a.tol,
        compress: a.compress,
        ..Default::default()
    };
    let mut ex = Executor::new(p.check()?, t).seed(seed).max_iters(a.iters);
    if a.threads > 0 {
        ex = ex.threads(a.threads);
    }
    let t0 = Instant::now();
    let fit = ex.run()?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(Outcome {
        rel_noisy: fit.model.relative_error(t)?,
        rel_recorded: fit.history.last().and_then(|r| r.get("rel_error")).unwrap_or(f64::NAN),
        rel_clean: clean.map(|c| fit.model.relative_error(c)).transpose()?,
        seconds,
        iterations: fit.iterations,
    })
}

fn report(a: &Args, label: &str, seed: u64, o: &Outcome) {
    let threads = if a.threads == 0 { rayon::current_num_threads() } else { a.threads };
    let per_iter_ms = 1e3 * o.seconds / o.iterations.max(1) as f64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "impl": "lowrank", "problem": label, "seed": seed, "shape": a.shape, "rank": a.rank,
                "iterations": o.iterations, "fit_s": o.seconds, "per_iter_ms": per_iter_ms,
                "rel_err": o.rel_noisy, "rel_err_recorded": o.rel_recorded, "rel_err_vs_clean": o.rel_clean,
                "threads": threads, "init": format!("{:?}", a.init).to_lowercase(), "line_search": a.line_search,
                "compress": a.compress,
            })
        );
    } else {
        let clean = o.rel_clean.map_or("-".to_string(), |c| format!("{c:.3e}"));
        println!(
            "{label:>12} seed {seed:>4}: {:>4} its  rel err vs noisy {:.3e}  vs clean {clean}  {:.3} s  ({per_iter_ms:.4} ms/it, {threads} threads)",
            o.iterations, o.rel_noisy, o.seconds
        );
    }
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> lowrank::Result<()> {
    if let Some(p) = &a.npy {
        let t = load_tensor(p)?;
        let clean = a.clean.as_deref().map(load_tensor).transpose()?;
        let mut a2 = a.clone();
        a2.shape = t.dims();
        let o = fit(&a2, &t, clean.as_ref(), 0)?;
        report(&a2, &p.display().to_string(), 0, &o);
        return Ok(());
    }
    let label = format!("{}x{}x{}", a.shape[0], a.shape[1], a.shape[2]);
    if !a.json {
        println!(
            "CP-ALS, notebook experiment: shape {label}, rank {}, mu {:e}, {} iterations, init {:?}",
            a.rank, a.mu, a.iters, a.init
        );
    }
    let mut outs = Vec::new();
    for s in 0..a.seeds {
        let seed = 999 - s as u64;
        let (noisy, clean, _) = synth::random_cp(a.shape, a.rank, a.mu, seed)?;
        if let Some(dir) = &a.write_npy {
            std::fs::create_dir_all(dir).map_err(|e| lowrank::Error::io(dir, e))?;
            io::npy::write(&dir.join(format!("noisy_{label}_r{}_s{seed}.npy", a.rank)), &a.shape, noisy.data())?;
            io::npy::write(&dir.join(format!("clean_{label}_r{}_s{seed}.npy", a.rank)), &a.shape, clean.data())?;
        }
        let o = fit(a, &noisy, Some(&clean), seed)?;
        report(a, &label, seed, &o);
        outs.push(o);
    }
    if !a.json && !outs.is_empty() {
        let n = outs.len() as f64;
        let mut per: Vec<f64> = outs.iter().map(|o| o.seconds / o.iterations.max(1) as f64).collect();
        per.sort_by(f64::total_cmp);
        let max_noisy = outs.iter().map(|o| o.rel_noisy).fold(0.0, f64::max);
        let max_clean = outs.iter().filter_map(|o| o.rel_clean).fold(0.0, f64::max);
        println!(
            "over {} seeds: rel err vs noisy mean {:.3e} (max {max_noisy:.3e}), vs clean mean {:.3e} (max {max_clean:.3e}), median {:.4} ms/iteration",
            outs.len(),
            outs.iter().map(|o| o.rel_noisy).sum::<f64>() / n,
            outs.iter().filter_map(|o| o.rel_clean).sum::<f64>() / n,
            1e3 * per[per.len() / 2]
        );
    }
    Ok(())
}
