//! A restart (gateway and exchange stopped, reopened on the same ledger) keeps API
//! keys and the idempotency cache: both are rebuilt from the command log.

mod common;

use common::{slot_name, Harness, MARKET};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_idempotency_survive_a_restart() {
    let mut h = Harness::start().await;
    let ((_, pk), (_, dk)) = h.provider_and_demander().await;
    let order = json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.00", "quantity": "1"});
    let key = [("idempotency-key", "before-restart")];
    let first = h
        .send(
            Method::POST,
            "/v1/orders",
            Some(&pk),
            Some(order.clone()),
            &key,
        )
        .await;
    first.expect(200, None);
    let balances = h.get("/v1/balances", Some(&dk)).await.body;

    h.restart().await;

    let head = h.ledger_head();
    h.get("/v1/balances", Some(&pk)).await.expect(200, None);
    assert_eq!(h.get("/v1/balances", Some(&dk)).await.body, balances);
    let again = h
        .send(Method::POST, "/v1/orders", Some(&pk), Some(order), &key)
        .await;
    again.expect(200, None);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(h.ledger_head(), head, "nothing submitted");
    let other = json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "3.00", "quantity": "1"});
    h.send(Method::POST, "/v1/orders", Some(&pk), Some(other), &key)
        .await
        .expect(409, Some("idempotency_key_reused"));
    // The order placed before the restart is still there, with its history.
    let id = first.body["order_id"].as_u64().unwrap();
    let o = h.get(&format!("/v1/orders/{id}"), Some(&pk)).await;
    o.expect(200, None);
    assert_eq!(o.body["status"], "open");
    h.stop().await;
}
