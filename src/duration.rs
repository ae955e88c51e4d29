//! Parsing durations written as `250ms`, `10s`, `5m`, `1h` (and `2d`).

use std::time::Duration;

/// Parses a duration: a whole number followed by `ms`, `s`, `m`, `h` or `d`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tideflow::parse_duration;
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
/// assert!(parse_duration("5").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!("invalid duration '{text}': expected a whole number and a unit, like 250ms, 10s, 5m, 1h"));
    }
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}': number too large"))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => {
            return Err(format!(
                "invalid duration '{text}': missing unit (ms, s, m, h or d)"
            ))
        }
        other => {
            return Err(format!(
                "invalid duration '{text}': unknown unit '{other}' (use ms, s, m, h or d)"
            ))
        }
    };
    let millis = value
        .checked_mul(millis_per_unit)
        .ok_or_else(|| format!("invalid duration '{text}': too large"))?;
    Ok(Duration::from_millis(millis))
}

/// Whole milliseconds of a duration, saturating at `u64::MAX`.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in ["", "ms", "10x", "1.5s", "-3s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad} parsed");
        }
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
    }
}
