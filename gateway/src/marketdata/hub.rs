//! The hub: one thread that publishes market data and owns every subscription.
//!
//! Owns the subscriber lists and the published books. Because one thread both
//! publishes updates and answers subscriptions, a snapshot and the updates that
//! follow it always fit: a snapshot is taken from the published book between two
//! publications, so the first update after it has `prev_seq` equal to its `seq`.
//!
//! A flush (at most one per [`MarketDataConfig::flush_interval`], see
//! `docs/MARKET_DATA.md`) takes what the core thread left in each dirty market,
//! applies it to the published book, serializes each message once and queues the
//! same bytes to every subscriber. A subscriber whose queue is full is resynced:
//! its queue is replaced by fresh snapshots of all its channels (or, when it has
//! the private `orders` channel, whose updates cannot be re-sent, it is closed with
//! code 4000). The hub never waits on a connection, so no client can slow another,
//! the hub, or the core thread.
//!
//! [`MarketDataConfig::flush_interval`]: super::MarketDataConfig::flush_interval

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use gpux_engine::{AccountId, MarketId, Side};

use super::inbox::{ChannelReq, ConnId, HubMsg};
use super::queue::{CloseReason, Out, OutQueue};
use super::state::{lock, BookKey, MarketDataState, MarketEntry};
use super::stats::{TradeRec, Window24h};
use super::wire::{
    self, BookMsg, CurveMsg, CurveRow, Reply, SlotName, TickerMsg, TickerVal, TradeJson, TradesMsg,
};

/// A channel, resolved: books by (market, slot) so a subscription may precede
/// the book's first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Chan {
    Book(BookKey),
    Trades(BookKey),
    Ticker(BookKey),
    Curve(MarketId),
    Orders(AccountId),
}

struct ConnState {
    queue: Arc<OutQueue>,
    subs: Vec<Chan>,
}

/// The hub thread's state.
pub struct Hub {
    shared: Arc<MarketDataState>,
    rx: Receiver<HubMsg>,
    conns: HashMap<ConnId, ConnState>,
    subs: HashMap<Chan, Vec<(ConnId, Arc<OutQueue>)>>,
    last_flush: Option<Instant>,
    /// Connections resynced during the current fan-out: they already have
    /// snapshots that include everything still to be fanned out.
    resynced: HashSet<ConnId>,
    overflowed: Vec<ConnId>,
}

const SHUTDOWN: &str = "server shutting down";

const REBUILDING: &str = "market data is being rebuilt; reconnect shortly";

fn rebuilding() -> CloseReason {
    CloseReason {
        code: super::close::TRY_AGAIN_LATER,
        reason: REBUILDING.into(),
    }
}

fn unknown(m: &MarketId) -> (&'static str, String) {
    ("unknown_market", format!("no market {m:?} is listed"))
}

fn slow_private() -> CloseReason {
    CloseReason {
        code: super::close::SLOW_CONSUMER,
        reason: "slow consumer: private order updates were dropped; reconnect and re-read open orders over REST".into(),
    }
}

impl Hub {
    /// A hub reading `rx`.
    pub fn new(shared: Arc<MarketDataState>, rx: Receiver<HubMsg>) -> Self {
        Self {
            shared,
            rx,
            conns: HashMap::new(),
            subs: HashMap::new(),
            last_flush: None,
            resynced: HashSet::new(),
            overflowed: Vec::new(),
        }
    }

    /// Runs until [`HubMsg::Stop`] or until every sender is gone.
    pub fn run(mut self) {
        let interval = self.shared.cfg.flush_interval;
        let beat = self
            .shared
            .cfg
            .book_heartbeat_interval
            .max(Duration::from_millis(1));
        let mut next_beat = Instant::now() + beat;
        loop {
            // Requests first (so subscriptions never starve behind publications),
            // then a publication when one is due, then book heartbeats when due,
            // then wait for any of them.
            while let Ok(m) = self.rx.try_recv() {
                if !self.handle(m) {
                    return self.stop();
                }
            }
            let dirty = self.shared.dirty_flag.load(Ordering::Acquire);
            let wait = self
                .last_flush
                .map_or(Duration::ZERO, |t| interval.saturating_sub(t.elapsed()));
            if dirty && wait.is_zero() {
                self.flush();
                continue;
            }
            if Instant::now() >= next_beat {
                self.book_heartbeats();
                next_beat = Instant::now() + beat;
            }
            let until_beat = next_beat.saturating_duration_since(Instant::now());
            let msg = match self.rx.recv_timeout(if dirty {
                wait.min(until_beat)
            } else {
                until_beat
            }) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if !self.handle(msg) {
                return self.stop();
            }
        }
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        for c in self.conns.values() {
            c.queue.close(
                CloseReason {
                    code: super::close::GOING_AWAY,
                    reason: SHUTDOWN.into(),
                },
                false,
            );
        }
        self.conns.clear();
        self.subs.clear();
    }

    /// Closes every connection and empties every market (see [`HubMsg::Reset`]).
    /// Markets stay registered (with their indices), empty, until the rebuild
    /// fills them again.
    fn reset(&mut self) {
        for c in self.conns.values() {
            c.queue.close(rebuilding(), false);
        }
        self.conns.clear();
        self.subs.clear();
        self.overflowed.clear();
        self.resynced.clear();
        {
            let mut p = lock(&self.shared.private);
            p.subscribed.clear();
            p.pending.clear();
            p.overflowed = false;
        }
        self.shared.private_gen.fetch_add(1, Ordering::AcqRel);
        lock(&self.shared.dirty).clear();
        self.shared.dirty_flag.store(false, Ordering::Release);
        for e in self.shared.all_markets() {
            *lock(&e.core) = self.shared.empty_core(0);
            *lock(&e.published) = super::state::Published::empty(0);
            e.closed.store(false, Ordering::Release);
        }
        self.shared.now_ns.store(0, Ordering::Release);
    }

    /// Handles one message; false on `Stop`.
    fn handle(&mut self, msg: HubMsg) -> bool {
        match msg {
            HubMsg::Wake => {}
            HubMsg::Register { conn, queue } => {
                if self.shared.serving_generation().is_none() {
                    queue.close(rebuilding(), false);
                    return true;
                }
                self.conns.insert(
                    conn,
                    ConnState {
                        queue,
                        subs: Vec::new(),
                    },
                );
            }
            HubMsg::Subscribe {
                conn,
                channel,
                name,
                id,
            } => {
                self.subscribe(conn, channel, &name, id.as_ref());
                self.handle_overflows();
            }
            HubMsg::Unsubscribe {
                conn,
                channel,
                name,
                id,
            } => {
                self.unsubscribe(conn, channel, &name, id.as_ref());
                self.handle_overflows();
            }
            HubMsg::Resync { conn } => {
                self.overflowed.push(conn);
                self.handle_overflows();
            }
            HubMsg::Closed { conn } => self.remove_conn(conn),
            HubMsg::Reset { done } => {
                self.reset();
                let _ = done.send(());
            }
            HubMsg::Stop => return false,
        }
        self.resynced.clear();
        true
    }

    /// The channel, if its market is listed (`Err` names the error code and
    /// message). A book's channel needs a book the gateway has, or a slot that
    /// trades now: its snapshot is then the empty book (`seq` 0), and its updates
    /// start with the slot's first order. Nothing is registered for it, so no
    /// client can make the gateway keep books of slots that never trade.
    fn resolve(&self, channel: &ChannelReq) -> Result<Chan, (&'static str, String)> {
        let book = |key: &BookKey| -> Result<BookKey, (&'static str, String)> {
            let spec = self.shared.spec(&key.0).ok_or_else(|| unknown(&key.0))?;
            if self.shared.market(key).is_none() {
                let now = self.shared.now_ns.load(Ordering::Acquire);
                if let Err(r) = spec.check_slot(key.1, now) {
                    return Err((
                        "slot_not_open",
                        format!(
                            "slot {} of {} has no book and does not trade now: {}",
                            gpux_engine::slot::format_slot(key.1),
                            key.0,
                            r.message()
                        ),
                    ));
                }
            }
            Ok(*key)
        };
        Ok(match channel {
            ChannelReq::Book(k) => Chan::Book(book(k)?),
            ChannelReq::Trades(k) => Chan::Trades(book(k)?),
            ChannelReq::Ticker(k) => Chan::Ticker(book(k)?),
            ChannelReq::Curve(m) => {
                self.shared.spec(m).ok_or_else(|| unknown(m))?;
                Chan::Curve(*m)
            }
            ChannelReq::Orders(a) => Chan::Orders(*a),
        })
    }

    fn reply(&mut self, conn: ConnId, r: &Reply<'_>) {
        if let Some(c) = self.conns.get(&conn) {
            if c.queue.push(Out::Text(wire::to_text(r))).is_err() {
                self.overflowed.push(conn);
            }
        }
    }

    fn subscribe(
        &mut self,
        conn: ConnId,
        channel: ChannelReq,
        name: &str,
        id: Option<&serde_json::Value>,
    ) {
        let Some(state) = self.conns.get(&conn) else {
            return;
        };
        let chan = match self.resolve(&channel) {
            Ok(c) => c,
            Err((code, msg)) => return self.reply(conn, &Reply::error(code, &msg, Some(name), id)),
        };
        if state.subs.contains(&chan) {
            return self.reply(
                conn,
                &Reply::error(
                    "already_subscribed",
                    "this connection is already subscribed to the channel",
                    Some(name),
                    id,
                ),
            );
        }
        let max = self.shared.cfg.max_subscriptions;
        if state.subs.len() >= max {
            let msg = format!("at most {max} subscriptions per connection");
            return self.reply(
                conn,
                &Reply::error("too_many_subscriptions", &msg, Some(name), id),
            );
        }
        let queue = Arc::clone(&state.queue);
        if let Chan::Orders(account) = chan {
            let mut p = lock(&self.shared.private);
            *p.subscribed.entry(account).or_default() += 1;
            self.shared.private_gen.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.subs.push(chan);
        }
        self.subs
            .entry(chan)
            .or_default()
            .push((conn, Arc::clone(&queue)));
        self.reply(conn, &Reply::ack("subscribed", Some(name), id));
        if let Some(snap) = self.snapshot(chan) {
            if queue.push(Out::Text(snap)).is_err() {
                self.overflowed.push(conn);
            }
        }
    }

    fn unsubscribe(
        &mut self,
        conn: ConnId,
        channel: ChannelReq,
        name: &str,
        id: Option<&serde_json::Value>,
    ) {
        let chan = self.resolve(&channel).ok();
        let had = match (chan, self.conns.get_mut(&conn)) {
            (Some(chan), Some(c)) => match c.subs.iter().position(|s| *s == chan) {
                Some(i) => {
                    c.subs.swap_remove(i);
                    true
                }
                None => false,
            },
            _ => false,
        };
        if !had {
            return self.reply(
                conn,
                &Reply::error(
                    "not_subscribed",
                    "this connection is not subscribed to the channel",
                    Some(name),
                    id,
                ),
            );
        }
        if let Some(chan) = chan {
            self.drop_sub(conn, chan);
        }
        self.reply(conn, &Reply::ack("unsubscribed", Some(name), id));
    }

    fn drop_sub(&mut self, conn: ConnId, chan: Chan) {
        if let Some(list) = self.subs.get_mut(&chan) {
            list.retain(|(c, _)| *c != conn);
            if list.is_empty() {
                self.subs.remove(&chan);
            }
        }
        if let Chan::Orders(account) = chan {
            let mut p = lock(&self.shared.private);
            if let Some(n) = p.subscribed.get_mut(&account) {
                *n -= 1;
                if *n == 0 {
                    p.subscribed.remove(&account);
                }
            }
            self.shared.private_gen.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn remove_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            for chan in c.subs {
                self.drop_sub(conn, chan);
            }
        }
    }

    /// The book `key`, or an empty one when the gateway has none (yet, or any
    /// more) of a listed market.
    fn entry(&self, key: BookKey) -> Option<Arc<MarketEntry>> {
        self.shared.market(&key).or_else(|| {
            let spec = self.shared.spec(&key.0)?;
            Some(self.shared.detached_book(spec, key.1))
        })
    }

    /// A `curve.<market>` message of `books` (open ones only in a snapshot).
    fn curve(&self, market: MarketId, kind: &'static str, books: &[Arc<MarketEntry>]) -> Utf8Bytes {
        let channel = format!("curve.{market}");
        let slots = books
            .iter()
            .filter_map(|e| {
                let closed = e.closed.load(Ordering::Acquire);
                if closed && kind == "snapshot" {
                    return None;
                }
                let v = lock(&e.published).ticker;
                Some(CurveRow::new(&e.spec, e.slot, &v, closed))
            })
            .collect();
        wire::to_text(&CurveMsg {
            kind: Some(kind),
            channel: Some(&channel),
            market: market.as_str(),
            slots,
        })
    }

    /// A fresh snapshot of a public channel, from the published state.
    fn snapshot(&self, chan: Chan) -> Option<Utf8Bytes> {
        match chan {
            Chan::Book(i) => {
                let e = self.entry(i)?;
                let slot = SlotName(e.slot);
                let (seq, bids, asks) = {
                    let p = lock(&e.published);
                    (
                        p.seq,
                        wire::levels(&e.spec, p.book.levels(Side::Buy, usize::MAX)),
                        wire::levels(&e.spec, p.book.levels(Side::Sell, usize::MAX)),
                    )
                };
                let checksum = Some(wire::checksum(&asks, &bids));
                Some(wire::to_text(&BookMsg {
                    kind: Some("snapshot"),
                    channel: Some(&e.book_channel),
                    market: e.id.as_str(),
                    slot,
                    seq,
                    prev_seq: None,
                    bids,
                    asks,
                    checksum,
                }))
            }
            Chan::Trades(i) => {
                let e = self.entry(i)?;
                let published = lock(&e.published).trade_id;
                let n = self.shared.cfg.snapshot_trades;
                let trades: Vec<TradeRec> = {
                    let core = lock(&e.core);
                    let mut t: Vec<TradeRec> = core
                        .stats
                        .recent(core.stats.recent_capacity())
                        .filter(|t| t.trade <= published)
                        .copied()
                        .collect();
                    t.drain(..t.len().saturating_sub(n));
                    t
                };
                Some(wire::to_text(&TradesMsg {
                    kind: Some("snapshot"),
                    channel: Some(&e.trades_channel),
                    market: e.id.as_str(),
                    slot: SlotName(e.slot),
                    trades: trades.iter().map(|t| TradeJson::new(&e.spec, t)).collect(),
                }))
            }
            Chan::Ticker(i) => {
                let e = self.entry(i)?;
                let v = lock(&e.published).ticker;
                Some(wire::to_text(&TickerMsg::new(
                    &e.spec,
                    (e.id.as_str(), e.slot),
                    Some("snapshot"),
                    Some(&e.ticker_channel),
                    &v,
                )))
            }
            Chan::Curve(m) => Some(self.curve(m, "snapshot", &self.shared.books_of(&m))),
            Chan::Orders(account) => {
                let (seq, orders) = (self.shared.open_orders.get()?.0)(account)?;
                Some(wire::to_text(&serde_json::json!({
                    "type": "snapshot",
                    "channel": "orders",
                    "seq": seq,
                    "orders": orders,
                })))
            }
        }
    }

    /// Sends each connection subscribed to books a `heartbeat` with the `seq` of
    /// every book it subscribes to (the `seq` of the last book message it was
    /// sent), so a client knows an idle book is live and that it missed nothing.
    fn book_heartbeats(&mut self) {
        let now_ns = self.shared.now_ns.load(Ordering::Acquire);
        let mut sent = 0u64;
        for (conn, c) in &self.conns {
            let mut books: Vec<wire::BookBeat<'_>> = Vec::new();
            let entries: Vec<Arc<MarketEntry>> = c
                .subs
                .iter()
                .filter_map(|s| match s {
                    Chan::Book(k) => self.entry(*k),
                    _ => None,
                })
                .collect();
            for e in &entries {
                books.push(wire::BookBeat {
                    channel: &e.book_channel,
                    seq: lock(&e.published).seq,
                });
            }
            if books.is_empty() || c.queue.is_closed() {
                continue;
            }
            let text = wire::to_text(&wire::Heartbeat::new(now_ns, books));
            sent += 1;
            if c.queue.push(Out::Text(text)).is_err() {
                self.overflowed.push(*conn);
            }
        }
        self.shared
            .counters
            .messages_queued
            .fetch_add(sent, Ordering::Relaxed);
        self.handle_overflows();
    }

    fn has_subs(&self, chan: Chan) -> bool {
        self.subs.contains_key(&chan)
    }

    /// Publishes what the core thread left since the last flush.
    fn flush(&mut self) {
        self.last_flush = Some(Instant::now());
        self.shared.dirty_flag.store(false, Ordering::Release);
        self.shared.counters.flushes.fetch_add(1, Ordering::Relaxed);
        let dirty = std::mem::take(&mut *lock(&self.shared.dirty));
        let (private, private_lost) = {
            let mut p = lock(&self.shared.private);
            (
                std::mem::take(&mut p.pending),
                std::mem::replace(&mut p.overflowed, false),
            )
        };
        let now_ns = self.shared.now_ns.load(Ordering::Acquire);

        // Phase 1: apply everything to the published state and build the messages,
        // so that any snapshot taken during fan-out includes this whole flush.
        let mut out: Vec<(Chan, Utf8Bytes)> = Vec::new();
        let mut trade_resync: Vec<Chan> = Vec::new();
        let mut curves: std::collections::BTreeMap<MarketId, Vec<Arc<MarketEntry>>> =
            Default::default();
        for idx in dirty {
            let Some(e) = self.shared.market_at(idx) else {
                continue;
            };
            if self.publish_market(&e, now_ns, &mut out, &mut trade_resync)
                && self.has_subs(Chan::Curve(e.id))
            {
                curves.entry(e.id).or_default().push(e);
            }
        }
        for (m, mut books) in curves {
            books.sort_unstable_by_key(|e| e.slot);
            out.push((Chan::Curve(m), self.curve(m, "update", &books)));
        }
        for m in &private {
            if self.has_subs(Chan::Orders(m.account)) {
                out.push((Chan::Orders(m.account), m.to_text()));
            }
        }

        // Phase 2: fan out.
        self.resynced.clear();
        if private_lost {
            let chans: Vec<Chan> = self
                .subs
                .keys()
                .filter(|c| matches!(c, Chan::Orders(_)))
                .copied()
                .collect();
            for chan in chans {
                for (conn, _) in self.subs.get(&chan).cloned().unwrap_or_default() {
                    self.close_slow(conn);
                }
            }
        }
        for chan in trade_resync {
            for (conn, _) in self.subs.get(&chan).cloned().unwrap_or_default() {
                self.overflowed.push(conn);
            }
            self.handle_overflows();
        }
        for (chan, text) in out {
            self.fanout(chan, &text);
        }
        self.resynced.clear();
    }

    /// Publishes one book's changes; true when its forward-curve row changed
    /// (its ticker figures, or its gate closed).
    fn publish_market(
        &mut self,
        e: &MarketEntry,
        now_ns: u64,
        out: &mut Vec<(Chan, Utf8Bytes)>,
        trade_resync: &mut Vec<Chan>,
    ) -> bool {
        let taken = Taken::from(e, now_ns);
        let mut p = Publication::apply(e, &taken, now_ns);
        let market = e.id.as_str();
        let key = e.key();
        if p.book_changed() && self.has_subs(Chan::Book(key)) {
            out.push((Chan::Book(key), p.book_update(e)));
        }
        if self.has_subs(Chan::Trades(key)) {
            if taken.trades_lost {
                trade_resync.push(Chan::Trades(key));
            } else if !taken.trades.is_empty() {
                out.push((
                    Chan::Trades(key),
                    wire::to_text(&TradesMsg {
                        kind: Some("update"),
                        channel: Some(&e.trades_channel),
                        market,
                        slot: SlotName(e.slot),
                        trades: taken
                            .trades
                            .iter()
                            .map(|t| TradeJson::new(&e.spec, t))
                            .collect(),
                    }),
                ));
            }
        }
        if p.ticker_changed && self.has_subs(Chan::Ticker(key)) {
            out.push((
                Chan::Ticker(key),
                wire::to_text(&TickerMsg::new(
                    &e.spec,
                    (market, e.slot),
                    Some("update"),
                    Some(&e.ticker_channel),
                    &p.ticker,
                )),
            ));
        }
        p.ticker_changed || e.closed.load(Ordering::Acquire)
    }

    fn fanout(&mut self, chan: Chan, text: &Utf8Bytes) {
        let Some(list) = self.subs.get(&chan) else {
            return;
        };
        let mut n = 0u64;
        for (conn, q) in list {
            if !self.resynced.is_empty() && self.resynced.contains(conn) {
                continue;
            }
            n += 1;
            if q.push(Out::Text(text.clone())).is_err() {
                self.overflowed.push(*conn);
            }
        }
        self.shared
            .counters
            .messages_queued
            .fetch_add(n, Ordering::Relaxed);
        self.handle_overflows();
    }

    fn close_slow(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            c.queue.close(slow_private(), true);
            self.shared
                .counters
                .slow_closes
                .fetch_add(1, Ordering::Relaxed);
        }
        self.remove_conn(conn);
    }

    /// Resyncs (or closes) every connection whose queue overflowed.
    fn handle_overflows(&mut self) {
        while let Some(conn) = self.overflowed.pop() {
            if self.resynced.contains(&conn) {
                continue;
            }
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            if c.queue.is_closed() {
                continue;
            }
            if c.subs.iter().any(|s| matches!(s, Chan::Orders(_))) {
                self.close_slow(conn);
                continue;
            }
            let subs = c.subs.clone();
            let queue = Arc::clone(&c.queue);
            let items: Vec<Out> = subs
                .iter()
                .filter_map(|&s| self.snapshot(s))
                .map(Out::Text)
                .collect();
            queue.replace(items);
            self.resynced.insert(conn);
            self.shared.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a flush takes from one market's core side.
struct Taken {
    levels: HashMap<(Side, i64), i64>,
    trades: Vec<TradeRec>,
    trades_lost: bool,
    book_seq: u64,
    last: Option<TradeRec>,
    day: Window24h,
    total_lots: u64,
}

impl Taken {
    /// Takes what the core thread left in `e` (and clears its dirty mark).
    fn from(e: &MarketEntry, now_ns: u64) -> Self {
        let mut core = lock(&e.core);
        core.dirty = false;
        Taken {
            levels: std::mem::take(&mut core.pending_levels),
            trades: std::mem::take(&mut core.pending_trades),
            trades_lost: std::mem::replace(&mut core.trades_overflowed, false),
            book_seq: core.book_seq,
            last: core.stats.last().copied(),
            day: core.stats.window_24h(now_ns),
            total_lots: core.stats.total_lots(),
        }
    }
}

/// What a flush changed in one market's published state.
struct Publication {
    /// Changed bid and ask levels, `(price_ticks, lots now)`.
    bids: Vec<(i64, u64)>,
    asks: Vec<(i64, u64)>,
    prev_seq: u64,
    seq: u64,
    /// The published book's checksum after the changes.
    checksum: u32,
    ticker: TickerVal,
    ticker_changed: bool,
}

impl Publication {
    /// Applies `taken` to `e`'s published book, trade id and ticker.
    fn apply(e: &MarketEntry, taken: &Taken, now_ns: u64) -> Self {
        let mut bids: Vec<(i64, u64)> = Vec::new();
        let mut asks: Vec<(i64, u64)> = Vec::new();
        let mut p = lock(&e.published);
        for (&(side, price), &lots) in &taken.levels {
            let (q, ok) = p.book.apply(side, price, lots);
            if !ok {
                tracing::error!(market = %e.id, ?side, price, lots, "market data: a level went below zero");
            }
            match side {
                Side::Buy => bids.push((price, q)),
                Side::Sell => asks.push((price, q)),
            }
        }
        let prev_seq = p.seq;
        let checksum = wire::book_checksum(&e.spec, &p.book);
        p.seq = p.seq.max(taken.book_seq);
        if let Some(t) = taken.trades.last() {
            p.trade_id = p.trade_id.max(t.trade);
        }
        let ticker = TickerVal {
            seq: p.seq.max(taken.last.map_or(0, |t| t.seq)),
            ts_ns: now_ns,
            best_bid: p.book.best(Side::Buy),
            best_ask: p.book.best(Side::Sell),
            last: taken.last,
            day: taken.day,
            total_lots: taken.total_lots,
        };
        let ticker_changed = !ticker.same_figures(&p.ticker);
        p.ticker = ticker;
        Publication {
            bids,
            asks,
            prev_seq,
            seq: p.seq,
            checksum,
            ticker,
            ticker_changed,
        }
    }

    fn book_changed(&self) -> bool {
        !self.bids.is_empty() || !self.asks.is_empty()
    }

    /// The `book.<market>.<slot>` update, best levels first.
    fn book_update(&mut self, e: &MarketEntry) -> Utf8Bytes {
        self.bids.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
        self.asks.sort_unstable_by_key(|a| a.0);
        wire::to_text(&BookMsg {
            kind: Some("update"),
            channel: Some(&e.book_channel),
            market: e.id.as_str(),
            slot: SlotName(e.slot),
            seq: self.seq,
            prev_seq: Some(self.prev_seq),
            bids: wire::levels(&e.spec, self.bids.iter().copied()),
            asks: wire::levels(&e.spec, self.asks.iter().copied()),
            checksum: Some(self.checksum),
        })
    }
}
