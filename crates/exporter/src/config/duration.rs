//! Go's `time.ParseDuration`, for `flush_interval`.

use std::time::Duration;

/// Parses a Go duration string (`300ms`, `1.5h`, `2h45m`, `0`). Units:
/// `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m`, `h`. Returns the nanoseconds,
/// negative for a leading `-`.
pub(crate) fn parse_go_duration(text: &str) -> Result<i128, String> {
    let invalid = || {
        format!("invalid duration {text:?}: expected a Go duration like `30s`, `1m30s` or `500ms`")
    };
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit (ns, us, ms, s, m or h)"
                ))
            }
            unit => return Err(format!("invalid duration {text:?}: unknown unit `{unit}`")),
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    // Go's durations are i64 nanoseconds.
    if total > i64::MAX as f64 {
        return Err(format!("invalid duration {text:?}: too large"));
    }
    let nanos = total.round() as i128;
    Ok(if negative { -nanos } else { nanos })
}

/// Nanoseconds to a `Duration`; `None` for zero.
pub(crate) fn from_nanos(nanos: i128) -> Option<Duration> {
    (nanos > 0).then(|| Duration::from_nanos(nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("10us"), Ok(10_000));
        assert_eq!(parse_go_duration("10µs"), Ok(10_000));
        assert_eq!(parse_go_duration("-2s"), Ok(-2_000_000_000));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5 s").is_err());
        assert!(parse_go_duration("5d").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("1..2s").is_err());
    }
}
