//! Dense matrices as CSV/TSV/space-separated text. Missing entries are empty
//! cells or `NaN`/`nan`/`NA`; an optional first line of column names (no
//! cell of it a number) is skipped; a separator ending every row (`1,2,3,`)
//! ends the row, it is not an empty last column.

use faer::Mat;

use super::ReadOptions;
use super::source::Source;
use super::triplets::{Separator, clip};
use crate::error::{Error, Result};

fn cell(f: &[u8]) -> std::result::Result<f64, String> {
    let f = f.trim_ascii();
    let f = if f.len() >= 2 && f[0] == b'"' && f[f.len() - 1] == b'"' { &f[1..f.len() - 1] } else { f };
    if f.is_empty() {
        return Ok(f64::NAN);
    }
    let s = std::str::from_utf8(f).map_err(|_| "a cell is not valid text".to_string())?;
    match s {
        "NA" | "na" | "N/A" | "?" => return Ok(f64::NAN),
        _ => {}
    }
    let v: f64 = s.parse().map_err(|_| format!("the cell '{}' is not a number", clip(s)))?;
    if v.is_infinite() {
        return Err(format!("the cell '{}' is infinite", clip(s)));
    }
    // a dense file converts to ratings (32-bit floats) for most algorithms
    if v.abs() > f32::MAX as f64 {
        return Err(format!("the cell '{}' is too large (beyond the 32-bit float range)", clip(s)));
    }
    Ok(v)
}

/// Read a dense text matrix (NaN = missing).
pub fn read(src: &mut Source, opts: &ReadOptions) -> Result<Mat<f64>> {
    let path = src.path.clone();
    let mut lines = src.lines(opts.max_line_bytes.max(64 << 20));
    let mut sep: Option<Separator> = None;
    let mut width: Option<usize> = None;
    let mut data: Vec<f64> = Vec::new();
    let mut nrows = 0usize;
    let mut first = true;
    // every data row ends with a separator (`1,2,3,`): that ends the line,
    // it does not add an all-missing last column
    let mut trailing = true;
    while let Some((no, line)) = lines.next_line()? {
        if line.trim_ascii().is_empty() || line.first() == Some(&b'#') {
            continue;
        }
        let s = *sep.get_or_insert_with(|| {
            let d = Separator::detect(line);
            if d == Separator::DoubleColon { Separator::Whitespace } else { d }
        });
        let fields: Vec<&[u8]> = match s {
            Separator::Tab => line.split(|&c| c == b'\t').collect(),
            Separator::Comma => line.split(|&c| c == b',').collect(),
            _ => line.split(|&c| c == b' ' || c == b'\t').filter(|f| !f.is_empty()).collect(),
        };
        let parsed: std::result::Result<Vec<f64>, String> = fields.iter().map(|f| cell(f)).collect();
        let row = match parsed {
            Ok(r) => r,
            Err(e) => {
                // a header of column names: a first row with no number in it
                // (a row with both is a typo in the data, not a header),
                // unless a header is declared (`header: Some(true)`)
                let has_number = fields.iter().any(|f| cell(f).is_ok_and(|v| !v.is_nan()));
                if first && (opts.header == Some(true) || (opts.header.is_none() && !has_number)) {
                    first = false;
                    width = Some(fields.len());
                    continue;
                }
                return Err(Error::parse(&path, no, e));
            }
        };
        first = false;
        match width {
            None => width = Some(row.len()),
            Some(w) if w != row.len() => {
                return Err(Error::parse(
                    &path,
                    no,
                    format!("ragged rows: {} cells, but the first row has {w}", row.len()),
                ));
            }
            _ => {}
        }
        trailing &= row.len() > 1 && fields.last().is_some_and(|f| f.trim_ascii().is_empty());
        data.extend_from_slice(&row);
        nrows += 1;
    }
    let Some(w) = width.filter(|_| nrows > 0) else {
        return Err(Error::parse(&path, 0, "the file has no data rows"));
    };
    if !data.iter().any(|v| !v.is_nan()) {
        return Err(Error::parse(&path, 0, format!("the {nrows}x{w} matrix has no observed (non-missing) entry")));
    }
    let cols = if trailing { w - 1 } else { w };
    Ok(Mat::from_fn(nrows, cols, |i, j| data[i * w + j]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(text: &str) -> Result<Mat<f64>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, text).unwrap();
        read(&mut crate::io::open(&p)?, &ReadOptions::default())
    }

    #[test]
    fn header_only_without_numbers() {
        let m = read_str("a,b,c\n1,,3\nNA,5,6\n").unwrap();
        assert_eq!((m.nrows(), m.ncols()), (2, 3));
        assert!(m[(0, 1)].is_nan() && m[(1, 0)].is_nan());
        assert_eq!(m[(1, 2)], 6.0);
        // a first row with a number and a typo is an error on line 1, not a header
        let e = read_str("1,x,3\n4,5,6\n").unwrap_err().to_string();
        assert!(e.contains("m.csv") && e.contains(":1") && e.contains("'x' is not a number"), "{e}");
        // a non-number further down names its line
        let e = read_str("1,2,3\n4,5,oops\n").unwrap_err().to_string();
        assert!(e.contains(":2") && e.contains("'oops'"), "{e}");
    }

    #[test]
    fn a_separator_ending_every_row_adds_no_column() {
        let m = read_str("1.5,2,3,\n4,,6,\n").unwrap();
        assert_eq!((m.nrows(), m.ncols()), (2, 3));
        assert!(m[(1, 1)].is_nan() && m[(1, 2)] == 6.0);
        // one row without it: the last column is data (missing where empty)
        let m = read_str("1.5,2,3,\n4,5,6,7\n").unwrap();
        assert_eq!((m.nrows(), m.ncols()), (2, 4));
        assert!(m[(0, 3)].is_nan() && m[(1, 3)] == 7.0);
    }
}
