//! Read-only views of the engine's state for market data, account pages and
//! audits. Views are decimal (the protocol's units) and serialize as the protocol
//! does; every list is in a defined order (price priority, or id).

use crate::account::{Balance, Holding};
use crate::book::{OrderBook, RestingOrder};
use crate::market::MarketSpec;
use crate::state::{Engine, SlotBook};
use crate::types::{AccountId, ClientOrderId, MarketId, OrderId, Side, StpMode};
use crate::units::cash_decimal;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One price level of L2 depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Level {
    /// USD per GPU-hour.
    #[serde(with = "crate::decimal::strict")]
    pub price: Decimal,
    /// GPU-hours resting at this price.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
}

/// An open order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The engine's id.
    pub order: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The market.
    pub market: MarketId,
    /// The delivery slot (unix seconds of its start).
    pub slot: u64,
    /// Buy or sell.
    pub side: Side,
    /// Limit price.
    #[serde(with = "crate::decimal::strict")]
    pub price: Decimal,
    /// Open quantity.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// GTD expiry.
    pub good_till_ns: Option<u64>,
    /// Post-only.
    pub post_only: bool,
    /// Self-trade prevention mode.
    pub stp: StpMode,
    /// The client's id.
    pub client_order_id: Option<ClientOrderId>,
}

/// Available and held amounts of one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    /// Free to use.
    #[serde(with = "crate::decimal::strict")]
    pub available: Decimal,
    /// Reserved for open orders.
    #[serde(with = "crate::decimal::strict")]
    pub held: Decimal,
}

/// An account's USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsdView {
    /// Free to use.
    #[serde(with = "crate::decimal::strict")]
    pub available: Decimal,
    /// Reserved for open buys.
    #[serde(with = "crate::decimal::strict")]
    pub held: Decimal,
    /// Paid for GPUs not yet delivered: comes back as a refund for what is not
    /// delivered.
    #[serde(with = "crate::decimal::strict")]
    pub escrow: Decimal,
    /// Owed for GPUs sold, paid once they are delivered (not yet available).
    #[serde(with = "crate::decimal::strict")]
    pub pending: Decimal,
}

/// GPUs in one slot of one market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionView {
    /// The market.
    pub market: MarketId,
    /// The delivery slot (unix seconds of its start).
    pub slot: u64,
    /// All the account's GPUs in the slot (inventory and bought), available and
    /// held by open sells.
    #[serde(flatten)]
    pub balance: BalanceView,
    /// Of which own inventory not sold (the rest was bought).
    #[serde(with = "crate::decimal::strict")]
    pub inventory: Decimal,
    /// Besides these, bought GPUs kept to the gate: they went through the most
    /// trades a GPU may ([`TRADES_PER_LOT_MAX`](crate::limits::TRADES_PER_LOT_MAX)),
    /// so they are delivered to this account and cannot be offered again.
    #[serde(with = "crate::decimal::strict")]
    pub kept: Decimal,
}

/// One ask price level seen by a cluster buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockLevel {
    /// USD per GPU-hour.
    #[serde(with = "crate::decimal::strict")]
    pub price: Decimal,
    /// GPUs resting at this price (all sellers).
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// The largest block one provider offers from its own inventory at this price
    /// or better: what a `colocate` order limited here can get in this slot.
    #[serde(with = "crate::decimal::strict")]
    pub largest_block: Decimal,
}

/// An account's balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The account.
    pub account: AccountId,
    /// USD.
    pub usd: UsdView,
    /// GPUs per (market, slot) held, in listing order then slot order.
    pub gpus: Vec<PositionView>,
}

fn order_view(spec: &MarketSpec, slot: u64, o: &RestingOrder) -> OrderView {
    OrderView {
        order: o.id,
        account: o.account,
        market: spec.id,
        slot,
        side: o.side,
        price: spec.price(o.price_ticks),
        quantity: spec.quantity(o.quantity_lots),
        good_till_ns: o.good_till_ns,
        post_only: o.post_only,
        stp: o.stp,
        client_order_id: o.client_order_id,
    }
}

impl<B: OrderBook> Engine<B> {
    /// Every listed market, in listing order.
    pub fn markets(&self) -> impl Iterator<Item = &MarketSpec> {
        self.markets.iter().map(|m| &m.spec)
    }

    /// One market's spec.
    pub fn market(&self, id: &MarketId) -> Option<&MarketSpec> {
        self.market_index.get(id).map(|&mi| &self.markets[mi].spec)
    }

    /// A market's open slots (those some command used and whose gate has not
    /// closed), in order; `None` for an unknown market.
    pub fn slots(&self, market: &MarketId) -> Option<Vec<u64>> {
        let &mi = self.market_index.get(market)?;
        Some(self.markets[mi].slots.keys().copied().collect())
    }

    /// The book of an open slot, `Ok(None)` for a slot with no book (nothing
    /// traded, rested or listed in it), `Err` for an unknown market.
    fn slot_book(&self, market: &MarketId, slot: u64) -> Option<Option<&SlotBook<B>>> {
        let &mi = self.market_index.get(market)?;
        Some(self.find_book(mi, slot).map(|bi| self.bk(bi)))
    }

    /// The highest bid of a slot and the quantity at it.
    pub fn best_bid(&self, market: &MarketId, slot: u64) -> Option<L2Level> {
        self.depth(market, slot, Side::Buy, 1)?.into_iter().next()
    }

    /// The lowest ask of a slot and the quantity at it.
    pub fn best_ask(&self, market: &MarketId, slot: u64) -> Option<L2Level> {
        self.depth(market, slot, Side::Sell, 1)?.into_iter().next()
    }

    /// GPUs resting at `price` on `side` of a slot (zero when none; `None` for an
    /// unknown market or a price off the tick grid).
    pub fn quantity_at(
        &self,
        market: &MarketId,
        slot: u64,
        side: Side,
        price: Decimal,
    ) -> Option<Decimal> {
        let spec = self.market(market)?;
        let ticks = spec.price_ticks(price).ok()?;
        let lots = self
            .slot_book(market, slot)?
            .map_or(0, |b| b.book.quantity_at(side, ticks));
        Some(spec.quantity(lots))
    }

    /// Up to `levels` best levels of `side` of a slot, best first (empty for a
    /// slot with no book); `None` for an unknown market.
    pub fn depth(
        &self,
        market: &MarketId,
        slot: u64,
        side: Side,
        levels: usize,
    ) -> Option<Vec<L2Level>> {
        let spec = self.market(market)?;
        let raw = self.depth_ticks(market, slot, side, levels);
        Some(
            raw.into_iter()
                .map(|(p, q)| L2Level {
                    price: spec.price(p),
                    quantity: spec.quantity(q),
                })
                .collect(),
        )
    }

    /// Depth in integer units, `(price_ticks, lots)`, best first.
    pub fn depth_ticks(
        &self,
        market: &MarketId,
        slot: u64,
        side: Side,
        levels: usize,
    ) -> Vec<(i64, u64)> {
        let mut raw = Vec::new();
        if let Some(Some(b)) = self.slot_book(market, slot) {
            b.book.depth(side, levels, &mut raw);
        }
        raw
    }

    /// Up to `levels` best ask levels of a slot with, at each, the largest block
    /// one provider offers from its own inventory at that price or better (the
    /// rule `colocate` orders fill by); `None` for an unknown market. With a
    /// `floor`, only the asks of sellers whose delivery record meets it (what a
    /// buy with that `min_reliability` can trade with).
    pub fn ask_blocks(
        &self,
        market: &MarketId,
        slot: u64,
        levels: usize,
        floor: Option<Decimal>,
    ) -> Option<Vec<BlockLevel>> {
        let spec = self.market(market)?;
        let mut out = Vec::new();
        let Some(b) = self.slot_book(market, slot)? else {
            return Some(out);
        };
        let bi = self
            .find_book(self.market_index[market], slot)
            .expect("book exists");
        // Per provider: (asks so far, own inventory).
        let mut offered: std::collections::BTreeMap<AccountId, (u64, u64)> = Default::default();
        let mut level: Option<(i64, u64)> = None;
        let mut largest = 0u64;
        let push = |out: &mut Vec<BlockLevel>, (p, q): (i64, u64), largest: u64| {
            out.push(BlockLevel {
                price: spec.price(p),
                quantity: spec.quantity(q),
                largest_block: spec.quantity(largest),
            })
        };
        b.book.visit(Side::Sell, &mut |o| {
            if floor.is_some_and(|f| !self.reliable(o.account, f)) {
                return true;
            }
            match level {
                Some((p, q)) if p == o.price_ticks => level = Some((p, q + o.quantity_lots)),
                Some(l) => {
                    push(&mut out, l, largest);
                    if out.len() == levels {
                        level = None;
                        return false;
                    }
                    level = Some((o.price_ticks, o.quantity_lots));
                }
                None => level = Some((o.price_ticks, o.quantity_lots)),
            }
            let own = self.inventory(bi, o.account);
            let e = offered.entry(o.account).or_insert((0, own));
            e.0 += o.quantity_lots;
            largest = largest.max(e.0.min(e.1));
            true
        });
        if let Some(l) = level {
            push(&mut out, l, largest);
        }
        Some(out)
    }

    /// An open order.
    pub fn order(&self, id: OrderId) -> Option<OrderView> {
        let loc = self.order_loc.get(&id)?;
        let b = self.bk(loc.bi());
        Some(order_view(&b.spec, b.slot, b.book.get(loc.handle)))
    }

    /// An account's balances (`None` if it does not exist). Account 0 is the fee account.
    pub fn balances(&self, account: AccountId) -> Option<AccountView> {
        let a = self.accounts.get(&account)?;
        let view = |b: Balance, spec: Option<&MarketSpec>| {
            let f = |v: u64| spec.map_or_else(|| cash_decimal(v), |s| s.quantity(v));
            BalanceView {
                available: f(b.available),
                held: f(b.held),
            }
        };
        // Open books in (market, slot) order.
        let held: Vec<(usize, u64, &Holding, u64)> = self
            .markets
            .iter()
            .enumerate()
            .flat_map(|(mi, m)| m.slots.iter().map(move |(&slot, &bi)| (mi, slot, bi)))
            .filter_map(|(mi, slot, bi)| {
                let b = self.bk(bi);
                let h = self.holding(bi, account)?;
                let kept = b.lots.total(b.lots.kept(account));
                (h.gpus.total() + kept > 0).then_some((mi, slot, h, kept))
            })
            .collect();
        Some(AccountView {
            account,
            usd: UsdView {
                available: cash_decimal(a.cash.available),
                held: cash_decimal(a.cash.held),
                escrow: cash_decimal(a.escrow),
                pending: cash_decimal(a.pending),
            },
            gpus: held
                .into_iter()
                .map(|(mi, slot, h, kept)| {
                    let spec = &self.markets[mi].spec;
                    PositionView {
                        market: spec.id,
                        slot,
                        balance: view(h.gpus, Some(spec)),
                        inventory: spec.quantity(h.inventory),
                        kept: spec.quantity(kept),
                    }
                })
                .collect(),
        })
    }

    /// An account's open orders, by id.
    pub fn open_orders(&self, account: AccountId) -> Option<Vec<OrderView>> {
        let a = self.accounts.get(&account)?;
        Some(
            a.open_orders
                .iter()
                .filter_map(|id| self.order(id))
                .collect(),
        )
    }

    /// Number of accounts, the fee account included.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Every account id, the fee account included, ascending (for audits and
    /// statements that must visit every account in a defined order).
    ///
    /// ```
    /// let engine: gpux_engine::Engine = gpux_engine::Engine::new();
    /// assert_eq!(engine.account_ids(), vec![gpux_engine::FEE_ACCOUNT]);
    /// ```
    pub fn account_ids(&self) -> Vec<AccountId> {
        let mut ids: Vec<AccountId> = self.accounts.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Resting orders across all books.
    pub fn open_order_count(&self) -> usize {
        self.order_loc.len()
    }
}
