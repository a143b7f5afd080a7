//! Gate closure: when engine time passes a slot's gate, trading in it stops and
//! its delivery schedule is fixed.
//!
//! For each slot whose gate passed (oldest gate first, then market, then slot), in
//! one step: every resting order in it is cancelled (reason `slot_closed`, bids
//! then asks, each side in priority order), releasing its hold; then, account by
//! account in id order, each bought [`Lot`](crate::account::Lot) still held becomes
//! one `delivery_scheduled` entry (provider, final holder, GPUs, the chain of trades)
//! in purchase order, and unsold inventory one `inventory_expired`; last,
//! `slot_closed` sums them up and the slot's book and holdings are gone. The
//! provenance rule that makes every entry name exactly one provider is the one of
//! [`Holding::take`](crate::account::Holding::take): a sale comes from the seller's
//! own inventory first, then from its purchases in the order it made them.

use crate::account::Holding;
use crate::book::OrderBook;
use crate::event::{DeliveryScheduled, Event, EventSink, InventoryExpired, SlotClosed};
use crate::state::Engine;
use crate::types::{AccountId, CancelReason, OrderId, Side};

impl<B: OrderBook> Engine<B> {
    /// Closes every open slot whose gate time is before `ts_ns`.
    pub(super) fn close_gates<S: EventSink>(&mut self, ts_ns: u64, out: &mut S) {
        while let Some(&(closes_at, mi, slot)) = self.gates.first() {
            if closes_at >= ts_ns {
                break;
            }
            self.gates.pop_first();
            let bi = self.markets[mi].slots[&slot];
            self.close_slot(bi, out);
        }
    }

    /// Closes one slot: cancels its orders, schedules its deliveries, expires its
    /// unsold inventory, and drops its book.
    fn close_slot<S: EventSink>(&mut self, bi: usize, out: &mut S) {
        let mut resting: Vec<OrderId> = Vec::with_capacity(self.bk(bi).book.len());
        for side in [Side::Buy, Side::Sell] {
            self.bk(bi).book.visit(side, &mut |o| {
                resting.push(o.id);
                true
            });
        }
        for id in resting {
            self.cancel_resting(bi, id, CancelReason::SlotClosed, out);
        }
        let book = self.books[bi].take().expect("book index in use");
        let mut holdings: Vec<(AccountId, Holding)> = book.holdings.into_iter().collect();
        holdings.sort_unstable_by_key(|&(id, _)| id);
        let (market, slot, spec) = (book.spec.id, book.slot, &book.spec);
        let (mut scheduled, mut expired) = (0u64, 0u64);
        for (holder, holding) in holdings {
            debug_assert_eq!(holding.gpus.held, 0, "orders were cancelled first");
            for lot in holding.bought {
                scheduled += lot.lots;
                let entry = self.next_entry_id;
                self.next_entry_id += 1;
                out.push(Event::DeliveryScheduled(DeliveryScheduled {
                    entry,
                    market,
                    slot,
                    provider: lot.provider,
                    holder,
                    quantity: spec.quantity(lot.lots),
                    trades: lot.trades.to_vec(),
                }));
            }
            if holding.inventory > 0 {
                expired += holding.inventory;
                out.push(Event::InventoryExpired(InventoryExpired {
                    account: holder,
                    market,
                    slot,
                    quantity: spec.quantity(holding.inventory),
                }));
            }
        }
        debug_assert_eq!(book.lots_total, scheduled + expired, "GPUs conserved");
        self.markets[book.market].slots.remove(&slot);
        self.free_books.insert(bi);
        out.push(Event::SlotClosed(SlotClosed {
            market,
            slot,
            scheduled: book.spec.quantity(scheduled),
            expired: book.spec.quantity(expired),
        }));
    }
}
