//! `gpux serve`: the whole exchange in one process — the command log (embedded in
//! the ledger by default, or a Kafka topic with `--kafka`), sequencer, engine and
//! ledger (`gpux_sequencer::Exchange`), and the HTTP/WebSocket gateway
//! (`gpux_gateway`) following the ledger from cmd_seq 1; optionally the demo
//! traders (`--demo`).
//!
//! Prints one JSON line once it serves requests — listening, and the gateway's
//! replica caught up with the ledger — (`{"listen":…,"pid":…,"data":…,"admin_key_file":…,
//! "mode":…,"demo":…,"urls":{…}}`), serves until Ctrl-C or SIGTERM, then stops the
//! demo, shuts the gateway down gracefully (open requests finish) and the exchange
//! cleanly (the current batch committed, a snapshot at the head, the ledger closed).
//! If the exchange fails instead (a ledger write fails, the command source gives
//! up), it stops serving the same way and returns the exchange's error, which names
//! the `cmd_seq` it failed at: `gpux serve` exits non-zero with it.
//! Without an admin key, one is generated into `DIR/admin.key` (mode 0600) and
//! reused on the next start. `GET /metrics` serves Prometheus metrics on the same
//! listener.
//!
//! `gpux gateway` ([`run_gateway`]) is the same server without the exchange, for
//! Kafka mode split across processes: it produces commands to the commands topic
//! and its replica follows the events topic that `gpux engine` publishes, so any
//! number of gateways can run next to one engine. Its data directory holds only
//! the generated admin key.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use gpux_gateway::{Backend, FeedFactory, GatewayConfig, GatewayProbe, RateLimit, RateLimitConfig};
use gpux_sequencer::kafka::{EventsTopicFeed, KafkaSubmitter};
use gpux_sequencer::{Exchange, Feed, FeedError, PipelineError, Submitter};

use crate::config::{GatewayLimits, ServeConfig};
use crate::metrics::{BookDepth, Metrics};

/// File name of the generated admin key inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// The admin key from `DIR/admin.key`, creating the file (mode 0600) with a fresh
/// random key if it does not exist.
fn admin_key_file(dir: &Path) -> Result<(String, PathBuf)> {
    let path = dir.join(ADMIN_KEY_FILE);
    if path.exists() {
        let key = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .trim()
            .to_string();
        if key.len() < GatewayConfig::ADMIN_KEY_MIN_BYTES {
            return Err(anyhow!("{} holds no usable admin key", path.display()));
        }
        return Ok((key, path));
    }
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    let key: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("gpux_admin_{key}");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{key}")?;
    f.sync_all()?;
    Ok((key, path))
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `gpux serve` until Ctrl-C or SIGTERM, printing the ready line on stdout.
pub fn run(cfg: ServeConfig) -> Result<()> {
    run_until(cfg, &mut std::io::stdout(), stop_signal())
}

/// Runs `gpux gateway` until Ctrl-C or SIGTERM, printing the ready line on stdout.
pub fn run_gateway(cfg: ServeConfig) -> Result<()> {
    run_gateway_until(cfg, &mut std::io::stdout(), stop_signal())
}

/// How long a gateway-only server's events-topic feed waits for each broker
/// request while it looks for where to start.
const FEED_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a gateway-only server waits at shutdown for the broker to acknowledge
/// commands it produced.
const SUBMITTER_FLUSH: Duration = Duration::from_secs(5);

/// What runs behind the gateway.
enum Behind {
    /// The exchange in this process (`gpux serve`).
    Exchange(Box<Exchange>),
    /// Another process's engine, through the broker (`gpux gateway`).
    Broker(Arc<KafkaSubmitter>),
}

/// The gateway's configuration from serve's settings.
pub fn gateway_config(listen: SocketAddr, admin_key: String, g: &GatewayLimits) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(listen, admin_key);
    let limit = |per_sec: u32, burst: u32| {
        (per_sec > 0).then(|| RateLimit {
            burst: burst.max(1),
            replenish_interval: Duration::from_nanos(1_000_000_000 / u64::from(per_sec)),
        })
    };
    cfg.rate_limit = RateLimitConfig {
        per_key: limit(g.rate_limit_per_key_per_sec, g.rate_limit_per_key_burst),
        per_ip_anonymous: limit(g.rate_limit_per_ip_per_sec, g.rate_limit_per_ip_burst),
    };
    cfg.request_timeout = g.request_timeout();
    cfg.body_limit_bytes = g.body_limit_bytes;
    cfg.header_read_timeout = g.header_read_timeout();
    cfg.body_read_timeout = g.body_read_timeout();
    cfg.max_in_flight = g.max_in_flight;
    cfg.shutdown_grace = g.shutdown_grace();
    let md = &mut cfg.market_data;
    md.max_connections = g.ws_max_connections;
    md.max_connections_per_account = g.ws_max_connections_per_account;
    md.max_connections_per_peer = g.ws_max_connections_per_peer;
    md.max_subscriptions = g.ws_max_subscriptions;
    md.queue_messages = g.ws_queue_messages;
    md.queue_bytes = g.ws_queue_bytes;
    md.max_frame_bytes = g.ws_max_frame_bytes;
    md.heartbeat_interval = g.ws_heartbeat_interval();
    md.idle_timeout = g.ws_idle_timeout();
    cfg
}

/// Book sizes per market, as the gateway's core thread keeps them per event: a
/// scrape copies O(markets) numbers and never takes the replica's lock, so it
/// cannot stall the thread that applies committed commands.
fn book_depths(probe: &GatewayProbe) -> Vec<BookDepth> {
    probe
        .book_counts()
        .iter()
        .map(|b| BookDepth {
            market: b.market.to_string(),
            bid_orders: b.bid_orders,
            bid_levels: b.bid_levels,
            ask_orders: b.ask_orders,
            ask_levels: b.ask_levels,
        })
        .collect()
}

/// `GET /metrics`: the pipeline's counters (read live) plus the gateway's.
fn metrics_routes(metrics: Metrics, probe: Arc<OnceLock<GatewayProbe>>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            let probe = Arc::clone(&probe);
            async move {
                if let Some(p) = probe.get() {
                    metrics.set_follower_seq("gateway", p.health().applied_seq);
                    metrics.set_ws_clients(p.market_data().connections);
                    metrics.set_book_depth(&book_depths(p));
                }
                (
                    [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
                    metrics.render(),
                )
                    .into_response()
            }
        }),
    )
}

/// Runs until `stop` completes, writing the one ready line to `out`: what `run`
/// does, with the signal and the output handed in (for tests).
pub fn run_until(
    cfg: ServeConfig,
    out: &mut (dyn Write + Send),
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    run_role(cfg, false, out, stop)
}

/// What [`run_gateway`] does, with the signal and the output handed in (for tests).
/// Needs a broker (`kafka.brokers`).
pub fn run_gateway_until(
    cfg: ServeConfig,
    out: &mut (dyn Write + Send),
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    run_role(cfg, true, out, stop)
}

fn run_role(
    cfg: ServeConfig,
    gateway_only: bool,
    out: &mut (dyn Write + Send),
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let kafka = cfg.kafka.kafka_config();
    if gateway_only && kafka.is_none() {
        return Err(anyhow!(
            "gpux gateway needs a broker: --kafka HOST:PORT (or GPUX_KAFKA_BROKERS, or \
             kafka.brokers in the config file); without one, run gpux serve"
        ));
    }
    // A gateway alone keeps nothing but a generated admin key there.
    if !gateway_only || cfg.admin_key.is_none() {
        std::fs::create_dir_all(&cfg.data)
            .with_context(|| format!("cannot create {}", cfg.data.display()))?;
    }
    let (admin_key, key_file) = match cfg.admin_key.clone() {
        Some(k) => (k, None),
        None => {
            let (k, p) = admin_key_file(&cfg.data)?;
            (k, Some(p))
        }
    };
    let mut gw = gateway_config(cfg.listen, admin_key, &cfg.gateway);
    gw.validate().map_err(|e| anyhow!("{e}"))?;
    let metrics = if gateway_only {
        Metrics::for_gateway()
    } else {
        Metrics::new()
    };
    let probe: Arc<OnceLock<GatewayProbe>> = Arc::default();
    gw.extra_routes = Some(metrics_routes(metrics.clone(), Arc::clone(&probe)));
    let counted = metrics.clone();
    gw.on_request = Some(Arc::new(move |method, route, status| {
        counted.http_request(method, route, status);
    }));

    let (behind, submitter, feed, refollow): (
        Behind,
        Arc<dyn Submitter>,
        Box<dyn Feed>,
        FeedFactory,
    ) = match &kafka {
        Some(k) if gateway_only => {
            let submitter = Arc::new(KafkaSubmitter::new(k)?);
            let feed = EventsTopicFeed::connecting(k, 1, FEED_START_TIMEOUT)?;
            // A diverged replica re-follows the events topic from cmd_seq 1.
            let topic = k.clone();
            let refollow: FeedFactory = Box::new(move || {
                EventsTopicFeed::connecting(&topic, 1, FEED_START_TIMEOUT)
                    .map(|f| Box::new(f) as Box<dyn Feed>)
                    .map_err(|e| FeedError::Unavailable(format!("{e:#}")))
            });
            (
                Behind::Broker(Arc::clone(&submitter)),
                submitter,
                Box::new(feed),
                refollow,
            )
        }
        _ => {
            let exchange = match &kafka {
                Some(k) => {
                    gpux_sequencer::kafka::start_exchange(&cfg.data, cfg.pipeline_options(), k)?
                }
                None => Exchange::start_embedded(&cfg.data, cfg.pipeline_options())?,
            };
            metrics.watch_pipeline(exchange.stats());
            let submitter = exchange
                .submitter()
                .ok_or_else(|| anyhow!("the exchange has no command submitter"))?;
            let feed = Box::new(exchange.follow(1));
            let refollow = gpux_gateway::ledger_feeds(&exchange);
            (
                Behind::Exchange(Box::new(exchange)),
                submitter,
                feed,
                refollow,
            )
        }
    };
    let mode = match (&behind, &kafka) {
        (Behind::Broker(_), _) => "gateway",
        (Behind::Exchange(_), Some(_)) => "kafka",
        (Behind::Exchange(_), None) => "embedded",
    };
    // The exchange's first failure (never, for a gateway alone): serving stops.
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<PipelineError>();
    if let Behind::Exchange(exchange) = &behind {
        exchange.on_failure(move |e| {
            let _ = failed_tx.send(e.clone());
        });
    }
    let failed = async move {
        match failed_rx.await {
            Ok(e) => e,
            Err(_) => std::future::pending().await,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gpux-gateway")
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async {
        let backend = Backend {
            submitter: Arc::clone(&submitter),
            feed,
            refollow: Some(refollow),
        };
        let gateway = gpux_gateway::start(gw, backend).await?;
        let _ = probe.set(gateway.probe());
        // The ready line promises a server that answers requests, so it waits until
        // the gateway's replica has caught up with the ledger (until then every
        // request, /v1/health too, answers 503 `starting`) — or for the stop signal.
        let mut stop = std::pin::pin!(stop);
        let mut failed = std::pin::pin!(failed);
        let caught_up = tokio::select! {
            biased;
            () = &mut stop => None,
            e = &mut failed => {
                tracing::error!(cmd_seq = e.cmd_seq(), error = %e, "the exchange failed: not serving");
                None
            }
            ready = gateway.wait_ready() => Some(ready),
        };
        match caught_up {
            Some(true) => {}
            Some(false) => {
                let _ = gateway.shutdown().await;
                return Err(anyhow!(
                    "the gateway stopped before it caught up with the ledger"
                ));
            }
            None => {
                tracing::info!("stopping before the gateway was ready");
                return gateway.shutdown().await;
            }
        }
        let demo = if cfg.demo.enabled {
            Some(crate::demo::start(
                Arc::clone(&submitter),
                cfg.demo.options(),
            ))
        } else {
            None
        };
        let base = format!("http://{}", gateway.addr);
        let line = serde_json::json!({
            "listen": gateway.addr.to_string(),
            "pid": std::process::id(),
            "data": cfg.data.display().to_string(),
            "admin_key_file": key_file.as_ref().map(|p| p.display().to_string()),
            "mode": mode,
            "demo": demo.is_some(),
            "urls": {
                "markets": format!("{base}/v1/markets"),
                "health": format!("{base}/v1/health"),
                "metrics": format!("{base}/metrics"),
                "openapi": format!("{base}/v1/openapi.json"),
                "websocket": format!("ws://{}/v1/ws", gateway.addr),
            },
        });
        writeln!(out, "{line}")?;
        out.flush()?;
        tracing::info!(listen = %gateway.addr, demo = demo.is_some(), "serving");
        tokio::select! {
            biased;
            () = &mut stop => tracing::info!("stopping"),
            e = &mut failed => tracing::error!(
                cmd_seq = e.cmd_seq(),
                error = %e,
                "the exchange failed: stopping the gateway"
            ),
        }
        if let Some(d) = demo {
            let report = tokio::task::spawn_blocking(move || d.stop()).await;
            tracing::info!(?report, "demo stopped");
        }
        gateway.shutdown().await
    });
    drop(runtime);
    let stopped = match behind {
        // After a failure this is the exchange's error (naming the cmd_seq).
        Behind::Exchange(exchange) => exchange
            .shutdown()
            .map(|_| ())
            .map_err(|e| anyhow::Error::new(e).context("the exchange failed")),
        Behind::Broker(submitter) => submitter
            .flush(SUBMITTER_FLUSH)
            .map_err(anyhow::Error::from),
    };
    // The exchange's failure is the cause of whatever the gateway ran into.
    stopped.and(served)
}
