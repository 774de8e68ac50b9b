//! DataFusion over stored spans: one `DataFrame` that unions the memory batches with
//! the Parquet segments overlapping the asked time range.
//!
//! Segment files outside the range are skipped from their footer metadata before
//! DataFusion sees them; inside the files DataFusion prunes row groups from their
//! statistics. The files store each span's duration, which the frame turns back into
//! the end.

use datafusion::arrow::datatypes::Schema;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::prelude::{Expr, ParquetReadOptions, SessionConfig, SessionContext, ident};
use std::sync::Arc;
use tracegate_storage::{Tables, col, segment_schema, span_schema};

use crate::error::QueryError;

/// A time range in Unix nanoseconds, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Earliest span start.
    pub start_unix_nano: i64,
    /// Latest span start.
    pub end_unix_nano: i64,
}

impl TimeRange {
    /// All of time.
    pub const ALL: Self = Self {
        start_unix_nano: i64::MIN,
        end_unix_nano: i64::MAX,
    };
}

/// A DataFusion session configured for span queries.
pub fn span_session() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        )
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    SessionContext::new_with_config(config)
}

/// The spans of `tables` that may start within `range`, as one DataFrame (still to be
/// filtered by the caller on the exact range).
///
/// # Errors
/// When DataFusion cannot plan the scan.
pub async fn spans_frame(
    ctx: &SessionContext,
    tables: &Tables,
    range: TimeRange,
) -> Result<DataFrame, QueryError> {
    let schema = span_schema();
    let memory: Vec<_> = tables.memory_batches().cloned().collect();
    let table = MemTable::try_new(Arc::clone(&schema), vec![memory])?;
    let mut frame = ctx.read_table(Arc::new(table))?;

    // Segments store the duration instead of the end (older ones the end itself): each
    // kind is read with its own file schema and projected to the span schema.
    for stores_duration in [true, false] {
        let paths: Vec<String> = tables
            .segments
            .iter()
            .filter(|s| s.stores_duration() == stores_duration)
            .filter(|s| s.overlaps(range.start_unix_nano, range.end_unix_nano))
            .map(|s| s.path().display().to_string())
            .collect();
        if paths.is_empty() {
            continue;
        }
        let files = if stores_duration {
            let file_schema = segment_schema();
            let options = ParquetReadOptions::default().schema(&file_schema);
            ctx.read_parquet(paths, options)
                .await?
                .select(span_columns_from_segment(&schema))?
        } else {
            let options = ParquetReadOptions::default().schema(&schema);
            ctx.read_parquet(paths, options).await?
        };
        frame = frame.union(files)?;
    }
    Ok(frame)
}

/// The span schema's columns from a segment file's: every column as it is, the end as
/// start plus duration (wrapping, as DataFusion adds, so every end comes back exactly).
fn span_columns_from_segment(schema: &Schema) -> Vec<Expr> {
    schema
        .fields()
        .iter()
        .map(|field| {
            if field.name() == col::END {
                (ident(col::START) + ident(col::DURATION)).alias(col::END)
            } else {
                ident(field.name())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::Int64Type;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use tracegate_storage::{Segment, columnarize};

    use super::*;

    /// Spans whose ends are after, before and far from their starts.
    fn spans(first_id: u8) -> RecordBatch {
        let spans = (0..12u8)
            .map(|i| {
                let start = 1_767_225_600_000_000_000 + u64::from(i) * 1_000_003;
                Span {
                    trace_id: vec![first_id; 16],
                    span_id: vec![first_id, i + 1, 0, 0, 0, 0, 0, 1],
                    name: format!("op{i}"),
                    start_time_unix_nano: start,
                    end_time_unix_nano: match i % 4 {
                        0 => start + 2_345_678,
                        1 => start - 7,
                        2 => u64::MAX,
                        _ => 1,
                    },
                    ..Default::default()
                }
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        columnarize(&request).batch.expect("valid spans")
    }

    fn ends_by_span(batches: &[RecordBatch]) -> HashMap<Vec<u8>, i64> {
        let mut out = HashMap::new();
        for batch in batches {
            let ids = batch
                .column_by_name(col::SPAN_ID)
                .expect("span ids")
                .as_fixed_size_binary();
            let ends = batch
                .column_by_name(col::END)
                .expect("ends")
                .as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                out.insert(ids.value(row).to_vec(), ends.value(row));
            }
        }
        out
    }

    #[tokio::test]
    async fn segment_durations_come_back_as_ends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let stored = spans(1);
        let memory = spans(2);
        let segment = Segment::write(dir.path(), 1, std::slice::from_ref(&stored)).expect("write");
        assert!(segment.stores_duration());
        let tables = Tables {
            head: vec![memory.clone()],
            segments: vec![Arc::new(segment)],
            ..Tables::default()
        };
        let frame = spans_frame(&span_session(), &tables, TimeRange::ALL)
            .await
            .expect("frame");
        assert_eq!(frame.schema().as_arrow().fields(), span_schema().fields());
        let batches = frame.collect().await.expect("collect");

        let mut expected = ends_by_span(&[stored]);
        expected.extend(ends_by_span(&[memory]));
        assert_eq!(ends_by_span(&batches), expected);
    }
}
