//! [`FaultyStore`]: a [`Store`] wrapper that injects write faults, for tests.
//!
//! It fails the Nth write after being armed, or "tears" it: applies only a prefix of
//! its operations and then reports an error, which is what a non-atomic backend (or a
//! bug) could leave behind. RocksDB itself never tears a `WriteBatch`; the tear exists
//! so the recovery path for a torn tail is exercised at all. A [`Fault::Crash`] is
//! the process dying at the Nth write: that write keeps a prefix (possibly none or
//! all of it) and nothing written after it reaches the store, so a test can drop the
//! process's handles and reopen over exactly what a crash at that write leaves.

use std::sync::{Arc, Mutex, PoisonError};

use super::{Cf, Cursor, Store, WriteOps};
use crate::error::StoreError;

/// A planned fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The `nth` write after arming (1 = the next one) fails without applying anything.
    FailWrite {
        /// Which write.
        nth: u64,
    },
    /// The `nth` write after arming applies only its first `keep_ops` operations, then
    /// fails.
    TearWrite {
        /// Which write.
        nth: u64,
        /// How many operations survive.
        keep_ops: usize,
    },
    /// The process dies at the `nth` write after arming: it applies only its first
    /// `keep_ops` operations (`0`: none, `usize::MAX`: all) and fails, and every
    /// later write fails without applying anything until [`FaultyStore::disarm`].
    /// Every write the ledger makes is synced, so nothing written before is lost.
    Crash {
        /// Which write.
        nth: u64,
        /// How many of its operations survive.
        keep_ops: usize,
    },
}

#[derive(Debug, Default)]
struct State {
    armed: Option<Fault>,
    writes_since_armed: u64,
    faults_fired: u64,
    crashed: bool,
}

/// Wraps a store and injects the armed [`Fault`]. Clones share the fault state.
#[derive(Debug, Clone)]
pub struct FaultyStore<S> {
    inner: S,
    state: Arc<Mutex<State>>,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: Arc::default(),
        }
    }

    /// Arms `fault` (replacing any armed one and ending a crash); write counting
    /// restarts.
    pub fn arm(&self, fault: Fault) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.armed = Some(fault);
        st.writes_since_armed = 0;
        st.crashed = false;
    }

    /// Disarms (and ends a crash: writes reach the store again).
    pub fn disarm(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.armed = None;
        st.crashed = false;
    }

    /// Writes seen since the fault was armed (counting the one that fired it and,
    /// after a crash, those refused).
    pub fn writes_since_armed(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .writes_since_armed
    }

    /// Whether a [`Fault::Crash`] has fired (every write now fails).
    pub fn crashed(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .crashed
    }

    /// How many faults have fired.
    pub fn faults_fired(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .faults_fired
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Store> Store for FaultyStore<S> {
    fn write(&self, ops: &WriteOps, sync: bool) -> Result<(), StoreError> {
        let fire = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if st.crashed {
                st.writes_since_armed += 1;
                return Err(StoreError::new(
                    "injected fault: the process crashed before this write",
                ));
            }
            match st.armed {
                None => None,
                Some(fault) => {
                    st.writes_since_armed += 1;
                    let nth = match fault {
                        Fault::FailWrite { nth }
                        | Fault::TearWrite { nth, .. }
                        | Fault::Crash { nth, .. } => nth,
                    };
                    if st.writes_since_armed == nth {
                        st.armed = None;
                        st.faults_fired += 1;
                        st.crashed = matches!(fault, Fault::Crash { .. });
                        Some(fault)
                    } else {
                        None
                    }
                }
            }
        };
        match fire {
            None => self.inner.write(ops, sync),
            Some(Fault::Crash { nth, keep_ops }) => {
                let keep = keep_ops.min(ops.len());
                if keep > 0 {
                    self.inner.write(&ops.prefix(keep), sync)?;
                }
                Err(StoreError::new(format!(
                    "injected fault: crashed at write {nth} after {keep} of {} ops",
                    ops.len()
                )))
            }
            Some(Fault::FailWrite { nth }) => Err(StoreError::new(format!(
                "injected fault: write {nth} failed"
            ))),
            Some(Fault::TearWrite { nth, keep_ops }) => {
                let keep = keep_ops.min(ops.len());
                self.inner.write(&ops.prefix(keep), sync)?;
                Err(StoreError::new(format!(
                    "injected fault: write {nth} torn after {keep} of {} ops",
                    ops.len()
                )))
            }
        }
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }

    fn cursor(&self, cf: Cf) -> Box<dyn Cursor + '_> {
        self.inner.cursor(cf)
    }

    fn is_read_only(&self) -> bool {
        self.inner.is_read_only()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}
