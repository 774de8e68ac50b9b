//! The judge's knobs, with defaults that meet the product targets on simulated traffic.

use serde::{Deserialize, Serialize};

use crate::canary::JudgeError;

/// A Beta prior over an error rate, used to mix the alternative in the error-rate test.
///
/// The prior only changes power, never the false-failure guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BetaPrior {
    /// First shape parameter (pseudo-errors), `> 0`.
    pub alpha: f64,
    /// Second shape parameter (pseudo-successes), `> 0`.
    pub beta: f64,
}

impl Default for BetaPrior {
    /// `Beta(1/2, 5)`: leans towards the low error rates of production services (it puts
    /// about half its mass below 5%) while still covering rates of tens of percent. Against
    /// Jeffreys' `Beta(1/2, 1/2)` it raises the chance of catching 1% -> 5% at 1,000 calls per
    /// side from about 70% to about 86%, and costs nothing measurable at 20% -> 30%.
    fn default() -> Self {
        Self {
            alpha: 0.5,
            beta: 5.0,
        }
    }
}

/// How the canary judge decides.
///
/// Defaults: a 1% chance over the whole rollout that a canary as healthy as its baseline
/// fails, however often it is asked; at least 200 requests per side before a check counts;
/// a failure needs an error rate at least 1 percentage point or 1.5x above the baseline's,
/// or a latency quantile at least 10% above it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeConfig {
    /// Chance, over all checks and all looks, that a canary no worse than its baseline
    /// fails. Split evenly (Bonferroni) over the checks of one judgement.
    pub alpha: f64,
    /// Requests per side below which a check is `inconclusive`. For the latency check the
    /// count is of latencies.
    pub min_requests: u64,
    /// Smallest error-rate increase, as an absolute fraction (0.01 = 1 percentage point),
    /// that may fail a check on its own.
    pub min_error_rate_increase: f64,
    /// Smallest canary/baseline error-rate ratio that may fail a check on its own.
    pub min_error_rate_ratio: f64,
    /// Smallest relative latency increase at any of `effect_quantiles` (0.10 = 10%) that
    /// may fail a check.
    pub min_latency_increase: f64,
    /// Prior mixed over the error rates of both sides in the totals-only error-rate test
    /// (used when the samples carry no per-call outcomes).
    pub error_prior: BetaPrior,
    /// Calls per side in one block of the error-rate test on per-call outcomes.
    pub error_block_size: usize,
    /// Odds ratios (canary versus baseline, of a call failing) that the error-rate test on
    /// per-call outcomes mixes over; each must exceed 1.
    pub error_odds_ratios: Vec<f64>,
    /// Latencies per side in one block of the latency test.
    pub latency_block_size: usize,
    /// Tails the latency test watches, as fractions of the pooled latencies: 0.5 watches
    /// the slower half (a shift of the bulk), 0.02 the slowest 2%. A regression that makes
    /// the slowest `q` of calls slower shows mostly at fractions a little below `q`, so the
    /// default grid is dense and log-spaced rather than a few familiar percentiles. Bets on
    /// neighbouring fractions win together, so a denser grid costs little (15 fractions
    /// instead of 8 raised the quality suite's tail-only power from 77% to 80% of runs,
    /// before the nested bets below took it to 97%).
    pub latency_tail_fractions: Vec<f64>,
    /// Nested tails the latency test also watches, as fractions of each watched tail: with
    /// `0.5`, it asks of the block's calls in the slowest `f` whether the canary's are among
    /// the slowest `f/2`. A regression that moves only the slowest calls further out leaves
    /// the count in the tail alone but fills the tail's far end with canary calls, which
    /// these bets see. Empty to watch whole tails only. Within a tail the regressed share
    /// is lopsided, hence the higher odds of `latency_inner_odds_ratios`.
    pub latency_inner_tail_ratios: Vec<f64>,
    /// Odds ratios (canary versus baseline, of landing in the inner part of a tail) that
    /// the nested bets mix over; each must exceed 1.
    pub latency_inner_odds_ratios: Vec<f64>,
    /// Odds ratios (canary versus baseline, of landing in a watched tail) that the latency
    /// test mixes over; each must exceed 1.
    pub latency_odds_ratios: Vec<f64>,
    /// Quantile levels at which the latency effect is measured.
    pub effect_quantiles: Vec<f64>,
    /// A quantile level counts for the effect only when each side has at least this many
    /// latencies above it, so that a p99 is not read from two values.
    pub min_tail_samples: usize,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            min_requests: 200,
            min_error_rate_increase: 0.01,
            min_error_rate_ratio: 1.5,
            min_latency_increase: 0.10,
            error_prior: BetaPrior::default(),
            error_block_size: 10,
            error_odds_ratios: vec![1.5, 2.5, 4.0, 6.5],
            latency_block_size: 50,
            latency_tail_fractions: vec![
                0.5, 0.3, 0.2, 0.14, 0.1, 0.07, 0.05, 0.04, 0.03, 0.025, 0.02, 0.015, 0.01, 0.007,
                0.005,
            ],
            latency_inner_tail_ratios: vec![0.5],
            latency_inner_odds_ratios: vec![2.0, 4.0, 8.0, 16.0],
            latency_odds_ratios: vec![1.4, 2.0, 4.0],
            effect_quantiles: vec![0.5, 0.9, 0.99],
            min_tail_samples: 10,
        }
    }
}

impl JudgeConfig {
    /// Checks every field against its range.
    ///
    /// # Errors
    ///
    /// [`JudgeError::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), JudgeError> {
        let invalid =
            |field: &'static str, reason: String| Err(JudgeError::InvalidConfig { field, reason });
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return invalid("alpha", format!("must be in (0, 1), got {}", self.alpha));
        }
        if !(self.min_error_rate_increase >= 0.0 && self.min_error_rate_ratio >= 1.0) {
            return invalid(
                "min_error_rate_increase",
                "must be >= 0, with min_error_rate_ratio >= 1".to_owned(),
            );
        }
        if self.min_latency_increase.is_nan() || self.min_latency_increase < 0.0 {
            return invalid("min_latency_increase", "must be >= 0".to_owned());
        }
        let prior = self.error_prior;
        if !(prior.alpha > 0.0 && prior.beta > 0.0 && prior.alpha.is_finite()) {
            return invalid(
                "error_prior",
                "shape parameters must be finite and > 0".to_owned(),
            );
        }
        if self.error_block_size < 1 {
            return invalid("error_block_size", "must be at least 1".to_owned());
        }
        if !odds_ratios_are_valid(&self.error_odds_ratios) {
            return invalid(
                "error_odds_ratios",
                "each must be finite and > 1".to_owned(),
            );
        }
        if self.latency_block_size < 2 {
            return invalid("latency_block_size", "must be at least 2".to_owned());
        }
        if self.latency_tail_fractions.is_empty()
            || self
                .latency_tail_fractions
                .iter()
                .any(|f| !(*f > 0.0 && *f <= 0.5))
        {
            return invalid(
                "latency_tail_fractions",
                "each must be in (0, 0.5]".to_owned(),
            );
        }
        if self
            .latency_inner_tail_ratios
            .iter()
            .any(|r| !(*r > 0.0 && *r < 1.0))
        {
            return invalid(
                "latency_inner_tail_ratios",
                "each must be in (0, 1)".to_owned(),
            );
        }
        if !odds_ratios_are_valid(&self.latency_inner_odds_ratios) {
            return invalid(
                "latency_inner_odds_ratios",
                "each must be finite and > 1".to_owned(),
            );
        }
        if !odds_ratios_are_valid(&self.latency_odds_ratios) {
            return invalid(
                "latency_odds_ratios",
                "each must be finite and > 1".to_owned(),
            );
        }
        if self.effect_quantiles.is_empty()
            || self
                .effect_quantiles
                .iter()
                .any(|q| !(*q > 0.0 && *q < 1.0))
        {
            return invalid("effect_quantiles", "each must be in (0, 1)".to_owned());
        }
        Ok(())
    }
}

/// A grid of odds ratios to bet on: not empty, each finite and above 1.
fn odds_ratios_are_valid(ratios: &[f64]) -> bool {
    !ratios.is_empty() && ratios.iter().all(|r| *r > 1.0 && r.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(JudgeConfig::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_fields_are_named() {
        let config = JudgeConfig {
            alpha: 1.5,
            ..JudgeConfig::default()
        };
        let error = config.validate().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid judge config: alpha must be in (0, 1), got 1.5"
        );

        let config = JudgeConfig {
            latency_odds_ratios: vec![0.5],
            ..JudgeConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(JudgeError::InvalidConfig {
                field: "latency_odds_ratios",
                ..
            })
        ));

        for (config, field) in [
            (
                JudgeConfig {
                    latency_inner_tail_ratios: vec![0.5, 1.0],
                    ..JudgeConfig::default()
                },
                "latency_inner_tail_ratios",
            ),
            (
                JudgeConfig {
                    latency_inner_odds_ratios: vec![],
                    ..JudgeConfig::default()
                },
                "latency_inner_odds_ratios",
            ),
        ] {
            let error = config.validate().unwrap_err();
            assert!(
                matches!(error, JudgeError::InvalidConfig { field: named, .. } if named == field),
                "{error}"
            );
        }
    }

    #[test]
    fn partial_json_keeps_defaults() {
        let config: JudgeConfig = serde_json::from_str(r#"{"min_requests": 100}"#).unwrap();
        assert_eq!(config.min_requests, 100);
        assert_eq!(config.alpha, 0.01);
    }

    #[test]
    fn a_misspelt_knob_is_an_error_not_a_silent_default() {
        let error = serde_json::from_str::<JudgeConfig>(r#"{"min_request": 100}"#).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("unknown field `min_request`") && message.contains("min_requests"),
            "{message}"
        );
    }
}
