//! The traces of a time range, assembled into call trees for the analyses
//! (demarcation, outliers, canary judgement).
//!
//! One DataFusion scan projects the columns a [`SpanView`] needs for every span that
//! starts in the range; rows are grouped by trace in memory and only the selected
//! traces are decoded. Traces are capped so that a long range costs bounded memory:
//! failing traces are kept first, then the most recent others.

use std::collections::HashMap;

use datafusion::prelude::{col, lit};
use tracegate_storage::{Tables, col as column, fixed_binary_column, int8_column, int64_column};

use crate::error::QueryError;
use crate::span_view::SpanView;
use crate::table::{TimeRange, span_session, spans_frame};
use crate::tree::CallTree;
use crate::views::{SPAN_VIEW_COLUMNS, STATUS_ERROR, append_span_views};

/// Which traces to load.
#[derive(Debug, Clone)]
pub struct TraceSelection {
    /// Only traces with a span of this service.
    pub service: Option<String>,
    /// Most traces with an error span.
    pub max_failing: usize,
    /// Most traces without one.
    pub max_other: usize,
}

impl Default for TraceSelection {
    fn default() -> Self {
        Self {
            service: None,
            max_failing: 2_000,
            max_other: 2_000,
        }
    }
}

/// The assembled traces of a range.
#[derive(Debug, Default)]
pub struct TraceSet {
    /// Call trees, failing traces first.
    pub trees: Vec<CallTree>,
    /// Traces in the range before the cap.
    pub num_traces_in_range: usize,
    /// Traces with an error span before the cap.
    pub num_failing_in_range: usize,
}

/// Loads and assembles the traces of `range` that `selection` picks.
///
/// # Errors
/// When the query engine fails.
pub async fn load_traces(
    tables: &Tables,
    range: TimeRange,
    selection: &TraceSelection,
) -> Result<TraceSet, QueryError> {
    let ctx = span_session();
    let batches = spans_frame(&ctx, tables, range)
        .await?
        .filter(
            col(column::START)
                .gt_eq(lit(range.start_unix_nano))
                .and(col(column::START).lt_eq(lit(range.end_unix_nano))),
        )?
        .select_columns(&SPAN_VIEW_COLUMNS)?
        .collect()
        .await?;

    // Per trace: whether it failed, whether it touches the service, its latest start.
    struct Seen {
        failed: bool,
        has_service: bool,
        latest_start: i64,
    }
    let mut seen: HashMap<[u8; 16], Seen> = HashMap::new();
    for batch in &batches {
        let ids = fixed_binary_column(batch, column::TRACE_ID)?;
        let status = int8_column(batch, column::STATUS_CODE)?;
        let starts = int64_column(batch, column::START)?;
        let services = tracegate_storage::DictStr::of(batch, column::SERVICE)?;
        for row in 0..batch.num_rows() {
            let Ok(id) = <[u8; 16]>::try_from(ids.value(row)) else {
                continue;
            };
            let entry = seen.entry(id).or_insert(Seen {
                failed: false,
                has_service: false,
                latest_start: i64::MIN,
            });
            entry.failed |= status.value(row) == STATUS_ERROR;
            entry.has_service |= selection
                .service
                .as_deref()
                .is_none_or(|s| services.get(row) == Some(s));
            entry.latest_start = entry.latest_start.max(starts.value(row));
        }
    }

    let mut candidates: Vec<([u8; 16], &Seen)> = seen
        .iter()
        .filter(|(_, s)| s.has_service)
        .map(|(id, s)| (*id, s))
        .collect();
    candidates.sort_by(|a, b| b.1.latest_start.cmp(&a.1.latest_start).then(a.0.cmp(&b.0)));
    let num_traces_in_range = candidates.len();
    let num_failing_in_range = candidates.iter().filter(|(_, s)| s.failed).count();
    let failing = candidates
        .iter()
        .filter(|(_, s)| s.failed)
        .take(selection.max_failing);
    let other = candidates
        .iter()
        .filter(|(_, s)| !s.failed)
        .take(selection.max_other);
    let chosen: HashMap<[u8; 16], usize> = failing
        .chain(other)
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();

    let mut spans_by_trace: Vec<Vec<SpanView>> = vec![Vec::new(); chosen.len()];
    let mut scratch = Vec::new();
    for batch in &batches {
        scratch.clear();
        append_span_views(batch, &mut scratch)?;
        for span in scratch.drain(..) {
            if let Some(index) = chosen.get(&span.trace_id) {
                spans_by_trace[*index].push(span);
            }
        }
    }
    let mut trees = Vec::with_capacity(spans_by_trace.len());
    for spans in spans_by_trace.into_iter().filter(|s| !s.is_empty()) {
        match CallTree::assemble(spans) {
            Ok(tree) => trees.push(tree),
            Err(error) => tracing::debug!(%error, "trace skipped by analysis"),
        }
    }
    Ok(TraceSet {
        trees,
        num_traces_in_range,
        num_failing_in_range,
    })
}
