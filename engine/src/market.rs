//! A market's specification, and where prices and quantities become integers.
//!
//! Inside the engine a price is `i64` ticks, a quantity `u64` lots and cash `u64`
//! micro-USD. A market is listed only if one tick times one lot is a whole number of
//! micro-USD, so every notional (`price_ticks × quantity_lots × cash_per_tick_lot`)
//! is exact. Fees are basis points of the notional, rounded down to the micro-USD
//! (in the payer's favour); see [`MarketSpec::fee`], defined with the other fee and hold
//! rules in the crate's `risk` module.

use crate::event::MarketListed;
use crate::limits::{
    DELIVERY_WINDOW_SECS_MAX, FEE_BPS_MAX, GATE_CLOSURE_SECS_MAX, NOTIONAL_MAX_MICROS,
    SLOT_HORIZON_HOURS_MAX, WINDOW_SLOTS_MAX,
};
use crate::reject::RejectReason;
use crate::slot::{on_the_hour, NANOS_PER_SEC, SLOT_SECS};
use crate::types::MarketId;
use crate::units::units_at_scale;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

// The unit helpers lived here; their old paths keep working.
pub use crate::units::{cash_decimal, cash_micros, usd, CASH_SCALE};

/// A listed market, with its sizes in both decimal and integer form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketSpec {
    /// `{gpu_model}.{region}`.
    pub id: MarketId,
    /// USD per GPU-hour of one tick (normalised, e.g. `0.01`).
    // As strings both ways: Decimal's default Deserialize needs `deserialize_any`,
    // which postcard (snapshots) does not support.
    #[serde(with = "rust_decimal::serde::str")]
    pub tick_size: Decimal,
    /// GPU-hours in one lot (normalised, e.g. `1`).
    #[serde(with = "rust_decimal::serde::str")]
    pub lot_size: Decimal,
    /// Fee charged to the resting side of a trade, in basis points of the notional.
    pub maker_fee_bps: u32,
    /// Fee charged to the incoming side of a trade, in basis points of the notional.
    pub taker_fee_bps: u32,
    /// Lowest accepted limit price, in ticks (at least 1).
    pub min_price_ticks: i64,
    /// Highest accepted limit price, in ticks.
    pub max_price_ticks: i64,
    /// Largest accepted order quantity, in lots.
    pub max_order_lots: u64,
    /// Micro-USD in one tick × one lot: the notional of the smallest trade at 1 tick.
    pub cash_per_tick_lot: u64,
    /// How far ahead slots trade: a slot may start at most this many hours after
    /// engine time.
    pub slot_horizon_hours: u32,
    /// Trading in a slot stops this many seconds before it starts (its gate
    /// closure).
    pub gate_closure_secs: u32,
    /// A provider reports a slot's deliveries from the slot's start until this
    /// many seconds after its end; an entry still unreported then settles as not
    /// delivered.
    pub report_window_secs: u32,
    /// A holder may dispute a delivery until this many seconds after the slot's
    /// end (at least `report_window_secs`); a report not disputed by then stands.
    pub dispute_window_secs: u32,
}

/// Slot rules of a listing: how far ahead slots trade and when trading in one
/// stops. Defaults: a week ahead, five minutes before the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRules {
    /// See [`MarketSpec::slot_horizon_hours`].
    pub slot_horizon_hours: u32,
    /// See [`MarketSpec::gate_closure_secs`].
    pub gate_closure_secs: u32,
    /// See [`MarketSpec::report_window_secs`].
    pub report_window_secs: u32,
    /// See [`MarketSpec::dispute_window_secs`].
    pub dispute_window_secs: u32,
}

impl Default for SlotRules {
    fn default() -> Self {
        SlotRules {
            slot_horizon_hours: DEFAULT_SLOT_HORIZON_HOURS,
            gate_closure_secs: DEFAULT_GATE_CLOSURE_SECS,
            report_window_secs: DEFAULT_REPORT_WINDOW_SECS,
            dispute_window_secs: DEFAULT_DISPUTE_WINDOW_SECS,
        }
    }
}

/// Default [`MarketSpec::slot_horizon_hours`]: a week.
pub const DEFAULT_SLOT_HORIZON_HOURS: u32 = 168;
/// Default [`MarketSpec::gate_closure_secs`]: five minutes.
pub const DEFAULT_GATE_CLOSURE_SECS: u32 = 300;
/// Default [`MarketSpec::report_window_secs`]: an hour after the slot ends.
pub const DEFAULT_REPORT_WINDOW_SECS: u32 = 3_600;
/// Default [`MarketSpec::dispute_window_secs`]: two hours after the slot ends.
pub const DEFAULT_DISPUTE_WINDOW_SECS: u32 = 7_200;

/// Default highest limit price, USD per GPU-hour.
const DEFAULT_MAX_PRICE_USD: i64 = 100_000;

/// The most whole ticks of `tick` that fit in `usd` (rounded down).
fn ticks_at_most(usd: i64, tick: Decimal) -> i128 {
    let scale = tick.scale();
    match (
        units_at_scale(Decimal::from(usd), scale),
        units_at_scale(tick, scale),
    ) {
        (Some(v), Some(u)) if u > 0 => v / u,
        _ => i64::MAX as i128,
    }
}

/// `value / unit` when it is a whole number (both positive decimals), else `None`.
/// Exact integer arithmetic: no decimal division, no rounding.
fn whole_multiple(value: Decimal, unit: Decimal) -> Option<i128> {
    // Most prices and quantities come at the scale of their unit: then the
    // mantissas are already the units at that scale.
    let (v, u) = if value.scale() == unit.scale() {
        (value.mantissa(), unit.mantissa())
    } else {
        let scale = value.scale().max(unit.scale());
        (units_at_scale(value, scale)?, units_at_scale(unit, scale)?)
    };
    if u <= 0 {
        return None;
    }
    // Prices and quantities almost always fit in 64 bits, where division is far
    // cheaper than the 128-bit kind.
    if let (Ok(v), Ok(u)) = (u64::try_from(v), u64::try_from(u)) {
        return (v % u == 0).then(|| (v / u) as i128);
    }
    (v % u == 0).then(|| v / u)
}

impl MarketSpec {
    /// Validates a listing request and derives the integer form.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: MarketId,
        tick_size: Decimal,
        lot_size: Decimal,
        maker_fee_bps: u32,
        taker_fee_bps: u32,
        min_price: Option<Decimal>,
        max_price: Option<Decimal>,
        max_order_quantity: Option<Decimal>,
        slots: SlotRules,
    ) -> Result<MarketSpec, RejectReason> {
        let bad = RejectReason::InvalidMarketSpec;
        if !(1..=SLOT_HORIZON_HOURS_MAX).contains(&slots.slot_horizon_hours)
            || slots.gate_closure_secs > GATE_CLOSURE_SECS_MAX
            || slots.dispute_window_secs > DELIVERY_WINDOW_SECS_MAX
            || slots.report_window_secs > slots.dispute_window_secs
        {
            return Err(bad);
        }
        let (tick_size, lot_size) = (tick_size.normalize(), lot_size.normalize());
        if tick_size <= Decimal::ZERO || lot_size <= Decimal::ZERO {
            return Err(bad);
        }
        if maker_fee_bps > FEE_BPS_MAX || taker_fee_bps > FEE_BPS_MAX {
            return Err(bad);
        }
        let tick_lot_usd = tick_size.checked_mul(lot_size).ok_or(bad)?;
        let cash_per_tick_lot = units_at_scale(tick_lot_usd, CASH_SCALE)
            .and_then(|c| u64::try_from(c).ok())
            .filter(|&c| c > 0)
            .ok_or(bad)?;
        let ticks = |p: Decimal| {
            whole_multiple(p, tick_size)
                .and_then(|t| i64::try_from(t).ok())
                .filter(|&t| t > 0)
                .ok_or(bad)
        };
        let min_price_ticks = min_price.map_or(Ok(1), ticks)?;
        // Defaults: up to 100,000 USD per GPU-hour, up to 1,000,000 lots per order,
        // tightened below so the largest order's notional stays in range.
        let max_order_lots = match max_order_quantity {
            Some(q) => whole_multiple(q, lot_size)
                .and_then(|l| u64::try_from(l).ok())
                .filter(|&l| l > 0)
                .ok_or(bad)?,
            None => 1_000_000,
        };
        let max_price_ticks = match max_price {
            Some(p) => ticks(p)?,
            None => {
                let by_default = ticks_at_most(DEFAULT_MAX_PRICE_USD, tick_size).max(1);
                let by_notional = NOTIONAL_MAX_MICROS as u128
                    / (max_order_lots as u128 * cash_per_tick_lot as u128);
                by_default
                    .min(by_notional as i128)
                    .clamp(0, i64::MAX as i128) as i64
            }
        };
        if min_price_ticks > max_price_ticks {
            return Err(bad);
        }
        let worst = max_price_ticks as u128 * max_order_lots as u128 * cash_per_tick_lot as u128;
        if worst > NOTIONAL_MAX_MICROS as u128 {
            return Err(bad);
        }
        Ok(MarketSpec {
            id,
            tick_size,
            lot_size,
            maker_fee_bps,
            taker_fee_bps,
            min_price_ticks,
            max_price_ticks,
            max_order_lots,
            cash_per_tick_lot,
            slot_horizon_hours: slots.slot_horizon_hours,
            gate_closure_secs: slots.gate_closure_secs,
            report_window_secs: slots.report_window_secs,
            dispute_window_secs: slots.dispute_window_secs,
        })
    }

    /// A slot's delivery deadlines, unix seconds: until when its deliveries are
    /// reported, and until when they may be disputed (after the slot's hour ends).
    #[inline]
    pub fn delivery_deadlines(&self, slot: u64) -> (u64, u64) {
        let end = slot + SLOT_SECS;
        (
            end + u64::from(self.report_window_secs),
            end + u64::from(self.dispute_window_secs),
        )
    }

    /// When trading in `slot` stops: engine time (ns) after which the slot is
    /// closed, `gate_closure_secs` before its start.
    #[inline]
    pub fn closes_at_ns(&self, slot: u64) -> u64 {
        slot.saturating_sub(u64::from(self.gate_closure_secs))
            .saturating_mul(NANOS_PER_SEC)
    }

    /// Whether `slot` trades at engine time `now_ns`: on the hour
    /// (`slot_not_on_hour`), its gate not yet passed (`slot_closed`: open while
    /// `now ≤ start − gate`), and within the horizon (`slot_beyond_horizon`:
    /// `start ≤ now + horizon`).
    pub fn check_slot(&self, slot: u64, now_ns: u64) -> Result<(), RejectReason> {
        if !on_the_hour(slot) {
            return Err(RejectReason::SlotNotOnHour);
        }
        if now_ns > self.closes_at_ns(slot) {
            return Err(RejectReason::SlotClosed);
        }
        let horizon = u64::from(self.slot_horizon_hours) * SLOT_SECS;
        if slot > (now_ns / NANOS_PER_SEC).saturating_add(horizon) {
            return Err(RejectReason::SlotBeyondHorizon);
        }
        Ok(())
    }

    /// The slots `from..=to` (a window or a capacity range), each checked by
    /// [`check_slot`](Self::check_slot): `invalid_slot_range` when `to` is before
    /// `from`; the first slot's failure otherwise (`slot_closed` for the first,
    /// `slot_beyond_horizon` for the last).
    pub fn check_range(&self, from: u64, to: u64, now_ns: u64) -> Result<u64, RejectReason> {
        if !on_the_hour(from) || !on_the_hour(to) {
            return Err(RejectReason::SlotNotOnHour);
        }
        if to < from {
            return Err(RejectReason::InvalidSlotRange);
        }
        self.check_slot(from, now_ns)?;
        self.check_slot(to, now_ns)?;
        Ok((to - from) / SLOT_SECS + 1)
    }

    /// A limit price in ticks, checked against the tick grid and the price band.
    #[inline]
    pub fn price_ticks(&self, price: Decimal) -> Result<i64, RejectReason> {
        if price <= Decimal::ZERO {
            return Err(RejectReason::PriceOutOfBand);
        }
        let ticks = whole_multiple(price, self.tick_size).ok_or(RejectReason::OffTickPrice)?;
        if ticks < self.min_price_ticks as i128 || ticks > self.max_price_ticks as i128 {
            return Err(RejectReason::PriceOutOfBand);
        }
        Ok(ticks as i64)
    }

    /// An order quantity in lots, checked against the lot grid and the maximum.
    #[inline]
    pub fn order_lots(&self, quantity: Decimal) -> Result<u64, RejectReason> {
        let lots = self.lots(quantity).map_err(|r| match r {
            RejectReason::InvalidAmount => RejectReason::InvalidQuantity,
            r => r,
        })?;
        if lots > self.max_order_lots {
            return Err(RejectReason::QuantityTooLarge);
        }
        Ok(lots)
    }

    /// A capacity quantity in lots (no per-order maximum). A whole number of lots
    /// beyond `u64` saturates to `u64::MAX`, which every limit then refuses.
    pub fn lots(&self, quantity: Decimal) -> Result<u64, RejectReason> {
        if quantity <= Decimal::ZERO {
            return Err(RejectReason::InvalidAmount);
        }
        whole_multiple(quantity, self.lot_size)
            .map(|l| u64::try_from(l).unwrap_or(u64::MAX))
            .ok_or(RejectReason::OffLotQuantity)
    }

    /// Ticks back to USD per GPU-hour, at the tick's scale.
    #[inline]
    pub fn price(&self, ticks: i64) -> Decimal {
        scaled(ticks as i128, self.tick_size)
    }

    /// Lots back to GPU-hours, at the lot's scale.
    #[inline]
    pub fn quantity(&self, lots: u64) -> Decimal {
        scaled(lots as i128, self.lot_size)
    }

    /// Exact notional of `lots` at `ticks`, in micro-USD.
    #[inline]
    pub fn notional(&self, ticks: i64, lots: u64) -> u64 {
        debug_assert!(ticks > 0);
        let n = ticks as u128 * lots as u128 * self.cash_per_tick_lot as u128;
        debug_assert!(n <= NOTIONAL_MAX_MICROS as u128);
        n as u64
    }
}

#[inline]
fn scaled(units: i128, unit: Decimal) -> Decimal {
    // Prices and quantities on the book are non-negative and fit in 64 bits
    // times the unit's mantissa: build the decimal from its parts directly.
    if let (Ok(u), Ok(m)) = (u64::try_from(units), u64::try_from(unit.mantissa())) {
        if let Some(v) = u.checked_mul(m) {
            return Decimal::from_parts(v as u32, (v >> 32) as u32, 0, false, unit.scale());
        }
    }
    Decimal::from_i128_with_scale(units * unit.mantissa(), unit.scale())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn spec() -> MarketSpec {
        let id = MarketId::new("h100-sxm.us-east").unwrap();
        MarketSpec::new(
            id,
            d("0.01"),
            d("0.5"),
            10,
            25,
            None,
            None,
            None,
            SlotRules::default(),
        )
        .unwrap()
    }

    #[test]
    fn ticks_and_lots_are_exact_or_refused() {
        let m = spec();
        assert_eq!(m.cash_per_tick_lot, 5_000);
        assert_eq!(m.price_ticks(d("2.35")), Ok(235));
        assert_eq!(m.price_ticks(d("2.350000")), Ok(235));
        assert_eq!(m.price_ticks(d("2.355")), Err(RejectReason::OffTickPrice));
        assert_eq!(m.price_ticks(d("0")), Err(RejectReason::PriceOutOfBand));
        assert_eq!(m.price_ticks(d("-1")), Err(RejectReason::PriceOutOfBand));
        assert_eq!(m.order_lots(d("1.5")), Ok(3));
        assert_eq!(m.order_lots(d("1.2")), Err(RejectReason::OffLotQuantity));
        assert_eq!(m.order_lots(d("0")), Err(RejectReason::InvalidQuantity));
        assert_eq!(m.price(235).to_string(), "2.35");
        assert_eq!(m.quantity(3).to_string(), "1.5");
    }

    #[test]
    fn decimals_built_from_parts_are_the_decimals_of_the_general_path() {
        for unit in ["0.001", "0.5", "1", "25", "0.0000000001"] {
            let unit = d(unit);
            for units in [
                0i128,
                1,
                7,
                2_345,
                u32::MAX as i128 + 1,
                u64::MAX as i128,
                1 << 70,
            ] {
                let general = Decimal::from_i128_with_scale(units * unit.mantissa(), unit.scale());
                let fast = scaled(units, unit);
                assert_eq!(fast, general);
                // The same representation: the same scale, the same text.
                assert_eq!(
                    (fast.scale(), fast.to_string()),
                    (general.scale(), general.to_string())
                );
            }
        }
    }

    #[test]
    fn listing_rules() {
        let id = MarketId::new("a100.eu-west").unwrap();
        let list = |tick: &str, lot: &str, fee: u32| {
            MarketSpec::new(
                id,
                d(tick),
                d(lot),
                fee,
                fee,
                None,
                None,
                None,
                SlotRules::default(),
            )
        };
        assert!(list("0.01", "1", 10).is_ok());
        // tick x lot below one micro-USD: notionals would not be exact.
        assert_eq!(
            list("0.0000001", "1", 10),
            Err(RejectReason::InvalidMarketSpec)
        );
        assert_eq!(
            list("0.01", "1", FEE_BPS_MAX + 1),
            Err(RejectReason::InvalidMarketSpec)
        );
        assert_eq!(list("0", "1", 10), Err(RejectReason::InvalidMarketSpec));
        // The default ceiling is the most ticks within 100,000 USD, even when
        // 100,000 is not a whole number of ticks.
        let odd = list("0.03", "1", 0).unwrap();
        assert_eq!(odd.price(odd.max_price_ticks), d("99999.99"));
        assert_eq!(
            list("0.01", "1", 0)
                .unwrap()
                .price(list("0.01", "1", 0).unwrap().max_price_ticks),
            d("100000")
        );
        // The default band is tightened to keep the largest notional in range.
        let big = list("0.01", "1000", 0).unwrap();
        assert!(big.notional(big.max_price_ticks, big.max_order_lots) <= NOTIONAL_MAX_MICROS);
    }

    #[test]
    fn fees_round_down_and_holds_cover_partial_fills() {
        assert_eq!(MarketSpec::fee(999, 10), 0);
        // The 64-bit path and the 128-bit one agree on both sides of the
        // boundary where the product stops fitting in 64 bits.
        for (notional, bps) in [
            (u64::MAX / 1_000, FEE_BPS_MAX),
            (u64::MAX / 1_000 + 1, FEE_BPS_MAX),
            (NOTIONAL_MAX_MICROS, FEE_BPS_MAX),
            (NOTIONAL_MAX_MICROS, 7),
            (123_456_789, 25),
        ] {
            let wide = (notional as u128 * bps as u128 / 10_000) as u64;
            assert_eq!(MarketSpec::fee(notional, bps), wide, "{notional} at {bps}");
        }
        assert_eq!(MarketSpec::fee(10_000, 25), 25);
        let m = spec();
        let whole = m.buy_hold(300, 7);
        let parts: u64 = (0..7).map(|_| m.buy_hold(300, 1)).sum();
        assert!(whole >= parts);
    }
}

impl From<&MarketSpec> for MarketListed {
    /// The `market_listed` event of a spec: its sizes, fee rates and bounds as the
    /// protocol shows them (what the engine emits on listing, and what an API shows
    /// for a listed market).
    fn from(spec: &MarketSpec) -> Self {
        MarketListed {
            market: spec.id,
            tick_size: spec.tick_size,
            lot_size: spec.lot_size,
            maker_fee_bps: spec.maker_fee_bps,
            taker_fee_bps: spec.taker_fee_bps,
            min_price: spec.price(spec.min_price_ticks),
            max_price: spec.price(spec.max_price_ticks),
            max_order_quantity: spec.quantity(spec.max_order_lots),
            slot_horizon_hours: spec.slot_horizon_hours,
            gate_closure_secs: spec.gate_closure_secs,
            report_window_secs: spec.report_window_secs,
            dispute_window_secs: spec.dispute_window_secs,
        }
    }
}

/// A `min_reliability` is 0 to 1 with at most 4 decimals, on a buy that never
/// rests (`tif`: its time in force once defaults are applied).
fn check_min_reliability(
    o: &crate::command::PlaceOrder,
    tif: crate::types::TimeInForce,
) -> Result<(), RejectReason> {
    let Some(floor) = o.min_reliability else {
        return Ok(());
    };
    let in_range = floor >= Decimal::ZERO && floor <= Decimal::ONE;
    if !in_range
        || floor.normalize().scale() > 4
        || o.side != crate::types::Side::Buy
        || tif.rests()
    {
        return Err(RejectReason::InvalidMinReliability);
    }
    Ok(())
}

/// A `place_order` command's shape in the market's units, once it passed the checks
/// that need only the command, the market's spec and the time ([`MarketSpec::check_order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderShape {
    /// Time in force (market orders: IOC).
    pub tif: crate::types::TimeInForce,
    /// A market buy's cap in micro-USD.
    pub cap: Option<u64>,
    /// The limit price in ticks (market orders: none).
    pub limit: Option<i64>,
    /// The quantity in lots (in each slot of a window).
    pub lots: u64,
    /// The first slot (the only one unless a window).
    pub from_slot: u64,
    /// The last slot (included).
    pub to_slot: u64,
    /// A window or a cluster: all or nothing, planned before anything moves.
    pub all_or_none: bool,
    /// Trade only with sellers at least this reliable (a buy that never rests).
    pub min_reliability: Option<Decimal>,
}

impl MarketSpec {
    /// The shape checks of `place_order` (reject codes 2xx, in the engine's order;
    /// see PROTOCOL.md): what a gateway can refuse before submitting, with exactly
    /// the engine's answer, because the engine runs this same function.
    pub fn check_order(
        &self,
        o: &crate::command::PlaceOrder,
        ts_ns: u64,
    ) -> Result<OrderShape, RejectReason> {
        use crate::types::{OrderType, Side, TimeInForce};
        use RejectReason::{GoodTillInPast, InvalidOrder};
        let tif = match o.order_type {
            OrderType::Limit => {
                if o.price.is_none() || o.cap.is_some() {
                    return Err(InvalidOrder);
                }
                o.time_in_force.unwrap_or_default()
            }
            OrderType::Market => {
                if o.price.is_some()
                    || o.time_in_force.is_some()
                    || o.post_only
                    || o.good_till_ns.is_some()
                    || (o.cap.is_some() && o.side == Side::Sell)
                {
                    return Err(InvalidOrder);
                }
                TimeInForce::Ioc
            }
        };
        if (tif == TimeInForce::Gtd) != o.good_till_ns.is_some() || (o.post_only && !tif.rests()) {
            return Err(InvalidOrder);
        }
        let cap = o
            .cap
            .map(|c| cash_micros(c).ok_or(InvalidOrder))
            .transpose()?;
        let limit = o.price.map(|p| self.price_ticks(p)).transpose()?;
        let all_or_none = o.window.is_some() || o.colocate;
        if all_or_none
            && (o.price.is_none()
                || o.post_only
                || !matches!(tif, TimeInForce::Ioc | TimeInForce::Fok) && o.time_in_force.is_some()
                || (o.colocate && o.side == Side::Sell))
        {
            return Err(InvalidOrder);
        }
        // A window or cluster order never rests: no time in force means FOK.
        let tif = if all_or_none { TimeInForce::Fok } else { tif };
        check_min_reliability(o, tif)?;
        let lots = self.order_lots(o.quantity)?;
        if o.good_till_ns.is_some_and(|t| t <= ts_ns) {
            return Err(GoodTillInPast);
        }
        let (from_slot, to_slot) = match (o.slot, o.window) {
            (Some(s), None) => {
                self.check_slot(s, ts_ns)?;
                (s, s)
            }
            (None, Some(w)) => {
                let n = self.check_range(w.from_slot, w.to_slot, ts_ns)?;
                if n > WINDOW_SLOTS_MAX {
                    return Err(RejectReason::InvalidSlotRange);
                }
                (w.from_slot, w.to_slot)
            }
            _ => return Err(RejectReason::InvalidSlotRange),
        };
        Ok(OrderShape {
            tif,
            cap,
            limit,
            lots,
            from_slot,
            to_slot,
            all_or_none,
            min_reliability: o.min_reliability,
        })
    }
}
