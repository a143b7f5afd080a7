//! The exchange state machine: markets, accounts, holds, matching and fees.
//!
//! [`Engine::apply`] is the only way state changes. It is handed the command's
//! sequence number and timestamp (time is an argument, never read from a clock),
//! validates the command completely before touching anything, and reports every
//! outcome as events. A rejected command emits one rejection event and changes
//! nothing. Panics are reserved for broken invariants (bugs), never for input.

use crate::account::{Account, Balance};
use crate::book::{Book, OrderBook, RestingOrder};
use crate::command::{
    AmendOrder, CancelOrder, CapacityTransfer, CashTransfer, Command, CommandEnvelope, CommandKind,
    CreateAccount, ListMarket, MassCancel, PlaceOrder,
};
use crate::event::{
    AccountCreated, CapacityMoved, CashMoved, DuplicateRequest, Event, EventSink, MarketListed,
    MassCancelled, OrderAccepted, OrderAmended, OrderCancelled, OrderRested, Rejection,
    TradeExecuted,
};
use crate::limits::{
    ACCOUNTS_MAX, CASH_TOTAL_MAX_MICROS, EXPIRIES_PER_COMMAND_MAX, LOTS_TOTAL_MAX, MARKETS_MAX,
    MATCHES_PER_COMMAND_MAX, OPEN_ORDERS_PER_ACCOUNT_MAX, OPEN_ORDERS_PER_BOOK_MAX,
};
use crate::market::{MarketSpec, OrderShape};
use crate::reject::RejectReason;
use crate::requests::RequestWindow;
use crate::types::{
    AccountId, CancelReason, ClientOrderId, MarketId, OrderId, OrderType, Side, StpMode,
    TimeInForce, TradeId, FEE_ACCOUNT,
};
use crate::units::{cash_decimal, cash_micros};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

/// One market inside the engine.
#[derive(Debug, Clone)]
pub(crate) struct MarketState<B> {
    pub spec: MarketSpec,
    pub book: B,
    /// Sum of all accounts' GPU-hour balances in this market, in lots.
    pub lots_total: u64,
}

/// The matching engine. `B` is the order book; [`Book`] by default, and
/// [`NaiveBook`](crate::NaiveBook) for the reference model in tests.
#[derive(Debug, Clone)]
pub struct Engine<B: OrderBook = Book> {
    pub(crate) markets: Vec<MarketState<B>>,
    pub(crate) market_index: FxHashMap<MarketId, usize>,
    pub(crate) accounts: FxHashMap<AccountId, Account>,
    /// Market index of every open order (looked up, never iterated).
    pub(crate) order_market: FxHashMap<OrderId, usize>,
    /// Open GTD orders by expiry.
    pub(crate) expiries: BTreeSet<(u64, OrderId)>,
    pub(crate) next_order_id: OrderId,
    pub(crate) next_trade_id: TradeId,
    pub(crate) last_seq: u64,
    pub(crate) last_ts_ns: u64,
    /// Sum of all USD balances, in micro-USD: changes only by deposits and withdrawals.
    pub(crate) cash_total: u64,
    /// The id `create_account` without an id gets: the lowest id no account has.
    pub(crate) next_account_id: AccountId,
    /// Idempotent request ids applied within the window.
    pub(crate) requests: RequestWindow,
}

/// Why [`Engine::run_match`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchEnd {
    /// Filled, or nothing more it can trade with: no crossing maker left, or a
    /// market buy cannot afford one more lot.
    Done,
    /// Self-trade prevention stopped it: the rest is cancelled.
    SelfTrade,
    /// It met [`MATCHES_PER_COMMAND_MAX`] makers and would meet another: the rest
    /// is cancelled.
    MatchLimit,
}

/// An incoming order while it matches.
struct Taker {
    id: OrderId,
    account: AccountId,
    side: Side,
    /// Limit price; `None` for market orders.
    limit: Option<i64>,
    remaining: u64,
    stp: StpMode,
    /// Market buys: USD still held to spend.
    budget: Option<u64>,
}

impl<B: OrderBook> Default for Engine<B> {
    fn default() -> Self {
        Self::new()
    }
}

fn rejection(cmd: &Command, reason: RejectReason) -> Event {
    let (order, client_order_id) = match cmd {
        Command::PlaceOrder(c) => (None, c.client_order_id),
        Command::CancelOrder(c) => (c.order_id, c.client_order_id),
        Command::AmendOrder(c) => (c.order_id, c.client_order_id),
        _ => (None, None),
    };
    let r = Rejection {
        command: cmd.kind(),
        account: cmd.account(),
        market: cmd.market(),
        order,
        client_order_id,
        reason,
    };
    match r.command {
        CommandKind::PlaceOrder
        | CommandKind::CancelOrder
        | CommandKind::AmendOrder
        | CommandKind::MassCancel => Event::OrderRejected(r),
        _ => Event::CommandRejected(r),
    }
}

impl<B: OrderBook> Engine<B> {
    /// An empty exchange: no markets, and only the fee account (0).
    pub fn new() -> Self {
        let mut accounts = FxHashMap::default();
        accounts.insert(FEE_ACCOUNT, Account::default());
        Engine {
            markets: Vec::new(),
            market_index: FxHashMap::default(),
            accounts,
            order_market: FxHashMap::default(),
            expiries: BTreeSet::new(),
            next_order_id: 1,
            next_trade_id: 1,
            last_seq: 0,
            last_ts_ns: 0,
            cash_total: 0,
            next_account_id: 1,
            requests: RequestWindow::default(),
        }
    }

    /// Applies one command. `seq` must be greater than the last applied one (the
    /// sequencer guarantees it). A `ts_ns` earlier than the last applied timestamp
    /// is raised to it, so engine time never goes backwards. GTD orders whose time
    /// has passed are expired first, then the command takes effect or is rejected.
    pub fn apply<S: EventSink>(&mut self, seq: u64, ts_ns: u64, cmd: &Command, out: &mut S) {
        self.apply_request(seq, ts_ns, None, cmd, out);
    }

    /// [`apply`](Self::apply) for a command whose envelope made it idempotent
    /// under `request_id` ([`CommandEnvelope::idempotent_request_id`]). When a
    /// command with the same id was applied within the window (see
    /// [`REQUEST_IDS_REMEMBERED_MAX`](crate::limits::REQUEST_IDS_REMEMBERED_MAX)
    /// and [`REQUEST_ID_WINDOW_NS`](crate::limits::REQUEST_ID_WINDOW_NS)), the
    /// command is not applied: it emits one `duplicate_request` naming the original
    /// command, and only its sequence number and time take effect (GTD orders past
    /// their time expire first, as before any command). Otherwise it is applied and
    /// its id remembered, whether it was accepted or rejected. With `None` this is
    /// [`apply`](Self::apply).
    pub fn apply_request<S: EventSink>(
        &mut self,
        seq: u64,
        ts_ns: u64,
        idempotent_request_id: Option<&str>,
        cmd: &Command,
        out: &mut S,
    ) {
        let ts_ns = self.advance(seq, ts_ns, out);
        if let Some(request_id) = idempotent_request_id {
            if let Some(original_cmd_seq) = self.requests.original(request_id) {
                out.push(Event::DuplicateRequest(DuplicateRequest {
                    request_id: request_id.to_string(),
                    original_cmd_seq,
                }));
                return;
            }
        }
        self.dispatch(ts_ns, cmd, out);
        if let Some(request_id) = idempotent_request_id {
            self.requests.remember(seq, ts_ns, request_id);
        }
    }

    /// Applies `cmd` at (monotonic) `ts_ns`: its effect, or one rejection event.
    fn dispatch<S: EventSink>(&mut self, ts_ns: u64, cmd: &Command, out: &mut S) {
        let result = match cmd {
            Command::ListMarket(c) => self.list_market(c, out),
            Command::CreateAccount(c) => self.create_account(c, out),
            Command::Deposit(c) => self.deposit(c, out),
            Command::Withdraw(c) => self.withdraw(c, out),
            Command::AddCapacity(c) => self.add_capacity(c, out),
            Command::RemoveCapacity(c) => self.remove_capacity(c, out),
            Command::PlaceOrder(c) => self.place(ts_ns, c, out),
            Command::CancelOrder(c) => self.cancel(c, out),
            Command::AmendOrder(c) => self.amend(c, out),
            Command::MassCancel(c) => self.mass_cancel(c, out),
        };
        if let Err(reason) = result {
            out.push(rejection(cmd, reason));
        }
    }

    /// Applies a command given as protocol JSON (a [`CommandEnvelope`]), as it sits
    /// in the command log. Bytes that do not decode still take their sequence
    /// number: they produce one `command_rejected` event with reason
    /// `malformed_command` and change nothing else, so a poison message is
    /// recorded and never stops the engine. Returns the envelope when it decoded.
    pub fn apply_json<S: EventSink>(
        &mut self,
        seq: u64,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut S,
    ) -> Option<CommandEnvelope> {
        match CommandEnvelope::from_json(bytes) {
            Ok(env) => {
                self.apply_request(seq, ts_ns, env.idempotent_request_id(), &env.command, out);
                Some(env)
            }
            Err(_) => {
                self.advance(seq, ts_ns, out);
                out.push(Event::CommandRejected(Rejection {
                    command: CommandKind::Unknown,
                    account: None,
                    market: None,
                    order: None,
                    client_order_id: None,
                    reason: RejectReason::MalformedCommand,
                }));
                None
            }
        }
    }

    /// Moves engine time to a command: checks and records its sequence number,
    /// makes its timestamp monotonic, forgets request ids now out of the window,
    /// and expires GTD orders now past (at most [`EXPIRIES_PER_COMMAND_MAX`]; any
    /// more go before the following commands).
    fn advance<S: EventSink>(&mut self, seq: u64, ts_ns: u64, out: &mut S) -> u64 {
        assert!(
            seq > self.last_seq,
            "sequence {seq} after {}: the sequencer must increase it",
            self.last_seq
        );
        self.last_seq = seq;
        let ts_ns = ts_ns.max(self.last_ts_ns);
        self.last_ts_ns = ts_ns;
        self.requests.forget_expired(ts_ns);
        self.expire(ts_ns, out);
        ts_ns
    }

    /// The last applied sequence number (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The last applied (monotonic) timestamp.
    pub fn last_ts_ns(&self) -> u64 {
        self.last_ts_ns
    }

    // ----- reference data and balances -------------------------------------------

    fn market_ix(&self, id: &MarketId) -> Result<usize, RejectReason> {
        self.market_index
            .get(id)
            .copied()
            .ok_or(RejectReason::UnknownMarket)
    }

    fn account(&self, id: AccountId) -> Result<&Account, RejectReason> {
        if id == FEE_ACCOUNT {
            return Err(RejectReason::ReservedAccount);
        }
        self.accounts.get(&id).ok_or(RejectReason::UnknownAccount)
    }

    fn acct(&mut self, id: AccountId) -> &mut Account {
        self.accounts
            .get_mut(&id)
            .expect("account checked to exist")
    }

    fn list_market<S: EventSink>(
        &mut self,
        c: &ListMarket,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let spec = MarketSpec::new(
            c.market,
            c.tick_size,
            c.lot_size,
            c.maker_fee_bps,
            c.taker_fee_bps,
            c.min_price,
            c.max_price,
            c.max_order_quantity,
        )?;
        if self.market_index.contains_key(&c.market) {
            return Err(RejectReason::MarketExists);
        }
        if self.markets.len() >= MARKETS_MAX {
            return Err(RejectReason::LimitReached);
        }
        out.push(Event::MarketListed(MarketListed {
            market: spec.id,
            tick_size: spec.tick_size,
            lot_size: spec.lot_size,
            maker_fee_bps: spec.maker_fee_bps,
            taker_fee_bps: spec.taker_fee_bps,
            min_price: spec.price(spec.min_price_ticks),
            max_price: spec.price(spec.max_price_ticks),
            max_order_quantity: spec.quantity(spec.max_order_lots),
        }));
        self.market_index.insert(spec.id, self.markets.len());
        self.markets.push(MarketState {
            spec,
            book: B::default(),
            lots_total: 0,
        });
        Ok(())
    }

    /// Opens an account: the requested id, or the lowest id no account has. Ids
    /// are never freed, so every id below `next_account_id` is taken and the lowest
    /// free id is at most the number of accounts: with fewer than [`ACCOUNTS_MAX`]
    /// accounts there always is one, whatever explicit ids (up to `u64::MAX`) exist.
    fn create_account<S: EventSink>(
        &mut self,
        c: &CreateAccount,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let account = match c.account {
            Some(FEE_ACCOUNT) => return Err(RejectReason::ReservedAccount),
            Some(a) if self.accounts.contains_key(&a) => return Err(RejectReason::AccountExists),
            Some(a) => a,
            None => self.next_account_id,
        };
        if self.accounts.len() >= ACCOUNTS_MAX {
            return Err(RejectReason::LimitReached);
        }
        self.accounts.insert(account, Account::default());
        // Skip every id now taken (the one just assigned, and explicit ids above it).
        while self.accounts.contains_key(&self.next_account_id) {
            self.next_account_id += 1;
        }
        out.push(Event::AccountCreated(AccountCreated { account }));
        Ok(())
    }

    fn deposit<S: EventSink>(&mut self, c: &CashTransfer, out: &mut S) -> Result<(), RejectReason> {
        self.account(c.account)?;
        let amount = cash_micros(c.amount).ok_or(RejectReason::InvalidAmount)?;
        let total = self
            .cash_total
            .checked_add(amount)
            .filter(|&t| t <= CASH_TOTAL_MAX_MICROS)
            .ok_or(RejectReason::BalanceLimitExceeded)?;
        self.cash_total = total;
        let cash = &mut self.acct(c.account).cash;
        cash.available += amount;
        let available = cash_decimal(cash.available);
        out.push(Event::Deposited(CashMoved {
            account: c.account,
            amount: cash_decimal(amount),
            available,
        }));
        Ok(())
    }

    fn withdraw<S: EventSink>(
        &mut self,
        c: &CashTransfer,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        // The fee account may withdraw the exchange's fees.
        let account = self
            .accounts
            .get(&c.account)
            .ok_or(RejectReason::UnknownAccount)?;
        let amount = cash_micros(c.amount).ok_or(RejectReason::InvalidAmount)?;
        if account.cash.available < amount {
            return Err(RejectReason::InsufficientFunds);
        }
        self.cash_total -= amount;
        let cash = &mut self.acct(c.account).cash;
        cash.available -= amount;
        let available = cash_decimal(cash.available);
        out.push(Event::Withdrawn(CashMoved {
            account: c.account,
            amount: cash_decimal(amount),
            available,
        }));
        Ok(())
    }

    fn add_capacity<S: EventSink>(
        &mut self,
        c: &CapacityTransfer,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let mi = self.market_ix(&c.market)?;
        self.account(c.account)?;
        let spec = &self.markets[mi].spec;
        let lots = spec.lots(c.quantity)?;
        let total = self.markets[mi]
            .lots_total
            .checked_add(lots)
            .filter(|&t| t <= LOTS_TOTAL_MAX)
            .ok_or(RejectReason::BalanceLimitExceeded)?;
        self.markets[mi].lots_total = total;
        let position = self.acct(c.account).position(mi);
        position.available += lots;
        let available = position.available;
        let spec = &self.markets[mi].spec;
        out.push(Event::CapacityAdded(CapacityMoved {
            account: c.account,
            market: c.market,
            quantity: spec.quantity(lots),
            available: spec.quantity(available),
        }));
        Ok(())
    }

    fn remove_capacity<S: EventSink>(
        &mut self,
        c: &CapacityTransfer,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let mi = self.market_ix(&c.market)?;
        let account = self.account(c.account)?;
        let lots = self.markets[mi].spec.lots(c.quantity)?;
        if account.position_of(mi).available < lots {
            return Err(RejectReason::InsufficientCapacity);
        }
        self.markets[mi].lots_total -= lots;
        let position = self.acct(c.account).position(mi);
        position.available -= lots;
        let available = position.available;
        let spec = &self.markets[mi].spec;
        out.push(Event::CapacityRemoved(CapacityMoved {
            account: c.account,
            market: c.market,
            quantity: spec.quantity(lots),
            available: spec.quantity(available),
        }));
        Ok(())
    }

    // ----- orders ----------------------------------------------------------------

    fn place<S: EventSink>(
        &mut self,
        ts_ns: u64,
        o: &PlaceOrder,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        use RejectReason::*;
        let mi = self.market_ix(&o.market)?;
        let account = self.account(o.account)?;
        let market = &self.markets[mi];
        let spec = &market.spec;

        // Shape (2xx), in code order.
        let OrderShape {
            tif,
            cap,
            limit,
            lots,
        } = spec.check_order(o, ts_ns)?;

        // Risk and limits (3xx).
        let budget = match (o.side, limit) {
            (Side::Buy, Some(l)) => {
                if account.cash.available < spec.buy_hold(l, lots) {
                    return Err(InsufficientFunds);
                }
                None
            }
            (Side::Buy, None) => {
                let b = account.cash.available.min(cap.unwrap_or(u64::MAX));
                if b == 0 {
                    return Err(InsufficientFunds);
                }
                Some(b)
            }
            (Side::Sell, _) => {
                if account.position_of(mi).available < lots {
                    return Err(InsufficientCapacity);
                }
                None
            }
        };
        if tif.rests() {
            if account.open_orders.len() >= OPEN_ORDERS_PER_ACCOUNT_MAX {
                return Err(TooManyOpenOrders);
            }
            if market.book.len() >= OPEN_ORDERS_PER_BOOK_MAX {
                return Err(BookFull);
            }
        }

        // Book state (4xx).
        if o.client_order_id
            .is_some_and(|c| account.client_ids.contains_key(&c))
        {
            return Err(DuplicateClientOrderId);
        }
        let opposite_best = market.book.best_price(o.side.opposite());
        if o.post_only && opposite_best.is_some_and(|b| o.side.crosses(limit.expect("limit"), b)) {
            return Err(PostOnlyWouldCross);
        }
        if tif == TimeInForce::Fok
            && !self.fok_fillable(mi, o.account, o.side, limit.expect("limit"), lots, o.stp)
        {
            return Err(FokNotFillable);
        }

        // Accepted: take the hold, then match.
        let id = self.next_order_id;
        self.next_order_id += 1;
        let hold = match (o.side, limit, budget) {
            (Side::Buy, _, Some(b)) => b,
            (Side::Buy, Some(l), None) => self.markets[mi].spec.buy_hold(l, lots),
            _ => lots,
        };
        let acct = self.acct(o.account);
        match o.side {
            Side::Buy => acct.cash.hold(hold),
            Side::Sell => acct.position(mi).hold(hold),
        }
        out.push(Event::OrderAccepted(OrderAccepted {
            order: id,
            account: o.account,
            market: o.market,
            side: o.side,
            order_type: o.order_type,
            price: o
                .price
                .map(|_| self.markets[mi].spec.price(limit.expect("limit"))),
            quantity: self.markets[mi].spec.quantity(lots),
            time_in_force: tif,
            good_till_ns: o.good_till_ns,
            post_only: o.post_only,
            stp: o.stp,
            client_order_id: o.client_order_id,
        }));
        let mut taker = Taker {
            id,
            account: o.account,
            side: o.side,
            limit,
            remaining: lots,
            stp: o.stp,
            budget,
        };
        let reason = match self.run_match(mi, &mut taker, out) {
            MatchEnd::SelfTrade => Some(CancelReason::SelfTradePrevention),
            MatchEnd::MatchLimit => {
                assert!(
                    tif != TimeInForce::Fok,
                    "FOK checked fillable within the bound"
                );
                Some(CancelReason::MatchLimit)
            }
            MatchEnd::Done if taker.remaining == 0 => None,
            MatchEnd::Done => match tif {
                _ if o.order_type == OrderType::Market => Some(CancelReason::MarketRemainder),
                TimeInForce::Ioc => Some(CancelReason::IocRemainder),
                TimeInForce::Fok => unreachable!("FOK checked fillable"),
                TimeInForce::Gtc | TimeInForce::Gtd => None,
            },
        };
        let template = RestingOrder {
            id,
            account: o.account,
            side: o.side,
            price_ticks: limit.unwrap_or(0),
            quantity_lots: taker.remaining,
            good_till_ns: o.good_till_ns,
            post_only: o.post_only,
            stp: o.stp,
            client_order_id: o.client_order_id,
        };
        self.finish(mi, &taker, template, reason, false, out);
        Ok(())
    }

    /// Whether a FOK order could fill completely now, under its STP mode, without
    /// changing anything: the same walk [`run_match`](Self::run_match) would make,
    /// including its bound of [`MATCHES_PER_COMMAND_MAX`] makers met. Own orders
    /// skipped by `cancel_maker` do not count towards the quantity (matching would
    /// cancel them) but do count as makers met.
    fn fok_fillable(
        &self,
        mi: usize,
        account: AccountId,
        side: Side,
        limit: i64,
        lots: u64,
        stp: StpMode,
    ) -> bool {
        let mut need = lots;
        let mut met = 0usize;
        self.markets[mi].book.visit(side.opposite(), &mut |o| {
            if !side.crosses(limit, o.price_ticks) || met == MATCHES_PER_COMMAND_MAX {
                return false;
            }
            met += 1;
            if o.account == account && stp != StpMode::None {
                // cancel_maker skips the order; the other modes stop matching.
                return stp == StpMode::CancelMaker;
            }
            need = need.saturating_sub(o.quantity_lots);
            need > 0
        });
        need == 0
    }

    /// Matches `t` against the book, front maker first, and says why it stopped.
    ///
    /// For each maker, in this order: the order stops if the maker's price does not
    /// cross its limit, or (a market buy) if not one lot at that price is
    /// affordable; then, if it has already met [`MATCHES_PER_COMMAND_MAX`] makers,
    /// it stops for the bound; then self-trade prevention applies to an own maker;
    /// else it trades. So STP acts only where the order would otherwise trade, and
    /// each maker met emits exactly one event (a trade or an STP cancel), which
    /// bounds the events of one command.
    fn run_match<S: EventSink>(&mut self, mi: usize, t: &mut Taker, out: &mut S) -> MatchEnd {
        let opposite = t.side.opposite();
        let mut met = 0usize;
        while t.remaining > 0 {
            let Some(&maker) = self.markets[mi].book.front(opposite) else {
                break;
            };
            if t.limit
                .is_some_and(|l| !t.side.crosses(l, maker.price_ticks))
            {
                break;
            }
            let mut lots = t.remaining.min(maker.quantity_lots);
            if let Some(budget) = t.budget {
                lots = lots.min(self.affordable_lots(mi, budget, maker.price_ticks));
                if lots == 0 {
                    break;
                }
            }
            if met == MATCHES_PER_COMMAND_MAX {
                return MatchEnd::MatchLimit;
            }
            met += 1;
            if maker.account == t.account && t.stp != StpMode::None {
                match t.stp {
                    StpMode::CancelTaker => return MatchEnd::SelfTrade,
                    StpMode::CancelMaker => {
                        self.cancel_resting(mi, maker.id, CancelReason::SelfTradePrevention, out);
                        continue;
                    }
                    StpMode::CancelBoth => {
                        self.cancel_resting(mi, maker.id, CancelReason::SelfTradePrevention, out);
                        return MatchEnd::SelfTrade;
                    }
                    StpMode::None => unreachable!(),
                }
            }
            self.trade(mi, t, &maker, lots, out);
        }
        MatchEnd::Done
    }

    /// Most lots a market buy with `budget` micro-USD can pay for at `price_ticks`,
    /// taker fee included.
    fn affordable_lots(&self, mi: usize, budget: u64, price_ticks: i64) -> u64 {
        let spec = &self.markets[mi].spec;
        let unit = price_ticks as u128 * spec.cash_per_tick_lot as u128;
        let bps = spec.taker_fee_bps as u128;
        let cost = |lots: u128| {
            let n = lots * unit;
            n + n * bps / 10_000
        };
        // The floor of the fee makes the true maximum at most a little above this.
        let mut lots = budget as u128 * 10_000 / (unit * (10_000 + bps));
        while cost(lots + 1) <= budget as u128 {
            lots += 1;
        }
        lots.min(u64::MAX as u128) as u64
    }

    /// One trade of `lots` between the taker and the front maker, at the maker's
    /// price: moves GPU-hours and USD, charges both fees, releases what the holds
    /// no longer need.
    fn trade<S: EventSink>(
        &mut self,
        mi: usize,
        t: &mut Taker,
        maker: &RestingOrder,
        lots: u64,
        out: &mut S,
    ) {
        let market = &mut self.markets[mi];
        let filled = market.book.fill_front(maker.side, lots);
        debug_assert_eq!(filled.id, maker.id);
        let spec = &market.spec;
        let price = maker.price_ticks;
        let notional = spec.notional(price, lots);
        let maker_fee = MarketSpec::fee(notional, spec.maker_fee_bps);
        let taker_fee = MarketSpec::fee(notional, spec.taker_fee_bps);
        let maker_remaining = maker.quantity_lots - lots;
        let taker_before = t.remaining;
        t.remaining -= lots;

        // The buyer pays notional + fee out of its hold; what the hold no longer
        // needs goes back to available.
        let (buyer, buyer_fee, buyer_release, seller, seller_fee) = match t.side {
            Side::Buy => {
                let release = match t.limit {
                    Some(l) => spec.buy_hold(l, taker_before) - spec.buy_hold(l, t.remaining),
                    None => notional + taker_fee,
                };
                (t.account, taker_fee, release, maker.account, maker_fee)
            }
            Side::Sell => {
                let release = spec.buy_hold(price, maker.quantity_lots)
                    - spec.buy_hold(price, maker_remaining);
                (maker.account, maker_fee, release, t.account, taker_fee)
            }
        };
        if let Some(budget) = t.budget.as_mut() {
            *budget -= notional + buyer_fee;
        }
        let cost = notional + buyer_fee;
        assert!(buyer_release >= cost, "a hold covers every fill");
        let b = self.acct(buyer);
        b.cash.spend_held(buyer_release);
        b.cash.available += buyer_release - cost;
        b.position(mi).available += lots;
        let s = self.acct(seller);
        s.position(mi).spend_held(lots);
        s.cash.available += notional - seller_fee;
        self.acct(FEE_ACCOUNT).cash.available += maker_fee + taker_fee;
        if maker_remaining == 0 {
            self.forget(mi, maker);
        }
        let trade = self.next_trade_id;
        self.next_trade_id += 1;
        let spec = &self.markets[mi].spec;
        out.push(Event::TradeExecuted(TradeExecuted {
            trade,
            market: spec.id,
            price: spec.price(price),
            quantity: spec.quantity(lots),
            taker_side: t.side,
            maker_order: maker.id,
            maker_account: maker.account,
            taker_order: t.id,
            taker_account: t.account,
            maker_fee: cash_decimal(maker_fee),
            taker_fee: cash_decimal(taker_fee),
            maker_remaining: spec.quantity(maker_remaining),
            taker_remaining: spec.quantity(t.remaining),
        }));
    }

    /// After matching: rest the remainder, or cancel it for `reason`, and release
    /// any hold left over. `registered` is true when the order was already an open
    /// order (an amend), so its bookkeeping exists.
    fn finish<S: EventSink>(
        &mut self,
        mi: usize,
        t: &Taker,
        order: RestingOrder,
        reason: Option<CancelReason>,
        registered: bool,
        out: &mut S,
    ) {
        let spec = &self.markets[mi].spec;
        let market = spec.id;
        let price = t.limit.map(|l| spec.price(l));
        if t.remaining > 0 && reason.is_none() {
            let quantity = spec.quantity(t.remaining);
            self.markets[mi].book.insert(order);
            if !registered {
                self.remember(mi, &order);
            }
            out.push(Event::OrderRested(OrderRested {
                order: t.id,
                account: t.account,
                market,
                side: t.side,
                price: price.expect("resting orders have a price"),
                quantity,
            }));
            if let Some(b) = t.budget {
                self.acct(t.account).cash.release(b);
            }
            return;
        }
        // Not resting: release what is still held for it.
        let release = match (t.side, t.limit, t.budget) {
            (Side::Buy, _, Some(b)) => b,
            (Side::Buy, Some(l), None) => spec.buy_hold(l, t.remaining),
            _ => t.remaining,
        };
        let acct = self.acct(t.account);
        match t.side {
            Side::Buy => acct.cash.release(release),
            Side::Sell => acct.position(mi).release(release),
        }
        if registered {
            self.forget(mi, &order);
        }
        if let (Some(reason), true) = (reason, t.remaining > 0) {
            let quantity = self.markets[mi].spec.quantity(t.remaining);
            out.push(Event::OrderCancelled(OrderCancelled {
                order: t.id,
                account: t.account,
                market,
                side: t.side,
                price,
                quantity,
                reason,
                resting: false,
            }));
        }
    }

    /// Records a newly resting order in the account and indexes.
    fn remember(&mut self, mi: usize, order: &RestingOrder) {
        self.order_market.insert(order.id, mi);
        if let Some(t) = order.good_till_ns {
            self.expiries.insert((t, order.id));
        }
        let acct = self.acct(order.account);
        acct.open_orders.insert(order.id);
        if let Some(c) = order.client_order_id {
            acct.client_ids.insert(c, order.id);
        }
    }

    /// Drops a no-longer-open order from the account and indexes.
    fn forget(&mut self, _mi: usize, order: &RestingOrder) {
        self.order_market.remove(&order.id);
        if let Some(t) = order.good_till_ns {
            self.expiries.remove(&(t, order.id));
        }
        let acct = self.acct(order.account);
        acct.open_orders.remove(&order.id);
        if let Some(c) = order.client_order_id {
            acct.client_ids.remove(&c);
        }
    }

    /// Takes a resting order off the book, releases its hold, and reports it.
    fn cancel_resting<S: EventSink>(
        &mut self,
        mi: usize,
        id: OrderId,
        reason: CancelReason,
        out: &mut S,
    ) {
        let order = self.markets[mi]
            .book
            .remove(id)
            .expect("open orders rest on their book");
        let spec = &self.markets[mi].spec;
        let hold = match order.side {
            Side::Buy => spec.buy_hold(order.price_ticks, order.quantity_lots),
            Side::Sell => order.quantity_lots,
        };
        let (market, price, quantity) = (
            spec.id,
            spec.price(order.price_ticks),
            spec.quantity(order.quantity_lots),
        );
        let acct = self.acct(order.account);
        match order.side {
            Side::Buy => acct.cash.release(hold),
            Side::Sell => acct.position(mi).release(hold),
        }
        self.forget(mi, &order);
        out.push(Event::OrderCancelled(OrderCancelled {
            order: id,
            account: order.account,
            market,
            side: order.side,
            price: Some(price),
            quantity,
            reason,
            resting: true,
        }));
    }

    /// Expires GTD orders whose time is before `ts_ns`, oldest expiry first, at
    /// most [`EXPIRIES_PER_COMMAND_MAX`] of them: any left are still due and go
    /// first before the next command.
    fn expire<S: EventSink>(&mut self, ts_ns: u64, out: &mut S) {
        for _ in 0..EXPIRIES_PER_COMMAND_MAX {
            let Some(&(good_till, id)) = self.expiries.first() else {
                break;
            };
            if good_till >= ts_ns {
                break;
            }
            let mi = self.order_market[&id];
            self.cancel_resting(mi, id, CancelReason::Expired, out);
        }
    }

    /// Finds the open order a cancel or amend names, checking ownership.
    fn resolve(
        &self,
        account: AccountId,
        order_id: Option<OrderId>,
        client_order_id: Option<ClientOrderId>,
    ) -> Result<(usize, RestingOrder), RejectReason> {
        let acct = self.account(account)?;
        let id = match (order_id, client_order_id) {
            (Some(id), None) => id,
            (None, Some(c)) => *acct.client_ids.get(&c).ok_or(RejectReason::UnknownOrder)?,
            _ => return Err(RejectReason::InvalidOrderRef),
        };
        let mi = *self
            .order_market
            .get(&id)
            .ok_or(RejectReason::UnknownOrder)?;
        let order = *self.markets[mi]
            .book
            .get(id)
            .expect("open orders rest on their book");
        if order.account != account {
            return Err(RejectReason::NotYourOrder);
        }
        Ok((mi, order))
    }

    fn cancel<S: EventSink>(&mut self, c: &CancelOrder, out: &mut S) -> Result<(), RejectReason> {
        if c.order_id.is_some() == c.client_order_id.is_some() {
            return Err(RejectReason::InvalidOrderRef);
        }
        let (mi, order) = self.resolve(c.account, c.order_id, c.client_order_id)?;
        self.cancel_resting(mi, order.id, CancelReason::UserRequested, out);
        Ok(())
    }

    fn amend<S: EventSink>(&mut self, c: &AmendOrder, out: &mut S) -> Result<(), RejectReason> {
        use RejectReason::*;
        if c.order_id.is_some() == c.client_order_id.is_some() {
            return Err(InvalidOrderRef);
        }
        if c.price.is_none() && c.quantity.is_none() {
            return Err(InvalidAmend);
        }
        let (mi, order) = self.resolve(c.account, c.order_id, c.client_order_id)?;
        let spec = &self.markets[mi].spec;
        let price = match c.price {
            Some(p) => spec.price_ticks(p)?,
            None => order.price_ticks,
        };
        let lots = match c.quantity {
            Some(q) => spec.order_lots(q)?,
            None => order.quantity_lots,
        };
        let keeps_priority = price == order.price_ticks && lots <= order.quantity_lots;
        let (old_hold, new_hold) = match order.side {
            Side::Buy => (
                spec.buy_hold(order.price_ticks, order.quantity_lots),
                spec.buy_hold(price, lots),
            ),
            Side::Sell => (order.quantity_lots, lots),
        };
        let account = &self.accounts[&c.account];
        if new_hold > old_hold {
            let available = match order.side {
                Side::Buy => account.cash.available,
                Side::Sell => account.position_of(mi).available,
            };
            if available < new_hold - old_hold {
                return Err(match order.side {
                    Side::Buy => InsufficientFunds,
                    Side::Sell => InsufficientCapacity,
                });
            }
        }
        let opposite_best = self.markets[mi].book.best_price(order.side.opposite());
        if !keeps_priority
            && order.post_only
            && opposite_best.is_some_and(|b| order.side.crosses(price, b))
        {
            return Err(PostOnlyWouldCross);
        }

        // Accepted.
        let acct = self.acct(c.account);
        let balance: &mut Balance = match order.side {
            Side::Buy => &mut acct.cash,
            Side::Sell => acct.position(mi),
        };
        if new_hold > old_hold {
            balance.hold(new_hold - old_hold);
        } else {
            balance.release(old_hold - new_hold);
        }
        let spec = &self.markets[mi].spec;
        out.push(Event::OrderAmended(OrderAmended {
            order: order.id,
            account: order.account,
            market: spec.id,
            side: order.side,
            old_price: spec.price(order.price_ticks),
            old_quantity: spec.quantity(order.quantity_lots),
            price: spec.price(price),
            quantity: spec.quantity(lots),
            priority_kept: keeps_priority,
        }));
        if keeps_priority {
            if lots < order.quantity_lots {
                self.markets[mi]
                    .book
                    .reduce(order.id, order.quantity_lots - lots);
            }
            return Ok(());
        }
        // Re-queue: off the book, then in again as if new (it may trade first).
        self.markets[mi].book.remove(order.id);
        let mut taker = Taker {
            id: order.id,
            account: order.account,
            side: order.side,
            limit: Some(price),
            remaining: lots,
            stp: order.stp,
            budget: None,
        };
        let reason = match self.run_match(mi, &mut taker, out) {
            MatchEnd::Done => None,
            MatchEnd::SelfTrade => Some(CancelReason::SelfTradePrevention),
            MatchEnd::MatchLimit => Some(CancelReason::MatchLimit),
        };
        let requeued = RestingOrder {
            price_ticks: price,
            quantity_lots: taker.remaining,
            ..order
        };
        self.finish(mi, &taker, requeued, reason, true, out);
        Ok(())
    }

    fn mass_cancel<S: EventSink>(
        &mut self,
        c: &MassCancel,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let market = match &c.market {
            Some(m) => Some(self.market_ix(m)?),
            None => None,
        };
        let account = self.account(c.account)?;
        let ids: Vec<(usize, OrderId)> = account
            .open_orders
            .iter()
            .map(|id| (self.order_market[id], *id))
            .filter(|(mi, _)| market.is_none_or(|m| m == *mi))
            .collect();
        for &(mi, id) in &ids {
            self.cancel_resting(mi, id, CancelReason::MassCancel, out);
        }
        out.push(Event::MassCancelled(MassCancelled {
            account: c.account,
            market: c.market,
            count: ids.len() as u64,
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecodable_commands_are_recorded_as_rejections_and_change_nothing() {
        let mut e: Engine = Engine::new();
        let mut events = Vec::new();
        let ok = br#"{"v":1,"ts_ns":5,"command":{"type":"create_account","account":7}}"#;
        assert!(e.apply_json(1, 5, ok, &mut events).is_some());
        let before = e.snapshot();
        for (i, bad) in [
            &b"not json"[..],
            br#"{"v":1,"ts_ns":6,"command":{"type":"teleport"}}"#,
        ]
        .iter()
        .enumerate()
        {
            events.clear();
            let seq = 2 + i as u64;
            assert!(e.apply_json(seq, 6, bad, &mut events).is_none());
            assert_eq!(events.len(), 1);
            match &events[0] {
                Event::CommandRejected(r) => {
                    assert_eq!(r.reason, RejectReason::MalformedCommand);
                    assert_eq!(r.command, CommandKind::Unknown);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(e.last_seq(), seq);
        }
        // Only the sequence number and time moved.
        let mut same: Engine = Engine::restore(&before).unwrap();
        same.last_seq = e.last_seq;
        same.last_ts_ns = e.last_ts_ns;
        assert_eq!(same.state_hash(), e.state_hash());
    }
}
