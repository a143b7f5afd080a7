//! `place_order`: check, accept, match, finish.
//!
//! [`check_place`](Engine::check_place) runs every check without changing
//! anything, in the order of the reject codes (shape 2xx, risk and limits 3xx,
//! book state 4xx; see PROTOCOL.md), and returns the order's shape and, for a
//! market buy, its budget. Only then does the order take an id and its hold
//! ([`accept`](Engine::accept)), match against the book, and rest or have its
//! remainder cancelled.

use crate::account::{Account, Balance};
use crate::book::{OrderBook, RestingOrder};
use crate::command::PlaceOrder;
use crate::event::{Event, EventSink, OrderAccepted};
use crate::limits::{OPEN_ORDERS_PER_ACCOUNT_MAX, OPEN_ORDERS_PER_BOOK_MAX};
use crate::market::OrderShape;
use crate::matching::{MatchEnd, Taker};
use crate::reject::RejectReason;
use crate::risk;
use crate::state::{Engine, NO_BOOK};
use crate::types::{CancelReason, OrderId, OrderType, Side, TimeInForce};

/// A `place_order` that passed every check: where it goes and what it is.
struct Placement {
    /// The account's index.
    ix: u32,
    /// The market's index.
    mi: usize,
    /// The slot's book, if it exists yet.
    bi: Option<usize>,
    /// The order in the market's units.
    shape: OrderShape,
    /// A market buy's budget: the USD it holds and may spend.
    budget: Option<u64>,
}

impl<B: OrderBook> Engine<B> {
    /// Places an order: checks it, accepts it (id and hold), matches it, and rests
    /// or cancels what is left.
    pub(super) fn place<S: EventSink>(
        &mut self,
        ts_ns: u64,
        o: &PlaceOrder,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let mi = self.market_ix(&o.market)?;
        let ix = self.client_ix(o.account)?;
        let shape = self.markets[mi].spec.check_order(o, ts_ns)?;
        if shape.all_or_none {
            return self.place_all_or_none(mi, o, &shape, out);
        }
        let p = self.check_place(mi, ix, shape, o)?;
        // The checks found the book if it exists: look it up once.
        let bi = match p.bi {
            Some(bi) => bi,
            None => self.book_for(mi, shape.from_slot),
        };
        let id = self.accept(o, bi, &p, out);
        let mut taker = Taker {
            id,
            account: o.account,
            ix,
            side: o.side,
            limit: p.shape.limit,
            remaining: p.shape.lots,
            stp: o.stp,
            budget: p.budget,
            floor: p.shape.min_reliability,
        };
        let end = self.run_match(bi, &mut taker, out);
        let reason = remainder_reason(end, taker.remaining, p.shape.tif, o.order_type);
        let template = RestingOrder {
            id,
            account: o.account,
            side: o.side,
            price_ticks: p.shape.limit.unwrap_or(0),
            quantity_lots: taker.remaining,
            good_till_ns: o.good_till_ns,
            post_only: o.post_only,
            stp: o.stp,
            client_order_id: o.client_order_id,
        };
        self.finish(bi, &taker, template, reason, false, out);
        Ok(())
    }

    /// The checks of a single-slot `place_order` after its shape (2xx, checked by
    /// the caller), in reject-code order, changing nothing.
    fn check_place(
        &self,
        mi: usize,
        ix: u32,
        shape: OrderShape,
        o: &PlaceOrder,
    ) -> Result<Placement, RejectReason> {
        let account = self.accounts.at(ix);
        let spec = &self.markets[mi].spec;
        let bi = self.find_book(mi, shape.from_slot);
        // Risk and limits (3xx).
        let OrderShape {
            tif,
            cap,
            limit,
            lots,
            ..
        } = shape;
        // Only a sell holds GPUs: a buy never looks them up.
        let gpus = match o.side {
            Side::Sell => self.gpus_at(bi.unwrap_or(NO_BOOK), ix),
            Side::Buy => Balance::default(),
        };
        let budget = risk::order_budget(account, gpus, spec, o.side, limit, lots, cap)?;
        if tif.rests() {
            check_open_order_limits(account, bi.map_or(0, |bi| self.bk(bi).book.len()))?;
        }
        // Book state (4xx).
        self.check_book_state(bi, account, o, &shape)?;
        Ok(Placement {
            ix,
            mi,
            bi,
            shape,
            budget,
        })
    }

    /// The checks against the book and the account's open orders (4xx): a new
    /// client order id, a post-only order that would not trade, a FOK order that
    /// would fill completely.
    fn check_book_state(
        &self,
        bi: Option<usize>,
        account: &Account,
        o: &PlaceOrder,
        shape: &OrderShape,
    ) -> Result<(), RejectReason> {
        if o.client_order_id
            .is_some_and(|c| account.client_ids.contains_key(&c))
        {
            return Err(RejectReason::DuplicateClientOrderId);
        }
        let opposite_best = bi.and_then(|bi| self.bk(bi).book.best_price(o.side.opposite()));
        let limit = || shape.limit.expect("limit");
        if o.post_only && opposite_best.is_some_and(|b| o.side.crosses(limit(), b)) {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        if shape.tif == TimeInForce::Fok
            && !bi.is_some_and(|bi| self.fok_fillable(bi, o, limit(), shape.lots))
        {
            return Err(RejectReason::FokNotFillable);
        }
        Ok(())
    }

    /// Accepts a checked order: gives it the next id, takes its hold, and reports
    /// it. Returns the id.
    fn accept<S: EventSink>(
        &mut self,
        o: &PlaceOrder,
        bi: usize,
        p: &Placement,
        out: &mut S,
    ) -> OrderId {
        debug_assert!(p.bi.is_none_or(|b| b == bi) && self.bk(bi).market == p.mi);
        let id = self.next_order_id;
        self.next_order_id += 1;
        let spec = &self.bk(bi).spec;
        let OrderShape {
            tif, limit, lots, ..
        } = p.shape;
        let hold = risk::taker_hold(spec, o.side, limit, lots, p.budget);
        let accepted = OrderAccepted {
            order: id,
            account: o.account,
            market: o.market,
            slot: p.shape.from_slot,
            to_slot: None,
            colocate: false,
            side: o.side,
            order_type: o.order_type,
            price: o.price.map(|_| spec.price(limit.expect("limit"))),
            quantity: spec.quantity(lots),
            time_in_force: tif,
            good_till_ns: o.good_till_ns,
            post_only: o.post_only,
            stp: o.stp,
            client_order_id: o.client_order_id,
        };
        self.held_at(p.ix, o.side, bi).hold(hold);
        out.push(Event::OrderAccepted(accepted));
        id
    }
}

/// The limits a resting order counts against (3xx): the account's open orders and
/// the book's size.
fn check_open_order_limits(account: &Account, book_len: usize) -> Result<(), RejectReason> {
    if account.open_orders.len() >= OPEN_ORDERS_PER_ACCOUNT_MAX {
        return Err(RejectReason::TooManyOpenOrders);
    }
    if book_len >= OPEN_ORDERS_PER_BOOK_MAX {
        return Err(RejectReason::BookFull);
    }
    Ok(())
}

/// Why a placed order's remainder is cancelled after matching stopped with `end`
/// and `remaining` lots open, or `None` when it rests (or nothing is left).
fn remainder_reason(
    end: MatchEnd,
    remaining: u64,
    tif: TimeInForce,
    order_type: OrderType,
) -> Option<CancelReason> {
    match end {
        MatchEnd::SelfTrade => Some(CancelReason::SelfTradePrevention),
        MatchEnd::MatchLimit => {
            assert!(
                tif != TimeInForce::Fok,
                "FOK checked fillable within the bound"
            );
            Some(CancelReason::MatchLimit)
        }
        MatchEnd::Done if remaining == 0 => None,
        MatchEnd::Done => match tif {
            _ if order_type == OrderType::Market => Some(CancelReason::MarketRemainder),
            TimeInForce::Ioc => Some(CancelReason::IocRemainder),
            TimeInForce::Fok => unreachable!("FOK checked fillable"),
            TimeInForce::Gtc | TimeInForce::Gtd => None,
        },
    }
}
