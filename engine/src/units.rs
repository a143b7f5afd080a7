//! The engine's integer units and the exact conversions between them and decimals.
//!
//! Cash is counted in micro-USD (`u64`), so every amount the protocol accepts is a
//! whole number of units and no arithmetic inside the engine rounds. This module
//! depends on nothing else in the crate: [`limits`](crate::limits) states its bounds
//! in these units and [`market`](crate::market) converts prices and quantities with
//! them, so the dependency runs one way (units ← limits ← market).

use rust_decimal::Decimal;

/// Cash is counted in micro-USD: 1 USD = 1,000,000 units.
pub const CASH_SCALE: u32 = 6;
/// Micro-USD in one USD (`10^CASH_SCALE`).
const MICROS_PER_USD: u64 = 1_000_000;

/// Whole USD in micro-USD (for limits and tests).
pub const fn usd(whole: u64) -> u64 {
    whole * MICROS_PER_USD
}

/// A decimal as an integer mantissa at a fixed scale: `mantissa / 10^scale`, or
/// `None` when it has more decimals than `scale` or does not fit.
pub(crate) fn units_at_scale(value: Decimal, scale: u32) -> Option<i128> {
    let (m, s) = (value.mantissa(), value.scale());
    if s <= scale {
        m.checked_mul(10i128.checked_pow(scale - s)?)
    } else {
        let div = 10i128.checked_pow(s - scale)?;
        (m % div == 0).then(|| m / div)
    }
}

/// A USD amount in micro-USD, if it is positive and a whole number of micro-USD.
/// An amount beyond `u64` saturates to `u64::MAX`: still a valid amount, which the
/// balance limits then refuse (and which, as a cap, never binds).
pub fn cash_micros(amount: Decimal) -> Option<u64> {
    if amount <= Decimal::ZERO {
        return None;
    }
    units_at_scale(amount, CASH_SCALE).map(|m| u64::try_from(m).unwrap_or(u64::MAX))
}

/// Micro-USD as a decimal USD amount with six decimals.
pub fn cash_decimal(micros: u64) -> Decimal {
    Decimal::from_i128_with_scale(micros as i128, CASH_SCALE)
}
