//! End-to-end: the service graph and fault demarcation of a real server, fed with
//! simulated mesh traffic whose truth the test computes itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::Value;
use tracegate::sim::{FAILING_POD, GeneratedTrace, Mesh, Scenario};

/// A `tracegate serve` process on loopback ports.
struct Server {
    child: Child,
    data_dir: PathBuf,
    grpc: String,
    http: String,
}

impl Server {
    fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let _ = std::fs::remove_file(data_dir.join("ports.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_tracegate"))
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args([
                "--otlp-grpc-addr",
                "127.0.0.1:0",
                "--otlp-http-addr",
                "127.0.0.1:0",
            ])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tracegate binary starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ports = loop {
            if let Ok(text) = std::fs::read_to_string(data_dir.join("ports.json"))
                && let Ok(ports) = serde_json::from_str::<Value>(&text)
            {
                break ports;
            }
            assert!(Instant::now() < deadline, "server did not write ports.json");
            std::thread::sleep(Duration::from_millis(20));
        };
        let server = Self {
            child,
            data_dir: data_dir.to_path_buf(),
            grpc: ports["otlp_grpc"].as_str().unwrap().to_string(),
            http: ports["http"].as_str().unwrap().to_string(),
        };
        while get_status(&server.url("/ready")) != 200 {
            assert!(Instant::now() < deadline, "server did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    fn get(&self, path: &str) -> Value {
        let mut response = ureq::get(&self.url(path)).call().expect("GET succeeds");
        response.body_mut().read_json().expect("JSON answer")
    }

    fn stop(mut self, signal: &str) -> PathBuf {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
        assert!(status.unwrap().success());
        let exit = self.child.wait().unwrap();
        if signal == "-TERM" {
            assert!(exit.success(), "SIGTERM must exit 0, got {exit}");
        }
        self.data_dir.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_status(url: &str) -> u16 {
    ureq::get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .map_or(0, |r| r.status().as_u16())
}

fn string_attr<'a>(
    attributes: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Exact per-edge truth: calls, errors and client latencies (ms), by service name.
#[derive(Default, Debug)]
struct Truth {
    edges: HashMap<(String, String), (u64, u64, Vec<f64>)>,
}

fn is_error(span: &Span) -> bool {
    span.status.as_ref().is_some_and(|s| s.code == 2)
}

fn truth_of(traces: &[GeneratedTrace], group: impl Fn(&Resource) -> String) -> Truth {
    let mut truth = Truth::default();
    for trace in traces {
        let spans: Vec<(&Resource, &Span)> = trace.spans().collect();
        let by_id: HashMap<&[u8], (&Resource, &Span)> = spans
            .iter()
            .map(|(r, s)| (s.span_id.as_slice(), (*r, *s)))
            .collect();
        for (resource, span) in &spans {
            let ms = |s: &Span| (s.end_time_unix_nano - s.start_time_unix_nano) as f64 / 1e6;
            let mut add = |source: String, target: String, error: bool, latency: f64| {
                let entry = truth.edges.entry((source, target)).or_default();
                entry.0 += 1;
                entry.1 += u64::from(error);
                entry.2.push(latency);
            };
            match span.kind {
                2 | 5 if span.parent_span_id.is_empty() => {
                    add("user".into(), group(resource), is_error(span), ms(span));
                }
                2 | 5 => {
                    let (parent_resource, parent) = by_id[span.parent_span_id.as_slice()];
                    add(
                        group(parent_resource),
                        group(resource),
                        is_error(span) || is_error(parent),
                        ms(parent),
                    );
                }
                3 | 4 => {
                    let has_callee = spans
                        .iter()
                        .any(|(_, c)| matches!(c.kind, 2 | 5) && c.parent_span_id == span.span_id);
                    if !has_callee {
                        let peer = [
                            "peer.service",
                            "db.namespace",
                            "db.name",
                            "db.system",
                            "messaging.destination.name",
                            "server.address",
                        ]
                        .iter()
                        .find_map(|k| string_attr(&span.attributes, k))
                        .expect("simulated leaf calls name their peer");
                        add(group(resource), peer.to_string(), is_error(span), ms(span));
                    }
                }
                _ => {}
            }
        }
    }
    truth
}

fn service_of(resource: &Resource) -> String {
    string_attr(&resource.attributes, "service.name")
        .unwrap()
        .to_string()
}

/// Splits traces into requests so that halves of one call arrive separately and out
/// of order: every span goes into one of `num_requests` requests by a hash of its id,
/// and the requests are sent in reverse.
fn scattered_requests(
    traces: &[GeneratedTrace],
    num_requests: usize,
) -> Vec<ExportTraceServiceRequest> {
    let mut requests: Vec<Vec<ResourceSpans>> = vec![Vec::new(); num_requests];
    for trace in traces {
        for (resource, span) in trace.spans() {
            let slot = span.span_id[1] as usize % num_requests;
            requests[slot].push(ResourceSpans {
                resource: Some(resource.clone()),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span.clone()],
                    ..Default::default()
                }],
                schema_url: String::new(),
            });
        }
    }
    requests.reverse();
    requests
        .into_iter()
        .map(|resource_spans| ExportTraceServiceRequest { resource_spans })
        .collect()
}

async fn send(grpc: &str, requests: Vec<ExportTraceServiceRequest>) {
    let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    for request in requests {
        let response = client
            .export(request)
            .await
            .expect("export acknowledged")
            .into_inner();
        assert!(
            response
                .partial_success
                .is_none_or(|p| p.rejected_spans == 0)
        );
    }
}

fn exact_quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[(q * (values.len() - 1) as f64) as usize]
}

fn assert_graph_matches(graph: &Value, truth: &mut Truth) {
    let edges = graph["edges"].as_array().unwrap();
    assert_eq!(edges.len(), truth.edges.len(), "edges: {graph}");
    for edge in edges {
        let key = (
            edge["source"].as_str().unwrap().to_string(),
            edge["target"].as_str().unwrap().to_string(),
        );
        let (calls, errors, latencies) = truth
            .edges
            .get_mut(&key)
            .unwrap_or_else(|| panic!("unexpected edge {key:?}"));
        assert_eq!(edge["calls"].as_u64().unwrap(), *calls, "calls of {key:?}");
        assert_eq!(
            edge["errors"].as_u64().unwrap(),
            *errors,
            "errors of {key:?}"
        );
        for (field, q) in [("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99)] {
            let exact = exact_quantile(latencies, q);
            let got = edge[field].as_f64().unwrap();
            assert!(
                (got - exact).abs() <= exact * 0.01,
                "{field} of {key:?}: {got} vs exact {exact}"
            );
        }
    }
}

const T0: u64 = 1_790_000_000_000_000_000;

fn range_query(start: u64, end: u64) -> String {
    format!("start={}&end={}", start / 1_000, end / 1_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_is_exact_across_requests_segments_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // Small heads, so that the halves of many calls land in different segments.
    let server = Server::start(dir.path(), &["--max-head-spans", "1500"]);

    let mut mesh = Mesh::new(Scenario::CanaryRegression, 5);
    let traces: Vec<GeneratedTrace> = (0..600).map(|i| mesh.trace(T0 + i * 50_000_000)).collect();
    let num_spans: usize = traces.iter().map(GeneratedTrace::num_spans).sum();
    send(&server.grpc, scattered_requests(&traces, 7)).await;

    // One server span whose caller never arrives must be counted, not dropped.
    let mut orphan = traces[0]
        .spans()
        .find(|(_, s)| s.kind == 2 && !s.parent_span_id.is_empty())
        .map(|(r, s)| (r.clone(), s.clone()))
        .unwrap();
    orphan.1.span_id = vec![9, 9, 9, 9, 9, 9, 9, 9];
    orphan.1.parent_span_id = vec![7, 7, 7, 7, 7, 7, 7, 7];
    orphan.1.trace_id = vec![3; 16];
    send(
        &server.grpc,
        vec![ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(orphan.0),
                scope_spans: vec![ScopeSpans {
                    spans: vec![orphan.1],
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        }],
    )
    .await;

    let range = range_query(T0 - 1_000_000_000, T0 + 60_000_000_000);
    let by_service = server.get(&format!("/api/v1/graph?{range}"));
    assert_graph_matches(&by_service, &mut truth_of(&traces, service_of));
    assert_eq!(
        by_service["unpaired"]["callees"], 1,
        "{}",
        by_service["unpaired"]
    );
    assert_eq!(by_service["unpaired"]["callers"], 0);

    // Grouped by version, the canary's traffic is its own node.
    let by_version = server.get(&format!("/api/v1/graph?{range}&by=version"));
    let version_of = |r: &Resource| {
        let service = service_of(r);
        match string_attr(&r.attributes, "service.version") {
            Some(version) => format!("{service}@{version}"),
            None => service,
        }
    };
    assert_graph_matches(&by_version, &mut truth_of(&traces, version_of));
    let ids: Vec<&str> = by_version["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"reviews@v1") && ids.contains(&"reviews@v2"),
        "{ids:?}"
    );

    let by_pod = server.get(&format!("/api/v1/graph?{range}&by=pod"));
    let pod_of = |r: &Resource| {
        string_attr(&r.attributes, "k8s.pod.name")
            .unwrap()
            .to_string()
    };
    assert_graph_matches(&by_pod, &mut truth_of(&traces, pod_of));

    // Jaeger's dependencies come from the same computation.
    let end_ms = (T0 + 60_000_000_000) / 1_000_000;
    let dependencies = server.get(&format!("/api/dependencies?endTs={end_ms}&lookback=120000"));
    let links = dependencies["data"].as_array().unwrap();
    assert_eq!(links.len(), by_service["edges"].as_array().unwrap().len());
    for link in links {
        let edge = by_service["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["source"] == link["parent"] && e["target"] == link["child"])
            .unwrap();
        assert_eq!(edge["calls"], link["callCount"]);
    }
    let total_calls: u64 = by_service["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["calls"].as_u64().unwrap())
        .sum();
    assert!(
        total_calls > num_spans as u64 / 3,
        "{total_calls} calls from {num_spans} spans"
    );

    // A clean restart and a crash both give the same answer.
    let dir_path = server.stop("-TERM");
    let server = Server::start(&dir_path, &["--max-head-spans", "1500"]);
    assert_eq!(
        server.get(&format!("/api/v1/graph?{range}&by=pod")),
        by_pod,
        "after SIGTERM restart"
    );
    let dir_path = server.stop("-9");
    let server = Server::start(&dir_path, &["--max-head-spans", "1500"]);
    assert_eq!(
        server.get(&format!("/api/v1/graph?{range}&by=pod")),
        by_pod,
        "after kill -9 restart"
    );
    assert_eq!(server.get(&format!("/api/v1/graph?{range}")), by_service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demarcation_ranks_the_injected_origin_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let minute = 60_000_000_000u64;

    // Ten healthy minutes, then five minutes of each fault in its own window.
    let mut healthy = Mesh::new(Scenario::Steady, 1);
    let mut baseline: Vec<GeneratedTrace> = (0..1500)
        .map(|i| healthy.trace(T0 + i * 400_000_000))
        .collect();
    let mut burst = Mesh::new(Scenario::ErrorBurst, 2);
    let burst_start = T0 + 10 * minute;
    let burst_traces: Vec<GeneratedTrace> = (0..750)
        .map(|i| burst.trace(burst_start + i * 400_000_000))
        .collect();
    let mut slow = Mesh::new(Scenario::SlowDependency, 3);
    let slow_start = T0 + 15 * minute;
    let mut slow_baseline: Vec<GeneratedTrace> = (0..750)
        .map(|i| healthy.trace(slow_start - 5 * minute + i * 400_000_000 + 1))
        .collect();
    let slow_traces: Vec<GeneratedTrace> = (0..750)
        .map(|i| slow.trace(slow_start + i * 400_000_000))
        .collect();
    baseline.append(&mut slow_baseline);
    for traces in [&baseline, &burst_traces, &slow_traces] {
        let requests: Vec<_> = traces.chunks(50).map(tracegate::sim::to_request).collect();
        send(&server.grpc, requests).await;
    }

    let errors = server.get(&format!(
        "/api/v1/demarcation?{}",
        range_query(burst_start, burst_start + 5 * minute - 1)
    ));
    let first_error = errors["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "error")
        .expect("an error suspect");
    assert_eq!(first_error["pod"], FAILING_POD, "{first_error}");
    assert_eq!(first_error["level"], "pod", "{first_error}");
    assert!(
        !first_error["exemplar_trace_ids"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let latency = server.get(&format!(
        "/api/v1/demarcation?{}",
        range_query(slow_start, slow_start + 5 * minute - 1)
    ));
    let first = &latency["suspects"][0];
    assert_eq!(first["kind"], "latency", "{latency}");
    assert_eq!(first["edge"]["source"], "productcatalog", "{first}");
    assert_eq!(first["edge"]["target"], "catalog", "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_external_call_settles_after_traffic_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let attribute = |key: &str, value: &str| opentelemetry_proto::tonic::common::v1::KeyValue {
        key: key.into(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(Any::StringValue(value.into())),
        }),
        ..Default::default()
    };
    let call = Span {
        trace_id: vec![0x5e; 16],
        span_id: vec![0x5e; 8],
        name: "POST /charges".into(),
        kind: 3,
        start_time_unix_nano: now - 2_000_000,
        end_time_unix_nano: now - 1_000_000,
        attributes: vec![attribute("server.address", "api.payments.example")],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", "checkout")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![call],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    send(&server.grpc, vec![request]).await;

    // At once: a tentative edge, waiting for a callee that never comes.
    let graph = server.get("/api/v1/graph");
    assert_eq!(graph["tentative_calls"], 1, "{graph}");
    // No more traffic: the server's own timer settles it once the 30 s window ends.
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = loop {
        let graph = server.get("/api/v1/graph");
        if graph["tentative_calls"] == 0 {
            break graph;
        }
        assert!(
            Instant::now() < deadline,
            "still pending after 60 s: {graph}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let edges = settled["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{settled}");
    assert_eq!(edges[0]["source"], "checkout");
    assert_eq!(edges[0]["target"], "api.payments.example");
    assert_eq!(edges[0]["calls"], 1);
    assert_eq!(settled["resolution_seconds"], 10);
    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("tracegate_graph_pending_spans 0"),
        "{metrics}"
    );
}

#[test]
fn the_web_page_is_served_at_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut response = ureq::get(&server.url("/")).call().expect("GET / succeeds");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.body_mut().read_to_string().unwrap();
    // The page reads the graph and the outlier monitor from the API it links to.
    for reference in [
        "/api/v1/graph?by=",
        "/api/v1/outliers/live",
        "/api/openapi.yaml",
    ] {
        assert!(page.contains(reference), "the page uses {reference}");
    }
    for path in ["/api/v1/graph?by=service", "/api/v1/outliers/live"] {
        assert_eq!(get_status(&server.url(path)), 200, "{path}");
    }
    // A mistyped path gets a 404 in the shape of the API it was aimed at.
    let error_body = |path: &str| -> Value {
        ureq::get(&server.url(path))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    };
    let native = error_body("/api/v1/grpah");
    let message = native["error"].as_str().unwrap_or_default();
    assert!(message.contains("/api/v1/grpah"), "{native}");
    assert_eq!(get_status(&server.url("/api/v1/grpah")), 404);
    let jaeger = error_body("/api/nothing");
    assert_eq!(jaeger["errors"][0]["code"], 404, "{jaeger}");
}
