//! The core thread: the gateway's read replica of the engine.
//!
//! Owns [`Shared`] (the replica, the key store, the request table, health and
//! counters) and the thread that keeps it current. The thread reads committed
//! commands from a [`Feed`] starting at cmd_seq 1 and, for each one, in order:
//!
//! 1. re-applies it to its own [`Engine`] with `apply_json(cmd_seq, ts_ns, payload)`
//!    — deterministic, so the replica equals the exchange's engine — and checks that
//!    it produced exactly the committed events (a mismatch is logged and marks the
//!    gateway unhealthy; it never panics);
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
//! Starting from cmd_seq 1 keeps fills history, API keys and idempotency complete;
//! the price is a replay of the whole log at startup (the engine applies several
//! million commands per second, so a log of 10^7 commands takes seconds). Until the
//! replica has caught up, the gateway answers 503 `starting`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gpux_engine::{AccountId, Command, Engine, Event};
use gpux_sequencer::{CommittedCommand, Feed, FeedError};
use serde::Serialize;
use tokio::sync::watch;

use crate::auth::KeyStore;
use crate::config::GatewayConfig;
use crate::history::History;
use crate::idempotency::{Outcome, Requests};
use crate::marketdata::MarketData;

/// Most commands applied under one hold of the replica's write lock, so queries
/// never wait long.
const COMMANDS_PER_LOCK: usize = 256;

/// How long the core thread waits on the feed before checking for shutdown.
const FEED_POLL: Duration = Duration::from_millis(50);

/// The gateway's view of the exchange, as of `engine.last_seq()`.
#[derive(Debug)]
pub struct Replica {
    /// The replica engine.
    pub engine: Engine,
    /// Orders and fills, derived from events.
    pub history: History,
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
    /// Commands whose re-applied events differed from the committed ones.
    pub divergences: AtomicU64,
    /// Errors reading the feed.
    pub feed_errors: AtomicU64,
}

/// Health as `GET /v1/health` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HealthReport {
    /// `ok`, `starting` (catching up with the log), `diverged` (the replica's
    /// events differed from the committed ones), `feed_failing` or `stopped`.
    pub status: &'static str,
    /// Whether the gateway serves requests (caught up and running).
    pub ready: bool,
    /// `cmd_seq` of the last command the replica applied.
    pub applied_seq: u64,
    /// The first `cmd_seq` at which the replica diverged, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diverged_at: Option<u64>,
}

/// Health flags, set by the core thread.
#[derive(Debug)]
pub struct Health {
    caught_up: AtomicBool,
    stopped: AtomicBool,
    feed_failing: AtomicBool,
    diverged_at: AtomicU64,
    ready_tx: watch::Sender<bool>,
}

impl Health {
    fn new() -> Self {
        Health {
            caught_up: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            feed_failing: AtomicBool::new(false),
            diverged_at: AtomicU64::new(0),
            ready_tx: watch::channel(false).0,
        }
    }

    /// Whether requests are served: caught up with the log and the core running.
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
pub struct Shared {
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
}

impl Shared {
    /// Empty state for `cfg`.
    pub fn new(cfg: GatewayConfig) -> Self {
        Shared {
            replica: RwLock::new(Replica {
                engine: Engine::new(),
                history: History::new(cfg.history.clone()),
            }),
            keys: Arc::new(KeyStore::new(&cfg.admin_key)),
            requests: Requests::new(cfg.idempotency.clone(), cfg.max_in_flight),
            health: Health::new(),
            stats: Arc::new(GatewayStats::default()),
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

    /// Health now.
    pub fn health_report(&self) -> HealthReport {
        let h = &self.health;
        let diverged = h.diverged_at.load(Ordering::Acquire);
        let status = if h.stopped.load(Ordering::Acquire) {
            "stopped"
        } else if !h.caught_up.load(Ordering::Acquire) {
            "starting"
        } else if diverged != 0 {
            "diverged"
        } else if h.feed_failing.load(Ordering::Acquire) {
            "feed_failing"
        } else {
            "ok"
        };
        HealthReport {
            status,
            ready: h.ready(),
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
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the gateway's core thread panicked");
        }
        self.0.health.set_stopped();
        self.0.requests.close_all();
    }
}

/// Starts the core thread; it runs until `stop` is set.
pub fn spawn(
    shared: Arc<Shared>,
    feed: Box<dyn Feed>,
    market_data: MarketData,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let started_ns = now_ns();
    std::thread::Builder::new()
        .name("gpux-gw-core".into())
        .spawn(move || {
            let guard = StopGuard(Arc::clone(&shared));
            Core {
                shared,
                market_data,
                events: Vec::new(),
                started_ns,
            }
            .run(feed, &stop);
            drop(guard);
        })
}

struct Core {
    shared: Arc<Shared>,
    market_data: MarketData,
    events: Vec<Event>,
    started_ns: u64,
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
                    self.process(&batch);
                    let r = self.shared.read();
                    self.market_data.on_batch_end(&r.engine);
                }
                Ok(None) if feed.reached_start() => self.shared.health.set_caught_up(),
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

    fn process(&mut self, batch: &[CommittedCommand]) {
        for chunk in batch.chunks(COMMANDS_PER_LOCK) {
            let mut keys = Vec::new();
            let oldest_remembered = {
                let shared = Arc::clone(&self.shared);
                let mut r = shared.write();
                for cmd in chunk {
                    self.apply(&mut r, cmd, &mut keys);
                }
                r.engine.oldest_remembered_request()
            };
            for (digest, account) in keys {
                self.shared.keys.insert(digest, account);
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
            if let Some(last) = chunk.last() {
                self.shared
                    .stats
                    .applied_seq
                    .store(last.cmd_seq, Ordering::Release);
                if last.ts_ns >= self.started_ns {
                    // Everything sequenced before this gateway started is applied.
                    self.shared.health.set_caught_up();
                }
            }
        }
    }

    fn diverged(&self, cmd_seq: u64, why: &str) {
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
        tracing::error!(
            cmd_seq,
            why,
            "the gateway's replica diverged from the ledger"
        );
    }

    fn apply(
        &mut self,
        r: &mut Replica,
        cmd: &CommittedCommand,
        keys: &mut Vec<(gpux_engine::KeyDigest, AccountId)>,
    ) {
        let expected = r.engine.last_seq() + 1;
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
        let env = r
            .engine
            .apply_json(cmd.cmd_seq, cmd.ts_ns, &cmd.payload, &mut self.events);
        if self.events != cmd.events {
            self.diverged(
                cmd.cmd_seq,
                "re-applied events differ from the committed ones",
            );
        }
        r.history.apply(cmd.cmd_seq, cmd.ts_ns, &cmd.events);
        for ev in &cmd.events {
            if let Event::AccountCreated(a) = ev {
                if let Some(Command::CreateAccount(c)) = env.as_ref().map(|e| &e.command) {
                    // The requested id, or the one the engine assigned.
                    let named = c.account.is_none_or(|id| id == a.account);
                    if let (true, Some(d)) = (named, c.api_key_sha256) {
                        keys.push((d, a.account));
                    }
                }
            }
        }
        self.market_data.on_command(cmd, &r.engine);
        self.shared.stats.applied.fetch_add(1, Ordering::Relaxed);
    }
}
