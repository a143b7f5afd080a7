//! `gpux serve`'s configuration: [`ServeConfig`], its sections, and how it is loaded.
//!
//! Owns the one place where every setting of the server is named, defaulted and
//! checked, so an operator can read the whole envelope of the service in
//! `docs/gpux.example.toml` and the integrator maps it onto the parts (pipeline,
//! gateway, Kafka, demo) without re-parsing anything.
//!
//! # Layers
//!
//! Later layers override earlier ones, key by key:
//!
//! 1. built-in defaults ([`ServeConfig::default`]): they work out of the box — a
//!    ledger in `./gpux-data`, HTTP on `127.0.0.1:8080`, the embedded command log;
//! 2. a TOML file: `--config FILE`, else `$GPUX_CONFIG` (no file: skipped). Unknown
//!    keys are errors, so a misspelt setting is never silently ignored;
//! 3. environment variables (table below);
//! 4. command-line flags ([`ServeArgs`]).
//!
//! | key | environment | flag |
//! |---|---|---|
//! | `data` | `GPUX_DATA` | `--data DIR` |
//! | `listen` | `GPUX_LISTEN` | `--listen ADDR` |
//! | `admin_key` | `GPUX_ADMIN_KEY` | `--admin-key KEY` |
//! | `snapshot_every_events` | `GPUX_SNAPSHOT_EVERY` | `--snapshot-every N` |
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
//! Relative paths are relative to the working directory. Every error names the key
//! (and the file or variable it came from) and says what is expected.
//!
//! # Example
//! ```
//! use clap::Parser;
//! use gpux::config::{ServeArgs, ServeConfig};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     serve: ServeArgs,
//! }
//! let cli = Cli::parse_from(["gpux", "--listen", "127.0.0.1:9090"]);
//! let cfg = ServeConfig::load_with(&cli.serve, |_| None).unwrap(); // no environment
//! assert_eq!(cfg.listen.to_string(), "127.0.0.1:9090");
//! assert_eq!(cfg.data, std::path::PathBuf::from("./gpux-data"));
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use gpux_sequencer::kafka::{self, KafkaConfig};
use serde::{Deserialize, Serialize};

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
pub const ADMIN_KEY_MIN_BYTES: usize = 16;
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

/// `[gateway]`: the HTTP/WebSocket gateway's bounds, as plain numbers. The gateway
/// crate maps them onto its own configuration; defaults equal its defaults. A rate of
/// 0 turns that rate limit off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayLimits {
    /// Requests per second per API key (and the admin key); 0: unlimited. Default 200.
    pub rate_limit_per_key_per_sec: u32,
    /// Requests per key allowed back to back. Default 400.
    pub rate_limit_per_key_burst: u32,
    /// Requests per second per client IP without a valid key (public endpoints,
    /// market data's REST reads included); 0: unlimited. Default 50.
    pub rate_limit_per_ip_per_sec: u32,
    /// Anonymous requests per IP allowed back to back. Default 100.
    pub rate_limit_per_ip_burst: u32,
    /// How long a request waits for its command's outcome before answering 503.
    /// Default 10,000 ms.
    pub request_timeout_ms: u64,
    /// Largest accepted request body. Default 16,384 bytes.
    pub body_limit_bytes: usize,
    /// How long a client may take to send a request's headers (also how long an
    /// idle kept-alive connection stays open); then the connection is closed.
    /// Default 30,000 ms.
    pub header_read_timeout_ms: u64,
    /// How long a client may take to send a request's body after its headers;
    /// then it is answered 408 and the connection closed. Default 30,000 ms.
    pub body_read_timeout_ms: u64,
    /// Most requests waiting for their command at once. Default 65,536.
    pub max_in_flight: usize,
    /// How long a graceful shutdown waits for open requests. Default 10,000 ms.
    pub shutdown_grace_ms: u64,
    /// WebSocket connections in all. Default 10,000.
    pub ws_max_connections: usize,
    /// WebSocket connections per authenticated account. Default 16.
    pub ws_max_connections_per_account: usize,
    /// Anonymous WebSocket connections per peer IP. Default 64.
    pub ws_max_connections_per_peer: usize,
    /// Subscriptions per WebSocket connection. Default 32.
    pub ws_max_subscriptions: usize,
    /// Messages a connection's outbound queue holds before it overflows. Default 1,024.
    pub ws_queue_messages: usize,
    /// Bytes a connection's outbound queue holds before it overflows. Default 4 MiB.
    pub ws_queue_bytes: usize,
    /// Largest WebSocket frame accepted. Default 65,536 bytes.
    pub ws_max_frame_bytes: usize,
    /// A ping every this often. Default 15,000 ms.
    pub ws_heartbeat_interval_ms: u64,
    /// Close a peer silent for this long. Default 45,000 ms.
    pub ws_idle_timeout_ms: u64,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            rate_limit_per_key_per_sec: 200,
            rate_limit_per_key_burst: 400,
            rate_limit_per_ip_per_sec: 50,
            rate_limit_per_ip_burst: 100,
            request_timeout_ms: 10_000,
            body_limit_bytes: 16 * 1024,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 30_000,
            max_in_flight: 65_536,
            shutdown_grace_ms: 10_000,
            ws_max_connections: 10_000,
            ws_max_connections_per_account: 16,
            ws_max_connections_per_peer: 64,
            ws_max_subscriptions: 32,
            ws_queue_messages: 1_024,
            ws_queue_bytes: 4 * 1024 * 1024,
            ws_max_frame_bytes: 64 * 1024,
            ws_heartbeat_interval_ms: 15_000,
            ws_idle_timeout_ms: 45_000,
        }
    }
}

impl GatewayLimits {
    /// [`GatewayLimits::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`GatewayLimits::header_read_timeout_ms`] as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// [`GatewayLimits::body_read_timeout_ms`] as a duration.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// [`GatewayLimits::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// [`GatewayLimits::ws_heartbeat_interval_ms`] as a duration.
    pub fn ws_heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.ws_heartbeat_interval_ms)
    }

    /// [`GatewayLimits::ws_idle_timeout_ms`] as a duration.
    pub fn ws_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.ws_idle_timeout_ms)
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

/// Everything `gpux serve` needs to know, after all layers are applied.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
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
    /// Logging.
    pub log: LogConfig,
    /// Kafka mode (off unless brokers are set).
    pub kafka: KafkaSettings,
    /// Gateway bounds.
    pub gateway: GatewayLimits,
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

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            data: PathBuf::from(DATA_DEFAULT),
            listen: LISTEN_DEFAULT.parse().expect("valid default address"),
            admin_key: None,
            snapshot_every_events: SNAPSHOT_EVERY_EVENTS_DEFAULT,
            log: LogConfig::default(),
            kafka: KafkaSettings::default(),
            gateway: GatewayLimits::default(),
            demo: DemoConfig::default(),
        }
    }
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("data", &self.data)
            .field("listen", &self.listen)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("snapshot_every_events", &self.snapshot_every_events)
            .field("log", &self.log)
            .field("kafka", &self.kafka)
            .field("gateway", &self.gateway)
            .field("demo", &self.demo)
            .finish()
    }
}

/// `gpux serve`'s flags; flatten into the subcommand with `#[command(flatten)]`.
/// Every flag is optional: an absent flag leaves the lower layers' value.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/gpux.example.toml) [env: GPUX_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ledger directory, created if missing [env: GPUX_DATA] [default: ./gpux-data]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// HTTP listen address [env: GPUX_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin API key, at least 16 bytes; prefer GPUX_ADMIN_KEY or the file, which
    /// other users cannot see in the process list [env: GPUX_ADMIN_KEY]
    /// [default: generated into DIR/admin.key]
    #[arg(long, value_name = "KEY")]
    pub admin_key: Option<String>,
    /// Snapshot the engine every this many events [env: GPUX_SNAPSHOT_EVERY]
    /// [default: 1000000]
    #[arg(long, value_name = "N")]
    pub snapshot_every: Option<u64>,
    /// Log line format [env: GPUX_LOG_FORMAT] [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter, RUST_LOG syntax, e.g. `info` or `gpux=debug,warn`
    /// [env: GPUX_LOG, then RUST_LOG] [default: info]
    #[arg(long = "log", value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Kafka mode: bootstrap servers, host:port[,host:port…] [env: GPUX_KAFKA_BROKERS]
    /// [default: none, the embedded command log]
    #[arg(long = "kafka", value_name = "BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Kafka commands topic [env: GPUX_KAFKA_COMMANDS_TOPIC] [default: gpux.commands]
    #[arg(long, value_name = "TOPIC")]
    pub kafka_commands_topic: Option<String>,
    /// Kafka events topic [env: GPUX_KAFKA_EVENTS_TOPIC] [default: gpux.events]
    #[arg(long, value_name = "TOPIC")]
    pub kafka_events_topic: Option<String>,
    /// Kafka partition this server owns [env: GPUX_KAFKA_PARTITION] [default: 0]
    #[arg(long, value_name = "N")]
    pub kafka_partition: Option<i32>,
    /// A librdkafka client setting, KEY=VALUE (repeatable; added to the file's
    /// [kafka.client] table, replacing the same key)
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
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

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl ServeConfig {
    /// Loads the configuration: defaults, then the file named by `--config` or
    /// `GPUX_CONFIG`, then the process environment, then `args`; validated.
    pub fn load(args: &ServeArgs) -> Result<ServeConfig> {
        Self::load_with(args, |name| std::env::var_os(name))
    }

    /// [`ServeConfig::load`] with the environment given as a lookup function (tests
    /// pass their own instead of touching the process environment).
    pub fn load_with(
        args: &ServeArgs,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<ServeConfig> {
        let env = Env(&env);
        let file = match &args.config {
            Some(p) => Some(p.clone()),
            None => env.string("GPUX_CONFIG")?.map(PathBuf::from),
        };
        let mut cfg = match &file {
            Some(path) => Self::from_file(path)?,
            None => ServeConfig::default(),
        };
        cfg.apply_env(&env)?;
        cfg.apply_args(args);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML file over the defaults (not validated: see [`ServeConfig::validate`]).
    pub fn from_file(path: &Path) -> Result<ServeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in the config file {}", path.display()))
    }

    /// Parses TOML text over the defaults (not validated).
    pub fn from_toml(text: &str) -> Result<ServeConfig> {
        toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))
    }

    fn apply_env(&mut self, env: &Env<'_>) -> Result<()> {
        if let Some(v) = env.string("GPUX_DATA")? {
            self.data = PathBuf::from(v);
        }
        if let Some(v) = env.parse("GPUX_LISTEN", "a socket address such as 127.0.0.1:8080")? {
            self.listen = v;
        }
        if let Some(v) = env.string("GPUX_ADMIN_KEY")? {
            self.admin_key = Some(v);
        }
        if let Some(v) = env.parse("GPUX_SNAPSHOT_EVERY", "a positive whole number of events")? {
            self.snapshot_every_events = v;
        }
        if let Some(v) = env.parse("GPUX_LOG_FORMAT", "`text` or `json`")? {
            self.log.format = v;
        }
        if let Some(v) = env.string("GPUX_LOG")? {
            self.log.filter = v;
        } else if let Some(v) = env.string("RUST_LOG")? {
            self.log.filter = v;
        }
        if let Some(v) = env.string("GPUX_KAFKA_BROKERS")? {
            self.kafka.brokers = Some(v);
        }
        if let Some(v) = env.string("GPUX_KAFKA_COMMANDS_TOPIC")? {
            self.kafka.commands_topic = v;
        }
        if let Some(v) = env.string("GPUX_KAFKA_EVENTS_TOPIC")? {
            self.kafka.events_topic = v;
        }
        if let Some(v) = env.parse("GPUX_KAFKA_PARTITION", "a partition number, 0 or more")? {
            self.kafka.partition = v;
        }
        if let Some(v) = env.string("GPUX_DEMO")? {
            self.demo.enabled = match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => bail!("GPUX_DEMO: invalid value {v:?}: expected true or false (1 or 0)"),
            };
        }
        if let Some(v) = env.parse("GPUX_DEMO_RATE", "commands per second, 1 to 10000")? {
            self.demo.rate_per_sec = v;
        }
        if let Some(v) = env.parse("GPUX_DEMO_SEED", "a whole number")? {
            self.demo.seed = v;
        }
        Ok(())
    }

    fn apply_args(&mut self, a: &ServeArgs) {
        if let Some(v) = &a.data {
            self.data = v.clone();
        }
        if let Some(v) = a.listen {
            self.listen = v;
        }
        if let Some(v) = &a.admin_key {
            self.admin_key = Some(v.clone());
        }
        if let Some(v) = a.snapshot_every {
            self.snapshot_every_events = v;
        }
        if let Some(v) = a.log_format {
            self.log.format = v;
        }
        if let Some(v) = &a.log_filter {
            self.log.filter = v.clone();
        }
        if let Some(v) = &a.kafka_brokers {
            self.kafka.brokers = Some(v.clone());
        }
        if let Some(v) = &a.kafka_commands_topic {
            self.kafka.commands_topic = v.clone();
        }
        if let Some(v) = &a.kafka_events_topic {
            self.kafka.events_topic = v.clone();
        }
        if let Some(v) = a.kafka_partition {
            self.kafka.partition = v;
        }
        for (k, v) in &a.kafka_options {
            self.kafka.client.insert(k.clone(), v.clone());
        }
        if a.demo {
            self.demo.enabled = true;
        }
        if let Some(v) = a.demo_rate {
            self.demo.rate_per_sec = v;
        }
        if let Some(v) = a.demo_seed {
            self.demo.seed = v;
        }
    }

    /// Checks the values no layer could check alone; the error names the key and
    /// says what is expected.
    pub fn validate(&self) -> Result<()> {
        fn positive(key: &str, v: u64) -> Result<()> {
            if v == 0 {
                bail!("{key} must be positive (got 0)");
            }
            Ok(())
        }
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
        positive("snapshot_every_events", self.snapshot_every_events)?;
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.filter) {
            bail!(
                "log.filter: invalid filter {:?} ({e}): expected RUST_LOG directives such as \
                 `info` or `gpux=debug,warn`",
                self.log.filter
            );
        }
        let k = &self.kafka;
        if let Some(b) = &k.brokers {
            if b.split(',').any(|h| h.trim().is_empty()) {
                bail!("kafka.brokers: invalid value {b:?}: expected host:port[,host:port…]");
            }
        }
        for (key, topic) in [
            ("kafka.commands_topic", &k.commands_topic),
            ("kafka.events_topic", &k.events_topic),
        ] {
            if topic.is_empty()
                || topic.len() > 249
                || !topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                bail!(
                    "{key}: invalid topic {topic:?}: expected 1 to 249 ASCII letters, digits, \
                     `.`, `_` or `-`"
                );
            }
        }
        if k.commands_topic == k.events_topic {
            bail!("kafka.commands_topic and kafka.events_topic must differ");
        }
        if k.partition < 0 {
            bail!("kafka.partition must be 0 or more (got {})", k.partition);
        }
        let g = &self.gateway;
        for (key, rate, burst) in [
            (
                "gateway.rate_limit_per_key",
                g.rate_limit_per_key_per_sec,
                g.rate_limit_per_key_burst,
            ),
            (
                "gateway.rate_limit_per_ip",
                g.rate_limit_per_ip_per_sec,
                g.rate_limit_per_ip_burst,
            ),
        ] {
            if rate > 0 && burst == 0 {
                bail!("{key}_burst must be positive when {key}_per_sec is set (got 0)");
            }
        }
        for (key, v) in [
            ("gateway.request_timeout_ms", g.request_timeout_ms),
            ("gateway.body_limit_bytes", g.body_limit_bytes as u64),
            ("gateway.header_read_timeout_ms", g.header_read_timeout_ms),
            ("gateway.body_read_timeout_ms", g.body_read_timeout_ms),
            ("gateway.max_in_flight", g.max_in_flight as u64),
            ("gateway.ws_max_connections", g.ws_max_connections as u64),
            (
                "gateway.ws_max_connections_per_account",
                g.ws_max_connections_per_account as u64,
            ),
            (
                "gateway.ws_max_connections_per_peer",
                g.ws_max_connections_per_peer as u64,
            ),
            (
                "gateway.ws_max_subscriptions",
                g.ws_max_subscriptions as u64,
            ),
            ("gateway.ws_queue_messages", g.ws_queue_messages as u64),
            ("gateway.ws_queue_bytes", g.ws_queue_bytes as u64),
            ("gateway.ws_max_frame_bytes", g.ws_max_frame_bytes as u64),
            (
                "gateway.ws_heartbeat_interval_ms",
                g.ws_heartbeat_interval_ms,
            ),
            ("gateway.ws_idle_timeout_ms", g.ws_idle_timeout_ms),
        ] {
            positive(key, v)?;
        }
        if g.ws_idle_timeout_ms <= g.ws_heartbeat_interval_ms {
            bail!(
                "gateway.ws_idle_timeout_ms ({}) must be longer than \
                 gateway.ws_heartbeat_interval_ms ({}), or idle peers are closed between pings",
                g.ws_idle_timeout_ms,
                g.ws_heartbeat_interval_ms
            );
        }
        let d = &self.demo;
        if d.rate_per_sec == 0 || d.rate_per_sec > DEMO_RATE_PER_SEC_MAX {
            bail!(
                "demo.rate_per_sec must be 1 to {DEMO_RATE_PER_SEC_MAX} commands per second \
                 (got {})",
                d.rate_per_sec
            );
        }
        let max = crate::demo::ACCOUNTS_PER_ROLE_MAX;
        for (key, n) in [
            ("demo.providers", d.providers),
            ("demo.demanders", d.demanders),
        ] {
            if n == 0 || n > max {
                bail!("{key} must be 1 to {max} (got {n})");
            }
        }
        Ok(())
    }

    /// The pipeline options these settings imply.
    pub fn pipeline_options(&self) -> gpux_sequencer::PipelineOptions {
        gpux_sequencer::PipelineOptions {
            snapshot_every_events: self.snapshot_every_events,
            ..gpux_sequencer::PipelineOptions::default()
        }
    }
}

/// The environment layer: a lookup function and error messages naming the variable.
struct Env<'a>(&'a dyn Fn(&str) -> Option<OsString>);

impl Env<'_> {
    fn string(&self, name: &str) -> Result<Option<String>> {
        match (self.0)(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| anyhow!("{name}: the value is not valid UTF-8")),
        }
    }

    fn parse<T: FromStr>(&self, name: &str, expected: &str) -> Result<Option<T>> {
        match self.string(name)? {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| anyhow!("{name}: invalid value {v:?}: expected {expected}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;
    use std::io::Write;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["gpux"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).expect("flags parse").serve
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn no_env() -> impl Fn(&str) -> Option<OsString> {
        env(&[])
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn err(r: Result<ServeConfig>) -> String {
        format!("{:#}", r.expect_err("should fail"))
    }

    #[test]
    fn defaults_work_out_of_the_box() {
        let cfg = ServeConfig::load_with(&ServeArgs::default(), no_env()).unwrap();
        assert_eq!(cfg, ServeConfig::default());
        assert_eq!(cfg.data, PathBuf::from("./gpux-data"));
        assert_eq!(cfg.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(cfg.admin_key, None);
        assert_eq!(cfg.log.format, LogFormat::Text);
        assert_eq!(cfg.log.filter, "info");
        assert!(!cfg.kafka.enabled());
        assert!(!cfg.demo.enabled);
        assert_eq!(cfg.pipeline_options().snapshot_every_events, 1_000_000);
    }

    #[test]
    fn layers_override_in_order_defaults_file_env_flags() {
        let f = file(
            "data = \"/from/file\"\nlisten = \"127.0.0.1:1000\"\n\
             snapshot_every_events = 5\n[log]\nformat = \"json\"\nfilter = \"warn\"\n\
             [demo]\nrate_per_sec = 7\n",
        );
        let path = f.path().to_str().unwrap();
        // File only.
        let cfg = ServeConfig::load_with(&args(&["--config", path]), no_env()).unwrap();
        assert_eq!(cfg.data, PathBuf::from("/from/file"));
        assert_eq!(cfg.listen.port(), 1000);
        assert_eq!(cfg.snapshot_every_events, 5);
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(cfg.demo.rate_per_sec, 7);
        assert_eq!(
            cfg.gateway,
            GatewayLimits::default(),
            "unset keys keep defaults"
        );
        // The environment beats the file, and names the file itself.
        let e = env(&[
            ("GPUX_CONFIG", path),
            ("GPUX_LISTEN", "127.0.0.1:2000"),
            ("GPUX_LOG", "debug"),
            ("RUST_LOG", "trace"),
            ("GPUX_DEMO", "yes"),
        ]);
        let cfg = ServeConfig::load_with(&ServeArgs::default(), e).unwrap();
        assert_eq!(cfg.data, PathBuf::from("/from/file"));
        assert_eq!(cfg.listen.port(), 2000);
        assert_eq!(cfg.log.filter, "debug", "GPUX_LOG beats RUST_LOG");
        assert!(cfg.demo.enabled);
        // Flags beat both.
        let e = env(&[("GPUX_CONFIG", path), ("GPUX_LISTEN", "127.0.0.1:2000")]);
        let a = args(&[
            "--listen",
            "127.0.0.1:3000",
            "--log-format",
            "text",
            "--demo-rate",
            "9",
        ]);
        let cfg = ServeConfig::load_with(&a, e).unwrap();
        assert_eq!(cfg.listen.port(), 3000);
        assert_eq!(cfg.log.format, LogFormat::Text);
        assert_eq!(cfg.demo.rate_per_sec, 9);
        assert_eq!(cfg.snapshot_every_events, 5, "the file still applies");
    }

    #[test]
    fn rust_log_is_the_fallback_filter() {
        let cfg =
            ServeConfig::load_with(&ServeArgs::default(), env(&[("RUST_LOG", "warn")])).unwrap();
        assert_eq!(cfg.log.filter, "warn");
    }

    #[test]
    fn kafka_from_every_layer() {
        let f = file(
            "[kafka]\nbrokers = \"k1:9092\"\npartition = 2\n\
             [kafka.client]\n\"security.protocol\" = \"ssl\"\n\"linger.ms\" = \"5\"\n",
        );
        let path = f.path().to_str().unwrap();
        let cfg = ServeConfig::load_with(&args(&["--config", path]), no_env()).unwrap();
        assert!(cfg.kafka.enabled());
        assert_eq!(cfg.kafka.brokers.as_deref(), Some("k1:9092"));
        assert_eq!(cfg.kafka.partition, 2);
        assert_eq!(cfg.kafka.commands_topic, "gpux.commands");
        assert_eq!(
            cfg.kafka.client_settings(),
            vec![
                ("linger.ms".to_string(), "5".to_string()),
                ("security.protocol".to_string(), "ssl".to_string())
            ]
        );
        let a = args(&[
            "--config",
            path,
            "--kafka-option",
            "linger.ms=10",
            "--kafka",
            "k2:1",
        ]);
        let e = env(&[
            ("GPUX_KAFKA_BROKERS", "env:1"),
            ("GPUX_KAFKA_EVENTS_TOPIC", "ev"),
        ]);
        let cfg = ServeConfig::load_with(&a, e).unwrap();
        assert_eq!(cfg.kafka.brokers.as_deref(), Some("k2:1"));
        assert_eq!(cfg.kafka.events_topic, "ev");
        assert_eq!(cfg.kafka.client["linger.ms"], "10");
        assert_eq!(cfg.kafka.client["security.protocol"], "ssl");
        let k = cfg.kafka.kafka_config().expect("Kafka mode");
        assert_eq!(k.brokers, "k2:1");
        assert_eq!(k.commands_topic, "gpux.commands");
        assert_eq!(k.events_topic, "ev");
        assert_eq!(k.partition, 2);
        assert_eq!(k.client_settings, cfg.kafka.client_settings());
        assert_eq!(ServeConfig::default().kafka.kafka_config(), None);
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        for (text, key) in [
            ("lisen = \"127.0.0.1:1\"\n", "lisen"),
            ("[gateway]\nbody_limit = 5\n", "body_limit"),
            ("[kafak]\n", "kafak"),
            ("[kafka]\nbroker = \"k:1\"\n", "broker"),
        ] {
            let f = file(text);
            let path = f.path().to_str().unwrap();
            let e = err(ServeConfig::load_with(&args(&["--config", path]), no_env()));
            assert!(e.contains(path), "{e}");
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        }
    }

    #[test]
    fn invalid_values_name_the_key_and_what_is_expected() {
        let cases: &[(&str, &str)] = &[
            (
                "listen = \"nowhere\"\n",
                "expected IP:PORT such as 127.0.0.1:8080",
            ),
            ("[log]\nformat = \"xml\"\n", "`text` or `json`"),
            ("snapshot_every_events = -1\n", "snapshot_every_events"),
            (
                "snapshot_every_events = 0\n",
                "snapshot_every_events must be positive",
            ),
            (
                "[gateway]\nbody_limit_bytes = 0\n",
                "gateway.body_limit_bytes must be positive",
            ),
            (
                "[gateway]\nrate_limit_per_key_burst = 0\n",
                "gateway.rate_limit_per_key_burst",
            ),
            (
                "[gateway]\nws_idle_timeout_ms = 1000\n",
                "gateway.ws_idle_timeout_ms",
            ),
            ("[log]\nfilter = \"gpux=loud\"\n", "log.filter"),
            (
                "admin_key = \"short\"\n",
                "admin_key must be at least 16 bytes",
            ),
            (
                "[kafka]\ncommands_topic = \"a b\"\n",
                "kafka.commands_topic",
            ),
            ("[kafka]\nevents_topic = \"gpux.commands\"\n", "must differ"),
            ("[kafka]\nbrokers = \"a:1,,b:2\"\n", "kafka.brokers"),
            ("[kafka]\npartition = -1\n", "kafka.partition"),
            (
                "[demo]\nrate_per_sec = 0\n",
                "demo.rate_per_sec must be 1 to 10000",
            ),
            ("[demo]\nproviders = 100000\n", "demo.providers"),
            ("[demo]\nenabled = \"maybe\"\n", "enabled"),
        ];
        for (text, want) in cases {
            let f = file(text);
            let path = f.path().to_str().unwrap();
            let e = err(ServeConfig::load_with(&args(&["--config", path]), no_env()));
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn invalid_environment_values_name_the_variable() {
        let cases = [
            (
                "GPUX_LISTEN",
                "8080",
                "GPUX_LISTEN: invalid value \"8080\": expected a socket",
            ),
            (
                "GPUX_LOG_FORMAT",
                "yaml",
                "GPUX_LOG_FORMAT: invalid value \"yaml\"",
            ),
            ("GPUX_KAFKA_PARTITION", "x", "GPUX_KAFKA_PARTITION"),
            ("GPUX_DEMO", "sometimes", "GPUX_DEMO: invalid value"),
            ("GPUX_DEMO_RATE", "-3", "GPUX_DEMO_RATE"),
            ("GPUX_SNAPSHOT_EVERY", "1e6", "GPUX_SNAPSHOT_EVERY"),
        ];
        for (name, value, want) in cases {
            let e = err(ServeConfig::load_with(
                &ServeArgs::default(),
                env(&[(name, value)]),
            ));
            assert!(e.contains(want), "{name}={value}: {e}");
        }
        let e = err(ServeConfig::load_with(
            &ServeArgs::default(),
            env(&[("GPUX_CONFIG", "/nonexistent/gpux.toml")]),
        ));
        assert!(e.contains("/nonexistent/gpux.toml"), "{e}");
    }

    #[test]
    fn bad_flags_are_refused_by_clap() {
        let mut argv = vec!["gpux", "--listen", "nowhere"];
        assert!(Cli::try_parse_from(&argv).is_err());
        argv = vec!["gpux", "--kafka-option", "novalue"];
        assert!(Cli::try_parse_from(&argv).is_err());
        argv = vec!["gpux", "--log-format", "xml"];
        assert!(Cli::try_parse_from(&argv).is_err());
    }

    #[test]
    fn the_admin_key_is_never_printed() {
        let key = "s3cret-admin-key-0123456789";
        let cfg = ServeConfig::load_with(&args(&["--admin-key", key]), no_env()).unwrap();
        assert_eq!(cfg.admin_key.as_deref(), Some(key));
        assert!(!format!("{cfg:?}").contains(key));
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(!json.contains(key) && json.contains("<redacted>"), "{json}");
        let e = err(ServeConfig::load_with(
            &args(&["--admin-key", "tiny-secret"]),
            no_env(),
        ));
        assert!(!e.contains("tiny-secret"), "{e}");
    }

    const EXAMPLE: &str = include_str!("../docs/gpux.example.toml");

    /// The example file, with its commented-out settings (`# key = value`) enabled.
    fn example_uncommented() -> String {
        EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if is_setting(rest) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn is_setting(line: &str) -> bool {
        let Some((key, _)) = line.split_once(" = ") else {
            return false;
        };
        let key = key.trim_matches('"');
        !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.".contains(&b))
    }

    #[test]
    fn the_example_file_parses_and_equals_the_defaults() {
        let cfg = ServeConfig::from_toml(EXAMPLE).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg, ServeConfig::default());
    }

    #[test]
    fn the_example_files_commented_settings_are_valid_keys() {
        let cfg = ServeConfig::from_toml(&example_uncommented()).unwrap();
        cfg.validate().unwrap();
        assert!(cfg.admin_key.is_some());
        assert!(cfg.kafka.enabled());
        assert!(!cfg.kafka.client.is_empty());
        // Only the settings without a default were commented out.
        let reset = ServeConfig {
            admin_key: None,
            kafka: KafkaSettings {
                brokers: None,
                client: BTreeMap::new(),
                ..cfg.kafka.clone()
            },
            ..cfg
        };
        assert_eq!(reset, ServeConfig::default());
    }

    #[test]
    fn the_example_file_documents_every_key() {
        fn keys(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let name = format!("{prefix}{k}");
                match v {
                    toml::Value::Table(sub) if k != "client" => keys(&format!("{name}."), sub, out),
                    _ => out.push(name),
                }
            }
        }
        let full = ServeConfig {
            admin_key: Some("x".repeat(16)),
            kafka: KafkaSettings {
                brokers: Some("b:1".into()),
                ..KafkaSettings::default()
            },
            ..ServeConfig::default()
        };
        let mut want = Vec::new();
        keys("", &toml::Table::try_from(&full).unwrap(), &mut want);
        let mut have = Vec::new();
        let example: toml::Table = toml::from_str(&example_uncommented()).unwrap();
        keys("", &example, &mut have);
        for k in &want {
            assert!(
                have.contains(k),
                "docs/gpux.example.toml does not show `{k}`"
            );
        }
        // And every key has a comment line right above it (or above its table).
        for line in EXAMPLE.lines().filter(|l| is_setting(l)) {
            let at = EXAMPLE.find(line).unwrap();
            let before = EXAMPLE[..at].trim_end().lines().last().unwrap_or("");
            assert!(before.starts_with('#'), "`{line}` has no comment above it");
        }
    }
}
