//! Ranking error and latency suspects together, most likely first.

use super::Suspect;
use super::errors::error_suspects;
use super::latency::latency_suspects;
use crate::tree::CallTree;

/// Ranks the suspects for the errors and slowdowns in `window`, most likely first.
///
/// `baseline` holds the trees of an earlier, presumably healthy window (for example the
/// same length just before it); it lets a slowdown of a whole service or dependency show
/// even when all its pods are equally slow. Without it, such a slowdown can only be told
/// from the service's other operations, a weaker signal that is ranked lower.
pub fn demarcate(window: &[CallTree], baseline: Option<&[CallTree]>) -> Vec<Suspect> {
    let mut ranked: Vec<(f64, Suspect)> = error_suspects(window);
    ranked.extend(latency_suspects(window, baseline));
    ranked.sort_by(|(a_rank, a), (b_rank, b)| {
        b_rank
            .total_cmp(a_rank)
            .then(b.traces.cmp(&a.traces))
            .then(a.kind.cmp(&b.kind))
            .then(a.level.cmp(&b.level))
            .then(a.service.cmp(&b.service))
            .then(a.pod.cmp(&b.pod))
            .then(a.version.cmp(&b.version))
    });
    ranked.into_iter().map(|(_, suspect)| suspect).collect()
}

/// Lower bound of the 95% Wilson score interval for `hits` out of `total`.
pub(super) fn wilson_lower_bound(hits: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    const Z: f64 = 1.96;
    let (n, p) = (total as f64, hits as f64 / total as f64);
    let spread = Z * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt();
    (p + Z * Z / (2.0 * n) - spread) / (1.0 + Z * Z / n)
}

#[cfg(test)]
mod tests {
    use crate::demarcation::demarcate;
    use crate::demarcation::test_traces::{frontend_call, place};
    use crate::tree::CallTree;

    #[test]
    fn one_stray_failure_does_not_outrank_a_broad_fault() {
        let pods = ["reviews-0", "reviews-1", "reviews-2"];
        let mut trees: Vec<CallTree> = (0..60)
            .map(|trace| {
                let pod = pods[trace % 3];
                let reviews = place("reviews", "reviews-v1", "v1", pod);
                frontend_call(
                    trace as u64,
                    &reviews,
                    pod == "reviews-0" && trace % 2 == 0,
                    false,
                )
            })
            .collect();
        let stray = place("details", "details", "v1", "details-0");
        trees.push(frontend_call(1000, &stray, true, false));

        let suspects = demarcate(&trees, None);
        assert_eq!(suspects.len(), 2);
        assert_eq!(suspects[0].pod.as_deref(), Some("reviews-0"));
        assert_eq!(suspects[1].service, "details");
    }
}
