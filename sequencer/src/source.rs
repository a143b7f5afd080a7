//! Where the pipeline's commands come from: the [`CommandSource`] trait and the
//! embedded log's implementation ([`InboxSource`], reading the ledger's inbox).
//!
//! A source yields raw command payloads in log order, each with its [`Source`]
//! position; the pipeline stores the position of the last command of every batch in
//! the same write as its events, and on start asks the source to continue right
//! after it. Positions must be strictly increasing. A source that gives up returns a
//! typed [`SourceError`]; the pipeline stops with it (see
//! [`PipelineError::Source`](crate::PipelineError::Source)).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gpux_ledger::{LedgerReader, RocksStore, Source, SourceKey, Store};

use crate::error::SourceError;

/// One command as read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Its position in the log.
    pub source: Source,
    /// The command bytes as produced.
    pub payload: Vec<u8>,
}

/// A command log the pipeline consumes.
pub trait CommandSource: Send {
    /// Which consumed offset in the ledger belongs to this source.
    fn key(&self) -> SourceKey;

    /// Positions the source right after `last_consumed` (the stored consumed offset),
    /// or at the beginning of the log when `None`. Called once, before any `poll`.
    fn start_after(&mut self, last_consumed: Option<u64>) -> Result<(), SourceError>;

    /// Appends up to `max` next commands, in order, to `out`, waiting at most
    /// `timeout` for the first. Returning with nothing added is fine. Transient
    /// trouble (a broker away) is retried and logged inside; `Err` stops the pipeline.
    fn poll(
        &mut self,
        out: &mut Vec<Inbound>,
        max: usize,
        timeout: Duration,
    ) -> Result<(), SourceError>;
}

/// The embedded command log: the ledger's inbox column family (on any [`Store`];
/// RocksDB in production).
pub struct InboxSource<S: Store = RocksStore> {
    reader: LedgerReader<S>,
    signal: Arc<crate::submit::InboxSignal>,
    next: u64,
    stop: Arc<AtomicBool>,
}

impl<S: Store> InboxSource<S> {
    pub(crate) fn new(
        reader: LedgerReader<S>,
        signal: Arc<crate::submit::InboxSignal>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            reader,
            signal,
            next: 1,
            stop,
        }
    }
}

impl<S: Store> CommandSource for InboxSource<S> {
    fn key(&self) -> SourceKey {
        SourceKey::Embedded
    }

    fn start_after(&mut self, last_consumed: Option<u64>) -> Result<(), SourceError> {
        self.next = last_consumed.unwrap_or(0) + 1;
        Ok(())
    }

    fn poll(
        &mut self,
        out: &mut Vec<Inbound>,
        max: usize,
        timeout: Duration,
    ) -> Result<(), SourceError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if self.signal.wait_for(self.next, timeout) < self.next {
            return Ok(());
        }
        for (seq, payload) in self.reader.read_inbox(self.next, max)? {
            self.next = seq + 1;
            out.push(Inbound {
                source: Source::Embedded { seq },
                payload,
            });
        }
        Ok(())
    }
}
