//! Order entry when the log misbehaves, against a scripted backend (an engine
//! behind a test submitter, and a feed of what it "commits"): overloaded,
//! unavailable (no internals in the body), too large, never committed (timeout,
//! then the same key returns the result once it commits), and a replica that
//! diverges from the committed events (unhealthy, no panic).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gpux_engine::event::MassCancelled;
use gpux_engine::{CommandEnvelope, Engine, Event};
use gpux_gateway::{auth::key_digest, Backend, GatewayConfig, HealthStatus};
use gpux_sequencer::{
    decode_payload, CommittedBatch, CommittedCommand, Feed, FeedError, SubmitDone, SubmitError,
    Submitter,
};
use serde_json::{json, Value};

const ADMIN: &str = "test-admin-key-0123456789abcdef";
const KEY: &str = "gpux_scripted_account_key";
const MARKET: &str = "h100-sxm.us-east";

struct ScriptedFeed {
    rx: Receiver<CommittedBatch>,
    next: u64,
}

impl Feed for ScriptedFeed {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<CommittedBatch>, FeedError> {
        match self.rx.recv_timeout(timeout) {
            Ok(b) => {
                self.next = b.last().map_or(self.next, |c| c.cmd_seq + 1);
                Ok(Some(b))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(FeedError::Stopped("closed".into())),
        }
    }

    fn next_seq(&self) -> u64 {
        self.next
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Apply,
    Overloaded,
    Unavailable,
    TooLarge,
    Hold,
    Corrupt,
}

struct Log {
    engine: Mutex<Engine>,
    tx: Mutex<Sender<CommittedBatch>>,
    mode: Mutex<Mode>,
    held: Mutex<Vec<Vec<u8>>>,
}

impl Log {
    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn commit(&self, payload: Vec<u8>, corrupt: bool) -> u64 {
        let mut e = self.engine.lock().unwrap();
        let seq = e.last_seq() + 1;
        let ts = CommandEnvelope::from_json(&payload)
            .map_or(e.last_ts_ns(), |env| env.ts_ns.max(e.last_ts_ns()));
        let mut events = Vec::new();
        e.apply_json(seq, ts, &payload, &mut events);
        if corrupt {
            events.push(Event::MassCancelled(MassCancelled {
                account: 999,
                market: None,
                slot: None,
                count: 0,
            }));
        }
        let (command, request_id) = decode_payload(&payload);
        let cmd = CommittedCommand {
            cmd_seq: seq,
            ts_ns: ts,
            first_event_seq: 0,
            request_id,
            command,
            payload,
            events,
        };
        let _ = self.tx.lock().unwrap().send(vec![cmd].into());
        seq
    }

    fn admin(&self, command: Value) {
        let env = json!({"v": 3, "ts_ns": 1, "command": command});
        self.commit(serde_json::to_vec(&env).unwrap(), false);
    }

    fn release(&self) {
        for p in std::mem::take(&mut *self.held.lock().unwrap()) {
            self.commit(p, false);
        }
    }
}

impl Submitter for Log {
    fn submit(&self, payload: Vec<u8>, done: SubmitDone) {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Overloaded => done(Err(SubmitError::Overloaded)),
            Mode::Unavailable => done(Err(SubmitError::Unavailable(
                "disk on fire at /secret/ledger".into(),
            ))),
            Mode::TooLarge => done(Err(SubmitError::TooLarge { max: 10 })),
            Mode::Hold => {
                done(Ok(()));
                self.held.lock().unwrap().push(payload);
            }
            Mode::Apply | Mode::Corrupt => {
                done(Ok(()));
                self.commit(payload, mode == Mode::Corrupt);
            }
        }
    }
}

async fn post(
    base: &str,
    key: &str,
    idem: Option<&str>,
    body: Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = reqwest::Client::new()
        .post(format!("{base}/v1/orders"))
        .bearer_auth(key)
        .json(&body);
    if let Some(k) = idem {
        r = r.header("idempotency-key", k);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one log's failures in order, each on the state the ones before it left
async fn log_failures_map_to_clear_statuses_and_divergence_is_reported() {
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Log {
        engine: Mutex::new(Engine::new()),
        tx: Mutex::new(tx),
        mode: Mutex::new(Mode::Apply),
        held: Mutex::new(Vec::new()),
    });
    log.admin(json!({"type": "list_market", "market": MARKET, "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": 0, "taker_fee_bps": 0}));
    log.admin(
        json!({"type": "create_account", "account": 1, "api_key_sha256": key_digest(KEY).to_hex()}),
    );
    log.admin(json!({"type": "deposit", "account": 1, "amount": "1000"}));

    let mut cfg = GatewayConfig::new("127.0.0.1:0".parse().unwrap(), ADMIN);
    cfg.request_timeout = Duration::from_millis(300);
    cfg.rate_limit.per_key = None;
    cfg.rate_limit.per_ip_anonymous = None;
    let backend = Backend {
        submitter: Arc::clone(&log) as Arc<dyn Submitter>,
        feed: Box::new(ScriptedFeed { rx, next: 1 }),
        refollow: None,
    };
    let gw = gpux_gateway::start(cfg, backend).await.unwrap();
    assert!(gw.wait_ready().await);
    let base = format!("http://{}", gw.addr);
    // A slot three hours after the hour now: open while the test runs (the gateway
    // stamps orders with the system clock).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let slot = gpux_engine::slot::format_slot((now / 3_600 + 3) * 3_600);
    let bid = |p: &str| json!({"market": MARKET, "slot": slot, "side": "buy", "price": p, "quantity": "1"});

    // The whole path works against this backend.
    let (s, b, _) = post(&base, KEY, None, bid("1.00")).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("open")), "{b}");

    // Overloaded: 503 with Retry-After; the key is not burnt.
    log.set(Mode::Overloaded);
    let (s, b, h) = post(&base, KEY, Some("k1"), bid("1.01")).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("overloaded")));
    assert!(h.contains_key("retry-after"));
    log.set(Mode::Apply);
    let (s, b, _) = post(&base, KEY, Some("k1"), bid("1.01")).await;
    assert_eq!(s, 200, "{b}");

    // Unavailable: 503 without internals.
    log.set(Mode::Unavailable);
    let (s, b, _) = post(&base, KEY, None, bid("1.02")).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")));
    let text = b.to_string();
    assert!(!text.contains("disk") && !text.contains("secret"), "{text}");

    // Too large for the log.
    log.set(Mode::TooLarge);
    let (s, b, _) = post(&base, KEY, None, bid("1.03")).await;
    assert_eq!((s, b["code"].as_str()), (413, Some("command_too_large")));

    // Journaled but not committed in time: 503 timeout; a retry with the same key
    // while it is still pending waits (and times out too) without resubmitting;
    // once it commits, the same key returns its result.
    log.set(Mode::Hold);
    let (s, b, h) = post(&base, KEY, Some("k2"), bid("1.04")).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("timeout")), "{b}");
    assert!(h.contains_key("retry-after"));
    let (s, b, _) = post(&base, KEY, Some("k2"), bid("1.04")).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("timeout")));
    assert_eq!(
        log.held.lock().unwrap().len(),
        1,
        "the retry did not resubmit"
    );
    log.set(Mode::Apply);
    log.release();
    let mut answer = Value::Null;
    for _ in 0..200 {
        let (s, b, _) = post(&base, KEY, Some("k2"), bid("1.04")).await;
        if s == 200 {
            answer = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer["status"], "open", "{answer}");
    assert_eq!(dec_str(&answer["price"]), "1.04");

    // A committed command whose events the replica does not reproduce: the
    // gateway reports it (health 503 `diverged`) and keeps running.
    assert_eq!(gw.health().status, HealthStatus::Ok);
    log.set(Mode::Corrupt);
    let (s, _, _) = post(&base, KEY, None, bid("1.05")).await;
    assert_eq!(s, 200);
    let health = reqwest::get(format!("{base}/v1/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 503);
    let hb: Value = health.json().await.unwrap();
    assert_eq!(hb["status"], "diverged");
    assert!(hb["diverged_at"].as_u64().is_some());
    assert!(
        gw.stats()
            .divergences
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // And it answers nothing from the wrong state: without a way to re-follow the
    // log it stays diverged, refusing reads and writes with a stable code.
    let r = reqwest::Client::new()
        .get(format!("{base}/v1/balances"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "replica_diverged", "{b}");
    let (s, b, _) = post(&base, KEY, None, bid("1.06")).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (503, Some("replica_diverged")),
        "{b}"
    );
    gw.shutdown().await.unwrap();
}

fn dec_str(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}
