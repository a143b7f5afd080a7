//! The delivery check of `gpux replay audit`: every GPU scheduled for delivery
//! was a provider's own inventory, delivered once, through the trades it names.
//!
//! Owns [`DeliveryAudit`], fed every event in ledger order, from events alone (it
//! never asks the engine). It checks, per book (a market's slot):
//!
//! - **own inventory, once**: per provider, the GPUs its schedule entries deliver
//!   plus its expired inventory are at most the capacity it added minus removed
//!   there;
//! - **a consistent trade chain**: an entry's trades are trades of its book; the
//!   first is a sale by the provider, the last a purchase by the holder, and each
//!   buyer is the next trade's seller; no trade carries more GPUs through entries
//!   than it traded; an entry with no trades is the provider's own GPUs held by
//!   itself;
//! - **the gate's sums**: at `slot_closed`, its `scheduled` and `expired` equal the
//!   sums of the slot's entries and expiries, and together they equal the capacity
//!   added minus removed in the slot (every GPU is delivered or expired);
//! - **what each account held**: at `slot_closed`, each account's GPUs in the slot
//!   (recomputed from events by the caller's balances) equal what the schedule
//!   delivers to it plus its expired inventory.
//!
//! Trades are remembered per open book and forgotten at its gate, so memory is
//! bounded by the open books' trades.

use std::collections::{BTreeMap, HashMap};

use gpux_engine::event::{DeliveryScheduled, SlotClosed, TradeExecuted};
use gpux_engine::{AccountId, Event, Side, TradeId};
use rust_decimal::Decimal;

use crate::balances::{key_name, range_slots, EventBalances, SlotKey};

/// One trade as the chain check needs it.
#[derive(Debug, Clone, Copy)]
struct Link {
    seller: AccountId,
    buyer: AccountId,
    quantity: Decimal,
    /// GPUs of this trade that schedule entries carried so far.
    carried: Decimal,
}

/// One open book's delivery figures.
#[derive(Debug, Default)]
struct BookFigures {
    trades: HashMap<TradeId, Link>,
    /// Per provider: capacity added − removed.
    capacity: BTreeMap<AccountId, Decimal>,
    /// Per provider: GPUs its entries deliver.
    delivered: BTreeMap<AccountId, Decimal>,
    /// Per account: GPUs the schedule gives it as holder.
    received: BTreeMap<AccountId, Decimal>,
    /// Per provider: inventory expired.
    expired: BTreeMap<AccountId, Decimal>,
}

/// The delivery check's state (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct DeliveryAudit {
    books: BTreeMap<SlotKey, BookFigures>,
    /// Schedule entries checked.
    pub entries: u64,
    /// GPUs scheduled for delivery, all slots.
    pub scheduled: Decimal,
    /// GPUs expired unsold, all slots.
    pub expired: Decimal,
    /// Gates closed.
    pub slots_closed: u64,
}

fn sum(m: &BTreeMap<AccountId, Decimal>) -> Decimal {
    m.values().copied().sum()
}

impl DeliveryAudit {
    /// Folds one event; `balances` must already include the events before it (and
    /// not yet this one, for `slot_closed`). `Err` says what is wrong.
    pub fn apply(&mut self, event: &Event, balances: &EventBalances) -> Result<(), String> {
        match event {
            Event::CapacityAdded(c) | Event::CapacityRemoved(c) => {
                let q = if matches!(event, Event::CapacityAdded(_)) {
                    c.quantity
                } else {
                    -c.quantity
                };
                for slot in range_slots(c.from_slot, c.to_slot) {
                    let b = self.books.entry((c.market, slot)).or_default();
                    *b.capacity.entry(c.account).or_default() += q;
                }
            }
            Event::TradeExecuted(t) => self.trade(t),
            Event::DeliveryScheduled(d) => self.entry(d)?,
            Event::InventoryExpired(e) => {
                let b = self.books.entry((e.market, e.slot)).or_default();
                *b.expired.entry(e.account).or_default() += e.quantity;
                self.expired += e.quantity;
                let own = b.capacity.get(&e.account).copied().unwrap_or_default();
                let out = b.delivered.get(&e.account).copied().unwrap_or_default()
                    + b.expired[&e.account];
                if out > own {
                    return Err(format!(
                        "{}: provider {} delivers and expires {out} GPUs but listed {own}",
                        key_name(&(e.market, e.slot)),
                        e.account
                    ));
                }
            }
            Event::SlotClosed(c) => self.close(c, balances)?,
            _ => {}
        }
        Ok(())
    }

    fn trade(&mut self, t: &TradeExecuted) {
        let (seller, buyer) = match t.taker_side {
            Side::Buy => (t.maker_account, t.taker_account),
            Side::Sell => (t.taker_account, t.maker_account),
        };
        let b = self.books.entry((t.market, t.slot)).or_default();
        b.trades.insert(
            t.trade,
            Link {
                seller,
                buyer,
                quantity: t.quantity,
                carried: Decimal::ZERO,
            },
        );
    }

    fn entry(&mut self, d: &DeliveryScheduled) -> Result<(), String> {
        let key = (d.market, d.slot);
        let name = || format!("{} entry {}", key_name(&key), d.entry);
        let b = self.books.entry(key).or_default();
        let mut at = d.provider;
        for id in &d.trades {
            let link = b
                .trades
                .get_mut(id)
                .ok_or_else(|| format!("{}: trade {id} is not a trade of this slot", name()))?;
            if link.seller != at {
                return Err(format!(
                    "{}: trade {id} was sold by {}, but the chain had the GPUs at {at}",
                    name(),
                    link.seller
                ));
            }
            link.carried += d.quantity;
            if link.carried > link.quantity {
                return Err(format!(
                    "{}: trade {id} carries {} GPUs through the schedule but traded {}",
                    name(),
                    link.carried,
                    link.quantity
                ));
            }
            at = link.buyer;
        }
        if at != d.holder {
            return Err(format!(
                "{}: the trades end at account {at}, not at the holder {}",
                name(),
                d.holder
            ));
        }
        *b.delivered.entry(d.provider).or_default() += d.quantity;
        *b.received.entry(d.holder).or_default() += d.quantity;
        let own = b.capacity.get(&d.provider).copied().unwrap_or_default();
        let out =
            b.delivered[&d.provider] + b.expired.get(&d.provider).copied().unwrap_or_default();
        if out > own {
            return Err(format!(
                "{}: provider {} delivers {out} GPUs but listed {own} of its own",
                name(),
                d.provider
            ));
        }
        self.entries += 1;
        self.scheduled += d.quantity;
        Ok(())
    }

    fn close(&mut self, c: &SlotClosed, balances: &EventBalances) -> Result<(), String> {
        let key = (c.market, c.slot);
        let name = key_name(&key);
        let b = self.books.remove(&key).unwrap_or_default();
        let (delivered, expired) = (sum(&b.delivered), sum(&b.expired));
        if delivered != c.scheduled || expired != c.expired {
            return Err(format!(
                "{name}: slot_closed says {} scheduled and {} expired; its entries sum to {delivered} and {expired}",
                c.scheduled, c.expired
            ));
        }
        let listed = sum(&b.capacity);
        if delivered + expired != listed {
            return Err(format!(
                "{name}: {delivered} GPUs delivered and {expired} expired, but {listed} were listed"
            ));
        }
        let accounts: std::collections::BTreeSet<AccountId> = balances
            .holders(&key)
            .chain(b.received.keys().copied())
            .chain(b.expired.keys().copied())
            .collect();
        for id in accounts {
            let held = balances
                .accounts
                .get(&id)
                .map_or(Decimal::ZERO, |t| t.gpu(&key));
            let out = b.received.get(&id).copied().unwrap_or_default()
                + b.expired.get(&id).copied().unwrap_or_default();
            if held != out {
                return Err(format!(
                    "{name}: account {id} held {held} GPUs at the gate, but the schedule delivers it {out} (expired included)"
                ));
            }
        }
        self.slots_closed += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpux_engine::event::{CapacityMoved, InventoryExpired};

    const SLOT: u64 = 3_600;

    fn d(n: i64) -> Decimal {
        Decimal::from(n)
    }

    fn market() -> gpux_engine::MarketId {
        "h100.us".parse().unwrap()
    }

    /// Provider 1 lists 5 GPUs; it sells 3 to account 2, which resells 2 to 3.
    fn trading() -> Vec<Event> {
        let trade = |trade, seller, buyer, q| {
            Event::TradeExecuted(TradeExecuted {
                trade,
                market: market(),
                slot: SLOT,
                price: d(2),
                quantity: d(q),
                taker_side: Side::Buy,
                maker_order: trade,
                maker_account: seller,
                taker_order: 100 + trade,
                taker_account: buyer,
                maker_fee: Decimal::ZERO,
                taker_fee: Decimal::ZERO,
                maker_remaining: Decimal::ZERO,
                taker_remaining: Decimal::ZERO,
            })
        };
        vec![
            Event::CapacityAdded(CapacityMoved {
                account: 1,
                market: market(),
                from_slot: SLOT,
                to_slot: SLOT,
                quantity: d(5),
            }),
            trade(1, 1, 2, 3),
            trade(2, 2, 3, 2),
        ]
    }

    fn entry(entry: u64, provider: u64, holder: u64, q: i64, trades: &[u64]) -> Event {
        Event::DeliveryScheduled(DeliveryScheduled {
            entry,
            market: market(),
            slot: SLOT,
            provider,
            holder,
            quantity: d(q),
            trades: trades.to_vec(),
            report_until: SLOT + 7_200,
            dispute_until: SLOT + 10_800,
        })
    }

    fn gate(scheduled: i64, expired: i64) -> Vec<Event> {
        vec![
            Event::InventoryExpired(InventoryExpired {
                account: 1,
                market: market(),
                slot: SLOT,
                quantity: d(expired),
            }),
            Event::SlotClosed(SlotClosed {
                market: market(),
                slot: SLOT,
                scheduled: d(scheduled),
                expired: d(expired),
            }),
        ]
    }

    /// Feeds `events` in order; the first complaint.
    fn run(events: Vec<Event>) -> Result<DeliveryAudit, String> {
        let (mut audit, mut balances) = (DeliveryAudit::default(), EventBalances::default());
        for e in &events {
            audit.apply(e, &balances)?;
            balances.apply(e);
        }
        Ok(audit)
    }

    fn with(entries: Vec<Event>, gate_events: Vec<Event>) -> Vec<Event> {
        trading()
            .into_iter()
            .chain(entries)
            .chain(gate_events)
            .collect()
    }

    #[test]
    fn a_resold_gpu_is_delivered_once_by_its_provider_along_its_trades() {
        let a = run(with(
            vec![entry(1, 1, 2, 1, &[1]), entry(2, 1, 3, 2, &[1, 2])],
            gate(3, 2),
        ))
        .unwrap();
        assert_eq!(
            (a.entries, a.scheduled, a.expired, a.slots_closed),
            (2, d(3), d(2), 1)
        );
    }

    #[test]
    fn a_chain_that_skips_a_seller_is_refused() {
        let e = run(with(vec![entry(1, 1, 3, 2, &[2])], vec![])).unwrap_err();
        assert!(e.contains("sold by 2"), "{e}");
    }

    #[test]
    fn gpus_beyond_the_providers_own_inventory_are_refused() {
        let e = run(with(vec![entry(1, 4, 4, 1, &[])], vec![])).unwrap_err();
        assert!(e.contains("provider 4 delivers 1 GPUs but listed 0"), "{e}");
    }

    #[test]
    fn a_trade_cannot_carry_more_than_it_traded() {
        let e = run(with(
            vec![entry(1, 1, 2, 3, &[1]), entry(2, 1, 2, 1, &[1])],
            vec![],
        ))
        .unwrap_err();
        assert!(e.contains("trade 1 carries 4 GPUs"), "{e}");
    }

    #[test]
    fn the_gates_sums_must_be_its_entries() {
        let e = run(with(
            vec![entry(1, 1, 2, 1, &[1]), entry(2, 1, 3, 2, &[1, 2])],
            gate(4, 2),
        ))
        .unwrap_err();
        assert!(e.contains("slot_closed says 4 scheduled"), "{e}");
    }

    #[test]
    fn each_holder_must_receive_what_it_held() {
        // The sums are right, but account 3's GPUs were scheduled to account 2.
        let e = run(with(vec![entry(1, 1, 2, 3, &[1])], gate(3, 2))).unwrap_err();
        assert!(e.contains("held"), "{e}");
    }
}
