//! The WebSocket fan-out phase: many subscribers of one book while a generator
//! submits book-changing commands at a fixed rate straight into the command log;
//! every subscriber checks the `seq`/`prev_seq` chain, and each command's delivery
//! to each subscriber is timed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use gpux_ledger::LatencyHistogram;
use gpux_sequencer::Submitter;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::wire::{int_field, Http, RawWs};
use super::{ms, slot, slot_name, t0, GatewayBenchOptions, Target, MARKET};

/// The account whose bids and cancels move the book.
const ACCOUNT: u64 = 900_000_001;
/// Bids resting before the phase starts, so cancels always hit.
const DEPTH: u64 = 100;

/// What one subscriber received.
struct SubResult {
    /// `(prev_seq, seq, received_ns)` of every update.
    receipts: Vec<(u64, u64, u64)>,
    messages: u64,
    last_seq: u64,
    gaps: u64,
    snapshots: u64,
}

/// Runs the phase against `target`; the report's WebSocket fields.
pub(super) async fn ws_phase(opts: &GatewayBenchOptions, target: &Target) -> Result<Value> {
    setup(target).await?;
    let (clients, base) = connect_subscribers(target, opts.ws_subscribers).await?;
    let n = opts.ws_rate * opts.ws_seconds;
    let submitted_ns: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let final_seq = base + n;
    let epoch = target
        .commits
        .as_ref()
        .map_or_else(Instant::now, |c| c.epoch);
    let mut stops = Vec::with_capacity(clients.len());
    let mut subs = Vec::with_capacity(clients.len());
    let per_sub = (opts.ws_rate * opts.ws_seconds / opts.flush_ms.max(1)) as usize + 64;
    for (ws, start) in clients {
        // One oneshot per subscriber to give up at the deadline: polling it costs
        // far less than a timer per message.
        let (stop_tx, stop) = oneshot::channel::<()>();
        stops.push(stop_tx);
        let receipts = Vec::with_capacity(per_sub);
        subs.push(tokio::spawn(subscriber(
            ws, start, final_seq, epoch, receipts, stop,
        )));
    }
    let errors = Arc::new(AtomicU64::new(0));
    let generator = tokio::spawn(generate(
        Arc::clone(&target.submitter),
        opts.ws_rate,
        n,
        epoch,
        Arc::clone(&submitted_ns),
        Arc::clone(&errors),
    ));
    let gen_time = generator.await?;
    let results = join_subscribers(subs, stops).await?;
    let submitted: Vec<u64> = submitted_ns
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    let committed = target.commits.as_ref().map(|c| c.snapshot());
    let tally = Tally::of(&results, &submitted, committed.as_deref(), base, final_seq);
    Ok(report(
        opts,
        n,
        gen_time,
        errors.load(Ordering::Relaxed),
        &tally,
    ))
}

/// A command envelope.
fn env(ts: u64, c: Value) -> Value {
    json!({"v": 3, "ts_ns": ts, "command": c})
}

/// Bid `k`: rests at 1.00 + (k mod 100) ticks with client order id `b<k>`.
fn bid(ts: u64, k: u64) -> Value {
    env(
        ts,
        json!({"type":"place_order","account":ACCOUNT,"market":MARKET,"slot":slot(),"side":"buy",
            "price":format!("1.{:02}", k % 100),"quantity":"1","client_order_id":format!("b{k}")}),
    )
}

/// The cancel of bid `k`.
fn cancel(ts: u64, k: u64) -> Value {
    env(
        ts,
        json!({"type":"cancel_order","account":ACCOUNT,"client_order_id":format!("b{k}")}),
    )
}

/// A market (listed by this phase unless the order phase did), one account with
/// funds, and `DEPTH` resting bids; returns once all of it is published.
async fn setup(target: &Target) -> Result<()> {
    let mut setup = vec![
        env(
            t0(),
            json!({"type":"list_market","market":MARKET,"tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":0}),
        ),
        env(t0(), json!({"type":"create_account","account":ACCOUNT})),
        env(
            t0(),
            json!({"type":"deposit","account":ACCOUNT,"amount":"100000000"}),
        ),
    ];
    for k in 0..DEPTH {
        setup.push(bid(t0(), k));
    }
    submit_all(&target.submitter, setup).await?;
    // Published once the book's seq holds still.
    let mut http = Http::connect(&target.base_url).await?;
    let depth_path = format!("/v1/markets/{MARKET}/slots/{}/depth?depth=1", slot_name());
    let mut last = (0u64, Instant::now());
    loop {
        let (s, v) = http.json("GET", &depth_path, None, &Value::Null).await?;
        let seq = v["seq"].as_u64().unwrap_or(0);
        if s == 200 && seq > 0 && seq == last.0 && last.1.elapsed() > Duration::from_millis(300) {
            return Ok(());
        }
        if seq != last.0 {
            last = (seq, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Submits `commands` and waits until each is in the log.
async fn submit_all(submitter: &Arc<dyn Submitter>, commands: Vec<Value>) -> Result<()> {
    let mut waits = Vec::new();
    for c in commands {
        let (tx, rx) = oneshot::channel();
        submitter.submit(
            serde_json::to_vec(&c)?,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        waits.push(rx);
    }
    for w in waits {
        w.await?.map_err(|e| anyhow!("submit: {e}"))?;
    }
    Ok(())
}

/// `n_subs` subscribers of the book, 100 connecting at a time, each with its
/// snapshot's seq; and that seq, where this phase's commands start counting.
async fn connect_subscribers(target: &Target, n_subs: usize) -> Result<(Vec<(RawWs, u64)>, u64)> {
    let mut clients = Vec::with_capacity(n_subs);
    for chunk in (0..n_subs).collect::<Vec<_>>().chunks(100) {
        let mut conns = Vec::new();
        for _ in chunk {
            conns.push(tokio::spawn(subscribe(target.ws_url.clone())));
        }
        for c in conns {
            clients.push(c.await??);
        }
    }
    let base = clients.iter().map(|(_, s)| *s).max().unwrap_or(0);
    if clients.iter().any(|(_, s)| *s != base) {
        bail!("subscribers started at different seqs; the setup was still being published");
    }
    Ok((clients, base))
}

/// Connects, subscribes to the book and reads the snapshot; returns its seq.
async fn subscribe(url: String) -> Result<(RawWs, u64)> {
    let mut ws = RawWs::connect(&url).await?;
    ws.send_text(
        &json!({"op":"subscribe","channel":format!("book.{MARKET}.{}", slot_name())}).to_string(),
    )
    .await?;
    loop {
        let (op, r) = ws.next_frame().await?;
        let t = &ws.buf[r];
        if op == 8 {
            bail!("closed before the snapshot");
        }
        if t.starts_with(br#"{"type":"snapshot""#) {
            let seq = int_field(t, br#""seq":"#).unwrap_or(0);
            return Ok((ws, seq));
        }
        if t.starts_with(br#"{"type":"error""#) {
            bail!("subscribe failed: {}", String::from_utf8_lossy(t));
        }
    }
}

/// Reads updates from `start` until `final_seq` (or the connection ends, or
/// `stop`), recording each update's arrival in ns since `epoch`.
async fn subscriber(
    mut ws: RawWs,
    start: u64,
    final_seq: u64,
    epoch: Instant,
    receipts: Vec<(u64, u64, u64)>,
    mut stop: oneshot::Receiver<()>,
) -> SubResult {
    let mut r = SubResult {
        receipts,
        messages: 0,
        last_seq: start,
        gaps: 0,
        snapshots: 0,
    };
    while r.last_seq < final_seq {
        let (op, range) = tokio::select! {
            biased;
            f = ws.next_frame() => match f {
                Ok(f) => f,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        if op == 8 {
            break;
        }
        if op != 1 {
            continue;
        }
        let now = epoch.elapsed().as_nanos() as u64;
        let t = &ws.buf[range];
        r.messages += 1;
        let seq = int_field(t, br#""seq":"#).unwrap_or(0);
        if t.starts_with(br#"{"type":"update""#) {
            let prev = int_field(t, br#""prev_seq":"#).unwrap_or(0);
            if prev != r.last_seq {
                r.gaps += 1;
            }
            r.receipts.push((prev, seq, now));
            r.last_seq = seq;
        } else if t.starts_with(br#"{"type":"snapshot""#) {
            r.snapshots += 1;
            r.last_seq = seq;
        }
    }
    drop(ws);
    r
}

/// The generator: command i is due at i / rate seconds; submit what is due every
/// millisecond. Command i is a bid (even) or the cancel of the oldest bid (odd,
/// by client order id), so every command changes the book. Records each
/// command's submission in `submitted_ns` (ns since `epoch`) and counts refused
/// ones in `errors`; returns how long submitting took.
async fn generate(
    submitter: Arc<dyn Submitter>,
    rate: u64,
    n: u64,
    epoch: Instant,
    submitted_ns: Arc<Vec<AtomicU64>>,
    errors: Arc<AtomicU64>,
) -> Duration {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut i = 0u64;
    while i < n {
        tick.tick().await;
        let due = ((start.elapsed().as_nanos() as u64).saturating_mul(rate) / 1_000_000_000).min(n);
        while i < due {
            let ts = t0() + 1_000_000 + i;
            let cmd = if i.is_multiple_of(2) {
                bid(ts, DEPTH + i / 2)
            } else {
                cancel(ts, i / 2)
            };
            let payload = serde_json::to_vec(&cmd).unwrap_or_default();
            submitted_ns[i as usize].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
            let e = Arc::clone(&errors);
            submitter.submit(
                payload,
                Box::new(move |r| {
                    if r.is_err() {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                }),
            );
            i += 1;
        }
    }
    start.elapsed()
}

/// Lets every subscriber reach the last command, or stops them all after 30 s.
async fn join_subscribers(
    subs: Vec<JoinHandle<SubResult>>,
    mut stops: Vec<oneshot::Sender<()>>,
) -> Result<Vec<SubResult>> {
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    let mut results = Vec::with_capacity(subs.len());
    let mut all = futures_util::future::join_all(subs);
    let joined = tokio::select! {
        r = &mut all => Some(r),
        _ = &mut deadline => None,
    };
    let joined = match joined {
        Some(r) => r,
        None => {
            for s in stops.drain(..) {
                let _ = s.send(());
            }
            all.await
        }
    };
    // Dropping a stop ends its subscriber: only now that all are done.
    drop(stops);
    for r in joined {
        results.push(r?);
    }
    Ok(results)
}

/// The subscribers' results summed, and the latencies per subscriber and per
/// command an update includes: from submission (end to end) and from reaching
/// market data (delivery proper).
struct Tally {
    end_to_end: LatencyHistogram,
    delivery: LatencyHistogram,
    messages: u64,
    gaps: u64,
    snapshots: u64,
    /// Subscribers that reached the last command.
    complete: u64,
}

impl Tally {
    /// `submitted[i]`: when command `base + 1 + i` was submitted; `committed[c]`:
    /// when command `c` reached market data (ns since the epoch, 0 if unknown).
    fn of(
        results: &[SubResult],
        submitted: &[u64],
        committed: Option<&[u64]>,
        base: u64,
        final_seq: u64,
    ) -> Tally {
        let mut t = Tally {
            end_to_end: LatencyHistogram::default(),
            delivery: LatencyHistogram::default(),
            messages: 0,
            gaps: 0,
            snapshots: 0,
            complete: 0,
        };
        for r in results {
            for &(prev, seq, at) in &r.receipts {
                for c in prev.max(base) + 1..=seq {
                    if let Some(&s) = submitted.get((c - base - 1) as usize) {
                        if s != 0 {
                            t.end_to_end.record_us(at.saturating_sub(s) / 1000);
                        }
                    }
                    if let Some(&s) = committed.and_then(|v| v.get(c as usize)) {
                        if s != 0 {
                            t.delivery.record_us(at.saturating_sub(s) / 1000);
                        }
                    }
                }
            }
            t.messages += r.messages;
            t.gaps += r.gaps;
            t.snapshots += r.snapshots;
            t.complete += u64::from(r.last_seq >= final_seq);
        }
        t
    }
}

/// The phase's report fields.
fn report(
    opts: &GatewayBenchOptions,
    n: u64,
    gen_time: Duration,
    submit_errors: u64,
    t: &Tally,
) -> Value {
    // Without a commit clock, delivery is reported end to end.
    let hist = if t.delivery.count() > 0 {
        &t.delivery
    } else {
        &t.end_to_end
    };
    let secs = gen_time.as_secs_f64();
    json!({
        "ws_subscribers": opts.ws_subscribers,
        "ws_updates": n,
        "ws_updates_per_sec": (n as f64 / secs).round(),
        "ws_submit_errors": submit_errors,
        "ws_subscribers_complete": t.complete,
        "ws_gaps": t.gaps,
        "ws_resync_snapshots": t.snapshots,
        "ws_messages_received": t.messages,
        "ws_deliveries": hist.count(),
        "ws_flush_ms": opts.flush_ms,
        "ws_delivery_from": if t.delivery.count() > 0 { "commit (handed to market data)" } else { "submission" },
        "p50_ws_delivery_ms": ms(hist.quantile_us(500)),
        "p99_ws_delivery_ms": ms(hist.quantile_us(990)),
        "p999_ws_delivery_ms": ms(hist.quantile_us(999)),
        "max_ws_delivery_ms": ms(hist.max_us()),
        "p50_ws_end_to_end_ms": ms(t.end_to_end.quantile_us(500)),
        "p99_ws_end_to_end_ms": ms(t.end_to_end.quantile_us(990)),
        "max_ws_end_to_end_ms": ms(t.end_to_end.max_us()),
    })
}
