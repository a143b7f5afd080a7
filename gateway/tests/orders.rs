//! Order entry end to end over HTTP: a provider lists capacity and quotes asks, a
//! demander buys with limit and market orders, both see their fills and balances;
//! cancel, amend, mass cancel; the engine's rejections with their codes.

mod common;

use common::{d, dec, slot_name, Harness, MARKET};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one trading story: each step's balances and fills follow from the steps before it
async fn provider_and_demander_trade_with_limit_and_market_orders() {
    let h = Harness::start().await;
    let ((provider, pk), (demander, dk)) = h.provider_and_demander().await;

    // The provider quotes two asks; both rest.
    let a1 = h
        .place(&pk, json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.40", "quantity": "4", "client_order_id": "ask-1"}))
        .await;
    a1.expect(200, None);
    assert_eq!(a1.body["status"], "open");
    assert_eq!(a1.body["client_order_id"], "ask-1");
    assert_eq!(a1.body["remaining"], "4.0");
    assert_eq!(a1.body["fills"], json!([]));
    assert_eq!(a1.body["slot"], slot_name());
    let ask1 = a1.body["order_id"].as_u64().unwrap();
    let a2 = h
        .place(
            &pk,
            json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.45", "quantity": "3"}),
        )
        .await;
    a2.expect(200, None);
    let ask2 = a2.body["order_id"].as_u64().unwrap();

    // The demander lifts 5.5 up to 2.45: two fills at the makers' prices.
    let b = h
        .place(
            &dk,
            json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "2.45", "quantity": "5.5"}),
        )
        .await;
    b.expect(200, None);
    assert_eq!(b.body["status"], "filled");
    assert_eq!(dec(&b.body["filled"]), d("5.5"));
    assert_eq!(dec(&b.body["remaining"]), d("0"));
    let fills = b.body["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 2);
    assert_eq!(
        (
            dec(&fills[0]["price"]),
            dec(&fills[0]["quantity"]),
            dec(&fills[0]["fee"])
        ),
        (d("2.40"), d("4"), d("0.024"))
    );
    assert_eq!(
        (
            dec(&fills[1]["price"]),
            dec(&fills[1]["quantity"]),
            dec(&fills[1]["fee"])
        ),
        (d("2.45"), d("1.5"), d("0.009187"))
    );
    assert!(fills
        .iter()
        .all(|f| f["liquidity"] == "taker" && f["side"] == "buy"));
    assert_eq!(fills[0]["cmd_seq"], b.body["cmd_seq"]);
    assert_eq!(fills[0]["slot"], slot_name());

    // The provider sees its orders: the first filled, the second partly.
    let o1 = h.get(&format!("/v1/orders/{ask1}"), Some(&pk)).await;
    o1.expect(200, None);
    assert_eq!(o1.body["status"], "filled");
    assert_eq!(o1.body["fills"][0]["liquidity"], "maker");
    assert_eq!(dec(&o1.body["fills"][0]["fee"]), d("0.0096"));
    let o2 = h.get(&format!("/v1/orders/{ask2}"), Some(&pk)).await;
    assert_eq!(o2.body["status"], "partially_filled");
    assert_eq!(dec(&o2.body["remaining"]), d("1.5"));
    let open = h.get("/v1/orders", Some(&pk)).await;
    assert_eq!(open.body["orders"].as_array().unwrap().len(), 1);
    assert_eq!(open.body["orders"][0]["order_id"], ask2);

    // A market buy of 1 fills at 2.45; a market buy of 5 takes the last 0.5 and
    // cancels its remainder.
    let m1 = h
        .place(
            &dk,
            json!({"market": MARKET, "slot": slot_name(), "side": "buy", "order_type": "market", "quantity": "1"}),
        )
        .await;
    m1.expect(200, None);
    assert_eq!(m1.body["status"], "filled");
    assert!(m1.body.get("price").is_none());
    let m2 = h
        .place(
            &dk,
            json!({"market": MARKET, "slot": slot_name(), "side": "buy", "order_type": "market", "quantity": "5"}),
        )
        .await;
    m2.expect(200, None);
    assert_eq!(m2.body["status"], "cancelled");
    assert_eq!(m2.body["cancel_reason"], "market_remainder");
    assert_eq!(dec(&m2.body["filled"]), d("0.5"));
    assert_eq!(m2.body["time_in_force"], "ioc");

    // Balances: the provider is owed proceeds minus maker fees (paid on
    // delivery); the demander paid cost plus taker fees into escrow; GPU-hours
    // moved.
    let pb = h.get("/v1/balances", Some(&pk)).await;
    pb.expect(200, None);
    assert_eq!(pb.body["account"], provider);
    assert_eq!(dec(&pb.body["usd"]["available"]), d("0"));
    assert_eq!(dec(&pb.body["usd"]["pending"]), d("16.93305"));
    assert_eq!(dec(&pb.body["gpus"][0]["available"]), d("3"));
    assert_eq!(dec(&pb.body["gpus"][0]["held"]), d("0"));
    let db = h.get("/v1/balances", Some(&dk)).await;
    assert_eq!(db.body["account"], demander);
    assert_eq!(dec(&db.body["usd"]["available"]), d("83.007626"));
    assert_eq!(dec(&db.body["usd"]["held"]), d("0"));
    assert_eq!(dec(&db.body["usd"]["escrow"]), d("16.992374"));
    assert_eq!(db.body["gpus"][0]["market"], MARKET);
    assert_eq!(db.body["gpus"][0]["slot"], slot_name());
    assert_eq!(dec(&db.body["gpus"][0]["inventory"]), d("0"));
    assert_eq!(dec(&pb.body["gpus"][0]["inventory"]), d("3"));
    assert_eq!(dec(&db.body["gpus"][0]["available"]), d("7"));

    // Fills, newest first, two pages of two.
    let p1 = h.get("/v1/fills?limit=2", Some(&dk)).await;
    p1.expect(200, None);
    let f1 = p1.body["fills"].as_array().unwrap();
    assert_eq!(f1.len(), 2);
    assert!(f1[0]["trade_id"].as_u64() > f1[1]["trade_id"].as_u64());
    let next = p1.body["next_before"].as_u64().unwrap();
    let p2 = h
        .get(&format!("/v1/fills?limit=2&before={next}"), Some(&dk))
        .await;
    let f2 = p2.body["fills"].as_array().unwrap();
    assert_eq!(f2.len(), 2);
    assert!(p2.body.get("next_before").is_none());
    assert_eq!(f2[1]["trade_id"], 1);
    let pf = h
        .get(&format!("/v1/fills?market={MARKET}"), Some(&pk))
        .await;
    assert_eq!(pf.body["fills"].as_array().unwrap().len(), 4);
    assert!(pf.body["fills"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["liquidity"] == "maker" && f["side"] == "sell"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one order book's story: each step acts on the orders the steps before it left
async fn cancel_amend_and_mass_cancel() {
    let h = Harness::start().await;
    let ((_, pk), (_, dk)) = h.provider_and_demander().await;
    let place = |price: &str, qty: &str, coid: Option<&str>| {
        let mut o = json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": price, "quantity": qty});
        if let Some(c) = coid {
            o["client_order_id"] = json!(c);
        }
        o
    };
    let a = h.place(&pk, place("3.00", "2", Some("a"))).await.body["order_id"]
        .as_u64()
        .unwrap();
    let b = h.place(&pk, place("3.10", "2", Some("b"))).await.body["order_id"]
        .as_u64()
        .unwrap();
    let c = h.place(&pk, place("3.20", "2", None)).await.body["order_id"]
        .as_u64()
        .unwrap();

    // Quantity down at the same price keeps priority.
    let am = h
        .patch(
            &format!("/v1/orders/{a}"),
            Some(&pk),
            json!({"quantity": "1"}),
        )
        .await;
    am.expect(200, None);
    assert_eq!(am.body["priority_kept"], true);
    assert_eq!(am.body["status"], "open");
    assert_eq!(dec(&am.body["remaining"]), d("1"));
    // A new price by client id re-queues, crossing nothing.
    let am = h
        .patch(
            "/v1/orders/by-client-id/b",
            Some(&pk),
            json!({"price": "3.05"}),
        )
        .await;
    am.expect(200, None);
    assert_eq!(am.body["priority_kept"], false);
    assert_eq!(dec(&am.body["old_price"]), d("3.10"));
    let ob = h.get("/v1/orders/by-client-id/b", Some(&pk)).await;
    ob.expect(200, None);
    assert_eq!(dec(&ob.body["price"]), d("3.05"));

    // A bid crosses the amended order: the amend of the bid down to below trades.
    let bid = h
        .place(
            &dk,
            json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "2.00", "quantity": "1"}),
        )
        .await;
    let bid_id = bid.body["order_id"].as_u64().unwrap();
    let am = h
        .patch(
            &format!("/v1/orders/{bid_id}"),
            Some(&dk),
            json!({"price": "3.00"}),
        )
        .await;
    am.expect(200, None);
    assert_eq!(am.body["status"], "filled");
    assert_eq!(am.body["fills"][0]["liquidity"], "taker");
    assert_eq!(dec(&am.body["fills"][0]["price"]), d("3.00"));

    // Cancel by id and by client id.
    let cx = h.delete(&format!("/v1/orders/{c}"), Some(&pk)).await;
    cx.expect(200, None);
    assert_eq!(cx.body["status"], "cancelled");
    assert_eq!(dec(&cx.body["cancelled_quantity"]), d("2"));
    let oc = h.get(&format!("/v1/orders/{c}"), Some(&pk)).await;
    assert_eq!(oc.body["status"], "cancelled");
    assert_eq!(oc.body["cancel_reason"], "user_requested");
    h.delete(&format!("/v1/orders/{c}"), Some(&pk))
        .await
        .expect(404, Some("unknown_order"));
    h.delete("/v1/orders/by-client-id/b", Some(&pk))
        .await
        .expect(200, None);
    assert_eq!(
        h.get(&format!("/v1/orders/{b}"), Some(&pk)).await.body["status"],
        "cancelled"
    );

    // Mass cancel in one market cancels the rest.
    let d1 = h.place(&pk, place("4.00", "1", None)).await.body["order_id"]
        .as_u64()
        .unwrap();
    let mc = h
        .delete(&format!("/v1/orders?market={MARKET}"), Some(&pk))
        .await;
    mc.expect(200, None);
    assert_eq!(mc.body["count"], 1);
    assert_eq!(mc.body["cancelled"], json!([d1]));
    assert_eq!(
        h.get("/v1/orders", Some(&pk)).await.body["orders"],
        json!([])
    );
    let mc = h.delete("/v1/orders", Some(&pk)).await;
    assert_eq!(mc.body["count"], 0);
    let bal = h.get("/v1/balances", Some(&pk)).await;
    assert_eq!(dec(&bal.body["gpus"][0]["held"]), d("0"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_rejections_keep_their_codes() {
    let h = Harness::start().await;
    let ((_, pk), (_, dk)) = h.provider_and_demander().await;
    h.place(&pk, json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.00", "quantity": "1", "client_order_id": "x"}))
        .await
        .expect(200, None);
    for (key, order, status, code) in [
        (
            &dk,
            json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "50", "quantity": "10"}),
            422,
            "insufficient_funds",
        ),
        (
            &pk,
            json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.00", "quantity": "100"}),
            422,
            "insufficient_capacity",
        ),
        (
            &dk,
            json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "2.00", "quantity": "1", "post_only": true}),
            422,
            "post_only_would_cross",
        ),
        (
            &dk,
            json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "2.00", "quantity": "5", "time_in_force": "fok"}),
            422,
            "fok_not_fillable",
        ),
    ] {
        let r = h.place(key, order).await;
        assert_eq!(r.expect(status, Some(code)).body["status"], "rejected");
    }
    // Another order under an open order's client id: without a key, the client id
    // is the idempotency key (so another body is a reused key); with a fresh key,
    // the engine refuses the duplicate.
    let dup = json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.50", "quantity": "1", "client_order_id": "x"});
    h.place(&pk, dup.clone())
        .await
        .expect(409, Some("idempotency_key_reused"));
    h.send(
        reqwest::Method::POST,
        "/v1/orders",
        Some(&pk),
        Some(dup),
        &[("idempotency-key", "fresh")],
    )
    .await
    .expect(409, Some("duplicate_client_order_id"));
    h.post("/v1/withdrawals", Some(&dk), json!({"amount": "1000"}))
        .await
        .expect(422, Some("insufficient_funds"));
    h.post(
        "/v1/capacity/remove",
        Some(&pk),
        json!({"market": MARKET, "from_slot": slot_name(), "to_slot": slot_name(), "quantity": "20"}),
    )
    .await
    .expect(422, Some("insufficient_capacity"));
    // An IOC that trades a part and cancels the rest.
    let ioc = h
        .place(&dk, json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "2.00", "quantity": "2", "time_in_force": "ioc"}))
        .await;
    ioc.expect(200, None);
    assert_eq!(ioc.body["status"], "cancelled");
    assert_eq!(ioc.body["cancel_reason"], "ioc_remainder");
    assert_eq!(dec(&ioc.body["filled"]), d("1"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtd_expiry_of_another_account_does_not_leak_into_a_response() {
    let h = Harness::start().await;
    let ((_, pk), (_, dk)) = h.provider_and_demander().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // A GTD ask that expires almost at once.
    let gtd = h
        .place(&pk, json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.00", "quantity": "1", "time_in_force": "gtd", "good_till_ns": now + 50_000_000}))
        .await;
    gtd.expect(200, None);
    let gtd_id = gtd.body["order_id"].as_u64().unwrap();
    // Wait until its time has passed by the clock the gateway stamps commands with.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        <= now + 50_000_000
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The demander's bid is the command that expires it: the bid's response is
    // about the bid only, and it rests (the ask is gone).
    let bid = h
        .place(
            &dk,
            json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "2.00", "quantity": "1"}),
        )
        .await;
    bid.expect(200, None);
    assert_eq!(bid.body["status"], "open");
    assert_ne!(bid.body["order_id"].as_u64().unwrap(), gtd_id);
    let o = h.get(&format!("/v1/orders/{gtd_id}"), Some(&pk)).await;
    assert_eq!(
        o.body["status"], "expired",
        "a GTD expiry has its own status"
    );
    assert_eq!(o.body["cancel_reason"], "expired");
    h.stop().await;
}

/// Only an order the exchange refused carries `"status":"rejected"`: a reused
/// idempotency key decided nothing about an order, and a refused withdrawal is
/// not an order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_refused_orders_are_rejected() {
    let h = Harness::start().await;
    let ((_, pk), (_, dk)) = h.provider_and_demander().await;
    let order = |price: &str| json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": price, "quantity": "1", "client_order_id": "r"});
    h.place(&pk, order("2.50")).await.expect(200, None);
    let reused = h.place(&pk, order("2.60")).await;
    reused.expect(409, Some("idempotency_key_reused"));
    assert!(reused.body.get("status").is_none(), "{}", reused.body);
    let off_tick = h.place(&pk, json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.555", "quantity": "1"})).await;
    off_tick.expect(400, Some("off_tick_price"));
    assert_eq!(off_tick.body["status"], "rejected");
    let w = h
        .post("/v1/withdrawals", Some(&dk), json!({"amount": "1000"}))
        .await;
    w.expect(422, Some("insufficient_funds"));
    assert!(w.body.get("status").is_none(), "{}", w.body);
    h.stop().await;
}
