//! Scenarios a market operator can read: given a book, when a command arrives,
//! then exactly these events, this depth and these balances.
//!
//! Every expected line was written from the rules, not copied from a run:
//! - the default market `h100-sxm.us-east` has tick 0.01 USD, lot 1 GPU-hour,
//!   maker fee 10 bps and taker fee 20 bps;
//! - notional = price × quantity; fee = notional × bps / 10,000 rounded down to
//!   the micro-USD; a buy holds limit × quantity plus the fee at the larger rate;
//! - trades happen at the resting (maker) order's price;
//! - order ids count accepted orders from 1, trade ids count trades from 1.
//!
//! The harness runs the real and the reference engine side by side and checks
//! their invariants after every command (see `common`).

mod common;

use common::*;
use gpux_engine::{RejectReason, StpMode};

#[test]
fn listing_a_market_reports_its_defaults() {
    let mut x = Exchange::bare();
    then(
        &x.when(list_market(M, "0.01", "1", 10, 20)),
        // Default band: one tick up to 100,000 USD; default maximum 1,000,000 lots;
        // slots trade a week (168 hours) ahead, until 300 s before they start.
        &["listed h100-sxm.us-east tick 0.01 lot 1 fees 10/20 bps band 0.01..100000.00 max 1000000 slots 168h gate 300s"],
    );
}

#[test]
fn a_limit_order_that_does_not_cross_rests() {
    let mut x = Exchange::new();
    x.demander(1, "100").provider(2, "20");

    then(
        &x.when(buy(1, "10", "2.50")),
        &[
            "accepted #1 acct 1 buy 10 @ 2.50 gtc",
            "rested #1 acct 1 buy 10 @ 2.50",
        ],
    );
    then(
        &x.when(sell(2, "5", "2.60")),
        &[
            "accepted #2 acct 2 sell 5 @ 2.60 gtc",
            "rested #2 acct 2 sell 5 @ 2.60",
        ],
    );
    assert_eq!(x.bids(), ["10 @ 2.50"]);
    assert_eq!(x.asks(), ["5 @ 2.60"]);
    // Hold: 10 × 2.50 = 25 plus 20 bps of it (0.05).
    assert_eq!(x.usd(1), "74.95 + 25.05 held");
    assert_eq!(x.gpu(2), "15 + 5 held");
}

#[test]
fn an_ioc_buy_sweeps_to_its_limit_and_its_remainder_is_cancelled() {
    let mut x = Exchange::new();
    x.provider(1, "15").provider(2, "5").demander(3, "100");
    x.given(sell(1, "10", "2.50")); // #1
    x.given(sell(2, "5", "2.51")); // #2
    x.given(sell(1, "5", "2.52")); // #3

    then(
        &x.when(buy(3, "18", "2.51").ioc()),
        &[
            "accepted #4 acct 3 buy 18 @ 2.51 ioc",
            // 10 × 2.50 = 25: maker 0.025, taker 0.05.
            "trade 1: 10 @ 2.50, maker #1 acct 1 (fee 0.025, left 0), taker #4 acct 3 buy (fee 0.05, left 8)",
            // 5 × 2.51 = 12.55: maker 0.01255, taker 0.0251.
            "trade 2: 5 @ 2.51, maker #2 acct 2 (fee 0.01255, left 0), taker #4 acct 3 buy (fee 0.0251, left 3)",
            "cancelled #4 acct 3 buy 3 @ 2.51: ioc_remainder",
        ],
    );
    assert_eq!(x.asks(), ["5 @ 2.52"]);
    assert!(x.bids().is_empty());
    // Buyer: 100 - 25.05 - 12.5751; nothing left on hold.
    assert_eq!(x.usd(3), "62.3749 + 0 held");
    assert_eq!(x.gpu(3), "15 + 0 held");
    // Sellers receive the notional less the maker fee.
    // (once the GPUs are delivered).
    assert_eq!(x.owed(1), "escrow 0, pending 24.975");
    assert_eq!(x.gpu(1), "0 + 5 held");
    assert_eq!(x.owed(2), "escrow 0, pending 12.53745");
    assert_eq!(x.gpu(2), "0 + 0 held");
    x.deliver_in_full();
    assert_eq!(x.usd(1), "24.975 + 0 held");
    assert_eq!(x.usd(2), "12.53745 + 0 held");
    // Every fee lands in account 0: 0.025 + 0.05 + 0.01255 + 0.0251.
    assert_eq!(x.usd(0), "0.11265 + 0 held");
    // ...which the exchange may withdraw.
    then(
        &x.when(withdraw(0, "0.1")),
        &["withdrawn acct 0 0.1 usd (available 0.01265)"],
    );
}

#[test]
fn a_marketable_limit_stops_at_its_limit_and_rests_the_rest() {
    let mut x = Exchange::new();
    x.provider(1, "10").provider(2, "5").demander(3, "100");
    x.given(sell(1, "10", "2.50")); // #1
    x.given(sell(2, "5", "2.52")); // #2

    then(
        &x.when(buy(3, "14", "2.51")),
        &[
            "accepted #3 acct 3 buy 14 @ 2.51 gtc",
            "trade 1: 10 @ 2.50, maker #1 acct 1 (fee 0.025, left 0), taker #3 acct 3 buy (fee 0.05, left 4)",
            "rested #3 acct 3 buy 4 @ 2.51",
        ],
    );
    assert_eq!(x.bids(), ["4 @ 2.51"]);
    assert_eq!(x.asks(), ["5 @ 2.52"]);
    // Paid 25.05 for the fill (at 2.50, not its 2.51 limit); still holds
    // 4 × 2.51 = 10.04 + 0.02008 for the resting rest.
    assert_eq!(x.usd(3), "64.88992 + 10.06008 held");
    assert_eq!(x.gpu(3), "10 + 0 held");
}

#[test]
fn a_marketable_sell_stops_at_its_limit_and_rests_the_rest() {
    let mut x = Exchange::new();
    x.demander(1, "100").demander(2, "100").provider(3, "10");
    x.given(buy(1, "4", "2.45")); // #1
    x.given(buy(2, "6", "2.40")); // #2

    then(
        &x.when(sell(3, "10", "2.42")),
        &[
            "accepted #3 acct 3 sell 10 @ 2.42 gtc",
            // 4 × 2.45 = 9.8: maker 0.0098, taker 0.0196.
            "trade 1: 4 @ 2.45, maker #1 acct 1 (fee 0.0098, left 0), taker #3 acct 3 sell (fee 0.0196, left 6)",
            "rested #3 acct 3 sell 6 @ 2.42",
        ],
    );
    assert_eq!(x.bids(), ["6 @ 2.40"]);
    assert_eq!(x.asks(), ["6 @ 2.42"]);
    assert_eq!(x.owed(3), "escrow 0, pending 9.7804");
    assert_eq!(x.gpu(3), "0 + 6 held");
    // Buyer 1 held 9.8 + 0.0196 and paid 9.8 + 0.0098 (maker fee).
    assert_eq!(x.usd(1), "90.1902 + 0 held");
}

#[test]
fn a_fill_or_kill_that_can_fill_trades_completely() {
    let mut x = Exchange::new();
    x.provider(1, "10").provider(2, "5").demander(3, "100");
    x.given(sell(1, "10", "2.50")); // #1
    x.given(sell(2, "5", "2.51")); // #2

    then(
        &x.when(buy(3, "15", "2.51").fok()),
        &[
            "accepted #3 acct 3 buy 15 @ 2.51 fok",
            "trade 1: 10 @ 2.50, maker #1 acct 1 (fee 0.025, left 0), taker #3 acct 3 buy (fee 0.05, left 5)",
            "trade 2: 5 @ 2.51, maker #2 acct 2 (fee 0.01255, left 0), taker #3 acct 3 buy (fee 0.0251, left 0)",
        ],
    );
    assert!(x.asks().is_empty());
    assert_eq!(x.usd(3), "62.3749 + 0 held");
}

#[test]
fn a_fill_or_kill_that_cannot_fill_is_rejected_without_a_trace() {
    let mut x = Exchange::new();
    x.provider(1, "11").provider(2, "5").demander(3, "100");
    x.given(sell(1, "10", "2.50")); // #1
    x.given(sell(2, "5", "2.51")); // #2

    // One more than the book holds up to the limit...
    let rejected = x.rejects(buy(3, "16", "2.51").fok(), RejectReason::FokNotFillable);
    then(
        &[rejected],
        &["rejected place_order acct 3: fok_not_fillable"],
    );
    // ...or enough in the book, but not at or below the limit.
    x.rejects(buy(3, "11", "2.50").fok(), RejectReason::FokNotFillable);
    x.rejects(sell(1, "1", "2.00").fok(), RejectReason::FokNotFillable);

    assert_eq!(x.asks(), ["10 @ 2.50", "5 @ 2.51"]);
    assert_eq!(x.usd(3), "100 + 0 held");
    // The failed orders took no id: the next accepted order is #3.
    then(
        &x.when(buy(3, "1", "2.40")),
        &[
            "accepted #3 acct 3 buy 1 @ 2.40 gtc",
            "rested #3 acct 3 buy 1 @ 2.40",
        ],
    );
}

#[test]
fn a_fill_or_kill_with_cancel_maker_looks_past_its_own_orders() {
    let mut x = Exchange::new();
    x.trader(1, "100", "5").provider(2, "10");
    x.given(sell(1, "5", "2.50")); // #1, own, first in line
    x.given(sell(2, "10", "2.51")); // #2
                                    // cancel_taker (the default) would stop at #1: not fillable.
    x.rejects(buy(1, "8", "2.51").fok(), RejectReason::FokNotFillable);
    // cancel_maker removes #1 and fills from #2.
    then(
        &x.when(buy(1, "8", "2.51").fok().stp(StpMode::CancelMaker)),
        &[
            "accepted #3 acct 1 buy 8 @ 2.51 fok stp cancel_maker",
            "cancelled #1 acct 1 sell 5 @ 2.50: self_trade_prevention, off the book",
            // 8 × 2.51 = 20.08: maker 0.02008, taker 0.04016.
            "trade 1: 8 @ 2.51, maker #2 acct 2 (fee 0.02008, left 2), taker #3 acct 1 buy (fee 0.04016, left 0)",
        ],
    );
    // Not enough beyond the own order: still all or nothing.
    x.given(sell(1, "5", "2.50")); // #4
    x.rejects(
        buy(1, "3", "2.51").fok().stp(StpMode::CancelMaker),
        RejectReason::FokNotFillable,
    );
    assert_eq!(x.asks(), ["5 @ 2.50", "2 @ 2.51"]);
}

#[test]
fn a_buy_holds_the_larger_of_the_maker_and_taker_fees() {
    // A market whose maker fee is above its taker fee: a resting buy may trade
    // as maker, so the hold covers 30 bps, not the 10 bps taker fee.
    let mut x = Exchange::new();
    x.given(list_market("h200.ap-east", "0.01", "1", 30, 10));
    x.demander(1, "100");
    x.given(buy(1, "10", "2.00").in_market("h200.ap-east"));
    // 20 + 0.06.
    assert_eq!(x.usd(1), "79.94 + 20.06 held");
}

#[test]
fn a_good_till_date_order_expires_only_when_a_later_command_arrives() {
    let mut x = Exchange::new();
    x.provider(1, "5").demander(2, "100");
    x.at(1_000);
    then(
        &x.when(sell(1, "5", "2.50").gtd(2_000)),
        &[
            "accepted #1 acct 1 sell 5 @ 2.50 gtd till 2000",
            "rested #1 acct 1 sell 5 @ 2.50",
        ],
    );

    // A command stamped exactly at the expiry: the order is still live.
    x.at(2_000);
    then(
        &x.when(deposit(2, "1")),
        &["deposited acct 2 1 usd (available 101)"],
    );
    assert_eq!(x.asks(), ["5 @ 2.50"]);

    // The first command stamped later expires it before taking effect, so the
    // buy that would have traded with it rests instead.
    x.at(2_001);
    then(
        &x.when(buy(2, "5", "2.50")),
        &[
            "cancelled #1 acct 1 sell 5 @ 2.50: expired, off the book",
            "accepted #2 acct 2 buy 5 @ 2.50 gtc",
            "rested #2 acct 2 buy 5 @ 2.50",
        ],
    );
    assert!(x.asks().is_empty());
    assert_eq!(x.gpu(1), "5 + 0 held");
    x.rejects(cancel(1, 1), RejectReason::UnknownOrder);

    // Expiry must be in the future of the command's own timestamp...
    x.rejects(
        sell(1, "1", "2.60").gtd(2_001),
        RejectReason::GoodTillInPast,
    );
    // ...and engine time never runs backwards: an earlier stamp is raised.
    x.at(1_500);
    x.rejects(
        sell(1, "1", "2.60").gtd(1_800),
        RejectReason::GoodTillInPast,
    );
}

#[test]
fn good_till_date_orders_expire_in_expiry_order() {
    let mut x = Exchange::new();
    x.provider(1, "5").demander(2, "100");
    x.given(sell(1, "2", "2.60").gtd(3_000)); // #1
    x.given(buy(2, "1", "2.40").gtd(2_500)); // #2
    x.given(sell(1, "3", "2.70").gtd(9_000)); // #3
    x.at(4_000);
    then(
        &x.when(deposit(2, "1")),
        &[
            "cancelled #2 acct 2 buy 1 @ 2.40: expired, off the book",
            "cancelled #1 acct 1 sell 2 @ 2.60: expired, off the book",
            "deposited acct 2 1 usd (available 101)",
        ],
    );
    assert_eq!(x.asks(), ["3 @ 2.70"]);
    assert_eq!(x.usd(2), "101 + 0 held");
}

#[test]
fn a_post_only_order_that_would_trade_is_rejected() {
    let mut x = Exchange::new();
    x.provider(1, "10").demander(2, "100");
    x.given(sell(1, "10", "2.50")); // #1

    x.rejects(
        buy(2, "5", "2.50").post_only(),
        RejectReason::PostOnlyWouldCross,
    );
    x.rejects(
        buy(2, "5", "2.55").post_only(),
        RejectReason::PostOnlyWouldCross,
    );
    then(
        &x.when(buy(2, "5", "2.49").post_only()),
        &[
            "accepted #2 acct 2 buy 5 @ 2.49 gtc post_only",
            "rested #2 acct 2 buy 5 @ 2.49",
        ],
    );
    assert_eq!(x.asks(), ["10 @ 2.50"]);
}

/// Two asks: 10 @ 2.00 (#1, account 1) and 10 @ 2.50 (#2, account 2).
fn two_asks(buyer_usd: &str) -> Exchange {
    let mut x = Exchange::new();
    x.provider(1, "10").provider(2, "10").demander(3, buyer_usd);
    x.given(sell(1, "10", "2.00"));
    x.given(sell(2, "10", "2.50"));
    x
}

#[test]
fn a_market_buy_spends_no_more_than_the_available_usd() {
    let mut x = two_asks("30");
    then(
        &x.when(market_buy(3, "20")),
        &[
            "accepted #3 acct 3 buy 20 market ioc",
            // 10 × 2.00 = 20 + 0.04 taker fee: 9.96 USD left.
            "trade 1: 10 @ 2.00, maker #1 acct 1 (fee 0.02, left 0), taker #3 acct 3 buy (fee 0.04, left 10)",
            // At 2.50 three lots cost 7.515, a fourth would make 10.02 > 9.96.
            "trade 2: 3 @ 2.50, maker #2 acct 2 (fee 0.0075, left 7), taker #3 acct 3 buy (fee 0.015, left 7)",
            "cancelled #3 acct 3 buy 7 market: market_remainder",
        ],
    );
    assert_eq!(x.usd(3), "2.445 + 0 held");
    assert_eq!(x.gpu(3), "13 + 0 held");
    assert_eq!(x.asks(), ["7 @ 2.50"]);
}

#[test]
fn a_market_buy_spends_no_more_than_its_cap() {
    let mut x = two_asks("100");
    then(
        &x.when(market_buy(3, "20").cap("15")),
        &[
            "accepted #3 acct 3 buy 20 market ioc",
            // 7 lots cost 14 + 0.028 = 14.028; an eighth would make 16.032 > 15.
            "trade 1: 7 @ 2.00, maker #1 acct 1 (fee 0.014, left 3), taker #3 acct 3 buy (fee 0.028, left 13)",
            "cancelled #3 acct 3 buy 13 market: market_remainder",
        ],
    );
    assert_eq!(x.usd(3), "85.972 + 0 held");
    assert_eq!(x.asks(), ["3 @ 2.00", "10 @ 2.50"]);
}

#[test]
fn a_market_buy_budget_pays_the_taker_fee_too() {
    // 20 USD would buy 10 lots at 2.00 without fees; with 20 bps the tenth lot
    // costs more than what is left: 9 lots cost 18 + 0.036 = 18.036.
    let mut x = two_asks("20");
    then(
        &x.when(market_buy(3, "10")),
        &[
            "accepted #3 acct 3 buy 10 market ioc",
            "trade 1: 9 @ 2.00, maker #1 acct 1 (fee 0.018, left 1), taker #3 acct 3 buy (fee 0.036, left 1)",
            "cancelled #3 acct 3 buy 1 market: market_remainder",
        ],
    );
    assert_eq!(x.usd(3), "1.964 + 0 held");
    // Likewise a cap of 14 buys 6 lots (12.024), not 7 (14.028).
    let mut x = two_asks("100");
    let events = x.when(market_buy(3, "7").cap("14"));
    assert_eq!(makers(&events), [1]);
    assert_eq!(
        render(&events[1]),
        "trade 1: 6 @ 2.00, maker #1 acct 1 (fee 0.012, left 4), taker #3 acct 3 buy (fee 0.024, left 1)"
    );
    assert_eq!(x.usd(3), "87.976 + 0 held");
}

#[test]
fn a_market_buy_with_a_cap_of_exactly_the_cost_spends_all_of_it() {
    let mut x = two_asks("100");
    then(
        &x.when(market_buy(3, "7").cap("14.028")),
        &[
            "accepted #3 acct 3 buy 7 market ioc",
            "trade 1: 7 @ 2.00, maker #1 acct 1 (fee 0.014, left 3), taker #3 acct 3 buy (fee 0.028, left 0)",
        ],
    );
    assert_eq!(x.usd(3), "85.972 + 0 held");
}

#[test]
fn a_market_buy_into_an_empty_book_is_cancelled_whole() {
    let mut x = Exchange::new();
    x.demander(1, "100");
    then(
        &x.when(market_buy(1, "5")),
        &[
            "accepted #1 acct 1 buy 5 market ioc",
            "cancelled #1 acct 1 buy 5 market: market_remainder",
        ],
    );
    assert_eq!(x.usd(1), "100 + 0 held");
}

/// Two bids: 5 @ 2.40 (#1, account 1) and 5 @ 2.30 (#2, account 2); account 3
/// holds `gpu_hours`.
fn two_bids(gpu_hours: &str) -> Exchange {
    let mut x = Exchange::new();
    x.demander(1, "100")
        .demander(2, "100")
        .provider(3, gpu_hours);
    x.given(buy(1, "5", "2.40"));
    x.given(buy(2, "5", "2.30"));
    x
}

#[test]
fn a_market_sell_walks_down_the_bids() {
    let mut x = two_bids("8");
    then(
        &x.when(market_sell(3, "8")),
        &[
            "accepted #3 acct 3 sell 8 market ioc",
            // 5 × 2.40 = 12: maker 0.012, taker 0.024.
            "trade 1: 5 @ 2.40, maker #1 acct 1 (fee 0.012, left 0), taker #3 acct 3 sell (fee 0.024, left 3)",
            // 3 × 2.30 = 6.9: maker 0.0069, taker 0.0138.
            "trade 2: 3 @ 2.30, maker #2 acct 2 (fee 0.0069, left 2), taker #3 acct 3 sell (fee 0.0138, left 0)",
        ],
    );
    assert_eq!(x.bids(), ["2 @ 2.30"]);
    assert_eq!(x.owed(3), "escrow 0, pending 18.8622");
    assert_eq!(x.gpu(3), "0 + 0 held");
    // Buyer 1 paid 12.012 and got back the unused fee reserve.
    assert_eq!(x.usd(1), "87.988 + 0 held");
    assert_eq!(x.gpu(1), "5 + 0 held");
    // Buyer 2 paid 6.9069 and still holds 2 × 2.30 + 0.0092 for the rest.
    assert_eq!(x.usd(2), "88.4839 + 4.6092 held");
    assert_eq!(x.gpu(2), "3 + 0 held");
    x.deliver_in_full();
    assert_eq!(x.usd(3), "18.8622 + 0 held");
    assert_eq!(x.usd(0), "0.0567 + 0 held");
}

#[test]
fn a_market_sell_beyond_the_bids_cancels_its_remainder() {
    let mut x = two_bids("12");
    then(
        &x.when(market_sell(3, "12")),
        &[
            "accepted #3 acct 3 sell 12 market ioc",
            "trade 1: 5 @ 2.40, maker #1 acct 1 (fee 0.012, left 0), taker #3 acct 3 sell (fee 0.024, left 7)",
            "trade 2: 5 @ 2.30, maker #2 acct 2 (fee 0.0115, left 0), taker #3 acct 3 sell (fee 0.023, left 2)",
            "cancelled #3 acct 3 sell 2 market: market_remainder",
        ],
    );
    assert!(x.bids().is_empty());
    assert_eq!(x.gpu(3), "2 + 0 held");
    assert_eq!(x.owed(3), "escrow 0, pending 23.453");
    x.deliver_in_full();
    assert_eq!(x.usd(3), "23.453 + 0 held");
}

#[test]
fn cancelling_an_order_releases_its_hold() {
    let mut x = Exchange::new();
    x.demander(1, "100");
    x.given(buy(1, "10", "2.50")); // #1
    x.given(buy(1, "4", "2.40").client("my-1")); // #2
                                                 // 25 + 0.05 and 9.6 + 0.0192 on hold.
    assert_eq!(x.usd(1), "65.3308 + 34.6692 held");

    then(
        &x.when(cancel(1, 1)),
        &["cancelled #1 acct 1 buy 10 @ 2.50: user_requested, off the book"],
    );
    then(
        &x.when(cancel_client(1, "my-1")),
        &["cancelled #2 acct 1 buy 4 @ 2.40: user_requested, off the book"],
    );
    assert!(x.bids().is_empty());
    assert_eq!(x.usd(1), "100 + 0 held");
    assert!(x.open(1).is_empty());
}

#[test]
fn client_order_ids_are_unique_among_open_orders_only() {
    let mut x = Exchange::new();
    x.demander(1, "100").demander(2, "100").provider(3, "10");
    x.given(buy(1, "1", "2.00").client("a")); // #1

    x.rejects(
        buy(1, "1", "2.10").client("a"),
        RejectReason::DuplicateClientOrderId,
    );
    // Even an order that would never rest may not reuse it.
    x.rejects(
        buy(1, "1", "2.10").ioc().client("a"),
        RejectReason::DuplicateClientOrderId,
    );
    // Another account has its own namespace.
    then(
        &x.when(buy(2, "1", "2.00").client("a")),
        &[
            "accepted #2 acct 2 buy 1 @ 2.00 gtc client a",
            "rested #2 acct 2 buy 1 @ 2.00",
        ],
    );
    // Free again once the first is cancelled...
    x.given(cancel_client(1, "a"));
    then(
        &x.when(buy(1, "1", "2.05").client("a")),
        &[
            "accepted #3 acct 1 buy 1 @ 2.05 gtc client a",
            "rested #3 acct 1 buy 1 @ 2.05",
        ],
    );
    // ...or filled.
    x.given(sell(3, "1", "2.05").ioc()); // #4 fills #3
    assert_eq!(x.open(1), Vec::<u64>::new());
    x.given(buy(1, "1", "1.90").client("a")); // #5
    then(
        &x.when(cancel_client(1, "a")),
        &["cancelled #5 acct 1 buy 1 @ 1.90: user_requested, off the book"],
    );
}

/// Two asks of 10 at 2.50: #1 from account 1, then #2 from account 2.
fn two_asks_at_one_price() -> Exchange {
    let mut x = Exchange::new();
    x.provider(1, "20").provider(2, "10").demander(3, "100");
    x.given(sell(1, "10", "2.50"));
    x.given(sell(2, "10", "2.50"));
    x
}

#[test]
fn an_amend_that_decreases_quantity_keeps_queue_priority() {
    let mut x = two_asks_at_one_price();
    then(
        &x.when(amend(1, 1).qty("4")),
        &["amended #1 acct 1 sell 10 @ 2.50 -> 4 @ 2.50, priority kept"],
    );
    assert_eq!(x.asks(), ["14 @ 2.50"]);
    assert_eq!(x.gpu(1), "16 + 4 held");
    // #1 is still first in line.
    then(
        &x.when(buy(3, "5", "2.50").ioc()),
        &[
            "accepted #3 acct 3 buy 5 @ 2.50 ioc",
            "trade 1: 4 @ 2.50, maker #1 acct 1 (fee 0.01, left 0), taker #3 acct 3 buy (fee 0.02, left 1)",
            "trade 2: 1 @ 2.50, maker #2 acct 2 (fee 0.0025, left 9), taker #3 acct 3 buy (fee 0.005, left 0)",
        ],
    );
}

#[test]
fn an_amend_that_increases_quantity_goes_to_the_back() {
    let mut x = two_asks_at_one_price();
    then(
        &x.when(amend(1, 1).qty("12")),
        &[
            "amended #1 acct 1 sell 10 @ 2.50 -> 12 @ 2.50, priority lost",
            "rested #1 acct 1 sell 12 @ 2.50",
        ],
    );
    assert_eq!(x.gpu(1), "8 + 12 held");
    assert_eq!(makers(&x.when(buy(3, "5", "2.50").ioc())), [2]);
}

#[test]
fn an_amend_that_changes_price_goes_to_the_back_even_when_changed_back() {
    let mut x = two_asks_at_one_price();
    then(
        &x.when(amend(1, 1).price("2.49")),
        &[
            "amended #1 acct 1 sell 10 @ 2.50 -> 10 @ 2.49, priority lost",
            "rested #1 acct 1 sell 10 @ 2.49",
        ],
    );
    assert_eq!(x.asks(), ["10 @ 2.49", "10 @ 2.50"]);
    x.given(amend(1, 1).price("2.50"));
    assert_eq!(x.asks(), ["20 @ 2.50"]);
    assert_eq!(makers(&x.when(buy(3, "5", "2.50").ioc())), [2]);
}

#[test]
fn an_amended_buy_takes_or_releases_the_difference_in_its_hold() {
    let mut x = Exchange::new();
    x.demander(1, "100");
    x.given(buy(1, "10", "2.00")); // #1: 20 + 0.04
    assert_eq!(x.usd(1), "79.96 + 20.04 held");
    x.given(amend(1, 1).qty("4")); // 8 + 0.016
    assert_eq!(x.usd(1), "91.984 + 8.016 held");
    x.given(amend(1, 1).price("3.00").qty("20")); // 60 + 0.12
    assert_eq!(x.usd(1), "39.88 + 60.12 held");
    x.rejects(amend(1, 1).qty("34"), RejectReason::InsufficientFunds); // 102.204 > 100
    x.given(amend(1, 1).qty("33")); // 99 + 0.198 = 99.198
    assert_eq!(x.usd(1), "0.802 + 99.198 held");
}

#[test]
fn an_amend_that_crosses_trades_at_the_makers_price() {
    // A sell amended down through the bid.
    let mut x = Exchange::new();
    x.demander(1, "100").provider(2, "5");
    x.given(buy(1, "5", "2.40")); // #1
    x.given(sell(2, "5", "2.60")); // #2
    then(
        &x.when(amend(2, 2).price("2.30")),
        &[
            "amended #2 acct 2 sell 5 @ 2.60 -> 5 @ 2.30, priority lost",
            "trade 1: 5 @ 2.40, maker #1 acct 1 (fee 0.012, left 0), taker #2 acct 2 sell (fee 0.024, left 0)",
        ],
    );
    assert!(x.bids().is_empty() && x.asks().is_empty());
    assert_eq!(x.owed(2), "escrow 0, pending 11.976");
    x.rejects(cancel(2, 2), RejectReason::UnknownOrder);

    // A buy amended up through the ask: it trades, then rests what is left.
    let mut x = Exchange::new();
    x.demander(1, "100").provider(2, "3");
    x.given(buy(1, "5", "2.40")); // #1, holds 12.024
    x.given(sell(2, "3", "2.45")); // #2
    then(
        &x.when(amend(1, 1).price("2.50")),
        &[
            "amended #1 acct 1 buy 5 @ 2.40 -> 5 @ 2.50, priority lost",
            // 3 × 2.45 = 7.35: maker 0.00735, taker 0.0147.
            "trade 1: 3 @ 2.45, maker #2 acct 2 (fee 0.00735, left 0), taker #1 acct 1 buy (fee 0.0147, left 2)",
            "rested #1 acct 1 buy 2 @ 2.50",
        ],
    );
    assert_eq!(x.bids(), ["2 @ 2.50"]);
    // Paid 7.3647; holds 2 × 2.50 + 0.01 for the rest.
    assert_eq!(x.usd(1), "87.6253 + 5.01 held");
    assert_eq!(x.gpu(1), "3 + 0 held");
}

#[test]
fn a_post_only_order_may_not_be_amended_across_the_spread() {
    let mut x = Exchange::new();
    x.demander(1, "100").provider(2, "5");
    x.given(buy(1, "5", "2.40")); // #1
    x.given(sell(2, "5", "2.60").post_only()); // #2
    x.rejects(amend(2, 2).price("2.40"), RejectReason::PostOnlyWouldCross);
    // Improving without crossing is fine.
    x.given(amend(2, 2).price("2.41"));
    assert_eq!(x.asks(), ["5 @ 2.41"]);
}

#[test]
fn mass_cancel_pulls_one_market_or_all_and_releases_holds() {
    let mut x = Exchange::new();
    x.trader(1, "100", "10").demander(2, "100");
    x.given(add_capacity_in(1, N, "5"));
    x.given(buy(1, "2", "2.00")); // #1: holds 4.008
    x.given(sell(1, "3", "2.60")); // #2
    x.given(buy(1, "1", "1.00").in_market(N)); // #3: 1 + 25 bps = 1.0025
    x.given(sell(1, "1.5", "3.00").in_market(N)); // #4
    x.given(buy(2, "1", "2.00")); // #5, someone else's
    assert_eq!(x.usd(1), "94.9895 + 5.0105 held");

    then(
        &x.when(mass_cancel_in(1, M)),
        &[
            "cancelled #1 acct 1 buy 2 @ 2.00: mass_cancel, off the book",
            "cancelled #2 acct 1 sell 3 @ 2.60: mass_cancel, off the book",
            "mass cancelled acct 1 in h100-sxm.us-east: 2 orders",
        ],
    );
    assert_eq!(x.open(1), [3, 4]);
    assert_eq!(x.bids(), ["1 @ 2.00"]);
    assert!(x.asks().is_empty());
    assert_eq!(x.usd(1), "98.9975 + 1.0025 held");
    assert_eq!(x.gpu(1), "10 + 0 held");

    then(
        &x.when(mass_cancel(1)),
        &[
            "cancelled #3 acct 1 [a100.eu-west] buy 1.0 @ 1.00: mass_cancel, off the book",
            "cancelled #4 acct 1 [a100.eu-west] sell 1.5 @ 3.00: mass_cancel, off the book",
            "mass cancelled acct 1 in all markets: 2 orders",
        ],
    );
    assert_eq!(x.usd(1), "100 + 0 held");
    assert_eq!(x.gpu_in(1, N), "5 + 0 held");
    assert!(x.bids_in(N).is_empty() && x.asks_in(N).is_empty());
    assert_eq!(x.open(2), [5]);

    then(
        &x.when(mass_cancel(1)),
        &["mass cancelled acct 1 in all markets: 0 orders"],
    );
}

#[test]
fn self_trade_prevention_cancel_taker_stops_at_the_own_order() {
    let mut x = Exchange::new();
    x.trader(1, "100", "5").provider(2, "2");
    x.given(sell(2, "2", "2.49")); // #1
    x.given(sell(1, "5", "2.50")); // #2, account 1's own
    then(
        &x.when(buy(1, "4", "2.50")),
        &[
            "accepted #3 acct 1 buy 4 @ 2.50 gtc",
            // 2 × 2.49 = 4.98: maker 0.00498, taker 0.00996.
            "trade 1: 2 @ 2.49, maker #1 acct 2 (fee 0.00498, left 0), taker #3 acct 1 buy (fee 0.00996, left 2)",
            "cancelled #3 acct 1 buy 2 @ 2.50: self_trade_prevention",
        ],
    );
    assert_eq!(x.asks(), ["5 @ 2.50"]);
    assert!(x.bids().is_empty());
    assert_eq!(x.usd(1), "95.01004 + 0 held");
    assert_eq!(x.gpu(1), "2 + 5 held");
}

#[test]
fn self_trade_prevention_cancel_maker_removes_the_own_order_and_goes_on() {
    let mut x = Exchange::new();
    x.trader(1, "100", "5").provider(2, "5");
    x.given(sell(1, "5", "2.50")); // #1, own
    x.given(sell(2, "5", "2.51")); // #2
    then(
        &x.when(buy(1, "4", "2.51").stp(StpMode::CancelMaker)),
        &[
            "accepted #3 acct 1 buy 4 @ 2.51 gtc stp cancel_maker",
            "cancelled #1 acct 1 sell 5 @ 2.50: self_trade_prevention, off the book",
            "trade 1: 4 @ 2.51, maker #2 acct 2 (fee 0.01004, left 1), taker #3 acct 1 buy (fee 0.02008, left 0)",
        ],
    );
    assert_eq!(x.asks(), ["1 @ 2.51"]);
    assert_eq!(x.gpu(1), "9 + 0 held");
    assert_eq!(x.usd(1), "89.93992 + 0 held");
}

#[test]
fn self_trade_prevention_cancel_both() {
    let mut x = Exchange::new();
    x.trader(1, "100", "5");
    x.given(sell(1, "5", "2.50")); // #1
    then(
        &x.when(buy(1, "4", "2.50").stp(StpMode::CancelBoth)),
        &[
            "accepted #2 acct 1 buy 4 @ 2.50 gtc stp cancel_both",
            "cancelled #1 acct 1 sell 5 @ 2.50: self_trade_prevention, off the book",
            "cancelled #2 acct 1 buy 4 @ 2.50: self_trade_prevention",
        ],
    );
    assert!(x.asks().is_empty() && x.bids().is_empty());
    assert_eq!(x.usd(1), "100 + 0 held");
    assert_eq!(x.gpu(1), "5 + 0 held");
}

#[test]
fn self_trade_prevention_none_trades_and_charges_both_fees() {
    let mut x = Exchange::new();
    x.trader(1, "100", "5");
    x.given(sell(1, "5", "2.50")); // #1
    then(
        &x.when(buy(1, "4", "2.50").stp(StpMode::None)),
        &[
            "accepted #2 acct 1 buy 4 @ 2.50 gtc stp none",
            "trade 1: 4 @ 2.50, maker #1 acct 1 (fee 0.01, left 1), taker #2 acct 1 buy (fee 0.02, left 0)",
        ],
    );
    // It pays itself through escrow: 10 + 0.02 in, 10 - 0.01 owed.
    assert_eq!(x.usd(1), "89.98 + 0 held");
    assert_eq!(x.owed(1), "escrow 10.02, pending 9.99");
    assert_eq!(x.gpu(1), "4 + 1 held");
    x.deliver_in_full();
    assert_eq!(x.usd(1), "99.97 + 0 held");
    assert_eq!(x.usd(0), "0.03 + 0 held");
}

#[test]
fn self_trade_prevention_applies_to_an_amend_with_the_orders_own_mode() {
    let mut x = Exchange::new();
    x.trader(1, "100", "5");
    x.given(buy(1, "5", "2.40")); // #1
    x.given(sell(1, "5", "2.60")); // #2, default cancel_taker
    then(
        &x.when(amend(1, 2).price("2.40")),
        &[
            "amended #2 acct 1 sell 5 @ 2.60 -> 5 @ 2.40, priority lost",
            "cancelled #2 acct 1 sell 5 @ 2.40: self_trade_prevention",
        ],
    );
    assert_eq!(x.gpu(1), "5 + 0 held");
    assert_eq!(x.bids(), ["5 @ 2.40"]);
    assert!(x.asks().is_empty());
    assert_eq!(x.open(1), [1]);
}

/// A market buy applied self-trade prevention at an own ask it could not afford a
/// single lot of: with `cancel_maker`/`cancel_both` it cancelled the own ask for
/// nothing, with `cancel_taker` it ended as `self_trade_prevention` instead of
/// `market_remainder`. STP applies only where the order would trade.
#[test]
fn market_buy_applied_stp_where_it_could_not_trade() {
    for (stp, shown) in [
        (StpMode::CancelTaker, ""),
        (StpMode::CancelMaker, " stp cancel_maker"),
        (StpMode::CancelBoth, " stp cancel_both"),
        (StpMode::None, " stp none"),
    ] {
        // The market of the report: lot 0.5, maker 10 bps, taker 25 bps.
        let mut x = Exchange::bare();
        x.given(list_market(M, "0.01", "0.5", 10, 25));
        x.trader(1, "100", "10");
        x.given(sell(1, "4", "2.40")); // #1
                                       // One lot (0.5) at 2.40 costs 1.2 + 0.003 taker fee: 0.01 buys nothing.
        then(
            &x.when(market_buy(1, "1").cap("0.01").stp(stp)),
            &[
                &format!("accepted #2 acct 1 buy 1.0 market ioc{shown}"),
                "cancelled #2 acct 1 buy 1.0 market: market_remainder",
            ],
        );
        assert_eq!(x.asks(), ["4.0 @ 2.40"], "{stp:?}");
        assert_eq!(x.usd(1), "100 + 0 held");
        assert_eq!(x.gpu(1), "6 + 4 held");
    }
}

#[test]
fn a_market_buy_whose_budget_runs_out_before_its_own_ask_leaves_it_alone() {
    let mut x = Exchange::new();
    x.trader(1, "100", "5").provider(2, "1");
    x.given(sell(2, "1", "2.40")); // #1
    x.given(sell(1, "5", "2.50")); // #2, own
    then(
        // One lot at 2.40 costs 2.4048; what is left of 3 cannot buy one at 2.50.
        &x.when(market_buy(1, "3").cap("3").stp(StpMode::CancelMaker)),
        &[
            "accepted #3 acct 1 buy 3 market ioc stp cancel_maker",
            "trade 1: 1 @ 2.40, maker #1 acct 2 (fee 0.0024, left 0), taker #3 acct 1 buy (fee 0.0048, left 2)",
            "cancelled #3 acct 1 buy 2 market: market_remainder",
        ],
    );
    assert_eq!(x.asks(), ["5 @ 2.50"]);
    // Where it can afford a lot, the own ask is cancelled as before.
    then(
        &x.when(market_buy(1, "1").cap("3").stp(StpMode::CancelMaker)),
        &[
            "accepted #4 acct 1 buy 1 market ioc stp cancel_maker",
            "cancelled #2 acct 1 sell 5 @ 2.50: self_trade_prevention, off the book",
            "cancelled #4 acct 1 buy 1 market: market_remainder",
        ],
    );
}

#[test]
fn deposits_and_withdrawals_move_only_available_usd() {
    let mut x = Exchange::new();
    then(&x.when(create_account(1)), &["account 1 created"]);
    then(
        &x.when(deposit(1, "100")),
        &["deposited acct 1 100 usd (available 100)"],
    );
    then(
        &x.when(withdraw(1, "30.5")),
        &["withdrawn acct 1 30.5 usd (available 69.5)"],
    );
    x.given(buy(1, "10", "5.00")); // holds 50 + 0.1
    assert_eq!(x.usd(1), "19.4 + 50.1 held");
    x.rejects(withdraw(1, "19.400001"), RejectReason::InsufficientFunds);
    then(
        &x.when(withdraw(1, "19.4")),
        &["withdrawn acct 1 19.4 usd (available 0)"],
    );
    assert_eq!(x.usd(1), "0 + 50.1 held");
    assert_eq!(x.engine.cash_total_micros(), 50_100_000);
}

#[test]
fn capacity_can_be_added_and_removed_unless_it_is_on_offer() {
    let mut x = Exchange::new();
    x.given(create_account(2));
    then(
        &x.when(add_capacity(2, "10")),
        &["capacity added acct 2 10"],
    );
    assert_eq!(x.gpu(2), "10 + 0 held");
    x.given(sell(2, "4", "3.00"));
    x.rejects(remove_capacity(2, "7"), RejectReason::InsufficientCapacity);
    then(
        &x.when(remove_capacity(2, "6")),
        &["capacity removed acct 2 6"],
    );
    assert_eq!(x.gpu(2), "0 + 4 held");
}

#[test]
fn a_buyer_may_resell_the_gpu_hours_it_bought() {
    let mut x = Exchange::new();
    x.provider(1, "5").demander(2, "100").demander(3, "100");
    x.given(sell(1, "5", "2.00")); // #1
    x.given(buy(2, "5", "2.00").ioc()); // #2 buys all of it
    assert_eq!(x.gpu(2), "5 + 0 held");
    x.rejects(sell(2, "6", "3.00"), RejectReason::InsufficientCapacity);
    x.given(sell(2, "3", "3.00")); // #3
    then(
        &x.when(buy(3, "3", "3.00")),
        &[
            "accepted #4 acct 3 buy 3 @ 3.00 gtc",
            "trade 2: 3 @ 3.00, maker #3 acct 2 (fee 0.009, left 0), taker #4 acct 3 buy (fee 0.018, left 0)",
        ],
    );
    assert_eq!(x.gpu(2), "2 + 0 held");
    assert_eq!(x.gpu(3), "3 + 0 held");
    // Account 2 paid 10 + 0.02 and, once delivered, was paid 9 - 0.009.
    x.deliver_in_full();
    assert_eq!(x.usd(2), "98.971 + 0 held");
}
