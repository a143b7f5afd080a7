//! The per-command bounds: no command makes the engine emit more than
//! [`EVENTS_PER_COMMAND_WORST`] events, however deep the book or however many GTD
//! orders fall due at once.
//!
//! - An order that would meet more than [`MATCHES_PER_COMMAND_MAX`] makers trades
//!   with that many, and the rest of it is cancelled (`match_limit`); its holds
//!   are released and the book is left uncrossed.
//! - Resting orders that self-trade prevention cancels count as makers met.
//! - A FOK order that could only fill by meeting more makers is not fillable.
//! - When more than [`EXPIRIES_PER_COMMAND_MAX`] GTD orders are due, the earliest
//!   are expired before the command and the rest before the following commands,
//!   in expiry order, none lost.
//!
//! The books here hold over ten thousand orders, so these tests drive the fast and
//! the reference engine in lockstep themselves and check invariants at the points
//! that matter, rather than after every command as the scenario harness does.

mod common;

use common::*;
use gpux_engine::limits::{
    EVENTS_PER_COMMAND_WORST, EVENT_JSON_BYTES_MAX, EXPIRIES_PER_COMMAND_MAX,
    MATCHES_PER_COMMAND_MAX, OPEN_ORDERS_PER_ACCOUNT_MAX,
};
use gpux_engine::{
    Book, CancelReason, Command, Engine, Event, NaiveBook, RejectReason, Side, StpMode,
};
use rust_decimal::Decimal;

/// The fast and the reference engine, fed the same commands.
struct Pair {
    fast: Engine<Book>,
    reference: Engine<NaiveBook>,
    seq: u64,
    ts_ns: u64,
}

impl Pair {
    /// Market [`M`] listed (tick 0.01, lot 1, fees 10/20 bps).
    fn new() -> Self {
        let mut p = Pair {
            fast: Engine::new(),
            reference: Engine::new(),
            seq: 0,
            ts_ns: T0,
        };
        p.run(list_market(M, "0.01", "1", 10, 20));
        p
    }

    /// Applies one command to both; they must agree. Returns the events.
    #[track_caller]
    fn run(&mut self, cmd: impl Into<Command>) -> Vec<Event> {
        let cmd = cmd.into();
        self.seq += 1;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        self.fast.apply(self.seq, self.ts_ns, &cmd, &mut a);
        self.reference.apply(self.seq, self.ts_ns, &cmd, &mut b);
        assert_eq!(a, b, "engines disagree on {cmd:?}");
        assert!(
            a.len() <= EVENTS_PER_COMMAND_WORST,
            "{} events for {cmd:?}",
            a.len()
        );
        a
    }

    /// Applies a setup command that must not be rejected.
    #[track_caller]
    fn given(&mut self, cmd: impl Into<Command>) {
        for e in self.run(cmd) {
            assert!(
                !matches!(e, Event::OrderRejected(_) | Event::CommandRejected(_)),
                "setup rejected: {}",
                render(&e)
            );
        }
    }

    /// Both engines pass their own invariant checks and have the same state.
    #[track_caller]
    fn check(&self) {
        self.fast.check_invariants().unwrap();
        self.reference.check_invariants().unwrap();
        assert_eq!(self.fast.state_hash(), self.reference.state_hash());
    }

    fn usd(&self, account: u64) -> (Decimal, Decimal) {
        let b = self.fast.balances(account).unwrap();
        (b.usd.available, b.usd.held)
    }

    fn gpu(&self, account: u64) -> (Decimal, Decimal) {
        let b = self.fast.balances(account).unwrap();
        b.gpus
            .iter()
            .find(|p| p.market == mid(M) && p.slot == S)
            .map_or((Decimal::ZERO, Decimal::ZERO), |p| {
                (p.balance.available, p.balance.held)
            })
    }

    /// `n` one-lot asks at `price`, alternating between accounts 1 and 2
    /// (providers with enough GPU-hours), so no account passes its open-order
    /// limit.
    fn one_lot_asks(&mut self, n: usize, price: &str) {
        for i in 0..n {
            self.given(sell(1 + (i % 2) as u64, "1", price));
        }
    }
}

fn count(events: &[Event], pred: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

fn trades(events: &[Event]) -> usize {
    count(events, |e| matches!(e, Event::TradeExecuted(_)))
}

#[test]
fn a_sweep_over_more_one_lot_asks_than_the_match_bound_cancels_its_rest() {
    let extra = 25;
    let asks = MATCHES_PER_COMMAND_MAX + extra;
    let mut x = Pair::new();
    for a in [1, 2] {
        x.given(create_account(a));
        x.given(add_capacity(a, &asks.to_string()));
    }
    x.given(create_account(3));
    x.given(deposit(3, "100000"));
    x.one_lot_asks(asks, "2.50");
    x.check();

    // A FOK that would need one maker more than the bound cannot fill...
    let fok = (MATCHES_PER_COMMAND_MAX + 1).to_string();
    let events = x.run(buy(3, &fok, "2.50").fok());
    assert!(
        matches!(&events[..], [Event::OrderRejected(r)] if r.reason == RejectReason::FokNotFillable),
        "{:?}",
        render_all(&events)
    );

    // ...and a GTC buy for every ask trades with as many makers as the bound
    // allows; its rest is cancelled rather than rested (the book would cross).
    let events = x.run(buy(3, &asks.to_string(), "2.50"));
    assert_eq!(events.len(), 1 + MATCHES_PER_COMMAND_MAX + 1);
    assert!(matches!(events[0], Event::OrderAccepted(_)));
    assert_eq!(trades(&events), MATCHES_PER_COMMAND_MAX);
    let last = render(events.last().unwrap());
    assert_eq!(
        last,
        format!(
            "cancelled #{} acct 3 buy {extra} @ 2.50: match_limit",
            asks + 1
        )
    );
    x.check();

    // Paid 10,000 × 2.50 = 25,000 plus 20 bps (50); nothing left on hold.
    assert_eq!(x.usd(3), (Decimal::from(100_000 - 25_050), Decimal::ZERO));
    assert_eq!(
        x.gpu(3),
        (Decimal::from(MATCHES_PER_COMMAND_MAX), Decimal::ZERO)
    );
    assert!(x.fast.open_orders(3).unwrap().is_empty());
    let left = x.fast.depth(&mid(M), S, Side::Sell, usize::MAX).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].quantity, Decimal::from(extra));
    assert!(x.fast.best_bid(&mid(M), S).is_none());

    // The exchange goes on: the rest of the book trades with the next order.
    let events = x.run(buy(3, &extra.to_string(), "2.50"));
    assert_eq!(trades(&events), extra);
    x.check();
    assert!(x.fast.best_ask(&mid(M), S).is_none());
}

#[test]
fn a_market_sell_sweeping_one_lot_bids_stops_at_the_match_bound() {
    let bids = MATCHES_PER_COMMAND_MAX + 3;
    let mut x = Pair::new();
    for a in [1, 2] {
        x.given(create_account(a));
        x.given(deposit(a, "100000"));
    }
    x.given(create_account(3));
    x.given(add_capacity(3, &(bids + 10).to_string()));
    for i in 0..bids {
        x.given(buy(1 + (i % 2) as u64, "1", "2.00"));
    }
    let events = x.run(market_sell(3, &(bids + 10).to_string()));
    assert_eq!(trades(&events), MATCHES_PER_COMMAND_MAX);
    assert_eq!(
        render(events.last().unwrap()),
        format!("cancelled #{} acct 3 sell 13 market: match_limit", bids + 1)
    );
    x.check();
    assert_eq!(
        x.gpu(3),
        (
            Decimal::from(bids + 10 - MATCHES_PER_COMMAND_MAX),
            Decimal::ZERO
        )
    );
}

#[test]
fn orders_cancelled_by_self_trade_prevention_count_against_the_match_bound() {
    // Account 1 rests as many asks as it may; account 2 rests three behind them.
    let mut x = Pair::new();
    x.given(create_account(1));
    x.given(add_capacity(1, &OPEN_ORDERS_PER_ACCOUNT_MAX.to_string()));
    x.given(deposit(1, "1000"));
    x.given(create_account(2));
    x.given(add_capacity(2, "3"));
    for _ in 0..OPEN_ORDERS_PER_ACCOUNT_MAX {
        x.given(sell(1, "1", "2.50"));
    }
    x.given(sell(2, "3", "2.50"));
    const { assert!(OPEN_ORDERS_PER_ACCOUNT_MAX >= MATCHES_PER_COMMAND_MAX) };

    // A FOK with cancel_maker would have to pass them all: not fillable, and
    // nothing changes.
    let events = x.run(buy(1, "3", "2.50").fok().stp(StpMode::CancelMaker));
    assert!(
        matches!(&events[..], [Event::OrderRejected(r)] if r.reason == RejectReason::FokNotFillable)
    );
    assert_eq!(x.fast.open_order_count(), OPEN_ORDERS_PER_ACCOUNT_MAX + 1);

    // An IOC with cancel_maker removes own asks until the bound, then stops.
    let events = x.run(buy(1, "3", "2.50").ioc().stp(StpMode::CancelMaker));
    assert_eq!(events.len(), 1 + MATCHES_PER_COMMAND_MAX + 1);
    let stp = count(
        &events,
        |e| matches!(e, Event::OrderCancelled(c) if c.resting && c.reason == CancelReason::SelfTradePrevention),
    );
    assert_eq!(stp, MATCHES_PER_COMMAND_MAX);
    assert_eq!(trades(&events), 0);
    assert!(matches!(
        events.last().unwrap(),
        Event::OrderCancelled(c) if !c.resting && c.reason == CancelReason::MatchLimit
    ));
    x.check();
    assert_eq!(x.usd(1), (Decimal::from(1000), Decimal::ZERO));
    // What the bound left: account 1's asks beyond it, then account 2's.
    assert_eq!(
        x.fast.open_order_count(),
        OPEN_ORDERS_PER_ACCOUNT_MAX - MATCHES_PER_COMMAND_MAX + 1
    );
}

#[test]
fn more_due_expiries_than_the_bound_are_spread_over_later_commands_oldest_first() {
    let due = EXPIRIES_PER_COMMAND_MAX + 40;
    let mut x = Pair::new();
    for a in [1, 2] {
        x.given(create_account(a));
        x.given(add_capacity(a, &due.to_string()));
    }
    x.given(create_account(3));
    // Distinct expiries in a scrambled order (7,919 is prime, so i ↦ 7,919·i mod
    // due is a permutation), so that expiry order is not placement order.
    let base = 1_000_000;
    let mut expiry_of = std::collections::BTreeMap::new();
    for i in 0..due {
        let till = base + ((i * 7_919) % due) as u64;
        let placed = x.run(sell(1 + (i % 2) as u64, "1", "2.50").gtd(till));
        expiry_of.insert(accepted_id(&placed), till);
    }
    x.check();

    // Every one is due before the next command.
    x.ts_ns = base + due as u64 + 1;
    let first = x.run(deposit(3, "1"));
    assert_eq!(first.len(), EXPIRIES_PER_COMMAND_MAX + 1);
    assert!(matches!(first.last().unwrap(), Event::Deposited(_)));
    x.check();
    assert_eq!(
        x.fast.open_order_count(),
        due - EXPIRIES_PER_COMMAND_MAX,
        "the rest still rests"
    );
    let second = x.run(deposit(3, "1"));
    assert_eq!(second.len(), due - EXPIRIES_PER_COMMAND_MAX + 1);
    assert!(matches!(second.last().unwrap(), Event::Deposited(_)));
    x.check();

    // All expired, each once, earliest expiry first across both commands.
    let expired: Vec<u64> = first
        .iter()
        .chain(&second)
        .filter_map(|e| match e {
            Event::OrderCancelled(c) if c.reason == CancelReason::Expired => Some(c.order),
            _ => None,
        })
        .collect();
    assert_eq!(expired.len(), due);
    let tills: Vec<u64> = expired.iter().map(|id| expiry_of[id]).collect();
    let sorted: Vec<u64> = (base..base + due as u64).collect();
    assert_eq!(tills, sorted);
    assert_eq!(x.fast.open_order_count(), 0);
    for a in [1, 2] {
        assert_eq!(x.gpu(a), (Decimal::from(due), Decimal::ZERO));
    }
    // Nothing more to expire.
    assert_eq!(x.run(deposit(3, "1")).len(), 1);
}

/// The widest value every decimal field can take in an event.
fn widest() -> Decimal {
    Decimal::from_i128_with_scale(-Decimal::MAX.mantissa(), 27)
}

/// The widest event of each shape: every id, market, client order id and decimal
/// at its longest.
fn widest_events() -> Vec<Event> {
    use gpux_engine::event::*;
    use gpux_engine::{ClientOrderId, CommandKind, MarketId, OrderType, TimeInForce};
    let market: MarketId = format!("{}.{}", "a".repeat(16), "b".repeat(15))
        .parse()
        .unwrap();
    assert_eq!(market.as_str().len(), MarketId::MAX_LEN);
    let client: ClientOrderId = "c".repeat(ClientOrderId::MAX_LEN).parse().unwrap();
    let (w, id) = (widest(), u64::MAX);
    let mut events = vec![
        Event::MarketListed(MarketListed {
            market,
            tick_size: w,
            lot_size: w,
            maker_fee_bps: u32::MAX,
            taker_fee_bps: u32::MAX,
            min_price: w,
            max_price: w,
            max_order_quantity: w,
            slot_horizon_hours: u32::MAX,
            gate_closure_secs: u32::MAX,
            report_window_secs: u32::MAX,
            dispute_window_secs: u32::MAX,
        }),
        Event::OrderAccepted(OrderAccepted {
            order: id,
            account: id,
            market,
            slot: id,
            to_slot: Some(id),
            colocate: true,
            side: Side::Sell,
            order_type: OrderType::Market,
            price: Some(w),
            quantity: w,
            time_in_force: TimeInForce::Gtd,
            good_till_ns: Some(id),
            post_only: true,
            stp: StpMode::CancelMaker,
            client_order_id: Some(client),
        }),
        Event::OrderRejected(Rejection {
            command: CommandKind::AmendOrder,
            account: Some(id),
            market: Some(market),
            order: Some(id),
            client_order_id: Some(client),
            reason: RejectReason::InsufficientCapacity,
        }),
        Event::TradeExecuted(TradeExecuted {
            trade: id,
            market,
            slot: id,
            price: w,
            quantity: w,
            taker_side: Side::Sell,
            maker_order: id,
            maker_account: id,
            taker_order: id,
            taker_account: id,
            maker_fee: w,
            taker_fee: w,
            maker_remaining: w,
            taker_remaining: w,
        }),
    ];
    events.extend(widest_order_changes(market));
    events.extend(widest_gate_events(market));
    events.extend(widest_settlement_events(market));
    events
}

/// The widest events that change or end an open order, and capacity moves.
fn widest_order_changes(market: gpux_engine::MarketId) -> Vec<Event> {
    use gpux_engine::event::*;
    let (w, id) = (widest(), u64::MAX);
    vec![
        Event::OrderCancelled(OrderCancelled {
            order: id,
            account: id,
            market,
            slot: id,
            side: Side::Sell,
            price: Some(w),
            quantity: w,
            reason: CancelReason::SelfTradePrevention,
            resting: false,
        }),
        Event::OrderAmended(OrderAmended {
            order: id,
            account: id,
            market,
            slot: id,
            side: Side::Sell,
            old_price: w,
            old_quantity: w,
            price: w,
            quantity: w,
            priority_kept: false,
        }),
        Event::CapacityRemoved(CapacityMoved {
            account: id,
            market,
            from_slot: id,
            to_slot: id,
            quantity: w,
        }),
        Event::MassCancelled(MassCancelled {
            account: id,
            market: Some(market),
            slot: Some(id),
            count: id,
        }),
    ]
}

/// The widest events of a slot's gate closure. The delivery here went through the
/// most trades a GPU may go through in a slot (`TRADES_PER_LOT_MAX`).
fn widest_gate_events(market: gpux_engine::MarketId) -> Vec<Event> {
    use gpux_engine::event::*;
    let (w, id) = (widest(), u64::MAX);
    vec![
        Event::DeliveryScheduled(DeliveryScheduled {
            entry: id,
            market,
            slot: id,
            provider: id,
            holder: id,
            quantity: w,
            trades: vec![id; gpux_engine::limits::TRADES_PER_LOT_MAX],
            report_until: id,
            dispute_until: id,
        }),
        Event::InventoryExpired(InventoryExpired {
            account: id,
            market,
            slot: id,
            quantity: w,
        }),
        Event::SlotClosed(SlotClosed {
            market,
            slot: id,
            scheduled: w,
            expired: w,
        }),
    ]
}

/// The widest events of delivery and settlement.
fn widest_settlement_events(market: gpux_engine::MarketId) -> Vec<Event> {
    use gpux_engine::event::*;
    let (w, id) = (widest(), u64::MAX);
    vec![
        Event::DeliveryReported(DeliveryReported {
            entry: id,
            provider: id,
            market,
            slot: id,
            delivered: w,
        }),
        Event::DeliveryDisputed(DeliveryDisputed {
            entry: id,
            holder: id,
            market,
            slot: id,
            received: w,
            reported: Some(w),
        }),
        Event::TradeSettled(TradeSettled {
            entry: id,
            trade: id,
            buyer: id,
            seller: id,
            quantity: w,
            delivered: w,
            paid: w,
            refunded: w,
            fees: w,
        }),
        Event::DeliverySettled(DeliverySettled {
            entry: id,
            market,
            slot: id,
            provider: id,
            holder: id,
            quantity: w,
            delivered: w,
            basis: SettlementBasis::Unreported,
            dispute_lost: true,
            paid: w,
            refunded: w,
            fees: w,
        }),
    ]
}

#[test]
fn no_event_is_longer_than_the_event_bound() {
    for e in &widest_events() {
        // The ledger's encoding is never longer than the JSON the bound is for,
        // and gives back exactly that JSON.
        let stored = e.to_bytes();
        assert!(stored.len() <= e.to_json_vec().len(), "{e:?}");
        let back = Event::from_bytes(&stored).expect("decodes");
        assert_eq!(back.to_json_vec(), e.to_json_vec());
        let bytes = e.to_json_vec().len();
        assert!(
            bytes <= EVENT_JSON_BYTES_MAX,
            "{bytes} bytes: {}",
            String::from_utf8_lossy(&e.to_json_vec())
        );
    }
}
