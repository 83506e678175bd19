//! Model files: safetensors with JSON metadata.
//!
//! A model file is a standard [safetensors] file, so Python reads it with
//! `safetensors.numpy.load_file(path)` (the arrays) and
//! `safetensors.safe_open(path, "np").metadata()` (a string map: `format`,
//! `format_version`, `kind`, `solver`, `params` as JSON, `global_mean`,
//! `row_ids` and `col_ids` as JSON arrays of strings, and, when the fit
//! used them, `clip` (`lo,hi`: the range its scores clipped predictions to)
//! and `unseen_value` (its prediction for an unseen row or column)).
//!
//! Arrays: `user_factors` (`m x k`, f32), `item_factors` (`n x k`, f32),
//! optional `user_bias` (`m`), `item_bias` (`n`); a dense model has `x`
//! (`m x n`, f64).
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use std::collections::HashMap;
use std::path::Path;

use faer::Mat;
use safetensors::tensor::{Dtype, TensorView};

use super::{DenseModel, FactorModel};
use crate::data::IdMap;
use crate::error::{Error, Result};

/// Version of the model file layout. Bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "lowrank-model";

/// A model read from a file.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ModelFile {
    /// A factor model.
    Factor(FactorModel),
    /// A dense matrix model.
    Dense(DenseModel),
    /// A CP tensor model (`cp-als`).
    Cp(crate::solve::tensor::CpModel),
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn ids_json(m: &IdMap) -> String {
    serde_json::to_string(&m.ids()).expect("strings serialize")
}

fn ids_from_json(s: &str, what: &str, origin: &str) -> Result<IdMap> {
    let ids: Vec<String> =
        serde_json::from_str(s).map_err(|e| Error::parse(origin, 0, format!("bad {what} in model file: {e}")))?;
    let mut m = IdMap::new();
    for id in &ids {
        let before = m.len();
        if (m.get_or_insert(id) as usize) < before {
            return Err(Error::parse(origin, 0, format!("duplicate {what} in model file: '{id}' appears twice")));
        }
    }
    Ok(m)
}

fn serialize(tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, meta: HashMap<String, String>) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dt, shape, data)| {
            TensorView::new(*dt, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::invalid(format!("tensor {name}: {e}")))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::invalid(format!("cannot serialize model: {e}")))
        .and_then(sorted_header)
}

/// `bytes` (a safetensors file) with its JSON header's keys in sorted order:
/// the metadata map is a `HashMap`, whose order changes from run to run, so
/// two saves of the same model would differ byte for byte. The data offsets
/// are relative to the end of the header, so only the header changes.
pub(crate) fn sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    use std::collections::BTreeMap;
    let bad = || Error::invalid("cannot serialize model: bad safetensors header");
    let n = u64::from_le_bytes(bytes.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let header = bytes.get(8..8 + n).ok_or_else(bad)?;
    let mut map: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).map_err(|_| bad())?;
    if let Some(meta) = map.remove("__metadata__") {
        let meta: BTreeMap<String, String> = serde_json::from_value(meta).map_err(|_| bad())?;
        map.insert("__metadata__".into(), serde_json::to_value(meta).map_err(|_| bad())?);
    }
    let mut text = serde_json::to_vec(&map).map_err(|_| bad())?;
    // the header is padded with spaces so the data starts 8-byte aligned
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

fn base_meta(kind: &str) -> HashMap<String, String> {
    let mut meta = HashMap::new();
    meta.insert("format".into(), FORMAT_NAME.into());
    meta.insert("format_version".into(), FORMAT_VERSION.to_string());
    meta.insert("kind".into(), kind.into());
    meta
}

pub(crate) fn factor_to_bytes(m: &FactorModel) -> Result<Vec<u8>> {
    let mut meta = base_meta("factor");
    meta.insert("solver".into(), m.solver.clone());
    meta.insert("params".into(), m.params.to_string());
    meta.insert("global_mean".into(), format!("{:?}", m.global_mean));
    meta.insert("rank".into(), m.rank.to_string());
    meta.insert("row_ids".into(), ids_json(&m.row_ids));
    meta.insert("col_ids".into(), ids_json(&m.col_ids));
    if let Some((lo, hi)) = m.clip {
        meta.insert("clip".into(), format!("{lo:?},{hi:?}"));
    }
    put_unseen_value(&mut meta, m.unseen_value);
    let mut t = vec![
        ("user_factors".to_string(), Dtype::F32, vec![m.nrows(), m.rank], f32_bytes(&m.u)),
        ("item_factors".to_string(), Dtype::F32, vec![m.ncols(), m.rank], f32_bytes(&m.v)),
    ];
    if let Some(b) = &m.row_bias {
        t.push(("user_bias".into(), Dtype::F32, vec![b.len()], f32_bytes(b)));
    }
    if let Some(b) = &m.col_bias {
        t.push(("item_bias".into(), Dtype::F32, vec![b.len()], f32_bytes(b)));
    }
    serialize(t, meta)
}

pub(crate) fn dense_to_bytes(model: &DenseModel) -> Result<Vec<u8>> {
    let x = &model.x;
    let (m, n) = (x.nrows(), x.ncols());
    let mut data = Vec::with_capacity(m * n * 8);
    for i in 0..m {
        for j in 0..n {
            data.extend_from_slice(&x[(i, j)].to_le_bytes());
        }
    }
    let mut meta = base_meta("dense");
    if let Some((rows, cols)) = &model.ids {
        meta.insert("row_ids".into(), ids_json(rows));
        meta.insert("col_ids".into(), ids_json(cols));
    }
    put_unseen_value(&mut meta, model.unseen_value);
    serialize(vec![("x".into(), Dtype::F64, vec![m, n], data)], meta)
}

/// A finite number from the metadata value `s` of `key`, or an error naming
/// the file `origin`.
fn finite_number(key: &str, s: &str, origin: &str) -> Result<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| Error::parse(origin, 0, format!("{key} '{s}' is not a finite number")))
}

/// The `unseen_value` metadata of a factor or dense model (written by
/// [`put_unseen_value`]), if any.
fn unseen_value_of(meta: &HashMap<String, String>, origin: &str) -> Result<Option<f64>> {
    meta.get("unseen_value").map(|s| finite_number("unseen_value", s, origin)).transpose()
}

/// Record a model's prediction for unseen ids (exactly: `{:?}` round-trips).
fn put_unseen_value(meta: &mut HashMap<String, String>, value: Option<f64>) {
    if let Some(u) = value {
        meta.insert("unseen_value".into(), format!("{u:?}"));
    }
}

/// Parse model bytes; `origin` names the file in error messages.
pub(crate) fn from_bytes(bytes: &[u8], origin: &str) -> Result<ModelFile> {
    let bad = |r: String| Error::parse(origin, 0, r);
    let (_, md) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a lowrank model file (not safetensors: {e})")))?;
    let meta = md.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT_NAME) {
        return Err(bad("a safetensors file, but not a lowrank model (no 'format: lowrank-model' metadata)".into()));
    }
    let version: u32 =
        meta.get("format_version").and_then(|v| v.parse().ok()).ok_or_else(|| bad("missing format_version".into()))?;
    if version > FORMAT_VERSION {
        return Err(bad(format!(
            "model format version {version} is newer than this lowrank ({FORMAT_VERSION}); upgrade lowrank"
        )));
    }
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("corrupt model file: {e}")))?;
    let get = |name: &str, dt: Dtype| -> Result<Option<(Vec<usize>, Vec<u8>)>> {
        match st.tensor(name) {
            Ok(t) => {
                if t.dtype() != dt {
                    return Err(bad(format!("array '{name}' has dtype {:?}, expected {dt:?}", t.dtype())));
                }
                Ok(Some((t.shape().to_vec(), t.data().to_vec())))
            }
            Err(_) => Ok(None),
        }
    };
    let f32s =
        |b: &[u8]| -> Vec<f32> { b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect() }; // ok: chunks_exact yields full chunks
    match meta.get("kind").map(String::as_str) {
        Some("factor") => {
            let (us, ub) = get("user_factors", Dtype::F32)?.ok_or_else(|| bad("missing user_factors".into()))?;
            let (vs, vb) = get("item_factors", Dtype::F32)?.ok_or_else(|| bad("missing item_factors".into()))?;
            if us.len() != 2 || vs.len() != 2 || us[1] != vs[1] {
                return Err(bad("factor arrays have inconsistent shapes".into()));
            }
            let rank = us[1];
            let row_ids = ids_from_json(meta.get("row_ids").map_or("[]", |s| s), "row ids", origin)?;
            let col_ids = ids_from_json(meta.get("col_ids").map_or("[]", |s| s), "column ids", origin)?;
            if row_ids.len() != us[0] || col_ids.len() != vs[0] {
                return Err(bad("id lists do not match the factor shapes".into()));
            }
            let row_bias = get("user_bias", Dtype::F32)?.map(|(_, b)| f32s(&b));
            let col_bias = get("item_bias", Dtype::F32)?.map(|(_, b)| f32s(&b));
            if row_bias.as_ref().is_some_and(|b| b.len() != us[0])
                || col_bias.as_ref().is_some_and(|b| b.len() != vs[0])
            {
                return Err(bad("bias arrays do not match the factor shapes".into()));
            }
            let global_mean: f64 = match meta.get("global_mean") {
                None => 0.0,
                Some(s) => s.parse().map_err(|_| bad(format!("global_mean '{s}' is not a number")))?,
            };
            let number = |key: &str, s: &str| finite_number(key, s, origin);
            let clip = match meta.get("clip") {
                None => None,
                Some(s) => {
                    let (lo, hi) = s.split_once(',').ok_or_else(|| bad(format!("clip '{s}' is not 'lo,hi'")))?;
                    let (lo, hi) = (number("clip", lo)?, number("clip", hi)?);
                    if lo > hi {
                        return Err(bad(format!("clip '{s}': lo > hi")));
                    }
                    Some((lo, hi))
                }
            };
            let unseen_value = unseen_value_of(&meta, origin)?;
            let (u, v) = (f32s(&ub), f32s(&vb));
            let all_finite = |x: &[f32]| x.iter().all(|t| t.is_finite());
            if !global_mean.is_finite()
                || !all_finite(&u)
                || !all_finite(&v)
                || !row_bias.as_deref().is_none_or(all_finite)
                || !col_bias.as_deref().is_none_or(all_finite)
            {
                return Err(bad(
                    "the model holds NaN or infinite numbers (a damaged file, or one saved after divergence)".into(),
                ));
            }
            let params =
                meta.get("params").and_then(|s| serde_json::from_str(s).ok()).unwrap_or(serde_json::Value::Null);
            Ok(ModelFile::Factor(FactorModel {
                rank,
                u,
                v,
                row_bias,
                col_bias,
                global_mean,
                row_ids,
                col_ids,
                solver: meta.get("solver").cloned().unwrap_or_default(),
                params,
                clip,
                unseen_value,
            }))
        }
        Some("dense") => {
            let (s, b) = get("x", Dtype::F64)?.ok_or_else(|| bad("missing x".into()))?;
            if s.len() != 2 {
                return Err(bad("x must be 2-D".into()));
            }
            let v: Vec<f64> = b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(); // ok: chunks_exact yields full chunks
            if v.len() != s[0] * s[1] {
                return Err(bad("x has fewer values than its shape".into()));
            }
            if v.iter().any(|t| !t.is_finite()) {
                return Err(bad(
                    "the model holds NaN or infinite numbers (a damaged file, or one saved after divergence)".into(),
                ));
            }
            let x = Mat::from_fn(s[0], s[1], |i, j| v[i * s[1] + j]);
            let ids = match (meta.get("row_ids"), meta.get("col_ids")) {
                (Some(r), Some(c)) => {
                    let (rows, cols) = (ids_from_json(r, "row ids", origin)?, ids_from_json(c, "column ids", origin)?);
                    if (rows.len(), cols.len()) != (s[0], s[1]) {
                        return Err(bad(format!(
                            "{} row ids and {} column ids for a {} x {} matrix",
                            rows.len(),
                            cols.len(),
                            s[0],
                            s[1]
                        )));
                    }
                    Some((rows, cols))
                }
                (None, None) => None,
                _ => return Err(bad("row ids without column ids, or the reverse".into())),
            };
            let unseen_value = unseen_value_of(&meta, origin)?;
            Ok(ModelFile::Dense(DenseModel { x, ids, unseen_value }))
        }
        Some("cp") => {
            let m = crate::solve::tensor::CpModel::from_bytes_named(bytes, origin)?;
            if !crate::model::ModelState::is_finite(&m) {
                return Err(bad(
                    "the model holds NaN or infinite numbers (a damaged file, or one saved after divergence)".into(),
                ));
            }
            Ok(ModelFile::Cp(m))
        }
        other => Err(bad(format!("unknown model kind {other:?}"))),
    }
}

/// Read any lowrank model file.
pub fn load_any(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(&bytes, &path.display().to_string())
}

impl FactorModel {
    /// Save atomically (temp file + rename) in the safetensors layout above.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = factor_to_bytes(self)?;
        crate::io::atomic_write(path, |w| w.write_all(&bytes))
    }

    /// Load a factor model; a dense model file is an error.
    pub fn load(path: &Path) -> Result<FactorModel> {
        match load_any(path)? {
            ModelFile::Factor(m) => Ok(m),
            ModelFile::Dense(_) => Err(Error::parse(path, 0, "this model file holds a dense matrix, not factors")),
            ModelFile::Cp(_) => {
                Err(Error::parse(path, 0, "this model file holds a CP tensor model, not matrix factors"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = FactorModel::from_dense(&faer::mat![[1.0, 2.0]], &faer::mat![[3.0, 4.0], [5.0, 6.0]]);
        m.row_bias = Some(vec![0.5]);
        m.col_bias = Some(vec![0.1, 0.2]);
        m.global_mean = 3.5;
        m.solver = "test".into();
        let mut ids = IdMap::new();
        ids.get_or_insert("alice");
        m.row_ids = ids;
        let p = dir.path().join("m.safetensors");
        m.save(&p).unwrap();
        let back = FactorModel::load(&p).unwrap();
        assert_eq!(back, m);
        // the fit's scoring conventions round-trip exactly
        let mut scored = m.clone();
        (scored.clip, scored.unseen_value) = (Some((1.0, 5.0)), Some(3.0 + 1.0 / 3.0));
        scored.save(&p).unwrap();
        assert_eq!(FactorModel::load(&p).unwrap(), scored);
        // a dense model fit to ratings keeps their ids and its unseen value
        let mut rows = IdMap::new();
        rows.get_or_insert("u1");
        let dense =
            DenseModel { x: faer::mat![[1.5, -2.0]], ids: Some((rows, IdMap::identity(2))), unseen_value: Some(0.25) };
        crate::io::atomic_write(&p, |w| std::io::Write::write_all(w, &dense_to_bytes(&dense).unwrap())).unwrap();
        let Ok(ModelFile::Dense(back)) = load_any(&p) else { panic!("not a dense model") };
        assert_eq!(back, dense);
        std::fs::write(&p, b"garbage").unwrap();
        assert!(FactorModel::load(&p).is_err());
        assert!(FactorModel::load(&dir.path().join("missing")).is_err());
        // non-finite numbers (a file saved after divergence, or damaged)
        for bad in ["nan_factor", "inf_bias", "nan_mean"] {
            let mut b = m.clone();
            match bad {
                "nan_factor" => b.u[1] = f32::NAN,
                "inf_bias" => b.col_bias = Some(vec![0.1, f32::INFINITY]),
                _ => b.global_mean = f64::NAN,
            }
            b.save(&p).unwrap();
            let e = FactorModel::load(&p).unwrap_err().to_string();
            assert!(e.contains("NaN or infinite"), "{bad}: {e}");
        }
        // duplicate column ids (a hand-edited file): same length, so the file stays valid safetensors
        m.save(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let (ok, dup) = (r#"[\"0\",\"1\"]"#, r#"[\"1\",\"1\"]"#);
        let at = bytes.windows(ok.len()).position(|w| w == ok.as_bytes()).expect("col ids in the header");
        let mut bad = bytes.clone();
        bad[at..at + ok.len()].copy_from_slice(dup.as_bytes());
        std::fs::write(&p, &bad).unwrap();
        let e = FactorModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("m.safetensors") && e.contains("duplicate column ids") && e.contains("'1'"), "{e}");
        // saving the same model twice gives the same bytes (the metadata map is a HashMap)
        let files: Vec<Vec<u8>> = (0..4)
            .map(|k| {
                let q = dir.path().join(format!("same{k}.safetensors"));
                m.save(&q).unwrap();
                std::fs::read(&q).unwrap()
            })
            .collect();
        assert!(files.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(FactorModel::load(&dir.path().join("same0.safetensors")).unwrap(), m);
    }
}
