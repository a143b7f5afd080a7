//! Batch records (many command envelopes in one Kafka record) on a real broker
//! (tansu) with real `gpux engine` processes:
//! - a batch is applied command by command, each stored with its exact bytes and
//!   its position `(offset, index)`, in topic order, mixed with one-command records;
//! - records that only look like batches (empty, another protocol version) are one
//!   `malformed_command` each, and a bad element of a batch is one of its own;
//! - an engine whose ledger ends in the middle of a batch record goes on with the
//!   next command of that record (the ledger's prefix is written here, so where it
//!   ends is chosen, not left to timing);
//! - killed with SIGKILL at seeded moments while a backlog of batches is consumed
//!   in small engine batches (which end inside records), it applies every command
//!   exactly once: the ledger holds exactly the expected commands, the state is a
//!   crash-free run's, `gpux replay verify` passes and the events topic holds every
//!   `cmd_seq` once.

mod support;

use std::path::Path;
use std::time::Duration;

use gpux_engine::{CommandEnvelope, Engine, Event};
use gpux_ledger::{AppliedCommand, Ledger, LedgerOptions, Source};
use gpux_sequencer::kafka::{batch, KafkaConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::broker::Broker;
use support::EngineProcess;

/// Small engine batches, so commits end inside batch records.
const ENGINE_ARGS: &[&str] = &[
    "--snapshot-every",
    "1500",
    "--max-batch",
    "37",
    "--clock-tick-ms",
    "0",
];

/// One command as the ledger must hold it: its position and exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    offset: u64,
    index: Option<u32>,
    payload: Vec<u8>,
}

/// Records of `commands` in seeded groups: mostly batches of 1 to 60 commands,
/// some commands alone in their record. `first_offset` is the offset the first
/// record will get. Returns the records and the commands the ledger must hold.
fn records_of(
    commands: &[Vec<u8>],
    first_offset: u64,
    rng: &mut ChaCha8Rng,
) -> (Vec<Vec<u8>>, Vec<Expected>) {
    let (mut records, mut expected) = (Vec::new(), Vec::new());
    let mut rest = commands;
    while !rest.is_empty() {
        let offset = first_offset + records.len() as u64;
        if rng.random_ratio(1, 5) {
            let (one, tail) = rest.split_at(1);
            records.push(one[0].clone());
            expected.push(Expected {
                offset,
                index: None,
                payload: one[0].clone(),
            });
            rest = tail;
        } else {
            let n = rng.random_range(1..=60).min(rest.len());
            let (group, tail) = rest.split_at(n);
            records.push(batch::encode(group));
            expected.extend(group.iter().zip(0u32..).map(|(c, index)| Expected {
                offset,
                index: Some(index),
                payload: c.clone(),
            }));
            rest = tail;
        }
    }
    (records, expected)
}

/// Records that are not what they seem, appended at `offset`: an empty batch and
/// a batch of another protocol version (each one command, rejected), and a batch
/// whose middle element is not a command (three commands, the middle rejected).
fn odd_records(offset: u64, a: &[u8], b: &[u8]) -> (Vec<Vec<u8>>, Vec<Expected>) {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let empty = br#"{"v":3,"batch":[]}"#.to_vec();
    let old = format!(r#"{{"v":2,"batch":[{a}]}}"#).into_bytes();
    let mixed = format!(r#"{{"v":3,"batch":[{a},{{"v":3}},{b}]}}"#).into_bytes();
    let one = |i: u64, payload: &[u8]| Expected {
        offset: offset + i,
        index: None,
        payload: payload.to_vec(),
    };
    let at = |index: u32, payload: &str| Expected {
        offset: offset + 2,
        index: Some(index),
        payload: payload.as_bytes().to_vec(),
    };
    let expected = vec![
        one(0, &empty),
        one(1, &old),
        at(0, &a),
        at(1, r#"{"v":3}"#),
        at(2, &b),
    ];
    (vec![empty, old, mixed], expected)
}

/// Writes the ledger the pipeline would have written for `commands` (applied by
/// the engine in order, as the sequencer applies them), in appends of 50.
fn write_ledger_prefix(dir: &Path, topic: &str, commands: &[Expected]) {
    let mut ledger = Ledger::open(dir, &LedgerOptions::default()).expect("a new ledger");
    let mut engine: Engine = Engine::new();
    let mut events: Vec<Event> = Vec::new();
    let mut applied = Vec::new();
    for c in commands {
        let seq = engine.last_seq() + 1;
        events.clear();
        let ts_ns = support::apply_next(&mut engine, &c.payload, &mut events);
        applied.push(AppliedCommand {
            cmd_seq: seq,
            ts_ns,
            source: source(topic, c),
            payload: c.payload.clone(),
            events: events.iter().map(Event::to_bytes).collect(),
        });
    }
    for part in applied.chunks(50) {
        ledger.append(part).expect("append");
    }
}

fn source(topic: &str, c: &Expected) -> Source {
    Source::Kafka {
        topic: topic.to_owned(),
        partition: 0,
        offset: c.offset,
        index: c.index,
    }
}

/// Produces `records` in order, 5 at a time with `pause` between.
fn produce(cfg: &KafkaConfig, records: &[Vec<u8>], pause: Duration) {
    assert_eq!(
        support::produce(cfg, records, 5, pause),
        records.len() as u64
    );
}

#[test]
fn batch_records_are_applied_command_by_command_exactly_once() {
    let broker = Broker::start();
    broker.create_topics(&["cmds", "events"]);
    let cfg = broker.config("cmds", "events");
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("ledger");
    let mut rng = ChaCha8Rng::seed_from_u64(15);

    // The first part of the topic: the market, the odd records, batches.
    let flow = support::producer_commands(0, 12, 6_000, 3);
    let (first_flow, second_flow) = flow.split_at(flow.len() / 3);
    let (mut records, mut expected) = first_part(first_flow, &mut rng);
    produce(&cfg, &records, Duration::ZERO);

    // The ledger ends at the third command of a batch record of at least five.
    let k = expected
        .windows(5)
        .position(|w| w[0].index == Some(0) && w[4].offset == w[0].offset)
        .expect("a batch of five or more")
        + 3;
    write_ledger_prefix(&dir, "cmds", &expected[..k]);
    let mut engine = EngineProcess::spawn(&dir, &cfg, ENGINE_ARGS);
    assert_eq!(engine.wait_ready(), k as u64, "resumed after the prefix");
    support::wait_events(&cfg, expected.len() as u64);
    assert_eq!(engine.terminate(), expected.len() as u64);
    assert_ledger_holds(&dir, &expected);

    // More batches, produced in bursts while engines are killed at seeded
    // moments.
    let (r, e) = records_of(second_flow, records.len() as u64, &mut rng);
    let producer = {
        let (cfg, r) = (cfg.clone(), r.clone());
        std::thread::spawn(move || produce(&cfg, &r, Duration::from_millis(150)))
    };
    records.extend(r);
    expected.extend(e);
    let mut resumed_at = Vec::new();
    for _ in 0..6 {
        let mut engine = EngineProcess::spawn(&dir, &cfg, ENGINE_ARGS);
        resumed_at.push(engine.wait_ready());
        std::thread::sleep(Duration::from_millis(rng.random_range(50..700)));
        engine.kill9();
    }
    producer.join().expect("the producer thread");
    let mut engine = EngineProcess::spawn(&dir, &cfg, ENGINE_ARGS);
    resumed_at.push(engine.wait_ready());
    let total = expected.len() as u64;
    support::wait_events(&cfg, total);
    assert_eq!(engine.terminate(), total);
    let inside = resumed_at
        .iter()
        .filter(|&&s| {
            let s = s as usize;
            s > 0 && s < expected.len() && expected[s - 1].offset == expected[s].offset
        })
        .count();
    eprintln!("lives resumed at cmd_seq {resumed_at:?} of {total}; {inside} inside a batch record");

    assert_ledger_holds(&dir, &expected);
    assert_crash_free(&dir, &cfg, &expected);
}

/// The first records of the topic from offset 0 — the market alone, the odd
/// records, then `flow` (after its first two commands, which the odd records use)
/// in seeded batches — and the commands the ledger must hold for them.
fn first_part(flow: &[Vec<u8>], rng: &mut ChaCha8Rng) -> (Vec<Vec<u8>>, Vec<Expected>) {
    let mut records = vec![support::list_market()];
    let mut expected = vec![Expected {
        offset: 0,
        index: None,
        payload: records[0].clone(),
    }];
    let (odd, odd_expected) = odd_records(1, &flow[0], &flow[1]);
    records.extend(odd);
    expected.extend(odd_expected);
    let (r, e) = records_of(&flow[2..], records.len() as u64, rng);
    records.extend(r);
    expected.extend(e);
    (records, expected)
}

/// The state rebuilt from the ledger in `dir` is a crash-free engine's after
/// `expected`, `gpux replay verify` passes, and the events topic holds every
/// `cmd_seq` once.
fn assert_crash_free(dir: &Path, cfg: &KafkaConfig, expected: &[Expected]) {
    let total = expected.len() as u64;
    let ledger = Ledger::open_read_only(dir).expect("the ledger opens");
    let rebuilt = gpux_replay::rebuild::state_at(&ledger.reader(), None, None).unwrap();
    drop(ledger);
    let reference = support::reference_engine(expected.iter().map(|c| c.payload.as_slice()));
    assert_eq!(rebuilt.state_hash(), reference.state_hash());
    assert_eq!(rebuilt.last_seq(), total);
    support::assert_replay_verify(dir);
    assert_eq!(support::assert_events_topic_matches_ledger(dir, cfg), total);
}

/// The ledger in `dir` holds exactly `expected` as commands 1, 2, …, and the
/// rejected ones (empty and old-version batches, the bad element) are rejected as
/// `malformed_command`.
fn assert_ledger_holds(dir: &Path, expected: &[Expected]) {
    let ledger = Ledger::open_read_only(dir).expect("the ledger opens and verifies");
    assert_eq!(ledger.head().last_cmd_seq, expected.len() as u64);
    let mut malformed = 0;
    for (rec, want) in ledger.commands(1).unwrap().zip(expected) {
        let rec = rec.unwrap();
        assert_eq!(rec.source, source("cmds", want), "cmd_seq {}", rec.cmd_seq);
        assert_eq!(rec.payload, want.payload, "cmd_seq {}", rec.cmd_seq);
        if CommandEnvelope::from_json(&want.payload).is_err() {
            let events: Vec<Vec<u8>> = ledger
                .events_of_command(rec.cmd_seq)
                .unwrap()
                .into_iter()
                .map(|e| e.payload)
                .collect();
            assert_eq!(events.len(), 1, "cmd_seq {}", rec.cmd_seq);
            let e = serde_json::to_value(Event::from_bytes(&events[0]).unwrap()).unwrap();
            assert_eq!(e["type"], "command_rejected", "{e}");
            assert_eq!(e["reason"], "malformed_command", "{e}");
            malformed += 1;
        }
    }
    assert_eq!(
        malformed, 3,
        "the empty batch, the old one, the bad element"
    );
}
