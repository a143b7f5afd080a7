//! Delivery slots end to end over HTTP: capacity over a range of slots, orders at
//! a slot, an all-or-none window order and a colocated (cluster) order, the
//! forward curve, ask blocks, a resale cancelled by slot, and the delivery
//! schedule after a gate closes.

mod common;

use common::{d, dec, slot_secs, Harness, ADMIN, MARKET};
use gpux_engine::slot::format_slot;
use serde_json::{json, Value};

fn rows(curve: &Value) -> Vec<&Value> {
    curve["slots"].as_array().unwrap().iter().collect()
}

fn md(slot: &str, what: &str) -> String {
    format!("/v1/markets/{MARKET}/slots/{slot}/{what}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one story across two slots, each step following from the last
async fn slots_windows_clusters_curve_and_schedule() {
    let h = Harness::start().await;
    h.list_market().await;
    let (p1, k1) = h.account().await;
    let (p2, k2) = h.account().await;
    let (dm, kd) = h.account().await;
    h.deposit(dm, "1000").await;
    let (s0, s1) = (format_slot(slot_secs()), format_slot(slot_secs() + 3_600));
    for (k, to, q) in [(&k1, &s1, "10"), (&k2, &s1, "4")] {
        h.post(
            "/v1/capacity/add",
            Some(k),
            json!({"market": MARKET, "from_slot": s0, "to_slot": to, "quantity": q}),
        )
        .await
        .expect(200, None);
    }
    for (k, slot, price, q) in [
        (&k1, &s0, "2.00", "6"),
        (&k1, &s1, "2.10", "6"),
        (&k2, &s0, "1.90", "4"),
        (&k2, &s1, "1.95", "4"),
    ] {
        let r = h
            .place(k, json!({"market": MARKET, "slot": slot, "side": "sell", "price": price, "quantity": q}))
            .await;
        r.expect(200, None);
        assert_eq!(
            (r.body["slot"].as_str(), r.body["status"].as_str()),
            (Some(slot.as_str()), Some("open"))
        );
    }

    // The forward curve: one row per slot with order activity (market data is
    // published asynchronously, each slot's book on its own: wait for both
    // slots' last asks to show).
    let curve_path = format!("/v1/markets/{MARKET}/slots");
    let ask_is =
        |row: &Value, want: &str| row["best_ask"].is_string() && dec(&row["best_ask"]) == d(want);
    let curve = h
        .get_until(&curve_path, None, |c| {
            rows(c).len() == 2 && ask_is(rows(c)[0], "1.90") && ask_is(rows(c)[1], "1.95")
        })
        .await;
    let r = rows(&curve);
    assert_eq!(
        (r[0]["slot"].as_str(), r[1]["slot"].as_str()),
        (Some(s0.as_str()), Some(s1.as_str()))
    );
    assert_eq!(
        (dec(&r[0]["best_ask"]), dec(&r[1]["best_ask"])),
        (d("1.90"), d("1.95"))
    );
    assert!(r[0]["best_bid"].is_null() && r[0]["last_price"].is_null());
    assert_eq!(dec(&r[0]["volume"]), d("0"));

    // Ask blocks: at each price, the largest block one provider's own inventory backs.
    let b = h.get(&md(&s0, "blocks"), None).await;
    b.expect(200, None);
    let asks: Vec<(_, _, _)> = b.body["asks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                dec(&l["price"]),
                dec(&l["quantity"]),
                dec(&l["largest_block"]),
            )
        })
        .collect();
    assert_eq!(
        asks,
        vec![(d("1.90"), d("4"), d("4")), (d("2.00"), d("6"), d("6"))]
    );

    // A window: 3 GPUs in both slots, all or nothing, at the best asks.
    let w = h
        .place(
            &kd,
            json!({"market": MARKET, "window": {"from_slot": s0, "to_slot": s1}, "side": "buy", "price": "2.00", "quantity": "3", "time_in_force": "fok"}),
        )
        .await;
    w.expect(200, None);
    assert_eq!(
        (w.body["slot"].as_str(), w.body["to_slot"].as_str()),
        (Some(s0.as_str()), Some(s1.as_str()))
    );
    // 3 GPUs in each of two hours: 6 GPU-hours ordered and filled.
    assert_eq!(
        (dec(&w.body["quantity"]), dec(&w.body["filled"])),
        (d("6"), d("6"))
    );
    assert_eq!(w.body["status"], "filled");
    let fills = w.body["fills"].as_array().unwrap();
    let legs: Vec<_> = fills
        .iter()
        .map(|f| {
            (
                f["slot"].as_str().unwrap(),
                dec(&f["price"]),
                dec(&f["quantity"]),
            )
        })
        .collect();
    assert_eq!(
        legs,
        vec![
            (s0.as_str(), d("1.90"), d("3")),
            (s1.as_str(), d("1.95"), d("3"))
        ]
    );

    // A cluster: 5 GPUs in s0 from one provider's own machines; only provider 1
    // has 5 at or under 2.00. Eight are more than anyone has: refused, no effect.
    let c = h
        .place(
            &kd,
            json!({"market": MARKET, "slot": s0, "colocate": true, "side": "buy", "price": "2.00", "quantity": "5", "time_in_force": "fok"}),
        )
        .await;
    c.expect(200, None);
    assert_eq!(c.body["colocate"], true);
    assert_eq!(dec(&c.body["filled"]), d("5"));
    assert!(c.body["fills"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| dec(&f["price"]) == d("2.00")));
    h.place(
        &kd,
        json!({"market": MARKET, "slot": s0, "colocate": true, "side": "buy", "price": "2.00", "quantity": "8", "time_in_force": "fok"}),
    )
    .await
    .expect(422, Some("cluster_not_fillable"));

    // The demander resells 2 GPUs of s0, then cancels everything it has in s0.
    h.place(
        &kd,
        json!({"market": MARKET, "slot": s0, "side": "sell", "price": "2.50", "quantity": "2"}),
    )
    .await
    .expect(200, None);
    let open = h
        .get(&format!("/v1/orders?market={MARKET}&slot={s0}"), Some(&kd))
        .await;
    open.expect(200, None);
    let open = open.body["orders"].as_array().unwrap().clone();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0]["slot"].as_str(), open[0]["side"].as_str()),
        (Some(s0.as_str()), Some("sell"))
    );
    let none = h
        .get(&format!("/v1/orders?market={MARKET}&slot={s1}"), Some(&kd))
        .await;
    assert_eq!(none.body["orders"], json!([]));
    let mc = h
        .delete(&format!("/v1/orders?market={MARKET}&slot={s0}"), Some(&kd))
        .await;
    mc.expect(200, None);
    assert_eq!(
        (mc.body["slot"].as_str(), mc.body["count"].as_u64()),
        (Some(s0.as_str()), Some(1))
    );

    let bal = h.get("/v1/balances", Some(&kd)).await.body;
    let held: Vec<_> = bal["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["slot"].as_str().unwrap(),
                dec(&g["available"]),
                dec(&g["inventory"]),
            )
        })
        .collect();
    assert_eq!(
        held,
        vec![(s0.as_str(), d("8"), d("0")), (s1.as_str(), d("3"), d("0"))]
    );
    let curve = h
        .get_until(&curve_path, None, |c| {
            // Both slots' books publish on their own: wait for both.
            let volume_is = |row: &Value, want: &str| {
                row["volume"].is_string() && dec(&row["volume"]) == d(want)
            };
            rows(c).len() == 2 && volume_is(rows(c)[0], "8") && volume_is(rows(c)[1], "3")
        })
        .await;
    assert_eq!(dec(&rows(&curve)[0]["last_price"]), d("2.00"));
    assert_eq!(dec(&rows(&curve)[1]["volume"]), d("3"));

    // Engine time passes s0's gate (a tick in the log; s1 still trades).
    h.submit_raw(
        json!({"v": 3, "ts_ns": (slot_secs() + 1) * 1_000_000_000, "command": {"type": "tick"}}),
    )
    .await;
    let schedule = format!("/v1/accounts/{dm}/schedule");
    let got = h
        .get_until(&schedule, Some(&kd), |s| {
            s["entries"].as_array().is_some_and(|e| e.len() == 2)
        })
        .await;
    let entries: Vec<_> = got["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["slot"].as_str().unwrap(),
                e["role"].as_str().unwrap(),
                e["provider"].as_u64().unwrap(),
                e["holder"].as_u64().unwrap(),
                dec(&e["quantity"]),
                e["trades"].as_array().unwrap().len(),
            )
        })
        .collect();
    let mut want = vec![
        (s0.as_str(), "holder", p2, dm, d("3"), 1),
        (s0.as_str(), "holder", p1, dm, d("5"), 1),
    ];
    let mut sorted = entries.clone();
    sorted.sort_by_key(|e| e.2);
    want.sort_by_key(|e| e.2);
    assert_eq!(sorted, want);
    // Provider 1 sees the same delivery from its side; its unsold GPUs expired.
    let p1s = h
        .get(&format!("/v1/accounts/{p1}/schedule"), Some(ADMIN))
        .await
        .body;
    assert_eq!(p1s["entries"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            p1s["entries"][0]["role"].as_str(),
            p1s["entries"][0]["holder"].as_u64()
        ),
        (Some("provider"), Some(dm))
    );
    // s0 left the curve and the balances; s1 is untouched.
    let curve = h.get_until(&curve_path, None, |c| rows(c).len() == 1).await;
    assert_eq!(rows(&curve)[0]["slot"], s1.as_str());
    let bal = h.get("/v1/balances", Some(&kd)).await.body;
    assert_eq!(bal["gpus"].as_array().unwrap().len(), 1);
    assert_eq!(bal["gpus"][0]["slot"], s1.as_str());
    // Nothing went through the most trades a GPU may: none is kept to the gate.
    assert_eq!(dec(&bal["gpus"][0]["kept"]), d("0"));
    // Trading in s0 has stopped.
    h.place(
        &kd,
        json!({"market": MARKET, "slot": s0, "side": "buy", "price": "2.00", "quantity": "1"}),
    )
    .await
    .expect(422, Some("slot_closed"));
    h.stop().await;
}
