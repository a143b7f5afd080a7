//! The running exchange core: bounded stages from the command log into the ledger.
//!
//! ```text
//!  source ──► decode thread ──(bounded)──► engine thread ──► group committer ──► publish
//!  (inbox or    reads the log, parses       the one thread     stager + writer     on the
//!   Kafka)      JSON envelopes              touching the book  threads, fsync      commit
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
//! - A batch is published (in-process [`Publisher`]) only after its write is synced.
//! - Every queue is bounded: a slow disk slows the engine, which slows decoding,
//!   which stops reading the log. Nothing grows without limit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use gpux_engine::{CommandEnvelope, Engine, Event};
use gpux_ledger::{
    AppliedCommand, CommitHandle, GroupCommitOptions, GroupCommitter, LatencyHistogram, Ledger,
    LedgerOptions, LedgerReader, RocksStore, Store,
};

use crate::committed::{CommittedBatch, CommittedCommand};
use crate::feed::{LedgerFollower, Publisher};
use crate::source::{CommandSource, Inbound, InboxSource};
use crate::submit::{EmbeddedSubmitter, InboxSignal, Submitter};

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
    /// Ledger opening options.
    pub ledger: LedgerOptions,
    /// Group-commit bounds.
    pub commit: GroupCommitOptions,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            snapshot_every_events: 1_000_000,
            decode_chunk: 1024,
            decode_queue_chunks: 8,
            max_batch_commands: 4096,
            max_batches_in_flight: 3,
            ledger: LedgerOptions::default(),
            commit: GroupCommitOptions::default(),
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

/// A running exchange core: pipeline threads plus the ledger's committer, over a
/// ledger in any [`Store`] (RocksDB in production; tests may use another).
pub struct Exchange<S: Store = RocksStore> {
    committer: Option<GroupCommitter<S>>,
    reader: LedgerReader<S>,
    publisher: Arc<Publisher>,
    submitter: Option<Arc<dyn Submitter>>,
    embedded: Option<EmbeddedSubmitter>,
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    failed: Arc<Mutex<Option<String>>>,
    signal: Option<Arc<InboxSignal>>,
    decode: Option<JoinHandle<Result<()>>>,
    engine: Option<JoinHandle<Result<Engine>>>,
    hooks: Vec<Box<dyn FnOnce() + Send>>,
    dir: PathBuf,
}

impl<S: Store> std::fmt::Debug for Exchange<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").field("dir", &self.dir).finish()
    }
}

impl Exchange {
    /// Opens the ledger in `dir` (verifying it and rebuilding the engine from its
    /// latest good snapshot) and starts the pipeline on the embedded command log.
    pub fn start_embedded(dir: &Path, opts: PipelineOptions) -> Result<Self> {
        let ledger = open_ledger(dir, &opts)?;
        Self::start_embedded_on(ledger, dir, opts)
    }

    /// Opens the ledger in `dir` and starts the pipeline on `source`; `submitter`, if
    /// any, is what [`Exchange::submitter`] hands out (e.g. a Kafka producer).
    pub fn start_with_source(
        dir: &Path,
        opts: PipelineOptions,
        source: Box<dyn CommandSource>,
        submitter: Option<Arc<dyn Submitter>>,
    ) -> Result<Self> {
        let ledger = open_ledger(dir, &opts)?;
        let mut parts = Some(StartParts {
            source,
            submitter,
            embedded: None,
            signal: None,
        });
        Self::start(ledger, dir, opts, move |_, _, _| {
            parts.take().ok_or_else(|| anyhow!("started twice"))
        })
    }
}

fn open_ledger(dir: &Path, opts: &PipelineOptions) -> Result<Ledger<RocksStore>> {
    Ledger::open(dir, &opts.ledger)
        .with_context(|| format!("cannot open the ledger in {}", dir.display()))
}

impl<S: Store> Exchange<S> {
    /// Starts the pipeline on the embedded command log of an opened `ledger` (any
    /// store; `dir` is only reported by [`Exchange::dir`]), rebuilding the engine
    /// from its latest good snapshot.
    pub fn start_embedded_on(ledger: Ledger<S>, dir: &Path, opts: PipelineOptions) -> Result<Self> {
        Self::start(ledger, dir, opts, |reader, handle, stop| {
            let signal = InboxSignal::new(reader.inbox_last()?);
            let source = InboxSource::new(reader.clone(), Arc::clone(&signal), stop);
            let submitter = EmbeddedSubmitter::new(handle, Arc::clone(&signal));
            Ok(StartParts {
                source: Box::new(source),
                submitter: Some(Arc::new(submitter.clone())),
                embedded: Some(submitter),
                signal: Some(signal),
            })
        })
    }

    fn start(
        ledger: Ledger<S>,
        dir: &Path,
        opts: PipelineOptions,
        make: impl FnOnce(&LedgerReader<S>, CommitHandle, Arc<AtomicBool>) -> Result<StartParts>,
    ) -> Result<Self> {
        let started = Instant::now();
        let reader = ledger.reader();
        let engine = gpux_replay::rebuild::state_at(&reader, None, None)
            .context("cannot rebuild the engine from the ledger")?;
        if engine.last_seq() != ledger.head().last_cmd_seq {
            return Err(anyhow!(
                "the rebuilt engine is at cmd_seq {} but the ledger's head is {}",
                engine.last_seq(),
                ledger.head().last_cmd_seq
            ));
        }
        tracing::info!(
            cmd_seq = engine.last_seq(),
            ms = started.elapsed().as_millis() as u64,
            dir = %dir.display(),
            "engine recovered"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let committer = GroupCommitter::spawn(ledger, opts.commit.clone())
            .context("cannot start the group committer")?;
        let StartParts {
            mut source,
            submitter,
            embedded,
            signal,
        } = make(&reader, committer.handle(), Arc::clone(&stop))?;
        let consumed = reader.consumed_offset(&source.key())?;
        source
            .start_after(consumed)
            .with_context(|| format!("cannot position the source {}", source.key()))?;
        tracing::info!(source = %source.key(), last_consumed = ?consumed, "consuming");

        let publisher = Arc::new(Publisher::new());
        let stats = Arc::new(PipelineStats::default());
        stats
            .durable_seq
            .store(engine.last_seq(), Ordering::Relaxed);
        let failed = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::sync_channel(opts.decode_queue_chunks.max(1));

        let decode = {
            let stop = Arc::clone(&stop);
            let chunk = opts.decode_chunk.max(1);
            let failed = Arc::clone(&failed);
            std::thread::Builder::new()
                .name("gpux-decode".into())
                .spawn(move || {
                    let r = decode_loop(source, tx, chunk, &stop);
                    if let Err(e) = &r {
                        record_failure(&failed, format!("command source: {e:#}"));
                    }
                    r
                })?
        };
        let engine_thread = {
            let ctx = EngineCtx {
                in_flight: Arc::default(),
                handle: committer.handle(),
                publisher: Arc::clone(&publisher),
                stats: Arc::clone(&stats),
                failed: Arc::clone(&failed),
                stop: Arc::clone(&stop),
                opts: opts.clone(),
            };
            std::thread::Builder::new()
                .name("gpux-engine".into())
                .spawn(move || engine_loop(engine, rx, ctx))?
        };
        Ok(Self {
            committer: Some(committer),
            reader,
            publisher,
            submitter,
            embedded,
            stats,
            stop,
            failed,
            signal,
            decode: Some(decode),
            engine: Some(engine_thread),
            hooks: Vec::new(),
            dir: dir.to_path_buf(),
        })
    }

    /// Where commands go in (`None` when started on a source without a submitter).
    pub fn submitter(&self) -> Option<Arc<dyn Submitter>> {
        self.submitter.clone()
    }

    /// The embedded command log's submitter (batch journaling), when running on it.
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
    pub fn replica(&self) -> Result<Engine> {
        gpux_replay::rebuild::state_at(&self.reader, None, None)
            .context("cannot rebuild a replica from the ledger")
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<PipelineStats> {
        Arc::clone(&self.stats)
    }

    /// Why the pipeline stopped by itself, if it did (the ledger failed, the source
    /// failed for good). The process should exit non-zero and be restarted.
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The ledger's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Registers `f` to run at shutdown (or drop), before the pipeline stops: how
    /// companions that follow the ledger (the events-topic publisher) are stopped.
    pub fn on_shutdown(&mut self, f: impl FnOnce() + Send + 'static) {
        self.hooks.push(Box::new(f));
    }

    fn run_hooks(&mut self) {
        for f in self.hooks.drain(..) {
            f();
        }
    }

    /// Clean shutdown: stop reading the log, apply and commit what was read, take a
    /// snapshot at the head, close the ledger. Returns the engine's final state.
    pub fn shutdown(mut self) -> Result<Engine> {
        self.run_hooks();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(s) = &self.signal {
            s.wake();
        }
        let decoded = self
            .decode
            .take()
            .map(|t| t.join().map_err(|_| anyhow!("the decode thread panicked")));
        let engine = self
            .engine
            .take()
            .ok_or_else(|| anyhow!("already shut down"))?
            .join()
            .map_err(|_| anyhow!("the engine thread panicked"))??;
        let committer = self
            .committer
            .take()
            .ok_or_else(|| anyhow!("already shut down"))?;
        if engine.last_seq() > 0 {
            committer
                .snapshot(engine.last_seq(), engine.snapshot())?
                .wait()
                .context("cannot store the shutdown snapshot")?;
        }
        let (ledger, _) = committer.shutdown()?;
        ledger.close().context("cannot close the ledger")?;
        if let Some(r) = decoded {
            r??;
        }
        tracing::info!(cmd_seq = engine.last_seq(), "exchange stopped cleanly");
        Ok(engine)
    }
}

impl<S: Store> Drop for Exchange<S> {
    fn drop(&mut self) {
        // Not shut down explicitly: stop the threads; what was committed stays.
        self.run_hooks();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(s) = &self.signal {
            s.wake();
        }
        if let Some(t) = self.decode.take() {
            let _ = t.join();
        }
        if let Some(t) = self.engine.take() {
            let _ = t.join();
        }
    }
}

struct StartParts {
    source: Box<dyn CommandSource>,
    submitter: Option<Arc<dyn Submitter>>,
    embedded: Option<EmbeddedSubmitter>,
    signal: Option<Arc<InboxSignal>>,
}

fn record_failure(failed: &Mutex<Option<String>>, why: String) {
    tracing::error!(%why, "pipeline failed");
    let mut f = failed.lock().unwrap_or_else(PoisonError::into_inner);
    if f.is_none() {
        *f = Some(why);
    }
}

/// Decode stage: read the log, parse envelopes, hand chunks to the engine.
fn decode_loop(
    mut source: Box<dyn CommandSource>,
    tx: SyncSender<Chunk>,
    chunk: usize,
    stop: &AtomicBool,
) -> Result<()> {
    let mut buf = Vec::with_capacity(chunk);
    while !stop.load(Ordering::Relaxed) {
        buf.clear();
        source.poll(&mut buf, chunk, Duration::from_millis(50))?;
        if buf.is_empty() {
            continue;
        }
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
    in_flight: Arc<InFlight>,
    handle: CommitHandle,
    publisher: Arc<Publisher>,
    stats: Arc<PipelineStats>,
    failed: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    opts: PipelineOptions,
}

/// What the engine accumulates until it hands a batch to the committer.
struct Batch {
    applied: Vec<AppliedCommand>,
    committed: Vec<CommittedCommand>,
    read_at: Option<Instant>,
    events: u64,
}

/// Engine stage: apply in order, submit batches, snapshot now and then.
fn engine_loop(mut engine: Engine, rx: Receiver<Chunk>, ctx: EngineCtx) -> Result<Engine> {
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
                submit(&mut batch, &ctx, &mut recycled)?;
                if events_since_snapshot >= ctx.opts.snapshot_every_events {
                    snapshot(&engine, &ctx);
                    events_since_snapshot = 0;
                }
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(c) => Some(c),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        if ctx
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            ctx.stop.store(true, Ordering::SeqCst);
            break;
        }
        let Some(chunk) = chunk else { continue };
        batch.read_at.get_or_insert(chunk.read_at);
        let publish = ctx.publisher.has_subscribers();
        for d in chunk.commands {
            let seq = engine.last_seq() + 1;
            let last_ts = engine.last_ts_ns();
            scratch.clear();
            let (ts_ns, request_id) = match &d.envelope {
                Some(env) => {
                    let ts = env.ts_ns.max(last_ts);
                    engine.apply_request(
                        seq,
                        ts,
                        env.idempotent_request_id(),
                        &env.command,
                        &mut scratch,
                    );
                    (ts, env.request_id.clone())
                }
                None => {
                    engine.apply_json(seq, last_ts, &d.inbound.payload, &mut scratch);
                    (last_ts, None)
                }
            };
            batch.events += scratch.len() as u64;
            events_since_snapshot += scratch.len() as u64;
            batch.applied.push(AppliedCommand {
                cmd_seq: seq,
                ts_ns,
                source: d.inbound.source,
                events: scratch.iter().map(Event::to_json_vec).collect(),
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
                    events: std::mem::take(&mut scratch),
                });
            }
            ctx.stats.applied.fetch_add(1, Ordering::Relaxed);
            if batch.applied.len() >= ctx.opts.max_batch_commands {
                submit(&mut batch, &ctx, &mut recycled)?;
            }
        }
    }
    submit(&mut batch, &ctx, &mut recycled)?;
    Ok(engine)
}

fn snapshot(engine: &Engine, ctx: &EngineCtx) {
    let seq = engine.last_seq();
    if seq == 0 {
        return;
    }
    match ctx.handle.snapshot(seq, engine.snapshot()) {
        Ok(_pending) => tracing::debug!(cmd_seq = seq, "snapshot queued"),
        Err(e) => record_failure(&ctx.failed, format!("snapshot at {seq}: {e}")),
    }
}

/// Hands the accumulated batch to the committer; its completion publishes it.
fn submit(
    batch: &mut Batch,
    ctx: &EngineCtx,
    recycled: &mut Arc<Mutex<Vec<Vec<AppliedCommand>>>>,
) -> Result<()> {
    if batch.applied.is_empty() {
        return Ok(());
    }
    let spare = recycled
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop()
        .unwrap_or_default();
    let applied = std::mem::replace(&mut batch.applied, spare);
    let mut committed = std::mem::take(&mut batch.committed);
    let read_at = batch.read_at.take().unwrap_or_else(Instant::now);
    let events = std::mem::take(&mut batch.events);
    let publisher = Arc::clone(&ctx.publisher);
    let stats = Arc::clone(&ctx.stats);
    let failed = Arc::clone(&ctx.failed);
    let recycle = Arc::clone(recycled);
    ctx.in_flight.acquire(ctx.opts.max_batches_in_flight);
    let in_flight = Arc::clone(&ctx.in_flight);
    ctx.handle
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
                        // `committed` may start mid-batch (a subscriber arrived while
                        // it was built): walk the whole batch for the event numbers.
                        let mut next_event = c.assigned.first_event_seq;
                        let mut cc = committed.iter_mut().peekable();
                        for a in &returned {
                            if let Some(x) = cc.next_if(|x| x.cmd_seq == a.cmd_seq) {
                                x.first_event_seq = next_event;
                            }
                            next_event += a.events.len() as u64;
                        }
                        let b: CommittedBatch = committed.into();
                        publisher.publish(&b);
                    }
                }
                Err(e) => record_failure(&failed, format!("ledger commit: {e}")),
            }
            returned.clear();
            let mut pool = recycle.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < 4 {
                pool.push(returned);
            }
        })
        .map_err(|e| anyhow!("the ledger committer stopped: {e}"))
}
