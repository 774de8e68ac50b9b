//! Places a suspect can name: the units of a service a span ran in, the scopes a suspect
//! is narrowed to, and the far end of a call.

use super::SuspectLevel;
use crate::span_view::{Placement, SpanView};
use crate::tree::{CallTree, NodeId};

/// Target of a failed or slow call whose client span names no peer and has no server
/// child.
pub const UNKNOWN_PEER: &str = "unknown_peer";

/// Where a span ran, below the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Unit<'a> {
    pub(super) workload: Option<&'a str>,
    pub(super) version: Option<&'a str>,
    pub(super) pod: Option<&'a str>,
}

impl<'a> Unit<'a> {
    pub(super) fn of(placement: &'a Placement) -> Self {
        Unit {
            workload: placement.workload.as_deref(),
            version: placement.version.as_deref(),
            pod: placement.pod.as_deref(),
        }
    }
}

/// A part of a service that a suspect can be narrowed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Scope<'a> {
    Pod(&'a str),
    Version(&'a str),
    Workload(&'a str),
    Service,
}

impl Scope<'_> {
    pub(super) fn contains(self, unit: Unit<'_>) -> bool {
        match self {
            Scope::Pod(pod) => unit.pod == Some(pod),
            Scope::Version(version) => unit.version == Some(version),
            Scope::Workload(workload) => unit.workload == Some(workload),
            Scope::Service => true,
        }
    }

    pub(super) fn level(self) -> SuspectLevel {
        match self {
            Scope::Pod(_) => SuspectLevel::Pod,
            Scope::Version(_) => SuspectLevel::Version,
            Scope::Workload(_) => SuspectLevel::Workload,
            Scope::Service => SuspectLevel::Service,
        }
    }
}

/// The far end of a call: its SERVER or CONSUMER child's service, else the peer the client
/// span names, else [`UNKNOWN_PEER`].
pub(super) fn call_target<'a>(tree: &'a CallTree, id: NodeId, span: &'a SpanView) -> &'a str {
    let mut children = tree
        .children(id)
        .iter()
        .filter_map(|&child| tree.node(child).span());
    match children.find(|child| child.kind.is_callee()) {
        Some(callee) => &callee.placement.service,
        None => span.peer.as_deref().unwrap_or(UNKNOWN_PEER),
    }
}
