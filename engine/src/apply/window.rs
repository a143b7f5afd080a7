//! All-or-none orders: windows (the same GPUs in every slot of a range) and
//! clusters (`colocate`: every GPU from one provider's own inventory).
//!
//! Such an order never rests and never half-happens: it is **planned** against
//! the books first, changing nothing, and either every leg fills completely at or
//! better than its limit, or the command is rejected with no side effect. Only a
//! complete plan is executed, as ordinary trades (one `order_accepted` for the
//! whole order, then its trades, each naming its slot).
//!
//! Rules, chosen to be simple to state and to keep planning side-effect free:
//! - The taker's own resting orders are skipped: they neither trade nor are
//!   cancelled (so `stp` does not apply).
//! - A window leg fills in price-time priority among the other accounts' orders.
//! - A cluster looks, in each slot, at each provider's asks at or under the limit
//!   (at most [`MATCHES_PER_COMMAND_MAX`] asks per slot), counting only what the
//!   provider's own unsold inventory covers (a sale comes from inventory first,
//!   so those GPUs are the provider's machines); resold positions are not
//!   eligible. A provider qualifies when it covers every GPU of every slot; the
//!   lowest total notional wins, ties to the provider whose first ask in the first
//!   slot stands earliest in price-time priority.
//! - Makers met across all legs count against [`MATCHES_PER_COMMAND_MAX`]; a plan
//!   that needs more is not fillable.

use crate::book::{OrderBook, RestingOrder};
use crate::command::PlaceOrder;
use crate::event::{Event, EventSink, OrderAccepted};
use crate::limits::MATCHES_PER_COMMAND_MAX;
use crate::market::OrderShape;
use crate::matching::Taker;
use crate::reject::RejectReason;
use crate::risk;
use crate::slot::SLOT_SECS;
use crate::state::Engine;
use crate::types::{AccountId, Side, StpMode};
use std::collections::BTreeMap;

/// One planned fill: a maker order in a book and the lots taken from it.
struct Fill {
    bi: usize,
    maker: RestingOrder,
    lots: u64,
}

/// What one provider could supply to a cluster, so far.
struct Candidate {
    fills: Vec<Fill>,
    /// Notional of the fills, micro-USD.
    cost: u128,
    /// Priority of its first ask in the first slot (lower is earlier).
    rank: usize,
}

impl<B: OrderBook> Engine<B> {
    /// Places a window or cluster order (its shape already checked): risk, then
    /// the plan, then the trades.
    pub(super) fn place_all_or_none<S: EventSink>(
        &mut self,
        mi: usize,
        o: &PlaceOrder,
        shape: &OrderShape,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let limit = shape.limit.expect("all-or-none orders have a limit");
        let slots: Vec<u64> = (shape.from_slot..=shape.to_slot)
            .step_by(SLOT_SECS as usize)
            .collect();
        let leg_hold = risk::resting_hold(&self.markets[mi].spec, o.side, limit, shape.lots);
        self.check_all_or_none_risk(mi, o, &slots, leg_hold)?;
        if o.client_order_id.is_some_and(|c| {
            self.account(o.account)
                .is_ok_and(|a| a.client_ids.contains_key(&c))
        }) {
            return Err(RejectReason::DuplicateClientOrderId);
        }
        let plan = if o.colocate {
            self.plan_cluster(mi, o, limit, shape.lots, &slots)?
        } else {
            self.plan_window(mi, o, limit, shape.lots, &slots)?
        };
        self.execute_plan(o, shape, leg_hold, plan, out);
        Ok(())
    }

    /// A buy needs its limit hold for every slot in available USD; a sell needs
    /// the GPUs available in every slot.
    fn check_all_or_none_risk(
        &self,
        mi: usize,
        o: &PlaceOrder,
        slots: &[u64],
        leg_hold: u64,
    ) -> Result<(), RejectReason> {
        let account = self.account(o.account)?;
        match o.side {
            Side::Buy => {
                let total = leg_hold.checked_mul(slots.len() as u64);
                if total.is_none_or(|t| t > account.cash.available) {
                    return Err(RejectReason::InsufficientFunds);
                }
            }
            Side::Sell => {
                for &slot in slots {
                    let have = self
                        .find_book(mi, slot)
                        .map_or(0, |bi| self.gpus(bi, o.account).available);
                    if have < leg_hold {
                        return Err(RejectReason::InsufficientCapacity);
                    }
                }
            }
        }
        Ok(())
    }

    /// A window's fills, leg by leg in price-time priority (own orders skipped),
    /// or `window_not_fillable`.
    fn plan_window(
        &self,
        mi: usize,
        o: &PlaceOrder,
        limit: i64,
        lots: u64,
        slots: &[u64],
    ) -> Result<Vec<Fill>, RejectReason> {
        let mut fills = Vec::new();
        let mut met = 0usize;
        for &slot in slots {
            let bi = self
                .find_book(mi, slot)
                .ok_or(RejectReason::WindowNotFillable)?;
            let mut need = lots;
            self.bk(bi).book.visit(o.side.opposite(), &mut |m| {
                if !o.side.crosses(limit, m.price_ticks) || met == MATCHES_PER_COMMAND_MAX {
                    return false;
                }
                met += 1;
                let reliable = o
                    .min_reliability
                    .is_none_or(|f| self.reliable(m.account, f));
                if m.account != o.account && reliable {
                    let take = need.min(m.quantity_lots);
                    fills.push(Fill {
                        bi,
                        maker: *m,
                        lots: take,
                    });
                    need -= take;
                }
                need > 0
            });
            if need > 0 {
                return Err(RejectReason::WindowNotFillable);
            }
        }
        Ok(fills)
    }

    /// A cluster's fills: the best provider's, or `cluster_not_fillable`.
    fn plan_cluster(
        &self,
        mi: usize,
        o: &PlaceOrder,
        limit: i64,
        lots: u64,
        slots: &[u64],
    ) -> Result<Vec<Fill>, RejectReason> {
        let mut qualified: BTreeMap<AccountId, Candidate> = BTreeMap::new();
        for (leg, &slot) in slots.iter().enumerate() {
            let bi = self
                .find_book(mi, slot)
                .ok_or(RejectReason::ClusterNotFillable)?;
            let offers = self.cluster_offers(bi, o.account, limit, lots, |a| {
                (leg == 0 || qualified.contains_key(&a))
                    && o.min_reliability.is_none_or(|f| self.reliable(a, f))
            });
            if leg == 0 {
                qualified = offers;
            } else {
                qualified = offers
                    .into_iter()
                    .map(|(a, offer)| {
                        let mut c = qualified.remove(&a).expect("only qualified providers");
                        c.fills.extend(offer.fills);
                        c.cost += offer.cost;
                        (a, c)
                    })
                    .collect();
            }
            if qualified.is_empty() {
                return Err(RejectReason::ClusterNotFillable);
            }
        }
        let best = qualified
            .into_values()
            .min_by_key(|c| (c.cost, c.rank))
            .expect("not empty");
        if best.fills.len() > MATCHES_PER_COMMAND_MAX {
            return Err(RejectReason::ClusterNotFillable);
        }
        Ok(best.fills)
    }

    /// In book `bi`, what each eligible provider (not the taker) can supply of
    /// `lots` from its asks at or under `limit`, bounded by its own inventory:
    /// only the providers that cover all `lots`.
    fn cluster_offers(
        &self,
        bi: usize,
        taker: AccountId,
        limit: i64,
        lots: u64,
        eligible: impl Fn(AccountId) -> bool,
    ) -> BTreeMap<AccountId, Candidate> {
        // Per provider: (lots still wanted, own inventory not yet planned, offer).
        let mut offers: BTreeMap<AccountId, (u64, u64, Candidate)> = BTreeMap::new();
        let mut rank = 0usize;
        let spec = &self.bk(bi).spec;
        self.bk(bi).book.visit(Side::Sell, &mut |m| {
            if m.price_ticks > limit || rank == MATCHES_PER_COMMAND_MAX {
                return false;
            }
            rank += 1;
            if m.account == taker || !eligible(m.account) {
                return true;
            }
            let own = self.inventory(bi, m.account);
            let (want, own_left, c) = offers.entry(m.account).or_insert_with(|| {
                (
                    lots,
                    own,
                    Candidate {
                        fills: Vec::new(),
                        cost: 0,
                        rank,
                    },
                )
            });
            let take = (*want).min(*own_left).min(m.quantity_lots);
            if take > 0 {
                c.fills.push(Fill {
                    bi,
                    maker: *m,
                    lots: take,
                });
                c.cost += u128::from(spec.notional(m.price_ticks, take));
                *want -= take;
                *own_left -= take;
            }
            true
        });
        offers
            .into_iter()
            .filter(|(_, (want, _, _))| *want == 0)
            .map(|(a, (_, _, c))| (a, c))
            .collect()
    }

    /// Executes a complete plan: the order's id and `order_accepted`, then each
    /// slot's hold and its trades. Every leg ends filled, so nothing is left to
    /// release.
    fn execute_plan<S: EventSink>(
        &mut self,
        o: &PlaceOrder,
        shape: &OrderShape,
        leg_hold: u64,
        plan: Vec<Fill>,
        out: &mut S,
    ) {
        let id = self.next_order_id;
        self.next_order_id += 1;
        let spec = &self.markets[self.market_ix(&o.market).expect("checked")].spec;
        let limit = shape.limit.expect("all-or-none orders have a limit");
        out.push(Event::OrderAccepted(OrderAccepted {
            order: id,
            account: o.account,
            market: o.market,
            slot: shape.from_slot,
            to_slot: o.window.map(|w| w.to_slot),
            colocate: o.colocate,
            side: o.side,
            order_type: o.order_type,
            price: Some(spec.price(limit)),
            quantity: spec.quantity(shape.lots),
            time_in_force: shape.tif,
            good_till_ns: None,
            post_only: false,
            stp: o.stp,
            client_order_id: o.client_order_id,
        }));
        let mut leg: Option<(usize, Taker)> = None;
        for fill in plan {
            if leg.as_ref().is_none_or(|(bi, _)| *bi != fill.bi) {
                debug_assert!(leg.as_ref().is_none_or(|(_, t)| t.remaining == 0));
                self.held_in(o.account, o.side, fill.bi).hold(leg_hold);
                let taker = Taker {
                    id,
                    account: o.account,
                    ix: self.ix(o.account),
                    side: o.side,
                    limit: Some(limit),
                    remaining: shape.lots,
                    stp: StpMode::None,
                    budget: None,
                    floor: None,
                };
                leg = Some((fill.bi, taker));
            }
            let (bi, taker) = leg.as_mut().expect("set above");
            self.trade(*bi, taker, &fill.maker, fill.lots, false, out);
        }
        debug_assert!(leg.is_some_and(|(_, t)| t.remaining == 0));
    }
}
