//! Group commit: one thread owns the [`Ledger`] and turns whatever is queued into one
//! synced write.
//!
//! Owns [`GroupCommitter`] and its cloneable [`CommitHandle`]. Submitters (the engine
//! thread with applied commands, gateway threads with inbox entries) send requests
//! into a bounded `sync_channel` (back-pressure, never unbounded memory). The committer
//! takes the first request, then everything already queued — up to
//! `max_commands_per_write` / `max_bytes_per_write`, optionally lingering
//! `max_wait` for more — validates and encodes it into one [`Stage`](crate::Stage),
//! writes it with one fsync, and only then completes each submission. While it
//! fsyncs, the next group queues up: batches form naturally from load.
//!
//! Two threads: the *stager* owns the ledger and validates, encodes and hashes the
//! next write while the *writer* fsyncs the previous one (one write in flight), so
//! on two cores the hashing overlaps the I/O. Writes are applied in order; if one
//! fails, every write staged after it fails too and the ledger is poisoned.
//!
//! Snapshots are ordered barriers: everything submitted before a snapshot request is
//! committed before the snapshot is written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{LedgerError, Result};
use crate::ledger::{Assigned, Ledger, LedgerReader};
use crate::stats::CommitStats;
use crate::store::Store;
use crate::store::WriteOps;
use crate::types::{AppliedCommand, BatchHeader, BatchReceipt};

/// Bounds of one group write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// Stop merging once a write holds this many commands.
    pub max_commands_per_write: usize,
    /// Stop merging once a write holds this many payload bytes.
    pub max_bytes_per_write: usize,
    /// After the first request, wait at most this long for more when the queue is
    /// empty (zero: write what is queued right away; batches still form while the
    /// previous write syncs).
    pub max_wait: Duration,
    /// Capacity of the submission queue (requests, not commands).
    pub queue_depth: usize,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        Self {
            // About 2.5 MB of typical records: measured best on the 2-core CI machine
            // (larger writes cost more page faults and cache misses than fsyncs save).
            max_commands_per_write: 4_096,
            max_bytes_per_write: 8 << 20,
            max_wait: Duration::ZERO,
            queue_depth: 1024,
        }
    }
}

/// What one append submission got once durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The batch (group write) it was committed in.
    pub batch: BatchHeader,
    /// The sequence numbers this submission's commands and events received.
    pub assigned: Assigned,
}

/// The function a submission is completed with: its result and what the submitter
/// handed over (`R`: the commands of an append, so their buffers can be reused).
type CompletionFn<T, R> = Box<dyn FnOnce(Result<T>, R) + Send>;

/// Calls its function exactly once: with the result, or with
/// [`LedgerError::CommitterStopped`] if dropped unanswered.
struct Completion<T, R: Default = ()> {
    f: Option<CompletionFn<T, R>>,
}

impl<T> Completion<T> {
    fn new(f: impl FnOnce(Result<T>) + Send + 'static) -> Self {
        Self::returning(move |r, ()| f(r))
    }
}

impl<T, R: Default> Completion<T, R> {
    fn returning(f: impl FnOnce(Result<T>, R) + Send + 'static) -> Self {
        Self {
            f: Some(Box::new(f)),
        }
    }

    fn complete(mut self, r: Result<T>, returned: R) {
        if let Some(f) = self.f.take() {
            f(r, returned);
        }
    }
}

impl<T, R: Default> Drop for Completion<T, R> {
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            f(Err(LedgerError::CommitterStopped), R::default());
        }
    }
}

enum Request {
    Append {
        commands: Vec<AppliedCommand>,
        done: Completion<Committed, Vec<AppliedCommand>>,
    },
    Journal {
        payloads: Vec<Vec<u8>>,
        done: Completion<Vec<u64>>,
    },
    Snapshot {
        cmd_seq: u64,
        bytes: Vec<u8>,
        done: Completion<()>,
    },
    Shutdown,
}

impl Request {
    /// (commands, payload bytes) it adds to a write.
    fn weight(&self) -> (usize, usize) {
        match self {
            Request::Append { commands, .. } => (
                commands.len(),
                commands
                    .iter()
                    .map(|c| c.payload.len() + c.events.iter().map(Vec::len).sum::<usize>())
                    .sum(),
            ),
            Request::Journal { payloads, .. } => (0, payloads.iter().map(Vec::len).sum()),
            Request::Snapshot { .. } | Request::Shutdown => (0, 0),
        }
    }

    /// Drops the request without calling its completion.
    fn defuse(self) {
        match self {
            Request::Append { mut done, .. } => drop(done.f.take()),
            Request::Journal { mut done, .. } => drop(done.f.take()),
            Request::Snapshot { mut done, .. } => drop(done.f.take()),
            Request::Shutdown => {}
        }
    }

    fn is_barrier(&self) -> bool {
        matches!(self, Request::Snapshot { .. } | Request::Shutdown)
    }
}

/// A result that arrives once the submission is durable (or failed).
#[derive(Debug)]
pub struct Pending<T> {
    rx: Receiver<Result<T>>,
}

impl<T> Pending<T> {
    /// Blocks until the result is known.
    pub fn wait(self) -> Result<T> {
        self.rx.recv().unwrap_or(Err(LedgerError::CommitterStopped))
    }

    /// The result if it is already known.
    pub fn try_get(&self) -> Option<Result<T>> {
        self.rx.try_recv().ok()
    }
}

fn pending<T: Send + 'static>() -> (Completion<T>, Pending<T>) {
    let (tx, rx) = mpsc::sync_channel(1);
    (
        Completion::new(move |r| {
            let _ = tx.send(r);
        }),
        Pending { rx },
    )
}

/// A cloneable submission handle to a [`GroupCommitter`].
#[derive(Clone)]
pub struct CommitHandle {
    tx: SyncSender<Request>,
}

impl std::fmt::Debug for CommitHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitHandle")
    }
}

impl CommitHandle {
    fn send(&self, r: Request) -> Result<()> {
        self.tx.send(r).map_err(|e| {
            // The caller hears it from the returned error, not from the completion too.
            e.0.defuse();
            LedgerError::CommitterStopped
        })
    }

    /// Submits applied commands (consecutive, continuing what was submitted before);
    /// the result arrives once they are durable. Blocks while the queue is full.
    pub fn submit(&self, commands: Vec<AppliedCommand>) -> Result<Pending<Committed>> {
        let (done, p) = pending();
        self.send(Request::Append {
            commands,
            done: Completion::returning(move |r, _| done.complete(r, ())),
        })?;
        Ok(p)
    }

    /// Like [`CommitHandle::submit`], calling `f` (on the committer thread: keep it
    /// short) once durable. `f` is called exactly once, also if the committer stops.
    pub fn submit_with(
        &self,
        commands: Vec<AppliedCommand>,
        f: impl FnOnce(Result<Committed>) + Send + 'static,
    ) -> Result<()> {
        self.submit_returning(commands, move |r, _| f(r))
    }

    /// Like [`CommitHandle::submit_with`], also handing the submitted commands back to
    /// `f` (empty if the committer stopped before taking them), so the submitter can
    /// reuse their buffers instead of the committer thread freeing them: with one
    /// allocator arena per thread, allocating on one thread and freeing on another is
    /// what costs most in a producer/consumer pipeline.
    pub fn submit_returning(
        &self,
        commands: Vec<AppliedCommand>,
        f: impl FnOnce(Result<Committed>, Vec<AppliedCommand>) + Send + 'static,
    ) -> Result<()> {
        self.send(Request::Append {
            commands,
            done: Completion::returning(f),
        })
    }

    /// Journals commands into the embedded command log; the result (their inbox seqs)
    /// arrives once durable. Shares fsyncs with appends.
    pub fn journal(&self, payloads: Vec<Vec<u8>>) -> Result<Pending<Vec<u64>>> {
        let (done, p) = pending();
        self.send(Request::Journal { payloads, done })?;
        Ok(p)
    }

    /// Like [`CommitHandle::journal`] with a callback.
    pub fn journal_with(
        &self,
        payloads: Vec<Vec<u8>>,
        f: impl FnOnce(Result<Vec<u64>>) + Send + 'static,
    ) -> Result<()> {
        self.send(Request::Journal {
            payloads,
            done: Completion::new(f),
        })
    }

    /// Like [`CommitHandle::journal_with`] but never blocks: when the submission
    /// queue is full it returns `Ok(false)` at once and `f` is not called (the
    /// caller answers "overloaded, retry" instead of stalling its thread).
    pub fn try_journal_with(
        &self,
        payloads: Vec<Vec<u8>>,
        f: impl FnOnce(Result<Vec<u64>>) + Send + 'static,
    ) -> Result<bool> {
        match self.tx.try_send(Request::Journal {
            payloads,
            done: Completion::new(f),
        }) {
            Ok(()) => Ok(true),
            Err(mpsc::TrySendError::Full(r)) => {
                r.defuse();
                Ok(false)
            }
            Err(mpsc::TrySendError::Disconnected(r)) => {
                r.defuse();
                Err(LedgerError::CommitterStopped)
            }
        }
    }

    /// Stores a snapshot after everything submitted before it is committed.
    pub fn snapshot(&self, cmd_seq: u64, bytes: Vec<u8>) -> Result<Pending<()>> {
        let (done, p) = pending();
        self.send(Request::Snapshot {
            cmd_seq,
            bytes,
            done,
        })?;
        Ok(p)
    }

    /// Like [`CommitHandle::snapshot`], calling `f` (on the committer thread: keep it
    /// short) once it is stored or has failed. `f` is called exactly once, also if
    /// the committer stops; not at all when this returns `Err`.
    pub fn snapshot_with(
        &self,
        cmd_seq: u64,
        bytes: Vec<u8>,
        f: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.send(Request::Snapshot {
            cmd_seq,
            bytes,
            done: Completion::new(f),
        })
    }
}

/// The group-commit thread and its handle. Dropping it shuts the thread down after it
/// has committed everything queued.
pub struct GroupCommitter<S: Store> {
    handle: CommitHandle,
    thread: Option<JoinHandle<Ledger<S>>>,
    stats: Arc<Mutex<CommitStats>>,
    reader: LedgerReader<S>,
}

impl<S: Store> GroupCommitter<S> {
    /// Starts the committer thread, which owns `ledger` until
    /// [`GroupCommitter::shutdown`].
    pub fn spawn(ledger: Ledger<S>, opts: GroupCommitOptions) -> Result<Self> {
        assert!(opts.queue_depth >= 1 && opts.max_commands_per_write >= 1);
        let (tx, rx) = mpsc::sync_channel(opts.queue_depth);
        let stats = Arc::new(Mutex::new(CommitStats::default()));
        let reader = ledger.reader();
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("gpux-ledger-commit".into())
            .spawn(move || run(ledger, rx, opts, thread_stats))
            .map_err(|e| crate::StoreError::new(format!("spawning committer: {e}")))?;
        Ok(Self {
            handle: CommitHandle { tx },
            thread: Some(thread),
            stats,
            reader,
        })
    }

    /// A cloneable submission handle.
    pub fn handle(&self) -> CommitHandle {
        self.handle.clone()
    }

    /// See [`CommitHandle::submit`].
    pub fn submit(&self, commands: Vec<AppliedCommand>) -> Result<Pending<Committed>> {
        self.handle.submit(commands)
    }

    /// See [`CommitHandle::journal`].
    pub fn journal(&self, payloads: Vec<Vec<u8>>) -> Result<Pending<Vec<u64>>> {
        self.handle.journal(payloads)
    }

    /// See [`CommitHandle::snapshot`].
    pub fn snapshot(&self, cmd_seq: u64, bytes: Vec<u8>) -> Result<Pending<()>> {
        self.handle.snapshot(cmd_seq, bytes)
    }

    /// A read handle on the ledger (reads see only committed batches).
    pub fn reader(&self) -> LedgerReader<S> {
        self.reader.clone()
    }

    /// Counters and latency so far.
    pub fn stats(&self) -> CommitStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Commits everything queued before this call, stops the thread and returns the
    /// ledger (e.g. to write a final snapshot) and the statistics. Requests submitted
    /// later through other handles fail with [`LedgerError::CommitterStopped`].
    pub fn shutdown(mut self) -> Result<(Ledger<S>, CommitStats)> {
        let ledger = self.stop()?;
        Ok((ledger, self.stats()))
    }

    fn stop(&mut self) -> Result<Ledger<S>> {
        let thread = self.thread.take().ok_or(LedgerError::CommitterStopped)?;
        let _ = self.handle.tx.send(Request::Shutdown);
        match thread.join() {
            Ok(ledger) => Ok(ledger),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl<S: Store> Drop for GroupCommitter<S> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.handle.tx.send(Request::Shutdown);
            let _ = thread.join();
        }
    }
}

enum Waiter {
    Append(
        Completion<Committed, Vec<AppliedCommand>>,
        Assigned,
        Vec<AppliedCommand>,
    ),
    Journal(Completion<Vec<u64>>, Vec<u64>),
    Snapshot(Completion<()>),
}

/// One synced write handed from the stager to the writer thread.
struct Job {
    ops: WriteOps,
    /// A snapshot to encode into `ops` when its turn comes.
    snapshot: Option<SnapshotJob>,
    receipt: Option<BatchReceipt>,
    waiters: Vec<Waiter>,
    submissions: u64,
    commands: u64,
    events: u64,
    journaled: u64,
}

/// A snapshot of the state after `cmd_seq`; `event_seq` is its last event when the
/// stager knew it (a snapshot at the head), else the writer reads it.
struct SnapshotJob {
    cmd_seq: u64,
    event_seq: Option<u64>,
    bytes: Vec<u8>,
}

/// The stager: owns the ledger, validates and encodes submissions (including the
/// chain hash) into the next write while the writer thread syncs the previous one.
struct Stager<S: Store> {
    ledger: Ledger<S>,
    stage: Option<crate::ledger::Stage>,
    waiters: Vec<Waiter>,
    submissions: u64,
    writer: SyncSender<Job>,
    recycled: Receiver<WriteOps>,
    failed: Arc<AtomicBool>,
}

impl<S: Store> Stager<S> {
    /// Notices a failure reported by the writer: poisons the ledger (once).
    fn check_failed(&mut self) {
        if self.failed.load(Ordering::Acquire) && !self.ledger.is_poisoned() {
            self.ledger.poison();
        }
    }

    fn stage_mut(&mut self) -> Result<&mut crate::ledger::Stage> {
        self.check_failed();
        if self.stage.is_none() {
            while let Ok(ops) = self.recycled.try_recv() {
                self.ledger.recycle(ops);
            }
            self.stage = Some(self.ledger.begin()?);
        }
        Ok(self.stage.as_mut().expect("just set"))
    }

    fn add(&mut self, req: Request) {
        match req {
            Request::Append { commands, done } => {
                let r = match self.stage_mut() {
                    Err(e) => Err(e),
                    Ok(_) => {
                        let stage = self.stage.as_mut().expect("staged");
                        self.ledger.stage_append(stage, &commands)
                    }
                };
                match r {
                    Ok(a) => {
                        self.submissions += 1;
                        self.waiters.push(Waiter::Append(done, a, commands));
                    }
                    Err(e) => done.complete(Err(e), commands),
                }
            }
            Request::Journal { payloads, done } => {
                let r = match self.stage_mut() {
                    Err(e) => Err(e),
                    Ok(_) => {
                        let stage = self.stage.as_mut().expect("staged");
                        self.ledger.stage_journal(stage, &payloads)
                    }
                };
                match r {
                    Ok(seqs) => {
                        self.submissions += 1;
                        self.waiters.push(Waiter::Journal(done, seqs));
                    }
                    Err(e) => done.complete(Err(e), ()),
                }
            }
            Request::Snapshot {
                cmd_seq,
                bytes,
                done,
            } => {
                // Ordered after everything before it: the writer writes jobs in order,
                // and finds the last event of a snapshot below the head (taken while
                // later batches were staged) only once the batches before are written.
                self.flush();
                self.check_failed();
                match self.ledger.check_snapshot(cmd_seq, &bytes) {
                    Err(e) => done.complete(Err(e), ()),
                    Ok(event_seq) => self.send(Job {
                        ops: WriteOps::new(),
                        snapshot: Some(SnapshotJob {
                            cmd_seq,
                            event_seq,
                            bytes,
                        }),
                        receipt: None,
                        waiters: vec![Waiter::Snapshot(done)],
                        submissions: 0,
                        commands: 0,
                        events: 0,
                        journaled: 0,
                    }),
                }
            }
            Request::Shutdown => self.flush(),
        }
    }

    /// Seals the stage and hands it to the writer; the ledger's in-memory head moves
    /// on at once so the next stage can be built while this one is written.
    fn flush(&mut self) {
        let Some(stage) = self.stage.take() else {
            return;
        };
        let (commands, events) = (stage.commands(), stage.events());
        let waiters = std::mem::take(&mut self.waiters);
        let submissions = std::mem::take(&mut self.submissions);
        let journaled = waiters
            .iter()
            .map(|w| match w {
                Waiter::Journal(_, s) => s.len() as u64,
                _ => 0,
            })
            .sum();
        if stage.is_empty() {
            // Only empty journals: nothing to write, nothing to wait for.
            for w in waiters {
                if let Waiter::Journal(done, seqs) = w {
                    done.complete(Ok(seqs), ());
                }
            }
            return;
        }
        match self.ledger.seal(stage) {
            Err(e) => fail_all(waiters, &e),
            Ok(mut sealed) => {
                let ops = std::mem::take(&mut sealed.ops);
                let receipt = sealed.receipt;
                self.ledger.advance(sealed);
                self.send(Job {
                    ops,
                    snapshot: None,
                    receipt,
                    waiters,
                    submissions,
                    commands,
                    events,
                    journaled,
                });
            }
        }
    }

    fn send(&mut self, job: Job) {
        if let Err(e) = self.writer.send(job) {
            // The writer is gone (it panicked): nothing more can be made durable.
            fail_all(e.0.waiters, &LedgerError::CommitterStopped);
            self.failed.store(true, Ordering::Release);
        }
    }
}

fn fail_all(waiters: Vec<Waiter>, e: &LedgerError) {
    for w in waiters {
        match w {
            Waiter::Append(done, _, commands) => done.complete(Err(e.clone()), commands),
            Waiter::Journal(done, _) => done.complete(Err(e.clone()), ()),
            Waiter::Snapshot(done) => done.complete(Err(e.clone()), ()),
        }
    }
}

/// The writer thread: writes each job with one fsync, in order, then completes its
/// submissions. After a failed write it writes nothing more: later jobs were staged
/// on top of the failed one.
fn write_jobs<S: Store>(
    store: Arc<S>,
    jobs: Receiver<Job>,
    recycle: mpsc::Sender<WriteOps>,
    failed: Arc<AtomicBool>,
    stats: Arc<Mutex<CommitStats>>,
) {
    for mut job in jobs {
        if failed.load(Ordering::Acquire) {
            fail_all(job.waiters, &LedgerError::Poisoned);
            continue;
        }
        if let Some(s) = job.snapshot.take() {
            match crate::ledger::snapshot_ops(&*store, s.cmd_seq, s.event_seq, &s.bytes) {
                Ok(ops) => job.ops = ops,
                Err(e) => {
                    fail_all(job.waiters, &e);
                    continue;
                }
            }
        }
        let t0 = Instant::now();
        let r = store.write(&job.ops, true);
        let us = t0.elapsed().as_micros() as u64;
        {
            let mut st = stats.lock().unwrap_or_else(PoisonError::into_inner);
            st.writes += 1;
            st.submissions += job.submissions;
            match &r {
                Ok(()) => {
                    st.batches += u64::from(job.receipt.is_some());
                    st.commands += job.commands;
                    st.events += job.events;
                    st.journaled += job.journaled;
                    st.bytes += job.ops.bytes() as u64;
                    st.commit_latency.record_us(us);
                }
                Err(_) => st.failed_writes += 1,
            }
        }
        match r {
            Err(e) => {
                tracing::error!(target: "gpux_ledger", error = %e, "group write failed; ledger poisoned");
                // This write's submitters hear of the failure before the flag is
                // raised: the stager fails later submissions as `Poisoned` as soon
                // as it sees the flag, and the first failure anyone hears must be
                // the write that failed, not a consequence of it.
                fail_all(job.waiters, &LedgerError::Store(e));
                failed.store(true, Ordering::Release);
            }
            Ok(()) => {
                for w in job.waiters {
                    match w {
                        Waiter::Append(done, assigned, commands) => {
                            let batch = job.receipt.expect("appends make a batch").header;
                            done.complete(Ok(Committed { batch, assigned }), commands);
                        }
                        Waiter::Journal(done, seqs) => done.complete(Ok(seqs), ()),
                        Waiter::Snapshot(done) => done.complete(Ok(()), ()),
                    }
                }
            }
        }
        let _ = recycle.send(job.ops);
    }
}

/// Stages `first` and the requests after it until a barrier, the bounds of one
/// write or `opts.max_wait`; returns the request that did not fit (it starts the
/// next write) and whether shutdown was asked for.
fn gather<S: Store>(
    c: &mut Stager<S>,
    rx: &Receiver<Request>,
    first: Request,
    opts: &GroupCommitOptions,
) -> (Option<Request>, bool) {
    let deadline = Instant::now() + opts.max_wait;
    let (mut cmds, mut bytes) = first.weight();
    let mut barrier = first.is_barrier();
    let mut shutdown = matches!(first, Request::Shutdown);
    c.add(first);
    while !barrier && cmds < opts.max_commands_per_write && bytes < opts.max_bytes_per_write {
        let next = match rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match rx.recv_timeout(deadline - now) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        let (nc, nb) = next.weight();
        if cmds + nc > opts.max_commands_per_write || bytes + nb > opts.max_bytes_per_write {
            return (Some(next), shutdown);
        }
        cmds += nc;
        bytes += nb;
        barrier = next.is_barrier();
        shutdown = matches!(next, Request::Shutdown);
        c.add(next);
    }
    (None, shutdown)
}

fn run<S: Store>(
    ledger: Ledger<S>,
    rx: Receiver<Request>,
    opts: GroupCommitOptions,
    stats: Arc<Mutex<CommitStats>>,
) -> Ledger<S> {
    // One write in flight while the next is staged.
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(1);
    let (recycle_tx, recycle_rx) = mpsc::channel();
    let failed = Arc::new(AtomicBool::new(false));
    let store = ledger.shared_store();
    let writer_failed = Arc::clone(&failed);
    let writer = std::thread::Builder::new()
        .name("gpux-ledger-write".into())
        .spawn(move || write_jobs(store, job_rx, recycle_tx, writer_failed, stats));
    let writer = match writer {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(target: "gpux_ledger", error = %e, "cannot spawn the ledger writer thread");
            failed.store(true, Ordering::Release);
            None
        }
    };
    let mut c = Stager {
        ledger,
        stage: None,
        waiters: Vec::new(),
        submissions: 0,
        writer: job_tx,
        recycled: recycle_rx,
        failed,
    };
    let mut carry: Option<Request> = None;
    loop {
        let first = match carry.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let (rest, shutdown) = gather(&mut c, &rx, first, &opts);
        carry = rest;
        c.flush();
        if shutdown {
            break;
        }
    }
    // Anything still queued is answered with CommitterStopped as it is dropped.
    drop(carry);
    drop(rx);
    let Stager {
        mut ledger,
        writer: job_tx,
        failed,
        ..
    } = c;
    drop(job_tx);
    if let Some(w) = writer {
        if let Err(panic) = w.join() {
            std::panic::resume_unwind(panic);
        }
    }
    if failed.load(Ordering::Acquire) && !ledger.is_poisoned() {
        ledger.poison();
    }
    ledger
}
