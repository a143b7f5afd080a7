//! The on-disk format: keys, record framing, record bodies and the batch hash.
//!
//! Owns every byte layout the ledger writes; `docs/LEDGER_FORMAT.md` describes the same
//! layouts and must change with this file. Every value is framed as
//! `version u8 | kind u8 | body | crc32c u32` (integers big-endian, crc32c over
//! everything before it), so a record read from the wrong column family, a flipped bit
//! or a record from a future format is caught before its body is trusted.

use sha2::{Digest, Sha256};

use crate::types::{BatchHeader, Hash, Head, Source, SourceKey};

/// The format version this build writes and reads (the first byte of every record).
/// Version 1 stored one RocksDB key per command and per event; version 2 packs a
/// batch's records into chunks (see [`encode_chunk_header`]); version 3 stores
/// event payloads in the engine's binary event encoding instead of JSON (the
/// records' framing is version 2's). A ledger of another
/// version is refused on open with [`LedgerError::UnsupportedFormat`](crate::LedgerError::UnsupportedFormat).
pub const FORMAT_VERSION: u8 = 3;

/// Magic bytes of the meta `format` record.
pub(crate) const FORMAT_MAGIC: &[u8; 8] = b"GPUXLEDG";

/// Record kind bytes (the second byte of every record).
pub(crate) mod kind {
    pub const COMMAND: u8 = 1;
    pub const EVENT: u8 = 2;
    pub const BATCH: u8 = 3;
    pub const SNAPSHOT: u8 = 4;
    pub const INBOX: u8 = 5;
    pub const HEAD: u8 = 6;
    pub const OFFSET: u8 = 7;
    pub const FORMAT: u8 = 8;
    pub const CHUNK: u8 = 9;
    pub const EVENT_INDEX: u8 = 10;
}

/// Meta key of the format record.
pub(crate) const META_FORMAT: &[u8] = b"format";
/// Meta key of the head record.
pub(crate) const META_HEAD: &[u8] = b"head";
/// Prefix of consumed-offset meta keys.
pub(crate) const META_OFFSET_PREFIX: &[u8] = b"offset/";

const SOURCE_EMBEDDED: u8 = 0;
const SOURCE_KAFKA: u8 = 1;
/// A command of a Kafka batch record: the Kafka source, then its index in the batch.
/// Only in command records (consumed-offset keys name the source, tag 1).
const SOURCE_KAFKA_BATCH: u8 = 2;

/// Bytes of framing around a body: version, kind, crc.
pub(crate) const FRAME_BYTES: usize = 6;

/// The key of sequence number `seq`: 8 bytes big-endian, so keys sort in seq order.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of a key, if it is one.
pub fn key_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Why a record did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    Checksum,
    Version(u8),
    Malformed(&'static str),
}

fn open_frame(buf: &mut Vec<u8>, kind: u8) -> usize {
    let start = buf.len();
    buf.push(FORMAT_VERSION);
    buf.push(kind);
    start
}

fn close_frame(buf: &mut Vec<u8>, start: usize) {
    let crc = crc32c::crc32c(&buf[start..]);
    buf.extend_from_slice(&crc.to_be_bytes());
}

/// Checks crc, version and kind; returns the body.
pub(crate) fn open_record(bytes: &[u8], expect_kind: u8) -> Result<&[u8], DecodeError> {
    if bytes.len() < FRAME_BYTES {
        return Err(DecodeError::Malformed("shorter than the frame"));
    }
    let (framed, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(framed) != stored {
        return Err(DecodeError::Checksum);
    }
    if framed[0] != FORMAT_VERSION {
        return Err(DecodeError::Version(framed[0]));
    }
    if framed[1] != expect_kind {
        return Err(DecodeError::Malformed("wrong record kind"));
    }
    Ok(&framed[2..])
}

/// A cursor over a record body.
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(DecodeError::Malformed("body truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn hash(&mut self) -> Result<Hash, DecodeError> {
        let mut a = [0; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    fn bytes32(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("trailing bytes"))
        }
    }
}

fn put_len(buf: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("payload bounds are checked before encoding");
    buf.extend_from_slice(&len.to_be_bytes());
}

fn put_source(buf: &mut Vec<u8>, source: &Source) {
    match source {
        Source::Embedded { seq } => {
            buf.push(SOURCE_EMBEDDED);
            buf.extend_from_slice(&seq.to_be_bytes());
        }
        Source::Kafka {
            topic,
            partition,
            offset,
            index,
        } => {
            let tag = if index.is_some() {
                SOURCE_KAFKA_BATCH
            } else {
                SOURCE_KAFKA
            };
            put_source_kafka(buf, tag, topic, *partition);
            buf.extend_from_slice(&offset.to_be_bytes());
            if let Some(index) = index {
                buf.extend_from_slice(&index.to_be_bytes());
            }
        }
    }
}

fn put_source_kafka(buf: &mut Vec<u8>, tag: u8, topic: &str, partition: i32) {
    let len = u16::try_from(topic.len()).expect("topic bound is checked before encoding");
    buf.push(tag);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(&partition.to_be_bytes());
}

/// Encodes a source key (tag, then topic and partition for Kafka).
pub(crate) fn put_source_key(buf: &mut Vec<u8>, key: &SourceKey) {
    match key {
        SourceKey::Embedded => buf.push(SOURCE_EMBEDDED),
        SourceKey::Kafka { topic, partition } => {
            put_source_kafka(buf, SOURCE_KAFKA, topic, *partition);
        }
    }
}

fn read_source_key(rd: &mut Rd<'_>) -> Result<SourceKey, DecodeError> {
    match rd.u8()? {
        SOURCE_EMBEDDED => Ok(SourceKey::Embedded),
        SOURCE_KAFKA => read_kafka_key(rd),
        _ => Err(DecodeError::Malformed("unknown source tag")),
    }
}

/// The topic and partition after a Kafka source tag.
fn read_kafka_key(rd: &mut Rd<'_>) -> Result<SourceKey, DecodeError> {
    let n = rd.u16()? as usize;
    let topic = std::str::from_utf8(rd.take(n)?)
        .map_err(|_| DecodeError::Malformed("topic is not UTF-8"))?
        .to_owned();
    let partition = rd.u32()? as i32;
    Ok(SourceKey::Kafka { topic, partition })
}

fn read_source(rd: &mut Rd<'_>) -> Result<Source, DecodeError> {
    let (key, batch) = match rd.u8()? {
        SOURCE_EMBEDDED => (SourceKey::Embedded, false),
        SOURCE_KAFKA => (read_kafka_key(rd)?, false),
        SOURCE_KAFKA_BATCH => (read_kafka_key(rd)?, true),
        _ => return Err(DecodeError::Malformed("unknown source tag")),
    };
    let offset = rd.u64()?;
    Ok(match key {
        SourceKey::Embedded => Source::Embedded { seq: offset },
        SourceKey::Kafka { topic, partition } => Source::Kafka {
            topic,
            partition,
            offset,
            index: if batch { Some(rd.u32()?) } else { None },
        },
    })
}

/// The meta key of a source's consumed offset.
pub(crate) fn offset_meta_key(key: &SourceKey) -> Vec<u8> {
    let mut k = META_OFFSET_PREFIX.to_vec();
    put_source_key(&mut k, key);
    k
}

/// Command record body: `cmd_seq u64 | ts_ns u64 | first_event_seq u64 |
/// event_count u32 | source | payload_len u32 | payload`.
pub(crate) struct CommandFields<'a> {
    pub cmd_seq: u64,
    pub ts_ns: u64,
    pub first_event_seq: u64,
    pub event_count: u32,
    pub source: &'a Source,
    pub payload: &'a [u8],
}

pub(crate) fn encode_command(buf: &mut Vec<u8>, c: &CommandFields<'_>) {
    let start = open_frame(buf, kind::COMMAND);
    buf.extend_from_slice(&c.cmd_seq.to_be_bytes());
    buf.extend_from_slice(&c.ts_ns.to_be_bytes());
    buf.extend_from_slice(&c.first_event_seq.to_be_bytes());
    buf.extend_from_slice(&c.event_count.to_be_bytes());
    put_source(buf, c.source);
    put_len(buf, c.payload.len());
    buf.extend_from_slice(c.payload);
    close_frame(buf, start);
}

/// A decoded command borrowing its payload.
pub(crate) struct CommandView<'a> {
    pub cmd_seq: u64,
    pub ts_ns: u64,
    pub first_event_seq: u64,
    pub event_count: u32,
    pub source: Source,
    pub payload: &'a [u8],
}

pub(crate) fn decode_command(bytes: &[u8]) -> Result<CommandView<'_>, DecodeError> {
    let mut rd = Rd {
        b: open_record(bytes, kind::COMMAND)?,
    };
    let v = CommandView {
        cmd_seq: rd.u64()?,
        ts_ns: rd.u64()?,
        first_event_seq: rd.u64()?,
        event_count: rd.u32()?,
        source: read_source(&mut rd)?,
        payload: rd.bytes32()?,
    };
    rd.end()?;
    Ok(v)
}

/// Event record body: `event_seq u64 | cmd_seq u64 | payload_len u32 | payload`.
pub(crate) fn encode_event(buf: &mut Vec<u8>, event_seq: u64, cmd_seq: u64, payload: &[u8]) {
    let start = open_frame(buf, kind::EVENT);
    buf.extend_from_slice(&event_seq.to_be_bytes());
    buf.extend_from_slice(&cmd_seq.to_be_bytes());
    put_len(buf, payload.len());
    buf.extend_from_slice(payload);
    close_frame(buf, start);
}

/// A decoded event borrowing its payload.
pub(crate) struct EventView<'a> {
    pub event_seq: u64,
    pub cmd_seq: u64,
    pub payload: &'a [u8],
}

pub(crate) fn decode_event(bytes: &[u8]) -> Result<EventView<'_>, DecodeError> {
    let mut rd = Rd {
        b: open_record(bytes, kind::EVENT)?,
    };
    let v = EventView {
        event_seq: rd.u64()?,
        cmd_seq: rd.u64()?,
        payload: rd.bytes32()?,
    };
    rd.end()?;
    Ok(v)
}

/// Batch header body: `batch_no u64 | first_cmd_seq u64 | last_cmd_seq u64 |
/// first_event_seq u64 | last_event_seq u64 | prev_hash [32] | hash [32]`.
pub(crate) fn encode_batch(buf: &mut Vec<u8>, h: &BatchHeader) {
    let start = open_frame(buf, kind::BATCH);
    for n in [
        h.batch_no,
        h.first_cmd_seq,
        h.last_cmd_seq,
        h.first_event_seq,
        h.last_event_seq,
    ] {
        buf.extend_from_slice(&n.to_be_bytes());
    }
    buf.extend_from_slice(&h.prev_hash);
    buf.extend_from_slice(&h.hash);
    close_frame(buf, start);
}

pub(crate) fn decode_batch(bytes: &[u8]) -> Result<BatchHeader, DecodeError> {
    let mut rd = Rd {
        b: open_record(bytes, kind::BATCH)?,
    };
    let h = BatchHeader {
        batch_no: rd.u64()?,
        first_cmd_seq: rd.u64()?,
        last_cmd_seq: rd.u64()?,
        first_event_seq: rd.u64()?,
        last_event_seq: rd.u64()?,
        prev_hash: rd.hash()?,
        hash: rd.hash()?,
    };
    rd.end()?;
    Ok(h)
}

/// Head body: `last_cmd_seq u64 | last_event_seq u64 | last_batch_no u64 |
/// last_ts_ns u64 | last_inbox_seq u64 | hash [32]`.
pub(crate) fn encode_head(buf: &mut Vec<u8>, h: &Head) {
    let start = open_frame(buf, kind::HEAD);
    for n in [
        h.last_cmd_seq,
        h.last_event_seq,
        h.last_batch_no,
        h.last_ts_ns,
        h.last_inbox_seq,
    ] {
        buf.extend_from_slice(&n.to_be_bytes());
    }
    buf.extend_from_slice(&h.hash);
    close_frame(buf, start);
}

pub(crate) fn decode_head(bytes: &[u8]) -> Result<Head, DecodeError> {
    let mut rd = Rd {
        b: open_record(bytes, kind::HEAD)?,
    };
    let h = Head {
        last_cmd_seq: rd.u64()?,
        last_event_seq: rd.u64()?,
        last_batch_no: rd.u64()?,
        last_ts_ns: rd.u64()?,
        last_inbox_seq: rd.u64()?,
        hash: rd.hash()?,
    };
    rd.end()?;
    Ok(h)
}

/// Consumed-offset body: `source_key | offset u64 | cmd_seq u64` (the command that
/// consumed it).
pub(crate) fn encode_offset(buf: &mut Vec<u8>, key: &SourceKey, offset: u64, cmd_seq: u64) {
    let start = open_frame(buf, kind::OFFSET);
    put_source_key(buf, key);
    buf.extend_from_slice(&offset.to_be_bytes());
    buf.extend_from_slice(&cmd_seq.to_be_bytes());
    close_frame(buf, start);
}

/// A decoded consumed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetRecord {
    pub key: SourceKey,
    pub offset: u64,
    pub cmd_seq: u64,
}

pub(crate) fn decode_offset(bytes: &[u8]) -> Result<OffsetRecord, DecodeError> {
    let mut rd = Rd {
        b: open_record(bytes, kind::OFFSET)?,
    };
    let r = OffsetRecord {
        key: read_source_key(&mut rd)?,
        offset: rd.u64()?,
        cmd_seq: rd.u64()?,
    };
    rd.end()?;
    Ok(r)
}

/// Snapshot body: `cmd_seq u64 | event_seq u64 | len u32 | bytes`.
pub(crate) fn encode_snapshot(buf: &mut Vec<u8>, cmd_seq: u64, event_seq: u64, bytes: &[u8]) {
    let start = open_frame(buf, kind::SNAPSHOT);
    buf.extend_from_slice(&cmd_seq.to_be_bytes());
    buf.extend_from_slice(&event_seq.to_be_bytes());
    put_len(buf, bytes.len());
    buf.extend_from_slice(bytes);
    close_frame(buf, start);
}

/// A decoded snapshot borrowing its bytes.
pub(crate) struct SnapshotView<'a> {
    pub cmd_seq: u64,
    pub event_seq: u64,
    pub bytes: &'a [u8],
}

pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotView<'_>, DecodeError> {
    let mut rd = Rd {
        b: open_record(bytes, kind::SNAPSHOT)?,
    };
    let v = SnapshotView {
        cmd_seq: rd.u64()?,
        event_seq: rd.u64()?,
        bytes: rd.bytes32()?,
    };
    rd.end()?;
    Ok(v)
}

/// Inbox entry body: `seq u64 | len u32 | payload`.
pub(crate) fn encode_inbox(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let start = open_frame(buf, kind::INBOX);
    buf.extend_from_slice(&seq.to_be_bytes());
    put_len(buf, payload.len());
    buf.extend_from_slice(payload);
    close_frame(buf, start);
}

pub(crate) fn decode_inbox(bytes: &[u8]) -> Result<(u64, &[u8]), DecodeError> {
    let mut rd = Rd {
        b: open_record(bytes, kind::INBOX)?,
    };
    let seq = rd.u64()?;
    let payload = rd.bytes32()?;
    rd.end()?;
    Ok((seq, payload))
}

/// Bytes of a chunk's header after its version and kind bytes.
const CHUNK_HEADER_BYTES: usize = 32;

/// The header of a chunk record: which batch it belongs to and which commands and
/// events it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkHeader {
    pub batch_no: u64,
    pub first_cmd_seq: u64,
    pub cmd_count: u32,
    pub first_event_seq: u64,
    pub event_count: u32,
}

/// Starts a chunk record (kind 9) in the empty `buf`: frame bytes and room for the
/// header, which [`finish_chunk`] fills in.
pub(crate) fn begin_chunk(buf: &mut Vec<u8>) {
    buf.clear();
    open_frame(buf, kind::CHUNK);
    buf.resize(2 + CHUNK_HEADER_BYTES, 0);
}

/// Appends one inner record (`len u32 | record`) that `encode` writes; returns the
/// record's bytes (what the batch hash covers).
pub(crate) fn push_inner(buf: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) -> &[u8] {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    encode(buf);
    let len = buf.len() - at - 4;
    put_len_at(buf, at, len);
    &buf[at + 4..]
}

fn put_len_at(buf: &mut [u8], at: usize, len: usize) {
    let len = u32::try_from(len).expect("chunk records are bounded before encoding");
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Completes a chunk begun with [`begin_chunk`]: its header, then its crc.
/// Body: `batch_no u64 | first_cmd_seq u64 | cmd_count u32 | first_event_seq u64 |
/// event_count u32 | records`, where records are `len u32 | record` for each command
/// record followed by its event records.
pub(crate) fn finish_chunk(buf: &mut Vec<u8>, h: &ChunkHeader) {
    let mut head = Vec::with_capacity(CHUNK_HEADER_BYTES);
    head.extend_from_slice(&h.batch_no.to_be_bytes());
    head.extend_from_slice(&h.first_cmd_seq.to_be_bytes());
    head.extend_from_slice(&h.cmd_count.to_be_bytes());
    head.extend_from_slice(&h.first_event_seq.to_be_bytes());
    head.extend_from_slice(&h.event_count.to_be_bytes());
    buf[2..2 + CHUNK_HEADER_BYTES].copy_from_slice(&head);
    close_frame(buf, 0);
}

/// A decoded chunk: its header and where its records are.
pub(crate) struct ChunkView<'a> {
    pub header: ChunkHeader,
    records: &'a [u8],
}

fn read_chunk_header(rd: &mut Rd<'_>) -> Result<ChunkHeader, DecodeError> {
    Ok(ChunkHeader {
        batch_no: rd.u64()?,
        first_cmd_seq: rd.u64()?,
        cmd_count: rd.u32()?,
        first_event_seq: rd.u64()?,
        event_count: rd.u32()?,
    })
}

/// Where a chunk's records start in its stored value.
const CHUNK_RECORDS_AT: usize = 2 + CHUNK_HEADER_BYTES;

/// Decodes a chunk record: checks its crc, version and kind and reads its header.
/// The inner records are checked one by one as they are read.
pub(crate) fn decode_chunk(bytes: &[u8]) -> Result<ChunkView<'_>, DecodeError> {
    let mut rd = Rd {
        b: open_record(bytes, kind::CHUNK)?,
    };
    let header = read_chunk_header(&mut rd)?;
    Ok(ChunkView {
        header,
        records: rd.b,
    })
}

impl ChunkView<'_> {
    /// Where each inner record is in the chunk's stored value, in order.
    pub fn spans(&self) -> Result<Vec<std::ops::Range<usize>>, DecodeError> {
        let mut rd = Rd { b: self.records };
        let mut at = CHUNK_RECORDS_AT;
        let mut out = Vec::new();
        while !rd.b.is_empty() {
            let len = rd.bytes32()?.len();
            out.push(at + 4..at + 4 + len);
            at += 4 + len;
        }
        Ok(out)
    }
}

/// The kind byte of a stored record, if it has one.
pub(crate) fn record_kind(record: &[u8]) -> Option<u8> {
    record.get(1).copied()
}

/// Event-index record (kind 10), key = the first `event_seq` of a chunk with events:
/// `first_event_seq u64 | event_count u32 | chunk u64` (the chunk's key, its first
/// `cmd_seq`).
pub(crate) fn encode_event_index(buf: &mut Vec<u8>, first_event_seq: u64, count: u32, chunk: u64) {
    let start = open_frame(buf, kind::EVENT_INDEX);
    buf.extend_from_slice(&first_event_seq.to_be_bytes());
    buf.extend_from_slice(&count.to_be_bytes());
    buf.extend_from_slice(&chunk.to_be_bytes());
    close_frame(buf, start);
}

/// A decoded event-index record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventIndex {
    pub first_event_seq: u64,
    pub event_count: u32,
    pub chunk: u64,
}

pub(crate) fn decode_event_index(bytes: &[u8]) -> Result<EventIndex, DecodeError> {
    let mut rd = Rd {
        b: open_record(bytes, kind::EVENT_INDEX)?,
    };
    let r = EventIndex {
        first_event_seq: rd.u64()?,
        event_count: rd.u32()?,
        chunk: rd.u64()?,
    };
    rd.end()?;
    Ok(r)
}

/// Format record body: the magic `GPUXLEDG`.
pub(crate) fn encode_format(buf: &mut Vec<u8>) {
    let start = open_frame(buf, kind::FORMAT);
    buf.extend_from_slice(FORMAT_MAGIC);
    close_frame(buf, start);
}

/// The chain hash of one batch, fed record by record as the batch is encoded.
///
/// `hash = SHA-256(prev_hash || record_1 || ... || record_n || trailer)` where the
/// records are the stored values (frame included) of the batch's commands, each
/// followed by its events, in order, and the trailer is `batch_no | first_cmd_seq |
/// last_cmd_seq | first_event_seq | last_event_seq` (u64 big-endian each).
#[derive(Clone)]
pub(crate) struct BatchHasher(Sha256);

impl BatchHasher {
    pub fn new(prev_hash: &Hash) -> Self {
        let mut h = Sha256::new();
        h.update(prev_hash);
        Self(h)
    }

    pub fn record(&mut self, stored_value: &[u8]) {
        self.0.update(stored_value);
    }

    pub fn finish(
        mut self,
        batch_no: u64,
        first_cmd_seq: u64,
        last_cmd_seq: u64,
        first_event_seq: u64,
        last_event_seq: u64,
    ) -> Hash {
        for n in [
            batch_no,
            first_cmd_seq,
            last_cmd_seq,
            first_event_seq,
            last_event_seq,
        ] {
            self.0.update(n.to_be_bytes());
        }
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trips_and_any_flipped_bit_is_caught() {
        for index in [None, Some(0), Some(4_000_000_000)] {
            command_round_trips_with(Source::Kafka {
                topic: "commands".into(),
                partition: 3,
                offset: 77,
                index,
            });
        }
        command_round_trips_with(Source::Embedded { seq: 12 });
    }

    #[test]
    fn a_batch_index_is_stored_after_the_offset_under_its_own_tag() {
        let encode = |index| {
            let mut buf = Vec::new();
            let source = Source::Kafka {
                topic: "t".into(),
                partition: 0,
                offset: 5,
                index,
            };
            put_source(&mut buf, &source);
            buf
        };
        let (plain, batch) = (encode(None), encode(Some(7)));
        assert_eq!(plain[0], SOURCE_KAFKA);
        assert_eq!(batch[0], SOURCE_KAFKA_BATCH);
        assert_eq!(batch[1..plain.len()], plain[1..]);
        assert_eq!(batch[plain.len()..], 7u32.to_be_bytes());
    }

    fn command_round_trips_with(source: Source) {
        let mut buf = Vec::new();
        encode_command(
            &mut buf,
            &CommandFields {
                cmd_seq: 9,
                ts_ns: 1_700_000_000_000_000_000,
                first_event_seq: 20,
                event_count: 3,
                source: &source,
                payload: b"place order",
            },
        );
        let v = decode_command(&buf).expect("decodes");
        assert_eq!(
            (v.cmd_seq, v.ts_ns, v.first_event_seq, v.event_count),
            (9, 1_700_000_000_000_000_000, 20, 3)
        );
        assert_eq!(v.source, source);
        assert_eq!(v.payload, b"place order");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert_eq!(
                    decode_command(&bad).err(),
                    Some(DecodeError::Checksum),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn a_record_of_another_kind_is_refused() {
        let mut buf = Vec::new();
        encode_event(&mut buf, 1, 1, b"e");
        assert_eq!(
            decode_command(&buf).err(),
            Some(DecodeError::Malformed("wrong record kind"))
        );
    }

    #[test]
    fn keys_sort_in_sequence_order() {
        assert!(seq_key(255) < seq_key(256));
        assert!(seq_key(u64::MAX - 1) < seq_key(u64::MAX));
        assert_eq!(key_seq(&seq_key(123_456)), Some(123_456));
        assert_eq!(key_seq(b"short"), None);
    }

    #[test]
    fn other_records_round_trip() {
        let mut b = Vec::new();
        let h = BatchHeader {
            batch_no: 2,
            first_cmd_seq: 3,
            last_cmd_seq: 4,
            first_event_seq: 5,
            last_event_seq: 4,
            prev_hash: [1; 32],
            hash: [2; 32],
        };
        encode_batch(&mut b, &h);
        assert_eq!(decode_batch(&b), Ok(h));

        let mut b = Vec::new();
        let head = Head {
            last_cmd_seq: 1,
            last_event_seq: 2,
            last_batch_no: 3,
            last_ts_ns: 4,
            last_inbox_seq: 6,
            hash: [5; 32],
        };
        encode_head(&mut b, &head);
        assert_eq!(decode_head(&b), Ok(head));

        let mut b = Vec::new();
        let key = SourceKey::Kafka {
            topic: "t".into(),
            partition: -1,
        };
        encode_offset(&mut b, &key, 10, 11);
        assert_eq!(
            decode_offset(&b),
            Ok(OffsetRecord {
                key,
                offset: 10,
                cmd_seq: 11
            })
        );

        let mut b = Vec::new();
        encode_snapshot(&mut b, 7, 8, b"state");
        let s = decode_snapshot(&b).expect("decodes");
        assert_eq!((s.cmd_seq, s.event_seq, s.bytes), (7, 8, &b"state"[..]));

        let mut b = Vec::new();
        encode_inbox(&mut b, 5, b"cmd");
        assert_eq!(decode_inbox(&b), Ok((5, &b"cmd"[..])));
    }
}
