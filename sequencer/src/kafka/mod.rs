//! Kafka mode: the commands topic as the command log, the events topic as the
//! committed-events feed for other processes.
//!
//! ```text
//!  producers ──► commands topic ──► KafkaSource ──► Exchange pipeline ──► ledger
//!  (KafkaSubmitter,  (partition P)   manual assign,     (decode, engine,      (RocksDB,
//!   any Kafka client)                 no group           group commit)         synced)
//!                                                                                 │
//!  gateways elsewhere ◄── EventsTopicFeed ◄── events topic ◄── EventsPublisher ◄──┘
//!                                            (one message per   follows the ledger,
//!                                             command, cmd_seq   never ahead of it
//!                                             order)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | this one | [`KafkaConfig`], [`start_exchange`], [`create_topics`], the client context that routes librdkafka's logs to `tracing` |
//! | [`source`] | [`KafkaSource`]: the pipeline's [`CommandSource`](crate::CommandSource) on one topic partition |
//! | [`batch`] | the batch envelope: many commands in one record, split by the source |
//! | [`submit`] | [`KafkaSubmitter`]: the idempotent producer behind [`Submitter`](crate::Submitter) |
//! | [`events`] | [`EventsMessage`] (the events topic's JSON) and [`EventsPublisher`] |
//! | [`feed`] | [`EventsTopicFeed`]: a [`Feed`](crate::Feed) over the events topic |
//! | [`topic`] | [`TopicReader`] and [`last_offset_message`]: plain partition reads (tests, bench, resume point) |
//! | `error` | [`KafkaError`]: why a Kafka-mode operation failed |
//!
//! Exactly-once rests on the ledger, not on Kafka: the source's offset is stored in
//! the same synced write as the events it produced, and on start the source is
//! positioned right after it. Consumer groups are not used for consumption (manual
//! assignment of the one partition, no rebalancing); offsets may be committed to the
//! broker for monitoring only and are never read back. The events topic is written
//! only from what the ledger holds, and on start the publisher continues after the
//! last `cmd_seq` already on the topic, so it has neither gaps nor duplicates.
//!
//! The broker is not trusted to stay up: a source or publisher that loses it logs (at
//! most every few seconds), backs off and resumes when librdkafka reconnects. Nothing
//! that arrives from Kafka can panic this crate: every payload, even an empty or
//! non-UTF-8 one, becomes a command the engine records (as a rejection if it does not
//! decode).

pub mod batch;
mod error;
pub mod events;
pub mod feed;
pub mod source;
pub mod submit;
pub mod topic;

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::pipeline::{Exchange, PipelineOptions};

pub use error::KafkaError;
pub use events::{EventsMessage, EventsPublisher, EventsPublisherStats};
pub use feed::EventsTopicFeed;
pub use source::KafkaSource;
pub use submit::KafkaSubmitter;
pub use topic::{last_offset_message, TopicReader};

/// The rdkafka crate this module is built on, for callers (tests, benchmarks) that
/// need a raw client of the same version.
pub use rdkafka;

/// Default name of the commands topic.
pub const COMMANDS_TOPIC_DEFAULT: &str = "gpux.commands";
/// Default name of the events topic.
pub const EVENTS_TOPIC_DEFAULT: &str = "gpux.events";
/// Consumer group id used when the settings name none. Consumption never joins the
/// group (partitions are assigned by hand); the id only labels monitoring commits.
pub const GROUP_ID_DEFAULT: &str = "gpux-engine";

/// How often a repeated Kafka problem is logged at most.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(5);

/// Where the Kafka mode's topics are and how its clients are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    /// The topic commands are read from (default [`COMMANDS_TOPIC_DEFAULT`]).
    pub commands_topic: String,
    /// The topic committed commands and their events are published to (default
    /// [`EVENTS_TOPIC_DEFAULT`]).
    pub events_topic: String,
    /// The partition of both topics this engine owns (default 0).
    pub partition: i32,
    /// librdkafka settings applied to every client (consumer, producers, admin), after
    /// the defaults and before the settings exactly-once depends on, which cannot be
    /// overridden (see [`KafkaConfig::client_config`]).
    pub client_settings: Vec<(String, String)>,
}

impl KafkaConfig {
    /// The defaults for `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            commands_topic: COMMANDS_TOPIC_DEFAULT.to_owned(),
            events_topic: EVENTS_TOPIC_DEFAULT.to_owned(),
            partition: 0,
            client_settings: Vec::new(),
        }
    }

    /// A client configuration: `bootstrap.servers`, `client.id` = `gpux-{role}`, then
    /// `defaults`, then [`KafkaConfig::client_settings`], then `enforced`.
    pub fn client_config(
        &self,
        role: &str,
        defaults: &[(&str, &str)],
        enforced: &[(&str, &str)],
    ) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c.set("client.id", format!("gpux-{role}"));
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.client_settings {
            c.set(k, v);
        }
        for (k, v) in enforced {
            c.set(*k, *v);
        }
        c
    }
}

/// Opens the ledger in `dir` and runs the pipeline on the commands topic, with a
/// [`KafkaSubmitter`] as [`Exchange::submitter`] and an [`EventsPublisher`] copying
/// every committed command to the events topic (stopped by [`Exchange::shutdown`]).
///
/// The broker need not be up: the source and the publisher wait for it.
pub fn start_exchange(
    dir: &std::path::Path,
    opts: PipelineOptions,
    cfg: &KafkaConfig,
) -> Result<Exchange, KafkaError> {
    let mut exchange = start_engine(dir, opts, cfg)?;
    EventsPublisher::spawn(&mut exchange, cfg)?;
    Ok(exchange)
}

/// [`start_exchange`] without the events publisher: for a hot standby, which must
/// not publish to the active engine's events topic, or for measurements.
pub fn start_engine(
    dir: &std::path::Path,
    opts: PipelineOptions,
    cfg: &KafkaConfig,
) -> Result<Exchange, KafkaError> {
    let source =
        KafkaSource::new(cfg).map_err(KafkaError::context("cannot create the Kafka consumer"))?;
    let submitter = KafkaSubmitter::new(cfg)
        .map_err(KafkaError::context("cannot create the Kafka producer"))?;
    Ok(Exchange::start_with_source(
        dir,
        opts,
        Box::new(source),
        Some(Arc::new(submitter)),
    )?)
}

/// Creates the commands and events topics (one partition more than
/// [`KafkaConfig::partition`], replication factor 1) through the Kafka admin API;
/// a topic that already exists is fine. Operators of a real cluster will rather
/// create them with their own tooling and replication.
pub fn create_topics(cfg: &KafkaConfig, timeout: Duration) -> Result<(), KafkaError> {
    create_topic(cfg, &cfg.commands_topic, cfg.partition + 1, timeout)?;
    create_topic(cfg, &cfg.events_topic, cfg.partition + 1, timeout)
}

/// Creates one topic with `partitions` partitions (replication factor 1); a topic
/// that already exists is fine.
pub fn create_topic(
    cfg: &KafkaConfig,
    name: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let admin: AdminClient<LogContext> = cfg
        .client_config("admin", &[], &[])
        .create_with_context(LogContext::new("admin"))
        .map_err(KafkaError::client("cannot create the Kafka admin client"))?;
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let topic = NewTopic::new(name, partitions.max(1), TopicReplication::Fixed(1));
    let results = block_on(admin.create_topics([&topic], &opts)).map_err(KafkaError::client(
        format!("cannot create the topic {name}"),
    ))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic = name, partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = name, "topic exists")
            }
            Err((topic, code)) => return Err(KafkaError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// Deletes a topic through the Kafka admin API (benchmarks' scratch topics).
pub fn delete_topic(cfg: &KafkaConfig, name: &str, timeout: Duration) -> Result<(), KafkaError> {
    let admin: AdminClient<LogContext> = cfg
        .client_config("admin", &[], &[])
        .create_with_context(LogContext::new("admin"))
        .map_err(KafkaError::client("cannot create the Kafka admin client"))?;
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    for r in block_on(admin.delete_topics(&[name], &opts)).map_err(KafkaError::client(format!(
        "cannot delete the topic {name}"
    )))? {
        if let Err((topic, code)) = r {
            return Err(KafkaError::DeleteTopic { topic, code });
        }
    }
    Ok(())
}

/// Runs a future to completion on this thread (the admin client's futures are
/// completed by its own polling thread, so no executor is needed).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Lets through one occurrence of a repeated problem every `every`, counting the
/// ones held back so the next log line can say how many there were.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(held back since the last one)` when this occurrence should be logged.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// The client context of every gpux Kafka client: routes librdkafka's log lines and
/// global errors to `tracing` (target `librdkafka`), warnings and errors throttled
/// to one line per few seconds so a broker outage does not flood the log.
pub struct LogContext {
    role: &'static str,
    throttle: Mutex<Throttle>,
}

impl std::fmt::Debug for LogContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogContext")
            .field("role", &self.role)
            .finish()
    }
}

impl LogContext {
    /// A context labelling its lines with `role` (`source`, `submitter`, …).
    pub fn new(role: &'static str) -> Self {
        Self {
            role,
            throttle: Mutex::new(Throttle::new(LOG_EVERY)),
        }
    }

    fn allow(&self) -> Option<u64> {
        self.throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow()
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let role = self.role;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                if let Some(held_back) = self.allow() {
                    tracing::error!(target: "librdkafka", role, fac, held_back, "{message}");
                }
            }
            RDKafkaLogLevel::Warning
                if fac == "CONFWARN" && message.contains("is experimental") =>
            {
                // enable.gapless.guarantee, set on purpose (see `events`).
                tracing::debug!(target: "librdkafka", role, fac, "{message}")
            }
            RDKafkaLogLevel::Warning => {
                if let Some(held_back) = self.allow() {
                    tracing::warn!(target: "librdkafka", role, fac, held_back, "{message}");
                }
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", role, fac, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", role, fac, "{message}")
            }
        }
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        if let Some(held_back) = self.allow() {
            tracing::warn!(
                target: "librdkafka",
                role = self.role,
                held_back,
                %error,
                "{reason} (the client keeps retrying)"
            );
        }
    }
}
