//! Delimited `user item rating [extra]` files: MovieLens `u.data` (tab),
//! `ratings.dat` (`::`), `ratings.csv` (comma with header), and generic
//! tab/space/comma triplets with an optional header and an optional ignored
//! fourth column.

use super::source::Source;
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

/// Whether the reader takes `line` (without its ending) as a rating or a
/// header, not as a blank or comment (`#`, `%`) line: one rule for the reader
/// and for whoever maps ratings back to lines (`lowrank split`).
pub fn is_data_line(line: &[u8]) -> bool {
    !(line.trim_ascii().is_empty() || line.first() == Some(&b'#') || line.first() == Some(&b'%'))
}

impl Separator {
    /// The separator's text (`None` for runs of whitespace).
    pub fn text(self) -> Option<&'static str> {
        match self {
            Separator::Tab => Some("\t"),
            Separator::Comma => Some(","),
            Separator::DoubleColon => Some("::"),
            Separator::Whitespace => None,
        }
    }

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
    /// Direct lookup `id -> index + 1` (0 = absent) for small integer ids,
    /// which skips hashing for the common case of dense numeric ids.
    direct: Vec<u32>,
}

/// Largest id kept in the direct lookup table (64 MiB of u32).
const DIRECT_MAX: u64 = 1 << 24;

impl IdSide {
    fn new(mode: IdMode) -> Self {
        IdSide { map: IdMap::new(), mode, max_index: 0, direct: Vec::new() }
    }

    #[inline]
    fn index(&mut self, f: &[u8], what: &str) -> std::result::Result<u32, String> {
        match self.mode {
            IdMode::Map => {
                if let Some(x) = parse_u64(f).filter(|_| self.map.is_integer()) {
                    return Ok(self.map_int(x));
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

    /// Index of an integer id in map mode (direct table for small ids).
    #[inline]
    fn map_int(&mut self, x: u64) -> u32 {
        if x < DIRECT_MAX && self.map.is_integer() {
            let xi = x as usize;
            if xi >= self.direct.len() {
                self.direct.resize((xi + 1).next_power_of_two().min(DIRECT_MAX as usize), 0);
            }
            let slot = self.direct[xi];
            if slot != 0 {
                return slot - 1;
            }
            let i = self.map.get_or_insert_int(x);
            self.direct[xi] = i + 1;
            return i;
        }
        self.map.get_or_insert_int(x)
    }

    /// Index of an integer id in index mode.
    fn index_int(&mut self, x: u64) -> std::result::Result<u32, String> {
        let base = if self.mode == IdMode::OneBased { 1 } else { 0 };
        if x < base {
            return Err(format!("index {x} but indices are {base}-based"));
        }
        let i = x - base;
        if i >= u32::MAX as u64 {
            return Err(format!("index {x} is too large"));
        }
        self.max_index = self.max_index.max(i + 1);
        Ok(i as u32)
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
                // one id per row (column) up to the largest index, and at
                // least a few numbers per row in any fit: a single stray huge
                // id must not exhaust memory here
                crate::error::ensure_fits_in_memory(
                    n as u128 * 8,
                    &format!("{n} {what}s (the largest {what} index)"),
                    "check the ids: with --ids zero-based or one-based the largest id sets the dimension",
                )
                .map_err(|e| e.to_string())?;
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

/// Fast path for plain decimals (`-12.345`): exact integer mantissa divided by
/// an exact power of ten, i.e. correctly rounded like `str::parse`. Anything
/// else (exponents, `nan`, long mantissas) returns `None` and goes through
/// [`parse_value`].
#[inline]
fn fast_value(f: &[u8]) -> Option<f32> {
    const POW10: [f64; 19] =
        [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18];
    let (neg, digits) = match f.first() {
        Some(b'-') => (true, &f[1..]),
        Some(b'+') => (false, &f[1..]),
        _ => (false, f),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut mant = 0u64;
    let mut frac: Option<usize> = None;
    let mut n_digits = 0;
    for (i, &c) in digits.iter().enumerate() {
        if c == b'.' {
            if frac.is_some() {
                return None;
            }
            frac = Some(digits.len() - i - 1);
            continue;
        }
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        mant = mant * 10 + d as u64;
        n_digits += 1;
    }
    if n_digits == 0 {
        return None;
    }
    let v = mant as f64 / POW10[frac.unwrap_or(0)];
    Some(if neg { -v as f32 } else { v as f32 })
}

/// One parsed piece of a block (parsed in parallel, merged in order).
#[derive(Default)]
struct Piece {
    users: Vec<u64>,
    items: Vec<u64>,
    values: Vec<f32>,
    /// Line offsets (within the piece, 0-based) of skipped lines.
    skipped: Vec<u64>,
    /// Number of lines in the piece.
    lines: u64,
    /// First error: (line offset, reason).
    error: Option<(u64, String)>,
    /// A non-integer id was met: the piece must be re-read on the slow path.
    needs_strings: bool,
}

/// Parse `user<sep>item<sep>value[<sep>ignored]\n` with integer ids and a
/// plain decimal value in one pass. Returns the entry and the bytes consumed
/// (including the newline), or `None` when the line needs the general path.
#[inline]
fn fast_line(s: &[u8], sep: u8, ncols: usize) -> Option<(u64, u64, f32, usize)> {
    let mut p = 0;
    let int = |p: &mut usize| -> Option<u64> {
        let start = *p;
        let mut x = 0u64;
        while *p < s.len() {
            let d = s[*p].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            x = x.checked_mul(10)?.checked_add(d as u64)?;
            *p += 1;
        }
        let len = *p - start;
        if len == 0 || (len > 1 && s[start] == b'0') || *p >= s.len() || s[*p] != sep {
            return None;
        }
        *p += 1;
        Some(x)
    };
    let u = int(&mut p)?;
    let i = int(&mut p)?;
    let vstart = p;
    while p < s.len() && s[p] != sep && s[p] != b'\n' && s[p] != b'\r' {
        p += 1;
    }
    let v = fast_value(&s[vstart..p])?;
    if !v.is_finite() {
        return None;
    }
    match (ncols, s.get(p)) {
        (3, None) => Some((u, i, v, p)),
        (3, Some(b'\n')) => Some((u, i, v, p + 1)),
        (4, Some(&c)) if c == sep => {
            // skip the ignored 4th field
            let nl = s[p..].iter().position(|&c| c == b'\n').map_or(s.len(), |q| p + q + 1);
            let field = &s[p + 1..nl];
            if field.contains(&sep) || field.trim_ascii().is_empty() {
                return None;
            }
            Some((u, i, v, nl))
        }
        _ => None,
    }
}

/// Parse a piece of complete lines with integer ids (fast path).
fn parse_piece(chunk: &[u8], sep: Separator, ncols: usize, opts: &ReadOptions) -> Piece {
    let mut p = Piece::default();
    let cap = chunk.len() / 16;
    p.users.reserve(cap);
    p.items.reserve(cap);
    p.values.reserve(cap);
    let mut rest = chunk;
    let index_mode = opts.ids != IdMode::Map;
    let sep_byte = match sep {
        Separator::Tab => Some(b'\t'),
        Separator::Comma => Some(b','),
        _ => None,
    };
    while !rest.is_empty() {
        if let Some(b) = sep_byte
            && let Some((u, i, v, used)) = fast_line(rest, b, ncols)
        {
            p.users.push(u);
            p.items.push(i);
            p.values.push(v);
            p.lines += 1;
            rest = &rest[used..];
            continue;
        }
        let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
        let mut line = &rest[..end];
        rest = if end < rest.len() { &rest[end + 1..] } else { &[] };
        let no = p.lines;
        p.lines += 1;
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if !is_data_line(line) {
            p.skipped.push(no);
            continue;
        }
        let mut fields: [&[u8]; 4] = [&[]; 4];
        let n = split_fields(line, sep, &mut fields);
        if n != ncols {
            p.error = Some((
                no,
                format!("expected {ncols} {}-separated fields as on the first data line, found {n}", sep.name()),
            ));
            return p;
        }
        let (fu, fi, fr) = (trim(fields[0]), trim(fields[1]), trim(fields[2]));
        let (Some(u), Some(i)) = (parse_u64(fu), parse_u64(fi)) else {
            if index_mode {
                p.error = Some((
                    no,
                    format!(
                        "the id '{}' is not a non-negative integer index",
                        clip(&String::from_utf8_lossy(if parse_u64(fu).is_none() { fu } else { fi }))
                    ),
                ));
            } else {
                p.needs_strings = true;
            }
            return p;
        };
        let v = match fast_value(fr) {
            Some(v) if v.is_finite() => v,
            _ => match parse_value(fr) {
                Ok(v) => v,
                Err(e) => {
                    p.error = Some((no, e));
                    return p;
                }
            },
        };
        p.users.push(u);
        p.items.push(i);
        p.values.push(v);
    }
    p
}

/// Split `block` (complete lines) into about `n` pieces at line boundaries.
fn split_block(block: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let target = block.len().div_ceil(n.max(1)).max(1);
    let mut start = 0;
    while start < block.len() {
        let mut end = (start + target).min(block.len());
        if end < block.len() {
            end = match block[end..].iter().position(|&c| c == b'\n') {
                Some(p) => end + p + 1,
                None => block.len(),
            };
        }
        out.push(&block[start..end]);
        start = end;
    }
    out
}

struct ReadState<'o> {
    path: std::path::PathBuf,
    opts: &'o ReadOptions,
    book: LineBook,
    rows: Vec<u32>,
    cols: Vec<u32>,
    vals: Vec<f32>,
    ri: IdSide,
    ci: IdSide,
    sep: Option<Separator>,
    ncols_expected: Option<usize>,
    seen_data: bool,
    header_line: Option<u64>,
}

impl ReadState<'_> {
    /// Handle one line on the serial path.
    fn line(&mut self, no: u64, line: &[u8]) -> Result<()> {
        if !is_data_line(line) {
            self.book.skip(no);
            return Ok(());
        }
        let s = *self.sep.get_or_insert_with(|| Separator::detect(line));
        let mut fields: [&[u8]; 4] = [&[]; 4];
        let n = split_fields(line, s, &mut fields);
        if !(3..=4).contains(&n) {
            let hint = if n < 3 {
                format!(
                    "expected 3 or 4 {}-separated fields (user, item, rating[, ignored]), found {n} (wrong separator? try --format)",
                    s.name()
                )
            } else {
                format!("expected 3 or 4 {}-separated fields (user, item, rating[, ignored]), found {n}", s.name())
            };
            return Err(Error::parse(&self.path, no, hint));
        }
        if let Some(e) = self.ncols_expected
            && n != e
        {
            return Err(Error::parse(
                &self.path,
                no,
                format!("expected {e} fields as on the first data line, found {n}"),
            ));
        }
        let (fu, fi, fr) = (trim(fields[0]), trim(fields[1]), trim(fields[2]));
        let value = match parse_value(fr) {
            Ok(v) => v,
            Err(reason) => {
                let textual = std::str::from_utf8(fr).map_or(true, |t| t.parse::<f64>().is_err());
                if textual && !self.seen_data && self.header_line.is_none() && self.opts.header != Some(false) {
                    let first = String::from_utf8_lossy(fu).to_ascii_lowercase().replace(['_', ' '], "");
                    // (an explicit --format reads the columns as they are)
                    if self.opts.format == super::Format::Auto
                        && ["movieid", "itemid", "item", "movie", "product", "productid"].contains(&first.as_str())
                    {
                        return Err(Error::parse(
                            &self.path,
                            no,
                            format!(
                                "the header names '{}' first: lowrank reads the columns as user, item, rating; \
                                 put the user column first (or force --format triplets to read them as they are)",
                                String::from_utf8_lossy(fu)
                            ),
                        ));
                    }
                    self.header_line = Some(no);
                    self.book.skip(no);
                    self.ncols_expected = Some(n);
                    return Ok(());
                }
                return Err(Error::parse(&self.path, no, reason));
            }
        };
        if !self.seen_data && self.header_line.is_none() && self.opts.header == Some(true) {
            self.header_line = Some(no);
            self.book.skip(no);
            self.ncols_expected = Some(n);
            return Ok(());
        }
        self.ncols_expected.get_or_insert(n);
        self.rows.push(self.ri.index(fu, "user").map_err(|e| Error::parse(&self.path, no, e))?);
        self.cols.push(self.ci.index(fi, "item").map_err(|e| Error::parse(&self.path, no, e))?);
        self.vals.push(value);
        self.seen_data = true;
        Ok(())
    }
}

/// Read a delimited triplet file into [`Ratings`].
///
/// The first data line is read serially (separator, header, column count);
/// the rest streams through in blocks of a few MiB whose lines are parsed in
/// parallel and merged in file order, so memory stays bounded by the block
/// size and the result does not depend on the thread count. Files with
/// non-integer ids take the serial path from the first such id on.
pub fn read(src: &mut Source, sep: Option<Separator>, opts: &ReadOptions) -> Result<Ratings> {
    use rayon::prelude::*;

    let mut st = ReadState {
        path: src.path.clone(),
        opts,
        book: LineBook::default(),
        rows: Vec::new(),
        cols: Vec::new(),
        vals: Vec::new(),
        ri: IdSide::new(opts.ids),
        ci: IdSide::new(opts.ids),
        sep,
        ncols_expected: None,
        seen_data: false,
        header_line: None,
    };
    let path = src.path.clone();
    let mut line_no = 0u64;
    let mut string_mode = false;
    // Phase A: up to and including the first data line.
    {
        let mut lines = src.lines(opts.max_line_bytes);
        while !st.seen_data {
            let Some((no, line)) = lines.next_line()? else { break };
            line_no = no;
            st.line(no, line)?;
        }
    }
    // Phase B: blocks.
    if st.seen_data {
        let s = st.sep.expect("separator known after a data line");
        let ncols = st.ncols_expected.expect("column count known after a data line");
        let block_size = opts.block_bytes.max(64);
        let mut buf: Vec<u8> = Vec::with_capacity(block_size + (1 << 16));
        let pieces_per_block = rayon::current_num_threads().max(1) * 4;
        let reader = src.bytes();
        loop {
            let start = buf.len();
            buf.resize(start + block_size, 0);
            let mut filled = start;
            while filled < buf.len() {
                let n = reader
                    .read(&mut buf[filled..])
                    .map_err(|e| Error::parse(&path, line_no + 1, format!("corrupt or unreadable data: {e}")))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            let eof = filled < buf.len();
            buf.truncate(filled);
            let cut = if eof { buf.len() } else { buf.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1) };
            if cut == 0 && !eof {
                if buf.len() > opts.max_line_bytes {
                    return Err(Error::parse(
                        &path,
                        line_no + 1,
                        format!("line is longer than {} bytes (binary data or the wrong format?)", opts.max_line_bytes),
                    ));
                }
                continue;
            }
            let block = &buf[..cut];
            // line length guard
            if block.split(|&c| c == b'\n').any(|l| l.len() > opts.max_line_bytes) {
                let mut no = line_no;
                for l in block.split(|&c| c == b'\n') {
                    no += 1;
                    if l.len() > opts.max_line_bytes {
                        return Err(Error::parse(
                            &path,
                            no,
                            format!(
                                "line is longer than {} bytes (binary data or the wrong format?)",
                                opts.max_line_bytes
                            ),
                        ));
                    }
                }
            }
            let pieces = split_block(block, pieces_per_block);
            let parsed: Vec<Piece> = if string_mode {
                Vec::new()
            } else {
                pieces.par_iter().map(|c| parse_piece(c, s, ncols, opts)).collect()
            };
            for (k, chunk) in pieces.iter().enumerate() {
                let piece = parsed.get(k);
                match piece {
                    Some(p) if !p.needs_strings => {
                        for &off in &p.skipped {
                            st.book.skip(line_no + 1 + off);
                        }
                        for t in 0..p.values.len() {
                            // the line of this entry, for an error
                            let at =
                                |st: &ReadState<'_>, e: String| Error::parse(&path, st.book.line_of(st.rows.len()), e);
                            let r = match st.ri.mode {
                                IdMode::Map => st.ri.map_int(p.users[t]),
                                _ => st.ri.index_int(p.users[t]).map_err(|e| at(&st, e))?,
                            };
                            let c = match st.ci.mode {
                                IdMode::Map => st.ci.map_int(p.items[t]),
                                _ => st.ci.index_int(p.items[t]).map_err(|e| at(&st, e))?,
                            };
                            st.rows.push(r);
                            st.cols.push(c);
                        }
                        st.vals.extend_from_slice(&p.values);
                        if let Some((off, reason)) = &p.error {
                            return Err(Error::parse(&path, line_no + 1 + off, reason.clone()));
                        }
                        line_no += p.lines;
                    }
                    _ => {
                        // slow path: string ids from here on
                        string_mode = true;
                        let mut rest: &[u8] = chunk;
                        while !rest.is_empty() {
                            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
                            let mut line = &rest[..end];
                            rest = if end < rest.len() { &rest[end + 1..] } else { &[] };
                            line_no += 1;
                            if line.last() == Some(&b'\r') {
                                line = &line[..line.len() - 1];
                            }
                            st.line(line_no, line)?;
                        }
                    }
                }
                if st.rows.len() >= u32::MAX as usize - 1 {
                    return Err(Error::parse(&path, line_no, "more than 2^32 - 2 entries are not supported"));
                }
            }
            if let Some(p) = opts.progress.as_ref() {
                p(st.rows.len() as u64);
            }
            if eof {
                break;
            }
            buf.drain(..cut);
        }
    }
    let ReadState { mut rows, mut cols, vals, ri, ci, book, seen_data, header_line, .. } = st;
    if !seen_data {
        let reason = if header_line.is_some() {
            "the file has a header but no data lines"
        } else {
            "the file has no data lines"
        };
        return Err(Error::parse(&path, 0, reason));
    }
    let (row_ids, rperm) = ri.finish(opts.shape.map(|s| s.0), "user").map_err(|e| Error::parse(&path, 0, e))?;
    let (col_ids, cperm) = ci.finish(opts.shape.map(|s| s.1), "item").map_err(|e| Error::parse(&path, 0, e))?;
    if let Some(p) = rperm {
        rows.par_iter_mut().for_each(|r| *r = p[*r as usize]);
    }
    if let Some(p) = cperm {
        cols.par_iter_mut().for_each(|c| *c = p[*c as usize]);
    }
    let ratings =
        Ratings::with_ids(rows, cols, vals, row_ids, col_ids).map_err(|e| Error::parse(&path, 0, e.to_string()))?;
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

    fn read_str(text: &str, block: usize) -> Result<Ratings> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tsv");
        std::fs::write(&p, text).unwrap();
        let mut src = crate::io::open(&p)?;
        read(&mut src, None, &ReadOptions { block_bytes: block, ..Default::default() })
    }

    #[test]
    fn blocks_give_the_same_result_as_one_pass() {
        let mut text = String::from("user\titem\trating\n");
        for k in 0..500 {
            text.push_str(&format!("{}\t{}\t{}.5\n", k % 37, (k * 7) % 101, k % 5));
            if k % 50 == 0 {
                text.push_str("\r\n# comment\n");
            }
        }
        let whole = read_str(&text, 1 << 20).unwrap();
        for block in [64, 100, 777] {
            let r = read_str(&text, block).unwrap();
            assert_eq!(r.values(), whole.values());
            assert_eq!(r.rows(), whole.rows());
            assert_eq!(r.cols(), whole.cols());
            assert_eq!(r.row_ids, whole.row_ids);
        }
        assert_eq!(whole.len(), 500);
        assert_eq!(whole.row_ids.ids()[..3], ["0", "1", "2"]);
    }

    #[test]
    fn string_ids_mid_file_and_late_errors() {
        let mut text = String::new();
        for k in 0..200 {
            text.push_str(&format!("{k}\t{}\t1\n", k % 9));
        }
        text.push_str("alice\t3\t2\n");
        let r = read_str(&text, 64).unwrap();
        assert_eq!(r.len(), 201);
        assert!(!r.row_ids.is_integer());
        assert_eq!(r.row_ids.get("alice"), Some(200));
        let bad = format!("{text}bob\t4\tx\n");
        let e = read_str(&bad, 64).unwrap_err().to_string();
        assert!(e.contains(":202:"), "{e}");
        let dup = format!("{text}5\t5\t3\n");
        let e = read_str(&dup, 64).unwrap_err().to_string();
        assert!(e.contains(":202:") && e.contains("line 6"), "{e}");
        let late = format!("{}9\t9\tnan\n", "1\t1\t1\n".repeat(300));
        let e = read_str(&late, 128).unwrap_err().to_string();
        assert!(e.contains(":301:"), "{e}");
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
