//! Turns decoded OTLP spans into one Arrow record batch, validating each span on the
//! way.
//!
//! This is the path for requests that are already decoded (OTLP/JSON, WAL replay,
//! tests); protobuf bodies take [`crate::columnarize_encoded`] first, which builds the
//! same batch without decoding into prost types.

use arrow::array::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::span_columns::{AttributeValue, AttributeView, SpanColumns, SpanView, validate};

/// How many rejection messages a request keeps; the count is always exact.
const MAX_REJECTION_MESSAGES: usize = 5;

/// The result of columnarizing one export request.
#[derive(Debug)]
pub struct Columnarized {
    /// The accepted spans, `None` when there are none.
    pub batch: Option<RecordBatch>,
    /// Number of accepted spans.
    pub num_accepted: usize,
    /// Number of rejected spans.
    pub num_rejected: usize,
    /// The first few reasons for rejection, each naming the span's position.
    pub rejection_messages: Vec<String>,
    /// Positions `(resource, scope, span)` of rejected spans, in request order.
    pub rejected_positions: Vec<(usize, usize, usize)>,
}

/// Validates and columnarizes every span of an export request.
pub fn columnarize(request: &ExportTraceServiceRequest) -> Columnarized {
    let num_spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    let mut columns = SpanColumns::with_capacity(num_spans);
    let mut attributes = Vec::new();
    let mut result = Columnarized {
        batch: None,
        num_accepted: 0,
        num_rejected: 0,
        rejection_messages: Vec::new(),
        rejected_positions: Vec::new(),
    };

    let no_resource = Resource::default();
    let no_scope = InstrumentationScope::default();
    for (r, resource_spans) in request.resource_spans.iter().enumerate() {
        let resource = resource_spans.resource.as_ref().unwrap_or(&no_resource);
        columns.start_resource(resource, &resource_spans.schema_url);

        for (s, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
            let scope = scope_spans.scope.as_ref().unwrap_or(&no_scope);
            columns.start_scope(scope, &scope_spans.schema_url);

            for (i, span) in scope_spans.spans.iter().enumerate() {
                let view = span_view(span);
                if let Err(reason) = validate(&view) {
                    result.num_rejected += 1;
                    result.rejected_positions.push((r, s, i));
                    if result.rejection_messages.len() < MAX_REJECTION_MESSAGES {
                        result.rejection_messages.push(format!(
                            "resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: {reason}"
                        ));
                    }
                    continue;
                }
                attributes.clear();
                attributes.extend(span.attributes.iter().map(attribute_view));
                columns
                    .append(&view, &attributes, |taken, buffer| {
                        encode_extra(span, taken, buffer);
                        Ok(())
                    })
                    .expect("encoding decoded messages cannot fail");
                result.num_accepted += 1;
            }
        }
    }

    if result.num_accepted > 0 {
        result.batch = Some(columns.finish());
    }
    result
}

/// The column fields of a decoded span.
fn span_view(span: &Span) -> SpanView<'_> {
    let status = span.status.as_ref();
    SpanView {
        trace_id: &span.trace_id,
        span_id: &span.span_id,
        parent_span_id: &span.parent_span_id,
        trace_state: &span.trace_state,
        flags: span.flags,
        name: &span.name,
        kind: span.kind,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        status_code: status.map_or(0, |s| s.code),
        status_message: status.map_or("", |s| s.message.as_str()),
        dropped_attributes_count: span.dropped_attributes_count,
        dropped_events_count: span.dropped_events_count,
        dropped_links_count: span.dropped_links_count,
        has_events_or_links: !span.events.is_empty() || !span.links.is_empty(),
    }
}

/// What the columns need to know of a decoded attribute.
fn attribute_view(kv: &KeyValue) -> AttributeView<'_> {
    let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => AttributeValue::Str(s),
        Some(Value::IntValue(v)) => AttributeValue::Int(*v),
        _ => AttributeValue::Other,
    };
    AttributeView {
        key: &kv.key,
        value,
    }
}

/// Writes `extra_proto`: a protobuf `Span` holding only the attributes without a
/// column (`taken[i]` is false), the events and the links. Byte for byte what prost
/// encodes for such a `Span`, since its other fields are at their defaults, without
/// cloning them into one.
fn encode_extra(span: &Span, taken: &[bool], buffer: &mut Vec<u8>) {
    for (kv, _) in span.attributes.iter().zip(taken).filter(|(_, t)| !**t) {
        buffer.push(extra_tag::ATTRIBUTE);
        kv.encode_length_delimited(buffer)
            .expect("a Vec grows as needed");
    }
    for event in &span.events {
        buffer.push(extra_tag::EVENT);
        event
            .encode_length_delimited(buffer)
            .expect("a Vec grows as needed");
    }
    for link in &span.links {
        buffer.push(extra_tag::LINK);
        link.encode_length_delimited(buffer)
            .expect("a Vec grows as needed");
    }
}

/// The keys (field number and wire type 2) of the `Span` fields in `extra_proto`.
pub(crate) mod extra_tag {
    /// `Span.attributes`, field 9.
    pub(crate) const ATTRIBUTE: u8 = 9 << 3 | 2;
    /// `Span.events`, field 11.
    pub(crate) const EVENT: u8 = 11 << 3 | 2;
    /// `Span.links`, field 13.
    pub(crate) const LINK: u8 = 13 << 3 | 2;
}

/// A copy of `request` without the spans at `positions` (as returned by
/// [`columnarize`]), for logging exactly what was accepted.
pub fn without_spans(
    request: &ExportTraceServiceRequest,
    positions: &[(usize, usize, usize)],
) -> ExportTraceServiceRequest {
    let mut kept = request.clone();
    for &(r, s, i) in positions.iter().rev() {
        kept.resource_spans[r].scope_spans[s].spans.remove(i);
    }
    kept
}
