//! The canary judge: every input becomes an error-rate check and a latency check, each at
//! its share of the false-failure budget, and the checks become one verdict.

use crate::canary::error_rate::judge_error_rate;
use crate::canary::latency::judge_latency;
use crate::canary::{CheckInput, JudgeConfig, JudgeError, Verdict};

/// Judges a canary against its baseline over every input (edge and operation).
///
/// Each input yields an `error_rate` and a `latency` check. The false-failure budget
/// `config.alpha` is split evenly over all checks, so the chance that a canary no worse
/// than its baseline fails on any check, at any of any number of looks over a growing
/// window, is at most `alpha` (see the methods in `error_rate` and `latency`). Checks with
/// fewer than `config.min_requests` per side are `inconclusive` and still take their share.
///
/// # Errors
///
/// [`JudgeError::InvalidConfig`] for a config out of range, and the sample errors of
/// [`Sample::validate`](crate::canary::Sample::validate).
pub fn judge(inputs: &[CheckInput], config: &JudgeConfig) -> Result<Verdict, JudgeError> {
    config.validate()?;
    for input in inputs {
        input.baseline.validate(&input.label(), "baseline")?;
        input.canary.validate(&input.label(), "canary")?;
    }

    let alpha_per_check = config.alpha / (2 * inputs.len().max(1)) as f64;
    let mut checks = Vec::with_capacity(2 * inputs.len());
    for input in inputs {
        checks.push(judge_error_rate(input, alpha_per_check, config));
        checks.push(judge_latency(input, alpha_per_check, config));
    }
    Ok(Verdict::from_checks(checks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::simulation::{SimRng, TrafficModel};
    use crate::canary::{Metric, Outcome, Sample};

    fn simulated(baseline: &TrafficModel, canary: &TrafficModel, calls: usize) -> CheckInput {
        let mut rng = SimRng::seed_from(11);
        let mut input = CheckInput {
            edge_source: "frontend".into(),
            edge_target: "reviews".into(),
            operation: "GET /reviews".into(),
            ..CheckInput::default()
        };
        baseline.extend(&mut input.baseline, calls, &mut rng);
        canary.extend(&mut input.canary, calls, &mut rng);
        input
    }

    #[test]
    fn regression_on_one_edge_fails_the_verdict() {
        let healthy = TrafficModel::default();
        let failing = TrafficModel {
            error_rate: 0.08,
            ..TrafficModel::default()
        };
        let inputs = [
            simulated(&healthy, &healthy, 2000),
            simulated(&healthy, &failing, 2000),
        ];
        let verdict = judge(&inputs, &JudgeConfig::default()).unwrap();
        assert_eq!(verdict.verdict, Outcome::Fail);
        assert_eq!(verdict.checks.len(), 4);
        let failed: Vec<_> = verdict
            .checks
            .iter()
            .filter(|check| check.result == Outcome::Fail)
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].metric, Metric::ErrorRate);
        assert_eq!(verdict.score, 75);
        // The threshold reflects the split budget: 4 checks at alpha 0.01.
        assert_eq!(failed[0].statistic.as_ref().unwrap().threshold, 400.0);
    }

    #[test]
    fn too_little_data_everywhere_is_inconclusive() {
        let healthy = TrafficModel::default();
        let failing = TrafficModel {
            error_rate: 0.5,
            ..TrafficModel::default()
        };
        let verdict = judge(
            &[simulated(&healthy, &failing, 40)],
            &JudgeConfig::default(),
        )
        .unwrap();
        assert_eq!(verdict.verdict, Outcome::Inconclusive);
        assert!(
            verdict
                .checks
                .iter()
                .all(|check| check.result == Outcome::Inconclusive)
        );
    }

    #[test]
    fn invalid_input_is_an_error() {
        let mut input = simulated(&TrafficModel::default(), &TrafficModel::default(), 10);
        input.canary = Sample {
            latencies_ms: vec![],
            errors: 5,
            requests: 1,
            ..Sample::default()
        };
        let error = judge(&[input], &JudgeConfig::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid canary sample for check frontend->reviews GET /reviews: \
             5 errors out of 1 requests"
        );
    }

    #[test]
    fn no_inputs_is_inconclusive() {
        let verdict = judge(&[], &JudgeConfig::default()).unwrap();
        assert_eq!(verdict.verdict, Outcome::Inconclusive);
    }
}
