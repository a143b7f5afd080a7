//! The idempotent request ids the engine has applied, within a bounded window.
//!
//! A client that retries a request through another gateway, while its first attempt
//! is still on its way to the log, puts the same command in the log twice. Gateways
//! cannot see each other's requests in flight; the engine sees both. It remembers
//! the request id of every command whose envelope is `idempotent`
//! ([`CommandEnvelope::idempotent_request_id`](crate::CommandEnvelope::idempotent_request_id))
//! with the command's sequence number, and a later command with a remembered id is
//! recorded as `duplicate_request` instead of being applied.
//!
//! The window is deterministic: an id is forgotten once
//! [`REQUEST_IDS_REMEMBERED_MAX`] newer ids are remembered, or once engine time has
//! moved more than [`REQUEST_ID_WINDOW_NS`] past the timestamp of the command that
//! carried it. It is part of the snapshot and so of `state_hash`.

use crate::limits::{REQUEST_IDS_REMEMBERED_MAX, REQUEST_ID_WINDOW_NS};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// One remembered request: the command that carried it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remembered {
    /// Its sequence number.
    pub cmd_seq: u64,
    /// Its (monotonic) timestamp.
    pub ts_ns: u64,
    /// The request id.
    pub request_id: Box<str>,
}

/// Remembered request ids, oldest first, with an index by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestWindow {
    /// In the order they were remembered (so by `cmd_seq` and by `ts_ns`).
    order: VecDeque<Remembered>,
    /// `cmd_seq` by request id (looked up, never iterated).
    by_id: FxHashMap<Box<str>, u64>,
}

impl RequestWindow {
    /// Forgets the ids older than the window at engine time `now_ns`.
    pub fn forget_expired(&mut self, now_ns: u64) {
        while let Some(front) = self.order.front() {
            if now_ns.saturating_sub(front.ts_ns) <= REQUEST_ID_WINDOW_NS {
                break;
            }
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(r) = self.order.pop_front() {
            let removed = self.by_id.remove(&r.request_id);
            debug_assert_eq!(removed, Some(r.cmd_seq));
        }
    }

    /// The sequence number of the command that carried `request_id`, if remembered.
    pub fn original(&self, request_id: &str) -> Option<u64> {
        self.by_id.get(request_id).copied()
    }

    /// Remembers `request_id` as carried by command `cmd_seq`, forgetting the oldest
    /// id if the window is full. The id must not be remembered already.
    pub fn remember(&mut self, cmd_seq: u64, ts_ns: u64, request_id: &str) {
        assert!(
            self.order
                .back()
                .is_none_or(|b| b.cmd_seq < cmd_seq && b.ts_ns <= ts_ns),
            "request ids are remembered in command order"
        );
        if self.order.len() >= REQUEST_IDS_REMEMBERED_MAX {
            self.pop_front();
        }
        let id: Box<str> = request_id.into();
        let before = self.by_id.insert(id.clone(), cmd_seq);
        assert!(before.is_none(), "a remembered request id is never applied");
        self.order.push_back(Remembered {
            cmd_seq,
            ts_ns,
            request_id: id,
        });
    }

    /// The remembered ids, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Remembered> {
        self.order.iter()
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The oldest remembered command's sequence number.
    pub fn oldest_cmd_seq(&self) -> Option<u64> {
        self.order.front().map(|r| r.cmd_seq)
    }

    /// Rebuilds the window from a snapshot's list, checking it is one the engine
    /// could have made: in command order, ids distinct and not too long, within the
    /// count bound, and within the time window at `last_ts_ns` and before
    /// `last_seq`.
    pub fn restore(list: Vec<Remembered>, last_seq: u64, last_ts_ns: u64) -> Result<Self, String> {
        if list.len() > REQUEST_IDS_REMEMBERED_MAX {
            return Err(format!("{} request ids remembered", list.len()));
        }
        let mut w = RequestWindow::default();
        for r in list {
            let ordered = w
                .order
                .back()
                .is_none_or(|b| b.cmd_seq < r.cmd_seq && b.ts_ns <= r.ts_ns);
            let in_window = r.cmd_seq <= last_seq
                && r.ts_ns <= last_ts_ns
                && last_ts_ns - r.ts_ns <= REQUEST_ID_WINDOW_NS
                && r.request_id.len() <= crate::command::REQUEST_ID_BYTES_MAX;
            if !ordered || !in_window || w.by_id.contains_key(&r.request_id) {
                return Err(format!(
                    "bad remembered request id at cmd_seq {}",
                    r.cmd_seq
                ));
            }
            w.by_id.insert(r.request_id.clone(), r.cmd_seq);
            w.order.push_back(r);
        }
        Ok(w)
    }
}

impl<B: crate::book::OrderBook> crate::state::Engine<B> {
    /// The sequence number of the command that applied the idempotent
    /// `request_id`, while the engine remembers it (a repeat is then a
    /// `duplicate_request`).
    pub fn applied_request(&self, request_id: &str) -> Option<u64> {
        self.requests.original(request_id)
    }

    /// The sequence number of the oldest command whose request id the engine
    /// still remembers (`None` when it remembers none): a `duplicate_request`
    /// from now on names this command or a later one.
    pub fn oldest_remembered_request(&self) -> Option<u64> {
        self.requests.oldest_cmd_seq()
    }

    /// How many idempotent request ids the engine remembers.
    pub fn remembered_requests(&self) -> usize {
        self.requests.len()
    }

    /// The id `create_account` without an id would get now: the lowest id no
    /// account has.
    pub fn next_account_id(&self) -> crate::types::AccountId {
        self.next_account_id
    }
}
