//! `gpux serve` whose ledger cannot be written: the real binary on real RocksDB stops
//! serving and exits with status 1, its last line naming the `cmd_seq` whose batch
//! could not be committed; the ledger holds exactly the commands before it and
//! reopens clean.
//!
//! The write failure is real, not injected: the child runs under `RLIMIT_FSIZE`
//! with `SIGXFSZ` ignored, so once RocksDB's write-ahead log would grow past the
//! limit the kernel refuses the write (`EFBIG`, "File too large") — which root is
//! not exempt from, unlike file permissions. The embedded command log is filled
//! before the server starts (so the first writes to fail are the pipeline's
//! commits, not a client's journal write).

#![cfg(target_os = "linux")]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gpux::bench::workload::{self, WorkloadConfig};
use gpux_engine::CommandEnvelope;
use gpux_ledger::{Ledger, LedgerOptions};

/// Commands in the log: far more than fit in the write-ahead log under the limit.
const COMMANDS: usize = 5_000;
/// The file-size limit of the server process, bytes: above what opening an
/// existing ledger writes (RocksDB's OPTIONS, MANIFEST and LOG files), below the
/// write-ahead log the commands need (about 1 KB each).
const FILE_SIZE_LIMIT_BYTES: u64 = 512 * 1024;
/// A bound for the server to fail and exit (a failure guard, not a timing).
const PATIENCE: Duration = Duration::from_secs(120);

fn journal_commands(data: &std::path::Path) {
    let cfg = WorkloadConfig {
        accounts: 20,
        ..WorkloadConfig::new(COMMANDS, 5)
    };
    let lines: Vec<Vec<u8>> = workload::setup(&cfg)
        .into_iter()
        .chain(workload::orders(&cfg))
        .take(COMMANDS)
        .enumerate()
        .map(|(i, command)| {
            CommandEnvelope {
                v: gpux_engine::PROTOCOL_VERSION,
                ts_ns: 1_700_000_000_000_000_000 + i as u64,
                request_id: Some(format!("r{i}")),
                idempotent: false,
                command,
            }
            .to_json()
            .into_bytes()
        })
        .collect();
    let mut ledger = Ledger::open(data, &LedgerOptions::default()).unwrap();
    for chunk in lines.chunks(500) {
        ledger.journal(chunk).unwrap();
    }
    ledger.close().unwrap();
}

#[test]
fn serve_exits_non_zero_naming_the_cmd_seq_when_the_ledger_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    journal_commands(&data);

    let mut server = Command::new(env!("CARGO_BIN_EXE_gpux"));
    server
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit,
    // signal) on values owned by the closure.
    unsafe {
        server.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: FILE_SIZE_LIMIT_BYTES,
                rlim_max: FILE_SIZE_LIMIT_BYTES,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Ignored (inherited across exec), the write fails with EFBIG instead
            // of the signal killing the process.
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = server.spawn().expect("gpux runs");
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let status = child.wait();
        let _ = tx.send((status, text));
    });
    let (status, stderr) = rx
        .recv_timeout(PATIENCE)
        .expect("the server stops by itself once its ledger fails");
    let status = status.unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}\n{stderr}");

    // The last line is main's: the exchange's typed error with the batch's range.
    let last = stderr.lines().last().unwrap_or_default();
    let prefix = "gpux: the exchange failed: cannot commit cmd_seq ";
    assert!(last.starts_with(prefix), "{stderr}");
    assert!(last.contains("File too large"), "{stderr}");
    let cmd_seq: u64 = last[prefix.len()..]
        .split("..")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cmd_seq in {last:?}"));
    assert!(cmd_seq >= 1 && cmd_seq <= COMMANDS as u64, "{last}");
    // The pipeline logged it with the cmd_seq, and serve stopped the gateway.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("pipeline failed") && l.contains(&format!("cmd_seq={cmd_seq}"))),
        "{stderr}"
    );
    assert!(stderr.contains("the exchange failed: "), "{stderr}");

    // Exactly the commands before it are in the ledger, which reopens (fully
    // verified) without repair.
    let ledger = Ledger::open(&data, &LedgerOptions::default()).unwrap();
    assert_eq!(ledger.head().last_cmd_seq, cmd_seq - 1);
}
