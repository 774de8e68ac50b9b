//! Jaeger's JSON trace model, built from OTLP spans the way Jaeger translates them:
//! resources become processes, the parent becomes a `CHILD_OF` reference and links
//! `FOLLOWS_FROM`, events become logs, status ERROR adds `error=true`, times are
//! microseconds.

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde_json::{Value as Json, json};
use tracegate_query::{SpanKind, attribute_text};

/// One Jaeger tag with its type.
fn tag(key: &str, value: Option<&AnyValue>) -> Json {
    let (kind, value) = match value.and_then(|v| v.value.as_ref()) {
        Some(Value::BoolValue(b)) => ("bool", json!(b)),
        Some(Value::IntValue(i)) => ("int64", json!(i)),
        Some(Value::DoubleValue(d)) => ("float64", json!(d)),
        Some(Value::BytesValue(b)) => ("binary", json!(hex::encode(b))),
        _ => ("string", json!(attribute_text(value))),
    };
    json!({ "key": key, "type": kind, "value": value })
}

fn string_tag(key: &str, value: &str) -> Json {
    json!({ "key": key, "type": "string", "value": value })
}

fn tags(attributes: &[KeyValue]) -> Vec<Json> {
    attributes
        .iter()
        .map(|kv| tag(&kv.key, kv.value.as_ref()))
        .collect()
}

fn micros(nanos: u64) -> u64 {
    nanos / 1_000
}

/// The Jaeger JSON of one trace, from its OTLP `ResourceSpans`.
pub(crate) fn jaeger_trace(trace_id: [u8; 16], resource_spans: &[ResourceSpans]) -> Json {
    let trace_hex = hex::encode(trace_id);
    let mut processes = serde_json::Map::new();
    let mut process_ids: HashMap<String, String> = HashMap::new();
    let mut spans = Vec::new();

    for resource_spans in resource_spans {
        let resource = resource_spans.resource.clone().unwrap_or_default();
        let service = resource
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .map_or_else(
                || tracegate_storage::UNKNOWN_SERVICE.to_string(),
                |kv| attribute_text(kv.value.as_ref()),
            );
        let process_tags: Vec<Json> = resource
            .attributes
            .iter()
            .filter(|kv| kv.key != "service.name")
            .map(|kv| tag(&kv.key, kv.value.as_ref()))
            .collect();
        let process_key = json!([service, process_tags]).to_string();
        let next_id = format!("p{}", process_ids.len() + 1);
        let process_id = process_ids.entry(process_key).or_insert_with(|| {
            processes.insert(
                next_id.clone(),
                json!({ "serviceName": service, "tags": process_tags }),
            );
            next_id
        });

        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans.scope.clone().unwrap_or_default();
            for span in &scope_spans.spans {
                let mut references = Vec::new();
                if !span.parent_span_id.is_empty() {
                    references.push(json!({
                        "refType": "CHILD_OF",
                        "traceID": trace_hex,
                        "spanID": hex::encode(&span.parent_span_id),
                    }));
                }
                for link in &span.links {
                    references.push(json!({
                        "refType": "FOLLOWS_FROM",
                        "traceID": hex::encode(&link.trace_id),
                        "spanID": hex::encode(&link.span_id),
                    }));
                }

                let mut span_tags = tags(&span.attributes);
                let kind = SpanKind::from_otlp(span.kind).jaeger_name();
                if !kind.is_empty() {
                    span_tags.push(string_tag("span.kind", kind));
                }
                if !scope.name.is_empty() {
                    span_tags.push(string_tag("otel.scope.name", &scope.name));
                }
                if !scope.version.is_empty() {
                    span_tags.push(string_tag("otel.scope.version", &scope.version));
                }
                if let Some(status) = &span.status {
                    match status.code {
                        1 => span_tags.push(string_tag("otel.status_code", "OK")),
                        2 => {
                            span_tags.push(string_tag("otel.status_code", "ERROR"));
                            span_tags.push(json!({"key": "error", "type": "bool", "value": true}));
                        }
                        _ => {}
                    }
                    if !status.message.is_empty() {
                        span_tags.push(string_tag("otel.status_description", &status.message));
                    }
                }
                if !span.trace_state.is_empty() {
                    span_tags.push(string_tag("w3c.tracestate", &span.trace_state));
                }

                let logs: Vec<Json> = span
                    .events
                    .iter()
                    .map(|event| {
                        let mut fields = vec![string_tag("event", &event.name)];
                        fields.extend(tags(&event.attributes));
                        json!({ "timestamp": micros(event.time_unix_nano), "fields": fields })
                    })
                    .collect();
                let start = span.start_time_unix_nano;
                let duration = span.end_time_unix_nano.saturating_sub(start);
                spans.push(json!({
                    "traceID": trace_hex,
                    "spanID": hex::encode(&span.span_id),
                    "operationName": span.name,
                    "references": references,
                    "startTime": micros(start),
                    "duration": micros(duration),
                    "tags": span_tags,
                    "logs": logs,
                    "processID": process_id,
                    "flags": span.flags,
                    "warnings": null,
                }));
            }
        }
    }
    json!({ "traceID": trace_hex, "spans": spans, "processes": processes, "warnings": null })
}
