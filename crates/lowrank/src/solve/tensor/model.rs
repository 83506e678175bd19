//! [`CpModel`]: a rank-`R` CP (CANDECOMP/PARAFAC) model of a 3-way tensor,
//! `T[i,j,k] ≈ Σ_r λ_r A[i,r] B[j,r] C[k,r]`, with unit-norm factor columns.

use std::collections::HashMap;
use std::path::Path;

use faer::Mat;
use rayon::prelude::*;
use safetensors::tensor::{Dtype, TensorView};

use super::kernels;
use crate::data::Tensor3;
use crate::error::{Error, Result, ensure};
use crate::model::{FORMAT_VERSION, ModelState};

/// A CP model: weights `λ` (length `R`) and three factor matrices
/// (`d_m x R`), whose columns have unit Euclidean norm after
/// [`CpModel::normalize`] (every solver returns normalized models).
#[derive(Clone, Debug, PartialEq)]
pub struct CpModel {
    /// Component weights `λ_r`.
    pub weights: Vec<f64>,
    /// Factor matrices `A` (`d0 x R`), `B` (`d1 x R`), `C` (`d2 x R`).
    pub factors: [Mat<f64>; 3],
    /// Name of the solver that produced the model (saved with it).
    pub solver: String,
    /// The solver's settings (saved with the model as JSON).
    pub params: serde_json::Value,
}

impl CpModel {
    /// A model from weights and factors (columns are not renormalized; call
    /// [`CpModel::normalize`] for that). Errors on inconsistent shapes.
    pub fn new(weights: Vec<f64>, factors: [Mat<f64>; 3]) -> Result<CpModel> {
        let r = weights.len();
        ensure!(r >= 1, "a CP model needs at least one component");
        for (m, f) in factors.iter().enumerate() {
            ensure!(f.ncols() == r, "factor {m} has {} columns, expected {r} (the number of weights)", f.ncols());
            ensure!(f.nrows() >= 1, "factor {m} has no rows");
        }
        Ok(CpModel { weights, factors, solver: String::new(), params: serde_json::Value::Null })
    }

    /// A model with unit weights from unnormalized factors, normalized.
    pub fn from_factors(factors: [Mat<f64>; 3]) -> Result<CpModel> {
        let r = factors[0].ncols();
        let mut m = CpModel::new(vec![1.0; r], factors)?;
        m.normalize();
        Ok(m)
    }

    /// The CP rank `R` (number of components).
    pub fn rank(&self) -> usize {
        self.weights.len()
    }

    /// The tensor dimensions `[d0, d1, d2]`.
    pub fn dims(&self) -> [usize; 3] {
        [self.factors[0].nrows(), self.factors[1].nrows(), self.factors[2].nrows()]
    }

    /// Scale every factor column to unit norm, moving the norms into the
    /// weights. A zero column gets weight 0 and a constant unit column.
    pub fn normalize(&mut self) {
        for f in self.factors.iter_mut() {
            let norms = kernels::normalize_columns(f);
            for (w, n) in self.weights.iter_mut().zip(norms) {
                *w *= n;
            }
        }
    }

    /// One entry `Σ_r λ_r A[i,r] B[j,r] C[k,r]`.
    pub fn get(&self, i: usize, j: usize, k: usize) -> f64 {
        let [a, b, c] = &self.factors;
        (0..self.rank()).map(|r| self.weights[r] * a[(i, r)] * b[(j, r)] * c[(k, r)]).sum()
    }

    /// The full reconstructed tensor (C order), computed slice by slice with
    /// a matrix product per slice, in parallel over slices.
    pub fn reconstruct_data(&self) -> Vec<f64> {
        let [d0, d1, d2] = self.dims();
        let mut out = vec![0.0; d0 * d1 * d2];
        let scaled_c = kernels::scale_columns(self.factors[2].as_ref(), &self.weights);
        out.par_chunks_mut(d1 * d2).enumerate().for_each(|(i, slice)| {
            kernels::reconstruct_slice(self.factors[0].as_ref(), self.factors[1].as_ref(), scaled_c.as_ref(), i, slice);
        });
        out
    }

    /// The full reconstructed tensor.
    pub fn reconstruct(&self) -> Result<Tensor3> {
        Tensor3::new(self.dims(), self.reconstruct_data())
    }

    /// Squared residual `Σ (T - T̂)²` over the observed entries of `t`.
    pub fn residual_sq(&self, t: &Tensor3) -> Result<f64> {
        ensure!(t.dims() == self.dims(), "the tensor has shape {:?}, the model {:?}", t.dims(), self.dims());
        Ok(kernels::explicit_residual_sq(t.data(), t.mask(), &self.weights, &self.factors))
    }

    /// Relative error `‖T̂ − T‖_F / ‖T‖_F` over the observed entries of `t`.
    pub fn relative_error(&self, t: &Tensor3) -> Result<f64> {
        let norm = t.norm();
        ensure!(
            norm.is_finite() && norm > 0.0,
            "the tensor is zero on its observed entries; the relative error is undefined"
        );
        Ok(self.residual_sq(t)?.sqrt() / norm)
    }

    /// Root mean squared error over the observed entries of `t`.
    pub fn rmse(&self, t: &Tensor3) -> Result<f64> {
        Ok((self.residual_sq(t)? / t.n_observed() as f64).sqrt())
    }

    /// Mean absolute error over the observed entries of `t`.
    pub fn mae(&self, t: &Tensor3) -> Result<f64> {
        ensure!(t.dims() == self.dims(), "the tensor has shape {:?}, the model {:?}", t.dims(), self.dims());
        let [_, d1, d2] = self.dims();
        let mask = t.mask();
        let scaled_c = kernels::scale_columns(self.factors[2].as_ref(), &self.weights);
        let sum: f64 = t
            .data()
            .par_chunks(d1 * d2)
            .enumerate()
            .map(|(i, ts)| {
                let mut rec = vec![0.0; d1 * d2];
                kernels::reconstruct_slice(
                    self.factors[0].as_ref(),
                    self.factors[1].as_ref(),
                    scaled_c.as_ref(),
                    i,
                    &mut rec,
                );
                let off = i * d1 * d2;
                ts.iter()
                    .zip(&rec)
                    .enumerate()
                    .filter(|(p, _)| mask.is_none_or(|m| m[off + p]))
                    .map(|(_, (a, b))| (a - b).abs())
                    .sum::<f64>()
            })
            .collect::<Vec<f64>>()
            .iter()
            .sum();
        Ok(sum / t.n_observed() as f64)
    }

    /// Serialize (safetensors, kind `cp`): arrays `weights` (`R`), `factor_0`,
    /// `factor_1`, `factor_2` (`d_m x R`, row-major f64); metadata `format`,
    /// `format_version`, `kind`, `solver`, `params`, `rank`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "lowrank-model".to_string());
        meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
        meta.insert("kind".to_string(), "cp".to_string());
        meta.insert("solver".to_string(), self.solver.clone());
        meta.insert("params".to_string(), self.params.to_string());
        meta.insert("rank".to_string(), self.rank().to_string());
        let mut arrays: Vec<(String, Vec<usize>, Vec<u8>)> =
            vec![("weights".into(), vec![self.rank()], self.weights.iter().flat_map(|x| x.to_le_bytes()).collect())];
        for (m, f) in self.factors.iter().enumerate() {
            let mut b = Vec::with_capacity(f.nrows() * f.ncols() * 8);
            for i in 0..f.nrows() {
                for r in 0..f.ncols() {
                    b.extend_from_slice(&f[(i, r)].to_le_bytes());
                }
            }
            arrays.push((format!("factor_{m}"), vec![f.nrows(), f.ncols()], b));
        }
        let views: Vec<(String, TensorView<'_>)> = arrays
            .iter()
            .map(|(n, s, d)| {
                TensorView::new(Dtype::F64, s.clone(), d)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::invalid(format!("array {n}: {e}")))
            })
            .collect::<Result<_>>()?;
        safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::invalid(format!("cannot serialize the CP model: {e}")))
            .and_then(crate::model::persist::sorted_header)
    }

    /// Parse [`CpModel::to_bytes`]; `origin` names the file in errors.
    pub fn from_bytes_named(bytes: &[u8], origin: &str) -> Result<CpModel> {
        let bad = |r: String| Error::parse(origin, 0, r);
        let (_, md) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a lowrank model file (not safetensors: {e})")))?;
        let meta = md.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some("lowrank-model") {
            return Err(
                bad("a safetensors file, but not a lowrank model (no 'format: lowrank-model' metadata)".into()),
            );
        }
        let version: u32 = meta
            .get("format_version")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("missing format_version".into()))?;
        if version > FORMAT_VERSION {
            return Err(bad(format!(
                "model format version {version} is newer than this lowrank ({FORMAT_VERSION}); upgrade lowrank"
            )));
        }
        match meta.get("kind").map(String::as_str) {
            Some("cp") => {}
            other => {
                return Err(bad(format!(
                    "this model file holds a {} model, not a CP model",
                    other.unwrap_or("unknown")
                )));
            }
        }
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("corrupt model file: {e}")))?;
        let get = |name: &str| -> Result<(Vec<usize>, Vec<f64>)> {
            let t = st.tensor(name).map_err(|_| bad(format!("missing array '{name}'")))?;
            if t.dtype() != Dtype::F64 {
                return Err(bad(format!("array '{name}' has dtype {:?}, expected F64", t.dtype())));
            }
            let v = t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
            Ok((t.shape().to_vec(), v))
        };
        let (ws, weights) = get("weights")?;
        if ws.len() != 1 || ws[0] == 0 {
            return Err(bad("'weights' must be a non-empty vector".into()));
        }
        let r = ws[0];
        let mut fs = Vec::with_capacity(3);
        for m in 0..3 {
            let (s, v) = get(&format!("factor_{m}"))?;
            if s.len() != 2 || s[1] != r || s[0] == 0 {
                return Err(bad(format!("'factor_{m}' has shape {s:?}, expected [d, {r}]")));
            }
            fs.push(Mat::from_fn(s[0], r, |i, c| v[i * r + c]));
        }
        let factors: [Mat<f64>; 3] = fs.try_into().map_err(|_| bad("three factors expected".into()))?;
        let mut model = CpModel::new(weights, factors).map_err(|e| bad(e.to_string()))?;
        model.solver = meta.get("solver").cloned().unwrap_or_default();
        model.params = meta.get("params").and_then(|s| serde_json::from_str(s).ok()).unwrap_or(serde_json::Value::Null);
        Ok(model)
    }

    /// Save atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::io::atomic_write(path, |w| w.write_all(&bytes))
    }

    /// Load a model written by [`CpModel::save`].
    pub fn load(path: &Path) -> Result<CpModel> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        CpModel::from_bytes_named(&bytes, &path.display().to_string())
    }
}

impl ModelState for CpModel {
    fn is_finite(&self) -> bool {
        self.weights.iter().all(|w| w.is_finite())
            && self.factors.iter().all(|f| (0..f.ncols()).all(|r| (0..f.nrows()).all(|i| f[(i, r)].is_finite())))
    }
    fn data_dims(&self) -> Vec<usize> {
        self.factors.iter().map(|f| f.nrows()).collect()
    }
    fn sizes(&self) -> Vec<usize> {
        vec![self.weights.len()]
    }
    fn to_bytes(&self) -> Result<Vec<u8>> {
        CpModel::to_bytes(self)
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        CpModel::from_bytes_named(bytes, "checkpoint")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> CpModel {
        let a = faer::mat![[1.0, 0.5], [2.0, -1.0]];
        let b = faer::mat![[0.5, 1.0], [1.0, 0.0], [-1.0, 2.0]];
        let c = faer::mat![[1.0, 1.0], [3.0, -2.0], [0.0, 1.0], [2.0, 2.0]];
        CpModel::from_factors([a, b, c]).unwrap()
    }

    #[test]
    fn reconstruct_matches_entries_and_normalization_keeps_the_tensor() {
        let a = faer::mat![[1.0, 0.5], [2.0, -1.0]];
        let b = faer::mat![[0.5, 1.0], [1.0, 0.0], [-1.0, 2.0]];
        let c = faer::mat![[1.0, 1.0], [3.0, -2.0], [0.0, 1.0], [2.0, 2.0]];
        let m = small();
        for f in &m.factors {
            for r in 0..2 {
                assert!((f.col(r).norm_l2() - 1.0).abs() < 1e-14);
            }
        }
        let full = m.reconstruct().unwrap();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    let direct: f64 = (0..2).map(|r| a[(i, r)] * b[(j, r)] * c[(k, r)]).sum();
                    assert!((full.get(i, j, k) - direct).abs() < 1e-12);
                    assert!((m.get(i, j, k) - direct).abs() < 1e-12);
                }
            }
        }
        assert!(m.relative_error(&full).unwrap() < 1e-14);
        assert!(m.rmse(&full).unwrap() < 1e-14 && m.mae(&full).unwrap() < 1e-14);
    }

    #[test]
    fn errors_over_observed_entries_only() {
        let m = small();
        let mut data = m.reconstruct_data();
        data[3] += 2.0; // observed error
        data[5] = f64::NAN; // missing
        let t = Tensor3::from_nan_masked([2, 3, 4], data).unwrap();
        assert!((m.residual_sq(&t).unwrap() - 4.0).abs() < 1e-12);
        assert!((m.mae(&t).unwrap() - 2.0 / 23.0).abs() < 1e-12);
        assert!((m.rmse(&t).unwrap() - (4.0f64 / 23.0).sqrt()).abs() < 1e-12);
        let wrong = Tensor3::new([2, 3, 3], vec![1.0; 18]).unwrap();
        assert!(m.relative_error(&wrong).is_err());
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = small();
        m.solver = "cp-als".into();
        m.params = serde_json::json!({"rank": 2});
        let p = dir.path().join("cp.safetensors");
        m.save(&p).unwrap();
        let back = CpModel::load(&p).unwrap();
        assert_eq!(back, m);
        let bytes = ModelState::to_bytes(&m).unwrap();
        assert_eq!(<CpModel as ModelState>::from_bytes(&bytes).unwrap(), m);
        std::fs::write(&p, b"garbage").unwrap();
        assert!(CpModel::load(&p).is_err());
        assert!(CpModel::new(vec![], [Mat::zeros(1, 0), Mat::zeros(1, 0), Mat::zeros(1, 0)]).is_err());
        let mut nan = small();
        nan.weights[0] = f64::NAN;
        assert!(!nan.is_finite() && small().is_finite());
    }
}
