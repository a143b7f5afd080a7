//! Hot standby: two `gpux engine` processes consume the same commands partition of
//! a real broker into two ledgers, while two producers write (and poison records
//! arrive, and the active engine is killed once and restarted). The two ledgers
//! must hold byte-identical command and event records: `gpux replay diff` finds
//! no divergence, and every stored record is compared byte for byte. The standby
//! publishes to its own events topic, so it never duplicates the active's. The
//! engines' clocks are off, so the ledgers hold exactly the producers' commands
//! (`kafka_clock` runs a standby behind a ticking engine).

mod support;

use std::process::Command;
use std::time::Duration;

use gpux_ledger::Ledger;
use support::broker::Broker;
use support::EngineProcess;

const ORDERS_PER_PRODUCER: usize = 3_000;

#[test]
fn two_engines_on_one_partition_write_identical_ledgers() {
    let broker = Broker::start();
    broker.create_topics(&["cmds", "events", "events-standby"]);
    let active_cfg = broker.config("cmds", "events");
    let standby_cfg = broker.config("cmds", "events-standby");
    let data = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (data.path().join("active"), data.path().join("standby"));

    support::produce(&active_cfg, &[support::list_market()], 1, Duration::ZERO);
    let mut active = EngineProcess::spawn(
        &dir_a,
        &active_cfg,
        &["--max-batch", "500", "--clock-tick-ms", "0"],
    );
    let mut standby = EngineProcess::spawn(
        &dir_b,
        &standby_cfg,
        &["--max-batch", "97", "--clock-tick-ms", "0"],
    );
    active.wait_ready();
    standby.wait_ready();

    let producers: Vec<_> = (0..2)
        .map(|k| {
            let cfg = active_cfg.clone();
            std::thread::spawn(move || {
                let mut cmds = support::producer_commands(k, 10, ORDERS_PER_PRODUCER, 70 + k);
                // Poison among them: both engines must record it identically.
                cmds.insert(100, b"{not json".to_vec());
                cmds.insert(200, vec![0xff, 0x00, 0xfe]);
                support::produce(&cfg, &cmds, 250, Duration::from_millis(100))
            })
        })
        .collect();
    // Killed mid-stream: once it has committed and published some of the
    // producers' commands (a condition, not a guess at how long that takes).
    support::wait_events(&active_cfg, 100);
    active.kill9();
    let mut active = EngineProcess::spawn(
        &dir_a,
        &active_cfg,
        &["--max-batch", "500", "--clock-tick-ms", "0"],
    );
    active.wait_ready();
    let total = 1 + producers
        .into_iter()
        .map(|p| p.join().expect("a producer"))
        .sum::<u64>();

    support::wait_events(&active_cfg, total);
    support::wait_events(&standby_cfg, total);
    assert_eq!(active.terminate(), total);
    assert_eq!(standby.terminate(), total);

    let diff = Command::new(support::gpux_bin())
        .args(["replay", "diff"])
        .arg(&dir_a)
        .arg(&dir_b)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.status.success(), "replay diff: {report}");
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("JSON");
    assert_eq!(report["identical"], true, "{report}");

    let a = Ledger::open_read_only(&dir_a).unwrap();
    let b = Ledger::open_read_only(&dir_b).unwrap();
    assert_eq!(a.head().last_cmd_seq, total);
    assert_eq!(b.head().last_cmd_seq, total);
    support::assert_same_records(&a, &b);
    drop((a, b));
    support::assert_events_topic_matches_ledger(&dir_a, &active_cfg);
    support::assert_events_topic_matches_ledger(&dir_b, &standby_cfg);
}
