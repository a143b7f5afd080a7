//! The private `orders` channel carries delivery to both parties of an entry, over
//! real sockets: the entry fixed at the gate, the provider's report, the holder's
//! dispute, and the settlement (each trade of it, then the entry) — and nothing
//! of it to an account the entry does not name.

#[path = "support/md.rs"]
mod md;

use gpux_gateway::testkit::{MdGateway, Options};
use md::*;
use serde_json::{json, Value};

/// The `type` of the protocol event in a private `delivery` message.
fn delivery_event(m: &Value) -> Option<String> {
    (m["type"] == "delivery").then(|| m["event"]["type"].as_str().unwrap().to_string())
}

/// Reads `c`'s messages until `n` delivery messages have come, returning their
/// event types (order and fill messages in between are skipped).
async fn deliveries(c: &mut Client, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let m = c.recv().await;
        assert_eq!(m["channel"], "orders", "{m}");
        if let Some(t) = delivery_event(&m) {
            seen.push(t);
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_parties_follow_their_delivery_on_the_orders_channel() {
    let dir = tempfile::tempdir().unwrap();
    let gw = MdGateway::start(dir.path(), Options::default())
        .await
        .unwrap();
    for c in setup_commands() {
        gw.submit(c).await.unwrap();
    }
    let mut clients = Vec::new();
    for key in ["key-1", "key-2", "key-3"] {
        let mut c = Client::connect_with_key(&gw.ws_url(), Some(key))
            .await
            .unwrap();
        let sub = json!({"op":"subscribe","channel":"orders"});
        assert_eq!(c.request(sub).await["type"], "subscribed");
        clients.push(c);
    }
    // Provider 1 sells 4 GPU-hours to account 2; account 3 only watches.
    let order = |account: u64, side: &str| json!({"type":"place_order","account":account,"market":MARKET,"slot":SLOT,"side":side,"price":"2.40","quantity":"4"});
    gw.submit(env(T0 + SEC, order(1, "sell"))).await.unwrap();
    gw.submit(env(T0 + 2 * SEC, order(2, "buy"))).await.unwrap();
    // The slot starts (its gate closed): entry 1. Then the report, the dispute and
    // the resolution, which settles it.
    let start = SLOT * SEC;
    gw.submit(env(start, json!({"type":"tick"}))).await.unwrap();
    let commands = [
        json!({"type":"delivery_report","account":1,"entry":1,"delivered":"4"}),
        json!({"type":"dispute","account":2,"entry":1,"received":"2"}),
        json!({"type":"resolve_dispute","entry":1,"delivered":"3"}),
    ];
    for (i, c) in commands.into_iter().enumerate() {
        gw.submit(env(start + (i as u64 + 1) * SEC, c))
            .await
            .unwrap();
    }
    let want = [
        "delivery_scheduled",
        "delivery_reported",
        "delivery_disputed",
        "trade_settled",
        "delivery_settled",
    ];
    for c in &mut clients[..2] {
        assert_eq!(deliveries(c, want.len()).await, want);
    }
    // Account 3 traded nothing: up to a marker of its own (an order for the closed
    // slot, refused), it has seen no delivery message.
    gw.submit(env(start + 10 * SEC, order(3, "buy")))
        .await
        .unwrap();
    loop {
        let m = clients[2].recv().await;
        assert_eq!(delivery_event(&m), None, "{m}");
        if m["type"] == "order" && m["event"]["type"] == "order_rejected" {
            assert_eq!(m["event"]["reason"], "slot_closed", "{m}");
            break;
        }
    }
}
