//! Human time for the client: when a delivery starts, written the way people
//! write it (`tomorrow 09:00`, `9am`, `in 3 hours`, `2026-12-07 09:00`), always in
//! **UTC**, turned into a delivery slot (unix seconds of a whole UTC hour).
//!
//! Owns a small fixed grammar rather than a general date library: slots are whole
//! UTC hours, so the grammar is hour-grained and never reads the local time zone
//! (a general parser would take `09:00` as local time). `now` is passed in, so the
//! parse is a pure function and the tests need no clock.
//!
//! Accepted, case-insensitive, with an optional trailing `UTC` or `Z`:
//!
//! | form | meaning |
//! |---|---|
//! | `2026-12-07T09:00Z` | the slot as the API writes it |
//! | `2026-12-07 09:00`, `2026-12-07T09:00`, `2026-12-07 9am` | that day at that hour |
//! | `today 14:00`, `tomorrow 09:00`, `tomorrow at 9am` | today's or tomorrow's date |
//! | `09:00`, `9`, `9am`, `9pm`, `12pm`, `noon`, `midnight` | today at that hour |
//! | `next hour` | the hour after the current one |
//! | `in 3 hours`, `in 3h`, `+3h`, `+3 hours` | the current hour plus 3 |
//!
//! A time that is not on the hour (`09:30`) is refused: a slot starts on the hour.

use gpux_engine::slot::{format_slot, parse_slot};

/// Seconds in an hour.
const HOUR: u64 = 3_600;
/// Seconds in a day.
const DAY: u64 = 86_400;
/// Most hours `in N hours` may reach (a year): beyond any market's horizon.
pub const RELATIVE_HOURS_MAX: u64 = 24 * 366;

/// What the grammar accepts, for error messages.
pub const FORMS: &str =
    "write a UTC hour as `tomorrow 09:00`, `today 14:00`, `9am`, `in 3 hours`, \
    `next hour`, `2026-12-07 09:00` or `2026-12-07T09:00Z`";

/// The slot `text` names, `now_secs` being the current unix time.
pub fn parse_when(text: &str, now_secs: u64) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return Err(format!("no time given: {FORMS}"));
    }
    if let Ok(slot) = parse_slot(text.trim()) {
        return Ok(slot);
    }
    let s = lower
        .strip_suffix(" utc")
        .or_else(|| lower.strip_suffix("utc"))
        .unwrap_or(&lower)
        .trim();
    let s = s.strip_suffix('z').unwrap_or(s).trim();
    let this_hour = now_secs - now_secs % HOUR;
    let today = now_secs - now_secs % DAY;
    if s == "next hour" {
        return Ok(this_hour + HOUR);
    }
    if let Some(n) = relative_hours(s) {
        let n = n.map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(this_hour + n * HOUR);
    }
    // `2026-12-07t09:00`: the date and the time, as two words.
    let b = s.as_bytes();
    let s = if b.len() > 10 && b[4] == b'-' && b[10] == b't' {
        format!("{} {}", &s[..10], &s[11..])
    } else {
        s.to_owned()
    };
    let words: Vec<&str> = s
        .split_whitespace()
        .filter(|w| !w.is_empty() && *w != "at")
        .collect();
    let (day, time) = match words.as_slice() {
        [day, time] => (day_start(day, today)?, *time),
        [one] if day_start(one, today).is_ok() && one.contains('-') => {
            return Err(format!("{text:?}: give the hour too, e.g. `{one} 09:00`"))
        }
        [time] => (today, *time),
        _ => return Err(format!("{text:?} is not a time: {FORMS}")),
    };
    let hour = hour_of(time).map_err(|e| format!("{text:?}: {e}"))?;
    Ok(day + hour * HOUR)
}

/// `in N hours`, `in Nh`, `+Nh`, `+N hours`: `Some(Ok(N))`; not that form: `None`.
fn relative_hours(s: &str) -> Option<Result<u64, String>> {
    let rest = s
        .strip_prefix("in ")
        .or_else(|| s.strip_prefix('+'))?
        .trim();
    let num: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let unit = rest[num.len()..].trim();
    if num.is_empty() || !matches!(unit, "h" | "hour" | "hours") {
        return Some(Err(format!(
            "a relative time is `in N hours` or `+Nh`; {FORMS}"
        )));
    }
    Some(match num.parse::<u64>() {
        Ok(n) if n <= RELATIVE_HOURS_MAX => Ok(n),
        _ => Err(format!("at most {RELATIVE_HOURS_MAX} hours ahead")),
    })
}

/// The unix second a day word starts at: `today`, `tomorrow` or `YYYY-MM-DD`.
fn day_start(word: &str, today: u64) -> Result<u64, String> {
    match word {
        "today" => Ok(today),
        "tomorrow" => Ok(today + DAY),
        w if w.len() == 10 && w.as_bytes()[4] == b'-' => parse_slot(&format!("{w}T00:00Z"))
            .map_err(|_| format!("{w:?} is not a date written YYYY-MM-DD")),
        w => Err(format!(
            "{w:?} is not a day: use today, tomorrow or YYYY-MM-DD"
        )),
    }
}

/// The hour of a time of day: `09:00`, `9`, `9am`, `9:00pm`, `noon`, `midnight`.
fn hour_of(time: &str) -> Result<u64, String> {
    let (clock, pm) = match time {
        "noon" => return Ok(12),
        "midnight" => return Ok(0),
        t => match (t.strip_suffix("am"), t.strip_suffix("pm")) {
            (Some(c), _) => (c, Some(false)),
            (_, Some(c)) => (c, Some(true)),
            _ => (t, None),
        },
    };
    let (h, m) = clock.split_once(':').unwrap_or((clock, "00"));
    let bad = || format!("{time:?} is not a time of day: {FORMS}");
    if h.is_empty() || h.len() > 2 || !h.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if m.len() != 2 || !m.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if m != "00" {
        return Err("a delivery slot starts on the hour: minutes must be 00".into());
    }
    let h: u64 = h.parse().map_err(|_| bad())?;
    match pm {
        None if h < 24 => Ok(h),
        Some(pm) if (1..=12).contains(&h) => Ok(h % 12 + if pm { 12 } else { 0 }),
        _ => Err(bad()),
    }
}

/// `2026-12-07T09:00Z`.
pub fn show(slot: u64) -> String {
    format_slot(slot)
}

/// A unix time in milliseconds as `2026-12-07T09:41:05Z`.
pub fn show_ms(ms: u64) -> String {
    let secs = ms / 1_000;
    let hour = format_slot(secs - secs % HOUR);
    format!("{}:{:02}:{:02}Z", &hour[..13], secs % HOUR / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T20:41:56Z.
    const NOW: u64 = 1_796_589_716;

    fn at(s: &str) -> String {
        show(parse_when(s, NOW).unwrap())
    }

    #[test]
    fn the_now_used_here_is_what_it_says() {
        assert_eq!(show(NOW - NOW % HOUR), "2026-12-06T20:00Z");
        assert_eq!(show_ms(NOW * 1_000 + 999), "2026-12-06T20:41:56Z");
    }

    #[test]
    fn days_and_hours() {
        assert_eq!(at("tomorrow 09:00"), "2026-12-07T09:00Z");
        assert_eq!(at("Tomorrow at 9am"), "2026-12-07T09:00Z");
        assert_eq!(at("tomorrow 9pm UTC"), "2026-12-07T21:00Z");
        assert_eq!(at("today 23:00"), "2026-12-06T23:00Z");
        assert_eq!(at("22"), "2026-12-06T22:00Z");
        assert_eq!(at("12am"), "2026-12-06T00:00Z");
        assert_eq!(at("12pm"), "2026-12-06T12:00Z");
        assert_eq!(at("noon"), "2026-12-06T12:00Z");
        assert_eq!(at("tomorrow midnight"), "2026-12-07T00:00Z");
        assert_eq!(at("2026-12-08 07:00"), "2026-12-08T07:00Z");
        assert_eq!(at("2026-12-08T07:00"), "2026-12-08T07:00Z");
        assert_eq!(at("2026-12-08 7am"), "2026-12-08T07:00Z");
        assert_eq!(at("2026-12-08T07:00Z"), "2026-12-08T07:00Z");
        assert_eq!(at("2026-12-31 23:00 utc"), "2026-12-31T23:00Z");
    }

    #[test]
    fn relative_hours_count_from_the_current_hour() {
        assert_eq!(at("next hour"), "2026-12-06T21:00Z");
        assert_eq!(at("in 3 hours"), "2026-12-06T23:00Z");
        assert_eq!(at("in 1 hour"), "2026-12-06T21:00Z");
        assert_eq!(at("+4h"), "2026-12-07T00:00Z");
        assert_eq!(at("+ 2 hours"), "2026-12-06T22:00Z");
    }

    #[test]
    fn refusals_say_why() {
        let err = |s: &str| parse_when(s, NOW).unwrap_err();
        assert!(err("tomorrow 09:30").contains("on the hour"));
        assert!(err("2026-12-07T09:30Z").contains("on the hour"));
        assert!(err("yesterday 9am").contains("not a day"));
        assert!(err("13pm").contains("not a time of day"));
        assert!(err("24:00").contains("not a time of day"));
        assert!(err("2026-02-30 09:00").contains("YYYY-MM-DD"));
        assert!(err("2026-12-08").contains("give the hour"));
        assert!(err("in 3 days").contains("in N hours"));
        assert!(err("in 99999 hours").contains("at most"));
        assert!(err("").contains("no time"));
        assert!(err("soon").contains("tomorrow 09:00"));
        assert!(err("tomorrow 9 am please").contains("is not a time"));
    }
}
