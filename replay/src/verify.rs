//! `gpux replay verify --data DIR`: prove the ledger is intact and is exactly what
//! the engine produces.
//!
//! Steps 1 and 2–3 run side by side (see [`verify_reader`]).
//!
//! 1. **Integrity**: the ledger's own full walk ([`LedgerReader::verify`]) — every
//!    record's crc32c, dense sequence numbers, command ↔ event links, the whole hash
//!    chain from genesis to the head, consumed offsets, the command log, and every
//!    snapshot's checksum.
//! 2. **Re-run**: every command through a fresh engine from genesis, each produced
//!    event's bytes compared with the stored payload.
//! 3. **Snapshots**: at every stored snapshot's `cmd_seq`, the re-run engine's
//!    `state_hash()` equals the hash of the restored snapshot — including the
//!    snapshot at the head (the live state written on clean shutdown), which is
//!    thereby compared with the final state.
//!
//! Prints `{"ok":true,"commands":…,"events":…,"last_seq":…,"last_event_seq":…,
//! "batches":…,"chain_head":"hex","state_hash":"hex","snapshots_checked":…,…}`, or on
//! the first problem `{"ok":false,"error":"…","cmd_seq":…,"event_seq":…,…}`.

use std::io::Write;
use std::path::Path;

use gpux_engine::{Engine, StateHash};
use gpux_ledger::{hex, Cf, LedgerReader, Store, VerifyProgress, VerifyReport};
use gpux_sequencer::recovery::{self, Replayer};
use serde::Serialize;

use crate::error::{Failure, FailureKind, Finding, Outcome, ReplayError, Result};
use crate::progress::Progress;

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifySummary {
    /// Always `true` (the JSON's `ok`).
    pub ok: bool,
    /// Commands re-run.
    pub commands: u64,
    /// Events compared byte-for-byte.
    pub events: u64,
    /// The last `cmd_seq`.
    pub last_seq: u64,
    /// The last `event_seq`.
    pub last_event_seq: u64,
    /// Batches (hash-chain links) verified.
    pub batches: u64,
    /// The chain head (last batch hash), hex.
    pub chain_head: String,
    /// `state_hash()` of the engine after the last command, hex.
    pub state_hash: String,
    /// Snapshots whose state hash was compared with the re-run's.
    pub snapshots_checked: u64,
    /// Whether a snapshot at the head (the live state) was among them.
    pub head_snapshot_checked: bool,
    /// Embedded command-log entries verified.
    pub inbox_entries: u64,
}

/// Verifies the ledger in `data` (opened read-only).
pub fn verify_ledger(data: &Path, progress: &Progress) -> Result<Finding<VerifySummary>> {
    let ledger = match crate::open(data)? {
        Ok(l) => l,
        Err(f) => return Ok(Err(f)),
    };
    verify_reader(&ledger.reader(), progress)
}

/// `gpux replay verify`: verifies and writes the JSON summary or failure to `out`.
pub fn run(data: &Path, progress: &Progress, out: &mut dyn Write) -> Result<Outcome> {
    let r = verify_ledger(data, progress).and_then(|f| match f {
        Ok(summary) => {
            crate::write_json_line(out, &summary)?;
            Ok(Outcome::Success)
        }
        Err(f) => crate::write_failure(out, f),
    });
    crate::settle(out, r)
}

/// Verifies a ledger through any reader (the checks of [`verify_ledger`]).
///
/// The integrity walk and the re-run (with the snapshots) read the ledger
/// independently, so they run side by side, one core each; the walk's verdict
/// comes first: on a damaged ledger its failure is the answer, whatever the
/// re-run found. The re-run follows the head stored in meta, which the walk proves
/// (if the two differ the walk fails).
pub fn verify_reader<S: Store>(
    reader: &LedgerReader<S>,
    progress: &Progress,
) -> Result<Finding<VerifySummary>> {
    let stored_head = match reader.head() {
        Ok(h) => h,
        Err(e) => match Failure::from_ledger_error(&e) {
            Some(f) => return Ok(Err(locate(reader, f))),
            None => return Err(e.into()),
        },
    };
    let (walk, ran) = std::thread::scope(|s| {
        let walk = s.spawn(|| integrity(reader));
        let ran = rerun(reader, stored_head.last_cmd_seq, progress);
        (walk.join(), ran)
    });
    let report = match walk.unwrap_or_else(|p| std::panic::resume_unwind(p))? {
        Ok(r) => r,
        Err(f) => return Ok(Err(f)),
    };
    let head = report.head;
    let ran = if head == stored_head {
        ran?
    } else {
        rerun(reader, head.last_cmd_seq, progress)?
    };
    let rerun = match ran {
        Ok(r) => r,
        Err(f) => return Ok(Err(f)),
    };
    Ok(Ok(VerifySummary {
        ok: true,
        commands: rerun.commands,
        events: rerun.events,
        last_seq: head.last_cmd_seq,
        last_event_seq: head.last_event_seq,
        batches: report.batches,
        chain_head: hex(&head.hash),
        state_hash: rerun.state_hash.to_string(),
        snapshots_checked: rerun.snapshots_checked,
        head_snapshot_checked: rerun.head_snapshot_checked,
        inbox_entries: report.inbox_entries,
    }))
}

/// Step 1, integrity: checksums, chain, links, offsets, snapshot records.
fn integrity<S: Store>(reader: &LedgerReader<S>) -> Result<Finding<VerifyReport>> {
    let report = match reader.verify(&mut |_: VerifyProgress| {}) {
        Ok(r) => r,
        Err(e) => match Failure::from_ledger_error(&e) {
            Some(f) => return Ok(Err(pinpoint(reader, locate(reader, f)))),
            None => return Err(e.into()),
        },
    };
    if let Some(c) = report.corrupt_snapshots.iter().min_by_key(|c| c.seq) {
        return Ok(Err(Failure::from_corruption(c)));
    }
    Ok(Ok(report))
}

/// What the re-run saw.
struct Rerun {
    commands: u64,
    events: u64,
    state_hash: StateHash,
    snapshots_checked: u64,
    head_snapshot_checked: bool,
}

/// Steps 2 and 3: every snapshot's state hash, then every command re-run from
/// genesis through `head_cmd_seq`, its events compared and, at every snapshot,
/// the state.
fn rerun<S: Store>(
    reader: &LedgerReader<S>,
    head_cmd_seq: u64,
    progress: &Progress,
) -> Result<Finding<Rerun>> {
    // Every snapshot's state hash, restored (newest first, then sorted).
    let mut snapshots = match snapshot_hashes(reader, head_cmd_seq)? {
        Ok(s) => s,
        Err(f) => return Ok(Err(f)),
    };
    snapshots.reverse();
    let head_snapshot_checked = snapshots.last().is_some_and(|s| s.cmd_seq == head_cmd_seq);

    // Re-run from genesis, comparing events and, at every snapshot, state.
    let mut engine: Engine = Engine::new();
    let mut pending = snapshots.iter().peekable();
    let mut checked = 0u64;
    if let Some(s) = pending.next_if(|s| s.cmd_seq == 0) {
        if let Err(f) = check_snapshot(s, &engine, 0) {
            return Ok(Err(f));
        }
        checked += 1;
    }
    let bar = progress.bar(head_cmd_seq, "verify");
    let mut replayer = Replayer::new(reader, 1, 1, head_cmd_seq)?;
    loop {
        let seq = match replayer.step(&mut engine).map_err(ReplayError::from) {
            Ok(Some(step)) => step.command.cmd_seq,
            Ok(None) => break,
            Err(ReplayError::Failed(f)) => return Ok(Err(*f)),
            Err(e) => return Err(e),
        };
        if seq % 1024 == 0 {
            bar.set(seq);
        }
        if let Some(s) = pending.next_if(|s| s.cmd_seq == seq) {
            if let Err(f) = check_snapshot(s, &engine, replayer.next_event_seq() - 1) {
                return Ok(Err(f));
            }
            checked += 1;
        }
    }
    drop(bar);
    debug_assert!(pending.next().is_none(), "snapshots beyond the head");
    Ok(Ok(Rerun {
        commands: replayer.commands_done(),
        events: replayer.events_done(),
        state_hash: engine.state_hash(),
        snapshots_checked: checked,
        head_snapshot_checked,
    }))
}

/// A stored snapshot, restored and hashed.
struct SnapshotHash {
    cmd_seq: u64,
    event_seq: u64,
    hash: StateHash,
}

fn check_snapshot(s: &SnapshotHash, engine: &Engine, event_seq: u64) -> Finding<()> {
    let hash = engine.state_hash();
    if hash != s.hash {
        return Err(Failure::new(
            FailureKind::SnapshotMismatch,
            "the re-run's state differs from the stored snapshot's",
        )
        .at_cmd(s.cmd_seq)
        .with_values(hash.to_string().into(), s.hash.to_string().into()));
    }
    if event_seq != s.event_seq {
        return Err(Failure::new(
            FailureKind::SnapshotMismatch,
            format!(
                "snapshot claims to include events up to {} but its command's last event is {event_seq}",
                s.event_seq
            ),
        )
        .at_cmd(s.cmd_seq)
        .at_event(s.event_seq));
    }
    Ok(())
}

/// Every snapshot at or below `head_cmd_seq`, newest first, restored and hashed
/// one at a time (only the hashes are kept).
fn snapshot_hashes<S: Store>(
    reader: &LedgerReader<S>,
    head_cmd_seq: u64,
) -> Result<Finding<Vec<SnapshotHash>>> {
    let mut out = Vec::new();
    let mut upto = Some(head_cmd_seq);
    while let Some(at) = upto {
        let s = match reader.snapshot_at_or_before(at) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => match Failure::from_ledger_error(&e) {
                Some(f) => return Ok(Err(f)),
                None => return Err(e.into()),
            },
        };
        let engine: Engine = match Engine::restore(&s.bytes) {
            Ok(e) => e,
            Err(e) => {
                return Ok(Err(Failure::new(
                    FailureKind::SnapshotInvalid,
                    e.to_string(),
                )
                .at_cmd(s.cmd_seq)))
            }
        };
        if engine.last_seq() != s.cmd_seq {
            return Ok(Err(Failure::new(
                FailureKind::SnapshotMismatch,
                format!(
                    "snapshot stored at cmd_seq {} holds the state after cmd_seq {}",
                    s.cmd_seq,
                    engine.last_seq()
                ),
            )
            .at_cmd(s.cmd_seq)));
        }
        out.push(SnapshotHash {
            cmd_seq: s.cmd_seq,
            event_seq: s.event_seq,
            hash: engine.state_hash(),
        });
        upto = s.cmd_seq.checked_sub(1);
    }
    Ok(Ok(out))
}

/// Adds the command to a failure that names only an event (a corrupt event record
/// cannot be trusted to say whose it is; the batch and command records can).
pub(crate) fn locate<S: Store>(reader: &LedgerReader<S>, mut f: Failure) -> Failure {
    if let (Some(event_seq), None) = (f.event_seq, f.cmd_seq) {
        f.cmd_seq = command_of_event(reader, event_seq);
    }
    f
}

/// A broken chain names a batch: some record in it was rewritten with a valid
/// checksum. Re-running the batch's commands (from the latest usable snapshot
/// before it) names the event that differs from what the engine produces, if the
/// forgery touched a command or an event.
fn pinpoint<S: Store>(reader: &LedgerReader<S>, mut f: Failure) -> Failure {
    let (FailureKind::BrokenChain, Some(batch_no)) = (f.error, f.batch_no) else {
        return f;
    };
    let Ok(Some(batch)) = reader.batch(batch_no) else {
        return f;
    };
    let Ok(start) = recovery::load_snapshot(reader, batch.first_cmd_seq - 1) else {
        return f;
    };
    let (from, first_event) = start.next_seqs();
    let mut engine = start.engine;
    let Ok(mut replayer) = Replayer::new(reader, from, first_event, batch.last_cmd_seq) else {
        return f;
    };
    loop {
        match replayer.step(&mut engine).map_err(ReplayError::from) {
            Ok(Some(_)) => {}
            Ok(None) | Err(ReplayError::Ledger(_) | ReplayError::Io(_) | ReplayError::Json(_)) => {
                return f
            }
            Err(ReplayError::Failed(m))
                if matches!(
                    m.error,
                    FailureKind::EventMismatch | FailureKind::EventCountMismatch
                ) =>
            {
                f.cmd_seq = m.cmd_seq;
                f.event_seq = m.event_seq;
                f.expected = m.expected;
                f.found = m.found;
                f.detail = format!("{}; re-running the batch: {}", f.detail, m.detail);
                return f;
            }
            Err(_) => return f,
        }
    }
}

/// The command of event `event_seq`, read from its chunk's structure (the chunk
/// may be the damaged one, so its crc is not trusted for this).
fn command_of_event<S: Store>(reader: &LedgerReader<S>, event_seq: u64) -> Option<u64> {
    let store = reader.store();
    let chunk = gpux_ledger::layout::chunk_of_event(store, event_seq)?;
    let value = store
        .get(Cf::Commands, &gpux_ledger::seq_key(chunk))
        .ok()??;
    gpux_ledger::layout::RawChunk::parse(&value)?.command_of_event(event_seq)
}
