//! Delivery slots: what a slot is, and its two spellings.
//!
//! A slot is one UTC hour of delivery, named by its start. In the protocol (commands,
//! events, the ledger, snapshots) a slot is the **unix seconds** of that start, an
//! integer divisible by 3600. At the edges where people read and type times (REST
//! paths and bodies, WebSocket channel names, the CLI, replay output) it is written
//! `2026-12-07T09:00Z`: an ISO-8601 UTC time on the hour, minutes always `00`, the
//! zone always `Z`. [`parse_slot`] refuses anything ambiguous (seconds or minutes
//! not zero, another zone, an offset, a date without a time); [`format_slot`] is its
//! inverse. Both are pure integer arithmetic (no clock, no time-zone database).

/// Seconds in one delivery slot.
pub const SLOT_SECS: u64 = 3_600;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Whether `slot` (unix seconds) is the start of an hour.
#[inline]
pub fn on_the_hour(slot: u64) -> bool {
    slot.is_multiple_of(SLOT_SECS)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (`civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// A slot as people write it: `2026-12-07T09:00Z`.
///
/// ```
/// use gpux_engine::slot::{format_slot, parse_slot};
/// assert_eq!(format_slot(1_796_634_000), "2026-12-07T09:00Z");
/// assert_eq!(parse_slot("2026-12-07T09:00Z"), Ok(1_796_634_000));
/// ```
pub fn format_slot(slot: u64) -> String {
    let secs = slot as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let h = secs.rem_euclid(86_400) / 3_600;
    let min = secs.rem_euclid(3_600) / 60;
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}Z")
}

/// Why a slot written by a person was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotParseError(pub &'static str);

impl std::fmt::Display for SlotParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for SlotParseError {}

/// Parses `YYYY-MM-DDTHH:00Z` (or `YYYY-MM-DDTHH:00:00Z`) to unix seconds. Refuses
/// any other zone or an offset, a time not on the hour, an impossible date, and a
/// year before 1970 or after 9999.
pub fn parse_slot(s: &str) -> Result<u64, SlotParseError> {
    const FORM: &str = "a slot is a UTC hour written YYYY-MM-DDTHH:00Z, e.g. 2026-12-07T09:00Z";
    let b = s.as_bytes();
    if !(b.len() == 17 || b.len() == 20) || !s.ends_with('Z') {
        return Err(SlotParseError(FORM));
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, SlotParseError> {
        let part = &s[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| SlotParseError(FORM))
        } else {
            Err(SlotParseError(FORM))
        }
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) || (b.len() == 20 && b[16] != b':') {
        return Err(SlotParseError(FORM));
    }
    let (y, m, d, h) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?);
    let min = num(14..16)?;
    let sec = if b.len() == 20 { num(17..19)? } else { 0 };
    if min != 0 || sec != 0 {
        return Err(SlotParseError(
            "a slot starts on the hour: minutes and seconds must be 00",
        ));
    }
    let y = i64::from(y);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || h > 23 {
        return Err(SlotParseError(FORM));
    }
    if d == 0 || d > days_in_month(y, m) {
        return Err(SlotParseError("no such date"));
    }
    Ok((days_from_civil(y, m, d) * 86_400 + i64::from(h) * 3_600) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_round_trip() {
        for slot in [
            0u64,
            951_782_400,
            1_796_634_000,
            4_102_444_800,
            253_402_297_200,
        ] {
            let s = format_slot(slot);
            assert_eq!(parse_slot(&s), Ok(slot), "{s}");
        }
        assert_eq!(parse_slot("2000-02-29T00:00Z"), Ok(951_782_400));
        assert_eq!(parse_slot("2026-12-07T09:00:00Z"), Ok(1_796_634_000));
    }

    #[test]
    fn ambiguous_times_are_refused() {
        for bad in [
            "2026-12-07T09:30Z",
            "2026-12-07T09:00:01Z",
            "2026-12-07T09:00+01:00",
            "2026-12-07T09:00",
            "2026-12-07",
            "2026-12-07 09:00Z",
            "2026-02-29T09:00Z",
            "2026-13-01T00:00Z",
            "2026-12-07T24:00Z",
            "1969-12-31T23:00Z",
            "2026-12-7T09:00Z",
            "+026-12-07T09:00Z",
            "",
        ] {
            assert!(parse_slot(bad).is_err(), "{bad}");
        }
    }
}
