//! [`RocksStore`]: the [`Store`] on RocksDB, and its tuning ([`RocksOptions`]).
//!
//! Each [`Cf`] is a RocksDB column family; a [`WriteOps`] becomes one `WriteBatch`,
//! written with `sync = true` (WAL fdatasync) when asked. Tuning choices (the ones
//! marked *measured* were compared with `examples/bench.rs` on the 2-core machine; the
//! others are the usual settings for append-only, sequential keys):
//!
//! - durability comes from the WAL alone: every acknowledged write is fsynced there;
//!   memtables are flushed to SST files in the background;
//! - the hot column families (commands, events, inbox) are written in key order and
//!   read mostly sequentially, so they use no compression (CPU is the bottleneck on two
//!   cores) and large write buffers (fewer, larger flushes);
//! - WAL recovery mode is RocksDB's default, point-in-time: replay stops at the first
//!   damaged WAL record, so a `WriteBatch` whose WAL record was cut by a crash is
//!   dropped whole, never half-applied;
//! - *measured*: after a crash the WAL is replayed into memtables without writing
//!   SST files during open (`avoid_flush_during_recovery`): about 0.6 s instead of
//!   1.4 s for a WAL of 1 M events;
//! - *measured*: WAL file recycling made no difference here and is off;
//! - *measured*: flushes and compactions write through RocksDB's rate limiter
//!   (192 MiB/s, refilled every 10 ms) and sync every 256 KiB. Unthrottled, a
//!   128 MiB memtable flush filled the device queue for a few hundred milliseconds
//!   and every WAL fdatasync behind it took 20–95 ms instead of under one: at
//!   50 k commands/s offered (`gpux bench pipeline --rate 50000 --chunk 16
//!   --snapshot-every 100000000`) the p99 submission-to-durable latency was
//!   217 ms, throttled 18–21 ms, with the same closed-loop throughput (the
//!   pipeline needs well under 192 MiB/s of flush at its maximum rate).

use std::path::Path;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, DBRawIterator, DBRecoveryMode,
    Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use super::{Cf, Cursor, Op, Store, WriteOps};
use crate::error::StoreError;

/// RocksDB tuning. The defaults are what `examples/bench.rs` measured best here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksOptions {
    /// Memtable size of the hot column families (commands, events, inbox).
    pub write_buffer_bytes: usize,
    /// Memtables per hot column family before writes stall.
    pub max_write_buffers: i32,
    /// Background flush and compaction threads.
    pub background_jobs: i32,
    /// When the WALs exceed this, RocksDB flushes the column families holding them.
    pub max_total_wal_bytes: u64,
    /// WAL files kept for reuse (reusing a preallocated file makes fdatasync cheaper).
    pub recycle_wal_files: usize,
    /// Write the memtables rebuilt from the WAL to SST files during open (RocksDB's
    /// default) instead of keeping them in memory; slower restarts after a crash.
    pub flush_during_recovery: bool,
    /// Most bytes per second that flushes and compactions write (RocksDB's rate
    /// limiter); 0 for no limit. Keeps background writes from queueing ahead of the
    /// WAL's fdatasync; must stay above what the write rate needs flushed.
    pub background_write_bytes_per_sec: u64,
    /// Flush and compaction output is synced to the device every this many bytes,
    /// in small steps rather than in one large writeback.
    pub background_bytes_per_sync: u64,
}

impl Default for RocksOptions {
    fn default() -> Self {
        Self {
            write_buffer_bytes: 128 << 20,
            max_write_buffers: 4,
            background_jobs: 2,
            max_total_wal_bytes: 1 << 30,
            recycle_wal_files: 0,
            flush_during_recovery: false,
            background_write_bytes_per_sec: 192 << 20,
            background_bytes_per_sync: 256 << 10,
        }
    }
}

/// How often the rate limiter hands out its budget: in 10 ms steps a flush writes
/// at most about 2 MiB at once (RocksDB's default of 100 ms measured the same p99
/// here, with ten times larger steps).
const RATE_LIMITER_REFILL_US: i64 = 10_000;

/// RocksDB's default: how often low-priority requests are served first.
const RATE_LIMITER_FAIRNESS: i32 = 10;

/// A ledger's RocksDB database.
pub struct RocksStore {
    db: DB,
    read_only: bool,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.db.path())
            .field("read_only", &self.read_only)
            .finish()
    }
}

fn db_options(o: &RocksOptions) -> Result<Options, StoreError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(o.background_jobs);
    opts.set_max_total_wal_size(o.max_total_wal_bytes);
    opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    opts.set_recycle_log_file_num(o.recycle_wal_files);
    opts.set_bytes_per_sync(o.background_bytes_per_sync);
    if o.background_write_bytes_per_sec > 0 {
        let rate = i64::try_from(o.background_write_bytes_per_sec).unwrap_or(i64::MAX);
        opts.set_ratelimiter(rate, RATE_LIMITER_REFILL_US, RATE_LIMITER_FAIRNESS);
    }
    opts.set_keep_log_file_num(4);
    // Not wrapped by the rocksdb crate; the options-string parser sets it.
    Ok(opts.get_options_from_string(format!(
        "avoid_flush_during_recovery={}",
        !o.flush_during_recovery
    ))?)
}

fn cf_options(cf: Cf, o: &RocksOptions) -> Options {
    let mut opts = Options::default();
    match cf {
        Cf::Commands | Cf::Events | Cf::Inbox => {
            opts.set_compression_type(DBCompressionType::None);
            opts.set_write_buffer_size(o.write_buffer_bytes);
            opts.set_max_write_buffer_number(o.max_write_buffers);
            opts.set_target_file_size_base(o.write_buffer_bytes as u64);
            opts.set_level_zero_file_num_compaction_trigger(8);
            opts.set_level_zero_slowdown_writes_trigger(40);
            opts.set_level_zero_stop_writes_trigger(64);
        }
        Cf::Batches | Cf::Meta => {
            opts.set_compression_type(DBCompressionType::None);
            opts.set_write_buffer_size(16 << 20);
        }
        Cf::Snapshots => {
            opts.set_compression_type(DBCompressionType::Lz4);
            opts.set_write_buffer_size(64 << 20);
        }
    }
    opts
}

impl RocksStore {
    /// Opens (creating if missing) the database at `path` for reading and writing.
    pub fn open(path: &Path, o: &RocksOptions) -> Result<Self, StoreError> {
        let cfs = Cf::ALL
            .iter()
            .map(|&cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(cf, o)));
        let db = DB::open_cf_descriptors(&db_options(o)?, path, cfs)?;
        Ok(Self {
            db,
            read_only: false,
        })
    }

    /// Opens the database at `path` read-only (RocksDB `open_cf_for_read_only`): it never
    /// writes, and it sees the data as of the open.
    pub fn open_read_only(path: &Path, o: &RocksOptions) -> Result<Self, StoreError> {
        let mut opts = db_options(o)?;
        opts.create_if_missing(false);
        opts.create_missing_column_families(false);
        let db = DB::open_cf_for_read_only(&opts, path, Cf::ALL.iter().map(|cf| cf.name()), false)?;
        Ok(Self {
            db,
            read_only: true,
        })
    }

    fn handle(&self, cf: Cf) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StoreError::new(format!("column family {cf} missing")))
    }
}

impl Store for RocksStore {
    fn write(&self, ops: &WriteOps, sync: bool) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::new("read-only store"));
        }
        let mut handles = Vec::with_capacity(Cf::ALL.len());
        for cf in Cf::ALL {
            handles.push(self.handle(cf)?);
        }
        let mut batch = WriteBatch::with_capacity_bytes(ops.bytes() + 16 * ops.len() + 64);
        for op in ops.iter() {
            match op {
                Op::Put { cf, key, value } => batch.put_cf(handles[cf.index()], key, value),
                Op::Delete { cf, key } => batch.delete_cf(handles[cf.index()], key),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.handle(cf)?, key)?)
    }

    fn cursor(&self, cf: Cf) -> Box<dyn Cursor + '_> {
        match self.handle(cf) {
            Ok(h) => {
                let mut ro = ReadOptions::default();
                ro.set_readahead_size(2 << 20);
                Box::new(RocksCursor {
                    it: Some(self.db.raw_iterator_cf_opt(h, ro)),
                    missing: None,
                })
            }
            Err(e) => Box::new(RocksCursor {
                it: None,
                missing: Some(e),
            }),
        }
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        let mut handles = Vec::with_capacity(Cf::ALL.len());
        for cf in Cf::ALL {
            handles.push(self.handle(cf)?);
        }
        self.db
            .flush_cfs_opt(&handles, &rocksdb::FlushOptions::default())?;
        Ok(())
    }
}

struct RocksCursor<'a> {
    it: Option<DBRawIterator<'a>>,
    missing: Option<StoreError>,
}

impl Cursor for RocksCursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        if let Some(it) = &mut self.it {
            it.seek(key);
        }
    }
    fn seek_for_prev(&mut self, key: &[u8]) {
        if let Some(it) = &mut self.it {
            it.seek_for_prev(key);
        }
    }
    fn seek_to_first(&mut self) {
        if let Some(it) = &mut self.it {
            it.seek_to_first();
        }
    }
    fn seek_to_last(&mut self) {
        if let Some(it) = &mut self.it {
            it.seek_to_last();
        }
    }
    fn next(&mut self) {
        if let Some(it) = &mut self.it {
            if it.valid() {
                it.next();
            }
        }
    }
    fn prev(&mut self) {
        if let Some(it) = &mut self.it {
            if it.valid() {
                it.prev();
            }
        }
    }
    fn entry(&self) -> Option<(&[u8], &[u8])> {
        self.it.as_ref()?.item()
    }
    fn status(&self) -> Result<(), StoreError> {
        if let Some(e) = &self.missing {
            return Err(e.clone());
        }
        match &self.it {
            Some(it) => Ok(it.status()?),
            None => Ok(()),
        }
    }
}
