//! Errors of the storage layer.

use std::path::PathBuf;

/// What can go wrong while logging, storing or reading spans.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "open", "sync".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Parquet could not be read or written.
    #[error("parquet error in {}: {source}", path.display())]
    Parquet {
        /// The segment file.
        path: PathBuf,
        /// The underlying error.
        source: parquet::errors::ParquetError,
    },
    /// An Arrow kernel failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Stored data does not decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A batch does not follow the span schema.
    #[error("column {column} is not {expected}")]
    Schema {
        /// The column name.
        column: String,
        /// What it should have been.
        expected: String,
    },
    /// The store cannot take more now; the client should retry later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The store is shutting down or its writer stopped.
    #[error("storage is shutting down")]
    ShuttingDown,
}

impl StorageError {
    /// A schema mismatch on `column`.
    pub fn schema(column: &str, expected: &str) -> Self {
        Self::Schema {
            column: column.to_string(),
            expected: expected.to_string(),
        }
    }

    /// Wraps an I/O error with the action and path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// True when the client should retry (overload or shutdown).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Overloaded(_) | Self::ShuttingDown)
    }
}
