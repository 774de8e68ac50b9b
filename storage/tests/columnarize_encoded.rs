//! `columnarize_encoded` against prost decoding plus `columnarize`: on every input it
//! accepts, the batch must be the same to the last buffer byte; on every input prost
//! refuses, it must decline.

use arrow::array::{ArrayData, RecordBatch};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tracegate_storage::{columnarize, columnarize_encoded};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_string()))
}

const KEYS: [&str; 16] = [
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "rpc.system",
    "rpc.service",
    "rpc.grpc.status_code",
    "peer.service",
    "server.address",
    "db.system",
    "db.name",
    "db.namespace",
    "messaging.destination.name",
    "url.scheme",
    "custom.thing",
    "",
    "peer.service",
];

fn random_value(rng: &mut Rng) -> Option<AnyValue> {
    let value = match rng.below(9) {
        0 => return None,
        1 => None,
        2 => Some(Value::BoolValue(rng.chance(50))),
        3 => Some(Value::IntValue(match rng.below(3) {
            0 => 200,
            1 => i64::from(i32::MAX) + 1,
            _ => -5,
        })),
        4 => Some(Value::DoubleValue(1.5)),
        5 => Some(Value::BytesValue(vec![1, 2, 3])),
        6 => Some(Value::StringValue(String::new())),
        _ => Some(Value::StringValue(
            rng.pick(&["GET", "/cart", "payments", "redis", "é"])
                .to_string(),
        )),
    };
    Some(AnyValue { value })
}

fn random_attributes(rng: &mut Rng, max: usize) -> Vec<KeyValue> {
    (0..rng.below(max + 1))
        .map(|_| KeyValue {
            key: rng.pick(&KEYS).to_string(),
            value: random_value(rng),
            key_strindex: if rng.chance(5) { 3 } else { 0 },
        })
        .collect()
}

fn random_span(rng: &mut Rng) -> Span {
    let mut trace_id = vec![0u8; 16];
    trace_id[rng.below(16)] = 1 + rng.below(200) as u8;
    let mut span_id = vec![0u8; 8];
    span_id[rng.below(8)] = 1 + rng.below(200) as u8;
    let parent_span_id = if rng.chance(30) {
        Vec::new()
    } else {
        vec![7; 8]
    };
    let events = (0..usize::from(rng.chance(20)) * rng.below(3))
        .map(|i| Event {
            time_unix_nano: 10 + i as u64,
            name: "exception".to_string(),
            attributes: vec![
                text("exception.type", "Boom"),
                kv(
                    "list",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::IntValue(1)),
                        }],
                    }),
                ),
            ],
            dropped_attributes_count: 1,
        })
        .collect();
    let links = (0..usize::from(rng.chance(10)))
        .map(|_| Link {
            trace_id: vec![3; 16],
            span_id: vec![4; 8],
            trace_state: "a=b".to_string(),
            attributes: random_attributes(rng, 2),
            dropped_attributes_count: 0,
            flags: 0x100,
        })
        .collect();
    Span {
        trace_id,
        span_id,
        trace_state: if rng.chance(10) { "k=v" } else { "" }.to_string(),
        parent_span_id,
        flags: if rng.chance(50) { 0x301 } else { 0 },
        name: rng
            .pick(&["GET /", "SELECT", "grpc.Cart/Get", ""])
            .to_string(),
        kind: rng.below(7) as i32 - 1,
        start_time_unix_nano: 1_767_225_600_000_000_000 + rng.below(1000) as u64,
        end_time_unix_nano: if rng.chance(3) {
            u64::MAX
        } else {
            1_767_225_600_000_100_000
        },
        attributes: random_attributes(rng, 7),
        dropped_attributes_count: rng.below(2) as u32,
        events,
        dropped_events_count: rng.below(2) as u32,
        links,
        dropped_links_count: rng.below(2) as u32,
        status: match rng.below(4) {
            0 => None,
            1 => Some(Status::default()),
            2 => Some(Status {
                code: 2,
                message: "failed".to_string(),
            }),
            _ => Some(Status {
                code: 300,
                message: String::new(),
            }),
        },
    }
}

fn random_request(rng: &mut Rng) -> ExportTraceServiceRequest {
    let resource_spans = (0..1 + rng.below(3))
        .map(|r| ResourceSpans {
            resource: (!rng.chance(10)).then(|| Resource {
                attributes: vec![
                    text("service.name", rng.pick(&["cart", "shop"])),
                    text("k8s.namespace.name", "prod"),
                    text("k8s.deployment.name", "cart"),
                    text("k8s.pod.name", &format!("cart-{r}")),
                    text("service.version", "1.0"),
                ],
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            }),
            scope_spans: (0..rng.below(3))
                .map(|_| ScopeSpans {
                    scope: (!rng.chance(10)).then(|| InstrumentationScope {
                        name: "lib".to_string(),
                        version: "2".to_string(),
                        attributes: random_attributes(rng, 1),
                        dropped_attributes_count: 0,
                    }),
                    spans: (0..rng.below(6)).map(|_| random_span(rng)).collect(),
                    schema_url: if rng.chance(50) { "https://s" } else { "" }.to_string(),
                })
                .collect(),
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// Asserts two arrays hold the same buffers, nulls, children and dictionaries.
fn assert_same_data(a: &ArrayData, b: &ArrayData, column: &str) {
    assert_eq!(a.data_type(), b.data_type(), "{column}");
    assert_eq!(a.len(), b.len(), "{column}");
    assert_eq!(a.offset(), b.offset(), "{column}");
    assert_eq!(a.nulls(), b.nulls(), "{column} nulls");
    assert_eq!(a.buffers().len(), b.buffers().len(), "{column}");
    for (x, y) in a.buffers().iter().zip(b.buffers()) {
        assert_eq!(x.as_slice(), y.as_slice(), "{column} buffer");
    }
    assert_eq!(a.child_data().len(), b.child_data().len(), "{column}");
    for (x, y) in a.child_data().iter().zip(b.child_data()) {
        assert_same_data(x, y, column);
    }
}

fn assert_same_batch(a: &RecordBatch, b: &RecordBatch) {
    assert_eq!(a.schema(), b.schema());
    for (i, field) in a.schema().fields().iter().enumerate() {
        assert_same_data(&a.column(i).to_data(), &b.column(i).to_data(), field.name());
    }
}

/// Checks `bytes` both ways; returns whether the borrowed path took it.
fn check(bytes: &[u8]) -> bool {
    let fast = columnarize_encoded(bytes);
    let Ok(request) = ExportTraceServiceRequest::decode(bytes) else {
        assert!(fast.is_none(), "accepted bytes prost refuses: {bytes:?}");
        return false;
    };
    let slow = columnarize(&request);
    let Some(fast) = fast else {
        return false;
    };
    assert_eq!(
        slow.num_rejected, 0,
        "accepted a request with rejected spans"
    );
    assert_eq!(fast.num_accepted, slow.num_accepted);
    match (&fast.batch, &slow.batch) {
        (Some(a), Some(b)) => assert_same_batch(a, b),
        (None, None) => {}
        _ => panic!("one path made a batch, the other did not"),
    }
    true
}

#[test]
fn same_batch_as_prost_for_generated_requests() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut taken = 0;
    for _ in 0..2_000 {
        let request = random_request(&mut rng);
        let bytes = request.encode_to_vec();
        taken += usize::from(check(&bytes));
    }
    // Most generated requests are valid and have no rejected spans... but random ids
    // are always valid here, so nearly all must take the fast path.
    eprintln!("generated taken {taken}");
    assert!(taken > 1_500, "only {taken} of 2000 took the borrowed path");
}

#[test]
fn mutated_bytes_are_declined_or_read_alike() {
    let mut rng = Rng(42);
    let mut taken = 0;
    for _ in 0..3_000 {
        let mut bytes = random_request(&mut rng).encode_to_vec();
        if bytes.is_empty() {
            continue;
        }
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes[at] = rng.next() as u8,
                2 => bytes.truncate(at),
                _ => bytes.insert(at, rng.next() as u8),
            }
            if bytes.is_empty() {
                break;
            }
        }
        taken += usize::from(check(&bytes));
    }
    eprintln!("mutated taken {taken}");
    assert!(
        taken > 100,
        "only {taken} mutated requests took the borrowed path"
    );
}

/// Hand-written encodings prost accepts but never writes: fields out of order,
/// repeated singular fields, unknown fields, merged messages.
#[test]
fn unusual_encodings_read_like_prost() {
    fn field(number: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }
    let mut rng = Rng(7);
    let span = random_span(&mut rng);
    let mut span_bytes = span.encode_to_vec();
    // A second status (merges), a second name (replaces), an unknown varint field 99,
    // an attribute whose value comes twice (string, then an empty AnyValue).
    span_bytes.extend(field(
        15,
        &Status {
            code: 1,
            message: String::new(),
        }
        .encode_to_vec(),
    ));
    span_bytes.extend(field(5, b"renamed"));
    span_bytes.extend([0x98, 0x06, 0x05]);
    let mut attribute = text("http.route", "/a").encode_to_vec();
    attribute.extend(field(2, &[]));
    span_bytes.extend(field(9, &attribute));
    // An attribute whose value comes as an int then as a string: the string wins.
    let mut attribute = kv("peer.service", Value::IntValue(5)).encode_to_vec();
    attribute.extend(field(
        2,
        &AnyValue {
            value: Some(Value::StringValue("db".into())),
        }
        .encode_to_vec(),
    ));
    span_bytes.extend(field(9, &attribute));

    let scope = InstrumentationScope {
        name: "lib".to_string(),
        ..Default::default()
    };
    // Spans before the scope; two scope fields (they merge); an unknown field.
    let mut scope_spans = field(2, &span_bytes);
    scope_spans.extend(field(1, &scope.encode_to_vec()));
    scope_spans.extend(field(
        1,
        &InstrumentationScope {
            version: "9".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    ));
    scope_spans.extend(field(3, b"https://schema"));
    scope_spans.extend(field(77, b"ignored"));

    let resource = Resource {
        attributes: vec![text("service.name", "cart")],
        ..Default::default()
    };
    // The resource after its scopes, twice (merging attributes).
    let mut resource_spans = field(2, &scope_spans);
    resource_spans.extend(field(1, &resource.encode_to_vec()));
    resource_spans.extend(field(
        1,
        &Resource {
            attributes: vec![text("k8s.pod.name", "p")],
            ..Default::default()
        }
        .encode_to_vec(),
    ));
    resource_spans.extend(field(2, &[]));

    let mut request = field(1, &resource_spans);
    request.extend(field(1, &[]));
    request.extend(field(5, b"unknown"));
    assert!(
        check(&request),
        "the borrowed path declined a valid request"
    );
    assert!(check(&[]), "the borrowed path declined the empty request");
}

#[test]
fn declines_rejected_spans_and_invalid_utf8() {
    let mut rng = Rng(11);
    let mut request = random_request(&mut rng);
    request.resource_spans[0].scope_spans = vec![ScopeSpans {
        spans: vec![Span {
            trace_id: vec![0; 16],
            span_id: vec![1; 8],
            ..Default::default()
        }],
        ..Default::default()
    }];
    assert!(columnarize_encoded(&request.encode_to_vec()).is_none());

    let name_at = |bytes: &[u8]| bytes.windows(5).position(|w| w == b"GET /");
    let mut span = random_span(&mut rng);
    span.name = "GET /".to_string();
    let mut bytes = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let at = name_at(&bytes).unwrap();
    bytes[at] = 0xff;
    assert!(ExportTraceServiceRequest::decode(bytes.as_slice()).is_err());
    assert!(columnarize_encoded(&bytes).is_none());
}
