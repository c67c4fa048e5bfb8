//! Durations as operators write them on a command line: `500ms`, `3s`, `2m`, `1h`.

use std::time::Duration;

/// Parses `<integer><unit>` with unit `ms`, `s`, `m` or `h`; a bare integer is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 3s, 2m or 1h"))?;
    let millis = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use ms, s, m or h")),
    };
    millis.map(Duration::from_millis).ok_or_else(|| format!("{text:?} is too long"))
}

/// Like [`parse`], refusing zero.
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    parse(text).and_then(|d| if d.is_zero() { Err("the duration must be above zero".into()) } else { Ok(d) })
}

/// A duration the way [`parse`] reads them (`60s`, `1500ms`), for messages.
pub fn format(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("7"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["", "s", "1.5s", "-1s", "3d", "1 s", "99999999999999999999h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse_positive("0s").is_err());
    }
}
