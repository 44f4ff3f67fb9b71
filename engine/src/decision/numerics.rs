//! Tail-accurate distribution functions for the decision math.
//!
//! statrs 0.19.1's regularized incomplete beta stops its continued fraction after a
//! fixed 140 iterations and silently returns unconverged values once both shapes exceed
//! ~10⁴ (`Beta::new(1e6, 1e6).cdf(0.5)` is 0.4912). A hit style has 10⁶ views, and the
//! negative binomial CDF is an incomplete beta too, so assay evaluates it here: the
//! continued fraction's iteration bound grows with the shapes, the power prefactor uses
//! the large-argument form that avoids cancelling `ln Γ` terms, and both tails are
//! returned directly so neither is computed as `1 - (something near 1)`.
//! Gamma CDFs come from statrs, which is accurate to ~1e-9 up to shape 10⁷.

use statrs::distribution::{ContinuousCDF, Gamma};
use statrs::function::gamma::ln_gamma;

const EPS: f64 = 1e-15;
const TINY: f64 = 1e-300;

/// Lower and upper tails of the regularized incomplete beta: `(I_x(a,b), 1 - I_x(a,b))`.
///
/// Requires `a > 0`, `b > 0`; `x` is clamped to `[0, 1]`.
pub fn beta_tails(a: f64, b: f64, x: f64) -> (f64, f64) {
    debug_assert!(
        a > 0.0 && b > 0.0,
        "beta shapes must be positive: a={a}, b={b}"
    );
    if x <= 0.0 {
        return (0.0, 1.0);
    }
    if x >= 1.0 {
        return (1.0, 0.0);
    }
    // x^a (1-x)^b / B(a,b) is the same for both branches below; computing it once from
    // the caller's x avoids the rounding of 1 - x.
    let front = ln_power_terms(a, b, x).exp();
    // The continued fraction converges fast below the mean; above it, use the symmetry
    // I_x(a,b) = 1 - I_{1-x}(b,a) and compute the small tail directly.
    if x < (a + 1.0) / (a + b + 2.0) {
        let lower = (front * continued_fraction(a, b, x) / a).min(1.0);
        (lower, 1.0 - lower)
    } else {
        let upper = (front * continued_fraction(b, a, 1.0 - x) / b).min(1.0);
        (1.0 - upper, upper)
    }
}

/// `ln( x^a (1-x)^b / B(a,b) )`.
fn ln_power_terms(a: f64, b: f64, x: f64) -> f64 {
    if a < 10.0 || b < 10.0 {
        return a * x.ln() + b * (-x).ln_1p() - ln_beta(a, b);
    }
    // Stirling form: the O(a ln a) parts cancel analytically, leaving terms of the size
    // of the answer. `d = x·n − a` (and `(1−x)·n − b = −d`) comes from one fused
    // multiply-add: a plain product would round away ~1e-9 of the exponent at n = 10⁷.
    let n = a + b;
    let d = x.mul_add(n, -a);
    let t1 = a * (d / a).ln_1p();
    let t2 = b * (-d / b).ln_1p();
    t1 + t2 + 0.5 * (a * b / n).ln()
        - 0.5 * (2.0 * std::f64::consts::PI).ln()
        - (stirling_remainder(a) + stirling_remainder(b) - stirling_remainder(n))
}

/// `ln Γ(z) - [(z - ½) ln z - z + ½ ln 2π]`, for z ≥ 10.
fn stirling_remainder(z: f64) -> f64 {
    let z2 = z * z;
    1.0 / (12.0 * z) - 1.0 / (360.0 * z * z2) + 1.0 / (1260.0 * z2 * z2 * z)
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Modified Lentz evaluation of the incomplete beta continued fraction. The number of
/// terms needed grows like √(a+b) near the mean, so the bound does too.
fn continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    let max_iter = 300 + (20.0 * (a + b).sqrt()) as usize;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=max_iter {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// `P(X ≤ x)` for `X ~ Beta(a, b)`.
pub fn beta_cdf(a: f64, b: f64, x: f64) -> f64 {
    beta_tails(a, b, x).0
}

/// `P(X > x)` for `X ~ Beta(a, b)`.
pub fn beta_sf(a: f64, b: f64, x: f64) -> f64 {
    beta_tails(a, b, x).1
}

/// The `q`-quantile of `Beta(a, b)`, by bisection on the guarded CDF.
pub fn beta_quantile(a: f64, b: f64, q: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if beta_cdf(a, b, mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-14 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// `P(λ ≤ x)` for `λ ~ Gamma(shape, rate)`.
pub fn gamma_cdf(shape: f64, rate: f64, x: f64) -> f64 {
    gamma(shape, rate).cdf(x)
}

/// `P(λ ≥ x)` for `λ ~ Gamma(shape, rate)`.
pub fn gamma_sf(shape: f64, rate: f64, x: f64) -> f64 {
    gamma(shape, rate).sf(x)
}

/// The `q`-quantile of `Gamma(shape, rate)`.
pub fn gamma_quantile(shape: f64, rate: f64, q: f64) -> f64 {
    gamma(shape, rate).inverse_cdf(q)
}

fn gamma(shape: f64, rate: f64) -> Gamma {
    // Callers build shapes and rates from positive priors plus non-negative counts.
    Gamma::new(shape, rate).unwrap_or_else(|e| panic!("invalid Gamma({shape}, {rate}): {e}"))
}

/// `P(K ≤ k)` for the negative binomial counting failures before `r` successes of
/// probability `p` (the Gamma–Poisson predictive with `p = b / (b + horizon)`).
pub fn negbin_cdf(r: f64, p: f64, k: u64) -> f64 {
    if p >= 1.0 {
        return 1.0;
    }
    beta_cdf(r, k as f64 + 1.0, p)
}

/// The smallest `k` with `P(K ≤ k) ≥ q` for that negative binomial.
pub fn negbin_quantile(r: f64, p: f64, q: f64) -> u64 {
    if p >= 1.0 || q <= 0.0 {
        return 0;
    }
    let mean = r * (1.0 - p) / p;
    let sd = (mean / p).sqrt();
    let mut hi = (mean + 10.0 * sd + 10.0).ceil() as u64;
    while negbin_cdf(r, p, hi) < q {
        hi = hi.saturating_mul(2);
    }
    let mut lo = 0_u64;
    if negbin_cdf(r, p, lo) >= q {
        return 0;
    }
    // Invariant: cdf(lo) < q ≤ cdf(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if negbin_cdf(r, p, mid) >= q {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, rel: f64) {
        let err = (actual - expected).abs() / expected.abs().max(1e-300);
        assert!(
            err <= rel,
            "expected {expected:e}, got {actual:e} (relative error {err:e})"
        );
    }

    #[test]
    fn beta_matches_closed_forms() {
        // Beta(1,1) is uniform; Beta(2,1) has CDF x²; Beta(1,3) has CDF 1-(1-x)³.
        close(beta_cdf(1.0, 1.0, 0.3), 0.3, 1e-14);
        close(beta_cdf(2.0, 1.0, 0.3), 0.09, 1e-14);
        close(beta_cdf(1.0, 3.0, 0.2), 1.0 - 0.8_f64.powi(3), 1e-14);
        // Tail of Beta(1,3): P(X > 0.99) = 0.01³ exactly, computed without cancellation.
        close(beta_sf(1.0, 3.0, 0.99), 1e-6, 1e-10);
        // Symmetric shapes put half the mass below one half, however large.
        for s in [0.5, 3.0, 1e3, 1e4, 1e5, 1e6, 1e7] {
            close(beta_cdf(s, s, 0.5), 0.5, 1e-9);
        }
    }

    #[test]
    fn beta_is_right_where_statrs_is_not() {
        // References: mpmath at 40 digits, integrating the Beta density numerically.
        close(beta_cdf(1e6, 1e6, 0.5005), 0.921_350_422_419_098_2, 1e-9);
        close(beta_sf(1e6, 1e6, 0.502), 7.707_644_889_245_063e-9, 1e-7);
        close(beta_sf(3e4, 1e6, 0.03), 1.0 - 0.999_999_912_962_328_9, 1e-6);
        close(beta_cdf(1e7, 2e7, 1.0 / 3.0), 0.500_017_167_742_399_6, 1e-9);
        close(beta_cdf(5e6, 5e6, 0.4999), 0.263_544_631_531_418_3, 1e-8);
        close(beta_sf(30.0, 70.0, 0.35), 0.138_424_524_133_890_8, 1e-12);
    }

    #[test]
    fn gamma_matches_closed_forms() {
        // Gamma(1, rate) is exponential: P(λ ≥ x) = e^{-rate·x}.
        close(gamma_sf(1.0, 2.0, 1.5), (-3.0_f64).exp(), 1e-12);
        // Gamma(2, 1): P(λ ≤ x) = 1 - e^{-x}(1 + x).
        close(
            gamma_cdf(2.0, 1.0, 3.0),
            1.0 - (-3.0_f64).exp() * 4.0,
            1e-12,
        );
        close(gamma_quantile(1.0, 1.0, 0.5), std::f64::consts::LN_2, 1e-9);
    }

    #[test]
    fn negbin_matches_closed_forms() {
        // r = 1 is geometric: P(K ≤ k) = 1 - (1-p)^{k+1}.
        close(negbin_cdf(1.0, 0.25, 4), 1.0 - 0.75_f64.powi(5), 1e-13);
        // Median of geometric(p=0.25): smallest k with 1-0.75^{k+1} ≥ 0.5 is k = 2.
        assert_eq!(negbin_quantile(1.0, 0.25, 0.5), 2);
        // r = 2, p = 0.5: P(K=0)=0.25, P(K=1)=0.25, P(K=2)=0.1875.
        close(negbin_cdf(2.0, 0.5, 2), 0.6875, 1e-13);
        assert_eq!(negbin_quantile(2.0, 0.5, 0.6874), 2);
        assert_eq!(negbin_quantile(2.0, 0.5, 0.69), 3);
        assert_eq!(negbin_quantile(5.0, 1.0, 0.9), 0);
    }

    #[test]
    fn negbin_quantiles_are_sane_for_large_counts() {
        // Mean 10⁶ with shape 10⁶: close to normal with sd ≈ √2·10³.
        let (r, p) = (1e6, 0.5);
        let median = negbin_quantile(r, p, 0.5) as f64;
        assert!((median - 1e6).abs() < 5.0, "median {median}");
        let p90 = negbin_quantile(r, p, 0.9) as f64;
        let expected = 1e6 + 1.2815515655 * (2e6_f64).sqrt();
        assert!(
            (p90 - expected).abs() < 5.0,
            "p90 {p90}, expected ≈{expected}"
        );
    }
}
