//! `lowrank split`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use lowrank::data::split;
use lowrank::io::{Format, ReadOptions, atomic_write, write_triplets};

/// Arguments of `lowrank split`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  lowrank split --data u.data --out splits --method holdout --fraction 0.1 --seed 42
  lowrank split --data u.data --out splits --method leave-k-out --k 10
  lowrank split --data u.data --out splits --method kfold --folds 5
Writes train/test files (or fold1.train, fold1.test, ...). A text file of one rating per line (MovieLens,
CSV or TSV triplets, gzipped or not) is split line by line: ids, values, timestamps and header stay exactly
as they are (train.tsv, .csv or .dat after the input's kind); other formats are written as tab-separated
user, item, rating triplets with the original ids (train.tsv).")]
pub struct SplitArgs {
    /// Ratings file.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    read: super::ReadArgs,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// holdout, leave-k-out or kfold.
    #[arg(long, default_value = "holdout")]
    pub method: String,
    /// Test fraction (holdout).
    #[arg(long, default_value_t = 0.1)]
    pub fraction: f64,
    /// Entries per user held out (leave-k-out).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Number of folds (kfold).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `lowrank split`.
pub fn run(a: SplitArgs) -> anyhow::Result<()> {
    let opts = a.read.options()?;
    let r = lowrank::io::read_ratings(&a.data, &opts)?;
    // the test entries of each part (one part, or one per fold)
    let masks: Vec<Vec<bool>> = match a.method.as_str() {
        "holdout" => vec![split::holdout_mask(r.len(), a.fraction, a.seed)?],
        "leave-k-out" => vec![split::leave_k_out_mask(&r, a.k, a.seed)?],
        "kfold" | "k-fold" => {
            let fold_of = split::k_fold_assignment(r.len(), a.folds, a.seed)?;
            (0..a.folds).map(|f| fold_of.iter().map(|&g| g == f).collect()).collect()
        }
        o => {
            return Err(
                lowrank::Error::invalid(format!("unknown split method '{o}' (holdout, leave-k-out, kfold)")).into()
            );
        }
    };
    // a text file of one rating per line is split line by line (ids, values,
    // timestamps and header as they are); anything else is written as triplets
    let layout = verbatim_layout(&a.data, &opts, r.len())?;
    let ext = match &layout {
        Some(l) => l.ext,
        None => "tsv",
    };
    let multi = masks.len() > 1;
    let names = |f: usize| {
        let p = if multi { format!("fold{}.", f + 1) } else { String::new() };
        (format!("{p}train.{ext}"), format!("{p}test.{ext}"))
    };
    for (f, is_test) in masks.iter().enumerate() {
        let (train, test) = names(f);
        super::refuse_overwriting_inputs(
            &[a.data.as_path()],
            &[("--out", &a.out.join(&train)), ("--out", &a.out.join(&test))],
        )?;
        let ntest = is_test.iter().filter(|&&t| t).count();
        if ntest == 0 || ntest == r.len() {
            let what = if ntest == 0 { test } else { train };
            return Err(lowrank::Error::invalid(format!(
                "{what} would be empty (0 of {} ratings): change --fraction, --k or --folds",
                r.len()
            ))
            .into());
        }
    }
    // (the output directory is created only once everything is checked)
    super::ensure_dir(&a.out)?;
    for (f, is_test) in masks.iter().enumerate() {
        let (train, test) = names(f);
        let ntest = is_test.iter().filter(|&&t| t).count();
        match &layout {
            Some(l) => write_lines(&a.data, l, is_test, &a.out.join(&train), &a.out.join(&test))?,
            None => {
                let idx = |want: bool| -> Vec<usize> { (0..r.len()).filter(|&e| is_test[e] == want).collect() };
                write_triplets(&a.out.join(&train), &r.subset(&idx(false)))?;
                write_triplets(&a.out.join(&test), &r.subset(&idx(true)))?;
            }
        }
        eprintln!("{train}: {} entries, {test}: {ntest} entries", r.len() - ntest);
    }
    Ok(())
}

/// How a one-rating-per-line text file is laid out.
struct Layout {
    /// Whether the first data-like line is a header (copied to every output).
    header: bool,
    /// Extension of the outputs (the input's kind of text).
    ext: &'static str,
}

/// The layout of `path` when its data-like lines are the `n` ratings read
/// from it one to one (plus a header); `None` for other formats.
fn verbatim_layout(path: &Path, opts: &ReadOptions, n: usize) -> anyhow::Result<Option<Layout>> {
    let mut src = lowrank::io::open(path)?;
    let format = match opts.format {
        Format::Auto => {
            let head = src.peek()?.to_vec();
            lowrank::io::detect(&src.inner_name, &head)
        }
        f => f,
    };
    let ext = match format {
        Format::Movielens => "tsv",
        Format::MovielensDat => "dat",
        Format::MovielensCsv => "csv",
        Format::Triplets if src.inner_name.to_ascii_lowercase().ends_with(".csv") => "csv",
        Format::Triplets => "tsv",
        _ => return Ok(None),
    };
    let mut lines = src.lines(opts.max_line_bytes.max(1 << 20));
    let mut count = 0usize;
    while let Some((_, line)) = lines.next_line()? {
        count += lowrank::io::is_data_line(line) as usize;
    }
    Ok(match count {
        c if c == n => Some(Layout { header: false, ext }),
        c if c == n + 1 => Some(Layout { header: true, ext }),
        _ => None,
    })
}

/// Copy the data lines of `path` to `train` or `test` by `is_test` (the
/// header, if any, to both), atomically.
fn write_lines(path: &Path, layout: &Layout, is_test: &[bool], train: &Path, test: &Path) -> anyhow::Result<()> {
    let mut src = lowrank::io::open(path)?;
    let mut lines = src.lines(usize::MAX / 4);
    let mut failure: Option<lowrank::Error> = None;
    atomic_write(train, |wt| {
        atomic_write(test, |ws| {
            let mut k = 0usize;
            let mut header = layout.header;
            loop {
                let line = match lines.next_line() {
                    Ok(Some((_, line))) => line,
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        return Err(std::io::Error::other("read failed"));
                    }
                };
                if !lowrank::io::is_data_line(line) {
                    continue;
                }
                if std::mem::take(&mut header) {
                    wt.write_all(line)?;
                    wt.write_all(b"\n")?;
                    ws.write_all(line)?;
                    ws.write_all(b"\n")?;
                    continue;
                }
                let Some(&to_test) = is_test.get(k) else {
                    return Err(std::io::Error::other("the input changed while it was being split"));
                };
                let w: &mut dyn Write = if to_test { &mut *ws } else { &mut *wt };
                w.write_all(line)?;
                w.write_all(b"\n")?;
                k += 1;
            }
            if k != is_test.len() {
                return Err(std::io::Error::other("the input changed while it was being split"));
            }
            Ok(())
        })
        .map_err(std::io::Error::other)
    })
    .map_err(|e| failure.take().unwrap_or(e))?;
    Ok(())
}
