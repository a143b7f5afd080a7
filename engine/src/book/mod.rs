//! Order books: one per market, holding resting limit orders in price-time priority.
//!
//! [`OrderBook`] is the narrow interface the engine matches against. Two books
//! implement it: [`Book`], the fast one the exchange runs, and [`NaiveBook`], a
//! deliberately simple reference whose correctness is obvious. One test suite runs
//! against both, and property tests drive whole engines built on each with the same
//! random commands and require identical events.
//!
//! A book knows nothing of accounts, holds or fees: risk lives outside it. Nor
//! does it find orders by id: [`insert`](OrderBook::insert) gives a [`Handle`],
//! and the engine's one index of open orders keeps it, so an order is looked up
//! by id once per command, not once by the engine and again by its book.

mod fast;
mod naive;

pub use fast::Book;
pub use naive::NaiveBook;

use crate::types::{AccountId, ClientOrderId, OrderId, Side, StpMode};
use serde::{Deserialize, Serialize};

/// Where a resting order sits in its book: given by
/// [`insert`](OrderBook::insert), valid until the order leaves the book (removed,
/// or used up by [`fill_front`](OrderBook::fill_front)); a book may then give it
/// to another order.
pub type Handle = u32;

/// A limit order resting on a book. `Copy`, so matching reads it without borrowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestingOrder {
    /// The engine's id.
    pub id: OrderId,
    /// The owner.
    pub account: AccountId,
    /// Buy or sell.
    pub side: Side,
    /// Limit price in ticks.
    pub price_ticks: i64,
    /// Open quantity in lots (never zero on a book).
    pub quantity_lots: u64,
    /// GTD expiry, if any.
    pub good_till_ns: Option<u64>,
    /// Post-only flag (kept for amends).
    pub post_only: bool,
    /// Self-trade prevention mode (applies when an amend makes it trade).
    pub stp: StpMode,
    /// The client's id.
    pub client_order_id: Option<ClientOrderId>,
}

/// A price-time priority book for one market.
pub trait OrderBook: Default {
    /// Adds `order` at the back of its price level, and says where it is. Its
    /// quantity must be positive.
    fn insert(&mut self, order: RestingOrder) -> Handle;

    /// Removes the order at `handle` (a handle of an order on this book),
    /// returning it.
    fn remove(&mut self, handle: Handle) -> RestingOrder;

    /// The order at `handle` (a handle of an order on this book).
    fn get(&self, handle: Handle) -> &RestingOrder;

    /// Lowers the quantity of the order at `handle` by `lots`, keeping its place
    /// in the queue. `lots` must be less than its quantity.
    fn reduce(&mut self, handle: Handle, lots: u64);

    /// The first order to trade against an incoming order on the other side: the
    /// oldest order at the best price of `side`.
    fn front(&self, side: Side) -> Option<&RestingOrder>;

    /// Takes `lots` from [`front`](OrderBook::front) of `side`, removing it when
    /// nothing is left. Returns the front order as it was before.
    fn fill_front(&mut self, side: Side, lots: u64) -> RestingOrder;

    /// The best price on `side`.
    fn best_price(&self, side: Side) -> Option<i64>;

    /// Total open lots at `price_ticks` on `side`.
    fn quantity_at(&self, side: Side, price_ticks: i64) -> u64;

    /// Up to `levels` best price levels of `side` as `(price_ticks, lots)`, best first,
    /// appended to `out`.
    fn depth(&self, side: Side, levels: usize, out: &mut Vec<(i64, u64)>);

    /// Visits the orders of `side` in priority order (best price first, oldest first
    /// within a price) until `visit` returns `false`.
    fn visit(&self, side: Side, visit: &mut dyn FnMut(&RestingOrder) -> bool);

    /// Number of resting orders on both sides.
    fn len(&self) -> usize;

    /// Whether the book is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod suite;
