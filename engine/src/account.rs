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
//! A slot's lots live in one `LotArena` next to its holdings, each holding
//! naming its list of lots there.

use crate::chunked::ChunkedVec;
use crate::limits::TRADES_PER_LOT_MAX;
use crate::types::{AccountId, ClientOrderId, OrderId, TradeId};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

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
    /// Bought GPUs not sold on, oldest purchase first (in the slot's
    /// [`LotArena`]). Bought GPUs that went through [`TRADES_PER_LOT_MAX`]
    /// trades are kept apart, in [`LotArena::kept`].
    pub bought: LotList,
}

/// Holdings per page of [`Holdings`]: small, so an account that holds alone
/// among its neighbours costs a page of 320 bytes, not much more than a hash
/// map's entry (and a larger page measured no faster).
const HOLDINGS_PER_PAGE: usize = 8;

/// A page of [`Holdings`]: those of [`HOLDINGS_PER_PAGE`] consecutive account
/// indexes.
type HoldingPage = [Holding; HOLDINGS_PER_PAGE];

/// Pages of [`Holdings`] kept in a vector indexed by page number: those of
/// the first `DENSE_PAGES × HOLDINGS_PER_PAGE` account indexes (8 KiB of
/// pointers per slot at most). A page beyond is in a hash map.
const DENSE_PAGES: usize = 1_024;

/// One slot's holdings, by account index (the engine numbers accounts densely
/// as they are created): pages of consecutive indexes, created when an account
/// in them first holds something. The holdings of active accounts sit densely
/// together (a map of holdings by account would spread them over its spare
/// buckets too). The pages of the first [`DENSE_PAGES`] are found by indexing,
/// without hashing; the (rare) others through a map. An account without a
/// holding reads as an empty one. Looked up; iterated only to be sorted or
/// checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Holdings {
    /// Pages `0..dense.len()`, `None` where no account of it holds anything
    /// (grown as needed, to [`DENSE_PAGES`] at most).
    dense: Vec<Option<Box<HoldingPage>>>,
    /// Pages from [`DENSE_PAGES`] on.
    sparse: FxHashMap<u32, Box<HoldingPage>>,
}

/// The page of account index `ix` and its place there.
#[inline]
fn page_of(ix: u32) -> (u32, usize) {
    (
        ix / HOLDINGS_PER_PAGE as u32,
        ix as usize % HOLDINGS_PER_PAGE,
    )
}

/// A page of empty holdings.
fn empty_page() -> Box<HoldingPage> {
    Box::new(std::array::from_fn(|_| Holding::default()))
}

impl Holdings {
    /// The holding of account index `ix`, if its page exists.
    #[inline]
    pub fn get(&self, ix: u32) -> Option<&Holding> {
        let (page, at) = page_of(ix);
        let page = match self.dense.get(page as usize) {
            Some(p) => p.as_ref()?,
            None => self.sparse.get(&page)?,
        };
        Some(&page[at])
    }

    /// The holding of account index `ix`, to change, if its page exists.
    #[inline]
    pub fn get_mut(&mut self, ix: u32) -> Option<&mut Holding> {
        let (page, at) = page_of(ix);
        let page = match self.dense.get_mut(page as usize) {
            Some(p) => p.as_mut()?,
            None => self.sparse.get_mut(&page)?,
        };
        Some(&mut page[at])
    }

    /// The holding of account index `ix`, to change (its page created when
    /// first needed).
    #[inline]
    pub fn entry(&mut self, ix: u32) -> &mut Holding {
        let (page, at) = page_of(ix);
        let p = page as usize;
        if p >= DENSE_PAGES {
            return &mut self.sparse.entry(page).or_insert_with(empty_page)[at];
        }
        if p >= self.dense.len() {
            self.dense.resize_with(p + 1, || None);
        }
        &mut self.dense[p].get_or_insert_with(empty_page)[at]
    }

    /// Every holding of an existing page, empty ones included, by account
    /// index, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Holding)> {
        let dense = self
            .dense
            .iter()
            .zip(0u32..)
            .filter_map(|(p, page)| Some((page, p.as_ref()?)));
        let sparse = self.sparse.iter().map(|(&page, p)| (page, p));
        dense.chain(sparse).flat_map(|(page, holdings)| {
            holdings
                .iter()
                .zip(page * HOLDINGS_PER_PAGE as u32..)
                .map(|(h, ix)| (ix, h))
        })
    }
}

/// Lot nodes per chunk of a [`LotArena`]: 48 KiB, within what the allocator
/// serves from its heap.
const LOT_CHUNK: usize = 1_024;

/// No node: the end of a [`LotList`].
const NIL: u32 = u32::MAX;

/// A first-in first-out list of [`Lot`]s in a [`LotArena`]: its first and last
/// node ([`NIL`] when empty). Copy, so a holding names its lots without owning
/// memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LotList {
    head: u32,
    tail: u32,
}

impl Default for LotList {
    fn default() -> Self {
        LotList {
            head: NIL,
            tail: NIL,
        }
    }
}

impl LotList {
    /// Whether it has no lots.
    pub fn is_empty(&self) -> bool {
        self.head == NIL
    }
}

/// A lot in a [`LotArena`]. `prev` (the older neighbour) is set when the lot
/// is appended; `next` (the newer one) only once a walk from the front needs
/// it ([`LotArena::link`]), so appending never touches an older node.
#[derive(Debug, Clone)]
struct LotNode {
    lot: Lot,
    prev: u32,
    next: u32,
}

/// The bought lots of one slot's holdings: one vector of nodes, linked into a
/// [`LotList`] per holding (a freed node is reused by the next lot), and the
/// lists of lots kept to the gate, by account.
///
/// A fill appends one node at the end of the vector, whose cache lines are
/// warm, and reads and writes only the buyer's holding: no allocation or
/// buffer per holding, and no older node touched. The forward links a walk
/// from the oldest lot needs are filled in when first needed, each once.
#[derive(Debug, Clone)]
pub(crate) struct LotArena {
    nodes: ChunkedVec<LotNode, LOT_CHUNK>,
    /// Freed nodes, linked through `next` ([`NIL`] if none).
    free: u32,
    /// Nodes in use.
    used: usize,
    /// Lots kept to the gate (at [`TRADES_PER_LOT_MAX`] trades), by account:
    /// rare, so kept apart from the holdings.
    pub kept: FxHashMap<AccountId, LotList>,
}

impl Default for LotArena {
    fn default() -> Self {
        LotArena {
            nodes: ChunkedVec::default(),
            free: NIL,
            used: 0,
            kept: FxHashMap::default(),
        }
    }
}

impl LotArena {
    /// Appends `lot` to `list`.
    pub fn push_back(&mut self, list: &mut LotList, lot: Lot) {
        let node = LotNode {
            lot,
            prev: list.tail,
            next: NIL,
        };
        let at = if self.free == NIL {
            self.nodes.push(node);
            u32::try_from(self.nodes.len() - 1).expect("lot nodes fit in 32 bits")
        } else {
            let at = self.free;
            self.free = self.nodes[at as usize].next;
            self.nodes[at as usize] = node;
            at
        };
        assert_ne!(at, NIL, "lot nodes stay below the end marker");
        if list.head == NIL {
            list.head = at;
        }
        list.tail = at;
        self.used += 1;
    }

    /// Fills in the forward links of `list` that are not yet: from its last
    /// node back to the first one already linked (each node is linked once).
    fn link(&mut self, list: &LotList) {
        let mut at = list.tail;
        while at != list.head {
            let prev = self.nodes[at as usize].prev;
            if self.nodes[prev as usize].next == at {
                break;
            }
            self.nodes[prev as usize].next = at;
            at = prev;
        }
    }

    /// The first lot of `list`, to change.
    pub fn front_mut(&mut self, list: &LotList) -> Option<&mut Lot> {
        (list.head != NIL).then(|| &mut self.nodes[list.head as usize].lot)
    }

    /// Takes the first lot out of `list`.
    pub fn pop_front(&mut self, list: &mut LotList) -> Option<Lot> {
        if list.head == NIL {
            return None;
        }
        let at = list.head;
        if at == list.tail {
            *list = LotList::default();
        } else {
            if self.nodes[at as usize].next == NIL {
                self.link(list);
            }
            list.head = self.nodes[at as usize].next;
        }
        let node = &mut self.nodes[at as usize];
        let lot = std::mem::replace(
            &mut node.lot,
            Lot {
                provider: 0,
                lots: 0,
                trades: SmallVec::new(),
            },
        );
        node.next = self.free;
        self.free = at;
        self.used -= 1;
        if self.used == 0 {
            // Nothing left: start over (keeping the memory).
            self.nodes.clear();
            self.free = NIL;
        }
        Some(lot)
    }

    /// The lots of `list`, first to last (collected from the last one back:
    /// for snapshots, queries and checks, not for matching).
    pub fn lots(&self, list: LotList) -> Vec<&Lot> {
        let mut lots = Vec::new();
        let mut at = list.tail;
        while at != NIL {
            let node = &self.nodes[at as usize];
            lots.push(&node.lot);
            if at == list.head {
                break;
            }
            at = node.prev;
        }
        lots.reverse();
        lots
    }

    /// Total lots of `list`.
    pub fn total(&self, list: LotList) -> u64 {
        self.lots(list).iter().map(|l| l.lots).sum()
    }

    /// Takes the first of the lots `account` keeps to the gate out.
    pub fn pop_kept(&mut self, account: AccountId) -> Option<Lot> {
        let mut kept = self.kept(account);
        let lot = self.pop_front(&mut kept);
        if kept.is_empty() {
            self.kept.remove(&account);
        } else {
            self.kept.insert(account, kept);
        }
        lot
    }

    /// The lots `account` keeps to the gate.
    pub fn kept(&self, account: AccountId) -> LotList {
        self.kept.get(&account).copied().unwrap_or_default()
    }
}

impl Holding {
    /// Takes `lots` sold by `seller` in trade `trade` out of this holding's sources,
    /// inventory first, then the oldest purchases (in `arena`), and appends them
    /// to `into` as the buyer's lots (each chain extended by `trade`). The caller
    /// moves the balance itself; the sources cover it because `gpus.total()`
    /// equals them.
    pub fn take(
        &mut self,
        arena: &mut LotArena,
        seller: AccountId,
        lots: u64,
        trade: TradeId,
        into: &mut Vec<Lot>,
    ) {
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
        while rest > 0 {
            let front = arena
                .front_mut(&self.bought)
                .expect("sources cover the GPUs sold");
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
                arena.pop_front(&mut self.bought);
            }
            rest -= n;
        }
    }

    /// Receives bought lots of `account` (into `arena`): resellable ones become
    /// available GPUs; those at [`TRADES_PER_LOT_MAX`] trades are kept to the
    /// gate.
    pub fn receive(
        &mut self,
        arena: &mut LotArena,
        account: AccountId,
        lots: impl Iterator<Item = Lot>,
    ) {
        for lot in lots {
            if lot.trades.len() >= TRADES_PER_LOT_MAX {
                let mut kept = arena.kept(account);
                arena.push_back(&mut kept, lot);
                arena.kept.insert(account, kept);
            } else {
                self.gpus.available += lot.lots;
                arena.push_back(&mut self.bought, lot);
            }
        }
    }

    /// Whether the holding is empty (nothing to keep), given whether its
    /// account keeps lots in the slot.
    pub fn is_empty(&self, keeps: bool) -> bool {
        self.gpus.total() == 0
            && self.inventory == 0
            && self.sold == 0
            && self.bought.is_empty()
            && !keeps
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

/// Every account, stored densely by account index (the engine numbers accounts
/// as they are created, from 0 for the fee account), with the one map from id
/// to index. A command finds its account's index once and reaches its balances
/// and its holdings in every slot by it, without hashing again.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounts {
    /// The index of every account id (looked up, never iterated).
    ix: FxHashMap<AccountId, u32>,
    /// The id of every index.
    ids: Vec<AccountId>,
    /// The account of every index.
    data: Vec<Account>,
}

impl Accounts {
    /// The index of account `id`, if it exists.
    #[inline]
    pub fn ix(&self, id: &AccountId) -> Option<u32> {
        self.ix.get(id).copied()
    }

    /// Account `id`, if it exists.
    #[inline]
    pub fn get(&self, id: &AccountId) -> Option<&Account> {
        Some(&self.data[self.ix(id)? as usize])
    }

    /// Account `id` to change, if it exists.
    #[inline]
    pub fn get_mut(&mut self, id: &AccountId) -> Option<&mut Account> {
        let ix = self.ix(id)?;
        Some(&mut self.data[ix as usize])
    }

    /// The account of index `ix` (an index given by [`ix`](Self::ix)).
    #[inline]
    pub fn at(&self, ix: u32) -> &Account {
        &self.data[ix as usize]
    }

    /// The account of index `ix`, to change.
    #[inline]
    pub fn at_mut(&mut self, ix: u32) -> &mut Account {
        &mut self.data[ix as usize]
    }

    /// The id of index `ix`, if an account has it.
    #[inline]
    pub fn id_at(&self, ix: u32) -> Option<AccountId> {
        self.ids.get(ix as usize).copied()
    }

    /// Whether account `id` exists.
    #[inline]
    pub fn contains_key(&self, id: &AccountId) -> bool {
        self.ix.contains_key(id)
    }

    /// The number of accounts.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Adds account `id` (which must be new) under the next index, and returns
    /// that index.
    pub fn insert(&mut self, id: AccountId, account: Account) -> u32 {
        let ix = u32::try_from(self.data.len()).expect("account indexes fit in 32 bits");
        assert!(self.ix.insert(id, ix).is_none(), "a new account");
        self.ids.push(id);
        self.data.push(account);
        ix
    }

    /// Removes every account.
    pub fn clear(&mut self) {
        self.ix.clear();
        self.ids.clear();
        self.data.clear();
    }

    /// Every account with its id, by index.
    pub fn iter(&self) -> impl Iterator<Item = (&AccountId, &Account)> {
        self.ids.iter().zip(&self.data)
    }

    /// Every account, by index.
    pub fn values(&self) -> impl Iterator<Item = &Account> {
        self.data.iter()
    }

    /// Every account id, by index.
    pub fn keys(&self) -> impl Iterator<Item = &AccountId> {
        self.ids.iter()
    }
}

impl std::ops::Index<&AccountId> for Accounts {
    type Output = Account;

    fn index(&self, id: &AccountId) -> &Account {
        self.get(id).expect("an existing account")
    }
}

impl<'a> IntoIterator for &'a Accounts {
    type Item = (&'a AccountId, &'a Account);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, AccountId>, std::slice::Iter<'a, Account>>;

    fn into_iter(self) -> Self::IntoIter {
        self.ids.iter().zip(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::OpenOrders;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Appending to and taking from several lists of one arena in any
        /// interleaving, each list answers as a queue does (and so do the
        /// lists the snapshot reads back to front).
        #[test]
        fn lot_lists_behave_as_queues(
            ops in prop::collection::vec((0..3usize, 0..4u8), 1..400),
        ) {
            use super::{Lot, LotArena, LotList};
            use std::collections::VecDeque;
            let mut arena = LotArena::default();
            let mut lists = [LotList::default(); 3];
            let mut model: [VecDeque<u64>; 3] = Default::default();
            for (n, (i, op)) in ops.into_iter().enumerate() {
                let lot = |lots| Lot { provider: 1, lots, trades: smallvec::smallvec![lots] };
                match op {
                    0 | 1 => {
                        arena.push_back(&mut lists[i], lot(n as u64 + 1));
                        model[i].push_back(n as u64 + 1);
                    }
                    2 => {
                        let got = arena.pop_front(&mut lists[i]).map(|l| l.lots);
                        prop_assert_eq!(got, model[i].pop_front());
                    }
                    _ => {
                        if let Some(front) = arena.front_mut(&lists[i]) {
                            front.lots += 1_000;
                            *model[i].front_mut().unwrap() += 1_000;
                        }
                    }
                }
                for (list, want) in lists.iter().zip(&model) {
                    let got: Vec<u64> = arena.lots(*list).iter().map(|l| l.lots).collect();
                    prop_assert_eq!(&got, &want.iter().copied().collect::<Vec<_>>());
                    prop_assert_eq!(list.is_empty(), want.is_empty());
                }
            }
        }

        /// Holdings looked up, changed and created for indexes in the dense
        /// pages and beyond them answer as a map from index to holding does.
        #[test]
        fn holdings_behave_as_a_map(
            ops in prop::collection::vec((any::<bool>(), 0..3u8, 0..40u32, 1..1_000u64), 1..300),
        ) {
            use super::{Holding, Holdings, DENSE_PAGES, HOLDINGS_PER_PAGE};
            use std::collections::BTreeMap;
            let far = (DENSE_PAGES * HOLDINGS_PER_PAGE) as u32 - 20;
            let (mut holdings, mut model) = (Holdings::default(), BTreeMap::new());
            for (high, op, i, v) in ops {
                let ix = if high { far + i * 3 } else { i };
                match op {
                    0 => {
                        holdings.entry(ix).inventory += v;
                        model.entry(ix).or_insert_with(Holding::default).inventory += v;
                    }
                    1 => {
                        if let Some(h) = holdings.get_mut(ix) {
                            h.sold += v;
                        }
                        // A page exists once any index of it was used.
                        let page = ix / HOLDINGS_PER_PAGE as u32;
                        let exists = model.keys().any(|k| k / HOLDINGS_PER_PAGE as u32 == page);
                        if exists {
                            model.entry(ix).or_insert_with(Holding::default).sold += v;
                        }
                    }
                    _ => {
                        let got = holdings.get(ix).filter(|h| **h != Holding::default());
                        let want = model.get(&ix).filter(|h| **h != Holding::default());
                        prop_assert_eq!(got, want);
                    }
                }
                let mut all: Vec<(u32, Holding)> = holdings
                    .iter()
                    .filter(|(_, h)| **h != Holding::default())
                    .map(|(ix, h)| (ix, h.clone()))
                    .collect();
                all.sort_by_key(|&(ix, _)| ix);
                let want: Vec<(u32, Holding)> = model
                    .iter()
                    .filter(|(_, h)| **h != Holding::default())
                    .map(|(&ix, h)| (ix, h.clone()))
                    .collect();
                prop_assert_eq!(all, want);
            }
        }

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
