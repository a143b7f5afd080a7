//! Replay never writes to what it audits: after every tool has run, every file of
//! the ledger directory is byte-identical (RocksDB's own LOCK and info LOG files
//! aside).

use std::collections::BTreeMap;
use std::path::Path;

use gpux_replay::audit::{self, AuditOptions};
use gpux_replay::export::{self, ExportOptions, Format, What};
use gpux_replay::{diff, state, statement, verify, Progress};
use sha2::{Digest, Sha256};

use crate::common::standard;

/// SHA-256 of every file in `dir`, except RocksDB's LOCK and info logs.
fn fingerprint(dir: &Path) -> BTreeMap<String, [u8; 32]> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "LOCK" && !name.starts_with("LOG"))
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            (name, Sha256::digest(&bytes).into())
        })
        .collect()
}

#[test]
fn no_tool_changes_a_byte_of_the_ledger() {
    let (dir, w) = standard();
    let p = dir.path();
    let before = fingerprint(p);
    assert!(
        before.keys().any(|n| n.ends_with(".log")),
        "the WAL is there"
    );
    let hidden = Progress::hidden();
    let mut sink = Vec::new();

    assert!(verify::run(p, &hidden, &mut sink).unwrap().is_success());
    for at in [None, Some(1), Some(w.last_seq() / 2)] {
        assert!(state::run(p, at, 5, &hidden, &mut sink)
            .unwrap()
            .is_success());
    }
    for what in [What::Trades, What::Events, What::Commands] {
        for format in [Format::Jsonl, Format::Csv] {
            let opts = ExportOptions {
                what,
                format,
                from: Some(3),
                to: None,
            };
            assert!(export::run(p, &opts, &hidden, &mut sink)
                .unwrap()
                .is_success());
        }
    }
    for account in [0, 1, 6] {
        assert!(statement::run(p, account, &hidden, &mut sink)
            .unwrap()
            .is_success());
    }
    assert!(audit::run(p, &AuditOptions::default(), &hidden, &mut sink)
        .unwrap()
        .is_success());
    assert!(diff::run(p, p, &hidden, &mut sink).unwrap().is_success());
    {
        // The library entry point the pipeline uses.
        let ledger = gpux_ledger::Ledger::open_read_only(p).unwrap();
        gpux_replay::rebuild::state_at(&ledger.reader(), None, None).unwrap();
    }

    assert_eq!(fingerprint(p), before, "replay wrote to the ledger");
    assert!(!sink.is_empty());
}
