//! Kafka mode split across processes, against a real broker (tansu): a `gpux
//! engine` process, and two gateways (`gpux gateway`, in-process through the
//! library entry point the binary calls) that each produce commands to the
//! commands topic and follow the events topic. An order placed through one
//! gateway is answered once the engine committed it, and the other gateway sees
//! it, its fill and the keys created through the first (and refuses a key once it
//! is revoked through the first); a gateway started while
//! the broker is down waits for it instead of failing; both stop cleanly; and the
//! events topic equals the engine's ledger.

mod support;

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gpux::config::Config;
use gpux::run::gateway_until;
use gpux_sequencer::kafka::KafkaConfig;
use serde_json::{json, Value};
use support::broker::Broker;
use support::{http, EngineProcess, Lines, PATIENCE};

const ADMIN: &str = "gpux_admin_kafka_gateway_test_key";
const MARKET: &str = "h100-sxm.us-east";

/// A `gpux gateway` running in a thread.
struct Gateway {
    lines: mpsc::Receiver<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Gateway {
    fn start(cfg: &KafkaConfig, data: &std::path::Path) -> Gateway {
        let mut opts = Config {
            data: data.to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_key: Some(ADMIN.into()),
            ..Config::default()
        };
        opts.kafka.brokers = Some(cfg.brokers.clone());
        opts.kafka.commands_topic = cfg.commands_topic.clone();
        opts.kafka.events_topic = cfg.events_topic.clone();
        let (tx, lines) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut out = Lines(Vec::new(), tx);
            gateway_until(opts, &mut out, async {
                let _ = stop_rx.await;
            })
        });
        Gateway {
            lines,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Waits for the ready line; returns the listen address.
    fn wait_ready(&self) -> String {
        let line = self
            .lines
            .recv_timeout(PATIENCE)
            .expect("the gateway's ready line");
        let v: Value = serde_json::from_str(&line).expect("a JSON ready line");
        assert_eq!(v["mode"], "gateway", "{line}");
        assert!(v["admin_key_file"].is_null(), "{line}");
        v["listen"].as_str().expect("listen").to_owned()
    }

    /// Stops it; it must stop cleanly.
    fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("the gateway thread")
            .expect("a clean stop");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `http`, asserting the status.
fn call(addr: &str, method: &str, path: &str, key: &str, body: &str, want: u16) -> Value {
    let (status, v) = http(addr, method, path, key, body);
    assert_eq!(status, want, "{method} {path} {body}: {v}");
    v
}

/// Creates account `account` through the gateway at `addr`; returns its API key.
fn create_account(addr: &str, account: u64) -> String {
    let body = format!(r#"{{"account":{account}}}"#);
    call(addr, "POST", "/v1/accounts", ADMIN, &body, 201)["api_key"]
        .as_str()
        .expect("an api_key")
        .to_owned()
}

/// Polls `GET path` on `addr` until `pred` holds.
fn eventually(addr: &str, path: &str, key: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (status, v) = http(addr, "GET", path, key, "");
        if status == 200 && pred(&v) {
            return v;
        }
        assert!(
            t0.elapsed() < PATIENCE,
            "GET {path} on {addr}: {status} {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lists the market, creates account 1 with 8 GPU-hours of capacity and rests an
/// ask for all of it, through the gateway at `addr`; returns the seller's key and
/// the ask's order id.
fn list_market_and_ask(addr: &str) -> (String, u64) {
    call(
        addr,
        "POST",
        "/v1/markets",
        ADMIN,
        &format!(
            r#"{{"market":"{MARKET}","tick_size":"0.01","lot_size":"1","maker_fee_bps":10,"taker_fee_bps":20}}"#
        ),
        201,
    );
    let seller = create_account(addr, 1);
    call(
        addr,
        "POST",
        "/v1/capacity/add",
        &seller,
        &format!(
            r#"{{"market":"{MARKET}","from_slot":"{}","to_slot":"{}","quantity":"8"}}"#,
            slot(),
            slot()
        ),
        200,
    );
    let ask = call(
        addr,
        "POST",
        "/v1/orders",
        &seller,
        &format!(
            r#"{{"market":"{MARKET}","slot":"{}","side":"sell","price":"2.40","quantity":"8"}}"#,
            slot()
        ),
        200,
    );
    assert_eq!(ask["status"], "open", "{ask}");
    let ask_id = ask["order_id"].as_u64().unwrap();
    (seller, ask_id)
}

/// The delivery slot traded: three hours after the hour now (the gateways stamp
/// orders with the clock, so it is open for the whole test).
fn slot() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    gpux_engine::slot::format_slot((now / 3_600 + 3) * 3_600)
}

/// Through the gateway at `addr`, which must know `seller`'s key and ask: creates
/// and funds account 2 and buys 3 of the ask at market; returns the buyer's key and
/// the buy's answer.
fn buy_from(addr: &str, seller: &str, ask_id: u64) -> (String, Value) {
    let seen = call(
        addr,
        "GET",
        &format!("/v1/orders/{ask_id}"),
        seller,
        "",
        200,
    );
    assert_eq!(seen["remaining"], "8", "{seen}");
    let buyer = create_account(addr, 2);
    call(
        addr,
        "POST",
        "/v1/accounts/2/deposits",
        ADMIN,
        r#"{"amount":"100"}"#,
        200,
    );
    let bid = call(
        addr,
        "POST",
        "/v1/orders",
        &buyer,
        &format!(
            r#"{{"market":"{MARKET}","slot":"{}","side":"buy","order_type":"market","quantity":"3"}}"#,
            slot()
        ),
        200,
    );
    assert_eq!(bid["status"], "filled", "{bid}");
    assert_eq!(bid["fills"][0]["order_id"], bid["order_id"], "{bid}");
    (buyer, bid)
}

/// Polls `GET /v1/balances` on `addr` with `key` until it answers `status`.
fn balances_until(addr: &str, key: &str, status: u16) {
    let t0 = Instant::now();
    loop {
        let (got, v) = http(addr, "GET", "/v1/balances", key, "");
        if got == status {
            return;
        }
        assert!(t0.elapsed() < PATIENCE, "{addr} still answers {got} {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Through gateway `a`, `full` (an account's full key) creates a trade key, which
/// gateway `b` comes to accept, then revokes it, which `b` comes to refuse.
/// Returns the revocation's cmd_seq.
fn a_key_revoked_through_one_gateway_is_refused_by_the_other(a: &str, b: &str, full: &str) -> u64 {
    let made = call(a, "POST", "/v1/keys", full, r#"{"scope":"trade"}"#, 201);
    let trade = made["api_key"].as_str().unwrap();
    balances_until(b, trade, 200);
    let id = made["key_id"].as_str().unwrap();
    let revoked = call(a, "DELETE", &format!("/v1/keys/{id}"), full, "", 200);
    balances_until(b, trade, 401);
    revoked["cmd_seq"].as_u64().unwrap()
}

#[test]
fn gateways_in_front_of_an_engine_process_trade_through_the_broker() {
    support::init_logging();
    let mut broker = Broker::start();
    broker.create_topics(&["cmds", "events"]);
    let cfg = broker.config("cmds", "events");
    let dir = tempfile::tempdir().unwrap();

    // A gateway started while the broker is away waits for it.
    broker.kill();
    let a = Gateway::start(&cfg, &dir.path().join("gw-a"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        a.lines.try_recv().is_err(),
        "no ready line without a broker"
    );
    broker.restart();
    let a_addr = a.wait_ready();

    // No clock: the replicas' applied cmd_seq is compared with the bid's below.
    let mut engine =
        EngineProcess::spawn(&dir.path().join("engine"), &cfg, &["--clock-tick-ms", "0"]);
    assert_eq!(engine.wait_ready(), 0);

    // Through gateway A: a market, a provider with capacity and an ask.
    let (seller, ask_id) = list_market_and_ask(&a_addr);

    // Gateway B, started now, catches up from the topic: it knows the seller's key
    // and order, and takes a buyer's order that fills against it.
    let b = Gateway::start(&cfg, &dir.path().join("gw-b"));
    let b_addr = b.wait_ready();
    let (buyer, bid) = buy_from(&b_addr, &seller, ask_id);

    // Gateway A sees the fill on the seller's side, and the buyer's key.
    let fills = eventually(&a_addr, "/v1/fills", &seller, |v| {
        v["fills"].as_array().is_some_and(|f| !f.is_empty())
    });
    assert_eq!(fills["fills"][0]["quantity"], "3", "{fills}");
    assert_eq!(fills["fills"][0]["liquidity"], "maker", "{fills}");
    call(&a_addr, "GET", "/v1/balances", &buyer, "", 200);

    // A key created and revoked through gateway A: B follows both.
    let head = a_key_revoked_through_one_gateway_is_refused_by_the_other(&a_addr, &b_addr, &buyer);
    assert!(head > bid["cmd_seq"].as_u64().unwrap());

    // Both replicas healthy and at the same command; unknown keys refused.
    for addr in [&a_addr, &b_addr] {
        let h = eventually(addr, "/v1/health", "", |v| v["applied_seq"] == head);
        assert_eq!(h["status"], "ok", "{h}");
        assert_eq!(http(addr, "GET", "/v1/balances", "not-a-key", "").0, 401);
    }

    // A gateway's metrics: its requests, and no pipeline series it cannot know.
    let (status, metrics) = support::http_text(&b_addr, "GET", "/metrics", "", "");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "gpux_http_requests_total{method=\"POST\",route=\"/v1/orders\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("gpux_durable_cmd_seq"), "{metrics}");

    // The explorer's pages and the network's numbers, from a gateway in front of
    // the broker as from `gpux serve`.
    let (status, page) = support::http_text(&b_addr, "GET", "/", "", "");
    assert_eq!(status, 200);
    assert!(page.contains("/explorer/app.js"), "{page}");
    let stats = call(&b_addr, "GET", "/v1/stats", "", "", 200);
    assert_eq!(
        (&stats["markets"], &stats["as_of_cmd_seq"]),
        (&json!(1), &json!(head)),
        "{stats}"
    );

    a.stop();
    // Gateway A again, on its own data directory: it takes up its checkpoint
    // there and follows the events topic from it, knowing what it knew.
    assert!(dir.path().join("gw-a/gateway/gateway.checkpoint").exists());
    let a = Gateway::start(&cfg, &dir.path().join("gw-a"));
    let a_addr = a.wait_ready();
    let h = eventually(&a_addr, "/v1/health", "", |v| v["applied_seq"] == head);
    assert_eq!(h["status"], "ok", "{h}");
    let again = call(&a_addr, "GET", "/v1/fills", &seller, "", 200);
    assert_eq!(again, fills, "the seller's fills, as before the restart");
    call(&a_addr, "GET", "/v1/balances", &buyer, "", 200);

    a.stop();
    b.stop();
    assert_eq!(engine.try_wait(), None, "the engine runs on");
    assert_eq!(engine.terminate(), head);
    assert_eq!(
        support::assert_events_topic_matches_ledger(&dir.path().join("engine"), &cfg),
        head
    );
    support::assert_replay_verify(&dir.path().join("engine"));
}

#[test]
fn a_gateway_without_a_broker_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Config {
        data: dir.path().join("gw"),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let (tx, rx) = mpsc::channel();
    let err = gateway_until(opts, &mut Lines(Vec::new(), tx), async {})
        .expect_err("no broker configured");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("--kafka") && msg.contains("gpux serve"),
        "{msg}"
    );
    assert!(rx.try_recv().is_err(), "no ready line");
    assert!(!dir.path().join("gw").exists(), "nothing written");
}
