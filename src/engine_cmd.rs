//! `gpux engine`: the exchange core in Kafka mode, as its own process.
//!
//! Reads commands from the commands topic, applies them, commits them to the
//! ledger in `--data`, and publishes every committed command to the events topic
//! (unless `--no-events`, for a hot standby). Runs until SIGINT or SIGTERM, then
//! shuts down cleanly (snapshot, ledger closed); killed instead, it loses nothing:
//! the next start resumes after the last committed offset.
//!
//! Standard output carries machine-readable lines only: `{"ready":true,"cmd_seq":N}`
//! once the ledger is recovered and the source is consuming, and
//! `{"stopped":true,"cmd_seq":N}` after a clean shutdown. Logs go to standard
//! error (`RUST_LOG` filters them; default `info`).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};
use gpux_sequencer::kafka::{self, KafkaConfig};
use gpux_sequencer::{PipelineError, PipelineOptions, SNAPSHOT_EVERY_EVENTS_DEFAULT};

/// Arguments of `gpux engine`.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Ledger directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Kafka bootstrap servers (`host:port[,host:port…]`).
    #[arg(long, value_name = "BROKERS")]
    pub kafka: String,
    /// The topic commands are read from.
    #[arg(long, value_name = "TOPIC", default_value = kafka::COMMANDS_TOPIC_DEFAULT)]
    pub commands_topic: String,
    /// The topic committed commands and their events are published to.
    #[arg(long, value_name = "TOPIC", default_value = kafka::EVENTS_TOPIC_DEFAULT)]
    pub events_topic: String,
    /// The partition of both topics this engine owns.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub partition: i32,
    /// A librdkafka setting for every client, `key=value` (repeatable).
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
    /// Do not publish to the events topic (a hot standby: only the active engine
    /// publishes).
    #[arg(long)]
    pub no_events: bool,
    /// Create the two topics first (one partition more than --partition,
    /// replication 1) if they do not exist.
    #[arg(long)]
    pub create_topics: bool,
    /// Snapshot the engine every this many events.
    #[arg(long, value_name = "N", default_value_t = SNAPSHOT_EVERY_EVENTS_DEFAULT)]
    pub snapshot_every: u64,
    /// Most commands committed in one ledger batch (smaller: more, smaller fsyncs).
    #[arg(long, value_name = "N", default_value_t = gpux_sequencer::BATCH_COMMANDS_MAX_DEFAULT)]
    pub max_batch: usize,
}

/// How often the engine logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl EngineArgs {
    /// The Kafka configuration these arguments describe.
    pub fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig {
            brokers: self.kafka.clone(),
            commands_topic: self.commands_topic.clone(),
            events_topic: self.events_topic.clone(),
            partition: self.partition,
            client_settings: self.kafka_options.clone(),
        }
    }
}

/// Logs text lines to standard error, filtered by `RUST_LOG` (default `info`),
/// through the process-wide subscriber of [`crate::logging`] (coloured only on a
/// terminal, like `gpux serve`'s); does nothing if a subscriber is already
/// installed. A `RUST_LOG` that does not parse falls back to `info`.
pub fn init_logging() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    if crate::logging::init(crate::config::LogFormat::Text, &filter).is_err() {
        let _ = crate::logging::init(crate::config::LogFormat::Text, "info");
    }
}

/// Runs `gpux engine` until SIGINT/SIGTERM (clean shutdown, `Ok`) or until the
/// pipeline fails (`Err` with the reason: the process should exit non-zero and be
/// restarted).
pub fn run(args: EngineArgs) -> Result<()> {
    init_logging();
    let cfg = args.kafka_config();
    if args.create_topics {
        kafka::create_topics(&cfg, Duration::from_secs(30))?;
    }
    let opts = PipelineOptions {
        snapshot_every_events: args.snapshot_every.max(1),
        max_batch_commands: args.max_batch.max(1),
        ..PipelineOptions::default()
    };
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    let mut exchange = kafka::start_engine(&args.data, opts, &cfg)?;
    let events = if args.no_events {
        None
    } else {
        Some(kafka::EventsPublisher::spawn(&mut exchange, &cfg)?)
    };
    let stats = exchange.stats();
    print_line(&serde_json::json!({
        "ready": true,
        "cmd_seq": stats.durable_seq.load(Ordering::Acquire),
    }))?;

    let (failed_tx, mut failed) = tokio::sync::oneshot::channel::<PipelineError>();
    exchange.on_failure(move |e| {
        let _ = failed_tx.send(e.clone());
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal runtime")?;
    let failure = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        progress.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    r.context("cannot listen for SIGINT")?;
                    tracing::info!("SIGINT: shutting down");
                    return Ok::<_, anyhow::Error>(false);
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    return Ok(false);
                }
                Ok(_) = &mut failed => return Ok(true),
                _ = progress.tick() => {
                    tracing::info!(
                        durable_cmd_seq = stats.durable_seq.load(Ordering::Acquire),
                        applied_since_start = stats.applied.load(Ordering::Relaxed),
                        events_topic_acknowledged_cmd_seq = events
                            .as_ref()
                            .map(|e| e.acknowledged_seq.load(Ordering::Relaxed)),
                        "progress"
                    );
                }
            }
        }
    })?;
    // After a failure, `shutdown` returns it (naming the cmd_seq) without writing.
    let engine = exchange.shutdown().map_err(|e| {
        let context = if failure {
            "the pipeline failed"
        } else {
            "clean shutdown failed"
        };
        anyhow::Error::new(e).context(context)
    })?;
    print_line(&serde_json::json!({"stopped": true, "cmd_seq": engine.last_seq()}))?;
    Ok(())
}

fn print_line(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    out.flush()?;
    Ok(())
}
