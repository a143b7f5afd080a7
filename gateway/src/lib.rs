//! gpux gateway: REST order entry and WebSocket market data (axum).
//!
//! The only door to the exchange: authenticates, validates, turns requests into
//! commands for the log, answers with what the engine decided once it is durable, and
//! fans committed events out as market data. It never matches and never writes the
//! ledger; its state is a read replica of the engine fed by committed commands.
#![deny(missing_docs)]

pub mod auth;
pub mod error;
pub mod marketdata;
#[doc(hidden)]
pub mod testkit;

pub use auth::{Authenticator, Principal};
pub use error::ApiError;
