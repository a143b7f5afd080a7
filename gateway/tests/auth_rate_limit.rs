//! Rate limits: per key, and per address for requests without a valid key; a
//! refusal is 429 `rate_limited` with `Retry-After`, and submits nothing.

mod common;

use std::time::Duration;

use common::{config, Harness, ADMIN};
use gpux_gateway::RateLimit;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_limit_gets_429_with_retry_after() {
    let mut cfg = config();
    // Three requests per key, then one per hour: deterministic within a test.
    let slow = RateLimit {
        burst: 3,
        replenish_interval: Duration::from_secs(3600),
    };
    cfg.rate_limit.per_key = Some(RateLimit {
        burst: 1000,
        replenish_interval: Duration::from_secs(3600),
    });
    cfg.rate_limit.per_ip_anonymous = Some(slow);
    let h = Harness::start_with(cfg).await;
    let (_, key) = h.account().await;
    for _ in 0..3 {
        h.get("/v1/markets", None).await.expect(200, None);
    }
    let r = h.get("/v1/markets", None).await;
    r.expect(429, Some("rate_limited"));
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Failed authentication counts against the address, too.
    h.get("/v1/balances", Some("gpux_wrong"))
        .await
        .expect(429, Some("rate_limited"));
    // A valid key has its own bucket.
    h.get("/v1/balances", Some(&key)).await.expect(200, None);
    h.stop().await;

    let mut cfg = config();
    cfg.rate_limit.per_key = Some(slow);
    let h = Harness::start_with(cfg).await;
    // The admin key spends 1 (create account).
    let (_, key) = h.account().await;
    for _ in 0..3 {
        h.get("/v1/balances", Some(&key)).await.expect(200, None);
    }
    let (head, inbox) = h.ledger_head();
    let r = h
        .post("/v1/withdrawals", Some(&key), json!({"amount": "1"}))
        .await;
    r.expect(429, Some("rate_limited"));
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(
        h.ledger_head(),
        (head, inbox),
        "a limited request submits nothing"
    );
    // Other keys are not affected.
    h.get("/v1/markets", None).await.expect(200, None);
    h.get("/v1/accounts/1/balances", Some(ADMIN))
        .await
        .expect(200, None);
    h.stop().await;
}

/// Market data's REST reads are public, and limited per address like every
/// request without a key: a burst of `depth=1000` reads from one address is cut
/// off with 429 `rate_limited` and `Retry-After`; a valid key has its own bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_market_data_is_limited_per_address() {
    let mut cfg = config();
    cfg.rate_limit.per_key = Some(RateLimit {
        burst: 1000,
        replenish_interval: Duration::from_secs(3600),
    });
    // Four requests per address, then one an hour.
    cfg.rate_limit.per_ip_anonymous = Some(RateLimit {
        burst: 4,
        replenish_interval: Duration::from_secs(3600),
    });
    let h = Harness::start_with(cfg).await;
    // The admin key spends its own bucket, not the address's.
    h.list_market().await;
    let (_, key) = h.account().await;
    let reads = [
        common::md_path("depth?depth=1000"),
        common::md_path("trades"),
        common::md_path("ticker"),
        common::md_path("candles"),
    ];
    for path in &reads {
        h.get(path, None).await.expect(200, None);
    }
    for path in &reads {
        let r = h.get(path, None).await;
        r.expect(429, Some("rate_limited"));
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry >= 1, "{path}");
    }
    // The address's bucket is shared with the other public endpoints.
    h.get("/v1/markets", None)
        .await
        .expect(429, Some("rate_limited"));
    // A valid key reads market data from its own bucket.
    for path in &reads {
        h.get(path, Some(&key)).await.expect(200, None);
    }
    h.stop().await;
}
