//! Clock-skew correction: a child whose clock disagrees with its parent's is shifted into
//! the parent, together with its subtree.

use super::assemble::{Draft, breadth_first};
use super::json::nanos_to_ms;
use super::{TreeWarning, WarningKind};
use crate::span_view::SpanKind;

impl Draft {
    /// Moves every child that sticks out of its parent and runs on another clock into
    /// the parent, together with its whole subtree.
    ///
    /// Parents are visited before children, so a subtree inherits its parent's shift
    /// first and is then checked against the parent's corrected interval. Children of
    /// placeholders are left alone: a placeholder has no clock.
    pub(super) fn correct_clock_skew(
        &mut self,
        children: &[Vec<usize>],
        warnings: &mut Vec<TreeWarning>,
    ) {
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
            self.start[index] = self.start[index].saturating_add(self.shift[index]);
            self.end[index] = self.end[index].saturating_add(self.shift[index]);
        }
    }
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

#[cfg(test)]
mod tests {
    use crate::span_view::SpanKind;
    use crate::tree::test_spans::{EPOCH, MS, find, id, kinds, on, span};
    use crate::tree::{CallTree, WarningKind};

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
}
