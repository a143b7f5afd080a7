//! [`EventsTopicFeed`]: a [`Feed`] over the events topic, for processes that do not
//! hold the ledger (stateless gateways, market data elsewhere).
//!
//! It yields the same [`CommittedCommand`]s as
//! [`read_committed`](crate::read_committed) on the ledger: payload bytes exactly as
//! sequenced, events decoded, split commands joined. It checks contiguity: after the
//! first command it yields, every message must carry the next `cmd_seq` (or the
//! next part of the current one), or repeat one it already took.
//!
//! A repeat is a retried produce request appended twice: the publisher's producer is
//! idempotent, but a broker that does not check idempotent sequence numbers (the
//! librdkafka mock cluster checks them only for transactional producers) appends a
//! request again when its answer was lost. The publisher's messages are
//! deterministic, so a true repeat has the very bytes of the message it repeats: the
//! feed remembers a hash of the last [`REPEAT_WINDOW`] messages it took, passes over
//! a repeat that matches (counted: [`EventsTopicFeed::repeats`]) and stops on one
//! that differs or is older than that. A gap, a conflicting repeat or a message that
//! does not decode stops the feed with an error (never skipped). Broker trouble is
//! logged and waited out. [`EventsTopicFeed::connecting`] does not even need the broker
//! to start: until it can find where to begin, each call answers
//! [`FeedError::Unavailable`] (a gateway started before its broker keeps trying).

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use super::error::KafkaError;
use super::events::{Assembler, EventsMessage};
use super::topic::TopicReader;
use super::{KafkaConfig, Throttle, LOG_EVERY};
use crate::committed::{CommittedBatch, CommittedCommand};
use crate::error::FeedError;
use crate::feed::Feed;

/// Most messages one [`Feed::recv_timeout`] call returns.
const BATCH_MAX: usize = 4096;

/// How many of the messages it took a feed remembers, to recognise a repeat. A
/// repeat is one retried produce request, at most about 1 MB of messages of at
/// least about 150 bytes: well inside this.
pub const REPEAT_WINDOW: usize = 1 << 16;

/// A message's place on the topic: its `cmd_seq` and part (0 when whole).
type Place = (u64, u32);

/// The places and byte hashes of the last [`REPEAT_WINDOW`] messages taken, in
/// order (places increase), to tell a repeat from a conflict.
#[derive(Debug, Default)]
struct Taken {
    recent: VecDeque<(Place, u64)>,
}

impl Taken {
    fn hash(bytes: &[u8]) -> u64 {
        let mut h = DefaultHasher::new();
        h.write(bytes);
        h.finish()
    }

    fn remember(&mut self, place: Place, bytes: &[u8]) {
        if self.recent.len() == REPEAT_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((place, Self::hash(bytes)));
    }

    /// `Ok` when `bytes` are exactly the message taken at `place`.
    fn check_repeat(&self, place: Place, bytes: &[u8]) -> Result<(), String> {
        let (seq, part) = place;
        match self.recent.binary_search_by_key(&place, |&(p, _)| p) {
            Ok(i) if self.recent[i].1 == Self::hash(bytes) => Ok(()),
            Ok(_) => Err(format!(
                "cmd_seq {seq} part {part} comes again and differs from the message taken before"
            )),
            Err(_) => Err(format!(
                "cmd_seq {seq} part {part} comes again, too far back to check it repeats the message taken before"
            )),
        }
    }
}

/// Follows the events topic from a given `cmd_seq` (see the module docs).
#[derive(Debug)]
pub struct EventsTopicFeed {
    reader: TopicReader,
    next_seq: u64,
    /// The part of `next_seq` expected next (0 unless a split command is half read).
    next_part: u32,
    /// Whether the command at the starting `cmd_seq` was reached (before that,
    /// earlier messages are passed over: they precede the start, they are not
    /// duplicates).
    started: bool,
    /// Joins the parts of split commands.
    assembler: Assembler,
    /// What was taken, to recognise repeats.
    taken: Taken,
    /// How many repeats were passed over.
    repeats: u64,
    repeat_log: Throttle,
    failed: Option<String>,
    /// How long each broker request may take while positioning.
    timeout: Duration,
    /// The partition's end offset when the reader was positioned (`None`: not yet):
    /// everything before it has been returned once the reader gets there.
    start_end: Option<u64>,
}

impl EventsTopicFeed {
    /// A feed of `cfg`'s events topic from `from_cmd_seq` on (1 for everything).
    /// Finds the message to start at by bisecting the partition's offsets, which
    /// needs the broker (waits up to `timeout` per request).
    pub fn new(
        cfg: &KafkaConfig,
        from_cmd_seq: u64,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let mut feed = Self::connecting(cfg, from_cmd_seq, timeout)?;
        feed.position()?;
        Ok(feed)
    }

    /// A feed like [`new`](Self::new) that asks the broker where to start on its
    /// first [`recv_timeout`](Feed::recv_timeout) instead of now: while the broker
    /// cannot answer, that returns [`FeedError::Unavailable`] and the next call
    /// tries again.
    pub fn connecting(
        cfg: &KafkaConfig,
        from_cmd_seq: u64,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let reader = TopicReader::new(cfg, "events-feed", &cfg.events_topic, cfg.partition)?;
        Ok(Self {
            reader,
            next_seq: from_cmd_seq.max(1),
            next_part: 0,
            started: false,
            assembler: Assembler::new(),
            taken: Taken::default(),
            repeats: 0,
            repeat_log: Throttle::new(LOG_EVERY),
            failed: None,
            timeout,
            start_end: None,
        })
    }

    /// How many messages repeating one the feed took before it passed over (see
    /// the module docs).
    pub fn repeats(&self) -> u64 {
        self.repeats
    }

    /// Seeks to the first message at or after `next_seq`, once.
    fn position(&mut self) -> Result<(), KafkaError> {
        if self.start_end.is_none() {
            let (start, end) = start_offset(&mut self.reader, self.next_seq, self.timeout)?;
            self.reader.seek(start)?;
            self.start_end = Some(end);
        }
        Ok(())
    }

    fn accept(
        &mut self,
        offset: u64,
        value: Option<&[u8]>,
    ) -> Result<Option<CommittedCommand>, String> {
        let bytes = value.unwrap_or_default();
        let m = EventsMessage::decode(bytes)
            .map_err(|e| format!("events topic offset {offset}: {e}"))?;
        let place = (m.cmd_seq, m.part.unwrap_or(0));
        if !self.started && m.cmd_seq < self.next_seq {
            return Ok(None);
        }
        if self.started && place < (self.next_seq, self.next_part) {
            self.taken
                .check_repeat(place, bytes)
                .map_err(|why| format!("events topic offset {offset}: {why}"))?;
            self.repeats += 1;
            if let Some(held_back) = self.repeat_log.allow() {
                tracing::warn!(
                    offset,
                    cmd_seq = m.cmd_seq,
                    part = place.1,
                    repeats = self.repeats,
                    held_back,
                    "events topic: passing over a repeated message (a retried produce request the broker appended twice)"
                );
            }
            return Ok(None);
        }
        if m.cmd_seq != self.next_seq {
            return Err(format!(
                "events topic gap at offset {offset}: expected cmd_seq {}, found {}",
                self.next_seq, m.cmd_seq
            ));
        }
        self.started = true;
        let completes = m.completes();
        let done = self
            .assembler
            .push(m)
            .map_err(|e| format!("events topic offset {offset}: {e}"))?;
        self.taken.remember(place, bytes);
        if completes {
            self.next_seq = self
                .next_seq
                .checked_add(1)
                .ok_or_else(|| format!("events topic offset {offset}: cmd_seq overflows"))?;
            self.next_part = 0;
        } else {
            self.next_part = place.1 + 1;
        }
        Ok(done)
    }
}

/// The offset of the first message with `cmd_seq >= from` (`None` when the topic
/// was never written: its beginning), by bisection over `[low, high)`; the high
/// watermark when every message is older. Also returns the high watermark.
fn start_offset(
    reader: &mut TopicReader,
    from: u64,
    timeout: Duration,
) -> Result<(Option<u64>, u64), KafkaError> {
    let (low, high) = reader.watermarks(timeout)?;
    if high <= low {
        return Ok((if high == 0 { None } else { Some(high) }, high));
    }
    let mut probe = |offset: u64| -> Result<u64, KafkaError> {
        reader.seek(Some(offset))?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut got: Option<Result<u64, KafkaError>> = None;
            reader.poll(1, timeout.min(Duration::from_millis(500)), |o, _, v| {
                got = Some(
                    EventsMessage::decode(v.unwrap_or_default())
                        .map(|m| m.cmd_seq)
                        .map_err(KafkaError::context(format!("events topic offset {o}"))),
                );
            });
            if let Some(r) = got {
                return r;
            }
            if std::time::Instant::now() >= deadline {
                return Err(KafkaError::ReadTimeout { offset, timeout });
            }
        }
    };
    if probe(low)? >= from {
        return Ok((Some(low), high));
    }
    // Invariant: cmd_seq at `lo` < from; answer in (lo, hi].
    let (mut lo, mut hi) = (low, high);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if probe(mid)? >= from {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok((Some(hi), high))
}

impl Feed for EventsTopicFeed {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<CommittedBatch>, FeedError> {
        if let Some(why) = &self.failed {
            return Err(FeedError::Stopped(why.clone()));
        }
        if let Err(e) = self.position() {
            // Not a stop: the broker may answer next time (the caller backs off).
            return Err(FeedError::Unavailable(format!(
                "cannot find cmd_seq {} on the events topic: {e}",
                self.next_seq
            )));
        }
        let mut out: Vec<CommittedCommand> = Vec::new();
        let mut failure = None;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            let mut records: Vec<(u64, Option<Vec<u8>>)> = Vec::new();
            self.reader.poll(BATCH_MAX - out.len(), wait, |o, _, v| {
                records.push((o, v.map(<[u8]>::to_vec)));
            });
            for (offset, value) in records {
                match self.accept(offset, value.as_deref()) {
                    Ok(Some(c)) => out.push(c),
                    Ok(None) => {}
                    Err(why) => {
                        failure = Some(why);
                        break;
                    }
                }
            }
            if failure.is_some() || !out.is_empty() || std::time::Instant::now() >= deadline {
                break;
            }
        }
        if let Some(why) = failure {
            tracing::error!(%why, "events-topic feed stopped");
            self.failed = Some(why.clone());
            if out.is_empty() {
                return Err(FeedError::Stopped(why));
            }
        }
        Ok(if out.is_empty() {
            None
        } else {
            Some(Arc::from(out))
        })
    }

    fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn reached_start(&self) -> bool {
        match self.start_end {
            None => false,
            Some(0) => true,
            Some(end) => self.reader.next_offset().is_some_and(|next| next >= end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_must_be_the_very_message_taken_and_recent() {
        let mut taken = Taken::default();
        for seq in 1..=10u64 {
            taken.remember((seq, 0), format!("m{seq}").as_bytes());
        }
        taken.remember((11, 0), b"p0");
        taken.remember((11, 1), b"p1");
        assert_eq!(taken.check_repeat((4, 0), b"m4"), Ok(()));
        assert_eq!(taken.check_repeat((11, 1), b"p1"), Ok(()));
        let differs = taken.check_repeat((4, 0), b"m5").unwrap_err();
        assert!(differs.contains("differs"), "{differs}");
        let unknown = taken.check_repeat((11, 2), b"p1").unwrap_err();
        assert!(unknown.contains("too far back"), "{unknown}");
        // The window forgets the oldest.
        for seq in 12..12 + REPEAT_WINDOW as u64 {
            taken.remember((seq, 0), b"x");
        }
        assert_eq!(taken.recent.len(), REPEAT_WINDOW);
        assert!(taken.check_repeat((11, 1), b"p1").is_err());
        assert_eq!(taken.check_repeat((12, 0), b"x"), Ok(()));
    }
}
