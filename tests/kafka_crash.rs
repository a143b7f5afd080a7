//! Crash safety of Kafka mode with real processes: two producer threads write
//! commands to the commands topic of a real broker (tansu) while `gpux engine` is
//! killed with SIGKILL at seeded random moments (sometimes before it is even
//! ready) and restarted, again and again, until everything is consumed. Then:
//! - the ledger holds every topic offset exactly once, in offset order, with the
//!   exact payload;
//! - each producer's commands are on the topic in the order it submitted them;
//! - the state equals that of a crash-free engine applying the topic in order;
//! - `gpux replay verify` passes;
//! - the events topic holds every `cmd_seq` exactly once, in order, and its feed
//!   yields what the ledger holds.

mod support;

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gpux_sequencer::kafka::KafkaConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::broker::Broker;
use support::EngineProcess;

const PRODUCERS: u64 = 2;
const ORDERS_PER_PRODUCER: usize = 6_000;
const ACCOUNTS_PER_PRODUCER: u64 = 20;
const KILLS: usize = 14;
/// Frequent snapshots and small batches: restarts go through snapshot + replay,
/// and kills land between many commits. No clock: the topic must hold exactly the
/// producers' commands, counted below (ticks are tested in `kafka_clock`).
const ENGINE_ARGS: &[&str] = &[
    "--snapshot-every",
    "3000",
    "--max-batch",
    "300",
    "--clock-tick-ms",
    "0",
];

/// A producer thread per `per_producer` entry: each writes the first half of its
/// commands at once and returns when told to go on, then writes the second half in
/// bursts (100 commands every 0.5 s); each returns how many were acknowledged.
/// Returns once every first half is written, with the go-on sender.
fn start_producers(
    cfg: &KafkaConfig,
    per_producer: &[Vec<Vec<u8>>],
) -> (Vec<JoinHandle<u64>>, mpsc::Sender<()>) {
    let (first_half_done, first_halves) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(Mutex::new(go_rx));
    let producers: Vec<_> = per_producer
        .iter()
        .cloned()
        .map(|cmds| {
            let (cfg, done, go) = (cfg.clone(), first_half_done.clone(), go_rx.clone());
            std::thread::spawn(move || {
                let (first, second) = cmds.split_at(cmds.len() / 2);
                let mut acked = support::produce(&cfg, first, 1_000, Duration::ZERO);
                done.send(()).unwrap();
                let _ = go.lock().unwrap().recv();
                acked += support::produce(&cfg, second, 100, Duration::from_millis(500));
                acked
            })
        })
        .collect();
    for _ in 0..PRODUCERS {
        first_halves.recv().unwrap();
    }
    (producers, go_tx)
}

/// `KILLS` lives of `gpux engine`, each killed with SIGKILL at a seeded random
/// moment, sometimes while recovering; halfway, the producers are told to go on.
/// Returns the `cmd_seq` each life that got ready resumed at.
fn kill_at_random_moments(dir: &Path, cfg: &KafkaConfig, go: &mpsc::Sender<()>) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut resumed_at = Vec::new();
    for life in 0..KILLS {
        if life == KILLS / 2 {
            for _ in 0..PRODUCERS {
                go.send(()).unwrap();
            }
        }
        let mut engine = EngineProcess::spawn(dir, cfg, ENGINE_ARGS);
        if rng.random_ratio(1, 6) {
            // Killed while recovering.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        } else {
            resumed_at.push(engine.wait_ready());
            let ms = if life < KILLS / 2 {
                rng.random_range(50..1_500)
            } else {
                rng.random_range(20..1_500)
            };
            std::thread::sleep(Duration::from_millis(ms));
        }
        engine.kill9();
    }
    resumed_at
}

/// The topic holds each producer's commands once each, in its submission order.
fn assert_each_producer_in_order(
    records: &[(u64, Option<Vec<u8>>)],
    per_producer: &[Vec<Vec<u8>>],
) {
    for (k, cmds) in per_producer.iter().enumerate() {
        let prefix = format!(r#""request_id":"p{k}-"#);
        let on_topic: Vec<&[u8]> = records
            .iter()
            .filter_map(|(_, v)| v.as_deref())
            .filter(|v| String::from_utf8_lossy(v).contains(&prefix))
            .collect();
        assert_eq!(
            on_topic.len(),
            cmds.len(),
            "producer {k}: each command once"
        );
        assert!(
            on_topic.iter().zip(cmds).all(|(a, b)| *a == b.as_slice()),
            "producer {k}: in submission order"
        );
    }
}

#[test]
fn killed_at_random_moments_the_kafka_engine_applies_each_record_exactly_once() {
    let broker = Broker::start();
    broker.create_topics(&["cmds", "events"]);
    let cfg = broker.config("cmds", "events");
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("ledger");

    support::produce(&cfg, &[support::list_market()], 1, Duration::ZERO);
    let per_producer: Vec<Vec<Vec<u8>>> = (0..PRODUCERS)
        .map(|k| support::producer_commands(k, ACCOUNTS_PER_PRODUCER, ORDERS_PER_PRODUCER, 40 + k))
        .collect();
    let total = 1 + per_producer.iter().map(Vec::len).sum::<usize>() as u64;
    // Each producer writes half its commands before the first engine starts, so
    // the first lives are killed while catching up on a backlog; the other half
    // later, in bursts, so later lives are killed idle, between bursts or in the
    // middle of one.
    let (producers, go) = start_producers(&cfg, &per_producer);
    let mut resumed_at = kill_at_random_moments(&dir, &cfg, &go);
    for (p, cmds) in producers.into_iter().zip(&per_producer) {
        assert_eq!(p.join().expect("a producer thread"), cmds.len() as u64);
    }

    let mut engine = EngineProcess::spawn(&dir, &cfg, ENGINE_ARGS);
    resumed_at.push(engine.wait_ready());
    support::wait_events(&cfg, total);
    let stopped_at = engine.terminate();
    assert_eq!(stopped_at, total);
    eprintln!("engine lives resumed at cmd_seq {resumed_at:?} of {total}");
    assert!(
        resumed_at.iter().any(|&s| s > 0 && s < total),
        "at least one kill must interrupt consumption: resumed at {resumed_at:?} of {total}"
    );

    // The topic: every command once, each producer's in its submission order.
    let records = support::read_topic(&cfg, "cmds");
    assert_eq!(records.len() as u64, total);
    assert_each_producer_in_order(&records, &per_producer);

    support::assert_ledger_holds_topic(&dir, "cmds", &records);
    assert_eq!(support::assert_state_is_crash_free(&dir, &records), total);
    support::assert_replay_verify(&dir);
    assert_eq!(
        support::assert_events_topic_matches_ledger(&dir, &cfg),
        total
    );
}
