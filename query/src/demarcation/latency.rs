//! Latency suspects: slowdowns grouped per place, blamed for the traces whose critical
//! path they noticeably lengthen.

use std::collections::{BTreeMap, BTreeSet};

use super::place::{Scope, Unit};
use super::ranking::wilson_lower_bound;
use super::samples::{Samples, collect_samples};
use super::slowdown::{
    MIN_SLOWDOWN_NANOS, OPERATIONS_SLOWED_SHARE, Slowdown, against_other_operations,
    detect_slowdowns,
};
use super::suspect::{MAX_EXEMPLARS, unanimous};
use super::{Suspect, SuspectEdge, SuspectKind, SuspectLevel};
use crate::tree::CallTree;

/// A slowdown slows a trace when its excess is at least this share of the trace's latency.
const SLOWED_SHARE: f64 = 0.1;

/// Ranking weight of a slowdown seen only against the service's other operations.
const UNCORROBORATED_WEIGHT: f64 = 0.5;

/// Latency suspects with their ranking key.
pub(super) fn latency_suspects(
    window: &[CallTree],
    baseline: Option<&[CallTree]>,
) -> Vec<(f64, Suspect)> {
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
