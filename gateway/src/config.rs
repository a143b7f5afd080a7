//! The gateway's configuration: where it listens, the admin key, limits and timeouts.
//!
//! Owns [`GatewayConfig`] and its parts. Every bound the gateway enforces is a field
//! here with a documented default, so an operator can read the whole envelope of the
//! service in one place.
//!
//! [`GatewaySettings`] is the operator's view of the same bounds, as plain numbers:
//! the `[gateway]` section of gpux's configuration file. Its defaults are read off
//! [`GatewayConfig::new`] ([`GatewaySettings::of`]), so every default is written
//! once, here and in [`MarketDataConfig`]'s `Default`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::marketdata::MarketDataConfig;

/// A configuration the gateway cannot run with. The message names the key (as
/// written in the `[gateway]` section, `gateway.…`) and says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The admin key is shorter than [`GatewayConfig::ADMIN_KEY_MIN_BYTES`].
    #[error("the admin key must be at least {min} bytes")]
    AdminKeyTooShort {
        /// The shortest accepted key, bytes.
        min: usize,
    },
    /// A bound that must be positive is zero.
    #[error("{key} must be positive (got 0)")]
    NotPositive {
        /// The setting.
        key: &'static str,
    },
    /// A rate limit with a rate but no burst.
    #[error("{limit}_burst must be positive when {limit}_per_sec is set (got 0)")]
    ZeroBurst {
        /// The limit (`gateway.rate_limit_per_key` or `gateway.rate_limit_per_ip`).
        limit: &'static str,
    },
    /// A rate limit with no burst or no interval.
    #[error("a rate limit needs a positive burst and interval")]
    RateLimitEmpty,
    /// Idle WebSocket peers would be closed between two pings.
    #[error(
        "gateway.ws_idle_timeout_ms ({idle_ms}) must be longer than \
         gateway.ws_heartbeat_interval_ms ({heartbeat_ms}), or idle peers are closed \
         between pings"
    )]
    IdleBeforeHeartbeat {
        /// The idle timeout, ms.
        idle_ms: u64,
        /// The heartbeat interval, ms.
        heartbeat_ms: u64,
    },
}

/// A token-bucket rate: `burst` requests at once, then one more every
/// `replenish_interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed back to back (at least 1).
    pub burst: u32,
    /// Time to earn one more request (positive).
    pub replenish_interval: Duration,
}

impl RateLimit {
    /// `per_second` requests per second, with a burst of as many.
    pub fn per_second(per_second: u32) -> Self {
        let n = per_second.max(1);
        RateLimit {
            burst: n,
            replenish_interval: Duration::from_secs(1) / n,
        }
    }
}

/// Rate limits. `None` disables a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Per API key (each account's key, and the admin key). Default: 200 requests/s,
    /// bursts of 400.
    pub per_key: Option<RateLimit>,
    /// Per client IP address, for requests without a valid key (public endpoints,
    /// market data's REST reads included, and failed authentication). Default: 50
    /// requests/s, bursts of 100.
    pub per_ip_anonymous: Option<RateLimit>,
    /// Self-serve signups (`POST /v1/signup`) per client IP address; `None`: no
    /// self-serve signup (403 `signup_disabled`). Default: 5 an hour.
    pub signups_per_ip: Option<RateLimit>,
}

/// `n` requests an hour, all of them at once if they come together; `None` for 0.
fn per_hour(n: u32) -> Option<RateLimit> {
    (n > 0).then(|| RateLimit {
        burst: n,
        replenish_interval: Duration::from_secs(3_600) / n,
    })
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_key: Some(RateLimit {
                burst: 400,
                replenish_interval: Duration::from_millis(5),
            }),
            per_ip_anonymous: Some(RateLimit {
                burst: 100,
                replenish_interval: Duration::from_millis(20),
            }),
            signups_per_ip: per_hour(5),
        }
    }
}

/// How long completed idempotent requests are remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyConfig {
    /// A keyed request is remembered for this long in exchange time (the commands'
    /// timestamps), so a retry within it returns the original result. Default 24 h.
    pub window: Duration,
    /// At most this many keyed requests are remembered (the oldest are forgotten
    /// first). Default 100,000.
    pub max_entries: usize,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            window: Duration::from_secs(24 * 3600),
            max_entries: 100_000,
        }
    }
}

/// How much order and fill history the gateway keeps per account (open orders are
/// always kept; older history is in the ledger: `gpux replay statement|export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryConfig {
    /// Most recent fills kept per account. Default 10,000.
    pub fills_per_account: usize,
    /// Most recent closed (filled or cancelled) orders kept per account. Default 1,000.
    pub closed_orders_per_account: usize,
    /// Most recent delivery-schedule entries kept per account (as provider and as
    /// holder together). Default 10,000.
    pub schedule_per_account: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            fills_per_account: 10_000,
            closed_orders_per_account: 1_000,
            schedule_per_account: 10_000,
        }
    }
}

/// Everything the gateway needs to run.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Where to listen (port 0: any free port; see `RunningGateway::addr`).
    pub listen: SocketAddr,
    /// The operator's key for admin endpoints (`Authorization: Bearer <key>`); at
    /// least 16 bytes. Only its SHA-256 is kept in memory.
    pub admin_key: String,
    /// How long a request waits for its command to be durable and applied before
    /// answering 503 `timeout` (the client retries with the same `Idempotency-Key`).
    /// Default 10 s.
    pub request_timeout: Duration,
    /// Largest accepted request body. Default 16 KiB.
    pub body_limit_bytes: usize,
    /// How long a client may take to send a request's headers (from the first
    /// byte it sends, or from the end of its previous request on a kept-alive
    /// connection, which this therefore also closes when idle); then the connection
    /// is closed without an answer. Default 30 s.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's whole body once its headers
    /// arrived; then it is answered 408 `body_timeout` and the connection is
    /// closed. Default 30 s.
    pub body_read_timeout: Duration,
    /// Most requests waiting for their command at once; beyond it, 503 `overloaded`.
    /// Default 65,536.
    pub max_in_flight: usize,
    /// How long a graceful shutdown waits for open requests. Default 10 s.
    pub shutdown_grace: Duration,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Idempotency window.
    pub idempotency: IdempotencyConfig,
    /// Order and fill history kept in memory.
    pub history: HistoryConfig,
    /// Market data (REST and WebSocket).
    pub market_data: MarketDataConfig,
    /// Routes served beside the API on the same listener (e.g. the process's
    /// `GET /metrics`); they see no gateway state and get no auth or rate limits.
    pub extra_routes: Option<axum::Router>,
    /// The time commands are stamped with and slots are checked against: the
    /// exchange's clock (the wall clock, or a faster one for demos).
    pub time: gpux_sequencer::ExchangeClock,
    /// Where the gateway keeps its checkpoint (the file
    /// [`checkpoint::FILE_NAME`](crate::checkpoint::FILE_NAME), created if
    /// missing): a restart then follows the log from the checkpoint instead of
    /// from cmd_seq 1. `None` (the default): no checkpoint. Only used with a
    /// backend that can re-follow the log (`Backend::refollow`).
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// A checkpoint after at least this many commands since the last one (and
    /// at least [`checkpoint::SPACING_MIN`](crate::checkpoint::SPACING_MIN)
    /// after it); 0: only at shutdown. Default 100,000.
    pub checkpoint_every_commands: u64,
    /// Called once per answered request with its method, its matched route
    /// template (`/v1/orders/{order_id}`, never the raw path; `unmatched` when no
    /// route matched) and its status: for request metrics.
    pub on_request: Option<RequestObserver>,
}

/// See [`GatewayConfig::on_request`]: `(method, route, status)`.
pub type RequestObserver = std::sync::Arc<dyn Fn(&str, &str, u16) + Send + Sync>;

impl GatewayConfig {
    /// The defaults, listening on `listen` with `admin_key`.
    pub fn new(listen: SocketAddr, admin_key: impl Into<String>) -> Self {
        GatewayConfig {
            listen,
            admin_key: admin_key.into(),
            request_timeout: Duration::from_secs(10),
            body_limit_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_in_flight: 65_536,
            shutdown_grace: Duration::from_secs(10),
            rate_limit: RateLimitConfig::default(),
            idempotency: IdempotencyConfig::default(),
            history: HistoryConfig::default(),
            market_data: MarketDataConfig::default(),
            extra_routes: None,
            checkpoint_dir: None,
            checkpoint_every_commands: crate::checkpoint::EVERY_COMMANDS_DEFAULT,
            on_request: None,
            time: gpux_sequencer::ExchangeClock::default(),
        }
    }

    /// Shortest accepted admin key, bytes.
    pub const ADMIN_KEY_MIN_BYTES: usize = 16;

    /// The defaults with `settings` applied, listening on `listen` with `admin_key`.
    pub fn with_settings(
        listen: SocketAddr,
        admin_key: impl Into<String>,
        settings: &GatewaySettings,
    ) -> Self {
        let mut cfg = GatewayConfig::new(listen, admin_key);
        settings.apply_to(&mut cfg);
        cfg
    }

    /// Checks the values that have no sensible fallback.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.admin_key.len() < Self::ADMIN_KEY_MIN_BYTES {
            return Err(ConfigError::AdminKeyTooShort {
                min: Self::ADMIN_KEY_MIN_BYTES,
            });
        }
        let durations = [
            ("request_timeout", self.request_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
        ];
        let counts = [
            ("body_limit_bytes", self.body_limit_bytes),
            ("max_in_flight", self.max_in_flight),
            ("idempotency.max_entries", self.idempotency.max_entries),
        ];
        let zero = durations
            .iter()
            .find_map(|&(key, d)| d.is_zero().then_some(key))
            .or_else(|| counts.iter().find_map(|&(key, n)| (n == 0).then_some(key)));
        if let Some(key) = zero {
            return Err(ConfigError::NotPositive { key });
        }
        for r in [self.rate_limit.per_key, self.rate_limit.per_ip_anonymous]
            .into_iter()
            .flatten()
        {
            if r.burst == 0 || r.replenish_interval.is_zero() {
                return Err(ConfigError::RateLimitEmpty);
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("listen", &self.listen)
            .field("admin_key", &"<redacted>")
            .field("request_timeout", &self.request_timeout)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("rate_limit", &self.rate_limit)
            .field("idempotency", &self.idempotency)
            .field("history", &self.history)
            .field("market_data", &self.market_data)
            .field("checkpoint_dir", &self.checkpoint_dir)
            .field("checkpoint_every_commands", &self.checkpoint_every_commands)
            .field("on_request", &self.on_request.is_some())
            .finish()
    }
}

/// The `[gateway]` section of gpux's configuration file: the gateway's bounds an
/// operator sets, as plain numbers (milliseconds, bytes, counts). A rate of 0 turns
/// that rate limit off. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Requests per second per API key (and the admin key); 0: unlimited. Default 200.
    pub rate_limit_per_key_per_sec: u32,
    /// Requests per key allowed back to back. Default 400.
    pub rate_limit_per_key_burst: u32,
    /// Requests per second per client IP without a valid key (public endpoints,
    /// market data's REST reads included); 0: unlimited. Default 50.
    pub rate_limit_per_ip_per_sec: u32,
    /// Anonymous requests per IP allowed back to back. Default 100.
    pub rate_limit_per_ip_burst: u32,
    /// Self-serve signups (`POST /v1/signup`) per client IP an hour; 0: no
    /// self-serve signup. Default 5.
    pub signups_per_ip_per_hour: u32,
    /// [`GatewayConfig::request_timeout`], ms. Default 10,000.
    pub request_timeout_ms: u64,
    /// [`GatewayConfig::body_limit_bytes`]. Default 16,384.
    pub body_limit_bytes: usize,
    /// [`GatewayConfig::header_read_timeout`] (also how long an idle kept-alive
    /// connection stays open), ms. Default 30,000.
    pub header_read_timeout_ms: u64,
    /// [`GatewayConfig::body_read_timeout`], ms. Default 30,000.
    pub body_read_timeout_ms: u64,
    /// [`GatewayConfig::max_in_flight`]. Default 65,536.
    pub max_in_flight: usize,
    /// [`GatewayConfig::shutdown_grace`], ms. Default 10,000.
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
    /// A ping every this often, ms. Default 15,000.
    pub ws_heartbeat_interval_ms: u64,
    /// A `heartbeat` message with each subscribed book's `seq` every this often,
    /// ms. Default 5,000.
    pub ws_book_heartbeat_interval_ms: u64,
    /// Close a peer silent for this long, ms. Default 45,000.
    pub ws_idle_timeout_ms: u64,
    /// [`GatewayConfig::checkpoint_every_commands`]. Default 100,000.
    pub checkpoint_every_commands: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings::of(&GatewayConfig::new(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            String::new(),
        ))
    }
}

/// Whole milliseconds of `d` (saturating).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A rate limit as `(per second, burst)`; `(0, 0)` when off.
fn per_sec_and_burst(limit: Option<RateLimit>) -> (u32, u32) {
    match limit {
        None => (0, 0),
        Some(r) => {
            let nanos = r.replenish_interval.as_nanos().max(1);
            let per_sec = (1_000_000_000 / nanos).min(u128::from(u32::MAX));
            (u32::try_from(per_sec).unwrap_or(u32::MAX), r.burst)
        }
    }
}

/// The rate limit `per_sec` requests per second with bursts of `burst`; `None`
/// for a rate of 0 (off).
fn rate_limit(per_sec: u32, burst: u32) -> Option<RateLimit> {
    (per_sec > 0).then(|| RateLimit {
        burst,
        replenish_interval: Duration::from_nanos(1_000_000_000 / u64::from(per_sec)),
    })
}

impl GatewaySettings {
    /// The settings `cfg` runs with (the inverse of [`GatewaySettings::apply_to`]).
    pub fn of(cfg: &GatewayConfig) -> Self {
        let (key_rate, key_burst) = per_sec_and_burst(cfg.rate_limit.per_key);
        let (ip_rate, ip_burst) = per_sec_and_burst(cfg.rate_limit.per_ip_anonymous);
        let md = &cfg.market_data;
        GatewaySettings {
            rate_limit_per_key_per_sec: key_rate,
            rate_limit_per_key_burst: key_burst,
            rate_limit_per_ip_per_sec: ip_rate,
            rate_limit_per_ip_burst: ip_burst,
            signups_per_ip_per_hour: cfg.rate_limit.signups_per_ip.map_or(0, |r| r.burst),
            request_timeout_ms: millis(cfg.request_timeout),
            body_limit_bytes: cfg.body_limit_bytes,
            header_read_timeout_ms: millis(cfg.header_read_timeout),
            body_read_timeout_ms: millis(cfg.body_read_timeout),
            max_in_flight: cfg.max_in_flight,
            shutdown_grace_ms: millis(cfg.shutdown_grace),
            ws_max_connections: md.max_connections,
            ws_max_connections_per_account: md.max_connections_per_account,
            ws_max_connections_per_peer: md.max_connections_per_peer,
            ws_max_subscriptions: md.max_subscriptions,
            ws_queue_messages: md.queue_messages,
            ws_queue_bytes: md.queue_bytes,
            ws_max_frame_bytes: md.max_frame_bytes,
            ws_heartbeat_interval_ms: millis(md.heartbeat_interval),
            ws_book_heartbeat_interval_ms: millis(md.book_heartbeat_interval),
            ws_idle_timeout_ms: millis(md.idle_timeout),
            checkpoint_every_commands: cfg.checkpoint_every_commands,
        }
    }

    /// Sets `cfg`'s bounds to these settings (the rest of `cfg` is left as it is).
    pub fn apply_to(&self, cfg: &mut GatewayConfig) {
        cfg.rate_limit = RateLimitConfig {
            per_key: rate_limit(
                self.rate_limit_per_key_per_sec,
                self.rate_limit_per_key_burst,
            ),
            per_ip_anonymous: rate_limit(
                self.rate_limit_per_ip_per_sec,
                self.rate_limit_per_ip_burst,
            ),
            signups_per_ip: per_hour(self.signups_per_ip_per_hour),
        };
        cfg.request_timeout = Duration::from_millis(self.request_timeout_ms);
        cfg.body_limit_bytes = self.body_limit_bytes;
        cfg.header_read_timeout = Duration::from_millis(self.header_read_timeout_ms);
        cfg.body_read_timeout = Duration::from_millis(self.body_read_timeout_ms);
        cfg.max_in_flight = self.max_in_flight;
        cfg.shutdown_grace = Duration::from_millis(self.shutdown_grace_ms);
        let md = &mut cfg.market_data;
        md.max_connections = self.ws_max_connections;
        md.max_connections_per_account = self.ws_max_connections_per_account;
        md.max_connections_per_peer = self.ws_max_connections_per_peer;
        md.max_subscriptions = self.ws_max_subscriptions;
        md.queue_messages = self.ws_queue_messages;
        md.queue_bytes = self.ws_queue_bytes;
        md.max_frame_bytes = self.ws_max_frame_bytes;
        md.heartbeat_interval = Duration::from_millis(self.ws_heartbeat_interval_ms);
        md.book_heartbeat_interval = Duration::from_millis(self.ws_book_heartbeat_interval_ms);
        md.idle_timeout = Duration::from_millis(self.ws_idle_timeout_ms);
        cfg.checkpoint_every_commands = self.checkpoint_every_commands;
    }

    /// Checks the settings; the error names the key (`gateway.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (limit, rate, burst) in [
            (
                "gateway.rate_limit_per_key",
                self.rate_limit_per_key_per_sec,
                self.rate_limit_per_key_burst,
            ),
            (
                "gateway.rate_limit_per_ip",
                self.rate_limit_per_ip_per_sec,
                self.rate_limit_per_ip_burst,
            ),
        ] {
            if rate > 0 && burst == 0 {
                return Err(ConfigError::ZeroBurst { limit });
            }
        }
        if let Some(key) = self.first_zero() {
            return Err(ConfigError::NotPositive { key });
        }
        if self.ws_idle_timeout_ms <= self.ws_heartbeat_interval_ms {
            return Err(ConfigError::IdleBeforeHeartbeat {
                idle_ms: self.ws_idle_timeout_ms,
                heartbeat_ms: self.ws_heartbeat_interval_ms,
            });
        }
        Ok(())
    }

    /// The first setting that must be positive and is 0.
    fn first_zero(&self) -> Option<&'static str> {
        let as_u64 = |n: usize| n as u64;
        [
            ("gateway.request_timeout_ms", self.request_timeout_ms),
            ("gateway.body_limit_bytes", as_u64(self.body_limit_bytes)),
            (
                "gateway.header_read_timeout_ms",
                self.header_read_timeout_ms,
            ),
            ("gateway.body_read_timeout_ms", self.body_read_timeout_ms),
            ("gateway.max_in_flight", as_u64(self.max_in_flight)),
            (
                "gateway.ws_max_connections",
                as_u64(self.ws_max_connections),
            ),
            (
                "gateway.ws_max_connections_per_account",
                as_u64(self.ws_max_connections_per_account),
            ),
            (
                "gateway.ws_max_connections_per_peer",
                as_u64(self.ws_max_connections_per_peer),
            ),
            (
                "gateway.ws_max_subscriptions",
                as_u64(self.ws_max_subscriptions),
            ),
            ("gateway.ws_queue_messages", as_u64(self.ws_queue_messages)),
            ("gateway.ws_queue_bytes", as_u64(self.ws_queue_bytes)),
            (
                "gateway.ws_max_frame_bytes",
                as_u64(self.ws_max_frame_bytes),
            ),
            (
                "gateway.ws_heartbeat_interval_ms",
                self.ws_heartbeat_interval_ms,
            ),
            ("gateway.ws_idle_timeout_ms", self.ws_idle_timeout_ms),
            (
                "gateway.ws_book_heartbeat_interval_ms",
                self.ws_book_heartbeat_interval_ms,
            ),
        ]
        .into_iter()
        .find_map(|(key, v)| (v == 0).then_some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_defaults_are_the_gateways_defaults() {
        let s = GatewaySettings::default();
        assert_eq!(s.rate_limit_per_key_per_sec, 200);
        assert_eq!(s.rate_limit_per_key_burst, 400);
        assert_eq!(s.rate_limit_per_ip_per_sec, 50);
        assert_eq!(s.rate_limit_per_ip_burst, 100);
        assert_eq!(s.request_timeout_ms, 10_000);
        assert_eq!(s.ws_idle_timeout_ms, 45_000);
        assert_eq!(s.ws_book_heartbeat_interval_ms, 5_000);
        s.validate().unwrap();
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
        let fresh = GatewayConfig::new(listen, "k");
        let applied = GatewayConfig::with_settings(listen, "k", &s);
        assert_eq!(format!("{applied:?}"), format!("{fresh:?}"));
    }

    #[test]
    fn settings_round_trip_through_a_config() {
        let s = GatewaySettings {
            rate_limit_per_key_per_sec: 0,
            rate_limit_per_key_burst: 0,
            rate_limit_per_ip_per_sec: 7,
            rate_limit_per_ip_burst: 3,
            request_timeout_ms: 1_234,
            body_limit_bytes: 99,
            ws_queue_bytes: 5,
            ws_heartbeat_interval_ms: 10,
            ws_idle_timeout_ms: 11,
            ws_book_heartbeat_interval_ms: 12,
            ..GatewaySettings::default()
        };
        let cfg = GatewayConfig::with_settings(SocketAddr::from((Ipv4Addr::LOCALHOST, 1)), "k", &s);
        assert_eq!(cfg.rate_limit.per_key, None);
        assert_eq!(cfg.market_data.queue_bytes, 5);
        assert_eq!(
            cfg.market_data.book_heartbeat_interval,
            Duration::from_millis(12)
        );
        assert_eq!(GatewaySettings::of(&cfg), s);
    }

    #[test]
    fn invalid_settings_name_the_key() {
        let bad = |f: fn(&mut GatewaySettings)| {
            let mut s = GatewaySettings::default();
            f(&mut s);
            s.validate().unwrap_err().to_string()
        };
        assert_eq!(
            bad(|s| s.body_limit_bytes = 0),
            "gateway.body_limit_bytes must be positive (got 0)"
        );
        assert!(bad(|s| s.ws_book_heartbeat_interval_ms = 0)
            .starts_with("gateway.ws_book_heartbeat_interval_ms"));
        assert!(
            bad(|s| s.rate_limit_per_ip_burst = 0).starts_with("gateway.rate_limit_per_ip_burst")
        );
        assert!(bad(|s| s.ws_idle_timeout_ms = 15_000)
            .starts_with("gateway.ws_idle_timeout_ms (15000)"));
        let mut cfg = GatewayConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 1)), "short");
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::AdminKeyTooShort { min: 16 })
        );
        cfg.admin_key = "k".repeat(16);
        cfg.validate().unwrap();
        cfg.max_in_flight = 0;
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::NotPositive {
                key: "max_in_flight"
            })
        );
    }
}
