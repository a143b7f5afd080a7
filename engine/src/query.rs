//! Read-only views of the engine's state for market data, account pages and
//! audits. Views are decimal (the protocol's units) and serialize as the protocol
//! does; every list is in a defined order (price priority, or id).

use crate::account::Balance;
use crate::book::{OrderBook, RestingOrder};
use crate::market::MarketSpec;
use crate::state::Engine;
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

/// GPU-hours in one market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionView {
    /// The market.
    pub market: MarketId,
    /// GPU-hours.
    #[serde(flatten)]
    pub balance: BalanceView,
}

/// An account's balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The account.
    pub account: AccountId,
    /// USD.
    pub usd: BalanceView,
    /// GPU-hours per market (markets with a non-zero balance, in listing order).
    pub gpu_hours: Vec<PositionView>,
}

fn order_view(spec: &MarketSpec, o: &RestingOrder) -> OrderView {
    OrderView {
        order: o.id,
        account: o.account,
        market: spec.id,
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

    fn market_state(&self, id: &MarketId) -> Option<&crate::state::MarketState<B>> {
        self.market_index.get(id).map(|&mi| &self.markets[mi])
    }

    /// The highest bid and the quantity at it.
    pub fn best_bid(&self, market: &MarketId) -> Option<L2Level> {
        self.depth(market, Side::Buy, 1)?.into_iter().next()
    }

    /// The lowest ask and the quantity at it.
    pub fn best_ask(&self, market: &MarketId) -> Option<L2Level> {
        self.depth(market, Side::Sell, 1)?.into_iter().next()
    }

    /// GPU-hours resting at `price` on `side` (zero when none; `None` for an
    /// unknown market or a price off the tick grid).
    pub fn quantity_at(&self, market: &MarketId, side: Side, price: Decimal) -> Option<Decimal> {
        let m = self.market_state(market)?;
        let ticks = m.spec.price_ticks(price).ok()?;
        Some(m.spec.quantity(m.book.quantity_at(side, ticks)))
    }

    /// Up to `levels` best levels of `side`, best first; `None` for an unknown market.
    pub fn depth(&self, market: &MarketId, side: Side, levels: usize) -> Option<Vec<L2Level>> {
        let m = self.market_state(market)?;
        let mut raw = Vec::new();
        m.book.depth(side, levels, &mut raw);
        Some(
            raw.into_iter()
                .map(|(p, q)| L2Level {
                    price: m.spec.price(p),
                    quantity: m.spec.quantity(q),
                })
                .collect(),
        )
    }

    /// Depth in integer units, `(price_ticks, lots)`, best first.
    pub fn depth_ticks(&self, market: &MarketId, side: Side, levels: usize) -> Vec<(i64, u64)> {
        let mut raw = Vec::new();
        if let Some(m) = self.market_state(market) {
            m.book.depth(side, levels, &mut raw);
        }
        raw
    }

    /// An open order.
    pub fn order(&self, id: OrderId) -> Option<OrderView> {
        let &mi = self.order_market.get(&id)?;
        let m = &self.markets[mi];
        m.book.get(id).map(|o| order_view(&m.spec, o))
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
        Some(AccountView {
            account,
            usd: view(a.cash, None),
            gpu_hours: a
                .positions
                .iter()
                .enumerate()
                .filter(|(_, b)| b.total() > 0)
                .map(|(mi, b)| {
                    let spec = &self.markets[mi].spec;
                    PositionView {
                        market: spec.id,
                        balance: view(*b, Some(spec)),
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
                .filter_map(|&id| self.order(id))
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
        self.order_market.len()
    }
}
