//! Seeded fault simulation of the exchange core (in the spirit of TigerBeetle's VOPR).
//!
//! Each seed runs the real embedded pipeline ([`Exchange`], the ledger's command log
//! and group committer) and the gateway's real core thread (the read replica that
//! follows committed commands and resolves requests by `request_id`), in-process,
//! over an in-memory store wrapped in [`FaultyStore`]. The seed alone decides:
//! - the command stream: markets, accounts, deposits, withdrawals, capacity, limit,
//!   market, IOC, FOK and GTD orders, cancels (by id and client id), amends, mass
//!   cancels and malformed commands, each with a unique `request_id` marker;
//! - the life plan: how many commands each run of the process submits, how many at
//!   once, the pipeline's batch and snapshot sizes;
//! - the fault of each run, counted in store writes (threads make wall-clock points
//!   meaningless): the process crashes at the Nth write (nothing of it, a torn prefix
//!   or all of it reaching the store, and nothing after it), or the Nth write fails
//!   or tears with an I/O error. A run whose fault does not fire ends in a crash at
//!   its next write (or, sometimes, a clean restart first).
//!
//! After every crash the process is restarted on the surviving store. At each start
//! the gateway's replica, caught up, must equal the engine rebuilt from the ledger
//! at the same `cmd_seq`. A final fault-free run submits the rest and shuts down
//! cleanly; then:
//! - every command the log acknowledged (`done(Ok)`) is in the ledger exactly once,
//!   no command is in it twice, nothing unknown is in it;
//! - every answer the gateway gave (cmd_seq, timestamp, events) is what the ledger
//!   holds for that command;
//! - the final engine, the gateway's replica and a fault-free engine applying the
//!   same commands in the ledger's order have the same `state_hash()`;
//! - `replay verify` passes (chain, checksums, a byte-for-byte re-run, snapshots).
//!
//! `GPUX_SIM_SEED=N` runs seed N only ([`SINGLE_SEED_REPEAT`] times, or
//! `GPUX_SIM_REPEAT`); `GPUX_SIM_SEEDS=N` runs N seeds (default [`DEFAULT_SEEDS`],
//! i.e. 1,000 crash points); `GPUX_SIM_FIRST=N` starts at seed N. A failing seed
//! panics with the command that reruns it and the runs it made.
//!
//! Determinism: a seed fixes the commands, their order of submission, the pipeline
//! options and every fault's write number. It does not fix which commands share a
//! store write (the group committer batches what arrives while it writes), so a
//! failure that needs one interleaving reproduces often but not every time; hence
//! the repeats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use gpux_engine::{CommandEnvelope, Engine, Event, StateHash};
use gpux_gateway::idempotency::{Admission, Outcome, RequestId, Resolution};
use gpux_gateway::marketdata::{MarketData, MarketDataConfig};
use gpux_gateway::replica::{self as gateway_core, ReplicaState};
use gpux_gateway::GatewayConfig;
use gpux_ledger::{Fault, FaultyStore, Ledger, LedgerOptions, LedgerReader, MemStore, Store};
use gpux_replay::progress::Progress;
use gpux_sequencer::{read_committed, CommittedCommand, Exchange, PipelineOptions, SubmitError};
use tokio::sync::watch;

/// Seeds run by default.
const DEFAULT_SEEDS: u64 = 250;
/// Times `GPUX_SIM_SEED` reruns its seed: the commands and the fault schedule are
/// the seed's, but which commands share a store write depends on thread timing, so
/// a bug that needs one interleaving may take a few runs to show again.
const SINGLE_SEED_REPEAT: u64 = 20;
/// Runs that end in a crash per seed (each is one crash point), before the final
/// fault-free run.
const CRASHES_PER_SEED: u64 = 4;
/// Longest wait for anything the pipeline or the gateway must do by itself.
const PATIENCE: Duration = Duration::from_secs(30);

const MARKETS: [&str; 3] = ["h100-sxm.us-east", "a100.eu-west", "l40s.ap-south"];
const ACCOUNTS: u64 = 4;
const TS_BASE_NS: u64 = 1_767_225_600_000_000_000;
/// Envelope timestamps advance 1 ms per generated command.
const TS_STEP_NS: u64 = 1_000_000;
/// The delivery slot traded: the hour after `TS_BASE_NS`.
const SLOT: u64 = TS_BASE_NS / 1_000_000_000 + 3_600;

type SimStore = FaultyStore<MemStore>;

/// splitmix64: small, seedable, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// One generated command.
struct Planned {
    payload: Vec<u8>,
    request_id: String,
    /// Whether the envelope decodes (the gateway only ever submits those).
    decodes: bool,
}

/// The seeded command stream.
struct Generator {
    rng: Rng,
    seed: u64,
    next: u64,
    placed: u64,
}

impl Generator {
    fn envelope(&mut self, command: &str) -> Planned {
        let k = self.next;
        self.next += 1;
        let request_id = format!("r:sim-{}-{k}", self.seed);
        let ts = TS_BASE_NS + k * TS_STEP_NS;
        Planned {
            payload: format!(
                r#"{{"v":3,"ts_ns":{ts},"request_id":"{request_id}","command":{command}}}"#
            )
            .into_bytes(),
            request_id,
            decodes: true,
        }
    }

    fn setup(&mut self) -> Vec<Planned> {
        let mut out = Vec::new();
        for m in MARKETS {
            out.push(self.envelope(&format!(
                r#"{{"type":"list_market","market":"{m}","tick_size":"0.01","lot_size":"1","maker_fee_bps":10,"taker_fee_bps":20}}"#
            )));
        }
        for a in 1..=ACCOUNTS {
            out.push(self.envelope(&format!(r#"{{"type":"create_account","account":{a}}}"#)));
            out.push(self.envelope(&format!(
                r#"{{"type":"deposit","account":{a},"amount":"5000"}}"#
            )));
            let m = MARKETS[(a % 3) as usize];
            out.push(self.envelope(&format!(
                r#"{{"type":"add_capacity","account":{a},"market":"{m}","from_slot":{SLOT},"to_slot":{SLOT},"quantity":"500"}}"#
            )));
        }
        out
    }

    fn price(&mut self) -> String {
        let ticks = self.rng.range(200, 300);
        format!("{}.{:02}", ticks / 100, ticks % 100)
    }

    fn order_ref(&mut self, account: u64) -> String {
        if self.rng.chance(25) {
            let k = self.rng.range(0, self.next.max(1));
            format!(r#""account":{account},"client_order_id":"c{k}""#)
        } else {
            let id = self.rng.range(1, self.placed.max(1) + 2);
            format!(r#""account":{account},"order_id":{id}"#)
        }
    }

    /// A `place_order` of account `a` in market `m`: market, IOC, FOK, GTD or GTC.
    fn place_order(&mut self, a: u64, m: &str) -> String {
        self.placed += 1;
        let side = self.rng.pick(&["buy", "sell"]);
        let qty = self.rng.range(1, 12);
        let coid = if self.rng.chance(30) {
            format!(r#","client_order_id":"c{}""#, self.next)
        } else {
            String::new()
        };
        let kind = self.rng.next_u64() % 20;
        let body = match kind {
            0 => format!(r#""order_type":"market","quantity":"{qty}""#),
            1..=3 => {
                let p = self.price();
                format!(r#""price":"{p}","quantity":"{qty}","time_in_force":"ioc""#)
            }
            4 => {
                let p = self.price();
                format!(r#""price":"{p}","quantity":"{qty}","time_in_force":"fok""#)
            }
            5..=6 => {
                let p = self.price();
                let till = TS_BASE_NS + (self.next + self.rng.range(1, 30)) * TS_STEP_NS;
                format!(
                    r#""price":"{p}","quantity":"{qty}","time_in_force":"gtd","good_till_ns":{till}"#
                )
            }
            _ => {
                let p = self.price();
                format!(r#""price":"{p}","quantity":"{qty}""#)
            }
        };
        format!(
            r#"{{"type":"place_order","account":{a},"market":"{m}","slot":{SLOT},"side":"{side}",{body}{coid}}}"#
        )
    }

    /// Deposits, withdrawals and capacity changes (`roll` in `70..=94`).
    fn funds_command(&mut self, roll: u64, a: u64, m: &str) -> String {
        match roll {
            70..=77 => format!(
                r#"{{"type":"deposit","account":{a},"amount":"{}"}}"#,
                self.rng.range(1, 2000)
            ),
            78..=85 => format!(
                r#"{{"type":"withdraw","account":{a},"amount":"{}"}}"#,
                self.rng.range(1, 3000)
            ),
            86..=90 => format!(
                r#"{{"type":"add_capacity","account":{a},"market":"{m}","from_slot":{SLOT},"to_slot":{SLOT},"quantity":"{}"}}"#,
                self.rng.range(1, 100)
            ),
            91..=94 => format!(
                r#"{{"type":"remove_capacity","account":{a},"market":"{m}","from_slot":{SLOT},"to_slot":{SLOT},"quantity":"{}"}}"#,
                self.rng.range(1, 100)
            ),
            _ => unreachable!("funds commands are rolls 70..=94"),
        }
    }

    fn next_command(&mut self) -> Planned {
        let a = self.rng.range(1, ACCOUNTS);
        let m = self.rng.pick(&MARKETS);
        let roll = self.rng.next_u64() % 100;
        let cmd = match roll {
            0..=44 => self.place_order(a, m),
            45..=59 => format!(r#"{{"type":"cancel_order",{}}}"#, self.order_ref(a)),
            60..=69 => {
                let target = self.order_ref(a);
                let change = if self.rng.chance(50) {
                    format!(r#""price":"{}""#, self.price())
                } else {
                    format!(r#""quantity":"{}""#, self.rng.range(1, 12))
                };
                format!(r#"{{"type":"amend_order",{target},{change}}}"#)
            }
            70..=94 => self.funds_command(roll, a, m),
            95..=97 => format!(r#"{{"type":"mass_cancel","account":{a},"market":"{m}"}}"#),
            _ => {
                // Valid JSON that is no command: recorded as a rejection.
                let mut p = self.envelope(&format!(r#"{{"type":"teleport","account":{a}}}"#));
                p.decodes = false;
                return p;
            }
        };
        self.envelope(&cmd)
    }
}

/// What the system told the submitter of one command.
#[derive(Default)]
struct Fate {
    /// The log's answer: `Some(true)` when `done(Ok)` (durable in the log).
    acked: Option<bool>,
    /// The gateway's answer, when it gave one.
    outcome: Option<Arc<Outcome>>,
}

/// How a run of the process ends when its fault has not fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Crash at the next store write.
    Crash,
    /// Clean shutdown (snapshot at the head).
    Clean,
}

/// One run of the process.
#[derive(Debug, Clone, Copy)]
struct LifePlan {
    fault: Option<Fault>,
    commands: u64,
    window: u64,
    ending: Ending,
}

/// One seed's simulation.
struct Sim {
    rng: Rng,
    gen: Generator,
    mem: MemStore,
    planned: Vec<Planned>,
    fates: Vec<Fate>,
    setup: Vec<Planned>,
    opts: PipelineOptions,
    trace: Vec<String>,
    tally: Tally,
    rt: tokio::runtime::Runtime,
}

/// What the simulation exercised (summed over seeds, printed at the end).
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Runs that ended in a crash (one per crash point).
    crash_points: u64,
    /// Of which: the seeded store fault fired.
    faults_fired: u64,
    /// Of which: the crash came while opening the ledger or starting the pipeline.
    crashed_starting: u64,
    /// Runs that ended in a clean shutdown.
    clean_stops: u64,
    /// Commands submitted.
    submitted: u64,
    /// Acknowledged by the log (`done(Ok)`).
    acked: u64,
    /// Answered by the gateway.
    answered: u64,
    /// Refused by the log and yet in the ledger (the write reached the store, its
    /// acknowledgement did not: allowed, at most once).
    refused_but_applied: u64,
    /// Refused by the log and not in the ledger.
    refused_and_absent: u64,
    /// Commands in the final ledgers.
    committed: u64,
}

impl Tally {
    /// Counts a run that ended in a crash (`faults_fired`: by the seeded fault or
    /// not) or a clean stop.
    fn run_ended(&mut self, crashed: bool, faults_fired: u64) {
        if crashed {
            self.crash_points += 1;
            self.faults_fired += faults_fired.min(1);
        } else {
            self.clean_stops += 1;
        }
    }

    fn add(&mut self, o: &Tally) {
        self.crash_points += o.crash_points;
        self.faults_fired += o.faults_fired;
        self.crashed_starting += o.crashed_starting;
        self.clean_stops += o.clean_stops;
        self.submitted += o.submitted;
        self.acked += o.acked;
        self.answered += o.answered;
        self.refused_but_applied += o.refused_but_applied;
        self.refused_and_absent += o.refused_and_absent;
        self.committed += o.committed;
    }
}

/// The gateway core of one run.
struct Gateway {
    shared: Arc<ReplicaState>,
    stop: Arc<AtomicBool>,
    core: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    fn start<S: Store>(exchange: &Exchange<S>) -> Result<Self, String> {
        let cfg = GatewayConfig::new(
            "127.0.0.1:0".parse().expect("address"),
            "sim-admin-key-0123456789",
        );
        let shared = Arc::new(ReplicaState::new(cfg));
        let (md, _handle) = MarketData::new(MarketDataConfig::default());
        let stop = Arc::new(AtomicBool::new(false));
        let core = gateway_core::spawn(
            Arc::clone(&shared),
            Box::new(exchange.follow(1)),
            None,
            md,
            Arc::clone(&stop),
        )
        .map_err(|e| format!("cannot start the gateway core: {e}"))?;
        Ok(Gateway {
            shared,
            stop,
            core: Some(core),
        })
    }

    fn applied_seq(&self) -> u64 {
        self.shared.stats.applied_seq.load(Ordering::Acquire)
    }

    /// Waits until the replica applied `seq`.
    fn wait_applied(&self, seq: u64) -> Result<(), String> {
        wait_until(|| self.applied_seq() >= seq).map_err(|()| {
            format!(
                "the gateway's replica is stuck at cmd_seq {} (want {seq})",
                self.applied_seq()
            )
        })
    }

    /// The replica's (cmd_seq, state hash), and no divergence reported.
    fn state(&self) -> Result<(u64, StateHash), String> {
        let h = self.shared.health_report();
        if let Some(at) = h.diverged_at {
            return Err(format!("the gateway's replica diverged at cmd_seq {at}"));
        }
        let r = self.shared.read();
        Ok((r.engine.last_seq(), r.engine.state_hash()))
    }

    /// The replica equals the engine rebuilt from the ledger at the same cmd_seq.
    fn check_against<S: Store>(&self, reader: &LedgerReader<S>) -> Result<(), String> {
        let (seq, hash) = self.state()?;
        let engine = gpux_replay::rebuild::state_at(reader, Some(seq), None)
            .map_err(|e| format!("cannot rebuild the engine at cmd_seq {seq}: {e}"))?;
        if engine.state_hash() != hash {
            return Err(format!(
                "the gateway's replica differs from the ledger's engine at cmd_seq {seq}"
            ));
        }
        Ok(())
    }

    fn stop(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Release);
        if let Some(c) = self.core.take() {
            c.join()
                .map_err(|_| "the gateway core panicked".to_string())?;
        }
        Ok(())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(c) = self.core.take() {
            let _ = c.join();
        }
    }
}

/// Polls `cond` (1 ms apart) until it holds or [`PATIENCE`] runs out.
fn wait_until(mut cond: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn is_dead<S: Store>(store: &SimStore, exchange: &Exchange<S>) -> bool {
    store.faults_fired() > 0 || exchange.failure().is_some()
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed ^ 0x5157_0000_0000_0001);
        let mut gen = Generator {
            rng: Rng(rng.next_u64()),
            seed,
            next: 0,
            placed: 0,
        };
        let setup = gen.setup();
        let mut opts = PipelineOptions {
            snapshot_every_events: rng.range(20, 400),
            decode_chunk: rng.range(1, 64) as usize,
            decode_queue_chunks: rng.range(1, 8) as usize,
            max_batch_commands: rng.range(1, 32) as usize,
            max_batches_in_flight: rng.range(1, 3) as usize,
            ..PipelineOptions::default()
        };
        opts.ledger = LedgerOptions {
            // A torn write is possible here (FaultyStore tears; RocksDB does not).
            truncate_torn_tail: true,
            ..LedgerOptions::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
        Sim {
            rng,
            gen,
            mem: MemStore::new(),
            planned: Vec::new(),
            fates: Vec::new(),
            setup: setup.into_iter().rev().collect(),
            opts,
            trace: Vec::new(),
            tally: Tally::default(),
            rt,
        }
    }

    /// The next command: the setup first, then the random stream.
    fn next_command(&mut self) -> usize {
        let p = self.setup.pop().unwrap_or_else(|| self.gen.next_command());
        self.planned.push(p);
        self.fates.push(Fate::default());
        self.planned.len() - 1
    }

    fn plan(&mut self, faulty: bool) -> LifePlan {
        let commands = self.rng.range(4, 40);
        let window = self.rng.pick(&[1, 1, 2, 4, 8, 16]);
        let fault = faulty.then(|| {
            // About one write per command (fewer when batched), plus
            // snapshots and opening: most faults fire.
            let nth = self.rng.range(1, commands + 2);
            match self.rng.next_u64() % 100 {
                0..=39 => Fault::Crash { nth, keep_ops: 0 },
                40..=59 => Fault::Crash {
                    nth,
                    keep_ops: usize::MAX,
                },
                60..=69 => Fault::Crash {
                    nth,
                    keep_ops: self.rng.range(1, 12) as usize,
                },
                70..=84 => Fault::FailWrite { nth },
                85..=94 => Fault::TearWrite {
                    nth,
                    keep_ops: self.rng.range(1, 12) as usize,
                },
                _ => Fault::TearWrite {
                    nth,
                    keep_ops: usize::MAX,
                },
            }
        });
        let ending = if faulty && self.rng.chance(80) {
            Ending::Crash
        } else {
            Ending::Clean
        };
        LifePlan {
            fault,
            commands,
            window,
            ending,
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let mut crashes = 0;
        while crashes < CRASHES_PER_SEED {
            let plan = self.plan(true);
            if self.life(plan)? {
                crashes += 1;
            }
        }
        let mut last = self.plan(false);
        last.commands = last.commands.max(5);
        self.life(last)?;
        self.check_final()
    }

    /// Runs one process lifetime; returns whether it ended in a crash.
    fn life(&mut self, plan: LifePlan) -> Result<bool, String> {
        self.trace.push(format!("{plan:?}"));
        let store = FaultyStore::new(self.mem.clone());
        if let Some(f) = plan.fault {
            store.arm(f);
        }
        let Some(exchange) = self.start_life(&store)? else {
            return Ok(true);
        };
        let gateway = Gateway::start(&exchange)?;
        let start_seq = exchange.stats().durable_seq.load(Ordering::Acquire);
        gateway.wait_applied(start_seq)?;
        gateway.check_against(&exchange.reader())?;

        let submitter = exchange
            .submitter()
            .ok_or("the embedded exchange has no submitter")?;
        let (tx, rx) = mpsc::channel::<(usize, Result<(), SubmitError>)>();
        let mut waiting: Vec<(usize, watch::Receiver<Option<Resolution>>)> = Vec::new();
        let mut sent = 0;
        while sent < plan.commands && !is_dead(&store, &exchange) {
            let n = plan.window.min(plan.commands - sent);
            sent += n;
            let mut group = Vec::new();
            for _ in 0..n {
                let idx = self.next_command();
                let p = &self.planned[idx];
                let id = if p.decodes {
                    let id = RequestId::parse(&p.request_id).ok_or("unparsable request id")?;
                    match gateway.shared.requests.admit(&id) {
                        Admission::Submit(w) => waiting.push((idx, w)),
                        _ => return Err(format!("the gateway refused {}", p.request_id)),
                    }
                    Some(id)
                } else {
                    None
                };
                group.push((idx, id));
                let tx = tx.clone();
                submitter.submit(
                    p.payload.clone(),
                    Box::new(move |r| {
                        let _ = tx.send((idx, r));
                    }),
                );
            }
            self.collect_acks(&rx, n, &group, &gateway)?;
            // Wait for the gateway's answers, as its clients do.
            for (idx, _) in &group {
                if self.fates[*idx].acked != Some(true) || !self.planned[*idx].decodes {
                    continue;
                }
                let Some((_, w)) = waiting.iter_mut().find(|(i, _)| i == idx) else {
                    continue;
                };
                if !self.wait_answer(w, &store, &exchange)? {
                    break; // the process is failing: stop waiting
                }
            }
        }

        let crashed = self.end_life(plan.ending, exchange, &store, &gateway)?;
        // Answers the gateway gave until it stopped count as given.
        gateway.stop()?;
        for (idx, w) in &waiting {
            if let Some(Resolution::Committed(o)) = &*w.borrow() {
                self.fates[*idx].outcome = Some(Arc::clone(o));
            }
        }
        self.tally.run_ended(crashed, store.faults_fired());
        Ok(crashed)
    }

    /// Takes the log's `n` answers to a window of submissions (`group`); a refusal
    /// fails its request at the gateway.
    fn collect_acks(
        &mut self,
        rx: &mpsc::Receiver<(usize, Result<(), SubmitError>)>,
        n: u64,
        group: &[(usize, Option<RequestId>)],
        gateway: &Gateway,
    ) -> Result<(), String> {
        for _ in 0..n {
            let (idx, r) = rx
                .recv_timeout(PATIENCE)
                .map_err(|_| "the log never answered a submission".to_string())?;
            self.fates[idx].acked = Some(r.is_ok());
            if let Err(e) = r {
                if let Some((_, Some(id))) = group.iter().find(|(i, _)| *i == idx) {
                    gateway.shared.requests.fail(id, e);
                }
            }
        }
        Ok(())
    }

    /// Opens the ledger on `store` and starts the exchange; `None` when the seeded
    /// fault fired while starting (a crash).
    fn start_life(&mut self, store: &SimStore) -> Result<Option<Exchange<SimStore>>, String> {
        let opened = Ledger::with_store(store.clone(), &self.opts.ledger)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                Exchange::start_embedded_on_ledger(l, self.opts.clone())
                    .map_err(|e| format!("{e:#}"))
            });
        match opened {
            Ok(x) => Ok(Some(x)),
            Err(e) if store.faults_fired() > 0 => {
                self.trace.push(format!("  crashed while starting: {e}"));
                self.tally.crash_points += 1;
                self.tally.faults_fired += 1;
                self.tally.crashed_starting += 1;
                Ok(None)
            }
            Err(e) => Err(format!("cannot restart on the surviving store: {e}")),
        }
    }

    /// Ends a run as planned (a clean shutdown, checked against the gateway's
    /// replica, or a crash at the next store write); `true` when it crashed.
    fn end_life<S: Store>(
        &mut self,
        ending: Ending,
        exchange: Exchange<S>,
        store: &SimStore,
        gateway: &Gateway,
    ) -> Result<bool, String> {
        Ok(match ending {
            Ending::Clean if !is_dead(store, &exchange) => match exchange.shutdown() {
                Ok(engine) => {
                    gateway.wait_applied(engine.last_seq())?;
                    let (seq, hash) = gateway.state()?;
                    if seq != engine.last_seq() || hash != engine.state_hash() {
                        return Err(format!(
                            "after a clean shutdown at cmd_seq {} the gateway's replica (at {seq}) differs from the engine",
                            engine.last_seq()
                        ));
                    }
                    self.trace.push(format!("  clean stop at cmd_seq {seq}"));
                    false
                }
                Err(e) if store.faults_fired() > 0 => {
                    self.trace.push(format!("  crashed while stopping: {e:#}"));
                    true
                }
                Err(e) => return Err(format!("clean shutdown failed: {e:#}")),
            },
            _ => {
                let fired = store.faults_fired() > 0;
                let writes = store.writes_since_armed();
                if !fired {
                    store.arm(Fault::Crash {
                        nth: 1,
                        keep_ops: 0,
                    });
                }
                drop(exchange);
                self.trace.push(if fired {
                    format!("  the fault fired; crashed (write {writes} so far)")
                } else {
                    format!("  the fault did not fire in {writes} writes; crashed at the next")
                });
                true
            }
        })
    }

    /// Waits for the gateway to answer; `false` if the process failed first.
    fn wait_answer<S: Store>(
        &self,
        w: &mut watch::Receiver<Option<Resolution>>,
        store: &SimStore,
        exchange: &Exchange<S>,
    ) -> Result<bool, String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(10), w.wait_for(|r| r.is_some()))
                    .await
                    .map(|r| r.map(|r| (*r).clone()))
            });
            match got {
                Ok(Ok(Some(Resolution::Committed(_)))) => return Ok(true),
                Ok(Ok(Some(r))) => return Err(format!("the gateway answered {r:?}")),
                Ok(Ok(None)) | Ok(Err(_)) => {
                    return Err("the gateway core stopped while requests waited".into())
                }
                Err(_elapsed) => {
                    if is_dead(store, exchange) {
                        return Ok(false);
                    }
                    if Instant::now() >= deadline {
                        return Err(
                            "a command durable in the log was not applied within 30 s".into()
                        );
                    }
                }
            }
        }
    }

    /// The checks after the final, fault-free run.
    /// Every submitted command is in the final ledger (`at`: where) at most once,
    /// every one the log acknowledged is, and every answer the gateway gave is
    /// what the ledger holds; tallies what happened to each.
    fn check_fates(
        planned: &[Planned],
        fates: &[Fate],
        tally: &mut Tally,
        at: &[Vec<u64>],
        committed: &[CommittedCommand],
    ) -> Result<(), String> {
        for (i, (p, f)) in planned.iter().zip(fates).enumerate() {
            let t = &mut *tally;
            t.submitted += 1;
            t.acked += u64::from(f.acked == Some(true));
            t.answered += u64::from(f.outcome.is_some());
            if f.acked == Some(false) {
                if at[i].is_empty() {
                    t.refused_and_absent += 1;
                } else {
                    t.refused_but_applied += 1;
                }
            }
            if at[i].len() > 1 {
                return Err(format!("{} applied twice, at {:?}", p.request_id, at[i]));
            }
            if f.acked == Some(true) && at[i].is_empty() {
                return Err(format!(
                    "{} was acknowledged by the log and is lost",
                    p.request_id
                ));
            }
            if let Some(o) = &f.outcome {
                let c = committed
                    .get((o.cmd_seq as usize).wrapping_sub(1))
                    .filter(|c| c.cmd_seq == o.cmd_seq);
                let same = c.is_some_and(|c| {
                    c.payload == p.payload && c.ts_ns == o.ts_ns && c.events == o.events
                });
                if !same {
                    return Err(format!(
                        "the gateway answered {} with cmd_seq {} and its events, but the ledger holds otherwise",
                        p.request_id, o.cmd_seq
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_final(&mut self) -> Result<(), String> {
        let opts = LedgerOptions {
            truncate_torn_tail: false,
            ..self.opts.ledger.clone()
        };
        let ledger = Ledger::with_store(self.mem.clone(), &opts)
            .map_err(|e| format!("the final ledger does not open untouched: {e}"))?;
        let reader = ledger.reader();
        let committed = read_committed(&reader, 1, usize::MAX).map_err(|e| e.to_string())?;
        let index: HashMap<&[u8], usize> = self
            .planned
            .iter()
            .enumerate()
            .map(|(i, p)| (p.payload.as_slice(), i))
            .collect();
        let mut at: Vec<Vec<u64>> = vec![Vec::new(); self.planned.len()];
        for c in &committed {
            let idx = index
                .get(c.payload.as_slice())
                .ok_or_else(|| format!("cmd_seq {} holds a command nobody submitted", c.cmd_seq))?;
            at[*idx].push(c.cmd_seq);
        }
        Self::check_fates(&self.planned, &self.fates, &mut self.tally, &at, &committed)?;

        self.tally.committed += committed.len() as u64;

        let summary = gpux_replay::verify::verify_reader(&reader, &Progress::hidden())
            .map_err(|e| format!("replay verify: {e}"))?
            .map_err(|f| format!("replay verify failed: {f:?}"))?;
        if !summary.head_snapshot_checked {
            return Err("replay verify did not check the shutdown snapshot".into());
        }

        // A fault-free engine on the same commands in the ledger's order.
        let mut engine: Engine = Engine::new();
        let mut events: Vec<Event> = Vec::new();
        for (i, c) in committed.iter().enumerate() {
            let seq = i as u64 + 1;
            let payload = &self.planned[index[c.payload.as_slice()]].payload;
            events.clear();
            match CommandEnvelope::from_json(payload) {
                Ok(env) => {
                    let ts = env.ts_ns.max(engine.last_ts_ns());
                    engine.apply(seq, ts, &env.command, &mut events);
                }
                Err(_) => {
                    let ts = engine.last_ts_ns();
                    engine.apply_json(seq, ts, payload, &mut events);
                }
            }
        }
        if engine.state_hash().to_string() != summary.state_hash {
            return Err(format!(
                "the ledger's state {} differs from a fault-free run of its commands {}",
                summary.state_hash,
                engine.state_hash()
            ));
        }
        Ok(())
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")),
    )
}

fn run_seed(seed: u64) -> Tally {
    let mut sim = Sim::new(seed);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    let why = match r {
        Ok(Ok(())) => return sim.tally,
        Ok(Err(why)) => why,
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into()),
    };
    panic!(
        "simulation seed {seed} failed: {why}\nruns:\n{}\nreproduce: GPUX_SIM_SEED={seed} cargo test -p gpux-sequencer --test sim",
        sim.trace.join("\n")
    );
}

#[test]
fn seeded_crashes_lose_no_acknowledged_command_and_apply_none_twice() {
    let (first, count, repeat) = match env_u64("GPUX_SIM_SEED") {
        Some(seed) => (
            seed,
            1,
            env_u64("GPUX_SIM_REPEAT").unwrap_or(SINGLE_SEED_REPEAT),
        ),
        None => (
            env_u64("GPUX_SIM_FIRST").unwrap_or(1),
            env_u64("GPUX_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS),
            env_u64("GPUX_SIM_REPEAT").unwrap_or(1),
        ),
    };
    let mut tally = Tally::default();
    for seed in first..first + count {
        for _ in 0..repeat {
            tally.add(&run_seed(seed));
        }
    }
    eprintln!("simulated {count} seeds from {first}: {tally:#?}");
    if count >= DEFAULT_SEEDS {
        // The default run must reach the cases it exists for.
        assert!(tally.crash_points >= 1_000, "{tally:?}");
        assert!(tally.faults_fired * 2 >= tally.crash_points, "{tally:?}");
        assert!(tally.crashed_starting > 0, "{tally:?}");
        assert!(tally.clean_stops > count, "{tally:?}");
        assert!(tally.refused_but_applied > 0, "{tally:?}");
        assert!(tally.refused_and_absent > 0, "{tally:?}");
        assert!(tally.answered * 2 > tally.submitted, "{tally:?}");
    }
}

/// The crash model the simulation rests on: the crashing write keeps its prefix and
/// nothing written after it reaches the store, until the store is disarmed.
#[test]
fn a_crash_keeps_a_prefix_of_its_write_and_refuses_every_later_write() {
    use gpux_ledger::{Cf, WriteOps};
    let put = |key: &[u8]| {
        let mut ops = WriteOps::new();
        ops.put(Cf::Meta, key, b"v");
        ops
    };
    let mem = MemStore::new();
    let store = FaultyStore::new(mem.clone());
    store.arm(Fault::Crash {
        nth: 2,
        keep_ops: 1,
    });
    store
        .write(&put(b"a"), true)
        .expect("the write before the crash");
    let mut two = put(b"b");
    two.put(Cf::Meta, b"c", b"v");
    assert!(store.write(&two, true).is_err());
    assert!(store.crashed());
    assert!(
        store.write(&put(b"d"), true).is_err(),
        "nothing after a crash"
    );
    assert_eq!(store.writes_since_armed(), 3);
    let keys: Vec<bool> = [b"a", b"b", b"c", b"d"]
        .iter()
        .map(|k| mem.get(Cf::Meta, *k).expect("get").is_some())
        .collect();
    assert_eq!(
        keys,
        [true, true, false, false],
        "a, then the prefix of the crash"
    );
    store.disarm();
    store
        .write(&put(b"d"), true)
        .expect("a restarted process writes");

    // keep_ops = all: the write is there, its caller was told it failed.
    store.arm(Fault::Crash {
        nth: 1,
        keep_ops: usize::MAX,
    });
    assert!(store.write(&put(b"e"), true).is_err());
    assert!(mem.get(Cf::Meta, b"e").expect("get").is_some());
}
