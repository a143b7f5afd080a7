//! Fault injection with librdkafka's mock cluster, in addition to the real-broker
//! tests: the broker goes down and comes back, fetches and produce requests fail
//! with retriable errors and dropped connections. The pipeline never fails, the
//! submitter's commands queued during the outage are delivered, and in the end
//! the ledger holds each record once, in order, and the events topic matches it.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gpux_sequencer::kafka::rdkafka::mocking::MockCluster;
use gpux_sequencer::kafka::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use gpux_sequencer::kafka::{self, KafkaConfig};
use gpux_sequencer::{Exchange, PipelineOptions};
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

#[test]
fn injected_broker_faults_neither_stop_the_engine_nor_lose_or_repeat_commands() {
    support::init_logging();
    let mock = MockCluster::new(1).expect("a mock cluster");
    mock.create_topic("cmds", 1, 1).unwrap();
    mock.create_topic("events", 1, 1).unwrap();
    let cfg = KafkaConfig {
        commands_topic: "cmds".into(),
        events_topic: "events".into(),
        ..KafkaConfig::new(mock.bootstrap_servers())
    };
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
