//! Slowdown detection: a subject's median self time against the service's other versions,
//! the other pods of a workload, the other workloads, a baseline, or, without one, the
//! service's other operations.

use std::collections::{BTreeMap, BTreeSet};

use super::place::{Scope, Unit};
use super::samples::{Sample, Samples, Subject};

/// Samples a pod, version, workload or baseline needs before its median is trusted.
const MIN_SAMPLES: usize = 5;

/// A median self time is slow at this multiple of its reference ...
const SLOWDOWN_RATIO: f64 = 1.5;

/// ... and at least this much above it, so that microsecond jitter is never a suspect.
pub(super) const MIN_SLOWDOWN_NANOS: i64 = 1_000_000;

/// Comparing with the service's other operations (no baseline) needs a starker
/// difference, and a larger share of the trace, because operations differ by nature.
const OPERATIONS_RATIO: f64 = 10.0;
pub(super) const OPERATIONS_SLOWED_SHARE: f64 = 0.5;

/// A detected slowdown of one subject within one scope.
pub(super) struct Slowdown<'a> {
    pub(super) subject: Subject<'a>,
    pub(super) scope: Scope<'a>,
    /// The self time a span of the subject should have taken.
    pub(super) reference_nanos: i64,
    /// Found only against the service's other operations.
    pub(super) uncorroborated: bool,
    pub(super) reason: String,
}

/// The slowdowns of one subject, from the most specific contrast that shows one.
pub(super) fn detect_slowdowns<'a>(
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
pub(super) fn against_other_operations<'a>(
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
    use crate::demarcation::test_traces::{TraceBuilder, place, top};
    use crate::demarcation::{SuspectKind, SuspectLevel, demarcate};
    use crate::tree::CallTree;

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
}
