//! Poison messages on the commands topic (invalid JSON, an unknown command type, an
//! unknown field, an oversized payload, non-UTF-8 bytes, an empty value, a
//! tombstone, a record far beyond the log's limit) are each recorded in the ledger
//! with their offset, as a `malformed_command` rejection; the commands around them
//! apply; the engine never stops; the events topic carries them all (non-UTF-8 as
//! `command_hex`); a restart resumes after the last one. Against a real broker.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gpux_engine::{Event, RejectReason};
use gpux_ledger::{Ledger, Source};
use gpux_sequencer::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use gpux_sequencer::kafka::{self, KafkaConfig};
use gpux_sequencer::{Exchange, PipelineOptions, MAX_COMMAND_BYTES};
use support::broker::Broker;
use support::PATIENCE;

/// A record of the test: what it is, its value (`None`: a tombstone), and whether
/// the engine must refuse it as malformed.
type Record = (&'static str, Option<Vec<u8>>, bool);

/// The records, in the order they are produced.
fn records() -> Vec<Record> {
    let env =
        |ts: u64, cmd: &str| format!(r#"{{"v":3,"ts_ns":{ts},"command":{cmd}}}"#).into_bytes();
    let mut oversized = env(7, r#"{"type":"deposit","account":1,"amount":"5"}"#);
    oversized.extend(std::iter::repeat_n(b' ', 5_000)); // valid JSON, too long
    vec![
        ("list market", Some(support::list_market()), false),
        (
            "create account 1",
            Some(env(2, r#"{"type":"create_account","account":1}"#)),
            false,
        ),
        ("invalid JSON", Some(br#"{"v":3,"ts_ns":3,"#.to_vec()), true),
        (
            "unknown command type",
            Some(env(4, r#"{"type":"launch_rocket","account":1}"#)),
            true,
        ),
        (
            "unknown field",
            Some(env(5, r#"{"type":"deposit","account":1,"amonut":"5"}"#)),
            true,
        ),
        ("oversized", Some(oversized), true),
        (
            "non-UTF-8",
            Some(vec![0xff, 0xfe, 0x00, 0x80, b'{', 0xc3]),
            true,
        ),
        ("empty value", Some(Vec::new()), true),
        ("tombstone", None, true),
        ("far too large", Some(vec![b'x'; 100_000]), true),
        (
            "deposit",
            Some(env(11, r#"{"type":"deposit","account":1,"amount":"100"}"#)),
            false,
        ),
        (
            "create account 2",
            Some(env(12, r#"{"type":"create_account","account":2}"#)),
            false,
        ),
    ]
}

fn produce_raw(cfg: &KafkaConfig, values: &[Option<Vec<u8>>]) {
    let producer: BaseProducer = cfg
        .client_config(
            "test-raw-producer",
            &[],
            &[("enable.idempotence", "true"), ("acks", "all")],
        )
        .create()
        .expect("a producer");
    for v in values {
        let mut r = BaseRecord::<(), [u8]>::to(&cfg.commands_topic).partition(0);
        if let Some(v) = v {
            r = r.payload(v.as_slice());
        }
        producer.send(r).map_err(|(e, _)| e).expect("queued");
    }
    producer.flush(PATIENCE).expect("acknowledged");
}

fn wait_durable(exchange: &Exchange, cmd_seq: u64) {
    let stats = exchange.stats();
    let t0 = Instant::now();
    while stats.durable_seq.load(Ordering::Acquire) < cmd_seq {
        assert!(
            exchange.failure().is_none(),
            "the pipeline must not stop: {:?}",
            exchange.failure()
        );
        assert!(
            t0.elapsed() < PATIENCE,
            "cmd_seq {cmd_seq} never became durable"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Command `i + 1` is record `i`: from its offset, with its payload as read (cut at
/// the log's limit), refused as malformed if and only if it should be.
fn assert_each_record_recorded(ledger: &Ledger, records: &[Record]) {
    for (i, (what, value, malformed)) in records.iter().enumerate() {
        let cmd_seq = i as u64 + 1;
        let rec = ledger.command(cmd_seq).unwrap().expect("recorded");
        assert_eq!(
            rec.source,
            Source::Kafka {
                topic: "cmds".into(),
                partition: 0,
                offset: i as u64,
                index: None,
            },
            "{what}"
        );
        let value = value.clone().unwrap_or_default();
        let kept = &value[..value.len().min(MAX_COMMAND_BYTES)];
        assert_eq!(
            rec.payload, kept,
            "{what}: the payload as read (cut at the log's limit)"
        );
        let events: Vec<Event> = ledger
            .events_of_command(cmd_seq)
            .unwrap()
            .iter()
            .map(|e| Event::from_bytes(&e.payload).unwrap())
            .collect();
        if *malformed {
            assert!(
                matches!(&events[..], [Event::CommandRejected(r)] if r.reason == RejectReason::MalformedCommand),
                "{what}: {events:?}"
            );
        } else {
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, Event::CommandRejected(_) | Event::OrderRejected(_))),
                "{what} applies: {events:?}"
            );
        }
    }
}

#[test]
fn poison_messages_are_recorded_as_rejections_and_the_engine_goes_on() {
    support::init_logging();
    let broker = Broker::start();
    broker.create_topics(&["cmds", "events"]);
    let cfg = broker.config("cmds", "events");
    let dir = tempfile::tempdir().unwrap();
    let records = records();
    let n = records.len() as u64;

    let exchange =
        kafka::start_exchange(dir.path(), PipelineOptions::default(), &cfg).expect("starts");
    produce_raw(
        &cfg,
        &records.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
    );
    wait_durable(&exchange, n);
    support::wait_events(&cfg, n);
    assert!(exchange.failure().is_none(), "{:?}", exchange.failure());
    exchange.shutdown().expect("clean shutdown");

    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    assert_eq!(ledger.head().last_cmd_seq, n);
    assert_each_record_recorded(&ledger, &records);
    let deposited = ledger.events_of_command(11).unwrap();
    let deposited = Event::from_bytes(&deposited[0].payload)
        .unwrap()
        .to_json_vec();
    assert!(String::from_utf8_lossy(&deposited).contains(r#""available":"100.000000""#));
    drop(ledger);

    support::assert_events_topic_matches_ledger(dir.path(), &cfg);
    support::assert_replay_verify(dir.path());

    // A restart resumes after the last offset: nothing is applied twice.
    let exchange =
        kafka::start_exchange(dir.path(), PipelineOptions::default(), &cfg).expect("restarts");
    produce_raw(
        &cfg,
        &[Some(
            br#"{"v":3,"ts_ns":13,"command":{"type":"create_account","account":3}}"#.to_vec(),
        )],
    );
    wait_durable(&exchange, n + 1);
    support::wait_events(&cfg, n + 1);
    exchange.shutdown().unwrap();
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    assert_eq!(ledger.head().last_cmd_seq, n + 1);
    assert_eq!(ledger.command(n + 1).unwrap().unwrap().source.offset(), n);
    drop(ledger);
    support::assert_events_topic_matches_ledger(dir.path(), &cfg);
}
