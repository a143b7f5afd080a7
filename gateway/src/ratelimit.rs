//! Rate limits: one token bucket per API key, and one per client IP address for
//! requests without a valid key (public endpoints — market data's REST reads too —
//! and failed authentication).
//!
//! Owns [`RateLimiters`]. A refused request gets 429 `rate_limited` with
//! `Retry-After` (whole seconds, at least 1) and is not looked at further: it
//! submits nothing. Buckets of keys not seen for a while are dropped by
//! [`RateLimiters::forget_idle`], which the server calls periodically, so memory is
//! bounded by the number of recently active keys and addresses.
//!
//! Every answer of a rate-limited request — 429s included — says where its bucket
//! stands, in the headers of the IETF RateLimit draft: `RateLimit-Limit` (the
//! bucket's size: requests allowed back to back), `RateLimit-Remaining` (requests
//! left in it now) and `RateLimit-Reset` (whole seconds until it is full again).
//! The check records the bucket's state in the request's [`RateSlot`], which the
//! [`headers`] middleware turns into the headers of the answer.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Extensions, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::auth::Principal;
use crate::config::{RateLimit, RateLimitConfig};
use crate::error::ApiError;

fn quota(r: RateLimit) -> Option<Quota> {
    let burst = std::num::NonZeroU32::new(r.burst)?;
    Some(Quota::with_period(r.replenish_interval)?.allow_burst(burst))
}

/// A keyed limiter that reports the bucket's state on every check.
type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

fn keyed<K: std::hash::Hash + Eq + Clone>(q: Quota) -> Keyed<K> {
    RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>()
}

/// Where a request's bucket stands after it: the `RateLimit-*` headers' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// Requests allowed back to back (the burst).
    pub limit: u32,
    /// Requests left in the bucket now.
    pub remaining: u32,
    /// Whole seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateState {
    fn of(s: &StateSnapshot) -> Self {
        let q = s.quota();
        let limit = q.burst_size().get();
        let remaining = s.remaining_burst_capacity();
        RateState {
            limit,
            remaining,
            reset_secs: ceil_secs(q.replenish_interval() * (limit - remaining.min(limit))),
        }
    }
}

/// A request's slot for its bucket's state, put in its extensions by [`headers`]
/// and filled by the check.
#[derive(Debug, Clone, Default)]
pub struct RateSlot(Arc<Mutex<Option<RateState>>>);

fn record(ext: &Extensions, state: RateState) {
    if let Some(slot) = ext.get::<RateSlot>() {
        *slot
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(state);
    }
}

/// Middleware: the `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
/// headers on the answer of every request a limiter checked.
pub async fn headers(mut req: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    let state = *slot
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(s) = state {
        let h = resp.headers_mut();
        h.insert("ratelimit-limit", HeaderValue::from(s.limit));
        h.insert("ratelimit-remaining", HeaderValue::from(s.remaining));
        h.insert("ratelimit-reset", HeaderValue::from(s.reset_secs));
    }
    resp
}

/// The gateway's rate limiters.
pub struct RateLimiters {
    per_key: Option<Keyed<Principal>>,
    per_ip: Option<Keyed<IpAddr>>,
    signups: Option<Keyed<IpAddr>>,
    clock: DefaultClock,
    cfg: RateLimitConfig,
}

impl std::fmt::Debug for RateLimiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiters")
            .field("per_key", &self.per_key.as_ref().map(|l| l.len()))
            .field("per_ip", &self.per_ip.as_ref().map(|l| l.len()))
            .finish()
    }
}

fn refused(wait: Duration) -> ApiError {
    let secs = ceil_secs(wait);
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
            per_key: cfg.per_key.and_then(quota).map(keyed),
            per_ip: cfg.per_ip_anonymous.and_then(quota).map(keyed),
            signups: cfg.signups_per_ip.and_then(quota).map(keyed),
            clock: DefaultClock::default(),
            cfg: cfg.clone(),
        }
    }

    /// The limits as configured.
    pub fn config(&self) -> &RateLimitConfig {
        &self.cfg
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        l: &Keyed<K>,
        key: &K,
        ext: &Extensions,
    ) -> Result<(), ApiError> {
        match l.check_key(key) {
            Ok(s) => {
                record(ext, RateState::of(&s));
                Ok(())
            }
            Err(n) => {
                let wait = n.wait_time_from(self.clock.now());
                let q = n.quota();
                let limit = q.burst_size().get();
                record(
                    ext,
                    RateState {
                        limit,
                        remaining: 0,
                        reset_secs: ceil_secs(q.replenish_interval() * limit).max(1),
                    },
                );
                Err(refused(wait))
            }
        }
    }

    /// Takes one request from `principal`'s bucket; records the bucket's state in
    /// the request's [`RateSlot`] (in `ext`), if it has one.
    pub fn check_key(&self, principal: Principal, ext: &Extensions) -> Result<(), ApiError> {
        match &self.per_key {
            Some(l) => self.check(l, &principal, ext),
            None => Ok(()),
        }
    }

    /// Takes one request from the bucket of an address without a valid key; records
    /// the bucket's state like [`check_key`](Self::check_key).
    pub fn check_ip(&self, ip: Option<IpAddr>, ext: &Extensions) -> Result<(), ApiError> {
        match (&self.per_ip, ip) {
            (Some(l), Some(ip)) => self.check(l, &ip, ext),
            _ => Ok(()),
        }
    }

    /// Takes one signup from the address's signup bucket (besides its request
    /// bucket); 403 `signup_disabled` when self-serve signup is off.
    pub fn check_signup(&self, ip: Option<IpAddr>, ext: &Extensions) -> Result<(), ApiError> {
        match (&self.signups, ip) {
            (None, _) => Err(ApiError::forbidden(
                "self-serve signup is off on this exchange: ask its operator for an account",
            )
            .with_code("signup_disabled")),
            (Some(l), Some(ip)) => self.check(l, &ip, ext),
            (Some(_), None) => Ok(()),
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
        if let Some(l) = &self.signups {
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
            signups_per_ip: None,
        });
        let p = Principal::Account(1);
        let mut ext = Extensions::new();
        let slot = RateSlot::default();
        ext.insert(slot.clone());
        let state = || slot.0.lock().unwrap().unwrap();
        assert!(l.check_key(p, &ext).is_ok());
        assert_eq!(
            state(),
            RateState {
                limit: 2,
                remaining: 1,
                reset_secs: 3600
            }
        );
        assert!(l.check_key(p, &ext).is_ok());
        assert_eq!((state().remaining, state().reset_secs), (0, 7200));
        let e = l.check_key(p, &ext).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.retry_after_secs.unwrap() >= 1);
        assert_eq!(state().remaining, 0);
        assert!(l.check_key(Principal::Account(2), &ext).is_ok());
        assert_eq!(state().remaining, 1);
        let none = Extensions::new();
        assert!(l
            .check_ip(Some("127.0.0.1".parse().unwrap()), &none)
            .is_ok());
    }
}
