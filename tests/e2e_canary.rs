//! End to end: the canary gate and outlier endpoints against a real `tracegate serve`, fed
//! by `tracegate loadgen` over OTLP/gRPC with the simulated mesh's scenarios.
//!
//! ```text
//! tracegate loadgen --scenario ... ──OTLP/gRPC──► tracegate serve (port 0, temp dir)
//! test ──► POST /api/v1/canary/analyze, GET /api/v1/canary/verdict,
//!          POST /api/v1/canary/flagger, GET /api/v1/outliers
//! ```
//!
//! Loadgen runs with a fixed seed and trace count, as fast as the collector acknowledges,
//! so each test sees the same traffic every run. Live windows are asked with `settle=0s`:
//! the traffic is seconds old when the tests ask, and the default 10 s lag would hide it.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};
use support::{TestServer, get, get_json, post};

/// The pod that fails a third of its calls in the `error-burst` scenario.
const FAILING_POD: &str = "cart-7d9f8b6c5-1";

/// Sends `traces` traces of `scenario` and returns loadgen's JSON report.
fn loadgen(server: &TestServer, scenario: &str, traces: u64, seed: u64) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_tracegate"))
        .args(["loadgen", "--endpoint", &server.otlp_grpc_addr()])
        .args(["--scenario", scenario, "--rate", "0", "--duration", "50s"])
        .args([
            "--max-traces",
            &traces.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--quiet", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tracegate loadgen");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadgen failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("loadgen prints a JSON report");
    assert_eq!(report["traces"], traces, "loadgen stopped early: {report}");
    assert_eq!(report["spans_rejected"], 0, "{report}");
    assert_eq!(report["spans"], report["spans_acknowledged"], "{report}");
    report
}

fn post_json(server: &TestServer, path: &str, body: &Value) -> support::Reply {
    post(
        &server.url(path),
        "application/json",
        None,
        body.to_string().as_bytes(),
    )
}

fn analyze(server: &TestServer, baseline: Value, canary: Value) -> Value {
    let body = json!({"service": "reviews", "baseline": baseline, "canary": canary});
    let reply = post_json(server, "/api/v1/canary/analyze", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = reply.json();
    assert_answer_shape(&answer);
    answer
}

fn verdict_url(server: &TestServer) -> String {
    server.url(
        "/api/v1/canary/verdict?service=reviews&baseline_version=v1&canary_version=v2\
         &window=5m&settle=0s",
    )
}

fn flagger_body(checksum: &str) -> Value {
    json!({
        "name": "reviews",
        "namespace": "shop",
        "phase": "Progressing",
        "checksum": checksum,
        "metadata": {
            "service": "reviews",
            "baseline_version": "v1",
            "canary_version": "v2",
            "window": "5m",
            "settle": "0s",
        },
    })
}

/// The contract's fields, with their JSON types.
fn assert_answer_shape(answer: &Value) {
    let verdict = answer["verdict"].as_str().expect("verdict is a string");
    assert!(
        ["pass", "fail", "inconclusive"].contains(&verdict),
        "{verdict}"
    );
    let score = answer["score"].as_u64().expect("score is an integer");
    assert!(score <= 100, "{score}");
    assert!(
        answer["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{answer}"
    );
    let checks = answer["checks"].as_array().expect("checks is an array");
    for check in checks {
        assert!(check["edge"]["source"].is_string(), "{check}");
        assert!(check["edge"]["target"].is_string(), "{check}");
        assert!(check["operation"].is_string(), "{check}");
        let metric = check["metric"].as_str().expect("metric is a string");
        assert!(
            ["error_rate", "latency", "outlier"].contains(&metric),
            "{check}"
        );
        assert!(check["baseline"]["requests"].is_u64(), "{check}");
        assert!(check["canary"]["requests"].is_u64(), "{check}");
        let result = check["result"].as_str().expect("result is a string");
        assert!(
            ["pass", "fail", "inconclusive"].contains(&result),
            "{check}"
        );
        assert!(check["reason"].is_string(), "{check}");
    }
    let evidence = &answer["evidence"];
    let exemplars = evidence["exemplar_trace_ids"]
        .as_array()
        .expect("exemplar ids");
    for id in exemplars {
        let id = id.as_str().expect("exemplar ids are strings");
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }
    assert!(evidence["slow_exemplar_trace_ids"].is_array(), "{evidence}");
    assert!(evidence["suspects"].is_array(), "{evidence}");
    assert!(evidence["outliers"].is_array(), "{evidence}");
    for side in ["baseline", "canary"] {
        assert!(evidence[side]["requests"].is_u64(), "{evidence}");
        assert!(evidence[side]["pods"].is_array(), "{evidence}");
    }
    assert!(evidence["start_unix_nano"].is_i64(), "{evidence}");
    assert!(evidence["end_unix_nano"].is_i64(), "{evidence}");
}

fn checks_of<'a>(answer: &'a Value, source: &str, target: &str, metric: &str) -> Vec<&'a Value> {
    answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["edge"]["source"] == source && c["edge"]["target"] == target && c["metric"] == metric
        })
        .collect()
}

fn rate_line(answer: &Value) -> String {
    let side = |name: &str| {
        let side = &answer["evidence"][name];
        format!(
            "{} {} requests, {:.2}% errors",
            name,
            side["requests"],
            100.0 * side["error_rate"].as_f64().unwrap_or(f64::NAN)
        )
    };
    format!(
        "verdict {} score {}: {}; {}",
        answer["verdict"],
        answer["score"],
        side("baseline"),
        side("canary")
    )
}

#[test]
fn a_regressed_canary_fails_with_evidence_naming_it() {
    let server = TestServer::start();
    loadgen(&server, "canary-regression", 4000, 7);

    let answer = analyze(&server, json!({"version": "v1"}), json!({"version": "v2"}));
    eprintln!("canary-regression, by version: {}", rate_line(&answer));
    assert_eq!(answer["verdict"], "fail", "{answer:#}");

    // The canary's own calls regressed: errors on the edge into reviews fail.
    let incoming = checks_of(&answer, "frontend", "reviews", "error_rate");
    assert_eq!(incoming.len(), 1, "{answer:#}");
    assert_eq!(incoming[0]["result"], "fail", "{:#}", incoming[0]);
    let canary_rate = incoming[0]["canary"]["error_rate"].as_f64().unwrap();
    let baseline_rate = incoming[0]["baseline"]["error_rate"].as_f64().unwrap();
    eprintln!("frontend->reviews error rate: {}", incoming[0]["reason"]);
    assert_eq!(
        incoming[0]["statistic"]["method"], "blockwise_exact_and_totals_mixture",
        "the paired calls carry their outcomes: {:#}",
        incoming[0]
    );
    assert!(
        canary_rate > 0.04 && baseline_rate < 0.02,
        "{:#}",
        incoming[0]
    );
    let latency = checks_of(&answer, "frontend", "reviews", "latency");
    eprintln!("frontend->reviews latency: {}", latency[0]["reason"]);

    // ratings is healthy for both sides: the canary's calls to it do not fail.
    let outgoing = checks_of(&answer, "reviews", "ratings", "error_rate");
    assert_eq!(outgoing.len(), 1, "{answer:#}");
    assert_ne!(outgoing[0]["result"], "fail", "{:#}", outgoing[0]);

    // Evidence: where the regression starts, and failing canary traces.
    let start = &answer["evidence"]["regression_start"];
    assert_eq!(start["service"], "reviews", "{start:#}");
    assert_eq!(start["version"], "v2", "{start:#}");
    assert_eq!(start["kind"], "error", "{start:#}");
    assert_eq!(
        start["edge"],
        json!({"source": "frontend", "target": "reviews"}),
        "{start:#}"
    );
    let exemplars = answer["evidence"]["exemplar_trace_ids"].as_array().unwrap();
    assert!(!exemplars.is_empty(), "{answer:#}");
    let tree = get_json(&server.url(&format!(
        "/api/v1/traces/{}/tree",
        exemplars[0].as_str().unwrap()
    )));
    let mut stack: Vec<&Value> = tree["roots"].as_array().unwrap().iter().collect();
    let mut failing_canary_span = false;
    while let Some(node) = stack.pop() {
        failing_canary_span |=
            node["service"] == "reviews" && node["version"] == "v2" && node["error"] == true;
        stack.extend(node["children"].as_array().into_iter().flatten());
    }
    assert!(
        failing_canary_span,
        "exemplar has no failing reviews v2 span: {tree:#}"
    );

    // Blue-green style: the same comparison by workload.
    let by_workload = analyze(
        &server,
        json!({"workload": "reviews-v1"}),
        json!({"workload": "reviews-v2"}),
    );
    eprintln!(
        "canary-regression, by workload: {}",
        rate_line(&by_workload)
    );
    assert_eq!(by_workload["verdict"], "fail", "{by_workload:#}");

    // Argo Rollouts' web provider: 200 with the verdict in the body.
    let reply = get(&verdict_url(&server));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let verdict = reply.json();
    assert_answer_shape(&verdict);
    assert_eq!(verdict["verdict"], "fail", "{verdict:#}");
    assert_eq!(verdict["anchored"], false);

    // Flagger's webhook: a failing canary is refused with the reason in the body.
    let reply = post_json(&server, "/api/v1/canary/flagger", &flagger_body("a1b2c3"));
    assert_eq!(reply.status, 412, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["verdict"], "fail");
    assert!(
        body["reason"].as_str().unwrap().contains("failed"),
        "{body:#}"
    );
    assert_eq!(body["canary"], "shop/reviews");
    assert_eq!(body["anchored"], true);
}

#[test]
fn a_healthy_canary_never_fails() {
    let server = TestServer::start();
    loadgen(&server, "steady", 4000, 11);

    let answer = analyze(&server, json!({"version": "v1"}), json!({"version": "v2"}));
    eprintln!("steady, by version: {}", rate_line(&answer));
    assert_ne!(answer["verdict"], "fail", "{answer:#}");
    assert!(
        answer["evidence"]["regression_start"].is_null(),
        "{answer:#}"
    );
    let canary_requests = answer["evidence"]["canary"]["requests"].as_u64().unwrap();
    assert!(
        canary_requests >= 200,
        "too little canary traffic to judge: {canary_requests}"
    );

    let reply = get(&verdict_url(&server));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let verdict = reply.json();
    assert_answer_shape(&verdict);
    assert_ne!(verdict["verdict"], "fail", "{verdict:#}");

    let reply = post_json(&server, "/api/v1/canary/flagger", &flagger_body("d4e5f6"));
    let body = reply.json();
    let expected = match body["verdict"].as_str() {
        Some("pass") => 200,
        Some("inconclusive") => 409,
        other => panic!("unexpected verdict {other:?}: {body:#}"),
    };
    assert_eq!(reply.status, expected, "{body:#}");

    // No pod and no version of a healthy mesh stands out.
    let outliers = get_json(&server.url("/api/v1/outliers"));
    assert_eq!(outliers["outliers"], json!([]), "{outliers:#}");
    assert_eq!(outliers["versions"], json!([]), "{outliers:#}");
}

#[test]
fn a_few_dozen_canary_requests_are_inconclusive() {
    let server = TestServer::start();
    loadgen(&server, "canary-regression", 200, 3);

    let answer = analyze(&server, json!({"version": "v1"}), json!({"version": "v2"}));
    eprintln!("canary-regression, 200 traces: {}", rate_line(&answer));
    let canary_requests = answer["evidence"]["canary"]["requests"].as_u64().unwrap();
    assert!((10..100).contains(&canary_requests), "{canary_requests}");
    assert_eq!(answer["verdict"], "inconclusive", "{answer:#}");
    assert_eq!(answer["score"], 0);
    for check in answer["checks"].as_array().unwrap() {
        assert_eq!(check["result"], "inconclusive", "{check:#}");
        assert!(
            check["reason"]
                .as_str()
                .unwrap()
                .starts_with("too little data"),
            "{check:#}"
        );
    }

    let verdict = get_json(&verdict_url(&server));
    assert_eq!(verdict["verdict"], "inconclusive", "{verdict:#}");

    let reply = post_json(&server, "/api/v1/canary/flagger", &flagger_body("0a0b0c"));
    assert_eq!(reply.status, 409, "{}", reply.text());
    assert_eq!(reply.json()["verdict"], "inconclusive");
}

#[test]
fn error_burst_flags_only_the_failing_cart_pod() {
    let server = TestServer::start();
    loadgen(&server, "error-burst", 1500, 5);

    let answer = get_json(&server.url("/api/v1/outliers"));
    let outliers = answer["outliers"].as_array().expect("outliers is an array");
    for outlier in outliers {
        for field in ["service", "workload", "pod", "version", "detector"] {
            assert!(outlier[field].is_string(), "{field} in {outlier}");
        }
        for field in ["value", "threshold"] {
            assert!(outlier[field].is_f64(), "{field} in {outlier}");
        }
        assert!(outlier["requests"].is_u64(), "{outlier}");
        let detector = outlier["detector"].as_str().unwrap();
        assert!(
            [
                "consecutive_errors",
                "success_rate",
                "failure_percentage",
                "latency"
            ]
            .contains(&detector),
            "{outlier}"
        );
    }
    eprintln!("error-burst outliers: {}", answer["outliers"]);
    let pods: BTreeSet<&str> = outliers
        .iter()
        .map(|o| o["pod"].as_str().unwrap())
        .collect();
    assert_eq!(pods, BTreeSet::from([FAILING_POD]), "{answer:#}");
    let flagged = outliers.iter().find(|o| o["detector"] == "success_rate");
    let flagged = flagged.unwrap_or_else(|| panic!("no success_rate finding: {answer:#}"));
    assert_eq!(
        (&flagged["service"], &flagged["workload"]),
        (&json!("cart"), &json!("cart"))
    );
    let success_rate = flagged["value"].as_f64().unwrap();
    assert!((0.55..0.8).contains(&success_rate), "{flagged}");
    assert!(flagged["requests"].as_u64().unwrap() >= 100, "{flagged}");
    assert_eq!(answer["versions"], json!([]), "{answer:#}");
    assert!(
        answer["pods_analyzed"].as_u64().unwrap() >= 15,
        "{answer:#}"
    );

    // One service only.
    let reviews = get_json(&server.url("/api/v1/outliers?service=reviews"));
    assert_eq!(reviews["outliers"], json!([]), "{reviews:#}");
}

#[test]
fn bad_requests_name_the_field() {
    let server = TestServer::start();
    let analyze_error = |body: Value| {
        let reply = post_json(&server, "/api/v1/canary/analyze", &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        reply.json()["error"]
            .as_str()
            .expect("error is a string")
            .to_owned()
    };
    let v1 = json!({"version": "v1"});
    let v2 = json!({"version": "v2"});
    let cases = [
        (json!({"baseline": v1, "canary": v2}), "service is missing"),
        (
            json!({"service": "reviews", "canary": v2}),
            "baseline is missing",
        ),
        (
            json!({"service": "reviews", "baseline": v1, "canary": {"verison": "v2"}}),
            "canary.verison",
        ),
        (
            json!({"service": "reviews", "baseline": v1, "canary": {}}),
            "canary: empty selector",
        ),
        (
            json!({"service": "reviews", "baseline": v1, "canary": v1}),
            "same selector",
        ),
        (
            json!({"service": "reviews", "baseline": v1, "canary": v2, "start": "soon"}),
            "start",
        ),
        (
            json!({"service": "reviews", "baseline": v1, "canary": v2, "stat": 1}),
            "stat: unknown",
        ),
        (
            json!({"service": "reviews", "baseline": v1, "canary": v2, "config": {"alpha": 2}}),
            "config: invalid judge config: alpha",
        ),
    ];
    for (body, expected) in cases {
        let error = analyze_error(body.clone());
        assert!(
            error.contains(expected),
            "{body}: {error:?} lacks {expected:?}"
        );
    }
    let reply = post(
        &server.url("/api/v1/canary/analyze"),
        "application/json",
        None,
        b"{",
    );
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("invalid JSON")
    );

    let reply = get(&server.url("/api/v1/canary/verdict?service=reviews&baseline_version=v1"));
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("canary_version"),
        "{}",
        reply.text()
    );
    let reply = get(&server.url(
        "/api/v1/canary/verdict?service=reviews&baseline_version=v1&canary_version=v2&window=5",
    ));
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["error"].as_str().unwrap().contains("window"),
        "{}",
        reply.text()
    );

    let mut body = flagger_body("x");
    body["metadata"].as_object_mut().unwrap().remove("service");
    let reply = post_json(&server, "/api/v1/canary/flagger", &body);
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("metadata.service"),
        "{}",
        reply.text()
    );

    // With no traffic at all, the answer is inconclusive, not an error.
    let answer = analyze(&server, json!({"version": "v1"}), json!({"version": "v2"}));
    assert_eq!(answer["verdict"], "inconclusive");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("no call of service reviews")
    );
    let outliers = get_json(&server.url("/api/v1/outliers"));
    assert_eq!(outliers["outliers"], json!([]));
}
