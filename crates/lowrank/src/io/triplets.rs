//! Delimited `user item rating [extra]` files: MovieLens `u.data` (tab),
//! `ratings.dat` (`::`), `ratings.csv` (comma with header), and generic
//! tab/space/comma triplets with an optional header and an optional ignored
//! fourth column.

use super::source::{Lines, Source};
use super::{IdMode, ReadOptions};
use crate::data::{IdMap, Ratings};
use crate::error::{Error, Result};

/// Field separator of a delimited file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Separator {
    /// A single tab.
    Tab,
    /// A comma.
    Comma,
    /// Two colons (`ratings.dat`).
    DoubleColon,
    /// Runs of spaces or tabs.
    Whitespace,
}

impl Separator {
    /// Guess the separator from one data line.
    pub fn detect(line: &[u8]) -> Separator {
        if line.windows(2).any(|w| w == b"::") {
            Separator::DoubleColon
        } else if line.contains(&b'\t') {
            Separator::Tab
        } else if line.contains(&b',') {
            Separator::Comma
        } else {
            Separator::Whitespace
        }
    }

    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Separator::Tab => "tab",
            Separator::Comma => "comma",
            Separator::DoubleColon => "'::'",
            Separator::Whitespace => "whitespace",
        }
    }
}

/// Split `line` into at most `out.len()` fields; returns the number of fields
/// found (which may exceed `out.len()`; extra fields are counted, not stored).
#[inline]
pub(crate) fn split_fields<'a>(line: &'a [u8], sep: Separator, out: &mut [&'a [u8]]) -> usize {
    let mut n = 0;
    let mut push = |f: &'a [u8], n: &mut usize| {
        if *n < out.len() {
            out[*n] = f;
        }
        *n += 1;
    };
    match sep {
        Separator::Tab | Separator::Comma => {
            let b = if sep == Separator::Tab { b'\t' } else { b',' };
            let mut start = 0;
            for (i, &c) in line.iter().enumerate() {
                if c == b {
                    push(&line[start..i], &mut n);
                    start = i + 1;
                }
            }
            push(&line[start..], &mut n);
        }
        Separator::DoubleColon => {
            let mut start = 0;
            let mut i = 0;
            while i + 1 < line.len() {
                if line[i] == b':' && line[i + 1] == b':' {
                    push(&line[start..i], &mut n);
                    i += 2;
                    start = i;
                } else {
                    i += 1;
                }
            }
            push(&line[start..], &mut n);
        }
        Separator::Whitespace => {
            for f in line.split(|c| *c == b' ' || *c == b'\t').filter(|f| !f.is_empty()) {
                push(f, &mut n);
            }
        }
    }
    n
}

/// Trim ASCII spaces around a field (and surrounding double quotes, as CSV
/// writers emit for string ids).
#[inline]
pub(crate) fn trim(f: &[u8]) -> &[u8] {
    let f = f.trim_ascii();
    if f.len() >= 2 && f[0] == b'"' && f[f.len() - 1] == b'"' { &f[1..f.len() - 1] } else { f }
}

/// Parse a rating value; NaN, infinities and values that overflow f32 are
/// rejected with a reason.
pub(crate) fn parse_value(f: &[u8]) -> std::result::Result<f32, String> {
    let s = std::str::from_utf8(f).map_err(|_| "the rating is not valid text".to_string())?;
    if s.is_empty() {
        return Err("the rating is empty".into());
    }
    let v: f64 = s.parse().map_err(|_| format!("the rating '{}' is not a number", clip(s)))?;
    if v.is_nan() {
        return Err("the rating is NaN (missing values belong in a dense file, not a triplet file)".into());
    }
    if !v.is_finite() {
        return Err(format!("the rating '{}' is infinite", clip(s)));
    }
    if v.abs() > f32::MAX as f64 {
        return Err(format!("the rating '{}' overflows a 32-bit float", clip(s)));
    }
    Ok(v as f32)
}

pub(crate) fn clip(s: &str) -> String {
    if s.chars().count() > 40 { format!("{}...", s.chars().take(40).collect::<String>()) } else { s.to_string() }
}

/// Fast path for plain decimal integer ids.
#[inline]
fn parse_u64(f: &[u8]) -> Option<u64> {
    if f.is_empty() || f.len() > 19 || (f.len() > 1 && f[0] == b'0') {
        return None;
    }
    let mut x = 0u64;
    for &c in f {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        x = x * 10 + d as u64;
    }
    Some(x)
}

struct IdSide {
    map: IdMap,
    mode: IdMode,
    max_index: u64,
}

impl IdSide {
    fn new(mode: IdMode) -> Self {
        IdSide { map: IdMap::new(), mode, max_index: 0 }
    }

    #[inline]
    fn index(&mut self, f: &[u8], what: &str) -> std::result::Result<u32, String> {
        match self.mode {
            IdMode::Map => {
                if let Some(x) = parse_u64(f).filter(|_| self.map.is_integer()) {
                    return Ok(self.map.get_or_insert_int(x));
                }
                if f.is_empty() {
                    return Err(format!("the {what} id is empty"));
                }
                let s = std::str::from_utf8(f).map_err(|_| format!("the {what} id is not valid text"))?;
                if self.map.len() >= u32::MAX as usize - 1 {
                    return Err(format!("too many distinct {what} ids"));
                }
                Ok(self.map.get_or_insert(s))
            }
            IdMode::ZeroBased | IdMode::OneBased => {
                let base = if self.mode == IdMode::OneBased { 1 } else { 0 };
                let x = parse_u64(f).ok_or_else(|| {
                    format!("the {what} index '{}' is not a non-negative integer", clip(&String::from_utf8_lossy(f)))
                })?;
                if x < base {
                    return Err(format!("the {what} index is {x} but indices are {base}-based"));
                }
                let i = x - base;
                if i >= u32::MAX as u64 {
                    return Err(format!("the {what} index {x} is too large"));
                }
                self.max_index = self.max_index.max(i + 1);
                Ok(i as u32)
            }
        }
    }

    fn finish(mut self, declared: Option<usize>, what: &str) -> std::result::Result<(IdMap, Option<Vec<u32>>), String> {
        match self.mode {
            IdMode::Map => {
                let perm = self.map.sorted();
                let identity = perm.iter().enumerate().all(|(i, &p)| p as usize == i);
                Ok((self.map, (!identity).then_some(perm)))
            }
            IdMode::ZeroBased | IdMode::OneBased => {
                let n = match declared {
                    Some(n) if (n as u64) < self.max_index => {
                        return Err(format!("a {what} index exceeds the declared size {n}"));
                    }
                    Some(n) => n,
                    None => self.max_index as usize,
                };
                let base = if self.mode == IdMode::OneBased { 1 } else { 0 };
                Ok((IdMap::offset(n, base), None))
            }
        }
    }
}

/// Lines skipped (header, blank, comment) so that entry `k` can be traced back
/// to its line number without storing a line number per entry.
#[derive(Default)]
pub(crate) struct LineBook {
    skipped: Vec<u64>,
}

impl LineBook {
    pub(crate) fn skip(&mut self, line: u64) {
        self.skipped.push(line);
    }
    /// Line number of the `k`-th (0-based) data line.
    pub(crate) fn line_of(&self, k: usize) -> u64 {
        let mut line = k as u64 + 1;
        for &s in &self.skipped {
            if s <= line {
                line += 1;
            } else {
                break;
            }
        }
        line
    }
}

/// Read a delimited triplet file into [`Ratings`].
pub fn read(src: &mut Source, sep: Option<Separator>, opts: &ReadOptions) -> Result<Ratings> {
    let path = src.path.clone();
    let mut lines: Lines<'_> = src.lines(opts.max_line_bytes);
    let mut book = LineBook::default();
    let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    let mut ri = IdSide::new(opts.ids);
    let mut ci = IdSide::new(opts.ids);
    let mut sep = sep;
    let mut ncols_expected: Option<usize> = None;
    let mut seen_data = false;
    let mut header_line: Option<u64> = None;
    while let Some((no, line)) = lines.next_line()? {
        if line.trim_ascii().is_empty() || line.first() == Some(&b'#') || line.first() == Some(&b'%') {
            book.skip(no);
            continue;
        }
        let s = *sep.get_or_insert_with(|| Separator::detect(line));
        let mut fields: [&[u8]; 4] = [&[]; 4];
        let n = split_fields(line, s, &mut fields);
        if n < 3 || n > 4 {
            let hint = if n < 3 {
                format!(
                    "expected 3 or 4 {}-separated fields (user, item, rating[, ignored]), found {n} (wrong separator? try --format)",
                    s.name()
                )
            } else {
                format!("expected 3 or 4 {}-separated fields (user, item, rating[, ignored]), found {n}", s.name())
            };
            return Err(Error::parse(&path, no, hint));
        }
        if let Some(e) = ncols_expected {
            if n != e {
                return Err(Error::parse(&path, no, format!("expected {e} fields as on the first data line, found {n}")));
            }
        }
        let (fu, fi, fr) = (trim(fields[0]), trim(fields[1]), trim(fields[2]));
        let value = match parse_value(fr) {
            Ok(v) => v,
            Err(reason) => {
                let textual = std::str::from_utf8(fr).map_or(true, |t| t.parse::<f64>().is_err());
                if textual && !seen_data && header_line.is_none() && opts.header != Some(false) {
                    // the first line with a non-numeric rating is a header
                    header_line = Some(no);
                    book.skip(no);
                    ncols_expected = Some(n);
                    continue;
                }
                return Err(Error::parse(&path, no, reason));
            }
        };
        if !seen_data && header_line.is_none() && opts.header == Some(true) {
            header_line = Some(no);
            book.skip(no);
            ncols_expected = Some(n);
            continue;
        }
        ncols_expected.get_or_insert(n);
        let r = ri.index(fu, "user").map_err(|e| Error::parse(&path, no, e))?;
        let c = ci.index(fi, "item").map_err(|e| Error::parse(&path, no, e))?;
        rows.push(r);
        cols.push(c);
        vals.push(value);
        seen_data = true;
        if rows.len() >= u32::MAX as usize - 1 {
            return Err(Error::parse(&path, no, "more than 2^32 - 2 entries are not supported"));
        }
        if let Some(p) = opts.progress.as_ref() {
            if rows.len() % (1 << 20) == 0 {
                p(rows.len() as u64);
            }
        }
    }
    if !seen_data {
        let reason = if header_line.is_some() { "the file has a header but no data lines" } else { "the file has no data lines" };
        return Err(Error::parse(&path, 0, reason));
    }
    let (row_ids, rperm) = ri.finish(opts.shape.map(|s| s.0), "user").map_err(|e| Error::parse(&path, 0, e))?;
    let (col_ids, cperm) = ci.finish(opts.shape.map(|s| s.1), "item").map_err(|e| Error::parse(&path, 0, e))?;
    if let Some(p) = rperm {
        rows.iter_mut().for_each(|r| *r = p[*r as usize]);
    }
    if let Some(p) = cperm {
        cols.iter_mut().for_each(|c| *c = p[*c as usize]);
    }
    let ratings = Ratings::with_ids(rows, cols, vals, row_ids, col_ids).map_err(|e| Error::parse(&path, 0, e.to_string()))?;
    if let Some((a, b)) = ratings.find_duplicate() {
        let (la, lb) = (book.line_of(a), book.line_of(b));
        return Err(Error::parse(
            &path,
            lb,
            format!(
                "duplicate entry for user {} and item {}: also on line {la}",
                ratings.row_ids.id(ratings.rows()[a] as usize),
                ratings.col_ids.id(ratings.cols()[a] as usize)
            ),
        ));
    }
    Ok(ratings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_variants() {
        let mut f: [&[u8]; 4] = [&[]; 4];
        assert_eq!(split_fields(b"1\t2\t3\t4", Separator::Tab, &mut f), 4);
        assert_eq!(f[2], b"3");
        assert_eq!(split_fields(b"1::2::3.5::4", Separator::DoubleColon, &mut f), 4);
        assert_eq!(f[2], b"3.5");
        assert_eq!(split_fields(b"  1  2 3 ", Separator::Whitespace, &mut f), 3);
        assert_eq!(f[1], b"2");
        assert_eq!(split_fields(b"a,b,c,d,e", Separator::Comma, &mut f), 5);
    }

    #[test]
    fn line_book() {
        let mut b = LineBook::default();
        b.skip(1);
        b.skip(3);
        // data lines are 2, 4, 5, ...
        assert_eq!(b.line_of(0), 2);
        assert_eq!(b.line_of(1), 4);
        assert_eq!(b.line_of(2), 5);
    }

    #[test]
    fn values() {
        assert_eq!(parse_value(b"3.5"), Ok(3.5));
        assert!(parse_value(b"nan").is_err());
        assert!(parse_value(b"inf").is_err());
        assert!(parse_value(b"1e50").is_err());
        assert!(parse_value(b"x").is_err());
    }
}
