//! Bets on a hypergeometric count, the building block of both block tests.
//!
//! A block holds `k` calls of each side. Given that `T` of its `2k` calls have some property
//! (failed, or landed in a watched latency tail), and that the two sides are exchangeable
//! within the block, the number `C` of them that are the canary's follows the
//! hypergeometric law: `T` draws without replacement from `k` canary and `k` baseline calls.
//! If the canary is *less* likely to have the property, `C` given `T` is stochastically
//! smaller still (Fisher's noncentral law with odds below 1).
//!
//! The bet `ψ^C / E0[ψ^C | T]`, for an odds ratio `ψ > 1`, is the likelihood ratio of
//! Fisher's noncentral law against the central one. Its expectation given `T` is exactly 1
//! under exchangeability and at most 1 when the canary is better, because `ψ^C` increases
//! with `C`. A product of such bets over blocks is therefore a nonnegative supermartingale
//! that starts at 1: the wealth of a gambler who cannot expect to win when the canary is no
//! worse.

use std::collections::HashMap;

/// The normalisers `ln E0[ψ^C | T]` for a grid of odds ratios, for blocks of a fixed size
/// and for any smaller urn drawn from inside a block. Normalisers are computed when first
/// needed, since a look meets few urns.
pub(crate) struct HypergeometricBets {
    block_size: usize,
    log_odds: Vec<f64>,
    /// `ln(n!)` for `n` in `0..=2k`.
    log_factorials: Vec<f64>,
    /// Normalisers by urn `(population, marked, drawn)`.
    rows: HashMap<(usize, usize, usize), Vec<f64>>,
}

impl HypergeometricBets {
    /// Bets for blocks of `block_size` calls per side, one per `ln ψ` in `log_odds`.
    pub(crate) fn new(block_size: usize, log_odds: &[f64]) -> Self {
        let log_factorials = std::iter::once(0.0)
            .chain((1..=2 * block_size).scan(0.0, |sum, n| {
                *sum += (n as f64).ln();
                Some(*sum)
            }))
            .collect();
        Self {
            block_size,
            log_odds: log_odds.to_vec(),
            log_factorials,
            rows: HashMap::new(),
        }
    }

    /// Adds the log of each bet on one block, `C·ln ψ − ln E0[ψ^C | T]`, to `log_wealth`
    /// (one entry per odds ratio).
    pub(crate) fn settle(&mut self, drawn: usize, canary_drawn: usize, log_wealth: &mut [f64]) {
        let k = self.block_size;
        self.settle_urn(2 * k, k, drawn, canary_drawn, log_wealth);
    }

    /// Adds the log of each bet on an urn inside a block: `population` calls of which
    /// `canary` are the canary's, `drawn` of them with some further property, `canary_drawn`
    /// of those the canary's. Used for "given that a call is in the slowest `f`, is it in
    /// the slowest `f/2`?", where the urn is the block's calls in the outer tail.
    ///
    /// # Panics
    ///
    /// When the counts do not describe an urn (`canary_drawn > canary`, more drawn than the
    /// population, or a population larger than a block).
    pub(crate) fn settle_urn(
        &mut self,
        population: usize,
        canary: usize,
        drawn: usize,
        canary_drawn: usize,
        log_wealth: &mut [f64],
    ) {
        assert!(
            canary <= population
                && drawn <= population
                && canary_drawn <= canary.min(drawn)
                && drawn - canary_drawn <= population - canary
                && population <= 2 * self.block_size,
            "not an urn: {canary_drawn} of {drawn} drawn, {canary} of {population}"
        );
        let Self {
            log_odds,
            log_factorials,
            rows,
            ..
        } = self;
        let normalizers = rows.entry((population, canary, drawn)).or_insert_with(|| {
            urn_normalizers(log_factorials, log_odds, population, canary, drawn)
        });
        for ((log_ratio, normalizer), wealth) in log_odds
            .iter()
            .zip(normalizers.iter())
            .zip(log_wealth.iter_mut())
        {
            *wealth += canary_drawn as f64 * log_ratio - normalizer;
        }
    }
}

/// `ln E0[ψ^C]` for each `ln ψ` in `log_odds`, where `C` counts the marked among `drawn`
/// draws without replacement from `population` items of which `marked` are marked;
/// `log_factorials` must reach `population`.
fn urn_normalizers(
    log_factorials: &[f64],
    log_odds: &[f64],
    population: usize,
    marked: usize,
    drawn: usize,
) -> Vec<f64> {
    let log_choose =
        |n: usize, r: usize| log_factorials[n] - log_factorials[r] - log_factorials[n - r];
    let unmarked = population - marked;
    let log_pmf: Vec<(f64, f64)> = (drawn.saturating_sub(unmarked)..=drawn.min(marked))
        .map(|x| {
            let log_p = log_choose(marked, x) + log_choose(unmarked, drawn - x)
                - log_choose(population, drawn);
            (x as f64, log_p)
        })
        .collect();
    log_odds
        .iter()
        .map(|log_ratio| {
            let terms: Vec<f64> = log_pmf
                .iter()
                .map(|(x, log_p)| log_p + x * log_ratio)
                .collect();
            crate::canary::math::log_sum_exp(&terms)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::math::ln_choose;

    #[test]
    fn bets_have_mean_one_under_the_null() {
        // E0[ψ^C / normalizer | T] = 1 for every T and odds ratio.
        let log_odds = [1.25f64.ln(), 3f64.ln()];
        let k = 20u64;
        let bets = HypergeometricBets::new(20, &log_odds);
        for drawn in 0..=2 * k {
            let row = urn_normalizers(&bets.log_factorials, &log_odds, 40, 20, drawn as usize);
            for (log_ratio, log_normalizer) in log_odds.iter().zip(&row) {
                let mean: f64 = (drawn.saturating_sub(k)..=drawn.min(k))
                    .map(|x| {
                        let log_pmf =
                            ln_choose(k, x) + ln_choose(k, drawn - x) - ln_choose(2 * k, drawn);
                        (log_pmf + x as f64 * log_ratio - log_normalizer).exp()
                    })
                    .sum();
                assert!((mean - 1.0).abs() < 1e-9, "T = {drawn}: {mean}");
            }
        }
    }

    #[test]
    fn urn_bets_have_mean_one_under_the_null() {
        // Every urn inside a block of 6 per side: E0[bet] = 1 over the hypergeometric law.
        let log_odds = [2f64.ln(), 16f64.ln()];
        let mut bets = HypergeometricBets::new(6, &log_odds);
        for population in 0..=12u64 {
            for canary in 0..=population {
                for drawn in 0..=population {
                    let mut mean = [0.0; 2];
                    for x in drawn.saturating_sub(population - canary)..=drawn.min(canary) {
                        let log_pmf = ln_choose(canary, x)
                            + ln_choose(population - canary, drawn - x)
                            - ln_choose(population, drawn);
                        let mut wealth = [0.0; 2];
                        let sizes = [population, canary, drawn, x].map(|n| n as usize);
                        bets.settle_urn(sizes[0], sizes[1], sizes[2], sizes[3], &mut wealth);
                        for (sum, log_bet) in mean.iter_mut().zip(wealth) {
                            *sum += (log_pmf + log_bet).exp();
                        }
                    }
                    for sum in mean {
                        assert!(
                            (sum - 1.0).abs() < 1e-9,
                            "urn {canary} of {population}, {drawn} drawn: {sum}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "not an urn")]
    fn impossible_urn_is_refused() {
        let mut bets = HypergeometricBets::new(6, &[2f64.ln()]);
        // 3 canary calls drawn from an urn holding 2.
        bets.settle_urn(5, 2, 4, 3, &mut [0.0]);
    }

    #[test]
    fn settling_adds_the_log_bet() {
        let mut bets = HypergeometricBets::new(1, &[2f64.ln()]);
        let mut wealth = [0.0];
        // One call per side, one of them in: C = 1 wins 2 / E0[2^C] = 2 / 1.5.
        bets.settle(1, 1, &mut wealth);
        assert!((wealth[0] - (2.0f64 / 1.5).ln()).abs() < 1e-12);
        // Both in: C = 1 is certain, the bet is even.
        bets.settle(2, 1, &mut wealth);
        assert!((wealth[0] - (2.0f64 / 1.5).ln()).abs() < 1e-12);
    }
}
