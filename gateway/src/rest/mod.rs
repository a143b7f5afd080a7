//! The REST API under `/v1`: order entry, accounts, markets and the network's
//! statistics.
//!
//! | module | owns |
//! |---|---|
//! | [`extract`] | auth, rate limits, body/path/query decoding with JSON errors |
//! | [`dto`] | request and response bodies, parsing of decimals and ids |
//! | [`orders`] | place, cancel, amend, mass cancel, open orders, one order, fills |
//! | [`accounts`] | balances, deposits, withdrawals, capacity, account creation |
//! | [`keys`] | an account's API keys: create, list, revoke |
//! | [`markets`] | list markets, one market, list a new market |
//! | [`stats`] | `GET /v1/stats`: the network in numbers |
//! | [`system`] | health, the OpenAPI document, JSON 404/405 |
//!
//! Every write goes through [`AppState::execute`]: idempotency admission, checks
//! against the replica, submission to the log, and waiting for the committed
//! command. Responses are pure functions of the caller and the committed command's
//! events, so an idempotent replay returns exactly the original answer.

pub mod accounts;
pub mod deliveries;
pub mod dto;
pub mod extract;
pub mod keys;
pub mod markets;
pub mod orders;
pub mod stats;
pub mod system;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gpux_engine::event::Rejection;
use gpux_engine::{Command, CommandEnvelope, Event, RejectReason, PROTOCOL_VERSION};
use gpux_sequencer::{SubmitError, Submitter};
use serde::Serialize;
use tokio::sync::watch;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::idempotency::{fingerprint, Admission, Outcome, RequestId, Resolution};
use crate::ratelimit::RateLimiters;
use crate::replica::{Replica, ReplicaState};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The replica, keys, requests, health, counters.
    pub shared: Arc<ReplicaState>,
    /// Where commands go.
    pub submitter: Arc<dyn Submitter>,
    /// Rate limiters.
    pub limits: Arc<RateLimiters>,
    /// Market data (for the network's statistics).
    pub market_data: crate::marketdata::MarketDataHandle,
    /// The accounts' cancel-after deadlines kept by this gateway.
    pub cancel_after: Arc<crate::cancel_after::CancelAfter>,
}

/// A committed command's outcome for a request, and whether it is a replay.
#[derive(Debug, Clone)]
pub struct Executed {
    /// What the engine decided.
    pub outcome: Arc<Outcome>,
    /// Answered from the idempotency cache (or by waiting for an identical request).
    pub replayed: bool,
}

impl Executed {
    /// The engine's rejection of this command, if it was rejected (GTD expiries of
    /// other orders never carry a rejection, so there is at most one).
    pub fn rejection(&self) -> Option<&Rejection> {
        self.outcome.events.iter().find_map(|e| match e {
            Event::OrderRejected(r) | Event::CommandRejected(r) => Some(r),
            _ => None,
        })
    }

    /// `Err` with the mapped reject code if the engine refused the command.
    pub fn accepted(&self, state: &AppState) -> Result<(), ApiError> {
        match self.rejection() {
            Some(r) => {
                state.shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                Err(reject_error(r.reason))
            }
            None => Ok(()),
        }
    }

    /// A JSON response with `Idempotent-Replayed: true` when replayed.
    pub fn respond(&self, status: StatusCode, body: impl Serialize) -> Response {
        let mut resp = (status, Json(body)).into_response();
        if self.replayed {
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        resp
    }
}

/// The HTTP status of an engine reject code: 400 for requests that can never
/// succeed as written, 404 for unknown ids (including another account's order, so
/// ids do not leak), 409 for conflicts with what exists, 422 for requests the
/// current state refuses (funds, capacity, book, limits).
pub fn reject_status(reason: RejectReason) -> StatusCode {
    use RejectReason::*;
    match reason {
        InvalidMarketSpec
        | InvalidAmount
        | InvalidOrder
        | OffTickPrice
        | PriceOutOfBand
        | InvalidQuantity
        | OffLotQuantity
        | QuantityTooLarge
        | GoodTillInPast
        | InvalidOrderRef
        | InvalidAmend
        | SlotNotOnHour
        | InvalidSlotRange
        | InvalidMinReliability => StatusCode::BAD_REQUEST,
        UnknownMarket | UnknownAccount | UnknownOrder | NotYourOrder | UnknownEntry
        | UnknownApiKey => StatusCode::NOT_FOUND,
        NotYourEntry => StatusCode::FORBIDDEN,
        MarketExists | AccountExists | DuplicateClientOrderId | ApiKeyInUse => StatusCode::CONFLICT,
        MalformedCommand => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The API error for an engine reject code (`not_your_order` is reported as
/// `unknown_order`: another account's order does not exist for the caller).
pub fn reject_error(reason: RejectReason) -> ApiError {
    let reason = match reason {
        RejectReason::NotYourOrder => RejectReason::UnknownOrder,
        r => r,
    };
    if reason == RejectReason::MalformedCommand {
        return internal();
    }
    ApiError::new(reject_status(reason), reason.code(), reason.message())
}

/// 500 without internals.
pub fn internal() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; it has been logged",
    )
}

/// How a write request identifies itself for idempotency.
pub struct Idem<'a, B: Serialize> {
    /// The operation (e.g. `place_order`).
    pub operation: &'static str,
    /// Its path parameters, joined.
    pub path: String,
    /// The normalised body.
    pub body: &'a B,
    /// The key: `Idempotency-Key`, or a fallback such as the client order id.
    pub key: Option<String>,
}

impl AppState {
    /// Runs one write: idempotency admission; `build` (checks against the replica,
    /// under a short read lock) makes the command; the command is submitted and
    /// the committed outcome awaited, all within the request timeout.
    pub async fn execute<B: Serialize>(
        &self,
        caller: Principal,
        idem: Idem<'_, B>,
        build: impl FnOnce(&Replica) -> Result<Command, ApiError>,
    ) -> Result<Executed, ApiError> {
        let deadline = Instant::now() + self.shared.cfg.request_timeout;
        let id = match &idem.key {
            Some(key) => RequestId::keyed(
                caller,
                key,
                &fingerprint(idem.operation, &idem.path, idem.body),
            ),
            None => RequestId::random(),
        };
        let requests = &self.shared.requests;
        let rx =
            match requests.admit(&id) {
                Admission::Done(outcome) => {
                    self.shared.stats.replayed.fetch_add(1, Ordering::Relaxed);
                    return Ok(Executed {
                        outcome,
                        replayed: true,
                    });
                }
                Admission::KeyReused => return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "this Idempotency-Key (or client_order_id) was used for a different request",
                )),
                Admission::Full => {
                    self.shared
                        .stats
                        .unavailable
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(overloaded());
                }
                Admission::Wait(rx) => {
                    self.shared.stats.replayed.fetch_add(1, Ordering::Relaxed);
                    let mut e = self.wait(&id, rx, deadline).await?;
                    e.replayed = true;
                    return Ok(e);
                }
                Admission::Submit(rx) => rx,
            };
        let command = {
            let replica = self.shared.read();
            // Checked again under the lock: the core marks a divergence while it
            // holds the write lock, so no precheck runs against a state known wrong.
            crate::rest::extract::not_ready(&self.shared).and_then(|()| build(&replica))
        };
        let command = match command {
            Ok(c) => c,
            Err(e) => {
                self.shared.stats.invalid.fetch_add(1, Ordering::Relaxed);
                requests.refuse(&id, e.clone());
                return Err(e);
            }
        };
        self.submit(&id, command);
        self.wait(&id, rx, deadline).await
    }

    /// Hands `command` to the log as request `id`; a refused submission resolves
    /// the request's waiters with the failure.
    fn submit(&self, id: &RequestId, command: Command) {
        let payload = CommandEnvelope {
            v: PROTOCOL_VERSION,
            ts_ns: self.shared.cfg.time.now_ns(),
            request_id: Some(id.request_id.clone()),
            // Keyed: the engine applies the request once, however often it is sent.
            idempotent: id.fingerprint.is_some(),
            command,
        }
        .to_json()
        .into_bytes();
        let shared = Arc::clone(&self.shared);
        let failed_id = id.clone();
        self.shared.stats.submitted.fetch_add(1, Ordering::Relaxed);
        self.submitter.submit(
            payload,
            Box::new(move |r| {
                if let Err(e) = r {
                    shared.requests.fail(&failed_id, e);
                }
            }),
        );
    }

    async fn wait(
        &self,
        id: &RequestId,
        mut rx: watch::Receiver<Option<Resolution>>,
        deadline: Instant,
    ) -> Result<Executed, ApiError> {
        let waited = tokio::time::timeout_at(deadline.into(), rx.wait_for(Option::is_some)).await;
        let resolution = match waited {
            Ok(Ok(r)) => r.clone(),
            Ok(Err(_)) => {
                self.shared
                    .stats
                    .unavailable
                    .fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::unavailable(
                    "the gateway is shutting down; retry with the same Idempotency-Key",
                ));
            }
            Err(_) => {
                self.shared.requests.abandon(id);
                self.shared.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the command was not confirmed in time; it may still take effect. Retry with the same Idempotency-Key to get its result without repeating it",
                )
                .retry_after(1));
            }
        };
        match resolution {
            Some(Resolution::Committed(outcome)) => Ok(Executed {
                outcome,
                replayed: false,
            }),
            Some(Resolution::Refused(e)) => Err(e),
            Some(Resolution::Failed(e)) => {
                self.shared
                    .stats
                    .unavailable
                    .fetch_add(1, Ordering::Relaxed);
                Err(submit_error(e))
            }
            None => Err(internal()),
        }
    }
}

fn overloaded() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the exchange is busy; retry after the number of seconds in Retry-After",
    )
    .retry_after(1)
}

/// The API error for a refused submission (no internals in the body).
pub fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Overloaded => overloaded(),
        SubmitError::Unavailable(why) => {
            tracing::error!(%why, "the command log is unavailable");
            ApiError::unavailable("the exchange is unavailable; retry later")
        }
        SubmitError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "command_too_large",
            "the resulting command is larger than the exchange accepts",
        ),
    }
}
