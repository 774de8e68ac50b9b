//! Measured quality of the judge, of the Kayenta-style comparator and of the outlier
//! detectors, on simulated traffic whose truth is known.
//!
//! - **A/A**: baseline and canary drawn from one model (1% errors, heavy-tailed latency),
//!   judged after every interval over a growing window, as a rollout controller would ask.
//!   A run is a false failure if *any* look fails.
//! - **Power**: a canary with a real regression, judged once at a given size per side:
//!   errors from 1% to 5%; the slowest 5% of calls 1.5x slower (p99 +50%, median
//!   unchanged); every call 1.5x slower.
//! - **Too little data**: a few dozen calls per side of a regressed canary.
//! - **Outliers**: five pods with one bad (20% errors against 0.5%, or every call 2x
//!   slower), and ten healthy pods, the latter also under Envoy's exact success-rate rule
//!   for comparison.
//!
//! The tests at the bottom are the acceptance criteria of the judge and the detectors;
//! [`quality_report`] runs the same simulations with chosen sizes for a report command.

use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use crate::canary::simulation::{LatencyModel, SimRng, TrafficModel};
use crate::canary::{
    CheckInput, JudgeConfig, JudgeError, KayentaConfig, Outcome, judge, kayenta_judge,
};
use crate::outliers::{Detector, OutlierConfig, OutlierError, PodStats, detect_outliers};

/// Sizes of the simulations and the configs under test.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityOptions {
    /// Seed of every simulated run; the same seed gives the same report.
    pub seed: u64,
    /// A/A runs.
    pub aa_runs: usize,
    /// Looks per A/A run.
    pub looks: usize,
    /// Calls added per side between two looks.
    pub calls_per_look: usize,
    /// Runs per regression and size.
    pub power_runs: usize,
    /// Calls per side at which regressions are judged.
    pub power_calls: Vec<usize>,
    /// Calls per side of the too-little-data runs.
    pub small_calls: usize,
    /// Runs per outlier scenario.
    pub outlier_runs: usize,
    /// Calls per pod in the outlier scenarios.
    pub outlier_calls_per_pod: usize,
    /// The judge's config.
    pub judge: JudgeConfig,
    /// The comparator's config.
    pub kayenta: KayentaConfig,
    /// The detectors' config.
    pub outliers: OutlierConfig,
}

impl Default for QualityOptions {
    fn default() -> Self {
        Self {
            seed: 2024,
            aa_runs: 1000,
            looks: 10,
            calls_per_look: 200,
            power_runs: 400,
            power_calls: vec![1000, 1500, 2000],
            small_calls: 40,
            outlier_runs: 200,
            outlier_calls_per_pod: 1000,
            judge: JudgeConfig::default(),
            kayenta: KayentaConfig::default(),
            outliers: OutlierConfig::default(),
        }
    }
}

/// Why the quality simulations could not run: a config under test is invalid.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QualityError {
    /// The judge or the comparator rejected its config.
    #[error("quality simulation failed in the judge: {0}")]
    Judge(#[from] JudgeError),
    /// The outlier detectors rejected their config.
    #[error("quality simulation failed in the outlier detectors: {0}")]
    Outliers(#[from] OutlierError),
}

/// False failures when canary and baseline are the same.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AaQuality {
    /// Simulated rollouts.
    pub runs: usize,
    /// Looks per rollout.
    pub looks: usize,
    /// Calls added per side between looks.
    pub calls_per_look: usize,
    /// Share of rollouts the judge failed at some look.
    pub judge_false_failure_rate: f64,
    /// Share of rollouts the Kayenta-style comparator failed at some look.
    pub kayenta_false_failure_rate: f64,
    /// The judge's share of rollouts failed by each look (cumulative).
    pub judge_false_failure_rate_by_look: Vec<f64>,
    /// The comparator's share of rollouts failed by each look (cumulative).
    pub kayenta_false_failure_rate_by_look: Vec<f64>,
}

/// Detection of one real regression at one size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerQuality {
    /// What changed in the canary.
    pub regression: String,
    /// Calls per side.
    pub calls_per_side: usize,
    /// Simulated comparisons.
    pub runs: usize,
    /// Share the judge failed.
    pub judge_failure_rate: f64,
    /// Share the Kayenta-style comparator failed.
    pub kayenta_failure_rate: f64,
}

/// Verdicts on a few dozen calls of a regressed canary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmallSampleQuality {
    /// Calls per side.
    pub calls_per_side: usize,
    /// Simulated comparisons.
    pub runs: usize,
    /// Share the judge called inconclusive.
    pub judge_inconclusive_rate: f64,
}

/// Hits and false flags of the outlier detectors in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlierQuality {
    /// The scenario.
    pub scenario: String,
    /// Simulated windows.
    pub runs: usize,
    /// Pods in the workload.
    pub pods: usize,
    /// Share of runs where the bad pod was flagged; absent without a bad pod.
    pub bad_pod_flag_rate: Option<f64>,
    /// Per detector, the share of runs where it flagged the bad pod.
    pub bad_pod_flag_rate_by_detector: BTreeMap<String, f64>,
    /// Share of (healthy pod, run) pairs flagged by any detector.
    pub healthy_pod_flag_rate: f64,
}

/// Everything measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    /// Seed used.
    pub seed: u64,
    /// Repeated A/A comparisons.
    pub aa: AaQuality,
    /// Real regressions.
    pub power: Vec<PowerQuality>,
    /// A few dozen calls.
    pub too_little_data: SmallSampleQuality,
    /// Outlier scenarios; the last applies Envoy's exact success-rate rule, for comparison.
    pub outliers: Vec<OutlierQuality>,
}

/// Runs every simulation with the given sizes and configs (see the module docs).
///
/// With the default options this takes about 7 s on one core at `opt-level = 1`.
///
/// # Errors
///
/// [`QualityError`] when a config under test is invalid.
pub fn quality_report(options: &QualityOptions) -> Result<QualityReport, QualityError> {
    let mut power = Vec::new();
    for regression in Regression::ALL {
        for &calls in &options.power_calls {
            power.push(power_quality(
                regression,
                calls,
                options.power_runs,
                options,
            )?);
        }
    }
    let mut outliers = Vec::new();
    for fault in [PodFault::Errors, PodFault::Slow, PodFault::None] {
        outliers.push(outlier_quality(
            fault,
            options.outlier_runs,
            &options.outliers,
            options,
        )?);
    }
    let envoy = envoy_exact(&options.outliers);
    let mut envoy_healthy = outlier_quality(PodFault::None, options.outlier_runs, &envoy, options)?;
    envoy_healthy.scenario += ", Envoy's exact success-rate rule";
    outliers.push(envoy_healthy);
    Ok(QualityReport {
        seed: options.seed,
        aa: aa_quality(options.aa_runs, options)?,
        power,
        too_little_data: small_sample_quality(options.power_runs, options)?,
        outliers,
    })
}

/// A seed per scenario and run, all derived from the options' seed.
fn run_seed(options: &QualityOptions, scenario: u64, run: usize) -> u64 {
    options.seed ^ (scenario << 40) ^ (run as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn empty_input() -> CheckInput {
    CheckInput {
        edge_source: "frontend".to_owned(),
        edge_target: "reviews".to_owned(),
        operation: "GET /reviews".to_owned(),
        ..CheckInput::default()
    }
}

fn rate(count: usize, total: usize) -> f64 {
    count as f64 / total.max(1) as f64
}

fn aa_quality(runs: usize, options: &QualityOptions) -> Result<AaQuality, QualityError> {
    let model = TrafficModel::default();
    let mut judge_first_failure = vec![0usize; options.looks];
    let mut kayenta_first_failure = vec![0usize; options.looks];
    for run in 0..runs {
        let mut rng = SimRng::seed_from(run_seed(options, 1, run));
        let mut input = empty_input();
        let (mut judge_failed, mut kayenta_failed) = (false, false);
        for look in 0..options.looks {
            model.extend(&mut input.baseline, options.calls_per_look, &mut rng);
            model.extend(&mut input.canary, options.calls_per_look, &mut rng);
            let inputs = std::slice::from_ref(&input);
            if !judge_failed && judge(inputs, &options.judge)?.verdict == Outcome::Fail {
                judge_failed = true;
                judge_first_failure[look] += 1;
            }
            if !kayenta_failed && kayenta_judge(inputs, &options.kayenta)?.verdict == Outcome::Fail
            {
                kayenta_failed = true;
                kayenta_first_failure[look] += 1;
            }
        }
    }
    let cumulative = |first: &[usize]| -> Vec<f64> {
        first
            .iter()
            .scan(0, |sum, count| {
                *sum += count;
                Some(rate(*sum, runs))
            })
            .collect()
    };
    Ok(AaQuality {
        runs,
        looks: options.looks,
        calls_per_look: options.calls_per_look,
        judge_false_failure_rate: rate(judge_first_failure.iter().sum(), runs),
        kayenta_false_failure_rate: rate(kayenta_first_failure.iter().sum(), runs),
        judge_false_failure_rate_by_look: cumulative(&judge_first_failure),
        kayenta_false_failure_rate_by_look: cumulative(&kayenta_first_failure),
    })
}

/// A real regression of the canary.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Regression {
    /// Errors from 1% to 5%.
    ErrorRate,
    /// The slowest 5% of calls 1.5x slower: p99 +50%, median unchanged.
    TailLatency,
    /// A wider latency body: p99 +50%, median unchanged, p75 to p95 slower too.
    WiderLatency,
    /// Every call 1.5x slower.
    WholeLatency,
}

impl Regression {
    const ALL: [Self; 4] = [
        Self::ErrorRate,
        Self::TailLatency,
        Self::WiderLatency,
        Self::WholeLatency,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::ErrorRate => "error rate 1% -> 5%",
            Self::TailLatency => "p99 latency +50% (slowest 5% of calls 1.5x, median unchanged)",
            Self::WiderLatency => "p99 latency +50% (wider lognormal body, median unchanged)",
            Self::WholeLatency => "latency +50% on every call",
        }
    }

    fn canary(self, healthy: &TrafficModel) -> TrafficModel {
        match self {
            Self::ErrorRate => TrafficModel {
                error_rate: 0.05,
                ..healthy.clone()
            },
            Self::TailLatency => TrafficModel {
                latency: healthy.latency.with_tail_factor(1.5),
                ..healthy.clone()
            },
            Self::WiderLatency => TrafficModel {
                latency: healthy.latency.with_wider_body(1.5),
                ..healthy.clone()
            },
            Self::WholeLatency => TrafficModel {
                latency: LatencyModel {
                    scale: 1.5,
                    ..healthy.latency.clone()
                },
                ..healthy.clone()
            },
        }
    }
}

fn power_quality(
    regression: Regression,
    calls: usize,
    runs: usize,
    options: &QualityOptions,
) -> Result<PowerQuality, QualityError> {
    let healthy = TrafficModel::default();
    let regressed = regression.canary(&healthy);
    let (mut judge_failures, mut kayenta_failures) = (0, 0);
    for run in 0..runs {
        let mut rng = SimRng::seed_from(run_seed(options, 2 + regression as u64, run));
        let mut input = empty_input();
        healthy.extend(&mut input.baseline, calls, &mut rng);
        regressed.extend(&mut input.canary, calls, &mut rng);
        let inputs = std::slice::from_ref(&input);
        judge_failures += usize::from(judge(inputs, &options.judge)?.verdict == Outcome::Fail);
        kayenta_failures +=
            usize::from(kayenta_judge(inputs, &options.kayenta)?.verdict == Outcome::Fail);
    }
    Ok(PowerQuality {
        regression: regression.name().to_owned(),
        calls_per_side: calls,
        runs,
        judge_failure_rate: rate(judge_failures, runs),
        kayenta_failure_rate: rate(kayenta_failures, runs),
    })
}

fn small_sample_quality(
    runs: usize,
    options: &QualityOptions,
) -> Result<SmallSampleQuality, QualityError> {
    let healthy = TrafficModel::default();
    let regressed = TrafficModel {
        error_rate: 0.05,
        latency: healthy.latency.with_tail_factor(1.5),
    };
    let mut inconclusive = 0;
    for run in 0..runs {
        let mut rng = SimRng::seed_from(run_seed(options, 8, run));
        let mut input = empty_input();
        healthy.extend(&mut input.baseline, options.small_calls, &mut rng);
        regressed.extend(&mut input.canary, options.small_calls, &mut rng);
        let verdict = judge(std::slice::from_ref(&input), &options.judge)?;
        inconclusive += usize::from(verdict.verdict == Outcome::Inconclusive);
    }
    Ok(SmallSampleQuality {
        calls_per_side: options.small_calls,
        runs,
        judge_inconclusive_rate: rate(inconclusive, runs),
    })
}

/// What is wrong with the first pod of an outlier scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PodFault {
    /// Nothing: ten healthy pods.
    None,
    /// 20% errors against the others' 0.5%.
    Errors,
    /// Every call 2x slower.
    Slow,
}

impl PodFault {
    fn name(self) -> &'static str {
        match self {
            Self::None => "ten healthy pods (0.5% errors)",
            Self::Errors => "one pod of five at 20% errors, others 0.5%",
            Self::Slow => "one pod of five 2x slower on every call",
        }
    }

    fn pods(self) -> usize {
        if self == Self::None { 10 } else { 5 }
    }
}

fn detector_name(detector: Detector) -> &'static str {
    match detector {
        Detector::ConsecutiveErrors => "consecutive_errors",
        Detector::SuccessRate => "success_rate",
        Detector::FailurePercentage => "failure_percentage",
        Detector::Latency => "latency",
    }
}

/// Envoy's own success-rate rule: the mean and spread include the pod, with no evidence
/// check and no minimum gap (see `crate::outliers`).
fn envoy_exact(config: &OutlierConfig) -> OutlierConfig {
    OutlierConfig {
        success_rate_leave_one_out: false,
        success_rate_min_gap: 0.0,
        success_rate_alpha: None,
        ..config.clone()
    }
}

fn outlier_quality(
    fault: PodFault,
    runs: usize,
    config: &OutlierConfig,
    options: &QualityOptions,
) -> Result<OutlierQuality, QualityError> {
    let healthy = TrafficModel {
        error_rate: 0.005,
        ..TrafficModel::default()
    };
    let bad = match fault {
        PodFault::None => healthy.clone(),
        PodFault::Errors => TrafficModel {
            error_rate: 0.2,
            ..healthy.clone()
        },
        PodFault::Slow => TrafficModel {
            latency: LatencyModel {
                scale: 2.0,
                ..healthy.latency.clone()
            },
            ..healthy.clone()
        },
    };
    let pod_count = fault.pods();
    let (mut bad_flagged, mut healthy_flagged) = (0, 0);
    let mut by_detector: BTreeMap<String, usize> = BTreeMap::new();
    for run in 0..runs {
        let mut rng = SimRng::seed_from(run_seed(options, 16 + fault as u64, run));
        let pods: Vec<PodStats> = (0..pod_count)
            .map(|index| {
                let model = if index == 0 { &bad } else { &healthy };
                model.pod_stats(
                    format!("reviews-v1-{index}"),
                    options.outlier_calls_per_pod,
                    &mut rng,
                )
            })
            .collect();
        let outliers = detect_outliers(&pods, config)?;
        let flagged_pods: std::collections::BTreeSet<&str> = outliers
            .iter()
            .map(|outlier| outlier.pod.as_str())
            .collect();
        if fault != PodFault::None {
            bad_flagged += usize::from(flagged_pods.contains("reviews-v1-0"));
            for outlier in outliers
                .iter()
                .filter(|outlier| outlier.pod == "reviews-v1-0")
            {
                *by_detector
                    .entry(detector_name(outlier.detector).to_owned())
                    .or_default() += 1;
            }
        }
        let first_healthy = if fault == PodFault::None { 0 } else { 1 };
        healthy_flagged += (first_healthy..pod_count)
            .filter(|index| flagged_pods.contains(format!("reviews-v1-{index}").as_str()))
            .count();
    }
    let healthy_pods = if fault == PodFault::None {
        pod_count
    } else {
        pod_count - 1
    };
    Ok(OutlierQuality {
        scenario: fault.name().to_owned(),
        runs,
        pods: pod_count,
        bad_pod_flag_rate: (fault != PodFault::None).then(|| rate(bad_flagged, runs)),
        bad_pod_flag_rate_by_detector: by_detector
            .into_iter()
            .map(|(name, count)| (name, rate(count, runs)))
            .collect(),
        healthy_pod_flag_rate: rate(healthy_flagged, runs * healthy_pods),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aa_comparisons_rarely_fail_even_when_checked_every_interval() {
        let options = QualityOptions::default();
        let aa = aa_quality(options.aa_runs, &options).unwrap();
        println!(
            "A/A over {} runs, {} looks of +{} calls per side: judge ever failed {:.2}%, \
             Kayenta-style MWU ever failed {:.2}%",
            aa.runs,
            aa.looks,
            aa.calls_per_look,
            100.0 * aa.judge_false_failure_rate,
            100.0 * aa.kayenta_false_failure_rate
        );
        println!(
            "  judge by look:   {:?}",
            aa.judge_false_failure_rate_by_look
        );
        println!(
            "  Kayenta by look: {:?}",
            aa.kayenta_false_failure_rate_by_look
        );
        assert!(aa.runs >= 500);
        assert!(aa.judge_false_failure_rate <= 0.01, "{aa:?}");
    }

    /// Measures power at every size of the default options and asserts at least `minimum`
    /// at each size from `from_calls` up.
    fn assert_power(regression: Regression, from_calls: usize, minimum: f64) {
        let options = QualityOptions::default();
        for &calls in &options.power_calls {
            let power = power_quality(regression, calls, options.power_runs, &options).unwrap();
            println!(
                "{} at {} calls per side over {} runs: judge failed {:.1}%, Kayenta-style \
                 MWU failed {:.1}%",
                power.regression,
                power.calls_per_side,
                power.runs,
                100.0 * power.judge_failure_rate,
                100.0 * power.kayenta_failure_rate
            );
            if calls >= from_calls {
                assert!(power.judge_failure_rate >= minimum, "{power:?}");
            }
        }
    }

    #[test]
    fn error_rate_from_1_to_5_percent_is_caught() {
        assert_power(Regression::ErrorRate, 1000, 0.95);
    }

    #[test]
    fn p99_latency_plus_50_percent_from_a_wider_body_is_caught() {
        assert_power(Regression::WiderLatency, 1000, 0.95);
    }

    #[test]
    fn p99_latency_plus_50_percent_in_the_slowest_5_percent_is_caught() {
        // Only 50 of 1,000 canary calls differ, and the count beyond any one threshold
        // barely moves: the nested bets (latency.rs) carry this one.
        assert_power(Regression::TailLatency, 1000, 0.95);
    }

    #[test]
    fn latency_plus_50_percent_everywhere_is_caught() {
        assert_power(Regression::WholeLatency, 1000, 0.95);
    }

    #[test]
    fn a_few_dozen_calls_are_inconclusive() {
        let options = QualityOptions::default();
        let small = small_sample_quality(200, &options).unwrap();
        println!(
            "{} calls per side, {} runs: inconclusive {:.1}%",
            small.calls_per_side,
            small.runs,
            100.0 * small.judge_inconclusive_rate
        );
        assert_eq!(small.judge_inconclusive_rate, 1.0);
    }

    fn report_outliers(quality: &OutlierQuality) {
        println!(
            "{} over {} runs: bad pod flagged {:?} (by detector {:?}), healthy pods flagged \
             {:.2}%",
            quality.scenario,
            quality.runs,
            quality.bad_pod_flag_rate,
            quality.bad_pod_flag_rate_by_detector,
            100.0 * quality.healthy_pod_flag_rate
        );
    }

    #[test]
    fn erroring_pod_among_five_is_always_flagged_and_healthy_never() {
        let options = QualityOptions::default();
        let quality = outlier_quality(
            PodFault::Errors,
            options.outlier_runs,
            &options.outliers,
            &options,
        )
        .unwrap();
        report_outliers(&quality);
        assert_eq!(quality.bad_pod_flag_rate, Some(1.0));
        assert_eq!(quality.healthy_pod_flag_rate, 0.0);
    }

    #[test]
    fn slow_pod_among_five_is_always_flagged_and_healthy_never() {
        let options = QualityOptions::default();
        let quality = outlier_quality(
            PodFault::Slow,
            options.outlier_runs,
            &options.outliers,
            &options,
        )
        .unwrap();
        report_outliers(&quality);
        assert_eq!(quality.bad_pod_flag_rate, Some(1.0));
        assert_eq!(
            quality.bad_pod_flag_rate_by_detector.get("latency"),
            Some(&1.0)
        );
        assert_eq!(quality.healthy_pod_flag_rate, 0.0);
    }

    #[test]
    fn healthy_fleet_is_never_flagged() {
        let options = QualityOptions::default();
        let quality = outlier_quality(
            PodFault::None,
            options.outlier_runs,
            &options.outliers,
            &options,
        )
        .unwrap();
        report_outliers(&quality);
        assert_eq!(quality.healthy_pod_flag_rate, 0.0);
    }

    #[test]
    fn envoy_exact_rule_flags_healthy_pods_in_the_same_fleet() {
        // Pins the reason the default departs from Envoy (see `crate::outliers`).
        let options = QualityOptions::default();
        let envoy = envoy_exact(&options.outliers);
        let quality = outlier_quality(PodFault::None, options.outlier_runs, &envoy, &options);
        let quality = quality.unwrap();
        report_outliers(&quality);
        assert!(quality.healthy_pod_flag_rate > 0.01, "{quality:?}");
    }

    #[test]
    fn report_serializes_with_every_section() {
        let options = QualityOptions {
            aa_runs: 3,
            looks: 2,
            power_runs: 2,
            power_calls: vec![200],
            outlier_runs: 2,
            ..QualityOptions::default()
        };
        let json = serde_json::to_value(quality_report(&options).unwrap()).unwrap();
        assert_eq!(json["aa"]["runs"], 3);
        assert_eq!(json["power"].as_array().unwrap().len(), 4);
        assert_eq!(json["outliers"].as_array().unwrap().len(), 4);
        assert!(json["too_little_data"]["judge_inconclusive_rate"].is_number());
    }
}
