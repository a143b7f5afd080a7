//! The embedded pipeline end to end, on a real RocksDB ledger: every submitted
//! command takes effect exactly once in log order, followers see exactly what the
//! ledger holds, a lagging follower catches up from the ledger, malformed commands
//! are recorded as rejections, and a restart continues where the log was consumed.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpux_engine::{Engine, Event};
use gpux_ledger::{CorruptionKind, LedgerOptions, Source, VerifyOnOpen};
use gpux_sequencer::{
    CommittedCommand, Exchange, Feed, LedgerFollower, PipelineError, PipelineOptions, Submitter,
};

const MARKET: &str = "h100-sxm.us-east";

fn env(ts: u64, request_id: &str, command: &str) -> Vec<u8> {
    format!(r#"{{"v":3,"ts_ns":{ts},"request_id":"{request_id}","command":{command}}}"#)
        .into_bytes()
}

/// Commands of one trader `a`: open, fund, then `n` orders crossing each other.
fn trader(a: u64, n: u64) -> Vec<Vec<u8>> {
    let mut out = vec![
        env(
            a,
            &format!("{a}-open"),
            &format!(r#"{{"type":"create_account","account":{a}}}"#),
        ),
        env(
            a,
            &format!("{a}-usd"),
            &format!(r#"{{"type":"deposit","account":{a},"amount":"100000"}}"#),
        ),
        env(
            a,
            &format!("{a}-cap"),
            &format!(
                r#"{{"type":"add_capacity","account":{a},"market":"{MARKET}","from_slot":3600,"to_slot":3600,"quantity":"100000"}}"#
            ),
        ),
    ];
    for i in 0..n {
        let side = if (i + a).is_multiple_of(2) {
            "buy"
        } else {
            "sell"
        };
        let price = 250 + (i * 7 + a * 3) % 11;
        out.push(env(
            1_000 + i,
            &format!("{a}-o{i}"),
            &format!(
                r#"{{"type":"place_order","account":{a},"market":"{MARKET}","slot":3600,"side":"{side}","price":"{}.{:02}","quantity":"{}"}}"#,
                price / 100,
                price % 100,
                1 + i % 5
            ),
        ));
    }
    out
}

fn list_market() -> Vec<u8> {
    env(
        0,
        "list",
        &format!(
            r#"{{"type":"list_market","market":"{MARKET}","tick_size":"0.01","lot_size":"1","maker_fee_bps":10,"taker_fee_bps":20}}"#
        ),
    )
}

/// Submits one command and waits until it is durable (applied and committed).
fn submit_wait(s: &dyn Submitter, payload: Vec<u8>) {
    let (tx, rx) = mpsc::channel();
    s.submit(payload, Box::new(move |r| tx.send(r).unwrap()));
    rx.recv_timeout(Duration::from_secs(30))
        .expect("durable in time")
        .expect("durable");
}

/// Reads the feed until `until` commands were seen.
fn collect(feed: &mut dyn Feed, until: u64) -> Vec<CommittedCommand> {
    let mut out: Vec<CommittedCommand> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (out.len() as u64) < until {
        assert!(Instant::now() < deadline, "feed stalled at {}", out.len());
        if let Some(b) = feed.recv_timeout(Duration::from_millis(200)).unwrap() {
            out.extend(b.iter().cloned());
        }
    }
    out
}

fn opts() -> PipelineOptions {
    PipelineOptions {
        snapshot_every_events: 500,
        ..PipelineOptions::default()
    }
}

/// Applies committed commands to a fresh engine the way replay does and checks it
/// reproduces their events — and that applying the envelope the feed decoded
/// (`apply_to`, what the gateway's replica does) reproduces them too; returns the
/// engine.
fn replica_of(commands: &[CommittedCommand]) -> Engine {
    let mut engine = Engine::new();
    let mut decoded = Engine::new();
    for c in commands {
        let mut events: Vec<Event> = Vec::new();
        engine.apply_json(c.cmd_seq, c.ts_ns, &c.payload, &mut events);
        assert_eq!(events, c.events, "cmd_seq {}", c.cmd_seq);
        assert!(
            c.command.is_some(),
            "cmd_seq {}: the feed decoded it",
            c.cmd_seq
        );
        let mut again: Vec<Event> = Vec::new();
        c.apply_to(&mut decoded, &mut again);
        assert_eq!(again, c.events, "cmd_seq {} applied decoded", c.cmd_seq);
    }
    assert_eq!(engine.state_hash(), decoded.state_hash());
    engine
}

#[test]
fn concurrent_submitters_each_command_once_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = Exchange::start_embedded(dir.path(), opts()).unwrap();
    let submitter = exchange.submitter().unwrap();
    let mut feed = exchange.follow(1);
    submit_wait(submitter.as_ref(), list_market());

    let per = 150u64;
    let threads: Vec<_> = (1..=4u64)
        .map(|a| {
            let s = Arc::clone(&submitter);
            std::thread::spawn(move || {
                for p in trader(a, per) {
                    submit_wait(s.as_ref(), p);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total = 1 + 4 * (3 + per);
    let got = collect(&mut feed, total);

    // Dense, each request exactly once, each trader's commands in its own order.
    assert_eq!(got.len() as u64, total);
    for (i, c) in got.iter().enumerate() {
        assert_eq!(c.cmd_seq, i as u64 + 1);
    }
    let ids: Vec<String> = got.iter().map(|c| c.request_id.clone().unwrap()).collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "a duplicate"
    );
    for a in 1..=4u64 {
        let mine: Vec<&String> = ids
            .iter()
            .filter(|r| r.starts_with(&format!("{a}-")))
            .collect();
        let expected: Vec<String> = trader(a, per)
            .iter()
            .map(|p| gpux_sequencer::request_id_of(p).unwrap())
            .collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
    // Trades happened, and timestamps never go backwards.
    assert!(got
        .iter()
        .flat_map(|c| &c.events)
        .any(|e| matches!(e, Event::TradeExecuted(_))));
    assert!(got.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    // The event sequence is dense across commands.
    for w in got.windows(2) {
        assert_eq!(
            w[1].first_event_seq,
            w[0].first_event_seq + w[0].events.len() as u64
        );
    }

    // What followers saw is what the ledger holds, and re-running it gives the state.
    let from_ledger = gpux_sequencer::read_committed(&exchange.reader(), 1, 10_000).unwrap();
    assert_eq!(from_ledger, got);
    let replica = replica_of(&got);
    let engine = exchange.shutdown().unwrap();
    assert_eq!(engine.state_hash(), replica.state_hash());
    engine.check_invariants().unwrap();

    let verified = gpux_replay::verify::verify_ledger(dir.path(), &gpux_replay::Progress::hidden())
        .unwrap()
        .expect("the ledger verifies");
    assert_eq!(verified.last_seq, total);
    assert!(verified.head_snapshot_checked);
}

#[test]
fn malformed_commands_are_recorded_as_rejections_and_the_pipeline_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = Exchange::start_embedded(dir.path(), opts()).unwrap();
    let s = exchange.submitter().unwrap();
    let mut feed = exchange.follow(1);
    let poison: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        br#"{"v":3,"ts_ns":5,"command":{"type":"launch_rocket"}}"#.to_vec(),
        vec![0xff, 0xfe, 0x00],
        Vec::new(),
        format!(r#"{{"v":3,"ts_ns":5,"request_id":"{}","command":{{"type":"create_account","account":9}}}}"#, "x".repeat(5000)).into_bytes(),
    ];
    submit_wait(s.as_ref(), list_market());
    for p in &poison {
        submit_wait(s.as_ref(), p.clone());
    }
    submit_wait(s.as_ref(), trader(7, 0).remove(0));
    let got = collect(&mut feed, 2 + poison.len() as u64);
    for (c, p) in got[1..=poison.len()].iter().zip(&poison) {
        assert_eq!(&c.payload, p, "the exact bytes are kept");
        match c.events.as_slice() {
            [Event::CommandRejected(r)] | [Event::OrderRejected(r)] => {
                assert_eq!(r.reason.code(), "malformed_command")
            }
            other => panic!("cmd_seq {}: {other:?}", c.cmd_seq),
        }
    }
    assert!(matches!(
        got.last().unwrap().events[0],
        Event::AccountCreated(_)
    ));
    exchange.shutdown().unwrap();
}

#[test]
fn a_lagging_follower_catches_up_from_the_ledger_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = Exchange::start_embedded(dir.path(), opts()).unwrap();
    let s = exchange.submitter().unwrap();
    // A tiny queue: the follower is dropped by the publisher after two batches.
    let mut slow =
        LedgerFollower::new(exchange.reader(), exchange.publisher(), 1).with_queue_batches(2);
    assert!(slow
        .recv_timeout(Duration::from_millis(1))
        .unwrap()
        .is_none());
    assert_eq!(exchange.publisher().subscriber_count(), 1);
    let mut cmds = vec![list_market()];
    cmds.extend(trader(1, 20));
    for (i, p) in cmds.iter().enumerate() {
        // One durable batch each, so the slow follower's queue overflows.
        submit_wait(s.as_ref(), p.clone());
        wait_durable(&exchange, i as u64 + 1);
    }
    let total = cmds.len() as u64;
    assert_eq!(
        exchange.publisher().subscriber_count(),
        0,
        "the laggard was dropped"
    );
    let got = collect(&mut slow, total);
    assert_eq!(got.len() as u64, total);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, c)| c.cmd_seq == i as u64 + 1));
    assert_eq!(
        got,
        gpux_sequencer::read_committed(&exchange.reader(), 1, 1000).unwrap()
    );
    exchange.shutdown().unwrap();
}

fn wait_durable(exchange: &Exchange, seq: u64) {
    let until = Instant::now() + Duration::from_secs(30);
    while exchange
        .stats()
        .durable_seq
        .load(std::sync::atomic::Ordering::Acquire)
        < seq
    {
        assert!(Instant::now() < until, "pipeline stalled before {seq}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn restart_continues_after_the_consumed_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![list_market()];
    all.extend(trader(1, 30));
    all.extend(trader(2, 30));
    let half = all.len() / 2;

    let exchange = Exchange::start_embedded(dir.path(), opts()).unwrap();
    let s = exchange.submitter().unwrap();
    let mut feed = exchange.follow(1);
    for p in &all[..half] {
        submit_wait(s.as_ref(), p.clone());
    }
    collect(&mut feed, half as u64);
    drop(feed);
    exchange.shutdown().unwrap();

    let exchange = Exchange::start_embedded(dir.path(), opts()).unwrap();
    let s = exchange.submitter().unwrap();
    let mut feed = exchange.follow(1);
    for p in &all[half..] {
        submit_wait(s.as_ref(), p.clone());
    }
    let got = collect(&mut feed, all.len() as u64);
    let payloads: Vec<&Vec<u8>> = got.iter().map(|c| &c.payload).collect();
    assert_eq!(payloads, all.iter().collect::<Vec<_>>());
    let sources: Vec<Source> = exchange
        .reader()
        .read_commands(1, 1000)
        .unwrap()
        .into_iter()
        .map(|r| r.source)
        .collect();
    assert_eq!(
        sources,
        (1..=all.len() as u64)
            .map(|seq| Source::Embedded { seq })
            .collect::<Vec<_>>()
    );
    let engine = exchange.shutdown().unwrap();
    assert_eq!(engine.state_hash(), replica_of(&got).state_hash());
}

/// Submits `payloads` in order, in a few large submissions, and waits until all
/// are durable (applied and committed).
fn submit_all(exchange: &Exchange, payloads: Vec<Vec<u8>>) {
    let s = exchange.embedded_submitter().expect("embedded");
    let (tx, rx) = mpsc::channel();
    let mut chunks = 0;
    let mut it = payloads.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<Vec<u8>> = it.by_ref().take(1_000).collect();
        let tx = tx.clone();
        s.submit_many(chunk, move |r| tx.send(r.map(|_| ())).unwrap());
        chunks += 1;
    }
    for _ in 0..chunks {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("durable in time")
            .expect("durable");
    }
}

/// An order that meets more one-lot makers than one command may is cut at the
/// engine's bound, so its events fit in the ledger: it commits, the exchange
/// goes on applying the following commands, and goes on after a restart.
#[test]
fn a_sweep_of_a_deep_one_lot_book_commits_and_the_exchange_goes_on() {
    use gpux_engine::limits::{EVENTS_PER_COMMAND_WORST, MATCHES_PER_COMMAND_MAX};
    use gpux_engine::CancelReason;
    let extra = 20;
    let asks = MATCHES_PER_COMMAND_MAX + extra;
    let dir = tempfile::tempdir().unwrap();
    let exchange = Exchange::start_embedded(dir.path(), PipelineOptions::default()).unwrap();
    let mut feed = exchange.follow(1);
    let place = |ts: u64, rid: String, a: u64, side: &str, qty: usize| {
        env(
            ts,
            &rid,
            &format!(
                r#"{{"type":"place_order","account":{a},"market":"{MARKET}","slot":3600,"side":"{side}","price":"2.50","quantity":"{qty}"}}"#
            ),
        )
    };
    let mut cmds = vec![list_market()];
    cmds.extend(trader(1, 0));
    cmds.extend(trader(2, 0));
    cmds.extend(trader(3, 0));
    for i in 0..asks {
        cmds.push(place(10, format!("ask-{i}"), 1 + (i % 2) as u64, "sell", 1));
    }
    cmds.push(place(20, "sweep".into(), 3, "buy", asks));
    cmds.push(place(30, "after".into(), 3, "buy", extra));
    let total = cmds.len() as u64;
    submit_all(&exchange, cmds);

    let got = collect(&mut feed, total);
    assert!(got
        .iter()
        .all(|c| c.events.len() <= EVENTS_PER_COMMAND_WORST));
    let sweep = &got[got.len() - 2];
    assert_eq!(sweep.request_id.as_deref(), Some("sweep"));
    let trades = |c: &CommittedCommand| {
        c.events
            .iter()
            .filter(|e| matches!(e, Event::TradeExecuted(_)))
            .count()
    };
    assert_eq!(trades(sweep), MATCHES_PER_COMMAND_MAX);
    assert!(matches!(
        sweep.events.last(),
        Some(Event::OrderCancelled(c)) if c.reason == CancelReason::MatchLimit && !c.resting
    ));
    // The command after it was applied: it bought what the sweep left.
    assert_eq!(trades(got.last().unwrap()), extra);
    // The ledger holds every event of the sweep.
    assert_eq!(
        exchange
            .reader()
            .events_of_command(sweep.cmd_seq)
            .unwrap()
            .len(),
        sweep.events.len()
    );
    drop(feed);
    let engine = exchange.shutdown().unwrap();
    assert_eq!(engine.state_hash(), replica_of(&got).state_hash());

    // A restart recovers past the sweep and keeps applying commands.
    let exchange = Exchange::start_embedded(dir.path(), PipelineOptions::default()).unwrap();
    let mut feed = exchange.follow(total + 1);
    submit_all(
        &exchange,
        vec![env(
            40,
            "later",
            r#"{"type":"deposit","account":3,"amount":"1"}"#,
        )],
    );
    let later = collect(&mut feed, 1);
    assert_eq!(later[0].cmd_seq, total + 1);
    assert!(matches!(later[0].events[..], [Event::Deposited(_)]));
    exchange.shutdown().unwrap();
}

/// The embedded log acknowledges a submission only once its commands are
/// applied and in the ledger: at every `Ok`, the consumed position stored with
/// the events has reached the submission's last seq, and the feed already holds
/// its command.
#[test]
fn a_submission_is_acknowledged_only_once_it_is_in_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = Exchange::start_embedded(dir.path(), opts()).unwrap();
    let s = exchange.embedded_submitter().expect("embedded");
    let mut all = vec![list_market()];
    for a in 1..=4 {
        all.extend(trader(a, 500));
    }
    let total = all.len() as u64;
    let (tx, rx) = mpsc::channel();
    let mut chunks = 0;
    for chunk in all.chunks(97) {
        let tx = tx.clone();
        let reader = exchange.reader();
        s.submit_many(chunk.to_vec(), move |r| {
            let seqs = r.expect("durable");
            let consumed = reader
                .consumed_offset(&gpux_ledger::SourceKey::Embedded)
                .unwrap();
            tx.send((seqs, consumed)).unwrap();
        });
        chunks += 1;
    }
    let mut acked = Vec::new();
    for _ in 0..chunks {
        let (seqs, consumed) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let last = *seqs.last().unwrap();
        assert!(
            consumed >= Some(last),
            "acknowledged {last} with the ledger at {consumed:?}"
        );
        acked.extend(seqs);
    }
    acked.sort_unstable();
    assert_eq!(acked, (1..=total).collect::<Vec<_>>());

    // A single command: by the time `Ok` arrives, a follower already has it.
    let mut feed = exchange.follow(total + 1);
    let (tx, rx) = mpsc::channel();
    let one = env(9, "late", r#"{"type":"create_account","account":77}"#);
    exchange
        .submitter()
        .unwrap()
        .submit(one.clone(), Box::new(move |r| tx.send(r).unwrap()));
    rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
    let b = feed
        .recv_timeout(Duration::ZERO)
        .unwrap()
        .expect("published before the acknowledgement");
    assert_eq!(b.iter().next().unwrap().payload, one);
    exchange.shutdown().unwrap();
}

/// A clean shutdown applies and commits every command already in the embedded
/// log (each submitter hears `Ok`), and refuses what comes after.
#[test]
fn a_clean_shutdown_applies_what_the_log_holds_and_refuses_later_submissions() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = Exchange::start_embedded(dir.path(), opts()).unwrap();
    let s = exchange.submitter().unwrap();
    let mut all = vec![list_market()];
    all.extend(trader(1, 1_500));
    all.extend(trader(2, 1_500));
    let (tx, rx) = mpsc::channel();
    for p in &all {
        let tx = tx.clone();
        s.submit(p.clone(), Box::new(move |r| tx.send(r).unwrap()));
    }
    let engine = exchange.shutdown().unwrap();
    assert_eq!(engine.last_seq(), all.len() as u64);
    for _ in 0..all.len() {
        let r = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(r, Ok(()));
    }
    let (tx, rx) = mpsc::channel();
    s.submit(list_market(), Box::new(move |r| tx.send(r).unwrap()));
    let after = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        matches!(after, Err(gpux_sequencer::SubmitError::Unavailable(_))),
        "{after:?}"
    );
    // All of it is in the ledger, in submission order.
    let exchange = Exchange::start_embedded(dir.path(), opts()).unwrap();
    let payloads: Vec<Vec<u8>> = exchange
        .reader()
        .read_commands(1, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    assert_eq!(payloads, all);
    exchange.shutdown().unwrap();
}

/// Re-seals event `event_seq`'s record after flipping a byte in it, straight in
/// RocksDB, as a careful forger would: every checksum matches, only the hash chain
/// through its batch says it was changed.
fn forge_event(dir: &std::path::Path, event_seq: u64) {
    use gpux_ledger::{key_seq, layout, seq_key, Cf};
    let db = rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        dir,
        Cf::ALL.iter().map(|c| c.name()),
    )
    .expect("raw open");
    let (events, commands) = (
        db.cf_handle(Cf::Events.name()).expect("cf"),
        db.cf_handle(Cf::Commands.name()).expect("cf"),
    );
    let mut it = db.raw_iterator_cf(events);
    it.seek_for_prev(seq_key(event_seq));
    assert!(key_seq(it.key().expect("an index entry")).is_some());
    let chunk_key = seq_key(layout::index_chunk(it.value().expect("value")).expect("index"));
    drop(it);
    let stored = db.get_cf(commands, chunk_key).expect("get").expect("chunk");
    let forged = layout::edit_event(&stored, event_seq, false, |v| {
        let at = v.len() - 6;
        v[at] ^= 0x01;
        layout::reseal(v);
    })
    .expect("edited");
    db.put_cf(commands, chunk_key, forged).expect("put");
}

/// The default start verifies in the background: a ledger forged below its head
/// starts (its head is intact, the engine comes from the head's snapshot), then
/// the verification names the damage and stops the pipeline, which refuses
/// further commands; a full verification at open refuses to start at all.
#[test]
fn damage_below_the_head_found_after_a_fast_start_stops_the_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![list_market()];
    all.extend(trader(1, 30));
    let exchange = Exchange::start_embedded(dir.path(), opts()).unwrap();
    let s = exchange.submitter().unwrap();
    for p in &all {
        submit_wait(s.as_ref(), p.clone());
    }
    let head = exchange.reader().head().unwrap();
    exchange.shutdown().unwrap();
    forge_event(dir.path(), 3);

    let exchange = Exchange::start_embedded(dir.path(), opts()).expect("starts on the head");
    let s = exchange.submitter().unwrap();
    let (tx, rx) = mpsc::channel();
    exchange.on_failure(move |e| tx.send(e.clone()).unwrap());
    let failure = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the verification fails the exchange");
    match &failure {
        PipelineError::Verify {
            head_cmd_seq,
            error,
        } => {
            assert_eq!(*head_cmd_seq, head.last_cmd_seq);
            let c = error.corruption().expect("a corruption");
            assert_eq!(c.kind, CorruptionKind::BrokenChain, "{failure}");
        }
        other => panic!("not a verification failure: {other}"),
    }
    let (tx, rx) = mpsc::channel();
    let late = env(99, "late", r#"{"type":"tick"}"#);
    s.submit(late, Box::new(move |r| tx.send(r.is_err()).unwrap()));
    assert!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), "refused");
    assert!(matches!(
        exchange.shutdown(),
        Err(PipelineError::Verify { .. })
    ));

    let full = PipelineOptions {
        ledger: LedgerOptions {
            verify_on_open: VerifyOnOpen::Full,
            ..LedgerOptions::default()
        },
        ..opts()
    };
    match Exchange::start_embedded(dir.path(), full) {
        Err(PipelineError::Open { error, .. }) => assert_eq!(
            error.corruption().map(|c| c.kind),
            Some(CorruptionKind::BrokenChain)
        ),
        other => panic!("a full open must refuse the forged ledger: {other:?}"),
    }
}
