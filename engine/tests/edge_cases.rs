//! Edge cases that have bitten real matching engines: queue surgery followed by
//! a sweep, exact fills at level boundaries, partially filled makers keeping
//! their place, stale ids and stale best prices, maker-priced fills in both
//! directions, fee rounding, and prices and quantities at the numeric limits.
//!
//! Expected values are worked out by hand from the rules in `scenarios.rs`.

mod common;

use common::*;
use gpux_engine::{Event, OrderId, RejectReason, Side};

/// Four asks at 2.50, alternating owners: #1 (acct 1) 2, #2 (acct 2) 3,
/// #3 (acct 1) 4, #4 (acct 2) 5. Account 3 has 100 USD.
fn queue_at_one_price() -> Exchange {
    let mut x = Exchange::new();
    x.provider(1, "6").provider(2, "8").demander(3, "100");
    x.given(sell(1, "2", "2.50"));
    x.given(sell(2, "3", "2.50"));
    x.given(sell(1, "4", "2.50"));
    x.given(sell(2, "5", "2.50"));
    x
}

fn owner(id: OrderId) -> u64 {
    if id % 2 == 1 {
        1
    } else {
        2
    }
}

/// `(maker, quantity)` of every trade.
fn fills(events: &[Event]) -> Vec<(OrderId, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TradeExecuted(t) => Some((t.maker_order, t.quantity.to_string())),
            _ => None,
        })
        .collect()
}

type Case = (&'static [OrderId], &'static [(OrderId, &'static str)]);

#[test]
fn cancelling_head_middle_or_tail_of_a_queue_then_sweeping_keeps_fifo() {
    // (orders cancelled, then the fills a sweep gets: maker and quantity)
    let cases: [Case; 5] = [
        (&[1], &[(2, "3"), (3, "4"), (4, "5")]),
        (&[2], &[(1, "2"), (3, "4"), (4, "5")]),
        (&[3], &[(1, "2"), (2, "3"), (4, "5")]),
        (&[4], &[(1, "2"), (2, "3"), (3, "4")]),
        (&[1, 4], &[(2, "3"), (3, "4")]),
    ];
    for (cancelled, expected) in cases {
        let mut x = queue_at_one_price();
        for &id in cancelled {
            x.given(cancel(owner(id), id));
        }
        let left: u64 = expected.iter().map(|f| f.1.parse::<u64>().unwrap()).sum();
        assert_eq!(x.asks(), [format!("{left} @ 2.50")]);
        let events = x.when(buy(3, "14", "2.50").ioc());
        let want: Vec<(OrderId, String)> =
            expected.iter().map(|&(id, q)| (id, q.to_owned())).collect();
        assert_eq!(fills(&events), want, "after cancelling {cancelled:?}");
        assert!(x.asks().is_empty());
        // The rest of the IOC is cancelled, not rested.
        assert!(x.bids().is_empty());
        let last = render(events.last().unwrap());
        assert_eq!(
            last,
            format!(
                "cancelled #5 acct 3 buy {} @ 2.50: ioc_remainder",
                14 - left
            )
        );
    }
}

#[test]
fn an_order_joining_a_level_after_a_cancel_queues_behind_the_survivors() {
    let mut x = queue_at_one_price();
    x.given(cancel(1, 1));
    x.given(add_capacity(1, "2"));
    x.given(sell(1, "2", "2.50")); // #5
    let events = x.when(buy(3, "6", "2.50").ioc());
    assert_eq!(fills(&events), [(2, "3".into()), (3, "3".into())]);
    let events = x.when(buy(3, "20", "2.50").ioc());
    assert_eq!(
        fills(&events),
        [(3, "1".into()), (4, "5".into()), (5, "2".into())]
    );
}

#[test]
fn a_sweep_that_ends_exactly_at_a_level_boundary_removes_the_level() {
    let mut x = Exchange::new();
    x.provider(1, "3")
        .provider(2, "4")
        .provider(4, "5")
        .demander(3, "100");
    x.given(sell(1, "3", "2.50")); // #1
    x.given(sell(2, "4", "2.51")); // #2
    x.given(sell(4, "5", "2.52")); // #3
    then(
        &x.when(buy(3, "7", "2.52").ioc()),
        &[
            "accepted #4 acct 3 buy 7 @ 2.52 ioc",
            // 3 × 2.50 = 7.5: maker 0.0075, taker 0.015.
            "trade 1: 3 @ 2.50, maker #1 acct 1 (fee 0.0075, left 0), taker #4 acct 3 buy (fee 0.015, left 4)",
            // 4 × 2.51 = 10.04: maker 0.01004, taker 0.02008. Nothing left: no cancel.
            "trade 2: 4 @ 2.51, maker #2 acct 2 (fee 0.01004, left 0), taker #4 acct 3 buy (fee 0.02008, left 0)",
        ],
    );
    assert_eq!(x.asks(), ["5 @ 2.52"]);
    let m = mid(M);
    assert_eq!(
        x.engine.quantity_at(&m, S, Side::Sell, d("2.50")),
        Some(d("0"))
    );
    assert_eq!(
        x.engine.quantity_at(&m, S, Side::Sell, d("2.51")),
        Some(d("0"))
    );
    assert_eq!(x.engine.best_ask(&m, S).unwrap().price, d("2.52"));
    // A new ask inside the spread becomes the best, and only it trades at 2.51.
    x.given(add_capacity(2, "1"));
    x.given(sell(2, "1", "2.51")); // #5
    assert_eq!(makers(&x.when(buy(3, "2", "2.51").ioc())), [5]);
}

#[test]
fn a_sell_sweep_that_ends_exactly_at_a_level_boundary_removes_the_level() {
    let mut x = Exchange::new();
    x.demander(1, "100").demander(2, "100").provider(3, "7");
    x.given(buy(1, "3", "2.50")); // #1
    x.given(buy(2, "4", "2.49")); // #2
    x.given(buy(1, "5", "2.48")); // #3
    then(
        &x.when(sell(3, "7", "2.48").ioc()),
        &[
            "accepted #4 acct 3 sell 7 @ 2.48 ioc",
            "trade 1: 3 @ 2.50, maker #1 acct 1 (fee 0.0075, left 0), taker #4 acct 3 sell (fee 0.015, left 4)",
            // 4 × 2.49 = 9.96: maker 0.00996, taker 0.01992.
            "trade 2: 4 @ 2.49, maker #2 acct 2 (fee 0.00996, left 0), taker #4 acct 3 sell (fee 0.01992, left 0)",
        ],
    );
    assert_eq!(x.bids(), ["5 @ 2.48"]);
    // Seller: 7.5 - 0.015 + 9.96 - 0.01992, owed until delivery, then paid.
    assert_eq!(x.usd(3), "0 + 0 held");
    assert_eq!(x.owed(3), "escrow 0, pending 17.42508");
    x.deliver_in_full();
    assert_eq!(x.usd(3), "17.42508 + 0 held");
    assert_eq!(x.owed(3), "escrow 0, pending 0");
}

#[test]
fn a_partially_filled_maker_keeps_its_place_across_aggressors() {
    let mut x = Exchange::new();
    x.provider(1, "10").provider(2, "20").demander(3, "100");
    x.given(sell(1, "10", "2.50")); // #1
    x.given(sell(2, "10", "2.50")); // #2

    let trades = |events: &[Event]| -> Vec<String> {
        render_all(events)
            .into_iter()
            .filter(|l| l.starts_with("trade"))
            .collect()
    };
    assert_eq!(
        trades(&x.when(buy(3, "3", "2.50").ioc())), // #3
        ["trade 1: 3 @ 2.50, maker #1 acct 1 (fee 0.0075, left 7), taker #3 acct 3 buy (fee 0.015, left 0)"]
    );
    // A newcomer at the same price queues behind both.
    x.given(sell(2, "10", "2.50")); // #4
    assert_eq!(
        trades(&x.when(buy(3, "3", "2.50").ioc())), // #5
        ["trade 2: 3 @ 2.50, maker #1 acct 1 (fee 0.0075, left 4), taker #5 acct 3 buy (fee 0.015, left 0)"]
    );
    assert_eq!(
        trades(&x.when(buy(3, "5", "2.50").ioc())), // #6
        [
            "trade 3: 4 @ 2.50, maker #1 acct 1 (fee 0.01, left 0), taker #6 acct 3 buy (fee 0.02, left 1)",
            "trade 4: 1 @ 2.50, maker #2 acct 2 (fee 0.0025, left 9), taker #6 acct 3 buy (fee 0.005, left 0)",
        ]
    );
    assert_eq!(x.asks(), ["19 @ 2.50"]);
    assert_eq!(x.gpu(1), "0 + 0 held");
}

#[test]
fn filled_cancelled_expired_and_never_issued_orders_are_unknown() {
    let mut x = Exchange::new();
    x.provider(1, "10").demander(2, "100");
    x.given(sell(1, "2", "2.50").client("f")); // #1, filled below
    x.given(buy(2, "2", "2.50").ioc()); // #2, the filling taker
    x.given(sell(1, "2", "2.60").client("c")); // #3, cancelled below
    x.given(cancel_client(1, "c"));
    x.given(sell(1, "2", "2.70").gtd(T0 + 10)); // #4, expires below
    x.at(T0 + 11);
    x.given(deposit(2, "1"));
    assert!(x.open(1).is_empty());

    for (cmd, reason) in [
        (cancel(1, 1), RejectReason::UnknownOrder),
        (cancel_client(1, "f"), RejectReason::UnknownOrder),
        (amend(1, 1).qty("1").into(), RejectReason::UnknownOrder),
        (cancel(2, 2), RejectReason::UnknownOrder),
        (amend(2, 2).price("2.40").into(), RejectReason::UnknownOrder),
        (cancel(1, 3), RejectReason::UnknownOrder),
        (
            amend_client(1, "c").qty("1").into(),
            RejectReason::UnknownOrder,
        ),
        (cancel(1, 4), RejectReason::UnknownOrder),
        (amend(1, 4).price("2.80").into(), RejectReason::UnknownOrder),
        (cancel(1, 5), RejectReason::UnknownOrder),
        (cancel(1, u64::MAX), RejectReason::UnknownOrder),
    ] {
        x.rejects(cmd, reason);
    }
    // Ids are never reused: the next order is #5, and the old ids still miss.
    then(
        &x.when(sell(1, "1", "2.90")),
        &[
            "accepted #5 acct 1 sell 1 @ 2.90 gtc",
            "rested #5 acct 1 sell 1 @ 2.90",
        ],
    );
    x.rejects(cancel(1, 1), RejectReason::UnknownOrder);
    assert_eq!(x.open(1), [5]);
}

#[test]
fn another_accounts_order_cannot_be_cancelled_or_amended() {
    let mut x = Exchange::new();
    x.provider(1, "10").trader(2, "100", "10");
    x.given(sell(1, "5", "2.50").client("mine")); // #1
    x.rejects(cancel(2, 1), RejectReason::NotYourOrder);
    x.rejects(amend(2, 1).qty("1"), RejectReason::NotYourOrder);
    x.rejects(amend(2, 1).price("2.40"), RejectReason::NotYourOrder);
    // Client ids belong to their account: account 2 has no "mine".
    x.rejects(cancel_client(2, "mine"), RejectReason::UnknownOrder);
    // Mass cancel touches only one's own orders.
    then(
        &x.when(mass_cancel(2)),
        &["mass cancelled acct 2 in all markets: 0 orders"],
    );
    assert_eq!(x.asks(), ["5 @ 2.50"]);
}

#[test]
fn a_best_price_cleared_by_a_cancel_does_not_linger() {
    let mut x = Exchange::new();
    x.trader(1, "100", "10").trader(2, "100", "10");
    x.given(buy(1, "1", "2.50")); // #1
    x.given(buy(1, "2", "2.49")); // #2
    x.given(buy(1, "3", "2.48")); // #3
    x.given(sell(1, "1", "2.60")); // #4
    x.given(sell(1, "2", "2.61")); // #5

    x.given(cancel(1, 1));
    assert_eq!(x.bids(), ["2 @ 2.49", "3 @ 2.48"]);
    // A sell at the cleared price must rest, not trade with a ghost.
    then(
        &x.when(sell(2, "1", "2.50")),
        &[
            "accepted #6 acct 2 sell 1 @ 2.50 gtc",
            "rested #6 acct 2 sell 1 @ 2.50",
        ],
    );
    // A sell at the new best trades at it.
    assert_eq!(makers(&x.when(sell(2, "1", "2.49").ioc())), [2]);

    x.given(cancel(2, 6));
    x.given(cancel(1, 4));
    assert_eq!(x.asks(), ["2 @ 2.61"]);
    then(
        &x.when(buy(2, "1", "2.60")),
        &[
            "accepted #8 acct 2 buy 1 @ 2.60 gtc",
            "rested #8 acct 2 buy 1 @ 2.60",
        ],
    );
    x.given(cancel(2, 8));
    x.given(cancel(1, 2));
    x.given(cancel(1, 3));
    x.given(cancel(1, 5));
    assert!(x.bids().is_empty() && x.asks().is_empty());
    assert_eq!(x.engine.best_bid(&mid(M), S), None);
    assert_eq!(x.engine.best_ask(&mid(M), S), None);
}

#[test]
fn fills_happen_at_the_makers_price_in_both_directions() {
    let mut x = Exchange::new();
    x.provider(1, "10").demander(2, "100");

    // A buy limited at 2.60 meets an ask at 2.50.
    x.given(sell(1, "5", "2.50")); // #1
    then(
        &x.when(buy(2, "5", "2.60")),
        &[
            "accepted #2 acct 2 buy 5 @ 2.60 gtc",
            "trade 1: 5 @ 2.50, maker #1 acct 1 (fee 0.0125, left 0), taker #2 acct 2 buy (fee 0.025, left 0)",
        ],
    );
    // Held 13 + 0.026 at the limit; paid 12.5 + 0.025; the rest is free again.
    assert_eq!(x.usd(2), "87.475 + 0 held");

    // A sell limited at 2.40 meets a bid at 2.50.
    x.given(buy(2, "5", "2.50")); // #3
    then(
        &x.when(sell(1, "5", "2.40")),
        &[
            "accepted #4 acct 1 sell 5 @ 2.40 gtc",
            "trade 2: 5 @ 2.50, maker #3 acct 2 (fee 0.0125, left 0), taker #4 acct 1 sell (fee 0.025, left 0)",
        ],
    );
    assert_eq!(x.usd(2), "74.9625 + 0 held");
    // The seller and the exchange are paid once the GPUs are delivered.
    assert_eq!(x.owed(1), "escrow 0, pending 24.9625");
    assert_eq!(x.owed(2), "escrow 25.0375, pending 0");
    assert_eq!(x.usd(0), "0 + 0 held");
    x.deliver_in_full();
    assert_eq!(x.usd(1), "24.9625 + 0 held");
    assert_eq!(x.usd(2), "74.9625 + 0 held");
    assert_eq!(x.owed(2), "escrow 0, pending 0");
    assert_eq!(x.usd(0), "0.075 + 0 held");
}

#[test]
fn fees_round_down_to_the_micro_usd_and_the_hold_covers_every_part() {
    // In N (tick 0.05, lot 0.5, taker 25 bps) one lot at one tick is 0.025 USD,
    // whose taker fee is 62.5 micro-USD: 62 after rounding down.
    let mut x = Exchange::new();
    x.given(create_account(1));
    x.given(add_capacity_in(1, N, "1"));
    x.demander(3, "100");
    x.given(sell(1, "0.5", "0.05").in_market(N)); // #1
    x.given(sell(1, "0.5", "0.05").in_market(N)); // #2
    then(
        &x.when(buy(3, "1", "0.05").in_market(N)),
        &[
            "accepted #3 acct 3 [a100.eu-west] buy 1.0 @ 0.05 gtc",
            "trade 1 [a100.eu-west]: 0.5 @ 0.05, maker #1 acct 1 (fee 0, left 0.0), taker #3 acct 3 buy (fee 0.000062, left 0.5)",
            "trade 2 [a100.eu-west]: 0.5 @ 0.05, maker #2 acct 1 (fee 0, left 0.0), taker #3 acct 3 buy (fee 0.000062, left 0.0)",
        ],
    );
    // The hold was 0.05 + 0.000125; the two fills cost 0.050124; 1 micro-USD returns.
    assert_eq!(x.usd(3), "99.949876 + 0 held");
    x.deliver_in_full();
    assert_eq!(x.usd(1), "0.05 + 0 held");
    assert_eq!(x.usd(0), "0.000124 + 0 held");
}

#[test]
fn the_largest_order_at_the_highest_price_holds_and_settles_exactly() {
    let mut x = Exchange::new();
    // 1,000,000 GPU-hours at 100,000.00: notional 10^11 USD, hold fee 20 bps.
    x.demander(1, "100199999999.999999");
    x.provider(2, "1000000");
    x.rejects(
        buy(1, "1000000", "100000.00"),
        RejectReason::InsufficientFunds,
    );
    x.given(deposit(1, "0.000001"));
    then(
        &x.when(buy(1, "1000000", "100000.00")),
        &[
            "accepted #1 acct 1 buy 1000000 @ 100000.00 gtc",
            "rested #1 acct 1 buy 1000000 @ 100000.00",
        ],
    );
    assert_eq!(x.usd(1), "0 + 100200000000 held");
    x.rejects(buy(1, "1", "100000.01"), RejectReason::PriceOutOfBand);
    x.rejects(sell(2, "1000001", "1"), RejectReason::QuantityTooLarge);
    then(
        &x.when(sell(2, "1000000", "100000.00")),
        &[
            "accepted #2 acct 2 sell 1000000 @ 100000.00 gtc",
            "trade 1: 1000000 @ 100000.00, maker #1 acct 1 (fee 100000000, left 0), taker #2 acct 2 sell (fee 200000000, left 0)",
        ],
    );
    assert_eq!(x.usd(1), "100000000 + 0 held");
    assert_eq!(x.gpu(1), "1000000 + 0 held");
    assert_eq!(x.owed(2), "escrow 0, pending 99800000000");
    x.deliver_in_full();
    assert_eq!(x.usd(2), "99800000000 + 0 held");
    assert_eq!(x.usd(0), "300000000 + 0 held");
}

#[test]
fn a_market_whose_largest_order_is_exactly_the_notional_limit() {
    let mut x = Exchange::new();
    let big = "x1.max";
    then(
        &x.when(
            list_market(big, "1", "1", 1000, 1000)
                .max_price("1000000")
                .max_quantity("1000000"),
        ),
        // 10^6 USD × 10^6 GPU-hours = 10^12 USD: exactly the limit, so it lists.
        &["listed x1.max tick 1 lot 1 fees 1000/1000 bps band 1..1000000 max 1000000 slots 168h gate 300s"],
    );
    x.demander(1, "550000000000");
    x.given(create_account(2));
    x.given(add_capacity_in(2, big, "500000"));
    // The largest order's hold (1.1 × 10^12 USD) exceeds any possible balance.
    x.rejects(
        buy(1, "1000000", "1000000").in_market(big),
        RejectReason::InsufficientFunds,
    );
    // Half of it: 5 × 10^11 notional + 10% fee.
    x.given(buy(1, "500000", "1000000").in_market(big)); // #1
    assert_eq!(x.usd(1), "0 + 550000000000 held");
    then(
        &x.when(sell(2, "500000", "1").in_market(big)),
        &[
            "accepted #2 acct 2 [x1.max] sell 500000 @ 1 gtc",
            "trade 1 [x1.max]: 500000 @ 1000000, maker #1 acct 1 (fee 50000000000, left 0), taker #2 acct 2 sell (fee 50000000000, left 0)",
        ],
    );
    assert_eq!(x.usd(1), "0 + 0 held");
    assert_eq!(x.gpu_in(1, big), "500000 + 0 held");
    x.deliver_in_full();
    assert_eq!(x.usd(2), "450000000000 + 0 held");
    assert_eq!(x.usd(0), "100000000000 + 0 held");
    // Total USD is now 5.5 × 10^11; the exchange holds at most 10^12.
    x.rejects(
        deposit(2, "450000000000.000001"),
        RejectReason::BalanceLimitExceeded,
    );
    x.given(deposit(2, "450000000000"));
    assert_eq!(
        x.engine.cash_total_micros(),
        gpux_engine::limits::CASH_TOTAL_MAX_MICROS
    );
}

#[test]
fn a_market_buy_with_a_cap_beyond_any_balance_is_bounded_by_the_balance() {
    let mut x = Exchange::new();
    x.provider(1, "10").demander(3, "30");
    x.given(sell(1, "10", "2.00")); // #1
    let events = x.when(market_buy(3, "20").cap("100000000000000000000"));
    assert_eq!(
        render_all(&events),
        [
            "accepted #2 acct 3 buy 20 market ioc",
            "trade 1: 10 @ 2.00, maker #1 acct 1 (fee 0.02, left 0), taker #2 acct 3 buy (fee 0.04, left 10)",
            "cancelled #2 acct 3 buy 10 market: market_remainder",
        ]
    );
    assert_eq!(x.usd(3), "9.96 + 0 held");
}

#[test]
fn a_buy_whose_hold_exactly_equals_the_balance_is_accepted() {
    let mut x = Exchange::new();
    // 2 × 2.49 = 4.98, plus 20 bps = 0.00996: 4.98996 in all.
    x.demander(1, "4.98996");
    x.given(buy(1, "2", "2.49"));
    assert_eq!(x.usd(1), "0 + 4.98996 held");
    x.given(cancel(1, 1));
    x.given(withdraw(1, "0.000001"));
    x.rejects(buy(1, "2", "2.49"), RejectReason::InsufficientFunds);
}
