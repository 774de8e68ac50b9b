//! One trace fetched by id: its rows, rebuilt as OTLP or decoded for analysis.

use arrow::array::RecordBatch;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tracegate_storage::{Tables, find_trace, to_resource_spans};

use crate::error::QueryError;
use crate::span_view::SpanView;
use crate::views::span_views;

/// The stored spans of one trace.
#[derive(Debug, Clone)]
pub struct TraceData {
    trace_id: [u8; 16],
    batches: Vec<RecordBatch>,
}

impl TraceData {
    /// Looks the trace up in every table, with no time range.
    ///
    /// # Errors
    /// [`QueryError::NotFound`] when no span has this id; storage errors.
    pub fn fetch(tables: &Tables, trace_id: [u8; 16]) -> Result<Self, QueryError> {
        let batches = find_trace(tables, &trace_id)?;
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Err(QueryError::NotFound(format!(
                "trace {} not found",
                hex::encode(trace_id)
            )));
        }
        Ok(Self { trace_id, batches })
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// Number of spans.
    pub fn num_spans(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The trace as OTLP `ResourceSpans`, spans grouped under their resource and scope.
    ///
    /// # Errors
    /// When stored protobuf bytes are corrupt.
    pub fn resource_spans(&self) -> Result<Vec<ResourceSpans>, QueryError> {
        let rows: Vec<_> = self
            .batches
            .iter()
            .flat_map(|b| (0..b.num_rows()).map(move |row| (b, row)))
            .collect();
        Ok(to_resource_spans(&rows)?)
    }

    /// The spans decoded for analysis.
    ///
    /// # Errors
    /// When a batch does not follow the span schema.
    pub fn span_views(&self) -> Result<Vec<SpanView>, QueryError> {
        Ok(span_views(&self.batches)?)
    }
}
