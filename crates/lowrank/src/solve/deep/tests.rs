//! Tests of the deep factorizations.

use std::sync::Arc;

use super::*;
use crate::data::synth;
use crate::metrics::Predict;
use crate::rng;
use crate::solve::Executor;

fn small_ratings(m: usize, n: usize, count: usize, seed: u64) -> Ratings {
    let mut g = rng::rng(seed);
    let picks = synth::sample_distinct(&mut g, m * n, count);
    let rows = picks.iter().map(|&p| (p / n) as u32).collect();
    let cols = picks.iter().map(|&p| (p % n) as u32).collect();
    let vals = picks.iter().map(|_| rng::normal(&mut g) as f32).collect();
    Ratings::new(m, n, rows, cols, vals).unwrap()
}

/// Central finite differences of the loss along random directions and on
/// every coordinate, against the analytic gradient.
fn fd_check(p: DeepMf, data: &Ratings, target: Option<Target>) {
    let depth = p.depth;
    let mut s = p.check().unwrap();
    if let Some(t) = target {
        s = s.with_target(t);
    }
    s.prepare(data).unwrap();
    let (m, n) = (data.nrows(), data.ncols());
    let mut g = rng::rng(11);
    let model = s.init_model(m, n, &mut g).unwrap();
    let (_, grads) = s.loss_and_grads(&model);
    let h = 1e-6;
    let gnorm: f64 = grads.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
    assert!(gnorm > 1e-3, "degenerate test: gradient norm {gnorm}");
    // every coordinate
    let mut worst = 0.0f64;
    for k in 0..model.factors.len() {
        for t in 0..model.factors[k].len() {
            let mut a = model.clone();
            a.factors[k][t] += h;
            let mut b = model.clone();
            b.factors[k][t] -= h;
            let fd = (s.loss_and_grads(&a).0 - s.loss_and_grads(&b).0) / (2.0 * h);
            worst = worst.max((fd - grads[k][t]).abs());
        }
    }
    // truncation O(h^2) and round-off O(1e-16 / h) are both < 1e-8 here
    assert!(worst < 1e-7 * gnorm.max(1.0), "depth {depth}: worst coordinate error {worst:e}, |g| = {gnorm:e}");
}

#[test]
fn gradient_matches_finite_differences_depth_1_to_4() {
    let data = small_ratings(5, 4, 12, 1);
    for depth in 1..=4 {
        // rectangular hidden widths that chain 5 -> 3 -> 6 -> 2 -> 4
        let all = [5usize, 3, 6, 2];
        let mut h: Vec<usize> = all[..depth].to_vec();
        h.push(4);
        let p = DeepMf { depth, hidden_sizes: Some(h), init_scale: 1.0, ..Default::default() };
        fd_check(p, &data, None);
        // default widths, orthogonal layers
        let p = DeepMf { depth, init_scale: 1.5, initialization: Init::Orthogonal, ..Default::default() };
        fd_check(p, &data, None);
    }
}

#[test]
fn gradient_matches_finite_differences_sensing() {
    let data = small_ratings(4, 5, 6, 2);
    let truth = faer::Mat::from_fn(4, 5, |i, j| (i as f64 + 1.0) * (j as f64 - 2.0) * 0.2);
    for depth in [1, 2, 3] {
        let t = Target::Sensing(Sensing::gaussian(&truth, 15, 4).unwrap());
        let p = DeepMf { depth, init_scale: 1.0, ..Default::default() };
        fd_check(p, &data, Some(t));
    }
}

#[test]
fn init_norm_is_exact_for_every_initialization() {
    for init in [Init::Gaussian, Init::Uniform, Init::Orthogonal, Init::Identity] {
        for (m, n, depth) in [(30, 30, 3), (12, 20, 2), (20, 12, 4), (7, 7, 1)] {
            for scale in [1e-3, 1e-6] {
                let p = DeepMf { depth, init_scale: scale, initialization: init, ..Default::default() };
                let s = p.check().unwrap();
                let model = s.init_model(m, n, &mut rng::rng(5)).unwrap();
                let want = scale * (m.min(n) as f64).sqrt();
                let got = model.end_to_end().norm_l2();
                assert!((got / want - 1.0).abs() < 1e-12, "{init:?} {m}x{n} depth {depth}: {got} vs {want}");
            }
        }
    }
    // orthogonal square layers are orthogonal matrices times a common scale
    let s = DeepMf { depth: 3, initialization: Init::Orthogonal, ..Default::default() }.check().unwrap();
    let model = s.init_model(10, 10, &mut rng::rng(3)).unwrap();
    let f = model.factor(1);
    let ftf = f.transpose() * &f;
    let c2 = ftf[(0, 0)];
    for i in 0..10 {
        for j in 0..10 {
            let want = if i == j { c2 } else { 0.0 };
            assert!((ftf[(i, j)] - want).abs() < 1e-12 * c2);
        }
    }
}

#[test]
fn depth3_recovers_a_planted_matrix() {
    // n = 20, rank 2, 160 of 400 entries (the paper's regime: well below
    // what depth 1 needs)
    let prob = synth::planted_completion(20, 2, 160, 3).unwrap();
    let s = DeepMf { depth: 3, lr: 3e-3, ..Default::default() }.check().unwrap();
    let truth = Arc::new(prob.truth.clone());
    let s = s.with_eval(DevEval { truth: Some(truth), ..Default::default() }).with_max_iters(6000);
    let fit = Executor::new(s, &prob.observed).max_iters(6000).seed(1).run().unwrap();
    let e = fit.model.end_to_end();
    let rel = crate::metrics::relative_error(&e, &prob.truth);
    assert_eq!(fit.termination, crate::solve::Termination::Converged, "after {} iterations", fit.iterations);
    assert!(rel < 1e-2, "relative error {rel}");
    let sp = Spectrum::of(&e).unwrap();
    assert!(sp.s[2] < 1e-2 * sp.s[0], "not rank 2: {:?}", &sp.s[..4]);
}

#[test]
fn invalid_settings_are_rejected() {
    assert!(DeepMf { depth: 0, ..Default::default() }.check().is_err());
    assert!(DeepMf { init_scale: 0.0, ..Default::default() }.check().is_err());
    assert!(DeepMf { init_scale: -1e-3, ..Default::default() }.check().is_err());
    assert!(DeepMf { init_scale: f64::NAN, ..Default::default() }.check().is_err());
    assert!(DeepMf { lr: 0.0, ..Default::default() }.check().is_err());
    assert!(DeepMf { n_dev_iters: Some(0), ..Default::default() }.check().is_err());
    assert!(DeepMf { optimizer: OptimizerKind::Sgd, eps: Some(1e-3), ..Default::default() }.check().is_err());
    // widths: wrong count, zero width, not chaining the data's shape
    assert!(DeepMf { depth: 2, hidden_sizes: Some(vec![5, 4]), ..Default::default() }.check().is_err());
    assert!(DeepMf { depth: 2, hidden_sizes: Some(vec![5, 0, 4]), ..Default::default() }.check().is_err());
    let p = DeepMf { depth: 2, hidden_sizes: Some(vec![5, 3, 7]), ..Default::default() };
    let e = p.dims(5, 4).unwrap_err().to_string();
    assert!(e.contains("do not chain"), "{e}");
    assert!(p.dims(5, 7).is_ok());
    // through the registry: errors before any work
    let data = crate::io::Dataset::Ratings(small_ratings(5, 4, 10, 1));
    for (k, v) in [
        ("depth", json!(0)),
        ("init_scale", json!(-1.0)),
        ("hidden_sizes", json!([5, 3, 3])),
        ("optimizer", json!("adamw")),
    ] {
        let req = FitRequest::new("deep", &data).set(k, v.clone());
        let err = super::super::registry::fit(req).unwrap_err();
        assert!(err.is_input_error(), "{k}={v}: {err}");
    }
}

#[test]
fn same_seed_same_result_and_registry_summary() {
    let prob = synth::planted_completion(15, 2, 120, 2).unwrap();
    let data = crate::io::Dataset::Ratings(prob.observed.clone());
    let run = |threads: usize| {
        let mut req = FitRequest::new("deep", &data).set("depth", 3).set("n_dev_iters", 50);
        req.truth = Some(&prob.truth);
        req.epochs = Some(300);
        req.seed = 9;
        req.threads = threads;
        super::super::registry::fit(req).unwrap()
    };
    let (a, b) = (run(2), run(2));
    let (FittedModel::Dense(x), FittedModel::Dense(y)) = (&a.model, &b.model) else { panic!("dense models") };
    assert_eq!(x.x, y.x);
    assert_eq!(
        a.history.iter().map(|r| r.objective).collect::<Vec<_>>(),
        b.history.iter().map(|r| r.objective).collect::<Vec<_>>()
    );
    let s = &a.summary;
    for k in [
        "algo",
        "rank",
        "epochs",
        "train_rmse",
        "test_rmse",
        "test_mae",
        "fit_seconds",
        "threads",
        "seed",
        "rel_error",
        "effective_rank",
        "iterations",
        "termination",
    ] {
        assert!(s.contains_key(k), "summary lacks {k}");
    }
    assert!(s["test_rmse"].is_null());
    // dev records every 50 iterations carry the statistics
    let dev: Vec<&Record> = a.history.iter().filter(|r| r.values.contains_key("rel_error")).collect();
    assert_eq!(dev.len(), 300 / 50 + 1);
    for k in ["train_loss", "test_loss", "schatten", "effective_rank", "grad_norm", "lr"] {
        assert!(dev[0].values.contains_key(k), "record lacks {k}");
    }
    assert_eq!(dev[0].vectors["singular_values"].len(), 10);
}

#[test]
fn model_bytes_round_trip() {
    let s = DeepMf { depth: 2, hidden_sizes: Some(vec![4, 3, 5]), ..Default::default() }.check().unwrap();
    let m = s.init_model(4, 5, &mut rng::rng(1)).unwrap();
    let back = DeepModel::from_bytes(&m.to_bytes().unwrap()).unwrap();
    assert_eq!(back, m);
    assert!((m.predict(2, 3) - m.end_to_end()[(2, 3)]).abs() < 1e-18);
    assert!(DeepModel::from_bytes(b"LRDEEP01").is_err());
}

fn svd_fd_check(depth: usize, rank: Option<usize>, m: usize, n: usize) {
    let data = small_ratings(m, n, 14, 4);
    let mut s = DeepSvd { depth, rank, init_scale: 1.0, ..Default::default() }.check().unwrap();
    s.prepare(&data).unwrap();
    let mut model = s.init_model(m, n, &mut rng::rng(2)).unwrap();
    // unequal sigma layers, so that every factor of the product matters
    for (k, sk) in model.s.iter_mut().enumerate() {
        for (t, x) in sk.iter_mut().enumerate() {
            *x *= 1.0 + 0.3 * ((k + 2 * t) % 3) as f64 - 0.2;
        }
    }
    let (_, grads) = s.loss_and_grads(&model);
    let gnorm: f64 = grads.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
    assert!(gnorm > 1e-3);
    let h = 1e-6;
    let mut worst = 0.0f64;
    let nblocks = 2 + depth;
    for b in 0..nblocks {
        let len = grads[b].len();
        for t in 0..len {
            let bump = |mdl: &mut SvdModel, dx: f64| match b {
                0 => mdl.u[t] += dx,
                1 => mdl.v[t] += dx,
                _ => mdl.s[b - 2][t] += dx,
            };
            let (mut a, mut c) = (model.clone(), model.clone());
            bump(&mut a, h);
            bump(&mut c, -h);
            let fd = (s.loss_and_grads(&a).0 - s.loss_and_grads(&c).0) / (2.0 * h);
            worst = worst.max((fd - grads[b][t]).abs());
        }
    }
    assert!(worst < 1e-7 * gnorm.max(1.0), "deep-svd depth {depth}: worst {worst:e}, |g| {gnorm:e}");
}

#[test]
fn deep_svd_gradient_matches_finite_differences() {
    for depth in 1..=3 {
        svd_fd_check(depth, None, 5, 4);
        svd_fd_check(depth, Some(2), 4, 6);
    }
}

#[test]
fn deep_svd_keeps_u_v_orthonormal_and_recovers() {
    let prob = synth::planted_completion(20, 2, 200, 5).unwrap();
    let s =
        DeepSvd { depth: 3, lr: 3e-3, init_scale: 1e-4, n_dev_iters: Some(100), ..Default::default() }.check().unwrap();
    let truth = Arc::new(prob.truth.clone());
    let s = s.with_eval(DevEval { truth: Some(truth), ..Default::default() }).with_max_iters(8000);
    let fit = Executor::new(s, &prob.observed).max_iters(8000).seed(3).run().unwrap();
    let (eu, ev) = fit.model.orthogonality_error();
    assert!(eu < 1e-10 && ev < 1e-10, "orthogonality lost: {eu:e} {ev:e}");
    assert!(fit.iterations > 100);
    // recorded on the way too
    let worst = fit.history.iter().filter_map(|r| r.values.get("orthogonality_error")).fold(0.0f64, |a, &b| a.max(b));
    assert!(worst < 1e-10, "{worst:e}");
    let rel = crate::metrics::relative_error(&fit.model.end_to_end(), &prob.truth);
    assert!(rel < 1e-2, "relative error {rel} after {} iterations ({:?})", fit.iterations, fit.termination);
}

#[test]
fn deep_svd_plain_riemannian_gradient_still_works() {
    // the unpreconditioned path (precondition = false) on the same problem
    let prob = synth::planted_completion(20, 2, 200, 5).unwrap();
    let p = DeepSvd { depth: 3, lr: 3e-3, init_scale: 1e-4, precondition: false, ..Default::default() };
    let s = p.check().unwrap().with_max_iters(8000);
    let fit = Executor::new(s, &prob.observed).max_iters(8000).seed(3).run().unwrap();
    let (eu, ev) = fit.model.orthogonality_error();
    assert!(eu < 1e-10 && ev < 1e-10, "orthogonality lost: {eu:e} {ev:e}");
    let rel = crate::metrics::relative_error(&fit.model.end_to_end(), &prob.truth);
    assert!(rel < 1e-2, "relative error {rel} after {} iterations ({:?})", fit.iterations, fit.termination);
}

#[test]
fn deep_svd_preconditioner_by_hand() {
    // column t times N |d_t|^(-2/N): depth 3, d = (8, -1/8, 0) gives the
    // factors 3 * 8^(-2/3) = 3/4, 3 * (1/8)^(-2/3) = 12, and 0
    let mut g = vec![1.0, -2.0, 4.0, 0.5, 1.0, 2.0, 7.0, 7.0];
    svd::precondition_columns(&mut g[..6], 2, &[8.0, -0.125, 0.0], 3);
    let want = [0.75, -1.5, 48.0, 6.0, 0.0, 0.0, 7.0, 7.0];
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-13 * b.abs().max(1.0), "{g:?}");
    }
}

#[test]
fn periodic_record_skips_only_the_spectrum() {
    let prob = synth::planted_completion(12, 2, 60, 2).unwrap();
    let e = faer::Mat::from_fn(12, 12, |i, j| prob.truth[(i, j)] + 0.01 * ((i * 7 + j * 3) % 5) as f64);
    let mut eval = DevEval { truth: Some(Arc::new(prob.truth.clone())), n_singulars_save: 0, ..Default::default() };
    let mut rec = crate::observe::Record::default();
    eval.record_periodic(&e, 3, &mut rec).unwrap();
    let want = crate::metrics::relative_error(&e, &prob.truth);
    assert!((rec.values["rel_error"] - want).abs() < 1e-12 * want);
    let mse = crate::metrics::mse_dense(&e, &prob.truth);
    assert!((rec.values["test_loss"] - mse).abs() < 1e-12 * mse);
    assert!(!rec.values.contains_key("schatten") && !rec.vectors.contains_key("singular_values"));
    // asked for singular values, or the full record: the spectrum is there
    eval.n_singulars_save = 3;
    let mut rec = crate::observe::Record::default();
    eval.record_periodic(&e, 3, &mut rec).unwrap();
    assert_eq!(rec.vectors["singular_values"].len(), 3);
    eval.n_singulars_save = 0;
    let mut rec = crate::observe::Record::default();
    eval.record(&e, 3, &mut rec).unwrap();
    let nuc: f64 = Spectrum::of(&e).unwrap().s.iter().sum();
    assert!((rec.values["nuclear_norm"] - nuc).abs() < 1e-12 * nuc);
}

#[test]
fn deep_svd_invalid_settings_and_init_norm() {
    assert!(DeepSvd { depth: 0, ..Default::default() }.check().is_err());
    assert!(DeepSvd { init_scale: 0.0, ..Default::default() }.check().is_err());
    assert!(DeepSvd { rank: Some(0), ..Default::default() }.check().is_err());
    let s = DeepSvd { rank: Some(9), ..Default::default() }.check().unwrap();
    assert!(s.params().rank_for(8, 10).is_err());
    for (r, depth) in [(None, 3), (Some(3), 2)] {
        let s = DeepSvd { rank: r, depth, init_scale: 1e-4, ..Default::default() }.check().unwrap();
        let m = s.init_model(8, 10, &mut rng::rng(1)).unwrap();
        let got = m.end_to_end().norm_l2();
        assert!((got / (1e-4 * 8f64.sqrt()) - 1.0).abs() < 1e-12, "{got}");
        let (eu, ev) = m.orthogonality_error();
        assert!(eu < 1e-13 && ev < 1e-13);
        assert_eq!(SvdModel::from_bytes(&m.to_bytes().unwrap()).unwrap(), m);
    }
    let data = crate::io::Dataset::Ratings(small_ratings(5, 4, 10, 1));
    let err = super::super::registry::fit(FitRequest::new("deep-svd", &data).set("rank", 7)).unwrap_err();
    assert!(err.is_input_error(), "{err}");
}

#[test]
fn two_thread_team_matches_one_thread_bitwise() {
    // the team splits every phase at the single-threaded path's own
    // boundaries: the runs must agree bit for bit (all depths and widths the
    // team handles, optimizers with and without the split update)
    let prob = synth::planted_completion(37, 3, 500, 4).unwrap();
    for (depth, hidden) in [(2, None), (3, None), (3, Some(vec![37, 29, 41, 37])), (4, Some(vec![37, 20, 33, 18, 37]))]
    {
        for opt in [OptimizerKind::Sgd, OptimizerKind::GroupRmsProp, OptimizerKind::Adam] {
            let lr = if opt == OptimizerKind::Sgd { 0.5 } else { 1e-3 };
            let run = |threads: usize| {
                let p = DeepMf {
                    depth,
                    hidden_sizes: hidden.clone(),
                    optimizer: opt,
                    lr,
                    init_scale: 1e-2,
                    n_dev_iters: Some(40),
                    ..Default::default()
                };
                let s = p.check().unwrap().with_max_iters(120);
                Executor::new(s, &prob.observed).max_iters(120).seed(7).threads(threads).run().unwrap()
            };
            let (one, two) = (run(1), run(2));
            assert_eq!(one.model.factors, two.model.factors, "depth {depth} {hidden:?} {opt:?}");
            let obj = |f: &crate::solve::Fit<DeepModel>| f.history.iter().map(|r| r.objective).collect::<Vec<_>>();
            assert_eq!(obj(&one), obj(&two), "depth {depth} {hidden:?} {opt:?}");
            // the run moved (the comparison is not of two initial models)
            assert!(obj(&one)[119] < obj(&one)[0]);
        }
    }
}

#[test]
fn team_is_used_only_with_two_or_more_threads() {
    let prob = synth::planted_completion(12, 2, 60, 1).unwrap();
    let pool = |t: usize| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
    for (t, want) in [(1, false), (2, true)] {
        let used = pool(t).install(|| {
            let mut s = DeepMf::default().check().unwrap();
            s.prepare(&prob.observed).unwrap();
            s.uses_team()
        });
        assert_eq!(used, want, "{t} threads");
    }
}

#[test]
fn resumed_runs_step_at_the_new_rate_on_one_and_two_threads() {
    // a checkpoint written with lr 0.3, resumed with lr 0.1: the resumed run
    // keeps the checkpoint's optimizer state but steps at the settings' rate
    // (`--set lr` on resume takes effect), whatever the thread count, so one
    // and two threads agree bit for bit; resuming under another optimizer is
    // an error
    use crate::solve::registry::{self, FitRequest};
    let prob = synth::planted_completion(30, 2, 300, 5).unwrap();
    let data = crate::io::Dataset::Ratings(prob.observed.clone());
    let dir = tempfile::tempdir().unwrap();
    let fit = |ck: &std::path::Path, threads: usize, opt: &str, epochs: usize, lr: f64, resume: bool| {
        let mut req = FitRequest::new("deep", &data);
        req.params = serde_json::json!({"optimizer": opt, "lr": lr, "init_scale": 1e-2, "n_dev_iters": 10})
            .as_object()
            .unwrap()
            .clone();
        req.epochs = Some(epochs);
        req.seed = 1;
        req.threads = threads;
        req.checkpoint = Some((ck.to_path_buf(), 1));
        req.resume = resume;
        registry::fit(req)
    };
    let run = |threads: usize| {
        let ck = dir.path().join(format!("deep{threads}.ckpt"));
        fit(&ck, threads, "sgd", 20, 0.3, false).unwrap();
        let out = fit(&ck, threads, "sgd", 40, 0.1, true).unwrap();
        let lrs: Vec<f64> = out.history.iter().filter_map(|r| r.values.get("lr").copied()).collect();
        assert_eq!(lrs.first(), Some(&0.3), "{threads} threads: the first 20 steps ran at 0.3");
        assert_eq!(lrs.last(), Some(&0.1), "{threads} threads: the resumed steps run at 0.1");
        out.summary["train_rmse"].as_f64().unwrap()
    };
    assert_eq!(run(1).to_bits(), run(2).to_bits());
    let ck = dir.path().join("deep1.ckpt");
    let Err(err) = fit(&ck, 1, "adam", 60, 0.1, true) else { panic!("another optimizer cannot resume") };
    let err = err.to_string();
    assert!(err.contains("optimizer"), "{err}");
}

#[test]
fn an_update_that_overflows_stops_the_run_at_once_on_one_and_two_threads() {
    // GD at lr 1e308 from a large start: the first loss is finite, the
    // update overflows the factors themselves, which the update's own
    // finiteness check reports ("the model", iteration 1). At lr 1e300 from
    // init 1 the factors stay finite but their product overflows: the dev
    // record reports it ("end_to_end_norm", iteration 1) instead of failing
    // in the SVD.
    use crate::solve::registry::{self, FitRequest};
    let prob = synth::planted_completion(30, 2, 300, 5).unwrap();
    let data = crate::io::Dataset::Ratings(prob.observed.clone());
    // a step size too large by far: the loss grows 1e8-fold while finite
    let mut req = FitRequest::new("deep", &data);
    req.params = serde_json::json!({"optimizer": "sgd", "lr": 1e3}).as_object().unwrap().clone();
    req.epochs = Some(200);
    match registry::fit(req) {
        Err(crate::error::Error::BlewUp { from, to, hint, .. }) => {
            assert!(to > 1e8 * from && hint.contains("lower lr"), "{from} -> {to}: {hint}")
        }
        other => panic!("lr 1e3: expected BlewUp, got {:?}", other.map(|o| o.summary)),
    }
    for (lr, init, what) in [(1e308, 1e3, "the model"), (1e300, 1.0, "end_to_end_norm")] {
        for threads in [1, 2] {
            let mut req = FitRequest::new("deep", &data);
            req.params =
                serde_json::json!({"optimizer": "sgd", "lr": lr, "init_scale": init}).as_object().unwrap().clone();
            req.epochs = Some(5);
            req.threads = threads;
            match registry::fit(req) {
                Err(crate::error::Error::Diverged { iteration, what: got, .. }) => {
                    assert_eq!((iteration, got.as_str()), (1, what), "lr {lr}, {threads} threads");
                }
                other => panic!("lr {lr}, {threads} threads: expected Diverged, got {:?}", other.map(|o| o.summary)),
            }
        }
    }
}
