//! Tests of the four solvers against independent truths: dense SVD
//! formulas, the optimality conditions, planted recovery, Eckart-Young.

use faer::Mat;
use serde_json::json;

use super::*;
use crate::data::synth::{planted_completion, planted_completion_rect};
use crate::io::Dataset;
use crate::metrics::relative_error;
use crate::solve::registry::{self, FitRequest, FittedModel};
use crate::solve::spectral::svd::thin_svd;
use crate::solve::{Executor, Fit, IterState, Solver};

/// Observed entries as a dense matrix with zeros elsewhere, and the mask.
fn dense_observed(r: &Ratings) -> (Mat<f64>, Mat<f64>) {
    let (m, n) = r.shape();
    let mut x = Mat::zeros(m, n);
    let mut mask = Mat::zeros(m, n);
    for (i, j, v) in r.iter() {
        x[(i, j)] = v as f64;
        mask[(i, j)] = 1.0;
    }
    (x, mask)
}

fn soft(p: SoftImputeParams) -> SoftImpute {
    p.check().unwrap()
}

fn run<S: crate::solve::Solver<Data = Ratings, Model = FactorModel>>(
    s: S,
    r: &Ratings,
    iters: usize,
) -> Fit<FactorModel> {
    Executor::new(s, r).seed(7).max_iters(iters).run().unwrap()
}

#[test]
fn softimpute_small_lambda_recovers_planted_matrix() {
    // 40x40 rank 3, half observed. The fixed point is biased by about
    // lambda / p per singular value (p = 0.5), and lambda = 0.01
    // sigma_max(P_Omega(W)) <= 0.005 ||W||_2 once the sampling is accounted for,
    // so ||Z - W||_F / ||W||_F <~ sqrt(3) * 0.01 ~ 0.02; we allow 0.03.
    let p = planted_completion(40, 3, 800, 1).unwrap();
    let s = soft(SoftImputeParams {
        rank: 10,
        lambda_frac: Some(0.01),
        center: Center::None,
        tol: 1e-9,
        ..Default::default()
    });
    let fit = run(s, &p.observed, 400);
    let err = relative_error(&fit.model, &p.truth);
    assert!(err < 0.03, "relative error {err}");
    // the objective does not increase along the last lambda
    let last_lambda = fit.history.last().unwrap().values["lambda"];
    let objs: Vec<f64> =
        fit.history.iter().filter(|r| r.values["lambda"] == last_lambda).map(|r| r.objective.unwrap()).collect();
    for w in objs.windows(2) {
        assert!(w[1] <= w[0] * (1.0 + 1e-9), "objective went up: {} -> {}", w[0], w[1]);
    }
}

#[test]
fn softimpute_lambda_above_sigma_max_gives_zero() {
    let p = planted_completion_rect(15, 12, 2, 100, 2).unwrap();
    let (x, _) = dense_observed(&p.observed);
    let smax = thin_svd(x.as_ref()).unwrap().s[0];
    for lambda in [smax * (1.0 + 1e-9), 2.0 * smax] {
        let s = soft(SoftImputeParams { rank: 5, lambda: Some(lambda), center: Center::None, ..Default::default() });
        let fit = run(s, &p.observed, 5);
        assert!(fit.model.u.iter().chain(&fit.model.v).all(|&x| x == 0.0), "lambda {lambda}: non-zero solution");
        assert_eq!(fit.history.last().unwrap().values["z_rank"], 0.0);
        assert_eq!(fit.termination, crate::solve::Termination::Converged);
    }
}

#[test]
fn one_softimpute_step_equals_the_dense_formula() {
    // rank = min(m, n): the randomized SVD's block spans the whole row space,
    // so it is exact up to rounding.
    let p = planted_completion_rect(8, 6, 2, 30, 3).unwrap();
    let (x, mask) = dense_observed(&p.observed);
    let lambda = 0.7;
    let mut s =
        soft(SoftImputeParams { rank: 6, lambda: Some(lambda), path: 1, center: Center::None, ..Default::default() });
    let mut model = s.init(&p.observed, &mut rng::rng(0)).unwrap();
    let mut g = rng::rng(4);
    let rand = |g: &mut Rng, m: usize, n: usize| Mat::from_fn(m, n, |_, _| rng::normal(g));
    let z0 = LowRank { u: rand(&mut g, 8, 2), s: vec![1.5, 0.5], v: rand(&mut g, 6, 2) };
    s.set_iterate(&p.observed, z0.clone()).unwrap();
    let mut st = IterState::default();
    s.step(&p.observed, &mut model, &mut st).unwrap();
    // dense: F = P_Omega(X) + P_Omega_perp(Z0); Z1 = U (s - lambda)_+ V^T
    let zd = z0.to_dense();
    let f = Mat::from_fn(8, 6, |i, j| if mask[(i, j)] == 1.0 { x[(i, j)] } else { zd[(i, j)] });
    let svd = thin_svd(f.as_ref()).unwrap();
    let shr = Mat::from_fn(6, 6, |i, j| if i == j { (svd.s[i] - lambda).max(0.0) } else { 0.0 });
    let want = &svd.u * shr * svd.v.transpose();
    let got = s.iterate().unwrap().to_dense();
    assert!((&got - &want).norm_max() < 1e-10 * f.norm_max(), "{:?}", (&got - &want).norm_max());
    // the recorded objective is 0.5 ||P_Omega(X - Z1)||^2 + lambda ||Z1||_*
    let r = Mat::from_fn(8, 6, |i, j| mask[(i, j)] * (x[(i, j)] - want[(i, j)]));
    let nuc: f64 = svd.s.iter().map(|&v| (v - lambda).max(0.0)).sum();
    let obj = 0.5 * r.squared_norm_l2() + lambda * nuc;
    assert!((st.record.objective.unwrap() - obj).abs() < 1e-9 * obj);
}

/// Checks the subgradient condition of `min 0.5 ||P(X - Z)||^2 + lambda
/// ||Z||_*` at `z`: `G = P_Omega(X - Z)` has `||G||_2 <= lambda`, and `G V =
/// lambda U`, `G^T U = lambda V` on the range of `Z`. Returns the largest
/// violation relative to `lambda`.
fn kkt_violation(r: &Ratings, z: &LowRank, lambda: f64) -> f64 {
    let (x, mask) = dense_observed(r);
    let zd = z.to_dense();
    let g = Mat::from_fn(x.nrows(), x.ncols(), |i, j| mask[(i, j)] * (x[(i, j)] - zd[(i, j)]));
    let gnorm = thin_svd(g.as_ref()).unwrap().s[0];
    let a = (&g * &z.v - &z.u * faer::Scale(lambda)).norm_max();
    let b = (g.transpose() * &z.u - &z.v * faer::Scale(lambda)).norm_max();
    ((gnorm - lambda).max(0.0)).max(a).max(b) / lambda
}

#[test]
fn softimpute_fixed_point_satisfies_optimality_and_als_matches_it() {
    let p = planted_completion_rect(20, 15, 2, 150, 5).unwrap();
    let (x, _) = dense_observed(&p.observed);
    let lambda = 0.15 * thin_svd(x.as_ref()).unwrap().s[0];
    let mut s = soft(SoftImputeParams {
        rank: 15,
        lambda: Some(lambda),
        path: 1,
        center: Center::None,
        tol: 1e-24,
        ..Default::default()
    });
    let mut model = s.init(&p.observed, &mut rng::rng(1)).unwrap();
    let mut obj_soft = 0.0;
    for it in 0..3000 {
        let mut st = IterState { iteration: it, ..Default::default() };
        s.step(&p.observed, &mut model, &mut st).unwrap();
        obj_soft = st.record.objective.unwrap();
        if st.converged {
            break;
        }
    }
    let z = s.iterate().unwrap();
    assert!(z.rank() >= 1 && z.rank() < 15, "rank {}", z.rank());
    let v = kkt_violation(&p.observed, z, lambda);
    assert!(v < 1e-6, "optimality violated by {v} lambda");
    // softimpute-als at the same lambda, rank 6 >= the solution's rank
    let mut a = SoftImputeAlsParams {
        rank: 6,
        lambda: Some(lambda),
        path: 1,
        center: Center::None,
        tol: 1e-20,
        ..Default::default()
    }
    .check()
    .unwrap();
    let mut model = a.init(&p.observed, &mut rng::rng(2)).unwrap();
    let mut obj_als = f64::NAN;
    for it in 0..5000 {
        let mut st = IterState { iteration: it, ..Default::default() };
        a.step(&p.observed, &mut model, &mut st).unwrap();
        obj_als = st.record.objective.unwrap();
        if st.converged {
            break;
        }
    }
    assert!((obj_als - obj_soft).abs() < 1e-6 * obj_soft, "als {obj_als} vs softimpute {obj_soft}");
    let va = kkt_violation(&p.observed, a.iterate().unwrap(), lambda);
    assert!(va < 1e-3, "als optimality violated by {va} lambda");
}

#[test]
fn svt_recovers_planted_matrix() {
    // 50x50 rank 2, 60% observed (well above the ~ r n log n threshold);
    // the paper's tau = 5 n and delta = 1.2 / p, stopping at tol = 1e-4 on the
    // observed residual. The limit minimizes tau ||X||_* + 0.5 ||X||_F^2, so
    // the unobserved entries carry an O(||X||_F / tau) bias: 1e-2 suffices.
    let p = planted_completion(50, 2, 1500, 6).unwrap();
    let s = SvtParams::default().check().unwrap();
    let fit = run(s, &p.observed, 500);
    assert_eq!(fit.termination, crate::solve::Termination::Converged, "{} iterations", fit.iterations);
    let err = relative_error(&fit.model, &p.truth);
    assert!(err < 1e-2, "relative error {err} after {} iterations", fit.iterations);
}

#[test]
fn svt_default_threshold_follows_the_data_units() {
    // D_{c tau}(c Y) = c D_tau(Y): with the default tau scaled by the
    // entries' standard deviation, data times 100 gives the same iterates times 100
    let p = planted_completion(30, 2, 600, 8).unwrap();
    let (m, n) = p.observed.shape();
    let rows = p.observed.iter().map(|(i, _, _)| i as u32).collect();
    let cols = p.observed.iter().map(|(_, j, _)| j as u32).collect();
    let vals = p.observed.iter().map(|(_, _, v)| v * 100.0).collect();
    let scaled = Ratings::new(m, n, rows, cols, vals).unwrap();
    let s = || SvtParams::default().check().unwrap();
    let (a, b) = (run(s(), &p.observed, 300), run(s(), &scaled, 300));
    assert_eq!(a.iterations, b.iterations);
    let truth100 = Mat::from_fn(p.truth.nrows(), p.truth.ncols(), |i, j| 100.0 * p.truth[(i, j)]);
    let (ea, eb) = (relative_error(&a.model, &p.truth), relative_error(&b.model, &truth100));
    assert!(ea < 5e-2 && (ea - eb).abs() < 1e-4 * ea.max(1e-3), "{ea} vs {eb}");
}

#[test]
fn svt_with_a_step_too_large_stops_with_an_error_naming_delta() {
    // 11 of 100 entries on a diagonal-ish pattern: the default delta = 1.2 m n
    // / |Omega| ≈ 10.9 is far above the theory's 2 and the residual explodes
    // while every iterate stays finite; it must not end as a success
    let rows: Vec<u32> = vec![0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    let cols: Vec<u32> = vec![0, 1, 2, 3, 4, 0, 5, 6, 7, 8, 9];
    let vals: Vec<f32> = vec![5.0, 3.0, 4.0, 1.0, 2.0, 5.0, 3.0, 2.0, 4.0, 5.0, 1.0];
    let data = Ratings::new(10, 10, rows, cols, vals).unwrap();
    let paper = 1.2 * 100.0 / 11.0;
    let s = SvtParams { delta: Some(paper), ..Default::default() }.check().unwrap();
    let e = Executor::new(s, &data).max_iters(200).run().unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("svt diverged") && msg.contains("lower delta"), "{msg}");
    // within the theory's range the same data converges (or stops) normally
    let s = SvtParams { delta: Some(1.0), ..Default::default() }.check().unwrap();
    assert!(Executor::new(s, &data).max_iters(200).run().is_ok());
    // the default (that same step) starts over with smaller ones, down to
    // 1.9, and converges: every observed entry fitted to the tolerance
    let fit = Executor::new(SvtParams::default().check().unwrap(), &data).max_iters(2000).run().unwrap();
    assert_eq!(fit.termination, crate::solve::Termination::Converged, "{} iterations", fit.iterations);
    let deltas: Vec<f64> = fit.history.iter().map(|r| r.values["delta"]).collect();
    assert!((deltas[0] - paper).abs() < 1e-12 && *deltas.last().unwrap() < 2.0, "{deltas:?}");
    assert!(deltas.windows(2).all(|w| w[1] <= w[0]), "the step only shrinks: {deltas:?}");
    use crate::metrics::Predict;
    let worst = data.iter().map(|(i, j, v)| (fit.model.predict(i, j) - v as f64).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-3 * 5.0, "largest residual {worst}");
}

#[test]
fn hard_impute_fully_observed_is_eckart_young() {
    // everything observed: each step is the rank-k SVD of X itself, and the
    // warm-started randomized SVD converges to the exact truncation.
    let (m, n, k) = (20usize, 12usize, 3usize);
    let mut g = rng::rng(9);
    let q1 = crate::solve::spectral::svd::orthonormalize(Mat::from_fn(m, n, |_, _| rng::normal(&mut g)).as_ref());
    let q2 = crate::solve::spectral::svd::orthonormalize(Mat::from_fn(n, n, |_, _| rng::normal(&mut g)).as_ref());
    let d = Mat::from_fn(n, n, |i, j| if i == j { 0.6f64.powi(i as i32) } else { 0.0 });
    let a = &q1 * &d * q2.transpose();
    let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
    for i in 0..m {
        for j in 0..n {
            rows.push(i as u32);
            cols.push(j as u32);
            vals.push(a[(i, j)] as f32);
        }
    }
    let r = Ratings::new(m, n, rows, cols, vals).unwrap();
    let af = Mat::from_fn(m, n, |i, j| r.values()[i * n + j] as f64);
    let truth = crate::solve::spectral::svd::truncated(&af, k).unwrap().to_dense();
    let mut h = HardImputeParams {
        rank: k,
        center: Center::None,
        power_iters: 1,
        oversample: 2,
        tol: 1e-30,
        ..Default::default()
    }
    .check()
    .unwrap();
    let mut model = h.init(&r, &mut rng::rng(3)).unwrap();
    for it in 0..30 {
        let mut st = IterState { iteration: it, ..Default::default() };
        h.step(&r, &mut model, &mut st).unwrap();
    }
    let z = h.iterate().unwrap().to_dense();
    assert!((&z - &truth).norm_l2() < 1e-9 * truth.norm_l2(), "{}", (&z - &truth).norm_l2());
}

#[test]
fn hard_impute_warm_start_recovers_planted_matrix() {
    let p = planted_completion(30, 3, 450, 11).unwrap();
    for init in ["softimpute", "zero"] {
        let ds = Dataset::Ratings(p.observed.clone());
        let mut req = FitRequest::new("hard-impute", &ds)
            .set("rank", 3)
            .set("init", init)
            .set("center", "none")
            .set("tol", 1e-12);
        req.truth = Some(&p.truth);
        req.epochs = Some(300);
        let out = registry::fit(req).unwrap();
        let err = out.summary["rel_error"].as_f64().unwrap();
        eprintln!("{init}: {err} {:?} {}", out.termination, out.history.len());
        assert!(err < 1e-2, "{init}: relative error {err}");
    }
}

#[test]
fn hard_impute_defaults_complete_a_planted_matrix() {
    // 60x60 rank 3 with 42 % of the entries: with only the rank set, the
    // default centring (mean) must not cost the fixed-rank iterate its rank
    // (biases subtracted once stall at 0.17 here)
    let p = planted_completion(60, 3, 1500, 4).unwrap();
    let ds = Dataset::Ratings(p.observed.clone());
    let mut req = FitRequest::new("hard-impute", &ds).set("rank", 3);
    req.truth = Some(&p.truth);
    let out = registry::fit(req).unwrap();
    let err = out.summary["rel_error"].as_f64().unwrap();
    assert!(err < 0.05, "relative error {err}");
}

#[test]
fn invalid_settings_are_input_errors() {
    let p = planted_completion_rect(10, 8, 2, 40, 1).unwrap();
    let ds = Dataset::Ratings(p.observed);
    let cases: &[(&str, serde_json::Value)] = &[
        ("softimpute", json!({"lambda": -1.0})),
        ("softimpute", json!({"lambda_frac": -0.1})),
        ("softimpute", json!({"lambda": 1.0, "lambda_frac": 0.1})),
        ("softimpute", json!({"rank": 0})),
        ("softimpute", json!({"rank": 9})),
        ("softimpute", json!({"tol": 0.0})),
        ("softimpute", json!({"tol": -1.0})),
        ("softimpute", json!({"path": 0})),
        ("softimpute-als", json!({"lambda": -1.0})),
        ("softimpute-als", json!({"rank": 0})),
        ("softimpute-als", json!({"rank": 9})),
        ("softimpute-als", json!({"tol": 0.0})),
        ("svt", json!({"tau": -1.0})),
        ("svt", json!({"delta": 0.0})),
        ("svt", json!({"rank": 0})),
        ("svt", json!({"rank": 9})),
        ("svt", json!({"tol": 0.0})),
        ("hard-impute", json!({"rank": 0})),
        ("hard-impute", json!({"rank": 9})),
        ("hard-impute", json!({"tol": 0.0})),
        ("hard-impute", json!({"lambda_frac": -1.0})),
        // settings of the warm start without it
        ("hard-impute", json!({"lambda_frac": 0.1})),
        ("hard-impute", json!({"warm_iters": 5, "init": "zero"})),
        // beyond lambda_max the solution is 0; 1e308 overflowed lambda to inf
        ("softimpute", json!({"lambda_frac": 1.5})),
        ("softimpute", json!({"lambda_frac": 1e308})),
        ("softimpute-als", json!({"lambda_frac": 1e308})),
        ("hard-impute", json!({"lambda_frac": 1e308})),
    ];
    for (algo, params) in cases {
        let mut req = FitRequest::new(algo, &ds);
        req.params = params.as_object().cloned().unwrap_or_default();
        req.epochs = Some(2);
        let e = registry::fit(req).err().unwrap_or_else(|| panic!("{algo} {params}: accepted"));
        assert!(e.is_input_error(), "{algo} {params}: {e}");
    }
}

#[test]
fn checkpoint_resume_equals_straight_run_for_every_algorithm() {
    let p = planted_completion(20, 2, 200, 4).unwrap();
    let ds = Dataset::Ratings(p.observed);
    let dir = tempfile::tempdir().unwrap();
    for (algo, extra) in [
        ("softimpute", json!({"rank": 4, "path": 3, "path_iters": 2})),
        ("softimpute-als", json!({"rank": 4, "path": 3, "path_iters": 2})),
        ("svt", json!({})),
        ("hard-impute", json!({"rank": 2, "init": "softimpute", "warm_iters": 5})),
    ] {
        let ck = dir.path().join(format!("{algo}.ckpt"));
        let fit = |epochs: usize, ckpt: bool, resume: bool| {
            let mut req = FitRequest::new(algo, &ds);
            req.params = extra.as_object().cloned().unwrap_or_default();
            req.epochs = Some(epochs);
            req.seed = 3;
            req.threads = 1;
            if ckpt {
                req.checkpoint = Some((ck.clone(), 1));
                req.resume = resume;
            }
            registry::fit(req).unwrap()
        };
        let straight = fit(8, false, false);
        let _ = fit(3, true, false);
        let resumed = fit(8, true, true);
        let (FittedModel::Factor(a), FittedModel::Factor(b)) = (&straight.model, &resumed.model) else {
            panic!("{algo}: not a factor model");
        };
        assert_eq!(a.u, b.u, "{algo}");
        assert_eq!(a.v, b.v, "{algo}");
        assert_eq!(a.global_mean, b.global_mean, "{algo}");
        assert_eq!(resumed.history.len(), straight.history.len(), "{algo}");
        assert_eq!(straight.history.last().unwrap().objective, resumed.history.last().unwrap().objective, "{algo}");
    }
}

/// A `lambda` given on resume takes effect (it used to be ignored while the
/// summary echoed it): the resumed run ends at the new `lambda`, at the
/// same solution as a straight run at it (the problem is convex and both
/// runs converge, so the two solutions agree to the tolerance's order).
#[test]
fn a_lambda_given_on_resume_takes_effect() {
    let p = planted_completion(20, 2, 200, 4).unwrap();
    let ds = Dataset::Ratings(p.observed);
    let dir = tempfile::tempdir().unwrap();
    for algo in ["softimpute", "softimpute-als"] {
        let ck = dir.path().join(format!("{algo}.ckpt"));
        let fit = |lambda: f64, epochs: usize, ckpt: Option<bool>| {
            let mut req = FitRequest::new(algo, &ds).set("rank", 6).set("lambda", lambda).set("tol", 1e-10);
            req.epochs = Some(epochs);
            req.seed = 3;
            if let Some(resume) = ckpt {
                req.checkpoint = Some((ck.clone(), 1));
                req.resume = resume;
            }
            registry::fit(req).unwrap()
        };
        let straight = fit(2.0, 3000, None);
        let _ = fit(8.0, 3, Some(false));
        let resumed = fit(2.0, 3000, Some(true));
        for f in [&straight, &resumed] {
            assert_eq!(f.termination, crate::solve::Termination::Converged, "{algo}");
            assert_eq!(f.history.last().unwrap().values["lambda"], 2.0, "{algo}");
        }
        let (FittedModel::Factor(a), FittedModel::Factor(b)) = (&straight.model, &resumed.model) else {
            panic!("{algo}: not a factor model");
        };
        use crate::metrics::Predict;
        let db = Mat::from_fn(20, 20, |i, j| b.predict(i, j));
        let diff = relative_error(a, &db);
        assert!(diff < 1e-4, "{algo}: resumed at the new lambda differs from a straight run by {diff:e}");
    }
}
