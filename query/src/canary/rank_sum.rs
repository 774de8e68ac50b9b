//! The Mann-Whitney rank-sum statistic with its normal approximation, shared by the
//! Kayenta-style comparator and the latency outlier detector.

use crate::canary::math::normal_upper_tail;

/// How a second sample ranks against a first one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RankSum {
    /// Pairs (first, second) where the second is larger, ties counting one half.
    pub(crate) u: f64,
    /// Standardised `u` under "same distribution", with tie and continuity corrections;
    /// positive when the second sample tends to be larger, 0 when all values tie.
    pub(crate) z: f64,
}

impl RankSum {
    /// Two-sided p-value of the normal approximation.
    pub(crate) fn two_sided_p_value(&self) -> f64 {
        (2.0 * normal_upper_tail(self.z.abs())).min(1.0)
    }
}

/// Mann-Whitney U of `second` against `first` (both must be free of NaN).
pub(crate) fn mann_whitney(first: &[f64], second: &[f64]) -> RankSum {
    let (count_first, count_second) = (first.len() as f64, second.len() as f64);
    let total = count_first + count_second;
    let mut pooled: Vec<(f64, bool)> = first.iter().map(|&value| (value, false)).collect();
    pooled.extend(second.iter().map(|&value| (value, true)));
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Rank sum of the second sample with mid-ranks for ties, and the tie correction term.
    let (mut rank_sum, mut tie_term) = (0.0, 0.0);
    let mut start = 0;
    while start < pooled.len() {
        let mut end = start + 1;
        while end < pooled.len() && pooled[end].0 == pooled[start].0 {
            end += 1;
        }
        let mid_rank = (start + end + 1) as f64 / 2.0;
        let in_second = pooled[start..end]
            .iter()
            .filter(|(_, second)| *second)
            .count();
        rank_sum += mid_rank * in_second as f64;
        let tied = (end - start) as f64;
        tie_term += tied * tied * tied - tied;
        start = end;
    }

    let u = rank_sum - count_second * (count_second + 1.0) / 2.0;
    let mean = count_first * count_second / 2.0;
    let variance = count_first * count_second / 12.0
        * ((total + 1.0) - tie_term / (total * (total - 1.0)).max(1.0));
    if variance <= 0.0 {
        return RankSum { u, z: 0.0 };
    }
    let corrected = (u - mean).signum() * ((u - mean).abs() - 0.5).max(0.0);
    RankSum {
        u,
        z: corrected / variance.sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pairs_and_halves_ties() {
        let statistic = mann_whitney(&[1.0, 2.0, 3.0], &[2.0, 4.0]);
        // Pairs where second > first: 2>1, 4>1, 4>2, 4>3; the tie 2=2 counts a half.
        assert_eq!(statistic.u, 4.5);
    }

    #[test]
    fn z_matches_a_hand_computation() {
        // No ties: n1 = n2 = 10, second all larger: U = 100, mean 50,
        // variance = 100 * 21 / 12 = 175, z = (50 - 0.5) / sqrt(175).
        let first: Vec<f64> = (0..10).map(f64::from).collect();
        let second: Vec<f64> = (10..20).map(f64::from).collect();
        let statistic = mann_whitney(&first, &second);
        assert!((statistic.z - 49.5 / 175f64.sqrt()).abs() < 1e-12);
        assert!(statistic.two_sided_p_value() < 0.001);
    }

    #[test]
    fn all_tied_gives_zero() {
        let statistic = mann_whitney(&[0.0; 5], &[0.0; 5]);
        assert_eq!(statistic.z, 0.0);
        assert_eq!(statistic.two_sided_p_value(), 1.0);
    }
}
