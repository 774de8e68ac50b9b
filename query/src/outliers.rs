//! Outlier pods: within one workload, the pods whose errors or latency stand out from their
//! peers, as Envoy's outlier detection would eject them, plus a robust latency detector.
//!
//! ```text
//! per-pod stats ──group by (service, workload)──┬─ consecutive_errors  (own run of errors)
//!                                               ├─ success_rate        (vs the fleet spread)
//!                                               ├─ failure_percentage  (absolute ceiling)
//!                                               └─ latency             (vs the peers' medians)
//! ```
//!
//! # Where this departs from Envoy, and why
//!
//! Envoy's success-rate rule ejects a host whose success rate is below
//! `mean - 1.9 * stdev` of all qualifying hosts, the host itself included. As a *report* of
//! bad pods that rule has two weaknesses:
//!
//! - It flags healthy pods. When every pod is equally healthy, the spread of success rates
//!   is binomial noise, and the unluckiest pod is often 1.9 deviations below the mean. With
//!   ten pods at 0.5% errors over 1,000 calls each, it flags about 3% of healthy pods per
//!   window (`canary::quality` measures it).
//! - It partly masks the outlier it looks for: a pod that is part of the mean can lie at
//!   most `√(n - 1)` population deviations below it, 2.0 among five pods, so a bad pod among
//!   five is flagged only when the other four agree closely.
//!
//! So by default the mean and spread are those of the pod's *peers* (leave-one-out), and a
//! pod is reported only when, in addition, its failure rate is above its peers' pooled rate
//! with strong evidence (an e-value of the canary error-rate test, with the budget split over
//! the pods) and by at least `success_rate_min_gap`. Setting
//! `success_rate_leave_one_out = false`, `success_rate_min_gap = 0` and
//! `success_rate_alpha = None` gives Envoy's rule exactly. Consecutive errors and failure
//! percentage follow Envoy as they are.
//!
//! Rates in `value` and `threshold` are fractions (0.2 = 20%), as `error_rate` is elsewhere
//! in the API; consecutive errors are counts; latencies are milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::canary::math::median;
use crate::canary::rank_sum::mann_whitney;
use crate::canary::{BetaPrior, ErrorCounts, error_rate_log_e_value};

/// What one pod did over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodStats {
    /// `service.name`.
    pub service: String,
    /// The pod's workload (Deployment, StatefulSet, ...); pods are compared within it.
    pub workload: String,
    /// `k8s.pod.name`.
    pub pod: String,
    /// `service.version`.
    pub version: String,
    /// Calls served.
    pub requests: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Longest run of consecutive failed calls.
    pub consecutive_errors_max: u64,
    /// Latencies of the calls, in milliseconds, in any order.
    pub latencies_ms: Vec<f64>,
}

/// Which rule found an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// A run of consecutive errors at least `consecutive_errors` long.
    ConsecutiveErrors,
    /// A success rate far below the peers' (Envoy's success-rate ejection, made robust).
    SuccessRate,
    /// A failure share at or above an absolute ceiling (Envoy's failure-percentage
    /// ejection).
    FailurePercentage,
    /// A median latency well above the peers' medians, confirmed by a rank test.
    Latency,
}

/// One pod that one detector found to stand out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outlier {
    /// The pod's service.
    pub service: String,
    /// The pod's workload.
    pub workload: String,
    /// The pod.
    pub pod: String,
    /// The pod's `service.version`, empty when unknown.
    pub version: String,
    /// The rule that found it.
    pub detector: Detector,
    /// The pod's value: consecutive errors, success rate, failure rate or median latency.
    pub value: f64,
    /// The value the pod crossed.
    pub threshold: f64,
    /// Calls the pod served.
    pub requests: u64,
}

/// Why outlier detection could not run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OutlierError {
    /// An [`OutlierConfig`] field is out of its range.
    #[error("invalid outlier config: {field} {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A pod claims more errors than requests.
    #[error("invalid stats for pod {pod}: {errors} errors out of {requests} requests")]
    ErrorsExceedRequests {
        /// The pod.
        pod: String,
        /// The error count given.
        errors: u64,
        /// The request count given.
        requests: u64,
    },
    /// A latency is negative, infinite or NaN.
    #[error("invalid stats for pod {pod}: latency #{index} is {value} ms")]
    InvalidLatency {
        /// The pod.
        pod: String,
        /// Position of the latency.
        index: usize,
        /// The value given.
        value: f64,
    },
}

/// Thresholds of the four detectors. Error detectors default to Envoy's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutlierConfig {
    /// Consecutive errors that make a pod an outlier (Envoy: 5).
    pub consecutive_errors: u64,
    /// Pods with `success_rate_request_volume` requests needed before the success-rate
    /// detector runs (Envoy: 5).
    pub success_rate_minimum_hosts: usize,
    /// Requests a pod needs to take part in the success-rate detector (Envoy: 100).
    pub success_rate_request_volume: u64,
    /// The threshold is the mean success rate minus this many standard deviations
    /// (Envoy: 1.9).
    pub success_rate_stdev_factor: f64,
    /// Compute the mean and spread over the pod's peers only (not Envoy's behaviour; see
    /// the module docs).
    pub success_rate_leave_one_out: bool,
    /// Smallest gap between the peers' mean success rate and the pod's (not in Envoy).
    pub success_rate_min_gap: f64,
    /// False-flag budget of the evidence check, split over the pods; `None` skips the check
    /// (not in Envoy).
    pub success_rate_alpha: Option<f64>,
    /// Failure share at or above which a pod is an outlier (Envoy: 85%).
    pub failure_percentage_threshold: f64,
    /// Pods with `failure_percentage_request_volume` requests needed before the
    /// failure-percentage detector runs (Envoy: 5).
    pub failure_percentage_minimum_hosts: usize,
    /// Requests a pod needs to take part in the failure-percentage detector (Envoy: 50).
    pub failure_percentage_request_volume: u64,
    /// Pods with `latency_request_volume` latencies needed before the latency detector runs.
    pub latency_minimum_hosts: usize,
    /// Latencies a pod needs to take part in the latency detector.
    pub latency_request_volume: usize,
    /// The latency threshold is at least the peers' median of medians plus this many
    /// robust deviations (1.4826 × MAD) of those medians.
    pub latency_mad_factor: f64,
    /// ... and at least this much above the median of medians (0.25 = 25%).
    pub latency_min_increase: f64,
    /// The pod's latencies must also rank above the pooled peers' with a Mann-Whitney
    /// z-score of at least this.
    pub latency_min_z: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_errors: 5,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1.9,
            success_rate_leave_one_out: true,
            success_rate_min_gap: 0.01,
            success_rate_alpha: Some(0.001),
            failure_percentage_threshold: 0.85,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
            latency_minimum_hosts: 3,
            latency_request_volume: 100,
            latency_mad_factor: 3.0,
            latency_min_increase: 0.25,
            latency_min_z: 4.0,
        }
    }
}

impl OutlierConfig {
    /// Checks the fields against their ranges.
    ///
    /// # Errors
    ///
    /// [`OutlierError::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), OutlierError> {
        let invalid = |field: &'static str, reason: &str| {
            Err(OutlierError::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.consecutive_errors == 0 {
            return invalid("consecutive_errors", "must be at least 1");
        }
        if self.success_rate_minimum_hosts < 2 || self.latency_minimum_hosts < 2 {
            return invalid("minimum_hosts", "must be at least 2 for any comparison");
        }
        if !(self.success_rate_stdev_factor >= 0.0 && self.success_rate_min_gap >= 0.0) {
            return invalid("success_rate_stdev_factor", "and min_gap must be >= 0");
        }
        if self
            .success_rate_alpha
            .is_some_and(|alpha| !(alpha > 0.0 && alpha < 1.0))
        {
            return invalid("success_rate_alpha", "must be in (0, 1)");
        }
        if !(self.failure_percentage_threshold > 0.0 && self.failure_percentage_threshold <= 1.0) {
            return invalid(
                "failure_percentage_threshold",
                "must be a fraction in (0, 1]",
            );
        }
        if !(self.latency_mad_factor >= 0.0 && self.latency_min_increase >= 0.0) {
            return invalid(
                "latency_mad_factor",
                "and latency_min_increase must be >= 0",
            );
        }
        if self.latency_min_z.is_nan() {
            return invalid("latency_min_z", "must be a number");
        }
        Ok(())
    }
}

/// Finds outlier pods, comparing each pod with the others of its service and workload.
///
/// Outliers come sorted by service, workload, pod and detector; a pod found by two
/// detectors appears twice.
///
/// # Errors
///
/// [`OutlierError::InvalidConfig`] for a config out of range,
/// [`OutlierError::ErrorsExceedRequests`] and [`OutlierError::InvalidLatency`] for
/// impossible stats.
pub fn detect_outliers(
    pods: &[PodStats],
    config: &OutlierConfig,
) -> Result<Vec<Outlier>, OutlierError> {
    config.validate()?;
    let mut workloads: BTreeMap<(&str, &str), Vec<&PodStats>> = BTreeMap::new();
    for pod in pods {
        validate_pod(pod)?;
        workloads
            .entry((&pod.service, &pod.workload))
            .or_default()
            .push(pod);
    }

    let mut outliers = Vec::new();
    for group in workloads.values() {
        consecutive_errors(group, config, &mut outliers);
        success_rate(group, config, &mut outliers);
        failure_percentage(group, config, &mut outliers);
        latency(group, config, &mut outliers);
    }
    outliers.sort_by(|a, b| {
        (&a.service, &a.workload, &a.pod, a.detector).cmp(&(
            &b.service,
            &b.workload,
            &b.pod,
            b.detector,
        ))
    });
    Ok(outliers)
}

fn validate_pod(pod: &PodStats) -> Result<(), OutlierError> {
    if pod.errors > pod.requests {
        return Err(OutlierError::ErrorsExceedRequests {
            pod: pod.pod.clone(),
            errors: pod.errors,
            requests: pod.requests,
        });
    }
    for (index, &value) in pod.latencies_ms.iter().enumerate() {
        if !value.is_finite() || value < 0.0 {
            return Err(OutlierError::InvalidLatency {
                pod: pod.pod.clone(),
                index,
                value,
            });
        }
    }
    Ok(())
}

fn outlier(pod: &PodStats, detector: Detector, value: f64, threshold: f64) -> Outlier {
    Outlier {
        service: pod.service.clone(),
        workload: pod.workload.clone(),
        pod: pod.pod.clone(),
        version: pod.version.clone(),
        detector,
        value,
        threshold,
        requests: pod.requests,
    }
}

fn failure_rate(pod: &PodStats) -> f64 {
    pod.errors as f64 / pod.requests.max(1) as f64
}

fn consecutive_errors(group: &[&PodStats], config: &OutlierConfig, found: &mut Vec<Outlier>) {
    for pod in group {
        if pod.consecutive_errors_max >= config.consecutive_errors {
            let threshold = config.consecutive_errors as f64;
            found.push(outlier(
                pod,
                Detector::ConsecutiveErrors,
                pod.consecutive_errors_max as f64,
                threshold,
            ));
        }
    }
}

fn success_rate(group: &[&PodStats], config: &OutlierConfig, found: &mut Vec<Outlier>) {
    let hosts: Vec<&PodStats> = group
        .iter()
        .copied()
        .filter(|pod| pod.requests >= config.success_rate_request_volume)
        .collect();
    if hosts.len() < config.success_rate_minimum_hosts {
        return;
    }
    let log_evidence_needed = config
        .success_rate_alpha
        .map(|alpha| (hosts.len() as f64 / alpha).ln());

    for (index, pod) in hosts.iter().enumerate() {
        let reference: Vec<&PodStats> = if config.success_rate_leave_one_out {
            hosts
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, p)| *p)
                .collect()
        } else {
            hosts.clone()
        };
        let rates: Vec<f64> = reference
            .iter()
            .map(|peer| 1.0 - failure_rate(peer))
            .collect();
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        let variance =
            rates.iter().map(|rate| (rate - mean).powi(2)).sum::<f64>() / rates.len() as f64;
        let threshold = mean - config.success_rate_stdev_factor * variance.sqrt();
        let rate = 1.0 - failure_rate(pod);
        if rate >= threshold || mean - rate < config.success_rate_min_gap {
            continue;
        }

        // Evidence that the pod fails more often than its peers together.
        if let Some(needed) = log_evidence_needed {
            let peers = hosts
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index);
            let pooled = peers.fold(
                ErrorCounts {
                    errors: 0,
                    requests: 0,
                },
                |sum, (_, peer)| ErrorCounts {
                    errors: sum.errors + peer.errors,
                    requests: sum.requests + peer.requests,
                },
            );
            let own = ErrorCounts {
                errors: pod.errors,
                requests: pod.requests,
            };
            if error_rate_log_e_value(pooled, own, BetaPrior::default()) < needed {
                continue;
            }
        }
        found.push(outlier(pod, Detector::SuccessRate, rate, threshold));
    }
}

fn failure_percentage(group: &[&PodStats], config: &OutlierConfig, found: &mut Vec<Outlier>) {
    let hosts: Vec<&PodStats> = group
        .iter()
        .copied()
        .filter(|pod| pod.requests >= config.failure_percentage_request_volume)
        .collect();
    if hosts.len() < config.failure_percentage_minimum_hosts {
        return;
    }
    for pod in hosts {
        let rate = failure_rate(pod);
        if rate >= config.failure_percentage_threshold {
            found.push(outlier(
                pod,
                Detector::FailurePercentage,
                rate,
                config.failure_percentage_threshold,
            ));
        }
    }
}

fn latency(group: &[&PodStats], config: &OutlierConfig, found: &mut Vec<Outlier>) {
    let hosts: Vec<&PodStats> = group
        .iter()
        .copied()
        .filter(|pod| pod.latencies_ms.len() >= config.latency_request_volume)
        .collect();
    if hosts.len() < config.latency_minimum_hosts {
        return;
    }
    let medians: Vec<f64> = hosts
        .iter()
        .filter_map(|pod| median(&pod.latencies_ms))
        .collect();

    for (index, pod) in hosts.iter().enumerate() {
        // Robust centre and spread of the peers' medians.
        let peer_medians: Vec<f64> = medians
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, value)| *value)
            .collect();
        let Some(center) = median(&peer_medians) else {
            continue;
        };
        let deviations: Vec<f64> = peer_medians
            .iter()
            .map(|value| (value - center).abs())
            .collect();
        let scale = 1.4826 * median(&deviations).unwrap_or(0.0);
        let threshold = (center + config.latency_mad_factor * scale)
            .max(center * (1.0 + config.latency_min_increase));
        let own = medians[index];
        if own <= threshold {
            continue;
        }

        // The whole distribution, not just its median, must sit above the peers'.
        let peers: Vec<f64> = hosts
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .flat_map(|(_, peer)| peer.latencies_ms.iter().copied())
            .collect();
        if mann_whitney(&peers, &pod.latencies_ms).z < config.latency_min_z {
            continue;
        }
        found.push(outlier(pod, Detector::Latency, own, threshold));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, requests: u64, errors: u64, latency_ms: f64) -> PodStats {
        // Latencies spread evenly over ±20% around `latency_ms`.
        let latencies_ms = (0..requests)
            .map(|i| latency_ms * (0.8 + 0.4 * (i as f64 * 0.618_034).fract()))
            .collect();
        PodStats {
            service: "reviews".into(),
            workload: "reviews-v1".into(),
            pod: name.into(),
            version: "v1".into(),
            requests,
            errors,
            consecutive_errors_max: errors.min(1),
            latencies_ms,
        }
    }

    fn fleet(count: usize) -> Vec<PodStats> {
        (0..count)
            .map(|i| pod(&format!("reviews-v1-{i}"), 1000, 5, 40.0))
            .collect()
    }

    fn detectors(outliers: &[Outlier], pod: &str) -> Vec<Detector> {
        outliers
            .iter()
            .filter(|o| o.pod == pod)
            .map(|o| o.detector)
            .collect()
    }

    #[test]
    fn healthy_fleet_has_no_outliers() {
        assert_eq!(
            detect_outliers(&fleet(10), &OutlierConfig::default()).unwrap(),
            vec![]
        );
    }

    #[test]
    fn five_consecutive_errors_flag_but_four_do_not() {
        let mut pods = fleet(3);
        pods[0].consecutive_errors_max = 5;
        pods[1].consecutive_errors_max = 4;
        let outliers = detect_outliers(&pods, &OutlierConfig::default()).unwrap();
        assert_eq!(outliers.len(), 1);
        assert_eq!(
            (outliers[0].pod.as_str(), outliers[0].value),
            ("reviews-v1-0", 5.0)
        );
        assert_eq!(outliers[0].detector, Detector::ConsecutiveErrors);
    }

    #[test]
    fn failure_percentage_needs_five_hosts() {
        let mut pods = fleet(5);
        pods[2].errors = 900;
        let outliers = detect_outliers(&pods, &OutlierConfig::default()).unwrap();
        assert!(detectors(&outliers, "reviews-v1-2").contains(&Detector::FailurePercentage));
        let outliers = detect_outliers(&pods[..4], &OutlierConfig::default()).unwrap();
        assert!(!detectors(&outliers, "reviews-v1-2").contains(&Detector::FailurePercentage));
    }

    #[test]
    fn one_bad_pod_among_five_is_found_by_success_rate() {
        let mut pods = fleet(5);
        pods[3].errors = 200;
        let outliers = detect_outliers(&pods, &OutlierConfig::default()).unwrap();
        assert_eq!(
            detectors(&outliers, "reviews-v1-3"),
            vec![Detector::SuccessRate]
        );
        assert_eq!(outliers.len(), 1);
        assert!((outliers[0].value - 0.8).abs() < 1e-12);
    }

    #[test]
    fn envoy_exact_rule_flags_noise_that_the_default_ignores() {
        // Nine pods with 5 errors in 1,000 calls and one with 9: binomial noise, but three
        // deviations below the mean of ten nearly equal success rates.
        let mut pods = fleet(10);
        pods[6].errors = 9;
        let envoy = OutlierConfig {
            success_rate_leave_one_out: false,
            success_rate_min_gap: 0.0,
            success_rate_alpha: None,
            ..OutlierConfig::default()
        };
        let outliers = detect_outliers(&pods, &envoy).unwrap();
        assert_eq!(
            detectors(&outliers, "reviews-v1-6"),
            vec![Detector::SuccessRate]
        );
        assert_eq!(
            detect_outliers(&pods, &OutlierConfig::default()).unwrap(),
            vec![]
        );
    }

    #[test]
    fn slow_pod_is_found_by_latency() {
        let mut pods = fleet(5);
        pods[1] = pod("reviews-v1-1", 1000, 5, 80.0);
        let outliers = detect_outliers(&pods, &OutlierConfig::default()).unwrap();
        assert_eq!(outliers.len(), 1);
        assert_eq!(outliers[0].detector, Detector::Latency);
        assert_eq!(outliers[0].pod, "reviews-v1-1");
        assert!(outliers[0].value > outliers[0].threshold);
        // 25% above a 40 ms median of medians.
        assert!(
            (outliers[0].threshold - 50.0).abs() < 0.5,
            "{}",
            outliers[0].threshold
        );
    }

    #[test]
    fn slightly_slower_pod_is_not_an_outlier() {
        let mut pods = fleet(5);
        pods[1] = pod("reviews-v1-1", 1000, 5, 46.0);
        assert_eq!(
            detect_outliers(&pods, &OutlierConfig::default()).unwrap(),
            vec![]
        );
    }

    #[test]
    fn workloads_are_compared_separately() {
        let mut pods = fleet(5);
        for (index, other) in fleet(5).into_iter().enumerate() {
            pods.push(PodStats {
                workload: "reviews-v2".into(),
                pod: format!("reviews-v2-{index}"),
                latencies_ms: other.latencies_ms.iter().map(|value| value * 3.0).collect(),
                ..other
            });
        }
        assert_eq!(
            detect_outliers(&pods, &OutlierConfig::default()).unwrap(),
            vec![]
        );
    }

    #[test]
    fn impossible_stats_are_errors() {
        let mut pods = fleet(2);
        pods[1].errors = 2000;
        let error = detect_outliers(&pods, &OutlierConfig::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid stats for pod reviews-v1-1: 2000 errors out of 1000 requests"
        );
        let config = OutlierConfig {
            success_rate_alpha: Some(2.0),
            ..OutlierConfig::default()
        };
        assert!(detect_outliers(&fleet(2), &config).is_err());
    }

    #[test]
    fn serializes_to_contract_names() {
        let mut pods = fleet(5);
        pods[0].consecutive_errors_max = 7;
        let outliers = detect_outliers(&pods, &OutlierConfig::default()).unwrap();
        let json = serde_json::to_value(&outliers[0]).unwrap();
        assert_eq!(json["detector"], "consecutive_errors");
        assert_eq!(json["value"], 7.0);
        assert_eq!(json["requests"], 1000);
        assert_eq!(json["pod"], "reviews-v1-0");
        assert_eq!(json["version"], "v1");
    }
}
