//! `gpux replay audit --data DIR`: re-run the ledger from genesis and check, after
//! every command:
//!
//! - the engine's own invariants ([`Engine::check_invariants`]): no crossed book,
//!   holds equal to what open orders need, balances summing to the engine's
//!   totals, consistent indexes;
//! - no crossed book (best bid < best ask) in every market the command touched;
//! - the engine's USD total equals deposits − withdrawals taken from the
//!   `deposited`/`withdrawn` events;
//!
//! and at the end, independently of the engine's counters, from the events alone:
//! the sum of every account's USD (available + held) equals deposits −
//! withdrawals, each market's GPU-hours equal capacity added − removed, and every
//! account's balances recomputed from the events equal the engine's. Produced
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

use crate::balances::EventBalances;
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

/// One market's conservation figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketAudit {
    /// The market.
    pub market: MarketId,
    /// GPU-hours added by `capacity_added` events.
    pub capacity_added: Decimal,
    /// GPU-hours removed by `capacity_removed` events.
    pub capacity_removed: Decimal,
    /// Sum of every account's GPU-hours here (available + held) in the engine.
    pub gpu_hours_total: Decimal,
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
    /// Sum of every account's USD (available + held) in the engine, fee account
    /// included; equals `deposits − withdrawals`.
    pub usd_total: Decimal,
    /// The fee account's USD.
    pub fee_account_usd: Decimal,
    /// Per market, in listing order.
    pub markets: Vec<MarketAudit>,
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
    let mut replayer = Replayer::new(reader, 1, 1, head.last_cmd_seq)?;
    let mut invariant_checks = 0u64;
    let mut book_checks = 0u64;
    let mut touched: Vec<MarketId> = Vec::new();
    let bar = progress.bar(head.last_cmd_seq, "audit");
    loop {
        let step = match replayer.step(&mut engine).map_err(ReplayError::from) {
            Ok(Some(step)) => step,
            Ok(None) => break,
            Err(ReplayError::Failed(f)) => return Ok(Err(*f)),
            Err(e) => return Err(e),
        };
        let seq = step.command.cmd_seq;
        touched.clear();
        for event in step.produced {
            balances.apply(event);
            if let Some(m) = book_market(event) {
                if !touched.contains(&m) {
                    touched.push(m);
                }
            }
        }
        if seq % 1024 == 0 {
            bar.set(seq);
        }
        if seq % every == 0 || seq == head.last_cmd_seq {
            invariant_checks += 1;
            if let Err(e) = engine.check_invariants() {
                return Ok(Err(
                    Failure::new(FailureKind::InvariantBroken, e).at_cmd(seq)
                ));
            }
        }
        book_checks += touched.len() as u64;
        if let Err(f) =
            check_books(&engine, &touched, seq).and_then(|()| check_usd(&engine, &balances, seq))
        {
            return Ok(Err(f));
        }
    }
    drop(bar);
    let end = match check_end(&engine, &balances, head.last_cmd_seq) {
        Ok(end) => end,
        Err(f) => return Ok(Err(f)),
    };
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
        accounts_reconciled: end.accounts,
        state_hash: engine.state_hash().to_string(),
    }))
}

/// No book of `markets` is crossed after command `seq`.
fn check_books(engine: &Engine, markets: &[MarketId], seq: u64) -> Finding<()> {
    for m in markets {
        let bid = engine.depth_ticks(m, Side::Buy, 1).first().map(|l| l.0);
        let ask = engine.depth_ticks(m, Side::Sell, 1).first().map(|l| l.0);
        if let (Some(bid), Some(ask)) = (bid, ask) {
            if bid >= ask {
                let spec = engine.market(m).expect("a book's market is listed");
                return Err(Failure::new(
                    FailureKind::CrossedBook,
                    format!(
                        "{m}: best bid {} >= best ask {}",
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

/// The market whose book an event changes, if any.
fn book_market(e: &Event) -> Option<MarketId> {
    match e {
        Event::TradeExecuted(t) => Some(t.market),
        Event::OrderRested(o) => Some(o.market),
        Event::OrderCancelled(o) if o.resting => Some(o.market),
        Event::OrderAmended(a) => Some(a.market),
        _ => None,
    }
}

struct End {
    usd_total: Decimal,
    fee_account_usd: Decimal,
    markets: Vec<MarketAudit>,
    accounts: u64,
}

/// The end-of-run conservation checks: the engine's balances, summed over every
/// account, against the totals taken from the events; then account by account.
fn check_end(engine: &Engine, events: &EventBalances, last_seq: u64) -> Finding<End> {
    let mut usd_total = Decimal::ZERO;
    let mut gpu: BTreeMap<MarketId, Decimal> = BTreeMap::new();
    let mut fee_account_usd = Decimal::ZERO;
    let ids = engine.account_ids();
    for &id in &ids {
        let view = engine.balances(id).expect("listed accounts exist");
        let usd = view.usd.available + view.usd.held;
        usd_total += usd;
        if id == gpux_engine::FEE_ACCOUNT {
            fee_account_usd = usd;
        }
        for p in &view.gpu_hours {
            *gpu.entry(p.market).or_default() += p.balance.available + p.balance.held;
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
    let markets = check_markets(engine, events, &gpu, last_seq)?;
    check_accounts(engine, events, &ids, last_seq)?;
    Ok(End {
        usd_total,
        fee_account_usd,
        markets,
        accounts: ids.len() as u64,
    })
}

/// Per market: the GPU-hours accounts hold (`gpu`) equal capacity added minus
/// removed in the events.
fn check_markets(
    engine: &Engine,
    events: &EventBalances,
    gpu: &BTreeMap<MarketId, Decimal>,
    last_seq: u64,
) -> Finding<Vec<MarketAudit>> {
    let mut markets = Vec::new();
    for spec in engine.markets() {
        let (added, removed) = events.capacity.get(&spec.id).copied().unwrap_or_default();
        let total = gpu.get(&spec.id).copied().unwrap_or_default();
        if total != added - removed {
            return Err(Failure::new(
                FailureKind::GpuHoursNotConserved,
                format!(
                    "{}: accounts hold {total} GPU-hours; capacity added {added} − removed {removed} = {}",
                    spec.id,
                    added - removed
                ),
            )
            .at_cmd(last_seq));
        }
        markets.push(MarketAudit {
            market: spec.id,
            capacity_added: added,
            capacity_removed: removed,
            gpu_hours_total: total,
        });
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
        for p in &view.gpu_hours {
            let q = p.balance.available + p.balance.held;
            if computed.gpu(&p.market) != q {
                wrong = Some(format!(
                    "GPU-hours in {} {} vs {q}",
                    p.market,
                    computed.gpu(&p.market)
                ));
            }
        }
        for (m, q) in &computed.gpu_hours {
            if !q.is_zero() && !view.gpu_hours.iter().any(|p| p.market == *m) {
                wrong = Some(format!("GPU-hours in {m} {q} vs 0"));
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
            r#"{"v":1,"ts_ns":1,"command":{"type":"list_market","market":"h100.us","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":10}}"#,
            r#"{"v":1,"ts_ns":1,"command":{"type":"create_account","account":1}}"#,
            r#"{"v":1,"ts_ns":1,"command":{"type":"deposit","account":1,"amount":"100"}}"#,
            r#"{"v":1,"ts_ns":1,"command":{"type":"add_capacity","account":1,"market":"h100.us","quantity":"5"}}"#,
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
            quantity: Decimal::from(2),
            available: Decimal::from(3),
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
