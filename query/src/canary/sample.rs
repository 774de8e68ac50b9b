//! The judge's input: per check, what the baseline and the canary did over the same window.

use serde::{Deserialize, Serialize};

use crate::canary::JudgeError;

/// What one side (baseline or canary) did on one edge and operation.
///
/// `latencies_ms` must be in arrival order and must only grow between two looks of a
/// controller (the window keeps its start and moves its end): the latency test cuts it into
/// blocks by position, and its guarantee under repeated looks relies on earlier blocks not
/// changing. `requests` may exceed `latencies_ms.len()` when latencies are sampled.
///
/// `failed`, when given, is the outcome of the same calls as `latencies_ms`, in the same
/// order; with it the error-rate test compares the two sides block by block, which is far
/// more powerful than comparing the totals `errors` and `requests` (see `error_rate`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Call latencies in floating milliseconds, oldest first.
    pub latencies_ms: Vec<f64>,
    /// Whether each call of `latencies_ms` failed; empty when only the totals are known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<bool>,
    /// Calls that failed.
    pub errors: u64,
    /// Calls in total.
    pub requests: u64,
}

impl Sample {
    /// The observed error rate, `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    /// Checks the counts and latencies; `check` and `side` name the sample in the error.
    ///
    /// # Errors
    ///
    /// [`JudgeError::ErrorsExceedRequests`] when `errors > requests`,
    /// [`JudgeError::OutcomesMisaligned`] when `failed` is given but not one per latency, and
    /// [`JudgeError::InvalidLatency`] for a negative, infinite or NaN latency.
    pub fn validate(&self, check: &str, side: &'static str) -> Result<(), JudgeError> {
        if self.errors > self.requests {
            return Err(JudgeError::ErrorsExceedRequests {
                check: check.to_owned(),
                side,
                errors: self.errors,
                requests: self.requests,
            });
        }
        if !self.failed.is_empty() && self.failed.len() != self.latencies_ms.len() {
            return Err(JudgeError::OutcomesMisaligned {
                check: check.to_owned(),
                side,
                outcomes: self.failed.len(),
                latencies: self.latencies_ms.len(),
            });
        }
        for (index, &value) in self.latencies_ms.iter().enumerate() {
            if !value.is_finite() || value < 0.0 {
                return Err(JudgeError::InvalidLatency {
                    check: check.to_owned(),
                    side,
                    index,
                    value,
                });
            }
        }
        Ok(())
    }
}

/// One edge and operation to judge: baseline and canary traffic over the same window.
///
/// Each input yields two checks, `error_rate` and `latency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckInput {
    /// The calling service of the edge.
    pub edge_source: String,
    /// The called service (or virtual node) of the edge.
    pub edge_target: String,
    /// The operation (span name) on the edge.
    pub operation: String,
    /// Traffic of the baseline version.
    pub baseline: Sample,
    /// Traffic of the canary version.
    pub canary: Sample,
}

impl CheckInput {
    /// A short human name, `source->target operation`, for errors and logs.
    pub fn label(&self) -> String {
        format!(
            "{}->{} {}",
            self.edge_source, self.edge_target, self.operation
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_needs_requests() {
        let empty = Sample::default();
        assert_eq!(empty.error_rate(), None);
        let sample = Sample {
            latencies_ms: vec![],
            failed: vec![],
            errors: 3,
            requests: 300,
        };
        assert_eq!(sample.error_rate(), Some(0.01));
    }

    #[test]
    fn validate_rejects_impossible_counts_and_latencies() {
        let too_many = Sample {
            latencies_ms: vec![],
            failed: vec![],
            errors: 4,
            requests: 3,
        };
        assert!(matches!(
            too_many.validate("a->b op", "canary"),
            Err(JudgeError::ErrorsExceedRequests { errors: 4, .. })
        ));
        let nan = Sample {
            latencies_ms: vec![1.0, f64::NAN],
            failed: vec![],
            errors: 0,
            requests: 2,
        };
        let error = nan.validate("a->b op", "baseline").unwrap_err();
        assert!(error.to_string().contains("latency #1"), "{error}");
        let negative = Sample {
            latencies_ms: vec![-1.0],
            failed: vec![],
            errors: 0,
            requests: 1,
        };
        assert!(negative.validate("a->b op", "baseline").is_err());
        let misaligned = Sample {
            latencies_ms: vec![1.0, 2.0],
            failed: vec![true],
            errors: 1,
            requests: 2,
        };
        let error = misaligned.validate("a->b op", "canary").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid canary sample for check a->b op: 1 outcomes for 2 latencies"
        );
    }
}
