//! The judge's answer: one result per check and a verdict over all of them, in the JSON
//! shape of `/api/v1/canary/*`.

use serde::{Deserialize, Serialize};

/// The answer for one check or for the whole comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Enough data, and no evidence of a meaningful regression.
    Pass,
    /// Evidence of a regression at least as large as the configured minimum effect.
    Fail,
    /// Not enough data to tell.
    Inconclusive,
}

/// What a check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Share of calls that failed.
    ErrorRate,
    /// Call latency, as a whole distribution.
    Latency,
}

/// An edge of the service graph, `source -> target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Edge {
    /// The calling service.
    pub source: String,
    /// The called service or virtual node.
    pub target: String,
}

/// What one side did, in the terms of the check's metric.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SideValues {
    /// Calls counted (for latency: latencies counted).
    pub requests: u64,
    /// Failed calls (error-rate checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    /// Failed share of calls, a fraction (error-rate checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Median latency (latency checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 99th-percentile latency (latency checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// How much worse the canary is, as estimated from the data (positive means worse).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Effect {
    /// Error-rate difference, canary minus baseline, as a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute_increase: Option<f64>,
    /// Latency difference at `quantile`, canary minus baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute_increase_ms: Option<f64>,
    /// Canary over baseline, minus one (0.5 = 50% worse); absent when the baseline is zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_increase: Option<f64>,
    /// For latency: the quantile level where the canary is worst relative to the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
}

/// The test statistic behind a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistic {
    /// `e_value` (fails when at or above `threshold`) or `p_value` (fails when below).
    pub name: String,
    /// The test that produced it.
    pub method: String,
    /// Its value; e-values saturate at 1e300 so that JSON can carry them.
    pub value: f64,
    /// The value at which the check would fail, given enough effect.
    pub threshold: f64,
}

/// The judgement of one check: one edge, operation and metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The edge judged.
    pub edge: Edge,
    /// The operation on the edge.
    pub operation: String,
    /// What was compared.
    pub metric: Metric,
    /// The baseline's values.
    pub baseline: SideValues,
    /// The canary's values.
    pub canary: SideValues,
    /// The estimated effect; absent when there was too little data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    /// The test statistic; absent when there was too little data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<Statistic>,
    /// This check's answer.
    pub result: Outcome,
    /// One sentence on why, for people.
    pub reason: String,
}

/// The answer over all checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// `fail` when any check fails; else `pass` when any check passes; else `inconclusive`.
    pub verdict: Outcome,
    /// Share of conclusive checks that passed, 0 to 100; 0 when none is conclusive. It
    /// informs people; the verdict does not depend on a score threshold.
    pub score: u8,
    /// Every check, in input order, error rate before latency.
    pub checks: Vec<CheckResult>,
}

impl Verdict {
    /// Combines check results into the verdict and score described on the fields.
    pub fn from_checks(checks: Vec<CheckResult>) -> Self {
        let count = |outcome| {
            checks
                .iter()
                .filter(|check| check.result == outcome)
                .count()
        };
        let (verdict, score) = verdict_rule(count(Outcome::Pass), count(Outcome::Fail));
        Self {
            verdict,
            score,
            checks,
        }
    }
}

/// Clamps an e-value so that JSON can carry it (JSON has no infinity).
pub(crate) fn saturate(value: f64) -> f64 {
    value.min(1e300)
}

/// The verdict rule over counts of passed and failed checks: any failure fails, else any
/// pass passes, else inconclusive; the score is the share of conclusive checks that
/// passed, rounded to the nearest integer (0 with no conclusive check).
pub(crate) fn verdict_rule(passed: usize, failed: usize) -> (Outcome, u8) {
    let verdict = if failed > 0 {
        Outcome::Fail
    } else if passed > 0 {
        Outcome::Pass
    } else {
        Outcome::Inconclusive
    };
    let conclusive = passed + failed;
    let score = (100 * passed + conclusive / 2)
        .checked_div(conclusive)
        .unwrap_or(0);
    (verdict, u8::try_from(score).unwrap_or(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(result: Outcome) -> CheckResult {
        CheckResult {
            edge: Edge {
                source: "frontend".into(),
                target: "reviews".into(),
            },
            operation: "GET /reviews".into(),
            metric: Metric::ErrorRate,
            baseline: SideValues {
                requests: 500,
                errors: Some(5),
                ..SideValues::default()
            },
            canary: SideValues {
                requests: 500,
                errors: Some(6),
                ..SideValues::default()
            },
            effect: None,
            statistic: None,
            result,
            reason: "test".into(),
        }
    }

    #[test]
    fn any_failure_fails_and_score_counts_conclusive_checks() {
        let verdict = Verdict::from_checks(vec![
            check(Outcome::Pass),
            check(Outcome::Fail),
            check(Outcome::Pass),
            check(Outcome::Inconclusive),
        ]);
        assert_eq!(verdict.verdict, Outcome::Fail);
        assert_eq!(verdict.score, 67);
    }

    #[test]
    fn no_conclusive_check_is_inconclusive() {
        let verdict = Verdict::from_checks(vec![check(Outcome::Inconclusive)]);
        assert_eq!((verdict.verdict, verdict.score), (Outcome::Inconclusive, 0));
        let verdict =
            Verdict::from_checks(vec![check(Outcome::Inconclusive), check(Outcome::Pass)]);
        assert_eq!((verdict.verdict, verdict.score), (Outcome::Pass, 100));
    }

    #[test]
    fn serializes_to_contract_names() {
        let json = serde_json::to_value(Verdict::from_checks(vec![check(Outcome::Pass)])).unwrap();
        assert_eq!(json["verdict"], "pass");
        assert_eq!(json["checks"][0]["edge"]["source"], "frontend");
        assert_eq!(json["checks"][0]["metric"], "error_rate");
        assert_eq!(json["checks"][0]["result"], "pass");
        assert_eq!(json["checks"][0]["baseline"]["errors"], 5);
        assert!(json["checks"][0]["baseline"].get("p99_ms").is_none());
    }
}
