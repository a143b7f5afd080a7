//! API keys: who is calling.
//!
//! Owns [`Principal`], the [`Authenticator`] trait (what other modules, e.g. market
//! data's private channel, use to resolve a key) and [`KeyStore`], its
//! implementation.
//!
//! Account keys are random 32-byte secrets, written `gpux_` + 64 hex digits, shown
//! once when the account is created. Only their SHA-256 is kept, and it is kept *in
//! the command log* (`create_account`'s `api_key_sha256`, `add_api_key`,
//! `revoke_api_key`) and in the engine's state: the gateway's core thread follows
//! the replica's engine, key → (account, scope), after every committed command that
//! touches keys, so every gateway that follows the log knows every key and every
//! revocation at the same `cmd_seq`, before and after a restart, without a separate
//! key database. The admin key comes from configuration; presented keys are hashed
//! and the admin digest is compared in constant time.
//!
//! Also owns what each [`KeyScope`] may do ([`scope_allows`]): one table, applied
//! to every authenticated request.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use axum::http::Method;
use gpux_engine::{AccountId, KeyDigest, KeyScope};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Who a request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The operator (admin key).
    Admin,
    /// A trading account.
    Account(AccountId),
}

/// Resolves API keys.
pub trait Authenticator: Send + Sync {
    /// The principal an API key belongs to, if any.
    fn principal(&self, api_key: &str) -> Option<Principal>;

    /// A receiver that changes whenever what keys open may have changed (a key
    /// added or revoked), so a long-lived connection can check that its key
    /// still opens what it opened; `None` when keys never change.
    fn key_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// Prefix of every account key.
pub const KEY_PREFIX: &str = "gpux_";

/// Longest API key the gateway will even hash, bytes.
pub const KEY_BYTES_MAX: usize = 256;

/// The key a request presents in `Authorization: Bearer <key>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header.
    Absent,
    /// One `Authorization: Bearer <key>` header (the key trimmed, maybe empty).
    Key(&'a str),
    /// One `Authorization` header that is not `Bearer <key>` in visible ASCII.
    Malformed,
    /// More than one `Authorization` header: which one is meant is ambiguous (a
    /// proxy may have added one), so the request is refused rather than guessed.
    Repeated,
}

/// Reads `Authorization` from `headers` (see [`Bearer`]).
pub fn bearer(headers: &axum::http::HeaderMap) -> Bearer<'_> {
    let mut all = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let Some(first) = all.next() else {
        return Bearer::Absent;
    };
    if all.next().is_some() {
        return Bearer::Repeated;
    }
    first
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map_or(Bearer::Malformed, |k| Bearer::Key(k.trim()))
}

/// Whether a key of `scope` may make a `method` request to `path`: `full`
/// anything; `trade` anything but withdrawals and key management (`/v1/keys…`);
/// `read` only `GET` (and `HEAD`) requests, and not the key list.
pub fn scope_allows(scope: KeyScope, method: &Method, path: &str) -> bool {
    let keys = path == "/v1/keys" || path.starts_with("/v1/keys/");
    match scope {
        KeyScope::Full => true,
        KeyScope::Trade => !keys && path != "/v1/withdrawals",
        KeyScope::Read => !keys && (method == Method::GET || method == Method::HEAD),
    }
}

/// SHA-256 of a key as presented.
pub fn key_digest(api_key: &str) -> KeyDigest {
    KeyDigest(Sha256::digest(api_key.as_bytes()).into())
}

/// A fresh account key (`gpux_` + 64 hex digits of a 32-byte secret from the
/// operating system's CSPRNG-seeded generator) and its digest.
pub fn generate_key() -> (String, KeyDigest) {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
    let digest = key_digest(&key);
    (key, digest)
}

/// Equality of two digests in time independent of where they differ.
fn ct_eq(a: &KeyDigest, b: &KeyDigest) -> bool {
    a.0.iter()
        .zip(b.0.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Key digests → principals: the admin digest from configuration, and account
/// digests learnt from the log.
#[derive(Debug)]
pub struct KeyStore {
    admin: KeyDigest,
    accounts: RwLock<HashMap<KeyDigest, (AccountId, KeyScope)>>,
    /// Counts changes of `accounts`, for [`Authenticator::key_changes`].
    changes: tokio::sync::watch::Sender<u64>,
}

impl KeyStore {
    /// A store that knows only the admin key.
    pub fn new(admin_key: &str) -> Self {
        KeyStore {
            admin: key_digest(admin_key),
            accounts: RwLock::new(HashMap::new()),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Sets what `digest` opens, as the engine now says (`None`: nothing, e.g.
    /// revoked).
    pub fn set(&self, digest: KeyDigest, to: Option<(AccountId, KeyScope)>) {
        let mut map = self
            .accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match to {
            Some(v) => {
                map.insert(digest, v);
            }
            None => {
                map.remove(&digest);
            }
        }
        drop(map);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Replaces every account key with `keys` (a rebuilt replica's).
    pub fn replace_all(&self, keys: impl IntoIterator<Item = (KeyDigest, AccountId, KeyScope)>) {
        let map = keys.into_iter().map(|(d, a, s)| (d, (a, s))).collect();
        *self
            .accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner) = map;
        self.changes.send_modify(|n| *n += 1);
    }

    /// The principal a key belongs to and its scope (the admin key: `full`).
    pub fn resolve(&self, api_key: &str) -> Option<(Principal, KeyScope)> {
        if api_key.is_empty() || api_key.len() > KEY_BYTES_MAX {
            return None;
        }
        let d = key_digest(api_key);
        if ct_eq(&d, &self.admin) {
            return Some((Principal::Admin, KeyScope::Full));
        }
        self.accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&d)
            .map(|&(a, s)| (Principal::Account(a), s))
    }

    /// How many account keys are known.
    pub fn len(&self) -> usize {
        self.accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no account key is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Authenticator for KeyStore {
    fn principal(&self, api_key: &str) -> Option<Principal> {
        self.resolve(api_key).map(|(p, _)| p)
    }

    fn key_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_resolve_only_once_bound() {
        let store = KeyStore::new("admin-key-of-at-least-16");
        let (key, digest) = generate_key();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + 64);
        assert_eq!(store.principal(&key), None);
        store.set(digest, Some((7, KeyScope::Trade)));
        assert_eq!(store.principal(&key), Some(Principal::Account(7)));
        assert_eq!(
            store.resolve(&key),
            Some((Principal::Account(7), KeyScope::Trade))
        );
        store.set(digest, None);
        assert_eq!(store.principal(&key), None);
        store.replace_all([(digest, 7, KeyScope::Full)]);
        assert_eq!(store.principal(&key), Some(Principal::Account(7)));
        assert_eq!(
            store.principal("admin-key-of-at-least-16"),
            Some(Principal::Admin)
        );
        assert_eq!(store.principal("admin-key-of-at-least-1"), None);
        assert_eq!(store.principal(""), None);
        let (other, _) = generate_key();
        assert_ne!(key, other);
    }

    #[test]
    fn scopes_allow_what_they_say() {
        let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
        let cases = [
            (KeyScope::Full, &post, "/v1/withdrawals", true),
            (KeyScope::Full, &post, "/v1/keys", true),
            (KeyScope::Trade, &post, "/v1/orders", true),
            (KeyScope::Trade, &delete, "/v1/orders/7", true),
            (KeyScope::Trade, &post, "/v1/deliveries/3/report", true),
            (KeyScope::Trade, &post, "/v1/withdrawals", false),
            (KeyScope::Trade, &get, "/v1/keys", false),
            (KeyScope::Trade, &delete, "/v1/keys/abcd", false),
            (KeyScope::Read, &get, "/v1/balances", true),
            (KeyScope::Read, &get, "/v1/orders", true),
            (KeyScope::Read, &post, "/v1/orders", false),
            (KeyScope::Read, &delete, "/v1/orders", false),
            (KeyScope::Read, &get, "/v1/keys", false),
        ];
        for (scope, method, path, allowed) in cases {
            assert_eq!(
                scope_allows(scope, method, path),
                allowed,
                "{scope:?} {method} {path}"
            );
        }
    }

    #[test]
    fn bearer_reads_one_header_and_refuses_two() {
        use axum::http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), Bearer::Absent);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc "));
        assert_eq!(bearer(&h), Bearer::Key("abc"));
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer def"));
        assert_eq!(bearer(&h), Bearer::Repeated);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), Bearer::Malformed);
    }
}
