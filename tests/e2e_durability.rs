//! End to end: an acknowledged export survives whatever happens to the process next.
//!
//! Spans come from the simulated mesh (`tracegate::sim`) and go in through the Rust tonic
//! client or ureq, so the test knows exactly which exports were acknowledged. The server is
//! then killed with SIGKILL right after the last acknowledgement (nothing flushed but the WAL)
//! or stopped with SIGTERM / SIGINT (head flushed to Parquet), restarted on the same data
//! directory, and every acknowledged trace must be found by id with exactly its spans: none
//! lost, none replayed twice.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::Value;
use support::{
    GrpcClient, TestServer, files_with_suffix, get, gzip, now_unix_nano, post, wait_for,
};
use tracegate::sim::{Mesh, Scenario, to_request};

/// The spans of every acknowledged trace: trace id (hex) to its span ids (hex).
type Acknowledged = BTreeMap<String, BTreeSet<String>>;

/// How a batch is sent.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Grpc,
    GrpcGzip,
    HttpProtobuf,
    HttpProtobufGzip,
}

/// Sends exports through one transport and records what was acknowledged.
struct Sender {
    transport: Transport,
    grpc: Option<GrpcClient>,
    otlp_http_url: String,
}

impl Sender {
    fn new(server: &TestServer, transport: Transport) -> Self {
        let grpc = match transport {
            Transport::Grpc => Some(GrpcClient::connect(server.ports().otlp_grpc)),
            Transport::GrpcGzip => Some(GrpcClient::connect(server.ports().otlp_grpc).gzip()),
            Transport::HttpProtobuf | Transport::HttpProtobufGzip => None,
        };
        Self {
            transport,
            grpc,
            otlp_http_url: server.otlp_http_url(),
        }
    }

    /// Exports `request`, asserting it is acknowledged in full.
    fn export(&mut self, request: ExportTraceServiceRequest) {
        let response = match (self.transport, &mut self.grpc) {
            (Transport::Grpc | Transport::GrpcGzip, Some(client)) => client
                .export(request)
                .unwrap_or_else(|status| panic!("{:?} export refused: {status}", self.transport)),
            _ => {
                let body = request.encode_to_vec();
                let (body, encoding) = match self.transport {
                    Transport::HttpProtobufGzip => (gzip(&body), Some("gzip")),
                    _ => (body, None),
                };
                let reply = post(
                    &self.otlp_http_url,
                    "application/x-protobuf",
                    encoding,
                    &body,
                );
                assert_eq!(
                    reply.status,
                    200,
                    "{:?} export refused: {}",
                    self.transport,
                    reply.text()
                );
                ExportTraceServiceResponse::decode(reply.body.as_slice())
                    .expect("a protobuf ExportTraceServiceResponse")
            }
        };
        let rejected = response.partial_success.map_or(0, |p| p.rejected_spans);
        assert_eq!(rejected, 0, "simulated spans are all valid");
    }
}

/// Generates `num_traces` mesh traces as one request, adding them to `acknowledged` (the
/// caller adds them only once the export returned).
fn mesh_request(mesh: &mut Mesh, num_traces: usize) -> (ExportTraceServiceRequest, Acknowledged) {
    let start = now_unix_nano() - 30_000_000_000;
    let traces: Vec<_> = (0..num_traces)
        .map(|i| mesh.trace(start + i as u64 * 1_000_000))
        .collect();
    let mut spans = Acknowledged::new();
    for trace in &traces {
        for (_, span) in trace.spans() {
            let inserted = spans
                .entry(hex::encode(&span.trace_id))
                .or_default()
                .insert(hex::encode(&span.span_id));
            assert!(inserted, "the mesh repeats a span id");
        }
    }
    (to_request(&traces), spans)
}

fn num_spans(acknowledged: &Acknowledged) -> usize {
    acknowledged.values().map(BTreeSet::len).sum()
}

/// Sends `num_exports` exports of `traces_per_export` traces; returns what was acknowledged.
fn send_batches(
    server: &TestServer,
    mesh: &mut Mesh,
    transport: Transport,
    num_exports: usize,
    traces_per_export: usize,
) -> Acknowledged {
    let mut sender = Sender::new(server, transport);
    let mut acknowledged = Acknowledged::new();
    for _ in 0..num_exports {
        let (request, spans) = mesh_request(mesh, traces_per_export);
        sender.export(request);
        acknowledged.extend(spans);
    }
    acknowledged
}

/// The span ids of a trace as the native API returns it, asserting every span is of it.
fn stored_spans(server: &TestServer, trace_id: &str) -> Option<Vec<String>> {
    let reply = get(&server.url(&format!("/api/v1/traces/{trace_id}")));
    if reply.status == 404 {
        return None;
    }
    assert_eq!(reply.status, 200, "GET trace {trace_id}: {}", reply.text());
    let document = reply.json();
    let mut span_ids = Vec::new();
    for resource_spans in document["resourceSpans"].as_array().into_iter().flatten() {
        for scope_spans in resource_spans["scopeSpans"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for span in scope_spans["spans"].as_array().into_iter().flatten() {
                assert_eq!(
                    span["traceId"],
                    Value::from(trace_id),
                    "span of another trace"
                );
                span_ids.push(span["spanId"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    Some(span_ids)
}

/// Asserts every acknowledged trace is stored with exactly its spans, each once.
fn assert_all_stored(server: &TestServer, acknowledged: &Acknowledged, when: &str) {
    assert!(!acknowledged.is_empty(), "{when}: nothing to check");
    let mut missing = Vec::new();
    for (trace_id, expected) in acknowledged {
        let Some(span_ids) = stored_spans(server, trace_id) else {
            missing.push(trace_id.clone());
            continue;
        };
        let unique: BTreeSet<String> = span_ids.iter().cloned().collect();
        assert_eq!(
            span_ids.len(),
            expected.len(),
            "{when}: trace {trace_id} has {} spans, {} acknowledged (duplicates: {})",
            span_ids.len(),
            expected.len(),
            span_ids.len() - unique.len()
        );
        assert_eq!(
            &unique, expected,
            "{when}: trace {trace_id} has other spans"
        );
    }
    assert!(
        missing.is_empty(),
        "{when}: {} of {} acknowledged traces lost, e.g. {:?}\n{}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)],
        server.log_tail()
    );
}

/// Bytes of WAL records (beyond each file's 8-byte header) in the data directory.
fn wal_record_bytes(server: &TestServer) -> u64 {
    let files = files_with_suffix(&server.data_dir().join("wal"), ".wal");
    files.iter().map(|(_, size)| size.saturating_sub(8)).sum()
}

fn num_segments(server: &TestServer) -> usize {
    files_with_suffix(&server.data_dir().join("segments"), ".parquet").len()
}

#[test]
fn acknowledged_exports_survive_kill_9_with_wal_replay_and_parquet_segments() {
    let mut server = TestServer::start();
    let mut mesh = Mesh::new(Scenario::Steady, 0x5eed);
    let mut acknowledged = Acknowledged::new();

    // Round 1: gRPC, the head far from full: after SIGKILL only the WAL holds the spans.
    acknowledged.extend(send_batches(&server, &mut mesh, Transport::Grpc, 6, 3));
    assert_eq!(num_segments(&server), 0, "round 1 seals nothing");
    assert!(wal_record_bytes(&server) > 0, "round 1 is in the WAL");
    server.kill9();
    server.restart_with_args(&["--max-head-spans", "150"]);
    assert_all_stored(&server, &acknowledged, "after round 1 (WAL replay)");

    // Round 2: gzip gRPC with a small head: exports until the head is sealed to Parquet
    // (the replayed spans go with it), then one more export that stays in the WAL.
    let mut sender = Sender::new(&server, Transport::GrpcGzip);
    let mut spans_since_start = 0;
    while spans_since_start < 150 {
        let (request, spans) = mesh_request(&mut mesh, 2);
        sender.export(request);
        spans_since_start += num_spans(&spans);
        acknowledged.extend(spans);
    }
    wait_for(
        Duration::from_secs(20),
        "a Parquet segment after the seal",
        || (num_segments(&server) > 0).then_some(()),
    );
    let (request, spans) = mesh_request(&mut mesh, 1);
    assert!(
        num_spans(&spans) < 150,
        "the last export must not seal again"
    );
    sender.export(request);
    acknowledged.extend(spans);
    assert!(
        wal_record_bytes(&server) > 0,
        "round 2 ends with records in the WAL"
    );
    server.kill9();
    drop(sender);
    server.restart();
    assert!(num_segments(&server) > 0, "the segment is still there");
    assert_all_stored(
        &server,
        &acknowledged,
        "after round 2 (segment + WAL replay)",
    );

    // Round 3: HTTP/protobuf, plain then gzip, killed right after the last acknowledgement.
    acknowledged.extend(send_batches(
        &server,
        &mut mesh,
        Transport::HttpProtobuf,
        4,
        2,
    ));
    acknowledged.extend(send_batches(
        &server,
        &mut mesh,
        Transport::HttpProtobufGzip,
        4,
        2,
    ));
    server.kill9();
    server.restart();
    assert_all_stored(&server, &acknowledged, "after round 3 (HTTP, kill -9)");

    // A restart with nothing new changes nothing.
    server.kill9();
    server.restart();
    assert_all_stored(&server, &acknowledged, "after a restart without new spans");
}

#[test]
fn sigterm_flushes_the_head_to_parquet_and_exits_zero() {
    let mut server = TestServer::start();
    let mut mesh = Mesh::new(Scenario::ErrorBurst, 0x7e57);
    let mut acknowledged = send_batches(&server, &mut mesh, Transport::Grpc, 4, 3);
    acknowledged.extend(send_batches(
        &server,
        &mut mesh,
        Transport::HttpProtobuf,
        3,
        2,
    ));
    assert_eq!(num_segments(&server), 0, "nothing sealed before shutdown");

    let status = server.sigterm();
    assert!(
        status.success(),
        "SIGTERM must exit 0, got {status}\n{}",
        server.log_tail()
    );
    assert!(
        num_segments(&server) >= 1,
        "the head is flushed to a Parquet segment"
    );
    assert_eq!(
        wal_record_bytes(&server),
        0,
        "no WAL records left unflushed after SIGTERM"
    );
    assert!(
        !server
            .data_dir()
            .join("segments")
            .read_dir()
            .unwrap()
            .any(|entry| {
                entry
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            }),
        "no half-written segment"
    );

    server.restart();
    assert_all_stored(&server, &acknowledged, "after SIGTERM and restart");

    // Stopping again with an empty head (everything is in segments) is clean too.
    let status = server.sigterm();
    assert!(status.success(), "second SIGTERM must exit 0, got {status}");
    server.restart();
    assert_all_stored(&server, &acknowledged, "after a second SIGTERM and restart");
}

#[test]
fn sigint_stops_cleanly_like_sigterm() {
    let mut server = TestServer::start();
    let mut mesh = Mesh::new(Scenario::SlowDependency, 0x1417);
    let acknowledged = send_batches(&server, &mut mesh, Transport::GrpcGzip, 3, 2);

    let status = server.sigint();
    assert!(
        status.success(),
        "SIGINT must exit 0, got {status}\n{}",
        server.log_tail()
    );
    assert!(
        num_segments(&server) >= 1,
        "the head is flushed to a Parquet segment"
    );
    assert_eq!(
        wal_record_bytes(&server),
        0,
        "no WAL records left unflushed after SIGINT"
    );

    server.restart();
    assert_all_stored(&server, &acknowledged, "after SIGINT and restart");
}

/// What a poller saw: each answer's status, or the transport error.
fn poll_until(url: &str, stop: &std::sync::atomic::AtomicBool) -> Vec<Result<u16, String>> {
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{url}: never ready"
        );
        seen.push(support::try_get(url).map(|reply| reply.status));
    }
    seen
}

#[test]
fn health_and_ready_answer_while_the_wal_replays() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut server = TestServer::start();
    let mut mesh = Mesh::new(Scenario::CanaryRegression, 0x4ead);
    let acknowledged = send_batches(&server, &mut mesh, Transport::Grpc, 30, 5);
    server.kill9();

    // Restart and watch /health and /ready from two threads, each request on a new
    // connection, through the handover from the startup listener to the full API.
    server.restart_until_bound();
    let health_url = server.url("/health");
    let ready_url = server.url("/ready");
    let stop = AtomicBool::new(false);
    let (health, ready) = std::thread::scope(|scope| {
        let health = scope.spawn(|| poll_until(&health_url, &stop));
        let ready = scope.spawn(|| {
            let mut seen = Vec::new();
            let mut num_ready = 0;
            while num_ready < 50 {
                let answer = support::try_get(&ready_url).map(|reply| reply.status);
                num_ready += usize::from(answer == Ok(200));
                seen.push(answer);
                assert!(seen.len() < 1_000_000, "/ready never answered 200");
            }
            stop.store(true, Ordering::Relaxed);
            seen
        });
        (health.join().unwrap(), ready.join().unwrap())
    });
    server.wait_ready();

    let errors: Vec<&String> = health
        .iter()
        .chain(&ready)
        .filter_map(|a| a.as_ref().err())
        .collect();
    assert!(
        errors.is_empty(),
        "/health and /ready must answer while the process runs; {} of {} requests failed, \
         e.g. {:?}",
        errors.len(),
        health.len() + ready.len(),
        errors.first()
    );
    assert!(
        health.iter().all(|a| *a == Ok(200)),
        "/health is 200 throughout: {health:?}"
    );
    let first_ready = ready
        .iter()
        .position(|a| *a == Ok(200))
        .expect("ready at last");
    assert!(
        ready[..first_ready].iter().all(|a| *a == Ok(503)),
        "503 before ready: {ready:?}"
    );
    assert!(
        ready[first_ready..].iter().all(|a| *a == Ok(200)),
        "200 once ready: {ready:?}"
    );
    assert_all_stored(&server, &acknowledged, "after the watched restart");
}
