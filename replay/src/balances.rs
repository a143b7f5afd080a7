//! Balances recomputed from events alone, independently of the engine: the
//! arithmetic that statements and the audit share.
//!
//! Totals are `available + held` (holds move balances between the two halves, so
//! they do not change totals): deposits add USD and withdrawals take it; capacity
//! added and removed change GPU-hours; a fill moves GPU-hours from seller to buyer
//! and USD the other way — the buyer pays `price × quantity + fee`, the seller
//! receives `price × quantity − fee`, and the fee account (0) receives both fees.

use std::collections::BTreeMap;

use gpux_engine::event::TradeExecuted;
use gpux_engine::{AccountId, Event, MarketId, Side, FEE_ACCOUNT};
use rust_decimal::Decimal;
use serde::Serialize;

/// Whether an account was the resting or the incoming side of a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The resting order's owner.
    Maker,
    /// The incoming order's owner.
    Taker,
}

/// One account's side of a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leg {
    pub account: AccountId,
    pub order: u64,
    pub side: Side,
    pub role: Role,
    pub fee: Decimal,
    /// Change of the account's USD total.
    pub usd: Decimal,
    /// Change of its GPU-hours in the trade's market.
    pub gpu_hours: Decimal,
}

/// The trade's notional, `price × quantity`, in USD.
pub(crate) fn notional(t: &TradeExecuted) -> Decimal {
    t.price * t.quantity
}

/// The maker's and the taker's legs of a trade (the same account may be both).
pub(crate) fn legs(t: &TradeExecuted) -> [Leg; 2] {
    let n = notional(t);
    let leg = |account, order, side: Side, role, fee: Decimal| Leg {
        account,
        order,
        side,
        role,
        fee,
        usd: match side {
            Side::Buy => -(n + fee),
            Side::Sell => n - fee,
        },
        gpu_hours: match side {
            Side::Buy => t.quantity,
            Side::Sell => -t.quantity,
        },
    };
    [
        leg(
            t.maker_account,
            t.maker_order,
            t.taker_side.opposite(),
            Role::Maker,
            t.maker_fee,
        ),
        leg(
            t.taker_account,
            t.taker_order,
            t.taker_side,
            Role::Taker,
            t.taker_fee,
        ),
    ]
}

/// One account's totals recomputed from events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventTotals {
    /// USD, available + held.
    pub usd: Decimal,
    /// GPU-hours per market, available + held (markets ever touched).
    pub gpu_hours: BTreeMap<MarketId, Decimal>,
}

impl EventTotals {
    /// GPU-hours in `market` (zero if never touched).
    pub fn gpu(&self, market: &MarketId) -> Decimal {
        self.gpu_hours.get(market).copied().unwrap_or_default()
    }

    pub(crate) fn add_gpu(&mut self, market: MarketId, q: Decimal) {
        *self.gpu_hours.entry(market).or_default() += q;
    }
}

/// Every account's totals, the exchange's deposits and withdrawals, and each
/// market's capacity added and removed, from events alone.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventBalances {
    pub accounts: BTreeMap<AccountId, EventTotals>,
    pub deposits: Decimal,
    pub withdrawals: Decimal,
    pub capacity: BTreeMap<MarketId, (Decimal, Decimal)>,
}

impl EventBalances {
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Deposited(c) => {
                self.deposits += c.amount;
                self.account(c.account).usd += c.amount;
            }
            Event::Withdrawn(c) => {
                self.withdrawals += c.amount;
                self.account(c.account).usd -= c.amount;
            }
            Event::CapacityAdded(c) => {
                self.capacity.entry(c.market).or_default().0 += c.quantity;
                self.account(c.account).add_gpu(c.market, c.quantity);
            }
            Event::CapacityRemoved(c) => {
                self.capacity.entry(c.market).or_default().1 += c.quantity;
                self.account(c.account).add_gpu(c.market, -c.quantity);
            }
            Event::TradeExecuted(t) => {
                for leg in legs(t) {
                    let a = self.account(leg.account);
                    a.usd += leg.usd;
                    a.add_gpu(t.market, leg.gpu_hours);
                }
                self.account(FEE_ACCOUNT).usd += t.maker_fee + t.taker_fee;
            }
            Event::AccountCreated(c) => {
                self.account(c.account);
            }
            _ => {}
        }
    }

    fn account(&mut self, id: AccountId) -> &mut EventTotals {
        self.accounts.entry(id).or_default()
    }

    /// Deposits minus withdrawals.
    pub fn usd_expected(&self) -> Decimal {
        self.deposits - self.withdrawals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_moves_usd_and_gpu_hours_and_pays_both_fees_to_the_fee_account() {
        let t = TradeExecuted {
            trade: 1,
            market: "h100.us".parse().unwrap(),
            price: Decimal::new(250, 2),
            quantity: Decimal::from(4),
            taker_side: Side::Sell,
            maker_order: 1,
            maker_account: 7,
            taker_order: 2,
            taker_account: 8,
            maker_fee: Decimal::new(1, 2),
            taker_fee: Decimal::new(2, 2),
            maker_remaining: Decimal::ZERO,
            taker_remaining: Decimal::ZERO,
        };
        let mut b = EventBalances::default();
        b.apply(&Event::TradeExecuted(t));
        let m = t.market;
        assert_eq!(b.accounts[&7].usd, Decimal::new(-1001, 2));
        assert_eq!(b.accounts[&7].gpu(&m), Decimal::from(4));
        assert_eq!(b.accounts[&8].usd, Decimal::new(998, 2));
        assert_eq!(b.accounts[&8].gpu(&m), Decimal::from(-4));
        assert_eq!(b.accounts[&FEE_ACCOUNT].usd, Decimal::new(3, 2));
        let sum: Decimal = b.accounts.values().map(|a| a.usd).sum();
        assert_eq!(sum, Decimal::ZERO);
    }
}
