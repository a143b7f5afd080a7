//! `gpux bench gateway`: the gateway over loopback, load generator included.
//!
//! Two phases, one after the other, on one Tokio runtime with as many workers as
//! the machine has cores (server and clients share them, as the targets demand):
//!
//! - **Order entry**: `http_clients` concurrent HTTP/1.1 keep-alive connections,
//!   each with its own account and API key, post limit orders (buys and sells
//!   around one price, so about half trade) to `POST /v1/orders` as fast as the
//!   answers come; every answer is durable. Latency is request to full response.
//!   It needs a gateway serving the order-entry routes and its admin API
//!   (`POST /v1/markets`, `/v1/accounts`, deposits, capacity); against a server
//!   without them the phase is reported as skipped, with the reason.
//! - **WebSocket fan-out**: `ws_subscribers` connections subscribe to one
//!   market's book; a generator submits `ws_rate` book-changing commands per
//!   second (each a resting bid, or a cancel of one) straight into the command log
//!   for `ws_seconds`. Every subscriber checks the `seq`/`prev_seq` chain and must
//!   end at the last command's sequence number. Delivery latency is measured per
//!   subscriber and per command, from the command's submission to the arrival of
//!   the update that includes it (an update coalesces the commands of one flush, so
//!   each command counts with its own submission time): log, engine, fsync, core
//!   thread, hub and socket all included.
//!
//! The result is one JSON object with at least `orders_per_sec`, `p99_order_ms`,
//! `ws_subscribers`, `p99_ws_delivery_ms`.
//!
//! This file owns the options, the targets (what is measured) and the report;
//! `orders` and `fanout` run the two phases, `wire` holds their bare HTTP and
//! WebSocket clients.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gpux_gateway::marketdata::MarketDataConfig;
use gpux_gateway::testkit::{MdGateway, Options};
use gpux_sequencer::Submitter;
use serde_json::{json, Value};

mod fanout;
mod orders;
mod wire;

/// What `gpux bench gateway` runs.
#[derive(Debug, Clone)]
pub struct GatewayBenchOptions {
    /// Concurrent HTTP keep-alive clients placing orders.
    pub http_clients: usize,
    /// Orders to place in all.
    pub orders: u64,
    /// WebSocket subscribers of one book.
    pub ws_subscribers: usize,
    /// Book-changing commands per second during the WebSocket phase.
    pub ws_rate: u64,
    /// Seconds the WebSocket phase submits for.
    pub ws_seconds: u64,
    /// Market-data flush interval (coalescing window), ms.
    pub flush_ms: u64,
}

impl Default for GatewayBenchOptions {
    fn default() -> Self {
        Self {
            http_clients: 64,
            orders: 200_000,
            ws_subscribers: 1_000,
            ws_rate: 10_000,
            ws_seconds: 10,
            flush_ms: 10,
        }
    }
}

/// A gateway under test, however it was started.
pub struct Target {
    /// `http://host:port`.
    pub base_url: String,
    /// `ws://host:port/v1/ws`.
    pub ws_url: String,
    /// The admin key, when the server has the admin API (order-entry phase).
    pub admin_key: Option<String>,
    /// Where the WebSocket phase's commands go.
    pub submitter: Arc<dyn Submitter>,
    /// When each command reached market data (`cmd_seq` → ns since
    /// [`CommitClock::epoch`]), if the target can tell.
    pub commits: Option<Arc<CommitClock>>,
    /// What the target is, for the report.
    pub name: String,
    /// Stops everything.
    pub stop: StopFn,
}

/// Stops a [`Target`].
pub type StopFn = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send>;

/// When each command was handed to market data, by `cmd_seq`.
#[derive(Debug)]
pub struct CommitClock {
    /// The instant all of the benchmark's times count from.
    pub epoch: Instant,
    times: std::sync::Mutex<Vec<u64>>,
}

impl CommitClock {
    /// A clock counting from now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            times: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Records that `cmd_seq` reached market data now.
    pub fn record(&self, cmd_seq: u64) {
        let t = self.epoch.elapsed().as_nanos() as u64;
        let mut v = self
            .times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = cmd_seq as usize;
        if v.len() <= i {
            v.resize(i + 1, 0);
        }
        v[i] = t;
    }

    fn snapshot(&self) -> Vec<u64> {
        self.times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The market both phases trade.
const MARKET: &str = "h100-sxm.us-east";
/// The clock when the benchmark started, in ns: the fan-out phase's commands carry
/// committed times from here (the order phase's are the gateway's clock), so both
/// phases trade the same delivery slot, [`slot`].
fn t0() -> u64 {
    static T0: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    })
}

/// The delivery slot both phases trade: three hours after the hour the benchmark
/// started in (open for the whole run).
fn slot() -> u64 {
    (t0() / 1_000_000_000 / 3_600 + 3) * 3_600
}

/// [`slot`] as people write it.
fn slot_name() -> String {
    gpux_engine::slot::format_slot(slot())
}

/// The market-data configuration the benchmark needs (room for every subscriber
/// from one address).
pub fn md_config(opts: &GatewayBenchOptions) -> MarketDataConfig {
    MarketDataConfig {
        flush_interval: Duration::from_millis(opts.flush_ms),
        max_connections_per_peer: opts.ws_subscribers + 16,
        max_connections: opts.ws_subscribers + 1_000,
        ..MarketDataConfig::default()
    }
}

/// A target made of the market-data stand-in core (`gpux_gateway::testkit`): market
/// data and the WebSocket, no order-entry routes.
pub async fn testkit_target(dir: &std::path::Path, opts: &GatewayBenchOptions) -> Result<Target> {
    let commits = CommitClock::new();
    let clock = Arc::clone(&commits);
    let gw = MdGateway::start(
        dir,
        Options {
            md: md_config(opts),
            observer: Some(Box::new(move |cmd, _| clock.record(cmd.cmd_seq))),
            ..Options::default()
        },
    )
    .await?;
    let submitter = gw.submitter();
    Ok(Target {
        base_url: format!("http://{}", gw.addr),
        ws_url: gw.ws_url(),
        admin_key: None,
        submitter,
        commits: Some(commits),
        name: "market-data stand-in core (gpux_gateway::testkit), no order routes".into(),
        stop: Box::new(move || Box::pin(async move { Ok(gw.stop().await?) })),
    })
}

/// The real thing: an embedded exchange and `gpux_gateway` (order entry, accounts,
/// market data) as `gpux serve` runs them, rate limits off (the load generator is
/// one client IP with a few keys). Commit times come from a follower of the ledger.
pub async fn gateway_target(dir: &std::path::Path, opts: &GatewayBenchOptions) -> Result<Target> {
    let exchange = gpux_sequencer::Exchange::start_embedded(dir, Default::default())?;
    let admin_key = format!("gpux_admin_bench_{:016x}", rand::random::<u64>());
    let mut cfg = gpux_gateway::GatewayConfig::new(
        "127.0.0.1:0".parse().expect("a valid address"),
        admin_key.clone(),
    );
    cfg.rate_limit = gpux_gateway::RateLimitConfig {
        per_key: None,
        per_ip_anonymous: None,
        signups_per_ip: None,
    };
    cfg.market_data = md_config(opts);
    let submitter = exchange
        .submitter()
        .context("the embedded exchange has a submitter")?;
    let backend = gpux_gateway::Backend {
        submitter: Arc::clone(&submitter),
        feed: Box::new(exchange.follow(1)),
        refollow: None,
    };
    let gw = gpux_gateway::start(cfg, backend).await?;
    gw.wait_ready().await;
    // When each command became durable and was published (what the gateway's core
    // receives), from a second follower of the same ledger.
    let commits = CommitClock::new();
    let stop_clock = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clock_thread = {
        let clock = Arc::clone(&commits);
        let stop = Arc::clone(&stop_clock);
        let mut feed = exchange.follow(1);
        std::thread::spawn(move || {
            use gpux_sequencer::Feed;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some(batch)) = feed.recv_timeout(Duration::from_millis(50)) {
                    for c in batch.iter() {
                        clock.record(c.cmd_seq);
                    }
                }
            }
        })
    };
    let addr = gw.addr;
    Ok(Target {
        base_url: format!("http://{addr}"),
        ws_url: format!("ws://{addr}/v1/ws"),
        admin_key: Some(admin_key),
        submitter,
        commits: Some(commits),
        name: "gpux serve (embedded exchange + gateway)".into(),
        stop: Box::new(move || {
            Box::pin(async move {
                gw.shutdown().await?;
                stop_clock.store(true, Ordering::Relaxed);
                let _ = clock_thread.join();
                tokio::task::spawn_blocking(move || exchange.shutdown().map(|_| ()))
                    .await
                    .map_err(|e| anyhow::anyhow!("exchange shutdown: {e}"))??;
                Ok(())
            })
        }),
    })
}

/// `gpux bench gateway`: [`run`] against a [`gateway_target`] whose ledger lives in
/// a temporary directory, on a Tokio runtime of its own.
pub fn run_embedded(opts: &GatewayBenchOptions) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let report = tokio::runtime::Runtime::new()?.block_on(async {
        let target = gateway_target(dir.path(), opts).await?;
        run(opts, target).await
    })?;
    Ok(report)
}

/// Runs both phases against `target` and stops it. Must run inside a Tokio runtime.
pub async fn run(opts: &GatewayBenchOptions, target: Target) -> Result<Value> {
    let mut report = json!({"bench": "gateway", "target": target.name});
    let orders = match &target.admin_key {
        Some(key) => orders::order_phase(opts, &target.base_url, key).await?,
        None => json!({
            "orders_per_sec": null,
            "p99_order_ms": null,
            "order_entry": "skipped: this server has no order-entry routes (POST /v1/orders) or admin API",
        }),
    };
    merge(&mut report, orders);
    let ws = fanout::ws_phase(opts, &target).await?;
    merge(&mut report, ws);
    (target.stop)().await?;
    Ok(report)
}

/// Adds `from`'s fields to `into`.
fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// Microseconds as milliseconds, rounded to the microsecond.
fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 1000.0).round() / 1000.0
}
