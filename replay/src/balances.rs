//! Balances recomputed from events alone, independently of the engine: the
//! arithmetic that statements and the audit share.
//!
//! GPUs are counted per **book**: a market and a delivery slot ([`SlotKey`]).
//! Totals are `available + held` (holds move balances between the two halves, so
//! they do not change totals): deposits add USD and withdrawals take it; capacity
//! added and removed change GPUs in every slot of their range; a fill moves GPUs of
//! its slot from seller to buyer, and the buyer's `price × quantity + fee` into its
//! **escrow**, while the seller is owed `price × quantity − fee` (**pending**).
//! When a slot's gate closes (`slot_closed`) its GPUs leave every account: they are
//! delivered or expired, which the audit's delivery check accounts for. Each
//! `trade_settled` then pays the seller, refunds the buyer and pays the fee
//! account, out of the trade's escrow: [`EventBalances`] recomputes every such
//! part from the trade alone (its price, quantity and fees) with the protocol's
//! rule — each part's share of what is left of the trade, rounded down to the
//! micro-USD, the delivered share paid — and records any settlement event that
//! disagrees.

use std::collections::{BTreeMap, BTreeSet};

use gpux_engine::event::{TradeExecuted, TradeSettled};
use gpux_engine::slot::{format_slot, SLOT_SECS};
use gpux_engine::{AccountId, Event, MarketId, Side, TradeId, FEE_ACCOUNT};
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
    /// Change of the account's USD total (a buyer's goes into escrow).
    pub usd: Decimal,
    /// What a seller is owed once the GPUs are delivered.
    pub owed: Decimal,
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
            Side::Sell => Decimal::ZERO,
        },
        owed: match side {
            Side::Buy => Decimal::ZERO,
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
    /// USD paid for GPUs not yet delivered.
    pub escrow: Decimal,
    /// USD owed for GPUs sold, until they are delivered.
    pub pending: Decimal,
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
    /// What is left in escrow of each trade not wholly settled.
    escrows: BTreeMap<TradeId, TradeEscrow>,
    /// The first `trade_settled` whose amounts differ from the recomputation.
    pub settlement_mismatch: Option<String>,
}

/// What is left in escrow of one trade, in micro-USD and GPUs.
#[derive(Debug, Clone)]
struct TradeEscrow {
    buyer: AccountId,
    seller: AccountId,
    quantity: Decimal,
    notional: i128,
    buyer_fee: i128,
    seller_fee: i128,
}

/// `micros × b / c`, rounded down (`0 <= b <= c`, `c > 0`), exactly.
fn part(micros: i128, b: Decimal, c: Decimal) -> i128 {
    let scale = b.scale().max(c.scale());
    let int = |d: Decimal| {
        let mut d = d;
        d.rescale(scale);
        d.mantissa()
    };
    micros * int(b) / int(c)
}

/// USD as micro-USD.
fn micros(usd: Decimal) -> i128 {
    (usd * Decimal::from(1_000_000)).trunc().mantissa()
}

/// Micro-USD as USD.
fn usd(micros: i128) -> Decimal {
    Decimal::from_i128_with_scale(micros, 6).normalize()
}

/// A settled part of a trade, as the protocol's rule computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settled {
    pub buyer: AccountId,
    pub seller: AccountId,
    pub paid: Decimal,
    pub refunded: Decimal,
    pub fees: Decimal,
    /// Leaves the buyer's escrow.
    pub escrow_out: Decimal,
    /// Leaves the seller's pending.
    pub claim: Decimal,
}

impl TradeEscrow {
    /// Settles `quantity` of the trade's GPUs, `delivered` of them delivered.
    fn settle(&mut self, quantity: Decimal, delivered: Decimal) -> Option<Settled> {
        if quantity <= Decimal::ZERO || quantity > self.quantity || delivered > quantity {
            return None;
        }
        let notional = part(self.notional, quantity, self.quantity);
        let buyer_fee = part(self.buyer_fee, quantity, self.quantity);
        let seller_fee = part(self.seller_fee, quantity, self.quantity);
        self.quantity -= quantity;
        self.notional -= notional;
        self.buyer_fee -= buyer_fee;
        self.seller_fee -= seller_fee;
        let paid_notional = part(notional, delivered, quantity);
        let paid_buyer_fee = part(buyer_fee, delivered, quantity);
        let paid_seller_fee = part(seller_fee, delivered, quantity);
        let escrow_out = notional + buyer_fee;
        let (paid, fees) = (
            paid_notional - paid_seller_fee,
            paid_buyer_fee + paid_seller_fee,
        );
        Some(Settled {
            buyer: self.buyer,
            seller: self.seller,
            paid: usd(paid),
            refunded: usd(escrow_out - paid - fees),
            fees: usd(fees),
            escrow_out: usd(escrow_out),
            claim: usd(notional - seller_fee),
        })
    }
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
            Event::TradeExecuted(t) => self.trade(t),
            Event::TradeSettled(s) => self.settle(s),
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

    /// A fill: GPUs move; the buyer's USD goes into escrow, the seller is owed.
    fn trade(&mut self, t: &TradeExecuted) {
        for leg in legs(t) {
            let a = self.account(leg.account);
            a.usd += leg.usd;
            match leg.side {
                Side::Buy => a.escrow -= leg.usd,
                Side::Sell => a.pending += leg.owed,
            }
            self.gpu(leg.account, (t.market, t.slot), leg.gpu_hours);
        }
        let [maker, taker] = legs(t);
        let (buyer, seller) = match t.taker_side {
            Side::Buy => (taker, maker),
            Side::Sell => (maker, taker),
        };
        self.escrows.insert(
            t.trade,
            TradeEscrow {
                buyer: buyer.account,
                seller: seller.account,
                quantity: t.quantity,
                notional: micros(notional(t)),
                buyer_fee: micros(buyer.fee),
                seller_fee: micros(seller.fee),
            },
        );
    }

    /// A settled part of a trade, recomputed from the trade and checked against
    /// the event; its amounts move.
    fn settle(&mut self, s: &TradeSettled) {
        let settled = self
            .escrows
            .get_mut(&s.trade)
            .and_then(|e| e.settle(s.quantity, s.delivered));
        let Some(r) = settled else {
            self.mismatch(format!(
                "trade {} settles {} of which {} delivered, more than is left of it in escrow",
                s.trade, s.quantity, s.delivered
            ));
            return;
        };
        if self
            .escrows
            .get(&s.trade)
            .is_some_and(|e| e.quantity.is_zero())
        {
            self.escrows.remove(&s.trade);
        }
        if (r.buyer, r.seller, r.paid, r.refunded, r.fees)
            != (s.buyer, s.seller, s.paid, s.refunded, s.fees)
        {
            self.mismatch(format!(
                "trade {} for delivery {}: the event pays {} to {}, refunds {} to {}, fees {}; \
                 the trade gives {} to {}, {} to {}, fees {}",
                s.trade,
                s.entry,
                s.paid,
                s.seller,
                s.refunded,
                s.buyer,
                s.fees,
                r.paid,
                r.seller,
                r.refunded,
                r.buyer,
                r.fees
            ));
        }
        let buyer = self.account(r.buyer);
        buyer.escrow -= r.escrow_out;
        buyer.usd += r.refunded;
        let seller = self.account(r.seller);
        seller.pending -= r.claim;
        seller.usd += r.paid;
        self.account(FEE_ACCOUNT).usd += r.fees;
    }

    fn mismatch(&mut self, what: String) {
        self.settlement_mismatch.get_or_insert(what);
    }

    /// USD still in escrow, over all trades (equals the accounts' escrow).
    pub fn escrowed(&self) -> Decimal {
        self.escrows
            .values()
            .map(|e| usd(e.notional + e.buyer_fee))
            .sum()
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
        // The buyer (maker) pays 10 + 0.01 into escrow; the seller is owed
        // 10 - 0.02; nothing is paid before delivery.
        assert_eq!(b.accounts[&7].usd, Decimal::new(-1001, 2));
        assert_eq!(b.accounts[&7].escrow, Decimal::new(1001, 2));
        assert_eq!(b.accounts[&7].gpu(&m), Decimal::from(4));
        assert_eq!(b.accounts[&8].usd, Decimal::ZERO);
        assert_eq!(b.accounts[&8].pending, Decimal::new(998, 2));
        assert_eq!(b.accounts[&8].gpu(&m), Decimal::from(-4));
        assert!(!b.accounts.contains_key(&FEE_ACCOUNT));
        // 3 of the 4 GPUs delivered: 7.5 less 3/4 of the seller's fee paid, the
        // rest of the buyer's escrow refunded, 3/4 of both fees charged.
        let settled = |quantity: i64, delivered: i64, paid, refunded, fees| {
            Event::TradeSettled(TradeSettled {
                entry: 1,
                trade: 1,
                buyer: 7,
                seller: 8,
                quantity: Decimal::from(quantity),
                delivered: Decimal::from(delivered),
                paid,
                refunded,
                fees,
            })
        };
        b.apply(&settled(
            4,
            3,
            Decimal::new(7485, 3),
            Decimal::new(25025, 4),
            Decimal::new(225, 4),
        ));
        assert_eq!(b.settlement_mismatch, None);
        assert_eq!(
            (b.accounts[&7].escrow, b.accounts[&8].pending),
            (Decimal::ZERO, Decimal::ZERO)
        );
        assert_eq!(b.accounts[&8].usd, Decimal::new(7485, 3));
        assert_eq!(b.accounts[&FEE_ACCOUNT].usd, Decimal::new(225, 4));
        let sum: Decimal = b.accounts.values().map(|a| a.usd + a.escrow).sum();
        assert_eq!(sum, Decimal::ZERO);
        assert_eq!(b.escrowed(), Decimal::ZERO);
        // A settlement beyond the trade, or with other amounts, is a mismatch.
        b.apply(&settled(1, 1, Decimal::ONE, Decimal::ZERO, Decimal::ZERO));
        assert!(b.settlement_mismatch.is_some());
    }
}
