//! Fault demarcation: where errors and slowdowns start, judged from the call trees of a
//! time window.
//!
//! ```text
//!          ┌─► error origins ─► per service: narrow to pod, version, workload ──┐
//! trees ───┤                                                                    ├─► ranked
//!          └─► self times ─► against versions, pods, baseline ─► slowed traces ─┘   suspects
//! ```
//!
//! **Errors.** In each trace an *origin* is a span in error with no failing child below
//! it; the spans above it that failed because it did are propagators and are not blamed.
//! An OK CLIENT, PRODUCER, SERVER or CONSUMER span in between handled the failure (a
//! fallback swallowed it): the origin below stays the origin and the OK span is blamed for
//! nothing. A failed CLIENT or PRODUCER call with nothing failing below it blames the edge:
//! either no server span answered (the peer or the network failed), or the server saw no
//! error (the failure happened between the two).
//!
//! Origins are grouped per service and narrowed to the finest place that holds nearly all
//! of them while its neighbours are healthy: a pod when the other pods of its workload
//! served traffic with (almost) no origins, else a version when another version is clean,
//! else a workload, else the service. Score: the share of failing traces explained.
//!
//! **Latency.** The critical path splits each trace's latency into per-span shares (see
//! [`crate::tree`]). Per operation of a service, and per edge from a service to a callee
//! or peer, span self times are compared by medians against, in order: the service's other
//! versions, the other pods of the same workload, the other workloads, the same operation
//! in a baseline window, and, without a baseline, the service's other operations (a weak
//! signal, ranked lower). A slowdown is blamed for a trace when its excess critical-path
//! time is a noticeable share of the trace's latency. Score: the share of slowed traces
//! explained.
//!
//! **Ranking.** Most likely first, by the lower bound of the 95% Wilson interval of the
//! score over the traces behind it, so that one failing trace out of one does not outrank
//! fifty out of fifty-two; ties by trace count.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::span_view::{Placement, SpanKind, SpanView};
use crate::tree::{CallTree, NodeId, TreeNode};

/// Target of a failed or slow call whose client span names no peer and has no server
/// child.
pub const UNKNOWN_PEER: &str = "unknown_peer";

/// Exemplar trace ids per suspect.
const MAX_EXEMPLARS: usize = 5;

/// Share of a service's failing traces that a pod, version or workload must hold to be
/// blamed instead of the service. The healthy-neighbour test is the main guard; the few
/// origins left outside are narrowed again on their own.
const DOMINANT_SHARE: f64 = 0.75;

/// Spans the neighbours of a pod or version must have served to count as a contrast.
const MIN_HEALTHY_SPANS: usize = 5;

/// Neighbours are healthy when their origin rate is at most this fraction of the suspect's.
const HEALTHY_RATE_RATIO: f64 = 0.25;

/// Samples a pod, version, workload or baseline needs before its median is trusted.
const MIN_SAMPLES: usize = 5;

/// A median self time is slow at this multiple of its reference ...
const SLOWDOWN_RATIO: f64 = 1.5;

/// ... and at least this much above it, so that microsecond jitter is never a suspect.
const MIN_SLOWDOWN_NANOS: i64 = 1_000_000;

/// A slowdown slows a trace when its excess is at least this share of the trace's latency.
const SLOWED_SHARE: f64 = 0.1;

/// Comparing with the service's other operations (no baseline) needs a starker
/// difference, and a larger share of the trace, because operations differ by nature.
const OPERATIONS_RATIO: f64 = 10.0;
const OPERATIONS_SLOWED_SHARE: f64 = 0.5;

/// Ranking weight of a slowdown seen only against the service's other operations.
const UNCORROBORATED_WEIGHT: f64 = 0.5;

/// Whether a suspect explains errors or latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspectKind {
    /// Failing traces start here.
    Error,
    /// Slow traces spend their excess time here.
    Latency,
}

/// How finely a suspect is located.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspectLevel {
    /// One pod, while the other pods of its workload are healthy.
    Pod,
    /// One version of a service, while another version is healthy.
    Version,
    /// One workload of a service.
    Workload,
    /// The service as a whole.
    Service,
    /// The calls from a service to a callee or an uninstrumented peer.
    Edge,
}

/// The calls from one service to another service or to a virtual peer node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SuspectEdge {
    /// The calling service.
    pub source: String,
    /// The called service, or the virtual peer node (see [`SpanView::peer`]).
    pub target: String,
}

/// One place where errors or slowdowns start, in the contract's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspect {
    /// Errors or latency.
    pub kind: SuspectKind,
    /// The service, or the calling service of an edge.
    pub service: String,
    /// The workload, when the level names it or every blamed span shares it.
    pub workload: Option<String>,
    /// The pod, when the level names it or every blamed span shares it.
    pub pod: Option<String>,
    /// The version, when the level names it or every blamed span shares it.
    pub version: Option<String>,
    /// The operation (span name), when every blamed span shares it.
    pub operation: Option<String>,
    /// For edge suspects, the edge.
    pub edge: Option<SuspectEdge>,
    /// How finely the suspect is located.
    pub level: SuspectLevel,
    /// Share of the window's failing (errors) or slowed (latency) traces explained, 0..1.
    pub score: f64,
    /// Number of traces explained.
    pub traces: usize,
    /// Up to five of those traces, hex; for latency the most slowed first.
    pub exemplar_trace_ids: Vec<String>,
    /// Why, in a sentence, with the numbers behind it.
    pub reason: String,
}

/// Ranks the suspects for the errors and slowdowns in `window`, most likely first.
///
/// `baseline` holds the trees of an earlier, presumably healthy window (for example the
/// same length just before it); it lets a slowdown of a whole service or dependency show
/// even when all its pods are equally slow. Without it, such a slowdown can only be told
/// from the service's other operations, a weaker signal that is ranked lower.
pub fn demarcate(window: &[CallTree], baseline: Option<&[CallTree]>) -> Vec<Suspect> {
    let mut ranked: Vec<(f64, Suspect)> = error_suspects(window);
    ranked.extend(latency_suspects(window, baseline));
    ranked.sort_by(|(a_rank, a), (b_rank, b)| {
        b_rank
            .total_cmp(a_rank)
            .then(b.traces.cmp(&a.traces))
            .then(a.kind.cmp(&b.kind))
            .then(a.level.cmp(&b.level))
            .then(a.service.cmp(&b.service))
            .then(a.pod.cmp(&b.pod))
            .then(a.version.cmp(&b.version))
    });
    ranked.into_iter().map(|(_, suspect)| suspect).collect()
}

/// The contract's JSON for `/api/v1/demarcation`: `{"suspects": [...]}`.
pub fn suspects_to_json(suspects: &[Suspect]) -> Value {
    json!({ "suspects": suspects })
}

/// Where a span ran, below the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Unit<'a> {
    workload: Option<&'a str>,
    version: Option<&'a str>,
    pod: Option<&'a str>,
}

impl<'a> Unit<'a> {
    fn of(placement: &'a Placement) -> Self {
        Unit {
            workload: placement.workload.as_deref(),
            version: placement.version.as_deref(),
            pod: placement.pod.as_deref(),
        }
    }
}

/// A part of a service that a suspect can be narrowed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Scope<'a> {
    Pod(&'a str),
    Version(&'a str),
    Workload(&'a str),
    Service,
}

impl Scope<'_> {
    fn contains(self, unit: Unit<'_>) -> bool {
        match self {
            Scope::Pod(pod) => unit.pod == Some(pod),
            Scope::Version(version) => unit.version == Some(version),
            Scope::Workload(workload) => unit.workload == Some(workload),
            Scope::Service => true,
        }
    }

    fn level(self) -> SuspectLevel {
        match self {
            Scope::Pod(_) => SuspectLevel::Pod,
            Scope::Version(_) => SuspectLevel::Version,
            Scope::Workload(_) => SuspectLevel::Workload,
            Scope::Service => SuspectLevel::Service,
        }
    }
}

/// Where one trace's failure started.
struct Origin<'a> {
    trace: usize,
    span: &'a SpanView,
    /// For a failed call (CLIENT or PRODUCER origin): the callee or peer it blames.
    target: Option<&'a str>,
}

/// Spans served and origins found in one unit of a service.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    spans: usize,
    origins: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.spans += other.spans;
        self.origins += other.origins;
    }

    fn origin_rate(self) -> f64 {
        self.origins as f64 / self.spans.max(1) as f64
    }
}

/// Error suspects with their ranking key.
fn error_suspects(window: &[CallTree]) -> Vec<(f64, Suspect)> {
    let mut origins = Vec::new();
    for (trace, tree) in window.iter().enumerate() {
        find_origins(tree, trace, &mut origins);
    }
    let failing: BTreeSet<usize> = origins.iter().map(|origin| origin.trace).collect();
    if failing.is_empty() {
        return Vec::new();
    }

    // Traffic per unit, to tell whether the neighbours of a suspect are healthy.
    let mut traffic: BTreeMap<&str, BTreeMap<Unit<'_>, Tally>> = BTreeMap::new();
    for tree in window {
        for span in tree.nodes().filter_map(|(_, node)| node.span()) {
            if !span.kind.is_caller() {
                let service = traffic.entry(&span.placement.service).or_default();
                service.entry(Unit::of(&span.placement)).or_default().spans += 1;
            }
        }
    }
    for origin in origins.iter().filter(|origin| origin.target.is_none()) {
        let placement = &origin.span.placement;
        let service = traffic.entry(&placement.service).or_default();
        service.entry(Unit::of(placement)).or_default().origins += 1;
    }

    let mut by_service: BTreeMap<&str, Vec<&Origin<'_>>> = BTreeMap::new();
    let mut by_edge: BTreeMap<(&str, &str), Vec<&Origin<'_>>> = BTreeMap::new();
    for origin in &origins {
        let service = origin.span.placement.service.as_str();
        match origin.target {
            Some(target) => by_edge.entry((service, target)).or_default().push(origin),
            None => by_service.entry(service).or_default().push(origin),
        }
    }

    let mut suspects = Vec::new();
    for (service, service_origins) in by_service {
        let units = &traffic[service];
        for (scope, group, reason) in narrow_errors(service, service_origins, units) {
            let suspect = error_suspect(window, service, None, scope.level(), &group, reason);
            suspects.push(suspect);
        }
    }
    for ((source, target), group) in by_edge {
        let reason = format!(
            "{} failing trace(s) start at calls from {source} to {target} that failed with \
             nothing failing below them: no server answered, or it saw no error",
            distinct_traces(&group).len()
        );
        let edge = Some((source, target));
        let suspect = error_suspect(window, source, edge, SuspectLevel::Edge, &group, reason);
        suspects.push(suspect);
    }

    suspects
        .into_iter()
        .map(|mut suspect| {
            suspect.score = suspect.traces as f64 / failing.len() as f64;
            (wilson_lower_bound(suspect.traces, failing.len()), suspect)
        })
        .collect()
}

/// Finds the origins of one trace, children before parents.
fn find_origins<'a>(tree: &'a CallTree, trace: usize, origins: &mut Vec<Origin<'a>>) {
    let mut failure_below = vec![false; tree.num_nodes()];
    for (id, node) in tree.nodes().rev() {
        let below = tree.children(id).iter().any(|&child| {
            let child_node = tree.node(child);
            child_node.error() || (passes_failure_up(child_node) && failure_below[child.index()])
        });
        failure_below[id.index()] = below;
        let Some(span) = node.span() else {
            continue;
        };
        if !span.error || below {
            continue;
        }
        let target = span.kind.is_caller().then(|| call_target(tree, id, span));
        origins.push(Origin {
            trace,
            span,
            target,
        });
    }
}

/// Whether a failure below an OK node can still explain an error above it.
///
/// INTERNAL and unspecified spans often carry no status at all, and a placeholder's is
/// unknown, so they pass a failure on. An OK span at a call boundary handled it.
fn passes_failure_up(node: &TreeNode) -> bool {
    node.span()
        .is_none_or(|span| matches!(span.kind, SpanKind::Internal | SpanKind::Unspecified))
}

/// The far end of a call: its SERVER or CONSUMER child's service, else the peer the client
/// span names, else [`UNKNOWN_PEER`].
fn call_target<'a>(tree: &'a CallTree, id: NodeId, span: &'a SpanView) -> &'a str {
    let mut children = tree
        .children(id)
        .iter()
        .filter_map(|&child| tree.node(child).span());
    match children.find(|child| child.kind.is_callee()) {
        Some(callee) => &callee.placement.service,
        None => span.peer.as_deref().unwrap_or(UNKNOWN_PEER),
    }
}

/// Splits a service's origins into groups, each narrowed as far as the evidence allows;
/// the few origins left outside a narrowed group are narrowed again on their own.
fn narrow_errors<'a, 'o>(
    service: &str,
    mut remaining: Vec<&'o Origin<'a>>,
    units: &BTreeMap<Unit<'a>, Tally>,
) -> Vec<(Scope<'a>, Vec<&'o Origin<'a>>, String)> {
    let mut groups = Vec::new();
    while !remaining.is_empty() {
        let (scope, reason) = narrowest_error_scope(service, &remaining, units);
        let (inside, outside): (Vec<_>, Vec<_>) = remaining
            .into_iter()
            .partition(|origin| scope.contains(Unit::of(&origin.span.placement)));
        groups.push((scope, inside, reason));
        remaining = outside;
    }
    groups
}

/// How to read one level off a unit, and the scope it names.
type Narrowing<'a> = (fn(Unit<'a>) -> Option<&'a str>, fn(&'a str) -> Scope<'a>);

/// The finest scope holding [`DOMINANT_SHARE`] of the origins' traces whose neighbours
/// are healthy (no contrast is asked of a workload), with the reason.
fn narrowest_error_scope<'a>(
    service: &str,
    origins: &[&Origin<'a>],
    units: &BTreeMap<Unit<'a>, Tally>,
) -> (Scope<'a>, String) {
    let num_traces = distinct_traces(origins).len();
    let candidates: [Narrowing<'a>; 3] = [
        (|unit| unit.pod, Scope::Pod),
        (|unit| unit.version, Scope::Version),
        (|unit| unit.workload, Scope::Workload),
    ];
    for (attribute, scope_of) in candidates {
        let mut traces_by_value: BTreeMap<&'a str, BTreeSet<usize>> = BTreeMap::new();
        for origin in origins {
            if let Some(value) = attribute(Unit::of(&origin.span.placement)) {
                traces_by_value
                    .entry(value)
                    .or_default()
                    .insert(origin.trace);
            }
        }
        let best = traces_by_value
            .iter()
            .max_by_key(|(value, traces)| (traces.len(), *value));
        let Some((value, traces)) = best else {
            continue;
        };
        if (traces.len() as f64) < DOMINANT_SHARE * num_traces as f64 {
            continue;
        }
        let scope = scope_of(value);
        let held = format!(
            "{} of the {num_traces} failing trace(s) of {service}",
            traces.len()
        );
        if let Scope::Workload(workload) = scope {
            return (scope, format!("{held} start in workload {workload}"));
        }
        let (inside, neighbours, name) = error_contrast(scope, units);
        let healthy = neighbours.spans >= MIN_HEALTHY_SPANS
            && neighbours.origin_rate() <= HEALTHY_RATE_RATIO * inside.origin_rate();
        if healthy {
            let reason = format!(
                "{held} start in {value}: {} of its {} spans failed first, against {} of {} \
                 on {name}",
                inside.origins, inside.spans, neighbours.origins, neighbours.spans
            );
            return (scope, reason);
        }
    }
    let reason = format!(
        "{num_traces} failing trace(s) start in {service}, spread over its pods and versions"
    );
    (Scope::Service, reason)
}

/// Tallies inside a pod or version scope and on its neighbours (the other pods of the same
/// workload, or the other versions), with the neighbours' name for the reason.
fn error_contrast<'a>(
    scope: Scope<'a>,
    units: &BTreeMap<Unit<'a>, Tally>,
) -> (Tally, Tally, String) {
    let (mut inside, mut neighbours) = (Tally::default(), Tally::default());
    let name = match scope {
        Scope::Pod(pod) => {
            let workload = units
                .keys()
                .find(|unit| unit.pod == Some(pod))
                .and_then(|u| u.workload);
            for (unit, tally) in units {
                if unit.pod == Some(pod) {
                    inside.add(*tally);
                } else if unit.pod.is_some() && unit.workload == workload {
                    neighbours.add(*tally);
                }
            }
            format!(
                "the other pods of workload {}",
                workload.unwrap_or("(unnamed)")
            )
        }
        Scope::Version(version) => {
            for (unit, tally) in units {
                if unit.version == Some(version) {
                    inside.add(*tally);
                } else if unit.version.is_some() {
                    neighbours.add(*tally);
                }
            }
            "the other versions".to_owned()
        }
        Scope::Workload(_) | Scope::Service => String::new(),
    };
    (inside, neighbours, name)
}

fn error_suspect(
    window: &[CallTree],
    service: &str,
    edge: Option<(&str, &str)>,
    level: SuspectLevel,
    origins: &[&Origin<'_>],
    reason: String,
) -> Suspect {
    let traces = distinct_traces(origins);
    let placements = || origins.iter().map(|origin| &origin.span.placement);
    Suspect {
        kind: SuspectKind::Error,
        service: service.to_owned(),
        workload: unanimous(placements().map(|placement| placement.workload.as_deref())),
        pod: unanimous(placements().map(|placement| placement.pod.as_deref())),
        version: unanimous(placements().map(|placement| placement.version.as_deref())),
        operation: unanimous(origins.iter().map(|origin| Some(origin.span.name.as_str()))),
        edge: edge.map(|(source, target)| SuspectEdge {
            source: source.to_owned(),
            target: target.to_owned(),
        }),
        level,
        score: 0.0,
        traces: traces.len(),
        exemplar_trace_ids: traces
            .iter()
            .take(MAX_EXEMPLARS)
            .map(|&trace| hex::encode(window[trace].trace_id()))
            .collect(),
        reason,
    }
}

fn distinct_traces(origins: &[&Origin<'_>]) -> BTreeSet<usize> {
    origins.iter().map(|origin| origin.trace).collect()
}

/// The value every item shares, `None` when they differ or one is missing.
fn unanimous<'a>(mut values: impl Iterator<Item = Option<&'a str>>) -> Option<String> {
    let first = values.next()??;
    values
        .all(|value| value == Some(first))
        .then(|| first.to_owned())
}

/// What a latency sample measures: an operation of a service, or a service's calls to a
/// callee or peer (`target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Subject<'a> {
    service: &'a str,
    operation: &'a str,
    target: Option<&'a str>,
}

/// One span's times.
#[derive(Debug, Clone, Copy)]
struct Sample<'a> {
    trace: usize,
    unit: Unit<'a>,
    self_nanos: i64,
    critical_self_nanos: i64,
}

/// A detected slowdown of one subject within one scope.
struct Slowdown<'a> {
    subject: Subject<'a>,
    scope: Scope<'a>,
    /// The self time a span of the subject should have taken.
    reference_nanos: i64,
    /// Found only against the service's other operations.
    uncorroborated: bool,
    reason: String,
}

type Samples<'a> = BTreeMap<Subject<'a>, Vec<Sample<'a>>>;

/// Latency suspects with their ranking key.
fn latency_suspects(window: &[CallTree], baseline: Option<&[CallTree]>) -> Vec<(f64, Suspect)> {
    let samples = collect_samples(window);
    let baseline_samples = baseline.map(collect_samples);

    let mut slowdowns: Vec<Slowdown<'_>> = Vec::new();
    for (subject, subject_samples) in &samples {
        let earlier = baseline_samples
            .as_ref()
            .map(|b| b.get(subject).map_or(&[][..], Vec::as_slice));
        slowdowns.extend(detect_slowdowns(*subject, subject_samples, earlier));
    }
    if baseline.is_none() {
        let explained: BTreeSet<&str> = slowdowns.iter().map(|s| s.subject.service).collect();
        slowdowns.extend(against_other_operations(&samples, &explained));
    }

    // One suspect per place: a slow pod is one suspect however many operations it serves.
    let mut places: BTreeMap<(&str, Option<&str>, Scope<'_>), Vec<Slowdown<'_>>> = BTreeMap::new();
    for slowdown in slowdowns {
        let key = (
            slowdown.subject.service,
            slowdown.subject.target,
            slowdown.scope,
        );
        places.entry(key).or_default().push(slowdown);
    }

    let mut blamed: Vec<(Suspect, BTreeSet<usize>, bool)> = Vec::new();
    for ((service, target, scope), group) in places {
        let excess = excess_per_trace(&samples, scope, &group);
        let uncorroborated = group.iter().all(|slowdown| slowdown.uncorroborated);
        let share = if uncorroborated {
            OPERATIONS_SLOWED_SHARE
        } else {
            SLOWED_SHARE
        };
        let mut slowed: Vec<(usize, i64)> = excess
            .into_iter()
            .filter(|&(trace, nanos)| {
                let threshold = share * window[trace].duration_nanos() as f64;
                nanos >= MIN_SLOWDOWN_NANOS && nanos as f64 >= threshold
            })
            .collect();
        if slowed.is_empty() {
            continue;
        }
        slowed.sort_by_key(|&(trace, nanos)| (std::cmp::Reverse(nanos), trace));
        let traces: BTreeSet<usize> = slowed.iter().map(|&(trace, _)| trace).collect();
        let exemplars: Vec<String> = slowed
            .iter()
            .take(MAX_EXEMPLARS)
            .map(|&(trace, _)| hex::encode(window[trace].trace_id()))
            .collect();
        let suspect = latency_suspect(
            &samples,
            (service, target, scope),
            &group,
            traces.len(),
            exemplars,
        );
        blamed.push((suspect, traces, uncorroborated));
    }

    let slowed_traces: BTreeSet<usize> = blamed
        .iter()
        .flat_map(|(_, traces, _)| traces)
        .copied()
        .collect();
    blamed
        .into_iter()
        .map(|(mut suspect, traces, uncorroborated)| {
            let weight = if uncorroborated {
                UNCORROBORATED_WEIGHT
            } else {
                1.0
            };
            suspect.score = traces.len() as f64 / slowed_traces.len() as f64;
            (
                weight * wilson_lower_bound(traces.len(), slowed_traces.len()),
                suspect,
            )
        })
        .collect()
}

/// Every span's self time and critical-path share, by subject.
fn collect_samples(trees: &[CallTree]) -> Samples<'_> {
    let mut samples: Samples<'_> = BTreeMap::new();
    for (trace, tree) in trees.iter().enumerate() {
        for (id, node) in tree.nodes() {
            let Some(span) = node.span() else {
                continue;
            };
            let subject = Subject {
                service: &span.placement.service,
                operation: &span.name,
                target: span.kind.is_caller().then(|| call_target(tree, id, span)),
            };
            samples.entry(subject).or_default().push(Sample {
                trace,
                unit: Unit::of(&span.placement),
                self_nanos: node.self_nanos(),
                critical_self_nanos: node.critical_self_nanos(),
            });
        }
    }
    samples
}

/// The slowdowns of one subject, from the most specific contrast that shows one.
fn detect_slowdowns<'a>(
    subject: Subject<'a>,
    samples: &[Sample<'a>],
    baseline: Option<&[Sample<'a>]>,
) -> Vec<Slowdown<'a>> {
    let slow_versions = slow_versions(subject, samples);
    let slowed_versions: BTreeSet<&str> = slow_versions
        .iter()
        .filter_map(|slowdown| match slowdown.scope {
            Scope::Version(version) => Some(version),
            _ => None,
        })
        .collect();
    let mut found = slow_versions;
    found.extend(slow_pods(subject, samples, &slowed_versions));
    if !found.is_empty() {
        return found;
    }
    found.extend(slow_groups(
        subject,
        samples,
        |unit| unit.workload,
        Scope::Workload,
        "workload",
    ));
    if !found.is_empty() {
        return found;
    }
    let Some(earlier) = baseline else {
        return found;
    };
    let (now, before) = (self_times(samples.iter()), self_times(earlier.iter()));
    if now.len() < MIN_SAMPLES || before.len() < MIN_SAMPLES {
        return found;
    }
    let (now_median, before_median) = (median(now), median(before));
    if is_slowdown(now_median, before_median) {
        let reason = format!(
            "{}: median self time {} against {} in the baseline",
            describe(subject),
            format_ms(now_median),
            format_ms(before_median)
        );
        found.push(Slowdown {
            subject,
            scope: Scope::Service,
            reference_nanos: before_median,
            uncorroborated: false,
            reason,
        });
    }
    found
}

/// Versions whose median is slow against the other versions' and most of whose pods are
/// slow on their own too (one slow pod makes a pod suspect, not a version suspect).
fn slow_versions<'a>(subject: Subject<'a>, samples: &[Sample<'a>]) -> Vec<Slowdown<'a>> {
    let candidates = slow_groups(
        subject,
        samples,
        |unit| unit.version,
        Scope::Version,
        "version",
    );
    candidates
        .into_iter()
        .filter(|slowdown| {
            let Scope::Version(version) = slowdown.scope else {
                return false;
            };
            let pods = pod_medians(samples.iter().filter(|s| s.unit.version == Some(version)));
            let num_slow = pods
                .iter()
                .filter(|pod| is_slowdown(pod.median_nanos, slowdown.reference_nanos))
                .count();
            // Without a pod busy enough to judge on its own, the version stands.
            pods.is_empty() || 2 * num_slow > pods.len()
        })
        .collect()
}

/// Pods slow against the median of the other pods of their workload. Pods of versions
/// already blamed are left out, as suspects and as peers.
fn slow_pods<'a>(
    subject: Subject<'a>,
    samples: &[Sample<'a>],
    slowed_versions: &BTreeSet<&str>,
) -> Vec<Slowdown<'a>> {
    let kept = samples
        .iter()
        .filter(|s| s.unit.version.is_none_or(|v| !slowed_versions.contains(v)));
    let pods = pod_medians(kept);
    let mut found = Vec::new();
    for &PodMedian {
        workload,
        pod,
        median_nanos: pod_median,
    } in &pods
    {
        let peers: Vec<i64> = pods
            .iter()
            .filter(|peer| peer.workload == workload && peer.pod != pod)
            .map(|peer| peer.median_nanos)
            .collect();
        if peers.is_empty() {
            continue;
        }
        let num_peers = peers.len();
        let reference = median(peers);
        if is_slowdown(pod_median, reference) {
            let reason = format!(
                "{}: median self time {} on pod {pod} against {} on the {num_peers} other \
                 pod(s) of workload {}",
                describe(subject),
                format_ms(pod_median),
                format_ms(reference),
                workload.unwrap_or("(unnamed)")
            );
            found.push(Slowdown {
                subject,
                scope: Scope::Pod(pod),
                reference_nanos: reference,
                uncorroborated: false,
                reason,
            });
        }
    }
    found
}

/// Groups (by version or workload) whose pooled median is slow against the pooled samples
/// of all the other groups.
fn slow_groups<'a>(
    subject: Subject<'a>,
    samples: &[Sample<'a>],
    attribute: fn(Unit<'a>) -> Option<&'a str>,
    scope_of: fn(&'a str) -> Scope<'a>,
    noun: &str,
) -> Vec<Slowdown<'a>> {
    let groups: BTreeSet<&str> = samples.iter().filter_map(|s| attribute(s.unit)).collect();
    let mut found = Vec::new();
    if groups.len() < 2 {
        return found;
    }
    for group in groups {
        let inside = self_times(samples.iter().filter(|s| attribute(s.unit) == Some(group)));
        let others = self_times(
            samples
                .iter()
                .filter(|s| attribute(s.unit).is_some_and(|g| g != group)),
        );
        if inside.len() < MIN_SAMPLES || others.len() < MIN_SAMPLES {
            continue;
        }
        let (inside_median, reference) = (median(inside), median(others));
        if is_slowdown(inside_median, reference) {
            let reason = format!(
                "{}: median self time {} in {noun} {group} against {} in the others",
                describe(subject),
                format_ms(inside_median),
                format_ms(reference)
            );
            found.push(Slowdown {
                subject,
                scope: scope_of(group),
                reference_nanos: reference,
                uncorroborated: false,
                reason,
            });
        }
    }
    found
}

/// Without a baseline: subjects of a service with no other slowdown whose median dwarfs
/// the median of the service's other subjects.
fn against_other_operations<'a>(
    samples: &Samples<'a>,
    explained: &BTreeSet<&str>,
) -> Vec<Slowdown<'a>> {
    let mut medians: BTreeMap<&str, Vec<(Subject<'a>, i64)>> = BTreeMap::new();
    for (subject, subject_samples) in samples {
        if explained.contains(subject.service) || subject_samples.len() < MIN_SAMPLES {
            continue;
        }
        let subject_median = median(self_times(subject_samples.iter()));
        medians
            .entry(subject.service)
            .or_default()
            .push((*subject, subject_median));
    }
    let mut found = Vec::new();
    for subjects in medians.values() {
        for &(subject, subject_median) in subjects {
            let others: Vec<i64> = subjects
                .iter()
                .filter(|(other, _)| *other != subject)
                .map(|&(_, other_median)| other_median)
                .collect();
            if others.is_empty() {
                continue;
            }
            let reference = median(others);
            let stark = subject_median as f64 >= OPERATIONS_RATIO * reference as f64;
            if stark && subject_median - reference >= MIN_SLOWDOWN_NANOS {
                let reason = format!(
                    "{}: median self time {} against {} for the service's other operations \
                     (no baseline to compare with)",
                    describe(subject),
                    format_ms(subject_median),
                    format_ms(reference)
                );
                found.push(Slowdown {
                    subject,
                    scope: Scope::Service,
                    reference_nanos: reference,
                    uncorroborated: true,
                    reason,
                });
            }
        }
    }
    found
}

/// Critical-path time beyond the reference, summed per trace over the spans the
/// slowdowns cover.
fn excess_per_trace(
    samples: &Samples<'_>,
    scope: Scope<'_>,
    group: &[Slowdown<'_>],
) -> BTreeMap<usize, i64> {
    let mut excess: BTreeMap<usize, i64> = BTreeMap::new();
    for slowdown in group {
        for sample in &samples[&slowdown.subject] {
            let extra = sample.critical_self_nanos - slowdown.reference_nanos;
            if scope.contains(sample.unit) && extra > 0 {
                *excess.entry(sample.trace).or_default() += extra;
            }
        }
    }
    excess
}

fn latency_suspect(
    samples: &Samples<'_>,
    (service, target, scope): (&str, Option<&str>, Scope<'_>),
    group: &[Slowdown<'_>],
    num_traces: usize,
    exemplar_trace_ids: Vec<String>,
) -> Suspect {
    let units: Vec<Unit<'_>> = group
        .iter()
        .flat_map(|slowdown| &samples[&slowdown.subject])
        .map(|sample| sample.unit)
        .filter(|&unit| scope.contains(unit))
        .collect();
    let reasons: Vec<&str> = group
        .iter()
        .map(|slowdown| slowdown.reason.as_str())
        .collect();
    Suspect {
        kind: SuspectKind::Latency,
        service: service.to_owned(),
        workload: unanimous(units.iter().map(|unit| unit.workload)),
        pod: unanimous(units.iter().map(|unit| unit.pod)),
        version: unanimous(units.iter().map(|unit| unit.version)),
        operation: unanimous(
            group
                .iter()
                .map(|slowdown| Some(slowdown.subject.operation)),
        ),
        edge: target.map(|target| SuspectEdge {
            source: service.to_owned(),
            target: target.to_owned(),
        }),
        level: if target.is_some() {
            SuspectLevel::Edge
        } else {
            scope.level()
        },
        score: 0.0,
        traces: num_traces,
        exemplar_trace_ids,
        reason: reasons.join("; "),
    }
}

/// One pod's median self time for a subject.
#[derive(Debug, Clone, Copy)]
struct PodMedian<'a> {
    workload: Option<&'a str>,
    pod: &'a str,
    median_nanos: i64,
}

/// Median self time per pod, for the pods with enough samples.
fn pod_medians<'s, 'a: 's>(samples: impl Iterator<Item = &'s Sample<'a>>) -> Vec<PodMedian<'a>> {
    let mut per_pod: BTreeMap<Unit<'a>, Vec<i64>> = BTreeMap::new();
    for sample in samples.filter(|sample| sample.unit.pod.is_some()) {
        per_pod
            .entry(sample.unit)
            .or_default()
            .push(sample.self_nanos);
    }
    per_pod
        .into_iter()
        .filter(|(_, times)| times.len() >= MIN_SAMPLES)
        .filter_map(|(unit, times)| {
            Some(PodMedian {
                workload: unit.workload,
                pod: unit.pod?,
                median_nanos: median(times),
            })
        })
        .collect()
}

fn self_times<'s, 'a: 's>(samples: impl Iterator<Item = &'s Sample<'a>>) -> Vec<i64> {
    samples.map(|sample| sample.self_nanos).collect()
}

fn is_slowdown(value: i64, reference: i64) -> bool {
    value - reference >= MIN_SLOWDOWN_NANOS && value as f64 >= SLOWDOWN_RATIO * reference as f64
}

/// Median of a non-empty list (the mean of the two middle values for an even length).
fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2
    }
}

/// Lower bound of the 95% Wilson score interval for `hits` out of `total`.
fn wilson_lower_bound(hits: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    const Z: f64 = 1.96;
    let (n, p) = (total as f64, hits as f64 / total as f64);
    let spread = Z * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt();
    (p + Z * Z / (2.0 * n) - spread) / (1.0 + Z * Z / n)
}

fn describe(subject: Subject<'_>) -> String {
    match subject.target {
        Some(target) => format!(
            "calls {} from {} to {target}",
            subject.operation, subject.service
        ),
        None => format!("{} in {}", subject.operation, subject.service),
    }
}

fn format_ms(nanos: i64) -> String {
    format!("{:.2} ms", nanos as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    const MS: f64 = 1e6;
    const EPOCH: i64 = 1_700_000_000_000_000_000;

    fn place(service: &str, workload: &str, version: &str, pod: &str) -> Placement {
        Placement {
            service: service.into(),
            namespace: Some("default".into()),
            workload: Some(workload.into()),
            version: Some(version.into()),
            pod: Some(pod.into()),
        }
    }

    /// Builds one trace span by span; times in ms from the trace's start.
    struct TraceBuilder {
        trace_id: [u8; 16],
        start_unix_nano: i64,
        spans: Vec<SpanView>,
    }

    impl TraceBuilder {
        fn new(trace: u64) -> Self {
            let mut trace_id = [0; 16];
            trace_id[8..].copy_from_slice(&trace.to_be_bytes());
            let start_unix_nano = EPOCH + trace as i64 * 1_000_000_000;
            TraceBuilder {
                trace_id,
                start_unix_nano,
                spans: Vec::new(),
            }
        }

        #[expect(clippy::too_many_arguments, reason = "a span has that many fields")]
        fn span(
            &mut self,
            parent: Option<[u8; 8]>,
            placement: &Placement,
            name: &str,
            kind: SpanKind,
            start_ms: f64,
            end_ms: f64,
            error: bool,
            peer: Option<&str>,
        ) -> [u8; 8] {
            let span_id = (self.spans.len() as u64 + 1).to_be_bytes();
            self.spans.push(SpanView {
                trace_id: self.trace_id,
                span_id,
                parent_span_id: parent,
                name: name.into(),
                kind,
                start_unix_nano: self.start_unix_nano + (start_ms * MS) as i64,
                end_unix_nano: self.start_unix_nano + (end_ms * MS) as i64,
                error,
                placement: placement.clone(),
                peer: peer.map(str::to_owned),
            });
            span_id
        }

        fn server(
            &mut self,
            parent: Option<[u8; 8]>,
            at: &Placement,
            times: (f64, f64),
            error: bool,
        ) -> [u8; 8] {
            let name = format!("GET /{}", at.service);
            self.span(
                parent,
                at,
                &name,
                SpanKind::Server,
                times.0,
                times.1,
                error,
                None,
            )
        }

        fn client(
            &mut self,
            parent: [u8; 8],
            at: &Placement,
            callee: &str,
            times: (f64, f64),
            error: bool,
        ) -> [u8; 8] {
            let name = format!("call {callee}");
            self.span(
                Some(parent),
                at,
                &name,
                SpanKind::Client,
                times.0,
                times.1,
                error,
                None,
            )
        }

        fn peer_call(
            &mut self,
            parent: [u8; 8],
            at: &Placement,
            peer: &str,
            times: (f64, f64),
            error: bool,
        ) {
            let name = format!("query {peer}");
            self.span(
                Some(parent),
                at,
                &name,
                SpanKind::Client,
                times.0,
                times.1,
                error,
                Some(peer),
            );
        }

        fn build(self) -> CallTree {
            CallTree::assemble(self.spans).unwrap()
        }
    }

    /// frontend → `callee` with one client/server hop; the callee fails when `fails`, and
    /// the failure propagates to the frontend unless `swallowed`.
    fn frontend_call(trace: u64, callee: &Placement, fails: bool, swallowed: bool) -> CallTree {
        let frontend = place("frontend", "frontend", "v1", "frontend-0");
        let mut builder = TraceBuilder::new(trace);
        let root = builder.server(None, &frontend, (0.0, 20.0), fails && !swallowed);
        let client = builder.client(root, &frontend, &callee.service, (2.0, 18.0), fails);
        builder.server(Some(client), callee, (3.0, 17.0), fails);
        builder.build()
    }

    fn top(suspects: &[Suspect]) -> &Suspect {
        suspects.first().expect("at least one suspect")
    }

    #[test]
    fn error_in_one_pod_is_blamed_on_that_pod() {
        let pods = ["reviews-0", "reviews-1", "reviews-2"];
        let trees: Vec<CallTree> = (0..90)
            .map(|trace| {
                let pod = pods[trace % 3];
                let reviews = place("reviews", "reviews-v1", "v1", pod);
                frontend_call(
                    trace as u64,
                    &reviews,
                    pod == "reviews-1" && trace % 2 == 0,
                    false,
                )
            })
            .collect();

        let suspects = demarcate(&trees, None);
        let first = top(&suspects);
        assert_eq!(
            (first.kind, first.level),
            (SuspectKind::Error, SuspectLevel::Pod)
        );
        assert_eq!(
            (first.service.as_str(), first.pod.as_deref()),
            ("reviews", Some("reviews-1"))
        );
        assert_eq!((first.score, first.traces), (1.0, 15));
        assert_eq!(first.exemplar_trace_ids.len(), 5);
        assert!(suspects.iter().all(|suspect| suspect.service != "frontend"));
    }

    #[test]
    fn errors_on_every_pod_are_not_blamed_on_one() {
        let pods = ["reviews-0", "reviews-1", "reviews-2"];
        let trees: Vec<CallTree> = (0..90)
            .map(|trace| {
                let reviews = place("reviews", "reviews-v1", "v1", pods[trace % 3]);
                frontend_call(trace as u64, &reviews, trace % 2 == 0, false)
            })
            .collect();

        let first = &demarcate(&trees, None)[0];
        assert_eq!(
            (first.service.as_str(), first.level),
            ("reviews", SuspectLevel::Workload)
        );
        assert_eq!(first.pod, None);
    }

    #[test]
    fn error_propagated_through_two_callers_is_blamed_where_it_started() {
        let chain = [
            place("frontend", "frontend", "v1", "frontend-0"),
            place("productpage", "productpage-v1", "v1", "productpage-0"),
            place("reviews", "reviews-v1", "v1", "reviews-0"),
            place("ratings", "ratings-v1", "v1", "ratings-0"),
        ];
        let trees: Vec<CallTree> = (0..30u64)
            .map(|trace| {
                let fails = trace % 3 == 0;
                let mut builder = TraceBuilder::new(trace);
                let mut parent = builder.server(None, &chain[0], (0.0, 40.0), fails);
                for (depth, hop) in chain.windows(2).enumerate() {
                    let at = 1.0 + 2.0 * depth as f64;
                    let client =
                        builder.client(parent, &hop[0], &hop[1].service, (at, 40.0 - at), fails);
                    parent = builder.server(Some(client), &hop[1], (at + 0.5, 39.5 - at), fails);
                }
                builder.build()
            })
            .collect();

        let suspects = demarcate(&trees, None);
        assert_eq!(suspects.len(), 1, "{suspects:#?}");
        assert_eq!(
            (suspects[0].kind, suspects[0].service.as_str()),
            (SuspectKind::Error, "ratings")
        );
        assert_eq!(suspects[0].traces, 10);
        assert_eq!(suspects[0].operation.as_deref(), Some("GET /ratings"));
    }

    #[test]
    fn fault_swallowed_by_a_fallback_still_blames_its_origin() {
        let reviews = place("reviews", "reviews-v1", "v1", "reviews-0");
        let ratings = place("ratings", "ratings-v1", "v1", "ratings-0");
        let trees: Vec<CallTree> = (0..40u64)
            .map(|trace| {
                let fails = trace % 2 == 0;
                let frontend = place("frontend", "frontend", "v1", "frontend-0");
                let mut builder = TraceBuilder::new(trace);
                let root = builder.server(None, &frontend, (0.0, 30.0), false);
                let to_reviews = builder.client(root, &frontend, "reviews", (1.0, 29.0), false);
                let handler = builder.server(Some(to_reviews), &reviews, (2.0, 28.0), false);
                let to_ratings = builder.client(handler, &reviews, "ratings", (3.0, 10.0), fails);
                builder.server(Some(to_ratings), &ratings, (4.0, 9.0), fails);
                builder.span(
                    Some(handler),
                    &reviews,
                    "fallback",
                    SpanKind::Internal,
                    10.0,
                    12.0,
                    false,
                    None,
                );
                builder.build()
            })
            .collect();

        let suspects = demarcate(&trees, None);
        let first = top(&suspects);
        assert_eq!(
            (first.kind, first.service.as_str()),
            (SuspectKind::Error, "ratings")
        );
        assert_eq!((first.score, first.traces), (1.0, 20));
        assert!(
            suspects.iter().all(|suspect| suspect.service == "ratings"),
            "{suspects:#?}"
        );
    }

    #[test]
    fn failed_call_without_a_server_blames_the_edge_to_the_peer() {
        let orders = place("orders", "orders", "v1", "orders-0");
        let trees: Vec<CallTree> = (0..20u64)
            .map(|trace| {
                let fails = trace % 4 == 0;
                let mut builder = TraceBuilder::new(trace);
                let root = builder.server(None, &orders, (0.0, 10.0), fails);
                builder.peer_call(root, &orders, "postgres", (1.0, 9.0), fails);
                builder.build()
            })
            .collect();

        let suspects = demarcate(&trees, None);
        assert_eq!(suspects.len(), 1, "{suspects:#?}");
        assert_eq!(
            (suspects[0].kind, suspects[0].level),
            (SuspectKind::Error, SuspectLevel::Edge)
        );
        let edge = suspects[0].edge.as_ref().unwrap();
        assert_eq!(
            (edge.source.as_str(), edge.target.as_str()),
            ("orders", "postgres")
        );
        assert_eq!(suspects[0].traces, 5);
    }

    #[test]
    fn failed_call_whose_server_saw_no_error_blames_the_edge() {
        let inventory = place("inventory", "inventory", "v1", "inventory-0");
        let trees: Vec<CallTree> = (0..20u64)
            .map(|trace| {
                let frontend = place("frontend", "frontend", "v1", "frontend-0");
                let mut builder = TraceBuilder::new(trace);
                let fails = trace % 2 == 0;
                let root = builder.server(None, &frontend, (0.0, 20.0), fails);
                let client = builder.client(root, &frontend, "inventory", (2.0, 18.0), fails);
                builder.server(Some(client), &inventory, (3.0, 6.0), false);
                builder.build()
            })
            .collect();

        let first = &demarcate(&trees, None)[0];
        assert_eq!(first.level, SuspectLevel::Edge);
        let edge = first.edge.as_ref().unwrap();
        assert_eq!(
            (edge.source.as_str(), edge.target.as_str()),
            ("frontend", "inventory")
        );
    }

    #[test]
    fn failing_canary_version_is_blamed_on_the_version() {
        let trees: Vec<CallTree> = (0..120u64)
            .map(|trace| {
                let (version, pod) = match trace % 6 {
                    0 => ("v2", "reviews-v2-0"),
                    1 => ("v2", "reviews-v2-1"),
                    other => ("v1", ["reviews-v1-0", "reviews-v1-1"][other as usize % 2]),
                };
                let reviews = place("reviews", &format!("reviews-{version}"), version, pod);
                frontend_call(trace, &reviews, version == "v2" && trace % 4 < 2, false)
            })
            .collect();

        let first = &demarcate(&trees, None)[0];
        assert_eq!(
            (first.kind, first.level),
            (SuspectKind::Error, SuspectLevel::Version)
        );
        assert_eq!(first.version.as_deref(), Some("v2"));
    }

    /// catalog → `db` (a peer) taking `db_ms`, plus a cheap cache call.
    fn catalog_trace(trace: u64, pod: &str, db_ms: f64) -> CallTree {
        let catalog = place("catalog", "catalog", "v1", pod);
        let mut builder = TraceBuilder::new(trace);
        let jitter = (trace % 5) as f64 * 0.1;
        let end = 1.0 + 0.5 + db_ms + jitter + 1.0;
        let root = builder.server(None, &catalog, (0.0, end), false);
        builder.peer_call(root, &catalog, "redis", (0.5, 1.0), false);
        builder.peer_call(root, &catalog, "mysql", (1.5, 1.5 + db_ms + jitter), false);
        builder.build()
    }

    #[test]
    fn slow_dependency_is_the_top_latency_suspect() {
        let pods = ["catalog-0", "catalog-1"];
        let baseline: Vec<CallTree> = (0..40)
            .map(|t| catalog_trace(t, pods[t as usize % 2], 2.0))
            .collect();
        let window: Vec<CallTree> = (100..140)
            .map(|t| catalog_trace(t, pods[t as usize % 2], 40.0))
            .collect();

        let suspects = demarcate(&window, Some(&baseline));
        let first = top(&suspects);
        assert_eq!(
            (first.kind, first.level),
            (SuspectKind::Latency, SuspectLevel::Edge)
        );
        let edge = first.edge.as_ref().unwrap();
        assert_eq!(
            (edge.source.as_str(), edge.target.as_str()),
            ("catalog", "mysql")
        );
        assert_eq!((first.score, first.traces), (1.0, 40));

        let healthy: Vec<CallTree> = (200..240)
            .map(|t| catalog_trace(t, pods[t as usize % 2], 2.0))
            .collect();
        assert!(demarcate(&healthy, Some(&baseline)).is_empty());
    }

    #[test]
    fn slow_dependency_without_baseline_is_found_against_other_operations() {
        let window: Vec<CallTree> = (0..40)
            .map(|t| catalog_trace(t, "catalog-0", 40.0))
            .collect();

        let suspects = demarcate(&window, None);
        let first = top(&suspects);
        assert_eq!(
            first.edge.as_ref().map(|edge| edge.target.as_str()),
            Some("mysql")
        );
        assert!(first.reason.contains("no baseline"), "{}", first.reason);
    }

    #[test]
    fn slow_pod_is_blamed_on_that_pod() {
        let pods = ["search-0", "search-1", "search-2", "search-3"];
        let trees: Vec<CallTree> = (0..80u64)
            .map(|trace| {
                let pod = pods[trace as usize % 4];
                let work = if pod == "search-2" { 30.0 } else { 3.0 } + (trace % 7) as f64 * 0.1;
                let search = place("search", "search", "v1", pod);
                let frontend = place("frontend", "frontend", "v1", "frontend-0");
                let mut builder = TraceBuilder::new(trace);
                let root = builder.server(None, &frontend, (0.0, work + 4.0), false);
                let client = builder.client(root, &frontend, "search", (1.0, work + 3.0), false);
                builder.server(Some(client), &search, (1.5, work + 2.5), false);
                builder.build()
            })
            .collect();

        let suspects = demarcate(&trees, None);
        let first = top(&suspects);
        assert_eq!(
            (first.kind, first.level),
            (SuspectKind::Latency, SuspectLevel::Pod)
        );
        assert_eq!(first.pod.as_deref(), Some("search-2"));
        assert_eq!(first.traces, 20);
    }

    #[test]
    fn suspects_serialize_to_the_contract_shape() {
        let orders = place("orders", "orders", "v1", "orders-0");
        let mut builder = TraceBuilder::new(1);
        let root = builder.server(None, &orders, (0.0, 10.0), true);
        builder.peer_call(root, &orders, "postgres", (1.0, 9.0), true);
        let json = suspects_to_json(&demarcate(&[builder.build()], None));

        let suspect = &json["suspects"][0];
        for field in [
            "kind",
            "service",
            "workload",
            "pod",
            "version",
            "operation",
            "edge",
            "level",
            "score",
            "traces",
            "exemplar_trace_ids",
        ] {
            assert!(suspect.get(field).is_some(), "suspect lacks {field}");
        }
        assert_eq!(suspect["kind"], "error");
        assert_eq!(suspect["level"], "edge");
        assert_eq!(
            suspect["edge"],
            json!({"source": "orders", "target": "postgres"})
        );
        assert_eq!(
            suspect["exemplar_trace_ids"][0],
            "00000000000000000000000000000001"
        );
    }

    #[test]
    fn one_stray_failure_does_not_outrank_a_broad_fault() {
        let pods = ["reviews-0", "reviews-1", "reviews-2"];
        let mut trees: Vec<CallTree> = (0..60)
            .map(|trace| {
                let pod = pods[trace % 3];
                let reviews = place("reviews", "reviews-v1", "v1", pod);
                frontend_call(
                    trace as u64,
                    &reviews,
                    pod == "reviews-0" && trace % 2 == 0,
                    false,
                )
            })
            .collect();
        let stray = place("details", "details", "v1", "details-0");
        trees.push(frontend_call(1000, &stray, true, false));

        let suspects = demarcate(&trees, None);
        assert_eq!(suspects.len(), 2);
        assert_eq!(suspects[0].pod.as_deref(), Some("reviews-0"));
        assert_eq!(suspects[1].service, "details");
    }

    #[test]
    fn top_suspect_matches_the_injected_fault_on_random_meshes() {
        let mut rng = SmallRng::seed_from_u64(0xdead_beef);
        let num_meshes = 200;
        let (mut hits, mut false_alarms, mut num_spans) = (0, 0, 0);
        let mut misses = Vec::new();
        for round in 0..num_meshes {
            let mesh = mesh::Mesh::random(&mut rng);
            let baseline = mesh.traces(&mut rng, None, 120);
            let fault = mesh.random_fault(&mut rng, &baseline);
            let window = mesh.traces(&mut rng, Some(&fault), 200);
            num_spans += window.iter().map(CallTree::num_spans).sum::<usize>();
            let suspects = demarcate(&window, Some(&baseline));
            match suspects.first() {
                Some(first) if fault.matches(first) => hits += 1,
                first => misses.push(format!("round {round}: {fault:?} but got {first:#?}")),
            }

            // Control: the same mesh without the fault must show no slowdown. (Errors
            // still happen: the mesh fails a few calls at random, and those are real.)
            let healthy = mesh.traces(&mut rng, None, 200);
            let suspects = demarcate(&healthy, Some(&baseline));
            if suspects
                .iter()
                .any(|suspect| suspect.kind == SuspectKind::Latency)
            {
                false_alarms += 1;
            }
        }
        let rate = hits as f64 / num_meshes as f64;
        let false_alarm_rate = false_alarms as f64 / num_meshes as f64;
        println!(
            "top-1 rate: {hits}/{num_meshes} = {rate:.3}; healthy windows with a latency \
             suspect: {false_alarms}/{num_meshes}; {:.1} spans per trace",
            num_spans as f64 / (200 * num_meshes) as f64
        );
        for miss in misses.iter().take(5) {
            println!("{miss}");
        }
        assert!(rate >= 0.95, "top-1 rate {rate:.3} below 0.95");
        assert!(
            false_alarm_rate <= 0.05,
            "false alarms in {false_alarm_rate:.3} of healthy windows"
        );
    }

    /// Random service meshes with one injected fault, for the accuracy test.
    mod mesh {
        use std::collections::BTreeMap;

        use rand::rngs::SmallRng;
        use rand::seq::IndexedRandom;
        use rand::{Rng, RngCore};

        use super::{EPOCH, MS};
        use crate::demarcation::{Suspect, SuspectKind, SuspectLevel};
        use crate::span_view::{Placement, SpanKind, SpanView};
        use crate::tree::CallTree;

        struct Pod {
            placement: Placement,
            /// Multiplies the pod's self times: pods are never exactly alike.
            speed: f64,
            /// How far the pod's clock is off, in ms.
            clock_ms: f64,
        }

        enum Call {
            Service { service: usize, operation: usize },
            Peer { name: String, ms: f64 },
        }

        struct Operation {
            name: String,
            self_ms: f64,
            parallel: bool,
            calls: Vec<Call>,
        }

        struct Service {
            name: String,
            pods: Vec<Pod>,
            /// Share of the traffic that goes to version v2, when there is one.
            canary_weight: f64,
            operations: Vec<Operation>,
        }

        /// A call graph over 4 to 8 services, each with 2 to 4 pods per version, some
        /// with a v2 canary (as its own workload, or sharing one workload with v1), some
        /// calling uninstrumented databases or caches, some pods with skewed clocks.
        pub(super) struct Mesh {
            services: Vec<Service>,
        }

        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum FaultKind {
            ErrorPod,
            ErrorVersion,
            ErrorPeer,
            SlowPod,
            SlowVersion,
            SlowPeer,
        }

        /// The injected truth.
        #[derive(Debug)]
        pub(super) struct Fault {
            kind: FaultKind,
            service: String,
            /// The pod, version or peer, by kind.
            place: String,
            error_rate: f64,
            extra_ms: f64,
        }

        impl Fault {
            /// True when the suspect names exactly the injected fault.
            pub(super) fn matches(&self, suspect: &Suspect) -> bool {
                let kind = match self.kind {
                    FaultKind::ErrorPod | FaultKind::ErrorVersion | FaultKind::ErrorPeer => {
                        SuspectKind::Error
                    }
                    _ => SuspectKind::Latency,
                };
                let (level, place) = match self.kind {
                    FaultKind::ErrorPod | FaultKind::SlowPod => (SuspectLevel::Pod, &suspect.pod),
                    FaultKind::ErrorVersion | FaultKind::SlowVersion => {
                        (SuspectLevel::Version, &suspect.version)
                    }
                    FaultKind::ErrorPeer | FaultKind::SlowPeer => {
                        let target = suspect.edge.as_ref().map(|edge| edge.target.clone());
                        return suspect.kind == kind
                            && suspect.level == SuspectLevel::Edge
                            && suspect.service == self.service
                            && target.as_deref() == Some(self.place.as_str());
                    }
                };
                suspect.kind == kind
                    && suspect.level == level
                    && suspect.service == self.service
                    && place.as_deref() == Some(self.place.as_str())
            }

            fn on_pod(&self, service: &str, placement: &Placement, kinds: [FaultKind; 2]) -> bool {
                let place = match self.kind {
                    FaultKind::ErrorPod | FaultKind::SlowPod => &placement.pod,
                    _ => &placement.version,
                };
                kinds.contains(&self.kind)
                    && self.service == service
                    && place.as_deref() == Some(self.place.as_str())
            }

            fn on_peer(&self, service: &str, peer: &str, kind: FaultKind) -> bool {
                self.kind == kind && self.service == service && self.place == peer
            }
        }

        impl Mesh {
            pub(super) fn random(rng: &mut SmallRng) -> Mesh {
                let num_services = rng.random_range(4..=8);
                let mut services: Vec<Service> = (0..num_services)
                    .map(|index| random_service(rng, index))
                    .collect();

                // Every service is called by an earlier one, so every service is reached.
                for callee in 1..num_services {
                    let caller = rng.random_range(0..callee);
                    let operation = rng.random_range(0..services[caller].operations.len());
                    let callee_operation = rng.random_range(0..services[callee].operations.len());
                    let call = Call::Service {
                        service: callee,
                        operation: callee_operation,
                    };
                    services[caller].operations[operation].calls.push(call);
                }
                for caller in 0..num_services {
                    let name = services[caller].name.clone();
                    for operation in 0..services[caller].operations.len() {
                        if caller + 1 < num_services && rng.random_bool(0.3) {
                            let callee = rng.random_range(caller + 1..num_services);
                            let callee_operation =
                                rng.random_range(0..services[callee].operations.len());
                            let call = Call::Service {
                                service: callee,
                                operation: callee_operation,
                            };
                            services[caller].operations[operation].calls.push(call);
                        }
                        if rng.random_bool(0.4) {
                            let store = ["db", "cache"].choose(rng).unwrap();
                            let call = Call::Peer {
                                name: format!("{store}-{name}"),
                                ms: rng.random_range(0.5..5.0),
                            };
                            services[caller].operations[operation].calls.push(call);
                        }
                    }
                }
                Mesh { services }
            }

            /// `count` traces entering at the frontend, with the fault switched on if any.
            pub(super) fn traces(
                &self,
                rng: &mut SmallRng,
                fault: Option<&Fault>,
                count: usize,
            ) -> Vec<CallTree> {
                (0..count)
                    .map(|_| {
                        let mut trace_id = [0; 16];
                        rng.fill_bytes(&mut trace_id);
                        let start = EPOCH + rng.random_range(0..60_000_000_000);
                        let mut trace = TraceGenerator {
                            mesh: self,
                            fault,
                            rng: &mut *rng,
                            trace_id,
                            start,
                            spans: Vec::new(),
                        };
                        trace.serve(0, 0, 0.0, None);
                        CallTree::assemble(trace.spans).unwrap()
                    })
                    .collect()
            }

            /// A fault on a place that the baseline shows enough traffic for.
            pub(super) fn random_fault(&self, rng: &mut SmallRng, baseline: &[CallTree]) -> Fault {
                let mut pods: BTreeMap<(String, String), usize> = BTreeMap::new();
                let mut versions: BTreeMap<(String, String), usize> = BTreeMap::new();
                let mut peers: BTreeMap<(String, String), usize> = BTreeMap::new();
                for span in baseline
                    .iter()
                    .flat_map(|tree| tree.nodes())
                    .filter_map(|(_, n)| n.span())
                {
                    let service = span.placement.service.clone();
                    match (&span.peer, span.kind) {
                        (Some(peer), _) => *peers.entry((service, peer.clone())).or_default() += 1,
                        (None, SpanKind::Server) => {
                            let pod = span.placement.pod.clone().unwrap();
                            let version = span.placement.version.clone().unwrap();
                            *pods.entry((service.clone(), pod)).or_default() += 1;
                            *versions.entry((service, version)).or_default() += 1;
                        }
                        _ => {}
                    }
                }
                let busy = |counts: &BTreeMap<(String, String), usize>, least: usize| {
                    counts
                        .iter()
                        .filter(|&(_, &count)| count >= least)
                        .map(|(key, _)| key.clone())
                        .collect::<Vec<_>>()
                };
                let canaries: Vec<(String, String)> = busy(&versions, 15)
                    .into_iter()
                    .filter(|(_, version)| version == "v2")
                    .collect();
                loop {
                    let kind = *[
                        FaultKind::ErrorPod,
                        FaultKind::ErrorVersion,
                        FaultKind::ErrorPeer,
                        FaultKind::SlowPod,
                        FaultKind::SlowVersion,
                        FaultKind::SlowPeer,
                    ]
                    .choose(rng)
                    .unwrap();
                    let places = match kind {
                        FaultKind::ErrorPod | FaultKind::SlowPod => busy(&pods, 12),
                        FaultKind::ErrorVersion | FaultKind::SlowVersion => canaries.clone(),
                        FaultKind::ErrorPeer | FaultKind::SlowPeer => busy(&peers, 15),
                    };
                    let Some((service, place)) = places.choose(rng) else {
                        continue;
                    };
                    return Fault {
                        kind,
                        service: service.clone(),
                        place: place.clone(),
                        error_rate: rng.random_range(0.1..0.9),
                        extra_ms: rng.random_range(2.0..20.0),
                    };
                }
            }
        }

        fn random_service(rng: &mut SmallRng, index: usize) -> Service {
            let name = if index == 0 {
                "frontend".to_owned()
            } else {
                format!("svc{index}")
            };
            let versions: &[&str] = if index > 0 && rng.random_bool(0.4) {
                &["v1", "v2"]
            } else {
                &["v1"]
            };
            let workload_per_version = rng.random_bool(0.7);
            let mut pods = Vec::new();
            for version in versions {
                let workload = if workload_per_version {
                    format!("{name}-{version}")
                } else {
                    name.clone()
                };
                for replica in 0..rng.random_range(2..=4) {
                    let skewed = rng.random_bool(0.25);
                    pods.push(Pod {
                        placement: Placement {
                            service: name.clone(),
                            namespace: Some("mesh".into()),
                            workload: Some(workload.clone()),
                            version: Some((*version).to_owned()),
                            pod: Some(format!("{name}-{version}-{replica}")),
                        },
                        speed: rng.random_range(0.85..1.15),
                        clock_ms: if skewed {
                            rng.random_range(-10.0..10.0)
                        } else {
                            0.0
                        },
                    });
                }
            }
            let operations = (0..rng.random_range(1..=3))
                .map(|number| Operation {
                    name: format!("op{number}"),
                    self_ms: rng.random_range(0.5..4.0),
                    parallel: rng.random_bool(0.3),
                    calls: Vec::new(),
                })
                .collect();
            Service {
                name,
                pods,
                canary_weight: rng.random_range(0.3..0.5),
                operations,
            }
        }

        /// Builds one trace by walking the call graph from the frontend.
        struct TraceGenerator<'m, 'r> {
            mesh: &'m Mesh,
            fault: Option<&'m Fault>,
            rng: &'r mut SmallRng,
            trace_id: [u8; 16],
            start: i64,
            spans: Vec<SpanView>,
        }

        impl<'m> TraceGenerator<'m, '_> {
            /// Serves one request and returns when it ended (ms) and whether it failed.
            fn serve(
                &mut self,
                service: usize,
                operation: usize,
                start: f64,
                parent: Option<[u8; 8]>,
            ) -> (f64, bool) {
                let mesh: &'m Mesh = self.mesh;
                let service = &mesh.services[service];
                let operation = &service.operations[operation];
                let pod = self.pick_pod(service);
                let fault = self.fault;
                let slow = fault.is_some_and(|f| {
                    f.on_pod(
                        &service.name,
                        &pod.placement,
                        [FaultKind::SlowPod, FaultKind::SlowVersion],
                    )
                });
                let failing = fault.is_some_and(|f| {
                    f.on_pod(
                        &service.name,
                        &pod.placement,
                        [FaultKind::ErrorPod, FaultKind::ErrorVersion],
                    ) && self.rng.random_bool(f.error_rate)
                });
                let spike = if self.rng.random_bool(0.01) { 5.0 } else { 1.0 };
                let mut self_ms =
                    operation.self_ms * pod.speed * self.rng.random_range(0.8..1.2) * spike;
                if slow {
                    self_ms += fault.map_or(0.0, |f| f.extra_ms);
                }

                let server_id = self.new_id();
                let calls_from = start + 0.4 * self_ms;
                let mut cursor = calls_from;
                let mut child_failed = false;
                let fail_fast = failing && self.rng.random_bool(0.5);
                for call in operation.calls.iter().filter(|_| !fail_fast) {
                    if !self.rng.random_bool(0.9) {
                        continue;
                    }
                    let call_start = if operation.parallel {
                        calls_from
                    } else {
                        cursor
                    };
                    let (call_end, failed) = match call {
                        Call::Service {
                            service: callee,
                            operation: callee_operation,
                        } => {
                            let client_id = self.new_id();
                            let network = self.rng.random_range(0.05..0.3);
                            let (served, server_failed) = self.serve(
                                *callee,
                                *callee_operation,
                                call_start + network,
                                Some(client_id),
                            );
                            let end = served + network;
                            let failed = server_failed || self.rng.random_bool(0.001);
                            let name = format!("call {}", mesh.services[*callee].name);
                            self.push(
                                client_id,
                                Some(server_id),
                                pod,
                                &name,
                                SpanKind::Client,
                                (call_start, end),
                                failed,
                                None,
                            );
                            (end, failed)
                        }
                        Call::Peer { name, ms } => {
                            let mut duration = ms * self.rng.random_range(0.8..1.2);
                            if fault.is_some_and(|f| {
                                f.on_peer(&service.name, name, FaultKind::SlowPeer)
                            }) {
                                duration += fault.map_or(0.0, |f| f.extra_ms);
                            }
                            let peer_fails = fault.is_some_and(|f| {
                                f.on_peer(&service.name, name, FaultKind::ErrorPeer)
                                    && self.rng.random_bool(f.error_rate)
                            });
                            let failed = peer_fails || self.rng.random_bool(0.001);
                            let client_id = self.new_id();
                            let span_name = format!("query {name}");
                            let times = (call_start, call_start + duration);
                            self.push(
                                client_id,
                                Some(server_id),
                                pod,
                                &span_name,
                                SpanKind::Client,
                                times,
                                failed,
                                Some(name),
                            );
                            (call_start + duration, failed)
                        }
                    };
                    // A few callers have a fallback that handles the failure.
                    if failed && !self.rng.random_bool(0.15) {
                        child_failed = true;
                    }
                    cursor = if operation.parallel {
                        cursor.max(call_end)
                    } else {
                        call_end + 0.05
                    };
                }

                let end = cursor + 0.6 * self_ms;
                let failed = failing || child_failed || self.rng.random_bool(0.005);
                self.push(
                    server_id,
                    parent,
                    pod,
                    &operation.name,
                    SpanKind::Server,
                    (start, end),
                    failed,
                    None,
                );
                (end, failed)
            }

            fn pick_pod(&mut self, service: &'m Service) -> &'m Pod {
                let canary = service
                    .pods
                    .iter()
                    .any(|pod| pod.placement.version.as_deref() == Some("v2"))
                    && self.rng.random_bool(service.canary_weight);
                let version = if canary { "v2" } else { "v1" };
                let pods: Vec<&Pod> = service
                    .pods
                    .iter()
                    .filter(|pod| pod.placement.version.as_deref() == Some(version))
                    .collect();
                pods.choose(self.rng).unwrap()
            }

            fn new_id(&mut self) -> [u8; 8] {
                self.rng.next_u64().to_be_bytes()
            }

            #[expect(clippy::too_many_arguments, reason = "a span has that many fields")]
            fn push(
                &mut self,
                span_id: [u8; 8],
                parent: Option<[u8; 8]>,
                pod: &Pod,
                name: &str,
                kind: SpanKind,
                (start, end): (f64, f64),
                error: bool,
                peer: Option<&str>,
            ) {
                let at = |ms: f64| self.start + ((ms + pod.clock_ms) * MS) as i64;
                self.spans.push(SpanView {
                    trace_id: self.trace_id,
                    span_id,
                    parent_span_id: parent,
                    name: name.to_owned(),
                    kind,
                    start_unix_nano: at(start),
                    end_unix_nano: at(end),
                    error,
                    placement: pod.placement.clone(),
                    peer: peer.map(str::to_owned),
                });
            }
        }
    }
}
