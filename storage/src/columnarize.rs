//! Turns decoded OTLP spans into one Arrow record batch, validating each span on the
//! way.
//!
//! Per-resource and per-scope values (service, pod, the resource protobuf, ...) are
//! written once per group as dictionary values, and each span only appends a key,
//! so a request with thousands of spans from one pod encodes its resource once.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, DictionaryArray, FixedSizeBinaryBuilder, Int8Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, StringDictionaryBuilder, UInt32Builder,
};
use arrow::datatypes::Int32Type;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::mesh::{ResourceMesh, string_value, virtual_peer};
use crate::schema::{INT_ATTRIBUTE_COLUMNS, STRING_ATTRIBUTE_COLUMNS, span_schema};

/// Distinct values a per-resource or per-scope column starts with room for.
const GROUP_VALUES: usize = 8;

/// A string dictionary builder sized for `capacity` rows and a few distinct values.
///
/// The builders' default capacities (1024 values) cost about 0.6 KB per span in a small
/// request's batch, and those batches stay in the head until it is sealed.
fn dictionary(capacity: usize) -> StringDictionaryBuilder<Int32Type> {
    StringDictionaryBuilder::with_capacity(capacity, 16, 256)
}

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

/// Why a span is refused: the ids a trace store cannot work without.
fn validate(span: &Span) -> Result<(), String> {
    if span.trace_id.len() != 16 {
        return Err(format!(
            "trace_id must be 16 bytes, got {}",
            span.trace_id.len()
        ));
    }
    if span.trace_id.iter().all(|b| *b == 0) {
        return Err("trace_id is all zeroes".to_string());
    }
    if span.span_id.len() != 8 {
        return Err(format!(
            "span_id must be 8 bytes, got {}",
            span.span_id.len()
        ));
    }
    if span.span_id.iter().all(|b| *b == 0) {
        return Err("span_id is all zeroes".to_string());
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        let len = span.parent_span_id.len();
        return Err(format!(
            "parent_span_id must be empty or 8 bytes, got {len}"
        ));
    }
    Ok(())
}

/// A dictionary column whose value changes once per resource or scope group.
struct GroupColumn<B> {
    keys: Int32Builder,
    values: B,
    num_values: i32,
    current: Option<i32>,
}

impl GroupColumn<StringBuilder> {
    fn new_string(capacity: usize) -> Self {
        Self {
            keys: Int32Builder::with_capacity(capacity),
            values: StringBuilder::with_capacity(GROUP_VALUES, GROUP_VALUES * 16),
            num_values: 0,
            current: None,
        }
    }

    fn start_group(&mut self, value: Option<&str>) {
        self.current = value.map(|v| {
            self.values.append_value(v);
            self.num_values += 1;
            self.num_values - 1
        });
    }

    fn finish(mut self) -> ArrayRef {
        let array = DictionaryArray::<Int32Type>::try_new(
            self.keys.finish(),
            Arc::new(self.values.finish()),
        )
        .expect("group keys always index their own values");
        Arc::new(array)
    }
}

impl GroupColumn<BinaryBuilder> {
    fn new_binary(capacity: usize) -> Self {
        Self {
            keys: Int32Builder::with_capacity(capacity),
            values: BinaryBuilder::with_capacity(GROUP_VALUES, GROUP_VALUES * 256),
            num_values: 0,
            current: None,
        }
    }

    fn start_group(&mut self, value: &[u8]) {
        self.values.append_value(value);
        self.num_values += 1;
        self.current = Some(self.num_values - 1);
    }

    fn finish(mut self) -> ArrayRef {
        let array = DictionaryArray::<Int32Type>::try_new(
            self.keys.finish(),
            Arc::new(self.values.finish()),
        )
        .expect("group keys always index their own values");
        Arc::new(array)
    }
}

impl<B> GroupColumn<B> {
    fn append_current(&mut self) {
        self.keys.append_option(self.current);
    }
}

/// Builders for every column of the span schema.
struct SpanColumns {
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent_span_id: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringDictionaryBuilder<Int32Type>,
    kind: Int8Builder,
    start: Int64Builder,
    end: Int64Builder,
    status_code: Int8Builder,
    status_message: StringBuilder,
    service: GroupColumn<StringBuilder>,
    namespace: GroupColumn<StringBuilder>,
    workload: GroupColumn<StringBuilder>,
    workload_kind: GroupColumn<StringBuilder>,
    pod: GroupColumn<StringBuilder>,
    version: GroupColumn<StringBuilder>,
    string_attributes: Vec<StringDictionaryBuilder<Int32Type>>,
    int_attributes: Vec<Int32Builder>,
    peer: StringDictionaryBuilder<Int32Type>,
    extra_proto: BinaryBuilder,
    dropped_attributes: UInt32Builder,
    dropped_events: UInt32Builder,
    dropped_links: UInt32Builder,
    resource_proto: GroupColumn<BinaryBuilder>,
    resource_schema_url: GroupColumn<StringBuilder>,
    scope_proto: GroupColumn<BinaryBuilder>,
    scope_schema_url: GroupColumn<StringBuilder>,
}

impl SpanColumns {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            trace_id: FixedSizeBinaryBuilder::with_capacity(capacity, 16),
            span_id: FixedSizeBinaryBuilder::with_capacity(capacity, 8),
            parent_span_id: FixedSizeBinaryBuilder::with_capacity(capacity, 8),
            trace_state: StringBuilder::with_capacity(capacity, 0),
            flags: UInt32Builder::with_capacity(capacity),
            name: dictionary(capacity),
            kind: Int8Builder::with_capacity(capacity),
            start: Int64Builder::with_capacity(capacity),
            end: Int64Builder::with_capacity(capacity),
            status_code: Int8Builder::with_capacity(capacity),
            status_message: StringBuilder::with_capacity(capacity, 0),
            service: GroupColumn::new_string(capacity),
            namespace: GroupColumn::new_string(capacity),
            workload: GroupColumn::new_string(capacity),
            workload_kind: GroupColumn::new_string(capacity),
            pod: GroupColumn::new_string(capacity),
            version: GroupColumn::new_string(capacity),
            string_attributes: STRING_ATTRIBUTE_COLUMNS
                .iter()
                .map(|_| dictionary(capacity))
                .collect(),
            int_attributes: INT_ATTRIBUTE_COLUMNS
                .iter()
                .map(|_| Int32Builder::with_capacity(capacity))
                .collect(),
            peer: dictionary(capacity),
            extra_proto: BinaryBuilder::with_capacity(capacity, 0),
            dropped_attributes: UInt32Builder::with_capacity(capacity),
            dropped_events: UInt32Builder::with_capacity(capacity),
            dropped_links: UInt32Builder::with_capacity(capacity),
            resource_proto: GroupColumn::new_binary(capacity),
            resource_schema_url: GroupColumn::new_string(capacity),
            scope_proto: GroupColumn::new_binary(capacity),
            scope_schema_url: GroupColumn::new_string(capacity),
        }
    }

    fn append(&mut self, span: &Span, attribute_slots: &mut AttributeSlots) {
        self.trace_id
            .append_value(&span.trace_id)
            .expect("validated length");
        self.span_id
            .append_value(&span.span_id)
            .expect("validated length");
        if span.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            self.parent_span_id
                .append_value(&span.parent_span_id)
                .expect("validated length");
        }
        append_non_empty(&mut self.trace_state, &span.trace_state);
        self.flags.append_value(span.flags);
        self.name.append_value(&span.name);
        self.kind.append_value(i8::try_from(span.kind).unwrap_or(0));
        self.start.append_value(nanos(span.start_time_unix_nano));
        self.end.append_value(nanos(span.end_time_unix_nano));
        let status = span.status.as_ref();
        let code = status.map_or(0, |s| s.code);
        self.status_code
            .append_value(i8::try_from(code).unwrap_or(0));
        append_non_empty(
            &mut self.status_message,
            status.map_or("", |s| s.message.as_str()),
        );

        for group in [
            &mut self.service,
            &mut self.namespace,
            &mut self.workload,
            &mut self.workload_kind,
            &mut self.pod,
            &mut self.version,
            &mut self.resource_schema_url,
            &mut self.scope_schema_url,
        ] {
            group.append_current();
        }
        self.resource_proto.append_current();
        self.scope_proto.append_current();

        // Attributes with a column of their own go there; the rest, with events and
        // links, travel as one protobuf blob.
        attribute_slots.fill(&span.attributes);
        for (builder, value) in self
            .string_attributes
            .iter_mut()
            .zip(&attribute_slots.strings)
        {
            match value {
                Some(index) => builder.append_value(
                    string_value(span.attributes[*index].value.as_ref()).unwrap_or_default(),
                ),
                None => builder.append_null(),
            }
        }
        for (builder, value) in self.int_attributes.iter_mut().zip(&attribute_slots.ints) {
            builder.append_option(*value);
        }
        let is_caller = matches!(span.kind, 3 | 4);
        match virtual_peer(&span.attributes).filter(|_| is_caller) {
            Some(peer) => self.peer.append_value(peer),
            None => self.peer.append_null(),
        }
        if attribute_slots.num_rest > 0 || !span.events.is_empty() || !span.links.is_empty() {
            let extra = Span {
                attributes: attribute_slots.rest(&span.attributes),
                events: span.events.clone(),
                links: span.links.clone(),
                ..Default::default()
            };
            self.extra_proto.append_value(extra.encode_to_vec());
        } else {
            self.extra_proto.append_null();
        }
        self.dropped_attributes
            .append_value(span.dropped_attributes_count);
        self.dropped_events.append_value(span.dropped_events_count);
        self.dropped_links.append_value(span.dropped_links_count);
    }

    fn finish(mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.end.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            self.service.finish(),
            self.namespace.finish(),
            self.workload.finish(),
            self.workload_kind.finish(),
            self.pod.finish(),
            self.version.finish(),
        ];
        for mut builder in self.string_attributes {
            columns.push(Arc::new(builder.finish()));
        }
        for mut builder in self.int_attributes {
            columns.push(Arc::new(builder.finish()));
        }
        columns.extend([
            Arc::new(self.peer.finish()) as ArrayRef,
            Arc::new(self.extra_proto.finish()),
            Arc::new(self.dropped_attributes.finish()),
            Arc::new(self.dropped_events.finish()),
            Arc::new(self.dropped_links.finish()),
            self.resource_proto.finish(),
            self.resource_schema_url.finish(),
            self.scope_proto.finish(),
            self.scope_schema_url.finish(),
        ]);
        RecordBatch::try_new(span_schema(), columns).expect("columns follow the span schema")
    }
}

/// Which attributes of one span go to dedicated columns (by index into the attribute
/// list), reused across spans to avoid allocating per span.
#[derive(Default)]
struct AttributeSlots {
    strings: Vec<Option<usize>>,
    ints: Vec<Option<i32>>,
    taken: Vec<bool>,
    num_taken: usize,
    num_rest: usize,
}

impl AttributeSlots {
    fn fill(&mut self, attributes: &[KeyValue]) {
        self.strings.clear();
        self.strings.resize(STRING_ATTRIBUTE_COLUMNS.len(), None);
        self.ints.clear();
        self.ints.resize(INT_ATTRIBUTE_COLUMNS.len(), None);
        self.taken.clear();
        self.taken.resize(attributes.len(), false);
        self.num_taken = 0;
        for (index, kv) in attributes.iter().enumerate() {
            let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
            match value {
                Some(Value::StringValue(_)) => {
                    let slot = STRING_ATTRIBUTE_COLUMNS
                        .iter()
                        .position(|(_, k)| *k == kv.key);
                    if let Some(slot) = slot.filter(|s| self.strings[*s].is_none()) {
                        self.strings[slot] = Some(index);
                        self.taken[index] = true;
                        self.num_taken += 1;
                    }
                }
                Some(Value::IntValue(v)) => {
                    let slot = INT_ATTRIBUTE_COLUMNS.iter().position(|(_, k)| *k == kv.key);
                    let fits = i32::try_from(*v).ok();
                    if let (Some(slot), Some(v)) = (slot, fits)
                        && self.ints[slot].is_none()
                    {
                        self.ints[slot] = Some(v);
                        self.taken[index] = true;
                        self.num_taken += 1;
                    }
                }
                _ => {}
            }
        }
        self.num_rest = attributes.len() - self.num_taken;
    }

    fn rest(&self, attributes: &[KeyValue]) -> Vec<KeyValue> {
        attributes
            .iter()
            .zip(&self.taken)
            .filter(|(_, taken)| !**taken)
            .map(|(kv, _)| kv.clone())
            .collect()
    }
}

fn append_non_empty(builder: &mut StringBuilder, value: &str) {
    if value.is_empty() {
        builder.append_null();
    } else {
        builder.append_value(value);
    }
}

/// OTLP times are unsigned; Arrow stores signed nanoseconds, good until the year 2262.
fn nanos(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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
    let mut slots = AttributeSlots::default();
    let mut result = Columnarized {
        batch: None,
        num_accepted: 0,
        num_rejected: 0,
        rejection_messages: Vec::new(),
        rejected_positions: Vec::new(),
    };

    let mut buffer = Vec::new();
    for (r, resource_spans) in request.resource_spans.iter().enumerate() {
        let resource = resource_spans.resource.clone().unwrap_or_default();
        let mesh = ResourceMesh::from_attributes(&resource.attributes);
        columns.service.start_group(Some(mesh.service));
        columns.namespace.start_group(mesh.namespace);
        columns.workload.start_group(mesh.workload);
        columns.workload_kind.start_group(mesh.workload_kind);
        columns.pod.start_group(mesh.pod);
        columns.version.start_group(mesh.version);
        buffer.clear();
        resource.encode(&mut buffer).expect("a Vec grows as needed");
        columns.resource_proto.start_group(&buffer);
        columns
            .resource_schema_url
            .start_group(Some(&resource_spans.schema_url));

        for (s, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
            let scope = scope_spans.scope.clone().unwrap_or_default();
            buffer.clear();
            scope.encode(&mut buffer).expect("a Vec grows as needed");
            columns.scope_proto.start_group(&buffer);
            columns
                .scope_schema_url
                .start_group(Some(&scope_spans.schema_url));

            for (i, span) in scope_spans.spans.iter().enumerate() {
                if let Err(reason) = validate(span) {
                    result.num_rejected += 1;
                    result.rejected_positions.push((r, s, i));
                    if result.rejection_messages.len() < MAX_REJECTION_MESSAGES {
                        result.rejection_messages.push(format!(
                            "resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: {reason}"
                        ));
                    }
                    continue;
                }
                columns.append(span, &mut slots);
                result.num_accepted += 1;
            }
        }
    }

    if result.num_accepted > 0 {
        result.batch = Some(columns.finish());
    }
    result
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
