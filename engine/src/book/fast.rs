//! The fast book: price levels in a sorted `Vec` per side with the best price at the
//! end (so the touch is pushed and popped in O(1)), and orders in a slab linked
//! into a FIFO per level. An order's slot in the slab is its [`Handle`]; a freed
//! slot is reused by the next insert. The FIFO links are kept apart from the
//! orders, in a dense vector of their own: taking an order out of the middle of
//! its queue rewrites its neighbours' links without touching their orders.

use super::{Handle, OrderBook, RestingOrder};
use crate::types::Side;

const NIL: u32 = u32::MAX;

/// An order's neighbours in its level's FIFO ([`NIL`] at either end).
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

#[derive(Debug, Clone, Copy)]
struct Level {
    price_ticks: i64,
    total_lots: u64,
    head: u32,
    tail: u32,
    count: u32,
}

/// The production order book. See the module docs for its layout.
#[derive(Debug, Clone, Default)]
pub struct Book {
    /// `levels[0]` bids ascending by price, `levels[1]` asks descending by price:
    /// either way the best level is last.
    levels: [Vec<Level>; 2],
    /// Orders by slot (a free slot keeps its last order until reused).
    orders: Vec<RestingOrder>,
    /// The FIFO links of each slot's order, by slot.
    links: Vec<Link>,
    free: Vec<u32>,
    /// Orders on the book.
    len: usize,
}

#[inline]
fn side_ix(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// Sort key that is ascending along each side's vector.
#[inline]
fn key(side: Side, price_ticks: i64) -> i64 {
    match side {
        Side::Buy => price_ticks,
        Side::Sell => -price_ticks,
    }
}

impl Book {
    /// Where the level of `price_ticks` is on `side` (`Ok`), or where it would
    /// go (`Err`).
    ///
    /// Levels are whole ticks apart, so a price `d` ticks behind the best one
    /// has at most `d - 1` levels between them: it sits within the last
    /// `d + 1` of the vector, and exactly `d` from the end when every tick
    /// between has a level (a deep book, or the touch itself). That place is
    /// tried first, then only that tail is searched.
    #[inline]
    fn find_level(&self, side: Side, price_ticks: i64) -> Result<usize, usize> {
        let levels = &self.levels[side_ix(side)];
        let k = key(side, price_ticks);
        let n = levels.len();
        let Some(best) = levels.last() else {
            return Err(0);
        };
        // How far behind the best price, in ticks (negative: better than it).
        let behind = key(side, best.price_ticks).saturating_sub(k);
        if behind < 0 {
            return Err(n);
        }
        let from = usize::try_from(behind)
            .ok()
            .and_then(|d| (n - 1).checked_sub(d))
            .unwrap_or(0);
        if levels[from].price_ticks == price_ticks {
            return Ok(from);
        }
        levels[from..]
            .binary_search_by_key(&k, |l| key(side, l.price_ticks))
            .map(|i| from + i)
            .map_err(|i| from + i)
    }

    fn alloc(&mut self, order: RestingOrder, link: Link) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.orders[slot as usize] = order;
                self.links[slot as usize] = link;
                slot
            }
            None => {
                self.orders.push(order);
                self.links.push(link);
                (self.orders.len() - 1) as u32
            }
        }
    }

    /// Unlinks `slot` from level `li` of `side`, dropping the level when empty.
    fn unlink(&mut self, side: Side, li: usize, slot: u32) {
        let Link { prev, next } = self.links[slot as usize];
        let lots = self.orders[slot as usize].quantity_lots;
        if prev != NIL {
            self.links[prev as usize].next = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        let levels = &mut self.levels[side_ix(side)];
        let level = &mut levels[li];
        if level.head == slot {
            level.head = next;
        }
        if level.tail == slot {
            level.tail = prev;
        }
        level.total_lots -= lots;
        level.count -= 1;
        if level.count == 0 {
            debug_assert_eq!(level.total_lots, 0);
            levels.remove(li);
        }
        self.free.push(slot);
        self.len -= 1;
    }
}

impl OrderBook for Book {
    fn insert(&mut self, order: RestingOrder) -> Handle {
        assert!(order.quantity_lots > 0, "resting orders have quantity");
        let side = order.side;
        let li = match self.find_level(side, order.price_ticks) {
            Ok(li) => li,
            Err(at) => {
                let level = Level {
                    price_ticks: order.price_ticks,
                    total_lots: 0,
                    head: NIL,
                    tail: NIL,
                    count: 0,
                };
                self.levels[side_ix(side)].insert(at, level);
                at
            }
        };
        let tail = self.levels[side_ix(side)][li].tail;
        let slot = self.alloc(
            order,
            Link {
                prev: tail,
                next: NIL,
            },
        );
        if tail != NIL {
            self.links[tail as usize].next = slot;
        }
        let level = &mut self.levels[side_ix(side)][li];
        if level.head == NIL {
            level.head = slot;
        }
        level.tail = slot;
        level.total_lots += order.quantity_lots;
        level.count += 1;
        self.len += 1;
        slot
    }

    fn remove(&mut self, handle: Handle) -> RestingOrder {
        let order = self.orders[handle as usize];
        let li = self
            .find_level(order.side, order.price_ticks)
            .expect("a resting order's level exists");
        self.unlink(order.side, li, handle);
        order
    }

    #[inline]
    fn get(&self, handle: Handle) -> &RestingOrder {
        &self.orders[handle as usize]
    }

    fn reduce(&mut self, handle: Handle, lots: u64) {
        let order = &mut self.orders[handle as usize];
        assert!(lots < order.quantity_lots, "reduce leaves quantity");
        order.quantity_lots -= lots;
        let (side, price) = (order.side, order.price_ticks);
        let li = self.find_level(side, price).expect("level exists");
        self.levels[side_ix(side)][li].total_lots -= lots;
    }

    #[inline]
    fn front(&self, side: Side) -> Option<&RestingOrder> {
        let level = self.levels[side_ix(side)].last()?;
        Some(&self.orders[level.head as usize])
    }

    #[inline]
    fn fill_front(&mut self, side: Side, lots: u64) -> RestingOrder {
        let li = self.levels[side_ix(side)].len() - 1;
        let slot = self.levels[side_ix(side)][li].head;
        let order = &mut self.orders[slot as usize];
        let before = *order;
        assert!(
            lots > 0 && lots <= before.quantity_lots,
            "fill within the order"
        );
        if lots == before.quantity_lots {
            self.unlink(side, li, slot);
        } else {
            order.quantity_lots -= lots;
            self.levels[side_ix(side)][li].total_lots -= lots;
        }
        before
    }

    #[inline]
    fn best_price(&self, side: Side) -> Option<i64> {
        self.levels[side_ix(side)].last().map(|l| l.price_ticks)
    }

    fn quantity_at(&self, side: Side, price_ticks: i64) -> u64 {
        match self.find_level(side, price_ticks) {
            Ok(li) => self.levels[side_ix(side)][li].total_lots,
            Err(_) => 0,
        }
    }

    fn depth(&self, side: Side, levels: usize, out: &mut Vec<(i64, u64)>) {
        out.extend(
            self.levels[side_ix(side)]
                .iter()
                .rev()
                .take(levels)
                .map(|l| (l.price_ticks, l.total_lots)),
        );
    }

    fn visit(&self, side: Side, visit: &mut dyn FnMut(&RestingOrder) -> bool) {
        for level in self.levels[side_ix(side)].iter().rev() {
            let mut slot = level.head;
            while slot != NIL {
                if !visit(&self.orders[slot as usize]) {
                    return;
                }
                slot = self.links[slot as usize].next;
            }
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }
}
