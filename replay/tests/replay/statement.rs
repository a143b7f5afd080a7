//! `statement`: histories with running balances that reconcile with the engine,
//! and fills and fees that match the trades.

use gpux_engine::{Side, FEE_ACCOUNT};
use gpux_replay::statement::{self, Item, Statement};
use gpux_replay::{FailureKind, Progress};
use rust_decimal::Decimal;

use crate::common::{capture, json_of, standard, ACCOUNTS};

fn statement_of(dir: &std::path::Path, account: u64) -> Statement {
    statement::statement(dir, account, &Progress::hidden())
        .expect("runs")
        .expect("the account exists")
}

#[test]
fn every_account_and_the_fee_account_reconcile() {
    let (dir, w) = standard();
    for account in 0..=ACCOUNTS {
        let (outcome, out) =
            capture(|o| statement::run(dir.path(), account, &Progress::hidden(), o));
        let v = json_of(&out);
        assert!(outcome.is_success(), "account {account}: {v}");
        assert_eq!(v["reconciled"], true);
        assert_eq!(v["ok"], true);
        assert_eq!(v["account"], account);
        assert_eq!(v["last_seq"], w.last_seq());
        let entries = v["entries"].as_array().unwrap();
        assert!(!entries.is_empty());
        // Entries are in ledger order and the last running balance is the engine's.
        let seqs: Vec<(u64, u64)> = entries
            .iter()
            .map(|e| {
                (
                    e["cmd_seq"].as_u64().unwrap(),
                    e["event_seq"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(seqs.windows(2).all(|p| p[0] <= p[1]));
        assert_eq!(entries.last().unwrap()["usd"], v["computed"]["usd"]);
        assert_eq!(v["computed"]["usd"], v["engine"]["usd_total"]);
    }
}

#[test]
fn fills_and_fees_are_the_accounts_sides_of_the_trades() {
    let (dir, w) = standard();
    for account in [1, 4] {
        let s = statement_of(dir.path(), account);
        let fills: Vec<&Item> = s
            .entries
            .iter()
            .map(|e| &e.item)
            .filter(|i| matches!(i, Item::Fill { .. }))
            .collect();
        let mut expected = Vec::new();
        let mut fees = Decimal::ZERO;
        for t in &w.trades {
            let tr = &t.trade;
            if tr.maker_account == account {
                expected.push((
                    tr.trade,
                    tr.maker_order,
                    tr.taker_side.opposite(),
                    tr.maker_fee,
                    tr.price,
                    tr.quantity,
                ));
                fees += tr.maker_fee;
            }
            if tr.taker_account == account {
                expected.push((
                    tr.trade,
                    tr.taker_order,
                    tr.taker_side,
                    tr.taker_fee,
                    tr.price,
                    tr.quantity,
                ));
                fees += tr.taker_fee;
            }
        }
        assert!(expected.len() > 10, "account {account} traded");
        assert_eq!(fills.len(), expected.len());
        for (f, e) in fills.iter().zip(&expected) {
            let Item::Fill {
                trade,
                order,
                side,
                fee,
                price,
                quantity,
                notional,
                ..
            } = f
            else {
                unreachable!()
            };
            assert_eq!((*trade, *order, *side, *fee, *price, *quantity), *e);
            assert_eq!(*notional, price * quantity);
        }
        assert_eq!(s.totals.fills, expected.len() as u64);
        assert_eq!(s.totals.fill_fees, fees);
        let bought: Decimal = expected
            .iter()
            .filter(|e| e.2 == Side::Buy)
            .map(|e| e.4 * e.5)
            .sum();
        assert_eq!(s.totals.bought_notional, bought);
        assert!(s.reconciled);
    }
}

#[test]
fn the_fee_account_earns_every_fee_of_what_was_delivered() {
    let (dir, w) = standard();
    let s = statement_of(dir.path(), FEE_ACCOUNT);
    // Fees are charged when a trade's GPUs settle, on the delivered part only.
    let all_fees: Decimal = w
        .events
        .iter()
        .flatten()
        .filter_map(|e| match gpux_engine::Event::from_bytes(e).unwrap() {
            gpux_engine::Event::TradeSettled(t) => Some(t.fees),
            _ => None,
        })
        .sum();
    assert!(all_fees > Decimal::ZERO);
    assert_eq!(s.totals.fee_income, all_fees);
    // The scenario's fee-account withdrawals (of 0.01) are in the statement too.
    assert_eq!(s.computed.usd, all_fees - s.totals.withdrawals);
    assert!(s.reconciled);
}

#[test]
fn deposits_withdrawals_cancels_and_rejections_are_listed() {
    let (dir, _w) = standard();
    let s = statement_of(dir.path(), 2);
    let count = |f: fn(&Item) -> bool| s.entries.iter().filter(|e| f(&e.item)).count();
    assert_eq!(count(|i| matches!(i, Item::AccountCreated)), 1);
    assert!(count(|i| matches!(i, Item::Deposit { .. })) >= 1);
    assert!(count(|i| matches!(i, Item::OrderAccepted { .. })) > 10);
    assert!(count(|i| matches!(i, Item::OrderCancelled { .. })) > 0);
    assert!(count(|i| matches!(i, Item::Rejected { .. })) > 0);
    assert_eq!(
        s.totals.deposits,
        s.entries
            .iter()
            .filter_map(|e| match e.item {
                Item::Deposit { amount } => Some(amount),
                _ => None,
            })
            .sum::<Decimal>()
    );
}

#[test]
fn an_unknown_account_is_a_failure() {
    let (dir, _w) = standard();
    let (outcome, out) = capture(|o| statement::run(dir.path(), 999, &Progress::hidden(), o));
    assert_eq!(
        outcome.failure().unwrap().error,
        FailureKind::UnknownAccount
    );
    assert_eq!(json_of(&out)["error"], "unknown_account");
}

#[test]
fn deliveries_and_expired_inventory_are_listed_and_leave_the_balance() {
    let (dir, w) = standard();
    let closed = gpux_engine::slot::format_slot(crate::common::SLOTS[0]);
    let mut delivered_somewhere = false;
    for account in 1..=ACCOUNTS {
        let s = statement_of(dir.path(), account);
        // The schedule entries naming this account, from the written events.
        let mut want = Vec::new();
        for e in w.events.iter().flatten() {
            if let gpux_engine::Event::DeliveryScheduled(d) =
                gpux_engine::Event::from_bytes(e).unwrap()
            {
                if d.provider == account || d.holder == account {
                    want.push((d.entry, d.provider, d.holder, d.quantity));
                }
            }
        }
        let got: Vec<_> = s
            .entries
            .iter()
            .filter_map(|e| match &e.item {
                Item::Delivery {
                    entry,
                    slot,
                    role,
                    provider,
                    holder,
                    quantity,
                    ..
                } => {
                    assert_eq!(slot, &closed);
                    let expected_role = match (*provider == account, *holder == account) {
                        (true, true) => "both",
                        (true, false) => "provider",
                        _ => "holder",
                    };
                    assert_eq!(*role, expected_role);
                    Some((*entry, *provider, *holder, *quantity))
                }
                _ => None,
            })
            .collect();
        assert_eq!(got, want, "account {account}");
        delivered_somewhere |= !got.is_empty();
        // After the gate, the closed slot is gone from the account's GPUs.
        assert!(s
            .computed
            .gpu_hours
            .keys()
            .all(|k| k.1 == crate::common::SLOTS[1]));
        assert!(s.reconciled);
    }
    assert!(delivered_somewhere);
}

#[test]
fn each_settled_delivery_is_listed_with_its_slot_for_both_its_parties() {
    let (dir, w) = standard();
    // Every delivery_settled in the ledger, by the accounts it names.
    let settled: Vec<gpux_engine::event::DeliverySettled> = w
        .events
        .iter()
        .flatten()
        .filter_map(|e| match gpux_engine::Event::from_bytes(e).unwrap() {
            gpux_engine::Event::DeliverySettled(d) => Some(d),
            _ => None,
        })
        .collect();
    assert!(!settled.is_empty(), "the scenario settles its first slot");
    for account in 1..=ACCOUNTS {
        let s = statement_of(dir.path(), account);
        let listed: Vec<(u64, String, Decimal)> = s
            .entries
            .iter()
            .filter_map(|e| match &e.item {
                Item::Settlement {
                    entry,
                    slot,
                    delivered,
                    ..
                } => Some((*entry, slot.clone(), *delivered)),
                _ => None,
            })
            .collect();
        let want: Vec<(u64, String, Decimal)> = settled
            .iter()
            .filter(|d| d.provider == account || d.holder == account)
            .map(|d| (d.entry, gpux_engine::slot::format_slot(d.slot), d.delivered))
            .collect();
        assert_eq!(listed, want, "account {account}");
        assert!(s.reconciled);
    }
}
