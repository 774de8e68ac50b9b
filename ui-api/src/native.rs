//! The native API's trace endpoints (`/api/v1/traces/...`).

use axum::Json;
use axum::extract::{Path, State};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::Value;
use tracegate_collector::otlp_json::encode_export_request;
use tracegate_query::{CallTree, TraceData, parse_trace_id};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/v1/traces/{traceID}`: the trace as lossless OTLP/JSON.
///
/// # Errors
/// 400 for a malformed id, 404 for an unknown trace.
pub(crate) async fn trace_otlp(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_trace_id(&trace_id)?;
    let trace = TraceData::fetch(&state.store.tables(), id)?;
    let request = ExportTraceServiceRequest {
        resource_spans: trace.resource_spans()?,
    };
    Ok(Json(encode_export_request(&request)))
}

/// `GET /api/v1/traces/{traceID}/tree`: the call tree with self times, the critical
/// path and warnings (orphans, clock-skew adjustments).
///
/// # Errors
/// 400 for a malformed id, 404 for an unknown trace.
pub(crate) async fn trace_tree(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_trace_id(&trace_id)?;
    let trace = TraceData::fetch(&state.store.tables(), id)?;
    let tree = CallTree::assemble(trace.span_views()?)
        .map_err(|e| ApiError::bad_request(format!("cannot assemble trace {trace_id}: {e}")))?;
    Ok(Json(tree.to_json()))
}

/// Any other path under `/api/v1`: a 404 in the native API's error shape.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no such API path: {}; see /api/openapi.yaml",
        uri.path()
    ))
}
