//! Property tests over random command sequences.
//!
//! A sequence is generated abstractly (which account, which market, how far from
//! the mid price, which earlier order to cancel...) and made concrete by running
//! it once: "cancel a recent order" becomes the id of an order accepted a few
//! commands earlier. The concrete commands are then replayed for each property:
//!
//! - the fast and the reference engine give identical events and state hashes;
//! - after every command the invariants hold, checked both by the engine itself
//!   and independently from its events and queries: no crossed book, price-time
//!   priority (rebuilt from events), L2 depth and every account's balances
//!   rebuilt from events equal the engine's, holds equal what open orders need,
//!   every asset conserved;
//! - a snapshot taken mid-way restores to an engine that continues identically;
//! - the same commands give byte-identical JSON events;
//! - every command and event survives a JSON round trip.

mod common;

use common::*;
use gpux_engine::command::{AmendOrder, CancelOrder, CapacityTransfer, CashTransfer, PlaceOrder};
use gpux_engine::limits::MATCHES_PER_COMMAND_MAX;
use gpux_engine::{
    Book, Command, CommandEnvelope, Engine, Event, EventEnvelope, MarketId, NaiveBook, OrderBook,
    OrderId, OrderType, Side, StpMode, TimeInForce,
};
use proptest::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

// ----- the abstract sequence ------------------------------------------------

/// How a price or quantity is spoiled, to exercise the validation paths.
#[derive(Debug, Clone, Copy)]
enum Skew {
    None,
    OffTick,
    OffLot,
    Zero,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Gtc,
    Ioc,
    Fok,
    Gtd(u64),
    PostOnly,
    Market(Option<u32>),
    /// A field combination that does not fit (0..4).
    Misshapen(u8),
}

/// Which order a cancel or amend names.
#[derive(Debug, Clone, Copy)]
enum Ref {
    /// The n-th (modulo) of the orders open right now, by id.
    Open(usize),
    /// The n-th most recently accepted order.
    Recent(usize),
    /// Any id, mostly never issued or long gone.
    Raw(u64),
    /// A client order id `c0`..`c3`.
    Client(u8),
}

/// A `place_order` step.
#[derive(Debug, Clone)]
struct PlaceStep {
    account: u64,
    market: usize,
    side: Side,
    kind: Kind,
    offset_ticks: i64,
    lots: u64,
    skew: Skew,
    client: Option<u8>,
    stp: StpMode,
}

#[derive(Debug, Clone)]
enum Op {
    Place(PlaceStep),
    Cancel {
        account: u64,
        by_owner: bool,
        order: Ref,
    },
    Amend {
        account: u64,
        by_owner: bool,
        order: Ref,
        offset_ticks: Option<i64>,
        lots: Option<u64>,
        skew: Skew,
    },
    MassCancel {
        account: u64,
        market: Option<usize>,
    },
    Deposit(u64, u64),
    Withdraw(u64, u64),
    AddCapacity(u64, usize, u64),
    RemoveCapacity(u64, usize, u64),
}

/// One step: how far the clock moves, then the operation.
#[derive(Debug, Clone)]
struct Step {
    dt_ns: u64,
    op: Op,
}

const MARKETS: [&str; 2] = [M, N];
/// Mid price of both markets, in ticks of 0.01 USD.
const MID_CENTS: i64 = 250;

fn account() -> impl Strategy<Value = u64> {
    prop_oneof![27 => 1..=3u64, 3 => Just(4u64), 1 => Just(0u64), 1 => Just(9u64)]
}

fn market_ix() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 2 => Just(1usize)]
}

fn skew() -> impl Strategy<Value = Skew> {
    prop_oneof![
        40 => Just(Skew::None),
        1 => Just(Skew::OffTick),
        1 => Just(Skew::OffLot),
        1 => Just(Skew::Zero),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        10 => Just(Kind::Gtc),
        3 => Just(Kind::Ioc),
        2 => Just(Kind::Fok),
        3 => (1..30u64).prop_map(Kind::Gtd),
        2 => Just(Kind::PostOnly),
        // Caps in cents: often below the price of one lot (about 1.25 to 2.5 USD),
        // so that a market buy's budget runs out at or before a level.
        3 => prop::option::weighted(0.6, prop_oneof![1..400u32, 400..3_000u32]).prop_map(Kind::Market),
        1 => (0..4u8).prop_map(Kind::Misshapen),
    ]
}

fn stp() -> impl Strategy<Value = StpMode> {
    prop_oneof![
        3 => Just(StpMode::CancelTaker),
        2 => Just(StpMode::CancelMaker),
        2 => Just(StpMode::CancelBoth),
        1 => Just(StpMode::None),
    ]
}

fn order_ref() -> impl Strategy<Value = Ref> {
    prop_oneof![
        10 => any::<usize>().prop_map(Ref::Open),
        2 => (0..8usize).prop_map(Ref::Recent),
        1 => (1..400u64).prop_map(Ref::Raw),
        1 => (0..4u8).prop_map(Ref::Client),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
    let place = (
        account(),
        market_ix(),
        side,
        kind(),
        -6..=6i64,
        prop_oneof![1 => Just(0u64), 30 => 1..=12u64],
        skew(),
        prop::option::weighted(0.3, 0..4u8),
        stp(),
    )
        .prop_map(
            |(account, market, side, kind, offset_ticks, lots, skew, client, stp)| {
                Op::Place(PlaceStep {
                    account,
                    market,
                    side,
                    kind,
                    offset_ticks,
                    lots,
                    skew,
                    client,
                    stp,
                })
            },
        );
    let cancel = (account(), prop::bool::weighted(0.85), order_ref()).prop_map(
        |(account, by_owner, order)| Op::Cancel {
            account,
            by_owner,
            order,
        },
    );
    let amend = (
        account(),
        prop::bool::weighted(0.85),
        order_ref(),
        prop::option::weighted(0.5, -6..=6i64),
        prop::option::weighted(0.7, 0..=14u64),
        skew(),
    )
        .prop_map(
            |(account, by_owner, order, offset_ticks, lots, skew)| Op::Amend {
                account,
                by_owner,
                order,
                offset_ticks,
                lots,
                skew,
            },
        );
    prop_oneof![
        40 => place,
        12 => cancel,
        8 => amend,
        2 => (account(), prop::option::weighted(0.5, market_ix()))
            .prop_map(|(account, market)| Op::MassCancel { account, market }),
        2 => (account(), 0..100_000u64).prop_map(|(a, c)| Op::Deposit(a, c)),
        2 => (account(), 0..200_000u64).prop_map(|(a, c)| Op::Withdraw(a, c)),
        1 => (account(), market_ix(), 0..20u64).prop_map(|(a, m, l)| Op::AddCapacity(a, m, l)),
        1 => (account(), market_ix(), 0..20u64).prop_map(|(a, m, l)| Op::RemoveCapacity(a, m, l)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let dt = prop_oneof![6 => Just(0u64), 3 => 1..=3u64, 1 => 10..=40u64];
    (dt, op()).prop_map(|(dt_ns, op)| Step { dt_ns, op })
}

fn steps(max: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..max)
}

// ----- making it concrete ----------------------------------------------------

/// Two markets, fees 10/20 and 30/5 bps. Accounts 1–3 are well funded in both;
/// account 4 is nearly broke.
fn genesis() -> Vec<Command> {
    let mut cmds: Vec<Command> = vec![
        list_market(M, "0.01", "1", 10, 20).into(),
        // Maker above taker here, so a buy's hold must use the maker rate.
        list_market(N, "0.05", "0.5", 30, 5).into(),
    ];
    for a in 1..=3 {
        cmds.push(create_account(a));
        cmds.push(deposit(a, "10000"));
        cmds.push(add_capacity_in(a, M, "200"));
        cmds.push(add_capacity_in(a, N, "100"));
    }
    cmds.push(create_account(4));
    cmds.push(deposit(4, "30"));
    cmds.push(add_capacity_in(4, M, "5"));
    cmds
}

fn price(market: usize, offset_ticks: i64, skew: Skew) -> Decimal {
    let (step, off_tick) = match market {
        0 => (1, Decimal::new(5, 3)),
        _ => (5, Decimal::new(1, 2)),
    };
    let cents = MID_CENTS + offset_ticks * step;
    match skew {
        Skew::OffTick => Decimal::new(cents, 2) + off_tick,
        Skew::Zero => Decimal::ZERO,
        _ => Decimal::new(cents, 2),
    }
}

fn quantity(market: usize, lots: u64, skew: Skew) -> Decimal {
    let (q, off_lot) = match market {
        0 => (Decimal::from(lots), Decimal::new(5, 1)),
        _ => (Decimal::new(lots as i64 * 5, 1), Decimal::new(2, 1)),
    };
    match skew {
        Skew::OffLot => q + off_lot,
        _ => q,
    }
}

fn client(c: u8) -> gpux_engine::ClientOrderId {
    format!("c{c}").parse().unwrap()
}

impl PlaceStep {
    /// The command, at `ts_ns` (a GTD order's expiry is relative to it).
    fn order(&self, ts_ns: u64) -> PlaceOrder {
        let PlaceStep {
            account,
            market,
            side,
            kind,
            offset_ticks,
            lots,
            skew,
            client: c,
            stp,
        } = *self;
        let mut o = PlaceOrder {
            account,
            market: mid(MARKETS[market]),
            slot: Some(S),
            window: None,
            colocate: false,
            side,
            order_type: OrderType::Limit,
            price: Some(price(market, offset_ticks, skew)),
            quantity: quantity(market, lots, skew),
            time_in_force: None,
            good_till_ns: None,
            post_only: false,
            cap: None,
            client_order_id: c.map(client),
            stp,
            min_reliability: None,
        };
        match kind {
            Kind::Gtc => {}
            Kind::Ioc => o.time_in_force = Some(TimeInForce::Ioc),
            Kind::Fok => o.time_in_force = Some(TimeInForce::Fok),
            Kind::Gtd(after) => {
                o.time_in_force = Some(TimeInForce::Gtd);
                o.good_till_ns = Some(ts_ns + after);
            }
            Kind::PostOnly => o.post_only = true,
            Kind::Market(cap) => {
                o.order_type = OrderType::Market;
                o.price = None;
                o.cap = cap
                    .filter(|_| side == Side::Buy)
                    .map(|c| Decimal::new(c as i64, 2));
            }
            Kind::Misshapen(0) => o.price = None,
            Kind::Misshapen(1) => o.order_type = OrderType::Market,
            Kind::Misshapen(2) => {
                o.time_in_force = Some(TimeInForce::Ioc);
                o.post_only = true;
            }
            Kind::Misshapen(_) => o.time_in_force = Some(TimeInForce::Gtd),
        }
        o
    }
}

/// The orders a cancel or amend step can name: those open now, and those the
/// engine accepted so far.
struct Named<'a> {
    engine: &'a Engine<Book>,
    accepted: &'a [OrderId],
    open: Vec<OrderId>,
}

impl<'a> Named<'a> {
    fn new(engine: &'a Engine<Book>, accepted: &'a [OrderId]) -> Self {
        let open: Vec<OrderId> = (1..=4)
            .flat_map(|a| engine.open_orders(a).unwrap_or_default())
            .map(|o| o.order)
            .collect();
        Named {
            engine,
            accepted,
            open,
        }
    }

    /// The order id or client order id a reference stands for.
    fn resolve(&self, r: Ref) -> (Option<OrderId>, Option<gpux_engine::ClientOrderId>) {
        let (open, accepted) = (&self.open, self.accepted);
        match r {
            Ref::Open(n) if !open.is_empty() => (Some(open[n % open.len()]), None),
            Ref::Open(n) => (Some(n as u64 % 100 + 1), None),
            Ref::Recent(n) if !accepted.is_empty() => (
                Some(accepted[accepted.len() - 1 - n % accepted.len()]),
                None,
            ),
            Ref::Recent(n) => (Some(n as u64 + 1), None),
            Ref::Raw(id) => (Some(id), None),
            Ref::Client(c) => (None, Some(client(c))),
        }
    }

    /// Who sends the step: the order's owner when `by_owner` and it is open,
    /// else `account`.
    fn owner(&self, account: u64, by_owner: bool, id: Option<OrderId>) -> u64 {
        id.filter(|_| by_owner)
            .and_then(|id| self.engine.order(id))
            .map_or(account, |o| o.account)
    }
}

/// Turns one abstract step into a command, given the engine so far and the ids
/// of the orders it accepted.
fn command(engine: &Engine<Book>, accepted: &[OrderId], ts_ns: u64, op: &Op) -> Command {
    let named = Named::new(engine, accepted);
    match *op {
        Op::Place(ref p) => Command::PlaceOrder(p.order(ts_ns)),
        Op::Cancel {
            account,
            by_owner,
            order,
        } => {
            let (order_id, client_order_id) = named.resolve(order);
            Command::CancelOrder(CancelOrder {
                account: named.owner(account, by_owner, order_id),
                order_id,
                client_order_id,
            })
        }
        Op::Amend {
            account,
            by_owner,
            order,
            offset_ticks,
            lots,
            skew,
        } => {
            let (order_id, client_order_id) = named.resolve(order);
            // Price and quantity in the grid of the order's market, if it exists.
            let market = order_id
                .and_then(|id| engine.order(id))
                .map_or(0, |o| (o.market.as_str() == N) as usize);
            Command::AmendOrder(AmendOrder {
                account: named.owner(account, by_owner, order_id),
                order_id,
                client_order_id,
                price: offset_ticks.map(|t| price(market, t, skew)),
                quantity: lots.map(|l| quantity(market, l, skew)),
            })
        }
        Op::MassCancel { account, market } => {
            Command::MassCancel(gpux_engine::command::MassCancel {
                account,
                market: market.map(|m| mid(MARKETS[m])),
                slot: None,
            })
        }
        Op::Deposit(account, cents) => Command::Deposit(CashTransfer {
            account,
            amount: Decimal::new(cents as i64, 2),
        }),
        Op::Withdraw(account, cents) => Command::Withdraw(CashTransfer {
            account,
            amount: Decimal::new(cents as i64, 2),
        }),
        Op::AddCapacity(account, market, lots) => Command::AddCapacity(CapacityTransfer {
            account,
            market: mid(MARKETS[market]),
            from_slot: S,
            to_slot: S,
            quantity: quantity(market, lots, Skew::None),
        }),
        Op::RemoveCapacity(account, market, lots) => Command::RemoveCapacity(CapacityTransfer {
            account,
            market: mid(MARKETS[market]),
            from_slot: S,
            to_slot: S,
            quantity: quantity(market, lots, Skew::None),
        }),
    }
}

/// A concrete command with its timestamp. Sequence numbers are positions + 1.
type Script = Vec<(u64, Command)>;

fn concretize(steps: &[Step]) -> Script {
    let mut engine: Engine<Book> = Engine::new();
    let mut script: Script = genesis().into_iter().map(|c| (T0, c)).collect();
    let mut events = Vec::new();
    for (i, (ts, c)) in script.iter().enumerate() {
        engine.apply(i as u64 + 1, *ts, c, &mut events);
    }
    let mut accepted = Vec::new();
    let mut ts = T0;
    for step in steps {
        ts += step.dt_ns;
        let cmd = command(&engine, &accepted, ts, &step.op);
        events.clear();
        engine.apply(script.len() as u64 + 1, ts, &cmd, &mut events);
        accepted.extend(events.iter().filter_map(|e| match e {
            Event::OrderAccepted(a) => Some(a.order),
            _ => None,
        }));
        script.push((ts, cmd));
    }
    script
}

fn scripts(max: usize) -> impl Strategy<Value = Script> {
    steps(max).prop_map(|s| concretize(&s))
}

fn run<B: OrderBook>(engine: &mut Engine<B>, seq: u64, ts: u64, cmd: &Command) -> Vec<Event> {
    let mut events = Vec::new();
    engine.apply(seq, ts, cmd, &mut events);
    // Every event the flows produce survives the ledger's encoding exactly: the
    // same JSON back (decimal scale included), the same bytes again.
    for e in &events {
        let stored = e.to_bytes();
        let back = Event::from_bytes(&stored).expect("a stored event decodes");
        assert_eq!(back.to_json_vec(), e.to_json_vec());
        assert_eq!(back.to_bytes(), stored);
    }
    events
}

// ----- an independent model, fed only by events -------------------------------

#[derive(Debug, Clone)]
struct Resting {
    id: OrderId,
    account: u64,
    price: Decimal,
    quantity: Decimal,
    arrival: u64,
}

/// What the events say: resting orders per (market, side) with their arrival
/// order, each order's limit and time in force, and money and GPU-hours moved
/// in and out of the exchange.
#[derive(Default)]
struct Model {
    books: BTreeMap<(MarketId, Side), Vec<Resting>>,
    arrivals: u64,
    /// Limit price (None for market orders) and whether it may rest.
    orders: HashMap<OrderId, (Option<Decimal>, bool)>,
    usd_in: Decimal,
    gpu_in: BTreeMap<MarketId, Decimal>,
    /// GTD expiry of each accepted GTD order.
    good_till: HashMap<OrderId, u64>,
    /// Each account's USD (available + held), rebuilt from events alone.
    usd: BTreeMap<u64, Decimal>,
    /// Each account's GPU-hours per market (available + held), from events alone.
    gpu: BTreeMap<(u64, MarketId), Decimal>,
    /// Each account's USD in escrow (paid for GPUs not yet delivered) and pending
    /// (owed for GPUs sold), from events alone.
    escrow: BTreeMap<u64, (Decimal, Decimal)>,
}

fn better(side: Side, a: Decimal, b: Decimal) -> bool {
    match side {
        Side::Buy => a > b,
        Side::Sell => a < b,
    }
}

impl Model {
    /// The order a taker on the other side meets first: best price, then
    /// earliest arrival.
    fn front(&self, market: MarketId, side: Side) -> Option<&Resting> {
        self.books.get(&(market, side))?.iter().min_by(|a, b| {
            if better(side, a.price, b.price) {
                std::cmp::Ordering::Less
            } else if better(side, b.price, a.price) {
                std::cmp::Ordering::Greater
            } else {
                a.arrival.cmp(&b.arrival)
            }
        })
    }

    fn take(&mut self, market: MarketId, side: Side, id: OrderId) -> Result<Resting, String> {
        let book = self.books.entry((market, side)).or_default();
        let i = book
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| format!("order {id} is not resting on {market} {side:?}"))?;
        Ok(book.remove(i))
    }

    fn depth(&self, market: MarketId, side: Side) -> Vec<(Decimal, Decimal)> {
        let mut levels: BTreeMap<Decimal, Decimal> = BTreeMap::new();
        for r in self.books.get(&(market, side)).into_iter().flatten() {
            *levels.entry(r.price).or_default() += r.quantity;
        }
        let mut v: Vec<_> = levels.into_iter().collect();
        if side == Side::Buy {
            v.reverse();
        }
        v
    }

    /// Applies one command's events and checks them against the command: GTD
    /// orders expire exactly when a later timestamp arrives; a refused FOK could
    /// not have filled; a market buy spends at most its budget (available USD
    /// when it arrives, `usd_before`: after the expiries its timestamp triggers,
    /// or its cap), stops only when one more lot is
    /// unaffordable, and applies self-trade prevention only at an own ask where
    /// it could buy a lot; a mass cancel leaves nothing open in its scope.
    fn apply_command(
        &mut self,
        engine: &Engine<Book>,
        ts_ns: u64,
        cmd: &Command,
        usd_before: Decimal,
        events: &[Event],
    ) -> Result<(), String> {
        self.check_expired_when_due(ts_ns, events)?;
        self.apply(events)?;
        for book in self.books.values() {
            if let Some(r) = book
                .iter()
                .find(|r| self.good_till.get(&r.id).is_some_and(|&t| t < ts_ns))
            {
                return Err(format!("{} should have expired before {ts_ns}", r.id));
            }
        }
        let refused = |reason| {
            events
                .iter()
                .any(|e| matches!(e, Event::OrderRejected(r) if r.reason == reason))
        };
        match cmd {
            Command::PlaceOrder(o)
                if o.time_in_force == Some(TimeInForce::Fok)
                    && refused(gpux_engine::RejectReason::FokNotFillable) =>
            {
                self.check_fok_refusal(o)
            }
            Command::PlaceOrder(o) if o.order_type == OrderType::Market && o.side == Side::Buy => {
                self.check_market_buy(engine, o, usd_before, events)
            }
            Command::MassCancel(m) => check_mass_cancel(engine, m, events),
            _ => Ok(()),
        }
    }

    /// Every order the events expire was due: its GTD time is before `ts_ns`.
    fn check_expired_when_due(&self, ts_ns: u64, events: &[Event]) -> Result<(), String> {
        for e in events {
            if let Event::OrderCancelled(c) = e {
                if c.reason == gpux_engine::CancelReason::Expired {
                    let t = self.good_till.get(&c.order).copied();
                    if t.is_none_or(|t| t >= ts_ns) {
                        return Err(format!("{} expired at {ts_ns}, good till {t:?}", c.order));
                    }
                }
            }
        }
        Ok(())
    }

    /// A FOK order refused as not fillable could not have filled: the book (as
    /// the events left it) walked in priority order, with its STP mode and the
    /// bound on makers met, has less than its quantity.
    fn check_fok_refusal(&self, o: &PlaceOrder) -> Result<(), String> {
        let (limit, want) = (o.price.unwrap(), o.quantity);
        let mut side: Vec<&Resting> = self
            .books
            .get(&(o.market, o.side.opposite()))
            .into_iter()
            .flatten()
            .collect();
        side.sort_by(|a, b| {
            if better(o.side.opposite(), a.price, b.price) {
                std::cmp::Ordering::Less
            } else if better(o.side.opposite(), b.price, a.price) {
                std::cmp::Ordering::Greater
            } else {
                a.arrival.cmp(&b.arrival)
            }
        });
        let mut got = Decimal::ZERO;
        for (met, r) in side.into_iter().enumerate() {
            let crosses = match o.side {
                Side::Buy => r.price <= limit,
                Side::Sell => r.price >= limit,
            };
            if !crosses || got >= want || met == MATCHES_PER_COMMAND_MAX {
                break;
            }
            if r.account == o.account && o.stp != StpMode::None {
                if o.stp == StpMode::CancelMaker {
                    continue;
                }
                break;
            }
            got += r.quantity;
        }
        if got >= want {
            return Err(format!("FOK refused, but {got} of {want} was fillable"));
        }
        Ok(())
    }

    /// A market buy spends at most its budget, applies self-trade prevention only
    /// where it could afford a lot, and stops for money only when it cannot.
    fn check_market_buy(
        &self,
        engine: &Engine<Book>,
        o: &PlaceOrder,
        usd_before: Decimal,
        events: &[Event],
    ) -> Result<(), String> {
        let Some(id) = events.iter().find_map(|e| match e {
            Event::OrderAccepted(a) => Some(a.order),
            _ => None,
        }) else {
            return Ok(());
        };
        let budget = o.cap.map_or(usd_before, |c| c.min(usd_before));
        let spent: Decimal = events
            .iter()
            .filter_map(|e| match e {
                Event::TradeExecuted(t) if t.taker_order == id => {
                    Some(t.price * t.quantity + t.taker_fee)
                }
                _ => None,
            })
            .sum();
        if spent > budget {
            return Err(format!("market buy spent {spent} of a {budget} budget"));
        }
        self.check_market_buy_stp(engine, o, id, budget, events)?;
        self.check_market_buy_stop(engine, o, id, budget - spent, events)
    }

    /// Self-trade prevention acts only where the order would trade: each own ask
    /// it cancelled, and the own ask that stopped it, must have been affordable
    /// (one lot, taker fee included) with what was left.
    fn check_market_buy_stp(
        &self,
        engine: &Engine<Book>,
        o: &PlaceOrder,
        id: OrderId,
        budget: Decimal,
        events: &[Event],
    ) -> Result<(), String> {
        let spec = engine.market(&o.market).unwrap();
        let micros = |usd: Decimal| (usd * Decimal::from(1_000_000)).to_i128().unwrap();
        let lot_cost = |price: Decimal| {
            let n = micros(price * spec.lot_size);
            n + n * spec.taker_fee_bps as i128 / 10_000
        };
        let mut left = micros(budget);
        let stp = gpux_engine::CancelReason::SelfTradePrevention;
        for e in events {
            let blocked_at = match e {
                Event::TradeExecuted(t) if t.taker_order == id => {
                    left -= micros(t.price * t.quantity + t.taker_fee);
                    None
                }
                Event::OrderCancelled(c)
                    if c.resting && c.reason == stp && c.account == o.account =>
                {
                    c.price
                }
                Event::OrderCancelled(c)
                    if c.order == id && c.reason == stp && o.stp == StpMode::CancelTaker =>
                {
                    // The own ask that stopped it is still the best ask.
                    self.front(o.market, Side::Sell).map(|r| r.price)
                }
                _ => None,
            };
            if let Some(price) = blocked_at.filter(|&p| lot_cost(p) > left) {
                return Err(format!(
                    "self-trade prevention at {price}, where one lot costs {} \
                     and the market buy had {left} micro-USD left",
                    lot_cost(price)
                ));
            }
        }
        Ok(())
    }

    /// A market buy whose remainder was cancelled for lack of money could not
    /// afford one more lot of the best ask with the `unspent` rest of its budget.
    fn check_market_buy_stop(
        &self,
        engine: &Engine<Book>,
        o: &PlaceOrder,
        id: OrderId,
        unspent: Decimal,
        events: &[Event],
    ) -> Result<(), String> {
        let out_of_money = events.iter().any(|e| {
            matches!(e, Event::OrderCancelled(c) if c.order == id
                && c.reason == gpux_engine::CancelReason::MarketRemainder)
        });
        if let (true, Some(front)) = (out_of_money, self.front(o.market, Side::Sell)) {
            let spec = engine.market(&o.market).unwrap();
            let micros = (front.price * spec.lot_size * Decimal::from(1_000_000))
                .to_i128()
                .unwrap();
            let lot_cost = micros + micros * spec.taker_fee_bps as i128 / 10_000;
            let left = (unspent * Decimal::from(1_000_000)).to_i128().unwrap();
            if lot_cost <= left {
                return Err(format!(
                    "market buy stopped with {left} micro-USD left; a lot costs {lot_cost}"
                ));
            }
        }
        Ok(())
    }

    /// Applies one command's events, checking each against the rules.
    fn apply(&mut self, events: &[Event]) -> Result<(), String> {
        // Fill-or-kill orders accepted by this command, and what they traded.
        let mut fok: HashMap<OrderId, (Decimal, Decimal)> = HashMap::new();
        for e in events {
            match e {
                Event::Deposited(_)
                | Event::Withdrawn(_)
                | Event::CapacityAdded(_)
                | Event::CapacityRemoved(_) => self.on_transfer(e),
                Event::OrderAccepted(a) => {
                    let rests = matches!(a.time_in_force, TimeInForce::Gtc | TimeInForce::Gtd)
                        && a.order_type == OrderType::Limit;
                    self.orders.insert(a.order, (a.price, rests));
                    if let Some(t) = a.good_till_ns {
                        self.good_till.insert(a.order, t);
                    }
                    if a.time_in_force == TimeInForce::Fok {
                        fok.insert(a.order, (a.quantity, Decimal::ZERO));
                    }
                }
                Event::OrderRested(r) => self.on_rested(r)?,
                Event::TradeExecuted(t) => {
                    self.check_trade(t)?;
                    if let Some(f) = fok.get_mut(&t.taker_order) {
                        f.1 += t.quantity;
                    }
                    self.settle_trade(t)?;
                }
                Event::OrderCancelled(c) => {
                    self.on_cancelled(c)?;
                    if fok.contains_key(&c.order) {
                        return Err(format!("fill-or-kill {} partly cancelled", c.order));
                    }
                }
                Event::OrderAmended(a) => self.on_amended(a)?,
                Event::MarketListed(_)
                | Event::AccountCreated(_)
                | Event::OrderRejected(_)
                | Event::CommandRejected(_)
                | Event::MassCancelled(_)
                | Event::DuplicateRequest(_)
                | Event::ApiKeyAdded(_)
                | Event::ApiKeyRevoked(_) => {}
                // These scripts trade one slot well before its gate (tests/slots.rs
                // covers closing slots).
                Event::DeliveryScheduled(_)
                | Event::InventoryExpired(_)
                | Event::SlotClosed(_)
                | Event::DeliveryReported(_)
                | Event::DeliveryDisputed(_)
                | Event::TradeSettled(_)
                | Event::DeliverySettled(_) => {
                    return Err(format!("unexpected gate closure: {e:?}"));
                }
            }
        }
        for (id, (want, got)) in fok {
            if want != got {
                return Err(format!("fill-or-kill {id} filled {got} of {want}"));
            }
        }
        Ok(())
    }

    /// USD or GPU-hours moved into or out of the exchange.
    fn on_transfer(&mut self, e: &Event) {
        match e {
            Event::Deposited(c) => {
                self.usd_in += c.amount;
                *self.usd.entry(c.account).or_default() += c.amount;
            }
            Event::Withdrawn(c) => {
                self.usd_in -= c.amount;
                *self.usd.entry(c.account).or_default() -= c.amount;
            }
            Event::CapacityAdded(c) => {
                *self.gpu_in.entry(c.market).or_default() += c.quantity;
                *self.gpu.entry((c.account, c.market)).or_default() += c.quantity;
            }
            Event::CapacityRemoved(c) => {
                *self.gpu_in.entry(c.market).or_default() -= c.quantity;
                *self.gpu.entry((c.account, c.market)).or_default() -= c.quantity;
            }
            _ => unreachable!("not a transfer: {e:?}"),
        }
    }

    /// An order rests: only an order that may rest, at its limit, and once.
    fn on_rested(&mut self, r: &gpux_engine::event::OrderRested) -> Result<(), String> {
        let (limit, rests) = self.orders[&r.order];
        if !rests || limit != Some(r.price) {
            return Err(format!("order {} may not rest at {}", r.order, r.price));
        }
        self.arrivals += 1;
        let book = self.books.entry((r.market, r.side)).or_default();
        if book.iter().any(|o| o.id == r.order) {
            return Err(format!("order {} rested twice", r.order));
        }
        book.push(Resting {
            id: r.order,
            account: r.account,
            price: r.price,
            quantity: r.quantity,
            arrival: self.arrivals,
        });
        Ok(())
    }

    /// A trade hits the maker price-time priority says, reports the maker's
    /// remainder right, and is within the taker's limit.
    fn check_trade(&self, t: &gpux_engine::event::TradeExecuted) -> Result<(), String> {
        let maker_side = t.taker_side.opposite();
        let front = self
            .front(t.market, maker_side)
            .ok_or_else(|| format!("trade {} with an empty book", t.trade))?;
        if front.id != t.maker_order || front.price != t.price {
            return Err(format!(
                "trade {} hit #{} @ {}, but price-time priority says #{} @ {}",
                t.trade, t.maker_order, t.price, front.id, front.price
            ));
        }
        if front.quantity - t.quantity != t.maker_remaining {
            return Err(format!("trade {}: maker_remaining is off", t.trade));
        }
        if let Some(limit) = self.orders[&t.taker_order].0 {
            let within = match t.taker_side {
                Side::Buy => t.price <= limit,
                Side::Sell => t.price >= limit,
            };
            if !within {
                return Err(format!(
                    "trade {} at {} is beyond the taker's limit {limit}",
                    t.trade, t.price
                ));
            }
        }
        Ok(())
    }

    /// A fill: the buyer pays the notional and its fee into escrow, the seller is
    /// owed the notional less its fee (nothing settles before delivery); the
    /// maker's open quantity goes down.
    fn settle_trade(&mut self, t: &gpux_engine::event::TradeExecuted) -> Result<(), String> {
        let maker_side = t.taker_side.opposite();
        let (buyer, seller) = match t.taker_side {
            Side::Buy => (t.taker_account, t.maker_account),
            Side::Sell => (t.maker_account, t.taker_account),
        };
        let notional = t.price * t.quantity;
        let (buyer_fee, seller_fee) = match t.taker_side {
            Side::Buy => (t.taker_fee, t.maker_fee),
            Side::Sell => (t.maker_fee, t.taker_fee),
        };
        // Paid on delivery: the buyer's USD goes into escrow, the seller is owed.
        *self.usd.entry(buyer).or_default() -= notional + buyer_fee;
        self.escrow.entry(buyer).or_default().0 += notional + buyer_fee;
        self.escrow.entry(seller).or_default().1 += notional - seller_fee;
        *self.gpu.entry((buyer, t.market)).or_default() += t.quantity;
        *self.gpu.entry((seller, t.market)).or_default() -= t.quantity;
        let mut maker = self.take(t.market, maker_side, t.maker_order)?;
        maker.quantity -= t.quantity;
        if !maker.quantity.is_zero() {
            self.books
                .entry((t.market, maker_side))
                .or_default()
                .push(maker);
        }
        Ok(())
    }

    /// A cancel takes a resting order off as it was, or names an order that
    /// does not rest.
    fn on_cancelled(&mut self, c: &gpux_engine::event::OrderCancelled) -> Result<(), String> {
        if c.resting {
            let r = self.take(c.market, c.side, c.order)?;
            if Some(r.price) != c.price || r.quantity != c.quantity {
                return Err(format!("cancel of {} misreports it", c.order));
            }
        } else if self
            .books
            .get(&(c.market, c.side))
            .is_some_and(|b| b.iter().any(|r| r.id == c.order))
        {
            return Err(format!(
                "{} cancelled as not resting, but it rests",
                c.order
            ));
        }
        Ok(())
    }

    /// An amend reports the order as it was, keeps priority exactly when the
    /// rules say, and (kept) leaves it in place with its new quantity.
    fn on_amended(&mut self, a: &gpux_engine::event::OrderAmended) -> Result<(), String> {
        let mut r = self.take(a.market, a.side, a.order)?;
        if r.price != a.old_price || r.quantity != a.old_quantity {
            return Err(format!("amend of {} misreports it", a.order));
        }
        let kept = a.price == a.old_price && a.quantity <= a.old_quantity;
        if kept != a.priority_kept {
            return Err(format!("amend of {}: priority_kept is wrong", a.order));
        }
        self.orders.get_mut(&a.order).unwrap().0 = Some(a.price);
        if a.priority_kept {
            r.quantity = a.quantity;
            self.books.entry((a.market, a.side)).or_default().push(r);
        }
        Ok(())
    }
}

/// A mass cancel cancels every open order of the account in its scope, reports
/// how many, and leaves none open there.
fn check_mass_cancel(
    engine: &Engine<Book>,
    m: &gpux_engine::command::MassCancel,
    events: &[Event],
) -> Result<(), String> {
    if let Some(Event::MassCancelled(done)) = events.last() {
        let cancelled = events
            .iter()
            .filter(|e| matches!(e, Event::OrderCancelled(c) if c.reason == gpux_engine::CancelReason::MassCancel && c.account == m.account && m.market.is_none_or(|mk| mk == c.market)))
            .count();
        let expired = events
            .iter()
            .filter(|e| matches!(e, Event::OrderCancelled(c) if c.reason == gpux_engine::CancelReason::Expired))
            .count();
        if done.count != cancelled as u64 || events.len() != expired + cancelled + 1 {
            return Err(format!(
                "mass cancel reported {} of {cancelled}",
                done.count
            ));
        }
        let left = engine.open_orders(m.account).unwrap();
        if left
            .iter()
            .any(|o| m.market.is_none_or(|mk| mk == o.market))
        {
            return Err("orders left open in a mass-cancelled scope".into());
        }
    }
    Ok(())
}

/// Everything checked after each command, from the engine's own invariant
/// check, its queries, and the event model.
fn check(engine: &Engine<Book>, model: &Model) -> Result<(), String> {
    engine.check_invariants()?;
    let accounts = [0u64, 1, 2, 3, 4];
    let mut usd_total = Decimal::ZERO;
    let mut gpu_total: BTreeMap<MarketId, Decimal> = BTreeMap::new();
    for a in accounts {
        let Some(view) = engine.balances(a) else {
            continue; // not created yet
        };
        usd_total += view.usd.available + view.usd.held + view.usd.escrow;
        check_balances_match_events(model, a, &view)?;
        let mut gpu_held: BTreeMap<MarketId, Decimal> = BTreeMap::new();
        for p in &view.gpus {
            *gpu_total.entry(p.market).or_default() += p.balance.available + p.balance.held;
            gpu_held.insert(p.market, p.balance.held);
        }
        check_holds(engine, a, &view, &gpu_held)?;
    }
    // Conservation: what came in minus what went out is what accounts hold.
    if usd_total != model.usd_in {
        return Err(format!(
            "USD: accounts hold {usd_total}, net deposits {}",
            model.usd_in
        ));
    }
    if Decimal::from(engine.cash_total_micros()) != model.usd_in * Decimal::from(1_000_000) {
        return Err("cash_total_micros disagrees with net deposits".into());
    }
    for m in MARKETS.map(mid) {
        if engine.market(&m).is_none() {
            continue; // not listed yet
        }
        let held = gpu_total.get(&m).copied().unwrap_or_default();
        let added = model.gpu_in.get(&m).copied().unwrap_or_default();
        if held != added {
            return Err(format!(
                "{m}: accounts hold {held} GPU-hours, net added {added}"
            ));
        }
        check_book_matches_events(engine, model, m)?;
    }
    let resting: usize = model.books.values().map(Vec::len).sum();
    if engine.open_order_count() != resting {
        return Err(format!(
            "{} open orders, events say {resting}",
            engine.open_order_count()
        ));
    }
    Ok(())
}

/// An account's USD and GPU-hours (available + held) equal what its events add
/// up to.
fn check_balances_match_events(
    model: &Model,
    a: u64,
    view: &gpux_engine::AccountView,
) -> Result<(), String> {
    let usd = view.usd.available + view.usd.held;
    let from_events = model.usd.get(&a).copied().unwrap_or_default();
    if usd != from_events {
        return Err(format!(
            "account {a} has {usd} USD, its events say {from_events}"
        ));
    }
    let escrow = (view.usd.escrow, view.usd.pending);
    if escrow != model.escrow.get(&a).copied().unwrap_or_default() {
        return Err(format!(
            "account {a} has escrow and pending {escrow:?}, its events say {:?}",
            model.escrow.get(&a)
        ));
    }
    for m in MARKETS.map(mid) {
        let gpu = view
            .gpus
            .iter()
            .find(|p| p.market == m)
            .map_or(Decimal::ZERO, |p| p.balance.available + p.balance.held);
        let from_events = model.gpu.get(&(a, m)).copied().unwrap_or_default();
        if gpu != from_events {
            return Err(format!(
                "account {a} has {gpu} GPU-hours in {m}, its events say {from_events}"
            ));
        }
    }
    Ok(())
}

/// Holds, recomputed from the open orders with the documented formula, equal
/// what the account holds (`gpu_held`: its held GPU-hours by market).
fn check_holds(
    engine: &Engine<Book>,
    a: u64,
    view: &gpux_engine::AccountView,
    gpu_held: &BTreeMap<MarketId, Decimal>,
) -> Result<(), String> {
    let mut usd_held_micros: i128 = 0;
    let mut want_gpu_held: BTreeMap<MarketId, Decimal> = BTreeMap::new();
    for o in engine.open_orders(a).unwrap() {
        let spec = engine.market(&o.market).unwrap();
        match o.side {
            Side::Buy => {
                let notional = o.price * o.quantity * Decimal::from(1_000_000);
                if !notional.fract().is_zero() {
                    return Err(format!("order {} notional is not whole micro-USD", o.order));
                }
                let n = notional.to_i128().unwrap();
                let bps = spec.maker_fee_bps.max(spec.taker_fee_bps) as i128;
                usd_held_micros += n + n * bps / 10_000;
            }
            Side::Sell => *want_gpu_held.entry(o.market).or_default() += o.quantity,
        }
    }
    let held = (view.usd.held * Decimal::from(1_000_000))
        .to_i128()
        .unwrap();
    if held != usd_held_micros {
        return Err(format!(
            "account {a} holds {held} micro-USD, its open buys need {usd_held_micros}"
        ));
    }
    for m in MARKETS.map(mid) {
        let want = want_gpu_held.get(&m).copied().unwrap_or_default();
        let got = gpu_held.get(&m).copied().unwrap_or_default();
        if want != got {
            return Err(format!(
                "account {a} holds {got} GPU-hours in {m}, needs {want}"
            ));
        }
    }
    Ok(())
}

/// Market `m`'s book is not crossed, and its depth and open orders, rebuilt from
/// events alone, equal the engine's.
fn check_book_matches_events(
    engine: &Engine<Book>,
    model: &Model,
    m: MarketId,
) -> Result<(), String> {
    // The book is never crossed.
    if let (Some(b), Some(a)) = (engine.best_bid(&m, S), engine.best_ask(&m, S)) {
        if b.price >= a.price {
            return Err(format!("{m} crossed: bid {} >= ask {}", b.price, a.price));
        }
    }
    // L2 depth rebuilt from events alone equals the engine's.
    for side in [Side::Buy, Side::Sell] {
        let engine_depth: Vec<(Decimal, Decimal)> = engine
            .depth(&m, S, side, usize::MAX)
            .unwrap()
            .iter()
            .map(|l| (l.price, l.quantity))
            .collect();
        if engine_depth != model.depth(m, side) {
            return Err(format!(
                "{m} {side:?} depth {engine_depth:?}, events say {:?}",
                model.depth(m, side)
            ));
        }
        for r in model.books.get(&(m, side)).into_iter().flatten() {
            let o = engine
                .order(r.id)
                .ok_or(format!("order {} missing", r.id))?;
            if o.price != r.price || o.quantity != r.quantity || o.side != side {
                return Err(format!("order {} differs from its events", r.id));
            }
        }
    }
    Ok(())
}

// ----- the properties ------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The fast book and the reference book make the same engine.
    #[test]
    fn fast_and_reference_engines_agree(script in scripts(200)) {
        let mut fast: Engine<Book> = Engine::new();
        let mut reference: Engine<NaiveBook> = Engine::new();
        for (i, (ts, cmd)) in script.iter().enumerate() {
            let seq = i as u64 + 1;
            let a = run(&mut fast, seq, *ts, cmd);
            let b = run(&mut reference, seq, *ts, cmd);
            prop_assert_eq!(&a, &b, "events differ at seq {} for {:?}", seq, cmd);
            prop_assert_eq!(fast.state_hash(), reference.state_hash(), "state differs at seq {}", seq);
        }
    }

    /// Every invariant holds after every command.
    #[test]
    fn invariants_hold_after_every_command(script in scripts(200)) {
        let mut engine: Engine<Book> = Engine::new();
        let mut model = Model::default();
        for (i, (ts, cmd)) in script.iter().enumerate() {
            // What the command finds available: once engine time has moved to its
            // timestamp, since the expiries its arrival triggers release their
            // holds first (seen on a copy moved there by a tick).
            let usd_before = cmd
                .account()
                .and_then(|a| {
                    let mut at_ts = engine.clone();
                    run(&mut at_ts, i as u64 + 1, *ts, &Command::Tick(gpux_engine::command::Tick {}));
                    at_ts.balances(a)
                })
                .map_or(Decimal::ZERO, |b| b.usd.available);
            let events = run(&mut engine, i as u64 + 1, *ts, cmd);
            let outcome = model
                .apply_command(&engine, *ts, cmd, usd_before, &events)
                .and_then(|()| check(&engine, &model));
            prop_assert!(
                outcome.is_ok(),
                "after seq {} {:?}:\n{}\nevents: {:#?}",
                i + 1, cmd, outcome.unwrap_err(), render_all(&events)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A snapshot taken at any point restores (into either book) to an engine
    /// that continues exactly as the original does.
    #[test]
    fn a_snapshot_taken_midway_replays_identically(
        script in scripts(200),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(script.len() + 1);
        let mut original: Engine<Book> = Engine::new();
        for (i, (ts, cmd)) in script[..cut].iter().enumerate() {
            run(&mut original, i as u64 + 1, *ts, cmd);
        }
        let bytes = original.snapshot();
        let mut restored = Engine::<Book>::restore(&bytes).unwrap();
        let mut reference = Engine::<NaiveBook>::restore(&bytes).unwrap();
        prop_assert_eq!(restored.snapshot(), bytes.clone());
        prop_assert_eq!(reference.snapshot(), bytes);
        prop_assert_eq!(restored.state_hash(), original.state_hash());
        prop_assert_eq!(restored.last_seq(), cut as u64);
        for (i, (ts, cmd)) in script.iter().enumerate().skip(cut) {
            let seq = i as u64 + 1;
            let a = run(&mut original, seq, *ts, cmd);
            prop_assert_eq!(&run(&mut restored, seq, *ts, cmd), &a, "seq {}", seq);
            prop_assert_eq!(&run(&mut reference, seq, *ts, cmd), &a, "seq {}", seq);
            prop_assert_eq!(restored.state_hash(), original.state_hash());
            prop_assert_eq!(reference.state_hash(), original.state_hash());
        }
    }

    /// The same commands give byte-identical JSON events, also on an engine
    /// restored from an empty snapshot.
    #[test]
    fn the_same_commands_give_byte_identical_events(script in scripts(200)) {
        let lines = |engine: &mut Engine<Book>| -> Vec<String> {
            let mut lines = Vec::new();
            for (i, (ts, cmd)) in script.iter().enumerate() {
                let seq = i as u64 + 1;
                for e in run(engine, seq, *ts, cmd) {
                    lines.push(EventEnvelope::new(seq, *ts, None, e).to_json());
                }
            }
            lines.push(engine.state_hash().to_string());
            lines
        };
        let first = lines(&mut Engine::new());
        let fresh = Engine::<Book>::new().snapshot();
        let second = lines(&mut Engine::restore(&fresh).unwrap());
        prop_assert_eq!(first, second);
    }

    /// Every command and every event survives JSON unchanged.
    #[test]
    fn commands_and_events_survive_json(script in scripts(200)) {
        let mut engine: Engine<Book> = Engine::new();
        for (i, (ts, cmd)) in script.iter().enumerate() {
            let json = serde_json::to_string(cmd).unwrap();
            let back: Command = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, cmd);
            prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
            let envelope = CommandEnvelope {
                v: gpux_engine::PROTOCOL_VERSION,
                ts_ns: *ts,
                request_id: Some(format!("r-{i}")),
                idempotent: false,
                command: cmd.clone(),
            };
            prop_assert_eq!(CommandEnvelope::from_json(envelope.to_json().as_bytes()).unwrap(), envelope);

            for e in run(&mut engine, i as u64 + 1, *ts, cmd) {
                let json = serde_json::to_string(&e).unwrap();
                let back: Event = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(&back, &e);
                prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
            }
        }
    }
}

/// The generator reaches what the properties are about: without this, a
/// generator that only produced rejections would pass every property.
#[test]
fn the_generator_exercises_matching() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..20 {
        let script = scripts(200).new_tree(&mut runner).unwrap().current();
        let mut engine: Engine<Book> = Engine::new();
        for (i, (ts, cmd)) in script.iter().enumerate() {
            for e in run(&mut engine, i as u64 + 1, *ts, cmd) {
                let what = match &e {
                    Event::TradeExecuted(_) => "trade",
                    Event::OrderRested(_) => "rest",
                    Event::OrderAmended(a) if a.priority_kept => "amend kept",
                    Event::OrderAmended(_) => "amend lost",
                    Event::OrderCancelled(c) => match c.reason {
                        gpux_engine::CancelReason::Expired => "expired",
                        gpux_engine::CancelReason::SelfTradePrevention => "stp",
                        gpux_engine::CancelReason::MarketRemainder => "market remainder",
                        gpux_engine::CancelReason::IocRemainder => "ioc remainder",
                        gpux_engine::CancelReason::MassCancel => "mass cancel",
                        gpux_engine::CancelReason::UserRequested => "cancel",
                        gpux_engine::CancelReason::MatchLimit => "match limit",
                        gpux_engine::CancelReason::SlotClosed => "slot closed",
                    },
                    Event::OrderRejected(r)
                        if r.reason == gpux_engine::RejectReason::FokNotFillable =>
                    {
                        "fok rejected"
                    }
                    Event::OrderRejected(_) => "order rejected",
                    _ => "other",
                };
                *seen.entry(what).or_default() += 1;
            }
        }
    }
    for what in [
        "trade",
        "rest",
        "amend kept",
        "amend lost",
        "expired",
        "stp",
        "market remainder",
        "ioc remainder",
        "mass cancel",
        "cancel",
        "fok rejected",
        "order rejected",
    ] {
        assert!(
            seen.get(what).copied().unwrap_or(0) > 0,
            "never saw {what}: {seen:?}"
        );
    }
    // Enough matching to matter: on average at least five trades a sequence.
    assert!(seen["trade"] >= 100, "{seen:?}");
}
