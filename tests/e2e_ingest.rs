//! End to end: spans in over OTLP (the official Python SDK over gRPC and HTTP/protobuf, and
//! hand-written OTLP/JSON, plain and gzip), read back through the native API (lossless
//! OTLP/JSON) and the Jaeger API (trace, search, services, operations), field by field.
//!
//! Every source is brought to one normal form before comparing: a span as a JSON object
//! whose attributes are maps from key to `{"type": ..., "value": ...}` (the form
//! `tests/py/send_spans.py` prints), so that a lost type (an int read back as a string, a
//! double as an int) shows up as a difference.

#![recursion_limit = "256"]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use support::{
    TestServer, get, get_json, gzip, now_unix_nano, post, query_escape, run_python, unique_trace_id,
};

// ---------------------------------------------------------------------------------------------
// The normal form

/// An OTLP/JSON `AnyValue` in the typed normal form; 64-bit integers may be strings or
/// numbers, as the OTLP/JSON mapping allows.
fn typed_any(value: &Value) -> Value {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("AnyValue not an object: {value}"));
    assert!(
        object.len() <= 1,
        "AnyValue with several alternatives: {value}"
    );
    let Some((name, inner)) = object.iter().next() else {
        return json!({"type": "empty"});
    };
    match name.as_str() {
        "stringValue" => json!({"type": "string", "value": inner}),
        "boolValue" => json!({"type": "bool", "value": inner.as_bool().expect("a bool")}),
        "intValue" => json!({"type": "int", "value": int64(inner)}),
        "doubleValue" => json!({"type": "double", "value": double(inner)}),
        "bytesValue" => json!({"type": "bytes", "value": inner}),
        "arrayValue" => {
            let values = inner
                .get("values")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            json!({"type": "array", "values": values.iter().map(typed_any).collect::<Vec<_>>()})
        }
        "kvlistValue" => json!({"type": "kvlist", "values": typed_attributes(inner.get("values"))}),
        other => panic!("unknown AnyValue alternative {other}: {value}"),
    }
}

/// An OTLP/JSON int64: a decimal string or a JSON integer.
fn int64(value: &Value) -> i64 {
    match value {
        Value::String(text) => text
            .parse()
            .unwrap_or_else(|e| panic!("int64 {text:?}: {e}")),
        Value::Number(number) => number.as_i64().unwrap_or_else(|| panic!("int64 {number}")),
        other => panic!("int64 of the wrong JSON type: {other}"),
    }
}

/// An OTLP/JSON uint64 (times), as a decimal string.
fn uint64_text(value: Option<&Value>) -> String {
    match value {
        None => "0".to_string(),
        Some(Value::String(text)) => {
            text.parse::<u64>()
                .unwrap_or_else(|e| panic!("uint64 {text:?}: {e}"));
            text.clone()
        }
        Some(Value::Number(number)) => number
            .as_u64()
            .unwrap_or_else(|| panic!("uint64 {number}"))
            .to_string(),
        Some(other) => panic!("uint64 of the wrong JSON type: {other}"),
    }
}

fn double(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("a finite double, got {value}"))
}

/// An OTLP/JSON attribute list as a map from key to typed value; keys must be unique.
fn typed_attributes(list: Option<&Value>) -> Value {
    let list = list.and_then(Value::as_array).cloned().unwrap_or_default();
    let mut map = Map::new();
    for pair in &list {
        let key = pair["key"]
            .as_str()
            .unwrap_or_else(|| panic!("attribute without key: {pair}"));
        let value = pair
            .get("value")
            .map_or(json!({"type": "empty"}), typed_any);
        assert!(
            map.insert(key.to_string(), value).is_none(),
            "duplicate attribute {key}"
        );
    }
    Value::Object(map)
}

fn text(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn number(value: Option<&Value>) -> i64 {
    value.map_or(0, int64)
}

/// Every span of an OTLP/JSON document (`{"resourceSpans": [...]}`) in the normal form,
/// with its resource and scope.
fn normalize_otlp_json(document: &Value) -> Vec<Value> {
    let mut spans = Vec::new();
    let resource_spans = document["resourceSpans"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for resource_spans in &resource_spans {
        let resource = &resource_spans["resource"];
        let resource = json!({
            "attributes": typed_attributes(resource.get("attributes")),
            "dropped_attributes_count": number(resource.get("droppedAttributesCount")),
            "schema_url": text(resource_spans.get("schemaUrl")),
        });
        let scope_spans = resource_spans["scopeSpans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for scope_spans in &scope_spans {
            let scope = &scope_spans["scope"];
            let scope = json!({
                "name": text(scope.get("name")),
                "version": text(scope.get("version")),
                "attributes": typed_attributes(scope.get("attributes")),
                "dropped_attributes_count": number(scope.get("droppedAttributesCount")),
                "schema_url": text(scope_spans.get("schemaUrl")),
            });
            for span in scope_spans["spans"].as_array().cloned().unwrap_or_default() {
                spans.push(normalize_otlp_span(&span, &resource, &scope));
            }
        }
    }
    spans
}

fn normalize_otlp_span(span: &Value, resource: &Value, scope: &Value) -> Value {
    let events: Vec<Value> = span["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|event| {
            json!({
                "name": text(event.get("name")),
                "time_unix_nano": uint64_text(event.get("timeUnixNano")),
                "attributes": typed_attributes(event.get("attributes")),
                "dropped_attributes_count": number(event.get("droppedAttributesCount")),
            })
        })
        .collect();
    let links: Vec<Value> = span["links"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|link| {
            json!({
                "trace_id": text(link.get("traceId")).to_lowercase(),
                "span_id": text(link.get("spanId")).to_lowercase(),
                "trace_state": text(link.get("traceState")),
                "flags": number(link.get("flags")),
                "attributes": typed_attributes(link.get("attributes")),
                "dropped_attributes_count": number(link.get("droppedAttributesCount")),
            })
        })
        .collect();
    let status = span.get("status").cloned().unwrap_or(json!({}));
    json!({
        "trace_id": text(span.get("traceId")).to_lowercase(),
        "span_id": text(span.get("spanId")).to_lowercase(),
        "parent_span_id": text(span.get("parentSpanId")).to_lowercase(),
        "trace_state": text(span.get("traceState")),
        "name": text(span.get("name")),
        "kind": number(span.get("kind")),
        "flags": number(span.get("flags")),
        "start_time_unix_nano": uint64_text(span.get("startTimeUnixNano")),
        "end_time_unix_nano": uint64_text(span.get("endTimeUnixNano")),
        "attributes": typed_attributes(span.get("attributes")),
        "dropped_attributes_count": number(span.get("droppedAttributesCount")),
        "events": events,
        "dropped_events_count": number(span.get("droppedEventsCount")),
        "links": links,
        "dropped_links_count": number(span.get("droppedLinksCount")),
        "status": {"code": number(status.get("code")), "message": text(status.get("message"))},
        "resource": resource,
        "scope": scope,
    })
}

/// The spans `send_spans.py` reports it sent, in the normal form.
fn normalize_sdk_spans(sent: &Value) -> Vec<Value> {
    let spans = sent["spans"]
        .as_array()
        .expect("send_spans.py prints a span list");
    spans
        .iter()
        .map(|span| {
            let events: Vec<Value> = span["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|event| {
                    json!({
                        "name": event["name"],
                        "time_unix_nano": event["time_unix_nano"].as_u64().unwrap().to_string(),
                        "attributes": event["attributes"],
                        "dropped_attributes_count": 0,
                    })
                })
                .collect();
            let links: Vec<Value> = span["links"]
                .as_array()
                .expect("links")
                .iter()
                .map(|link| {
                    json!({
                        "trace_id": link["trace_id"],
                        "span_id": link["span_id"],
                        "trace_state": "",
                        "flags": link["flags"],
                        "attributes": link["attributes"],
                        "dropped_attributes_count": 0,
                    })
                })
                .collect();
            json!({
                "trace_id": span["trace_id"],
                "span_id": span["span_id"],
                "parent_span_id": span["parent_span_id"].as_str().unwrap_or_default(),
                "trace_state": "",
                "name": span["name"],
                "kind": span["kind_otlp"],
                "flags": span["flags"],
                "start_time_unix_nano": span["start_time_unix_nano"].as_u64().unwrap().to_string(),
                "end_time_unix_nano": span["end_time_unix_nano"].as_u64().unwrap().to_string(),
                "attributes": span["attributes"],
                "dropped_attributes_count": 0,
                "events": events,
                "dropped_events_count": 0,
                "links": links,
                "dropped_links_count": 0,
                "status": {
                    "code": span["status"]["code_otlp"],
                    "message": span["status"]["description"],
                },
                "resource": {
                    "attributes": span["resource"]["attributes"],
                    "dropped_attributes_count": 0,
                    "schema_url": span["resource"]["schema_url"],
                },
                "scope": {
                    "name": span["scope"]["name"],
                    "version": span["scope"]["version"],
                    "attributes": span["scope"]["attributes"],
                    "dropped_attributes_count": 0,
                    "schema_url": span["scope"]["schema_url"],
                },
            })
        })
        .collect()
}

/// Asserts that the spans read back are exactly the spans sent, span by span.
fn assert_same_spans(actual: &[Value], expected: &[Value], context: &str) {
    let by_id = |spans: &[Value]| -> BTreeMap<String, Value> {
        let mut map = BTreeMap::new();
        for span in spans {
            let id = span["span_id"].as_str().unwrap().to_string();
            assert!(
                map.insert(id.clone(), span.clone()).is_none(),
                "{context}: span {id} twice"
            );
        }
        map
    };
    let actual = by_id(actual);
    let expected = by_id(expected);
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{context}: span ids differ"
    );
    for (id, expected) in &expected {
        let name = expected["name"].as_str().unwrap_or_default();
        assert_eq!(
            &actual[id], expected,
            "{context}: span {id} ({name}) differs\n--- actual ---\n{:#}\n--- expected ---\n{:#}",
            actual[id], expected
        );
    }
}

/// Asserts the native API writes canonical OTLP/JSON: 64-bit integers (times and
/// `intValue`) as decimal strings, ids as lowercase hex.
fn assert_canonical_otlp_json(value: &Value, path: &str) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                let here = format!("{path}.{key}");
                match key.as_str() {
                    "intValue" | "startTimeUnixNano" | "endTimeUnixNano" | "timeUnixNano" => {
                        assert!(
                            inner.is_string(),
                            "{here} must be a decimal string: {inner}"
                        );
                    }
                    "traceId" | "spanId" | "parentSpanId" => {
                        let id = inner.as_str().unwrap_or_else(|| panic!("{here}: {inner}"));
                        assert!(
                            id.chars()
                                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
                            "{here} must be lowercase hex: {id}"
                        );
                    }
                    "kind" | "code" => {
                        assert!(inner.is_i64(), "{here} must be an integer enum: {inner}");
                    }
                    _ => assert_canonical_otlp_json(inner, &here),
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                assert_canonical_otlp_json(item, &format!("{path}[{index}]"));
            }
        }
        _ => {}
    }
}

/// The native API's trace, checked for canonical form, in the normal form.
fn native_trace(server: &TestServer, trace_id: &str) -> (Value, Vec<Value>) {
    let document = get_json(&server.url(&format!("/api/v1/traces/{trace_id}")));
    assert_canonical_otlp_json(&document, "");
    let spans = normalize_otlp_json(&document);
    (document, spans)
}

fn group_by_trace(spans: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut traces: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for span in spans {
        let trace_id = span["trace_id"].as_str().unwrap().to_string();
        traces.entry(trace_id).or_default().push(span.clone());
    }
    traces
}

// ---------------------------------------------------------------------------------------------
// The Python SDK

/// Sends the known traces with the Python SDK and returns them in the normal form.
fn send_with_sdk(server: &TestServer, protocol: &str, service: &str) -> Vec<Value> {
    let endpoint = match protocol {
        "grpc" => server.otlp_grpc_addr(),
        _ => server.otlp_http_url(),
    };
    let sent = run_python(
        "send_spans.py",
        &[
            "--protocol",
            protocol,
            "--endpoint",
            &endpoint,
            "--service",
            service,
        ],
    );
    let spans = normalize_sdk_spans(&sent);
    assert_eq!(spans.len(), 6, "send_spans.py sends 6 spans: {sent:#}");
    spans
}

fn assert_sdk_spans_read_back_losslessly(protocol: &str) {
    let server = TestServer::start();
    let sent = send_with_sdk(&server, protocol, &format!("py-{protocol}"));
    let traces = group_by_trace(&sent);
    assert_eq!(traces.len(), 2, "two traces sent");

    for (trace_id, expected) in &traces {
        let (document, actual) = native_trace(&server, trace_id);
        assert_same_spans(&actual, expected, &format!("{protocol}: trace {trace_id}"));

        // One resource and one scope per trace: spans stay grouped as they were sent.
        let resource_spans = document["resourceSpans"].as_array().unwrap();
        assert_eq!(resource_spans.len(), 1, "one resource: {document:#}");
        let scope_spans = resource_spans[0]["scopeSpans"].as_array().unwrap();
        assert_eq!(scope_spans.len(), 1, "one scope per trace: {document:#}");
    }
}

#[test]
fn sdk_spans_over_grpc_come_back_losslessly_from_the_native_api() {
    assert_sdk_spans_read_back_losslessly("grpc");
}

#[test]
fn sdk_spans_over_http_protobuf_come_back_losslessly_from_the_native_api() {
    assert_sdk_spans_read_back_losslessly("http");
}

// ---------------------------------------------------------------------------------------------
// The Jaeger model

/// The Jaeger tag a typed attribute becomes: its type name and value. Arrays become strings
/// holding the JSON of their raw values, as Jaeger's OTLP translator writes them
/// (`[1,-2,3]`, `[true,false]`, `["a","b"]`).
fn jaeger_tag(typed: &Value) -> (String, Value) {
    match typed["type"].as_str().unwrap() {
        "string" => ("string".into(), typed["value"].clone()),
        "bool" => ("bool".into(), typed["value"].clone()),
        "int" => ("int64".into(), typed["value"].clone()),
        "double" => ("float64".into(), typed["value"].clone()),
        "array" => ("string".into(), raw(typed)),
        other => panic!("no Jaeger expectation for {other}"),
    }
}

/// A typed value without its types, as JSON.
fn raw(typed: &Value) -> Value {
    match typed["type"].as_str().unwrap() {
        "array" => Value::Array(
            typed["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(raw)
                .collect(),
        ),
        _ => typed["value"].clone(),
    }
}

/// Jaeger tags as a map from key to (type, value); keys must be unique.
fn jaeger_tags(tags: &Value, context: &str) -> BTreeMap<String, (String, Value)> {
    let mut map = BTreeMap::new();
    for tag in tags
        .as_array()
        .unwrap_or_else(|| panic!("{context}: tags not a list: {tags}"))
    {
        let key = tag["key"].as_str().unwrap().to_string();
        let kind = tag["type"]
            .as_str()
            .unwrap_or_else(|| panic!("{context}: untyped {tag}"));
        let entry = (kind.to_string(), tag["value"].clone());
        assert!(
            map.insert(key.clone(), entry).is_none(),
            "{context}: tag {key} twice"
        );
    }
    map
}

/// How strictly array attributes are compared in Jaeger tags.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arrays {
    /// A string tag holding a JSON array of the same length.
    AsJsonText,
    /// The JSON text reads back as the raw values, element types included.
    WithElementTypes,
}

/// Asserts every expected tag is present with its type and value. Array attributes are
/// string tags whose text is JSON, compared as `arrays` says.
fn assert_jaeger_tags(
    actual: &BTreeMap<String, (String, Value)>,
    expected: &[(String, (String, Value))],
    arrays: Arrays,
    context: &str,
) {
    for (key, (kind, value)) in expected {
        let Some((actual_kind, actual_value)) = actual.get(key) else {
            panic!("{context}: tag {key} missing; tags: {actual:?}");
        };
        assert_eq!(
            actual_kind, kind,
            "{context}: type of tag {key} ({actual_value})"
        );
        let Some(items) = value.as_array() else {
            assert_eq!(actual_value, value, "{context}: value of tag {key}");
            continue;
        };
        let text = actual_value.as_str().unwrap_or_default();
        let parsed: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        match arrays {
            Arrays::AsJsonText => assert_eq!(
                parsed.as_array().map(Vec::len),
                Some(items.len()),
                "{context}: array tag {key} is {actual_value}, not a JSON array like {value}"
            ),
            Arrays::WithElementTypes => assert_eq!(
                &parsed, value,
                "{context}: array tag {key} is {actual_value}, which does not read back as \
                 {value} (Jaeger's OTLP translator keeps element types: [1,2], [true,false])"
            ),
        }
    }
}

fn expected_tags(attributes: &Value) -> Vec<(String, (String, Value))> {
    attributes
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, typed)| (key.clone(), jaeger_tag(typed)))
        .collect()
}

fn string_tag(key: &str, value: &str) -> (String, (String, Value)) {
    (key.to_string(), ("string".to_string(), json!(value)))
}

fn span_kind_name(kind: i64) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "",
    }
}

fn micros(nanos_text: &Value) -> u64 {
    nanos_text.as_str().unwrap().parse::<u64>().unwrap() / 1_000
}

/// Asserts Jaeger's JSON of one trace against the spans sent.
fn assert_jaeger_trace(trace: &Value, expected: &[Value], trace_id: &str, arrays: Arrays) {
    assert_eq!(trace["traceID"], json!(trace_id));
    let spans = trace["spans"].as_array().expect("spans");
    assert_eq!(
        spans.len(),
        expected.len(),
        "trace {trace_id}: number of spans"
    );
    let processes = trace["processes"].as_object().expect("processes");

    for sent in expected {
        let span_id = sent["span_id"].as_str().unwrap();
        let context = format!("jaeger span {span_id} ({})", sent["name"]);
        let span = spans
            .iter()
            .find(|s| s["spanID"] == json!(span_id))
            .unwrap_or_else(|| panic!("{context}: missing from {trace:#}"));
        assert_eq!(span["traceID"], json!(trace_id), "{context}");
        assert_eq!(span["operationName"], sent["name"], "{context}");

        // Microsecond times.
        let start = micros(&sent["start_time_unix_nano"]);
        let end_nanos: u64 = sent["end_time_unix_nano"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let start_nanos: u64 = sent["start_time_unix_nano"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            span["startTime"].as_u64(),
            Some(start),
            "{context}: startTime in µs"
        );
        assert_eq!(
            span["duration"].as_u64(),
            Some((end_nanos - start_nanos) / 1_000),
            "{context}: duration in µs"
        );

        // The process: service name plus the other resource attributes as typed tags.
        let process_id = span["processID"].as_str().expect("processID");
        let process = &processes[process_id];
        let resource = sent["resource"]["attributes"].as_object().unwrap();
        assert_eq!(
            process["serviceName"], resource["service.name"]["value"],
            "{context}"
        );
        let process_tags = jaeger_tags(&process["tags"], &format!("{context} process"));
        assert!(
            !process_tags.contains_key("service.name"),
            "{context}: service.name is a tag"
        );
        let mut resource_without_name = sent["resource"]["attributes"].clone();
        resource_without_name
            .as_object_mut()
            .unwrap()
            .remove("service.name");
        assert_jaeger_tags(
            &process_tags,
            &expected_tags(&resource_without_name),
            arrays,
            &format!("{context} process"),
        );

        // References: the parent as CHILD_OF, links as FOLLOWS_FROM.
        let mut expected_refs = BTreeSet::new();
        let parent = sent["parent_span_id"].as_str().unwrap();
        if !parent.is_empty() {
            expected_refs.insert(("CHILD_OF".to_string(), trace_id.to_string(), parent.into()));
        }
        for link in sent["links"].as_array().unwrap() {
            expected_refs.insert((
                "FOLLOWS_FROM".to_string(),
                link["trace_id"].as_str().unwrap().to_string(),
                link["span_id"].as_str().unwrap().to_string(),
            ));
        }
        let actual_refs: BTreeSet<(String, String, String)> = span["references"]
            .as_array()
            .map(|refs| {
                refs.iter()
                    .map(|r| {
                        (
                            r["refType"].as_str().unwrap_or_default().to_string(),
                            r["traceID"].as_str().unwrap_or_default().to_string(),
                            r["spanID"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(actual_refs, expected_refs, "{context}: references");

        // Tags: attributes with their types, kind, scope and status.
        let tags = jaeger_tags(&span["tags"], &context);
        let mut expected = expected_tags(&sent["attributes"]);
        let kind = span_kind_name(sent["kind"].as_i64().unwrap());
        expected.push(string_tag("span.kind", kind));
        expected.push(string_tag(
            "otel.scope.name",
            sent["scope"]["name"].as_str().unwrap(),
        ));
        expected.push(string_tag(
            "otel.scope.version",
            sent["scope"]["version"].as_str().unwrap(),
        ));
        let status_message = sent["status"]["message"].as_str().unwrap();
        match sent["status"]["code"].as_i64().unwrap() {
            2 => {
                expected.push(string_tag("otel.status_code", "ERROR"));
                expected.push(("error".to_string(), ("bool".to_string(), json!(true))));
                expected.push(string_tag("otel.status_description", status_message));
            }
            1 => {
                expected.push(string_tag("otel.status_code", "OK"));
                assert!(
                    !tags.contains_key("error"),
                    "{context}: error tag on an OK span"
                );
            }
            _ => assert!(
                !tags.contains_key("error"),
                "{context}: error tag on an UNSET span"
            ),
        }
        assert_jaeger_tags(&tags, &expected, arrays, &context);

        // Logs: one per event, in order, with the event name and typed fields.
        let logs = span["logs"].as_array().cloned().unwrap_or_default();
        let events = sent["events"].as_array().unwrap();
        assert_eq!(logs.len(), events.len(), "{context}: one log per event");
        for (log, event) in logs.iter().zip(events) {
            assert_eq!(
                log["timestamp"].as_u64(),
                Some(micros(&event["time_unix_nano"]))
            );
            let fields = jaeger_tags(&log["fields"], &format!("{context} log"));
            let mut expected = expected_tags(&event["attributes"]);
            expected.push(string_tag("event", event["name"].as_str().unwrap()));
            assert_jaeger_tags(&fields, &expected, arrays, &format!("{context} log"));
        }
    }
}

/// Asserts the Jaeger envelope and returns its data.
fn jaeger_data(reply: &Value, context: &str) -> Value {
    assert!(reply["errors"].is_null(), "{context}: errors in {reply}");
    for field in ["total", "limit", "offset"] {
        assert!(
            reply[field].is_u64(),
            "{context}: envelope field {field} missing: {reply}"
        );
    }
    let data = reply["data"].clone();
    if let Some(items) = data.as_array() {
        assert_eq!(
            reply["total"].as_u64(),
            Some(items.len() as u64),
            "{context}: total"
        );
    }
    data
}

fn assert_sdk_spans_in_jaeger_model(server: &TestServer, sent: &[Value], arrays: Arrays) {
    for (trace_id, expected) in group_by_trace(sent) {
        let reply = get_json(&server.url(&format!("/api/traces/{trace_id}")));
        let data = jaeger_data(&reply, "GET /api/traces/{id}");
        let traces = data.as_array().expect("a list of traces");
        assert_eq!(traces.len(), 1, "one trace by id");
        assert_jaeger_trace(&traces[0], &expected, &trace_id, arrays);
    }
}

#[test]
fn sdk_spans_read_back_in_the_jaeger_model() {
    let server = TestServer::start();
    let sent = send_with_sdk(&server, "grpc", "py-jaeger");
    assert_sdk_spans_in_jaeger_model(&server, &sent, Arrays::AsJsonText);

    // An unknown trace is a 404 in Jaeger's envelope.
    let missing = hex::encode(unique_trace_id(0x7e));
    let reply = get(&server.url(&format!("/api/traces/{missing}")));
    assert_eq!(reply.status, 404, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["errors"][0]["code"], json!(404), "{body}");
}

#[test]
fn jaeger_array_tags_keep_their_element_types() {
    let server = TestServer::start();
    let sent = send_with_sdk(&server, "http", "py-jaeger-arrays");
    assert_sdk_spans_in_jaeger_model(&server, &sent, Arrays::WithElementTypes);
}

/// The trace ids a Jaeger search returns.
fn search(server: &TestServer, query: &str) -> BTreeSet<String> {
    let reply = get_json(&server.url(&format!("/api/traces?{query}")));
    let data = jaeger_data(&reply, query);
    data.as_array()
        .unwrap_or_else(|| panic!("{query}: data not a list"))
        .iter()
        .map(|trace| {
            let id = trace["traceID"].as_str().unwrap().to_string();
            assert!(
                !trace["spans"].as_array().unwrap().is_empty(),
                "{query}: trace without spans"
            );
            id
        })
        .collect()
}

fn ids(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[test]
fn jaeger_search_services_and_operations_find_the_sdk_spans() {
    let server = TestServer::start();
    let service = "py-search";
    let sent = send_with_sdk(&server, "http", service);
    let traces = group_by_trace(&sent);
    let checkout = traces
        .iter()
        .find(|(_, spans)| spans.iter().any(|s| s["name"] == json!("POST /checkout")))
        .map(|(id, _)| id)
        .expect("the checkout trace");
    let fulfil = traces
        .keys()
        .find(|id| *id != checkout)
        .expect("the fulfil trace");
    let both = ids(&[checkout, fulfil]);
    let only_checkout = ids(&[checkout]);
    let only_fulfil = ids(&[fulfil]);

    // Services and operations.
    let services = jaeger_data(&get_json(&server.url("/api/services")), "services");
    assert_eq!(services, json!([service]), "services");
    let operations = jaeger_data(
        &get_json(&server.url(&format!("/api/services/{service}/operations"))),
        "service operations",
    );
    let names: BTreeSet<String> = serde_json::from_value(operations).unwrap();
    let expected_names: BTreeSet<String> = sent
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, expected_names, "operations of {service}");

    let with_kinds = jaeger_data(
        &get_json(&server.url(&format!("/api/operations?service={service}"))),
        "operations",
    );
    let with_kinds: BTreeSet<(String, String)> = with_kinds
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().into(),
                o["spanKind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected_kinds: BTreeSet<(String, String)> = sent
        .iter()
        .map(|s| {
            let kind = span_kind_name(s["kind"].as_i64().unwrap());
            (s["name"].as_str().unwrap().to_string(), kind.to_string())
        })
        .collect();
    assert_eq!(with_kinds, expected_kinds, "operations with span kinds");
    let servers = jaeger_data(
        &get_json(&server.url(&format!(
            "/api/operations?service={service}&spanKind=server"
        ))),
        "server operations",
    );
    assert_eq!(
        servers,
        json!([{"name": "POST /checkout", "spanKind": "server"}])
    );
    let unknown = jaeger_data(
        &get_json(&server.url("/api/services/no-such-service/operations")),
        "operations of an unknown service",
    );
    assert_eq!(unknown, json!([]), "no operations for an unknown service");

    // Search by service and operation.
    let by_service = format!("service={service}");
    assert_eq!(search(&server, &by_service), both, "by service");
    assert_eq!(
        search(&server, "service=no-such-service"),
        BTreeSet::new(),
        "unknown service"
    );
    let by_operation = format!("{by_service}&operation={}", query_escape("orders process"));
    assert_eq!(search(&server, &by_operation), only_fulfil, "by operation");

    // Tags: status, a dedicated int column, a plain attribute, a shared attribute, and a
    // resource attribute.
    let tags = |tags: &str| format!("{by_service}&tags={}", query_escape(tags));
    assert_eq!(
        search(&server, &tags(r#"{"error":"true"}"#)),
        only_checkout,
        "error=true"
    );
    let tag_param = format!("{by_service}&tag=error:true&tag=peer.service:inventory");
    assert_eq!(
        search(&server, &tag_param),
        only_checkout,
        "tag=key:value parameters"
    );
    let status_503 = tags(r#"{"http.response.status_code":"503"}"#);
    assert_eq!(
        search(&server, &status_503),
        only_checkout,
        "int column tag"
    );
    let retries = tags(r#"{"retry.count":"3"}"#);
    assert_eq!(
        search(&server, &retries),
        only_checkout,
        "int attribute tag"
    );
    assert_eq!(
        search(&server, &tags(r#"{"app.bool":"true"}"#)),
        only_checkout,
        "bool tag"
    );
    let orders = tags(r#"{"messaging.destination.name":"orders"}"#);
    assert_eq!(
        search(&server, &orders),
        both,
        "tag on spans of both traces"
    );
    let pod = tags(r#"{"k8s.pod.name":"checkout-6f7d8b9c4-x2x9z"}"#);
    assert_eq!(search(&server, &pod), both, "resource attribute tag");
    let nothing = tags(r#"{"retry.count":"4"}"#);
    assert_eq!(
        search(&server, &nothing),
        BTreeSet::new(),
        "tag value that no span has"
    );
    let both_tags = tags(r#"{"error":"true","peer.service":"inventory"}"#);
    assert_eq!(
        search(&server, &both_tags),
        only_checkout,
        "two tags on one span"
    );
    let mismatched = tags(r#"{"error":"true","db.system":"postgresql"}"#);
    assert_eq!(
        search(&server, &mismatched),
        BTreeSet::new(),
        "two tags on different spans"
    );

    // Durations: the checkout root takes 250 ms, the fulfil root 30 ms, store order 15 ms.
    let slow = format!("{by_service}&minDuration=200ms");
    assert_eq!(search(&server, &slow), only_checkout, "minDuration");
    let window = format!("{by_service}&minDuration=25ms&maxDuration=35ms");
    assert_eq!(
        search(&server, &window),
        only_fulfil,
        "minDuration and maxDuration"
    );
    let short = format!("{by_service}&maxDuration=16ms");
    assert_eq!(
        search(&server, &short),
        both,
        "maxDuration: 10 ms producer, 15 ms store"
    );

    // Time range (Unix microseconds) and limit.
    let starts: Vec<u64> = sent
        .iter()
        .map(|s| micros(&s["start_time_unix_nano"]))
        .collect();
    let (first, last) = (*starts.iter().min().unwrap(), *starts.iter().max().unwrap());
    let before = format!(
        "{by_service}&start={}&end={}",
        first - 10_000_000,
        first - 1
    );
    assert_eq!(
        search(&server, &before),
        BTreeSet::new(),
        "range before every span"
    );
    let during = format!("{by_service}&start={first}&end={last}");
    assert_eq!(search(&server, &during), both, "range over every span");
    let lookback = format!("{by_service}&lookback=1h");
    assert_eq!(search(&server, &lookback), both, "lookback=1h");
    let limited = search(&server, &format!("{by_service}&limit=1"));
    assert_eq!(limited.len(), 1, "limit=1");
    assert!(limited.is_subset(&both));

    // Bad parameters are 400s in the envelope.
    let bad = get(&server.url(&format!("/api/traces?{by_service}&minDuration=fast")));
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.json()["errors"][0]["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("minDuration")
    );
}

// ---------------------------------------------------------------------------------------------
// Hand-written OTLP/JSON

/// A request as a client library would write it by hand from the OTLP/JSON spec: hex ids,
/// 64-bit integers as strings and as numbers, enums as integers, and fields this server does
/// not know.
fn hand_written_request(trace_id: &str, service: &str, start: u64) -> Value {
    let child_start = start + 5_000_000;
    json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": service}},
                    {"key": "service.version", "value": {"stringValue": "9.9.9"}},
                    {"key": "k8s.pod.name", "value": {"stringValue": "json-pod-1"}},
                    {"key": "host.cpus", "value": {"intValue": 8}},
                    {"key": "host.arm", "value": {"boolValue": false}},
                ],
                "droppedAttributesCount": 2,
            },
            "schemaUrl": "https://opentelemetry.io/schemas/1.25.0",
            "scopeSpans": [{
                "scope": {
                    "name": "hand.written",
                    "version": "1.2.3",
                    "attributes": [{"key": "scope.int", "value": {"intValue": "12"}}],
                    "droppedAttributesCount": 1,
                },
                "spans": [
                    {
                        "traceId": trace_id,
                        "spanId": "00f067aa0ba902b7",
                        "traceState": "vendor=abc,other=1",
                        "flags": 769,
                        "name": "GET /json",
                        "kind": 2,
                        "startTimeUnixNano": start.to_string(),
                        "endTimeUnixNano": start + 40_000_000,
                        "attributes": [
                            {"key": "as.string", "value": {"stringValue": "text"}},
                            {"key": "as.bool", "value": {"boolValue": true}},
                            {"key": "int.as.string", "value": {"intValue": "-7"}},
                            {"key": "int.as.number", "value": {"intValue": 42}},
                            {"key": "int.max", "value": {"intValue": "9223372036854775807"}},
                            {"key": "http.response.status_code", "value": {"intValue": 201}},
                            {"key": "as.double", "value": {"doubleValue": 2.5}},
                            {"key": "double.whole", "value": {"doubleValue": 3.0}},
                            {"key": "as.bytes", "value": {"bytesValue": "aGVsbG8="}},
                            {"key": "strings", "value": {"arrayValue": {"values": [
                                {"stringValue": "x"}, {"stringValue": "y"}]}}},
                            {"key": "ints", "value": {"arrayValue": {"values": [
                                {"intValue": "1"}, {"intValue": 2}]}}},
                            {"key": "doubles", "value": {"arrayValue": {"values": [
                                {"doubleValue": 0.5}, {"doubleValue": 1.5}]}}},
                            {"key": "bools", "value": {"arrayValue": {"values": [
                                {"boolValue": false}, {"boolValue": true}]}}},
                            {"key": "map", "value": {"kvlistValue": {"values": [
                                {"key": "inner", "value": {"intValue": "5"}}]}}},
                            {"key": "with.unknown", "value": {"stringValue": "v"},
                             "futureField": true},
                        ],
                        "droppedAttributesCount": 3,
                        "events": [{
                            "timeUnixNano": (start + 1_000_000).to_string(),
                            "name": "handshake",
                            "attributes": [{"key": "tls", "value": {"boolValue": true}}],
                            "droppedAttributesCount": 1,
                        }],
                        "droppedEventsCount": 4,
                        "links": [{
                            "traceId": "4BF92F3577B34DA6A3CE929D0E0E4736",
                            "spanId": "53995C3F42CD8AD8",
                            "traceState": "linked=yes",
                            "flags": 257,
                            "attributes": [{"key": "reason", "value": {"stringValue": "retry"}}],
                            "droppedAttributesCount": 5,
                        }],
                        "droppedLinksCount": 6,
                        "status": {"code": 2, "message": "handler failed"},
                        "someFutureSpanField": {"nested": [1, 2, 3]},
                    },
                    {
                        "traceId": trace_id,
                        "spanId": "b7ad6b7169203331",
                        "parentSpanId": "00f067aa0ba902b7",
                        "name": "SELECT orders",
                        "kind": 3,
                        "startTimeUnixNano": child_start,
                        "endTimeUnixNano": (child_start + 20_000_000).to_string(),
                        "attributes": [
                            {"key": "db.system", "value": {"stringValue": "postgresql"}},
                        ],
                        "status": {"code": 1},
                    },
                ],
                "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
            }],
        }],
        "unknownTopLevelField": "ignored",
    })
}

/// Sends a hand-written OTLP/JSON request and checks what the server keeps of it.
fn assert_otlp_json_round_trip(gzipped: bool) {
    let server = TestServer::start();
    let trace_id = hex::encode(unique_trace_id(0x4a));
    let service = if gzipped { "json-gzip" } else { "json-plain" };
    let start = now_unix_nano() - 3_000_000_000;
    let request = hand_written_request(&trace_id, service, start);
    let body = serde_json::to_vec(&request).unwrap();

    let reply = if gzipped {
        post(
            &server.otlp_http_url(),
            "application/json",
            Some("gzip"),
            &gzip(&body),
        )
    } else {
        post(&server.otlp_http_url(), "application/json", None, &body)
    };
    assert_eq!(reply.status, 200, "export answer: {}", reply.text());
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    let answer = reply.json();
    let rejected = answer["partialSuccess"]["rejectedSpans"].clone();
    assert!(
        rejected.is_null() || rejected == json!("0") || rejected == json!(0),
        "nothing rejected: {answer}"
    );

    // The native API gives back the same spans; integers sent as numbers or strings are
    // integers, doubles stay doubles (3.0 too), enums keep their values.
    let (_, actual) = native_trace(&server, &trace_id);
    let expected = normalize_otlp_json(&request);
    assert_same_spans(&actual, &expected, &format!("OTLP/JSON gzip={gzipped}"));
    let root = actual
        .iter()
        .find(|s| s["name"] == json!("GET /json"))
        .expect("root span");
    let attributes = &root["attributes"];
    assert_eq!(
        attributes["int.as.number"],
        json!({"type": "int", "value": 42})
    );
    assert_eq!(
        attributes["int.as.string"],
        json!({"type": "int", "value": -7})
    );
    assert_eq!(
        attributes["int.max"],
        json!({"type": "int", "value": i64::MAX})
    );
    assert_eq!(
        attributes["http.response.status_code"],
        json!({"type": "int", "value": 201})
    );
    assert_eq!(
        attributes["double.whole"],
        json!({"type": "double", "value": 3.0})
    );
    assert_eq!(root["kind"], json!(2));
    assert_eq!(
        root["status"],
        json!({"code": 2, "message": "handler failed"})
    );
    assert_eq!(
        root["end_time_unix_nano"],
        json!((start + 40_000_000).to_string())
    );

    // And Jaeger sees the same trace.
    let reply = get_json(&server.url(&format!("/api/traces/{trace_id}")));
    let data = jaeger_data(&reply, "GET /api/traces/{id}");
    let trace = &data[0];
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(2));
    let root = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["operationName"] == json!("GET /json"))
        .expect("root in Jaeger");
    let tags = jaeger_tags(&root["tags"], "hand-written root");
    assert_eq!(tags["int.as.number"], ("int64".to_string(), json!(42)));
    assert_eq!(tags["int.max"], ("int64".to_string(), json!(i64::MAX)));
    assert_eq!(tags["double.whole"].0, "float64");
    assert_eq!(tags["error"], ("bool".to_string(), json!(true)));
    assert_eq!(
        tags["w3c.tracestate"],
        ("string".to_string(), json!("vendor=abc,other=1"))
    );
    let link = &root["references"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["refType"] == "FOLLOWS_FROM");
    let link = link.expect("the link as FOLLOWS_FROM");
    assert_eq!(
        link["spanID"],
        json!("53995c3f42cd8ad8"),
        "ids in lowercase hex"
    );
    assert_eq!(root["duration"].as_u64(), Some(40_000));
    let process = &trace["processes"][root["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], json!(service));
    let found = search(
        &server,
        &format!(
            "service={service}&tags={}",
            query_escape(r#"{"error":"true"}"#)
        ),
    );
    assert_eq!(
        found,
        BTreeSet::from([trace_id.clone()]),
        "search finds the JSON trace"
    );
}

#[test]
fn otlp_json_comes_back_field_by_field() {
    assert_otlp_json_round_trip(false);
}

#[test]
fn gzipped_otlp_json_comes_back_field_by_field() {
    assert_otlp_json_round_trip(true);
}

#[test]
fn unknown_and_malformed_trace_ids_are_answered_in_the_native_api() {
    let server = TestServer::start();
    let missing = hex::encode(unique_trace_id(0x11));
    let reply = get(&server.url(&format!("/api/v1/traces/{missing}")));
    assert_eq!(reply.status, 404, "{}", reply.text());
    let message = reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains(&missing), "404 names the trace: {message}");

    let reply = get(&server.url("/api/v1/traces/not-a-trace-id"));
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.json()["error"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[test]
fn spans_without_a_service_name_belong_to_unknown_service() {
    let server = TestServer::start();
    let trace_id = hex::encode(unique_trace_id(0x05));
    let start = now_unix_nano() - 2_000_000_000;
    let span = |span_id: &str| {
        json!({
            "traceId": trace_id,
            "spanId": span_id,
            "name": "anonymous work",
            "kind": 1,
            "startTimeUnixNano": start.to_string(),
            "endTimeUnixNano": (start + 1_000_000).to_string(),
        })
    };
    // One resource without service.name, one without any resource at all.
    let body = json!({"resourceSpans": [
        {
            "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": "h1"}}]},
            "scopeSpans": [{"spans": [span("a1a1a1a1a1a1a1a1")]}],
        },
        {"scopeSpans": [{"spans": [span("b2b2b2b2b2b2b2b2")]}]},
    ]});
    let reply = post(
        &server.otlp_http_url(),
        "application/json",
        None,
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());

    let services = jaeger_data(&get_json(&server.url("/api/services")), "services");
    assert_eq!(
        services,
        json!(["unknown_service"]),
        "the service of spans without one"
    );
    let trace = &jaeger_data(
        &get_json(&server.url(&format!("/api/traces/{trace_id}"))),
        "trace",
    )[0];
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(2));
    for process in trace["processes"].as_object().expect("processes").values() {
        assert_eq!(
            process["serviceName"],
            json!("unknown_service"),
            "{process}"
        );
    }
    let found = search(&server, "service=unknown_service");
    assert_eq!(found, BTreeSet::from([trace_id.clone()]));

    // The native API gives back the resources as they came: no service.name invented.
    let (_, spans) = native_trace(&server, &trace_id);
    assert_eq!(spans.len(), 2);
    for span in &spans {
        let attributes = span["resource"]["attributes"].as_object().unwrap();
        assert!(
            !attributes.contains_key("service.name"),
            "no invented service.name: {span}"
        );
    }
}
