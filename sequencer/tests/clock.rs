//! The exchange's clock on the real pipeline: an idle embedded exchange sequences
//! ticks through its own log, so a GTD order expires with nobody trading, and
//! every part downstream of the ledger takes a command without events (the
//! committed feed, the events-topic encoding, recovery, the audit tools). With a
//! submitter and a source of its own, the clock never piles ticks up: it waits for
//! its last tick to be sequenced, and tries again after a refused one; stopping,
//! the exchange waits for the clock's last tick, so a clean stop leaves none behind.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gpux_engine::{CancelReason, Command, CommandEnvelope, Event};
use gpux_ledger::{Ledger, LedgerOptions, MemStore, Position, Source, SourceKey};
use gpux_replay::export::{ExportOptions, Format, What};
use gpux_replay::Progress;
use gpux_sequencer::kafka::EventsMessage;
use gpux_sequencer::{
    CommandSource, CommittedCommand, Exchange, Feed, Inbound, PipelineOptions, SourceError,
    SubmitDone, SubmitError, Submitter,
};

const MARKET: &str = "h100-sxm.us-east";
const DEADLINE: Duration = Duration::from_secs(60);

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn env(ts_ns: u64, request_id: &str, command: &str) -> Vec<u8> {
    format!(r#"{{"v":3,"ts_ns":{ts_ns},"request_id":"{request_id}","command":{command}}}"#)
        .into_bytes()
}

/// Submits one command and waits until it is durable in the log.
fn submit_wait(s: &dyn Submitter, payload: Vec<u8>) {
    let (tx, rx) = mpsc::channel();
    s.submit(payload, Box::new(move |r| tx.send(r).unwrap()));
    rx.recv_timeout(Duration::from_secs(30))
        .expect("durable in time")
        .expect("durable");
}

fn is_tick(c: &CommittedCommand) -> bool {
    CommandEnvelope::from_json(&c.payload)
        .is_ok_and(|e| e.command == Command::Tick(Default::default()))
}

fn expired(c: &CommittedCommand) -> bool {
    c.events
        .iter()
        .any(|e| matches!(e, Event::OrderCancelled(o) if o.reason == CancelReason::Expired))
}

/// Reads the feed until a command satisfies `done`; returns everything read.
fn follow_until(
    feed: &mut dyn Feed,
    done: impl Fn(&CommittedCommand) -> bool,
) -> Vec<CommittedCommand> {
    let deadline = Instant::now() + DEADLINE;
    let mut out: Vec<CommittedCommand> = Vec::new();
    while !out.iter().any(&done) {
        assert!(
            Instant::now() < deadline,
            "not seen in time; the feed has {} commands",
            out.len()
        );
        if let Some(b) = feed.recv_timeout(Duration::from_millis(100)).unwrap() {
            out.extend(b.iter().cloned());
        }
    }
    out
}

#[test]
fn an_idle_exchange_expires_a_gtd_order_from_ticks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PipelineOptions {
        clock_tick: Some(Duration::from_millis(50)),
        ..PipelineOptions::default()
    };
    let exchange = Exchange::start_embedded(dir.path(), opts).unwrap();
    let s = exchange.submitter().unwrap();
    let mut feed = exchange.follow(1);
    let t = now_ns();
    let good_till = t + 300_000_000;
    for (rid, cmd) in [
        (
            "list",
            format!(
                r#"{{"type":"list_market","market":"{MARKET}","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":0}}"#
            ),
        ),
        (
            "open",
            r#"{"type":"create_account","account":1}"#.to_owned(),
        ),
        (
            "usd",
            r#"{"type":"deposit","account":1,"amount":"10"}"#.to_owned(),
        ),
        (
            "bid",
            format!(
                r#"{{"type":"place_order","account":1,"market":"{MARKET}","slot":{},"side":"buy","price":"2.00","quantity":"1","time_in_force":"gtd","good_till_ns":{good_till}}}"#,
                // A slot that trades for at least the next hour.
                (t / 1_000_000_000 / 3_600 + 2) * 3_600
            ),
        ),
    ] {
        submit_wait(s.as_ref(), env(t, rid, &cmd));
    }

    // Nothing else is submitted: the expiry comes from a tick the exchange sequenced.
    let got = follow_until(&mut feed, expired);
    let at = got.iter().find(|c| expired(c)).unwrap();
    assert!(
        is_tick(at),
        "expired by {:?}",
        String::from_utf8_lossy(&at.payload)
    );
    assert_eq!(at.request_id, None);
    assert!(at.ts_ns > good_till);
    let submitted: Vec<&str> = got.iter().filter_map(|c| c.request_id.as_deref()).collect();
    assert_eq!(submitted, ["list", "open", "usd", "bid"]);
    assert!(got.iter().all(|c| c.request_id.is_some() || is_tick(c)));
    let ticks: Vec<&CommittedCommand> = got.iter().filter(|c| is_tick(c)).collect();
    assert!(
        ticks.iter().any(|c| c.events.is_empty()),
        "a tick before the expiry"
    );

    downstream_takes_commands_without_events(&got, &exchange);

    drop((feed, s));
    let engine = exchange.shutdown().unwrap();
    assert!(engine.last_seq() >= got.len() as u64);
    // Every command the log took, the clock's ticks included, was applied: the
    // log's positions ran with the cmd_seqs to the last one.
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    assert_eq!(
        ledger
            .reader()
            .consumed_offset(&SourceKey::Embedded)
            .unwrap(),
        Some(engine.last_seq())
    );
    drop(ledger);
    audit_tools_take_ticks(dir.path(), engine.last_seq());

    // A restart recovers through the ticks to the same state.
    let again = Exchange::start_embedded(dir.path(), PipelineOptions::default()).unwrap();
    assert_eq!(again.replica().unwrap().state_hash(), engine.state_hash());
    again.shutdown().unwrap();
}

/// Commands without events, downstream of the ledger: dense event numbers, the
/// ledger's reading equals the feed, the events-topic messages round-trip.
fn downstream_takes_commands_without_events(got: &[CommittedCommand], exchange: &Exchange) {
    for w in got.windows(2) {
        assert_eq!(w[1].cmd_seq, w[0].cmd_seq + 1);
        assert_eq!(
            w[1].first_event_seq,
            w[0].first_event_seq + w[0].events.len() as u64
        );
    }
    let from_ledger = gpux_sequencer::read_committed(&exchange.reader(), 1, got.len()).unwrap();
    assert_eq!(from_ledger, got);
    for c in got {
        let mut parts = EventsMessage::encode(c);
        assert_eq!(parts.len(), 1);
        let back = EventsMessage::decode(&parts.remove(0))
            .unwrap()
            .into_committed()
            .unwrap();
        assert_eq!(&back, c);
    }
}

/// verify, export, statement and diff on a ledger holding ticks.
fn audit_tools_take_ticks(dir: &std::path::Path, last_seq: u64) {
    let hidden = Progress::hidden();
    let verified = gpux_replay::verify::verify_ledger(dir, &hidden)
        .unwrap()
        .expect("the ledger verifies");
    assert_eq!(verified.last_seq, last_seq);
    let mut out = Vec::new();
    let opts = ExportOptions {
        what: What::Commands,
        format: Format::Jsonl,
        from: None,
        to: None,
    };
    assert!(gpux_replay::export::run(dir, &opts, &hidden, &mut out)
        .unwrap()
        .is_success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, last_seq);
    assert!(lines
        .iter()
        .any(|l| l["event_count"] == 0 && l["command"]["command"]["type"] == "tick"));
    let mut out = Vec::new();
    let statement = gpux_replay::statement::run(dir, 1, &hidden, &mut out).unwrap();
    assert!(statement.is_success(), "{}", String::from_utf8_lossy(&out));
    let mut out = Vec::new();
    assert!(gpux_replay::diff::run(dir, dir, &hidden, &mut out)
        .unwrap()
        .is_success());
}

/// A log the test feeds by hand.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<VecDeque<Vec<u8>>>>);

struct HandSource {
    log: Log,
    next: u64,
}

impl CommandSource for HandSource {
    fn key(&self) -> SourceKey {
        SourceKey::Embedded
    }

    fn start_after(&mut self, last: Option<Position>) -> Result<(), SourceError> {
        self.next = last.map_or(0, |p| p.offset) + 1;
        Ok(())
    }

    fn poll(
        &mut self,
        out: &mut Vec<Inbound>,
        max: usize,
        timeout: Duration,
    ) -> Result<(), SourceError> {
        let mut log = self.log.0.lock().unwrap_or_else(PoisonError::into_inner);
        while out.len() < max {
            let Some(payload) = log.pop_front() else {
                break;
            };
            out.push(Inbound {
                source: Source::Embedded { seq: self.next },
                payload,
            });
            self.next += 1;
        }
        drop(log);
        if out.is_empty() {
            std::thread::park_timeout(timeout.min(Duration::from_millis(10)));
        }
        Ok(())
    }
}

/// Hands every submission to the test, which decides its fate.
struct HandSubmitter(Mutex<mpsc::Sender<(Vec<u8>, SubmitDone)>>);

impl Submitter for HandSubmitter {
    fn submit(&self, payload: Vec<u8>, done: SubmitDone) {
        let _ = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send((payload, done));
    }
}

#[test]
fn the_clock_waits_for_its_last_tick_and_retries_a_refused_one() {
    let ledger = Ledger::with_store(MemStore::new(), &LedgerOptions::default()).unwrap();
    let log = Log::default();
    let (tx, submissions) = mpsc::channel();
    let every = Duration::from_millis(20);
    let opts = PipelineOptions {
        clock_tick: Some(every),
        ..PipelineOptions::default()
    };
    let exchange = Exchange::start_on_ledger(
        ledger,
        opts,
        Box::new(HandSource {
            log: log.clone(),
            next: 1,
        }),
        Some(Arc::new(HandSubmitter(Mutex::new(tx)))),
    )
    .unwrap();
    let next = || submissions.recv_timeout(DEADLINE).expect("a tick in time");

    // Refused: the clock tries again.
    let (first, done) = next();
    let tick = CommandEnvelope::from_json(&first).unwrap();
    assert_eq!(tick.command, Command::Tick(Default::default()));
    assert_eq!((tick.request_id, tick.idempotent), (None, false));
    done(Err(SubmitError::Overloaded));
    // Accepted but not yet in the log: no second tick meanwhile, however long.
    let (second, done) = next();
    done(Ok(()));
    assert!(
        submissions.recv_timeout(every * 10).is_err(),
        "a tick while the last one was not sequenced"
    );
    // Once it is sequenced, time goes on.
    log.0.lock().unwrap().push_back(second);
    let (third, done) = next();
    assert!(CommandEnvelope::from_json(&third).unwrap().ts_ns >= tick.ts_ns);
    done(Ok(()));
    // Stopping, the exchange waits for its last tick, in the log as it stops.
    log.0.lock().unwrap().push_back(third);
    let engine = exchange.shutdown().unwrap();
    assert_eq!(engine.last_seq(), 2, "both ticks that reached the log");
    assert!(submissions.try_recv().is_err(), "no tick after shutdown");
}
