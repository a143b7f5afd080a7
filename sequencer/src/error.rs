//! The sequencer's errors: what a submitter, a feed follower, a command source and
//! the pipeline can be told. Submit and feed errors have a stable shape the gateway
//! maps to HTTP statuses; [`PipelineError`] is why an exchange stopped, naming the
//! `cmd_seq` (or source offset) it stopped at, for the operator and the exit status.

use std::path::PathBuf;
use std::sync::Arc;

use gpux_ledger::{LedgerError, SourceKey};

use crate::recovery::RecoveryError;

/// Why a command could not be appended to the command log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The log's queue is full: retry later (HTTP 503 with `Retry-After`).
    #[error("the command log is overloaded; retry later")]
    Overloaded,
    /// The log is not reachable or has stopped (broker down, ledger failed, shutting
    /// down). The text is for logs, not for clients.
    #[error("the command log is unavailable: {0}")]
    Unavailable(String),
    /// The payload is larger than the log accepts.
    #[error("the command is larger than {max} bytes")]
    TooLarge {
        /// The limit in bytes.
        max: usize,
    },
}

/// Why a feed of committed commands stopped.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger's records do not fit together (a bug or corruption).
    #[error("ledger inconsistent at cmd_seq {cmd_seq}: {what}")]
    Inconsistent {
        /// Where.
        cmd_seq: u64,
        /// What.
        what: &'static str,
    },
    /// The source (pipeline or events topic) has stopped for good.
    #[error("the feed has stopped: {0}")]
    Stopped(String),
    /// The source cannot be reached now (the broker is away); the next call
    /// tries again.
    #[error("the feed's source is unavailable: {0}")]
    Unavailable(String),
}

/// Why a [`CommandSource`](crate::CommandSource) could not position itself or read
/// the log. Transient trouble (a broker away) is retried inside a source; this is
/// what it gives up on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Reading the embedded command log (commands left in the ledger's inbox)
    /// failed.
    #[error("reading the embedded command log: {0}")]
    Ledger(#[from] LedgerError),
    /// The Kafka client refused (it cannot be created, or the partition cannot be
    /// assigned at the offset). The text is librdkafka's.
    #[error("kafka: {0}")]
    Kafka(String),
}

/// Why an [`Exchange`](crate::Exchange) could not start or stopped by itself. The
/// first failure is kept; the process running the exchange should exit non-zero
/// with it and be restarted (a restart verifies the ledger and resumes after the
/// last durable command).
///
/// The message is complete (it includes the cause's), so the cause is a typed field
/// (`error`) rather than [`std::error::Error::source`]: printing the chain, as
/// `anyhow`'s `{:#}` does, would repeat it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The ledger could not be opened.
    #[error("cannot open the ledger in {}: {error}", dir.display())]
    Open {
        /// Its directory.
        dir: PathBuf,
        /// What the ledger said.
        error: LedgerError,
    },
    /// The engine could not be rebuilt from the ledger.
    #[error("cannot rebuild the engine from the ledger: {0}")]
    Recover(RecoveryError),
    /// The rebuilt engine does not end where the ledger does (a bug or corruption).
    #[error(
        "the rebuilt engine is at cmd_seq {engine_cmd_seq} but the ledger's head is {ledger_cmd_seq}"
    )]
    Diverged {
        /// Where the rebuilt engine is.
        engine_cmd_seq: u64,
        /// The ledger's last `cmd_seq`.
        ledger_cmd_seq: u64,
    },
    /// A ledger read or the committer's start failed while starting.
    #[error("ledger: {0}")]
    Ledger(LedgerError),
    /// The verification of what the ledger held at start (deferred to run beside
    /// the pipeline, [`VerifyOnOpen::Background`](gpux_ledger::VerifyOnOpen))
    /// found damage at or below that head: the pipeline stops; what it committed
    /// after the head is intact, the damage below needs an operator.
    #[error(
        "the ledger is damaged below the head it was opened at (cmd_seq {head_cmd_seq}): {error}"
    )]
    Verify {
        /// The head's last `cmd_seq` at start.
        head_cmd_seq: u64,
        /// The damage, named by its record.
        error: LedgerError,
    },
    /// A batch of applied commands could not be made durable: nothing from
    /// `cmd_seq` on is in the ledger, and the ledger refuses further writes.
    #[error("cannot commit cmd_seq {cmd_seq}..={last_cmd_seq} to the ledger: {error}")]
    Commit {
        /// The batch's first command.
        cmd_seq: u64,
        /// The batch's last command.
        last_cmd_seq: u64,
        /// What the ledger said.
        error: LedgerError,
    },
    /// The engine's snapshot at `cmd_seq` could not be stored.
    #[error("cannot store the snapshot at cmd_seq {cmd_seq}: {error}")]
    Snapshot {
        /// The snapshot's command.
        cmd_seq: u64,
        /// What the ledger said.
        error: LedgerError,
    },
    /// The command source failed for good.
    #[error("command source {key} failed (last offset read: {}): {error}", offset_text(*.last_offset))]
    Source {
        /// Which source.
        key: SourceKey,
        /// The offset of the last command read from it, if any.
        last_offset: Option<u64>,
        /// What the source said.
        error: SourceError,
    },
    /// A pipeline thread could not be started.
    #[error("cannot start the {thread} thread: {error}")]
    Spawn {
        /// Which thread.
        thread: &'static str,
        /// What the OS said.
        error: Arc<std::io::Error>,
    },
    /// A pipeline thread panicked (a bug).
    #[error("the {thread} thread panicked")]
    Panicked {
        /// Which thread.
        thread: &'static str,
    },
}

fn offset_text(offset: Option<u64>) -> String {
    offset.map_or_else(|| "none".to_owned(), |o| o.to_string())
}

impl PipelineError {
    /// The `cmd_seq` the failure happened at, when it has one: the first command
    /// of a batch that could not be committed, a snapshot's command.
    pub fn cmd_seq(&self) -> Option<u64> {
        match self {
            PipelineError::Commit { cmd_seq, .. } | PipelineError::Snapshot { cmd_seq, .. } => {
                Some(*cmd_seq)
            }
            PipelineError::Diverged { ledger_cmd_seq, .. } => Some(*ledger_cmd_seq),
            _ => None,
        }
    }

    /// The ledger's error, when the ledger is what failed.
    pub fn ledger_error(&self) -> Option<&LedgerError> {
        match self {
            PipelineError::Open { error, .. }
            | PipelineError::Verify { error, .. }
            | PipelineError::Commit { error, .. }
            | PipelineError::Snapshot { error, .. }
            | PipelineError::Source {
                error: SourceError::Ledger(error),
                ..
            } => Some(error),
            PipelineError::Ledger(e) => Some(e),
            _ => None,
        }
    }
}
