//! The events topic: its message format ([`EventsMessage`]) and the
//! [`EventsPublisher`] that copies every committed command to it.
//!
//! One message per committed command, in `cmd_seq` order, on one partition:
//!
//! ```text
//! {"v":1,"cmd_seq":7,"ts_ns":…,"first_event_seq":12,"request_id":"r-7"|null,
//!  "command":"<the command bytes, as a JSON string>","events":[<event objects>]}
//! ```
//!
//! `command` holds the payload exactly as sequenced when it is UTF-8; otherwise the
//! message has `command_hex` (lower-case hex of the bytes) instead. `events` are the
//! bare event objects of `docs/PROTOCOL.md` (the ledger stores them in their binary
//! form, which decodes to exactly these objects). The key is
//! the market the command names, or `exchange` when it names none.
//!
//! A command whose message would exceed [`EVENTS_MESSAGE_BYTES_TARGET`] (its events
//! are bounded by the engine's limits, not by Kafka's: a mass cancel of 10,000
//! orders is about 2 MB) is split into consecutive messages with `"part":k,
//! "parts":n` after `request_id`; each part carries a slice of the events and its
//! own `first_event_seq`, and only part 0 carries the command. An [`Assembler`]
//! joins them again.
//!
//! The publisher is a thread following the ledger ([`LedgerFollower`]): it sees only
//! durable batches, so the topic never runs ahead of the ledger, and when it lags
//! (broker down, slow) it reads the ledger instead of slowing the engine. On start,
//! and after any producer failure, it reads the topic's last message and continues
//! at the `cmd_seq` after it: a crash leaves no gap. (After a failure it first
//! waits, up to 10 s, for the answer to the request the failed producer had in
//! flight, so that request is not appended after the new session's messages; a
//! request appended twice leaves an exact repeat, which feeds pass over: see
//! [`feed`](super::feed).) Its
//! producer is idempotent with `acks=all`, retries forever (`message.timeout.ms=0`)
//! and treats any lost message as fatal (`enable.gapless.guarantee`), which restarts
//! the publisher from the topic's last message. It keeps one produce request in
//! flight, so a retried request is never overtaken by a later one whether or not
//! the broker enforces idempotent sequence numbers; requests still batch whatever
//! queued up meanwhile.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpux_engine::{CommandEnvelope, Event};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;

use super::error::KafkaError;
use super::topic::last_offset_message;
use super::{KafkaConfig, LogContext, Throttle, LOG_EVERY};
use crate::committed::CommittedCommand;
use crate::feed::{Feed, LedgerFollower};
use crate::pipeline::Exchange;

/// The protocol version of events-topic messages.
pub const EVENTS_MESSAGE_VERSION: u32 = 1;

/// Key of messages whose command names no market.
pub const EXCHANGE_KEY: &str = "exchange";

/// How long shutdown waits for the broker to acknowledge what is in flight (what
/// is not is published again by the next start).
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Largest events-topic message the publisher writes, in bytes (well under
/// librdkafka's and most brokers' default limit of about 1 MB). A command whose
/// message would be larger (a mass cancel of thousands of orders, an order that
/// sweeps a deep book) is split into parts; see the module docs.
pub const EVENTS_MESSAGE_BYTES_TARGET: usize = 512 * 1024;

/// One events-topic message as decoded (see the module docs for the encoding).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EventsMessage {
    /// Message format version ([`EVENTS_MESSAGE_VERSION`]).
    pub v: u32,
    /// The command's sequence number.
    pub cmd_seq: u64,
    /// The timestamp the engine applied it at.
    pub ts_ns: u64,
    /// `event_seq` of the first event in this message.
    pub first_event_seq: u64,
    /// The envelope's `request_id`, if it decoded and had one.
    pub request_id: Option<String>,
    /// Which part of a split command this is (0-based; absent: the whole command).
    #[serde(default)]
    pub part: Option<u32>,
    /// How many parts the command was split into (absent: not split).
    #[serde(default)]
    pub parts: Option<u32>,
    /// The command bytes, when they are UTF-8 (absent from parts after the first).
    #[serde(default)]
    pub command: Option<String>,
    /// The command bytes in hex, when they are not UTF-8.
    #[serde(default)]
    pub command_hex: Option<String>,
    /// Its events (of this part), in order.
    pub events: Vec<Event>,
}

impl EventsMessage {
    /// Encodes a committed command as events-topic message values: one, or the
    /// parts of a command whose message would exceed [`EVENTS_MESSAGE_BYTES_TARGET`].
    /// Deterministic: the same command always gives the same messages.
    pub fn encode(c: &CommittedCommand) -> Vec<Vec<u8>> {
        let command = command_field(&c.payload);
        let events: Vec<Vec<u8>> = c.events.iter().map(Event::to_json_vec).collect();
        // Header (with part numbers) and closing brackets stay under this.
        const OVERHEAD: usize = 256;
        let rid = c.request_id.as_ref().map_or(0, |r| r.len() * 6);
        let total =
            OVERHEAD + rid + command.len() + events.iter().map(|e| e.len() + 1).sum::<usize>();
        if total <= EVENTS_MESSAGE_BYTES_TARGET || events.len() < 2 {
            return vec![encode_part(c, None, &command, &events, c.first_event_seq)];
        }
        let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
        let mut start = 0;
        let mut size = OVERHEAD + rid + command.len();
        for (i, e) in events.iter().enumerate() {
            if i > start && size + e.len() + 1 > EVENTS_MESSAGE_BYTES_TARGET {
                ranges.push(start..i);
                start = i;
                size = OVERHEAD + rid;
            }
            size += e.len() + 1;
        }
        ranges.push(start..events.len());
        let parts = ranges.len() as u32;
        ranges
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let cmd: &[u8] = if k == 0 { &command } else { b"" };
                encode_part(
                    c,
                    Some((k as u32, parts)),
                    cmd,
                    &events[r.clone()],
                    c.first_event_seq + r.start as u64,
                )
            })
            .collect()
    }

    /// Decodes a message value, checking its shape.
    pub fn decode(bytes: &[u8]) -> Result<Self, KafkaError> {
        let m: EventsMessage = serde_json::from_slice(bytes).map_err(KafkaError::NotAMessage)?;
        if m.v != EVENTS_MESSAGE_VERSION {
            return Err(KafkaError::bad_message(format!(
                "events-topic message version {} is not {EVENTS_MESSAGE_VERSION}",
                m.v
            )));
        }
        let first = match (m.part, m.parts) {
            (None, None) => true,
            (Some(k), Some(n)) if k < n => k == 0,
            _ => {
                return Err(KafkaError::bad_message(
                    "an events-topic message has a bad part number",
                ))
            }
        };
        let has_command = m.command.is_some() || m.command_hex.is_some();
        if (m.command.is_some() && m.command_hex.is_some()) || has_command != first {
            return Err(KafkaError::bad_message(
                "an events-topic message has exactly one of command and command_hex, in its first part only",
            ));
        }
        Ok(m)
    }

    /// Whether this message completes its command (it is whole, or its last part).
    pub fn completes(&self) -> bool {
        match (self.part, self.parts) {
            (Some(k), Some(n)) => k + 1 == n,
            _ => true,
        }
    }

    /// The committed command a whole message carries (payload bytes restored
    /// exactly); parts are joined with an [`Assembler`].
    pub fn into_committed(self) -> Result<CommittedCommand, KafkaError> {
        if self.part.is_some() {
            return Err(KafkaError::bad_message(
                "a part of a split command is not a whole command",
            ));
        }
        let payload = match (self.command, self.command_hex) {
            (Some(s), None) => s.into_bytes(),
            (None, Some(h)) => {
                unhex(&h).ok_or_else(|| KafkaError::bad_message("command_hex is not hex"))?
            }
            _ => {
                return Err(KafkaError::bad_message(
                    "an events-topic message has exactly one of command and command_hex",
                ))
            }
        };
        Ok(CommittedCommand {
            cmd_seq: self.cmd_seq,
            ts_ns: self.ts_ns,
            first_event_seq: self.first_event_seq,
            request_id: self.request_id,
            command: CommandEnvelope::from_json(&payload).ok(),
            payload,
            events: self.events,
        })
    }

    /// The message key of a committed command: the market it names, else
    /// [`EXCHANGE_KEY`].
    pub fn key(c: &CommittedCommand) -> String {
        CommandEnvelope::from_json(&c.payload)
            .ok()
            .and_then(|e| e.command.market())
            .map_or_else(|| EXCHANGE_KEY.to_owned(), |m| m.as_str().to_owned())
    }
}

/// Joins consecutive messages into committed commands: a whole message is one
/// command; the parts of a split one must follow each other in order (anything
/// else is an error, never skipped).
#[derive(Debug, Default)]
pub struct Assembler {
    pending: Option<(CommittedCommand, u32, u32)>,
}

impl Assembler {
    /// An assembler with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a split command has parts still to come.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Takes the next message; returns the command it completes, if it does.
    pub fn push(&mut self, m: EventsMessage) -> Result<Option<CommittedCommand>, KafkaError> {
        match (m.part, m.parts, self.pending.take()) {
            (None, _, None) => m.into_committed().map(Some),
            (Some(0), Some(n), None) => {
                let (part, parts) = (0, n);
                let mut head = m;
                head.part = None;
                head.parts = None;
                let c = head.into_committed()?;
                self.finish(c, part, parts)
            }
            (Some(k), Some(n), Some((mut c, next, parts)))
                if k == next && n == parts && m.cmd_seq == c.cmd_seq =>
            {
                if Some(m.first_event_seq) != c.first_event_seq.checked_add(c.events.len() as u64) {
                    return Err(KafkaError::bad_message(format!(
                        "cmd_seq {}: part {k} does not continue the events",
                        m.cmd_seq
                    )));
                }
                c.events.extend(m.events);
                self.finish(c, k, n)
            }
            (_, _, Some((c, next, parts))) => Err(KafkaError::bad_message(format!(
                "cmd_seq {}: expected part {next} of {parts}, found cmd_seq {} part {:?}",
                c.cmd_seq, m.cmd_seq, m.part
            ))),
            (Some(k), _, None) => Err(KafkaError::bad_message(format!(
                "cmd_seq {}: part {k} without the parts before it",
                m.cmd_seq
            ))),
        }
    }

    fn finish(
        &mut self,
        c: CommittedCommand,
        part: u32,
        parts: u32,
    ) -> Result<Option<CommittedCommand>, KafkaError> {
        if part + 1 == parts {
            Ok(Some(c))
        } else {
            self.pending = Some((c, part + 1, parts));
            Ok(None)
        }
    }
}

/// `,"command":"…"` (UTF-8) or `,"command_hex":"…"`.
fn command_field(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    match std::str::from_utf8(payload) {
        Ok(s) => {
            out.extend_from_slice(b",\"command\":");
            // Writing a JSON string to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, s);
        }
        Err(_) => {
            out.extend_from_slice(b",\"command_hex\":\"");
            for b in payload {
                out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
            out.push(b'"');
        }
    }
    out
}

fn encode_part(
    c: &CommittedCommand,
    part: Option<(u32, u32)>,
    command: &[u8],
    events: &[Vec<u8>],
    first_event_seq: u64,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(256 + command.len() + events.iter().map(|e| e.len() + 1).sum::<usize>());
    let mut head = String::with_capacity(128);
    let _ = write!(
        head,
        "{{\"v\":{EVENTS_MESSAGE_VERSION},\"cmd_seq\":{},\"ts_ns\":{},\"first_event_seq\":{first_event_seq},\"request_id\":",
        c.cmd_seq, c.ts_ns
    );
    out.extend_from_slice(head.as_bytes());
    let _ = serde_json::to_writer(&mut out, &c.request_id);
    if let Some((k, n)) = part {
        out.extend_from_slice(format!(",\"part\":{k},\"parts\":{n}").as_bytes());
    }
    out.extend_from_slice(command);
    out.extend_from_slice(b",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.extend_from_slice(b"]}");
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Live counters of the events publisher.
#[derive(Debug, Default)]
pub struct EventsPublisherStats {
    /// Highest `cmd_seq` the broker has acknowledged.
    pub acknowledged_seq: AtomicU64,
    /// How many times the publisher (re)started from the topic's last message.
    pub sessions: AtomicU64,
}

/// Publishes committed commands to the events topic (see the module docs).
#[derive(Debug)]
pub struct EventsPublisher;

impl EventsPublisher {
    /// Starts the publisher thread on `exchange`'s ledger; it stops when the
    /// exchange shuts down, after publishing what the ledger holds and flushing it
    /// (for a few seconds at most; anything left is published by the next start).
    pub fn spawn(
        exchange: &mut Exchange,
        cfg: &KafkaConfig,
    ) -> Result<Arc<EventsPublisherStats>, KafkaError> {
        let stats = Arc::new(EventsPublisherStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = Ctx {
            cfg: cfg.clone(),
            reader: exchange.reader(),
            publisher: exchange.publisher(),
            stats: Arc::clone(&stats),
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("gpux-events-pub".into())
            .spawn(move || run(&ctx))
            .map_err(KafkaError::Spawn)?;
        exchange.on_shutdown(move || {
            stop.store(true, Ordering::SeqCst);
            if thread.join().is_err() {
                tracing::error!("the events publisher panicked");
            }
        });
        Ok(stats)
    }
}

struct Ctx {
    cfg: KafkaConfig,
    reader: gpux_ledger::LedgerReader<gpux_ledger::RocksStore>,
    publisher: Arc<crate::feed::Publisher>,
    stats: Arc<EventsPublisherStats>,
    stop: Arc<AtomicBool>,
}

/// Delivery reports → acknowledged `cmd_seq`, or the session's failure.
struct PubContext {
    log: LogContext,
    stats: Arc<EventsPublisherStats>,
    failed: Arc<AtomicBool>,
}

impl ClientContext for PubContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.failed.store(true, Ordering::SeqCst);
        }
        self.log.error(error, reason);
    }
}

impl ProducerContext for PubContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, cmd_seq: usize) {
        match result {
            Ok(_) => {
                self.stats
                    .acknowledged_seq
                    .fetch_max(cmd_seq as u64, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if !self.failed.swap(true, Ordering::SeqCst) {
                    tracing::error!(cmd_seq, error = %e, "an events-topic message was not delivered; restarting the publisher from the topic's last message");
                }
            }
        }
    }
}

/// How long acknowledgements may stop while messages are in flight before the
/// publisher says so.
const STALL_WARN_AFTER: Duration = Duration::from_secs(10);

/// Notices (and logs, throttled) when the broker stops acknowledging.
struct Stall {
    acknowledged: u64,
    since: Instant,
    throttle: Throttle,
}

impl Stall {
    fn new(acknowledged: u64) -> Self {
        Self {
            acknowledged,
            since: Instant::now(),
            throttle: Throttle::new(LOG_EVERY),
        }
    }

    fn check(&mut self, acknowledged: u64, in_flight: i32) {
        if acknowledged != self.acknowledged || in_flight == 0 {
            self.acknowledged = acknowledged;
            self.since = Instant::now();
            return;
        }
        let waited = self.since.elapsed();
        if waited >= STALL_WARN_AFTER {
            if let Some(held_back) = self.throttle.allow() {
                tracing::warn!(
                    acknowledged_cmd_seq = acknowledged,
                    in_flight,
                    waited_s = waited.as_secs(),
                    held_back,
                    "the broker acknowledges no events; still retrying"
                );
            }
        }
    }
}

fn run(ctx: &Ctx) {
    let mut throttle = Throttle::new(LOG_EVERY);
    while !ctx.stop.load(Ordering::SeqCst) {
        match session(ctx) {
            Ok(()) => return,
            Err(e) => {
                if let Some(held_back) = throttle.allow() {
                    tracing::warn!(error = %e, held_back, "events publisher: retrying");
                }
                let until = Instant::now() + Duration::from_secs(1);
                while Instant::now() < until && !ctx.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// How long a failed session waits for the broker to answer the request it has
/// in flight before the next session reads where to resume.
const FAILED_SESSION_SETTLE: Duration = Duration::from_secs(10);

/// Publishes from the topic's last message on until stopped (`Ok`) or until the
/// producer fails or the broker cannot be asked where to resume (`Err`).
fn session(ctx: &Ctx) -> Result<(), KafkaError> {
    let failed = Arc::new(AtomicBool::new(false));
    let producer = events_producer(ctx, &failed)?;
    let result = publish_from_last(ctx, &producer, &failed);
    if result.is_err() {
        // The request in flight may still be appended. Were it appended after the
        // next session read the topic's last message, its messages would come
        // again after the ones the next session publishes: wait for its answer
        // (bounded) so the next session resumes after it.
        if let Err(e) = producer.flush(FAILED_SESSION_SETTLE) {
            tracing::warn!(error = %e, "a failed events-publisher session's last request is still unanswered");
        }
    }
    result
}

/// The body of [`session`], on its producer.
fn publish_from_last(
    ctx: &Ctx,
    producer: &ThreadedProducer<PubContext>,
    failed: &Arc<AtomicBool>,
) -> Result<(), KafkaError> {
    let (next, mut skip_parts) = resume_point(ctx)?;
    ctx.stats.sessions.fetch_add(1, Ordering::Relaxed);
    ctx.stats
        .acknowledged_seq
        .fetch_max(next - 1, Ordering::Relaxed);
    tracing::info!(
        topic = ctx.cfg.events_topic.as_str(),
        partition = ctx.cfg.partition,
        next_cmd_seq = next,
        next_part = skip_parts,
        "publishing committed commands to the events topic"
    );
    let mut follower = LedgerFollower::new(ctx.reader.clone(), Arc::clone(&ctx.publisher), next);
    let mut stalled = Stall::new(ctx.stats.acknowledged_seq.load(Ordering::Relaxed));
    let mut published = next - 1;
    loop {
        stalled.check(
            ctx.stats.acknowledged_seq.load(Ordering::Relaxed),
            producer.in_flight_count(),
        );
        if ctx.stop.load(Ordering::SeqCst) {
            drain(ctx, producer, failed, &mut follower, published, skip_parts)?;
            if let Err(e) = producer.flush(SHUTDOWN_FLUSH) {
                tracing::warn!(error = %e, "events not all acknowledged at shutdown; the next start publishes them");
            }
            return Ok(());
        }
        if failed.load(Ordering::SeqCst) {
            let why = producer.client().fatal_error().map_or_else(
                || "a message was not delivered".to_owned(),
                |(c, r)| format!("{c}: {r}"),
            );
            return Err(KafkaError::ProducerFailed { why: Some(why) });
        }
        let Some(batch) = follower
            .recv_timeout(Duration::from_millis(100))
            .map_err(KafkaError::Follow)?
        else {
            continue;
        };
        for c in batch.iter() {
            let skip = std::mem::take(&mut skip_parts);
            if publish(ctx, producer, failed, c, skip)? == Published::Stopped {
                return Ok(());
            }
            published = c.cmd_seq;
        }
    }
}

/// At a clean stop, publishes what the ledger holds beyond `published` (for at most
/// [`SHUTDOWN_FLUSH`]): the exchange stops its publisher once its last commands are
/// committed, so a cleanly stopped engine leaves the topic ending where its ledger
/// does. Whatever does not fit in the time is published by the next start.
fn drain(
    ctx: &Ctx,
    producer: &ThreadedProducer<PubContext>,
    failed: &Arc<AtomicBool>,
    follower: &mut LedgerFollower<gpux_ledger::RocksStore>,
    mut published: u64,
    mut skip_parts: usize,
) -> Result<(), KafkaError> {
    let head = ctx
        .reader
        .head()
        .map_err(|e| KafkaError::Follow(e.into()))?
        .last_cmd_seq;
    let deadline = Instant::now() + SHUTDOWN_FLUSH;
    while published < head && Instant::now() < deadline {
        let Some(batch) = follower
            .recv_timeout(Duration::from_millis(100))
            .map_err(KafkaError::Follow)?
        else {
            continue;
        };
        for c in batch.iter() {
            let skip = std::mem::take(&mut skip_parts);
            // Stopping, `publish` does not wait for room: a full queue leaves
            // the rest to the next start.
            if publish(ctx, producer, failed, c, skip)? == Published::Stopped {
                return Ok(());
            }
            published = c.cmd_seq;
        }
    }
    Ok(())
}

/// The idempotent, ordered producer of a publishing session; `failed` is set when
/// a message is not delivered.
fn events_producer(
    ctx: &Ctx,
    failed: &Arc<AtomicBool>,
) -> Result<ThreadedProducer<PubContext>, KafkaError> {
    ctx.cfg
        .client_config(
            "events-publisher",
            // As the command producer (see `submit`): no linger.
            &[("linger.ms", "0")],
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "0"),
                ("enable.gapless.guarantee", "true"),
                // One produce request at a time: a failed request is retried
                // before anything after it is sent, so the topic's order never
                // rests on the broker checking idempotent sequence numbers (the
                // librdkafka mock cluster checks them only for transactional
                // producers, and reordered or repeated retries there).
                ("max.in.flight.requests.per.connection", "1"),
            ],
        )
        .create_with_context(PubContext {
            log: LogContext::new("events-publisher"),
            stats: Arc::clone(&ctx.stats),
            failed: Arc::clone(failed),
        })
        .map_err(KafkaError::client("cannot create the events producer"))
}

/// Where the topic stops: the next command, and how many parts of it are already
/// there (a split command cut short).
fn resume_point(ctx: &Ctx) -> Result<(u64, usize), KafkaError> {
    let topic = ctx.cfg.events_topic.as_str();
    let partition = ctx.cfg.partition;
    let Some((offset, bytes)) =
        last_offset_message(&ctx.cfg, topic, partition, Duration::from_secs(10))?
    else {
        return Ok((1, 0));
    };
    let m = EventsMessage::decode(&bytes).map_err(KafkaError::context(format!(
        "the last record of {topic}/{partition} (offset {offset})"
    )))?;
    Ok(match m.part {
        Some(k) if !m.completes() => (m.cmd_seq, k as usize + 1),
        _ => (
            m.cmd_seq
                .checked_add(1)
                .ok_or(KafkaError::TopicFull(m.cmd_seq))?,
            0,
        ),
    })
}

/// How publishing a command ended.
#[derive(Debug, PartialEq, Eq)]
enum Published {
    /// Every part is queued.
    Queued,
    /// The publisher was asked to stop while waiting for room.
    Stopped,
}

/// Queues the parts of `c` from part `skip` on, waiting for room while the
/// producer's queue is full (never dropping a part).
fn publish(
    ctx: &Ctx,
    producer: &ThreadedProducer<PubContext>,
    failed: &AtomicBool,
    c: &CommittedCommand,
    skip: usize,
) -> Result<Published, KafkaError> {
    let key = EventsMessage::key(c);
    let parts = EventsMessage::encode(c);
    let last = parts.len() - 1;
    for (k, value) in parts.iter().enumerate().skip(skip) {
        // Only a command's last part acknowledges it.
        let ack = if k == last { c.cmd_seq as usize } else { 0 };
        let mut record = BaseRecord::<str, [u8], usize>::with_opaque_to(&ctx.cfg.events_topic, ack)
            .partition(ctx.cfg.partition)
            .key(key.as_str())
            .payload(value.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    // The broker is slow or away: wait for room, never drop.
                    if failed.load(Ordering::SeqCst) {
                        return Err(KafkaError::ProducerFailed { why: None });
                    }
                    if ctx.stop.load(Ordering::SeqCst) {
                        return Ok(Published::Stopped);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    record = back;
                }
                Err((error, _)) => {
                    return Err(KafkaError::Queue {
                        cmd_seq: c.cmd_seq,
                        part: k,
                        error,
                    });
                }
            }
        }
    }
    Ok(Published::Queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpux_engine::Engine;

    fn committed(payload: &[u8]) -> CommittedCommand {
        let mut engine: Engine = Engine::new();
        let mut events = Vec::new();
        let env = engine.apply_json(1, 5, payload, &mut events);
        CommittedCommand {
            cmd_seq: 1,
            ts_ns: 5,
            first_event_seq: 1,
            request_id: env.as_ref().and_then(|e| e.request_id.clone()),
            command: env,
            payload: payload.to_vec(),
            events,
        }
    }

    #[test]
    fn messages_round_trip_every_payload_exactly() {
        let payloads: [&[u8]; 5] = [
            br#"{"v":3,"ts_ns":5,"request_id":"r\"1\u00e9","command":{"type":"create_account","account":7}}"#,
            b"{not json \x01\x1f \\ \"",
            &[0xff, 0x00, 0xfe, b'"'],
            b"",
            "caf\u{e9} \u{1F600}".as_bytes(),
        ];
        for p in payloads {
            let c = committed(p);
            let mut parts = EventsMessage::encode(&c);
            assert_eq!(parts.len(), 1);
            let bytes = parts.remove(0);
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
            assert_eq!(v["v"], 1);
            assert_eq!(v["cmd_seq"], 1);
            assert_eq!(
                v.get("command_hex").is_some(),
                std::str::from_utf8(p).is_err(),
                "{v}"
            );
            let back = EventsMessage::decode(&bytes)
                .unwrap()
                .into_committed()
                .unwrap();
            assert_eq!(back, c);
        }
    }

    /// A mass cancel of 6,000 orders: about 1.3 MB of events, more than one message.
    fn mass_cancel() -> CommittedCommand {
        let mut engine: Engine = Engine::new();
        let mut events = Vec::new();
        let mut seq = 0;
        let mut apply = |engine: &mut Engine, json: String, events: &mut Vec<Event>| {
            seq += 1;
            events.clear();
            engine.apply_json(seq, seq, json.as_bytes(), events);
            seq
        };
        for cmd in [
            r#"{"type":"list_market","market":"h100-sxm.us-east","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":0}"#.to_owned(),
            r#"{"type":"create_account","account":1}"#.to_owned(),
            r#"{"type":"deposit","account":1,"amount":"1000000"}"#.to_owned(),
        ]
        .into_iter()
        .chain((0..6_000).map(|i| {
            format!(
                r#"{{"type":"place_order","account":1,"market":"h100-sxm.us-east","slot":3600,"side":"buy","price":"{}.{:02}","quantity":"1","client_order_id":"c-{i}"}}"#,
                1 + i / 100,
                i % 100
            )
        })) {
            apply(&mut engine, format!(r#"{{"v":3,"ts_ns":1,"command":{cmd}}}"#), &mut events);
        }
        let payload =
            br#"{"v":3,"ts_ns":9,"request_id":"mc","command":{"type":"mass_cancel","account":1}}"#;
        let cmd_seq = apply(
            &mut engine,
            String::from_utf8_lossy(payload).into_owned(),
            &mut events,
        );
        assert!(events.len() > 6_000, "{} events", events.len());
        CommittedCommand {
            cmd_seq,
            ts_ns: 9,
            first_event_seq: 77,
            request_id: Some("mc".into()),
            command: CommandEnvelope::from_json(payload).ok(),
            payload: payload.to_vec(),
            events,
        }
    }

    #[test]
    fn a_command_with_too_many_events_for_one_message_is_split_and_joined_again() {
        let c = mass_cancel();
        let parts = EventsMessage::encode(&c);
        assert!(parts.len() > 1, "{} parts", parts.len());
        assert_eq!(parts, EventsMessage::encode(&c), "deterministic");
        let mut asm = Assembler::new();
        for (k, p) in parts.iter().enumerate() {
            assert!(
                p.len() <= EVENTS_MESSAGE_BYTES_TARGET,
                "part {k}: {} bytes",
                p.len()
            );
            let m = EventsMessage::decode(p).unwrap();
            assert_eq!(
                (m.part, m.parts),
                (Some(k as u32), Some(parts.len() as u32))
            );
            assert_eq!(m.command.is_some(), k == 0);
            assert_eq!(m.completes(), k + 1 == parts.len());
            let done = asm.push(m).unwrap();
            assert_eq!(done.is_some(), k + 1 == parts.len());
            if let Some(back) = done {
                assert_eq!(back, c);
            }
        }
        assert!(!asm.is_pending());

        // Parts out of order, missing or repeated are errors.
        let m = |k: usize| EventsMessage::decode(&parts[k]).unwrap();
        assert!(
            Assembler::new().push(m(1)).is_err(),
            "a part without part 0"
        );
        let mut asm = Assembler::new();
        asm.push(m(0)).unwrap();
        assert!(asm.push(m(0)).is_err(), "part 0 twice");
        let whole = EventsMessage::encode(&committed(b"{}")).remove(0);
        let mut asm = Assembler::new();
        asm.push(m(0)).unwrap();
        assert!(
            asm.push(EventsMessage::decode(&whole).unwrap()).is_err(),
            "another command before the last part"
        );
    }

    #[test]
    fn the_key_is_the_market_named_or_exchange() {
        let c = committed(br#"{"v":3,"ts_ns":5,"command":{"type":"create_account","account":7}}"#);
        assert_eq!(EventsMessage::key(&c), EXCHANGE_KEY);
        let c = committed(
            br#"{"v":3,"ts_ns":5,"command":{"type":"add_capacity","account":7,"market":"h100-sxm.us-east","from_slot":3600,"to_slot":3600,"quantity":"1"}}"#,
        );
        assert_eq!(EventsMessage::key(&c), "h100-sxm.us-east");
        assert_eq!(EventsMessage::key(&committed(b"\xff")), EXCHANGE_KEY);
    }

    #[test]
    fn decoding_refuses_what_is_not_a_message() {
        for bad in [
            &b""[..],
            b"{}",
            br#"{"v":3,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"command":"","events":[]}"#,
            br#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"events":[]}"#,
            br#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"command":"","command_hex":"00","events":[]}"#,
        ] {
            assert!(EventsMessage::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        for bad_part in [
            r#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"part":2,"parts":2,"command":"","events":[]}"#,
            r#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"part":0,"command":"","events":[]}"#,
            r#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"part":1,"parts":2,"command":"","events":[]}"#,
            r#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"part":0,"parts":2,"events":[]}"#,
        ] {
            assert!(
                EventsMessage::decode(bad_part.as_bytes()).is_err(),
                "{bad_part}"
            );
        }
        let odd = br#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"command_hex":"0g","events":[]}"#;
        assert!(EventsMessage::decode(odd)
            .unwrap()
            .into_committed()
            .is_err());
    }
}
