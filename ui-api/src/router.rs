//! The HTTP API's routes.

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::state::AppState;
use crate::{canary_api, graph_api, health, jaeger, metrics, native, outliers_api, page};

/// The OpenAPI description of this API, served at `/api/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// Every route of the query API, the web page, health and metrics.
pub fn api_router(state: AppState) -> Router {
    let anchors = canary_api::Anchors::default();
    Router::new()
        .route("/", get(page::index))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/api/openapi.yaml",
            get(|| async { ([("content-type", "application/yaml")], OPENAPI_YAML) }),
        )
        .route("/api/services", get(jaeger::routes::services))
        .route(
            "/api/services/{service}/operations",
            get(jaeger::routes::service_operations),
        )
        .route("/api/operations", get(jaeger::routes::operations))
        .route("/api/traces", get(jaeger::routes::find_traces))
        .route("/api/traces/{trace_id}", get(jaeger::routes::trace))
        .route("/api/dependencies", get(jaeger::routes::dependencies))
        .route("/api/v1/traces/{trace_id}", get(native::trace_otlp))
        .route("/api/v1/traces/{trace_id}/tree", get(native::trace_tree))
        .route("/api/v1/graph", get(graph_api::graph))
        .route("/api/v1/demarcation", get(graph_api::demarcation))
        .route("/api/v1/outliers", get(outliers_api::outliers))
        .route("/api/v1/outliers/live", get(outliers_api::live_outliers))
        .route("/api/v1/canary/analyze", post(canary_api::analyze))
        .route(
            "/api/v1/canary/verdict",
            get(canary_api::verdict).layer(Extension(std::sync::Arc::clone(&anchors))),
        )
        .route(
            "/api/v1/canary/flagger",
            post(canary_api::flagger).layer(Extension(anchors)),
        )
        .route(
            "/api/v1/{*rest}",
            get(native::not_found).post(native::not_found),
        )
        .route("/api/{*rest}", get(jaeger::routes::not_found))
        .layer(from_fn_with_state(state.clone(), metrics::record_latency))
        .with_state(state)
}
