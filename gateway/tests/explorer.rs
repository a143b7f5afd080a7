//! The explorer's side of the gateway over real sockets: the embedded pages are
//! served with their types and a same-origin-only Content-Security-Policy, they
//! name no other origin, and `GET /v1/stats` adds up the network (GPU-hours
//! offered and sold in open hours, scheduled at the gates, 24 h notional, the
//! providers).

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
