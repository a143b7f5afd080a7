//! An account's API keys over REST: create one (the gateway generates it and
//! answers it once), list them (an id and the scope, never the key), revoke one.
//!
//! Every route needs the account's own `full` key (the scope table is
//! [`crate::auth::scope_allows`]). Keys change only through the log (`add_api_key`,
//! `revoke_api_key`), so every gateway and every restart agree; a key is known
//! here by its **id**, the first [`KEY_ID_HEX`] hex digits of its SHA-256. Rotation
//! is create, switch the client over, revoke the old key; the engine refuses to
//! revoke an account's last key.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gpux_engine::command::{AddApiKey, RevokeApiKey};
use gpux_engine::limits::API_KEYS_PER_ACCOUNT_MAX;
use gpux_engine::{AccountId, Command, KeyDigest, KeyScope, RejectReason};
use serde::{Deserialize, Serialize};

use super::extract::{AccountCaller, ApiJson, ApiPath, IdempotencyKey};
use super::{reject_error, AppState, Idem};
use crate::auth::{bearer, generate_key, key_digest, Bearer, Principal};
use crate::error::ApiError;

/// Hex digits of a key's SHA-256 that name it (64 bits: unique among one
/// account's few keys).
pub const KEY_ID_HEX: usize = 16;

/// `POST /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// `full`, `trade` or `read`.
    pub scope: String,
}

/// A key created.
#[derive(Debug, Clone, Serialize)]
pub struct CreateKeyResponse {
    /// The account.
    pub account: AccountId,
    /// The new key: only in the answer of the request that created it (not on an
    /// idempotent replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Its id.
    pub key_id: String,
    /// Its scope.
    pub scope: KeyScope,
    /// The command.
    pub cmd_seq: u64,
}

/// One key as listed.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// Its id: the first hex digits of its SHA-256.
    pub key_id: String,
    /// Its scope.
    pub scope: KeyScope,
    /// Whether it is the key of this request.
    pub current: bool,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, Serialize)]
pub struct KeysResponse {
    /// The account.
    pub account: AccountId,
    /// Its keys, by id.
    pub keys: Vec<KeyView>,
    /// The replica's last applied command.
    pub as_of_cmd_seq: u64,
}

/// A key revoked.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeKeyResponse {
    /// The account.
    pub account: AccountId,
    /// The revoked key's id.
    pub key_id: String,
    /// The command.
    pub cmd_seq: u64,
}

/// A key's id.
pub fn key_id(d: &KeyDigest) -> String {
    d.to_hex()[..KEY_ID_HEX].to_owned()
}

fn parse_scope(s: &str) -> Result<KeyScope, ApiError> {
    match s {
        "full" => Ok(KeyScope::Full),
        "trade" => Ok(KeyScope::Trade),
        "read" => Ok(KeyScope::Read),
        _ => Err(ApiError::bad_request(
            "invalid_scope",
            "scope is full, trade or read",
        )),
    }
}

/// `POST /v1/keys`: a new key for the caller's account, with a scope.
pub async fn create(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let scope = parse_scope(&req.scope)?;
    let (api_key, digest) = generate_key();
    let idem = Idem {
        operation: "add_api_key",
        path: String::new(),
        body: &req,
        key: key.map(|k| format!("header:{k}")),
    };
    let ex = state
        .execute(Principal::Account(account), idem, |r| {
            if r.engine.api_keys(account).len() >= API_KEYS_PER_ACCOUNT_MAX {
                return Err(reject_error(RejectReason::TooManyApiKeys));
            }
            Ok(Command::AddApiKey(AddApiKey {
                account,
                api_key_sha256: digest,
                scope,
            }))
        })
        .await?;
    ex.accepted(&state)?;
    let added = ex
        .outcome
        .events
        .iter()
        .find_map(|e| match e {
            gpux_engine::Event::ApiKeyAdded(k) => Some(k.api_key_sha256),
            _ => None,
        })
        .ok_or_else(super::internal)?;
    Ok(ex.respond(
        StatusCode::CREATED,
        CreateKeyResponse {
            account,
            api_key: (!ex.replayed).then_some(api_key),
            key_id: key_id(&added),
            scope,
            cmd_seq: ex.outcome.cmd_seq,
        },
    ))
}

/// `GET /v1/keys`: the caller's account's keys (ids and scopes).
pub async fn list(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let current = match bearer(&headers) {
        Bearer::Key(k) => Some(key_digest(k)),
        _ => None,
    };
    let r = state.shared.read();
    let keys = r
        .engine
        .api_keys(account)
        .into_iter()
        .map(|(d, scope)| KeyView {
            key_id: key_id(&d),
            scope,
            current: Some(d) == current,
        })
        .collect();
    Ok(Json(KeysResponse {
        account,
        keys,
        as_of_cmd_seq: r.engine.last_seq(),
    })
    .into_response())
}

/// `DELETE /v1/keys/{key_id}`: revokes one of the caller's account's keys (not
/// its last: `last_api_key`).
pub async fn revoke(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    if id.len() != KEY_ID_HEX || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ApiError::bad_request(
            "invalid_key_id",
            format!("a key id is {KEY_ID_HEX} lowercase hex digits, as GET /v1/keys lists them"),
        ));
    }
    let idem = Idem {
        operation: "revoke_api_key",
        path: id.clone(),
        body: &(),
        key: key.map(|k| format!("header:{k}")),
    };
    let ex = state
        .execute(Principal::Account(account), idem, |r| {
            let found: Vec<KeyDigest> = r
                .engine
                .api_keys(account)
                .into_iter()
                .map(|(d, _)| d)
                .filter(|d| key_id(d) == id)
                .collect();
            match found[..] {
                [d] => Ok(Command::RevokeApiKey(RevokeApiKey {
                    account,
                    api_key_sha256: d,
                    allow_last: false,
                })),
                _ => Err(reject_error(RejectReason::UnknownApiKey)),
            }
        })
        .await?;
    ex.accepted(&state)?;
    Ok(ex.respond(
        StatusCode::OK,
        RevokeKeyResponse {
            account,
            key_id: id,
            cmd_seq: ex.outcome.cmd_seq,
        },
    ))
}
