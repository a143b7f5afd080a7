//! Delivery and its settlement over REST: a provider reports what it delivered of
//! a delivery entry, the holder disputes it, an admin resolves a dispute; and
//! providers' public delivery records.
//!
//! Writes go through the log like every command, so the engine decides (report
//! and dispute windows, who may do what, the quantity within the entry) with the
//! same codes as everywhere: the checks here only refuse what is malformed or
//! names nothing (`unknown_entry`) before anything is submitted. An entry's state
//! is in the account's schedule (`GET /v1/accounts/{account}/schedule`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gpux_engine::command::{DeliveryReport, Dispute, ResolveDispute};
use gpux_engine::{AccountId, Command, Event, RejectReason};

use super::dto::{
    self, DeliveredRequest, DeliveryResponse, ProviderRecord, ProvidersResponse, ReceivedRequest,
};
use super::extract::{AccountCaller, AdminCaller, Anonymous, ApiJson, ApiPath, IdempotencyKey};
use super::{internal, reject_error, AppState, Executed, Idem};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::replica::Replica;

/// The entry exists and is unsettled.
fn check_entry(r: &Replica, entry: u64) -> Result<(), ApiError> {
    r.engine
        .entry(entry)
        .map(|_| ())
        .ok_or_else(|| reject_error(RejectReason::UnknownEntry))
}

/// What the command did to the entry: the `delivery_reported`,
/// `delivery_disputed` or `delivery_settled` of `entry`.
fn respond(state: &AppState, ex: &Executed, entry: u64) -> Result<Response, ApiError> {
    ex.accepted(state)?;
    let event = ex
        .outcome
        .events
        .iter()
        .find(|e| match e {
            Event::DeliveryReported(r) => r.entry == entry,
            Event::DeliveryDisputed(d) => d.entry == entry,
            Event::DeliverySettled(s) => s.entry == entry,
            _ => false,
        })
        .cloned()
        .ok_or_else(internal)?;
    Ok(ex.respond(
        StatusCode::OK,
        DeliveryResponse {
            entry,
            event,
            cmd_seq: ex.outcome.cmd_seq,
        },
    ))
}

/// Submits the command `build` makes for `entry` (once the entry is known to be
/// unsettled) as `caller`, idempotent under `operation` and `key`, and answers
/// with what it did to the entry.
async fn submit_for_entry<B: serde::Serialize>(
    state: AppState,
    caller: Principal,
    key: Option<String>,
    (operation, entry, body): (&'static str, u64, &B),
    build: impl FnOnce() -> Command,
) -> Result<Response, ApiError> {
    let idem = Idem {
        operation,
        path: entry.to_string(),
        body,
        key: key.map(|k| format!("header:{k}")),
    };
    let ex = state
        .execute(caller, idem, |r| {
            check_entry(r, entry)?;
            Ok(build())
        })
        .await?;
    respond(&state, &ex, entry)
}

/// `POST /v1/deliveries/{entry}/report`: the entry's provider reports how many
/// GPUs it delivered (from the slot's start until its report deadline; a later
/// report replaces an earlier one).
pub async fn report(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(entry): ApiPath<u64>,
    ApiJson(req): ApiJson<DeliveredRequest>,
) -> Result<Response, ApiError> {
    let delivered = dto::decimal("delivered", &req.delivered)?;
    let what = ("delivery_report", entry, &req);
    submit_for_entry(state, Principal::Account(account), key, what, || {
        Command::DeliveryReport(DeliveryReport {
            account,
            entry,
            delivered,
        })
    })
    .await
}

/// `POST /v1/deliveries/{entry}/dispute`: the entry's holder says it received
/// fewer GPUs (once, until the dispute deadline); the entry then waits for an
/// admin's resolution.
pub async fn dispute(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(entry): ApiPath<u64>,
    ApiJson(req): ApiJson<ReceivedRequest>,
) -> Result<Response, ApiError> {
    let received = dto::decimal("received", &req.received)?;
    let what = ("dispute", entry, &req);
    submit_for_entry(state, Principal::Account(account), key, what, || {
        Command::Dispute(Dispute {
            account,
            entry,
            received,
        })
    })
    .await
}

/// `POST /v1/deliveries/{entry}/resolve` (admin): decides what a disputed entry
/// delivered; it settles at once.
pub async fn resolve(
    State(state): State<AppState>,
    _: AdminCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(entry): ApiPath<u64>,
    ApiJson(req): ApiJson<DeliveredRequest>,
) -> Result<Response, ApiError> {
    let delivered = dto::decimal("delivered", &req.delivered)?;
    let what = ("resolve_dispute", entry, &req);
    submit_for_entry(state, Principal::Admin, key, what, || {
        Command::ResolveDispute(ResolveDispute { entry, delivered })
    })
    .await
}

fn record(r: &Replica, account: AccountId) -> ProviderRecord {
    ProviderRecord::new(
        r.engine.provider(account),
        account,
        &r.engine.provider_ahead(account),
    )
}

/// `GET /v1/providers`: every provider with a delivery record in the last 30 days
/// or GPUs listed ahead, by account (public, pseudonymous: account ids only).
pub async fn list(State(state): State<AppState>, _: Anonymous) -> Result<Response, ApiError> {
    let r = state.shared.read();
    let providers = r
        .engine
        .provider_accounts()
        .into_iter()
        .map(|a| record(&r, a))
        .collect();
    Ok(Json(ProvidersResponse {
        providers,
        as_of_cmd_seq: r.engine.last_seq(),
    })
    .into_response())
}

/// `GET /v1/providers/{account}`: one provider's record (an account that never
/// provided reads as `new`, with nothing ahead).
pub async fn get(
    State(state): State<AppState>,
    _: Anonymous,
    ApiPath(account): ApiPath<AccountId>,
) -> Result<Response, ApiError> {
    let r = state.shared.read();
    if r.engine.balances(account).is_none() {
        return Err(reject_error(RejectReason::UnknownAccount));
    }
    Ok(Json(record(&r, account)).into_response())
}
