//! Time buckets that grow coarser with age, so that the live graph's memory and its
//! snapshot files grow with the time its data spans, not with its traffic: per edge,
//! about 780 buckets for the newest week and one more per day before it.
//!
//! ```text
//! age, behind the newest bucket   bucket width
//!   up to 1 hour                    10 s      (every answer of the last hour is exact to 10 s)
//!   up to 1 day                     5 min
//!   up to 7 days                    1 hour
//!   older                           1 day (UTC)
//! ```
//!
//! Ages count from the newest bucket that holds data, or from the wall clock when that is
//! earlier: a server fed historical traces keeps their newest hour exact, and spans stamped
//! in the future (a skewed clock) cannot age the present. A bucket moves to the
//! next level only as a whole, and each width divides the next, so every bucket lands in
//! exactly one coarser bucket and counts are never split or estimated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Something kept per bucket that adds up exactly when buckets merge.
pub(crate) trait Mergeable: Default {
    /// Adds `other` into `self`.
    fn merge_from(&mut self, other: Self);
}

/// One level of resolution: its bucket width and how long, behind the newest data, a
/// bucket stays at this width (the last level keeps its buckets).
struct Level {
    width: i64,
    keep_for: i64,
}

const SECOND: i64 = 1_000_000_000;
const HOUR: i64 = 3_600 * SECOND;
const DAY: i64 = 24 * HOUR;

/// The levels, finest first. Each width divides the next one's.
const LEVELS: [Level; 4] = [
    Level {
        width: 10 * SECOND,
        keep_for: HOUR,
    },
    Level {
        width: 300 * SECOND,
        keep_for: DAY,
    },
    Level {
        width: HOUR,
        keep_for: 7 * DAY,
    },
    Level {
        width: DAY,
        keep_for: i64::MAX,
    },
];

/// Width of the finest buckets, where every new value is recorded.
pub const FINEST_BUCKET_NANOS: i64 = LEVELS[0].width;

/// Values of type `V` per time bucket, at the resolution their age allows.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
pub(crate) struct Tiered<V> {
    /// Per level, buckets by index (bucket start divided by the level's width).
    levels: [BTreeMap<i64, V>; LEVELS.len()],
}

impl<V> Default for Tiered<V> {
    fn default() -> Self {
        Self {
            levels: Default::default(),
        }
    }
}

impl<V: Mergeable> Tiered<V> {
    /// The finest bucket holding `unix_nano`, created empty when missing.
    pub(crate) fn at(&mut self, unix_nano: i64) -> &mut V {
        self.levels[0]
            .entry(unix_nano.div_euclid(LEVELS[0].width))
            .or_default()
    }

    /// Every bucket that overlaps `[start, end]` (nanoseconds, both inclusive), with
    /// its width.
    pub(crate) fn overlapping(&self, start: i64, end: i64) -> impl Iterator<Item = (i64, &V)> {
        LEVELS
            .iter()
            .zip(&self.levels)
            .flat_map(move |(level, buckets)| {
                let first = start.div_euclid(level.width);
                let last = end.div_euclid(level.width);
                buckets
                    .range(first..=last)
                    .map(move |(_, value)| (level.width, value))
            })
    }

    /// Start of the newest bucket held, if any.
    fn newest_start(&self) -> Option<i64> {
        LEVELS
            .iter()
            .zip(&self.levels)
            .filter_map(|(level, buckets)| buckets.keys().next_back().map(|k| k * level.width))
            .max()
    }

    /// Moves every bucket that has outgrown its level into the next one, and returns
    /// how many moved. `now_unix_nano` is the wall clock.
    pub(crate) fn roll_up(&mut self, now_unix_nano: i64) -> usize {
        let mut merged = 0;
        let Some(newest) = self.newest_start() else {
            return merged;
        };
        let reference = newest.min(now_unix_nano);
        for (index, (level, next)) in LEVELS.iter().zip(&LEVELS[1..]).enumerate() {
            let cutoff = reference.saturating_sub(level.keep_for);
            while let Some(entry) = self.levels[index].first_entry() {
                let start = entry.key() * level.width;
                if start.saturating_add(level.width) > cutoff {
                    break;
                }
                let value = entry.remove();
                self.levels[index + 1]
                    .entry(start.div_euclid(next.width))
                    .or_default()
                    .merge_from(value);
                merged += 1;
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A count per bucket.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    struct Count(u64);

    impl Mergeable for Count {
        fn merge_from(&mut self, other: Self) {
            self.0 += other.0;
        }
    }

    /// On the hour, so that buckets of every width start there.
    const T0: i64 = 1_789_999_200 * SECOND;

    fn total(tiered: &Tiered<Count>, start: i64, end: i64) -> (u64, i64) {
        tiered
            .overlapping(start, end)
            .fold((0, 0), |(sum, width), (w, c)| (sum + c.0, width.max(w)))
    }

    /// One value per second over `seconds`, from `from`.
    fn fill(tiered: &mut Tiered<Count>, from: i64, seconds: i64) {
        for s in 0..seconds {
            tiered.at(from + s * SECOND).0 += 1;
        }
    }

    fn buckets(tiered: &Tiered<Count>) -> [usize; 4] {
        [0, 1, 2, 3].map(|i| tiered.levels[i].len())
    }

    #[test]
    fn the_last_hour_stays_exact_and_older_buckets_merge_without_losing_counts() {
        let mut tiered = Tiered::<Count>::default();
        let three_hours = 3 * 3_600;
        fill(&mut tiered, T0, three_hours);
        let now = T0 + three_hours * SECOND;
        assert!(tiered.roll_up(now) > 0);
        assert_eq!(
            total(&tiered, i64::MIN / 2, i64::MAX / 2).0,
            three_hours as u64
        );

        // The newest hour: 360 buckets of 10 s, answered to the second.
        let last_minute = now - 60 * SECOND;
        assert_eq!(total(&tiered, last_minute, now - 1), (60, 10 * SECOND));
        // Two hours ago: a minute asked, its 5-minute bucket answered.
        let old = T0 + 600 * SECOND;
        assert_eq!(total(&tiered, old, old + 59 * SECOND), (300, 300 * SECOND));
        let [fine, medium, hourly, daily] = buckets(&tiered);
        assert!((360..=361).contains(&fine), "{fine} fine buckets");
        assert_eq!(medium, 24, "two hours in 5-minute buckets");
        assert_eq!((hourly, daily), (0, 0));
    }

    #[test]
    fn a_long_run_keeps_about_780_buckets_plus_one_a_day() {
        let mut tiered = Tiered::<Count>::default();
        let days = 40;
        // One value a minute for 40 days, rolled up every simulated hour as a server would.
        for minute in 0..days * 24 * 60 {
            let t = T0 + minute * 60 * SECOND;
            tiered.at(t).0 += 1;
            if minute % 60 == 0 {
                tiered.roll_up(t);
            }
        }
        let now = T0 + days * DAY;
        tiered.roll_up(now);
        let [fine, medium, hourly, daily] = buckets(&tiered);
        assert!(
            fine <= 361 && medium <= 277 && hourly <= 6 * 24 + 1 && daily <= 34,
            "{fine}/{medium}/{hourly}/{daily}"
        );
        assert!(daily >= 32, "{daily} daily buckets");
        // Nothing is lost: one value per minute, all of them still counted.
        assert_eq!(total(&tiered, T0, now).0, (days * 24 * 60) as u64);
        // A day five weeks back is one daily bucket; yesterday is hourly.
        let five_weeks_ago = now - 35 * DAY;
        assert_eq!(total(&tiered, five_weeks_ago, five_weeks_ago).1, DAY);
        assert_eq!(total(&tiered, now - 2 * DAY, now - 2 * DAY).1, HOUR);
    }

    #[test]
    fn late_values_land_fine_and_join_their_coarse_bucket_at_the_next_roll_up() {
        let mut tiered = Tiered::<Count>::default();
        fill(&mut tiered, T0, 2 * 3_600);
        let now = T0 + 2 * 3_600 * SECOND;
        tiered.roll_up(now);
        let old = T0 + 60 * SECOND;
        assert_eq!(total(&tiered, old, old), (300, 300 * SECOND));
        tiered.at(old).0 += 7;
        assert_eq!(total(&tiered, old, old), (307, 300 * SECOND));
        tiered.roll_up(now);
        assert_eq!(total(&tiered, old, old), (307, 300 * SECOND));
        assert_eq!(buckets(&tiered)[1], 12);
    }

    #[test]
    fn a_span_from_the_far_future_does_not_age_the_present() {
        let mut tiered = Tiered::<Count>::default();
        fill(&mut tiered, T0, 600);
        tiered.at(T0 + 365 * DAY).0 += 1;
        assert_eq!(tiered.roll_up(T0 + 600 * SECOND), 0);
        assert_eq!(total(&tiered, T0, T0 + 9 * SECOND), (10, 10 * SECOND));
    }

    #[test]
    fn historical_data_keeps_its_newest_hour_exact() {
        let mut tiered = Tiered::<Count>::default();
        fill(&mut tiered, T0, 1_800);
        // The wall clock is a year later: ages count from the data, not from today.
        assert_eq!(tiered.roll_up(T0 + 365 * DAY), 0);
        assert_eq!(buckets(&tiered), [180, 0, 0, 0]);
    }
}
