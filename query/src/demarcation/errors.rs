//! Error suspects: the origins of each failing trace, grouped per service or per failed
//! edge, and narrowed to a pod, version or workload when its neighbours are healthy.

use std::collections::{BTreeMap, BTreeSet};

use super::place::{Scope, Unit, call_target};
use super::ranking::wilson_lower_bound;
use super::suspect::{MAX_EXEMPLARS, unanimous};
use super::{Suspect, SuspectEdge, SuspectKind, SuspectLevel};
use crate::span_view::{SpanKind, SpanView};
use crate::tree::{CallTree, TreeNode};

/// Share of a service's failing traces that a pod, version or workload must hold to be
/// blamed instead of the service. The healthy-neighbour test is the main guard; the few
/// origins left outside are narrowed again on their own.
const DOMINANT_SHARE: f64 = 0.75;

/// Spans the neighbours of a pod or version must have served to count as a contrast.
const MIN_HEALTHY_SPANS: usize = 5;

/// Neighbours are healthy when their origin rate is at most this fraction of the suspect's.
const HEALTHY_RATE_RATIO: f64 = 0.25;

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
pub(super) fn error_suspects(window: &[CallTree]) -> Vec<(f64, Suspect)> {
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

#[cfg(test)]
mod tests {
    use crate::demarcation::test_traces::{TraceBuilder, frontend_call, place, top};
    use crate::demarcation::{SuspectKind, SuspectLevel, demarcate};
    use crate::span_view::SpanKind;
    use crate::tree::CallTree;

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
}
