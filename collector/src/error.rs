//! Ingest errors, and the one mapping from an error kind to a gRPC code and an HTTP
//! status that the receivers and the query API share.

use tracegate_storage::StorageError;

/// The kinds of failure a client can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed: do not retry it as is.
    InvalidArgument,
    /// The request is larger than allowed.
    TooLarge,
    /// The content type is not one we read.
    UnsupportedMediaType,
    /// Nothing by that name or id.
    NotFound,
    /// We are overloaded or shutting down: retry later.
    Unavailable,
    /// Something broke on our side.
    Internal,
}

impl ErrorKind {
    /// The HTTP status for this kind.
    pub fn http_status(self) -> http::StatusCode {
        match self {
            Self::InvalidArgument => http::StatusCode::BAD_REQUEST,
            Self::TooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => http::StatusCode::NOT_FOUND,
            Self::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status code for this kind.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            Self::InvalidArgument | Self::UnsupportedMediaType => tonic::Code::InvalidArgument,
            Self::TooLarge => tonic::Code::ResourceExhausted,
            Self::NotFound => tonic::Code::NotFound,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::Internal => tonic::Code::Internal,
        }
    }
}

/// Why an export request failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not a valid OTLP request.
    #[error("invalid OTLP request: {0}")]
    Decode(String),
    /// The body, compressed or not, exceeds the limit.
    #[error("request body exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        /// The configured limit.
        limit_bytes: usize,
    },
    /// The content type or encoding is not one we read.
    #[error("unsupported {what}: {value} ({hint})")]
    Unsupported {
        /// "content type" or "content encoding".
        what: &'static str,
        /// The value sent.
        value: String,
        /// What to send instead.
        hint: &'static str,
    },
    /// Storage refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl IngestError {
    /// The kind that decides status codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Decode(_) => ErrorKind::InvalidArgument,
            Self::TooLarge { .. } => ErrorKind::TooLarge,
            Self::Unsupported { .. } => ErrorKind::UnsupportedMediaType,
            Self::Storage(e) if e.is_retryable() => ErrorKind::Unavailable,
            Self::Storage(_) => ErrorKind::Internal,
        }
    }

    /// The same error as a gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.kind().grpc_code(), self.to_string())
    }
}
