//! Delivery slots: books per slot, capacity over ranges, positions and resale,
//! all-or-none window and cluster orders, and gate closure with its delivery
//! schedule — as scenarios with every expected line written from the rules, and
//! as properties over random scripts that cross many gate closures.
//!
//! The default market `h100-sxm.us-east` (tick 0.01, lot 1, fees 10/20 bps) trades
//! slots a week ahead with a 300 s gate; the default slot `S` is 1970-01-01T01:00Z
//! (3600), so its gate closes at 3300 s of engine time. See `common` for the text
//! form (the default slot is not named; others read `slot N`).

mod common;

use common::*;
use gpux_engine::command::Tick;
use gpux_engine::{Command, RejectReason, Side};

/// Engine time (ns) just after the gate of `slot` closes under the default rules.
fn after_gate(slot: u64) -> u64 {
    (slot - 300) * 1_000_000_000 + 1
}

fn tick() -> Command {
    Command::Tick(Tick {})
}

#[test]
fn a_resold_position_is_traced_to_its_provider_at_the_gate() {
    let mut x = Exchange::new();
    x.provider(1, "10").demander(2, "100").demander(3, "100");
    x.given(sell(1, "6", "2.50")); // #1
    x.given(buy(2, "6", "2.50")); // #2, trade 1: 6 from provider 1
    x.given(sell(2, "4", "2.60")); // #3: 2 resells 4 of them
    x.given(buy(3, "4", "2.60")); // #4, trade 2
    x.given(buy(2, "1", "2.00")); // #5 rests
    assert_eq!(x.gpu(2), "2 + 0 held");

    // One nanosecond before the gate nothing happens; after it, the slot closes.
    x.at(after_gate(S) - 1);
    then(&x.when(tick()), &[]);
    x.at(after_gate(S));
    then(
        &x.when(tick()),
        &[
            "cancelled #5 acct 2 buy 1 @ 2.00: slot_closed, off the book",
            // Account by account: the provider's unsold 4, then each holder's
            // lots, naming the provider and the trades they came through.
            "inventory expired acct 1 4",
            "delivery 1: acct 1 -> acct 2 2 via trades [1]",
            "delivery 2: acct 1 -> acct 3 4 via trades [1, 2]",
            "slot closed: 6 scheduled, 4 expired",
        ],
    );
    assert_eq!(x.gpu(1), "0 + 0 held");
    assert_eq!(x.gpu(3), "0 + 0 held");
    assert!(x.engine.slots(&mid(M)).unwrap().is_empty());
    assert!(x.asks().is_empty());
    // The slot is closed to new orders and capacity.
    x.rejects(buy(2, "1", "2.50"), RejectReason::SlotClosed);
    x.rejects(add_capacity(1, "1"), RejectReason::SlotClosed);
}

#[test]
fn a_sale_comes_from_inventory_first_then_from_the_oldest_purchase() {
    let mut x = Exchange::new();
    x.provider(1, "5").provider(2, "5").demander(3, "100");
    x.given(sell(1, "3", "2.00")); // #1
    x.given(sell(2, "2", "2.10")); // #2
    x.given(buy(3, "3", "2.00")); // #3, trade 1: 3 from provider 1
    x.given(buy(3, "2", "2.10")); // #4, trade 2: 2 from provider 2
    // 3 also gets inventory of its own, then sells 4: its 1 own GPU, then 3
    // of its oldest purchase (provider 1's).
    x.given(add_capacity(3, "1"));
    x.given(sell(3, "4", "2.30")); // #5
    x.given(create_account(4));
    x.given(deposit(4, "100"));
    x.given(buy(4, "4", "2.30")); // #6, trade 3
    x.at(after_gate(S));
    then(
        &x.when(tick()),
        &[
            // Account by account: 1 and 2 kept unsold inventory; 3 kept provider
            // 2's GPUs; 4 got 3's own GPU, then 3 of provider 1's.
            "inventory expired acct 1 2",
            "inventory expired acct 2 3",
            "delivery 1: acct 2 -> acct 3 2 via trades [2]",
            "delivery 2: acct 3 -> acct 4 1 via trades [3]",
            "delivery 3: acct 1 -> acct 4 3 via trades [1, 3]",
            "slot closed: 6 scheduled, 5 expired",
        ],
    );
}

#[test]
fn capacity_covers_a_range_and_only_unsold_inventory_comes_back() {
    let mut x = Exchange::new();
    x.demander(2, "100");
    x.given(create_account(1));
    then(
        &x.when(add_capacity_range(1, M, S, S + 7_200, "10")),
        &["capacity added acct 1 slots 3600..=10800 10"],
    );
    for slot in [S, S + 3_600, S + 7_200] {
        assert_eq!(x.gpu_at(1, M, slot), "10 + 0 held");
    }
    x.given(sell(1, "10", "2.00")); // #1
    x.given(buy(2, "4", "2.00")); // trade 1
    // The rest of the ask holds all 6 unsold GPUs of S.
    x.rejects(remove_capacity(1, "1"), RejectReason::InsufficientCapacity);
    x.given(cancel(1, 1));
    // All slots or none: S has 6 left, the others 10.
    x.rejects(
        remove_capacity_range(1, M, S, S + 7_200, "7"),
        RejectReason::InsufficientCapacity,
    );
    then(
        &x.when(remove_capacity_range(1, M, S, S + 7_200, "6")),
        &["capacity removed acct 1 slots 3600..=10800 6"],
    );
    assert_eq!(x.gpu(1), "0 + 0 held");
    assert_eq!(x.gpu_at(1, M, S + 3_600), "4 + 0 held");
    // A buyer's position is not inventory: it can be resold, not removed.
    x.rejects(remove_capacity(2, "1"), RejectReason::InsufficientCapacity);
    x.rejects(
        add_capacity_range(1, M, S + 3_600, S, "1"),
        RejectReason::InvalidSlotRange,
    );
}

#[test]
fn a_window_fills_every_slot_or_nothing() {
    let mut x = Exchange::new();
    x.given(create_account(1));
    x.given(add_capacity_range(1, M, S, S + 7_200, "5"));
    x.demander(2, "100");
    x.given(sell(1, "5", "2.00")); // #1 in S
    x.given(sell(1, "5", "2.10").at_slot(S + 3_600)); // #2
    x.given(sell(1, "3", "2.00").at_slot(S + 7_200)); // #3
    // The last slot has only 3: nothing happens anywhere.
    x.rejects(
        buy(2, "4", "2.20").window(S, S + 7_200),
        RejectReason::WindowNotFillable,
    );
    // Above the limit in one slot: refused too.
    x.rejects(
        buy(2, "3", "2.05").window(S, S + 7_200),
        RejectReason::WindowNotFillable,
    );
    then(
        &x.when(buy(2, "3", "2.20").window(S, S + 7_200)),
        &[
            "accepted #4 acct 2 window 3600..=10800 buy 3 @ 2.20 fok",
            "trade 1: 3 @ 2.00, maker #1 acct 1 (fee 0.006, left 2), taker #4 acct 2 buy (fee 0.012, left 0)",
            "trade 2 slot 7200: 3 @ 2.10, maker #2 acct 1 (fee 0.0063, left 2), taker #4 acct 2 buy (fee 0.0126, left 0)",
            "trade 3 slot 10800: 3 @ 2.00, maker #3 acct 1 (fee 0.006, left 0), taker #4 acct 2 buy (fee 0.012, left 0)",
        ],
    );
    // 6.012 + 6.3126 + 6.012 paid; the three slots' holds all released.
    assert_eq!(x.usd(2), "81.6634 + 0 held");
    for slot in [S, S + 3_600, S + 7_200] {
        assert_eq!(x.gpu_at(2, M, slot), "3 + 0 held");
    }
    // Windows never rest.
    x.rejects(
        buy(2, "1", "2.20").window(S, S + 3_600).tif(gpux_engine::TimeInForce::Gtc),
        RejectReason::InvalidOrder,
    );
}

#[test]
fn a_window_skips_the_takers_own_orders_and_leaves_them() {
    let mut x = Exchange::new();
    x.trader(1, "100", "5").provider(2, "5");
    x.given(sell(1, "5", "2.00")); // #1, own
    x.given(sell(2, "5", "2.10")); // #2
    then(
        &x.when(buy(1, "5", "2.20").window(S, S)),
        &[
            "accepted #3 acct 1 window 3600..=3600 buy 5 @ 2.20 fok",
            "trade 1: 5 @ 2.10, maker #2 acct 2 (fee 0.0105, left 0), taker #3 acct 1 buy (fee 0.021, left 0)",
        ],
    );
    assert_eq!(x.asks(), ["5 @ 2.00"]);
}

#[test]
fn a_cluster_comes_from_the_one_provider_with_the_best_total() {
    let mut x = Exchange::new();
    for p in [1, 2] {
        x.given(create_account(p));
        x.given(add_capacity_range(p, M, S, S + 3_600, "8"));
    }
    x.demander(3, "100");
    x.given(sell(1, "8", "2.00")); // #1: cheapest in S...
    x.given(sell(1, "8", "2.60").at_slot(S + 3_600)); // #2: ...dearest after
    x.given(sell(2, "8", "2.20")); // #3
    x.given(sell(2, "8", "2.30").at_slot(S + 3_600)); // #4
    // Provider 1: 8 × 4.60 = 36.80; provider 2: 8 × 4.50 = 36.00.
    then(
        &x.when(buy(3, "8", "2.60").window(S, S + 3_600).colocate()),
        &[
            "accepted #5 acct 3 window 3600..=7200 colocate buy 8 @ 2.60 fok",
            "trade 1: 8 @ 2.20, maker #3 acct 2 (fee 0.0176, left 0), taker #5 acct 3 buy (fee 0.0352, left 0)",
            "trade 2 slot 7200: 8 @ 2.30, maker #4 acct 2 (fee 0.0184, left 0), taker #5 acct 3 buy (fee 0.0368, left 0)",
        ],
    );
    assert_eq!(x.asks(), ["8 @ 2.00"]);
}

#[test]
fn a_cluster_tie_goes_to_the_earlier_ask_and_sells_are_refused() {
    let mut x = Exchange::new();
    x.provider(1, "4").provider(2, "4").demander(3, "100");
    x.given(sell(2, "4", "2.00")); // #1: provider 2 first in time
    x.given(sell(1, "4", "2.00")); // #2
    x.rejects(sell(1, "1", "2.00").colocate().ioc(), RejectReason::InvalidOrder);
    then(
        &x.when(buy(3, "4", "2.00").colocate().ioc()),
        &[
            "accepted #3 acct 3 colocate buy 4 @ 2.00 fok",
            "trade 1: 4 @ 2.00, maker #1 acct 2 (fee 0.008, left 0), taker #3 acct 3 buy (fee 0.016, left 0)",
        ],
    );
}

#[test]
fn a_cluster_needs_one_providers_own_inventory() {
    let mut x = Exchange::new();
    x.provider(1, "5").provider(2, "8").demander(3, "100").demander(4, "100");
    x.given(sell(1, "5", "2.00")); // #1
    x.given(buy(3, "5", "2.00")); // #2: 3 now holds 5 of provider 1's
    x.given(sell(3, "5", "1.00")); // #3: and resells them cheap
    x.given(sell(2, "4", "2.20")); // #4
    x.given(sell(2, "4", "2.40")); // #5
    // Depth for cluster buyers: the resold 5 are no block; provider 2's are.
    let blocks = x.engine.ask_blocks(&mid(M), S, 10).unwrap();
    let seen: Vec<String> = blocks
        .iter()
        .map(|b| format!("{} @ {} block {}", b.quantity, b.price, b.largest_block))
        .collect();
    assert_eq!(seen, ["5 @ 1.00 block 0", "4 @ 2.20 block 4", "4 @ 2.40 block 8"]);
    // 6 from one provider at ≤ 2.30: provider 2 has only 4 there.
    x.rejects(
        buy(4, "6", "2.30").colocate(),
        RejectReason::ClusterNotFillable,
    );
    then(
        &x.when(buy(4, "6", "2.40").colocate()),
        &[
            "accepted #6 acct 4 colocate buy 6 @ 2.40 fok",
            "trade 2: 4 @ 2.20, maker #4 acct 2 (fee 0.0088, left 0), taker #6 acct 4 buy (fee 0.0176, left 2)",
            "trade 3: 2 @ 2.40, maker #5 acct 2 (fee 0.0048, left 2), taker #6 acct 4 buy (fee 0.0096, left 0)",
        ],
    );
    assert_eq!(x.asks(), ["5 @ 1.00", "2 @ 2.40"]);
}

#[test]
fn slots_are_checked_against_engine_time() {
    let mut x = Exchange::new();
    x.demander(1, "100");
    x.rejects(buy(1, "1", "2.00").at_slot(S + 1), RejectReason::SlotNotOnHour);
    // Horizon 168 h from engine time (≈ 0): the slot at 168 h is the last.
    x.given(buy(1, "1", "2.00").at_slot(168 * 3_600));
    x.rejects(
        buy(1, "1", "2.00").at_slot(169 * 3_600),
        RejectReason::SlotBeyondHorizon,
    );
    // Exactly at the gate the slot still trades; a nanosecond later it is closed.
    x.at(after_gate(S) - 1);
    x.given(buy(1, "1", "2.00"));
    x.at(after_gate(S));
    then(
        &x.when(tick()),
        &[
            "cancelled #2 acct 1 buy 1 @ 2.00: slot_closed, off the book",
            "slot closed: 0 scheduled, 0 expired",
        ],
    );
    x.rejects(buy(1, "1", "2.00"), RejectReason::SlotClosed);
}

#[test]
fn gtd_expiry_and_gate_closure_come_from_ticks_alone() {
    let mut x = Exchange::new();
    x.demander(1, "100");
    x.given(buy(1, "2", "2.00").gtd(T0 + 10)); // #1
    x.given(buy(1, "3", "2.10").at_slot(S + 3_600)); // #2
    x.at(T0 + 11);
    then(
        &x.when(tick()),
        &["cancelled #1 acct 1 buy 2 @ 2.00: expired, off the book"],
    );
    x.at(after_gate(S + 3_600));
    then(
        &x.when(tick()),
        &[
            // S (opened by #1) closes first, then 7200.
            "slot closed: 0 scheduled, 0 expired",
            "cancelled #2 acct 1 slot 7200 buy 3 @ 2.10: slot_closed, off the book",
            "slot closed slot 7200: 0 scheduled, 0 expired",
        ],
    );
    assert_eq!(x.usd(1), "100 + 0 held");
}

#[test]
fn mass_cancel_can_name_one_slot() {
    let mut x = Exchange::new();
    x.demander(1, "100");
    x.given(buy(1, "1", "2.00")); // #1
    x.given(buy(1, "1", "2.00").at_slot(S + 3_600)); // #2
    then(
        &x.when(mass_cancel_slot(1, M, S + 3_600)),
        &[
            "cancelled #2 acct 1 slot 7200 buy 1 @ 2.00: mass_cancel, off the book",
            "mass cancelled acct 1 in h100-sxm.us-east slot 7200: 1 orders",
        ],
    );
    assert_eq!(x.open(1), [1]);
    assert_eq!(x.levels_at(M, S, Side::Buy), ["1 @ 2.00"]);
}
