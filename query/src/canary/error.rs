//! What can go wrong when the judge is asked a question it cannot answer.

use thiserror::Error;

/// Why a canary judgement could not be made at all.
///
/// Too little data is not an error: it yields an `inconclusive` verdict.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum JudgeError {
    /// A [`JudgeConfig`](crate::canary::JudgeConfig) field is out of its range.
    #[error("invalid judge config: {field} {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A sample claims more errors than requests.
    #[error("invalid {side} sample for check {check}: {errors} errors out of {requests} requests")]
    ErrorsExceedRequests {
        /// The check, as `source->target operation`.
        check: String,
        /// `baseline` or `canary`.
        side: &'static str,
        /// The error count given.
        errors: u64,
        /// The request count given.
        requests: u64,
    },
    /// A latency is negative, infinite or NaN.
    #[error("invalid {side} sample for check {check}: latency #{index} is {value} ms")]
    InvalidLatency {
        /// The check, as `source->target operation`.
        check: String,
        /// `baseline` or `canary`.
        side: &'static str,
        /// Position of the latency in arrival order.
        index: usize,
        /// The value given.
        value: f64,
    },
    /// Per-call outcomes are given, but not one per latency.
    #[error(
        "invalid {side} sample for check {check}: {outcomes} outcomes for {latencies} latencies"
    )]
    OutcomesMisaligned {
        /// The check, as `source->target operation`.
        check: String,
        /// `baseline` or `canary`.
        side: &'static str,
        /// Outcomes given.
        outcomes: usize,
        /// Latencies given.
        latencies: usize,
    },
}
