//! The generic drivers of seed 000, in Rust: projected gradient descent with
//! a projection hook, conditional gradient (Frank-Wolfe) with a linear
//! optimization oracle, and random search with a line search.
//!
//! They work on any [`Point`] (a `Vec<f64>` or a dense `faer::Mat<f64>`) and
//! return the iterates like the notebook does: all of them, or only the last
//! `keep` (`None` or `Some(0)` keeps all, as the notebook's falsy
//! `num_to_keep`).
//!
//! ```
//! use lowrank::optim::drivers::gradient_descent;
//! use lowrank::optim::projection;
//!
//! // minimize 0.5 ||x - c||^2 over x >= 0 with step 0.5
//! let c = vec![1.0, -2.0];
//! let xs = gradient_descent(
//!     vec![0.0, 0.0],
//!     vec![0.5; 60],
//!     |x: &Vec<f64>| x.iter().zip(&c).map(|(a, b)| a - b).collect(),
//!     |x: &mut Vec<f64>| projection::nonneg(x),
//!     Some(1),
//! );
//! assert!((xs[0][0] - 1.0).abs() < 1e-12 && xs[0][1] == 0.0);
//! ```

use std::collections::VecDeque;

use faer::Mat;

use crate::rng::{self, Rng};

/// A point of a vector space the drivers can move: `self += a x`.
pub trait Point: Clone {
    /// `self += a * x`.
    fn axpy(&mut self, a: f64, x: &Self);
}

impl Point for Vec<f64> {
    fn axpy(&mut self, a: f64, x: &Self) {
        assert_eq!(self.len(), x.len(), "points of different lengths");
        for (s, &v) in self.iter_mut().zip(x) {
            *s += a * v;
        }
    }
}

impl Point for Mat<f64> {
    fn axpy(&mut self, a: f64, x: &Self) {
        assert_eq!((self.nrows(), self.ncols()), (x.nrows(), x.ncols()), "matrices of different shapes");
        faer::zip!(self.as_mut(), x.as_ref()).for_each(|faer::unzip!(s, v)| *s += a * *v);
    }
}

/// The projection hook that does nothing (unconstrained descent).
pub fn no_projection<P>(_: &mut P) {}

fn push_keep<P>(xs: &mut VecDeque<P>, x: P, keep: Option<usize>) {
    xs.push_back(x);
    if let Some(k) = keep.filter(|&k| k > 0) {
        while xs.len() > k {
            xs.pop_front();
        }
    }
}

/// Projected gradient descent (seed 000's `gradient_descent`): for each step
/// size `s` in `steps`, `x <- proj(x - s grad(x))`. Returns the iterates,
/// starting with `init` (the last `keep` of them when `keep` is a positive
/// number).
pub fn gradient_descent<P: Point>(
    init: P,
    steps: impl IntoIterator<Item = f64>,
    mut grad: impl FnMut(&P) -> P,
    mut proj: impl FnMut(&mut P),
    keep: Option<usize>,
) -> Vec<P> {
    let mut xs = VecDeque::new();
    push_keep(&mut xs, init, keep);
    for step in steps {
        let x = xs.back().expect("at least one iterate");
        let g = grad(x);
        let mut y = x.clone();
        y.axpy(-step, &g);
        proj(&mut y);
        push_keep(&mut xs, y, keep);
    }
    xs.into()
}

/// Conditional gradient / Frank-Wolfe (seed 000's `conditional_gradient`):
/// for each step size `s`, `x <- x + s (oracle(x) - x)`, where `oracle(x)`
/// solves the linear problem `argmin_{y in C} <grad f(x), y>`. Returns the
/// iterates as [`gradient_descent`] does.
pub fn conditional_gradient<P: Point>(
    init: P,
    steps: impl IntoIterator<Item = f64>,
    mut oracle: impl FnMut(&P) -> P,
    keep: Option<usize>,
) -> Vec<P> {
    let mut xs = VecDeque::new();
    push_keep(&mut xs, init, keep);
    for step in steps {
        let x = xs.back().expect("at least one iterate");
        let s = oracle(x);
        let mut y = x.clone();
        y.axpy(step, &s);
        y.axpy(-step, x);
        push_keep(&mut xs, y, keep);
    }
    xs.into()
}

/// The classic Frank-Wolfe step sizes `2 / (t + 2)`, `t = 0, 1, ...`.
pub fn frank_wolfe_steps(n: usize) -> Vec<f64> {
    (0..n).map(|t| 2.0 / (t as f64 + 2.0)).collect()
}

/// Random search (seed 000's `random_search` with its default line search):
/// each step draws a direction `d` uniformly on the unit sphere (a normalized
/// Gaussian), minimizes `eta -> oracle(x + eta d)` over `[-1, 1]` by
/// golden-section search (tolerance 1e-5), and moves to `x + eta d`. Step `t`
/// draws from [`rng::stream`]`(seed, t)`, so the run is reproducible.
pub fn random_search(oracle: impl FnMut(&[f64]) -> f64, init: Vec<f64>, num_steps: usize, seed: u64) -> Vec<Vec<f64>> {
    random_search_with(oracle, init, num_steps, seed, |phi, a, b| {
        super::line_search::gss(phi, a, b, 1e-5).unwrap_or(0.0)
    })
}

/// [`random_search`] with any line search `(phi, a, b) -> eta` over `[a, b] =
/// [-1, 1]`. Like the notebook, the step is taken as returned (a line search
/// that cannot improve should return 0).
pub fn random_search_with(
    mut oracle: impl FnMut(&[f64]) -> f64,
    init: Vec<f64>,
    num_steps: usize,
    seed: u64,
    mut line_search: impl FnMut(&mut dyn FnMut(f64) -> f64, f64, f64) -> f64,
) -> Vec<Vec<f64>> {
    let n = init.len();
    let mut iterates = vec![init];
    let mut trial = vec![0.0; n];
    for t in 0..num_steps {
        let mut g: Rng = rng::stream(seed, t as u64);
        let mut d: Vec<f64> = (0..n).map(|_| rng::normal(&mut g)).collect();
        let norm = d.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            d.iter_mut().for_each(|v| *v /= norm);
        }
        let x = iterates.last().expect("at least one iterate").clone();
        let mut phi = |eta: f64| {
            for i in 0..n {
                trial[i] = x[i] + eta * d[i];
            }
            oracle(&trial)
        };
        let eta = line_search(&mut phi, -1.0, 1.0);
        let mut y = x;
        y.axpy(eta, &d);
        iterates.push(y);
    }
    iterates
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::projection;

    #[test]
    fn gradient_descent_closed_form() {
        // f = 0.5 ||x - c||^2: x_t - c = (1 - s)^t (x_0 - c) exactly
        let c = vec![3.0, -1.0, 0.5];
        let grad = |x: &Vec<f64>| x.iter().zip(&c).map(|(a, b)| a - b).collect::<Vec<f64>>();
        let xs = gradient_descent(vec![0.0; 3], vec![0.25; 10], grad, no_projection, None);
        assert_eq!(xs.len(), 11);
        for (t, x) in xs.iter().enumerate() {
            for i in 0..3 {
                let expect = c[i] - 0.75f64.powi(t as i32) * c[i];
                assert!((x[i] - expect).abs() < 1e-14);
            }
        }
        // keep the last 2; Some(0) keeps all like the notebook's falsy value
        let xs2 = gradient_descent(vec![0.0; 3], vec![0.25; 10], grad, no_projection, Some(2));
        assert_eq!(xs2, xs[9..].to_vec());
        assert_eq!(gradient_descent(vec![0.0; 3], vec![0.25; 10], grad, no_projection, Some(0)).len(), 11);
        // projected onto x >= 0 the minimizer is max(c, 0)
        let xs = gradient_descent(vec![0.0; 3], vec![0.5; 60], grad, |x: &mut Vec<f64>| projection::nonneg(x), Some(1));
        for i in 0..3 {
            assert!((xs[0][i] - c[i].max(0.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn projected_gradient_on_the_nuclear_ball() {
        // f = 0.5 ||X - A||_F^2 with step 1 lands on the projection of A in one
        // step, and stays there (a fixed point of projected GD)
        let a = faer::mat![[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]];
        let grad = |x: &Mat<f64>| x - &a;
        let proj = |x: &mut Mat<f64>| *x = projection::nuclear_ball(x.as_ref(), 1.0).unwrap();
        let xs = gradient_descent(Mat::<f64>::zeros(3, 3), vec![1.0; 3], grad, proj, None);
        let p = projection::nuclear_ball(a.as_ref(), 1.0).unwrap();
        for x in &xs[1..] {
            assert!((x - &p).norm_l2() < 1e-10);
        }
        let s = xs[3].singular_values().unwrap();
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-10);
    }

    #[test]
    fn frank_wolfe_on_the_simplex_matches_the_projection() {
        // min ||x - c||^2 over the unit simplex; the oracle returns the vertex
        // of the smallest gradient coordinate. Frank-Wolfe converges at rate
        // O(1/t): after 4000 steps the error is well under 1e-2.
        let c = vec![0.6, 0.5, -0.2, 0.1];
        let oracle = |x: &Vec<f64>| {
            let g: Vec<f64> = x.iter().zip(&c).map(|(a, b)| 2.0 * (a - b)).collect();
            let i = (0..4).min_by(|&i, &j| g[i].total_cmp(&g[j])).unwrap();
            let mut v = vec![0.0; 4];
            v[i] = 1.0;
            v
        };
        let xs = conditional_gradient(vec![0.25; 4], frank_wolfe_steps(4000), oracle, Some(1));
        let mut p = c.clone();
        projection::simplex(&mut p, 1.0).unwrap();
        for i in 0..4 {
            assert!((xs[0][i] - p[i]).abs() < 1e-2, "{:?} vs {p:?}", xs[0]);
        }
        assert!((xs[0].iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn random_search_converges_on_a_quadratic() {
        let c = [0.7, -0.4, 0.2];
        let f = |x: &[f64]| x.iter().zip(&c).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
        let xs = random_search(f, vec![0.0; 3], 200, 3);
        assert_eq!(xs.len(), 201);
        let last = xs.last().unwrap();
        assert!(f(last) < 1e-8, "{}", f(last));
        // never worse than the start along the way (exact line minimization
        // over an interval containing 0, up to the search tolerance)
        assert!(xs.windows(2).all(|w| f(&w[1]) <= f(&w[0]) + 1e-9));
        // reproducible
        assert_eq!(random_search(f, vec![0.0; 3], 20, 3), random_search(f, vec![0.0; 3], 20, 3));
    }
}
