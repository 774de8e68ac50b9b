//! API errors: one type whose kind decides the HTTP status, answered as
//! `{"error": "..."}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use tracegate_collector::ErrorKind;
use tracegate_query::QueryError;

/// An error answer of the native API.
#[derive(Debug)]
pub struct ApiError {
    /// Decides the status code.
    pub kind: ErrorKind,
    /// What went wrong, for the client.
    pub message: String,
}

impl ApiError {
    /// A 400 answer.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidArgument,
            message: message.into(),
        }
    }

    /// A 404 answer.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            message: message.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        let kind = match &error {
            QueryError::BadRequest(_) => ErrorKind::InvalidArgument,
            QueryError::NotFound(_) => ErrorKind::NotFound,
            QueryError::Storage(e) if e.is_retryable() => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        };
        if kind == ErrorKind::Internal {
            tracing::error!(%error, "query failed");
        }
        Self {
            kind,
            message: error.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.kind.http_status(), Json(body)).into_response()
    }
}
