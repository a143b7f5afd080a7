//! [`Ledger`] (the writer: open with recovery, append, journal, snapshot) and
//! [`LedgerReader`] (a cloneable, thread-safe read handle).
//!
//! Owns the append path: validation against the head (dense `cmd_seq`, monotonic
//! timestamps, advancing source offsets, bounds), encoding every record of a batch into
//! one [`WriteOps`], the chain hash, and the single synced write that makes a batch,
//! its consumed offsets and the new head durable together. Appends go through a
//! [`Stage`] so the [`GroupCommitter`](crate::GroupCommitter) can merge many
//! submissions into one write; [`Ledger::append`] is a one-submission stage.
//!
//! A failed write poisons the handle: what reached the disk is unknown, so the only
//! way forward is to reopen, which verifies.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::chunk::{self, ChunkIter};
use crate::error::{CorruptionKind, LedgerError, Result};
use crate::format::{self, key_seq, seq_key};
use crate::store::{Cf, Cursor, RocksOptions, RocksStore, Store, WriteOps};
use crate::types::{
    AppliedCommand, BatchHeader, BatchReceipt, CommandRecord, EventRecord, Head, Position,
    Snapshot, SourceKey,
};
use crate::verify::{self, decode_err, VerifyOnOpen, VerifyProgress, VerifyReport};
use crate::{EVENTS_PER_COMMAND_MAX, KAFKA_TOPIC_BYTES_MAX, PAYLOAD_BYTES_MAX, SNAPSHOT_BYTES_MAX};

/// How to open a ledger. (When to take snapshots is the caller's choice — the
/// pipeline's `snapshot_every_events` — the ledger only stores them.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerOptions {
    /// Delete a torn tail (records beyond the head in meta: never acknowledged) on
    /// open instead of refusing to open. Never deletes anything at or below the head.
    pub truncate_torn_tail: bool,
    /// How much to verify on open.
    pub verify_on_open: VerifyOnOpen,
    /// RocksDB tuning.
    pub rocks: RocksOptions,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        Self {
            truncate_torn_tail: false,
            verify_on_open: VerifyOnOpen::Full,
            rocks: RocksOptions::default(),
        }
    }
}

/// A cloneable, thread-safe read handle on a ledger. Reads are bounded by the head
/// stored in meta when the read starts, so they never see a batch in flight.
#[derive(Debug)]
pub struct LedgerReader<S> {
    store: Arc<S>,
}

impl<S> Clone for LedgerReader<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
        }
    }
}

/// A stored snapshot search that skips corrupt snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFallback {
    /// The newest snapshot that verified, if any.
    pub snapshot: Option<Snapshot>,
    /// The newer snapshots skipped because they did not verify.
    pub skipped: Vec<crate::Corruption>,
}

/// Range of what one submission was assigned inside a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assigned {
    /// First command of the submission.
    pub first_cmd_seq: u64,
    /// Last command of the submission.
    pub last_cmd_seq: u64,
    /// First event (`last_event_seq + 1` when it produced none).
    pub first_event_seq: u64,
    /// Last event.
    pub last_event_seq: u64,
}

/// A stage completed into its final write.
pub(crate) struct Sealed {
    pub ops: WriteOps,
    pub receipt: Option<BatchReceipt>,
    head: Head,
    offsets: Vec<(SourceKey, Position)>,
}

/// One atomic write being assembled: submissions validated against the head plus
/// everything staged before them, already encoded.
pub struct Stage {
    ops: WriteOps,
    base: Head,
    next_cmd: u64,
    next_ev: u64,
    last_ts: u64,
    hasher: Option<format::BatchHasher>,
    /// Per source: the last command's position and its cmd_seq.
    offsets: BTreeMap<SourceKey, (Position, u64)>,
    inbox_next: u64,
    commands: u64,
    events: u64,
    /// The chunk being filled.
    chunk: OpenChunk,
}

/// A chunk being filled, and its header so far (`None`: no chunk open).
#[derive(Default)]
struct OpenChunk {
    bytes: Vec<u8>,
    head: Option<format::ChunkHeader>,
}

impl OpenChunk {
    /// Moves the chunk, if one is open, into `ops`, with its event-index entry.
    fn close(&mut self, ops: &mut WriteOps) {
        let Some(h) = self.head.take() else {
            return;
        };
        format::finish_chunk(&mut self.bytes, &h);
        let bytes = &self.bytes;
        ops.put_with(Cf::Commands, &seq_key(h.first_cmd_seq), |b| {
            b.extend_from_slice(bytes)
        });
        if h.event_count > 0 {
            ops.put_with(Cf::Events, &seq_key(h.first_event_seq), |b| {
                format::encode_event_index(b, h.first_event_seq, h.event_count, h.first_cmd_seq)
            });
        }
    }
}

/// A chunk is closed once it holds this many bytes (at a command boundary), so a
/// read of one command or event decodes at most about this much.
const CHUNK_TARGET_BYTES: usize = 64 << 10;

impl Stage {
    /// Commands staged.
    pub fn commands(&self) -> u64 {
        self.commands
    }
    /// Events staged.
    pub fn events(&self) -> u64 {
        self.events
    }
    /// Bytes staged (keys and values).
    pub fn bytes(&self) -> usize {
        self.ops.bytes() + self.chunk.bytes.len()
    }
    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.chunk.head.is_none()
    }

    /// Encodes one validated command and its events into the open chunk (opening
    /// one if needed), hashing their records; closes the chunk once it is full.
    fn push(&mut self, c: &AppliedCommand) {
        let hasher = self
            .hasher
            .get_or_insert_with(|| format::BatchHasher::new(&self.base.hash));
        let event_count = u32::try_from(c.events.len()).expect("bounded by validation");
        let chunk = &mut self.chunk;
        let head = chunk.head.get_or_insert_with(|| {
            format::begin_chunk(&mut chunk.bytes);
            format::ChunkHeader {
                batch_no: self.base.last_batch_no + 1,
                first_cmd_seq: c.cmd_seq,
                cmd_count: 0,
                first_event_seq: self.next_ev,
                event_count: 0,
            }
        });
        head.cmd_count += 1;
        head.event_count += event_count;
        let record = format::push_inner(&mut chunk.bytes, |b| {
            format::encode_command(
                b,
                &format::CommandFields {
                    cmd_seq: c.cmd_seq,
                    ts_ns: c.ts_ns,
                    first_event_seq: self.next_ev,
                    event_count,
                    source: &c.source,
                    payload: &c.payload,
                },
            )
        });
        hasher.record(record);
        for e in &c.events {
            let event_seq = self.next_ev;
            let record = format::push_inner(&mut chunk.bytes, |b| {
                format::encode_event(b, event_seq, c.cmd_seq, e)
            });
            hasher.record(record);
            self.next_ev += 1;
        }
        self.offsets
            .insert(c.source.key(), (c.source.position(), c.cmd_seq));
        self.next_cmd += 1;
        self.last_ts = c.ts_ns;
        self.commands += 1;
        self.events += c.events.len() as u64;
        if chunk.bytes.len() >= CHUNK_TARGET_BYTES {
            chunk.close(&mut self.ops);
        }
    }
}

/// The ledger: owner of the write path. See the crate docs for an example.
pub struct Ledger<S: Store = RocksStore> {
    reader: LedgerReader<S>,
    /// The last write's buffer, reused so a large group write does not fault in fresh
    /// pages every time.
    spare: std::sync::Mutex<Option<WriteOps>>,
    head: Head,
    /// Per source: the position of the last command consumed from it.
    consumed: BTreeMap<SourceKey, Position>,
    opts: LedgerOptions,
    poisoned: bool,
    /// What [`VerifyOnOpen::Background`] left to verify, until taken.
    deferred: Option<DeferredVerification<S>>,
}

/// The part of a full verification that [`VerifyOnOpen::Background`] deferred:
/// everything at or below the head the ledger was opened at. Those records never
/// change, so it runs on any thread while the ledger commits after them; it reads
/// only them.
pub struct DeferredVerification<S> {
    reader: LedgerReader<S>,
    head: Head,
    offsets: BTreeMap<SourceKey, (u64, u64)>,
}

impl<S> std::fmt::Debug for DeferredVerification<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredVerification")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl<S: Store> DeferredVerification<S> {
    /// The head it verifies up to (the ledger's at open).
    pub fn head(&self) -> Head {
        self.head
    }

    /// Verifies every batch, command and event (checksums, links, the hash chain up
    /// to the head's hash), the consumed offsets read at open against the commands,
    /// every inbox entry and snapshot at or below the head: what
    /// [`VerifyOnOpen::Full`] checks at open. The first damage is the error.
    pub fn run(&self, progress: &mut dyn FnMut(VerifyProgress)) -> Result<VerifyReport> {
        verify::deferred(&*self.reader.store, &self.head, &self.offsets, progress)
    }
}

impl<S: Store> std::fmt::Debug for Ledger<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("head", &self.head)
            .field("consumed", &self.consumed)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl Ledger<RocksStore> {
    /// Opens (creating if missing) the ledger at `path`, verifying it per
    /// `opts.verify_on_open`; refuses corruption, and truncates a torn tail only when
    /// `opts.truncate_torn_tail` is set. Recovery time is logged (`tracing`, info).
    pub fn open(path: impl AsRef<Path>, opts: &LedgerOptions) -> Result<Self> {
        let store = RocksStore::open(path.as_ref(), &opts.rocks)?;
        Self::with_store(store, opts)
    }

    /// Opens the ledger at `path` read-only (RocksDB `open_cf_for_read_only`), checking
    /// only its head ([`VerifyOnOpen::Tail`]); audit tools then call
    /// [`Ledger::verify`]. Never writes; sees the data as of the open.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        let opts = LedgerOptions {
            verify_on_open: VerifyOnOpen::Tail,
            ..LedgerOptions::default()
        };
        Self::open_read_only_with(path, &opts)
    }

    /// [`Ledger::open_read_only`] with explicit options (`truncate_torn_tail` is
    /// ignored: a read-only open reports a torn tail as an error).
    pub fn open_read_only_with(path: impl AsRef<Path>, opts: &LedgerOptions) -> Result<Self> {
        let store = RocksStore::open_read_only(path.as_ref(), &opts.rocks)?;
        Self::with_store(store, opts)
    }
}

/// The size bounds of one applied command: payload, event count, event payloads,
/// Kafka topic name.
fn check_bounds(c: &AppliedCommand) -> Result<()> {
    bound("command payload bytes", c.payload.len(), PAYLOAD_BYTES_MAX)?;
    bound("events per command", c.events.len(), EVENTS_PER_COMMAND_MAX)?;
    for e in &c.events {
        bound("event payload bytes", e.len(), PAYLOAD_BYTES_MAX)?;
    }
    if let crate::Source::Kafka { topic, .. } = &c.source {
        bound("kafka topic bytes", topic.len(), KAFKA_TOPIC_BYTES_MAX)?;
    }
    Ok(())
}

/// Checks the format record of `store`; an empty store gets one (unless
/// `read_only`). Data without a format record is corrupt.
fn check_format<S: Store>(store: &S, read_only: bool) -> Result<()> {
    match store.get(Cf::Meta, format::META_FORMAT)? {
        Some(v) => {
            let body = match format::open_record(&v, format::kind::FORMAT) {
                Err(format::DecodeError::Version(found)) => {
                    return Err(LedgerError::UnsupportedFormat {
                        found,
                        supported: format::FORMAT_VERSION,
                    });
                }
                r => r.map_err(|e| decode_err(e, Cf::Meta, 0))?,
            };
            if body != format::FORMAT_MAGIC {
                return Err(LedgerError::Corrupt(crate::Corruption::new(
                    CorruptionKind::Malformed,
                    Cf::Meta,
                    0,
                    "format record magic is not GPUXLEDG",
                )));
            }
        }
        None => {
            let empty = Cf::ALL.iter().all(|&cf| {
                let mut c = store.cursor(cf);
                c.seek_to_first();
                let none = c.entry().is_none();
                none
            });
            if !empty {
                return Err(LedgerError::Corrupt(crate::Corruption::new(
                    CorruptionKind::Malformed,
                    Cf::Meta,
                    0,
                    "data present but the format record is missing",
                )));
            }
            if !read_only {
                let mut ops = WriteOps::new();
                ops.put_with(Cf::Meta, format::META_FORMAT, format::encode_format);
                store.write(&ops, true)?;
            }
        }
    }
    Ok(())
}

/// The write storing snapshot `bytes` of the state after `cmd_seq`, whose last
/// event is `event_seq` — read from `store` when not given, so the commands up to
/// `cmd_seq` must be written by then.
pub(crate) fn snapshot_ops<S: Store + ?Sized>(
    store: &S,
    cmd_seq: u64,
    event_seq: Option<u64>,
    bytes: &[u8],
) -> Result<WriteOps> {
    let event_seq = match event_seq {
        Some(e) => e,
        None => verify::last_event_of(store, cmd_seq)?,
    };
    let mut ops = WriteOps::with_capacity(bytes.len() + 64, 1);
    ops.put_with(Cf::Snapshots, &seq_key(cmd_seq), |b| {
        format::encode_snapshot(b, cmd_seq, event_seq, bytes)
    });
    Ok(ops)
}

impl<S: Store> Ledger<S> {
    /// Opens a ledger over any [`Store`], initializing an empty one. This is
    /// [`Ledger::open`] without the RocksDB part: format check, verification, torn-tail
    /// policy, loading the head.
    pub fn with_store(store: S, opts: &LedgerOptions) -> Result<Self> {
        let t0 = Instant::now();
        let read_only = store.is_read_only();
        check_format(&store, read_only)?;

        let findings = verify::run(&store, opts.verify_on_open, &mut |_| {})?;
        let head = findings.report.head;
        if let Some(torn) = findings.tail.corruption(&head) {
            if !opts.truncate_torn_tail || read_only {
                return Err(LedgerError::Corrupt(torn));
            }
            tracing::warn!(target: "gpux_ledger", %torn, "truncating torn tail (never acknowledged)");
            verify::truncate_tail(&store, &head, &findings.tail)?;
            let again = verify::run(&store, VerifyOnOpen::Tail, &mut |_| {})?;
            assert!(
                again.tail.corruption(&head).is_none(),
                "torn tail still present after truncation"
            );
        }
        let offsets = match opts.verify_on_open {
            VerifyOnOpen::Background => Some(verify::stored_consumed_by(&store, &head)?),
            VerifyOnOpen::Full | VerifyOnOpen::Tail => None,
        };
        let reader = LedgerReader {
            store: Arc::new(store),
        };
        let deferred = offsets.map(|offsets| DeferredVerification {
            reader: reader.clone(),
            head,
            offsets,
        });
        let consumed = reader.consumed_positions(&head)?;
        let ledger = Self {
            reader,
            spare: std::sync::Mutex::new(None),
            head,
            consumed,
            opts: opts.clone(),
            poisoned: false,
            deferred,
        };
        tracing::info!(
            target: "gpux_ledger",
            recovery_us = t0.elapsed().as_micros() as u64,
            verify = ?opts.verify_on_open,
            read_only,
            last_cmd_seq = head.last_cmd_seq,
            last_event_seq = head.last_event_seq,
            last_batch_no = head.last_batch_no,
            head_hash = %crate::hex(&head.hash),
            corrupt_snapshots = findings.report.corrupt_snapshots.len(),
            "ledger opened"
        );
        Ok(ledger)
    }

    /// The verification [`VerifyOnOpen::Background`] deferred, the first time it is
    /// asked for; `None` after that or when the ledger was opened in another mode.
    pub fn take_deferred_verification(&mut self) -> Option<DeferredVerification<S>> {
        self.deferred.take()
    }

    /// The options it was opened with.
    pub fn options(&self) -> &LedgerOptions {
        &self.opts
    }

    /// The head: last `cmd_seq`, `event_seq`, `batch_no`, timestamp and chain hash.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The consumed offset of `source`: the offset of the last record a command
    /// was consumed from (`None`: nothing consumed from it yet).
    pub fn consumed_offset(&self, source: &SourceKey) -> Option<u64> {
        self.consumed.get(source).map(|p| p.offset)
    }

    /// The position of the last command consumed from `source`: its record's offset
    /// and, when that record is a batch, the command's index in it.
    pub fn consumed_position(&self, source: &SourceKey) -> Option<Position> {
        self.consumed.get(source).copied()
    }

    /// Every consumed offset.
    pub fn consumed_offsets(&self) -> BTreeMap<SourceKey, u64> {
        self.consumed
            .iter()
            .map(|(k, p)| (k.clone(), p.offset))
            .collect()
    }

    /// The last inbox seq journaled (0: none).
    pub fn inbox_last(&self) -> u64 {
        self.head.last_inbox_seq
    }

    /// True after a failed write: reopen before writing again.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// A read handle sharing this ledger's store (cheap; `Send + Sync`). The store
    /// (for RocksDB: the database and its lock) stays open while any reader lives.
    pub fn reader(&self) -> LedgerReader<S> {
        self.reader.clone()
    }

    /// The store (for tests and tools).
    pub fn store(&self) -> &S {
        &self.reader.store
    }

    fn check_writable(&self) -> Result<()> {
        if self.reader.store.is_read_only() {
            return Err(LedgerError::ReadOnly);
        }
        if self.poisoned {
            return Err(LedgerError::Poisoned);
        }
        Ok(())
    }

    /// Appends one batch: `commands` (consecutive, continuing the head) with their
    /// events, the consumed source offsets and the new chain head, in one atomic write
    /// synced to the WAL before returning.
    pub fn append(&mut self, commands: &[AppliedCommand]) -> Result<BatchReceipt> {
        let mut stage = self.begin()?;
        self.stage_append(&mut stage, commands)?;
        Ok(self
            .commit(stage)?
            .expect("a stage with commands commits a batch"))
    }

    /// Journals commands into the embedded command log in one synced write; returns
    /// their inbox seqs (dense, continuing [`Ledger::inbox_last`]).
    pub fn journal<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<Vec<u64>> {
        let mut stage = self.begin()?;
        let seqs = self.stage_journal(&mut stage, payloads)?;
        self.commit(stage)?;
        Ok(seqs)
    }

    /// Starts a stage (an atomic write being assembled) at the current head.
    pub fn begin(&self) -> Result<Stage> {
        self.check_writable()?;
        let ops = self
            .spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        Ok(Stage {
            ops,
            base: self.head,
            next_cmd: self.head.last_cmd_seq + 1,
            next_ev: self.head.last_event_seq + 1,
            last_ts: self.head.last_ts_ns,
            hasher: None,
            offsets: BTreeMap::new(),
            inbox_next: self.head.last_inbox_seq + 1,
            commands: 0,
            events: 0,
            chunk: OpenChunk::default(),
        })
    }

    fn consumed_in(&self, stage: &Stage, key: &SourceKey) -> Option<Position> {
        stage
            .offsets
            .get(key)
            .map(|&(p, _)| p)
            .or_else(|| self.consumed.get(key).copied())
    }

    /// Checks `commands` against the head plus what `stage` holds: dense `cmd_seq`s,
    /// timestamps that never go back, bounded sizes, source offsets that advance.
    fn validate(&self, stage: &Stage, commands: &[AppliedCommand]) -> Result<()> {
        let mut local: Vec<(SourceKey, Position)> = Vec::new();
        let mut ts = stage.last_ts;
        for (i, c) in commands.iter().enumerate() {
            let expected = stage.next_cmd + i as u64;
            if c.cmd_seq != expected {
                return Err(LedgerError::OutOfSequence {
                    expected,
                    got: c.cmd_seq,
                });
            }
            if c.ts_ns < ts {
                return Err(LedgerError::TimestampRegressed {
                    cmd_seq: c.cmd_seq,
                    ts_ns: c.ts_ns,
                    prev_ts_ns: ts,
                });
            }
            ts = c.ts_ns;
            check_bounds(c)?;
            let key = c.source.key();
            let position = c.source.position();
            let consumed = match local.iter().find(|(k, _)| *k == key) {
                Some(&(_, p)) => Some(p),
                None => self.consumed_in(stage, &key),
            };
            if let Some(consumed) = consumed {
                if position <= consumed {
                    return Err(LedgerError::SourceNotAdvancing {
                        cmd_seq: c.cmd_seq,
                        source_key: key,
                        position,
                        consumed,
                    });
                }
            }
            match local.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = position,
                None => local.push((key, position)),
            }
        }
        Ok(())
    }

    /// Validates `commands` against the head plus what `stage` holds and, if they are
    /// all valid, encodes them into it. On error the stage is unchanged.
    pub fn stage_append(&self, stage: &mut Stage, commands: &[AppliedCommand]) -> Result<Assigned> {
        self.check_writable()?;
        assert_eq!(stage.base, self.head, "stage begun at another head");
        if commands.is_empty() {
            return Err(LedgerError::EmptyBatch);
        }
        // Pass 1: validate everything; nothing is staged unless all of it is valid.
        self.validate(stage, commands)?;

        // Pass 2: encode.
        let first_cmd_seq = stage.next_cmd;
        let first_event_seq = stage.next_ev;
        for c in commands {
            stage.push(c);
        }
        Ok(Assigned {
            first_cmd_seq,
            last_cmd_seq: stage.next_cmd - 1,
            first_event_seq,
            last_event_seq: stage.next_ev - 1,
        })
    }

    /// Stages inbox entries for `payloads`; returns their seqs.
    pub fn stage_journal<P: AsRef<[u8]>>(
        &self,
        stage: &mut Stage,
        payloads: &[P],
    ) -> Result<Vec<u64>> {
        self.check_writable()?;
        for p in payloads {
            bound("inbox payload bytes", p.as_ref().len(), PAYLOAD_BYTES_MAX)?;
        }
        let mut seqs = Vec::with_capacity(payloads.len());
        for p in payloads {
            let seq = stage.inbox_next;
            stage.ops.put_with(Cf::Inbox, &seq_key(seq), |b| {
                format::encode_inbox(b, seq, p.as_ref())
            });
            stage.inbox_next += 1;
            seqs.push(seq);
        }
        Ok(seqs)
    }

    /// Writes the stage in one synced write. Returns the batch header if it held
    /// commands. On error the ledger is poisoned.
    pub fn commit(&mut self, stage: Stage) -> Result<Option<BatchReceipt>> {
        let sealed = self.seal(stage)?;
        if sealed.ops.is_empty() {
            return Ok(None);
        }
        let written = self.reader.store.write(&sealed.ops, true);
        if let Err(e) = written {
            self.poisoned = true;
            tracing::error!(target: "gpux_ledger", error = %e, "ledger write failed; handle poisoned");
            return Err(e.into());
        }
        let receipt = sealed.receipt;
        self.advance(sealed);
        Ok(receipt)
    }

    /// Completes a stage into the exact write that commits it (batch header, consumed
    /// offsets, head last) without writing it or changing the ledger.
    pub(crate) fn seal(&self, mut stage: Stage) -> Result<Sealed> {
        self.check_writable()?;
        assert_eq!(stage.base, self.head, "stage begun at another head");
        stage.chunk.close(&mut stage.ops);
        if stage.ops.is_empty() {
            return Ok(Sealed {
                ops: stage.ops,
                receipt: None,
                head: self.head,
                offsets: Vec::new(),
            });
        }
        let mut new_head = Head {
            last_inbox_seq: stage.inbox_next - 1,
            ..self.head
        };
        let header = match stage.hasher.take() {
            None => None,
            Some(hasher) => {
                let batch_no = self.head.last_batch_no + 1;
                let first_cmd_seq = self.head.last_cmd_seq + 1;
                let first_event_seq = self.head.last_event_seq + 1;
                let last_cmd_seq = stage.next_cmd - 1;
                let last_event_seq = stage.next_ev - 1;
                let hash = hasher.finish(
                    batch_no,
                    first_cmd_seq,
                    last_cmd_seq,
                    first_event_seq,
                    last_event_seq,
                );
                let header = BatchHeader {
                    batch_no,
                    first_cmd_seq,
                    last_cmd_seq,
                    first_event_seq,
                    last_event_seq,
                    prev_hash: self.head.hash,
                    hash,
                };
                stage.ops.put_with(Cf::Batches, &seq_key(batch_no), |b| {
                    format::encode_batch(b, &header)
                });
                for (key, &(position, cmd_seq)) in &stage.offsets {
                    stage
                        .ops
                        .put_with(Cf::Meta, &format::offset_meta_key(key), |b| {
                            format::encode_offset(b, key, position.offset, cmd_seq)
                        });
                }
                new_head.last_cmd_seq = last_cmd_seq;
                new_head.last_event_seq = last_event_seq;
                new_head.last_batch_no = batch_no;
                new_head.last_ts_ns = stage.last_ts;
                new_head.hash = hash;
                Some(header)
            }
        };
        // The head goes last and makes the whole write visible: a write torn by a
        // non-atomic store leaves the old head, so what it did write is a torn tail
        // (beyond the head), never a gap below it.
        stage.ops.put_with(Cf::Meta, format::META_HEAD, |b| {
            format::encode_head(b, &new_head)
        });
        Ok(Sealed {
            ops: stage.ops,
            receipt: header.map(|header| BatchReceipt { header }),
            head: new_head,
            offsets: stage
                .offsets
                .into_iter()
                .map(|(k, (position, _))| (k, position))
                .collect(),
        })
    }

    /// Moves the in-memory head to what `sealed` commits (after it was written, or,
    /// in the pipelined committer, once it is queued for writing) and keeps its
    /// buffer for the next stage.
    pub(crate) fn advance(&mut self, sealed: Sealed) {
        assert_eq!(
            sealed.head.last_batch_no,
            self.head.last_batch_no + u64::from(sealed.receipt.is_some()),
            "sealed writes advance one batch at a time"
        );
        self.head = sealed.head;
        self.consumed.extend(sealed.offsets);
        self.recycle(sealed.ops);
    }

    /// Keeps a write buffer for reuse.
    pub(crate) fn recycle(&self, mut ops: WriteOps) {
        if ops.bytes() <= SPARE_BYTES_MAX {
            ops.clear();
            *self
                .spare
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ops);
        }
    }

    /// After a write failed elsewhere (the pipelined committer's writer): poisons the
    /// handle and resets the in-memory head to what the store holds.
    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
        if let Ok(head) = verify::read_head(&*self.reader.store) {
            self.head = head;
        }
        if let Ok(consumed) = self.reader.consumed_positions(&self.head) {
            self.consumed = consumed;
        }
    }

    /// The store, shared (for the pipelined committer's writer thread).
    pub(crate) fn shared_store(&self) -> Arc<S> {
        Arc::clone(&self.reader.store)
    }

    /// The write that stores a snapshot of the state after `cmd_seq` (checked
    /// against the in-memory head).
    pub(crate) fn snapshot_ops(&self, cmd_seq: u64, bytes: &[u8]) -> Result<WriteOps> {
        let at_head = self.check_snapshot(cmd_seq, bytes)?;
        snapshot_ops(&*self.reader.store, cmd_seq, at_head, bytes)
    }

    /// Checks a snapshot of the state after `cmd_seq` can be stored; returns the
    /// head's last `event_seq` when `cmd_seq` is the head (else the store knows it,
    /// once everything before it is written).
    pub(crate) fn check_snapshot(&self, cmd_seq: u64, bytes: &[u8]) -> Result<Option<u64>> {
        self.check_writable()?;
        if cmd_seq > self.head.last_cmd_seq {
            return Err(LedgerError::SnapshotBeyondHead {
                cmd_seq,
                head: self.head.last_cmd_seq,
            });
        }
        bound("snapshot bytes", bytes.len(), SNAPSHOT_BYTES_MAX)?;
        Ok((cmd_seq == self.head.last_cmd_seq).then_some(self.head.last_event_seq))
    }

    /// Stores a snapshot of the state after `cmd_seq` (0: the empty state), synced.
    /// Snapshots are derived data: writing one again at the same `cmd_seq` replaces it.
    pub fn put_snapshot(&mut self, cmd_seq: u64, bytes: &[u8]) -> Result<()> {
        let ops = self.snapshot_ops(cmd_seq, bytes)?;
        if let Err(e) = self.reader.store.write(&ops, true) {
            self.poisoned = true;
            return Err(e.into());
        }
        Ok(())
    }

    /// Closes the ledger cleanly: moves what only the WAL holds into the store's files
    /// (RocksDB: flushes the memtables), so the next open need not replay the WAL.
    /// Everything acknowledged was durable already; this only makes restarts faster.
    /// The store closes when the last [`LedgerReader`] is dropped too.
    pub fn close(self) -> Result<()> {
        if !self.poisoned {
            self.reader.store.flush()?;
        }
        Ok(())
    }

    /// Verifies the whole ledger (see [`VerifyOnOpen::Full`]), reporting progress.
    pub fn verify(&self, progress: &mut dyn FnMut(VerifyProgress)) -> Result<VerifyReport> {
        self.reader.verify(progress)
    }

    /// See [`LedgerReader::read_commands`].
    pub fn read_commands(&self, from_cmd_seq: u64, max: usize) -> Result<Vec<CommandRecord>> {
        self.reader.read_commands(from_cmd_seq, max)
    }
    /// See [`LedgerReader::commands`].
    pub fn commands(&self, from_cmd_seq: u64) -> Result<RecordIter<'_, CommandRecord>> {
        self.reader.commands(from_cmd_seq)
    }
    /// See [`LedgerReader::command`].
    pub fn command(&self, cmd_seq: u64) -> Result<Option<CommandRecord>> {
        self.reader.command(cmd_seq)
    }
    /// See [`LedgerReader::read_events`].
    pub fn read_events(&self, from_event_seq: u64, max: usize) -> Result<Vec<EventRecord>> {
        self.reader.read_events(from_event_seq, max)
    }
    /// See [`LedgerReader::events`].
    pub fn events(&self, from_event_seq: u64) -> Result<RecordIter<'_, EventRecord>> {
        self.reader.events(from_event_seq)
    }
    /// See [`LedgerReader::events_of_command`].
    pub fn events_of_command(&self, cmd_seq: u64) -> Result<Vec<EventRecord>> {
        self.reader.events_of_command(cmd_seq)
    }
    /// See [`LedgerReader::batch`].
    pub fn batch(&self, batch_no: u64) -> Result<Option<BatchHeader>> {
        self.reader.batch(batch_no)
    }
    /// See [`LedgerReader::batches`].
    pub fn batches(&self, from_batch_no: u64) -> Result<RecordIter<'_, BatchHeader>> {
        self.reader.batches(from_batch_no)
    }
    /// See [`LedgerReader::read_inbox`].
    pub fn read_inbox(&self, from_seq: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.reader.read_inbox(from_seq, max)
    }
    /// See [`LedgerReader::latest_snapshot`].
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>> {
        self.reader.latest_snapshot()
    }
    /// See [`LedgerReader::snapshot_at_or_before`].
    pub fn snapshot_at_or_before(&self, cmd_seq: u64) -> Result<Option<Snapshot>> {
        self.reader.snapshot_at_or_before(cmd_seq)
    }
    /// See [`LedgerReader::latest_good_snapshot`].
    pub fn latest_good_snapshot(&self) -> Result<SnapshotFallback> {
        self.reader.latest_good_snapshot()
    }
}

/// Largest write buffer kept for reuse between writes.
const SPARE_BYTES_MAX: usize = 64 << 20;

fn bound(what: &'static str, got: usize, max: usize) -> Result<()> {
    if got > max {
        return Err(LedgerError::TooLarge {
            what,
            got: got as u64,
            max: max as u64,
        });
    }
    Ok(())
}

/// An iterator over stored records in sequence order, up to the head at its creation.
/// Yields `Err` (and then stops) on a gap or a record that does not verify.
pub struct RecordIter<'a, T> {
    inner: Box<dyn Iterator<Item = Result<T>> + 'a>,
}

impl<T> Iterator for RecordIter<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        self.inner.next()
    }
}

/// Records stored one per key (batch headers, inbox entries), in sequence order.
struct KeyIter<'a, T> {
    cursor: Box<dyn Cursor + 'a>,
    cf: Cf,
    next_seq: u64,
    last_seq: u64,
    decode: fn(&[u8], u64) -> Result<T>,
    done: bool,
}

impl<T> Iterator for KeyIter<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.done || self.next_seq > self.last_seq {
            return None;
        }
        let seq = self.next_seq;
        let item = match self.cursor.entry() {
            Some((k, v)) if key_seq(k) == Some(seq) => (self.decode)(v, seq),
            Some(_) | None => match self.cursor.status() {
                Err(e) => Err(e.into()),
                Ok(()) => Err(LedgerError::Corrupt(crate::Corruption::new(
                    CorruptionKind::Gap,
                    self.cf,
                    seq,
                    "record missing",
                ))),
            },
        };
        if item.is_err() {
            self.done = true;
        } else {
            self.next_seq += 1;
            self.cursor.next();
        }
        Some(item)
    }
}

fn decode_batch_owned(v: &[u8], seq: u64) -> Result<BatchHeader> {
    let h = format::decode_batch(v).map_err(|e| decode_err(e, Cf::Batches, seq))?;
    if h.batch_no != seq {
        return Err(malformed(Cf::Batches, seq, "batch_no differs from key"));
    }
    Ok(h)
}

fn decode_inbox_owned(v: &[u8], seq: u64) -> Result<(u64, Vec<u8>)> {
    let (s, p) = format::decode_inbox(v).map_err(|e| decode_err(e, Cf::Inbox, seq))?;
    if s != seq {
        return Err(malformed(Cf::Inbox, seq, "seq differs from key"));
    }
    Ok((s, p.to_vec()))
}

fn decode_snapshot_owned(v: &[u8], seq: u64) -> Result<Snapshot> {
    let s = format::decode_snapshot(v).map_err(|e| decode_err(e, Cf::Snapshots, seq))?;
    if s.cmd_seq != seq {
        return Err(malformed(Cf::Snapshots, seq, "cmd_seq differs from key"));
    }
    Ok(Snapshot {
        cmd_seq: s.cmd_seq,
        event_seq: s.event_seq,
        bytes: s.bytes.to_vec(),
    })
}

fn malformed(cf: Cf, seq: u64, detail: &str) -> LedgerError {
    LedgerError::Corrupt(crate::Corruption::new(
        CorruptionKind::Malformed,
        cf,
        seq,
        detail,
    ))
}

impl<S: Store> LedgerReader<S> {
    /// A read handle over `store` (no verification: open a [`Ledger`] for that).
    pub fn new(store: Arc<S>) -> Self {
        Self { store }
    }

    /// The head stored in meta.
    pub fn head(&self) -> Result<Head> {
        verify::read_head(&*self.store)
    }

    /// The store (for tools that look below the API, e.g. through [`crate::layout`]).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The consumed offset of `source` stored in meta.
    pub fn consumed_offset(&self, source: &SourceKey) -> Result<Option<u64>> {
        Ok(self.offset_record(source)?.map(|r| r.offset))
    }

    /// The position of the last command consumed from `source`: the consumed
    /// offset stored in meta and, when that record was a batch, the index of the
    /// command there (read from the command the offset record names).
    pub fn consumed_position(&self, source: &SourceKey) -> Result<Option<Position>> {
        self.offset_record(source)?
            .map(|r| self.position_of(r.offset, r.cmd_seq))
            .transpose()
    }

    /// The consumed-offset record of `source`, if it has one.
    fn offset_record(&self, source: &SourceKey) -> Result<Option<format::OffsetRecord>> {
        self.store
            .get(Cf::Meta, &format::offset_meta_key(source))?
            .map(|v| format::decode_offset(&v).map_err(|e| decode_err(e, Cf::Meta, 0)))
            .transpose()
    }

    /// The consumed position of every source, as of `head`.
    pub(crate) fn consumed_positions(&self, head: &Head) -> Result<BTreeMap<SourceKey, Position>> {
        verify::stored_consumed_by(&*self.store, head)?
            .into_iter()
            .map(|(key, (offset, cmd_seq))| Ok((key, self.position_of(offset, cmd_seq)?)))
            .collect()
    }

    /// The position of command `cmd_seq`, which consumed record `offset`. A
    /// command that is missing or names another offset is left to verification
    /// (which reports it): the record's offset alone is the position then.
    fn position_of(&self, offset: u64, cmd_seq: u64) -> Result<Position> {
        Ok(match self.command(cmd_seq)? {
            Some(c) if c.source.offset() == offset => c.source.position(),
            _ => Position::record(offset),
        })
    }

    fn iter<T: 'static>(
        &self,
        cf: Cf,
        from: u64,
        last: u64,
        decode: fn(&[u8], u64) -> Result<T>,
    ) -> RecordIter<'_, T> {
        let from = from.max(1);
        let mut cursor = self.store.cursor(cf);
        cursor.seek(&seq_key(from));
        RecordIter {
            inner: Box::new(KeyIter {
                cursor,
                cf,
                next_seq: from,
                last_seq: last,
                decode,
                done: false,
            }),
        }
    }

    /// Commands from `from_cmd_seq` up to the head.
    pub fn commands(&self, from_cmd_seq: u64) -> Result<RecordIter<'_, CommandRecord>> {
        let head = self.head()?;
        Ok(RecordIter {
            inner: Box::new(ChunkIter::new(
                chunk::Commands,
                &*self.store,
                Cf::Commands,
                from_cmd_seq,
                head.last_cmd_seq,
            )),
        })
    }

    /// At most `max` commands from `from_cmd_seq`.
    pub fn read_commands(&self, from_cmd_seq: u64, max: usize) -> Result<Vec<CommandRecord>> {
        self.commands(from_cmd_seq)?.take(max).collect()
    }

    /// One command.
    pub fn command(&self, cmd_seq: u64) -> Result<Option<CommandRecord>> {
        if cmd_seq == 0 || cmd_seq > self.head()?.last_cmd_seq {
            return Ok(None);
        }
        chunk::chunk_of_command(&*self.store, cmd_seq)?
            .command(cmd_seq)
            .map(Some)
    }

    /// Events from `from_event_seq` up to the head.
    pub fn events(&self, from_event_seq: u64) -> Result<RecordIter<'_, EventRecord>> {
        let head = self.head()?;
        Ok(RecordIter {
            inner: Box::new(ChunkIter::new(
                chunk::Events(&*self.store),
                &*self.store,
                Cf::Events,
                from_event_seq,
                head.last_event_seq,
            )),
        })
    }

    /// At most `max` events from `from_event_seq`.
    pub fn read_events(&self, from_event_seq: u64, max: usize) -> Result<Vec<EventRecord>> {
        self.events(from_event_seq)?.take(max).collect()
    }

    /// The events `cmd_seq` produced (empty if it produced none or is unknown).
    pub fn events_of_command(&self, cmd_seq: u64) -> Result<Vec<EventRecord>> {
        if cmd_seq == 0 || cmd_seq > self.head()?.last_cmd_seq {
            return Ok(Vec::new());
        }
        let chunk = chunk::chunk_of_command(&*self.store, cmd_seq)?;
        chunk.command(cmd_seq)?;
        let (_, events) = chunk.command_raw(cmd_seq);
        events.map(|i| chunk.event(i)).collect()
    }

    /// One batch header.
    pub fn batch(&self, batch_no: u64) -> Result<Option<BatchHeader>> {
        if batch_no == 0 || batch_no > self.head()?.last_batch_no {
            return Ok(None);
        }
        self.batches(batch_no)?.next().transpose()
    }

    /// Batch headers from `from_batch_no` up to the head.
    pub fn batches(&self, from_batch_no: u64) -> Result<RecordIter<'_, BatchHeader>> {
        let head = self.head()?;
        Ok(self.iter(
            Cf::Batches,
            from_batch_no,
            head.last_batch_no,
            decode_batch_owned,
        ))
    }

    /// At most `max` inbox entries `(seq, payload)` from `from_seq`.
    pub fn read_inbox(&self, from_seq: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let last = self.inbox_last()?;
        self.iter(Cf::Inbox, from_seq, last, decode_inbox_owned)
            .take(max)
            .collect()
    }

    /// The last inbox seq journaled (0: none), from the stored head.
    pub fn inbox_last(&self) -> Result<u64> {
        Ok(self.head()?.last_inbox_seq)
    }

    /// The newest snapshot; `Err` if it does not verify (see
    /// [`LedgerReader::latest_good_snapshot`] to fall back).
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>> {
        self.snapshot_at_or_before(u64::MAX)
    }

    /// The newest snapshot at or before `cmd_seq` (and at or before the head); `Err` if
    /// it does not verify.
    pub fn snapshot_at_or_before(&self, cmd_seq: u64) -> Result<Option<Snapshot>> {
        let upto = cmd_seq.min(self.head()?.last_cmd_seq);
        let mut c = self.store.cursor(Cf::Snapshots);
        c.seek_for_prev(&seq_key(upto));
        let found = match c.entry() {
            None => None,
            Some((k, v)) => {
                let seq =
                    key_seq(k).ok_or_else(|| malformed(Cf::Snapshots, 0, "key is not a seq"))?;
                Some(decode_snapshot_owned(v, seq)?)
            }
        };
        c.status()?;
        Ok(found)
    }

    /// The newest snapshot that verifies, skipping (and reporting) newer corrupt ones.
    pub fn latest_good_snapshot(&self) -> Result<SnapshotFallback> {
        let upto = self.head()?.last_cmd_seq;
        let mut c = self.store.cursor(Cf::Snapshots);
        c.seek_for_prev(&seq_key(upto));
        let mut skipped = Vec::new();
        while let Some((k, v)) = c.entry() {
            let seq = key_seq(k).unwrap_or(0);
            match decode_snapshot_owned(v, seq) {
                Ok(s) => {
                    return Ok(SnapshotFallback {
                        snapshot: Some(s),
                        skipped,
                    });
                }
                Err(LedgerError::Corrupt(x)) => {
                    tracing::warn!(target: "gpux_ledger", corruption = %x, "skipping corrupt snapshot");
                    skipped.push(x);
                }
                Err(e) => return Err(e),
            }
            c.prev();
        }
        c.status()?;
        Ok(SnapshotFallback {
            snapshot: None,
            skipped,
        })
    }

    /// Verifies the whole ledger; a torn tail is an error here.
    pub fn verify(&self, progress: &mut dyn FnMut(VerifyProgress)) -> Result<VerifyReport> {
        let findings = verify::run(&*self.store, VerifyOnOpen::Full, progress)?;
        if let Some(torn) = findings.tail.corruption(&findings.report.head) {
            return Err(LedgerError::Corrupt(torn));
        }
        Ok(findings.report)
    }
}
