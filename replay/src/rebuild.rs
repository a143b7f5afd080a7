//! Rebuilding engine state at any `cmd_seq`, for the auditors' tools: the
//! exchange's own recovery ([`gpux_sequencer::recovery`]) with its errors told as
//! the tools tell theirs ([`ReplayError`](crate::ReplayError), a divergence as a
//! [`Failure`](crate::Failure)).
//!
//! Snapshots are derived data, so a bad one is never fatal: it is skipped (and
//! reported in [`Rebuilt::skipped_snapshots`]) in favour of an older one, down to
//! genesis.

use gpux_engine::Engine;
use gpux_ledger::{LedgerReader, Store};
use gpux_sequencer::recovery;

pub use gpux_sequencer::recovery::{RebuildProgress, Rebuilt, SkippedSnapshot};

use crate::error::Result;

/// The engine state after command `cmd_seq` (`None`: the ledger's head).
///
/// Loads the latest good snapshot at or before it and re-applies the commands
/// after it, checking every produced event against the stored one. A difference
/// is `Err(ReplayError::Failed)` naming the `cmd_seq` and `event_seq`; a `cmd_seq`
/// beyond the head is [`ReplayError::BeyondHead`](crate::ReplayError::BeyondHead).
/// `progress`, if given, is called every few thousand commands and once at the
/// end.
pub fn state_at<S: Store>(
    reader: &LedgerReader<S>,
    cmd_seq: Option<u64>,
    progress: Option<&mut dyn FnMut(RebuildProgress)>,
) -> Result<Engine> {
    Ok(recovery::state_at(reader, cmd_seq, progress)?)
}

/// [`state_at`], also telling which snapshot was used and what was re-run.
pub fn rebuild<S: Store>(
    reader: &LedgerReader<S>,
    cmd_seq: Option<u64>,
    progress: Option<&mut dyn FnMut(RebuildProgress)>,
) -> Result<Rebuilt> {
    Ok(recovery::rebuild(reader, cmd_seq, progress)?)
}
