//! Mesh traffic for the report: the generator `tracegate loadgen` uses, grouped into
//! export requests the way loadgen groups them, on a fixed clock so every run and every
//! engine sees the same spans.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tracegate::sim::{Mesh, Scenario, to_request};

/// 2026-01-01T00:00:00Z: the start of the simulated time window.
pub(crate) const BASE_UNIX_NANO: u64 = 1_767_225_600_000_000_000;
/// Traces per export request, loadgen's default `--batch`.
pub(crate) const TRACES_PER_REQUEST: usize = 20;

/// One export request with what the report needs to know about it.
pub(crate) struct MeshRequest {
    /// The request.
    pub(crate) request: ExportTraceServiceRequest,
    /// Spans it holds.
    pub(crate) num_spans: u64,
    /// Trace ids and span counts of its traces.
    pub(crate) traces: Vec<([u8; 16], usize)>,
}

/// Export requests holding about `target_spans` spans of the steady demo mesh, with
/// trace start times spread evenly over `window_nanos` from [`BASE_UNIX_NANO`].
pub(crate) struct MeshRequests {
    mesh: Mesh,
    target_spans: u64,
    window_nanos: u64,
    num_spans: u64,
}

impl MeshRequests {
    /// A reproducible stream from `seed`.
    pub(crate) fn new(seed: u64, target_spans: u64, window_nanos: u64) -> Self {
        Self {
            mesh: Mesh::new(Scenario::Steady, seed),
            target_spans: target_spans.max(1),
            window_nanos,
            num_spans: 0,
        }
    }
}

impl Iterator for MeshRequests {
    type Item = MeshRequest;

    fn next(&mut self) -> Option<MeshRequest> {
        if self.num_spans >= self.target_spans {
            return None;
        }
        let mut generated = Vec::with_capacity(TRACES_PER_REQUEST);
        let mut num_spans = 0u64;
        for _ in 0..TRACES_PER_REQUEST {
            let done = (self.num_spans + num_spans).min(self.target_spans) as u128;
            let offset =
                (done * u128::from(self.window_nanos) / u128::from(self.target_spans)) as u64;
            let trace = self.mesh.trace(BASE_UNIX_NANO + offset);
            num_spans += trace.num_spans() as u64;
            generated.push(trace);
        }
        self.num_spans += num_spans;
        let traces = generated
            .iter()
            .map(|t| {
                let (_, first) = t.spans().next().expect("a trace has a root span");
                let id = first
                    .trace_id
                    .as_slice()
                    .try_into()
                    .expect("16-byte trace id");
                (id, t.num_spans())
            })
            .collect();
        Some(MeshRequest {
            request: to_request(&generated),
            num_spans,
            traces,
        })
    }
}
