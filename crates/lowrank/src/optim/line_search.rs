//! Line searches along a direction: Armijo backtracking, golden-section search
//! (seed 000's `gss`) and a strong-Wolfe search (Nocedal & Wright,
//! *Numerical Optimization*, 2nd ed., Algorithms 3.5 and 3.6: bracketing, then
//! `zoom` with safeguarded cubic interpolation).
//!
//! All of them work on the one-dimensional restriction `phi(alpha) =
//! f(x + alpha p)`. A search that finds no acceptable step reports it in
//! [`LineSearch::status`] (and returns `alpha = 0`, the current point) instead
//! of failing: the caller decides whether that ends the run
//! ([`crate::solve::IterState::stalled`]).

use serde::{Deserialize, Serialize};

use crate::error::{Result, ensure};

/// Outcome of a line search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The step satisfies the search's conditions.
    Success,
    /// Only sufficient decrease holds (a Wolfe search ran out of evaluations
    /// before the curvature condition held); the step still decreases `f`.
    SufficientDecreaseOnly,
    /// No step within the evaluation budget decreased `f` enough; `alpha`
    /// is 0.
    NoDecrease,
    /// The direction is not a descent direction (`phi'(0) >= 0`); `alpha` is
    /// 0.
    NotDescent,
    /// `phi(0)` or `phi'(0)` is not finite; `alpha` is 0.
    NonFinite,
}

impl Status {
    /// Short name for records and messages.
    pub fn name(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::SufficientDecreaseOnly => "sufficient_decrease_only",
            Status::NoDecrease => "no_decrease",
            Status::NotDescent => "not_descent",
            Status::NonFinite => "non_finite",
        }
    }
}

/// The result of a line search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineSearch {
    /// The accepted step (0 when none was found).
    pub alpha: f64,
    /// `phi(alpha)`.
    pub value: f64,
    /// Function evaluations used.
    pub evals: usize,
    /// What happened.
    pub status: Status,
}

impl LineSearch {
    /// True when the step decreases the function (`Success` or
    /// `SufficientDecreaseOnly`).
    pub fn moved(&self) -> bool {
        matches!(self.status, Status::Success | Status::SufficientDecreaseOnly)
    }

    fn stay(f0: f64, evals: usize, status: Status) -> LineSearch {
        LineSearch { alpha: 0.0, value: f0, evals, status }
    }
}

/// Armijo backtracking: the first `alpha = alpha0 * shrink^i` with
/// `phi(alpha) <= phi(0) + c1 alpha phi'(0)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Armijo {
    /// First trial step (1: the Newton step).
    pub alpha0: f64,
    /// Sufficient-decrease constant in `(0, 1)` (Nocedal & Wright: 1e-4).
    pub c1: f64,
    /// Backtracking factor in `(0, 1)` (0.5).
    pub shrink: f64,
    /// Evaluation budget (60: `0.5^60 ~ 1e-18`).
    pub max_evals: usize,
}

impl Default for Armijo {
    fn default() -> Self {
        Armijo { alpha0: 1.0, c1: 1e-4, shrink: 0.5, max_evals: 60 }
    }
}

impl Armijo {
    /// Reject impossible settings.
    pub fn check(&self) -> Result<()> {
        ensure!(self.alpha0 > 0.0 && self.alpha0.is_finite(), "the first trial step must be > 0, got {}", self.alpha0);
        ensure!(self.c1 > 0.0 && self.c1 < 1.0, "c1 must be in (0, 1), got {}", self.c1);
        ensure!(
            self.shrink > 0.0 && self.shrink < 1.0,
            "the backtracking factor must be in (0, 1), got {}",
            self.shrink
        );
        ensure!(self.max_evals > 0, "the line search needs at least one evaluation");
        Ok(())
    }

    /// Search `phi` given `phi(0) = f0` and `phi'(0) = slope`. Non-finite
    /// trial values count as "too far" and shrink the step.
    pub fn search(&self, mut phi: impl FnMut(f64) -> f64, f0: f64, slope: f64) -> LineSearch {
        if !f0.is_finite() || !slope.is_finite() {
            return LineSearch::stay(f0, 0, Status::NonFinite);
        }
        if slope >= 0.0 {
            return LineSearch::stay(f0, 0, Status::NotDescent);
        }
        let mut alpha = self.alpha0;
        for evals in 1..=self.max_evals {
            let f = phi(alpha);
            if f <= f0 + self.c1 * alpha * slope {
                return LineSearch { alpha, value: f, evals, status: Status::Success };
            }
            alpha *= self.shrink;
        }
        LineSearch::stay(f0, self.max_evals, Status::NoDecrease)
    }
}

/// The golden ratio of seed 000's `gss`.
const GOLDEN: f64 = 1.618_033_988_749_895;

/// A minimum found by a one-dimensional search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Min1d {
    /// The point.
    pub x: f64,
    /// The function there.
    pub value: f64,
    /// Evaluations used.
    pub evals: usize,
}

/// Golden-section search for the minimum of a unimodal `f` on `[a, b]`,
/// seed 000's `gss(f, a, b, tol=1e-5)`: shrink the bracket with the interior
/// points `c = b - (b - a) / phi`, `d = a + (b - a) / phi` (recomputed from
/// `a, b` every iteration, as the seed does to avoid drift), keeping `[a, d]`
/// when `f(c) < f(d)` and `[c, b]` otherwise, until `|c - d| <= tol`; returns
/// the midpoint, which is within `tol / (2 (2 / phi - 1)) ~ 2.12 tol` of the
/// minimizer of a unimodal function. One new evaluation per iteration (the other interior point
/// is the previous one) plus one at the returned point. At most 300
/// iterations, so a `tol` below the floating-point spacing still ends.
///
/// Errors: `tol <= 0`, or `a`, `b` not finite.
pub fn golden_section(mut f: impl FnMut(f64) -> f64, a: f64, b: f64, tol: f64) -> Result<Min1d> {
    ensure!(tol > 0.0 && tol.is_finite(), "the golden-section tolerance must be > 0, got {tol}");
    ensure!(a.is_finite() && b.is_finite(), "the golden-section interval [{a}, {b}] is not finite");
    let (mut a, mut b) = if a <= b { (a, b) } else { (b, a) };
    let mut c = b - (b - a) / GOLDEN;
    let mut d = a + (b - a) / GOLDEN;
    let (mut fc, mut fd) = (f(c), f(d));
    let mut evals = 2;
    let mut iters = 0;
    while (c - d).abs() > tol && iters < 300 {
        iters += 1;
        if fc < fd {
            b = d;
            c = b - (b - a) / GOLDEN;
            d = a + (b - a) / GOLDEN;
            // the new d is the old c
            fd = fc;
            fc = f(c);
        } else {
            a = c;
            c = b - (b - a) / GOLDEN;
            d = a + (b - a) / GOLDEN;
            fc = fd;
            fd = f(d);
        }
        evals += 1;
    }
    let x = 0.5 * (a + b);
    Ok(Min1d { x, value: f(x), evals: evals + 1 })
}

/// Seed 000's `gss(f, a, b, tol)`: the point of [`golden_section`].
pub fn gss(f: impl FnMut(f64) -> f64, a: f64, b: f64, tol: f64) -> Result<f64> {
    golden_section(f, a, b, tol).map(|m| m.x)
}

/// Strong-Wolfe line search: a step with
/// `phi(alpha) <= phi(0) + c1 alpha phi'(0)` and
/// `|phi'(alpha)| <= c2 |phi'(0)|` (Nocedal & Wright, Algorithms 3.5/3.6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrongWolfe {
    /// First trial step (1).
    pub alpha0: f64,
    /// Largest step considered (1e10).
    pub alpha_max: f64,
    /// Sufficient-decrease constant (1e-4).
    pub c1: f64,
    /// Curvature constant in `(c1, 1)` (0.9 for quasi-Newton and Newton; 0.1
    /// for nonlinear conjugate gradients).
    pub c2: f64,
    /// Evaluation budget (50).
    pub max_evals: usize,
}

impl Default for StrongWolfe {
    fn default() -> Self {
        StrongWolfe { alpha0: 1.0, alpha_max: 1e10, c1: 1e-4, c2: 0.9, max_evals: 50 }
    }
}

impl StrongWolfe {
    /// Reject impossible settings.
    pub fn check(&self) -> Result<()> {
        ensure!(self.alpha0 > 0.0 && self.alpha0.is_finite(), "the first trial step must be > 0, got {}", self.alpha0);
        ensure!(self.alpha_max >= self.alpha0, "alpha_max must be >= the first trial step");
        ensure!(
            0.0 < self.c1 && self.c1 < self.c2 && self.c2 < 1.0,
            "need 0 < c1 < c2 < 1, got c1 = {}, c2 = {}",
            self.c1,
            self.c2
        );
        ensure!(self.max_evals > 0, "the line search needs at least one evaluation");
        Ok(())
    }

    /// Search `phi`, which returns `(phi(alpha), phi'(alpha))`, given
    /// `phi(0) = f0` and `phi'(0) = slope`.
    pub fn search(&self, mut phi: impl FnMut(f64) -> (f64, f64), f0: f64, slope: f64) -> LineSearch {
        if !f0.is_finite() || !slope.is_finite() {
            return LineSearch::stay(f0, 0, Status::NonFinite);
        }
        if slope >= 0.0 {
            return LineSearch::stay(f0, 0, Status::NotDescent);
        }
        let armijo = |a: f64, f: f64| f <= f0 + self.c1 * a * slope;
        let curvature = |d: f64| d.abs() <= -self.c2 * slope;
        let mut evals = 0;
        // (alpha, phi, dphi) of the previous trial
        let mut prev = (0.0, f0, slope);
        let mut alpha = self.alpha0.min(self.alpha_max);
        let (lo, hi) = loop {
            let (f, d) = phi(alpha);
            evals += 1;
            let cur = (alpha, f, d);
            if !(f.is_finite() && d.is_finite() && armijo(alpha, f)) || (evals > 1 && f >= prev.1) {
                break (prev, cur);
            }
            if curvature(d) {
                return LineSearch { alpha, value: f, evals, status: Status::Success };
            }
            if d >= 0.0 {
                break (cur, prev);
            }
            if evals >= self.max_evals || alpha >= self.alpha_max {
                return LineSearch { alpha, value: f, evals, status: Status::SufficientDecreaseOnly };
            }
            prev = cur;
            alpha = (2.0 * alpha).min(self.alpha_max);
        };
        self.zoom(&mut phi, lo, hi, f0, slope, evals)
    }

    fn zoom(
        &self,
        phi: &mut impl FnMut(f64) -> (f64, f64),
        mut lo: (f64, f64, f64),
        mut hi: (f64, f64, f64),
        f0: f64,
        slope: f64,
        mut evals: usize,
    ) -> LineSearch {
        while evals < self.max_evals {
            let width = hi.0 - lo.0;
            if width.abs() <= f64::EPSILON * lo.0.abs().max(1e-300) {
                break;
            }
            let mut a = cubic_min(lo, hi).unwrap_or(f64::NAN);
            let (inner_lo, inner_hi) = (lo.0 + 0.1 * width, hi.0 - 0.1 * width);
            let (l, h) = if inner_lo <= inner_hi { (inner_lo, inner_hi) } else { (inner_hi, inner_lo) };
            if !(a >= l && a <= h) {
                a = 0.5 * (lo.0 + hi.0);
            }
            let (f, d) = phi(a);
            evals += 1;
            if !(f.is_finite() && d.is_finite()) || f > f0 + self.c1 * a * slope || f >= lo.1 {
                hi = (a, f, d);
            } else {
                if d.abs() <= -self.c2 * slope {
                    return LineSearch { alpha: a, value: f, evals, status: Status::Success };
                }
                if d * (hi.0 - lo.0) >= 0.0 {
                    hi = lo;
                }
                lo = (a, f, d);
            }
        }
        if lo.0 > 0.0 {
            LineSearch { alpha: lo.0, value: lo.1, evals, status: Status::SufficientDecreaseOnly }
        } else {
            LineSearch::stay(f0, evals, Status::NoDecrease)
        }
    }
}

/// Minimizer of the cubic interpolating value and slope at two points
/// (Nocedal & Wright, eq. 3.59); `None` when it does not exist.
fn cubic_min(p: (f64, f64, f64), q: (f64, f64, f64)) -> Option<f64> {
    let ((a0, f0, d0), (a1, f1, d1)) = (p, q);
    if !(f1.is_finite() && d1.is_finite()) || a0 == a1 {
        return None;
    }
    let e1 = d0 + d1 - 3.0 * (f0 - f1) / (a0 - a1);
    let disc = e1 * e1 - d0 * d1;
    if disc < 0.0 {
        return None;
    }
    let e2 = (a1 - a0).signum() * disc.sqrt();
    let den = d1 - d0 + 2.0 * e2;
    if den == 0.0 {
        return None;
    }
    let a = a1 - (a1 - a0) * (d1 + e2 - e1) / den;
    a.is_finite().then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armijo_backtracks_to_the_first_acceptable_step() {
        // phi(a) = (a - 2)^2: phi(0) = 4, phi'(0) = -4. From 10: phi(10) = 64,
        // phi(5) = 9 fail; phi(2.5) = 0.25 <= 4 - 1e-4 * 2.5 * 4 passes.
        let r = Armijo { alpha0: 10.0, ..Default::default() }.search(|a| (a - 2.0) * (a - 2.0), 4.0, -4.0);
        assert_eq!(r.status, Status::Success);
        assert_eq!(r.alpha, 2.5);
        assert_eq!(r.evals, 3);
        assert_eq!(r.value, 0.25);
    }

    #[test]
    fn armijo_reports_failure_without_moving() {
        // a "descent" slope that lies: the function only increases
        let r = Armijo::default().search(|a| a, 0.0, -1.0);
        assert_eq!((r.status, r.alpha, r.value), (Status::NoDecrease, 0.0, 0.0));
        assert_eq!(Armijo::default().search(|a| a, 0.0, 1.0).status, Status::NotDescent);
        assert_eq!(Armijo::default().search(|a| a, f64::NAN, -1.0).status, Status::NonFinite);
        // NaN trial values shrink the step instead of being accepted
        let r = Armijo::default().search(|a| if a > 0.1 { f64::NAN } else { -a }, 0.0, -1.0);
        assert_eq!(r.status, Status::Success);
        assert!(r.alpha <= 0.1);
        assert!(Armijo { c1: 1.5, ..Default::default() }.check().is_err());
    }

    #[test]
    fn golden_section_finds_known_minimizers() {
        // The search stops when |c - d| = (b - a)(2 / phi - 1) <= tol, so the
        // final bracket is at most tol / 0.236 wide and the midpoint is within
        // 2.12 tol of the minimizer.
        let bound = |tol: f64| tol / (2.0 / GOLDEN - 1.0) / 2.0;
        let m = golden_section(|x| (x - 1.0) * (x - 1.0), -3.0, 5.0, 1e-5).unwrap();
        assert!((m.x - 1.0).abs() <= bound(1e-5), "{m:?}");
        // bracket 8 shrinks by 1/phi per evaluation: ~ log(8 / 1e-5) / log(phi) = 28
        assert!(m.evals <= 32, "{}", m.evals);
        // non-smooth, minimum off-centre, reversed interval
        let m = golden_section(|x| (x - 0.3).abs(), 1.0, -1.0, 1e-8).unwrap();
        assert!((m.x - 0.3).abs() <= bound(1e-8));
        // cos on [0, 2 pi] has its minimum at pi
        let x = gss(f64::cos, 0.0, 2.0 * std::f64::consts::PI, 1e-5).unwrap();
        assert!((x - std::f64::consts::PI).abs() <= bound(1e-5));
        // a tolerance below the float spacing still terminates
        let m = golden_section(|x| (x - 1e6).powi(2), 0.0, 2e6, 1e-300).unwrap();
        assert!((m.x - 1e6).abs() < 1e-6);
        assert!(golden_section(|x| x, 0.0, 1.0, 0.0).is_err());
        assert!(golden_section(|x| x, 0.0, f64::INFINITY, 1e-5).is_err());
    }

    fn check_wolfe(phi: impl Fn(f64) -> (f64, f64), ls: &StrongWolfe) -> LineSearch {
        let (f0, d0) = phi(0.0);
        let r = ls.search(&phi, f0, d0);
        assert_eq!(r.status, Status::Success, "{r:?}");
        let (f, d) = phi(r.alpha);
        assert!(f <= f0 + ls.c1 * r.alpha * d0, "sufficient decrease");
        assert!(d.abs() <= ls.c2 * d0.abs(), "curvature");
        r
    }

    #[test]
    fn strong_wolfe_on_known_functions() {
        // a quadratic whose exact minimizer is alpha = 3: with c2 = 0.1 the
        // accepted step is within 10% of the slope, i.e. |alpha - 3| <= 0.3
        let ls = StrongWolfe { c2: 0.1, ..Default::default() };
        let r = check_wolfe(|a| ((a - 3.0).powi(2), 2.0 * (a - 3.0)), &ls);
        assert!((r.alpha - 3.0).abs() <= 0.3 + 1e-12);
        // the first trial overshoots by far: zoom must come back
        let ls2 = StrongWolfe { alpha0: 100.0, c2: 0.1, ..Default::default() };
        let r = check_wolfe(|a| ((a - 0.01).powi(2), 2.0 * (a - 0.01)), &ls2);
        assert!((r.alpha - 0.01).abs() <= 0.001 + 1e-12);
        // Rosenbrock from (-1.2, 1) along steepest descent
        let f = |x: f64, y: f64| (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
        let g = |x: f64, y: f64| (-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x));
        let (x0, y0) = (-1.2, 1.0);
        let (gx, gy) = g(x0, y0);
        let (px, py) = (-gx, -gy);
        let phi = |a: f64| {
            let (x, y) = (x0 + a * px, y0 + a * py);
            let (hx, hy) = g(x, y);
            (f(x, y), hx * px + hy * py)
        };
        check_wolfe(phi, &StrongWolfe::default());
        check_wolfe(phi, &StrongWolfe { c2: 0.1, ..Default::default() });
        // a line on which phi keeps decreasing: stops at alpha_max with
        // sufficient decrease only
        let r = StrongWolfe { alpha_max: 8.0, ..Default::default() }.search(|a| (-a, -1.0), 0.0, -1.0);
        assert_eq!((r.status, r.alpha), (Status::SufficientDecreaseOnly, 8.0));
        // nothing decreases: no step, no panic
        let r = StrongWolfe::default().search(|a| (a * a + a, 2.0 * a + 1.0), 0.0, -1.0);
        assert_eq!((r.status, r.alpha), (Status::NoDecrease, 0.0));
        assert_eq!(StrongWolfe::default().search(|_| (f64::NAN, f64::NAN), 0.0, -1.0).status, Status::NoDecrease);
        assert!(StrongWolfe { c1: 0.5, c2: 0.4, ..Default::default() }.check().is_err());
    }
}
