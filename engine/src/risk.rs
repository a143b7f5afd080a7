//! Risk: what an order must hold, what a trade charges, and what a fill or a
//! cancel gives back.
//!
//! As in exchange-core, risk lives apart from the book and from matching: an order
//! reserves what it may spend before it matches (a buy holds USD, a sell holds the
//! market's GPU-hours), each fill settles out of that hold, and what is left is
//! released when the order stops being open. The hold of an open order must always
//! equal what the order still needs — `check_invariants` verifies it — so every
//! place that takes, checks, settles, releases or verifies a hold (`place_order`,
//! `amend_order`, the cancels, trades, the end of matching and the invariant check)
//! calls the one function here that states the rule, instead of restating it.
//!
//! The fee and buy-hold rules are methods of [`MarketSpec`] (their public API); the
//! rules built on them are crate-internal functions.

use crate::account::{Account, Balance, Holdings, Lot, LotArena};
use crate::market::MarketSpec;
use crate::reject::RejectReason;
use crate::types::{AccountId, Side, TradeId};

/// Basis points in one whole (100%).
const BPS_DENOMINATOR: u128 = 10_000;

impl MarketSpec {
    /// A fee of `bps` basis points on `notional_micros`, rounded down to the
    /// micro-USD. Rounding down makes the fee of a sum at least the sum of the
    /// fees of its parts, so a hold computed on the whole covers every partial fill.
    #[inline]
    pub fn fee(notional_micros: u64, bps: u32) -> u64 {
        // In 64 bits when the product fits (for any notional below 1.8e16
        // micro-USD at the highest rate): a 128-bit division is a call.
        match notional_micros.checked_mul(u64::from(bps)) {
            Some(product) => product / BPS_DENOMINATOR as u64,
            None => (notional_micros as u128 * bps as u128 / BPS_DENOMINATOR) as u64,
        }
    }

    /// The larger of the two fee rates: what a buy hold must cover, because a
    /// resting buy may later trade as maker or, after an amend, as taker.
    #[inline]
    pub fn hold_fee_bps(&self) -> u32 {
        self.maker_fee_bps.max(self.taker_fee_bps)
    }

    /// USD a buy of `lots` limited at `ticks` holds: notional plus worst-case fee.
    #[inline]
    pub fn buy_hold(&self, ticks: i64, lots: u64) -> u64 {
        let n = self.notional(ticks, lots);
        n + Self::fee(n, self.hold_fee_bps())
    }
}

/// What an order on `side` could still hold more of: available USD for a buy,
/// available GPUs (lots) in the slot (`gpus`) for a sell.
pub(crate) fn available_for(account: &Account, gpus: Balance, side: Side) -> u64 {
    match side {
        Side::Buy => account.cash.available,
        Side::Sell => gpus.available,
    }
}

/// Why an order on `side` cannot take the hold it needs.
pub(crate) fn shortfall(side: Side) -> RejectReason {
    match side {
        Side::Buy => RejectReason::InsufficientFunds,
        Side::Sell => RejectReason::InsufficientCapacity,
    }
}

/// What an open (limit) order of `lots` at `price_ticks` holds: for a buy the
/// notional plus the worst-case fee ([`MarketSpec::buy_hold`]), for a sell the lots.
pub(crate) fn resting_hold(spec: &MarketSpec, side: Side, price_ticks: i64, lots: u64) -> u64 {
    match side {
        Side::Buy => spec.buy_hold(price_ticks, lots),
        Side::Sell => lots,
    }
}

/// What an incoming order holds for `lots` still to fill: a market buy its whole
/// remaining `budget`, a limit buy [`resting_hold`] at its limit, a sell its lots.
/// `place_order` takes this hold; the end of matching releases what is left of it.
pub(crate) fn taker_hold(
    spec: &MarketSpec,
    side: Side,
    limit: Option<i64>,
    lots: u64,
    budget: Option<u64>,
) -> u64 {
    match (side, limit, budget) {
        (Side::Buy, _, Some(b)) => b,
        (Side::Buy, Some(l), None) => resting_hold(spec, side, l, lots),
        _ => lots,
    }
}

/// Whether a new order can take its hold, and the budget of a market buy.
///
/// A market buy spends at most its available USD, capped by `cap`: that budget
/// (`Some`) is what it holds, and it is refused when nothing is left to spend. Any
/// other order must have its [`taker_hold`] available; it gets `None`.
pub(crate) fn order_budget(
    account: &Account,
    gpus: Balance,
    spec: &MarketSpec,
    side: Side,
    limit: Option<i64>,
    lots: u64,
    cap: Option<u64>,
) -> Result<Option<u64>, RejectReason> {
    if side == Side::Buy && limit.is_none() {
        let budget = account.cash.available.min(cap.unwrap_or(u64::MAX));
        if budget == 0 {
            return Err(RejectReason::InsufficientFunds);
        }
        return Ok(Some(budget));
    }
    if available_for(account, gpus, side) < taker_hold(spec, side, limit, lots, None) {
        return Err(shortfall(side));
    }
    Ok(None)
}

/// Whether an open order's hold can change from `old_hold` to `new_hold` (an
/// amend): a larger hold needs the difference available.
pub(crate) fn check_rehold(
    account: &Account,
    gpus: Balance,
    side: Side,
    old_hold: u64,
    new_hold: u64,
) -> Result<(), RejectReason> {
    if new_hold > old_hold && available_for(account, gpus, side) < new_hold - old_hold {
        return Err(shortfall(side));
    }
    Ok(())
}

/// Changes an open order's hold from `old_hold` to `new_hold`, after
/// [`check_rehold`] allowed it.
pub(crate) fn rehold(balance: &mut Balance, old_hold: u64, new_hold: u64) {
    if new_hold > old_hold {
        balance.hold(new_hold - old_hold);
    } else {
        balance.release(old_hold - new_hold);
    }
}

/// The maker's and the taker's fee on a trade's notional.
pub(crate) fn trade_fees(spec: &MarketSpec, notional: u64) -> (u64, u64) {
    (
        MarketSpec::fee(notional, spec.maker_fee_bps),
        MarketSpec::fee(notional, spec.taker_fee_bps),
    )
}

/// How much of a buy's hold one fill takes out of held: for an order with a
/// limit, the hold of the lots before the fill less the hold of the lots after
/// it; for a market buy, exactly what the fill `cost` (its budget is its hold).
pub(crate) fn buy_fill_release(
    spec: &MarketSpec,
    limit: Option<i64>,
    lots_before: u64,
    lots_after: u64,
    cost: u64,
) -> u64 {
    match limit {
        Some(l) => {
            resting_hold(spec, Side::Buy, l, lots_before)
                - resting_hold(spec, Side::Buy, l, lots_after)
        }
        None => cost,
    }
}

/// Settles the buyer's USD for a fill: `release` leaves its held USD, of which
/// `cost` (notional plus its fee) is paid and the rest goes back to available.
pub(crate) fn settle_buyer_cash(cash: &mut Balance, release: u64, cost: u64) {
    assert!(release >= cost, "a hold covers every fill");
    cash.spend_held(release);
    cash.available += release - cost;
}

/// Moves the GPUs of a fill in trade `trade`: `lots` leave the seller's held GPUs
/// (inventory first, then its oldest purchases: [`Holding::take`]) and arrive in
/// the buyer's holding with their provenance ([`Holding::receive`]), in the
/// slot's `arena` of lots. Each party is given by its id and its account index.
/// `scratch` is a reused buffer.
pub(crate) fn move_gpus(
    holdings: &mut Holdings,
    arena: &mut LotArena,
    (seller, seller_ix): (AccountId, u32),
    (buyer, buyer_ix): (AccountId, u32),
    lots: u64,
    trade: TradeId,
    scratch: &mut Vec<Lot>,
) {
    scratch.clear();
    let from = holdings
        .get_mut(seller_ix)
        .expect("a seller holds what it sells");
    from.gpus.spend_held(lots);
    from.take(arena, seller, lots, trade, scratch);
    holdings
        .entry(buyer_ix)
        .receive(arena, buyer, scratch.drain(..));
}

/// Most lots a market buy with `budget` micro-USD can pay for at `price_ticks`,
/// taker fee included.
pub(crate) fn affordable_lots(spec: &MarketSpec, budget: u64, price_ticks: i64) -> u64 {
    let unit = price_ticks as u128 * spec.cash_per_tick_lot as u128;
    let bps = spec.taker_fee_bps as u128;
    let cost = |lots: u128| {
        let n = lots * unit;
        n + n * bps / BPS_DENOMINATOR
    };
    // The floor of the fee makes the true maximum at most a little above this.
    let mut lots = budget as u128 * BPS_DENOMINATOR / (unit * (BPS_DENOMINATOR + bps));
    while cost(lots + 1) <= budget as u128 {
        lots += 1;
    }
    lots.min(u64::MAX as u128) as u64
}
