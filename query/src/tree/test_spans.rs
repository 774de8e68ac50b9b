//! Spans and lookups shared by the tree tests.

use super::{CallTree, NodeId, WarningKind};
use crate::span_view::{Placement, SpanKind, SpanView};

pub(super) const TRACE: [u8; 16] = [7; 16];
pub(super) const MS: i64 = 1_000_000;
pub(super) const EPOCH: i64 = 1_700_000_000_000_000_000;

pub(super) fn id(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

/// An INTERNAL span on `pod-a` of service `svc`, times in ms after `EPOCH`.
pub(super) fn span(span_id: u64, parent: Option<u64>, start_ms: i64, end_ms: i64) -> SpanView {
    SpanView {
        trace_id: TRACE,
        span_id: id(span_id),
        parent_span_id: parent.map(id),
        name: format!("op{span_id}"),
        kind: SpanKind::Internal,
        start_unix_nano: EPOCH + start_ms * MS,
        end_unix_nano: EPOCH + end_ms * MS,
        error: false,
        placement: Placement {
            service: "svc".into(),
            pod: Some("pod-a".into()),
            ..Placement::default()
        },
        peer: None,
    }
}

pub(super) fn on(mut span: SpanView, pod: &str, kind: SpanKind) -> SpanView {
    span.placement.pod = Some(pod.into());
    span.kind = kind;
    span
}

/// The non-placeholder node with this span id and kind.
pub(super) fn find(tree: &CallTree, span_id: u64, kind: SpanKind) -> NodeId {
    let found = tree.nodes().find(|(_, node)| {
        node.span()
            .is_some_and(|span| span.span_id == id(span_id) && span.kind == kind)
    });
    found
        .map(|(node_id, _)| node_id)
        .expect("span is in the tree")
}

pub(super) fn ids(tree: &CallTree, nodes: &[NodeId]) -> Vec<[u8; 8]> {
    nodes
        .iter()
        .map(|&node| tree.node(node).span_id())
        .collect()
}

pub(super) fn kinds(tree: &CallTree) -> Vec<WarningKind> {
    tree.warnings().iter().map(|warning| warning.kind).collect()
}
