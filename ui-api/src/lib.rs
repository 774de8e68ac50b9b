//! tracegate's HTTP API: health, metrics, the Jaeger-compatible query API and the
//! native `/api/v1` analysis API.
//!
//! ```text
//! GET /api/...      ──► jaeger::routes ──► tracegate_query ──► Jaeger JSON envelope
//! GET /api/v1/...   ──► native, graph_api ──► tracegate_query ──► JSON / OTLP-JSON
//! GET /health /ready /metrics
//! ```

mod canary_api;
mod error;
mod graph_api;
mod health;
mod jaeger;
mod metrics;
mod native;
mod outliers_api;
mod page;
mod router;
mod state;
mod time_range;

pub use error::ApiError;
pub use outliers_api::{
    MONITOR_HISTORY, MONITOR_INTERVAL, MONITOR_WINDOW, OutlierMonitor, OutlierSnapshot,
    find_outliers, spawn_outlier_monitor,
};
pub use router::{OPENAPI_YAML, api_router};
pub use state::AppState;
pub use time_range::{native_range, now_unix_nano, parse_duration, parse_time};
