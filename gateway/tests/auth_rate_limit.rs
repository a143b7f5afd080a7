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

/// Every rate-limited answer says where its bucket stands (`RateLimit-Limit`,
/// `-Remaining`, `-Reset`), a 429 included; `GET /v1/limits` gives the configured
/// limits; health is not limited and carries none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_ratelimit_headers_and_limits_are_published() {
    let mut cfg = config();
    cfg.rate_limit.per_key = Some(RateLimit {
        burst: 5,
        replenish_interval: Duration::from_secs(10),
    });
    cfg.rate_limit.per_ip_anonymous = Some(RateLimit {
        burst: 3,
        replenish_interval: Duration::from_secs(60),
    });
    let h = Harness::start_with(cfg).await;
    let header = |r: &common::Resp, name: &str| -> u64 {
        r.headers[name].to_str().unwrap().parse().unwrap()
    };
    let r = h.get("/v1/limits", None).await;
    r.expect(200, None);
    assert_eq!(
        r.body["rest"]["per_key"],
        json!({"burst": 5, "replenish_interval_ms": 10_000})
    );
    assert_eq!(
        r.body["rest"]["per_ip_anonymous"],
        json!({"burst": 3, "replenish_interval_ms": 60_000})
    );
    assert_eq!(r.body["websocket"]["subscriptions_max"], 32);
    let triple = |r: &common::Resp| {
        (
            header(r, "ratelimit-limit"),
            header(r, "ratelimit-remaining"),
            header(r, "ratelimit-reset"),
        )
    };
    assert_eq!(triple(&r), (3, 2, 60));
    let r = h.get("/v1/markets", None).await;
    assert_eq!(triple(r.expect(200, None)), (3, 1, 120));
    let r = h.get("/v1/markets/h100-sxm.us-east/slots", None).await;
    assert_eq!(
        triple(&r),
        (3, 0, 180),
        "market data counts against the same bucket"
    );
    let r = h.get("/v1/time", None).await;
    assert_eq!(triple(r.expect(429, Some("rate_limited"))), (3, 0, 180));
    let health = h.get("/v1/health", None).await;
    assert!(!health.headers.contains_key("ratelimit-limit"));
    // A key's own bucket; the admin spent one creating the account.
    let (_, key) = h.account().await;
    let r = h.get("/v1/balances", Some(&key)).await;
    assert_eq!(triple(r.expect(200, None)), (5, 4, 10));
    h.stop().await;
}

/// `GET /v1/time` is the gateway's clock in nanoseconds, milliseconds and ISO 8601.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_time_in_three_forms() {
    let h = Harness::start().await;
    let r = h.get("/v1/time", None).await;
    r.expect(200, None);
    let ns = r.body["ts_ns"].as_u64().unwrap();
    assert_eq!(r.body["ts_ms"].as_u64().unwrap(), ns / 1_000_000);
    let iso = r.body["iso"].as_str().unwrap();
    let slot = gpux_engine::slot::format_slot(ns / 1_000_000_000 / 3600 * 3600);
    assert_eq!(&iso[..13], &slot[..13], "{iso}");
    assert_eq!(iso.len(), "2026-12-07T09:00:00.123Z".len(), "{iso}");
    h.stop().await;
}

/// A market says what it trades for what: the GPU model's hour for USD, with its
/// tick, lot and price and size bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_metadata_says_base_quote_and_bounds() {
    let h = Harness::start().await;
    h.list_market().await;
    let one = h.get("/v1/markets/h100-sxm.us-east", None).await;
    let list = h.get("/v1/markets", None).await;
    for m in [
        &one.expect(200, None).body,
        &list.expect(200, None).body["markets"][0],
    ] {
        assert_eq!(m["base"], "h100-sxm", "{m}");
        assert_eq!(m["base_unit"], "gpu_hour");
        assert_eq!(m["region"], "us-east");
        assert_eq!(m["quote"], "USD");
        for k in [
            "tick_size",
            "lot_size",
            "min_price",
            "max_price",
            "max_order_quantity",
        ] {
            assert!(m[k].is_string(), "{k}: {m}");
        }
    }
    h.stop().await;
}

/// Self-serve signup: an account with no funds and its key, through the log;
/// limited per address by its own bucket; 403 where the operator turned it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_opens_an_empty_account_and_is_limited_per_address() {
    let mut cfg = config();
    cfg.rate_limit.signups_per_ip = Some(RateLimit {
        burst: 2,
        replenish_interval: Duration::from_secs(1800),
    });
    let h = Harness::start_with(cfg).await;
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let r = h.post("/v1/signup", None, json!(null)).await;
        r.expect(201, None);
        let key = r.body["api_key"].as_str().unwrap().to_owned();
        let b = h.get("/v1/balances", Some(&key)).await;
        b.expect(200, None);
        assert_eq!(b.body["account"], r.body["account"]);
        assert_eq!(b.body["usd"]["available"], "0.000000", "no funds");
        accounts.push(r.body["account"].as_u64().unwrap());
    }
    assert_ne!(accounts[0], accounts[1]);
    let r = h.post("/v1/signup", None, json!(null)).await;
    r.expect(429, Some("rate_limited"));
    assert_eq!(r.headers["ratelimit-limit"], "2");
    // The admin (and so every gateway following the log) knows the new accounts.
    h.get(
        &format!("/v1/accounts/{}/balances", accounts[1]),
        Some(ADMIN),
    )
    .await
    .expect(200, None);
    h.stop().await;

    let mut cfg = config();
    cfg.rate_limit.signups_per_ip = None;
    let h = Harness::start_with(cfg).await;
    h.post("/v1/signup", None, json!(null))
        .await
        .expect(403, Some("signup_disabled"));
    h.stop().await;
}
