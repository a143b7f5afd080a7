//! The way into the command log: [`Submitter`], implemented by the embedded log
//! ([`EmbeddedSubmitter`], an in-memory queue in front of the pipeline) and by the
//! Kafka producer (`kafka` module).
//!
//! A submission is acknowledged (`done(Ok(()))`) only once it is durable: it will
//! take effect exactly once, in log order, even if the process crashes right
//! after. The Kafka log acknowledges when the broker holds the record (the command
//! is applied after); the embedded log when the ledger holds the command *applied*
//! (its batch is synced), so a command costs one durable write, not two. Its
//! effect is learnt from the feed (the committed command whose envelope carries
//! the submitter's `request_id`); with the embedded log it is published there
//! before the acknowledgement.
//!
//! The embedded queue ([`EmbeddedLog`]) is bounded ([`EMBEDDED_QUEUE_COMMANDS`],
//! [`EMBEDDED_QUEUE_BYTES`]): [`Submitter::submit`] is refused with
//! [`SubmitError::Overloaded`] when it is full, [`EmbeddedSubmitter::submit_many`]
//! waits for room. A command in the queue is not durable: if the pipeline fails
//! or the process dies first, its submitter hears `Unavailable` (or nothing) and
//! retries; idempotent requests make the retry safe.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use gpux_ledger::Source;

use crate::error::SubmitError;
use crate::source::Inbound;

/// Most bytes one command may have in the log (the engine refuses larger envelopes
/// as `malformed_command` anyway; the log refuses them outright).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Most commands the embedded log holds that the pipeline has not read yet: 16
/// of the engine's batches ([`BATCH_COMMANDS_MAX_DEFAULT`](crate::BATCH_COMMANDS_MAX_DEFAULT)),
/// about a quarter of a second of the pipeline's measured rate. A fuller queue
/// refuses [`Submitter::submit`] with [`SubmitError::Overloaded`] rather than let
/// clients wait behind it.
pub const EMBEDDED_QUEUE_COMMANDS: usize = 65_536;

/// Most payload bytes the embedded log holds that the pipeline has not read yet
/// (bounds memory when commands are large; ~1 KB commands fill the command bound
/// first).
pub const EMBEDDED_QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// Called once with the outcome of a submission.
pub type SubmitDone = Box<dyn FnOnce(Result<(), SubmitError>) + Send>;

/// Appends commands (`CommandEnvelope` JSON, see `docs/PROTOCOL.md`) to the log.
pub trait Submitter: Send + Sync {
    /// Appends `payload`; `done` is called exactly once, on some other thread, when it
    /// is durable in the log (`Ok`) or cannot be (`Err`). Never blocks for long: when
    /// the log is overloaded `done(Err(SubmitError::Overloaded))` is called at once.
    fn submit(&self, payload: Vec<u8>, done: SubmitDone);
}

/// One command accepted by the embedded log and not yet read by the pipeline.
struct Queued {
    seq: u64,
    payload: Vec<u8>,
    /// Called when this command is durable: set on the last command of a
    /// submission only (commands become durable in log order).
    done: Option<SubmitDone>,
}

#[derive(Default)]
struct LogState {
    /// Accepted, not yet read (in seq order).
    queued: VecDeque<Queued>,
    /// Payload bytes in `queued`.
    queued_bytes: usize,
    /// Read by the pipeline, waiting for their batch to be durable (seq order).
    awaiting: VecDeque<(u64, SubmitDone)>,
    /// The last seq given to a command (or taken by the log before, see
    /// [`EmbeddedLog::new`]).
    last_seq: u64,
    /// Set when the log takes no more commands: what submitters hear.
    closed: Option<SubmitError>,
    /// The reader should stop waiting (the pipeline is stopping).
    stopped: bool,
}

/// The embedded command log: a bounded in-memory queue from submitters to the
/// pipeline's decode stage, with each submission's acknowledgement held until the
/// pipeline reports its command durable ([`EmbeddedLog::durable_through`]).
/// Commands get dense, increasing seqs (their [`Source::Embedded`]
/// position), continuing after everything an earlier run took.
pub(crate) struct EmbeddedLog {
    state: Mutex<LogState>,
    /// Signalled when commands arrive or the log stops (the reader waits on it).
    arrived: Condvar,
    /// Signalled when the queue has room or the log closes (`submit_many` waits).
    room: Condvar,
}

impl EmbeddedLog {
    /// A log whose next command gets seq `last_seq + 1`.
    pub(crate) fn new(last_seq: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(LogState {
                last_seq,
                ..LogState::default()
            }),
            arrived: Condvar::new(),
            room: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `payloads` as one submission if they fit (or `wait` for room);
    /// `done` is called when the last of them is durable. Returns the seq range,
    /// or gives `done` back with the refusal.
    fn append(
        &self,
        payloads: Vec<Vec<u8>>,
        done: SubmitDone,
        wait: bool,
    ) -> Result<(u64, u64), (SubmitError, SubmitDone)> {
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        let n = payloads.len();
        let mut st = self.lock();
        loop {
            if let Some(e) = &st.closed {
                return Err((e.clone(), done));
            }
            let fits = st.queued.is_empty()
                || (st.queued.len() + n <= EMBEDDED_QUEUE_COMMANDS
                    && st.queued_bytes + bytes <= EMBEDDED_QUEUE_BYTES);
            if fits {
                break;
            }
            if !wait {
                return Err((SubmitError::Overloaded, done));
            }
            st = self.room.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        let first = st.last_seq + 1;
        let mut done = Some(done);
        for (i, payload) in payloads.into_iter().enumerate() {
            st.last_seq += 1;
            let seq = st.last_seq;
            st.queued.push_back(Queued {
                seq,
                payload,
                done: if i + 1 == n { done.take() } else { None },
            });
        }
        st.queued_bytes += bytes;
        let last = st.last_seq;
        drop(st);
        self.arrived.notify_all();
        if let Some(done) = done {
            done(Ok(())); // no payloads: nothing to wait for
        }
        Ok((first, last))
    }

    /// Moves up to `max` queued commands to `out`, waiting at most `timeout` for
    /// the first (returns early once the log is stopped).
    pub(crate) fn take(&self, out: &mut Vec<Inbound>, max: usize, timeout: Duration) {
        let st = self.lock();
        let (mut st, _) = self
            .arrived
            .wait_timeout_while(st, timeout, |s| s.queued.is_empty() && !s.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        let n = st.queued.len().min(max);
        if n == 0 {
            return;
        }
        let LogState {
            queued,
            queued_bytes,
            awaiting,
            ..
        } = &mut *st;
        for q in queued.drain(..n) {
            *queued_bytes -= q.payload.len();
            if let Some(done) = q.done {
                awaiting.push_back((q.seq, done));
            }
            out.push(Inbound {
                source: Source::Embedded { seq: q.seq },
                payload: q.payload,
            });
        }
        drop(st);
        self.room.notify_all();
    }

    /// Everything up to seq `through` is durable: acknowledges those submissions.
    pub(crate) fn durable_through(&self, through: u64) {
        let mut acked = Vec::new();
        {
            let mut st = self.lock();
            while st.awaiting.front().is_some_and(|(seq, _)| *seq <= through) {
                if let Some((_, done)) = st.awaiting.pop_front() {
                    acked.push(done);
                }
            }
        }
        for done in acked {
            done(Ok(()));
        }
    }

    /// Takes no more commands (new submissions hear `why`); what is queued stays
    /// for the pipeline to read.
    pub(crate) fn close(&self, why: SubmitError) {
        self.lock().closed.get_or_insert(why);
        self.room.notify_all();
    }

    /// Waits until the pipeline has read every queued command, or `timeout`
    /// passes; whether it did.
    pub(crate) fn wait_drained(&self, timeout: Duration) -> bool {
        let st = self.lock();
        let (st, _) = self
            .room
            .wait_timeout_while(st, timeout, |s| !s.queued.is_empty() && !s.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        st.queued.is_empty()
    }

    /// Wakes the reader now and later (the pipeline is stopping).
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.arrived.notify_all();
        self.room.notify_all();
    }

    /// Closes the log and answers every submission not yet durable with `why`
    /// (the pipeline failed or stopped: they will not be applied by this run).
    pub(crate) fn fail(&self, why: &SubmitError) {
        let (queued, awaiting) = {
            let mut st = self.lock();
            st.closed.get_or_insert_with(|| why.clone());
            st.stopped = true;
            st.queued_bytes = 0;
            (
                std::mem::take(&mut st.queued),
                std::mem::take(&mut st.awaiting),
            )
        };
        self.arrived.notify_all();
        self.room.notify_all();
        for done in queued.into_iter().filter_map(|q| q.done) {
            done(Err(why.clone()));
        }
        for (_, done) in awaiting {
            done(Err(why.clone()));
        }
    }

    /// The seq of the last command accepted.
    pub(crate) fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }
}

/// The embedded command log's submitter: appends to the in-memory queue the
/// pipeline reads; a submission is acknowledged when its command's batch is
/// durable in the ledger (one synced write per batch, shared by every command in
/// it).
#[derive(Clone)]
pub struct EmbeddedSubmitter {
    log: Arc<EmbeddedLog>,
}

impl std::fmt::Debug for EmbeddedSubmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedSubmitter")
    }
}

impl EmbeddedSubmitter {
    pub(crate) fn new(log: Arc<EmbeddedLog>) -> Self {
        Self { log }
    }

    /// Appends many commands as one submission; `done` gets their log sequence
    /// numbers once the last is durable (applied and committed). Blocks while the
    /// log's queue is full (batch producers such as `gpux apply` want
    /// back-pressure, not refusals).
    pub fn submit_many(
        &self,
        payloads: Vec<Vec<u8>>,
        done: impl FnOnce(Result<Vec<u64>, SubmitError>) + Send + 'static,
    ) {
        if payloads.iter().any(|p| p.len() > MAX_COMMAND_BYTES) {
            done(Err(SubmitError::TooLarge {
                max: MAX_COMMAND_BYTES,
            }));
            return;
        }
        if payloads.is_empty() {
            done(Ok(Vec::new()));
            return;
        }
        // The seqs are known once appended, and `done` runs after that.
        let seqs: Arc<Mutex<Vec<u64>>> = Arc::default();
        let to_done = Arc::clone(&seqs);
        let ack: SubmitDone = Box::new(move |r| {
            let seqs = std::mem::take(&mut *to_done.lock().unwrap_or_else(PoisonError::into_inner));
            done(r.map(|()| seqs));
        });
        // Held across the append, so `done` cannot read the seqs before they are set.
        let mut slot = seqs.lock().unwrap_or_else(PoisonError::into_inner);
        match self.log.append(payloads, ack, true) {
            Ok((first, last)) => *slot = (first..=last).collect(),
            Err((e, ack)) => {
                drop(slot);
                ack(Err(e));
            }
        }
    }

    /// The seq of the last command the log has accepted (this run's or, at start,
    /// the last an earlier run took): a re-run of `gpux apply` resumes after it.
    pub fn last_seq(&self) -> u64 {
        self.log.last_seq()
    }
}

impl Submitter for EmbeddedSubmitter {
    /// Never blocks: a full queue answers [`SubmitError::Overloaded`].
    fn submit(&self, payload: Vec<u8>, done: SubmitDone) {
        if payload.len() > MAX_COMMAND_BYTES {
            done(Err(SubmitError::TooLarge {
                max: MAX_COMMAND_BYTES,
            }));
            return;
        }
        if let Err((e, done)) = self.log.append(vec![payload], done, false) {
            done(Err(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn recorder() -> (SubmitDone, mpsc::Receiver<Result<(), SubmitError>>) {
        let (tx, rx) = mpsc::channel();
        (
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
            rx,
        )
    }

    #[test]
    fn seqs_continue_and_acks_wait_for_durability_in_order() {
        let log = EmbeddedLog::new(41);
        let (d1, r1) = recorder();
        let (d2, r2) = recorder();
        assert_eq!(
            log.append(vec![b"a".to_vec(), b"b".to_vec()], d1, false)
                .ok(),
            Some((42, 43))
        );
        assert_eq!(
            log.append(vec![b"c".to_vec()], d2, false).ok(),
            Some((44, 44))
        );
        let mut out = Vec::new();
        log.take(&mut out, 2, Duration::ZERO);
        let seqs: Vec<u64> = out.iter().map(|i| i.source.offset()).collect();
        assert_eq!(seqs, [42, 43]);
        // Read is not durable.
        assert!(r1.try_recv().is_err());
        log.durable_through(42);
        assert!(
            r1.try_recv().is_err(),
            "acknowledged before its last command"
        );
        log.take(&mut out, 10, Duration::ZERO);
        log.durable_through(44);
        assert_eq!(r1.try_recv(), Ok(Ok(())));
        assert_eq!(r2.try_recv(), Ok(Ok(())));
        assert_eq!(log.last_seq(), 44);
    }

    #[test]
    fn a_full_queue_refuses_submit_and_a_failure_answers_everything_waiting() {
        let log = EmbeddedLog::new(0);
        let big = vec![0u8; EMBEDDED_QUEUE_BYTES / 2];
        let (d1, r1) = recorder();
        let (d2, r2) = recorder();
        let (d3, _r3) = recorder();
        assert!(log.append(vec![big.clone()], d1, false).is_ok());
        assert!(log.append(vec![big.clone()], d2, false).is_ok());
        match log.append(vec![big], d3, false) {
            Err((SubmitError::Overloaded, _)) => {}
            other => panic!("{:?}", other.map_err(|(e, _)| e)),
        }
        let mut out = Vec::new();
        log.take(&mut out, 1, Duration::ZERO);
        assert_eq!(out.len(), 1);
        let why = SubmitError::Unavailable("the ledger failed".into());
        log.fail(&why);
        assert_eq!(r1.try_recv(), Ok(Err(why.clone())), "read, not durable");
        assert_eq!(r2.try_recv(), Ok(Err(why.clone())), "queued");
        let (d4, _r4) = recorder();
        match log.append(vec![b"x".to_vec()], d4, true) {
            Err((e, _)) => assert_eq!(e, why),
            Ok(_) => panic!("a failed log took a command"),
        }
    }

    #[test]
    fn a_closed_log_keeps_what_it_holds_for_the_reader() {
        let log = EmbeddedLog::new(0);
        let (d1, r1) = recorder();
        assert!(log.append(vec![b"a".to_vec()], d1, false).is_ok());
        log.close(SubmitError::Unavailable("stopping".into()));
        let (d2, _r2) = recorder();
        assert!(log.append(vec![b"b".to_vec()], d2, false).is_err());
        assert!(!log.wait_drained(Duration::ZERO));
        let mut out = Vec::new();
        log.take(&mut out, 10, Duration::ZERO);
        assert_eq!(out.len(), 1);
        assert!(log.wait_drained(Duration::ZERO));
        log.durable_through(1);
        assert_eq!(r1.try_recv(), Ok(Ok(())));
    }
}
