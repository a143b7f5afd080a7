//! What the hub is told, and the names those messages use.
//!
//! Owns [`HubMsg`] (the hub's inbox: wake-ups from the core thread; registrations,
//! subscriptions and closes from WebSocket sessions; reset and stop from
//! [`MarketData`](super::MarketData)), [`ChannelReq`] and [`ConnId`]. It sits below
//! the hub, the sessions and the core thread's half, so each of them depends on it
//! and none on another for these names.

use std::sync::Arc;

use gpux_engine::{AccountId, MarketId};

use super::queue::OutQueue;

/// A connection's id.
pub type ConnId = u64;

/// A channel named in a request, before the hub resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelReq {
    /// `book.<market>.<slot>`.
    Book((MarketId, u64)),
    /// `trades.<market>.<slot>`.
    Trades((MarketId, u64)),
    /// `ticker.<market>.<slot>`.
    Ticker((MarketId, u64)),
    /// `curve.<market>`: the forward curve.
    Curve(MarketId),
    /// `orders` of this account.
    Orders(AccountId),
}

/// What the hub is told.
#[derive(Debug)]
pub enum HubMsg {
    /// The core thread left work (a hint; the hub also checks the dirty flag).
    Wake,
    /// A new connection.
    Register {
        /// Its id.
        conn: ConnId,
        /// Its outbound queue.
        queue: Arc<OutQueue>,
    },
    /// Subscribe a connection to a channel.
    Subscribe {
        /// Who.
        conn: ConnId,
        /// What.
        channel: ChannelReq,
        /// The channel as the client wrote it.
        name: String,
        /// The request's `id`.
        id: Option<serde_json::Value>,
    },
    /// Unsubscribe.
    Unsubscribe {
        /// Who.
        conn: ConnId,
        /// What.
        channel: ChannelReq,
        /// The channel as the client wrote it.
        name: String,
        /// The request's `id`.
        id: Option<serde_json::Value>,
    },
    /// The connection's queue overflowed with a reply: resync it.
    Resync {
        /// Who.
        conn: ConnId,
    },
    /// The connection ended.
    Closed {
        /// Who.
        conn: ConnId,
    },
    /// Forget everything (the core thread rebuilds market data from cmd_seq 1):
    /// close every connection (1013), empty every book, trade list and pending
    /// change; then answer on `done`.
    Reset {
        /// Told when the reset is done.
        done: std::sync::mpsc::SyncSender<()>,
    },
    /// Shut down: close every connection (1001) and stop.
    Stop,
}
