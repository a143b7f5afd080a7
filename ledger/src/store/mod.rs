//! The narrow storage trait the ledger is written against, and its implementations.
//!
//! Owns [`Store`] (atomic multi-column-family write, point get, ordered cursor),
//! [`WriteOps`] (one atomic write, encoded into a single arena so a large group commit
//! costs two allocations, not two per record) and re-exports [`Cf`] (the column families, defined in their own module so that
//! the errors can name them without depending on the store).
//! Implementations: [`RocksStore`] (the real one), [`MemStore`] (BTreeMaps, for tests
//! and as the reference model) and [`FaultyStore`] (a wrapper that fails or tears the
//! Nth write). Everything above this module is backend-agnostic, and the conformance
//! suite in `tests/conformance.rs` runs against every implementation.

mod faulty;
mod memory;
mod rocks;

use std::ops::Range;

pub use faulty::{Fault, FaultyStore};
pub use memory::MemStore;
pub use rocks::{RocksOptions, RocksStore};

pub use crate::cf::Cf;
use crate::error::StoreError;

/// One operation of a [`WriteOps`], borrowed from its arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Insert or overwrite `key` in `cf`.
    Put {
        /// Column family.
        cf: Cf,
        /// Key.
        key: &'a [u8],
        /// Value.
        value: &'a [u8],
    },
    /// Remove `key` from `cf` (used only to truncate a torn tail on open).
    Delete {
        /// Column family.
        cf: Cf,
        /// Key.
        key: &'a [u8],
    },
}

#[derive(Debug, Clone)]
struct OpRef {
    cf: Cf,
    delete: bool,
    key: Range<usize>,
    value: Range<usize>,
}

/// An ordered list of puts and deletes that a [`Store`] applies atomically.
///
/// Keys and values live in one byte arena; records can be encoded straight into it
/// with [`WriteOps::put_with`].
#[derive(Debug, Clone, Default)]
pub struct WriteOps {
    arena: Vec<u8>,
    ops: Vec<OpRef>,
}

impl WriteOps {
    /// An empty write.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty write with room for `bytes` of keys and values and `ops` operations.
    pub fn with_capacity(bytes: usize, ops: usize) -> Self {
        Self {
            arena: Vec::with_capacity(bytes),
            ops: Vec::with_capacity(ops),
        }
    }

    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.put_with(cf, key, |buf| buf.extend_from_slice(value));
    }

    /// Adds a put whose value `encode` appends to the given buffer; returns the
    /// value's bytes as written.
    pub fn put_with(&mut self, cf: Cf, key: &[u8], encode: impl FnOnce(&mut Vec<u8>)) -> &[u8] {
        let key_start = self.arena.len();
        self.arena.extend_from_slice(key);
        let value_start = self.arena.len();
        encode(&mut self.arena);
        let value = value_start..self.arena.len();
        self.ops.push(OpRef {
            cf,
            delete: false,
            key: key_start..value_start,
            value: value.clone(),
        });
        &self.arena[value]
    }

    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: &[u8]) {
        let key_start = self.arena.len();
        self.arena.extend_from_slice(key);
        self.ops.push(OpRef {
            cf,
            delete: true,
            key: key_start..self.arena.len(),
            value: 0..0,
        });
    }

    /// Empties it, keeping its memory for the next write.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.ops.clear();
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Total bytes of keys and values.
    pub fn bytes(&self) -> usize {
        self.arena.len()
    }

    /// The operation at `i`.
    pub fn op(&self, i: usize) -> Op<'_> {
        let o = &self.ops[i];
        if o.delete {
            Op::Delete {
                cf: o.cf,
                key: &self.arena[o.key.clone()],
            }
        } else {
            Op::Put {
                cf: o.cf,
                key: &self.arena[o.key.clone()],
                value: &self.arena[o.value.clone()],
            }
        }
    }

    /// The operations in order.
    pub fn iter(&self) -> impl Iterator<Item = Op<'_>> + '_ {
        (0..self.ops.len()).map(|i| self.op(i))
    }

    /// A new write holding only the first `n` operations (used to tear a write).
    pub fn prefix(&self, n: usize) -> WriteOps {
        let mut w = WriteOps::new();
        for op in self.iter().take(n) {
            match op {
                Op::Put { cf, key, value } => w.put(cf, key, value),
                Op::Delete { cf, key } => w.delete(cf, key),
            }
        }
        w
    }
}

/// An ordered position in one column family, like RocksDB's raw iterator.
///
/// A fresh cursor is not positioned; call one of the `seek` methods first. Errors of
/// the underlying store surface through [`Cursor::status`] once the cursor is no
/// longer valid.
pub trait Cursor {
    /// Positions at the first key `>= key`.
    fn seek(&mut self, key: &[u8]);
    /// Positions at the last key `<= key`.
    fn seek_for_prev(&mut self, key: &[u8]);
    /// Positions at the first key.
    fn seek_to_first(&mut self);
    /// Positions at the last key.
    fn seek_to_last(&mut self);
    /// Moves to the next key.
    fn next(&mut self);
    /// Moves to the previous key.
    fn prev(&mut self);
    /// The entry at the position, or `None` when past either end (or on error).
    fn entry(&self) -> Option<(&[u8], &[u8])>;
    /// `Err` if the cursor stopped because the store failed.
    fn status(&self) -> Result<(), StoreError>;
}

/// A key-value store with the column families in [`Cf`]: the only thing the ledger
/// needs from RocksDB.
///
/// Contract (checked by `tests/conformance.rs`): `write` applies all of its operations
/// or none, and when it returns `Ok` with `sync = true` they survive a crash; keys
/// iterate in bytewise order; a cursor sees a consistent view taken when it was made.
pub trait Store: Send + Sync + 'static {
    /// Applies `ops` atomically; with `sync`, durably before returning.
    fn write(&self, ops: &WriteOps, sync: bool) -> Result<(), StoreError>;
    /// The value at `key`.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// A cursor over `cf`.
    fn cursor(&self, cf: Cf) -> Box<dyn Cursor + '_>;
    /// True if writes are refused (a read-only open).
    fn is_read_only(&self) -> bool {
        false
    }
    /// Moves what only the write-ahead log holds into the store's main files, so the
    /// next open does not replay it (RocksDB: flush every memtable). Durability does
    /// not depend on it.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<T: Store> Store for std::sync::Arc<T> {
    fn write(&self, ops: &WriteOps, sync: bool) -> Result<(), StoreError> {
        (**self).write(ops, sync)
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(cf, key)
    }
    fn cursor(&self, cf: Cf) -> Box<dyn Cursor + '_> {
        (**self).cursor(cf)
    }
    fn is_read_only(&self) -> bool {
        (**self).is_read_only()
    }
    fn flush(&self) -> Result<(), StoreError> {
        (**self).flush()
    }
}
