//! The services and operations seen in a time range.

use std::collections::BTreeSet;

use arrow::array::AsArray;
use arrow::datatypes::Int8Type;
use datafusion::prelude::{col, lit};
use tracegate_storage::{DictStr, Tables, col as column};

use crate::error::QueryError;
use crate::span_view::SpanKind;
use crate::table::{TimeRange, span_session, spans_frame};

/// A distinct (service, operation, kind).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    /// The service.
    pub service: String,
    /// The span name.
    pub name: String,
    /// The span kind, as its OTLP enum value.
    pub kind: i32,
}

impl Operation {
    /// The span kind.
    pub fn span_kind(&self) -> SpanKind {
        SpanKind::from_otlp(self.kind)
    }
}

/// Every distinct operation in `range`, optionally of one service, sorted.
///
/// # Errors
/// When the query engine fails.
pub async fn list_operations(
    tables: &Tables,
    range: TimeRange,
    service: Option<&str>,
) -> Result<Vec<Operation>, QueryError> {
    let ctx = span_session();
    let mut frame = spans_frame(&ctx, tables, range).await?.filter(
        col(column::START)
            .gt_eq(lit(range.start_unix_nano))
            .and(col(column::START).lt_eq(lit(range.end_unix_nano))),
    )?;
    if let Some(service) = service {
        frame = frame.filter(col(column::SERVICE).eq(lit(service)))?;
    }
    let batches = frame
        .aggregate(
            vec![col(column::SERVICE), col(column::NAME), col(column::KIND)],
            vec![],
        )?
        .collect()
        .await?;

    let mut out = BTreeSet::new();
    for batch in &batches {
        let services = DictStr::of(batch, column::SERVICE)?;
        let names = DictStr::of(batch, column::NAME)?;
        let kinds = batch
            .column_by_name(column::KIND)
            .and_then(|c| c.as_primitive_opt::<Int8Type>())
            .ok_or_else(|| QueryError::BadRequest("operation list lacks kinds".to_string()))?;
        for row in 0..batch.num_rows() {
            out.insert(Operation {
                service: services.get(row).unwrap_or_default().to_string(),
                name: names.get(row).unwrap_or_default().to_string(),
                kind: i32::from(kinds.value(row)),
            });
        }
    }
    Ok(out.into_iter().collect())
}
