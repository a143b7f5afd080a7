//! The configuration of every `gpux` role — `serve` (and `demo`), `engine`,
//! `gateway`: [`Config`], its sections, and how it is loaded.
//!
//! Owns the one place where every setting of a gpux process is named, defaulted
//! and checked, so an operator can read the whole envelope of the service in
//! `docs/gpux.example.toml`, one file can configure every role, and the wiring
//! ([`crate::run`]) maps it onto the parts (pipeline, gateway, Kafka, demo) without
//! re-parsing anything. A role uses the sections it needs: `gpux engine` ignores
//! `listen`, `admin_key`, `[gateway]` and `[demo]`.
//!
//! # Layers
//!
//! Later layers override earlier ones, key by key:
//!
//! 1. built-in defaults ([`Config::default`]): they work out of the box — a
//!    ledger in `./gpux-data`, HTTP on `127.0.0.1:8080`, the embedded command log;
//! 2. a TOML file: `--config FILE`, else `$GPUX_CONFIG` (no file: skipped). Unknown
//!    keys are errors, so a misspelt setting is never silently ignored;
//! 3. environment variables ([`env`], table below);
//! 4. command-line flags ([`args`]: [`ServeArgs`], [`EngineArgs`]).
//!
//! | key | environment | flag |
//! |---|---|---|
//! | `data` | `GPUX_DATA` | `--data DIR` |
//! | `listen` | `GPUX_LISTEN` | `--listen ADDR` |
//! | `admin_key` | `GPUX_ADMIN_KEY` | `--admin-key KEY` |
//! | `snapshot_every_events` | `GPUX_SNAPSHOT_EVERY` | `--snapshot-every N` |
//! | `verify_on_open` | `GPUX_VERIFY_ON_OPEN` | `--verify-on-open background\|full` |
//! | `max_batch_commands` | `GPUX_MAX_BATCH` | `--max-batch N` |
//! | `clock_tick_ms` | `GPUX_CLOCK_TICK_MS` | `--clock-tick-ms MS` |
//! | `time_scale` | `GPUX_TIME_SCALE` | `--time-scale N` |
//! | `log.format` | `GPUX_LOG_FORMAT` | `--log-format text\|json` |
//! | `log.filter` | `GPUX_LOG`, else `RUST_LOG` | `--log FILTER` |
//! | `kafka.brokers` | `GPUX_KAFKA_BROKERS` | `--kafka BROKERS` |
//! | `kafka.commands_topic` | `GPUX_KAFKA_COMMANDS_TOPIC` | `--kafka-commands-topic T` |
//! | `kafka.events_topic` | `GPUX_KAFKA_EVENTS_TOPIC` | `--kafka-events-topic T` |
//! | `kafka.partition` | `GPUX_KAFKA_PARTITION` | `--kafka-partition N` |
//! | `kafka.client` | — | `--kafka-option KEY=VALUE` (added to the file's) |
//! | `demo.enabled` | `GPUX_DEMO` (`true`/`false`/`1`/`0`) | `--demo` |
//! | `demo.rate_per_sec` | `GPUX_DEMO_RATE` | `--demo-rate N` |
//! | `demo.seed` | `GPUX_DEMO_SEED` | `--demo-seed N` |
//! | `gateway.*` | — | — (file only) |
//!
//! `gpux engine`'s `--no-events` and `--create-topics` are what that one process
//! does, not settings, so they are flags only ([`EngineArgs`]). Its older spellings
//! `--commands-topic`, `--events-topic` and `--partition` are accepted as aliases.
//!
//! Relative paths are relative to the working directory. Every error names the key
//! (and the file or variable it came from) and says what is expected.
//!
//! # Example
//! ```
//! use clap::Parser;
//! use gpux::config::{ServeArgs, Config};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     serve: ServeArgs,
//! }
//! let cli = Cli::parse_from(["gpux", "--listen", "127.0.0.1:9090"]);
//! let cfg = Config::load_with(&cli.serve, |_| None).unwrap(); // no environment
//! assert_eq!(cfg.listen.to_string(), "127.0.0.1:9090");
//! assert_eq!(cfg.data, std::path::PathBuf::from("./gpux-data"));
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use gpux_gateway::config::GatewaySettings;
use gpux_sequencer::kafka::{self, KafkaConfig};
use serde::{Deserialize, Serialize};

pub mod args;
mod env;

pub use args::{CommonArgs, DemoArgs, EngineArgs, Flags, HttpArgs, ServeArgs};
use env::Env;

/// Default ledger directory.
pub const DATA_DEFAULT: &str = "./gpux-data";
/// Default HTTP listen address (loopback only: exposing it is a deliberate choice).
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8080";
/// Default log filter.
pub const LOG_FILTER_DEFAULT: &str = "info";
/// Default snapshot interval, in events: the pipeline's, the one default of every
/// way to set it.
pub use gpux_sequencer::SNAPSHOT_EVERY_EVENTS_DEFAULT;
/// Shortest accepted admin key, bytes (the gateway's bound).
pub const ADMIN_KEY_MIN_BYTES: usize = gpux_gateway::GatewayConfig::ADMIN_KEY_MIN_BYTES;
/// Default idle interval before the exchange sequences a tick, milliseconds: the
/// pipeline's.
pub use gpux_sequencer::CLOCK_TICK_MS_DEFAULT;
/// Longest accepted tick interval, milliseconds (one hour): GTD expiries and gate
/// closures on an idle exchange are late by up to the interval.
pub const CLOCK_TICK_MS_MAX: u64 = 3_600_000;
/// Highest accepted demo rate, commands per second.
pub const DEMO_RATE_PER_SEC_MAX: u32 = 10_000;

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `text` or `json`".into()),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// How much of the ledger a start checks before the exchange runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VerifyAtStart {
    /// The head's checks, then everything below it on a background thread while
    /// the exchange runs; damage found there stops the exchange (exit status 1).
    /// A restart takes milliseconds however long the ledger is.
    #[default]
    Background,
    /// Everything (every checksum, the whole hash chain) before the exchange runs:
    /// damage anywhere refuses the start. About a second per million commands.
    Full,
}

impl VerifyAtStart {
    /// The ledger's mode for it.
    pub fn ledger_mode(self) -> gpux_ledger::VerifyOnOpen {
        match self {
            VerifyAtStart::Background => gpux_ledger::VerifyOnOpen::Background,
            VerifyAtStart::Full => gpux_ledger::VerifyOnOpen::Full,
        }
    }
}

impl FromStr for VerifyAtStart {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "background" => Ok(VerifyAtStart::Background),
            "full" => Ok(VerifyAtStart::Full),
            _ => Err("expected `background` or `full`".into()),
        }
    }
}

/// `[log]`: where and how much the server logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
    /// A `tracing` filter (`RUST_LOG` syntax), e.g. `info` or `gpux=debug,warn`.
    /// Default `info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: LOG_FILTER_DEFAULT.into(),
        }
    }
}

/// `[kafka]`: Kafka mode. With no `brokers`, the server runs the embedded command
/// log and the other keys are unused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// `bootstrap.servers`, `host:port[,host:port…]`. Default: none (embedded mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    /// Topic commands are read from. Default `gpux.commands`.
    pub commands_topic: String,
    /// Topic committed events are published to. Default `gpux.events`.
    pub events_topic: String,
    /// The partition of both topics this server owns. Default 0.
    pub partition: i32,
    /// librdkafka settings passed to every client as they are (e.g.
    /// `"security.protocol" = "ssl"`). Default: none.
    pub client: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: None,
            commands_topic: kafka::COMMANDS_TOPIC_DEFAULT.into(),
            events_topic: kafka::EVENTS_TOPIC_DEFAULT.into(),
            partition: 0,
            client: BTreeMap::new(),
        }
    }
}

impl KafkaSettings {
    /// Whether Kafka mode is on (brokers are configured).
    pub fn enabled(&self) -> bool {
        self.brokers.is_some()
    }

    /// The client settings as `(key, value)` pairs, in key order.
    pub fn client_settings(&self) -> Vec<(String, String)> {
        self.client
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The sequencer's Kafka configuration (`None` in embedded mode), for
    /// `gpux_sequencer::kafka::start_exchange`.
    pub fn kafka_config(&self) -> Option<KafkaConfig> {
        Some(KafkaConfig {
            brokers: self.brokers.clone()?,
            commands_topic: self.commands_topic.clone(),
            events_topic: self.events_topic.clone(),
            partition: self.partition,
            client_settings: self.client_settings(),
        })
    }
}

/// `[demo]`: simulated traders on sample markets (see [`crate::demo`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Run the demo traders. Default `false`.
    pub enabled: bool,
    /// Commands per second. Default 30.
    pub rate_per_sec: u32,
    /// Random seed of the traders' decisions. Default 1.
    pub seed: u64,
    /// Provider accounts (sellers). Default 3.
    pub providers: u32,
    /// Demander accounts (buyers). Default 5.
    pub demanders: u32,
}

impl Default for DemoConfig {
    fn default() -> Self {
        let d = crate::demo::DemoOptions::default();
        DemoConfig {
            enabled: false,
            rate_per_sec: d.rate_per_sec,
            seed: d.seed,
            providers: d.providers,
            demanders: d.demanders,
        }
    }
}

impl DemoConfig {
    /// The demo's options (sample markets, unbounded run).
    pub fn options(&self) -> crate::demo::DemoOptions {
        crate::demo::DemoOptions {
            rate_per_sec: self.rate_per_sec,
            seed: self.seed,
            providers: self.providers,
            demanders: self.demanders,
            ..crate::demo::DemoOptions::default()
        }
    }
}

/// Everything a `gpux` process needs to know, after all layers are applied.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Ledger directory (created if missing). Default `./gpux-data`.
    pub data: PathBuf,
    /// HTTP listen address. Default `127.0.0.1:8080`.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// The operator's admin key (at least 16 bytes). Default: none, and serve
    /// generates one. Never printed: `Debug` and serialization redact it.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redact")]
    pub admin_key: Option<String>,
    /// Snapshot the engine after at least this many events. Default 1,000,000.
    pub snapshot_every_events: u64,
    /// How much of the ledger a start verifies before running. Default
    /// `background`.
    pub verify_on_open: VerifyAtStart,
    /// Most commands committed in one ledger batch. Default 4,096.
    pub max_batch_commands: usize,
    /// After this many milliseconds without a command, the exchange sequences a
    /// `tick` (serve, demo, engine; not a `--no-events` standby). 0 = off.
    /// Default 1,000.
    pub clock_tick_ms: u64,
    /// Engine seconds per wall second (1 = the wall clock, the default). Above 1
    /// the exchange's clock runs that much faster — for demos and tests, embedded
    /// log only: at 60 an hour passes in a minute, so a newcomer sees slots close,
    /// deliveries settle and reliability change. 1 to 3,600.
    pub time_scale: u32,
    /// Logging.
    pub log: LogConfig,
    /// Kafka mode (off unless brokers are set).
    pub kafka: KafkaSettings,
    /// Gateway bounds (the gateway's own settings type, so its defaults are
    /// written once).
    pub gateway: GatewaySettings,
    /// Demo traders.
    pub demo: DemoConfig,
}

fn socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid listen address {s:?}: expected IP:PORT such as 127.0.0.1:8080"
        ))
    })
}

fn redact<S: serde::Serializer>(key: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match key {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data: PathBuf::from(DATA_DEFAULT),
            listen: LISTEN_DEFAULT.parse().expect("valid default address"),
            admin_key: None,
            snapshot_every_events: SNAPSHOT_EVERY_EVENTS_DEFAULT,
            verify_on_open: VerifyAtStart::default(),
            log: LogConfig::default(),
            kafka: KafkaSettings::default(),
            max_batch_commands: gpux_sequencer::BATCH_COMMANDS_MAX_DEFAULT,
            clock_tick_ms: CLOCK_TICK_MS_DEFAULT,
            time_scale: 1,
            gateway: GatewaySettings::default(),
            demo: DemoConfig::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data", &self.data)
            .field("listen", &self.listen)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("snapshot_every_events", &self.snapshot_every_events)
            .field("verify_on_open", &self.verify_on_open)
            .field("max_batch_commands", &self.max_batch_commands)
            .field("clock_tick_ms", &self.clock_tick_ms)
            .field("time_scale", &self.time_scale)
            .field("log", &self.log)
            .field("kafka", &self.kafka)
            .field("gateway", &self.gateway)
            .field("demo", &self.demo)
            .finish()
    }
}

impl Config {
    /// Loads the configuration: defaults, then the file named by `--config` or
    /// `GPUX_CONFIG`, then the process environment, then `flags`; validated.
    pub fn load(flags: &dyn Flags) -> Result<Config> {
        Self::load_with(flags, |name| std::env::var_os(name))
    }

    /// [`Config::load`] with the environment given as a lookup function (tests
    /// pass their own instead of touching the process environment).
    pub fn load_with(flags: &dyn Flags, env: impl Fn(&str) -> Option<OsString>) -> Result<Config> {
        let env = Env(&env);
        let file = match flags.config_file() {
            Some(p) => Some(p.to_path_buf()),
            None => env.string("GPUX_CONFIG")?.map(PathBuf::from),
        };
        let mut cfg = match &file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        env.apply(&mut cfg)?;
        flags.apply(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML file over the defaults (not validated: see [`Config::validate`]).
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in the config file {}", path.display()))
    }

    /// Parses TOML text over the defaults (not validated).
    pub fn from_toml(text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))
    }

    /// Checks the values no layer could check alone; the error names the key and
    /// says what is expected.
    pub fn validate(&self) -> Result<()> {
        if self.data.as_os_str().is_empty() {
            bail!("data must name a directory (got an empty path)");
        }
        if let Some(k) = &self.admin_key {
            if k.len() < ADMIN_KEY_MIN_BYTES || k.trim() != k {
                bail!(
                    "admin_key must be at least {ADMIN_KEY_MIN_BYTES} bytes without surrounding \
                     spaces (got {} bytes); leave it out to have one generated",
                    k.len()
                );
            }
        }
        for (key, v) in [
            ("snapshot_every_events", self.snapshot_every_events),
            ("max_batch_commands", self.max_batch_commands as u64),
        ] {
            if v == 0 {
                bail!("{key} must be positive (got 0)");
            }
        }
        if self.clock_tick_ms > CLOCK_TICK_MS_MAX {
            bail!(
                "clock_tick_ms must be 0 (off) to {CLOCK_TICK_MS_MAX} milliseconds (got {})",
                self.clock_tick_ms
            );
        }
        let max = gpux_sequencer::TIME_SCALE_MAX;
        if !(1..=max).contains(&self.time_scale) {
            bail!(
                "time_scale must be 1 (the wall clock) to {max} (got {})",
                self.time_scale
            );
        }
        if self.time_scale > 1 && self.kafka.kafka_config().is_some() {
            bail!(
                "time_scale is for the embedded log only: with Kafka every process would \
                 keep its own faster clock"
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.filter) {
            bail!(
                "log.filter: invalid filter {:?} ({e}): expected RUST_LOG directives such as \
                 `info` or `gpux=debug,warn`",
                self.log.filter
            );
        }
        self.kafka.validate()?;
        self.gateway.validate()?;
        self.demo.validate()
    }

    /// The pipeline options these settings imply.
    pub fn pipeline_options(&self) -> gpux_sequencer::PipelineOptions {
        let defaults = gpux_sequencer::PipelineOptions::default();
        gpux_sequencer::PipelineOptions {
            ledger: gpux_ledger::LedgerOptions {
                verify_on_open: self.verify_on_open.ledger_mode(),
                ..defaults.ledger.clone()
            },
            snapshot_every_events: self.snapshot_every_events,
            max_batch_commands: self.max_batch_commands,
            clock_tick: (self.clock_tick_ms > 0)
                .then(|| std::time::Duration::from_millis(self.clock_tick_ms)),
            ..defaults
        }
    }
}

/// Longest Kafka topic name, bytes.
const TOPIC_NAME_BYTES_MAX: usize = 249;

impl KafkaSettings {
    fn validate(&self) -> Result<()> {
        if let Some(b) = &self.brokers {
            if b.split(',').any(|h| h.trim().is_empty()) {
                bail!("kafka.brokers: invalid value {b:?}: expected host:port[,host:port…]");
            }
        }
        for (key, topic) in [
            ("kafka.commands_topic", &self.commands_topic),
            ("kafka.events_topic", &self.events_topic),
        ] {
            if topic.is_empty()
                || topic.len() > TOPIC_NAME_BYTES_MAX
                || !topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                bail!(
                    "{key}: invalid topic {topic:?}: expected 1 to {TOPIC_NAME_BYTES_MAX} ASCII \
                     letters, digits, `.`, `_` or `-`"
                );
            }
        }
        if self.commands_topic == self.events_topic {
            bail!("kafka.commands_topic and kafka.events_topic must differ");
        }
        if self.partition < 0 {
            bail!("kafka.partition must be 0 or more (got {})", self.partition);
        }
        Ok(())
    }
}

impl DemoConfig {
    fn validate(&self) -> Result<()> {
        if self.rate_per_sec == 0 || self.rate_per_sec > DEMO_RATE_PER_SEC_MAX {
            bail!(
                "demo.rate_per_sec must be 1 to {DEMO_RATE_PER_SEC_MAX} commands per second \
                 (got {})",
                self.rate_per_sec
            );
        }
        let max = crate::demo::ACCOUNTS_PER_ROLE_MAX;
        for (key, n) in [
            ("demo.providers", self.providers),
            ("demo.demanders", self.demanders),
        ] {
            if n == 0 || n > max {
                bail!("{key} must be 1 to {max} (got {n})");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
