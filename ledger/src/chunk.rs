//! Reading chunks: a batch's command and event records, packed into chunk records
//! (format version 2 onwards) and found again by `cmd_seq` or `event_seq`.
//!
//! Owns [`Chunk`] (one chunk read from the store, its inner records located and
//! checked against its header), the lookups by sequence number
//! ([`chunk_of_command`], [`chunk_of_event`]) and the iterators behind
//! [`LedgerReader::commands`](crate::LedgerReader::commands) and
//! [`LedgerReader::events`](crate::LedgerReader::events). The byte layouts are in
//! `format`; damage is reported as a [`Corruption`](crate::Corruption) naming the
//! command or event it hit (`commands`/`events`), as precisely as the bytes allow.

use std::ops::Range;

use crate::error::{CorruptionKind, LedgerError, Result};
use crate::format::{self, key_seq, seq_key, ChunkHeader, DecodeError};
use crate::layout::RawChunk;
use crate::store::{Cf, Cursor, Store};
use crate::types::{CommandRecord, EventRecord};
use crate::verify::decode_err;

fn corrupt(kind: CorruptionKind, cf: Cf, seq: u64, detail: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt(crate::Corruption::new(kind, cf, seq, detail))
}

/// Where one command sits in its chunk.
struct CommandLoc {
    record: Range<usize>,
    /// Index of its first event among the chunk's events.
    first_event: usize,
    events: usize,
}

/// One chunk read from the store: a run of consecutive commands of one batch, each
/// followed by its events.
pub(crate) struct Chunk {
    /// The chunk's key: its first `cmd_seq`.
    pub key: u64,
    /// Its header.
    pub header: ChunkHeader,
    bytes: Vec<u8>,
    commands: Vec<CommandLoc>,
    events: Vec<Range<usize>>,
}

impl Chunk {
    /// Checks the stored value of chunk `key` and locates its records. A crc failure
    /// names the inner record it hit when that record's own crc fails too.
    pub fn load(key: u64, bytes: Vec<u8>) -> Result<Chunk> {
        let (header, spans) = match format::decode_chunk(&bytes) {
            Ok(view) => (
                view.header,
                view.spans().map_err(|e| decode_err(e, Cf::Commands, key))?,
            ),
            Err(DecodeError::Checksum) => return Err(damage(key, &bytes)),
            Err(e) => return Err(decode_err(e, Cf::Commands, key)),
        };
        let malformed =
            |detail: String| corrupt(CorruptionKind::Malformed, Cf::Commands, key, detail);
        if header.first_cmd_seq != key {
            return Err(malformed(format!(
                "chunk says first cmd_seq {}",
                header.first_cmd_seq
            )));
        }
        let mut commands: Vec<CommandLoc> = Vec::with_capacity(header.cmd_count as usize);
        let mut events = Vec::with_capacity(header.event_count as usize);
        for span in spans {
            match format::record_kind(&bytes[span.clone()]) {
                Some(format::kind::COMMAND) => commands.push(CommandLoc {
                    record: span,
                    first_event: events.len(),
                    events: 0,
                }),
                Some(format::kind::EVENT) => {
                    let Some(owner) = commands.last_mut() else {
                        return Err(malformed(
                            "an event before the chunk's first command".into(),
                        ));
                    };
                    owner.events += 1;
                    events.push(span);
                }
                _ => return Err(malformed("a record of an unexpected kind".into())),
            }
        }
        if commands.len() != header.cmd_count as usize
            || events.len() != header.event_count as usize
        {
            return Err(malformed(format!(
                "holds {} commands and {} events, its header says {} and {}",
                commands.len(),
                events.len(),
                header.cmd_count,
                header.event_count
            )));
        }
        Ok(Chunk {
            key,
            header,
            bytes,
            commands,
            events,
        })
    }

    /// One past its last `cmd_seq`.
    pub fn end_cmd(&self) -> u64 {
        self.key + u64::from(self.header.cmd_count)
    }

    /// One past its last `event_seq`.
    pub fn end_event(&self) -> u64 {
        self.header.first_event_seq + u64::from(self.header.event_count)
    }

    /// True when `cmd_seq` is in it.
    pub fn has_command(&self, cmd_seq: u64) -> bool {
        (self.key..self.end_cmd()).contains(&cmd_seq)
    }

    /// The stored record of command `cmd_seq` (in it) and the range of its events'
    /// indices.
    pub fn command_raw(&self, cmd_seq: u64) -> (&[u8], Range<usize>) {
        let loc = &self.commands[(cmd_seq - self.key) as usize];
        (
            &self.bytes[loc.record.clone()],
            loc.first_event..loc.first_event + loc.events,
        )
    }

    /// The stored record of the chunk's `i`-th event.
    pub fn event_raw(&self, i: usize) -> &[u8] {
        &self.bytes[self.events[i].clone()]
    }

    /// The `event_seq` of the chunk's `i`-th event.
    pub fn event_seq(&self, i: usize) -> u64 {
        self.header.first_event_seq + i as u64
    }

    /// Decodes command `cmd_seq` (in it), checking it against its position.
    pub fn command(&self, cmd_seq: u64) -> Result<CommandRecord> {
        let (raw, evs) = self.command_raw(cmd_seq);
        let c = format::decode_command(raw).map_err(|e| decode_err(e, Cf::Commands, cmd_seq))?;
        let first_event_seq = self.event_seq(evs.start);
        if c.cmd_seq != cmd_seq
            || c.first_event_seq != first_event_seq
            || c.event_count as usize != evs.len()
        {
            return Err(corrupt(
                CorruptionKind::Malformed,
                Cf::Commands,
                cmd_seq,
                format!(
                    "record says cmd_seq {} with events {}+{}, its place says {cmd_seq} with {first_event_seq}+{}",
                    c.cmd_seq,
                    c.first_event_seq,
                    c.event_count,
                    evs.len()
                ),
            ));
        }
        Ok(CommandRecord {
            cmd_seq,
            ts_ns: c.ts_ns,
            source: c.source,
            first_event_seq,
            event_count: c.event_count,
            payload: c.payload.to_vec(),
        })
    }

    /// The command that owns the chunk's `i`-th event.
    fn owner_of(&self, i: usize) -> u64 {
        let at = self
            .commands
            .partition_point(|c| c.first_event + c.events <= i);
        self.key + at as u64
    }

    /// Decodes the chunk's `i`-th event, checking it against its position.
    pub fn event(&self, i: usize) -> Result<EventRecord> {
        let event_seq = self.event_seq(i);
        let cmd_seq = self.owner_of(i);
        let e = decode_event_at(self.event_raw(i), event_seq, cmd_seq)?;
        Ok(EventRecord {
            event_seq,
            cmd_seq,
            payload: e.payload.to_vec(),
        })
    }
}

/// Decodes the stored event record `raw`, which must be event `event_seq` of
/// command `cmd_seq`.
pub(crate) fn decode_event_at(
    raw: &[u8],
    event_seq: u64,
    cmd_seq: u64,
) -> Result<format::EventView<'_>> {
    let e = format::decode_event(raw).map_err(|e| decode_err(e, Cf::Events, event_seq))?;
    if e.event_seq != event_seq || e.cmd_seq != cmd_seq {
        return Err(corrupt(
            CorruptionKind::Malformed,
            Cf::Events,
            event_seq,
            format!(
                "record says event_seq {} of cmd_seq {}, expected {event_seq} of {cmd_seq}",
                e.event_seq, e.cmd_seq
            ),
        ));
    }
    Ok(e)
}

/// The checksum failure of chunk `key` (stored value `bytes`), named as precisely
/// as its bytes tell: the first inner record whose own crc fails too, else the
/// chunk's first command (its header or framing).
fn damage(key: u64, bytes: &[u8]) -> LedgerError {
    let inner = RawChunk::parse(bytes).and_then(|raw| {
        let (mut cmd, mut ev) = (raw.first_cmd_seq, raw.first_event_seq);
        for rec in &raw.records {
            let is_command = format::record_kind(rec) == Some(format::kind::COMMAND);
            let kind = format::record_kind(rec).unwrap_or(0);
            if format::open_record(rec, kind) == Err(DecodeError::Checksum) {
                return Some(if is_command {
                    (Cf::Commands, cmd)
                } else {
                    (Cf::Events, ev)
                });
            }
            if is_command {
                cmd += 1;
            } else {
                ev += 1;
            }
        }
        None
    });
    let (cf, seq) = inner.unwrap_or((Cf::Commands, key));
    decode_err(DecodeError::Checksum, cf, seq)
}

/// The entry under `cursor`, loaded as a chunk that must hold `cmd_seq` (a missing
/// or later chunk is a gap at `cmd_seq`).
fn load_at(cursor: &dyn Cursor, cmd_seq: u64) -> Result<Chunk> {
    let gap = |detail: String| corrupt(CorruptionKind::Gap, Cf::Commands, cmd_seq, detail);
    let Some((k, v)) = cursor.entry() else {
        cursor.status()?;
        return Err(gap("record missing".into()));
    };
    let Some(key) = key_seq(k) else {
        return Err(corrupt(
            CorruptionKind::Malformed,
            Cf::Commands,
            cmd_seq,
            "a chunk key that is not a seq",
        ));
    };
    if key > cmd_seq {
        return Err(gap(format!("record missing (next chunk starts at {key})")));
    }
    let chunk = Chunk::load(key, v.to_vec())?;
    if !chunk.has_command(cmd_seq) {
        return Err(gap(format!(
            "record missing (the chunk before it ends at {})",
            chunk.end_cmd() - 1
        )));
    }
    Ok(chunk)
}

/// The chunk holding command `cmd_seq` (`cmd_seq` ≥ 1); missing is a gap.
pub(crate) fn chunk_of_command<S: Store + ?Sized>(store: &S, cmd_seq: u64) -> Result<Chunk> {
    let mut c = store.cursor(Cf::Commands);
    c.seek_for_prev(&seq_key(cmd_seq));
    load_at(&*c, cmd_seq)
}

/// The index entry under `cursor`, which must cover `event_seq`, and its chunk.
fn load_event_at<S: Store + ?Sized>(
    store: &S,
    cursor: &dyn Cursor,
    event_seq: u64,
) -> Result<Chunk> {
    let gap = |detail: String| corrupt(CorruptionKind::Gap, Cf::Events, event_seq, detail);
    let Some((k, v)) = cursor.entry() else {
        cursor.status()?;
        return Err(gap("record missing".into()));
    };
    let key = key_seq(k).unwrap_or(u64::MAX);
    if key > event_seq {
        return Err(gap(format!("record missing (next index entry is {key})")));
    }
    let idx = format::decode_event_index(v).map_err(|e| decode_err(e, Cf::Events, key))?;
    if idx.first_event_seq != key {
        return Err(corrupt(
            CorruptionKind::Malformed,
            Cf::Events,
            key,
            format!("index entry says first event_seq {}", idx.first_event_seq),
        ));
    }
    if event_seq >= key + u64::from(idx.event_count) {
        return Err(gap("record missing".into()));
    }
    let bytes = store
        .get(Cf::Commands, &seq_key(idx.chunk))?
        .ok_or_else(|| {
            corrupt(
                CorruptionKind::Gap,
                Cf::Commands,
                idx.chunk,
                format!("the chunk of events from {key} is missing"),
            )
        })?;
    let chunk = Chunk::load(idx.chunk, bytes)?;
    if chunk.header.first_event_seq != key || chunk.header.event_count != idx.event_count {
        return Err(corrupt(
            CorruptionKind::Malformed,
            Cf::Events,
            key,
            format!(
                "index entry disagrees with chunk {} (events {}+{})",
                idx.chunk, chunk.header.first_event_seq, chunk.header.event_count
            ),
        ));
    }
    Ok(chunk)
}

/// The chunk holding event `event_seq` (≥ 1); missing is a gap.
pub(crate) fn chunk_of_event<S: Store + ?Sized>(store: &S, event_seq: u64) -> Result<Chunk> {
    let mut c = store.cursor(Cf::Events);
    c.seek_for_prev(&seq_key(event_seq));
    load_event_at(store, &*c, event_seq)
}

/// One kind of record read chunk by chunk: how to find the chunk holding a seq,
/// and the record at a seq in it.
pub(crate) trait ChunkWalk {
    /// What is read.
    type Item;
    /// True when `seq` is in `chunk`.
    fn holds(chunk: &Chunk, seq: u64) -> bool;
    /// The chunk under the walk's cursor, which must hold `seq`.
    fn load(&self, cursor: &dyn Cursor, seq: u64) -> Result<Chunk>;
    /// The record `seq` of `chunk`.
    fn read(chunk: &Chunk, seq: u64) -> Result<Self::Item>;
}

/// Commands: chunks in `commands`.
pub(crate) struct Commands;

impl ChunkWalk for Commands {
    type Item = CommandRecord;
    fn holds(chunk: &Chunk, seq: u64) -> bool {
        chunk.has_command(seq)
    }
    fn load(&self, cursor: &dyn Cursor, seq: u64) -> Result<Chunk> {
        load_at(cursor, seq)
    }
    fn read(chunk: &Chunk, seq: u64) -> Result<CommandRecord> {
        chunk.command(seq)
    }
}

/// Events: chunks through the event index in `events`.
pub(crate) struct Events<'a, S: Store + ?Sized>(pub &'a S);

impl<S: Store + ?Sized> ChunkWalk for Events<'_, S> {
    type Item = EventRecord;
    fn holds(chunk: &Chunk, seq: u64) -> bool {
        (chunk.header.first_event_seq..chunk.end_event()).contains(&seq)
    }
    fn load(&self, cursor: &dyn Cursor, seq: u64) -> Result<Chunk> {
        load_event_at(self.0, cursor, seq)
    }
    fn read(chunk: &Chunk, seq: u64) -> Result<EventRecord> {
        chunk.event((seq - chunk.header.first_event_seq) as usize)
    }
}

/// Records from a seq to a last one, chunk by chunk; stops after the first `Err`.
pub(crate) struct ChunkIter<'a, W> {
    walk: W,
    cursor: Box<dyn Cursor + 'a>,
    next: u64,
    last: u64,
    chunk: Option<Chunk>,
    done: bool,
}

impl<'a, W: ChunkWalk> ChunkIter<'a, W> {
    /// Records `from..=last` of `cf` (`commands` for [`Commands`], `events` for
    /// [`Events`]).
    pub fn new<S: Store + ?Sized>(walk: W, store: &'a S, cf: Cf, from: u64, last: u64) -> Self {
        Self {
            walk,
            cursor: store.cursor(cf),
            next: from.max(1),
            last,
            chunk: None,
            done: false,
        }
    }

    fn step(&mut self) -> Result<W::Item> {
        let seq = self.next;
        let chunk = match self.chunk.take() {
            Some(c) if W::holds(&c, seq) => c,
            previous => {
                if previous.is_some() {
                    self.cursor.next();
                } else {
                    self.cursor.seek_for_prev(&seq_key(seq));
                }
                self.walk.load(&*self.cursor, seq)?
            }
        };
        W::read(self.chunk.insert(chunk), seq)
    }
}

impl<W: ChunkWalk> Iterator for ChunkIter<'_, W> {
    type Item = Result<W::Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next > self.last {
            return None;
        }
        let item = self.step();
        self.done = item.is_err();
        self.next += 1;
        Some(item)
    }
}
