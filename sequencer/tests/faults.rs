//! The real pipeline on a [`FaultyStore`]: a ledger write that fails at command N
//! stops the pipeline with a typed [`PipelineError`] naming cmd_seq N, logged once
//! with it; the caller hears it (`on_failure`, `failure`, `shutdown`); nothing from
//! N on is in the ledger, and a restart on the same store resumes at N and ends in
//! the state a fault-free run reaches. A submission waiting for a write that fails
//! hears the failure, and a source failure stops the pipeline the same way.

use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use gpux_engine::Engine;
use gpux_ledger::{
    Fault, FaultyStore, Ledger, LedgerError, LedgerOptions, MemStore, Position, Source, SourceKey,
};
use gpux_sequencer::{
    CommandSource, Exchange, Inbound, PipelineError, PipelineOptions, SourceError, SubmitError,
};

const MARKET: &str = "h100-sxm.us-east";
/// Commands in a run.
const COMMANDS: u64 = 40;
/// A bound for what a test waits for (a failure guard, not a timing).
const PATIENCE: Duration = Duration::from_secs(60);

fn env(ts: u64, command: &str) -> Vec<u8> {
    format!(r#"{{"v":3,"ts_ns":{ts},"command":{command}}}"#).into_bytes()
}

/// A market, two funded traders, then orders crossing each other: `COMMANDS` in all.
fn commands() -> Vec<Vec<u8>> {
    let mut out = vec![env(
        1,
        &format!(
            r#"{{"type":"list_market","market":"{MARKET}","tick_size":"0.01","lot_size":"1","maker_fee_bps":10,"taker_fee_bps":20}}"#
        ),
    )];
    for a in 1..=2u64 {
        out.push(env(
            2,
            &format!(r#"{{"type":"create_account","account":{a}}}"#),
        ));
        out.push(env(
            3,
            &format!(r#"{{"type":"deposit","account":{a},"amount":"100000"}}"#),
        ));
        out.push(env(
            4,
            &format!(
                r#"{{"type":"add_capacity","account":{a},"market":"{MARKET}","from_slot":3600,"to_slot":3600,"quantity":"1000"}}"#
            ),
        ));
    }
    let mut i = 0u64;
    while (out.len() as u64) < COMMANDS {
        let (a, side) = if i.is_multiple_of(2) {
            (1, "buy")
        } else {
            (2, "sell")
        };
        out.push(env(
            10 + i,
            &format!(
                r#"{{"type":"place_order","account":{a},"market":"{MARKET}","slot":3600,"side":"{side}","price":"2.{:02}","quantity":"{}"}}"#,
                40 + i % 7,
                1 + i % 3
            ),
        ));
        i += 1;
    }
    out
}

/// One ledger write per command, so write N is command N's: each engine
/// submission holds one command and the committer merges none.
fn one_write_per_command() -> PipelineOptions {
    let mut opts = PipelineOptions {
        max_batch_commands: 1,
        snapshot_every_events: u64::MAX, // no snapshot writes in between
        ..PipelineOptions::default()
    };
    opts.commit.max_commands_per_write = 1;
    opts
}

/// A store whose ledger inbox already holds every command (journaled in one
/// write, before any fault is armed; the embedded log applies them first).
fn journaled_store() -> FaultyStore<MemStore> {
    let store = FaultyStore::new(MemStore::new());
    let mut ledger = Ledger::with_store(store.clone(), &LedgerOptions::default()).unwrap();
    ledger.journal(&commands()).unwrap();
    drop(ledger);
    store
}

/// The pipeline's first failure, as `on_failure` reports it.
fn failure_of<S: gpux_ledger::Store>(exchange: &Exchange<S>) -> PipelineError {
    let (tx, rx) = mpsc::channel();
    exchange.on_failure(move |e| {
        let _ = tx.send(e.clone());
    });
    rx.recv_timeout(PATIENCE).expect("the pipeline fails")
}

/// Runs the pipeline on `store` until every command is durable; its final engine.
fn run_to_the_end(store: FaultyStore<MemStore>) -> Engine {
    let ledger = Ledger::with_store(store, &LedgerOptions::default()).unwrap();
    let exchange = Exchange::start_embedded_on_ledger(ledger, one_write_per_command()).unwrap();
    let mut feed = exchange.follow(1);
    let stats = exchange.stats();
    let deadline = std::time::Instant::now() + PATIENCE;
    while stats.durable_seq.load(std::sync::atomic::Ordering::Acquire) < COMMANDS {
        assert!(std::time::Instant::now() < deadline, "the pipeline stalled");
        let _ = gpux_sequencer::Feed::recv_timeout(&mut feed, Duration::from_millis(100));
    }
    drop(feed);
    exchange.shutdown().unwrap()
}

/// Everything logged at `error` level in this test binary.
fn error_log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = Arc::clone(&buf);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::ERROR)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failed_commit_at_command_n_stops_the_pipeline_with_its_cmd_seq() {
    let log = error_log();
    const N: u64 = 17;
    let store = journaled_store();
    let ledger = Ledger::with_store(store.clone(), &LedgerOptions::default()).unwrap();
    store.arm(Fault::FailWrite { nth: N });
    let exchange = Exchange::start_embedded_on_ledger(ledger, one_write_per_command()).unwrap();

    let e = failure_of(&exchange);
    assert!(
        matches!(
            &e,
            PipelineError::Commit {
                cmd_seq: N,
                last_cmd_seq: N,
                error: LedgerError::Store(_),
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.cmd_seq(), Some(N));
    assert!(e.to_string().contains("cmd_seq 17..=17"), "{e}");
    assert!(matches!(
        exchange.failure(),
        Some(PipelineError::Commit { cmd_seq: N, .. })
    ));
    assert_eq!(store.faults_fired(), 1);
    let durable = exchange
        .stats()
        .durable_seq
        .load(std::sync::atomic::Ordering::Acquire);
    assert_eq!(
        durable,
        N - 1,
        "everything before N is durable, nothing after"
    );

    // The failure is logged once, at error level, with its cmd_seq.
    let logged =
        String::from_utf8_lossy(&log.lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
    let lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("pipeline failed") && l.contains("cmd_seq=17"))
        .collect();
    assert_eq!(lines.len(), 1, "{logged}");
    assert!(lines[0].contains("ERROR"), "{logged}");

    // The caller of shutdown hears the same error; nothing more is written.
    match exchange.shutdown() {
        Err(PipelineError::Commit { cmd_seq: N, .. }) => {}
        other => panic!("{other:?}"),
    }
    let reopened = Ledger::with_store(store.inner().clone(), &LedgerOptions::default()).unwrap();
    assert_eq!(reopened.head().last_cmd_seq, N - 1);
    drop(reopened);

    // A restart resumes at N and ends where a fault-free run does.
    let resumed = run_to_the_end(store);
    let fault_free = run_to_the_end(journaled_store());
    assert_eq!(resumed.last_seq(), COMMANDS);
    assert_eq!(resumed.state_hash(), fault_free.state_hash());
}

#[test]
fn a_torn_commit_is_a_failure_and_the_torn_tail_is_repaired_on_restart() {
    const N: u64 = 9;
    let store = journaled_store();
    let ledger = Ledger::with_store(store.clone(), &LedgerOptions::default()).unwrap();
    store.arm(Fault::TearWrite {
        nth: N,
        keep_ops: 2,
    });
    let exchange = Exchange::start_embedded_on_ledger(ledger, one_write_per_command()).unwrap();
    let e = failure_of(&exchange);
    assert_eq!(e.cmd_seq(), Some(N), "{e}");
    assert!(matches!(
        exchange.shutdown(),
        Err(PipelineError::Commit { cmd_seq: N, .. })
    ));

    let truncating = LedgerOptions {
        truncate_torn_tail: true,
        ..LedgerOptions::default()
    };
    let ledger = Ledger::with_store(store.inner().clone(), &truncating).unwrap();
    assert_eq!(ledger.head().last_cmd_seq, N - 1);
    drop(ledger);
    assert_eq!(
        run_to_the_end(store).state_hash(),
        run_to_the_end(journaled_store()).state_hash()
    );
}

/// The embedded log acknowledges a command only once its batch is durable: when
/// that write fails, the submitter hears `Unavailable` (never `Ok`), the pipeline
/// fails naming the command, and so does every later submission.
#[test]
fn a_failed_commit_fails_the_waiting_submission_and_the_pipeline() {
    let store = FaultyStore::new(MemStore::new());
    let ledger = Ledger::with_store(store.clone(), &LedgerOptions::default()).unwrap();
    let exchange = Exchange::start_embedded_on_ledger(ledger, one_write_per_command()).unwrap();
    store.arm(Fault::FailWrite { nth: 1 });
    let submitter = exchange.submitter().unwrap();
    let submit = |payload| {
        let (tx, rx) = mpsc::channel();
        submitter.submit(payload, Box::new(move |r| tx.send(r).unwrap()));
        rx.recv_timeout(PATIENCE).unwrap()
    };
    let submitted = submit(commands().remove(0));
    assert!(
        matches!(submitted, Err(SubmitError::Unavailable(_))),
        "{submitted:?}"
    );

    let e = failure_of(&exchange);
    assert!(
        matches!(
            e,
            PipelineError::Commit {
                cmd_seq: 1,
                error: LedgerError::Store(_),
                ..
            }
        ),
        "{e:?}"
    );
    let later = submit(commands().remove(1));
    assert!(
        matches!(later, Err(SubmitError::Unavailable(_))),
        "{later:?}"
    );
    assert!(matches!(
        exchange.shutdown(),
        Err(PipelineError::Commit { cmd_seq: 1, .. })
    ));
    // Nothing of it reached the ledger.
    let ledger = Ledger::with_store(store.inner().clone(), &LedgerOptions::default()).unwrap();
    assert_eq!(ledger.head().last_cmd_seq, 0);
}

/// A command source that yields `good` commands, then gives up.
struct GivesUp {
    next: u64,
    good: u64,
}

impl CommandSource for GivesUp {
    fn key(&self) -> SourceKey {
        SourceKey::Kafka {
            topic: "commands".into(),
            partition: 0,
        }
    }

    fn start_after(&mut self, last_consumed: Option<Position>) -> Result<(), SourceError> {
        self.next = last_consumed.map_or(0, |p| p.offset + 1);
        Ok(())
    }

    fn poll(
        &mut self,
        out: &mut Vec<Inbound>,
        max: usize,
        _timeout: Duration,
    ) -> Result<(), SourceError> {
        if self.next >= self.good {
            return Err(SourceError::Kafka("the partition is gone".into()));
        }
        let all = commands();
        while self.next < self.good && out.len() < max {
            out.push(Inbound {
                source: Source::Kafka {
                    topic: "commands".into(),
                    partition: 0,
                    offset: self.next,
                    index: None,
                },
                payload: all[self.next as usize].clone(),
            });
            self.next += 1;
        }
        Ok(())
    }
}

#[test]
fn a_source_that_gives_up_stops_the_pipeline_naming_its_last_offset() {
    let store = FaultyStore::new(MemStore::new());
    let ledger = Ledger::with_store(store.clone(), &LedgerOptions::default()).unwrap();
    let source = GivesUp { next: 0, good: 12 };
    let exchange =
        Exchange::start_on_ledger(ledger, PipelineOptions::default(), Box::new(source), None)
            .unwrap();
    let e = failure_of(&exchange);
    match &e {
        PipelineError::Source {
            key: SourceKey::Kafka { topic, .. },
            last_offset: Some(11),
            error: SourceError::Kafka(_),
        } if topic == "commands" => {}
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("last offset read: 11"), "{e}");
    assert!(matches!(
        exchange.shutdown(),
        Err(PipelineError::Source { .. })
    ));
    let ledger = Ledger::with_store(store.inner().clone(), &LedgerOptions::default()).unwrap();
    assert!(ledger.head().last_cmd_seq <= 12);
}
