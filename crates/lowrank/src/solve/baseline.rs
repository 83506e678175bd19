//! `baseline`: global mean plus regularized user and item biases.
//!
//! The model `r_ui = mu + b_u + b_i` fitted by alternating least squares on
//! the biases, as Surprise's `BaselineOnly` (Koren 2010, section 2.1):
//! `b_i = sum_u (r_ui - mu - b_u) / (reg_item + |U_i|)`, then
//! `b_u = sum_i (r_ui - mu - b_i) / (reg_user + |I_u|)`. Each sweep solves the
//! regularized least-squares problem exactly for one side, so the objective
//! never increases.

use serde::{Deserialize, Serialize};

use super::{IterState, Solver};
use crate::data::Ratings;
use crate::error::{Result, ensure};
use crate::model::FactorModel;
use crate::rng::Rng;

/// Parameters of the bias baseline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Baseline {
    /// L2 penalty on user biases (Surprise: 15).
    pub reg_user: f64,
    /// L2 penalty on item biases (Surprise: 10).
    pub reg_item: f64,
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline { reg_user: 15.0, reg_item: 10.0 }
    }
}

impl Baseline {
    /// Validate into a solver.
    pub fn check(self) -> Result<BaselineSolver> {
        ensure!(self.reg_user >= 0.0 && self.reg_user.is_finite(), "reg_user must be >= 0, got {}", self.reg_user);
        ensure!(self.reg_item >= 0.0 && self.reg_item.is_finite(), "reg_item must be >= 0, got {}", self.reg_item);
        Ok(BaselineSolver { params: self })
    }
}

/// The validated baseline solver.
#[derive(Clone, Debug)]
pub struct BaselineSolver {
    params: Baseline,
}

impl BaselineSolver {
    /// The regularized least-squares objective.
    pub fn objective(&self, data: &Ratings, m: &FactorModel) -> f64 {
        let (bu, bi) = (m.row_bias.as_ref().unwrap(), m.col_bias.as_ref().unwrap()); // ok: init (and every checkpoint) sets both biases
        let mut s = 0.0;
        for (u, i, r) in data.iter() {
            let e = r as f64 - m.global_mean - bu[u] as f64 - bi[i] as f64;
            s += e * e;
        }
        s + self.params.reg_user * bu.iter().map(|&b| (b as f64).powi(2)).sum::<f64>()
            + self.params.reg_item * bi.iter().map(|&b| (b as f64).powi(2)).sum::<f64>()
    }
}

impl Solver for BaselineSolver {
    type Data = Ratings;
    type Model = FactorModel;

    fn name(&self) -> &'static str {
        "baseline"
    }

    fn init(&mut self, data: &Ratings, _rng: &mut Rng) -> Result<FactorModel> {
        ensure!(!data.is_empty(), "the training data has no entries");
        let mut m = FactorModel::zeros(data.nrows(), data.ncols(), 0);
        m.global_mean = data.mean();
        m.row_bias = Some(vec![0.0; data.nrows()]);
        m.col_bias = Some(vec![0.0; data.ncols()]);
        m.row_ids = data.row_ids.clone();
        m.col_ids = data.col_ids.clone();
        m.solver = "baseline".into();
        m.params = serde_json::to_value(&self.params).unwrap_or_default();
        Ok(m)
    }

    fn step(&mut self, data: &Ratings, m: &mut FactorModel, state: &mut IterState) -> Result<()> {
        let mu = m.global_mean;
        let csc = data.csc();
        let bu = m.row_bias.take().unwrap(); // ok: init (and every checkpoint) sets both biases
        let mut bi = m.col_bias.take().unwrap(); // ok: init (and every checkpoint) sets both biases
        for i in 0..data.ncols() {
            let (users, vals) = csc.lane(i);
            let s: f64 = users.iter().zip(vals).map(|(&u, &r)| r as f64 - mu - bu[u as usize] as f64).sum();
            bi[i] = (s / (self.params.reg_item + users.len() as f64)) as f32;
        }
        let csr = data.csr();
        let mut bu = bu;
        for u in 0..data.nrows() {
            let (items, vals) = csr.lane(u);
            let s: f64 = items.iter().zip(vals).map(|(&i, &r)| r as f64 - mu - bi[i as usize] as f64).sum();
            bu[u] = (s / (self.params.reg_user + items.len() as f64)) as f32;
        }
        m.row_bias = Some(bu);
        m.col_bias = Some(bi);
        state.record.objective = Some(self.objective(data, m));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Predict;
    use crate::solve::Executor;

    #[test]
    fn exact_biases_without_regularization() {
        // r = 1 + a_u + b_i exactly: with reg 0 the sweeps converge to a
        // perfect fit (the bias model is identifiable up to a constant).
        let a = [0.5f32, -0.5, 1.0];
        let b = [0.25f32, -0.25, 0.0, 2.0];
        let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
        for u in 0..3 {
            for i in 0..4 {
                if (u + i) % 3 != 0 {
                    rows.push(u as u32);
                    cols.push(i as u32);
                    vals.push(1.0 + a[u] + b[i]);
                }
            }
        }
        let r = Ratings::new(3, 4, rows, cols, vals).unwrap();
        let s = Baseline { reg_user: 0.0, reg_item: 0.0 }.check().unwrap();
        let fit = Executor::new(s, &r).max_iters(200).run().unwrap();
        for (u, i, v) in r.iter() {
            assert!((fit.model.predict(u, i) - v as f64).abs() < 1e-4);
        }
        // objective never increases
        let obj: Vec<f64> = fit.history.iter().map(|h| h.objective.unwrap()).collect();
        assert!(obj.windows(2).all(|w| w[1] <= w[0] + 1e-9));
    }

    #[test]
    fn invalid_params() {
        assert!(Baseline { reg_user: -1.0, reg_item: 0.0 }.check().is_err());
    }
}
