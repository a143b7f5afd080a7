//! `gpux engine`: the exchange core in Kafka mode, as its own process.
//!
//! Reads commands from the commands topic, applies them, commits them to the
//! ledger in `data`, and publishes every committed command to the events topic
//! (unless `--no-events`, for a hot standby). When it has consumed nothing for
//! `clock_tick_ms`, it produces a `tick` to the commands topic so time passes on an
//! idle exchange (a standby never does). Runs until SIGINT or SIGTERM, then
//! shuts down cleanly (snapshot, ledger closed); killed instead, it loses nothing:
//! the next start resumes after the last committed offset. A pipeline failure
//! ends the run with an error naming the cmd_seq (the process exits non-zero and
//! should be restarted).
//!
//! Standard output carries machine-readable lines only: `{"ready":true,"cmd_seq":N}`
//! once the ledger is recovered and the source is consuming, and
//! `{"stopped":true,"cmd_seq":N}` after a clean shutdown. Logs go to standard
//! error, configured like every role's (`log.*`).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use gpux_sequencer::kafka::{self, EventsPublisher, EventsPublisherStats, KafkaConfig};
use gpux_sequencer::{Exchange, PipelineError, PipelineStats};

use crate::config::{Config, EngineArgs};

/// How often the engine logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How long `--create-topics` waits for the broker.
const CREATE_TOPICS_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the run ended.
enum End {
    /// SIGINT or SIGTERM.
    Signal,
    /// The pipeline failed.
    Failure,
}

/// The stages of `gpux engine`, in order: topics (with `--create-topics`) → the
/// ledger and the pipeline on the commands topic → the events publisher (unless
/// `--no-events`) → ready line → running until a signal or a failure → the
/// exchange stopped.
pub fn run_until_signal(cfg: &Config, args: &EngineArgs, out: &mut dyn Write) -> Result<()> {
    let kafka = cfg.kafka.kafka_config().ok_or_else(|| {
        anyhow!(
            "gpux engine needs a broker: --kafka HOST:PORT (or GPUX_KAFKA_BROKERS, or \
             kafka.brokers in the config file)"
        )
    })?;
    if args.create_topics {
        kafka::create_topics(&kafka, CREATE_TOPICS_TIMEOUT)?;
    }
    let mut exchange = start(cfg, args, &kafka)?;
    let events = if args.no_events {
        None
    } else {
        Some(EventsPublisher::spawn(&mut exchange, &kafka)?)
    };
    let stats = exchange.stats();
    super::print_line(
        out,
        &serde_json::json!({
            "ready": true,
            "cmd_seq": stats.durable_seq.load(Ordering::Acquire),
        }),
    )?;
    let (failed_tx, failed) = tokio::sync::oneshot::channel::<PipelineError>();
    exchange.on_failure(move |e| {
        let _ = failed_tx.send(e.clone());
    });
    let end = wait(&stats, events.as_ref(), failed)?;
    // After a failure, `shutdown` returns it (naming the cmd_seq) without writing.
    let engine = exchange.shutdown().map_err(|e| {
        anyhow::Error::new(e).context(match end {
            End::Failure => "the pipeline failed",
            End::Signal => "clean shutdown failed",
        })
    })?;
    super::print_line(
        out,
        &serde_json::json!({"stopped": true, "cmd_seq": engine.last_seq()}),
    )
}

/// The pipeline over the ledger in `cfg.data`, reading the commands topic.
///
/// Its clock produces ticks to the commands topic after `clock_tick_ms` without a
/// command — unless it is a `--no-events` standby: time in the log is the active
/// engine's, and the standby consumes its ticks like any command, so both ledgers
/// stay byte-identical.
fn start(cfg: &Config, args: &EngineArgs, kafka: &KafkaConfig) -> Result<Exchange> {
    std::fs::create_dir_all(&cfg.data)
        .with_context(|| format!("cannot create {}", cfg.data.display()))?;
    let mut opts = cfg.pipeline_options();
    if args.no_events {
        opts.clock_tick = None;
    }
    let exchange = kafka::start_engine(&cfg.data, opts, kafka)?;
    Ok(exchange)
}

/// Logs progress every [`PROGRESS_EVERY`] until SIGINT, SIGTERM or the pipeline's
/// failure.
fn wait(
    stats: &Arc<PipelineStats>,
    events: Option<&Arc<EventsPublisherStats>>,
    mut failed: tokio::sync::oneshot::Receiver<PipelineError>,
) -> Result<End> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal runtime")?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        progress.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    r.context("cannot listen for SIGINT")?;
                    tracing::info!("SIGINT: shutting down");
                    return Ok(End::Signal);
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    return Ok(End::Signal);
                }
                Ok(_) = &mut failed => return Ok(End::Failure),
                _ = progress.tick() => tracing::info!(
                    durable_cmd_seq = stats.durable_seq.load(Ordering::Acquire),
                    applied_since_start = stats.applied.load(Ordering::Relaxed),
                    events_topic_acknowledged_cmd_seq =
                        events.map(|e| e.acknowledged_seq.load(Ordering::Relaxed)),
                    "progress"
                ),
            }
        }
    })
}
