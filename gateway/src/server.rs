//! Starting and stopping a gateway: binding, the core thread, the router, graceful
//! shutdown.
//!
//! Owns [`Backend`], [`start`], [`RunningGateway`], [`GatewayError`] and the API's route table
//! ([`served_routes`], with market data's): every route is added through one
//! helper that also records it, so the OpenAPI test can prove the document and the
//! router agree.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::Method;
use axum::Router;
use gpux_sequencer::{Feed, Submitter};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, watch};

use crate::auth::Authenticator;
use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::marketdata::{self, MarketData, MarketDataHandle};
use crate::ratelimit::RateLimiters;
use crate::replica::{self, FeedFactory, GatewayStats, HealthReport, ReplicaState};
use crate::rest::{self, AppState};
use crate::routes::{listed, Routes};

/// How often idle rate-limit buckets are dropped.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// Pause after an `accept` error that is not about one connection (e.g. out of
/// file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Why a gateway could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration breaks a rule ([`GatewayConfig::validate`]).
    #[error("invalid gateway config: {0}")]
    InvalidConfig(#[from] crate::config::ConfigError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket has no local address.
    #[error(transparent)]
    LocalAddr(std::io::Error),
    /// The core thread cannot be started.
    #[error("cannot start the gateway's core thread")]
    SpawnCore(#[source] std::io::Error),
    /// The HTTP server ended with an error.
    #[error("the HTTP server failed: {0}")]
    Server(std::io::Error),
    /// The HTTP server's task failed (panicked or was cancelled).
    #[error("the HTTP server task failed: {0}")]
    ServerTask(tokio::task::JoinError),
    /// Waiting for the core thread failed.
    #[error("cannot join the core thread: {0}")]
    JoinCore(tokio::task::JoinError),
    /// The core thread panicked.
    #[error("the gateway's core thread panicked")]
    CorePanicked,
}

/// The exchange as the gateway sees it: where commands go, and the committed
/// commands coming back (from cmd_seq 1).
pub struct Backend {
    /// Appends commands to the log.
    pub submitter: Arc<dyn Submitter>,
    /// Every committed command, in order, from cmd_seq 1.
    pub feed: Box<dyn Feed>,
    /// Makes a fresh feed from a given cmd_seq (over the ledger, or the events
    /// topic): how a replica that diverged from the ledger rebuilds itself
    /// without a restart (from 1), and how a gateway restored from its
    /// checkpoint follows on ([`GatewayConfig::checkpoint_dir`]). `None`: a
    /// diverged gateway refuses requests until restarted, and no checkpoint is
    /// read.
    pub refollow: Option<FeedFactory>,
}

impl Backend {
    /// The in-process exchange's submitter and feeds over its ledger (from
    /// cmd_seq 1, also for rebuilding); `None` if the exchange has no submitter.
    pub fn embedded(exchange: &gpux_sequencer::Exchange) -> Option<Backend> {
        Some(Backend {
            submitter: exchange.submitter()?,
            feed: Box::new(exchange.follow(1)),
            refollow: Some(ledger_feeds(exchange)),
        })
    }
}

/// Fresh feeds over `exchange`'s ledger from a given cmd_seq (for
/// [`Backend::refollow`]).
pub fn ledger_feeds(exchange: &gpux_sequencer::Exchange) -> FeedFactory {
    let (reader, publisher) = (exchange.reader(), exchange.publisher());
    Box::new(move |from| {
        Ok(Box::new(gpux_sequencer::LedgerFollower::new(
            reader.clone(),
            Arc::clone(&publisher),
            from,
        )) as Box<dyn Feed>)
    })
}

fn api_routes() -> Routes<AppState> {
    delivery_routes(order_routes(system_and_account_routes(Routes::new())))
}

fn system_and_account_routes(routes: Routes<AppState>) -> Routes<AppState> {
    use rest::{accounts, markets, stats, system};
    routes
        .add(Method::GET, "/v1/health", system::health)
        .add(Method::GET, "/v1/stats", stats::stats)
        .add(Method::GET, "/v1/openapi.json", system::openapi)
        .add(Method::GET, "/v1/time", system::time)
        .add(Method::GET, "/v1/limits", system::limits)
        .add(Method::GET, "/v1/markets", markets::list)
        .add(Method::POST, "/v1/markets", markets::create)
        .add(Method::GET, "/v1/markets/{market}", markets::get)
        .add(Method::POST, "/v1/accounts", accounts::create_account)
        .add(Method::POST, "/v1/signup", accounts::signup)
        .add(
            Method::GET,
            "/v1/accounts/{account}/balances",
            accounts::account_balances,
        )
        .add(
            Method::POST,
            "/v1/accounts/{account}/deposits",
            accounts::admin_deposit,
        )
        .add(
            Method::POST,
            "/v1/accounts/{account}/withdrawals",
            accounts::admin_withdraw,
        )
        .add(
            Method::GET,
            "/v1/accounts/{account}/schedule",
            accounts::schedule,
        )
        .add(
            Method::GET,
            "/v1/markets/{market}/slots/{slot}/blocks",
            markets::blocks,
        )
        .add(Method::GET, "/v1/balances", accounts::my_balances)
        .add(Method::POST, "/v1/withdrawals", accounts::withdraw)
        .add(Method::POST, "/v1/capacity/add", accounts::add_capacity)
        .add(
            Method::POST,
            "/v1/capacity/remove",
            accounts::remove_capacity,
        )
}

fn delivery_routes(routes: Routes<AppState>) -> Routes<AppState> {
    use rest::{deliveries, keys};
    routes
        .add(Method::POST, "/v1/keys", keys::create)
        .add(Method::GET, "/v1/keys", keys::list)
        .add(Method::DELETE, "/v1/keys/{key_id}", keys::revoke)
        .add(
            Method::POST,
            "/v1/deliveries/{entry}/report",
            deliveries::report,
        )
        .add(
            Method::POST,
            "/v1/deliveries/{entry}/dispute",
            deliveries::dispute,
        )
        .add(
            Method::POST,
            "/v1/deliveries/{entry}/resolve",
            deliveries::resolve,
        )
        .add(Method::GET, "/v1/providers", deliveries::list)
        .add(Method::GET, "/v1/providers/{account}", deliveries::get)
}

fn order_routes(routes: Routes<AppState>) -> Routes<AppState> {
    use rest::orders;
    routes
        .add(Method::POST, "/v1/orders", orders::place)
        .add(Method::GET, "/v1/orders", orders::open_orders)
        .add(Method::DELETE, "/v1/orders", orders::mass_cancel)
        .add(Method::POST, "/v1/cancel-after", orders::cancel_after)
        .add(Method::GET, "/v1/orders/{order_id}", orders::get_order)
        .add(
            Method::DELETE,
            "/v1/orders/{order_id}",
            orders::cancel_by_id,
        )
        .add(Method::PATCH, "/v1/orders/{order_id}", orders::amend_by_id)
        .add(
            Method::GET,
            "/v1/orders/by-client-id/{client_order_id}",
            orders::get_order_by_client_id,
        )
        .add(
            Method::DELETE,
            "/v1/orders/by-client-id/{client_order_id}",
            orders::cancel_by_client_id,
        )
        .add(
            Method::PATCH,
            "/v1/orders/by-client-id/{client_order_id}",
            orders::amend_by_client_id,
        )
        .add(Method::GET, "/v1/fills", orders::fills)
}

/// Every `(method, path)` the gateway serves, in axum's path syntax: the API's
/// routes, then market data's ([`marketdata::served_routes`]). Read off the same
/// route tables [`start`] serves. For the OpenAPI test and for docs.
pub fn served_routes() -> Vec<(String, String)> {
    let mut all = listed(api_routes().served);
    all.extend(marketdata::served_routes());
    all
}

/// What every public market-data REST request passes first, like the API's
/// [`Anonymous`](rest::extract::Anonymous) callers: the replica must serve (market
/// data is rebuilt with it), and the request is rate limited — by its key if it
/// presents a valid one, else per client address.
fn market_data_gate(state: AppState) -> marketdata::RestGate {
    use crate::auth::{bearer, Bearer};
    use rest::extract::{client_ip, not_ready, repeated_authorization};
    Arc::new(move |parts| {
        let s = &state;
        s.shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        not_ready(&s.shared)?;
        let limited = |e: ApiError| {
            s.shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            e
        };
        let principal = match bearer(&parts.headers) {
            Bearer::Key(k) => s.shared.keys.principal(k),
            Bearer::Repeated => {
                s.limits
                    .check_ip(client_ip(parts), &parts.extensions)
                    .map_err(limited)?;
                return Err(repeated_authorization());
            }
            Bearer::Absent | Bearer::Malformed => None,
        };
        match principal {
            Some(p) => s.limits.check_key(p, &parts.extensions).map_err(limited),
            None => s
                .limits
                .check_ip(client_ip(parts), &parts.extensions)
                .map_err(limited),
        }
    })
}

fn app(state: AppState, market_data: MarketDataHandle) -> Router {
    let body_limit = state.shared.cfg.body_limit_bytes;
    let auth: Arc<dyn Authenticator> = Arc::clone(&state.shared.keys) as Arc<dyn Authenticator>;
    let extra = state.shared.cfg.extra_routes.clone().unwrap_or_default();
    let observe = state.shared.cfg.on_request.clone();
    let gate = market_data_gate(state.clone());
    let app = api_routes()
        .router
        .with_state(state)
        .merge(marketdata::routes_gated(market_data, auth, Some(gate)))
        .merge(crate::pages::routes())
        .merge(extra)
        .fallback(rest::system::not_found)
        .method_not_allowed_fallback(rest::system::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(crate::ratelimit::headers));
    match observe {
        Some(observe) => app.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let observe = Arc::clone(&observe);
                async move {
                    let method = req.method().clone();
                    let route = req
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map(|p| p.as_str().to_owned());
                    let response = next.run(req).await;
                    observe(
                        method.as_str(),
                        route.as_deref().unwrap_or("unmatched"),
                        response.status().as_u16(),
                    );
                    response
                }
            },
        )),
        None => app,
    }
}

/// Serves `app` on `listener` until `stop`, then finishes open connections
/// gracefully (they close after their current request).
///
/// axum's own `serve` gives no hold on hyper's connection settings, so this is
/// its loop with two changes: a client must send a request's headers within
/// `header_read_timeout` (hyper's timer; else the connection is closed, so a
/// client trickling header bytes cannot hold it for ever), and every request
/// carries the peer address as `ConnectInfo<SocketAddr>` for per-address limits.
/// (Slow bodies are cut by `ApiJson`, which knows `body_read_timeout`.)
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_read_timeout: Duration,
    stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    // Each connection holds a `closed_rx`; `closed_tx.closed()` resolves when all
    // are gone. Dropping `signal_tx` asks every connection to finish.
    let (signal_tx, signal_rx) = watch::channel(());
    let (closed_tx, closed_rx) = watch::channel(());
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // E.g. out of file descriptors: wait instead of spinning.
                        tracing::error!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        // Small responses and WebSocket frames go out at once instead of waiting
        // for a delayed ACK (Nagle): up to 40 ms otherwise.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            let mut app = app.clone();
            async move { tower_service::Service::call(&mut app, req).await }
        });
        let mut signal = signal_rx.clone();
        let closed = closed_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::trace!(error = %e, "connection ended with an error");
                    }
                }
                _ = signal.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(closed);
        });
    }
    drop(listener);
    drop(signal_tx);
    drop(closed_rx);
    closed_tx.closed().await;
    Ok(())
}

/// Errors of one connection that `accept` reports; the listener is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// A running gateway. Call [`RunningGateway::shutdown`] to stop it gracefully;
/// dropping it stops the core thread but not open connections.
pub struct RunningGateway {
    /// The address it listens on.
    pub addr: SocketAddr,
    market_data: MarketDataHandle,
    shared: Arc<ReplicaState>,
    stop_core: Arc<AtomicBool>,
    core: Option<std::thread::JoinHandle<()>>,
    stop_server: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    janitor: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Binds `cfg.listen`, starts the core thread on `backend.feed` and serves the API
/// (and market data) until [`RunningGateway::shutdown`]. Must be called inside a
/// Tokio runtime. Requests get 503 `starting` until the replica has caught up
/// with the log ([`RunningGateway::wait_ready`]).
pub async fn start(cfg: GatewayConfig, backend: Backend) -> Result<RunningGateway, GatewayError> {
    cfg.validate().map_err(GatewayError::InvalidConfig)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| GatewayError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(GatewayError::LocalAddr)?;
    let limits = Arc::new(RateLimiters::new(&cfg.rate_limit));
    let (market_data, md_handle) = MarketData::new(cfg.market_data.clone());
    let shared = Arc::new(ReplicaState::new(cfg));
    let stop_core = Arc::new(AtomicBool::new(false));
    let core = replica::spawn(
        Arc::clone(&shared),
        backend.feed,
        backend.refollow,
        market_data,
        Arc::clone(&stop_core),
    )
    .map_err(GatewayError::SpawnCore)?;
    let state = AppState {
        shared: Arc::clone(&shared),
        submitter: backend.submitter,
        limits: Arc::clone(&limits),
        market_data: md_handle.clone(),
        cancel_after: Arc::default(),
    };
    let replica = Arc::clone(&shared);
    md_handle.set_open_orders(marketdata::OpenOrders(Arc::new(move |account| {
        let r = replica.read();
        let orders = rest::orders::open_order_views(&r, account);
        Some((r.engine.last_seq(), serde_json::to_value(orders).ok()?))
    })));
    let app = app(state, md_handle.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let header_read_timeout = shared.cfg.header_read_timeout;
    let server = tokio::spawn(serve(listener, app, header_read_timeout, stop_rx));
    let janitor = tokio::spawn(async move {
        let mut tick = tokio::time::interval(FORGET_IDLE_EVERY);
        loop {
            tick.tick().await;
            limits.forget_idle();
        }
    });
    tracing::info!(%addr, "gateway listening");
    Ok(RunningGateway {
        addr,
        market_data: md_handle,
        shared,
        stop_core,
        core: Some(core),
        stop_server: Some(stop_tx),
        server: Some(server),
        janitor: Some(janitor),
    })
}

/// A read-only view of a running gateway for monitoring: counters, health, the
/// market-data counters and short reads of the replica.
#[derive(Clone)]
pub struct GatewayProbe {
    shared: Arc<ReplicaState>,
    market_data: MarketDataHandle,
}

impl std::fmt::Debug for GatewayProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayProbe")
    }
}

impl GatewayProbe {
    /// Live counters.
    pub fn stats(&self) -> &GatewayStats {
        &self.shared.stats
    }

    /// Health now.
    pub fn health(&self) -> HealthReport {
        self.shared.health_report()
    }

    /// Market-data counters (WebSocket connections, resyncs, …).
    pub fn market_data(&self) -> marketdata::MarketDataStats {
        self.market_data.stats()
    }

    /// Resting orders and price levels per market, in listing order, kept per
    /// event by the core thread: O(markets), without the replica's lock (for
    /// metrics scrapes, which must never stall the core thread).
    pub fn book_counts(&self) -> Arc<Vec<crate::bookcount::BookCount>> {
        self.shared.book_counts()
    }

    /// Runs `f` on the read replica (under its read lock: keep it short; the
    /// core thread waits for it).
    pub fn with_replica<R>(&self, f: impl FnOnce(&gpux_engine::Engine) -> R) -> R {
        f(&self.shared.read().engine)
    }
}

impl RunningGateway {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<GatewayStats> {
        Arc::clone(&self.shared.stats)
    }

    /// Health now (what `GET /v1/health` answers).
    pub fn health(&self) -> HealthReport {
        self.shared.health_report()
    }

    /// A cloneable read-only view for monitoring (metrics endpoints).
    pub fn probe(&self) -> GatewayProbe {
        GatewayProbe {
            shared: Arc::clone(&self.shared),
            market_data: self.market_data.clone(),
        }
    }

    /// The key store, as market data and other companions use it.
    pub fn authenticator(&self) -> Arc<dyn Authenticator> {
        Arc::clone(&self.shared.keys) as Arc<dyn Authenticator>
    }

    /// Waits until the replica has caught up with the log (`false` if the core
    /// stopped first).
    pub async fn wait_ready(&self) -> bool {
        self.shared.health.wait_ready().await
    }

    /// Graceful shutdown: stop accepting connections, let open requests finish (at
    /// most `shutdown_grace`), then stop the core thread.
    pub async fn shutdown(mut self) -> Result<(), GatewayError> {
        if let Some(tx) = self.stop_server.take() {
            let _ = tx.send(());
        }
        let mut result = Ok(());
        if let Some(mut server) = self.server.take() {
            let grace = self.shared.cfg.shutdown_grace;
            match tokio::time::timeout(grace, &mut server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(GatewayError::Server(e)),
                Ok(Err(e)) => result = Err(GatewayError::ServerTask(e)),
                Err(_) => {
                    tracing::warn!("open connections outlived the shutdown grace; closing them");
                    server.abort();
                }
            }
        }
        if let Some(j) = self.janitor.take() {
            j.abort();
        }
        self.stop_core.store(true, Ordering::Release);
        if let Some(core) = self.core.take() {
            tokio::task::spawn_blocking(move || core.join())
                .await
                .map_err(GatewayError::JoinCore)?
                .map_err(|_| GatewayError::CorePanicked)?;
        }
        tracing::info!(addr = %self.addr, "gateway stopped");
        result
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop_core.store(true, Ordering::Release);
        if let Some(tx) = self.stop_server.take() {
            let _ = tx.send(());
        }
        if let Some(j) = self.janitor.take() {
            j.abort();
        }
    }
}
