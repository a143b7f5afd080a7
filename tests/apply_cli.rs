//! `gpux apply` as a user runs it: a real process, commands in, events out.

use gpux_engine::{Event, EventEnvelope};
use std::io::Write;
use std::process::{Command, Output, Stdio};

const SESSION: &str = r#"{"v":3,"ts_ns":1000,"command":{"type":"list_market","market":"h100-sxm.us-east","tick_size":"0.01","lot_size":"1","maker_fee_bps":10,"taker_fee_bps":20}}
{"v":3,"ts_ns":1001,"command":{"type":"create_account","account":1}}
{"v":3,"ts_ns":1002,"command":{"type":"create_account","account":2}}

{"v":3,"ts_ns":1003,"command":{"type":"add_capacity","account":1,"market":"h100-sxm.us-east","from_slot":3600,"to_slot":7200,"quantity":"10"}}
{"v":3,"ts_ns":1004,"command":{"type":"deposit","account":2,"amount":"100"}}
{"v":3,"ts_ns":1005,"command":{"type":"place_order","account":1,"market":"h100-sxm.us-east","slot":3600,"side":"sell","price":"2.50","quantity":"10"}}
{"v":3,"ts_ns":1006,"request_id":"r-7","command":{"type":"place_order","account":2,"market":"h100-sxm.us-east","slot":3600,"side":"buy","price":"2.60","quantity":"4"}}
"#;

fn gpux(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpux"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gpux runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn events(out: &Output) -> Vec<EventEnvelope> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is an event envelope"))
        .collect()
}

#[test]
fn applies_a_session_and_prints_each_event_as_a_json_line() {
    let out = gpux(&["apply"], SESSION);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = events(&out);
    // Seven commands (the blank line is skipped), numbered 1..=7 in order.
    assert_eq!(evs.first().unwrap().seq, 1);
    assert_eq!(evs.last().unwrap().seq, 7);
    assert!(evs.windows(2).all(|w| w[0].seq <= w[1].seq));
    // The buy crosses the resting ask and trades at the maker's price, 2.50.
    let trade = evs
        .iter()
        .find_map(|e| match &e.event {
            Event::TradeExecuted(t) => Some((e, t)),
            _ => None,
        })
        .expect("a trade");
    assert_eq!(trade.0.seq, 7);
    assert_eq!(trade.0.ts_ns, 1006);
    assert_eq!(trade.0.request_id.as_deref(), Some("r-7"));
    assert_eq!(trade.1.price.to_string(), "2.50");
    assert_eq!(trade.1.quantity.to_string(), "4");
    // Notional 10.00 USD; maker fee 10 bps = 0.01, taker fee 20 bps = 0.02.
    assert_eq!(trade.1.maker_fee.to_string(), "0.010000");
    assert_eq!(trade.1.taker_fee.to_string(), "0.020000");
}

#[test]
fn a_file_gives_the_same_events_as_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("commands.jsonl");
    std::fs::write(&path, SESSION).unwrap();
    let from_file = gpux(&["apply", "--commands", path.to_str().unwrap()], "");
    let from_stdin = gpux(&["apply"], SESSION);
    assert!(from_file.status.success());
    assert_eq!(from_file.stdout, from_stdin.stdout);
}

#[test]
fn a_bad_line_stops_the_run_with_its_line_number() {
    let mut input: Vec<&str> = SESSION.lines().take(3).collect();
    input.push(r#"{"v":3,"ts_ns":5,"command":{"type":"deposit","account":2,"amount":"100","colour":"red"}}"#);
    input.push(r#"{"v":3,"ts_ns":6,"command":{"type":"create_account","account":9}}"#);
    let out = gpux(&["apply"], &input.join("\n"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 4"), "stderr names the line: {stderr}");
    assert!(
        stderr.contains("colour"),
        "stderr names the problem: {stderr}"
    );
    // Lines 1–3 were applied and printed; line 5 was not.
    let evs = events(&out);
    assert_eq!(evs.len(), 3);
    assert!(evs.iter().all(|e| e.seq <= 3));
}

#[test]
fn rejections_are_events_not_errors() {
    let input = r#"{"v":3,"ts_ns":1,"command":{"type":"deposit","account":42,"amount":"5"}}"#;
    let out = gpux(&["apply"], input);
    assert!(out.status.success());
    let evs = events(&out);
    assert_eq!(evs.len(), 1);
    match &evs[0].event {
        Event::CommandRejected(r) => assert_eq!(r.reason.code(), "unknown_account"),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = gpux(&["apply", "--commands", "/nonexistent/commands.jsonl"], "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open /nonexistent/commands.jsonl"),
        "{stderr}"
    );
}

#[test]
fn unsupported_versions_and_oversized_lines_are_refused() {
    // Version 1 had no delivery slots.
    let v1 = r#"{"v":1,"ts_ns":1,"command":{"type":"create_account","account":1}}"#;
    let out = gpux(&["apply"], v1);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported protocol version 1"));
    let huge = format!(
        r#"{{"v":3,"ts_ns":1,"request_id":"{}","command":{{"type":"create_account","account":1}}}}"#,
        "x".repeat(10_000)
    );
    let out = gpux(&["apply"], &huge);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bytes, more than"));
}

#[test]
fn a_tick_past_the_gate_fixes_the_slots_delivery_schedule() {
    // The session, then a tick past 00:55Z (the 01:00Z slot's gate): the slot
    // closes, the seller's unsold GPUs expire and the buyer's 4 are scheduled.
    let input = format!(
        "{SESSION}{}\n",
        r#"{"v":3,"ts_ns":3400000000000,"command":{"type":"tick"}}"#
    );
    let out = gpux(&["apply"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: Vec<Event> = events(&out)
        .into_iter()
        .filter(|e| e.seq == 8)
        .map(|e| e.event)
        .collect();
    // The resting ask is cancelled first, then the schedule is fixed.
    assert!(matches!(&last[0], Event::OrderCancelled(c) if c.order == 1 && c.resting));
    assert!(
        matches!(&last[1], Event::InventoryExpired(x) if x.account == 1 && x.quantity.to_string() == "6")
    );
    let Event::DeliveryScheduled(d) = &last[2] else {
        panic!("{last:?}")
    };
    assert_eq!((d.slot, d.provider, d.holder), (3600, 1, 2));
    assert_eq!(d.quantity.to_string(), "4");
    assert!(matches!(last.last(), Some(Event::SlotClosed(c)) if c.slot == 3600));
}
