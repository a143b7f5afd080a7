//! `ledger-crash-writer [--group] DIR SEED TARGET`: the child process of the crash
//! tests (`--group`: through the group committer, see `run_group`).
//!
//! Runs a miniature embedded pipeline whose every input and output is a pure function
//! of `SEED`: it journals commands into the inbox, then applies them in batches
//! (resuming from the consumed inbox offset stored in the ledger), and writes a
//! snapshot every 100 commands. After each call returns it prints one line and flushes:
//! `journal SEQ`, `ack CMD_SEQ`, `snap CMD_SEQ`, and finally `done HASH`. The test kills
//! it with SIGKILL at random moments; a printed `ack` is a promise the ledger must keep.
//!
//! Batch boundaries depend only on the first `cmd_seq` of the batch, so a run that was
//! killed and resumed any number of times produces the same batches, hence the same
//! chain hash, as a run that never crashed.

use std::io::Write;
use std::process::ExitCode;

use gpux_ledger::{
    hex, AppliedCommand, GroupCommitOptions, GroupCommitter, Ledger, LedgerOptions, Source,
    SourceKey,
};

const SNAPSHOT_EVERY_COMMANDS: u64 = 100;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn bytes(seed: u64, tag: u64, n: usize) -> Vec<u8> {
    (0..n as u64)
        .map(|i| mix(seed ^ mix(tag) ^ i) as u8)
        .collect()
}

/// The inbox payload (the client's command) at inbox seq `seq`.
fn inbox_payload(seed: u64, seq: u64) -> Vec<u8> {
    let n = 16 + (mix(seed ^ seq) % 48) as usize;
    let mut p = format!("cmd-{seq}:").into_bytes();
    p.extend(bytes(seed, seq, n));
    p
}

/// The "engine": events a command produces.
fn events(seed: u64, cmd_seq: u64, payload: &[u8]) -> Vec<Vec<u8>> {
    let n = 1 + mix(seed.wrapping_add(cmd_seq)) % 4;
    (0..n)
        .map(|i| {
            let mut e = format!("ev-{cmd_seq}.{i}:").into_bytes();
            e.extend_from_slice(&payload[..payload.len().min(8)]);
            e.extend(bytes(seed, cmd_seq * 8 + i, 24));
            e
        })
        .collect()
}

fn batch_size(seed: u64, first_cmd_seq: u64) -> u64 {
    1 + mix(seed ^ first_cmd_seq.rotate_left(17)) % 16
}

fn journal_chunk(seed: u64, next_seq: u64) -> u64 {
    1 + mix(seed ^ next_seq.rotate_left(29)) % 48
}

fn run(dir: &str, seed: u64, target: u64) -> Result<String, gpux_ledger::LedgerError> {
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        // A closed pipe must not crash the writer before it acknowledges durably.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let mut ledger = Ledger::open(dir, &LedgerOptions::default())?;
    loop {
        let consumed = ledger.consumed_offset(&SourceKey::Embedded).unwrap_or(0);
        if consumed >= target {
            break;
        }
        let head = ledger.head();
        assert_eq!(head.last_cmd_seq, consumed, "one command per inbox entry");
        let first = head.last_cmd_seq + 1;
        let want = batch_size(seed, first).min(target - consumed);
        let inbox_last = ledger.inbox_last();
        if inbox_last < consumed + want {
            let n = journal_chunk(seed, inbox_last + 1).min(target - inbox_last);
            let payloads: Vec<Vec<u8>> = (inbox_last + 1..=inbox_last + n)
                .map(|s| inbox_payload(seed, s))
                .collect();
            let seqs = ledger.journal(&payloads)?;
            say(format!("journal {}", seqs.last().copied().unwrap_or(0)));
            continue;
        }
        let entries = ledger.read_inbox(consumed + 1, want as usize)?;
        assert_eq!(entries.len() as u64, want, "inbox holds the whole batch");
        let commands: Vec<AppliedCommand> = entries
            .into_iter()
            .enumerate()
            .map(|(i, (seq, payload))| command(seed, first + i as u64, seq, payload))
            .collect();
        let receipt = ledger.append(&commands)?;
        let last = receipt.header.last_cmd_seq;
        say(format!("ack {last}"));
        if last / SNAPSHOT_EVERY_COMMANDS > (first - 1) / SNAPSHOT_EVERY_COMMANDS {
            let state: Vec<u8> = receipt.header.hash.repeat(64);
            ledger.put_snapshot(last, &state)?;
            say(format!("snap {last}"));
        }
    }
    let hash = hex(&ledger.head().hash);
    say(format!("done {hash}"));
    Ok(hash)
}

fn say_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn command(seed: u64, cmd_seq: u64, seq: u64, payload: Vec<u8>) -> AppliedCommand {
    AppliedCommand {
        cmd_seq,
        ts_ns: cmd_seq * 1_000_000 + mix(seed ^ cmd_seq) % 1_000,
        source: Source::Embedded { seq },
        events: events(seed, cmd_seq, &payload),
        payload,
    }
}

/// The same pipeline through the [`GroupCommitter`]: submissions are not waited for,
/// so writes merge as they queue (batch boundaries then depend on timing, the
/// commands and events do not); `ack` is printed by the completion, once durable.
fn run_group(dir: &str, seed: u64, target: u64) -> Result<String, gpux_ledger::LedgerError> {
    let ledger = Ledger::open(dir, &LedgerOptions::default())?;
    let mut next_cmd = ledger.head().last_cmd_seq + 1;
    let consumed = ledger.consumed_offset(&SourceKey::Embedded).unwrap_or(0);
    assert_eq!(next_cmd - 1, consumed, "one command per inbox entry");
    let mut inbox_last = ledger.inbox_last();
    let gc = GroupCommitter::spawn(
        ledger,
        GroupCommitOptions {
            max_commands_per_write: 64,
            ..GroupCommitOptions::default()
        },
    )?;
    let reader = gc.reader();
    while next_cmd <= target {
        let want = batch_size(seed, next_cmd).min(target - next_cmd + 1);
        if inbox_last < next_cmd - 1 + want {
            let n = journal_chunk(seed, inbox_last + 1).min(target - inbox_last);
            let payloads: Vec<Vec<u8>> = (inbox_last + 1..=inbox_last + n)
                .map(|s| inbox_payload(seed, s))
                .collect();
            let seqs = gc.journal(payloads)?.wait()?;
            inbox_last = seqs.last().copied().unwrap_or(inbox_last);
            say_line(&format!("journal {inbox_last}"));
            continue;
        }
        let entries = reader.read_inbox(next_cmd, want as usize)?;
        assert_eq!(
            entries.len() as u64,
            want,
            "inbox holds the whole submission"
        );
        let commands: Vec<AppliedCommand> = entries
            .into_iter()
            .enumerate()
            .map(|(i, (seq, payload))| command(seed, next_cmd + i as u64, seq, payload))
            .collect();
        next_cmd += want;
        gc.handle().submit_with(commands, |r| match r {
            Ok(c) => say_line(&format!("ack {}", c.assigned.last_cmd_seq)),
            Err(e) => say_line(&format!("failed {e}")),
        })?;
    }
    let (ledger, stats) = gc.shutdown()?;
    assert_eq!(stats.failed_writes, 0);
    let hash = hex(&ledger.head().hash);
    say_line(&format!("done {hash}"));
    Ok(hash)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (group, rest) = match args.get(1).map(String::as_str) {
        Some("--group") => (true, &args[2..]),
        _ => (false, &args[1..]),
    };
    let parsed = match rest {
        [dir, seed, target] => seed
            .parse::<u64>()
            .ok()
            .zip(target.parse::<u64>().ok())
            .map(|(s, t)| (dir.clone(), s, t)),
        _ => None,
    };
    let Some((dir, seed, target)) = parsed else {
        eprintln!("usage: ledger-crash-writer [--group] DIR SEED TARGET_COMMANDS");
        return ExitCode::from(2);
    };
    let result = if group {
        run_group(&dir, seed, target)
    } else {
        run(&dir, seed, target)
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger-crash-writer: {e}");
            ExitCode::FAILURE
        }
    }
}
