//! Matrix Market: `coordinate` (real / integer / double, general or
//! symmetric) into [`Ratings`] with 1-based ids, and `array` into a dense
//! matrix. Writer for the coordinate format.

use std::path::Path;

use faer::Mat;

use super::source::Source;
use super::triplets::{LineBook, clip};
use super::{ReadOptions, atomic_write};
use crate::data::{IdMap, Ratings};
use crate::error::{Error, Result};

/// Contents of a Matrix Market file.
pub enum MatrixMarket {
    /// A `coordinate` file.
    Coordinate(Ratings),
    /// An `array` (dense, column-major) file.
    Array(Mat<f64>),
}

fn num<T: std::str::FromStr>(f: &str) -> Option<T> {
    f.parse().ok()
}

/// Read a Matrix Market file.
pub fn read(src: &mut Source, opts: &ReadOptions) -> Result<MatrixMarket> {
    let path = src.path.clone();
    let perr = |line: u64, r: String| Error::parse(&path, line, r);
    let mut lines = src.lines(opts.max_line_bytes.max(1 << 16));
    let Some((no, banner)) = lines.next_line()? else {
        return Err(perr(0, "the file is empty".into()));
    };
    let banner = String::from_utf8_lossy(banner).to_ascii_lowercase();
    let words: Vec<&str> = banner.split_whitespace().collect();
    if words.first() != Some(&"%%matrixmarket") {
        return Err(perr(no, "missing the '%%MatrixMarket matrix coordinate real general' banner".into()));
    }
    if words.len() != 5 || words[1] != "matrix" {
        return Err(perr(no, format!("malformed banner '{}'", clip(&banner))));
    }
    let (layout, field, symmetry) = (words[2], words[3], words[4]);
    if !matches!(layout, "coordinate" | "array") {
        return Err(perr(no, format!("unknown layout '{layout}' (coordinate or array)")));
    }
    match field {
        "real" | "double" | "integer" => {}
        "complex" => return Err(perr(no, "complex matrices are not supported (real or integer only)".into())),
        "pattern" => {
            return Err(perr(
                no,
                "pattern matrices have no values; a rating matrix needs real or integer values".into(),
            ));
        }
        other => return Err(perr(no, format!("unknown field '{other}'"))),
    }
    let symmetric = match symmetry {
        "general" => false,
        "symmetric" => true,
        other => return Err(perr(no, format!("'{other}' matrices are not supported (general or symmetric only)"))),
    };
    let mut book = LineBook::default();
    book.skip(no);
    // size line
    let (m, n, nnz, size_line) = loop {
        let Some((no, line)) = lines.next_line()? else {
            return Err(perr(no, "missing the size line".into()));
        };
        let t = String::from_utf8_lossy(line);
        let t = t.trim();
        if t.is_empty() || t.starts_with('%') {
            book.skip(no);
            continue;
        }
        book.skip(no);
        let f: Vec<&str> = t.split_whitespace().collect();
        match (layout, f.len()) {
            ("coordinate", 3) => match (num::<usize>(f[0]), num::<usize>(f[1]), num::<usize>(f[2])) {
                (Some(a), Some(b), Some(c)) => break (a, b, c, no),
                _ => return Err(perr(no, format!("bad size line '{}'", clip(t)))),
            },
            ("array", 2) => match (num::<usize>(f[0]), num::<usize>(f[1])) {
                (Some(a), Some(b)) => break (a, b, a.saturating_mul(b), no),
                _ => return Err(perr(no, format!("bad size line '{}'", clip(t)))),
            },
            _ => return Err(perr(no, format!("bad size line '{}'", clip(t)))),
        }
    };
    if m == 0 || n == 0 {
        return Err(perr(size_line, format!("the declared shape {m}x{n} is empty")));
    }
    if m > u32::MAX as usize || n > u32::MAX as usize {
        return Err(perr(size_line, "the declared shape is too large".into()));
    }
    if symmetric && m != n {
        return Err(perr(size_line, format!("a symmetric matrix must be square, but the declared shape is {m}x{n}")));
    }
    let integer = field == "integer";
    // an `integer` file holds integers only
    let check_integer = |no: u64, t: &str| -> Result<()> {
        if integer && t.parse::<i64>().is_err() {
            return Err(perr(no, format!("'{}' is not an integer, but the banner declares integer values", clip(t))));
        }
        Ok(())
    };
    if layout == "array" {
        // column-major values; a symmetric array lists the lower triangle only
        let expected = if symmetric { n * (n + 1) / 2 } else { m * n };
        crate::error::ensure_fits_in_memory(
            2 * m as u128 * n as u128,
            &format!("the declared {m}x{n} dense matrix"),
            "",
        )
        .map_err(|e| perr(size_line, e.to_string()))?;
        let mut vals: Vec<f64> = Vec::new();
        let mut last = size_line;
        while let Some((no, line)) = lines.next_line()? {
            last = no;
            let t = String::from_utf8_lossy(line);
            let t = t.trim();
            if t.is_empty() || t.starts_with('%') {
                continue;
            }
            if vals.len() >= expected {
                return Err(perr(no, format!("more values than the declared {m}x{n} holds ({expected})")));
            }
            let v: f64 = num(t).ok_or_else(|| perr(no, format!("'{}' is not a number", clip(t))))?;
            check_integer(no, t)?;
            vals.push(v);
        }
        if vals.len() < expected {
            let what = if symmetric { "(its lower triangle) " } else { "" };
            return Err(perr(last, format!("{} values but the declared {m}x{n} {what}needs {expected}", vals.len())));
        }
        let mut a = Mat::<f64>::zeros(m, n);
        let mut k = 0;
        for j in 0..n {
            for i in if symmetric { j..m } else { 0..m } {
                a[(i, j)] = vals[k];
                if symmetric {
                    a[(j, i)] = vals[k];
                }
                k += 1;
            }
        }
        return Ok(MatrixMarket::Array(a));
    }
    // the declared rows and columns each get an id (a file may declare far
    // more than it has entries)
    crate::error::ensure_fits_in_memory(
        (m as u128 + n as u128) * 8,
        &format!("the ids of the declared {m}x{n} shape"),
        "",
    )
    .map_err(|e| perr(size_line, e.to_string()))?;
    let cap = nnz.min(1 << 26);
    let (mut rows, mut cols, mut vals) = (Vec::with_capacity(cap), Vec::with_capacity(cap), Vec::with_capacity(cap));
    let mut count = 0usize;
    let mut last = size_line;
    // the line of every entry of a symmetric file (an off-diagonal line makes two)
    let mut entry_lines: Vec<u64> = Vec::new();
    while let Some((no, line)) = lines.next_line()? {
        last = no;
        let t = std::str::from_utf8(line).map_err(|_| perr(no, "the line is not valid text".into()))?;
        let t = t.trim();
        if t.is_empty() || t.starts_with('%') {
            book.skip(no);
            continue;
        }
        let mut it = t.split_ascii_whitespace();
        let (fi, fj, fv) = (it.next(), it.next(), it.next());
        let extra = it.next().is_some();
        let (Some(fi), Some(fj), Some(fv)) = (fi, fj, fv) else {
            return Err(perr(no, "expected 'row col value'".into()));
        };
        if extra {
            return Err(perr(no, "expected 'row col value', found more fields".into()));
        }
        let i: u64 = num(fi).ok_or_else(|| perr(no, format!("row index '{}' is not an integer", clip(fi))))?;
        let j: u64 = num(fj).ok_or_else(|| perr(no, format!("column index '{}' is not an integer", clip(fj))))?;
        if i == 0 || j == 0 {
            return Err(perr(no, "index 0: Matrix Market indices are 1-based".into()));
        }
        if i as usize > m || j as usize > n {
            return Err(perr(no, format!("entry ({i}, {j}) is outside the declared {m}x{n} shape")));
        }
        let v = super::triplets::parse_value(fv.as_bytes()).map_err(|r| {
            let r = if r.contains("NaN") {
                "the value is NaN (a coordinate file lists the observed entries: leave missing ones out)".to_string()
            } else {
                r
            };
            perr(no, r)
        })?;
        check_integer(no, fv)?;
        count += 1;
        if count > nnz {
            return Err(perr(no, format!("more entries than the {nnz} declared")));
        }
        rows.push((i - 1) as u32);
        cols.push((j - 1) as u32);
        vals.push(v);
        if symmetric {
            entry_lines.push(no);
            if i != j {
                rows.push((j - 1) as u32);
                cols.push((i - 1) as u32);
                vals.push(v);
                entry_lines.push(no);
            }
        }
    }
    if count < nnz {
        return Err(perr(last, format!("only {count} entries but {nnz} were declared (truncated file?)")));
    }
    if count == 0 {
        return Err(perr(size_line, "the matrix has no entries".into()));
    }
    let r = Ratings::with_ids(rows, cols, vals, IdMap::offset(m, 1), IdMap::offset(n, 1))
        .map_err(|e| perr(0, e.to_string()))?;
    if let Some((a, b)) = r.find_duplicate() {
        let line = |k: usize| if symmetric { entry_lines[k] } else { book.line_of(k) };
        return Err(perr(
            line(b),
            format!("duplicate entry ({}, {}): also on line {}", r.rows()[a] + 1, r.cols()[a] + 1, line(a)),
        ));
    }
    Ok(MatrixMarket::Coordinate(r))
}

/// Write `r` as a Matrix Market coordinate real general file (1-based indices
/// of the dense index space), atomically.
pub fn write(path: &Path, r: &Ratings) -> Result<()> {
    atomic_write(path, |w| {
        writeln!(w, "%%MatrixMarket matrix coordinate real general")?;
        writeln!(w, "% written by lowrank")?;
        writeln!(w, "{} {} {}", r.nrows(), r.ncols(), r.len())?;
        for (i, j, v) in r.iter() {
            writeln!(w, "{} {} {}", i + 1, j + 1, v)?;
        }
        Ok(())
    })
}
