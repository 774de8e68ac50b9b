//! End to end: what the receivers answer to requests they cannot take whole, and that they
//! keep serving afterwards.
//!
//! | request                              | answer                                          |
//! |--------------------------------------|-------------------------------------------------|
//! | garbage protobuf                     | 400, `google.rpc.Status` with a message         |
//! | broken or mistyped JSON              | 400, `{"code": 3, "message": ...}` naming it    |
//! | bad ids among good spans             | 200, partial success counting the bad ones      |
//! | truncated gzip                       | 400                                             |
//! | over `--max-request-bytes`           | 413 (HTTP) / RESOURCE_EXHAUSTED (gRPC), limit   |
//! | unknown content type or encoding     | 415                                             |

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value as Variant,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{Value, json};
use support::{GrpcClient, Reply, TestServer, get, gzip, now_unix_nano, post, unique_trace_id};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// gRPC's INVALID_ARGUMENT, the code of a malformed request.
const INVALID_ARGUMENT: i32 = 3;
/// The request size limit of the servers that test it.
const LIMIT: usize = 64 * 1024;

/// `google.rpc.Status`, the body of an OTLP/HTTP protobuf error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The message of an error answer, checking its body follows the request's format.
fn error_message(reply: &Reply, format: &str) -> String {
    assert!(
        reply.content_type.starts_with(format),
        "error answer in {format} expected, got {:?}: {}",
        reply.content_type,
        reply.text()
    );
    let message = if format == PROTOBUF {
        let status = RpcStatus::decode(reply.body.as_slice())
            .unwrap_or_else(|e| panic!("not a google.rpc.Status ({e}): {:?}", reply.body));
        assert_ne!(status.code, 0, "an error status has a non-zero code");
        status.message
    } else {
        let body = reply.json();
        assert!(
            body["code"].as_i64().is_some_and(|c| c != 0),
            "code in {body}"
        );
        body["message"].as_str().unwrap_or_default().to_string()
    };
    assert!(!message.is_empty(), "error answers carry a message");
    message
}

fn kv(key: &str, value: Variant) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn span(trace_id: &[u8], span_id: &[u8], parent: &[u8], name: &str) -> Span {
    let start = now_unix_nano() - 5_000_000_000;
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.to_vec(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        ..Default::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Variant::StringValue(service.into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "errors".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The span ids of a stored trace, or `None` when the server does not know it.
fn stored_span_ids(server: &TestServer, trace_id: &[u8]) -> Option<Vec<String>> {
    let reply = get(&server.url(&format!("/api/v1/traces/{}", hex::encode(trace_id))));
    if reply.status == 404 {
        return None;
    }
    assert_eq!(reply.status, 200, "{}", reply.text());
    let document = reply.json();
    let mut ids = Vec::new();
    for resource_spans in document["resourceSpans"].as_array().into_iter().flatten() {
        for scope_spans in resource_spans["scopeSpans"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for span in scope_spans["spans"].as_array().into_iter().flatten() {
                ids.push(span["spanId"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    ids.sort();
    Some(ids)
}

/// Asserts the server is healthy and still takes a normal export over OTLP/HTTP JSON.
fn assert_still_serving(server: &TestServer) {
    let health = get(&server.url("/health"));
    assert_eq!(
        health.status,
        200,
        "/health after bad requests: {}",
        health.text()
    );
    let trace_id = unique_trace_id(0x0c);
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "ok"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": hex::encode(trace_id),
            "spanId": "1111111111111111",
            "name": "still serving",
            "kind": 1,
            "startTimeUnixNano": (now_unix_nano() - 1_000_000).to_string(),
            "endTimeUnixNano": now_unix_nano().to_string(),
        }]}],
    }]});
    let reply = post(
        &server.otlp_http_url(),
        JSON,
        None,
        body.to_string().as_bytes(),
    );
    assert_eq!(
        reply.status,
        200,
        "a normal export after bad requests: {}",
        reply.text()
    );
    assert_eq!(
        stored_span_ids(server, &trace_id),
        Some(vec!["1111111111111111".to_string()]),
        "the normal export is stored"
    );
}

#[test]
fn garbage_protobuf_is_a_400_with_a_google_rpc_status() {
    let server = TestServer::start();
    for garbage in [
        &b"\xff\xff\xff\xff not protobuf at all"[..],
        b"\x0a\xff\xff\xff\x0f\x01",
    ] {
        let reply = post(&server.otlp_http_url(), PROTOBUF, None, garbage);
        assert_eq!(reply.status, 400, "garbage {garbage:?}: {}", reply.text());
        let status = RpcStatus::decode(reply.body.as_slice()).expect("a google.rpc.Status");
        assert_eq!(status.code, INVALID_ARGUMENT, "{status:?}");
        let message = error_message(&reply, PROTOBUF);
        assert!(
            message.contains("protobuf"),
            "the message says what failed: {message}"
        );
    }
    assert_still_serving(&server);
}

#[test]
fn broken_json_is_a_400_naming_the_problem() {
    let server = TestServer::start();
    let cases: [(&str, &[&str]); 4] = [
        (r#"{"resourceSpans": ["#, &["JSON", "line 1"]),
        (
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 12}]}]}]}"#,
            &["resourceSpans[0].scopeSpans[0].spans[0].traceId"],
        ),
        (
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "xyz"}]}]}]}"#,
            &["resourceSpans[0].scopeSpans[0].spans[0].spanId", "hex"],
        ),
        (
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_WEIRD"}]}]}]}"#,
            &["resourceSpans[0].scopeSpans[0].spans[0].kind"],
        ),
    ];
    for (body, named) in cases {
        let reply = post(&server.otlp_http_url(), JSON, None, body.as_bytes());
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert_eq!(
            reply.json()["code"],
            json!(INVALID_ARGUMENT),
            "{body}: {}",
            reply.text()
        );
        let message = error_message(&reply, JSON);
        for word in named {
            assert!(
                message.contains(word),
                "{body}: the message should name {word}: {message}"
            );
        }
    }
    assert_still_serving(&server);
}

/// A request mixing two good spans of one trace with five bad ones, and what to expect.
struct BadIds {
    request: ExportTraceServiceRequest,
    good_trace: [u8; 16],
    good_span_ids: Vec<String>,
    num_bad: i64,
}

fn bad_ids_request(service: &str) -> BadIds {
    let good_trace = unique_trace_id(0xb0);
    let root = [0x10, 1, 2, 3, 4, 5, 6, 7];
    let child = [0x20, 1, 2, 3, 4, 5, 6, 7];
    let spans = vec![
        span(&good_trace, &root, &[], "good root"),
        span(
            &good_trace[..15],
            &[0x30, 1, 2, 3, 4, 5, 6, 7],
            &[],
            "trace id of 15 bytes",
        ),
        span(&good_trace, &child, &root, "good child"),
        span(&good_trace, &[], &root, "empty span id"),
        span(
            &[0; 16],
            &[0x40, 1, 2, 3, 4, 5, 6, 7],
            &[],
            "all-zero trace id",
        ),
        span(&good_trace, &[0; 8], &root, "all-zero span id"),
        span(
            &good_trace,
            &[0x50, 1, 2, 3, 4, 5, 6, 7],
            &[1, 2, 3],
            "parent id of 3 bytes",
        ),
    ];
    BadIds {
        request: request(service, spans),
        good_trace,
        good_span_ids: vec![hex::encode(root), hex::encode(child)],
        num_bad: 5,
    }
}

fn assert_rejection_message(message: &str) {
    for word in ["trace_id", "span_id", "16 bytes", "zero", "parent_span_id"] {
        assert!(
            message.contains(word),
            "the rejection message should mention {word}: {message}"
        );
    }
}

fn assert_only_good_spans_stored(server: &TestServer, case: &BadIds) {
    assert_eq!(
        stored_span_ids(server, &case.good_trace),
        Some(case.good_span_ids.clone()),
        "exactly the good spans of the trace are stored"
    );
    let zero = get(&server.url(&format!("/api/v1/traces/{}", "0".repeat(32))));
    assert!(
        matches!(zero.status, 400 | 404),
        "the all-zero trace id stores nothing: {} {}",
        zero.status,
        zero.text()
    );
}

#[test]
fn bad_ids_over_http_json_are_rejected_one_by_one() {
    let server = TestServer::start();
    let case = bad_ids_request("bad-ids-json");
    // Written as OTLP/JSON by hand: hex ids of whatever length the span has.
    let spans: Vec<Value> = case.request.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| {
            json!({
                "traceId": hex::encode(&s.trace_id),
                "spanId": hex::encode(&s.span_id),
                "parentSpanId": hex::encode(&s.parent_span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                "endTimeUnixNano": s.end_time_unix_nano.to_string(),
            })
        })
        .collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "bad-ids-json"}}]},
        "scopeSpans": [{"scope": {"name": "errors"}, "spans": spans}],
    }]});

    let reply = post(
        &server.otlp_http_url(),
        JSON,
        None,
        body.to_string().as_bytes(),
    );
    assert_eq!(
        reply.status,
        200,
        "partial success is a 200: {}",
        reply.text()
    );
    let answer = reply.json();
    let partial = &answer["partialSuccess"];
    let rejected = match &partial["rejectedSpans"] {
        Value::String(text) => text.parse::<i64>().expect("an int64 string"),
        other => other
            .as_i64()
            .unwrap_or_else(|| panic!("rejectedSpans missing: {answer}")),
    };
    assert_eq!(rejected, case.num_bad, "{answer}");
    assert_rejection_message(partial["errorMessage"].as_str().unwrap_or_default());
    assert_only_good_spans_stored(&server, &case);
    assert_still_serving(&server);
}

#[test]
fn bad_ids_over_http_protobuf_are_rejected_one_by_one() {
    let server = TestServer::start();
    let case = bad_ids_request("bad-ids-protobuf");
    let body = case.request.encode_to_vec();
    let reply = post(&server.otlp_http_url(), PROTOBUF, None, &body);
    assert_eq!(
        reply.status,
        200,
        "partial success is a 200: {}",
        reply.text()
    );
    assert!(
        reply.content_type.starts_with(PROTOBUF),
        "{}",
        reply.content_type
    );
    let answer = ExportTraceServiceResponse::decode(reply.body.as_slice()).expect("a response");
    let partial = answer.partial_success.expect("partial_success is set");
    assert_eq!(partial.rejected_spans, case.num_bad, "{partial:?}");
    assert_rejection_message(&partial.error_message);
    assert_only_good_spans_stored(&server, &case);
    assert_still_serving(&server);
}

#[test]
fn bad_ids_over_grpc_are_rejected_one_by_one() {
    let server = TestServer::start();
    let case = bad_ids_request("bad-ids-grpc");
    let mut client = GrpcClient::connect(server.ports().otlp_grpc);
    let answer = client
        .export(case.request.clone())
        .expect("partial success is a success");
    let partial = answer.partial_success.expect("partial_success is set");
    assert_eq!(partial.rejected_spans, case.num_bad, "{partial:?}");
    assert_rejection_message(&partial.error_message);
    assert_only_good_spans_stored(&server, &case);

    // A request of bad spans only is answered the same way and stores nothing.
    let only_bad = request(
        "bad-ids-grpc",
        vec![span(&[0; 16], &[1; 8], &[], "zero trace")],
    );
    let answer = client
        .export(only_bad)
        .expect("partial success is a success");
    assert_eq!(answer.partial_success.map(|p| p.rejected_spans), Some(1));
    assert_still_serving(&server);
}

#[test]
fn truncated_gzip_is_a_400() {
    let server = TestServer::start();
    let case = bad_ids_request("truncated");
    for (format, body) in [
        (PROTOBUF, case.request.encode_to_vec()),
        (JSON, br#"{"resourceSpans": []}"#.repeat(50)),
    ] {
        let compressed = gzip(&body);
        let truncated = &compressed[..compressed.len() / 2];
        let reply = post(&server.otlp_http_url(), format, Some("gzip"), truncated);
        assert_eq!(reply.status, 400, "{format}: {}", reply.text());
        let message = error_message(&reply, format);
        assert!(
            message.contains("gzip"),
            "{format}: the message names gzip: {message}"
        );
    }
    // Not gzip at all, though it says so.
    let reply = post(
        &server.otlp_http_url(),
        JSON,
        Some("gzip"),
        b"{\"resourceSpans\": []}",
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(
        stored_span_ids(&server, &case.good_trace),
        None,
        "nothing stored"
    );
    assert_still_serving(&server);
}

/// A valid request whose protobuf encoding takes about `bytes` bytes.
fn request_of_size(bytes: usize, trace_id: &[u8; 16]) -> ExportTraceServiceRequest {
    let mut big = span(trace_id, &[0x60, 1, 2, 3, 4, 5, 6, 7], &[], "big");
    big.attributes
        .push(kv("payload", Variant::StringValue("x".repeat(bytes))));
    request("sizes", vec![big])
}

#[test]
fn oversized_requests_are_refused_with_the_limit_over_http_and_grpc() {
    let limit = LIMIT.to_string();
    let server = TestServer::start_with_args(&["--max-request-bytes", &limit]);

    // Just under the limit is fine.
    let small_trace = unique_trace_id(0x51);
    let small = request_of_size(LIMIT - 1024, &small_trace).encode_to_vec();
    assert!(small.len() < LIMIT);
    let reply = post(&server.otlp_http_url(), PROTOBUF, None, &small);
    assert_eq!(
        reply.status,
        200,
        "{} bytes under a {LIMIT} limit: {}",
        small.len(),
        reply.text()
    );
    assert!(
        stored_span_ids(&server, &small_trace).is_some(),
        "the small request is stored"
    );

    // Over it: plain protobuf, plain JSON, and gzip that only inflates beyond the limit.
    let big_trace = unique_trace_id(0x52);
    let big = request_of_size(LIMIT + 16 * 1024, &big_trace);
    let big_protobuf = big.encode_to_vec();
    let big_json = {
        let payload = "x".repeat(LIMIT + 16 * 1024);
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": hex::encode(big_trace),
            "spanId": "6001020304050607",
            "name": "big",
            "attributes": [{"key": "payload", "value": {"stringValue": payload}}],
        }]}]}]})
        .to_string()
        .into_bytes()
    };
    let bomb = gzip(&big_protobuf);
    assert!(
        bomb.len() < LIMIT,
        "the compressed body itself is under the limit"
    );
    for (format, encoding, body) in [
        (PROTOBUF, None, &big_protobuf),
        (JSON, None, &big_json),
        (PROTOBUF, Some("gzip"), &bomb),
    ] {
        let reply = post(&server.otlp_http_url(), format, encoding, body);
        assert_eq!(
            reply.status,
            413,
            "{format} {encoding:?} of {} bytes",
            body.len()
        );
        let message = error_message(&reply, format);
        assert!(
            message.contains(&limit),
            "{format} {encoding:?}: the limit in: {message}"
        );
    }

    // gRPC refuses it too, with a resource code and a message.
    let mut client = GrpcClient::connect(server.ports().otlp_grpc);
    let status = client
        .export(big)
        .expect_err("an oversized gRPC export is refused");
    assert!(
        matches!(
            status.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "gRPC code for an oversized request: {status:?}"
    );
    assert!(
        status.message().contains(&limit),
        "the limit in: {:?}",
        status.message()
    );
    assert_eq!(
        stored_span_ids(&server, &big_trace),
        None,
        "nothing of it stored"
    );

    // And a small gRPC export on the same connection still works.
    let ok_trace = unique_trace_id(0x53);
    client
        .export(request_of_size(100, &ok_trace))
        .expect("a small gRPC export");
    assert!(
        stored_span_ids(&server, &ok_trace).is_some(),
        "the small gRPC export is stored"
    );
    assert_still_serving(&server);
}

#[test]
fn unsupported_content_type_or_encoding_is_a_415() {
    let server = TestServer::start();
    let body = br#"{"resourceSpans": []}"#;
    for content_type in ["text/plain", "application/xml", "application/grpc"] {
        let reply = post(&server.otlp_http_url(), content_type, None, body);
        assert_eq!(reply.status, 415, "{content_type}: {}", reply.text());
        let message = error_message(&reply, JSON);
        assert!(
            message.contains(content_type),
            "the message names {content_type}: {message}"
        );
    }
    // No content type at all.
    let reply = support::agent()
        .post(&server.otlp_http_url())
        .send(&body[..]);
    let status = reply
        .expect("POST without a content type")
        .status()
        .as_u16();
    assert_eq!(status, 415, "no content type");

    let reply = post(&server.otlp_http_url(), JSON, Some("br"), body);
    assert_eq!(reply.status, 415, "content encoding br: {}", reply.text());
    let message = error_message(&reply, JSON);
    assert!(
        message.contains("br") && message.contains("gzip"),
        "names the encoding and the one to use: {message}"
    );

    // Parameters on a supported type are fine.
    let reply = post(
        &server.otlp_http_url(),
        "application/json; charset=utf-8",
        None,
        body,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_still_serving(&server);
}

#[test]
fn one_server_takes_every_bad_request_and_keeps_serving() {
    let limit = LIMIT.to_string();
    let server = TestServer::start_with_args(&["--max-request-bytes", &limit]);
    let url = server.otlp_http_url();
    let big = request_of_size(LIMIT * 2, &unique_trace_id(0x54)).encode_to_vec();
    let case = bad_ids_request("all-at-once");
    let truncated = gzip(&case.request.encode_to_vec());
    let truncated = &truncated[..truncated.len() / 3];

    let answers = [
        (400, post(&url, PROTOBUF, None, b"\xff\xff\xff\xffgarbage")),
        (400, post(&url, JSON, None, b"{\"resourceSpans\": [")),
        (400, post(&url, PROTOBUF, Some("gzip"), truncated)),
        (413, post(&url, PROTOBUF, None, &big)),
        (415, post(&url, "text/csv", None, b"a,b")),
        (
            200,
            post(&url, PROTOBUF, None, &case.request.encode_to_vec()),
        ),
    ];
    for (index, (expected, reply)) in answers.iter().enumerate() {
        assert_eq!(reply.status, *expected, "request {index}: {}", reply.text());
    }
    let mut client = GrpcClient::connect(server.ports().otlp_grpc);
    let status = client.export(request_of_size(LIMIT * 2, &unique_trace_id(0x55)));
    assert!(status.is_err(), "oversized gRPC export refused");
    assert_only_good_spans_stored(&server, &case);
    assert_still_serving(&server);
}

#[test]
fn large_requests_under_the_default_limit_are_accepted() {
    // The default limit is 16 MiB: a 5 MB export must go through on every path, with no
    // smaller limit of a framework in between.
    let server = TestServer::start();
    let size = 5 * 1024 * 1024;

    let http_trace = unique_trace_id(0x71);
    let body = request_of_size(size, &http_trace).encode_to_vec();
    let reply = post(&server.otlp_http_url(), PROTOBUF, None, &body);
    assert_eq!(
        reply.status,
        200,
        "{} bytes of protobuf: {}",
        body.len(),
        reply.text()
    );
    assert!(stored_span_ids(&server, &http_trace).is_some());

    let json_trace = unique_trace_id(0x72);
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": hex::encode(json_trace),
        "spanId": "7001020304050607",
        "name": "large",
        "attributes": [{"key": "payload", "value": {"stringValue": "y".repeat(size)}}],
    }]}]}]})
    .to_string();
    let reply = post(
        &server.otlp_http_url(),
        JSON,
        Some("gzip"),
        &gzip(body.as_bytes()),
    );
    assert_eq!(
        reply.status,
        200,
        "{} bytes of gzipped JSON: {}",
        body.len(),
        reply.text()
    );
    assert!(stored_span_ids(&server, &json_trace).is_some());

    let grpc_trace = unique_trace_id(0x73);
    let mut client = GrpcClient::connect(server.ports().otlp_grpc);
    client
        .export(request_of_size(size, &grpc_trace))
        .expect("a 5 MB gRPC export");
    assert!(stored_span_ids(&server, &grpc_trace).is_some());
}
