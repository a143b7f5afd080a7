//! Shared test helpers: store harnesses and deterministic commands.
#![allow(dead_code)]

use gpux_ledger::{
    AppliedCommand, Ledger, LedgerOptions, MemStore, RocksOptions, RocksStore, Source, SourceKey,
    Store,
};

/// A way to make a store and to "reopen" it (a new handle over the same data).
pub trait Harness {
    /// The store type.
    type S: Store;
    /// A fresh, empty store.
    fn fresh() -> Self;
    /// A handle over the same data (the previous handle must be dropped first for RocksDB).
    fn open(&self) -> Self::S;
}

/// RocksDB in a temporary directory.
pub struct RocksHarness {
    pub dir: tempfile::TempDir,
}

impl Harness for RocksHarness {
    type S = RocksStore;
    fn fresh() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn open(&self) -> RocksStore {
        RocksStore::open(self.dir.path(), &small_rocks()).expect("open rocksdb")
    }
}

/// Small memtables so tests do not reserve much memory.
pub fn small_rocks() -> RocksOptions {
    RocksOptions {
        write_buffer_bytes: 4 << 20,
        ..RocksOptions::default()
    }
}

/// The in-memory store.
pub struct MemHarness {
    pub store: MemStore,
}

impl Harness for MemHarness {
    type S = MemStore;
    fn fresh() -> Self {
        Self {
            store: MemStore::new(),
        }
    }
    fn open(&self) -> MemStore {
        self.store.clone()
    }
}

pub fn opts() -> LedgerOptions {
    LedgerOptions {
        rocks: small_rocks(),
        ..LedgerOptions::default()
    }
}

/// The source of [`command`]'s stream.
pub fn source_key() -> SourceKey {
    SourceKey::Kafka {
        topic: "test".into(),
        partition: 0,
    }
}

/// Command `cmd_seq` of a deterministic stream: `cmd_seq % 4` events, from Kafka
/// partition `test/0` at offset `cmd_seq`.
pub fn command(cmd_seq: u64) -> AppliedCommand {
    AppliedCommand {
        cmd_seq,
        ts_ns: 1_000 * cmd_seq,
        source: Source::Kafka {
            topic: "test".into(),
            partition: 0,
            offset: cmd_seq,
            index: None,
        },
        payload: format!("command {cmd_seq}").into_bytes(),
        events: (0..cmd_seq % 4)
            .map(|i| format!("event {i} of command {cmd_seq}").into_bytes())
            .collect(),
    }
}

/// Commands `first..=last`.
pub fn commands(first: u64, last: u64) -> Vec<AppliedCommand> {
    (first..=last).map(command).collect()
}

/// Appends commands 1..=n in batches of `per_batch`.
pub fn fill<S: Store>(ledger: &mut Ledger<S>, n: u64, per_batch: u64) {
    let mut next = ledger.head().last_cmd_seq + 1;
    while next <= n {
        let last = (next + per_batch - 1).min(n);
        ledger.append(&commands(next, last)).expect("append");
        next = last + 1;
    }
}

/// Everything observable in a ledger, for equality checks.
#[derive(Debug, PartialEq, Eq)]
pub struct Dump {
    pub head: gpux_ledger::Head,
    pub commands: Vec<gpux_ledger::CommandRecord>,
    pub events: Vec<gpux_ledger::EventRecord>,
    pub batches: Vec<gpux_ledger::BatchHeader>,
    pub inbox: Vec<(u64, Vec<u8>)>,
    pub consumed: Vec<(gpux_ledger::SourceKey, u64)>,
}

pub fn dump<S: Store>(l: &Ledger<S>) -> Dump {
    Dump {
        head: l.head(),
        commands: l
            .commands(1)
            .expect("commands")
            .collect::<Result<_, _>>()
            .expect("read"),
        events: l
            .events(1)
            .expect("events")
            .collect::<Result<_, _>>()
            .expect("read"),
        batches: l
            .batches(1)
            .expect("batches")
            .collect::<Result<_, _>>()
            .expect("read"),
        inbox: l.read_inbox(1, usize::MAX).expect("inbox"),
        consumed: l
            .consumed_offsets()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}
