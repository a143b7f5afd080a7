//! The engine's complete state as bytes: snapshots, `restore`, `state_hash`, and
//! the invariant checks that audits and property tests run.
//!
//! A snapshot is canonical: accounts by id, markets in listing order, open slots'
//! books by (market, slot), each book's orders in priority order, empty holdings
//! left out, remembered request ids in
//! command order, API keys by (account, digest). Two engines with the same
//! state therefore give the same bytes, and [`Engine::state_hash`] is the SHA-256
//! of those bytes. The encoding is postcard (compact, deterministic) behind a
//! version number.

use crate::account::{Account, Balance, Holding, Holdings, Lot, LotArena};
use crate::book::{OrderBook, RestingOrder};
use crate::command::{KeyDigest, KeyScope};
use crate::delivery::{Entry, Escrow, ProviderRecord};
use crate::limits::API_KEYS_PER_ACCOUNT_MAX;
use crate::market::MarketSpec;
use crate::requests::{Remembered, RequestWindow};
use crate::risk;
use crate::state::{Engine, MarketState, SlotBook};
use crate::types::{AccountId, OrderId, Side, TradeId, FEE_ACCOUNT};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Version 2 added the account-id counter and the remembered request ids;
/// version 3 delivery slots (books per slot, holdings with their provenance);
/// version 4 pay on delivery (escrows, delivery entries, provider records);
/// version 5 accounts' API keys.
const SNAPSHOT_VERSION: u32 = 5;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    last_seq: u64,
    last_ts_ns: u64,
    next_order_id: OrderId,
    next_trade_id: u64,
    next_entry_id: u64,
    cash_total: u64,
    next_account_id: AccountId,
    /// Listed markets' specs, in listing order.
    markets: Vec<MarketSpec>,
    /// Open slots, by (market index, slot).
    books: Vec<BookSnapshot>,
    accounts: Vec<AccountSnapshot>,
    /// Idempotent request ids remembered, oldest first.
    requests: Vec<RequestSnapshot>,
    /// Escrows of trades not wholly settled, by trade id.
    escrows: Vec<(TradeId, Escrow)>,
    /// Unsettled delivery entries, by id (each with its due time).
    entries: Vec<(u64, Entry)>,
    /// Providers' records, by account.
    records: Vec<(AccountId, ProviderRecord)>,
    /// API keys, by (account, digest).
    api_keys: Vec<(AccountId, KeyDigest, KeyScope)>,
}

#[derive(Serialize, Deserialize)]
struct RequestSnapshot {
    cmd_seq: u64,
    ts_ns: u64,
    request_id: String,
}

#[derive(Serialize, Deserialize)]
struct BookSnapshot {
    market: u32,
    slot: u64,
    /// Its book index (indexes are reused lowest first, so this is canonical).
    index: u32,
    lots_total: u64,
    /// Scheduled and expired so far, once its gate passed.
    scheduled: u64,
    expired: u64,
    /// Bids then asks, each in priority order.
    orders: Vec<RestingOrder>,
    /// Non-empty holdings, by account.
    holdings: Vec<HoldingSnapshot>,
}

#[derive(Serialize, Deserialize)]
struct HoldingSnapshot {
    account: AccountId,
    gpus: Balance,
    inventory: u64,
    sold: u64,
    bought: Vec<Lot>,
    kept: Vec<Lot>,
}

#[derive(Serialize, Deserialize)]
struct AccountSnapshot {
    id: AccountId,
    cash: Balance,
    escrow: u64,
    pending: u64,
}

/// SHA-256 of the canonical snapshot. Displays and serializes as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateHash(pub [u8; 32]);

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateHash({self})")
    }
}

impl Serialize for StateHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why snapshot bytes could not be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotError(pub String);

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid snapshot: {}", self.0)
    }
}

impl std::error::Error for SnapshotError {}

impl<B: OrderBook> Engine<B> {
    /// The complete state as canonical bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut accounts: Vec<AccountSnapshot> = self
            .accounts
            .iter()
            .map(|(&id, a)| AccountSnapshot {
                id,
                cash: a.cash,
                escrow: a.escrow,
                pending: a.pending,
            })
            .collect();
        accounts.sort_unstable_by_key(|a| a.id);
        let books = self.book_snapshots();
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            last_seq: self.last_seq,
            last_ts_ns: self.last_ts_ns,
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            next_entry_id: self.next_entry_id,
            cash_total: self.cash_total,
            next_account_id: self.next_account_id,
            markets: self.markets.iter().map(|m| m.spec.clone()).collect(),
            books,
            accounts,
            requests: self
                .requests
                .iter()
                .map(|r| RequestSnapshot {
                    cmd_seq: r.cmd_seq,
                    ts_ns: r.ts_ns,
                    request_id: r.request_id.to_string(),
                })
                .collect(),
            escrows: self.escrows.iter().map(|(t, e)| (t, e.clone())).collect(),
            entries: self.entries.iter().map(|(&i, e)| (i, e.clone())).collect(),
            records: self.records.iter().map(|(&a, r)| (a, r.clone())).collect(),
            api_keys: self
                .api_keys
                .iter()
                .map(|(&(a, d), &s)| (a, d, s))
                .collect(),
        };
        postcard::to_stdvec(&snapshot).expect("snapshots always encode")
    }

    /// Every open slot's book, by (market, slot).
    fn book_snapshots(&self) -> Vec<BookSnapshot> {
        let mut books = Vec::new();
        for m in &self.markets {
            for &bi in m.slots.values() {
                let b = self.bk(bi);
                let mut orders = Vec::with_capacity(b.book.len());
                for side in [Side::Buy, Side::Sell] {
                    b.book.visit(side, &mut |o| {
                        orders.push(*o);
                        true
                    });
                }
                let holdings: Vec<HoldingSnapshot> = self
                    .holders(bi)
                    .into_iter()
                    .map(|(account, _, h)| HoldingSnapshot {
                        account,
                        gpus: h.gpus,
                        inventory: h.inventory,
                        sold: h.sold,
                        bought: b.lots.lots(h.bought).into_iter().cloned().collect(),
                        kept: b
                            .lots
                            .lots(b.lots.kept(account))
                            .into_iter()
                            .cloned()
                            .collect(),
                    })
                    .collect();
                books.push(BookSnapshot {
                    market: b.market as u32,
                    slot: b.slot,
                    index: bi as u32,
                    lots_total: b.lots_total,
                    scheduled: b.scheduled,
                    expired: b.expired,
                    orders,
                    holdings,
                });
            }
        }
        books
    }

    /// SHA-256 over the canonical snapshot: equal states, equal hashes.
    pub fn state_hash(&self) -> StateHash {
        StateHash(Sha256::digest(self.snapshot()).into())
    }

    /// Rebuilds an engine from [`snapshot`](Self::snapshot) bytes. Bytes that do not
    /// decode, or decode to a state that breaks an invariant, are refused.
    pub fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let s: Snapshot = postcard::from_bytes(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        if s.version != SNAPSHOT_VERSION {
            return Err(SnapshotError(format!("unsupported version {}", s.version)));
        }
        let mut e = Engine::<B>::new();
        e.last_seq = s.last_seq;
        e.last_ts_ns = s.last_ts_ns;
        e.next_order_id = s.next_order_id;
        e.next_trade_id = s.next_trade_id;
        e.next_entry_id = s.next_entry_id;
        e.cash_total = s.cash_total;
        e.next_account_id = s.next_account_id;
        e.requests = restore_requests(s.requests, s.last_seq, s.last_ts_ns)?;
        for spec in s.markets {
            if e.market_index.insert(spec.id, e.markets.len()).is_some() {
                return Err(SnapshotError(format!("market {} twice", spec.id)));
            }
            e.markets.push(MarketState {
                spec,
                slots: BTreeMap::new(),
                slot_books: rustc_hash::FxHashMap::default(),
            });
        }
        e.restore_accounts(s.accounts)?;
        for b in &s.books {
            e.restore_book_slot(b)?;
        }
        for (trade, escrow) in s.escrows {
            if e.escrows.get(trade).is_some() {
                return Err(SnapshotError(format!("trade {trade} escrowed twice")));
            }
            e.escrows.insert(trade, escrow);
        }
        for (id, entry) in s.entries {
            if let Some(due) = entry.due_ns {
                e.dues.insert((due, id));
            }
            e.entries.insert(id, entry);
        }
        e.records = s.records.into_iter().collect();
        e.restore_keys(s.api_keys)?;
        for b in s.books {
            e.restore_orders(b)?;
        }
        e.check_invariants().map_err(SnapshotError)?;
        Ok(e)
    }

    /// The snapshot's API keys: each digest once, of an account that exists, at
    /// most [`API_KEYS_PER_ACCOUNT_MAX`] per account.
    fn restore_keys(
        &mut self,
        keys: Vec<(AccountId, KeyDigest, KeyScope)>,
    ) -> Result<(), SnapshotError> {
        for (account, digest, scope) in keys {
            if !self.accounts.contains_key(&account) || account == FEE_ACCOUNT {
                return Err(SnapshotError(format!(
                    "a key of account {account}, which cannot have one"
                )));
            }
            if self.key_owners.contains_key(&digest) {
                return Err(SnapshotError(format!("key {digest:?} twice")));
            }
            if self.key_count(account) >= API_KEYS_PER_ACCOUNT_MAX {
                return Err(SnapshotError(format!(
                    "account {account} has too many keys"
                )));
            }
            self.insert_key(account, digest, scope);
        }
        Ok(())
    }

    /// Re-creates an open slot's (empty) book at its index.
    fn restore_book_slot(&mut self, b: &BookSnapshot) -> Result<(), SnapshotError> {
        let (mi, bi) = (b.market as usize, b.index as usize);
        if mi >= self.markets.len() || self.find_book(mi, b.slot).is_some() {
            return Err(SnapshotError(format!("bad slot {} of market {mi}", b.slot)));
        }
        if self.books.len() <= bi {
            self.books.resize_with(bi + 1, || None);
        }
        if self.books[bi].is_some() {
            return Err(SnapshotError(format!("book index {bi} twice")));
        }
        let spec = self.markets[mi].spec.clone();
        self.gates.insert((spec.closes_at_ns(b.slot), mi, b.slot));
        let mut lots = LotArena::default();
        let mut holdings = Holdings::default();
        for h in &b.holdings {
            let Some(ix) = self.accounts.ix(&h.account) else {
                return Err(SnapshotError(format!(
                    "a holding of unknown account {} in book {bi}",
                    h.account
                )));
            };
            let mut holding = Holding {
                gpus: h.gpus,
                inventory: h.inventory,
                sold: h.sold,
                ..Holding::default()
            };
            for lot in &h.bought {
                lots.push_back(&mut holding.bought, lot.clone());
            }
            let mut kept = crate::account::LotList::default();
            for lot in &h.kept {
                lots.push_back(&mut kept, lot.clone());
            }
            if !kept.is_empty() {
                lots.kept.insert(h.account, kept);
            }
            let slot = holdings.entry(ix);
            if *slot != Holding::default() || holding.is_empty(!kept.is_empty()) {
                return Err(SnapshotError(format!(
                    "account {} holds twice or nothing in book {bi}",
                    h.account
                )));
            }
            *slot = holding;
        }
        self.books[bi] = Some(SlotBook {
            market: mi,
            slot: b.slot,
            spec,
            book: B::default(),
            lots_total: b.lots_total,
            scheduled: b.scheduled,
            expired: b.expired,
            holdings,
            lots,
        });
        self.markets[mi].slots.insert(b.slot, bi);
        self.markets[mi].slot_books.insert(b.slot, bi);
        self.free_books = (0..self.books.len())
            .filter(|&i| self.books[i].is_none())
            .collect();
        Ok(())
    }

    /// Replaces the accounts with the snapshot's: each id once, the fee account
    /// present. They take their indexes in the snapshot's order.
    fn restore_accounts(&mut self, accounts: Vec<AccountSnapshot>) -> Result<(), SnapshotError> {
        self.accounts.clear();
        for a in accounts {
            let account = Account {
                cash: a.cash,
                escrow: a.escrow,
                pending: a.pending,
                ..Account::default()
            };
            if self.accounts.contains_key(&a.id) {
                return Err(SnapshotError(format!("account {} twice", a.id)));
            }
            self.add_account(a.id, account);
        }
        if !self.accounts.contains_key(&FEE_ACCOUNT) {
            return Err(SnapshotError("no fee account".into()));
        }
        Ok(())
    }

    /// Rests a slot's orders again, rebuilding the indexes of open orders
    /// (accounts, client order ids, expiries) as it goes. The accounts must be
    /// restored first.
    fn restore_orders(&mut self, b: BookSnapshot) -> Result<(), SnapshotError> {
        let bi = b.index as usize;
        for o in b.orders {
            let bad = o.quantity_lots == 0
                || o.id >= self.next_order_id
                || self.order_loc.contains_key(&o.id);
            if bad || !self.accounts.contains_key(&o.account) {
                return Err(SnapshotError(format!("bad order {}", o.id)));
            }
            let handle = self.bk_mut(bi).book.insert(o);
            self.remember(bi, handle, &o);
        }
        Ok(())
    }

    /// Checks every invariant of the state; `Err` names the first one broken.
    ///
    /// - no book is crossed;
    /// - each account's held USD equals what its open buys need (limit price ×
    ///   open quantity + worst-case fee) and each held GPU-hour balance equals its
    ///   open sells' quantity;
    /// - the sum of all USD balances equals deposits minus withdrawals, and the
    ///   sum of each market's GPU-hour balances equals capacity added minus removed;
    /// - the indexes (open orders, client order ids, expiries) agree with the books;
    /// - the account-id counter is the lowest id no account has.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_account_counter()?;
        let mut needed = Needed::default();
        let mut open_books = 0usize;
        for (mi, m) in self.markets.iter().enumerate() {
            if m.slot_books.len() != m.slots.len() {
                return Err(format!("market {}: slot indexes disagree", m.spec.id));
            }
            for (&slot, &bi) in &m.slots {
                open_books += 1;
                if m.slot_books.get(&slot) != Some(&bi) {
                    return Err(format!("market {} slot {slot}: not indexed", m.spec.id));
                }
                let b = self.books.get(bi).and_then(Option::as_ref);
                let Some(b) = b.filter(|b| b.market == mi && b.slot == slot) else {
                    return Err(format!(
                        "market {} slot {slot}: book index {bi} stale",
                        m.spec.id
                    ));
                };
                if !self.gates.contains(&(b.spec.closes_at_ns(slot), mi, slot)) {
                    return Err(format!("market {} slot {slot}: no gate closure", m.spec.id));
                }
                self.check_slot_book(bi, &mut needed)?;
            }
        }
        if open_books != self.gates.len() || open_books + self.free_books.len() != self.books.len()
        {
            return Err("slot indexes disagree with the books".into());
        }
        let listed: usize = self.accounts.values().map(|a| a.open_orders.len()).sum();
        if needed.open != self.order_loc.len()
            || needed.open != listed
            || self.expiries.len() > needed.open
        {
            return Err("order indexes disagree with the books".into());
        }
        self.check_escrows(&mut needed)?;
        self.check_accounts(&needed)
    }

    /// One open slot: its book not crossed, its orders indexed, its GPUs summing
    /// to its total and each holding to its sources.
    fn check_slot_book(&self, bi: usize, needed: &mut Needed) -> Result<(), String> {
        let b = self.bk(bi);
        if let (Some(bid), Some(ask)) =
            (b.book.best_price(Side::Buy), b.book.best_price(Side::Sell))
        {
            if bid >= ask {
                return Err(format!(
                    "book {} {} crossed: bid {bid} >= ask {ask}",
                    b.spec.id, b.slot
                ));
            }
        }
        self.check_book(bi, needed)?;
        let mut lots = 0u64;
        for (id, _, h) in self.holders(bi) {
            let want = needed.lots.get(&(id, bi)).copied().unwrap_or(0);
            if h.gpus.held != want {
                return Err(format!(
                    "account {id}: {} GPUs held in {} {} but open sells need {want}",
                    h.gpus.held, b.spec.id, b.slot
                ));
            }
            {
                lots += h.gpus.total() + b.lots.total(b.lots.kept(id));
                let bought = b.lots.lots(h.bought);
                let sources = h.inventory + bought.iter().map(|l| l.lots).sum::<u64>();
                if sources != h.gpus.total() || bought.iter().any(|l| l.lots == 0) {
                    return Err(format!(
                        "account {id}: {} GPUs in {} {} but sources of {sources}",
                        h.gpus.total(),
                        b.spec.id,
                        b.slot
                    ));
                }
            }
        }
        if b.lots
            .kept
            .iter()
            .any(|(id, kept)| kept.is_empty() || self.holding(bi, *id).is_none())
        {
            return Err(format!(
                "{} {}: kept lots without a holding",
                b.spec.id, b.slot
            ));
        }
        if needed
            .lots
            .iter()
            .any(|(&(id, i), &n)| i == bi && n > 0 && self.gpus(bi, id).held != n)
        {
            return Err(format!("{} {}: open sells without GPUs", b.spec.id, b.slot));
        }
        if lots != b.lots_total {
            return Err(format!(
                "{} slot {}: balances sum to {lots} lots, expected {}",
                b.spec.id, b.slot, b.lots_total
            ));
        }
        Ok(())
    }

    /// The account-id counter is the lowest id no account has.
    fn check_account_counter(&self) -> Result<(), String> {
        let next = self.next_account_id;
        if next == FEE_ACCOUNT
            || self.accounts.contains_key(&next)
            || (1..next).any(|id| !self.accounts.contains_key(&id))
        {
            return Err(format!(
                "account-id counter {next} is not the lowest free account id"
            ));
        }
        Ok(())
    }

    /// Every order on market `mi`'s book is indexed consistently (its account's
    /// open orders and client order ids, its market, its expiry, its side); adds
    /// the hold it needs to `needed`.
    fn check_book(&self, bi: usize, needed: &mut Needed) -> Result<(), String> {
        let m = self.bk(bi);
        let mut problem = None;
        for side in [Side::Buy, Side::Sell] {
            m.book.visit(side, &mut |o: &RestingOrder| {
                needed.open += 1;
                let account = self.accounts.get(&o.account);
                let known = account.is_some_and(|a| {
                    a.open_orders.contains(o.id)
                        && o.client_order_id
                            .is_none_or(|c| a.client_ids.get(&c) == Some(&o.id))
                });
                let indexed = self
                    .order_loc
                    .get(&o.id)
                    .is_some_and(|l| l.bi() == bi && m.book.get(l.handle) == o)
                    && o.good_till_ns
                        .is_none_or(|t| self.expiries.contains(&(t, o.id)));
                if !known || !indexed || o.side != side {
                    problem = Some(format!("order {} is not indexed consistently", o.id));
                    return false;
                }
                let hold = risk::resting_hold(&m.spec, side, o.price_ticks, o.quantity_lots);
                match side {
                    Side::Buy => *needed.cash.entry(o.account).or_default() += hold,
                    Side::Sell => *needed.lots.entry((o.account, bi)).or_default() += hold,
                }
                true
            });
        }
        problem.map_or(Ok(()), Err)
    }

    /// Every account holds exactly what its open orders need, has no stale client
    /// order ids, and all USD balances sum to the exchange's total.
    fn check_accounts(&self, needed: &Needed) -> Result<(), String> {
        let mut cash = 0u64;
        for (&id, a) in &self.accounts {
            cash += a.cash.total() + a.escrow;
            let (escrow, pending) = needed.escrow.get(&id).copied().unwrap_or_default();
            if (a.escrow, a.pending) != (escrow, pending) {
                return Err(format!(
                    "account {id}: escrow {} and pending {} but its trades say {escrow} and {pending}",
                    a.escrow, a.pending
                ));
            }
            let want = needed.cash.get(&id).copied().unwrap_or(0);
            if a.cash.held != want {
                return Err(format!(
                    "account {id}: USD held {} but open buys need {want}",
                    a.cash.held
                ));
            }
            if a.open_orders.len() < a.client_ids.len() {
                return Err(format!("account {id}: stale client order ids"));
            }
        }
        if cash != self.cash_total {
            return Err(format!(
                "USD balances sum to {cash}, expected {}",
                self.cash_total
            ));
        }
        Ok(())
    }

    /// Every unsettled entry's trades are escrowed for at least its GPUs, and its
    /// due time is indexed; adds each escrow to its buyer's escrow and its
    /// seller's pending USD in `needed`.
    fn check_escrows(&self, needed: &mut Needed) -> Result<(), String> {
        for (t, e) in self.escrows.iter() {
            if e.lots == 0 || e.notional == 0 {
                return Err(format!("trade {t}: an empty escrow"));
            }
            needed.escrow.entry(e.buyer).or_default().0 += e.escrowed();
            needed.escrow.entry(e.seller).or_default().1 += e.claim();
        }
        let mut dues = 0usize;
        for (&id, entry) in &self.entries {
            let short = entry
                .trades
                .iter()
                .any(|&t| self.escrows.get(t).is_none_or(|e| e.lots < entry.lots));
            if short || entry.trades.is_empty() || id >= self.next_entry_id {
                return Err(format!("entry {id}: its trades are not escrowed"));
            }
            if let Some(due) = entry.due_ns {
                dues += 1;
                if !self.dues.contains(&(due, id)) {
                    return Err(format!("entry {id}: due time not indexed"));
                }
            }
        }
        if dues != self.dues.len() {
            return Err("due times disagree with the entries".into());
        }
        Ok(())
    }

    /// Sum of all USD balances (deposits minus withdrawals), in micro-USD.
    pub fn cash_total_micros(&self) -> u64 {
        self.cash_total
    }
}

/// The remembered request ids of a snapshot as the engine's window, checked
/// against the snapshot's last command.
fn restore_requests(
    requests: Vec<RequestSnapshot>,
    last_seq: u64,
    last_ts_ns: u64,
) -> Result<RequestWindow, SnapshotError> {
    RequestWindow::restore(
        requests
            .into_iter()
            .map(|r| Remembered {
                cmd_seq: r.cmd_seq,
                ts_ns: r.ts_ns,
                request_id: r.request_id.into(),
            })
            .collect(),
        last_seq,
        last_ts_ns,
    )
    .map_err(SnapshotError)
}

/// What the books' open orders need, summed while checking them.
#[derive(Default)]
struct Needed {
    /// Open orders seen.
    open: usize,
    /// USD the open buys need, by account.
    cash: BTreeMap<AccountId, u64>,
    /// Lots the open sells need, by account and market index.
    lots: BTreeMap<(AccountId, usize), u64>,
    /// Escrow (as buyer) and pending USD (as seller) the escrows say, by account.
    escrow: BTreeMap<AccountId, (u64, u64)>,
}
