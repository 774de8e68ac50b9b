//! The latency check: is the canary's latency distribution above the baseline's, in its
//! bulk or in its tail, with evidence that stays valid however often a controller asks?
//!
//! # Method
//!
//! Both samples are cut, in arrival order, into consecutive blocks of `k` latencies per
//! side (`latency_block_size`). For each watched tail fraction `f`
//! (`latency_tail_fractions`), every block is asked one question: of the `T` latencies of
//! the block that fall in the slowest `f` of everything seen *before* the block (both sides
//! pooled), how many, `C`, are the canary's? With `f = 0.5` this watches the bulk (a median
//! test); with `f = 0.02` it watches the slowest two percent. The first block has no past,
//! so it uses its own slowest `round(2k·f)` latencies instead.
//!
//! If canary latencies have the baseline's distribution, the `2k` latencies of a block are
//! exchangeable and independent of the past that set the threshold, so given `T`, `C`
//! follows the hypergeometric law exactly (`T` draws from `k` canary and `k` baseline
//! latencies). If the canary is faster (its latencies stochastically smaller), `C` given
//! `T` is stochastically smaller still (a noncentral law with odds below 1). The null
//! hypothesis is the union of both: the canary is no slower.
//!
//! The block bets `e = ψ^C / E0[ψ^C | T]` for an odds ratio `ψ > 1`: the likelihood ratio
//! of Fisher's noncentral hypergeometric law, under which a canary latency is `ψ` times as
//! likely to land in the watched tail. The product of these bets over blocks, for one
//! `(f, ψ)`, is the wealth of a gambler who starts with 1; the e-value is the average of
//! that wealth over the grid of `(f, ψ)` in the config.
//!
//! Thresholds taken from the past are what give the tail its power: a block's own slowest
//! two latencies out of a hundred are a poor estimate of its 98th percentile, while the
//! past's 98th percentile is sharp after a few blocks.
//!
//! # Why it stays valid under continuous monitoring
//!
//! Given everything before a block, each bet has expectation 1 when the canary is no
//! slower (exactly, not asymptotically), so each product is a nonnegative martingale
//! indexed by blocks, and so is their average, which starts at 1. By Ville's inequality the
//! chance that it *ever* reaches `1/α` is at most `α`, whatever the latency distribution
//! (heavy tails included: only comparisons enter) and whenever the controller looks. A look
//! uses the complete blocks it has; the unfinished block waits for the next look. In the
//! first block, ties between the sides are ranked with the canary below, which can only
//! lower the bets; later, a latency equal to the threshold counts as below it on both sides.
//!
//! # Assumptions
//!
//! Latencies of one side are independent and identically distributed over the window, and
//! the two sides see the same conditions at equal positions in their sequences. That holds
//! when both get similar request rates; when the canary gets a small share of the traffic,
//! block `j` of the canary spans a longer time than block `j` of the baseline, and a drift
//! of latency over time then weakens the guarantee (the caller can thin the baseline to the
//! canary's rate). Earlier latencies must not change between looks.
//!
//! Only comparisons are used, so the test is robust to outliers and to any monotone change
//! of units. Against a pure shift of every call it loses some power to a fixed-horizon
//! Mann-Whitney test, the price of being valid at every look; the tail fractions buy power
//! against regressions that touch only the slowest calls, which a whole-sample rank test
//! barely sees.

use crate::canary::hypergeometric::HypergeometricBets;
use crate::canary::math::{log_sum_exp, quantile_sorted, sorted_copy};
use crate::canary::verdict::saturate;
use crate::canary::{
    CheckInput, CheckResult, Edge, Effect, JudgeConfig, Metric, Outcome, SideValues, Statistic,
};

/// The evidence of the block test over two latency samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyEvidence {
    /// Natural log of the e-value against "the canary is no slower".
    pub log_e_value: f64,
    /// Complete blocks used.
    pub blocks: usize,
    /// The watched tail fraction whose bets won the most.
    pub strongest_tail_fraction: f64,
}

/// Runs the block test (see the module docs) on two latency samples in arrival order.
pub fn latency_evidence(
    baseline_ms: &[f64],
    canary_ms: &[f64],
    config: &JudgeConfig,
) -> LatencyEvidence {
    let block_size = config.latency_block_size;
    let fractions = &config.latency_tail_fractions;
    let log_odds: Vec<f64> = config
        .latency_odds_ratios
        .iter()
        .map(|ratio| ratio.ln())
        .collect();
    let mut bets = HypergeometricBets::new(block_size, &log_odds);

    // Accumulate each bet's log wealth over the complete blocks.
    let blocks = baseline_ms.len().min(canary_ms.len()) / block_size;
    let mut log_wealth = vec![vec![0.0; log_odds.len()]; fractions.len()];
    let mut past: Vec<f64> = Vec::with_capacity(2 * blocks * block_size);
    for block in 0..blocks {
        let range = block * block_size..(block + 1) * block_size;
        let (baseline_block, canary_block) = (&baseline_ms[range.clone()], &canary_ms[range]);
        for (&fraction, wealth) in fractions.iter().zip(&mut log_wealth) {
            let (in_tail, canary_in_tail) = if block == 0 {
                slowest_of_block(baseline_block, canary_block, fraction)
            } else {
                // `past` is sorted and holds every latency of the earlier blocks.
                let threshold = quantile_sorted(&past, 1.0 - fraction).unwrap_or(f64::INFINITY);
                let above = |values: &[f64]| values.iter().filter(|v| **v > threshold).count();
                let canary_above = above(canary_block);
                (above(baseline_block) + canary_above, canary_above)
            };
            bets.settle(in_tail, canary_in_tail, wealth);
        }
        let mut block_sorted = [baseline_block, canary_block].concat();
        block_sorted.sort_by(f64::total_cmp);
        merge_sorted(&mut past, &block_sorted);
    }

    // Average the wealth of all bets, each started with an equal share.
    let all: Vec<f64> = log_wealth.iter().flatten().copied().collect();
    let log_e_value = log_sum_exp(&all) - (all.len() as f64).ln();
    let best_of = |wealth: &Vec<f64>| wealth.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let strongest = (0..fractions.len())
        .max_by(|&a, &b| best_of(&log_wealth[a]).total_cmp(&best_of(&log_wealth[b])))
        .map_or(0.5, |index| fractions[index]);
    LatencyEvidence {
        log_e_value,
        blocks,
        strongest_tail_fraction: strongest,
    }
}

/// The first block's tail: its own slowest `round(2k·fraction)` latencies, as
/// `(how many, how many of them are the canary's)`. Ties rank the canary below.
fn slowest_of_block(baseline: &[f64], canary: &[f64], fraction: f64) -> (usize, usize) {
    let block_size = baseline.len();
    let slowest = ((2.0 * block_size as f64 * fraction).round() as usize).clamp(1, block_size);
    let mut pooled: Vec<(f64, u8)> = baseline.iter().map(|&value| (value, 1)).collect();
    pooled.extend(canary.iter().map(|&value| (value, 0)));
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let canary_in_tail = pooled[pooled.len() - slowest..]
        .iter()
        .filter(|(_, side)| *side == 0)
        .count();
    (slowest, canary_in_tail)
}

/// Merges ascending `addition` into ascending `sorted`, in place from the back.
fn merge_sorted(sorted: &mut Vec<f64>, addition: &[f64]) {
    let (mut left, mut right) = (sorted.len(), addition.len());
    sorted.resize(left + right, 0.0);
    while right > 0 {
        let slot = left + right - 1;
        if left > 0 && sorted[left - 1] > addition[right - 1] {
            sorted[slot] = sorted[left - 1];
            left -= 1;
        } else {
            sorted[slot] = addition[right - 1];
            right -= 1;
        }
    }
}

/// The largest relative increase of a canary quantile over the baseline's, among the
/// config's effect quantiles that both samples can estimate; `None` when none can.
fn largest_quantile_increase(
    baseline_sorted: &[f64],
    canary_sorted: &[f64],
    config: &JudgeConfig,
) -> Option<Effect> {
    let smaller = baseline_sorted.len().min(canary_sorted.len()) as f64;
    let mut largest: Option<Effect> = None;
    for &level in &config.effect_quantiles {
        if smaller * (1.0 - level) < config.min_tail_samples as f64 {
            continue;
        }
        let (Some(base), Some(canary)) = (
            quantile_sorted(baseline_sorted, level),
            quantile_sorted(canary_sorted, level),
        ) else {
            continue;
        };
        if base <= 0.0 {
            continue;
        }
        let relative = canary / base - 1.0;
        if largest
            .as_ref()
            .is_none_or(|effect| effect.relative_increase < Some(relative))
        {
            largest = Some(Effect {
                absolute_increase_ms: Some(canary - base),
                relative_increase: Some(relative),
                quantile: Some(level),
                ..Effect::default()
            });
        }
    }
    largest
}

/// Judges the latency of one input at false-failure level `alpha`.
pub(crate) fn judge_latency(input: &CheckInput, alpha: f64, config: &JudgeConfig) -> CheckResult {
    let baseline_sorted = sorted_copy(&input.baseline.latencies_ms);
    let canary_sorted = sorted_copy(&input.canary.latencies_ms);
    let side = |sorted: &[f64]| SideValues {
        requests: sorted.len() as u64,
        p50_ms: quantile_sorted(sorted, 0.5),
        p99_ms: quantile_sorted(sorted, 0.99),
        ..SideValues::default()
    };
    let mut result = CheckResult {
        edge: Edge {
            source: input.edge_source.clone(),
            target: input.edge_target.clone(),
        },
        operation: input.operation.clone(),
        metric: Metric::Latency,
        baseline: side(&baseline_sorted),
        canary: side(&canary_sorted),
        effect: None,
        statistic: None,
        result: Outcome::Inconclusive,
        reason: String::new(),
    };

    let needed = config.min_requests.max(config.latency_block_size as u64);
    let smaller = baseline_sorted.len().min(canary_sorted.len()) as u64;
    if smaller < needed {
        result.reason = format!(
            "too little data: {} baseline and {} canary latencies, {needed} per side needed",
            baseline_sorted.len(),
            canary_sorted.len()
        );
        return result;
    }

    // Evidence.
    let evidence = latency_evidence(
        &input.baseline.latencies_ms,
        &input.canary.latencies_ms,
        config,
    );
    let threshold = 1.0 / alpha;
    let significant = evidence.log_e_value >= threshold.ln();
    result.statistic = Some(Statistic {
        name: "e_value".to_owned(),
        method: "blockwise_tail_exceedance_mixture".to_owned(),
        value: saturate(evidence.log_e_value.exp()),
        threshold,
    });

    // Size of the effect.
    let effect = largest_quantile_increase(&baseline_sorted, &canary_sorted, config);
    let increase = effect.as_ref().and_then(|effect| effect.relative_increase);
    let meaningful = increase.is_some_and(|increase| increase >= config.min_latency_increase);
    let shift = match &effect {
        Some(Effect {
            relative_increase: Some(relative),
            quantile: Some(level),
            ..
        }) => {
            format!(
                "largest shift {:+.1}% at p{}",
                100.0 * relative,
                100.0 * level
            )
        }
        _ => "no quantile estimable".to_owned(),
    };
    result.effect = effect;
    let summary = format!(
        "canary p50 {:.1} ms vs {:.1} ms, p99 {:.1} ms vs {:.1} ms; {shift}",
        result.canary.p50_ms.unwrap_or(0.0),
        result.baseline.p50_ms.unwrap_or(0.0),
        result.canary.p99_ms.unwrap_or(0.0),
        result.baseline.p99_ms.unwrap_or(0.0),
    );
    let evidence_text = format!(
        "e-value {:.3e} against threshold {threshold:.0} over {} blocks, strongest in the \
         slowest {}% of calls",
        evidence.log_e_value.exp(),
        evidence.blocks,
        100.0 * evidence.strongest_tail_fraction
    );
    (result.result, result.reason) = match (significant, meaningful) {
        (true, true) => (
            Outcome::Fail,
            format!("{summary}; {evidence_text}: canary is slower"),
        ),
        (true, false) => (
            Outcome::Pass,
            format!(
                "{summary}; {evidence_text}, but below the minimum effect of {:.0}%",
                100.0 * config.min_latency_increase
            ),
        ),
        (false, _) => (
            Outcome::Pass,
            format!("{summary}; {evidence_text}: no evidence of a regression"),
        ),
    };
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::Sample;
    use crate::canary::simulation::{LatencyModel, SimRng};

    fn draw(model: &LatencyModel, count: usize, seed: u64) -> Vec<f64> {
        let mut rng = SimRng::seed_from(seed);
        (0..count).map(|_| model.draw(&mut rng)).collect()
    }

    fn input(baseline: Vec<f64>, canary: Vec<f64>) -> CheckInput {
        let sample = |latencies_ms: Vec<f64>| Sample {
            errors: 0,
            requests: latencies_ms.len() as u64,
            latencies_ms,
            ..Sample::default()
        };
        CheckInput {
            edge_source: "frontend".into(),
            edge_target: "reviews".into(),
            operation: "GET /reviews".into(),
            baseline: sample(baseline),
            canary: sample(canary),
        }
    }

    #[test]
    fn merge_keeps_order() {
        let mut sorted = vec![1.0, 4.0, 9.0];
        merge_sorted(&mut sorted, &[0.5, 4.0, 5.0, 10.0]);
        assert_eq!(sorted, vec![0.5, 1.0, 4.0, 4.0, 5.0, 9.0, 10.0]);
        let mut empty = vec![];
        merge_sorted(&mut empty, &[2.0, 3.0]);
        assert_eq!(empty, vec![2.0, 3.0]);
    }

    #[test]
    fn first_block_counts_its_own_slowest_with_ties_against_the_canary() {
        let baseline = [1.0, 2.0, 3.0, 9.0];
        let canary = [1.0, 2.0, 9.0, 10.0];
        // Slowest 2 of 8: 10 (canary) and the tie at 9, ranked with the canary below.
        assert_eq!(slowest_of_block(&baseline, &canary, 0.25), (2, 1));
        // Slowest half: 10, 9, 9, 3 -> canary 10 and 9.
        assert_eq!(slowest_of_block(&baseline, &canary, 0.5), (4, 2));
    }

    #[test]
    fn identical_samples_give_no_evidence() {
        let values = draw(&LatencyModel::default(), 1000, 7);
        let evidence = latency_evidence(&values, &values, &JudgeConfig::default());
        // Ties rank the canary below, so every block has the fewest canary values possible.
        assert!(evidence.log_e_value < 0.0, "{evidence:?}");
        assert_eq!(evidence.blocks, 20);
    }

    #[test]
    fn slower_tail_fails_with_evidence_from_the_tail() {
        let model = LatencyModel::default();
        let slow = model.with_tail_factor(1.5);
        let input = input(draw(&model, 2000, 1), draw(&slow, 2000, 2));
        let result = judge_latency(&input, 0.005, &JudgeConfig::default());
        assert_eq!(result.result, Outcome::Fail, "{}", result.reason);
        assert_eq!(result.effect.unwrap().quantile, Some(0.99));
        let evidence = latency_evidence(
            &input.baseline.latencies_ms,
            &input.canary.latencies_ms,
            &JudgeConfig::default(),
        );
        assert!(evidence.strongest_tail_fraction <= 0.05, "{evidence:?}");
        let expected = format!(
            "slowest {}% of calls",
            100.0 * evidence.strongest_tail_fraction
        );
        assert!(result.reason.contains(&expected), "{}", result.reason);
    }

    #[test]
    fn significant_but_negligible_shift_passes() {
        // A 4% slowdown of every call, seen over 20,000 calls per side.
        let model = LatencyModel::default();
        let slower = LatencyModel {
            scale: 1.04,
            ..model.clone()
        };
        let result = judge_latency(
            &input(draw(&model, 20_000, 3), draw(&slower, 20_000, 4)),
            0.005,
            &JudgeConfig::default(),
        );
        let statistic = result.statistic.clone().unwrap();
        assert!(
            statistic.value >= statistic.threshold,
            "not significant: {}",
            result.reason
        );
        assert_eq!(result.result, Outcome::Pass, "{}", result.reason);
    }

    #[test]
    fn faster_canary_passes() {
        let model = LatencyModel::default();
        let faster = LatencyModel {
            scale: 0.7,
            ..model.clone()
        };
        let result = judge_latency(
            &input(draw(&model, 1000, 5), draw(&faster, 1000, 6)),
            0.005,
            &JudgeConfig::default(),
        );
        assert_eq!(result.result, Outcome::Pass, "{}", result.reason);
        assert!(result.statistic.unwrap().value < 1.0);
    }

    #[test]
    fn few_latencies_are_inconclusive() {
        let model = LatencyModel::default();
        let result = judge_latency(
            &input(
                draw(&model, 40, 8),
                draw(&model.with_tail_factor(3.0), 40, 9),
            ),
            0.005,
            &JudgeConfig::default(),
        );
        assert_eq!(result.result, Outcome::Inconclusive);
        assert!(
            result.reason.starts_with("too little data"),
            "{}",
            result.reason
        );
    }
}
