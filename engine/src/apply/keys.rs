//! Accounts' API keys: `add_api_key` and `revoke_api_key` (and the first key
//! `create_account` brings).
//!
//! The engine holds the keys (their SHA-256, never the key) and their scopes so
//! that every gateway, every restart, every snapshot and every replay agree on
//! which key opens which account with what rights; the gateway enforces the
//! scopes. Rotation is two commands: add the new key, then revoke the old one.
//! An account has at most [`API_KEYS_PER_ACCOUNT_MAX`] keys, and its last key is
//! revoked only when the command says so (`allow_last`).

use crate::book::OrderBook;
use crate::command::{AddApiKey, KeyDigest, KeyScope, RevokeApiKey};
use crate::event::{ApiKeyAdded, ApiKeyRevoked, Event, EventSink};
use crate::limits::API_KEYS_PER_ACCOUNT_MAX;
use crate::reject::RejectReason;
use crate::state::Engine;
use crate::types::{AccountId, FEE_ACCOUNT};

impl<B: OrderBook> Engine<B> {
    /// How many keys `account` has.
    pub(crate) fn key_count(&self, account: AccountId) -> usize {
        let lo = (account, KeyDigest([0; 32]));
        let hi = (account, KeyDigest([0xff; 32]));
        self.api_keys.range(lo..=hi).count()
    }

    /// Records `digest` as a key of `account`; the caller checked it is new.
    pub(crate) fn insert_key(&mut self, account: AccountId, digest: KeyDigest, scope: KeyScope) {
        let was = self.key_owners.insert(digest, account);
        assert!(was.is_none(), "a key digest belongs to one account");
        self.api_keys.insert((account, digest), scope);
    }

    /// The account exists and is not the fee account.
    fn key_account(&self, account: AccountId) -> Result<(), RejectReason> {
        if account == FEE_ACCOUNT {
            return Err(RejectReason::ReservedAccount);
        }
        if !self.accounts.contains_key(&account) {
            return Err(RejectReason::UnknownAccount);
        }
        Ok(())
    }

    /// `add_api_key`: checks, in order, the account (`reserved_account`,
    /// `unknown_account`), the digest (`api_key_in_use`) and the count
    /// (`too_many_api_keys`).
    pub(super) fn add_api_key<S: EventSink>(
        &mut self,
        c: &AddApiKey,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        self.key_account(c.account)?;
        if self.key_owners.contains_key(&c.api_key_sha256) {
            return Err(RejectReason::ApiKeyInUse);
        }
        if self.key_count(c.account) >= API_KEYS_PER_ACCOUNT_MAX {
            return Err(RejectReason::TooManyApiKeys);
        }
        self.insert_key(c.account, c.api_key_sha256, c.scope);
        out.push(Event::ApiKeyAdded(ApiKeyAdded {
            account: c.account,
            api_key_sha256: c.api_key_sha256,
            scope: c.scope,
        }));
        Ok(())
    }

    /// `revoke_api_key`: checks, in order, the account (`reserved_account`,
    /// `unknown_account`), the key (`unknown_api_key`: not this account's) and
    /// the last key (`last_api_key` unless `allow_last`).
    pub(super) fn revoke_api_key<S: EventSink>(
        &mut self,
        c: &RevokeApiKey,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        self.key_account(c.account)?;
        let key = (c.account, c.api_key_sha256);
        if !self.api_keys.contains_key(&key) {
            return Err(RejectReason::UnknownApiKey);
        }
        if !c.allow_last && self.key_count(c.account) == 1 {
            return Err(RejectReason::LastApiKey);
        }
        self.api_keys.remove(&key);
        let owner = self.key_owners.remove(&c.api_key_sha256);
        assert_eq!(owner, Some(c.account), "the key index agrees with the keys");
        out.push(Event::ApiKeyRevoked(ApiKeyRevoked {
            account: c.account,
            api_key_sha256: c.api_key_sha256,
        }));
        Ok(())
    }

    /// `account`'s API keys, by digest, with their scopes.
    pub fn api_keys(&self, account: AccountId) -> Vec<(KeyDigest, KeyScope)> {
        let lo = (account, KeyDigest([0; 32]));
        let hi = (account, KeyDigest([0xff; 32]));
        self.api_keys
            .range(lo..=hi)
            .map(|(&(_, d), &s)| (d, s))
            .collect()
    }

    /// The account and scope of the key with this digest, if any account has it.
    pub fn api_key(&self, digest: &KeyDigest) -> Option<(AccountId, KeyScope)> {
        let &account = self.key_owners.get(digest)?;
        let &scope = self.api_keys.get(&(account, *digest))?;
        Some((account, scope))
    }

    /// Every API key: (digest, account, scope), by digest.
    pub fn all_api_keys(&self) -> Vec<(KeyDigest, AccountId, KeyScope)> {
        self.key_owners
            .iter()
            .filter_map(|(d, &a)| self.api_keys.get(&(a, *d)).map(|&s| (*d, a, s)))
            .collect()
    }
}
