//! The sequencer's errors: what a submitter, a feed follower and the pipeline can be
//! told, each with a stable shape the gateway maps to HTTP statuses.

use gpux_ledger::LedgerError;

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
