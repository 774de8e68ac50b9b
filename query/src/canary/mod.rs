//! Canary judgement: is the canary as healthy as its baseline, edge by edge, with tests that
//! stay valid when a rollout controller asks again at every interval?
//!
//! ```text
//! CheckInput (edge, operation, baseline Sample, canary Sample)
//!     ├─ error_rate: sequential Fisher exact on paired calls + totals ratio ─┐
//!     └─ latency:    block e-value over the bulk and a grid of tails ────────┤
//!                                  e-value ≥ checks/α and effect ≥ minimum ? ─┴─> CheckResult
//! CheckResults ──> Verdict { pass | fail | inconclusive, score, checks }
//! ```
//!
//! Both tests produce *e-values* that are bounded by nonnegative martingales with mean 1
//! when the canary is no worse, so by Ville's inequality the chance that one ever crosses
//! `1/α` is at most `α`, no matter how many times or when the judge is asked over a growing
//! window. The budget `α` is split over the checks. A check fails only when its evidence
//! crosses the threshold *and* the estimated effect is at least the configured minimum, so
//! a real but negligible difference passes. Below `min_requests` per side a check is
//! `inconclusive`.
//!
//! [`analyze_canary`] runs the judge over stored spans: it builds the inputs of one service
//! with [`crate::canary_inputs`], adds a failing check for each canary pod the outlier
//! detectors flag, and gathers evidence (exemplar traces, demarcation of the failing ones).
//!
//! [`kayenta_judge`] is a fixed-horizon Mann-Whitney comparator kept as a yardstick, and
//! [`quality_report`] measures both on simulated traffic (and the outlier detectors of
//! [`crate::outliers`] on simulated pods).

mod analysis;
mod config;
mod error;
mod error_rate;
mod evidence;
mod hypergeometric;
mod judge;
mod kayenta;
mod latency;
pub(crate) mod math;
mod quality;
pub(crate) mod rank_sum;
mod sample;
mod scan;
mod selector;
pub(crate) mod simulation;
mod verdict;

pub use analysis::{AnswerCheck, CanaryAnswer, CanaryQuestion, OutlierCheck, analyze_canary};
pub use config::{BetaPrior, JudgeConfig};
pub use error::JudgeError;
pub use error_rate::{ErrorCounts, error_rate_log_e_value, paired_error_log_e_value};
pub use evidence::{Evidence, RegressionStart, SideEvidence, SidedOutlier};
pub use judge::judge;
pub use kayenta::{KayentaConfig, kayenta_judge};
pub use latency::{LatencyEvidence, latency_evidence};
pub use quality::{
    AaQuality, OutlierQuality, PowerQuality, QualityError, QualityOptions, QualityReport,
    SmallSampleQuality, quality_report,
};
pub use sample::{CheckInput, Sample};
pub use scan::CanaryScan;
pub use selector::{SelectorError, SpanSelector};
pub use verdict::{CheckResult, Edge, Effect, Metric, Outcome, SideValues, Statistic, Verdict};
