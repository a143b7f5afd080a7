//! # gpux-replay
//!
//! The auditor's tools over a gpux ledger: prove that what the ledger holds is what
//! the engine produced, rebuild any past state, and turn the history into
//! statements and exports. Replay opens ledgers read-only
//! ([`Ledger::open_read_only`](gpux_ledger::Ledger::open_read_only)) and never writes
//! to what it audits.
//!
//! ## How a ledger is re-run
//!
//! gpux writes a ledger by a fixed convention, which replay follows exactly:
//! command record `cmd_seq` is the engine's sequence number and `ts_ns` the
//! timestamp handed to it; its payload is the raw `CommandEnvelope` JSON as
//! received (possibly malformed); its events are what
//! `engine.apply_json(cmd_seq, ts_ns, &payload, &mut events)` produced, each stored
//! as `event.to_bytes()` (`docs/LEDGER_FORMAT.md` § Event payloads); a snapshot at
//! `cmd_seq` holds `engine.snapshot()` after that command. Re-running a ledger is
//! therefore: for each command in order, `apply_json` on a fresh (or restored)
//! engine, and compare every produced event byte-for-byte with the stored one.
//!
//! ## Layout
//!
//! | module | tool | what it does |
//! |---|---|---|
//! | [`rebuild`] | (library) | [`rebuild::state_at`]: latest good snapshot at or before a `cmd_seq`, plus the commands after it, each checked against the stored events; the exchange's own recovery (`gpux_sequencer::recovery`) with the tools' errors |
//! | [`verify`] | `gpux replay verify` | every checksum and the whole chain, then a re-run from genesis compared byte-for-byte, state hashes at every snapshot |
//! | [`state`] | `gpux replay state` | the state at any `cmd_seq`: books per open delivery slot (top N levels), balances (GPUs per slot), open orders |
//! | [`export`] | `gpux replay export` | trades, deliveries (the delivery schedule), events or commands of a `cmd_seq` range as JSON lines or CSV, streamed |
//! | [`statement`] | `gpux replay statement` | one account's history (fills, deliveries, expired inventory, …) with running balances from the events alone, reconciled against the engine |
//! | [`audit`] | `gpux replay audit` | invariants after every command, conservation of USD and of GPUs per slot from the events, no crossed book, the delivery schedule proven (`delivery`) |
//! | [`diff`] | `gpux replay diff` | the first `cmd_seq` where two ledgers diverge (hot-standby check) |
//! | [`progress`] | | progress bars on stderr, only when it is a terminal |
//! | `error` | | [`ReplayError`] (I/O, ledger errors), [`Failure`] (what a check found), [`Outcome`] |
//! | `balances` | | balances recomputed from events alone, GPUs per (market, slot) (statements, audit) |
//! | `delivery` | | the audit's delivery check: own inventory, delivered once, along consistent trade chains |
//!
//! Slots are written `2026-12-07T09:00Z` in every report and CSV; JSON lines of
//! events keep the protocol's unix seconds inside the event and add the human form
//! beside it.
//!
//! Each tool has a function returning its serde-serializable result and a `run`
//! function that writes the result (JSON, or the export's rows) to a
//! `&mut dyn Write` and returns an [`Outcome`]: [`Outcome::Success`], or
//! [`Outcome::Failure`] naming the kind and the sequence numbers, so the binary
//! picks the exit code. `Err(ReplayError)` is for what stopped the tool itself
//! (the directory is not a ledger, I/O).
//!
//! ## Example
//!
//! ```
//! use gpux_engine::{Engine, Event};
//! use gpux_ledger::{AppliedCommand, Ledger, LedgerOptions, Source};
//!
//! let dir = tempfile::tempdir().unwrap();
//! {
//!     // Write a ledger the way gpux does.
//!     let mut ledger = Ledger::open(dir.path(), &LedgerOptions::default()).unwrap();
//!     let mut engine: Engine = Engine::new();
//!     let payload = br#"{"v":3,"ts_ns":7,"command":{"type":"create_account","account":1}}"#;
//!     let mut events: Vec<Event> = Vec::new();
//!     engine.apply_json(1, 7, payload, &mut events);
//!     ledger
//!         .append(&[AppliedCommand {
//!             cmd_seq: 1,
//!             ts_ns: 7,
//!             source: Source::Kafka { topic: "commands".into(), partition: 0, offset: 0, index: None },
//!             payload: payload.to_vec(),
//!             events: events.iter().map(Event::to_bytes).collect(),
//!         }])
//!         .unwrap();
//! }
//! let mut out = Vec::new();
//! let outcome = gpux_replay::verify::run(dir.path(), &gpux_replay::Progress::hidden(), &mut out).unwrap();
//! assert!(outcome.is_success());
//! let summary: serde_json::Value = serde_json::from_slice(&out).unwrap();
//! assert_eq!(summary["ok"], true);
//! assert_eq!(summary["events"], 1);
//! ```
#![deny(missing_docs)]

pub mod audit;
mod balances;
mod delivery;
pub mod diff;
mod error;
pub mod export;
pub mod progress;
pub mod rebuild;
pub mod state;
pub mod statement;
pub mod verify;

pub use error::{Failure, FailureKind, Finding, Outcome, ReplayError, Result};
pub use progress::Progress;

use std::io::Write;
use std::path::Path;

use gpux_ledger::{Ledger, RocksStore};

/// Opens the ledger at `data` read-only; a corrupt head is a [`Failure`], not an
/// error.
pub(crate) fn open(data: &Path) -> Result<Finding<Ledger<RocksStore>>> {
    match Ledger::open_read_only(data) {
        Ok(l) => Ok(Ok(l)),
        Err(e) => match Failure::from_ledger_error(&e) {
            Some(f) => Ok(Err(f)),
            None => Err(ReplayError::Open {
                path: data.display().to_string(),
                source: e,
            }),
        },
    }
}

/// Opens read-only; a corrupt head becomes [`ReplayError::Failed`] (which `run`
/// functions report as a finding through [`settle`]).
pub(crate) fn open_or_fail(data: &Path) -> Result<Ledger<RocksStore>> {
    match open(data)? {
        Ok(l) => Ok(l),
        Err(f) => Err(ReplayError::Failed(Box::new(f))),
    }
}

/// Writes `value` as one line of JSON.
pub(crate) fn write_json_line<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Writes `value` as indented JSON followed by a newline.
pub(crate) fn write_json_pretty<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Writes a failure as `{"ok":false,"error":…}` and returns it as the outcome.
pub(crate) fn write_failure(out: &mut dyn Write, f: Failure) -> Result<Outcome> {
    write_json_line(out, &f.report())?;
    Ok(Outcome::Failure(f))
}

/// For `run` functions: a [`ReplayError::Failed`] raised deep inside a tool (a
/// ledger found corrupt while reading, a re-run that diverged) is reported like any
/// other finding.
pub(crate) fn settle(out: &mut dyn Write, r: Result<Outcome>) -> Result<Outcome> {
    match r {
        Err(ReplayError::Failed(f)) => write_failure(out, *f),
        Err(ReplayError::Ledger(e)) => match Failure::from_ledger_error(&e) {
            Some(f) => write_failure(out, f),
            None => Err(ReplayError::Ledger(e)),
        },
        other => other,
    }
}

// The binary wraps `ReplayError` in `anyhow`: it must stay `Send + Sync`.
const _: fn() = || {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<ReplayError>();
};
