//! A seeded workload generator shaped like real order flow on one market, spread
//! over a week of hourly delivery slots (one book each).
//!
//! Commands are meant to be applied at [`ts_ns`]`(seq)`: a fixed start time plus a
//! microsecond per command, so every slot of the week stays open for the whole
//! run. Slots near the start trade most (the slot of each order is drawn from a
//! roughly geometric distribution over the [`SLOTS`] hours). A mid price walks
//! randomly; passive orders are placed around it with depth
//! decaying away from the touch; about 15% of orders are IOC and cross the spread;
//! about 20% of resting orders are amended and about 95% are eventually cancelled,
//! and some cancels hit orders that are already gone (filled or cancelled). Every
//! account is funded so no order is refused for money.
//!
//! Besides that everyday flow ([`Scenario::Week`]) it makes harder matching
//! shapes on one slot's book, each over a deep static book of
//! [`DEEP_BOOK_ORDERS`] resting orders placed by [`setup`] ([`Scenario::Deep`]):
//! the mid swinging ±25 % and then ±40 % ([`Scenario::Swing`]), and a flash
//! crash of 35 % and its recovery ([`Scenario::Crash`]). Aggressive orders then
//! sweep many levels, and passive flow keeps refilling the book.
//!
//! The generator predicts order ids (the engine numbers accepted orders 1, 2, …,
//! and every generated order is accepted), so the whole stream is generated before
//! any timing starts. It lives in the library, not under `benches/`, because the
//! criterion benches, `gpux bench engine` and `bench pipeline`, and the end-to-end
//! tests all run it.

use gpux_engine::command::{
    AmendOrder, CancelOrder, CapacityTransfer, CashTransfer, CreateAccount, ListMarket, PlaceOrder,
};
use gpux_engine::{
    Command, Engine, Event, MarketId, OrderId, OrderType, Side, StpMode, TimeInForce,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::HashMap;

/// The benchmark market.
pub const MARKET: &str = "h100-sxm.us-east";
/// Ticks are 0.001 USD per GPU-hour; lots are 1 GPU-hour.
const TICK_SCALE: u32 = 3;
/// Engine time of command 0: 2026-01-01T00:00:00Z.
pub const START_TS_NS: u64 = 1_767_225_600_000_000_000;
/// Delivery slots the flow spreads over: a week (the market's default horizon).
pub const SLOTS: u64 = 168;
/// The first slot: the hour after [`START_TS_NS`].
pub const FIRST_SLOT: u64 = START_TS_NS / 1_000_000_000 + 3_600;

/// The engine time to apply command `seq` at.
pub fn ts_ns(seq: u64) -> u64 {
    START_TS_NS + seq * 1_000
}

/// The `i`th slot of the workload (`0..SLOTS`).
pub fn slot(i: u64) -> u64 {
    FIRST_SLOT + i * 3_600
}

/// Books (slots) with at least one resting order in the benchmark market.
pub fn live_books(engine: &Engine) -> usize {
    let market = market_id();
    engine
        .slots(&market)
        .unwrap_or_default()
        .into_iter()
        .filter(|&s| {
            [Side::Buy, Side::Sell]
                .iter()
                .any(|&side| !engine.depth_ticks(&market, s, side, 1).is_empty())
        })
        .count()
}

/// Resting orders [`setup`] places before the measured flow of the deep-book
/// scenarios (half each side).
pub const DEEP_BOOK_ORDERS: u64 = 40_000;
/// How far from the mid (ticks) the deep book and the deep scenarios' passive
/// orders reach: 20 % of the starting mid.
const DEEP_BOOK_REACH_TICKS: i64 = 500;

/// The shape of the measured flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Everyday flow over a week of hourly slots (near slots busiest), books of a
    /// few hundred orders.
    #[default]
    Week,
    /// One slot's deep static book ([`DEEP_BOOK_ORDERS`]), a mid walking slowly.
    Deep,
    /// The deep book while the mid swings to +25 %, −25 %, +40 %, −40 % of its
    /// start and back.
    Swing,
    /// The deep book through a flash crash: 35 % down within 2 % of the messages,
    /// then back up over the next 20 %.
    Crash,
}

impl Scenario {
    /// Whether [`setup`] prefills a deep book and the flow stays on one slot.
    fn deep(self) -> bool {
        self != Scenario::Week
    }

    /// Where the mid heads at `progress` (0..1 through the messages), as a
    /// fraction of the starting mid; `None` for a free random walk.
    fn target(self, progress: f64) -> Option<f64> {
        // Piecewise linear through (progress, level) points.
        let path: &[(f64, f64)] = match self {
            Scenario::Week | Scenario::Deep => return None,
            Scenario::Swing => &[
                (0.0, 1.0),
                (0.15, 1.25),
                (0.35, 0.75),
                (0.6, 1.4),
                (0.85, 0.6),
                (1.0, 1.0),
            ],
            Scenario::Crash => &[
                (0.0, 1.0),
                (0.4, 1.0),
                (0.42, 0.65),
                (0.62, 1.0),
                (1.0, 1.0),
            ],
        };
        let i = path.iter().rposition(|&(p, _)| p <= progress).unwrap_or(0);
        let (p0, l0) = path[i];
        let Some(&(p1, l1)) = path.get(i + 1) else {
            return Some(l0);
        };
        Some(l0 + (l1 - l0) * (progress - p0) / (p1 - p0))
    }
}

/// Shape of the generated flow.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Order messages to generate (places, amends, cancels).
    pub messages: usize,
    /// RNG seed: the same seed gives the same commands.
    pub seed: u64,
    /// Trading accounts.
    pub accounts: u64,
    /// Starting mid price in ticks.
    pub start_mid_ticks: i64,
    /// The flow's shape.
    pub scenario: Scenario,
}

impl WorkloadConfig {
    /// The default shape for `messages` messages with `seed`.
    pub fn new(messages: usize, seed: u64) -> Self {
        WorkloadConfig {
            messages,
            seed,
            accounts: 1_000,
            start_mid_ticks: 2_500,
            scenario: Scenario::Week,
        }
    }

    /// [`new`](Self::new) with another scenario.
    pub fn scenario(messages: usize, seed: u64, scenario: Scenario) -> Self {
        WorkloadConfig {
            scenario,
            ..Self::new(messages, seed)
        }
    }
}

/// Commands to apply before the measured part: the market, funded accounts, and
/// for the deep scenarios the deep book (orders `1..=`[`DEEP_BOOK_ORDERS`]).
pub fn setup(cfg: &WorkloadConfig) -> Vec<Command> {
    let mut cmds = accounts(cfg);
    if cfg.scenario.deep() {
        cmds.extend(deep_book(cfg));
    }
    cmds
}

/// The deep book: passive orders on slot 0 spread evenly over
/// [`DEEP_BOOK_REACH_TICKS`] on each side of the starting mid, seeded apart from
/// the flow.
fn deep_book(cfg: &WorkloadConfig) -> Vec<Command> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xdeeb);
    (1..=DEEP_BOOK_ORDERS)
        .map(|id| {
            let side = if id % 2 == 0 { Side::Buy } else { Side::Sell };
            let d = rng.random_range(1..=DEEP_BOOK_REACH_TICKS);
            let ticks = match side {
                Side::Buy => cfg.start_mid_ticks - d,
                Side::Sell => cfg.start_mid_ticks + d,
            };
            let lots = rng.random_range(1..20u64);
            limit_order(owner(id, cfg), slot(0), side, ticks, lots, TimeInForce::Gtc)
        })
        .collect()
}

/// An engine with `cfg`'s [`setup`] applied (accounts, and the deep book of the
/// deep scenarios), and the last sequence number used.
pub fn prepared(cfg: &WorkloadConfig) -> (Engine, u64) {
    let mut engine: Engine = Engine::new();
    let mut events = Vec::new();
    let mut seq = 0;
    for cmd in setup(cfg) {
        seq += 1;
        engine.apply(seq, ts_ns(seq), &cmd, &mut events);
    }
    (engine, seq)
}

/// The market and the funded accounts, each with capacity in every slot.
fn accounts(cfg: &WorkloadConfig) -> Vec<Command> {
    let market = market_id();
    let mut cmds = vec![Command::ListMarket(ListMarket {
        market,
        tick_size: Decimal::new(1, TICK_SCALE),
        lot_size: Decimal::ONE,
        maker_fee_bps: 2,
        taker_fee_bps: 5,
        min_price: None,
        max_price: None,
        max_order_quantity: None,
        slot_horizon_hours: None,
        gate_closure_secs: None,
        report_window_secs: None,
        dispute_window_secs: None,
    })];
    for account in 1..=cfg.accounts {
        cmds.push(Command::CreateAccount(CreateAccount {
            account: Some(account),
            api_key_sha256: None,
        }));
        cmds.push(Command::Deposit(CashTransfer {
            account,
            amount: Decimal::from(100_000_000u64),
        }));
        cmds.push(Command::AddCapacity(CapacityTransfer {
            account,
            market,
            from_slot: slot(0),
            to_slot: slot(SLOTS - 1),
            quantity: Decimal::from(100_000_000u64),
        }));
    }
    cmds
}

/// The benchmark market's id.
pub fn market_id() -> MarketId {
    MarketId::new(MARKET).expect("valid market id")
}

/// Resting orders as the generator's own engine reports them, for picking
/// amend and cancel targets uniformly at random.
#[derive(Default)]
struct Live {
    orders: Vec<(OrderId, i64, Side)>,
    index: HashMap<OrderId, usize>,
}

impl Live {
    fn add(&mut self, id: OrderId, ticks: i64, side: Side) {
        self.index.insert(id, self.orders.len());
        self.orders.push((id, ticks, side));
    }

    fn remove(&mut self, id: OrderId) {
        if let Some(i) = self.index.remove(&id) {
            self.orders.swap_remove(i);
            if let Some(moved) = self.orders.get(i) {
                self.index.insert(moved.0, i);
            }
        }
    }

    /// Follows the engine's events.
    fn track(&mut self, events: &[Event], tick_scale: u32) {
        let ticks = |d: Decimal| {
            (d * Decimal::from(10i64.pow(tick_scale)))
                .to_i64()
                .expect("price")
        };
        for e in events {
            match e {
                Event::OrderRested(r) => self.add(r.order, ticks(r.price), r.side),
                Event::OrderCancelled(c) => self.remove(c.order),
                Event::TradeExecuted(t) if t.maker_remaining.is_zero() => {
                    self.remove(t.maker_order)
                }
                // A re-queued order comes back through `OrderRested`.
                Event::OrderAmended(a) if !a.priority_kept => self.remove(a.order),
                _ => {}
            }
        }
    }
}

/// The measured order flow. The generator runs its own engine to learn which
/// orders still rest (fills are not predictable from the commands alone), so
/// cancels and amends target live orders except where a stale one is meant.
pub fn orders(cfg: &WorkloadConfig) -> Vec<Command> {
    let mut engine: Engine = Engine::new();
    let mut events = Vec::new();
    let mut seq = 0;
    let mut apply = |engine: &mut Engine, cmd: &Command, events: &mut Vec<Event>| {
        seq += 1;
        events.clear();
        engine.apply(seq, ts_ns(seq), cmd, events);
    };
    let mut flow = Flow::new(cfg);
    for cmd in setup(cfg) {
        apply(&mut engine, &cmd, &mut events);
        flow.observe(&events);
        if matches!(cmd, Command::PlaceOrder(_)) {
            flow.next_id += 1;
        }
    }
    let mut out = Vec::with_capacity(cfg.messages);
    while out.len() < cfg.messages {
        let cmd = flow.next_command(out.len());
        apply(&mut engine, &cmd, &mut events);
        flow.observe(&events);
        out.push(cmd);
    }
    out
}

/// The generator's state between two messages: the random walk of the mid, the
/// ids it will give and has seen go, and the orders resting.
struct Flow<'a> {
    cfg: &'a WorkloadConfig,
    rng: ChaCha8Rng,
    mid: i64,
    next_id: OrderId,
    live: Live,
    /// Orders filled or cancelled, for the cancels that are meant to miss.
    gone: Vec<OrderId>,
}

impl<'a> Flow<'a> {
    fn new(cfg: &'a WorkloadConfig) -> Self {
        Flow {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            mid: cfg.start_mid_ticks,
            next_id: 1,
            live: Live::default(),
            gone: Vec::new(),
        }
    }

    /// Moves the mid now and then, and picks the `n`th message.
    fn next_command(&mut self, n: usize) -> Command {
        self.move_mid(n);
        let roll: u32 = self.rng.random_range(0..100);
        // Cancel more as the book grows, so it settles at a realistic size: a
        // few hundred orders; in the deep scenarios, fewer below the deep
        // book's size too, so it stays deep.
        let settled = if self.cfg.scenario.deep() {
            DEEP_BOOK_ORDERS as i64
        } else {
            0
        };
        let live = self.live.orders.len() as i64;
        let cancel_bias = 40 + ((live - settled) / 1_000).clamp(-30, 40);
        if roll < 2 && !self.gone.is_empty() {
            self.stale_cancel()
        } else if roll < 10 && !self.live.orders.is_empty() {
            self.amend()
        } else if i64::from(roll) < cancel_bias && !self.live.orders.is_empty() {
            self.cancel_live()
        } else {
            self.place()
        }
    }

    /// A random walk of a tick now and then; in the swing and crash scenarios
    /// a pull towards the scenario's path, so the mid follows it.
    fn move_mid(&mut self, n: usize) {
        let progress = n as f64 / self.cfg.messages.max(1) as f64;
        let step = match self.cfg.scenario.target(progress) {
            Some(level) => {
                let target = (self.cfg.start_mid_ticks as f64 * level) as i64;
                (target - self.mid).signum()
            }
            None if self.rng.random_ratio(1, 8) => {
                if self.rng.random_bool(0.5) {
                    1
                } else {
                    -1
                }
            }
            None => 0,
        };
        self.mid = (self.mid + step).max(200);
    }

    /// Follows the engine's answer to the last message.
    fn observe(&mut self, events: &[Event]) {
        self.live.track(events, TICK_SCALE);
        if self.gone.len() > 4_096 {
            self.gone.drain(..2_048);
        }
    }

    /// A duplicate cancel of an order already gone.
    fn stale_cancel(&mut self) -> Command {
        let id = self.gone[self.rng.random_range(0..self.gone.len())];
        cancel(owner(id, self.cfg), id)
    }

    /// Amend: mostly a size decrease, sometimes a price move away from the touch.
    fn amend(&mut self) -> Command {
        let (id, p, side) = self.live.orders[self.rng.random_range(0..self.live.orders.len())];
        let (new_price, qty) = if self.rng.random_ratio(1, 3) {
            let p2 = match side {
                Side::Buy => (p - self.rng.random_range(1..4)).max(1),
                Side::Sell => p + self.rng.random_range(1..4),
            };
            (Some(price(p2)), None)
        } else {
            (None, Some(Decimal::from(self.rng.random_range(1..4u64))))
        };
        Command::AmendOrder(AmendOrder {
            account: owner(id, self.cfg),
            order_id: Some(id),
            client_order_id: None,
            price: new_price,
            quantity: qty,
        })
    }

    /// A cancel of a resting order.
    fn cancel_live(&mut self) -> Command {
        let (id, _, _) = self.live.orders[self.rng.random_range(0..self.live.orders.len())];
        self.gone.push(id);
        cancel(owner(id, self.cfg), id)
    }

    /// A new limit order: IOC across the spread, or passive around the mid.
    fn place(&mut self) -> Command {
        let side = if self.rng.random_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        };
        let ioc = self.rng.random_ratio(15, 100);
        let ticks = self.limit_ticks(side, ioc);
        let id = self.next_id;
        self.next_id += 1;
        if ioc {
            self.gone.push(id);
        }
        let slot_ix = if self.cfg.scenario.deep() {
            0
        } else {
            // Near slots trade most: each further hour half as likely, in steps
            // of a few hours, over the whole week.
            let mut i = self.rng.random_range(0..4u64);
            while i + 4 < SLOTS && self.rng.random_ratio(3, 5) {
                i += 4;
            }
            i
        };
        let lots = self.rng.random_range(1..20u64);
        let tif = if ioc {
            TimeInForce::Ioc
        } else {
            TimeInForce::Gtc
        };
        limit_order(
            owner(id, self.cfg),
            slot(slot_ix),
            side,
            ticks.max(1),
            lots,
            tif,
        )
    }

    /// The limit price of a new order, in ticks.
    fn limit_ticks(&mut self, side: Side, ioc: bool) -> i64 {
        if ioc {
            // Aggressive: cross the spread by a few ticks.
            let reach = self.rng.random_range(0..4);
            match side {
                Side::Buy => self.mid + reach,
                Side::Sell => self.mid - reach,
            }
        } else {
            // Passive: distance from the mid roughly geometric; in the deep
            // scenarios, also spread over the deep book's reach.
            let mut d = 1;
            while d < 60 && self.rng.random_ratio(4, 5) {
                d += 1;
            }
            if self.cfg.scenario.deep() && self.rng.random_ratio(1, 2) {
                d = self.rng.random_range(1..=DEEP_BOOK_REACH_TICKS);
            }
            match side {
                Side::Buy => self.mid - d,
                Side::Sell => self.mid + d,
            }
        }
    }
}

/// A limit order for `slot` (unix seconds) in the benchmark market, at `ticks`
/// ticks of 0.001 USD.
pub fn limit_order(
    account: u64,
    slot: u64,
    side: Side,
    ticks: i64,
    lots: u64,
    tif: TimeInForce,
) -> Command {
    Command::PlaceOrder(PlaceOrder {
        account,
        market: market_id(),
        slot: Some(slot),
        window: None,
        colocate: false,
        side,
        order_type: OrderType::Limit,
        price: Some(price(ticks)),
        quantity: Decimal::from(lots),
        time_in_force: Some(tif),
        good_till_ns: None,
        post_only: false,
        cap: None,
        client_order_id: None,
        stp: StpMode::None,
        min_reliability: None,
    })
}

/// A price of `ticks` ticks.
fn price(ticks: i64) -> Decimal {
    Decimal::new(ticks, TICK_SCALE)
}

/// The account that places order `id`: a pure function of the id, so the
/// generator never needs to remember owners.
fn owner(id: OrderId, cfg: &WorkloadConfig) -> u64 {
    id % cfg.accounts + 1
}

fn cancel(account: u64, id: OrderId) -> Command {
    Command::CancelOrder(CancelOrder {
        account,
        order_id: Some(id),
        client_order_id: None,
    })
}
