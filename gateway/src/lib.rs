//! gpux gateway: REST order entry and WebSocket market data (axum).
//!
//! Not built yet — see issue #5. The crate exists so the workspace has its final
//! shape; it owns the HTTP/WebSocket edge and never matching logic or ledger writes.
#![deny(missing_docs)]
