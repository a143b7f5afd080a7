//! `gpux replay statement --data DIR --account ID`: one account's history, in
//! ledger order, with running balances computed from the events alone, reconciled
//! at the end against the engine's state at the head.
//!
//! Entries: account opened, deposits, withdrawals, capacity added and removed,
//! orders accepted and amended, fills (side, maker/taker, price, quantity,
//! notional, fee), cancels with their reason, mass cancels, rejections — and, for
//! the fee account 0, the fee income of every trade. Each entry carries the
//! account's running USD total and, when it concerns a market, its running
//! GPU-hours there (totals are available + held: holds only move balances between
//! the two halves).
//!
//! The ledger is re-run from genesis while it is read (every event is checked
//! against the engine), so the engine at the end is the head's state and the
//! statement's events are exactly the stored ones.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use gpux_engine::event::{Rejection, TradeExecuted};
use gpux_engine::{
    AccountId, AccountView, CancelReason, ClientOrderId, CommandKind, Engine, Event, MarketId,
    OrderType, Side, TimeInForce, FEE_ACCOUNT,
};
use gpux_ledger::{LedgerReader, Store};
use gpux_sequencer::recovery::Replayer;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::balances::{self, EventTotals, Role};
use crate::error::{Failure, FailureKind, Finding, Outcome, Result};
use crate::progress::Progress;

/// One line of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The command that caused it.
    pub cmd_seq: u64,
    /// The event it comes from.
    pub event_seq: u64,
    /// The command's timestamp.
    pub ts_ns: u64,
    /// What happened (`kind` and its fields).
    #[serde(flatten)]
    pub item: Item,
    /// The account's USD (available + held) after it.
    pub usd: Decimal,
    /// The account's GPU-hours in the entry's market after it, if it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_hours: Option<Decimal>,
}

/// What a statement entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    /// The account was opened.
    AccountCreated,
    /// USD credited from outside.
    Deposit {
        /// USD.
        amount: Decimal,
    },
    /// USD paid out.
    Withdrawal {
        /// USD.
        amount: Decimal,
    },
    /// GPU-hours added to sell.
    CapacityAdded {
        /// The market.
        market: MarketId,
        /// GPU-hours.
        quantity: Decimal,
    },
    /// GPU-hours taken back.
    CapacityRemoved {
        /// The market.
        market: MarketId,
        /// GPU-hours.
        quantity: Decimal,
    },
    /// An order passed validation; its hold was taken.
    OrderAccepted {
        /// The order.
        order: u64,
        /// The market.
        market: MarketId,
        /// Buy or sell.
        side: Side,
        /// Limit or market.
        order_type: OrderType,
        /// Limit price (absent for market orders).
        #[serde(skip_serializing_if = "Option::is_none")]
        price: Option<Decimal>,
        /// Ordered GPU-hours.
        quantity: Decimal,
        /// Time in force.
        time_in_force: TimeInForce,
        /// The client's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_order_id: Option<ClientOrderId>,
    },
    /// An open order's price and/or quantity changed.
    OrderAmended {
        /// The order.
        order: u64,
        /// The market.
        market: MarketId,
        /// Its side.
        side: Side,
        /// Price before.
        old_price: Decimal,
        /// Open quantity before.
        old_quantity: Decimal,
        /// Price after.
        price: Decimal,
        /// Open quantity after.
        quantity: Decimal,
        /// Whether it kept its queue position.
        priority_kept: bool,
    },
    /// A trade of one of the account's orders.
    Fill {
        /// The trade.
        trade: u64,
        /// The account's order.
        order: u64,
        /// The market.
        market: MarketId,
        /// The account's side.
        side: Side,
        /// Maker (resting) or taker (incoming).
        role: Role,
        /// USD per GPU-hour (the maker's price).
        price: Decimal,
        /// GPU-hours.
        quantity: Decimal,
        /// `price × quantity`.
        notional: Decimal,
        /// USD fee the account paid.
        fee: Decimal,
    },
    /// The fee account's income from one trade (account 0 only).
    FeeIncome {
        /// The trade.
        trade: u64,
        /// The market.
        market: MarketId,
        /// Maker fee + taker fee.
        amount: Decimal,
    },
    /// An order (or an incoming order's remainder) was cancelled.
    OrderCancelled {
        /// The order.
        order: u64,
        /// The market.
        market: MarketId,
        /// Its side.
        side: Side,
        /// Its limit price (absent for market orders).
        #[serde(skip_serializing_if = "Option::is_none")]
        price: Option<Decimal>,
        /// GPU-hours cancelled.
        quantity: Decimal,
        /// Why.
        reason: CancelReason,
        /// Whether it was resting on the book.
        resting: bool,
    },
    /// A mass cancel finished.
    MassCancelled {
        /// The market it was limited to.
        #[serde(skip_serializing_if = "Option::is_none")]
        market: Option<MarketId>,
        /// Orders cancelled.
        count: u64,
    },
    /// A command for the account was refused.
    Rejected {
        /// What was refused.
        command: CommandKind,
        /// Why (the stable reject code).
        reason: gpux_engine::RejectReason,
        /// The market it named.
        #[serde(skip_serializing_if = "Option::is_none")]
        market: Option<MarketId>,
        /// The order it named.
        #[serde(skip_serializing_if = "Option::is_none")]
        order: Option<u64>,
        /// The client order id it named.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_order_id: Option<ClientOrderId>,
    },
}

/// Sums over the statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// USD deposited.
    pub deposits: Decimal,
    /// USD withdrawn.
    pub withdrawals: Decimal,
    /// Fills.
    pub fills: u64,
    /// Notional of buy fills.
    pub bought_notional: Decimal,
    /// Notional of sell fills.
    pub sold_notional: Decimal,
    /// Fees paid.
    pub fees_paid: Decimal,
    /// Fees received (the fee account).
    pub fee_income: Decimal,
    /// Orders accepted.
    pub orders_accepted: u64,
    /// Cancels (each order or remainder).
    pub cancels: u64,
    /// Rejected commands.
    pub rejections: u64,
}

/// The engine's view of the account at the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineBalances {
    /// USD, available + held.
    pub usd_total: Decimal,
    /// GPU-hours per market, available + held (non-zero markets).
    pub gpu_hours_total: BTreeMap<MarketId, Decimal>,
    /// The engine's balances as it reports them.
    pub balances: AccountView,
}

/// An account's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// Equal to `reconciled`.
    pub ok: bool,
    /// The account.
    pub account: AccountId,
    /// The statement runs to this command (the head).
    pub last_seq: u64,
    /// The history, in ledger order.
    pub entries: Vec<Entry>,
    /// Sums over the entries.
    pub totals: Totals,
    /// Final totals computed from the events alone.
    pub computed: EventTotals,
    /// The engine's balances at the head.
    pub engine: EngineBalances,
    /// Whether `computed` equals the engine's totals, USD and every market.
    pub reconciled: bool,
    /// What differs, when not reconciled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
}

/// The statement of `account` in the ledger in `data` (opened read-only).
pub fn statement(
    data: &Path,
    account: AccountId,
    progress: &Progress,
) -> Result<Finding<Statement>> {
    let ledger = crate::open_or_fail(data)?;
    statement_reader(&ledger.reader(), account, progress)
}

/// `gpux replay statement`: writes the statement as indented JSON to `out`; an
/// unreconciled statement is written too and is the outcome's failure.
pub fn run(
    data: &Path,
    account: AccountId,
    progress: &Progress,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let r = statement(data, account, progress).and_then(|f| match f {
        Ok(s) => {
            crate::write_json_pretty(out, &s)?;
            Ok(if s.reconciled {
                Outcome::Success
            } else {
                Outcome::Failure(
                    Failure::new(FailureKind::NotReconciled, s.differences.join("; "))
                        .at_cmd(s.last_seq),
                )
            })
        }
        Err(f) => crate::write_failure(out, f),
    });
    crate::settle(out, r)
}

/// The statement through any reader.
pub fn statement_reader<S: Store>(
    reader: &LedgerReader<S>,
    account: AccountId,
    progress: &Progress,
) -> Result<Finding<Statement>> {
    let head = reader.head()?;
    let mut engine: Engine = Engine::new();
    let mut replayer = Replayer::new(reader, 1, 1, head.last_cmd_seq)?;
    let mut b = Builder {
        account,
        entries: Vec::new(),
        totals: Totals::default(),
        running: EventTotals::default(),
    };
    let bar = progress.bar(head.last_cmd_seq, "statement");
    while let Some(step) = replayer.step(&mut engine)? {
        let c = step.command;
        if c.cmd_seq % 1024 == 0 {
            bar.set(c.cmd_seq);
        }
        for (i, event) in step.produced.iter().enumerate() {
            b.event(c.cmd_seq, c.first_event_seq + i as u64, c.ts_ns, event);
        }
    }
    drop(bar);
    let Some(view) = engine.balances(account) else {
        return Ok(Err(Failure::new(
            FailureKind::UnknownAccount,
            format!(
                "account {account} does not exist at cmd_seq {}",
                head.last_cmd_seq
            ),
        )));
    };
    let (usd_total, gpu_hours_total, differences) = reconcile(&b.running, &view);
    let reconciled = differences.is_empty();
    Ok(Ok(Statement {
        ok: reconciled,
        account,
        last_seq: head.last_cmd_seq,
        entries: b.entries,
        totals: b.totals,
        computed: b.running,
        engine: EngineBalances {
            usd_total,
            gpu_hours_total,
            balances: view,
        },
        reconciled,
        differences,
    }))
}

/// The engine's totals for an account (USD, GPU-hours per market), and every
/// difference from the totals the events give.
fn reconcile(
    running: &EventTotals,
    view: &AccountView,
) -> (Decimal, BTreeMap<MarketId, Decimal>, Vec<String>) {
    let usd_total = view.usd.available + view.usd.held;
    let gpu_hours_total: BTreeMap<MarketId, Decimal> = view
        .gpu_hours
        .iter()
        .map(|p| (p.market, p.balance.available + p.balance.held))
        .collect();
    let mut differences = Vec::new();
    if running.usd != usd_total {
        differences.push(format!(
            "USD: events give {}, the engine holds {usd_total}",
            running.usd
        ));
    }
    let markets: std::collections::BTreeSet<MarketId> = gpu_hours_total
        .keys()
        .chain(running.gpu_hours.keys())
        .copied()
        .collect();
    for m in markets {
        let engine_q = gpu_hours_total.get(&m).copied().unwrap_or_default();
        if running.gpu(&m) != engine_q {
            differences.push(format!(
                "GPU-hours in {m}: events give {}, the engine holds {engine_q}",
                running.gpu(&m)
            ));
        }
    }
    (usd_total, gpu_hours_total, differences)
}

/// Accumulates one account's entries and running totals.
struct Builder {
    account: AccountId,
    entries: Vec<Entry>,
    totals: Totals,
    running: EventTotals,
}

impl Builder {
    fn push(&mut self, at: (u64, u64, u64), item: Item, market: Option<MarketId>) {
        let (cmd_seq, event_seq, ts_ns) = at;
        self.entries.push(Entry {
            cmd_seq,
            event_seq,
            ts_ns,
            item,
            usd: self.running.usd,
            gpu_hours: market.map(|m| self.running.gpu(&m)),
        });
    }

    fn rejected(&mut self, at: (u64, u64, u64), r: &Rejection) {
        if r.account != Some(self.account) {
            return;
        }
        self.totals.rejections += 1;
        self.push(
            at,
            Item::Rejected {
                command: r.command,
                reason: r.reason,
                market: r.market,
                order: r.order,
                client_order_id: r.client_order_id,
            },
            None,
        );
    }

    fn event(&mut self, cmd_seq: u64, event_seq: u64, ts_ns: u64, event: &Event) {
        let at = (cmd_seq, event_seq, ts_ns);
        let me = self.account;
        if self.balance_event(at, event) {
            return;
        }
        match event {
            Event::OrderAccepted(o) if o.account == me => {
                self.totals.orders_accepted += 1;
                let item = Item::OrderAccepted {
                    order: o.order,
                    market: o.market,
                    side: o.side,
                    order_type: o.order_type,
                    price: o.price,
                    quantity: o.quantity,
                    time_in_force: o.time_in_force,
                    client_order_id: o.client_order_id,
                };
                self.push(at, item, Some(o.market));
            }
            Event::OrderAmended(a) if a.account == me => {
                let item = Item::OrderAmended {
                    order: a.order,
                    market: a.market,
                    side: a.side,
                    old_price: a.old_price,
                    old_quantity: a.old_quantity,
                    price: a.price,
                    quantity: a.quantity,
                    priority_kept: a.priority_kept,
                };
                self.push(at, item, Some(a.market));
            }
            Event::OrderCancelled(o) if o.account == me => {
                self.totals.cancels += 1;
                let item = Item::OrderCancelled {
                    order: o.order,
                    market: o.market,
                    side: o.side,
                    price: o.price,
                    quantity: o.quantity,
                    reason: o.reason,
                    resting: o.resting,
                };
                self.push(at, item, Some(o.market));
            }
            Event::MassCancelled(m) if m.account == me => {
                let item = Item::MassCancelled {
                    market: m.market,
                    count: m.count,
                };
                self.push(at, item, m.market);
            }
            Event::OrderRejected(r) | Event::CommandRejected(r) => self.rejected(at, r),
            Event::TradeExecuted(t) => self.trade(at, t),
            _ => {}
        }
    }

    /// The account's own balance movements (creation, deposits, withdrawals,
    /// capacity); false when `event` is none of them.
    fn balance_event(&mut self, at: (u64, u64, u64), event: &Event) -> bool {
        let me = self.account;
        match event {
            Event::AccountCreated(c) if c.account == me => {
                self.push(at, Item::AccountCreated, None)
            }
            Event::Deposited(c) if c.account == me => {
                self.running.usd += c.amount;
                self.totals.deposits += c.amount;
                self.push(at, Item::Deposit { amount: c.amount }, None);
            }
            Event::Withdrawn(c) if c.account == me => {
                self.running.usd -= c.amount;
                self.totals.withdrawals += c.amount;
                self.push(at, Item::Withdrawal { amount: c.amount }, None);
            }
            Event::CapacityAdded(c) if c.account == me => {
                self.running.add_gpu(c.market, c.quantity);
                let item = Item::CapacityAdded {
                    market: c.market,
                    quantity: c.quantity,
                };
                self.push(at, item, Some(c.market));
            }
            Event::CapacityRemoved(c) if c.account == me => {
                self.running.add_gpu(c.market, -c.quantity);
                let item = Item::CapacityRemoved {
                    market: c.market,
                    quantity: c.quantity,
                };
                self.push(at, item, Some(c.market));
            }
            _ => return false,
        }
        true
    }

    /// The account's legs of a trade, and the fee income when the account is the
    /// fee account.
    fn trade(&mut self, at: (u64, u64, u64), t: &TradeExecuted) {
        let me = self.account;
        for leg in balances::legs(t) {
            if leg.account != me {
                continue;
            }
            self.running.usd += leg.usd;
            self.running.add_gpu(t.market, leg.gpu_hours);
            let notional = balances::notional(t);
            self.totals.fills += 1;
            self.totals.fees_paid += leg.fee;
            match leg.side {
                Side::Buy => self.totals.bought_notional += notional,
                Side::Sell => self.totals.sold_notional += notional,
            }
            let item = Item::Fill {
                trade: t.trade,
                order: leg.order,
                market: t.market,
                side: leg.side,
                role: leg.role,
                price: t.price,
                quantity: t.quantity,
                notional,
                fee: leg.fee,
            };
            self.push(at, item, Some(t.market));
        }
        let fees = t.maker_fee + t.taker_fee;
        if me == FEE_ACCOUNT && !fees.is_zero() {
            self.running.usd += fees;
            self.totals.fee_income += fees;
            let item = Item::FeeIncome {
                trade: t.trade,
                market: t.market,
                amount: fees,
            };
            self.push(at, item, None);
        }
    }
}
