//! The engine's state and the lookups every command shares.
//!
//! [`Engine`] owns the listed markets, the books of their open delivery slots (one
//! per (market, slot), each with its GPU total), the accounts, the indexes of open
//! orders (their book and handle there, their GTD expiry), the slots' gate
//! closures, the id counters, engine time, the window of idempotent request ids
//! and the accounts' API keys. Only `apply` changes it. This module holds the
//! struct, its constructor and the small accessors and index updates that several
//! commands need, so that every command resolves a market, an account or an order
//! reference, and records or forgets an open order, the same way.

use crate::account::{Account, Accounts, Balance, Holding, Holdings, Lot, LotArena};
use crate::book::{Book, Handle, OrderBook, RestingOrder};
use crate::command::{KeyDigest, KeyScope};
use crate::delivery::{Entry, Escrows, ProviderRecord};
use crate::market::MarketSpec;
use crate::reject::RejectReason;
use crate::requests::RequestWindow;
use crate::types::{AccountId, ClientOrderId, MarketId, OrderId, Side, TradeId, FEE_ACCOUNT};

/// A book index no book has: an account's GPUs in it are zero. What the checks of
/// an order for a slot no command has used yet look at.
pub(crate) const NO_BOOK: usize = usize::MAX;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

/// Where an open order rests: its book's index and its handle there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OrderLoc {
    /// The book's index (see [`Engine::books`]).
    pub book: u32,
    /// The order's handle in that book.
    pub handle: Handle,
}

impl OrderLoc {
    /// The book's index.
    #[inline]
    pub fn bi(self) -> usize {
        self.book as usize
    }
}

/// An open order a command names, found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenOrder {
    /// Its account's index.
    pub ix: u32,
    /// Its book's index.
    pub bi: usize,
    /// Its handle in that book.
    pub handle: Handle,
    /// The order as it rests.
    pub order: RestingOrder,
}

/// One listed market inside the engine.
#[derive(Debug, Clone)]
pub(crate) struct MarketState {
    pub spec: MarketSpec,
    /// Its open delivery slots (unix seconds of the hour's start) and their book
    /// index, in slot order.
    pub slots: BTreeMap<u64, usize>,
    /// The same, to look up (every order looks its slot up; iterated never).
    pub slot_books: FxHashMap<u64, usize>,
}

/// One delivery slot of one market: its book and its GPU total. Created when a
/// command first needs it (capacity or an order), dropped when its gate closes.
#[derive(Debug, Clone)]
pub(crate) struct SlotBook<B> {
    /// The market's index.
    pub market: usize,
    /// Unix seconds of the slot's start.
    pub slot: u64,
    /// The market's spec (a copy, so matching reads it next to the book).
    pub spec: MarketSpec,
    pub book: B,
    /// Sum of all accounts' GPUs in this slot (inventory and positions), in lots.
    pub lots_total: u64,
    /// Each account's GPUs in this slot, by account index (looked up; iterated
    /// only sorted).
    pub holdings: Holdings,
    /// The bought lots of those holdings (their provenance).
    pub lots: LotArena,
    /// Once its gate passed: GPUs scheduled for delivery so far (their holdings
    /// are gone from `holdings` and `lots_total`).
    pub scheduled: u64,
    /// Once its gate passed: unsold inventory expired so far.
    pub expired: u64,
}

/// The matching engine. `B` is the order book; [`Book`] by default, and
/// [`NaiveBook`](crate::NaiveBook) for the reference model in tests.
#[derive(Debug, Clone)]
pub struct Engine<B: OrderBook = Book> {
    pub(crate) markets: Vec<MarketState>,
    pub(crate) market_index: FxHashMap<MarketId, usize>,
    /// The books of open slots, by book index; a closed slot's index is free for
    /// reuse (its entry is `None`).
    pub(crate) books: Vec<Option<SlotBook<B>>>,
    /// Book indexes not in use, lowest reused first.
    pub(crate) free_books: BTreeSet<usize>,
    /// Open slots by gate-closure time: `(closes_at_ns, market index, slot)`.
    pub(crate) gates: BTreeSet<(u64, usize, u64)>,
    /// Every account, by index (numbered densely as accounts are created: also
    /// where its holdings are in each slot, [`SlotBook::holdings`]).
    pub(crate) accounts: Accounts,
    /// Where every open order rests: the one index of open orders by id (looked
    /// up, never iterated; books find orders by handle).
    pub(crate) order_loc: FxHashMap<OrderId, OrderLoc>,
    /// Open GTD orders by expiry.
    pub(crate) expiries: BTreeSet<(u64, OrderId)>,
    pub(crate) next_order_id: OrderId,
    pub(crate) next_trade_id: TradeId,
    /// The id the next delivery-schedule entry gets.
    pub(crate) next_entry_id: u64,
    pub(crate) last_seq: u64,
    pub(crate) last_ts_ns: u64,
    /// Sum of all USD balances, in micro-USD: changes only by deposits and withdrawals.
    pub(crate) cash_total: u64,
    /// The id `create_account` without an id gets: the lowest id no account has.
    pub(crate) next_account_id: AccountId,
    /// Idempotent request ids applied within the window.
    pub(crate) requests: RequestWindow,
    /// What is escrowed of every trade not yet wholly settled, by trade id.
    pub(crate) escrows: Escrows,
    /// Unsettled delivery entries of closed slots, by id.
    pub(crate) entries: BTreeMap<u64, Entry>,
    /// Entries that settle by default, by `(due_ns, entry)`.
    pub(crate) dues: BTreeSet<(u64, u64)>,
    /// Providers' delivery records, by account.
    pub(crate) records: BTreeMap<AccountId, ProviderRecord>,
    /// Accounts' API keys and their scopes, by (account, digest).
    pub(crate) api_keys: BTreeMap<(AccountId, KeyDigest), KeyScope>,
    /// The account of every API key, by digest (the index `api_keys` is read by).
    pub(crate) key_owners: BTreeMap<KeyDigest, AccountId>,
    /// A reused buffer for the lots one fill moves (not state: always empty
    /// between commands).
    pub(crate) scratch: Vec<Lot>,
}

impl<B: OrderBook> Default for Engine<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: OrderBook> Engine<B> {
    /// An empty exchange: no markets, and only the fee account (0).
    pub fn new() -> Self {
        let mut accounts = Accounts::default();
        accounts.insert(FEE_ACCOUNT, Account::default());
        Engine {
            markets: Vec::new(),
            market_index: FxHashMap::default(),
            books: Vec::new(),
            free_books: BTreeSet::new(),
            gates: BTreeSet::new(),
            accounts,
            order_loc: FxHashMap::default(),
            expiries: BTreeSet::new(),
            next_order_id: 1,
            next_trade_id: 1,
            next_entry_id: 1,
            last_seq: 0,
            last_ts_ns: 0,
            cash_total: 0,
            next_account_id: 1,
            requests: RequestWindow::default(),
            escrows: Escrows::default(),
            entries: BTreeMap::new(),
            dues: BTreeSet::new(),
            records: BTreeMap::new(),
            api_keys: BTreeMap::new(),
            key_owners: BTreeMap::new(),
            scratch: Vec::new(),
        }
    }

    /// The last applied sequence number (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The last applied (monotonic) timestamp.
    pub fn last_ts_ns(&self) -> u64 {
        self.last_ts_ns
    }

    /// The index of a listed market, or `unknown_market`.
    pub(crate) fn market_ix(&self, id: &MarketId) -> Result<usize, RejectReason> {
        self.market_index
            .get(id)
            .copied()
            .ok_or(RejectReason::UnknownMarket)
    }

    /// The open book of `slot` in market `mi`, if any command created it.
    pub(crate) fn find_book(&self, mi: usize, slot: u64) -> Option<usize> {
        self.markets[mi].slot_books.get(&slot).copied()
    }

    /// The book of `slot` in market `mi`, created (empty, its gate closure
    /// scheduled) when first needed. The caller checked the slot is open.
    pub(crate) fn book_for(&mut self, mi: usize, slot: u64) -> usize {
        if let Some(bi) = self.find_book(mi, slot) {
            return bi;
        }
        let spec = self.markets[mi].spec.clone();
        self.gates.insert((spec.closes_at_ns(slot), mi, slot));
        let book = SlotBook {
            market: mi,
            slot,
            spec,
            book: B::default(),
            lots_total: 0,
            holdings: Holdings::default(),
            lots: LotArena::default(),
            scheduled: 0,
            expired: 0,
        };
        let bi = match self.free_books.pop_first() {
            Some(bi) => {
                self.books[bi] = Some(book);
                bi
            }
            None => {
                self.books.push(Some(book));
                self.books.len() - 1
            }
        };
        self.markets[mi].slots.insert(slot, bi);
        self.markets[mi].slot_books.insert(slot, bi);
        bi
    }

    /// Records a new account: the next account index is its.
    pub(crate) fn add_account(&mut self, id: AccountId, account: Account) {
        self.accounts.insert(id, account);
    }

    /// The index of an existing account.
    #[inline]
    pub(crate) fn ix(&self, account: AccountId) -> u32 {
        self.accounts
            .ix(&account)
            .expect("an existing account has an index")
    }

    /// The accounts with a non-empty holding in book `bi` (GPUs, inventory sold
    /// or not, bought lots or lots kept to the gate), with their holdings, in
    /// account id order.
    pub(crate) fn holders(&self, bi: usize) -> Vec<(AccountId, u32, &Holding)> {
        let book = self.bk(bi);
        let mut holders: Vec<(AccountId, u32, &Holding)> = book
            .holdings
            .iter()
            .filter_map(|(ix, h)| Some((self.accounts.id_at(ix)?, ix, h)))
            .filter(|&(id, _, h)| !h.is_empty(book.lots.kept.contains_key(&id)))
            .collect();
        holders.sort_unstable_by_key(|&(id, _, _)| id);
        holders
    }

    /// An account's holding in book `bi`, if it has one.
    #[inline]
    pub(crate) fn holding(&self, bi: usize, account: AccountId) -> Option<&Holding> {
        let ix = self.accounts.ix(&account)?;
        self.books.get(bi)?.as_ref()?.holdings.get(ix)
    }

    /// An account's GPUs in book `bi` (zero when it has none, or for
    /// [`NO_BOOK`]).
    #[inline]
    pub(crate) fn gpus(&self, bi: usize, account: AccountId) -> Balance {
        self.holding(bi, account)
            .map_or_else(Balance::default, |h| h.gpus)
    }

    /// An account's own unsold inventory in book `bi`, in lots.
    #[inline]
    pub(crate) fn inventory(&self, bi: usize, account: AccountId) -> u64 {
        self.holding(bi, account).map_or(0, |h| h.inventory)
    }

    /// The GPUs in book `bi` of the account of index `ix` (zero when it has
    /// none, or for [`NO_BOOK`]).
    #[inline]
    pub(crate) fn gpus_at(&self, bi: usize, ix: u32) -> Balance {
        self.books
            .get(bi)
            .and_then(Option::as_ref)
            .and_then(|b| b.holdings.get(ix))
            .map_or_else(Balance::default, |h| h.gpus)
    }

    /// An account's holding in book `bi`, to change (created empty when first used).
    #[inline]
    pub(crate) fn holding_mut(&mut self, bi: usize, account: AccountId) -> &mut Holding {
        let ix = self.ix(account);
        self.bk_mut(bi).holdings.entry(ix)
    }

    /// The balance an order of `account` on `side` holds from: USD for a buy, its
    /// GPUs in book `bi` for a sell.
    #[inline]
    pub(crate) fn held_in(&mut self, account: AccountId, side: Side, bi: usize) -> &mut Balance {
        let ix = self.ix(account);
        self.held_at(ix, side, bi)
    }

    /// [`held_in`](Self::held_in) for the account of index `ix`.
    #[inline]
    pub(crate) fn held_at(&mut self, ix: u32, side: Side, bi: usize) -> &mut Balance {
        match side {
            Side::Buy => &mut self.accounts.at_mut(ix).cash,
            Side::Sell => &mut self.bk_mut(bi).holdings.entry(ix).gpus,
        }
    }

    /// An open slot's book.
    #[inline]
    pub(crate) fn bk(&self, bi: usize) -> &SlotBook<B> {
        self.books[bi].as_ref().expect("book index in use")
    }

    /// An open slot's book, to change.
    #[inline]
    pub(crate) fn bk_mut(&mut self, bi: usize) -> &mut SlotBook<B> {
        self.books[bi].as_mut().expect("book index in use")
    }

    /// A client account a command names, read-only: `reserved_account` for the fee
    /// account, `unknown_account` for an id no account has.
    pub(crate) fn account(&self, id: AccountId) -> Result<&Account, RejectReason> {
        if id == FEE_ACCOUNT {
            return Err(RejectReason::ReservedAccount);
        }
        self.accounts.get(&id).ok_or(RejectReason::UnknownAccount)
    }

    /// The index of a client account a command names: `reserved_account` for
    /// the fee account, `unknown_account` for an id no account has.
    pub(crate) fn client_ix(&self, id: AccountId) -> Result<u32, RejectReason> {
        if id == FEE_ACCOUNT {
            return Err(RejectReason::ReservedAccount);
        }
        self.accounts.ix(&id).ok_or(RejectReason::UnknownAccount)
    }

    /// An account to change, the fee account included. The caller has already
    /// checked that it exists (through [`account`](Self::account) or otherwise), so
    /// a missing one is a bug.
    pub(crate) fn account_mut(&mut self, id: AccountId) -> &mut Account {
        self.accounts
            .get_mut(&id)
            .expect("account checked to exist")
    }

    /// Finds the open order a cancel or amend names (by exactly one of its ids) and
    /// checks that `account` owns it. Returns its market index and the order.
    pub(crate) fn resolve_order(
        &self,
        account: AccountId,
        order_id: Option<OrderId>,
        client_order_id: Option<ClientOrderId>,
    ) -> Result<OpenOrder, RejectReason> {
        let ix = self.client_ix(account)?;
        let acct = self.accounts.at(ix);
        let id = match (order_id, client_order_id) {
            (Some(id), None) => id,
            (None, Some(c)) => *acct.client_ids.get(&c).ok_or(RejectReason::UnknownOrder)?,
            _ => return Err(RejectReason::InvalidOrderRef),
        };
        let loc = *self.order_loc.get(&id).ok_or(RejectReason::UnknownOrder)?;
        let order = *self.bk(loc.bi()).book.get(loc.handle);
        if order.account != account {
            return Err(RejectReason::NotYourOrder);
        }
        Ok(OpenOrder {
            ix,
            bi: loc.bi(),
            handle: loc.handle,
            order,
        })
    }

    /// Where an open order rests.
    pub(crate) fn loc(&self, id: OrderId) -> OrderLoc {
        *self.order_loc.get(&id).expect("an open order is indexed")
    }

    /// Records a newly resting order, at `handle` in book `bi`, in its account
    /// and the engine's indexes.
    pub(crate) fn remember(&mut self, bi: usize, handle: Handle, order: &RestingOrder) {
        let ix = self.ix(order.account);
        self.remember_at(bi, handle, order, ix);
    }

    /// [`remember`](Self::remember) for an order of the account of index `ix`.
    pub(crate) fn remember_at(&mut self, bi: usize, handle: Handle, order: &RestingOrder, ix: u32) {
        let book = u32::try_from(bi).expect("book indexes fit in 32 bits");
        self.order_loc.insert(order.id, OrderLoc { book, handle });
        if let Some(t) = order.good_till_ns {
            self.expiries.insert((t, order.id));
        }
        let acct = self.accounts.at_mut(ix);
        acct.open_orders.insert(order.id);
        if let Some(c) = order.client_order_id {
            acct.client_ids.insert(c, order.id);
        }
    }

    /// Drops a no-longer-open order from its account and the engine's indexes.
    pub(crate) fn forget(&mut self, order: &RestingOrder) {
        self.order_loc.remove(&order.id);
        self.forget_unindexed(order);
    }

    /// [`forget`](Self::forget) for an order of the account of index `ix`.
    pub(crate) fn forget_at(&mut self, order: &RestingOrder, ix: u32) {
        self.order_loc.remove(&order.id);
        self.forget_unindexed_at(order, ix);
    }

    /// [`forget`](Self::forget) for an order already taken out of
    /// [`order_loc`](Self::order_loc).
    pub(crate) fn forget_unindexed(&mut self, order: &RestingOrder) {
        let ix = self.ix(order.account);
        self.forget_unindexed_at(order, ix);
    }

    /// [`forget_unindexed`](Self::forget_unindexed) for an order of the account
    /// of index `ix`.
    pub(crate) fn forget_unindexed_at(&mut self, order: &RestingOrder, ix: u32) {
        if let Some(t) = order.good_till_ns {
            self.expiries.remove(&(t, order.id));
        }
        let acct = self.accounts.at_mut(ix);
        acct.open_orders.remove(order.id);
        if let Some(c) = order.client_order_id {
            acct.client_ids.remove(&c);
        }
    }
}
