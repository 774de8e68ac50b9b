//! A canary analysis from stored spans to the API's answer: scan the window, judge the
//! service edge by edge, fail a canary whose pods stand out from their peers, and gather
//! the evidence a person needs to see why.
//!
//! ```text
//! CanaryScan ─► CanaryInputs ─► judge ──────────────────────────┐
//!     │                                                          ├─► verdict, score, checks
//! load_pod_stats ─► detect_outliers ─► canary pods flagged ──────┘
//!     │
//!     └─► failing / slow canary traces ─► demarcate (baseline traces as reference)
//!                                          ─► regression_start, suspects, exemplars
//! ```
//!
//! The judge's checks are relative: each compares the canary with the baseline on the same
//! edge and operation over the same window. A fault both sides share, such as a dependency
//! failing for everyone, shows on both and fails no check. The outlier check is not
//! relative to the baseline: it compares a canary pod with the other pods of its workload,
//! so it only speaks when the canary shares a workload with other pods or runs several.

use serde::Serialize;
use tracegate_storage::Tables;

use crate::canary::evidence::evidence;
use crate::canary::math::median;
use crate::canary::{CanaryScan, Evidence, SidedOutlier};
use crate::canary::{
    CheckResult, Edge, JudgeConfig, Metric, Outcome, SideValues, SpanSelector, Statistic, judge,
};
use crate::canary_inputs::CanaryInputs;
use crate::error::QueryError;
use crate::outliers::{Detector, Outlier, OutlierConfig, PodStats, detect_outliers};
use crate::pod_stats::{load_pod_stats, pod_outlier_config};
use crate::table::TimeRange;

/// One canary question: which service, which spans on each side, over which window.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryQuestion {
    /// The service whose canary is judged (`service.name`).
    pub service: String,
    /// The baseline's spans.
    pub baseline: SpanSelector,
    /// The canary's spans.
    pub canary: SpanSelector,
    /// The window; for repeated looks, keep its start and move its end.
    pub range: TimeRange,
    /// The judge's knobs.
    pub judge: JudgeConfig,
    /// The pod outlier detectors' knobs.
    pub outliers: OutlierConfig,
}

impl CanaryQuestion {
    /// A question with the default judge and [`pod_outlier_config`].
    pub fn new(
        service: impl Into<String>,
        baseline: SpanSelector,
        canary: SpanSelector,
        range: TimeRange,
    ) -> Self {
        Self {
            service: service.into(),
            baseline,
            canary,
            range,
            judge: JudgeConfig::default(),
            outliers: pod_outlier_config(),
        }
    }
}

/// A canary pod that the outlier detectors flagged among its workload's pods.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlierCheck {
    /// The service to itself: the check is about the service's pods, not one edge.
    pub edge: Edge,
    /// `*`: all operations.
    pub operation: String,
    /// Always `outlier`.
    pub metric: &'static str,
    /// The detector that flagged the pod.
    pub detector: Detector,
    /// The flagged canary pod.
    pub pod: String,
    /// The other pods of the workload, pooled.
    pub baseline: SideValues,
    /// The flagged pod.
    pub canary: SideValues,
    /// The detector's value and threshold.
    pub statistic: Statistic,
    /// Always `fail`: only flagged pods become checks.
    pub result: Outcome,
    /// One sentence on why.
    pub reason: String,
}

/// One check of the answer: the judge's, or a flagged canary pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AnswerCheck {
    /// An error-rate or latency check of one edge and operation.
    Judge(CheckResult),
    /// A canary pod that stands out from its peers.
    Outlier(OutlierCheck),
}

impl AnswerCheck {
    pub(crate) fn result(&self) -> Outcome {
        match self {
            Self::Judge(check) => check.result,
            Self::Outlier(check) => check.result,
        }
    }

    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Judge(check) => format!(
                "{} {}->{} {}: {}",
                metric_name(check.metric),
                check.edge.source,
                check.edge.target,
                check.operation,
                check.reason
            ),
            Self::Outlier(check) => format!("outlier {}: {}", check.pod, check.reason),
        }
    }
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::ErrorRate => "error_rate",
        Metric::Latency => "latency",
    }
}

/// The answer of `/api/v1/canary/*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryAnswer {
    /// `fail` when any check fails; else `pass` when any passes; else `inconclusive`.
    pub verdict: Outcome,
    /// Share of conclusive checks that passed, 0 to 100.
    pub score: u8,
    /// One sentence on the verdict, for people and webhook logs.
    pub reason: String,
    /// The service judged.
    pub service: String,
    /// Every check: the judge's in input order, then flagged canary pods.
    pub checks: Vec<AnswerCheck>,
    /// What stands behind the verdict.
    pub evidence: Evidence,
}

/// Runs one canary analysis over stored spans (see the module docs).
///
/// # Errors
/// [`QueryError::BadRequest`] when both selectors are the same or a config is out of
/// range; query and storage errors.
pub async fn analyze_canary(
    tables: &Tables,
    question: &CanaryQuestion,
) -> Result<CanaryAnswer, QueryError> {
    if question.baseline == question.canary {
        return Err(QueryError::BadRequest(
            "baseline and canary are the same selector".to_owned(),
        ));
    }

    // The judge, edge by edge.
    let scan = CanaryScan::load(
        tables,
        question.range,
        &question.service,
        &question.baseline,
        &question.canary,
    )
    .await?;
    let inputs = scan.inputs()?;
    let verdict = judge(&inputs.inputs, &question.judge)
        .map_err(|error| QueryError::BadRequest(error.to_string()))?;

    // The canary's pods against their peers.
    let pods = load_pod_stats(tables, question.range, Some(&question.service)).await?;
    let outliers = detect_outliers(&pods, &question.outliers)
        .map_err(|error| QueryError::BadRequest(error.to_string()))?;
    let sided = sided_outliers(outliers, &inputs);
    let outlier_checks: Vec<OutlierCheck> = sided
        .iter()
        .filter(|outlier| outlier.side == "canary")
        .map(|outlier| outlier_check(&outlier.outlier, &pods))
        .collect();

    // One verdict over both kinds of checks.
    let mut checks: Vec<AnswerCheck> = verdict.checks.into_iter().map(AnswerCheck::Judge).collect();
    checks.extend(outlier_checks.into_iter().map(AnswerCheck::Outlier));
    let (outcome, score) = outcome_and_score(&checks);
    let reason = reason(outcome, &checks, &question.service);

    let evidence = evidence(&scan, &inputs, &checks, question, outcome, sided)?;
    Ok(CanaryAnswer {
        verdict: outcome,
        score,
        reason,
        service: question.service.clone(),
        checks,
        evidence,
    })
}

/// The verdict rule of [`crate::canary::Verdict::from_checks`], over every check.
fn outcome_and_score(checks: &[AnswerCheck]) -> (Outcome, u8) {
    let count = |outcome| checks.iter().filter(|c| c.result() == outcome).count();
    crate::canary::verdict::verdict_rule(count(Outcome::Pass), count(Outcome::Fail))
}

fn reason(outcome: Outcome, checks: &[AnswerCheck], service: &str) -> String {
    let count = |outcome| checks.iter().filter(|c| c.result() == outcome).count();
    let first = |outcome| checks.iter().find(|c| c.result() == outcome);
    match (outcome, first(outcome)) {
        (Outcome::Fail, Some(check)) => format!(
            "{} of {} checks failed; first: {}",
            count(Outcome::Fail),
            checks.len(),
            check.summary()
        ),
        (Outcome::Pass, _) => format!(
            "{} checks passed and {} were inconclusive: the canary is no worse than its \
             baseline on any edge",
            count(Outcome::Pass),
            count(Outcome::Inconclusive)
        ),
        (_, Some(check)) => format!(
            "none of {} checks had enough data; first: {}",
            checks.len(),
            check.summary()
        ),
        (_, None) => format!(
            "no call of service {service} in the window matched the baseline or canary selector"
        ),
    }
}

/// Each outlier of the service with its side: `canary` for a pod only the canary's spans
/// ran in, `baseline` likewise, `neither` otherwise.
fn sided_outliers(outliers: Vec<Outlier>, inputs: &CanaryInputs) -> Vec<SidedOutlier> {
    outliers
        .into_iter()
        .map(|outlier| {
            let in_baseline = inputs.baseline.pods.contains(&outlier.pod);
            let in_canary = inputs.canary.pods.contains(&outlier.pod);
            let side = match (in_baseline, in_canary) {
                (false, true) => "canary",
                (true, false) => "baseline",
                _ => "neither",
            };
            SidedOutlier { outlier, side }
        })
        .collect()
}

fn outlier_check(outlier: &Outlier, pods: &[PodStats]) -> OutlierCheck {
    let same_workload =
        |pod: &&PodStats| pod.service == outlier.service && pod.workload == outlier.workload;
    let (flagged, peers): (Vec<&PodStats>, Vec<&PodStats>) = pods
        .iter()
        .filter(same_workload)
        .partition(|pod| pod.pod == outlier.pod);
    let side = |pods: &[&PodStats]| {
        let requests: u64 = pods.iter().map(|pod| pod.requests).sum();
        let errors: u64 = pods.iter().map(|pod| pod.errors).sum();
        let latencies: Vec<f64> = pods
            .iter()
            .flat_map(|pod| pod.latencies_ms.iter().copied())
            .collect();
        SideValues {
            requests,
            errors: Some(errors),
            error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
            p50_ms: median(&latencies),
            ..SideValues::default()
        }
    };
    let detector = outlier.detector;
    let what = match detector {
        Detector::ConsecutiveErrors => format!(
            "{} consecutive errors, {} make an outlier",
            outlier.value, outlier.threshold
        ),
        Detector::SuccessRate => format!(
            "success rate {:.2}% below its peers' threshold {:.2}%",
            100.0 * outlier.value,
            100.0 * outlier.threshold
        ),
        Detector::FailurePercentage => format!(
            "failure rate {:.2}% at or above {:.2}%",
            100.0 * outlier.value,
            100.0 * outlier.threshold
        ),
        Detector::Latency => format!(
            "median latency {:.1} ms above its peers' threshold {:.1} ms",
            outlier.value, outlier.threshold
        ),
    };
    OutlierCheck {
        edge: Edge {
            source: outlier.service.clone(),
            target: outlier.service.clone(),
        },
        operation: "*".to_owned(),
        metric: "outlier",
        detector,
        pod: outlier.pod.clone(),
        baseline: side(&peers),
        canary: side(&flagged),
        statistic: Statistic {
            name: "value".to_owned(),
            method: serde_json::to_value(detector)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            value: outlier.value,
            threshold: outlier.threshold,
        },
        result: Outcome::Fail,
        reason: format!(
            "canary pod {} of workload {:?} stands out from the workload's other pods: {what}",
            outlier.pod, outlier.workload
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge_check(result: Outcome) -> AnswerCheck {
        AnswerCheck::Judge(CheckResult {
            edge: Edge {
                source: "frontend".into(),
                target: "reviews".into(),
            },
            operation: "GET /reviews".into(),
            metric: Metric::ErrorRate,
            baseline: SideValues::default(),
            canary: SideValues::default(),
            effect: None,
            statistic: None,
            result,
            reason: "test".into(),
        })
    }

    fn flagged_pod() -> AnswerCheck {
        let outlier = Outlier {
            service: "reviews".into(),
            workload: "reviews".into(),
            pod: "reviews-2".into(),
            version: "v2".into(),
            detector: Detector::ConsecutiveErrors,
            value: 6.0,
            threshold: 5.0,
            requests: 40,
        };
        AnswerCheck::Outlier(outlier_check(&outlier, &[]))
    }

    #[test]
    fn a_flagged_canary_pod_fails_an_otherwise_passing_canary() {
        let checks = [
            judge_check(Outcome::Pass),
            judge_check(Outcome::Inconclusive),
        ];
        assert_eq!(outcome_and_score(&checks), (Outcome::Pass, 100));
        let checks = [
            judge_check(Outcome::Pass),
            judge_check(Outcome::Inconclusive),
            flagged_pod(),
        ];
        assert_eq!(outcome_and_score(&checks), (Outcome::Fail, 50));
        let text = reason(Outcome::Fail, &checks, "reviews");
        assert!(text.contains("outlier reviews-2"), "{text}");
        assert!(text.contains("6 consecutive errors"), "{text}");
    }

    #[test]
    fn outlier_checks_serialize_like_judge_checks() {
        let json = serde_json::to_value(flagged_pod()).unwrap();
        for field in ["edge", "metric", "baseline", "canary", "result", "reason"] {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
        assert_eq!(json["metric"], "outlier");
        assert_eq!(json["result"], "fail");
        assert_eq!(json["statistic"]["method"], "consecutive_errors");
    }

    mod stored {
        //! Analyses over a store filled from hand-made OTLP: one `reviews` workload whose
        //! pods run `v1` (three pods) and `v2` (two pods), as Argo Rollouts runs a canary.

        use super::super::*;
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
        use serde_json::json;

        const START: u64 = 1_700_000_000_000_000_000;
        const PODS: [(&str, &str, &str); 5] = [
            ("reviews-0", "v1", "stable"),
            ("reviews-1", "v1", "stable"),
            ("reviews-2", "v1", "stable"),
            ("reviews-3", "v2", "canary"),
            ("reviews-4", "v2", "canary"),
        ];

        fn text(key: &str, value: &str) -> KeyValue {
            KeyValue {
                key: key.into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue(value.into())),
                }),
                ..KeyValue::default()
            }
        }

        fn resource(service: &str, pod: &str, version: &str, hash: &str) -> Resource {
            Resource {
                attributes: vec![
                    text("service.name", service),
                    text("service.version", version),
                    text("k8s.deployment.name", service),
                    text("k8s.pod.name", pod),
                    text("rollouts-pod-template-hash", hash),
                ],
                ..Resource::default()
            }
        }

        fn span(
            trace: u64,
            id: u8,
            parent: Option<u8>,
            kind: i32,
            start: u64,
            error: bool,
        ) -> Span {
            let mut trace_id = [7u8; 16];
            trace_id[8..].copy_from_slice(&trace.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: vec![id; 8],
                parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
                name: "GET /reviews".into(),
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: start + (5 + (trace * 7) % 11) * 1_000_000,
                status: error.then(|| Status {
                    code: 2,
                    message: "failed".into(),
                }),
                ..Span::default()
            }
        }

        /// `traces` calls from frontend to reviews, round robin over the pods;
        /// `fails(trace, pod)` decides which fail.
        fn tables(traces: u64, fails: impl Fn(u64, &str) -> bool) -> tracegate_storage::Tables {
            let frontend = resource("frontend", "frontend-0", "1.0", "f");
            let mut groups: Vec<(Resource, Vec<Span>)> = vec![(frontend, Vec::new())];
            for (pod, version, hash) in PODS {
                groups.push((resource("reviews", pod, version, hash), Vec::new()));
            }
            for trace in 0..traces {
                let start = START + trace * 1_000_000;
                let index = (trace % PODS.len() as u64) as usize;
                let error = fails(trace, PODS[index].0);
                groups[0].1.push(span(trace, 1, None, 2, start, error));
                groups[0]
                    .1
                    .push(span(trace, 2, Some(1), 3, start + 10, error));
                let mut server = span(trace, 3, Some(2), 2, start + 20, error);
                // A span attribute without a column of its own, kept in the protobuf rest.
                server.attributes.push(text("app.track", PODS[index].2));
                groups[1 + index].1.push(server);
            }
            let request = ExportTraceServiceRequest {
                resource_spans: groups
                    .into_iter()
                    .map(|(resource, spans)| ResourceSpans {
                        resource: Some(resource),
                        scope_spans: vec![ScopeSpans {
                            spans,
                            ..ScopeSpans::default()
                        }],
                        ..ResourceSpans::default()
                    })
                    .collect(),
            };
            let batch = tracegate_storage::columnarize(&request)
                .batch
                .expect("valid spans");
            tracegate_storage::Tables {
                head: vec![batch],
                ..tracegate_storage::Tables::default()
            }
        }

        fn question(baseline: SpanSelector, canary: SpanSelector) -> CanaryQuestion {
            let range = TimeRange {
                start_unix_nano: START as i64,
                end_unix_nano: START as i64 + 3_600_000_000_000,
            };
            CanaryQuestion::new("reviews", baseline, canary, range)
        }

        /// Baseline pods fail one call in 300; `reviews-3` fails six calls in a row.
        fn one_canary_pod_fails_six_in_a_row(trace: u64, pod: &str) -> bool {
            let nth_call_of_pod = trace / PODS.len() as u64;
            match pod {
                "reviews-3" => (20..26).contains(&nth_call_of_pod),
                "reviews-4" => false,
                _ => nth_call_of_pod % 300 == 7,
            }
        }

        #[tokio::test]
        async fn a_canary_pod_with_a_run_of_errors_fails_the_canary_by_itself() {
            let tables = tables(2000, one_canary_pod_fails_six_in_a_row);
            let question = question(SpanSelector::version("v1"), SpanSelector::version("v2"));
            let answer = analyze_canary(&tables, &question).await.unwrap();

            assert_eq!(answer.verdict, Outcome::Fail, "{}", answer.reason);
            let judged: Vec<&CheckResult> = answer
                .checks
                .iter()
                .filter_map(|check| match check {
                    AnswerCheck::Judge(check) => Some(check),
                    AnswerCheck::Outlier(_) => None,
                })
                .collect();
            assert_eq!(judged.len(), 2);
            assert_eq!(
                (
                    judged[0].edge.source.as_str(),
                    judged[0].edge.target.as_str()
                ),
                ("frontend", "reviews")
            );
            assert!(
                judged.iter().all(|check| check.result != Outcome::Fail),
                "{judged:#?}"
            );
            let flagged: Vec<&OutlierCheck> = answer
                .checks
                .iter()
                .filter_map(|check| match check {
                    AnswerCheck::Outlier(check) => Some(check),
                    AnswerCheck::Judge(_) => None,
                })
                .collect();
            assert_eq!(flagged.len(), 1, "{flagged:#?}");
            assert_eq!(flagged[0].pod, "reviews-3");
            assert_eq!(flagged[0].detector, Detector::ConsecutiveErrors);
            assert_eq!(flagged[0].canary.requests, 400);
            assert_eq!(flagged[0].baseline.requests, 1600);
            assert!(
                answer.reason.contains("outlier reviews-3"),
                "{}",
                answer.reason
            );

            let sides: Vec<(&str, &str)> = answer
                .evidence
                .outliers
                .iter()
                .map(|o| (o.outlier.pod.as_str(), o.side))
                .collect();
            assert!(sides.contains(&("reviews-3", "canary")), "{sides:?}");
            assert_eq!(answer.evidence.canary.requests, 800);
            assert_eq!(answer.evidence.canary.errors, 6);
            assert_eq!(answer.evidence.exemplar_trace_ids.len(), 6);
            let start = answer.evidence.regression_start.as_ref().unwrap();
            assert_eq!(start.service, "reviews");
            assert_eq!(start.pod.as_deref(), Some("reviews-3"), "{start:?}");
        }

        #[tokio::test]
        async fn attribute_selectors_read_stored_resources() {
            let tables = tables(1000, |_, _| false);
            let by_version = question(SpanSelector::version("v1"), SpanSelector::version("v2"));
            let by_hash = question(
                SpanSelector::from_json(
                    "baseline",
                    &json!({"attributes": {"rollouts-pod-template-hash": "stable"}}),
                )
                .unwrap(),
                SpanSelector::from_json(
                    "canary",
                    &json!({"attributes": {"rollouts-pod-template-hash": "canary"}}),
                )
                .unwrap(),
            );
            let expected = analyze_canary(&tables, &by_version).await.unwrap();
            let answer = analyze_canary(&tables, &by_hash).await.unwrap();
            assert_eq!(answer.verdict, Outcome::Pass, "{}", answer.reason);
            assert_eq!(answer.checks, expected.checks);
            assert_eq!(answer.evidence.canary.requests, 400);
            assert_eq!(answer.evidence.baseline.requests, 600);

            let by_span_attribute = question(
                SpanSelector::from_json(
                    "baseline",
                    &json!({"attributes": {"app.track": "stable"}}),
                )
                .unwrap(),
                SpanSelector::from_json("canary", &json!({"attributes": {"app.track": "canary"}}))
                    .unwrap(),
            );
            let answer = analyze_canary(&tables, &by_span_attribute).await.unwrap();
            assert_eq!(answer.checks, expected.checks);

            let nobody = question(
                SpanSelector::version("v1"),
                SpanSelector::from_json("canary", &json!({"attributes": {"team": "books"}}))
                    .unwrap(),
            );
            let answer = analyze_canary(&tables, &nobody).await.unwrap();
            assert_eq!(answer.evidence.canary.requests, 0);
            assert_eq!(answer.verdict, Outcome::Inconclusive);
        }

        #[tokio::test]
        async fn stored_pod_stats_match_the_spans() {
            let tables = tables(1000, one_canary_pod_fails_six_in_a_row);
            let range = question(SpanSelector::version("v1"), SpanSelector::version("v2")).range;
            let pods = load_pod_stats(&tables, range, Some("reviews"))
                .await
                .unwrap();
            let names: Vec<&str> = pods.iter().map(|pod| pod.pod.as_str()).collect();
            assert_eq!(names, PODS.map(|(pod, _, _)| pod));
            let canary = &pods[3];
            assert_eq!(
                (
                    canary.requests,
                    canary.errors,
                    canary.consecutive_errors_max
                ),
                (200, 6, 6)
            );
            assert_eq!(
                (canary.version.as_str(), canary.workload.as_str()),
                ("v2", "reviews")
            );
            let all = load_pod_stats(&tables, range, None).await.unwrap();
            assert_eq!(all.len(), 6);
        }
    }

    #[test]
    fn no_traffic_is_inconclusive_with_a_reason() {
        assert_eq!(outcome_and_score(&[]), (Outcome::Inconclusive, 0));
        let text = reason(Outcome::Inconclusive, &[], "reviews");
        assert!(text.contains("no call of service reviews"), "{text}");
    }
}
