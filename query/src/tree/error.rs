//! The input that assembly refuses instead of repairing.

/// Why a call tree could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// No spans were given.
    #[error("cannot assemble a call tree from zero spans")]
    NoSpans,
    /// A span belongs to another trace than the first span.
    #[error("span {span_id} belongs to trace {found}, not to trace {expected}")]
    MixedTraces {
        /// The first span's trace id, hex.
        expected: String,
        /// The stray span's trace id, hex.
        found: String,
        /// The stray span's id, hex.
        span_id: String,
    },
}
