//! The nodes of a call tree and their ids.

use crate::span_view::SpanView;

/// Position of a node in a [`CallTree`].
///
/// [`CallTree`]: crate::tree::CallTree
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(super) usize);

impl NodeId {
    /// Index into [`CallTree::nodes`]; a parent's index is always below its children's.
    ///
    /// [`CallTree::nodes`]: crate::tree::CallTree::nodes
    pub fn index(self) -> usize {
        self.0
    }
}

/// One node of a call tree: a span, or a placeholder for a parent that never arrived.
///
/// Times are after clock-skew correction; the span itself keeps what was recorded.
#[derive(Debug, Clone)]
pub struct TreeNode {
    pub(super) span_id: [u8; 8],
    pub(super) span: Option<SpanView>,
    pub(super) parent: Option<NodeId>,
    pub(super) children: Vec<NodeId>,
    pub(super) depth: usize,
    pub(super) start_unix_nano: i64,
    pub(super) end_unix_nano: i64,
    pub(super) clock_shift_nanos: i64,
    pub(super) self_nanos: i64,
    pub(super) critical_path: bool,
    pub(super) critical_self_nanos: i64,
}

impl TreeNode {
    /// The span id; a placeholder carries the id its orphans name as parent.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The span as recorded, `None` for a placeholder.
    pub fn span(&self) -> Option<&SpanView> {
        self.span.as_ref()
    }

    /// True for the synthetic node standing in for a parent that never arrived.
    pub fn is_placeholder(&self) -> bool {
        self.span.is_none()
    }

    /// True when the span's status is ERROR; false for placeholders.
    pub fn error(&self) -> bool {
        self.span.as_ref().is_some_and(|span| span.error)
    }

    /// The parent node, `None` for a root.
    pub fn parent(&self) -> Option<NodeId> {
        self.parent
    }

    /// The children, ordered by start time.
    pub fn children(&self) -> &[NodeId] {
        &self.children
    }

    /// Distance from the root: 0 for a root.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Start after clock-skew correction, Unix nanoseconds.
    pub fn start_unix_nano(&self) -> i64 {
        self.start_unix_nano
    }

    /// End after clock-skew correction, Unix nanoseconds; never before the start.
    pub fn end_unix_nano(&self) -> i64 {
        self.end_unix_nano
    }

    /// Duration in nanoseconds; a placeholder spans its children.
    pub fn duration_nanos(&self) -> i64 {
        self.end_unix_nano - self.start_unix_nano
    }

    /// How far clock-skew correction moved this node, in nanoseconds.
    pub fn clock_shift_nanos(&self) -> i64 {
        self.clock_shift_nanos
    }

    /// Duration minus the union of the children's intervals, clipped to this node.
    pub fn self_nanos(&self) -> i64 {
        self.self_nanos
    }

    /// True when the node lies on its root's critical path.
    pub fn critical_path(&self) -> bool {
        self.critical_path
    }

    /// The node's share of the critical path: the time it was on the path and none of its
    /// critical children was. Zero off the path. Summed over a root's tree it equals the
    /// root's duration.
    pub fn critical_self_nanos(&self) -> i64 {
        self.critical_self_nanos
    }
}
