//! Opening input files: gzip transparency, binary detection, bounded lines.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// An opened input: a buffered reader over the (decompressed) bytes, plus the
/// name used to detect the format (`u.data` for `u.data.gz`).
pub struct Source {
    /// The file as given.
    pub path: PathBuf,
    /// File name used for format detection (inner name of a `.gz`).
    pub inner_name: String,
    /// The decompressed byte stream.
    pub reader: Box<dyn BufRead + Send>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Open `path` for reading, decompressing gzip (by magic bytes) on the fly.
/// Errors name the file: missing, a directory, unreadable, or empty.
pub fn open(path: &Path) -> Result<Source> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::parse(path, 0, "is a directory, not a data file"));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut raw = BufReader::with_capacity(1 << 20, file);
    let head = raw.fill_buf().map_err(|e| Error::io(path, e))?;
    if head.is_empty() {
        return Err(Error::parse(path, 0, "the file is empty"));
    }
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let gz = head.len() >= 2 && head[..2] == GZIP_MAGIC;
    let (reader, inner_name): (Box<dyn BufRead + Send>, String) = if gz {
        let inner = name.strip_suffix(".gz").unwrap_or(&name).to_string();
        (Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(raw))), inner)
    } else {
        (Box::new(raw), name)
    };
    let mut src = Source { path: path.to_path_buf(), inner_name, reader };
    let head = src.reader.fill_buf().map_err(|e| Error::parse(path, 0, format!("corrupt or unreadable data: {e}")))?;
    if gz && head.is_empty() {
        return Err(Error::parse(path, 0, "the compressed file is empty"));
    }
    // a UTF-8 byte order mark (spreadsheet exports) is not part of the first id
    if head.starts_with(UTF8_BOM) {
        src.reader.consume(UTF8_BOM.len());
        if src
            .reader
            .fill_buf()
            .map_err(|e| Error::parse(path, 0, format!("corrupt or unreadable data: {e}")))?
            .is_empty()
        {
            return Err(Error::parse(path, 0, "the file is empty (only a byte order mark)"));
        }
    }
    Ok(src)
}

impl Source {
    /// The first bytes of the stream (without consuming them).
    pub fn peek(&mut self) -> Result<&[u8]> {
        let path = self.path.clone();
        self.reader.fill_buf().map_err(|e| Error::io(path, e))
    }

    /// Wrap an I/O error (including a corrupt gzip stream) with the path.
    pub fn io_err(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::InvalidInput || e.kind() == std::io::ErrorKind::InvalidData {
            Error::parse(&self.path, 0, format!("corrupt or unreadable data: {e}"))
        } else {
            Error::io(&self.path, e)
        }
    }

    /// A reader over the rest of the bytes.
    pub fn bytes(&mut self) -> &mut (dyn BufRead + Send) {
        &mut *self.reader
    }

    /// A line reader with a maximum line length.
    pub fn lines(&mut self, max_len: usize) -> Lines<'_> {
        Lines { src: self, buf: Vec::with_capacity(256), line_no: 0, max_len }
    }
}

/// Reads lines into a reused buffer, without the line ending (LF or CRLF), with
/// a bound on the line length so a binary or single-line file cannot exhaust
/// memory.
pub struct Lines<'a> {
    src: &'a mut Source,
    buf: Vec<u8>,
    line_no: u64,
    max_len: usize,
}

impl Lines<'_> {
    /// The next line (1-based number, bytes without its ending), or `None` at
    /// the end of the file.
    pub fn next_line(&mut self) -> Result<Option<(u64, &[u8])>> {
        self.buf.clear();
        let limit = self.max_len as u64 + 2;
        let n = (&mut self.src.reader).take(limit).read_until(b'\n', &mut self.buf).map_err(|e| self.src.io_err(e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if n as u64 == limit {
            return Err(Error::parse(
                &self.src.path,
                self.line_no,
                format!("line is longer than {} bytes (binary data or the wrong format?)", self.max_len),
            ));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > self.max_len {
            return Err(Error::parse(
                &self.src.path,
                self.line_no,
                format!("line is longer than {} bytes (binary data or the wrong format?)", self.max_len),
            ));
        }
        Ok(Some((self.line_no, &self.buf)))
    }

    /// The path being read.
    pub fn path(&self) -> &Path {
        &self.src.path
    }
}

/// True when the bytes look binary (a NUL byte, or mostly non-text bytes).
pub fn looks_binary(head: &[u8]) -> bool {
    let sample = &head[..head.len().min(8192)];
    if sample.contains(&0) {
        return true;
    }
    let odd = sample.iter().filter(|&&b| b < 0x09 || (0x0e..0x20).contains(&b) || b == 0x7f).count();
    odd * 20 > sample.len()
}
