//! The end-to-end half: `tracegate loadgen` feeding a running server over OTLP/gRPC
//! with durable acknowledgements, and how soon an acknowledged span can be found.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde::Deserialize;
use tracegate::sim::{Mesh, Scenario, to_request};

use crate::fixture::BASE_UNIX_NANO;
use crate::server::Server;

/// The fields of `tracegate loadgen --json` the report reads.
#[derive(Debug, Deserialize)]
pub(crate) struct LoadReport {
    /// Spans sent.
    pub(crate) spans: u64,
    /// Spans acknowledged.
    pub(crate) spans_acknowledged: u64,
    /// Requests that failed after retries.
    pub(crate) failed_requests: u64,
    /// Requests retried after an overload answer.
    pub(crate) retries: u64,
    /// Acknowledged spans per second.
    pub(crate) spans_per_second: f64,
    /// Median request latency.
    pub p50_request_ms: f64,
}

/// Runs `binary loadgen` against `server` with `flags` and reads its JSON report.
///
/// # Errors
/// When loadgen fails or prints no report.
pub(crate) fn loadgen(
    binary: &Path,
    server: &Server,
    flags: &[String],
) -> anyhow::Result<LoadReport> {
    let output = Command::new(binary)
        .arg("loadgen")
        .args(["--endpoint", &server.ports.otlp_grpc, "--json", "--quiet"])
        .args(flags)
        .output()
        .context("run loadgen")?;
    if !output.status.success() {
        bail!(
            "loadgen exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "loadgen printed no JSON report: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// How long one acknowledged trace took to show in each view, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Freshness {
    /// `GET /api/v1/traces/{id}` returns all its spans.
    pub(crate) trace_ms: f64,
    /// `GET /api/traces?service=frontend&start=&end=` lists it.
    pub(crate) search_ms: f64,
    /// `GET /api/v1/graph?start=&end=` has edges in its time bucket.
    pub(crate) graph_ms: f64,
}

impl Freshness {
    /// When it was in every view.
    pub(crate) fn all_ms(&self) -> f64 {
        self.trace_ms.max(self.search_ms).max(self.graph_ms)
    }
}

/// Exports `samples` single traces to `server` over OTLP/gRPC, one at a time, and for
/// each polls the three views from its acknowledgement until they show it.
///
/// Each sample trace starts in a 10 s graph bucket of its own (an hour before the
/// benchmark's fixed base time), so the graph and search ranges select only it, even
/// while other traffic flows.
///
/// # Errors
/// When an export fails or a view does not show the trace within 10 s.
pub(crate) fn freshness(server: &Server, samples: usize) -> anyhow::Result<Vec<Freshness>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut client = runtime.block_on(async {
        TraceServiceClient::connect(format!("http://{}", server.ports.otlp_grpc)).await
    })?;
    let mut mesh = Mesh::new(Scenario::Steady, 0xF4E5);
    let mut out = Vec::with_capacity(samples);
    for sample in 0..samples {
        let start = BASE_UNIX_NANO - 3_600_000_000_000 + sample as u64 * 20_000_000_000 + 1_000;
        let trace = mesh.trace(start);
        let (_, root) = trace.spans().next().expect("a root span");
        let trace_hex = hex::encode(&root.trace_id);
        let num_spans = trace.num_spans();
        let request = to_request([&trace]);

        runtime
            .block_on(client.export(request))
            .context("export a freshness sample")?;
        let acked = Instant::now();

        let start_us = start / 1_000;
        let end_us = start_us + 5_000_000;
        let trace_path = format!("/api/v1/traces/{trace_hex}");
        let search_path =
            format!("/api/traces?service=frontend&start={start_us}&end={end_us}&limit=100");
        let graph_path = format!("/api/v1/graph?start={start_us}&end={end_us}");
        let (mut trace_ms, mut search_ms, mut graph_ms) = (None, None, None);
        while trace_ms.is_none() || search_ms.is_none() || graph_ms.is_none() {
            if acked.elapsed() > Duration::from_secs(10) {
                bail!(
                    "trace {trace_hex} not visible 10 s after its ack: trace {trace_ms:?}, \
                     search {search_ms:?}, graph {graph_ms:?}"
                );
            }
            let since_ack = || acked.elapsed().as_secs_f64() * 1e3;
            if trace_ms.is_none() && shows_trace(server, &trace_path, num_spans)? {
                trace_ms = Some(since_ack());
            }
            if search_ms.is_none() && search_lists(server, &search_path, &trace_hex)? {
                search_ms = Some(since_ack());
            }
            if graph_ms.is_none() && graph_has_edges(server, &graph_path)? {
                graph_ms = Some(since_ack());
            }
        }
        out.push(Freshness {
            trace_ms: trace_ms.unwrap_or_default(),
            search_ms: search_ms.unwrap_or_default(),
            graph_ms: graph_ms.unwrap_or_default(),
        });
    }
    Ok(out)
}

fn shows_trace(server: &Server, path: &str, num_spans: usize) -> anyhow::Result<bool> {
    let (status, body) = server.get(path)?;
    if status != 200 {
        return Ok(false);
    }
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(count_otlp_spans(&json) == num_spans)
}

fn search_lists(server: &Server, path: &str, trace_hex: &str) -> anyhow::Result<bool> {
    let json = server.get_json(path)?;
    Ok(json["data"]
        .as_array()
        .is_some_and(|traces| traces.iter().any(|t| t["traceID"] == trace_hex)))
}

fn graph_has_edges(server: &Server, path: &str) -> anyhow::Result<bool> {
    let json = server.get_json(path)?;
    Ok(json["edges"].as_array().is_some_and(|e| !e.is_empty()))
}

/// Spans in an OTLP/JSON export request.
pub(crate) fn count_otlp_spans(json: &serde_json::Value) -> usize {
    let empty = Vec::new();
    let mut count = 0;
    for resource_spans in json["resourceSpans"].as_array().unwrap_or(&empty) {
        for scope_spans in resource_spans["scopeSpans"].as_array().unwrap_or(&empty) {
            count += scope_spans["spans"].as_array().map_or(0, Vec::len);
        }
    }
    count
}
