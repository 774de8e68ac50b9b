//! Simulated traffic with known truth, for the quality measurements: a small seeded random
//! generator, a heavy-tailed latency model, Bernoulli errors, and pods built from them.
//!
//! The generator is written here rather than taken from `rand` so that the quality report
//! can run outside tests without adding a dependency, and so that a seed means the same
//! numbers forever.

use crate::canary::Sample;
use crate::outliers::PodStats;

/// A seeded xoshiro256** generator, its state expanded from the seed by SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct SimRng {
    state: [u64; 4],
}

impl SimRng {
    /// A generator whose whole output is fixed by `seed`.
    pub(crate) fn seed_from(seed: u64) -> Self {
        let mut mix = seed;
        let mut next = || {
            mix = mix.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = mix;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            state: [next(), next(), next(), next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let shifted = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= shifted;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in the open interval (0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal, by the Box-Muller transform.
    pub(crate) fn normal(&mut self) -> f64 {
        let radius = (-2.0 * self.uniform().ln()).sqrt();
        radius * (2.0 * std::f64::consts::PI * self.uniform()).cos()
    }

    /// True with probability `probability`.
    pub(crate) fn bernoulli(&mut self, probability: f64) -> bool {
        self.uniform() < probability
    }
}

/// Latencies that look like a real service: lognormal around a median, with a small share
/// of calls multiplied by a Pareto factor (retries, GC pauses), so that the tail is heavy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LatencyModel {
    /// Median of the lognormal body.
    pub(crate) median_ms: f64,
    /// Standard deviation of the log of the body.
    pub(crate) sigma: f64,
    /// Share of calls that get a Pareto factor.
    pub(crate) heavy_tail_share: f64,
    /// Shape of that factor (smaller is heavier; below 2 the variance is infinite).
    pub(crate) pareto_shape: f64,
    /// Every latency is multiplied by this (a whole-distribution regression).
    pub(crate) scale: f64,
    /// Latencies above `.0` are multiplied by `.1` (a tail-only regression).
    pub(crate) tail: Option<(f64, f64)>,
}

impl Default for LatencyModel {
    fn default() -> Self {
        Self {
            median_ms: 40.0,
            sigma: 0.45,
            heavy_tail_share: 0.02,
            pareto_shape: 1.5,
            scale: 1.0,
            tail: None,
        }
    }
}

impl LatencyModel {
    /// Draws one latency.
    pub(crate) fn draw(&self, rng: &mut SimRng) -> f64 {
        let mut latency = self.median_ms * (self.sigma * rng.normal()).exp();
        if rng.bernoulli(self.heavy_tail_share) {
            latency *= rng.uniform().powf(-1.0 / self.pareto_shape);
        }
        if let Some((threshold_ms, factor)) = self.tail
            && latency > threshold_ms
        {
            latency *= factor;
        }
        latency * self.scale
    }

    /// The same model with its slowest 5% of calls made `factor` times slower, so that
    /// every quantile from p95 up (p99 included) is exactly `factor` times the original and
    /// the median does not move.
    pub(crate) fn with_tail_factor(&self, factor: f64) -> Self {
        Self {
            tail: Some((self.population_quantile(0.95), factor)),
            ..self.clone()
        }
    }

    /// The same model with a wider lognormal body, wide enough that p99 is `factor` times
    /// the original while the median stays: the tail grows gradually, from about p75 up.
    pub(crate) fn with_wider_body(&self, factor: f64) -> Self {
        let target = factor * self.population_quantile(0.99);
        let (mut low, mut high) = (self.sigma, 4.0 * self.sigma);
        for _ in 0..40 {
            let middle = 0.5 * (low + high);
            let wider = Self {
                sigma: middle,
                ..self.clone()
            };
            if wider.population_quantile(0.99) < target {
                low = middle;
            } else {
                high = middle;
            }
        }
        Self {
            sigma: 0.5 * (low + high),
            ..self.clone()
        }
    }

    /// A quantile of this model's distribution, from 200,000 draws with a fixed seed.
    pub(crate) fn population_quantile(&self, level: f64) -> f64 {
        let mut rng = SimRng::seed_from(0x7A11);
        let base = Self {
            scale: 1.0,
            tail: None,
            ..self.clone()
        };
        let draws: Vec<f64> = (0..200_000).map(|_| base.draw(&mut rng)).collect();
        let sorted = crate::canary::math::sorted_copy(&draws);
        crate::canary::math::quantile_sorted(&sorted, level).unwrap_or(0.0)
    }
}

/// One side's traffic: an error rate and a latency model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TrafficModel {
    /// Chance that a call fails.
    pub(crate) error_rate: f64,
    /// Latency of every call, failed or not.
    pub(crate) latency: LatencyModel,
}

impl Default for TrafficModel {
    /// 1% errors and the default latency model.
    fn default() -> Self {
        Self {
            error_rate: 0.01,
            latency: LatencyModel::default(),
        }
    }
}

impl TrafficModel {
    /// Appends `calls` simulated calls to `sample`.
    pub(crate) fn extend(&self, sample: &mut Sample, calls: usize, rng: &mut SimRng) {
        sample.latencies_ms.reserve(calls);
        sample.failed.reserve(calls);
        for _ in 0..calls {
            sample.latencies_ms.push(self.latency.draw(rng));
            let failed = rng.bernoulli(self.error_rate);
            sample.failed.push(failed);
            sample.errors += u64::from(failed);
        }
        sample.requests += calls as u64;
    }

    /// Simulates one pod serving `calls` calls, tracking its longest run of errors.
    pub(crate) fn pod_stats(&self, pod: String, calls: usize, rng: &mut SimRng) -> PodStats {
        let mut stats = PodStats {
            service: "reviews".to_owned(),
            workload: "reviews-v1".to_owned(),
            pod,
            version: "v1".to_owned(),
            requests: calls as u64,
            latencies_ms: Vec::with_capacity(calls),
            ..PodStats::default()
        };
        let mut run = 0;
        for _ in 0..calls {
            stats.latencies_ms.push(self.latency.draw(rng));
            if rng.bernoulli(self.error_rate) {
                stats.errors += 1;
                run += 1;
                stats.consecutive_errors_max = stats.consecutive_errors_max.max(run);
            } else {
                run = 0;
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::math::{quantile_sorted, sorted_copy};

    #[test]
    fn same_seed_same_numbers() {
        let (mut a, mut b) = (SimRng::seed_from(42), SimRng::seed_from(42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(
            SimRng::seed_from(1).next_u64(),
            SimRng::seed_from(2).next_u64()
        );
    }

    #[test]
    fn uniform_and_normal_have_the_right_moments() {
        let mut rng = SimRng::seed_from(3);
        let uniforms: Vec<f64> = (0..100_000).map(|_| rng.uniform()).collect();
        let mean = uniforms.iter().sum::<f64>() / 1e5;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!(uniforms.iter().all(|u| *u > 0.0 && *u < 1.0));
        let normals: Vec<f64> = (0..100_000).map(|_| rng.normal()).collect();
        let mean = normals.iter().sum::<f64>() / 1e5;
        let variance = normals.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / 1e5;
        assert!(
            mean.abs() < 0.02 && (variance - 1.0).abs() < 0.02,
            "{mean} {variance}"
        );
    }

    #[test]
    fn pod_stats_track_the_longest_run_of_errors() {
        let always = TrafficModel {
            error_rate: 1.0,
            ..TrafficModel::default()
        };
        let stats = always.pod_stats("p".to_owned(), 7, &mut SimRng::seed_from(1));
        assert_eq!(
            (stats.requests, stats.errors, stats.consecutive_errors_max),
            (7, 7, 7)
        );
        assert_eq!(stats.latencies_ms.len(), 7);
        let never = TrafficModel {
            error_rate: 0.0,
            ..TrafficModel::default()
        };
        let stats = never.pod_stats("p".to_owned(), 7, &mut SimRng::seed_from(1));
        assert_eq!((stats.errors, stats.consecutive_errors_max), (0, 0));
    }

    #[test]
    fn tail_factor_moves_p99_but_not_the_median() {
        let model = LatencyModel::default();
        let slow = model.with_tail_factor(1.5);
        let (mut rng_a, mut rng_b) = (SimRng::seed_from(5), SimRng::seed_from(5));
        let base = sorted_copy(
            &(0..100_000)
                .map(|_| model.draw(&mut rng_a))
                .collect::<Vec<_>>(),
        );
        let tail = sorted_copy(
            &(0..100_000)
                .map(|_| slow.draw(&mut rng_b))
                .collect::<Vec<_>>(),
        );
        let at = |sorted: &[f64], level| quantile_sorted(sorted, level).unwrap();
        assert_eq!(at(&base, 0.5), at(&tail, 0.5));
        assert!((at(&tail, 0.99) / at(&base, 0.99) - 1.5).abs() < 1e-9);
        // The heavy tail is really heavy: p99.9 is well beyond the lognormal body's.
        let body_p999 = 40.0 * (0.45f64 * 3.09).exp();
        assert!(at(&base, 0.999) > 1.2 * body_p999, "{}", at(&base, 0.999));
    }

    #[test]
    fn wider_body_moves_p99_by_the_factor_and_keeps_the_median() {
        let model = LatencyModel::default();
        let wider = model.with_wider_body(1.5);
        let ratio = wider.population_quantile(0.99) / model.population_quantile(0.99);
        assert!((ratio - 1.5).abs() < 1e-3, "{ratio}");
        let median_ratio = wider.population_quantile(0.5) / model.population_quantile(0.5);
        assert!((median_ratio - 1.0).abs() < 0.01, "{median_ratio}");
    }
}
