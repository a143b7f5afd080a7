//! Integrity verification: the walk from genesis to the head, and torn-tail repair.
//!
//! Owns the rules that decide whether a ledger may be trusted: every record's checksum,
//! dense `batch_no`/`cmd_seq`/`event_seq`, commands and events linked both ways, the
//! hash chain from [`GENESIS_HASH`] to the head in meta, consumed offsets equal to what
//! the commands imply, and nothing stored beyond the head (a torn tail). The full walk
//! is split into contiguous batch ranges verified in parallel (each range starts from
//! the `prev_hash` its first header claims; the joins check those claims), so it runs
//! at the speed of the disk and the SHA-256 unit rather than one core.
//!
//! The first problem found is returned as a [`Corruption`] naming its kind, column
//! family and exact sequence number; "first" means lowest position in the chain.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::chunk::{chunk_of_command, chunk_of_event, decode_event_at, Chunk};
use crate::error::{Corruption, CorruptionKind, LedgerError, Result};
use crate::format::{self, key_seq, seq_key, DecodeError};
use crate::store::{Cf, Cursor, Store, WriteOps};
use crate::types::{BatchHeader, Hash, Head, Position, SourceKey, GENESIS_HASH};

/// Per source: the position of the last command consumed from it, and its cmd_seq.
type Consumed = BTreeMap<SourceKey, (Position, u64)>;

/// How much of the ledger [`Ledger::open`](crate::Ledger::open) verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyOnOpen {
    /// Everything: every checksum, every link, the whole chain, offsets, inbox,
    /// snapshots. Cost is linear in the ledger's size (see the bench's `open_ms`).
    #[default]
    Full,
    /// Only the head: the meta head, the last batch header and its hash, the last
    /// command and event, the consumed offsets against the commands they name, and
    /// the torn-tail check. For very large ledgers; run [`verify`](crate::Ledger::verify)
    /// separately.
    Tail,
    /// [`Tail`](Self::Tail) at open, and the rest of [`Full`](Self::Full) deferred:
    /// [`Ledger::take_deferred_verification`](crate::Ledger::take_deferred_verification)
    /// hands it out once, to run on another thread while the ledger commits after
    /// its head (records at or below a head never change). Damage below the head
    /// is then found a moment after the open instead of refusing it, so a restart
    /// takes milliseconds however long the ledger is; whoever runs it must stop
    /// writing when it fails (the pipeline does).
    Background,
}

/// Progress of a verification, reported to the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    /// Batches verified so far.
    pub batches_done: u64,
    /// Batches to verify.
    pub batches_total: u64,
    /// Events verified so far.
    pub events_done: u64,
    /// Events to verify.
    pub events_total: u64,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The verified head.
    pub head: Head,
    /// Batches verified.
    pub batches: u64,
    /// Commands verified.
    pub commands: u64,
    /// Events verified.
    pub events: u64,
    /// Inbox entries verified.
    pub inbox_entries: u64,
    /// Snapshots that verified.
    pub snapshots: u64,
    /// Snapshots that did not (not fatal: opening falls back to an older one).
    pub corrupt_snapshots: Vec<Corruption>,
    /// The consumed offset of every source, recomputed from the commands.
    pub consumed: BTreeMap<SourceKey, u64>,
    /// Wall time.
    pub elapsed: Duration,
}

/// The records beyond the head found by a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tail {
    pub batches: Vec<u64>,
    pub commands: Vec<u64>,
    pub events: Vec<u64>,
    pub snapshots: Vec<u64>,
    pub inbox: Vec<u64>,
    /// Meta keys of consumed offsets written by a command beyond the head.
    pub offsets: Vec<(Vec<u8>, SourceKey)>,
}

impl Tail {
    fn is_empty(&self) -> bool {
        self.batches.is_empty()
            && self.commands.is_empty()
            && self.events.is_empty()
            && self.snapshots.is_empty()
            && self.inbox.is_empty()
            && self.offsets.is_empty()
    }

    /// The corruption describing this tail (its first record).
    pub fn corruption(&self, head: &Head) -> Option<Corruption> {
        let detail = format!(
            "beyond head (cmd_seq {}, event_seq {}, batch_no {}, inbox seq {}): {} batches, {} commands, {} events, {} snapshots, {} inbox entries, {} consumed offsets",
            head.last_cmd_seq,
            head.last_event_seq,
            head.last_batch_no,
            head.last_inbox_seq,
            self.batches.len(),
            self.commands.len(),
            self.events.len(),
            self.snapshots.len(),
            self.inbox.len(),
            self.offsets.len()
        );
        let first = [
            (Cf::Batches, self.batches.first()),
            (Cf::Commands, self.commands.first()),
            (Cf::Events, self.events.first()),
            (Cf::Snapshots, self.snapshots.first()),
            (Cf::Inbox, self.inbox.first()),
        ]
        .into_iter()
        .find_map(|(cf, s)| s.map(|&s| (cf, s)))
        .unwrap_or((Cf::Meta, head.last_cmd_seq + 1));
        if self.is_empty() {
            return None;
        }
        Some(Corruption::new(
            CorruptionKind::TornTail,
            first.0,
            first.1,
            detail,
        ))
    }
}

/// What verification found short of a hard error.
pub(crate) struct Findings {
    pub report: VerifyReport,
    pub tail: Tail,
}

fn corrupt(kind: CorruptionKind, cf: Cf, seq: u64, detail: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt(Corruption::new(kind, cf, seq, detail))
}

/// Maps a decode failure of the record at (`cf`, `seq`) to a corruption.
pub(crate) fn decode_err(e: DecodeError, cf: Cf, seq: u64) -> LedgerError {
    match e {
        DecodeError::Checksum => corrupt(
            CorruptionKind::ChecksumMismatch,
            cf,
            seq,
            "crc32c does not match",
        ),
        DecodeError::Version(v) => corrupt(
            CorruptionKind::UnsupportedVersion,
            cf,
            seq,
            format!(
                "record version {v}, this build reads {}",
                format::FORMAT_VERSION
            ),
        ),
        DecodeError::Malformed(why) => corrupt(CorruptionKind::Malformed, cf, seq, why),
    }
}

/// Reads and decodes the meta head (genesis when absent).
pub(crate) fn read_head<S: Store + ?Sized>(store: &S) -> Result<Head> {
    match store.get(Cf::Meta, format::META_HEAD)? {
        None => Ok(Head::GENESIS),
        Some(v) => format::decode_head(&v).map_err(|e| decode_err(e, Cf::Meta, 0)),
    }
}

/// Where a segment of the chain starts.
#[derive(Clone, Copy)]
struct SegStart {
    batch_no: u64,
    prev_hash: Hash,
    next_cmd: u64,
    next_ev: u64,
}

/// What a verified segment ends with.
#[derive(Default)]
struct SegEnd {
    hash: Hash,
    last_cmd: u64,
    last_ev: u64,
    first_ts: Option<u64>,
    last_ts: u64,
    /// Per source: first position seen in the segment.
    first_positions: BTreeMap<SourceKey, Position>,
    /// Per source: last position seen and the command that consumed it.
    last_positions: Consumed,
    commands: u64,
    events: u64,
}

/// Checks that `cursor` sits on `seq`; a missing or larger key is a gap.
fn expect_key(cursor: &dyn Cursor, cf: Cf, seq: u64) -> Result<(&[u8], &[u8]), LedgerError> {
    match cursor.entry() {
        None => {
            cursor.status()?;
            Err(corrupt(CorruptionKind::Gap, cf, seq, "record missing"))
        }
        Some((k, v)) => match key_seq(k) {
            Some(s) if s == seq => Ok((k, v)),
            Some(s) if s > seq => Err(corrupt(
                CorruptionKind::Gap,
                cf,
                seq,
                format!("record missing (next stored is {s})"),
            )),
            _ => Err(corrupt(
                CorruptionKind::Malformed,
                cf,
                seq,
                "unexpected key where this record should be",
            )),
        },
    }
}

const PROGRESS_EVERY_BATCHES: u64 = 256;

fn verify_segment<S: Store + ?Sized>(
    store: &S,
    start: SegStart,
    last_batch_no: u64,
    progress: &mpsc::Sender<(u64, u64)>,
) -> Result<SegEnd> {
    let mut bc = store.cursor(Cf::Batches);
    bc.seek(&seq_key(start.batch_no));
    let mut walk = Walk {
        cc: store.cursor(Cf::Commands),
        ec: store.cursor(Cf::Events),
        next_cmd: start.next_cmd,
        next_ev: start.next_ev,
        end: SegEnd {
            hash: start.prev_hash,
            last_cmd: start.next_cmd - 1,
            last_ev: start.next_ev - 1,
            ..SegEnd::default()
        },
    };
    walk.cc.seek(&seq_key(start.next_cmd));
    walk.ec.seek(&seq_key(start.next_ev));
    let mut prev_hash = start.prev_hash;
    let (mut pending_batches, mut pending_events) = (0u64, 0u64);

    for batch_no in start.batch_no..=last_batch_no {
        let (_, bv) = expect_key(&*bc, Cf::Batches, batch_no)?;
        let h = format::decode_batch(bv).map_err(|e| decode_err(e, Cf::Batches, batch_no))?;
        check_header(&h, batch_no, &prev_hash, walk.next_cmd, walk.next_ev)?;
        let mut hasher = format::BatchHasher::new(&prev_hash);
        while walk.next_cmd <= h.last_cmd_seq {
            walk.chunk(&h, &mut hasher)?;
        }
        check_batch_end(&h, walk.next_ev, hasher)?;
        prev_hash = h.hash;
        walk.end.commands += h.last_cmd_seq - h.first_cmd_seq + 1;
        walk.end.events += h.last_event_seq + 1 - h.first_event_seq;
        pending_batches += 1;
        pending_events += h.last_event_seq + 1 - h.first_event_seq;
        if pending_batches == PROGRESS_EVERY_BATCHES {
            let _ = progress.send((pending_batches, pending_events));
            (pending_batches, pending_events) = (0, 0);
        }
        bc.next();
    }
    let _ = progress.send((pending_batches, pending_events));
    let mut end = walk.end;
    end.hash = prev_hash;
    end.last_cmd = walk.next_cmd - 1;
    end.last_ev = walk.next_ev - 1;
    Ok(end)
}

/// A batch header continues the chain (`prev_hash`) and the command and event
/// ranges (`next_cmd`, `next_ev`).
fn check_header(
    h: &BatchHeader,
    batch_no: u64,
    prev_hash: &Hash,
    next_cmd: u64,
    next_ev: u64,
) -> Result<()> {
    let bad_batch = |kind, detail: String| corrupt(kind, Cf::Batches, batch_no, detail);
    if h.batch_no != batch_no {
        return Err(bad_batch(
            CorruptionKind::Malformed,
            format!("header says batch_no {}", h.batch_no),
        ));
    }
    if h.prev_hash != *prev_hash {
        return Err(bad_batch(
            CorruptionKind::BrokenChain,
            "prev_hash is not the previous batch's hash".into(),
        ));
    }
    if h.first_cmd_seq != next_cmd || h.last_cmd_seq < h.first_cmd_seq {
        return Err(bad_batch(
            CorruptionKind::Malformed,
            format!(
                "command range {}..={} does not continue at {next_cmd}",
                h.first_cmd_seq, h.last_cmd_seq
            ),
        ));
    }
    if h.first_event_seq != next_ev || h.last_event_seq + 1 < h.first_event_seq {
        return Err(bad_batch(
            CorruptionKind::Malformed,
            format!(
                "event range {}..={} does not continue at {next_ev}",
                h.first_event_seq, h.last_event_seq
            ),
        ));
    }
    Ok(())
}

/// After a batch's commands: its event range ends where they did (`next_ev`), and
/// the hash of its records is the stored one.
fn check_batch_end(h: &BatchHeader, next_ev: u64, hasher: format::BatchHasher) -> Result<()> {
    let bad_batch = |kind, detail: String| corrupt(kind, Cf::Batches, h.batch_no, detail);
    if next_ev != h.last_event_seq + 1 {
        return Err(bad_batch(
            CorruptionKind::Malformed,
            format!(
                "claims events up to {} but its commands produced up to {}",
                h.last_event_seq,
                next_ev - 1
            ),
        ));
    }
    let computed = hasher.finish(
        h.batch_no,
        h.first_cmd_seq,
        h.last_cmd_seq,
        h.first_event_seq,
        h.last_event_seq,
    );
    if computed != h.hash {
        return Err(bad_batch(
            CorruptionKind::BrokenChain,
            "recomputed hash differs from the stored one: the batch's records were changed".into(),
        ));
    }
    Ok(())
}

/// The chunk and event-index cursors of a segment walk, where they are, and what
/// the segment has seen so far.
struct Walk<'s> {
    cc: Box<dyn Cursor + 's>,
    ec: Box<dyn Cursor + 's>,
    next_cmd: u64,
    next_ev: u64,
    end: SegEnd,
}

impl Walk<'_> {
    /// Checks the chunk that starts at the next command, inside batch `h`: its
    /// header, its event-index entry, and every command and event in it, adding
    /// their records to the batch's hash.
    fn chunk(&mut self, h: &BatchHeader, hasher: &mut format::BatchHasher) -> Result<()> {
        let key = self.next_cmd;
        let (_, v) = expect_key(&*self.cc, Cf::Commands, key)?;
        let chunk = Chunk::load(key, v.to_vec())?;
        let bad_chunk =
            |detail: String| corrupt(CorruptionKind::Malformed, Cf::Commands, key, detail);
        if chunk.header.batch_no != h.batch_no {
            return Err(bad_chunk(format!(
                "chunk says batch {}, it is in batch {}",
                chunk.header.batch_no, h.batch_no
            )));
        }
        if chunk.header.first_event_seq != self.next_ev {
            return Err(bad_chunk(format!(
                "chunk's events start at {}, the next event is {}",
                chunk.header.first_event_seq, self.next_ev
            )));
        }
        if chunk.end_cmd() - 1 > h.last_cmd_seq {
            return Err(bad_chunk(format!(
                "chunk runs to cmd_seq {}, past its batch's last {}",
                chunk.end_cmd() - 1,
                h.last_cmd_seq
            )));
        }
        if chunk.header.event_count > 0 {
            self.index_entry(&chunk)?;
        }
        for cmd_seq in chunk.key..chunk.end_cmd() {
            self.command(h, &chunk, cmd_seq, hasher)?;
        }
        self.cc.next();
        Ok(())
    }

    /// The event-index entry of `chunk` (which has events) names it.
    fn index_entry(&mut self, chunk: &Chunk) -> Result<()> {
        let first = chunk.header.first_event_seq;
        let (_, v) = expect_key(&*self.ec, Cf::Events, first)?;
        let idx = format::decode_event_index(v).map_err(|e| decode_err(e, Cf::Events, first))?;
        if idx.first_event_seq != first
            || idx.event_count != chunk.header.event_count
            || idx.chunk != chunk.key
        {
            return Err(corrupt(
                CorruptionKind::Malformed,
                Cf::Events,
                first,
                format!(
                    "index entry says events {}+{} in chunk {}, the chunk at {} holds {first}+{}",
                    idx.first_event_seq,
                    idx.event_count,
                    idx.chunk,
                    chunk.key,
                    chunk.header.event_count
                ),
            ));
        }
        self.ec.next();
        Ok(())
    }

    /// Checks command `cmd_seq` of batch `h` (in `chunk`) and its events, adding
    /// their records to the batch's hash.
    fn command(
        &mut self,
        h: &BatchHeader,
        chunk: &Chunk,
        cmd_seq: u64,
        hasher: &mut format::BatchHasher,
    ) -> Result<()> {
        let (cv, events) = chunk.command_raw(cmd_seq);
        let c = format::decode_command(cv).map_err(|e| decode_err(e, Cf::Commands, cmd_seq))?;
        let bad_cmd =
            |detail: String| corrupt(CorruptionKind::Malformed, Cf::Commands, cmd_seq, detail);
        let end = &mut self.end;
        if c.cmd_seq != cmd_seq {
            return Err(bad_cmd(format!("record says cmd_seq {}", c.cmd_seq)));
        }
        if c.ts_ns < end.last_ts {
            return Err(bad_cmd(format!(
                "ts_ns {} before the previous command's {}",
                c.ts_ns, end.last_ts
            )));
        }
        if c.first_event_seq != self.next_ev || c.event_count as usize != events.len() {
            return Err(bad_cmd(format!(
                "says events {}+{} but the next event is {} and {} follow it",
                c.first_event_seq,
                c.event_count,
                self.next_ev,
                events.len()
            )));
        }
        let key = c.source.key();
        let position = c.source.position();
        if let Some(&(prev, _)) = end.last_positions.get(&key) {
            if position <= prev {
                return Err(bad_cmd(format!(
                    "source {key} position {position} not after {prev}"
                )));
            }
        } else {
            end.first_positions.insert(key.clone(), position);
        }
        end.last_positions.insert(key, (position, cmd_seq));
        end.first_ts.get_or_insert(c.ts_ns);
        end.last_ts = c.ts_ns;
        hasher.record(cv);
        for i in events {
            self.event(h, chunk.event_raw(i), cmd_seq, hasher)?;
        }
        self.next_cmd += 1;
        Ok(())
    }

    /// Checks the next event (stored record `ev`), which belongs to command
    /// `cmd_seq` of batch `h`.
    fn event(
        &mut self,
        h: &BatchHeader,
        ev: &[u8],
        cmd_seq: u64,
        hasher: &mut format::BatchHasher,
    ) -> Result<()> {
        let event_seq = self.next_ev;
        if event_seq > h.last_event_seq {
            return Err(corrupt(
                CorruptionKind::Malformed,
                Cf::Commands,
                cmd_seq,
                format!(
                    "has more events than its batch ({} ends at event {})",
                    h.batch_no, h.last_event_seq
                ),
            ));
        }
        decode_event_at(ev, event_seq, cmd_seq)?;
        hasher.record(ev);
        self.next_ev += 1;
        Ok(())
    }
}

/// Joins the result of the segment starting at `start` to the segments before
/// it (`acc`), checking that it continues them: chain, ranges, timestamps, source
/// offsets.
fn merge(mut acc: SegEnd, seg: SegEnd, start: &SegStart) -> Result<SegEnd> {
    let b = start.batch_no;
    let at = |kind, detail: String| corrupt(kind, Cf::Batches, b, detail);
    if acc.hash != start.prev_hash {
        return Err(at(
            CorruptionKind::BrokenChain,
            "prev_hash is not the previous batch's hash".into(),
        ));
    }
    if acc.last_cmd + 1 != start.next_cmd || acc.last_ev + 1 != start.next_ev {
        return Err(at(
            CorruptionKind::Malformed,
            format!(
                "ranges do not continue at cmd_seq {} / event_seq {}",
                acc.last_cmd + 1,
                acc.last_ev + 1
            ),
        ));
    }
    let at_cmd = |detail: String| {
        corrupt(
            CorruptionKind::Malformed,
            Cf::Commands,
            start.next_cmd,
            detail,
        )
    };
    if let Some(ts) = seg.first_ts {
        if ts < acc.last_ts {
            return Err(at_cmd(format!("a timestamp goes backwards in batch {b}")));
        }
    }
    for (key, first) in &seg.first_positions {
        if let Some(&(prev, _)) = acc.last_positions.get(key) {
            if *first <= prev {
                return Err(at_cmd(format!(
                    "source {key} position {first} not after {prev} (batch {b} or later)"
                )));
            }
        }
    }
    acc.hash = seg.hash;
    acc.last_cmd = seg.last_cmd;
    acc.last_ev = seg.last_ev;
    acc.last_ts = seg.last_ts.max(acc.last_ts);
    acc.last_positions.extend(seg.last_positions);
    acc.commands += seg.commands;
    acc.events += seg.events;
    Ok(acc)
}

/// Number of parallel ranges for `batches` batches.
fn segment_count(batches: u64) -> u64 {
    const MIN_BATCHES_PER_SEGMENT: u64 = 512;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    cores
        .clamp(1, 8)
        .min(batches / MIN_BATCHES_PER_SEGMENT)
        .max(1)
}

/// Where the parallel segments of a chain of `total` batches start: genesis, then
/// evenly spaced batches whose headers say where they continue from. A missing
/// or damaged boundary header ends the list (the segment before it reports it).
fn segment_starts<S: Store + ?Sized>(store: &S, total: u64) -> Result<Vec<SegStart>> {
    let k = segment_count(total);
    let mut starts = vec![SegStart {
        batch_no: 1,
        prev_hash: GENESIS_HASH,
        next_cmd: 1,
        next_ev: 1,
    }];
    for i in 1..k {
        let b = 1 + i * total / k;
        let header = match store.get(Cf::Batches, &seq_key(b))? {
            Some(v) => format::decode_batch(&v),
            // Let the previous segment find the gap at its exact position.
            None => break,
        };
        match header {
            Ok(h) if h.first_cmd_seq > 0 && h.first_event_seq > 0 => starts.push(SegStart {
                batch_no: b,
                prev_hash: h.prev_hash,
                next_cmd: h.first_cmd_seq,
                next_ev: h.first_event_seq,
            }),
            // Damaged boundary header: the previous segment reaches and reports it.
            _ => break,
        }
    }
    Ok(starts)
}

/// Verifies the chain from genesis to `head`; returns the merged segment result.
fn verify_chain<S: Store + ?Sized>(
    store: &S,
    head: &Head,
    progress: &mut dyn FnMut(VerifyProgress),
) -> Result<SegEnd> {
    let total = head.last_batch_no;
    if total == 0 {
        return Ok(SegEnd {
            hash: GENESIS_HASH,
            ..SegEnd::default()
        });
    }
    let starts = segment_starts(store, total)?;
    let ends: Vec<u64> = starts
        .iter()
        .skip(1)
        .map(|s| s.batch_no - 1)
        .chain([total])
        .collect();

    let (tx, rx) = mpsc::channel::<(u64, u64)>();
    let results: Vec<Result<SegEnd>> = std::thread::scope(|scope| {
        let handles: Vec<_> = starts
            .iter()
            .zip(&ends)
            .map(|(&start, &last)| {
                let tx = tx.clone();
                scope.spawn(move || verify_segment(store, start, last, &tx))
            })
            .collect();
        drop(tx);
        let mut p = VerifyProgress {
            batches_done: 0,
            batches_total: total,
            events_done: 0,
            events_total: head.last_event_seq,
        };
        for (b, e) in rx {
            p.batches_done += b;
            p.events_done += e;
            progress(p);
        }
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });

    let mut merged: Option<SegEnd> = None;
    for (i, r) in results.into_iter().enumerate() {
        let seg = r?;
        merged = Some(match merged {
            None => seg,
            Some(acc) => merge(acc, seg, &starts[i])?,
        });
    }
    let end = merged.expect("at least one segment");
    check_end_is_head(&end, head)?;
    Ok(end)
}

/// The chain ends where the meta head says: hash, last command and event, last
/// timestamp.
fn check_end_is_head(end: &SegEnd, head: &Head) -> Result<()> {
    if end.hash != head.hash
        || end.last_cmd != head.last_cmd_seq
        || end.last_ev != head.last_event_seq
    {
        return Err(corrupt(
            CorruptionKind::MetaMismatch,
            Cf::Meta,
            head.last_batch_no,
            format!(
                "head (cmd_seq {}, event_seq {}) disagrees with the chain's end (cmd_seq {}, event_seq {}) or its hash",
                head.last_cmd_seq, head.last_event_seq, end.last_cmd, end.last_ev
            ),
        ));
    }
    if end.last_ts != head.last_ts_ns {
        return Err(corrupt(
            CorruptionKind::MetaMismatch,
            Cf::Meta,
            head.last_batch_no,
            "head timestamp differs from the last command's",
        ));
    }
    Ok(())
}

/// Every key in `cf` at or after `from`.
fn keys_from<S: Store + ?Sized>(store: &S, cf: Cf, from: u64) -> Result<Vec<u64>> {
    let mut c = store.cursor(cf);
    c.seek(&seq_key(from));
    let mut out = Vec::new();
    while let Some((k, _)) = c.entry() {
        out.push(key_seq(k).unwrap_or(u64::MAX));
        c.next();
    }
    c.status()?;
    Ok(out)
}

/// Stored consumed offsets: (meta key, record).
fn stored_offsets<S: Store + ?Sized>(store: &S) -> Result<Vec<(Vec<u8>, format::OffsetRecord)>> {
    let mut c = store.cursor(Cf::Meta);
    c.seek(format::META_OFFSET_PREFIX);
    let mut out = Vec::new();
    while let Some((k, v)) = c.entry() {
        if !k.starts_with(format::META_OFFSET_PREFIX) {
            break;
        }
        let rec = format::decode_offset(v).map_err(|e| decode_err(e, Cf::Meta, 0))?;
        if format::offset_meta_key(&rec.key) != k {
            return Err(corrupt(
                CorruptionKind::Malformed,
                Cf::Meta,
                rec.cmd_seq,
                format!("consumed offset of {} stored under another key", rec.key),
            ));
        }
        out.push((k.to_vec(), rec));
        c.next();
    }
    c.status()?;
    Ok(out)
}

/// The consumed-offset record of `key` — `offset`, written by `cmd_seq` — against
/// the offsets the commands imply (`recomputed`): a meta mismatch if they differ.
fn check_offset(recomputed: &Consumed, key: &SourceKey, offset: u64, cmd_seq: u64) -> Result<()> {
    if recomputed
        .get(key)
        .is_some_and(|&(p, c)| (p.offset, c) == (offset, cmd_seq))
    {
        return Ok(());
    }
    Err(corrupt(
        CorruptionKind::MetaMismatch,
        Cf::Meta,
        cmd_seq,
        format!(
            "consumed offset of {key} is {offset} (by cmd_seq {cmd_seq}) but the commands say {:?}",
            recomputed.get(key)
        ),
    ))
}

/// A source the commands consumed from whose consumed-offset record is missing
/// (`has_record` says which keys have one), as a meta mismatch.
fn check_no_offset_missing(
    recomputed: &Consumed,
    has_record: impl Fn(&SourceKey) -> bool,
) -> Result<()> {
    match recomputed.iter().find(|(k, _)| !has_record(k)) {
        Some((key, &(_, cmd_seq))) => Err(corrupt(
            CorruptionKind::MetaMismatch,
            Cf::Meta,
            cmd_seq,
            format!("consumed offset of {key} missing"),
        )),
        None => Ok(()),
    }
}

/// Finds the torn tail (records beyond `head`) and checks the offsets at or below it.
/// `recomputed`: offsets implied by the commands, when a full walk computed them.
fn check_tail_and_offsets<S: Store + ?Sized>(
    store: &S,
    head: &Head,
    recomputed: Option<&Consumed>,
) -> Result<Tail> {
    let mut tail = Tail {
        batches: keys_from(store, Cf::Batches, head.last_batch_no + 1)?,
        commands: keys_from(store, Cf::Commands, head.last_cmd_seq + 1)?,
        events: keys_from(store, Cf::Events, head.last_event_seq + 1)?,
        snapshots: keys_from(store, Cf::Snapshots, head.last_cmd_seq + 1)?,
        inbox: keys_from(store, Cf::Inbox, head.last_inbox_seq + 1)?,
        offsets: Vec::new(),
    };
    let stored = stored_offsets(store)?;
    let mut seen = BTreeMap::new();
    for (meta_key, rec) in stored {
        if rec.cmd_seq > head.last_cmd_seq {
            tail.offsets.push((meta_key, rec.key));
            continue;
        }
        let mismatch =
            |detail: String| corrupt(CorruptionKind::MetaMismatch, Cf::Meta, rec.cmd_seq, detail);
        match recomputed {
            Some(map) => check_offset(map, &rec.key, rec.offset, rec.cmd_seq)?,
            None => {
                // Cheap check: the command it names consumed exactly this offset.
                let ok = match chunk_of_command(store, rec.cmd_seq.max(1)) {
                    Ok(chunk) => {
                        let c = chunk.command(rec.cmd_seq.max(1))?;
                        c.source.key() == rec.key && c.source.offset() == rec.offset
                    }
                    Err(LedgerError::Corrupt(x)) if x.kind == CorruptionKind::Gap => false,
                    Err(e) => return Err(e),
                };
                if !ok {
                    return Err(mismatch(format!(
                        "consumed offset of {} names cmd_seq {} which did not consume offset {}",
                        rec.key, rec.cmd_seq, rec.offset
                    )));
                }
            }
        }
        seen.insert(rec.key, ());
    }
    if let Some(map) = recomputed {
        // A torn record from beyond the head stands in for one at or below it.
        check_no_offset_missing(map, |key| {
            seen.contains_key(key) || tail.offsets.iter().any(|(_, k)| k == key)
        })?;
    }
    Ok(tail)
}

/// Checks the inbox up to the head's `last_inbox_seq` (every entry when `full`, else
/// the last one); returns the entries verified.
fn verify_inbox<S: Store + ?Sized>(store: &S, head: &Head, full: bool) -> Result<u64> {
    let last = head.last_inbox_seq;
    let check = |seq: u64, v: &[u8]| -> Result<()> {
        let (s, _) = format::decode_inbox(v).map_err(|e| decode_err(e, Cf::Inbox, seq))?;
        if s != seq {
            return Err(corrupt(
                CorruptionKind::Malformed,
                Cf::Inbox,
                seq,
                "seq differs from key",
            ));
        }
        Ok(())
    };
    if last == 0 {
        return Ok(0);
    }
    let mut c = store.cursor(Cf::Inbox);
    let first = if full { 1 } else { last };
    c.seek(&seq_key(first));
    for seq in first..=last {
        let (_, v) = expect_key(&*c, Cf::Inbox, seq)?;
        check(seq, v)?;
        c.next();
    }
    c.status()?;
    Ok(last - first + 1)
}

/// Checks every snapshot at or below the head; corrupt ones are collected, not fatal.
fn verify_snapshots<S: Store + ?Sized>(store: &S, head: &Head) -> Result<(u64, Vec<Corruption>)> {
    let mut c = store.cursor(Cf::Snapshots);
    c.seek_to_first();
    let (mut good, mut bad) = (0, Vec::new());
    while let Some((k, v)) = c.entry() {
        let Some(seq) = key_seq(k) else {
            bad.push(Corruption::new(
                CorruptionKind::Malformed,
                Cf::Snapshots,
                0,
                "key is not a seq",
            ));
            c.next();
            continue;
        };
        if seq > head.last_cmd_seq {
            break;
        }
        match format::decode_snapshot(v) {
            Err(e) => {
                if let LedgerError::Corrupt(x) = decode_err(e, Cf::Snapshots, seq) {
                    bad.push(x);
                }
            }
            Ok(s) if s.cmd_seq != seq => bad.push(Corruption::new(
                CorruptionKind::Malformed,
                Cf::Snapshots,
                seq,
                format!("record says cmd_seq {}", s.cmd_seq),
            )),
            Ok(s) => {
                let expect_ev = last_event_of(store, seq)?;
                if s.event_seq != expect_ev {
                    bad.push(Corruption::new(
                        CorruptionKind::Malformed,
                        Cf::Snapshots,
                        seq,
                        format!(
                            "says event_seq {}, command ends at {expect_ev}",
                            s.event_seq
                        ),
                    ));
                } else {
                    good += 1;
                }
            }
        }
        c.next();
    }
    c.status()?;
    for b in &bad {
        tracing::warn!(target: "gpux_ledger", corruption = %b, "corrupt snapshot (ignored; older snapshots remain usable)");
    }
    Ok((good, bad))
}

/// The last event_seq produced up to and including `cmd_seq` (0 for cmd_seq 0).
pub(crate) fn last_event_of<S: Store + ?Sized>(store: &S, cmd_seq: u64) -> Result<u64> {
    if cmd_seq == 0 {
        return Ok(0);
    }
    let c = chunk_of_command(store, cmd_seq)?.command(cmd_seq)?;
    Ok(c.first_event_seq + u64::from(c.event_count) - 1)
}

/// Checks the head batch only.
fn verify_head_batch<S: Store + ?Sized>(store: &S, head: &Head) -> Result<()> {
    if head.last_batch_no == 0 {
        if head.last_cmd_seq != 0 || head.last_event_seq != 0 || head.hash != GENESIS_HASH {
            return Err(corrupt(
                CorruptionKind::MetaMismatch,
                Cf::Meta,
                0,
                "head without batches",
            ));
        }
        return Ok(());
    }
    let b = head.last_batch_no;
    let v = store
        .get(Cf::Batches, &seq_key(b))?
        .ok_or_else(|| corrupt(CorruptionKind::Gap, Cf::Batches, b, "head batch missing"))?;
    let h = format::decode_batch(&v).map_err(|e| decode_err(e, Cf::Batches, b))?;
    if h.batch_no != b
        || h.hash != head.hash
        || h.last_cmd_seq != head.last_cmd_seq
        || h.last_event_seq != head.last_event_seq
    {
        return Err(corrupt(
            CorruptionKind::MetaMismatch,
            Cf::Meta,
            b,
            "head disagrees with the last batch header",
        ));
    }
    let last_ev = last_event_of(store, head.last_cmd_seq)?;
    if last_ev != head.last_event_seq {
        return Err(corrupt(
            CorruptionKind::MetaMismatch,
            Cf::Commands,
            head.last_cmd_seq,
            "last command's events end elsewhere than the head",
        ));
    }
    if head.last_event_seq > 0 {
        let chunk = chunk_of_event(store, head.last_event_seq)?;
        chunk.event((head.last_event_seq - chunk.header.first_event_seq) as usize)?;
    }
    Ok(())
}

/// Verifies the store against its meta head. Torn-tail records are returned in
/// [`Findings::tail`], not as an error, so the caller may truncate them.
pub(crate) fn run<S: Store + ?Sized>(
    store: &S,
    mode: VerifyOnOpen,
    progress: &mut dyn FnMut(VerifyProgress),
) -> Result<Findings> {
    let t0 = Instant::now();
    let head = read_head(store)?;
    let (tail, end, inbox, snapshots) = match mode {
        VerifyOnOpen::Full => {
            let end = verify_chain(store, &head, progress)?;
            let tail = check_tail_and_offsets(store, &head, Some(&end.last_positions))?;
            let inbox = verify_inbox(store, &head, true)?;
            let snapshots = verify_snapshots(store, &head)?;
            (tail, Some(end), inbox, snapshots)
        }
        VerifyOnOpen::Tail | VerifyOnOpen::Background => {
            verify_head_batch(store, &head)?;
            let tail = check_tail_and_offsets(store, &head, None)?;
            let inbox = verify_inbox(store, &head, false)?;
            (tail, None, inbox, (0, Vec::new()))
        }
    };
    let consumed: BTreeMap<SourceKey, u64> = match &end {
        Some(end) => end
            .last_positions
            .iter()
            .map(|(k, &(p, _))| (k.clone(), p.offset))
            .collect(),
        None => stored_consumed(store, &head)?,
    };
    // The embedded consumed offset may be beyond the inbox's last seq: the
    // exchange's in-memory log numbers its commands after it without journaling
    // them (docs/LEDGER_FORMAT.md, "Writes").
    let report = VerifyReport {
        head,
        batches: head.last_batch_no,
        commands: end.as_ref().map_or(0, |e| e.commands),
        events: end.as_ref().map_or(0, |e| e.events),
        inbox_entries: inbox,
        snapshots: snapshots.0,
        corrupt_snapshots: snapshots.1,
        consumed,
        elapsed: t0.elapsed(),
    };
    Ok(Findings { report, tail })
}

/// The consumed offsets stored in meta at or below `head`, with the command that
/// consumed each: what [`deferred`] later checks the commands against.
pub(crate) fn stored_consumed_by<S: Store + ?Sized>(
    store: &S,
    head: &Head,
) -> Result<BTreeMap<SourceKey, (u64, u64)>> {
    Ok(stored_offsets(store)?
        .into_iter()
        .filter(|(_, r)| r.cmd_seq <= head.last_cmd_seq)
        .map(|(_, r)| (r.key, (r.offset, r.cmd_seq)))
        .collect())
}

/// What [`VerifyOnOpen::Background`] left out at open, for everything at or below
/// `head`: the whole chain, the consumed offsets the open read (`offsets`, as
/// [`stored_consumed_by`]) against the commands, every inbox entry and snapshot.
/// Only records at or below `head` are read, so writes after it do not disturb it.
pub(crate) fn deferred<S: Store + ?Sized>(
    store: &S,
    head: &Head,
    offsets: &BTreeMap<SourceKey, (u64, u64)>,
    progress: &mut dyn FnMut(VerifyProgress),
) -> Result<VerifyReport> {
    let t0 = Instant::now();
    let end = verify_chain(store, head, progress)?;
    for (key, &(offset, cmd_seq)) in offsets {
        check_offset(&end.last_positions, key, offset, cmd_seq)?;
    }
    check_no_offset_missing(&end.last_positions, |key| offsets.contains_key(key))?;
    let inbox = verify_inbox(store, head, true)?;
    let (snapshots, corrupt_snapshots) = verify_snapshots(store, head)?;
    Ok(VerifyReport {
        head: *head,
        batches: head.last_batch_no,
        commands: end.commands,
        events: end.events,
        inbox_entries: inbox,
        snapshots,
        corrupt_snapshots,
        consumed: offsets.iter().map(|(k, &(o, _))| (k.clone(), o)).collect(),
        elapsed: t0.elapsed(),
    })
}

/// The consumed offsets stored in meta, as of `head` (records beyond it ignored).
pub(crate) fn stored_consumed<S: Store + ?Sized>(
    store: &S,
    head: &Head,
) -> Result<BTreeMap<SourceKey, u64>> {
    Ok(stored_offsets(store)?
        .into_iter()
        .filter(|(_, r)| r.cmd_seq <= head.last_cmd_seq)
        .map(|(_, r)| (r.key, r.offset))
        .collect())
}

/// Deletes the torn tail in one synced write: records beyond the head, and restores
/// consumed offsets written by commands beyond it to what the head implies.
pub(crate) fn truncate_tail<S: Store + ?Sized>(store: &S, head: &Head, tail: &Tail) -> Result<()> {
    let mut ops = WriteOps::new();
    for (cf, seqs) in [
        (Cf::Batches, &tail.batches),
        (Cf::Commands, &tail.commands),
        (Cf::Events, &tail.events),
        (Cf::Snapshots, &tail.snapshots),
        (Cf::Inbox, &tail.inbox),
    ] {
        for &s in seqs {
            ops.delete(cf, &seq_key(s));
        }
    }
    for (meta_key, key) in &tail.offsets {
        match last_consumed_by(store, key, head.last_cmd_seq)? {
            None => ops.delete(Cf::Meta, meta_key),
            Some((offset, cmd_seq)) => {
                ops.put_with(Cf::Meta, meta_key, |b| {
                    format::encode_offset(b, key, offset, cmd_seq)
                });
            }
        }
    }
    store.write(&ops, true)?;
    Ok(())
}

/// The last command at or below `upto` that came from `key`: (offset, cmd_seq).
fn last_consumed_by<S: Store + ?Sized>(
    store: &S,
    key: &SourceKey,
    upto: u64,
) -> Result<Option<(u64, u64)>> {
    if upto == 0 {
        return Ok(None);
    }
    let mut c = store.cursor(Cf::Commands);
    c.seek_for_prev(&seq_key(upto));
    while let Some((k, v)) = c.entry() {
        let first = key_seq(k).unwrap_or(0);
        let chunk = Chunk::load(first, v.to_vec())?;
        for seq in (first..chunk.end_cmd().min(upto + 1)).rev() {
            let cmd = chunk.command(seq)?;
            if &cmd.source.key() == key {
                return Ok(Some((cmd.source.offset(), seq)));
            }
        }
        c.prev();
    }
    c.status()?;
    Ok(None)
}
