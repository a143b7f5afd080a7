//! Gate closure: when engine time passes a slot's gate, trading in it stops and
//! its delivery schedule is fixed.
//!
//! Slots whose gate passed close oldest gate first (then by market, then slot),
//! each in three steps: every resting order in it is cancelled (reason
//! `slot_closed`, bids then asks, each best first), releasing its hold; then,
//! account by account in id order, each bought [`Lot`](crate::account::Lot) still
//! held becomes one `delivery_scheduled` entry (provider, final holder, GPUs, the
//! chain of trades) — resellable lots in purchase order, then lots kept to the gate
//! — and unsold inventory one `inventory_expired`; last, `slot_closed` sums them
//! up and the slot's book is gone. The provenance rule that makes every entry name
//! exactly one provider is the one of [`Holding::take`](crate::account::Holding::take):
//! a sale comes from the seller's own inventory first, then from its purchases in
//! the order it made them.
//!
//! Each entry then waits for its delivery to be reported, disputed and settled
//! (`delivery.rs`).
//!
//! The work before one command is bounded by
//! [`GATE_CLOSURE_EVENTS_PER_COMMAND_MAX`] events; a slot not finished goes on
//! before the next command, from where it stopped (its state says where: what is
//! left on its book and in its holdings).

use crate::account::Holding;
use crate::book::OrderBook;
use crate::delivery::Entry;
use crate::event::{DeliveryScheduled, Event, EventSink, InventoryExpired, SlotClosed};
use crate::limits::GATE_CLOSURE_EVENTS_PER_COMMAND_MAX;
use crate::slot::NANOS_PER_SEC;
use crate::state::Engine;
use crate::types::{AccountId, CancelReason, Side};

impl<B: OrderBook> Engine<B> {
    /// Closes the open slots whose gate time is before `ts_ns`, within the
    /// per-command bound.
    pub(super) fn close_gates<S: EventSink>(&mut self, ts_ns: u64, out: &mut S) {
        let mut budget = GATE_CLOSURE_EVENTS_PER_COMMAND_MAX;
        while let Some(&(closes_at, mi, slot)) = self.gates.first() {
            if closes_at >= ts_ns {
                break;
            }
            let bi = self.markets[mi].slot_books[&slot];
            if !self.close_slot(bi, &mut budget, out) {
                break;
            }
            self.gates.pop_first();
        }
    }

    /// Goes on closing one slot, spending at most `budget` events. Returns whether
    /// the slot is now closed (its book dropped).
    fn close_slot<S: EventSink>(&mut self, bi: usize, budget: &mut usize, out: &mut S) -> bool {
        for side in [Side::Buy, Side::Sell] {
            while let Some(id) = self.bk(bi).book.front(side).map(|o| o.id) {
                if *budget == 0 {
                    return false;
                }
                *budget -= 1;
                self.cancel_resting(bi, id, CancelReason::SlotClosed, out);
            }
        }
        let holders: Vec<(AccountId, u32)> = self
            .holders(bi)
            .into_iter()
            .map(|(id, ix, _)| (id, ix))
            .collect();
        for holder in holders {
            if !self.schedule_holder(bi, holder, budget, out) {
                return false;
            }
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let book = self.books[bi].take().expect("book index in use");
        debug_assert_eq!(book.lots_total, 0, "every GPU scheduled or expired");
        self.markets[book.market].slots.remove(&book.slot);
        self.markets[book.market].slot_books.remove(&book.slot);
        self.free_books.insert(bi);
        out.push(Event::SlotClosed(SlotClosed {
            market: book.spec.id,
            slot: book.slot,
            scheduled: book.spec.quantity(book.scheduled),
            expired: book.spec.quantity(book.expired),
        }));
        true
    }

    /// Emits one holder's schedule entries (one per lot, resellable lots then kept
    /// ones) and its expired inventory, one event per `budget` unit, taking each
    /// out of its holding; drops the holding once empty. Returns whether it is done.
    fn schedule_holder<S: EventSink>(
        &mut self,
        bi: usize,
        (holder, holder_ix): (AccountId, u32),
        budget: &mut usize,
        out: &mut S,
    ) -> bool {
        loop {
            if *budget == 0 {
                return false;
            }
            let entry = self.next_entry_id;
            let book = self.books[bi].as_mut().expect("book index in use");
            let (market, slot) = (book.spec.id, book.slot);
            let h = book.holdings.get_mut(holder_ix).expect("a holder");
            debug_assert_eq!(h.gpus.held, 0, "orders were cancelled first");
            let lot = match book.lots.pop_front(&mut h.bought) {
                Some(lot) => {
                    h.gpus.available -= lot.lots;
                    Some(lot)
                }
                None => book.lots.pop_kept(holder),
            };
            let event = if let Some(lot) = lot {
                self.next_entry_id += 1;
                book.lots_total -= lot.lots;
                book.scheduled += lot.lots;
                let (report_until, dispute_until) = book.spec.delivery_deadlines(slot);
                let event = Event::DeliveryScheduled(DeliveryScheduled {
                    entry,
                    market,
                    slot,
                    provider: lot.provider,
                    holder,
                    quantity: book.spec.quantity(lot.lots),
                    trades: lot.trades.to_vec(),
                    report_until,
                    dispute_until,
                });
                let due_ns = report_until * NANOS_PER_SEC;
                self.dues.insert((due_ns, entry));
                self.entries.insert(
                    entry,
                    Entry {
                        market: book.market,
                        slot,
                        provider: lot.provider,
                        holder,
                        lots: lot.lots,
                        trades: lot.trades,
                        reported: None,
                        disputed: None,
                        due_ns: Some(due_ns),
                    },
                );
                event
            } else if h.inventory > 0 {
                let lots = std::mem::take(&mut h.inventory);
                h.gpus.available -= lots;
                book.lots_total -= lots;
                book.expired += lots;
                Event::InventoryExpired(InventoryExpired {
                    account: holder,
                    market,
                    slot,
                    quantity: book.spec.quantity(lots),
                })
            } else {
                *h = Holding::default();
                return true;
            };
            *budget -= 1;
            out.push(event);
        }
    }
}
