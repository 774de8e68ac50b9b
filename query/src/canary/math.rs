//! Small numerical helpers the judge and the outlier detectors share: log-gamma, log-beta,
//! binomial coefficients, the normal tail, log-sum-exp and empirical quantiles.
//!
//! They are written by hand because each is a few lines and the crate should not pull a
//! statistics library for them.

/// Lanczos approximation (g = 7, nine terms); relative error about 1e-15 for positive
/// arguments, which is far below the noise of any count the judge sees.
const LANCZOS_G: f64 = 7.0;
const LANCZOS_COEFFICIENTS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// Natural log of the gamma function, for `x > 0`.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    if x < 0.5 {
        // Reflection keeps the series in the range where it is accurate.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut series = LANCZOS_COEFFICIENTS[0];
    for (offset, coefficient) in LANCZOS_COEFFICIENTS.iter().enumerate().skip(1) {
        series += coefficient / (x + offset as f64);
    }
    let t = x + LANCZOS_G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// Natural log of the beta function `B(a, b)`, for `a, b > 0`.
pub(crate) fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Natural log of the binomial coefficient `n choose k`; negative infinity when `k > n`.
/// Only tests need it: they check exact expectations against it.
#[cfg(test)]
pub(crate) fn ln_choose(n: u64, k: u64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

/// `count * ln(probability)` with the convention `0 * ln(0) = 0`.
pub(crate) fn x_ln_p(count: f64, probability: f64) -> f64 {
    if count == 0.0 {
        0.0
    } else {
        count * probability.ln()
    }
}

/// `ln(sum(exp(terms)))` without overflow; negative infinity for no terms.
pub(crate) fn log_sum_exp(terms: &[f64]) -> f64 {
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    let sum: f64 = terms.iter().map(|term| (term - max).exp()).sum();
    max + sum.ln()
}

/// Upper tail of the standard normal, `P(Z > z)`.
///
/// Uses the complementary error function in its Chebyshev-fitted form (fractional error
/// below 1.2e-7), enough for p-values and z thresholds.
pub(crate) fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let magnitude = x.abs();
    let t = 1.0 / (1.0 + 0.5 * magnitude);
    let polynomial = -magnitude * magnitude - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * polynomial.exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

/// Empirical quantile of ascending `sorted` values at level `level` in `[0, 1]`, by linear
/// interpolation between order statistics; `None` for no values.
pub(crate) fn quantile_sorted(sorted: &[f64], level: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = level.clamp(0.0, 1.0) * last as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(last);
    let fraction = position - below as f64;
    Some(sorted[below] + fraction * (sorted[above] - sorted[below]))
}

/// Sorts a copy of `values` ascending. Callers reject NaN before they get here.
pub(crate) fn sorted_copy(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// Median of `values`; `None` for no values.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    quantile_sorted(&sorted_copy(values), 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        assert!((ln_gamma(1.0)).abs() < 1e-13);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        // ln(170!) from the sum of logs.
        let by_sum: f64 = (1..=170).map(|k| (k as f64).ln()).sum();
        assert!((ln_gamma(171.0) - by_sum).abs() < 1e-9);
    }

    #[test]
    fn ln_choose_counts_subsets() {
        assert!((ln_choose(10, 3).exp() - 120.0).abs() < 1e-9);
        assert_eq!(ln_choose(3, 4), f64::NEG_INFINITY);
    }

    #[test]
    fn normal_tail_hits_known_points() {
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_upper_tail(-1.644_854) - 0.95).abs() < 1e-6);
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
    }

    #[test]
    fn quantiles_interpolate() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_sorted(&sorted, 0.5), Some(3.0));
        assert_eq!(quantile_sorted(&sorted, 0.0), Some(1.0));
        assert_eq!(quantile_sorted(&sorted, 1.0), Some(5.0));
        assert_eq!(quantile_sorted(&sorted, 0.125), Some(1.5));
        assert_eq!(quantile_sorted(&[], 0.5), None);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
