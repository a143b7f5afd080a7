//! The raw storage layout taken apart, for tools and tests that inspect stored
//! records below the ledger's API, or damage them on purpose to prove that
//! verification names the damage.
//!
//! Owns [`RawChunk`] (a chunk record's header and its inner records, parsed without
//! checking crcs and re-encoded with fresh ones), [`reseal`] (recompute one
//! record's crc, as a careful forger would), [`index_chunk`] (the chunk an
//! event-index entry points to) and the lookups of the chunk holding a command or
//! an event. `docs/LEDGER_FORMAT.md` is the specification; the ledger itself reads
//! through `format`, not through this module.

use crate::format::{self, key_seq, seq_key};
use crate::store::{Cf, Store};

/// A chunk record (kind 9) taken apart. Nothing is checked when parsing: a
/// damaged chunk parses as long as its framing holds together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChunk {
    /// The batch it belongs to.
    pub batch_no: u64,
    /// Its first command (its key).
    pub first_cmd_seq: u64,
    /// Commands it says it holds.
    pub cmd_count: u32,
    /// Its first event.
    pub first_event_seq: u64,
    /// Events it says it holds.
    pub event_count: u32,
    /// Its inner records as stored (each command record followed by its events').
    pub records: Vec<Vec<u8>>,
}

impl RawChunk {
    /// Takes a stored chunk value apart (`None` if its framing does not parse).
    pub fn parse(value: &[u8]) -> Option<RawChunk> {
        let body = value.get(2..value.len().checked_sub(4)?)?;
        let u64_at = |at: usize| Some(u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?));
        let mut chunk = RawChunk {
            batch_no: u64_at(0)?,
            first_cmd_seq: u64_at(8)?,
            cmd_count: u32_at(16)?,
            first_event_seq: u64_at(20)?,
            event_count: u32_at(28)?,
            records: Vec::new(),
        };
        let mut at = 32;
        while at < body.len() {
            let len = u32_at(at)? as usize;
            chunk.records.push(body.get(at + 4..at + 4 + len)?.to_vec());
            at += 4 + len;
        }
        Some(chunk)
    }

    /// The stored value of this chunk, with a crc that matches its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        format::begin_chunk(&mut buf);
        for r in &self.records {
            format::push_inner(&mut buf, |b| b.extend_from_slice(r));
        }
        format::finish_chunk(
            &mut buf,
            &format::ChunkHeader {
                batch_no: self.batch_no,
                first_cmd_seq: self.first_cmd_seq,
                cmd_count: self.cmd_count,
                first_event_seq: self.first_event_seq,
                event_count: self.event_count,
            },
        );
        buf
    }

    /// The index in [`RawChunk::records`] of command `cmd_seq`'s record.
    pub fn command_index(&self, cmd_seq: u64) -> Option<usize> {
        self.nth_of_kind(
            format::kind::COMMAND,
            cmd_seq.checked_sub(self.first_cmd_seq)?,
        )
    }

    /// The index in [`RawChunk::records`] of event `event_seq`'s record.
    pub fn event_index(&self, event_seq: u64) -> Option<usize> {
        self.nth_of_kind(
            format::kind::EVENT,
            event_seq.checked_sub(self.first_event_seq)?,
        )
    }

    /// The command that event `event_seq` belongs to, by the chunk's structure
    /// alone (each event follows its command's record), so it answers for a chunk
    /// whose bytes are damaged elsewhere.
    pub fn command_of_event(&self, event_seq: u64) -> Option<u64> {
        let i = self.event_index(event_seq)?;
        let commands_before = self.records[..i]
            .iter()
            .filter(|r| format::record_kind(r) == Some(format::kind::COMMAND))
            .count() as u64;
        (self.first_cmd_seq + commands_before).checked_sub(1)
    }

    fn nth_of_kind(&self, kind: u8, n: u64) -> Option<usize> {
        let n = usize::try_from(n).ok()?;
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| format::record_kind(r) == Some(kind))
            .nth(n)
            .map(|(i, _)| i)
    }
}

/// The chunk value `chunk_value` with the record of event `event_seq` changed by
/// `f` (`None` if the chunk does not parse or does not hold the event). With
/// `keep_chunk_crc` the chunk keeps its old crc, as when a bit flips on disk;
/// otherwise the chunk's crc matches its new bytes, as a forger would leave it.
pub fn edit_event(
    chunk_value: &[u8],
    event_seq: u64,
    keep_chunk_crc: bool,
    f: impl FnOnce(&mut Vec<u8>),
) -> Option<Vec<u8>> {
    let mut chunk = RawChunk::parse(chunk_value)?;
    let i = chunk.event_index(event_seq)?;
    f(&mut chunk.records[i]);
    let mut value = chunk.encode();
    if keep_chunk_crc {
        let n = value.len() - 4;
        value[n..].copy_from_slice(&chunk_value[chunk_value.len() - 4..]);
    }
    Some(value)
}

/// Recomputes the trailing crc32c of one stored record (the last 4 bytes), as a
/// forger who knows the format would.
pub fn reseal(record: &mut [u8]) {
    let n = record.len() - 4;
    let crc = crc32c::crc32c(&record[..n]);
    record[n..].copy_from_slice(&crc.to_be_bytes());
}

/// The key of the chunk an event-index value points to (`None` if it does not parse).
pub fn index_chunk(value: &[u8]) -> Option<u64> {
    key_seq(value.get(14..22)?)
}

/// The key of the chunk that holds command `cmd_seq`, by key order alone.
pub fn chunk_of_command<S: Store + ?Sized>(store: &S, cmd_seq: u64) -> Option<u64> {
    let mut c = store.cursor(Cf::Commands);
    c.seek_for_prev(&seq_key(cmd_seq));
    key_seq(c.entry()?.0)
}

/// The key of the chunk that holds event `event_seq`, through the event index.
pub fn chunk_of_event<S: Store + ?Sized>(store: &S, event_seq: u64) -> Option<u64> {
    let mut c = store.cursor(Cf::Events);
    c.seek_for_prev(&seq_key(event_seq));
    index_chunk(c.entry()?.1)
}
