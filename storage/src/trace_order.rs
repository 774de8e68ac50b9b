//! A sealed head's rows in segment order (trace id, then start time), produced a chunk
//! at a time without a sorted copy of the whole head.
//!
//! Sorting by concatenating the head and taking every column in sorted order holds the
//! head three times at once (the batches, their concatenation and the sorted copy). Here
//! the order comes from the two sort keys alone (24 bytes a span); the dictionary columns
//! (names, mesh coordinates: a few bytes a span) are concatenated once, so that their
//! dictionaries are merged once, and taken chunk by chunk; every other column is gathered
//! chunk by chunk straight from the head's batches with `interleave`. At the peak a flush
//! holds the head, the dictionary columns and one chunk.
//!
//! (Interleaving the dictionary columns too would merge the dictionaries of all the head's
//! thousands of batches for every chunk: measured, a flush then no longer kept up with
//! ingest.)

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, concat, interleave, lexsort_to_indices, take};
use arrow::datatypes::{DataType, SchemaRef};

use crate::error::StorageError;
use crate::schema::{col, span_schema};

/// How one column of the sorted head is produced.
enum Source {
    /// Concatenated once (dictionary columns), taken by global row number.
    Concatenated(ArrayRef),
    /// Gathered from the batches by `(batch, row)`.
    Batches(Vec<ArrayRef>),
}

/// The rows of a head (batches in the span schema) in trace-id, then start-time order.
pub(crate) struct SortedHead {
    schema: SchemaRef,
    sources: Vec<Source>,
    /// Global row numbers in sorted order.
    order: UInt32Array,
    /// `(batch, row)` of each entry of `order`.
    positions: Vec<(usize, usize)>,
}

impl SortedHead {
    /// Sorts the rows of `batches` by their keys and prepares the columns.
    ///
    /// # Errors
    /// [`StorageError`] when a batch lacks a column or Arrow fails.
    pub(crate) fn new(batches: &[RecordBatch]) -> Result<Self, StorageError> {
        let schema = span_schema();
        let parts =
            |index: usize| -> Result<Vec<ArrayRef>, StorageError> {
                batches
                    .iter()
                    .map(|batch| {
                        batch.columns().get(index).cloned().ok_or_else(|| {
                            StorageError::schema(schema.field(index).name(), "present")
                        })
                    })
                    .collect()
            };
        let concatenated = |index: usize| -> Result<ArrayRef, StorageError> {
            let parts = parts(index)?;
            let refs: Vec<&dyn Array> = parts.iter().map(AsRef::as_ref).collect();
            Ok(concat(&refs)?)
        };
        let key =
            |name: &str| -> Result<ArrayRef, StorageError> { concatenated(schema.index_of(name)?) };
        let order = lexsort_to_indices(
            &[
                SortColumn {
                    values: key(col::TRACE_ID)?,
                    options: None,
                },
                SortColumn {
                    values: key(col::START)?,
                    options: None,
                },
            ],
            None,
        )?;
        let starts: Vec<usize> = batches
            .iter()
            .scan(0, |next, batch| {
                let start = *next;
                *next += batch.num_rows();
                Some(start)
            })
            .collect();
        let positions = order
            .values()
            .iter()
            .map(|&global| {
                let global = global as usize;
                let batch = starts.partition_point(|&start| start <= global) - 1;
                (batch, global - starts[batch])
            })
            .collect();
        let sources = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(index, field)| {
                Ok(match field.data_type() {
                    DataType::Dictionary(..) => Source::Concatenated(concatenated(index)?),
                    _ => Source::Batches(parts(index)?),
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        Ok(Self {
            schema,
            sources,
            order,
            positions,
        })
    }

    /// Rows in the head.
    pub(crate) fn num_rows(&self) -> usize {
        self.positions.len()
    }

    /// Sorted rows `offset..offset + length`, in the span schema.
    ///
    /// # Errors
    /// [`StorageError`] when Arrow fails.
    pub(crate) fn chunk(&self, offset: usize, length: usize) -> Result<RecordBatch, StorageError> {
        let order = self.order.slice(offset, length);
        let positions = &self.positions[offset..offset + length];
        let columns = self
            .sources
            .iter()
            .map(|source| {
                Ok(match source {
                    Source::Concatenated(all) => take(all.as_ref(), &order, None)?,
                    Source::Batches(parts) => {
                        let refs: Vec<&dyn Array> = parts.iter().map(AsRef::as_ref).collect();
                        interleave(&refs, positions)?
                    }
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::columnarize;

    /// A batch of spans given as `(trace byte, span byte, start)`.
    fn batch(spans: &[(u8, u8, u64)]) -> RecordBatch {
        let spans = spans
            .iter()
            .map(|&(trace, span, start)| Span {
                trace_id: vec![trace; 16],
                span_id: vec![span; 8],
                name: format!("span {span}"),
                start_time_unix_nano: start,
                end_time_unix_nano: start + 5,
                ..Span::default()
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        columnarize(&request).batch.expect("valid spans")
    }

    #[test]
    fn rows_follow_trace_then_start_across_batches() {
        let batches = [
            batch(&[(3, 1, 30), (1, 2, 10), (2, 3, 5)]),
            batch(&[(1, 4, 1), (3, 5, 2)]),
        ];
        let sorted = SortedHead::new(&batches).unwrap();
        assert_eq!(sorted.num_rows(), 5);
        let (first, rest) = (sorted.chunk(0, 2).unwrap(), sorted.chunk(2, 3).unwrap());
        assert_eq!(first.schema(), span_schema());
        let span_ids: Vec<u8> = [first, rest]
            .iter()
            .flat_map(|chunk| {
                chunk
                    .column_by_name(col::SPAN_ID)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<arrow::array::FixedSizeBinaryArray>()
                    .unwrap()
                    .iter()
                    .map(|id| id.unwrap()[0])
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(span_ids, [4, 2, 3, 5, 1]);
        // Dictionary columns (the name) follow the same order.
        let names = arrow::compute::cast(
            sorted
                .chunk(0, 5)
                .unwrap()
                .column_by_name(col::NAME)
                .unwrap(),
            &DataType::Utf8,
        )
        .unwrap();
        let names = names
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(names.value(0), "span 4");
        assert_eq!(names.value(4), "span 1");
    }
}
