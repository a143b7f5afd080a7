//! Broker loss: the broker process (tansu) is killed while the engine runs and
//! commands are being submitted, then started again on the same port with the
//! same storage. The engine keeps its state and never fails, commands submitted
//! during the outage are delivered when the broker is back, and in the end the
//! ledger holds every record of the commands topic exactly once, in order, the
//! events topic holds every `cmd_seq` exactly once, in order, and the state is the
//! crash-free one.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpux_sequencer::kafka::{self, KafkaConfig, KafkaSubmitter};
use gpux_sequencer::{Exchange, PipelineOptions, SubmitError, Submitter};
use support::broker::Broker;
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
            "cmd_seq {cmd_seq} never became durable (at {})",
            stats.durable_seq.load(Ordering::Acquire)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Submits `payloads` through a new producer without waiting for them; returns
/// the producer, the count of acknowledged submissions and the failed ones.
fn submit_without_waiting(
    cfg: &KafkaConfig,
    payloads: &[Vec<u8>],
) -> (KafkaSubmitter, Arc<AtomicU64>, Arc<Mutex<Vec<SubmitError>>>) {
    let submitter = KafkaSubmitter::new(cfg).unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let failed: Arc<Mutex<Vec<SubmitError>>> = Arc::default();
    for p in payloads {
        let (acked, failed) = (Arc::clone(&acked), Arc::clone(&failed));
        submitter.submit(
            p.clone(),
            Box::new(move |r| match r {
                Ok(()) => {
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => failed.lock().unwrap().push(e),
            }),
        );
    }
    (submitter, acked, failed)
}

#[test]
fn the_engine_rides_out_a_broker_restart_without_loss_or_duplicates() {
    support::init_logging();
    let mut broker = Broker::start();
    broker.create_topics(&["cmds", "events"]);
    let cfg = broker.config("cmds", "events");
    let dir = tempfile::tempdir().unwrap();
    let cmds = support::producer_commands(0, 10, 3_000, 5);
    let (before, rest) = cmds.split_at(1_500);
    let (during, after) = rest.split_at(300);

    let exchange = kafka::start_exchange(dir.path(), PipelineOptions::default(), &cfg).unwrap();
    support::produce(&cfg, &[support::list_market()], 1, Duration::ZERO);
    support::produce(&cfg, before, 500, Duration::ZERO);
    let n1 = 1 + before.len() as u64;
    wait_durable(&exchange, n1);
    support::wait_events(&cfg, n1);

    // The broker dies. Commands submitted now wait in the producer's queue.
    broker.kill();
    let (submitter, acked, failed) = submit_without_waiting(&cfg, during);
    // The engine waits without failing (and without applying anything new).
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        assert!(exchange.failure().is_none(), "{:?}", exchange.failure());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(exchange.stats().durable_seq.load(Ordering::Acquire), n1);
    assert_eq!(
        acked.load(Ordering::SeqCst),
        0,
        "nothing acknowledged while the broker is down"
    );

    broker.restart();
    submitter
        .flush(PATIENCE)
        .expect("the outage's commands are delivered");
    assert!(
        failed.lock().unwrap().is_empty(),
        "{:?}",
        failed.lock().unwrap()
    );
    assert_eq!(acked.load(Ordering::SeqCst), during.len() as u64);
    support::produce(&cfg, after, 500, Duration::ZERO);
    let total = 1 + cmds.len() as u64;
    wait_durable(&exchange, total);
    support::wait_events(&cfg, total);
    assert!(exchange.failure().is_none(), "{:?}", exchange.failure());
    exchange.shutdown().expect("clean shutdown");

    let records = support::read_topic(&cfg, "cmds");
    assert_eq!(
        records.len() as u64,
        total,
        "the topic holds each command once"
    );
    support::assert_ledger_holds_topic(dir.path(), "cmds", &records);
    support::assert_state_is_crash_free(dir.path(), &records);
    support::assert_replay_verify(dir.path());
    support::assert_events_topic_matches_ledger(dir.path(), &cfg);
}
