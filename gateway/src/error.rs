//! The one error shape of the HTTP API: `{"code": "...", "message": "..."}` with the
//! right status. Codes are stable (clients switch on them); messages are for humans.
//! Engine rejections keep the engine's reject code (`docs/PROTOCOL.md`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error: status, stable code, human message, and optionally `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (snake_case).
    pub code: String,
    /// Human-readable explanation; never internals.
    pub message: String,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after_secs: Option<u64>,
    /// Answer with `Connection: close` and close the connection after it (a
    /// client too slow to send its request is not kept).
    pub close: bool,
    /// For a refused order placement: `rejected`, sent as the body's `status`
    /// (the order status vocabulary of every answer about an order).
    pub order_status: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            retry_after_secs: None,
            close: false,
            order_status: None,
        }
    }

    /// Closes the connection after this answer.
    pub fn close_connection(mut self) -> Self {
        self.close = true;
        self
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// 400 `bad_request`-style errors.
    pub fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no or unknown API key.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid API key: send `Authorization: Bearer <key>`",
        )
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 503 with `Retry-After`; the message says what to do, never why internally.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).retry_after(1)
    }
}

impl ApiError {
    /// The same error with another code.
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = code.to_owned();
        self
    }

    /// This error as the answer to an order placement the exchange refused
    /// (bad input, unknown ids, conflicts, what the state refuses): `"status":
    /// "rejected"` in the body. Errors that decided nothing about the order
    /// (authentication, rate limits, unavailability, a reused idempotency key)
    /// are left as they are.
    pub fn order_rejected(mut self) -> Self {
        let refused = matches!(self.status.as_u16(), 400 | 404 | 409 | 422);
        if refused && self.code != "idempotency_key_reused" {
            self.order_status = Some("rejected");
        }
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Body {
            code: &self.code,
            message: &self.message,
            status: self.order_status,
        })
        .unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
