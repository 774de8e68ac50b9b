//! Turns stored span rows back into OTLP `ResourceSpans`, losslessly: dedicated
//! attribute columns are merged back with the protobuf remainder, and spans are
//! regrouped under their original resource and scope.

use arrow::array::{
    Array, AsArray, BinaryArray, DictionaryArray, FixedSizeBinaryArray, Int8Array, Int32Array,
    Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::Int32Type;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use crate::error::StorageError;
use crate::schema::{INT_ATTRIBUTE_COLUMNS, STRING_ATTRIBUTE_COLUMNS, col};

/// Typed access to the columns of one span batch.
pub struct SpanRows<'a> {
    trace_id: &'a FixedSizeBinaryArray,
    span_id: &'a FixedSizeBinaryArray,
    parent_span_id: &'a FixedSizeBinaryArray,
    trace_state: &'a StringArray,
    flags: &'a UInt32Array,
    name: DictStr<'a>,
    kind: &'a Int8Array,
    start: &'a Int64Array,
    end: &'a Int64Array,
    status_code: &'a Int8Array,
    status_message: &'a StringArray,
    string_attributes: Vec<DictStr<'a>>,
    int_attributes: Vec<&'a Int32Array>,
    extra_proto: &'a BinaryArray,
    dropped_attributes: &'a UInt32Array,
    dropped_events: &'a UInt32Array,
    dropped_links: &'a UInt32Array,
    resource_proto: DictBin<'a>,
    resource_schema_url: DictStr<'a>,
    scope_proto: DictBin<'a>,
    scope_schema_url: DictStr<'a>,
}

/// A dictionary-encoded string column.
#[derive(Clone, Copy)]
pub struct DictStr<'a> {
    keys: &'a Int32Array,
    values: &'a StringArray,
}

impl<'a> DictStr<'a> {
    /// Reads a dictionary column of the batch.
    ///
    /// # Errors
    /// When the column is missing or not a `Dictionary(Int32, Utf8)`.
    pub fn of(batch: &'a RecordBatch, name: &str) -> Result<Self, StorageError> {
        let dict: &DictionaryArray<Int32Type> = column(batch, name)?
            .as_dictionary_opt()
            .ok_or_else(|| StorageError::schema(name, "a string dictionary"))?;
        let values = dict
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| StorageError::schema(name, "a string dictionary"))?;
        Ok(Self {
            keys: dict.keys(),
            values,
        })
    }

    /// The value of row `row`, `None` when null.
    pub fn get(&self, row: usize) -> Option<&'a str> {
        if self.keys.is_null(row) {
            return None;
        }
        let key = usize::try_from(self.keys.value(row)).ok()?;
        (!self.values.is_null(key)).then(|| self.values.value(key))
    }

    /// The dictionary key of row `row`, for cheap equality tests within one batch.
    pub fn key(&self, row: usize) -> Option<i32> {
        (!self.keys.is_null(row)).then(|| self.keys.value(row))
    }
}

/// A dictionary-encoded binary column.
#[derive(Clone, Copy)]
struct DictBin<'a> {
    keys: &'a Int32Array,
    values: &'a BinaryArray,
}

impl<'a> DictBin<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> Result<Self, StorageError> {
        let dict: &DictionaryArray<Int32Type> = column(batch, name)?
            .as_dictionary_opt()
            .ok_or_else(|| StorageError::schema(name, "a binary dictionary"))?;
        let values = dict
            .values()
            .as_binary_opt::<i32>()
            .ok_or_else(|| StorageError::schema(name, "a binary dictionary"))?;
        Ok(Self {
            keys: dict.keys(),
            values,
        })
    }

    fn get(&self, row: usize) -> &'a [u8] {
        if self.keys.is_null(row) {
            return &[];
        }
        usize::try_from(self.keys.value(row)).map_or(&[], |key| self.values.value(key))
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, StorageError> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| StorageError::schema(name, "present"))
}

fn typed<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, StorageError> {
    column(batch, name)?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| StorageError::schema(name, std::any::type_name::<T>()))
}

impl<'a> SpanRows<'a> {
    /// Binds the columns of a span batch.
    ///
    /// # Errors
    /// When the batch does not follow the span schema.
    pub fn new(batch: &'a RecordBatch) -> Result<Self, StorageError> {
        let mut string_attributes = Vec::new();
        for (name, _) in &STRING_ATTRIBUTE_COLUMNS {
            string_attributes.push(DictStr::of(batch, name)?);
        }
        let mut int_attributes = Vec::new();
        for (name, _) in &INT_ATTRIBUTE_COLUMNS {
            int_attributes.push(typed::<Int32Array>(batch, name)?);
        }
        Ok(Self {
            trace_id: typed(batch, col::TRACE_ID)?,
            span_id: typed(batch, col::SPAN_ID)?,
            parent_span_id: typed(batch, col::PARENT_SPAN_ID)?,
            trace_state: typed(batch, col::TRACE_STATE)?,
            flags: typed(batch, col::FLAGS)?,
            name: DictStr::of(batch, col::NAME)?,
            kind: typed(batch, col::KIND)?,
            start: typed(batch, col::START)?,
            end: typed(batch, col::END)?,
            status_code: typed(batch, col::STATUS_CODE)?,
            status_message: typed(batch, col::STATUS_MESSAGE)?,
            string_attributes,
            int_attributes,
            extra_proto: typed(batch, col::EXTRA_PROTO)?,
            dropped_attributes: typed(batch, col::DROPPED_ATTRIBUTES)?,
            dropped_events: typed(batch, col::DROPPED_EVENTS)?,
            dropped_links: typed(batch, col::DROPPED_LINKS)?,
            resource_proto: DictBin::of(batch, col::RESOURCE_PROTO)?,
            resource_schema_url: DictStr::of(batch, col::RESOURCE_SCHEMA_URL)?,
            scope_proto: DictBin::of(batch, col::SCOPE_PROTO)?,
            scope_schema_url: DictStr::of(batch, col::SCOPE_SCHEMA_URL)?,
        })
    }

    /// The trace id of row `row`.
    pub fn trace_id(&self, row: usize) -> &'a [u8] {
        self.trace_id.value(row)
    }

    /// The resource of row `row`.
    ///
    /// # Errors
    /// When the stored resource protobuf does not decode.
    pub fn resource(&self, row: usize) -> Result<Resource, StorageError> {
        Resource::decode(self.resource_proto.get(row))
            .map_err(|e| StorageError::Corrupt(format!("resource: {e}")))
    }

    /// Rebuilds the OTLP span of row `row`.
    ///
    /// # Errors
    /// When the stored protobuf remainder does not decode.
    pub fn span(&self, row: usize) -> Result<Span, StorageError> {
        let extra = if self.extra_proto.is_null(row) {
            Span::default()
        } else {
            Span::decode(self.extra_proto.value(row))
                .map_err(|e| StorageError::Corrupt(format!("span attributes: {e}")))?
        };

        let mut attributes = Vec::with_capacity(extra.attributes.len() + 4);
        for ((_, key), column) in STRING_ATTRIBUTE_COLUMNS.iter().zip(&self.string_attributes) {
            if let Some(value) = column.get(row) {
                attributes.push(key_value(key, Value::StringValue(value.to_string())));
            }
        }
        for ((_, key), column) in INT_ATTRIBUTE_COLUMNS.iter().zip(&self.int_attributes) {
            if !column.is_null(row) {
                attributes.push(key_value(
                    key,
                    Value::IntValue(i64::from(column.value(row))),
                ));
            }
        }
        attributes.extend(extra.attributes);

        let status_code = i32::from(self.status_code.value(row));
        let status_message = opt_str(self.status_message, row).unwrap_or_default();
        let status = (status_code != 0 || !status_message.is_empty()).then(|| Status {
            code: status_code,
            message: status_message.to_string(),
        });
        Ok(Span {
            trace_id: self.trace_id.value(row).to_vec(),
            span_id: self.span_id.value(row).to_vec(),
            parent_span_id: if self.parent_span_id.is_null(row) {
                Vec::new()
            } else {
                self.parent_span_id.value(row).to_vec()
            },
            trace_state: opt_str(self.trace_state, row)
                .unwrap_or_default()
                .to_string(),
            flags: self.flags.value(row),
            name: self.name.get(row).unwrap_or_default().to_string(),
            kind: i32::from(self.kind.value(row)),
            start_time_unix_nano: u64::try_from(self.start.value(row)).unwrap_or(0),
            end_time_unix_nano: u64::try_from(self.end.value(row)).unwrap_or(0),
            attributes,
            dropped_attributes_count: self.dropped_attributes.value(row),
            events: extra.events,
            dropped_events_count: self.dropped_events.value(row),
            links: extra.links,
            dropped_links_count: self.dropped_links.value(row),
            status,
        })
    }
}

fn opt_str(array: &StringArray, row: usize) -> Option<&str> {
    (!array.is_null(row)).then(|| array.value(row))
}

fn key_value(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// Spans of one scope: encoded scope, schema URL, spans.
type ScopeGroup = (Vec<u8>, String, Vec<Span>);
/// Scopes of one resource: encoded resource, schema URL, scopes.
type ResourceGroup = (Vec<u8>, String, Vec<ScopeGroup>);

/// Rebuilds `ResourceSpans` from span rows, grouping spans under their original resource
/// and scope. Rows are visited in the order given.
///
/// # Errors
/// When a batch does not follow the span schema or holds a corrupt protobuf.
pub fn to_resource_spans(
    rows: &[(&RecordBatch, usize)],
) -> Result<Vec<ResourceSpans>, StorageError> {
    let mut out: Vec<ResourceGroup> = Vec::new();
    let mut bound: Vec<(*const RecordBatch, SpanRows<'_>)> = Vec::new();
    for &(batch, row) in rows {
        let ptr: *const RecordBatch = batch;
        let index = match bound.iter().position(|(p, _)| *p == ptr) {
            Some(index) => index,
            None => {
                bound.push((ptr, SpanRows::new(batch)?));
                bound.len() - 1
            }
        };
        let span_rows = &bound[index].1;
        let resource = span_rows.resource_proto.get(row);
        let resource_url = span_rows.resource_schema_url.get(row).unwrap_or_default();
        let scope = span_rows.scope_proto.get(row);
        let scope_url = span_rows.scope_schema_url.get(row).unwrap_or_default();
        let span = span_rows.span(row)?;

        let group = match out
            .iter()
            .position(|(r, u, _)| r == resource && u == resource_url)
        {
            Some(group) => group,
            None => {
                out.push((resource.to_vec(), resource_url.to_string(), Vec::new()));
                out.len() - 1
            }
        };
        let scopes = &mut out[group].2;
        match scopes
            .iter_mut()
            .find(|(s, u, _)| s == scope && u == scope_url)
        {
            Some((_, _, spans)) => spans.push(span),
            None => scopes.push((scope.to_vec(), scope_url.to_string(), vec![span])),
        }
    }

    let mut result = Vec::with_capacity(out.len());
    for (resource, schema_url, scopes) in out {
        let resource = Resource::decode(resource.as_slice())
            .map_err(|e| StorageError::Corrupt(format!("resource: {e}")))?;
        let mut scope_spans = Vec::with_capacity(scopes.len());
        for (scope, scope_url, spans) in scopes {
            let scope = InstrumentationScope::decode(scope.as_slice())
                .map_err(|e| StorageError::Corrupt(format!("scope: {e}")))?;
            scope_spans.push(ScopeSpans {
                scope: Some(scope),
                spans,
                schema_url: scope_url,
            });
        }
        result.push(ResourceSpans {
            resource: Some(resource),
            scope_spans,
            schema_url,
        });
    }
    Ok(result)
}
