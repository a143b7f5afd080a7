//! One conformance suite, run against every `Store` implementation (RocksDB, memory,
//! and the fault wrapper with no fault armed): the store contract first, then the
//! ledger behaviour built on it.

mod common;

use std::collections::BTreeMap;

use common::{command, commands, dump, fill, opts, Harness, MemHarness, RocksHarness};
use gpux_ledger::{
    seq_key, AppliedCommand, Cf, CorruptionKind, FaultyStore, GroupCommitOptions, GroupCommitter,
    Ledger, LedgerError, Op, Position, Source, SourceKey, Store, WriteOps, GENESIS_HASH,
};

/// The memory store behind the fault wrapper, nothing armed: must behave the same.
struct FaultyHarness(MemHarness);

impl Harness for FaultyHarness {
    type S = FaultyStore<gpux_ledger::MemStore>;
    fn fresh() -> Self {
        Self(MemHarness::fresh())
    }
    fn open(&self) -> Self::S {
        FaultyStore::new(self.0.open())
    }
}

fn collect(s: &dyn Store, cf: Cf) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut c = s.cursor(cf);
    c.seek_to_first();
    let mut out = Vec::new();
    while let Some((k, v)) = c.entry() {
        out.push((k.to_vec(), v.to_vec()));
        c.next();
    }
    c.status().expect("cursor status");
    out
}

// ---- the store contract ----

pub fn store_put_get_and_column_families_are_separate<H: Harness>() {
    let h = H::fresh();
    let s = h.open();
    let mut w = WriteOps::new();
    w.put(Cf::Events, b"k", b"events");
    w.put(Cf::Commands, b"k", b"commands");
    s.write(&w, true).expect("write");
    assert_eq!(
        s.get(Cf::Events, b"k").expect("get"),
        Some(b"events".to_vec())
    );
    assert_eq!(
        s.get(Cf::Commands, b"k").expect("get"),
        Some(b"commands".to_vec())
    );
    assert_eq!(s.get(Cf::Meta, b"k").expect("get"), None);
    drop(s);
    let s = h.open();
    assert_eq!(
        s.get(Cf::Events, b"k").expect("get"),
        Some(b"events".to_vec()),
        "survives reopen"
    );
}

pub fn store_applies_ops_in_order<H: Harness>() {
    let s = H::fresh().open();
    let mut w = WriteOps::new();
    w.put(Cf::Meta, b"a", b"1");
    w.delete(Cf::Meta, b"a");
    w.delete(Cf::Meta, b"b");
    w.put(Cf::Meta, b"b", b"2");
    w.put(Cf::Meta, b"c", b"3");
    w.put(Cf::Meta, b"c", b"4");
    assert_eq!(w.len(), 6);
    s.write(&w, false).expect("write");
    assert_eq!(
        collect(&s, Cf::Meta),
        vec![
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"4".to_vec())
        ]
    );
    s.write(&WriteOps::new(), true)
        .expect("an empty write is fine");
}

pub fn store_cursor_orders_big_endian_keys_and_seeks<H: Harness>() {
    let s = H::fresh().open();
    let mut w = WriteOps::new();
    for seq in [300u64, 1, 256, 2, 255] {
        w.put(Cf::Events, &seq_key(seq), &seq.to_le_bytes());
    }
    s.write(&w, true).expect("write");
    let keys: Vec<u64> = collect(&s, Cf::Events)
        .iter()
        .map(|(k, _)| gpux_ledger::key_seq(k).expect("seq key"))
        .collect();
    assert_eq!(keys, vec![1, 2, 255, 256, 300]);

    let mut c = s.cursor(Cf::Events);
    let at = |c: &dyn gpux_ledger::Cursor| {
        c.entry()
            .map(|(k, _)| gpux_ledger::key_seq(k).expect("seq"))
    };
    c.seek(&seq_key(3));
    assert_eq!(at(&*c), Some(255));
    c.next();
    assert_eq!(at(&*c), Some(256));
    c.prev();
    c.prev();
    assert_eq!(at(&*c), Some(2));
    c.seek_for_prev(&seq_key(299));
    assert_eq!(at(&*c), Some(256));
    c.seek_for_prev(&seq_key(0));
    assert_eq!(at(&*c), None);
    c.seek(&seq_key(301));
    assert_eq!(at(&*c), None);
    c.seek_to_last();
    assert_eq!(at(&*c), Some(300));
    c.next();
    assert_eq!(at(&*c), None);
    c.seek_to_first();
    assert_eq!(at(&*c), Some(1));
    c.status().expect("status");
    let mut empty = s.cursor(Cf::Inbox);
    empty.seek_to_first();
    assert!(empty.entry().is_none());
}

pub fn store_cursor_sees_the_view_at_creation<H: Harness>() {
    let s = H::fresh().open();
    let mut w = WriteOps::new();
    w.put(Cf::Commands, &seq_key(1), b"one");
    s.write(&w, true).expect("write");
    let mut c = s.cursor(Cf::Commands);
    let mut w = WriteOps::new();
    w.put(Cf::Commands, &seq_key(2), b"two");
    w.delete(Cf::Commands, &seq_key(1));
    s.write(&w, true).expect("write");
    c.seek_to_first();
    assert_eq!(c.entry().map(|(_, v)| v.to_vec()), Some(b"one".to_vec()));
    c.next();
    assert!(c.entry().is_none(), "the later write is not visible");
    drop(c);
    assert_eq!(
        collect(&s, Cf::Commands),
        vec![(seq_key(2).to_vec(), b"two".to_vec())]
    );
}

pub fn store_write_ops_expose_what_was_put<H: Harness>() {
    let mut w = WriteOps::with_capacity(64, 2);
    let v = w
        .put_with(Cf::Inbox, b"key", |b| b.extend_from_slice(b"value"))
        .to_vec();
    assert_eq!(v, b"value");
    w.delete(Cf::Inbox, b"gone");
    assert_eq!(
        w.iter().collect::<Vec<_>>(),
        vec![
            Op::Put {
                cf: Cf::Inbox,
                key: b"key",
                value: b"value"
            },
            Op::Delete {
                cf: Cf::Inbox,
                key: b"gone"
            }
        ]
    );
    assert_eq!(w.prefix(1).len(), 1);
    let s = H::fresh().open();
    s.write(&w, true).expect("write");
    assert_eq!(
        s.get(Cf::Inbox, b"key").expect("get"),
        Some(b"value".to_vec())
    );
}

// ---- the ledger on top of it ----

/// Reads of the 40-command ledger `ledger_appends_reads_and_reopens` writes: one
/// command and its events, past the head, pages of commands and events.
fn check_reads<S: Store>(l: &Ledger<S>, expected_events: u64) {
    let c = l.command(3).expect("read").expect("present");
    assert_eq!(c.payload, b"command 3");
    assert_eq!((c.first_event_seq, c.event_count), (4, 3));
    let evs = l.events_of_command(3).expect("events of 3");
    assert_eq!(
        evs.iter()
            .map(|e| (e.event_seq, e.cmd_seq))
            .collect::<Vec<_>>(),
        vec![(4, 3), (5, 3), (6, 3)]
    );
    assert_eq!(evs[2].payload, b"event 2 of command 3");
    assert!(l.events_of_command(4).expect("read").is_empty());
    assert!(l.events_of_command(41).expect("read").is_empty());
    assert_eq!(l.command(41).expect("read"), None);
    assert_eq!(l.read_commands(39, 10).expect("read").len(), 2);
    assert_eq!(l.read_events(expected_events, 10).expect("read").len(), 1);
    let page: Vec<u64> = l
        .read_events(10, 5)
        .expect("read")
        .iter()
        .map(|e| e.event_seq)
        .collect();
    assert_eq!(page, vec![10, 11, 12, 13, 14]);
}

pub fn ledger_appends_reads_and_reopens<H: Harness>() {
    let h = H::fresh();
    let mut l = Ledger::with_store(h.open(), &opts()).expect("open empty");
    assert_eq!(l.head().last_cmd_seq, 0);
    assert_eq!(l.head().hash, GENESIS_HASH);
    let r1 = l.append(&commands(1, 3)).expect("append");
    assert_eq!(
        (
            r1.header.batch_no,
            r1.header.first_cmd_seq,
            r1.header.last_cmd_seq
        ),
        (1, 1, 3)
    );
    // Commands 1..=3 produce 1 + 2 + 3 events.
    assert_eq!(
        (r1.header.first_event_seq, r1.header.last_event_seq),
        (1, 6)
    );
    assert_eq!(r1.header.prev_hash, GENESIS_HASH);
    let r2 = l
        .append(&commands(4, 4))
        .expect("append a command without events");
    assert_eq!(
        (r2.header.first_event_seq, r2.header.last_event_seq),
        (7, 6)
    );
    assert_eq!(r2.header.prev_hash, r1.header.hash);
    fill(&mut l, 40, 7);

    let head = l.head();
    assert_eq!(head.last_cmd_seq, 40);
    let expected_events: u64 = (1..=40u64).map(|c| c % 4).sum();
    assert_eq!(head.last_event_seq, expected_events);
    assert_eq!(l.consumed_offset(&common::source_key()), Some(40));

    check_reads(&l, expected_events);
    let reader = l.reader();
    assert_eq!(reader.head().expect("head"), head);
    assert_eq!(
        reader.consumed_offset(&common::source_key()).expect("read"),
        Some(40)
    );

    let before = dump(&l);
    drop(reader);
    l.close().expect("clean close");
    let l = Ledger::with_store(h.open(), &opts()).expect("reopen verifies");
    assert_eq!(dump(&l), before);
    let report = l.verify(&mut |_| {}).expect("verify");
    assert_eq!(
        (report.commands, report.events, report.batches),
        (40, expected_events, head.last_batch_no)
    );
    assert_eq!(report.head, head);
}

pub fn ledger_rejects_invalid_appends_without_side_effects<H: Harness>() {
    let h = H::fresh();
    let mut l = Ledger::with_store(h.open(), &opts()).expect("open");
    fill(&mut l, 5, 5);
    let before = dump(&l);
    assert_eq!(l.append(&[]), Err(LedgerError::EmptyBatch));
    assert_eq!(
        l.append(&commands(7, 7)),
        Err(LedgerError::OutOfSequence {
            expected: 6,
            got: 7
        })
    );
    let mut late = command(6);
    late.ts_ns = 1;
    assert!(matches!(
        l.append(&[late]),
        Err(LedgerError::TimestampRegressed { cmd_seq: 6, .. })
    ));
    let mut replay = command(6);
    replay.source = command(5).source;
    assert!(matches!(
        l.append(&[replay]),
        Err(LedgerError::SourceNotAdvancing {
            cmd_seq: 6,
            position: Position {
                offset: 5,
                index: None
            },
            consumed: Position {
                offset: 5,
                index: None
            },
            ..
        })
    ));
    // A later command of the same batch repeating an earlier one's offset.
    let mut twice = commands(6, 7);
    twice[1].source = command(6).source;
    assert!(matches!(
        l.append(&twice),
        Err(LedgerError::SourceNotAdvancing { cmd_seq: 7, .. })
    ));
    let mut huge = command(6);
    huge.payload = vec![0; gpux_ledger::PAYLOAD_BYTES_MAX + 1];
    assert!(matches!(
        l.append(&[huge]),
        Err(LedgerError::TooLarge { .. })
    ));
    assert!(matches!(
        l.put_snapshot(6, b"state"),
        Err(LedgerError::SnapshotBeyondHead {
            cmd_seq: 6,
            head: 5
        })
    ));
    assert_eq!(dump(&l), before, "nothing of a rejected append is stored");
    assert!(!l.is_poisoned());
    l.append(&commands(6, 6))
        .expect("the right command still goes in");
}

pub fn ledger_tracks_kafka_offsets_per_partition<H: Harness>() {
    let h = H::fresh();
    let mut l = Ledger::with_store(h.open(), &opts()).expect("open");
    let kafka = |cmd_seq: u64, partition: i32, offset: u64| AppliedCommand {
        source: Source::Kafka {
            topic: "gpux.commands".into(),
            partition,
            offset,
            index: None,
        },
        ..command(cmd_seq)
    };
    l.append(&[kafka(1, 0, 10), kafka(2, 1, 3), kafka(3, 0, 11)])
        .expect("append");
    l.append(&[kafka(4, 1, 9)])
        .expect("offsets may skip (compaction, filtered records)");
    let p = |partition| SourceKey::Kafka {
        topic: "gpux.commands".into(),
        partition,
    };
    assert_eq!(l.consumed_offset(&p(0)), Some(11));
    assert_eq!(l.consumed_offset(&p(1)), Some(9));
    assert_eq!(l.consumed_offset(&p(2)), None);
    assert!(matches!(
        l.append(&[kafka(5, 0, 11)]),
        Err(LedgerError::SourceNotAdvancing { .. })
    ));
    drop(l);
    let l = Ledger::with_store(h.open(), &opts()).expect("reopen");
    let expected: BTreeMap<SourceKey, u64> = [(p(0), 11), (p(1), 9)].into_iter().collect();
    assert_eq!(l.consumed_offsets(), expected);
    assert_eq!(l.reader().consumed_offset(&p(1)).expect("read"), Some(9));
    assert_eq!(
        l.command(2).expect("read").expect("present").source,
        Source::Kafka {
            topic: "gpux.commands".into(),
            partition: 1,
            offset: 3,
            index: None,
        }
    );
}

/// Commands of a Kafka batch record share its offset and are told apart by their
/// index: positions advance by offset, then index, within one append, across
/// appends and across a reopen (which reads the index of the last command back).
pub fn ledger_tracks_positions_inside_batch_records<H: Harness>() {
    let h = H::fresh();
    let mut l = Ledger::with_store(h.open(), &opts()).expect("open");
    let kafka = |cmd_seq: u64, offset: u64, index: Option<u32>| AppliedCommand {
        source: Source::Kafka {
            topic: "gpux.commands".into(),
            partition: 0,
            offset,
            index,
        },
        ..command(cmd_seq)
    };
    let key = SourceKey::Kafka {
        topic: "gpux.commands".into(),
        partition: 0,
    };
    let at = |offset, index| Position { offset, index };
    l.append(&[
        kafka(1, 4, None),
        kafka(2, 10, Some(0)),
        kafka(3, 10, Some(1)),
    ])
    .expect("append");
    assert_eq!(l.consumed_position(&key), Some(at(10, Some(1))));
    assert_eq!(l.consumed_offset(&key), Some(10));
    let refused = |l: &mut Ledger<_>, c: AppliedCommand| {
        let before = dump(l);
        let got = l.append(&[c]);
        assert!(
            matches!(got, Err(LedgerError::SourceNotAdvancing { cmd_seq, .. }) if cmd_seq == l.head().last_cmd_seq + 1),
            "{got:?}"
        );
        assert_eq!(dump(l), before);
    };
    refused(&mut l, kafka(4, 10, Some(1)));
    refused(&mut l, kafka(4, 10, Some(0)));
    refused(&mut l, kafka(4, 10, None));
    refused(&mut l, kafka(4, 9, Some(7)));
    // Within one append too.
    let got = l.append(&[kafka(4, 10, Some(2)), kafka(5, 10, Some(2))]);
    assert!(
        matches!(got, Err(LedgerError::SourceNotAdvancing { cmd_seq: 5, .. })),
        "{got:?}"
    );
    l.append(&[kafka(4, 10, Some(2))]).expect("the next index");
    drop(l);
    let mut l = Ledger::with_store(h.open(), &opts()).expect("reopen");
    assert_eq!(l.consumed_position(&key), Some(at(10, Some(2))));
    assert_eq!(
        l.reader().consumed_position(&key).expect("read"),
        Some(at(10, Some(2)))
    );
    refused(&mut l, kafka(5, 10, Some(2)));
    l.append(&[kafka(5, 10, Some(3)), kafka(6, 11, None)])
        .expect("the rest of the batch, then the next record");
    assert_eq!(
        l.command(3).expect("read").expect("present").source,
        Source::Kafka {
            topic: "gpux.commands".into(),
            partition: 0,
            offset: 10,
            index: Some(1),
        }
    );
    assert_eq!(
        l.reader().consumed_position(&key).expect("read"),
        Some(at(11, None))
    );
}

pub fn ledger_inbox_journals_and_resumes_from_the_consumed_offset<H: Harness>() {
    let h = H::fresh();
    let mut l = Ledger::with_store(h.open(), &opts()).expect("open");
    let seqs = l
        .journal(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()])
        .expect("journal");
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(l.journal(&[b"d"]).expect("journal"), vec![4]);
    assert_eq!(
        l.journal::<Vec<u8>>(&[]).expect("journal nothing"),
        Vec::<u64>::new()
    );
    assert_eq!(l.inbox_last(), 4);
    let first_two = l.read_inbox(1, 2).expect("read");
    assert_eq!(first_two, vec![(1, b"a".to_vec()), (2, b"b".to_vec())]);
    let batch: Vec<AppliedCommand> = first_two
        .into_iter()
        .enumerate()
        .map(|(i, (seq, payload))| AppliedCommand {
            cmd_seq: i as u64 + 1,
            ts_ns: 5,
            source: Source::Embedded { seq },
            payload,
            events: vec![b"ok".to_vec()],
        })
        .collect();
    l.append(&batch).expect("apply");
    drop(l);
    // "Restart": resume from the stored consumed offset + 1.
    let l = Ledger::with_store(h.open(), &opts()).expect("reopen");
    let resume = l.consumed_offset(&SourceKey::Embedded).expect("consumed") + 1;
    assert_eq!(resume, 3);
    assert_eq!(
        l.read_inbox(resume, 100).expect("read"),
        vec![(3, b"c".to_vec()), (4, b"d".to_vec())]
    );
    assert_eq!(l.read_inbox(5, 100).expect("read"), vec![]);
    assert_eq!(l.inbox_last(), 4);
}

pub fn ledger_snapshots_latest_at_or_before_and_fallback<H: Harness>() {
    let h = H::fresh();
    let mut l = Ledger::with_store(h.open(), &opts()).expect("open");
    assert_eq!(l.latest_snapshot().expect("read"), None);
    l.put_snapshot(0, b"genesis")
        .expect("snapshot of the empty state");
    fill(&mut l, 10, 3);
    l.put_snapshot(4, b"s4").expect("snapshot");
    l.put_snapshot(10, b"s10").expect("snapshot");
    let latest = l.latest_snapshot().expect("read").expect("some");
    assert_eq!((latest.cmd_seq, latest.bytes.as_slice()), (10, &b"s10"[..]));
    assert_eq!(latest.event_seq, l.head().last_event_seq);
    let s = l.snapshot_at_or_before(9).expect("read").expect("some");
    assert_eq!(s.cmd_seq, 4);
    // Commands 1..=4 produce 1 + 2 + 3 + 0 events.
    assert_eq!(s.event_seq, 6);
    assert_eq!(
        l.snapshot_at_or_before(3)
            .expect("read")
            .expect("some")
            .bytes,
        b"genesis"
    );
    l.put_snapshot(10, b"s10")
        .expect("same snapshot again is fine");
    drop(l);
    let l = Ledger::with_store(h.open(), &opts()).expect("reopen");
    let fb = l.latest_good_snapshot().expect("read");
    assert_eq!(fb.snapshot.expect("some").cmd_seq, 10);
    assert!(fb.skipped.is_empty());
    assert_eq!(l.verify(&mut |_| {}).expect("verify").snapshots, 3);
}

/// A snapshot below the head when it is queued (the pipeline serializes snapshots
/// on their own thread, so later batches may be staged first) is stored after the
/// batches before it are written, naming the last event of its command.
pub fn ledger_group_committer_stores_a_snapshot_below_the_head<H: Harness>() {
    let h = H::fresh();
    let l = Ledger::with_store(h.open(), &opts()).expect("open");
    let gc = GroupCommitter::spawn(
        l,
        GroupCommitOptions {
            max_commands_per_write: 4,
            ..GroupCommitOptions::default()
        },
    )
    .expect("spawn");
    let handle = gc.handle();
    let mut pending = Vec::new();
    for round in 0..50u64 {
        let first = round * 8 + 1;
        pending.push(handle.submit(commands(first, first + 3)).expect("submit"));
        pending.push(
            handle
                .submit(commands(first + 4, first + 7))
                .expect("submit"),
        );
        // The state after the first half, queued once the second half is staged.
        let snap = gc
            .snapshot(first + 3, format!("s{}", first + 3).into_bytes())
            .expect("submit");
        snap.wait().expect("stored after the batches before it");
    }
    for p in pending {
        p.wait().expect("durable");
    }
    let (l, _) = gc.shutdown().expect("shutdown");
    for round in 0..50u64 {
        let at = round * 8 + 4;
        let s = l.snapshot_at_or_before(at).expect("read").expect("stored");
        assert_eq!((s.cmd_seq, s.bytes), (at, format!("s{at}").into_bytes()));
        let events: u64 = (1..=at).map(|c| command(c).events.len() as u64).sum();
        assert_eq!(s.event_seq, events, "last event of cmd_seq {at}");
    }
}

pub fn ledger_group_committer_merges_and_acknowledges<H: Harness>() {
    let h = H::fresh();
    let l = Ledger::with_store(h.open(), &opts()).expect("open");
    let gc = GroupCommitter::spawn(
        l,
        GroupCommitOptions {
            max_commands_per_write: 8,
            ..GroupCommitOptions::default()
        },
    )
    .expect("spawn");
    let handle = gc.handle();
    let journaled = handle
        .journal(vec![b"x".to_vec(), b"y".to_vec()])
        .expect("submit");
    let mut pending = Vec::new();
    for first in (1..=60).step_by(3) {
        pending.push(handle.submit(commands(first, first + 2)).expect("submit"));
    }
    let bad = handle.submit(commands(100, 100)).expect("submit");
    let snap = gc.snapshot(60, b"state at 60".to_vec()).expect("submit");
    assert_eq!(journaled.wait().expect("journaled"), vec![1, 2]);
    let mut batches = Vec::new();
    for (i, p) in pending.into_iter().enumerate() {
        let c = p.wait().expect("durable");
        assert_eq!(c.assigned.first_cmd_seq, 1 + 3 * i as u64);
        assert_eq!(c.assigned.last_cmd_seq, 3 + 3 * i as u64);
        assert!(c.batch.first_cmd_seq <= c.assigned.first_cmd_seq);
        assert!(c.batch.last_cmd_seq >= c.assigned.last_cmd_seq);
        assert!(
            c.batch.last_cmd_seq - c.batch.first_cmd_seq < 8,
            "bounded by max_commands_per_write"
        );
        batches.push(c.batch.batch_no);
    }
    assert!(matches!(
        bad.wait(),
        Err(LedgerError::OutOfSequence {
            expected: 61,
            got: 100
        })
    ));
    snap.wait().expect("snapshot after the appends before it");
    assert_eq!(gc.reader().head().expect("head").last_cmd_seq, 60);
    let (called_tx, called_rx) = std::sync::mpsc::channel();
    gc.handle()
        .submit_with(commands(61, 61), move |r| {
            called_tx
                .send(r.map(|c| c.assigned.last_cmd_seq))
                .expect("send")
        })
        .expect("submit");
    let (l, stats) = gc.shutdown().expect("shutdown");
    assert_eq!(called_rx.recv().expect("callback called"), Ok(61));
    assert_eq!(stats.commands, 61);
    assert_eq!(stats.batches, l.head().last_batch_no);
    assert_eq!(stats.commit_latency.count(), stats.writes);
    assert_eq!(stats.journaled, 2);
    assert!(batches.windows(2).all(|w| w[0] <= w[1]));
    assert!(matches!(
        handle.submit(commands(62, 62)),
        Err(LedgerError::CommitterStopped)
    ));
    assert_eq!(
        l.latest_snapshot().expect("read").expect("some").cmd_seq,
        60
    );
    drop(l);
    Ledger::with_store(h.open(), &opts()).expect("reopen verifies");
}

pub fn ledger_verify_reports_progress_and_names_damage<H: Harness>() {
    let h = H::fresh();
    let mut l = Ledger::with_store(h.open(), &opts()).expect("open");
    fill(&mut l, 3000, 2);
    let mut last = None;
    let report = l.verify(&mut |p| last = Some(p)).expect("verify");
    let last = last.expect("progress reported");
    assert_eq!(last.batches_done, last.batches_total);
    assert_eq!(last.events_done, report.events);
    assert_eq!(report.batches, 1500);
    drop(l);
    // Damage one command in the middle: both the full open and verify name it.
    let s = h.open();
    // Command 2222 lives in the chunk of its batch; its own record's crc names it.
    let key = seq_key(gpux_ledger::layout::chunk_of_command(&s, 2222).expect("a chunk"));
    let stored = s.get(Cf::Commands, &key).expect("get").expect("present");
    let mut chunk = gpux_ledger::layout::RawChunk::parse(&stored).expect("parses");
    let i = chunk.command_index(2222).expect("2222 is in it");
    let at = chunk.records[i].len() - 9;
    chunk.records[i][at] ^= 0x40;
    let mut w = WriteOps::new();
    w.put(Cf::Commands, &key, &chunk.encode());
    s.write(&w, true).expect("write");
    let err = Ledger::with_store(s, &opts()).expect_err("refuses to open");
    let c = err.corruption().expect("a corruption");
    assert_eq!(
        (c.kind, c.cf, c.seq),
        (CorruptionKind::ChecksumMismatch, Cf::Commands, 2222)
    );
}

macro_rules! conformance {
    ($($module:ident => $harness:ty),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[test] fn store_put_get_and_column_families_are_separate() { super::store_put_get_and_column_families_are_separate::<$harness>() }
            #[test] fn store_applies_ops_in_order() { super::store_applies_ops_in_order::<$harness>() }
            #[test] fn store_cursor_orders_big_endian_keys_and_seeks() { super::store_cursor_orders_big_endian_keys_and_seeks::<$harness>() }
            #[test] fn store_cursor_sees_the_view_at_creation() { super::store_cursor_sees_the_view_at_creation::<$harness>() }
            #[test] fn store_write_ops_expose_what_was_put() { super::store_write_ops_expose_what_was_put::<$harness>() }
            #[test] fn ledger_appends_reads_and_reopens() { super::ledger_appends_reads_and_reopens::<$harness>() }
            #[test] fn ledger_rejects_invalid_appends_without_side_effects() { super::ledger_rejects_invalid_appends_without_side_effects::<$harness>() }
            #[test] fn ledger_tracks_kafka_offsets_per_partition() { super::ledger_tracks_kafka_offsets_per_partition::<$harness>() }
            #[test] fn ledger_tracks_positions_inside_batch_records() { super::ledger_tracks_positions_inside_batch_records::<$harness>() }
            #[test] fn ledger_inbox_journals_and_resumes_from_the_consumed_offset() { super::ledger_inbox_journals_and_resumes_from_the_consumed_offset::<$harness>() }
            #[test] fn ledger_snapshots_latest_at_or_before_and_fallback() { super::ledger_snapshots_latest_at_or_before_and_fallback::<$harness>() }
            #[test] fn ledger_group_committer_merges_and_acknowledges() { super::ledger_group_committer_merges_and_acknowledges::<$harness>() }
            #[test] fn ledger_group_committer_stores_a_snapshot_below_the_head() { super::ledger_group_committer_stores_a_snapshot_below_the_head::<$harness>() }
            #[test] fn ledger_verify_reports_progress_and_names_damage() { super::ledger_verify_reports_progress_and_names_damage::<$harness>() }
        }
    )*};
}

conformance! {
    rocks => RocksHarness,
    memory => MemHarness,
    faulty_unarmed => FaultyHarness,
}
