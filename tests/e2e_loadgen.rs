//! End-to-end: `tracegate loadgen` against a real server, in its replay mode and against
//! the wrong port.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{TestServer, get_json};

fn loadgen(endpoint: &str, flags: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tracegate"))
        .args(["loadgen", "--endpoint", endpoint, "--quiet"])
        .args(flags)
        .env("RUST_LOG", "error")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run tracegate loadgen")
}

#[test]
fn replayed_requests_arrive_as_distinct_traces() {
    let server = TestServer::start();
    let grpc = server.otlp_grpc_addr();
    let http = server.otlp_http_addr();
    // 30 requests of 5 traces from a pool of 2 simulated requests, over each protocol
    // (with different seeds: the same seed sends the same trace ids again).
    for (endpoint, protocol, seed) in [(grpc.as_str(), "grpc", "1"), (http.as_str(), "http", "2")] {
        let output = loadgen(
            endpoint,
            &[
                "--protocol",
                protocol,
                "--replay-pool",
                "2",
                "--batch",
                "5",
                "--max-traces",
                "150",
                "--rate",
                "0",
                "--duration",
                "60s",
                "--seed",
                seed,
                "--json",
            ],
        );
        assert!(
            output.status.success(),
            "loadgen over {protocol} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
        assert_eq!(report["traces"], 150, "{report}");
        assert_eq!(report["spans"], report["spans_acknowledged"], "{report}");
    }

    // Every replayed trace is its own trace, with its spans still linked to their parents.
    let search = get_json(&server.url("/api/traces?service=frontend&limit=1000&lookback=1h"));
    let traces = search["data"].as_array().expect("Jaeger data array");
    assert_eq!(traces.len(), 300, "distinct traces through frontend");
    for trace in traces {
        let spans = trace["spans"].as_array().expect("spans");
        let ids: std::collections::HashSet<&str> =
            spans.iter().filter_map(|s| s["spanID"].as_str()).collect();
        assert_eq!(ids.len(), spans.len(), "span ids repeat within {trace}");
        for span in spans {
            for reference in span["references"].as_array().into_iter().flatten() {
                let parent = reference["spanID"].as_str().expect("parent id");
                assert!(ids.contains(parent), "dangling parent {parent} in {trace}");
            }
        }
    }
}

#[test]
fn the_wrong_port_stops_loadgen_with_a_clear_error() {
    let server = TestServer::start();
    let started = Instant::now();
    // The OTLP/HTTP port, spoken to in gRPC.
    let output = loadgen(
        &server.otlp_http_addr(),
        &["--rate", "0", "--duration", "60s"],
    );
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up only after {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused the first 16 OTLP/gRPC requests")
            && stderr.contains("is --endpoint its OTLP/gRPC port?"),
        "{stderr}"
    );
}
