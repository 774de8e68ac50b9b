//! The Arrow builders of a span batch, fed one borrowed span at a time.
//!
//! Both ways into a batch use them: decoded prost requests ([`crate::columnarize`]) and
//! request bytes read in place ([`crate::columnarize_encoded`]). Each turns a span
//! into a [`SpanView`] of borrowed fields, so the two produce the same columns by
//! construction.
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
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::mesh::{PEER_KEYS, ResourceMesh};
use crate::schema::{INT_ATTRIBUTE_COLUMNS, STRING_ATTRIBUTE_COLUMNS, span_schema};
use crate::wire::Unsupported;

/// Distinct values a per-resource or per-scope column starts with room for.
const GROUP_VALUES: usize = 8;

/// A string dictionary builder sized for `capacity` rows and a few distinct values.
///
/// The builders' default capacities (1024 values) cost about 0.6 KB per span in a small
/// request's batch, and those batches stay in the head until it is sealed.
fn dictionary(capacity: usize) -> StringDictionaryBuilder<Int32Type> {
    StringDictionaryBuilder::with_capacity(capacity, 16, 256)
}

/// The fields of one span that become columns, borrowed from wherever it was read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SpanView<'a> {
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) parent_span_id: &'a [u8],
    pub(crate) trace_state: &'a str,
    pub(crate) flags: u32,
    pub(crate) name: &'a str,
    pub(crate) kind: i32,
    pub(crate) start_time_unix_nano: u64,
    pub(crate) end_time_unix_nano: u64,
    pub(crate) status_code: i32,
    pub(crate) status_message: &'a str,
    pub(crate) dropped_attributes_count: u32,
    pub(crate) dropped_events_count: u32,
    pub(crate) dropped_links_count: u32,
    /// Whether the span has events or links (they always go to `extra_proto`).
    pub(crate) has_events_or_links: bool,
}

/// What an attribute's value is, as far as the columns care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttributeValue<'a> {
    /// A string.
    Str(&'a str),
    /// A 64-bit integer.
    Int(i64),
    /// Absent, or any other type.
    Other,
}

/// One span attribute: its key and what its value is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttributeView<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: AttributeValue<'a>,
}

/// Why a span is refused: the ids a trace store cannot work without.
pub(crate) fn validate(span: &SpanView<'_>) -> Result<(), String> {
    required_id("trace_id", span.trace_id, 16)?;
    required_id("span_id", span.span_id, 8)?;
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        let len = span.parent_span_id.len();
        return Err(format!(
            "parent_span_id must be empty or 8 bytes, got {len}"
        ));
    }
    Ok(())
}

/// An id that must be `len` bytes and not all zeroes.
fn required_id(name: &str, id: &[u8], len: usize) -> Result<(), String> {
    if id.len() != len {
        return Err(format!("{name} must be {len} bytes, got {}", id.len()));
    }
    if id.iter().all(|b| *b == 0) {
        return Err(format!("{name} is all zeroes"));
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
pub(crate) struct SpanColumns {
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
    /// Scratch: which attributes of the current span have a column.
    slots: AttributeSlots,
    /// Scratch: the current span's `extra_proto`, and the group protobufs.
    buffer: Vec<u8>,
}

impl SpanColumns {
    /// Builders with room for `capacity` spans.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
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
            slots: AttributeSlots::default(),
            buffer: Vec::new(),
        }
    }

    /// Starts the spans of a new resource.
    pub(crate) fn start_resource(&mut self, resource: &Resource, schema_url: &str) {
        let mut encoded = std::mem::take(&mut self.buffer);
        encoded.clear();
        resource
            .encode(&mut encoded)
            .expect("a Vec grows as needed");
        self.start_encoded_resource(resource, &encoded, schema_url);
        self.buffer = encoded;
    }

    /// Starts the spans of a new resource whose prost encoding is `encoded`.
    pub(crate) fn start_encoded_resource(
        &mut self,
        resource: &Resource,
        encoded: &[u8],
        schema_url: &str,
    ) {
        let mesh = ResourceMesh::from_attributes(&resource.attributes);
        self.service.start_group(Some(mesh.service));
        self.namespace.start_group(mesh.namespace);
        self.workload.start_group(mesh.workload);
        self.workload_kind.start_group(mesh.workload_kind);
        self.pod.start_group(mesh.pod);
        self.version.start_group(mesh.version);
        self.resource_proto.start_group(encoded);
        self.resource_schema_url.start_group(Some(schema_url));
    }

    /// Starts the spans of a new instrumentation scope.
    pub(crate) fn start_scope(&mut self, scope: &InstrumentationScope, schema_url: &str) {
        self.buffer.clear();
        scope
            .encode(&mut self.buffer)
            .expect("a Vec grows as needed");
        self.scope_proto.start_group(&self.buffer);
        self.scope_schema_url.start_group(Some(schema_url));
    }

    /// Starts the spans of a new instrumentation scope whose prost encoding is
    /// `encoded`.
    pub(crate) fn start_encoded_scope(&mut self, encoded: &[u8], schema_url: &str) {
        self.scope_proto.start_group(encoded);
        self.scope_schema_url.start_group(Some(schema_url));
    }

    /// Appends one validated span of the current resource and scope. Attributes
    /// without a column of their own, events and links go to `extra_proto`, which
    /// `encode_extra` writes when needed: a protobuf `Span` holding only those, given
    /// which attributes (by index) have a column.
    ///
    /// # Errors
    /// What `encode_extra` returns; the builders are then unusable.
    pub(crate) fn append(
        &mut self,
        span: &SpanView<'_>,
        attributes: &[AttributeView<'_>],
        encode_extra: impl FnOnce(&[bool], &mut Vec<u8>) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        self.trace_id
            .append_value(span.trace_id)
            .expect("validated length");
        self.span_id
            .append_value(span.span_id)
            .expect("validated length");
        if span.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            self.parent_span_id
                .append_value(span.parent_span_id)
                .expect("validated length");
        }
        append_non_empty(&mut self.trace_state, span.trace_state);
        self.flags.append_value(span.flags);
        self.name.append_value(span.name);
        self.kind.append_value(i8::try_from(span.kind).unwrap_or(0));
        self.start.append_value(nanos(span.start_time_unix_nano));
        self.end.append_value(nanos(span.end_time_unix_nano));
        self.status_code
            .append_value(i8::try_from(span.status_code).unwrap_or(0));
        append_non_empty(&mut self.status_message, span.status_message);

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
        let slots = &mut self.slots;
        slots.fill(attributes);
        for (builder, index) in self.string_attributes.iter_mut().zip(&slots.strings) {
            match index.map(|i| attributes[i].value) {
                Some(AttributeValue::Str(value)) => builder.append_value(value),
                _ => builder.append_null(),
            }
        }
        for (builder, value) in self.int_attributes.iter_mut().zip(&slots.ints) {
            builder.append_option(*value);
        }
        let is_caller = matches!(span.kind, 3 | 4);
        match virtual_peer(attributes).filter(|_| is_caller) {
            Some(peer) => self.peer.append_value(peer),
            None => self.peer.append_null(),
        }
        if slots.num_rest > 0 || span.has_events_or_links {
            self.buffer.clear();
            encode_extra(&slots.taken, &mut self.buffer)?;
            self.extra_proto.append_value(&self.buffer);
        } else {
            self.extra_proto.append_null();
        }
        self.dropped_attributes
            .append_value(span.dropped_attributes_count);
        self.dropped_events.append_value(span.dropped_events_count);
        self.dropped_links.append_value(span.dropped_links_count);
        Ok(())
    }

    /// The batch of every span appended.
    pub(crate) fn finish(mut self) -> RecordBatch {
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

/// The virtual peer named by a span's attributes: the first of [`PEER_KEYS`] present
/// with a non-empty string value (as [`crate::virtual_peer`]).
fn virtual_peer<'a>(attributes: &[AttributeView<'a>]) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for attribute in attributes {
        let AttributeValue::Str(value) = attribute.value else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let Some(rank) = PEER_KEYS.iter().position(|k| *k == attribute.key) else {
            continue;
        };
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, value));
        }
    }
    best.map(|(_, value)| value)
}

/// Which attributes of one span go to dedicated columns (by index into the attribute
/// list), reused across spans to avoid allocating per span.
#[derive(Default)]
struct AttributeSlots {
    strings: Vec<Option<usize>>,
    ints: Vec<Option<i32>>,
    taken: Vec<bool>,
    num_rest: usize,
}

impl AttributeSlots {
    fn fill(&mut self, attributes: &[AttributeView<'_>]) {
        self.strings.clear();
        self.strings.resize(STRING_ATTRIBUTE_COLUMNS.len(), None);
        self.ints.clear();
        self.ints.resize(INT_ATTRIBUTE_COLUMNS.len(), None);
        self.taken.clear();
        self.taken.resize(attributes.len(), false);
        let mut num_taken = 0;
        for (index, attribute) in attributes.iter().enumerate() {
            match attribute.value {
                AttributeValue::Str(_) => {
                    let slot = STRING_ATTRIBUTE_COLUMNS
                        .iter()
                        .position(|(_, k)| *k == attribute.key);
                    if let Some(slot) = slot.filter(|s| self.strings[*s].is_none()) {
                        self.strings[slot] = Some(index);
                        self.taken[index] = true;
                        num_taken += 1;
                    }
                }
                AttributeValue::Int(v) => {
                    let slot = INT_ATTRIBUTE_COLUMNS
                        .iter()
                        .position(|(_, k)| *k == attribute.key);
                    let fits = i32::try_from(v).ok();
                    if let (Some(slot), Some(v)) = (slot, fits)
                        && self.ints[slot].is_none()
                    {
                        self.ints[slot] = Some(v);
                        self.taken[index] = true;
                        num_taken += 1;
                    }
                }
                AttributeValue::Other => {}
            }
        }
        self.num_rest = attributes.len() - num_taken;
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
