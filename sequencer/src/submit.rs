//! The way into the command log: [`Submitter`], implemented by the embedded log
//! ([`EmbeddedSubmitter`], journaling into the ledger's inbox) and by the Kafka
//! producer (`kafka` module).
//!
//! A submission is durable in the log when `done(Ok(()))` is called: it will be
//! applied exactly once, in log order, even if the process crashes right after.
//! Its effect is learnt from the feed (the committed command whose envelope carries
//! the submitter's `request_id`).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use gpux_ledger::{CommitHandle, LedgerError};

use crate::error::{PipelineError, SubmitError};
use crate::pipeline::Failure;

/// Most bytes one command may have in the log (the engine refuses larger envelopes
/// as `malformed_command` anyway; the log refuses them outright).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Called once with the outcome of a submission.
pub type SubmitDone = Box<dyn FnOnce(Result<(), SubmitError>) + Send>;

/// Appends commands (`CommandEnvelope` JSON, see `docs/PROTOCOL.md`) to the log.
pub trait Submitter: Send + Sync {
    /// Appends `payload`; `done` is called exactly once, on some other thread, when it
    /// is durable in the log (`Ok`) or cannot be (`Err`). Never blocks for long: when
    /// the log is overloaded `done(Err(SubmitError::Overloaded))` is called at once.
    fn submit(&self, payload: Vec<u8>, done: SubmitDone);
}

/// Wakes the embedded source when the inbox grows, or for good when the pipeline
/// stops.
#[derive(Debug, Default)]
pub(crate) struct InboxSignal {
    state: Mutex<SignalState>,
    grown: Condvar,
}

#[derive(Debug, Default)]
struct SignalState {
    /// The inbox's last sequence number.
    last: u64,
    /// The pipeline is stopping: waits return at once.
    stopped: bool,
}

impl InboxSignal {
    pub(crate) fn new(last: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SignalState {
                last,
                stopped: false,
            }),
            grown: Condvar::new(),
        })
    }

    pub(crate) fn advance(&self, to: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if to > state.last {
            state.last = to;
            self.grown.notify_all();
        }
    }

    /// Waits until the inbox holds `seq`, the pipeline stops or `timeout` passes;
    /// returns the last seq.
    pub(crate) fn wait_for(&self, seq: u64, timeout: Duration) -> u64 {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, _) = self
            .grown
            .wait_timeout_while(state, timeout, |s| s.last < seq && !s.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        state.last
    }

    /// Wakes every waiter, now and later (shutdown). Before, a wake left the
    /// waiter asleep until its timeout, because the inbox had not grown: every
    /// stop took up to the source's poll wait.
    pub(crate) fn wake(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopped = true;
        self.grown.notify_all();
    }
}

/// The embedded command log: journals into the ledger's inbox through the group
/// committer, sharing its fsyncs with the engine's appends. A journal write that
/// fails fails the pipeline too ([`PipelineError::Journal`]): the ledger refuses
/// every write after a failed one, so nothing more could be applied.
#[derive(Clone)]
pub struct EmbeddedSubmitter {
    handle: CommitHandle,
    signal: Arc<InboxSignal>,
    failure: Arc<Failure>,
}

impl std::fmt::Debug for EmbeddedSubmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedSubmitter")
    }
}

impl EmbeddedSubmitter {
    pub(crate) fn new(
        handle: CommitHandle,
        signal: Arc<InboxSignal>,
        failure: Arc<Failure>,
    ) -> Self {
        Self {
            handle,
            signal,
            failure,
        }
    }

    /// Journals many commands at once (one request to the committer); `done` gets
    /// their inbox sequence numbers. Blocks while the committer's queue is full
    /// (batch producers such as `gpux apply` want back-pressure, not refusals).
    pub fn submit_many(
        &self,
        payloads: Vec<Vec<u8>>,
        done: impl FnOnce(Result<Vec<u64>, SubmitError>) + Send + 'static,
    ) {
        if let Some(p) = payloads.iter().find(|p| p.len() > MAX_COMMAND_BYTES) {
            let _ = p;
            done(Err(SubmitError::TooLarge {
                max: MAX_COMMAND_BYTES,
            }));
            return;
        }
        let signal = Arc::clone(&self.signal);
        let failure = Arc::clone(&self.failure);
        let done = Arc::new(Mutex::new(Some(done)));
        let done2 = Arc::clone(&done);
        let sent = self.handle.journal_with(payloads, move |r| {
            let r = match r {
                Ok(seqs) => {
                    if let Some(&last) = seqs.last() {
                        signal.advance(last);
                    }
                    Ok(seqs)
                }
                Err(e) => Err(unavailable(&failure, e)),
            };
            if let Some(f) = done2.lock().unwrap_or_else(PoisonError::into_inner).take() {
                f(r);
            }
        });
        if let Err(e) = sent {
            if let Some(f) = done.lock().unwrap_or_else(PoisonError::into_inner).take() {
                f(Err(unavailable(&self.failure, e)));
            }
        }
    }
}

/// What a submitter hears when the log cannot take a command; the pipeline fails
/// with it too.
fn unavailable(failure: &Failure, error: LedgerError) -> SubmitError {
    let e = SubmitError::Unavailable(error.to_string());
    failure.record(PipelineError::Journal { error });
    e
}

impl Submitter for EmbeddedSubmitter {
    /// Never blocks: a full committer queue answers [`SubmitError::Overloaded`].
    fn submit(&self, payload: Vec<u8>, done: SubmitDone) {
        if payload.len() > MAX_COMMAND_BYTES {
            done(Err(SubmitError::TooLarge {
                max: MAX_COMMAND_BYTES,
            }));
            return;
        }
        let signal = Arc::clone(&self.signal);
        let failure = Arc::clone(&self.failure);
        let done = Arc::new(Mutex::new(Some(done)));
        let done2 = Arc::clone(&done);
        let sent = self.handle.try_journal_with(vec![payload], move |r| {
            let r = match r {
                Ok(seqs) => {
                    if let Some(&last) = seqs.last() {
                        signal.advance(last);
                    }
                    Ok(())
                }
                Err(e) => Err(unavailable(&failure, e)),
            };
            if let Some(f) = done2.lock().unwrap_or_else(PoisonError::into_inner).take() {
                f(r);
            }
        });
        let refused = match sent {
            Ok(true) => None,
            Ok(false) => Some(SubmitError::Overloaded),
            Err(e) => Some(unavailable(&self.failure, e)),
        };
        if let Some(e) = refused {
            if let Some(f) = done.lock().unwrap_or_else(PoisonError::into_inner).take() {
                f(Err(e));
            }
        }
    }
}
