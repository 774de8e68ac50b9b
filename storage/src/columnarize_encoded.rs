//! Columnarizes an `ExportTraceServiceRequest` straight from its protobuf bytes.
//!
//! Decoding into prost types allocates a `String` or `Vec` for every id, name, key and
//! value, and frees them all right after columnarizing: on the mesh benchmark that was
//! about 0.9 of the 1.6 CPU µs each span cost on the ingest thread. Here the spans are
//! read in place ([`crate::wire`]), borrowed fields go straight into the Arrow builders,
//! and only what is stored as protobuf anyway is decoded with prost: the resource and
//! scope (once per distinct value and thread, see [`crate::group_cache`]), and a span's
//! attributes without a column, events and links, which are re-encoded into
//! `extra_proto`.
//!
//! The batch is the one [`crate::columnarize`] builds from the decoded request, byte
//! for byte: both feed [`SpanColumns`] the same views. This path only takes requests
//! it can vouch for; anything else (a malformed body, a rejected span, an attribute
//! holding an array or a map, deep nesting) makes it answer `None`, and the caller
//! decodes with prost and columnarizes that, getting the exact answer, errors and
//! partial success included.

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use prost::Message;

use crate::columnarize::{Columnarized, extra_tag};
use crate::group_cache::{self, GroupCaches};
use crate::span_columns::{AttributeValue, AttributeView, SpanColumns, SpanView, validate};
use crate::wire::{Fields, Unsupported, Wire};

/// How deep attribute values may nest (arrays and maps) in what this path decodes
/// with prost. prost refuses a request nested 100 messages deep; its parts decoded on
/// their own start counting afresh, so this path stays far below that.
const MAX_VALUE_DEPTH: usize = 32;

/// Validates and columnarizes the protobuf `ExportTraceServiceRequest` in `bytes`
/// without decoding it into prost types, or `None` when the request should go through
/// prost and [`crate::columnarize`] instead: it does not decode, a span is rejected,
/// or it holds something this reader leaves to prost (see the module doc).
pub fn columnarize_encoded(bytes: &[u8]) -> Option<Columnarized> {
    let num_spans = count_spans(bytes).ok()?;
    let (columns, num_accepted) = group_cache::with_caches(|caches| {
        let mut reader = Reader {
            caches,
            columns: SpanColumns::with_capacity(num_spans),
            attributes: Vec::new(),
            raw_attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            num_spans: 0,
        };
        reader.request(bytes)?;
        Ok::<_, Unsupported>((reader.columns, reader.num_spans))
    })
    .ok()?;
    Some(Columnarized {
        batch: (num_accepted > 0).then(|| columns.finish()),
        num_accepted,
        num_rejected: 0,
        rejection_messages: Vec::new(),
        rejected_positions: Vec::new(),
    })
}

/// Field numbers of the messages read here.
mod field {
    pub(super) const REQUEST_RESOURCE_SPANS: u32 = 1;
    pub(super) const RESOURCE_SPANS_RESOURCE: u32 = 1;
    pub(super) const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
    pub(super) const RESOURCE_SPANS_SCHEMA_URL: u32 = 3;
    pub(super) const SCOPE_SPANS_SCOPE: u32 = 1;
    pub(super) const SCOPE_SPANS_SPANS: u32 = 2;
    pub(super) const SCOPE_SPANS_SCHEMA_URL: u32 = 3;
}

/// The number of spans in a request, reading only the framing of each level.
fn count_spans(bytes: &[u8]) -> Result<usize, Unsupported> {
    let mut count = 0;
    let mut request = Fields::new(bytes);
    while let Some((number, value)) = request.next_field()? {
        if number != field::REQUEST_RESOURCE_SPANS {
            continue;
        }
        let mut resource_spans = Fields::new(value.bytes()?);
        while let Some((number, value)) = resource_spans.next_field()? {
            if number != field::RESOURCE_SPANS_SCOPE_SPANS {
                continue;
            }
            let mut scope_spans = Fields::new(value.bytes()?);
            while let Some((number, _)) = scope_spans.next_field()? {
                count += usize::from(number == field::SCOPE_SPANS_SPANS);
            }
        }
    }
    Ok(count)
}

/// The walk over one request, with scratch lists reused from span to span.
struct Reader<'a, 'c> {
    caches: &'c mut GroupCaches,
    columns: SpanColumns,
    attributes: Vec<AttributeView<'a>>,
    /// Each attribute's own bytes (a `KeyValue`), parallel to `attributes`.
    raw_attributes: Vec<&'a [u8]>,
    events: Vec<&'a [u8]>,
    links: Vec<&'a [u8]>,
    num_spans: usize,
}

impl<'a> Reader<'a, '_> {
    fn request(&mut self, bytes: &'a [u8]) -> Result<(), Unsupported> {
        let mut fields = Fields::new(bytes);
        while let Some((number, value)) = fields.next_field()? {
            if number == field::REQUEST_RESOURCE_SPANS {
                self.resource_spans(value.bytes()?)?;
            }
        }
        Ok(())
    }

    /// One `ResourceSpans`: its resource and schema URL first, wherever they are in
    /// the message, then its scopes in order.
    fn resource_spans(&mut self, bytes: &'a [u8]) -> Result<(), Unsupported> {
        let mut resources = Occurrences::default();
        let mut schema_url = "";
        let mut fields = Fields::new(bytes);
        while let Some((number, value)) = fields.next_field()? {
            match number {
                field::RESOURCE_SPANS_RESOURCE => resources.push(value.bytes()?),
                field::RESOURCE_SPANS_SCOPE_SPANS => {
                    value.bytes()?;
                }
                field::RESOURCE_SPANS_SCHEMA_URL => schema_url = value.str()?,
                _ => {}
            }
        }
        if let Some(raw) = resources.single() {
            let accept = |r: &Resource| !r.attributes.iter().any(too_deep);
            let resource = self.caches.resources.get(raw, accept)?;
            self.columns
                .start_encoded_resource(&resource.message, &resource.encoded, schema_url);
        } else {
            // None (the default resource), or several, which merge as in prost.
            let mut resource = Resource::default();
            for raw in occurrences(bytes, field::RESOURCE_SPANS_RESOURCE)? {
                resource.merge(raw).map_err(|_| Unsupported)?;
            }
            if resource.attributes.iter().any(too_deep) {
                return Err(Unsupported);
            }
            self.columns.start_resource(&resource, schema_url);
        }

        let mut fields = Fields::new(bytes);
        while let Some((number, value)) = fields.next_field()? {
            if number == field::RESOURCE_SPANS_SCOPE_SPANS {
                self.scope_spans(value.bytes()?)?;
            }
        }
        Ok(())
    }

    /// One `ScopeSpans`: its scope and schema URL, then its spans in order.
    fn scope_spans(&mut self, bytes: &'a [u8]) -> Result<(), Unsupported> {
        let mut scopes = Occurrences::default();
        let mut schema_url = "";
        let mut fields = Fields::new(bytes);
        while let Some((number, value)) = fields.next_field()? {
            match number {
                field::SCOPE_SPANS_SCOPE => scopes.push(value.bytes()?),
                field::SCOPE_SPANS_SPANS => {
                    value.bytes()?;
                }
                field::SCOPE_SPANS_SCHEMA_URL => schema_url = value.str()?,
                _ => {}
            }
        }
        if let Some(raw) = scopes.single() {
            let accept = |s: &InstrumentationScope| !s.attributes.iter().any(too_deep);
            let scope = self.caches.scopes.get(raw, accept)?;
            self.columns.start_encoded_scope(&scope.encoded, schema_url);
        } else {
            let mut scope = InstrumentationScope::default();
            for raw in occurrences(bytes, field::SCOPE_SPANS_SCOPE)? {
                scope.merge(raw).map_err(|_| Unsupported)?;
            }
            if scope.attributes.iter().any(too_deep) {
                return Err(Unsupported);
            }
            self.columns.start_scope(&scope, schema_url);
        }

        let mut fields = Fields::new(bytes);
        while let Some((number, value)) = fields.next_field()? {
            if number == field::SCOPE_SPANS_SPANS {
                self.span(value.bytes()?)?;
            }
        }
        Ok(())
    }

    /// One `Span`: read, validated, appended.
    fn span(&mut self, bytes: &'a [u8]) -> Result<(), Unsupported> {
        self.attributes.clear();
        self.raw_attributes.clear();
        self.events.clear();
        self.links.clear();
        let mut span = SpanView::default();
        let mut fields = Fields::new(bytes);
        while let Some((number, value)) = fields.next_field()? {
            match number {
                1 => span.trace_id = value.bytes()?,
                2 => span.span_id = value.bytes()?,
                3 => span.trace_state = value.str()?,
                4 => span.parent_span_id = value.bytes()?,
                5 => span.name = value.str()?,
                // Enums and uint32 keep the varint's low bits, as prost does.
                6 => span.kind = value.varint()? as i32,
                7 => span.start_time_unix_nano = value.fixed64()?,
                8 => span.end_time_unix_nano = value.fixed64()?,
                9 => {
                    let raw = value.bytes()?;
                    self.attributes.push(attribute(raw)?);
                    self.raw_attributes.push(raw);
                }
                10 => span.dropped_attributes_count = value.varint()? as u32,
                11 => self.events.push(value.bytes()?),
                12 => span.dropped_events_count = value.varint()? as u32,
                13 => self.links.push(value.bytes()?),
                14 => span.dropped_links_count = value.varint()? as u32,
                // A repeated `status` merges: each field present overrides.
                15 => {
                    let mut status = Fields::new(value.bytes()?);
                    while let Some((number, value)) = status.next_field()? {
                        match number {
                            2 => span.status_message = value.str()?,
                            3 => span.status_code = value.varint()? as i32,
                            _ => {}
                        }
                    }
                }
                16 => span.flags = value.fixed32()?,
                _ => {}
            }
        }
        span.has_events_or_links = !self.events.is_empty() || !self.links.is_empty();
        // A rejected span takes the prost path, which words the partial success and
        // logs the request without it.
        validate(&span).map_err(|_| Unsupported)?;
        let (raw_attributes, events, links) = (&self.raw_attributes, &self.events, &self.links);
        self.columns
            .append(&span, &self.attributes, |taken, buffer| {
                encode_extra(raw_attributes, taken, events, links, buffer)
            })?;
        self.num_spans += 1;
        Ok(())
    }
}

/// How often a singular message field occurs, and where it first does.
#[derive(Default)]
struct Occurrences<'a> {
    first: Option<&'a [u8]>,
    count: usize,
}

impl<'a> Occurrences<'a> {
    fn push(&mut self, raw: &'a [u8]) {
        self.first.get_or_insert(raw);
        self.count += 1;
    }

    /// The field's bytes when it occurs exactly once, as it nearly always does.
    fn single(&self) -> Option<&'a [u8]> {
        self.first.filter(|_| self.count == 1)
    }
}

/// The bytes of every field numbered `number` in `message`, in order.
fn occurrences(message: &[u8], number: u32) -> Result<Vec<&[u8]>, Unsupported> {
    let mut found = Vec::new();
    let mut fields = Fields::new(message);
    while let Some((n, value)) = fields.next_field()? {
        if n == number {
            found.push(value.bytes()?);
        }
    }
    Ok(found)
}

/// Reads one `KeyValue`. Repeated fields behave as in prost: the last key wins, and
/// repeated values merge, so the last variant set wins.
fn attribute(bytes: &[u8]) -> Result<AttributeView<'_>, Unsupported> {
    let mut key = "";
    let mut value = AttributeValue::Other;
    let mut fields = Fields::new(bytes);
    while let Some((number, field)) = fields.next_field()? {
        match number {
            1 => key = field.str()?,
            2 => {
                let mut any = Fields::new(field.bytes()?);
                while let Some((number, field)) = any.next_field()? {
                    if let Some(set) = any_value(number, field)? {
                        value = set;
                    }
                }
            }
            // `key_strindex`: an int32.
            3 => {
                field.varint()?;
            }
            _ => {}
        }
    }
    Ok(AttributeView { key, value })
}

/// One field of an `AnyValue`: what the columns need of the value it sets, after
/// checking it as prost would; `None` for an unknown field, which prost skips. Arrays
/// and maps are left to prost.
fn any_value(number: u32, field: Wire<'_>) -> Result<Option<AttributeValue<'_>>, Unsupported> {
    Ok(Some(match number {
        1 => AttributeValue::Str(field.str()?),
        3 => AttributeValue::Int(field.varint()? as i64),
        // bool, string_value_strindex
        2 | 8 => {
            field.varint()?;
            AttributeValue::Other
        }
        // double
        4 => {
            field.fixed64()?;
            AttributeValue::Other
        }
        // bytes
        7 => {
            field.bytes()?;
            AttributeValue::Other
        }
        // array, kvlist
        5 | 6 => return Err(Unsupported),
        _ => return Ok(None),
    }))
}

/// `extra_proto` from the raw parts: each decoded with prost (which checks them) and
/// encoded again, since the stored bytes are prost's canonical encoding.
fn encode_extra(
    attributes: &[&[u8]],
    taken: &[bool],
    events: &[&[u8]],
    links: &[&[u8]],
    buffer: &mut Vec<u8>,
) -> Result<(), Unsupported> {
    for (raw, _) in attributes.iter().zip(taken).filter(|(_, t)| !**t) {
        let kv = KeyValue::decode(*raw).map_err(|_| Unsupported)?;
        if too_deep(&kv) {
            return Err(Unsupported);
        }
        buffer.push(extra_tag::ATTRIBUTE);
        kv.encode_length_delimited(buffer)
            .expect("a Vec grows as needed");
    }
    for raw in events {
        let event = Event::decode(*raw).map_err(|_| Unsupported)?;
        if event.attributes.iter().any(too_deep) {
            return Err(Unsupported);
        }
        buffer.push(extra_tag::EVENT);
        event
            .encode_length_delimited(buffer)
            .expect("a Vec grows as needed");
    }
    for raw in links {
        let link = Link::decode(*raw).map_err(|_| Unsupported)?;
        if link.attributes.iter().any(too_deep) {
            return Err(Unsupported);
        }
        buffer.push(extra_tag::LINK);
        link.encode_length_delimited(buffer)
            .expect("a Vec grows as needed");
    }
    Ok(())
}

/// Whether an attribute's value nests deeper than [`MAX_VALUE_DEPTH`].
fn too_deep(kv: &KeyValue) -> bool {
    kv.value
        .as_ref()
        .is_some_and(|v| value_depth(v, MAX_VALUE_DEPTH).is_none())
}

/// `Some` when `value` nests at most `budget` levels of arrays and maps.
fn value_depth(value: &AnyValue, budget: usize) -> Option<()> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match value.value.as_ref() {
        Some(Value::ArrayValue(array)) => {
            let budget = budget.checked_sub(1)?;
            array.values.iter().try_for_each(|v| value_depth(v, budget))
        }
        Some(Value::KvlistValue(map)) => {
            let budget = budget.checked_sub(1)?;
            map.values
                .iter()
                .filter_map(|kv| kv.value.as_ref())
                .try_for_each(|v| value_depth(v, budget))
        }
        _ => Some(()),
    }
}
