//! Typed errors of the ledger.
//!
//! Owns [`LedgerError`] (everything a ledger call can fail with), [`Corruption`] (what
//! verification found, naming the column family and the exact sequence number) and
//! [`StoreError`] (what the storage backend reported). Corruption is data, not a
//! string: callers such as `gpux replay verify` match on [`CorruptionKind`] and print
//! the sequence number.

use std::fmt;

use crate::cf::Cf;
use crate::types::{Position, SourceKey};

/// Result alias used throughout the crate.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// An error reported by a [`Store`](crate::Store) backend (I/O, RocksDB status, an
/// injected fault). Cloneable so one failed group write can be reported to every
/// submitter in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    /// What the backend said.
    pub message: String,
}

impl StoreError {
    /// A store error with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        Self::new(e.into_string())
    }
}

/// What kind of damage verification found. Stable: new kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// Records exist beyond the head stored in the meta column family: written by a
    /// write that never completed and was therefore never acknowledged. The only kind
    /// `LedgerOptions::truncate_torn_tail` may repair.
    TornTail,
    /// A record's crc32c does not match its bytes.
    ChecksumMismatch,
    /// A sequence number that must exist (it is at or below the stored head, or inside a
    /// batch's range) is missing.
    Gap,
    /// A batch's `prev_hash` is not the previous batch's hash, or its recomputed hash
    /// differs from the stored one (the records were changed and their checksums
    /// recomputed), or the head's hash is not the last batch's hash.
    BrokenChain,
    /// A record's checksum is fine but its contents are wrong: unknown kind byte,
    /// truncated body, key/sequence disagreement, links to the wrong command, a
    /// timestamp or source offset that goes backwards.
    Malformed,
    /// A record carries a format version this build does not read.
    UnsupportedVersion,
    /// The meta column family disagrees with the records (head or consumed offsets).
    MetaMismatch,
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CorruptionKind::TornTail => "torn tail",
            CorruptionKind::ChecksumMismatch => "checksum mismatch",
            CorruptionKind::Gap => "gap",
            CorruptionKind::BrokenChain => "broken chain",
            CorruptionKind::Malformed => "malformed record",
            CorruptionKind::UnsupportedVersion => "unsupported record version",
            CorruptionKind::MetaMismatch => "meta mismatch",
        })
    }
}

/// Damage found in a ledger: its kind, the column family and the exact sequence number
/// (`cmd_seq`, `event_seq`, `batch_no`, snapshot `cmd_seq` or inbox seq, by column
/// family; `0` for meta records that have none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} in {cf} at seq {seq}: {detail}")]
pub struct Corruption {
    /// What is wrong.
    pub kind: CorruptionKind,
    /// Where.
    pub cf: Cf,
    /// The exact sequence number (key) of the damaged or missing record.
    pub seq: u64,
    /// Human-readable detail.
    pub detail: String,
}

impl Corruption {
    pub(crate) fn new(kind: CorruptionKind, cf: Cf, seq: u64, detail: impl Into<String>) -> Self {
        Self {
            kind,
            cf,
            seq,
            detail: detail.into(),
        }
    }
}

/// Everything a ledger operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The storage backend failed. After a failed write the ledger is poisoned.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Verification found damage.
    #[error("ledger corrupt: {0}")]
    Corrupt(#[from] Corruption),
    /// The ledger was written by an incompatible format version. Nothing was read
    /// past the format record and nothing was written.
    #[error("unsupported ledger: it is format version {found}, this build reads and writes format version {supported} only (docs/LEDGER_FORMAT.md); open it with a build of its version")]
    UnsupportedFormat {
        /// Version found on disk.
        found: u8,
        /// Version this build reads and writes.
        supported: u8,
    },
    /// The ledger was opened read-only.
    #[error("ledger is open read-only")]
    ReadOnly,
    /// An earlier write failed; what is on disk is unknown to this handle. Reopen the
    /// ledger (which verifies it) before writing again.
    #[error("ledger poisoned by an earlier failed write; reopen it")]
    Poisoned,
    /// `append` was given no commands.
    #[error("empty batch")]
    EmptyBatch,
    /// A command's `cmd_seq` is not the next one.
    #[error("command out of sequence: expected cmd_seq {expected}, got {got}")]
    OutOfSequence {
        /// The next `cmd_seq` the ledger accepts.
        expected: u64,
        /// What was given.
        got: u64,
    },
    /// A command's timestamp is before its predecessor's.
    #[error("cmd_seq {cmd_seq}: ts_ns {ts_ns} is before the previous command's {prev_ts_ns}")]
    TimestampRegressed {
        /// The command.
        cmd_seq: u64,
        /// Its timestamp.
        ts_ns: u64,
        /// The previous command's timestamp.
        prev_ts_ns: u64,
    },
    /// A command's source position is not after the position already consumed
    /// from that source: applying it would apply an input twice. (Positions read
    /// `offset` or, for a command of a batch record, `offset#index`.)
    #[error("cmd_seq {cmd_seq}: source {source_key} position {position} already consumed (up to {consumed})")]
    SourceNotAdvancing {
        /// The command.
        cmd_seq: u64,
        /// The source.
        source_key: SourceKey,
        /// The position given.
        position: Position,
        /// The position already consumed.
        consumed: Position,
    },
    /// A bound was exceeded (payload size, events per command, topic length).
    #[error("{what} is {got}, above the bound {max}")]
    TooLarge {
        /// Which bound.
        what: &'static str,
        /// The value given.
        got: u64,
        /// The bound.
        max: u64,
    },
    /// `put_snapshot` was asked for a `cmd_seq` the ledger has not applied.
    #[error("snapshot at cmd_seq {cmd_seq} is beyond the head {head}")]
    SnapshotBeyondHead {
        /// Requested.
        cmd_seq: u64,
        /// The ledger's last `cmd_seq`.
        head: u64,
    },
    /// The group committer thread is gone (shut down or panicked).
    #[error("group committer stopped")]
    CommitterStopped,
}

impl LedgerError {
    /// The corruption, when this is one.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            LedgerError::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}
