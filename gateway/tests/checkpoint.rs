//! The gateway's checkpoint: a restarted gateway follows the log from its
//! checkpoint and answers exactly as a gateway that folded the whole log from
//! cmd_seq 1; a checkpoint that does not belong to the log (another ledger, a
//! damaged file) is not used.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{config, md_path, slot_name, Harness, MARKET};
use gpux_gateway::{Backend, GatewayConfig, RunningGateway};
use reqwest::Method;
use serde_json::{json, Value};

fn with_checkpoints(dir: &Path, every: u64) -> GatewayConfig {
    let mut cfg = config();
    cfg.checkpoint_dir = Some(dir.to_path_buf());
    cfg.checkpoint_every_commands = every;
    cfg
}

/// A second gateway on the harness's exchange, following its ledger.
async fn second_gateway(h: &Harness, cfg: GatewayConfig) -> RunningGateway {
    let g = gpux_gateway::start(cfg, Backend::embedded(h.exchange()).unwrap())
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(60), g.wait_ready())
            .await
            .unwrap()
    );
    g
}

async fn get_at(h: &Harness, g: &RunningGateway, path: &str, key: Option<&str>) -> Value {
    let mut req = h.http.get(format!("http://{}{path}", g.addr()));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// Lists the market and makes two providers with capacity and two demanders
/// with money; returns their keys.
async fn setup(h: &Harness) -> Vec<String> {
    h.list_market().await;
    let mut keys = Vec::new();
    for i in 0..4 {
        let (a, k) = h.account().await;
        if i < 2 {
            h.add_capacity(&k, "20").await;
        } else {
            h.deposit(a, "500").await;
        }
        keys.push(k);
    }
    keys
}

/// Some trading among `keys` (providers first): fills, a partly filled order, a
/// resting one, a cancelled one, every placement keyed. Returns the orders, each
/// with its owner's key.
async fn trade(h: &Harness, keys: &[String], round: u32) -> Vec<(u64, String)> {
    let mut ids = Vec::new();
    let (p1, p2, d1, d2) = (&keys[0], &keys[1], &keys[2], &keys[3]);
    for (i, (key, side, price, qty)) in [
        (p1, "sell", "1.00", "2"),
        (p2, "sell", "1.05", "3"),
        (d1, "buy", "1.10", "3"),
        (d2, "buy", "0.90", "1"),
        (p1, "sell", "1.20", "1"),
    ]
    .into_iter()
    .enumerate()
    {
        let idem = format!("r{round}-{i}");
        let r = h
            .send(
                Method::POST,
                "/v1/orders",
                Some(key),
                Some(json!({"market": MARKET, "slot": slot_name(), "side": side, "price": price, "quantity": qty})),
                &[("idempotency-key", idem.as_str())],
            )
            .await;
        r.expect(200, None);
        ids.push((r.body["order_id"].as_u64().unwrap(), key.clone()));
    }
    h.delete(&format!("/v1/orders/{}", ids[4].0), Some(p1))
        .await
        .expect(200, None);
    ids
}

/// Everything a client can read about the accounts of `keys`, `orders` and the
/// market: each path with the key it is read with.
fn reads(keys: &[String], orders: &[(u64, String)]) -> Vec<(String, Option<String>)> {
    let mut reads = Vec::new();
    for k in keys {
        for path in ["/v1/balances", "/v1/orders", "/v1/fills"] {
            reads.push((path.to_string(), Some(k.clone())));
        }
    }
    for (id, owner) in orders {
        reads.push((format!("/v1/orders/{id}"), Some(owner.clone())));
    }
    for what in ["depth", "trades", "ticker", "candles?interval=1m"] {
        reads.push((md_path(what), None));
    }
    reads.push((format!("/v1/markets/{MARKET}/slots"), None));
    reads.push(("/v1/markets".to_string(), None));
    reads
}

/// What gateway `g` answers to `reads`.
async fn answers(
    h: &Harness,
    g: &RunningGateway,
    reads: &[(String, Option<String>)],
) -> Vec<Value> {
    let mut out = Vec::new();
    for (path, key) in reads {
        out.push(get_at(h, g, path, key.as_deref()).await);
    }
    out
}

/// What `a` and `b` answer once both applied the same commands (ticks keep
/// coming, so it retries until neither moved while reading).
async fn compare(
    h: &Harness,
    a: &RunningGateway,
    b: &RunningGateway,
    reads: &[(String, Option<String>)],
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seq = a.health().applied_seq;
        if seq == b.health().applied_seq {
            let x = answers(h, a, reads).await;
            let y = answers(h, b, reads).await;
            if a.health().applied_seq == seq && b.health().applied_seq == seq {
                for (((path, _), x), y) in reads.iter().zip(&x).zip(&y) {
                    assert_eq!(
                        x, y,
                        "{path}: the restored gateway answers as the one that folded everything"
                    );
                }
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateways never met: {:?} and {:?}",
            a.health(),
            b.health()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bid placed with the idempotency key `kept`.
async fn place_kept(h: &Harness, key: &str) -> common::Resp {
    h.send(
        Method::POST,
        "/v1/orders",
        Some(key),
        Some(json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "0.50", "quantity": "1"})),
        &[("idempotency-key", "kept")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_follows_on_from_its_checkpoint_and_answers_as_a_full_fold() {
    let ck = tempfile::tempdir().unwrap();
    let mut h = Harness::start_with(with_checkpoints(ck.path(), 7)).await;
    let keys = setup(&h).await;
    let mut orders = trade(&h, &keys, 1).await;
    let keyed = place_kept(&h, &keys[3]).await;
    keyed.expect(200, None);
    orders.push((keyed.body["order_id"].as_u64().unwrap(), keys[3].clone()));

    // Checkpoints are written while the gateway runs (every 7 commands here)...
    let file = ck.path().join(gpux_gateway::checkpoint::FILE_NAME);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written while running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...and a clean stop writes one at the replica's last command.
    h.restart().await;
    let restored = h.gateway.as_ref().unwrap();
    let head = h.ledger_head().0;
    let applied = restored.stats().applied.load(Ordering::Acquire);
    assert!(
        applied < head / 2,
        "the restarted gateway re-applied {applied} of {head} commands: it did not start from its checkpoint"
    );

    // The idempotency cache came back with it: a retry is answered, not submitted.
    let before = h.ledger_head();
    let again = place_kept(&h, &keys[3]).await;
    again.expect(200, None);
    assert_eq!(again.body, keyed.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(h.ledger_head(), before, "nothing submitted");

    // Trading goes on from the restored state (and passes more checkpoints).
    orders.extend(trade(&h, &keys, 2).await);

    // A gateway that folds the whole log from cmd_seq 1 answers the same.
    let full = second_gateway(&h, config()).await;
    compare(
        &h,
        h.gateway.as_ref().unwrap(),
        &full,
        &reads(&keys, &orders),
    )
    .await;
    full.shutdown().await.unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_another_ledger_or_a_damaged_one_is_not_used() {
    let ck = tempfile::tempdir().unwrap();
    // A checkpoint of one exchange's log...
    let h = Harness::start_with(with_checkpoints(ck.path(), 0)).await;
    let keys = setup(&h).await;
    trade(&h, &keys, 1).await;
    h.stop().await;
    let file = ck.path().join(gpux_gateway::checkpoint::FILE_NAME);
    let kept = std::fs::read(&file).unwrap();

    // ...offered to a gateway of another exchange, whose log is different.
    let other = Harness::start_with(with_checkpoints(ck.path(), 0)).await;
    let g = other.gateway.as_ref().unwrap();
    assert_eq!(
        g.stats().divergences.load(Ordering::Acquire),
        1,
        "the checkpoint's command is not the log's"
    );
    let markets = other.get("/v1/markets", None).await;
    markets.expect(200, None);
    assert_eq!(
        markets.body["markets"],
        json!([]),
        "nothing of the other log: {}",
        markets.body
    );
    let full = second_gateway(&other, config()).await;
    compare(&other, g, &full, &[("/v1/markets".to_string(), None)]).await;
    full.shutdown().await.unwrap();
    other.stop().await;

    // A damaged file is refused before anything is restored.
    let mut damaged = kept.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x40;
    std::fs::write(&file, &damaged).unwrap();
    let third = Harness::start_with(with_checkpoints(ck.path(), 0)).await;
    let g = third.gateway.as_ref().unwrap();
    assert_eq!(g.stats().divergences.load(Ordering::Acquire), 0);
    let head = third.ledger_head().0;
    assert_eq!(
        g.stats().applied.load(Ordering::Acquire),
        g.health().applied_seq,
        "folded from cmd_seq 1 (head {head})"
    );
    third.stop().await;
}
