//! Crash tests with real processes: `ledger-crash-writer` is killed with SIGKILL at
//! seeded random moments, again and again, then allowed to finish. Proves that no
//! acknowledged command is lost, none is applied twice, the chain verifies after every
//! crash, and the final ledger is identical (same chain hash, same records) to a run
//! that never crashed.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::dump;
use gpux_ledger::{hex, Ledger, LedgerOptions, Source, SourceKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const WRITER: &str = env!("CARGO_BIN_EXE_ledger-crash-writer");
const TARGET_COMMANDS: u64 = 2500;
const CRASHES: usize = 40;

struct Run {
    acked: Vec<u64>,
    done_hash: Option<String>,
}

/// Runs the writer; kills it after `kill_after` if given. Returns what it printed.
fn run_writer(dir: &Path, seed: u64, group: bool, kill_after: Option<Duration>) -> Run {
    let mut cmd = Command::new(WRITER);
    if group {
        cmd.arg("--group");
    }
    let mut child = cmd
        .arg(dir)
        .arg(seed.to_string())
        .arg(TARGET_COMMANDS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer");
    let mut stdout = child.stdout.take().expect("stdout");
    // Read concurrently so the writer never blocks on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).expect("read stdout");
        s
    });
    match kill_after {
        Some(after) => {
            std::thread::sleep(after);
            // SIGKILL; an already finished child is fine.
            let _ = child.kill();
            child.wait().expect("wait");
        }
        None => {
            let status = child.wait().expect("wait");
            assert!(status.success(), "writer failed: {status}");
        }
    }
    let out = reader.join().expect("reader thread");
    let mut run = Run {
        acked: Vec::new(),
        done_hash: None,
    };
    // Only complete lines count: a line is printed after the call returned.
    for line in out.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("ack"), Some(n)) => run.acked.push(n.parse().expect("cmd_seq")),
            (Some("done"), Some(h)) => run.done_hash = Some(h.to_owned()),
            _ => {}
        }
    }
    run
}

fn check_invariants(dir: &Path, acked_max: u64) -> u64 {
    let l = Ledger::open(dir, &LedgerOptions::default()).expect("reopens verified after a crash");
    let head = l.head();
    assert!(
        head.last_cmd_seq >= acked_max,
        "acknowledged cmd_seq {acked_max} lost: head is {}",
        head.last_cmd_seq
    );
    // One command per inbox entry, in order: nothing applied twice or skipped.
    assert_eq!(
        l.consumed_offset(&SourceKey::Embedded).unwrap_or(0),
        head.last_cmd_seq
    );
    assert!(l.inbox_last() >= head.last_cmd_seq);
    if let Some(s) = l.latest_good_snapshot().expect("snapshots").snapshot {
        assert!(s.cmd_seq <= head.last_cmd_seq);
    }
    head.last_cmd_seq
}

fn seed() -> u64 {
    std::env::var("GPUX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1ed9)
}

/// Kills writers (direct appends, or through the group committer) `crashes` times
/// in one directory, checking the invariants after each kill, then lets one finish.
/// Returns the directory.
fn crash_repeatedly(seed: u64, group: bool, crashes: usize) -> tempfile::TempDir {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ u64::from(group));
    let crashed = tempfile::tempdir().expect("tempdir");
    let mut acked_max = 0;
    let mut kills_mid_run = 0;
    for i in 0..crashes {
        // Mostly mid-run; sometimes within the open/recovery itself.
        let after = if i % 5 == 0 {
            Duration::from_millis(rng.random_range(0..15))
        } else {
            Duration::from_millis(rng.random_range(10..90))
        };
        let run = run_writer(crashed.path(), seed, group, Some(after));
        if run.done_hash.is_none() {
            kills_mid_run += 1;
        }
        // A resumed writer continues after everything acknowledged before.
        assert!(run.acked.windows(2).all(|w| w[0] < w[1]));
        if let (Some(&first), Some(&last)) = (run.acked.first(), run.acked.last()) {
            assert!(first > acked_max, "cmd_seq {first} acknowledged twice");
            acked_max = last;
        }
        let head = check_invariants(crashed.path(), acked_max);
        if head >= TARGET_COMMANDS {
            break;
        }
    }
    eprintln!(
        "crash test (group: {group}): seed {seed:#x}, {kills_mid_run} writers killed mid-run, \
         {acked_max} commands acknowledged before the final run"
    );
    assert!(
        kills_mid_run >= 3,
        "the test must actually crash the writer"
    );
    let last_run = run_writer(crashed.path(), seed, group, None);
    assert!(last_run.done_hash.is_some(), "the final run finishes");
    crashed
}

fn assert_each_inbox_entry_applied_once(d: &common::Dump) {
    assert_eq!(d.commands.len() as u64, TARGET_COMMANDS);
    for (i, c) in d.commands.iter().enumerate() {
        assert_eq!(
            c.source,
            Source::Embedded { seq: i as u64 + 1 },
            "each inbox entry applied once"
        );
    }
}

#[test]
fn killed_writers_lose_nothing_acknowledged_and_end_identical_to_a_clean_run() {
    let seed = seed();
    let clean = tempfile::tempdir().expect("tempdir");
    let clean_hash = run_writer(clean.path(), seed, false, None)
        .done_hash
        .expect("clean run finished");
    let crashed = crash_repeatedly(seed, false, CRASHES);

    let a = Ledger::open(clean.path(), &LedgerOptions::default()).expect("open clean");
    let b = Ledger::open(crashed.path(), &LedgerOptions::default()).expect("open crashed");
    assert_eq!(
        hex(&b.head().hash),
        clean_hash,
        "same chain head as the crash-free run"
    );
    let (da, db) = (dump(&a), dump(&b));
    assert_each_inbox_entry_applied_once(&db);
    assert_eq!(
        da, db,
        "same records, batches, inbox and offsets as the crash-free run"
    );
    b.verify(&mut |_| {}).expect("chain verifies");
}

#[test]
fn killed_group_committed_writers_lose_nothing_acknowledged() {
    let seed = seed();
    let clean = tempfile::tempdir().expect("tempdir");
    run_writer(clean.path(), seed, false, None);
    let crashed = crash_repeatedly(seed, true, CRASHES / 2);

    let a = Ledger::open(clean.path(), &LedgerOptions::default()).expect("open clean");
    let b = Ledger::open(crashed.path(), &LedgerOptions::default()).expect("open crashed");
    let (da, db) = (dump(&a), dump(&b));
    assert_each_inbox_entry_applied_once(&db);
    // Group commit merges by timing, so batches (and the chain hash) differ; every
    // command, event, inbox entry and offset is the same.
    assert_eq!(
        (&da.commands, &da.events, &da.inbox, &da.consumed),
        (&db.commands, &db.events, &db.inbox, &db.consumed)
    );
    assert_eq!(db.head.last_event_seq, da.head.last_event_seq);
    b.verify(&mut |_| {}).expect("chain verifies");
}
