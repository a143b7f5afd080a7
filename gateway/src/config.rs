//! The gateway's configuration: where it listens, the admin key, limits and timeouts.
//!
//! Owns [`GatewayConfig`] and its parts. Every bound the gateway enforces is a field
//! here with a documented default, so an operator can read the whole envelope of the
//! service in one place.

use std::net::SocketAddr;
use std::time::Duration;

use crate::marketdata::MarketDataConfig;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Most recent fills kept per account. Default 10,000.
    pub fills_per_account: usize,
    /// Most recent closed (filled or cancelled) orders kept per account. Default 1,000.
    pub closed_orders_per_account: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            fills_per_account: 10_000,
            closed_orders_per_account: 1_000,
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
            on_request: None,
        }
    }

    /// Shortest accepted admin key, bytes.
    pub const ADMIN_KEY_MIN_BYTES: usize = 16;

    /// Checks the values that have no sensible fallback.
    pub fn validate(&self) -> Result<(), String> {
        if self.admin_key.len() < Self::ADMIN_KEY_MIN_BYTES {
            return Err(format!(
                "the admin key must be at least {} bytes",
                Self::ADMIN_KEY_MIN_BYTES
            ));
        }
        if self.request_timeout.is_zero() {
            return Err("request_timeout must be positive".into());
        }
        if self.header_read_timeout.is_zero() || self.body_read_timeout.is_zero() {
            return Err("header_read_timeout and body_read_timeout must be positive".into());
        }
        if self.body_limit_bytes == 0 || self.max_in_flight == 0 {
            return Err("body_limit_bytes and max_in_flight must be positive".into());
        }
        for r in [self.rate_limit.per_key, self.rate_limit.per_ip_anonymous]
            .into_iter()
            .flatten()
        {
            if r.burst == 0 || r.replenish_interval.is_zero() {
                return Err("a rate limit needs a positive burst and interval".into());
            }
        }
        if self.idempotency.max_entries == 0 {
            return Err("idempotency.max_entries must be positive".into());
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
            .field("on_request", &self.on_request.is_some())
            .finish()
    }
}
