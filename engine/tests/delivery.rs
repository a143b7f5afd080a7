//! Pay on delivery: escrow at the fill, delivery reports, disputes and their
//! resolution, settlement along chains of trades, and providers' records — as
//! scenarios whose expected lines are worked out from the rules, and as a property
//! over random trading, reporting and disputing.
//!
//! The default market (tick 0.01, lot 1, maker 10 bps, taker 20 bps) and slot `S`
//! (3600 s) are `common`'s. Under the default rules the slot's gate closes at
//! 3300 s, reports are taken from 3600 s until 10800 s (an hour after the slot's
//! end), disputes until 14400 s (two hours after).

mod common;

use common::*;
use gpux_engine::{Engine, EntryState, Event, RejectReason, Side};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

const SEC: u64 = 1_000_000_000;
/// The slot's start: its gate has closed, reports and disputes open.
const START: u64 = S * SEC;
/// Last instant of the report window.
const REPORT_UNTIL: u64 = (S + 3_600 + 3_600) * SEC;
/// Last instant of the dispute window.
const DISPUTE_UNTIL: u64 = (S + 3_600 + 7_200) * SEC;

/// Provider 1 (10 GPUs) sells 4 GPUs of slot `S` at 2.50 to demander 2 (trade 1:
/// the provider's ask is the maker, 10 bps; the buyer the taker, 20 bps).
fn sold() -> Exchange {
    let mut x = Exchange::new();
    x.provider(1, "10").demander(2, "100");
    x.given(sell(1, "4", "2.50")); // #1
    x.given(buy(2, "4", "2.50")); // #2, trade 1
    x
}

/// [`sold`], and the slot's gate closes at its start: entry 1 (4 GPUs, 1 -> 2).
fn scheduled() -> Exchange {
    let mut x = sold();
    x.at(START);
    x.given(tick());
    x
}

fn reliability(x: &Exchange, provider: u64) -> (String, String, u64, Option<String>) {
    let p = x.engine.provider(provider).expect("a record");
    (
        p.obligated.to_string(),
        p.delivered.to_string(),
        p.disputes_lost,
        p.reliability.map(|r| r.to_string()),
    )
}

#[test]
fn a_fill_escrows_the_buyers_money_and_owes_the_seller_until_delivery() {
    let x = sold();
    // Notional 10: the buyer pays it and its 0.02 fee into escrow; the seller is
    // owed 10 less its 0.01 fee; the exchange has charged nothing yet.
    assert_eq!(x.usd(2), "89.98 + 0 held");
    assert_eq!(x.owed(2), "escrow 10.02, pending 0");
    assert_eq!(x.usd(1), "0 + 0 held");
    assert_eq!(x.owed(1), "escrow 0, pending 9.99");
    assert_eq!(x.usd(0), "0 + 0 held");
    // Escrowed money cannot be withdrawn.
    let mut x = x;
    x.rejects(withdraw(2, "89.99"), RejectReason::InsufficientFunds);
    x.rejects(withdraw(1, "0.01"), RejectReason::InsufficientFunds);
}

#[test]
fn a_report_that_is_not_disputed_settles_at_the_dispute_deadline() {
    let mut x = sold();
    x.at(START);
    then(
        &x.when(tick()),
        &[
            "inventory expired acct 1 6",
            "delivery 1: acct 1 -> acct 2 4 via trades [1]",
            "slot closed: 4 scheduled, 6 expired",
        ],
    );
    let entry = x.engine.entry(1).unwrap();
    assert_eq!(entry.state, EntryState::Scheduled);
    assert_eq!((entry.report_until, entry.dispute_until), (10_800, 14_400));
    then(
        &x.when(report(1, 1, "3")),
        &["delivery 1: acct 1 reported 3 delivered"],
    );
    assert_eq!(x.engine.entry(1).unwrap().state, EntryState::Reported);
    // The report deadline passing changes nothing for a reported entry, nor does
    // the last instant of the dispute window.
    x.at(REPORT_UNTIL + 1);
    then(&x.when(tick()), &[]);
    x.at(DISPUTE_UNTIL);
    then(&x.when(tick()), &[]);
    x.at(DISPUTE_UNTIL + 1);
    // 3 of 4 delivered: the seller gets 7.50 less 3/4 of its 0.01 fee; the buyer
    // gets back 2.50 and 1/4 of its 0.02 fee; fees 0.015 + 0.0075.
    then(
        &x.when(tick()),
        &[
            "trade 1 settled for delivery 1: 3 of 4 delivered, acct 1 paid 7.4925 usd, acct 2 refunded 2.505 usd, fees 0.0225 usd",
            "delivery 1 settled (reported): acct 1 -> acct 2 3 of 4, paid 7.4925 usd, refunded 2.505 usd, fees 0.0225 usd",
        ],
    );
    assert_eq!(x.usd(1), "7.4925 + 0 held");
    assert_eq!(x.usd(2), "92.485 + 0 held");
    assert_eq!(x.usd(0), "0.0225 + 0 held");
    for a in [1, 2] {
        assert_eq!(x.owed(a), "escrow 0, pending 0");
    }
    assert!(
        x.engine.entry(1).is_none(),
        "settled entries leave the engine"
    );
    assert_eq!(
        reliability(&x, 1),
        ("4".into(), "3".into(), 0, Some("0.75".into()))
    );
    assert!(x.engine.provider(2).is_none(), "2 never had to deliver");
}

#[test]
fn an_entry_never_reported_settles_as_not_delivered_at_the_report_deadline() {
    let mut x = scheduled();
    x.at(REPORT_UNTIL);
    then(&x.when(tick()), &[]);
    x.at(REPORT_UNTIL + 1);
    then(
        &x.when(tick()),
        &[
            "trade 1 settled for delivery 1: 0 of 4 delivered, acct 1 paid 0 usd, acct 2 refunded 10.02 usd, fees 0 usd",
            "delivery 1 settled (unreported): acct 1 -> acct 2 0 of 4, paid 0 usd, refunded 10.02 usd, fees 0 usd",
        ],
    );
    assert_eq!(x.usd(2), "100 + 0 held");
    assert_eq!(x.usd(1), "0 + 0 held");
    assert_eq!(x.usd(0), "0 + 0 held");
    assert_eq!(
        reliability(&x, 1),
        ("4".into(), "0".into(), 0, Some("0".into()))
    );
}

#[test]
fn a_disputed_entry_waits_for_its_resolution_and_a_lower_finding_counts_against_the_provider() {
    let mut x = scheduled();
    x.given(report(1, 1, "4"));
    x.at(START + SEC);
    then(
        &x.when(dispute(2, 1, "1")),
        &["delivery 1: acct 2 disputed, received 1 (reported 4)"],
    );
    assert_eq!(x.engine.entry(1).unwrap().state, EntryState::Disputed);
    // Its deadlines pass; it waits.
    x.at(DISPUTE_UNTIL + 1);
    then(&x.when(tick()), &[]);
    assert_eq!(x.owed(2), "escrow 10.02, pending 0");
    // Half delivered, as decided: 5 paid less half of the 0.01 fee; 5 and half of
    // the 0.02 fee refunded.
    then(
        &x.when(resolve(1, "2")),
        &[
            "trade 1 settled for delivery 1: 2 of 4 delivered, acct 1 paid 4.995 usd, acct 2 refunded 5.01 usd, fees 0.015 usd",
            "delivery 1 settled (resolved, dispute lost): acct 1 -> acct 2 2 of 4, paid 4.995 usd, refunded 5.01 usd, fees 0.015 usd",
        ],
    );
    assert_eq!(x.usd(1), "4.995 + 0 held");
    assert_eq!(x.usd(2), "94.99 + 0 held");
    assert_eq!(
        reliability(&x, 1),
        ("4".into(), "2".into(), 1, Some("0.5".into()))
    );
}

#[test]
fn a_dispute_before_any_report_that_is_resolved_in_full_is_not_lost() {
    let mut x = scheduled();
    x.given(dispute(2, 1, "0"));
    then(
        &x.when(resolve(1, "4")),
        &[
            "trade 1 settled for delivery 1: 4 of 4 delivered, acct 1 paid 9.99 usd, acct 2 refunded 0 usd, fees 0.03 usd",
            "delivery 1 settled (resolved): acct 1 -> acct 2 4 of 4, paid 9.99 usd, refunded 0 usd, fees 0.03 usd",
        ],
    );
    assert_eq!(
        reliability(&x, 1),
        ("4".into(), "4".into(), 0, Some("1".into()))
    );
}

#[test]
fn a_chain_of_resales_settles_each_trade_at_its_own_price() {
    let mut x = Exchange::new();
    x.provider(1, "10").demander(2, "100").demander(3, "100");
    x.given(sell(1, "6", "2.50")); // #1
    x.given(buy(2, "6", "2.50")); // #2, trade 1: notional 15, fees 0.015 / 0.03
    x.given(sell(2, "4", "2.60")); // #3
    x.given(buy(3, "4", "2.60")); // #4, trade 2: notional 10.40, fees 0.0104 / 0.0208
    assert_eq!(x.owed(2), "escrow 15.03, pending 10.3896");
    x.at(START);
    then(
        &x.when(tick()),
        &[
            "inventory expired acct 1 4",
            "delivery 1: acct 1 -> acct 2 2 via trades [1]",
            "delivery 2: acct 1 -> acct 3 4 via trades [1, 2]",
            "slot closed: 6 scheduled, 4 expired",
        ],
    );
    x.given(report(1, 1, "2"));
    x.given(report(1, 2, "3"));
    x.at(DISPUTE_UNTIL + 1);
    // Entry 1: 2 of trade 1's 6 GPUs, all delivered. Entry 2: the other 4 of
    // trade 1 and all of trade 2, 3 of 4 delivered; each trade pays 3/4 of its
    // own notional and charges 3/4 of its own fees.
    then(
        &x.when(tick()),
        &[
            "trade 1 settled for delivery 1: 2 of 2 delivered, acct 1 paid 4.995 usd, acct 2 refunded 0 usd, fees 0.015 usd",
            "delivery 1 settled (reported): acct 1 -> acct 2 2 of 2, paid 4.995 usd, refunded 0 usd, fees 0.015 usd",
            "trade 1 settled for delivery 2: 3 of 4 delivered, acct 1 paid 7.4925 usd, acct 2 refunded 2.505 usd, fees 0.0225 usd",
            "trade 2 settled for delivery 2: 3 of 4 delivered, acct 2 paid 7.7922 usd, acct 3 refunded 2.6052 usd, fees 0.0234 usd",
            "delivery 2 settled (reported): acct 1 -> acct 3 3 of 4, paid 15.2847 usd, refunded 5.1102 usd, fees 0.0459 usd",
        ],
    );
    assert_eq!(x.usd(1), "12.4875 + 0 held");
    // The reseller paid 15.03 into escrow, got 2.505 back and 7.7922 for its sale.
    assert_eq!(x.usd(2), "95.2672 + 0 held");
    assert_eq!(x.usd(3), "92.1844 + 0 held");
    assert_eq!(x.usd(0), "0.0609 + 0 held");
    assert_eq!(
        reliability(&x, 1),
        ("6".into(), "5".into(), 0, Some("0.8333".into()))
    );
}

#[test]
fn reports_disputes_and_resolutions_are_refused_outside_their_rules() {
    use RejectReason::*;
    // Before the slot starts (its gate has closed), nothing can be reported or
    // disputed yet.
    let mut x = sold();
    x.at((S - 300) * SEC + 1);
    x.given(tick());
    x.rejects(report(1, 1, "4"), ReportWindowClosed);
    x.rejects(dispute(2, 1, "0"), DisputeWindowClosed);

    let mut x = scheduled();
    x.rejects(report(1, 2, "1"), UnknownEntry);
    x.rejects(report(2, 1, "1"), NotYourEntry);
    x.rejects(dispute(1, 1, "1"), NotYourEntry);
    x.rejects(report(1, 1, "5"), QuantityExceedsEntry);
    x.rejects(dispute(2, 1, "5"), QuantityExceedsEntry);
    x.rejects(report(1, 1, "1.5"), RejectReason::OffLotQuantity);
    x.rejects(report(1, 1, "-1"), RejectReason::InvalidAmount);
    x.rejects(report(9, 1, "1"), UnknownAccount);
    x.rejects(resolve(1, "1"), NotDisputed);
    x.given(report(1, 1, "4"));
    // A report may be corrected until the report deadline, not after.
    x.given(report(1, 1, "3"));
    x.at(REPORT_UNTIL + 1);
    x.rejects(report(1, 1, "4"), ReportWindowClosed);
    x.given(dispute(2, 1, "2"));
    x.rejects(dispute(2, 1, "1"), EntryDisputed);
    x.at(REPORT_UNTIL);
    x.rejects(report(1, 1, "4"), EntryDisputed);
    x.rejects(resolve(1, "5"), QuantityExceedsEntry);
    x.given(resolve(1, "3"));
    x.rejects(resolve(1, "3"), UnknownEntry);

    // After the dispute deadline, a reported entry can no longer be disputed.
    let mut x = scheduled();
    x.given(report(1, 1, "4"));
    x.at(DISPUTE_UNTIL);
    x.given(dispute(2, 1, "4")); // the last instant still counts
    let mut x = scheduled();
    x.given(report(1, 1, "4"));
    x.at(DISPUTE_UNTIL + 1);
    x.given(tick()); // settles it as reported
    x.rejects(dispute(2, 1, "4"), UnknownEntry);
}

#[test]
fn a_provider_record_forgets_what_settled_more_than_thirty_days_ago() {
    let mut x = scheduled();
    x.at(REPORT_UNTIL + 1);
    x.given(tick()); // settles unreported: 0 of 4
    assert_eq!(reliability(&x, 1).3, Some("0".into()));
    // Thirty days later (in whole hours of settlement time) it is gone.
    x.at(REPORT_UNTIL + 30 * 24 * 3_600 * SEC);
    x.given(tick());
    let p = x.engine.provider(1).unwrap();
    assert_eq!((p.obligated, p.reliability), (Decimal::ZERO, None));
    assert!(x.engine.providers().is_empty());
}

#[test]
fn settled_entries_survive_a_snapshot_and_restore() {
    let mut x = scheduled();
    x.given(report(1, 1, "3"));
    let bytes = x.engine.snapshot();
    let restored: Engine = Engine::restore(&bytes).unwrap();
    assert_eq!(restored.state_hash(), x.engine.state_hash());
    assert_eq!(restored.entry(1), x.engine.entry(1));
    assert_eq!(restored.balances(2), x.engine.balances(2));
}

// ----- property ---------------------------------------------------------------

/// What happens to one entry after the gate.
#[derive(Debug, Clone)]
enum Fate {
    /// Never reported.
    Silent,
    /// Reported this many GPUs (clamped to the entry).
    Reported(u64),
    /// Reported, then disputed, then resolved at these (clamped).
    Disputed {
        reported: Option<u64>,
        received: u64,
        resolved: u64,
    },
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        Just(Fate::Silent),
        (0u64..6).prop_map(Fate::Reported),
        (proptest::option::of(0u64..6), 0u64..6, 0u64..6).prop_map(
            |(reported, received, resolved)| Fate::Disputed {
                reported,
                received,
                resolved
            }
        ),
    ]
}

/// A trade: seller, buyer, GPUs, price in cents. Sellers with nothing to sell
/// are refused and change nothing.
fn trades() -> impl Strategy<Value = Vec<(u64, u64, u64, i64)>> {
    proptest::collection::vec((1u64..=4, 1u64..=4, 1u64..=5, 200i64..=300), 1..12)
}

/// Every trade of the script, from its `trade_executed` events: (buyer, seller,
/// GPUs, notional in micro-USD).
#[derive(Default)]
struct Ledger {
    trades: BTreeMap<u64, (u64, u64, Decimal, Decimal)>,
    /// GPUs of each trade settled, and of those delivered.
    settled: BTreeMap<u64, (Decimal, Decimal)>,
    /// Per provider: obligated, delivered (from `delivery_settled`).
    record: BTreeMap<u64, (Decimal, Decimal, u64)>,
}

impl Ledger {
    fn take(&mut self, events: &[Event]) -> Result<(), TestCaseError> {
        for e in events {
            match e {
                Event::TradeExecuted(t) => {
                    let (buyer, seller) = match t.taker_side {
                        gpux_engine::Side::Buy => (t.taker_account, t.maker_account),
                        gpux_engine::Side::Sell => (t.maker_account, t.taker_account),
                    };
                    self.trades
                        .insert(t.trade, (buyer, seller, t.quantity, t.price));
                }
                Event::TradeSettled(s) => {
                    let &(buyer, seller, _, price) = self
                        .trades
                        .get(&s.trade)
                        .ok_or_else(|| TestCaseError::fail("settled an unknown trade"))?;
                    prop_assert_eq!((s.buyer, s.seller), (buyer, seller));
                    // Never paid for GPUs not delivered: at most the delivered
                    // notional, and nothing at all when nothing was delivered.
                    prop_assert!(s.paid + s.fees <= s.delivered * price + s.fees);
                    prop_assert!(s.paid <= s.delivered * price);
                    if s.delivered.is_zero() {
                        prop_assert!(s.paid.is_zero() && s.fees.is_zero());
                    }
                    let v = self.settled.entry(s.trade).or_default();
                    v.0 += s.quantity;
                    v.1 += s.delivered;
                }
                Event::DeliverySettled(d) => {
                    let r = self.record.entry(d.provider).or_default();
                    r.0 += d.quantity;
                    r.1 += d.delivered;
                    r.2 += u64::from(d.dispute_lost);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn clamp(v: u64, max: Decimal) -> String {
    Decimal::from(v).min(max).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random trades (resales among them), then every entry reported, disputed
    /// and resolved at random, and time runs past every deadline: each trade is
    /// settled exactly once over all its GPUs, no seller is paid for an
    /// undelivered GPU, escrow and pending are empty at the end and USD is
    /// conserved to the micro-dollar (the harness checks the engine's invariants
    /// after every command), and each provider's record equals a recomputation
    /// from the settlement events.
    #[test]
    fn escrow_is_conserved_and_every_trade_settles_exactly_once(
        script in trades(),
        fates in proptest::collection::vec(fate(), 32),
    ) {
        let mut x = Exchange::new();
        for a in 1..=4 {
            x.trader(a, "1000", "5");
        }
        let mut ledger = Ledger::default();
        for (seller, buyer, gpus, cents) in script {
            let price = Decimal::new(cents, 2).to_string();
            let q = gpus.to_string();
            ledger.take(&x.run(sell(seller, &q, &price).ioc()))?;
            ledger.take(&x.run(sell(seller, &q, &price)))?;
            ledger.take(&x.run(buy(buyer, &q, &price).ioc()))?;
        }
        x.at(START);
        let closing = x.run(tick());
        ledger.take(&closing)?;
        let entries: Vec<(u64, u64, u64, Decimal)> = closing
            .iter()
            .filter_map(|e| match e {
                Event::DeliveryScheduled(d) => Some((d.entry, d.provider, d.holder, d.quantity)),
                _ => None,
            })
            .collect();
        for ((entry, provider, holder, quantity), fate) in entries.iter().zip(fates.iter().cycle()) {
            let (entry, provider, holder, q) = (*entry, *provider, *holder, *quantity);
            match fate {
                Fate::Silent => {}
                Fate::Reported(r) => {
                    ledger.take(&x.run(report(provider, entry, &clamp(*r, q))))?;
                }
                Fate::Disputed { reported, received, resolved } => {
                    if let Some(r) = reported {
                        ledger.take(&x.run(report(provider, entry, &clamp(*r, q))))?;
                    }
                    ledger.take(&x.run(dispute(holder, entry, &clamp(*received, q))))?;
                    ledger.take(&x.run(resolve(entry, &clamp(*resolved, q))))?;
                }
            }
        }
        x.at(DISPUTE_UNTIL + 1);
        ledger.take(&x.run(tick()))?;
        prop_assert_eq!(x.engine.unsettled_entries(), 0);
        for a in 0..=4 {
            prop_assert_eq!(x.owed(a), "escrow 0, pending 0");
        }
        // Every trade settled over exactly its GPUs.
        prop_assert_eq!(
            ledger.settled.keys().collect::<Vec<_>>(),
            ledger.trades.keys().collect::<Vec<_>>()
        );
        for (t, (settled, _)) in &ledger.settled {
            prop_assert_eq!(*settled, ledger.trades[t].2, "trade {}", t);
        }
        // USD is conserved: 4 × 1000 deposited, nothing withdrawn.
        let total: Decimal = (0..=4)
            .map(|a| x.engine.balances(a).unwrap().usd)
            .map(|u| u.available + u.held + u.escrow)
            .sum();
        prop_assert_eq!(total, Decimal::from(4_000));
        // Records equal a recomputation from the events.
        for (provider, (obligated, delivered, lost)) in &ledger.record {
            let p = x.engine.provider(*provider).unwrap();
            prop_assert_eq!((p.obligated, p.delivered, p.disputes_lost), (*obligated, *delivered, *lost));
            let want = (*delivered / *obligated)
                .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::ToZero)
                .normalize();
            prop_assert_eq!(p.reliability, Some(want));
        }
        prop_assert_eq!(x.engine.providers().len(), ledger.record.len());
    }
}

#[test]
fn a_reliability_floor_skips_the_asks_of_sellers_below_it() {
    let mut x = scheduled();
    // Provider 1 delivered 2 of 4: reliability 0.5.
    x.given(dispute(2, 1, "2"));
    x.given(resolve(1, "2"));
    assert_eq!(reliability(&x, 1).3, Some("0.5".into()));
    // A later slot: provider 1 (0.5) asks 2.00 first, provider 3 (new) 2.10.
    const S2: u64 = S + 4 * 3_600;
    x.given(create_account(3));
    x.given(add_capacity_range(1, M, S2, S2, "5"));
    x.given(add_capacity_range(3, M, S2, S2, "5"));
    x.given(sell(1, "5", "2.00").at_slot(S2)); // #3
    x.given(sell(3, "5", "2.10").at_slot(S2)); // #4
    x.given(deposit(2, "100"));
    // A floor above 0.5 skips provider 1 and new provider 3: nothing to trade.
    then(
        &x.when(buy(2, "2", "2.50").at_slot(S2).ioc().min_reliability("0.6")),
        &[
            "accepted #5 acct 2 slot 18000 buy 2 @ 2.50 ioc",
            "cancelled #5 acct 2 slot 18000 buy 2 @ 2.50: ioc_remainder",
        ],
    );
    // At 0.5 provider 1 qualifies; new provider 3 still does not.
    then(
        &x.when(buy(2, "7", "2.50").at_slot(S2).ioc().min_reliability("0.5")),
        &[
            "accepted #6 acct 2 slot 18000 buy 7 @ 2.50 ioc",
            "trade 2 slot 18000: 5 @ 2.00, maker #3 acct 1 (fee 0.01, left 0), taker #6 acct 2 buy (fee 0.02, left 2)",
            "cancelled #6 acct 2 slot 18000 buy 2 @ 2.50: ioc_remainder",
        ],
    );
    // A FOK is refused when the eligible asks cannot fill it, though all asks
    // could (a refused order takes no id); a floor of 0 trades with anyone, new
    // providers too.
    x.rejects(
        buy(2, "5", "2.50").at_slot(S2).fok().min_reliability("0.5"),
        RejectReason::FokNotFillable,
    );
    assert_eq!(x.levels_at(M, S2, Side::Sell), ["5 @ 2.10"]);
    then(
        &x.when(buy(2, "1", "2.50").at_slot(S2).ioc().min_reliability("0")),
        &[
            "accepted #7 acct 2 slot 18000 buy 1 @ 2.50 ioc",
            "trade 3 slot 18000: 1 @ 2.10, maker #4 acct 3 (fee 0.0021, left 4), taker #7 acct 2 buy (fee 0.0042, left 0)",
        ],
    );
    // The floor is for buys that never rest, from 0 to 1 with 4 decimals.
    for bad in [
        buy(2, "1", "2.50").at_slot(S2).min_reliability("0.5"),
        sell(1, "1", "2.50")
            .at_slot(S2)
            .ioc()
            .min_reliability("0.5"),
        buy(2, "1", "2.50")
            .at_slot(S2)
            .ioc()
            .min_reliability("1.01"),
        buy(2, "1", "2.50")
            .at_slot(S2)
            .ioc()
            .min_reliability("-0.1"),
        buy(2, "1", "2.50")
            .at_slot(S2)
            .ioc()
            .min_reliability("0.12345"),
    ] {
        x.rejects(bad, RejectReason::InvalidMinReliability);
    }
}
