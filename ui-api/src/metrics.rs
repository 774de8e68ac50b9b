//! `GET /metrics`: tracegate's own telemetry in the Prometheus text format.
//!
//! Counters live as atomics where the work happens (store, ingestor); each scrape
//! copies them into a fresh registry, next to the request-latency histograms this
//! crate records itself.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// Labels of an HTTP request latency sample.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    /// The matched route pattern, e.g. `/api/traces/{trace_id}`.
    pub route: String,
    /// The status code.
    pub status: u16,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Request latencies of the HTTP API.
pub struct HttpMetrics {
    requests: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Middleware recording each request's latency by route and status.
pub(crate) async fn record_latency(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = RouteLabels {
        route,
        status: response.status().as_u16(),
    };
    state
        .http_metrics
        .requests
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut registry = Registry::with_prefix("tracegate");
    let counter = |registry: &mut Registry, name: &str, help: &str, value: u64| {
        registry.register(name, help, ConstCounter::new(value));
    };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);

    let ingest = state.ingestor.stats();
    counter(
        &mut registry,
        "ingest_requests",
        "OTLP export requests handled",
        load(&ingest.requests),
    );
    counter(
        &mut registry,
        "ingest_failed_requests",
        "OTLP export requests refused as a whole",
        load(&ingest.failed_requests),
    );
    counter(
        &mut registry,
        "ingest_spans_accepted",
        "Spans made durable",
        load(&ingest.spans_accepted),
    );
    counter(
        &mut registry,
        "ingest_spans_rejected",
        "Spans refused through partial success",
        load(&ingest.spans_rejected),
    );
    counter(
        &mut registry,
        "ingest_received_bytes",
        "OTLP bytes logged",
        load(&ingest.bytes_received),
    );

    let store = state.store.stats();
    counter(
        &mut registry,
        "wal_records",
        "WAL records written",
        load(&store.wal_records),
    );
    counter(
        &mut registry,
        "wal_syncs",
        "WAL syncs, each covering a group",
        load(&store.wal_syncs),
    );
    counter(
        &mut registry,
        "storage_seals",
        "Head segments sealed",
        load(&store.seals),
    );
    counter(
        &mut registry,
        "storage_flushes",
        "Segments flushed to Parquet",
        load(&store.flushes),
    );
    counter(
        &mut registry,
        "storage_flush_seconds",
        "Time spent flushing, whole seconds",
        load(&store.flush_micros) / 1_000_000,
    );
    counter(
        &mut registry,
        "storage_overloads",
        "Appends refused for overload",
        load(&store.overloads),
    );

    let tables = state.store.tables();
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
        registry.register(name, help, ConstGauge::new(value));
    };
    gauge(
        &mut registry,
        "storage_segments",
        "Parquet segments",
        tables.segments.len() as i64,
    );
    gauge(
        &mut registry,
        "storage_segment_bytes",
        "Bytes of Parquet segments",
        tables.segments.iter().map(|s| s.bytes() as i64).sum(),
    );
    gauge(
        &mut registry,
        "storage_memory_spans",
        "Spans held in memory",
        tables.memory_spans() as i64,
    );
    gauge(
        &mut registry,
        "storage_memory_bytes",
        "Bytes of spans held in memory",
        state.store.memory_bytes() as i64,
    );
    gauge(
        &mut registry,
        "storage_segment_spans",
        "Spans in Parquet segments",
        tables.segment_spans() as i64,
    );
    let pending = state.graph.pending();
    gauge(
        &mut registry,
        "graph_pending_spans",
        "Caller and callee spans waiting for their partner in the service graph",
        pending.spans as i64,
    );
    gauge(
        &mut registry,
        "graph_pending_traces",
        "Traces with spans waiting for their partner in the service graph",
        pending.traces as i64,
    );
    registry.register(
        "ingest_request_duration_seconds",
        "OTLP export latency from decode to durable acknowledgement, by protocol",
        ingest.request_seconds.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "HTTP API request latency by route and status",
        state.http_metrics.requests.clone(),
    );

    let mut body = String::new();
    if let Err(error) = encode(&mut body, &registry) {
        return (http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
