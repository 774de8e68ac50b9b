//! `GET /health` and `GET /ready`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::state::AppState;

/// `GET /health`: 200 while the process runs.
pub(crate) async fn health() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /ready`: 200 once every listener is up and the WAL is replayed, 503 before.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "replaying the write-ahead log\n",
        )
            .into_response()
    }
}
