//! Span ids shared by several spans: exact copies, Zipkin-style client/server pairs and
//! other duplicates.

use std::collections::HashSet;

use super::{TreeWarning, WarningKind};
use crate::span_view::{Placement, SpanKind, SpanView};

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
pub(super) fn sorted_by_id(spans: &[SpanView]) -> Vec<(u64, usize)> {
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
pub(super) fn drop_exact_copies(
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
pub(super) struct IdOwner {
    /// The span that takes children: the SERVER of a shared pair, else the first to arrive.
    pub(super) primary: usize,
    /// The CLIENT of a shared pair, which takes the children that ran on its own clock.
    pub(super) client: Option<usize>,
}

impl IdOwner {
    /// The span that adopts `child`: the client of a shared pair when the child ran on
    /// the client's clock and not the server's, else the primary.
    pub(super) fn adopter(self, child: &SpanView, spans: &[SpanView]) -> usize {
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
pub(super) fn own_span_ids(
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

pub(super) fn find_owner(owners: &[(u64, IdOwner)], span_id: [u8; 8]) -> Option<IdOwner> {
    let key = u64::from_be_bytes(span_id);
    let position = owners.binary_search_by_key(&key, |&(id, _)| id).ok()?;
    Some(owners[position].1)
}

#[cfg(test)]
mod tests {
    use crate::span_view::SpanKind;
    use crate::tree::test_spans::{find, id, ids, kinds, on, span};
    use crate::tree::{CallTree, WarningKind};

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
}
