//! Time in Kafka mode, on a real broker: an idle `gpux engine` produces ticks to
//! the commands topic, so a GTD order expires with nobody sending anything; a hot
//! standby (`--no-events`, which never ticks) consumes the active engine's ticks
//! like any command and writes a byte-identical ledger, also after the active
//! stopped (it waits for its last tick to be consumed); the events topic carries
//! the ticks (commands without events) and its feed yields what the ledger holds.

mod support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gpux_engine::{CancelReason, Command as EngineCommand, CommandEnvelope, Event};
use gpux_ledger::Ledger;
use gpux_sequencer::kafka::EventsTopicFeed;
use gpux_sequencer::{CommittedCommand, Feed};
use support::broker::Broker;
use support::{EngineProcess, PATIENCE};

const MARKET: &str = "h100-sxm.us-east";

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn is_tick(payload: &[u8]) -> bool {
    CommandEnvelope::from_json(payload).is_ok_and(|e| matches!(e.command, EngineCommand::Tick(_)))
}

fn expired(c: &CommittedCommand) -> bool {
    c.events
        .iter()
        .any(|e| matches!(e, Event::OrderCancelled(o) if o.reason == CancelReason::Expired))
}

/// Reads the events topic from cmd_seq 1 until a command expires an order.
fn follow_until_expiry(feed: &mut dyn Feed) -> Vec<CommittedCommand> {
    let t0 = Instant::now();
    let mut seen: Vec<CommittedCommand> = Vec::new();
    while !seen.iter().any(expired) {
        assert!(
            t0.elapsed() < PATIENCE,
            "no expiry; seen {} commands",
            seen.len()
        );
        if let Ok(Some(b)) = feed.recv_timeout(Duration::from_millis(200)) {
            seen.extend(b.iter().cloned());
        }
    }
    seen
}

/// Waits until the ledger in `dir` (written by another process) holds `cmd_seq`.
fn wait_ledger(dir: &std::path::Path, cmd_seq: u64) {
    let t0 = Instant::now();
    loop {
        let head = Ledger::open_read_only(dir).map_or(0, |l| l.head().last_cmd_seq);
        if head >= cmd_seq {
            return;
        }
        assert!(
            t0.elapsed() < PATIENCE,
            "{} stays at cmd_seq {head}, not {cmd_seq}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A market, an account with USD, and its GTD bid due 1.5 s from now (by the
/// clock the engine stamps ticks with); and that due time.
fn gtd_bid_commands() -> (Vec<Vec<u8>>, u64) {
    let t = now_ns();
    let good_till = t + 1_500_000_000;
    let commands = [
        format!(r#"{{"type":"list_market","market":"{MARKET}","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":0}}"#),
        r#"{"type":"create_account","account":1}"#.to_owned(),
        r#"{"type":"deposit","account":1,"amount":"10"}"#.to_owned(),
        // A slot at least an hour ahead, whatever the wall clock.
        format!(r#"{{"type":"place_order","account":1,"market":"{MARKET}","slot":{},"side":"buy","price":"2.00","quantity":"1","time_in_force":"gtd","good_till_ns":{good_till}}}"#, (t / 1_000_000_000 / 3_600 + 2) * 3_600),
    ]
    .iter()
    .enumerate()
    .map(|(i, c)| format!(r#"{{"v":3,"ts_ns":{t},"request_id":"r{i}","command":{c}}}"#).into_bytes())
    .collect();
    (commands, good_till)
}

#[test]
fn an_idle_kafka_engine_ticks_and_a_standby_writes_the_same_ledger() {
    let broker = Broker::start();
    broker.create_topics(&["cmds", "events"]);
    let cfg = broker.config("cmds", "events");
    let data = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (data.path().join("active"), data.path().join("standby"));

    let mut active = EngineProcess::spawn(&dir_a, &cfg, &["--clock-tick-ms", "200"]);
    let mut standby = EngineProcess::spawn(&dir_b, &cfg, &["--no-events"]);
    active.wait_ready();
    standby.wait_ready();

    let (commands, good_till) = gtd_bid_commands();
    assert_eq!(support::produce(&cfg, &commands, 10, Duration::ZERO), 4);

    // Nothing else is produced: the expiry is carried by the engine's tick.
    let mut feed = EventsTopicFeed::new(&cfg, 1, Duration::from_secs(30)).unwrap();
    let seen = follow_until_expiry(&mut feed);
    let at = seen.iter().find(|c| expired(c)).unwrap();
    assert!(
        is_tick(&at.payload),
        "expired by {}",
        String::from_utf8_lossy(&at.payload)
    );
    assert!(at.ts_ns > good_till);
    let ticks_before = seen.iter().filter(|c| c.events.is_empty()).count();
    assert!(
        ticks_before > 0,
        "ticks without events reach the events topic"
    );
    assert!(seen
        .iter()
        .all(|c| c.request_id.is_some() || is_tick(&c.payload)));

    // Stopping, the active waits for its last tick to come back from the topic:
    // it leaves none of its ticks unapplied, and nothing else writes to the topic.
    let total = active.terminate();
    let records = support::read_topic(&cfg, "cmds");
    assert_eq!(
        records.len() as u64,
        total,
        "the active applied all its ticks"
    );
    wait_ledger(&dir_b, total);
    assert_eq!(standby.terminate(), total);

    let ticks = records
        .iter()
        .filter(|(_, p)| p.as_deref().is_some_and(is_tick))
        .count();
    assert_eq!(
        ticks as u64,
        total - 4,
        "the topic: the 4 commands and ticks"
    );
    support::assert_ledger_holds_topic(&dir_a, "cmds", &records);
    support::assert_ledger_holds_topic(&dir_b, "cmds", &records);
    let diff = Command::new(support::gpux_bin())
        .args(["replay", "diff"])
        .arg(&dir_a)
        .arg(&dir_b)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.status.success(), "replay diff: {report}");
    let (a, b) = (
        Ledger::open_read_only(&dir_a).unwrap(),
        Ledger::open_read_only(&dir_b).unwrap(),
    );
    support::assert_same_records(&a, &b);
    drop((a, b));
    assert_eq!(
        support::assert_events_topic_matches_ledger(&dir_a, &cfg),
        total
    );
    support::assert_replay_verify(&dir_a);
}
