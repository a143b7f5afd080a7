//! Tampering through raw RocksDB: every change to a stored record is detected and
//! named by its exact sequence number, though commands and events are packed into
//! chunks (docs/LEDGER_FORMAT.md).

mod common;

use std::path::Path;

use common::{fill, opts};
use gpux_ledger::layout::{self, RawChunk};
use gpux_ledger::{
    key_seq, seq_key, Cf, CorruptionKind, Ledger, LedgerError, LedgerOptions, VerifyOnOpen,
};

/// A ledger of 60 commands in batches of 5 (commands 1..=60, `cmd_seq % 4` events each).
fn ledger_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = Ledger::open(dir.path(), &opts()).expect("open");
    fill(&mut l, 60, 5);
    assert_eq!(l.head().last_event_seq, 90);
    dir
}

/// Opens the ledger's RocksDB directly (no ledger code) and runs `f` on it.
fn raw(path: &Path, f: impl FnOnce(&rocksdb::DB)) {
    let mut o = rocksdb::Options::default();
    o.create_if_missing(false);
    let db = rocksdb::DB::open_cf(&o, path, Cf::ALL.iter().map(|c| c.name())).expect("raw open");
    f(&db);
}

fn get(db: &rocksdb::DB, cf: Cf, key: &[u8]) -> Vec<u8> {
    let h = db.cf_handle(cf.name()).expect("cf");
    db.get_cf(h, key).expect("get").expect("present")
}

fn put(db: &rocksdb::DB, cf: Cf, key: &[u8], value: &[u8]) {
    let h = db.cf_handle(cf.name()).expect("cf");
    db.put_cf(h, key, value).expect("put");
}

/// Recomputes a record's trailing crc32c, as a careful forger would.
fn reseal(v: &mut [u8]) {
    layout::reseal(v);
}

/// The key of the last record of `cf` at or before `seq`, and its value.
fn at_or_before(db: &rocksdb::DB, cf: Cf, seq: u64) -> (u64, Vec<u8>) {
    let h = db.cf_handle(cf.name()).expect("cf");
    let mut it = db.raw_iterator_cf(h);
    it.seek_for_prev(seq_key(seq));
    let key = key_seq(it.key().expect("a record at or before")).expect("a seq key");
    (key, it.value().expect("value").to_vec())
}

/// The chunk holding event `event_seq`: its key and its records.
fn chunk_of_event(db: &rocksdb::DB, event_seq: u64) -> (u64, RawChunk) {
    let (_, index) = at_or_before(db, Cf::Events, event_seq);
    let key = layout::index_chunk(&index).expect("index entry");
    let chunk = RawChunk::parse(&get(db, Cf::Commands, &seq_key(key))).expect("chunk parses");
    (key, chunk)
}

/// Changes the stored record of event `event_seq` in place with `f`; `reseal_chunk`
/// also recomputes the chunk's own crc.
fn edit_event(db: &rocksdb::DB, event_seq: u64, reseal_chunk: bool, f: impl FnOnce(&mut Vec<u8>)) {
    let (key, _) = chunk_of_event(db, event_seq);
    let stored = get(db, Cf::Commands, &seq_key(key));
    let value = layout::edit_event(&stored, event_seq, !reseal_chunk, f).expect("edited");
    put(db, Cf::Commands, &seq_key(key), &value);
}

fn expect_corruption(r: Result<impl std::fmt::Debug, LedgerError>) -> (CorruptionKind, Cf, u64) {
    let err = r.expect_err("tampering is detected");
    let c = err
        .corruption()
        .unwrap_or_else(|| panic!("not a corruption: {err}"));
    (c.kind, c.cf, c.seq)
}

#[test]
fn a_flipped_byte_in_an_event_is_named_by_open_and_by_verify() {
    let dir = ledger_dir();
    raw(dir.path(), |db| {
        edit_event(db, 57, false, |v| {
            let at = v.len() / 2;
            v[at] ^= 0x01;
        });
    });
    assert_eq!(
        expect_corruption(Ledger::open(dir.path(), &opts())),
        (CorruptionKind::ChecksumMismatch, Cf::Events, 57)
    );
    // Truncation does not apply: the damage is below the head.
    let truncating = LedgerOptions {
        truncate_torn_tail: true,
        ..opts()
    };
    assert_eq!(
        expect_corruption(Ledger::open(dir.path(), &truncating)),
        (CorruptionKind::ChecksumMismatch, Cf::Events, 57)
    );
    // The audit path: read-only open checks the head only, verify walks everything.
    let ro = Ledger::open_read_only(dir.path()).expect("head is intact");
    assert_eq!(
        expect_corruption(ro.verify(&mut |_| {})),
        (CorruptionKind::ChecksumMismatch, Cf::Events, 57)
    );
    // Reads of that event report it too.
    assert_eq!(
        expect_corruption(ro.read_events(50, 20)),
        (CorruptionKind::ChecksumMismatch, Cf::Events, 57)
    );
}

#[test]
fn a_resealed_forgery_breaks_the_chain_at_its_batch() {
    let dir = ledger_dir();
    let batch_of_57 = {
        let l = Ledger::open_read_only(dir.path()).expect("open");
        let cmd = l.read_events(57, 1).expect("read")[0].cmd_seq;
        (cmd - 1) / 5 + 1
    };
    raw(dir.path(), |db| {
        edit_event(db, 57, true, |v| {
            let at = v.len() - 6;
            v[at] ^= 0x01;
            reseal(v);
        });
    });
    assert_eq!(
        expect_corruption(Ledger::open(dir.path(), &opts())),
        (CorruptionKind::BrokenChain, Cf::Batches, batch_of_57)
    );
}

#[test]
fn reordered_events_are_named() {
    let dir = ledger_dir();
    let mut first = 0;
    raw(dir.path(), |db| {
        // The first two neighbouring events from 30 on that share a chunk.
        let (key, mut chunk, a, b) = (30..90)
            .find_map(|e| {
                let (key, chunk) = chunk_of_event(db, e);
                let (a, b) = (chunk.event_index(e)?, chunk.event_index(e + 1)?);
                first = e;
                Some((key, chunk, a, b))
            })
            .expect("some chunk holds two events");
        chunk.records.swap(a, b);
        put(db, Cf::Commands, &seq_key(key), &chunk.encode());
    });
    assert_eq!(
        expect_corruption(Ledger::open(dir.path(), &opts())),
        (CorruptionKind::Malformed, Cf::Events, first)
    );
}

#[test]
fn a_deleted_chunk_is_a_gap_at_its_first_command() {
    let dir = ledger_dir();
    let key = {
        let l = Ledger::open_read_only(dir.path()).expect("open");
        layout::chunk_of_command(l.store(), 44).expect("a chunk holds 44")
    };
    assert!(key <= 44);
    raw(dir.path(), |db| {
        let h = db.cf_handle(Cf::Commands.name()).expect("cf");
        db.delete_cf(h, seq_key(key)).expect("delete");
    });
    assert_eq!(
        expect_corruption(Ledger::open(dir.path(), &opts())),
        (CorruptionKind::Gap, Cf::Commands, key)
    );
    // A read of command 44 names the missing command, not the neighbouring chunk.
    let ro = Ledger::open_read_only(dir.path()).expect("head is intact");
    assert_eq!(
        expect_corruption(ro.command(44)),
        (CorruptionKind::Gap, Cf::Commands, 44)
    );
}

#[test]
fn a_command_dropped_from_inside_its_chunk_is_named() {
    let dir = ledger_dir();
    raw(dir.path(), |db| {
        let (key, value) = at_or_before(db, Cf::Commands, 44);
        let mut chunk = RawChunk::parse(&value).expect("parses");
        let i = chunk.command_index(44).expect("44 is in it");
        let next = chunk.command_index(45).unwrap_or(chunk.records.len());
        // Command 44 and its events go; the header still says 44 is there.
        chunk.records.drain(i..next);
        put(db, Cf::Commands, &seq_key(key), &chunk.encode());
    });
    let (kind, cf, seq) = expect_corruption(Ledger::open(dir.path(), &opts()));
    assert_eq!((kind, cf), (CorruptionKind::Malformed, Cf::Commands));
    assert!(seq <= 44, "named at its chunk ({seq})");
}

#[test]
fn a_forged_batch_link_is_a_broken_chain() {
    let dir = ledger_dir();
    raw(dir.path(), |db| {
        let mut v = get(db, Cf::Batches, &seq_key(7));
        // prev_hash starts after version, kind and five u64s.
        v[2 + 40] ^= 0xff;
        reseal(&mut v);
        put(db, Cf::Batches, &seq_key(7), &v);
    });
    assert_eq!(
        expect_corruption(Ledger::open(dir.path(), &opts())),
        (CorruptionKind::BrokenChain, Cf::Batches, 7)
    );
}

#[test]
fn a_forged_head_is_a_meta_mismatch_even_for_the_cheap_open() {
    let dir = ledger_dir();
    raw(dir.path(), |db| {
        let mut v = get(db, Cf::Meta, b"head");
        let hash_at = v.len() - 4 - 32;
        v[hash_at] ^= 0x01;
        reseal(&mut v);
        put(db, Cf::Meta, b"head", &v);
    });
    assert_eq!(
        expect_corruption(Ledger::open(dir.path(), &opts())),
        (CorruptionKind::MetaMismatch, Cf::Meta, 12)
    );
    assert_eq!(
        expect_corruption(Ledger::open_read_only(dir.path())),
        (CorruptionKind::MetaMismatch, Cf::Meta, 12)
    );
}

#[test]
fn records_beyond_the_head_are_a_torn_tail_that_only_opt_in_truncation_removes() {
    let dir = ledger_dir();
    // As if a copy or a bug left a chunk at command 61 and an index entry for event
    // 91 without a new head.
    raw(dir.path(), |db| {
        let (_, index) = at_or_before(db, Cf::Events, 90);
        put(db, Cf::Events, &seq_key(91), &index);
        let (_, chunk) = at_or_before(db, Cf::Commands, 60);
        put(db, Cf::Commands, &seq_key(61), &chunk);
    });
    assert_eq!(
        expect_corruption(Ledger::open(dir.path(), &opts())),
        (CorruptionKind::TornTail, Cf::Commands, 61)
    );
    assert_eq!(
        expect_corruption(Ledger::open_read_only(dir.path())),
        (CorruptionKind::TornTail, Cf::Commands, 61)
    );
    let truncating = LedgerOptions {
        truncate_torn_tail: true,
        ..opts()
    };
    let mut l = Ledger::open(dir.path(), &truncating).expect("truncates");
    assert_eq!(l.head().last_cmd_seq, 60);
    assert_eq!(l.read_events(91, 10).expect("read"), vec![]);
    fill(&mut l, 70, 5);
    drop(l);
    let l = Ledger::open(dir.path(), &opts()).expect("clean");
    assert_eq!(l.head().last_cmd_seq, 70);
}

#[test]
fn a_corrupt_snapshot_is_reported_and_an_older_one_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = Ledger::open(dir.path(), &opts()).expect("open");
    fill(&mut l, 10, 5);
    l.put_snapshot(5, b"state at 5").expect("snapshot");
    l.put_snapshot(10, b"state at 10").expect("snapshot");
    drop(l);
    raw(dir.path(), |db| {
        let mut v = get(db, Cf::Snapshots, &seq_key(10));
        v[20] ^= 0x10;
        put(db, Cf::Snapshots, &seq_key(10), &v);
    });
    let l = Ledger::open(dir.path(), &opts()).expect("a bad snapshot does not stop the open");
    assert_eq!(
        expect_corruption(l.latest_snapshot()),
        (CorruptionKind::ChecksumMismatch, Cf::Snapshots, 10)
    );
    let fb = l.latest_good_snapshot().expect("fallback");
    assert_eq!(fb.snapshot.expect("older one").bytes, b"state at 5");
    assert_eq!(fb.skipped.len(), 1);
    assert_eq!(fb.skipped[0].seq, 10);
    let report = l.verify(&mut |_| {}).expect("verify");
    assert_eq!(report.snapshots, 1);
    assert_eq!(report.corrupt_snapshots.len(), 1);
}

#[test]
fn read_only_open_never_writes() {
    let dir = ledger_dir();
    let listing = |p: &Path| {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(p)
            .expect("read dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().expect("meta").len(),
                )
            })
            .filter(|(n, _)| !n.starts_with("LOG"))
            .collect();
        v.sort();
        v
    };
    let before = listing(dir.path());
    let mut l = Ledger::open_read_only(dir.path()).expect("open");
    assert_eq!(
        l.append(&common::commands(61, 61)),
        Err(LedgerError::ReadOnly)
    );
    assert_eq!(l.journal(&[b"x"]), Err(LedgerError::ReadOnly));
    assert_eq!(l.put_snapshot(1, b"s"), Err(LedgerError::ReadOnly));
    l.verify(&mut |_| {}).expect("verifies");
    drop(l);
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn a_ledger_of_another_format_version_is_refused_and_named() {
    // What a build of an older format leaves in meta: its format record, framed
    // with its version byte (1: one key per command and per event; 2: chunks with
    // JSON event payloads), and a record of that version.
    for old in [1u8, 2] {
        let dir = tempfile::tempdir().expect("tempdir");
        let command = format!("a version {old} command record");
        {
            let mut o = rocksdb::Options::default();
            o.create_if_missing(true);
            o.create_missing_column_families(true);
            let db = rocksdb::DB::open_cf(&o, dir.path(), Cf::ALL.iter().map(|c| c.name()))
                .expect("raw create");
            let mut format = vec![old, 8];
            format.extend_from_slice(b"GPUXLEDG");
            format.extend_from_slice(&[0; 4]);
            reseal(&mut format);
            put(&db, Cf::Meta, b"format", &format);
            put(&db, Cf::Commands, &seq_key(1), command.as_bytes());
        }
        for r in [
            Ledger::open(dir.path(), &opts()).map(|_| ()),
            Ledger::open_read_only(dir.path()).map(|_| ()),
        ] {
            let err = r.expect_err("refused");
            assert_eq!(
                err,
                LedgerError::UnsupportedFormat {
                    found: old,
                    supported: 3
                }
            );
            let message = err.to_string();
            assert!(
                message.contains(&format!("format version {old}"))
                    && message.contains("format version 3"),
                "{message}"
            );
        }
        // Refusing wrote nothing: the old ledger is as it was.
        raw(dir.path(), |db| {
            assert_eq!(get(db, Cf::Meta, b"format")[0], old);
            assert_eq!(get(db, Cf::Commands, &seq_key(1)), command.as_bytes());
        });
    }
}

/// `VerifyOnOpen::Background` opens on the head's checks alone; the deferred
/// verification then finds damage below the head — while the ledger goes on
/// committing after it, which it neither reads nor trips over.
#[test]
fn a_background_open_defers_damage_below_the_head_to_its_verification() {
    let background = LedgerOptions {
        verify_on_open: VerifyOnOpen::Background,
        ..opts()
    };
    let dir = ledger_dir();
    raw(dir.path(), |db| {
        edit_event(db, 12, true, |v| {
            let at = v.len() - 6;
            v[at] ^= 0x01;
            reseal(v);
        });
    });
    let mut l = Ledger::open(dir.path(), &background).expect("the head is intact");
    let deferred = l.take_deferred_verification().expect("deferred once");
    assert!(l.take_deferred_verification().is_none(), "only once");
    assert_eq!(deferred.head().last_cmd_seq, 60);
    fill(&mut l, 80, 5);
    assert_eq!(l.head().last_cmd_seq, 80);
    let batch_of_12 = {
        let cmd = l.read_events(12, 1).expect("read")[0].cmd_seq;
        (cmd - 1) / 5 + 1
    };
    assert_eq!(
        expect_corruption(deferred.run(&mut |_| {})),
        (CorruptionKind::BrokenChain, Cf::Batches, batch_of_12)
    );
}

#[test]
fn a_background_verification_of_an_intact_ledger_covers_its_head_at_open() {
    let background = LedgerOptions {
        verify_on_open: VerifyOnOpen::Background,
        ..opts()
    };
    let dir = ledger_dir();
    let mut l = Ledger::open(dir.path(), &background).expect("open");
    let deferred = l.take_deferred_verification().expect("deferred");
    fill(&mut l, 80, 5);
    let report = deferred.run(&mut |_| {}).expect("intact");
    assert_eq!(
        (report.commands, report.events, report.batches),
        (60, 90, 12)
    );
    assert_eq!(report.head.last_cmd_seq, 60);
    // The offsets it checked are the ones the open read: the 60th command's.
    let full = Ledger::open_read_only(dir.path()).expect("open");
    assert_eq!(full.head().last_cmd_seq, 80);
    assert_eq!(report.consumed.values().copied().max(), Some(60));
    // Other modes defer nothing. (The verification holds the store open too.)
    drop((l, deferred));
    let mut tail = Ledger::open(
        dir.path(),
        &LedgerOptions {
            verify_on_open: VerifyOnOpen::Tail,
            ..opts()
        },
    )
    .expect("open");
    assert!(tail.take_deferred_verification().is_none());
}
