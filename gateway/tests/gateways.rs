//! Several gateways in front of one engine (as `gpux gateway` runs them on Kafka),
//! here two gateways on one embedded log, each with its own submitter and feed:
//!
//! - accounts created concurrently through both never collide: the engine assigns
//!   the ids;
//! - one keyed request submitted through both before either copy is committed is
//!   applied once, and both answers are the original's;
//! - a retry whose original the gateway's idempotency cache has forgotten (but the
//!   engine still remembers) is answered with the original outcome, not applied;
//! - a key created through one gateway opens the account on the other, and once
//!   revoked through the first, the other refuses it.

mod common;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::{config, Harness, Resp, ADMIN};
use gpux_gateway::{Backend, GatewayConfig, RunningGateway};
use gpux_sequencer::{Exchange, PipelineOptions, SubmitDone, Submitter};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Holds the first keyed (`idempotent`) command it sees until a second one
/// arrives through any submitter sharing the rendezvous, then appends both: two
/// copies of a request are in the log before either is committed.
struct Rendezvous {
    inner: Arc<dyn Submitter>,
    held: Held,
}

/// The first copy's payload and completion, while the rendezvous holds it.
type Held = Arc<Mutex<Option<(Vec<u8>, SubmitDone)>>>;

impl Submitter for Rendezvous {
    fn submit(&self, payload: Vec<u8>, done: SubmitDone) {
        let env: Value = serde_json::from_slice(&payload).unwrap();
        let keyed = env["idempotent"] == true;
        if !keyed {
            return self.inner.submit(payload, done);
        }
        // One lock for looking and holding: two copies arriving at once must
        // not both find nothing held (the second would replace the first, whose
        // gateway then never hears back).
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match held.take() {
            None => *held = Some((payload, done)),
            Some((p, d)) => {
                drop(held);
                self.inner.submit(p, d);
                self.inner.submit(payload, done);
            }
        }
    }
}

struct Two {
    _dir: tempfile::TempDir,
    exchange: Option<Exchange>,
    gateways: Vec<RunningGateway>,
    http: reqwest::Client,
}

impl Two {
    async fn start(rendezvous: bool) -> Two {
        let dir = tempfile::tempdir().unwrap();
        let exchange = Exchange::start_embedded(dir.path(), PipelineOptions::default()).unwrap();
        let held = Arc::default();
        let mut gateways = Vec::new();
        for _ in 0..2 {
            let log = exchange.submitter().unwrap();
            let submitter: Arc<dyn Submitter> = if rendezvous {
                Arc::new(Rendezvous {
                    inner: log,
                    held: Arc::clone(&held),
                })
            } else {
                log
            };
            let backend = Backend {
                submitter,
                feed: Box::new(exchange.follow(1)),
                refollow: None,
            };
            let g = gpux_gateway::start(config(), backend).await.unwrap();
            assert!(
                tokio::time::timeout(Duration::from_secs(60), g.wait_ready())
                    .await
                    .unwrap()
            );
            gateways.push(g);
        }
        Two {
            _dir: dir,
            exchange: Some(exchange),
            gateways,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, gw: usize, path: &str) -> String {
        format!("http://{}{}", self.gateways[gw].addr, path)
    }

    async fn stop(mut self) {
        for g in self.gateways.drain(..) {
            g.shutdown().await.unwrap();
        }
        let e = self.exchange.take().unwrap();
        tokio::task::spawn_blocking(move || e.shutdown().map(|_| ()))
            .await
            .unwrap()
            .unwrap();
    }
}

async fn post(
    http: &reqwest::Client,
    url: String,
    key: &str,
    body: Value,
    idem: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = http.post(url).bearer_auth(key).json(&body);
    if let Some(k) = idem {
        req = req.header("idempotency-key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_creating_accounts_at_once_never_collide() {
    let two = Two::start(false).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let http = two.http.clone();
        let url = two.url(i % 2, "/v1/accounts");
        tasks.spawn(async move { post(&http, url, ADMIN, json!({}), None).await });
    }
    let mut accounts = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (status, body) = r.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        accounts.push((
            body["account"].as_u64().unwrap(),
            body["api_key"].as_str().unwrap().to_string(),
        ));
    }
    let mut ids: Vec<u64> = accounts.iter().map(|a| a.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=40).collect::<Vec<u64>>(), "the lowest free ids");
    // Every key opens its own account on either gateway.
    for (i, (id, key)) in accounts.iter().enumerate() {
        let b: Value = two
            .http
            .get(two.url(i % 2, "/v1/balances"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(b["account"], *id, "{b}");
    }
    // An explicit id still works, and the engine skips it afterwards.
    let (status, _) = post(
        &two.http,
        two.url(0, "/v1/accounts"),
        ADMIN,
        json!({"account": 41}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, next) = post(
        &two.http,
        two.url(1, "/v1/accounts"),
        ADMIN,
        json!({}),
        None,
    )
    .await;
    assert_eq!(next["account"], 42);
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_request_sent_through_two_gateways_before_either_commits_applies_once() {
    let two = Two::start(true).await;
    let (status, acct) = post(
        &two.http,
        two.url(0, "/v1/accounts"),
        ADMIN,
        json!({}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = acct["account"].as_u64().unwrap();
    // Gateway 1 checks the account against its own replica, which follows the
    // ledger on its own: until it has applied the creation it would refuse the
    // deposit, and the rendezvous would hold gateway 0's copy for ever.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let known = two
            .http
            .get(two.url(1, &format!("/v1/accounts/{id}/balances")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .status();
        if known == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "gateway 1: {known}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deposit = |gw: usize| {
        let http = two.http.clone();
        let url = two.url(gw, &format!("/v1/accounts/{id}/deposits"));
        async move { post(&http, url, ADMIN, json!({"amount": "25"}), Some("dep-1")).await }
    };
    // The rendezvous holds the first copy until the second is submitted.
    let (a, b) = tokio::join!(deposit(0), deposit(1));
    assert_eq!(a.0, StatusCode::OK, "{}", a.1);
    assert_eq!(a, b, "both gateways answer with the original outcome");
    assert_eq!(a.1["available"], "25.000000");
    // Both copies were in the log before these (unkeyed, so not held) deposits,
    // whose answers mean each gateway's replica has applied everything before.
    for gw in 0..2u64 {
        let url = two.url(gw as usize, &format!("/v1/accounts/{id}/deposits"));
        let (status, _) = post(&two.http, url, ADMIN, json!({"amount": "1"}), None).await;
        assert_eq!(status, StatusCode::OK);
        two.gateways[gw as usize].probe().with_replica(|e| {
            // The account, the deposit, its repeat, then the plain deposits.
            assert_eq!(e.last_seq(), 4 + gw);
            let usd = e.balances(id).unwrap().usd.available;
            assert_eq!(usd, rust_decimal::Decimal::from(26 + gw));
        });
    }
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_the_cache_forgot_is_answered_with_the_original_outcome() {
    // A gateway that remembers one completed keyed request: the engine's window
    // (far larger) still catches the retry.
    let mut cfg: GatewayConfig = config();
    cfg.idempotency.max_entries = 1;
    let h = Harness::start_with(cfg).await;
    let (id, _) = h.account().await;
    let path = format!("/v1/accounts/{id}/deposits");
    let send = |k: &'static str| keyed_deposit(&h, &path, k);
    let first = send("first").await;
    first.expect(200, None);
    send("second").await.expect(200, None); // evicts "first" from the cache
    let (cmd_seq, _) = h.ledger_head();
    let retry = send("first").await;
    retry.expect(200, None);
    assert_eq!(retry.body, first.body, "the original answer");
    assert_eq!(
        h.ledger_head().0,
        cmd_seq + 1,
        "the retry reached the log …"
    );
    let b = h
        .get(&format!("/v1/accounts/{id}/balances"), Some(ADMIN))
        .await;
    assert_eq!(
        b.body["usd"]["available"], "20.000000",
        "… and changed nothing"
    );
    h.stop().await;
}

async fn keyed_deposit(h: &Harness, path: &str, key: &str) -> Resp {
    h.send(
        reqwest::Method::POST,
        path,
        Some(ADMIN),
        Some(json!({"amount": "10"})),
        &[("idempotency-key", key)],
    )
    .await
}

/// `GET /v1/balances` through gateway `gw` with `key` until it answers `status`
/// (the other gateway follows the log on its own), for at most 10 s.
async fn balances_until(two: &Two, gw: usize, key: &str, status: StatusCode) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = two
            .http
            .get(two.url(gw, "/v1/balances"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status();
        if got == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gateway {gw} still answers {got}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_one_gateway_is_refused_by_the_other() {
    let two = Two::start(false).await;
    let (status, acct) = post(
        &two.http,
        two.url(0, "/v1/accounts"),
        ADMIN,
        json!({}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{acct}");
    let full = acct["api_key"].as_str().unwrap().to_owned();
    let (status, k) = post(
        &two.http,
        two.url(0, "/v1/keys"),
        &full,
        json!({"scope": "trade"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{k}");
    let trade = k["api_key"].as_str().unwrap().to_owned();
    balances_until(&two, 1, &trade, StatusCode::OK).await;
    let revoke = two
        .http
        .delete(two.url(0, &format!("/v1/keys/{}", k["key_id"].as_str().unwrap())))
        .bearer_auth(&full)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::OK);
    balances_until(&two, 1, &trade, StatusCode::UNAUTHORIZED).await;
    balances_until(&two, 1, &full, StatusCode::OK).await;
    two.stop().await;
}
