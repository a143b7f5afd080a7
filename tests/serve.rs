//! `gpux serve` in-process (the library entry point the binary calls, not the
//! binary: the shared target directory may hold another worktree's `gpux`):
//! it prints its ready line, answers HTTP, generates and then reuses its admin key
//! (mode 0600), keeps accounts across a restart, and stops cleanly.

use std::sync::mpsc;
use std::time::Duration;

mod support;

use gpux::config::Config;
use gpux::run::serve_until;
use gpux_engine::slot::format_slot;
use serde_json::Value;
use support::{http, http_text, Lines};

/// A `gpux serve` running in a thread, with its ready line.
struct Serve {
    line: Value,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Serve {
    /// Starts serve with `opts` and waits for its ready line.
    fn start(opts: Config) -> Serve {
        let (tx, rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut out = Lines(Vec::new(), tx);
            serve_until(opts, &mut out, async {
                let _ = stop_rx.await;
            })
        });
        let line =
            serde_json::from_str(&rx.recv_timeout(Duration::from_secs(120)).unwrap()).unwrap();
        Serve { line, stop, thread }
    }

    /// The address it listens on, from the ready line.
    fn addr(&self) -> String {
        self.line["listen"].as_str().unwrap().to_string()
    }

    /// Stops it; it must stop cleanly.
    fn stop(self) {
        self.stop.send(()).unwrap();
        self.thread.join().unwrap().unwrap();
    }
}

/// The admin key in the file the ready line names, which only its owner may read.
fn admin_key_of(line: &Value) -> String {
    let key_file = line["admin_key_file"].as_str().unwrap().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string()
}

/// Waits until the gateway is ready (caught up with the ledger).
fn wait_healthy(addr: &str) {
    let mut ready = false;
    for _ in 0..600 {
        if http(addr, "GET", "/v1/health", "", "").0 == 200 {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready, "the gateway became ready");
}

/// The `gpux_http_requests_total` count of one method, route and status in the
/// metrics text, if the series is there.
fn requests_counted(metrics: &str, method: &str, route: &str, status: u16) -> Option<u64> {
    let series = format!(
        "gpux_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map(|v| v.trim().parse().unwrap())
}

#[test]
fn serve_answers_http_keeps_its_admin_key_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first_key = None;
    for round in 0..2 {
        let serve = Serve::start(Config {
            data: data.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_key: None,
            ..Config::default()
        });
        let addr = serve.addr();
        let admin = admin_key_of(&serve.line);
        if let Some(k) = &first_key {
            assert_eq!(&admin, k, "the generated key is reused");
        }
        first_key = Some(admin.clone());

        // Ready once caught up with the ledger.
        wait_healthy(&addr);
        if round == 0 {
            let (status, body) = http(&addr, "POST", "/v1/accounts", &admin, "{}");
            assert_eq!(status, 201, "{body}");
            assert_eq!(body["account"], 1);
        } else {
            let (status, body) = http(&addr, "GET", "/v1/accounts/1/balances", &admin, "");
            assert_eq!(status, 200, "the account survived the restart: {body}");
        }
        let (status, _) = http(&addr, "GET", "/v1/balances", "not-a-key", "");
        assert_eq!(status, 401);
        assert_eq!(http(&addr, "GET", "/no/such/path", "", "").0, 404);

        // Every answered request is counted by method, route template and status.
        let (status, metrics) = http_text(&addr, "GET", "/metrics", "", "");
        assert_eq!(status, 200);
        let count = |method, route, status| requests_counted(&metrics, method, route, status);
        if round == 0 {
            assert_eq!(count("POST", "/v1/accounts", 201), Some(1), "{metrics}");
        } else {
            assert_eq!(
                count("GET", "/v1/accounts/{account}/balances", 200),
                Some(1),
                "{metrics}"
            );
            assert!(
                !metrics.contains("/v1/accounts/1/"),
                "no raw paths: {metrics}"
            );
        }
        assert_eq!(count("GET", "/v1/balances", 401), Some(1), "{metrics}");
        assert_eq!(count("GET", "unmatched", 404), Some(1), "{metrics}");

        serve.stop();
    }
}

/// The ready line came out as soon as the socket listened, before the gateway's
/// replica had caught up with the ledger, so a script's first request right after
/// it (the README's Kafka example) could get 503 `starting`. Now the line means
/// requests are served: the first ones after it succeed, on a fresh and on a
/// non-empty ledger.
#[test]
fn ready_line_comes_when_requests_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for round in 0..2 {
        let serve = Serve::start(Config {
            data: data.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_key: Some("readme-admin-key-0123456789".into()),
            ..Config::default()
        });
        let addr = serve.addr();
        let (status, body) = http(&addr, "GET", "/v1/health", "", "");
        assert_eq!(status, 200, "round {round}: {body}");
        let (status, body) = http(
            &addr,
            "POST",
            "/v1/accounts",
            "readme-admin-key-0123456789",
            &format!("{{\"account\":{}}}", round + 1),
        );
        assert_eq!(status, 201, "round {round}: {body}");
        serve.stop();
    }
}

/// Stopped while the gateway is still catching up, serve still stops cleanly and
/// prints no ready line.
#[test]
fn a_stop_before_ready_is_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel();
    let opts = Config {
        data: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let mut out = Lines(Vec::new(), tx);
    serve_until(opts, &mut out, async {}).unwrap();
    assert!(rx.try_recv().is_err(), "no ready line");
}

/// Nanoseconds since the Unix epoch, as the gateway stamps commands.
/// A slot that trades for the next hour at least, whatever the wall clock.
fn open_slot(now_ns: u64) -> u64 {
    (now_ns / 1_000_000_000 / 3_600 + 2) * 3_600
}

impl Serve {
    /// A default `gpux serve` (its clock ticking every second) on a free port, its
    /// ledger in `data` under the returned directory, with `admin_key`.
    fn with_admin_key(admin_key: &str) -> (tempfile::TempDir, Serve) {
        let dir = tempfile::tempdir().unwrap();
        let serve = Serve::start(Config {
            data: dir.path().join("data"),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_key: Some(admin_key.into()),
            ..Config::default()
        });
        (dir, serve)
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// On an exchange where nobody trades, time still passes: with the default clock
/// (`clock_tick_ms` 1,000), a GTD bid expires with no other command sent, the
/// order says so, and the ledger shows the ticks that carried time, the expiry
/// under one of them.
#[test]
fn an_idle_exchange_expires_a_gtd_order_from_ticks_alone() {
    const ADMIN: &str = "clock-admin-key-0123456789";
    let (dir, serve) = Serve::with_admin_key(ADMIN);
    let data = dir.path().join("data");
    let addr = serve.addr();
    let market = r#"{"market":"h100-sxm.us-east","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":0}"#;
    assert_eq!(http(&addr, "POST", "/v1/markets", ADMIN, market).0, 201);
    let (status, account) = http(&addr, "POST", "/v1/accounts", ADMIN, r#"{"account":1}"#);
    assert_eq!(status, 201, "{account}");
    let key = account["api_key"].as_str().unwrap().to_string();
    let deposit = http(
        &addr,
        "POST",
        "/v1/accounts/1/deposits",
        ADMIN,
        r#"{"amount":"10"}"#,
    );
    assert_eq!(deposit.0, 200, "{}", deposit.1);
    let good_till = now_ns() + 1_500_000_000;
    let (status, order) = http(
        &addr,
        "POST",
        "/v1/orders",
        &key,
        &format!(
            r#"{{"market":"h100-sxm.us-east","slot":"{}","side":"buy","price":"2.00","quantity":"1","time_in_force":"gtd","good_till_ns":{good_till}}}"#,
            format_slot(open_slot(now_ns()))
        ),
    );
    assert_eq!(
        (status, &order["status"]),
        (200, &Value::from("open")),
        "{order}"
    );
    let path = format!("/v1/orders/{}", order["order_id"]);

    // Nothing else is sent: only the exchange's ticks can expire it.
    let expired = wait_until_not_resting(&addr, &path, &key);
    assert_eq!(
        (&expired["status"], &expired["cancel_reason"]),
        (&Value::from("expired"), &Value::from("expired")),
        "{expired}"
    );
    serve.stop();

    assert_expired_by_a_tick(&data, good_till);
}

/// On an idle exchange a slot's gate closes from ticks alone, about when the wall
/// clock passes it: a market whose gate closes ten seconds from now, a trade and a
/// resting bid in that slot, then nothing sent. The bid is cancelled for
/// `slot_closed`, the buyer's delivery schedule names the provider, and the ledger
/// shows the closure under a tick.
#[test]
fn an_idle_exchange_closes_a_gate_from_ticks_alone() {
    const ADMIN: &str = "gate-admin-key-0123456789";
    let (dir, serve) = Serve::with_admin_key(ADMIN);
    let data = dir.path().join("data");
    let addr = serve.addr();
    // The next hour whose gate can be ten seconds away (setup takes far less).
    let now_s = now_ns() / 1_000_000_000;
    let slot = (now_s / 3_600 + 1) * 3_600 + if now_s % 3_600 > 3_570 { 3_600 } else { 0 };
    let gate_at = now_s + 10;
    let market = format!(
        r#"{{"market":"h100-sxm.us-east","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":0,"gate_closure_secs":{}}}"#,
        slot - gate_at
    );
    let (status, listed) = http(&addr, "POST", "/v1/markets", ADMIN, &market);
    assert_eq!(status, 201, "{listed}");
    let keys = [1, 2].map(|account| {
        let body = format!(r#"{{"account":{account}}}"#);
        let (status, a) = http(&addr, "POST", "/v1/accounts", ADMIN, &body);
        assert_eq!(status, 201, "{a}");
        a["api_key"].as_str().unwrap().to_string()
    });
    let deposit = http(
        &addr,
        "POST",
        "/v1/accounts/1/deposits",
        ADMIN,
        r#"{"amount":"10"}"#,
    );
    assert_eq!(deposit.0, 200, "{}", deposit.1);
    let s = format_slot(slot);
    let capacity = format!(
        r#"{{"market":"h100-sxm.us-east","from_slot":"{s}","to_slot":"{s}","quantity":"2"}}"#
    );
    let added = http(&addr, "POST", "/v1/capacity/add", &keys[1], &capacity);
    assert_eq!(added.0, 200, "{}", added.1);
    let order = |key: &str, side: &str, price: &str| {
        let body = format!(
            r#"{{"market":"h100-sxm.us-east","slot":"{s}","side":"{side}","price":"{price}","quantity":"1"}}"#
        );
        let (status, o) = http(&addr, "POST", "/v1/orders", key, &body);
        assert_eq!(status, 200, "{o}");
        o
    };
    order(&keys[1], "sell", "2.00");
    order(&keys[0], "buy", "2.00");
    let bid = order(&keys[0], "buy", "1.00");
    assert_eq!(bid["status"], "open", "{bid}");
    let path = format!("/v1/orders/{}", bid["order_id"]);

    // Nothing else is sent: only ticks can carry engine time past the gate.
    let closed = wait_until_not_resting(&addr, &path, &keys[0]);
    assert_eq!(closed["cancel_reason"], "slot_closed", "{closed}");
    let (status, schedule) = http(&addr, "GET", "/v1/accounts/1/schedule", &keys[0], "");
    assert_eq!(status, 200, "{schedule}");
    let entries = schedule["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{schedule}");
    assert_eq!(
        (
            &entries[0]["provider"],
            &entries[0]["holder"],
            &entries[0]["slot"]
        ),
        (&Value::from(2), &Value::from(1), &Value::from(s.as_str()))
    );
    serve.stop();
    assert_closed_by_a_tick(&data, gate_at);
}

/// Polls the order at `path` until it no longer rests (a minute at most).
fn wait_until_not_resting(addr: &str, path: &str, key: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, o) = http(addr, "GET", path, key, "");
        assert_eq!(status, 200, "{o}");
        if o["status"] != "open" {
            return o;
        }
        assert!(std::time::Instant::now() < deadline, "still resting: {o}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ledger in `data` holds a slot closure, under a tick later than `gate_at` (s).
fn assert_closed_by_a_tick(data: &std::path::Path, gate_at: u64) {
    let ledger = gpux_ledger::Ledger::open_read_only(data).unwrap();
    let committed = gpux_sequencer::read_committed(&ledger.reader(), 1, 10_000).unwrap();
    let closure = committed
        .iter()
        .find(|c| {
            c.events
                .iter()
                .any(|e| matches!(e, gpux_engine::Event::SlotClosed(_)))
        })
        .expect("the closure is in the ledger");
    let by = gpux_engine::CommandEnvelope::from_json(&closure.payload).unwrap();
    assert!(
        matches!(by.command, gpux_engine::Command::Tick(_)),
        "closed by {by:?}"
    );
    assert!(closure.ts_ns > gate_at * 1_000_000_000);
}

/// The ledger in `data` holds ticks, and the order due at `good_till` expired at one.
fn assert_expired_by_a_tick(data: &std::path::Path, good_till: u64) {
    let ledger = gpux_ledger::Ledger::open_read_only(data).unwrap();
    let committed = gpux_sequencer::read_committed(&ledger.reader(), 1, 10_000).unwrap();
    let is_tick = |c: &gpux_sequencer::CommittedCommand| {
        gpux_engine::CommandEnvelope::from_json(&c.payload)
            .is_ok_and(|e| matches!(e.command, gpux_engine::Command::Tick(_)))
    };
    assert!(
        committed.iter().filter(|c| is_tick(c)).count() >= 2,
        "ticks in the ledger"
    );
    let expiry = committed
        .iter()
        .find(|c| {
            c.events.iter().any(|e| {
                matches!(e, gpux_engine::Event::OrderCancelled(o)
                    if o.reason == gpux_engine::CancelReason::Expired)
            })
        })
        .expect("the expiry is in the ledger");
    assert!(
        is_tick(expiry),
        "expired by {}",
        String::from_utf8_lossy(&expiry.payload)
    );
    assert!(expiry.ts_ns > good_till);
}
