//! Runs [`gpux_ledger::bench`] and prints its report as one JSON line.
//!
//! ```text
//! cargo run --release -p gpux-ledger --example bench -- --events 1000000 \
//!     [--dir DIR] [--commands-per-submission 32] [--verify full|tail] [--max-wait-us 0]
//! ```
//!
//! Without `--dir` it uses a fresh temporary directory on the same disk as the target
//! dir's parent (`$TMPDIR`), removed afterwards.

use std::time::Duration;

use gpux_ledger::{bench, BenchOptions, VerifyOnOpen};

fn main() {
    let mut events = 1_000_000u64;
    let mut dir: Option<String> = None;
    let mut opts = BenchOptions::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage(a));
        match a.as_str() {
            "--events" => events = val().parse().unwrap_or_else(|_| usage(a)),
            "--dir" => dir = Some(val()),
            "--commands-per-submission" => {
                opts.commands_per_submission = val().parse().unwrap_or_else(|_| usage(a))
            }
            "--max-wait-us" => {
                opts.group.max_wait =
                    Duration::from_micros(val().parse().unwrap_or_else(|_| usage(a)))
            }
            "--max-commands-per-write" => {
                opts.group.max_commands_per_write = val().parse().unwrap_or_else(|_| usage(a))
            }
            "--recycle-wal" => {
                opts.ledger.rocks.recycle_wal_files = val().parse().unwrap_or_else(|_| usage(a))
            }
            "--write-buffer-mb" => {
                let mb: usize = val().parse().unwrap_or_else(|_| usage(a));
                opts.ledger.rocks.write_buffer_bytes = mb << 20;
            }
            "--verify" => {
                opts.ledger.verify_on_open = match val().as_str() {
                    "full" => VerifyOnOpen::Full,
                    "tail" => VerifyOnOpen::Tail,
                    _ => usage(a),
                }
            }
            _ => usage(a),
        }
    }
    let tmp;
    let path = match &dir {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().expect("temporary directory");
            tmp.path().join("ledger")
        }
    };
    match bench(&path, events, &opts) {
        Ok(report) => println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        ),
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::exit(1);
        }
    }
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "bad argument {arg}\nusage: bench [--events N] [--dir DIR] [--commands-per-submission N] \
         [--max-wait-us N] [--max-commands-per-write N] [--recycle-wal N] [--write-buffer-mb N] \
         [--verify full|tail]"
    );
    std::process::exit(2)
}
