//! Every reason `apply` can refuse a command for, as a table of
//! command → reason. Each row runs against a fresh copy of the same exchange and
//! must be refused with exactly one rejection event and no other effect: the
//! state hash equals that of an untouched copy once both have taken the same
//! next step (see `Exchange::rejects`).

mod common;

use common::*;
use gpux_engine::command::{AmendOrder, CancelOrder, ListMarket, MassCancel, PlaceOrder, Tick};
use gpux_engine::limits::{MARKETS_MAX, OPEN_ORDERS_PER_ACCOUNT_MAX, WINDOW_SLOTS_MAX};
use gpux_engine::slot::{NANOS_PER_SEC, SLOT_SECS};
use gpux_engine::{Book, Command, Engine, Event, RejectReason, TimeInForce};
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use RejectReason::*;

/// A market with a narrow band: 1.00 to 5.00 USD, at most 100 GPU-hours an order.
const B: &str = "l40s.eu-north";
const NOWHERE: &str = "b200.ap-south";
/// A market that trades a year ahead (the longest horizon), for windows of the
/// most slots.
const Y: &str = "mi300x.us-west";

/// The slot after [`S`].
const S2: u64 = S + SLOT_SECS;
/// The last slot the default horizon (168 hours ahead of the harness clock) reaches.
const LAST: u64 = 168 * SLOT_SECS;

/// The exchange every row starts from.
///
/// Accounts: 1 and 2 hold 100 USD and 10 GPU-hours of M; 3 holds 5 USD; 4 holds
/// nothing. Orders in M:
/// - #1 account 1 sells 5 @ 2.50 (client id `s1`);
/// - #2 account 2 buys 5 @ 2.40 (client id `b2`);
/// - #3 account 1 sells 2 @ 2.60, post-only;
/// - #4 account 1 sold 1 @ 2.45, filled by #5 (account 2's IOC buy);
/// - #6 account 2 bought 1 @ 2.00, cancelled.
///
/// So account 1 has 2 GPU-hours available and #1, #2, #3 are open. Everything is
/// in slot [`S`]; no other slot has a book.
fn setup() -> Exchange {
    let mut x = Exchange::new();
    x.given(
        list_market(B, "0.01", "1", 0, 0)
            .band("1.00", "5.00")
            .max_quantity("100"),
    );
    x.given(list_market(Y, "0.01", "1", 0, 0).slots(8_760, 300));
    x.trader(1, "100", "10")
        .trader(2, "100", "10")
        .demander(3, "5");
    x.given(create_account(4));
    x.given(sell(1, "5", "2.50").client("s1"));
    x.given(buy(2, "5", "2.40").client("b2"));
    x.given(sell(1, "2", "2.60").post_only());
    x.given(sell(1, "1", "2.45"));
    x.given(buy(2, "1", "2.45").ioc());
    x.given(buy(2, "1", "2.00"));
    x.given(cancel(2, 6));
    assert_eq!(x.open(1), [1, 3]);
    assert_eq!(x.open(2), [2]);
    assert_eq!(x.gpu(1), "2 + 7 held");
    x
}

fn with(o: Order, f: impl FnOnce(&mut PlaceOrder)) -> Order {
    let mut o = o;
    f(&mut o.0);
    o
}

fn listing(f: impl FnOnce(&mut ListMarket)) -> Command {
    let mut l = list_market("b200.x", "0.01", "1", 0, 0);
    f(&mut l.0);
    l.into()
}

fn cancel_ref(order_id: Option<u64>, client: Option<&str>) -> Command {
    Command::CancelOrder(CancelOrder {
        account: 1,
        order_id,
        client_order_id: client.map(|c| c.parse().unwrap()),
    })
}

fn amend_ref(order_id: Option<u64>, client: Option<&str>) -> Command {
    Command::AmendOrder(AmendOrder {
        account: 1,
        order_id,
        client_order_id: client.map(|c| c.parse().unwrap()),
        price: None,
        quantity: Some(d("1")),
    })
}

fn table() -> Vec<(&'static str, Command, RejectReason)> {
    let mut rows = code_rows();
    rows.extend(slot_rows());
    rows
}

/// The rows of the codes that do not concern slots.
#[allow(clippy::too_many_lines)] // a table, one row per refusal, read top to bottom by code
fn code_rows() -> Vec<(&'static str, Command, RejectReason)> {
    let huge = "100000000000000000000"; // 10^20: a whole number, but beyond any integer we keep
    vec![
        // 1xx: reference data and balances.
        (
            "tick size zero",
            listing(|l| l.tick_size = d("0")),
            InvalidMarketSpec,
        ),
        (
            "lot size negative",
            listing(|l| l.lot_size = d("-1")),
            InvalidMarketSpec,
        ),
        (
            "tick × lot below one micro-USD",
            listing(|l| l.tick_size = d("0.0000001")),
            InvalidMarketSpec,
        ),
        (
            "taker fee above 1000 bps",
            listing(|l| l.taker_fee_bps = 1001),
            InvalidMarketSpec,
        ),
        (
            "maker fee above 1000 bps",
            listing(|l| l.maker_fee_bps = 1001),
            InvalidMarketSpec,
        ),
        (
            "min price above max price",
            listing(|l| {
                l.min_price = Some(d("5"));
                l.max_price = Some(d("4"));
            }),
            InvalidMarketSpec,
        ),
        (
            "max price off the tick grid",
            listing(|l| l.max_price = Some(d("4.005"))),
            InvalidMarketSpec,
        ),
        (
            "max order quantity off the lot grid",
            listing(|l| l.max_order_quantity = Some(d("10.5"))),
            InvalidMarketSpec,
        ),
        (
            "largest order notional above 10^12 USD",
            listing(|l| {
                l.tick_size = d("1");
                l.max_price = Some(d("2000000"));
                l.max_order_quantity = Some(d("1000000"));
            }),
            InvalidMarketSpec,
        ),
        (
            "market listed twice",
            list_market(M, "0.05", "1", 0, 0).into(),
            MarketExists,
        ),
        (
            "order in an unknown market",
            buy(1, "1", "2.00").in_market(NOWHERE).into(),
            UnknownMarket,
        ),
        (
            "capacity in an unknown market",
            add_capacity_in(1, NOWHERE, "1"),
            UnknownMarket,
        ),
        (
            "mass cancel in an unknown market",
            mass_cancel_in(1, NOWHERE),
            UnknownMarket,
        ),
        ("create the fee account", create_account(0), ReservedAccount),
        (
            "deposit to the fee account",
            deposit(0, "1"),
            ReservedAccount,
        ),
        (
            "capacity for the fee account",
            add_capacity(0, "1"),
            ReservedAccount,
        ),
        (
            "capacity from the fee account",
            remove_capacity(0, "1"),
            ReservedAccount,
        ),
        (
            "order by the fee account",
            buy(0, "1", "2.00").into(),
            ReservedAccount,
        ),
        ("cancel by the fee account", cancel(0, 1), ReservedAccount),
        (
            "amend by the fee account",
            amend(0, 1).qty("1").into(),
            ReservedAccount,
        ),
        (
            "mass cancel by the fee account",
            mass_cancel(0),
            ReservedAccount,
        ),
        ("account created twice", create_account(1), AccountExists),
        ("deposit to nobody", deposit(99, "1"), UnknownAccount),
        ("withdraw from nobody", withdraw(99, "1"), UnknownAccount),
        ("capacity for nobody", add_capacity(99, "1"), UnknownAccount),
        (
            "capacity from nobody",
            remove_capacity(99, "1"),
            UnknownAccount,
        ),
        (
            "order by nobody",
            buy(99, "1", "2.00").into(),
            UnknownAccount,
        ),
        ("cancel by nobody", cancel(99, 1), UnknownAccount),
        (
            "amend by nobody",
            amend(99, 1).qty("1").into(),
            UnknownAccount,
        ),
        ("mass cancel by nobody", mass_cancel(99), UnknownAccount),
        ("deposit of zero", deposit(1, "0"), InvalidAmount),
        ("negative deposit", deposit(1, "-1"), InvalidAmount),
        (
            "deposit of a fraction of a micro-USD",
            deposit(1, "0.0000001"),
            InvalidAmount,
        ),
        ("withdrawal of zero", withdraw(1, "0"), InvalidAmount),
        (
            "withdrawal of a fraction of a micro-USD",
            withdraw(1, "1.0000005"),
            InvalidAmount,
        ),
        ("capacity of zero", add_capacity(1, "0"), InvalidAmount),
        (
            "negative capacity removal",
            remove_capacity(1, "-2"),
            InvalidAmount,
        ),
        // 2xx: order validation.
        (
            "limit order without a price",
            with(buy(1, "1", "2.00"), |o| o.price = None).into(),
            InvalidOrder,
        ),
        (
            "limit order with a cap",
            buy(1, "1", "2.00").cap("10").into(),
            InvalidOrder,
        ),
        (
            "market order with a price",
            with(market_buy(1, "1"), |o| o.price = Some(d("2.00"))).into(),
            InvalidOrder,
        ),
        (
            "market order with a time in force",
            market_buy(1, "1").ioc().into(),
            InvalidOrder,
        ),
        (
            "market order post-only",
            market_buy(1, "1").post_only().into(),
            InvalidOrder,
        ),
        (
            "market order with good_till",
            with(market_buy(1, "1"), |o| o.good_till_ns = Some(T0 + 10)).into(),
            InvalidOrder,
        ),
        (
            "market sell with a cap",
            market_sell(1, "1").cap("10").into(),
            InvalidOrder,
        ),
        (
            "market buy with a zero cap",
            market_buy(1, "1").cap("0").into(),
            InvalidOrder,
        ),
        (
            "market buy with a cap below one micro-USD",
            market_buy(1, "1").cap("0.0000001").into(),
            InvalidOrder,
        ),
        (
            "gtd without good_till",
            buy(1, "1", "2.00").tif(TimeInForce::Gtd).into(),
            InvalidOrder,
        ),
        (
            "good_till without gtd",
            with(buy(1, "1", "2.00"), |o| o.good_till_ns = Some(T0 + 10)).into(),
            InvalidOrder,
        ),
        (
            "post-only IOC",
            buy(1, "1", "2.00").ioc().post_only().into(),
            InvalidOrder,
        ),
        (
            "post-only FOK",
            buy(1, "1", "2.00").fok().post_only().into(),
            InvalidOrder,
        ),
        (
            "price off the tick grid",
            buy(1, "1", "2.505").into(),
            OffTickPrice,
        ),
        (
            "price off a coarser tick grid",
            buy(1, "1", "2.52").in_market(N).into(),
            OffTickPrice,
        ),
        (
            "amend to a price off the grid",
            amend(2, 2).price("2.405").into(),
            OffTickPrice,
        ),
        ("price zero", buy(1, "1", "0").into(), PriceOutOfBand),
        (
            "negative price",
            buy(1, "1", "-2.00").into(),
            PriceOutOfBand,
        ),
        (
            "price above the default band",
            buy(1, "1", "100000.01").into(),
            PriceOutOfBand,
        ),
        (
            "price below a market's band",
            buy(1, "1", "0.99").in_market(B).into(),
            PriceOutOfBand,
        ),
        (
            "price above a market's band",
            buy(1, "1", "5.01").in_market(B).into(),
            PriceOutOfBand,
        ),
        (
            "amend to price zero",
            amend(2, 2).price("0").into(),
            PriceOutOfBand,
        ),
        ("quantity zero", buy(1, "0", "2.00").into(), InvalidQuantity),
        (
            "negative quantity",
            sell(1, "-1", "2.70").into(),
            InvalidQuantity,
        ),
        (
            "market order of zero",
            market_buy(1, "0").into(),
            InvalidQuantity,
        ),
        (
            "amend to quantity zero",
            amend(2, 2).qty("0").into(),
            InvalidQuantity,
        ),
        (
            "quantity off the lot grid",
            buy(1, "1.5", "2.00").into(),
            OffLotQuantity,
        ),
        (
            "quantity off a coarser lot grid",
            buy(1, "0.3", "2.00").in_market(N).into(),
            OffLotQuantity,
        ),
        (
            "amend to a quantity off the grid",
            amend(2, 2).qty("2.5").into(),
            OffLotQuantity,
        ),
        // docs/PROTOCOL.md: "a capacity quantity off the lot grid is 204".
        (
            "capacity off the lot grid",
            add_capacity_in(1, N, "0.3"),
            OffLotQuantity,
        ),
        (
            "quantity above the default maximum",
            buy(1, "1000001", "2.00").into(),
            QuantityTooLarge,
        ),
        (
            "quantity above a market's maximum",
            buy(1, "101", "2.00").in_market(B).into(),
            QuantityTooLarge,
        ),
        (
            "amend above the maximum",
            amend(2, 2).qty("1000001").into(),
            QuantityTooLarge,
        ),
        (
            "a whole but astronomically large quantity",
            buy(1, huge, "2.00").into(),
            QuantityTooLarge,
        ),
        (
            "good_till equal to the command's time",
            buy(1, "1", "2.00").gtd(T0).into(),
            GoodTillInPast,
        ),
        (
            "good_till before the command's time",
            buy(1, "1", "2.00").gtd(T0 - 1).into(),
            GoodTillInPast,
        ),
        (
            "cancel naming both ids",
            cancel_ref(Some(1), Some("s1")),
            InvalidOrderRef,
        ),
        (
            "cancel naming neither id",
            cancel_ref(None, None),
            InvalidOrderRef,
        ),
        (
            "amend naming both ids",
            amend_ref(Some(1), Some("s1")),
            InvalidOrderRef,
        ),
        (
            "amend naming neither id",
            amend_ref(None, None),
            InvalidOrderRef,
        ),
        ("amend changing nothing", amend(1, 1).into(), InvalidAmend),
        // 3xx: risk and limits.
        (
            "buy hold one cent short",
            buy(3, "2", "2.50").into(),
            InsufficientFunds,
        ),
        (
            "FOK buy without the funds",
            buy(3, "2", "2.50").fok().into(),
            InsufficientFunds,
        ),
        (
            "withdraw more than available",
            withdraw(3, "5.000001"),
            InsufficientFunds,
        ),
        (
            "withdraw an astronomical amount",
            withdraw(3, huge),
            InsufficientFunds,
        ),
        (
            "market buy with no USD",
            market_buy(4, "1").into(),
            InsufficientFunds,
        ),
        (
            "amend a buy beyond the funds",
            amend(2, 2).qty("50").into(),
            InsufficientFunds,
        ),
        (
            "sell with no GPU-hours",
            sell(3, "1", "2.70").into(),
            InsufficientCapacity,
        ),
        (
            "sell more than is free",
            sell(1, "3", "2.70").into(),
            InsufficientCapacity,
        ),
        (
            "market sell more than available",
            market_sell(1, "3").into(),
            InsufficientCapacity,
        ),
        (
            "sell in a market without capacity",
            sell(1, "1", "2.70").in_market(N).into(),
            InsufficientCapacity,
        ),
        (
            "remove capacity that is on offer",
            remove_capacity(1, "3"),
            InsufficientCapacity,
        ),
        (
            "amend a sell beyond the capacity",
            amend(1, 1).qty("8").into(),
            InsufficientCapacity,
        ),
        (
            "deposit past the exchange's USD limit",
            deposit(1, "1000000000000"),
            BalanceLimitExceeded,
        ),
        (
            "deposit of an astronomical amount",
            deposit(1, huge),
            BalanceLimitExceeded,
        ),
        (
            "capacity past the market's lot limit",
            add_capacity(1, "1000000000000000"),
            BalanceLimitExceeded,
        ),
        (
            "capacity of an astronomical amount",
            add_capacity(1, huge),
            BalanceLimitExceeded,
        ),
        // 4xx: book state.
        ("cancel an id never issued", cancel(1, 999), UnknownOrder),
        ("cancel a filled maker", cancel(1, 4), UnknownOrder),
        ("cancel a filled taker", cancel(2, 5), UnknownOrder),
        ("cancel a cancelled order", cancel(2, 6), UnknownOrder),
        (
            "cancel an unknown client id",
            cancel_client(1, "nope"),
            UnknownOrder,
        ),
        (
            "cancel another account's client id",
            cancel_client(1, "b2"),
            UnknownOrder,
        ),
        (
            "amend a filled order",
            amend(1, 4).qty("1").into(),
            UnknownOrder,
        ),
        (
            "amend another account's client id",
            amend_client(1, "b2").qty("1").into(),
            UnknownOrder,
        ),
        ("cancel another account's order", cancel(2, 1), NotYourOrder),
        (
            "amend another account's order",
            amend(2, 1).qty("1").into(),
            NotYourOrder,
        ),
        (
            "reuse an open client id",
            buy(1, "1", "2.00").client("s1").into(),
            DuplicateClientOrderId,
        ),
        (
            "post-only buy at the ask",
            buy(2, "1", "2.50").post_only().into(),
            PostOnlyWouldCross,
        ),
        (
            "post-only sell at the bid",
            sell(1, "1", "2.40").post_only().into(),
            PostOnlyWouldCross,
        ),
        (
            "post-only amended across",
            amend(1, 3).price("2.40").into(),
            PostOnlyWouldCross,
        ),
        (
            "FOK larger than the book",
            buy(2, "6", "2.50").fok().into(),
            FokNotFillable,
        ),
        (
            "FOK sell above the best bid",
            sell(1, "1", "2.41").fok().into(),
            FokNotFillable,
        ),
        (
            "FOK that would meet its own order first",
            buy(1, "1", "2.60").fok().into(),
            FokNotFillable,
        ),
    ]
}

fn mass_cancel_ref(market: Option<&str>, slot: Option<u64>) -> Command {
    Command::MassCancel(MassCancel {
        account: 1,
        market: market.map(mid),
        slot,
    })
}

/// The rows about delivery slots, window orders and cluster (`colocate`) orders:
/// the slot codes 209–212 and 405–406, and the older codes these orders can meet.
#[allow(clippy::too_many_lines)] // a table, one row per refusal, read top to bottom by code
fn slot_rows() -> Vec<(&'static str, Command, RejectReason)> {
    let most = WINDOW_SLOTS_MAX * SLOT_SECS;
    vec![
        // 200: the fields of window and cluster orders.
        (
            "window order resting (gtc)",
            buy(2, "1", "2.50")
                .window(S, S)
                .tif(TimeInForce::Gtc)
                .into(),
            InvalidOrder,
        ),
        (
            "window order gtd",
            buy(2, "1", "2.50").window(S, S).gtd(T0 + 10).into(),
            InvalidOrder,
        ),
        (
            "window order post-only",
            buy(2, "1", "2.50").window(S, S).post_only().into(),
            InvalidOrder,
        ),
        (
            "window market order",
            market_buy(2, "1").window(S, S).into(),
            InvalidOrder,
        ),
        (
            "cluster sell",
            sell(1, "1", "2.40").colocate().into(),
            InvalidOrder,
        ),
        (
            "cluster market buy",
            market_buy(2, "1").colocate().into(),
            InvalidOrder,
        ),
        // 209: a slot is the start of an hour.
        (
            "order for a slot in the middle of an hour",
            buy(1, "1", "2.00").at_slot(S + 1_800).into(),
            SlotNotOnHour,
        ),
        (
            "window starting a minute past the hour",
            buy(2, "1", "2.50").window(S + 60, S2).into(),
            SlotNotOnHour,
        ),
        (
            "capacity range ending a second before the hour",
            add_capacity_range(1, M, S, S2 - 1, "1"),
            SlotNotOnHour,
        ),
        (
            "capacity removal off the hour",
            remove_capacity_range(1, M, S + 1, S + 1, "1"),
            SlotNotOnHour,
        ),
        // 210: the gate of slot 0 (1970-01-01T00:00Z) closed before the clock's start.
        (
            "order for a closed slot",
            buy(1, "1", "2.00").at_slot(0).into(),
            SlotClosed,
        ),
        (
            "window starting in a closed slot",
            buy(2, "1", "2.50").window(0, S).into(),
            SlotClosed,
        ),
        (
            "capacity range starting in a closed slot",
            add_capacity_range(1, M, 0, S, "1"),
            SlotClosed,
        ),
        (
            "capacity removal from a closed slot",
            remove_capacity_range(1, M, 0, 0, "1"),
            SlotClosed,
        ),
        // 211: the default horizon is 168 hours.
        (
            "order for the slot after the horizon",
            buy(1, "1", "2.00").at_slot(LAST + SLOT_SECS).into(),
            SlotBeyondHorizon,
        ),
        (
            "window ending after the horizon",
            buy(2, "1", "2.50").window(S, LAST + SLOT_SECS).into(),
            SlotBeyondHorizon,
        ),
        (
            "capacity range ending after the horizon",
            add_capacity_range(1, M, S, LAST + SLOT_SECS, "1"),
            SlotBeyondHorizon,
        ),
        // 212: the range itself.
        (
            "order naming a slot and a window",
            with(buy(2, "1", "2.50").window(S, S), |o| o.slot = Some(S)).into(),
            InvalidSlotRange,
        ),
        (
            "order naming neither slot nor window",
            with(buy(1, "1", "2.00"), |o| o.slot = None).into(),
            InvalidSlotRange,
        ),
        (
            "window ending before it starts",
            buy(2, "1", "2.50").window(S2, S).into(),
            InvalidSlotRange,
        ),
        (
            "window of one slot more than the most",
            buy(1, "1", "2.00").in_market(Y).window(S, S + most).into(),
            InvalidSlotRange,
        ),
        (
            "capacity range ending before it starts",
            add_capacity_range(1, M, S2, S, "1"),
            InvalidSlotRange,
        ),
        (
            "mass cancel of a slot without a market",
            mass_cancel_ref(None, Some(S)),
            InvalidSlotRange,
        ),
        // 3xx: a window holds, and needs GPUs, in every slot.
        (
            "window buy whose holds over four slots exceed the funds",
            buy(3, "1", "2.00").window(S, S + 3 * SLOT_SECS).into(),
            InsufficientFunds,
        ),
        (
            "window sell without GPUs in its second slot",
            sell(1, "1", "2.40").window(S, S2).into(),
            InsufficientCapacity,
        ),
        (
            "capacity removal from a range where one slot has none",
            remove_capacity_range(2, M, S, S2, "1"),
            InsufficientCapacity,
        ),
        (
            "capacity range past the lot limit in one of its slots",
            add_capacity_range(1, M, S, S2, "999999999999990"),
            BalanceLimitExceeded,
        ),
        // 405: all of every slot, from other accounts' orders, at the limit.
        (
            "window buy over a slot with no asks",
            buy(2, "1", "2.50").window(S, S2).into(),
            WindowNotFillable,
        ),
        (
            "window buy larger than the asks in its slot",
            buy(2, "8", "2.60").window(S, S).into(),
            WindowNotFillable,
        ),
        (
            "IOC window buy larger than the asks: still all or nothing",
            buy(2, "8", "2.60").window(S, S).ioc().into(),
            WindowNotFillable,
        ),
        (
            "window buy only the buyer's own asks could fill",
            buy(1, "1", "2.60").window(S, S).into(),
            WindowNotFillable,
        ),
        (
            "window sell under the best bid's price",
            sell(1, "1", "2.41").window(S, S).into(),
            WindowNotFillable,
        ),
        (
            "window of exactly the most slots, all without a book",
            // 744 slots × 0.01 USD: within account 1's funds.
            buy(1, "1", "0.01")
                .in_market(Y)
                .window(S, S + most - SLOT_SECS)
                .into(),
            WindowNotFillable,
        ),
        // 406: every GPU of every slot from one provider's own inventory.
        (
            "cluster larger than the provider's asks",
            buy(2, "8", "2.60").colocate().into(),
            ClusterNotFillable,
        ),
        (
            "cluster over a window whose second slot has no asks",
            buy(2, "1", "2.50").colocate().window(S, S2).into(),
            ClusterNotFillable,
        ),
        (
            "cluster only the buyer's own asks could fill",
            buy(1, "1", "2.60").colocate().into(),
            ClusterNotFillable,
        ),
    ]
}

#[test]
fn every_row_is_refused_for_its_reason_and_changes_nothing() {
    let mut failures = Vec::new();
    for (what, cmd, reason) in table() {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut x = setup();
            x.rejects(cmd.clone(), reason);
        }));
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{what} (expected {}): {msg}", reason.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_rejection_names_what_was_refused() {
    let mut x = setup();
    let cases: Vec<(Command, &str)> = vec![
        (
            buy(3, "2", "2.50").client("c-9").into(),
            "rejected place_order acct 3 client c-9: insufficient_funds",
        ),
        (
            cancel(2, 1),
            "rejected cancel_order acct 2 #1: not_your_order",
        ),
        (
            amend_client(1, "zz").qty("1").into(),
            "rejected amend_order acct 1 client zz: unknown_order",
        ),
        (
            mass_cancel_in(1, NOWHERE),
            "rejected mass_cancel acct 1 [b200.ap-south]: unknown_market",
        ),
        (
            deposit(0, "1"),
            "command rejected deposit acct 0: reserved_account",
        ),
        (
            list_market(N, "0.01", "1", 0, 0).into(),
            "command rejected list_market [a100.eu-west]: market_exists",
        ),
    ];
    for (cmd, line) in cases {
        then(&x.when(cmd), &[line]);
    }
}

/// Every reason `apply` can give is exercised, here or in this file's other tests.
#[test]
fn the_table_covers_every_reason() {
    let mut covered: BTreeSet<RejectReason> = table().into_iter().map(|r| r.2).collect();
    // Reached by the dedicated tests below.
    covered.extend([TooManyOpenOrders, LimitReached]);
    // Reached by tests/delivery.rs, which sets up delivery entries and records.
    covered.extend([
        UnknownEntry,
        NotYourEntry,
        ReportWindowClosed,
        DisputeWindowClosed,
        EntryDisputed,
        NotDisputed,
        QuantityExceedsEntry,
        InvalidMinReliability,
    ]);
    // Reached by tests/api_keys.rs.
    covered.extend([UnknownApiKey, LastApiKey, TooManyApiKeys, ApiKeyInUse]);
    // Not reachable through `apply`: set by the pipeline for undecodable input.
    covered.insert(MalformedCommand);
    // 4,000,000 resting orders in one book: too many for a test's time budget.
    covered.insert(BookFull);
    let all: BTreeSet<RejectReason> = RejectReason::ALL.iter().copied().collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(missing.is_empty(), "no test for {missing:?}");
}

/// For the limit tests: a plain engine (the lockstep harness would check
/// thousands of orders after every command), checked the same way.
fn assert_refused_without_effect(
    engine: &mut Engine<Book>,
    seq: &mut u64,
    cmd: Command,
    reason: RejectReason,
) {
    let mut untouched = engine.clone();
    let mut events = Vec::new();
    *seq += 1;
    engine.apply(*seq, T0, &cmd, &mut events);
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        Event::OrderRejected(r) | Event::CommandRejected(r) => assert_eq!(r.reason, reason),
        other => panic!("expected a rejection, got {other:?}"),
    }
    *seq += 1;
    let probe = create_account(5_000_000 + *seq);
    engine.apply(*seq, T0, &probe, &mut events);
    untouched.apply(*seq, T0, &probe, &mut events);
    assert_eq!(engine.state_hash(), untouched.state_hash());
    engine.check_invariants().unwrap();
}

fn apply_ok(engine: &mut Engine<Book>, seq: &mut u64, cmd: Command) -> Vec<Event> {
    let mut events = Vec::new();
    *seq += 1;
    engine.apply(*seq, T0, &cmd, &mut events);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::OrderRejected(_) | Event::CommandRejected(_))),
        "{cmd:?} refused: {events:?}"
    );
    events
}

#[test]
fn an_account_cannot_rest_more_than_the_open_order_limit() {
    let mut engine: Engine<Book> = Engine::new();
    let mut seq = 0;
    apply_ok(
        &mut engine,
        &mut seq,
        list_market(M, "0.01", "1", 10, 20).into(),
    );
    apply_ok(&mut engine, &mut seq, create_account(1));
    apply_ok(&mut engine, &mut seq, deposit(1, "1000000"));
    apply_ok(&mut engine, &mut seq, create_account(2));
    apply_ok(&mut engine, &mut seq, add_capacity(2, "10"));
    apply_ok(&mut engine, &mut seq, sell(2, "10", "9.00").into());
    for i in 0..OPEN_ORDERS_PER_ACCOUNT_MAX {
        let price = format!("{}.{:02}", 1 + i / 100 % 5, i % 100);
        apply_ok(&mut engine, &mut seq, buy(1, "1", &price).into());
    }
    assert_eq!(
        engine.open_orders(1).unwrap().len(),
        OPEN_ORDERS_PER_ACCOUNT_MAX
    );
    assert_refused_without_effect(
        &mut engine,
        &mut seq,
        buy(1, "1", "2.00").into(),
        TooManyOpenOrders,
    );
    assert_refused_without_effect(
        &mut engine,
        &mut seq,
        buy(1, "1", "2.00").gtd(T0 + 100).into(),
        TooManyOpenOrders,
    );
    // Orders that never rest are still welcome...
    let events = apply_ok(&mut engine, &mut seq, buy(1, "1", "9.00").ioc().into());
    assert!(events.iter().any(|e| matches!(e, Event::TradeExecuted(_))));
    apply_ok(&mut engine, &mut seq, market_buy(1, "1").into());
    // ...and one cancel makes room for one more.
    apply_ok(&mut engine, &mut seq, cancel(1, 2));
    apply_ok(&mut engine, &mut seq, buy(1, "1", "2.00").into());
    assert_refused_without_effect(
        &mut engine,
        &mut seq,
        buy(1, "1", "2.00").into(),
        TooManyOpenOrders,
    );
}

#[test]
fn the_exchange_lists_no_more_than_the_market_limit() {
    let mut engine: Engine<Book> = Engine::new();
    let mut seq = 0;
    for i in 0..MARKETS_MAX {
        apply_ok(
            &mut engine,
            &mut seq,
            list_market(&format!("gpu-{i}.r"), "0.01", "1", 0, 0).into(),
        );
    }
    assert_refused_without_effect(
        &mut engine,
        &mut seq,
        list_market("one-more.r", "0.01", "1", 0, 0).into(),
        LimitReached,
    );
    assert_eq!(engine.markets().count(), MARKETS_MAX);
}

/// A slot trades until its gate (300 s before it starts, by default) and not a
/// nanosecond longer; the horizon's last slot (168 hours ahead) trades and the next
/// one does not.
#[test]
fn a_slot_trades_until_its_gate_and_up_to_the_horizon_included() {
    let mut x = Exchange::new();
    x.demander(1, "100");
    x.given(create_account(2));
    // The clock is at 0 s: the horizon reaches slot 168 h, not 169 h.
    x.given(buy(1, "1", "2.00").at_slot(LAST)); // #1
    x.rejects(
        buy(1, "1", "2.00").at_slot(LAST + SLOT_SECS),
        SlotBeyondHorizon,
    );
    // At the gate itself, S still trades...
    let gate_ns = (S - 300) * NANOS_PER_SEC;
    x.at(gate_ns);
    x.given(buy(1, "1", "2.00")); // #2
    x.given(add_capacity(2, "1"));
    // ...one nanosecond later the next command closes it first.
    x.at(gate_ns + 1);
    then(
        &x.when(Command::Tick(Tick {})),
        &[
            "cancelled #2 acct 1 buy 1 @ 2.00: slot_closed, off the book",
            "inventory expired acct 2 1",
            "slot closed: 0 scheduled, 1 expired",
        ],
    );
    x.rejects(buy(1, "1", "2.00"), SlotClosed);
    x.rejects(add_capacity(2, "1"), SlotClosed);
    x.rejects(remove_capacity(2, "1"), SlotClosed);
    assert_eq!(x.open(1), [1], "the order in slot 168 h is untouched");
}

/// Two providers could fill a cluster together but neither alone: the cluster is
/// refused and changes nothing. The same quantity fills as a window, which takes
/// any seller.
#[test]
fn a_cluster_needs_one_provider_for_every_gpu() {
    let mut x = Exchange::new();
    x.provider(1, "3").provider(2, "3").demander(3, "100");
    x.given(sell(1, "3", "2.50")); // #1
    x.given(sell(2, "3", "2.50")); // #2
    x.rejects(buy(3, "5", "2.50").colocate(), ClusterNotFillable);
    then(
        &x.when(buy(3, "5", "2.50").window(S, S)),
        &[
            "accepted #3 acct 3 window 3600..=3600 buy 5 @ 2.50 fok",
            "trade 1: 3 @ 2.50, maker #1 acct 1 (fee 0.0075, left 0), taker #3 acct 3 buy (fee 0.015, left 2)",
            "trade 2: 2 @ 2.50, maker #2 acct 2 (fee 0.005, left 1), taker #3 acct 3 buy (fee 0.01, left 0)",
        ],
    );
}

/// GPUs bought and offered again are not the reseller's own inventory: a cluster
/// cannot take them, though a plain order can.
#[test]
fn resold_gpus_cannot_fill_a_cluster() {
    let mut x = Exchange::new();
    x.provider(1, "3").demander(2, "100").demander(3, "100");
    x.given(sell(1, "3", "2.00")); // #1
    x.given(buy(2, "3", "2.00").ioc()); // #2 buys them all
    x.given(sell(2, "3", "2.10")); // #3 offers them again
    x.rejects(buy(3, "1", "2.10").colocate(), ClusterNotFillable);
    x.given(buy(3, "3", "2.10").fok());
    assert_eq!(x.gpu(3), "3 + 0 held");
}

/// A mass cancel limited to a slot needs the market the slot belongs to.
#[test]
fn a_mass_cancel_of_one_slot_names_its_market() {
    let mut x = setup();
    x.rejects(mass_cancel_ref(None, Some(S)), InvalidSlotRange);
    then(
        &x.when(mass_cancel_ref(Some(M), Some(S2))),
        &["mass cancelled acct 1 in h100-sxm.us-east slot 7200: 0 orders"],
    );
    assert_eq!(x.open(1), [1, 3]);
}
