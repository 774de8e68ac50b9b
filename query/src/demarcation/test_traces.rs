//! Placements, traces and lookups shared by the demarcation tests.

use crate::demarcation::Suspect;
use crate::span_view::{Placement, SpanKind, SpanView};
use crate::tree::CallTree;

pub(super) const MS: f64 = 1e6;
pub(super) const EPOCH: i64 = 1_700_000_000_000_000_000;

pub(super) fn place(service: &str, workload: &str, version: &str, pod: &str) -> Placement {
    Placement {
        service: service.into(),
        namespace: Some("default".into()),
        workload: Some(workload.into()),
        version: Some(version.into()),
        pod: Some(pod.into()),
    }
}

/// Builds one trace span by span; times in ms from the trace's start.
pub(super) struct TraceBuilder {
    trace_id: [u8; 16],
    start_unix_nano: i64,
    spans: Vec<SpanView>,
}

impl TraceBuilder {
    pub(super) fn new(trace: u64) -> Self {
        let mut trace_id = [0; 16];
        trace_id[8..].copy_from_slice(&trace.to_be_bytes());
        let start_unix_nano = EPOCH + trace as i64 * 1_000_000_000;
        TraceBuilder {
            trace_id,
            start_unix_nano,
            spans: Vec::new(),
        }
    }

    #[expect(clippy::too_many_arguments, reason = "a span has that many fields")]
    pub(super) fn span(
        &mut self,
        parent: Option<[u8; 8]>,
        placement: &Placement,
        name: &str,
        kind: SpanKind,
        start_ms: f64,
        end_ms: f64,
        error: bool,
        peer: Option<&str>,
    ) -> [u8; 8] {
        let span_id = (self.spans.len() as u64 + 1).to_be_bytes();
        self.spans.push(SpanView {
            trace_id: self.trace_id,
            span_id,
            parent_span_id: parent,
            name: name.into(),
            kind,
            start_unix_nano: self.start_unix_nano + (start_ms * MS) as i64,
            end_unix_nano: self.start_unix_nano + (end_ms * MS) as i64,
            error,
            placement: placement.clone(),
            peer: peer.map(str::to_owned),
        });
        span_id
    }

    pub(super) fn server(
        &mut self,
        parent: Option<[u8; 8]>,
        at: &Placement,
        times: (f64, f64),
        error: bool,
    ) -> [u8; 8] {
        let name = format!("GET /{}", at.service);
        self.span(
            parent,
            at,
            &name,
            SpanKind::Server,
            times.0,
            times.1,
            error,
            None,
        )
    }

    pub(super) fn client(
        &mut self,
        parent: [u8; 8],
        at: &Placement,
        callee: &str,
        times: (f64, f64),
        error: bool,
    ) -> [u8; 8] {
        let name = format!("call {callee}");
        self.span(
            Some(parent),
            at,
            &name,
            SpanKind::Client,
            times.0,
            times.1,
            error,
            None,
        )
    }

    pub(super) fn peer_call(
        &mut self,
        parent: [u8; 8],
        at: &Placement,
        peer: &str,
        times: (f64, f64),
        error: bool,
    ) {
        let name = format!("query {peer}");
        self.span(
            Some(parent),
            at,
            &name,
            SpanKind::Client,
            times.0,
            times.1,
            error,
            Some(peer),
        );
    }

    pub(super) fn build(self) -> CallTree {
        CallTree::assemble(self.spans).unwrap()
    }
}

/// frontend → `callee` with one client/server hop; the callee fails when `fails`, and
/// the failure propagates to the frontend unless `swallowed`.
pub(super) fn frontend_call(
    trace: u64,
    callee: &Placement,
    fails: bool,
    swallowed: bool,
) -> CallTree {
    let frontend = place("frontend", "frontend", "v1", "frontend-0");
    let mut builder = TraceBuilder::new(trace);
    let root = builder.server(None, &frontend, (0.0, 20.0), fails && !swallowed);
    let client = builder.client(root, &frontend, &callee.service, (2.0, 18.0), fails);
    builder.server(Some(client), callee, (3.0, 17.0), fails);
    builder.build()
}

pub(super) fn top(suspects: &[Suspect]) -> &Suspect {
    suspects.first().expect("at least one suspect")
}
