//! Tests of CP-ALS against independent truths: planted low-rank tensors,
//! explicit reconstructions, monotonicity of exact block updates.

use faer::Mat;

use super::*;
use crate::data::{Tensor3, synth};
use crate::io::Dataset;
use crate::model::ModelState;
use crate::rng;
use crate::solve::registry::{self, FitRequest};
use crate::solve::{Executor, Solver, Termination};

fn rel(fit_model: &CpModel, t: &Tensor3) -> f64 {
    fit_model.relative_error(t).unwrap()
}

/// The planted tensor with a random `frac` of entries observed, and the
/// held-out entries as a second tensor.
fn split(clean: &Tensor3, frac: f64, seed: u64) -> (Tensor3, Tensor3) {
    let mut g = rng::rng(seed);
    let mask: Vec<bool> = (0..clean.data().len()).map(|_| rng::uniform(&mut g) < frac).collect();
    let held: Vec<bool> = mask.iter().map(|m| !m).collect();
    let train = clean.clone().with_mask(mask).unwrap();
    let test = clean.clone().with_mask(held).unwrap();
    (train, test)
}

#[test]
fn recovers_a_noiseless_low_rank_tensor_exactly() {
    let (t, clean, _) = synth::random_cp([12, 10, 8], 4, 0.0, 1).unwrap();
    assert_eq!(t, clean);
    for init in [CpInit::Gaussian, CpInit::Svd] {
        let p = CpAls { rank: 4, init, tol: 1e-12, ..Default::default() };
        let fit = p.fit(&t, 1000, 3).unwrap();
        let e = rel(&fit.model, &t);
        assert!(e < 1e-8, "{init:?}: relative error {e} after {} iterations", fit.iterations);
        assert_eq!(fit.termination, Termination::Converged, "{init:?}");
        // unit columns, and the planted weights (1 each) come back
        for f in &fit.model.factors {
            for c in 0..4 {
                assert!((f.col(c).norm_l2() - 1.0).abs() < 1e-12);
            }
        }
        let mut w: Vec<f64> = fit.model.weights.iter().map(|w| w.abs()).collect();
        w.sort_by(f64::total_cmp);
        assert!(w.iter().all(|w| (w - 1.0).abs() < 1e-6), "{w:?}");
    }
}

#[test]
fn recorded_rel_error_equals_the_explicit_one() {
    // noise 5%: the cheap formula is used (rel error >> 1e-6)
    let (t, _, _) = synth::random_cp([9, 8, 7], 3, 0.05, 4).unwrap();
    for line_search in [false, true] {
        for iters in [1, 2, 7] {
            let p = CpAls { rank: 3, line_search, ..Default::default() };
            let fit = p.fit(&t, iters, 5).unwrap();
            let recorded = fit.history.last().unwrap().get("rel_error").unwrap();
            let explicit = rel(&fit.model, &t);
            assert!(explicit > 1e-3);
            assert!((recorded - explicit).abs() < 1e-12 * explicit.max(1.0), "{recorded} vs {explicit}");
            let obj = fit.history.last().unwrap().objective.unwrap();
            assert!((obj - 0.5 * explicit * explicit * t.norm().powi(2)).abs() < 1e-10 * obj);
        }
    }
    // ALS never increases the error (exact block minimization)
    let fit = CpAls::with_rank(3).fit(&t, 30, 1).unwrap();
    let errs: Vec<f64> = fit.history.iter().map(|r| r.get("rel_error").unwrap()).collect();
    assert!(errs.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-12)), "{errs:?}");
    // near the noise floor: relative error close to the noise level
    assert!(errs[29] < 0.05 && errs[29] > 0.04, "{}", errs[29]);
}

#[test]
fn non_negative_factors_stay_non_negative_and_error_decreases() {
    let mut g = rng::rng(8);
    let fs: Vec<Mat<f64>> = [10, 9, 8].iter().map(|&d| Mat::from_fn(d, 3, |_, _| rng::uniform(&mut g))).collect();
    let truth = CpModel::from_factors([fs[0].clone(), fs[1].clone(), fs[2].clone()]).unwrap();
    let t = truth.reconstruct().unwrap();
    let p = CpAls { rank: 3, non_negative: true, ..Default::default() };
    let fit = p.fit(&t, 300, 2).unwrap();
    let m = &fit.model;
    assert!(m.weights.iter().all(|&w| w >= 0.0));
    for f in &m.factors {
        assert!((0..3).all(|c| f.col_as_slice(c).iter().all(|&x| x >= 0.0)));
    }
    let errs: Vec<f64> = fit.history.iter().map(|r| r.get("rel_error").unwrap()).collect();
    assert!(errs.windows(2).all(|w| w[1] <= w[0] + 1e-12), "HALS must not increase the error");
    assert!(errs[299] < 1e-2, "relative error {}", errs[299]);
    assert!(errs[299] < errs[0] / 10.0);
    // an unconstrained fit of a tensor with negative entries has negative factor entries
    let (t2, _, _) = synth::random_cp([6, 6, 6], 2, 0.0, 3).unwrap();
    let fit2 = CpAls { rank: 2, non_negative: true, ..Default::default() }.fit(&t2, 20, 0).unwrap();
    for f in &fit2.model.factors {
        assert!((0..2).all(|c| f.col_as_slice(c).iter().all(|&x| x >= 0.0)));
    }
}

#[test]
fn completion_recovers_held_out_entries_from_30_percent() {
    let (_, clean, _) = synth::random_cp([20, 20, 20], 3, 0.0, 11).unwrap();
    let (train, test) = split(&clean, 0.3, 12);
    assert!(train.n_observed() > 2000 && train.n_observed() < 2800);
    // weighted ALS from the (default) HOSVD start: exact recovery of the planted tensor
    let fit = CpAls { rank: 3, completion: Completion::Wals, ..Default::default() }.fit(&train, 50, 1).unwrap();
    let held_out = rel(&fit.model, &test);
    assert!(held_out < 1e-6, "wals held-out relative error {held_out}");
    let recorded = fit.history.last().unwrap().get("rel_error").unwrap();
    assert!((recorded - rel(&fit.model, &train)).abs() < 1e-12);
    // EM imputation: slower, but it gets there
    let fit = CpAls { rank: 3, completion: Completion::Em, ..Default::default() }.fit(&train, 200, 1).unwrap();
    let held_out = rel(&fit.model, &test);
    assert!(held_out < 1e-4, "em held-out relative error {held_out}");
    let recorded = fit.history.last().unwrap().get("rel_error").unwrap();
    assert!((recorded - rel(&fit.model, &train)).abs() < 1e-12);
    // non-negative completion (HALS rows) keeps the sign constraint
    let fit = CpAls { rank: 3, non_negative: true, ..Default::default() }.fit(&train, 5, 1).unwrap();
    assert!(fit.model.factors.iter().all(|f| (0..3).all(|c| f.col_as_slice(c).iter().all(|&x| x >= 0.0))));
}

#[test]
fn invalid_input_is_rejected_before_any_work() {
    let bad = [
        CpAls { rank: 0, ..Default::default() },
        CpAls { tol: -1.0, ..Default::default() },
        CpAls { tol_change: f64::NAN, ..Default::default() },
        CpAls { reg: -0.5, ..Default::default() },
    ];
    for p in bad {
        assert!(matches!(p.check(), Err(Error::InvalidInput(_))));
    }
    let t = Tensor3::new([3, 3, 3], (0..27).map(f64::from).collect()).unwrap();
    // rank above the largest possible CP rank of a 3x3x3 tensor (9)
    assert!(matches!(CpAls::with_rank(10).fit(&t, 5, 0), Err(Error::InvalidInput(_))));
    // a zero tensor
    let z = Tensor3::new([2, 2, 2], vec![0.0; 8]).unwrap();
    assert!(matches!(CpAls::with_rank(1).fit(&z, 5, 0), Err(Error::InvalidInput(_))));
    // no observed entry: rejected when the mask is attached
    assert!(t.clone().with_mask(vec![false; 27]).is_err());
    // observed entries all zero
    let mut mask = vec![false; 27];
    mask[0] = true; // t[0,0,0] = 0
    let zero_obs = t.clone().with_mask(mask).unwrap();
    assert!(matches!(CpAls::with_rank(1).fit(&zero_obs, 5, 0), Err(Error::InvalidInput(_))));
    // line search needs full data
    let mut mask = vec![true; 27];
    mask[5] = false;
    let masked = t.clone().with_mask(mask).unwrap();
    let p = CpAls { rank: 2, line_search: true, ..Default::default() };
    assert!(matches!(p.fit(&masked, 5, 0), Err(Error::InvalidInput(_))));
    // the registry: wrong data kind, unknown key, bad value
    let ratings = Dataset::Ratings(crate::Ratings::new(2, 2, vec![0, 1], vec![0, 1], vec![1.0, 2.0]).unwrap());
    assert!(matches!(registry::fit(FitRequest::new("cp-als", &ratings)), Err(Error::InvalidInput(_))));
    let data = Dataset::Tensor(t.clone());
    assert!(matches!(registry::fit(FitRequest::new("cp-als", &data).set("rnak", 2)), Err(Error::Config(_))));
    assert!(matches!(registry::fit(FitRequest::new("cp-als", &data).set("rank", 0)), Err(Error::InvalidInput(_))));
    assert!(matches!(registry::fit(FitRequest::new("cp-als", &data).set("init", "qr")), Err(Error::Config(_))));
    let other = Dataset::Tensor(Tensor3::new([3, 3, 2], vec![1.0; 18]).unwrap());
    let mut req = FitRequest::new("cp-als", &data).set("rank", 2);
    req.test = Some(&other);
    assert!(matches!(registry::fit(req), Err(Error::InvalidInput(_))));
}

#[test]
fn same_seed_and_threads_give_identical_results() {
    // large enough for the parallel kernels (several output blocks)
    let (t, _, _) = synth::random_cp([40, 60, 30], 5, 0.01, 2).unwrap();
    let run = |p: CpAls, data: &Tensor3| {
        Executor::new(p.check().unwrap(), data).seed(7).max_iters(8).threads(2).run().unwrap().model
    };
    for p in [CpAls::with_rank(5), CpAls { rank: 5, line_search: true, init: CpInit::Svd, ..Default::default() }] {
        let a = run(p.clone(), &t);
        let b = run(p, &t);
        assert_eq!(a, b);
    }
    let (train, _) = split(&t, 0.3, 1);
    for completion in [Completion::Wals, Completion::Em] {
        let p = CpAls { rank: 5, completion, ..Default::default() };
        assert_eq!(run(p.clone(), &train), run(p, &train));
    }
    // a different seed gives a different start
    let c =
        Executor::new(CpAls::with_rank(5).check().unwrap(), &t).seed(8).max_iters(1).threads(2).run().unwrap().model;
    let d =
        Executor::new(CpAls::with_rank(5).check().unwrap(), &t).seed(7).max_iters(1).threads(2).run().unwrap().model;
    assert_ne!(c, d);
}

#[test]
fn one_and_two_threads_agree_bit_for_bit() {
    // small tensors run their passes on the two-thread team, larger ones on
    // rayon's blocks: either way every output row is computed as on one
    // thread, so the models are equal (dense, line search, EM completion)
    for (dims, rank) in [([30, 30, 30], 20), ([9, 7, 5], 3), ([40, 60, 30], 5)] {
        let (t, _, _) = synth::random_cp(dims, rank, 0.01, 4).unwrap();
        let (train, _) = split(&t, 0.5, 2);
        let cases = [
            (CpAls::with_rank(rank), &t),
            (CpAls { rank, line_search: true, ..Default::default() }, &t),
            (CpAls { rank, completion: Completion::Em, ..Default::default() }, &train),
        ];
        for (p, data) in cases {
            let run = |threads: usize| {
                Executor::new(p.clone().check().unwrap(), data).seed(3).max_iters(9).threads(threads).run().unwrap()
            };
            let (one, two) = (run(1), run(2));
            assert_eq!(one.model, two.model, "{dims:?} rank {rank}");
            let rel = |f: &crate::solve::Fit<_>| f.history.last().unwrap().values["rel_error"];
            assert_eq!(rel(&one).to_bits(), rel(&two).to_bits(), "{dims:?} rank {rank}");
        }
    }
}

#[test]
fn checkpoint_resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _, _) = synth::random_cp([7, 6, 5], 3, 0.01, 5).unwrap();
    let (masked, _) = split(&t, 0.6, 3);
    let cases = [
        (CpAls { rank: 3, line_search: true, ..Default::default() }, &t),
        (CpAls { rank: 3, completion: Completion::Em, ..Default::default() }, &masked),
        (CpAls { rank: 3, tol_change: 1e-300, ..Default::default() }, &masked),
    ];
    for (n, (p, data)) in cases.into_iter().enumerate() {
        let straight = Executor::new(p.clone().check().unwrap(), data).seed(1).max_iters(10).run().unwrap();
        let ck = dir.path().join(format!("ck{n}"));
        // interrupted after 4 of the 10 iterations (a compressed run plans its
        // last iterations from the budget, so the budget is the same)
        Executor::new(p.clone().check().unwrap(), data)
            .seed(1)
            .max_iters(10)
            .observer(crate::observe::StopAfter(4))
            .checkpoint(&ck, 2)
            .run()
            .unwrap();
        let resumed = Executor::new(p.check().unwrap(), data)
            .seed(1)
            .max_iters(10)
            .checkpoint(&ck, 2)
            .resume(true)
            .run()
            .unwrap();
        assert_eq!(resumed.iterations, 10);
        assert_eq!(resumed.model, straight.model, "case {n}");
        assert_eq!(resumed.history.last().unwrap().get("rel_error"), straight.history.last().unwrap().get("rel_error"));
    }
    // a checkpoint of another tensor shape or rank is refused, naming the file
    let ck = dir.path().join("ck0");
    let (other, _, _) = synth::random_cp([8, 6, 5], 3, 0.01, 5).unwrap();
    let resume = |p: CpAls, data: &Tensor3| {
        Executor::new(p.check().unwrap(), data).seed(1).max_iters(10).checkpoint(&ck, 2).resume(true).run().unwrap_err()
    };
    let e = resume(CpAls::with_rank(3), &other).to_string();
    assert!(e.contains("ck0") && e.contains("[7, 6, 5]") && e.contains("[8, 6, 5]"), "{e}");
    let e = resume(CpAls::with_rank(4), &t).to_string();
    assert!(e.contains("ck0") && e.contains("sizes [3]") && e.contains("make [4]"), "{e}");
    // a checkpoint beyond the iterations asked for
    let e = Executor::new(CpAls::with_rank(3).check().unwrap(), &t)
        .max_iters(2)
        .checkpoint(&ck, 2)
        .resume(true)
        .run()
        .unwrap_err()
        .to_string();
    assert!(e.contains("beyond the 2 asked for"), "{e}");
}

#[test]
fn registry_runner_summary_and_saved_model() {
    let (t, clean, _) = synth::random_cp([8, 7, 6], 2, 1e-3, 9).unwrap();
    let (train, test) = split(&clean, 0.5, 4);
    let full = Dataset::Tensor(t.clone());
    let out = registry::fit(FitRequest::new("cp-als", &full).set("rank", 2).set("tol", 1e-2)).unwrap();
    let s = &out.summary;
    for key in [
        "algo",
        "rank",
        "epochs",
        "iterations",
        "rel_error",
        "train_rmse",
        "test_rmse",
        "test_mae",
        "fit_seconds",
        "threads",
        "seed",
        "termination",
    ] {
        assert!(s.contains_key(key), "missing {key}");
    }
    assert_eq!(s["algo"], "cp-als");
    assert_eq!(s["rank"], 2);
    assert!(s["test_rmse"].is_null() && s["test_mae"].is_null());
    assert_eq!(s["termination"], "converged");
    let crate::solve::registry::FittedModel::Cp(m) = &out.model else { panic!("not a CP model") };
    let e = s["rel_error"].as_f64().unwrap();
    assert!((e - rel(m, &t)).abs() < 1e-15 && e < 1e-2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cp.safetensors");
    out.model.save(&path).unwrap();
    let back = CpModel::load(&path).unwrap();
    assert_eq!(&back, m);
    assert_eq!(back.solver, "cp-als");
    assert!(back.is_finite());
    // completion with a held-out test tensor; the default is 500 iterations
    let (tr, te) = (Dataset::Tensor(train), Dataset::Tensor(test));
    let mut req = FitRequest::new("cp-als", &tr).set("rank", 2);
    req.test = Some(&te);
    let out = registry::fit(req).unwrap();
    assert_eq!(out.summary["epochs"], 500);
    assert!(out.summary["test_rmse"].as_f64().unwrap() < 1e-6);
    assert!(out.history.last().unwrap().get("test_mae").is_some());
}

#[test]
fn compressed_phase_records_the_exact_full_tensor_error() {
    // noise 1e-3: the compression loses part of it, which the recorded error
    // must include; direct steps (no budget) switch to the full tensor where
    // the error stalls, so both phases are seen; noise 1e-7: the loss is
    // below the cancellation of `‖T‖² − ‖G‖²` and computed explicitly
    for noise in [1e-3, 1e-7] {
        let (t, _, _) = synth::random_cp([14, 12, 10], 3, noise, 6).unwrap();
        check_recorded_errors(&t);
    }
}

fn check_recorded_errors(t: &Tensor3) {
    let t = t.clone();
    let mut solver = CpAls::with_rank(3).check().unwrap();
    let mut g = rng::rng(2);
    let mut model = solver.init(&t, &mut g).unwrap();
    let (mut on_core, mut on_full) = (0, 0);
    for it in 0..200 {
        let mut st = crate::solve::IterState { iteration: it, ..Default::default() };
        solver.step(&t, &mut model, &mut st).unwrap();
        let recorded = st.record.values["rel_error"];
        let explicit = rel(&model, &t);
        // the cheap formula's cancellation: ~1e-16 ‖T‖² absolute, ~1e-8 in the relative error at worst
        assert!((recorded - explicit).abs() <= 1e-6 * explicit + 1e-9, "iteration {it}: {recorded} vs {explicit}");
        if st.record.get("on_core") == Some(1.0) { on_core += 1 } else { on_full += 1 }
    }
    assert!(on_core >= 3 && on_full >= 3, "{on_core} iterations on the core, {on_full} on the full tensor");
}

#[test]
fn compressed_runs_refine_when_they_stop_early_and_never_return_to_the_core() {
    let (t, _, _) = synth::random_cp([30, 25, 20], 4, 1e-3, 12).unwrap();
    let p = CpAls::with_rank(4);
    // stopped by an observer after 6 of 100 iterations (on the core): the
    // model gets its refinement iterations, which lower its error (they fit
    // the noise outside the bases)
    let fit = Executor::new(p.clone().check().unwrap(), &t)
        .seed(2)
        .max_iters(100)
        .observer(crate::observe::StopAfter(6))
        .run()
        .unwrap();
    let last = fit.history.last().unwrap();
    assert_eq!(last.get("on_core"), Some(1.0));
    let recorded = last.get("rel_error").unwrap();
    assert!(rel(&fit.model, &t) < recorded * (1.0 - 1e-6), "{} vs {recorded}", rel(&fit.model, &t));
    // a finished run resumed with a larger budget stays on the full tensor
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let first = Executor::new(p.clone().check().unwrap(), &t).seed(2).max_iters(10).checkpoint(&ck, 5).run().unwrap();
    let more =
        Executor::new(p.check().unwrap(), &t).seed(2).max_iters(20).checkpoint(&ck, 5).resume(true).run().unwrap();
    let tail = &more.history[10..];
    assert!(tail.iter().all(|r| r.get("on_core") == Some(0.0)));
    let (e10, e20) = (rel(&first.model, &t), rel(&more.model, &t));
    assert!(e20 <= e10 * (1.0 + 1e-12), "{e20} after 20 vs {e10} after 10");
}

#[test]
fn compression_follows_plain_als_and_reaches_its_error() {
    // the notebook's problem scaled down: the compressed run follows plain ALS
    // from the same start (its first iteration is on the full tensor) and,
    // after the refinement iterations, ends at the same error to 1e-6 relative
    // (the compression perturbs the path by about the noise level, 1e-5)
    for (dims, rank, seed) in [([30, 30, 30], 20, 999), ([40, 35, 30], 6, 5), ([25, 8, 20], 10, 3)] {
        let (t, _, _) = synth::random_cp(dims, rank, 1e-5, seed).unwrap();
        let run = |compress: bool| {
            let p = CpAls { rank, compress, ..Default::default() };
            let fit = p.fit(&t, 150, seed).unwrap();
            (fit.history.iter().map(|r| r.values["rel_error"]).collect::<Vec<_>>(), rel(&fit.model, &t))
        };
        let ((hc, ec), (hp, ep)) = (run(true), run(false));
        assert_eq!(hc[0], hp[0], "{dims:?}: the first iteration is the same");
        // the same path while the error is far above the noise (near it, the
        // compressed phase stalls at the compression's floor, which the
        // refinement iterations remove: [40, 35, 30] rank 6 waits at 1.35e-5
        // while plain ALS reaches 9.92e-6)
        for (it, (c, p)) in hc.iter().zip(&hp).enumerate().filter(|(_, (_, p))| **p > 1e-3) {
            assert!((c - p).abs() <= 1e-4 * p, "{dims:?} iteration {it}: {c} vs {p}");
        }
        assert!((ec - ep).abs() <= 1e-6 * ep, "{dims:?}: compressed {ec} vs plain {ep}");
    }
}

#[test]
fn tucker_compression_is_exact_on_low_multilinear_rank_and_orthonormal() {
    // both ways of finding a basis: the Gram matrix (mode size <= 2 (J + 10))
    // and the randomized range finder (larger modes)
    for (dims, rank) in [([12, 10, 8], 4), ([70, 60, 50], 3)] {
        let (t, _, _) = synth::random_cp(dims, rank, 0.0, 8).unwrap();
        let core = compress::core_dims(dims, rank).unwrap();
        let tk = compress::compress(&t, t.norm().powi(2), core, &mut rng::rng(1), None).unwrap();
        assert_eq!(tk.core.dims(), [rank; 3]);
        let norm_sq = t.norm().powi(2);
        assert!(tk.lost_sq <= 1e-12 * norm_sq, "{dims:?}: lost {}", tk.lost_sq);
        for (m, u) in tk.bases.iter().enumerate() {
            let utu = u.transpose() * u;
            let id = Mat::<f64>::identity(rank, rank);
            assert!((&utu - &id).norm_max() < 1e-12, "{dims:?} mode {m}");
        }
        // the core expanded by the bases is the tensor
        let g = &tk.core;
        let [u0, u1, u2] = &tk.bases;
        let mut worst = 0.0f64;
        for i in 0..dims[0] {
            for j in 0..dims[1] {
                for k in 0..dims[2] {
                    let mut x = 0.0;
                    for a in 0..rank {
                        for b in 0..rank {
                            for c in 0..rank {
                                x += g.get(a, b, c) * u0[(i, a)] * u1[(j, b)] * u2[(k, c)];
                            }
                        }
                    }
                    worst = worst.max((x - t.get(i, j, k)).abs());
                }
            }
        }
        assert!(worst < 1e-10 * t.norm(), "{dims:?}: {worst}");
    }
}
