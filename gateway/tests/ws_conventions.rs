//! The WebSocket conventions traders' tools expect, on the whole gateway over real
//! sockets: one request subscribing to a list of channels, book heartbeats carrying
//! each subscribed book's `seq`, and the private `orders` channel starting with a
//! snapshot of the account's open orders.

mod common;
#[path = "support/md.rs"]
mod md;

use std::time::Duration;

use common::{config, slot_name, Harness, MARKET};
use serde_json::{json, Value};

fn ws_url(h: &Harness) -> String {
    format!("{}/v1/ws", h.base.replace("http://", "ws://"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_channels_in_one_request_and_book_heartbeats() {
    let mut cfg = config();
    cfg.market_data.book_heartbeat_interval = Duration::from_millis(50);
    let h = Harness::start_with(cfg).await;
    let ((_, provider), _) = h.provider_and_demander().await;
    h.place(
        &provider,
        json!({"market": MARKET, "side": "sell", "price": "2.40", "quantity": "2"}),
    )
    .await
    .expect(200, None);
    let slot = slot_name();
    // Market data publishes after the order's answer: wait until the book shows
    // the ask, so the snapshot below has a seq past it.
    h.get_until(
        &format!("/v1/markets/{MARKET}/slots/{slot}/depth"),
        None,
        |d| d["asks"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let book = format!("book.{MARKET}.{slot}");
    let trades = format!("trades.{MARKET}.{slot}");
    let mut c = md::Client::connect(&ws_url(&h)).await;
    c.send(json!({"op": "subscribe", "channels": [book, trades], "id": 5}))
        .await;
    let mut acks = Vec::new();
    let mut snapshot_seq = None;
    while acks.len() < 2 || snapshot_seq.is_none() {
        let m = c.recv().await;
        match m["type"].as_str() {
            Some("subscribed") => acks.push((m["channel"].clone(), m["id"].clone())),
            Some("snapshot") if m["channel"] == book => snapshot_seq = m["seq"].as_u64(),
            _ => {}
        }
    }
    assert_eq!(
        acks,
        vec![(json!(book), json!(5)), (json!(trades), json!(5))]
    );
    let seq = snapshot_seq.unwrap();
    assert!(seq > 0);

    // The book is idle: a heartbeat with its seq arrives (the wait is bounded by
    // the client's read timeout).
    let beat = c.recv_until(|m| m["type"] == "heartbeat").await;
    assert_eq!(
        beat["books"],
        json!([{"channel": book, "seq": seq}]),
        "{beat}"
    );
    assert!(beat["ts_ns"].as_u64().unwrap() / 1_000_000 == beat["ts_ms"].as_u64().unwrap());

    // Malformed lists are refused as one request.
    for bad in [
        json!({"op": "subscribe", "channels": [], "id": 1}),
        json!({"op": "subscribe", "channel": book, "channels": [trades], "id": 1}),
    ] {
        let r = c.request(bad).await;
        assert_eq!(
            (r["type"].as_str(), r["code"].as_str()),
            (Some("error"), Some("malformed_request")),
            "{r}"
        );
    }
    // Unsubscribing a list: one ack per channel.
    c.send(json!({"op": "unsubscribe", "channels": [book, trades]}))
        .await;
    let a = c.recv_until(|m| m["type"] == "unsubscribed").await;
    let b = c.recv_until(|m| m["type"] == "unsubscribed").await;
    assert_eq!(
        (a["channel"].clone(), b["channel"].clone()),
        (json!(book), json!(trades))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_channel_starts_with_a_snapshot_of_open_orders() {
    let h = Harness::start().await;
    let ((_, provider), (_, demander)) = h.provider_and_demander().await;
    let placed = h
        .place(
            &provider,
            json!({"market": MARKET, "side": "sell", "price": "2.40", "quantity": "2", "client_order_id": "a-1"}),
        )
        .await;
    let id = placed.expect(200, None).body["order_id"].clone();
    let mut c = md::Client::connect_with_key(&ws_url(&h), Some(&provider))
        .await
        .unwrap();
    let ack = c
        .request(json!({"op": "subscribe", "channel": "orders"}))
        .await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    let snap = c.recv().await;
    assert_eq!(snap["type"], "snapshot", "{snap}");
    assert_eq!(snap["channel"], "orders");
    let orders: &Vec<Value> = snap["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{snap}");
    assert_eq!(orders[0]["order_id"], id);
    assert_eq!(orders[0]["client_order_id"], "a-1");
    assert_eq!(orders[0]["remaining"], "2.0");
    let as_of = snap["seq"].as_u64().unwrap();
    // The snapshot is what GET /v1/orders says.
    let rest = h.get("/v1/orders", Some(&provider)).await;
    assert_eq!(rest.body["orders"], snap["orders"]);
    // What happens next comes as events with a later seq.
    h.place(
        &demander,
        json!({"market": MARKET, "side": "buy", "price": "2.40", "quantity": "1"}),
    )
    .await
    .expect(200, None);
    let fill = c.recv_until(|m| m["type"] == "fill").await;
    assert!(fill["seq"].as_u64().unwrap() > as_of, "{fill} after {snap}");
    assert_eq!(fill["fill"]["remaining"], "1.0");
    h.stop().await;
}
