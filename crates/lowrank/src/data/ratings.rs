//! `Ratings`: the observed entries of a partially observed matrix.

use std::sync::OnceLock;

use super::IdMap;
use crate::error::{Error, Result, ensure};

/// A compressed sparse view (CSR of the matrix, or CSR of its transpose, i.e.
/// CSC). Within each outer index the inner indices are sorted ascending.
#[derive(Clone, Debug)]
pub struct Compressed {
    /// `indptr[i]..indptr[i + 1]` is the range of outer index `i`.
    pub indptr: Vec<usize>,
    /// Inner indices (columns for CSR, rows for CSC).
    pub indices: Vec<u32>,
    /// Values, aligned with `indices`.
    pub values: Vec<f32>,
    /// Position of each stored entry in the triplet arrays of [`Ratings`].
    pub entry: Vec<u32>,
}

impl Compressed {
    /// Number of outer indices.
    pub fn outer_len(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Inner indices and values of outer index `i`.
    #[inline]
    pub fn lane(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// Number of stored entries in outer index `i`.
    #[inline]
    pub fn lane_len(&self, i: usize) -> usize {
        self.indptr[i + 1] - self.indptr[i]
    }

    /// Two stable counting sorts (by inner, then by outer index) give every
    /// lane sorted by inner index, ties in entry order, in O(nnz) without
    /// comparisons.
    fn build(outer: &[u32], inner: &[u32], vals: &[f32], n_outer: usize) -> Compressed {
        let nnz = outer.len();
        let n_inner = inner.iter().map(|&i| i as usize + 1).max().unwrap_or(0);
        let counting = |keys: &[u32], n: usize, order: &mut dyn Iterator<Item = u32>| -> (Vec<usize>, Vec<u32>) {
            let mut ptr = vec![0usize; n + 1];
            for &k in keys {
                ptr[k as usize + 1] += 1;
            }
            for i in 0..n {
                ptr[i + 1] += ptr[i];
            }
            let mut next = ptr.clone();
            let mut out = vec![0u32; nnz];
            for e in order {
                let p = &mut next[keys[e as usize] as usize];
                out[*p] = e;
                *p += 1;
            }
            (ptr, out)
        };
        let (_, by_inner) = counting(inner, n_inner, &mut (0..nnz as u32));
        let (indptr, entry) = counting(outer, n_outer, &mut by_inner.into_iter());
        let indices = entry.iter().map(|&k| inner[k as usize]).collect();
        let values = entry.iter().map(|&k| vals[k as usize]).collect();
        Compressed { indptr, indices, values, entry }
    }

    /// First pair of entries (positions in the triplet arrays, earlier first)
    /// that share the same (outer, inner) index.
    fn first_duplicate(&self) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for i in 0..self.outer_len() {
            let (a, b) = (self.indptr[i], self.indptr[i + 1]);
            for p in a + 1..b {
                if self.indices[p] == self.indices[p - 1] {
                    let pair = (self.entry[p - 1] as usize, self.entry[p] as usize);
                    if best.is_none_or(|q| pair.1 < q.1) {
                        best = Some(pair);
                    }
                }
            }
        }
        best
    }
}

/// The observed entries of an `nrows x ncols` matrix as (row, col, value)
/// triplets, with external ids for rows and columns.
///
/// Missing means absent. Row-major ([`Ratings::csr`]) and column-major
/// ([`Ratings::csc`]) views are built once, on first use.
#[derive(Clone, Debug)]
pub struct Ratings {
    nrows: usize,
    ncols: usize,
    rows: Vec<u32>,
    cols: Vec<u32>,
    vals: Vec<f32>,
    /// External ids of the rows (users).
    pub row_ids: IdMap,
    /// External ids of the columns (items).
    pub col_ids: IdMap,
    csr: OnceLock<Compressed>,
    csc: OnceLock<Compressed>,
}

impl Ratings {
    /// Build from triplets with identity ids. Fails on out-of-range indices,
    /// non-finite values or mismatched lengths. Duplicates are checked by
    /// [`Ratings::check_duplicates`].
    pub fn new(nrows: usize, ncols: usize, rows: Vec<u32>, cols: Vec<u32>, vals: Vec<f32>) -> Result<Self> {
        let r = Self::with_ids(rows, cols, vals, IdMap::identity(nrows), IdMap::identity(ncols))?;
        Ok(r)
    }

    /// Build from triplets and id maps; the shape is the size of the maps.
    pub fn with_ids(rows: Vec<u32>, cols: Vec<u32>, vals: Vec<f32>, row_ids: IdMap, col_ids: IdMap) -> Result<Self> {
        ensure!(
            rows.len() == cols.len() && rows.len() == vals.len(),
            "triplet arrays have different lengths ({}, {}, {})",
            rows.len(),
            cols.len(),
            vals.len()
        );
        ensure!(rows.len() < u32::MAX as usize, "more than 2^32 - 1 entries are not supported");
        let (nrows, ncols) = (row_ids.len(), col_ids.len());
        for k in 0..rows.len() {
            ensure!(
                (rows[k] as usize) < nrows && (cols[k] as usize) < ncols,
                "entry {k} at ({}, {}) is outside the {nrows}x{ncols} matrix",
                rows[k],
                cols[k]
            );
            ensure!(vals[k].is_finite(), "entry {k} at ({}, {}) is not finite", rows[k], cols[k]);
        }
        Ok(Ratings { nrows, ncols, rows, cols, vals, row_ids, col_ids, csr: OnceLock::new(), csc: OnceLock::new() })
    }

    /// Number of rows (users).
    pub fn nrows(&self) -> usize {
        self.nrows
    }
    /// Number of columns (items).
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    /// `(nrows, ncols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.nrows, self.ncols)
    }
    /// Number of observed entries.
    pub fn len(&self) -> usize {
        self.vals.len()
    }
    /// True when nothing is observed.
    pub fn is_empty(&self) -> bool {
        self.vals.is_empty()
    }
    /// Row index of each entry.
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }
    /// Column index of each entry.
    pub fn cols(&self) -> &[u32] {
        &self.cols
    }
    /// Value of each entry.
    pub fn values(&self) -> &[f32] {
        &self.vals
    }
    /// Fraction of observed entries.
    pub fn density(&self) -> f64 {
        self.len() as f64 / (self.nrows as f64 * self.ncols as f64).max(1.0)
    }
    /// Iterate over `(row, col, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize, f32)> + '_ {
        (0..self.len()).map(|k| (self.rows[k] as usize, self.cols[k] as usize, self.vals[k]))
    }
    /// Mean of the observed values (0 when empty), accumulated in f64.
    pub fn mean(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.vals.iter().map(|&v| v as f64).sum::<f64>() / self.len() as f64
    }
    /// Smallest and largest observed value.
    pub fn value_range(&self) -> Option<(f32, f32)> {
        let mut it = self.vals.iter().copied();
        let first = it.next()?;
        Some(it.fold((first, first), |(a, b), v| (a.min(v), b.max(v))))
    }

    /// Row-major view, built on first use.
    pub fn csr(&self) -> &Compressed {
        self.csr.get_or_init(|| Compressed::build(&self.rows, &self.cols, &self.vals, self.nrows))
    }

    /// Column-major view, built on first use.
    pub fn csc(&self) -> &Compressed {
        self.csc.get_or_init(|| Compressed::build(&self.cols, &self.rows, &self.vals, self.ncols))
    }

    /// Number of observed entries in each row.
    pub fn row_counts(&self) -> Vec<usize> {
        let mut c = vec![0usize; self.nrows];
        for &r in &self.rows {
            c[r as usize] += 1;
        }
        c
    }

    /// Number of observed entries in each column.
    pub fn col_counts(&self) -> Vec<usize> {
        let mut c = vec![0usize; self.ncols];
        for &j in &self.cols {
            c[j as usize] += 1;
        }
        c
    }

    /// The first two entries (positions, earlier first) with the same
    /// (row, col), if any.
    ///
    /// Uses the row-major view when it is already built; otherwise sorts the
    /// packed (row, col) keys in parallel without building (and keeping) a
    /// view, so checking a freshly read file costs no extra memory afterwards.
    pub fn find_duplicate(&self) -> Option<(usize, usize)> {
        use rayon::prelude::*;
        if let Some(csr) = self.csr.get() {
            return csr.first_duplicate();
        }
        let mut keys: Vec<u64> =
            self.rows.par_iter().zip(self.cols.par_iter()).map(|(&r, &c)| ((r as u64) << 32) | c as u64).collect();
        keys.par_sort_unstable();
        let dup = keys.par_windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).min()?;
        let (r, c) = ((dup >> 32) as u32, dup as u32);
        let mut it = (0..self.len()).filter(|&k| self.rows[k] == r && self.cols[k] == c);
        let a = it.next()?;
        let b = it.next()?;
        Some((a, b))
    }

    /// Error when two entries share a (row, col).
    pub fn check_duplicates(&self) -> Result<()> {
        if let Some((a, b)) = self.find_duplicate() {
            return Err(Error::invalid(format!(
                "entries {a} and {b} both give ({}, {})",
                self.row_ids.id(self.rows[a] as usize),
                self.col_ids.id(self.cols[a] as usize)
            )));
        }
        Ok(())
    }

    /// The entries at `positions`, with the same shape and ids.
    pub fn subset(&self, positions: &[usize]) -> Ratings {
        Ratings {
            nrows: self.nrows,
            ncols: self.ncols,
            rows: positions.iter().map(|&k| self.rows[k]).collect(),
            cols: positions.iter().map(|&k| self.cols[k]).collect(),
            vals: positions.iter().map(|&k| self.vals[k]).collect(),
            row_ids: self.row_ids.clone(),
            col_ids: self.col_ids.clone(),
            csr: OnceLock::new(),
            csc: OnceLock::new(),
        }
    }

    /// The transposed matrix (rows and columns swapped, ids too).
    pub fn transpose(&self) -> Ratings {
        Ratings {
            nrows: self.ncols,
            ncols: self.nrows,
            rows: self.cols.clone(),
            cols: self.rows.clone(),
            vals: self.vals.clone(),
            row_ids: self.col_ids.clone(),
            col_ids: self.row_ids.clone(),
            csr: OnceLock::new(),
            csc: OnceLock::new(),
        }
    }

    /// The same entries with values mapped by `f`.
    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> Ratings {
        let mut r = self.subset(&[]);
        r.rows = self.rows.clone();
        r.cols = self.cols.clone();
        r.vals = self.vals.iter().map(|&v| f(v)).collect();
        r
    }

    /// Keep only the entries for which `keep(row, col, value)` holds.
    pub fn filter(&self, keep: impl Fn(usize, usize, f32) -> bool) -> Ratings {
        let pos: Vec<usize> =
            (0..self.len()).filter(|&k| keep(self.rows[k] as usize, self.cols[k] as usize, self.vals[k])).collect();
        self.subset(&pos)
    }

    /// Express `other`'s entries in this matrix's index space, matching rows
    /// and columns by external id. Entries whose row or column id is unknown
    /// here are dropped; their count is returned.
    pub fn align(&self, other: &Ratings) -> (Ratings, usize) {
        let mut rmap = self.row_ids.clone();
        let mut cmap = self.col_ids.clone();
        let rtab: Vec<Option<u32>> = (0..other.nrows).map(|i| rmap.lookup(&other.row_ids.id(i))).collect();
        let ctab: Vec<Option<u32>> = (0..other.ncols).map(|j| cmap.lookup(&other.col_ids.id(j))).collect();
        let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
        let mut dropped = 0;
        for (i, j, v) in other.iter() {
            match (rtab[i], ctab[j]) {
                (Some(a), Some(b)) => {
                    rows.push(a);
                    cols.push(b);
                    vals.push(v);
                }
                _ => dropped += 1,
            }
        }
        let r = Ratings {
            nrows: self.nrows,
            ncols: self.ncols,
            rows,
            cols,
            vals,
            row_ids: self.row_ids.clone(),
            col_ids: self.col_ids.clone(),
            csr: OnceLock::new(),
            csc: OnceLock::new(),
        };
        (r, dropped)
    }

    /// Bytes used by the triplet arrays (not counting the lazily built views).
    pub fn heap_bytes(&self) -> usize {
        self.len() * (4 + 4 + 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Ratings {
        Ratings::new(3, 4, vec![2, 0, 0, 1], vec![1, 3, 0, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap()
    }

    #[test]
    fn csr_and_csc_views() {
        let r = small();
        let csr = r.csr();
        assert_eq!(csr.indptr, vec![0, 2, 3, 4]);
        assert_eq!(csr.lane(0), (&[0u32, 3][..], &[3.0f32, 2.0][..]));
        let csc = r.csc();
        assert_eq!(csc.indptr, vec![0, 1, 2, 3, 4]);
        assert_eq!(csc.lane(1), (&[2u32][..], &[1.0f32][..]));
        assert_eq!(r.mean(), 2.5);
    }

    #[test]
    fn duplicates_are_found() {
        let r = Ratings::new(2, 2, vec![0, 1, 0], vec![1, 0, 1], vec![1.0, 2.0, 3.0]).unwrap();
        assert_eq!(r.find_duplicate(), Some((0, 2)));
        assert!(r.check_duplicates().is_err());
        assert!(small().check_duplicates().is_ok());
    }

    #[test]
    fn rejects_bad_triplets() {
        assert!(Ratings::new(2, 2, vec![2], vec![0], vec![1.0]).is_err());
        assert!(Ratings::new(2, 2, vec![0], vec![0], vec![f32::NAN]).is_err());
        assert!(Ratings::new(2, 2, vec![0], vec![0, 1], vec![1.0]).is_err());
    }

    #[test]
    fn align_by_id() {
        let mut ra = IdMap::new();
        let mut ca = IdMap::new();
        ra.get_or_insert("u1");
        ra.get_or_insert("u2");
        ca.get_or_insert("i1");
        let a = Ratings::with_ids(vec![0, 1], vec![0, 0], vec![1.0, 2.0], ra, ca).unwrap();
        let mut rb = IdMap::new();
        let mut cb = IdMap::new();
        rb.get_or_insert("u2");
        rb.get_or_insert("u9");
        cb.get_or_insert("i1");
        let b = Ratings::with_ids(vec![0, 1], vec![0, 0], vec![5.0, 6.0], rb, cb).unwrap();
        let (c, dropped) = a.align(&b);
        assert_eq!(dropped, 1);
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![(1, 0, 5.0)]);
    }
}
