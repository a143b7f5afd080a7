//! `gpux serve` killed with SIGKILL after its gateway wrote a checkpoint and
//! committed more commands: the restarted process takes up the checkpoint,
//! applies the commands after it from the ledger, and answers exactly as before
//! the kill.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use gpux_engine::slot::format_slot;
use serde_json::{json, Value};
use support::{http, ServeProcess};

const ADMIN: &str = "serve-checkpoint-admin-key-0123456789";
const MARKET: &str = "h100-sxm.us-east";

/// `gpux serve` on `data` with `config`, its log (JSON lines) to `log`.
fn serve(data: &Path, config: &Path, log: &Path) -> ServeProcess {
    let config = config.to_str().unwrap();
    ServeProcess::start(
        data,
        &[
            "--config",
            config,
            "--clock-tick-ms",
            "0",
            "--admin-key",
            ADMIN,
            "--log-format",
            "json",
        ],
        &[("GPUX_LOG", "info")],
        std::fs::File::create(log).unwrap().into(),
    )
}

/// POSTs `body` and returns the answer, which must have `status`.
fn post(addr: &str, path: &str, key: &str, body: Value, status: u16) -> Value {
    let (s, v) = http(addr, "POST", path, key, &body.to_string());
    assert_eq!(s, status, "{path}: {v}");
    v
}

/// The messages of a JSON-lines log with their fields.
fn log_messages(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// An open delivery slot: three hours after the hour now.
fn open_slot() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format_slot((now / 3_600 + 3) * 3_600)
}

/// Places an order in `slot`.
fn order(addr: &str, slot: &str, key: &str, side: &str, price: &str, qty: &str) -> Value {
    post(
        addr,
        "/v1/orders",
        key,
        json!({"market": MARKET, "slot": slot, "side": side, "price": price, "quantity": qty}),
        200,
    )
}

/// A market, a seller with capacity and four asks, a buyer with money: the
/// seller's and the buyer's keys.
fn market_and_asks(addr: &str, slot: &str) -> (String, String) {
    post(
        addr,
        "/v1/markets",
        ADMIN,
        json!({"market": MARKET, "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": 10, "taker_fee_bps": 20}),
        201,
    );
    let seller = post(addr, "/v1/accounts", ADMIN, json!({}), 201);
    let buyer = post(addr, "/v1/accounts", ADMIN, json!({}), 201);
    let key = |a: &Value| a["api_key"].as_str().unwrap().to_string();
    let (sk, bk) = (key(&seller), key(&buyer));
    post(
        addr,
        "/v1/capacity/add",
        &sk,
        json!({"market": MARKET, "from_slot": slot, "to_slot": slot, "quantity": "40"}),
        200,
    );
    post(
        addr,
        &format!("/v1/accounts/{}/deposits", buyer["account"]),
        ADMIN,
        json!({"amount": "1000"}),
        200,
    );
    for i in 0..4 {
        order(addr, slot, &sk, "sell", &format!("2.0{i}"), "2");
    }
    (sk, bk)
}

/// Fills, open orders and balances of both accounts, and the slot's trades.
fn read_all(addr: &str, slot: &str, keys: &[&str]) -> Vec<Value> {
    let mut reads: Vec<(String, &str)> = Vec::new();
    for key in keys {
        for path in ["/v1/fills", "/v1/orders", "/v1/balances"] {
            reads.push((path.to_string(), key));
        }
    }
    reads.push((format!("/v1/markets/{MARKET}/slots/{slot}/trades"), ""));
    reads
        .iter()
        .map(|(path, key)| {
            let (s, v) = http(addr, "GET", path, key, "");
            assert_eq!(s, 200, "{path}: {v}");
            v
        })
        .collect()
}

/// The log says the gateway restored a checkpoint older than `head` and found
/// it matching the log.
fn assert_restored_before(log: &Path, head: u64) {
    let messages = log_messages(log);
    let said = |text: &str| messages.iter().find(|m| m["message"] == text);
    let restored = said("gateway restored from its checkpoint; following the log from there")
        .unwrap_or_else(|| panic!("no restore in the log: {messages:?}"));
    let at = restored["cmd_seq"].as_u64().unwrap();
    assert!(
        at < head,
        "the checkpoint (cmd_seq {at}) was older than the ledger's head ({head})"
    );
    assert!(
        said("the gateway checkpoint matches the log; following on from it").is_some(),
        "{messages:?}"
    );
}

#[test]
fn killed_after_a_checkpoint_serve_restarts_from_it_and_answers_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("gpux.toml");
    std::fs::write(&config, "[gateway]\ncheckpoint_every_commands = 8\n").unwrap();
    let serve = serve(&data, &config, &dir.path().join("first.log"));
    let addr = serve.addr();
    let slot = open_slot();
    let (sk, bk) = market_and_asks(&addr, &slot);

    // A checkpoint is written once 8 commands are applied...
    let file = data.join("gateway").join("gateway.checkpoint");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !file.exists() {
        assert!(Instant::now() < deadline, "no checkpoint written");
        std::thread::sleep(Duration::from_millis(10));
    }
    // ...and the next not before 10 s: these trades are only in the ledger.
    order(&addr, &slot, &bk, "buy", "2.05", "5");
    order(&addr, &slot, &sk, "sell", "2.10", "3");
    let last = order(&addr, &slot, &bk, "buy", "1.50", "1");
    let head = last["cmd_seq"].as_u64().unwrap();
    let before = read_all(&addr, &slot, &[&sk, &bk]);
    serve.kill9();

    let log = dir.path().join("second.log");
    let serve = self::serve(&data, &config, &log);
    let after = read_all(&serve.addr(), &slot, &[&sk, &bk]);
    assert_eq!(
        after, before,
        "the restarted exchange answers as before the kill"
    );
    let (s, health) = http(&serve.addr(), "GET", "/v1/health", "", "");
    assert_eq!((s, &health["applied_seq"]), (200, &json!(head)), "{health}");
    assert_restored_before(&log, head);
    serve.terminate();
}
