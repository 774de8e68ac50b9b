//! Latency samples: every span's self time and critical-path share, by subject.

use std::collections::BTreeMap;

use super::place::{Unit, call_target};
use crate::tree::CallTree;

/// What a latency sample measures: an operation of a service, or a service's calls to a
/// callee or peer (`target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Subject<'a> {
    pub(super) service: &'a str,
    pub(super) operation: &'a str,
    pub(super) target: Option<&'a str>,
}

/// One span's times.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample<'a> {
    pub(super) trace: usize,
    pub(super) unit: Unit<'a>,
    pub(super) self_nanos: i64,
    pub(super) critical_self_nanos: i64,
}

pub(super) type Samples<'a> = BTreeMap<Subject<'a>, Vec<Sample<'a>>>;

/// Every span's self time and critical-path share, by subject.
pub(super) fn collect_samples(trees: &[CallTree]) -> Samples<'_> {
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
