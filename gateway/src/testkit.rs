//! Test support for market data (not part of the API): a stand-in for the gateway's
//! core loop, so market data can be tested and benchmarked over real sockets before
//! the real core is wired in.
//!
//! [`MdGateway`] runs a real embedded exchange (`gpux_sequencer::Exchange`), follows
//! its committed feed from cmd_seq 1 on a core thread that applies every command to
//! a read replica and calls [`MarketData::on_command`] / [`MarketData::on_batch_end`]
//! exactly as the real core does, and serves [`routes`] with axum on 127.0.0.1:0.
//! Commands go in through the exchange's submitter as protocol JSON. The integrator
//! can swap this for the real core and router; tests only use `url`, `submit` and
//! `with_engine`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::serve::ListenerExt;
use gpux_engine::{AccountId, Engine, Event};
use gpux_sequencer::{
    CommittedCommand, Exchange, Feed, PipelineError, PipelineOptions, SubmitError, Submitter,
};
use tokio::sync::{oneshot, watch};

use crate::marketdata::{routes, MarketData, MarketDataConfig, MarketDataHandle};
use crate::{Authenticator, Principal};

/// Why the stand-in gateway failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// The embedded exchange failed to start or to stop.
    #[error(transparent)]
    Exchange(#[from] PipelineError),
    /// The embedded exchange has no submitter.
    #[error("the embedded exchange has no submitter")]
    NoSubmitter,
    /// A socket or thread could not be set up.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A command envelope could not be serialized.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The submitter dropped the command without an answer.
    #[error("the submitter dropped the command")]
    SubmitDropped,
    /// The log refused the command.
    #[error("submit: {0}")]
    Submit(SubmitError),
    /// The command was not applied in time.
    #[error("command {0} not applied within 30 s")]
    NotApplied(String),
    /// Waiting for the core loop timed out.
    #[error("timed out waiting for the core loop")]
    WaitTimedOut,
    /// The core loop stopped.
    #[error("the core loop stopped")]
    CoreStopped,
    /// The core loop panicked.
    #[error("the core loop panicked")]
    CorePanicked,
    /// The server did not stop in time.
    #[error("the server did not stop within 10 s")]
    ServerStuck,
    /// A blocking task failed.
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}

/// What the stand-in gateway's operations return.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;

/// API keys from a map: enough for tests.
#[derive(Debug, Default, Clone)]
pub struct MapAuth(pub HashMap<String, Principal>);

impl MapAuth {
    /// Keys `key-<id>` for each account, and `admin-key` for the admin.
    pub fn accounts(ids: &[AccountId]) -> Self {
        let mut m: HashMap<String, Principal> = ids
            .iter()
            .map(|&a| (format!("key-{a}"), Principal::Account(a)))
            .collect();
        m.insert("admin-key".into(), Principal::Admin);
        MapAuth(m)
    }
}

impl Authenticator for MapAuth {
    fn principal(&self, api_key: &str) -> Option<Principal> {
        self.0.get(api_key).copied()
    }
}

/// Called on the core thread after each command (e.g. to record commit times).
pub type Observer = Box<dyn FnMut(&CommittedCommand, &Engine) + Send>;

/// How to start an [`MdGateway`].
pub struct Options {
    /// Market-data configuration.
    pub md: MarketDataConfig,
    /// API keys.
    pub auth: Arc<dyn Authenticator>,
    /// `SO_SNDBUF` of accepted sockets (tests of slow readers make it small).
    pub send_buffer: Option<u32>,
    /// Called after every command on the core thread.
    pub observer: Option<Observer>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            md: MarketDataConfig::default(),
            auth: Arc::new(MapAuth::accounts(&[1, 2, 3])),
            send_buffer: None,
            observer: None,
        }
    }
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<CommittedCommand>>>>;

/// An embedded exchange, a stand-in core loop with market data, and the market-data
/// routes served on 127.0.0.1.
pub struct MdGateway {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Market data's handle.
    pub handle: MarketDataHandle,
    exchange: Option<Exchange>,
    submitter: Arc<dyn Submitter>,
    engine: Arc<Mutex<Engine>>,
    applied: watch::Receiver<u64>,
    waiters: Waiters,
    next_request: AtomicU64,
    stop: Arc<AtomicBool>,
    core: Option<std::thread::JoinHandle<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for MdGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdGateway")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MdGateway {
    /// Starts everything with a ledger in `dir` (must be inside a tokio runtime).
    pub async fn start(dir: &Path, opts: Options) -> Result<Self> {
        let exchange = Exchange::start_embedded(dir, PipelineOptions::default())?;
        let submitter = exchange.submitter().ok_or(TestkitError::NoSubmitter)?;
        let (md, handle) = MarketData::new(opts.md);
        let engine = Arc::new(Mutex::new(Engine::new()));
        let (applied_tx, applied) = watch::channel(0u64);
        let waiters: Waiters = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let core = {
            let feed = exchange.follow(1);
            let engine = Arc::clone(&engine);
            let waiters = Arc::clone(&waiters);
            let stop = Arc::clone(&stop);
            let observer = opts.observer;
            std::thread::Builder::new()
                .name("gpux-md-core".into())
                .spawn(move || {
                    core_loop(
                        Box::new(feed),
                        md,
                        engine,
                        applied_tx,
                        waiters,
                        stop,
                        observer,
                    )
                })?
        };
        let listener = match opts.send_buffer {
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            Some(n) => {
                let s = tokio::net::TcpSocket::new_v4()?;
                s.set_send_buffer_size(n)?;
                s.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
                s.listen(1024)?
            }
        };
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = routes(handle.clone(), opts.auth);
        let (shutdown, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        });
        Ok(Self {
            addr,
            handle,
            exchange: Some(exchange),
            submitter,
            engine,
            applied,
            waiters,
            next_request: AtomicU64::new(1),
            stop,
            core: Some(core),
            server: Some(server),
            shutdown: Some(shutdown),
        })
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `ws://127.0.0.1:port/v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// Submits a command envelope (a `request_id` is added when it has none) and
    /// waits until market data has been handed the committed command.
    pub async fn submit(&self, mut envelope: serde_json::Value) -> Result<CommittedCommand> {
        let rid = match envelope.get("request_id").and_then(|v| v.as_str()) {
            Some(r) => r.to_string(),
            None => {
                let r = format!(
                    "md-test-{}",
                    self.next_request.fetch_add(1, Ordering::Relaxed)
                );
                envelope["request_id"] = serde_json::Value::String(r.clone());
                r
            }
        };
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(rid.clone(), tx);
        let (done_tx, done_rx) = oneshot::channel();
        self.submitter.submit(
            serde_json::to_vec(&envelope)?,
            Box::new(move |r| {
                let _ = done_tx.send(r);
            }),
        );
        done_rx
            .await
            .map_err(|_| TestkitError::SubmitDropped)?
            .map_err(TestkitError::Submit)?;
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .map_err(|_| TestkitError::NotApplied(rid))?
            .map_err(|_| TestkitError::CoreStopped)
    }

    /// The command log's submitter.
    pub fn submitter(&self) -> Arc<dyn Submitter> {
        Arc::clone(&self.submitter)
    }

    /// Submits a command without waiting; `done` is told whether it is in the log.
    pub fn submit_raw(&self, payload: Vec<u8>, done: gpux_sequencer::SubmitDone) {
        self.submitter.submit(payload, done);
    }

    /// Waits until the core loop has handed market data every command up to `seq`.
    pub async fn wait_applied(&self, seq: u64) -> Result<()> {
        let mut rx = self.applied.clone();
        tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|&s| s >= seq))
            .await
            .map_err(|_| TestkitError::WaitTimedOut)?
            .map_err(|_| TestkitError::CoreStopped)?;
        Ok(())
    }

    /// The last cmd_seq handed to market data.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Runs `f` on the replica engine (between batches).
    pub fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        f(&self.engine.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Stops the server, the core loop (dropping market data closes every
    /// WebSocket with 1001) and the exchange.
    pub async fn stop(mut self) -> Result<()> {
        self.stop_inner().await
    }

    async fn stop_inner(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(core) = self.core.take() {
            tokio::task::spawn_blocking(move || core.join())
                .await?
                .map_err(|_| TestkitError::CorePanicked)?;
        }
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(server) = self.server.take() {
            if tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .is_err()
            {
                return Err(TestkitError::ServerStuck);
            }
        }
        if let Some(ex) = self.exchange.take() {
            tokio::task::spawn_blocking(move || ex.shutdown()).await??;
        }
        Ok(())
    }
}

impl Drop for MdGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

fn core_loop(
    mut feed: Box<dyn Feed>,
    mut md: MarketData,
    engine: Arc<Mutex<Engine>>,
    applied: watch::Sender<u64>,
    waiters: Waiters,
    stop: Arc<AtomicBool>,
    mut observer: Option<Observer>,
) {
    let mut events: Vec<Event> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let batch = match feed.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "md test core: the feed failed");
                break;
            }
        };
        let mut last = 0;
        {
            let mut engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
            for cmd in batch.iter() {
                events.clear();
                cmd.apply_to(&mut engine, &mut events);
                debug_assert_eq!(events, cmd.events, "the replica diverged");
                md.on_command(cmd, &engine);
                if let Some(o) = observer.as_mut() {
                    o(cmd, &engine);
                }
                last = cmd.cmd_seq;
            }
            md.on_batch_end(&engine);
        }
        let mut w = waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if !w.is_empty() {
            for cmd in batch.iter() {
                if let Some(tx) = cmd.request_id.as_ref().and_then(|r| w.remove(r)) {
                    let _ = tx.send(cmd.clone());
                }
            }
        }
        drop(w);
        applied.send_replace(last);
    }
    drop(md);
}
