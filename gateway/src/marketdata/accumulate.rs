//! The core thread's half: turning committed commands into market-data changes.
//!
//! Owns [`Accumulator`], what [`MarketData`](super::MarketData) does on the core
//! thread. Per command it only reads events and accumulates, in memory the core
//! thread alone touches: signed level changes, trades, private messages. At the end
//! of each batch it merges the accumulation into the shared per-book state (one
//! book per market and delivery slot; one short lock per touched book), lists the
//! books as dirty and wakes the
//! hub with a `try_send`. It never waits on the hub or on any client: pending level
//! changes coalesce per price level, so they stay bounded however far the hub is
//! behind, and pending trades and private messages are capped (dropping them turns
//! into a resync or a close, never a silent gap).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use gpux_engine::event::TradeExecuted;
use gpux_engine::{AccountId, Engine, Event, MarketId, Side};
use gpux_sequencer::CommittedCommand;

use super::book::{event_book, level_changes};
use super::inbox::HubMsg;
use super::state::{lock, BookKey, MarketDataState, MarketEntry};
use super::stats::TradeRec;
use super::wire::{Dec, Fill, PrivateBody, PrivateMsg, SlotName};

struct CoreMarket {
    entry: Arc<MarketEntry>,
    levels: HashMap<(Side, i64), i64>,
    trades: Vec<TradeRec>,
    book_seq: Option<u64>,
    touched: bool,
    /// The command whose effects the book was seeded with (see `market`).
    seeded_at: u64,
}

/// Market data's part of the gateway's checkpoint: what the accumulator and the
/// books' core sides folded from every command so far. Depth is not kept: it is
/// the engine's, and comes back from the replica's engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MarketDataCheckpoint {
    /// Markets whose `market_listed` was seen.
    listed: Vec<MarketId>,
    /// Per market, its closed slots still kept, oldest first.
    closed: Vec<(MarketId, Vec<u64>)>,
    /// Every book kept, in registration order.
    books: Vec<BookCheckpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct BookCheckpoint {
    market: MarketId,
    slot: u64,
    closed: bool,
    book_seq: u64,
    stats: super::stats::TradeStats,
}

impl CoreMarket {
    /// A book seeded with the engine's depth of its slot after `seeded_at`, its
    /// `seq` `book_seq`: for a core that did not follow the book from its
    /// market's listing (started late, or restored from a checkpoint).
    fn seeded(entry: Arc<MarketEntry>, engine: &Engine, book_seq: u64, seeded_at: u64) -> Self {
        let mut levels = HashMap::new();
        for side in [Side::Buy, Side::Sell] {
            for (p, q) in engine.depth_ticks(&entry.id, entry.slot, side, usize::MAX) {
                *levels.entry((side, p)).or_default() += q as i64;
            }
        }
        CoreMarket {
            entry,
            levels,
            trades: Vec::new(),
            book_seq: Some(book_seq),
            touched: false,
            seeded_at,
        }
    }
}

/// The core thread's market-data state.
pub struct Accumulator {
    shared: Arc<MarketDataState>,
    hub: SyncSender<HubMsg>,
    markets: HashMap<BookKey, CoreMarket>,
    /// Markets whose `market_listed` this accumulator saw: their books start empty.
    listed: std::collections::HashSet<MarketId>,
    /// Per market, its closed slots still kept, oldest first.
    closed: HashMap<MarketId, std::collections::VecDeque<u64>>,
    touched: Vec<BookKey>,
    private_gen: u64,
    private_set: HashSet<AccountId>,
    private_batch: Vec<PrivateMsg>,
}

impl Accumulator {
    /// State over `shared`, waking the hub through `hub`.
    pub fn new(shared: Arc<MarketDataState>, hub: SyncSender<HubMsg>) -> Self {
        Self {
            shared,
            hub,
            markets: HashMap::new(),
            listed: std::collections::HashSet::new(),
            closed: HashMap::new(),
            touched: Vec::new(),
            private_gen: u64::MAX,
            private_set: HashSet::new(),
            private_batch: Vec::new(),
        }
    }

    /// The book `key`, registered on first sight. A book of a market whose
    /// `market_listed` event this accumulator saw starts empty; one of a market
    /// first seen later (a core that did not follow from the start) is seeded with
    /// the engine's depth after `cmd_seq`.
    fn market<'a>(
        markets: &'a mut HashMap<BookKey, CoreMarket>,
        shared: &MarketDataState,
        key: BookKey,
        cmd_seq: u64,
        listed: bool,
        engine: &Engine,
    ) -> Option<&'a mut CoreMarket> {
        use std::collections::hash_map::Entry;
        match markets.entry(key) {
            Entry::Occupied(o) => Some(o.into_mut()),
            Entry::Vacant(v) => {
                let (id, slot) = key;
                let spec = engine.market(&id)?.clone();
                let entry = shared.add_market(spec, slot, 0);
                let m = if listed {
                    CoreMarket {
                        entry,
                        levels: HashMap::new(),
                        trades: Vec::new(),
                        book_seq: None,
                        touched: false,
                        seeded_at: 0,
                    }
                } else {
                    CoreMarket::seeded(entry, engine, cmd_seq, cmd_seq)
                };
                Some(v.insert(m))
            }
        }
    }

    /// The state shared with the hub and handlers.
    pub fn shared(&self) -> &MarketDataState {
        &self.shared
    }

    /// Forgets everything accumulated (market data is rebuilt from cmd_seq 1).
    pub fn reset(&mut self) {
        self.markets.clear();
        self.listed.clear();
        self.closed.clear();
        self.touched.clear();
        self.private_batch.clear();
        self.private_set.clear();
        self.private_gen = u64::MAX;
    }

    /// What the gateway's checkpoint keeps of market data (call between
    /// batches, after [`on_batch_end`](Self::on_batch_end): nothing is pending
    /// then). Books in registration order.
    pub fn checkpoint(&self) -> MarketDataCheckpoint {
        let mut books: Vec<(usize, BookCheckpoint)> = self
            .markets
            .iter()
            .map(|(&(market, slot), m)| {
                let core = lock(&m.entry.core);
                let book = BookCheckpoint {
                    market,
                    slot,
                    closed: m.entry.closed.load(Ordering::Acquire),
                    book_seq: core.book_seq,
                    stats: core.stats.clone(),
                };
                (m.entry.index, book)
            })
            .collect();
        books.sort_by_key(|(i, _)| *i);
        let mut listed: Vec<MarketId> = self.listed.iter().copied().collect();
        listed.sort();
        let mut closed: Vec<(MarketId, Vec<u64>)> = self
            .closed
            .iter()
            .map(|(id, q)| (*id, q.iter().copied().collect()))
            .collect();
        closed.sort_by_key(|(id, _)| *id);
        MarketDataCheckpoint {
            listed,
            closed,
            books: books.into_iter().map(|(_, b)| b).collect(),
        }
    }

    /// Takes up market data from `ck`, taken when `engine` was where it is now
    /// (after `engine.last_seq()`): the books' trades, candles and sequence
    /// numbers from `ck`, their depth from `engine`. Call on a fresh accumulator;
    /// then [`on_batch_end`](Self::on_batch_end) hands the books to the hub.
    pub fn restore(&mut self, ck: MarketDataCheckpoint, engine: &Engine) -> Result<(), String> {
        let fresh = self.shared.empty_core(0).stats;
        for b in &ck.books {
            if !b.stats.same_bounds(&fresh) {
                return Err("the market-data bounds changed since the checkpoint".into());
            }
            if engine.market(&b.market).is_none() {
                return Err(format!(
                    "a book of market {}, which is not listed",
                    b.market
                ));
            }
        }
        for spec in engine.markets() {
            self.shared.add_spec(spec.clone());
        }
        let seq = engine.last_seq();
        for b in ck.books {
            let Some(spec) = engine.market(&b.market).cloned() else {
                continue;
            };
            let entry = self.shared.add_market(spec, b.slot, 0);
            entry.closed.store(b.closed, Ordering::Release);
            lock(&entry.core).stats = b.stats;
            let mut m = CoreMarket::seeded(entry, engine, b.book_seq, seq);
            m.touched = true;
            self.touched.push((b.market, b.slot));
            self.markets.insert((b.market, b.slot), m);
        }
        self.listed = ck.listed.into_iter().collect();
        self.closed = ck
            .closed
            .into_iter()
            .map(|(id, q)| (id, q.into_iter().collect()))
            .collect();
        Ok(())
    }

    /// Accumulates one committed command's market data.
    pub fn on_command(&mut self, cmd: &CommittedCommand, engine: &Engine) {
        let gen = self.shared.private_gen.load(Ordering::Acquire);
        if gen != self.private_gen {
            let p = lock(&self.shared.private);
            self.private_set = p.subscribed.keys().copied().collect();
            self.private_gen = gen;
        }
        for ev in &cmd.events {
            if let Event::MarketListed(m) = ev {
                self.listed.insert(m.market);
                if let Some(spec) = engine.market(&m.market) {
                    self.shared.add_spec(spec.clone());
                }
            }
            if let Some(key) = event_book(ev) {
                self.market_event(cmd, ev, key, engine);
            }
            if !self.private_set.is_empty() {
                self.private(cmd, ev, engine);
            }
        }
    }

    /// Accumulates what one event of `cmd` changes in book `key` and its trades,
    /// and lists the book as touched if anything changed.
    fn market_event(&mut self, cmd: &CommittedCommand, ev: &Event, key: BookKey, engine: &Engine) {
        let id = key.0;
        let listed = self.listed.contains(&id);
        let Some(m) = Self::market(
            &mut self.markets,
            &self.shared,
            key,
            cmd.cmd_seq,
            listed,
            engine,
        ) else {
            return;
        };
        if let Event::SlotClosed(_) = ev {
            // The hub publishes the book once more (its orders were cancelled
            // first), then the forward curve leaves it out.
            m.entry.closed.store(true, Ordering::Release);
            if !m.touched {
                m.touched = true;
                self.touched.push(key);
            }
            self.keep_closed(key);
            return;
        }
        // A freshly seeded book must reach the hub even if this command's own
        // events change nothing.
        let mut changed = m.seeded_at == cmd.cmd_seq;
        if m.seeded_at != cmd.cmd_seq {
            let spec = &m.entry.spec;
            let levels = &mut m.levels;
            let r = level_changes(spec, ev, |ch| {
                if ch.lots != 0 {
                    *levels.entry((ch.side, ch.price_ticks)).or_default() += ch.lots;
                    changed = true;
                }
            });
            if r.is_err() {
                tracing::error!(market = %id, cmd_seq = cmd.cmd_seq, "market data: an event is off its market's grid");
            }
        }
        if changed {
            m.book_seq = Some(cmd.cmd_seq);
        }
        if let Event::TradeExecuted(t) = ev {
            let spec = &m.entry.spec;
            if let (Ok(price_ticks), Ok(lots)) = (spec.price_ticks(t.price), spec.lots(t.quantity))
            {
                m.trades.push(TradeRec {
                    trade: t.trade,
                    seq: cmd.cmd_seq,
                    ts_ns: cmd.ts_ns,
                    price_ticks,
                    lots,
                    taker_side: t.taker_side,
                });
                changed = true;
            }
        }
        if changed && !m.touched {
            m.touched = true;
            self.touched.push(key);
        }
    }

    /// Lists `key` among its market's closed books and forgets the oldest beyond
    /// [`MarketDataConfig::closed_books_kept`](super::MarketDataConfig::closed_books_kept).
    fn keep_closed(&mut self, key: BookKey) {
        let kept = self.shared.cfg.closed_books_kept.max(1);
        let q = self.closed.entry(key.0).or_default();
        q.push_back(key.1);
        while q.len() > kept {
            let Some(old) = q.pop_front() else { break };
            let old = (key.0, old);
            self.markets.remove(&old);
            self.shared.forget(&old);
        }
    }

    /// Accumulates the private messages `ev` makes for subscribed accounts: order
    /// events for their account, fills for both sides of a trade, and delivery
    /// events for both parties of an entry (`engine`, after the command, names the
    /// other party of a report or a dispute).
    fn private(&mut self, cmd: &CommittedCommand, ev: &Event, engine: &Engine) {
        let parties = match ev {
            Event::DeliveryScheduled(d) => Some([d.provider, d.holder]),
            Event::DeliverySettled(d) => Some([d.provider, d.holder]),
            Event::TradeSettled(t) => Some([t.seller, t.buyer]),
            Event::DeliveryReported(r) => engine.entry(r.entry).map(|e| [e.provider, e.holder]),
            Event::DeliveryDisputed(d) => engine.entry(d.entry).map(|e| [e.provider, e.holder]),
            _ => None,
        };
        if let Some([a, b]) = parties {
            self.push_private(cmd, a, PrivateBody::Delivery(ev.clone()));
            if b != a {
                self.push_private(cmd, b, PrivateBody::Delivery(ev.clone()));
            }
            return;
        }
        let account = match ev {
            Event::OrderAccepted(e) => Some(e.account),
            Event::OrderRested(e) => Some(e.account),
            Event::OrderCancelled(e) => Some(e.account),
            Event::OrderAmended(e) => Some(e.account),
            Event::MassCancelled(e) => Some(e.account),
            Event::OrderRejected(e) => e.account,
            Event::TradeExecuted(t) => return self.private_fills(cmd, t),
            _ => None,
        };
        if let Some(a) = account {
            self.push_private(cmd, a, PrivateBody::Order(ev.clone()));
        }
    }

    /// The maker's and the taker's fill of trade `t`.
    fn private_fills(&mut self, cmd: &CommittedCommand, t: &TradeExecuted) {
        let fill = |order, side, liquidity, fee, remaining| Fill {
            trade: t.trade,
            market: t.market,
            slot: SlotName(t.slot),
            order,
            side,
            liquidity,
            price: Dec(t.price),
            quantity: Dec(t.quantity),
            fee: Dec(fee),
            remaining: Dec(remaining),
        };
        self.push_private(
            cmd,
            t.maker_account,
            PrivateBody::Fill(fill(
                t.maker_order,
                t.taker_side.opposite(),
                "maker",
                t.maker_fee,
                t.maker_remaining,
            )),
        );
        self.push_private(
            cmd,
            t.taker_account,
            PrivateBody::Fill(fill(
                t.taker_order,
                t.taker_side,
                "taker",
                t.taker_fee,
                t.taker_remaining,
            )),
        );
    }

    /// Queues `body` for `account` if it has an `orders` subscription.
    fn push_private(&mut self, cmd: &CommittedCommand, account: AccountId, body: PrivateBody) {
        if self.private_set.contains(&account) {
            self.private_batch.push(PrivateMsg {
                account,
                seq: cmd.cmd_seq,
                ts_ns: cmd.ts_ns,
                body,
            });
        }
    }

    /// Hands the batch's accumulation to the hub. Never waits on it.
    pub fn on_batch_end(&mut self, engine: &Engine) {
        self.shared
            .now_ns
            .store(engine.last_ts_ns(), Ordering::Release);
        let mut wake = false;
        let mut newly_dirty = Vec::new();
        let pending_trades_max = self.shared.cfg.pending_trades_max;
        for key in self.touched.drain(..) {
            let Some(m) = self.markets.get_mut(&key) else {
                continue;
            };
            m.touched = false;
            let mut core = lock(&m.entry.core);
            for (k, d) in m.levels.drain() {
                *core.pending_levels.entry(k).or_default() += d;
            }
            for t in m.trades.drain(..) {
                core.stats.add(t);
                if core.pending_trades.len() < pending_trades_max {
                    core.pending_trades.push(t);
                } else {
                    core.trades_overflowed = true;
                }
            }
            if let Some(s) = m.book_seq.take() {
                core.book_seq = core.book_seq.max(s);
            }
            if !core.dirty {
                core.dirty = true;
                newly_dirty.push(m.entry.index);
            }
        }
        if !newly_dirty.is_empty() {
            lock(&self.shared.dirty).extend(newly_dirty);
            wake = true;
        }
        if !self.private_batch.is_empty() {
            let mut p = lock(&self.shared.private);
            if p.pending.len() + self.private_batch.len() > self.shared.cfg.pending_private_max {
                p.pending.clear();
                p.overflowed = true;
                self.private_batch.clear();
            } else {
                p.pending.append(&mut self.private_batch);
            }
            wake = true;
        }
        if wake && self.shared.set_dirty() {
            // Full: the hub has messages to read and checks the dirty flag after them.
            let _ = self.hub.try_send(HubMsg::Wake);
        }
    }
}
