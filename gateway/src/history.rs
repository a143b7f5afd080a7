//! Order and fill history, derived from committed events only.
//!
//! The engine keeps open orders; clients also want to see an order after it filled
//! or was cancelled, and their recent fills. This module owns [`History`], which the
//! core thread feeds with every committed command's events (from cmd_seq 1, so it is
//! the same on every gateway and after every restart), and [`OrderRecord`]: one
//! order's life folded from its events. The same folding builds a placed order's
//! response from its own command's events ([`OrderRecord::from_events`]), so a
//! response and a later `GET` agree.
//!
//! It also keeps each account's **delivery schedule**: the `delivery_scheduled`
//! entries fixed at each slot's gate closure, naming the account as provider (it
//! delivers) or as holder (it receives), each followed through its report,
//! dispute and settlement ([`DeliveryRecord`]).
//!
//! Bounds: open orders are bounded by the engine's limits; per account, the most
//! recent [`HistoryConfig::closed_orders_per_account`] closed orders,
//! [`HistoryConfig::fills_per_account`] fills and
//! [`HistoryConfig::schedule_per_account`] schedule entries are kept. Older history is in the
//! ledger (`gpux replay statement|export`).

use std::collections::{HashMap, VecDeque};

use gpux_engine::event::{DeliveryScheduled, DeliverySettled, OrderAccepted, TradeExecuted};
use gpux_engine::EntryState;
use gpux_engine::{
    AccountId, CancelReason, ClientOrderId, Event, MarketId, OrderId, OrderType, Side, StpMode,
    TimeInForce, TradeId,
};
use rust_decimal::Decimal;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::config::HistoryConfig;
use crate::marketdata::wire::SlotName;

/// Zero written with as many decimals as `like` (`"0.0"` for a lot of `0.5`), so
/// quantities print as the events print them.
pub fn zero_like(like: Decimal) -> Decimal {
    let mut z = Decimal::ZERO;
    z.rescale(like.scale());
    z
}

/// Where an order is in its life: the one status vocabulary of every answer
/// about an order (`open`, `partially_filled`, `filled`, `cancelled`, `expired`;
/// a placement the exchange refused answers an error with `"status":"rejected"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Open on the book, nothing filled yet.
    Open,
    /// Open on the book, partly filled.
    PartiallyFilled,
    /// Completely filled; closed.
    Filled,
    /// Closed without filling completely (see `cancel_reason`); may have fills.
    Cancelled,
    /// A GTD order whose time passed (`cancel_reason` `expired`); may have fills.
    Expired,
}

impl OrderStatus {
    /// Whether the order is still on the book.
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::Open | OrderStatus::PartiallyFilled)
    }
}

/// Whether a fill added liquidity (the resting order) or took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liquidity {
    /// The resting order.
    Maker,
    /// The incoming order.
    Taker,
}

/// One side of a trade, as its account sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// The engine's trade id.
    pub trade_id: TradeId,
    /// This account's order.
    pub order_id: OrderId,
    /// The market.
    pub market: MarketId,
    /// The delivery slot.
    pub slot: SlotName,
    /// This account's side.
    pub side: Side,
    /// Trade price (the maker's), USD per GPU-hour.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub price: Decimal,
    /// GPU-hours traded.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub quantity: Decimal,
    /// USD fee this account paid.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub fee: Decimal,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// The command that caused the trade.
    pub cmd_seq: u64,
    /// Its (sequenced) timestamp.
    pub ts_ns: u64,
    /// The same, in milliseconds.
    pub ts_ms: u64,
}

impl Fill {
    /// The two fills of a trade: the maker's, then the taker's.
    pub fn of_trade(t: &TradeExecuted, cmd_seq: u64, ts_ns: u64) -> [(AccountId, Fill); 2] {
        let fill = |order_id, side, fee, liquidity| Fill {
            trade_id: t.trade,
            order_id,
            market: t.market,
            slot: SlotName(t.slot),
            side,
            price: t.price,
            quantity: t.quantity,
            fee,
            liquidity,
            cmd_seq,
            ts_ns,
            ts_ms: crate::marketdata::wire::ms(ts_ns),
        };
        [
            (
                t.maker_account,
                fill(
                    t.maker_order,
                    t.taker_side.opposite(),
                    t.maker_fee,
                    Liquidity::Maker,
                ),
            ),
            (
                t.taker_account,
                fill(t.taker_order, t.taker_side, t.taker_fee, Liquidity::Taker),
            ),
        ]
    }
}

/// One order's life, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The engine's id.
    pub order_id: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The client's id, if given.
    pub client_order_id: Option<ClientOrderId>,
    /// The market.
    pub market: MarketId,
    /// The delivery slot (a window's first).
    pub slot: u64,
    /// A window's last slot.
    pub to_slot: Option<u64>,
    /// A cluster order.
    pub colocate: bool,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// Limit price (after any amend); `None` for market orders.
    #[serde(with = "crate::checkpoint::decimal_bin_option")]
    pub price: Option<Decimal>,
    /// Ordered GPU-hours: filled plus what was open after the last amend.
    #[serde(with = "crate::checkpoint::decimal_bin")]
    pub quantity: Decimal,
    /// GPU-hours filled so far.
    #[serde(with = "crate::checkpoint::decimal_bin")]
    pub filled: Decimal,
    /// GPU-hours open on the book (zero once closed).
    #[serde(with = "crate::checkpoint::decimal_bin")]
    pub remaining: Decimal,
    /// Where the order is.
    pub status: OrderStatus,
    /// Why it closed unfilled, when cancelled.
    pub cancel_reason: Option<CancelReason>,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// GTD expiry.
    pub good_till_ns: Option<u64>,
    /// Post-only.
    pub post_only: bool,
    /// Self-trade prevention.
    pub stp: StpMode,
    /// The command that placed it.
    pub created_cmd_seq: u64,
    /// Its timestamp.
    pub created_ts_ns: u64,
    /// The last command that changed it.
    pub updated_cmd_seq: u64,
}

impl OrderRecord {
    fn accepted(a: &OrderAccepted, cmd_seq: u64, ts_ns: u64) -> Self {
        // A window orders its quantity in every slot: the record counts GPU-hours
        // over the whole window, so a complete fill has `filled == quantity`.
        let slots = a.to_slot.map_or(1, |to| {
            (to.saturating_sub(a.slot) / gpux_engine::slot::SLOT_SECS) + 1
        });
        let quantity = a.quantity * Decimal::from(slots);
        OrderRecord {
            order_id: a.order,
            account: a.account,
            client_order_id: a.client_order_id,
            market: a.market,
            slot: a.slot,
            to_slot: a.to_slot,
            colocate: a.colocate,
            side: a.side,
            order_type: a.order_type,
            price: a.price,
            quantity,
            // Zero at the lot's scale, so sums print like the events do.
            filled: zero_like(a.quantity),
            remaining: quantity,
            // Until the command's other events say otherwise.
            status: OrderStatus::Open,
            cancel_reason: None,
            time_in_force: a.time_in_force,
            good_till_ns: a.good_till_ns,
            post_only: a.post_only,
            stp: a.stp,
            created_cmd_seq: cmd_seq,
            created_ts_ns: ts_ns,
            updated_cmd_seq: cmd_seq,
        }
    }

    fn open_status(&self) -> OrderStatus {
        if self.filled.is_zero() {
            OrderStatus::Open
        } else {
            OrderStatus::PartiallyFilled
        }
    }

    /// Folds one event into the record if it concerns this order; returns whether
    /// the order closed with it.
    fn apply(&mut self, ev: &Event, cmd_seq: u64) -> bool {
        let id = self.order_id;
        match ev {
            Event::TradeExecuted(t) if t.maker_order == id || t.taker_order == id => {
                let left = if t.maker_order == id {
                    t.maker_remaining
                } else {
                    t.taker_remaining
                };
                self.filled += t.quantity;
                self.remaining = left;
                self.updated_cmd_seq = cmd_seq;
                if left.is_zero() {
                    self.status = OrderStatus::Filled;
                    return true;
                }
                self.status = self.open_status();
            }
            Event::OrderRested(r) if r.order == id => {
                self.remaining = r.quantity;
                self.status = self.open_status();
                self.updated_cmd_seq = cmd_seq;
            }
            Event::OrderCancelled(c) if c.order == id => {
                self.remaining = zero_like(c.quantity);
                self.status = if c.reason == gpux_engine::CancelReason::Expired {
                    OrderStatus::Expired
                } else {
                    OrderStatus::Cancelled
                };
                self.cancel_reason = Some(c.reason);
                self.updated_cmd_seq = cmd_seq;
                return true;
            }
            Event::OrderAmended(a) if a.order == id => {
                self.price = Some(a.price);
                self.remaining = a.quantity;
                self.quantity = self.filled + a.quantity;
                self.status = self.open_status();
                self.updated_cmd_seq = cmd_seq;
            }
            _ => {}
        }
        false
    }

    /// The order `account` placed with this command, built from the command's
    /// events alone (other accounts' GTD expiries among them are ignored), with its
    /// fills in this command. `None` if no order of `account` was accepted.
    pub fn from_events(
        events: &[Event],
        account: AccountId,
        cmd_seq: u64,
        ts_ns: u64,
    ) -> Option<(OrderRecord, Vec<Fill>)> {
        let start = events
            .iter()
            .position(|e| matches!(e, Event::OrderAccepted(a) if a.account == account))?;
        let Event::OrderAccepted(a) = &events[start] else {
            return None;
        };
        let mut rec = OrderRecord::accepted(a, cmd_seq, ts_ns);
        let mut fills = Vec::new();
        for ev in &events[start + 1..] {
            if let Event::TradeExecuted(t) = ev {
                fills.extend(
                    Fill::of_trade(t, cmd_seq, ts_ns)
                        .into_iter()
                        .filter(|(acc, f)| *acc == account && f.order_id == rec.order_id)
                        .map(|(_, f)| f),
                );
            }
            rec.apply(ev, cmd_seq);
        }
        Some((rec, fills))
    }
}

/// Orders and fills of every account, as far as the bounds keep them. Cloned
/// and serialized whole for the gateway's checkpoint ([`crate::checkpoint`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    cfg: HistoryConfig,
    orders: OrderMap,
    #[serde(with = "crate::checkpoint::arc_map")]
    closed: HashMap<AccountId, Arc<VecDeque<OrderId>>>,
    #[serde(with = "crate::checkpoint::fills_bin")]
    fills: HashMap<AccountId, Arc<VecDeque<Fill>>>,
    #[serde(with = "crate::checkpoint::arc_map")]
    schedule: HashMap<AccountId, Arc<VecDeque<DeliveryRecord>>>,
    /// Provider and holder of every entry not yet settled.
    unsettled: HashMap<u64, [AccountId; 2]>,
    /// GPU-hours each provider was scheduled to deliver, in all (never trimmed:
    /// one number per provider).
    #[serde(with = "crate::checkpoint::decimal_map")]
    provided: HashMap<AccountId, Decimal>,
    /// GPU-hours scheduled for delivery in all.
    #[serde(with = "crate::checkpoint::decimal_bin")]
    scheduled_total: Decimal,
    /// GPU-hours delivered in all (settled entries' `delivered`).
    #[serde(with = "crate::checkpoint::decimal_bin")]
    delivered_total: Decimal,
}

/// Order ids kept together in one chunk of [`OrderMap`].
const ORDER_CHUNK_BITS: u32 = 12;

/// Orders by id, in chunks of 4,096 consecutive ids, each behind an `Arc`: a
/// copy of the history for a checkpoint shares the chunks (a few hundred
/// pointers for a million orders) instead of copying every order while the
/// core thread waits, and a chunk is copied only when it next changes
/// (`Arc::make_mut`), once per checkpoint. Engine order ids are dense and
/// ascending, so recent orders share few chunks.
#[derive(Debug, Clone, Default)]
struct OrderMap {
    chunks: Vec<Option<Arc<FxHashMap<OrderId, OrderRecord>>>>,
}

impl OrderMap {
    fn chunk_of(id: OrderId) -> usize {
        usize::try_from(id >> ORDER_CHUNK_BITS).unwrap_or(usize::MAX)
    }

    fn get(&self, id: &OrderId) -> Option<&OrderRecord> {
        self.chunks.get(Self::chunk_of(*id))?.as_ref()?.get(id)
    }

    fn get_mut(&mut self, id: &OrderId) -> Option<&mut OrderRecord> {
        let chunk = self.chunks.get_mut(Self::chunk_of(*id))?.as_mut()?;
        if !chunk.contains_key(id) {
            return None;
        }
        Arc::make_mut(chunk).get_mut(id)
    }

    fn insert(&mut self, id: OrderId, rec: OrderRecord) {
        let c = Self::chunk_of(id);
        if c >= self.chunks.len() {
            self.chunks.resize(c + 1, None);
        }
        let chunk = self.chunks[c].get_or_insert_with(Arc::default);
        Arc::make_mut(chunk).insert(id, rec);
    }

    fn remove(&mut self, id: &OrderId) {
        let c = Self::chunk_of(*id);
        let Some(slot) = self.chunks.get_mut(c) else {
            return;
        };
        if let Some(chunk) = slot.as_mut() {
            if chunk.contains_key(id) {
                let map = Arc::make_mut(chunk);
                map.remove(id);
                if map.is_empty() {
                    *slot = None;
                }
            }
        }
    }
}

/// In a checkpoint: one map of every order (the chunks are rebuilt on reading).
impl Serialize for OrderMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // A known length: postcard writes it first.
        let len = self.chunks.iter().flatten().map(|c| c.len()).sum();
        let mut map = s.serialize_map(Some(len))?;
        for (id, rec) in self.chunks.iter().flatten().flat_map(|c| c.iter()) {
            map.serialize_entry(id, rec)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for OrderMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Chunks;
        impl<'de> serde::de::Visitor<'de> for Chunks {
            type Value = OrderMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of orders by id")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<OrderMap, A::Error> {
                // Straight into the chunks, each sized for a full chunk while
                // reading (no rehashing) and trimmed after.
                let mut m = OrderMap::default();
                while let Some((id, rec)) = a.next_entry::<OrderId, OrderRecord>()? {
                    let c = OrderMap::chunk_of(id);
                    if c >= m.chunks.len() {
                        m.chunks.resize(c + 1, None);
                    }
                    let chunk = m.chunks[c].get_or_insert_with(|| {
                        Arc::new(FxHashMap::with_capacity_and_hasher(
                            1 << ORDER_CHUNK_BITS,
                            Default::default(),
                        ))
                    });
                    Arc::make_mut(chunk).insert(id, rec);
                }
                for chunk in m.chunks.iter_mut().flatten() {
                    Arc::make_mut(chunk).shrink_to_fit();
                }
                Ok(m)
            }
        }
        d.deserialize_map(Chunks)
    }
}

/// One delivery entry as it went: fixed at the gate, then reported, disputed and
/// settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The entry as the gate fixed it.
    pub scheduled: DeliveryScheduled,
    /// What the provider reported delivered (the latest report).
    #[serde(with = "crate::checkpoint::decimal_bin_option")]
    pub reported: Option<Decimal>,
    /// What the holder, disputing, said it received.
    #[serde(with = "crate::checkpoint::decimal_bin_option")]
    pub disputed: Option<Decimal>,
    /// Its settlement, once settled.
    pub settled: Option<DeliverySettled>,
}

impl DeliveryRecord {
    /// Where it stands.
    pub fn state(&self) -> EntryState {
        match (&self.settled, self.disputed, self.reported) {
            (Some(_), _, _) => EntryState::Settled,
            (None, Some(_), _) => EntryState::Disputed,
            (None, None, Some(_)) => EntryState::Reported,
            (None, None, None) => EntryState::Scheduled,
        }
    }
}

impl History {
    /// Empty history with these bounds.
    pub fn new(cfg: HistoryConfig) -> Self {
        History {
            cfg,
            orders: OrderMap::default(),
            closed: HashMap::new(),
            fills: HashMap::new(),
            schedule: HashMap::new(),
            unsettled: HashMap::new(),
            provided: HashMap::new(),
            scheduled_total: Decimal::ZERO,
            delivered_total: Decimal::ZERO,
        }
    }

    /// The bounds it keeps.
    pub fn config(&self) -> &HistoryConfig {
        &self.cfg
    }

    /// Folds one committed command's events in.
    pub fn apply(&mut self, cmd_seq: u64, ts_ns: u64, events: &[Event]) {
        for ev in events {
            match ev {
                Event::OrderAccepted(a) => {
                    self.orders
                        .insert(a.order, OrderRecord::accepted(a, cmd_seq, ts_ns));
                }
                Event::TradeExecuted(t) => {
                    for (account, fill) in Fill::of_trade(t, cmd_seq, ts_ns) {
                        self.push_fill(account, fill);
                    }
                    self.fold(t.maker_order, ev, cmd_seq);
                    if t.taker_order != t.maker_order {
                        self.fold(t.taker_order, ev, cmd_seq);
                    }
                }
                Event::OrderRested(r) => self.fold(r.order, ev, cmd_seq),
                Event::OrderCancelled(c) => self.fold(c.order, ev, cmd_seq),
                Event::OrderAmended(a) => self.fold(a.order, ev, cmd_seq),
                Event::DeliveryScheduled(d) => {
                    self.unsettled.insert(d.entry, [d.provider, d.holder]);
                    let p = self.provided.entry(d.provider).or_insert(Decimal::ZERO);
                    *p = p.saturating_add(d.quantity);
                    self.scheduled_total = self.scheduled_total.saturating_add(d.quantity);
                    self.push_schedule(d.provider, d);
                    if d.holder != d.provider {
                        self.push_schedule(d.holder, d);
                    }
                }
                Event::DeliveryReported(r) => {
                    self.update_delivery(r.entry, |d| d.reported = Some(r.delivered));
                }
                Event::DeliveryDisputed(x) => {
                    self.update_delivery(x.entry, |d| d.disputed = Some(x.received));
                }
                Event::DeliverySettled(s) => {
                    self.update_delivery(s.entry, |d| d.settled = Some(*s));
                    self.unsettled.remove(&s.entry);
                    self.delivered_total = self.delivered_total.saturating_add(s.delivered);
                }
                _ => {}
            }
        }
    }

    fn push_schedule(&mut self, account: AccountId, d: &DeliveryScheduled) {
        let q = Arc::make_mut(self.schedule.entry(account).or_default());
        q.push_back(DeliveryRecord {
            scheduled: d.clone(),
            reported: None,
            disputed: None,
            settled: None,
        });
        while q.len() > self.cfg.schedule_per_account {
            q.pop_front();
        }
    }

    /// Updates entry `entry` in its provider's and its holder's schedules (each
    /// kept in entry order, so found by binary search).
    fn update_delivery(&mut self, entry: u64, change: impl Fn(&mut DeliveryRecord)) {
        let Some(&parties) = self.unsettled.get(&entry) else {
            return;
        };
        for account in parties {
            if let Some(q) = self.schedule.get_mut(&account).map(Arc::make_mut) {
                if let Ok(i) = q.binary_search_by_key(&entry, |d| d.scheduled.entry) {
                    change(&mut q[i]);
                }
            }
        }
    }

    /// An account's kept delivery-schedule entries (as provider or holder), in
    /// the order they were fixed (by entry id).
    pub fn schedule(&self, account: AccountId) -> Vec<DeliveryRecord> {
        self.schedule
            .get(&account)
            .map_or_else(Vec::new, |q| q.iter().cloned().collect())
    }

    /// GPU-hours `account` was scheduled to deliver as a provider, in all.
    pub fn provided(&self, account: AccountId) -> Decimal {
        self.provided
            .get(&account)
            .copied()
            .unwrap_or(Decimal::ZERO)
    }

    /// GPU-hours scheduled for delivery in all (every delivery entry fixed).
    pub fn scheduled_total(&self) -> Decimal {
        self.scheduled_total
    }

    /// GPU-hours delivered in all: what every settled entry delivered (reported,
    /// resolved, or nothing for an unreported one).
    pub fn delivered_total(&self) -> Decimal {
        self.delivered_total
    }

    /// Providers that were ever scheduled to deliver.
    pub fn providers(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.provided.keys().copied()
    }

    fn fold(&mut self, order: OrderId, ev: &Event, cmd_seq: u64) {
        let Some(rec) = self.orders.get_mut(&order) else {
            return;
        };
        if rec.apply(ev, cmd_seq) {
            let account = rec.account;
            let q = Arc::make_mut(self.closed.entry(account).or_default());
            q.push_back(order);
            while q.len() > self.cfg.closed_orders_per_account {
                if let Some(old) = q.pop_front() {
                    self.orders.remove(&old);
                }
            }
        }
    }

    fn push_fill(&mut self, account: AccountId, fill: Fill) {
        let q = Arc::make_mut(self.fills.entry(account).or_default());
        q.push_back(fill);
        while q.len() > self.cfg.fills_per_account {
            q.pop_front();
        }
    }

    /// An order, open or recently closed.
    pub fn order(&self, id: OrderId) -> Option<&OrderRecord> {
        self.orders.get(&id)
    }

    /// An account's kept fills of one order, oldest first.
    pub fn order_fills(&self, account: AccountId, order: OrderId) -> Vec<Fill> {
        self.fills.get(&account).map_or_else(Vec::new, |q| {
            q.iter().filter(|f| f.order_id == order).copied().collect()
        })
    }

    /// A page of an account's fills, newest first: those with a trade id below
    /// `before` (all when `None`), optionally in one market, at most `limit` (a
    /// trade the account was both sides of is never split across pages). Returns
    /// the page and the cursor for the next one, if there may be more.
    pub fn fills_page(
        &self,
        account: AccountId,
        market: Option<MarketId>,
        before: Option<TradeId>,
        limit: usize,
    ) -> (Vec<Fill>, Option<TradeId>) {
        let Some(q) = self.fills.get(&account) else {
            return (Vec::new(), None);
        };
        let mut page: Vec<Fill> = Vec::new();
        let mut more = false;
        for f in q.iter().rev() {
            if before.is_some_and(|b| f.trade_id >= b) {
                continue;
            }
            if market.is_some_and(|m| f.market != m) {
                continue;
            }
            if page.len() >= limit && page.last().is_some_and(|l| l.trade_id != f.trade_id) {
                more = true;
                break;
            }
            page.push(*f);
        }
        let next = if more {
            page.last().map(|f| f.trade_id)
        } else {
            None
        };
        (page, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_record() -> OrderRecord {
        OrderRecord {
            order_id: 1,
            account: 1,
            client_order_id: None,
            market: "h100-sxm.us-east".parse().unwrap(),
            slot: 0,
            to_slot: None,
            colocate: false,
            side: Side::Buy,
            order_type: OrderType::Limit,
            price: Some(Decimal::ONE),
            quantity: Decimal::ONE,
            filled: Decimal::ZERO,
            remaining: Decimal::ONE,
            status: OrderStatus::Open,
            cancel_reason: None,
            time_in_force: TimeInForce::Gtc,
            good_till_ns: None,
            post_only: false,
            stp: StpMode::default(),
            created_cmd_seq: 1,
            created_ts_ns: 1,
            updated_cmd_seq: 1,
        }
    }

    /// An order map behaves as a plain map through inserts, changes and removals
    /// across chunks, and a copy taken on the way (a checkpoint's) keeps what it
    /// saw whatever the original does after.
    #[test]
    fn order_map_is_a_map_whose_copies_do_not_move() {
        use proptest::prelude::*;
        use std::collections::BTreeMap;
        let rec = |id: u64, seq: u64| {
            let mut r: OrderRecord = sample_record();
            r.order_id = id;
            r.updated_cmd_seq = seq;
            r
        };
        proptest!(|(ops in proptest::collection::vec((0u8..3, 0u64..20_000, any::<u64>()), 1..400), at in 0usize..400)| {
            let mut m = OrderMap::default();
            let mut model = BTreeMap::new();
            let mut copy: Option<(OrderMap, BTreeMap<u64, u64>)> = None;
            for (i, (op, id, seq)) in ops.into_iter().enumerate() {
                if i == at {
                    copy = Some((m.clone(), model.clone()));
                }
                match op {
                    0 => { m.insert(id, rec(id, seq)); model.insert(id, seq); }
                    1 => {
                        if let Some(r) = m.get_mut(&id) { r.updated_cmd_seq = seq; }
                        if let Some(v) = model.get_mut(&id) { *v = seq; }
                    }
                    _ => { m.remove(&id); model.remove(&id); }
                }
            }
            let check = |m: &OrderMap, model: &BTreeMap<u64, u64>| {
                for id in 0..20_000u64 {
                    prop_assert_eq!(m.get(&id).map(|r| r.updated_cmd_seq), model.get(&id).copied());
                }
                Ok(())
            };
            check(&m, &model)?;
            if let Some((c, cm)) = copy {
                check(&c, &cm)?;
            }
        });
    }
    use gpux_engine::{Command, Engine};

    fn run(engine: &mut Engine, history: &mut History, seq: &mut u64, cmd: &str) -> Vec<Event> {
        *seq += 1;
        let cmd: Command = serde_json::from_str(cmd).unwrap();
        let mut events = Vec::new();
        engine.apply(*seq, *seq * 1_000, &cmd, &mut events);
        history.apply(*seq, *seq * 1_000, &events);
        events
    }

    #[test]
    fn records_follow_the_engine_through_fills_amends_and_cancels() {
        let mut e: Engine = Engine::new();
        let mut h = History::new(HistoryConfig {
            fills_per_account: 3,
            closed_orders_per_account: 2,
            schedule_per_account: 10,
        });
        let mut s = 0;
        for c in [
            r#"{"type":"list_market","market":"h100.us","tick_size":"0.01","lot_size":"0.5","maker_fee_bps":10,"taker_fee_bps":20}"#,
            r#"{"type":"create_account","account":1}"#,
            r#"{"type":"create_account","account":2}"#,
            r#"{"type":"add_capacity","account":1,"market":"h100.us","from_slot":3600,"to_slot":3600,"quantity":"100"}"#,
            r#"{"type":"deposit","account":2,"amount":"1000"}"#,
            r#"{"type":"place_order","account":1,"market":"h100.us","slot":3600,"side":"sell","price":"2.00","quantity":"4"}"#,
        ] {
            run(&mut e, &mut h, &mut s, c);
        }
        let ev = run(
            &mut e,
            &mut h,
            &mut s,
            r#"{"type":"place_order","account":2,"market":"h100.us","slot":3600,"side":"buy","price":"2.00","quantity":"1.5"}"#,
        );
        let (rec, fills) = OrderRecord::from_events(&ev, 2, s, s * 1_000).unwrap();
        assert_eq!(rec.status, OrderStatus::Filled);
        assert_eq!(fills.len(), 1);
        assert_eq!(h.order(2), Some(&rec));
        let maker = h.order(1).unwrap();
        assert_eq!(maker.status, OrderStatus::PartiallyFilled);
        assert_eq!(maker.remaining.to_string(), "2.5");
        assert_eq!(maker.filled.to_string(), "1.5");
        run(
            &mut e,
            &mut h,
            &mut s,
            r#"{"type":"amend_order","account":1,"order_id":1,"quantity":"1"}"#,
        );
        let maker = h.order(1).unwrap();
        assert_eq!(maker.quantity.to_string(), "2.5");
        assert_eq!(maker.remaining.to_string(), "1.0");
        run(
            &mut e,
            &mut h,
            &mut s,
            r#"{"type":"cancel_order","account":1,"order_id":1}"#,
        );
        let maker = h.order(1).unwrap();
        assert_eq!(maker.status, OrderStatus::Cancelled);
        assert_eq!(maker.cancel_reason, Some(CancelReason::UserRequested));
        assert_eq!(maker.remaining.to_string(), "0.0");
        // Closed orders beyond the bound are forgotten, oldest first.
        for _ in 0..2 {
            run(
                &mut e,
                &mut h,
                &mut s,
                r#"{"type":"place_order","account":1,"market":"h100.us","slot":3600,"side":"sell","price":"3.00","quantity":"1","time_in_force":"ioc"}"#,
            );
        }
        assert!(h.order(1).is_none());
        assert!(h.order(2).is_some());
        let (page, next) = h.fills_page(1, None, None, 10);
        assert_eq!(page.len(), 1);
        assert_eq!(next, None);
    }

    #[test]
    fn the_schedule_lists_deliveries_for_provider_and_holder_within_the_bound() {
        let mut e: Engine = Engine::new();
        let mut h = History::new(HistoryConfig {
            schedule_per_account: 1,
            ..HistoryConfig::default()
        });
        let mut s = 0;
        for c in [
            r#"{"type":"list_market","market":"h100.us","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":0}"#,
            r#"{"type":"create_account","account":1}"#,
            r#"{"type":"create_account","account":2}"#,
            r#"{"type":"add_capacity","account":1,"market":"h100.us","from_slot":3600,"to_slot":7200,"quantity":"10"}"#,
            r#"{"type":"deposit","account":2,"amount":"1000"}"#,
            r#"{"type":"place_order","account":1,"market":"h100.us","slot":3600,"side":"sell","price":"2.00","quantity":"4"}"#,
            r#"{"type":"place_order","account":2,"market":"h100.us","slot":3600,"side":"buy","price":"2.00","quantity":"3","time_in_force":"ioc"}"#,
            r#"{"type":"place_order","account":1,"market":"h100.us","slot":7200,"side":"sell","price":"2.00","quantity":"4"}"#,
            r#"{"type":"place_order","account":2,"market":"h100.us","slot":7200,"side":"buy","price":"2.00","quantity":"2","time_in_force":"ioc"}"#,
        ] {
            run(&mut e, &mut h, &mut s, c);
        }
        assert!(
            h.schedule(1).is_empty(),
            "nothing is scheduled before a gate closes"
        );
        // Past both gates (3600 s and 7200 s, less 300 s each).
        let mut events = Vec::new();
        let tick: Command = serde_json::from_str(r#"{"type":"tick"}"#).unwrap();
        e.apply(s + 1, 7_000 * 1_000_000_000, &tick, &mut events);
        h.apply(s + 1, 7_000 * 1_000_000_000, &events);
        let (provider, holder) = (h.schedule(1), h.schedule(2));
        // One entry kept each: the newest, for slot 7200.
        assert_eq!(provider, holder);
        assert_eq!(provider.len(), 1);
        let d = &provider[0].scheduled;
        assert_eq!((d.slot, d.provider, d.holder), (7200, 1, 2));
        assert_eq!(d.quantity.to_string(), "2");
    }
}
