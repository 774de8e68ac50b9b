//! Assembly: the spans of one trace, linked to their parents, repaired and renumbered
//! breadth-first.

use std::collections::HashMap;

use super::span_ids::{IdOwner, drop_exact_copies, find_owner, own_span_ids, sorted_by_id};
use super::{CallTree, NodeId, TreeError, TreeNode, TreeWarning, WarningKind};
use crate::span_view::SpanView;

impl CallTree {
    /// Assembles the spans of one trace, in any order.
    ///
    /// Never loops on cycles, never recurses: see the [module documentation](crate::tree)
    /// for what is repaired and how.
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
}

/// The tree under construction, indexed by arrival: spans first, then placeholders.
pub(super) struct Draft {
    pub(super) spans: Vec<SpanView>,
    /// Placeholder `k` has index `spans.len() + k` and stands for this missing span id.
    placeholder_ids: Vec<[u8; 8]>,
    pub(super) parent: Vec<Option<usize>>,
    pub(super) start: Vec<i64>,
    pub(super) end: Vec<i64>,
    pub(super) shift: Vec<i64>,
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

    pub(super) fn roots(&self) -> Vec<usize> {
        (0..self.num_nodes())
            .filter(|&index| self.parent[index].is_none())
            .collect()
    }

    /// A placeholder spans its children, which clock-skew correction never shifts.
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

/// Breadth-first order from the roots over child lists.
pub(super) fn breadth_first(roots: &[usize], children: &[Vec<usize>]) -> Vec<usize> {
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rand::rngs::SmallRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    use crate::span_view::{SpanKind, SpanView};
    use crate::tree::test_spans::{EPOCH, MS, id, ids, kinds, on, span};
    use crate::tree::{CallTree, TreeError, WarningKind};

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
