//! Encoding trace requests as canonical OTLP/JSON, the inverse of the decoder.
//!
//! Canonical means what a proto3 JSON printer with the OTLP exceptions writes: lowerCamelCase
//! names, ids in lowercase hex, 64-bit integers as decimal strings, enums as integers, bytes in
//! padded standard base64, non-finite doubles as `"NaN"`, `"Infinity"` and `"-Infinity"`, and
//! fields at their default left out. A span always carries `traceId`, `spanId`, `name`, `kind`,
//! `startTimeUnixNano` and `endTimeUnixNano`, so that readers need not know the defaults.
//!
//! Nothing is lost: decoding the output gives back the same request, with two exceptions that
//! JSON itself imposes. A NaN comes back as the standard NaN, whatever payload bits it had; and
//! an `AnyValue` nested so deep that the JSON exceeds 128 levels (39 levels of arrays inside a
//! span attribute, where protobuf allows about 47) is written, but the decoder refuses to read
//! it back. Doubles come back bit for bit only when serde_json's `float_roundtrip` feature is
//! on; without it, serde_json's faster parser can be one unit in the last place off.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Variant;
use opentelemetry_proto::tonic::common::v1::{AnyValue, EntityRef, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value};

/// Encodes a whole request as an OTLP/JSON document, `{"resourceSpans": [...]}`.
#[must_use]
pub fn encode_export_request(request: &ExportTraceServiceRequest) -> Value {
    encode_resource_spans(&request.resource_spans)
}

/// Encodes resource spans as an OTLP/JSON document, `{"resourceSpans": [...]}`.
///
/// This is the shape of an `ExportTraceServiceRequest` and of OTLP's `TracesData`, so the
/// output can be sent to any OTLP/HTTP receiver or served as a trace by the query API.
#[must_use]
pub fn encode_resource_spans(resource_spans: &[ResourceSpans]) -> Value {
    let mut object = Map::new();
    put_list(
        &mut object,
        "resourceSpans",
        resource_spans,
        resource_spans_value,
    );
    Value::Object(object)
}

/// One `ResourceSpans` as JSON.
fn resource_spans_value(resource_spans: &ResourceSpans) -> Value {
    let mut object = Map::new();
    if let Some(resource) = &resource_spans.resource {
        object.insert("resource".into(), resource_value(resource));
    }
    put_list(
        &mut object,
        "scopeSpans",
        &resource_spans.scope_spans,
        scope_spans_value,
    );
    put_string(&mut object, "schemaUrl", &resource_spans.schema_url);
    Value::Object(object)
}

/// One `ScopeSpans` as JSON.
fn scope_spans_value(scope_spans: &ScopeSpans) -> Value {
    let mut object = Map::new();
    if let Some(scope) = &scope_spans.scope {
        object.insert("scope".into(), scope_value(scope));
    }
    put_list(&mut object, "spans", &scope_spans.spans, span_value);
    put_string(&mut object, "schemaUrl", &scope_spans.schema_url);
    Value::Object(object)
}

/// One `Span` as JSON; its identity and timing fields are written even when empty.
fn span_value(span: &Span) -> Value {
    let mut object = Map::new();
    object.insert("traceId".into(), hex::encode(&span.trace_id).into());
    object.insert("spanId".into(), hex::encode(&span.span_id).into());
    put_string(&mut object, "traceState", &span.trace_state);
    put_hex(&mut object, "parentSpanId", &span.parent_span_id);
    put_u32(&mut object, "flags", span.flags);
    object.insert("name".into(), span.name.clone().into());
    object.insert("kind".into(), span.kind.into());
    object.insert(
        "startTimeUnixNano".into(),
        span.start_time_unix_nano.to_string().into(),
    );
    object.insert(
        "endTimeUnixNano".into(),
        span.end_time_unix_nano.to_string().into(),
    );
    put_list(&mut object, "attributes", &span.attributes, key_value_value);
    put_u32(
        &mut object,
        "droppedAttributesCount",
        span.dropped_attributes_count,
    );
    put_list(&mut object, "events", &span.events, event_value);
    put_u32(&mut object, "droppedEventsCount", span.dropped_events_count);
    put_list(&mut object, "links", &span.links, link_value);
    put_u32(&mut object, "droppedLinksCount", span.dropped_links_count);
    if let Some(status) = &span.status {
        object.insert("status".into(), status_value(status));
    }
    Value::Object(object)
}

/// One `Span.Event` as JSON.
fn event_value(event: &Event) -> Value {
    let mut object = Map::new();
    put_u64(&mut object, "timeUnixNano", event.time_unix_nano);
    put_string(&mut object, "name", &event.name);
    put_list(
        &mut object,
        "attributes",
        &event.attributes,
        key_value_value,
    );
    put_u32(
        &mut object,
        "droppedAttributesCount",
        event.dropped_attributes_count,
    );
    Value::Object(object)
}

/// One `Span.Link` as JSON.
fn link_value(link: &Link) -> Value {
    let mut object = Map::new();
    put_hex(&mut object, "traceId", &link.trace_id);
    put_hex(&mut object, "spanId", &link.span_id);
    put_string(&mut object, "traceState", &link.trace_state);
    put_list(&mut object, "attributes", &link.attributes, key_value_value);
    put_u32(
        &mut object,
        "droppedAttributesCount",
        link.dropped_attributes_count,
    );
    put_u32(&mut object, "flags", link.flags);
    Value::Object(object)
}

/// A span's `Status` as JSON.
fn status_value(status: &Status) -> Value {
    let mut object = Map::new();
    put_string(&mut object, "message", &status.message);
    put_i32(&mut object, "code", status.code);
    Value::Object(object)
}

/// A `Resource` as JSON.
fn resource_value(resource: &Resource) -> Value {
    let mut object = Map::new();
    put_list(
        &mut object,
        "attributes",
        &resource.attributes,
        key_value_value,
    );
    put_u32(
        &mut object,
        "droppedAttributesCount",
        resource.dropped_attributes_count,
    );
    put_list(
        &mut object,
        "entityRefs",
        &resource.entity_refs,
        entity_ref_value,
    );
    Value::Object(object)
}

/// A resource's `EntityRef` as JSON.
fn entity_ref_value(entity: &EntityRef) -> Value {
    let mut object = Map::new();
    put_string(&mut object, "schemaUrl", &entity.schema_url);
    put_string(&mut object, "type", &entity.r#type);
    put_list(&mut object, "idKeys", &entity.id_keys, |key| {
        key.as_str().into()
    });
    put_list(
        &mut object,
        "descriptionKeys",
        &entity.description_keys,
        |key| key.as_str().into(),
    );
    Value::Object(object)
}

/// An `InstrumentationScope` as JSON.
fn scope_value(scope: &InstrumentationScope) -> Value {
    let mut object = Map::new();
    put_string(&mut object, "name", &scope.name);
    put_string(&mut object, "version", &scope.version);
    put_list(
        &mut object,
        "attributes",
        &scope.attributes,
        key_value_value,
    );
    put_u32(
        &mut object,
        "droppedAttributesCount",
        scope.dropped_attributes_count,
    );
    Value::Object(object)
}

/// One attribute as JSON; a missing value is left out, an empty one is written as `{}`.
fn key_value_value(pair: &KeyValue) -> Value {
    let mut object = Map::new();
    put_string(&mut object, "key", &pair.key);
    if let Some(value) = &pair.value {
        object.insert("value".into(), any_value_value(value));
    }
    put_i32(&mut object, "keyStrindex", pair.key_strindex);
    Value::Object(object)
}

/// An `AnyValue` as JSON. The set alternative is written even when it holds its default (such
/// as `{"intValue": "0"}`), since that is what tells it apart from an empty value.
fn any_value_value(value: &AnyValue) -> Value {
    let Some(variant) = &value.value else {
        return Value::Object(Map::new());
    };
    let (name, json) = match variant {
        Variant::StringValue(text) => ("stringValue", Value::from(text.as_str())),
        Variant::BoolValue(flag) => ("boolValue", Value::from(*flag)),
        Variant::IntValue(number) => ("intValue", Value::from(number.to_string())),
        Variant::DoubleValue(number) => ("doubleValue", double_value(*number)),
        Variant::ArrayValue(array) => {
            let mut object = Map::new();
            put_list(&mut object, "values", &array.values, any_value_value);
            ("arrayValue", Value::Object(object))
        }
        Variant::KvlistValue(list) => {
            let mut object = Map::new();
            put_list(&mut object, "values", &list.values, key_value_value);
            ("kvlistValue", Value::Object(object))
        }
        Variant::BytesValue(bytes) => ("bytesValue", Value::from(BASE64.encode(bytes))),
        Variant::StringValueStrindex(index) => ("stringValueStrindex", Value::from(*index)),
    };
    let mut object = Map::new();
    object.insert(name.into(), json);
    Value::Object(object)
}

/// A double as a JSON number, or as the proto3 JSON name of a non-finite value.
fn double_value(number: f64) -> Value {
    if let Some(finite) = serde_json::Number::from_f64(number) {
        return Value::Number(finite);
    }
    let name = if number.is_nan() {
        "NaN"
    } else if number > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    };
    Value::from(name)
}

/// Writes a string field unless it is empty.
fn put_string(object: &mut Map<String, Value>, name: &str, text: &str) {
    if !text.is_empty() {
        object.insert(name.into(), text.into());
    }
}

/// Writes an id in lowercase hex unless it is empty.
fn put_hex(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    if !bytes.is_empty() {
        object.insert(name.into(), hex::encode(bytes).into());
    }
}

/// Writes a 32-bit unsigned field as a number unless it is zero.
fn put_u32(object: &mut Map<String, Value>, name: &str, number: u32) {
    if number != 0 {
        object.insert(name.into(), number.into());
    }
}

/// Writes a 32-bit signed field or enum as a number unless it is zero.
fn put_i32(object: &mut Map<String, Value>, name: &str, number: i32) {
    if number != 0 {
        object.insert(name.into(), number.into());
    }
}

/// Writes a 64-bit field as a decimal string unless it is zero: JSON numbers lose precision
/// above 2^53 in many readers.
fn put_u64(object: &mut Map<String, Value>, name: &str, number: u64) {
    if number != 0 {
        object.insert(name.into(), number.to_string().into());
    }
}

/// Writes a repeated field as an array unless it is empty.
fn put_list<T>(object: &mut Map<String, Value>, name: &str, items: &[T], item: fn(&T) -> Value) {
    if !items.is_empty() {
        object.insert(name.into(), items.iter().map(item).collect());
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Variant;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message as _;
    use rand::SeedableRng as _;
    use rand::rngs::SmallRng;
    use serde_json::json;

    use super::{encode_export_request, encode_resource_spans};
    use crate::otlp_json::decode::decode_export_request;
    use crate::otlp_json::random_request::random_request;

    /// Encodes, prints to bytes as a server would, and decodes again.
    fn round_trip(request: &ExportTraceServiceRequest) -> ExportTraceServiceRequest {
        let body = serde_json::to_vec(&encode_export_request(request)).unwrap();
        decode_export_request(&body).unwrap()
    }

    /// Compares through the protobuf encoding, which tells `-0.0` from `0.0` and sees a NaN as
    /// equal to itself, where `PartialEq` does neither.
    fn assert_same(actual: &ExportTraceServiceRequest, expected: &ExportTraceServiceRequest) {
        if actual.encode_to_vec() != expected.encode_to_vec() {
            panic!("round trip changed the request\nexpected {expected:#?}\nactual {actual:#?}");
        }
    }

    fn value(variant: Variant) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(variant),
        })
    }

    fn attribute(key: &str, variant: Variant) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value(variant),
            key_strindex: 0,
        }
    }

    fn rich_request() -> ExportTraceServiceRequest {
        let nested = Variant::KvlistValue(KeyValueList {
            values: vec![
                attribute(
                    "list",
                    Variant::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(Variant::IntValue(i64::MIN)),
                            },
                            AnyValue { value: None },
                            AnyValue {
                                value: Some(Variant::ArrayValue(ArrayValue::default())),
                            },
                        ],
                    }),
                ),
                KeyValue {
                    key: "unset".into(),
                    value: None,
                    key_strindex: 7,
                },
                attribute("empty", Variant::KvlistValue(KeyValueList::default())),
            ],
        });
        let span = Span {
            trace_id: (1..=16).collect(),
            span_id: (0xf0..=0xf7).collect(),
            trace_state: "vendor=1,other=2".into(),
            parent_span_id: vec![0xab; 8],
            flags: 0x301,
            name: "GET /api/cart".into(),
            kind: 3,
            start_time_unix_nano: 1_700_000_000_123_456_789,
            end_time_unix_nano: u64::MAX,
            attributes: vec![
                attribute("s", Variant::StringValue("näme \"q\"\n".into())),
                attribute("b", Variant::BoolValue(true)),
                attribute("i", Variant::IntValue(i64::MAX)),
                attribute("zero", Variant::IntValue(0)),
                attribute("d", Variant::DoubleValue(0.1)),
                attribute("nan", Variant::DoubleValue(f64::NAN)),
                attribute("inf", Variant::DoubleValue(f64::INFINITY)),
                attribute("-inf", Variant::DoubleValue(f64::NEG_INFINITY)),
                attribute("bytes", Variant::BytesValue(vec![0xfb, 0xff, 0x00])),
                attribute("strindex", Variant::StringValueStrindex(0)),
                attribute("nested", nested),
            ],
            dropped_attributes_count: 1,
            events: vec![
                Event {
                    time_unix_nano: 1_700_000_000_200_000_000,
                    name: "exception".into(),
                    attributes: vec![attribute(
                        "exception.type",
                        Variant::StringValue("E".into()),
                    )],
                    dropped_attributes_count: 2,
                },
                Event::default(),
            ],
            dropped_events_count: 3,
            links: vec![Link {
                trace_id: vec![0x11; 16],
                span_id: vec![0x22; 8],
                trace_state: "k=v".into(),
                attributes: vec![attribute(
                    "link.kind",
                    Variant::StringValue("follows".into()),
                )],
                dropped_attributes_count: 4,
                flags: 0x100,
            }],
            dropped_links_count: 5,
            status: Some(Status {
                message: "upstream failed".into(),
                code: 2,
            }),
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![attribute(
                            "service.name",
                            Variant::StringValue("cart".into()),
                        )],
                        dropped_attributes_count: 6,
                        entity_refs: vec![EntityRef {
                            schema_url: "https://example.com/entity".into(),
                            r#type: "service".into(),
                            id_keys: vec!["service.name".into()],
                            description_keys: vec!["service.version".into()],
                        }],
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "cart.tracer".into(),
                            version: "1.2.3".into(),
                            attributes: vec![attribute("scope.a", Variant::BoolValue(false))],
                            dropped_attributes_count: 7,
                        }),
                        spans: vec![span, Span::default()],
                        schema_url: "https://example.com/scope".into(),
                    }],
                    schema_url: "https://example.com/resource".into(),
                },
                ResourceSpans {
                    resource: Some(Resource::default()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope::default()),
                        spans: vec![],
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                },
                ResourceSpans::default(),
            ],
        }
    }

    #[test]
    fn a_rich_request_survives_the_round_trip() {
        let request = rich_request();

        assert_same(&round_trip(&request), &request);
    }

    #[test]
    fn random_requests_survive_the_round_trip() {
        for seed in 0..300 {
            let request = random_request(&mut SmallRng::seed_from_u64(seed));

            let body = serde_json::to_vec(&encode_export_request(&request)).unwrap();
            let decoded =
                decode_export_request(&body).unwrap_or_else(|error| panic!("seed {seed}: {error}"));

            if decoded.encode_to_vec() != request.encode_to_vec() {
                panic!("seed {seed} changed in the round trip: {request:#?}\n{decoded:#?}");
            }
        }
    }

    #[test]
    fn random_doubles_survive_the_round_trip_bit_for_bit() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let number = f64::from_bits(rand::Rng::random(&mut rng));
            if number.is_nan() {
                continue;
            }
            let request = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![attribute("d", Variant::DoubleValue(number))],
                        ..Resource::default()
                    }),
                    ..ResourceSpans::default()
                }],
            };

            let decoded = round_trip(&request);

            let attributes = &decoded.resource_spans[0]
                .resource
                .as_ref()
                .unwrap()
                .attributes;
            let Some(Variant::DoubleValue(back)) = attributes[0].value.as_ref().unwrap().value
            else {
                panic!("{number:e} did not come back as a double");
            };
            assert_eq!(
                back.to_bits(),
                number.to_bits(),
                "{number:e} came back as {back:e}"
            );
        }
    }

    #[test]
    fn spans_are_written_in_canonical_form() {
        let span = Span {
            trace_id: vec![0xAB; 16],
            span_id: vec![0x0C; 8],
            name: "op".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_001,
            end_time_unix_nano: 1_700_000_000_000_000_002,
            attributes: vec![
                attribute("i", Variant::IntValue(-3)),
                attribute("d", Variant::DoubleValue(2.5)),
                attribute("nan", Variant::DoubleValue(f64::NAN)),
                attribute("bytes", Variant::BytesValue(vec![0xfb, 0xff])),
                attribute("list", Variant::ArrayValue(ArrayValue::default())),
            ],
            events: vec![Event {
                time_unix_nano: 9,
                ..Event::default()
            }],
            status: Some(Status {
                message: String::new(),
                code: 1,
            }),
            ..Span::default()
        };
        let resource_spans = [ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }];

        let encoded = encode_resource_spans(&resource_spans);

        let expected = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "abababababababababababababababab",
            "spanId": "0c0c0c0c0c0c0c0c",
            "name": "op",
            "kind": 2,
            "startTimeUnixNano": "1700000000000000001",
            "endTimeUnixNano": "1700000000000000002",
            "attributes": [
                {"key": "i", "value": {"intValue": "-3"}},
                {"key": "d", "value": {"doubleValue": 2.5}},
                {"key": "nan", "value": {"doubleValue": "NaN"}},
                {"key": "bytes", "value": {"bytesValue": "+/8="}},
                {"key": "list", "value": {"arrayValue": {}}}
            ],
            "events": [{"timeUnixNano": "9"}],
            "status": {"code": 1}
        }]}]}]});
        assert_eq!(encoded, expected);
    }

    #[test]
    fn an_empty_span_keeps_its_identity_and_timing_fields() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default()],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };

        let encoded = encode_export_request(&request);

        let expected = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "", "spanId": "", "name": "", "kind": 0,
            "startTimeUnixNano": "0", "endTimeUnixNano": "0"
        }]}]}]});
        assert_eq!(encoded, expected);
        assert_eq!(
            encode_export_request(&ExportTraceServiceRequest::default()),
            json!({})
        );
    }

    #[test]
    fn present_but_empty_messages_are_written_as_empty_objects() {
        let request = rich_request();

        let encoded = encode_export_request(&request);

        assert_eq!(
            encoded["resourceSpans"][1],
            json!({"resource": {}, "scopeSpans": [{"scope": {}}]})
        );
        assert_eq!(encoded["resourceSpans"][2], json!({}));
    }

    #[test]
    fn values_deeper_than_the_parser_allows_do_not_come_back() {
        // The documented loss: 50 levels of arrays encode, but exceed 128 levels of JSON.
        let mut deep = AnyValue {
            value: Some(Variant::BoolValue(true)),
        };
        for _ in 0..50 {
            deep = AnyValue {
                value: Some(Variant::ArrayValue(ArrayValue { values: vec![deep] })),
            };
        }
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "k".into(),
                        value: Some(deep),
                        key_strindex: 0,
                    }],
                    ..Resource::default()
                }),
                ..ResourceSpans::default()
            }],
        };

        let body = serde_json::to_vec(&encode_export_request(&request)).unwrap();

        let error = decode_export_request(&body).unwrap_err();
        assert!(
            error.to_string().starts_with("too deeply nested JSON"),
            "{error}"
        );
    }
}
