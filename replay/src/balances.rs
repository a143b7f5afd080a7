//! Balances recomputed from events alone, independently of the engine: the
//! arithmetic that statements and the audit share.
//!
//! GPUs are counted per **book**: a market and a delivery slot ([`SlotKey`]).
//! Totals are `available + held` (holds move balances between the two halves, so
//! they do not change totals): deposits add USD and withdrawals take it; capacity
//! added and removed change GPUs in every slot of their range; a fill moves GPUs of
//! its slot from seller to buyer and USD the other way — the buyer pays
//! `price × quantity + fee`, the seller receives `price × quantity − fee`, and the
//! fee account (0) receives both fees. When a slot's gate closes (`slot_closed`)
//! its GPUs leave every account: they are delivered or expired, which the audit's
//! delivery check accounts for.

use std::collections::{BTreeMap, BTreeSet};

use gpux_engine::event::TradeExecuted;
use gpux_engine::slot::{format_slot, SLOT_SECS};
use gpux_engine::{AccountId, Event, MarketId, Side, FEE_ACCOUNT};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

/// One book: a market and a delivery slot (unix seconds of its start).
pub type SlotKey = (MarketId, u64);

/// Every slot of a capacity range `from..=to`.
pub(crate) fn range_slots(from: u64, to: u64) -> impl Iterator<Item = u64> {
    (from..=to).step_by(SLOT_SECS as usize)
}

/// `market slot` as people read it: `h100-sxm.us-east 2026-12-07T09:00Z`.
pub fn key_name((market, slot): &SlotKey) -> String {
    format!("{market} {}", format_slot(*slot))
}

/// GPUs per book, written as a list of `{market, slot, gpus}` (slot in human form).
pub(crate) fn serialize_books<S: Serializer>(
    m: &BTreeMap<SlotKey, Decimal>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Row {
        market: MarketId,
        slot: String,
        gpus: Decimal,
    }
    s.collect_seq(m.iter().map(|(&(market, slot), &gpus)| Row {
        market,
        slot: format_slot(slot),
        gpus,
    }))
}

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
    /// Change of its GPUs in the trade's slot.
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
    /// GPUs per open book, available + held (books touched and not closed).
    #[serde(rename = "gpus", serialize_with = "serialize_books")]
    pub gpu_hours: BTreeMap<SlotKey, Decimal>,
}

impl EventTotals {
    /// GPUs in a book (zero if never touched).
    pub fn gpu(&self, key: &SlotKey) -> Decimal {
        self.gpu_hours.get(key).copied().unwrap_or_default()
    }

    pub(crate) fn add_gpu(&mut self, key: SlotKey, q: Decimal) {
        *self.gpu_hours.entry(key).or_default() += q;
    }
}

/// Every account's totals, the exchange's deposits and withdrawals, and each
/// book's capacity added and removed, from events alone.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventBalances {
    pub accounts: BTreeMap<AccountId, EventTotals>,
    pub deposits: Decimal,
    pub withdrawals: Decimal,
    /// Per book: GPUs added, removed.
    pub capacity: BTreeMap<SlotKey, (Decimal, Decimal)>,
    /// Books whose gate closed.
    pub closed: BTreeSet<SlotKey>,
    /// Accounts that ever held GPUs of an open book (so a gate closure visits
    /// only them).
    holders: BTreeMap<SlotKey, BTreeSet<AccountId>>,
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
            Event::CapacityAdded(c) | Event::CapacityRemoved(c) => {
                let added = matches!(event, Event::CapacityAdded(_));
                for slot in range_slots(c.from_slot, c.to_slot) {
                    let key = (c.market, slot);
                    let cap = self.capacity.entry(key).or_default();
                    if added {
                        cap.0 += c.quantity;
                    } else {
                        cap.1 += c.quantity;
                    }
                    let q = if added { c.quantity } else { -c.quantity };
                    self.gpu(c.account, key, q);
                }
            }
            Event::TradeExecuted(t) => {
                for leg in legs(t) {
                    self.account(leg.account).usd += leg.usd;
                    self.gpu(leg.account, (t.market, t.slot), leg.gpu_hours);
                }
                self.account(FEE_ACCOUNT).usd += t.maker_fee + t.taker_fee;
            }
            Event::SlotClosed(c) => {
                let key = (c.market, c.slot);
                for id in self.holders.remove(&key).unwrap_or_default() {
                    self.account(id).gpu_hours.remove(&key);
                }
                self.closed.insert(key);
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

    /// Accounts that held GPUs of an open book at some point.
    pub fn holders(&self, key: &SlotKey) -> impl Iterator<Item = AccountId> + '_ {
        self.holders.get(key).into_iter().flatten().copied()
    }

    fn gpu(&mut self, id: AccountId, key: SlotKey, q: Decimal) {
        self.holders.entry(key).or_default().insert(id);
        self.account(id).add_gpu(key, q);
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
            slot: 3600,
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
        let m = (t.market, t.slot);
        assert_eq!(b.accounts[&7].usd, Decimal::new(-1001, 2));
        assert_eq!(b.accounts[&7].gpu(&m), Decimal::from(4));
        assert_eq!(b.accounts[&8].usd, Decimal::new(998, 2));
        assert_eq!(b.accounts[&8].gpu(&m), Decimal::from(-4));
        assert_eq!(b.accounts[&FEE_ACCOUNT].usd, Decimal::new(3, 2));
        let sum: Decimal = b.accounts.values().map(|a| a.usd).sum();
        assert_eq!(sum, Decimal::ZERO);
    }
}
