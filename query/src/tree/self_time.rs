//! Self time: the part of a node's interval that none of its children covers.

use super::CallTree;

impl CallTree {
    /// Self time: the node's interval minus the union of its children's, clipped to it.
    pub(super) fn compute_self_times(&mut self) {
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

#[cfg(test)]
mod tests {
    use crate::span_view::SpanKind;
    use crate::tree::CallTree;
    use crate::tree::test_spans::{MS, find, span};

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
}
