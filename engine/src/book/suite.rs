//! The conformance suite every [`OrderBook`] must pass, run against the fast
//! [`Book`] and the reference [`NaiveBook`] alike.
//!
//! Each test is a generic function; [`conformance!`] instantiates it once per
//! book. Every mutation goes through [`Checked`], which keeps each order's
//! handle by id (as the engine does) and after each step verifies that the book
//! agrees with itself: `visit` order, `depth`, `quantity_at`, `best_price`,
//! `front`, `len`, and `get` of every handle must all describe the same orders.
//! A property test at the end drives both books with the same random operations
//! and requires identical answers.

use super::{Book, Handle, NaiveBook, OrderBook, RestingOrder};
use crate::types::{OrderId, Side, StpMode};
use proptest::prelude::*;
use std::collections::BTreeMap;

const BUY: Side = Side::Buy;
const SELL: Side = Side::Sell;

fn order(id: OrderId, side: Side, price_ticks: i64, quantity_lots: u64) -> RestingOrder {
    RestingOrder {
        id,
        account: 100 + id % 3,
        side,
        price_ticks,
        quantity_lots,
        good_till_ns: None,
        post_only: false,
        stp: StpMode::CancelTaker,
        client_order_id: None,
    }
}

/// Every order of `side` in visit (priority) order.
fn visited<B: OrderBook>(book: &B, side: Side) -> Vec<RestingOrder> {
    let mut all = Vec::new();
    book.visit(side, &mut |o| {
        all.push(*o);
        true
    });
    all
}

/// The ids of `side` in priority order.
fn queue<B: OrderBook>(book: &B, side: Side) -> Vec<OrderId> {
    visited(book, side).iter().map(|o| o.id).collect()
}

fn depth<B: OrderBook>(book: &B, side: Side) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    book.depth(side, usize::MAX, &mut out);
    out
}

/// Whether `a` is a strictly better price than `b` for resting orders of `side`.
fn better(side: Side, a: i64, b: i64) -> bool {
    match side {
        Side::Buy => a > b,
        Side::Sell => a < b,
    }
}

/// Asserts that every view of the book describes the same set of orders.
fn assert_consistent<B: OrderBook>(book: &B) {
    let mut total = 0;
    let mut ids = std::collections::BTreeSet::new();
    for side in [BUY, SELL] {
        let orders = visited(book, side);
        total += orders.len();
        // Levels rebuilt from the visit: prices strictly worsening, each price once.
        let mut levels: Vec<(i64, u64)> = Vec::new();
        for o in &orders {
            assert_eq!(o.side, side, "order {} visited on the wrong side", o.id);
            assert!(o.quantity_lots > 0, "order {} rests with no quantity", o.id);
            assert!(ids.insert(o.id), "order {} visited twice", o.id);
            match levels.last_mut() {
                Some(last) if last.0 == o.price_ticks => last.1 += o.quantity_lots,
                Some(last) => {
                    assert!(
                        better(side, last.0, o.price_ticks),
                        "{side:?} visit goes from {} to {}",
                        last.0,
                        o.price_ticks
                    );
                    levels.push((o.price_ticks, o.quantity_lots));
                }
                None => levels.push((o.price_ticks, o.quantity_lots)),
            }
        }
        assert_eq!(
            depth(book, side),
            levels,
            "{side:?} depth disagrees with visit"
        );
        for n in 0..=levels.len() + 1 {
            let mut out = vec![(-7, 7)];
            book.depth(side, n, &mut out);
            assert_eq!(out[0], (-7, 7), "depth must append, not overwrite");
            assert_eq!(&out[1..], &levels[..n.min(levels.len())]);
        }
        for &(price, lots) in &levels {
            assert_eq!(book.quantity_at(side, price), lots);
            for gap in [price.checked_sub(1), price.checked_add(1)]
                .into_iter()
                .flatten()
            {
                if !levels.iter().any(|l| l.0 == gap) {
                    assert_eq!(book.quantity_at(side, gap), 0, "no level at {gap}");
                }
            }
        }
        assert_eq!(book.best_price(side), levels.first().map(|l| l.0));
        assert_eq!(book.front(side), orders.first());
        // Visiting stops as soon as the visitor says so.
        let mut calls = 0;
        book.visit(side, &mut |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, orders.len().min(1));
    }
    assert_eq!(book.len(), total);
    assert_eq!(book.is_empty(), total == 0);
}

/// A book whose consistency is asserted after every mutation, with the handle
/// of each order on it by id.
struct Checked<B>(B, BTreeMap<OrderId, Handle>);

impl<B: OrderBook> Checked<B> {
    fn new() -> Self {
        let book = Checked(B::default(), BTreeMap::new());
        book.check();
        book
    }

    /// The book agrees with itself, and every handle finds its order.
    fn check(&self) {
        assert_consistent(&self.0);
        assert_eq!(self.1.len(), self.0.len(), "a handle per order");
        for (&id, &h) in &self.1 {
            assert_eq!(self.0.get(h).id, id, "handle {h} finds another order");
        }
        for side in [BUY, SELL] {
            for o in visited(&self.0, side) {
                assert_eq!(self.get(o.id), Some(&o), "get disagrees with visit");
            }
        }
    }

    fn get(&self, id: OrderId) -> Option<&RestingOrder> {
        self.1.get(&id).map(|&h| self.0.get(h))
    }

    fn insert(&mut self, o: RestingOrder) -> &mut Self {
        let h = self.0.insert(o);
        assert!(
            self.1.insert(o.id, h).is_none(),
            "order {} inserted twice",
            o.id
        );
        self.check();
        self
    }

    fn bid(&mut self, id: OrderId, price: i64, lots: u64) -> &mut Self {
        self.insert(order(id, BUY, price, lots))
    }

    fn ask(&mut self, id: OrderId, price: i64, lots: u64) -> &mut Self {
        self.insert(order(id, SELL, price, lots))
    }

    /// Removes an order by id (`None`: not on the book, nothing done).
    fn remove(&mut self, id: OrderId) -> Option<RestingOrder> {
        let h = self.1.remove(&id)?;
        let removed = self.0.remove(h);
        assert_eq!(removed.id, id);
        self.check();
        Some(removed)
    }

    fn reduce(&mut self, id: OrderId, lots: u64) {
        self.0.reduce(self.1[&id], lots);
        self.check();
    }

    fn fill_front(&mut self, side: Side, lots: u64) -> RestingOrder {
        let filled = self.0.fill_front(side, lots);
        if lots == filled.quantity_lots {
            self.1.remove(&filled.id);
        }
        self.check();
        filled
    }
}

fn empty_book_answers_nothing<B: OrderBook>() {
    let b = Checked::<B>::new();
    for side in [BUY, SELL] {
        assert_eq!(b.0.best_price(side), None);
        assert_eq!(b.0.front(side), None);
        assert!(depth(&b.0, side).is_empty());
        assert_eq!(b.0.quantity_at(side, 100), 0);
    }
    assert!(b.0.is_empty());
}

fn orders_at_one_price_fill_first_in_first_out<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    b.ask(1, 250, 2).ask(2, 250, 3).ask(3, 250, 4);
    assert_eq!(queue(&b.0, SELL), [1, 2, 3]);
    assert_eq!(b.0.front(SELL).map(|o| o.id), Some(1));
    assert_eq!(b.fill_front(SELL, 2), order(1, SELL, 250, 2));
    assert_eq!(b.fill_front(SELL, 3), order(2, SELL, 250, 3));
    assert_eq!(b.fill_front(SELL, 4), order(3, SELL, 250, 4));
    assert!(b.0.is_empty());
}

fn better_price_comes_first_whatever_the_arrival<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    // Bids: highest first.
    b.bid(1, 100, 1)
        .bid(2, 102, 2)
        .bid(3, 101, 3)
        .bid(4, 102, 4);
    assert_eq!(queue(&b.0, BUY), [2, 4, 3, 1]);
    assert_eq!(depth(&b.0, BUY), [(102, 6), (101, 3), (100, 1)]);
    // Asks: lowest first.
    b.ask(5, 105, 1)
        .ask(6, 103, 2)
        .ask(7, 104, 3)
        .ask(8, 103, 4);
    assert_eq!(queue(&b.0, SELL), [6, 8, 7, 5]);
    assert_eq!(depth(&b.0, SELL), [(103, 6), (104, 3), (105, 1)]);
    assert_eq!(b.0.best_price(BUY), Some(102));
    assert_eq!(b.0.best_price(SELL), Some(103));
    assert_eq!(b.0.len(), 8);
}

fn sides_do_not_see_each_other<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    b.bid(1, 100, 5).ask(2, 101, 7);
    assert_eq!(b.0.quantity_at(BUY, 101), 0);
    assert_eq!(b.0.quantity_at(SELL, 100), 0);
    assert_eq!(b.fill_front(BUY, 5).id, 1);
    assert_eq!(b.0.best_price(BUY), None);
    assert_eq!(b.0.best_price(SELL), Some(101));
}

fn removing_head_middle_or_tail_keeps_the_rest_in_order<B: OrderBook>() {
    for (gone, rest) in [
        (1, [2, 3, 4]),
        (2, [1, 3, 4]),
        (3, [1, 2, 4]),
        (4, [1, 2, 3]),
    ] {
        let mut b = Checked::<B>::new();
        b.bid(1, 200, 1)
            .bid(2, 200, 2)
            .bid(3, 200, 3)
            .bid(4, 200, 4);
        assert_eq!(b.remove(gone), Some(order(gone, BUY, 200, gone)));
        assert_eq!(queue(&b.0, BUY), rest);
        assert_eq!(b.0.quantity_at(BUY, 200), 10 - gone);
        // Filling drains exactly the remaining orders, oldest first.
        let drained: Vec<OrderId> = rest.iter().map(|&id| b.fill_front(BUY, id).id).collect();
        assert_eq!(drained, rest);
        assert!(b.0.is_empty());
    }
}

fn removing_the_last_order_of_a_level_removes_the_level<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    b.ask(1, 250, 5).ask(2, 251, 5).ask(3, 252, 5);
    b.remove(1);
    assert_eq!(b.0.best_price(SELL), Some(251));
    assert_eq!(depth(&b.0, SELL), [(251, 5), (252, 5)]);
    assert_eq!(b.0.quantity_at(SELL, 250), 0);
    b.remove(2);
    assert_eq!(depth(&b.0, SELL), [(252, 5)]);
    // A new order at an emptied price starts a fresh level behind nobody.
    b.ask(4, 250, 1);
    assert_eq!(queue(&b.0, SELL), [4, 3]);
    b.remove(3);
    b.remove(4);
    assert!(b.0.is_empty());
    assert_eq!(b.0.best_price(SELL), None);
}

fn freed_places_are_reused_without_disturbing_other_orders<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    b.bid(1, 100, 1).bid(2, 100, 2).ask(3, 110, 3);
    b.remove(2);
    b.fill_front(SELL, 3);
    // New orders may take the freed places; every handle still finds its own
    // order (checked after each step), and priority is by arrival.
    b.bid(4, 100, 4).ask(5, 110, 5).bid(6, 101, 6);
    assert_eq!(queue(&b.0, BUY), [6, 1, 4]);
    assert_eq!(b.get(5), Some(&order(5, SELL, 110, 5)));
}

fn reduce_keeps_the_place_in_the_queue<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    b.ask(1, 250, 10).ask(2, 250, 10);
    b.reduce(1, 6);
    assert_eq!(b.get(1).map(|o| o.quantity_lots), Some(4));
    assert_eq!(b.0.quantity_at(SELL, 250), 14);
    assert_eq!(queue(&b.0, SELL), [1, 2]);
    b.reduce(2, 9);
    assert_eq!(queue(&b.0, SELL), [1, 2]);
    assert_eq!(depth(&b.0, SELL), [(250, 5)]);
}

fn partial_fills_keep_the_front_until_it_is_used_up<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    b.bid(1, 100, 10).bid(2, 100, 10).bid(3, 99, 10);
    // The returned order is the front as it was before the fill.
    assert_eq!(b.fill_front(BUY, 3), order(1, BUY, 100, 10));
    assert_eq!(b.fill_front(BUY, 3), order(1, BUY, 100, 7));
    assert_eq!(b.0.front(BUY), Some(&order(1, BUY, 100, 4)));
    assert_eq!(b.0.quantity_at(BUY, 100), 14);
    assert_eq!(b.fill_front(BUY, 4).id, 1);
    assert_eq!(b.0.front(BUY).map(|o| o.id), Some(2));
}

fn an_exact_fill_at_a_level_boundary_moves_to_the_next_level<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    b.ask(1, 250, 3).ask(2, 251, 4).ask(3, 252, 5);
    assert_eq!(b.fill_front(SELL, 3).id, 1);
    assert_eq!(b.0.best_price(SELL), Some(251));
    assert_eq!(b.0.quantity_at(SELL, 250), 0);
    assert_eq!(b.fill_front(SELL, 4).id, 2);
    assert_eq!(depth(&b.0, SELL), [(252, 5)]);
}

fn ids_can_be_used_again_after_removal_or_fill<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    b.bid(1, 100, 5).bid(2, 100, 5);
    b.remove(1);
    // Same id, other side, other price: a new order in every respect.
    b.ask(1, 120, 3);
    assert_eq!(b.get(1), Some(&order(1, SELL, 120, 3)));
    assert_eq!(queue(&b.0, BUY), [2]);
    b.fill_front(BUY, 5);
    b.bid(2, 90, 1);
    assert_eq!(b.get(2), Some(&order(2, BUY, 90, 1)));
    // Re-inserting a removed id at its old price goes to the back of the level.
    b.bid(3, 90, 1);
    b.remove(2);
    b.bid(2, 90, 1);
    assert_eq!(queue(&b.0, BUY), [3, 2]);
}

fn remove_and_reinsert_loses_time_priority<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    b.ask(1, 250, 1).ask(2, 250, 1).ask(3, 250, 1);
    let first = b.remove(1).unwrap();
    b.insert(first);
    assert_eq!(queue(&b.0, SELL), [2, 3, 1]);
}

fn all_fields_survive_the_book<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    let o = RestingOrder {
        id: 42,
        account: 7,
        side: SELL,
        price_ticks: 333,
        quantity_lots: 9,
        good_till_ns: Some(1_000),
        post_only: true,
        stp: StpMode::CancelBoth,
        client_order_id: Some("c-42".parse().unwrap()),
    };
    b.insert(o);
    assert_eq!(b.get(42), Some(&o));
    assert_eq!(b.0.front(SELL), Some(&o));
    assert_eq!(visited(&b.0, SELL), [o]);
    assert_eq!(b.remove(42), Some(o));
}

fn extreme_prices_and_quantities<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    let big = u64::MAX / 4;
    b.bid(1, 1, big)
        .bid(2, i64::MAX, big)
        .ask(3, i64::MAX, big)
        .ask(4, 1, big);
    assert_eq!(depth(&b.0, BUY), [(i64::MAX, big), (1, big)]);
    assert_eq!(depth(&b.0, SELL), [(1, big), (i64::MAX, big)]);
    b.reduce(2, big - 1);
    assert_eq!(b.0.quantity_at(BUY, i64::MAX), 1);
    assert_eq!(b.fill_front(SELL, big).id, 4);
    assert_eq!(b.0.best_price(SELL), Some(i64::MAX));
}

fn many_levels_in_scrambled_order_come_out_sorted<B: OrderBook>() {
    let mut b = Checked::<B>::new();
    // A fixed permutation of 0..97 (97 is prime, 31 a generator step).
    let prices: Vec<i64> = (0..97).map(|i| 1_000 + (i * 31) % 97).collect();
    for (i, &p) in prices.iter().enumerate() {
        let id = i as OrderId + 1;
        b.bid(id, p, 1 + id % 4);
        b.ask(1_000 + id, p + 200, 1);
    }
    let bids: Vec<i64> = depth(&b.0, BUY).iter().map(|l| l.0).collect();
    assert_eq!(bids, (1_000..1_097).rev().collect::<Vec<i64>>());
    let asks: Vec<i64> = depth(&b.0, SELL).iter().map(|l| l.0).collect();
    assert_eq!(asks, (1_200..1_297).collect::<Vec<i64>>());
    // Take everything out again in another scrambled order.
    for i in 0..97u64 {
        let id = (i * 13) % 97 + 1;
        assert!(b.remove(id).is_some());
        assert!(b.remove(1_000 + id).is_some());
    }
    assert!(b.0.is_empty());
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod fast_book {
            $(#[test] fn $test() { super::$test::<super::Book>() })*
        }
        mod naive_book {
            $(#[test] fn $test() { super::$test::<super::NaiveBook>() })*
        }
    };
}

conformance!(
    empty_book_answers_nothing,
    orders_at_one_price_fill_first_in_first_out,
    better_price_comes_first_whatever_the_arrival,
    sides_do_not_see_each_other,
    removing_head_middle_or_tail_keeps_the_rest_in_order,
    removing_the_last_order_of_a_level_removes_the_level,
    freed_places_are_reused_without_disturbing_other_orders,
    reduce_keeps_the_place_in_the_queue,
    partial_fills_keep_the_front_until_it_is_used_up,
    an_exact_fill_at_a_level_boundary_moves_to_the_next_level,
    ids_can_be_used_again_after_removal_or_fill,
    remove_and_reinsert_loses_time_priority,
    all_fields_survive_the_book,
    extreme_prices_and_quantities,
    many_levels_in_scrambled_order_come_out_sorted,
);

/// One random book operation. Ids are drawn from a small range so that removes,
/// reduces and re-inserts often hit live orders.
#[derive(Debug, Clone)]
enum Op {
    Insert {
        id: OrderId,
        side: Side,
        price: i64,
        lots: u64,
    },
    Remove(OrderId),
    Reduce(OrderId, u64),
    FillFront(Side, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let side = prop_oneof![Just(BUY), Just(SELL)];
    prop_oneof![
        4 => (1..40u64, side.clone(), 95..106i64, 1..8u64)
            .prop_map(|(id, side, price, lots)| Op::Insert { id, side, price, lots }),
        2 => (1..40u64).prop_map(Op::Remove),
        1 => (1..40u64, 1..8u64).prop_map(|(id, lots)| Op::Reduce(id, lots)),
        2 => (side, 1..8u64).prop_map(|(side, lots)| Op::FillFront(side, lots)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random operations give the same answers from both books, each consistent
    /// with itself after every step. Operations the trait forbids (a duplicate
    /// insert, reducing by the whole quantity, filling more than the front has)
    /// are turned into allowed ones the same way for both books.
    #[test]
    fn fast_and_naive_books_agree(ops in prop::collection::vec(op(), 1..120)) {
        let mut fast = Checked::<Book>::new();
        let mut naive = Checked::<NaiveBook>::new();
        for op in ops {
            match op {
                Op::Insert { id, side, price, lots } => {
                    if naive.get(id).is_none() {
                        fast.insert(order(id, side, price, lots));
                        naive.insert(order(id, side, price, lots));
                    }
                }
                Op::Remove(id) => prop_assert_eq!(fast.remove(id), naive.remove(id)),
                Op::Reduce(id, lots) => {
                    if let Some(o) = naive.get(id).copied() {
                        let lots = lots.min(o.quantity_lots - 1);
                        if lots > 0 {
                            fast.reduce(id, lots);
                            naive.reduce(id, lots);
                        }
                    }
                }
                Op::FillFront(side, lots) => {
                    if let Some(front) = naive.0.front(side).copied() {
                        let lots = lots.min(front.quantity_lots);
                        prop_assert_eq!(fast.fill_front(side, lots), front);
                        prop_assert_eq!(naive.fill_front(side, lots), front);
                    }
                }
            }
            for side in [BUY, SELL] {
                prop_assert_eq!(visited(&fast.0, side), visited(&naive.0, side));
            }
        }
    }
}
