//! `diff`: ledgers written from the same commands are identical; the first
//! command that differs — payload, timestamp, or length — is named.

use gpux_replay::diff;
use gpux_replay::{FailureKind, Progress};
use serde_json::{json, Value};

use crate::common::{capture, json_of, scenario, write_ledger, Cmd, WriteOpts};

fn run_diff(a: &std::path::Path, b: &std::path::Path) -> (gpux_replay::Outcome, Value) {
    let (outcome, out) = capture(|o| diff::run(a, b, &Progress::hidden(), o));
    (outcome, json_of(&out))
}

fn two_dirs() -> (tempfile::TempDir, tempfile::TempDir) {
    (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap())
}

#[test]
fn ledgers_written_from_the_same_commands_are_identical() {
    let cmds = scenario(31, 250);
    let (a, b) = two_dirs();
    let wa = write_ledger(a.path(), &cmds, WriteOpts::default());
    write_ledger(b.path(), &cmds, WriteOpts::default());
    let (outcome, v) = run_diff(a.path(), b.path());
    assert!(outcome.is_success(), "{v}");
    assert_eq!(v["identical"], true);
    assert!(v.get("first_divergence").is_none());
    assert_eq!(v["commands_compared"], wa.last_seq());
    assert_eq!(v["events_compared"], wa.event_count());
    assert_eq!(v["same_chain_head"], true);
    assert_eq!(v["a"]["chain_head"], wa.chain_head.as_str());
    assert_eq!(v["b"]["chain_head"], wa.chain_head.as_str());
}

#[test]
fn different_batching_is_identical_content_under_another_chain_head() {
    let cmds = scenario(32, 150);
    let (a, b) = two_dirs();
    write_ledger(a.path(), &cmds, WriteOpts::default());
    write_ledger(
        b.path(),
        &cmds,
        WriteOpts {
            batch: 7,
            ..WriteOpts::default()
        },
    );
    let (outcome, v) = run_diff(a.path(), b.path());
    assert!(outcome.is_success(), "{v}");
    assert_eq!(v["identical"], true);
    assert_eq!(v["same_chain_head"], false);
}

#[test]
fn one_different_command_is_the_first_divergence() {
    let cmds = scenario(33, 250);
    let k = 140usize;
    let mut other = cmds.clone();
    other[k - 1] = Cmd {
        ts_ns: cmds[k - 1].ts_ns,
        payload: serde_json::to_vec(&json!({"v":3,"ts_ns":cmds[k - 1].ts_ns,"command":{"type":"deposit","account":3,"amount":"12.5"}})).unwrap(),
    };
    let (a, b) = two_dirs();
    write_ledger(a.path(), &cmds, WriteOpts::default());
    write_ledger(b.path(), &other, WriteOpts::default());
    let (outcome, v) = run_diff(a.path(), b.path());
    let f = outcome.failure().expect("diverges");
    assert_eq!(f.error, FailureKind::Diverged);
    assert_eq!(f.cmd_seq, Some(k as u64));
    assert_eq!(v["identical"], false);
    assert_eq!(v["first_divergence"]["cmd_seq"], k);
    assert_eq!(v["first_divergence"]["what"], "payload");
    assert_eq!(v["first_divergence"]["b"]["command"]["amount"], "12.5");
    assert_eq!(v["commands_compared"], k - 1);
    assert_ne!(v["a"]["chain_head"], v["b"]["chain_head"]);
}

#[test]
fn a_different_timestamp_is_named() {
    let cmds = scenario(34, 100);
    let mut other = cmds.clone();
    for c in other.iter_mut().skip(59) {
        c.ts_ns += 1;
    }
    let (a, b) = two_dirs();
    write_ledger(a.path(), &cmds, WriteOpts::default());
    write_ledger(b.path(), &other, WriteOpts::default());
    let (_, v) = run_diff(a.path(), b.path());
    assert_eq!(v["first_divergence"]["cmd_seq"], 60);
    assert_eq!(v["first_divergence"]["what"], "ts_ns");
}

#[test]
fn a_ledger_that_ends_earlier_diverges_where_it_ends() {
    let cmds = scenario(35, 120);
    let (a, b) = two_dirs();
    let wa = write_ledger(a.path(), &cmds, WriteOpts::default());
    write_ledger(b.path(), &cmds[..90], WriteOpts::default());
    let (outcome, v) = run_diff(a.path(), b.path());
    assert_eq!(outcome.failure().unwrap().cmd_seq, Some(91));
    assert_eq!(v["first_divergence"]["cmd_seq"], 91);
    assert_eq!(v["first_divergence"]["what"], "b_ends");
    let (_, v) = run_diff(b.path(), a.path());
    assert_eq!(v["first_divergence"]["what"], "a_ends");
    assert_eq!(v["a"]["last_cmd_seq"], 90);
    assert_eq!(v["b"]["last_cmd_seq"], wa.last_seq());
}
