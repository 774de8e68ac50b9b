//! Decodes span batches into [`SpanView`] rows for the analyses.

use arrow::array::{Array, RecordBatch};
use tracegate_storage::{
    DictStr, StorageError, col, fixed_binary_column, int8_column, int64_column,
};

use crate::span_view::{Placement, SpanKind, SpanView};

/// The latest time the analyses work with (about the year 2255): stored times stay
/// exactly as sent, but a span ending at `u64::MAX` must not overflow clock-skew shifts
/// and durations in trees, demarcation and the judge.
const MAX_TIME_UNIX_NANO: i64 = i64::MAX / 2;

/// OTLP `STATUS_CODE_ERROR`.
pub const STATUS_ERROR: i8 = 2;

/// The columns that [`append_span_views`] reads: project these in a scan whose rows
/// become span views.
pub const SPAN_VIEW_COLUMNS: [&str; 14] = [
    col::TRACE_ID,
    col::SPAN_ID,
    col::PARENT_SPAN_ID,
    col::NAME,
    col::KIND,
    col::START,
    col::END,
    col::STATUS_CODE,
    col::SERVICE,
    col::NAMESPACE,
    col::WORKLOAD,
    col::VERSION,
    col::POD,
    col::PEER,
];

/// Decodes every row of `batches`.
///
/// # Errors
/// When a batch does not follow the span schema.
pub fn span_views(batches: &[RecordBatch]) -> Result<Vec<SpanView>, StorageError> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in batches {
        append_span_views(batch, &mut out)?;
    }
    Ok(out)
}

/// Decodes every row of `batch` into `out`.
///
/// # Errors
/// When the batch does not follow the span schema.
pub fn append_span_views(batch: &RecordBatch, out: &mut Vec<SpanView>) -> Result<(), StorageError> {
    let trace_id = fixed_binary_column(batch, col::TRACE_ID)?;
    let span_id = fixed_binary_column(batch, col::SPAN_ID)?;
    let parent = fixed_binary_column(batch, col::PARENT_SPAN_ID)?;
    let start = int64_column(batch, col::START)?;
    let end = int64_column(batch, col::END)?;
    let kind = int8_column(batch, col::KIND)?;
    let status = int8_column(batch, col::STATUS_CODE)?;
    let name = DictStr::of(batch, col::NAME)?;
    let service = DictStr::of(batch, col::SERVICE)?;
    let namespace = DictStr::of(batch, col::NAMESPACE)?;
    let workload = DictStr::of(batch, col::WORKLOAD)?;
    let version = DictStr::of(batch, col::VERSION)?;
    let pod = DictStr::of(batch, col::POD)?;
    let peer = DictStr::of(batch, col::PEER)?;

    let owned = |d: &DictStr<'_>, row| d.get(row).map(str::to_string);
    for row in 0..batch.num_rows() {
        out.push(SpanView {
            trace_id: trace_id.value(row).try_into().unwrap_or_default(),
            span_id: span_id.value(row).try_into().unwrap_or_default(),
            parent_span_id: (!parent.is_null(row))
                .then(|| parent.value(row).try_into().unwrap_or_default()),
            name: name.get(row).unwrap_or_default().to_string(),
            kind: SpanKind::from_otlp(i32::from(kind.value(row))),
            start_unix_nano: start.value(row).clamp(0, MAX_TIME_UNIX_NANO),
            end_unix_nano: end.value(row).clamp(
                start.value(row).clamp(0, MAX_TIME_UNIX_NANO),
                MAX_TIME_UNIX_NANO,
            ),
            error: status.value(row) == STATUS_ERROR,
            placement: Placement {
                service: service
                    .get(row)
                    .unwrap_or(tracegate_storage::UNKNOWN_SERVICE)
                    .to_string(),
                namespace: owned(&namespace, row),
                workload: owned(&workload, row),
                version: owned(&version, row),
                pod: owned(&pod, row),
            },
            peer: owned(&peer, row),
        });
    }
    Ok(())
}
