//! Matching: an incoming order (the taker) against one market's book.
//!
//! `place_order` and a re-queueing `amend_order` both turn their order into a
//! [`Taker`], [`run_match`](Engine::run_match) it against the book in price-time
//! priority, and [`finish`](Engine::finish) it: rest the remainder or cancel it.
//! Each [`trade`](Engine::trade) settles through the hold rules of `risk`, so this
//! module decides *who trades how much at what price*, and `risk` decides *what
//! moves*. [`fok_fillable`](Engine::fok_fillable) is the same walk without the
//! changes, so a fill-or-kill order is refused before anything happens.

use crate::book::{OrderBook, RestingOrder};
use crate::delivery::Escrow;
use crate::event::{Event, EventSink, OrderCancelled, OrderRested, TradeExecuted};
use crate::limits::MATCHES_PER_COMMAND_MAX;
use crate::risk;
use crate::state::Engine;
use crate::types::{AccountId, CancelReason, OrderId, Side, StpMode, TradeId};
use crate::units::cash_decimal;

/// Why [`Engine::run_match`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchEnd {
    /// Filled, or nothing more it can trade with: no crossing maker left, or a
    /// market buy cannot afford one more lot.
    Done,
    /// Self-trade prevention stopped it: the rest is cancelled.
    SelfTrade,
    /// It met [`MATCHES_PER_COMMAND_MAX`] makers and would meet another: the rest
    /// is cancelled.
    MatchLimit,
}

/// An incoming order while it matches.
pub(crate) struct Taker {
    pub id: OrderId,
    pub account: AccountId,
    /// Its account's index.
    pub ix: u32,
    pub side: Side,
    /// Limit price; `None` for market orders.
    pub limit: Option<i64>,
    pub remaining: u64,
    pub stp: StpMode,
    /// Market buys: USD still held to spend.
    pub budget: Option<u64>,
    /// Trade only with makers whose delivery record is at least this reliable.
    pub floor: Option<rust_decimal::Decimal>,
}

/// How much of the buyer's hold a fill of `lots` between `t` (which had
/// `taker_before` lots to fill) and `maker` takes out of held, the fill costing
/// it `cost` ([`risk::buy_fill_release`] of whichever side buys).
fn buyer_release(
    spec: &crate::market::MarketSpec,
    t: &Taker,
    maker: &RestingOrder,
    lots: u64,
    taker_before: u64,
    cost: u64,
) -> u64 {
    match t.side {
        Side::Buy => risk::buy_fill_release(spec, t.limit, taker_before, taker_before - lots, cost),
        Side::Sell => risk::buy_fill_release(
            spec,
            Some(maker.price_ticks),
            maker.quantity_lots,
            maker.quantity_lots - lots,
            cost,
        ),
    }
}

impl<B: OrderBook> Engine<B> {
    /// Whether a FOK order could fill completely now, under its STP mode, without
    /// changing anything: the same walk [`run_match`](Self::run_match) would make,
    /// including its bound of [`MATCHES_PER_COMMAND_MAX`] makers met. Own orders
    /// skipped by `cancel_maker` do not count towards the quantity (matching would
    /// cancel them) but do count as makers met.
    /// With a `min_reliability`, makers of sellers below it are skipped (and
    /// counted as met), as matching skips them.
    pub(crate) fn fok_fillable(
        &self,
        bi: usize,
        order: &crate::command::PlaceOrder,
        limit: i64,
        lots: u64,
    ) -> bool {
        let (account, side, stp) = (order.account, order.side, order.stp);
        let floor = order.min_reliability;
        let mut need = lots;
        let mut met = 0usize;
        self.bk(bi).book.visit(side.opposite(), &mut |o| {
            if !side.crosses(limit, o.price_ticks) || met == MATCHES_PER_COMMAND_MAX {
                return false;
            }
            met += 1;
            if floor.is_some_and(|f| !self.reliable(o.account, f)) {
                return true; // skipped, untouched
            }
            if o.account == account && stp != StpMode::None {
                // cancel_maker skips the order; the other modes stop matching.
                return stp == StpMode::CancelMaker;
            }
            need = need.saturating_sub(o.quantity_lots);
            need > 0
        });
        need == 0
    }

    /// Matches `t` against the book, front maker first, and says why it stopped.
    ///
    /// For each maker, in this order: the order stops if the maker's price does not
    /// cross its limit, or (a market buy) if not one lot at that price is
    /// affordable; then, if it has already met [`MATCHES_PER_COMMAND_MAX`] makers,
    /// it stops for the bound; then self-trade prevention applies to an own maker;
    /// else it trades. So STP acts only where the order would otherwise trade, and
    /// each maker met emits exactly one event (a trade or an STP cancel), which
    /// bounds the events of one command.
    pub(crate) fn run_match<S: EventSink>(
        &mut self,
        bi: usize,
        t: &mut Taker,
        out: &mut S,
    ) -> MatchEnd {
        let mut met = 0usize;
        while t.remaining > 0 {
            let Some((maker, at_front)) = self.next_maker(bi, t, &mut met) else {
                break;
            };
            if t.limit
                .is_some_and(|l| !t.side.crosses(l, maker.price_ticks))
            {
                break;
            }
            let mut lots = t.remaining.min(maker.quantity_lots);
            if let Some(budget) = t.budget {
                let spec = &self.bk(bi).spec;
                lots = lots.min(risk::affordable_lots(spec, budget, maker.price_ticks));
                if lots == 0 {
                    break;
                }
            }
            if met >= MATCHES_PER_COMMAND_MAX {
                return MatchEnd::MatchLimit;
            }
            met += 1;
            if maker.account == t.account && t.stp != StpMode::None {
                match t.stp {
                    StpMode::CancelTaker => return MatchEnd::SelfTrade,
                    StpMode::CancelMaker => {
                        self.cancel_resting(bi, maker.id, CancelReason::SelfTradePrevention, out);
                        continue;
                    }
                    StpMode::CancelBoth => {
                        self.cancel_resting(bi, maker.id, CancelReason::SelfTradePrevention, out);
                        return MatchEnd::SelfTrade;
                    }
                    StpMode::None => unreachable!(),
                }
            }
            self.trade(bi, t, &maker, lots, at_front, out);
        }
        if met > MATCHES_PER_COMMAND_MAX {
            return MatchEnd::MatchLimit;
        }
        MatchEnd::Done
    }

    /// The maker `t` meets next, and whether it is the front of its side: the
    /// front; or, for a taker with a reliability floor, the first maker in
    /// priority order whose seller meets it (those skipped stay untouched, and
    /// count towards the makers met: past the bound, `met` exceeds it and there
    /// is none). Makers that do not cross end the walk at once.
    fn next_maker(&self, bi: usize, t: &Taker, met: &mut usize) -> Option<(RestingOrder, bool)> {
        let book = &self.bk(bi).book;
        let side = t.side.opposite();
        let front = *book.front(side)?;
        let Some(floor) = t.floor else {
            return Some((front, true));
        };
        let mut found = None;
        book.visit(side, &mut |o| {
            if t.limit.is_some_and(|l| !t.side.crosses(l, o.price_ticks)) {
                return false;
            }
            if self.reliable(o.account, floor) {
                found = Some(*o);
                return false;
            }
            *met += 1;
            *met <= MATCHES_PER_COMMAND_MAX
        });
        found.map(|o| (o, o.id == front.id))
    }

    /// One trade of `lots` between the taker and a maker, at the maker's
    /// price: moves the GPUs, puts the buyer's USD (notional and fee) in escrow
    /// and owes the seller its proceeds until delivery (see [`crate::delivery`]),
    /// and releases what the holds no longer need.
    ///
    /// `at_front` says the maker is the front of its side (price-time matching);
    /// otherwise (a planned all-or-none fill) it is taken by id.
    pub(crate) fn trade<S: EventSink>(
        &mut self,
        bi: usize,
        t: &mut Taker,
        maker: &RestingOrder,
        lots: u64,
        at_front: bool,
        out: &mut S,
    ) {
        self.take_maker(bi, maker, lots, at_front);
        let spec = &self.bk(bi).spec;
        let price = maker.price_ticks;
        let notional = spec.notional(price, lots);
        let (maker_fee, taker_fee) = risk::trade_fees(spec, notional);
        let maker_remaining = maker.quantity_lots - lots;
        let taker_before = t.remaining;
        t.remaining -= lots;
        // The buyer pays notional + fee out of its hold; what the hold no longer
        // needs goes back to available.
        let maker_ix = self.ix(maker.account);
        let taker = (t.account, t.ix, taker_fee);
        let maker_party = (maker.account, maker_ix, maker_fee);
        let ((buyer, buyer_ix, buyer_fee), (seller, seller_ix, seller_fee)) = match t.side {
            Side::Buy => (taker, maker_party),
            Side::Sell => (maker_party, taker),
        };
        let cost = notional + buyer_fee;
        let buyer_release = buyer_release(spec, t, maker, lots, taker_before, cost);
        if let Some(budget) = t.budget.as_mut() {
            *budget -= cost;
        }
        let trade = self.next_trade_id;
        self.next_trade_id += 1;
        let book = self.books[bi].as_mut().expect("book index in use");
        risk::move_gpus(
            &mut book.holdings,
            &mut book.lots,
            (seller, seller_ix),
            (buyer, buyer_ix),
            lots,
            trade,
            &mut self.scratch,
        );
        let escrow = Escrow {
            buyer,
            seller,
            lots,
            notional,
            buyer_fee,
            seller_fee,
        };
        self.escrow(trade, escrow, (buyer_ix, seller_ix), buyer_release);
        if maker_remaining == 0 {
            self.forget_at(maker, maker_ix);
        }
        let book = self.bk(bi);
        let spec = &book.spec;
        out.push(Event::TradeExecuted(TradeExecuted {
            trade,
            market: spec.id,
            slot: book.slot,
            price: spec.price(price),
            quantity: spec.quantity(lots),
            taker_side: t.side,
            maker_order: maker.id,
            maker_account: maker.account,
            taker_order: t.id,
            taker_account: t.account,
            maker_fee: cash_decimal(maker_fee),
            taker_fee: cash_decimal(taker_fee),
            maker_remaining: spec.quantity(maker_remaining),
            taker_remaining: spec.quantity(t.remaining),
        }));
    }

    /// Takes `lots` off a maker on the book: the front of its side
    /// (`at_front`), or by id.
    fn take_maker(&mut self, bi: usize, maker: &RestingOrder, lots: u64, at_front: bool) {
        let book = &mut self.bk_mut(bi).book;
        if at_front {
            let filled = book.fill_front(maker.side, lots);
            debug_assert_eq!(filled.id, maker.id);
        } else {
            let handle = self.loc(maker.id).handle;
            let book = &mut self.bk_mut(bi).book;
            if lots == maker.quantity_lots {
                book.remove(handle);
            } else {
                book.reduce(handle, lots);
            }
        }
    }

    /// Puts a fill's money in escrow until delivery: the buyer's notional and fee
    /// leave its held USD (`release` leaves held, the rest of it goes back to
    /// available) for its escrow, the seller's proceeds go to its pending USD.
    /// The parties are given by their account indexes too.
    fn escrow(
        &mut self,
        trade: TradeId,
        e: Escrow,
        (buyer_ix, seller_ix): (u32, u32),
        release: u64,
    ) {
        let buyer = self.accounts.at_mut(buyer_ix);
        risk::settle_buyer_cash(&mut buyer.cash, release, e.escrowed());
        buyer.escrow += e.escrowed();
        self.accounts.at_mut(seller_ix).pending += e.claim();
        self.escrows.insert(trade, e);
    }

    /// After matching: rest the remainder, or cancel it for `reason`, and release
    /// any hold left over. `registered` is true when the order was already an open
    /// order (an amend), so its bookkeeping exists.
    pub(crate) fn finish<S: EventSink>(
        &mut self,
        bi: usize,
        t: &Taker,
        order: RestingOrder,
        reason: Option<CancelReason>,
        registered: bool,
        out: &mut S,
    ) {
        if t.remaining > 0 && reason.is_none() {
            self.rest(bi, t, order, registered, out);
            return;
        }
        // Not resting: release what is still held for it.
        let (spec, slot) = (&self.bk(bi).spec, self.bk(bi).slot);
        let (market, price) = (spec.id, t.limit.map(|l| spec.price(l)));
        let release = risk::taker_hold(spec, t.side, t.limit, t.remaining, t.budget);
        self.held_at(t.ix, t.side, bi).release(release);
        if registered {
            self.forget(&order);
        }
        if let (Some(reason), true) = (reason, t.remaining > 0) {
            let quantity = self.bk(bi).spec.quantity(t.remaining);
            out.push(Event::OrderCancelled(OrderCancelled {
                order: t.id,
                account: t.account,
                market,
                slot,
                side: t.side,
                price,
                quantity,
                reason,
                resting: false,
            }));
        }
    }

    /// Puts the remainder of `t` on the book as `order` (its hold stays), and gives
    /// back what is left of a market buy's budget.
    fn rest<S: EventSink>(
        &mut self,
        bi: usize,
        t: &Taker,
        order: RestingOrder,
        registered: bool,
        out: &mut S,
    ) {
        let (spec, slot) = (&self.bk(bi).spec, self.bk(bi).slot);
        let (market, quantity) = (spec.id, spec.quantity(t.remaining));
        let price = t.limit.map(|l| spec.price(l));
        let handle = self.bk_mut(bi).book.insert(order);
        if registered {
            // A re-queued order: the same open order at a new place.
            self.order_loc
                .get_mut(&order.id)
                .expect("an open order is indexed")
                .handle = handle;
        } else {
            self.remember_at(bi, handle, &order, t.ix);
        }
        out.push(Event::OrderRested(OrderRested {
            order: t.id,
            account: t.account,
            market,
            slot,
            side: t.side,
            price: price.expect("resting orders have a price"),
            quantity,
        }));
        if let Some(b) = t.budget {
            self.accounts.at_mut(t.ix).cash.release(b);
        }
    }
}
