//! Readers and writers, with format detection.
//!
//! [`load`] opens any supported file (gzip-compressed or not) and returns a
//! [`Dataset`]; [`read_ratings`] is the common case of a partially observed
//! matrix. Formats are detected from the (inner) file name and the content, or
//! forced with [`ReadOptions::format`]. Every error names the file and line.

mod dense_text;
pub mod matrix_market;
pub mod npy;
mod source;
pub mod tensor_text;
pub mod triplets;

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use faer::Mat;
use serde::{Deserialize, Serialize};

pub use source::{Source, looks_binary, open};
pub use triplets::{Separator, is_data_line};

use crate::data::{Ratings, Tensor3, dense};
use crate::error::{Error, Result};

/// A file format lowrank reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Detect from the name and the content.
    Auto,
    /// MovieLens 100k `u.data`: `user<TAB>item<TAB>rating<TAB>timestamp`.
    Movielens,
    /// MovieLens 1M/10M `ratings.dat`: `user::item::rating::timestamp`.
    MovielensDat,
    /// MovieLens `ratings.csv`: `userId,movieId,rating,timestamp` with header.
    MovielensCsv,
    /// Generic `user item rating [ignored]`, tab/space/comma, optional header.
    Triplets,
    /// Matrix Market coordinate or array.
    MatrixMarket,
    /// Dense CSV/TSV with empty or NaN cells for missing.
    Dense,
    /// NumPy `.npy` (2-D matrix, 3-D tensor).
    Npy,
    /// Coordinate text of a 3-way tensor: `i j k value` per line (0-based
    /// indices; an optional `# tensor D1 D2 D3` header gives the shape).
    TensorText,
}

impl Format {
    /// Parse a format name as given on the command line.
    pub fn parse(s: &str) -> Result<Format> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "movielens" | "u.data" | "udata" | "ml-100k" => Format::Movielens,
            "movielens-dat" | "ratings.dat" | "dat" => Format::MovielensDat,
            "movielens-csv" | "ratings.csv" => Format::MovielensCsv,
            "triplets" | "tsv" | "csv" | "delimited" | "coo" => Format::Triplets,
            "matrix-market" | "mtx" | "mm" => Format::MatrixMarket,
            "dense" | "dense-csv" | "dense-tsv" => Format::Dense,
            "npy" => Format::Npy,
            "tensor-text" | "tensor" | "tns" => Format::TensorText,
            other => {
                return Err(Error::invalid(format!(
                    "unknown format '{other}' (auto, movielens, movielens-dat, movielens-csv, triplets, matrix-market, dense, npy, tensor-text)"
                )));
            }
        })
    }

    /// Canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Movielens => "movielens",
            Format::MovielensDat => "movielens-dat",
            Format::MovielensCsv => "movielens-csv",
            Format::Triplets => "triplets",
            Format::MatrixMarket => "matrix-market",
            Format::Dense => "dense",
            Format::Npy => "npy",
            Format::TensorText => "tensor-text",
        }
    }
}

/// How integer ids in triplet files become indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdMode {
    /// Map arbitrary ids to dense indices (integers sorted numerically).
    #[default]
    Map,
    /// Ids are 0-based indices (shape = largest index + 1, or [`ReadOptions::shape`]).
    ZeroBased,
    /// Ids are 1-based indices.
    OneBased,
}

/// Options for reading.
#[derive(Clone)]
pub struct ReadOptions {
    /// The format, or [`Format::Auto`].
    pub format: Format,
    /// Separator of a triplet file (detected when `None`).
    pub separator: Option<Separator>,
    /// `Some(true)`: the first line is a header; `Some(false)`: never;
    /// `None`: detect (a first line whose rating is not a number).
    pub header: Option<bool>,
    /// How ids become indices.
    pub ids: IdMode,
    /// Declared shape for index-mode ids.
    pub shape: Option<(usize, usize)>,
    /// Longest accepted line of a triplet file, in bytes.
    pub max_line_bytes: usize,
    /// Size of the blocks a triplet file is parsed in (bytes; default 8 MiB).
    pub block_bytes: usize,
    /// Called with the number of entries read so far, about every million.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: Format::Auto,
            separator: None,
            header: None,
            ids: IdMode::Map,
            shape: None,
            max_line_bytes: 1 << 20,
            block_bytes: 8 << 20,
            progress: None,
        }
    }
}

impl std::fmt::Debug for ReadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOptions")
            .field("format", &self.format)
            .field("separator", &self.separator)
            .field("header", &self.header)
            .field("ids", &self.ids)
            .field("shape", &self.shape)
            .finish()
    }
}

/// What a file holds.
#[derive(Clone, Debug)]
pub enum Dataset {
    /// Observed entries of a sparse matrix.
    Ratings(Ratings),
    /// A dense matrix; NaN marks a missing entry.
    Dense(Mat<f64>),
    /// A 3-way tensor.
    Tensor(Tensor3),
}

impl Dataset {
    /// The observed entries as [`Ratings`] (a dense matrix converts, NaN =
    /// missing); a tensor is an error.
    pub fn into_ratings(self) -> Result<Ratings> {
        match self {
            Dataset::Ratings(r) => Ok(r),
            Dataset::Dense(a) => dense::ratings_from_masked(&a),
            Dataset::Tensor(_) => Err(Error::invalid("expected a matrix, found a 3-way tensor")),
        }
    }

    /// A 64-bit fingerprint of the content (shape, ids' positions, values'
    /// bits), to tell a checkpoint's data from other data of the same shape.
    /// Stable across runs and versions (a fixed multiply-xor mix, no seeded
    /// hasher).
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |w: u64| h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
        match self {
            Dataset::Ratings(r) => {
                mix(1);
                [r.nrows(), r.ncols(), r.len()].into_iter().for_each(|x| mix(x as u64));
                r.rows().iter().zip(r.cols()).for_each(|(&i, &j)| mix((i as u64) << 32 | j as u64));
                r.values().iter().for_each(|v| mix(v.to_bits() as u64));
            }
            Dataset::Dense(a) => {
                mix(2);
                mix(a.nrows() as u64);
                mix(a.ncols() as u64);
                (0..a.ncols()).for_each(|j| a.col(j).iter().for_each(|v| mix(v.to_bits())));
            }
            Dataset::Tensor(t) => {
                mix(3);
                t.dims().iter().for_each(|&d| mix(d as u64));
                t.data().iter().for_each(|v| mix(v.to_bits()));
                if let Some(m) = t.mask() {
                    m.iter().for_each(|&b| mix(b as u64));
                }
            }
        }
        h
    }

    /// `(rows, columns)` of a matrix (ratings or dense); `None` for a tensor.
    pub fn matrix_shape(&self) -> Option<(usize, usize)> {
        match self {
            Dataset::Ratings(r) => Some((r.nrows(), r.ncols())),
            Dataset::Dense(a) => Some((a.nrows(), a.ncols())),
            Dataset::Tensor(_) => None,
        }
    }

    /// Short description (`ratings 943x1682, 100000 entries`).
    pub fn describe(&self) -> String {
        match self {
            Dataset::Ratings(r) => format!("ratings {}x{}, {} entries", r.nrows(), r.ncols(), r.len()),
            Dataset::Dense(a) => format!("dense {}x{}", a.nrows(), a.ncols()),
            Dataset::Tensor(t) => {
                let d = t.dims();
                format!("tensor {}x{}x{}", d[0], d[1], d[2])
            }
        }
    }
}

/// Guess the format from the file name and the first bytes: a name or
/// magic first; then the first data line (after a header) and up to 20
/// more: three or four fields whose first two are ids (non-negative
/// integers or non-numbers) on all of them are triplets; more fields, a
/// missing cell, or a fractional or negative number in an id position
/// make a dense matrix.
pub fn detect(name: &str, head: &[u8]) -> Format {
    detect_with(name, head, false)
}

/// [`detect`], deciding three or four numeric fields whose first two are
/// not non-negative integers as triplets when `triplet_ids` (the reader was
/// given index ids or a shape) and as a dense row otherwise.
fn detect_with(name: &str, head: &[u8], triplet_ids: bool) -> Format {
    let lower = name.to_ascii_lowercase();
    if npy::is_npy(head) || lower.ends_with(".npy") {
        return Format::Npy;
    }
    if head.starts_with(b"%%MatrixMarket") || head.starts_with(b"%%matrixmarket") || lower.ends_with(".mtx") {
        return Format::MatrixMarket;
    }
    if lower == "u.data" || lower.ends_with(".base") || lower.ends_with(".test") {
        return Format::Movielens;
    }
    if lower.ends_with(".dat") {
        return Format::MovielensDat;
    }
    // look at the first data line
    let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(first) = lines.next() else { return Format::Triplets };
    if first.contains("::") {
        return Format::MovielensDat;
    }
    let sep = Separator::detect(first.as_bytes());
    let split = |l: &str| -> Vec<String> {
        match sep {
            Separator::Tab => l.split('\t').map(|s| s.trim().to_string()).collect(),
            Separator::Comma => l.split(',').map(|s| s.trim().to_string()).collect(),
            _ => l.split_whitespace().map(str::to_string).collect(),
        }
    };
    // a separator at the end of every line (`1,1,5,`) ends the line, it does
    // not add an empty (missing) last column
    // (only for lines that are triplets once it is dropped: a wider dense
    // row ending in an empty cell keeps it as a missing value)
    let trailing = |l: &str| sep.text().is_some_and(|t| l.ends_with(t));
    let sample: Vec<&str> = std::iter::once(first).chain(lines.clone().take(20)).collect();
    let all_trailing = sample.iter().all(|l| trailing(l)) && matches!(split(first).len(), 4 | 5);
    let split = |l: &str| -> Vec<String> {
        let mut f = split(l);
        if all_trailing && f.len() > 1 && f.last().is_some_and(String::is_empty) {
            f.pop();
        }
        f
    };
    let f = split(first);
    let is_num = |s: &str| s.parse::<f64>().is_ok();
    let is_missing = |s: &str| s.is_empty() || s.eq_ignore_ascii_case("nan") || s == "NA";
    let data_line = if f.iter().all(|s| is_num(s) || is_missing(s)) {
        f.clone()
    } else {
        // a header: decide from the next line
        match lines.next() {
            Some(l) => split(l),
            None => return Format::Triplets,
        }
    };
    if data_line.len() < 3 && data_line.iter().any(|s| !is_num(s) && !is_missing(s)) {
        // one or two non-numeric fields: most likely triplets with another
        // separator; the triplet reader says so clearly
        return Format::Triplets;
    }
    if data_line.len() > 4 || data_line.iter().any(|s| is_missing(s)) {
        return Format::Dense;
    }
    // (an integer id beyond u64 is still an id: kept as a string)
    let id_like =
        |s: &str| !is_num(s) || s.parse::<u64>().is_ok() || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    // every sampled line, not only the first: a dense matrix whose first row
    // happens to start with two integers (`1,2,3` then `4.5,0.2,1`) is not
    // a triplet file whose later ids are `4.5`
    let ids_like = |l: &[String]| l.len() < 2 || (id_like(&l[0]) && id_like(&l[1]));
    // (and a missing cell in an id position makes a dense matrix; one in the
    // value position is left to the triplet reader, which refuses a NaN
    // rating with its line)
    let later_ids_like = lines.take(20).all(|l| {
        let f = split(l);
        ids_like(&f) && !f.iter().take(2).any(|s| is_missing(s))
    });
    if data_line.len() >= 3 && ids_like(&data_line) && later_ids_like {
        if lower.ends_with(".csv") && !f.iter().all(|s| is_num(s)) && f[0].eq_ignore_ascii_case("userid") {
            return Format::MovielensCsv;
        }
        return Format::Triplets;
    }
    if triplet_ids && data_line.len() >= 3 {
        return Format::Triplets;
    }
    Format::Dense
}

/// Load any supported file.
pub fn load(path: &Path, opts: &ReadOptions) -> Result<Dataset> {
    let mut src = open(path)?;
    let head = src.peek()?.to_vec();
    if opts.format == Format::Auto && tensor_text::detect(&src.inner_name, &head) {
        return tensor_text::read(&mut src, &tensor_text::TensorTextOptions::from_read_options(opts))
            .map(Dataset::Tensor);
    }
    let format = match opts.format {
        Format::Auto => {
            if !npy::is_npy(&head) && looks_binary(&head) {
                return Err(Error::parse(path, 1, "binary data, not a text data file (use --format to force one)"));
            }
            // index ids or a declared shape only mean something for
            // triplets: with them, three or four numeric fields are a
            // triplet line (a `-1` id then gets the triplet reader's error
            // instead of making a dense matrix)
            detect_with(&src.inner_name, &head, opts.ids != IdMode::Map || opts.shape.is_some())
        }
        f => f,
    };
    if format != Format::Npy && looks_binary(&head) {
        return Err(Error::parse(path, 1, format!("binary data, not a {} file", format.name())));
    }
    match format {
        Format::TensorText => {
            tensor_text::read(&mut src, &tensor_text::TensorTextOptions::from_read_options(opts)).map(Dataset::Tensor)
        }
        Format::Npy => {
            let a = npy::read(&mut src)?;
            match a.shape.len() {
                1 | 2 => {
                    // NaN means missing; anything else must be a finite number
                    // the ratings store (f32) can hold
                    let cols = a.shape.get(1).copied().unwrap_or(1);
                    if let Some(k) =
                        a.data.iter().position(|v| !v.is_nan() && (v.is_infinite() || v.abs() > f32::MAX as f64))
                    {
                        let v = a.data[k];
                        let why = if v.is_infinite() { "infinite" } else { "too large (beyond the f32 range)" };
                        return Err(Error::parse(
                            path,
                            0,
                            format!("row {}, column {} (0-based): the value {v:e} is {why}", k / cols, k % cols),
                        ));
                    }
                    Ok(Dataset::Dense(Mat::from_fn(a.shape[0], cols, |i, j| a.data[i * cols + j])))
                }
                3 => {
                    let dims = [a.shape[0], a.shape[1], a.shape[2]];
                    Tensor3::from_nan_masked(dims, a.data)
                        .map(Dataset::Tensor)
                        .map_err(|e| Error::parse(path, 0, e.to_string()))
                }
                other => Err(Error::parse(path, 0, format!("a {other}-D array (1-D, 2-D or 3-D only)"))),
            }
        }
        Format::MatrixMarket => match matrix_market::read(&mut src, opts)? {
            matrix_market::MatrixMarket::Coordinate(r) => Ok(Dataset::Ratings(r)),
            matrix_market::MatrixMarket::Array(a) => Ok(Dataset::Dense(a)),
        },
        Format::Dense => Ok(Dataset::Dense(dense_text::read(&mut src, opts)?)),
        Format::Movielens => {
            let o = ReadOptions { header: opts.header.or(Some(false)), ..opts.clone() };
            triplets::read(&mut src, opts.separator.or(Some(Separator::Tab)), &o).map(Dataset::Ratings)
        }
        Format::MovielensDat => {
            let o = ReadOptions { header: opts.header.or(Some(false)), ..opts.clone() };
            triplets::read(&mut src, Some(Separator::DoubleColon), &o).map(Dataset::Ratings)
        }
        // the header is recognised (a textual rating field), not assumed: a
        // file without one keeps its first rating
        Format::MovielensCsv => triplets::read(&mut src, Some(Separator::Comma), opts).map(Dataset::Ratings),
        Format::Triplets | Format::Auto => triplets::read(&mut src, opts.separator, opts).map(Dataset::Ratings),
    }
}

/// Load a file as [`Ratings`] (a dense file converts, NaN = missing).
pub fn read_ratings(path: &Path, opts: &ReadOptions) -> Result<Ratings> {
    match load(path, opts)? {
        Dataset::Ratings(r) => Ok(r),
        Dataset::Dense(a) => dense::ratings_from_masked(&a).map_err(|e| Error::parse(path, 0, e.to_string())),
        Dataset::Tensor(_) => Err(Error::parse(path, 0, "expected a matrix, found a 3-D array")),
    }
}

/// Load a file as a dense matrix (NaN = missing); ratings are densified with NaN.
pub fn read_dense(path: &Path, opts: &ReadOptions) -> Result<Mat<f64>> {
    match load(path, opts)? {
        Dataset::Dense(a) => Ok(a),
        Dataset::Ratings(r) => Ok(dense::masked_dense(&r)),
        Dataset::Tensor(_) => Err(Error::parse(path, 0, "expected a matrix, found a 3-D array")),
    }
}

/// A dense ground truth (`--truth`): [`read_dense`], and every entry must be
/// a finite number (a triplet file that leaves entries out, or a NaN in a
/// dense file, is an error naming the first such entry).
pub fn read_truth(path: &Path, opts: &ReadOptions) -> Result<Mat<f64>> {
    let a = read_dense(path, opts)?;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            let v = a[(i, j)];
            if !v.is_finite() {
                let what = if v.is_nan() { "missing (NaN)" } else { "infinite" };
                return Err(Error::parse(
                    path,
                    0,
                    format!(
                        "the ground truth must give every entry, but row {i}, column {j} (0-based) is {what} (a {} x {} \
                         matrix)",
                        a.nrows(),
                        a.ncols()
                    ),
                ));
            }
        }
    }
    Ok(a)
}

/// Where [`atomic_write`] puts its output.
enum WriteTarget {
    /// A regular file (existing or not), written through a temporary file.
    Atomic(std::path::PathBuf),
    /// A device, FIFO or socket (`/dev/null`, `/dev/stdout`), written directly.
    Direct,
}

/// Follow `path`'s symbolic links to what the output should replace: the
/// file a link points to (so the link stays a link), or, for anything that
/// is not a regular file or a directory, a direct write.
fn write_target(path: &Path) -> std::io::Result<WriteTarget> {
    if let Ok(md) = std::fs::metadata(path) {
        let ft = md.file_type();
        if !ft.is_file() && !ft.is_dir() {
            return Ok(WriteTarget::Direct);
        }
    }
    let mut target = path.to_path_buf();
    // a dangling link: the file it names will be created (at most 40 hops,
    // as the kernel allows)
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(md) if md.file_type().is_symlink() => {
                let next = std::fs::read_link(&target)?;
                target = match target.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                };
            }
            _ => return Ok(WriteTarget::Atomic(target)),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Write to `path` atomically: the content goes to a temporary file in the same
/// directory, which is renamed over `path` only once fully written and synced.
/// A failure leaves any existing `path` untouched. A symbolic link is followed
/// (the file it points to is replaced, the link stays); a device, FIFO or
/// socket (`/dev/null`, `/dev/stdout`) is written to directly, not replaced.
pub fn atomic_write(path: &Path, body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let path = match write_target(path).map_err(|e| Error::io(path, e))? {
        WriteTarget::Atomic(p) => p,
        WriteTarget::Direct => {
            let direct = (|| -> std::io::Result<()> {
                let f = std::fs::OpenOptions::new().write(true).open(path)?;
                let mut w = BufWriter::with_capacity(1 << 20, f);
                body(&mut w)?;
                w.flush()
            })();
            return direct.map_err(|e| Error::io(path, e));
        }
    };
    let path = path.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let f = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        body(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Write ratings as `user<TAB>item<TAB>value` lines with the external ids,
/// atomically. Lines are formatted in parallel chunks and written in order.
pub fn write_triplets(path: &Path, r: &Ratings) -> Result<()> {
    use rayon::prelude::*;
    let rid = r.row_ids.ids();
    let cid = r.col_ids.ids();
    let (rows, cols, vals) = (r.rows(), r.cols(), r.values());
    let chunk = 1 << 16;
    let batch = chunk * 32;
    atomic_write(path, |w| {
        let mut start = 0;
        while start < r.len() {
            let end = (start + batch).min(r.len());
            let parts: Vec<Vec<u8>> = (start..end)
                .into_par_iter()
                .step_by(chunk)
                .map(|a| {
                    let b = (a + chunk).min(end);
                    let mut buf = Vec::with_capacity((b - a) * 20);
                    for k in a..b {
                        buf.extend_from_slice(rid[rows[k] as usize].as_bytes());
                        buf.push(b'\t');
                        buf.extend_from_slice(cid[cols[k] as usize].as_bytes());
                        buf.push(b'\t');
                        let _ = write!(buf, "{}", vals[k]);
                        buf.push(b'\n');
                    }
                    buf
                })
                .collect();
            for p in parts {
                w.write_all(&p)?;
            }
            start = end;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_text(path: &Path, text: &str) -> Result<()> {
        atomic_write(path, |w| w.write_all(text.as_bytes()))
    }

    #[cfg(unix)]
    #[test]
    fn atomic_write_replaces_a_links_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let (target, link) = (dir.path().join("model.st"), dir.path().join("latest.st"));
        std::fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink("model.st", &link).unwrap();
        write_text(&link, "new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // a dangling link: the file it names is created
        let (gone, link2) = (dir.path().join("sub/made.st"), dir.path().join("dangling.st"));
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&gone, &link2).unwrap();
        write_text(&link2, "x").unwrap();
        assert!(std::fs::symlink_metadata(&link2).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&gone).unwrap(), "x");
        // a link cycle is an error, not a hang
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(write_text(&a, "x").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn atomic_write_writes_into_a_fifo_instead_of_replacing_it() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: mkfifo is not available");
            return;
        }
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        write_text(&fifo, "through the pipe").unwrap();
        // checked first: a replaced FIFO would leave the reader blocked
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(reader.join().unwrap(), "through the pipe");
    }

    #[test]
    fn detection() {
        assert_eq!(detect("u.data", b"196\t242\t3\t881250949\n"), Format::Movielens);
        assert_eq!(detect("x.txt", b"1::2::3::4\n"), Format::MovielensDat);
        assert_eq!(detect("ratings.csv", b"userId,movieId,rating,timestamp\n1,2,3.5,4\n"), Format::MovielensCsv);
        assert_eq!(detect("a.tsv", b"1\t2\t3.5\n"), Format::Triplets);
        assert_eq!(detect("a.csv", b"alice,bob,3\n"), Format::Triplets);
        assert_eq!(detect("a.csv", b"0.3,0.6,0.1\n3.3,,1.8\n"), Format::Dense);
        assert_eq!(detect("a.csv", b"1,2,3,4,5\n"), Format::Dense);
        assert_eq!(detect("a.txt", b"%%MatrixMarket matrix coordinate real general\n"), Format::MatrixMarket);
        assert_eq!(detect("a", b"\x93NUMPY"), Format::Npy);
        // a negative or fractional id: a dense row, unless index ids were asked for
        assert_eq!(detect("a.tsv", b"-1\t1\t3\n1\t1\t2\n"), Format::Dense);
        assert_eq!(detect_with("a.tsv", b"-1\t1\t3\n1\t1\t2\n", true), Format::Triplets);
        assert_eq!(detect_with("a.csv", b"1,2,3,4,5\n", true), Format::Dense);
        // a later line's fractional or negative "id" makes it a dense matrix
        assert_eq!(detect("a.csv", b"1,2,3\n4,5,6\n7,8.5,9\n"), Format::Dense);
        assert_eq!(detect("a.tsv", b"1\t2\t3\n-4\t5\t6\n"), Format::Dense);
        assert_eq!(detect("a.csv", b"1,2,3\n4,5,6\n7,8,9\n"), Format::Triplets);
        assert_eq!(detect("a.csv", b"1,2,3\n4,NA,6\n7,8,9\n"), Format::Dense);
        assert_eq!(detect("a.csv", b"1,2,3\n4,,6\n7,8,9\n"), Format::Dense);
        // a NaN rating stays a triplet line (and its reader's error)
        assert_eq!(detect("a.tsv", b"1\t2\t3\n4\t5\tnan\n"), Format::Triplets);
        assert_eq!(detect("a.csv", b"user,item,rating\n1,2,3\nalice,bob,4\n"), Format::Triplets);
        assert_eq!(detect("a.csv", b"u,i,r\na,x1,3\n99999999999999999999999,x1,4\n"), Format::Triplets);
    }

    #[test]
    fn index_ids_read_an_ambiguous_file_as_triplets_and_report_a_bad_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("negid.tsv");
        std::fs::write(&path, "-1\t1\t3\n1\t1\t2\n").unwrap();
        // without index ids: a 2 x 3 dense matrix
        let Dataset::Dense(a) = load(&path, &ReadOptions::default()).unwrap() else { panic!("expected dense") };
        assert_eq!((a.nrows(), a.ncols()), (2, 3));
        // with them: the triplet reader, which names the line
        let opts = ReadOptions { ids: IdMode::ZeroBased, ..Default::default() };
        let e = load(&path, &opts).unwrap_err().to_string();
        assert!(e.contains("negid.tsv:1"), "{e}");
    }
}
