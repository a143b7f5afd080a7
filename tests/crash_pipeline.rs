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
    check_killed_runs(tmp.path(), &input, &lines);
}

/// The same across gate closures and settlements: runs killed while slots close (a
/// closure, its schedule and its cancels are one command's events) and while
/// deliveries are reported, disputed, resolved and settled by their deadlines lose
/// nothing, apply nothing twice, settle every entry once (the crash-free state,
/// and `gpux replay audit`), and end in the crash-free state.
#[test]
fn killed_across_gate_closures_the_pipeline_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = gate_crossing_lines(6_000);
    let input = tmp.path().join("gates.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    // The script does cross gates, with deliveries scheduled.
    let mut engine: Engine = Engine::new();
    let mut events = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let env = CommandEnvelope::from_json(l.as_bytes()).unwrap();
        engine.apply(i as u64 + 1, env.ts_ns, &env.command, &mut events);
    }
    let count = |f: fn(&gpux_engine::Event) -> bool| events.iter().filter(|e| f(e)).count();
    assert!(count(|e| matches!(e, gpux_engine::Event::SlotClosed(_))) >= 20);
    assert!(count(|e| matches!(e, gpux_engine::Event::DeliveryScheduled(_))) >= 100);
    // Settled by time (unreported, reported) and by resolutions.
    let settled = |basis| {
        events
            .iter()
            .filter(|e| matches!(e, gpux_engine::Event::DeliverySettled(s) if s.basis == basis))
            .count()
    };
    use gpux_engine::event::SettlementBasis::{Reported, Resolved, Unreported};
    let counts = [Unreported, Reported, Resolved].map(settled);
    assert!(
        counts[0] >= 20 && counts[1] >= 5 && counts[2] >= 2,
        "settled unreported, reported, resolved: {counts:?}"
    );
    check_killed_runs(tmp.path(), &input, &lines);
    let audit = Command::new(env!("CARGO_BIN_EXE_gpux"))
        .args(["replay", "audit", "--data"])
        .arg(tmp.path().join("ledger"))
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

/// Commands whose engine time crosses gate closures: a market with a 5-minute
/// gate; providers 1 and 2 list capacity over the next 12 hours' slots; accounts 3
/// to 6 buy, resell, buy windows and clusters in the next few open slots; engine
/// time moves 10 minutes every 40 commands (about 30 gates pass), and ticks come
/// in between like on a real exchange. Providers report unsettled entries (the
/// script runs its own engine to know them), holders dispute them and the admin
/// resolves; some are refused (a window not open yet or closed), which is recorded
/// like any refusal; entries settle by time and by resolution.
fn gate_crossing_lines(n: usize) -> Vec<String> {
    const T0: u64 = 1_767_225_600; // 2026-01-01T00:00Z
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut commands: Vec<(u64, String)> = vec![(
        T0,
        r#"{"type":"list_market","market":"h100-sxm.us-east","tick_size":"0.01","lot_size":"1","maker_fee_bps":10,"taker_fee_bps":20}"#.into(),
    )];
    for a in 1..=6u64 {
        commands.push((T0, format!(r#"{{"type":"create_account","account":{a}}}"#)));
        commands.push((
            T0,
            format!(r#"{{"type":"deposit","account":{a},"amount":"100000"}}"#),
        ));
    }
    let line = |i: usize, secs: u64, cmd: &str| {
        format!(
            r#"{{"v":3,"ts_ns":{},"request_id":"g{i}","command":{cmd}}}"#,
            secs * 1_000_000_000 + i as u64
        )
    };
    // The script's own engine, to name delivery entries that exist.
    let mut engine: Engine = Engine::new();
    let mut sink = Vec::new();
    let mut lines = Vec::new();
    let mut apply = |engine: &mut Engine, secs: u64, cmd: &str, lines: &mut Vec<String>| {
        let l = line(lines.len(), secs, cmd);
        sink.clear();
        let ts_ns = secs * 1_000_000_000 + lines.len() as u64;
        engine.apply_json(lines.len() as u64 + 1, ts_ns, l.as_bytes(), &mut sink);
        lines.push(l);
    };
    for (secs, cmd) in commands {
        apply(&mut engine, secs, &cmd, &mut lines);
    }
    let mut listed_to = 0u64;
    for i in 0..n as u64 {
        let now = T0 + (i / 40) * 600;
        let cmd = gate_crossing_command(&mut rng, &engine, now, &mut listed_to);
        apply(&mut engine, now, &cmd, &mut lines);
    }
    lines
}

/// One command of [`gate_crossing_lines`] at engine time `now` (seconds): capacity
/// for the next 12 hours when not yet listed, asks, bids, resales, windows and
/// clusters in the next four open slots, mass cancels and ticks.
fn gate_crossing_command(
    rng: &mut ChaCha8Rng,
    engine: &Engine,
    now: u64,
    listed_to: &mut u64,
) -> String {
    const M: &str = r#""market":"h100-sxm.us-east""#;
    // The first slot whose gate (300 s before it) is still ahead.
    let first_open = (now + 300).div_ceil(3_600) * 3_600;
    let slot = first_open + rng.random_range(0..4u64) * 3_600;
    let price = format!("2.{:02}", rng.random_range(0..40u32));
    let provider = 1 + rng.random_range(0..2u64);
    let trader = 3 + rng.random_range(0..4u64);
    let lots = rng.random_range(1..4u32);
    match rng.random_range(0..20u32) {
        0 if *listed_to < first_open + 11 * 3_600 => {
            *listed_to = first_open + 11 * 3_600;
            format!(
                r#"{{"type":"add_capacity","account":{provider},{M},"from_slot":{first_open},"to_slot":{listed_to},"quantity":"20"}}"#
            )
        }
        0..=5 => format!(
            r#"{{"type":"place_order","account":{provider},{M},"slot":{slot},"side":"sell","price":"{price}","quantity":"{lots}"}}"#
        ),
        6..=11 => format!(
            r#"{{"type":"place_order","account":{trader},{M},"slot":{slot},"side":"buy","price":"{price}","quantity":"{lots}"}}"#
        ),
        12..=13 => format!(
            r#"{{"type":"place_order","account":{trader},{M},"slot":{slot},"side":"sell","price":"{price}","quantity":"1"}}"#
        ),
        14..=15 => {
            let colocate = if rng.random_bool(0.5) {
                r#","colocate":true"#
            } else {
                ""
            };
            format!(
                r#"{{"type":"place_order","account":{trader},{M},"window":{{"from_slot":{slot},"to_slot":{}}}{colocate},"side":"buy","price":"2.60","quantity":"1"}}"#,
                slot + 3_600
            )
        }
        16 => format!(r#"{{"type":"mass_cancel","account":{provider}}}"#),
        17..=18 => delivery_command(rng, engine),
        _ => r#"{"type":"tick"}"#.into(),
    }
}

/// A report, dispute or resolution of an unsettled entry (most of the time by
/// the right account; a tick when there is none).
fn delivery_command(rng: &mut ChaCha8Rng, engine: &Engine) -> String {
    let entries = engine.entries();
    if entries.is_empty() {
        return r#"{"type":"tick"}"#.into();
    }
    let e = &entries[rng.random_range(0..entries.len())];
    let delivered = rng.random_range(0..=e.quantity.to_string().parse::<u32>().unwrap_or(1));
    let entry = e.entry;
    match rng.random_range(0..6u32) {
        0 => format!(
            r#"{{"type":"dispute","account":{},"entry":{entry},"received":"{delivered}"}}"#,
            e.holder
        ),
        1 => format!(r#"{{"type":"resolve_dispute","entry":{entry},"delivered":"{delivered}"}}"#),
        _ => format!(
            r#"{{"type":"delivery_report","account":{},"entry":{entry},"delivered":"{delivered}"}}"#,
            e.provider
        ),
    }
}

/// Runs `gpux apply` on `input` (the command `lines`), killed at seeded random
/// moments until it finishes, then checks the ledger: every command once in input
/// order, every printed event stored as printed, the crash-free state, and
/// `gpux replay verify`.
fn check_killed_runs(tmp: &std::path::Path, input: &std::path::Path, lines: &[String]) {
    let data = tmp.join("ledger");
    let (printed, kills) = run_until_finished(&data, input);

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
            .map(|e| {
                let event = gpux_engine::Event::from_bytes(&e.payload).unwrap();
                String::from_utf8(event.to_json_vec()).unwrap()
            })
            .collect();
        // A kill can cut the printing of a command's events short, never add to it.
        assert!(
            stored.starts_with(events),
            "command {seq}: printed {events:?}, stored {stored:?}"
        );
    }
    // Same state as a run that never crashed.
    let rebuilt = gpux_replay::rebuild::state_at(&ledger.reader(), None, None).unwrap();
    assert_eq!(rebuilt.state_hash(), crash_free_hash(lines));
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
