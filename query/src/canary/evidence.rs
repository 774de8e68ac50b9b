//! The evidence behind a canary verdict: exemplar traces, where the regression starts
//! (fault demarcation of the canary's failing or slow traces against the baseline's), and
//! what each side did.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;

use crate::canary::{AnswerCheck, CanaryQuestion, CanaryScan, Edge, Metric, Outcome, SpanSelector};
use crate::canary_inputs::{CanaryInputs, SideSummary};
use crate::demarcation::{Suspect, SuspectKind, demarcate};
use crate::error::QueryError;
use crate::outliers::Outlier;

/// Exemplar trace ids per list in the answer.
const MAX_EXEMPLARS: usize = 10;

/// Canary (and baseline) traces handed to demarcation, per kind.
const MAX_DEMARCATION_TRACES: usize = 200;

/// Demarcation suspects kept in the evidence.
const MAX_SUSPECTS: usize = 5;
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

fn hex_ids(ids: impl IntoIterator<Item = [u8; 16]>) -> Vec<String> {
    ids.into_iter().map(hex::encode).collect()
}

/// Exemplars, demarcation and the sides' summaries.
pub(crate) fn evidence(
    scan: &CanaryScan,
    inputs: &CanaryInputs,
    checks: &[AnswerCheck],
    question: &CanaryQuestion,
    outcome: Outcome,
    outliers: Vec<SidedOutlier>,
) -> Result<Evidence, QueryError> {
    // The judge's checks come two per input: error rate, then latency.
    let failed = |index: usize| {
        let check = checks.get(index);
        matches!(check, Some(AnswerCheck::Judge(c)) if c.result == Outcome::Fail)
    };
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
