//! Accounts and their balances: USD, and GPUs per (market, delivery slot), each
//! split into available and held. Holds are taken when an order is accepted and
//! released as it fills or is cancelled; the engine keeps `held` equal to what the
//! account's open orders still need.
//!
//! GPUs in a slot come from two sources, tracked apart because the delivery
//! schedule must name, for every GPU, the provider whose machine delivers it:
//! the account's own **inventory** (capacity it added and has not sold), and its
//! **position**: GPUs it bought, kept as [`Lot`]s in purchase order, each naming
//! its provider and the chain of trades it came through. A sale takes from
//! inventory first, then from the oldest purchase (see [`Holding::take`]).

use crate::limits::TRADES_PER_LOT_MAX;
use crate::types::{AccountId, ClientOrderId, OrderId, TradeId};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::VecDeque;

/// One asset's balance in integer units (micro-USD or lots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Free to spend, sell or withdraw.
    pub available: u64,
    /// Reserved for open orders.
    pub held: u64,
}

impl Balance {
    /// `available + held`.
    pub fn total(&self) -> u64 {
        self.available + self.held
    }

    /// Moves `amount` from available to held; the caller checked it is available.
    #[inline]
    pub(crate) fn hold(&mut self, amount: u64) {
        assert!(self.available >= amount, "hold within available");
        self.available -= amount;
        self.held += amount;
    }

    /// Moves `amount` from held back to available.
    #[inline]
    pub(crate) fn release(&mut self, amount: u64) {
        assert!(self.held >= amount, "release within held");
        self.held -= amount;
        self.available += amount;
    }

    /// Takes `amount` out of held (it leaves the account).
    #[inline]
    pub(crate) fn spend_held(&mut self, amount: u64) {
        assert!(self.held >= amount, "spend within held");
        self.held -= amount;
    }
}

/// Bought GPUs of one slot that came from one provider through one chain of trades.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// The provider whose inventory they were.
    pub provider: AccountId,
    /// GPUs, in lots.
    pub lots: u64,
    /// The trades they came through, oldest first (the last one bought them).
    /// Inline for chains of up to two trades (a provider's sale and one resale),
    /// so a fill allocates nothing.
    pub trades: SmallVec<[TradeId; 2]>,
}

/// An account's GPUs in one slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Holding {
    /// All its GPUs: `inventory + Σ bought.lots`, split into available and held.
    pub gpus: Balance,
    /// Own inventory not sold (nor removed), in lots.
    pub inventory: u64,
    /// Own inventory sold so far, in lots (the provider's record of what it has
    /// to deliver in the slot).
    pub sold: u64,
    /// Bought GPUs, once the account bought any (boxed: most holdings of a
    /// provider never have lots, and a small holding keeps the slot's map dense).
    pub lots: Option<Box<Lots>>,
}

/// The bought GPUs of one holding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lots {
    /// Bought GPUs not sold on, oldest purchase first.
    pub bought: VecDeque<Lot>,
    /// Bought GPUs that went through [`TRADES_PER_LOT_MAX`] trades: delivered to
    /// this holder, never offered again. Not in `gpus` (no order can hold them).
    pub kept: VecDeque<Lot>,
}

/// No lots.
static NO_LOTS: Lots = Lots {
    bought: VecDeque::new(),
    kept: VecDeque::new(),
};

impl Holding {
    /// Takes `lots` sold by `seller` in trade `trade` out of this holding's sources,
    /// inventory first, then the oldest purchases, and appends them to `into` as
    /// the buyer's lots (each chain extended by `trade`). The caller moves the
    /// balance itself; the sources cover it because `gpus.total()` equals them.
    pub fn take(&mut self, seller: AccountId, lots: u64, trade: TradeId, into: &mut Vec<Lot>) {
        let own = lots.min(self.inventory);
        self.inventory -= own;
        self.sold += own;
        if own > 0 {
            into.push(Lot {
                provider: seller,
                lots: own,
                trades: smallvec::smallvec![trade],
            });
        }
        let mut rest = lots - own;
        if rest == 0 {
            return;
        }
        let bought = &mut self
            .lots
            .as_mut()
            .expect("sources cover the GPUs sold")
            .bought;
        while rest > 0 {
            let front = bought.front_mut().expect("sources cover the GPUs sold");
            let n = rest.min(front.lots);
            let mut trades = front.trades.clone();
            trades.push(trade);
            into.push(Lot {
                provider: front.provider,
                lots: n,
                trades,
            });
            front.lots -= n;
            if front.lots == 0 {
                bought.pop_front();
            }
            rest -= n;
        }
    }

    /// Receives bought lots: resellable ones become available GPUs; those at
    /// [`TRADES_PER_LOT_MAX`] trades are kept to the gate.
    pub fn receive(&mut self, lots: impl Iterator<Item = Lot>) {
        let mine = self.lots.get_or_insert_with(Box::default);
        for lot in lots {
            if lot.trades.len() >= TRADES_PER_LOT_MAX {
                mine.kept.push_back(lot);
            } else {
                self.gpus.available += lot.lots;
                mine.bought.push_back(lot);
            }
        }
    }

    /// The holding's lots (none when it never bought).
    pub fn lots(&self) -> &Lots {
        self.lots.as_deref().unwrap_or(&NO_LOTS)
    }

    /// GPUs kept to the gate, in lots.
    pub fn kept_lots(&self) -> u64 {
        self.lots().kept.iter().map(|l| l.lots).sum()
    }

    /// Whether the holding is empty (nothing to keep).
    pub fn is_empty(&self) -> bool {
        let lots = self.lots();
        self.gpus.total() == 0
            && self.inventory == 0
            && self.sold == 0
            && lots.bought.is_empty()
            && lots.kept.is_empty()
    }
}

/// The bit of [`OpenOrders::ids`] that marks a closed order (order ids stay
/// below it: the engine numbers orders from 1, one per order placed).
const CLOSED: OrderId = 1 << 63;

/// An account's open orders, in id order: a sorted `Vec` of ids, where an order
/// that closes is marked in place and the marks are swept out once they are as
/// many as the open orders. Opening and closing an order touch one contiguous
/// vector, allocate nothing in the steady state, and need no other index.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpenOrders {
    /// Ids ascending (compared without the [`CLOSED`] bit); closed ones carry it.
    ids: Vec<OrderId>,
    /// How many of `ids` are open.
    open: usize,
}

impl OpenOrders {
    /// The number of open orders.
    pub fn len(&self) -> usize {
        self.open
    }

    /// Adds an order that now rests. Orders rest in id order, so this appends
    /// (a snapshot restore may add them in another order, and inserts).
    pub fn insert(&mut self, id: OrderId) {
        assert!(id < CLOSED, "order ids stay below 2^63");
        match self.ids.last() {
            Some(&last) if last & !CLOSED >= id => {
                let at = self.ids.partition_point(|&x| x & !CLOSED < id);
                self.ids.insert(at, id);
            }
            _ => self.ids.push(id),
        }
        self.open += 1;
    }

    /// Marks an open order closed; sweeps the marks out when they are as many
    /// as the open orders (and more than a few).
    pub fn remove(&mut self, id: OrderId) {
        let i = self
            .ids
            .binary_search_by_key(&id, |&x| x & !CLOSED)
            .expect("an open order of the account");
        debug_assert_eq!(self.ids[i] & CLOSED, 0, "closed twice");
        self.ids[i] |= CLOSED;
        self.open -= 1;
        if self.ids.len() > 2 * self.open + 16 {
            self.ids.retain(|&x| x & CLOSED == 0);
        }
    }

    /// Whether `id` is one of them.
    pub fn contains(&self, id: OrderId) -> bool {
        self.ids
            .binary_search_by_key(&id, |&x| x & !CLOSED)
            .is_ok_and(|i| self.ids[i] & CLOSED == 0)
    }

    /// Their ids, ascending.
    pub fn iter(&self) -> impl Iterator<Item = OrderId> + '_ {
        self.ids.iter().copied().filter(|&x| x & CLOSED == 0)
    }
}

/// An account's state inside the engine. Its GPUs live with each slot's book
/// ([`SlotBook::holdings`](crate::state::SlotBook)), where matching finds them
/// next to the orders and a closing slot finds all of them at once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Account {
    pub cash: Balance,
    /// USD it paid for GPUs not yet delivered (trade notionals and its fees),
    /// micro-USD: part of its money, in the exchange's hands until settlement.
    pub escrow: u64,
    /// USD it is owed for GPUs it sold, once they are delivered (notionals less
    /// its fees), micro-USD: not yet its money.
    pub pending: u64,
    /// Open (resting) orders, in id order.
    pub open_orders: OpenOrders,
    /// Client order ids of open orders.
    pub client_ids: FxHashMap<ClientOrderId, OrderId>,
}

#[cfg(test)]
mod tests {
    use super::OpenOrders;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Opening orders in id order (or any order, as a restore may) and
        /// closing any of them, `OpenOrders` answers as a sorted set does.
        #[test]
        fn open_orders_behave_as_a_sorted_set(
            ops in prop::collection::vec((any::<bool>(), 0..64usize), 1..400),
            restore in prop::collection::vec(1..1_000u64, 0..40),
        ) {
            let (mut open, mut model) = (OpenOrders::default(), BTreeSet::new());
            for id in restore {
                if model.insert(id) {
                    open.insert(id);
                }
            }
            let mut next = 1_000;
            for (add, pick) in ops {
                if add || model.is_empty() {
                    next += 1;
                    open.insert(next);
                    model.insert(next);
                } else {
                    let id = *model.iter().nth(pick % model.len()).unwrap();
                    model.remove(&id);
                    open.remove(id);
                    prop_assert!(!open.contains(id));
                }
                prop_assert_eq!(open.len(), model.len());
                prop_assert_eq!(open.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
                prop_assert!(open.ids.len() <= 2 * open.len() + 16);
            }
        }
    }
}
