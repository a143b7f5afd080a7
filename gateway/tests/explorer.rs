//! The explorer's side of the gateway over real sockets: the embedded pages are
//! served with their types and a same-origin-only Content-Security-Policy, they
//! name no other origin, and `GET /v1/stats` adds up the network (GPU-hours
//! offered and sold in open hours, scheduled at the gates, 24 h notional, the
//! providers) and, after settlement, the GPU-hours delivered, each provider's
//! reliability and disputes lost, and the reliability histogram.

mod common;

use common::{d, dec, slot_secs, Harness, MARKET};
use serde_json::{json, Value};

/// GETs a page: 200, its content type, the same-origin-only policy; its body.
async fn page(h: &Harness, path: &str) -> String {
    let r = h
        .http
        .get(format!("{}{path}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let ct = header("content-type");
    let want = match path.rsplit('.').next().unwrap() {
        "js" => "text/javascript",
        "css" => "text/css",
        "LICENSE" => "text/plain",
        _ => "text/html",
    };
    assert!(ct.starts_with(want), "{path}: {ct}");
    let csp = header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
    assert!(csp.contains("connect-src 'self'"), "{path}: {csp}");
    let body = r.text().await.unwrap();
    assert!(!body.is_empty(), "{path}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_embedded_same_origin_only_and_apart_from_the_api() {
    let h = Harness::start().await;
    let pages = gpux_gateway::pages::served_pages();
    assert!(pages.contains(&("GET".into(), "/".into())));
    for (method, path) in &pages {
        assert_eq!(method, "GET");
        let body = page(&h, path).await;
        // The page's own files name no other origin (the vendored library's
        // licence and attribution link are not requests).
        if !path.contains("/vendor/") {
            for scheme in ["http://", "https://", "//fonts.", "//cdn"] {
                assert!(!body.contains(scheme), "{path} names {scheme}");
            }
        }
    }
    // The page loads its script, styles and the pinned chart library.
    let index = h
        .http
        .get(&h.base)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for asset in [
        "/explorer/app.js",
        "/explorer/app.css",
        "/explorer/vendor/lightweight-charts.js",
    ] {
        assert!(index.contains(asset), "{asset}");
    }
    let lib = h
        .http
        .get(format!("{}/explorer/vendor/lightweight-charts.js", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(lib.contains(&format!(
        "Lightweight Charts™ v{}",
        gpux_gateway::pages::CHARTS_VERSION
    )));
    // The pages are no API routes, and the API's 404 stays JSON.
    assert!(gpux_gateway::served_routes()
        .iter()
        .all(|r| !pages.contains(r)));
    h.get("/explorer/nothing.js", None)
        .await
        .expect(404, Some("not_found"));
    h.stop().await;
}

fn providers(stats: &Value) -> Vec<(u64, rust_decimal::Decimal, rust_decimal::Decimal)> {
    stats["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["account"].as_u64().unwrap(),
                dec(&p["gpu_hours_listed"]),
                dec(&p["gpu_hours_scheduled"]),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_add_up_offers_sales_notional_and_deliveries() {
    let h = Harness::start().await;
    let empty = h.get("/v1/stats", None).await;
    empty.expect(200, None);
    assert_eq!(
        (
            &empty.body["markets"],
            &empty.body["open_slots"],
            &empty.body["active_providers"],
            &empty.body["providers"]
        ),
        (&json!(0), &json!(0), &json!(0), &json!([]))
    );
    assert_eq!(dec(&empty.body["notional_24h"]), d("0"));
    assert_eq!(dec(&empty.body["gpu_hours_delivered"]), d("0"));
    assert_eq!(histogram(&empty.body), (vec![0; 10], 0));

    let ((p, kp), (_, kd)) = h.provider_and_demander().await;
    h.place(
        &kp,
        json!({"market": MARKET, "side": "sell", "price": "2.00", "quantity": "6"}),
    )
    .await
    .expect(200, None);
    h.place(&kd, json!({"market": MARKET, "side": "buy", "price": "2.00", "quantity": "2", "time_in_force": "ioc"}))
        .await
        .expect(200, None);
    // Market data publishes asynchronously: wait for the sale to show.
    let s = h
        .get_until("/v1/stats", None, |s| {
            s["gpu_hours_sold"] == "2.0" && s["gpu_hours_listed"] == "4.0"
        })
        .await;
    assert_eq!((&s["markets"], &s["open_slots"]), (&json!(1), &json!(1)));
    assert_eq!(dec(&s["gpu_hours_listed"]), d("4"));
    assert_eq!(dec(&s["notional_24h"]), d("4.00"));
    assert_eq!(dec(&s["gpu_hours_scheduled"]), d("0"));
    assert_eq!(s["active_providers"], 1);
    assert_eq!(providers(&s), vec![(p, d("4"), d("0"))]);

    // Engine time passes the slot's gate: its asks are cancelled, the 2 GPUs sold
    // are scheduled for delivery, and the slot leaves the open hours.
    h.submit_raw(
        json!({"v": 3, "ts_ns": (slot_secs() + 1) * 1_000_000_000, "command": {"type": "tick"}}),
    )
    .await;
    let s = h
        .get_until("/v1/stats", None, |s| s["open_slots"] == 0)
        .await;
    assert_eq!(dec(&s["gpu_hours_scheduled"]), d("2"));
    assert_eq!(dec(&s["gpu_hours_listed"]), d("0"));
    assert_eq!(s["active_providers"], 0);
    assert_eq!(providers(&s), vec![(p, d("0"), d("2"))]);
    // The day's notional still counts the closed slot's trade.
    assert_eq!(dec(&s["notional_24h"]), d("4.00"));
    h.stop().await;
}

/// The reliability histogram's counts, bucket by bucket (checking the buckets'
/// bounds: tenths from 0 to 1), and the providers still `new`.
fn histogram(stats: &Value) -> (Vec<u64>, u64) {
    let buckets = stats["reliability_histogram"].as_array().unwrap();
    let counts = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let tenth = |n: usize| rust_decimal::Decimal::new(i64::try_from(n).unwrap(), 1);
            assert_eq!((dec(&b["from"]), dec(&b["to"])), (tenth(i), tenth(i + 1)));
            b["providers"].as_u64().unwrap()
        })
        .collect();
    (counts, stats["providers_new"].as_u64().unwrap())
}

/// Each provider's delivery record as the provider table shows it.
fn records(stats: &Value) -> Vec<(u64, String, rust_decimal::Decimal, u64)> {
    let mut rows: Vec<_> = stats["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["account"].as_u64().unwrap(),
                p["reliability"].as_str().unwrap().to_string(),
                dec(&p["gpu_hours_delivered_30d"]),
                p["disputes_lost_30d"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Two providers each sell 4 GPU-hours of the test slot to one demander; the
/// slot's gate closes (engine time, around the gateway). Returns the two
/// entries, the first provider's first.
async fn two_providers_sell_4_each(h: &Harness) -> ((u64, u64), (u64, u64), u64) {
    let ((p, kp), (dm, kd)) = h.provider_and_demander().await;
    let (q, kq) = h.account().await;
    h.add_capacity(&kq, "4").await;
    for (key, price) in [(&kp, "2.00"), (&kq, "2.50")] {
        h.place(
            key,
            json!({"market": MARKET, "side": "sell", "price": price, "quantity": "4"}),
        )
        .await
        .expect(200, None);
    }
    h.place(&kd, json!({"market": MARKET, "side": "buy", "price": "2.50", "quantity": "8", "time_in_force": "ioc"}))
        .await
        .expect(200, None);
    let s = h
        .get_until("/v1/stats", None, |s| s["gpu_hours_sold"] == "8.0")
        .await;
    // Both own GPUs in an open slot, neither has settled anything: both new.
    assert_eq!(histogram(&s), (vec![0; 10], 2));
    h.submit_raw(
        json!({"v": 3, "ts_ns": slot_secs() * 1_000_000_000, "command": {"type": "tick"}}),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let entries = loop {
        let entries = h.exchange().replica().unwrap().entries();
        if entries.len() == 2 {
            break entries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gate never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let of = |a: u64| entries.iter().find(|e| e.provider == a).unwrap().entry;
    ((p, of(p)), (q, of(q)), dm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_delivered_hours_reliability_and_disputes_lost() {
    let h = Harness::start().await;
    let ((p, pe), (q, qe), dm) = two_providers_sell_4_each(&h).await;
    // Both report 4 delivered; the demander says it got 2 of the second
    // provider's, and the admin resolves at 2: settled at once, a dispute lost.
    let at =
        |command: Value| json!({"v": 3, "ts_ns": slot_secs() * 1_000_000_000, "command": command});
    for command in [
        json!({"type": "delivery_report", "account": p, "entry": pe, "delivered": "4"}),
        json!({"type": "delivery_report", "account": q, "entry": qe, "delivered": "4"}),
        json!({"type": "dispute", "account": dm, "entry": qe, "received": "2"}),
        json!({"type": "resolve_dispute", "entry": qe, "delivered": "2"}),
    ] {
        h.submit_raw(at(command)).await;
    }
    let delivered = |want: &'static str| move |s: &Value| dec(&s["gpu_hours_delivered"]) == d(want);
    let s = h.get_until("/v1/stats", None, delivered("2")).await;
    assert_eq!(
        records(&s),
        vec![(p, "new".into(), d("0"), 0), (q, "0.5".into(), d("2"), 1)]
    );
    // Only the second provider has a record; the first, its slot closed and
    // nothing settled, is no provider now (`GET /v1/providers`), nor new.
    let mut want = vec![0; 10];
    want[5] = 1;
    assert_eq!(histogram(&s), (want.clone(), 0));
    // Past the dispute deadline the first provider's report stands.
    let past = slot_secs() + 3_600 + 7_200 + 1;
    h.submit_raw(json!({"v": 3, "ts_ns": past * 1_000_000_000, "command": {"type": "tick"}}))
        .await;
    let s = h.get_until("/v1/stats", None, delivered("6")).await;
    assert_eq!(
        records(&s),
        vec![(p, "1".into(), d("4"), 0), (q, "0.5".into(), d("2"), 1)]
    );
    want[9] = 1;
    assert_eq!(histogram(&s), (want, 0));
    // The provider records say the same.
    for (account, reliability) in [(p, "1"), (q, "0.5")] {
        let r = h.get(&format!("/v1/providers/{account}"), None).await;
        assert_eq!(r.body["reliability"], reliability);
    }
    h.stop().await;
}
