//! The flag layer of [`Config`]: the command-line flags of each role, grouped by
//! the part of the configuration they set.
//!
//! Owns the clap argument structs. Every flag is optional and an absent flag leaves
//! the lower layers' value, so [`Flags::apply`] only ever overrides. The groups are
//! shared: `gpux serve`, `gpux demo` and `gpux gateway` take [`ServeArgs`], `gpux
//! engine` takes [`EngineArgs`], and both contain [`CommonArgs`], so a setting has
//! the same flag in every role.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{Config, LogFormat};

/// A layer of flags over a [`Config`].
pub trait Flags {
    /// The configuration file these flags name (`--config`), if any.
    fn config_file(&self) -> Option<&Path>;
    /// Overrides `cfg` with every flag that is set.
    fn apply(&self, cfg: &mut Config);
}

/// Flags every role takes: the file, the ledger, the pipeline, logging, Kafka.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// TOML configuration file (see docs/gpux.example.toml) [env: GPUX_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ledger directory, created if missing [env: GPUX_DATA] [default: ./gpux-data]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Snapshot the engine every this many events [env: GPUX_SNAPSHOT_EVERY]
    /// [default: 1000000]
    #[arg(long, value_name = "N")]
    pub snapshot_every: Option<u64>,
    /// How much of the ledger a start verifies before running: `background` (the
    /// head, then the rest while running; damage stops the exchange) or `full`
    /// (everything first) [env: GPUX_VERIFY_ON_OPEN] [default: background]
    #[arg(long, value_name = "MODE")]
    pub verify_on_open: Option<super::VerifyAtStart>,
    /// Most commands committed in one ledger batch (smaller: more, smaller fsyncs)
    /// [env: GPUX_MAX_BATCH] [default: 4096]
    #[arg(long, value_name = "N")]
    pub max_batch: Option<usize>,
    /// After this many milliseconds without a command, sequence a tick so time
    /// passes on an idle exchange (GTD expiries); 0 = off. Serve, demo and engine
    /// (not a --no-events standby) [env: GPUX_CLOCK_TICK_MS] [default: 1000]
    #[arg(long, value_name = "MS")]
    pub clock_tick_ms: Option<u64>,
    /// Run the exchange's clock N times faster than the wall (demos and tests,
    /// embedded log only: 60 = an hour a minute) [env: GPUX_TIME_SCALE] [default: 1]
    #[arg(long, value_name = "N")]
    pub time_scale: Option<u32>,
    /// Log line format [env: GPUX_LOG_FORMAT] [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter, RUST_LOG syntax, e.g. `info` or `gpux=debug,warn`
    /// [env: GPUX_LOG, then RUST_LOG] [default: info]
    #[arg(long = "log", value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Kafka mode: bootstrap servers, host:port[,host:port…] [env: GPUX_KAFKA_BROKERS]
    /// [default: none: serve uses the embedded command log; engine and gateway need
    /// a broker]
    #[arg(long = "kafka", value_name = "BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Kafka commands topic [env: GPUX_KAFKA_COMMANDS_TOPIC] [default: gpux.commands]
    #[arg(long, value_name = "TOPIC", alias = "commands-topic")]
    pub kafka_commands_topic: Option<String>,
    /// Kafka events topic [env: GPUX_KAFKA_EVENTS_TOPIC] [default: gpux.events]
    #[arg(long, value_name = "TOPIC", alias = "events-topic")]
    pub kafka_events_topic: Option<String>,
    /// Kafka partition this server owns [env: GPUX_KAFKA_PARTITION] [default: 0]
    #[arg(long, value_name = "N", alias = "partition")]
    pub kafka_partition: Option<i32>,
    /// A librdkafka client setting, KEY=VALUE (repeatable; added to the file's
    /// [kafka.client] table, replacing the same key)
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
}

/// Flags of the roles that serve HTTP: where, and the admin key.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HttpArgs {
    /// HTTP listen address [env: GPUX_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin API key, at least 16 bytes; prefer GPUX_ADMIN_KEY or the file, which
    /// other users cannot see in the process list [env: GPUX_ADMIN_KEY]
    /// [default: generated into DIR/admin.key]
    #[arg(long, value_name = "KEY")]
    pub admin_key: Option<String>,
}

/// Flags of the demo traders.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DemoArgs {
    /// Run simulated traders on sample markets [env: GPUX_DEMO]
    #[arg(long)]
    pub demo: bool,
    /// Demo commands per second [env: GPUX_DEMO_RATE] [default: 30]
    #[arg(long, value_name = "N")]
    pub demo_rate: Option<u32>,
    /// Demo random seed [env: GPUX_DEMO_SEED] [default: 1]
    #[arg(long, value_name = "N")]
    pub demo_seed: Option<u64>,
}

/// `gpux serve`'s, `gpux demo`'s and `gpux gateway`'s flags; flatten into the
/// subcommand with `#[command(flatten)]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Settings of every role.
    #[command(flatten)]
    pub common: CommonArgs,
    /// HTTP settings.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Demo traders.
    #[command(flatten)]
    pub demo: DemoArgs,
}

/// `gpux engine`'s flags: every role's settings, and what only an engine does.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EngineArgs {
    /// Settings of every role.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Do not publish to the events topic (a hot standby: only the active engine
    /// publishes).
    #[arg(long)]
    pub no_events: bool,
    /// Create the two topics first (one partition more than --kafka-partition,
    /// replication 1) if they do not exist.
    #[arg(long)]
    pub create_topics: bool,
}

/// Parses a `KEY=VALUE` flag.
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// `slot = value.clone()` for a set flag.
fn set<T: Clone>(slot: &mut T, flag: &Option<T>) {
    if let Some(v) = flag {
        *slot = v.clone();
    }
}

impl Flags for CommonArgs {
    fn config_file(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    fn apply(&self, cfg: &mut Config) {
        set(&mut cfg.data, &self.data);
        set(&mut cfg.snapshot_every_events, &self.snapshot_every);
        set(&mut cfg.verify_on_open, &self.verify_on_open);
        set(&mut cfg.max_batch_commands, &self.max_batch);
        set(&mut cfg.clock_tick_ms, &self.clock_tick_ms);
        set(&mut cfg.time_scale, &self.time_scale);
        set(&mut cfg.log.format, &self.log_format);
        set(&mut cfg.log.filter, &self.log_filter);
        if let Some(v) = &self.kafka_brokers {
            cfg.kafka.brokers = Some(v.clone());
        }
        set(&mut cfg.kafka.commands_topic, &self.kafka_commands_topic);
        set(&mut cfg.kafka.events_topic, &self.kafka_events_topic);
        set(&mut cfg.kafka.partition, &self.kafka_partition);
        for (k, v) in &self.kafka_options {
            cfg.kafka.client.insert(k.clone(), v.clone());
        }
    }
}

impl Flags for ServeArgs {
    fn config_file(&self) -> Option<&Path> {
        self.common.config_file()
    }

    fn apply(&self, cfg: &mut Config) {
        self.common.apply(cfg);
        set(&mut cfg.listen, &self.http.listen);
        if let Some(v) = &self.http.admin_key {
            cfg.admin_key = Some(v.clone());
        }
        if self.demo.demo {
            cfg.demo.enabled = true;
        }
        set(&mut cfg.demo.rate_per_sec, &self.demo.demo_rate);
        set(&mut cfg.demo.seed, &self.demo.demo_seed);
    }
}

impl Flags for EngineArgs {
    fn config_file(&self) -> Option<&Path> {
        self.common.config_file()
    }

    fn apply(&self, cfg: &mut Config) {
        self.common.apply(cfg);
    }
}
