//! Tests of `nuclear-min` against independent truths: a weak-duality
//! bracket on fully observed data, planted exact recovery, the KKT
//! conditions, and an ADMM reference (dense SVD per iteration) on a tiny
//! problem.

use super::*;
use crate::data::IdMap;
use crate::data::synth::planted_completion;
use crate::metrics::relative_error;
use crate::solve::Executor;

fn ratings(m: usize, n: usize, entries: &[(usize, usize, f64)]) -> Ratings {
    let rows = entries.iter().map(|e| e.0 as u32).collect();
    let cols = entries.iter().map(|e| e.1 as u32).collect();
    let vals = entries.iter().map(|e| e.2 as f32).collect();
    Ratings::with_ids(rows, cols, vals, IdMap::identity(m), IdMap::identity(n)).unwrap()
}

/// A fixed 6x5 matrix of rank 2 (values exactly representable in f32).
fn a65() -> Mat<f64> {
    let u = [[1.0, 0.5], [-0.5, 1.0], [0.25, -1.0], [1.5, 0.25], [-1.0, -0.5], [0.5, 0.75]];
    let v = [[1.0, -0.25], [0.5, 1.0], [-0.75, 0.5], [0.25, 0.25], [1.0, -1.0]];
    Mat::from_fn(6, 5, |i, j| u[i][0] * v[j][0] + u[i][1] * v[j][1])
}

fn nuc(x: &Mat<f64>) -> f64 {
    thin_svd(x.as_ref()).unwrap().s.iter().sum()
}

#[test]
fn fully_observed_is_bracketed_by_weak_duality() {
    // min ||X||_* s.t. |X - A|_max <= eps: A is feasible (upper bound
    // ||A||_*), and Z = U V^T of A (||Z||_op = 1) proves the lower bound
    // ||A||_* - eps ||U V^T||_1.
    let a = a65();
    let mut e = vec![];
    for i in 0..6 {
        for j in 0..5 {
            e.push((i, j, a[(i, j)]));
        }
    }
    let eps = 1e-2;
    let res = nuclear_norm_min(&ratings(6, 5, &e), NuclearMin { eps, ..Default::default() }, 200).unwrap();
    let svd = thin_svd(a.as_ref()).unwrap();
    let uvt = mul(svd.u.subcols(0, 2), svd.v.subcols(0, 2).transpose());
    let l1: f64 = (0..6).flat_map(|i| (0..5).map(move |j| (i, j))).map(|(i, j)| uvt[(i, j)].abs()).sum();
    let (upper, lower) = (nuc(&a), nuc(&a) - eps * l1);
    let got = nuc(&res.x);
    assert!(res.converged, "{:?}", res.certificate);
    assert!(got <= upper * (1.0 + 1e-6) && got >= lower * (1.0 - 1e-6), "{lower} <= {got} <= {upper}");
    // the certificate's own numbers agree with the dense SVD
    assert!((res.certificate.nuclear_norm - got).abs() <= 1e-9 * got);
    assert!(res.certificate.violation <= 1e-6 * 3.0);
}

#[test]
fn rank_one_planted_is_recovered_exactly() {
    // 12 x 10 rank 1 with 70 of 120 entries (every row and column seen):
    // far above the 21 degrees of freedom, so the minimizer is the truth.
    let u: Vec<f64> = (0..12).map(|i| 1.0 + 0.25 * (i % 5) as f64 - 0.5 * (i % 2) as f64).collect();
    let v: Vec<f64> = (0..10).map(|j| 0.5 + 0.25 * (j % 3) as f64 * if j % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let w = Mat::from_fn(12, 10, |i, j| u[i] * v[j]);
    let mut g = rng::rng(3);
    let mut e = vec![];
    for i in 0..12 {
        for j in 0..10 {
            if (i + j) % 3 != 0 || rng::uniform(&mut g) < 0.2 {
                e.push((i, j, w[(i, j)]));
            }
        }
    }
    assert!(e.len() >= 70, "{}", e.len());
    let res =
        nuclear_norm_min(&ratings(12, 10, &e), NuclearMin { eps: 1e-7, tol: 1e-7, ..Default::default() }, 300).unwrap();
    let err = relative_error(&DenseModel::new(res.x.clone()), &w);
    assert!(res.converged, "{:?}", res.certificate);
    assert!(err < 1e-5, "relative error {err}");
    assert_eq!(res.certificate.rank, 1);
}

#[test]
fn solution_satisfies_kkt() {
    let p = planted_completion(20, 2, 200, 4).unwrap();
    let eps = 1e-2;
    let tol = 1e-7;
    let res = nuclear_norm_min(&p.observed, NuclearMin { eps, tol, ..Default::default() }, 300).unwrap();
    assert!(res.converged, "{:?}", res.certificate);
    let x = &res.x;
    // dual feasibility: Z supported on Omega with ||Z||_op <= 1
    let mut zd = Mat::<f64>::zeros(20, 20);
    for (k, (i, j, _)) in p.observed.iter().enumerate() {
        zd[(i, j)] = res.z[k];
    }
    let zn = thin_svd(zd.as_ref()).unwrap().s[0];
    assert!(zn <= 1.0 + 1e-9, "||Z||_op = {zn}");
    // stationarity: <Z, X> = ||X||_*
    let zx: f64 = p.observed.iter().enumerate().map(|(k, (i, j, _))| res.z[k] * x[(i, j)]).sum();
    let nx = nuc(x);
    assert!((zx - nx).abs() <= 1e-5 * nx, "<Z, X> = {zx}, ||X||_* = {nx}");
    // complementary slackness: z_e != 0 only on the box's boundary, with
    // X_e - a_e = -eps sign(z_e)
    let zmax = res.z.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    let mut active = 0;
    for (k, (i, j, a)) in p.observed.iter().enumerate() {
        let c = x[(i, j)] - a as f64;
        assert!(c.abs() <= eps + 1e-6, "violation at ({i}, {j}): {c}");
        if res.z[k].abs() > 1e-3 * zmax {
            active += 1;
            assert!((c + eps * res.z[k].signum()).abs() <= 1e-4 * eps, "({i}, {j}): z {} c {c}", res.z[k]);
        }
    }
    assert!(active > 0);
}

/// ADMM (Boyd et al. 2011) on `min ||X||_* + I_box(Y_Omega)`, `X = Y`:
/// `X <- SVT(Y - U, 1 / beta)`, `Y <- X + U` projected onto the box on
/// Omega, `U <- U + X - Y`. Slow but exact in the limit.
fn admm(m: usize, n: usize, e: &[(usize, usize, f64)], eps: f64, iters: usize) -> Mat<f64> {
    let beta = 1.0;
    let mut y = Mat::<f64>::zeros(m, n);
    let mut u = Mat::<f64>::zeros(m, n);
    for _ in 0..iters {
        let d = thin_svd((&y - &u).as_ref()).unwrap();
        let s: Vec<f64> = d.s.iter().map(|v| (v - 1.0 / beta).max(0.0)).collect();
        let x = Mat::from_fn(m, n, |i, j| (0..s.len()).map(|t| d.u[(i, t)] * s[t] * d.v[(j, t)]).sum::<f64>());
        y = &x + &u;
        for &(i, j, a) in e {
            y[(i, j)] = y[(i, j)].clamp(a - eps, a + eps);
        }
        u = &u + &x - &y;
    }
    y
}

#[test]
fn agrees_with_an_admm_reference() {
    let a = a65();
    let mut e = vec![];
    for i in 0..6 {
        for j in 0..5 {
            if (2 * i + j) % 3 != 0 {
                e.push((i, j, a[(i, j)] as f32 as f64));
            }
        }
    }
    let eps = 1e-3;
    let reference = nuc(&admm(6, 5, &e, eps, 20000));
    // both inner solvers: preconditioned (default) and plain L-BFGS
    for precondition in [true, false] {
        let params = NuclearMin { eps, tol: 1e-8, precondition, ..Default::default() };
        let res = nuclear_norm_min(&ratings(6, 5, &e), params, 300).unwrap();
        assert!(res.converged, "{precondition}: {:?}", res.certificate);
        let got = nuc(&res.x);
        assert!((got - reference).abs() <= 1e-6 * reference, "{precondition}: ours {got} vs ADMM {reference}");
        // and the certified bracket contains the reference
        assert!(res.certificate.dual <= reference * (1.0 + 1e-9));
    }
}

#[test]
fn recovers_planted_low_rank_and_satisfies_constraints() {
    // 40x40 rank 2 with 700 of 1600 entries: well above the information
    // limit, so the minimizer is the truth up to eps.
    let p = planted_completion(40, 2, 700, 5).unwrap();
    let tol = 1e-5;
    let res = nuclear_norm_min(&p.observed, NuclearMin { tol, ..Default::default() }, 500).unwrap();
    let c = &res.certificate;
    let err = relative_error(&DenseModel::new(res.x.clone()), &p.truth);
    assert!(res.converged, "{c:?}");
    assert!(c.violation <= tol * 4.0);
    assert!(c.rel_gap.abs() <= tol);
    // the box lets each entry (RMS 1) move by eps = 1e-3
    assert!(err < 5e-3, "relative error {err}");
    // the truth is feasible, so the optimum is no larger than ||W||_*
    assert!(c.nuclear_norm <= nuc(&p.truth) * (1.0 + tol));
    // two components carry the norm; the rest is what the box lets go
    let s = thin_svd(res.x.as_ref()).unwrap().s;
    assert!(s[2..].iter().sum::<f64>() <= 1e-3 * c.nuclear_norm, "{s:?}");
}

#[test]
fn exact_recovery_is_certified_in_one_step_from_the_interpolant() {
    // 50x50 rank 3 with 1500 of 2500 entries and a box within the tolerance:
    // the first step interpolates at the rank of the starting spectrum's gap
    // and certifies it (no augmented-Lagrangian iterations)
    let p = planted_completion(50, 3, 1500, 7).unwrap();
    let tol = 1e-6;
    let params = NuclearMin { eps: 1e-7, tol, ..Default::default() };
    let res = nuclear_norm_min(&p.observed, params.clone(), 500).unwrap();
    let c = &res.certificate;
    assert!(res.converged && res.iterations == 1, "{} steps, {c:?}", res.iterations);
    assert!(c.rel_gap.abs() <= tol && c.violation <= tol && c.rank == 3, "{c:?}");
    // the dual certificate is feasible and proves the bound on its own
    let zd = Mat::from_fn(50, 50, |i, j| {
        p.observed.iter().position(|(r, cc, _)| r == i && cc == j).map_or(0.0, |e| res.z[e])
    });
    let zn = thin_svd(zd.as_ref()).unwrap().s[0];
    assert!(zn <= 1.0 + 1e-12, "||Z|| = {zn}");
    let bound: f64 = p.observed.iter().zip(&res.z).map(|((_, _, a), z)| z * a as f64 - 1e-7 * z.abs()).sum();
    assert!((bound - c.dual).abs() <= 1e-9 * c.dual, "{bound} vs {}", c.dual);
    assert!(nuc(&res.x) <= bound * (1.0 + tol), "{} vs {bound}", nuc(&res.x));
    // the truth, to the precision of the f32 data
    let err = relative_error(&DenseModel::new(res.x.clone()), &p.truth);
    assert!(err < 1e-6, "relative error {err}");
    // the full run, for comparison: the same optimum to the tolerance
    let mut solver = params.check().unwrap();
    let mut model = solver.init(&p.observed, &mut rng::rng(0)).unwrap();
    let mut state = IterState { iteration: 1, ..Default::default() };
    for it in 1..500 {
        state = IterState { iteration: it, ..Default::default() };
        solver.step(&p.observed, &mut model, &mut state).unwrap();
        if state.converged {
            break;
        }
    }
    assert!(state.converged);
    let slow = solver.last_certificate(&state).unwrap();
    assert!((slow.nuclear_norm - c.nuclear_norm).abs() <= 2.0 * tol * c.nuclear_norm, "{slow:?} vs {c:?}");
}

#[test]
fn invalid_params() {
    let bad = |p: NuclearMin| matches!(p.check(), Err(Error::InvalidInput(_)));
    assert!(bad(NuclearMin { eps: 0.0, ..Default::default() }));
    assert!(bad(NuclearMin { eps: -1.0, ..Default::default() }));
    assert!(bad(NuclearMin { eps: f64::NAN, ..Default::default() }));
    assert!(bad(NuclearMin { tol: 0.0, ..Default::default() }));
    assert!(bad(NuclearMin { tol: 1.0, ..Default::default() }));
    assert!(bad(NuclearMin { rho: 0.0, ..Default::default() }));
    let p = planted_completion(10, 2, 50, 1).unwrap();
    let mut s = NuclearMin { rank: 11, ..Default::default() }.check().unwrap();
    assert!(matches!(s.init(&p.observed, &mut rng::rng(0)), Err(Error::InvalidInput(_))));
    let empty = ratings(3, 3, &[]);
    let mut s = NuclearMin::default().check().unwrap();
    assert!(matches!(s.init(&empty, &mut rng::rng(0)), Err(Error::InvalidInput(_))));
    assert!(nuclear_norm_min(&empty, NuclearMin::default(), 5).is_err());
}

#[test]
fn resume_matches_a_straight_run() {
    let p = planted_completion(15, 2, 120, 2).unwrap();
    let mk = || NuclearMin::default().check().unwrap();
    let straight = Executor::new(mk(), &p.observed).max_iters(6).run().unwrap();
    let mut a = mk();
    let mut model = a.init(&p.observed, &mut rng::rng(0)).unwrap();
    for it in 0..3 {
        a.step(&p.observed, &mut model, &mut IterState { iteration: it, ..Default::default() }).unwrap();
    }
    let bytes = a.save_state().unwrap();
    let mut b = mk();
    let mut model_b = b.init(&p.observed, &mut rng::rng(0)).unwrap();
    b.load_state(&bytes).unwrap();
    model_b.x = model.x.clone();
    for it in 3..6 {
        b.step(&p.observed, &mut model_b, &mut IterState { iteration: it, ..Default::default() }).unwrap();
    }
    let _ = straight;
    let mut c = mk();
    let mut model_c = c.init(&p.observed, &mut rng::rng(0)).unwrap();
    for it in 0..6 {
        c.step(&p.observed, &mut model_c, &mut IterState { iteration: it, ..Default::default() }).unwrap();
    }
    assert_eq!(model_b.x, model_c.x);
}

#[test]
#[ignore = "timing experiment: prints the convergence history"]
fn experiment_100() {
    {
        // the conformance problem
        let p = planted_completion(30, 3, 450, 11).unwrap();
        let fit =
            Executor::new(NuclearMin::default().check().unwrap(), &p.observed).max_iters(300).seed(5).run().unwrap();
        let h = fit.history.last().unwrap();
        eprintln!(
            "conformance: {:?} iters {} err {:.4e} {:?}",
            fit.termination,
            fit.iterations,
            relative_error(&fit.model, &p.truth),
            h.values
        );
    }
    let which: Vec<usize> = std::env::var("NM_OBS")
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(vec![700, 2000, 5000]);
    for (n, k, obs) in [(40, 2, 700), (100, 5, 2000), (100, 5, 5000)] {
        if !which.contains(&obs) {
            continue;
        }
        let p = planted_completion(n, k, obs, 0).unwrap();
        for rep in 0..2 {
            let t = std::time::Instant::now();
            let solver = NuclearMin::default().check().unwrap();
            let fit = Executor::new(solver, &p.observed).max_iters(60).run().unwrap();
            let secs = t.elapsed().as_secs_f64();
            if rep == 0 {
                for h in fit.history.iter() {
                    let g = |k: &str| h.values.get(k).copied().unwrap_or(f64::NAN);
                    eprintln!(
                        "r {:>3} rho {:>9.3e} inner {:>4} viol {:>9.2e} gap {:>9.2e} dn {:>10.7} out {:>8.5} nuc {:.9} t {:.4}",
                        g("factor_rank"),
                        g("rho"),
                        g("inner_iters"),
                        g("violation"),
                        g("rel_gap"),
                        g("dual_norm"),
                        g("outside_norm"),
                        g("nuclear_norm"),
                        h.elapsed
                    );
                }
            }
            let err = relative_error(&fit.model, &p.truth);
            eprintln!("obs {obs}: {:?} iters {} err {err:.4e} {secs:.4}s", fit.termination, fit.iterations);
        }
    }
}

#[test]
fn gram_operator_norm_matches_the_largest_singular_value() {
    let p = Pattern::new(&planted_completion(40, 3, 600, 5).unwrap().observed);
    let g = &mut rng::rng(3);
    let z: Vec<f64> = (0..p.a.len()).map(|_| rng::normal(g)).collect();
    let ours = dense_op_norm(&p, &z).unwrap();
    let sv = p.dense(&z).singular_values().unwrap()[0];
    assert!((ours - sv).abs() < 1e-12 * sv, "{ours} vs {sv}");
    assert_eq!(dense_op_norm(&p, &vec![0.0; p.a.len()]).unwrap(), 0.0);
    // the other branch (more rows than columns: Z^T Z)
    let tall = ratings(7, 4, &[(0, 0, 1.0), (3, 1, -2.0), (6, 3, 0.5), (5, 0, 4.0), (2, 2, 1.5), (1, 3, -1.0)]);
    let p = Pattern::new(&tall);
    let z: Vec<f64> = (0..p.a.len()).map(|e| 1.0 + e as f64).collect();
    let sv = p.dense(&z).singular_values().unwrap()[0];
    assert!((dense_op_norm(&p, &z).unwrap() - sv).abs() < 1e-12 * sv);
    // NaN is an error, not a norm of 0
    assert!(dense_op_norm(&p, &[f64::NAN; 6]).is_err());
}

#[test]
fn tangent_product_unrolled_agrees_with_the_generic_loop() {
    let p = Pattern::new(&planted_completion(30, 3, 300, 9).unwrap().observed);
    let g = &mut rng::rng(4);
    let z: Vec<f64> = (0..p.a.len()).map(|_| rng::normal(g)).collect();
    let act: Vec<bool> = (0..p.a.len()).map(|e| e % 7 != 0).collect();
    for k in [1, 3, 5, 8] {
        let u = orthonormalize(Mat::from_fn(p.m, k, |_, _| rng::normal(g)).as_ref());
        let v = orthonormalize(Mat::from_fn(p.n, k, |_, _| rng::normal(g)).as_ref());
        let mut generic = vec![0.0; z.len()];
        tangent_product(k, &p, &act, &z, &mut generic, &mut TangentSpace::new(&u, &v));
        // the independent truth: P_T(M) = UU^T M + M VV^T - UU^T M VV^T densely
        let mm = p.dense(&z.iter().zip(&act).map(|(v, &a)| if a { *v } else { 0.0 }).collect::<Vec<_>>());
        let (uut, vvt) = (mul(u.as_ref(), u.transpose()), mul(v.as_ref(), v.transpose()));
        let pt = mul(uut.as_ref(), mm.as_ref()) + mul(mm.as_ref(), vvt.as_ref())
            - mul(mul(uut.as_ref(), mm.as_ref()).as_ref(), vvt.as_ref());
        for e in 0..z.len() {
            let want = if act[e] { pt[(p.rows[e] as usize, p.cols[e] as usize)] } else { 0.0 };
            assert!((generic[e] - want).abs() < 1e-12, "k={k} e={e}: {} vs {want}", generic[e]);
        }
        let mut unrolled = vec![0.0; z.len()];
        match k {
            1 => tangent_product_k::<1>(&p, &act, &z, &mut unrolled, &mut TangentSpace::new(&u, &v)),
            3 => tangent_product_k::<3>(&p, &act, &z, &mut unrolled, &mut TangentSpace::new(&u, &v)),
            5 => tangent_product_k::<5>(&p, &act, &z, &mut unrolled, &mut TangentSpace::new(&u, &v)),
            _ => tangent_product_k::<8>(&p, &act, &z, &mut unrolled, &mut TangentSpace::new(&u, &v)),
        }
        assert_eq!(generic, unrolled, "k={k}");
    }
}

/// A small augmented Lagrangian with entries on both sides of the box and
/// inside it, at a random point.
fn small_al_problem() -> (Pattern, usize, Vec<f64>, Vec<f64>) {
    let p = Pattern::new(&planted_completion(12, 2, 90, 3).unwrap().observed);
    let r = 3;
    let g = &mut rng::rng(11);
    let x: Vec<f64> = (0..(p.m + p.n) * r).map(|_| 0.5 * rng::normal(g)).collect();
    let y: Vec<f64> = (0..p.a.len()).map(|_| 0.3 * rng::normal(g)).collect();
    (p, r, x, y)
}

/// The instruction sets this CPU can run.
fn isas() -> Vec<inner::Isa> {
    let mut v = vec![inner::Isa::Portable];
    if crate::simd::has_avx2_fma() {
        v.push(inner::Isa::Avx2);
    }
    v
}

#[test]
fn augmented_lagrangian_gradient_matches_finite_differences() {
    let (p, r, x, y) = small_al_problem();
    let (rho, eps) = (5.0, 0.05);
    for isa in isas() {
        let mut al = Al::new(&p, r, &y, rho, eps);
        let mut g = vec![0.0; x.len()];
        let f = al.eval_on(isa, &x, &mut g);
        // the pieces: the box holds some entries and not others
        let inside = al.ge.iter().filter(|v| **v == 0.0).count();
        assert!(inside > 0 && inside < p.a.len(), "{inside} of {}", p.a.len());
        // the value from its definition
        let mut pen = 0.0;
        for e in 0..p.a.len() {
            let (i, j) = (p.rows[e] as usize, p.cols[e] as usize);
            let v: f64 = (0..r).map(|t| x[i * r + t] * x[(p.m + j) * r + t]).sum();
            let w = v - p.a[e] + y[e] / rho;
            pen += (w - w.clamp(-eps, eps)).powi(2);
        }
        let want = 0.5 * x.iter().map(|v| v * v).sum::<f64>() + 0.5 * rho * pen;
        assert!((f - want).abs() <= 1e-12 * want, "{isa:?}: {f} vs {want}");
        // central differences: phi is piecewise quadratic with a continuous
        // gradient, so the O(h^2) error is zero on each piece and at most
        // O(h rho |x|^2) across a box edge
        let h = 1e-6;
        let mut scratch = vec![0.0; x.len()];
        for k in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += h;
            xm[k] -= h;
            let fd = (al.eval_on(isa, &xp, &mut scratch) - al.eval_on(isa, &xm, &mut scratch)) / (2.0 * h);
            assert!((fd - g[k]).abs() <= 1e-6 * g[k].abs().max(1.0), "{isa:?} coordinate {k}: {fd} vs {}", g[k]);
        }
    }
}

#[test]
fn instruction_sets_agree() {
    let (p, r, x0, y) = small_al_problem();
    let (rho, eps) = (5.0, 0.05);
    let mut out = vec![];
    for isa in isas() {
        let mut al = Al::new(&p, r, &y, rho, eps);
        let mut g = vec![0.0; x0.len()];
        let f = al.eval_on(isa, &x0, &mut g);
        let mut x = x0.clone();
        let mut gamma = 1.0;
        let mut pre = inner::Precond::new(&p, r, &x, rho);
        let lim = inner::Limits { max_iter: 2000, memory: 10, gtol: 1e-10 };
        let iters = inner::minimize(isa, &mut al, pre.as_mut(), &mut x, lim, &mut gamma);
        assert!(iters < 2000, "{isa:?}: not converged");
        let fmin = al.eval_on(isa, &x, &mut vec![0.0; x.len()]);
        out.push((isa, f, g, fmin));
    }
    let (_, f0, g0, m0) = &out[0];
    for (isa, f, g, m) in &out[1..] {
        // the same sums up to rounding (fused multiply-adds, other lanes)
        assert!((f - f0).abs() <= 1e-13 * f0, "{isa:?}: {f} vs {f0}");
        for (a, b) in g.iter().zip(g0) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{isa:?}: {a} vs {b}");
        }
        // and the same minimum
        assert!((m - m0).abs() <= 1e-9 * m0, "{isa:?}: {m} vs {m0}");
    }
}

#[test]
fn preconditioner_inverts_the_scaled_metric() {
    let (p, r, x, _) = small_al_problem();
    let rho = 7.0;
    let mut pre = inner::Precond::new(&p, r, &x, rho).unwrap();
    let g = &mut rng::rng(5);
    let d0: Vec<f64> = (0..x.len()).map(|_| rng::normal(g)).collect();
    let mut d = d0.clone();
    pre.apply(&mut d);
    // multiply back by I + rho p F^T F (F = R for the L rows, L for the R rows)
    let c = rho * p.a.len() as f64 / (p.m * p.n) as f64;
    let (l, rr) = x.split_at(p.m * r);
    let gram = |f: &[f64], a: usize, b: usize| (0..f.len() / r).map(|k| f[k * r + a] * f[k * r + b]).sum::<f64>();
    for (part, rows, f, off) in [(0, p.m, rr, 0), (1, p.n, l, p.m * r)] {
        for i in 0..rows {
            for a in 0..r {
                let back: f64 =
                    d[off + i * r + a] + c * (0..r).map(|b| gram(f, a, b) * d[off + i * r + b]).sum::<f64>();
                let want = d0[off + i * r + a];
                assert!((back - want).abs() <= 1e-10 * want.abs().max(1.0), "part {part} row {i}: {back} vs {want}");
            }
        }
    }
    // non-finite factors: no preconditioner (plain L-BFGS), not a panic
    let mut bad = x.clone();
    bad[0] = f64::NAN;
    assert!(inner::Precond::new(&p, r, &bad, rho).is_none());
}

#[test]
fn preconditioned_and_plain_lbfgs_reach_the_same_minimum() {
    let (p, r, x0, y) = small_al_problem();
    let (rho, eps) = (50.0, 0.01);
    let mut mins = vec![];
    for precondition in [false, true] {
        let mut al = Al::new(&p, r, &y, rho, eps);
        let mut x = x0.clone();
        let mut pre = if precondition { inner::Precond::new(&p, r, &x, rho) } else { None };
        let mut gamma = 1.0;
        let lim = inner::Limits { max_iter: 20000, memory: 10, gtol: 1e-7 };
        let iters = inner::minimize(inner::Isa::detect(), &mut al, pre.as_mut(), &mut x, lim, &mut gamma);
        let mut g = vec![0.0; x.len()];
        let f = al.eval(&x, &mut g);
        let gn = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        // stationary to the rounding of phi (f ~ 10, |x| ~ 5)
        assert!(gn <= 1e-6, "precondition {precondition}: |g| = {gn} after {iters}");
        mins.push((f, iters));
    }
    // phi is not convex in the factors, but from the same start both find
    // the same local minimum value here
    assert!((mins[0].0 - mins[1].0).abs() <= 1e-9 * mins[0].0, "{mins:?}");
}
