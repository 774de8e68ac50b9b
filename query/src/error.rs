//! Errors of the query layer.

use tracegate_storage::StorageError;

/// What can go wrong while answering a query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The question itself is wrong (bad id, bad time range, unknown grouping).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing matches (e.g. an unknown trace id).
    #[error("{0}")]
    NotFound(String),
    /// Reading stored spans failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// DataFusion failed.
    #[error("query engine error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// An Arrow kernel failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Parses a hex trace id (1 to 32 hex digits, left-padded with zeroes as Jaeger does).
///
/// # Errors
/// [`QueryError::BadRequest`] when the id is empty, too long or not hex.
pub fn parse_trace_id(text: &str) -> Result<[u8; 16], QueryError> {
    let text = text.trim();
    let bad = || QueryError::BadRequest(format!("invalid trace id {text:?}: want 32 hex digits"));
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let padded = format!("{text:0>32}");
    let mut id = [0u8; 16];
    hex::decode_to_slice(padded, &mut id).map_err(|_| bad())?;
    Ok(id)
}
