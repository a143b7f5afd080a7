//! Writing ledgers the way gpux does, from a seeded, realistic command stream.
//!
//! `scenario` makes the commands (two markets, funded accounts, providers'
//! capacity, limit/IOC/FOK/GTD/post-only/market orders that trade, cancels, amends,
//! mass cancels, withdrawals, rejections and a malformed payload); `write_ledger`
//! applies them to a fresh engine with `apply_json` and appends them in batches of a
//! few commands, journaled in the embedded command log first, with a snapshot every
//! N events — exactly the pipeline's convention — and records what it wrote so the
//! tests can check the tools against it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use gpux_engine::event::TradeExecuted;
use gpux_engine::{Engine, Event, StateHash};
use gpux_ledger::{AppliedCommand, Cf, Ledger, LedgerOptions, RocksOptions, Source};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

pub const H100: &str = "h100-sxm.us-east";
pub const A100: &str = "a100-pcie.eu-west";
pub const ACCOUNTS: u64 = 6;
/// Engine time of the first command: 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000_000_000_000;
/// The two delivery slots traded: 2023-11-14T23:00Z and the hour after. Halfway
/// through the order flow a `tick` passes the first one's gate (23:00 less 300 s):
/// its schedule is fixed and only the second trades on.
pub const SLOTS: [u64; 2] = [1_700_002_800, 1_700_006_400];

/// One command to write: timestamp and raw payload bytes.
#[derive(Clone, Debug)]
pub struct Cmd {
    pub ts_ns: u64,
    pub payload: Vec<u8>,
}

/// A command envelope at `ts_ns`.
pub fn envelope(ts_ns: u64, command: Value) -> Cmd {
    Cmd {
        ts_ns,
        payload: serde_json::to_vec(&json!({"v": 3, "ts_ns": ts_ns, "command": command})).unwrap(),
    }
}

/// A seeded command stream: setup, then `orders` order-flow messages.
/// The setup every scenario starts with: two markets, accounts funded with USD
/// and capacity, and two rejected setup commands (a duplicate account, a deposit
/// to the fee account). `ts` advances per account.
fn setup_commands(ts: &mut u64) -> Vec<Cmd> {
    let mut out = vec![
        envelope(
            *ts,
            json!({"type":"list_market","market":H100,"tick_size":"0.01","lot_size":"1","maker_fee_bps":2,"taker_fee_bps":5}),
        ),
        envelope(
            *ts,
            json!({"type":"list_market","market":A100,"tick_size":"0.001","lot_size":"0.5","maker_fee_bps":0,"taker_fee_bps":10}),
        ),
    ];
    for a in 1..=ACCOUNTS {
        *ts += 10;
        out.push(envelope(*ts, json!({"type":"create_account","account":a})));
        out.push(envelope(
            *ts,
            json!({"type":"deposit","account":a,"amount":"50000"}),
        ));
        for m in [H100, A100] {
            out.push(envelope(
                *ts,
                json!({"type":"add_capacity","account":a,"market":m,"from_slot":SLOTS[0],"to_slot":SLOTS[1],"quantity":"400"}),
            ));
        }
    }
    out.push(envelope(*ts, json!({"type":"create_account","account":1})));
    out.push(envelope(
        *ts,
        json!({"type":"deposit","account":0,"amount":"5"}),
    ));
    out
}

// One weighted table of commands, read top to bottom: splitting it would scatter
// the weights and the state (mid prices, open orders) its rows share.
#[allow(clippy::too_many_lines)]
pub fn scenario(seed: u64, orders: usize) -> Vec<Cmd> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ts = T0;
    let mut out: Vec<Cmd> = Vec::new();
    let mut engine: Engine = Engine::new();
    let mut sink: Vec<Event> = Vec::new();
    let mut push = |engine: &mut Engine, cmd: Cmd, out: &mut Vec<Cmd>| {
        sink.clear();
        engine.apply_json(out.len() as u64 + 1, cmd.ts_ns, &cmd.payload, &mut sink);
        out.push(cmd);
    };
    for cmd in setup_commands(&mut ts) {
        push(&mut engine, cmd, &mut out);
    }
    let mut mids = [250i64, 1800i64]; // ticks: 2.50 and 1.800
    for i in 0..orders {
        // Time mostly moves forward; sometimes two commands share a timestamp.
        if rng.random_bool(0.8) {
            ts += rng.random_range(1..2_000);
        }
        if i == orders / 2 {
            // The first slot starts (its gate closed): its delivery schedule is
            // fixed, and each entry is disputed and resolved at once — every other
            // one delivered in full, the rest not at all — so trades settle, paying
            // sellers and the fee account and refunding buyers.
            ts = SLOTS[0] * 1_000_000_000;
            push(&mut engine, envelope(ts, json!({"type":"tick"})), &mut out);
            for e in engine.entries() {
                let delivered = if e.entry % 2 == 0 {
                    e.quantity
                } else {
                    rust_decimal::Decimal::ZERO
                };
                let dispute = json!({"type":"dispute","account":e.holder,"entry":e.entry,"received":delivered.to_string()});
                push(&mut engine, envelope(ts, dispute), &mut out);
                let resolve = json!({"type":"resolve_dispute","entry":e.entry,"delivered":delivered.to_string()});
                push(&mut engine, envelope(ts, resolve), &mut out);
            }
        }
        let slot = if i < orders / 2 {
            SLOTS[rng.random_range(0..2usize)]
        } else {
            SLOTS[1]
        };
        let mi = rng.random_range(0..2usize);
        let (market, scale) = if mi == 0 { (H100, 2) } else { (A100, 3) };
        mids[mi] = (mids[mi] + rng.random_range(-3..=3)).clamp(50, 100_000);
        let account = rng.random_range(1..=ACCOUNTS);
        let side = if rng.random_bool(0.5) { "buy" } else { "sell" };
        let price = |ticks: i64| rust_decimal::Decimal::new(ticks, scale).to_string();
        let qty = |rng: &mut ChaCha8Rng| {
            if mi == 0 {
                rng.random_range(1..=12u32).to_string()
            } else {
                rust_decimal::Decimal::new(rng.random_range(1..=24i64) * 5, 1).to_string()
            }
        };
        let toward = |off: i64| {
            if side == "buy" {
                mids[mi] - off
            } else {
                mids[mi] + off
            }
        };
        let roll = rng.random_range(0..100);
        let cmd = match roll {
            0..=49 => {
                let p = toward(rng.random_range(-2..8));
                let mut c = json!({"type":"place_order","account":account,"market":market,"slot":slot,"side":side,"price":price(p),"quantity":qty(&mut rng)});
                if rng.random_bool(0.1) {
                    c["client_order_id"] = json!(format!("c-{i}"));
                }
                if rng.random_bool(0.05) {
                    c["stp"] = json!("none");
                }
                c
            }
            50..=59 => {
                let p = toward(-rng.random_range(2..10));
                json!({"type":"place_order","account":account,"market":market,"slot":slot,"side":side,"price":price(p),"quantity":qty(&mut rng),"time_in_force":"ioc"})
            }
            60..=62 => {
                let p = toward(-rng.random_range(0..6));
                json!({"type":"place_order","account":account,"market":market,"slot":slot,"side":side,"price":price(p),"quantity":qty(&mut rng),"time_in_force":"fok"})
            }
            63..=64 => {
                let p = toward(rng.random_range(1..5));
                json!({"type":"place_order","account":account,"market":market,"slot":slot,"side":side,"price":price(p),"quantity":qty(&mut rng),"post_only":true})
            }
            65..=67 => {
                let p = toward(rng.random_range(0..4));
                json!({"type":"place_order","account":account,"market":market,"slot":slot,"side":side,"price":price(p),"quantity":qty(&mut rng),"time_in_force":"gtd","good_till_ns":ts + rng.random_range(100..5_000)})
            }
            68..=72 => {
                let mut c = json!({"type":"place_order","account":account,"market":market,"slot":slot,"side":side,"order_type":"market","quantity":qty(&mut rng)});
                if side == "buy" && rng.random_bool(0.5) {
                    c["cap"] = json!("40");
                }
                c
            }
            73..=83 => {
                let open = engine.open_orders(account).unwrap_or_default();
                if open.is_empty() || rng.random_bool(0.1) {
                    // Cancels of orders already gone are rejected.
                    json!({"type":"cancel_order","account":account,"order_id":rng.random_range(1..(i as u64 + 2))})
                } else {
                    let o = open[rng.random_range(0..open.len())];
                    json!({"type":"cancel_order","account":account,"order_id":o.order})
                }
            }
            84..=89 => {
                let open = engine.open_orders(account).unwrap_or_default();
                if open.is_empty() {
                    json!({"type":"mass_cancel","account":account,"market":market})
                } else {
                    let o = open[rng.random_range(0..open.len())];
                    let spec = engine.market(&o.market).unwrap();
                    let ticks = spec.price_ticks(o.price).unwrap();
                    if rng.random_bool(0.5) {
                        // Decrease at the same price: keeps priority.
                        let q = spec.quantity(spec.lots(o.quantity).unwrap().div_ceil(2));
                        json!({"type":"amend_order","account":account,"order_id":o.order,"quantity":q.to_string()})
                    } else {
                        let step = if o.side == gpux_engine::Side::Buy {
                            1
                        } else {
                            -1
                        };
                        let p = spec.price(ticks + step * rng.random_range(1..4));
                        json!({"type":"amend_order","account":account,"order_id":o.order,"price":p.to_string()})
                    }
                }
            }
            90..=91 => json!({"type":"mass_cancel","account":account}),
            92..=93 => {
                json!({"type":"withdraw","account":account,"amount":format!("{}.25", rng.random_range(1..300))})
            }
            94 => json!({"type":"deposit","account":account,"amount":"1000.5"}),
            95 => {
                json!({"type":"add_capacity","account":account,"market":market,"from_slot":slot,"to_slot":SLOTS[1],"quantity":"20"})
            }
            96 => {
                json!({"type":"remove_capacity","account":account,"market":market,"from_slot":slot,"to_slot":slot,"quantity":"5"})
            }
            97 => {
                // Far too big: insufficient funds or capacity.
                json!({"type":"place_order","account":account,"market":market,"slot":slot,"side":side,"price":price(mids[mi]),"quantity":"100000"})
            }
            // All or none: a window over both slots, or a cluster from one
            // provider's own machines (refused when not fillable).
            98 if i % 2 == 0 && i < orders / 2 => {
                let p = toward(-rng.random_range(2..10));
                json!({"type":"place_order","account":account,"market":market,"window":{"from_slot":SLOTS[0],"to_slot":SLOTS[1]},"side":side,"price":price(p),"quantity":qty(&mut rng),"time_in_force":"fok"})
            }
            98 if i % 2 == 0 => {
                let p = toward(-rng.random_range(2..10));
                json!({"type":"place_order","account":account,"market":market,"slot":slot,"colocate":true,"side":"buy","price":price(p),"quantity":qty(&mut rng),"time_in_force":"ioc"})
            }
            98 => {
                push(
                    &mut engine,
                    Cmd {
                        ts_ns: ts,
                        payload: format!(
                            "{{\"v\":2,\"ts_ns\":{ts},\"command\":{{\"type\":\"teleport\"}}}}"
                        )
                        .into_bytes(),
                    },
                    &mut out,
                );
                continue;
            }
            _ => json!({"type":"withdraw","account":0,"amount":"0.01"}),
        };
        push(&mut engine, envelope(ts, cmd), &mut out);
    }
    // A payload that is not even JSON.
    push(
        &mut engine,
        Cmd {
            ts_ns: ts,
            payload: b"\x00not json\xff".to_vec(),
        },
        &mut out,
    );
    out
}

/// How to write a ledger.
#[derive(Clone, Copy)]
pub struct WriteOpts {
    /// Commands per appended batch.
    pub batch: usize,
    /// Snapshot after at least this many events since the last one.
    pub snapshot_every_events: u64,
    /// Snapshot at the head when done (a clean shutdown).
    pub snapshot_on_close: bool,
}

impl Default for WriteOpts {
    fn default() -> Self {
        WriteOpts {
            batch: 4,
            snapshot_every_events: 400,
            snapshot_on_close: true,
        }
    }
}

/// A trade as written, with where it sits.
#[derive(Clone, Debug)]
pub struct TradeAt {
    pub cmd_seq: u64,
    pub event_seq: u64,
    pub ts_ns: u64,
    pub trade: TradeExecuted,
}

/// What `write_ledger` wrote.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub commands: Vec<Cmd>,
    /// Stored event payloads per command (index `cmd_seq - 1`).
    pub events: Vec<Vec<Vec<u8>>>,
    /// The engine's state hash after each command (index `cmd_seq`; 0 = genesis).
    pub hashes: Vec<StateHash>,
    pub trades: Vec<TradeAt>,
    pub batches: u64,
    pub snapshots: Vec<u64>,
    pub chain_head: String,
    pub final_engine_accounts: BTreeMap<u64, (String, Vec<(String, String)>)>,
}

impl Written {
    pub fn event_count(&self) -> u64 {
        self.events.iter().map(|e| e.len() as u64).sum()
    }
    pub fn last_seq(&self) -> u64 {
        self.commands.len() as u64
    }
}

pub fn ledger_opts() -> LedgerOptions {
    LedgerOptions {
        rocks: RocksOptions {
            write_buffer_bytes: 4 << 20,
            ..RocksOptions::default()
        },
        ..LedgerOptions::default()
    }
}

/// Writes `cmds` into a new ledger at `dir` the way gpux does. `tamper` may change
/// a command's stored event payloads before they are appended (to write a ledger
/// that is intact but does not match the engine).
pub fn write_ledger_with(
    dir: &Path,
    cmds: &[Cmd],
    opts: WriteOpts,
    mut tamper: impl FnMut(u64, &mut Vec<Vec<u8>>),
) -> Written {
    let mut ledger = Ledger::open(dir, &ledger_opts()).expect("open ledger");
    let mut engine: Engine = Engine::new();
    let mut w = Written {
        hashes: vec![engine.state_hash()],
        ..Written::default()
    };
    let mut events: Vec<Event> = Vec::new();
    let mut since_snapshot = 0u64;
    let mut next_event_seq = 1u64;
    for chunk in cmds.chunks(opts.batch) {
        let inbox = ledger
            .journal(&chunk.iter().map(|c| &c.payload).collect::<Vec<_>>())
            .expect("journal");
        let mut applied = Vec::with_capacity(chunk.len());
        for (c, inbox_seq) in chunk.iter().zip(inbox) {
            let cmd_seq = engine.last_seq() + 1;
            events.clear();
            engine.apply_json(cmd_seq, c.ts_ns, &c.payload, &mut events);
            for (i, e) in events.iter().enumerate() {
                if let Event::TradeExecuted(t) = e {
                    w.trades.push(TradeAt {
                        cmd_seq,
                        event_seq: next_event_seq + i as u64,
                        ts_ns: c.ts_ns,
                        trade: *t,
                    });
                }
            }
            let mut stored: Vec<Vec<u8>> = events.iter().map(Event::to_bytes).collect();
            tamper(cmd_seq, &mut stored);
            next_event_seq += stored.len() as u64;
            since_snapshot += stored.len() as u64;
            w.events.push(stored.clone());
            w.hashes.push(engine.state_hash());
            applied.push(AppliedCommand {
                cmd_seq,
                ts_ns: c.ts_ns,
                source: Source::Embedded { seq: inbox_seq },
                payload: c.payload.clone(),
                events: stored,
            });
        }
        let receipt = ledger.append(&applied).expect("append");
        w.batches = receipt.header.batch_no;
        if since_snapshot >= opts.snapshot_every_events {
            ledger
                .put_snapshot(engine.last_seq(), &engine.snapshot())
                .expect("snapshot");
            w.snapshots.push(engine.last_seq());
            since_snapshot = 0;
        }
    }
    if opts.snapshot_on_close && w.snapshots.last() != Some(&engine.last_seq()) {
        ledger
            .put_snapshot(engine.last_seq(), &engine.snapshot())
            .expect("snapshot");
        w.snapshots.push(engine.last_seq());
    }
    w.commands = cmds.to_vec();
    w.chain_head = gpux_ledger::hex(&ledger.head().hash);
    w
}

pub fn write_ledger(dir: &Path, cmds: &[Cmd], opts: WriteOpts) -> Written {
    write_ledger_with(dir, cmds, opts, |_, _| {})
}

/// A fresh ledger of the standard scenario (seed 7) in a temporary directory.
pub fn standard() -> (tempfile::TempDir, Written) {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write_ledger(dir.path(), &scenario(7, 1_000), WriteOpts::default());
    (dir, written)
}

/// Engine state after `cmd_seq` commands of `cmds`, applied directly.
pub fn direct_engine(cmds: &[Cmd], cmd_seq: u64) -> Engine {
    let mut engine: Engine = Engine::new();
    let mut sink = Vec::new();
    for (i, c) in cmds.iter().take(cmd_seq as usize).enumerate() {
        engine.apply_json(i as u64 + 1, c.ts_ns, &c.payload, &mut sink);
        sink.clear();
    }
    engine
}

/// Runs a tool's `run` function into a buffer; returns the outcome and the output.
pub fn capture(
    f: impl FnOnce(&mut dyn std::io::Write) -> gpux_replay::Result<gpux_replay::Outcome>,
) -> (gpux_replay::Outcome, Vec<u8>) {
    let mut out = Vec::new();
    let outcome = f(&mut out).expect("the tool runs");
    (outcome, out)
}

/// A stored event payload as the engine's JSON of it (the tests edit and match
/// events as JSON).
pub fn event_json(stored: &[u8]) -> Vec<u8> {
    Event::from_bytes(stored)
        .expect("a stored event decodes")
        .to_json_vec()
}

/// An event's JSON as the ledger stores it (`docs/LEDGER_FORMAT.md` § Event payloads).
pub fn stored_event(json: &[u8]) -> Vec<u8> {
    serde_json::from_slice::<Event>(json)
        .expect("an event's JSON")
        .to_bytes()
}

/// The output as one JSON value.
pub fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

/// Opens the ledger's RocksDB directly (no ledger code) and runs `f` on it.
pub fn raw(path: &Path, f: impl FnOnce(&rocksdb::DB)) {
    let mut o = rocksdb::Options::default();
    o.create_if_missing(false);
    let db = rocksdb::DB::open_cf(&o, path, Cf::ALL.iter().map(|c| c.name())).expect("raw open");
    f(&db);
}

pub fn raw_get(db: &rocksdb::DB, cf: Cf, seq: u64) -> Vec<u8> {
    let h = db.cf_handle(cf.name()).expect("cf");
    db.get_cf(h, gpux_ledger::seq_key(seq))
        .expect("get")
        .expect("present")
}

pub fn raw_put(db: &rocksdb::DB, cf: Cf, seq: u64, value: &[u8]) {
    let h = db.cf_handle(cf.name()).expect("cf");
    db.put_cf(h, gpux_ledger::seq_key(seq), value).expect("put");
}

/// Recomputes a record's trailing crc32c, as a careful forger would.
pub fn reseal(v: &mut [u8]) {
    gpux_ledger::layout::reseal(v);
}

/// Changes the stored record of event `event_seq`, inside its chunk, with `f`;
/// `reseal_chunk` also recomputes the chunk's own crc (docs/LEDGER_FORMAT.md).
pub fn raw_edit_event(
    db: &rocksdb::DB,
    event_seq: u64,
    reseal_chunk: bool,
    f: impl FnOnce(&mut Vec<u8>),
) {
    let index = db.cf_handle(Cf::Events.name()).expect("cf");
    let mut it = db.raw_iterator_cf(index);
    it.seek_for_prev(gpux_ledger::seq_key(event_seq));
    let key = gpux_ledger::layout::index_chunk(it.value().expect("an index entry"))
        .expect("index entry parses");
    let stored = raw_get(db, Cf::Commands, key);
    let value =
        gpux_ledger::layout::edit_event(&stored, event_seq, !reseal_chunk, f).expect("edited");
    raw_put(db, Cf::Commands, key, &value);
}

/// Copies a (closed) ledger directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
