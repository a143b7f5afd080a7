//! Where the pipeline's commands come from: the [`CommandSource`] trait and the
//! embedded log's implementation ([`EmbeddedSource`]).
//!
//! A source yields raw command payloads in log order, each with its [`Source`]
//! position; the pipeline stores the position of the last command of every batch in
//! the same write as its events, and on start asks the source to continue right
//! after it. Positions must be strictly increasing: a record's offset, then, for a
//! Kafka batch record ([`kafka::batch`](crate::kafka::batch)), the command's index
//! in it, so a pipeline that stopped in the middle of a batch continues with the
//! next command of that batch. A source that gives up returns a
//! typed [`SourceError`]; the pipeline stops with it (see
//! [`PipelineError::Source`](crate::PipelineError::Source)).

use std::sync::Arc;
use std::time::Duration;

use gpux_ledger::{LedgerReader, Position, RocksStore, Source, SourceKey, Store};

use crate::error::SourceError;
use crate::submit::EmbeddedLog;

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

    /// Positions the source right after `last_consumed` (the position of the last
    /// command the ledger consumed from it), or at the beginning of the log when
    /// `None`. Called once, before any `poll`.
    fn start_after(&mut self, last_consumed: Option<Position>) -> Result<(), SourceError>;

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

/// The embedded command log: first any commands journaled in the ledger's inbox
/// and not yet consumed (`gpux bench pipeline --prejournal`, tests, and ledgers
/// from before the in-memory log), then the in-memory queue that
/// [`EmbeddedSubmitter`](crate::EmbeddedSubmitter)s append to. Positions are
/// [`Source::Embedded`] seqs: the queue's continue after the inbox's last.
pub struct EmbeddedSource<S: Store = RocksStore> {
    reader: LedgerReader<S>,
    log: Arc<EmbeddedLog>,
    /// The next seq to read.
    next: u64,
    /// The inbox's last seq when the pipeline started.
    inbox_last: u64,
}

impl<S: Store> EmbeddedSource<S> {
    pub(crate) fn new(reader: LedgerReader<S>, log: Arc<EmbeddedLog>, inbox_last: u64) -> Self {
        Self {
            reader,
            log,
            next: 1,
            inbox_last,
        }
    }
}

impl<S: Store> CommandSource for EmbeddedSource<S> {
    fn key(&self) -> SourceKey {
        SourceKey::Embedded
    }

    fn start_after(&mut self, last_consumed: Option<Position>) -> Result<(), SourceError> {
        self.next = last_consumed.map_or(0, |p| p.offset) + 1;
        Ok(())
    }

    fn poll(
        &mut self,
        out: &mut Vec<Inbound>,
        max: usize,
        timeout: Duration,
    ) -> Result<(), SourceError> {
        if self.next <= self.inbox_last {
            let want = max.min(usize::try_from(self.inbox_last - self.next + 1).unwrap_or(max));
            for (seq, payload) in self.reader.read_inbox(self.next, want)? {
                self.next = seq + 1;
                out.push(Inbound {
                    source: Source::Embedded { seq },
                    payload,
                });
            }
            return Ok(());
        }
        let before = out.len();
        self.log.take(out, max, timeout);
        if let Some(last) = out.get(before..).and_then(<[Inbound]>::last) {
            self.next = last.source.offset() + 1;
        }
        Ok(())
    }
}
