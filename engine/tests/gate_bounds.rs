//! The per-command bounds of `gpux_engine::limits` hold for gate closures too:
//!
//! - no command emits more than [`EVENTS_PER_COMMAND_WORST`] events, however many
//!   slots its timestamp closes (the ledger refuses a command with more events than
//!   it accepts, and would refuse it again after every restart);
//! - no event is longer than [`EVENT_JSON_BYTES_MAX`] bytes of JSON, however many
//!   times the GPUs of a `delivery_scheduled` were resold before the gate.
//!
//! Both tests fail with the engine of the commit that adds them: gate closures
//! are not bounded per command, and a delivery's chain of trades grows with every
//! resale. They pin the bounds the fix must keep.

mod common;

use common::*;
use gpux_engine::command::Tick;
use gpux_engine::limits::{EVENTS_PER_COMMAND_WORST, EVENT_JSON_BYTES_MAX};
use gpux_engine::slot::{NANOS_PER_SEC, SLOT_SECS};
use gpux_engine::{Command, Engine, Event};

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

/// One GPU resold back and forth 400 times before its gate: its delivery names
/// every trade it went through, and must still fit the event bound.
#[test]
fn a_delivery_after_many_resales_stays_within_the_event_size_bound() {
    let mut e: Engine = Engine::new();
    given(&mut e, list_market(M, "0.01", "1", 0, 0));
    for a in [1, 2] {
        given(&mut e, create_account(a));
        given(&mut e, deposit(a, "10000"));
    }
    given(&mut e, add_capacity(1, "1"));
    for n in 0..400u64 {
        let (seller, buyer) = if n % 2 == 0 { (1, 2) } else { (2, 1) };
        given(&mut e, sell(seller, "1", "2.00"));
        given(&mut e, buy(buyer, "1", "2.00").ioc());
    }
    let events = step(&mut e, (S - 300) * NANOS_PER_SEC + 1, tick());
    let delivery = events
        .iter()
        .find_map(|ev| match ev {
            Event::DeliveryScheduled(d) => Some(d),
            _ => None,
        })
        .expect("the GPU is delivered");
    assert_eq!(delivery.trades.len(), 400);
    for ev in &events {
        let bytes = ev.to_json_vec().len();
        assert!(
            bytes <= EVENT_JSON_BYTES_MAX,
            "{bytes} bytes (at most {EVENT_JSON_BYTES_MAX}): {:.160}…",
            render(ev)
        );
    }
}
