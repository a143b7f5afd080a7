//! Crash safety of the whole embedded pipeline, with real processes: `gpux apply
//! --data` is killed with SIGKILL at seeded random moments and restarted on the
//! same input until it finishes. Then the ledger must hold every command exactly
//! once, in input order; every event a killed run printed (printing happens only
//! after commit) must be in the ledger as printed; the state must equal a crash-free
//! run's; and `gpux replay verify` must pass.

use gpux::bench::workload::{self, WorkloadConfig};
use gpux_engine::{CommandEnvelope, Engine, EventEnvelope};
use gpux_ledger::{Ledger, Source};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const COMMANDS: usize = 20_000;
const KILLS: usize = 12;

fn command_file(dir: &std::path::Path) -> (std::path::PathBuf, Vec<String>) {
    let cfg = WorkloadConfig {
        accounts: 50,
        ..WorkloadConfig::new(COMMANDS, 11)
    };
    let mut lines = Vec::new();
    for (i, command) in workload::setup(&cfg)
        .into_iter()
        .chain(workload::orders(&cfg))
        .enumerate()
    {
        let env = CommandEnvelope {
            v: gpux_engine::PROTOCOL_VERSION,
            ts_ns: workload::ts_ns(i as u64),
            request_id: Some(format!("r{i}")),
            idempotent: false,
            command,
        };
        lines.push(env.to_json());
    }
    // A poison line is not accepted by `gpux apply` (it stops there), so the
    // pipeline's malformed-command path is covered by the engine and replay tests.
    let path = dir.join("commands.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, lines)
}

fn crash_free_hash(lines: &[String]) -> gpux_engine::StateHash {
    let mut engine: Engine = Engine::new();
    let mut events = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let env = CommandEnvelope::from_json(l.as_bytes()).unwrap();
        engine.apply_request(
            i as u64 + 1,
            env.ts_ns,
            env.idempotent_request_id(),
            &env.command,
            &mut events,
        );
    }
    engine.state_hash()
}

/// Runs `gpux apply --data` and kills it after `kill_after` (if it has not
/// finished); returns the events it printed (complete lines only) and whether it
/// finished on its own.
fn run(
    data: &std::path::Path,
    input: &std::path::Path,
    kill_after: Option<Duration>,
) -> (Vec<EventEnvelope>, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpux"))
        .args(["apply", "--snapshot-every", "700", "--data"])
        .arg(data)
        .arg("--commands")
        .arg(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gpux runs");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line.ends_with('\n') {
                out.push(
                    serde_json::from_str::<EventEnvelope>(&line)
                        .expect("complete lines are events"),
                );
            }
            line.clear();
        }
        out
    });
    let finished = match kill_after {
        Some(d) => {
            std::thread::sleep(d);
            let done = child.try_wait().unwrap().is_some();
            if !done {
                child.kill().unwrap(); // SIGKILL
            }
            child.wait().unwrap();
            done
        }
        None => child.wait().unwrap().success(),
    };
    (reader.join().unwrap(), finished)
}

/// The events runs printed, by command, as JSON texts.
type Printed = BTreeMap<u64, Vec<String>>;

/// Runs `gpux apply --data` up to `KILLS` times, each killed at a seeded random
/// moment unless it finishes first, then once more to the end if none finished.
/// Returns what the runs printed and how many were killed.
fn run_until_finished(data: &std::path::Path, input: &std::path::Path) -> (Printed, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut printed = Printed::new();
    let mut kills = 0;
    for _ in 0..KILLS {
        let (events, done) = run(
            data,
            input,
            Some(Duration::from_millis(rng.random_range(30..400))),
        );
        record(&mut printed, events);
        if done {
            return (printed, kills);
        }
        kills += 1;
    }
    let (events, done) = run(data, input, None);
    assert!(done, "the last run finishes");
    record(&mut printed, events);
    (printed, kills)
}

/// Adds the events of one run to `printed`.
fn record(printed: &mut Printed, events: Vec<EventEnvelope>) {
    for e in events {
        printed
            .entry(e.seq)
            .or_default()
            .push(serde_json::to_string(&e.event).unwrap());
    }
}

#[test]
fn killed_at_random_moments_the_pipeline_loses_nothing_and_applies_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, lines) = command_file(tmp.path());
    let data = tmp.path().join("ledger");
    let (printed, kills) = run_until_finished(&data, &input);
    assert!(
        kills >= 3,
        "the test must actually kill runs (killed {kills})"
    );

    let ledger = Ledger::open_read_only(&data).expect("the ledger opens and verifies");
    let n = lines.len() as u64;
    assert_eq!(ledger.head().last_cmd_seq, n, "every command, once");
    // Command i is input line i, from inbox entry i: nothing skipped, nothing twice.
    for (i, rec) in ledger.commands(1).unwrap().enumerate() {
        let rec = rec.unwrap();
        assert_eq!(rec.cmd_seq, i as u64 + 1);
        assert_eq!(rec.source, Source::Embedded { seq: i as u64 + 1 });
        assert_eq!(rec.payload, lines[i].as_bytes());
    }
    // What a run printed (acknowledged) is what the ledger holds, each command once.
    for (seq, events) in &printed {
        let stored: Vec<String> = ledger
            .events_of_command(*seq)
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8(e.payload).unwrap())
            .collect();
        // A kill can cut the printing of a command's events short, never add to it.
        assert!(
            stored.starts_with(events),
            "command {seq}: printed {events:?}, stored {stored:?}"
        );
    }
    // Same state as a run that never crashed.
    let rebuilt = gpux_replay::rebuild::state_at(&ledger.reader(), None, None).unwrap();
    assert_eq!(rebuilt.state_hash(), crash_free_hash(&lines));
    drop(ledger);

    let verify = Command::new(env!("CARGO_BIN_EXE_gpux"))
        .args(["replay", "verify", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
