//! Idempotent retries: the same key and body return the original result without
//! acting twice (also while the first is in flight); the same key with another body
//! is refused; a client order id serves as the key of a placement.

mod common;

use common::{slot_name, Harness, ADMIN, MARKET};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_returns_the_original_result_without_placing_twice() {
    let h = Harness::start().await;
    let ((_, pk), (_, dk)) = h.provider_and_demander().await;
    let order = json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.00", "quantity": "1"});
    let key = [("idempotency-key", "order-1")];
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
    assert!(first.headers.get("idempotent-replayed").is_none());
    let head = h.ledger_head();
    let again = h
        .send(
            Method::POST,
            "/v1/orders",
            Some(&pk),
            Some(order.clone()),
            &key,
        )
        .await;
    again.expect(200, None);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(h.ledger_head(), head, "the retry submitted nothing");
    assert_eq!(
        h.get("/v1/orders", Some(&pk)).await.body["orders"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Another body under the same key is refused, and changes nothing.
    let other = json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.10", "quantity": "1"});
    h.send(Method::POST, "/v1/orders", Some(&pk), Some(other), &key)
        .await
        .expect(409, Some("idempotency_key_reused"));
    assert_eq!(h.ledger_head(), head);
    // The same key string is another key for another account.
    let theirs = json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "1.00", "quantity": "1"});
    h.send(Method::POST, "/v1/orders", Some(&dk), Some(theirs), &key)
        .await
        .expect(200, None);

    // The original result even after the order changed: a retry of the placement
    // still says "open", while the order itself has filled since.
    let taker = json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "2.00", "quantity": "1"});
    h.place(&dk, taker).await.expect(200, None);
    let late = h
        .send(Method::POST, "/v1/orders", Some(&pk), Some(order), &key)
        .await;
    assert_eq!(late.body, first.body);
    assert_eq!(late.body["status"], "open");

    // A cancel retried after it succeeded returns the same answer, not 404.
    let ask = h
        .place(
            &pk,
            json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "5.00", "quantity": "1"}),
        )
        .await;
    let path = format!("/v1/orders/{}", ask.body["order_id"]);
    let ck = [("idempotency-key", "cancel-1")];
    let c1 = h.send(Method::DELETE, &path, Some(&pk), None, &ck).await;
    c1.expect(200, None);
    let c2 = h.send(Method::DELETE, &path, Some(&pk), None, &ck).await;
    c2.expect(200, None);
    assert_eq!(c1.body, c2.body);
    // Without a key, the second cancel is a new request.
    h.delete(&path, Some(&pk))
        .await
        .expect(404, Some("unknown_order"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_order_id_is_the_key_of_a_placement() {
    let h = Harness::start().await;
    let ((_, pk), _) = h.provider_and_demander().await;
    let order = json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.00", "quantity": "1", "client_order_id": "c-1"});
    let a = h.place(&pk, order.clone()).await;
    a.expect(200, None);
    let b = h.place(&pk, order).await;
    b.expect(200, None);
    assert_eq!(a.body, b.body);
    assert_eq!(b.headers["idempotent-replayed"], "true");
    let changed = json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.00", "quantity": "2", "client_order_id": "c-1"});
    h.place(&pk, changed)
        .await
        .expect(409, Some("idempotency_key_reused"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_wait_for_the_first_and_place_once() {
    let h = Harness::start().await;
    let ((_, pk), _) = h.provider_and_demander().await;
    let order = json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.00", "quantity": "1"});
    let head = h.ledger_head();
    let tries = (0..8).map(|_| {
        h.send(
            Method::POST,
            "/v1/orders",
            Some(&pk),
            Some(order.clone()),
            &[("idempotency-key", "burst")],
        )
    });
    let answers = futures_util::future::join_all(tries).await;
    for a in &answers {
        a.expect(200, None);
        assert_eq!(a.body, answers[0].body);
    }
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.headers.get("idempotent-replayed").is_none())
            .count(),
        1,
        "exactly one request submitted"
    );
    assert_eq!(h.ledger_head().0, head.0 + 1, "one command");
    assert_eq!(
        h.get("/v1/orders", Some(&pk)).await.body["orders"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_creation_is_idempotent_and_shows_the_key_once() {
    let h = Harness::start().await;
    let key = [("idempotency-key", "acct-7")];
    let a = h
        .send(
            Method::POST,
            "/v1/accounts",
            Some(ADMIN),
            Some(json!({})),
            &key,
        )
        .await;
    a.expect(201, None);
    let api_key = a.body["api_key"].as_str().unwrap().to_string();
    let b = h
        .send(
            Method::POST,
            "/v1/accounts",
            Some(ADMIN),
            Some(json!({})),
            &key,
        )
        .await;
    b.expect(201, None);
    assert_eq!(b.body["account"], a.body["account"]);
    assert!(b.body.get("api_key").is_none(), "the key is shown once");
    h.get("/v1/balances", Some(&api_key))
        .await
        .expect(200, None);
    h.stop().await;
}
