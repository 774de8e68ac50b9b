//! The critical path of each root, and each node's share of it.

use super::CallTree;

impl CallTree {
    /// Marks the critical path of every root and gives each node on it its share.
    ///
    /// Within a node's window on the path, the child finishing last is critical; the next
    /// critical child is the one finishing last before that child started, and so on. The
    /// gaps between critical children are the node's own share. Each critical child then
    /// gets the part of its interval inside the window as its own window.
    pub(super) fn compute_critical_path(&mut self) {
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

#[cfg(test)]
mod tests {
    use crate::span_view::SpanKind;
    use crate::tree::CallTree;
    use crate::tree::test_spans::{MS, find, id, span};

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
}
