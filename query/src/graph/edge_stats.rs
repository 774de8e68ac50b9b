//! Per-edge counts and latency sketches, mergeable across time buckets and groups.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of the latency sketches: quantiles are within 1% of the truth.
const SKETCH_ALPHA: f64 = 0.005;
/// Bins per sketch; at 0.5% accuracy this spans from 1 µs to beyond a day exactly.
const SKETCH_MAX_BINS: u32 = 4096;
/// Smallest latency the sketch resolves, in milliseconds (1 ns).
const SKETCH_MIN_MS: f64 = 1e-6;

fn new_sketch() -> DDSketch {
    DDSketch::new(Config::new(SKETCH_ALPHA, SKETCH_MAX_BINS, SKETCH_MIN_MS))
}

/// Calls, errors and latency of one edge over some time.
#[derive(Clone, Serialize, Deserialize)]
pub struct EdgeStats {
    /// Calls seen.
    pub calls: u64,
    /// Calls in error (client or server span with status ERROR).
    pub errors: u64,
    /// Client-side latency in milliseconds (the client span's duration; for edges from
    /// the `user` node, the server span's).
    pub latency_ms: DDSketch,
    /// Server-side latency in milliseconds, when the server span is known.
    pub server_latency_ms: DDSketch,
}

impl std::fmt::Debug for EdgeStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeStats")
            .field("calls", &self.calls)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl Default for EdgeStats {
    fn default() -> Self {
        Self {
            calls: 0,
            errors: 0,
            latency_ms: new_sketch(),
            server_latency_ms: new_sketch(),
        }
    }
}

impl EdgeStats {
    /// Records one call.
    pub fn record(&mut self, error: bool, latency_ms: f64, server_latency_ms: Option<f64>) {
        self.calls += 1;
        self.errors += u64::from(error);
        self.latency_ms.add(latency_ms.max(0.0));
        if let Some(server) = server_latency_ms {
            self.server_latency_ms.add(server.max(0.0));
        }
    }

    /// Adds `other` into `self`; exact for counts, and for sketches too (they merge
    /// bin by bin).
    pub fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latency_ms
            .merge(&other.latency_ms)
            .expect("sketches share one configuration");
        self.server_latency_ms
            .merge(&other.server_latency_ms)
            .expect("sketches share one configuration");
    }

    /// Errors over calls.
    pub fn error_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.errors as f64 / self.calls as f64
        }
    }
}

/// Quantile `q` of a sketch, `None` when empty.
pub fn quantile(sketch: &DDSketch, q: f64) -> Option<f64> {
    sketch.quantile(q).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_percent_after_merging() {
        let mut values: Vec<f64> = (1..=20_000)
            .map(|i| (i as f64 * 0.7919).sin().abs() * 900.0 + 0.05)
            .collect();
        let mut parts = [
            EdgeStats::default(),
            EdgeStats::default(),
            EdgeStats::default(),
        ];
        for (i, v) in values.iter().enumerate() {
            parts[i % 3].record(i % 50 == 0, *v, None);
        }
        let mut total = EdgeStats::default();
        for part in &parts {
            total.merge(part);
        }
        assert_eq!(total.calls, 20_000);
        assert_eq!(total.errors, 400);
        values.sort_by(f64::total_cmp);
        for q in [0.5, 0.9, 0.99] {
            let exact = values[(q * (values.len() - 1) as f64) as usize];
            let estimate = quantile(&total.latency_ms, q).unwrap();
            assert!(
                (estimate - exact).abs() / exact <= 0.01,
                "q{q}: {estimate} vs {exact}"
            );
        }
    }
}
