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

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use gpux_gateway::marketdata::MarketDataConfig;
use gpux_gateway::testkit::{MdGateway, Options};
use gpux_ledger::LatencyHistogram;
use gpux_sequencer::Submitter;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

const MARKET: &str = "h100-sxm.us-east";
/// 2026-01-01T00:00:00Z: the benchmark's commands carry synthetic committed times.
const T0: u64 = 1_767_225_600_000_000_000;

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

/// Runs both phases against `target` and stops it. Must run inside a Tokio runtime.
pub async fn run(opts: &GatewayBenchOptions, target: Target) -> Result<Value> {
    let mut report = json!({"bench": "gateway", "target": target.name});
    let orders = match &target.admin_key {
        Some(key) => order_phase(opts, &target.base_url, key).await?,
        None => json!({
            "orders_per_sec": null,
            "p99_order_ms": null,
            "order_entry": "skipped: this server has no order-entry routes (POST /v1/orders) or admin API",
        }),
    };
    merge(&mut report, orders);
    let ws = ws_phase(opts, &target).await?;
    merge(&mut report, ws);
    (target.stop)().await?;
    Ok(report)
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 1000.0).round() / 1000.0
}

// ----- order entry ------------------------------------------------------------------

/// A minimal HTTP/1.1 keep-alive client: one request at a time, bodies with
/// `Content-Length` (what axum sends). Cheap enough that the load generator leaves
/// the cores to the server.
struct Http {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl Http {
    async fn connect(base_url: &str) -> Result<Http> {
        let host = base_url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("not an http:// URL: {base_url}"))?
            .trim_end_matches('/')
            .to_string();
        let stream = TcpStream::connect(&host).await?;
        stream.set_nodelay(true)?;
        Ok(Http {
            stream,
            host,
            buf: Vec::with_capacity(8 * 1024),
        })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if let Some(k) = key {
            req.push_str("Authorization: Bearer ");
            req.push_str(k);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        self.stream.write_all(&out).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end])?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line"))?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())
                    .flatten()
            })
            .ok_or_else(|| anyhow!("a response without Content-Length"))?;
        while self.buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection mid-body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buf[head_end..head_end + len].to_vec()))
    }

    async fn json(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value)> {
        let (s, b) = self
            .request(method, path, key, body.to_string().as_bytes())
            .await?;
        Ok((s, serde_json::from_slice(&b).unwrap_or(Value::Null)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn order_phase(opts: &GatewayBenchOptions, base: &str, admin_key: &str) -> Result<Value> {
    let mut admin = Http::connect(base).await?;
    let (s, v) = admin
        .json(
            "POST",
            "/v1/markets",
            Some(admin_key),
            &json!({"market": MARKET, "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": 0, "taker_fee_bps": 0}),
        )
        .await?;
    if s == 404 || s == 405 {
        return Ok(json!({"orders_per_sec": null, "p99_order_ms": null,
            "order_entry": format!("skipped: POST /v1/markets answered {s}")}));
    }
    if s >= 300 && s != 409 {
        bail!("listing the market failed: {s} {v}");
    }
    let mut keys = Vec::new();
    for _ in 0..opts.http_clients {
        let (s, v) = admin
            .json("POST", "/v1/accounts", Some(admin_key), &json!({}))
            .await?;
        if s >= 300 {
            bail!("creating an account failed: {s} {v}");
        }
        let account = v["account"].as_u64().context("no account id")?;
        let key = v["api_key"].as_str().context("no api key")?.to_string();
        let (s, v) = admin
            .json(
                "POST",
                &format!("/v1/accounts/{account}/deposits"),
                Some(admin_key),
                &json!({"amount": "100000000"}),
            )
            .await?;
        if s >= 300 {
            bail!("deposit failed: {s} {v}");
        }
        let (s, v) = admin
            .json(
                "POST",
                "/v1/capacity/add",
                Some(&key),
                &json!({"market": MARKET, "quantity": "100000000"}),
            )
            .await?;
        if s >= 300 {
            bail!("adding capacity failed: {s} {v}");
        }
        keys.push(key);
    }
    let remaining = Arc::new(AtomicU64::new(opts.orders));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let base = base.to_string();
        let remaining = Arc::clone(&remaining);
        let errors = Arc::clone(&errors);
        tasks.push(tokio::spawn(async move {
            let mut http = Http::connect(&base).await?;
            let mut hist = LatencyHistogram::default();
            let mut n = 0u64;
            let mut first: Option<String> = None;
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
                .is_ok()
            {
                // Buys and sells around 2.00 from every client: about half trade,
                // the rest rest and are taken later; the book stays shallow.
                let buy = (n + i as u64).is_multiple_of(2);
                let price = format!("{}", 195 + (n * 7 + i as u64 * 3) % 11);
                let price = format!("{}.{}", &price[..1], &price[1..]);
                let body = format!(
                    r#"{{"market":"{MARKET}","side":"{}","price":"{price}","quantity":"1"}}"#,
                    if buy { "buy" } else { "sell" }
                );
                let t = Instant::now();
                let (s, b) = http
                    .request("POST", "/v1/orders", Some(&key), body.as_bytes())
                    .await?;
                hist.record_us(t.elapsed().as_micros() as u64);
                if s >= 300 {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if first.is_none() {
                        first = Some(format!("{s} {}", String::from_utf8_lossy(&b)));
                    }
                }
                n += 1;
            }
            anyhow::Ok((hist, n, first))
        }));
    }
    let mut hist = LatencyHistogram::default();
    let mut placed = 0;
    let mut first_error = None;
    for t in tasks {
        let (h, n, e) = t.await??;
        hist.merge(&h);
        placed += n;
        first_error = first_error.or(e);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "http_clients": opts.http_clients,
        "orders": placed,
        "order_errors": errors.load(Ordering::Relaxed),
        "first_order_error": first_error,
        "order_seconds": (secs * 1000.0).round() / 1000.0,
        "orders_per_sec": (placed as f64 / secs).round(),
        "p50_order_ms": ms(hist.quantile_us(500)),
        "p99_order_ms": ms(hist.quantile_us(990)),
        "p999_order_ms": ms(hist.quantile_us(999)),
        "max_order_ms": ms(hist.max_us()),
    }))
}

// ----- WebSocket fan-out ------------------------------------------------------------

/// A minimal WebSocket client for the subscribers: text frames in one buffer, no
/// copy and no allocation per message (the server never fragments or masks), so
/// a thousand of them leave the cores to the server.
struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// A frame: its opcode and where its payload sits in the buffer.
type Frame = (u8, std::ops::Range<usize>);

impl RawWs {
    async fn connect(url: &str) -> Result<RawWs> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow!("not a ws:// URL: {url}"))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        let mut ws = RawWs {
            stream,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        };
        let req = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.stream.write_all(req.as_bytes()).await?;
        let head_end = loop {
            if let Some(i) = find(&ws.buf[..ws.end], b"\r\n\r\n") {
                break i + 4;
            }
            ws.fill().await?;
        };
        if !ws.buf[..head_end].starts_with(b"HTTP/1.1 101") {
            bail!(
                "upgrade refused: {}",
                String::from_utf8_lossy(&ws.buf[..head_end.min(200)])
            );
        }
        ws.start = head_end;
        Ok(ws)
    }

    /// Reads more bytes after `end`, compacting or growing the buffer first.
    async fn fill(&mut self) -> Result<()> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.end += n;
        Ok(())
    }

    async fn send_text(&mut self, text: &str) -> Result<()> {
        let p = text.as_bytes();
        let mut f = vec![0x81u8];
        if p.len() < 126 {
            f.push(0x80 | p.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(p.len() as u16).to_be_bytes());
        }
        let mask = [0x5au8, 0x13, 0xc7, 0x2e];
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&f).await?;
        Ok(())
    }

    /// The next whole frame (cancel-safe: bytes read stay in the buffer).
    async fn next_frame(&mut self) -> Result<Frame> {
        loop {
            let b = &self.buf[self.start..self.end];
            if b.len() >= 2 {
                let opcode = b[0] & 0x0f;
                if b[0] & 0x80 == 0 {
                    bail!("a fragmented frame");
                }
                let (len, head) = match b[1] & 0x7f {
                    126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                    127 if b.len() >= 10 => {
                        let mut l = [0u8; 8];
                        l.copy_from_slice(&b[2..10]);
                        (u64::from_be_bytes(l) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && b.len() >= head + len {
                    let at = self.start + head;
                    self.start = at + len;
                    return Ok((opcode, at..at + len));
                }
                if len != usize::MAX && head + len > self.buf.len() {
                    self.buf.resize(head + len + 1024, 0);
                }
            }
            self.fill().await?;
        }
    }
}

/// The `"key":123` integer in a JSON text, found without parsing the rest.
fn int_field(text: &[u8], key: &[u8]) -> Option<u64> {
    let i = find(text, key)? + key.len();
    let mut v: u64 = 0;
    let mut any = false;
    for &c in &text[i..] {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        any = true;
    }
    any.then_some(v)
}

struct SubResult {
    /// `(prev_seq, seq, received_ns)` of every update.
    receipts: Vec<(u64, u64, u64)>,
    messages: u64,
    last_seq: u64,
    gaps: u64,
    snapshots: u64,
}

async fn submit_all(submitter: &Arc<dyn Submitter>, commands: Vec<Value>) -> Result<()> {
    let mut waits = Vec::new();
    for c in commands {
        let (tx, rx) = tokio::sync::oneshot::channel();
        submitter.submit(
            serde_json::to_vec(&c)?,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        waits.push(rx);
    }
    for w in waits {
        w.await?.map_err(|e| anyhow!("submit: {e}"))?;
    }
    Ok(())
}

async fn ws_phase(opts: &GatewayBenchOptions, target: &Target) -> Result<Value> {
    let env = |ts: u64, c: Value| json!({"v": 1, "ts_ns": ts, "command": c});
    // Setup: a market (listed by this phase unless the order phase did), one
    // account with funds, and `depth` resting bids so cancels always hit.
    let depth = 100u64;
    let mut setup = vec![
        env(
            T0,
            json!({"type":"list_market","market":MARKET,"tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":0}),
        ),
        env(
            T0,
            json!({"type":"create_account","account":900_000_001u64}),
        ),
        env(
            T0,
            json!({"type":"deposit","account":900_000_001u64,"amount":"100000000"}),
        ),
    ];
    // Bid k rests at 1.00 + (k mod 100) ticks with client order id `b<k>`.
    let bid = move |ts: u64, k: u64| {
        env(
            ts,
            json!({"type":"place_order","account":900_000_001u64,"market":MARKET,"side":"buy",
                "price":format!("1.{:02}", k % 100),"quantity":"1","client_order_id":format!("b{k}")}),
        )
    };
    let cancel = move |ts: u64, k: u64| {
        env(
            ts,
            json!({"type":"cancel_order","account":900_000_001u64,"client_order_id":format!("b{k}")}),
        )
    };
    for k in 0..depth {
        setup.push(bid(T0, k));
    }
    submit_all(&target.submitter, setup).await?;
    // Wait until the setup is published (the book's seq holds still).
    let mut http = Http::connect(&target.base_url).await?;
    let depth_path = format!("/v1/markets/{MARKET}/depth?depth=1");
    let mut last = (0u64, Instant::now());
    loop {
        let (s, v) = http.json("GET", &depth_path, None, &Value::Null).await?;
        let seq = v["seq"].as_u64().unwrap_or(0);
        if s == 200 && seq > 0 && seq == last.0 && last.1.elapsed() > Duration::from_millis(300) {
            break;
        }
        if seq != last.0 {
            last = (seq, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Subscribers: connect, subscribe, read the snapshot.
    let n_subs = opts.ws_subscribers;
    let mut clients = Vec::with_capacity(n_subs);
    for chunk in (0..n_subs).collect::<Vec<_>>().chunks(100) {
        let mut conns = Vec::new();
        for _ in chunk {
            let url = target.ws_url.clone();
            conns.push(tokio::spawn(async move {
                let mut ws = RawWs::connect(&url).await?;
                ws.send_text(
                    &json!({"op":"subscribe","channel":format!("book.{MARKET}")}).to_string(),
                )
                .await?;
                loop {
                    let (op, r) = ws.next_frame().await?;
                    let t = &ws.buf[r];
                    if op == 8 {
                        bail!("closed before the snapshot");
                    }
                    if t.starts_with(br#"{"type":"snapshot""#) {
                        let seq = int_field(t, br#""seq":"#).unwrap_or(0);
                        return anyhow::Ok((ws, seq));
                    }
                    if t.starts_with(br#"{"type":"error""#) {
                        bail!("subscribe failed: {}", String::from_utf8_lossy(t));
                    }
                }
            }));
        }
        for c in conns {
            clients.push(c.await??);
        }
    }
    // The snapshot's seq is where this phase's commands start counting.
    let base = clients.iter().map(|(_, s)| *s).max().unwrap_or(0);
    if clients.iter().any(|(_, s)| *s != base) {
        bail!("subscribers started at different seqs; the setup was still being published");
    }

    let n = opts.ws_rate * opts.ws_seconds;
    let submitted_ns: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let final_seq = base + n;
    let epoch = target
        .commits
        .as_ref()
        .map_or_else(Instant::now, |c| c.epoch);
    let mut stops = Vec::with_capacity(n_subs);
    let mut subs = Vec::with_capacity(n_subs);
    let per_sub = (opts.ws_rate * opts.ws_seconds / opts.flush_ms.max(1)) as usize + 64;
    for (mut ws, start) in clients {
        // One oneshot per subscriber to give up at the deadline: polling it costs
        // far less than a timer per message.
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop_tx);
        subs.push(tokio::spawn(async move {
            let mut r = SubResult {
                receipts: Vec::with_capacity(per_sub),
                messages: 0,
                last_seq: start,
                gaps: 0,
                snapshots: 0,
            };
            while r.last_seq < final_seq {
                let (op, range) = tokio::select! {
                    biased;
                    f = ws.next_frame() => match f {
                        Ok(f) => f,
                        Err(_) => break,
                    },
                    _ = &mut stop => break,
                };
                if op == 8 {
                    break;
                }
                if op != 1 {
                    continue;
                }
                let now = epoch.elapsed().as_nanos() as u64;
                let t = &ws.buf[range];
                r.messages += 1;
                let seq = int_field(t, br#""seq":"#).unwrap_or(0);
                if t.starts_with(br#"{"type":"update""#) {
                    let prev = int_field(t, br#""prev_seq":"#).unwrap_or(0);
                    if prev != r.last_seq {
                        r.gaps += 1;
                    }
                    r.receipts.push((prev, seq, now));
                    r.last_seq = seq;
                } else if t.starts_with(br#"{"type":"snapshot""#) {
                    r.snapshots += 1;
                    r.last_seq = seq;
                }
            }
            drop(ws);
            r
        }));
    }

    // The generator: command i is due at i / rate seconds; submit what is due every
    // millisecond. Command i is a bid (even) or the cancel of the oldest bid (odd,
    // by client order id), so every command changes the book.
    let submitter = Arc::clone(&target.submitter);
    let rate = opts.ws_rate;
    let gen_ns = Arc::clone(&submitted_ns);
    let errors = Arc::new(AtomicU64::new(0));
    let gen_errors = Arc::clone(&errors);
    let generator = tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut i = 0u64;
        while i < n {
            tick.tick().await;
            let due =
                ((start.elapsed().as_nanos() as u64).saturating_mul(rate) / 1_000_000_000).min(n);
            while i < due {
                let ts = T0 + 1_000_000 + i;
                let cmd = if i.is_multiple_of(2) {
                    bid(ts, depth + i / 2)
                } else {
                    cancel(ts, i / 2)
                };
                let payload = serde_json::to_vec(&cmd).unwrap_or_default();
                gen_ns[i as usize].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let e = Arc::clone(&gen_errors);
                submitter.submit(
                    payload,
                    Box::new(move |r| {
                        if r.is_err() {
                            e.fetch_add(1, Ordering::Relaxed);
                        }
                    }),
                );
                i += 1;
            }
        }
        start.elapsed()
    });
    let gen_time = generator.await?;
    // Let every subscriber reach the last command (or give up after 30 s).
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    let mut results = Vec::with_capacity(n_subs);
    let mut all = futures_util::future::join_all(subs);
    let joined = tokio::select! {
        r = &mut all => Some(r),
        _ = &mut deadline => None,
    };
    let joined = match joined {
        Some(r) => r,
        None => {
            for s in stops.drain(..) {
                let _ = s.send(());
            }
            all.await
        }
    };
    drop(stops);
    for r in joined {
        results.push(r?);
    }
    // Latencies, per subscriber and per command an update includes: from
    // submission (end to end) and from reaching market data (delivery proper).
    let submitted: Vec<u64> = submitted_ns
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    let committed = target.commits.as_ref().map(|c| c.snapshot());
    let mut end_to_end = LatencyHistogram::default();
    let mut delivery = LatencyHistogram::default();
    let (mut messages, mut gaps, mut snapshots, mut complete) = (0u64, 0u64, 0u64, 0u64);
    for r in &results {
        for &(prev, seq, at) in &r.receipts {
            for c in prev.max(base) + 1..=seq {
                if let Some(&s) = submitted.get((c - base - 1) as usize) {
                    if s != 0 {
                        end_to_end.record_us(at.saturating_sub(s) / 1000);
                    }
                }
                if let Some(&s) = committed.as_ref().and_then(|v| v.get(c as usize)) {
                    if s != 0 {
                        delivery.record_us(at.saturating_sub(s) / 1000);
                    }
                }
            }
        }
        messages += r.messages;
        gaps += r.gaps;
        snapshots += r.snapshots;
        complete += u64::from(r.last_seq >= final_seq);
    }
    // Without a commit clock, delivery is reported end to end.
    let hist = if delivery.count() > 0 {
        &delivery
    } else {
        &end_to_end
    };
    let secs = gen_time.as_secs_f64();
    Ok(json!({
        "ws_subscribers": n_subs,
        "ws_updates": n,
        "ws_updates_per_sec": (n as f64 / secs).round(),
        "ws_submit_errors": errors.load(Ordering::Relaxed),
        "ws_subscribers_complete": complete,
        "ws_gaps": gaps,
        "ws_resync_snapshots": snapshots,
        "ws_messages_received": messages,
        "ws_deliveries": hist.count(),
        "ws_flush_ms": opts.flush_ms,
        "ws_delivery_from": if delivery.count() > 0 { "commit (handed to market data)" } else { "submission" },
        "p50_ws_delivery_ms": ms(hist.quantile_us(500)),
        "p99_ws_delivery_ms": ms(hist.quantile_us(990)),
        "p999_ws_delivery_ms": ms(hist.quantile_us(999)),
        "max_ws_delivery_ms": ms(hist.max_us()),
        "p50_ws_end_to_end_ms": ms(end_to_end.quantile_us(500)),
        "p99_ws_end_to_end_ms": ms(end_to_end.quantile_us(990)),
        "max_ws_end_to_end_ms": ms(end_to_end.max_us()),
    }))
}
