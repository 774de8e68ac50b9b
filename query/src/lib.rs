//! Queries over tracegate's stored spans.
//!
//! ```text
//! Tables (head + sealed + Parquet) ──► spans_frame (DataFusion) ──► search, operations
//!          │
//!          └──► find_trace ──► TraceData ──► OTLP/JSON, SpanView ──► call tree
//! ```

mod attribute_text;
pub mod canary;
pub mod canary_inputs;
pub mod demarcation;
mod error;
pub mod graph;
mod operations;
pub mod outliers;
pub mod pod_stats;
mod search;
pub mod span_view;
mod table;
mod trace;
mod trace_set;
pub mod tree;
mod views;

pub use attribute_text::{attribute_json, attribute_text};
pub use error::{QueryError, parse_trace_id};
pub use operations::{Operation, list_operations};
pub use search::{TraceHit, TraceQuery, search_traces};
pub use span_view::{Placement, SpanKind, SpanView};
pub use table::{TimeRange, span_session, spans_frame};
pub use trace::TraceData;
pub use trace_set::{TraceSelection, TraceSet, load_traces};
pub use tree::CallTree;
pub use views::{SPAN_VIEW_COLUMNS, STATUS_ERROR, append_span_views, span_views};
