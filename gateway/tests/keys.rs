//! An account's API keys over REST: created with a scope (answered once), listed
//! by id (never the key), revoked through the log; scopes enforced with 403
//! `insufficient_scope`; the last key kept; after a restart, the same keys open
//! (and the revoked ones do not); and a revoked key's WebSocket connections are
//! closed (4002) while the account's other keys keep theirs.

mod common;

use common::{Harness, Resp, MARKET};
use serde_json::{json, Value};

/// A new key of `scope` for the account of `full`; its key and id.
async fn create(h: &Harness, full: &str, scope: &str) -> (String, String) {
    let r = h
        .post("/v1/keys", Some(full), json!({ "scope": scope }))
        .await;
    r.expect(201, None);
    assert_eq!(r.body["scope"], scope, "{}", r.body);
    let key = r.body["api_key"].as_str().unwrap().to_owned();
    (key, r.body["key_id"].as_str().unwrap().to_owned())
}

async fn keys(h: &Harness, full: &str) -> Vec<Value> {
    let r = h.get("/v1/keys", Some(full)).await;
    r.expect(200, None);
    r.body["keys"].as_array().unwrap().clone()
}

#[track_caller]
fn refused_for_scope(r: &Resp) {
    r.expect(403, Some("insufficient_scope"));
}

async fn a_read_key_only_reads(h: &Harness, read: &str) {
    h.get("/v1/balances", Some(read)).await.expect(200, None);
    h.get("/v1/orders", Some(read)).await.expect(200, None);
    let order = json!({"market": MARKET, "slot": common::slot_name(), "side": "sell", "price": "2.00", "quantity": "1"});
    refused_for_scope(&h.post("/v1/orders", Some(read), order).await);
    refused_for_scope(&h.delete("/v1/orders", Some(read)).await);
    refused_for_scope(&h.get("/v1/keys", Some(read)).await);
}

async fn a_trade_key_trades_but_neither_withdraws_nor_manages_keys(h: &Harness, trade: &str) {
    let order = json!({"market": MARKET, "slot": common::slot_name(), "side": "sell", "price": "2.00", "quantity": "1"});
    // Past the scope: the engine decides (nothing to sell).
    h.post("/v1/orders", Some(trade), order)
        .await
        .expect(422, Some("insufficient_capacity"));
    let w = h
        .post("/v1/withdrawals", Some(trade), json!({"amount": "1"}))
        .await;
    refused_for_scope(&w);
    refused_for_scope(
        &h.post("/v1/keys", Some(trade), json!({"scope": "read"}))
            .await,
    );
    refused_for_scope(&h.delete("/v1/keys/0123456789abcdef", Some(trade)).await);
}

#[tokio::test]
async fn keys_are_created_scoped_listed_and_revoked_and_a_restart_agrees() {
    let mut h = Harness::start().await;
    h.list_market().await;
    let (account, full) = h.account().await;
    let listed = keys(&h, &full).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0]["scope"], &listed[0]["current"]),
        (&json!("full"), &json!(true))
    );
    let (read, read_id) = create(&h, &full, "read").await;
    let (trade, trade_id) = create(&h, &full, "trade").await;
    h.post("/v1/keys", Some(&full), json!({"scope": "admin"}))
        .await
        .expect(400, Some("invalid_scope"));
    let listed = keys(&h, &full).await;
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().all(|k| k.get("api_key").is_none()),
        "never a key: {listed:?}"
    );
    a_read_key_only_reads(&h, &read).await;
    a_trade_key_trades_but_neither_withdraws_nor_manages_keys(&h, &trade).await;

    // Revoked through the log: refused from then on.
    let r = h.delete(&format!("/v1/keys/{read_id}"), Some(&full)).await;
    r.expect(200, None);
    assert_eq!(r.body["account"], account);
    h.get("/v1/balances", Some(&read))
        .await
        .expect(401, Some("unauthorized"));
    h.delete(&format!("/v1/keys/{read_id}"), Some(&full))
        .await
        .expect(404, Some("unknown_api_key"));
    h.delete("/v1/keys/not-hex", Some(&full))
        .await
        .expect(400, Some("invalid_key_id"));
    h.delete(&format!("/v1/keys/{trade_id}"), Some(&full))
        .await
        .expect(200, None);
    // The account's last key stays.
    let full_id = keys(&h, &full).await[0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.delete(&format!("/v1/keys/{full_id}"), Some(&full))
        .await
        .expect(422, Some("last_api_key"));

    h.restart().await;
    h.get("/v1/balances", Some(&full)).await.expect(200, None);
    for gone in [&read, &trade] {
        h.get("/v1/balances", Some(gone))
            .await
            .expect(401, Some("unauthorized"));
    }
    assert_eq!(keys(&h, &full).await.len(), 1);
    h.stop().await;
}

/// Reads `ws` until its close frame (at most 30 s): the close code, or `None`
/// when it ended without one.
async fn close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = std::time::Duration::from_secs(30);
    tokio::time::timeout(deadline, async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(f)) => return f.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the connection ends within 30 s")
}

#[tokio::test]
async fn a_revoked_key_ends_the_websocket_connections_it_opened() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let h = Harness::start().await;
    h.list_market().await;
    let (_, full) = h.account().await;
    let (read, read_id) = create(&h, &full, "read").await;
    let url = format!("{}/v1/ws", h.base.replacen("http://", "ws://", 1));
    // One connection authenticated by its upgrade request's header, one by an
    // `auth` message, one by the key that stays.
    let mut by_header = url.as_str().into_client_request().unwrap();
    by_header
        .headers_mut()
        .insert("authorization", format!("Bearer {read}").parse().unwrap());
    let (mut header_ws, _) = tokio_tungstenite::connect_async(by_header).await.unwrap();
    let (mut message_ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let auth = json!({"op": "auth", "key": read}).to_string();
    message_ws.send(Message::text(auth)).await.unwrap();
    let mut kept = url.as_str().into_client_request().unwrap();
    kept.headers_mut()
        .insert("authorization", format!("Bearer {full}").parse().unwrap());
    let (mut kept_ws, _) = tokio_tungstenite::connect_async(kept).await.unwrap();
    for ws in [&mut header_ws, &mut message_ws, &mut kept_ws] {
        let sub = json!({"op": "subscribe", "channel": "orders"}).to_string();
        ws.send(Message::text(sub)).await.unwrap();
    }

    h.delete(&format!("/v1/keys/{read_id}"), Some(&full))
        .await
        .expect(200, None);
    assert_eq!(close_code(&mut header_ws).await, Some(4002));
    assert_eq!(close_code(&mut message_ws).await, Some(4002));
    // The account's other key still has its connection: it answers a request.
    kept_ws
        .send(Message::text(json!({"op": "ping", "id": 7}).to_string()))
        .await
        .unwrap();
    use futures_util::StreamExt;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match kept_ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"id\":7") => return t.to_string(),
                Some(Ok(Message::Close(f))) => panic!("closed: {f:?}"),
                Some(Ok(_)) => continue,
                other => panic!("ended: {other:?}"),
            }
        }
    })
    .await
    .expect("an answer within 30 s");
    assert!(answer.contains("pong"), "{answer}");
    h.stop().await;
}
