//! Authentication and isolation: no key, a wrong key, the wrong kind of key; and
//! no endpoint lets one account see or touch another's orders, fills or balances
//! (another account's order is 404, exactly like one that does not exist).

mod common;

use common::{d, dec, Harness, ADMIN, MARKET};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_and_of_the_right_kind() {
    let h = Harness::start().await;
    let (_, key) = h.account().await;
    h.get("/v1/balances", None)
        .await
        .expect(401, Some("unauthorized"));
    h.get("/v1/balances", Some("gpux_0000"))
        .await
        .expect(401, Some("unauthorized"));
    // The same key with its last character changed (to another hex digit).
    let last = if key.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &key[..key.len() - 1]);
    assert_ne!(forged, key);
    h.get("/v1/balances", Some(&forged))
        .await
        .expect(401, Some("unauthorized"));
    let basic = h
        .send(
            reqwest::Method::GET,
            "/v1/balances",
            None,
            None,
            &[("authorization", &format!("Basic {key}"))],
        )
        .await;
    basic.expect(401, Some("unauthorized"));
    h.get("/v1/balances", Some(&key)).await.expect(200, None);
    h.get("/v1/balances", Some(ADMIN))
        .await
        .expect(403, Some("forbidden"));
    h.post("/v1/accounts", Some(&key), json!({}))
        .await
        .expect(403, Some("forbidden"));
    h.post(
        "/v1/accounts/1/deposits",
        Some(&key),
        json!({"amount": "1"}),
    )
    .await
    .expect(403, Some("forbidden"));
    h.post("/v1/markets", None, json!({}))
        .await
        .expect(401, Some("unauthorized"));
    // Public endpoints need no key.
    h.get("/v1/markets", None).await.expect(200, None);
    h.get("/v1/health", None).await.expect(200, None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_cannot_see_or_touch_another() {
    let h = Harness::start().await;
    let ((alice, ak), (_, bk)) = h.provider_and_demander().await;
    let (_, ck) = h.account().await;
    let ask = h
        .place(&ak, json!({"market": MARKET, "side": "sell", "price": "2.00", "quantity": "2", "client_order_id": "secret"}))
        .await;
    let ask_id = ask.body["order_id"].as_u64().unwrap();
    // Bob trades with Alice: both have fills, each sees only their own.
    h.place(
        &bk,
        json!({"market": MARKET, "side": "buy", "price": "2.00", "quantity": "1"}),
    )
    .await
    .expect(200, None);
    let (head, inbox) = h.ledger_head();

    for key in [&bk, &ck] {
        h.get(&format!("/v1/orders/{ask_id}"), Some(key))
            .await
            .expect(404, Some("unknown_order"));
        h.get("/v1/orders/by-client-id/secret", Some(key))
            .await
            .expect(404, Some("unknown_order"));
        h.delete(&format!("/v1/orders/{ask_id}"), Some(key))
            .await
            .expect(404, Some("unknown_order"));
        h.delete("/v1/orders/by-client-id/secret", Some(key))
            .await
            .expect(404, Some("unknown_order"));
        h.patch(
            &format!("/v1/orders/{ask_id}"),
            Some(key),
            json!({"quantity": "0.5"}),
        )
        .await
        .expect(404, Some("unknown_order"));
        h.patch(
            "/v1/orders/by-client-id/secret",
            Some(key),
            json!({"price": "9.00"}),
        )
        .await
        .expect(404, Some("unknown_order"));
        let open = h.get("/v1/orders", Some(key)).await;
        assert!(open.body["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["order_id"] != ask_id));
    }
    // Nothing was submitted for any of it.
    assert_eq!(h.ledger_head(), (head, inbox));
    // Carol mass-cancels: Alice's order stays.
    h.delete("/v1/orders", Some(&ck)).await.expect(200, None);
    let mine = h.get(&format!("/v1/orders/{ask_id}"), Some(&ak)).await;
    mine.expect(200, None);
    assert_eq!(mine.body["status"], "partially_filled");
    assert_eq!(dec(&mine.body["remaining"]), d("1"));

    // Fills and balances are each account's own.
    let bf = h.get("/v1/fills", Some(&bk)).await;
    assert_eq!(bf.body["fills"].as_array().unwrap().len(), 1);
    assert_eq!(bf.body["fills"][0]["side"], "buy");
    assert_ne!(bf.body["fills"][0]["order_id"], ask_id);
    assert_eq!(h.get("/v1/fills", Some(&ck)).await.body["fills"], json!([]));
    let cb = h.get("/v1/balances", Some(&ck)).await;
    assert_eq!(dec(&cb.body["usd"]["available"]), d("0"));
    assert_eq!(cb.body["gpus"], json!([]));
    // The admin sees any account.
    let ab = h
        .get(&format!("/v1/accounts/{alice}/balances"), Some(ADMIN))
        .await;
    ab.expect(200, None);
    assert_eq!(ab.body["account"], alice);
    schedule_is_its_accounts(&h, alice, &ak, &ck).await;
    h.stop().await;
}

/// A delivery schedule is its account's (`alice`, key `ak`) and the admin's to
/// read; another account (key `ck`) is refused.
async fn schedule_is_its_accounts(h: &Harness, alice: u64, ak: &str, ck: &str) {
    let schedule = format!("/v1/accounts/{alice}/schedule");
    h.get(&schedule, Some(ck)).await.expect(403, None);
    h.get(&schedule, None).await.expect(401, None);
    for key in [ak, ADMIN] {
        let s = h.get(&schedule, Some(key)).await;
        s.expect(200, None);
        assert_eq!(
            (s.body["account"].as_u64(), &s.body["entries"]),
            (Some(alice), &json!([]))
        );
    }
    h.get("/v1/accounts/999/schedule", Some(ADMIN))
        .await
        .expect(404, Some("unknown_account"));
}
