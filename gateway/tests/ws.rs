//! The `/v1/ws` protocol over real sockets: acks and errors, trades and ticker
//! channels, the private `orders` channel's isolation, lagging subscribers
//! (resync snapshot; close 4000 with private updates), heartbeats, limits, shutdown.

#[path = "support/md.rs"]
mod md;

use std::time::Duration;

use gpux_gateway::marketdata::MarketDataConfig;
use gpux_gateway::testkit::{MdGateway, Options};
use md::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn start_with(
    md: MarketDataConfig,
    send_buffer: Option<u32>,
) -> (tempfile::TempDir, MdGateway) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        md,
        send_buffer,
        ..Options::default()
    };
    let gw = MdGateway::start(dir.path(), opts).await.unwrap();
    for c in setup_commands() {
        gw.submit(c).await.unwrap();
    }
    (dir, gw)
}

fn book() -> String {
    format!("book.{MARKET}.{SLOT_NAME}")
}

fn order(account: u64, side: &str, price: &str, qty: &str) -> Value {
    json!({"type":"place_order","account":account,"market":MARKET,"slot":SLOT,"side":side,"price":price,"quantity":qty})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one connection's conversation, request by request, in order
async fn every_request_gets_an_ack_or_an_error() {
    let cfg = MarketDataConfig {
        max_frame_bytes: 16 * 1024,
        ..MarketDataConfig::default()
    };
    let (_dir, gw) = start_with(cfg, None).await;
    let mut c = Client::connect(&gw.ws_url()).await;
    let err = |code: &str| json!({"type": "error", "code": code});
    let cases: Vec<(Message, Value)> = vec![
        (Message::text("not json"), err("malformed_request")),
        (Message::text("[1,2]"), err("malformed_request")),
        (
            Message::text(r#"{"op":"subscribe"}"#),
            err("malformed_request"),
        ),
        (
            Message::text(r#"{"op":"subscribe","channel":"x","extra":1}"#),
            err("malformed_request"),
        ),
        (
            Message::text(r#"{"op":"subscribe","channel":"x","id":{"a":1}}"#),
            err("malformed_request"),
        ),
        (
            Message::text(r#"{"op":"fly","id":7}"#),
            json!({"type":"error","code":"unknown_op","id":7}),
        ),
        (
            Message::text(r#"{"op":"subscribe","channel":"candles.h100-sxm.us-east"}"#),
            err("unknown_channel"),
        ),
        (
            Message::text(r#"{"op":"subscribe","channel":"nodots"}"#),
            err("unknown_channel"),
        ),
        (
            Message::text(
                r#"{"op":"subscribe","channel":"book.NOT-A-MARKET.2026-01-02T02:00Z","id":"a"}"#,
            ),
            json!({"type":"error","code":"unknown_market","channel":"book.NOT-A-MARKET.2026-01-02T02:00Z","id":"a"}),
        ),
        (
            Message::text(
                r#"{"op":"subscribe","channel":"trades.a100.eu-west.2026-01-02T02:00Z"}"#,
            ),
            err("unknown_market"),
        ),
        (
            Message::text(r#"{"op":"subscribe","channel":"curve.a100.eu-west"}"#),
            err("unknown_market"),
        ),
        (
            Message::text(r#"{"op":"subscribe","channel":"book.h100-sxm.us-east"}"#),
            err("invalid_slot"),
        ),
        (
            Message::text(
                r#"{"op":"subscribe","channel":"book.h100-sxm.us-east.2026-01-01T02:30Z"}"#,
            ),
            err("invalid_slot"),
        ),
        (
            // Beyond the market's week-long horizon: no book, and none is made.
            Message::text(
                r#"{"op":"subscribe","channel":"book.h100-sxm.us-east.2026-03-01T00:00Z"}"#,
            ),
            err("slot_not_open"),
        ),
        (
            Message::text(r#"{"op":"subscribe","channel":"orders"}"#),
            err("unauthorized"),
        ),
        (
            Message::text(r#"{"op":"auth","key":"wrong"}"#),
            err("unauthorized"),
        ),
        (Message::text(r#"{"op":"auth"}"#), err("malformed_request")),
        (
            Message::text(
                r#"{"op":"unsubscribe","channel":"ticker.h100-sxm.us-east.2026-01-02T02:00Z"}"#,
            ),
            err("not_subscribed"),
        ),
        (
            Message::binary(vec![1u8, 2, 3]),
            err("binary_not_supported"),
        ),
        (
            Message::text(format!(r#"{{"op":"ping","id":"{}"}}"#, "x".repeat(5_000))),
            err("request_too_large"),
        ),
        (
            Message::text(r#"{"op":"ping","id":3}"#),
            json!({"type":"pong","id":3}),
        ),
    ];
    for (req, want) in cases {
        let shown = format!("{req:?}");
        c.send_raw(req).await;
        let got = c.recv().await;
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&got[k], v, "{shown}: {got}");
        }
        if got["type"] == "error" {
            assert!(!got["message"].as_str().unwrap().is_empty(), "{got}");
        }
    }
    // Subscribe, subscribe again, unsubscribe.
    let sub = json!({"op":"subscribe","channel":book(),"id":1});
    assert_eq!(
        c.request(sub.clone()).await,
        json!({"type":"subscribed","channel":book(),"id":1})
    );
    assert_eq!(c.recv().await["type"], "snapshot");
    assert_eq!(c.request(sub).await["code"], "already_subscribed");
    let unsub = json!({"op":"unsubscribe","channel":book()});
    assert_eq!(
        c.request(unsub).await,
        json!({"type":"unsubscribed","channel":book()})
    );
    // Still usable after all of that; then a frame over the hard limit closes it.
    assert_eq!(c.request(json!({"op":"ping"})).await["type"], "pong");
    c.send_raw(Message::text("x".repeat(20_000))).await;
    let (code, reason) = c.closed().await.expect("a close frame");
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("16384"), "{reason}");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_and_ticker_channels() {
    let (_dir, gw) = start_with(MarketDataConfig::default(), None).await;
    let mut c = Client::connect(&gw.ws_url()).await;
    let trades = format!("trades.{MARKET}.{SLOT_NAME}");
    let ticker = format!("ticker.{MARKET}.{SLOT_NAME}");
    assert_eq!(
        c.request(json!({"op":"subscribe","channel":trades})).await["type"],
        "subscribed"
    );
    let snap = c.recv().await;
    assert_eq!(
        snap,
        json!({"type":"snapshot","channel":trades,"market":MARKET,"slot":SLOT_NAME,"trades":[]})
    );
    assert_eq!(
        c.request(json!({"op":"subscribe","channel":ticker})).await["type"],
        "subscribed"
    );
    let snap = c.recv().await;
    assert_eq!(
        (&snap["type"], &snap["last_price"], &snap["volume_24h"]),
        (&json!("snapshot"), &Value::Null, &json!("0.0"))
    );

    gw.submit(env(T0 + 10 * SEC, order(1, "sell", "2.40", "4")))
        .await
        .unwrap();
    gw.submit(env(T0 + 11 * SEC, order(1, "sell", "2.45", "3")))
        .await
        .unwrap();
    gw.submit(env(T0 + 12 * SEC, order(2, "buy", "2.45", "5.5")))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = c.recv().await;
        if m["channel"] == trades {
            assert_eq!(m["type"], "update");
            got.extend(m["trades"].as_array().unwrap().iter().cloned());
        }
    }
    assert_eq!(
        got,
        vec![
            json!({"trade":1,"seq":13,"ts_ns":T0 + 12 * SEC,"ts_ms":(T0 + 12 * SEC) / 1_000_000,"price":"2.40","quantity":"4.0","taker_side":"buy"}),
            json!({"trade":2,"seq":13,"ts_ns":T0 + 12 * SEC,"ts_ms":(T0 + 12 * SEC) / 1_000_000,"price":"2.45","quantity":"1.5","taker_side":"buy"}),
        ]
    );
    let t = c
        .recv_until(|m| m["channel"] == ticker && m["last_price"] == "2.45")
        .await;
    assert_eq!(t["type"], "update");
    assert_eq!(t["volume_24h"], "5.5");
    assert_eq!(t["best_ask"], "2.45");
    assert_eq!(t["best_ask_quantity"], "1.5");
    assert_eq!(t["best_bid"], Value::Null);
    assert_eq!(t["seq"], 13);

    // Unsubscribed from trades: the next trade's flush brings a ticker but no trades.
    assert_eq!(
        c.request(json!({"op":"unsubscribe","channel":trades}))
            .await["type"],
        "unsubscribed"
    );
    gw.submit(env(T0 + 13 * SEC, order(3, "buy", "2.45", "1")))
        .await
        .unwrap();
    let m = c.recv().await;
    assert_eq!(
        (&m["channel"], &m["last_quantity"]),
        (&json!(ticker), &json!("1.0")),
        "{m}"
    );
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one story of three subscribers: each step's messages follow from the trades before it
async fn orders_channel_shows_only_the_subscribers_own_orders_and_fills() {
    let (_dir, gw) = start_with(MarketDataConfig::default(), None).await;
    // Account 1 by header, account 2 by an auth message, account 3 by header.
    let mut c1 = Client::connect_with_key(&gw.ws_url(), Some("key-1"))
        .await
        .unwrap();
    let mut c2 = Client::connect(&gw.ws_url()).await;
    let mut c3 = Client::connect_with_key(&gw.ws_url(), Some("key-3"))
        .await
        .unwrap();
    assert_eq!(
        Client::connect_with_key(&gw.ws_url(), Some("nope"))
            .await
            .err(),
        Some(401)
    );
    let sub = json!({"op":"subscribe","channel":"orders"});
    assert_eq!(c1.request(sub.clone()).await["type"], "subscribed");
    assert_eq!(c2.request(sub.clone()).await["code"], "unauthorized");
    assert_eq!(
        c2.request(json!({"op":"auth","key":"key-2","id":"a"}))
            .await,
        json!({"type":"authenticated","account":2,"id":"a"})
    );
    assert_eq!(
        c2.request(json!({"op":"auth","key":"key-2"})).await["code"],
        "already_authenticated"
    );
    assert_eq!(c2.request(sub.clone()).await["type"], "subscribed");
    assert_eq!(c3.request(sub.clone()).await["type"], "subscribed");
    let mut admin = Client::connect_with_key(&gw.ws_url(), Some("admin-key"))
        .await
        .unwrap();
    assert_eq!(admin.request(sub.clone()).await["code"], "forbidden");

    let mut ask = order(1, "sell", "2.40", "4");
    ask["client_order_id"] = json!("ask-1");
    gw.submit(env(T0 + 10 * SEC, ask)).await.unwrap();
    gw.submit(env(T0 + 11 * SEC, order(2, "buy", "2.40", "5")))
        .await
        .unwrap();
    gw.submit(env(
        T0 + 12 * SEC,
        json!({"type":"cancel_order","account":2,"order_id":2}),
    ))
    .await
    .unwrap();
    gw.submit(env(
        T0 + 13 * SEC,
        json!({"type":"cancel_order","account":1,"order_id":2}),
    ))
    .await
    .unwrap();

    // Account 1: its order accepted and rested, its maker fill, its rejected cancel.
    let mut seen1 = Vec::new();
    loop {
        let m = c1.recv().await;
        assert_eq!(m["channel"], "orders");
        let last = m["type"] == "order" && m["event"]["type"] == "order_rejected";
        seen1.push(m);
        if last {
            break;
        }
    }
    let kinds: Vec<String> = seen1
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["type"].as_str().unwrap(),
                m["event"]["type"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "order:order_accepted",
            "order:order_rested",
            "fill:",
            "order:order_rejected"
        ]
    );
    for m in &seen1 {
        if m["type"] == "order" {
            assert_eq!(m["event"]["account"], 1, "{m}");
        }
    }
    assert_eq!(seen1[0]["event"]["client_order_id"], "ask-1");
    assert_eq!(
        seen1[2],
        json!({"type":"fill","channel":"orders","seq":12,"ts_ns":T0 + 11 * SEC,"ts_ms":(T0 + 11 * SEC) / 1_000_000,"fill":{
            "trade":1,"market":MARKET,"slot":SLOT_NAME,"order":1,"side":"sell","liquidity":"maker","price":"2.40",
            "quantity":"4.0","fee":"0.009600","remaining":"0.0"}})
    );
    assert_eq!(seen1[3]["event"]["reason"], "unknown_order");

    // Account 2: accepted, taker fill, rest of 1.0 rested, cancelled.
    let mut seen2 = Vec::new();
    while seen2.len() < 4 {
        seen2.push(c2.recv().await);
    }
    let kinds: Vec<String> = seen2
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["type"].as_str().unwrap(),
                m["event"]["type"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "order:order_accepted",
            "fill:",
            "order:order_rested",
            "order:order_cancelled"
        ]
    );
    assert_eq!(seen2[1]["fill"]["liquidity"], "taker");
    assert_eq!(seen2[1]["fill"]["order"], 2);
    assert_eq!(seen2[1]["fill"]["fee"], "0.024000");
    for m in &seen2 {
        assert!(
            m.to_string().find("\"account\":1").is_none(),
            "account 1 leaked to 2: {m}"
        );
    }

    // Account 3 did nothing: everything above was flushed before this pong.
    assert_eq!(
        c3.request(json!({"op":"ping"})).await,
        json!({"type":"pong"})
    );
    assert_eq!(
        c2.request(json!({"op":"ping"})).await,
        json!({"type":"pong"})
    );
    gw.stop().await.unwrap();
}

/// Flow that changes the book on every command: bids rest at rotating prices and
/// are cancelled again.
async fn churn(gw: &MdGateway, n: usize, ts0: u64) -> u64 {
    let mut last = 0;
    let mut open: Vec<u64> = Vec::new();
    for i in 0..n {
        let ts = ts0 + i as u64 * SEC;
        let c = if open.len() > 20 {
            let id = open.remove(0);
            gw.submit(env(
                ts,
                json!({"type":"cancel_order","account":2,"order_id":id}),
            ))
            .await
            .unwrap()
        } else {
            let price = format!("2.{:02}", 10 + (i * 7) % 80);
            let c = gw
                .submit(env(ts, order(2, "buy", &price, "1")))
                .await
                .unwrap();
            for e in &c.events {
                if let gpux_engine::Event::OrderRested(r) = e {
                    open.push(r.order);
                }
            }
            c
        };
        last = c.cmd_seq;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_resynced_and_others_get_every_update() {
    let cfg = MarketDataConfig {
        flush_interval: Duration::from_millis(1),
        queue_messages: 16,
        queue_bytes: 64 * 1024,
        write_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..MarketDataConfig::default()
    };
    let (_dir, gw) = start_with(cfg, Some(4096)).await;
    let mut slow = Client::connect_small_buffer(&gw.ws_url(), 4096).await;
    let mut fast = Client::connect(&gw.ws_url()).await;
    let mut fast_book = BookMirror::default();
    let mut slow_book = BookMirror::default();
    for (c, b) in [(&mut slow, &mut slow_book), (&mut fast, &mut fast_book)] {
        assert_eq!(
            c.request(json!({"op":"subscribe","channel":book()})).await["type"],
            "subscribed"
        );
        b.apply(&c.recv().await).unwrap();
    }
    // The fast client reads while the flow runs; the slow one reads nothing.
    let (target_tx, mut target) = tokio::sync::watch::channel(u64::MAX);
    let fast_task = tokio::spawn(async move {
        while fast_book.seq < *target.borrow() {
            tokio::select! {
                m = fast.recv() => fast_book.apply(&m).unwrap(),
                _ = target.changed() => {}
            }
        }
        fast_book
    });
    let last = churn(&gw, 400, T0 + 100 * SEC).await;
    assert!(
        gw.handle.stats().resyncs >= 1,
        "the slow reader's queue never overflowed"
    );
    target_tx.send(last).unwrap();
    let fast_book = fast_task.await.unwrap();
    // Every update reached the fast reader, in one unbroken chain from its snapshot.
    assert_eq!(fast_book.snapshots, 1);
    assert_eq!(fast_book.seq, last);

    // Now the slow reader catches up: it got a fresh snapshot, never a gap.
    while slow_book.seq < last {
        let m = slow.recv().await;
        slow_book.apply(&m).unwrap();
    }
    assert!(slow_book.snapshots >= 2, "resynced with a snapshot");
    let rest: Value = reqwest::get(gw.url(&format!(
        "/v1/markets/{MARKET}/slots/{SLOT_NAME}/depth?depth=1000"
    )))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(rest["seq"], last);
    assert_eq!(slow_book.as_depth(), depth_levels(&rest));
    assert_eq!(fast_book.as_depth(), depth_levels(&rest));
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_with_private_updates_is_closed_with_4000() {
    let cfg = MarketDataConfig {
        flush_interval: Duration::from_millis(1),
        queue_messages: 8,
        write_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..MarketDataConfig::default()
    };
    let (_dir, gw) = start_with(cfg, Some(4096)).await;
    let mut slow = Client::connect_small_buffer(&gw.ws_url(), 4096).await;
    assert_eq!(
        slow.request(json!({"op":"auth","key":"key-2"})).await["type"],
        "authenticated"
    );
    assert_eq!(
        slow.request(json!({"op":"subscribe","channel":"orders"}))
            .await["type"],
        "subscribed"
    );
    assert_eq!(
        slow.request(json!({"op":"subscribe","channel":book()}))
            .await["type"],
        "subscribed"
    );
    churn(&gw, 300, T0 + 100 * SEC).await;
    assert!(gw.handle.stats().slow_closes >= 1);
    let (code, reason) = slow.closed().await.expect("a close frame");
    assert_eq!(code, 4000, "{reason}");
    assert!(reason.contains("slow consumer"), "{reason}");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_live_peers_and_close_silent_ones() {
    let cfg = MarketDataConfig {
        heartbeat_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(300),
        ..MarketDataConfig::default()
    };
    let (_dir, gw) = start_with(cfg, None).await;
    let mut live = Client::connect(&gw.ws_url()).await;
    let mut silent = Client::connect(&gw.ws_url()).await;
    // The live client reads (and so answers pings) for well over the idle timeout.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(1_000);
    while let Ok(f) = tokio::time::timeout_at(until, live.next_frame()).await {
        match f {
            Some(Message::Ping(_)) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 1, "{pings} pings");
    assert_eq!(live.request(json!({"op":"ping"})).await["type"], "pong");
    // The silent one answered nothing: pings, then a 4001 close.
    let (code, reason) = silent.closed().await.expect("a close frame");
    assert_eq!(code, 4001, "{reason}");
    assert!(reason.contains("heartbeat"), "{reason}");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_subscription_limits() {
    let cfg = MarketDataConfig {
        max_connections_per_peer: 2,
        max_connections_per_account: 1,
        max_subscriptions: 2,
        ..MarketDataConfig::default()
    };
    let (_dir, gw) = start_with(cfg, None).await;
    let url = gw.ws_url();
    let mut a1 = Client::connect(&url).await;
    let mut a2 = Client::connect(&url).await;
    assert_eq!(Client::connect_with_key(&url, None).await.err(), Some(429));
    // Authenticated connections count against the account, not the address.
    let mut k1 = Client::connect_with_key(&url, Some("key-1")).await.unwrap();
    assert_eq!(
        Client::connect_with_key(&url, Some("key-1")).await.err(),
        Some(429)
    );
    let r = a1.request(json!({"op":"auth","key":"key-1"})).await;
    assert_eq!(r["code"], "too_many_connections", "{r}");
    assert_eq!(
        a2.request(json!({"op":"auth","key":"key-2"})).await["type"],
        "authenticated"
    );
    // a2 moved to account 2: the address has room for one more anonymous peer.
    let mut a3 = Client::connect(&url).await;
    for ch in [book(), format!("trades.{MARKET}.{SLOT_NAME}")] {
        assert_eq!(
            a3.request(json!({"op":"subscribe","channel":ch})).await["type"],
            "subscribed"
        );
    }
    let r = a3
        .request(json!({"op":"subscribe","channel":format!("ticker.{MARKET}.{SLOT_NAME}")}))
        .await;
    assert_eq!(r["code"], "too_many_subscriptions", "{r}");
    // Closing a connection frees its place.
    k1.ws.close(None).await.unwrap();
    let mut ok = None;
    for _ in 0..200 {
        match Client::connect_with_key(&url, Some("key-1")).await {
            Ok(c) => {
                ok = Some(c);
                break;
            }
            Err(429) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(s) => panic!("{s}"),
        }
    }
    assert!(
        ok.is_some(),
        "the closed connection's place was never freed"
    );
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_rate_limit_get_rate_limited() {
    let cfg = MarketDataConfig {
        max_requests_per_sec: 5,
        ..MarketDataConfig::default()
    };
    let (_dir, gw) = start_with(cfg, None).await;
    let mut c = Client::connect(&gw.ws_url()).await;
    // The bucket holds 10 requests; 30 sent at once: some are refused, each with
    // an error, and every request gets exactly one answer.
    for i in 0..30 {
        c.send(json!({"op":"ping","id":i})).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    for _ in 0..30 {
        let m = c.recv().await;
        match m["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") if m["code"] == "rate_limited" => limited += 1,
            _ => panic!("{m}"),
        }
    }
    assert!(
        pongs >= 10 && limited >= 1,
        "{pongs} pongs, {limited} refused"
    );
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections_with_1001() {
    let (_dir, gw) = start_with(MarketDataConfig::default(), None).await;
    let mut c = Client::connect(&gw.ws_url()).await;
    assert_eq!(
        c.request(json!({"op":"subscribe","channel":book()})).await["type"],
        "subscribed"
    );
    let stop = tokio::spawn(gw.stop());
    let (code, reason) = c.closed().await.expect("a close frame");
    assert_eq!(code, 1001, "{reason}");
    stop.await.unwrap().unwrap();
}

/// Waits until REST depth (the published book) reflects `seq`.
async fn wait_published(gw: &MdGateway, seq: u64) {
    for _ in 0..2_000 {
        let v: Value =
            reqwest::get(gw.url(&format!("/v1/markets/{MARKET}/slots/{SLOT_NAME}/depth")))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        if v["seq"].as_u64() >= Some(seq) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("depth never reached seq {seq}");
}

/// The commands of `docs/PROTOCOL.md`'s end-to-end example, in order, in the
/// tests' slot: a market, a provider with 10 GPUs, a buyer with 100 USD, two asks
/// (4 at 2.40, 3 at 2.45), then a buy of 5.5 up to 2.45.
fn protocol_e2e_commands() -> Vec<Value> {
    let cmds = [
        json!({"type":"list_market","market":MARKET,"tick_size":"0.01","lot_size":"0.5","maker_fee_bps":10,"taker_fee_bps":25}),
        json!({"type":"create_account","account":1}),
        json!({"type":"create_account","account":2}),
        json!({"type":"add_capacity","account":1,"market":MARKET,"from_slot":SLOT,"to_slot":SLOT,"quantity":"10"}),
        json!({"type":"deposit","account":2,"amount":"100"}),
        json!({"type":"place_order","account":1,"market":MARKET,"slot":SLOT,"side":"sell","price":"2.40","quantity":"4","client_order_id":"ask-1"}),
        order(1, "sell", "2.45", "3"),
        order(2, "buy", "2.45", "5.5"),
    ];
    cmds.into_iter()
        .enumerate()
        .map(|(i, c)| env(T0 + i as u64 * SEC, c))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_session_replays() {
    let dir = tempfile::tempdir().unwrap();
    let gw = MdGateway::start(dir.path(), Options::default())
        .await
        .unwrap();
    let e2e = protocol_e2e_commands();
    for c in &e2e[..7] {
        gw.submit(c.clone()).await.unwrap();
    }
    wait_published(&gw, 7).await;
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/MARKET_DATA.md"
    ))
    .unwrap();
    let block = doc
        .split("A session in full")
        .nth(1)
        .and_then(|s| s.split("```text").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the session block");
    let mut c = Client::connect(&gw.ws_url()).await;
    let mut snapshots = 0;
    let mut steps = 0;
    for line in block.lines() {
        if let Some(req) = line.strip_prefix("> ") {
            c.send_raw(Message::text(req)).await;
        } else if let Some(want) = line.strip_prefix("< ") {
            let want: Value = serde_json::from_str(want).unwrap();
            let got = c.recv().await;
            assert_eq!(got, want, "docs/MARKET_DATA.md session");
            if got["type"] == "snapshot" {
                snapshots += 1;
                if snapshots == 1 {
                    gw.submit(e2e[7].clone()).await.unwrap();
                }
            }
        } else {
            continue;
        }
        steps += 1;
    }
    assert!(steps >= 8, "{steps} lines");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curve_channel_follows_each_slot_until_its_gate_closes() {
    let (_dir, gw) = start_with(MarketDataConfig::default(), None).await;
    let mut c = Client::connect(&gw.ws_url()).await;
    let curve = format!("curve.{MARKET}");
    assert_eq!(
        c.request(json!({"op":"subscribe","channel":curve})).await["type"],
        "subscribed"
    );
    assert_eq!(
        c.recv().await,
        json!({"type":"snapshot","channel":curve,"market":MARKET,"slots":[]})
    );
    // Subscribing to a slot nothing happened in shows its empty book, and does not
    // put the slot on the curve.
    let later = gpux_engine::slot::format_slot(SLOT + 3_600);
    let book = format!("book.{MARKET}.{later}");
    assert_eq!(
        c.request(json!({"op":"subscribe","channel":book})).await["type"],
        "subscribed"
    );
    let snap = c.recv().await;
    assert_eq!(
        (&snap["seq"], &snap["bids"], &snap["slot"]),
        (&json!(0), &json!([]), &json!(later))
    );
    let v: Value = reqwest::get(gw.url(&format!("/v1/markets/{MARKET}/slots")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["slots"], json!([]));
    // A bid in the slot: its row appears with the touch.
    gw.submit(env(T0 + 10 * SEC, order(2, "buy", "2.10", "2")))
        .await
        .unwrap();
    let m = c.recv_until(|m| m["channel"] == curve).await;
    assert_eq!(
        m,
        json!({"type":"update","channel":curve,"market":MARKET,"slots":[
            {"slot":SLOT_NAME,"best_bid":"2.10","best_ask":null,"last_price":null,"volume":"0.0"}]})
    );
    // A sale into it: last price and volume.
    gw.submit(env(T0 + 11 * SEC, order(1, "sell", "2.10", "0.5")))
        .await
        .unwrap();
    let m = c.recv_until(|m| m["channel"] == curve).await;
    assert_eq!(m["slots"][0]["last_price"], "2.10");
    assert_eq!(m["slots"][0]["volume"], "0.5");
    // Engine time passes the slot's gate: the bid is cancelled and the slot leaves
    // the curve.
    gw.submit(env(
        (SLOT - 60) * SEC,
        json!({"type":"deposit","account":3,"amount":"1"}),
    ))
    .await
    .unwrap();
    let m = c
        .recv_until(|m| m["channel"] == curve && m["slots"][0]["closed"] == true)
        .await;
    assert_eq!(
        m["slots"],
        json!([{"slot":SLOT_NAME,"best_bid":null,"best_ask":null,"last_price":"2.10","volume":"0.5","closed":true}])
    );
    let v: Value = reqwest::get(gw.url(&format!("/v1/markets/{MARKET}/slots")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["slots"], json!([]));
    gw.stop().await.unwrap();
}
