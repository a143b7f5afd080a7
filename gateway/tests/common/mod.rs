//! Test harness: a real embedded exchange (RocksDB ledger in a temporary directory)
//! and the gateway on 127.0.0.1:0, driven over HTTP with reqwest.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use gpux_gateway::{Backend, GatewayConfig, RunningGateway};
use gpux_sequencer::{Exchange, PipelineOptions};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tempfile::TempDir;

pub const ADMIN: &str = "test-admin-key-0123456789abcdef";
pub const MARKET: &str = "h100-sxm.us-east";

/// The delivery slot the tests trade, as people write it: three hours after the
/// hour now (the gateway stamps commands with the system clock, so the slot must
/// be open now and for the whole test). The same for the whole test process.
pub fn slot_name() -> &'static str {
    static SLOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SLOT.get_or_init(|| gpux_engine::slot::format_slot(slot_secs()))
}

/// [`slot_name`] in unix seconds.
pub fn slot_secs() -> u64 {
    static SLOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SLOT.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        (now / 3_600 + 3) * 3_600
    })
}

/// A market-data path of the test slot: `/v1/markets/{MARKET}/slots/{slot}/{what}`.
pub fn md_path(what: &str) -> String {
    format!("/v1/markets/{MARKET}/slots/{}/{what}", slot_name())
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts the status and, for errors, the `{code, message}` shape and code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        if let Some(code) = code {
            assert_eq!(self.code(), code, "body: {}", self.body);
            assert!(
                self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "errors carry a message: {}",
                self.body
            );
            let keys: Vec<&String> = self.body.as_object().unwrap().keys().collect();
            let with_status = self.body["status"] == "rejected";
            assert_eq!(
                keys.len(),
                2 + usize::from(with_status),
                "error shape is exactly {{code, message}}, with `status: rejected` on a refused order: {}",
                self.body
            );
        }
        self
    }
}

/// A decimal field of a JSON value.
#[track_caller]
pub fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap()
}

/// A decimal literal.
pub fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub struct Harness {
    pub dir: TempDir,
    pub exchange: Option<Exchange>,
    pub gateway: Option<RunningGateway>,
    pub base: String,
    pub http: reqwest::Client,
    pub cfg: GatewayConfig,
}

pub fn config() -> GatewayConfig {
    let mut cfg = GatewayConfig::new("127.0.0.1:0".parse().unwrap(), ADMIN);
    cfg.rate_limit.per_key = None;
    cfg.rate_limit.per_ip_anonymous = None;
    cfg.request_timeout = Duration::from_secs(30);
    cfg
}

fn default_backend(exchange: &Exchange) -> Backend {
    Backend::embedded(exchange).unwrap()
}

async fn launch(dir: &Path, cfg: GatewayConfig) -> (Exchange, RunningGateway, String) {
    launch_with(dir, cfg, Box::new(default_backend)).await
}

async fn launch_with(
    dir: &Path,
    cfg: GatewayConfig,
    backend: Box<dyn FnOnce(&Exchange) -> Backend>,
) -> (Exchange, RunningGateway, String) {
    let exchange = Exchange::start_embedded(dir, PipelineOptions::default()).unwrap();
    let backend = backend(&exchange);
    let gateway = gpux_gateway::start(cfg, backend).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(60), gateway.wait_ready())
            .await
            .unwrap(),
        "the gateway became ready"
    );
    let base = format!("http://{}", gateway.addr);
    (exchange, gateway, base)
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(config()).await
    }

    pub async fn start_with(cfg: GatewayConfig) -> Harness {
        Self::start_with_backend(cfg, Box::new(default_backend)).await
    }

    /// A harness whose gateway reaches the exchange through `backend` (e.g. a feed
    /// that injects faults).
    pub async fn start_with_backend(
        cfg: GatewayConfig,
        backend: Box<dyn FnOnce(&Exchange) -> Backend>,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (exchange, gateway, base) = launch_with(dir.path(), cfg.clone(), backend).await;
        Harness {
            dir,
            exchange: Some(exchange),
            gateway: Some(gateway),
            base,
            http: reqwest::Client::new(),
            cfg,
        }
    }

    /// Stops the gateway and the exchange cleanly.
    pub async fn stop_servers(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown().await.unwrap();
        }
        if let Some(e) = self.exchange.take() {
            tokio::task::spawn_blocking(move || e.shutdown().map(|_| ()))
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// Stops everything and starts again on the same ledger directory.
    pub async fn restart(&mut self) {
        self.stop_servers().await;
        let (exchange, gateway, base) = launch(self.dir.path(), self.cfg.clone()).await;
        self.exchange = Some(exchange);
        self.gateway = Some(gateway);
        self.base = base;
    }

    pub async fn stop(mut self) {
        self.stop_servers().await;
    }

    pub fn exchange(&self) -> &Exchange {
        self.exchange.as_ref().unwrap()
    }

    /// The ledger's last command and last command-log entry.
    pub fn ledger_head(&self) -> (u64, u64) {
        let h = self.exchange().reader().head().unwrap();
        (h.last_cmd_seq, h.last_inbox_seq)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (h, v) in headers {
            req = req.header(*h, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{status}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Resp {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Resp {
        self.send(Method::GET, path, key, None, &[]).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> Resp {
        self.send(Method::POST, path, key, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str, key: Option<&str>) -> Resp {
        self.send(Method::DELETE, path, key, None, &[]).await
    }

    pub async fn patch(&self, path: &str, key: Option<&str>, body: Value) -> Resp {
        self.send(Method::PATCH, path, key, Some(body), &[]).await
    }

    /// Lists the test market: tick 0.01, lot 0.5, maker 10 bp, taker 25 bp.
    pub async fn list_market(&self) {
        self.post(
            "/v1/markets",
            Some(ADMIN),
            json!({"market": MARKET, "tick_size": "0.01", "lot_size": "0.5", "maker_fee_bps": 10, "taker_fee_bps": 25}),
        )
        .await
        .expect(201, None);
    }

    /// Creates an account; returns its id and key.
    pub async fn account(&self) -> (u64, String) {
        let r = self.post("/v1/accounts", Some(ADMIN), json!({})).await;
        r.expect(201, None);
        (
            r.body["account"].as_u64().unwrap(),
            r.body["api_key"].as_str().unwrap().to_string(),
        )
    }

    pub async fn deposit(&self, account: u64, amount: &str) {
        self.post(
            &format!("/v1/accounts/{account}/deposits"),
            Some(ADMIN),
            json!({ "amount": amount }),
        )
        .await
        .expect(200, None);
    }

    pub async fn add_capacity(&self, key: &str, quantity: &str) {
        self.post(
            "/v1/capacity/add",
            Some(key),
            json!({"market": MARKET, "from_slot": slot_name(), "to_slot": slot_name(), "quantity": quantity}),
        )
        .await
        .expect(200, None);
    }

    /// A market, a provider with 10 GPU-hours and a demander with 100 USD.
    pub async fn provider_and_demander(&self) -> ((u64, String), (u64, String)) {
        self.list_market().await;
        let p = self.account().await;
        let dm = self.account().await;
        self.add_capacity(&p.1, "10").await;
        self.deposit(dm.0, "100").await;
        (p, dm)
    }

    /// Places an order; one naming neither `slot` nor `window` is for the test
    /// slot ([`slot_name`]).
    pub async fn place(&self, key: &str, mut order: Value) -> Resp {
        if let Some(o) = order.as_object_mut() {
            if !o.contains_key("slot") && !o.contains_key("window") {
                o.insert("slot".into(), slot_name().into());
            }
        }
        self.post("/v1/orders", Some(key), order).await
    }

    /// Submits a raw command envelope around the gateway (e.g. a `tick` that moves
    /// engine time past a gate) and waits until it is durable.
    pub async fn submit_raw(&self, envelope: Value) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.exchange().submitter().unwrap().submit(
            envelope.to_string().into_bytes(),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await.unwrap().unwrap();
    }

    /// Delivers the test slot in full, around the gateway: engine time moves to the
    /// slot's start (its gate closes), every entry is reported fully delivered by
    /// its provider, and time moves past the dispute deadline, so every entry
    /// settles as reported (sellers and the fee account paid). Waits until it is
    /// durable; the gateway's replica follows.
    pub async fn deliver_in_full(&self) {
        let tick =
            |secs: u64| json!({"v": 3, "ts_ns": secs * 1_000_000_000, "command": {"type": "tick"}});
        self.submit_raw(tick(slot_secs())).await;
        // Durable in the log is not yet applied: wait for the gate's entries.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let entries = loop {
            let engine = self.exchange().replica().unwrap();
            if engine.last_ts_ns() >= slot_secs() * 1_000_000_000 {
                break engine.entries();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gate never closed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        for e in entries {
            self.submit_raw(
                json!({"v": 3, "ts_ns": slot_secs() * 1_000_000_000, "command": {
                    "type": "delivery_report", "account": e.provider, "entry": e.entry,
                    "delivered": e.quantity.to_string(),
                }}),
            )
            .await;
        }
        self.submit_raw(tick(slot_secs() + 3_600 + 7_200 + 1)).await;
    }

    /// GETs `path` until `done` holds for the body, for at most 10 s.
    pub async fn get_until(
        &self,
        path: &str,
        key: Option<&str>,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get(path, key).await;
            if done(&r.body) {
                return r.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path}: never got there: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Balances and open orders of an account, to check that nothing changed.
    pub async fn snapshot(&self, key: &str) -> (Value, Value) {
        let mut b = self.get("/v1/balances", Some(key)).await.body;
        let mut o = self.get("/v1/orders", Some(key)).await.body;
        b.as_object_mut().unwrap().remove("as_of_cmd_seq");
        o.as_object_mut().unwrap().remove("as_of_cmd_seq");
        (b, o)
    }
}
