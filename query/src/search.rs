//! Trace search: which traces hold a span matching a service, operation, tags,
//! duration bounds and a time range. DataFusion filters on columns; tags without a
//! column of their own are matched on the decoded attributes of the survivors.

use std::collections::HashMap;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::prelude::{Expr, col, lit};
use tracegate_storage::{
    INT_ATTRIBUTE_COLUMNS, STRING_ATTRIBUTE_COLUMNS, SpanRows, Tables, col as column,
};

use crate::attribute_text::attribute_text;
use crate::error::QueryError;
use crate::table::{TimeRange, span_session, spans_frame};
use crate::views::STATUS_ERROR;

/// A trace search, as Jaeger's `GET /api/traces` asks it.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    /// Service of the matching span.
    pub service: Option<String>,
    /// Operation (span name) of the matching span.
    pub operation: Option<String>,
    /// Tags the matching span (or its resource) must carry; `error=true` means status
    /// ERROR.
    pub tags: Vec<(String, String)>,
    /// Minimum span duration, nanoseconds.
    pub min_duration_nanos: Option<i64>,
    /// Maximum span duration, nanoseconds.
    pub max_duration_nanos: Option<i64>,
    /// Span start range.
    pub range: Option<TimeRange>,
    /// Most traces to return, newest first.
    pub limit: usize,
}

/// One matching trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHit {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// Start of its latest matching span, Unix nanoseconds.
    pub latest_start_unix_nano: i64,
}

/// Runs a trace search, newest traces first.
///
/// # Errors
/// When the query engine fails.
pub async fn search_traces(
    tables: &Tables,
    query: &TraceQuery,
) -> Result<Vec<TraceHit>, QueryError> {
    let range = query.range.unwrap_or(TimeRange::ALL);
    let ctx = span_session();
    let frame = spans_frame(&ctx, tables, range).await?;

    let mut predicate = col(column::START)
        .gt_eq(lit(range.start_unix_nano))
        .and(col(column::START).lt_eq(lit(range.end_unix_nano)));
    let duration = || col(column::END) - col(column::START);
    if let Some(service) = &query.service {
        predicate = predicate.and(col(column::SERVICE).eq(lit(service.as_str())));
    }
    if let Some(operation) = &query.operation {
        predicate = predicate.and(col(column::NAME).eq(lit(operation.as_str())));
    }
    if let Some(min) = query.min_duration_nanos {
        predicate = predicate.and(duration().gt_eq(lit(min)));
    }
    if let Some(max) = query.max_duration_nanos {
        predicate = predicate.and(duration().lt_eq(lit(max)));
    }
    let mut residual_tags = Vec::new();
    for (key, value) in &query.tags {
        match column_predicate(key, value) {
            Some(expr) => predicate = predicate.and(expr),
            None => residual_tags.push((key.as_str(), value.as_str())),
        }
    }

    let mut frame = frame.filter(predicate)?;
    if residual_tags.is_empty() {
        frame = frame.select_columns(&[column::TRACE_ID, column::START])?;
    }
    let batches = frame.collect().await?;

    let mut latest: HashMap<[u8; 16], i64> = HashMap::new();
    for batch in &batches {
        collect_hits(batch, &residual_tags, &mut latest)?;
    }
    let mut hits: Vec<TraceHit> = latest
        .into_iter()
        .map(|(trace_id, latest_start_unix_nano)| TraceHit {
            trace_id,
            latest_start_unix_nano,
        })
        .collect();
    hits.sort_by(|a, b| {
        b.latest_start_unix_nano
            .cmp(&a.latest_start_unix_nano)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    hits.truncate(query.limit.max(1));
    Ok(hits)
}

/// A DataFusion predicate for a tag that has a column of its own.
fn column_predicate(key: &str, value: &str) -> Option<Expr> {
    if key == "error" {
        let is_error = col(column::STATUS_CODE).eq(lit(STATUS_ERROR));
        return match value {
            "true" => Some(is_error),
            "false" => Some(is_error.not_eq(lit(true))),
            _ => None,
        };
    }
    if let Some((name, _)) = STRING_ATTRIBUTE_COLUMNS.iter().find(|(_, k)| *k == key) {
        return Some(col(*name).eq(lit(value)));
    }
    let (name, _) = INT_ATTRIBUTE_COLUMNS.iter().find(|(_, k)| *k == key)?;
    // A value that is not an integer may still match a stored string attribute.
    value.parse::<i32>().ok().map(|v| col(*name).eq(lit(v)))
}

fn collect_hits(
    batch: &RecordBatch,
    residual_tags: &[(&str, &str)],
    latest: &mut HashMap<[u8; 16], i64>,
) -> Result<(), QueryError> {
    let ids = batch
        .column_by_name(column::TRACE_ID)
        .and_then(|c| c.as_fixed_size_binary_opt())
        .ok_or_else(|| QueryError::BadRequest("search result lacks trace ids".to_string()))?;
    let starts = batch
        .column_by_name(column::START)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| QueryError::BadRequest("search result lacks start times".to_string()))?;
    let rows = if residual_tags.is_empty() {
        None
    } else {
        Some(SpanRows::new(batch)?)
    };

    for row in 0..batch.num_rows() {
        if let Some(rows) = &rows
            && !tags_match(rows, row, residual_tags)?
        {
            continue;
        }
        let Ok(trace_id) = <[u8; 16]>::try_from(ids.value(row)) else {
            continue;
        };
        let start = starts.value(row);
        latest
            .entry(trace_id)
            .and_modify(|s| *s = (*s).max(start))
            .or_insert(start);
    }
    Ok(())
}

/// True when every tag matches an attribute of the span, its resource, or a status
/// field.
fn tags_match(rows: &SpanRows<'_>, row: usize, tags: &[(&str, &str)]) -> Result<bool, QueryError> {
    let span = rows.span(row)?;
    let resource = rows.resource(row)?;
    for (key, value) in tags {
        let found = span
            .attributes
            .iter()
            .chain(&resource.attributes)
            .any(|kv| kv.key == *key && attribute_text(kv.value.as_ref()) == *value);
        let status_match = match *key {
            "otel.status_description" => span.status.as_ref().is_some_and(|s| s.message == *value),
            "span.kind" => crate::span_view::SpanKind::from_otlp(span.kind).jaeger_name() == *value,
            _ => false,
        };
        if !found && !status_match {
            return Ok(false);
        }
    }
    Ok(true)
}
