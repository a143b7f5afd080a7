//! Fault injection with librdkafka's mock cluster, in addition to the real-broker
//! tests: the broker goes down and comes back, fetches and produce requests fail
//! with retriable errors and dropped connections. The pipeline never fails, the
//! submitter's commands queued during the outage are delivered, and in the end
//! the ledger holds each record once, in order, and the events topic matches it.
//! The mock cluster, like any broker that does not check idempotent sequence
//! numbers, appends a retried produce request again: the events topic may then hold
//! exact repeats, which feeds pass over.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gpux_sequencer::kafka::rdkafka::mocking::MockCluster;
use gpux_sequencer::kafka::rdkafka::producer::DefaultProducerContext;
use gpux_sequencer::kafka::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use gpux_sequencer::kafka::{self, EventsTopicFeed, KafkaConfig};
use gpux_sequencer::{Exchange, Feed, FeedError, PipelineOptions};
use support::PATIENCE;

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

/// A one-broker mock cluster with the commands and events topics, and the
/// configuration that uses them.
fn mock_cluster() -> (MockCluster<'static, DefaultProducerContext>, KafkaConfig) {
    let mock = MockCluster::new(1).expect("a mock cluster");
    mock.create_topic("cmds", 1, 1).unwrap();
    mock.create_topic("events", 1, 1).unwrap();
    let cfg = KafkaConfig {
        commands_topic: "cmds".into(),
        events_topic: "events".into(),
        ..KafkaConfig::new(mock.bootstrap_servers())
    };
    (mock, cfg)
}

#[test]
fn injected_broker_faults_neither_stop_the_engine_nor_lose_or_repeat_commands() {
    support::init_logging();
    let (mock, cfg) = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let cmds = support::producer_commands(0, 5, 1_200, 9);
    let parts: Vec<&[Vec<u8>]> = cmds.chunks(cmds.len() / 4 + 1).collect();

    let exchange = kafka::start_exchange(dir.path(), PipelineOptions::default(), &cfg).unwrap();
    support::produce(&cfg, &[support::list_market()], 1, Duration::ZERO);
    support::produce(&cfg, parts[0], 100, Duration::ZERO);
    let mut done = 1 + parts[0].len() as u64;
    wait_durable(&exchange, done);

    // Retriable errors on fetches and produce requests, and dropped connections.
    let transient = [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
    ];
    mock.request_errors(RDKafkaApiKey::Fetch, &transient);
    mock.request_errors(RDKafkaApiKey::Produce, &transient);
    support::produce(&cfg, parts[1], 100, Duration::ZERO);
    done += parts[1].len() as u64;
    wait_durable(&exchange, done);

    // The broker goes away while commands are submitted, and comes back.
    mock.broker_down(1).unwrap();
    let producer = {
        let cfg = cfg.clone();
        let part = parts[2].to_vec();
        std::thread::spawn(move || support::produce(&cfg, &part, 100, Duration::ZERO))
    };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        assert!(exchange.failure().is_none(), "{:?}", exchange.failure());
        std::thread::sleep(Duration::from_millis(100));
    }
    mock.broker_up(1).unwrap();
    assert_eq!(producer.join().unwrap(), parts[2].len() as u64);
    support::produce(&cfg, parts[3], 100, Duration::ZERO);
    done += (parts[2].len() + parts[3].len()) as u64;
    assert_eq!(done, 1 + cmds.len() as u64);
    wait_durable(&exchange, done);
    support::wait_events(&cfg, done);
    assert!(exchange.failure().is_none(), "{:?}", exchange.failure());
    exchange.shutdown().unwrap();

    let records = support::read_topic(&cfg, "cmds");
    assert_eq!(records.len() as u64, done);
    support::assert_ledger_holds_topic(dir.path(), "cmds", &records);
    support::assert_events_topic_matches_ledger(dir.path(), &cfg);
}

/// Exact repeats on the events topic (a retried request appended twice) are passed
/// over: a feed from the start, and one from the middle of the repeats, yield each
/// command once. A message at an earlier place with other bytes is no repeat: it
/// stops a feed with an error that says so.
#[test]
fn repeated_events_messages_are_passed_over_and_conflicting_ones_refused() {
    support::init_logging();
    // The cluster lives to the end of the test.
    let (_mock, cfg) = mock_cluster();
    // Writes raw messages to the events topic.
    let to_events = KafkaConfig {
        commands_topic: cfg.events_topic.clone(),
        ..cfg.clone()
    };
    let dir = tempfile::tempdir().unwrap();
    let cmds = support::producer_commands(0, 3, 300, 5);
    let (first, second) = cmds.split_at(cmds.len() / 2);

    let exchange = kafka::start_exchange(dir.path(), PipelineOptions::default(), &cfg).unwrap();
    support::produce(&cfg, &[support::list_market()], 1, Duration::ZERO);
    support::produce(&cfg, first, 100, Duration::ZERO);
    let mut done = 1 + first.len() as u64;
    wait_durable(&exchange, done);
    support::wait_events(&cfg, done);
    // The last 40 messages again, as a retried produce request appends them.
    const RUN: usize = 40;
    let events = support::read_topic(&cfg, "events");
    let run: Vec<Vec<u8>> = events[events.len() - RUN..]
        .iter()
        .map(|(_, v)| v.clone().expect("a value"))
        .collect();
    assert_eq!(
        support::produce(&to_events, &run, 100, Duration::ZERO),
        RUN as u64
    );
    support::produce(&cfg, second, 100, Duration::ZERO);
    done += second.len() as u64;
    wait_durable(&exchange, done);
    support::wait_events(&cfg, done);
    exchange.shutdown().unwrap();

    let (compared, repeats) = support::events_topic_against_ledger(dir.path(), &cfg);
    assert_eq!((compared, repeats), (done, RUN as u64));
    // From a command inside the repeated run: each command once, in order.
    let from = done - second.len() as u64 - 10;
    let mut feed = EventsTopicFeed::new(&cfg, from, Duration::from_secs(30)).unwrap();
    let mut seqs = Vec::new();
    let t0 = Instant::now();
    while seqs.last() != Some(&done) {
        if let Some(b) = feed.recv_timeout(Duration::from_millis(500)).unwrap() {
            seqs.extend(b.iter().map(|c| c.cmd_seq));
        }
        assert!(t0.elapsed() < PATIENCE, "the feed yielded {seqs:?}");
    }
    assert_eq!(seqs, (from..=done).collect::<Vec<_>>());

    // The first message again, with another timestamp.
    let mut forged: serde_json::Value = serde_json::from_slice(&run[0]).unwrap();
    let forged_seq = forged["cmd_seq"].as_u64().unwrap();
    forged["ts_ns"] = (forged["ts_ns"].as_u64().unwrap() + 1).into();
    let forged = serde_json::to_vec(&forged).unwrap();
    assert_eq!(
        support::produce(&to_events, &[forged], 1, Duration::ZERO),
        1
    );
    let mut feed = EventsTopicFeed::new(&cfg, 1, Duration::from_secs(30)).unwrap();
    let mut last = 0;
    let why = loop {
        match feed.recv_timeout(Duration::from_millis(500)) {
            Ok(Some(b)) => last = b.last().unwrap().cmd_seq,
            Ok(None) => assert!(t0.elapsed() < PATIENCE, "no error after cmd_seq {last}"),
            Err(FeedError::Stopped(why)) => break why,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(last, done, "every command before the forged message");
    assert!(
        why.contains(&format!(
            "cmd_seq {forged_seq} part 0 comes again and differs"
        )),
        "{why}"
    );
}
