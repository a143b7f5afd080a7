//! `gpux replay audit --data DIR`: re-run the ledger from genesis and check, after
//! every command:
//!
//! - the engine's own invariants ([`Engine::check_invariants`]): no crossed book,
//!   holds equal to what open orders need, balances summing to the engine's
//!   totals, consistent indexes;
//! - no crossed book (best bid < best ask) in every book (market and slot) the
//!   command touched;
//! - the engine's USD total equals deposits − withdrawals taken from the
//!   `deposited`/`withdrawn` events;
//! - the delivery schedule (see `delivery`): every GPU scheduled for delivery
//!   was a provider's own inventory, delivered once, through a chain of trades
//!   consistent with the trades; at each gate every GPU listed is delivered or
//!   expired, and each account held exactly what the schedule gives it;
//! - every settlement (`trade_settled`), recomputed from its trade alone: what it
//!   pays the seller, refunds the buyer and charges in fees is the trade's own
//!   price and fees for the part delivered and not delivered, so escrow in equals
//!   paid out + refunded + fees for every entry and no seller is paid for a GPU
//!   not delivered; every entry is settled at most once, and a trade never beyond
//!   its GPUs;
//!
//! and at the end, independently of the engine's counters, from the events alone:
//! the sum of every account's USD (available + held + escrow) equals deposits −
//! withdrawals, the escrow the trades still hold equals the accounts' escrow, each
//! open slot's GPUs equal capacity added − removed there, every account's
//! balances (USD, escrow, pending, GPUs) recomputed from the events equal the
//! engine's, and every provider's delivery record recomputed from the
//! `delivery_settled` events (30 days, in hours of settlement time) equals the
//! engine's. Produced
//! events are compared byte-for-byte with the stored ones along the way.
//!
//! Prints a JSON summary, or `{"ok":false,"error":…,"cmd_seq":…}` naming the first
//! failing command.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use gpux_engine::market::cash_decimal;
use gpux_engine::{AccountId, Engine, Event, MarketId, Side};
use gpux_ledger::{LedgerReader, Store};
use gpux_sequencer::recovery::Replayer;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::balances::{key_name, EventBalances, SlotKey};
use crate::delivery::DeliveryAudit;
use crate::error::{Failure, FailureKind, Finding, Outcome, ReplayError, Result};
use crate::progress::Progress;

/// How thoroughly to audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditOptions {
    /// Run the engine's full invariant check after every this many commands
    /// (1: after every command; the check is linear in the state's size). The last
    /// command is always checked.
    pub invariants_every: u64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            invariants_every: 1,
        }
    }
}

/// One market's conservation figures, summed over its slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketAudit {
    /// The market.
    pub market: MarketId,
    /// GPU-hours added by `capacity_added` events (each slot counted).
    pub capacity_added: Decimal,
    /// GPU-hours removed by `capacity_removed` events.
    pub capacity_removed: Decimal,
    /// Sum of every account's GPUs in open slots (available + held) in the
    /// engine; equals added − removed in those slots.
    pub gpu_hours_total: Decimal,
    /// Slots whose gate closed.
    pub slots_closed: u64,
}

/// What the delivery check covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliverySummary {
    /// Gates closed.
    pub slots_closed: u64,
    /// Schedule entries checked.
    pub entries: u64,
    /// GPU-hours scheduled for delivery.
    pub scheduled: Decimal,
    /// Unsold GPU-hours expired.
    pub expired: Decimal,
}

/// What the settlement check covered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SettlementSummary {
    /// Delivery entries settled.
    pub entries_settled: u64,
    /// Settled parts of trades, each recomputed from its trade.
    pub trades_settled: u64,
    /// USD paid to sellers.
    pub paid: Decimal,
    /// USD refunded to buyers.
    pub refunded: Decimal,
    /// Fees charged on delivered GPUs.
    pub fees: Decimal,
    /// USD still in escrow at the end (every account's escrow).
    pub escrow: Decimal,
    /// Providers whose record was recomputed and matched.
    pub providers: u64,
}

/// A provider's settled deliveries, recomputed from `delivery_settled` events.
#[derive(Debug, Default)]
struct Settlements {
    summary: SettlementSummary,
    /// Entries settled (each once).
    entries: std::collections::BTreeSet<u64>,
    /// Per provider: (hour of settlement, GPUs obligated, delivered, dispute lost).
    records: BTreeMap<AccountId, Vec<(u64, Decimal, Decimal, bool)>>,
}

impl Settlements {
    fn apply(&mut self, event: &Event, hour: u64) -> std::result::Result<(), String> {
        match event {
            Event::TradeSettled(t) => {
                self.summary.trades_settled += 1;
                self.summary.paid += t.paid;
                self.summary.refunded += t.refunded;
                self.summary.fees += t.fees;
            }
            Event::DeliverySettled(d) => {
                if !self.entries.insert(d.entry) {
                    return Err(format!("delivery {} settled twice", d.entry));
                }
                self.summary.entries_settled += 1;
                self.records.entry(d.provider).or_default().push((
                    hour,
                    d.quantity,
                    d.delivered,
                    d.dispute_lost,
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Every provider's record at engine hour `hour` equals the engine's.
    fn check_records(&mut self, engine: &Engine, hour: u64) -> std::result::Result<(), String> {
        use gpux_engine::delivery::{RECORD_HOURS, RELIABILITY_SCALE};
        for (&provider, settled) in &self.records {
            let (mut obligated, mut delivered, mut lost) = (Decimal::ZERO, Decimal::ZERO, 0u64);
            for &(_, q, d, l) in settled.iter().filter(|s| s.0 + RECORD_HOURS > hour) {
                obligated += q;
                delivered += d;
                lost += u64::from(l);
            }
            let reliability = (!obligated.is_zero()).then(|| {
                (delivered / obligated)
                    .round_dp_with_strategy(
                        RELIABILITY_SCALE,
                        rust_decimal::RoundingStrategy::ToZero,
                    )
                    .normalize()
            });
            let engine_view = engine.provider(provider);
            let from_engine = engine_view
                .as_ref()
                .map(|p| (p.obligated, p.delivered, p.disputes_lost, p.reliability));
            let recomputed = (
                obligated.normalize(),
                delivered.normalize(),
                lost,
                reliability,
            );
            let matches = match from_engine {
                Some(e) => e == recomputed,
                None => obligated.is_zero(),
            };
            if !matches {
                return Err(format!(
                    "provider {provider}: the settlements give {recomputed:?}, the engine {from_engine:?}"
                ));
            }
            self.summary.providers += 1;
        }
        Ok(())
    }
}

/// What a passing audit checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    /// Always `true`.
    pub ok: bool,
    /// Commands re-run.
    pub commands: u64,
    /// Events compared and accounted.
    pub events: u64,
    /// The last `cmd_seq`.
    pub last_seq: u64,
    /// Full invariant checks run.
    pub invariant_checks: u64,
    /// Best bid < best ask checks run.
    pub book_checks: u64,
    /// USD deposited (from `deposited` events).
    pub deposits: Decimal,
    /// USD withdrawn (from `withdrawn` events).
    pub withdrawals: Decimal,
    /// Sum of every account's USD (available + held + escrow) in the engine, fee
    /// account included; equals `deposits − withdrawals`.
    pub usd_total: Decimal,
    /// The fee account's USD.
    pub fee_account_usd: Decimal,
    /// Per market, in listing order.
    pub markets: Vec<MarketAudit>,
    /// The delivery schedule.
    pub delivery: DeliverySummary,
    /// Settlements of delivery entries.
    pub settlement: SettlementSummary,
    /// Accounts whose balances recomputed from events equal the engine's.
    pub accounts_reconciled: u64,
    /// `state_hash()` at the end, hex.
    pub state_hash: String,
}

/// Audits the ledger in `data` (opened read-only).
pub fn audit(
    data: &Path,
    opts: &AuditOptions,
    progress: &Progress,
) -> Result<Finding<AuditSummary>> {
    let ledger = crate::open_or_fail(data)?;
    audit_reader(&ledger.reader(), opts, progress)
}

/// `gpux replay audit`: writes the JSON summary or the first failure to `out`.
pub fn run(
    data: &Path,
    opts: &AuditOptions,
    progress: &Progress,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let r = audit(data, opts, progress).and_then(|f| match f {
        Ok(s) => {
            crate::write_json_line(out, &s)?;
            Ok(Outcome::Success)
        }
        Err(f) => crate::write_failure(out, f),
    });
    crate::settle(out, r)
}

/// Audits through any reader.
pub fn audit_reader<S: Store>(
    reader: &LedgerReader<S>,
    opts: &AuditOptions,
    progress: &Progress,
) -> Result<Finding<AuditSummary>> {
    let every = opts.invariants_every.max(1);
    let head = reader.head()?;
    let mut engine: Engine = Engine::new();
    let mut balances = EventBalances::default();
    let mut delivery = DeliveryAudit::default();
    let mut settlements = Settlements::default();
    let mut replayer = Replayer::new(reader, 1, 1, head.last_cmd_seq)?;
    let (mut invariant_checks, mut book_checks) = (0u64, 0u64);
    let mut touched: Vec<SlotKey> = Vec::new();
    let bar = progress.bar(head.last_cmd_seq, "audit");
    loop {
        let step = match replayer.step(&mut engine).map_err(ReplayError::from) {
            Ok(Some(step)) => step,
            Ok(None) => break,
            Err(ReplayError::Failed(f)) => return Ok(Err(*f)),
            Err(e) => return Err(e),
        };
        let seq = step.command.cmd_seq;
        let folded = fold_events(
            step.produced,
            (&mut balances, &mut delivery, &mut settlements),
            engine_hour(&engine),
            &mut touched,
        );
        if let Err(f) = folded {
            return Ok(Err(f.at_cmd(seq)));
        }
        if seq % 1024 == 0 {
            bar.set(seq);
        }
        let full = seq % every == 0 || seq == head.last_cmd_seq;
        invariant_checks += u64::from(full);
        book_checks += touched.len() as u64;
        if let Err(f) = check_step(&engine, &balances, &touched, seq, full) {
            return Ok(Err(f));
        }
    }
    drop(bar);
    let end = match check_end(&engine, &balances, head.last_cmd_seq) {
        Ok(end) => end,
        Err(f) => return Ok(Err(f)),
    };
    let records = settlements.check_records(&engine, engine_hour(&engine));
    if let Err(e) = records {
        let f = Failure::new(FailureKind::ReliabilityMismatch, e);
        return Ok(Err(f.at_cmd(head.last_cmd_seq)));
    }
    settlements.summary.escrow = end.escrow;
    Ok(Ok(AuditSummary {
        ok: true,
        commands: replayer.commands_done(),
        events: replayer.events_done(),
        last_seq: head.last_cmd_seq,
        invariant_checks,
        book_checks,
        deposits: balances.deposits,
        withdrawals: balances.withdrawals,
        usd_total: end.usd_total,
        fee_account_usd: end.fee_account_usd,
        markets: end.markets,
        delivery: DeliverySummary {
            slots_closed: delivery.slots_closed,
            entries: delivery.entries,
            scheduled: delivery.scheduled,
            expired: delivery.expired,
        },
        settlement: settlements.summary,
        accounts_reconciled: end.accounts,
        state_hash: engine.state_hash().to_string(),
    }))
}

/// Folds one command's events into the balances and the delivery check, and
/// lists the books they touched in `touched`.
fn fold_events(
    events: &[Event],
    (balances, delivery, settlements): (&mut EventBalances, &mut DeliveryAudit, &mut Settlements),
    hour: u64,
    touched: &mut Vec<SlotKey>,
) -> std::result::Result<(), Failure> {
    touched.clear();
    for event in events {
        settlements
            .apply(event, hour)
            .map_err(|e| Failure::new(FailureKind::SettlementMismatch, e))?;
        delivery
            .apply(event, balances)
            .map_err(|e| Failure::new(FailureKind::DeliveryMismatch, e))?;
        balances.apply(event);
        if let Some(m) = balances.settlement_mismatch.take() {
            return Err(Failure::new(FailureKind::SettlementMismatch, m));
        }
        if let Some(m) = book_market(event) {
            if !touched.contains(&m) {
                touched.push(m);
            }
        }
    }
    Ok(())
}

/// The checks after command `seq`: the engine's invariants (when `full`), the
/// books it touched not crossed, USD conserved.
fn check_step(
    engine: &Engine,
    balances: &EventBalances,
    touched: &[SlotKey],
    seq: u64,
    full: bool,
) -> Finding<()> {
    if full {
        engine
            .check_invariants()
            .map_err(|e| Failure::new(FailureKind::InvariantBroken, e).at_cmd(seq))?;
    }
    check_books(engine, touched, seq)?;
    check_usd(engine, balances, seq)
}

/// Engine time in whole hours (what providers' records are bucketed by).
fn engine_hour(engine: &Engine) -> u64 {
    engine.last_ts_ns() / 1_000_000_000 / gpux_engine::slot::SLOT_SECS
}

/// No book of `books` is crossed after command `seq`.
fn check_books(engine: &Engine, books: &[SlotKey], seq: u64) -> Finding<()> {
    for key in books {
        let (m, slot) = key;
        let bid = engine
            .depth_ticks(m, *slot, Side::Buy, 1)
            .first()
            .map(|l| l.0);
        let ask = engine
            .depth_ticks(m, *slot, Side::Sell, 1)
            .first()
            .map(|l| l.0);
        if let (Some(bid), Some(ask)) = (bid, ask) {
            if bid >= ask {
                let spec = engine.market(m).expect("a book's market is listed");
                return Err(Failure::new(
                    FailureKind::CrossedBook,
                    format!(
                        "{}: best bid {} >= best ask {}",
                        key_name(key),
                        spec.price(bid),
                        spec.price(ask)
                    ),
                )
                .at_cmd(seq));
            }
        }
    }
    Ok(())
}

/// The engine's USD total equals deposits minus withdrawals in the events, after
/// command `seq`.
fn check_usd(engine: &Engine, balances: &EventBalances, seq: u64) -> Finding<()> {
    let engine_usd = cash_decimal(engine.cash_total_micros());
    if engine_usd != balances.usd_expected() {
        return Err(Failure::new(
            FailureKind::UsdNotConserved,
            format!(
                "the engine's USD total is {engine_usd}, deposits − withdrawals in the events are {}",
                balances.usd_expected()
            ),
        )
        .at_cmd(seq));
    }
    Ok(())
}

/// The book (market, slot) an event changes, if any.
fn book_market(e: &Event) -> Option<SlotKey> {
    match e {
        Event::TradeExecuted(t) => Some((t.market, t.slot)),
        Event::OrderRested(o) => Some((o.market, o.slot)),
        Event::OrderCancelled(o) if o.resting => Some((o.market, o.slot)),
        Event::OrderAmended(a) => Some((a.market, a.slot)),
        _ => None,
    }
}

struct End {
    usd_total: Decimal,
    escrow: Decimal,
    fee_account_usd: Decimal,
    markets: Vec<MarketAudit>,
    accounts: u64,
}

/// The end-of-run conservation checks: the engine's balances, summed over every
/// account, against the totals taken from the events; then account by account.
fn check_end(engine: &Engine, events: &EventBalances, last_seq: u64) -> Finding<End> {
    let mut usd_total = Decimal::ZERO;
    let mut gpu: BTreeMap<SlotKey, Decimal> = BTreeMap::new();
    let mut fee_account_usd = Decimal::ZERO;
    let mut escrow = Decimal::ZERO;
    let ids = engine.account_ids();
    for &id in &ids {
        let view = engine.balances(id).expect("listed accounts exist");
        let usd = view.usd.available + view.usd.held;
        usd_total += usd + view.usd.escrow;
        escrow += view.usd.escrow;
        if id == gpux_engine::FEE_ACCOUNT {
            fee_account_usd = usd;
        }
        for p in &view.gpus {
            *gpu.entry((p.market, p.slot)).or_default() += p.balance.available + p.balance.held;
        }
    }
    if usd_total != events.usd_expected() {
        return Err(Failure::new(
            FailureKind::UsdNotConserved,
            format!(
                "accounts hold {usd_total} USD; deposits {} − withdrawals {} = {}",
                events.deposits,
                events.withdrawals,
                events.usd_expected()
            ),
        )
        .at_cmd(last_seq));
    }
    if escrow != events.escrowed() {
        return Err(Failure::new(
            FailureKind::SettlementMismatch,
            format!(
                "accounts have {escrow} USD in escrow; the trades not yet settled hold {}",
                events.escrowed()
            ),
        )
        .at_cmd(last_seq));
    }
    let markets = check_markets(engine, events, &gpu, last_seq)?;
    check_accounts(engine, events, &ids, last_seq)?;
    Ok(End {
        usd_total,
        escrow,
        fee_account_usd,
        markets,
        accounts: ids.len() as u64,
    })
}

/// Per open slot: the GPUs accounts hold (`gpu`) equal capacity added minus
/// removed there in the events (closed slots are the delivery check's); summed
/// per market for the report.
fn check_markets(
    engine: &Engine,
    events: &EventBalances,
    gpu: &BTreeMap<SlotKey, Decimal>,
    last_seq: u64,
) -> Finding<Vec<MarketAudit>> {
    let mut markets = Vec::new();
    for spec in engine.markets() {
        let mut m = MarketAudit {
            market: spec.id,
            capacity_added: Decimal::ZERO,
            capacity_removed: Decimal::ZERO,
            gpu_hours_total: Decimal::ZERO,
            slots_closed: 0,
        };
        let keys = events.capacity.range((spec.id, 0)..=(spec.id, u64::MAX));
        for (key, &(added, removed)) in keys {
            m.capacity_added += added;
            m.capacity_removed += removed;
            if events.closed.contains(key) {
                m.slots_closed += 1;
                continue;
            }
            let total = gpu.get(key).copied().unwrap_or_default();
            m.gpu_hours_total += total;
            if total != added - removed {
                return Err(Failure::new(
                    FailureKind::GpuHoursNotConserved,
                    format!(
                        "{}: accounts hold {total} GPUs; capacity added {added} − removed {removed} = {}",
                        key_name(key),
                        added - removed
                    ),
                )
                .at_cmd(last_seq));
            }
        }
        markets.push(m);
    }
    Ok(markets)
}

/// Per account: the balances the events give equal the engine's.
fn check_accounts(
    engine: &Engine,
    events: &EventBalances,
    ids: &[AccountId],
    last_seq: u64,
) -> Finding<()> {
    for &id in ids {
        let view = engine.balances(id).expect("listed accounts exist");
        let computed = events.accounts.get(&id).cloned().unwrap_or_default();
        let usd = view.usd.available + view.usd.held;
        let mut wrong = (computed.usd != usd).then(|| format!("USD {} vs {usd}", computed.usd));
        if (computed.escrow, computed.pending) != (view.usd.escrow, view.usd.pending) {
            wrong = Some(format!(
                "escrow {} and pending {} vs {} and {}",
                computed.escrow, computed.pending, view.usd.escrow, view.usd.pending
            ));
        }
        for p in &view.gpus {
            let q = p.balance.available + p.balance.held;
            let key = (p.market, p.slot);
            if computed.gpu(&key) != q {
                wrong = Some(format!(
                    "GPUs in {} {} vs {q}",
                    key_name(&key),
                    computed.gpu(&key)
                ));
            }
        }
        for (key, q) in &computed.gpu_hours {
            if !q.is_zero() && !view.gpus.iter().any(|p| (p.market, p.slot) == *key) {
                wrong = Some(format!("GPUs in {} {q} vs 0", key_name(key)));
            }
        }
        if let Some(w) = wrong {
            return Err(Failure::new(
                FailureKind::BalanceMismatch,
                format!("account {id}: events give {w} in the engine"),
            )
            .at_cmd(last_seq));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpux_engine::event::{CapacityMoved, CashMoved};

    fn engine_with_money() -> (Engine, EventBalances) {
        let mut engine: Engine = Engine::new();
        let mut events = Vec::new();
        let lines = [
            r#"{"v":3,"ts_ns":1,"command":{"type":"list_market","market":"h100.us","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":10}}"#,
            r#"{"v":3,"ts_ns":1,"command":{"type":"create_account","account":1}}"#,
            r#"{"v":3,"ts_ns":1,"command":{"type":"deposit","account":1,"amount":"100"}}"#,
            r#"{"v":3,"ts_ns":1,"command":{"type":"add_capacity","account":1,"market":"h100.us","from_slot":3600,"to_slot":3600,"quantity":"5"}}"#,
        ];
        for (i, l) in lines.iter().enumerate() {
            engine.apply_json(i as u64 + 1, 1, l.as_bytes(), &mut events);
        }
        let mut b = EventBalances::default();
        events.iter().for_each(|e| b.apply(e));
        (engine, b)
    }

    #[test]
    fn balanced_books_pass_the_end_checks() {
        let (engine, b) = engine_with_money();
        let end = check_end(&engine, &b, 4).unwrap();
        assert_eq!(end.usd_total, Decimal::from(100));
        assert_eq!(end.markets[0].gpu_hours_total, Decimal::from(5));
        assert_eq!(end.accounts, 2);
    }

    #[test]
    fn usd_that_the_events_do_not_account_for_is_a_conservation_break() {
        let (engine, mut b) = engine_with_money();
        b.apply(&Event::Deposited(CashMoved {
            account: 1,
            amount: Decimal::from(7),
            available: Decimal::from(107),
        }));
        let f = check_end(&engine, &b, 4).err().unwrap();
        assert_eq!(f.error, FailureKind::UsdNotConserved);
        assert_eq!(f.cmd_seq, Some(4));
    }

    #[test]
    fn gpu_hours_that_the_events_do_not_account_for_are_a_conservation_break() {
        let (engine, mut b) = engine_with_money();
        b.apply(&Event::CapacityRemoved(CapacityMoved {
            account: 1,
            market: "h100.us".parse().unwrap(),
            from_slot: 3600,
            to_slot: 3600,
            quantity: Decimal::from(2),
        }));
        let f = check_end(&engine, &b, 4).err().unwrap();
        assert_eq!(f.error, FailureKind::GpuHoursNotConserved);
    }

    #[test]
    fn usd_moved_between_accounts_behind_the_events_back_is_a_balance_mismatch() {
        let (engine, mut b) = engine_with_money();
        b.accounts.get_mut(&1).unwrap().usd -= Decimal::ONE;
        b.accounts.entry(0).or_default().usd += Decimal::ONE;
        let f = check_end(&engine, &b, 4).err().unwrap();
        assert_eq!(f.error, FailureKind::BalanceMismatch);
    }
}
