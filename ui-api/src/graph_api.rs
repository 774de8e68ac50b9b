//! The service graph and fault demarcation endpoints.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tracegate_query::demarcation::demarcate;
use tracegate_query::graph::{GroupBy, group_graph};
use tracegate_query::{TimeRange, TraceSelection, load_traces};

use crate::error::ApiError;
use crate::state::AppState;
use crate::time_range::native_range;

/// Jaeger dependency links (`parent`, `child`, `callCount`) for `range`, from the same
/// computation as `/api/v1/graph?by=service`.
///
/// # Errors
/// Never today; kept fallible like the other graph answers.
pub(crate) async fn dependency_links(
    state: &AppState,
    range: TimeRange,
) -> Result<Vec<Value>, ApiError> {
    let graph = group_graph(state.graph.snapshot(range), GroupBy::Service);
    Ok(graph
        .edges
        .iter()
        .map(|e| json!({ "parent": e.source, "child": e.target, "callCount": e.calls }))
        .collect())
}

/// Query parameters of `/api/v1/graph`.
#[derive(Debug, Deserialize)]
pub(crate) struct GraphParams {
    start: Option<String>,
    end: Option<String>,
    by: Option<String>,
}

/// `GET /api/v1/graph?start=&end=&by=`
///
/// # Errors
/// 400 for a bad range or grouping.
pub(crate) async fn graph(
    State(state): State<AppState>,
    Query(params): Query<GraphParams>,
) -> Result<Json<Value>, ApiError> {
    let range = native_range(params.start.as_deref(), params.end.as_deref())?;
    let by_text = params.by.as_deref().unwrap_or("service");
    let by = GroupBy::parse(by_text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid by {by_text:?}: want service, workload, version or pod"
        ))
    })?;
    let graph = group_graph(state.graph.snapshot(range), by);
    let mut body =
        serde_json::to_value(&graph).map_err(|e| ApiError::bad_request(e.to_string()))?;
    body["start_unix_nano"] = json!(range.start_unix_nano);
    body["end_unix_nano"] = json!(range.end_unix_nano);
    Ok(Json(body))
}

/// Query parameters of `/api/v1/demarcation`.
#[derive(Debug, Deserialize)]
pub(crate) struct DemarcationParams {
    start: Option<String>,
    end: Option<String>,
    service: Option<String>,
}

/// `GET /api/v1/demarcation?start=&end=&service=`: where errors and slowdowns start.
/// The window before the range, of the same length, is the latency baseline.
///
/// # Errors
/// 400 for a bad range; query failures.
pub(crate) async fn demarcation(
    State(state): State<AppState>,
    Query(params): Query<DemarcationParams>,
) -> Result<Json<Value>, ApiError> {
    let range = native_range(params.start.as_deref(), params.end.as_deref())?;
    let length = range.end_unix_nano.saturating_sub(range.start_unix_nano);
    let before = TimeRange {
        start_unix_nano: range.start_unix_nano.saturating_sub(length),
        end_unix_nano: range.start_unix_nano.saturating_sub(1),
    };
    let tables = state.store.tables();
    let selection = TraceSelection::default();
    let window = load_traces(&tables, range, &selection).await?;
    let baseline = load_traces(&tables, before, &selection).await?;
    let baseline_trees = (!baseline.trees.is_empty()).then_some(baseline.trees.as_slice());
    let mut suspects = demarcate(&window.trees, baseline_trees);
    if let Some(service) = &params.service {
        suspects.retain(|s| {
            s.service == *service
                || s.edge
                    .as_ref()
                    .is_some_and(|e| e.source == *service || e.target == *service)
        });
    }
    Ok(Json(json!({
        "suspects": suspects,
        "start_unix_nano": range.start_unix_nano,
        "end_unix_nano": range.end_unix_nano,
        "traces_analyzed": window.trees.len(),
        "traces_in_range": window.num_traces_in_range,
        "failing_traces_in_range": window.num_failing_in_range,
        "baseline_traces": baseline.trees.len(),
    })))
}
