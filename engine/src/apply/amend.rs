//! `amend_order`: a resting order's new price or quantity.
//!
//! [`check_amend`](Engine::check_amend) runs every check without changing
//! anything and works out the new hold. The order then changes in place when it
//! keeps its priority (same price, no more quantity), or is re-queued: taken off
//! the book and matched again as if new, so an amend that crosses trades first.

use crate::account::Balance;
use crate::book::{Handle, OrderBook, RestingOrder};
use crate::command::AmendOrder;
use crate::event::{Event, EventSink, OrderAmended};
use crate::matching::{MatchEnd, Taker};
use crate::reject::RejectReason;
use crate::risk;
use crate::state::{Engine, OpenOrder};
use crate::types::{CancelReason, Side};

/// An `amend_order` that passed every check.
struct Amendment {
    /// Its account's index.
    ix: u32,
    /// The market's index.
    bi: usize,
    /// The order as it rests now.
    order: RestingOrder,
    /// Its handle in its book.
    handle: Handle,
    /// The new limit price, in ticks.
    price: i64,
    /// The new quantity, in lots.
    lots: u64,
    /// Same price and no more quantity: it keeps its place in the queue.
    keeps_priority: bool,
    /// What the order holds now.
    old_hold: u64,
    /// What it holds once amended.
    new_hold: u64,
}

impl<B: OrderBook> Engine<B> {
    /// Amends a resting order: checks it, moves the hold to the new size, reports
    /// it, then changes it in place or re-queues it.
    pub(super) fn amend<S: EventSink>(
        &mut self,
        c: &AmendOrder,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let a = self.check_amend(c)?;
        let side = a.order.side;
        risk::rehold(self.held_at(a.ix, side, a.bi), a.old_hold, a.new_hold);
        let (spec, slot) = (&self.bk(a.bi).spec, self.bk(a.bi).slot);
        out.push(Event::OrderAmended(OrderAmended {
            order: a.order.id,
            account: a.order.account,
            market: spec.id,
            slot,
            side,
            old_price: spec.price(a.order.price_ticks),
            old_quantity: spec.quantity(a.order.quantity_lots),
            price: spec.price(a.price),
            quantity: spec.quantity(a.lots),
            priority_kept: a.keeps_priority,
        }));
        if a.keeps_priority {
            if a.lots < a.order.quantity_lots {
                self.bk_mut(a.bi)
                    .book
                    .reduce(a.handle, a.order.quantity_lots - a.lots);
            }
            return Ok(());
        }
        self.requeue(&a, out);
        Ok(())
    }

    /// Every check of `amend_order`, in reject-code order, changing nothing.
    fn check_amend(&self, c: &AmendOrder) -> Result<Amendment, RejectReason> {
        if c.order_id.is_some() == c.client_order_id.is_some() {
            return Err(RejectReason::InvalidOrderRef);
        }
        if c.price.is_none() && c.quantity.is_none() {
            return Err(RejectReason::InvalidAmend);
        }
        let OpenOrder {
            ix,
            bi,
            handle,
            order,
        } = self.resolve_order(c.account, c.order_id, c.client_order_id)?;
        // Part-way through its closure (the bound left it for the next
        // commands), a slot whose gate passed trades no more.
        let book = self.bk(bi);
        if self.last_ts_ns > book.spec.closes_at_ns(book.slot) {
            return Err(RejectReason::SlotClosed);
        }
        let spec = &self.bk(bi).spec;
        let price = match c.price {
            Some(p) => spec.price_ticks(p)?,
            None => order.price_ticks,
        };
        let lots = match c.quantity {
            Some(q) => spec.order_lots(q)?,
            None => order.quantity_lots,
        };
        let keeps_priority = price == order.price_ticks && lots <= order.quantity_lots;
        let old_hold = risk::resting_hold(spec, order.side, order.price_ticks, order.quantity_lots);
        let new_hold = risk::resting_hold(spec, order.side, price, lots);
        let account = self.accounts.at(ix);
        let gpus = match order.side {
            Side::Sell => self.gpus_at(bi, ix),
            Side::Buy => Balance::default(),
        };
        risk::check_rehold(account, gpus, order.side, old_hold, new_hold)?;
        let opposite_best = self.bk(bi).book.best_price(order.side.opposite());
        if !keeps_priority
            && order.post_only
            && opposite_best.is_some_and(|b| order.side.crosses(price, b))
        {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        Ok(Amendment {
            ix,
            bi,
            order,
            handle,
            price,
            lots,
            keeps_priority,
            old_hold,
            new_hold,
        })
    }

    /// Re-queues an amended order: off the book, then in again as if new (it may
    /// trade first), keeping its id and open-order bookkeeping.
    fn requeue<S: EventSink>(&mut self, a: &Amendment, out: &mut S) {
        let order = a.order;
        self.bk_mut(a.bi).book.remove(a.handle);
        let mut taker = Taker {
            id: order.id,
            account: order.account,
            ix: a.ix,
            side: order.side,
            limit: Some(a.price),
            remaining: a.lots,
            stp: order.stp,
            budget: None,
            floor: None,
        };
        let reason = match self.run_match(a.bi, &mut taker, out) {
            MatchEnd::Done => None,
            MatchEnd::SelfTrade => Some(CancelReason::SelfTradePrevention),
            MatchEnd::MatchLimit => Some(CancelReason::MatchLimit),
        };
        let requeued = RestingOrder {
            price_ticks: a.price,
            quantity_lots: taker.remaining,
            ..order
        };
        self.finish(a.bi, &taker, requeued, reason, true, out);
    }
}
