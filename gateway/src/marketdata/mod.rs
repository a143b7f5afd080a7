//! Market data, built from committed commands only, per book (a market's delivery
//! slot): L2 books with sequence numbers, recent trades, tickers, candles; a
//! forward curve per market; and private order updates, served over REST and
//! the `/v1/ws` WebSocket (protocol: `docs/MARKET_DATA.md`).
//!
//! Three parties, and what each owns:
//!
//! ```text
//!  core thread ──on_command/on_batch_end──► per-market CoreSide ──► hub thread ──► connection queues ──► sockets
//!  (MarketData)   accumulate, merge once      (short locks)          publish,       (bounded, one per      (writer task
//!                 per batch, try_send wake                           fan out        WebSocket)              per socket)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`book`] | depth changes from events; the L2 book |
//! | [`stats`] | recent trades, 1m/1h candles (5m, 15m, 1d merged from them), the 24h window |
//! | `accumulate` | the core thread's half: events → accumulated changes, merged per batch |
//! | `state` | what the three parties share, and who writes what |
//! | `inbox` | what the hub is told (subscriptions, wake-ups, reset), and the names it uses |
//! | `hub` | publishing: published books, subscriptions, serialize-once fan-out, resync |
//! | [`queue`] | a connection's bounded outbound queue |
//! | `ws` | `/v1/ws`: upgrade, limits, reader and writer tasks, heartbeats |
//! | `rest` | `GET /v1/markets/{market}/slots` (forward curve), `.../slots/{slot}/depth`, `/trades`, `/ticker`, `/candles` |
//! | [`network`] | figures over every book, for the network's statistics |
//! | [`wire`] | the JSON shapes |
//!
//! Why this split: the core thread must never wait on a client, so it only ever
//! takes short locks and `try_send`s; the hub is the single publisher, so snapshots
//! and updates always fit together (`prev_seq` of the first update after a snapshot
//! is the snapshot's `seq`); each message is serialized once and the same bytes are
//! queued to every subscriber.

mod accumulate;
pub mod book;
mod hub;
mod inbox;
pub mod network;
pub mod queue;
mod rest;
mod state;
pub mod stats;
pub mod wire;

pub use accumulate::MarketDataCheckpoint;
pub use state::OpenOrders;
mod ws;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::http::Method;
use axum::Router;

use crate::routes::{listed, Routes};
use crate::Authenticator;

/// WebSocket close codes market data uses (see `docs/MARKET_DATA.md`).
pub mod close {
    /// The client closed, or the session ended normally.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol.
    pub const PROTOCOL: u16 = 1002;
    /// A text frame was not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A frame or message was larger than `max_frame_bytes`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server cannot take the connection now; reconnect later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The outbound queue overflowed while the connection had the private `orders`
    /// channel, whose updates cannot be re-sent as a snapshot.
    pub const SLOW_CONSUMER: u16 = 4000;
    /// Nothing (not even a pong) was received for `idle_timeout`.
    pub const HEARTBEAT_TIMEOUT: u16 = 4001;
    /// The API key the connection authenticated with was revoked: it no longer
    /// opens the account (authenticate again with a valid key on a new
    /// connection).
    pub const KEY_REVOKED: u16 = 4002;
}

/// Limits and tuning of market data. Every bound is here, with its default.
#[derive(Debug, Clone)]
pub struct MarketDataConfig {
    /// At most one publication per this interval: changes arriving faster are
    /// coalesced into one update per book (latency ≤ this under load; none when
    /// idle). Default 10 ms.
    pub flush_interval: Duration,
    /// Trades kept per book for REST (`/trades` limit maximum). Default 1,000.
    pub recent_trades: usize,
    /// Trades in a `trades.<market>.<slot>` snapshot. Default 50.
    pub snapshot_trades: usize,
    /// Candles kept per interval and book (one-minute candles: at least a day).
    /// Default 1,500.
    pub candles: usize,
    /// Books of closed slots kept per market (their trades, candles and last
    /// figures stay readable); older ones are forgotten, so memory does not grow
    /// with every hour that passes. At least 1. Default 48 (two days).
    pub closed_books_kept: usize,
    /// `depth` when not given. Default 50.
    pub depth_default: usize,
    /// Largest `depth`. Default 1,000.
    pub depth_max: usize,
    /// `/trades` `limit` when not given. Default 100.
    pub trades_default: usize,
    /// `/candles` `limit` when not given. Default 100.
    pub candles_default: usize,
    /// Messages a connection's outbound queue holds before it overflows. Default 1,024.
    pub queue_messages: usize,
    /// Bytes a connection's outbound queue holds before it overflows. Default 4 MiB.
    pub queue_bytes: usize,
    /// Subscriptions per connection. Default 32.
    pub max_subscriptions: usize,
    /// Requests per second one connection may send (a token bucket holding twice
    /// this); more are answered with `rate_limited`. Default 50.
    pub max_requests_per_sec: u32,
    /// WebSocket connections per authenticated account (or the admin). Default 16.
    pub max_connections_per_account: usize,
    /// Anonymous WebSocket connections per peer IP address. Default 64.
    pub max_connections_per_peer: usize,
    /// WebSocket connections in all. Default 10,000.
    pub max_connections: usize,
    /// Longest request (text frame) answered with an error rather than a close.
    /// Default 4,096 bytes.
    pub max_request_bytes: usize,
    /// Longest frame or message accepted at all; larger closes the connection with
    /// 1009. Default 64 KiB.
    pub max_frame_bytes: usize,
    /// A ping every this often. Default 15 s.
    pub heartbeat_interval: Duration,
    /// A `heartbeat` message with the `seq` of every subscribed book to each
    /// connection subscribed to a book, this often, busy or idle. Default 5 s.
    pub book_heartbeat_interval: Duration,
    /// Close a peer that sent nothing (pongs count) for this long. Default 45 s.
    pub idle_timeout: Duration,
    /// Drop a peer that accepts no data for this long. Default 10 s.
    pub write_timeout: Duration,
    /// Messages (subscription requests, wake-ups) the hub's inbox holds. Default 65,536.
    pub hub_queue: usize,
    /// Trades per market waiting for the hub before the trades stream resyncs.
    /// Default 100,000.
    pub pending_trades_max: usize,
    /// Private messages waiting for the hub before `orders` subscribers are
    /// disconnected. Default 1,000,000.
    pub pending_private_max: usize,
}

impl Default for MarketDataConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(10),
            recent_trades: 1_000,
            snapshot_trades: 50,
            candles: 1_500,
            closed_books_kept: 48,
            depth_default: 50,
            depth_max: 1_000,
            trades_default: 100,
            candles_default: 100,
            queue_messages: 1_024,
            queue_bytes: 4 << 20,
            max_subscriptions: 32,
            max_requests_per_sec: 50,
            max_connections_per_account: 16,
            max_connections_per_peer: 64,
            max_connections: 10_000,
            max_request_bytes: 4_096,
            max_frame_bytes: 64 << 10,
            heartbeat_interval: Duration::from_secs(15),
            book_heartbeat_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(45),
            write_timeout: Duration::from_secs(10),
            hub_queue: 65_536,
            pending_trades_max: 100_000,
            pending_private_max: 1_000_000,
        }
    }
}

/// Market data's core-thread half: owned by the gateway's core thread, fed every
/// committed command. Dropping it stops the hub and closes every WebSocket (1001).
pub struct MarketData {
    accumulator: accumulate::Accumulator,
    hub_tx: SyncSender<inbox::HubMsg>,
    hub: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MarketData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketData").finish_non_exhaustive()
    }
}

/// A cheap handle on market data for HTTP handlers (see [`routes`]).
#[derive(Clone)]
pub struct MarketDataHandle {
    shared: Arc<state::MarketDataState>,
    hub: SyncSender<inbox::HubMsg>,
}

impl std::fmt::Debug for MarketDataHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketDataHandle").finish_non_exhaustive()
    }
}

/// Live counters of market data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MarketDataStats {
    /// WebSocket connections open now.
    pub connections: u64,
    /// Publications so far.
    pub flushes: u64,
    /// Messages queued to connections (one per subscriber per message).
    pub messages_queued: u64,
    /// Connections resynced with fresh snapshots after their queue overflowed.
    pub resyncs: u64,
    /// Connections closed with 4000 (slow consumer with the `orders` channel).
    pub slow_closes: u64,
}

impl MarketDataHandle {
    /// Sets where the `orders` channel's snapshot of open orders comes from (the
    /// gateway's replica, which is never behind market data). Only the first call
    /// takes effect.
    pub fn set_open_orders(&self, f: state::OpenOrders) {
        let _ = self.shared.open_orders.set(f);
    }

    /// The counters now.
    pub fn stats(&self) -> MarketDataStats {
        let c = &self.shared.counters;
        MarketDataStats {
            connections: c.connections.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            messages_queued: c.messages_queued.load(Ordering::Relaxed),
            resyncs: c.resyncs.load(Ordering::Relaxed),
            slow_closes: c.slow_closes.load(Ordering::Relaxed),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &MarketDataConfig {
        &self.shared.cfg
    }

    /// The network's figures now, over every book, or `None` while market data
    /// is being rebuilt.
    pub fn network(&self) -> Option<network::NetworkFigures> {
        let generation = self.shared.serving_generation()?;
        let f = network::figures(&self.shared);
        self.shared.still_serving(generation).then_some(f)
    }
}

impl MarketData {
    /// Market data with its hub thread started, and the handle for [`routes`].
    pub fn new(cfg: MarketDataConfig) -> (MarketData, MarketDataHandle) {
        let (tx, rx) = mpsc::sync_channel(cfg.hub_queue.max(16));
        let shared = Arc::new(state::MarketDataState::new(cfg));
        let hub = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("gpux-md-hub".into())
                .spawn(move || hub::Hub::new(shared, rx).run())
                .expect("cannot start the market-data hub thread")
        };
        let md = MarketData {
            accumulator: accumulate::Accumulator::new(Arc::clone(&shared), tx.clone()),
            hub_tx: tx.clone(),
            hub: Some(hub),
        };
        (md, MarketDataHandle { shared, hub: tx })
    }

    /// Called for every committed command, in cmd_seq order from 1, after the core's
    /// read replica applied it; `engine` is the replica's state after the command.
    /// Never blocks.
    pub fn on_command(
        &mut self,
        cmd: &gpux_sequencer::CommittedCommand,
        engine: &gpux_engine::Engine,
    ) {
        self.accumulator.on_command(cmd, engine);
    }

    /// After each run of commands from the feed: hands the run's changes to the hub
    /// (which publishes at most once per `flush_interval`). Never blocks.
    pub fn on_batch_end(&mut self, engine: &gpux_engine::Engine) {
        self.accumulator.on_batch_end(engine);
    }

    /// What the gateway's checkpoint keeps of market data. Call between batches
    /// (after [`on_batch_end`](Self::on_batch_end)).
    pub fn checkpoint(&self) -> MarketDataCheckpoint {
        self.accumulator.checkpoint()
    }

    /// Takes up market data from a checkpoint taken when the replica was where
    /// `engine` is now, and hands the books to the hub. Call before any command.
    pub fn restore(
        &mut self,
        ck: MarketDataCheckpoint,
        engine: &gpux_engine::Engine,
    ) -> Result<(), String> {
        self.accumulator.restore(ck, engine)?;
        self.accumulator.on_batch_end(engine);
        Ok(())
    }

    /// Stops serving and forgets everything, because what it was built from was
    /// wrong (the gateway's replica diverged): REST answers 503
    /// `replica_rebuilding`, WebSocket upgrades are refused the same way, every
    /// open connection is closed with 1013 (try again later), and every book,
    /// trade list and candle is emptied. Feed it again from cmd_seq 1, then call
    /// [`resume`](Self::resume). Waits for the hub to finish the reset (the hub
    /// never waits on a client, so this is short).
    pub fn reset(&mut self) {
        let g = self.state().generation.load(Ordering::Acquire);
        if g.is_multiple_of(2) {
            self.state().generation.store(g + 1, Ordering::Release);
        }
        self.accumulator.reset();
        let (done, wait) = mpsc::sync_channel(1);
        if self.hub_tx.send(inbox::HubMsg::Reset { done }).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Serves again after [`reset`](Self::reset) (no-op if not reset).
    pub fn resume(&mut self) {
        let g = self.state().generation.load(Ordering::Acquire);
        if g % 2 == 1 {
            self.state().generation.store(g + 1, Ordering::Release);
        }
    }

    fn state(&self) -> &state::MarketDataState {
        self.accumulator.shared()
    }
}

impl Drop for MarketData {
    fn drop(&mut self) {
        // The hub's inbox may be full; a blocking send here is bounded by the hub
        // draining it, which it does without waiting on anyone.
        let _ = self.hub_tx.send(inbox::HubMsg::Stop);
        if let Some(h) = self.hub.take() {
            let _ = h.join();
        }
    }
}

fn rest_routes() -> Routes<Arc<state::MarketDataState>> {
    Routes::new()
        .add(Method::GET, "/v1/markets/{market}/slots", rest::curve)
        .add(
            Method::GET,
            "/v1/markets/{market}/slots/{slot}/depth",
            rest::depth,
        )
        .add(
            Method::GET,
            "/v1/markets/{market}/slots/{slot}/trades",
            rest::trades,
        )
        .add(
            Method::GET,
            "/v1/markets/{market}/slots/{slot}/ticker",
            rest::ticker,
        )
        .add(
            Method::GET,
            "/v1/markets/{market}/slots/{slot}/candles",
            rest::candles,
        )
}

fn ws_routes() -> Routes<ws::WsState> {
    Routes::new().add(Method::GET, "/v1/ws", ws::upgrade)
}

/// Every `(method, path)` [`routes`] serves, in axum's path syntax (read off the
/// same route tables). Part of [`crate::served_routes`].
pub fn served_routes() -> Vec<(String, String)> {
    let mut served = rest_routes().served;
    served.extend(ws_routes().served);
    listed(served)
}

/// Checked before every market-data REST request (the gateway's readiness and
/// per-address rate limit); an `Err` is the answer.
pub type RestGate =
    Arc<dyn Fn(&axum::http::request::Parts) -> Result<(), crate::ApiError> + Send + Sync>;

/// The market-data routes: `GET /v1/markets/{market}/slots` (the forward curve),
/// `GET /v1/markets/{market}/slots/{slot}/depth|trades|ticker|candles` and `GET /v1/ws` ([`served_routes`]), ungated. Serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` so anonymous WebSocket
/// connections are counted per peer address (without it they share one count).
pub fn routes(handle: MarketDataHandle, auth: Arc<dyn Authenticator>) -> Router {
    routes_gated(handle, auth, None)
}

/// [`routes`], with `gate` checked before each REST request (the gateway passes
/// its readiness check and rate limits).
pub fn routes_gated(
    handle: MarketDataHandle,
    auth: Arc<dyn Authenticator>,
    gate: Option<RestGate>,
) -> Router {
    let ws_state = ws::WsState {
        shared: Arc::clone(&handle.shared),
        hub: handle.hub.clone(),
        auth,
    };
    let mut rest = rest_routes().router.with_state(Arc::clone(&handle.shared));
    if let Some(gate) = gate {
        rest = rest.route_layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let gate = Arc::clone(&gate);
                async move {
                    use axum::response::IntoResponse;
                    let (parts, body) = req.into_parts();
                    if let Err(e) = gate(&parts) {
                        return e.into_response();
                    }
                    next.run(axum::extract::Request::from_parts(parts, body))
                        .await
                }
            },
        ));
    }
    let ws = ws_routes().router.with_state(ws_state);
    rest.merge(ws)
}
