//! API keys: who is calling.
//!
//! Owns [`Principal`], the [`Authenticator`] trait (what other modules, e.g. market
//! data's private channel, use to resolve a key) and [`KeyStore`], its
//! implementation.
//!
//! Account keys are random 32-byte secrets, written `gpux_` + 64 hex digits, shown
//! once when the account is created. Only their SHA-256 is kept, and it is kept *in
//! the command log* (`create_account`'s `api_key_sha256`): the gateway's core thread
//! learns key → account from every committed `create_account`, so every gateway that
//! follows the log knows every key, before and after a restart, without a separate
//! key database. The admin key comes from configuration; presented keys are hashed
//! and the admin digest is compared in constant time.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use gpux_engine::{AccountId, KeyDigest};
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
    accounts: RwLock<HashMap<KeyDigest, AccountId>>,
}

impl KeyStore {
    /// A store that knows only the admin key.
    pub fn new(admin_key: &str) -> Self {
        KeyStore {
            admin: key_digest(admin_key),
            accounts: RwLock::new(HashMap::new()),
        }
    }

    /// Binds `digest` to `account` (from a committed `create_account`). A digest
    /// already bound keeps its first account: a key never moves.
    pub fn insert(&self, digest: KeyDigest, account: AccountId) {
        self.accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(digest)
            .or_insert(account);
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
        if api_key.is_empty() || api_key.len() > KEY_BYTES_MAX {
            return None;
        }
        let d = key_digest(api_key);
        if ct_eq(&d, &self.admin) {
            return Some(Principal::Admin);
        }
        self.accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&d)
            .map(|&a| Principal::Account(a))
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
        store.insert(digest, 7);
        store.insert(digest, 8);
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
