//! gpux replay: the auditor's tools (verify, state, export, statement, audit, diff).
//!
//! Not built yet — see issue #3. Replay opens ledgers read-only and never writes
//! to what it audits.
#![deny(missing_docs)]
