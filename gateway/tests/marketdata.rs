//! Market data over real sockets: REST depth, trades, ticker and candles against a
//! known scenario, REST errors, and a WebSocket subscriber's book rebuilt from
//! snapshot + updates equal to REST depth (and the engine's) after random order flow.

#[path = "support/md.rs"]
mod md;

use gpux_engine::{MarketId, Side};
use gpux_gateway::marketdata::book::level_changes;
use gpux_gateway::testkit::{MdGateway, Options};
use md::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

async fn start() -> (tempfile::TempDir, MdGateway) {
    let dir = tempfile::tempdir().unwrap();
    let gw = MdGateway::start(dir.path(), Options::default())
        .await
        .unwrap();
    (dir, gw)
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(ct.as_deref(), Some("application/json"), "{url}");
    (status, r.json().await.unwrap())
}

/// Polls REST depth until it reflects `seq` (the hub publishes asynchronously).
async fn depth_at(gw: &MdGateway, seq: u64, n: usize) -> Value {
    for _ in 0..2_000 {
        let (s, v) = get(&gw.url(&format!(
            "/v1/markets/{MARKET}/slots/{SLOT_NAME}/depth?depth={n}"
        )))
        .await;
        assert_eq!(s, 200, "{v}");
        if v["seq"].as_u64() == Some(seq) {
            return v;
        }
        assert!(
            v["seq"].as_u64().unwrap() < seq,
            "depth went past {seq}: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (_, v) = get(&gw.url(&format!("/v1/markets/{MARKET}/slots/{SLOT_NAME}/depth"))).await;
    panic!("REST depth never reached seq {seq}: {v}");
}

fn engine_depth(gw: &MdGateway) -> Depth {
    let m: MarketId = MARKET.parse().unwrap();
    gw.with_engine(|e| {
        let side = |s| {
            e.depth(&m, SLOT, s, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|l| (l.price, l.quantity))
                .collect()
        };
        (side(Side::Buy), side(Side::Sell))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one trading story: each step's figures follow from the steps before it
async fn known_scenario_trades_ticker_candles_and_depth() {
    let (_dir, gw) = start().await;
    for c in setup_commands() {
        gw.submit(c).await.unwrap();
    }
    let order = |account: u64, side: &str, price: &str, qty: &str| json!({"type":"place_order","account":account,"market":MARKET,"slot":SLOT,"side":side,"price":price,"quantity":qty});
    gw.submit(env(T0 + 10 * SEC, order(1, "sell", "2.40", "4")))
        .await
        .unwrap();
    gw.submit(env(T0 + 20 * SEC, order(1, "sell", "2.45", "3")))
        .await
        .unwrap();
    let c = gw
        .submit(env(T0 + 30 * SEC, order(2, "buy", "2.45", "5.5")))
        .await
        .unwrap();
    assert_eq!(c.cmd_seq, 13);
    gw.submit(env(T0 + 90 * SEC, order(2, "buy", "2.30", "2")))
        .await
        .unwrap();
    gw.submit(env(T0 + 100 * SEC, order(1, "sell", "2.30", "1")))
        .await
        .unwrap();
    let last = gw
        .submit(env(T0 + 7_205 * SEC, order(3, "buy", "2.45", "0.5")))
        .await
        .unwrap();
    assert_eq!(last.cmd_seq, 16);

    // Depth: one level each side, at the last book change, equal to the engine's.
    let v = depth_at(&gw, 16, 10).await;
    assert_eq!(v["market"], MARKET);
    assert_eq!(v["bids"], json!([["2.30", "1.0"]]));
    assert_eq!(v["asks"], json!([["2.45", "1.0"]]));
    assert_eq!(depth_levels(&v), engine_depth(&gw));

    // Trades, oldest first, public fields only.
    let (s, v) = get(&gw.url(&format!("/v1/markets/{MARKET}/slots/{SLOT_NAME}/trades"))).await;
    assert_eq!(s, 200);
    let trades = v["trades"].as_array().unwrap();
    let summary: Vec<(u64, u64, &str, &str, &str)> = trades
        .iter()
        .map(|t| {
            (
                t["trade"].as_u64().unwrap(),
                t["seq"].as_u64().unwrap(),
                t["price"].as_str().unwrap(),
                t["quantity"].as_str().unwrap(),
                t["taker_side"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, 13, "2.40", "4.0", "buy"),
            (2, 13, "2.45", "1.5", "buy"),
            (3, 15, "2.30", "1.0", "sell"),
            (4, 16, "2.45", "0.5", "buy"),
        ]
    );
    assert_eq!(trades[0]["ts_ns"], T0 + 30 * SEC);
    assert_eq!(trades[0]["ts_ms"], (T0 + 30 * SEC) / 1_000_000);
    assert!(trades[0].get("maker_account").is_none());
    let (_, v) = get(&gw.url(&format!(
        "/v1/markets/{MARKET}/slots/{SLOT_NAME}/trades?limit=2"
    )))
    .await;
    let ids: Vec<u64> = v["trades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trade"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![3, 4]);

    // Candles by committed time.
    let (s, v) = get(&gw.url(&format!(
        "/v1/markets/{MARKET}/slots/{SLOT_NAME}/candles?interval=1m"
    )))
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["interval"], "1m");
    assert_eq!(
        v["candles"],
        json!([
            {"open_ns": T0, "open_ms": (T0) / 1_000_000, "open": "2.40", "high": "2.45", "low": "2.40", "close": "2.45", "volume": "5.5", "trades": 2},
            {"open_ns": T0 + 60 * SEC, "open_ms": (T0 + 60 * SEC) / 1_000_000, "open": "2.30", "high": "2.30", "low": "2.30", "close": "2.30", "volume": "1.0", "trades": 1},
            {"open_ns": T0 + 7_200 * SEC, "open_ms": (T0 + 7_200 * SEC) / 1_000_000, "open": "2.45", "high": "2.45", "low": "2.45", "close": "2.45", "volume": "0.5", "trades": 1},
        ])
    );
    let (_, v) = get(&gw.url(&format!(
        "/v1/markets/{MARKET}/slots/{SLOT_NAME}/candles?interval=1h&limit=5"
    )))
    .await;
    assert_eq!(
        v["candles"],
        json!([
            {"open_ns": T0, "open_ms": (T0) / 1_000_000, "open": "2.40", "high": "2.45", "low": "2.30", "close": "2.30", "volume": "6.5", "trades": 3},
            {"open_ns": T0 + 7_200 * SEC, "open_ms": (T0 + 7_200 * SEC) / 1_000_000, "open": "2.45", "high": "2.45", "low": "2.45", "close": "2.45", "volume": "0.5", "trades": 1},
        ])
    );
    let (_, v) = get(&gw.url(&format!(
        "/v1/markets/{MARKET}/slots/{SLOT_NAME}/candles?limit=1"
    )))
    .await;
    assert_eq!(v["candles"].as_array().unwrap().len(), 1);
    assert_eq!(v["candles"][0]["open_ns"], T0 + 7_200 * SEC);

    // Longer candles are merged from the kept ones when read.
    let first_hour = json!({"open_ns": T0, "open_ms": T0 / 1_000_000, "open": "2.40", "high": "2.45", "low": "2.30", "close": "2.30", "volume": "6.5", "trades": 3});
    let third_hour = json!({"open_ns": T0 + 7_200 * SEC, "open_ms": (T0 + 7_200 * SEC) / 1_000_000, "open": "2.45", "high": "2.45", "low": "2.45", "close": "2.45", "volume": "0.5", "trades": 1});
    for interval in ["5m", "15m"] {
        let (s, v) = get(&gw.url(&format!(
            "/v1/markets/{MARKET}/slots/{SLOT_NAME}/candles?interval={interval}"
        )))
        .await;
        assert_eq!((s, &v["interval"]), (200, &json!(interval)));
        assert_eq!(v["candles"], json!([first_hour, third_hour]), "{interval}");
    }
    let (_, v) = get(&gw.url(&format!(
        "/v1/markets/{MARKET}/slots/{SLOT_NAME}/candles?interval=1d"
    )))
    .await;
    assert_eq!(
        v["candles"],
        json!([{"open_ns": T0, "open_ms": T0 / 1_000_000, "open": "2.40", "high": "2.45", "low": "2.30", "close": "2.45", "volume": "7.0", "trades": 4}])
    );
    // start (inclusive) and end (exclusive) pick a range, in committed ns.
    let (_, v) = get(&gw.url(&format!(
        "/v1/markets/{MARKET}/slots/{SLOT_NAME}/candles?interval=1m&start={}&end={}",
        T0 + 60 * SEC,
        T0 + 7_200 * SEC
    )))
    .await;
    let opens: Vec<&Value> = v["candles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["open_ns"])
        .collect();
    assert_eq!(opens, vec![&json!(T0 + 60 * SEC)]);

    // Trade history, walked back with the cursor.
    let page = |before: Option<u64>| {
        let q = before.map_or(String::new(), |b| format!("&before={b}"));
        gw.url(&format!(
            "/v1/markets/{MARKET}/slots/{SLOT_NAME}/trades?limit=3{q}"
        ))
    };
    let ids = |v: &Value| -> Vec<u64> {
        v["trades"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trade"].as_u64().unwrap())
            .collect()
    };
    let (_, v) = get(&page(None)).await;
    assert_eq!((ids(&v), &v["next_before"]), (vec![2, 3, 4], &json!(2)));
    let (_, v) = get(&page(Some(2))).await;
    assert_eq!((ids(&v), &v["next_before"]), (vec![1], &Value::Null));

    // Ticker: touch, last trade, 24h window ending at the last committed time.
    let (s, v) = get(&gw.url(&format!("/v1/markets/{MARKET}/slots/{SLOT_NAME}/ticker"))).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"market": MARKET, "slot": SLOT_NAME, "seq": 16, "ts_ns": T0 + 7_205 * SEC, "ts_ms": (T0 + 7_205 * SEC) / 1_000_000,
            "best_bid": "2.30", "best_bid_quantity": "1.0", "best_ask": "2.45", "best_ask_quantity": "1.0",
            "last_price": "2.45", "last_quantity": "0.5", "last_ts_ns": T0 + 7_205 * SEC, "last_ts_ms": (T0 + 7_205 * SEC) / 1_000_000,
            "open_24h": "2.40", "high_24h": "2.45", "low_24h": "2.30", "volume_24h": "7.0", "trades_24h": 4})
    );

    // The forward curve: the one slot traded, its touch, last price and volume.
    let (s, v) = get(&gw.url(&format!("/v1/markets/{MARKET}/slots"))).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"market": MARKET, "slots": [{"slot": SLOT_NAME, "best_bid": "2.30",
            "best_ask": "2.45", "last_price": "2.45", "volume": "7.0"}]})
    );

    // Every `curl` example of docs/MARKET_DATA.md is this state.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/MARKET_DATA.md"
    ))
    .unwrap();
    let mut lines = doc.lines();
    let mut checked = 0;
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("$ curl -s '") else {
            continue;
        };
        let url = rest
            .trim_end_matches('\'')
            .replace("http://127.0.0.1:8080", &gw.url(""));
        let want: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        let (_, got) = get(&url).await;
        assert_eq!(got, want, "docs/MARKET_DATA.md: {line}");
        checked += 1;
    }
    assert!(checked >= 5, "{checked} curl examples");

    // A day later (by committed time, from any command) the early trades leave the window.
    gw.submit(env(
        T0 + 25 * 3_600 * SEC,
        json!({"type":"deposit","account":3,"amount":"1"}),
    ))
    .await
    .unwrap();
    let (_, v) = get(&gw.url(&format!("/v1/markets/{MARKET}/slots/{SLOT_NAME}/ticker"))).await;
    assert_eq!(v["ts_ns"], T0 + 25 * 3_600 * SEC);
    assert_eq!(
        (
            &v["volume_24h"],
            &v["trades_24h"],
            &v["high_24h"],
            &v["low_24h"],
            &v["open_24h"]
        ),
        (
            &json!("0.5"),
            &json!(1),
            &json!("2.45"),
            &json!("2.45"),
            &json!("2.45")
        )
    );
    assert_eq!(v["last_price"], "2.45");
    gw.stop().await.unwrap();
}

/// Market-data REST requests that are refused, with the status and code of the
/// answer.
const REST_ERROR_CASES: &[(&str, u16, &str)] = &[
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:30Z/depth",
        400,
        "invalid_slot",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02/trades",
        400,
        "invalid_slot",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00+00:00/ticker",
        400,
        "invalid_slot",
    ),
    ("/v1/markets/a100.eu-west/slots", 404, "unknown_market"),
    (
        "/v1/markets/h100-sxm.us-east/slots?x=1",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/a100.eu-west/slots/2026-01-02T02:00Z/depth",
        404,
        "unknown_market",
    ),
    (
        "/v1/markets/NOT%20A%20MARKET/slots/2026-01-02T02:00Z/ticker",
        404,
        "unknown_market",
    ),
    (
        "/v1/markets/a100.eu-west/slots/2026-01-02T02:00Z/candles",
        404,
        "unknown_market",
    ),
    (
        "/v1/markets/a100.eu-west/slots/2026-01-02T02:00Z/trades",
        404,
        "unknown_market",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/depth?depth=0",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/depth?depth=1001",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/depth?depth=abc",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/depth?depth=-1",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/depth?depth=%2B5",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/depth?depth=5&depth=6",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/depth?levels=5",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/trades?limit=0",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/trades?limit=1001",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/ticker?x=1",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/candles?interval=2h",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/candles?start=10&end=10",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/candles?start=-1",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/trades?before=abc",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/markets/h100-sxm.us-east/slots/2026-01-02T02:00Z/candles?interval=1h&limit=99999",
        400,
        "invalid_parameter",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_errors_have_the_api_error_shape() {
    let (_dir, gw) = start().await;
    for c in setup_commands().into_iter().take(1) {
        gw.submit(c).await.unwrap();
    }
    for (path, status, code) in REST_ERROR_CASES {
        let (s, v) = get(&gw.url(path)).await;
        assert_eq!(
            (s, v["code"].as_str().unwrap()),
            (*status, *code),
            "{path}: {v}"
        );
        assert!(!v["message"].as_str().unwrap().is_empty(), "{path}");
        assert_eq!(v.as_object().unwrap().len(), 2, "{path}: {v}");
    }
    // A slot of a listed market with nothing in it.
    let (s, v) = get(&gw.url(&format!("/v1/markets/{MARKET}/slots/{SLOT_NAME}/depth"))).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"market": MARKET, "slot": SLOT_NAME, "seq": 0, "bids": [], "asks": []})
    );
    let (s, v) = get(&gw.url(&format!("/v1/markets/{MARKET}/slots"))).await;
    assert_eq!((s, v), (200, json!({"market": MARKET, "slots": []})));
    let (_, v) = get(&gw.url(&format!("/v1/markets/{MARKET}/slots/{SLOT_NAME}/ticker"))).await;
    assert_eq!(v["best_bid"], Value::Null);
    assert_eq!(v["volume_24h"], "0.0");
    gw.stop().await.unwrap();
}

/// One random order-flow command.
fn random_command(rng: &mut ChaCha8Rng, ts: u64, orders: u64) -> Value {
    let account = rng.random_range(1..=3u64);
    let buy = rng.random_bool(0.5);
    let side = if buy { "buy" } else { "sell" };
    // Bids around 2.00-2.40, asks around 2.20-2.60: they often cross.
    let ticks: u32 = if buy {
        rng.random_range(200..=240)
    } else {
        rng.random_range(220..=260)
    };
    let price = format!("{}.{:02}", ticks / 100, ticks % 100);
    let qty = format!(
        "{}.{}",
        rng.random_range(0..8),
        if rng.random_bool(0.5) { 5 } else { 0 }
    );
    let qty = if qty == "0.0" { "0.5".to_string() } else { qty };
    let order_id = rng.random_range(1..=orders.max(1));
    let cmd = match rng.random_range(0..100) {
        0..=54 => {
            json!({"type":"place_order","account":account,"market":MARKET,"slot":SLOT,"side":side,"price":price,"quantity":qty,
            "stp": if rng.random_bool(0.3) { "none" } else { "cancel_maker" }})
        }
        55..=62 => {
            json!({"type":"place_order","account":account,"market":MARKET,"slot":SLOT,"side":side,"price":price,"quantity":qty,"time_in_force":"ioc"})
        }
        63..=66 => {
            json!({"type":"place_order","account":account,"market":MARKET,"slot":SLOT,"side":side,"order_type":"market","quantity":qty})
        }
        67..=82 => json!({"type":"cancel_order","account":account,"order_id":order_id}),
        83..=90 => {
            json!({"type":"amend_order","account":account,"order_id":order_id,"quantity":qty})
        }
        91..=97 => {
            json!({"type":"amend_order","account":account,"order_id":order_id,"price":price})
        }
        _ => json!({"type":"mass_cancel","account":account,"market":MARKET}),
    };
    env(ts, cmd)
}

async fn read_book_until(c: &mut Client, mirror: &mut BookMirror, seq: u64) {
    while mirror.seq < seq {
        let m = c.recv().await;
        if m["channel"] == format!("book.{MARKET}.{SLOT_NAME}") {
            mirror.apply(&m).unwrap();
        }
    }
    assert_eq!(mirror.seq, seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn book_from_snapshot_and_updates_equals_rest_depth_after_random_flow() {
    for seed in [1u64, 2] {
        let (_dir, gw) = start().await;
        for c in setup_commands() {
            gw.submit(c).await.unwrap();
        }
        let market: MarketId = MARKET.parse().unwrap();
        let spec = gw.with_engine(|e| e.market(&market).cloned()).unwrap();
        let mut early = Client::connect(&gw.ws_url()).await;
        let ack = early
            .request(
                json!({"op":"subscribe","channel":format!("book.{MARKET}.{SLOT_NAME}"),"id":1}),
            )
            .await;
        assert_eq!(
            ack,
            json!({"type":"subscribed","channel":format!("book.{MARKET}.{SLOT_NAME}"),"id":1})
        );
        let mut early_book = BookMirror::default();
        early_book.apply(&early.recv().await).unwrap();
        assert_eq!(
            early_book.seq, 0,
            "a slot's book nothing happened in yet is at seq 0"
        );

        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut last_book_seq = 0;
        let mut late: Option<(Client, BookMirror)> = None;
        let mut orders = 0u64;
        let n = 250;
        for i in 0..n {
            let cmd = random_command(&mut rng, T0 + (i as u64 + 20) * SEC, orders);
            let c = gw.submit(cmd).await.unwrap();
            let mut changes = false;
            for e in &c.events {
                if let gpux_engine::Event::OrderAccepted(a) = e {
                    orders = orders.max(a.order);
                }
                level_changes(&spec, e, |ch| changes |= ch.lots != 0).unwrap();
            }
            if changes {
                last_book_seq = c.cmd_seq;
            }
            if i == n / 2 {
                // A second subscriber joins mid-flow.
                let mut c = Client::connect(&gw.ws_url()).await;
                c.send(json!({"op":"subscribe","channel":format!("book.{MARKET}.{SLOT_NAME}")}))
                    .await;
                assert_eq!(c.recv().await["type"], "subscribed");
                let mut b = BookMirror::default();
                b.apply(&c.recv().await).unwrap();
                late = Some((c, b));
            }
        }
        let (mut late_client, mut late_book) = late.unwrap();
        read_book_until(&mut early, &mut early_book, last_book_seq).await;
        read_book_until(&mut late_client, &mut late_book, last_book_seq).await;
        let rest = depth_at(&gw, last_book_seq, 1000).await;
        let rest_levels = depth_levels(&rest);
        assert_eq!(early_book.as_depth(), rest_levels, "seed {seed}");
        assert_eq!(late_book.as_depth(), rest_levels, "seed {seed}");
        assert_eq!(rest_levels, engine_depth(&gw), "seed {seed}");
        assert!(!rest_levels.0.is_empty() || !rest_levels.1.is_empty());
        assert_eq!(early_book.snapshots, 1, "no resync was needed");
        // Every snapshot and update carried a checksum, and each matched the book
        // rebuilt so far.
        for b in [&early_book, &late_book] {
            assert_eq!(b.checksums, b.snapshots + b.updates, "seed {seed}");
        }
        assert!(early_book.updates > 10);
        assert_eq!(gw.handle.stats().resyncs, 0);
        gw.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_slots_beyond_the_kept_number_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let gw = MdGateway::start(
        dir.path(),
        Options {
            md: gpux_gateway::marketdata::MarketDataConfig {
                closed_books_kept: 1,
                ..Default::default()
            },
            ..Options::default()
        },
    )
    .await
    .unwrap();
    for c in setup_commands() {
        gw.submit(c).await.unwrap();
    }
    // A trade in each of two early slots (1:00Z and 2:00Z), capacity listed first.
    let (s1, s2) = (T0 / SEC + 3_600, T0 / SEC + 7_200);
    gw.submit(env(
        T0 + SEC,
        json!({"type":"add_capacity","account":1,"market":MARKET,"from_slot":s1,"to_slot":s2,"quantity":"10"}),
    ))
    .await
    .unwrap();
    for (i, slot) in [s1, s2].into_iter().enumerate() {
        let ts = T0 + (2 + 2 * i as u64) * SEC;
        let o = |a: u64, side: &str| json!({"type":"place_order","account":a,"market":MARKET,"slot":slot,"side":side,"price":"2.00","quantity":"1"});
        gw.submit(env(ts, o(1, "sell"))).await.unwrap();
        gw.submit(env(ts + SEC, o(2, "buy"))).await.unwrap();
    }
    let trades = |slot: u64| {
        let url = gw.url(&format!(
            "/v1/markets/{MARKET}/slots/{}/trades",
            gpux_engine::slot::format_slot(slot)
        ));
        async move { get(&url).await.1["trades"].as_array().unwrap().len() }
    };
    assert_eq!((trades(s1).await, trades(s2).await), (1, 1));
    // Both gates pass (one command): one closed book is kept, the older forgotten.
    gw.submit(env(
        (s2 - 60) * SEC,
        json!({"type":"deposit","account":3,"amount":"1"}),
    ))
    .await
    .unwrap();
    assert_eq!((trades(s1).await, trades(s2).await), (0, 1));
    gw.stop().await.unwrap();
}
