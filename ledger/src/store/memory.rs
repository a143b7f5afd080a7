//! [`MemStore`]: the in-memory [`Store`], one `BTreeMap` per column family.
//!
//! It is the reference implementation of the store contract (atomic writes, bytewise
//! order, cursors over a consistent view) and the fast backend for tests. Clones share
//! the same data, so a test can "reopen" a ledger over the same store. Cursors hold a
//! copy-on-write snapshot of their map (an `Arc`), so a write while a cursor is alive
//! copies the map once: fine for tests, not meant for production volumes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

use super::{Cf, Cursor, Op, Store, WriteOps};
use crate::error::StoreError;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// The in-memory store. Cloning gives another handle to the same data.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    maps: Arc<RwLock<[Arc<Map>; 6]>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self, cf: Cf) -> Arc<Map> {
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&maps[cf.index()])
    }

    /// Number of keys in `cf` (for tests).
    pub fn len(&self, cf: Cf) -> usize {
        self.map(cf).len()
    }

    /// True when no column family holds a key.
    pub fn is_empty(&self) -> bool {
        Cf::ALL.iter().all(|&cf| self.map(cf).is_empty())
    }

    /// Overwrites a value without any ledger logic: for tamper tests.
    pub fn raw_put(&self, cf: Cf, key: &[u8], value: &[u8]) {
        let mut ops = WriteOps::new();
        ops.put(cf, key, value);
        self.apply(&ops);
    }

    /// Removes a key without any ledger logic: for tamper tests.
    pub fn raw_delete(&self, cf: Cf, key: &[u8]) {
        let mut ops = WriteOps::new();
        ops.delete(cf, key);
        self.apply(&ops);
    }

    fn apply(&self, ops: &WriteOps) {
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        for op in ops.iter() {
            match op {
                Op::Put { cf, key, value } => {
                    Arc::make_mut(&mut maps[cf.index()]).insert(key.to_vec(), value.to_vec());
                }
                Op::Delete { cf, key } => {
                    Arc::make_mut(&mut maps[cf.index()]).remove(key);
                }
            }
        }
    }
}

impl Store for MemStore {
    fn write(&self, ops: &WriteOps, _sync: bool) -> Result<(), StoreError> {
        self.apply(ops);
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map(cf).get(key).cloned())
    }

    fn cursor(&self, cf: Cf) -> Box<dyn Cursor + '_> {
        Box::new(MemCursor {
            map: self.map(cf),
            at: None,
        })
    }
}

struct MemCursor {
    map: Arc<Map>,
    at: Option<Vec<u8>>,
}

impl MemCursor {
    fn set(&mut self, key: Option<&Vec<u8>>) {
        self.at = key.cloned();
    }
}

impl Cursor for MemCursor {
    fn seek(&mut self, key: &[u8]) {
        let map = Arc::clone(&self.map);
        self.set(
            map.range::<[u8], _>((Bound::Included(key), Bound::Unbounded))
                .next()
                .map(|(k, _)| k),
        );
    }

    fn seek_for_prev(&mut self, key: &[u8]) {
        let map = Arc::clone(&self.map);
        self.set(
            map.range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
                .next_back()
                .map(|(k, _)| k),
        );
    }

    fn seek_to_first(&mut self) {
        let map = Arc::clone(&self.map);
        self.set(map.keys().next());
    }

    fn seek_to_last(&mut self) {
        let map = Arc::clone(&self.map);
        self.set(map.keys().next_back());
    }

    fn next(&mut self) {
        if let Some(at) = self.at.take() {
            let map = Arc::clone(&self.map);
            self.set(
                map.range::<[u8], _>((Bound::Excluded(at.as_slice()), Bound::Unbounded))
                    .next()
                    .map(|(k, _)| k),
            );
        }
    }

    fn prev(&mut self) {
        if let Some(at) = self.at.take() {
            let map = Arc::clone(&self.map);
            self.set(
                map.range::<[u8], _>((Bound::Unbounded, Bound::Excluded(at.as_slice())))
                    .next_back()
                    .map(|(k, _)| k),
            );
        }
    }

    fn entry(&self) -> Option<(&[u8], &[u8])> {
        let at = self.at.as_ref()?;
        self.map
            .get_key_value(at)
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    fn status(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
