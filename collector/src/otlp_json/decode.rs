//! Decoding an OTLP/JSON `ExportTraceServiceRequest`: the request and the trace messages.
//!
//! The body is parsed into a `serde_json::Value` first and then taken apart by value, so that
//! strings move into the proto messages instead of being copied. Each object is walked once,
//! matching keys against both spellings of each field, so decoding is linear in the size of
//! the body.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;

use super::decode_common::{key_value, resource, scope};
use super::error::JsonDecodeError;
use super::path::FieldPath;
use super::scalar::{enumeration, hex_bytes, string, uint32, uint64};
use super::shape::{fields, repeated};

/// The names `kind` may be spelled with, for error messages.
const SPAN_KIND_NAMES: &str = "SPAN_KIND_UNSPECIFIED, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, \
                               SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER";

/// The names `status.code` may be spelled with, for error messages.
const STATUS_CODE_NAMES: &str = "STATUS_CODE_UNSET, STATUS_CODE_OK, STATUS_CODE_ERROR";

/// Decodes the body of a `POST /v1/traces` with `Content-Type: application/json`.
///
/// Follows the OTLP/JSON mapping: lowerCamelCase field names (snake_case accepted too),
/// unknown fields ignored, ids in hex, 64-bit integers as numbers or strings, enums as integers
/// or names, `null` as the field's default. Ids are returned as sent, whatever their length:
/// checking them is the caller's job, which can reject single spans through `partial_success`.
///
/// # Errors
///
/// Returns [`JsonDecodeError`] when the body is not JSON, nests deeper than 128 levels, or
/// holds a value that its field cannot take; the message names the field's path, such as
/// `resourceSpans[0].scopeSpans[1].spans[3].traceId`.
pub fn decode_export_request(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonDecodeError> {
    let document: Value =
        serde_json::from_slice(body).map_err(|error| JsonDecodeError::from_parser(&error))?;

    let root = FieldPath::Root;
    let mut request = ExportTraceServiceRequest::default();
    for (key, value) in fields(document, &root)? {
        if matches!(key.as_str(), "resourceSpans" | "resource_spans") {
            let path = root.field("resourceSpans");
            request.resource_spans = repeated(value, &path, resource_spans)?;
        }
    }
    Ok(request)
}

/// Decodes one `ResourceSpans`.
fn resource_spans(value: Value, path: &FieldPath<'_>) -> Result<ResourceSpans, JsonDecodeError> {
    let mut decoded = ResourceSpans::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "resource" => decoded.resource = Some(resource(value, &path.field("resource"))?),
            "scopeSpans" | "scope_spans" => {
                decoded.scope_spans = repeated(value, &path.field("scopeSpans"), scope_spans)?;
            }
            "schemaUrl" | "schema_url" => {
                decoded.schema_url = string(value, &path.field("schemaUrl"))?;
            }
            _ => {}
        }
    }
    Ok(decoded)
}

/// Decodes one `ScopeSpans`.
fn scope_spans(value: Value, path: &FieldPath<'_>) -> Result<ScopeSpans, JsonDecodeError> {
    let mut decoded = ScopeSpans::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "scope" => decoded.scope = Some(scope(value, &path.field("scope"))?),
            "spans" => decoded.spans = repeated(value, &path.field("spans"), span)?,
            "schemaUrl" | "schema_url" => {
                decoded.schema_url = string(value, &path.field("schemaUrl"))?;
            }
            _ => {}
        }
    }
    Ok(decoded)
}

/// Decodes one `Span`.
fn span(value: Value, path: &FieldPath<'_>) -> Result<Span, JsonDecodeError> {
    let mut span = Span::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "traceId" | "trace_id" => span.trace_id = hex_bytes(&value, &path.field("traceId"))?,
            "spanId" | "span_id" => span.span_id = hex_bytes(&value, &path.field("spanId"))?,
            "traceState" | "trace_state" => {
                span.trace_state = string(value, &path.field("traceState"))?;
            }
            "parentSpanId" | "parent_span_id" => {
                span.parent_span_id = hex_bytes(&value, &path.field("parentSpanId"))?;
            }
            "flags" => span.flags = uint32(&value, &path.field("flags"))?,
            "name" => span.name = string(value, &path.field("name"))?,
            "kind" => span.kind = span_kind(&value, &path.field("kind"))?,
            "startTimeUnixNano" | "start_time_unix_nano" => {
                span.start_time_unix_nano = uint64(&value, &path.field("startTimeUnixNano"))?;
            }
            "endTimeUnixNano" | "end_time_unix_nano" => {
                span.end_time_unix_nano = uint64(&value, &path.field("endTimeUnixNano"))?;
            }
            "attributes" => {
                span.attributes = repeated(value, &path.field("attributes"), key_value)?;
            }
            "droppedAttributesCount" | "dropped_attributes_count" => {
                let path = path.field("droppedAttributesCount");
                span.dropped_attributes_count = uint32(&value, &path)?;
            }
            "events" => span.events = repeated(value, &path.field("events"), event)?,
            "droppedEventsCount" | "dropped_events_count" => {
                span.dropped_events_count = uint32(&value, &path.field("droppedEventsCount"))?;
            }
            "links" => span.links = repeated(value, &path.field("links"), link)?,
            "droppedLinksCount" | "dropped_links_count" => {
                span.dropped_links_count = uint32(&value, &path.field("droppedLinksCount"))?;
            }
            "status" => span.status = Some(status(value, &path.field("status"))?),
            _ => {}
        }
    }
    Ok(span)
}

/// Decodes one `Span.Event`.
fn event(value: Value, path: &FieldPath<'_>) -> Result<Event, JsonDecodeError> {
    let mut event = Event::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "timeUnixNano" | "time_unix_nano" => {
                event.time_unix_nano = uint64(&value, &path.field("timeUnixNano"))?;
            }
            "name" => event.name = string(value, &path.field("name"))?,
            "attributes" => {
                event.attributes = repeated(value, &path.field("attributes"), key_value)?;
            }
            "droppedAttributesCount" | "dropped_attributes_count" => {
                let path = path.field("droppedAttributesCount");
                event.dropped_attributes_count = uint32(&value, &path)?;
            }
            _ => {}
        }
    }
    Ok(event)
}

/// Decodes one `Span.Link`.
fn link(value: Value, path: &FieldPath<'_>) -> Result<Link, JsonDecodeError> {
    let mut link = Link::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "traceId" | "trace_id" => link.trace_id = hex_bytes(&value, &path.field("traceId"))?,
            "spanId" | "span_id" => link.span_id = hex_bytes(&value, &path.field("spanId"))?,
            "traceState" | "trace_state" => {
                link.trace_state = string(value, &path.field("traceState"))?;
            }
            "attributes" => {
                link.attributes = repeated(value, &path.field("attributes"), key_value)?;
            }
            "droppedAttributesCount" | "dropped_attributes_count" => {
                let path = path.field("droppedAttributesCount");
                link.dropped_attributes_count = uint32(&value, &path)?;
            }
            "flags" => link.flags = uint32(&value, &path.field("flags"))?,
            _ => {}
        }
    }
    Ok(link)
}

/// Decodes a span's `Status`.
fn status(value: Value, path: &FieldPath<'_>) -> Result<Status, JsonDecodeError> {
    let mut status = Status::default();
    for (key, value) in fields(value, path)? {
        match key.as_str() {
            "message" => status.message = string(value, &path.field("message"))?,
            "code" => status.code = status_code(&value, &path.field("code"))?,
            _ => {}
        }
    }
    Ok(status)
}

/// A `kind` as its number, or as a `SPAN_KIND_*` name.
fn span_kind(value: &Value, path: &FieldPath<'_>) -> Result<i32, JsonDecodeError> {
    let from_name = |name: &str| SpanKind::from_str_name(name).map(|kind| kind as i32);
    enumeration(value, path, from_name, SPAN_KIND_NAMES)
}

/// A `status.code` as its number, or as a `STATUS_CODE_*` name.
fn status_code(value: &Value, path: &FieldPath<'_>) -> Result<i32, JsonDecodeError> {
    let from_name = |name: &str| StatusCode::from_str_name(name).map(|code| code as i32);
    enumeration(value, path, from_name, STATUS_CODE_NAMES)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Variant;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    use super::decode_export_request;
    use crate::otlp_json::error::JsonDecodeError;

    fn decode_error(body: &str) -> String {
        match decode_export_request(body.as_bytes()) {
            Ok(request) => panic!("expected an error, decoded {request:?}"),
            Err(error) => error.to_string(),
        }
    }

    /// Wraps one span's JSON in a request, at `resourceSpans[0].scopeSpans[0].spans[0]`.
    fn request_with_span(span: &str) -> String {
        format!(r#"{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{span}]}}]}}]}}"#)
    }

    fn only_span(body: &str) -> Span {
        let mut request = decode_export_request(body.as_bytes()).unwrap();
        request
            .resource_spans
            .remove(0)
            .scope_spans
            .remove(0)
            .spans
            .remove(0)
    }

    fn string_attribute(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Variant::StringValue(value.into())),
            }),
            key_strindex: 0,
        }
    }

    #[test]
    fn decodes_a_request_in_the_shape_the_specification_shows() {
        let body = r#"{
          "resourceSpans": [{
            "resource": {"attributes": [
              {"key": "service.name", "value": {"stringValue": "checkout"}}
            ]},
            "scopeSpans": [{
              "scope": {"name": "checkout.tracer", "version": "2.1.0",
                        "attributes": [{"key": "lib", "value": {"stringValue": "otel"}}]},
              "spans": [{
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "spanId": "EEE19B7EC3C1B174",
                "parentSpanId": "EEE19B7EC3C1B173",
                "name": "POST /cart",
                "startTimeUnixNano": "1544712660000000000",
                "endTimeUnixNano": 1544712661000000000,
                "kind": 2,
                "attributes": [{"key": "http.status", "value": {"intValue": "200"}}],
                "status": {}
              }]
            }]
          }]
        }"#;

        let request = decode_export_request(body.as_bytes()).unwrap();

        let span = Span {
            trace_id: hex::decode("5b8efff798038103d269b633813fc60c").unwrap(),
            span_id: hex::decode("eee19b7ec3c1b174").unwrap(),
            parent_span_id: hex::decode("eee19b7ec3c1b173").unwrap(),
            name: "POST /cart".into(),
            start_time_unix_nano: 1_544_712_660_000_000_000,
            end_time_unix_nano: 1_544_712_661_000_000_000,
            kind: 2,
            attributes: vec![KeyValue {
                key: "http.status".into(),
                value: Some(AnyValue {
                    value: Some(Variant::IntValue(200)),
                }),
                key_strindex: 0,
            }],
            status: Some(Status::default()),
            ..Span::default()
        };
        let expected = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", "checkout")],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "checkout.tracer".into(),
                    version: "2.1.0".into(),
                    attributes: vec![string_attribute("lib", "otel")],
                    dropped_attributes_count: 0,
                }),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        };
        assert_eq!(request.resource_spans, vec![expected]);
    }

    #[test]
    fn accepts_snake_case_names_enum_names_and_integers_as_strings() {
        let body = request_with_span(
            r#"{"trace_id": "01", "span_id": "02", "parent_span_id": "03", "trace_state": "a=b",
                "kind": "SPAN_KIND_CLIENT", "flags": "257",
                "start_time_unix_nano": 5, "end_time_unix_nano": "6",
                "dropped_attributes_count": "1", "dropped_events_count": 2,
                "dropped_links_count": "3",
                "events": [{"time_unix_nano": "7", "name": "e", "dropped_attributes_count": 4}],
                "links": [{"trace_id": "0A", "span_id": "0B", "trace_state": "c=d",
                           "dropped_attributes_count": "5", "flags": 1}],
                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"}}"#,
        );

        let span = only_span(&body);

        let expected = Span {
            trace_id: vec![1],
            span_id: vec![2],
            parent_span_id: vec![3],
            trace_state: "a=b".into(),
            kind: 3,
            flags: 257,
            start_time_unix_nano: 5,
            end_time_unix_nano: 6,
            dropped_attributes_count: 1,
            dropped_events_count: 2,
            dropped_links_count: 3,
            events: vec![Event {
                time_unix_nano: 7,
                name: "e".into(),
                attributes: vec![],
                dropped_attributes_count: 4,
            }],
            links: vec![Link {
                trace_id: vec![10],
                span_id: vec![11],
                trace_state: "c=d".into(),
                attributes: vec![],
                dropped_attributes_count: 5,
                flags: 1,
            }],
            status: Some(Status {
                message: "boom".into(),
                code: 2,
            }),
            ..Span::default()
        };
        assert_eq!(span, expected);
    }

    #[test]
    fn ignores_unknown_fields_at_every_level() {
        let body = r#"{"extra": 1, "resourceSpans": [{"future": {"a": [1]},
            "scopeSpans": [{"spans": [{"name": "n", "newField": "x",
                "status": {"deprecatedCode": 1},
                "attributes": [{"key": "k", "what": 3, "value": {"novelValue": 1}}]}]}]}]}"#;

        let span = only_span(body);

        assert_eq!(span.name, "n");
        assert_eq!(span.status, Some(Status::default()));
        assert_eq!(span.attributes[0].value, Some(AnyValue { value: None }));
    }

    #[test]
    fn null_fields_take_their_defaults() {
        let body = request_with_span(
            r#"{"traceId": null, "name": null, "kind": null, "attributes": null,
                "status": null, "startTimeUnixNano": null}"#,
        );

        assert_eq!(only_span(&body), Span::default());
        let request = decode_export_request(br#"{"resourceSpans": null}"#).unwrap();
        assert!(request.resource_spans.is_empty());
    }

    #[test]
    fn returns_ids_of_any_length_as_sent() {
        let body = request_with_span(r#"{"traceId": "ABCDEF", "spanId": "", "parentSpanId": ""}"#);

        let span = only_span(&body);

        assert_eq!(span.trace_id, vec![0xab, 0xcd, 0xef]);
        assert!(span.span_id.is_empty());
    }

    #[test]
    fn an_empty_object_is_an_empty_request() {
        let request = decode_export_request(b"{}").unwrap();

        assert!(request.resource_spans.is_empty());
    }

    #[test]
    fn broken_json_reports_line_and_column() {
        assert_eq!(
            decode_error("{\n  \"resourceSpans\": [\n}"),
            "invalid JSON at line 3 column 1: expected value"
        );
        assert_eq!(
            decode_error(""),
            "invalid JSON at line 1 column 0: EOF while parsing a value"
        );
        assert!(decode_error("{} trailing").starts_with("invalid JSON at line 1 column 4: "));
    }

    #[test]
    fn invalid_utf8_is_broken_json() {
        let error =
            decode_export_request(b"{\"resourceSpans\": [{\"schemaUrl\": \"\xff\"}]}").unwrap_err();

        assert!(
            matches!(error, JsonDecodeError::InvalidJson { line: 1, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn bad_hex_names_the_full_path() {
        let body = r#"{"resourceSpans": [{"scopeSpans": [
            {"spans": []},
            {"spans": [{}, {}, {}, {"traceId": "5b8efff79803810xd269b633813fc60c"}]}
        ]}]}"#;

        assert_eq!(
            decode_error(body),
            "invalid hex in resourceSpans[0].scopeSpans[1].spans[3].traceId: \
             Invalid character 'x' at position 15"
        );
    }

    #[test]
    fn a_snake_case_field_is_named_in_lower_camel_case_in_errors() {
        let body = request_with_span(r#"{"links": [{"span_id": "0g"}]}"#);

        assert_eq!(
            decode_error(&body),
            "invalid hex in resourceSpans[0].scopeSpans[0].spans[0].links[0].spanId: \
             Invalid character 'g' at position 1"
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let cases = [
            (
                r#"{"kind": {}}"#,
                "kind: expected an integer or enum name, found an object",
            ),
            (r#"{"name": 5}"#, "name: expected a string, found a number"),
            (
                r#"{"attributes": {}}"#,
                "attributes: expected an array, found an object",
            ),
            (
                r#"{"status": []}"#,
                "status: expected an object, found an array",
            ),
            (
                r#"{"events": [null]}"#,
                "events[0]: expected an object, found null",
            ),
            (
                r#"{"attributes": [{"key": "k", "value": {"boolValue": "yes"}}]}"#,
                "attributes[0].value.boolValue: expected a boolean, found a string",
            ),
        ];
        for (span, message) in cases {
            assert_eq!(
                decode_error(&request_with_span(span)),
                format!("wrong type for resourceSpans[0].scopeSpans[0].spans[0].{message}"),
                "span {span}"
            );
        }
    }

    #[test]
    fn bad_numbers_and_enum_names_name_the_field() {
        let prefix = "resourceSpans[0].scopeSpans[0].spans[0]";
        assert_eq!(
            decode_error(&request_with_span(r#"{"startTimeUnixNano": "-1"}"#)),
            format!(
                "invalid integer in {prefix}.startTimeUnixNano: \"-1\" is not an unsigned \
                 64-bit integer"
            )
        );
        assert_eq!(
            decode_error(&request_with_span(r#"{"status": {"code": "ERROR"}}"#)),
            format!(
                "unknown enum name in {prefix}.status.code: \"ERROR\", expected one of \
                 STATUS_CODE_UNSET, STATUS_CODE_OK, STATUS_CODE_ERROR"
            )
        );
        assert_eq!(
            decode_error(&request_with_span(r#"{"kind": "server"}"#)),
            format!(
                "unknown enum name in {prefix}.kind: \"server\", expected one of \
                 SPAN_KIND_UNSPECIFIED, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT, \
                 SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER"
            )
        );
    }

    #[test]
    fn the_top_level_must_be_an_object() {
        assert_eq!(
            decode_error("[]"),
            "wrong type for the top-level object: expected an object, found an array"
        );
        assert_eq!(
            decode_error(r#"{"resourceSpans": [1]}"#),
            "wrong type for resourceSpans[0]: expected an object, found a number"
        );
    }

    #[test]
    fn absurd_nesting_is_refused_clearly() {
        let depth = 40;
        let mut value = String::from(r#"{"stringValue": "bottom"}"#);
        for _ in 0..depth {
            value = format!(r#"{{"arrayValue": {{"values": [{value}]}}}}"#);
        }
        let body = request_with_span(&format!(
            r#"{{"attributes": [{{"key": "k", "value": {value}}}]}}"#
        ));

        let error = decode_error(&body);

        assert!(
            error.starts_with("too deeply nested JSON at line 1 column "),
            "{error}"
        );
        assert!(
            error.ends_with(": more than 128 levels of arrays and objects"),
            "{error}"
        );
    }
}
