//! `list_market`: the reference data every other command refers to.
//!
//! A market is listed once and never changes or goes away, so its index in
//! [`Engine`]'s list is a stable handle; its slots' books come and go.

use crate::book::OrderBook;
use crate::command::ListMarket;
use crate::event::{Event, EventSink, MarketListed};
use crate::limits::MARKETS_MAX;
use crate::market::MarketSpec;
use crate::reject::RejectReason;
use crate::state::{Engine, MarketState};
use std::collections::BTreeMap;

impl<B: OrderBook> Engine<B> {
    /// Lists a market: its spec must be valid, its id new, and the number of
    /// markets below [`MARKETS_MAX`].
    pub(super) fn list_market<S: EventSink>(
        &mut self,
        c: &ListMarket,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let spec = MarketSpec::new(
            c.market,
            c.tick_size,
            c.lot_size,
            c.maker_fee_bps,
            c.taker_fee_bps,
            c.min_price,
            c.max_price,
            c.max_order_quantity,
            c.slot_rules(),
        )?;
        if self.market_index.contains_key(&c.market) {
            return Err(RejectReason::MarketExists);
        }
        if self.markets.len() >= MARKETS_MAX {
            return Err(RejectReason::LimitReached);
        }
        out.push(Event::MarketListed(MarketListed::from(&spec)));
        self.market_index.insert(spec.id, self.markets.len());
        self.markets.push(MarketState {
            spec,
            slots: BTreeMap::new(),
            slot_books: rustc_hash::FxHashMap::default(),
        });
        Ok(())
    }
}
