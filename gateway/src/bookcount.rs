//! Book sizes per market — resting orders and price levels on each side, summed
//! over the market's delivery slots — kept up to date event by event, for metrics.
//!
//! Owns [`BookCounts`] and its published form, [`BookCount`]. Counting by walking
//! every account's open orders under the replica's read lock made a scrape of a
//! large book stall the core thread that applies committed commands; here each
//! event costs O(1) and a scrape copies O(markets) numbers that the core thread
//! publishes after each chunk of commands (see `replica::ReplicaState::book_counts`).
//!
//! Which events move an order on or off a book (as the engine emits them):
//!
//! | event | effect |
//! |---|---|
//! | `order_rested` | +1 order at (side, price) |
//! | `order_cancelled` with `resting: true` | −1 at (side, price) |
//! | `trade_executed` with `maker_remaining` zero | −1 at (maker side, trade price) |
//! | `order_amended` without `priority_kept` | −1 at (side, old price): the order leaves the book and re-enters it (`order_rested`) if it still rests after matching |
//!
//! [`BookCounts::recount`] counts the same from the engine's state (O(orders));
//! tests check the two agree after every command of random order flow.

use std::collections::HashMap;

use gpux_engine::{Engine, Event, MarketId, Side};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One market's book size, as metrics report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookCount {
    /// The market.
    pub market: MarketId,
    /// Resting buy orders.
    pub bid_orders: u64,
    /// Price levels with resting buy orders (over all slots).
    pub bid_levels: u64,
    /// Resting sell orders.
    pub ask_orders: u64,
    /// Price levels with resting sell orders (over all slots).
    pub ask_levels: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct SideCount {
    orders: u64,
    /// Resting orders per (slot, price in ticks); a level is listed while it has any.
    levels: HashMap<(u64, i64), u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MarketCount {
    id: MarketId,
    bids: SideCount,
    asks: SideCount,
}

impl MarketCount {
    fn side(&mut self, side: Side) -> &mut SideCount {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }
}

/// Resting orders and levels per market and side, folded from committed events
/// (kept whole in the gateway's checkpoint).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BookCounts {
    /// In listing order.
    markets: Vec<MarketCount>,
    index: HashMap<MarketId, usize>,
    #[serde(skip)]
    changed: bool,
}

impl BookCounts {
    /// Folds one command's events; `engine` is the replica after the command (for
    /// the markets' tick sizes).
    pub fn apply(&mut self, engine: &Engine, events: &[Event]) {
        for ev in events {
            match ev {
                Event::MarketListed(m) if !self.index.contains_key(&m.market) => {
                    self.index.insert(m.market, self.markets.len());
                    self.markets.push(MarketCount {
                        id: m.market,
                        bids: SideCount::default(),
                        asks: SideCount::default(),
                    });
                    self.changed = true;
                }
                Event::OrderRested(o) => self.add(engine, (o.market, o.slot), o.side, o.price, 1),
                Event::OrderCancelled(o) if o.resting => {
                    if let Some(p) = o.price {
                        self.add(engine, (o.market, o.slot), o.side, p, -1);
                    }
                }
                Event::TradeExecuted(t) if t.maker_remaining.is_zero() => {
                    self.add(
                        engine,
                        (t.market, t.slot),
                        t.taker_side.opposite(),
                        t.price,
                        -1,
                    );
                }
                Event::OrderAmended(a) if !a.priority_kept => {
                    self.add(engine, (a.market, a.slot), a.side, a.old_price, -1);
                }
                _ => {}
            }
        }
    }

    fn add(
        &mut self,
        engine: &Engine,
        (market, slot): (MarketId, u64),
        side: Side,
        price: Decimal,
        delta: i8,
    ) {
        let Some(ticks) = engine
            .market(&market)
            .and_then(|s| s.price_ticks(price).ok())
        else {
            tracing::error!(%market, %price, "book counts: an event is off its market's grid");
            return;
        };
        let Some(&i) = self.index.get(&market) else {
            tracing::error!(%market, "book counts: an order event before its market was listed");
            return;
        };
        let s = self.markets[i].side(side);
        if delta > 0 {
            s.orders += 1;
            *s.levels.entry((slot, ticks)).or_default() += 1;
        } else {
            s.orders = s.orders.saturating_sub(1);
            if let Some(n) = s.levels.get_mut(&(slot, ticks)) {
                *n -= 1;
                if *n == 0 {
                    s.levels.remove(&(slot, ticks));
                }
            }
        }
        self.changed = true;
    }

    /// Every market's counts, in listing order. O(markets).
    pub fn snapshot(&self) -> Vec<BookCount> {
        self.markets
            .iter()
            .map(|m| BookCount {
                market: m.id,
                bid_orders: m.bids.orders,
                bid_levels: m.bids.levels.len() as u64,
                ask_orders: m.asks.orders,
                ask_levels: m.asks.levels.len() as u64,
            })
            .collect()
    }

    /// Lists every market as changed (after a restore: the next
    /// [`take_changed`](Self::take_changed) publishes them all).
    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// The snapshot if anything changed since the last call.
    pub fn take_changed(&mut self) -> Option<Vec<BookCount>> {
        std::mem::take(&mut self.changed).then(|| self.snapshot())
    }

    /// The same counts computed from `engine`'s state by walking every open
    /// order: O(orders). For tests and audits, never on a hot path.
    pub fn recount(engine: &Engine) -> Vec<BookCount> {
        let levels = |m: &MarketId, side| -> u64 {
            let slots = engine.slots(m).unwrap_or_default();
            slots
                .iter()
                .map(|&s| engine.depth_ticks(m, s, side, usize::MAX).len() as u64)
                .sum()
        };
        let mut out: Vec<BookCount> = engine
            .markets()
            .map(|m| BookCount {
                market: m.id,
                bid_orders: 0,
                bid_levels: levels(&m.id, Side::Buy),
                ask_orders: 0,
                ask_levels: levels(&m.id, Side::Sell),
            })
            .collect();
        for account in engine.account_ids() {
            for o in engine.open_orders(account).unwrap_or_default() {
                if let Some(b) = out.iter_mut().find(|b| b.market == o.market) {
                    match o.side {
                        Side::Buy => b.bid_orders += 1,
                        Side::Sell => b.ask_orders += 1,
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    const MARKETS: [&str; 2] = ["h100-sxm.us-east", "a100-80gb.eu-west"];
    /// Two slots; the first one's gate (3300 s) closes during the flow.
    const SLOTS: [u64; 2] = [3_600, 7_200];

    /// An engine and the counts kept beside it, fed one command at a time.
    struct Flow {
        engine: Engine,
        counts: BookCounts,
        seq: u64,
    }

    impl Flow {
        fn run(&mut self, cmd: serde_json::Value, ts: u64) {
            self.seq += 1;
            let env = json!({"v": 3, "ts_ns": ts, "command": cmd}).to_string();
            let mut events = Vec::new();
            self.engine
                .apply_json(self.seq, ts, env.as_bytes(), &mut events);
            self.counts.apply(&self.engine, &events);
        }

        /// Both markets listed; four funded accounts with capacity in each.
        fn set_up(&mut self, ts: u64) {
            for m in MARKETS {
                self.run(
                    json!({"type": "list_market", "market": m, "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": 0, "taker_fee_bps": 0}),
                    ts,
                );
            }
            for a in 1..=4u64 {
                self.run(json!({"type": "create_account", "account": a}), ts);
                self.run(
                    json!({"type": "deposit", "account": a, "amount": "1000000"}),
                    ts,
                );
                for m in MARKETS {
                    self.run(
                        json!({"type": "add_capacity", "account": a, "market": m, "from_slot": SLOTS[0], "to_slot": SLOTS[1], "quantity": "100000"}),
                        ts,
                    );
                }
            }
        }
    }

    /// One random command of the flow at time `ts`.
    fn random_command(
        rng: &mut rand_chacha::ChaCha8Rng,
        engine: &Engine,
        ts: u64,
    ) -> serde_json::Value {
        let account = rng.random_range(1..=4u64);
        let market = MARKETS[rng.random_range(0..2)];
        let slot = SLOTS[rng.random_range(0..2)];
        let side = if rng.random_bool(0.5) { "buy" } else { "sell" };
        let price = format!("1.{:02}", rng.random_range(0..20));
        let qty = rng.random_range(1..6u32).to_string();
        let stp = ["cancel_taker", "cancel_maker", "cancel_both", "none"][rng.random_range(0..4)];
        let order = rng.random_range(1..=engine.open_order_count() as u64 * 2 + 2);
        match rng.random_range(0..10) {
            0..=3 => {
                json!({"type": "place_order", "account": account, "market": market, "slot": slot, "side": side, "order_type": "limit", "price": price, "quantity": qty, "stp": stp, "post_only": rng.random_bool(0.2)})
            }
            4 => {
                json!({"type": "place_order", "account": account, "market": market, "slot": slot, "side": side, "order_type": "limit", "price": price, "quantity": qty, "stp": stp, "time_in_force": "gtd", "good_till_ns": ts + rng.random_range(1..5_000_000_000u64)})
            }
            5 => {
                json!({"type": "place_order", "account": account, "market": market, "slot": slot, "side": side, "order_type": "limit", "price": price, "quantity": qty, "stp": stp, "time_in_force": "ioc"})
            }
            6 => {
                json!({"type": "place_order", "account": account, "market": market, "slot": slot, "side": side, "order_type": "market", "quantity": qty, "cap": "100", "stp": stp})
            }
            7 => json!({"type": "cancel_order", "account": account, "order_id": order}),
            8 => {
                json!({"type": "amend_order", "account": account, "order_id": order, "price": price, "quantity": qty})
            }
            _ => json!({"type": "mass_cancel", "account": account, "market": market}),
        }
    }

    /// Random order flow: limit (GTC, GTD, post-only, IOC) and market orders of
    /// four accounts over two markets with every STP mode, cancels, amends (price
    /// and quantity), mass cancels and time passing (GTD expiry, and a slot's gate
    /// closing, which cancels its orders). After every command the incremental
    /// counts equal a full recount.
    #[test]
    fn counts_kept_per_event_equal_a_full_recount_after_every_command() {
        for seed in 0..8u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut flow = Flow {
                engine: Engine::new(),
                counts: BookCounts::default(),
                seq: 0,
            };
            let mut ts = 1_000_000_000u64;
            flow.set_up(ts);
            for _ in 0..600 {
                ts += rng.random_range(0..12_000_000_000u64);
                let cmd = random_command(&mut rng, &flow.engine, ts);
                flow.run(cmd.clone(), ts);
                assert_eq!(
                    flow.counts.snapshot(),
                    BookCounts::recount(&flow.engine),
                    "seed {seed}, after {cmd}"
                );
            }
            assert!(
                flow.engine.open_order_count() > 0,
                "the flow leaves orders resting"
            );
        }
    }
}
