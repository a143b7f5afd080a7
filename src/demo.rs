//! Demo traders: simulated providers and demanders that keep sample markets moving,
//! so a newcomer running `gpux serve --demo` sees a live book, trades and feeds.
//!
//! Owns the demo's sample markets, its reserved accounts and its order flow. The
//! traders are ordinary clients: they only write protocol command envelopes
//! (`docs/PROTOCOL.md`) to a [`Submitter`] — the same way into the command log the
//! gateway uses — so the demo works the same on the embedded log and on Kafka, and
//! everything it does is in the ledger like any other flow.
//!
//! # What it does
//!
//! On start it lists the [sample markets](sample_markets) (tick 0.01 USD, lot 1
//! GPU, maker/taker fees 10/20 bp, a week of hourly delivery slots), creates its
//! accounts, cancels any orders they left open in an earlier run, funds demanders
//! with USD and has providers list capacity in every slot of the coming week. Then,
//! at [`DemoOptions::rate_per_sec`], over a rolling week of slots (most orders in
//! the next few hours, some further out; as hours pass, providers list the slots
//! that come into the horizon):
//!
//! - each market's mid price takes a mean-reverting random walk around its start;
//! - providers quote asks a few ticks above the mid (some good-till-date), and now
//!   and then sell into the bids with an immediate-or-cancel order;
//! - demanders bid a few ticks below it for single hours and take liquidity with
//!   IOC limit buys and capped market buys, buy the same GPUs for several
//!   consecutive hours at once (`window`, fill-or-kill) and whole clusters from one
//!   provider's own machines (`colocate`, fill-or-kill), and now and then resell
//!   an hour they hold;
//! - both cancel and amend their resting orders (by client order id), and each keeps
//!   at most [`OPEN_PER_MARKET_MAX`] orders per market, cancelling the oldest first;
//! - once hours close, providers report what they delivered, demanders dispute some
//!   short deliveries and the operator resolves the disputes, each provider with its
//!   own record ([`crate::demo_delivery`]; `gpux serve --demo` only, where the
//!   traders can read their entries).
//!
//! Every decision comes from a seeded RNG ([`DemoOptions::seed`]); timestamps come
//! from the system clock and request ids start with `demo-`.
//!
//! # Accounts
//!
//! Account ids `900_000`–`900_999` are reserved for the demo: providers are
//! [`PROVIDER_FIRST`]`..`, demanders [`DEMANDER_FIRST`]`..`. Real users should not
//! be created there.
//!
//! # Rejections it expects
//!
//! The traders do not read events, so some of their commands are refused, and that
//! is fine: after a restart `list_market` and `create_account` are refused as
//! `market_exists` / `account_exists`; cancels and amends of orders that have
//! meanwhile filled, expired or reached their slot's gate as `unknown_order`; window
//! and cluster orders the books cannot fill completely as `window_not_fillable` /
//! `cluster_not_fillable` (all or nothing, by design); and a demander's resale of
//! an hour it did not manage to buy as `insufficient_capacity`; a report, dispute or
//! resolution that time overtook (the entry settled meanwhile, or its window
//! closed) as `unknown_entry`, `report_window_closed`, `dispute_window_closed` or
//! `entry_disputed`. Nothing else is
//! refused: the traders count every hold they could cause (with the highest
//! possible fee) and top up USD and provider capacity long before they could run
//! short. A market that existed
//! before the demo with another tick or lot size would refuse its orders.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gpux_engine::limits::FEE_BPS_MAX;
use gpux_engine::MarketId;
use gpux_sequencer::{SubmitError, Submitter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// First id of the range reserved for demo accounts.
pub const ACCOUNT_BASE: u64 = 900_000;
/// The first provider's account id.
pub const PROVIDER_FIRST: u64 = 900_001;
/// The first demander's account id.
pub const DEMANDER_FIRST: u64 = 900_501;
/// Most providers, and most demanders, one demo can run.
pub const ACCOUNTS_PER_ROLE_MAX: u32 = 499;
/// Most orders a demo trader keeps open in one market.
pub const OPEN_PER_MARKET_MAX: usize = 6;

/// Micro-USD in one tick (0.01 USD) of one GPU-hour.
const MICROS_PER_TICK: u64 = 10_000;
const MICROS_PER_USD: u64 = 1_000_000;
/// USD a demander receives per deposit.
const DEPOSIT_USD: u64 = 1_000_000;
/// A demander deposits again when its unspent budget would fall below this.
const DEPOSIT_LOW_USD: u64 = 100_000;
/// GPUs a provider lists per slot at a time.
const CAPACITY_ADD_LOTS: u64 = 100_000;
/// A provider lists more in a slot when its budget there would fall below this.
const CAPACITY_LOW_LOTS: u64 = 10_000;
/// The nearest slot traded: this many hours after the hour now (its gate is at
/// least 55 minutes away when an order for it is made).
const SLOT_AHEAD_MIN: u64 = 2;
/// The furthest slot traded, in hours after the hour now: within the markets'
/// default week-long horizon.
const SLOT_AHEAD_MAX: u64 = 167;
/// Most consecutive hours in one demo window order.
const WINDOW_HOURS_MAX: u64 = 4;
/// Seconds in an hour (a slot).
const HOUR_SECS: u64 = 3_600;
/// Largest quantity of one demo order, GPU-hours.
const ORDER_LOTS_MAX: u64 = 8;
/// Farthest a passive quote rests from the mid, in ticks.
const QUOTE_DISTANCE_MAX_TICKS: i64 = 15;
/// Lowest mid price, in ticks.
const MID_MIN_TICKS: i64 = 10;

/// A market the demo trades in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoMarket {
    /// Market id, `{gpu_model}.{region}`.
    pub market: String,
    /// Starting mid price in ticks of 0.01 USD per GPU-hour (240: 2.40 USD).
    pub mid_ticks: i64,
}

/// The sample markets: H100 SXM, A100 80GB and RTX 4090 GPU-hours in a few regions,
/// at roughly realistic prices.
pub fn sample_markets() -> Vec<DemoMarket> {
    [
        ("h100-sxm.us-east", 240),
        ("h100-sxm.eu-west", 265),
        ("a100-80gb.us-east", 135),
        ("a100-80gb.eu-west", 150),
        ("rtx-4090.eu-central", 45),
        ("rtx-4090.us-west", 40),
    ]
    .into_iter()
    .map(|(market, mid_ticks)| DemoMarket {
        market: market.into(),
        mid_ticks,
    })
    .collect()
}

/// How the demo trades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Seed of every trading decision. Default 1.
    pub seed: u64,
    /// Trading commands per second (setup commands are sent at once); 0: as fast as
    /// the log acknowledges. Default 30.
    pub rate_per_sec: u32,
    /// Stop by itself after this many trading commands (default: run until stopped).
    pub max_commands: Option<u64>,
    /// Provider accounts, 1 to [`ACCOUNTS_PER_ROLE_MAX`]. Default 3.
    pub providers: u32,
    /// Demander accounts, 1 to [`ACCOUNTS_PER_ROLE_MAX`]. Default 5.
    pub demanders: u32,
    /// Markets to list and trade. Default [`sample_markets`].
    pub markets: Vec<DemoMarket>,
    /// Most submissions waiting for the log's acknowledgement. Default 256.
    pub max_in_flight: usize,
    /// The exchange's clock, which the traders stamp commands with and pick slots
    /// by (the wall clock, or a faster one: `time_scale`).
    pub time: gpux_sequencer::ExchangeClock,
    /// Where the traders read their delivery entries, to report, dispute and
    /// resolve them ([`crate::demo_delivery`]); `None`: they do not.
    pub deliveries: Option<crate::demo_delivery::DeliveryLookup>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: 1,
            rate_per_sec: 30,
            max_commands: None,
            providers: 3,
            demanders: 5,
            markets: sample_markets(),
            max_in_flight: 256,
            time: gpux_sequencer::ExchangeClock::default(),
            deliveries: None,
        }
    }
}

impl DemoOptions {
    /// Checks the options; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for (what, n) in [("providers", self.providers), ("demanders", self.demanders)] {
            if n == 0 || n > ACCOUNTS_PER_ROLE_MAX {
                return Err(format!(
                    "{what} must be 1 to {ACCOUNTS_PER_ROLE_MAX} (got {n})"
                ));
            }
        }
        if self.markets.is_empty() {
            return Err("the demo needs at least one market".into());
        }
        for m in &self.markets {
            MarketId::new(&m.market).map_err(|e| format!("market {:?}: {e}", m.market))?;
            if !(MID_MIN_TICKS..=1_000_000).contains(&m.mid_ticks) {
                return Err(format!(
                    "market {}: mid_ticks must be {MID_MIN_TICKS} to 1000000 (got {})",
                    m.market, m.mid_ticks
                ));
            }
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight must be positive".into());
        }
        Ok(())
    }
}

/// What a demo has done so far (or in all, once it stopped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemoReport {
    /// Setup commands submitted (markets, accounts, mass cancels, funding).
    pub setup_commands: u64,
    /// Trading commands submitted (orders, cancels, amends, top-ups).
    pub trading_commands: u64,
    /// Submissions the log acknowledged as durable.
    pub acknowledged: u64,
    /// Submissions the log refused (overloaded or unavailable); they were dropped.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Progress {
    setup: AtomicU64,
    trading: AtomicU64,
    acknowledged: AtomicU64,
    failed: AtomicU64,
    finished: AtomicBool,
}

impl Progress {
    fn report(&self) -> DemoReport {
        DemoReport {
            setup_commands: self.setup.load(Ordering::Acquire),
            trading_commands: self.trading.load(Ordering::Acquire),
            acknowledged: self.acknowledged.load(Ordering::Acquire),
            failed: self.failed.load(Ordering::Acquire),
        }
    }
}

/// A stop flag a sleeping thread wakes up for.
#[derive(Debug, Default)]
struct Stopper {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stopper {
    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps `d` unless stopped first; true when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (g, _) = self
            .wake
            .wait_timeout_while(g, d, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *g
    }
}

/// A running demo. Dropping it stops the traders and joins their thread.
#[derive(Debug)]
pub struct DemoHandle {
    stopper: Arc<Stopper>,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
}

impl DemoHandle {
    /// What the demo has done so far.
    pub fn progress(&self) -> DemoReport {
        self.progress.report()
    }

    /// Whether the traders have stopped (after `max_commands`, or when stopped).
    pub fn is_finished(&self) -> bool {
        self.progress.finished.load(Ordering::Acquire)
    }

    /// Waits until the traders stop by themselves after
    /// [`DemoOptions::max_commands`] and every submission was answered (at most
    /// 10 s after the last); returns the totals. Without `max_commands` it never
    /// returns: use [`DemoHandle::stop`].
    pub fn wait(mut self) -> DemoReport {
        self.join();
        self.progress.report()
    }

    /// Stops the traders, waits for their outstanding submissions (at most 10 s)
    /// and their thread; returns the totals.
    pub fn stop(mut self) -> DemoReport {
        self.stopper.stop();
        self.join();
        self.progress.report()
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the demo traders' thread panicked");
            }
        }
    }
}

impl Drop for DemoHandle {
    fn drop(&mut self) {
        self.stopper.stop();
        self.join();
    }
}

/// Starts the demo traders on their own thread, writing to `submitter`.
///
/// # Panics
/// If `opts` are invalid ([`DemoOptions::validate`]; `gpux serve` validates its
/// configuration first) or the thread cannot be spawned.
pub fn start(submitter: Arc<dyn Submitter>, opts: DemoOptions) -> DemoHandle {
    if let Err(e) = opts.validate() {
        panic!("invalid demo options: {e}");
    }
    let stopper = Arc::new(Stopper::default());
    let progress = Arc::new(Progress::default());
    let thread = {
        let stopper = Arc::clone(&stopper);
        let progress = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("gpux-demo".into())
            .spawn(move || {
                run(submitter, opts, &stopper, &progress);
                progress.finished.store(true, Ordering::Release);
            })
            .expect("cannot spawn the demo thread")
    };
    DemoHandle {
        stopper,
        progress,
        thread: Some(thread),
    }
}

/// How long to wait for the log's answers after the last submission.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after the log refused a submission.
const FAILURE_PAUSE: Duration = Duration::from_millis(500);

fn run(submitter: Arc<dyn Submitter>, opts: DemoOptions, stopper: &Stopper, progress: &Progress) {
    let nonce = run_nonce();
    let mut gen = Generator::new(&opts, nonce.clone());
    let mut out = Outbox::new(submitter, opts.max_in_flight, nonce, opts.time.clone());
    let now_ns = || opts.time.now_ns();
    tracing::info!(
        markets = opts.markets.len(),
        providers = opts.providers,
        demanders = opts.demanders,
        accounts = %format!("{PROVIDER_FIRST}..{}", DEMANDER_FIRST + u64::from(opts.demanders) - 1),
        rate_per_sec = opts.rate_per_sec,
        seed = opts.seed,
        "demo traders starting"
    );
    for cmd in gen.setup(now_ns()) {
        if !out.send(cmd, stopper, progress) {
            break;
        }
        progress.setup.fetch_add(1, Ordering::AcqRel);
    }
    let mut started = Instant::now();
    let mut sent: u64 = 0;
    let mut delivery = DeliveryTraders::new(&opts);
    'trading: while !stopper.is_stopped() {
        let remaining = match opts.max_commands {
            Some(max) if sent >= max => break,
            Some(max) => max - sent,
            None => u64::MAX,
        };
        if opts.rate_per_sec > 0 {
            let due = started + Duration::from_secs_f64(sent as f64 / f64::from(opts.rate_per_sec));
            let now = Instant::now();
            if now < due {
                if stopper.sleep(due - now) {
                    break;
                }
            } else if now - due > Duration::from_secs(1) {
                // Far behind (the log was slow): keep the pace from here, no burst.
                started = now - Duration::from_secs_f64(sent as f64 / f64::from(opts.rate_per_sec));
            }
        }
        let cmds = gen.step(now_ns()).into_iter().chain(delivery.due(now_ns()));
        for cmd in cmds.take(remaining as usize) {
            if !out.send(cmd, stopper, progress) {
                break 'trading;
            }
            sent += 1;
            progress.trading.fetch_add(1, Ordering::AcqRel);
        }
    }
    out.drain(DRAIN_TIMEOUT, progress);
    let r = progress.report();
    tracing::info!(
        setup = r.setup_commands,
        trading = r.trading_commands,
        acknowledged = r.acknowledged,
        failed = r.failed,
        "demo traders stopped"
    );
}

/// A per-run tag (the start time in base 36) that keeps client order ids and
/// request ids of different runs apart.
fn run_nonce() -> String {
    let mut ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(ms % 36) as usize]);
        ms /= 36;
        if ms == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).expect("ASCII")
}

/// How often the traders look at their delivery entries.
const DELIVERY_LOOK_EVERY: Duration = Duration::from_secs(1);

/// The traders' side of delivery: every [`DELIVERY_LOOK_EVERY`], the entries
/// naming them, and what they do about them.
struct DeliveryTraders {
    lookup: Option<crate::demo_delivery::DeliveryLookup>,
    accounts: Vec<u64>,
    rng: ChaCha8Rng,
    state: crate::demo_delivery::Deliveries,
    next_look: Instant,
}

impl DeliveryTraders {
    fn new(opts: &DemoOptions) -> Self {
        let accounts = (0..u64::from(opts.providers))
            .map(|i| PROVIDER_FIRST + i)
            .chain((0..u64::from(opts.demanders)).map(|i| DEMANDER_FIRST + i))
            .collect();
        DeliveryTraders {
            lookup: opts.deliveries.clone(),
            accounts,
            rng: ChaCha8Rng::seed_from_u64(opts.seed ^ 0xD311_7E27),
            state: Default::default(),
            next_look: Instant::now(),
        }
    }

    /// The delivery commands due now (none between looks).
    fn due(&mut self, now_ns: u64) -> Vec<Value> {
        let Some(lookup) = &self.lookup else {
            return Vec::new();
        };
        if Instant::now() < self.next_look {
            return Vec::new();
        }
        self.next_look = Instant::now() + DELIVERY_LOOK_EVERY;
        let entries = (lookup.0)(&self.accounts);
        self.state.step(&mut self.rng, &entries, now_ns)
    }
}

/// Submissions on their way to the log, bounded, with their answers.
struct Outbox {
    submitter: Arc<dyn Submitter>,
    answers_tx: Sender<Result<(), SubmitError>>,
    answers: Receiver<Result<(), SubmitError>>,
    in_flight: usize,
    max_in_flight: usize,
    nonce: String,
    next_request: u64,
    pause_until: Option<Instant>,
    time: gpux_sequencer::ExchangeClock,
}

impl Outbox {
    fn new(
        submitter: Arc<dyn Submitter>,
        max_in_flight: usize,
        nonce: String,
        time: gpux_sequencer::ExchangeClock,
    ) -> Self {
        let (answers_tx, answers) = mpsc::channel();
        Outbox {
            time,
            submitter,
            answers_tx,
            answers,
            in_flight: 0,
            max_in_flight,
            nonce,
            next_request: 0,
            pause_until: None,
        }
    }

    /// Submits `command` in an envelope; false when stopped while waiting for room.
    fn send(&mut self, command: Value, stopper: &Stopper, progress: &Progress) -> bool {
        self.collect(progress);
        while self.in_flight >= self.max_in_flight {
            if stopper.is_stopped() {
                return false;
            }
            match self.answers.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => self.answered(r, progress),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("the outbox holds a sender"),
            }
        }
        if let Some(until) = self.pause_until.take() {
            let now = Instant::now();
            if now < until && stopper.sleep(until - now) {
                return false;
            }
        }
        self.next_request += 1;
        let envelope = json!({
            "v": gpux_engine::PROTOCOL_VERSION,
            "ts_ns": self.time.now_ns(),
            "request_id": format!("demo-{}-{}", self.nonce, self.next_request),
            "command": command,
        });
        let payload = serde_json::to_vec(&envelope).expect("JSON values always encode");
        let tx = self.answers_tx.clone();
        self.in_flight += 1;
        self.submitter.submit(
            payload,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        true
    }

    fn collect(&mut self, progress: &Progress) {
        while let Ok(r) = self.answers.try_recv() {
            self.answered(r, progress);
        }
    }

    fn answered(&mut self, r: Result<(), SubmitError>, progress: &Progress) {
        self.in_flight -= 1;
        match r {
            Ok(()) => {
                progress.acknowledged.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) => {
                let n = progress.failed.fetch_add(1, Ordering::AcqRel);
                if n.is_multiple_of(1000) {
                    tracing::warn!(error = %e, failed = n + 1, "the command log refused a demo command");
                } else {
                    tracing::debug!(error = %e, "the command log refused a demo command");
                }
                self.pause_until = Some(Instant::now() + FAILURE_PAUSE);
            }
        }
    }

    /// Waits for the answers still outstanding, at most `timeout`.
    fn drain(&mut self, timeout: Duration, progress: &Progress) {
        let deadline = Instant::now() + timeout;
        while self.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.answers.recv_timeout(left) {
                Ok(r) => self.answered(r, progress),
                Err(_) => {
                    tracing::warn!(
                        outstanding = self.in_flight,
                        "demo commands still unanswered by the command log"
                    );
                    return;
                }
            }
        }
    }
}

/// A resting order a trader believes it has (it may have filled or expired since).
#[derive(Debug, Clone)]
struct Open {
    client_order_id: String,
    quantity_lots: u64,
}

/// The hour (unix seconds of its start) `now_ns` falls in.
fn hour_of(now_ns: u64) -> u64 {
    now_ns / 1_000_000_000 / HOUR_SECS * HOUR_SECS
}

#[derive(Debug)]
struct Trader {
    account: u64,
    /// Per market, oldest first.
    open: Vec<VecDeque<Open>>,
    /// Demanders: micro-USD deposited in this run and not yet committed to orders
    /// (every order counts its largest possible hold).
    usd_budget_micros: u64,
    /// Providers: per market, GPUs listed in this run per slot and not yet offered.
    capacity_budget_lots: Vec<std::collections::BTreeMap<u64, u64>>,
    /// Providers: per market, the last slot listed so far (0: none).
    listed_until: Vec<u64>,
}

#[derive(Debug)]
struct Walk {
    market: String,
    start_ticks: i64,
    mid_ticks: i64,
}

/// The traders' decisions: pure, seeded, producing protocol command objects.
#[derive(Debug)]
struct Generator {
    rng: ChaCha8Rng,
    nonce: String,
    next_client: u64,
    markets: Vec<Walk>,
    providers: Vec<Trader>,
    demanders: Vec<Trader>,
}

fn price(ticks: i64) -> String {
    debug_assert!(ticks > 0);
    format!("{}.{:02}", ticks / 100, ticks % 100)
}

fn usd(micros: u64) -> String {
    format!("{}.{:06}", micros / MICROS_PER_USD, micros % MICROS_PER_USD)
}

/// The most USD a buy of `lots` at `ticks` can hold: notional plus the highest fee
/// any market can charge, rounded up.
fn buy_hold_micros(ticks: i64, lots: u64) -> u64 {
    let notional = ticks.max(0) as u64 * MICROS_PER_TICK * lots;
    notional + (notional * u64::from(FEE_BPS_MAX)).div_ceil(10_000)
}

impl Generator {
    fn new(opts: &DemoOptions, nonce: String) -> Self {
        let n = opts.markets.len();
        let trader = |account| Trader {
            account,
            open: vec![VecDeque::new(); n],
            usd_budget_micros: 0,
            capacity_budget_lots: vec![Default::default(); n],
            listed_until: vec![0; n],
        };
        Generator {
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            nonce,
            next_client: 0,
            markets: opts
                .markets
                .iter()
                .map(|m| Walk {
                    market: m.market.clone(),
                    start_ticks: m.mid_ticks,
                    mid_ticks: m.mid_ticks,
                })
                .collect(),
            providers: (0..u64::from(opts.providers))
                .map(|i| trader(PROVIDER_FIRST + i))
                .collect(),
            demanders: (0..u64::from(opts.demanders))
                .map(|i| trader(DEMANDER_FIRST + i))
                .collect(),
        }
    }

    /// Markets, accounts, a clean slate for orders left by an earlier run, funding,
    /// and every provider's capacity in every slot of the coming week (at `now_ns`).
    fn setup(&mut self, now_ns: u64) -> Vec<Value> {
        let mut out = Vec::new();
        for m in &self.markets {
            out.push(json!({
                "type": "list_market", "market": m.market, "tick_size": "0.01",
                "lot_size": "1", "maker_fee_bps": 10, "taker_fee_bps": 20,
            }));
        }
        for t in self.providers.iter().chain(&self.demanders) {
            out.push(json!({"type": "create_account", "account": t.account}));
            out.push(json!({"type": "mass_cancel", "account": t.account}));
        }
        for mi in 0..self.markets.len() {
            for pi in 0..self.providers.len() {
                out.extend(self.list_ahead(pi, mi, now_ns));
            }
        }
        for di in 0..self.demanders.len() {
            out.push(self.deposit(di));
        }
        out
    }

    /// Provider `pi` lists [`CAPACITY_ADD_LOTS`] in every slot of `from..=to` in
    /// market `mi`.
    fn add_capacity(&mut self, pi: usize, mi: usize, from: u64, to: u64) -> Value {
        let p = &mut self.providers[pi];
        for slot in (from..=to).step_by(HOUR_SECS as usize) {
            *p.capacity_budget_lots[mi].entry(slot).or_default() += CAPACITY_ADD_LOTS;
        }
        p.listed_until[mi] = p.listed_until[mi].max(to);
        json!({
            "type": "add_capacity", "account": p.account, "market": self.markets[mi].market,
            "from_slot": from, "to_slot": to, "quantity": CAPACITY_ADD_LOTS.to_string(),
        })
    }

    /// Provider `pi` lists the slots of market `mi` that came into the week ahead
    /// of `now_ns` since it last listed (none when it is up to date), and forgets
    /// the budgets of slots whose gate has passed.
    fn list_ahead(&mut self, pi: usize, mi: usize, now_ns: u64) -> Option<Value> {
        let hour = hour_of(now_ns);
        let p = &mut self.providers[pi];
        p.capacity_budget_lots[mi].retain(|&slot, _| slot > hour);
        let first = (hour + SLOT_AHEAD_MIN * HOUR_SECS).max(p.listed_until[mi] + HOUR_SECS);
        let last = hour + SLOT_AHEAD_MAX * HOUR_SECS;
        (first <= last).then(|| self.add_capacity(pi, mi, first, last))
    }

    /// The slot of a new order: the next few hours mostly, sometimes further out
    /// in the week.
    fn slot(&mut self, now_ns: u64) -> u64 {
        let ahead = if self.rng.random_ratio(4, 5) {
            self.rng.random_range(SLOT_AHEAD_MIN..=SLOT_AHEAD_MIN + 2)
        } else {
            self.rng
                .random_range(SLOT_AHEAD_MIN + 3..=SLOT_AHEAD_MAX - WINDOW_HOURS_MAX)
        };
        hour_of(now_ns) + ahead * HOUR_SECS
    }

    fn deposit(&mut self, di: usize) -> Value {
        let d = &mut self.demanders[di];
        d.usd_budget_micros += DEPOSIT_USD * MICROS_PER_USD;
        json!({"type": "deposit", "account": d.account, "amount": DEPOSIT_USD.to_string()})
    }

    fn client_order_id(&mut self) -> String {
        self.next_client += 1;
        format!("d-{}-{}", self.nonce, self.next_client)
    }

    /// Moves market `mi`'s mid by a tick now and then, pulled back toward its start.
    fn walk(&mut self, mi: usize) {
        let m = &mut self.markets[mi];
        if !self.rng.random_ratio(1, 3) {
            return;
        }
        let band = (m.start_ticks / 4).max(4) as f64;
        let pull = (m.mid_ticks - m.start_ticks) as f64 / band;
        let p_up = (0.5 - 0.4 * pull).clamp(0.1, 0.9);
        let step = if self.rng.random_bool(p_up) { 1 } else { -1 };
        m.mid_ticks = (m.mid_ticks + step).max(MID_MIN_TICKS.max(m.start_ticks / 2));
    }

    /// How far from the mid a passive quote goes: 1 tick, often a few more.
    fn distance(&mut self) -> i64 {
        let mut d = 1;
        while d < QUOTE_DISTANCE_MAX_TICKS && self.rng.random_ratio(2, 3) {
            d += 1;
        }
        d
    }

    fn lots(&mut self) -> u64 {
        self.rng.random_range(1..=ORDER_LOTS_MAX)
    }

    /// The next trading commands (usually one; a top-up or a cancel of the oldest
    /// order may come first).
    fn step(&mut self, now_ns: u64) -> Vec<Value> {
        let mi = self.rng.random_range(0..self.markets.len());
        self.walk(mi);
        let roll = self.rng.random_range(0..100u32);
        let mut out = Vec::new();
        let slot = self.slot(now_ns);
        match roll {
            0..30 => self.provider_quote(mi, slot, now_ns, &mut out),
            30..55 => self.demander_quote(mi, slot, &mut out),
            55..63 => self.demander_take(mi, slot, &mut out),
            63..66 => self.demander_all_or_none(mi, slot, &mut out),
            66..68 => self.demander_resell(mi, slot, &mut out),
            68..73 => self.provider_take(mi, slot, now_ns, &mut out),
            73..87 => {
                if !self.cancel(mi, &mut out) {
                    self.demander_quote(mi, slot, &mut out);
                }
            }
            _ => {
                if !self.amend(mi, &mut out) {
                    self.provider_quote(mi, slot, now_ns, &mut out);
                }
            }
        }
        out
    }

    /// Makes room for one more open order of provider `pi` (or demander) in `mi`.
    fn make_room(trader: &mut Trader, mi: usize, out: &mut Vec<Value>) {
        if trader.open[mi].len() >= OPEN_PER_MARKET_MAX {
            let oldest = trader.open[mi].pop_front().expect("full");
            out.push(json!({
                "type": "cancel_order", "account": trader.account,
                "client_order_id": oldest.client_order_id,
            }));
        }
    }

    /// Provider `pi` commits `lots` of `slot` in market `mi` to a sell: it first
    /// lists the slots new in its week, and more in `slot` when it runs low.
    fn offer(
        &mut self,
        pi: usize,
        mi: usize,
        slot: u64,
        lots: u64,
        now_ns: u64,
        out: &mut Vec<Value>,
    ) {
        out.extend(self.list_ahead(pi, mi, now_ns));
        let left = self.providers[pi].capacity_budget_lots[mi]
            .get(&slot)
            .copied();
        if left.unwrap_or(0) < lots + CAPACITY_LOW_LOTS {
            out.push(self.add_capacity(pi, mi, slot, slot));
        }
        *self.providers[pi].capacity_budget_lots[mi]
            .get_mut(&slot)
            .expect("listed above") -= lots;
    }

    fn spend(&mut self, di: usize, micros: u64, out: &mut Vec<Value>) {
        while self.demanders[di].usd_budget_micros < micros + DEPOSIT_LOW_USD * MICROS_PER_USD {
            out.push(self.deposit(di));
        }
        self.demanders[di].usd_budget_micros -= micros;
    }

    fn provider_quote(&mut self, mi: usize, slot: u64, now_ns: u64, out: &mut Vec<Value>) {
        let pi = self.rng.random_range(0..self.providers.len());
        let ticks = self.markets[mi].mid_ticks + self.distance();
        let lots = self.lots();
        let gtd = self.rng.random_ratio(1, 10);
        let good_till_ns = now_ns + self.rng.random_range(30..300u64) * 1_000_000_000;
        let client_order_id = self.client_order_id();
        Self::make_room(&mut self.providers[pi], mi, out);
        self.offer(pi, mi, slot, lots, now_ns, out);
        let p = &mut self.providers[pi];
        let mut cmd = json!({
            "type": "place_order", "account": p.account, "market": self.markets[mi].market,
            "slot": slot, "side": "sell", "price": price(ticks), "quantity": lots.to_string(),
            "client_order_id": client_order_id,
        });
        if gtd {
            cmd["time_in_force"] = json!("gtd");
            cmd["good_till_ns"] = json!(good_till_ns);
        }
        p.open[mi].push_back(Open {
            client_order_id,
            quantity_lots: lots,
        });
        out.push(cmd);
    }

    fn demander_quote(&mut self, mi: usize, slot: u64, out: &mut Vec<Value>) {
        let di = self.rng.random_range(0..self.demanders.len());
        let ticks = (self.markets[mi].mid_ticks - self.distance()).max(1);
        let lots = self.lots();
        let client_order_id = self.client_order_id();
        Self::make_room(&mut self.demanders[di], mi, out);
        self.spend(di, buy_hold_micros(ticks, lots), out);
        let d = &mut self.demanders[di];
        out.push(json!({
            "type": "place_order", "account": d.account, "market": self.markets[mi].market,
            "slot": slot, "side": "buy", "price": price(ticks), "quantity": lots.to_string(),
            "client_order_id": client_order_id,
        }));
        d.open[mi].push_back(Open {
            client_order_id,
            quantity_lots: lots,
        });
    }

    /// A demander takes liquidity: an IOC limit buy a little above the mid, or a
    /// market buy capped a little above it.
    fn demander_take(&mut self, mi: usize, slot: u64, out: &mut Vec<Value>) {
        let di = self.rng.random_range(0..self.demanders.len());
        let mid = self.markets[mi].mid_ticks;
        let lots = self.lots().min(5);
        let market = self.markets[mi].market.clone();
        let account = self.demanders[di].account;
        if self.rng.random_bool(0.5) {
            let ticks = mid + self.rng.random_range(0..=3);
            self.spend(di, buy_hold_micros(ticks, lots), out);
            out.push(json!({
                "type": "place_order", "account": account, "market": market, "slot": slot,
                "side": "buy", "price": price(ticks), "quantity": lots.to_string(),
                "time_in_force": "ioc",
            }));
        } else {
            let cap_micros = buy_hold_micros(mid + 10, lots);
            self.spend(di, cap_micros, out);
            out.push(json!({
                "type": "place_order", "account": account, "market": market, "slot": slot,
                "side": "buy", "order_type": "market", "quantity": lots.to_string(),
                "cap": usd(cap_micros),
            }));
        }
    }

    /// A demander buys several hours at once or a whole cluster, all or nothing
    /// (fill-or-kill) a little above the mid: the same GPUs for 2 to
    /// [`WINDOW_HOURS_MAX`] consecutive hours, or GPUs all from one provider's own
    /// machines for one hour.
    fn demander_all_or_none(&mut self, mi: usize, slot: u64, out: &mut Vec<Value>) {
        let di = self.rng.random_range(0..self.demanders.len());
        let ticks = self.markets[mi].mid_ticks + self.rng.random_range(1..=4);
        let lots = self.lots().min(4);
        let market = self.markets[mi].market.clone();
        let account = self.demanders[di].account;
        if self.rng.random_bool(0.5) {
            let hours = self.rng.random_range(2..=WINDOW_HOURS_MAX);
            self.spend(di, buy_hold_micros(ticks, lots * hours), out);
            out.push(json!({
                "type": "place_order", "account": account, "market": market,
                "window": {"from_slot": slot, "to_slot": slot + (hours - 1) * HOUR_SECS},
                "side": "buy", "price": price(ticks), "quantity": lots.to_string(),
                "time_in_force": "fok",
            }));
        } else {
            self.spend(di, buy_hold_micros(ticks, lots), out);
            out.push(json!({
                "type": "place_order", "account": account, "market": market, "slot": slot,
                "colocate": true, "side": "buy", "price": price(ticks),
                "quantity": lots.to_string(), "time_in_force": "fok",
            }));
        }
    }

    /// A demander resells an hour of GPUs into the bids (refused as
    /// `insufficient_capacity` when its buys there did not fill: it does not
    /// read events).
    fn demander_resell(&mut self, mi: usize, slot: u64, out: &mut Vec<Value>) {
        let di = self.rng.random_range(0..self.demanders.len());
        let ticks = (self.markets[mi].mid_ticks - self.rng.random_range(0..=2)).max(1);
        out.push(json!({
            "type": "place_order", "account": self.demanders[di].account,
            "market": self.markets[mi].market, "slot": slot, "side": "sell",
            "price": price(ticks), "quantity": "1", "time_in_force": "ioc",
        }));
    }

    /// A provider sells into the bids with an IOC limit a little below the mid.
    fn provider_take(&mut self, mi: usize, slot: u64, now_ns: u64, out: &mut Vec<Value>) {
        let pi = self.rng.random_range(0..self.providers.len());
        let ticks = (self.markets[mi].mid_ticks - self.rng.random_range(0..=3)).max(1);
        let lots = self.lots().min(5);
        self.offer(pi, mi, slot, lots, now_ns, out);
        out.push(json!({
            "type": "place_order", "account": self.providers[pi].account,
            "market": self.markets[mi].market, "slot": slot, "side": "sell",
            "price": price(ticks), "quantity": lots.to_string(), "time_in_force": "ioc",
        }));
    }

    /// A random trader with orders in `mi` cancels one; false when nobody has any.
    fn cancel(&mut self, mi: usize, out: &mut Vec<Value>) -> bool {
        let mut with_orders: Vec<(bool, usize)> = Vec::new();
        for (is_provider, traders) in [(true, &self.providers), (false, &self.demanders)] {
            for (i, t) in traders.iter().enumerate() {
                if !t.open[mi].is_empty() {
                    with_orders.push((is_provider, i));
                }
            }
        }
        if with_orders.is_empty() {
            return false;
        }
        let (is_provider, i) = with_orders[self.rng.random_range(0..with_orders.len())];
        let t = if is_provider {
            &mut self.providers[i]
        } else {
            &mut self.demanders[i]
        };
        let k = self.rng.random_range(0..t.open[mi].len());
        let o = t.open[mi].remove(k).expect("in range");
        out.push(json!({
            "type": "cancel_order", "account": t.account, "client_order_id": o.client_order_id,
        }));
        true
    }

    /// A provider re-prices an ask, or a demander trims a bid; false when the chosen
    /// side has nothing to amend.
    fn amend(&mut self, mi: usize, out: &mut Vec<Value>) -> bool {
        if self.rng.random_bool(0.5) {
            let pi = self.rng.random_range(0..self.providers.len());
            if self.providers[pi].open[mi].is_empty() {
                return false;
            }
            let ticks = self.markets[mi].mid_ticks + self.distance();
            let p = &self.providers[pi];
            let k = self.rng.random_range(0..p.open[mi].len());
            // A price change re-queues the ask; its hold (GPU-hours) is unchanged.
            out.push(json!({
                "type": "amend_order", "account": p.account,
                "client_order_id": p.open[mi][k].client_order_id, "price": price(ticks),
            }));
        } else {
            let di = self.rng.random_range(0..self.demanders.len());
            let d = &self.demanders[di];
            let trimmable: Vec<usize> = (0..d.open[mi].len())
                .filter(|&k| d.open[mi][k].quantity_lots > 1)
                .collect();
            if trimmable.is_empty() {
                return false;
            }
            let k = trimmable[self.rng.random_range(0..trimmable.len())];
            let lots = self.rng.random_range(1..d.open[mi][k].quantity_lots);
            // At most the original quantity at the same price: within the hold counted.
            let d = &mut self.demanders[di];
            d.open[mi][k].quantity_lots = lots;
            out.push(json!({
                "type": "amend_order", "account": d.account,
                "client_order_id": d.open[mi][k].client_order_id, "quantity": lots.to_string(),
            }));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpux_engine::{CommandEnvelope, Engine, Event, RejectReason};
    use gpux_sequencer::{read_committed, Exchange, PipelineOptions};
    use std::collections::{BTreeMap, BTreeSet};

    /// Rejection codes by count, and trades by market, of a run of events.
    /// The rejections a demo run expects (see the module docs).
    const EXPECTED: &[RejectReason] = &[
        RejectReason::UnknownOrder,
        RejectReason::WindowNotFillable,
        RejectReason::ClusterNotFillable,
        RejectReason::InsufficientCapacity,
    ];

    #[derive(Debug, Default)]
    struct Tally {
        rejections: BTreeMap<&'static str, u64>,
        trades: BTreeMap<String, u64>,
        /// Window and cluster orders accepted (they fill completely or are refused).
        all_or_none_accepted: u64,
        deliveries: u64,
    }

    impl Tally {
        fn add(&mut self, events: &[Event]) {
            for e in events {
                match e {
                    Event::OrderRejected(r) | Event::CommandRejected(r) => {
                        // Only a demander's resale may lack GPUs; a provider's
                        // sells are always covered by what it listed.
                        let code = match (r.reason, r.account) {
                            (RejectReason::InsufficientCapacity, Some(a)) if a < DEMANDER_FIRST => {
                                "insufficient_capacity_of_a_provider"
                            }
                            (reason, _) => reason.code(),
                        };
                        *self.rejections.entry(code).or_default() += 1;
                    }
                    Event::TradeExecuted(t) => {
                        *self.trades.entry(t.market.to_string()).or_default() += 1;
                    }
                    Event::OrderAccepted(o) if o.to_slot.is_some() || o.colocate => {
                        self.all_or_none_accepted += 1;
                    }
                    Event::DeliveryScheduled(_) => self.deliveries += 1,
                    _ => {}
                }
            }
        }

        fn assert_trades_everywhere(&self, markets: &[DemoMarket]) {
            for m in markets {
                assert!(
                    self.trades.get(&m.market).copied().unwrap_or(0) > 0,
                    "no trade in {}: {:?}",
                    m.market,
                    self.trades
                );
            }
        }

        fn assert_only(&self, allowed: &[RejectReason]) {
            let allowed: BTreeSet<&str> = allowed.iter().map(|r| r.code()).collect();
            for code in self.rejections.keys() {
                assert!(
                    allowed.contains(code),
                    "unexpected rejections: {:?}",
                    self.rejections
                );
            }
        }
    }

    fn envelope(cmd: &Value, ts_ns: u64) -> CommandEnvelope {
        let bytes = serde_json::to_vec(&json!({"v": 3, "ts_ns": ts_ns, "command": cmd})).unwrap();
        CommandEnvelope::from_json(&bytes).unwrap_or_else(|e| panic!("{cmd}: {e:?}"))
    }

    #[test]
    fn generated_flow_trades_everywhere_and_is_refused_only_for_stale_orders() {
        let opts = DemoOptions::default();
        let mut gen = Generator::new(&opts, "test".into());
        let mut engine: Engine = Engine::new();
        let mut tally = Tally::default();
        let mut events = Vec::new();
        let mut seq = 0;
        let mut ts = 1_767_225_600_000_000_000u64;
        let mut apply = |cmds: Vec<Value>, ts: u64, tally: &mut Tally, engine: &mut Engine| {
            for cmd in cmds {
                seq += 1;
                events.clear();
                engine.apply(seq, ts, &envelope(&cmd, ts).command, &mut events);
                tally.add(&events);
            }
        };
        apply(gen.setup(ts), ts, &mut tally, &mut engine);
        assert!(tally.rejections.is_empty(), "{:?}", tally.rejections);
        for step in 0..20_000 {
            // 2 commands/s, over almost three hours: GTD orders expire, gates close
            // and new slots come into the week during the run.
            ts += 500_000_000;
            apply(gen.step(ts), ts, &mut tally, &mut engine);
            if step % 1_000 == 0 {
                engine.check_invariants().unwrap();
            }
        }
        engine.check_invariants().unwrap();
        tally.assert_trades_everywhere(&opts.markets);
        tally.assert_only(EXPECTED);
        assert!(tally.deliveries > 0, "gates closed with deliveries");
        assert!(tally.all_or_none_accepted > 0, "{tally:?}");
        // Every trader stays within its bound of open orders.
        for account in (0..u64::from(opts.providers))
            .map(|i| PROVIDER_FIRST + i)
            .chain((0..u64::from(opts.demanders)).map(|i| DEMANDER_FIRST + i))
        {
            let open = engine.open_orders(account).unwrap().len();
            assert!(
                open <= OPEN_PER_MARKET_MAX * opts.markets.len(),
                "{account}: {open}"
            );
        }
        // And the book is alive: both sides quoted in every market.
        for m in &opts.markets {
            let id = MarketId::new(&m.market).unwrap();
            let slots = engine.slots(&id).unwrap();
            assert!(
                slots.iter().any(
                    |&s| engine.best_bid(&id, s).is_some() && engine.best_ask(&id, s).is_some()
                ),
                "{}",
                m.market
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_commands() {
        let opts = DemoOptions::default();
        let run = |seed| {
            let mut gen = Generator::new(
                &DemoOptions {
                    seed,
                    ..opts.clone()
                },
                "n".into(),
            );
            let mut all = gen.setup(1_767_225_600_000_000_000);
            for i in 0..500 {
                all.extend(gen.step(i));
            }
            all
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn invalid_options_are_named() {
        let bad = |f: fn(&mut DemoOptions)| {
            let mut o = DemoOptions::default();
            f(&mut o);
            o.validate().unwrap_err()
        };
        assert!(bad(|o| o.providers = 0).contains("providers"));
        assert!(bad(|o| o.demanders = 500).contains("demanders"));
        assert!(bad(|o| o.markets.clear()).contains("market"));
        assert!(bad(|o| o.markets[0].market = "H100".into()).contains("H100"));
        assert!(bad(|o| o.markets[0].mid_ticks = 1).contains("mid_ticks"));
        DemoOptions::default().validate().unwrap();
    }

    /// Waits until everything the demo had acknowledged is applied and durable.
    fn wait_applied(exchange: &Exchange, cmd_seq: u64) {
        let stats = exchange.stats();
        let deadline = Instant::now() + Duration::from_secs(120);
        while stats.durable_seq.load(Ordering::Acquire) < cmd_seq {
            assert!(Instant::now() < deadline, "the pipeline did not catch up");
            assert!(exchange.failure().is_none(), "{:?}", exchange.failure());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn tally_ledger(exchange: &Exchange, from: u64) -> Tally {
        let reader = exchange.reader();
        let mut tally = Tally::default();
        let mut next = from;
        loop {
            let batch = read_committed(&reader, next, 1024).unwrap();
            let Some(last) = batch.last() else { break };
            next = last.cmd_seq + 1;
            for c in &batch {
                assert!(
                    c.request_id
                        .as_deref()
                        .is_some_and(|r| r.starts_with("demo-")),
                    "{:?}",
                    c.request_id
                );
                tally.add(&c.events);
            }
        }
        tally
    }

    fn run_demo(exchange: &Exchange, opts: DemoOptions) -> DemoReport {
        let handle = start(exchange.submitter().expect("embedded"), opts);
        let report = handle.wait();
        assert_eq!(report.failed, 0, "{report:?}");
        assert_eq!(
            report.acknowledged,
            report.setup_commands + report.trading_commands
        );
        report
    }

    #[test]
    fn demo_on_an_embedded_exchange_and_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let opts = DemoOptions {
            rate_per_sec: 0,
            max_commands: Some(3_000),
            ..DemoOptions::default()
        };
        let setup = opts.markets.len() as u64
            + 2 * u64::from(opts.providers + opts.demanders)
            + opts.markets.len() as u64 * u64::from(opts.providers)
            + u64::from(opts.demanders);

        let exchange = Exchange::start_embedded(dir.path(), PipelineOptions::default()).unwrap();
        let first = run_demo(&exchange, opts.clone());
        assert_eq!(first.setup_commands, setup);
        assert_eq!(first.trading_commands, 3_000);
        wait_applied(&exchange, first.acknowledged);
        let tally = tally_ledger(&exchange, 1);
        tally.assert_trades_everywhere(&opts.markets);
        tally.assert_only(EXPECTED);
        let engine = exchange.shutdown().unwrap();
        engine.check_invariants().unwrap();
        assert_eq!(engine.last_seq(), first.acknowledged);

        // Restart on the same ledger: markets and accounts exist already (refused,
        // as expected), the old orders are cancelled, trading goes on.
        let exchange = Exchange::start_embedded(dir.path(), PipelineOptions::default()).unwrap();
        let second = run_demo(
            &exchange,
            DemoOptions {
                seed: 2,
                max_commands: Some(1_000),
                ..opts.clone()
            },
        );
        let total = first.acknowledged + second.acknowledged;
        wait_applied(&exchange, total);
        let tally = tally_ledger(&exchange, first.acknowledged + 1);
        tally.assert_only(
            &[
                &[RejectReason::MarketExists, RejectReason::AccountExists],
                EXPECTED,
            ]
            .concat(),
        );
        assert_eq!(tally.rejections["market_exists"], opts.markets.len() as u64);
        assert_eq!(
            tally.rejections["account_exists"],
            u64::from(opts.providers + opts.demanders)
        );
        assert!(!tally.trades.is_empty());
        let engine = exchange.shutdown().unwrap();
        engine.check_invariants().unwrap();
        assert_eq!(engine.last_seq(), total);
    }

    #[test]
    fn stop_and_drop_end_a_paced_demo() {
        let dir = tempfile::tempdir().unwrap();
        let exchange = Exchange::start_embedded(dir.path(), PipelineOptions::default()).unwrap();
        let handle = start(
            exchange.submitter().unwrap(),
            DemoOptions {
                rate_per_sec: 50,
                ..DemoOptions::default()
            },
        );
        assert!(!handle.is_finished());
        let report = handle.stop();
        assert_eq!(report.failed, 0);
        assert_eq!(
            report.acknowledged,
            report.setup_commands + report.trading_commands
        );
        // Dropping a running demo stops and joins it too.
        drop(start(exchange.submitter().unwrap(), DemoOptions::default()));
        drop(exchange);
    }
}
