//! The life of a GPU-hour through the REST API on the real pipeline (`gpux serve`,
//! embedded log, RocksDB ledger), on a clock running 360 times faster than the
//! wall (an hour every ten seconds; `time_scale`): a demander buys a window of two
//! hours; the gates close; the provider reports the first hour short, the holder
//! disputes, the admin resolves, and the second hour's report stands at its
//! deadline; payments and refunds land, the provider's reliability drops, and a
//! `min_reliability` order then skips its ask. The ledger then passes the audit,
//! which recomputes every settlement from its trades.

use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

use gpux::config::Config;
use gpux::run::serve_until;
use gpux_engine::slot::format_slot;
use serde_json::Value;
use support::{http, Lines};

const ADMIN: &str = "delivery-admin-key-0123456789";
const MARKET: &str = "h100-sxm.us-east";
/// Engine seconds per wall second.
const SCALE: u32 = 360;

struct Serve {
    addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Serve {
    fn start(data: std::path::PathBuf) -> Serve {
        let (tx, rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let cfg = Config {
            data,
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_key: Some(ADMIN.into()),
            time_scale: SCALE,
            ..Config::default()
        };
        let thread = std::thread::spawn(move || {
            let mut out = Lines(Vec::new(), tx);
            serve_until(cfg, &mut out, async {
                let _ = stop_rx.await;
            })
        });
        let line: Value =
            serde_json::from_str(&rx.recv_timeout(Duration::from_secs(120)).unwrap()).unwrap();
        assert_eq!(line["time_scale"], SCALE, "{line}");
        Serve {
            addr: line["listen"].as_str().unwrap().to_string(),
            stop,
            thread,
        }
    }

    fn stop(self) {
        self.stop.send(()).unwrap();
        self.thread.join().unwrap().unwrap();
    }
}

/// Calls `f` until it returns `Some`, for at most two minutes of wall time (the
/// exchange's clock moves on its own: an engine hour is ten seconds).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post(addr: &str, path: &str, key: &str, body: &str) -> (u16, Value) {
    http(addr, "POST", path, key, body)
}

fn ok(addr: &str, path: &str, key: &str, body: &str) -> Value {
    let (status, v) = post(addr, path, key, body);
    assert_eq!(status, 200, "{path} {body}: {v}");
    v
}

fn schedule(addr: &str, account: u64, key: &str) -> Vec<Value> {
    let (status, s) = http(
        addr,
        "GET",
        &format!("/v1/accounts/{account}/schedule"),
        key,
        "",
    );
    assert_eq!(status, 200, "{s}");
    s["entries"].as_array().unwrap().clone()
}

/// A decimal string as its shortest form (`"2.000000"` is `"2"`).
fn n(v: &Value) -> String {
    let d: rust_decimal::Decimal = v
        .as_str()
        .unwrap_or_else(|| panic!("not a decimal: {v}"))
        .parse()
        .unwrap();
    d.normalize().to_string()
}

fn usd(addr: &str, key: &str) -> (String, String, String) {
    let (status, b) = http(addr, "GET", "/v1/balances", key, "");
    assert_eq!(status, 200, "{b}");
    let f = |k: &str| n(&b["usd"][k]);
    (f("available"), f("escrow"), f("pending"))
}

/// Opens account `id` and returns its key.
fn account(addr: &str, id: u64) -> String {
    let (status, a) = post(
        addr,
        "/v1/accounts",
        ADMIN,
        &format!(r#"{{"account":{id}}}"#),
    );
    assert_eq!(status, 201, "{a}");
    a["api_key"].as_str().unwrap().to_string()
}

/// The first two-hour window whose first hour still trades on the exchange's
/// clock, found by adding the provider's capacity there.
fn add_window_capacity(addr: &str, key: &str) -> u64 {
    let wall_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut slot = (wall_s / 3_600 + 1) * 3_600;
    loop {
        let body = format!(
            r#"{{"market":"{MARKET}","from_slot":"{}","to_slot":"{}","quantity":"4"}}"#,
            format_slot(slot),
            format_slot(slot + 3_600)
        );
        let (status, v) = post(addr, "/v1/capacity/add", key, &body);
        match status {
            200 => return slot,
            422 if v["code"] == "slot_closed" => slot += 3_600,
            _ => panic!("capacity: {v}"),
        }
    }
}

/// The accounts of the life of an hour: provider 1 and demander 2, their keys.
struct Session {
    addr: String,
    provider: String,
    demander: String,
}

#[test]
fn a_window_is_delivered_disputed_resolved_and_paid_and_reliability_steers_orders() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = Serve::start(data.clone());
    let addr = serve.addr.clone();
    let market = format!(
        r#"{{"market":"{MARKET}","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":0}}"#
    );
    assert_eq!(post(&addr, "/v1/markets", ADMIN, &market).0, 201);
    let (provider, demander) = (account(&addr, 1), account(&addr, 2));
    ok(
        &addr,
        "/v1/accounts/2/deposits",
        ADMIN,
        r#"{"amount":"100"}"#,
    );

    let s = Session {
        addr,
        provider,
        demander,
    };
    let ids = s.buy_a_window();
    s.first_hour_disputed(&ids);
    s.second_hour_reported(&ids);
    s.reliability_steers_orders();
    serve.stop();

    // The ledger proves it: every settlement recomputed from its trades, each
    // entry settled once, the record recomputed from the settlements.
    let progress = gpux_replay::progress::Progress::hidden();
    let summary = gpux_replay::audit::audit(&data, &Default::default(), &progress)
        .unwrap()
        .unwrap_or_else(|f| panic!("audit failed: {f:?}"));
    assert_eq!(summary.settlement.entries_settled, 2);
    assert_eq!(summary.settlement.providers, 1);
    assert_eq!(summary.settlement.escrow, rust_decimal::Decimal::from(2));
}

impl Session {
    /// Provider 1 offers 4 GPUs at 2.00 in two consecutive hours; demander 2 buys
    /// them as one window; both gates close. Returns the two entries.
    fn buy_a_window(&self) -> Vec<u64> {
        let (addr, provider, demander) = (&self.addr, &self.provider, &self.demander);
        let slot = add_window_capacity(addr, provider);
        let (h1, h2) = (format_slot(slot), format_slot(slot + 3_600));
        for h in [&h1, &h2] {
            let ask = format!(
                r#"{{"market":"{MARKET}","slot":"{h}","side":"sell","price":"2.00","quantity":"4"}}"#
            );
            ok(addr, "/v1/orders", provider, &ask);
        }
        let window = format!(
            r#"{{"market":"{MARKET}","window":{{"from_slot":"{h1}","to_slot":"{h2}"}},"side":"buy","price":"2.10","quantity":"4","time_in_force":"fok"}}"#
        );
        let bought = ok(addr, "/v1/orders", demander, &window);
        assert_eq!(bought["status"], "filled", "{bought}");
        // Paid into escrow, owed to the provider: nothing paid yet.
        assert_eq!(usd(addr, demander), ("84".into(), "16".into(), "0".into()));
        assert_eq!(usd(addr, provider), ("0".into(), "0".into(), "16".into()));

        // Both gates close on the exchange's clock: two entries, provider 1 -> 2.
        let entries = eventually("both entries", || {
            let e = schedule(addr, 2, demander);
            (e.len() == 2).then_some(e)
        });
        let ids: Vec<u64> = entries
            .iter()
            .map(|e| e["entry"].as_u64().unwrap())
            .collect();
        for e in &entries {
            assert_eq!(
                (&e["provider"], &e["holder"], &e["quantity"]),
                (&Value::from(1), &Value::from(2), &Value::from("4"))
            );
            assert_eq!(e["state"], "scheduled");
        }

        ids
    }

    /// Reports `delivered` of `entry` once its hour has started.
    fn report(&self, entry: u64, delivered: &str) -> Value {
        let path = format!("/v1/deliveries/{entry}/report");
        let body = format!(r#"{{"delivered":"{delivered}"}}"#);
        eventually("the report window", || {
            let (status, v) = post(&self.addr, &path, &self.provider, &body);
            match status {
                200 => Some(v),
                422 if v["code"] == "report_window_closed" => None,
                _ => panic!("report: {v}"),
            }
        })
    }

    /// The first hour: reported short once it starts, disputed, resolved lower.
    fn first_hour_disputed(&self, ids: &[u64]) {
        let (addr, provider, demander) = (&self.addr, &self.provider, &self.demander);
        let r = self.report(ids[0], "2");
        assert_eq!(r["event"]["type"], "delivery_reported", "{r}");
        let d = ok(
            addr,
            &format!("/v1/deliveries/{}/dispute", ids[0]),
            demander,
            r#"{"received":"1"}"#,
        );
        assert_eq!(
            (&d["event"]["received"], &d["event"]["reported"]),
            (&Value::from("1"), &Value::from("2"))
        );
        // Only the holder disputes, only the provider reports, only the admin resolves.
        let (status, v) = post(
            addr,
            &format!("/v1/deliveries/{}/dispute", ids[0]),
            provider,
            r#"{"received":"1"}"#,
        );
        assert_eq!(
            (status, &v["code"]),
            (403, &Value::from("not_your_entry")),
            "{v}"
        );
        let (status, _) = post(
            addr,
            &format!("/v1/deliveries/{}/resolve", ids[0]),
            demander,
            r#"{"delivered":"1"}"#,
        );
        assert_eq!(status, 403);
        let settled = ok(
            addr,
            &format!("/v1/deliveries/{}/resolve", ids[0]),
            ADMIN,
            r#"{"delivered":"1"}"#,
        );
        let e = &settled["event"];
        assert_eq!(
            (&e["type"], &e["basis"], &e["dispute_lost"]),
            (
                &Value::from("delivery_settled"),
                &Value::from("resolved"),
                &Value::from(true)
            ),
            "{settled}"
        );
        // 1 of 4 delivered at 2.00: 2 paid, 6 refunded.
        let amounts = (n(&e["delivered"]), n(&e["paid"]), n(&e["refunded"]));
        assert_eq!(amounts, ("1".into(), "2".into(), "6".into()));
    }

    /// The second hour: reported in full, undisputed, settled at its deadline by
    /// the exchange's own clock; the money has landed and the record shows it.
    fn second_hour_reported(&self, ids: &[u64]) {
        let (addr, provider, demander) = (&self.addr, &self.provider, &self.demander);
        self.report(ids[1], "4");
        eventually("the second hour to settle", || {
            let e = schedule(addr, 1, provider);
            let second = e.iter().find(|x| x["entry"] == ids[1])?.clone();
            (second["state"] == "settled").then_some(())
        });
        let e = schedule(addr, 2, demander);
        let second = e.iter().find(|x| x["entry"] == ids[1]).unwrap();
        assert_eq!(second["settlement"]["basis"], "reported");
        assert_eq!(n(&second["settlement"]["paid"]), "8");
        // 5 of 8 GPU-hours delivered at 2.00: 10 paid, 6 refunded, nothing left owed.
        assert_eq!(usd(addr, provider), ("10".into(), "0".into(), "0".into()));
        assert_eq!(usd(addr, demander), ("90".into(), "0".into(), "0".into()));
        let (status, record) = http(addr, "GET", "/v1/providers/1", "", "");
        assert_eq!(status, 200, "{record}");
        let got = (n(&record["obligated"]), n(&record["delivered"]));
        assert_eq!(got, ("8".into(), "5".into()), "{record}");
        let lost = (&record["disputes_lost"], &record["reliability"]);
        assert_eq!(lost, (&Value::from(1), &Value::from("0.625")));
    }

    /// A later hour: provider 1 asks 2.00. A buy that wants 0.7 reliability skips
    /// that ask (it stays on the book); without a floor it trades.
    fn reliability_steers_orders(&self) {
        let (addr, provider, demander) = (&self.addr, &self.provider, &self.demander);
        let later = add_window_capacity(addr, provider);
        let h = format_slot(later);
        let ask = format!(
            r#"{{"market":"{MARKET}","slot":"{h}","side":"sell","price":"2.00","quantity":"1"}}"#
        );
        ok(addr, "/v1/orders", provider, &ask);
        // The depth such a buy can trade with: none at 0.7, the ask at 0.6.
        let blocks = |floor: &str| {
            let path = format!("/v1/markets/{MARKET}/slots/{h}/blocks?min_reliability={floor}");
            let (status, b) = http(addr, "GET", &path, "", "");
            assert_eq!(status, 200, "{b}");
            b["asks"].as_array().unwrap().len()
        };
        assert_eq!((blocks("0.7"), blocks("0.6")), (0, 1));
        let picky = format!(
            r#"{{"market":"{MARKET}","slot":"{h}","side":"buy","price":"2.10","quantity":"1","time_in_force":"ioc","min_reliability":"0.7"}}"#
        );
        let o = ok(addr, "/v1/orders", demander, &picky);
        assert_eq!(n(&o["filled"]), "0", "{o}");
        let any = picky.replace(r#","min_reliability":"0.7""#, "");
        let o = ok(addr, "/v1/orders", demander, &any);
        assert_eq!(n(&o["filled"]), "1", "{o}");
        let bad = picky.replace(r#""ioc""#, r#""gtc""#);
        let (status, v) = post(addr, "/v1/orders", demander, &bad);
        assert_eq!(
            (status, &v["code"]),
            (400, &Value::from("invalid_min_reliability")),
            "{v}"
        );
    }
}
