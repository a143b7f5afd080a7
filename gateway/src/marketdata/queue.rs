//! One WebSocket connection's bounded outbound queue.
//!
//! Producers (the hub thread, the connection's reader task) push without ever
//! waiting: [`OutQueue::push`] fails when the queue holds `max_messages` messages
//! or `max_bytes` bytes, and the producer then decides what the overflow means
//! (a fresh snapshot, or closing the connection). The connection's writer task is
//! the only consumer: it takes everything queued at once and writes it with one
//! flush, so a burst costs one wake-up and one system call, not one per message.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

/// What the writer sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A JSON text frame.
    Text(Utf8Bytes),
    /// A WebSocket ping.
    Ping,
}

/// How a connection ends, as told to the peer in its close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code (see `docs/MARKET_DATA.md`).
    pub code: u16,
    /// Human-readable reason (at most 123 bytes on the wire).
    pub reason: String,
}

#[derive(Debug, Default)]
struct Inner {
    items: VecDeque<Out>,
    bytes: usize,
    close: Option<CloseReason>,
}

/// The bounded queue between producers and one connection's writer.
#[derive(Debug)]
pub struct OutQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    max_messages: usize,
    max_bytes: usize,
}

/// The queue is full (or closed): the message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

fn size(o: &Out) -> usize {
    match o {
        Out::Text(t) => t.len(),
        Out::Ping => 0,
    }
}

impl OutQueue {
    /// A queue holding at most `max_messages` messages and `max_bytes` bytes.
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            max_messages: max_messages.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `o` unless the queue is full or closed. Never waits.
    pub fn push(&self, o: Out) -> Result<(), Full> {
        {
            let mut q = self.lock();
            let n = size(&o);
            if q.close.is_some()
                || q.items.len() >= self.max_messages
                || (q.bytes + n > self.max_bytes && !q.items.is_empty())
            {
                return Err(Full);
            }
            q.bytes += n;
            q.items.push_back(o);
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Drops everything queued and queues `items` instead, whatever their size
    /// (a resync: fresh snapshots replace the deltas a slow reader fell behind on).
    pub fn replace(&self, items: Vec<Out>) {
        {
            let mut q = self.lock();
            if q.close.is_some() {
                return;
            }
            q.items.clear();
            q.bytes = items.iter().map(size).sum();
            q.items.extend(items);
        }
        self.notify.notify_one();
    }

    /// Asks the writer to send a close frame after what is queued (or, with
    /// `discard`, instead of it) and stop. The first reason given wins.
    pub fn close(&self, reason: CloseReason, discard: bool) {
        {
            let mut q = self.lock();
            if q.close.is_some() {
                return;
            }
            if discard {
                q.items.clear();
                q.bytes = 0;
            }
            q.close = Some(reason);
        }
        self.notify.notify_one();
    }

    /// Whether the connection is closing.
    pub fn is_closed(&self) -> bool {
        self.lock().close.is_some()
    }

    /// Takes everything queued into `out`, and the close reason once the queue is
    /// empty and closing.
    pub fn take(&self, out: &mut Vec<Out>) -> Option<CloseReason> {
        let mut q = self.lock();
        out.extend(q.items.drain(..));
        q.bytes = 0;
        q.close.clone()
    }

    /// Waits until something was pushed since the last wake-up.
    pub async fn wait(&self) {
        self.notify.notified().await
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Out {
        Out::Text(Utf8Bytes::from(s))
    }

    #[test]
    fn bounded_by_messages_and_bytes() {
        let q = OutQueue::new(2, 10);
        assert!(q.push(text("abc")).is_ok());
        assert!(q.push(text("abcdefgh")).is_err()); // 11 bytes
        assert!(q.push(text("abc")).is_ok());
        assert!(q.push(text("a")).is_err()); // 3 messages
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got), None);
        assert_eq!(got.len(), 2);
        // A single message larger than the byte bound still goes into an empty queue.
        assert!(q.push(text("0123456789abc")).is_ok());
    }

    #[test]
    fn replace_and_close() {
        let q = OutQueue::new(2, 100);
        q.push(text("a")).unwrap();
        q.push(text("b")).unwrap();
        q.replace(vec![text("s1"), text("s2"), text("s3")]);
        assert_eq!(q.len(), 3);
        q.close(
            CloseReason {
                code: 4000,
                reason: "x".into(),
            },
            true,
        );
        assert!(q.push(text("c")).is_err());
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got).map(|c| c.code), Some(4000));
        assert!(got.is_empty());
    }
}
