//! The roles that serve HTTP: `gpux serve` (the whole exchange in one process)
//! and `gpux gateway` (the gateway alone, in front of a `gpux engine` on Kafka).
//!
//! `gpux serve` runs the command log (embedded in the ledger by default, or a
//! Kafka topic with `--kafka`), sequencer, engine and ledger
//! (`gpux_sequencer::Exchange`), and the HTTP/WebSocket gateway (`gpux_gateway`)
//! following the ledger; optionally the demo traders (`--demo`).
//! `gpux gateway` is the same server without the exchange: it produces commands
//! to the commands topic and its replica follows the events topic that `gpux
//! engine` publishes, so any number of gateways can run next to one engine. Its
//! data directory holds only the generated admin key and the gateway's
//! checkpoint (`DIR/gateway/`, which both roles keep: a restart follows the log
//! from it instead of from cmd_seq 1).
//!
//! Both print one JSON line once they serve requests — listening, and the
//! gateway's replica caught up with the log — (`{"listen":…,"pid":…,"data":…,
//! "admin_key_file":…,"mode":…,"demo":…,"urls":{…}}`), serve until Ctrl-C or
//! SIGTERM, then stop the demo, shut the gateway down gracefully (open requests
//! finish) and the exchange cleanly (the current batch committed, a snapshot at
//! the head, the ledger closed). If the exchange fails instead (a ledger write
//! fails, the command source gives up), they stop serving the same way and return
//! the exchange's error, which names the `cmd_seq` it failed at: the process exits
//! non-zero with it. Without an admin key, one is generated into `DIR/admin.key`
//! (mode 0600) and reused on the next start. `GET /metrics` serves Prometheus
//! metrics on the same listener.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use gpux_gateway::{Backend, FeedFactory, GatewayConfig, GatewayProbe, RunningGateway};
use gpux_sequencer::kafka::{EventsTopicFeed, KafkaConfig, KafkaSubmitter};
use gpux_sequencer::{Exchange, ExchangeClock, Feed, FeedError, PipelineError, Submitter};

use crate::config::Config;
use crate::metrics::{BookDepth, Metrics};

/// The gateway's checkpoint directory inside the data directory.
const GATEWAY_CHECKPOINT_DIR: &str = "gateway";

/// File name of the generated admin key inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// How long a gateway-only server's events-topic feed waits for each broker
/// request while it looks for where to start.
const FEED_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a gateway-only server waits at shutdown for the broker to acknowledge
/// commands it produced.
const SUBMITTER_FLUSH: Duration = Duration::from_secs(5);

/// Which of the two HTTP roles runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `gpux serve`: the exchange in this process.
    Serve,
    /// `gpux gateway`: the gateway alone, behind a broker.
    Gateway,
}

/// What runs behind the gateway.
enum Behind {
    /// The exchange in this process (`gpux serve`).
    Exchange(Box<Exchange>),
    /// Another process's engine, through the broker (`gpux gateway`).
    Broker(Arc<KafkaSubmitter>),
}

impl Behind {
    /// The `mode` of the ready line.
    fn mode(&self, kafka: bool) -> &'static str {
        match (self, kafka) {
            (Behind::Broker(_), _) => "gateway",
            (Behind::Exchange(_), true) => "kafka",
            (Behind::Exchange(_), false) => "embedded",
        }
    }

    /// Stops what runs behind the gateway: the exchange cleanly (after a failure,
    /// its error, naming the cmd_seq), or the broker's producer flushed.
    fn stop(self) -> Result<()> {
        match self {
            Behind::Exchange(exchange) => exchange
                .shutdown()
                .map(|_| ())
                .map_err(|e| anyhow::Error::new(e).context("the exchange failed")),
            Behind::Broker(submitter) => submitter
                .flush(SUBMITTER_FLUSH)
                .map_err(anyhow::Error::from),
        }
    }
}

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

/// The admin key, and the file it came from when it was not configured (created
/// with the data directory if missing; a gateway alone keeps nothing else there).
fn admin_key(cfg: &Config, role: Role) -> Result<(String, Option<PathBuf>)> {
    if role == Role::Serve || cfg.admin_key.is_none() {
        std::fs::create_dir_all(&cfg.data)
            .with_context(|| format!("cannot create {}", cfg.data.display()))?;
    }
    match cfg.admin_key.clone() {
        Some(k) => Ok((k, None)),
        None => {
            let (k, p) = admin_key_file(&cfg.data)?;
            Ok((k, Some(p)))
        }
    }
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

/// The gateway's configuration: the `[gateway]` settings, the admin key, and the
/// process's metrics on the same listener.
fn gateway_config(
    cfg: &Config,
    admin_key: String,
    metrics: &Metrics,
    probe: &Arc<OnceLock<GatewayProbe>>,
) -> Result<GatewayConfig> {
    let mut gw = GatewayConfig::with_settings(cfg.listen, admin_key, &cfg.gateway);
    gw.checkpoint_dir = Some(cfg.data.join(GATEWAY_CHECKPOINT_DIR));
    gw.validate()?;
    gw.extra_routes = Some(metrics_routes(metrics.clone(), Arc::clone(probe)));
    let counted = metrics.clone();
    gw.on_request = Some(Arc::new(move |method, route, status| {
        counted.http_request(method, route, status);
    }));
    Ok(gw)
}

/// The broker side of `gpux gateway`: a producer to the commands topic, and feeds
/// of the events topic (from cmd_seq 1, or from the gateway's checkpoint; a
/// diverged replica re-follows it from 1).
fn behind_broker(k: &KafkaConfig) -> Result<(Behind, Backend)> {
    let submitter = Arc::new(KafkaSubmitter::new(k)?);
    let feed = EventsTopicFeed::connecting(k, 1, FEED_START_TIMEOUT)?;
    let topic = k.clone();
    let refollow: FeedFactory = Box::new(move |from| {
        EventsTopicFeed::connecting(&topic, from, FEED_START_TIMEOUT)
            .map(|f| Box::new(f) as Box<dyn Feed>)
            .map_err(|e| FeedError::Unavailable(format!("{e:#}")))
    });
    let backend = Backend {
        submitter: Arc::clone(&submitter) as Arc<dyn Submitter>,
        feed: Box::new(feed),
        refollow: Some(refollow),
    };
    Ok((Behind::Broker(submitter), backend))
}

/// The exchange side of `gpux serve`: the pipeline over the ledger in `data`, on
/// the embedded command log or the commands topic; the gateway follows the ledger.
fn behind_exchange(
    cfg: &Config,
    metrics: &Metrics,
    time: &ExchangeClock,
) -> Result<(Behind, Backend)> {
    let opts = gpux_sequencer::PipelineOptions {
        time: time.clone(),
        ..cfg.pipeline_options()
    };
    let exchange = match cfg.kafka.kafka_config() {
        Some(k) => gpux_sequencer::kafka::start_exchange(&cfg.data, opts, &k)?,
        None => Exchange::start_embedded(&cfg.data, opts)?,
    };
    // A faster clock goes on from the time already in the ledger.
    time.not_before(exchange.reader().head()?.last_ts_ns);
    metrics.watch_pipeline(exchange.stats());
    let backend = Backend::embedded(&exchange)
        .ok_or_else(|| anyhow!("the exchange has no command submitter"))?;
    Ok((Behind::Exchange(Box::new(exchange)), backend))
}

/// The exchange's first failure (never, for a gateway alone).
fn first_failure(behind: &Behind) -> impl std::future::Future<Output = PipelineError> {
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<PipelineError>();
    if let Behind::Exchange(exchange) = behind {
        exchange.on_failure(move |e| {
            let _ = failed_tx.send(e.clone());
        });
    }
    async move {
        match failed_rx.await {
            Ok(e) => e,
            Err(_) => std::future::pending().await,
        }
    }
}

/// Runs `gpux serve` until `stop` completes, writing the one ready line to `out`
/// (the signal and the output are handed in for tests).
pub fn serve_until(
    cfg: Config,
    out: &mut (dyn Write + Send),
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    run_role(cfg, Role::Serve, out, stop)
}

/// Runs `gpux gateway` until `stop` completes, writing the one ready line to
/// `out`. Needs a broker (`kafka.brokers`).
pub fn gateway_until(
    cfg: Config,
    out: &mut (dyn Write + Send),
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    run_role(cfg, Role::Gateway, out, stop)
}

/// The stages of an HTTP role, in order: admin key → what runs behind the gateway
/// → the gateway → serving until stopped → everything stopped, the exchange last.
fn run_role(
    cfg: Config,
    role: Role,
    out: &mut (dyn Write + Send),
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let kafka = cfg.kafka.kafka_config();
    let (admin_key, key_file) = match (role, &kafka) {
        (Role::Gateway, None) => {
            return Err(anyhow!(
                "gpux gateway needs a broker: --kafka HOST:PORT (or GPUX_KAFKA_BROKERS, or \
                 kafka.brokers in the config file); without one, run gpux serve"
            ))
        }
        _ => admin_key(&cfg, role)?,
    };
    let metrics = match role {
        Role::Serve => Metrics::new(),
        Role::Gateway => Metrics::for_gateway(),
    };
    let probe: Arc<OnceLock<GatewayProbe>> = Arc::default();
    // One clock for everything that stamps commands in this process: the
    // gateway, the exchange's ticks and the demo traders.
    let time = ExchangeClock::scaled(cfg.time_scale);
    let mut gw = gateway_config(&cfg, admin_key, &metrics, &probe)?;
    gw.time = time.clone();
    let (behind, backend) = match &kafka {
        Some(k) if role == Role::Gateway => behind_broker(k)?,
        _ => behind_exchange(&cfg, &metrics, &time)?,
    };
    let serving = Serving {
        mode: behind.mode(kafka.is_some()),
        key_file,
        probe,
        failed: Box::pin(first_failure(&behind)),
        time,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gpux-gateway")
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serving.run(&cfg, gw, backend, out, stop));
    drop(runtime);
    // The exchange's failure is the cause of whatever the gateway ran into.
    behind.stop().and(served)
}

/// The demo traders' view of their delivery entries: the gateway's replica.
fn replica_deliveries(gateway: &RunningGateway) -> crate::demo_delivery::DeliveryLookup {
    let probe = gateway.probe();
    crate::demo_delivery::DeliveryLookup(Arc::new(move |accounts: &[u64]| {
        probe.with_replica(|e| {
            let mut entries = e.entries();
            entries.retain(|x| accounts.contains(&x.provider) || accounts.contains(&x.holder));
            entries
        })
    }))
}

/// What the serving stage needs besides the gateway itself.
struct Serving {
    /// The ready line's `mode`.
    mode: &'static str,
    /// The generated admin key's file, if any.
    key_file: Option<PathBuf>,
    /// Where the running gateway's probe goes, for `GET /metrics`.
    probe: Arc<OnceLock<GatewayProbe>>,
    /// The exchange's first failure.
    failed: Pin<Box<dyn std::future::Future<Output = PipelineError> + Send>>,
    /// The exchange's clock.
    time: ExchangeClock,
}

impl Serving {
    /// Starts the gateway, waits until it has caught up, starts the demo, prints
    /// the ready line, serves until `stop` or a failure, then stops the demo and
    /// the gateway.
    async fn run(
        mut self,
        cfg: &Config,
        gw: GatewayConfig,
        backend: Backend,
        out: &mut (dyn Write + Send),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let submitter = Arc::clone(&backend.submitter);
        let gateway = gpux_gateway::start(gw, backend).await?;
        let _ = self.probe.set(gateway.probe());
        let mut stop = std::pin::pin!(stop);
        match self.caught_up(&gateway, &mut stop).await {
            Some(true) => {}
            Some(false) => {
                let _ = gateway.shutdown().await;
                return Err(anyhow!(
                    "the gateway stopped before it caught up with the ledger"
                ));
            }
            None => {
                tracing::info!("stopping before the gateway was ready");
                return Ok(gateway.shutdown().await?);
            }
        }
        let demo = cfg.demo.enabled.then(|| {
            let opts = crate::demo::DemoOptions {
                time: self.time.clone(),
                deliveries: Some(replica_deliveries(&gateway)),
                ..cfg.demo.options()
            };
            crate::demo::start(submitter, opts)
        });
        self.ready_line(cfg, &gateway, demo.is_some(), out)?;
        tracing::info!(listen = %gateway.addr, demo = demo.is_some(), "serving");
        tokio::select! {
            biased;
            () = &mut stop => tracing::info!("stopping"),
            e = &mut self.failed => tracing::error!(
                cmd_seq = e.cmd_seq(),
                error = %e,
                "the exchange failed: stopping the gateway"
            ),
        }
        if let Some(d) = demo {
            let report = tokio::task::spawn_blocking(move || d.stop()).await;
            tracing::info!(?report, "demo stopped");
        }
        Ok(gateway.shutdown().await?)
    }

    /// Waits until the gateway's replica has caught up with the log (until then
    /// every request, /v1/health too, answers 503 `starting`): the ready line
    /// promises a server that answers requests. `Some(false)`: the gateway
    /// stopped first; `None`: stopped, or the exchange failed, first.
    async fn caught_up(
        &mut self,
        gateway: &RunningGateway,
        stop: &mut Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Option<bool> {
        tokio::select! {
            biased;
            () = stop.as_mut() => None,
            e = &mut self.failed => {
                tracing::error!(cmd_seq = e.cmd_seq(), error = %e, "the exchange failed: not serving");
                None
            }
            ready = gateway.wait_ready() => Some(ready),
        }
    }

    /// Prints the ready line.
    fn ready_line(
        &self,
        cfg: &Config,
        gateway: &RunningGateway,
        demo: bool,
        out: &mut (dyn Write + Send),
    ) -> Result<()> {
        let base = format!("http://{}", gateway.addr);
        let line = serde_json::json!({
            "listen": gateway.addr.to_string(),
            "pid": std::process::id(),
            "data": cfg.data.display().to_string(),
            "admin_key_file": self.key_file.as_ref().map(|p| p.display().to_string()),
            "mode": self.mode,
            "demo": demo,
            "time_scale": self.time.scale(),
            "urls": {
                "explorer": format!("{base}/"),
                "markets": format!("{base}/v1/markets"),
                "health": format!("{base}/v1/health"),
                "metrics": format!("{base}/metrics"),
                "openapi": format!("{base}/v1/openapi.json"),
                "websocket": format!("ws://{}/v1/ws", gateway.addr),
            },
        });
        super::print_line(out, &line)
    }
}
