//! Finding one trace by id, with no time range: the memory batches are scanned, and
//! each segment reads only the row groups whose trace-id range holds the id.

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use crate::error::StorageError;
use crate::head::Tables;
use crate::schema::col;

/// The spans of trace `trace_id`, as batches in storage order.
///
/// # Errors
/// When a segment cannot be read.
pub fn find_trace(tables: &Tables, trace_id: &[u8]) -> Result<Vec<RecordBatch>, StorageError> {
    let mut out = Vec::new();
    for segment in &tables.segments {
        out.extend(segment.read_trace(trace_id)?);
    }
    for batch in tables.memory_batches() {
        let ids = batch
            .column_by_name(col::TRACE_ID)
            .and_then(|c| c.as_fixed_size_binary_opt())
            .ok_or_else(|| StorageError::schema(col::TRACE_ID, "fixed-size binary"))?;
        let mask: BooleanArray = ids.iter().map(|id| Some(id == Some(trace_id))).collect();
        if mask.true_count() > 0 {
            out.push(filter_record_batch(batch, &mask)?);
        }
    }
    Ok(out)
}
