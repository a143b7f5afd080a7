//! The running exchange core: bounded stages from the command log into the ledger.
//!
//! ```text
//!  source ──► decode thread ──(bounded)──► engine thread ──► group committer ──► publish,
//!  (embedded    reads the log, parses       the one thread     stager + writer     then ack
//!   or Kafka)   JSON envelopes              touching the book  threads, fsync      on commit
//! ```
//!
//! Owns [`Exchange`] (start, handles, shutdown) and [`PipelineOptions`]. Ordering and
//! durability rules:
//! - Commands are applied in log order; each gets the next `cmd_seq` and a timestamp
//!   made monotonic from its envelope's `ts_ns` (a malformed command gets the last
//!   timestamp and a `rejected` event; it never stops the pipeline).
//! - The position of the last command of each batch is written in the same synced
//!   write as the batch's events, so on restart the source resumes right after it:
//!   every command takes effect exactly once across crashes.
//! - A batch is published (in-process [`Publisher`]) only after its write is synced;
//!   on the embedded log its submitters are acknowledged right after (one durable
//!   write per command: the embedded log keeps commands in memory until they are
//!   committed with their events).
//! - Every queue is bounded: a slow disk slows the engine, which slows decoding,
//!   which stops reading the log. Nothing grows without limit.
//! - A ledger or source failure stops the pipeline: the first one is kept as a typed
//!   [`PipelineError`] naming the `cmd_seq` (or source offset) it happened at, logged
//!   once, handed to [`Exchange::on_failure`] callbacks, and returned by
//!   [`Exchange::shutdown`], so the process exits non-zero and a restart resumes
//!   after the last durable command.
//!
//! With [`PipelineOptions::clock_tick`] set, a clock thread ([`crate::clock`])
//! submits a `tick` through the exchange's own submitter whenever the log has been
//! idle that long, so time passes on an idle exchange; it is stopped first at
//! shutdown, after its last tick is sequenced.
//!
//! The pipeline runs on any ledger [`Store`]: RocksDB in production
//! ([`Exchange::start_embedded`]), or e.g. a [`FaultyStore`](gpux_ledger::FaultyStore)
//! over a [`MemStore`](gpux_ledger::MemStore) in tests
//! ([`Exchange::start_embedded_on_ledger`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gpux_engine::{Command, CommandEnvelope, Engine, Event};
use gpux_ledger::{
    AppliedCommand, CommitHandle, DeferredVerification, GroupCommitOptions, GroupCommitter,
    LatencyHistogram, Ledger, LedgerError, LedgerOptions, LedgerReader, RocksStore, SourceKey,
    Store, VerifyOnOpen,
};

use crate::clock::{Activity, Clock, ExchangeClock};
use crate::committed::{CommittedBatch, CommittedCommand};
use crate::error::{PipelineError, SubmitError};
use crate::feed::{LedgerFollower, Publisher};
use crate::recovery;
use crate::source::{CommandSource, EmbeddedSource, Inbound};
use crate::submit::{EmbeddedLog, EmbeddedSubmitter, Submitter};

/// Default snapshot interval, in events: the one default of every way to set it
/// (`gpux serve`'s config, `gpux engine --snapshot-every`, `gpux apply`). A restart
/// rebuilds the engine from the latest snapshot and re-runs the events after it:
/// about a million events re-run in a second (`gpux bench ledger`'s restart figure
/// in docs/ARCHITECTURE.md), while a snapshot serializes the whole engine state on
/// the engine thread, so taking one much more often costs matching time.
pub const SNAPSHOT_EVERY_EVENTS_DEFAULT: u64 = 1_000_000;

/// Default most commands the decode stage reads from the source at once: enough
/// to amortize a source read and a queue hand-off over many commands, small enough
/// (a quarter of a batch) that the engine starts applying a burst early.
pub const DECODE_CHUNK_COMMANDS_DEFAULT: usize = 1024;

/// Default capacity, in chunks, of the queue between decoding and the engine: two
/// full batches of decoded commands ahead of the engine keep it busy while the
/// decoder waits on the log, and bound what a stalled engine holds in memory.
pub const DECODE_QUEUE_CHUNKS_DEFAULT: usize = 8;

/// Default most commands the engine hands the committer in one submission: the
/// group committer's own default write size
/// ([`GroupCommitOptions::max_commands_per_write`], measured best on the 2-core
/// machine), so one submission fills one synced write.
pub const BATCH_COMMANDS_MAX_DEFAULT: usize = 4096;

/// Default most engine submissions waiting to be durable: one being synced by the
/// committer's writer, one being staged (encoded and hashed) by its stager, one
/// queued behind them. Deeper queues keep the disk no busier and only add latency.
pub const BATCHES_IN_FLIGHT_MAX_DEFAULT: usize = 3;

/// How long the decode stage waits on an idle source before checking whether the
/// pipeline is stopping: bounds how late it notices a shutdown.
const SOURCE_POLL_WAIT: Duration = Duration::from_millis(50);

/// Longest a clean shutdown waits for the pipeline to read what is left in the
/// embedded log (it reads hundreds of thousands of commands a second; only a
/// stalled disk makes it wait this long).
const SHUTDOWN_DRAIN_WAIT: Duration = Duration::from_secs(10);

/// How long the idle engine waits for decoded commands before checking for a
/// shutdown or a failure (it commits what it holds before waiting, so this adds no
/// latency to commands).
const ENGINE_IDLE_WAIT: Duration = Duration::from_millis(100);

/// Most spare command vectors kept for reuse between batches (one per batch in
/// flight and one being filled is all that is ever needed).
const RECYCLED_BATCH_BUFFERS_MAX: usize = BATCHES_IN_FLIGHT_MAX_DEFAULT + 1;

/// Tuning of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Take a snapshot after at least this many events since the last one.
    pub snapshot_every_events: u64,
    /// Most commands the decode stage reads from the source at once.
    pub decode_chunk: usize,
    /// Capacity (in chunks) of the queue between decoding and the engine.
    pub decode_queue_chunks: usize,
    /// Most commands the engine hands the committer in one submission.
    pub max_batch_commands: usize,
    /// Most engine submissions waiting to be durable; the engine waits beyond it
    /// (queues deeper than what keeps the disk busy only add latency).
    pub max_batches_in_flight: usize,
    /// Ledger opening options. The default verifies in the background
    /// ([`VerifyOnOpen::Background`]): the pipeline starts on the head's checks and
    /// a `gpux-verify` thread walks everything below; damage it finds fails the
    /// pipeline ([`PipelineError::Verify`]).
    pub ledger: LedgerOptions,
    /// Group-commit bounds.
    pub commit: GroupCommitOptions,
    /// Sequence a `tick` through the exchange's submitter after this long without
    /// any sequenced command, so time passes on an idle exchange (see
    /// [`crate::clock`]). `None` (the default here; `gpux serve` and `gpux engine`
    /// default to [`CLOCK_TICK_MS_DEFAULT`](crate::CLOCK_TICK_MS_DEFAULT)): the
    /// log carries only what is submitted. Needs a submitter.
    pub clock_tick: Option<Duration>,
    /// The time ticks are stamped with (the wall clock by default).
    pub time: ExchangeClock,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            snapshot_every_events: SNAPSHOT_EVERY_EVENTS_DEFAULT,
            decode_chunk: DECODE_CHUNK_COMMANDS_DEFAULT,
            decode_queue_chunks: DECODE_QUEUE_CHUNKS_DEFAULT,
            max_batch_commands: BATCH_COMMANDS_MAX_DEFAULT,
            max_batches_in_flight: BATCHES_IN_FLIGHT_MAX_DEFAULT,
            ledger: LedgerOptions {
                verify_on_open: VerifyOnOpen::Background,
                ..LedgerOptions::default()
            },
            commit: GroupCommitOptions::default(),
            clock_tick: None,
            time: ExchangeClock::default(),
        }
    }
}

/// Live counters of a running pipeline (for metrics and benchmarks).
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Commands applied by the engine.
    pub applied: AtomicU64,
    /// Highest `cmd_seq` durable in the ledger.
    pub durable_seq: AtomicU64,
    /// Events durable in the ledger since start.
    pub durable_events: AtomicU64,
    /// Committed batches since start.
    pub batches: AtomicU64,
    /// Time from a command being read from the log to its batch being durable.
    pub read_to_durable: Mutex<LatencyHistogram>,
}

impl PipelineStats {
    /// A copy of the read-to-durable latency histogram.
    pub fn latency(&self) -> LatencyHistogram {
        self.read_to_durable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One decoded (or undecodable) command on its way to the engine.
struct Decoded {
    inbound: Inbound,
    envelope: Option<CommandEnvelope>,
}

/// A chunk of decoded commands and when the first was read.
struct Chunk {
    read_at: Instant,
    commands: Vec<Decoded>,
}

/// Called once with the pipeline's first failure.
type FailureCallback = Box<dyn FnOnce(&PipelineError) + Send>;

/// The first failure of a pipeline, shared by its threads and the embedded
/// submitter: later failures (usually consequences of the first, such as a
/// poisoned ledger) are only logged at debug level.
#[derive(Default)]
pub(crate) struct Failure {
    failed: AtomicBool,
    state: Mutex<FailureState>,
}

#[derive(Default)]
struct FailureState {
    first: Option<PipelineError>,
    callbacks: Vec<FailureCallback>,
}

impl Failure {
    /// Records `e` if it is the first failure: logs it (with its `cmd_seq`) and runs
    /// the [`Exchange::on_failure`] callbacks.
    pub(crate) fn record(&self, e: PipelineError) {
        let callbacks = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if st.first.is_some() {
                tracing::debug!(cmd_seq = e.cmd_seq(), error = %e, "after the pipeline failed");
                return;
            }
            tracing::error!(cmd_seq = e.cmd_seq(), error = %e, "pipeline failed");
            st.first = Some(e.clone());
            self.failed.store(true, Ordering::SeqCst);
            std::mem::take(&mut st.callbacks)
        };
        for f in callbacks {
            f(&e);
        }
    }

    fn is_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    fn get(&self) -> Option<PipelineError> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first
            .clone()
    }

    fn on_failure(&self, f: FailureCallback) {
        let first = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &st.first {
                Some(e) => e.clone(),
                None => {
                    st.callbacks.push(f);
                    return;
                }
            }
        };
        f(&first);
    }
}

/// A running exchange core: pipeline threads plus the ledger's committer, on a
/// ledger over the store `S` (RocksDB unless started on another ledger).
pub struct Exchange<S: Store = RocksStore> {
    committer: Option<GroupCommitter<S>>,
    reader: LedgerReader<S>,
    publisher: Arc<Publisher>,
    submitter: Option<Arc<dyn Submitter>>,
    embedded: Option<EmbeddedSubmitter>,
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    failure: Arc<Failure>,
    log: Option<Arc<EmbeddedLog>>,
    clock: Option<Clock>,
    decode: Option<JoinHandle<()>>,
    engine: Option<JoinHandle<Engine>>,
    /// Serializes copies of the engine into snapshots; ends after the engine.
    snapshotter: Option<JoinHandle<()>>,
    /// The deferred verification of what was in the ledger at start, if running.
    verify: Option<JoinHandle<()>>,
    hooks: Vec<Box<dyn FnOnce() + Send>>,
    dir: Option<PathBuf>,
}

impl<S: Store> std::fmt::Debug for Exchange<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").field("dir", &self.dir).finish()
    }
}

/// Opens the RocksDB ledger in `dir`.
fn open_dir(dir: &Path, opts: &PipelineOptions) -> Result<Ledger<RocksStore>, PipelineError> {
    Ledger::open(dir, &opts.ledger).map_err(|error| PipelineError::Open {
        dir: dir.to_path_buf(),
        error,
    })
}

impl Exchange<RocksStore> {
    /// Opens the ledger in `dir` (verifying it and rebuilding the engine from its
    /// latest good snapshot) and starts the pipeline on the embedded command log.
    pub fn start_embedded(dir: &Path, opts: PipelineOptions) -> Result<Self, PipelineError> {
        let ledger = open_dir(dir, &opts)?;
        Self::start(ledger, Some(dir), opts, embedded_parts)
    }

    /// Opens the ledger in `dir` and starts the pipeline on `source`; `submitter`, if
    /// any, is what [`Exchange::submitter`] hands out (e.g. a Kafka producer).
    pub fn start_with_source(
        dir: &Path,
        opts: PipelineOptions,
        source: Box<dyn CommandSource>,
        submitter: Option<Arc<dyn Submitter>>,
    ) -> Result<Self, PipelineError> {
        let ledger = open_dir(dir, &opts)?;
        Self::start(ledger, Some(dir), opts, move |_, _| {
            Ok(StartParts {
                source,
                submitter,
                embedded: None,
                log: None,
            })
        })
    }
}

/// The embedded command log's source and submitter: commands left in `reader`'s
/// inbox first, then the in-memory log, whose seqs continue after everything
/// taken before. If the pipeline fails, every submission not yet durable hears
/// it.
fn embedded_parts<S: Store>(
    reader: &LedgerReader<S>,
    failure: &Failure,
) -> Result<StartParts, PipelineError> {
    let inbox_last = reader.inbox_last().map_err(PipelineError::Ledger)?;
    let consumed = reader
        .consumed_offset(&SourceKey::Embedded)
        .map_err(PipelineError::Ledger)?
        .unwrap_or(0);
    let log = EmbeddedLog::new(inbox_last.max(consumed));
    let on_failure = Arc::clone(&log);
    failure.on_failure(Box::new(move |e| {
        on_failure.fail(&SubmitError::Unavailable(e.to_string()));
    }));
    let source = EmbeddedSource::new(reader.clone(), Arc::clone(&log), inbox_last);
    let submitter = EmbeddedSubmitter::new(Arc::clone(&log));
    Ok(StartParts {
        source: Box::new(source),
        submitter: Some(Arc::new(submitter.clone())),
        embedded: Some(submitter),
        log: Some(log),
    })
}

impl<S: Store> Exchange<S> {
    /// Starts the pipeline on the embedded command log of an open `ledger` over any
    /// store: what [`Exchange::start_embedded`] does after opening RocksDB. With a
    /// [`FaultyStore`](gpux_ledger::FaultyStore), tests run the real pipeline into
    /// injected write failures.
    pub fn start_embedded_on_ledger(
        ledger: Ledger<S>,
        opts: PipelineOptions,
    ) -> Result<Self, PipelineError> {
        Self::start(ledger, None, opts, embedded_parts)
    }

    /// Starts the pipeline on `source` and an open `ledger` over any store: what
    /// [`Exchange::start_with_source`] does after opening RocksDB.
    pub fn start_on_ledger(
        ledger: Ledger<S>,
        opts: PipelineOptions,
        source: Box<dyn CommandSource>,
        submitter: Option<Arc<dyn Submitter>>,
    ) -> Result<Self, PipelineError> {
        Self::start(ledger, None, opts, move |_, _| {
            Ok(StartParts {
                source,
                submitter,
                embedded: None,
                log: None,
            })
        })
    }

    fn start(
        mut ledger: Ledger<S>,
        dir: Option<&Path>,
        opts: PipelineOptions,
        make: impl FnOnce(&LedgerReader<S>, &Failure) -> Result<StartParts, PipelineError>,
    ) -> Result<Self, PipelineError> {
        let reader = ledger.reader();
        let engine = recover(&ledger, &reader, dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(Failure::default());
        let verify = match ledger.take_deferred_verification() {
            Some(v) => Some(spawn_verify(v, Arc::clone(&failure))?),
            None => None,
        };
        let committer =
            GroupCommitter::spawn(ledger, opts.commit.clone()).map_err(PipelineError::Ledger)?;
        let (snapshots, snapshotter) = spawn_snapshotter(committer.handle(), Arc::clone(&failure))?;
        let StartParts {
            mut source,
            submitter,
            embedded,
            log,
        } = make(&reader, &failure)?;
        let (key, consumed) = position_source(&mut *source, &reader)?;

        let publisher = Arc::new(Publisher::new());
        let stats = Arc::new(PipelineStats::default());
        stats
            .durable_seq
            .store(engine.last_seq(), Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(opts.decode_queue_chunks.max(1));

        let decode = spawn_decode(
            source,
            key,
            consumed,
            tx,
            opts.decode_chunk.max(1),
            Arc::clone(&stop),
            Arc::clone(&failure),
        )?;
        let activity = Activity::new();
        let (engine_thread, decode) = {
            let ctx = EngineCtx {
                snapshots,
                activity: Arc::clone(&activity),
                in_flight: Arc::default(),
                handle: committer.handle(),
                publisher: Arc::clone(&publisher),
                stats: Arc::clone(&stats),
                failure: Arc::clone(&failure),
                stop: Arc::clone(&stop),
                log: log.clone(),
                opts: opts.clone(),
            };
            spawn_engine(engine, rx, ctx, decode)?
        };
        let mut exchange = Self {
            committer: Some(committer),
            reader,
            publisher,
            submitter,
            embedded,
            stats,
            stop,
            failure,
            log,
            clock: None,
            decode: Some(decode),
            engine: Some(engine_thread),
            snapshotter: Some(snapshotter),
            verify,
            hooks: Vec::new(),
            dir: dir.map(Path::to_path_buf),
        };
        // On failure, dropping `exchange` stops the threads started above.
        exchange.start_clock(opts.clock_tick, opts.time.clone(), activity)?;
        Ok(exchange)
    }

    /// Starts the clock (`every` set, and a submitter to tick through).
    fn start_clock(
        &mut self,
        every: Option<Duration>,
        time: ExchangeClock,
        activity: Arc<Activity>,
    ) -> Result<(), PipelineError> {
        if let (Some(every), Some(submitter)) = (every, self.submitter()) {
            let clock = Clock::spawn(submitter, time, every, activity).map_err(|e| {
                PipelineError::Spawn {
                    thread: "clock",
                    error: Arc::new(e),
                }
            })?;
            self.clock = Some(clock);
        }
        Ok(())
    }

    /// Where commands go in (`None` when started on a source without a submitter).
    pub fn submitter(&self) -> Option<Arc<dyn Submitter>> {
        self.submitter.clone()
    }

    /// The embedded command log's submitter (batch submissions with
    /// back-pressure), when running on it.
    pub fn embedded_submitter(&self) -> Option<EmbeddedSubmitter> {
        self.embedded.clone()
    }

    /// The in-process publication of committed batches.
    pub fn publisher(&self) -> Arc<Publisher> {
        Arc::clone(&self.publisher)
    }

    /// A read handle on the ledger (sees only committed batches).
    pub fn reader(&self) -> LedgerReader<S> {
        self.reader.clone()
    }

    /// A feed of every committed command from `next_seq` on.
    pub fn follow(&self, next_seq: u64) -> LedgerFollower<S> {
        LedgerFollower::new(self.reader(), self.publisher(), next_seq)
    }

    /// An engine rebuilt from the ledger at its current head (a read replica: apply
    /// what [`Exchange::follow`]`(engine.last_seq() + 1)` yields to keep it current).
    pub fn replica(&self) -> Result<Engine, PipelineError> {
        recovery::state_at(&self.reader, None, None).map_err(PipelineError::Recover)
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<PipelineStats> {
        Arc::clone(&self.stats)
    }

    /// Why the pipeline stopped by itself, if it did (the ledger failed, the source
    /// failed for good): the first failure. The process should exit non-zero and be
    /// restarted; [`Exchange::shutdown`] returns the same error.
    pub fn failure(&self) -> Option<PipelineError> {
        self.failure.get()
    }

    /// Calls `f` once with the pipeline's first failure: right away if it has
    /// already failed, otherwise on the thread that hits it (keep `f` short, e.g.
    /// send on a channel). How a server learns that it must stop; never called if
    /// the pipeline does not fail.
    pub fn on_failure(&self, f: impl FnOnce(&PipelineError) + Send + 'static) {
        self.failure.on_failure(Box::new(f));
    }

    /// The ledger's directory (`None` when started on an already open ledger).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Registers `f` to run at shutdown (or drop), once the pipeline's threads have
    /// stopped and (at a clean shutdown) everything applied is committed, before
    /// the ledger closes: how companions that follow the ledger (the events-topic
    /// publisher) are stopped, with all of it.
    pub fn on_shutdown(&mut self, f: impl FnOnce() + Send + 'static) {
        self.hooks.push(Box::new(f));
    }

    fn run_hooks(&mut self) {
        for f in self.hooks.drain(..) {
            f();
        }
    }

    /// Stops reading the log and joins the pipeline threads; the engine's final
    /// state, or `None` if its thread panicked (recorded as the failure). With
    /// `drain`, the embedded log first takes no more commands and the pipeline
    /// reads every command already in it (applied and committed before the stop
    /// completes), waiting at most [`SHUTDOWN_DRAIN_WAIT`].
    fn stop_threads(&mut self, drain: bool) -> Option<Engine> {
        // No tick after this (the log it would go into closes next),
        // and the last one sequenced while the pipeline still runs.
        if let Some(mut clock) = self.clock.take() {
            clock.stop(!self.failure.is_failed());
        }
        if let Some(log) = &self.log {
            log.close(SubmitError::Unavailable("the exchange is stopping".into()));
            if drain && !self.failure.is_failed() && !log.wait_drained(SHUTDOWN_DRAIN_WAIT) {
                tracing::warn!("stopping with commands left unread in the embedded log");
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(log) = &self.log {
            log.stop();
        }
        join_thread(&self.failure, self.decode.take(), "decode");
        // The deferred verification reads the store, which stays open until it is
        // done (a restart in the same process could not open the ledger before).
        join_thread(&self.failure, self.verify.take(), "verify");
        let engine = self.engine.take()?.join();
        // The engine's end dropped the snapshot thread's sender: it stops after
        // queuing the snapshot it may be making (before the committer stops).
        join_thread(&self.failure, self.snapshotter.take(), "snapshot");
        match engine {
            Ok(e) => Some(e),
            Err(_) => {
                self.failure
                    .record(PipelineError::Panicked { thread: "engine" });
                None
            }
        }
    }

    /// Clean shutdown: stop reading the log, apply and commit what was read, take a
    /// snapshot at the head, close the ledger. Returns the engine's final state — or
    /// the pipeline's first failure if it failed (then nothing more is written: the
    /// ledger refuses writes after a failed one, and a restart verifies it).
    pub fn shutdown(mut self) -> Result<Engine, PipelineError> {
        let engine = self.stop_threads(true);
        let committer = self.committer.take();
        let engine = match (engine, self.failure.get()) {
            (Some(engine), None) => engine,
            (_, failed) => {
                self.run_hooks();
                if let Some(c) = committer {
                    let _ = c.shutdown();
                }
                return Err(failed.unwrap_or(PipelineError::Panicked { thread: "engine" }));
            }
        };
        let Some(committer) = committer else {
            return Ok(engine); // unreachable: only `shutdown` takes it, and it consumes self
        };
        let seq = engine.last_seq();
        let snapshot = if seq > 0 {
            committer
                .snapshot(seq, engine.snapshot())
                .and_then(|p| p.wait())
                .map_err(|error| PipelineError::Snapshot {
                    cmd_seq: seq,
                    error,
                })
        } else {
            Ok(())
        };
        // Everything applied is committed now: companions that follow the ledger
        // (the events publisher) finish with all of it, then stop.
        self.run_hooks();
        snapshot?;
        let (ledger, _) = committer.shutdown().map_err(PipelineError::Ledger)?;
        ledger.close().map_err(PipelineError::Ledger)?;
        tracing::info!(cmd_seq = seq, "exchange stopped cleanly");
        Ok(engine)
    }
}

impl<S: Store> Drop for Exchange<S> {
    fn drop(&mut self) {
        // Not shut down explicitly: stop the threads; what was committed stays.
        if self.decode.is_some() || self.engine.is_some() {
            let _ = self.stop_threads(false);
        }
        self.run_hooks();
        if let Some(log) = self.log.take() {
            // Every completion has run once the committer is gone: what is still
            // waiting was not made durable by this run.
            if let Some(c) = self.committer.take() {
                let _ = c.shutdown();
            }
            log.fail(&SubmitError::Unavailable("the exchange stopped".into()));
        }
    }
}

/// The engine rebuilt from the ledger, which must end where the ledger does.
fn recover<S: Store>(
    ledger: &Ledger<S>,
    reader: &LedgerReader<S>,
    dir: Option<&Path>,
) -> Result<Engine, PipelineError> {
    let started = Instant::now();
    let engine = recovery::state_at(reader, None, None).map_err(PipelineError::Recover)?;
    if engine.last_seq() != ledger.head().last_cmd_seq {
        return Err(PipelineError::Diverged {
            engine_cmd_seq: engine.last_seq(),
            ledger_cmd_seq: ledger.head().last_cmd_seq,
        });
    }
    tracing::info!(
        cmd_seq = engine.last_seq(),
        ms = started.elapsed().as_millis() as u64,
        dir = ?dir,
        "engine recovered"
    );
    Ok(engine)
}

/// Positions `source` after the last offset the ledger consumed from it; returns
/// its key and that offset.
fn position_source<S: Store>(
    source: &mut dyn CommandSource,
    reader: &LedgerReader<S>,
) -> Result<(SourceKey, Option<u64>), PipelineError> {
    let key = source.key();
    let consumed = reader
        .consumed_position(&key)
        .map_err(PipelineError::Ledger)?;
    let offset = consumed.map(|p| p.offset);
    source
        .start_after(consumed)
        .map_err(|error| PipelineError::Source {
            key: key.clone(),
            last_offset: offset,
            error,
        })?;
    tracing::info!(
        source = %key,
        last_consumed = %consumed.map_or_else(|| "none".to_owned(), |p| p.to_string()),
        "consuming"
    );
    Ok((key, offset))
}

/// Starts the decode thread: reads `source` (positioned after `consumed`) in
/// chunks of `chunk` commands into `tx`; a source failure stops the pipeline and
/// is recorded in `failure`.
/// Waits for the pipeline thread `t`, if it runs; its panic is the failure.
fn join_thread(failure: &Failure, t: Option<JoinHandle<()>>, thread: &'static str) {
    if t.is_some_and(|t| t.join().is_err()) {
        failure.record(PipelineError::Panicked { thread });
    }
}

/// Runs the ledger's deferred verification on its own thread: logs what it
/// verified, or fails the pipeline with the damage it found.
fn spawn_verify<S: Store>(
    v: DeferredVerification<S>,
    failure: Arc<Failure>,
) -> Result<JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name("gpux-verify".into())
        .spawn(move || {
            let head = v.head();
            match v.run(&mut |_| {}) {
                Ok(r) => tracing::info!(
                    batches = r.batches,
                    commands = r.commands,
                    events = r.events,
                    corrupt_snapshots = r.corrupt_snapshots.len(),
                    ms = r.elapsed.as_millis() as u64,
                    "ledger verified up to the head it was opened at"
                ),
                Err(error) => failure.record(PipelineError::Verify {
                    head_cmd_seq: head.last_cmd_seq,
                    error,
                }),
            }
        })
        .map_err(|e| PipelineError::Spawn {
            thread: "verify",
            error: Arc::new(e),
        })
}

fn spawn_decode(
    mut source: Box<dyn CommandSource>,
    key: SourceKey,
    consumed: Option<u64>,
    tx: SyncSender<Chunk>,
    chunk: usize,
    stop: Arc<AtomicBool>,
    failure: Arc<Failure>,
) -> Result<JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name("gpux-decode".into())
        .spawn(move || {
            let mut last_offset = consumed;
            if let Err(e) = decode_loop(&mut *source, &tx, chunk, &stop, &mut last_offset) {
                stop.store(true, Ordering::SeqCst);
                failure.record(PipelineError::Source {
                    key,
                    last_offset,
                    error: e,
                });
            }
        })
        .map_err(|e| PipelineError::Spawn {
            thread: "decode",
            error: Arc::new(e),
        })
}

/// Starts the engine thread. If it cannot start, the decode thread is stopped
/// (an embedded source woken through its log) and joined.
fn spawn_engine(
    engine: Engine,
    rx: Receiver<Chunk>,
    ctx: EngineCtx,
    decode: JoinHandle<()>,
) -> Result<(JoinHandle<Engine>, JoinHandle<()>), PipelineError> {
    let stop = Arc::clone(&ctx.stop);
    let log = ctx.log.clone();
    let spawned = std::thread::Builder::new()
        .name("gpux-engine".into())
        .spawn(move || engine_loop(engine, rx, ctx));
    match spawned {
        Ok(t) => Ok((t, decode)),
        Err(e) => {
            stop.store(true, Ordering::SeqCst);
            if let Some(log) = log {
                log.stop();
            }
            let _ = decode.join();
            Err(PipelineError::Spawn {
                thread: "engine",
                error: Arc::new(e),
            })
        }
    }
}

struct StartParts {
    source: Box<dyn CommandSource>,
    submitter: Option<Arc<dyn Submitter>>,
    embedded: Option<EmbeddedSubmitter>,
    log: Option<Arc<EmbeddedLog>>,
}

/// Decode stage: read the log, parse envelopes, hand chunks to the engine. Keeps
/// `last_offset` at the offset of the last command read, for the error report.
fn decode_loop(
    source: &mut dyn CommandSource,
    tx: &SyncSender<Chunk>,
    chunk: usize,
    stop: &AtomicBool,
    last_offset: &mut Option<u64>,
) -> Result<(), crate::error::SourceError> {
    let mut buf = Vec::with_capacity(chunk);
    while !stop.load(Ordering::Relaxed) {
        buf.clear();
        source.poll(&mut buf, chunk, SOURCE_POLL_WAIT)?;
        let Some(last) = buf.last() else {
            continue;
        };
        *last_offset = Some(last.source.offset());
        let read_at = Instant::now();
        let commands = buf
            .drain(..)
            .map(|inbound| Decoded {
                envelope: CommandEnvelope::from_json(&inbound.payload).ok(),
                inbound,
            })
            .collect();
        if tx.send(Chunk { read_at, commands }).is_err() {
            break; // the engine stopped
        }
    }
    Ok(())
}

/// Counts engine submissions not yet durable.
#[derive(Default)]
struct InFlight {
    n: Mutex<usize>,
    done: std::sync::Condvar,
}

impl InFlight {
    fn acquire(&self, max: usize) {
        let n = self.n.lock().unwrap_or_else(PoisonError::into_inner);
        let mut n = self
            .done
            .wait_while(n, |n| *n >= max.max(1))
            .unwrap_or_else(PoisonError::into_inner);
        *n += 1;
    }

    fn release(&self) {
        let mut n = self.n.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        self.done.notify_all();
    }
}

struct EngineCtx {
    snapshots: SnapshotQueue,
    activity: Arc<Activity>,
    in_flight: Arc<InFlight>,
    handle: CommitHandle,
    publisher: Arc<Publisher>,
    stats: Arc<PipelineStats>,
    failure: Arc<Failure>,
    stop: Arc<AtomicBool>,
    /// The embedded log, whose submissions are acknowledged as batches commit.
    log: Option<Arc<EmbeddedLog>>,
    opts: PipelineOptions,
}

/// What the engine accumulates until it hands a batch to the committer.
struct Batch {
    applied: Vec<AppliedCommand>,
    committed: Vec<CommittedCommand>,
    read_at: Option<Instant>,
    events: u64,
}

/// Engine stage: apply in order, submit batches, snapshot now and then. Stops when
/// the decode stage does or the pipeline failed; returns the engine.
fn engine_loop(mut engine: Engine, rx: Receiver<Chunk>, ctx: EngineCtx) -> Engine {
    let mut batch = Batch {
        applied: Vec::new(),
        committed: Vec::new(),
        read_at: None,
        events: 0,
    };
    let mut events_since_snapshot = 0u64;
    let mut scratch: Vec<Event> = Vec::new();
    let mut recycled: Arc<Mutex<Vec<Vec<AppliedCommand>>>> = Arc::default();
    loop {
        let chunk = match rx.try_recv() {
            Ok(c) => Some(c),
            Err(TryRecvError::Empty) => {
                // Nothing waiting: commit what we have before blocking.
                submit(&mut batch, &ctx, &mut recycled);
                if events_since_snapshot >= ctx.opts.snapshot_every_events
                    && snapshot(&engine, &ctx)
                {
                    events_since_snapshot = 0;
                }
                match rx.recv_timeout(ENGINE_IDLE_WAIT) {
                    Ok(c) => Some(c),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        if ctx.failure.is_failed() {
            ctx.stop.store(true, Ordering::SeqCst);
            break;
        }
        let Some(chunk) = chunk else { continue };
        batch.read_at.get_or_insert(chunk.read_at);
        let publish = ctx.publisher.has_subscribers();
        for d in chunk.commands {
            let tick_ts_ns = d
                .envelope
                .as_ref()
                .filter(|e| matches!(e.command, Command::Tick(_)))
                .map(|e| e.ts_ns);
            events_since_snapshot +=
                apply_decoded(&mut engine, d, &mut batch, &mut scratch, publish);
            if let Some(ts_ns) = tick_ts_ns {
                ctx.activity.ticked(ts_ns);
            }
            ctx.stats.applied.fetch_add(1, Ordering::Relaxed);
            if batch.applied.len() >= ctx.opts.max_batch_commands {
                submit(&mut batch, &ctx, &mut recycled);
            }
        }
        ctx.activity.touch();
    }
    if !ctx.failure.is_failed() {
        submit(&mut batch, &ctx, &mut recycled);
    }
    engine
}

/// Applies one decoded command as the next `cmd_seq` and adds it (and, when
/// `publish`, its committed form) to `batch`; returns how many events it produced.
fn apply_decoded(
    engine: &mut Engine,
    d: Decoded,
    batch: &mut Batch,
    scratch: &mut Vec<Event>,
    publish: bool,
) -> u64 {
    let seq = engine.last_seq() + 1;
    let last_ts = engine.last_ts_ns();
    scratch.clear();
    let (ts_ns, request_id) = match &d.envelope {
        Some(env) => {
            let ts = env.ts_ns.max(last_ts);
            engine.apply_request(seq, ts, env.idempotent_request_id(), &env.command, scratch);
            (ts, env.request_id.clone())
        }
        None => {
            engine.apply_json(seq, last_ts, &d.inbound.payload, scratch);
            (last_ts, None)
        }
    };
    // The decoded envelope goes to subscribers with the command (they need not
    // parse the payload again).
    let command = if publish { d.envelope } else { None };
    let events = scratch.len() as u64;
    batch.events += events;
    batch.applied.push(AppliedCommand {
        cmd_seq: seq,
        ts_ns,
        source: d.inbound.source,
        events: scratch.iter().map(Event::to_bytes).collect(),
        payload: if publish {
            d.inbound.payload.clone()
        } else {
            d.inbound.payload
        },
    });
    if publish {
        let payload = batch.applied.last().map(|a| a.payload.clone());
        batch.committed.push(CommittedCommand {
            cmd_seq: seq,
            ts_ns,
            first_event_seq: 0, // filled in once the ledger assigned it
            request_id,
            payload: payload.unwrap_or_default(),
            command,
            events: std::mem::take(scratch),
        });
    }
    events
}

/// Publishes a durable batch's `committed` commands (the batch `applied`, whose
/// first event got `first_event_seq`).
fn publish(
    publisher: &Publisher,
    mut committed: Vec<CommittedCommand>,
    applied: &[AppliedCommand],
    first_event_seq: u64,
) {
    // `committed` may start mid-batch (a subscriber arrived while it was built):
    // walk the whole batch for the event numbers.
    let mut next_event = first_event_seq;
    let mut cc = committed.iter_mut().peekable();
    for a in applied {
        if let Some(x) = cc.next_if(|x| x.cmd_seq == a.cmd_seq) {
            x.first_event_seq = next_event;
        }
        next_event += a.events.len() as u64;
    }
    let b: CommittedBatch = committed.into();
    publisher.publish(&b);
}

/// Hands a copy of the engine to the snapshot thread, which serializes and
/// stores it while the engine goes on: the engine thread pauses only for the copy
/// (`cargo bench --bench engine -- state`: a fraction of serializing). `false`
/// when the previous snapshot is still being made (try again later).
fn snapshot(engine: &Engine, ctx: &EngineCtx) -> bool {
    if engine.last_seq() == 0 {
        return true;
    }
    if ctx.snapshots.busy.swap(true, Ordering::AcqRel) {
        return false;
    }
    // Capacity one and not busy: never blocks. Fails only once the snapshot thread
    // is gone, which the pipeline's failure already says.
    let _ = ctx.snapshots.copies.try_send(engine.clone());
    true
}

/// The engine's end of the snapshot thread.
struct SnapshotQueue {
    /// Copies of the engine to snapshot (capacity one).
    copies: SyncSender<Engine>,
    /// Set while the snapshot thread holds a copy: no second one is made then.
    busy: Arc<AtomicBool>,
}

/// The snapshot thread: serializes each engine copy it gets and queues it to the
/// committer (which stores it after the batches before it); a failure to store
/// one fails the pipeline. Ends when the engine thread drops its sender.
fn spawn_snapshotter(
    handle: CommitHandle,
    failure: Arc<Failure>,
) -> Result<(SnapshotQueue, JoinHandle<()>), PipelineError> {
    let (tx, copies) = mpsc::sync_channel(1);
    let queue = SnapshotQueue {
        copies: tx,
        busy: Arc::new(AtomicBool::new(false)),
    };
    let busy = Arc::clone(&queue.busy);
    std::thread::Builder::new()
        .name("gpux-snapshot".into())
        .spawn(move || {
            for copy in copies {
                let cmd_seq = copy.last_seq();
                let bytes = copy.snapshot();
                drop(copy);
                let failed = Arc::clone(&failure);
                let report = move |r: Result<(), LedgerError>| {
                    if let Err(error) = r {
                        failed.record(PipelineError::Snapshot { cmd_seq, error });
                    }
                };
                match handle.snapshot_with(cmd_seq, bytes, report) {
                    Ok(()) => tracing::debug!(cmd_seq, "snapshot queued"),
                    Err(error) => failure.record(PipelineError::Snapshot { cmd_seq, error }),
                }
                busy.store(false, Ordering::Release);
            }
        })
        .map(|t| (queue, t))
        .map_err(|e| PipelineError::Spawn {
            thread: "snapshot",
            error: Arc::new(e),
        })
}

/// Hands the accumulated batch to the committer; its completion publishes it. A
/// failure to commit it fails the pipeline, naming the batch's `cmd_seq` range.
fn submit(batch: &mut Batch, ctx: &EngineCtx, recycled: &mut Arc<Mutex<Vec<Vec<AppliedCommand>>>>) {
    let (Some(first), Some(last)) = (batch.applied.first(), batch.applied.last()) else {
        return;
    };
    let (cmd_seq, last_cmd_seq) = (first.cmd_seq, last.cmd_seq);
    let spare = recycled
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop()
        .unwrap_or_default();
    let applied = std::mem::replace(&mut batch.applied, spare);
    let committed = std::mem::take(&mut batch.committed);
    let read_at = batch.read_at.take().unwrap_or_else(Instant::now);
    let events = std::mem::take(&mut batch.events);
    let publisher = Arc::clone(&ctx.publisher);
    let stats = Arc::clone(&ctx.stats);
    let failure = Arc::clone(&ctx.failure);
    let recycle = Arc::clone(recycled);
    let log = ctx.log.clone();
    ctx.in_flight.acquire(ctx.opts.max_batches_in_flight);
    let in_flight = Arc::clone(&ctx.in_flight);
    let sent = ctx
        .handle
        .submit_returning(applied, move |r, mut returned| {
            in_flight.release();
            match r {
                Ok(c) => {
                    let us = read_at.elapsed().as_micros() as u64;
                    stats
                        .read_to_durable
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record_us(us);
                    stats
                        .durable_seq
                        .store(c.assigned.last_cmd_seq, Ordering::Release);
                    stats.durable_events.fetch_add(events, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    if !committed.is_empty() {
                        let first_event_seq = c.assigned.first_event_seq;
                        publish(&publisher, committed, &returned, first_event_seq);
                    }
                    // Published first, so a submitter hearing `Ok` finds the
                    // command in the feed.
                    if let (Some(log), Some(last)) = (&log, returned.last()) {
                        log.durable_through(last.source.offset());
                    }
                }
                Err(error) => failure.record(PipelineError::Commit {
                    cmd_seq,
                    last_cmd_seq,
                    error,
                }),
            }
            returned.clear();
            let mut pool = recycle.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < RECYCLED_BATCH_BUFFERS_MAX {
                pool.push(returned);
            }
        });
    if let Err(error) = sent {
        // The committer is gone; its completion will not run.
        ctx.in_flight.release();
        ctx.failure.record(PipelineError::Commit {
            cmd_seq,
            last_cmd_seq,
            error,
        });
    }
}
