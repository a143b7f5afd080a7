//! What the tools report: [`Failure`] (a check found the ledger wrong, with the
//! exact sequence numbers), [`Outcome`] (success or that failure, for the exit code)
//! and [`ReplayError`] (what stopped a tool before it could decide).

use std::fmt;

use gpux_ledger::{Cf, Corruption, CorruptionKind, LedgerError};
use gpux_sequencer::recovery::{Divergence, DivergenceKind, RecoveryError};
use serde::Serialize;

/// Result alias of this crate.
pub type Result<T, E = ReplayError> = std::result::Result<T, E>;

/// A check's verdict: its result, or the first [`Failure`] it found.
pub type Finding<T> = std::result::Result<T, Failure>;

/// Everything that stops a tool before it reaches a verdict. A ledger that is
/// *wrong* is not an error but a [`Failure`]; it only travels as
/// [`ReplayError::Failed`] out of functions that return a value, such as
/// [`state_at`](crate::rebuild::state_at).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The ledger could not be opened (missing directory, not a ledger, locked).
    #[error("cannot open the ledger in {path}")]
    Open {
        /// The directory.
        path: String,
        /// What the ledger said.
        source: LedgerError,
    },
    /// A ledger read failed.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// Writing output failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding JSON output failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A `cmd_seq` beyond the ledger's last command was asked for.
    #[error("cmd_seq {at} is beyond the ledger's last command {head}")]
    BeyondHead {
        /// Asked for.
        at: u64,
        /// The ledger's last `cmd_seq`.
        head: u64,
    },
    /// A range whose start is after its end.
    #[error("empty range: from cmd_seq {from} to {to}")]
    InvalidRange {
        /// First `cmd_seq`.
        from: u64,
        /// Last `cmd_seq`.
        to: u64,
    },
    /// A check failed: the ledger is corrupt, or re-running it diverged from what
    /// it stores.
    #[error("{0}")]
    Failed(Box<Failure>),
}

impl From<Failure> for ReplayError {
    fn from(f: Failure) -> Self {
        ReplayError::Failed(Box::new(f))
    }
}

impl From<RecoveryError> for ReplayError {
    fn from(e: RecoveryError) -> Self {
        match e {
            RecoveryError::Ledger(e) => ReplayError::Ledger(e),
            RecoveryError::BeyondHead { at, head } => ReplayError::BeyondHead { at, head },
            RecoveryError::Diverged(d) => Failure::from(*d).into(),
            e @ RecoveryError::Thread(_) => ReplayError::Io(std::io::Error::other(e.to_string())),
        }
    }
}

/// What kind of failure a check found. Stable names (the `error` field of the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// A record's crc32c does not match its bytes.
    ChecksumMismatch,
    /// A record that must exist is missing.
    Gap,
    /// The hash chain does not verify (a record was rewritten with a valid crc, or
    /// batches were reordered, added or removed).
    BrokenChain,
    /// A record whose checksum is fine but whose contents are wrong.
    Malformed,
    /// A record in a format version this build does not read.
    UnsupportedVersion,
    /// The ledger's metadata disagrees with its records.
    MetaMismatch,
    /// Records beyond the head (a write that never completed).
    TornTail,
    /// The ledger was written in a format this build does not read.
    UnsupportedFormat,
    /// Some other corruption the ledger reported.
    LedgerCorrupt,
    /// A stored snapshot does not verify (its checksum).
    CorruptSnapshot,
    /// A stored snapshot's bytes do not restore into an engine.
    SnapshotInvalid,
    /// A snapshot's state differs from the state the re-run reached at its `cmd_seq`.
    SnapshotMismatch,
    /// A re-run event differs from the stored one.
    EventMismatch,
    /// The re-run produced more or fewer events for a command than are stored.
    EventCountMismatch,
    /// The engine's own invariant check failed after a command.
    InvariantBroken,
    /// A book's best bid was at or above its best ask after a command.
    CrossedBook,
    /// USD balances do not add up to deposits minus withdrawals.
    UsdNotConserved,
    /// GPU-hour balances of a market do not add up to capacity added minus removed.
    GpuHoursNotConserved,
    /// An account's balances recomputed from the events differ from the engine's.
    BalanceMismatch,
    /// The delivery schedule does not account for the GPUs: an entry beyond a
    /// provider's own inventory, a broken trade chain, or a gate's sums wrong.
    DeliveryMismatch,
    /// Two ledgers differ.
    Diverged,
    /// The account does not exist in the ledger.
    UnknownAccount,
    /// A statement's balances from events do not equal the engine's.
    NotReconciled,
    /// A settlement's payment, refund or fees differ from what its trade gives,
    /// or it settles more of a trade than is in escrow.
    SettlementMismatch,
    /// A provider's record recomputed from the settlements differs from the
    /// engine's.
    ReliabilityMismatch,
}

impl FailureKind {
    /// The stable name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::ChecksumMismatch => "checksum_mismatch",
            FailureKind::Gap => "gap",
            FailureKind::BrokenChain => "broken_chain",
            FailureKind::Malformed => "malformed",
            FailureKind::UnsupportedVersion => "unsupported_version",
            FailureKind::MetaMismatch => "meta_mismatch",
            FailureKind::TornTail => "torn_tail",
            FailureKind::UnsupportedFormat => "unsupported_format",
            FailureKind::LedgerCorrupt => "ledger_corrupt",
            FailureKind::CorruptSnapshot => "corrupt_snapshot",
            FailureKind::SnapshotInvalid => "snapshot_invalid",
            FailureKind::SnapshotMismatch => "snapshot_mismatch",
            FailureKind::EventMismatch => "event_mismatch",
            FailureKind::EventCountMismatch => "event_count_mismatch",
            FailureKind::InvariantBroken => "invariant_broken",
            FailureKind::CrossedBook => "crossed_book",
            FailureKind::UsdNotConserved => "usd_not_conserved",
            FailureKind::GpuHoursNotConserved => "gpu_hours_not_conserved",
            FailureKind::DeliveryMismatch => "delivery_mismatch",
            FailureKind::BalanceMismatch => "balance_mismatch",
            FailureKind::Diverged => "diverged",
            FailureKind::UnknownAccount => "unknown_account",
            FailureKind::NotReconciled => "not_reconciled",
            FailureKind::SettlementMismatch => "settlement_mismatch",
            FailureKind::ReliabilityMismatch => "reliability_mismatch",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The first thing a check found wrong, with every sequence number that locates
/// it. Serialized (see [`Failure::report`]) as
/// `{"ok":false,"error":"event_mismatch","cmd_seq":12,"event_seq":31,"expected":…,"found":…,"detail":"…"}`.
///
/// For event comparisons, `expected` is what the engine produces when the command
/// is re-run and `found` is what the ledger stores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// What is wrong.
    pub error: FailureKind,
    /// The command (for a snapshot: the `cmd_seq` it was taken at).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd_seq: Option<u64>,
    /// The event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_seq: Option<u64>,
    /// The batch (hash-chain link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_no: Option<u64>,
    /// The embedded command log entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox_seq: Option<u64>,
    /// The ledger column family of the damaged record, for ledger corruption.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "cf_name")]
    pub column_family: Option<Cf>,
    /// What the check expected (for events: the re-run's event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Box<serde_json::Value>>,
    /// What it found (for events: the stored event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<Box<serde_json::Value>>,
    /// A human explanation.
    pub detail: String,
}

fn cf_name<S: serde::Serializer>(cf: &Option<Cf>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match cf {
        Some(cf) => s.serialize_str(cf.name()),
        None => s.serialize_none(),
    }
}

/// The JSON shape of a failure: `ok: false` then the failure's fields.
#[derive(Serialize)]
pub(crate) struct FailureReport<'a> {
    ok: bool,
    #[serde(flatten)]
    failure: &'a Failure,
}

impl Failure {
    /// A failure of `kind` with only a detail; add sequence numbers with the
    /// builder methods.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Failure {
            error: kind,
            cmd_seq: None,
            event_seq: None,
            batch_no: None,
            inbox_seq: None,
            column_family: None,
            expected: None,
            found: None,
            detail: detail.into(),
        }
    }

    /// Names the command.
    pub fn at_cmd(mut self, cmd_seq: u64) -> Self {
        self.cmd_seq = Some(cmd_seq);
        self
    }

    /// Names the event.
    pub fn at_event(mut self, event_seq: u64) -> Self {
        self.event_seq = Some(event_seq);
        self
    }

    /// Adds the expected and found values.
    pub fn with_values(mut self, expected: serde_json::Value, found: serde_json::Value) -> Self {
        self.expected = Some(Box::new(expected));
        self.found = Some(Box::new(found));
        self
    }

    /// `{"ok":false,"error":…,…}`: the JSON a tool prints for this failure.
    pub fn report(&self) -> impl Serialize + '_ {
        FailureReport {
            ok: false,
            failure: self,
        }
    }

    /// The failure describing a ledger corruption, locating it by its column
    /// family: `cmd_seq` for commands and snapshots, `event_seq` for events,
    /// `batch_no` for batches, `inbox_seq` for the command log.
    pub fn from_corruption(c: &Corruption) -> Self {
        let kind = match c.kind {
            CorruptionKind::ChecksumMismatch if c.cf == Cf::Snapshots => {
                FailureKind::CorruptSnapshot
            }
            CorruptionKind::ChecksumMismatch => FailureKind::ChecksumMismatch,
            CorruptionKind::Gap => FailureKind::Gap,
            CorruptionKind::BrokenChain => FailureKind::BrokenChain,
            CorruptionKind::Malformed if c.cf == Cf::Snapshots => FailureKind::CorruptSnapshot,
            CorruptionKind::Malformed => FailureKind::Malformed,
            CorruptionKind::UnsupportedVersion => FailureKind::UnsupportedVersion,
            CorruptionKind::MetaMismatch => FailureKind::MetaMismatch,
            CorruptionKind::TornTail => FailureKind::TornTail,
            _ => FailureKind::LedgerCorrupt,
        };
        let mut f = Failure::new(kind, c.to_string());
        f.column_family = Some(c.cf);
        match c.cf {
            Cf::Commands | Cf::Snapshots => f.cmd_seq = Some(c.seq),
            Cf::Events => f.event_seq = Some(c.seq),
            Cf::Batches => f.batch_no = Some(c.seq),
            Cf::Inbox => f.inbox_seq = Some(c.seq),
            Cf::Meta => {}
        }
        f
    }

    /// The failure a ledger error stands for, if it is a finding (corruption, an
    /// unreadable format) rather than an I/O problem.
    pub fn from_ledger_error(e: &LedgerError) -> Option<Self> {
        match e {
            LedgerError::Corrupt(c) => Some(Failure::from_corruption(c)),
            LedgerError::UnsupportedFormat { .. } => {
                Some(Failure::new(FailureKind::UnsupportedFormat, e.to_string()))
            }
            _ => None,
        }
    }
}

impl From<Divergence> for Failure {
    /// The failure a re-run's divergence is: same kind, sequence numbers and
    /// detail; event comparisons carry the re-run's and the stored event as JSON.
    fn from(d: Divergence) -> Self {
        let kind = match d.kind {
            DivergenceKind::Gap => FailureKind::Gap,
            DivergenceKind::Malformed => FailureKind::Malformed,
            DivergenceKind::EventMismatch => FailureKind::EventMismatch,
            DivergenceKind::EventCountMismatch => FailureKind::EventCountMismatch,
        };
        let compares_events = d.compares_events();
        let mut f = Failure::new(kind, d.detail).at_cmd(d.cmd_seq);
        if let Some(e) = d.event_seq {
            f = f.at_event(e);
        }
        if compares_events {
            let value = |b: Option<Vec<u8>>| b.map_or(serde_json::Value::Null, |b| event_value(&b));
            f = f.with_values(value(d.expected), value(d.found));
        }
        f
    }
}

/// A stored event's payload (`docs/LEDGER_FORMAT.md` § Event payloads) as its
/// protocol JSON for reports; bytes that do not decode as their hex, in a string
/// that says so.
pub(crate) fn event_value(bytes: &[u8]) -> serde_json::Value {
    match gpux_engine::Event::from_bytes(bytes) {
        Ok(e) => serde_json::to_value(e).unwrap_or(serde_json::Value::Null),
        Err(e) => serde_json::Value::String(format!("{e}: {}", gpux_ledger::hex(bytes))),
    }
}

/// Bytes as a JSON value for reports: parsed when they are JSON, else as text.
pub(crate) fn json_value(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(s) = self.cmd_seq {
            write!(f, " at cmd_seq {s}")?;
        }
        if let Some(s) = self.event_seq {
            write!(f, " event_seq {s}")?;
        }
        if let Some(s) = self.batch_no {
            write!(f, " batch_no {s}")?;
        }
        if let Some(s) = self.inbox_seq {
            write!(f, " inbox_seq {s}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

impl std::error::Error for Failure {}

/// How a tool ended, for the exit code: success, or the first failure (already
/// written to the tool's output as JSON).
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Outcome {
    /// Every check passed (or, for `diff`, the ledgers are identical).
    Success,
    /// A check failed.
    Failure(Failure),
}

impl Outcome {
    /// True for [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }

    /// The failure, if any.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::Success => None,
            Outcome::Failure(f) => Some(f),
        }
    }

    /// Success from a finding, discarding its value.
    pub fn from_finding<T>(f: Finding<T>) -> Self {
        match f {
            Ok(_) => Outcome::Success,
            Err(f) => Outcome::Failure(f),
        }
    }
}
