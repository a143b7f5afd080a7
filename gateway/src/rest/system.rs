//! Health, the OpenAPI document, and the JSON answers for unknown routes (404) and
//! wrong methods (405), so that every answer of the API has the same error shape.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

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
