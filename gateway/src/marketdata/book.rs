//! L2 depth derived from events alone, in the engine's integer units.
//!
//! Owns [`level_changes`] (what one event does to depth, as `docs/PROTOCOL.md`,
//! "Rebuilding L2 depth from events", states it) and [`L2Book`] (price level →
//! total resting lots, per side). Market data never asks the engine for depth: it
//! rebuilds it from committed events, so a gateway following the events topic shows
//! the same book as one next to the engine. Tests cross-check against
//! `Engine::depth` after every command.

use std::collections::BTreeMap;

use gpux_engine::market::MarketSpec;
use gpux_engine::{Event, MarketId, Side};
use rust_decimal::Decimal;

/// One signed change to one price level: `lots` added (positive) or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelChange {
    /// Which side of the book.
    pub side: Side,
    /// The level's price, in ticks of the market.
    pub price_ticks: i64,
    /// Lots added (negative: removed).
    pub lots: i64,
}

/// The book (market, delivery slot) whose depth, trades or life an event changes,
/// if any: trades, resting, cancels, amends, and the slot's gate closing.
pub fn event_book(event: &Event) -> Option<(MarketId, u64)> {
    match event {
        Event::TradeExecuted(e) => Some((e.market, e.slot)),
        Event::OrderRested(e) => Some((e.market, e.slot)),
        Event::OrderCancelled(e) => Some((e.market, e.slot)),
        Event::OrderAmended(e) => Some((e.market, e.slot)),
        Event::SlotClosed(e) => Some((e.market, e.slot)),
        _ => None,
    }
}

/// Why an event's numbers do not fit its market (a bug or a foreign ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffGrid;

fn ticks(spec: &MarketSpec, price: Decimal) -> Result<i64, OffGrid> {
    spec.price_ticks(price).map_err(|_| OffGrid)
}

fn lots(spec: &MarketSpec, quantity: Decimal) -> Result<i64, OffGrid> {
    if quantity.is_zero() {
        return Ok(0);
    }
    spec.lots(quantity)
        .ok()
        .and_then(|l| i64::try_from(l).ok())
        .ok_or(OffGrid)
}

/// Calls `out` with each depth change `event` makes in market `spec` (at most one
/// per event). Events of other kinds change nothing.
pub fn level_changes(
    spec: &MarketSpec,
    event: &Event,
    mut out: impl FnMut(LevelChange),
) -> Result<(), OffGrid> {
    match event {
        Event::OrderRested(e) => out(LevelChange {
            side: e.side,
            price_ticks: ticks(spec, e.price)?,
            lots: lots(spec, e.quantity)?,
        }),
        Event::TradeExecuted(e) => out(LevelChange {
            side: e.taker_side.opposite(),
            price_ticks: ticks(spec, e.price)?,
            lots: -lots(spec, e.quantity)?,
        }),
        Event::OrderCancelled(e) if e.resting => {
            let price = e.price.ok_or(OffGrid)?;
            out(LevelChange {
                side: e.side,
                price_ticks: ticks(spec, price)?,
                lots: -lots(spec, e.quantity)?,
            })
        }
        Event::OrderAmended(e) if e.priority_kept => out(LevelChange {
            side: e.side,
            price_ticks: ticks(spec, e.price)?,
            lots: lots(spec, e.quantity)? - lots(spec, e.old_quantity)?,
        }),
        Event::OrderAmended(e) => out(LevelChange {
            side: e.side,
            price_ticks: ticks(spec, e.old_price)?,
            lots: -lots(spec, e.old_quantity)?,
        }),
        _ => {}
    }
    Ok(())
}

/// Price level → total resting lots, per side. Levels at zero are removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Book {
    bids: BTreeMap<i64, u64>,
    asks: BTreeMap<i64, u64>,
}

impl L2Book {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<i64, u64> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Applies a signed change; returns the level's new total (0: removed). A
    /// removal of more than rests is a bug upstream: the level is clamped at zero
    /// and `false` is returned as the second value.
    pub fn apply(&mut self, side: Side, price_ticks: i64, lots: i64) -> (u64, bool) {
        let levels = self.side_mut(side);
        let old = levels.get(&price_ticks).copied().unwrap_or(0);
        let new = old as i128 + lots as i128;
        let (new, ok) = if new < 0 {
            (0, false)
        } else {
            (u64::try_from(new).unwrap_or(u64::MAX), true)
        };
        if new == 0 {
            levels.remove(&price_ticks);
        } else {
            levels.insert(price_ticks, new);
        }
        (new, ok)
    }

    /// Lots resting at a level (0 when none).
    pub fn quantity_at(&self, side: Side, price_ticks: i64) -> u64 {
        match side {
            Side::Buy => self.bids.get(&price_ticks),
            Side::Sell => self.asks.get(&price_ticks),
        }
        .copied()
        .unwrap_or(0)
    }

    /// Up to `n` best levels of `side`, best first (highest bid, lowest ask).
    pub fn levels(&self, side: Side, n: usize) -> impl Iterator<Item = (i64, u64)> + '_ {
        let it: Box<dyn Iterator<Item = (&i64, &u64)>> = match side {
            Side::Buy => Box::new(self.bids.iter().rev()),
            Side::Sell => Box::new(self.asks.iter()),
        };
        it.take(n).map(|(&p, &q)| (p, q))
    }

    /// The best level of `side`.
    pub fn best(&self, side: Side) -> Option<(i64, u64)> {
        self.levels(side, 1).next()
    }

    /// How many levels `side` has.
    pub fn len(&self, side: Side) -> usize {
        match side {
            Side::Buy => self.bids.len(),
            Side::Sell => self.asks.len(),
        }
    }

    /// Whether both sides are empty.
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpux_engine::{Command, Engine};
    use proptest::prelude::*;

    const MARKET: &str = "h100-sxm.us-east";
    /// Two delivery slots (engine time in these tests is a few nanoseconds).
    const SLOTS: [u64; 2] = [7_200, 10_800];

    fn cmd(json: serde_json::Value) -> Command {
        serde_json::from_value(json).unwrap()
    }

    fn setup() -> Vec<Command> {
        vec![
            cmd(
                serde_json::json!({"type":"list_market","market":MARKET,"tick_size":"0.01",
                "lot_size":"0.5","maker_fee_bps":10,"taker_fee_bps":25}),
            ),
            cmd(serde_json::json!({"type":"create_account","account":1})),
            cmd(serde_json::json!({"type":"create_account","account":2})),
            cmd(serde_json::json!({"type":"deposit","account":1,"amount":"1000000"})),
            cmd(serde_json::json!({"type":"deposit","account":2,"amount":"1000000"})),
            cmd(
                serde_json::json!({"type":"add_capacity","account":1,"market":MARKET,
                "from_slot":SLOTS[0],"to_slot":SLOTS[1],"quantity":"100000"}),
            ),
            cmd(
                serde_json::json!({"type":"add_capacity","account":2,"market":MARKET,
                "from_slot":SLOTS[0],"to_slot":SLOTS[1],"quantity":"100000"}),
            ),
        ]
    }

    /// One random order-flow step: place (limit, IOC, market), cancel, amend.
    fn step(kind: u8, account: u8, buy: bool, price: u16, qty: u8, order: u8) -> Command {
        let account = 1 + (account % 2) as u64;
        let side = if buy { "buy" } else { "sell" };
        let slot = SLOTS[usize::from(price.is_multiple_of(3))];
        let price = format!("{}.{:02}", 2 + price / 100 % 2, price % 100);
        let qty = format!(
            "{}.{}",
            1 + qty / 2 % 8,
            if qty.is_multiple_of(2) { 0 } else { 5 }
        );
        let order = 1 + order as u64 % 40;
        match kind % 8 {
            0..=3 => cmd(
                serde_json::json!({"type":"place_order","account":account,"market":MARKET,
                "slot":slot,"side":side,"price":price,"quantity":qty,"stp":"none"}),
            ),
            4 => cmd(
                serde_json::json!({"type":"place_order","account":account,"market":MARKET,
                "slot":slot,"side":side,"price":price,"quantity":qty,"time_in_force":"ioc"}),
            ),
            5 => cmd(serde_json::json!({"type":"cancel_order","account":account,"order_id":order})),
            6 => cmd(
                serde_json::json!({"type":"amend_order","account":account,"order_id":order,
                "quantity":qty}),
            ),
            _ => cmd(
                serde_json::json!({"type":"amend_order","account":account,"order_id":order,
                "price":price}),
            ),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The books rebuilt from events equal the engine's own depth of each slot
        /// after every command.
        #[test]
        fn events_rebuild_engine_depth(steps in prop::collection::vec(
            (any::<u8>(), any::<u8>(), any::<bool>(), 0u16..200, any::<u8>(), any::<u8>()), 1..150)) {
            let mut engine: Engine = Engine::new();
            let mut books = [L2Book::new(), L2Book::new()];
            let market: MarketId = MARKET.parse().unwrap();
            let mut events = Vec::new();
            let mut seq = 0;
            let cmds = setup().into_iter().chain(steps.into_iter().map(|(k, a, b, p, q, o)| step(k, a, b, p, q, o)));
            for c in cmds {
                seq += 1;
                events.clear();
                engine.apply(seq, seq, &c, &mut events);
                let spec = engine.market(&market).unwrap().clone();
                for e in &events {
                    let Some((_, slot)) = event_book(e) else { continue };
                    let book = &mut books[SLOTS.iter().position(|&s| s == slot).unwrap()];
                    level_changes(&spec, e, |ch| {
                        let (_, ok) = book.apply(ch.side, ch.price_ticks, ch.lots);
                        assert!(ok, "removed more than rests at {ch:?}");
                    }).unwrap();
                }
                for (book, slot) in books.iter().zip(SLOTS) {
                    for side in [Side::Buy, Side::Sell] {
                        let ours: Vec<_> = book.levels(side, usize::MAX).collect();
                        prop_assert_eq!(ours, engine.depth_ticks(&market, slot, side, usize::MAX));
                    }
                }
            }
        }
    }
}
