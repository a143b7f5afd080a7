//! Fault injection: a failing or torn write surfaces as an error, poisons the handle,
//! and leaves a ledger that reopens verified with nothing half-applied.

mod common;

use common::{commands, dump, fill, opts, small_rocks};
use gpux_ledger::{
    AppliedCommand, Cf, CorruptionKind, Fault, FaultyStore, Ledger, LedgerError, LedgerOptions,
    MemStore, RocksStore, Store,
};
use proptest::prelude::*;

fn truncating() -> LedgerOptions {
    LedgerOptions {
        truncate_torn_tail: true,
        ..opts()
    }
}

/// The ledger a fault-free run of the same appends produces.
fn model(n: u64, per_batch: u64) -> common::Dump {
    let mut l = Ledger::with_store(MemStore::new(), &opts()).expect("open");
    fill(&mut l, n, per_batch);
    dump(&l)
}

#[test]
fn a_failed_write_is_an_error_poisons_the_handle_and_applies_nothing() {
    let store = FaultyStore::new(MemStore::new());
    let mut l = Ledger::with_store(store.clone(), &opts()).expect("open");
    fill(&mut l, 20, 4);
    let before = dump(&l);
    store.arm(Fault::FailWrite { nth: 1 });
    let err = l.append(&commands(21, 24)).expect_err("injected failure");
    assert!(matches!(err, LedgerError::Store(_)), "{err}");
    assert!(l.is_poisoned());
    assert_eq!(l.append(&commands(21, 24)), Err(LedgerError::Poisoned));
    assert_eq!(l.journal(&[b"x"]), Err(LedgerError::Poisoned));
    assert_eq!(l.put_snapshot(1, b"s"), Err(LedgerError::Poisoned));
    assert_eq!(dump(&l), before, "reads still serve what is durable");
    drop(l);

    let mut l = Ledger::with_store(store.clone(), &opts()).expect("reopen verifies");
    assert_eq!(dump(&l), before, "nothing of the failed batch is there");
    fill(&mut l, 40, 4);
    assert_eq!(
        dump(&l),
        model(40, 4),
        "continuing gives the fault-free result"
    );
    assert_eq!(store.faults_fired(), 1);
}

#[test]
fn a_failed_journal_or_snapshot_write_applies_nothing() {
    let store = FaultyStore::new(MemStore::new());
    let mut l = Ledger::with_store(store.clone(), &opts()).expect("open");
    fill(&mut l, 5, 5);
    store.arm(Fault::FailWrite { nth: 1 });
    assert!(matches!(
        l.journal(&[b"a", b"b"]),
        Err(LedgerError::Store(_))
    ));
    drop(l);
    let mut l = Ledger::with_store(store.clone(), &opts()).expect("reopen");
    assert_eq!(l.inbox_last(), 0);
    store.arm(Fault::FailWrite { nth: 1 });
    assert!(matches!(
        l.put_snapshot(5, b"state"),
        Err(LedgerError::Store(_))
    ));
    drop(l);
    let l = Ledger::with_store(store, &opts()).expect("reopen");
    assert_eq!(l.latest_snapshot().expect("read"), None);
}

/// Tears the write of batch 6 (commands 21..=24) after every possible number of
/// operations: each prefix is a torn tail that open refuses, truncation repairs, and a
/// retry completes to the fault-free result.
/// Batch 6 (commands 21..=24, as `batch` gives them) written torn after each prefix
/// of its `ops_in_batch` operations: a torn tail that only truncation repairs, to
/// exactly the 20 acknowledged commands.
fn torn_after_any_prefix(batch: &[AppliedCommand], ops_in_batch: usize) {
    let before = {
        let mut l = Ledger::with_store(MemStore::new(), &opts()).expect("open");
        fill(&mut l, 20, 4);
        dump(&l)
    };
    for keep in 0..=ops_in_batch {
        let store = FaultyStore::new(MemStore::new());
        let mut l = Ledger::with_store(store.clone(), &opts()).expect("open");
        fill(&mut l, 20, 4);
        store.arm(Fault::TearWrite {
            nth: 1,
            keep_ops: keep,
        });
        let written = l.append(batch);
        drop(l);
        assert!(matches!(written, Err(LedgerError::Store(_))), "keep {keep}");
        if keep == ops_in_batch {
            // Every operation reached the store (the head last): a complete batch.
            let l = Ledger::with_store(store, &opts()).expect("complete write is clean");
            assert_eq!(l.head().last_cmd_seq, 24);
            continue;
        }
        let reopened = Ledger::with_store(store.clone(), &opts());
        if keep == 0 {
            assert_eq!(dump(&reopened.expect("nothing written: clean")), before);
            continue;
        }
        let err = reopened.expect_err("a torn tail is refused by default");
        let c = err.corruption().expect("corruption");
        assert_eq!(c.kind, CorruptionKind::TornTail, "keep {keep}: {err}");
        // The first record of the batch is the chunk of command 21 (or, for a prefix
        // ending in the header, batch 6 itself).
        assert!(
            (c.cf, c.seq) == (Cf::Commands, 21) || (c.cf, c.seq) == (Cf::Batches, 6),
            "keep {keep}: {c}"
        );

        let mut l = Ledger::with_store(store.clone(), &truncating()).expect("truncates the tail");
        assert_eq!(
            dump(&l),
            before,
            "keep {keep}: exactly the acknowledged state"
        );
        fill(&mut l, 40, 4);
        assert_eq!(dump(&l), model(40, 4), "keep {keep}");
        drop(l);
        Ledger::with_store(store, &opts()).expect("clean after repair");
    }
}

#[test]
fn a_write_torn_after_any_prefix_is_a_torn_tail_that_truncation_repairs() {
    // One chunk (4 commands and their events), its event-index entry, the header,
    // one offset and the head.
    torn_after_any_prefix(&commands(21, 24), 5);
}

#[test]
fn a_batch_of_several_chunks_torn_after_any_prefix_is_a_torn_tail_too() {
    // 40 KiB payloads close a chunk after every second command: two chunks with
    // their event-index entries, the header, one offset and the head.
    let batch: Vec<AppliedCommand> = commands(21, 24)
        .into_iter()
        .map(|mut c| {
            c.payload = vec![b'x'; 40 << 10];
            c
        })
        .collect();
    torn_after_any_prefix(&batch, 7);
}

#[test]
fn truncation_never_touches_acknowledged_records() {
    // Damage below the head is not a torn tail: even with truncation on, open refuses.
    let store = MemStore::new();
    let mut l = Ledger::with_store(store.clone(), &opts()).expect("open");
    fill(&mut l, 12, 3);
    drop(l);
    let chunk = gpux_ledger::layout::chunk_of_command(&store, 5).expect("a chunk holds 5");
    store.raw_delete(Cf::Commands, &gpux_ledger::seq_key(chunk));
    let err =
        Ledger::with_store(store.clone(), &truncating()).expect_err("a gap is not repairable");
    let c = err.corruption().expect("corruption");
    assert_eq!(
        (c.kind, c.cf, c.seq),
        (CorruptionKind::Gap, Cf::Commands, chunk)
    );
}

#[test]
fn a_failed_rocksdb_write_leaves_a_ledger_that_reopens_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rocks = RocksStore::open(dir.path(), &small_rocks()).expect("open");
    let store = FaultyStore::new(std::sync::Arc::new(rocks));
    let mut l = Ledger::with_store(store.clone(), &opts()).expect("open");
    fill(&mut l, 30, 5);
    let before = dump(&l);
    store.arm(Fault::FailWrite { nth: 2 });
    l.append(&commands(31, 33))
        .expect("first write after arming succeeds");
    assert!(matches!(
        l.append(&commands(34, 36)),
        Err(LedgerError::Store(_))
    ));
    drop(l);
    drop(store);
    let mut l = Ledger::open(dir.path(), &opts()).expect("reopen verifies");
    assert_eq!(l.head().last_cmd_seq, 33);
    assert_eq!(dump(&l).commands[..30], before.commands[..]);
    fill(&mut l, 45, 5);
    l.verify(&mut |_| {}).expect("verifies");
}

#[derive(Debug, Clone)]
enum Step {
    Append(u64),
    Journal(u8),
    Snapshot,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u64..6).prop_map(Step::Append),
        1 => (1u8..4).prop_map(Step::Journal),
        1 => Just(Step::Snapshot),
    ]
}

/// Runs `steps`; returns false if a write failed (the handle is then poisoned).
fn run_steps<S: Store>(l: &mut Ledger<S>, steps: &[Step]) -> bool {
    for s in steps {
        let r = match s {
            Step::Append(n) => {
                let first = l.head().last_cmd_seq + 1;
                l.append(&commands(first, first + n - 1)).map(|_| ())
            }
            Step::Journal(n) => {
                let payloads: Vec<Vec<u8>> = (0..*n).map(|i| vec![i; 3]).collect();
                l.journal(&payloads).map(|_| ())
            }
            Step::Snapshot => {
                let at = l.head().last_cmd_seq;
                l.put_snapshot(at, &at.to_be_bytes())
            }
        };
        if r.is_err() {
            return false;
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any fault at any write of any workload: reopen (truncating a torn tail) yields a
    /// prefix of the fault-free run at a step boundary, and redoing the remaining steps
    /// yields the fault-free run exactly.
    #[test]
    fn any_fault_at_any_write_recovers_to_a_prefix_of_the_model(
        steps in prop::collection::vec(step(), 1..30),
        nth in 1u64..30,
        tear in prop::option::of(0usize..12),
    ) {
        let mut m = Ledger::with_store(MemStore::new(), &opts()).expect("open");
        let mut prefixes = vec![dump(&m)];
        for s in &steps {
            prop_assert!(run_steps(&mut m, std::slice::from_ref(s)));
            prefixes.push(dump(&m));
        }

        let store = FaultyStore::new(MemStore::new());
        let mut l = Ledger::with_store(store.clone(), &opts()).expect("open");
        store.arm(match tear {
            None => Fault::FailWrite { nth },
            Some(keep_ops) => Fault::TearWrite { nth, keep_ops },
        });
        let completed = run_steps(&mut l, &steps);
        drop(l);
        store.disarm();
        let mut l = Ledger::with_store(store.clone(), &truncating()).expect("recovers");
        let now = dump(&l);
        // Snapshots are not in the dump, so equal prefixes may repeat: take the last.
        let at = prefixes.iter().rposition(|p| *p == now);
        prop_assert!(at.is_some(), "recovered state is not a step prefix of the model");
        if completed {
            prop_assert_eq!(at, Some(steps.len()));
        }
        prop_assert!(run_steps(&mut l, &steps[at.unwrap_or(0)..]));
        prop_assert_eq!(dump(&l), dump(&m));
        l.verify(&mut |_| {}).expect("verifies");
    }
}

/// A write failing inside the group committer: the submissions of that write and of
/// every write staged after it fail, earlier ones stay acknowledged, the returned
/// ledger is poisoned at the durable head, and a reopen continues from there.
#[test]
fn a_failed_group_write_fails_its_submissions_and_everything_after_it() {
    use gpux_ledger::{GroupCommitOptions, GroupCommitter};
    let store = FaultyStore::new(MemStore::new());
    let l = Ledger::with_store(store.clone(), &opts()).expect("open");
    let gc = GroupCommitter::spawn(
        l,
        GroupCommitOptions {
            max_commands_per_write: 4,
            ..GroupCommitOptions::default()
        },
    )
    .expect("spawn");
    store.arm(Fault::FailWrite { nth: 3 });
    let (tx, rx) = std::sync::mpsc::channel();
    for first in (1..=40u64).step_by(2) {
        let tx = tx.clone();
        gc.handle()
            .submit_returning(commands(first, first + 1), move |r, back| {
                tx.send((first, r.is_ok(), back.len())).expect("send");
            })
            .expect("submit");
    }
    drop(tx);
    let (l, stats) = gc.shutdown().expect("shutdown");
    let mut results: Vec<(u64, bool, usize)> = rx.iter().collect();
    results.sort();
    assert_eq!(results.len(), 20, "every submission is answered");
    assert!(
        results.iter().all(|&(_, _, back)| back == 2),
        "commands handed back"
    );
    let acked: Vec<u64> = results.iter().filter(|r| r.1).map(|r| r.0 + 1).collect();
    let last_acked = acked.last().copied().unwrap_or(0);
    assert!(
        results
            .iter()
            .all(|&(first, ok, _)| ok == (first < last_acked)),
        "acknowledged submissions are a prefix: {results:?}"
    );
    assert_eq!(stats.failed_writes, 1);
    assert!(l.is_poisoned());
    assert_eq!(
        l.head().last_cmd_seq,
        last_acked,
        "in-memory head reset to the durable one"
    );
    drop(l);
    let mut l = Ledger::with_store(store, &opts()).expect("reopen verifies");
    assert_eq!(l.head().last_cmd_seq, last_acked);
    fill(&mut l, 40, 4);
    assert_eq!(dump(&l).events, model(40, 4).events);
}
