//! A replica that knows when it is wrong: a divergence injected into the feed (a
//! committed command skipped, or its events altered) makes the gateway refuse
//! everything that depends on its replica — account reads, order entry, markets,
//! market data, WebSocket — with 503 `replica_diverged`, then `replica_rebuilding`
//! while it re-follows the ledger from cmd_seq 1, and serve right answers again
//! afterwards, without a restart. The test holds the rebuild at each stage (the
//! re-follow factory, then the new feed) so every stage can be observed.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{config, dec, slot_name, Harness, ADMIN, MARKET};
use futures_util::StreamExt;
use gpux_gateway::bookcount::BookCounts;
use gpux_gateway::Backend;
use gpux_sequencer::{CommittedBatch, CommittedCommand, Feed, FeedError};
use rust_decimal::Decimal;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Drop the armed command from the feed (a gap).
    Skip,
    /// Repeat the armed command's last event (its events no longer match).
    Alter,
}

/// The ledger's feed, with one fault injected at the first command at or after
/// `arm` (0: none).
struct Tamper {
    inner: Box<dyn Feed>,
    arm: Arc<AtomicU64>,
    fault: Fault,
}

impl Feed for Tamper {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<CommittedBatch>, FeedError> {
        let Some(batch) = self.inner.recv_timeout(timeout)? else {
            return Ok(None);
        };
        let at = self.arm.load(Ordering::Acquire);
        let Some(i) = (at != 0)
            .then(|| batch.iter().position(|c| c.cmd_seq >= at))
            .flatten()
        else {
            return Ok(Some(batch));
        };
        self.arm.store(0, Ordering::Release);
        let mut cmds: Vec<CommittedCommand> = batch.to_vec();
        match self.fault {
            Fault::Skip => {
                cmds.remove(i);
            }
            Fault::Alter => {
                let last = cmds[i]
                    .events
                    .last()
                    .cloned()
                    .expect("a command has events");
                cmds[i].events.push(last);
            }
        }
        Ok(Some(cmds.into()))
    }

    fn next_seq(&self) -> u64 {
        self.inner.next_seq()
    }

    fn reached_start(&self) -> bool {
        self.inner.reached_start()
    }
}

/// A feed that yields nothing (and has not reached its start) until `open`.
struct Held {
    inner: Box<dyn Feed>,
    open: Arc<AtomicBool>,
}

impl Feed for Held {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<CommittedBatch>, FeedError> {
        if !self.open.load(Ordering::Acquire) {
            // What a feed with nothing new does: wait out the timeout.
            std::thread::sleep(timeout.min(Duration::from_millis(20)));
            return Ok(None);
        }
        self.inner.recv_timeout(timeout)
    }

    fn next_seq(&self) -> u64 {
        self.inner.next_seq()
    }

    fn reached_start(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.inner.reached_start()
    }
}

struct Controls {
    arm: Arc<AtomicU64>,
    /// The re-follow factory fails until this is set.
    factory_open: Arc<AtomicBool>,
    /// The re-followed feed yields nothing until this is set.
    feed_open: Arc<AtomicBool>,
}

async fn start(fault: Fault) -> (Harness, Controls) {
    let c = Controls {
        arm: Arc::default(),
        factory_open: Arc::default(),
        feed_open: Arc::default(),
    };
    let (arm, factory_open, feed_open) = (
        Arc::clone(&c.arm),
        Arc::clone(&c.factory_open),
        Arc::clone(&c.feed_open),
    );
    let h = Harness::start_with_backend(
        config(),
        Box::new(move |exchange| {
            let mut ledger = gpux_gateway::ledger_feeds(exchange);
            Backend {
                submitter: exchange.submitter().unwrap(),
                feed: Box::new(Tamper {
                    inner: Box::new(exchange.follow(1)),
                    arm,
                    fault,
                }),
                refollow: Some(Box::new(move |from| {
                    if !factory_open.load(Ordering::Acquire) {
                        return Err(FeedError::Unavailable("held by the test".into()));
                    }
                    Ok(Box::new(Held {
                        inner: ledger(from)?,
                        open: Arc::clone(&feed_open),
                    }) as Box<dyn Feed>)
                })),
            }
        }),
    )
    .await;
    (h, c)
}

/// Polls `/v1/health` until its status is `status` (the gateway moves through
/// the stages on its own thread).
async fn wait_health(h: &Harness, status: &str) -> Value {
    for _ in 0..3000 {
        let r = h.get("/v1/health", None).await;
        if r.body["status"] == status {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("health never became {status}");
}

/// Every request that depends on the replica is refused with `code`.
async fn refused(h: &Harness, key: &str, code: &str) {
    let depth = common::md_path("depth");
    for (path, k) in [
        ("/v1/balances", Some(key)),
        ("/v1/orders", Some(key)),
        ("/v1/fills", Some(key)),
        ("/v1/markets", None),
        (depth.as_str(), None),
        ("/v1/accounts/1/balances", Some(ADMIN)),
    ] {
        let r = h.get(path, k).await;
        r.expect(503, Some(code));
        assert!(r.headers.contains_key("retry-after"), "{path}");
    }
    let head = h.ledger_head();
    h.place(
        key,
        json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "1.10", "quantity": "1"}),
    )
    .await
    .expect(503, Some(code));
    assert_eq!(h.ledger_head(), head, "a refused order submits nothing");
    let health = h.get("/v1/health", None).await;
    assert_eq!(health.status.as_u16(), 503);
    assert_eq!(health.body["ready"], false);
}

fn usd_total(balances: &Value) -> Decimal {
    dec(&balances["usd"]["available"]) + dec(&balances["usd"]["held"])
}

#[allow(clippy::too_many_lines)] // the replica's story told in order: trade, diverge, refuse, rebuild, serve again
async fn diverge_and_rebuild(fault: Fault) {
    let (h, c) = start(fault).await;
    let ((_, pk), (dm, dk)) = h.provider_and_demander().await;
    h.place(
        &pk,
        json!({"market": MARKET, "slot": slot_name(), "side": "sell", "price": "2.00", "quantity": "2"}),
    )
    .await
    .expect(200, None);
    h.place(
        &dk,
        json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "1.00", "quantity": "1"}),
    )
    .await
    .expect(200, None);
    let ws_url = format!("ws://{}/v1/ws", h.gateway.as_ref().unwrap().addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();

    // The fault: the next committed command.
    let (head, _) = h.ledger_head();
    c.arm.store(head + 1, Ordering::Release);
    let diverged_at = match fault {
        Fault::Alter => {
            // A deposit whose committed events the replica does not reproduce.
            h.deposit(dm, "50").await;
            head + 1
        }
        Fault::Skip => {
            // A deposit the feed drops (sent around the gateway, so no one waits
            // for it), then one through the gateway that reveals the gap.
            let payload = json!({"v": 3, "ts_ns": 1, "command": {"type": "deposit", "account": dm, "amount": "50"}});
            let (tx, rx) = tokio::sync::oneshot::channel();
            h.exchange().submitter().unwrap().submit(
                payload.to_string().into_bytes(),
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            rx.await.unwrap().unwrap();
            h.deposit(dm, "1").await;
            head + 2
        }
    };
    let expected_usd = Decimal::from(match fault {
        Fault::Alter => 150,
        Fault::Skip => 151,
    });

    // Diverged, and the re-follow is held: refused with `replica_diverged`.
    let health = wait_health(&h, "diverged").await;
    assert_eq!(health["diverged_at"], diverged_at, "{health}");
    refused(&h, &dk, "replica_diverged").await;
    // Market data was reset: the open WebSocket is closed with 1013 (try again
    // later), and a new one is refused until market data is rebuilt.
    let close = loop {
        match ws.next().await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("the WebSocket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(u16::from(close.expect("a close frame").code), 1013);
    match tokio_tungstenite::connect_async(&ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("a WebSocket upgrade while diverged: {other:?}"),
    }

    // Re-following, but the new feed is held: `replica_rebuilding`.
    c.factory_open.store(true, Ordering::Release);
    let health = wait_health(&h, "rebuilding").await;
    assert_eq!(health["diverged_at"], diverged_at, "{health}");
    refused(&h, &dk, "replica_rebuilding").await;

    // Rebuilt: serving again, with right answers, without a restart.
    c.feed_open.store(true, Ordering::Release);
    let health = wait_health(&h, "ok").await;
    assert!(health.get("diverged_at").is_none(), "{health}");
    let gw = h.gateway.as_ref().unwrap();
    assert_eq!(gw.stats().rebuilds.load(Ordering::Relaxed), 1);
    let probe = gw.probe();
    let want = h.exchange().replica().unwrap().state_hash();
    assert_eq!(probe.with_replica(|e| e.state_hash()), want);
    assert_eq!(
        *probe.book_counts(),
        probe.with_replica(BookCounts::recount),
        "metrics' book counts are rebuilt with the replica"
    );
    let b = h.get("/v1/balances", Some(&dk)).await;
    b.expect(200, None);
    assert_eq!(usd_total(&b.body), expected_usd, "{}", b.body);
    let orders = h.get("/v1/orders", Some(&dk)).await;
    orders.expect(200, None);
    assert_eq!(orders.body["orders"].as_array().unwrap().len(), 1);
    // Market data is rebuilt too (published by its hub shortly after).
    let mut depth = Value::Null;
    for _ in 0..3000 {
        depth = h.get(&common::md_path("depth"), None).await.body;
        if depth["bids"].as_array().is_some_and(|b| b.len() == 1)
            && depth["asks"].as_array().is_some_and(|a| a.len() == 1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dec(&depth["bids"][0][0]), Decimal::ONE, "{depth}");
    assert_eq!(dec(&depth["asks"][0][1]), Decimal::TWO, "{depth}");
    // And it takes orders again.
    h.place(
        &dk,
        json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "1.20", "quantity": "1"}),
    )
    .await
    .expect(200, None);
    let (_, ws_ok) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    assert_eq!(ws_ok.status().as_u16(), 101);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_events_differ_refuses_then_rebuilds_itself() {
    diverge_and_rebuild(Fault::Alter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_after_a_gap_in_its_feed_refuses_then_rebuilds_itself() {
    diverge_and_rebuild(Fault::Skip).await;
}
