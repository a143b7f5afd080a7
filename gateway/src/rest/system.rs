//! Health, the server's time, the limits a client must keep to, the OpenAPI
//! document, and the JSON answers for unknown routes (404) and wrong methods (405),
//! so that every answer of the API has the same error shape.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::extract::Anonymous;
use super::AppState;
use crate::error::ApiError;

/// `GET /v1/health`: 200 once the replica has caught up with the log and is
/// running; 503 while starting or after the core stopped. The body says which.
pub async fn health(State(state): State<AppState>) -> Response {
    let report = state.shared.health_report();
    let status = if report.ready && report.status == crate::replica::HealthStatus::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// `GET /v1/time`: the exchange's clock as this gateway stamps commands with it
/// (the wall clock, or a demo's faster one), for clients that sign or time
/// requests (`ts_ns`, `ts_ms`, and the ISO 8601 UTC form to the millisecond).
/// Public and rate limited per address like every public endpoint.
pub async fn time(State(state): State<AppState>, _: Anonymous) -> Response {
    let ns = state.shared.cfg.time.now_ns();
    Json(serde_json::json!({
        "ts_ns": ns,
        "ts_ms": ns / 1_000_000,
        "iso": iso_ms(ns),
    }))
    .into_response()
}

/// `2026-12-07T09:00:00.123Z`.
pub fn iso_ms(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let hour = gpux_engine::slot::format_slot(secs - secs % 3_600);
    format!(
        "{}:{:02}:{:02}.{:03}Z",
        &hour[..13],
        secs % 3_600 / 60,
        secs % 60,
        ns / 1_000_000 % 1_000
    )
}

fn bucket(r: Option<crate::config::RateLimit>) -> serde_json::Value {
    match r {
        Some(r) => serde_json::json!({
            "burst": r.burst,
            "replenish_interval_ms": u64::try_from(r.replenish_interval.as_millis()).unwrap_or(u64::MAX),
        }),
        None => serde_json::Value::Null,
    }
}

/// `GET /v1/limits`: the rate limits (token buckets: `burst` requests back to
/// back, one more every `replenish_interval_ms`; `null`: no limit), request bounds
/// and the WebSocket's limits, as configured on this gateway. Public.
pub async fn limits(State(state): State<AppState>, _: Anonymous) -> Response {
    let rl = state.limits.config();
    let cfg = &state.shared.cfg;
    let md = &cfg.market_data;
    Json(serde_json::json!({
        "rest": {
            "per_key": bucket(rl.per_key),
            "per_ip_anonymous": bucket(rl.per_ip_anonymous),
            "signups_per_ip": bucket(rl.signups_per_ip),
            "body_bytes_max": cfg.body_limit_bytes,
            "request_timeout_ms": u64::try_from(cfg.request_timeout.as_millis()).unwrap_or(u64::MAX),
        },
        "websocket": {
            "requests_per_sec": md.max_requests_per_sec,
            "request_burst": md.max_requests_per_sec.saturating_mul(2),
            "subscriptions_max": md.max_subscriptions,
            "connections_per_account": md.max_connections_per_account,
            "connections_per_address": md.max_connections_per_peer,
            "request_bytes_max": md.max_request_bytes,
            "frame_bytes_max": md.max_frame_bytes,
        },
    }))
    .into_response()
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> Response {
    let mut resp = crate::openapi::document_bytes().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Any path the API does not serve.
pub async fn not_found() -> ApiError {
    ApiError::not_found(
        "not_found",
        "no such endpoint; the API is described at /v1/openapi.json",
    )
}

/// A served path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take this method; see /v1/openapi.json",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_ms_is_utc_to_the_millisecond() {
        assert_eq!(
            super::iso_ms(1_796_634_000_123_456_789),
            "2026-12-07T09:00:00.123Z"
        );
        assert_eq!(
            super::iso_ms(1_796_637_599_999_000_000),
            "2026-12-07T09:59:59.999Z"
        );
    }
}
