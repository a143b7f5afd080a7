//! The gateway's read replica of the engine, and the core thread that keeps it.
//!
//! Owns [`ReplicaState`] (the replica, the key store, the request table, health
//! and counters), [`HealthReport`] and [`NotServing`], and the core thread
//! ([`spawn`]). The thread reads committed commands from a [`Feed`] starting at
//! cmd_seq 1 — or, when the gateway has a checkpoint directory and the
//! [`checkpoint`] there belongs to this log, restores it and starts after it —
//! and, for each one, in order:
//!
//! 1. re-applies it to its own [`Engine`] as `apply_json(cmd_seq, ts_ns, payload)`
//!    would (`CommittedCommand::apply_to`: the envelope the feed decoded once)
//!    and checks that it produced exactly the committed events;
//! 2. folds the events into the order and fill [`History`];
//! 3. learns API keys from committed `create_account` commands;
//! 4. hands the command to market data ([`MarketData::on_command`]);
//!
//! and then, with the replica's write lock released, resolves the requests waiting
//! for these commands (by `request_id`) and fills the idempotency cache. A client
//! therefore hears about its command only once it is durable *and* visible in every
//! query this gateway answers. A command the engine recorded as a
//! `duplicate_request` (the same keyed request submitted twice, e.g. through two
//! gateways) resolves with the original command's outcome ([`Requests::committed`]).
//!
//! Account ids are the engine's: a `create_account` without an id gets the lowest
//! free one, so gateways sharing a log never choose ids.
//!
//! Why the replica follows from cmd_seq 1, and what it does when its events differ
//! from the committed ones (refuse with 503, rebuild from a new feed through
//! [`Backend::refollow`](crate::Backend::refollow), swap): `docs/ARCHITECTURE.md`,
//! section "The gateway's read replica".

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gpux_engine::{AccountId, Command, Engine, Event};
use gpux_sequencer::{CommittedBatch, CommittedCommand, Feed, FeedError};
use serde::Serialize;
use tokio::sync::watch;

use crate::auth::KeyStore;
use crate::bookcount::{BookCount, BookCounts};
use crate::checkpoint::{self, Checkpoint, Checkpointer, LastCommand};
use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::history::History;
use crate::idempotency::{Outcome, Requests};
use crate::marketdata::MarketData;

/// Most commands applied under one hold of the replica's write lock, so queries
/// never wait long.
const COMMANDS_PER_LOCK: usize = 256;

/// How long the core thread waits on the feed before checking for shutdown: what
/// a stop may wait for. An idle core wakes this often (cheap: one empty poll).
const FEED_POLL: Duration = Duration::from_millis(10);

/// First pause before re-following after a rebuild that diverged again (doubles
/// up to [`REBUILD_PAUSE_MAX`]), and between failed attempts to get a new feed.
const REBUILD_PAUSE_MIN: Duration = Duration::from_millis(100);

/// Longest pause between rebuild attempts.
const REBUILD_PAUSE_MAX: Duration = Duration::from_secs(30);

/// Longest pause between failed attempts to get a new feed (the broker or the
/// ledger may be back at any moment).
const REFOLLOW_RETRY_MAX: Duration = Duration::from_secs(2);

/// Makes a new feed of the committed commands from the given cmd_seq: how a
/// diverged replica rebuilds itself (from 1), and how a restored one follows on
/// from its checkpoint (see [`Backend::refollow`](crate::Backend::refollow)).
pub type FeedFactory = Box<dyn FnMut(u64) -> Result<Box<dyn Feed>, FeedError> + Send>;

/// The gateway's view of the exchange, as of `engine.last_seq()`.
#[derive(Debug)]
pub struct Replica {
    /// The replica engine.
    pub engine: Engine,
    /// Orders and fills, derived from events.
    pub history: History,
    /// Resting orders and price levels per market, kept per event (for metrics).
    pub books: BookCounts,
}

impl Replica {
    /// An empty replica (before cmd_seq 1).
    pub fn new(cfg: &GatewayConfig) -> Self {
        Replica {
            engine: Engine::new(),
            history: History::new(cfg.history.clone()),
            books: BookCounts::default(),
        }
    }
}

/// Live counters (for metrics).
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// HTTP requests that reached a handler.
    pub requests: AtomicU64,
    /// Commands handed to the log.
    pub submitted: AtomicU64,
    /// Requests answered from the idempotency cache or by waiting for an identical
    /// request in flight.
    pub replayed: AtomicU64,
    /// Requests refused by the engine (a reject code).
    pub rejected: AtomicU64,
    /// Requests refused before submission (bad input, unknown ids).
    pub invalid: AtomicU64,
    /// Requests that timed out waiting for their command.
    pub timeouts: AtomicU64,
    /// Requests refused by a rate limit.
    pub rate_limited: AtomicU64,
    /// Requests refused because the log was overloaded or unavailable.
    pub unavailable: AtomicU64,
    /// Commands the replica applied.
    pub applied: AtomicU64,
    /// `cmd_seq` of the last command the replica applied.
    pub applied_seq: AtomicU64,
    /// Commands whose re-applied events differed from the committed ones, or
    /// that came after a gap in the feed.
    pub divergences: AtomicU64,
    /// Rebuilds of the replica after a divergence (re-follows from cmd_seq 1).
    pub rebuilds: AtomicU64,
    /// Errors reading the feed.
    pub feed_errors: AtomicU64,
}

/// The gateway's state as `GET /v1/health` names it (`status`), in snake_case.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Serving.
    Ok,
    /// Catching up with the log.
    Starting,
    /// The replica's events differed from the committed ones, or the feed skipped
    /// commands.
    Diverged,
    /// Re-following the log from cmd_seq 1 after a divergence.
    Rebuilding,
    /// Reading the feed fails (serving what it has).
    FeedFailing,
    /// The core thread has ended.
    Stopped,
}

impl HealthStatus {
    /// The name `GET /v1/health` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Starting => "starting",
            HealthStatus::Diverged => "diverged",
            HealthStatus::Rebuilding => "rebuilding",
            HealthStatus::FeedFailing => "feed_failing",
            HealthStatus::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health as `GET /v1/health` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HealthReport {
    /// What state the gateway is in.
    pub status: HealthStatus,
    /// Whether the gateway serves requests (caught up, running, not diverged).
    pub ready: bool,
    /// `cmd_seq` of the last command the replica applied.
    pub applied_seq: u64,
    /// The first `cmd_seq` at which the replica diverged, while it is diverged or
    /// rebuilding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diverged_at: Option<u64>,
}

/// Why the gateway does not serve requests now (see [`ReplicaState::serving`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotServing {
    /// Catching up with the log after a start.
    Starting,
    /// The replica disagrees with the ledger and has not started rebuilding.
    Diverged,
    /// The replica is being rebuilt from cmd_seq 1.
    Rebuilding,
}

impl From<NotServing> for ApiError {
    fn from(n: NotServing) -> Self {
        use axum::http::StatusCode;
        let (code, message) = match n {
            NotServing::Starting => (
                "starting",
                "the gateway is catching up with the exchange; retry shortly",
            ),
            NotServing::Diverged => (
                "replica_diverged",
                "this gateway's copy of the exchange state disagrees with the ledger, so it answers nothing from it; it rebuilds itself when it can (else it needs a restart): retry shortly or use another gateway",
            ),
            NotServing::Rebuilding => (
                "replica_rebuilding",
                "this gateway is rebuilding its copy of the exchange state from the ledger; retry shortly",
            ),
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(1)
    }
}

/// The replica's relation to the ledger.
const REPLICA_FOLLOWING: u8 = 0;
const REPLICA_DIVERGED: u8 = 1;
const REPLICA_REBUILDING: u8 = 2;

/// Health flags, set by the core thread.
#[derive(Debug)]
pub struct Health {
    caught_up: AtomicBool,
    stopped: AtomicBool,
    feed_failing: AtomicBool,
    diverged_at: AtomicU64,
    /// `REPLICA_FOLLOWING`, `REPLICA_DIVERGED` or `REPLICA_REBUILDING`.
    replica: AtomicU8,
    ready_tx: watch::Sender<bool>,
}

impl Health {
    fn new() -> Self {
        Health {
            caught_up: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            feed_failing: AtomicBool::new(false),
            diverged_at: AtomicU64::new(0),
            replica: AtomicU8::new(REPLICA_FOLLOWING),
            ready_tx: watch::channel(false).0,
        }
    }

    /// Whether the gateway has started: caught up with the log once and the core
    /// running. (Whether it serves now also depends on the replica: see
    /// [`ReplicaState::serving`].)
    pub fn ready(&self) -> bool {
        self.caught_up.load(Ordering::Acquire) && !self.stopped.load(Ordering::Acquire)
    }

    /// Waits until ready (or `false` if the core stopped first).
    pub async fn wait_ready(&self) -> bool {
        let mut rx = self.ready_tx.subscribe();
        let r = rx.wait_for(|r| *r).await.is_ok();
        r && self.ready()
    }

    fn set_caught_up(&self) {
        if !self.caught_up.swap(true, Ordering::AcqRel) {
            self.ready_tx.send_replace(true);
        }
    }

    fn set_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
        self.ready_tx.send_replace(false);
    }
}

/// State shared by the core thread and request handlers.
#[derive(Debug)]
pub struct ReplicaState {
    /// Configuration.
    pub cfg: GatewayConfig,
    /// The replica; take short read locks and never hold one across an `.await`.
    pub replica: RwLock<Replica>,
    /// API keys.
    pub keys: Arc<KeyStore>,
    /// Requests in flight and the idempotency cache.
    pub requests: Requests,
    /// Health.
    pub health: Health,
    /// Counters.
    pub stats: Arc<GatewayStats>,
    /// Book sizes per market as of the replica's last applied chunk, published by
    /// the core thread so metrics never take the replica's lock.
    book_counts: Mutex<Arc<Vec<BookCount>>>,
}

impl ReplicaState {
    /// Empty state for `cfg`.
    pub fn new(cfg: GatewayConfig) -> Self {
        ReplicaState {
            replica: RwLock::new(Replica::new(&cfg)),
            keys: Arc::new(KeyStore::new(&cfg.admin_key)),
            requests: Requests::new(cfg.idempotency.clone(), cfg.max_in_flight),
            health: Health::new(),
            stats: Arc::new(GatewayStats::default()),
            book_counts: Mutex::default(),
            cfg,
        }
    }

    /// A read lock on the replica.
    pub fn read(&self) -> RwLockReadGuard<'_, Replica> {
        self.replica.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Replica> {
        self.replica.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether requests that read the replica (or check against it) may be
    /// answered now: caught up with the log, and the replica following it without
    /// divergence. Public market data follows the same rule.
    pub fn serving(&self) -> Result<(), NotServing> {
        let h = &self.health;
        if !h.ready() {
            return Err(NotServing::Starting);
        }
        match h.replica.load(Ordering::Acquire) {
            REPLICA_FOLLOWING => Ok(()),
            REPLICA_REBUILDING => Err(NotServing::Rebuilding),
            _ => Err(NotServing::Diverged),
        }
    }

    /// Resting orders and price levels per market, in listing order, as of the
    /// replica's last applied chunk of commands. O(markets); never waits on the
    /// core thread for longer than an `Arc` clone.
    pub fn book_counts(&self) -> Arc<Vec<BookCount>> {
        Arc::clone(
            &self
                .book_counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn publish_book_counts(&self, books: &mut BookCounts) {
        if let Some(counts) = books.take_changed() {
            *self
                .book_counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Arc::new(counts);
        }
    }

    /// Health now.
    pub fn health_report(&self) -> HealthReport {
        let h = &self.health;
        let diverged = h.diverged_at.load(Ordering::Acquire);
        let serving = self.serving();
        let status = if h.stopped.load(Ordering::Acquire) {
            HealthStatus::Stopped
        } else if !h.caught_up.load(Ordering::Acquire) {
            HealthStatus::Starting
        } else if serving == Err(NotServing::Rebuilding) {
            HealthStatus::Rebuilding
        } else if serving.is_err() {
            HealthStatus::Diverged
        } else if h.feed_failing.load(Ordering::Acquire) {
            HealthStatus::FeedFailing
        } else {
            HealthStatus::Ok
        };
        HealthReport {
            status,
            ready: serving.is_ok(),
            applied_seq: self.stats.applied_seq.load(Ordering::Acquire),
            diverged_at: (diverged != 0).then_some(diverged),
        }
    }
}

/// Nanoseconds since the Unix epoch by the system clock.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Marks the gateway stopped and wakes every waiting request when the core thread
/// ends, however it ends.
struct StopGuard(Arc<ReplicaState>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the gateway's core thread panicked");
        }
        self.0.health.set_stopped();
        self.0.requests.close_all();
    }
}

/// Starts the core thread; it runs until `stop` is set. `refollow`, when given,
/// makes a fresh feed from cmd_seq 1 to rebuild a diverged replica.
pub fn spawn(
    shared: Arc<ReplicaState>,
    feed: Box<dyn Feed>,
    refollow: Option<FeedFactory>,
    market_data: MarketData,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let started_ns = now_ns();
    std::thread::Builder::new()
        .name("gpux-gw-core".into())
        .spawn(move || {
            let guard = StopGuard(Arc::clone(&shared));
            let mut core = Core {
                shared,
                market_data,
                events: Vec::new(),
                started_ns,
                refollow,
                diverged: false,
                rebuild: None,
                rebuild_pause: REBUILD_PAUSE_MIN,
                checkpointer: None,
                expect: None,
                last_batch: None,
                checkpoint_at: 0,
                checkpointed: 0,
                checkpointed_at: None,
            };
            let feed = core.start_checkpoints(feed);
            core.run(feed, &stop);
            core.finish_checkpoints();
            drop(guard);
        })
}

/// A replica being rebuilt from cmd_seq 1, aside from the one queries read.
struct Rebuild {
    replica: Replica,
    /// When the new feed was started: a command sequenced after it means caught up.
    started_ns: u64,
}

/// What the core does after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Keep reading the feed.
    Continue,
    /// The replica diverged and can be rebuilt: re-follow from cmd_seq 1.
    Refollow,
}

struct Core {
    shared: Arc<ReplicaState>,
    market_data: MarketData,
    events: Vec<Event>,
    started_ns: u64,
    refollow: Option<FeedFactory>,
    /// The current feed's commands stopped matching the replica.
    diverged: bool,
    /// The replica being rebuilt, while rebuilding.
    rebuild: Option<Rebuild>,
    /// Pause before the next re-follow (grows while rebuilds keep diverging).
    rebuild_pause: Duration,
    /// Writes checkpoints, when the gateway has a checkpoint directory.
    checkpointer: Option<Checkpointer>,
    /// The command the restored checkpoint was taken after: the feed must bring
    /// it first, unchanged, before anything is served.
    expect: Option<LastCommand>,
    /// The last batch applied to the shared replica (its last command is the
    /// one a checkpoint is taken after).
    last_batch: Option<CommittedBatch>,
    /// The next checkpoint once the replica is at or past this cmd_seq.
    checkpoint_at: u64,
    /// The cmd_seq of the last checkpoint written or restored (a stop writes
    /// none if the replica has not moved since).
    checkpointed: u64,
    /// When the last checkpoint was taken while running (see
    /// [`checkpoint::SPACING_MIN`]).
    checkpointed_at: Option<std::time::Instant>,
}

impl Core {
    fn run(&mut self, mut feed: Box<dyn Feed>, stop: &AtomicBool) {
        let mut backoff = Duration::from_millis(10);
        while !stop.load(Ordering::Acquire) {
            match feed.recv_timeout(FEED_POLL) {
                Ok(Some(batch)) => {
                    self.shared
                        .health
                        .feed_failing
                        .store(false, Ordering::Release);
                    backoff = Duration::from_millis(10);
                    if self.process(&batch) == Flow::Refollow {
                        match self.refollow(stop) {
                            Some(f) => feed = f,
                            None => return,
                        }
                        continue;
                    }
                    match &self.rebuild {
                        Some(rb) => self.market_data.on_batch_end(&rb.replica.engine),
                        None => {
                            {
                                let r = self.shared.read();
                                self.market_data.on_batch_end(&r.engine);
                            }
                            self.last_batch = Some(batch);
                            self.maybe_checkpoint();
                        }
                    }
                }
                Ok(None) if feed.reached_start() => {
                    self.caught_up();
                    if self.diverged && self.refollow.is_some() {
                        match self.refollow(stop) {
                            Some(f) => feed = f,
                            None => return,
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.shared
                        .stats
                        .feed_errors
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared
                        .health
                        .feed_failing
                        .store(true, Ordering::Release);
                    if matches!(e, FeedError::Unavailable(_)) {
                        tracing::warn!(error = %e, next_seq = feed.next_seq(), "gateway feed unavailable; retrying");
                    } else {
                        tracing::error!(error = %e, next_seq = feed.next_seq(), "gateway feed failed; retrying");
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Everything committed when the current feed started has been applied.
    fn caught_up(&mut self) {
        if let Some(last) = self.expect.take() {
            // The log ends before the command the checkpoint was taken after.
            self.diverged(
                last.cmd_seq,
                "the gateway checkpoint is ahead of the log (its command is not there)",
            );
            return;
        }
        match self.rebuild.take() {
            Some(rb) => self.finish_rebuild(rb),
            None => self.shared.health.set_caught_up(),
        }
    }

    /// Swaps the rebuilt replica in and serves again.
    fn finish_rebuild(&mut self, rb: Rebuild) {
        let seq = rb.replica.engine.last_seq();
        {
            let mut r = self.shared.write();
            *r = rb.replica;
            // The keys as the rebuilt state has them (a rebuild does not touch
            // them on its way, so a revoked key never opens anything meanwhile).
            self.shared.keys.replace_all(r.engine.all_api_keys());
            self.shared.publish_book_counts(&mut r.books);
            // Under the write lock: no reader sees the new state as diverged or the
            // old one as serving.
            self.shared.health.diverged_at.store(0, Ordering::Release);
            self.shared.stats.applied_seq.store(seq, Ordering::Release);
            self.shared
                .health
                .replica
                .store(REPLICA_FOLLOWING, Ordering::Release);
        }
        self.market_data.resume();
        self.shared.health.set_caught_up();
        self.rebuild_pause = REBUILD_PAUSE_MIN;
        tracing::info!(
            cmd_seq = seq,
            "the gateway's replica was rebuilt from the log and serves again"
        );
    }

    /// Starts rebuilding: a new feed from cmd_seq 1 and an empty replica beside
    /// the one in the lock. `None` if asked to stop first.
    fn refollow(&mut self, stop: &AtomicBool) -> Option<Box<dyn Feed>> {
        let rebuilding_again = self.rebuild.take().is_some();
        if rebuilding_again {
            self.rebuild_pause = (self.rebuild_pause * 2).min(REBUILD_PAUSE_MAX);
        }
        let mut pause = if rebuilding_again {
            self.rebuild_pause
        } else {
            Duration::ZERO
        };
        let feed = loop {
            if !pause.is_zero() && !sleep_unless_stopped(pause, stop) {
                return None;
            }
            if stop.load(Ordering::Acquire) {
                return None;
            }
            let factory = self.refollow.as_mut()?;
            match factory(1) {
                Ok(f) => break f,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot re-follow the log to rebuild the replica; retrying");
                    pause = (pause * 2).clamp(REBUILD_PAUSE_MIN, REFOLLOW_RETRY_MAX);
                }
            }
        };
        self.diverged = false;
        self.expect = None;
        self.last_batch = None;
        // A clean slate: nothing the diverged feed left may mix with the new one.
        self.market_data.reset();
        self.shared.stats.rebuilds.fetch_add(1, Ordering::Relaxed);
        self.shared
            .health
            .replica
            .store(REPLICA_REBUILDING, Ordering::Release);
        self.rebuild = Some(Rebuild {
            replica: Replica::new(&self.shared.cfg),
            started_ns: now_ns(),
        });
        tracing::warn!("rebuilding the gateway's replica from cmd_seq 1");
        Some(feed)
    }

    fn process(&mut self, batch: &[CommittedCommand]) -> Flow {
        for chunk in batch.chunks(COMMANDS_PER_LOCK) {
            let mut keys = Vec::new();
            let (applied, oldest_remembered) = match self.rebuild.take() {
                Some(mut rb) => {
                    let n = self.apply_chunk(&mut rb.replica, chunk, &mut keys);
                    let oldest = rb.replica.engine.oldest_remembered_request();
                    self.rebuild = Some(rb);
                    // The keys follow once the rebuild is done (`finish_rebuild`).
                    keys.clear();
                    (n, oldest)
                }
                None => {
                    let shared = Arc::clone(&self.shared);
                    let mut r = shared.write();
                    let n = self.apply_chunk(&mut r, chunk, &mut keys);
                    if !self.diverged {
                        shared.publish_book_counts(&mut r.books);
                    }
                    (n, r.engine.oldest_remembered_request())
                }
            };
            let chunk = &chunk[..applied];
            for (digest, now) in keys {
                self.shared.keys.set(digest, now);
            }
            for cmd in chunk {
                if let Some(rid) = &cmd.request_id {
                    self.shared.requests.committed(rid, || {
                        Arc::new(Outcome {
                            cmd_seq: cmd.cmd_seq,
                            ts_ns: cmd.ts_ns,
                            events: cmd.events.clone(),
                        })
                    });
                }
            }
            // Originals the engine no longer remembers can no longer be repeated.
            self.shared
                .requests
                .forget_originals_before(oldest_remembered);
            if self.diverged && self.refollow.is_some() {
                return Flow::Refollow;
            }
            if let Some(last) = chunk.last() {
                self.shared
                    .stats
                    .applied_seq
                    .store(last.cmd_seq, Ordering::Release);
                let since = self
                    .rebuild
                    .as_ref()
                    .map_or(self.started_ns, |rb| rb.started_ns);
                if last.ts_ns >= since {
                    // Everything sequenced before this feed started is applied.
                    self.caught_up();
                }
            }
        }
        Flow::Continue
    }

    /// Applies `chunk` to `r`; stops after a command that shows divergence when
    /// the replica can be rebuilt (the rest is re-read by the new feed). Returns
    /// how many commands were applied.
    fn apply_chunk(
        &mut self,
        r: &mut Replica,
        chunk: &[CommittedCommand],
        keys: &mut Vec<KeyChange>,
    ) -> usize {
        for (i, cmd) in chunk.iter().enumerate() {
            self.apply(r, cmd, keys);
            if self.diverged && self.refollow.is_some() {
                return i + 1;
            }
        }
        chunk.len()
    }

    fn diverged(&mut self, cmd_seq: u64, why: &str) {
        self.shared
            .stats
            .divergences
            .fetch_add(1, Ordering::Relaxed);
        let _ = self.shared.health.diverged_at.compare_exchange(
            0,
            cmd_seq,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if !self.diverged {
            self.diverged = true;
            // Refuse from now on (the caller holds the write lock when it applies
            // to the shared replica, so no query reads past this point unrefused).
            self.shared
                .health
                .replica
                .store(REPLICA_DIVERGED, Ordering::Release);
            self.market_data.reset();
        }
        tracing::error!(
            cmd_seq,
            why,
            rebuild = self.refollow.is_some(),
            "the gateway's replica diverged from the ledger"
        );
    }

    /// With a checkpoint directory: starts the writer, and takes up the
    /// checkpoint there if it can be used (see [`checkpoint`]), returning a feed
    /// from its command; otherwise returns `feed` (from cmd_seq 1).
    fn start_checkpoints(&mut self, feed: Box<dyn Feed>) -> Box<dyn Feed> {
        let Some(dir) = self.shared.cfg.checkpoint_dir.clone() else {
            return feed;
        };
        match Checkpointer::start(dir.clone()) {
            Ok(c) => self.checkpointer = Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "this gateway writes no checkpoints")
            }
        }
        self.checkpoint_at = self.shared.cfg.checkpoint_every_commands.max(1);
        let started = std::time::Instant::now();
        let ck = match checkpoint::read(&dir) {
            Ok(Some(ck)) => ck,
            Ok(None) => return feed,
            Err(e) => {
                tracing::warn!(error = %e, "the gateway checkpoint cannot be used; following the log from cmd_seq 1");
                return feed;
            }
        };
        if ck.history.config() != &self.shared.cfg.history {
            tracing::warn!("the gateway checkpoint was kept with other history bounds; following the log from cmd_seq 1");
            return feed;
        }
        let Some(factory) = self.refollow.as_mut() else {
            return feed;
        };
        let from = ck.last.cmd_seq;
        let tail = match factory(from) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, cmd_seq = from, "cannot follow the log from the gateway checkpoint; following it from cmd_seq 1");
                return feed;
            }
        };
        if let Err(e) = self.restore(ck) {
            tracing::warn!(error = %e, "the gateway checkpoint cannot be used; following the log from cmd_seq 1");
            return feed;
        }
        tracing::info!(
            cmd_seq = from,
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "gateway restored from its checkpoint; following the log from there"
        );
        tail
    }

    /// Takes up `ck`: market data and the idempotency cache first (either may
    /// refuse it, leaving everything as it was), then the replica.
    fn restore(&mut self, ck: Checkpoint) -> Result<(), String> {
        self.shared.requests.restore(ck.requests)?;
        if let Err(e) = self.market_data.restore(ck.market_data, &ck.engine) {
            let _ = self.shared.requests.restore(Default::default());
            return Err(e);
        }
        let seq = ck.engine.last_seq();
        let mut r = self.shared.write();
        self.shared.keys.replace_all(ck.engine.all_api_keys());
        r.engine = ck.engine;
        r.history = ck.history;
        r.books = ck.books;
        r.books.mark_changed();
        self.shared.publish_book_counts(&mut r.books);
        self.shared.stats.applied_seq.store(seq, Ordering::Release);
        self.expect = Some(ck.last);
        self.checkpointed = seq;
        self.checkpoint_at = seq.saturating_add(self.shared.cfg.checkpoint_every_commands.max(1));
        Ok(())
    }

    /// The shared replica as of the last batch's last command, if it is a state
    /// worth keeping (following, not diverged, the checkpoint's command seen).
    fn take_checkpoint(&self) -> Option<Checkpoint> {
        if self.diverged || self.rebuild.is_some() || self.expect.is_some() {
            return None;
        }
        let last = self.last_batch.as_ref()?.last()?;
        let r = self.shared.read();
        if r.engine.last_seq() != last.cmd_seq {
            return None;
        }
        Some(Checkpoint {
            last: LastCommand::of(last),
            engine: r.engine.clone(),
            history: r.history.clone(),
            books: r.books.clone(),
            requests: self.shared.requests.checkpoint(),
            market_data: self.market_data.checkpoint(),
        })
    }

    /// After a batch: a checkpoint if one is due and none is being written.
    fn maybe_checkpoint(&mut self) {
        let every = self.shared.cfg.checkpoint_every_commands;
        let Some(w) = &self.checkpointer else { return };
        let applied = self.shared.stats.applied_seq.load(Ordering::Acquire);
        let spaced = self
            .checkpointed_at
            .is_none_or(|t| t.elapsed() >= checkpoint::SPACING_MIN);
        if every == 0 || applied < self.checkpoint_at || !spaced || w.busy() {
            return;
        }
        let started = std::time::Instant::now();
        if let Some(ck) = self.take_checkpoint() {
            self.checkpoint_at = applied.saturating_add(every);
            self.checkpointed = ck.last.cmd_seq;
            self.checkpointed_at = Some(started);
            w.submit(ck, started.elapsed());
        }
    }

    /// At shutdown: a last checkpoint (if the state is worth keeping and moved
    /// since the last one), and waits for the writer.
    fn finish_checkpoints(&mut self) {
        let Some(w) = self.checkpointer.take() else {
            return;
        };
        let moved = self
            .last_batch
            .as_ref()
            .and_then(|b| b.last())
            .is_some_and(|c| c.cmd_seq > self.checkpointed);
        let started = std::time::Instant::now();
        let ck = if moved { self.take_checkpoint() } else { None };
        w.finish(ck.map(|ck| (ck, started.elapsed())));
    }

    fn apply(&mut self, r: &mut Replica, cmd: &CommittedCommand, keys: &mut Vec<KeyChange>) {
        let expected = r.engine.last_seq() + 1;
        if let Some(last) = self.expect.take_if(|l| l.cmd_seq == cmd.cmd_seq) {
            if LastCommand::of(cmd) == last {
                tracing::info!(
                    cmd_seq = cmd.cmd_seq,
                    "the gateway checkpoint matches the log; following on from it"
                );
            } else {
                self.diverged(
                    cmd.cmd_seq,
                    "the gateway checkpoint does not match the log's command at its cmd_seq",
                );
            }
            return;
        }
        if self.expect.is_some() {
            self.expect = None;
            self.diverged(
                cmd.cmd_seq,
                "the feed did not start with the gateway checkpoint's command",
            );
            return;
        }
        if cmd.cmd_seq < expected {
            tracing::warn!(
                cmd_seq = cmd.cmd_seq,
                expected,
                "the feed repeated a command; skipped"
            );
            return;
        }
        if cmd.cmd_seq > expected {
            self.diverged(cmd.cmd_seq, "the feed skipped commands");
        }
        self.events.clear();
        let env = cmd.apply_to(&mut r.engine, &mut self.events);
        if self.events != cmd.events {
            self.diverged(
                cmd.cmd_seq,
                "re-applied events differ from the committed ones",
            );
        }
        r.history.apply(cmd.cmd_seq, cmd.ts_ns, &cmd.events);
        r.books.apply(&r.engine, &cmd.events);
        // Every key the command touched, as the engine now has it: a new
        // account's first key, an added key, a revoked one.
        for ev in &cmd.events {
            let digest = match ev {
                Event::AccountCreated(_) => match env.as_ref().map(|e| &e.command) {
                    Some(Command::CreateAccount(c)) => c.api_key_sha256,
                    _ => None,
                },
                Event::ApiKeyAdded(k) => Some(k.api_key_sha256),
                Event::ApiKeyRevoked(k) => Some(k.api_key_sha256),
                _ => None,
            };
            if let Some(d) = digest {
                keys.push((d, r.engine.api_key(&d)));
            }
        }
        self.market_data.on_command(cmd, &r.engine);
        self.shared.stats.applied.fetch_add(1, Ordering::Relaxed);
    }
}

/// A key and what it opens after a command (`None`: nothing).
type KeyChange = (
    gpux_engine::KeyDigest,
    Option<(AccountId, gpux_engine::KeyScope)>,
);

/// Sleeps `d` in short steps; false if `stop` was set meanwhile.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = std::time::Instant::now() + d;
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(FEED_POLL));
    }
}
