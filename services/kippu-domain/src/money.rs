//! FARE amounts. FARE has two decimals so one unit is one euro cent; amounts
//! are carried as integer minor units everywhere to keep the ledger exact.

/// Formats minor units as a decimal FARE string, e.g. `1234` → `"12.34"`.
pub fn format_fare(minor: i128) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Parses a user-typed FARE amount ("12", "12.5", "12.50") into minor units.
pub fn parse_fare(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().ok()? };
    whole.checked_mul(100)?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(format_fare(1234), "12.34");
        assert_eq!(format_fare(5), "0.05");
        assert_eq!(format_fare(-250), "-2.50");
        assert_eq!(parse_fare("12.5"), Some(1250));
        assert_eq!(parse_fare("12"), Some(1200));
        assert_eq!(parse_fare("0.07"), Some(7));
        assert_eq!(parse_fare("1.234"), None);
        assert_eq!(parse_fare("-1"), None);
        assert_eq!(parse_fare("abc"), None);
        assert_eq!(parse_fare(""), None);
    }
}
