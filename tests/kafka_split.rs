//! A command whose events are too many for one events-topic message (a mass cancel
//! of 9,000 orders, about 1.3 MB of events) is published as consecutive parts and
//! joined again by the feed; and a publisher that stopped in the middle of those
//! parts continues with the next part, so the topic holds each part once, in
//! order. Against a real broker (tansu).

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gpux_ledger::Ledger;
use gpux_sequencer::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use gpux_sequencer::kafka::{self, EventsMessage, KafkaConfig};
use gpux_sequencer::{read_committed, Exchange, PipelineOptions};
use support::broker::Broker;
use support::PATIENCE;

const ORDERS: usize = 9_000;

fn commands() -> Vec<Vec<u8>> {
    let env =
        |ts: usize, cmd: String| format!(r#"{{"v":3,"ts_ns":{ts},"command":{cmd}}}"#).into_bytes();
    let mut out = vec![
        support::list_market(),
        env(2, r#"{"type":"create_account","account":1}"#.into()),
        env(
            3,
            r#"{"type":"deposit","account":1,"amount":"10000000"}"#.into(),
        ),
    ];
    for i in 0..ORDERS {
        out.push(env(
            4 + i,
            format!(
                r#"{{"type":"place_order","account":1,"market":"h100-sxm.us-east","slot":{},"side":"buy","price":"{}.{:03}","quantity":"1","client_order_id":"c-{i}"}}"#,
                gpux::bench::workload::slot(0),
                1 + i / 1000,
                i % 1000
            ),
        ));
    }
    out.push(env(19_000, r#"{"type":"mass_cancel","account":1}"#.into()));
    out.push(env(
        19_001,
        r#"{"type":"create_account","account":2}"#.into(),
    ));
    out
}

fn wait_durable(exchange: &Exchange, cmd_seq: u64) {
    let stats = exchange.stats();
    let t0 = Instant::now();
    while stats.durable_seq.load(Ordering::Acquire) < cmd_seq {
        assert!(exchange.failure().is_none(), "{:?}", exchange.failure());
        assert!(
            t0.elapsed() < PATIENCE,
            "cmd_seq {cmd_seq} never became durable"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn publish_raw(cfg: &KafkaConfig, values: &[Vec<u8>]) {
    let producer: BaseProducer = cfg
        .client_config(
            "test-raw-events",
            &[],
            &[("enable.idempotence", "true"), ("acks", "all")],
        )
        .create()
        .unwrap();
    for v in values {
        producer
            .send(
                BaseRecord::<(), [u8]>::to(&cfg.events_topic)
                    .partition(0)
                    .payload(v.as_slice()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(PATIENCE).unwrap();
}

#[test]
fn a_command_too_large_for_one_message_is_published_in_parts_and_resumed_mid_way() {
    support::init_logging();
    let broker = Broker::start();
    broker.create_topics(&["cmds", "events"]);
    let cfg = broker.config("cmds", "events");
    let dir = tempfile::tempdir().unwrap();
    let cmds = commands();
    let total = cmds.len() as u64;
    let mass_cancel = total - 1;

    // The engine alone (no publisher) commits everything.
    let exchange = kafka::start_engine(dir.path(), PipelineOptions::default(), &cfg).unwrap();
    support::produce(&cfg, &cmds, 1_000, Duration::ZERO);
    wait_durable(&exchange, total);
    exchange.shutdown().unwrap();

    // A publisher "crashed" after the first two parts of the mass cancel.
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    let committed = read_committed(&ledger.reader(), 1, total as usize).unwrap();
    drop(ledger);
    let parts = EventsMessage::encode(&committed[mass_cancel as usize - 1]);
    assert!(
        parts.len() >= 3,
        "the mass cancel needs several messages: {}",
        parts.len()
    );
    let mut already: Vec<Vec<u8>> = committed[..mass_cancel as usize - 1]
        .iter()
        .map(|c| EventsMessage::encode(c).remove(0))
        .collect();
    already.extend(parts[..2].iter().cloned());
    publish_raw(&cfg, &already);

    // The real publisher continues with part 2.
    let exchange = kafka::start_exchange(dir.path(), PipelineOptions::default(), &cfg).unwrap();
    support::wait_events(&cfg, total);
    exchange.shutdown().unwrap();
    assert_eq!(
        support::assert_events_topic_matches_ledger(dir.path(), &cfg),
        total
    );
    let on_topic = support::read_topic(&cfg, "events").len() as u64;
    assert_eq!(on_topic, total - 1 + parts.len() as u64);
}
