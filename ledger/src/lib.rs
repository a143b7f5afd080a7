//! gpux ledger: the append-only, hash-chained, crash-safe event store.
//!
//! # Module layout
//!
//! | module | owns |
//! |---|---|
//! | [`types`] | what is appended and read: [`AppliedCommand`], [`CommandRecord`], [`EventRecord`], [`Source`], [`Position`], [`Head`], [`BatchHeader`], [`Snapshot`] |
//! | `format` | every byte on disk: keys, record framing (version, kind, crc32c), chunks, the batch hash |
//! | `chunk` | reading chunks: a command or event found by its seq, the record iterators |
//! | [`layout`] | the raw layout taken apart, for tools and tests below the API |
//! | [`store`] | the narrow [`Store`] trait; [`RocksStore`], [`MemStore`], [`FaultyStore`] |
//! | `ledger` | [`Ledger`]: open with recovery, append, journal, snapshots; [`LedgerReader`] |
//! | `verify` | integrity walk from genesis to the head, torn-tail detection and truncation |
//! | `group` | [`GroupCommitter`]: many submissions, one fsync |
//! | `stats` | [`LatencyHistogram`], [`CommitStats`] |
//! | `cf` | [`Cf`]: the column families, named by the store and by the errors |
//! | `error` | [`LedgerError`], [`Corruption`], [`CorruptionKind`], [`StoreError`] |
//! | [`bench`](crate::bench()) | [`bench()`]: the `gpux bench ledger` measurement |
//!
//! The ledger stores opaque payloads: the caller serializes commands and events, so this
//! crate knows nothing of the engine. The public API appends and reads; history is
//! never updated or deleted (the one exception is the opt-in truncation, on open, of a
//! torn tail that was never acknowledged). The on-disk format is specified in
//! `docs/LEDGER_FORMAT.md`.
//!
//! # Example
//!
//! ```
//! use gpux_ledger::{AppliedCommand, Ledger, LedgerOptions, Source, SourceKey};
//!
//! # fn main() -> Result<(), gpux_ledger::LedgerError> {
//! let dir = tempfile::tempdir().expect("tempdir");
//! let mut ledger = Ledger::open(dir.path(), &LedgerOptions::default())?;
//! // The embedded command log: journal first (durable), apply later.
//! let seqs = ledger.journal(&[b"place order".to_vec()])?;
//! let receipt = ledger.append(&[AppliedCommand {
//!     cmd_seq: 1,
//!     ts_ns: 1_000,
//!     source: Source::Embedded { seq: seqs[0] },
//!     payload: b"place order".to_vec(),
//!     events: vec![b"order accepted".to_vec(), b"order rested".to_vec()],
//! }])?;
//! assert_eq!(receipt.header.last_event_seq, 2);
//! assert_eq!(ledger.consumed_offset(&SourceKey::Embedded), Some(1));
//! assert_eq!(ledger.events_of_command(1)?.len(), 2);
//! drop(ledger);
//!
//! // Reopening verifies every checksum and the whole chain.
//! let ledger = Ledger::open(dir.path(), &LedgerOptions::default())?;
//! assert_eq!(ledger.head().last_cmd_seq, 1);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod bench;
mod cf;
mod chunk;
mod error;
mod format;
mod group;
pub mod layout;
mod ledger;
mod stats;
pub mod store;
pub mod types;
mod verify;

pub use bench::{bench, BenchOptions, BenchReport};
pub use cf::Cf;
pub use error::{Corruption, CorruptionKind, LedgerError, Result, StoreError};
pub use format::{key_seq, seq_key, FORMAT_VERSION};
pub use group::{CommitHandle, Committed, GroupCommitOptions, GroupCommitter, Pending};
pub use ledger::{
    Assigned, DeferredVerification, Ledger, LedgerOptions, LedgerReader, RecordIter,
    SnapshotFallback, Stage,
};
pub use stats::{CommitStats, CommitSummary, LatencyHistogram};
pub use store::{
    Cursor, Fault, FaultyStore, MemStore, Op, RocksOptions, RocksStore, Store, WriteOps,
};
pub use types::{
    hex, AppliedCommand, BatchHeader, BatchReceipt, CommandRecord, EventRecord, Hash, Head,
    Position, Snapshot, Source, SourceKey, GENESIS_HASH,
};
pub use verify::{VerifyOnOpen, VerifyProgress, VerifyReport};

/// Largest command, event or inbox payload.
pub const PAYLOAD_BYTES_MAX: usize = 16 << 20;
/// Most events one command may produce.
pub const EVENTS_PER_COMMAND_MAX: usize = 1 << 20;
/// Largest snapshot.
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 30;
/// Longest Kafka topic name (Kafka's own limit).
pub const KAFKA_TOPIC_BYTES_MAX: usize = 249;
