//! The trading client end to end: a real `gpux serve` process on a free port, and
//! the `gpux` client subcommands run as processes against it — their tables,
//! `--json` answers, exit statuses and messages, the 0600 client file of `gpux
//! login`, and `gpux watch` following a book over the WebSocket.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

use gpux_engine::slot::format_slot;
use serde_json::Value;
use support::{gpux_bin, http, ServeProcess};

/// How long anything here may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// A `gpux serve` child process.
struct Server {
    serve: ServeProcess,
    addr: String,
    admin: String,
}

impl Server {
    fn start(data: &Path) -> Server {
        Self::start_with(data, &[])
    }

    /// `gpux serve` with `extra` arguments.
    fn start_with(data: &Path, extra: &[&str]) -> Server {
        let serve = ServeProcess::start(data, extra, &[("RUST_LOG", "warn")], Stdio::inherit());
        let addr = serve.addr();
        let admin = std::fs::read_to_string(serve.ready["admin_key_file"].as_str().unwrap())
            .unwrap()
            .trim()
            .to_owned();
        Server { serve, addr, admin }
    }

    /// An admin request that must succeed.
    fn admin(&self, method: &str, path: &str, body: &str) -> Value {
        let (status, v) = http(&self.addr, method, path, &self.admin, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// SIGTERM; it must stop cleanly.
    fn stop(self) {
        self.serve.terminate();
    }
}

/// What a client command did.
#[derive(Debug)]
struct Ran {
    code: i32,
    out: String,
    err: String,
}

/// The client with a clean environment: the exchange at `api`, the client file
/// `file`, `key` (if any) in GPUX_API_KEY, `input` on standard input.
struct Client {
    api: String,
    file: PathBuf,
    key: Option<String>,
}

impl Client {
    fn run_with(&self, args: &[&str], input: &str) -> Ran {
        let mut cmd = Command::new(gpux_bin());
        cmd.args(args)
            .env("GPUX_API", &self.api)
            .env("GPUX_CLIENT_CONFIG", &self.file)
            .env_remove("GPUX_API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(k) = &self.key {
            cmd.env("GPUX_API_KEY", k);
        }
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Ran {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Ran {
        self.run_with(args, "")
    }

    /// A command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "gpux {args:?}: {r:?}");
        r.out
    }

    /// A `--json` command that must succeed; its one JSON line.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

/// Two delivery hours that trade for the whole test: the hours starting two and
/// three hours after the current one, written `YYYY-MM-DD HH:00` and as slots.
fn hours() -> [(String, String); 2] {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let first = now - now % 3_600 + 2 * 3_600;
    [first, first + 3_600].map(|s| {
        let slot = format_slot(s);
        (format!("{} {}", &slot[..10], &slot[11..16]), slot)
    })
}

/// The market, a provider with 10 GPUs listed in both hours and a funded demander.
fn setup(server: &Server) -> (String, String) {
    server.admin(
        "POST",
        "/v1/markets",
        r#"{"market":"l40s.us-east","tick_size":"0.01","lot_size":"1","maker_fee_bps":10,"taker_fee_bps":25}"#,
    );
    let provider = server.admin("POST", "/v1/accounts", r#"{"account":1}"#)["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let demander = server.admin("POST", "/v1/accounts", r#"{"account":2}"#)["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    server.admin("POST", "/v1/accounts/2/deposits", r#"{"amount":"100"}"#);
    (provider, demander)
}

/// Two delivery hours, as written for `--start` and as slots.
type Hours = [(String, String); 2];

#[test]
fn a_provider_and_a_buyer_trade_with_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = format!("http://{}", server.addr);
    let (provider_key, demander_key) = setup(&server);
    let hours = hours();
    provider_logs_in_lists_and_offers(dir.path(), &api, &provider_key, &hours);
    anyone_reads_the_market(dir.path(), &api, &hours);
    let buyer = Client {
        api: api.clone(),
        file: dir.path().join("b.toml"),
        key: Some(demander_key),
    };
    the_buyer_is_asked_then_buys_a_window(&buyer, &hours);
    the_buyer_bids_lists_and_cancels(&buyer, &hours);
    server.stop();
}

fn provider_logs_in_lists_and_offers(dir: &Path, api: &str, provider_key: &str, hours: &Hours) {
    let [(h1, s1), (_, s2)] = hours;
    let (h1, s1, s2) = (h1.as_str(), s1.as_str(), s2.as_str());
    // The provider logs in: the key from standard input into a private file.
    let file = dir.join("conf/client.toml");
    let provider = Client {
        api: api.to_owned(),
        file: file.clone(),
        key: None,
    };
    let r = provider.run_with(&["login"], &format!("{provider_key}\n"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("as account 1"), "{}", r.out);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let out = provider.ok(&[
        "capacity",
        "add",
        "l40s.us-east",
        "--gpus",
        "10",
        "--start",
        h1,
        "--hours",
        "2",
    ]);
    assert!(
        out.contains(&format!(
            "listed 10 GPUs of l40s.us-east in each hour from {s1} to {s2}"
        )),
        "{out}"
    );
    let out = provider.ok(&[
        "sell",
        "l40s.us-east",
        "--gpus",
        "4",
        "--start",
        h1,
        "--hours",
        "2",
        "--min-price",
        "0.95",
        "--yes",
    ]);
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" open")).count(),
        2,
        "{out}"
    );
}

fn anyone_reads_the_market(dir: &Path, api: &str, hours: &Hours) {
    let [(h1, s1), _] = hours;
    let (h1, s1) = (h1.as_str(), s1.as_str());
    // Anyone reads the markets, the curve and a book.
    let anyone = Client {
        api: api.to_owned(),
        file: dir.join("none.toml"),
        key: None,
    };
    let out = anyone.ok(&["markets"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("l40s.us-east") && l.contains("0.01") && l.contains("USD")),
        "{out}"
    );
    let curve = anyone.json(&["curve", "l40s.us-east", "--json"]);
    let asks: Vec<&str> = curve["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["best_ask"].as_str().unwrap())
        .collect();
    assert_eq!(asks, ["0.95", "0.95"], "{curve}");
    let out = anyone.ok(&["book", "l40s.us-east", h1]);
    assert!(out.contains(&format!("l40s.us-east {s1} (UTC)")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().eq(["ask", "0.95", "4"])),
        "{out}"
    );
}

fn the_buyer_is_asked_then_buys_a_window(buyer: &Client, hours: &Hours) {
    let [(h1, s1), (_, s2)] = hours;
    let (h1, s1, s2) = (h1.as_str(), s1.as_str(), s2.as_str());
    // The buyer, with the key in the environment: asked, says no, nothing is sent.
    let buy = [
        "buy",
        "l40s.us-east",
        "--gpus",
        "2",
        "--start",
        h1,
        "--hours",
        "2",
        "--max-price",
        "1.00",
    ];
    let r = buyer.run_with(&buy, "n\n");
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.out.contains("one window order"), "{}", r.out);
    assert!(r.out.contains("4 of 4 GPU-hours for 3.80 USD"), "{}", r.out);
    assert_eq!(
        buyer.json(&["balances", "--json"])["usd"]["available"],
        "100.000000"
    );
    // Says yes: one window order, filled in both hours.
    let out = buyer.ok(&[&buy[..], &["--yes"]].concat());
    assert!(
        out.lines()
            .any(|l| l.contains(s1) && l.contains(s2) && l.ends_with("filled")),
        "{out}"
    );
    let b = buyer.json(&["balances", "--json"]);
    let gpus: Vec<(&str, &str)> = b["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["slot"].as_str().unwrap(),
                p["available"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(gpus, [(s1, "2"), (s2, "2")], "{b}");
}

fn the_buyer_bids_lists_and_cancels(buyer: &Client, hours: &Hours) {
    let [(_, s1), _] = hours;
    let s1 = s1.as_str();
    // A resting bid, listed, cancelled.
    let placed = buyer.json(&[
        "buy",
        "l40s.us-east",
        "--gpus",
        "1",
        "--start",
        s1,
        "--max-price",
        "0.50",
        "--yes",
        "--json",
    ]);
    let id = placed["order_id"].as_u64().unwrap().to_string();
    assert_eq!(
        buyer.json(&["orders", "--json"])["orders"][0]["order_id"].to_string(),
        id
    );
    let out = buyer.ok(&["cancel", &id]);
    assert!(
        out.starts_with(&format!(
            "cancelled order {id}: buy l40s.us-east {s1} 1 GPUs at 0.50"
        )),
        "{out}"
    );
    assert_eq!(buyer.ok(&["orders"]).trim(), "no open orders");
    assert!(buyer
        .ok(&["schedule"])
        .contains("account 2: no deliveries yet"));
}

#[test]
fn watch_follows_a_book() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = format!("http://{}", server.addr);
    let (provider_key, _) = setup(&server);
    let [(h1, s1), _] = hours();
    let provider = Client {
        api: api.clone(),
        file: dir.path().join("p.toml"),
        key: Some(provider_key),
    };
    provider.ok(&[
        "capacity",
        "add",
        "l40s.us-east",
        "--gpus",
        "10",
        "--start",
        &h1,
    ]);

    // `watch` prints the snapshot, then the update the sell makes, and stops.
    let mut watch = Command::new(gpux_bin());
    watch
        .args([
            "watch",
            "l40s.us-east",
            &h1,
            "--updates",
            "1",
            "--api",
            &api,
        ])
        .env("GPUX_CLIENT_CONFIG", dir.path().join("none.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = watch.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = rx.recv_timeout(PATIENCE).expect("the snapshot");
    assert!(first.starts_with("snapshot seq"), "{first}");
    assert!(first.ends_with("bid - | ask -"), "{first}");
    provider.ok(&[
        "sell",
        "l40s.us-east",
        "--gpus",
        "3",
        "--start",
        &s1,
        "--min-price",
        "0.97",
        "--yes",
    ]);
    let deadline = Instant::now() + PATIENCE;
    let update = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("an update");
        if line.starts_with("update") {
            break line;
        }
    };
    assert!(update.ends_with("bid - | ask 0.97 × 3"), "{update}");
    assert!(child.wait().unwrap().success());

    server.stop();
}

#[test]
fn failures_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = format!("http://{}", server.addr);
    let (provider_key, _) = setup(&server);
    let [(h1, _), _] = hours();
    let provider = Client {
        api: api.clone(),
        file: dir.path().join("p.toml"),
        key: Some(provider_key),
    };

    // Failures: the exit status says which kind, the message what to do.
    let anon = Client {
        api: api.clone(),
        file: dir.path().join("none.toml"),
        key: None,
    };
    let r = anon.run(&["book", "nope.x", &h1]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.err.contains("HTTP 404 unknown_market") && r.err.contains("`gpux markets`"),
        "{}",
        r.err
    );
    let r = anon.run(&["orders"]);
    assert_eq!(
        (r.code, r.err.trim()),
        (4, "gpux: no API key: run `gpux login`, or set GPUX_API_KEY")
    );
    let bad = Client {
        key: Some("gpux_wrong".into()),
        ..anon
    };
    let r = bad.run(&["balances"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.err.contains("HTTP 401"), "{}", r.err);
    let r = provider.run(&[
        "sell",
        "l40s.us-east",
        "--gpus",
        "1",
        "--start",
        "tomorrow 09:30",
        "--yes",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.err.contains("starts on the hour"), "{}", r.err);
    let r = provider.run(&[
        "sell",
        "l40s.us-east",
        "--gpus",
        "1",
        "--start",
        &h1,
        "--min-price",
        "0.955",
        "--yes",
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.err.contains("off_tick_price"), "{}", r.err);
    server.stop();
    let r = provider.run(&["markets"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.err.contains("cannot be reached"), "{}", r.err);
}

#[test]
fn signup_and_the_dead_mans_switch() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = format!("http://{}", server.addr);
    let (provider_key, _) = setup(&server);
    let [(h1, _), _] = hours();

    // Self-serve: an account with no funds, its key saved privately.
    let file = dir.path().join("me/client.toml");
    let me = Client {
        api: api.clone(),
        file: file.clone(),
        key: None,
    };
    let out = me.ok(&["signup"]);
    assert!(out.contains("as account 3 (no funds yet)"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = me.ok(&["balances"]);
    assert!(
        out.starts_with("account 3: 0.000000 USD available"),
        "{out}"
    );

    // A provider's resting ask goes when its switch is not renewed.
    let provider = Client {
        api,
        file: dir.path().join("p.toml"),
        key: Some(provider_key),
    };
    provider.ok(&[
        "capacity",
        "add",
        "l40s.us-east",
        "--gpus",
        "2",
        "--start",
        &h1,
    ]);
    provider.ok(&[
        "sell",
        "l40s.us-east",
        "--gpus",
        "2",
        "--start",
        &h1,
        "--min-price",
        "1.00",
        "--yes",
    ]);
    assert_eq!(
        provider.ok(&["cancel-after", "0"]).trim(),
        "Disarmed: your open orders stay."
    );
    let out = provider.ok(&["cancel-after", "1"]);
    assert!(
        out.starts_with("Unless renewed, all your open orders are cancelled at "),
        "{out}"
    );
    let deadline = Instant::now() + PATIENCE;
    while provider.ok(&["orders"]).trim() != "no open orders" {
        assert!(Instant::now() < deadline, "the switch did not fire");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();
}

/// Calls `f` until it returns `Some`, within [`PATIENCE`].
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// On an exchange clock 360 times the wall's: provider 1 sells 4 GPUs of the
/// first hour whose gate closes at least 20 exchange minutes (over 3 s here) from
/// now to demander 2 (the next hour, should a stall close that gate first); once
/// the gate closes, the entry.
fn one_delivery(server: &Server, provider: &str, demander: &str) -> u64 {
    let (_, time) = http(&server.addr, "GET", "/v1/time", provider, "");
    let now = time["ts_ns"].as_u64().expect("the exchange's time") / 1_000_000_000;
    let closed = |status: u16, v: &Value| status == 422 && v["code"] == "slot_closed";
    let mut slot = (now + 1_500).div_ceil(3_600) * 3_600;
    'hour: loop {
        let s = format_slot(slot);
        slot += 3_600;
        let body = format!(
            r#"{{"market":"l40s.us-east","from_slot":"{s}","to_slot":"{s}","quantity":"4"}}"#
        );
        let (status, v) = http(&server.addr, "POST", "/v1/capacity/add", provider, &body);
        if closed(status, &v) {
            continue;
        }
        assert_eq!(status, 200, "capacity: {v}");
        for (key, side) in [(provider, "sell"), (demander, "buy")] {
            let order = format!(
                r#"{{"market":"l40s.us-east","slot":"{s}","side":"{side}","price":"1.00","quantity":"4"}}"#
            );
            let (status, v) = http(&server.addr, "POST", "/v1/orders", key, &order);
            if closed(status, &v) {
                continue 'hour;
            }
            assert_eq!(status, 200, "{v}");
        }
        break;
    }
    let (status, schedule) = eventually("the gate to close", || {
        let r = http(&server.addr, "GET", "/v1/accounts/2/schedule", demander, "");
        (r.1["entries"].as_array().map_or(0, Vec::len) == 1).then_some(r)
    });
    assert_eq!(status, 200);
    schedule["entries"][0]["entry"].as_u64().unwrap()
}

#[test]
fn a_provider_reports_and_the_holder_disputes_with_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &["--time-scale", "360"]);
    let api = format!("http://{}", server.addr);
    let (provider_key, demander_key) = setup(&server);
    let entry = one_delivery(&server, &provider_key, &demander_key);
    let e = entry.to_string();
    let client = |key: &str, file: &str| Client {
        api: api.clone(),
        file: dir.path().join(file),
        key: Some(key.to_owned()),
    };
    let (provider, holder) = (
        client(&provider_key, "p.toml"),
        client(&demander_key, "d.toml"),
    );

    // `gpux schedule` shows the entry's id, which `gpux report` takes, and its state.
    let table = holder.ok(&["schedule"]);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(e.as_str()))
        .unwrap_or_else(|| panic!("entry {e} not listed:\n{table}"));
    assert_eq!(row.split_whitespace().last(), Some("scheduled"), "{table}");

    // Without --gpus the provider reports the entry's full quantity, once the
    // hour has started (until then the exchange says the window is not open).
    let out = eventually("the report window", || {
        let r = provider.run(&["report", &e]);
        match r.code {
            0 => Some(r.out),
            3 if r.err.contains("report_window_closed") => None,
            _ => panic!("{r:?}"),
        }
    });
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[3], row[4]),
        (e.as_str(), "l40s.us-east", "reported", "4"),
        "{out}"
    );

    // Only the holder disputes: the provider is told what to look at.
    let r = provider.run(&["dispute", &e]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.err.contains("HTTP 403 not_your_entry") && r.err.contains("`gpux schedule`"),
        "{}",
        r.err
    );
    let v = holder.json(&["dispute", &e, "--gpus", "1", "--json"]);
    assert_eq!(v["event"]["type"], "delivery_disputed", "{v}");
    assert_eq!(
        (&v["event"]["received"], &v["event"]["reported"]),
        (&Value::from("1"), &Value::from("4"))
    );

    // Disputed: no more reports; bad input and unknown entries say what to do.
    let r = provider.run(&["report", &e, "--gpus", "2"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.err.contains("entry_disputed"), "{}", r.err);
    let r = provider.run(&["report", &e, "--gpus", "-1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.err.contains("--gpus: a number of GPUs"), "{}", r.err);
    let r = provider.run(&["report", "999999"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.err.contains("not in account 1's schedule"), "{}", r.err);
    let r = holder.run(&["dispute", "999999"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.err.contains("unknown_entry") && r.err.contains("`gpux schedule`"),
        "{}",
        r.err
    );
    server.stop();
}

#[test]
fn keys_are_created_scoped_and_revoked_with_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let api = format!("http://{}", server.addr);
    let (provider_key, _) = setup(&server);
    let client = |key: &str, file: &str| Client {
        api: api.clone(),
        file: dir.path().join(file),
        key: Some(key.to_owned()),
    };
    let full = client(&provider_key, "full.toml");
    let out = full.ok(&["keys", "list"]);
    assert!(out.starts_with("account 1:\nkey_id"), "{out}");
    assert_eq!(out.lines().filter(|l| l.ends_with('*')).count(), 1, "{out}");

    // A read key, shown once: it reads, and is told what it may not do.
    let made = full.json(&["keys", "create", "--scope", "read", "--json"]);
    assert_eq!(made["scope"], "read", "{made}");
    let read = client(made["api_key"].as_str().unwrap(), "read.toml");
    read.ok(&["balances"]);
    let r = read.run(&["cancel", "--all"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.err.contains("HTTP 403 insufficient_scope") && r.err.contains("use a full key"),
        "{}",
        r.err
    );
    let out = full.ok(&["keys", "create"]);
    assert!(out.starts_with("New full key "), "{out}");
    assert_eq!(
        full.json(&["keys", "list", "--json"])["keys"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Revoked: refused from then on; unknown ids say where the ids are.
    let id = made["key_id"].as_str().unwrap();
    let out = full.ok(&["keys", "revoke", id]);
    assert!(
        out.starts_with(&format!("revoked key {id} of account 1")),
        "{out}"
    );
    let r = read.run(&["balances"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.err.contains("HTTP 401"), "{}", r.err);
    let r = full.run(&["keys", "revoke", id]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.err.contains("unknown_api_key") && r.err.contains("`gpux keys list`"),
        "{}",
        r.err
    );
    let r = full.run(&["keys", "create", "--scope", "admin"]);
    assert_eq!(r.code, 2, "{r:?}");
    server.stop();
}
