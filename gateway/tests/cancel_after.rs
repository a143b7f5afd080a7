//! The dead man's switch over real sockets: an armed switch that is not renewed
//! cancels every open order of the account through a sequenced `mass_cancel`
//! whose request id says why; a renewal moves the deadline; 0 disarms.

mod common;

use common::{slot_name, Harness, MARKET};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_switch_cancels_all_open_orders_through_the_log() {
    let h = Harness::start().await;
    let ((account, pk), _) = h.provider_and_demander().await;
    let ask = h
        .place(&pk, json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.50", "quantity": "1"}))
        .await;
    let id = ask.expect(200, None).body["order_id"].clone();

    // Armed for a day, then disarmed: the answer says so.
    let r = h
        .post(
            "/v1/cancel-after",
            Some(&pk),
            json!({"timeout_ms": 86_400_000}),
        )
        .await;
    let now = r.expect(200, None).body["current_time_ms"]
        .as_u64()
        .unwrap();
    assert_eq!(
        r.body["trigger_time_ms"].as_u64().unwrap(),
        now + 86_400_000
    );
    let r = h
        .post("/v1/cancel-after", Some(&pk), json!({"timeout_ms": 0}))
        .await;
    assert_eq!(r.expect(200, None).body["trigger_time_ms"], json!(null));
    h.post(
        "/v1/cancel-after",
        Some(&pk),
        json!({"timeout_ms": 86_400_001}),
    )
    .await
    .expect(400, Some("invalid_body"));

    // Renewed from a day down to 50 ms, and not renewed again: the order goes.
    h.post(
        "/v1/cancel-after",
        Some(&pk),
        json!({"timeout_ms": 86_400_000}),
    )
    .await
    .expect(200, None);
    let r = h
        .post("/v1/cancel-after", Some(&pk), json!({"timeout_ms": 50}))
        .await;
    let trigger = r.expect(200, None).body["trigger_time_ms"]
        .as_u64()
        .unwrap();
    let path = format!("/v1/orders/{id}");
    let o = h
        .get_until(&path, Some(&pk), |o| o["status"] != "open")
        .await;
    assert_eq!(
        (&o["status"], &o["cancel_reason"]),
        (&json!("cancelled"), &json!("mass_cancel")),
        "{o}"
    );

    // The ledger knows why: the mass cancel's request id names the switch.
    let head = h.ledger_head().0;
    let commands =
        gpux_sequencer::read_committed(&h.exchange().reader(), 1, head as usize).unwrap();
    let why = format!("cancel_after:{account}:{trigger}");
    let found = commands
        .iter()
        .find(|c| c.request_id.as_deref() == Some(why.as_str()))
        .unwrap_or_else(|| panic!("no command with request id {why}"));
    assert!(String::from_utf8_lossy(&found.payload).contains("\"mass_cancel\""));
    h.stop().await;
}
