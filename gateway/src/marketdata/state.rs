//! The state market data shares between the core thread, the hub thread and the
//! HTTP handlers, and who may write what.
//!
//! Market data is kept per **book**: one (market, delivery slot) pair, named by a
//! [`BookKey`]. Per book ([`MarketEntry`]) there are two locks, each held only for short,
//! non-blocking critical sections (no I/O, no awaits):
//! - [`CoreSide`], written by the core thread once per batch: trade statistics
//!   (exact, never lossy) and what the hub has not yet published (level deltas,
//!   trades).
//! - [`Published`], written by the hub only: the L2 book as last published, with
//!   its sequence number. Snapshots (REST and WebSocket) come from here, so a
//!   snapshot's `seq` and the updates that follow it always fit together.
//!
//! It also holds the open WebSocket connections per [`ConnKey`], which the
//! `/v1/ws` endpoint checks its connection limits against.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use gpux_engine::market::MarketSpec;
use gpux_engine::{AccountId, MarketId, Side};

use super::book::L2Book;
use super::stats::{TradeRec, TradeStats};
use super::wire::{PrivateMsg, TickerVal};
use super::MarketDataConfig;

/// Locks a mutex, ignoring poisoning (every critical section leaves the data valid).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One book: a market and a delivery slot (unix seconds of its start).
pub type BookKey = (MarketId, u64);

/// The channel names of a book: `{kind}.{market}.{slot}`, the slot written as
/// `2026-12-07T09:00Z`.
pub fn channel_name(kind: &str, key: &BookKey) -> String {
    format!("{kind}.{}.{}", key.0, gpux_engine::slot::format_slot(key.1))
}

/// What the core thread hands the hub for one book.
#[derive(Debug)]
pub struct CoreSide {
    /// Trades, candles, 24h window (read by REST and the hub).
    pub stats: TradeStats,
    /// `cmd_seq` of the last command that changed this book.
    pub book_seq: u64,
    /// Signed level changes since the hub last took them.
    pub pending_levels: HashMap<(Side, i64), i64>,
    /// Trades since the hub last took them (for the trades stream).
    pub pending_trades: Vec<TradeRec>,
    /// Pending trades were dropped (the hub fell very far behind): trades
    /// subscribers get a fresh snapshot instead of a silent gap.
    pub trades_overflowed: bool,
    /// Listed in the shared dirty list and not yet taken by the hub.
    pub dirty: bool,
}

/// What the hub published for one market.
#[derive(Debug, Default)]
pub struct Published {
    /// The book as of `seq`.
    pub book: L2Book,
    /// `cmd_seq` of the last command included in `book`.
    pub seq: u64,
    /// Highest trade id published on `trades.<market>`.
    pub trade_id: u64,
    /// The last ticker published.
    pub ticker: TickerVal,
}

/// One book's shared state (one slot of one market).
#[derive(Debug)]
pub struct MarketEntry {
    /// Its market.
    pub id: MarketId,
    /// Its delivery slot (unix seconds of its start).
    pub slot: u64,
    /// Its spec (for decimal conversion).
    pub spec: MarketSpec,
    /// Its index in the registry.
    pub index: usize,
    /// Channel names, built once: `book.<market>.<slot>`.
    pub book_channel: String,
    /// `trades.<market>.<slot>`.
    pub trades_channel: String,
    /// `ticker.<market>.<slot>`.
    pub ticker_channel: String,
    /// The slot's gate closed (`slot_closed`): it no longer trades and leaves the
    /// forward curve; its trades and candles stay readable.
    pub closed: AtomicBool,
    /// Core thread → hub.
    pub core: Mutex<CoreSide>,
    /// Hub → readers.
    pub published: Mutex<Published>,
}

impl MarketEntry {
    /// Its key.
    pub fn key(&self) -> BookKey {
        (self.id, self.slot)
    }
}

/// Every listed market's spec, and every book seen, by key (in market then slot
/// order) and by index.
#[derive(Debug, Default)]
pub struct Registry {
    specs: HashMap<MarketId, MarketSpec>,
    by_key: BTreeMap<BookKey, usize>,
    /// By index; `None` once forgotten (see [`MarketDataState::forget`]), so
    /// indices stay valid.
    list: Vec<Option<Arc<MarketEntry>>>,
}

impl Registry {
    /// A book by key.
    pub fn get(&self, key: &BookKey) -> Option<&Arc<MarketEntry>> {
        self.by_key.get(key).and_then(|&i| self.list[i].as_ref())
    }

    /// A book by index.
    pub fn at(&self, index: usize) -> Option<&Arc<MarketEntry>> {
        self.list.get(index).and_then(Option::as_ref)
    }
}

/// Private updates waiting for the hub, and who wants them.
#[derive(Debug, Default)]
pub struct PrivateShared {
    /// Accounts with an `orders` subscription, and how many.
    pub subscribed: HashMap<AccountId, usize>,
    /// Messages for subscribed accounts since the hub last took them.
    pub pending: Vec<PrivateMsg>,
    /// Pending messages were dropped: every `orders` subscriber is disconnected.
    pub overflowed: bool,
}

/// What a connection is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnKey {
    /// An authenticated trading account (all its keys together).
    Account(AccountId),
    /// The admin key.
    Admin,
    /// An anonymous peer, by address.
    Peer(IpAddr),
    /// An anonymous peer whose address the server was not told.
    Unknown,
}

/// Counters for tests, benchmarks and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// WebSocket connections open now.
    pub connections: AtomicU64,
    /// Hub flushes.
    pub flushes: AtomicU64,
    /// Messages queued to connections (one per subscriber).
    pub messages_queued: AtomicU64,
    /// Resyncs after a queue overflow.
    pub resyncs: AtomicU64,
    /// Connections closed for being too slow.
    pub slow_closes: AtomicU64,
}

/// Everything shared, behind one `Arc`.
#[derive(Debug)]
pub struct MarketDataState {
    /// Limits and tuning.
    pub cfg: MarketDataConfig,
    /// Market specs and books.
    pub markets: RwLock<Registry>,
    /// Indices of books with something for the hub.
    pub dirty: Mutex<Vec<usize>>,
    /// Whether the hub has work (private or market).
    pub dirty_flag: AtomicBool,
    /// Private updates.
    pub private: Mutex<PrivateShared>,
    /// Bumped whenever `private.subscribed` changes (the core caches the set).
    pub private_gen: AtomicU64,
    /// Latest committed timestamp (the "now" of every 24h window).
    pub now_ns: AtomicU64,
    /// The hub has stopped: no new connections.
    pub stopped: AtomicBool,
    /// Bumped when a reset starts and when the rebuilt state is served again: odd
    /// while market data is being rebuilt (see `MarketData::reset`). Readers check
    /// it before and after reading, so they never answer from a state being reset
    /// or rebuilt.
    pub generation: AtomicU64,
    /// Open connections per key (account or peer address).
    pub conn_counts: Mutex<HashMap<ConnKey, usize>>,
    /// Next connection id.
    pub next_conn: AtomicU64,
    /// Counters.
    pub counters: Counters,
    /// Where the `orders` channel's snapshot comes from (set by the gateway).
    pub open_orders: std::sync::OnceLock<OpenOrders>,
}

/// The open orders of an account for the `orders` channel's snapshot: the
/// `cmd_seq` they are as of, and the orders as `GET /v1/orders` writes them; `None`
/// when they cannot be read.
#[derive(Clone)]
pub struct OpenOrders(pub Arc<dyn Fn(AccountId) -> Option<(u64, serde_json::Value)> + Send + Sync>);

impl std::fmt::Debug for OpenOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenOrders")
    }
}

impl Published {
    /// An empty book as of `seq`.
    pub fn empty(seq: u64) -> Self {
        Published {
            seq,
            ticker: TickerVal {
                seq,
                ..TickerVal::default()
            },
            ..Published::default()
        }
    }
}

impl MarketDataState {
    /// An empty core side for a book as of `seq`.
    pub fn empty_core(&self, seq: u64) -> CoreSide {
        CoreSide {
            stats: TradeStats::new(self.cfg.recent_trades, self.cfg.candles),
            book_seq: seq,
            pending_levels: HashMap::new(),
            pending_trades: Vec::new(),
            trades_overflowed: false,
            dirty: false,
        }
    }

    /// Fresh shared state.
    pub fn new(cfg: MarketDataConfig) -> Self {
        Self {
            cfg,
            markets: RwLock::default(),
            dirty: Mutex::default(),
            dirty_flag: AtomicBool::new(false),
            private: Mutex::default(),
            private_gen: AtomicU64::new(0),
            now_ns: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            conn_counts: Mutex::default(),
            next_conn: AtomicU64::new(1),
            counters: Counters::default(),
            open_orders: std::sync::OnceLock::new(),
        }
    }

    /// A book by key.
    pub fn market(&self, key: &BookKey) -> Option<Arc<MarketEntry>> {
        self.markets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// A listed market's spec.
    pub fn spec(&self, id: &MarketId) -> Option<MarketSpec> {
        self.markets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .specs
            .get(id)
            .cloned()
    }

    /// How many markets are listed.
    pub fn spec_count(&self) -> usize {
        self.markets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .specs
            .len()
    }

    /// Registers a listed market's spec (idempotent).
    pub fn add_spec(&self, spec: MarketSpec) {
        self.markets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .specs
            .entry(spec.id)
            .or_insert(spec);
    }

    /// The books of one market, in slot order.
    pub fn books_of(&self, id: &MarketId) -> Vec<Arc<MarketEntry>> {
        let reg = self.markets.read().unwrap_or_else(PoisonError::into_inner);
        reg.by_key
            .range((*id, 0)..=(*id, u64::MAX))
            .filter_map(|(_, &i)| reg.list[i].clone())
            .collect()
    }

    /// A market by index.
    pub fn market_at(&self, index: usize) -> Option<Arc<MarketEntry>> {
        self.markets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .at(index)
            .cloned()
    }

    /// An empty book of `slot`, not registered: what REST answers for a slot the
    /// gateway has seen nothing of.
    pub fn detached_book(&self, spec: MarketSpec, slot: u64) -> Arc<MarketEntry> {
        Arc::new(self.new_entry(spec, slot, usize::MAX, 0))
    }

    fn new_entry(&self, spec: MarketSpec, slot: u64, index: usize, seq: u64) -> MarketEntry {
        let key = (spec.id, slot);
        MarketEntry {
            id: spec.id,
            slot,
            index,
            book_channel: channel_name("book", &key),
            trades_channel: channel_name("trades", &key),
            ticker_channel: channel_name("ticker", &key),
            closed: AtomicBool::new(false),
            core: Mutex::new(self.empty_core(seq)),
            published: Mutex::new(Published::empty(seq)),
            spec,
        }
    }

    /// Registers a book (idempotent); it starts at `seq`.
    pub fn add_market(&self, spec: MarketSpec, slot: u64, seq: u64) -> Arc<MarketEntry> {
        let mut reg = self.markets.write().unwrap_or_else(PoisonError::into_inner);
        let key = (spec.id, slot);
        if let Some(e) = reg.get(&key) {
            return Arc::clone(e);
        }
        reg.specs.entry(spec.id).or_insert_with(|| spec.clone());
        let index = reg.list.len();
        let entry = Arc::new(self.new_entry(spec, slot, index, seq));
        reg.by_key.insert(key, index);
        reg.list.push(Some(Arc::clone(&entry)));
        entry
    }

    /// Every book registered and not forgotten, in registration order.
    pub fn all_markets(&self) -> Vec<Arc<MarketEntry>> {
        self.markets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .list
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Forgets a closed slot's book: REST then answers it as a slot never seen
    /// (empty), and WebSocket subscribers get nothing more from it.
    pub fn forget(&self, key: &BookKey) {
        let mut reg = self.markets.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = reg.by_key.remove(key) {
            reg.list[i] = None;
        }
    }

    /// The generation now, if market data is served (not being rebuilt).
    pub fn serving_generation(&self) -> Option<u64> {
        let g = self.generation.load(Ordering::Acquire);
        g.is_multiple_of(2).then_some(g)
    }

    /// Whether market data is served and was not reset since `generation`.
    pub fn still_serving(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
    }

    /// Marks the hub as having work; true when it had none (then wake it).
    pub fn set_dirty(&self) -> bool {
        !self.dirty_flag.swap(true, Ordering::AcqRel)
    }
}
