//! End-to-end: data that is valid OTLP but absurd, and misuse of the data directory,
//! must not break the server or its analyses.

mod support;

use std::process::Command;

use serde_json::json;
use support::{TestServer, get, now_unix_nano, post, unique_trace_id};

#[test]
fn spans_with_extreme_times_do_not_break_trees_or_analyses() {
    let server = TestServer::start();
    let trace_id = hex::encode(unique_trace_id(0xe7));
    let now = now_unix_nano();
    let start = now - 60_000_000_000;
    // A producer, and a consumer on another pod that starts before it and ends at the
    // largest time OTLP can carry.
    let body = json!({"resourceSpans": [
        {"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "orders"}},
            {"key": "k8s.pod.name", "value": {"stringValue": "orders-0"}}]},
         "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "0101010101010101", "name": "publish", "kind": 4,
            "startTimeUnixNano": start.to_string(),
            "endTimeUnixNano": (start + 1_000_000).to_string(),
            "status": {"code": 2}}]}]},
        {"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "billing"}},
            {"key": "k8s.pod.name", "value": {"stringValue": "billing-0"}}]},
         "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "0202020202020202",
            "parentSpanId": "0101010101010101", "name": "consume", "kind": 5,
            "startTimeUnixNano": (start - 1_000_000_000).to_string(),
            "endTimeUnixNano": u64::MAX.to_string()}]}]}
    ]});
    let reply = post(
        &server.otlp_http_url(),
        "application/json",
        None,
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());

    let tree = get(&server.url(&format!("/api/v1/traces/{trace_id}/tree")));
    assert_eq!(tree.status, 200, "{}", tree.text());
    assert_eq!(tree.json()["num_spans"], 2);
    for path in [
        "/api/v1/demarcation".to_string(),
        "/api/v1/graph".to_string(),
        "/api/v1/outliers".to_string(),
        "/api/traces?service=orders&lookback=3000000h".to_string(),
        format!(
            "/api/v1/demarcation?start={}&end={}",
            i64::MIN + 1,
            i64::MAX
        ),
    ] {
        let reply = get(&server.url(&path));
        assert!(
            reply.status == 200 || reply.status == 400,
            "{path}: {}",
            reply.status
        );
    }
    assert_eq!(get(&server.url("/health")).status, 200);
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let server = TestServer::start();
    let output = Command::new(env!("CARGO_BIN_EXE_tracegate"))
        .args(["serve", "--data-dir"])
        .arg(server.data_dir())
        .args([
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
        ])
        .args(["--http-addr", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run a second server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in use by another tracegate process"),
        "{stderr}"
    );
    assert_eq!(
        get(&server.url("/ready")).status,
        200,
        "the first server keeps serving"
    );
}

/// Sends bytes as they are: a client codec for requests that are not valid protobuf.
#[derive(Default)]
struct RawBytesCodec;

struct RawBytes;

impl tonic::codec::Codec for RawBytesCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let len = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, len).to_vec()))
    }
}

#[test]
fn garbage_over_grpc_is_invalid_argument_and_the_server_keeps_serving() {
    let server = TestServer::start();
    let addr = server.otlp_grpc_addr();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        );
        let garbage = vec![0xff, 0xff, 0xff, 0x07, 0x12, 0x99];
        client
            .unary(tonic::Request::new(garbage), path, RawBytesCodec)
            .await
            .expect_err("garbage is refused")
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("protobuf"),
        "{}",
        status.message()
    );
    assert_eq!(get(&server.url("/health")).status, 200);
}
