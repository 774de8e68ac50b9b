//! A Kayenta-style comparator, kept only as the yardstick that the quality measurements
//! and benchmarks compare the judge against. Production verdicts come from
//! [`judge`](crate::canary::judge).
//!
//! Each metric of each check is compared with a fixed-horizon, two-sided Mann-Whitney U test
//! (normal approximation with tie and continuity corrections) at level `alpha`, and
//! classified `High` (canary significantly larger), `Low` or `Pass`. A check fails on `High`
//! only. Latency compares the latencies of the calls; the error rate compares per-call
//! failure indicators (0 or 1), which makes the test close to a two-proportion z-test.
//!
//! This is a simplification of Kayenta, which compares metric time series and may also fail
//! on `Low`. Counting only `High` makes this comparator's false failures *fewer* than a
//! two-directional one would have, so comparisons with it flatter Kayenta, not the judge.
//!
//! A fixed-horizon test is valid once, at a sample size chosen in advance. Re-run at every
//! interval of a rollout over a growing window, each look is another chance of a false
//! alarm, and the chance that at least one look fails an A/A comparison grows well beyond
//! `alpha`.

use serde::{Deserialize, Serialize};

use crate::canary::math::median;
use crate::canary::rank_sum::mann_whitney;
use crate::canary::{
    CheckInput, CheckResult, Edge, Effect, JudgeError, Metric, Outcome, Sample, SideValues,
    Statistic, Verdict,
};

/// Settings of the Kayenta-style comparator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KayentaConfig {
    /// Two-sided level of each Mann-Whitney test.
    pub alpha: f64,
    /// Requests (or latencies) per side below which a check is `inconclusive`.
    pub min_requests: u64,
}

impl Default for KayentaConfig {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            min_requests: 200,
        }
    }
}

/// Compares every input with per-metric Mann-Whitney tests (see the module docs).
///
/// # Errors
///
/// [`JudgeError::InvalidConfig`] when `alpha` is not in (0, 1), and the sample errors of
/// [`Sample::validate`].
pub fn kayenta_judge(inputs: &[CheckInput], config: &KayentaConfig) -> Result<Verdict, JudgeError> {
    if !(config.alpha > 0.0 && config.alpha < 1.0) {
        return Err(JudgeError::InvalidConfig {
            field: "alpha",
            reason: format!("must be in (0, 1), got {}", config.alpha),
        });
    }
    let mut checks = Vec::with_capacity(2 * inputs.len());
    for input in inputs {
        input.baseline.validate(&input.label(), "baseline")?;
        input.canary.validate(&input.label(), "canary")?;
        checks.push(compare(input, Metric::ErrorRate, config));
        checks.push(compare(input, Metric::Latency, config));
    }
    Ok(Verdict::from_checks(checks))
}

/// The values one metric compares, per call.
fn per_call_values(sample: &Sample, metric: Metric) -> Vec<f64> {
    match metric {
        Metric::Latency => sample.latencies_ms.clone(),
        Metric::ErrorRate => {
            let successes = (sample.requests - sample.errors) as usize;
            let mut values = vec![0.0; successes];
            values.resize(sample.requests as usize, 1.0);
            values
        }
    }
}

fn compare(input: &CheckInput, metric: Metric, config: &KayentaConfig) -> CheckResult {
    let baseline = per_call_values(&input.baseline, metric);
    let canary = per_call_values(&input.canary, metric);
    let summary = |values: &[f64]| match metric {
        Metric::ErrorRate => SideValues {
            requests: values.len() as u64,
            errors: Some(values.iter().filter(|value| **value > 0.0).count() as u64),
            error_rate: (!values.is_empty())
                .then(|| values.iter().sum::<f64>() / values.len() as f64),
            ..SideValues::default()
        },
        Metric::Latency => SideValues {
            requests: values.len() as u64,
            p50_ms: median(values),
            ..SideValues::default()
        },
    };
    let mut result = CheckResult {
        edge: Edge {
            source: input.edge_source.clone(),
            target: input.edge_target.clone(),
        },
        operation: input.operation.clone(),
        metric,
        baseline: summary(&baseline),
        canary: summary(&canary),
        effect: None,
        statistic: None,
        result: Outcome::Inconclusive,
        reason: String::new(),
    };
    if (baseline.len().min(canary.len()) as u64) < config.min_requests {
        result.reason = "too little data".to_owned();
        return result;
    }

    let statistic = mann_whitney(&baseline, &canary);
    let p_value = statistic.two_sided_p_value();
    result.statistic = Some(Statistic {
        name: "p_value".to_owned(),
        method: "mann_whitney_u".to_owned(),
        value: p_value,
        threshold: config.alpha,
    });
    result.effect = match metric {
        Metric::ErrorRate => Some(Effect {
            absolute_increase: result
                .canary
                .error_rate
                .zip(result.baseline.error_rate)
                .map(|(canary, baseline)| canary - baseline),
            ..Effect::default()
        }),
        Metric::Latency => Some(Effect {
            relative_increase: result
                .canary
                .p50_ms
                .zip(result.baseline.p50_ms)
                .map(|(canary, baseline)| canary / baseline - 1.0),
            quantile: Some(0.5),
            ..Effect::default()
        }),
    };
    let classification = match (p_value < config.alpha, statistic.z > 0.0) {
        (true, true) => "High",
        (true, false) => "Low",
        (false, _) => "Pass",
    };
    result.result = if classification == "High" {
        Outcome::Fail
    } else {
        Outcome::Pass
    };
    result.reason = format!(
        "Mann-Whitney p = {p_value:.4} (z = {:.2}): {classification}",
        statistic.z
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(baseline: Sample, canary: Sample) -> CheckInput {
        CheckInput {
            edge_source: "frontend".into(),
            edge_target: "reviews".into(),
            operation: "GET /reviews".into(),
            baseline,
            canary,
        }
    }

    fn sample(latencies_ms: Vec<f64>, errors: u64) -> Sample {
        Sample {
            requests: latencies_ms.len() as u64,
            latencies_ms,
            errors,
            ..Sample::default()
        }
    }

    #[test]
    fn slower_canary_is_high_and_fails() {
        let baseline: Vec<f64> = (0..300).map(|i| 10.0 + f64::from(i % 50)).collect();
        let canary: Vec<f64> = baseline.iter().map(|value| value * 1.5).collect();
        let verdict = kayenta_judge(
            &[input(sample(baseline, 3), sample(canary, 3))],
            &KayentaConfig::default(),
        )
        .unwrap();
        assert_eq!(verdict.verdict, Outcome::Fail);
        assert_eq!(verdict.checks[0].result, Outcome::Pass);
        assert!(
            verdict.checks[1].reason.ends_with("High"),
            "{}",
            verdict.checks[1].reason
        );
    }

    #[test]
    fn faster_canary_is_low_and_passes() {
        let baseline: Vec<f64> = (0..300).map(|i| 10.0 + f64::from(i % 50)).collect();
        let canary: Vec<f64> = baseline.iter().map(|value| value * 0.5).collect();
        let verdict = kayenta_judge(
            &[input(sample(baseline, 3), sample(canary, 3))],
            &KayentaConfig::default(),
        )
        .unwrap();
        assert_eq!(verdict.verdict, Outcome::Pass);
        assert!(
            verdict.checks[1].reason.ends_with("Low"),
            "{}",
            verdict.checks[1].reason
        );
    }

    #[test]
    fn error_rate_compares_indicators() {
        let latencies = vec![10.0; 1000];
        let verdict = kayenta_judge(
            &[input(sample(latencies.clone(), 10), sample(latencies, 60))],
            &KayentaConfig::default(),
        )
        .unwrap();
        assert_eq!(
            verdict.checks[0].result,
            Outcome::Fail,
            "{}",
            verdict.checks[0].reason
        );
        assert_eq!(verdict.checks[0].canary.errors, Some(60));
        // All latencies tie: no evidence either way.
        assert_eq!(verdict.checks[1].result, Outcome::Pass);
    }
}
