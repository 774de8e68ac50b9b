//! The call trees of one trace and how to read them.

use super::{NodeId, TreeNode, TreeWarning};

/// The call trees of one trace, with the warnings of their assembly.
///
/// Nodes are numbered breadth-first from the roots, so iterating [`CallTree::nodes`]
/// visits every parent before its children, and iterating it backwards visits children
/// first.
#[derive(Debug, Clone)]
pub struct CallTree {
    pub(super) trace_id: [u8; 16],
    pub(super) nodes: Vec<TreeNode>,
    pub(super) roots: Vec<NodeId>,
    pub(super) warnings: Vec<TreeWarning>,
    pub(super) num_spans: usize,
}

impl CallTree {
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
