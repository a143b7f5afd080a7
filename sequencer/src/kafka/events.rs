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
//! bare event objects of `docs/PROTOCOL.md`, as the ledger stores them. The key is
//! the market the command names, or `exchange` when it names none.
//!
//! The publisher is a thread following the ledger ([`LedgerFollower`]): it sees only
//! durable batches, so the topic never runs ahead of the ledger, and when it lags
//! (broker down, slow) it reads the ledger instead of slowing the engine. On start,
//! and after any producer failure, it reads the topic's last message and continues
//! at the `cmd_seq` after it: a crash leaves neither a gap nor a duplicate. Its
//! producer is idempotent with `acks=all`, retries forever (`message.timeout.ms=0`)
//! and treats any lost message as fatal (`enable.gapless.guarantee`), which restarts
//! the publisher from the topic's last message.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use gpux_engine::{CommandEnvelope, Event};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;

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

/// One events-topic message as decoded (see the module docs for the encoding).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EventsMessage {
    /// Message format version ([`EVENTS_MESSAGE_VERSION`]).
    pub v: u32,
    /// The command's sequence number.
    pub cmd_seq: u64,
    /// The timestamp the engine applied it at.
    pub ts_ns: u64,
    /// `event_seq` of its first event.
    pub first_event_seq: u64,
    /// The envelope's `request_id`, if it decoded and had one.
    pub request_id: Option<String>,
    /// The command bytes, when they are UTF-8.
    #[serde(default)]
    pub command: Option<String>,
    /// The command bytes in hex, when they are not UTF-8.
    #[serde(default)]
    pub command_hex: Option<String>,
    /// Its events, in order.
    pub events: Vec<Event>,
}

impl EventsMessage {
    /// Encodes a committed command as an events-topic message value.
    pub fn encode(c: &CommittedCommand) -> Vec<u8> {
        let mut out = Vec::with_capacity(c.payload.len() + 96 + 160 * c.events.len());
        let mut head = String::with_capacity(96);
        let _ = write!(
            head,
            "{{\"v\":{EVENTS_MESSAGE_VERSION},\"cmd_seq\":{},\"ts_ns\":{},\"first_event_seq\":{},\"request_id\":",
            c.cmd_seq, c.ts_ns, c.first_event_seq
        );
        out.extend_from_slice(head.as_bytes());
        // Writing JSON strings to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &c.request_id);
        match std::str::from_utf8(&c.payload) {
            Ok(s) => {
                out.extend_from_slice(b",\"command\":");
                let _ = serde_json::to_writer(&mut out, s);
            }
            Err(_) => {
                out.extend_from_slice(b",\"command_hex\":\"");
                for b in &c.payload {
                    out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
                }
                out.push(b'"');
            }
        }
        out.extend_from_slice(b",\"events\":[");
        for (i, e) in c.events.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&e.to_json_vec());
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Decodes a message value.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let m: EventsMessage =
            serde_json::from_slice(bytes).context("not an events-topic message")?;
        if m.v != EVENTS_MESSAGE_VERSION {
            return Err(anyhow!(
                "events-topic message version {} is not {EVENTS_MESSAGE_VERSION}",
                m.v
            ));
        }
        if m.command.is_some() == m.command_hex.is_some() {
            return Err(anyhow!(
                "an events-topic message has exactly one of command and command_hex"
            ));
        }
        Ok(m)
    }

    /// The committed command it carries (payload bytes restored exactly).
    pub fn into_committed(self) -> Result<CommittedCommand> {
        let payload = match (self.command, self.command_hex) {
            (Some(s), None) => s.into_bytes(),
            (None, Some(h)) => unhex(&h).ok_or_else(|| anyhow!("command_hex is not hex"))?,
            _ => {
                return Err(anyhow!(
                    "an events-topic message has exactly one of command and command_hex"
                ))
            }
        };
        Ok(CommittedCommand {
            cmd_seq: self.cmd_seq,
            ts_ns: self.ts_ns,
            first_event_seq: self.first_event_seq,
            request_id: self.request_id,
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
    /// Starts the publisher thread on `exchange`'s ledger; it stops (flushing what it
    /// sent, for a few seconds at most) when the exchange shuts down.
    pub fn spawn(exchange: &mut Exchange, cfg: &KafkaConfig) -> Result<Arc<EventsPublisherStats>> {
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
            .context("cannot start the events publisher")?;
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

    fn error(&self, error: KafkaError, reason: &str) {
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
                    tracing::warn!(error = %format!("{e:#}"), held_back, "events publisher: retrying");
                }
                let until = Instant::now() + Duration::from_secs(1);
                while Instant::now() < until && !ctx.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// Publishes from the topic's last message on until stopped (`Ok`) or until the
/// producer fails or the broker cannot be asked where to resume (`Err`).
fn session(ctx: &Ctx) -> Result<()> {
    let failed = Arc::new(AtomicBool::new(false));
    let producer: ThreadedProducer<PubContext> = ctx
        .cfg
        .client_config(
            "events-publisher",
            // As the command producer (see `submit`): no linger.
            &[("linger.ms", "0")],
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "0"),
                ("enable.gapless.guarantee", "true"),
            ],
        )
        .create_with_context(PubContext {
            log: LogContext::new("events-publisher"),
            stats: Arc::clone(&ctx.stats),
            failed: Arc::clone(&failed),
        })
        .context("cannot create the events producer")?;
    let topic = ctx.cfg.events_topic.as_str();
    let partition = ctx.cfg.partition;
    let next = match last_offset_message(&ctx.cfg, topic, partition, Duration::from_secs(10))? {
        None => 1,
        Some((offset, bytes)) => {
            let m = EventsMessage::decode(&bytes).with_context(|| {
                format!("the last record of {topic}/{partition} (offset {offset})")
            })?;
            m.cmd_seq + 1
        }
    };
    ctx.stats.sessions.fetch_add(1, Ordering::Relaxed);
    ctx.stats
        .acknowledged_seq
        .fetch_max(next - 1, Ordering::Relaxed);
    tracing::info!(
        topic,
        partition,
        next_cmd_seq = next,
        "publishing committed commands to the events topic"
    );
    let mut follower = LedgerFollower::new(ctx.reader.clone(), Arc::clone(&ctx.publisher), next);
    let mut stalled = Stall::new(ctx.stats.acknowledged_seq.load(Ordering::Relaxed));
    loop {
        stalled.check(
            ctx.stats.acknowledged_seq.load(Ordering::Relaxed),
            producer.in_flight_count(),
        );
        if ctx.stop.load(Ordering::SeqCst) {
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
            return Err(anyhow!("the events producer failed: {why}"));
        }
        let Some(batch) = follower
            .recv_timeout(Duration::from_millis(100))
            .context("cannot follow the ledger")?
        else {
            // A batch the engine applied before the follower subscribed is not
            // published to it, and the follower notices only at the next
            // publication, which may never come (an idle engine). Follow afresh
            // (subscribe, then read the ledger) when the ledger is ahead.
            let head = ctx.reader.head().context("cannot read the ledger's head")?;
            if head.last_cmd_seq >= follower.next_seq() {
                let next = follower.next_seq();
                follower =
                    LedgerFollower::new(ctx.reader.clone(), Arc::clone(&ctx.publisher), next);
            }
            continue;
        };
        for c in batch.iter() {
            let value = EventsMessage::encode(c);
            let key = EventsMessage::key(c);
            let mut record =
                BaseRecord::<str, [u8], usize>::with_opaque_to(topic, c.cmd_seq as usize)
                    .partition(partition)
                    .key(key.as_str())
                    .payload(value.as_slice());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, back))
                        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                    {
                        // The broker is slow or away: wait for room, never drop.
                        if ctx.stop.load(Ordering::SeqCst) || failed.load(Ordering::SeqCst) {
                            return if failed.load(Ordering::SeqCst) {
                                Err(anyhow!("the events producer failed"))
                            } else {
                                Ok(())
                            };
                        }
                        std::thread::sleep(Duration::from_millis(10));
                        record = back;
                    }
                    Err((e, _)) => {
                        return Err(anyhow!(
                            "cannot queue cmd_seq {} for the events topic: {e}",
                            c.cmd_seq
                        ));
                    }
                }
            }
        }
    }
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
            request_id: env.and_then(|e| e.request_id),
            payload: payload.to_vec(),
            events,
        }
    }

    #[test]
    fn messages_round_trip_every_payload_exactly() {
        let payloads: [&[u8]; 5] = [
            br#"{"v":1,"ts_ns":5,"request_id":"r\"1\u00e9","command":{"type":"create_account","account":7}}"#,
            b"{not json \x01\x1f \\ \"",
            &[0xff, 0x00, 0xfe, b'"'],
            b"",
            "caf\u{e9} \u{1F600}".as_bytes(),
        ];
        for p in payloads {
            let c = committed(p);
            let bytes = EventsMessage::encode(&c);
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

    #[test]
    fn the_key_is_the_market_named_or_exchange() {
        let c = committed(br#"{"v":1,"ts_ns":5,"command":{"type":"create_account","account":7}}"#);
        assert_eq!(EventsMessage::key(&c), EXCHANGE_KEY);
        let c = committed(
            br#"{"v":1,"ts_ns":5,"command":{"type":"add_capacity","account":7,"market":"h100-sxm.us-east","quantity":"1"}}"#,
        );
        assert_eq!(EventsMessage::key(&c), "h100-sxm.us-east");
        assert_eq!(EventsMessage::key(&committed(b"\xff")), EXCHANGE_KEY);
    }

    #[test]
    fn decoding_refuses_what_is_not_a_message() {
        for bad in [
            &b""[..],
            b"{}",
            br#"{"v":2,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"command":"","events":[]}"#,
            br#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"events":[]}"#,
            br#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"command":"","command_hex":"00","events":[]}"#,
        ] {
            assert!(EventsMessage::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let odd = br#"{"v":1,"cmd_seq":1,"ts_ns":1,"first_event_seq":1,"request_id":null,"command_hex":"0g","events":[]}"#;
        assert!(EventsMessage::decode(odd)
            .unwrap()
            .into_committed()
            .is_err());
    }
}
