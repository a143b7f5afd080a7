//! Shared helpers for the engine's integration tests: command builders, a
//! harness that runs every command through the real engine and the reference
//! engine in lockstep, and a one-line text form of events so that scenarios read
//! like a trade blotter.
//!
//! Conventions in the text form (see [`render`]):
//! - prices and quantities appear exactly as the engine formats them (at the
//!   market's tick and lot scale: `2.50`, `10`); USD amounts are normalised
//!   (`0.025`, not `0.025000`);
//! - the default market [`M`] is not named; any other market appears in brackets;
//! - the default slot [`S`] is not named; any other slot appears as `slot N`;
//! - defaults are left out: `stp=cancel_taker`, `post_only=false`, no client id.
#![allow(dead_code)] // each test binary uses its own part of the helpers

use gpux_engine::command::{
    AmendOrder, CancelOrder, CapacityTransfer, CashTransfer, CreateAccount, ListMarket, MassCancel,
    PlaceOrder,
};
use gpux_engine::event::Rejection;
use gpux_engine::{
    Book, Command, CommandKind, Engine, Event, MarketId, NaiveBook, OrderBook, OrderId, OrderType,
    RejectReason, Side, StpMode, TimeInForce,
};
use rust_decimal::Decimal;
use serde::Serialize;

/// The default market: tick 0.01 USD, lot 1 GPU-hour, maker 10 bps, taker 20 bps.
pub const M: &str = "h100-sxm.us-east";
/// A second market: tick 0.05 USD, lot 0.5 GPU-hour, maker 0 bps, taker 25 bps.
pub const N: &str = "a100.eu-west";
/// Where the harness clock starts.
pub const T0: u64 = 1_000;
/// The default delivery slot: 1970-01-01T01:00Z, open from T0 until its gate
/// (300 s before it) under the default listing rules.
pub const S: u64 = 3_600;

pub fn d(s: &str) -> Decimal {
    s.parse()
        .unwrap_or_else(|e| panic!("bad decimal {s:?}: {e}"))
}

pub fn mid(s: &str) -> MarketId {
    s.parse().unwrap()
}

// ----- command builders ------------------------------------------------------

/// A listing command under construction.
#[derive(Debug, Clone)]
pub struct Listing(pub ListMarket);

pub fn list_market(market: &str, tick: &str, lot: &str, maker: u32, taker: u32) -> Listing {
    Listing(ListMarket {
        market: mid(market),
        tick_size: d(tick),
        lot_size: d(lot),
        maker_fee_bps: maker,
        taker_fee_bps: taker,
        min_price: None,
        max_price: None,
        max_order_quantity: None,
        slot_horizon_hours: None,
        gate_closure_secs: None,
        report_window_secs: None,
        dispute_window_secs: None,
    })
}

impl Listing {
    pub fn slots(mut self, horizon_hours: u32, gate_closure_secs: u32) -> Self {
        self.0.slot_horizon_hours = Some(horizon_hours);
        self.0.gate_closure_secs = Some(gate_closure_secs);
        self
    }
    pub fn band(mut self, min_price: &str, max_price: &str) -> Self {
        self.0.min_price = Some(d(min_price));
        self.0.max_price = Some(d(max_price));
        self
    }
    pub fn max_price(mut self, max_price: &str) -> Self {
        self.0.max_price = Some(d(max_price));
        self
    }
    pub fn max_quantity(mut self, quantity: &str) -> Self {
        self.0.max_order_quantity = Some(d(quantity));
        self
    }
}

pub fn create_account(account: u64) -> Command {
    Command::CreateAccount(CreateAccount {
        account: Some(account),
        api_key_sha256: None,
    })
}

pub fn deposit(account: u64, amount: &str) -> Command {
    Command::Deposit(CashTransfer {
        account,
        amount: d(amount),
    })
}

pub fn withdraw(account: u64, amount: &str) -> Command {
    Command::Withdraw(CashTransfer {
        account,
        amount: d(amount),
    })
}

pub fn add_capacity(account: u64, quantity: &str) -> Command {
    add_capacity_in(account, M, quantity)
}

pub fn add_capacity_in(account: u64, market: &str, quantity: &str) -> Command {
    add_capacity_range(account, market, S, S, quantity)
}

/// GPUs in every slot `from..=to` of `market`.
pub fn add_capacity_range(
    account: u64,
    market: &str,
    from: u64,
    to: u64,
    quantity: &str,
) -> Command {
    Command::AddCapacity(CapacityTransfer {
        account,
        market: mid(market),
        from_slot: from,
        to_slot: to,
        quantity: d(quantity),
    })
}

pub fn remove_capacity(account: u64, quantity: &str) -> Command {
    remove_capacity_range(account, M, S, S, quantity)
}

pub fn remove_capacity_range(
    account: u64,
    market: &str,
    from: u64,
    to: u64,
    quantity: &str,
) -> Command {
    Command::RemoveCapacity(CapacityTransfer {
        account,
        market: mid(market),
        from_slot: from,
        to_slot: to,
        quantity: d(quantity),
    })
}

/// A place-order command under construction.
#[derive(Debug, Clone, Copy)]
pub struct Order(pub PlaceOrder);

fn limit(account: u64, side: Side, quantity: &str, price: &str) -> Order {
    Order(PlaceOrder {
        account,
        market: mid(M),
        slot: Some(S),
        window: None,
        colocate: false,
        side,
        order_type: OrderType::Limit,
        price: Some(d(price)),
        quantity: d(quantity),
        time_in_force: None,
        good_till_ns: None,
        post_only: false,
        cap: None,
        client_order_id: None,
        stp: StpMode::CancelTaker,
        min_reliability: None,
    })
}

fn market(account: u64, side: Side, quantity: &str) -> Order {
    Order(PlaceOrder {
        order_type: OrderType::Market,
        price: None,
        ..limit(account, side, quantity, "1").0
    })
}

/// A GTC limit buy of `quantity` GPU-hours at `price` in [`M`].
pub fn buy(account: u64, quantity: &str, price: &str) -> Order {
    limit(account, Side::Buy, quantity, price)
}

/// A GTC limit sell of `quantity` GPU-hours at `price` in [`M`].
pub fn sell(account: u64, quantity: &str, price: &str) -> Order {
    limit(account, Side::Sell, quantity, price)
}

pub fn market_buy(account: u64, quantity: &str) -> Order {
    market(account, Side::Buy, quantity)
}

pub fn market_sell(account: u64, quantity: &str) -> Order {
    market(account, Side::Sell, quantity)
}

impl Order {
    pub fn tif(mut self, tif: TimeInForce) -> Self {
        self.0.time_in_force = Some(tif);
        self
    }
    pub fn ioc(self) -> Self {
        self.tif(TimeInForce::Ioc)
    }
    pub fn fok(self) -> Self {
        self.tif(TimeInForce::Fok)
    }
    pub fn gtd(mut self, good_till_ns: u64) -> Self {
        self.0.good_till_ns = Some(good_till_ns);
        self.tif(TimeInForce::Gtd)
    }
    pub fn post_only(mut self) -> Self {
        self.0.post_only = true;
        self
    }
    pub fn stp(mut self, stp: StpMode) -> Self {
        self.0.stp = stp;
        self
    }
    pub fn client(mut self, id: &str) -> Self {
        self.0.client_order_id = Some(id.parse().unwrap());
        self
    }
    pub fn cap(mut self, usd: &str) -> Self {
        self.0.cap = Some(d(usd));
        self
    }
    pub fn in_market(mut self, market: &str) -> Self {
        self.0.market = mid(market);
        self
    }
    pub fn min_reliability(mut self, floor: &str) -> Self {
        self.0.min_reliability = Some(d(floor));
        self
    }

    pub fn at_slot(mut self, slot: u64) -> Self {
        self.0.slot = Some(slot);
        self.0.window = None;
        self
    }
    /// A window order over `from..=to` (all or nothing; FOK unless IOC is set).
    pub fn window(mut self, from: u64, to: u64) -> Self {
        self.0.slot = None;
        self.0.window = Some(gpux_engine::command::Window {
            from_slot: from,
            to_slot: to,
        });
        self
    }
    pub fn colocate(mut self) -> Self {
        self.0.colocate = true;
        self
    }
}

impl From<Order> for Command {
    fn from(o: Order) -> Command {
        Command::PlaceOrder(o.0)
    }
}

impl From<Listing> for Command {
    fn from(l: Listing) -> Command {
        Command::ListMarket(l.0)
    }
}

pub fn cancel(account: u64, order: OrderId) -> Command {
    Command::CancelOrder(CancelOrder {
        account,
        order_id: Some(order),
        client_order_id: None,
    })
}

pub fn cancel_client(account: u64, client_order_id: &str) -> Command {
    Command::CancelOrder(CancelOrder {
        account,
        order_id: None,
        client_order_id: Some(client_order_id.parse().unwrap()),
    })
}

/// An amend command under construction.
#[derive(Debug, Clone, Copy)]
pub struct Amend(pub AmendOrder);

pub fn amend(account: u64, order: OrderId) -> Amend {
    Amend(AmendOrder {
        account,
        order_id: Some(order),
        client_order_id: None,
        price: None,
        quantity: None,
    })
}

pub fn amend_client(account: u64, client_order_id: &str) -> Amend {
    Amend(AmendOrder {
        order_id: None,
        client_order_id: Some(client_order_id.parse().unwrap()),
        ..amend(account, 0).0
    })
}

impl Amend {
    pub fn price(mut self, price: &str) -> Self {
        self.0.price = Some(d(price));
        self
    }
    pub fn qty(mut self, quantity: &str) -> Self {
        self.0.quantity = Some(d(quantity));
        self
    }
}

impl From<Amend> for Command {
    fn from(a: Amend) -> Command {
        Command::AmendOrder(a.0)
    }
}

/// Time passes (nothing else).
pub fn tick() -> Command {
    Command::Tick(gpux_engine::command::Tick {})
}

/// A provider reports `delivered` GPUs of an entry.
pub fn report(account: u64, entry: u64, delivered: &str) -> Command {
    Command::DeliveryReport(gpux_engine::command::DeliveryReport {
        account,
        entry,
        delivered: d(delivered),
    })
}

/// A holder disputes an entry, saying it received `received` GPUs.
pub fn dispute(account: u64, entry: u64, received: &str) -> Command {
    Command::Dispute(gpux_engine::command::Dispute {
        account,
        entry,
        received: d(received),
    })
}

/// An admin decides that a disputed entry delivered `delivered` GPUs.
pub fn resolve(entry: u64, delivered: &str) -> Command {
    Command::ResolveDispute(gpux_engine::command::ResolveDispute {
        entry,
        delivered: d(delivered),
    })
}

pub fn mass_cancel(account: u64) -> Command {
    Command::MassCancel(MassCancel {
        account,
        market: None,
        slot: None,
    })
}

pub fn mass_cancel_in(account: u64, market: &str) -> Command {
    Command::MassCancel(MassCancel {
        account,
        market: Some(mid(market)),
        slot: None,
    })
}

pub fn mass_cancel_slot(account: u64, market: &str, slot: u64) -> Command {
    Command::MassCancel(MassCancel {
        account,
        market: Some(mid(market)),
        slot: Some(slot),
    })
}

// ----- the text form of events ----------------------------------------------

/// The serde (protocol) name of a unit enum value, e.g. `ioc_remainder`.
pub fn name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .unwrap()
        .as_str()
        .expect("a unit variant")
        .to_owned()
}

fn usd(v: Decimal) -> String {
    v.normalize().to_string()
}

fn mkt(m: MarketId) -> String {
    if m.as_str() == M {
        String::new()
    } else {
        format!(" [{m}]")
    }
}

fn slt(slot: u64) -> String {
    if slot == S {
        String::new()
    } else {
        format!(" slot {slot}")
    }
}

fn opt_mkt(m: Option<MarketId>) -> String {
    m.map_or_else(String::new, mkt)
}

fn rejection(r: &Rejection) -> String {
    // Every field, exhaustively: a new field must be rendered here.
    let Rejection {
        command,
        account,
        market,
        order,
        client_order_id,
        reason,
    } = r;
    let mut s = format!("rejected {}", name(command));
    if let Some(a) = account {
        s += &format!(" acct {a}");
    }
    s += &opt_mkt(*market);
    if let Some(o) = order {
        s += &format!(" #{o}");
    }
    if let Some(c) = client_order_id {
        s += &format!(" client {c}");
    }
    s + &format!(": {}", reason.code())
}

fn price_or_market(price: Option<Decimal>) -> String {
    match price {
        Some(p) => format!("@ {p}"),
        None => "market".into(),
    }
}

/// One event as one line. Every field of every event is rendered (the
/// destructurings have no `..`), so two different events never read the same.
pub fn render(event: &Event) -> String {
    match event {
        Event::MarketListed(e) => listed(e),
        Event::AccountCreated(e) => format!("account {} created", e.account),
        Event::Deposited(e) => cash_moved("deposited", e),
        Event::Withdrawn(e) => cash_moved("withdrawn", e),
        Event::CapacityAdded(e) => capacity_moved("added", e),
        Event::CapacityRemoved(e) => capacity_moved("removed", e),
        Event::OrderAccepted(e) => accepted(e),
        Event::OrderRejected(r) => rejection(r),
        Event::CommandRejected(r) => format!("command {}", rejection(r)),
        Event::TradeExecuted(e) => trade(e),
        Event::OrderRested(e) => rested(e),
        Event::OrderCancelled(e) => cancelled(e),
        Event::OrderAmended(e) => amended(e),
        Event::MassCancelled(e) => {
            let gpux_engine::event::MassCancelled {
                account,
                market,
                slot,
                count,
            } = e;
            let scope = market.map_or_else(|| "all markets".to_owned(), |m| m.to_string())
                + &slot.map_or_else(String::new, |s| format!(" slot {s}"));
            format!("mass cancelled acct {account} in {scope}: {count} orders")
        }
        Event::DuplicateRequest(e) => format!(
            "duplicate request {} of #{}",
            e.request_id, e.original_cmd_seq
        ),
        Event::DeliveryScheduled(_) | Event::InventoryExpired(_) | Event::SlotClosed(_) => {
            closure(event)
        }
        Event::DeliveryReported(_)
        | Event::DeliveryDisputed(_)
        | Event::TradeSettled(_)
        | Event::DeliverySettled(_) => settlement(event),
        Event::ApiKeyAdded(gpux_engine::event::ApiKeyAdded {
            account,
            api_key_sha256,
            scope,
        }) => format!("acct {account} key {api_key_sha256:?} added ({scope:?})"),
        Event::ApiKeyRevoked(gpux_engine::event::ApiKeyRevoked {
            account,
            api_key_sha256,
        }) => format!("acct {account} key {api_key_sha256:?} revoked"),
    }
}

fn delivery_settled(e: &gpux_engine::event::DeliverySettled) -> String {
    let gpux_engine::event::DeliverySettled {
        entry,
        market,
        slot,
        provider,
        holder,
        quantity,
        delivered,
        basis,
        dispute_lost,
        paid,
        refunded,
        fees,
    } = e;
    format!(
        "delivery {entry}{}{} settled ({}{}): acct {provider} -> acct {holder} {delivered} of {quantity}, \
         paid {} usd, refunded {} usd, fees {} usd",
        mkt(*market),
        slt(*slot),
        serde_json::to_value(basis).unwrap().as_str().unwrap(),
        if *dispute_lost { ", dispute lost" } else { "" },
        usd(*paid),
        usd(*refunded),
        usd(*fees)
    )
}

/// The events of delivery and settlement, as one line each.
fn settlement(event: &Event) -> String {
    use gpux_engine::event::{DeliveryDisputed, DeliveryReported, TradeSettled};
    match event {
        Event::DeliveryReported(e) => {
            let DeliveryReported {
                entry,
                provider,
                market,
                slot,
                delivered,
            } = e;
            format!(
                "delivery {entry}{}{}: acct {provider} reported {delivered} delivered",
                mkt(*market),
                slt(*slot)
            )
        }
        Event::DeliveryDisputed(e) => {
            let DeliveryDisputed {
                entry,
                holder,
                market,
                slot,
                received,
                reported,
            } = e;
            format!(
                "delivery {entry}{}{}: acct {holder} disputed, received {received} (reported {})",
                mkt(*market),
                slt(*slot),
                reported.map_or_else(|| "nothing".to_owned(), |r| r.to_string())
            )
        }
        Event::TradeSettled(e) => {
            let TradeSettled {
                entry,
                trade,
                buyer,
                seller,
                quantity,
                delivered,
                paid,
                refunded,
                fees,
            } = e;
            format!(
                "trade {trade} settled for delivery {entry}: {delivered} of {quantity} delivered, \
                 acct {seller} paid {} usd, acct {buyer} refunded {} usd, fees {} usd",
                usd(*paid),
                usd(*refunded),
                usd(*fees)
            )
        }
        Event::DeliverySettled(e) => delivery_settled(e),
        other => unreachable!("not a settlement event: {other:?}"),
    }
}

/// The events of a gate closure, as one line each.
fn closure(event: &Event) -> String {
    match event {
        Event::DeliveryScheduled(e) => {
            let gpux_engine::event::DeliveryScheduled {
                entry,
                market,
                slot,
                provider,
                holder,
                quantity,
                trades,
                report_until,
                dispute_until,
            } = e;
            let deadlines = if (*report_until, *dispute_until)
                == (slot + 3_600 + 3_600, slot + 3_600 + 7_200)
            {
                String::new()
            } else {
                format!(" (report until {report_until}, dispute until {dispute_until})")
            };
            format!(
                "delivery {entry}{}{}: acct {provider} -> acct {holder} {quantity} via trades {trades:?}{deadlines}",
                mkt(*market),
                slt(*slot)
            )
        }
        Event::InventoryExpired(e) => {
            let gpux_engine::event::InventoryExpired {
                account,
                market,
                slot,
                quantity,
            } = e;
            format!(
                "inventory expired acct {account}{}{} {quantity}",
                mkt(*market),
                slt(*slot)
            )
        }
        Event::SlotClosed(e) => {
            let gpux_engine::event::SlotClosed {
                market,
                slot,
                scheduled,
                expired,
            } = e;
            format!(
                "slot closed{}{}: {scheduled} scheduled, {expired} expired",
                mkt(*market),
                slt(*slot)
            )
        }
        other => unreachable!("not a closure event: {other:?}"),
    }
}

fn listed(e: &gpux_engine::event::MarketListed) -> String {
    let gpux_engine::event::MarketListed {
        market,
        tick_size,
        lot_size,
        maker_fee_bps,
        taker_fee_bps,
        min_price,
        max_price,
        max_order_quantity,
        slot_horizon_hours,
        gate_closure_secs,
        report_window_secs,
        dispute_window_secs,
    } = e;
    let delivery = if (*report_window_secs, *dispute_window_secs) == (3_600, 7_200) {
        String::new()
    } else {
        format!(" report {report_window_secs}s dispute {dispute_window_secs}s")
    };
    format!(
        "listed {market} tick {tick_size} lot {lot_size} fees {maker_fee_bps}/{taker_fee_bps} bps \
         band {min_price}..{max_price} max {max_order_quantity} slots {slot_horizon_hours}h gate {gate_closure_secs}s{delivery}"
    )
}

fn cash_moved(verb: &str, e: &gpux_engine::event::CashMoved) -> String {
    let gpux_engine::event::CashMoved {
        account,
        amount,
        available,
    } = e;
    format!(
        "{verb} acct {account} {} usd (available {})",
        usd(*amount),
        usd(*available)
    )
}

fn capacity_moved(verb: &str, e: &gpux_engine::event::CapacityMoved) -> String {
    let gpux_engine::event::CapacityMoved {
        account,
        market,
        from_slot,
        to_slot,
        quantity,
    } = e;
    let range = if from_slot == to_slot {
        slt(*from_slot)
    } else {
        format!(" slots {from_slot}..={to_slot}")
    };
    format!(
        "capacity {verb} acct {account}{}{range} {quantity}",
        mkt(*market)
    )
}

fn accepted(e: &gpux_engine::event::OrderAccepted) -> String {
    let gpux_engine::event::OrderAccepted {
        order,
        account,
        market,
        slot,
        to_slot,
        colocate,
        side,
        order_type,
        price,
        quantity,
        time_in_force,
        good_till_ns,
        post_only,
        stp,
        client_order_id,
    } = e;
    let place = match to_slot {
        Some(to) => format!(" window {slot}..={to}"),
        None => slt(*slot),
    } + if *colocate { " colocate" } else { "" };
    let kind = match (order_type, price) {
        (OrderType::Limit, Some(p)) => format!("@ {p}"),
        (OrderType::Market, None) => "market".into(),
        (t, p) => format!("{} price {p:?}", name(t)),
    };
    let mut s = format!(
        "accepted #{order} acct {account}{}{place} {} {quantity} {kind} {}",
        mkt(*market),
        name(side),
        name(time_in_force)
    );
    if let Some(t) = good_till_ns {
        s += &format!(" till {t}");
    }
    if *post_only {
        s += " post_only";
    }
    if *stp != StpMode::CancelTaker {
        s += &format!(" stp {}", name(stp));
    }
    if let Some(c) = client_order_id {
        s += &format!(" client {c}");
    }
    s
}

fn trade(e: &gpux_engine::event::TradeExecuted) -> String {
    let gpux_engine::event::TradeExecuted {
        trade,
        market,
        slot,
        price,
        quantity,
        taker_side,
        maker_order,
        maker_account,
        taker_order,
        taker_account,
        maker_fee,
        taker_fee,
        maker_remaining,
        taker_remaining,
    } = e;
    format!(
        "trade {trade}{}{}: {quantity} @ {price}, maker #{maker_order} acct {maker_account} \
         (fee {}, left {maker_remaining}), taker #{taker_order} acct {taker_account} {} \
         (fee {}, left {taker_remaining})",
        mkt(*market),
        slt(*slot),
        usd(*maker_fee),
        name(taker_side),
        usd(*taker_fee),
    )
}

fn rested(e: &gpux_engine::event::OrderRested) -> String {
    let gpux_engine::event::OrderRested {
        order,
        account,
        market,
        slot,
        side,
        price,
        quantity,
    } = e;
    format!(
        "rested #{order} acct {account}{}{} {} {quantity} @ {price}",
        mkt(*market),
        slt(*slot),
        name(side)
    )
}

fn cancelled(e: &gpux_engine::event::OrderCancelled) -> String {
    let gpux_engine::event::OrderCancelled {
        order,
        account,
        market,
        slot,
        side,
        price,
        quantity,
        reason,
        resting,
    } = e;
    format!(
        "cancelled #{order} acct {account}{}{} {} {quantity} {}: {}{}",
        mkt(*market),
        slt(*slot),
        name(side),
        price_or_market(*price),
        name(reason),
        if *resting { ", off the book" } else { "" }
    )
}

fn amended(e: &gpux_engine::event::OrderAmended) -> String {
    let gpux_engine::event::OrderAmended {
        order,
        account,
        market,
        slot,
        side,
        old_price,
        old_quantity,
        price,
        quantity,
        priority_kept,
    } = e;
    format!(
        "amended #{order} acct {account}{}{} {} {old_quantity} @ {old_price} -> {quantity} @ {price}, priority {}",
        mkt(*market),
        slt(*slot),
        name(side),
        if *priority_kept { "kept" } else { "lost" }
    )
}

pub fn render_all(events: &[Event]) -> Vec<String> {
    events.iter().map(render).collect()
}

/// Asserts that `events` read exactly as `expected`, one line per event.
#[track_caller]
pub fn then(events: &[Event], expected: &[&str]) {
    let actual = render_all(events);
    if actual != expected {
        panic!(
            "events differ\n--- expected\n{}\n--- actual\n{}\n",
            expected.join("\n"),
            actual.join("\n")
        );
    }
}

// ----- the harness -------------------------------------------------------------

/// An exchange under test: the real engine and the reference engine receive
/// every command with the same sequence number and timestamp, and must produce
/// the same events and state hash; both must pass their invariant checks after
/// every command. Queries read the real engine.
pub struct Exchange {
    pub engine: Engine<Book>,
    pub reference: Engine<NaiveBook>,
    seq: u64,
    /// Timestamp of the next command.
    pub ts_ns: u64,
    probe_account: u64,
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new()
    }
}

impl Exchange {
    /// Markets [`M`] and [`N`] listed; no accounts yet.
    pub fn new() -> Self {
        let mut x = Self::bare();
        x.given(list_market(M, "0.01", "1", 10, 20));
        x.given(list_market(N, "0.05", "0.5", 0, 25));
        x
    }

    /// No markets, no accounts: an exchange as it starts.
    pub fn bare() -> Self {
        Exchange {
            engine: Engine::new(),
            reference: Engine::new(),
            seq: 0,
            ts_ns: T0,
            probe_account: 900_000,
        }
    }

    /// Moves the clock used for the following commands.
    pub fn at(&mut self, ts_ns: u64) -> &mut Self {
        self.ts_ns = ts_ns;
        self
    }

    /// Applies one command to both engines and checks them; returns its events.
    #[track_caller]
    pub fn run(&mut self, cmd: impl Into<Command>) -> Vec<Event> {
        let cmd = cmd.into();
        self.seq += 1;
        let mut events = Vec::new();
        let mut reference_events = Vec::new();
        self.engine.apply(self.seq, self.ts_ns, &cmd, &mut events);
        self.reference
            .apply(self.seq, self.ts_ns, &cmd, &mut reference_events);
        assert_eq!(events, reference_events, "engines disagree on {cmd:?}");
        assert_eq!(
            self.engine.state_hash(),
            self.reference.state_hash(),
            "state hashes differ after {cmd:?}"
        );
        self.engine.check_invariants().unwrap();
        self.reference.check_invariants().unwrap();
        for m in self.engine.markets().map(|s| s.id).collect::<Vec<_>>() {
            for slot in self.engine.slots(&m).unwrap() {
                if let (Some(b), Some(a)) = (
                    self.engine.best_bid(&m, slot),
                    self.engine.best_ask(&m, slot),
                ) {
                    assert!(b.price < a.price, "{m} {slot} crossed: {b:?} >= {a:?}");
                }
            }
        }
        events
    }

    /// Applies a command that sets the scene; it must not be rejected.
    #[track_caller]
    pub fn given(&mut self, cmd: impl Into<Command>) -> Vec<Event> {
        let events = self.run(cmd);
        for e in &events {
            assert!(
                !matches!(e, Event::OrderRejected(_) | Event::CommandRejected(_)),
                "setup command rejected: {}",
                render(e)
            );
        }
        events
    }

    /// Applies the command under test.
    #[track_caller]
    pub fn when(&mut self, cmd: impl Into<Command>) -> Vec<Event> {
        self.run(cmd)
    }

    /// Creates an account holding `usd` USD.
    pub fn demander(&mut self, account: u64, usd: &str) -> &mut Self {
        self.given(create_account(account));
        self.given(deposit(account, usd));
        self
    }

    /// Creates an account holding `gpu_hours` to sell in [`M`].
    pub fn provider(&mut self, account: u64, gpu_hours: &str) -> &mut Self {
        self.given(create_account(account));
        self.given(add_capacity(account, gpu_hours));
        self
    }

    /// Creates an account with both USD and GPU-hours in [`M`].
    pub fn trader(&mut self, account: u64, usd: &str, gpu_hours: &str) -> &mut Self {
        self.demander(account, usd);
        self.given(add_capacity(account, gpu_hours));
        self
    }

    /// Asserts that `cmd` is refused for `reason` and changes nothing: the
    /// engine's state hash equals that of a copy taken before the command once
    /// both have applied the same next command (so that sequence number and
    /// clock agree). Returns the rejection event.
    #[track_caller]
    pub fn rejects(&mut self, cmd: impl Into<Command>, reason: RejectReason) -> Event {
        let cmd = cmd.into();
        let mut untouched = self.engine.clone();
        let events = self.run(cmd.clone());
        assert_eq!(
            events.len(),
            1,
            "expected only a rejection, got {:#?}",
            render_all(&events)
        );
        let (r, order_kind) = match &events[0] {
            Event::OrderRejected(r) => (r, true),
            Event::CommandRejected(r) => (r, false),
            other => panic!("expected a rejection, got {}", render(other)),
        };
        assert_eq!(r.reason, reason, "wrong reason for {cmd:?}");
        assert_eq!(r.command, cmd.kind());
        assert_eq!(
            order_kind,
            matches!(
                r.command,
                CommandKind::PlaceOrder
                    | CommandKind::CancelOrder
                    | CommandKind::AmendOrder
                    | CommandKind::MassCancel
            ),
            "order commands are refused with OrderRejected, others with CommandRejected"
        );
        // Both engines take the same next step; they must then be identical.
        self.probe_account += 1;
        let probe = create_account(self.probe_account);
        let mut sink = Vec::new();
        untouched.apply(self.seq + 1, self.ts_ns, &probe, &mut sink);
        self.run(probe);
        assert_eq!(
            self.engine.state_hash(),
            untouched.state_hash(),
            "a rejected {cmd:?} changed the state"
        );
        events[0].clone()
    }

    // ----- queries, as text ----------------------------------------------------

    fn levels(&self, market: &str, side: Side) -> Vec<String> {
        self.levels_at(market, S, side)
    }

    /// A slot's levels of `side`, best first, as `quantity @ price`.
    pub fn levels_at(&self, market: &str, slot: u64, side: Side) -> Vec<String> {
        let m = mid(market);
        let levels = self.engine.depth(&m, slot, side, usize::MAX).unwrap();
        // Every level agrees with quantity_at, and the first with best_bid/ask.
        for l in &levels {
            assert_eq!(
                self.engine.quantity_at(&m, slot, side, l.price),
                Some(l.quantity)
            );
        }
        let best = match side {
            Side::Buy => self.engine.best_bid(&m, slot),
            Side::Sell => self.engine.best_ask(&m, slot),
        };
        assert_eq!(best, levels.first().copied());
        levels
            .iter()
            .map(|l| format!("{} @ {}", l.quantity, l.price))
            .collect()
    }

    /// Asks of [`M`], best (lowest) first, as `quantity @ price`.
    pub fn asks(&self) -> Vec<String> {
        self.levels(M, Side::Sell)
    }

    /// Bids of [`M`], best (highest) first, as `quantity @ price`.
    pub fn bids(&self) -> Vec<String> {
        self.levels(M, Side::Buy)
    }

    pub fn asks_in(&self, market: &str) -> Vec<String> {
        self.levels(market, Side::Sell)
    }

    pub fn bids_in(&self, market: &str) -> Vec<String> {
        self.levels(market, Side::Buy)
    }

    /// An account's USD as `available + held held`, normalised.
    pub fn usd(&self, account: u64) -> String {
        let b = self.engine.balances(account).expect("account exists").usd;
        format!("{} + {} held", usd(b.available), usd(b.held))
    }

    /// An account's USD awaiting delivery, as `escrow E, pending P`.
    pub fn owed(&self, account: u64) -> String {
        let b = self.engine.balances(account).expect("account exists").usd;
        format!("escrow {}, pending {}", usd(b.escrow), usd(b.pending))
    }

    /// Delivers slot [`S`] in full: the clock moves to the slot's start (its gate
    /// closes), every provider reports each of its entries fully delivered, and
    /// the clock moves past the dispute deadline, so every entry settles as
    /// reported. Returns the settlement events.
    pub fn deliver_in_full(&mut self) -> Vec<Event> {
        self.at(S * 1_000_000_000);
        let scheduled: Vec<(u64, u64, Decimal)> = self
            .given(tick())
            .iter()
            .filter_map(|e| match e {
                Event::DeliveryScheduled(d) => Some((d.provider, d.entry, d.quantity)),
                _ => None,
            })
            .collect();
        for (provider, entry, quantity) in scheduled {
            self.given(report(provider, entry, &quantity.to_string()));
        }
        self.at((S + 3_600 + 7_200) * 1_000_000_000 + 1);
        self.given(tick())
    }

    /// An account's GPU-hours in [`M`] as `available + held held`.
    pub fn gpu(&self, account: u64) -> String {
        self.gpu_in(account, M)
    }

    pub fn gpu_in(&self, account: u64, market: &str) -> String {
        self.gpu_at(account, market, S)
    }

    /// An account's GPUs in one slot of a market as `available + held held`.
    pub fn gpu_at(&self, account: u64, market: &str, slot: u64) -> String {
        let view = self.engine.balances(account).expect("account exists");
        let (a, h) = view
            .gpus
            .iter()
            .find(|p| p.market.as_str() == market && p.slot == slot)
            .map_or((Decimal::ZERO, Decimal::ZERO), |p| {
                (p.balance.available, p.balance.held)
            });
        format!("{} + {} held", a.normalize(), h.normalize())
    }

    /// Ids of an account's open orders.
    pub fn open(&self, account: u64) -> Vec<OrderId> {
        self.engine
            .open_orders(account)
            .expect("account exists")
            .iter()
            .map(|o| o.order)
            .collect()
    }
}

/// The ids of the makers in `events`' trades, in order.
pub fn makers(events: &[Event]) -> Vec<OrderId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TradeExecuted(t) => Some(t.maker_order),
            _ => None,
        })
        .collect()
}

/// The id of the order accepted in `events`.
pub fn accepted_id(events: &[Event]) -> OrderId {
    events
        .iter()
        .find_map(|e| match e {
            Event::OrderAccepted(a) => Some(a.order),
            _ => None,
        })
        .expect("an accepted order")
}

/// Drives any `OrderBook` engine directly, for tests too big for the lockstep harness.
pub fn apply_all<B: OrderBook>(engine: &mut Engine<B>, first_seq: u64, cmds: &[Command]) -> u64 {
    let mut seq = first_seq;
    let mut sink = Vec::new();
    for c in cmds {
        engine.apply(seq, T0, c, &mut sink);
        seq += 1;
    }
    seq
}
