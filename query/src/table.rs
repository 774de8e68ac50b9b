//! DataFusion over stored spans: one `DataFrame` that unions the memory batches with
//! the Parquet segments overlapping the asked time range.
//!
//! Segment files outside the range are skipped from their footer metadata before
//! DataFusion sees them; inside the files DataFusion prunes row groups and pages from
//! their statistics.

use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use std::sync::Arc;
use tracegate_storage::{Tables, span_schema};

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

    let paths: Vec<String> = tables
        .segments
        .iter()
        .filter(|s| s.overlaps(range.start_unix_nano, range.end_unix_nano))
        .map(|s| s.path().display().to_string())
        .collect();
    if !paths.is_empty() {
        let options = ParquetReadOptions::default().schema(&schema);
        let files = ctx.read_parquet(paths, options).await?;
        frame = frame.union(files)?;
    }
    Ok(frame)
}
