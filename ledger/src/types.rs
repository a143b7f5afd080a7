//! The ledger's value types: what callers append and what reads return.
//!
//! Owns [`Source`]/[`SourceKey`]/[`Position`] (where a command came from, and its
//! place there: a record's offset and, in a Kafka batch record, its index), [`AppliedCommand`]
//! (the append input: one command and the events it produced), the decoded records
//! ([`CommandRecord`], [`EventRecord`], [`BatchHeader`], [`Snapshot`]) and the chain
//! position types ([`Head`], [`BatchReceipt`]). Payloads are opaque bytes: the caller
//! serializes commands and events, so this crate never depends on the engine.

use std::fmt;

use serde::Serialize;

/// A SHA-256 digest: the chain hash of a batch.
pub type Hash = [u8; 32];

/// The hash that the first batch chains to.
pub const GENESIS_HASH: Hash = [0; 32];

/// Lower-case hex of a hash, or of any bytes (for logs, JSON and error messages).
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Where a command came from and its position there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Source {
    /// The embedded command log (the `inbox` column family): its inbox sequence number.
    Embedded {
        /// Inbox sequence number (dense from 1).
        seq: u64,
    },
    /// A Kafka partition and the record's offset in it.
    Kafka {
        /// Topic name (at most [`KAFKA_TOPIC_BYTES_MAX`](crate::KAFKA_TOPIC_BYTES_MAX) bytes).
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset of the record (Kafka offsets of real records are never negative).
        offset: u64,
        /// For a command of a batch record (many commands in one record): its
        /// index in the batch, from 0. `None` for a record that is one command.
        index: Option<u32>,
    },
}

/// A command's place in its source: the record's offset and, for a command of a
/// batch record, its index in the batch. Positions of one source strictly increase
/// in log order (offset first, then index; a record is either one command or a
/// batch, never both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Position {
    /// The record's offset (the embedded log's seq).
    pub offset: u64,
    /// The command's index in its batch record, if the record is a batch.
    pub index: Option<u32>,
}

impl Position {
    /// The position of a record that is one command.
    pub fn record(offset: u64) -> Self {
        Self {
            offset,
            index: None,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            None => write!(f, "{}", self.offset),
            Some(i) => write!(f, "{}#{i}", self.offset),
        }
    }
}

impl Source {
    /// The source this position belongs to (the key of its consumed offset).
    pub fn key(&self) -> SourceKey {
        match self {
            Source::Embedded { .. } => SourceKey::Embedded,
            Source::Kafka {
                topic, partition, ..
            } => SourceKey::Kafka {
                topic: topic.clone(),
                partition: *partition,
            },
        }
    }

    /// The offset of the record within the source.
    pub fn offset(&self) -> u64 {
        match self {
            Source::Embedded { seq } => *seq,
            Source::Kafka { offset, .. } => *offset,
        }
    }

    /// The command's position within the source: its record's offset and, for a
    /// command of a batch record, its index there.
    pub fn position(&self) -> Position {
        match self {
            Source::Embedded { seq } => Position::record(*seq),
            Source::Kafka { offset, index, .. } => Position {
                offset: *offset,
                index: *index,
            },
        }
    }
}

/// A source of commands whose consumed offset the ledger tracks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum SourceKey {
    /// The embedded command log.
    Embedded,
    /// One Kafka topic partition.
    Kafka {
        /// Topic name.
        topic: String,
        /// Partition.
        partition: i32,
    },
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::Embedded => f.write_str("embedded"),
            SourceKey::Kafka { topic, partition } => write!(f, "kafka:{topic}/{partition}"),
        }
    }
}

/// One command as applied, with the events it produced: the input of
/// [`Ledger::append`](crate::Ledger::append).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCommand {
    /// Command sequence number; must be the ledger's next (dense from 1).
    pub cmd_seq: u64,
    /// Timestamp given to the engine, nanoseconds; never before the previous command's.
    pub ts_ns: u64,
    /// Where the command came from; its offset must be after the consumed one.
    pub source: Source,
    /// The serialized command.
    pub payload: Vec<u8>,
    /// The serialized events, in emission order. They get the next `event_seq`s.
    pub events: Vec<Vec<u8>>,
}

/// A stored command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// Command sequence number.
    pub cmd_seq: u64,
    /// Timestamp given to the engine.
    pub ts_ns: u64,
    /// Where it came from.
    pub source: Source,
    /// `event_seq` of its first event (if it has none: the next command's first).
    pub first_event_seq: u64,
    /// How many events it produced.
    pub event_count: u32,
    /// The serialized command.
    pub payload: Vec<u8>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Global event sequence number (dense from 1).
    pub event_seq: u64,
    /// The command that produced it.
    pub cmd_seq: u64,
    /// The serialized event.
    pub payload: Vec<u8>,
}

/// The header of a committed batch (the chain link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Batch number (dense from 1).
    pub batch_no: u64,
    /// First command in the batch.
    pub first_cmd_seq: u64,
    /// Last command in the batch.
    pub last_cmd_seq: u64,
    /// First event (when the batch has none: `last_event_seq + 1`).
    pub first_event_seq: u64,
    /// Last event (when the batch has none: the previous batch's last).
    pub last_event_seq: u64,
    /// Hash of the previous batch ([`GENESIS_HASH`] for batch 1).
    pub prev_hash: Hash,
    /// This batch's hash (see `docs/LEDGER_FORMAT.md`).
    pub hash: Hash,
}

/// The ledger's head: last sequence numbers and the chain hash, as stored in meta.
/// Every write ends with it, so a write is visible exactly when its head is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Head {
    /// Last applied command (0: none).
    pub last_cmd_seq: u64,
    /// Last event (0: none).
    pub last_event_seq: u64,
    /// Last batch (0: none).
    pub last_batch_no: u64,
    /// Timestamp of the last command (0: none).
    pub last_ts_ns: u64,
    /// Last entry journaled in the embedded command log (0: none).
    pub last_inbox_seq: u64,
    /// Hash of the last batch ([`GENESIS_HASH`] when empty).
    #[serde(serialize_with = "serialize_hash")]
    pub hash: Hash,
}

impl Head {
    /// The head of an empty ledger.
    pub const GENESIS: Head = Head {
        last_cmd_seq: 0,
        last_event_seq: 0,
        last_batch_no: 0,
        last_ts_ns: 0,
        last_inbox_seq: 0,
        hash: GENESIS_HASH,
    };
}

fn serialize_hash<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(h))
}

/// What a successful append committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchReceipt {
    /// The batch's header (numbers and hash).
    pub header: BatchHeader,
}

/// A stored snapshot of engine state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The state includes every command up to and including this one.
    pub cmd_seq: u64,
    /// ... and so every event up to and including this one.
    pub event_seq: u64,
    /// The serialized state (opaque to the ledger).
    pub bytes: Vec<u8>,
}
