//! The per-command bounds of `gpux_engine::limits` hold for gate closures too:
//!
//! - no command emits more than [`EVENTS_PER_COMMAND_WORST`] events, however many
//!   slots its timestamp closes (the ledger refuses a command with more events than
//!   it accepts, and would refuse it again after every restart);
//! - no event is longer than [`EVENT_JSON_BYTES_MAX`] bytes of JSON, however many
//!   times the GPUs of a `delivery_scheduled` were resold before the gate.
//!
//! Gate closures are spread over commands within
//! [`GATE_CLOSURE_EVENTS_PER_COMMAND_MAX`](gpux_engine::limits::GATE_CLOSURE_EVENTS_PER_COMMAND_MAX),
//! and a GPU goes through at most
//! [`TRADES_PER_LOT_MAX`](gpux_engine::limits::TRADES_PER_LOT_MAX) trades in a slot.

mod common;

use common::*;
use gpux_engine::command::Tick;
use gpux_engine::limits::{
    EVENTS_PER_COMMAND_WORST, EVENT_JSON_BYTES_MAX, GATE_CLOSURE_EVENTS_PER_COMMAND_MAX,
    TRADES_PER_LOT_MAX,
};
use gpux_engine::slot::{NANOS_PER_SEC, SLOT_SECS};
use gpux_engine::{Command, Engine, Event, RejectReason};

/// Applies `cmd` as the next command at `ts_ns`; returns its events.
fn step(e: &mut Engine, ts_ns: u64, cmd: impl Into<Command>) -> Vec<Event> {
    let mut out = Vec::new();
    e.apply(e.last_seq() + 1, ts_ns, &cmd.into(), &mut out);
    out
}

/// Applies a setup command, which must not be refused.
#[track_caller]
fn given(e: &mut Engine, cmd: impl Into<Command>) {
    let events = step(e, T0, cmd);
    assert!(
        !events
            .iter()
            .any(|ev| matches!(ev, Event::OrderRejected(_) | Event::CommandRejected(_))),
        "{}",
        render_all(&events).join("\n")
    );
}

fn tick() -> Command {
    Command::Tick(Tick {})
}

/// 60 markets with one provider's GPUs in each of their 168 open slots: a command
/// nine days later closes 10,080 slots, two events each (`inventory_expired`,
/// `slot_closed`), 20,160 in all, more than any command may emit. The closures
/// must be spread over commands within the bound, and none lost.
#[test]
fn a_command_that_passes_many_gates_stays_within_the_event_bound() {
    const MARKETS: usize = 60;
    const LAST: u64 = 168 * SLOT_SECS;
    let mut e: Engine = Engine::new();
    given(&mut e, create_account(1));
    for i in 0..MARKETS {
        let market = format!("gpu-{i}.r");
        given(&mut e, list_market(&market, "0.01", "1", 0, 0));
        given(&mut e, add_capacity_range(1, &market, S, LAST, "1"));
    }
    let later = 9 * 24 * 3_600 * NANOS_PER_SEC;
    let mut closed = 0;
    for n in 0..10 {
        let events = step(&mut e, later + n, tick());
        assert!(
            events.len() <= EVENTS_PER_COMMAND_WORST,
            "one command emitted {} events (at most {EVENTS_PER_COMMAND_WORST})",
            events.len()
        );
        closed += events
            .iter()
            .filter(|ev| matches!(ev, Event::SlotClosed(_)))
            .count();
    }
    assert_eq!(closed, MARKETS * 168, "every slot closes, once");
}

/// One GPU resold back and forth before its gate: after `TRADES_PER_LOT_MAX`
/// trades it is kept by its buyer (a further offer is refused for want of GPUs
/// to sell), and its delivery, naming every trade it went through, fits the event
/// bound.
#[test]
fn a_delivery_after_many_resales_stays_within_the_event_size_bound() {
    let mut e: Engine = Engine::new();
    given(&mut e, list_market(M, "0.01", "1", 0, 0));
    for a in [1, 2] {
        given(&mut e, create_account(a));
        given(&mut e, deposit(a, "10000"));
    }
    given(&mut e, add_capacity(1, "1"));
    for n in 0..TRADES_PER_LOT_MAX as u64 {
        let (seller, buyer) = if n % 2 == 0 { (1, 2) } else { (2, 1) };
        given(&mut e, sell(seller, "1", "2.00"));
        given(&mut e, buy(buyer, "1", "2.00").ioc());
    }
    // Trade 16 went to account 1 (n = 15 is odd): it keeps the GPU.
    let held = e.balances(1).unwrap().gpus;
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].balance.available, held[0].kept),
        (0.into(), 1.into())
    );
    let refused = step(&mut e, T0, sell(1, "1", "2.00"));
    assert!(
        matches!(&refused[..], [Event::OrderRejected(r)] if r.reason == RejectReason::InsufficientCapacity),
        "{}",
        render_all(&refused).join("\n")
    );
    let events = step(&mut e, (S - 300) * NANOS_PER_SEC + 1, tick());
    let delivery = events
        .iter()
        .find_map(|ev| match ev {
            Event::DeliveryScheduled(d) => Some(d),
            _ => None,
        })
        .expect("the GPU is delivered");
    assert_eq!((delivery.provider, delivery.holder), (1, 1));
    assert_eq!(
        delivery.trades,
        (1..=TRADES_PER_LOT_MAX as u64).collect::<Vec<_>>()
    );
    for ev in &events {
        // The ledger's encoding is never longer than the JSON the bound is for.
        assert!(ev.to_bytes().len() <= ev.to_json_vec().len(), "{ev:?}");
        let bytes = ev.to_json_vec().len();
        assert!(
            bytes <= EVENT_JSON_BYTES_MAX,
            "{bytes} bytes (at most {EVENT_JSON_BYTES_MAX}): {:.160}…",
            render(ev)
        );
    }
}

/// A slot whose closure takes more than one command's bound trades no more in
/// between: an amend there is refused (its gate has passed), a cancel still works,
/// and the closure finishes before later commands, nothing lost.
#[test]
fn a_slot_part_way_through_its_closure_takes_no_amends() {
    let mut e: Engine = Engine::new();
    given(&mut e, list_market(M, "0.01", "1", 0, 0));
    // 21,000 resting bids: more than two commands' worth of closure events.
    for a in 1..=3u64 {
        given(&mut e, create_account(a));
        given(&mut e, deposit(a, "100000"));
        for _ in 0..7_000 {
            given(&mut e, buy(a, "1", "1.00"));
        }
    }
    let after_gate = (S - 300) * NANOS_PER_SEC + 1;
    let first = step(&mut e, after_gate, tick());
    assert_eq!(first.len(), GATE_CLOSURE_EVENTS_PER_COMMAND_MAX);
    // The next command's closure work cancels 10,000 more; order 21,000 is still
    // resting when the amend applies.
    let refused = step(&mut e, after_gate, amend(3, 21_000).price("1.01"));
    let last = refused.last().unwrap();
    assert!(
        matches!(last, Event::OrderRejected(r) if r.reason == RejectReason::SlotClosed),
        "{}",
        render(last)
    );
    let cancelled = step(&mut e, after_gate, cancel(3, 21_000));
    let summary: Vec<&Event> = cancelled
        .iter()
        .filter(|ev| matches!(ev, Event::SlotClosed(_)))
        .collect();
    assert_eq!(summary.len(), 1, "the closure finishes before the cancel");
    assert_eq!(e.open_order_count(), 0);
    e.check_invariants().unwrap();
}
