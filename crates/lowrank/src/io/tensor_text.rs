//! Coordinate text tensors: one observed entry per line, `i j k value`.
//!
//! ```text
//! # tensor 30 30 30
//! 0 0 0 0.125
//! 0 0 1 -1.5e-3
//! ```
//! - Fields are separated by spaces, tabs or commas. Indices are 0-based by
//!   default ([`TensorTextOptions::one_based`] for 1-based files such as
//!   FROSTT's `.tns`).
//! - Blank lines and lines starting with `#` or `%` are comments. A first
//!   comment `# tensor d0 d1 d2` declares the shape (so trailing all-missing
//!   slices survive a round trip, and out-of-range indices are caught at their
//!   line); without it the shape is the largest index + 1 along each mode.
//! - Entries not listed are missing (the tensor gets a mask). Duplicate
//!   entries, non-finite values, negative or non-integer indices are errors
//!   naming `file:line`.
//!
//! [`write()`] emits this format with the shape header and values that read
//! back bit for bit.

use std::path::Path;

use super::source::Source;
use super::{IdMode, ReadOptions, atomic_write, open};
use crate::data::Tensor3;
use crate::error::{Error, Result};

/// Largest dense tensor the reader builds (entries).
const MAX_ENTRIES: usize = 1 << 30;

/// Options of the coordinate tensor reader.
#[derive(Clone, Debug)]
pub struct TensorTextOptions {
    /// Indices start at 1 (default: 0).
    pub one_based: bool,
    /// Declared shape (overrides a `# tensor` header; indices must fit).
    pub shape: Option<[usize; 3]>,
    /// Longest accepted line, in bytes.
    pub max_line_bytes: usize,
}

impl Default for TensorTextOptions {
    fn default() -> Self {
        TensorTextOptions { one_based: false, shape: None, max_line_bytes: 1 << 16 }
    }
}

impl TensorTextOptions {
    /// The tensor options implied by general read options (`--ids one-based`
    /// makes indices 1-based).
    pub fn from_read_options(opts: &ReadOptions) -> Self {
        TensorTextOptions { one_based: opts.ids == IdMode::OneBased, ..Default::default() }
    }
}

/// True when a file looks like coordinate tensor text: its name ends in
/// `.tns` (or `.tns.txt`), or its first line is a `# tensor d0 d1 d2` header.
pub fn detect(name: &str, head: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".tns") || lower.ends_with(".tns.txt") {
        return true;
    }
    let first = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    // a malformed header still marks the file as a tensor (the reader then
    // says what is wrong with it)
    parse_header(first).is_some()
}

/// A `# tensor d0 d1 d2` header: `None` when the comment is not a tensor
/// header at all, else the shape or why the header is malformed.
fn parse_header(line: &[u8]) -> Option<std::result::Result<[usize; 3], String>> {
    let s = std::str::from_utf8(line).ok()?.trim();
    let rest = s.strip_prefix('#').or_else(|| s.strip_prefix('%'))?.trim_start();
    let mut it = rest.split_whitespace();
    if !it.next()?.eq_ignore_ascii_case("tensor") {
        return None;
    }
    let fields: Vec<&str> = it.collect();
    let d: Option<Vec<usize>> = fields.iter().map(|x| x.parse().ok()).collect();
    Some(match d {
        Some(d) if d.len() == 3 && d.iter().all(|&x| x > 0) => Ok([d[0], d[1], d[2]]),
        _ => Err(format!("malformed header '{}': expected '# tensor d0 d1 d2' with three positive sizes", clip(s))),
    })
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 { format!("{}...", s.chars().take(40).collect::<String>()) } else { s.to_string() }
}

fn parse_index(f: &str, mode: usize, one_based: bool) -> std::result::Result<usize, String> {
    let what = ["first", "second", "third"][mode];
    let v: u64 = f.parse().map_err(|_| {
        if f.starts_with('-') {
            format!("the {what} index '{}' is negative", clip(f))
        } else {
            format!("the {what} index '{}' is not a non-negative integer", clip(f))
        }
    })?;
    if one_based {
        if v == 0 {
            return Err(format!("the {what} index is 0 in a 1-based file (indices start at 1)"));
        }
        Ok((v - 1) as usize)
    } else {
        usize::try_from(v).map_err(|_| format!("the {what} index {v} is too large"))
    }
}

fn parse_value(f: &str) -> std::result::Result<f64, String> {
    let v: f64 = f.parse().map_err(|_| format!("the value '{}' is not a number", clip(f)))?;
    if v.is_nan() {
        return Err("the value is NaN (a missing entry is simply not listed)".into());
    }
    if !v.is_finite() {
        return Err(format!("the value '{}' is infinite", clip(f)));
    }
    Ok(v)
}

/// Read a coordinate tensor from an opened source.
pub fn read(src: &mut Source, opts: &TensorTextOptions) -> Result<Tensor3> {
    let path = src.path.clone();
    let mut declared = opts.shape;
    let mut entries: Vec<([usize; 3], f64, u64)> = Vec::new();
    let mut seen_data = false;
    let mut lines = src.lines(opts.max_line_bytes);
    while let Some((no, raw)) = lines.next_line()? {
        let line = std::str::from_utf8(raw).map_err(|_| Error::parse(&path, no, "the line is not valid UTF-8 text"))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') || line.starts_with('%') {
            if !seen_data && declared.is_none() {
                declared = match parse_header(line.as_bytes()) {
                    None => None,
                    Some(Ok(shape)) => Some(shape),
                    Some(Err(reason)) => return Err(Error::parse(&path, no, reason)),
                };
            }
            continue;
        }
        seen_data = true;
        let fields: Vec<&str> =
            line.split(|c: char| c == ',' || c.is_ascii_whitespace()).filter(|f| !f.is_empty()).collect();
        if fields.len() != 4 {
            return Err(Error::parse(
                &path,
                no,
                format!("expected 4 fields 'i j k value', found {} (a matrix file? use a matrix format)", fields.len()),
            ));
        }
        let mut ix = [0usize; 3];
        for m in 0..3 {
            ix[m] = parse_index(fields[m], m, opts.one_based).map_err(|e| Error::parse(&path, no, e))?;
            if let Some(d) = declared
                && ix[m] >= d[m]
            {
                let shown = ix[m] + opts.one_based as usize;
                return Err(Error::parse(
                    &path,
                    no,
                    format!(
                        "index {shown} of mode {m} is out of range for the declared shape {}x{}x{}",
                        d[0], d[1], d[2]
                    ),
                ));
            }
        }
        let v = parse_value(fields[3]).map_err(|e| Error::parse(&path, no, e))?;
        entries.push((ix, v, no));
    }
    if entries.is_empty() {
        return Err(Error::parse(&path, 0, "no entries: a coordinate tensor needs at least one 'i j k value' line"));
    }
    let dims = declared.unwrap_or_else(|| {
        let mut d = [0usize; 3];
        for (ix, _, _) in &entries {
            for m in 0..3 {
                d[m] = d[m].max(ix[m] + 1);
            }
        }
        d
    });
    let n =
        dims[0].checked_mul(dims[1]).and_then(|x| x.checked_mul(dims[2])).filter(|&n| n <= MAX_ENTRIES).ok_or_else(
            || {
                Error::parse(
                    &path,
                    0,
                    format!(
                        "a dense {}x{}x{} tensor is too large (more than {MAX_ENTRIES} entries)",
                        dims[0], dims[1], dims[2]
                    ),
                )
            },
        )?;
    // the values, the line of each entry and the mask
    crate::error::ensure_fits_in_memory(
        n as u128 * 3,
        &format!("{}: a dense {}x{}x{} tensor", path.display(), dims[0], dims[1], dims[2]),
        "",
    )?;
    let mut data = crate::mem::huge_zeros(n);
    let mut line_of = vec![0u64; n];
    for (ix, v, no) in &entries {
        let p = (ix[0] * dims[1] + ix[1]) * dims[2] + ix[2];
        if line_of[p] != 0 {
            let b = opts.one_based as usize;
            return Err(Error::parse(
                &path,
                *no,
                format!(
                    "duplicate entry ({}, {}, {}), first given on line {}",
                    ix[0] + b,
                    ix[1] + b,
                    ix[2] + b,
                    line_of[p]
                ),
            ));
        }
        line_of[p] = *no;
        data[p] = *v;
    }
    let t = Tensor3::new(dims, data).map_err(|e| Error::parse(&path, 0, e.to_string()))?;
    if entries.len() == n {
        Ok(t)
    } else {
        let mask = line_of.iter().map(|&l| l != 0).collect();
        t.with_mask(mask).map_err(|e| Error::parse(&path, 0, e.to_string()))
    }
}

/// Open and read a coordinate tensor file (gzip-compressed or not).
pub fn read_path(path: &Path, opts: &TensorTextOptions) -> Result<Tensor3> {
    let mut src = open(path)?;
    read(&mut src, opts)
}

/// Write the observed entries of `t` as `# tensor d0 d1 d2` plus 0-based
/// `i j k value` lines, atomically.
pub fn write(path: &Path, t: &Tensor3) -> Result<()> {
    let [d0, d1, d2] = t.dims();
    atomic_write(path, |w| {
        writeln!(w, "# tensor {d0} {d1} {d2}")?;
        for i in 0..d0 {
            for j in 0..d1 {
                for k in 0..d2 {
                    if t.observed(i, j, k) {
                        writeln!(w, "{i} {j} {k} {:?}", t.get(i, j, k))?;
                    }
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(name: &str, text: &str, opts: &TensorTextOptions) -> (tempfile::TempDir, Result<Tensor3>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let r = read_path(&p, opts);
        (dir, r)
    }

    fn err(text: &str, opts: &TensorTextOptions) -> String {
        let (_d, r) = read_str("t.tns", text, opts);
        r.unwrap_err().to_string()
    }

    #[test]
    fn reads_entries_shape_and_mask() {
        let o = TensorTextOptions::default();
        let (_d, t) = read_str("t.txt", "# a comment\n0 0 0 1.5\n1,2,3,-2\n\n1\t0\t0\t4e-3\n", &o);
        let t = t.unwrap();
        assert_eq!(t.dims(), [2, 3, 4]);
        assert_eq!(t.get(1, 2, 3), -2.0);
        assert_eq!(t.get(1, 0, 0), 4e-3);
        assert_eq!(t.n_observed(), 3);
        assert!(!t.observed(0, 1, 1));
        // header shape, 1-based
        let o1 = TensorTextOptions { one_based: true, ..Default::default() };
        let (_d, t) = read_str("t.tns", "# tensor 3 3 3\n1 1 1 2.0\n", &o1);
        let t = t.unwrap();
        assert_eq!(t.dims(), [3, 3, 3]);
        assert_eq!(t.get(0, 0, 0), 2.0);
        // fully listed: no mask
        let (_d, t) = read_str("t.tns", "0 0 0 1\n0 0 1 2\n", &o);
        assert!(t.unwrap().mask().is_none());
    }

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tns");
        let data: Vec<f64> = (0..24).map(|v| (v as f64 * 0.1).sin() / 3.0).collect();
        let mut mask = vec![true; 24];
        mask[23] = false; // the last slice entry missing: the header keeps the shape
        mask[4] = false;
        let t = Tensor3::new([2, 3, 4], data).unwrap().with_mask(mask).unwrap();
        write(&p, &t).unwrap();
        let back = read_path(&p, &TensorTextOptions::default()).unwrap();
        assert_eq!(back, t);
        let head = std::fs::read(&p).unwrap();
        assert!(detect("whatever.txt", &head));
        assert!(detect("frostt.TNS", b"1 1 1 1\n"));
        assert!(!detect("u.data", b"1\t2\t3\t881250949\n"));
    }

    #[test]
    fn errors_name_the_line_and_the_reason() {
        let o = TensorTextOptions::default();
        let e = err("0 0 0 1\n0 0 2\n", &o);
        assert!(e.contains("t.tns:2:") && e.contains("expected 4 fields"), "{e}");
        let e = err("0 0 0 1\n0 -1 0 2\n", &o);
        assert!(e.contains(":2:") && e.contains("second index '-1' is negative"), "{e}");
        let e = err("0 0 x 1\n", &o);
        assert!(e.contains(":1:") && e.contains("third index 'x'"), "{e}");
        let e = err("0 0 0 nan\n", &o);
        assert!(e.contains(":1:") && e.contains("NaN"), "{e}");
        let e = err("0 0 0 inf\n", &o);
        assert!(e.contains("infinite"), "{e}");
        let e = err("0 0 0 abc\n", &o);
        assert!(e.contains("'abc' is not a number"), "{e}");
        let e = err("0 0 0 1\n1 1 1 1\n0 0 0 2\n", &o);
        assert!(e.contains(":3:") && e.contains("duplicate entry (0, 0, 0), first given on line 1"), "{e}");
        let e = err("# tensor 2 2 2\n0 0 0 1\n0 2 0 1\n", &o);
        assert!(e.contains(":3:") && e.contains("out of range for the declared shape 2x2x2"), "{e}");
        let o1 = TensorTextOptions { one_based: true, ..Default::default() };
        let e = err("0 1 1 1\n", &o1);
        assert!(e.contains(":1:") && e.contains("1-based"), "{e}");
        let e = err("# only comments\n\n", &o);
        assert!(e.contains("no entries"), "{e}");
        let e = err("100000 100000 100000 1\n", &o);
        assert!(e.contains("too large"), "{e}");
        let (_d, r) = read_str("empty.tns", "", &o);
        assert!(r.is_err());
    }

    #[test]
    fn load_detects_coordinate_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor3::new([2, 2, 3], (0..12).map(f64::from).collect()).unwrap();
        let p = dir.path().join("t.txt");
        write(&p, &t).unwrap();
        match super::super::load(&p, &ReadOptions::default()).unwrap() {
            super::super::Dataset::Tensor(back) => assert_eq!(back, t),
            other => panic!("loaded as {}", other.describe()),
        }
        let q = dir.path().join("bad.tns");
        std::fs::write(&q, "0 0 0 1\n0 0 0 1\n").unwrap();
        let e = super::super::load(&q, &ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("bad.tns:2:") && e.contains("duplicate"), "{e}");
    }
}
