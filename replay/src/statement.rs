//! `gpux replay statement --data DIR --account ID`: one account's history, in
//! ledger order, with running balances computed from the events alone, reconciled
//! at the end against the engine's state at the head.
//!
//! Entries: account opened, deposits, withdrawals, capacity added and removed
//! (with their slot range), orders accepted and amended, fills (slot, side,
//! maker/taker, price, quantity, notional, fee), cancels with their reason, mass
//! cancels, rejections, deliveries (as provider or holder) and expired inventory
//! at each gate closure — and, for the fee account 0, the fee income of every
//! trade. Slots are written `2026-12-07T09:00Z`. Each entry carries the account's
//! running USD total and, when it concerns one slot, its running GPUs there
//! (totals are available + held: holds only move balances between the two
//! halves; a slot's GPUs leave the account when its gate closes).
//!
//! The ledger is re-run from genesis while it is read (every event is checked
//! against the engine), so the engine at the end is the head's state and the
//! statement's events are exactly the stored ones.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use gpux_engine::event::{Rejection, TradeExecuted, TradeSettled};
use gpux_engine::slot::format_slot;
use gpux_engine::{
    AccountId, AccountView, CancelReason, ClientOrderId, CommandKind, Engine, Event, MarketId,
    OrderType, Side, TimeInForce, UsdView, FEE_ACCOUNT,
};
use gpux_ledger::{LedgerReader, Store};
use gpux_sequencer::recovery::Replayer;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::balances::{self, key_name, serialize_books, EventBalances, EventTotals, Role, SlotKey};
use crate::error::{Failure, FailureKind, Finding, Outcome, Result};
use crate::progress::Progress;
use crate::state::PositionState;

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
    /// The account's USD in escrow after it (paid for GPUs not yet delivered).
    pub escrow: Decimal,
    /// The account's USD pending after it (owed for GPUs sold, until delivered).
    pub pending: Decimal,
    /// The account's GPUs in the entry's slot after it, if it names one slot.
    #[serde(rename = "gpus", skip_serializing_if = "Option::is_none")]
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
    /// GPUs added to sell, in every slot of a range.
    CapacityAdded {
        /// The market.
        market: MarketId,
        /// The first slot.
        from_slot: String,
        /// The last slot (included).
        to_slot: String,
        /// GPUs in each slot.
        quantity: Decimal,
    },
    /// GPUs taken back, in every slot of a range.
    CapacityRemoved {
        /// The market.
        market: MarketId,
        /// The first slot.
        from_slot: String,
        /// The last slot (included).
        to_slot: String,
        /// GPUs in each slot.
        quantity: Decimal,
    },
    /// A closed slot's delivery naming the account: as `provider` it delivers
    /// its GPUs, as `holder` it receives them (`both`: its own GPUs, bought back).
    Delivery {
        /// The schedule entry.
        entry: u64,
        /// The market.
        market: MarketId,
        /// The slot delivered.
        slot: String,
        /// `provider`, `holder` or `both`.
        role: &'static str,
        /// Who delivers.
        provider: AccountId,
        /// Who receives.
        holder: AccountId,
        /// GPUs for the hour.
        quantity: Decimal,
        /// The trades the GPUs went through.
        trades: Vec<u64>,
    },
    /// The account's unsold inventory in a closed slot expired.
    InventoryExpired {
        /// The market.
        market: MarketId,
        /// The slot.
        slot: String,
        /// GPUs.
        quantity: Decimal,
    },
    /// An order passed validation; its hold was taken.
    OrderAccepted {
        /// The order.
        order: u64,
        /// The market.
        market: MarketId,
        /// The delivery slot (a window's first).
        slot: String,
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
        /// The delivery slot (a window's first).
        slot: String,
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
        /// The delivery slot.
        slot: String,
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
    /// A settled part of a trade the account sold: paid for what was delivered.
    Payment {
        /// The delivery entry settled.
        entry: u64,
        /// The trade.
        trade: u64,
        /// GPUs of the trade in the entry.
        quantity: Decimal,
        /// Of which delivered.
        delivered: Decimal,
        /// USD paid (the delivered notional less the account's fee on it).
        amount: Decimal,
    },
    /// A settled part of a trade the account bought: refunded for what was not
    /// delivered.
    Refund {
        /// The delivery entry settled.
        entry: u64,
        /// The trade.
        trade: u64,
        /// GPUs of the trade in the entry.
        quantity: Decimal,
        /// Of which delivered.
        delivered: Decimal,
        /// USD refunded (the undelivered notional and the account's fee on it).
        amount: Decimal,
    },
    /// A delivery entry naming the account settled: its slot, what was delivered
    /// and on what basis (its payments and refunds are the entries before it).
    Settlement {
        /// The entry.
        entry: u64,
        /// The market.
        market: MarketId,
        /// The slot delivered.
        slot: String,
        /// `provider`, `holder` or `both`.
        role: &'static str,
        /// The entry's GPUs.
        quantity: Decimal,
        /// Of which delivered.
        delivered: Decimal,
        /// `unreported`, `reported` or `resolved`.
        basis: gpux_engine::event::SettlementBasis,
        /// A resolution found less than the provider reported.
        dispute_lost: bool,
    },
    /// The fee account's income from a settled part of a trade (account 0 only).
    FeeIncome {
        /// The delivery entry settled.
        entry: u64,
        /// The trade.
        trade: u64,
        /// Both sides' fees on the delivered part.
        amount: Decimal,
    },
    /// An order (or an incoming order's remainder) was cancelled.
    OrderCancelled {
        /// The order.
        order: u64,
        /// The market.
        market: MarketId,
        /// The delivery slot (a window's first).
        slot: String,
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
        /// The slot it was limited to.
        #[serde(skip_serializing_if = "Option::is_none")]
        slot: Option<String>,
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
    /// Fees of the account's fills (charged at settlement on the delivered part
    /// only, so at most this is paid).
    pub fill_fees: Decimal,
    /// USD paid to the account for GPUs it sold, once delivered.
    pub paid_on_delivery: Decimal,
    /// USD refunded to the account for GPUs it bought that were not delivered.
    pub refunded: Decimal,
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
    /// GPUs per (market, slot), available + held.
    #[serde(rename = "gpus_total", serialize_with = "serialize_books")]
    pub gpu_hours_total: BTreeMap<SlotKey, Decimal>,
    /// USD: available, held, escrow and pending.
    pub usd: UsdView,
    /// GPUs per (market, slot), available and held, as the engine reports them.
    pub gpus: Vec<PositionState>,
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
        balances: EventBalances::default(),
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
    let running = b.running();
    let (usd_total, gpu_hours_total, mut differences) = reconcile(&running, &view);
    if let Some(m) = &b.balances.settlement_mismatch {
        differences.push(m.clone());
    }
    let reconciled = differences.is_empty();
    Ok(Ok(Statement {
        ok: reconciled,
        account,
        last_seq: head.last_cmd_seq,
        entries: b.entries,
        totals: b.totals,
        computed: running,
        engine: EngineBalances {
            usd_total,
            gpu_hours_total,
            usd: view.usd,
            gpus: view.gpus.iter().map(PositionState::from).collect(),
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
) -> (Decimal, BTreeMap<SlotKey, Decimal>, Vec<String>) {
    let usd_total = view.usd.available + view.usd.held;
    let gpu_hours_total: BTreeMap<SlotKey, Decimal> = view
        .gpus
        .iter()
        .map(|p| ((p.market, p.slot), p.balance.available + p.balance.held))
        .collect();
    let mut differences = Vec::new();
    if running.usd != usd_total {
        differences.push(format!(
            "USD: events give {}, the engine holds {usd_total}",
            running.usd
        ));
    }
    if (running.escrow, running.pending) != (view.usd.escrow, view.usd.pending) {
        differences.push(format!(
            "USD in escrow and pending: events give {} and {}, the engine {} and {}",
            running.escrow, running.pending, view.usd.escrow, view.usd.pending
        ));
    }
    let markets: std::collections::BTreeSet<SlotKey> = gpu_hours_total
        .keys()
        .chain(running.gpu_hours.keys())
        .copied()
        .collect();
    for m in markets {
        let engine_q = gpu_hours_total.get(&m).copied().unwrap_or_default();
        if running.gpu(&m) != engine_q {
            differences.push(format!(
                "GPUs in {}: events give {}, the engine holds {engine_q}",
                key_name(&m),
                running.gpu(&m)
            ));
        }
    }
    (usd_total, gpu_hours_total, differences)
}

/// An account's role in a delivery: `provider`, `holder`, or `both` (its own GPUs
/// bought back).
fn role(provider: bool, holder: bool) -> &'static str {
    match (provider, holder) {
        (true, true) => "both",
        (true, false) => "provider",
        _ => "holder",
    }
}

/// Accumulates one account's entries; its running totals are the balances every
/// account has from the events (a settlement needs the trade's other side).
struct Builder {
    account: AccountId,
    entries: Vec<Entry>,
    totals: Totals,
    balances: EventBalances,
}

impl Builder {
    /// The account's totals so far.
    fn running(&self) -> EventTotals {
        self.balances
            .accounts
            .get(&self.account)
            .cloned()
            .unwrap_or_default()
    }

    fn push(&mut self, at: (u64, u64, u64), item: Item, market: Option<SlotKey>) {
        let (cmd_seq, event_seq, ts_ns) = at;
        let running = self.running();
        self.entries.push(Entry {
            cmd_seq,
            event_seq,
            ts_ns,
            item,
            usd: running.usd,
            escrow: running.escrow,
            pending: running.pending,
            gpu_hours: market.map(|m| running.gpu(&m)),
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
        self.balances.apply(event);
        if self.balance_event(at, event) || self.slot_event(at, event) {
            return;
        }
        match event {
            Event::OrderAccepted(o) if o.account == me => {
                self.totals.orders_accepted += 1;
                let item = Item::OrderAccepted {
                    order: o.order,
                    market: o.market,
                    slot: format_slot(o.slot),
                    side: o.side,
                    order_type: o.order_type,
                    price: o.price,
                    quantity: o.quantity,
                    time_in_force: o.time_in_force,
                    client_order_id: o.client_order_id,
                };
                let key = o.to_slot.is_none().then_some((o.market, o.slot));
                self.push(at, item, key);
            }
            Event::OrderAmended(a) if a.account == me => {
                let item = Item::OrderAmended {
                    order: a.order,
                    market: a.market,
                    slot: format_slot(a.slot),
                    side: a.side,
                    old_price: a.old_price,
                    old_quantity: a.old_quantity,
                    price: a.price,
                    quantity: a.quantity,
                    priority_kept: a.priority_kept,
                };
                self.push(at, item, Some((a.market, a.slot)));
            }
            Event::OrderCancelled(o) if o.account == me => {
                self.totals.cancels += 1;
                let item = Item::OrderCancelled {
                    order: o.order,
                    market: o.market,
                    slot: format_slot(o.slot),
                    side: o.side,
                    price: o.price,
                    quantity: o.quantity,
                    reason: o.reason,
                    resting: o.resting,
                };
                self.push(at, item, Some((o.market, o.slot)));
            }
            Event::MassCancelled(m) if m.account == me => {
                let item = Item::MassCancelled {
                    market: m.market,
                    slot: m.slot.map(format_slot),
                    count: m.count,
                };
                self.push(at, item, m.market.zip(m.slot));
            }
            Event::OrderRejected(r) | Event::CommandRejected(r) => self.rejected(at, r),
            Event::TradeExecuted(t) => self.trade(at, t),
            Event::TradeSettled(t) => self.settled(at, t),
            _ => {}
        }
    }

    /// What a slot's gate closure does to the account — deliveries naming it, its
    /// expired inventory, the slot's GPUs leaving its balance — and the settlement
    /// of its deliveries; false when `event` is none of them.
    fn slot_event(&mut self, at: (u64, u64, u64), event: &Event) -> bool {
        let me = self.account;
        match event {
            Event::DeliveryScheduled(d) if d.provider == me || d.holder == me => {
                let role = role(d.provider == me, d.holder == me);
                let item = Item::Delivery {
                    entry: d.entry,
                    market: d.market,
                    slot: format_slot(d.slot),
                    role,
                    provider: d.provider,
                    holder: d.holder,
                    quantity: d.quantity,
                    trades: d.trades.clone(),
                };
                self.push(at, item, Some((d.market, d.slot)));
            }
            Event::InventoryExpired(e) if e.account == me => {
                let item = Item::InventoryExpired {
                    market: e.market,
                    slot: format_slot(e.slot),
                    quantity: e.quantity,
                };
                self.push(at, item, Some((e.market, e.slot)));
            }
            // The slot's GPUs are delivered or expired: they leave the account.
            Event::SlotClosed(_) => {}
            Event::DeliverySettled(d) if d.provider == me || d.holder == me => {
                let item = Item::Settlement {
                    entry: d.entry,
                    market: d.market,
                    slot: format_slot(d.slot),
                    role: role(d.provider == me, d.holder == me),
                    quantity: d.quantity,
                    delivered: d.delivered,
                    basis: d.basis,
                    dispute_lost: d.dispute_lost,
                };
                self.push(at, item, None);
            }
            _ => return false,
        }
        true
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
                self.totals.deposits += c.amount;
                self.push(at, Item::Deposit { amount: c.amount }, None);
            }
            Event::Withdrawn(c) if c.account == me => {
                self.totals.withdrawals += c.amount;
                self.push(at, Item::Withdrawal { amount: c.amount }, None);
            }
            Event::CapacityAdded(c) | Event::CapacityRemoved(c) if c.account == me => {
                let added = matches!(event, Event::CapacityAdded(_));
                let (market, quantity) = (c.market, c.quantity);
                let (from_slot, to_slot) = (format_slot(c.from_slot), format_slot(c.to_slot));
                let item = if added {
                    Item::CapacityAdded {
                        market,
                        from_slot,
                        to_slot,
                        quantity,
                    }
                } else {
                    Item::CapacityRemoved {
                        market,
                        from_slot,
                        to_slot,
                        quantity,
                    }
                };
                let one = (c.from_slot == c.to_slot).then_some((c.market, c.from_slot));
                self.push(at, item, one);
            }
            _ => return false,
        }
        true
    }

    /// The account's legs of a trade.
    fn trade(&mut self, at: (u64, u64, u64), t: &TradeExecuted) {
        let me = self.account;
        for leg in balances::legs(t) {
            if leg.account != me {
                continue;
            }
            let notional = balances::notional(t);
            self.totals.fills += 1;
            self.totals.fill_fees += leg.fee;
            match leg.side {
                Side::Buy => self.totals.bought_notional += notional,
                Side::Sell => self.totals.sold_notional += notional,
            }
            let item = Item::Fill {
                trade: t.trade,
                order: leg.order,
                market: t.market,
                slot: format_slot(t.slot),
                side: leg.side,
                role: leg.role,
                price: t.price,
                quantity: t.quantity,
                notional,
                fee: leg.fee,
            };
            self.push(at, item, Some((t.market, t.slot)));
        }
    }

    /// The account's side of a settled part of a trade: paid as its seller,
    /// refunded as its buyer, fee income as the fee account.
    fn settled(&mut self, at: (u64, u64, u64), s: &TradeSettled) {
        let me = self.account;
        let (entry, trade, quantity, delivered) = (s.entry, s.trade, s.quantity, s.delivered);
        if s.seller == me {
            self.totals.paid_on_delivery += s.paid;
            let item = Item::Payment {
                entry,
                trade,
                quantity,
                delivered,
                amount: s.paid,
            };
            self.push(at, item, None);
        }
        if s.buyer == me {
            self.totals.refunded += s.refunded;
            let item = Item::Refund {
                entry,
                trade,
                quantity,
                delivered,
                amount: s.refunded,
            };
            self.push(at, item, None);
        }
        if me == FEE_ACCOUNT && !s.fees.is_zero() {
            self.totals.fee_income += s.fees;
            let item = Item::FeeIncome {
                entry,
                trade,
                amount: s.fees,
            };
            self.push(at, item, None);
        }
    }
}
