//! Call-tree assembly: the spans of one trace become parent/child trees with self times
//! and a critical path.
//!
//! ```text
//! spans ─► drop exact copies ─► link parents ─► placeholders ─► cut cycles
//!       ─► clock-skew shifts ─► sort siblings ─► breadth-first renumbering
//!       ─► self time ─► critical path
//! ```
//!
//! Real traces are messy, so assembly repairs instead of refusing. A parent that never
//! arrived gets a placeholder node; a Zipkin-style shared span id (a CLIENT and a SERVER
//! span with the same id) becomes a client → server pair; a child whose clock disagrees
//! with its parent's is shifted into it; a loop of parent links is cut. Every repair is
//! reported as a [`TreeWarning`].
//!
//! Every pass walks an explicit order (breadth-first from the roots, or its reverse)
//! instead of recursing, so a chain 100,000 spans deep needs no more stack than a flat
//! trace. Assembly is O(n log n); the logarithm comes from sorting siblings.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::span_view::{Placement, SpanKind, SpanView};

/// Node depth at which [`CallTree::to_json`] stops nesting and flattens the subtree.
///
/// serde_json refuses to parse documents nested deeper than 128 arrays and objects, and
/// building, printing or dropping a nested `serde_json::Value` recurses once per level.
/// A node costs two levels (its object and its `children` array) below the envelope's
/// two, so a node at depth 60 whose flattened descendants sit in its `children` reaches
/// level 126 and still parses.
pub const MAX_JSON_DEPTH: usize = 60;

/// Why a call tree could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// No spans were given.
    #[error("cannot assemble a call tree from zero spans")]
    NoSpans,
    /// A span belongs to another trace than the first span.
    #[error("span {span_id} belongs to trace {found}, not to trace {expected}")]
    MixedTraces {
        /// The first span's trace id, hex.
        expected: String,
        /// The stray span's trace id, hex.
        found: String,
        /// The stray span's id, hex.
        span_id: String,
    },
}

/// What a [`TreeWarning`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// Spans whose parent never arrived were attached under a placeholder.
    Orphan,
    /// A subtree was shifted into its parent because their clocks disagree.
    ClockSkew,
    /// Several spans share an id and are not a client/server pair, or a span arrived twice.
    DuplicateSpanId,
    /// Parent links formed a loop, which was cut by turning one span into a root.
    Cycle,
    /// Only from [`CallTree::to_json`]: a subtree deeper than [`MAX_JSON_DEPTH`] was
    /// flattened.
    DepthCap,
}

impl WarningKind {
    /// The name used in JSON: `orphan`, `clock_skew`, `duplicate_span_id`, `cycle` or
    /// `depth_cap`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orphan => "orphan",
            Self::ClockSkew => "clock_skew",
            Self::DuplicateSpanId => "duplicate_span_id",
            Self::Cycle => "cycle",
            Self::DepthCap => "depth_cap",
        }
    }
}

/// One repair that assembly made, for the reader of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeWarning {
    /// What was repaired.
    pub kind: WarningKind,
    /// The span concerned; for orphans, the id of the parent that never arrived.
    pub span_id: [u8; 8],
    /// A sentence for people.
    pub message: String,
    /// For clock skew: how far the subtree moved, in nanoseconds (positive is later).
    pub delta_nanos: Option<i64>,
}

impl TreeWarning {
    fn new(kind: WarningKind, span_id: [u8; 8], message: String) -> Self {
        Self {
            kind,
            span_id,
            message,
            delta_nanos: None,
        }
    }

    /// The contract's JSON: `{"kind", "span_id", "message"}`, plus `delta_ms` for clock
    /// skew.
    pub fn to_json(&self) -> Value {
        let mut warning = json!({
            "kind": self.kind.as_str(),
            "span_id": hex::encode(self.span_id),
            "message": self.message,
        });
        if let Some(delta) = self.delta_nanos {
            warning["delta_ms"] = json!(nanos_to_ms(delta));
        }
        warning
    }
}

/// Position of a node in a [`CallTree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(usize);

impl NodeId {
    /// Index into [`CallTree::nodes`]; a parent's index is always below its children's.
    pub fn index(self) -> usize {
        self.0
    }
}

/// One node of a call tree: a span, or a placeholder for a parent that never arrived.
///
/// Times are after clock-skew correction; the span itself keeps what was recorded.
#[derive(Debug, Clone)]
pub struct TreeNode {
    span_id: [u8; 8],
    span: Option<SpanView>,
    parent: Option<NodeId>,
    children: Vec<NodeId>,
    depth: usize,
    start_unix_nano: i64,
    end_unix_nano: i64,
    clock_shift_nanos: i64,
    self_nanos: i64,
    critical_path: bool,
    critical_self_nanos: i64,
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

/// The call trees of one trace, with the warnings of their assembly.
///
/// Nodes are numbered breadth-first from the roots, so iterating [`CallTree::nodes`]
/// visits every parent before its children, and iterating it backwards visits children
/// first.
#[derive(Debug, Clone)]
pub struct CallTree {
    trace_id: [u8; 16],
    nodes: Vec<TreeNode>,
    roots: Vec<NodeId>,
    warnings: Vec<TreeWarning>,
    num_spans: usize,
}

impl CallTree {
    /// Assembles the spans of one trace, in any order.
    ///
    /// Never loops on cycles, never recurses: see the module documentation for what is
    /// repaired and how.
    ///
    /// # Errors
    ///
    /// [`TreeError::NoSpans`] for an empty input, [`TreeError::MixedTraces`] when the
    /// spans do not all share the first span's trace id.
    pub fn assemble(spans: Vec<SpanView>) -> Result<CallTree, TreeError> {
        let Some(first) = spans.first() else {
            return Err(TreeError::NoSpans);
        };
        let trace_id = first.trace_id;
        if let Some(stray) = spans.iter().find(|span| span.trace_id != trace_id) {
            return Err(TreeError::MixedTraces {
                expected: hex::encode(trace_id),
                found: hex::encode(stray.trace_id),
                span_id: hex::encode(stray.span_id),
            });
        }

        let mut warnings = Vec::new();
        let mut spans = spans;
        let mut by_id = sorted_by_id(&spans);
        if drop_exact_copies(&mut spans, &by_id, &mut warnings) {
            by_id = sorted_by_id(&spans);
        }
        let owners = own_span_ids(&spans, &by_id, &mut warnings);
        drop(by_id);
        let mut draft = Draft::link(spans, &owners, &mut warnings);
        draft.cut_cycles(&mut warnings);
        let children = draft.children();
        draft.correct_clock_skew(&children, &mut warnings);
        draft.span_placeholders(&children);
        let mut tree = draft.into_tree(trace_id, children, warnings);
        tree.compute_self_times();
        tree.compute_critical_path();
        Ok(tree)
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// Number of spans in the tree (exact copies dropped, placeholders not counted).
    pub fn num_spans(&self) -> usize {
        self.num_spans
    }

    /// Number of nodes, placeholders included.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// One node.
    ///
    /// # Panics
    ///
    /// When `id` comes from another tree and is out of range.
    pub fn node(&self, id: NodeId) -> &TreeNode {
        &self.nodes[id.0]
    }

    /// Every node, parents before children (breadth-first from the roots).
    pub fn nodes(
        &self,
    ) -> impl DoubleEndedIterator<Item = (NodeId, &TreeNode)> + ExactSizeIterator {
        self.nodes
            .iter()
            .enumerate()
            .map(|(index, node)| (NodeId(index), node))
    }

    /// The parent of a node, `None` for a root.
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        self.node(id).parent
    }

    /// The children of a node, ordered by start time.
    pub fn children(&self, id: NodeId) -> &[NodeId] {
        &self.node(id).children
    }

    /// The roots, ordered by start time: real root spans, placeholders, and spans whose
    /// parent link was cut to break a cycle.
    pub fn roots(&self) -> &[NodeId] {
        &self.roots
    }

    /// What assembly repaired.
    pub fn warnings(&self) -> &[TreeWarning] {
        &self.warnings
    }

    /// A node and everything below it, depth-first in child order, without recursion.
    pub fn descendants(&self, id: NodeId) -> Descendants<'_> {
        Descendants {
            tree: self,
            stack: vec![id],
        }
    }

    /// The nodes on a critical path, parents before children.
    pub fn critical_path(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes()
            .filter(|(_, node)| node.critical_path)
            .map(|(id, _)| id)
    }

    /// Earliest start of any root, Unix nanoseconds.
    pub fn start_unix_nano(&self) -> i64 {
        let starts = self
            .roots
            .iter()
            .map(|&root| self.node(root).start_unix_nano);
        starts.min().unwrap_or_default()
    }

    /// Latest end of any root, Unix nanoseconds.
    pub fn end_unix_nano(&self) -> i64 {
        let ends = self.roots.iter().map(|&root| self.node(root).end_unix_nano);
        ends.max().unwrap_or_default()
    }

    /// End-to-end latency: from the first root's start to the last root's end.
    pub fn duration_nanos(&self) -> i64 {
        self.end_unix_nano() - self.start_unix_nano()
    }

    /// The contract's JSON for `/api/v1/traces/{traceID}/tree`.
    ///
    /// `{"trace_id", "roots": [node...], "warnings": [...], "num_spans"}`, where a node is
    /// `{"span_id", "parent_span_id", "service", "workload", "version", "pod", "name",
    /// "kind", "start_unix_nano", "duration_ms", "self_ms", "critical_self_ms", "error",
    /// "critical_path", "children"}`, placeholders add `"placeholder": true`, and shifted
    /// nodes add `"clock_shift_ms"`.
    ///
    /// `parent_span_id` is the tree parent's id: for the SERVER half of a shared Zipkin
    /// id that is the CLIENT half, whose id is its own.
    ///
    /// A node at depth [`MAX_JSON_DEPTH`] lists its whole subtree, depth-first, as
    /// childless entries of its `children`; each keeps its `parent_span_id`, so a client
    /// can rebuild the nesting, and a `depth_cap` warning names the node.
    pub fn to_json(&self) -> Value {
        // Children come after their parent in `nodes`, so walking backwards builds every
        // child's value before its parent needs it.
        let mut built: Vec<Option<Value>> = Vec::new();
        built.resize_with(self.nodes.len(), || None);
        let mut cap_warnings = Vec::new();
        for (id, node) in self.nodes().rev() {
            if node.depth > MAX_JSON_DEPTH {
                continue;
            }
            let children: Vec<Value> = if node.depth == MAX_JSON_DEPTH && !node.children.is_empty()
            {
                let flat: Vec<Value> = self
                    .descendants(id)
                    .skip(1)
                    .map(|below| self.node_json(below, Vec::new()))
                    .collect();
                cap_warnings.push(depth_cap_warning(node.span_id, flat.len()));
                flat
            } else {
                node.children
                    .iter()
                    .map(|child| {
                        built[child.0]
                            .take()
                            .expect("children are built before parents")
                    })
                    .collect()
            };
            built[id.0] = Some(self.node_json(id, children));
        }

        let roots: Vec<Value> = self
            .roots
            .iter()
            .map(|root| built[root.0].take().expect("every root is at depth 0"))
            .collect();
        let warnings: Vec<Value> = self
            .warnings
            .iter()
            .chain(cap_warnings.iter().rev())
            .map(TreeWarning::to_json)
            .collect();
        let mut envelope = Map::with_capacity(4);
        envelope.insert("trace_id".into(), Value::String(hex::encode(self.trace_id)));
        envelope.insert("roots".into(), Value::Array(roots));
        envelope.insert("warnings".into(), Value::Array(warnings));
        envelope.insert("num_spans".into(), Value::from(self.num_spans));
        Value::Object(envelope)
    }

    /// One node's object. Built field by field: `json!` would serialize `children`
    /// through a reference, copying every subtree once per level above it.
    fn node_json(&self, id: NodeId, children: Vec<Value>) -> Value {
        let node = self.node(id);
        let hex_id = |span_id: [u8; 8]| Value::String(hex::encode(span_id));
        let text = |field: &Option<String>| field.clone().map_or(Value::Null, Value::String);
        let mut object = Map::with_capacity(18);
        object.insert("span_id".into(), hex_id(node.span_id));
        let parent_span_id = node.parent.map(|parent| hex_id(self.node(parent).span_id));
        object.insert(
            "parent_span_id".into(),
            parent_span_id.unwrap_or(Value::Null),
        );
        match &node.span {
            Some(span) => {
                let placement = &span.placement;
                object.insert("service".into(), Value::String(placement.service.clone()));
                object.insert("workload".into(), text(&placement.workload));
                object.insert("version".into(), text(&placement.version));
                object.insert("pod".into(), text(&placement.pod));
                object.insert("name".into(), Value::String(span.name.clone()));
                object.insert("kind".into(), Value::from(kind_name(span.kind)));
            }
            None => {
                for field in ["service", "workload", "version", "pod", "name", "kind"] {
                    object.insert(field.into(), Value::Null);
                }
                object.insert("placeholder".into(), Value::Bool(true));
            }
        }
        object.insert("start_unix_nano".into(), Value::from(node.start_unix_nano));
        object.insert(
            "duration_ms".into(),
            Value::from(nanos_to_ms(node.duration_nanos())),
        );
        object.insert("self_ms".into(), Value::from(nanos_to_ms(node.self_nanos)));
        let critical_self_ms = nanos_to_ms(node.critical_self_nanos);
        object.insert("critical_self_ms".into(), Value::from(critical_self_ms));
        object.insert("error".into(), Value::Bool(node.error()));
        object.insert("critical_path".into(), Value::Bool(node.critical_path));
        if node.clock_shift_nanos != 0 {
            let shift_ms = nanos_to_ms(node.clock_shift_nanos);
            object.insert("clock_shift_ms".into(), Value::from(shift_ms));
        }
        object.insert("children".into(), Value::Array(children));
        Value::Object(object)
    }

    /// Self time: the node's interval minus the union of its children's, clipped to it.
    fn compute_self_times(&mut self) {
        for index in 0..self.nodes.len() {
            let node = &self.nodes[index];
            let (start, end) = (node.start_unix_nano, node.end_unix_nano);
            let intervals = node.children.iter().map(|child| {
                let child = &self.nodes[child.0];
                (child.start_unix_nano, child.end_unix_nano)
            });
            let covered = covered_nanos(start, end, intervals);
            self.nodes[index].self_nanos = end - start - covered;
        }
    }

    /// Marks the critical path of every root and gives each node on it its share.
    ///
    /// Within a node's window on the path, the child finishing last is critical; the next
    /// critical child is the one finishing last before that child started, and so on. The
    /// gaps between critical children are the node's own share. Each critical child then
    /// gets the part of its interval inside the window as its own window.
    fn compute_critical_path(&mut self) {
        let mut stack: Vec<(usize, i64, i64)> = self
            .roots
            .iter()
            .map(|root| {
                let node = &self.nodes[root.0];
                (root.0, node.start_unix_nano, node.end_unix_nano)
            })
            .collect();
        let mut by_end: Vec<(i64, i64, usize)> = Vec::new();
        while let Some((index, low, high)) = stack.pop() {
            by_end.clear();
            by_end.extend(self.nodes[index].children.iter().map(|child| {
                let node = &self.nodes[child.0];
                (node.end_unix_nano, node.start_unix_nano, child.0)
            }));
            by_end.sort_unstable_by(|a, b| b.cmp(a));

            let mut cursor = high;
            let mut own_share = 0;
            for &(end, start, child) in &by_end {
                let (start, end) = (start.max(low), end.min(high));
                if end > cursor || end <= start {
                    continue;
                }
                if end <= low {
                    break;
                }
                own_share += cursor - end;
                stack.push((child, start, end));
                cursor = start;
                if cursor <= low {
                    break;
                }
            }
            own_share += (cursor - low).max(0);

            let node = &mut self.nodes[index];
            node.critical_path = true;
            node.critical_self_nanos = own_share;
        }
    }
}

/// Depth-first walk below a node, from [`CallTree::descendants`].
#[derive(Debug)]
pub struct Descendants<'a> {
    tree: &'a CallTree,
    stack: Vec<NodeId>,
}

impl Iterator for Descendants<'_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        let id = self.stack.pop()?;
        self.stack.extend(self.tree.children(id).iter().rev());
        Some(id)
    }
}

/// The fields that make two spans identical copies (the trace id is already shared).
type SpanIdentity<'a> = (
    &'a Option<[u8; 8]>,
    &'a str,
    SpanKind,
    i64,
    i64,
    bool,
    &'a Placement,
    &'a Option<String>,
);

fn identity(span: &SpanView) -> SpanIdentity<'_> {
    (
        &span.parent_span_id,
        &span.name,
        span.kind,
        span.start_unix_nano,
        span.end_unix_nano,
        span.error,
        &span.placement,
        &span.peer,
    )
}

/// `(span id, arrival index)` pairs sorted by id, so that spans sharing an id sit side
/// by side; sorting instead of hashing keeps assembly deterministic.
fn sorted_by_id(spans: &[SpanView]) -> Vec<(u64, usize)> {
    let mut by_id: Vec<(u64, usize)> = spans
        .iter()
        .enumerate()
        .map(|(index, span)| (u64::from_be_bytes(span.span_id), index))
        .collect();
    by_id.sort_unstable();
    by_id
}

/// Drops spans that arrived again with identical content (exporter retries), keeping the
/// first arrival. Only spans sharing an id can be copies, so only those are compared.
/// Returns whether anything was dropped.
fn drop_exact_copies(
    spans: &mut Vec<SpanView>,
    by_id: &[(u64, usize)],
    warnings: &mut Vec<TreeWarning>,
) -> bool {
    let mut copies: Vec<usize> = Vec::new();
    for run in by_id
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
    {
        let mut seen: HashSet<SpanIdentity<'_>> = HashSet::with_capacity(run.len());
        for &(_, index) in run {
            if !seen.insert(identity(&spans[index])) {
                copies.push(index);
            }
        }
    }
    if copies.is_empty() {
        return false;
    }

    copies.sort_unstable();
    let mut keep = vec![true; spans.len()];
    for &index in &copies {
        keep[index] = false;
        let span_id = spans[index].span_id;
        let message = format!(
            "span {} arrived more than once with identical content; the copy was dropped",
            hex::encode(span_id)
        );
        warnings.push(TreeWarning::new(
            WarningKind::DuplicateSpanId,
            span_id,
            message,
        ));
    }
    let mut position = 0;
    spans.retain(|_| {
        position += 1;
        keep[position - 1]
    });
    true
}

/// Which span answers when a child names a span id as its parent.
#[derive(Clone, Copy)]
struct IdOwner {
    /// The span that takes children: the SERVER of a shared pair, else the first to arrive.
    primary: usize,
    /// The CLIENT of a shared pair, which takes the children that ran on its own clock.
    client: Option<usize>,
}

/// The tree under construction, indexed by arrival: spans first, then placeholders.
struct Draft {
    spans: Vec<SpanView>,
    /// Placeholder `k` has index `spans.len() + k` and stands for this missing span id.
    placeholder_ids: Vec<[u8; 8]>,
    parent: Vec<Option<usize>>,
    start: Vec<i64>,
    end: Vec<i64>,
    shift: Vec<i64>,
}

impl Draft {
    /// Resolves every span's parent, creating one placeholder per missing parent id.
    fn link(
        spans: Vec<SpanView>,
        owners: &[(u64, IdOwner)],
        warnings: &mut Vec<TreeWarning>,
    ) -> Self {
        let mut forced_parent: Vec<Option<usize>> = vec![None; spans.len()];
        for (_, owner) in owners {
            if let Some(client) = owner.client {
                forced_parent[owner.primary] = Some(client);
            }
        }

        let mut placeholder_of: HashMap<[u8; 8], usize> = HashMap::new();
        let mut placeholder_ids = Vec::new();
        let mut orphans_per_placeholder: Vec<usize> = Vec::new();
        let mut parent = Vec::with_capacity(spans.len());
        for (index, span) in spans.iter().enumerate() {
            if let Some(client) = forced_parent[index] {
                parent.push(Some(client));
                continue;
            }
            let Some(parent_id) = span.parent_span_id else {
                parent.push(None);
                continue;
            };
            if let Some(owner) = find_owner(owners, parent_id) {
                parent.push(Some(owner.adopter(span, &spans)));
                continue;
            }
            let slot = *placeholder_of.entry(parent_id).or_insert_with(|| {
                placeholder_ids.push(parent_id);
                orphans_per_placeholder.push(0);
                placeholder_ids.len() - 1
            });
            orphans_per_placeholder[slot] += 1;
            parent.push(Some(spans.len() + slot));
        }

        for (missing, count) in placeholder_ids.iter().zip(&orphans_per_placeholder) {
            let message = format!(
                "parent span {} never arrived; {count} span(s) attached under a placeholder",
                hex::encode(missing)
            );
            warnings.push(TreeWarning::new(WarningKind::Orphan, *missing, message));
        }
        parent.resize(spans.len() + placeholder_ids.len(), None);

        let start: Vec<i64> = spans.iter().map(|span| span.start_unix_nano).collect();
        let end: Vec<i64> = spans
            .iter()
            .map(|span| span.start_unix_nano + span.duration_nanos())
            .collect();
        let num_nodes = parent.len();
        Draft {
            spans,
            placeholder_ids,
            parent,
            start,
            end,
            shift: vec![0; num_nodes],
        }
    }

    fn num_nodes(&self) -> usize {
        self.parent.len()
    }

    fn span_id(&self, index: usize) -> [u8; 8] {
        match self.spans.get(index) {
            Some(span) => span.span_id,
            None => self.placeholder_ids[index - self.spans.len()],
        }
    }

    /// Follows parent links from every node once; a walk that meets itself found a loop,
    /// which is cut at its earliest-starting span (the likeliest real caller).
    fn cut_cycles(&mut self, warnings: &mut Vec<TreeWarning>) {
        const UNSEEN: usize = usize::MAX;
        let mut walk_of = vec![UNSEEN; self.num_nodes()];
        let mut path = Vec::new();
        for first in 0..self.num_nodes() {
            if walk_of[first] != UNSEEN {
                continue;
            }
            path.clear();
            let mut current = first;
            loop {
                if walk_of[current] == first {
                    let at = path.iter().position(|&index| index == current).unwrap_or(0);
                    let cut = path[at..]
                        .iter()
                        .copied()
                        .min_by_key(|&index: &usize| (self.spans[index].start_unix_nano, index))
                        .unwrap_or(current);
                    let message = format!(
                        "parent links of {} span(s) form a loop; span {} was made a root",
                        path.len() - at,
                        hex::encode(self.span_id(cut))
                    );
                    warnings.push(TreeWarning::new(
                        WarningKind::Cycle,
                        self.span_id(cut),
                        message,
                    ));
                    self.parent[cut] = None;
                    break;
                }
                if walk_of[current] != UNSEEN {
                    break;
                }
                walk_of[current] = first;
                path.push(current);
                match self.parent[current] {
                    Some(parent) => current = parent,
                    None => break,
                }
            }
        }
    }

    /// Child lists in arrival order.
    fn children(&self) -> Vec<Vec<usize>> {
        let mut children = vec![Vec::new(); self.num_nodes()];
        for (index, parent) in self.parent.iter().enumerate() {
            if let Some(parent) = parent {
                children[*parent].push(index);
            }
        }
        children
    }

    fn roots(&self) -> Vec<usize> {
        (0..self.num_nodes())
            .filter(|&index| self.parent[index].is_none())
            .collect()
    }

    /// Moves every child that sticks out of its parent and runs on another clock into
    /// the parent, together with its whole subtree.
    ///
    /// Parents are visited before children, so a subtree inherits its parent's shift
    /// first and is then checked against the parent's corrected interval. Children of
    /// placeholders are left alone: a placeholder has no clock.
    fn correct_clock_skew(&mut self, children: &[Vec<usize>], warnings: &mut Vec<TreeWarning>) {
        let order = breadth_first(&self.roots(), children);
        for index in order {
            let Some(parent) = self.parent[index] else {
                continue;
            };
            if parent >= self.spans.len() {
                continue;
            }
            self.shift[index] = self.shift[parent];
            let (child_span, parent_span) = (&self.spans[index], &self.spans[parent]);
            if child_span.clock_domain() == parent_span.clock_domain() {
                continue;
            }
            let child_interval = (
                self.start[index] + self.shift[index],
                self.end[index] + self.shift[index],
            );
            let parent_interval = (
                self.start[parent] + self.shift[parent],
                self.end[parent] + self.shift[parent],
            );
            let asynchronous =
                parent_span.kind == SpanKind::Producer || child_span.kind == SpanKind::Consumer;
            let Some(delta) = skew_delta(child_interval, parent_interval, asynchronous) else {
                continue;
            };
            self.shift[index] += delta;
            let message = format!(
                "span {} shifted by {:+.3} ms into its parent {}: the clocks of {} and {} disagree",
                hex::encode(child_span.span_id),
                nanos_to_ms(delta),
                hex::encode(parent_span.span_id),
                child_span.clock_domain(),
                parent_span.clock_domain()
            );
            let mut warning = TreeWarning::new(WarningKind::ClockSkew, child_span.span_id, message);
            warning.delta_nanos = Some(delta);
            warnings.push(warning);
        }
        for index in 0..self.spans.len() {
            self.start[index] += self.shift[index];
            self.end[index] += self.shift[index];
        }
    }

    /// A placeholder spans its children, which are never shifted (see above).
    fn span_placeholders(&mut self, children: &[Vec<usize>]) {
        for slot in 0..self.placeholder_ids.len() {
            let index = self.spans.len() + slot;
            let kids = &children[index];
            let start = kids
                .iter()
                .map(|&kid| self.start[kid])
                .min()
                .unwrap_or_default();
            let end = kids
                .iter()
                .map(|&kid| self.end[kid])
                .max()
                .unwrap_or_default();
            self.start.push(start);
            self.end.push(end);
        }
    }

    /// Sorts siblings by start and renumbers the nodes breadth-first.
    fn into_tree(
        self,
        trace_id: [u8; 16],
        mut children: Vec<Vec<usize>>,
        warnings: Vec<TreeWarning>,
    ) -> CallTree {
        let keys: Vec<(i64, [u8; 8])> = (0..self.num_nodes())
            .map(|index| (self.start[index], self.span_id(index)))
            .collect();
        let sort_key = |index: &usize| (keys[*index], *index);
        for kids in &mut children {
            kids.sort_unstable_by_key(sort_key);
        }
        let mut roots = self.roots();
        roots.sort_unstable_by_key(sort_key);
        let order = breadth_first(&roots, &children);
        debug_assert_eq!(
            order.len(),
            self.num_nodes(),
            "cycles are cut, so all nodes are reachable"
        );

        let mut new_index = vec![0; self.num_nodes()];
        for (position, &old) in order.iter().enumerate() {
            new_index[old] = position;
        }
        let num_spans = self.spans.len();
        let mut spans: Vec<Option<SpanView>> = self.spans.into_iter().map(Some).collect();
        let mut nodes: Vec<TreeNode> = Vec::with_capacity(order.len());
        for &old in &order {
            let parent = self.parent[old].map(|parent| new_index[parent]);
            let depth = parent.map_or(0, |parent| nodes[parent].depth + 1);
            let span_id = match spans.get(old) {
                Some(Some(span)) => span.span_id,
                _ => self.placeholder_ids[old - num_spans],
            };
            nodes.push(TreeNode {
                span_id,
                span: spans.get_mut(old).and_then(Option::take),
                parent: parent.map(NodeId),
                children: children[old]
                    .iter()
                    .map(|&kid| NodeId(new_index[kid]))
                    .collect(),
                depth,
                start_unix_nano: self.start[old],
                end_unix_nano: self.end[old],
                clock_shift_nanos: self.shift[old],
                self_nanos: 0,
                critical_path: false,
                critical_self_nanos: 0,
            });
        }
        CallTree {
            trace_id,
            nodes,
            roots: roots.iter().map(|&root| NodeId(new_index[root])).collect(),
            warnings,
            num_spans,
        }
    }
}

impl IdOwner {
    /// The span that adopts `child`: the client of a shared pair when the child ran on
    /// the client's clock and not the server's, else the primary.
    fn adopter(self, child: &SpanView, spans: &[SpanView]) -> usize {
        let Some(client) = self.client else {
            return self.primary;
        };
        let domain = child.clock_domain();
        let on_client = spans[client].clock_domain() == domain;
        let on_server = spans[self.primary].clock_domain() == domain;
        if on_client && !on_server {
            client
        } else {
            self.primary
        }
    }
}

/// Who owns each span id, sorted by id: pairs Zipkin-style shared client/server ids
/// and warns about any other sharing.
fn own_span_ids(
    spans: &[SpanView],
    by_id: &[(u64, usize)],
    warnings: &mut Vec<TreeWarning>,
) -> Vec<(u64, IdOwner)> {
    let mut owners = Vec::with_capacity(by_id.len());
    for run in by_id.chunk_by(|a, b| a.0 == b.0) {
        let (span_id, first) = run[0];
        let mut owner = IdOwner {
            primary: first,
            client: None,
        };
        if run.len() > 1 {
            let mut group = run.iter().map(|&(_, index)| index);
            let client = group.clone().find(|&index| spans[index].kind.is_caller());
            let server = group.find(|&index| spans[index].kind.is_callee());
            if let (Some(client), Some(server)) = (client, server) {
                owner = IdOwner {
                    primary: server,
                    client: Some(client),
                };
            }
            let num_paired = if owner.client.is_some() { 2 } else { 1 };
            if run.len() > num_paired {
                let span_id = span_id.to_be_bytes();
                let message = format!(
                    "span id {} is used by {} spans that are not one client/server pair; \
                     children attach to the first, the others stay beside it",
                    hex::encode(span_id),
                    run.len()
                );
                warnings.push(TreeWarning::new(
                    WarningKind::DuplicateSpanId,
                    span_id,
                    message,
                ));
            }
        }
        owners.push((span_id, owner));
    }
    owners
}

fn find_owner(owners: &[(u64, IdOwner)], span_id: [u8; 8]) -> Option<IdOwner> {
    let key = u64::from_be_bytes(span_id);
    let position = owners.binary_search_by_key(&key, |&(id, _)| id).ok()?;
    Some(owners[position].1)
}

/// Breadth-first order from the roots over child lists.
fn breadth_first(roots: &[usize], children: &[Vec<usize>]) -> Vec<usize> {
    let mut order = Vec::with_capacity(children.len());
    order.extend_from_slice(roots);
    let mut next = 0;
    while next < order.len() {
        let index = order[next];
        order.extend_from_slice(&children[index]);
        next += 1;
    }
    order
}

/// How far to move a child interval so that it sits inside its parent's, or `None` when
/// it already does.
///
/// A child longer than its parent is centred on it. For asynchronous calls (a PRODUCER
/// parent or a CONSUMER child) only a start before the parent's is wrong: a consumer
/// may well finish after the producer did.
fn skew_delta(child: (i64, i64), parent: (i64, i64), asynchronous: bool) -> Option<i64> {
    let ((start, end), (parent_start, parent_end)) = (child, parent);
    let delta = if asynchronous {
        (parent_start - start).max(0)
    } else if start >= parent_start && end <= parent_end {
        0
    } else if end - start > parent_end - parent_start {
        let overhang = (end - start) - (parent_end - parent_start);
        parent_start - overhang / 2 - start
    } else if start < parent_start {
        parent_start - start
    } else {
        parent_end - end
    };
    (delta != 0).then_some(delta)
}

/// Length of the union of `intervals` (sorted by start) clipped to `[start, end]`.
fn covered_nanos(start: i64, end: i64, intervals: impl Iterator<Item = (i64, i64)>) -> i64 {
    let mut covered = 0;
    let mut run: Option<(i64, i64)> = None;
    for (from, to) in intervals {
        let (from, to) = (from.max(start), to.min(end));
        if to <= from {
            continue;
        }
        run = match run {
            Some((run_from, run_to)) if from <= run_to => Some((run_from, run_to.max(to))),
            Some((run_from, run_to)) => {
                covered += run_to - run_from;
                Some((from, to))
            }
            None => Some((from, to)),
        };
    }
    if let Some((run_from, run_to)) = run {
        covered += run_to - run_from;
    }
    covered
}

fn depth_cap_warning(span_id: [u8; 8], num_flattened: usize) -> TreeWarning {
    let message = format!(
        "span {} is at depth {MAX_JSON_DEPTH}; its {num_flattened} descendant(s) are listed \
         flat in its children, each with its parent_span_id",
        hex::encode(span_id)
    );
    TreeWarning::new(WarningKind::DepthCap, span_id, message)
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn nanos_to_ms(nanos: i64) -> f64 {
    nanos as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rand::rngs::SmallRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    use super::*;

    const TRACE: [u8; 16] = [7; 16];
    const MS: i64 = 1_000_000;
    const EPOCH: i64 = 1_700_000_000_000_000_000;

    fn id(number: u64) -> [u8; 8] {
        number.to_be_bytes()
    }

    /// An INTERNAL span on `pod-a` of service `svc`, times in ms after `EPOCH`.
    fn span(span_id: u64, parent: Option<u64>, start_ms: i64, end_ms: i64) -> SpanView {
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

    fn on(mut span: SpanView, pod: &str, kind: SpanKind) -> SpanView {
        span.placement.pod = Some(pod.into());
        span.kind = kind;
        span
    }

    /// The non-placeholder node with this span id and kind.
    fn find(tree: &CallTree, span_id: u64, kind: SpanKind) -> NodeId {
        let found = tree.nodes().find(|(_, node)| {
            node.span()
                .is_some_and(|span| span.span_id == id(span_id) && span.kind == kind)
        });
        found
            .map(|(node_id, _)| node_id)
            .expect("span is in the tree")
    }

    fn ids(tree: &CallTree, nodes: &[NodeId]) -> Vec<[u8; 8]> {
        nodes
            .iter()
            .map(|&node| tree.node(node).span_id())
            .collect()
    }

    fn kinds(tree: &CallTree) -> Vec<WarningKind> {
        tree.warnings().iter().map(|warning| warning.kind).collect()
    }

    #[test]
    fn links_children_and_keeps_several_roots() {
        let spans = vec![
            span(3, Some(1), 50, 90),
            span(4, None, 200, 210),
            span(2, Some(1), 10, 40),
            span(1, None, 0, 100),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        assert_eq!(ids(&tree, tree.roots()), vec![id(1), id(4)]);
        let root = tree.roots()[0];
        assert_eq!(ids(&tree, tree.children(root)), vec![id(2), id(3)]);
        assert_eq!(tree.parent(tree.children(root)[0]), Some(root));
        assert!(tree.warnings().is_empty());
        assert_eq!((tree.num_spans(), tree.num_nodes()), (4, 4));
        assert_eq!(tree.duration_nanos(), 210 * MS);
        for (node_id, node) in tree.nodes() {
            assert!(node.parent().is_none_or(|parent| parent < node_id));
        }
    }

    #[test]
    fn orphans_share_one_placeholder_per_missing_parent() {
        let spans = vec![
            span(1, None, 0, 100),
            span(2, Some(99), 10, 20),
            span(3, Some(99), 30, 60),
            span(4, Some(98), 70, 80),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        assert_eq!((tree.num_spans(), tree.num_nodes()), (4, 6));
        assert_eq!(ids(&tree, tree.roots()), vec![id(1), id(99), id(98)]);
        let placeholder = tree.node(tree.roots()[1]);
        assert!(placeholder.is_placeholder());
        assert_eq!(ids(&tree, placeholder.children()), vec![id(2), id(3)]);
        assert_eq!(placeholder.start_unix_nano(), EPOCH + 10 * MS);
        assert_eq!(placeholder.end_unix_nano(), EPOCH + 60 * MS);
        assert_eq!(kinds(&tree), vec![WarningKind::Orphan, WarningKind::Orphan]);
        assert_eq!(tree.warnings()[0].span_id, id(99));
    }

    #[test]
    fn shared_client_server_id_nests_server_under_client() {
        let spans = vec![
            on(span(3, Some(2), 30, 40), "pod-b", SpanKind::Internal),
            on(span(2, Some(1), 20, 80), "pod-b", SpanKind::Server),
            on(span(1, None, 0, 100), "pod-a", SpanKind::Server),
            on(span(2, Some(1), 10, 90), "pod-a", SpanKind::Client),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        let client = find(&tree, 2, SpanKind::Client);
        let server = find(&tree, 2, SpanKind::Server);
        assert_eq!(tree.parent(client), Some(find(&tree, 1, SpanKind::Server)));
        assert_eq!(tree.parent(server), Some(client));
        assert_eq!(
            tree.parent(find(&tree, 3, SpanKind::Internal)),
            Some(server)
        );
        assert!(tree.warnings().is_empty(), "{:?}", tree.warnings());
    }

    #[test]
    fn other_duplicates_are_reported_and_identical_copies_dropped() {
        let mut variant = span(2, Some(1), 15, 25);
        variant.name = "other".into();
        let spans = vec![
            span(1, None, 0, 100),
            span(2, Some(1), 10, 40),
            span(2, Some(1), 10, 40),
            variant,
            span(4, Some(2), 20, 30),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        assert_eq!(tree.num_spans(), 4);
        assert_eq!(kinds(&tree), vec![WarningKind::DuplicateSpanId; 2]);
        let root = tree.roots()[0];
        assert_eq!(ids(&tree, tree.children(root)), vec![id(2), id(2)]);
        let first = tree.children(root)[0];
        assert_eq!(tree.node(first).span().unwrap().name, "op2");
        assert_eq!(ids(&tree, tree.children(first)), vec![id(4)]);
    }

    #[test]
    fn parent_loops_are_cut_without_hanging() {
        let spans = vec![
            span(1, Some(3), 0, 100),
            span(2, Some(1), 10, 90),
            span(3, Some(2), 20, 80),
            span(4, Some(4), 5, 6),
            span(5, Some(1), 30, 40),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        assert_eq!(ids(&tree, tree.roots()), vec![id(1), id(4)]);
        assert_eq!(kinds(&tree), vec![WarningKind::Cycle; 2]);
        let root = tree.roots()[0];
        assert_eq!(ids(&tree, tree.children(root)), vec![id(2), id(5)]);
        assert_eq!(tree.descendants(root).count(), 4);
    }

    #[test]
    fn skewed_child_moves_with_its_subtree() {
        let spans = vec![
            on(span(1, None, 0, 100), "pod-a", SpanKind::Server),
            on(span(2, Some(1), 10, 90), "pod-a", SpanKind::Client),
            on(span(3, Some(2), -20, 40), "pod-b", SpanKind::Server),
            on(span(4, Some(3), -10, 0), "pod-b", SpanKind::Internal),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        let server = tree.node(find(&tree, 3, SpanKind::Server));
        assert_eq!(server.start_unix_nano(), EPOCH + 10 * MS);
        assert_eq!(server.end_unix_nano(), EPOCH + 70 * MS);
        let inner = tree.node(find(&tree, 4, SpanKind::Internal));
        assert_eq!(inner.start_unix_nano(), EPOCH + 20 * MS);
        assert_eq!(inner.clock_shift_nanos(), 30 * MS);
        assert_eq!(kinds(&tree), vec![WarningKind::ClockSkew]);
        assert_eq!(tree.warnings()[0].span_id, id(3));
        assert_eq!(tree.warnings()[0].delta_nanos, Some(30 * MS));
    }

    #[test]
    fn child_ending_late_on_another_clock_moves_back() {
        let spans = vec![
            on(span(1, None, 0, 100), "pod-a", SpanKind::Client),
            on(span(2, Some(1), 80, 130), "pod-b", SpanKind::Server),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        let server = tree.node(find(&tree, 2, SpanKind::Server));
        assert_eq!(server.clock_shift_nanos(), -30 * MS);
        assert_eq!(server.end_unix_nano(), EPOCH + 100 * MS);
    }

    #[test]
    fn same_clock_overhang_is_not_shifted() {
        let spans = vec![span(1, None, 0, 100), span(2, Some(1), 50, 150)];
        let tree = CallTree::assemble(spans).unwrap();

        assert!(tree.warnings().is_empty());
        let child = tree.node(find(&tree, 2, SpanKind::Internal));
        assert_eq!(child.end_unix_nano(), EPOCH + 150 * MS);
        assert_eq!(tree.node(tree.roots()[0]).self_nanos(), 50 * MS);
    }

    #[test]
    fn consumer_may_finish_after_producer_but_not_start_before_it() {
        let late = vec![
            on(span(1, None, 0, 10), "pod-a", SpanKind::Producer),
            on(span(2, Some(1), 20, 50), "pod-b", SpanKind::Consumer),
        ];
        assert!(CallTree::assemble(late).unwrap().warnings().is_empty());

        let early = vec![
            on(span(1, None, 0, 10), "pod-a", SpanKind::Producer),
            on(span(2, Some(1), -5, 30), "pod-b", SpanKind::Consumer),
        ];
        let tree = CallTree::assemble(early).unwrap();
        assert_eq!(tree.warnings()[0].delta_nanos, Some(5 * MS));
    }

    #[test]
    fn longer_child_on_another_clock_is_centred_on_its_parent() {
        let spans = vec![
            on(span(1, None, 0, 10), "pod-a", SpanKind::Client),
            on(span(2, Some(1), 100, 130), "pod-b", SpanKind::Server),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        let server = tree.node(find(&tree, 2, SpanKind::Server));
        assert_eq!(server.start_unix_nano(), EPOCH - 10 * MS);
        assert_eq!(tree.warnings()[0].delta_nanos, Some(-110 * MS));
    }

    #[test]
    fn self_time_subtracts_the_union_of_children() {
        let spans = vec![
            span(1, None, 0, 100),
            span(2, Some(1), 10, 30),
            span(3, Some(1), 20, 40),
            span(4, Some(1), 60, 70),
            span(5, Some(1), 90, 120),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        assert_eq!(tree.node(tree.roots()[0]).self_nanos(), 50 * MS);
        assert_eq!(
            tree.node(find(&tree, 2, SpanKind::Internal)).self_nanos(),
            20 * MS
        );
    }

    #[test]
    fn critical_path_walks_back_from_the_last_finisher() {
        let spans = vec![
            span(1, None, 0, 100),
            span(2, Some(1), 5, 60),
            span(3, Some(1), 10, 40),
            span(4, Some(1), 65, 95),
            span(5, Some(1), 70, 80),
            span(6, Some(2), 20, 50),
        ];
        let tree = CallTree::assemble(spans).unwrap();

        let on_path: Vec<[u8; 8]> = tree
            .critical_path()
            .map(|n| tree.node(n).span_id())
            .collect();
        assert_eq!(on_path, vec![id(1), id(2), id(4), id(6)]);
        let share = |span_id| {
            tree.node(find(&tree, span_id, SpanKind::Internal))
                .critical_self_nanos()
        };
        assert_eq!(
            [share(1), share(2), share(3), share(4), share(5), share(6)],
            [15 * MS, 25 * MS, 0, 30 * MS, 0, 30 * MS]
        );
    }

    /// Random forests, shuffled, with children that may overhang their parents on the
    /// same clock, on another clock, or with their parent missing.
    fn random_trace(rng: &mut SmallRng, num_spans: u64) -> Vec<SpanView> {
        let mut spans: Vec<SpanView> = Vec::new();
        for span_id in 1..=num_spans {
            let parent =
                (span_id > 1 && rng.random_bool(0.9)).then(|| rng.random_range(1..span_id));
            let (start, end) = match parent {
                Some(parent) => {
                    let parent = &spans[parent as usize - 1];
                    let (from, to) = (
                        (parent.start_unix_nano - EPOCH) / MS,
                        (parent.end_unix_nano - EPOCH) / MS,
                    );
                    let start = rng.random_range(from - 5..=to);
                    (start, start + rng.random_range(0..=(to - from + 10)))
                }
                None => {
                    let start = rng.random_range(0..1000);
                    (start, start + rng.random_range(0..500))
                }
            };
            let pod = if rng.random_bool(0.3) {
                "pod-b"
            } else {
                "pod-a"
            };
            spans.push(on(
                span(span_id, parent, start, end),
                pod,
                SpanKind::Internal,
            ));
        }
        let hidden = rng.random_range(1..=num_spans);
        spans.retain(|span| span.span_id != id(hidden) || rng.random_bool(0.5));
        spans.shuffle(rng);
        spans
    }

    #[test]
    fn random_traces_keep_every_span_and_balance_the_critical_path() {
        let mut rng = SmallRng::seed_from_u64(0x7ace);
        for _ in 0..300 {
            let num_spans = rng.random_range(1..60);
            let spans = random_trace(&mut rng, num_spans);
            if spans.is_empty() {
                continue;
            }
            let expected = spans.len();
            let tree = CallTree::assemble(spans).unwrap();

            assert_eq!(tree.num_spans(), expected);
            let reached: usize = tree
                .roots()
                .iter()
                .map(|&root| tree.descendants(root).count())
                .sum();
            assert_eq!(reached, tree.num_nodes());
            for (node_id, node) in tree.nodes() {
                assert!(node.parent().is_none_or(|parent| parent < node_id));
                assert!((0..=node.duration_nanos()).contains(&node.self_nanos()));
                assert!(node.critical_path() || node.critical_self_nanos() == 0);
                let (Some(parent), Some(span)) = (node.parent(), node.span()) else {
                    continue;
                };
                let parent = tree.node(parent);
                let Some(parent_span) = parent.span() else {
                    continue;
                };
                if span.clock_domain() != parent_span.clock_domain()
                    && node.duration_nanos() <= parent.duration_nanos()
                {
                    assert!(node.start_unix_nano() >= parent.start_unix_nano());
                    assert!(node.end_unix_nano() <= parent.end_unix_nano());
                }
            }
            let json = tree.to_json();
            let mut pending: Vec<&Value> = json["roots"].as_array().unwrap().iter().collect();
            let mut num_json_nodes = 0;
            while let Some(node) = pending.pop() {
                num_json_nodes += 1;
                pending.extend(node["children"].as_array().unwrap());
            }
            assert_eq!(num_json_nodes, tree.num_nodes());
            for &root in tree.roots() {
                let on_path: i64 = tree
                    .descendants(root)
                    .map(|node| tree.node(node).critical_self_nanos())
                    .sum();
                assert_eq!(on_path, tree.node(root).duration_nanos());
            }
        }
    }

    #[test]
    fn json_follows_the_contract_shape() {
        let spans = vec![
            on(span(1, None, 0, 100), "pod-a", SpanKind::Server),
            on(span(2, Some(1), -20, 40), "pod-b", SpanKind::Server),
            span(3, Some(42), 10, 20),
        ];
        let tree = CallTree::assemble(spans).unwrap();
        let json = tree.to_json();

        assert_eq!(json["trace_id"], hex::encode(TRACE));
        assert_eq!(json["num_spans"], 3);
        let root = &json["roots"][0];
        for field in [
            "span_id",
            "parent_span_id",
            "service",
            "workload",
            "version",
            "pod",
            "name",
            "kind",
            "start_unix_nano",
            "duration_ms",
            "self_ms",
            "error",
            "critical_path",
            "children",
        ] {
            assert!(root.get(field).is_some(), "node lacks {field}");
        }
        assert_eq!(root["span_id"], hex::encode(id(1)));
        assert_eq!(root["kind"], "server");
        assert_eq!(root["duration_ms"], 100.0);
        assert_eq!(root["self_ms"], 40.0);
        assert_eq!(root["critical_path"], true);
        let child = &root["children"][0];
        assert_eq!(child["parent_span_id"], hex::encode(id(1)));
        assert_eq!(child["clock_shift_ms"], 20.0);
        let placeholder = &json["roots"][1];
        assert_eq!(placeholder["placeholder"], true);
        assert_eq!(placeholder["span_id"], hex::encode(id(42)));
        let warning_kinds: Vec<&str> = json["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["kind"].as_str().unwrap())
            .collect();
        assert_eq!(warning_kinds, vec!["orphan", "clock_skew"]);
        assert_eq!(json["warnings"][1]["delta_ms"], 20.0);
    }

    #[test]
    fn wide_trace_of_100k_spans_assembles_quickly() {
        let num_spans: u64 = 100_000;
        let mut spans = vec![span(1, None, 0, 1_000_000)];
        for span_id in 2..=num_spans {
            let start = (span_id as i64 * 7919) % 900_000;
            let pod = if span_id % 2 == 0 { "pod-a" } else { "pod-b" };
            spans.push(on(
                span(span_id, Some(1), start, start + 50),
                pod,
                SpanKind::Internal,
            ));
        }
        spans.reverse();

        let started = Instant::now();
        let tree = CallTree::assemble(spans).unwrap();
        let assembled = started.elapsed();
        let json = tree.to_json();
        let rendered = started.elapsed() - assembled;
        println!("wide 100k: assemble {assembled:?}, to_json {rendered:?}");

        assert!(assembled.as_secs_f64() < 1.0, "assembly took {assembled:?}");
        assert_eq!(tree.children(tree.roots()[0]).len(), num_spans as usize - 1);
        assert_eq!(
            json["roots"][0]["children"].as_array().unwrap().len(),
            num_spans as usize - 1
        );
        let starts: Vec<i64> = tree
            .children(tree.roots()[0])
            .iter()
            .map(|&c| tree.node(c).start_unix_nano())
            .collect();
        assert!(starts.is_sorted());
    }

    #[test]
    fn deep_chain_of_100k_spans_assembles_renders_and_drops() {
        let num_spans: i64 = 100_000;
        let mut spans: Vec<SpanView> = (0..num_spans)
            .map(|depth| {
                let parent = (depth > 0).then_some(depth as u64);
                let (start, end) = (depth, 2 * num_spans - depth);
                let pod = if depth % 2 == 0 { "pod-a" } else { "pod-b" };
                let mut chain_span = on(
                    span(depth as u64 + 1, parent, 0, 0),
                    pod,
                    SpanKind::Internal,
                );
                chain_span.start_unix_nano = EPOCH + start * 10;
                chain_span.end_unix_nano = EPOCH + end * 10;
                chain_span
            })
            .collect();
        spans.reverse();

        let started = Instant::now();
        let tree = CallTree::assemble(spans).unwrap();
        let assembled = started.elapsed();
        let json = tree.to_json();
        let text = serde_json::to_string(&json).unwrap();
        let rendered = started.elapsed() - assembled;
        println!("deep 100k: assemble {assembled:?}, to_json + to_string {rendered:?}");

        assert!(assembled.as_secs_f64() < 1.0, "assembly took {assembled:?}");
        assert!(tree.warnings().is_empty());
        assert_eq!(
            tree.nodes().last().unwrap().1.depth(),
            num_spans as usize - 1
        );
        assert_eq!(tree.critical_path().count(), num_spans as usize);
        let parsed: Value =
            serde_json::from_str(&text).expect("capped JSON parses with serde_json");
        let mut capped = &parsed["roots"][0];
        for _ in 0..MAX_JSON_DEPTH {
            capped = &capped["children"][0];
        }
        let flat = capped["children"].as_array().unwrap();
        assert_eq!(flat.len(), num_spans as usize - 1 - MAX_JSON_DEPTH);
        assert_eq!(flat[1]["parent_span_id"], flat[0]["span_id"]);
        assert_eq!(parsed["warnings"][0]["kind"], "depth_cap");
        drop((parsed, json, tree));
    }

    #[test]
    fn refuses_empty_and_mixed_input() {
        assert_eq!(
            CallTree::assemble(Vec::new()).unwrap_err(),
            TreeError::NoSpans
        );
        let mut stray = span(2, Some(1), 0, 1);
        stray.trace_id = [9; 16];
        let error = CallTree::assemble(vec![span(1, None, 0, 1), stray]).unwrap_err();
        assert!(matches!(error, TreeError::MixedTraces { .. }), "{error}");
    }
}
