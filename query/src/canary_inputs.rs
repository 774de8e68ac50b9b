//! The canary judge's inputs for one service: per edge and operation, what the baseline's
//! spans and the canary's spans did over the same window, in arrival order.
//!
//! ```text
//! spans of the range ─► the service's SERVER/CONSUMER and CLIENT/PRODUCER spans, each
//!   │                   marked baseline or canary by its SELECTOR
//!   └─► + their callers' and callees' spans ─► call trees
//!         ─► incoming: caller service ─► service, per operation   ┐
//!         ─► outgoing: service ─► callee service or virtual peer  ┴─► CheckInput
//! ```
//!
//! **Incoming** edges are the service's SERVER and CONSUMER spans. The edge's source is
//! the service of the parent span (the caller's CLIENT span), `user` for a root span, and
//! [`UNKNOWN_PEER`] when the parent never arrived. A call fails when the span or its
//! caller's CLIENT/PRODUCER span has status ERROR; its latency is the service's own span,
//! which is what the canary controls (the caller's span adds the network, the same for
//! both sides).
//!
//! **Outgoing** edges are the service's CLIENT and PRODUCER spans. The target is the
//! service of the SERVER/CONSUMER child, else the span's virtual peer
//! ([`SpanView::peer`]), else [`UNKNOWN_PEER`]. A call fails when the span or that child
//! has status ERROR; its latency is the client span's duration. These are the contract's
//! edge rules.
//!
//! Comparing edge by edge is what keeps a shared dependency's fault off the canary: when
//! `ratings` fails for everyone, `reviews→ratings` fails as often for the baseline as for
//! the canary, and so do the incoming calls that fail because of it, and the judge, which
//! asks whether the canary is *worse than its baseline*, finds nothing.
//!
//! **Order.** Each side's calls are sorted by start time. The totals (`errors`, `requests`)
//! count every call. For the block tests (latency, and errors call by call), the side with
//! more traffic is thinned to the other's pace: each call of the sparser side is paired with
//! the last call of the denser side that started at or before it, and the sample keeps the
//! latency and outcome of each paired call. The block tests compare block `j` of one side
//! with block `j` of the other, so without pairing a canary at 20% of the traffic would have
//! its calls compared with the baseline's *oldest* ones; paired, the blocks are
//! contemporaneous. Which calls are kept depends on start times only, never on latencies
//! or outcomes, so the tests' guarantees are untouched, and a growing window only appends
//! pairs.
//!
//! [`crate::canary::CanaryScan`] reads the spans these trees are built from out of the
//! store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::canary::{CheckInput, Sample};
use crate::demarcation::UNKNOWN_PEER;
use crate::span_view::SpanView;
use crate::tree::{CallTree, NodeId};

/// Source of the incoming edge of a root span: the request came from outside.
pub const USER: &str = "user";

/// Slowest canary traces kept per check, as latency exemplars.
const MAX_SLOW_EXEMPLARS: usize = 5;

/// Which side a span belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Membership {
    /// Only the baseline selector matches.
    Baseline,
    /// Only the canary selector matches.
    Canary,
    /// Both match: the span is counted for neither, and reported.
    Both,
    /// Neither matches.
    Neither,
}

impl Membership {
    /// The membership of a span that the baseline and canary selectors do or do not match.
    pub fn of(baseline: bool, canary: bool) -> Self {
        match (baseline, canary) {
            (true, false) => Self::Baseline,
            (false, true) => Self::Canary,
            (true, true) => Self::Both,
            (false, false) => Self::Neither,
        }
    }
}

/// Whether an input's calls come into the service or go out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// SERVER and CONSUMER spans of the service.
    Incoming,
    /// CLIENT and PRODUCER spans of the service.
    Outgoing,
}

/// Traces behind one input, for evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckTraces {
    /// Whether the input's calls come in or go out.
    pub direction: Direction,
    /// Traces with a failed canary call on this edge and operation, oldest first.
    pub failing_canary: Vec<[u8; 16]>,
    /// Traces of the slowest canary calls, slowest first.
    pub slowest_canary: Vec<[u8; 16]>,
}

/// What one side did over the window, beyond the per-check samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideSummary {
    /// Spans of the service counted for this side.
    pub spans: u64,
    /// Incoming calls (SERVER and CONSUMER spans).
    pub requests: u64,
    /// Incoming calls that failed.
    pub errors: u64,
    /// Pods the side's spans ran in.
    pub pods: BTreeSet<String>,
    /// Workloads the side's spans ran in.
    pub workloads: BTreeSet<String>,
    /// Versions the side's spans ran.
    pub versions: BTreeSet<String>,
    /// Every trace with a call of this side, with the start of its first such call.
    pub trace_starts: HashMap<[u8; 16], i64>,
    /// Traces where a call of this side failed.
    pub failing_traces: HashSet<[u8; 16]>,
}

impl SideSummary {
    /// Up to `limit` of the side's traces, latest first; only failing ones when asked.
    pub fn recent_traces(&self, limit: usize, failing_only: bool) -> Vec<[u8; 16]> {
        let mut traces: Vec<(i64, [u8; 16])> = self
            .trace_starts
            .iter()
            .filter(|(id, _)| !failing_only || self.failing_traces.contains(*id))
            .map(|(id, start)| (*start, *id))
            .collect();
        traces.sort_unstable_by(|a, b| b.cmp(a));
        traces.into_iter().take(limit).map(|(_, id)| id).collect()
    }
}

/// The judge's inputs with what stands behind them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanaryInputs {
    /// One input per edge and operation, sorted by source, target and operation.
    pub inputs: Vec<CheckInput>,
    /// The traces behind each input, in the same order.
    pub traces: Vec<CheckTraces>,
    /// The baseline's side.
    pub baseline: SideSummary,
    /// The canary's side.
    pub canary: SideSummary,
    /// Spans of the service that both selectors matched, counted for neither.
    pub ambiguous_spans: u64,
}

/// One call as the inputs need it.
#[derive(Debug, Clone, Copy)]
struct TimedCall {
    start_unix_nano: i64,
    latency_ms: f64,
    error: bool,
    trace_id: [u8; 16],
}

/// The calls of one edge and operation, per side (baseline, canary).
type EdgeCalls = (Direction, [Vec<TimedCall>; 2]);

/// Builds the judge's inputs for `service` from call trees (see the module docs).
///
/// `membership` tells which side each of the service's spans belongs to. Trees may be
/// whole traces or just the service's spans with their callers and callees.
pub fn canary_inputs(
    trees: &[CallTree],
    service: &str,
    membership: impl Fn(&SpanView) -> Membership,
) -> CanaryInputs {
    let mut edges: BTreeMap<(String, String, String), EdgeCalls> = BTreeMap::new();
    let mut sides = [SideSummary::default(), SideSummary::default()];
    let mut ambiguous_spans = 0;
    for tree in trees {
        for (id, node) in tree.nodes() {
            let Some(span) = node.span() else {
                continue;
            };
            if span.placement.service != service {
                continue;
            }
            let Some((direction, source, target, error)) = edge_of(tree, id, span) else {
                continue;
            };
            let side = match membership(span) {
                Membership::Baseline => 0,
                Membership::Canary => 1,
                Membership::Both => {
                    ambiguous_spans += 1;
                    continue;
                }
                Membership::Neither => continue,
            };

            let call = TimedCall {
                start_unix_nano: span.start_unix_nano,
                latency_ms: span.duration_ms(),
                error,
                trace_id: tree.trace_id(),
            };
            let key = (source, target, span.name.clone());
            edges
                .entry(key)
                .or_insert_with(|| (direction, [Vec::new(), Vec::new()]))
                .1[side]
                .push(call);
            summarize(&mut sides[side], span, direction, &call);
        }
    }

    let mut inputs = Vec::with_capacity(edges.len());
    let mut traces = Vec::with_capacity(edges.len());
    for ((source, target, operation), (direction, [mut baseline, mut canary])) in edges {
        for calls in [&mut baseline, &mut canary] {
            calls.sort_by(|a, b| {
                (a.start_unix_nano, a.trace_id).cmp(&(b.start_unix_nano, b.trace_id))
            });
        }
        let (baseline_paired, canary_paired) = pair_in_time(&baseline, &canary);
        traces.push(CheckTraces {
            direction,
            failing_canary: failing_traces(&canary),
            slowest_canary: slowest_traces(&canary),
        });
        inputs.push(CheckInput {
            edge_source: source,
            edge_target: target,
            operation,
            baseline: sample(&baseline, &baseline_paired),
            canary: sample(&canary, &canary_paired),
        });
    }
    let [baseline, canary] = sides;
    CanaryInputs {
        inputs,
        traces,
        baseline,
        canary,
        ambiguous_spans,
    }
}

/// The edge of one of the service's spans: direction, source, target and whether the call
/// failed; `None` for spans that are not calls (INTERNAL, unspecified).
fn edge_of(
    tree: &CallTree,
    id: NodeId,
    span: &SpanView,
) -> Option<(Direction, String, String, bool)> {
    if span.kind.is_callee() {
        let caller = tree.parent(id).map(|parent| tree.node(parent).span());
        let source = match caller {
            None if span.parent_span_id.is_none() => USER.to_owned(),
            Some(Some(caller)) => caller.placement.service.clone(),
            _ => UNKNOWN_PEER.to_owned(),
        };
        let caller_failed = caller
            .flatten()
            .is_some_and(|caller| caller.kind.is_caller() && caller.error);
        let target = span.placement.service.clone();
        return Some((
            Direction::Incoming,
            source,
            target,
            span.error || caller_failed,
        ));
    }
    if span.kind.is_caller() {
        let callee = tree
            .children(id)
            .iter()
            .filter_map(|&child| tree.node(child).span())
            .find(|child| child.kind.is_callee());
        let target = match (callee, &span.peer) {
            (Some(callee), _) => callee.placement.service.clone(),
            (None, Some(peer)) => peer.clone(),
            (None, None) => UNKNOWN_PEER.to_owned(),
        };
        let callee_failed = callee.is_some_and(|callee| callee.error);
        let source = span.placement.service.clone();
        return Some((
            Direction::Outgoing,
            source,
            target,
            span.error || callee_failed,
        ));
    }
    None
}

fn summarize(side: &mut SideSummary, span: &SpanView, direction: Direction, call: &TimedCall) {
    side.spans += 1;
    if direction == Direction::Incoming {
        side.requests += 1;
        side.errors += u64::from(call.error);
    }
    let placement = &span.placement;
    for (set, value) in [
        (&mut side.pods, &placement.pod),
        (&mut side.workloads, &placement.workload),
        (&mut side.versions, &placement.version),
    ] {
        if let Some(value) = value
            && !set.contains(value)
        {
            set.insert(value.clone());
        }
    }
    let start = side
        .trace_starts
        .entry(call.trace_id)
        .or_insert(call.start_unix_nano);
    *start = (*start).min(call.start_unix_nano);
    if call.error {
        side.failing_traces.insert(call.trace_id);
    }
}

/// A side's sample: totals over every call, latencies and outcomes of the paired calls.
fn sample(calls: &[TimedCall], paired: &[usize]) -> Sample {
    Sample {
        latencies_ms: paired
            .iter()
            .map(|&index| calls[index].latency_ms)
            .collect(),
        failed: paired.iter().map(|&index| calls[index].error).collect(),
        errors: calls.iter().filter(|call| call.error).count() as u64,
        requests: calls.len() as u64,
    }
}

/// Positions of the calls kept on each side, the denser side thinned to the sparser side's
/// pace (see the module docs). Both inputs are sorted by start time; the outputs have equal
/// lengths.
fn pair_in_time(baseline: &[TimedCall], canary: &[TimedCall]) -> (Vec<usize>, Vec<usize>) {
    let pairs = baseline.len().min(canary.len());
    let (mut baseline_kept, mut canary_kept) =
        (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    let (mut b, mut c) = (0, 0);
    let last_at_or_before = |calls: &[TimedCall], from: usize, time: i64| {
        let mut index = from;
        while index + 1 < calls.len() && calls[index + 1].start_unix_nano <= time {
            index += 1;
        }
        index
    };
    while b < baseline.len() && c < canary.len() {
        if baseline[b].start_unix_nano <= canary[c].start_unix_nano {
            b = last_at_or_before(baseline, b, canary[c].start_unix_nano);
        } else {
            c = last_at_or_before(canary, c, baseline[b].start_unix_nano);
        }
        baseline_kept.push(b);
        canary_kept.push(c);
        b += 1;
        c += 1;
    }
    (baseline_kept, canary_kept)
}

fn failing_traces(calls: &[TimedCall]) -> Vec<[u8; 16]> {
    let mut seen = HashSet::new();
    calls
        .iter()
        .filter(|call| call.error && seen.insert(call.trace_id))
        .map(|call| call.trace_id)
        .collect()
}

fn slowest_traces(calls: &[TimedCall]) -> Vec<[u8; 16]> {
    let mut slowest: Vec<&TimedCall> = calls.iter().collect();
    slowest.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
    let mut seen = HashSet::new();
    slowest
        .into_iter()
        .filter(|call| seen.insert(call.trace_id))
        .take(MAX_SLOW_EXEMPLARS)
        .map(|call| call.trace_id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span_view::{Placement, SpanKind};

    /// A span of a hand-made trace: `id` and `parent` are small numbers.
    #[expect(
        clippy::too_many_arguments,
        reason = "a span has this many coordinates"
    )]
    fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        service: &str,
        version: &str,
        kind: SpanKind,
        name: &str,
        start_ms: i64,
        duration_ms: i64,
        error: bool,
    ) -> SpanView {
        SpanView {
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            name: name.into(),
            kind,
            start_unix_nano: start_ms * 1_000_000,
            end_unix_nano: (start_ms + duration_ms) * 1_000_000,
            error,
            placement: Placement {
                service: service.into(),
                namespace: Some("shop".into()),
                workload: Some(format!("{service}-{version}")),
                version: Some(version.into()),
                pod: Some(format!("{service}-{version}-0")),
            },
            peer: None,
        }
    }

    /// user ─► frontend ─► reviews (version) ─► ratings, and reviews ─► redis (virtual).
    fn trace(number: u8, version: &str, start_ms: i64, reviews_fails: bool) -> CallTree {
        use SpanKind::{Client, Server};
        let mut redis = span(
            number,
            7,
            Some(3),
            "reviews",
            version,
            Client,
            "GET",
            start_ms + 9,
            1,
            false,
        );
        redis.peer = Some("redis".into());
        let spans = vec![
            span(
                number,
                1,
                None,
                "frontend",
                "1.0",
                Server,
                "GET /",
                start_ms,
                30,
                reviews_fails,
            ),
            span(
                number,
                2,
                Some(1),
                "frontend",
                "1.0",
                Client,
                "GET /reviews",
                start_ms + 1,
                20,
                reviews_fails,
            ),
            span(
                number,
                3,
                Some(2),
                "reviews",
                version,
                Server,
                "GET /reviews",
                start_ms + 2,
                18,
                reviews_fails,
            ),
            span(
                number,
                4,
                Some(3),
                "reviews",
                version,
                Client,
                "ratings/Get",
                start_ms + 3,
                5,
                false,
            ),
            span(
                number,
                5,
                Some(4),
                "ratings",
                "1.0",
                Server,
                "ratings/Get",
                start_ms + 4,
                3,
                false,
            ),
            redis,
        ];
        CallTree::assemble(spans).unwrap()
    }

    fn by_version(span: &SpanView) -> Membership {
        let version = span.placement.version.as_deref();
        Membership::of(version == Some("v1"), version == Some("v2"))
    }

    fn input<'a>(inputs: &'a CanaryInputs, source: &str, target: &str) -> &'a CheckInput {
        inputs
            .inputs
            .iter()
            .find(|input| input.edge_source == source && input.edge_target == target)
            .unwrap_or_else(|| panic!("no input {source}->{target}"))
    }

    #[test]
    fn incoming_and_outgoing_edges_per_side() {
        let trees = vec![
            trace(1, "v1", 0, false),
            trace(2, "v2", 100, true),
            trace(3, "v1", 200, false),
        ];
        let inputs = canary_inputs(&trees, "reviews", by_version);
        let keys: Vec<(&str, &str, &str)> = inputs
            .inputs
            .iter()
            .map(|i| {
                (
                    i.edge_source.as_str(),
                    i.edge_target.as_str(),
                    i.operation.as_str(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("frontend", "reviews", "GET /reviews"),
                ("reviews", "ratings", "ratings/Get"),
                ("reviews", "redis", "GET"),
            ]
        );

        let incoming = input(&inputs, "frontend", "reviews");
        assert_eq!(
            (incoming.baseline.requests, incoming.baseline.errors),
            (2, 0)
        );
        assert_eq!((incoming.canary.requests, incoming.canary.errors), (1, 1));
        // The service's own SERVER span duration.
        assert_eq!(incoming.canary.latencies_ms, vec![18.0]);
        let outgoing = input(&inputs, "reviews", "ratings");
        assert_eq!((outgoing.canary.requests, outgoing.canary.errors), (1, 0));
        assert_eq!(outgoing.canary.latencies_ms, vec![5.0]);

        assert_eq!(inputs.traces[0].direction, Direction::Incoming);
        assert_eq!(inputs.traces[0].failing_canary, vec![[2; 16]]);
        assert_eq!(inputs.traces[1].direction, Direction::Outgoing);
        assert!(inputs.traces[1].failing_canary.is_empty());
        assert_eq!(
            inputs.canary.pods,
            BTreeSet::from(["reviews-v2-0".to_owned()])
        );
        assert_eq!((inputs.baseline.requests, inputs.canary.errors), (2, 1));
        assert_eq!(inputs.canary.failing_traces, HashSet::from([[2; 16]]));
    }

    #[test]
    fn root_spans_come_from_user_and_orphans_from_an_unknown_peer() {
        use SpanKind::Server;
        let root = span(
            1,
            1,
            None,
            "reviews",
            "v2",
            Server,
            "GET /reviews",
            0,
            10,
            false,
        );
        let orphan = span(
            2,
            1,
            Some(9),
            "reviews",
            "v2",
            Server,
            "GET /reviews",
            5,
            10,
            false,
        );
        let trees = vec![
            CallTree::assemble(vec![root]).unwrap(),
            CallTree::assemble(vec![orphan]).unwrap(),
        ];
        let inputs = canary_inputs(&trees, "reviews", by_version);
        let sources: Vec<&str> = inputs
            .inputs
            .iter()
            .map(|i| i.edge_source.as_str())
            .collect();
        // Sorted by edge: `unknown_peer` before `user`.
        assert_eq!(sources, vec![UNKNOWN_PEER, USER]);
    }

    #[test]
    fn a_failing_callee_fails_the_outgoing_call_and_a_failing_caller_the_incoming_one() {
        use SpanKind::{Client, Server};
        let spans = vec![
            span(
                1,
                1,
                None,
                "frontend",
                "1.0",
                Client,
                "GET /reviews",
                0,
                20,
                true,
            ),
            span(
                1,
                2,
                Some(1),
                "reviews",
                "v2",
                Server,
                "GET /reviews",
                1,
                18,
                false,
            ),
            span(
                1,
                3,
                Some(2),
                "reviews",
                "v2",
                Client,
                "ratings/Get",
                2,
                5,
                false,
            ),
            span(
                1,
                4,
                Some(3),
                "ratings",
                "1.0",
                Server,
                "ratings/Get",
                3,
                3,
                true,
            ),
        ];
        let trees = vec![CallTree::assemble(spans).unwrap()];
        let inputs = canary_inputs(&trees, "reviews", by_version);
        assert_eq!(input(&inputs, "frontend", "reviews").canary.errors, 1);
        assert_eq!(input(&inputs, "reviews", "ratings").canary.errors, 1);
    }

    #[test]
    fn spans_both_selectors_match_are_counted_for_neither() {
        let trees = vec![trace(1, "v1", 0, false)];
        let inputs = canary_inputs(&trees, "reviews", |span| {
            Membership::of(true, span.kind == SpanKind::Server)
        });
        assert_eq!(inputs.ambiguous_spans, 1);
        assert!(inputs.inputs.iter().all(|i| i.edge_source != "frontend"));
        assert_eq!(input(&inputs, "reviews", "ratings").baseline.requests, 1);
        assert_eq!(inputs.baseline.requests, 0);
    }

    #[test]
    fn calls_come_in_start_order_whatever_the_tree_order() {
        let trees = vec![
            trace(3, "v1", 300, false),
            trace(1, "v1", 100, false),
            trace(2, "v2", 150, false),
            trace(4, "v2", 250, false),
        ];
        let inputs = canary_inputs(&trees, "reviews", by_version);
        let incoming = input(&inputs, "frontend", "reviews");
        assert_eq!(incoming.baseline.requests, 2);
        assert_eq!(incoming.canary.requests, 2);
        assert_eq!(
            inputs.baseline.recent_traces(10, false),
            vec![[3; 16], [1; 16]]
        );
    }

    /// `count` traces per version where ratings fails for every `ratings_fails_every`-th call
    /// and reviews propagates the failure; `reviews_fails_every` adds reviews' own failures.
    fn traffic(
        version: &str,
        first: u8,
        count: usize,
        ratings_fails_every: usize,
        reviews_fails_every: Option<usize>,
    ) -> Vec<CallTree> {
        use SpanKind::{Client, Server};
        (0..count)
            .map(|index| {
                let number = first.wrapping_add(index as u8);
                let start_ms = 10 * index as i64 + i64::from(first);
                let ratings_fails = index % ratings_fails_every == 0;
                let fails =
                    ratings_fails || reviews_fails_every.is_some_and(|every| index % every == 1);
                let mut spans = vec![
                    span(
                        number,
                        1,
                        None,
                        "frontend",
                        "1.0",
                        Client,
                        "GET /reviews",
                        start_ms,
                        20,
                        fails,
                    ),
                    span(
                        number,
                        2,
                        Some(1),
                        "reviews",
                        version,
                        Server,
                        "GET /reviews",
                        start_ms + 1,
                        18,
                        fails,
                    ),
                    span(
                        number,
                        3,
                        Some(2),
                        "reviews",
                        version,
                        Client,
                        "ratings/Get",
                        start_ms + 2,
                        5,
                        ratings_fails,
                    ),
                    span(
                        number,
                        4,
                        Some(3),
                        "ratings",
                        "1.0",
                        Server,
                        "ratings/Get",
                        start_ms + 3,
                        3,
                        ratings_fails,
                    ),
                ];
                // Unique trace ids across both sides.
                for span in &mut spans {
                    span.trace_id[1] = first;
                    span.trace_id[2..10].copy_from_slice(&(index as u64).to_be_bytes());
                }
                CallTree::assemble(spans).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_dependency_failing_for_both_sides_does_not_fail_the_canary() {
        use crate::canary::{JudgeConfig, Metric, Outcome, judge};
        // ratings fails one call in five for everyone, and reviews fails with it.
        let mut trees = traffic("v1", 0, 600, 5, None);
        trees.extend(traffic("v2", 1, 600, 5, None));
        let inputs = canary_inputs(&trees, "reviews", by_version);
        let incoming = input(&inputs, "frontend", "reviews");
        assert_eq!(
            (incoming.baseline.errors, incoming.canary.errors),
            (120, 120)
        );
        let verdict = judge(&inputs.inputs, &JudgeConfig::default()).unwrap();
        assert_eq!(verdict.verdict, Outcome::Pass, "{verdict:#?}");

        // The same dependency fault plus reviews v2's own one-in-three failures does fail it,
        // on the edge into reviews and not on the edge to ratings.
        let mut trees = traffic("v1", 0, 600, 5, None);
        trees.extend(traffic("v2", 1, 600, 5, Some(3)));
        let inputs = canary_inputs(&trees, "reviews", by_version);
        let verdict = judge(&inputs.inputs, &JudgeConfig::default()).unwrap();
        assert_eq!(verdict.verdict, Outcome::Fail);
        let failed: Vec<(&str, &str, Metric)> = verdict
            .checks
            .iter()
            .filter(|check| check.result == Outcome::Fail)
            .map(|check| {
                (
                    check.edge.source.as_str(),
                    check.edge.target.as_str(),
                    check.metric,
                )
            })
            .collect();
        assert_eq!(failed, vec![("frontend", "reviews", Metric::ErrorRate)]);
    }

    fn calls(starts_and_latencies: &[(i64, f64)]) -> Vec<TimedCall> {
        starts_and_latencies
            .iter()
            .map(|&(start_unix_nano, latency_ms)| TimedCall {
                start_unix_nano,
                latency_ms,
                error: false,
                trace_id: [0; 16],
            })
            .collect()
    }

    #[test]
    fn the_denser_side_is_thinned_to_the_sparser_sides_pace() {
        // Baseline every 1 ns, canary every 4 ns: each canary call meets the baseline call
        // that started last before it, not the baseline's oldest calls.
        let baseline = calls(&(0..12).map(|t| (t, t as f64)).collect::<Vec<_>>());
        let canary = calls(&[(3, 100.0), (7, 101.0), (11, 102.0)]);
        let (baseline_kept, canary_kept) = pair_in_time(&baseline, &canary);
        assert_eq!(baseline_kept, vec![3, 7, 11]);
        assert_eq!(canary_kept, vec![0, 1, 2]);
        let thinned = sample(&baseline, &baseline_kept);
        assert_eq!(thinned.latencies_ms, vec![3.0, 7.0, 11.0]);
        assert_eq!((thinned.failed.len(), thinned.requests), (3, 12));

        // Symmetric when the canary is the denser side.
        let (baseline_kept, canary_kept) = pair_in_time(&canary, &baseline);
        assert_eq!(baseline_kept, vec![0, 1, 2]);
        assert_eq!(canary_kept, vec![3, 7, 11]);
    }

    #[test]
    fn pairing_only_appends_when_the_window_grows() {
        let baseline: Vec<(i64, f64)> = (0..40).map(|t| (t * 3, t as f64)).collect();
        let canary: Vec<(i64, f64)> = (0..15).map(|t| (t * 7 + 1, 50.0 + t as f64)).collect();
        let full = pair_in_time(&calls(&baseline), &calls(&canary));
        for end in [20, 45, 80] {
            let upto = |list: &[(i64, f64)]| -> Vec<(i64, f64)> {
                list.iter().copied().filter(|(t, _)| *t <= end).collect()
            };
            let early = pair_in_time(&calls(&upto(&baseline)), &calls(&upto(&canary)));
            assert_eq!(early.0[..], full.0[..early.0.len()], "window ending {end}");
            assert_eq!(early.1[..], full.1[..early.1.len()], "window ending {end}");
        }
    }
}
