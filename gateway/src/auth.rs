//! API keys: who is calling. Keys are random secrets shown once at account creation;
//! only their SHA-256 is kept. The admin key comes from configuration.
//!
//! The [`Authenticator`] trait is what other modules (market data's private channel)
//! use; the key store implementing it lives here too.

use gpux_engine::AccountId;

/// Who a request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
