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

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use tracegate_storage::Tables;

use crate::canary::math::median;
use crate::canary::{
    CheckResult, Edge, JudgeConfig, Metric, Outcome, SideValues, SpanSelector, Statistic, judge,
};
use crate::canary_inputs::{CanaryInputs, CanaryScan, SideSummary};
use crate::demarcation::{Suspect, SuspectKind, demarcate};
use crate::error::QueryError;
use crate::outliers::{Detector, Outlier, OutlierConfig, PodStats, detect_outliers};
use crate::pod_stats::{load_pod_stats, pod_outlier_config};
use crate::table::TimeRange;

/// Exemplar trace ids per list in the answer.
const MAX_EXEMPLARS: usize = 10;

/// Canary (and baseline) traces handed to demarcation, per kind.
const MAX_DEMARCATION_TRACES: usize = 200;

/// Demarcation suspects kept in the evidence.
const MAX_SUSPECTS: usize = 5;

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
    fn result(&self) -> Outcome {
        match self {
            Self::Judge(check) => check.result,
            Self::Outlier(check) => check.result,
        }
    }

    fn summary(&self) -> String {
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

/// What one side did, for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideEvidence {
    /// The side's selector.
    pub selector: SpanSelector,
    /// Calls into the service.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// `errors / requests`, absent without requests.
    pub error_rate: Option<f64>,
    /// Traces with a call of this side.
    pub traces: usize,
    /// Pods, workloads and versions seen.
    pub pods: BTreeSet<String>,
    /// Workloads seen.
    pub workloads: BTreeSet<String>,
    /// Versions seen.
    pub versions: BTreeSet<String>,
}

impl SideEvidence {
    fn of(selector: &SpanSelector, side: &SideSummary) -> Self {
        Self {
            selector: selector.clone(),
            requests: side.requests,
            errors: side.errors,
            error_rate: (side.requests > 0).then(|| side.errors as f64 / side.requests as f64),
            traces: side.trace_starts.len(),
            pods: side.pods.clone(),
            workloads: side.workloads.clone(),
            versions: side.versions.clone(),
        }
    }
}

/// Where the canary's regression starts, from demarcation of its failing (or slow)
/// traces, or from the first failing check when demarcation names nothing about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionStart {
    /// Errors or latency.
    pub kind: SuspectKind,
    /// The service where it starts.
    pub service: String,
    /// The workload, when known.
    pub workload: Option<String>,
    /// The version, when known.
    pub version: Option<String>,
    /// The pod, when known.
    pub pod: Option<String>,
    /// The operation, when known.
    pub operation: Option<String>,
    /// The edge whose calls regressed.
    pub edge: Option<Edge>,
    /// `demarcation` or `check`.
    pub source: &'static str,
    /// Why, in a sentence.
    pub reason: String,
}

/// An outlier pod of the service, with the side it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SidedOutlier {
    /// The detector's finding.
    #[serde(flatten)]
    pub outlier: Outlier,
    /// `baseline`, `canary` or `neither` (a pod of both or of no side).
    pub side: &'static str,
}

/// Everything behind a verdict that a person would look at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Traces of failed canary calls, those on failing checks first, latest first.
    pub exemplar_trace_ids: Vec<String>,
    /// Traces of the slowest canary calls on failing latency checks.
    pub slow_exemplar_trace_ids: Vec<String>,
    /// Where the regression starts, when the verdict is `fail`.
    pub regression_start: Option<RegressionStart>,
    /// Demarcation of the canary's failing or slow traces, most likely first.
    pub suspects: Vec<Suspect>,
    /// The baseline's side.
    pub baseline: SideEvidence,
    /// The canary's side.
    pub canary: SideEvidence,
    /// Outlier pods of the service over the window.
    pub outliers: Vec<SidedOutlier>,
    /// Spans of the service both selectors matched, counted for neither side.
    pub ambiguous_spans: u64,
    /// The window's start, Unix nanoseconds.
    pub start_unix_nano: i64,
    /// The window's end, Unix nanoseconds.
    pub end_unix_nano: i64,
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
    let (passed, failed) = (count(Outcome::Pass), count(Outcome::Fail));
    let outcome = if failed > 0 {
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
    (outcome, score as u8)
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

fn hex_ids(ids: impl IntoIterator<Item = [u8; 16]>) -> Vec<String> {
    ids.into_iter().map(hex::encode).collect()
}

/// Exemplars, demarcation and the sides' summaries.
fn evidence(
    scan: &CanaryScan,
    inputs: &CanaryInputs,
    checks: &[AnswerCheck],
    question: &CanaryQuestion,
    outcome: Outcome,
    outliers: Vec<SidedOutlier>,
) -> Result<Evidence, QueryError> {
    // The judge's checks come two per input: error rate, then latency.
    let failed = |index: usize| matches!(checks.get(index), Some(AnswerCheck::Judge(check)) if check.result == Outcome::Fail);
    let error_failures: Vec<usize> = (0..inputs.inputs.len())
        .filter(|&i| failed(2 * i))
        .collect();
    let latency_failures: Vec<usize> = (0..inputs.inputs.len())
        .filter(|&i| failed(2 * i + 1))
        .collect();

    // Failed canary calls: on failing checks first (latest first), then any other.
    let mut exemplars: Vec<[u8; 16]> = Vec::new();
    let mut seen = HashSet::new();
    for &index in &error_failures {
        for &trace in inputs.traces[index].failing_canary.iter().rev() {
            if seen.insert(trace) {
                exemplars.push(trace);
            }
        }
    }
    for trace in inputs.canary.recent_traces(MAX_EXEMPLARS, true) {
        if seen.insert(trace) {
            exemplars.push(trace);
        }
    }
    let mut slow: Vec<[u8; 16]> = Vec::new();
    for &index in &latency_failures {
        for &trace in &inputs.traces[index].slowest_canary {
            if !slow.contains(&trace) {
                slow.push(trace);
            }
        }
    }

    // Demarcation of the canary's failing (and, for latency, recent) traces.
    let mut suspects = Vec::new();
    let mut regression_start = None;
    if outcome == Outcome::Fail {
        let mut window: HashSet<[u8; 16]> = inputs
            .canary
            .recent_traces(MAX_DEMARCATION_TRACES, true)
            .into_iter()
            .collect();
        if !latency_failures.is_empty() {
            window.extend(inputs.canary.recent_traces(MAX_DEMARCATION_TRACES, false));
        }
        let reference: HashSet<[u8; 16]> = inputs
            .baseline
            .recent_traces(MAX_DEMARCATION_TRACES, false)
            .into_iter()
            .collect();
        let window_trees = scan.full_trees(&window)?;
        let reference_trees = scan.full_trees(&reference)?;
        let reference_trees = (!reference_trees.is_empty()).then_some(reference_trees.as_slice());
        suspects = demarcate(&window_trees, reference_trees);
        let kind = if error_failures.is_empty() && !latency_failures.is_empty() {
            SuspectKind::Latency
        } else {
            SuspectKind::Error
        };
        regression_start = regression_start_of(&suspects, kind, checks, question, inputs);
        suspects.truncate(MAX_SUSPECTS);
    }

    exemplars.truncate(MAX_EXEMPLARS);
    slow.truncate(MAX_EXEMPLARS);
    Ok(Evidence {
        exemplar_trace_ids: hex_ids(exemplars),
        slow_exemplar_trace_ids: hex_ids(slow),
        regression_start,
        suspects,
        baseline: SideEvidence::of(&question.baseline, &inputs.baseline),
        canary: SideEvidence::of(&question.canary, &inputs.canary),
        outliers,
        ambiguous_spans: inputs.ambiguous_spans,
        start_unix_nano: question.range.start_unix_nano,
        end_unix_nano: question.range.end_unix_nano,
    })
}

/// The most likely suspect of `kind` that concerns the canary: in the service on the
/// canary's side, or in a callee of a failing outgoing check. Falls back to the first
/// failing check.
fn regression_start_of(
    suspects: &[Suspect],
    kind: SuspectKind,
    checks: &[AnswerCheck],
    question: &CanaryQuestion,
    inputs: &CanaryInputs,
) -> Option<RegressionStart> {
    let failing_edges: Vec<&Edge> = checks
        .iter()
        .filter(|check| check.result() == Outcome::Fail)
        .map(|check| match check {
            AnswerCheck::Judge(check) => &check.edge,
            AnswerCheck::Outlier(check) => &check.edge,
        })
        .collect();
    let canary = &inputs.canary;
    let on_canary_side = |suspect: &Suspect| {
        suspect.service == question.service
            && suspect
                .pod
                .as_ref()
                .is_none_or(|pod| canary.pods.contains(pod))
            && suspect
                .version
                .as_ref()
                .is_none_or(|v| canary.versions.contains(v))
            && suspect
                .workload
                .as_ref()
                .is_none_or(|w| canary.workloads.contains(w))
    };
    let in_failing_callee = |suspect: &Suspect| {
        failing_edges
            .iter()
            .any(|edge| edge.source == question.service && edge.target == suspect.service)
    };
    let chosen = suspects
        .iter()
        .filter(|suspect| suspect.kind == kind)
        .find(|suspect| on_canary_side(suspect) || in_failing_callee(suspect));
    if let Some(suspect) = chosen {
        let edge = suspect
            .edge
            .as_ref()
            .map(|edge| Edge {
                source: edge.source.clone(),
                target: edge.target.clone(),
            })
            .or_else(|| {
                failing_edges
                    .iter()
                    .find(|edge| edge.target == suspect.service)
                    .or(failing_edges.first())
                    .map(|edge| (*edge).clone())
            });
        return Some(RegressionStart {
            kind: suspect.kind,
            service: suspect.service.clone(),
            workload: suspect.workload.clone(),
            version: suspect.version.clone(),
            pod: suspect.pod.clone(),
            operation: suspect.operation.clone(),
            edge,
            source: "demarcation",
            reason: suspect.reason.clone(),
        });
    }

    // No suspect concerns the canary: name the first failing check's edge.
    let check = checks
        .iter()
        .find(|check| check.result() == Outcome::Fail)?;
    let single = |set: &BTreeSet<String>| {
        (set.len() == 1)
            .then(|| set.iter().next().cloned())
            .flatten()
    };
    let (kind, edge, operation) = match check {
        AnswerCheck::Judge(check) => {
            let kind = match check.metric {
                Metric::ErrorRate => SuspectKind::Error,
                Metric::Latency => SuspectKind::Latency,
            };
            (kind, check.edge.clone(), Some(check.operation.clone()))
        }
        AnswerCheck::Outlier(check) => (SuspectKind::Error, check.edge.clone(), None),
    };
    Some(RegressionStart {
        kind,
        service: question.service.clone(),
        workload: single(&canary.workloads),
        version: single(&canary.versions),
        pod: single(&canary.pods),
        operation,
        edge: Some(edge),
        source: "check",
        reason: check.summary(),
    })
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

    #[test]
    fn no_traffic_is_inconclusive_with_a_reason() {
        assert_eq!(outcome_and_score(&[]), (Outcome::Inconclusive, 0));
        let text = reason(Outcome::Inconclusive, &[], "reviews");
        assert!(text.contains("no call of service reviews"), "{text}");
    }
}
