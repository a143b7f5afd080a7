//! Accounts, money and markets over HTTP: creating accounts (keys shown once),
//! deposits (admin), withdrawals (own funds; admin any account, the fee account
//! included), capacity (a provider's own), markets (public list, admin listing),
//! and health.

mod common;

use common::{d, dec, slot_name, slot_secs, Harness, ADMIN, MARKET};
use gpux_engine::slot::format_slot;
use serde_json::json;
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_money_and_capacity() {
    let h = Harness::start().await;
    h.get("/v1/health", None).await.expect(200, None);
    h.list_market().await;
    let (a, ak) = assigned_ids_and_keys(&h).await;
    operator_generated_key(&h).await;
    deposits_and_withdrawals(&h, a, &ak).await;
    capacity(&h, &ak).await;
    fees_reach_account_zero(&h, &ak).await;
    h.stop().await;
}

/// Ids the engine assigns, and the keys it returns; the first account and its key.
async fn assigned_ids_and_keys(h: &Harness) -> (u64, String) {
    // Unless given, the engine assigns the lowest free id, skipping ids taken
    // explicitly; keys are `gpux_` + 64 hex digits.
    let (a, ak) = h.account().await;
    let (b, _) = h.account().await;
    assert_eq!((a, b), (1, 2));
    assert!(ak.starts_with("gpux_") && ak.len() == 69);
    for explicit in [40, 4] {
        let c = h
            .post("/v1/accounts", Some(ADMIN), json!({ "account": explicit }))
            .await;
        c.expect(201, None);
        assert_eq!(c.body["account"], explicit);
    }
    let (third, _) = h.account().await;
    let (fifth, _) = h.account().await;
    assert_eq!((third, fifth), (3, 5));
    (a, ak)
}

/// An account whose key the operator generated.
async fn operator_generated_key(h: &Harness) {
    // An operator-generated key: only its digest is sent.
    let own_key = "my-own-secret-key-for-account-50";
    let digest = hex::encode(Sha256::digest(own_key.as_bytes()));
    let e = h
        .post(
            "/v1/accounts",
            Some(ADMIN),
            json!({"account": 50, "api_key_sha256": digest}),
        )
        .await;
    e.expect(201, None);
    assert!(e.body.get("api_key").is_none());
    let eb = h.get("/v1/balances", Some(own_key)).await;
    eb.expect(200, None);
    assert_eq!(eb.body["account"], 50);
}

/// Deposits and withdrawals on account `a` (key `ak`).
async fn deposits_and_withdrawals(h: &Harness, a: u64, ak: &str) {
    // Deposits are the admin's; withdrawals an account's own.
    let dep = h
        .post(
            &format!("/v1/accounts/{a}/deposits"),
            Some(ADMIN),
            json!({"amount": "25.5"}),
        )
        .await;
    dep.expect(200, None);
    assert_eq!(dep.body["available"], "25.500000");
    let w = h
        .post("/v1/withdrawals", Some(ak), json!({"amount": "5.25"}))
        .await;
    w.expect(200, None);
    assert_eq!(dec(&w.body["available"]), d("20.25"));
    let aw = h
        .post(
            &format!("/v1/accounts/{a}/withdrawals"),
            Some(ADMIN),
            json!({"amount": "0.25"}),
        )
        .await;
    aw.expect(200, None);
    assert_eq!(dec(&aw.body["available"]), d("20"));
    let bal = h.get("/v1/balances", Some(ak)).await;
    assert_eq!(dec(&bal.body["usd"]["available"]), d("20"));
}

/// A provider's capacity (key `ak`), per slot.
async fn capacity(h: &Harness, ak: &str) {
    // Capacity: a provider adds and removes its own, in every slot of a range.
    let (first, second) = (slot_name(), format_slot(slot_secs() + 3_600));
    let add = h
        .post(
            "/v1/capacity/add",
            Some(ak),
            json!({"market": MARKET, "from_slot": first, "to_slot": second, "quantity": "8"}),
        )
        .await;
    add.expect(200, None);
    assert_eq!(add.body["from_slot"], first);
    assert_eq!(add.body["to_slot"], second);
    assert_eq!(add.body["quantity"], "8.0");
    let rm = h
        .post(
            "/v1/capacity/remove",
            Some(ak),
            json!({"market": MARKET, "from_slot": first, "to_slot": first, "quantity": "2.5"}),
        )
        .await;
    rm.expect(200, None);
    assert_eq!(dec(&rm.body["quantity"]), d("2.5"));
    let gpus = h.get("/v1/balances", Some(ak)).await.body["gpus"].clone();
    let gpus = gpus.as_array().unwrap();
    assert_eq!(gpus.len(), 2, "{gpus:?}");
    for (g, (slot, left)) in gpus.iter().zip([(first, "5.5"), (second.as_str(), "8")]) {
        assert_eq!(
            (g["market"].as_str(), g["slot"].as_str()),
            (Some(MARKET), Some(slot))
        );
        assert_eq!(dec(&g["available"]), d(left));
        assert_eq!(dec(&g["held"]), d("0"));
        assert_eq!(dec(&g["inventory"]), d(left));
    }
    // A slot people cannot read, or a range that ends first, changes nothing.
    for (from, to, status, code) in [
        ("2026-12-07T09:30Z", first, 400, "invalid_slot"),
        ("tomorrow", first, 400, "invalid_slot"),
        (second.as_str(), first, 400, "invalid_slot_range"),
    ] {
        h.post(
            "/v1/capacity/add",
            Some(ak),
            json!({"market": MARKET, "from_slot": from, "to_slot": to, "quantity": "1"}),
        )
        .await
        .expect(status, Some(code));
    }
    assert_eq!(
        h.get("/v1/balances", Some(ak)).await.body["gpus"]
            .as_array()
            .unwrap(),
        gpus
    );
}

/// Fees of a trade with seller `ak` reach account 0 once its GPUs are delivered,
/// and the admin withdraws them.
async fn fees_reach_account_zero(h: &Harness, ak: &str) {
    // A delivered trade pays fees into account 0, which the admin can withdraw.
    let bid = h.account().await;
    h.post(
        &format!("/v1/accounts/{}/deposits", bid.0),
        Some(ADMIN),
        json!({"amount": "100"}),
    )
    .await
    .expect(200, None);
    h.place(
        ak,
        json!({"market": MARKET, "side": "sell", "price": "10.00", "quantity": "1"}),
    )
    .await
    .expect(200, None);
    h.place(
        &bid.1,
        json!({"market": MARKET, "side": "buy", "price": "10.00", "quantity": "1"}),
    )
    .await
    .expect(200, None);
    let fees = h.get("/v1/accounts/0/balances", Some(ADMIN)).await;
    fees.expect(200, None);
    // Nothing is charged before delivery.
    assert_eq!(dec(&fees.body["usd"]["available"]), d("0"));
    h.deliver_in_full().await;
    // Delivered: 10 bp maker + 25 bp taker on 10 USD.
    let fees = h
        .get_until("/v1/accounts/0/balances", Some(ADMIN), |b| {
            b["usd"]["available"] != "0.000000"
        })
        .await;
    assert_eq!(dec(&fees["usd"]["available"]), d("0.035"));
    let fw = h
        .post(
            "/v1/accounts/0/withdrawals",
            Some(ADMIN),
            json!({"amount": "0.035"}),
        )
        .await;
    fw.expect(200, None);
    assert_eq!(dec(&fw.body["available"]), d("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markets_are_public_and_listed_by_the_admin() {
    let h = Harness::start().await;
    assert_eq!(h.get("/v1/markets", None).await.body["markets"], json!([]));
    let listed = h
        .post(
            "/v1/markets",
            Some(ADMIN),
            json!({"market": "a100.eu-west", "tick_size": "0.001", "lot_size": "1", "maker_fee_bps": 0, "taker_fee_bps": 20, "max_order_quantity": "500"}),
        )
        .await;
    listed.expect(201, None);
    assert_eq!(listed.body["market"], "a100.eu-west");
    assert_eq!(listed.body["min_price"], "0.001");
    assert_eq!(listed.body["max_order_quantity"], "500");
    assert!(listed.body["cmd_seq"].as_u64().is_some());
    h.list_market().await;
    let all = h.get("/v1/markets", None).await;
    let names: Vec<&str> = all.body["markets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["market"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a100.eu-west", MARKET]);
    let one = h.get(&format!("/v1/markets/{MARKET}"), None).await;
    one.expect(200, None);
    assert_eq!(one.body["tick_size"], "0.01");
    assert_eq!(one.body["lot_size"], "0.5");
    assert_eq!(one.body["taker_fee_bps"], 25);
    assert!(one.body.get("cmd_seq").is_none());
    h.stop().await;
}
