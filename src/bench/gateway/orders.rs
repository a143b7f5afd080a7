//! The order-entry phase: concurrent keep-alive HTTP clients, each with its own
//! funded account and key, placing limit orders through `POST /v1/orders` as fast
//! as the answers come.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gpux_ledger::LatencyHistogram;
use serde_json::{json, Value};

use super::wire::Http;
use super::{ms, slot_name, GatewayBenchOptions, MARKET};

/// What one client did: its latencies, the orders it placed, its first refusal.
type ClientResult = (LatencyHistogram, u64, Option<String>);

/// Runs the phase against the gateway at `base`; the report's order-entry fields.
pub(super) async fn order_phase(
    opts: &GatewayBenchOptions,
    base: &str,
    admin_key: &str,
) -> Result<Value> {
    let mut admin = Http::connect(base).await?;
    if let Some(skipped) = list_market(&mut admin, admin_key).await? {
        return Ok(skipped);
    }
    let mut keys = Vec::new();
    for _ in 0..opts.http_clients {
        keys.push(trading_account(&mut admin, admin_key).await?);
    }
    let remaining = Arc::new(AtomicU64::new(opts.orders));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        tasks.push(tokio::spawn(client(
            base.to_string(),
            i as u64,
            key,
            Arc::clone(&remaining),
            Arc::clone(&errors),
        )));
    }
    let mut hist = LatencyHistogram::default();
    let mut placed = 0;
    let mut first_error = None;
    for t in tasks {
        let (h, n, e) = t.await??;
        hist.merge(&h);
        placed += n;
        first_error = first_error.or(e);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "http_clients": opts.http_clients,
        "orders": placed,
        "order_errors": errors.load(Ordering::Relaxed),
        "first_order_error": first_error,
        "order_seconds": (secs * 1000.0).round() / 1000.0,
        "orders_per_sec": (placed as f64 / secs).round(),
        "p50_order_ms": ms(hist.quantile_us(500)),
        "p99_order_ms": ms(hist.quantile_us(990)),
        "p999_order_ms": ms(hist.quantile_us(999)),
        "max_order_ms": ms(hist.max_us()),
    }))
}

/// Lists the benchmark market (already listed is fine). Without the admin route,
/// the phase is skipped: returns the report saying so.
async fn list_market(admin: &mut Http, admin_key: &str) -> Result<Option<Value>> {
    let (s, v) = admin
        .json(
            "POST",
            "/v1/markets",
            Some(admin_key),
            &json!({"market": MARKET, "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": 0, "taker_fee_bps": 0}),
        )
        .await?;
    if s == 404 || s == 405 {
        return Ok(Some(json!({"orders_per_sec": null, "p99_order_ms": null,
            "order_entry": format!("skipped: POST /v1/markets answered {s}")})));
    }
    if s >= 300 && s != 409 {
        bail!("listing the market failed: {s} {v}");
    }
    Ok(None)
}

/// A new account with money and capacity to trade; returns its API key.
async fn trading_account(admin: &mut Http, admin_key: &str) -> Result<String> {
    let (s, v) = admin
        .json("POST", "/v1/accounts", Some(admin_key), &json!({}))
        .await?;
    if s >= 300 {
        bail!("creating an account failed: {s} {v}");
    }
    let account = v["account"].as_u64().context("no account id")?;
    let key = v["api_key"].as_str().context("no api key")?.to_string();
    let (s, v) = admin
        .json(
            "POST",
            &format!("/v1/accounts/{account}/deposits"),
            Some(admin_key),
            &json!({"amount": "100000000"}),
        )
        .await?;
    if s >= 300 {
        bail!("deposit failed: {s} {v}");
    }
    let (s, v) = admin
        .json(
            "POST",
            "/v1/capacity/add",
            Some(&key),
            &json!({"market": MARKET, "from_slot": slot_name(), "to_slot": slot_name(), "quantity": "100000000"}),
        )
        .await?;
    if s >= 300 {
        bail!("adding capacity failed: {s} {v}");
    }
    Ok(key)
}

/// Client `i`: places orders with `key`, one at a time, while `remaining` lasts;
/// counts refused orders in `errors`.
async fn client(
    base: String,
    i: u64,
    key: String,
    remaining: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) -> Result<ClientResult> {
    let mut http = Http::connect(&base).await?;
    let mut hist = LatencyHistogram::default();
    let mut n = 0u64;
    let mut first: Option<String> = None;
    while remaining
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
        .is_ok()
    {
        // Buys and sells around 2.00 from every client: about half trade,
        // the rest rest and are taken later; the book stays shallow.
        let buy = (n + i).is_multiple_of(2);
        let price = format!("{}", 195 + (n * 7 + i * 3) % 11);
        let price = format!("{}.{}", &price[..1], &price[1..]);
        let body = format!(
            r#"{{"market":"{MARKET}","slot":"{}","side":"{}","price":"{price}","quantity":"1"}}"#,
            slot_name(),
            if buy { "buy" } else { "sell" }
        );
        let t = Instant::now();
        let (s, b) = http
            .request("POST", "/v1/orders", Some(&key), body.as_bytes())
            .await?;
        hist.record_us(t.elapsed().as_micros() as u64);
        if s >= 300 {
            errors.fetch_add(1, Ordering::Relaxed);
            if first.is_none() {
                first = Some(format!("{s} {}", String::from_utf8_lossy(&b)));
            }
        }
        n += 1;
    }
    Ok((hist, n, first))
}
