//! Extractors that turn an HTTP request into checked values, or into an
//! [`ApiError`] with the API's JSON shape (axum's own rejections are plain text).
//!
//! Owns who-is-calling ([`Caller`], [`AccountCaller`], [`AdminCaller`],
//! [`Anonymous`]: readiness, authentication and rate limiting, in that order),
//! [`ApiJson`] (body: media type, arrival time, size, syntax, a JSON object, schema),
//! [`ApiPath`], [`ApiQuery`] and [`IdempotencyKey`].
//!
//! Readiness means more than "started": a replica that found itself diverged
//! from the ledger, or is rebuilding after that, refuses every request that reads
//! it or checks against it (503 `replica_diverged` / `replica_rebuilding`), so no
//! one is told a balance, an open order or a precheck from a wrong state.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use gpux_engine::AccountId;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::auth::{bearer, scope_allows, Bearer, Principal};
use crate::error::ApiError;
use crate::idempotency;
use gpux_engine::KeyScope;

/// `Err` with the 503 to answer unless the replica serves (caught up, following
/// the ledger without divergence).
pub fn not_ready(shared: &crate::replica::ReplicaState) -> Result<(), ApiError> {
    shared.serving().map_err(ApiError::from)
}

/// The client's address, from the connection.
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// 400 for a request with more than one `Authorization` header.
pub fn repeated_authorization() -> ApiError {
    ApiError::bad_request(
        "repeated_authorization",
        "send exactly one Authorization header (Authorization: Bearer <key>)",
    )
}

/// 403 for a key whose scope does not allow the request.
pub fn insufficient_scope(scope: KeyScope) -> ApiError {
    let what = match scope {
        KeyScope::Read => "a read key may only read (GET) the account's data",
        KeyScope::Trade => {
            "a trade key may trade, report and dispute, but not withdraw or manage keys"
        }
        KeyScope::Full => "a full key may do anything",
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!(
            "this key's scope is {}: {what}; use a full key",
            scope.name()
        ),
    )
}

fn limited(state: &AppState, e: ApiError) -> ApiError {
    state
        .shared
        .stats
        .rate_limited
        .fetch_add(1, Ordering::Relaxed);
    e
}

/// An authenticated caller (any valid key), within its rate limit.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        not_ready(&state.shared)?;
        let key = match bearer(&parts.headers) {
            Bearer::Key(k) => Some(k),
            Bearer::Absent | Bearer::Malformed => None,
            Bearer::Repeated => {
                state
                    .limits
                    .check_ip(client_ip(parts), &parts.extensions)
                    .map_err(|e| limited(state, e))?;
                return Err(repeated_authorization());
            }
        };
        match key.and_then(|k| state.shared.keys.resolve(k)) {
            Some((p, scope)) => {
                state
                    .limits
                    .check_key(p, &parts.extensions)
                    .map_err(|e| limited(state, e))?;
                if !scope_allows(scope, &parts.method, parts.uri.path()) {
                    return Err(insufficient_scope(scope));
                }
                Ok(Caller(p))
            }
            None => {
                state
                    .limits
                    .check_ip(client_ip(parts), &parts.extensions)
                    .map_err(|e| limited(state, e))?;
                Err(ApiError::unauthorized())
            }
        }
    }
}

/// A trading account's key.
#[derive(Debug, Clone, Copy)]
pub struct AccountCaller(pub AccountId);

impl FromRequestParts<AppState> for AccountCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await?.0 {
            Principal::Account(a) => Ok(AccountCaller(a)),
            Principal::Admin => Err(ApiError::forbidden(
                "this endpoint acts for a trading account: use the account's key",
            )),
        }
    }
}

/// The admin key.
#[derive(Debug, Clone, Copy)]
pub struct AdminCaller;

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await?.0 {
            Principal::Admin => Ok(AdminCaller),
            Principal::Account(_) => Err(ApiError::forbidden("this endpoint needs the admin key")),
        }
    }
}

/// A public endpoint's caller: no key needed; limited per IP address.
#[derive(Debug, Clone, Copy)]
pub struct Anonymous;

impl FromRequestParts<AppState> for Anonymous {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        not_ready(&state.shared)?;
        state
            .limits
            .check_ip(client_ip(parts), &parts.extensions)
            .map_err(|e| limited(state, e))?;
        Ok(Anonymous)
    }
}

/// A self-serve signup's caller: no key; limited per IP address by the request
/// bucket and by the signup bucket.
#[derive(Debug, Clone, Copy)]
pub struct SignupCaller;

impl FromRequestParts<AppState> for SignupCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Anonymous::from_request_parts(parts, state).await?;
        state
            .limits
            .check_signup(client_ip(parts), &parts.extensions)
            .map_err(|e| limited(state, e))?;
        Ok(SignupCaller)
    }
}

/// The `Idempotency-Key` header, if sent (1 to 128 visible ASCII characters).
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        match v.to_str() {
            Ok(k) if idempotency::valid_key(k) => Ok(IdempotencyKey(Some(k.to_string()))),
            _ => Err(ApiError::bad_request(
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key must be 1 to {} visible ASCII characters",
                    idempotency::IDEMPOTENCY_KEY_BYTES_MAX
                ),
            )),
        }
    }
}

/// A JSON object body decoded into `T` (whose DTOs deny unknown fields). The whole
/// body must arrive within the configured `body_read_timeout` (else 408
/// `body_timeout`, and the connection is closed).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let json = ct
                .to_str()
                .ok()
                .and_then(|s| s.split(';').next())
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
            if !json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ));
            }
        }
        let read = Bytes::from_request(req, state);
        let Ok(read) = tokio::time::timeout(state.shared.cfg.body_read_timeout, read).await else {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body did not arrive in time; send it at once after the headers",
            )
            .close_connection());
        };
        let bytes = read.map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than this endpoint accepts",
                )
            } else {
                ApiError::bad_request("invalid_body", "the request body could not be read")
            }
        })?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// Decodes a JSON body with the API's error codes: `malformed_json` for bytes
/// that are not JSON, `invalid_body` for JSON of the wrong shape.
///
/// Only a JSON object is a request body. serde's derived structs also accept a
/// JSON array, taking fields by position (`["r.us","buy",…]` would place an
/// order); a body whose first token opens an array is refused here, for every
/// request type at once, before it reaches serde.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first == Some(&b'[') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object ({\"field\": value, …}), not an array",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::bad_request("invalid_body", e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
            }
        }
    })
}

/// Path parameters decoded into `T`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// Query parameters decoded into `T`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}
