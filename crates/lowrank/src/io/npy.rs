//! NumPy `.npy` files (format versions 1-3): f32/f64 (either byte order), C or
//! Fortran order, 1-D to 3-D; and a writer for f64 arrays.

use std::io::Read;
use std::path::Path;

use super::atomic_write;
use super::source::Source;
use crate::error::{Error, Result};

/// An n-dimensional f64 array read from `.npy`, stored in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape.
    pub shape: Vec<usize>,
    /// Values in C order (last index fastest).
    pub data: Vec<f64>,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// True when `head` starts with the `.npy` magic.
pub fn is_npy(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let k = format!("'{key}'");
    let pos = header.find(&k)?;
    let rest = header[pos + k.len()..].trim_start().strip_prefix(':')?.trim_start();
    if let Some(r) = rest.strip_prefix('(') {
        return Some(&r[..r.find(')')?]);
    }
    if let Some(r) = rest.strip_prefix('\'') {
        return Some(&r[..r.find('\'')?]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// Read an `.npy` array.
pub fn read(src: &mut Source) -> Result<NpyArray> {
    let path = src.path.clone();
    let bad = |r: &str| Error::parse(&path, 0, r.to_string());
    let r = src.bytes();
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre).map_err(|_| bad("truncated .npy file (no header)"))?;
    if &pre[..6] != MAGIC {
        return Err(bad("not a .npy file (bad magic bytes)"));
    }
    let hlen = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| bad("truncated .npy header"))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| bad("truncated .npy header"))?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(bad(&format!("unsupported .npy format version {v}"))),
    };
    if hlen > 1 << 20 {
        return Err(bad("the .npy header is implausibly long"));
    }
    let mut hb = vec![0u8; hlen];
    r.read_exact(&mut hb).map_err(|_| bad("truncated .npy header"))?;
    let header = String::from_utf8_lossy(&hb).into_owned();
    let descr = header_value(&header, "descr").ok_or_else(|| bad("the .npy header has no 'descr'"))?;
    let fortran = match header_value(&header, "fortran_order") {
        Some("True") => true,
        Some("False") => false,
        _ => return Err(bad("the .npy header has no valid 'fortran_order'")),
    };
    let shape_s = header_value(&header, "shape").ok_or_else(|| bad("the .npy header has no 'shape'"))?;
    let shape: Vec<usize> = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(&format!("bad shape ({shape_s})")))?;
    if shape.is_empty() || shape.len() > 3 {
        return Err(bad(&format!(
            "the array has {} dimensions; lowrank reads 1-D, 2-D (matrix) and 3-D (tensor) arrays",
            shape.len()
        )));
    }
    let (size, big) = match descr {
        "<f8" | "f8" | "=f8" => (8, false),
        ">f8" => (8, true),
        "<f4" | "f4" | "=f4" => (4, false),
        ">f4" => (4, true),
        other => {
            return Err(bad(&format!(
                "unsupported dtype '{other}' (float32 or float64 only; convert with .astype('f8'))"
            )));
        }
    };
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("the shape overflows"))?;
    if count == 0 {
        return Err(bad("the array is empty"));
    }
    let bytes = count.checked_mul(size).ok_or_else(|| bad("the shape overflows"))?;
    // the raw bytes, the values and a reordering copy (Fortran order)
    crate::error::ensure_fits_in_memory(count as u128 * 3, &format!("the {shape:?} array"), "")
        .map_err(|e| bad(&e.to_string()))?;
    // read what is there before trusting the header's size (a short file
    // must not allocate what it announces)
    let mut raw = Vec::new();
    Read::take(&mut *r, bytes as u64).read_to_end(&mut raw).map_err(|e| bad(&format!("cannot read the data: {e}")))?;
    if raw.len() < bytes {
        return Err(bad(&format!("truncated data: the header announces {count} values of {size} bytes")));
    }
    // large arrays (tensors streamed by cp-als) in huge pages
    let mut vals: Vec<f64> = crate::mem::huge_vec(count);
    match (size, big) {
        (8, false) => vals.extend(raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()))), // ok: chunks_exact yields full chunks
        (8, true) => vals.extend(raw.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().unwrap()))), // ok: chunks_exact yields full chunks
        (4, false) => vals.extend(raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)), // ok: chunks_exact yields full chunks
        _ => vals.extend(raw.chunks_exact(4).map(|c| f32::from_be_bytes(c.try_into().unwrap()) as f64)), // ok: chunks_exact yields full chunks
    }
    let data = if fortran && shape.len() > 1 { fortran_to_c(&vals, &shape) } else { vals };
    Ok(NpyArray { shape, data })
}

fn fortran_to_c(v: &[f64], shape: &[usize]) -> Vec<f64> {
    let mut out = crate::mem::huge_zeros(v.len());
    match shape.len() {
        2 => {
            let (m, n) = (shape[0], shape[1]);
            for j in 0..n {
                for i in 0..m {
                    out[i * n + j] = v[j * m + i];
                }
            }
        }
        3 => {
            let (a, b, c) = (shape[0], shape[1], shape[2]);
            for k in 0..c {
                for j in 0..b {
                    for i in 0..a {
                        out[(i * b + j) * c + k] = v[(k * b + j) * a + i];
                    }
                }
            }
        }
        _ => out.copy_from_slice(v),
    }
    out
}

/// Write a C-order f64 array of the given shape as `.npy` (version 1), atomically.
pub fn write(path: &Path, shape: &[usize], data: &[f64]) -> Result<()> {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "shape does not match the data");
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_s = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    atomic_write(path, |w| {
        w.write_all(MAGIC)?;
        w.write_all(&[1, 0])?;
        w.write_all(&(header.len() as u16).to_le_bytes())?;
        w.write_all(header.as_bytes())?;
        let mut buf = Vec::with_capacity(8 * 4096);
        for chunk in data.chunks(4096) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

/// Write a dense matrix as a 2-D `.npy`.
pub fn write_matrix(path: &Path, a: &faer::Mat<f64>) -> Result<()> {
    let (m, n) = (a.nrows(), a.ncols());
    let mut data = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            data.push(a[(i, j)]);
        }
    }
    write(path, &[m, n], &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }";
        assert_eq!(header_value(h, "descr"), Some("<f8"));
        assert_eq!(header_value(h, "fortran_order"), Some("False"));
        assert_eq!(header_value(h, "shape"), Some("3, 4"));
    }

    #[test]
    fn fortran_order() {
        // 2x3 [[0,1,2],[3,4,5]] in Fortran order is 0,3,1,4,2,5
        let v = fortran_to_c(&[0., 3., 1., 4., 2., 5.], &[2, 3]);
        assert_eq!(v, vec![0., 1., 2., 3., 4., 5.]);
    }
}
