//! The engine's complete state as bytes: snapshots, `restore`, `state_hash`, and
//! the invariant checks that audits and property tests run.
//!
//! A snapshot is canonical: accounts by id, markets in listing order, each book's
//! orders in priority order, zero balances left out, remembered request ids in
//! command order. Two engines with the same
//! state therefore give the same bytes, and [`Engine::state_hash`] is the SHA-256
//! of those bytes. The encoding is postcard (compact, deterministic) behind a
//! version number.

use crate::account::{Account, Balance};
use crate::book::{OrderBook, RestingOrder};
use crate::market::MarketSpec;
use crate::requests::{Remembered, RequestWindow};
use crate::risk;
use crate::state::{Engine, MarketState};
use crate::types::{AccountId, OrderId, Side, FEE_ACCOUNT};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Version 2 added the account-id counter and the remembered request ids.
const SNAPSHOT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    last_seq: u64,
    last_ts_ns: u64,
    next_order_id: OrderId,
    next_trade_id: u64,
    cash_total: u64,
    next_account_id: AccountId,
    markets: Vec<MarketSnapshot>,
    accounts: Vec<AccountSnapshot>,
    /// Idempotent request ids remembered, oldest first.
    requests: Vec<RequestSnapshot>,
}

#[derive(Serialize, Deserialize)]
struct RequestSnapshot {
    cmd_seq: u64,
    ts_ns: u64,
    request_id: String,
}

#[derive(Serialize, Deserialize)]
struct MarketSnapshot {
    spec: MarketSpec,
    lots_total: u64,
    /// Bids then asks, each in priority order.
    orders: Vec<RestingOrder>,
}

#[derive(Serialize, Deserialize)]
struct AccountSnapshot {
    id: AccountId,
    cash: Balance,
    /// `(market index, balance)` for non-zero balances.
    positions: Vec<(u32, Balance)>,
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
                positions: a
                    .positions
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.total() > 0)
                    .map(|(mi, b)| (mi as u32, *b))
                    .collect(),
            })
            .collect();
        accounts.sort_unstable_by_key(|a| a.id);
        let markets = self
            .markets
            .iter()
            .map(|m| {
                let mut orders = Vec::with_capacity(m.book.len());
                for side in [Side::Buy, Side::Sell] {
                    m.book.visit(side, &mut |o| {
                        orders.push(*o);
                        true
                    });
                }
                MarketSnapshot {
                    spec: m.spec.clone(),
                    lots_total: m.lots_total,
                    orders,
                }
            })
            .collect();
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            last_seq: self.last_seq,
            last_ts_ns: self.last_ts_ns,
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            cash_total: self.cash_total,
            next_account_id: self.next_account_id,
            markets,
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
        };
        postcard::to_stdvec(&snapshot).expect("snapshots always encode")
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
        e.cash_total = s.cash_total;
        e.next_account_id = s.next_account_id;
        e.requests = restore_requests(s.requests, s.last_seq, s.last_ts_ns)?;
        e.restore_accounts(s.accounts, s.markets.len())?;
        for (mi, m) in s.markets.into_iter().enumerate() {
            e.restore_market(mi, m)?;
        }
        e.check_invariants().map_err(SnapshotError)?;
        Ok(e)
    }

    /// Replaces the accounts with the snapshot's: each id once, positions only in
    /// the `markets` listed, the fee account present.
    fn restore_accounts(
        &mut self,
        accounts: Vec<AccountSnapshot>,
        markets: usize,
    ) -> Result<(), SnapshotError> {
        self.accounts.clear();
        for a in accounts {
            let mut account = Account {
                cash: a.cash,
                ..Account::default()
            };
            for (mi, b) in a.positions {
                if mi as usize >= markets {
                    return Err(SnapshotError(format!("position in unknown market {mi}")));
                }
                *account.position_mut(mi as usize) = b;
            }
            if self.accounts.insert(a.id, account).is_some() {
                return Err(SnapshotError(format!("account {} twice", a.id)));
            }
        }
        if !self.accounts.contains_key(&FEE_ACCOUNT) {
            return Err(SnapshotError("no fee account".into()));
        }
        Ok(())
    }

    /// Lists market `mi` again and rests its orders, rebuilding the indexes of open
    /// orders (accounts, client order ids, expiries) as it goes. The accounts must
    /// be restored first.
    fn restore_market(&mut self, mi: usize, m: MarketSnapshot) -> Result<(), SnapshotError> {
        if self.market_index.insert(m.spec.id, mi).is_some() {
            return Err(SnapshotError(format!("market {} twice", m.spec.id)));
        }
        let mut book = B::default();
        for o in m.orders {
            let bad = o.quantity_lots == 0
                || o.id >= self.next_order_id
                || self.order_market.insert(o.id, mi).is_some();
            let Some(account) = self.accounts.get_mut(&o.account).filter(|_| !bad) else {
                return Err(SnapshotError(format!("bad order {}", o.id)));
            };
            account.open_orders.insert(o.id);
            if let Some(c) = o.client_order_id {
                account.client_ids.insert(c, o.id);
            }
            if let Some(t) = o.good_till_ns {
                self.expiries.insert((t, o.id));
            }
            book.insert(o);
        }
        self.markets.push(MarketState {
            spec: m.spec,
            book,
            lots_total: m.lots_total,
        });
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
        for (mi, m) in self.markets.iter().enumerate() {
            if let (Some(b), Some(a)) =
                (m.book.best_price(Side::Buy), m.book.best_price(Side::Sell))
            {
                if b >= a {
                    return Err(format!("book {} crossed: bid {b} >= ask {a}", m.spec.id));
                }
            }
            self.check_book(mi, m, &mut needed)?;
            let lots: u64 = self.accounts.values().map(|a| a.position(mi).total()).sum();
            if lots != m.lots_total {
                return Err(format!(
                    "market {}: balances sum to {lots} lots, expected {}",
                    m.spec.id, m.lots_total
                ));
            }
        }
        if needed.open != self.order_market.len() || self.expiries.len() > needed.open {
            return Err("order indexes disagree with the books".into());
        }
        self.check_accounts(&needed)
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
    fn check_book(&self, mi: usize, m: &MarketState<B>, needed: &mut Needed) -> Result<(), String> {
        let mut problem = None;
        for side in [Side::Buy, Side::Sell] {
            m.book.visit(side, &mut |o: &RestingOrder| {
                needed.open += 1;
                let account = self.accounts.get(&o.account);
                let known = account.is_some_and(|a| {
                    a.open_orders.contains(&o.id)
                        && o.client_order_id
                            .is_none_or(|c| a.client_ids.get(&c) == Some(&o.id))
                });
                let indexed = self.order_market.get(&o.id) == Some(&mi)
                    && o.good_till_ns
                        .is_none_or(|t| self.expiries.contains(&(t, o.id)));
                if !known || !indexed || o.side != side {
                    problem = Some(format!("order {} is not indexed consistently", o.id));
                    return false;
                }
                let hold = risk::resting_hold(&m.spec, side, o.price_ticks, o.quantity_lots);
                match side {
                    Side::Buy => *needed.cash.entry(o.account).or_default() += hold,
                    Side::Sell => *needed.lots.entry((o.account, mi)).or_default() += hold,
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
            cash += a.cash.total();
            let want = needed.cash.get(&id).copied().unwrap_or(0);
            if a.cash.held != want {
                return Err(format!(
                    "account {id}: USD held {} but open buys need {want}",
                    a.cash.held
                ));
            }
            for (mi, b) in a.positions.iter().enumerate() {
                let want = needed.lots.get(&(id, mi)).copied().unwrap_or(0);
                if b.held != want {
                    return Err(format!(
                        "account {id}: lots held {} in market {mi} but open sells need {want}",
                        b.held
                    ));
                }
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
}
