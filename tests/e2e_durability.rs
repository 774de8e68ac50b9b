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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
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

/// One answer of a poller: when it came, and the status or the transport error.
type Answer = (std::time::Instant, Result<u16, String>);

/// Polls `url` on a new connection each time until `stop` is set.
fn poll_until(url: &str, stop: &AtomicBool) -> Vec<Answer> {
    let mut seen = Vec::new();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{url}: never stopped"
        );
        seen.push((
            Instant::now(),
            support::try_get(url).map(|reply| reply.status),
        ));
    }
    seen
}

/// Restarts the server once while three threads poll `/health` and `/ready` across the
/// handover from the startup listener to the full API; returns what they saw and when the
/// first `/ready` 200 came.
fn watched_restart(server: &mut TestServer) -> (Vec<Answer>, Vec<Answer>, Instant) {
    server.kill9();
    server.restart_until_bound();
    let health_url = server.url("/health");
    let ready_url = server.url("/ready");
    let stop = AtomicBool::new(false);
    let (health, ready) = std::thread::scope(|scope| {
        let pollers = [
            scope.spawn(|| poll_until(&health_url, &stop)),
            scope.spawn(|| poll_until(&health_url, &stop)),
        ];
        let ready = scope.spawn(|| {
            let mut seen = Vec::new();
            let mut num_ready = 0;
            let started = Instant::now();
            while num_ready < 30 {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "/ready never said 200"
                );
                let answer = support::try_get(&ready_url).map(|reply| reply.status);
                num_ready += usize::from(answer == Ok(200));
                seen.push((Instant::now(), answer));
            }
            stop.store(true, Ordering::Relaxed);
            seen
        });
        let mut health = Vec::new();
        for poller in pollers {
            health.extend(poller.join().unwrap());
        }
        (health, ready.join().unwrap())
    });
    server.wait_ready();
    let first_ready = ready
        .iter()
        .find(|(_, a)| *a == Ok(200))
        .expect("ready at last")
        .0;
    (health, ready, first_ready)
}

#[test]
fn health_and_ready_answer_while_the_wal_replays() {
    let mut server = TestServer::start();
    let mut mesh = Mesh::new(Scenario::CanaryRegression, 0x4ead);
    let acknowledged = send_batches(&server, &mut mesh, Transport::Grpc, 20, 5);

    // The handover lasts an instant, so watch several restarts.
    let mut failures = Vec::new();
    let mut num_requests = 0;
    for restart in 0..16 {
        let (health, ready, first_ready) = watched_restart(&mut server);
        num_requests += health.len() + ready.len();
        for (url, answers) in [("/health", &health), ("/ready", &ready)] {
            for (at, answer) in answers {
                let offset_ms = if *at >= first_ready {
                    (*at - first_ready).as_secs_f64() * 1e3
                } else {
                    -(first_ready - *at).as_secs_f64() * 1e3
                };
                match answer {
                    Err(error) => failures.push(format!(
                        "restart {restart}: GET {url} {offset_ms:+.1} ms from ready: {error}"
                    )),
                    Ok(status) if url == "/health" && *status != 200 => {
                        failures.push(format!("restart {restart}: GET /health answered {status}"))
                    }
                    Ok(status) if url == "/ready" && *at >= first_ready && *status != 200 => {
                        failures.push(format!("restart {restart}: /ready {status} after 200"));
                    }
                    Ok(status) if ![200, 503].contains(status) => {
                        failures.push(format!("restart {restart}: /ready answered {status}"));
                    }
                    Ok(_) => {}
                }
            }
        }
        assert_all_stored(
            &server,
            &acknowledged,
            &format!("after watched restart {restart}"),
        );
    }
    assert!(
        failures.is_empty(),
        "/health must answer 200 and /ready 503 then 200 while the process runs, on every \
         connection; {} of {num_requests} requests did not:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_torn_wal_tail_and_a_half_written_segment_are_cleaned_up_on_restart() {
    let mut server = TestServer::start();
    let mut mesh = Mesh::new(Scenario::Steady, 0x7047);
    let mut acknowledged = send_batches(&server, &mut mesh, Transport::Grpc, 5, 2);
    server.kill9();

    // What a crash mid-write leaves: a record header promising more bytes than follow, and a
    // segment file that never got renamed into place.
    let wal_dir = server.data_dir().join("wal");
    let (newest, size) = files_with_suffix(&wal_dir, ".wal")
        .pop()
        .expect("a WAL file");
    assert!(size > 8, "the WAL holds the acknowledged records");
    let mut torn = Vec::new();
    torn.extend_from_slice(&4096u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    torn.extend_from_slice(&[0x0a; 100]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(wal_dir.join(&newest))
        .unwrap();
    std::io::Write::write_all(&mut file, &torn).unwrap();
    drop(file);
    let segments = server.data_dir().join("segments");
    std::fs::write(
        segments.join("0000000999.parquet.tmp"),
        b"PAR1 half written",
    )
    .unwrap();

    server.restart();
    assert_all_stored(&server, &acknowledged, "after a torn WAL tail");
    assert!(
        files_with_suffix(&segments, ".tmp").is_empty(),
        "the half-written segment is removed"
    );
    let (_, size_after) = files_with_suffix(&wal_dir, ".wal")
        .into_iter()
        .find(|(name, _)| *name == newest)
        .expect("the replayed WAL file is kept until its spans are flushed");
    assert_eq!(
        size_after, size,
        "the torn tail is cut off, the records kept"
    );

    // The store keeps working: more exports, another crash, everything still there.
    acknowledged.extend(send_batches(
        &server,
        &mut mesh,
        Transport::HttpProtobuf,
        3,
        2,
    ));
    server.kill9();
    server.restart();
    assert_all_stored(&server, &acknowledged, "after another kill -9");
}

#[test]
fn sigterm_exits_promptly_while_clients_keep_idle_connections_open() {
    let mut server = TestServer::start();
    let mut mesh = Mesh::new(Scenario::Steady, 0x1d1e);

    // A gRPC channel and pooled HTTP/1.1 keep-alive connections, left open and idle.
    let mut grpc = GrpcClient::connect(server.ports().otlp_grpc);
    let (request, acknowledged) = mesh_request(&mut mesh, 2);
    grpc.export(request).expect("gRPC export");
    let agent = support::agent();
    let (request, more) = mesh_request(&mut mesh, 2);
    let reply = agent
        .post(&server.otlp_http_url())
        .header("Content-Type", "application/x-protobuf")
        .send(&request.encode_to_vec()[..])
        .expect("HTTP export");
    assert_eq!(reply.status().as_u16(), 200);
    let reply = agent
        .get(&server.url("/health"))
        .call()
        .expect("GET /health");
    assert_eq!(reply.status().as_u16(), 200);

    let started = Instant::now();
    let status = server.sigterm();
    let elapsed = started.elapsed();
    assert!(
        status.success(),
        "SIGTERM must exit 0, got {status}\n{}",
        server.log_tail()
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "idle client connections held up shutdown for {elapsed:?}"
    );
    drop(grpc);
    drop(agent);

    server.restart();
    let mut all = acknowledged;
    all.extend(more);
    assert_all_stored(&server, &all, "after SIGTERM with open connections");
}

/// How long a SIGTERM may take when a client stalls: well inside the 30 s a Kubernetes pod
/// gets between SIGTERM and SIGKILL, so that the head is flushed rather than killed.
const STALLED_CLIENT_SHUTDOWN: Duration = Duration::from_secs(20);

/// A client that opened a connection, sent part of what it had to say, and went silent
/// (a hung process, a paused VM, a partition), holding the connection open.
fn stalled_connection(addr: std::net::SocketAddr, opening: &[u8]) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.write_all(opening).expect("send the opening");
    if opening.starts_with(b"PRI * HTTP/2.0") {
        // Wait for the server's SETTINGS, so the HTTP/2 connection is really up.
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut settings = [0u8; 9];
        stream
            .read_exact(&mut settings)
            .expect("the server's SETTINGS frame");
        assert_eq!(settings[3], 0x4, "a SETTINGS frame first");
    }
    stream
}

/// Asserts a SIGTERM is not held up by a stalled client on one listener, and the head is
/// still flushed.
fn assert_sigterm_not_held_up(listener: &str) {
    let mut server = TestServer::start();
    let mut mesh = Mesh::new(Scenario::Steady, 0x57a1);
    let acknowledged = send_batches(&server, &mut mesh, Transport::HttpProtobuf, 2, 2);

    let ports = server.ports();
    let stalled = match listener {
        "OTLP/gRPC" => {
            // The HTTP/2 preface and an empty SETTINGS frame, then silence.
            let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            opening.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
            stalled_connection(ports.otlp_grpc, &opening)
        }
        "OTLP/HTTP" => stalled_connection(
            ports.otlp_http,
            b"POST /v1/traces HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\n\
              Content-Length: 200\r\n\r\n{\"resourceSpans\": [",
        ),
        _ => stalled_connection(ports.http, b"GET /api/services HTTP/1.1\r\nHost: query\r\n"),
    };
    // Let the server take the connection in before the signal.
    std::thread::sleep(Duration::from_millis(200));

    let status = server.sigterm_within(STALLED_CLIENT_SHUTDOWN);
    drop(stalled);
    assert!(
        status.success(),
        "SIGTERM with a stalled {listener} client: {status}"
    );
    assert!(
        num_segments(&server) >= 1,
        "the head is flushed despite the stalled client"
    );
    server.restart();
    assert_all_stored(
        &server,
        &acknowledged,
        "after SIGTERM with a stalled client",
    );
}

#[test]
fn sigterm_is_not_held_up_by_a_stalled_grpc_client() {
    assert_sigterm_not_held_up("OTLP/gRPC");
}

#[test]
fn sigterm_is_not_held_up_by_a_stalled_otlp_http_client() {
    assert_sigterm_not_held_up("OTLP/HTTP");
}

#[test]
fn sigterm_is_not_held_up_by_a_stalled_query_api_client() {
    assert_sigterm_not_held_up("query API");
}

/// One request holding the given spans, one `ResourceSpans` per resource.
fn request_of(spans: &[(&Resource, &Span)]) -> ExportTraceServiceRequest {
    let mut resource_spans: Vec<ResourceSpans> = Vec::new();
    for (resource, span) in spans {
        let index = match resource_spans
            .iter()
            .position(|rs| rs.resource.as_ref() == Some(resource))
        {
            Some(index) => index,
            None => {
                resource_spans.push(ResourceSpans {
                    resource: Some((*resource).clone()),
                    scope_spans: vec![ScopeSpans::default()],
                    schema_url: String::new(),
                });
                resource_spans.len() - 1
            }
        };
        resource_spans[index].scope_spans[0]
            .spans
            .push((*span).clone());
    }
    ExportTraceServiceRequest { resource_spans }
}

#[test]
fn a_trace_split_across_a_segment_and_the_wal_is_whole() {
    // A trace whose spans arrive in two exports, with a seal in between: its first part
    // ends up in a Parquet segment, its last span in the WAL.
    let mut mesh = Mesh::new(Scenario::Steady, 0x5911);
    let trace = mesh.trace(now_unix_nano() - 10_000_000_000);
    let spans: Vec<(&Resource, &Span)> = trace.spans().collect();
    assert!(spans.len() >= 3, "a mesh trace has several spans");
    let (first, last) = spans.split_at(spans.len() - 1);
    let trace_id = hex::encode(&spans[0].1.trace_id);
    let expected: Acknowledged = BTreeMap::from([(
        trace_id.clone(),
        spans
            .iter()
            .map(|(_, span)| hex::encode(&span.span_id))
            .collect(),
    )]);

    let seal_after = first.len().to_string();
    let mut server = TestServer::start_with_args(&["--max-head-spans", &seal_after]);
    let mut sender = Sender::new(&server, Transport::Grpc);
    sender.export(request_of(first));
    wait_for(
        Duration::from_secs(20),
        "the first part sealed to Parquet",
        || (num_segments(&server) == 1).then_some(()),
    );
    sender.export(request_of(last));
    drop(sender);
    assert!(wal_record_bytes(&server) > 0, "the last span is in the WAL");
    assert_all_stored(&server, &expected, "split between a segment and the head");

    server.kill9();
    server.restart();
    assert_all_stored(
        &server,
        &expected,
        "split between a segment and the replayed WAL",
    );
    let jaeger = support::get_json(&server.url(&format!("/api/traces/{trace_id}")));
    let jaeger_spans = jaeger["data"][0]["spans"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        jaeger_spans.len(),
        spans.len(),
        "Jaeger sees the whole trace too"
    );

    let status = server.sigterm();
    assert!(status.success(), "SIGTERM: {status}");
    server.restart();
    assert_all_stored(&server, &expected, "split between two segments");
}
