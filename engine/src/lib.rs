//! # gpux-engine
//!
//! The deterministic matching core of gpux: markets of GPU-hours keyed by GPU model
//! and region, traded per hourly **delivery slot** (one book per market and slot,
//! opened when first used and closed at its gate, when the slot's delivery
//! schedule is fixed); accounts with USD, and GPUs per slot split into available
//! and held; limit and market orders in price-time priority, all-or-none window and
//! cluster orders, fees, and the queries that market data and audits need.
//!
//! It is pure: no I/O, no clock, no randomness, no threads. Time enters only as the
//! timestamp handed to [`Engine::apply`], ids come from counters, and hash maps are
//! only ever looked up, never iterated into output. The same commands therefore give
//! byte-identical events and an equal [`Engine::state_hash`] on any machine.
//!
//! ## Layout
//! - [`types`]: ids, sides, time in force, self-trade prevention, cancel reasons.
//! - [`command`] / [`event`]: the inputs and outputs, with their JSON protocol.
//! - [`reject`]: the stable reject codes.
//! - [`market`]: market specs and the decimal ↔ integer boundary; [`decimal`]: the
//!   strict decimal strings of the protocol; [`units`]: micro-USD and the exact
//!   decimal ↔ integer conversions (depends on nothing else in the crate).
//! - [`book`]: the [`OrderBook`] trait, the fast [`Book`] and the reference [`NaiveBook`].
//! - [`account`]: balances and holds, and where each GPU came from.
//! - [`slot`]: delivery slots and their two spellings (unix seconds, `2026-12-07T09:00Z`).
//! - `state`: the [`Engine`] struct — markets, accounts, open-order indexes, id
//!   counters — and the lookups every command shares.
//! - `apply`: [`Engine::apply`] — time, dispatch and rejections, then one file per
//!   command family: `markets` (listing), `funds` (accounts, deposits, withdrawals,
//!   capacity), `place` (with `window` for all-or-none orders), `amend`, `cancel`
//!   (orders), `slots` (gate closure and the delivery schedule).
//! - `matching`: an incoming order against the book — price-time matching, trades,
//!   self-trade prevention, fill-or-kill, resting or cancelling the remainder.
//! - `risk`: what an order holds, fees, and what fills and cancels release: every
//!   hold rule stated once.
//! - `query`: read-only views for market data and audits; `snapshot`: state hash,
//!   snapshot and restore, invariant checks.
//! - `chunked`: a vector that grows by fixed chunks, never moving an element
//!   (the lot arenas).
//! - `requests`: the window of idempotent request ids applied, so a request retried
//!   through another gateway takes effect once.
//! - [`limits`]: every bound, named.
//!
//! ## Example
//! ```
//! use gpux_engine::{Command, Engine, Event};
//!
//! let mut engine: Engine = Engine::new();
//! let mut events: Vec<Event> = Vec::new();
//! let lines = [
//!     r#"{"type":"list_market","market":"h100-sxm.us-east","tick_size":"0.01","lot_size":"1","maker_fee_bps":0,"taker_fee_bps":20}"#,
//!     r#"{"type":"create_account","account":1}"#,
//!     r#"{"type":"deposit","account":1,"amount":"1000"}"#,
//!     // The hour starting 2023-11-14T23:00Z, 46 minutes after engine time.
//!     r#"{"type":"place_order","account":1,"market":"h100-sxm.us-east","slot":1700002800,"side":"buy","price":"2.35","quantity":"8"}"#,
//! ];
//! for (seq, line) in lines.iter().enumerate() {
//!     let cmd: Command = serde_json::from_str(line).unwrap();
//!     engine.apply(seq as u64 + 1, 1_700_000_000_000_000_000, &cmd, &mut events);
//! }
//! assert!(matches!(events.last(), Some(Event::OrderRested(_))));
//! let market = "h100-sxm.us-east".parse().unwrap();
//! assert_eq!(engine.best_bid(&market, 1_700_002_800).unwrap().price.to_string(), "2.35");
//! ```
#![deny(missing_docs)]

pub mod account;
mod apply;
pub mod book;
mod chunked;
pub mod command;
pub mod decimal;
pub mod delivery;
pub mod event;
pub mod limits;
pub mod market;
mod matching;
mod query;
pub mod reject;
mod requests;
mod risk;
pub mod slot;
mod snapshot;
mod state;
pub mod types;
pub mod units;
mod wire;

pub use book::{Book, Handle, NaiveBook, OrderBook, RestingOrder};
pub use command::{Command, CommandEnvelope, CommandKind, KeyDigest, KeyScope, PROTOCOL_VERSION};
pub use delivery::{EntryState, EntryView, ProviderAhead, ProviderView};
pub use event::{DuplicateRequest, Event, EventEnvelope, EventSink};
pub use query::{AccountView, BalanceView, BlockLevel, L2Level, OrderView, PositionView, UsdView};
pub use reject::RejectReason;
pub use snapshot::{SnapshotError, StateHash};
pub use state::Engine;
pub use types::{
    AccountId, CancelReason, ClientOrderId, MarketId, OrderId, OrderType, Side, StpMode,
    TimeInForce, TradeId, FEE_ACCOUNT,
};

/// The engine on the reference book: what tests compare the real one against.
pub type ReferenceEngine = Engine<NaiveBook>;
