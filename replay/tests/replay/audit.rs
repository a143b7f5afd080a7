//! `audit`: a good ledger passes and its conservation figures are the ones the
//! events imply; a ledger that does not match the engine fails at its command.

use std::collections::BTreeMap;

use gpux_engine::Event;
use gpux_replay::audit::{self, AuditOptions};
use gpux_replay::{FailureKind, Progress};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::common::{
    capture, event_json, json_of, scenario, standard, stored_event, write_ledger_with, WriteOpts,
    SLOTS,
};

/// What the written events add up to.
struct Figures {
    deposits: Decimal,
    withdrawals: Decimal,
    /// Per (market, slot): capacity added − removed.
    capacity: BTreeMap<(String, u64), Decimal>,
    /// Per market: scheduled, expired, slots closed.
    closed: BTreeMap<String, (Decimal, Decimal, u64)>,
    fees: Decimal,
    /// Delivery schedule entries.
    entries: u64,
}

fn figures(w: &crate::common::Written) -> Figures {
    let (mut deposits, mut withdrawals) = (Decimal::ZERO, Decimal::ZERO);
    // Per (market, slot): capacity added − removed; per market: what the closed
    // slot delivered and expired.
    let mut capacity = BTreeMap::<(String, u64), Decimal>::new();
    let mut closed = BTreeMap::<String, (Decimal, Decimal, u64)>::new();
    let (mut fees, mut entries) = (Decimal::ZERO, 0u64);
    for e in w.events.iter().flatten() {
        match Event::from_bytes(e).unwrap() {
            Event::Deposited(c) => deposits += c.amount,
            Event::Withdrawn(c) => withdrawals += c.amount,
            Event::CapacityAdded(c) | Event::CapacityRemoved(c) => {
                let sign = if event_json(e).starts_with(br#"{"type":"capacity_added""#) {
                    Decimal::ONE
                } else {
                    -Decimal::ONE
                };
                for slot in (c.from_slot..=c.to_slot).step_by(3_600) {
                    *capacity.entry((c.market.to_string(), slot)).or_default() += sign * c.quantity;
                }
            }
            Event::TradeExecuted(t) => fees += t.maker_fee + t.taker_fee,
            Event::DeliveryScheduled(_) => entries += 1,
            Event::SlotClosed(c) => {
                let m = closed.entry(c.market.to_string()).or_default();
                m.0 += c.scheduled;
                m.1 += c.expired;
                m.2 += 1;
            }
            _ => {}
        }
    }
    Figures {
        deposits,
        withdrawals,
        capacity,
        closed,
        fees,
        entries,
    }
}

#[test]
fn a_good_ledger_passes_and_conserves_usd_and_gpu_hours() {
    let (dir, w) = standard();
    let (outcome, out) =
        capture(|o| audit::run(dir.path(), &AuditOptions::default(), &Progress::hidden(), o));
    let v = json_of(&out);
    assert!(outcome.is_success(), "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["commands"], w.last_seq());
    assert_eq!(v["events"], w.event_count());
    assert_eq!(v["invariant_checks"], w.last_seq());
    assert!(v["book_checks"].as_u64().unwrap() > 100);

    // The figures, recomputed here from the written events.
    let Figures {
        deposits,
        withdrawals,
        capacity,
        closed,
        fees,
        entries,
    } = figures(&w);
    assert!(withdrawals > Decimal::ZERO);
    let dec = |v: &Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    assert_eq!(dec(&v["deposits"]), deposits);
    assert_eq!(dec(&v["withdrawals"]), withdrawals);
    assert_eq!(dec(&v["usd_total"]), deposits - withdrawals);
    assert!(dec(&v["fee_account_usd"]) <= fees);
    let markets = v["markets"].as_array().unwrap();
    assert_eq!(markets.len(), 2);
    let (mut scheduled, mut expired) = (Decimal::ZERO, Decimal::ZERO);
    for m in markets {
        let name = m["market"].as_str().unwrap();
        let net = |slot: u64| capacity[&(name.to_string(), slot)];
        let (s, x, n) = closed[name];
        assert_eq!(
            dec(&m["capacity_added"]) - dec(&m["capacity_removed"]),
            net(SLOTS[0]) + net(SLOTS[1])
        );
        // The open slot's GPUs are all held; the closed one's all delivered or expired.
        assert_eq!(dec(&m["gpu_hours_total"]), net(SLOTS[1]));
        assert_eq!(s + x, net(SLOTS[0]), "{name}");
        assert_eq!((m["slots_closed"].as_u64(), n), (Some(1), 1));
        (scheduled, expired) = (scheduled + s, expired + x);
    }
    let d = &v["delivery"];
    assert_eq!(d["slots_closed"], 2);
    assert_eq!(d["entries"], entries);
    assert!(
        entries > 10,
        "the scenario delivers to many holders: {entries}"
    );
    assert_eq!(
        (dec(&d["scheduled"]), dec(&d["expired"])),
        (scheduled, expired)
    );
    assert_eq!(v["accounts_reconciled"], 1 + crate::common::ACCOUNTS);
    assert_eq!(v["state_hash"], w.hashes.last().unwrap().to_string());
}

#[test]
fn invariants_can_be_checked_every_n_commands_and_always_at_the_end() {
    let (dir, w) = standard();
    let s = audit::audit(
        dir.path(),
        &AuditOptions {
            invariants_every: 100,
        },
        &Progress::hidden(),
    )
    .unwrap()
    .unwrap();
    let last = w.last_seq();
    assert_eq!(s.invariant_checks, last / 100 + u64::from(last % 100 != 0));
}

#[test]
fn a_ledger_that_credits_money_the_engine_never_did_fails_at_that_command() {
    // An intact ledger (valid chain) whose stored deposit says more than the engine.
    let cmds = scenario(21, 200);
    let dir = tempfile::tempdir().unwrap();
    let mut at = None;
    write_ledger_with(
        dir.path(),
        &cmds,
        WriteOpts::default(),
        |cmd_seq, events| {
            if at.is_none() && cmd_seq > 10 {
                if let Some(e) = events
                    .iter_mut()
                    .find(|e| event_json(e).starts_with(br#"{"type":"deposited""#))
                {
                    let mut d: Value = serde_json::from_slice(&event_json(e)).unwrap();
                    d["amount"] = "99999.000000".into();
                    *e = stored_event(&serde_json::to_vec(&d).unwrap());
                    at = Some(cmd_seq);
                }
            }
        },
    );
    let at = at.expect("a deposit after command 10");
    let (outcome, out) =
        capture(|o| audit::run(dir.path(), &AuditOptions::default(), &Progress::hidden(), o));
    let f = outcome.failure().expect("caught");
    assert_eq!(
        f.error,
        FailureKind::EventMismatch,
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(f.cmd_seq, Some(at));
    assert_eq!(json_of(&out)["cmd_seq"], at);
}
