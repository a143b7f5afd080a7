//! Shared parts of the Kafka end-to-end tests: the broker ([`broker`]), workloads
//! for several producers, producing and reading topics, the `gpux engine` child
//! process, and the checks every test makes of a ledger against its topic.
#![allow(dead_code)] // each test binary uses a different subset

pub mod broker;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpux::bench::workload::{self, WorkloadConfig};
use gpux_engine::command::{AmendOrder, CancelOrder, PlaceOrder};
use gpux_engine::{ClientOrderId, Command as EngineCommand, CommandEnvelope, Engine};
use gpux_ledger::{Cf, Ledger, Source, Store};
use gpux_sequencer::kafka::{
    last_offset_message, EventsMessage, EventsTopicFeed, KafkaConfig, KafkaSubmitter, TopicReader,
};
use gpux_sequencer::{read_committed, CommittedCommand, Feed, SubmitError, Submitter};
use serde_json::Value;

/// Logs of in-process engines, captured by the test harness (shown for failed
/// tests), filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Account ids of producer `k` start at `k * ACCOUNT_STRIDE + 1`.
pub const ACCOUNT_STRIDE: u64 = 1_000;

/// A generous bound for anything a test waits for (a failure guard, not a timing).
pub const PATIENCE: Duration = Duration::from_secs(180);

/// The benchmark market's listing, as a command envelope.
pub fn list_market() -> Vec<u8> {
    let cmd = workload::setup(&WorkloadConfig::new(0, 0)).remove(0);
    envelope(1_767_225_600_000_000_000, "list-market".into(), cmd)
}

fn envelope(ts_ns: u64, request_id: String, command: EngineCommand) -> Vec<u8> {
    CommandEnvelope {
        v: gpux_engine::PROTOCOL_VERSION,
        ts_ns,
        request_id: Some(request_id),
        idempotent: false,
        command,
    }
    .to_json()
    .into_bytes()
}

/// Producer `k`'s commands: its own accounts (created, funded, given capacity),
/// then a seeded order flow on the shared market. Orders carry client order ids
/// (`p{k}-{n}`) and cancels/amends name those, so the flow stays meaningful however
/// it interleaves with other producers' (engine order ids would not). Timestamps
/// are the producer's own clock, so interleaving also makes them go backwards,
/// which the sequencer must straighten.
pub fn producer_commands(k: u64, accounts: u64, orders: usize, seed: u64) -> Vec<Vec<u8>> {
    let cfg = WorkloadConfig {
        accounts,
        ..WorkloadConfig::new(orders, seed)
    };
    let shift = k * ACCOUNT_STRIDE;
    let coid = |id: u64| Some(ClientOrderId::new(&format!("p{k}-{id}")).expect("valid id"));
    let mut next_order = 0u64;
    let setup = workload::setup(&cfg).into_iter().skip(1); // the market is listed once
    let mut out = Vec::new();
    for (i, cmd) in setup.chain(workload::orders(&cfg)).enumerate() {
        let cmd = match cmd {
            EngineCommand::CreateAccount(mut c) => {
                c.account = c.account.map(|a| a + shift);
                EngineCommand::CreateAccount(c)
            }
            EngineCommand::Deposit(mut c) => {
                c.account += shift;
                EngineCommand::Deposit(c)
            }
            EngineCommand::AddCapacity(mut c) => {
                c.account += shift;
                EngineCommand::AddCapacity(c)
            }
            EngineCommand::PlaceOrder(c) => {
                next_order += 1;
                EngineCommand::PlaceOrder(PlaceOrder {
                    account: c.account + shift,
                    client_order_id: coid(next_order),
                    ..c
                })
            }
            EngineCommand::CancelOrder(c) => EngineCommand::CancelOrder(CancelOrder {
                account: c.account + shift,
                order_id: None,
                client_order_id: coid(c.order_id.expect("the generator names orders by id")),
            }),
            EngineCommand::AmendOrder(c) => EngineCommand::AmendOrder(AmendOrder {
                account: c.account + shift,
                order_id: None,
                client_order_id: coid(c.order_id.expect("the generator names orders by id")),
                ..c
            }),
            other => panic!("the generator made an unexpected command {other:?}"),
        };
        let ts = 1_767_225_600_000_000_000 + (k + 1) * 7_000_000 + i as u64 * 1_000;
        out.push(envelope(ts, format!("p{k}-r{i}"), cmd));
    }
    out
}

/// Produces `payloads` in order through a [`KafkaSubmitter`] (retrying when it is
/// overloaded), `chunk` at a time with `pause` between chunks, and waits for every
/// acknowledgement. Returns how many were acknowledged.
pub fn produce(cfg: &KafkaConfig, payloads: &[Vec<u8>], chunk: usize, pause: Duration) -> u64 {
    let submitter = KafkaSubmitter::new(cfg).expect("a producer");
    let acked = Arc::new(AtomicU64::new(0));
    let failed: Arc<Mutex<Vec<SubmitError>>> = Arc::default();
    for part in payloads.chunks(chunk.max(1)) {
        for p in part {
            loop {
                // Overloaded is answered at once, inside submit.
                let overloaded = Arc::new(AtomicBool::new(false));
                let (acked2, failed2, over2) = (
                    Arc::clone(&acked),
                    Arc::clone(&failed),
                    Arc::clone(&overloaded),
                );
                submitter.submit(
                    p.clone(),
                    Box::new(move |r| match r {
                        Ok(()) => {
                            acked2.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(SubmitError::Overloaded) => over2.store(true, Ordering::SeqCst),
                        Err(e) => failed2.lock().unwrap().push(e),
                    }),
                );
                if !overloaded.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        std::thread::sleep(pause);
    }
    submitter
        .flush(PATIENCE)
        .expect("every command acknowledged");
    let failed = failed.lock().unwrap();
    assert!(failed.is_empty(), "submissions failed: {failed:?}");
    acked.load(Ordering::SeqCst)
}

/// Every record of `topic` (partition 0) from its beginning to its current end.
pub fn read_topic(cfg: &KafkaConfig, topic: &str) -> Vec<(u64, Option<Vec<u8>>)> {
    let mut reader = TopicReader::new(cfg, "test-reader", topic, 0).expect("a consumer");
    let (_, high) = reader
        .watermarks(Duration::from_secs(30))
        .expect("watermarks");
    reader.seek(None).expect("seek");
    let mut out = Vec::new();
    let t0 = Instant::now();
    while out.last().map_or(0, |(o, _)| o + 1) < high {
        reader.poll(4096, Duration::from_millis(200), |o, _, p| {
            out.push((o, p.map(<[u8]>::to_vec)))
        });
        assert!(
            t0.elapsed() < PATIENCE,
            "{topic}: read {} records of {high}",
            out.len()
        );
    }
    out
}

/// The engine a crash-free pipeline ends with after `payloads`, applied the way
/// the sequencer does (timestamps raised to the last applied; a payload that does
/// not decode is applied at the last timestamp).
pub fn reference_engine<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Engine {
    let mut engine: Engine = Engine::new();
    let mut events = Vec::new();
    for p in payloads {
        events.clear();
        apply_next(&mut engine, p, &mut events);
    }
    engine
}

/// Applies `payload` to `engine` as the sequencer does, as the next `cmd_seq`
/// (its timestamp raised to the last applied; a payload that does not decode
/// applied at the last timestamp), pushing its events to `events`. Returns the
/// timestamp it was applied at.
pub fn apply_next(
    engine: &mut Engine,
    payload: &[u8],
    events: &mut Vec<gpux_engine::Event>,
) -> u64 {
    let seq = engine.last_seq() + 1;
    let last = engine.last_ts_ns();
    match CommandEnvelope::from_json(payload) {
        Ok(env) => {
            let ts = env.ts_ns.max(last);
            engine.apply_request(seq, ts, env.idempotent_request_id(), &env.command, events);
            ts
        }
        Err(_) => {
            engine.apply_json(seq, last, payload, events);
            last
        }
    }
}

/// The state rebuilt from the ledger in `dir` is the one a crash-free engine
/// reaches applying `records` (the commands topic, in offset order). Returns the
/// rebuilt state's last `cmd_seq`.
pub fn assert_state_is_crash_free(dir: &Path, records: &[(u64, Option<Vec<u8>>)]) -> u64 {
    let ledger = Ledger::open_read_only(dir).expect("the ledger opens");
    let rebuilt = gpux_replay::rebuild::state_at(&ledger.reader(), None, None).unwrap();
    let reference = reference_engine(
        records
            .iter()
            .map(|(_, v)| v.as_deref().unwrap_or_default()),
    );
    assert_eq!(
        rebuilt.state_hash(),
        reference.state_hash(),
        "same state as a crash-free run"
    );
    rebuilt.last_seq()
}

/// A `gpux engine` child process.
pub struct EngineProcess {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl EngineProcess {
    /// Starts `gpux engine --data DATA --kafka …` with `extra` arguments; does not wait.
    pub fn spawn(data: &Path, cfg: &KafkaConfig, extra: &[&str]) -> EngineProcess {
        check_gpux_has_engine();
        let mut cmd = Command::new(gpux_bin());
        cmd.arg("engine")
            .arg("--data")
            .arg(data)
            .args(["--kafka", &cfg.brokers])
            .args(["--commands-topic", &cfg.commands_topic])
            .args(["--events-topic", &cfg.events_topic])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        broker::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("gpux engine starts");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        EngineProcess { child, stdout }
    }

    /// Waits for the `{"ready":true,"cmd_seq":N}` line; returns N.
    pub fn wait_ready(&mut self) -> u64 {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("engine output");
        assert!(
            n > 0,
            "the engine exited before it was ready: {:?}",
            self.child.try_wait()
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(v["ready"], true, "{line}");
        v["cmd_seq"].as_u64().expect("cmd_seq")
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; waits for a clean exit (status 0 and the `stopped` line) and
    /// returns the last `cmd_seq`.
    pub fn terminate(mut self) -> u64 {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(ok.success());
        let mut rest = String::new();
        let t0 = Instant::now();
        loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            rest.push_str(&line);
            assert!(t0.elapsed() < PATIENCE, "the engine does not stop");
        }
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "the engine exited with {status}; said {rest}"
        );
        let v: serde_json::Value = serde_json::from_str(rest.trim()).expect("the stopped line");
        assert_eq!(v["stopped"], true, "{rest}");
        v["cmd_seq"].as_u64().expect("cmd_seq")
    }

    /// Whether it has exited (with its status).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `gpux serve` child process, started and read up to its ready line.
pub struct ServeProcess {
    child: Child,
    /// Its ready line.
    pub ready: Value,
}

impl ServeProcess {
    /// `gpux serve --listen 127.0.0.1:0 --data DATA` and `extra` arguments, with
    /// `env` set and its log to `stderr`; waits for the ready line.
    pub fn start(data: &Path, extra: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Self {
        let mut cmd = Command::new(gpux_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        broker::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("gpux serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("serve's output");
        let ready = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a JSON ready line ({e}): {line:?}"));
        ServeProcess { child, ready }
    }

    /// The address it listens on.
    pub fn addr(&self) -> String {
        self.ready["listen"].as_str().expect("listen").to_owned()
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; it must stop cleanly (status 0).
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs")
            .success());
        assert!(self.child.wait().expect("wait").success());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `gpux` binary cargo built for these tests, or `$GPUX_BIN` when set (for
/// checkouts sharing one `CARGO_TARGET_DIR`, where another checkout's build can
/// replace `target/debug/gpux` while the tests run).
pub fn gpux_bin() -> std::path::PathBuf {
    std::env::var_os("GPUX_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_gpux").into())
}

/// Fails clearly when the `gpux` binary is not this checkout's.
fn check_gpux_has_engine() {
    let bin = gpux_bin();
    let out = Command::new(&bin)
        .args(["engine", "--help"])
        .output()
        .expect("gpux runs");
    assert!(
        out.status.success(),
        "{} has no `engine` subcommand: it is not this checkout's build (did another \
         checkout sharing CARGO_TARGET_DIR rebuild it? set GPUX_BIN to a copy)",
        bin.display()
    );
}

/// Waits until the events topic's last message carries `cmd_seq` (or later).
pub fn wait_events(cfg: &KafkaConfig, cmd_seq: u64) {
    let t0 = Instant::now();
    loop {
        let last = match last_offset_message(
            cfg,
            &cfg.events_topic,
            cfg.partition,
            Duration::from_secs(5),
        ) {
            Ok(Some((offset, bytes))) => {
                let m = EventsMessage::decode(&bytes).expect("events message");
                if m.cmd_seq > cmd_seq || (m.cmd_seq == cmd_seq && m.completes()) {
                    return;
                }
                format!("offset {offset} holds cmd_seq {}", m.cmd_seq)
            }
            Ok(None) => "empty".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            t0.elapsed() < PATIENCE,
            "the events topic did not reach cmd_seq {cmd_seq}; its last record: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The ledger in `dir` holds exactly `records` (the commands topic, in offset
/// order) as commands 1, 2, …: each offset once, in order, with its exact payload.
pub fn assert_ledger_holds_topic(dir: &Path, topic: &str, records: &[(u64, Option<Vec<u8>>)]) {
    let ledger = Ledger::open_read_only(dir).expect("the ledger opens and verifies");
    assert_eq!(
        ledger.head().last_cmd_seq,
        records.len() as u64,
        "every record of the topic once"
    );
    for (i, rec) in ledger.commands(1).unwrap().enumerate() {
        let rec = rec.unwrap();
        let (offset, payload) = &records[i];
        assert_eq!(rec.cmd_seq, i as u64 + 1);
        assert_eq!(
            rec.source,
            Source::Kafka {
                topic: topic.to_owned(),
                partition: 0,
                offset: *offset,
                index: None,
            },
            "cmd_seq {} comes from offset {offset}",
            rec.cmd_seq
        );
        assert_eq!(
            &rec.payload,
            payload.as_deref().unwrap_or_default(),
            "payload of offset {offset}"
        );
    }
}

/// The events topic holds each `cmd_seq` of the ledger once, in order (apart from
/// exact repeats of messages already there: a retried produce request appended
/// twice), and an [`EventsTopicFeed`] from 1 yields exactly what [`read_committed`]
/// reads from the ledger. Returns how many commands it compared.
pub fn assert_events_topic_matches_ledger(dir: &Path, cfg: &KafkaConfig) -> u64 {
    events_topic_against_ledger(dir, cfg).0
}

/// [`assert_events_topic_matches_ledger`], returning how many commands it compared
/// and how many repeated messages the topic holds (which the feed passed over).
pub fn events_topic_against_ledger(dir: &Path, cfg: &KafkaConfig) -> (u64, u64) {
    let ledger = Ledger::open_read_only(dir).expect("the ledger opens");
    let head = ledger.head().last_cmd_seq;
    let from_ledger: Vec<CommittedCommand> =
        read_committed(&ledger.reader(), 1, head as usize + 1).unwrap();
    assert_eq!(from_ledger.len() as u64, head);

    let repeats = check_raw_events_topic(cfg, head);

    // Through the feed.
    let mut feed = EventsTopicFeed::new(cfg, 1, Duration::from_secs(30)).expect("a feed");
    let mut got: Vec<CommittedCommand> = Vec::new();
    let t0 = Instant::now();
    while (got.len() as u64) < head {
        if let Some(b) = feed
            .recv_timeout(Duration::from_millis(500))
            .expect("the feed is contiguous")
        {
            got.extend(b.iter().cloned());
        }
        assert!(
            t0.elapsed() < PATIENCE,
            "the feed yielded {} of {head}",
            got.len()
        );
    }
    assert_eq!(got.len(), from_ledger.len());
    for (a, b) in got.iter().zip(&from_ledger) {
        assert_eq!(a, b, "cmd_seq {}: events topic vs ledger", b.cmd_seq);
    }
    assert_eq!(feed.repeats(), repeats, "the feed passed over every repeat");
    // And from the middle: the feed finds its starting message.
    if head > 2 {
        let mid = head / 2 + 1;
        let mut feed = EventsTopicFeed::new(cfg, mid, Duration::from_secs(30)).expect("a feed");
        let first = loop {
            if let Some(b) = feed.recv_timeout(Duration::from_millis(500)).unwrap() {
                break b[0].clone();
            }
            assert!(t0.elapsed() < PATIENCE);
        };
        assert_eq!(first, from_ledger[mid as usize - 1]);
    }
    (head, repeats)
}

/// The events topic holds one message per `cmd_seq` up to `head` (or its parts, in
/// order), in offset order, nothing else but exact repeats of messages before them;
/// returns how many repeats.
fn check_raw_events_topic(cfg: &KafkaConfig, head: u64) -> u64 {
    let raw = read_topic(cfg, &cfg.events_topic);
    let decoded: Vec<(u64, EventsMessage, &[u8])> = raw
        .iter()
        .map(|(offset, v)| {
            let bytes = v.as_deref().unwrap_or_default();
            (*offset, EventsMessage::decode(bytes).unwrap(), bytes)
        })
        .collect();
    let mut first_seen: std::collections::HashMap<(u64, u32), &[u8]> =
        std::collections::HashMap::new();
    let mut repeats = 0u64;
    let mut expected = (1u64, 0u32);
    for (i, (offset, m, bytes)) in decoded.iter().enumerate() {
        let place = (m.cmd_seq, m.part.unwrap_or(0));
        if place < expected {
            assert_eq!(
                first_seen.get(&place),
                Some(bytes),
                "events topic offset {offset}: {place:?} comes again with other bytes"
            );
            repeats += 1;
            continue;
        }
        if place != expected {
            // The neighbourhood tells a gap from a reordering.
            let around: Vec<String> = decoded[i.saturating_sub(3)..(i + 8).min(decoded.len())]
                .iter()
                .map(|(o, m, _)| format!("{o}:{}/{}", m.cmd_seq, m.part.unwrap_or(0)))
                .collect();
            panic!(
                "events topic offset {offset}: cmd_seq and part {place:?}, expected {expected:?} \
                 (offset:cmd_seq/part around it: {})",
                around.join(" ")
            );
        }
        first_seen.insert(place, bytes);
        expected = if m.completes() {
            (m.cmd_seq + 1, 0)
        } else {
            (m.cmd_seq, expected.1 + 1)
        };
    }
    assert_eq!(
        expected,
        (head + 1, 0),
        "the events topic ends with the ledger"
    );
    repeats
}

/// `gpux replay verify --data DIR` passes.
pub fn assert_replay_verify(dir: &Path) {
    let out = Command::new(gpux_bin())
        .args(["replay", "verify", "--data"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One HTTP/1.1 request; returns the status and the body as text.
pub fn http_text(addr: &str, method: &str, path: &str, key: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: gpux\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// One HTTP/1.1 request; returns the status and the JSON body.
pub fn http(addr: &str, method: &str, path: &str, key: &str, body: &str) -> (u16, Value) {
    let (status, text) = http_text(addr, method, path, key, body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends each flushed line to a channel.
pub struct Lines(pub Vec<u8>, pub std::sync::mpsc::Sender<String>);

impl Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let s = String::from_utf8_lossy(&self.0).trim().to_string();
        self.0.clear();
        if !s.is_empty() {
            let _ = self.1.send(s);
        }
        Ok(())
    }
}

/// Every (key, value) of one column family, as stored.
fn raw_records(ledger: &Ledger, cf: Cf) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut c = ledger.store().cursor(cf);
    c.seek_to_first();
    let mut out = Vec::new();
    while let Some((k, v)) = c.entry() {
        out.push((k.to_vec(), v.to_vec()));
        c.next();
    }
    c.status().expect("cursor");
    out
}

/// Every stored command and event record, in order, taken out of their chunks
/// (how records are grouped into chunks follows the batches, which differ between
/// two writers; the records do not).
fn stored_records(ledger: &Ledger) -> Vec<Vec<u8>> {
    raw_records(ledger, Cf::Commands)
        .into_iter()
        .flat_map(|(_, v)| {
            gpux_ledger::layout::RawChunk::parse(&v)
                .expect("a chunk parses")
                .records
        })
        .collect()
}

/// Two ledgers hold byte-identical command and event records (a hot standby's
/// check), and some.
pub fn assert_same_records(a: &Ledger, b: &Ledger) {
    let (ra, rb) = (stored_records(a), stored_records(b));
    assert!(!ra.is_empty(), "records");
    assert_eq!(ra.len(), rb.len(), "as many records");
    if let Some(i) = ra.iter().zip(&rb).position(|(x, y)| x != y) {
        panic!("record {i} differs");
    }
}
