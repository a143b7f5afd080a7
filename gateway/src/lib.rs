//! # gpux-gateway
//!
//! The only door to the exchange: REST order entry, accounts and markets under
//! `/v1`, and market data (REST and the `/v1/ws` WebSocket). It authenticates,
//! validates, turns requests into commands for the log, answers with what the engine
//! decided once it is durable, and fans committed events out as market data. It
//! never matches and never writes the ledger.
//!
//! ## How it works
//!
//! ```text
//!  HTTP request ──► handler: auth, rate limit, decode, check against the replica
//!                     │ CommandEnvelope {request_id}        ▲ response built from the
//!                     ▼                                     │ command's own events
//!                 Submitter ──► command log ──► engine ──► ledger (durable)
//!                                                            │
//!  core thread ◄── Feed of committed commands, from cmd_seq 1 ┘
//!    re-applies each to its own Engine (a read replica; events must match),
//!    folds order/fill history, learns API keys, feeds market data,
//!    then resolves the waiting request by request_id
//! ```
//!
//! - **State is a read replica of the engine**, kept by one std thread (the *core
//!   thread*, [`replica`]) that re-applies every committed command from cmd_seq 1
//!   — or from its [`checkpoint`], restored at start — to its own engine; queries
//!   take short read locks on it. How it follows the log, and what happens when it
//!   diverges (refuse, rebuild, swap), is told once in `docs/ARCHITECTURE.md`,
//!   section "The gateway's read replica".
//! - **Order entry is acknowledged after durability.** A write builds a
//!   `CommandEnvelope` with a fresh `request_id` (or one derived from the
//!   idempotency key) and the system clock's `ts_ns`, registers a waiter for that id,
//!   then submits. The core thread resolves the waiter when the committed command
//!   with that id has been applied to the replica, so the client's next query
//!   already sees its effect. No answer within the timeout (default 10 s) is a 503
//!   `timeout`: retry with the same `Idempotency-Key`.
//! - **Responses come from the command's own events**, filtered to the caller's
//!   order or account (a command's events can include GTD expiries of other
//!   accounts' orders), so an idempotent replay returns exactly the first answer.
//! - **API keys live in the log**: `create_account` carries the key's SHA-256
//!   (`api_key_sha256`), so every gateway knows every key and nothing else needs
//!   storing. See [`auth`].
//!
//! ## Modules
//!
//! | module | owns |
//! |---|---|
//! | [`server`] | [`start`], [`RunningGateway`], [`Backend`], [`GatewayError`], the route table, graceful shutdown |
//! | [`config`] | [`GatewayConfig`]: listen address, admin key, limits, timeouts |
//! | [`replica`] | [`ReplicaState`](replica::ReplicaState): the replica, the core thread that keeps it, health and counters |
//! | [`bookcount`] | resting orders and levels per market, kept per event, for metrics |
//! | [`rest`] | the REST handlers, DTOs and extractors |
//! | [`auth`] | [`Principal`], [`Authenticator`], the key store, key generation |
//! | [`idempotency`] | request ids, requests in flight, the idempotency cache |
//! | [`history`] | order, fill and delivery-schedule history derived from events |
//! | [`ratelimit`] | per-key and per-IP token buckets |
//! | [`openapi`] | the OpenAPI document served at `/v1/openapi.json` |
//! | [`error`] | [`ApiError`]: the one error shape `{code, message}` |
//! | [`pages`] | the web pages (explorer, provider dashboard, demander console), embedded static files |
//! | [`marketdata`] | market data per delivery slot and the forward curve (REST and `/v1/ws`) |
//!
//! ## Example
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use gpux_gateway::{start, Backend, GatewayConfig};
//! use gpux_sequencer::{Exchange, PipelineOptions};
//!
//! let exchange = Exchange::start_embedded("./gpux-data".as_ref(), PipelineOptions::default())?;
//! let backend = Backend::embedded(&exchange).expect("the embedded log has a submitter");
//! let cfg = GatewayConfig::new("127.0.0.1:8080".parse()?, "an-admin-key-of-16-bytes-or-more");
//! let gateway = start(cfg, backend).await?;
//! gateway.wait_ready().await;
//! // ... serve until asked to stop ...
//! gateway.shutdown().await?;
//! exchange.shutdown()?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod auth;
pub mod bookcount;
pub mod cancel_after;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod history;
pub mod idempotency;
pub mod marketdata;
pub mod openapi;
pub mod pages;
pub mod ratelimit;
pub mod replica;
pub mod rest;
mod routes;
pub mod server;
#[doc(hidden)]
pub mod testkit;

pub use auth::{Authenticator, KeyStore, Principal};
pub use config::{
    ConfigError, GatewayConfig, GatewaySettings, HistoryConfig, IdempotencyConfig, RateLimit,
    RateLimitConfig, RequestObserver,
};
pub use error::ApiError;
pub use replica::{FeedFactory, GatewayStats, HealthReport, HealthStatus, NotServing};
pub use server::{
    ledger_feeds, served_routes, start, Backend, GatewayError, GatewayProbe, RunningGateway,
};
