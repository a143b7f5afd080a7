//! `gpux replay state --data DIR [--at SEQ] [--levels N]`: the exchange as it was
//! after command `SEQ` (default: the head) — every market's spec and, per open
//! delivery slot, the top `N` price levels per side; every account's balances (GPUs
//! per slot) and open orders — rebuilt with [`rebuild`] (snapshot + re-run, events
//! checked). Slots are written `2026-12-07T09:00Z`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use gpux_engine::market::MarketSpec;
use gpux_engine::slot::format_slot;
use gpux_engine::{
    AccountId, BalanceView, Engine, L2Level, MarketId, OrderView, PositionView, Side, UsdView,
};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::{Outcome, Result};
use crate::progress::Progress;
use crate::rebuild::{rebuild, RebuildProgress, SkippedSnapshot};

/// Default number of price levels per side.
pub const LEVELS_DEFAULT: usize = 10;

/// The state at one `cmd_seq`.
#[derive(Debug, Clone, Serialize)]
pub struct StateReport {
    /// The last command applied (`0`: the empty exchange).
    pub seq: u64,
    /// Engine time after it (the last command's monotonic timestamp).
    pub ts_ns: u64,
    /// `state_hash()`, hex.
    pub state_hash: String,
    /// The snapshot the rebuild started from (`null`: genesis).
    pub snapshot_seq: Option<u64>,
    /// Commands re-run after the snapshot.
    pub commands_replayed: u64,
    /// Snapshots skipped because they were bad.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Every market, in listing order.
    pub markets: Vec<MarketState>,
    /// Every account, by id (the fee account 0 first).
    pub accounts: Vec<AccountState>,
}

/// A market's spec and the top of each open slot's book.
#[derive(Debug, Clone, Serialize)]
pub struct MarketState {
    /// The spec, in protocol units.
    pub spec: MarketSpecView,
    /// Resting orders in all its books.
    pub open_orders: usize,
    /// Open slots (used and not closed), in order.
    pub slots: Vec<SlotState>,
}

/// One open slot's book.
#[derive(Debug, Clone, Serialize)]
pub struct SlotState {
    /// The slot, `2026-12-07T09:00Z`.
    pub slot: String,
    /// Resting orders in the book.
    pub open_orders: usize,
    /// Best bids first, at most `levels`.
    pub bids: Vec<L2Level>,
    /// Best asks first, at most `levels`.
    pub asks: Vec<L2Level>,
}

/// A market's spec in protocol units (as in `market_listed`).
#[derive(Debug, Clone, Serialize)]
pub struct MarketSpecView {
    /// The market.
    pub market: MarketId,
    /// USD per GPU-hour of one tick.
    pub tick_size: Decimal,
    /// GPU-hours in one lot.
    pub lot_size: Decimal,
    /// Maker fee, basis points.
    pub maker_fee_bps: u32,
    /// Taker fee, basis points.
    pub taker_fee_bps: u32,
    /// Lowest limit price.
    pub min_price: Decimal,
    /// Highest limit price.
    pub max_price: Decimal,
    /// Largest order quantity.
    pub max_order_quantity: Decimal,
    /// How many hours ahead slots trade.
    pub slot_horizon_hours: u32,
    /// Trading in a slot stops this many seconds before it starts.
    pub gate_closure_secs: u32,
}

impl From<&MarketSpec> for MarketSpecView {
    fn from(s: &MarketSpec) -> Self {
        MarketSpecView {
            market: s.id,
            tick_size: s.tick_size,
            lot_size: s.lot_size,
            maker_fee_bps: s.maker_fee_bps,
            taker_fee_bps: s.taker_fee_bps,
            min_price: s.price(s.min_price_ticks),
            max_price: s.price(s.max_price_ticks),
            max_order_quantity: s.quantity(s.max_order_lots),
            slot_horizon_hours: s.slot_horizon_hours,
            gate_closure_secs: s.gate_closure_secs,
        }
    }
}

/// An account's balances and open orders.
#[derive(Debug, Clone, Serialize)]
pub struct AccountState {
    /// The account.
    pub account: AccountId,
    /// USD.
    pub usd: UsdView,
    /// GPUs per (market, slot) held, in market then slot order.
    pub gpus: Vec<PositionState>,
    /// Open orders, by id.
    pub open_orders: Vec<OrderState>,
}

/// GPUs of one slot of one market.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PositionState {
    /// The market.
    pub market: MarketId,
    /// The slot, `2026-12-07T09:00Z`.
    pub slot: String,
    /// Available and held.
    #[serde(flatten)]
    pub balance: BalanceView,
    /// Of which the account's own unsold inventory.
    pub inventory: Decimal,
    /// Besides these, bought GPUs kept to the gate (not resellable).
    pub kept: Decimal,
}

impl From<&PositionView> for PositionState {
    fn from(p: &PositionView) -> Self {
        PositionState {
            market: p.market,
            slot: format_slot(p.slot),
            balance: p.balance,
            inventory: p.inventory,
            kept: p.kept,
        }
    }
}

/// An open order as the engine reports it, its slot written `2026-12-07T09:00Z`.
#[derive(Debug, Clone)]
pub struct OrderState {
    /// The slot.
    pub slot: String,
    /// The order.
    pub order: OrderView,
}

impl Serialize for OrderState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(self.order).map_err(serde::ser::Error::custom)?;
        v["slot"] = serde_json::Value::String(self.slot.clone());
        v.serialize(s)
    }
}

/// An account's state, slots in human form.
fn account_state(engine: &Engine, id: AccountId) -> Option<AccountState> {
    let view = engine.balances(id)?;
    Some(AccountState {
        account: view.account,
        usd: view.usd,
        gpus: view.gpus.iter().map(PositionState::from).collect(),
        open_orders: engine
            .open_orders(id)?
            .into_iter()
            .map(|o| OrderState {
                slot: format_slot(o.slot),
                order: o,
            })
            .collect(),
    })
}

/// The report for an engine (markets and accounts at `levels` depth).
pub fn describe(engine: &Engine, levels: usize) -> StateReport {
    let accounts: Vec<AccountState> = engine
        .account_ids()
        .into_iter()
        .filter_map(|id| account_state(engine, id))
        .collect();
    let mut resting: BTreeMap<(MarketId, u64), usize> = BTreeMap::new();
    for o in accounts.iter().flat_map(|a| &a.open_orders) {
        *resting.entry((o.order.market, o.order.slot)).or_default() += 1;
    }
    let markets = engine
        .markets()
        .map(|spec| {
            let slots: Vec<SlotState> = engine
                .slots(&spec.id)
                .unwrap_or_default()
                .into_iter()
                .map(|slot| SlotState {
                    slot: format_slot(slot),
                    open_orders: resting.get(&(spec.id, slot)).copied().unwrap_or(0),
                    bids: engine
                        .depth(&spec.id, slot, Side::Buy, levels)
                        .unwrap_or_default(),
                    asks: engine
                        .depth(&spec.id, slot, Side::Sell, levels)
                        .unwrap_or_default(),
                })
                .collect();
            MarketState {
                spec: spec.into(),
                open_orders: slots.iter().map(|s| s.open_orders).sum(),
                slots,
            }
        })
        .collect();
    StateReport {
        seq: engine.last_seq(),
        ts_ns: engine.last_ts_ns(),
        state_hash: engine.state_hash().to_string(),
        snapshot_seq: None,
        commands_replayed: 0,
        skipped_snapshots: Vec::new(),
        markets,
        accounts,
    }
}

/// Rebuilds the state after `at` (`None`: the head) of the ledger in `data`.
pub fn state(
    data: &Path,
    at: Option<u64>,
    levels: usize,
    progress: &Progress,
) -> Result<StateReport> {
    let ledger = crate::open_or_fail(data)?;
    let reader = ledger.reader();
    let bar = progress.bar(0, "rebuild");
    let mut cb = |p: RebuildProgress| {
        bar.set_len(p.commands_total);
        bar.set(p.commands_done);
    };
    let rebuilt = rebuild(&reader, at, Some(&mut cb))?;
    drop(bar);
    let mut report = describe(&rebuilt.engine, levels);
    report.snapshot_seq = rebuilt.snapshot_seq;
    report.commands_replayed = rebuilt.commands_replayed;
    report.skipped_snapshots = rebuilt.skipped_snapshots;
    Ok(report)
}

/// `gpux replay state`: writes the state as indented JSON to `out`.
pub fn run(
    data: &Path,
    at: Option<u64>,
    levels: usize,
    progress: &Progress,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let r = state(data, at, levels, progress).and_then(|report| {
        crate::write_json_pretty(out, &report)?;
        Ok(Outcome::Success)
    });
    crate::settle(out, r)
}
