//! Tests of the SGD family, each against an independent truth.

use faer::Mat;
use serde_json::json;

use super::grid::{Grid, epoch_schedule};
use super::kernel::{self, Aux, BlockState, Entry, Flags, Hyper, Run};
use super::*;
use crate::data::{Ratings, synth};
use crate::error::Error;
use crate::io::Dataset;
use crate::metrics::{self, Predict};
use crate::model::FactorModel;
use crate::solve::registry::{self, FitRequest};
use crate::solve::{EarlyStopping, Executor, Termination};

fn plain(rank: usize, lr: f64) -> Sgd {
    Sgd {
        rank,
        lr,
        lr_bias: None,
        reg: 0.0,
        reg_bias: 0.0,
        biases: false,
        schedule: LrSchedule::Constant,
        init_scale: Some(0.1),
        ..Sgd::default()
    }
}

// ---------------------------------------------------------------- the lab

#[test]
fn lab_sgd_reaches_eckart_young_bound() {
    // Eckart-Young: the best rank-2 approximation in Frobenius norm is the
    // SVD with the last singular value zeroed; its loss is sigma_3^2. SGD
    // cannot beat it; with the lab's rate it gets within 1e-3 of it (the
    // constant-rate bias is ~3e-5 here). At the lab's 1000 epochs some
    // U(0,1) starts are still leaving the saddle (gap up to ~1.4e-2), so the
    // bound is asserted after 3000 epochs.
    let a = synth::lab_matrix();
    let (rec, s) = truncated_svd_reconstruction(&a, 2).unwrap();
    let svd_loss = (&a - &rec).squared_norm_l2();
    assert!((svd_loss - s[2] * s[2]).abs() < 1e-12);
    for seed in 0..3 {
        let (u, v) = sgd_factorise(&a, 2, LAB_EPOCHS, LAB_LR, seed).unwrap();
        assert_eq!((u.nrows(), u.ncols(), v.nrows(), v.ncols()), (3, 2, 3, 2));
        let loss = reconstruction_loss(&a, &u, &v);
        assert!(loss >= svd_loss - 1e-9, "seed {seed}: SGD {loss} beat the Eckart-Young bound {svd_loss}");
        assert!(loss - svd_loss < 2e-2, "seed {seed}: SGD {loss} vs truncated SVD {svd_loss}");
        let (u, v) = sgd_factorise(&a, 2, 3 * LAB_EPOCHS, LAB_LR, seed).unwrap();
        let loss = reconstruction_loss(&a, &u, &v);
        assert!(loss >= svd_loss - 1e-9, "seed {seed}: SGD {loss} beat the Eckart-Young bound {svd_loss}");
        assert!(loss - svd_loss < 1e-3, "seed {seed}: SGD {loss} vs truncated SVD {svd_loss}");
    }
    // a start that is through the saddle by epoch 1000 (seed 4) is within 1e-3 at the lab's defaults
    let (u, v) = sgd_factorise(&a, 2, LAB_EPOCHS, LAB_LR, 4).unwrap();
    assert!(reconstruction_loss(&a, &u, &v) - svd_loss < 1e-3);
}

#[test]
fn lab_masked_fits_the_observed_entries() {
    // 7 observed entries, 2 * (3 + 3) - 4 = 8 degrees of freedom at rank 2:
    // an exact fit of the observed entries exists, and SGD finds it.
    let a = synth::lab_matrix_masked();
    let mask = nan_mask(&a);
    assert_eq!(mask.squared_norm_l2(), 7.0);
    let (u, v) = sgd_factorise_masked(&a, &mask, 2, LAB_EPOCHS, LAB_LR, 0).unwrap();
    assert!(masked_loss(&a, &mask, &u, &v) < 1e-3);
    // the fill-in is finite (NaN entries of A are never read)
    let x = &u * v.transpose();
    assert!(x[(1, 0)].is_finite() && x[(2, 1)].is_finite());
}

#[test]
fn lab_solver_matches_the_dense_function() {
    // --algo lab-sgd on the observed entries == sgd_factorise_masked, same seed
    let a = synth::lab_matrix_masked();
    let (u, v) = sgd_factorise_masked(&a, &nan_mask(&a), 2, 50, LAB_LR, 7).unwrap();
    let r = crate::data::dense::ratings_from_masked(&a).unwrap();
    let fit = Executor::new(LabSgd { rank: 2, lr: LAB_LR }.check().unwrap(), &r).seed(7).max_iters(50).run().unwrap();
    let x = &u * v.transpose();
    for i in 0..3 {
        for j in 0..3 {
            assert!((fit.model.predict(i, j) - x[(i, j)]).abs() < 1e-5);
        }
    }
}

#[test]
fn lab_rejects_bad_input() {
    let a = synth::lab_matrix();
    let bad = |r: crate::Result<(Mat<f64>, Mat<f64>)>| matches!(r, Err(Error::InvalidInput(_)));
    assert!(bad(sgd_factorise(&a, 0, 10, 0.01, 0)));
    assert!(bad(sgd_factorise(&a, 4, 10, 0.01, 0)));
    assert!(bad(sgd_factorise(&a, 2, 0, 0.01, 0)));
    assert!(bad(sgd_factorise(&a, 2, 10, 0.0, 0)));
    assert!(bad(sgd_factorise(&a, 2, 10, f64::NAN, 0)));
    assert!(bad(sgd_factorise(&synth::lab_matrix_masked(), 2, 10, 0.01, 0)));
    assert!(bad(sgd_factorise_masked(&a, &Mat::zeros(3, 3), 2, 10, 0.01, 0)));
    assert!(bad(sgd_factorise_masked(&a, &Mat::zeros(2, 3), 2, 10, 0.01, 0)));
    // too large a rate diverges, naming the epoch
    match sgd_factorise(&a, 2, 1000, 10.0, 0) {
        Err(Error::Diverged { iteration, hint, .. }) => assert!(iteration >= 1 && hint.contains("learning rate")),
        other => panic!("expected Diverged, got {other:?}"),
    }
}

// ------------------------------------------------------------ the kernel

/// Per-entry loss in f64: 1/2 e^2 + reg/2 (|p|^2 + |q|^2) + reg_b/2 (bu^2 + bi^2).
fn entry_loss(x: &[f64], k: usize, r: f64, mu: f64, reg: f64, reg_b: f64) -> f64 {
    let (p, q, bu, bi) = (&x[..k], &x[k..2 * k], x[2 * k], x[2 * k + 1]);
    let dot: f64 = p.iter().zip(q).map(|(a, b)| a * b).sum();
    let e = r - mu - bu - bi - dot;
    0.5 * e * e
        + 0.5 * reg * (p.iter().map(|v| v * v).sum::<f64>() + q.iter().map(|v| v * v).sum::<f64>())
        + 0.5 * reg_b * (bu * bu + bi * bi)
}

/// One update of a single entry by the kernel; returns (p, q, bu, bi, aux_u, aux_i).
fn one_update(
    k: usize,
    p0: &[f32],
    q0: &[f32],
    bu: f32,
    bi: f32,
    r: f32,
    h: Hyper,
    flags: Flags,
) -> (Vec<f32>, Vec<f32>, Aux, Aux) {
    let kp = kernel::padded(k);
    let mut p = vec![0.0f32; kp];
    let mut q = vec![0.0f32; kp];
    p[..k].copy_from_slice(p0);
    q[..k].copy_from_slice(q0);
    let mut pa = [Aux { bias: bu, ..Aux::default() }];
    let mut qa = [Aux { bias: bi, ..Aux::default() }];
    let ent = [Entry { col: 0, val: r }];
    let runs = [Run { row: 0, end: 1 }];
    let st = BlockState { p: &mut p, pa: &mut pa, q: &mut q, qa: &mut qa };
    kernel::run_block(flags, kp, st, &runs, &ent, 0, h);
    assert!(p[k..].iter().chain(&q[k..]).all(|&v| v == 0.0), "padding lanes must stay zero");
    (p[..k].to_vec(), q[..k].to_vec(), pa[0], qa[0])
}

#[test]
fn update_is_a_gradient_step_on_the_entry_loss() {
    // x_new = x - lr * grad f(x): compare (x - x_new) / lr with central finite
    // differences of the per-entry loss (f64, h = 1e-6). The update is exact
    // in x, so the only error is f32 rounding (~1e-7 / lr).
    let k = 5;
    let p0 = [0.3f32, -0.2, 0.5, 0.1, -0.4];
    let q0 = [0.7f32, 0.1, -0.3, 0.2, 0.6];
    let (bu, bi, r, mu) = (0.15f32, -0.25f32, 4.0f32, 3.5f32);
    let (reg, reg_b, lr) = (0.07, 0.03, 0.1);
    let h = Hyper { lr: lr as f32, lr_b: lr as f32, reg: reg as f32, reg_b: reg_b as f32, mu, inv_k: 1.0 / k as f32 };
    let x0: Vec<f64> = p0.iter().chain(&q0).map(|&v| v as f64).chain([bu as f64, bi as f64]).collect();
    let fd: Vec<f64> = (0..x0.len())
        .map(|d| {
            let (mut a, mut b) = (x0.clone(), x0.clone());
            a[d] += 1e-6;
            b[d] -= 1e-6;
            (entry_loss(&a, k, r as f64, mu as f64, reg, reg_b) - entry_loss(&b, k, r as f64, mu as f64, reg, reg_b))
                / 2e-6
        })
        .collect();
    for avx2 in [false, true] {
        for adaptive in [false, true] {
            let flags = Flags { bias: true, adaptive, nonneg: false, avx2: avx2 && kernel::has_avx2_fma() };
            let (p, q, au, ai) = one_update(k, &p0, &q0, bu, bi, r, h, flags);
            let x1: Vec<f64> = p.iter().chain(&q).map(|&v| v as f64).chain([au.bias as f64, ai.bias as f64]).collect();
            for d in 0..x0.len() {
                // first adaptive step: G = 1, so the step is lr * grad too
                let g = (x0[d] - x1[d]) / lr;
                assert!(
                    (g - fd[d]).abs() < 2e-5,
                    "coordinate {d} (adaptive {adaptive}): update {g} vs finite difference {}",
                    fd[d]
                );
            }
            if adaptive {
                // G_u += |grad_p|^2 / k, G_b += grad_b^2
                let gp2: f64 = fd[..k].iter().map(|v| v * v).sum::<f64>() / k as f64;
                assert!((au.g as f64 - (1.0 + gp2)).abs() < 1e-5);
                assert!((au.gb as f64 - (1.0 + fd[2 * k] * fd[2 * k])).abs() < 1e-5);
            }
        }
    }
    // without biases the prediction is p.q and the biases are untouched
    let flags = Flags { bias: false, adaptive: false, nonneg: false, avx2: false };
    let (p, _, au, _) = one_update(k, &p0, &q0, bu, bi, r, Hyper { mu: 0.0, ..h }, flags);
    let dot: f64 = p0.iter().zip(&q0).map(|(a, b)| *a as f64 * *b as f64).sum();
    let e = r as f64 - dot;
    for d in 0..k {
        let want = p0[d] as f64 + lr * (e * q0[d] as f64 - reg * p0[d] as f64);
        assert!((p[d] as f64 - want).abs() < 1e-6);
    }
    assert_eq!(au.bias, bu);
}

#[test]
fn simd_and_portable_kernels_agree() {
    let problem = synth::planted_completion_rect(60, 50, 3, 1500, 4).unwrap();
    let fit = |simd: bool| {
        let s = Sgd { rank: 11, ..Sgd::default() }.check().unwrap().with_simd(simd);
        Executor::new(s, &problem.observed).seed(1).max_iters(5).run().unwrap().model
    };
    let (a, b) = (fit(true), fit(false));
    // FMA rounds once instead of twice: tiny differences only
    for (x, y) in a.u.iter().zip(&b.u).chain(a.v.iter().zip(&b.v)) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
}

// ---------------------------------------------------------------- the grid

#[test]
fn grid_holds_every_entry_once_and_strata_are_independent() {
    let problem = synth::planted_completion_rect(37, 23, 2, 400, 9).unwrap();
    let r = &problem.observed;
    for g in [1, 3, 8, 40] {
        let grid = Grid::build(r, g, 5).unwrap();
        assert_eq!(grid.ent.len(), r.len());
        let mut seen = std::collections::HashSet::new();
        for rb in 0..g {
            for cb in 0..g {
                let b = rb * g + cb;
                let mut pos = grid.block_start[b];
                let mut last: Option<(u32, u32)> = None;
                for run in grid.runs_of(b) {
                    for e in &grid.ent[pos..run.end as usize] {
                        let nu = grid.row_bounds[rb] + run.row as usize;
                        let nc = grid.col_bounds[cb] + e.col as usize;
                        assert!(nu < grid.row_bounds[rb + 1] && nc < grid.col_bounds[cb + 1]);
                        // sorted by (row, col) inside the block
                        assert!(last.is_none_or(|l| l < (run.row, e.col)));
                        last = Some((run.row, e.col));
                        assert!(seen.insert((nu, nc, e.val.to_bits())));
                    }
                    pos = run.end as usize;
                }
                assert_eq!(pos, grid.block_start[b + 1]);
            }
        }
        let want: std::collections::HashSet<_> =
            r.iter().map(|(i, j, v)| (grid.row_new[i] as usize, grid.col_new[j] as usize, v.to_bits())).collect();
        assert_eq!(seen, want);
        // an epoch visits every block once; a stratum's blocks share no row or column block
        let (perm, order) = epoch_schedule(g, 3, 7);
        let mut blocks = std::collections::HashSet::new();
        for &s in &order {
            let cbs: std::collections::HashSet<u32> = (0..g).map(|rb| perm[(rb + s as usize) % g]).collect();
            assert_eq!(cbs.len(), g);
            for rb in 0..g {
                assert!(blocks.insert((rb, perm[(rb + s as usize) % g])));
            }
        }
        assert_eq!(blocks.len(), g * g);
    }
}

// ------------------------------------------------------- the `sgd` solver

#[test]
fn recovers_a_planted_low_rank_matrix() {
    // W = U V^T of rank 3, 50x40, 60 % observed, no noise: plain SGD at the
    // true rank recovers the unobserved entries (relative error over all
    // 2000 entries, the truth is exactly rank 3).
    let problem = synth::planted_completion_rect(50, 40, 3, 1200, 2).unwrap();
    for (schedule, lr) in [(LrSchedule::Constant, 0.03), (LrSchedule::Adaptive, 0.1)] {
        let p = Sgd { schedule, ..plain(3, lr) };
        let fit = Executor::new(p.check().unwrap(), &problem.observed).seed(4).max_iters(400).run().unwrap();
        let err = metrics::relative_error(&fit.model, &problem.truth);
        assert!(err < 0.02, "{schedule:?}: relative error {err}");
    }
}

#[test]
fn learns_biases_of_a_bias_only_matrix() {
    // r_ui = 3 + a_u + b_i exactly (rank-0 signal): the biased model fits it
    // (train RMSE -> 0) and predicts the held-out entries.
    let (m, n) = (30, 20);
    let a: Vec<f32> = (0..m).map(|u| ((u * 7) % 11) as f32 / 10.0 - 0.5).collect();
    let b: Vec<f32> = (0..n).map(|i| ((i * 5) % 7) as f32 / 6.0 - 0.5).collect();
    let (mut tr, mut te) = ((vec![], vec![], vec![]), (vec![], vec![], vec![]));
    for u in 0..m {
        for i in 0..n {
            let t = if (u * 3 + i) % 4 == 0 { &mut te } else { &mut tr };
            t.0.push(u as u32);
            t.1.push(i as u32);
            t.2.push(3.0 + a[u] + b[i]);
        }
    }
    let train = Ratings::new(m, n, tr.0, tr.1, tr.2).unwrap();
    let test = Ratings::new(m, n, te.0, te.1, te.2).unwrap();
    let p = Sgd {
        rank: 2,
        lr: 0.02,
        lr_bias: None,
        reg: 0.0,
        reg_bias: 0.0,
        schedule: LrSchedule::Constant,
        init_scale: Some(0.01),
        ..Sgd::default()
    };
    let fit = Executor::new(p.check().unwrap(), &train).seed(1).max_iters(300).run().unwrap();
    assert!((fit.model.global_mean - train.mean()).abs() < 1e-12);
    assert!(metrics::rmse(&fit.model, &train) < 1e-3);
    assert!(metrics::rmse(&fit.model, &test) < 1e-2);
}

#[test]
fn same_seed_and_threads_give_the_same_model() {
    let problem = synth::planted_completion_rect(80, 60, 4, 2500, 3).unwrap();
    let run = |threads: usize, seed: u64, schedule: LrSchedule| {
        let p = Sgd { rank: 9, schedule, grid: 4, ..Sgd::default() };
        Executor::new(p.check().unwrap(), &problem.observed)
            .seed(seed)
            .threads(threads)
            .max_iters(4)
            .run()
            .unwrap()
            .model
    };
    for schedule in [LrSchedule::Inverse, LrSchedule::Adaptive] {
        let a = run(2, 11, schedule);
        let b = run(2, 11, schedule);
        assert_eq!(a, b, "two runs with 2 threads differ");
        // blocks of a stratum are independent: with the same grid, the
        // thread count does not change the result either
        assert_eq!(a, run(1, 11, schedule));
        assert_ne!(a.u, run(2, 12, schedule).u, "another seed must give another model");
    }
}

#[test]
fn non_negative_factors_stay_non_negative() {
    let problem = synth::planted_completion_rect(30, 30, 2, 600, 8).unwrap();
    let abs = problem.observed.map_values(|v| v.abs());
    for schedule in [LrSchedule::Constant, LrSchedule::Adaptive] {
        let p = Sgd { nonneg: true, schedule, ..plain(3, 0.02) };
        let fit = Executor::new(p.check().unwrap(), &abs).seed(2).max_iters(50).run().unwrap();
        assert!(fit.model.u.iter().chain(&fit.model.v).all(|&x| x >= 0.0));
        assert!(metrics::rmse(&fit.model, &abs) < 0.5);
    }
}

#[test]
fn early_stopping_through_the_executor() {
    // noisy data, no regularization, a large rank: the test RMSE turns up
    // and the executor stops, returning the best model.
    let spec =
        synth::RatingsSpec { users: 60, items: 50, count: 1200, rank: 2, noise: 0.5, seed: 5, ..Default::default() };
    let all = synth::ratings_like(&spec).unwrap();
    let train = all.filter(|i, j, _| (i + j) % 5 != 0);
    let test = all.filter(|i, j, _| (i + j) % 5 == 0);
    let p = Sgd {
        rank: 20,
        lr: 0.05,
        lr_bias: None,
        reg: 0.0,
        reg_bias: 0.0,
        schedule: LrSchedule::Constant,
        init_scale: Some(0.1),
        ..Sgd::default()
    };
    let test2 = test.clone();
    let fit = Executor::new(p.check().unwrap(), &train)
        .max_iters(500)
        .evaluate(1, move |m: &FactorModel| vec![("test_rmse".into(), metrics::rmse(m, &test2))])
        .early_stopping(EarlyStopping { key: "test_rmse".into(), patience: 3, min_delta: 0.0 })
        .run()
        .unwrap();
    let Termination::EarlyStopped { best_iteration } = fit.termination else { panic!("{:?}", fit.termination) };
    assert!(fit.iterations < 500);
    let best = fit.history[best_iteration - 1].get("test_rmse").unwrap();
    assert!((metrics::rmse(&fit.model, &test) - best).abs() < 1e-12);
    assert!(fit.history.iter().all(|r| r.get("test_rmse").unwrap() >= best));
}

#[test]
fn resume_from_checkpoint_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("sgd.ckpt");
    let problem = synth::planted_completion_rect(40, 30, 3, 700, 6).unwrap();
    let p = Sgd { rank: 4, schedule: LrSchedule::Adaptive, lr: 0.05, ..Sgd::default() };
    let straight =
        Executor::new(p.clone().check().unwrap(), &problem.observed).seed(9).max_iters(6).run().unwrap().model;
    Executor::new(p.clone().check().unwrap(), &problem.observed).seed(9).max_iters(3).checkpoint(&ck, 1).run().unwrap();
    let resumed = Executor::new(p.check().unwrap(), &problem.observed)
        .seed(9)
        .max_iters(6)
        .checkpoint(&ck, 1)
        .resume(true)
        .run()
        .unwrap();
    assert_eq!(resumed.iterations, 6);
    assert_eq!(resumed.model, straight);
    // another rank is refused, naming the checkpoint
    let p5 = Sgd { rank: 5, schedule: LrSchedule::Adaptive, lr: 0.05, ..Sgd::default() };
    let e = Executor::new(p5.check().unwrap(), &problem.observed)
        .seed(9)
        .max_iters(6)
        .checkpoint(&ck, 1)
        .resume(true)
        .run()
        .unwrap_err()
        .to_string();
    assert!(e.contains("sgd.ckpt") && e.contains("sizes [4,") && e.contains("make [5,"), "{e}");
}

#[test]
fn lab_sgd_resumes_bit_for_bit() {
    // its updates run on f64 factors the f32 model only rounds: the
    // checkpoint carries them
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("lab.ckpt");
    let problem = synth::planted_completion_rect(20, 15, 2, 150, 3).unwrap();
    let run = |iters: usize, resume: bool| {
        Executor::new(LabSgd { rank: 2, lr: 0.02 }.check().unwrap(), &problem.observed)
            .seed(4)
            .max_iters(iters)
            .checkpoint(&ck, 3)
            .resume(resume)
            .run()
            .unwrap()
    };
    let straight = Executor::new(LabSgd { rank: 2, lr: 0.02 }.check().unwrap(), &problem.observed)
        .seed(4)
        .max_iters(9)
        .run()
        .unwrap();
    run(3, false);
    let resumed = run(9, true);
    assert_eq!(resumed.model, straight.model);
    assert_eq!(resumed.history.last().unwrap().objective, straight.history.last().unwrap().objective);
}

#[test]
fn a_resumed_trace_drops_the_records_after_the_checkpoint() {
    // a run killed after its last checkpoint left records 5, 6 and half a
    // line in its trace: the resumed run rewrites them, once
    let dir = tempfile::tempdir().unwrap();
    let (ck, trace) = (dir.path().join("ck"), dir.path().join("trace.jsonl"));
    let problem = synth::planted_completion_rect(20, 15, 2, 150, 3).unwrap();
    let p = Sgd { rank: 2, lr: 0.05, ..Sgd::default() };
    let run = |iters: usize, resume: bool| {
        Executor::new(p.clone().check().unwrap(), &problem.observed)
            .seed(4)
            .max_iters(iters)
            .checkpoint(&ck, 2)
            .resume(resume)
            .observer(crate::observe::JsonlTrace::create(&trace, resume).unwrap())
            .run()
            .unwrap()
    };
    run(4, false);
    let mut f = std::fs::OpenOptions::new().append(true).open(&trace).unwrap();
    use std::io::Write;
    write!(f, "{{\"iteration\":5,\"elapsed\":1.0,\"values\":{{}}}}\n{{\"iteration\":6,\"elapsed\":1.0,\"values\":{{}}}}\n{{\"itera").unwrap();
    drop(f);
    run(8, true);
    let its: Vec<usize> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<crate::observe::Record>(l).unwrap().iteration)
        .collect();
    assert_eq!(its, (1..=8).collect::<Vec<_>>());
}

/// Sets the interrupt flag after `at` iterations (a Ctrl-C in a test).
struct InterruptAt {
    at: usize,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl crate::observe::Observer for InterruptAt {
    fn observe(&mut self, r: &crate::observe::Record) -> crate::observe::Control {
        if r.iteration == self.at {
            self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        crate::observe::Control::Continue
    }
}

#[test]
fn an_interrupted_run_checkpoints_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("sgd.ckpt");
    let problem = synth::planted_completion_rect(40, 30, 3, 700, 6).unwrap();
    let p = Sgd { rank: 4, lr: 0.05, ..Sgd::default() };
    let straight = Executor::new(p.clone().check().unwrap(), &problem.observed).seed(9).max_iters(8).run().unwrap();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // scheduled checkpoints every 100 iterations: none before the interrupt
    let cut = Executor::new(p.clone().check().unwrap(), &problem.observed)
        .seed(9)
        .max_iters(8)
        .checkpoint(&ck, 100)
        .interrupt(flag.clone())
        .observer(InterruptAt { at: 5, flag })
        .run()
        .unwrap();
    assert_eq!((cut.termination, cut.iterations), (Termination::Interrupted, 5));
    let resumed = Executor::new(p.check().unwrap(), &problem.observed)
        .seed(9)
        .max_iters(8)
        .checkpoint(&ck, 100)
        .resume(true)
        .run()
        .unwrap();
    assert_eq!(resumed.history.iter().map(|r| r.iteration).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    assert_eq!(resumed.model, straight.model);
}

// ------------------------------------------------ parameters and registry

fn dataset() -> Dataset {
    let problem = synth::planted_completion_rect(20, 15, 2, 200, 1).unwrap();
    Dataset::Ratings(problem.observed)
}

#[test]
fn invalid_params_are_rejected_before_any_work() {
    let d = dataset();
    let run = |params: serde_json::Value, epochs: Option<usize>| {
        let mut req = FitRequest::new("sgd", &d);
        req.params = params.as_object().unwrap().clone();
        req.epochs = epochs;
        registry::fit(req)
    };
    let invalid = |r: crate::Result<registry::FitOutcome>| matches!(r, Err(Error::InvalidInput(_)));
    assert!(invalid(run(json!({"rank": 0}), None)));
    assert!(invalid(run(json!({"rank": 16}), None)), "rank above min(m, n) = 15");
    assert!(invalid(run(json!({"lr": 0.0}), None)));
    assert!(invalid(run(json!({"lr": -0.1}), None)));
    assert!(invalid(run(json!({"reg": -1.0}), None)));
    assert!(invalid(run(json!({"reg_bias": -1.0}), None)));
    assert!(invalid(run(json!({"lr_bias": 0.0}), None)));
    assert!(invalid(run(json!({"decay": -1.0}), None)));
    assert!(invalid(run(json!({"rank": 2}), Some(0))), "epochs 0");
    // unknown keys and presets are config errors with a suggestion
    match run(json!({"regg": 0.1}), None) {
        Err(Error::Config(m)) => assert!(m.contains("did you mean 'reg'"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(run(json!({"preset": "libfm"}), None), Err(Error::Config(_))));
    assert!(matches!(run(json!({"schedule": "cosine"}), None), Err(Error::Config(_))));
    // and a good request works
    assert!(run(json!({"rank": 2, "preset": "libmf"}), Some(2)).is_ok());
}

#[test]
fn presets_are_overridden_by_explicit_settings() {
    let p = Sgd::from_map(json!({"preset": "libmf", "rank": 64, "reg": 0.005}).as_object().unwrap()).unwrap();
    assert_eq!((p.rank, p.reg, p.lr, p.biases, p.schedule), (64, 0.005, 0.1, false, LrSchedule::Adaptive));
    assert_eq!(Sgd::from_map(&Default::default()).unwrap(), Sgd::default());
}

#[test]
fn too_large_a_rate_diverges_naming_the_epoch() {
    let d = dataset();
    let mut req = FitRequest::new("sgd", &d).set("rank", 2).set("lr", 1e4).set("schedule", "constant");
    req.epochs = Some(20);
    match registry::fit(req) {
        Err(e @ Error::Diverged { .. }) => {
            let Error::Diverged { iteration, ref hint, .. } = e else { unreachable!() };
            assert!((1..=20).contains(&iteration));
            assert!(hint.contains(&format!("epoch {iteration}")) && hint.contains("smaller lr"), "{e}");
            // from far above it the suggestion is the default, not a tenth (1e3 diverges too)
            assert!(hint.contains(&format!("try {}, the default", Sgd::default().lr)), "{e}");
        }
        other => panic!("expected Diverged, got {:?}", other.map(|o| o.summary)),
    }
}
