//! `verify`: a good ledger passes with the right numbers; every kind of damage is
//! named by its sequence number.

use gpux_engine::Engine;
use gpux_ledger::{Cf, Ledger};
use gpux_replay::{verify, FailureKind, Outcome, Progress};
use serde_json::Value;

use crate::common::{
    capture, envelope, event_json, json_of, ledger_opts, raw, raw_edit_event, raw_get, raw_put,
    reseal, scenario, standard, stored_event, write_ledger, write_ledger_with, WriteOpts,
};

fn run_verify(dir: &std::path::Path) -> (Outcome, Value) {
    let (outcome, out) = capture(|w| verify::run(dir, &Progress::hidden(), w));
    (outcome, json_of(&out))
}

#[test]
fn a_good_ledger_verifies_and_the_summary_counts_what_was_written() {
    let (dir, w) = standard();
    let (outcome, v) = run_verify(dir.path());
    assert_eq!(outcome, Outcome::Success, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["commands"], w.last_seq());
    assert_eq!(v["events"], w.event_count());
    assert_eq!(v["last_seq"], w.last_seq());
    assert_eq!(v["last_event_seq"], w.event_count());
    assert_eq!(v["batches"], w.batches);
    assert_eq!(v["chain_head"], w.chain_head.as_str());
    assert_eq!(v["state_hash"], w.hashes.last().unwrap().to_string());
    assert_eq!(v["snapshots_checked"], w.snapshots.len() as u64);
    assert!(
        w.snapshots.len() >= 3,
        "the scenario takes several snapshots"
    );
    assert_eq!(v["head_snapshot_checked"], true);
    assert_eq!(v["inbox_entries"], w.last_seq());
    assert!(!w.trades.is_empty());
}

#[test]
fn an_empty_ledger_verifies() {
    let dir = tempfile::tempdir().unwrap();
    drop(Ledger::open(dir.path(), &ledger_opts()).unwrap());
    let (outcome, v) = run_verify(dir.path());
    assert!(outcome.is_success(), "{v}");
    assert_eq!(v["commands"], 0);
    assert_eq!(
        v["state_hash"],
        Engine::<gpux_engine::Book>::new().state_hash().to_string()
    );
}

#[test]
fn a_flipped_byte_in_a_stored_event_is_named_by_its_event_seq_and_command() {
    let (dir, w) = standard();
    let t = &w.trades[w.trades.len() / 2];
    raw(dir.path(), |db| {
        raw_edit_event(db, t.event_seq, false, |v| {
            let at = v.len() / 2;
            v[at] ^= 0x20;
        });
    });
    let (outcome, v) = run_verify(dir.path());
    let f = outcome.failure().expect("tampering is detected");
    assert_eq!(f.error, FailureKind::ChecksumMismatch, "{v}");
    assert_eq!(f.event_seq, Some(t.event_seq));
    assert_eq!(
        f.cmd_seq,
        Some(t.cmd_seq),
        "the command is located from the batch"
    );
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "checksum_mismatch");
    assert_eq!(v["event_seq"], t.event_seq);
    assert_eq!(v["cmd_seq"], t.cmd_seq);
    assert_eq!(v["column_family"], "events");
}

/// Re-encodes an event record around a new payload (layout in
/// docs/LEDGER_FORMAT.md: version, kind, event_seq, cmd_seq, bytes32 payload, crc).
fn forge_event(record: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = record[..18].to_vec();
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.extend_from_slice(&[0; 4]);
    reseal(&mut v);
    v
}

#[test]
fn a_resealed_forged_event_breaks_the_chain_and_the_rerun_names_the_event() {
    let (dir, w) = standard();
    let t = &w.trades[w.trades.len() / 3];
    let mut forged = t.trade;
    forged.taker_fee = rust_decimal::Decimal::ZERO;
    forged.maker_fee = rust_decimal::Decimal::new(123, 2);
    let payload = gpux_engine::Event::TradeExecuted(forged).to_bytes();
    raw(dir.path(), |db| {
        raw_edit_event(db, t.event_seq, true, |v| *v = forge_event(v, &payload));
    });
    let (outcome, v) = run_verify(dir.path());
    let f = outcome.failure().expect("forgery is detected");
    assert_eq!(f.error, FailureKind::BrokenChain, "{v}");
    assert!(f.batch_no.is_some());
    // The chain names the batch; re-running it names the event.
    assert_eq!(f.cmd_seq, Some(t.cmd_seq), "{v}");
    assert_eq!(f.event_seq, Some(t.event_seq), "{v}");
    assert_eq!(v["found"]["maker_fee"], "1.23");
    assert_eq!(v["expected"]["maker_fee"], t.trade.maker_fee.to_string());
}

#[test]
fn an_intact_ledger_whose_events_differ_from_the_engine_fails_the_rerun() {
    let cmds = scenario(11, 300);
    let dir = tempfile::tempdir().unwrap();
    let mut target = None;
    let w = write_ledger_with(
        dir.path(),
        &cmds,
        WriteOpts::default(),
        |cmd_seq, events| {
            // The first command after 100 that traded: store a different (valid) event.
            if target.is_none()
                && cmd_seq > 100
                && events
                    .iter()
                    .any(|e| event_json(e).starts_with(br#"{"type":"trade_executed""#))
            {
                let i = events
                    .iter()
                    .position(|e| event_json(e).starts_with(br#"{"type":"trade_executed""#))
                    .unwrap();
                let mut t: Value = serde_json::from_slice(&event_json(&events[i])).unwrap();
                t["taker_fee"] = "0.000000".into();
                events[i] = stored_event(&serde_json::to_vec(&t).unwrap());
                target = Some((cmd_seq, i));
            }
        },
    );
    let (cmd_seq, i) = target.expect("a command traded");
    let first_event = 1 + w.events[..cmd_seq as usize - 1]
        .iter()
        .map(Vec::len)
        .sum::<usize>() as u64;
    let (outcome, v) = run_verify(dir.path());
    let f = outcome.failure().expect("the re-run catches it");
    assert_eq!(f.error, FailureKind::EventMismatch, "{v}");
    assert_eq!(f.cmd_seq, Some(cmd_seq));
    assert_eq!(f.event_seq, Some(first_event + i as u64));
    assert_eq!(v["error"], "event_mismatch");
    assert_eq!(v["found"]["taker_fee"], "0.000000");
    assert_eq!(v["expected"]["type"], "trade_executed");
    assert_ne!(v["expected"]["taker_fee"], "0.000000");
}

#[test]
fn a_stored_command_missing_an_event_is_an_event_count_mismatch() {
    let cmds = scenario(12, 200);
    let dir = tempfile::tempdir().unwrap();
    let mut dropped = None;
    write_ledger_with(
        dir.path(),
        &cmds,
        WriteOpts::default(),
        |cmd_seq, events| {
            // Every command produces at least one event (a rejection, if nothing else).
            if cmd_seq == 150 {
                dropped = events.pop();
            }
        },
    );
    assert!(dropped.is_some());
    let (outcome, v) = run_verify(dir.path());
    let f = outcome.failure().expect("caught");
    assert_eq!(f.error, FailureKind::EventCountMismatch, "{v}");
    assert_eq!(f.cmd_seq, Some(150));
}

#[test]
fn a_snapshot_of_another_state_is_a_snapshot_mismatch() {
    let cmds = scenario(13, 300);
    let dir = tempfile::tempdir().unwrap();
    let w = write_ledger_with(
        dir.path(),
        &cmds,
        WriteOpts {
            snapshot_on_close: false,
            ..WriteOpts::default()
        },
        |_, _| {},
    );
    // An engine at cmd_seq 120 whose command 120 was a different one.
    let mut other: Engine = crate::common::direct_engine(&cmds, 119);
    let deposit = br#"{"v":3,"ts_ns":1,"command":{"type":"deposit","account":2,"amount":"1"}}"#;
    other.apply_json(120, cmds[119].ts_ns, deposit, &mut Vec::new());
    {
        let mut l = Ledger::open(dir.path(), &ledger_opts()).unwrap();
        l.put_snapshot(120, &other.snapshot()).unwrap();
    }
    let (outcome, v) = run_verify(dir.path());
    let f = outcome.failure().expect("caught");
    assert_eq!(f.error, FailureKind::SnapshotMismatch, "{v}");
    assert_eq!(f.cmd_seq, Some(120));
    assert_eq!(v["found"], other.state_hash().to_string());
    assert_eq!(v["expected"], w.hashes[120].to_string());
}

#[test]
fn a_corrupt_snapshot_record_is_named_by_its_cmd_seq() {
    let (dir, w) = standard();
    let s = w.snapshots[1];
    raw(dir.path(), |db| {
        let mut v = raw_get(db, Cf::Snapshots, s);
        let at = v.len() - 10;
        v[at] ^= 0xff;
        raw_put(db, Cf::Snapshots, s, &v);
    });
    let (outcome, v) = run_verify(dir.path());
    let f = outcome.failure().expect("caught");
    assert_eq!(f.error, FailureKind::CorruptSnapshot, "{v}");
    assert_eq!(f.cmd_seq, Some(s));
}

#[test]
fn a_directory_that_is_not_a_ledger_is_an_error_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let mut out = Vec::new();
    let r = verify::run(&missing, &Progress::hidden(), &mut out);
    assert!(r.is_err(), "{r:?}");
    assert!(out.is_empty());
}

/// Accounts' API keys (added, refused, revoked) replay like every command: the
/// ledger verifies and audits, through snapshots that hold the keys.
#[test]
fn a_ledger_with_api_key_commands_verifies_and_audits() {
    let digest = |n: u8| format!("{n:02x}").repeat(32);
    let cmds: Vec<_> = [
        serde_json::json!({"type": "create_account", "account": 1, "api_key_sha256": digest(1)}),
        serde_json::json!({"type": "add_api_key", "account": 1, "api_key_sha256": digest(2), "scope": "trade"}),
        serde_json::json!({"type": "add_api_key", "account": 1, "api_key_sha256": digest(2), "scope": "read"}),
        serde_json::json!({"type": "revoke_api_key", "account": 1, "api_key_sha256": digest(1)}),
        serde_json::json!({"type": "revoke_api_key", "account": 1, "api_key_sha256": digest(2)}),
        serde_json::json!({"type": "add_api_key", "account": 1, "api_key_sha256": digest(3), "scope": "read"}),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, c)| envelope(1_700_000_000_000_000_000 + i as u64, c))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let opts = WriteOpts {
        batch: 2,
        snapshot_every_events: 2,
        snapshot_on_close: true,
    };
    let w = write_ledger(dir.path(), &cmds, opts);
    assert!(w.snapshots.len() > 1, "{:?}", w.snapshots);
    let (outcome, v) = run_verify(dir.path());
    assert_eq!(outcome, Outcome::Success, "{v}");
    assert_eq!(v["commands"], 6);
    let (outcome, out) = capture(|o| {
        gpux_replay::audit::run(dir.path(), &Default::default(), &Progress::hidden(), o)
    });
    assert!(outcome.is_success(), "{}", json_of(&out));
    let ledger = Ledger::open(dir.path(), &ledger_opts()).unwrap();
    let snapshot = ledger.latest_good_snapshot().unwrap().snapshot.unwrap();
    assert_eq!(snapshot.cmd_seq, 6);
    let engine: Engine = Engine::restore(&snapshot.bytes).unwrap();
    let scopes: Vec<_> = engine.api_keys(1).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        scopes,
        [gpux_engine::KeyScope::Trade, gpux_engine::KeyScope::Read]
    );
}
