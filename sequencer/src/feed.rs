//! The committed-events feed: how the gateway, market data and the events-topic
//! publisher follow the ledger.
//!
//! Owns [`Publisher`] (in-process fan-out of committed batches, fed by the pipeline
//! only after the ledger has synced them) and [`LedgerFollower`], a [`Feed`] that
//! yields every committed command exactly once, in order, from any starting
//! sequence number. A follower reads the live publication when it keeps up and the
//! ledger when it does not: a subscriber that lags is dropped by the publisher (it
//! never slows the engine) and the follower transparently catches up from the ledger.
//! Publication never runs ahead of the ledger, so neither does any follower.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gpux_ledger::{LedgerReader, Store};

use crate::committed::{read_committed, CommittedBatch};
use crate::error::FeedError;

/// A source of committed commands, in order and without gaps.
pub trait Feed: Send {
    /// The next committed commands, contiguous with what this feed returned before
    /// (the first call starts at the feed's starting sequence number). Waits at most
    /// `timeout`; `Ok(None)` when nothing new was committed in that time.
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<CommittedBatch>, FeedError>;

    /// The `cmd_seq` the next returned command will have.
    fn next_seq(&self) -> u64;

    /// Whether this feed has returned everything that was committed when it
    /// started, so that a call returning nothing means "up to date". Always true
    /// for a feed that reads the ledger itself; a feed over a remote log (the
    /// events topic) may get nothing from one call while it has yet to fetch what
    /// the log already holds.
    fn reached_start(&self) -> bool {
        true
    }
}

/// In-process fan-out of committed batches to bounded subscriber queues.
///
/// [`Publisher::publish`] never blocks: a subscriber whose queue is full is dropped
/// (its receiver sees the disconnection) instead of slowing the caller.
#[derive(Default)]
pub struct Publisher {
    subscribers: Mutex<Vec<SyncSender<CommittedBatch>>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

impl Publisher {
    /// A publisher with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new subscription receiving every batch published from now on, until its
    /// queue of `capacity` batches overflows (then it is dropped).
    pub fn subscribe(&self, capacity: usize) -> Receiver<CommittedBatch> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        self.lock().push(tx);
        rx
    }

    /// How many subscriptions are live.
    pub fn subscriber_count(&self) -> usize {
        self.lock().len()
    }

    /// Whether anyone listens (the pipeline skips building batches when not).
    pub fn has_subscribers(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Hands `batch` to every subscriber that has room; drops the others.
    pub fn publish(&self, batch: &CommittedBatch) {
        self.lock()
            .retain(|tx| match tx.try_send(Arc::clone(batch)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SyncSender<CommittedBatch>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many batches a follower's live subscription buffers before it is dropped and
/// the follower falls back to reading the ledger.
pub const FOLLOWER_QUEUE_BATCHES: usize = 1024;

/// Most commands read from the ledger per catch-up step.
const CATCH_UP_COMMANDS: usize = 4096;

/// A [`Feed`] over a ledger being written by a pipeline in this process.
pub struct LedgerFollower<S: Store> {
    reader: LedgerReader<S>,
    publisher: Arc<Publisher>,
    live: Option<Receiver<CommittedBatch>>,
    queue_batches: usize,
    next_seq: u64,
}

impl<S: Store> LedgerFollower<S> {
    /// Follows from `next_seq` on (1 for everything).
    pub fn new(reader: LedgerReader<S>, publisher: Arc<Publisher>, next_seq: u64) -> Self {
        Self {
            reader,
            publisher,
            live: None,
            queue_batches: FOLLOWER_QUEUE_BATCHES,
            next_seq: next_seq.max(1),
        }
    }

    /// Sets how many live batches may wait unread before the publisher drops this
    /// follower (it then catches up from the ledger).
    pub fn with_queue_batches(mut self, batches: usize) -> Self {
        self.queue_batches = batches.max(1);
        self
    }

    /// Whatever the ledger holds from `next_seq` on (up to one step), or nothing.
    fn catch_up(&mut self) -> Result<Option<CommittedBatch>, FeedError> {
        let got = read_committed(&self.reader, self.next_seq, CATCH_UP_COMMANDS)?;
        Ok(self.accept(got.into()))
    }

    /// Returns the part of `batch` at or after `next_seq`, if it continues the feed.
    fn accept(&mut self, batch: CommittedBatch) -> Option<CommittedBatch> {
        let first = batch.first()?.cmd_seq;
        let last = batch.last()?.cmd_seq;
        if last < self.next_seq || first > self.next_seq {
            return None;
        }
        let out: CommittedBatch = if first == self.next_seq {
            batch
        } else {
            batch[(self.next_seq - first) as usize..].into()
        };
        self.next_seq = last + 1;
        Some(out)
    }
}

impl<S: Store> Feed for LedgerFollower<S> {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<CommittedBatch>, FeedError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.live.is_none() {
                // Subscribe first, then read the ledger: anything committed after the
                // read is in the subscription, so nothing falls between the two.
                self.live = Some(self.publisher.subscribe(self.queue_batches));
                if let Some(b) = self.catch_up()? {
                    return Ok(Some(b));
                }
            }
            let rx = self.live.as_ref().expect("subscribed above");
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(batch) => {
                    let first = batch.first().map_or(self.next_seq, |c| c.cmd_seq);
                    if let Some(b) = self.accept(batch) {
                        return Ok(Some(b));
                    }
                    if first > self.next_seq {
                        // A gap between the ledger read and the live queue: read it.
                        if let Some(b) = self.catch_up()? {
                            return Ok(Some(b));
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    // A batch built before this follower subscribed is published
                    // without it; the ledger's head tells whether one was missed.
                    if self.reader.head()?.last_cmd_seq >= self.next_seq {
                        return self.catch_up();
                    }
                    return Ok(None);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Dropped for lagging, or the pipeline stopped: read the ledger.
                    self.live = None;
                    if let Some(b) = self.catch_up()? {
                        return Ok(Some(b));
                    }
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(5).min(timeout));
                }
            }
        }
    }

    fn next_seq(&self) -> u64 {
        self.next_seq
    }
}
