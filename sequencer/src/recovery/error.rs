//! Why recovery could not rebuild an engine: [`RecoveryError`], and
//! [`Divergence`], the exact place where re-running the ledger's commands did not
//! reproduce what the ledger stores.

use std::fmt;

use gpux_ledger::LedgerError;

/// Why an engine could not be rebuilt from a ledger.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecoveryError {
    /// A ledger read failed (I/O, or a record found corrupt).
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// A `cmd_seq` beyond the ledger's last command was asked for.
    #[error("cmd_seq {at} is beyond the ledger's last command {head}")]
    BeyondHead {
        /// Asked for.
        at: u64,
        /// The ledger's last `cmd_seq`.
        head: u64,
    },
    /// Re-running the stored commands did not reproduce the stored events, or the
    /// records do not fit together.
    #[error("{0}")]
    Diverged(Box<Divergence>),
    /// The re-run's read-ahead thread could not be started (the system's
    /// reason).
    #[error("cannot start the re-run's read-ahead thread: {0}")]
    Thread(String),
}

impl From<Divergence> for RecoveryError {
    fn from(d: Divergence) -> Self {
        RecoveryError::Diverged(Box::new(d))
    }
}

/// What kind of divergence a re-run met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DivergenceKind {
    /// A command or event record that must exist is missing.
    Gap,
    /// Records whose checksums are fine but which do not fit together.
    Malformed,
    /// A re-run event differs from the stored one.
    EventMismatch,
    /// The re-run produced more or fewer events for a command than are stored.
    EventCountMismatch,
}

impl DivergenceKind {
    /// The stable name (the auditors' failure kind of the same name).
    pub fn name(self) -> &'static str {
        match self {
            DivergenceKind::Gap => "gap",
            DivergenceKind::Malformed => "malformed",
            DivergenceKind::EventMismatch => "event_mismatch",
            DivergenceKind::EventCountMismatch => "event_count_mismatch",
        }
    }
}

impl fmt::Display for DivergenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where and how a re-run diverged from the ledger.
///
/// For event comparisons, `expected` is what the engine produces when the command
/// is re-run and `found` is what the ledger stores (`None`: nothing at that
/// position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// What is wrong.
    pub kind: DivergenceKind,
    /// The command.
    pub cmd_seq: u64,
    /// The event, when one is concerned.
    pub event_seq: Option<u64>,
    /// For event comparisons: the re-run's event, in its ledger encoding.
    pub expected: Option<Vec<u8>>,
    /// For event comparisons: the stored event's payload.
    pub found: Option<Vec<u8>>,
    /// A human explanation.
    pub detail: String,
}

impl Divergence {
    /// A divergence at `cmd_seq` with only a detail.
    pub(crate) fn new(kind: DivergenceKind, cmd_seq: u64, detail: impl Into<String>) -> Self {
        Divergence {
            kind,
            cmd_seq,
            event_seq: None,
            expected: None,
            found: None,
            detail: detail.into(),
        }
    }

    /// Names the event.
    pub(crate) fn at_event(mut self, event_seq: u64) -> Self {
        self.event_seq = Some(event_seq);
        self
    }

    /// Adds the re-run's and the stored event.
    pub(crate) fn with_events(mut self, expected: Option<Vec<u8>>, found: Option<Vec<u8>>) -> Self {
        self.expected = expected;
        self.found = found;
        self
    }

    /// True for the kinds that compare events (and so carry `expected`/`found`).
    pub fn compares_events(&self) -> bool {
        matches!(
            self.kind,
            DivergenceKind::EventMismatch | DivergenceKind::EventCountMismatch
        )
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at cmd_seq {}", self.kind, self.cmd_seq)?;
        if let Some(s) = self.event_seq {
            write!(f, " event_seq {s}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

impl std::error::Error for Divergence {}
