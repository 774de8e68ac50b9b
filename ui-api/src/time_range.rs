//! Parsing of the time parameters the APIs take.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracegate_query::TimeRange;

use crate::error::ApiError;

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Parses a time given as RFC 3339 (any UTC offset, either case) or integer Unix
/// microseconds, into Unix nanoseconds.
///
/// # Errors
/// A 400 answer naming the parameter.
pub fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    let text = text.trim();
    if let Ok(micros) = text.parse::<i64>() {
        return Ok(micros.saturating_mul(1_000));
    }
    let (utc, offset_seconds) = split_offset(text);
    let time = humantime::parse_rfc3339_weak(&utc).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid {name} {text:?}: want RFC 3339 or Unix microseconds ({e})"
        ))
    })?;
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let nanos = i64::try_from(since.as_nanos()).unwrap_or(i64::MAX);
    Ok(nanos.saturating_sub(offset_seconds * 1_000_000_000))
}

/// Splits a numeric UTC offset (`+01:00`, `-05:30`) off an RFC 3339 time: the time as
/// if written in UTC (upper case, `Z`) and the offset in seconds east of UTC. A time
/// without a numeric offset comes back upper-cased with offset 0.
fn split_offset(text: &str) -> (String, i64) {
    let upper = text.to_ascii_uppercase();
    let Some(split) = upper.len().checked_sub(6) else {
        return (upper, 0);
    };
    let (time, offset) = upper.split_at(split);
    let bytes = offset.as_bytes();
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return (upper, 0),
    };
    let hours = offset.get(1..3).and_then(|h| h.parse::<i64>().ok());
    let minutes = offset.get(4..6).and_then(|m| m.parse::<i64>().ok());
    match (hours, minutes, bytes[3], time.contains(['T', ' '])) {
        (Some(h), Some(m), b':', true) if h < 24 && m < 60 => {
            (format!("{time}Z"), sign * (h * 3_600 + m * 60))
        }
        _ => (upper, 0),
    }
}

/// Parses a duration as Go writes them (`90s`, `1.5s`, `5m`, `1h30m`, `250ms`, `10us`),
/// which is what Jaeger clients send.
///
/// # Errors
/// A 400 answer naming the parameter.
pub fn parse_duration(name: &str, text: &str) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid {name} {text:?}: want e.g. 90s, 1.5s, 5m, 1h"
        ))
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_nanos = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            _ => return Err(bad()),
        };
        total_nanos += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

/// The native API's range: `start` and `end` (RFC 3339 or Unix microseconds), by
/// default the last 15 minutes up to now.
///
/// # Errors
/// A 400 answer when a bound does not parse or start is after end.
pub fn native_range(start: Option<&str>, end: Option<&str>) -> Result<TimeRange, ApiError> {
    let end = match end {
        Some(text) => parse_time("end", text)?,
        None => now_unix_nano(),
    };
    let start = match start {
        Some(text) => parse_time("start", text)?,
        None => end.saturating_sub(15 * 60 * 1_000_000_000),
    };
    if start > end {
        return Err(ApiError::bad_request("start is after end"));
    }
    Ok(TimeRange {
        start_unix_nano: start,
        end_unix_nano: end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_micros_or_rfc3339() {
        assert_eq!(
            parse_time("start", "1700000000000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_time("start", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        let error = parse_time("start", "yesterday").unwrap_err();
        assert!(error.message.contains("invalid start"), "{}", error.message);
    }

    #[test]
    fn rfc3339_offsets_and_lower_case_name_the_same_instant() {
        let utc = parse_time("start", "2026-12-04T23:00:00Z").unwrap();
        for text in [
            "2026-12-05T00:00:00+01:00",
            "2026-12-04T18:00:00-05:00",
            "2026-12-05T04:30:00+05:30",
            "2026-12-04t23:00:00z",
            "2026-12-04T23:00:00+00:00",
            "2026-12-04T23:00:00.000-00:00",
        ] {
            assert_eq!(parse_time("start", text).unwrap(), utc, "{text}");
        }
        for bad in [
            "2026-12-04T23:00:00+25:00",
            "2026-12-04T23:00:00+01",
            "2026-12-04",
        ] {
            let error = parse_time("end", bad).unwrap_err();
            assert!(
                error.message.contains("invalid end"),
                "{bad}: {}",
                error.message
            );
        }
    }

    #[test]
    fn durations_parse_as_go_writes_them() {
        assert_eq!(
            parse_duration("d", "1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_duration("d", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("d", "250us").unwrap(),
            Duration::from_micros(250)
        );
        assert!(parse_duration("d", "fast").is_err());
        assert!(parse_duration("d", "10").is_err());
    }

    #[test]
    fn range_refuses_reversed_bounds() {
        assert!(native_range(Some("20"), Some("10")).is_err());
        let range = native_range(None, Some("1000000")).unwrap();
        assert_eq!(
            range.end_unix_nano - range.start_unix_nano,
            15 * 60 * 1_000_000_000
        );
    }
}
