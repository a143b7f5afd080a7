//! Ids the engine assigns and requests it applies once, so that several gateways
//! in front of one engine never collide on account ids and a keyed request
//! submitted twice takes effect once:
//!
//! - `create_account` without an id gets the lowest id no account has, skipping
//!   ids taken explicitly, whatever explicit ids (up to `u64::MAX`) exist;
//! - a command whose request id was applied within the window, both in envelopes
//!   marked `idempotent`, is recorded as `duplicate_request` and changes nothing
//!   but engine time;
//!   outside the window it is applied again; the window is in the snapshot and in
//!   `state_hash`.

mod common;

use common::*;
use gpux_engine::command::CreateAccount;
use gpux_engine::limits::{REQUEST_IDS_REMEMBERED_MAX, REQUEST_ID_WINDOW_NS};
use gpux_engine::{Command, DuplicateRequest, Engine, Event, RejectReason};

const TS: u64 = 1_767_225_600_000_000_000;
/// The delivery slot the orders here trade: the hour after `TS` (open at `TS`).
const SLOT: u64 = TS / 1_000_000_000 + 3_600;

fn open_account() -> Command {
    Command::CreateAccount(CreateAccount {
        account: None,
        api_key_sha256: None,
    })
}

/// Applies `cmd` as the next command, idempotent under `request_id`.
fn step(e: &mut Engine, ts: u64, request_id: Option<&str>, cmd: &Command) -> Vec<Event> {
    let mut out = Vec::new();
    e.apply_request(e.last_seq() + 1, ts, request_id, cmd, &mut out);
    out
}

fn created(events: &[Event]) -> u64 {
    match events {
        [Event::AccountCreated(a)] => a.account,
        other => panic!("expected account_created, got {other:?}"),
    }
}

fn rejected(events: &[Event]) -> RejectReason {
    match events {
        [Event::CommandRejected(r)] => r.reason,
        other => panic!("expected command_rejected, got {other:?}"),
    }
}

#[test]
fn accounts_without_an_id_get_the_lowest_free_id_skipping_explicit_ones() {
    let mut e: Engine = Engine::new();
    assert_eq!(e.next_account_id(), 1);
    assert_eq!(created(&step(&mut e, TS, None, &open_account())), 1);
    // Explicit ids above the counter are skipped when it reaches them.
    assert_eq!(created(&step(&mut e, TS, None, &create_account(3))), 3);
    assert_eq!(created(&step(&mut e, TS, None, &create_account(4))), 4);
    assert_eq!(created(&step(&mut e, TS, None, &open_account())), 2);
    assert_eq!(created(&step(&mut e, TS, None, &open_account())), 5);
    // An explicit id the counter already passed is refused, as before.
    assert_eq!(
        rejected(&step(&mut e, TS, None, &create_account(2))),
        RejectReason::AccountExists
    );
    assert_eq!(
        rejected(&step(&mut e, TS, None, &create_account(0))),
        RejectReason::ReservedAccount
    );
    assert_eq!(e.next_account_id(), 6);
    e.check_invariants().unwrap();
}

#[test]
fn account_u64_max_existing_does_not_stop_assignment() {
    let mut e: Engine = Engine::new();
    assert_eq!(
        created(&step(&mut e, TS, None, &create_account(u64::MAX))),
        u64::MAX
    );
    assert_eq!(
        created(&step(&mut e, TS, None, &create_account(u64::MAX - 1))),
        u64::MAX - 1
    );
    for want in 1..=5 {
        assert_eq!(created(&step(&mut e, TS, None, &open_account())), want);
    }
    assert_eq!(
        rejected(&step(&mut e, TS, None, &create_account(u64::MAX))),
        RejectReason::AccountExists
    );
    e.check_invariants().unwrap();
}

#[test]
fn the_account_counter_survives_a_snapshot() {
    let mut e: Engine = Engine::new();
    for cmd in [open_account(), create_account(2), create_account(7)] {
        step(&mut e, TS, None, &cmd);
    }
    let mut restored: Engine = Engine::restore(&e.snapshot()).unwrap();
    assert_eq!(restored.state_hash(), e.state_hash());
    assert_eq!(restored.next_account_id(), 3);
    assert_eq!(created(&step(&mut restored, TS, None, &open_account())), 3);
    assert_eq!(created(&step(&mut e, TS, None, &open_account())), 3);
    assert_eq!(restored.state_hash(), e.state_hash());
}

/// An exchange with a market and account 1 holding 100 USD, at seq 3.
fn funded() -> Engine {
    let mut e: Engine = Engine::new();
    step(
        &mut e,
        TS,
        None,
        &list_market(M, "0.01", "1", 10, 20).into(),
    );
    step(&mut e, TS, None, &create_account(1));
    step(&mut e, TS, None, &deposit(1, "100"));
    e
}

fn key(n: u64) -> String {
    format!("i:{n:032x}:{n:032x}")
}

fn duplicate(events: &[Event]) -> &DuplicateRequest {
    match events {
        [Event::DuplicateRequest(d)] => d,
        other => panic!("expected duplicate_request, got {other:?}"),
    }
}

#[test]
fn a_repeated_request_id_is_recorded_as_a_duplicate_and_changes_nothing() {
    let mut e = funded();
    let rid = key(1);
    let first = step(&mut e, TS + 1, Some(&rid), &deposit(1, "5"));
    assert!(matches!(first.as_slice(), [Event::Deposited(_)]));
    let first_seq = e.last_seq();
    assert_eq!(e.applied_request(&rid), Some(first_seq));

    // The repeat has exactly the effect of a command that does not decode: its
    // sequence number and time, nothing else.
    let mut same = e.clone();
    let again = step(&mut e, TS + 2, Some(&rid), &deposit(1, "5"));
    assert_eq!(
        duplicate(&again),
        &DuplicateRequest {
            request_id: rid.clone(),
            original_cmd_seq: first_seq
        }
    );
    same.apply_json(
        same.last_seq() + 1,
        TS + 2,
        b"not a command",
        &mut Vec::new(),
    );
    assert_eq!(e.state_hash(), same.state_hash());
    assert_eq!(e.balances(1).unwrap().usd.available, d("105"));

    // Whatever the repeat says: the id names the request, and it was applied.
    let other = step(&mut e, TS + 3, Some(&rid), &withdraw(1, "100"));
    assert_eq!(duplicate(&other).original_cmd_seq, first_seq);
    assert_eq!(e.balances(1).unwrap().usd.available, d("105"));

    assert_eq!(e.remembered_requests(), 1);
}

fn envelope(request_id: &str, idempotent: bool) -> String {
    let flag = if idempotent {
        r#","idempotent":true"#
    } else {
        ""
    };
    format!(
        r#"{{"v":3,"ts_ns":{TS},"request_id":"{request_id}"{flag},"command":{{"type":"deposit","account":1,"amount":"2"}}}}"#
    )
}

fn apply_line(e: &mut Engine, line: &str) -> Vec<Event> {
    let mut out = Vec::new();
    e.apply_json(e.last_seq() + 1, TS, line.as_bytes(), &mut out);
    out
}

#[test]
fn only_envelopes_marked_idempotent_are_applied_once() {
    let mut e = funded();
    // Without the flag a request id is only echoed: applied every time, even
    // one that was applied as idempotent before.
    let rid = key(6);
    for line in [envelope(&rid, false), envelope(&rid, false)] {
        assert!(matches!(
            apply_line(&mut e, &line).as_slice(),
            [Event::Deposited(_)]
        ));
    }
    assert_eq!(e.remembered_requests(), 0);
    let first = apply_line(&mut e, &envelope(&rid, true));
    assert!(matches!(first.as_slice(), [Event::Deposited(_)]));
    let seq = e.last_seq();
    let again = apply_line(&mut e, &envelope(&rid, true));
    assert_eq!(duplicate(&again).original_cmd_seq, seq);
    let plain = apply_line(&mut e, &envelope(&rid, false));
    assert!(matches!(plain.as_slice(), [Event::Deposited(_)]));
    assert_eq!(e.balances(1).unwrap().usd.available, d("108"));
    // The flag needs a request id to name the request.
    let bad = format!(
        r#"{{"v":3,"ts_ns":{TS},"idempotent":true,"command":{{"type":"deposit","account":1,"amount":"2"}}}}"#
    );
    assert!(matches!(
        apply_line(&mut e, &bad).as_slice(),
        [Event::CommandRejected(r)] if r.reason == RejectReason::MalformedCommand
    ));
}

#[test]
fn a_rejected_request_is_applied_once_too() {
    let mut e = funded();
    let rid = key(2);
    assert_eq!(
        step(&mut e, TS, Some(&rid), &withdraw(1, "1000")).len(),
        1,
        "rejected"
    );
    let seq = e.last_seq();
    step(&mut e, TS, None, &deposit(1, "5000"));
    // The retry would now succeed, but it is the same request: its answer was given.
    let again = step(&mut e, TS, Some(&rid), &withdraw(1, "1000"));
    assert_eq!(duplicate(&again).original_cmd_seq, seq);
    assert_eq!(e.balances(1).unwrap().usd.available, d("5100"));
}

#[test]
fn a_duplicate_still_expires_gtd_orders_that_are_due() {
    let mut e = funded();
    let order = buy(1, "1", "1.00").at_slot(SLOT).gtd(TS + 10);
    step(&mut e, TS, None, &order.into());
    let rid = key(3);
    step(&mut e, TS, Some(&rid), &deposit(1, "1"));
    let again = step(&mut e, TS + 11, Some(&rid), &deposit(1, "1"));
    assert!(
        matches!(again.as_slice(), [Event::OrderCancelled(c), Event::DuplicateRequest(_)]
            if c.reason == gpux_engine::CancelReason::Expired),
        "{again:?}"
    );
}

#[test]
fn a_request_id_is_forgotten_after_the_time_window() {
    let mut e = funded();
    let rid = key(4);
    step(&mut e, TS, Some(&rid), &deposit(1, "1"));
    // At exactly the window's end it is still remembered …
    let at_end = step(
        &mut e,
        TS + REQUEST_ID_WINDOW_NS,
        Some(&rid),
        &deposit(1, "1"),
    );
    duplicate(&at_end);
    // … past it, the same request is applied again.
    let after = step(
        &mut e,
        TS + REQUEST_ID_WINDOW_NS + 1,
        Some(&rid),
        &deposit(1, "1"),
    );
    assert!(matches!(after.as_slice(), [Event::Deposited(_)]));
    assert_eq!(e.balances(1).unwrap().usd.available, d("102"));
    // And is remembered anew from there.
    assert_eq!(e.applied_request(&rid), Some(e.last_seq()));
}

#[test]
fn a_request_id_is_forgotten_after_the_count_window() {
    let mut e = funded();
    let first = key(0);
    step(&mut e, TS, Some(&first), &deposit(1, "1"));
    let first_seq = e.last_seq();
    for n in 1..REQUEST_IDS_REMEMBERED_MAX as u64 {
        step(&mut e, TS, Some(&key(n)), &deposit(1, "0.000001"));
    }
    assert_eq!(e.remembered_requests(), REQUEST_IDS_REMEMBERED_MAX);
    assert_eq!(e.oldest_remembered_request(), Some(first_seq));
    // Still remembered: the window is full but not past it.
    assert_eq!(
        duplicate(&step(&mut e, TS, Some(&first), &deposit(1, "1"))).original_cmd_seq,
        first_seq
    );
    // One more id forgets the oldest, which then applies again.
    step(&mut e, TS, Some(&key(u64::MAX)), &deposit(1, "0.000001"));
    assert_eq!(e.applied_request(&first), None);
    assert_eq!(e.oldest_remembered_request(), Some(first_seq + 1));
    let again = step(&mut e, TS, Some(&first), &deposit(1, "1"));
    assert!(matches!(again.as_slice(), [Event::Deposited(_)]));
    assert_eq!(e.remembered_requests(), REQUEST_IDS_REMEMBERED_MAX);
}

#[test]
fn the_request_window_is_in_the_snapshot_and_the_state_hash() {
    let mut keyed = funded();
    let mut plain = funded();
    let rid = key(5);
    step(&mut keyed, TS, Some(&rid), &deposit(1, "1"));
    step(&mut plain, TS, None, &deposit(1, "1"));
    // Same balances and books; only the remembered id differs.
    assert_ne!(keyed.state_hash(), plain.state_hash());

    let mut restored: Engine = Engine::restore(&keyed.snapshot()).unwrap();
    assert_eq!(restored.state_hash(), keyed.state_hash());
    assert_eq!(restored.applied_request(&rid), keyed.applied_request(&rid));
    let again = step(&mut restored, TS, Some(&rid), &deposit(1, "1"));
    assert_eq!(duplicate(&again).original_cmd_seq, 4);

    // Once time has moved past the window, nothing is remembered and the two
    // states are equal again.
    let later = TS + REQUEST_ID_WINDOW_NS + 1;
    step(&mut keyed, later, None, &deposit(1, "1"));
    step(&mut plain, later, None, &deposit(1, "1"));
    assert_eq!(keyed.remembered_requests(), 0);
    assert_eq!(keyed.state_hash(), plain.state_hash());
}
