//! The reference book: every order in one `Vec` per side, in arrival order, and
//! every question answered by a linear scan. Slow on purpose, and obviously right:
//! the front of a side is the best-priced order with the earliest arrival.

use super::{Handle, OrderBook, RestingOrder};
use crate::types::Side;

/// A linear-scan book used as the reference model in tests.
#[derive(Debug, Clone, Default)]
pub struct NaiveBook {
    /// `(arrival number, order)`; an amend that loses priority is a new arrival,
    /// and an order's handle is its arrival number (never reused).
    orders: Vec<(u64, RestingOrder)>,
    arrivals: u64,
}

impl NaiveBook {
    fn better(side: Side, a: &(u64, RestingOrder), b: &(u64, RestingOrder)) -> bool {
        let (pa, pb) = (a.1.price_ticks, b.1.price_ticks);
        if pa != pb {
            return side.crosses(pa, pb) && pa != pb;
        }
        a.0 < b.0
    }

    fn sorted(&self, side: Side) -> Vec<(u64, RestingOrder)> {
        let mut v: Vec<_> = self
            .orders
            .iter()
            .filter(|o| o.1.side == side)
            .copied()
            .collect();
        v.sort_by(|a, b| {
            if Self::better(side, a, b) {
                std::cmp::Ordering::Less
            } else if Self::better(side, b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        v
    }

    fn front_index(&self, side: Side) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, o) in self.orders.iter().enumerate() {
            if o.1.side == side && best.is_none_or(|b| Self::better(side, o, &self.orders[b])) {
                best = Some(i);
            }
        }
        best
    }
}

impl OrderBook for NaiveBook {
    fn insert(&mut self, order: RestingOrder) -> Handle {
        assert!(order.quantity_lots > 0);
        assert!(self.orders.iter().all(|o| o.1.id != order.id));
        self.arrivals += 1;
        self.orders.push((self.arrivals, order));
        Handle::try_from(self.arrivals).expect("a test book sees fewer than 2^32 orders")
    }

    fn remove(&mut self, handle: Handle) -> RestingOrder {
        let i = self
            .orders
            .iter()
            .position(|o| o.0 == u64::from(handle))
            .expect("a handle of an order on the book");
        self.orders.remove(i).1
    }

    fn get(&self, handle: Handle) -> &RestingOrder {
        self.orders
            .iter()
            .find(|o| o.0 == u64::from(handle))
            .map(|o| &o.1)
            .expect("a handle of an order on the book")
    }

    fn reduce(&mut self, handle: Handle, lots: u64) {
        let o = self
            .orders
            .iter_mut()
            .find(|o| o.0 == u64::from(handle))
            .expect("a handle of an order on the book");
        assert!(lots < o.1.quantity_lots);
        o.1.quantity_lots -= lots;
    }

    fn front(&self, side: Side) -> Option<&RestingOrder> {
        self.front_index(side).map(|i| &self.orders[i].1)
    }

    fn fill_front(&mut self, side: Side, lots: u64) -> RestingOrder {
        let i = self.front_index(side).expect("a front order");
        let before = self.orders[i].1;
        assert!(lots > 0 && lots <= before.quantity_lots);
        if lots == before.quantity_lots {
            self.orders.remove(i);
        } else {
            self.orders[i].1.quantity_lots -= lots;
        }
        before
    }

    fn best_price(&self, side: Side) -> Option<i64> {
        self.front(side).map(|o| o.price_ticks)
    }

    fn quantity_at(&self, side: Side, price_ticks: i64) -> u64 {
        self.orders
            .iter()
            .filter(|o| o.1.side == side && o.1.price_ticks == price_ticks)
            .map(|o| o.1.quantity_lots)
            .sum()
    }

    fn depth(&self, side: Side, levels: usize, out: &mut Vec<(i64, u64)>) {
        let mut result: Vec<(i64, u64)> = Vec::new();
        for (_, o) in self.sorted(side) {
            match result.last_mut() {
                Some(last) if last.0 == o.price_ticks => last.1 += o.quantity_lots,
                _ => result.push((o.price_ticks, o.quantity_lots)),
            }
        }
        out.extend(result.into_iter().take(levels));
    }

    fn visit(&self, side: Side, visit: &mut dyn FnMut(&RestingOrder) -> bool) {
        for (_, o) in self.sorted(side) {
            if !visit(&o) {
                return;
            }
        }
    }

    fn len(&self) -> usize {
        self.orders.len()
    }
}
