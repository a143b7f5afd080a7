//! Taking resting orders off the book: `cancel_order`, `mass_cancel`, and
//! [`cancel_resting`](Engine::cancel_resting), which every other cancel goes
//! through too (GTD expiry, and self-trade prevention cancelling a maker), so a
//! resting order always leaves the book the same way: off the book, its hold
//! released, its indexes forgotten, one `order_cancelled` event.

use crate::book::{OrderBook, RestingOrder};
use crate::command::{CancelOrder, MassCancel};
use crate::event::{Event, EventSink, MassCancelled, OrderCancelled};
use crate::reject::RejectReason;
use crate::risk;
use crate::slot::on_the_hour;
use crate::state::Engine;
use crate::types::{CancelReason, OrderId};

impl<B: OrderBook> Engine<B> {
    /// Cancels one of the account's resting orders, named by exactly one of its
    /// order id and client order id.
    pub(super) fn cancel<S: EventSink>(
        &mut self,
        c: &CancelOrder,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        if c.order_id.is_some() == c.client_order_id.is_some() {
            return Err(RejectReason::InvalidOrderRef);
        }
        let found = self.resolve_order(c.account, c.order_id, c.client_order_id)?;
        self.order_loc.remove(&found.order.id);
        let order = self.bk_mut(found.bi).book.remove(found.handle);
        self.cancelled(found.bi, order, found.ix, CancelReason::UserRequested, out);
        Ok(())
    }

    /// Cancels all the account's resting orders, or those in one market, in order
    /// id order, then reports how many.
    pub(super) fn mass_cancel<S: EventSink>(
        &mut self,
        c: &MassCancel,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let market = match (&c.market, c.slot) {
            (Some(m), _) => Some(self.market_ix(m)?),
            (None, Some(_)) => return Err(RejectReason::InvalidSlotRange),
            (None, None) => None,
        };
        if c.slot.is_some_and(|s| !on_the_hour(s)) {
            return Err(RejectReason::SlotNotOnHour);
        }
        let account = self.account(c.account)?;
        let ids: Vec<(usize, OrderId)> = account
            .open_orders
            .iter()
            .map(|id| (self.loc(id).bi(), id))
            .filter(|&(bi, _)| {
                let book = self.bk(bi);
                market.is_none_or(|m| m == book.market) && c.slot.is_none_or(|s| s == book.slot)
            })
            .collect();
        for &(bi, id) in &ids {
            self.cancel_resting(bi, id, CancelReason::MassCancel, out);
        }
        out.push(Event::MassCancelled(MassCancelled {
            account: c.account,
            market: c.market,
            slot: c.slot,
            count: ids.len() as u64,
        }));
        Ok(())
    }

    /// Takes a resting order off the book, releases its hold, and reports it.
    pub(crate) fn cancel_resting<S: EventSink>(
        &mut self,
        bi: usize,
        id: OrderId,
        reason: CancelReason,
        out: &mut S,
    ) {
        let loc = self
            .order_loc
            .remove(&id)
            .expect("an open order is indexed");
        debug_assert_eq!(loc.bi(), bi);
        let order = self.bk_mut(bi).book.remove(loc.handle);
        let ix = self.ix(order.account);
        self.cancelled(bi, order, ix, reason, out);
    }

    /// After `order` (of the account of index `ix`) left book `bi` and the
    /// index of open orders: releases its hold, forgets it, and reports it.
    fn cancelled<S: EventSink>(
        &mut self,
        bi: usize,
        order: RestingOrder,
        ix: u32,
        reason: CancelReason,
        out: &mut S,
    ) {
        let (spec, slot) = (&self.bk(bi).spec, self.bk(bi).slot);
        let hold = risk::resting_hold(spec, order.side, order.price_ticks, order.quantity_lots);
        let (market, price, quantity) = (
            spec.id,
            spec.price(order.price_ticks),
            spec.quantity(order.quantity_lots),
        );
        self.held_at(ix, order.side, bi).release(hold);
        self.forget_unindexed_at(&order, ix);
        out.push(Event::OrderCancelled(OrderCancelled {
            order: order.id,
            account: order.account,
            market,
            slot,
            side: order.side,
            price: Some(price),
            quantity,
            reason,
            resting: true,
        }));
    }
}
