//! [`bench()`]: the ledger measurement behind `gpux bench ledger --events N`.
//!
//! Owns the synthetic workload and the two numbers the ledger is judged by: durable
//! throughput through the [`GroupCommitter`] with every write fsynced, and restart time
//! (open with verification, load the latest snapshot, read every event after it). It
//! lives in the library so the CLI, `examples/bench.rs` and tests run the same code.
//! The only floating point in the crate is here, in the report's rates and durations.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

use crate::error::{LedgerError, Result};
use crate::group::{CommitHandle, GroupCommitOptions, GroupCommitter};
use crate::ledger::{Ledger, LedgerOptions};
use crate::stats::{CommitStats, LatencyHistogram};
use crate::types::{AppliedCommand, Source};
use crate::verify::VerifyOnOpen;

/// Workload shape of [`bench()`]. Commands come from one Kafka partition (offset =
/// `cmd_seq - 1`), so the run measures the ledger alone; in embedded mode the inbox
/// journal is one more synced write stream on top.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Events per command (the last command gets what remains).
    pub events_per_command: usize,
    /// Bytes per event payload.
    pub event_payload_bytes: usize,
    /// Bytes per command payload.
    pub command_payload_bytes: usize,
    /// Commands per submission to the committer (the engine hands over runs of
    /// applied commands).
    pub commands_per_submission: usize,
    /// Bytes of the snapshot stored before the run (restart loads it, then reads all
    /// events after it).
    pub snapshot_bytes: usize,
    /// Group-commit bounds.
    pub group: GroupCommitOptions,
    /// Ledger options (RocksDB tuning, verification on the restart's open).
    pub ledger: LedgerOptions,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            events_per_command: 3,
            event_payload_bytes: 120,
            command_payload_bytes: 96,
            commands_per_submission: 32,
            snapshot_bytes: 4 << 20,
            group: GroupCommitOptions::default(),
            ledger: LedgerOptions::default(),
        }
    }
}

/// What [`bench()`] measured. Serialize it as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Events written.
    pub events: u64,
    /// Commands written.
    pub commands: u64,
    /// Wall time from the first submission to the last one durable.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_sec: f64,
    /// Synced writes (each one batch; every one fsynced).
    pub batches: u64,
    /// Mean events per batch.
    pub events_per_batch: u64,
    /// Median time of one synced batch write.
    pub p50_batch_commit_us: u64,
    /// 99th percentile time of one synced batch write.
    pub p99_batch_commit_us: u64,
    /// Slowest synced batch write.
    pub max_batch_commit_us: u64,
    /// 99th percentile from submission to durable (what a client waits for).
    pub p99_submit_to_durable_us: u64,
    /// Bytes of keys and values written.
    pub bytes_written: u64,
    /// Restart as after a crash (the recent writes only in the WAL): open (with
    /// verification) + latest snapshot + read every event after it.
    pub recovery_ms: f64,
    /// The open part of `recovery_ms` (WAL replay and verification).
    pub recovery_open_ms: f64,
    /// Events read after the snapshot during the restart.
    pub recovery_events: u64,
    /// The same restart after a clean [`Ledger::close`].
    pub recovery_clean_ms: f64,
    /// The open part of `recovery_clean_ms`.
    pub recovery_clean_open_ms: f64,
    /// How much the restart's open verified (`full` or `tail`).
    pub recovery_verify: &'static str,
}

/// A deterministic byte stream (splitmix64), so payloads are incompressible but
/// reproducible.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, n: usize, stamp: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        self.fill_into(&mut v, n, stamp);
        v
    }

    /// Overwrites `v` with `n` bytes: `stamp`, then the stream.
    fn fill_into(&mut self, v: &mut Vec<u8>, n: usize, stamp: u64) {
        v.clear();
        v.extend_from_slice(&stamp.to_be_bytes()[..n.min(8)]);
        while v.len() < n {
            let x = self.next().to_le_bytes();
            v.extend_from_slice(&x[..(n - v.len()).min(8)]);
        }
    }
}

/// Payload bytes for the producer: a stamp, then a window of a random pool chosen by
/// the stamp. As incompressible to a block compressor as fresh random bytes, and
/// cheap, so the producer (standing in for the engine) costs little next to the ledger.
struct Payloads {
    pool: Vec<u8>,
}

impl Payloads {
    const POOL_BYTES: usize = 1 << 20;

    fn new(mix: &mut Mix, longest: usize) -> Self {
        Self {
            pool: mix.fill(Self::POOL_BYTES + longest, 0),
        }
    }

    fn fill_into(&self, v: &mut Vec<u8>, n: usize, stamp: u64) {
        v.clear();
        v.extend_from_slice(&stamp.to_be_bytes()[..n.min(8)]);
        let rest = n - v.len();
        let at = (stamp.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 44) as usize % Self::POOL_BYTES;
        v.extend_from_slice(&self.pool[at..at + rest]);
    }
}

/// Writes `events` synthetic events into a new ledger in `dir` (which must not hold
/// one) through the group committer, every write fsynced, then measures a restart.
pub fn bench(dir: &Path, events: u64, opts: &BenchOptions) -> Result<BenchReport> {
    assert!(opts.events_per_command >= 1 && opts.commands_per_submission >= 1);
    let mut ledger = open_empty(dir, &opts.ledger)?;
    let mut mix = Mix(0x6770_7578);
    ledger.put_snapshot(0, &mix.fill(opts.snapshot_bytes, 0))?;

    let committer = GroupCommitter::spawn(ledger, opts.group.clone())?;
    let handle = committer.handle();
    let durable = Arc::new(Mutex::new(LatencyHistogram::default()));
    let failure: Arc<Mutex<Option<LedgerError>>> = Arc::default();

    let payloads = Payloads::new(
        &mut mix,
        opts.event_payload_bytes.max(opts.command_payload_bytes),
    );
    // Committed submissions come back here so their buffers are reused, as an engine
    // thread serializing into recycled buffers would (see `submit_returning`).
    let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<AppliedCommand>>();
    let mut pool: Vec<AppliedCommand> = Vec::new();
    let mut spare_submissions: Vec<Vec<AppliedCommand>> = Vec::new();

    let t0 = Instant::now();
    let (mut cmd_seq, mut event_seq) = (0u64, 0u64);
    let mut submission = Vec::with_capacity(opts.commands_per_submission);
    while event_seq < events {
        if pool.is_empty() {
            while let Ok(mut done) = recycle_rx.try_recv() {
                pool.append(&mut done);
                spare_submissions.push(done);
            }
        }
        cmd_seq += 1;
        let n = (opts.events_per_command as u64).min(events - event_seq);
        let c = synthetic_command(&mut pool, &payloads, opts, cmd_seq, event_seq, n);
        event_seq += n;
        submission.push(c);
        if submission.len() == opts.commands_per_submission || event_seq == events {
            let next = spare_submissions
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(opts.commands_per_submission));
            let batch = std::mem::replace(&mut submission, next);
            submit_timed(&handle, batch, &durable, &failure, &recycle_tx)?;
        }
    }
    drop(handle);
    let (ledger, stats) = committer.shutdown()?;
    let seconds = t0.elapsed().as_secs_f64();
    if let Some(e) = failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        return Err(e);
    }
    assert_eq!(
        ledger.head().last_event_seq,
        events,
        "every event committed"
    );
    // Dropped without `close`: the WAL holds the recent writes, as after a crash.
    drop(ledger);
    let (after_crash, ledger) = restart(dir, &opts.ledger)?;
    ledger.close()?;
    let (after_close, ledger) = restart(dir, &opts.ledger)?;
    drop(ledger);

    let durable = durable.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(report(
        (events, cmd_seq, seconds),
        &stats,
        &durable,
        (&after_crash, &after_close),
        opts.ledger.verify_on_open,
    ))
}

/// A new ledger in `dir`; an error if `dir` already holds one.
fn open_empty(dir: &Path, opts: &LedgerOptions) -> Result<Ledger> {
    let ledger = Ledger::open(dir, opts)?;
    if ledger.head().last_cmd_seq != 0 {
        return Err(crate::StoreError::new(format!(
            "bench needs an empty directory; {} holds a ledger",
            dir.display()
        ))
        .into());
    }
    Ok(ledger)
}

/// The report of a run: `(events, commands, seconds)` written, the committer's
/// statistics, submit-to-durable latencies, and the two restarts.
fn report(
    (events, commands, seconds): (u64, u64, f64),
    stats: &CommitStats,
    durable: &LatencyHistogram,
    (after_crash, after_close): (&Restart, &Restart),
    verify: VerifyOnOpen,
) -> BenchReport {
    BenchReport {
        events,
        commands,
        seconds,
        events_per_sec: events as f64 / seconds,
        batches: stats.batches,
        events_per_batch: stats.events.checked_div(stats.batches).unwrap_or(0),
        p50_batch_commit_us: stats.commit_latency.quantile_us(500),
        p99_batch_commit_us: stats.commit_latency.quantile_us(990),
        max_batch_commit_us: stats.commit_latency.max_us(),
        p99_submit_to_durable_us: durable.quantile_us(990),
        bytes_written: stats.bytes,
        recovery_ms: after_crash.total_ms,
        recovery_open_ms: after_crash.open_ms,
        recovery_events: after_crash.events,
        recovery_clean_ms: after_close.total_ms,
        recovery_clean_open_ms: after_close.open_ms,
        recovery_verify: match verify {
            VerifyOnOpen::Full => "full",
            VerifyOnOpen::Tail => "tail",
            VerifyOnOpen::Background => "background",
        },
    }
}

/// Synthetic command `cmd_seq` carrying `n` events numbered from `event_seq + 1`,
/// built in a recycled command from `pool` when there is one.
fn synthetic_command(
    pool: &mut Vec<AppliedCommand>,
    payloads: &Payloads,
    opts: &BenchOptions,
    cmd_seq: u64,
    event_seq: u64,
    n: u64,
) -> AppliedCommand {
    let mut c = pool.pop().unwrap_or_else(|| AppliedCommand {
        cmd_seq: 0,
        ts_ns: 0,
        source: Source::Kafka {
            topic: "gpux.commands".to_owned(),
            partition: 0,
            offset: 0,
            index: None,
        },
        payload: Vec::new(),
        events: Vec::new(),
    });
    c.cmd_seq = cmd_seq;
    c.ts_ns = 1_700_000_000_000_000_000 + cmd_seq * 1_000;
    if let Source::Kafka { offset, .. } = &mut c.source {
        *offset = cmd_seq - 1;
    }
    payloads.fill_into(&mut c.payload, opts.command_payload_bytes, cmd_seq);
    c.events.resize_with(n as usize, Vec::new);
    for (i, e) in c.events.iter_mut().enumerate() {
        payloads.fill_into(e, opts.event_payload_bytes, event_seq + 1 + i as u64);
    }
    c
}

/// Submits `batch`, recording its submit-to-durable latency in `durable` (or its
/// error in `failure`) and sending its buffers back through `recycle`.
fn submit_timed(
    handle: &CommitHandle,
    batch: Vec<AppliedCommand>,
    durable: &Arc<Mutex<LatencyHistogram>>,
    failure: &Arc<Mutex<Option<LedgerError>>>,
    recycle: &mpsc::Sender<Vec<AppliedCommand>>,
) -> Result<()> {
    let sent = Instant::now();
    let (durable, failure) = (Arc::clone(durable), Arc::clone(failure));
    let recycle = recycle.clone();
    handle.submit_returning(batch, move |r, spent| {
        match r {
            Ok(_) => durable
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record_us(sent.elapsed().as_micros() as u64),
            Err(e) => {
                failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
            }
        }
        let _ = recycle.send(spent);
    })?;
    Ok(())
}

struct Restart {
    open_ms: f64,
    total_ms: f64,
    events: u64,
}

/// Open, load the latest good snapshot, read (and checksum) every event after it.
fn restart(dir: &Path, opts: &LedgerOptions) -> Result<(Restart, Ledger)> {
    let t0 = Instant::now();
    let ledger = Ledger::open(dir, opts)?;
    let open_ms = t0.elapsed().as_secs_f64() * 1e3;
    let snapshot = ledger.latest_good_snapshot()?.snapshot;
    let from = snapshot.as_ref().map_or(0, |s| s.event_seq) + 1;
    let mut events = 0u64;
    for e in ledger.events(from)? {
        let e = e?;
        assert!(e.event_seq >= from);
        events += 1;
    }
    let total_ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok((
        Restart {
            open_ms,
            total_ms,
            events,
        },
        ledger,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_bench_commits_every_event_and_restarts_from_the_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = BenchOptions {
            snapshot_bytes: 1024,
            ..BenchOptions::default()
        };
        let r = bench(dir.path(), 1000, &opts).expect("bench");
        assert_eq!(r.events, 1000);
        assert_eq!(r.commands, 334);
        assert!(r.batches >= 1);
        assert_eq!(r.recovery_events, 1000);
        let again = bench(dir.path(), 10, &opts);
        assert!(again.is_err(), "refuses a directory that holds a ledger");
    }
}
