//! Rate limits: one token bucket per API key, and one per client IP address for
//! requests without a valid key (public endpoints — market data's REST reads too —
//! and failed authentication).
//!
//! Owns [`RateLimiters`]. A refused request gets 429 `rate_limited` with
//! `Retry-After` (whole seconds, at least 1) and is not looked at further: it
//! submits nothing. Buckets of keys not seen for a while are dropped by
//! [`RateLimiters::forget_idle`], which the server calls periodically, so memory is
//! bounded by the number of recently active keys and addresses.

use std::net::IpAddr;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::Principal;
use crate::config::{RateLimit, RateLimitConfig};
use crate::error::ApiError;

fn quota(r: RateLimit) -> Option<Quota> {
    let burst = std::num::NonZeroU32::new(r.burst)?;
    Some(Quota::with_period(r.replenish_interval)?.allow_burst(burst))
}

/// The gateway's rate limiters.
pub struct RateLimiters {
    per_key: Option<DefaultKeyedRateLimiter<Principal>>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiters")
            .field("per_key", &self.per_key.as_ref().map(|l| l.len()))
            .field("per_ip", &self.per_ip.as_ref().map(|l| l.len()))
            .finish()
    }
}

fn refused(wait: std::time::Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests from this key or address; retry after the number of seconds in Retry-After",
    )
    .retry_after(secs.max(1))
}

impl RateLimiters {
    /// Limiters as configured (a `None` rate disables that limiter).
    pub fn new(cfg: &RateLimitConfig) -> Self {
        RateLimiters {
            per_key: cfg.per_key.and_then(quota).map(RateLimiter::keyed),
            per_ip: cfg.per_ip_anonymous.and_then(quota).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `principal`'s bucket.
    pub fn check_key(&self, principal: Principal) -> Result<(), ApiError> {
        match &self.per_key {
            Some(l) => l
                .check_key(&principal)
                .map_err(|n| refused(n.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    /// Takes one request from the bucket of an address without a valid key.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        match (&self.per_ip, ip) {
            (Some(l), Some(ip)) => l
                .check_key(&ip)
                .map_err(|n| refused(n.wait_time_from(self.clock.now()))),
            _ => Ok(()),
        }
    }

    /// Drops the buckets of keys and addresses that are full again (idle).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_key {
            l.retain_recent();
        }
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_allowed_then_refused_with_retry_after() {
        let l = RateLimiters::new(&RateLimitConfig {
            per_key: Some(RateLimit {
                burst: 2,
                replenish_interval: Duration::from_secs(3600),
            }),
            per_ip_anonymous: None,
        });
        let p = Principal::Account(1);
        assert!(l.check_key(p).is_ok());
        assert!(l.check_key(p).is_ok());
        let e = l.check_key(p).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.retry_after_secs.unwrap() >= 1);
        assert!(l.check_key(Principal::Account(2)).is_ok());
        assert!(l.check_ip(Some("127.0.0.1".parse().unwrap())).is_ok());
    }
}
