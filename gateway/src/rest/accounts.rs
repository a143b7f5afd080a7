//! Accounts and money: balances, deposits (admin), withdrawals (an account its own
//! funds; the admin any account's, including the fee account 0), GPU-hour capacity
//! (a provider adds and removes its own), and account creation (admin, returning the
//! account's API key once).
//!
//! Checks run against the replica in the engine's order for each command
//! (`docs/PROTOCOL.md`), so what the engine would refuse is refused here with the
//! same code and nothing is submitted.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gpux_engine::command::{CapacityTransfer, CashTransfer, CreateAccount};
use gpux_engine::market::cash_micros;
use gpux_engine::{AccountId, Command, Event, KeyDigest, RejectReason, FEE_ACCOUNT};

use super::dto::{
    self, AmountRequest, BalancesResponse, CapacityRequest, CapacityResponse, CashResponse,
    CreateAccountRequest, CreateAccountResponse, PositionJson, ScheduleEntry, ScheduleResponse,
};
use super::extract::{
    AccountCaller, AdminCaller, ApiJson, ApiPath, Caller, IdempotencyKey, SignupCaller,
};
use super::{internal, reject_error, AppState, Executed, Idem};
use crate::auth::{generate_key, Principal};
use crate::error::ApiError;
use crate::marketdata::wire::SlotName;
use crate::replica::Replica;

fn header_key(key: Option<String>) -> Option<String> {
    key.map(|k| format!("header:{k}"))
}

fn balances(r: &Replica, account: AccountId) -> Result<BalancesResponse, ApiError> {
    let v = r
        .engine
        .balances(account)
        .ok_or_else(|| reject_error(RejectReason::UnknownAccount))?;
    Ok(BalancesResponse {
        account: v.account,
        usd: v.usd,
        gpus: v.gpus.iter().map(PositionJson::from).collect(),
        as_of_cmd_seq: r.engine.last_seq(),
    })
}

/// `GET /v1/balances`: the caller's balances.
pub async fn my_balances(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
) -> Result<Response, ApiError> {
    let r = state.shared.read();
    Ok(Json(balances(&r, account)?).into_response())
}

/// `GET /v1/accounts/{account}/balances` (admin): any account's balances.
pub async fn account_balances(
    State(state): State<AppState>,
    _: AdminCaller,
    ApiPath(account): ApiPath<AccountId>,
) -> Result<Response, ApiError> {
    let r = state.shared.read();
    Ok(Json(balances(&r, account)?).into_response())
}

/// `GET /v1/accounts/{account}/schedule`: the account's delivery schedule, as
/// provider and as holder (the account's own key, or the admin's).
pub async fn schedule(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(account): ApiPath<AccountId>,
) -> Result<Response, ApiError> {
    if matches!(caller, Principal::Account(a) if a != account) {
        return Err(ApiError::forbidden(
            "an account may read only its own schedule",
        ));
    }
    let r = state.shared.read();
    if r.engine.balances(account).is_none() {
        return Err(reject_error(RejectReason::UnknownAccount));
    }
    let entries = r
        .history
        .schedule(account)
        .iter()
        .map(|d| ScheduleEntry::new(account, d))
        .collect();
    Ok(Json(ScheduleResponse {
        account,
        entries,
        as_of_cmd_seq: r.engine.last_seq(),
    })
    .into_response())
}

/// The account exists and may be the target of a non-withdrawal (engine 104, 106).
fn check_account(r: &Replica, account: AccountId, fee_account_ok: bool) -> Result<(), ApiError> {
    if account == FEE_ACCOUNT && !fee_account_ok {
        return Err(reject_error(RejectReason::ReservedAccount));
    }
    if r.engine.balances(account).is_none() {
        return Err(reject_error(RejectReason::UnknownAccount));
    }
    Ok(())
}

fn cash_response(ex: &Executed, account: AccountId) -> Result<CashResponse, ApiError> {
    ex.outcome
        .events
        .iter()
        .find_map(|e| match e {
            Event::Deposited(c) | Event::Withdrawn(c) if c.account == account => {
                Some(CashResponse {
                    account,
                    amount: c.amount,
                    available: c.available,
                    cmd_seq: ex.outcome.cmd_seq,
                })
            }
            _ => None,
        })
        .ok_or_else(internal)
}

async fn cash(
    state: AppState,
    caller: Principal,
    account: AccountId,
    deposit: bool,
    key: Option<String>,
    req: AmountRequest,
) -> Result<Response, ApiError> {
    let amount = dto::decimal("amount", &req.amount)?;
    let path = account.to_string();
    let idem = Idem {
        operation: if deposit { "deposit" } else { "withdraw" },
        path,
        body: &req,
        key: header_key(key),
    };
    let ex = state
        .execute(caller, idem, |r| {
            // deposit: 104, 106, 107; withdraw: 106, 107 (account 0 may withdraw).
            check_account(r, account, !deposit)?;
            cash_micros(amount).ok_or_else(|| reject_error(RejectReason::InvalidAmount))?;
            let t = CashTransfer { account, amount };
            Ok(if deposit {
                Command::Deposit(t)
            } else {
                Command::Withdraw(t)
            })
        })
        .await?;
    ex.accepted(&state)?;
    Ok(ex.respond(StatusCode::OK, cash_response(&ex, account)?))
}

/// `POST /v1/withdrawals`: the caller withdraws its own available USD.
pub async fn withdraw(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<AmountRequest>,
) -> Result<Response, ApiError> {
    cash(state, Principal::Account(account), account, false, key, req).await
}

/// `POST /v1/accounts/{account}/deposits` (admin): USD arrived from outside.
pub async fn admin_deposit(
    State(state): State<AppState>,
    _: AdminCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(account): ApiPath<AccountId>,
    ApiJson(req): ApiJson<AmountRequest>,
) -> Result<Response, ApiError> {
    cash(state, Principal::Admin, account, true, key, req).await
}

/// `POST /v1/accounts/{account}/withdrawals` (admin): pay USD out of any account
/// (the fee account 0 included).
pub async fn admin_withdraw(
    State(state): State<AppState>,
    _: AdminCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(account): ApiPath<AccountId>,
    ApiJson(req): ApiJson<AmountRequest>,
) -> Result<Response, ApiError> {
    cash(state, Principal::Admin, account, false, key, req).await
}

async fn capacity(
    state: AppState,
    account: AccountId,
    add: bool,
    key: Option<String>,
    req: CapacityRequest,
) -> Result<Response, ApiError> {
    let market = dto::market_id(&req.market)?;
    let from_slot = dto::slot("from_slot", &req.from_slot)?;
    let to_slot = dto::slot("to_slot", &req.to_slot)?;
    let quantity = dto::decimal("quantity", &req.quantity)?;
    let idem = Idem {
        operation: if add {
            "add_capacity"
        } else {
            "remove_capacity"
        },
        path: String::new(),
        body: &req,
        key: header_key(key),
    };
    let ex = state
        .execute(Principal::Account(account), idem, |r| {
            // 103, 104, 106, 107, 204, 209, 212, 210 (then 211, 304 / 301 in
            // the engine: a slot beyond the horizon now may be within it when the
            // command is sequenced).
            let spec = r
                .engine
                .market(&market)
                .ok_or_else(|| reject_error(RejectReason::UnknownMarket))?;
            check_account(r, account, false)?;
            spec.lots(quantity).map_err(reject_error)?;
            match spec.check_range(from_slot, to_slot, state.shared.cfg.time.now_ns()) {
                Ok(_) | Err(RejectReason::SlotBeyondHorizon) => {}
                Err(e) => return Err(reject_error(e)),
            }
            let t = CapacityTransfer {
                account,
                market,
                from_slot,
                to_slot,
                quantity,
            };
            Ok(if add {
                Command::AddCapacity(t)
            } else {
                Command::RemoveCapacity(t)
            })
        })
        .await?;
    ex.accepted(&state)?;
    let c = ex
        .outcome
        .events
        .iter()
        .find_map(|e| match e {
            Event::CapacityAdded(c) | Event::CapacityRemoved(c) if c.account == account => Some(c),
            _ => None,
        })
        .ok_or_else(internal)?;
    Ok(ex.respond(
        StatusCode::OK,
        CapacityResponse {
            account,
            market: c.market,
            from_slot: SlotName(c.from_slot),
            to_slot: SlotName(c.to_slot),
            quantity: c.quantity,
            cmd_seq: ex.outcome.cmd_seq,
        },
    ))
}

/// `POST /v1/capacity/add`: a provider lists GPU-hours it can sell.
pub async fn add_capacity(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<CapacityRequest>,
) -> Result<Response, ApiError> {
    capacity(state, account, true, key, req).await
}

/// `POST /v1/capacity/remove`: a provider takes available GPU-hours back.
pub async fn remove_capacity(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<CapacityRequest>,
) -> Result<Response, ApiError> {
    capacity(state, account, false, key, req).await
}

/// The account a `create_account` command opened (its rejection, if refused).
fn created_account(state: &AppState, ex: &Executed) -> Result<AccountId, ApiError> {
    ex.accepted(state)?;
    ex.outcome
        .events
        .iter()
        .find_map(|e| match e {
            Event::AccountCreated(a) => Some(a.account),
            _ => None,
        })
        .ok_or_else(internal)
}

/// `POST /v1/signup` (anyone, limited per address): opens an account with no funds
/// and answers its API key, once. The account is created by the same sequenced
/// `create_account` an admin sends (only the key's SHA-256 goes to the log), so
/// every gateway and every restart know it.
pub async fn signup(State(state): State<AppState>, _: SignupCaller) -> Result<Response, ApiError> {
    let (api_key, digest) = generate_key();
    let idem = Idem {
        operation: "signup",
        path: String::new(),
        body: &(),
        key: None,
    };
    let ex = state
        .execute(Principal::Admin, idem, |_| {
            Ok(Command::CreateAccount(CreateAccount {
                account: None,
                api_key_sha256: Some(digest),
            }))
        })
        .await?;
    let account = created_account(&state, &ex)?;
    Ok(ex.respond(
        StatusCode::CREATED,
        CreateAccountResponse {
            account,
            api_key: Some(api_key),
            cmd_seq: ex.outcome.cmd_seq,
        },
    ))
}

/// `POST /v1/accounts` (admin): opens an account and returns its API key, once.
pub async fn create_account(
    State(state): State<AppState>,
    _: AdminCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<CreateAccountRequest>,
) -> Result<Response, ApiError> {
    let (api_key, digest) = match &req.api_key_sha256 {
        Some(hex) => {
            let d = KeyDigest::from_hex(hex).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_api_key_sha256",
                    "api_key_sha256 must be 64 lowercase hex digits",
                )
            })?;
            (None, d)
        }
        None => {
            let (k, d) = generate_key();
            (Some(k), d)
        }
    };
    let requested = req.account;
    let idem = Idem {
        operation: "create_account",
        path: String::new(),
        body: &req,
        key: header_key(key),
    };
    let ex = state
        .execute(Principal::Admin, idem, |r| {
            // An explicit id is checked here (104, 105); without one the engine
            // assigns the lowest free id, so gateways sharing a log never collide.
            if let Some(a) = requested {
                if a == FEE_ACCOUNT {
                    return Err(reject_error(RejectReason::ReservedAccount));
                }
                if r.engine.balances(a).is_some() {
                    return Err(reject_error(RejectReason::AccountExists));
                }
            }
            Ok(Command::CreateAccount(CreateAccount {
                account: requested,
                api_key_sha256: Some(digest),
            }))
        })
        .await?;
    let account = created_account(&state, &ex)?;
    Ok(ex.respond(
        StatusCode::CREATED,
        CreateAccountResponse {
            account,
            api_key: if ex.replayed { None } else { api_key },
            cmd_seq: ex.outcome.cmd_seq,
        },
    ))
}
