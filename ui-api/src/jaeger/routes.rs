//! Jaeger's query API (`/api/...`) with its response envelope, for Grafana's Jaeger
//! data source and the Jaeger UI.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracegate_query::{
    QueryError, TimeRange, TraceData, TraceQuery, list_operations, parse_trace_id, search_traces,
};

use crate::error::ApiError;
use crate::jaeger::model::jaeger_trace;
use crate::state::AppState;
use crate::time_range::{now_unix_nano, parse_duration, parse_time};

/// Jaeger's default search limit.
const DEFAULT_LIMIT: usize = 20;
/// Jaeger's default lookback.
const DEFAULT_LOOKBACK_NANOS: i64 = 3600 * 1_000_000_000;

/// The envelope every Jaeger answer comes in.
fn envelope(data: Value, total: usize) -> Response {
    Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
        .into_response()
}

/// A Jaeger error answer.
fn jaeger_error(error: ApiError) -> Response {
    let status = error.kind.http_status();
    let body = json!({
        "data": null, "total": 0, "limit": 0, "offset": 0,
        "errors": [{ "code": status.as_u16(), "msg": error.message }],
    });
    (status, Json(body)).into_response()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// `GET /api/services`
pub(crate) async fn services(State(state): State<AppState>) -> Response {
    match list_operations(&state.store.tables(), TimeRange::ALL, None).await {
        Ok(operations) => {
            let services: BTreeSet<String> = operations.into_iter().map(|o| o.service).collect();
            let total = services.len();
            envelope(json!(services), total)
        }
        Err(error) => jaeger_error(error.into()),
    }
}

/// `GET /api/services/{service}/operations`
pub(crate) async fn service_operations(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Response {
    match list_operations(&state.store.tables(), TimeRange::ALL, Some(&service)).await {
        Ok(operations) => {
            let names: BTreeSet<String> = operations.into_iter().map(|o| o.name).collect();
            let total = names.len();
            envelope(json!(names), total)
        }
        Err(error) => jaeger_error(error.into()),
    }
}

/// `GET /api/operations?service=&spanKind=`
pub(crate) async fn operations(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let Some(service) = param(&pairs, "service") else {
        return jaeger_error(ApiError::bad_request("parameter 'service' is required"));
    };
    let kind = param(&pairs, "spanKind");
    match list_operations(&state.store.tables(), TimeRange::ALL, Some(service)).await {
        Ok(operations) => {
            let data: Vec<Value> = operations
                .iter()
                .filter(|o| kind.is_none_or(|k| o.span_kind().jaeger_name() == k))
                .map(|o| json!({ "name": o.name, "spanKind": o.span_kind().jaeger_name() }))
                .collect();
            let total = data.len();
            envelope(json!(data), total)
        }
        Err(error) => jaeger_error(error.into()),
    }
}

/// `GET /api/traces/{traceID}`
pub(crate) async fn trace(State(state): State<AppState>, Path(trace_id): Path<String>) -> Response {
    let result = parse_trace_id(&trace_id).and_then(|id| {
        let trace = TraceData::fetch(&state.store.tables(), id)?;
        Ok(jaeger_trace(id, &trace.resource_spans()?))
    });
    match result {
        Ok(trace) => envelope(json!([trace]), 1),
        Err(error) => jaeger_error(error.into()),
    }
}

/// `GET /api/traces?service=&operation=&tags=&minDuration=&maxDuration=&start=&end=
/// &lookback=&limit=`
pub(crate) async fn find_traces(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let query = match trace_query(&pairs) {
        Ok(query) => query,
        Err(error) => return jaeger_error(error),
    };
    let tables = state.store.tables();
    let result: Result<Vec<Value>, ApiError> = async {
        let hits = search_traces(&tables, &query).await?;
        // Each hit is read from Parquet with blocking I/O: keep it off the async workers.
        let ids: Vec<[u8; 16]> = hits.iter().map(|hit| hit.trace_id).collect();
        let fetched = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .map(|id| {
                    let trace = TraceData::fetch(&tables, id)?;
                    Ok(jaeger_trace(id, &trace.resource_spans()?))
                })
                .collect::<Result<Vec<Value>, QueryError>>()
        })
        .await;
        match fetched {
            Ok(traces) => Ok(traces?),
            Err(join) => {
                tracing::error!(error = %join, "trace fetch task failed");
                Err(ApiError {
                    kind: tracegate_collector::ErrorKind::Internal,
                    message: format!("trace fetch task failed: {join}"),
                })
            }
        }
    }
    .await;
    match result {
        Ok(traces) => {
            let total = traces.len();
            envelope(Value::Array(traces), total)
        }
        Err(error) => jaeger_error(error),
    }
}

fn trace_query(pairs: &[(String, String)]) -> Result<TraceQuery, ApiError> {
    let mut query = TraceQuery {
        service: param(pairs, "service").map(str::to_string),
        operation: param(pairs, "operation").map(str::to_string),
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    if let Some(limit) = param(pairs, "limit") {
        query.limit = limit
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {limit:?}")))?;
    }
    if let Some(tags) = param(pairs, "tags") {
        let map: serde_json::Map<String, Value> = serde_json::from_str(tags).map_err(|e| {
            ApiError::bad_request(format!("invalid tags {tags:?}: want a JSON object ({e})"))
        })?;
        for (key, value) in map {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            query.tags.push((key, value));
        }
    }
    for (key, value) in pairs.iter().filter(|(k, _)| k == "tag") {
        let (k, v) = value.split_once(':').ok_or_else(|| {
            ApiError::bad_request(format!("invalid {key} {value:?}: want key:value"))
        })?;
        query.tags.push((k.to_string(), v.to_string()));
    }
    let nanos = |name: &str| -> Result<Option<i64>, ApiError> {
        param(pairs, name)
            .map(|text| parse_duration(name, text).map(|d| d.as_nanos() as i64))
            .transpose()
    };
    query.min_duration_nanos = nanos("minDuration")?;
    query.max_duration_nanos = nanos("maxDuration")?;

    let end = match param(pairs, "end") {
        Some(text) => parse_time("end", text)?,
        None => now_unix_nano(),
    };
    let start = match (param(pairs, "start"), param(pairs, "lookback")) {
        (Some(text), _) => parse_time("start", text)?,
        (None, Some(lookback)) if lookback != "custom" => {
            let lookback = parse_duration("lookback", lookback)?.as_nanos();
            end.saturating_sub(i64::try_from(lookback).unwrap_or(i64::MAX))
        }
        _ => end.saturating_sub(DEFAULT_LOOKBACK_NANOS),
    };
    query.range = Some(TimeRange {
        start_unix_nano: start,
        end_unix_nano: end,
    });
    Ok(query)
}

/// `GET /api/dependencies?endTs=&lookback=` (milliseconds, as Jaeger takes them).
pub(crate) async fn dependencies(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let millis = |name: &str| -> Result<Option<i64>, ApiError> {
        param(&pairs, name)
            .map(|text| {
                text.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid {name} {text:?}")))
            })
            .transpose()
    };
    let range = (|| -> Result<TimeRange, ApiError> {
        let end = millis("endTs")?.map_or_else(now_unix_nano, |ms| ms.saturating_mul(1_000_000));
        let lookback = millis("lookback")?
            .unwrap_or(3600 * 1000)
            .saturating_mul(1_000_000);
        Ok(TimeRange {
            start_unix_nano: end.saturating_sub(lookback),
            end_unix_nano: end,
        })
    })();
    let range = match range {
        Ok(range) => range,
        Err(error) => return jaeger_error(error),
    };
    match crate::graph_api::dependency_links(&state, range).await {
        Ok(links) => {
            let total = links.len();
            envelope(Value::Array(links), total)
        }
        Err(error) => jaeger_error(error),
    }
}

/// Answers 404 in Jaeger's envelope for an unknown `/api` path.
pub(crate) async fn not_found() -> Response {
    jaeger_error(ApiError::not_found("no such API path"))
}
