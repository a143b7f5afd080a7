//! The explorer in a real browser: Debian's headless Chromium, driven over
//! WebDriver (chromedriver, `thirtyfour`), against a real `gpux serve --demo`
//! process. The explorer shows every demo market and a book that changes live
//! (resubscribing on a gap in its `seq`, reconnecting when dropped), and fits a
//! phone's width;
//! a provider adds capacity from the page, offers and cancels; a demander
//! previews and buys a colocated window and sees it among its upcoming hours, and
//! the provider sees it sold ahead; an API error is shown as its message. Then,
//! on a second demo whose clock runs an hour every ten seconds
//! (`--time-scale`), a delivery goes through settlement from the pages: the
//! provider reports fewer GPUs than it sold, the holder disputes, an admin
//! resolves, and the explorer's provider table and histogram show the provider's
//! reliability and the hours delivered. Every wait is for a condition, with a
//! deadline. The run writes the explorer's screenshot, after that settlement, to
//! `docs/explorer.png` (shown by the README).
//!
//! Needs `chromium` and `chromium-driver` (installed by `scripts/setup`): the
//! test fails, never skips, without them.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use thirtyfour::prelude::*;

/// How long any one condition may take to hold (a failure guard, not a timing).
const PATIENCE: Duration = Duration::from_secs(60);
/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(100);
/// The browser window: wide enough for the two-column layout.
const WINDOW: (u32, u32) = (1280, 1500);
/// A phone's width, CSS pixels.
const PHONE_WIDTH: u32 = 390;
/// Engine seconds per wall second on the settlement demo: an hour every ten
/// seconds, so a delivery hour starts, is reported and disputed within seconds.
const TIME_SCALE: &str = "360";

/// A child process killed (with its process group: chromedriver's browsers) and
/// reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = i32::try_from(self.0.id()).expect("a pid fits i32");
        // SAFETY: kill(2) on the child's own process group (it was started as a
        // group leader); no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` as the leader of a new process group.
fn spawn(cmd: &mut Command) -> Proc {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    Proc(cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot start {cmd:?}: {e} (run scripts/setup for chromium and chromedriver)")
    }))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `gpux serve --demo` process on a free port, ready.
struct Demo {
    _proc: Proc,
    base: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// A demo on the wall clock, or with `args` (`--time-scale N`).
    fn start(args: &[&str]) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpux"));
        cmd.args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = spawn(&mut cmd);
        let mut line = String::new();
        BufReader::new(proc.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("gpux serve's ready line {line:?}: {e}"));
        let admin = std::fs::read_to_string(ready["admin_key_file"].as_str().unwrap())
            .unwrap()
            .trim()
            .to_string();
        let base = format!("http://{}", ready["listen"].as_str().unwrap());
        // The ready line tells a newcomer where the explorer is.
        assert_eq!(ready["urls"]["explorer"], format!("{base}/"));
        Demo {
            _proc: proc,
            base,
            admin,
            _dir: dir,
        }
    }

    /// A REST call with `key`; the answer must be a success.
    async fn call(&self, method: reqwest::Method, path: &str, key: &str, body: Value) -> Value {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if !body.is_null() {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Waits until the first market (the one the explorer opens) has an hour with
    /// a bid, an ask and a trade, so the page (and its picture) shows a live hour.
    async fn wait_for_a_traded_hour(&self) {
        let markets = self
            .call(
                reqwest::Method::GET,
                "/v1/markets",
                &self.admin,
                Value::Null,
            )
            .await;
        let first = markets["markets"][0]["market"]
            .as_str()
            .unwrap()
            .to_string();
        let path = format!("/v1/markets/{first}/slots");
        let t0 = Instant::now();
        loop {
            let curve = self
                .call(reqwest::Method::GET, &path, &self.admin, Value::Null)
                .await;
            let traded = curve["slots"].as_array().unwrap().iter().any(|r| {
                !r["best_bid"].is_null() && !r["best_ask"].is_null() && !r["last_price"].is_null()
            });
            if traded {
                return;
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "the demo never traded in {first}: {curve}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// A new account with `usd` deposited; its id and key.
    async fn account(&self, usd: &str) -> (u64, String) {
        let a = self
            .call(
                reqwest::Method::POST,
                "/v1/accounts",
                &self.admin,
                json!({}),
            )
            .await;
        let id = a["account"].as_u64().unwrap();
        if usd != "0" {
            let path = format!("/v1/accounts/{id}/deposits");
            self.call(
                reqwest::Method::POST,
                &path,
                &self.admin,
                json!({"amount": usd}),
            )
            .await;
        }
        (id, a["api_key"].as_str().unwrap().to_string())
    }
}

/// chromedriver on a free port, and a headless Chromium session through it.
struct Browser {
    driver: Option<WebDriver>,
    _chromedriver: Proc,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let chromedriver = spawn(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary("/usr/bin/chromium").unwrap();
        // A container: no user namespaces for the sandbox, a small /dev/shm.
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
        ] {
            caps.add_arg(arg).unwrap();
        }
        let url = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        let driver = loop {
            // chromedriver answers once it listens.
            match WebDriver::new(&url, caps.clone()).await {
                Ok(d) => break d,
                Err(e) => assert!(t0.elapsed() < PATIENCE, "chromedriver: {e}"),
            }
            tokio::time::sleep(POLL).await;
        };
        driver
            .set_window_rect(0, 0, WINDOW.0, WINDOW.1)
            .await
            .unwrap();
        Browser {
            driver: Some(driver),
            _chromedriver: chromedriver,
        }
    }

    fn d(&self) -> &WebDriver {
        self.driver.as_ref().unwrap()
    }

    /// Runs `script` in the page and returns its value.
    async fn js(&self, script: &str) -> Value {
        self.d()
            .execute(script, vec![])
            .await
            .unwrap()
            .json()
            .clone()
    }

    /// Waits until `script` returns something other than `null`/`false`.
    async fn until(&self, what: &str, script: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.js(script).await;
            if !v.is_null() && v != json!(false) {
                return v;
            }
            if t0.elapsed() > PATIENCE {
                let error = self
                    .js("return document.getElementById('error').textContent")
                    .await;
                panic!("never: {what} (page error banner: {error})");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Types `text` into the input `id` (replacing what it held).
    async fn type_into(&self, id: &str, text: &str) {
        let e = self.d().find(By::Id(id)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Chooses `value` in the select `id` (once the page has offered it).
    async fn choose(&self, id: &str, value: &str) {
        let script = format!("return !!document.querySelector('#{id} option[value=\"{value}\"]')");
        self.until(&format!("{id} offers {value}"), &script).await;
        let e = self.d().find(By::Id(id)).await.unwrap();
        thirtyfour::components::SelectElement::new(&e)
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap();
    }

    /// Clicks the element `css` selects, again if the page redrew it meanwhile
    /// (live tables are redrawn as data arrives).
    async fn click_css(&self, css: &str) {
        let t0 = Instant::now();
        loop {
            let clicked = match self.d().find(By::Css(css)).await {
                Ok(e) => e.click().await,
                Err(e) => Err(e),
            };
            match clicked {
                Ok(()) => return,
                Err(e) => assert!(t0.elapsed() < PATIENCE, "cannot click {css}: {e}"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn click(&self, id: &str) {
        self.d()
            .find(By::Id(id))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Opens a page of the app (`#provider`, …) with `key` entered.
    async fn sign_in(&self, base: &str, page: &str, account: u64, key: &str) {
        self.d().goto(format!("{base}/{page}")).await.unwrap();
        self.d().refresh().await.unwrap();
        self.click("key-forget").await;
        self.type_into("key-input", key).await;
        self.click("key-save").await;
        let script =
            format!("return document.getElementById('account-id').textContent === '{account}'");
        self.until("the account is shown", &script).await;
    }

    /// At a phone's width, nothing pushes the page shown wider than the screen.
    async fn fits_a_phone(&self, page: &str) {
        self.d()
            .set_window_rect(0, 0, PHONE_WIDTH, WINDOW.1)
            .await
            .unwrap();
        self.until(
            &format!("{page} fits a phone's width"),
            "return window.innerWidth < 600 && document.documentElement.scrollWidth <= window.innerWidth",
        )
        .await;
        self.d()
            .set_window_rect(0, 0, WINDOW.0, WINDOW.1)
            .await
            .unwrap();
    }

    async fn quit(mut self) {
        if let Some(d) = self.driver.take() {
            d.quit().await.unwrap();
        }
    }
}

/// An hour `n` hours from now, as the API writes it.
fn hour(n: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    gpux_engine::slot::format_slot((now / 3_600 + n) * 3_600)
}

/// Every demo market is listed, the status turns live, and an hour is chosen with
/// its book: returns the market, the hour and the book's `seq` text.
async fn explorer_shows_every_market(demo: &Demo, b: &Browser) -> (String, String, String) {
    demo.wait_for_a_traded_hour().await;
    b.d().goto(format!("{}/", demo.base)).await.unwrap();
    let mut want: Vec<String> = gpux::demo::sample_markets()
        .into_iter()
        .map(|m| m.market)
        .collect();
    want.sort();
    let script = format!(
        "const got = [...document.querySelectorAll('#markets tbody tr')].map(r => r.dataset.market).sort();
         return JSON.stringify(got) === JSON.stringify({}) ? got : null;",
        serde_json::to_string(&want).unwrap()
    );
    b.until("every demo market is listed", &script).await;
    b.until(
        "the WebSocket is live",
        "return document.getElementById('status').textContent === 'live'",
    )
    .await;
    let chosen = b
        .until(
            "an hour is chosen and its book snapshot applied",
            "const s = document.getElementById('slot-select').value;
             const seq = document.getElementById('book-seq').textContent;
             return s && seq ? [document.getElementById('curve-market').textContent, s, seq] : null;",
        )
        .await;
    let text = |i: usize| chosen[i].as_str().unwrap().to_string();
    // It opens on the busiest market, one that traded, so a newcomer sees a curve
    // (the first market listed has traded by now).
    let path = format!("/v1/markets/{}/slots", text(0));
    let curve = demo
        .call(reqwest::Method::GET, &path, &demo.admin, Value::Null)
        .await;
    let traded: f64 = curve["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["volume"].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(traded > 0.0, "the page opened on {}: {curve}", text(0));
    (text(0), text(1), text(2))
}

/// A gap in the book's seq (an update that does not follow what was applied)
/// makes the page subscribe again and rebuild the book from a fresh snapshot.
async fn a_seq_gap_resubscribes(b: &Browser, market: &str, slot: &str) {
    let gap = json!({"type": "update", "channel": format!("book.{market}.{slot}"), "market": market,
        "slot": slot, "seq": 1_000_000_000_000u64, "prev_seq": 999_999_999_999u64,
        "bids": [["0.01", "1"]], "asks": []});
    let script =
        format!("window.gpuxExplorer.inject({gap}); return window.gpuxExplorer.resyncs();");
    assert_eq!(b.js(&script).await, json!(1));
    b.until(
        "the book is resynced from a fresh snapshot, live again",
        "const seq = document.getElementById('book-seq').textContent;
         const bids = [...document.querySelectorAll('#book-bids tr')].map(r => r.cells[0].textContent);
         return document.getElementById('status').textContent === 'live' && seq.startsWith('seq ')
           && seq !== 'seq 1000000000000' && !bids.includes('0.01');",
    )
    .await;
}

/// Choosing other markets follows their books instead: the page keeps one
/// market's curve and one hour's channels, however often the choice changes.
async fn switching_markets_follows_one_book(b: &Browser, first: &str) {
    let others: Vec<String> = gpux::demo::sample_markets()
        .into_iter()
        .map(|m| m.market)
        .filter(|m| m != first)
        .take(3)
        .chain([first.to_string()])
        .collect();
    for m in &others {
        let row = format!("#markets tr[data-market='{m}']");
        b.click_css(&row).await;
        let script = format!(
            "const ch = window.gpuxExplorer.channels();
             const book = ch.filter(c => c.startsWith('book.'));
             return document.getElementById('curve-market').textContent === '{m}'
               && ch.includes('curve.{m}') && ch.length === 4 && book.length === 1
               && book[0].startsWith('book.{m}.') ? ch : null;"
        );
        b.until(
            &format!("{m}'s curve and one hour of it are followed"),
            &script,
        )
        .await;
    }
}

/// A dropped connection shows as reconnecting, then live again with the same
/// channels and a fresh snapshot of the book.
async fn a_dropped_connection_reconnects(b: &Browser) {
    let before = b.js("return window.gpuxExplorer.channels()").await;
    b.js("window.gpuxExplorer.disconnect(); return null").await;
    b.until(
        "the page reconnects and is live again",
        "return window.gpuxExplorer.reconnects() === 1
           && document.getElementById('status').textContent === 'live'
           && document.getElementById('book-seq').textContent.startsWith('seq ')",
    )
    .await;
    assert_eq!(b.js("return window.gpuxExplorer.channels()").await, before);
}

/// The network's numbers and the charts are drawn; at phone width nothing
/// pushes the page wider than the screen.
async fn charts_and_phone_width(b: &Browser) {
    b.until(
        "network stats are shown",
        "return document.querySelectorAll('#stats .card').length >= 6",
    )
    .await;
    b.until(
        "the curve and depth charts are drawn",
        "return document.querySelectorAll('#curve-chart canvas, #depth-chart canvas').length > 0",
    )
    .await;
    b.fits_a_phone("the explorer").await;
}

/// The chosen hour's ladder follows the book: an ask a provider of our own places
/// over the API, at a price no demo trader uses, appears in it.
async fn the_book_moves(demo: &Demo, b: &Browser, market: &str, slot: &str, seq: &str) {
    let (_, key) = demo.account("0").await;
    let body = json!({"market": market, "from_slot": slot, "to_slot": slot, "quantity": "3"});
    demo.call(reqwest::Method::POST, "/v1/capacity/add", &key, body)
        .await;
    let ask =
        json!({"market": market, "slot": slot, "side": "sell", "price": "999.99", "quantity": "3"});
    demo.call(reqwest::Method::POST, "/v1/orders", &key, ask)
        .await;
    let script = format!(
        "const rows = [...document.querySelectorAll('#book-asks tr')].map(r => r.cells[0].textContent);
         return rows.includes('999.99') && document.getElementById('book-seq').textContent !== '{seq}';"
    );
    b.until("the ask shows in the live ladder", &script).await;
}

/// The provider dashboard adds capacity over two hours (the page reports it, the
/// inventory shows in the page and over the API), offers GPUs and cancels the
/// offer.
async fn provider_adds_capacity(demo: &Demo, b: &Browser, market: &str, key: &(u64, String)) {
    b.sign_in(&demo.base, "#provider", key.0, &key.1).await;
    b.choose("cap-market", market).await;
    b.type_into("cap-from", &hour(3)).await;
    b.type_into("cap-to", &hour(4)).await;
    b.type_into("cap-qty", "8").await;
    b.click("cap-add").await;
    b.until(
        "the page reports the capacity added",
        "return document.getElementById('cap-result').textContent.startsWith('Added 8')",
    )
    .await;
    let script = format!(
        "return [...document.querySelectorAll('#p-positions tbody tr')]
           .filter(r => r.cells[0].textContent === '{market}' && r.cells[4].textContent === '8').length === 2"
    );
    b.until("the two hours' inventory is listed", &script).await;
    let bal = demo
        .call(reqwest::Method::GET, "/v1/balances", &key.1, Value::Null)
        .await;
    let hours: Vec<&str> = bal["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["market"] == market && g["inventory"] == "8")
        .map(|g| g["slot"].as_str().unwrap())
        .collect();
    assert_eq!(hours, vec![hour(3), hour(4)]);
    // An ask offered from the page shows among the open asks, and its Cancel
    // button takes it back.
    b.choose("ask-market", market).await;
    b.type_into("ask-slot", &hour(3)).await;
    b.type_into("ask-price", "7.00").await;
    b.type_into("ask-qty", "2").await;
    b.click("ask-submit").await;
    let order = b
        .until(
            "the ask is listed",
            "const r = [...document.querySelectorAll('#p-orders tbody tr')].find(r => r.cells[3].textContent === '7.00');
             return r ? r.dataset.order : null;",
        )
        .await;
    let order = order.as_str().unwrap().to_string();
    let cancel = format!("#p-orders tr[data-order='{order}'] button.cancel");
    b.click_css(&cancel).await;
    let gone = format!("return !document.querySelector(\"#p-orders tr[data-order='{order}']\")");
    b.until("the cancelled ask is gone", &gone).await;
    let open = demo
        .call(reqwest::Method::GET, "/v1/orders", &key.1, Value::Null)
        .await;
    assert_eq!(open["orders"], json!([]), "no open orders left");
}

/// The demander console previews a colocated window from the book, buys it, and
/// shows both hours among its upcoming hours held.
async fn demander_buys_a_colocated_window(demo: &Demo, b: &Browser, market: &str, provider: &str) {
    for h in [hour(3), hour(4)] {
        let ask =
            json!({"market": market, "slot": h, "side": "sell", "price": "5.00", "quantity": "8"});
        demo.call(reqwest::Method::POST, "/v1/orders", provider, ask)
            .await;
    }
    let demander = demo.account("1000").await;
    b.sign_in(&demo.base, "#demander", demander.0, &demander.1)
        .await;
    b.choose("buy-market", market).await;
    b.choose("buy-kind", "cluster").await;
    b.type_into("buy-from", &hour(3)).await;
    b.type_into("buy-to", &hour(4)).await;
    b.type_into("buy-qty", "8").await;
    b.click("buy-preview-btn").await;
    let preview = b
        .until(
            "the preview is shown",
            "const t = document.getElementById('buy-preview').textContent; return t || null;",
        )
        .await;
    let preview = preview.as_str().unwrap();
    assert!(
        preview.starts_with(&format!("8 × {market}"))
            && preview.contains("est. $80.00")
            && preview.contains("one provider"),
        "{preview}"
    );
    b.click("buy-submit").await;
    b.until(
        "the order is filled",
        "return document.getElementById('buy-result').textContent.includes(': filled, 16')",
    )
    .await;
    let script = format!(
        "return [...document.querySelectorAll('#d-upcoming tbody tr')]
           .filter(r => r.dataset.market === '{market}' && r.cells[2].textContent === '8')
           .map(r => r.dataset.slot);"
    );
    let held = b
        .until(
            "both hours are held",
            &format!("const s = (function(){{ {script} }})(); return s.length === 2 ? s : null;"),
        )
        .await;
    assert_eq!(held, json!([hour(3), hour(4)]));
}

/// The provider sees what it sold ahead: both hours, 8 GPUs each at 5.00.
async fn provider_sees_what_it_sold(demo: &Demo, b: &Browser, market: &str, key: &(u64, String)) {
    b.sign_in(&demo.base, "#provider", key.0, &key.1).await;
    let script = format!(
        "const s = [...document.querySelectorAll('#p-sold tbody tr')]
           .filter(r => r.dataset.market === '{market}' && r.cells[3].textContent === '5.00' && r.cells[4].textContent === '8')
           .map(r => r.dataset.slot).sort();
         return s.length === 2 ? s : null;"
    );
    let sold = b.until("both hours are listed as sold", &script).await;
    assert_eq!(sold, json!([hour(3), hour(4)]));
}

/// A refused request's message is shown on the page.
async fn api_errors_are_shown(b: &Browser) {
    b.d()
        .execute("location.hash = '#provider'", vec![])
        .await
        .unwrap();
    b.type_into("cap-from", "tomorrow 9am").await;
    b.click("cap-add").await;
    let shown = b
        .until(
            "the API's error is shown",
            "const e = document.getElementById('error'); return !e.hidden && e.textContent || null;",
        )
        .await;
    let shown = shown.as_str().unwrap();
    assert!(shown.starts_with("invalid_slot: "), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explorer_provider_and_demander_in_a_real_browser() {
    let demo = Demo::start(&[]);
    let b = Browser::start().await;
    let (market, slot, seq) = explorer_shows_every_market(&demo, &b).await;
    a_seq_gap_resubscribes(&b, &market, &slot).await;
    a_dropped_connection_reconnects(&b).await;
    charts_and_phone_width(&b).await;
    the_book_moves(&demo, &b, &market, &slot, &seq).await;
    switching_markets_follows_one_book(&b, &market).await;
    // A market of our own, which no demo trader touches.
    let market = "l40s.browser-test";
    let spec = json!({"market": market, "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": 0, "taker_fee_bps": 0});
    demo.call(reqwest::Method::POST, "/v1/markets", &demo.admin, spec)
        .await;
    let provider = demo.account("0").await;
    provider_adds_capacity(&demo, &b, market, &provider).await;
    demander_buys_a_colocated_window(&demo, &b, market, &provider.1).await;
    provider_sees_what_it_sold(&demo, &b, market, &provider).await;
    api_errors_are_shown(&b).await;
    drop(demo);
    a_delivery_settles_from_the_pages(&b).await;
    b.quit().await;
}

/// The settlement demo's market: no gate before the hour, reports and disputes
/// until two hours after it (thirty seconds from the hour's start at
/// [`TIME_SCALE`]: room for a slow browser; the admin's resolution settles the
/// entry without waiting for the deadline).
const SETTLE_MARKET: &str = "l40s.settle-test";

/// On a fast demo, a provider sells 4 GPUs of the next hour but one to a
/// demander; once the hour starts, returns (provider, demander, entry).
async fn a_delivery_is_due(demo: &Demo) -> ((u64, String), (u64, String), u64) {
    let spec = json!({"market": SETTLE_MARKET, "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": 0,
        "taker_fee_bps": 0, "gate_closure_secs": 0, "report_window_secs": 7200, "dispute_window_secs": 7200});
    demo.call(reqwest::Method::POST, "/v1/markets", &demo.admin, spec)
        .await;
    let now = demo
        .call(reqwest::Method::GET, "/v1/time", &demo.admin, Value::Null)
        .await["ts_ns"]
        .as_u64()
        .unwrap()
        / 1_000_000_000;
    // At least 20 engine minutes ahead (2 s): time to trade before the hour.
    let slot = gpux_engine::slot::format_slot((now + 1_200).div_ceil(3_600) * 3_600);
    let provider = demo.account("0").await;
    let demander = demo.account("100").await;
    let cap = json!({"market": SETTLE_MARKET, "from_slot": slot, "to_slot": slot, "quantity": "4"});
    demo.call(reqwest::Method::POST, "/v1/capacity/add", &provider.1, cap)
        .await;
    for (key, side, tif) in [(&provider.1, "sell", "gtc"), (&demander.1, "buy", "ioc")] {
        let order = json!({"market": SETTLE_MARKET, "slot": slot, "side": side, "price": "3.00",
            "quantity": "4", "time_in_force": tif});
        demo.call(reqwest::Method::POST, "/v1/orders", key, order)
            .await;
    }
    let path = format!("/v1/accounts/{}/schedule", provider.0);
    let t0 = Instant::now();
    let entry = loop {
        let s = demo
            .call(reqwest::Method::GET, &path, &provider.1, Value::Null)
            .await;
        if let Some(e) = s["entries"].as_array().unwrap().first() {
            break e["entry"].as_u64().unwrap();
        }
        assert!(t0.elapsed() < PATIENCE, "the hour's gate never closed: {s}");
        tokio::time::sleep(POLL).await;
    };
    (provider, demander, entry)
}

/// Clicks `action` (`report`, `dispute`) of schedule entry `entry` in table
/// `table` with `qty` typed, and waits for the row's state to become `state`.
async fn act_on_entry(
    b: &Browser,
    table: &str,
    entry: u64,
    (action, qty): (&str, &str),
    state: &str,
) {
    let row = format!("#{table} tr[data-entry='{entry}']");
    let input = format!("return document.querySelector(\"{row} input.qty\") !== null");
    b.until(&format!("{table} offers to {action} entry {entry}"), &input)
        .await;
    let typed = format!(
        "const i = document.querySelector(\"{row} input.qty\");
         i.value = '{qty}'; i.dispatchEvent(new Event('input')); return i.value;"
    );
    assert_eq!(b.js(&typed).await, json!(qty));
    b.click_css(&format!("{row} button.{action}")).await;
    let script = format!(
        "const r = document.querySelector(\"{row}\"); return r && r.dataset.state === '{state}';"
    );
    b.until(&format!("entry {entry} shows as {state}"), &script)
        .await;
}

/// The provider reports 3 of 4 GPUs from its dashboard (the box offers all 4),
/// the demander disputes from its console (2 received), an admin resolves at 2:
/// the entry settles, a dispute lost. The explorer then shows the provider at
/// 0.5 with 2 GPU-hours delivered, in the histogram's 0.5 bar, and the hours
/// delivered on the network; the provider's dashboard shows the settlement, and
/// the hour no longer among those sold ahead (by the exchange's fast clock,
/// though the wall clock has not reached it).
async fn a_delivery_settles_from_the_pages(b: &Browser) {
    let demo = Demo::start(&["--time-scale", TIME_SCALE]);
    let (provider, demander, entry) = a_delivery_is_due(&demo).await;
    b.sign_in(&demo.base, "#provider", provider.0, &provider.1)
        .await;
    let offered = format!(
        "const i = document.querySelector(\"#p-schedule tr[data-entry='{entry}'] input.qty\");
         return i && i.value;"
    );
    assert_eq!(
        b.until("the full quantity is offered", &offered).await,
        json!("4")
    );
    act_on_entry(b, "p-schedule", entry, ("report", "3"), "reported").await;
    b.fits_a_phone("the provider dashboard").await;
    b.sign_in(&demo.base, "#demander", demander.0, &demander.1)
        .await;
    act_on_entry(b, "d-schedule", entry, ("dispute", "2"), "disputed").await;
    b.fits_a_phone("the demander console").await;
    let path = format!("/v1/deliveries/{entry}/resolve");
    demo.call(
        reqwest::Method::POST,
        &path,
        &demo.admin,
        json!({"delivered": "2"}),
    )
    .await;
    // The demander's console: settled, 2 GPU-hours (6.00) refunded.
    b.sign_in(&demo.base, "#demander", demander.0, &demander.1)
        .await;
    b.until(
        "the demander sees the settlement",
        &format!("return document.querySelector(\"#d-schedule tr[data-entry='{entry}']\")?.dataset.state === 'settled'
           && [...document.querySelectorAll('#d-usd .card')].some(c => c.querySelector('.k').textContent
                === 'refunded on settled deliveries' && Number(c.querySelector('.v').textContent) === 6)"),
    )
    .await;
    explorer_shows_the_settlement(&demo, b, provider.0).await;
    b.sign_in(&demo.base, "#provider", provider.0, &provider.1)
        .await;
    let settled = format!(
        "const r = document.querySelector(\"#p-schedule tr[data-entry='{entry}']\");
         const sold = document.querySelectorAll('#p-sold tbody tr').length;
         return r && r.dataset.state === 'settled' && document.getElementById('p-record').dataset.reliability === '0.5'
           && sold === 0
           && r.cells[6].textContent;"
    );
    let text = b.until("the provider sees the settlement", &settled).await;
    assert!(
        text.as_str()
            .unwrap()
            .starts_with("2 delivered (resolved, dispute lost)"),
        "{text}"
    );
    default_hours_follow_the_exchange(&demo, b, &demander).await;
}

/// The hour the exchange's clock is in, by `GET /v1/time`.
async fn exchange_hour(demo: &Demo) -> u64 {
    let t = demo
        .call(reqwest::Method::GET, "/v1/time", &demo.admin, Value::Null)
        .await;
    t["ts_ns"].as_u64().unwrap() / 1_000_000_000 / 3_600
}

/// The forms' default hours follow the exchange's clock, not the computer's: once
/// the fast demo is hours ahead of the wall clock, the console's "from" is two
/// hours after the exchange's hour (the wall clock's would be an hour already gone).
async fn default_hours_follow_the_exchange(demo: &Demo, b: &Browser, demander: &(u64, String)) {
    let wall_hour = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 3_600
    };
    let t0 = Instant::now();
    while exchange_hour(demo).await < wall_hour() + 3 {
        assert!(t0.elapsed() < PATIENCE, "the demo's clock never ran ahead");
        tokio::time::sleep(POLL).await;
    }
    let before = exchange_hour(demo).await;
    b.sign_in(&demo.base, "#demander", demander.0, &demander.1)
        .await;
    let script = format!(
        "const v = document.getElementById('buy-from').value;
         return Date.parse(v) / 3600000 >= {} ? v : null;",
        before + 2
    );
    let shown = b
        .until("the default hour follows the exchange", &script)
        .await;
    let after = exchange_hour(demo).await;
    let shown = gpux_engine::slot::parse_slot(shown.as_str().unwrap()).unwrap() / 3_600;
    assert!(
        (before + 2..=after + 2).contains(&shown),
        "default hour {shown}, the exchange's {before}..={after}"
    );
}

/// The explorer's provider table, histogram and network figures after the
/// settlement; the README's picture.
async fn explorer_shows_the_settlement(demo: &Demo, b: &Browser, provider: u64) {
    b.d().goto(format!("{}/", demo.base)).await.unwrap();
    b.d().refresh().await.unwrap();
    let script = format!(
        "const r = document.querySelector(\"#providers tr[data-account='{provider}']\");
         const bar = [...document.querySelectorAll('#rel-table tbody tr')].find(t => t.cells[0].textContent.startsWith('0.5'));
         return r && bar && [...r.cells].slice(3).map(c => c.textContent).concat([bar.cells[1].textContent,
           document.getElementById('stats').dataset.delivered]);"
    );
    let shown = b.until("the provider's record is shown", &script).await;
    let shown: Vec<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(shown[..3], ["0.5", "2", "1"], "{shown:?}");
    assert!(shown[3].parse::<u64>().unwrap() >= 1, "{shown:?}");
    assert!(shown[4].parse::<f64>().unwrap() >= 2.0, "{shown:?}");
    b.until(
        "the histogram is drawn",
        "return document.querySelectorAll('#rel-chart canvas').length > 0",
    )
    .await;
    // The README's picture: the explorer as a newcomer sees it, with the
    // provider table open.
    b.js("document.getElementById('providers').closest('details').open = true; return null")
        .await;
    let png = b.d().screenshot_as_png().await.unwrap();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/explorer.png");
    std::fs::write(&out, png).unwrap();
}
