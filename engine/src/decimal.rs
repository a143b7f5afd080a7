//! Strict decimal strings at the protocol boundary.
//!
//! Prices, quantities and amounts travel as JSON strings of plain decimal digits:
//! an optional `-`, digits, and optionally `.` and more digits (`"2.35"`, `"10"`).
//! Anything else — exponents (`"1e2"`), a `+`, underscores, spaces, JSON numbers,
//! or more precision than a decimal holds (which would be silently rounded) — is
//! refused when the command is decoded, so a typo never quietly changes an order.
//! Negative values decode (the engine rejects them with a stable code).

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer};

/// Parses a strict decimal string.
pub fn parse(s: &str) -> Result<Decimal, String> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return Err(format!(
            "invalid decimal {s:?}: use plain digits with an optional '.' fraction, e.g. \"2.35\""
        ));
    }
    Decimal::from_str_exact(s)
        .map_err(|_| format!("decimal {s:?} has more precision than 28 digits"))
}

/// `#[serde(with = "crate::decimal::strict")]` for `Decimal` fields.
pub mod strict {
    use super::*;

    /// Writes the decimal as a string.
    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }

    /// Reads a strict decimal string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::decimal::strict_option")]` for `Option<Decimal>`
/// fields: absent or `null` is `None`.
pub mod strict_option {
    use super::*;

    /// Writes the decimal as a string, or `null`.
    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(d),
            None => s.serialize_none(),
        }
    }

    /// Reads a strict decimal string or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        match <Option<std::borrow::Cow<'de, str>>>::deserialize(d)? {
            Some(s) => parse(&s).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn only_plain_decimal_strings_parse() {
        for ok in ["0", "2.35", "10", "-1", "0.000001", "100000.00"] {
            assert_eq!(parse(ok).unwrap().to_string(), ok);
        }
        for bad in [
            "",
            "+1.5",
            "1e2",
            "1_000",
            " 1",
            "1 ",
            ".5",
            "5.",
            "1.2.3",
            "--1",
            "0x10",
            "NaN",
            "1.00000000000000000000000000001",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
