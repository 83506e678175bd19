//! `lowrank gen`.

use std::path::PathBuf;

use clap::Subcommand;
use lowrank::data::synth;
use lowrank::io::{atomic_write, npy, write_triplets};
use serde_json::json;

/// Synthetic problems.
#[derive(Subcommand, Debug)]
pub enum GenCommand {
    /// Planted completion problem (deep MF paper): W = U V^T scaled to ||W||_F = n, k observed entries.
    #[command(
        after_help = "Example:\n  lowrank gen planted --n 100 --rank 5 --observed 2000 --seed 1 --out data/mat-cmpl\n  -> gt.npy (ground truth), train.tsv (0-based row col value), meta.json"
    )]
    Planted {
        /// Matrix size (n x n).
        #[arg(long, default_value_t = 100)]
        n: usize,
        /// Rows, when not square.
        #[arg(long)]
        m: Option<usize>,
        /// Rank of the ground truth.
        #[arg(long, default_value_t = 5)]
        rank: usize,
        /// Number of observed entries.
        #[arg(long, default_value_t = 2000)]
        observed: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// The course notebook's rank-2 checkerboard, subsampled at a density.
    #[command(after_help = "Example:\n  lowrank gen checkerboard --density 0.25 --seed 3 --out data/checker")]
    Checkerboard {
        /// Rows.
        #[arg(long, default_value_t = 40)]
        rows: usize,
        /// Columns.
        #[arg(long, default_value_t = 70)]
        cols: usize,
        /// Fraction of observed entries.
        #[arg(long, default_value_t = 0.25)]
        density: f64,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Ratings-like sparse data: rank-k P Q^T plus noise on distinct random pairs.
    #[command(
        after_help = "Example:\n  lowrank gen ratings --users 200000 --items 20000 --count 10000000 --out big.tsv --test-fraction 0.1"
    )]
    Ratings {
        /// Users (rows).
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        /// Items (columns).
        #[arg(long, default_value_t = 2_000)]
        items: usize,
        /// Number of ratings.
        #[arg(long, default_value_t = 1_000_000)]
        count: usize,
        /// Rank of the ground truth.
        #[arg(long, default_value_t = 16)]
        rank: usize,
        /// Noise standard deviation.
        #[arg(long, default_value_t = 0.1)]
        noise: f64,
        /// Round and clip to a 1..5 star scale.
        #[arg(long)]
        stars: bool,
        /// Popularity skew (0 = uniform).
        #[arg(long, default_value_t = 0.0)]
        skew: f64,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also write a test split with this fraction (OUT with .test before the extension).
        #[arg(long)]
        test_fraction: Option<f64>,
        /// Output triplet file (user item value, 0-based).
        #[arg(long)]
        out: PathBuf,
    },
    /// Random CP tensor plus noise of relative size mu (course notebook), as .npy.
    #[command(after_help = "Example:\n  lowrank gen tensor --dims 30 --rank 20 --noise 1e-5 --out t.npy")]
    Tensor {
        /// Size of each mode (cube), or three sizes: --dims 30,40,50.
        #[arg(long, value_delimiter = ',', default_value = "30")]
        dims: Vec<usize>,
        /// CP rank.
        #[arg(long, default_value_t = 20)]
        rank: usize,
        /// Relative noise level mu.
        #[arg(long, default_value_t = 1e-5)]
        noise: f64,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output .npy.
        #[arg(long)]
        out: PathBuf,
    },
    /// The named small matrices: lab (3x3), lab-masked, blog (4x3 with NaN), as dense CSV.
    Example {
        /// lab, lab-masked or blog.
        name: String,
        /// Output CSV.
        #[arg(long)]
        out: PathBuf,
    },
}

fn write_meta(path: PathBuf, v: serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&v)?;
    atomic_write(&path, |w| writeln!(w, "{text}"))?;
    Ok(())
}

/// `lowrank gen`.
/// Refuse an output name whose extension promises another format than the
/// one written (`x.npy` holding text could not be read back).
fn require_ext(out: &std::path::Path, allowed: &[&str], writes: &str) -> anyhow::Result<()> {
    let ext = out.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if allowed.contains(&ext.as_str()) {
        return Ok(());
    }
    let names: Vec<String> =
        allowed.iter().map(|e| if e.is_empty() { "no extension".into() } else { format!(".{e}") }).collect();
    Err(lowrank::Error::invalid(format!("--out {}: this writes {writes}; name it {}", out.display(), names.join(", ")))
        .into())
}

pub fn run(cmd: GenCommand) -> anyhow::Result<()> {
    match cmd {
        GenCommand::Planted { n, m, rank, observed, seed, out } => {
            super::ensure_dir(&out)?;
            let p = synth::planted_completion_rect(m.unwrap_or(n), n, rank, observed, seed)?;
            npy::write_matrix(&out.join("gt.npy"), &p.truth)?;
            write_triplets(&out.join("train.tsv"), &p.observed)?;
            write_meta(
                out.join("meta.json"),
                json!({"problem": "planted", "m": m.unwrap_or(n), "n": n, "rank": rank, "observed": observed, "seed": seed}),
            )?;
            eprintln!(
                "wrote {}/gt.npy, train.tsv ({observed} entries, 0-based ids: read with --ids zero-based), meta.json",
                out.display()
            );
        }
        GenCommand::Checkerboard { rows, cols, density, seed, out } => {
            super::ensure_dir(&out)?;
            let a = synth::checkerboard(rows, cols);
            let obs = synth::subsample(&a, density, seed)?;
            npy::write_matrix(&out.join("gt.npy"), &a)?;
            write_triplets(&out.join("train.tsv"), &obs)?;
            write_meta(
                out.join("meta.json"),
                json!({"problem": "checkerboard", "rows": rows, "cols": cols, "density": density, "seed": seed, "observed": obs.len()}),
            )?;
            eprintln!("wrote {}/gt.npy and train.tsv ({} observed entries)", out.display(), obs.len());
        }
        GenCommand::Ratings { users, items, count, rank, noise, stars, skew, seed, test_fraction, out } => {
            require_ext(&out, &["tsv", "txt", "data", ""], "tab-separated text (user, item, rating)")?;
            if count == 0 {
                return Err(lowrank::Error::invalid("--count must be at least 1").into());
            }
            super::ensure_parent(&out)?;
            let spec = synth::RatingsSpec { users, items, count, rank, noise, stars, skew, seed };
            let t0 = std::time::Instant::now();
            let all = synth::ratings_like(&spec)?;
            match test_fraction {
                Some(f) => {
                    let (train, test) = lowrank::data::split::holdout(&all, f, seed)?;
                    write_triplets(&out, &train)?;
                    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    let ext = out.extension().map(|s| format!(".{}", s.to_string_lossy())).unwrap_or_default();
                    let tpath = out.with_file_name(format!("{stem}.test{ext}"));
                    write_triplets(&tpath, &test)?;
                    eprintln!(
                        "wrote {} ({}) and {} ({}) in {:.1} s",
                        out.display(),
                        train.len(),
                        tpath.display(),
                        test.len(),
                        t0.elapsed().as_secs_f64()
                    );
                }
                None => {
                    write_triplets(&out, &all)?;
                    eprintln!("wrote {} ({} ratings) in {:.1} s", out.display(), all.len(), t0.elapsed().as_secs_f64());
                }
            }
        }
        GenCommand::Tensor { dims, rank, noise, seed, out } => {
            let d = match dims.as_slice() {
                [a] => [*a, *a, *a],
                [a, b, c] => [*a, *b, *c],
                _ => return Err(lowrank::Error::invalid("--dims takes one size or three").into()),
            };
            require_ext(&out, &["npy"], "a 3-D .npy array")?;
            super::ensure_parent(&out)?;
            let (t, _, _) = synth::random_cp(d, rank, noise, seed)?;
            npy::write(&out, &d, t.data())?;
            eprintln!("wrote {} ({}x{}x{}, rank {rank}, noise {noise})", out.display(), d[0], d[1], d[2]);
        }
        GenCommand::Example { name, out } => {
            let a = match name.as_str() {
                "lab" => synth::lab_matrix(),
                "lab-masked" => synth::lab_matrix_masked(),
                "blog" => synth::blog_matrix(),
                o => {
                    return Err(
                        lowrank::Error::invalid(format!("unknown example '{o}' (lab, lab-masked, blog)")).into()
                    );
                }
            };
            require_ext(&out, &["csv", "txt", ""], "a dense CSV matrix (empty cells missing)")?;
            super::ensure_parent(&out)?;
            atomic_write(&out, |w| {
                for i in 0..a.nrows() {
                    let row: Vec<String> = (0..a.ncols())
                        .map(|j| if a[(i, j)].is_nan() { String::new() } else { a[(i, j)].to_string() })
                        .collect();
                    writeln!(w, "{}", row.join(","))?;
                }
                Ok(())
            })?;
            eprintln!("wrote {}", out.display());
        }
    }
    Ok(())
}
