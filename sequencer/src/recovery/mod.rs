//! Recovery: rebuilding engine state at any `cmd_seq` of a ledger — the latest
//! good snapshot at or before it, then the commands after the snapshot, each
//! re-run and checked against the events the ledger stores.
//!
//! The exchange rebuilds its engine this way on every start ([`state_at`] at the
//! head). The auditors' tools (`gpux-replay`)
//! use the same [`Replayer`] loop and [`rebuild`], so what the exchange recovers
//! from is exactly what an audit checks. Progress is reported through a callback;
//! how it is shown is the caller's business.
//!
//! Snapshots are derived data, so a bad one is never fatal: a snapshot whose
//! record does not verify, whose bytes do not restore, or whose state is not at
//! its own `cmd_seq` is skipped (and reported in [`Rebuilt::skipped_snapshots`])
//! in favour of an older one, down to genesis.

mod error;
mod replayer;

pub use error::{Divergence, DivergenceKind, RecoveryError};
pub use replayer::{Replayer, Step};

use gpux_engine::Engine;
use gpux_ledger::{Cf, LedgerError, LedgerReader, Store};
use serde::Serialize;

/// How often (in commands) the progress callback is called during the re-run.
const PROGRESS_EVERY_COMMANDS: u64 = 4_096;

/// Progress of a rebuild, reported to the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    /// The snapshot the rebuild started from (`None`: genesis).
    pub snapshot_seq: Option<u64>,
    /// The `cmd_seq` being rebuilt.
    pub target_seq: u64,
    /// The last command applied so far.
    pub applied_seq: u64,
    /// Commands re-run so far.
    pub commands_done: u64,
    /// Commands to re-run in all.
    pub commands_total: u64,
}

/// A snapshot the rebuild could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedSnapshot {
    /// Its `cmd_seq`.
    pub cmd_seq: u64,
    /// Why it was skipped.
    pub reason: String,
}

/// A rebuilt engine and how it was reached.
#[derive(Debug)]
pub struct Rebuilt {
    /// The engine, at `seq`.
    pub engine: Engine,
    /// The last command applied (`0`: none).
    pub seq: u64,
    /// The snapshot it started from (`None`: genesis).
    pub snapshot_seq: Option<u64>,
    /// Newer snapshots that were skipped because they were bad.
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Commands re-run after the snapshot.
    pub commands_replayed: u64,
    /// Stored events compared with the re-run's.
    pub events_checked: u64,
}

/// The engine state after command `cmd_seq` (`None`: the ledger's head).
///
/// Loads the latest good snapshot at or before it and re-applies the commands
/// after it, checking every produced event against the stored one. A difference
/// is [`RecoveryError::Diverged`] naming the `cmd_seq` and `event_seq`; a
/// `cmd_seq` beyond the head is [`RecoveryError::BeyondHead`]. `progress`, if
/// given, is called every few thousand commands and once at the end.
pub fn state_at<S: Store>(
    reader: &LedgerReader<S>,
    cmd_seq: Option<u64>,
    progress: Option<&mut dyn FnMut(RebuildProgress)>,
) -> Result<Engine, RecoveryError> {
    Ok(rebuild(reader, cmd_seq, progress)?.engine)
}

/// [`state_at`], also telling which snapshot was used and what was re-run.
pub fn rebuild<S: Store>(
    reader: &LedgerReader<S>,
    cmd_seq: Option<u64>,
    mut progress: Option<&mut dyn FnMut(RebuildProgress)>,
) -> Result<Rebuilt, RecoveryError> {
    let head = reader.head()?;
    let target = cmd_seq.unwrap_or(head.last_cmd_seq);
    if target > head.last_cmd_seq {
        return Err(RecoveryError::BeyondHead {
            at: target,
            head: head.last_cmd_seq,
        });
    }
    let start = load_snapshot(reader, target)?;
    let (from, first_event) = start.next_seqs();
    let mut engine = start.engine;
    let snapshot_seq = start.snapshot.map(|(s, _)| s);
    let total = target + 1 - from;
    let mut report = |done: u64, applied: u64| {
        if let Some(p) = progress.as_mut() {
            p(RebuildProgress {
                snapshot_seq,
                target_seq: target,
                applied_seq: applied,
                commands_done: done,
                commands_total: total,
            });
        }
    };
    let mut replayer = Replayer::new(reader, from, first_event, target)?;
    while let Some(step) = replayer.step(&mut engine)? {
        let seq = step.command.cmd_seq;
        let done = seq + 1 - from;
        if done % PROGRESS_EVERY_COMMANDS == 0 {
            report(done, seq);
        }
    }
    report(total, target);
    Ok(Rebuilt {
        seq: engine.last_seq(),
        engine,
        snapshot_seq,
        skipped_snapshots: start.skipped,
        commands_replayed: replayer.commands_done(),
        events_checked: replayer.events_done(),
    })
}

/// Where a rebuild starts: a restored snapshot, or genesis.
#[derive(Debug)]
pub struct SnapshotStart {
    /// The engine restored from the snapshot (a new engine at genesis).
    pub engine: Engine,
    /// `(cmd_seq, event_seq)` of the snapshot used; `None`: genesis.
    pub snapshot: Option<(u64, u64)>,
    /// Newer snapshots that were skipped because they were bad.
    pub skipped: Vec<SkippedSnapshot>,
}

impl SnapshotStart {
    /// The first command and the first event to re-run after this start.
    pub fn next_seqs(&self) -> (u64, u64) {
        match self.snapshot {
            Some((c, e)) => (c + 1, e + 1),
            None => (1, 1),
        }
    }
}

/// The newest usable snapshot at or before `target`, restored; genesis if none.
pub fn load_snapshot<S: Store>(
    reader: &LedgerReader<S>,
    target: u64,
) -> Result<SnapshotStart, RecoveryError> {
    let mut skipped = Vec::new();
    let mut upto = Some(target);
    while let Some(at) = upto {
        match reader.snapshot_at_or_before(at) {
            Ok(None) => break,
            Ok(Some(s)) => {
                match Engine::restore(&s.bytes) {
                    Ok(engine) if engine.last_seq() == s.cmd_seq => {
                        return Ok(SnapshotStart {
                            engine,
                            snapshot: Some((s.cmd_seq, s.event_seq)),
                            skipped,
                        })
                    }
                    Ok(engine) => skipped.push(SkippedSnapshot {
                        cmd_seq: s.cmd_seq,
                        reason: format!("its state is at cmd_seq {}", engine.last_seq()),
                    }),
                    Err(e) => skipped.push(SkippedSnapshot {
                        cmd_seq: s.cmd_seq,
                        reason: e.to_string(),
                    }),
                }
                upto = s.cmd_seq.checked_sub(1);
            }
            Err(LedgerError::Corrupt(c)) if c.cf == Cf::Snapshots => {
                skipped.push(SkippedSnapshot {
                    cmd_seq: c.seq,
                    reason: c.to_string(),
                });
                // A key that is not a sequence number reads as 0: go to genesis.
                upto = c.seq.min(at).checked_sub(1);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(SnapshotStart {
        engine: Engine::new(),
        snapshot: None,
        skipped,
    })
}
