//! # gpux
//!
//! The gpux binary's library: the command-line tools around the engine.
//!
//! - [`apply`]: `gpux apply` — JSON-lines commands in, JSON-lines events out.
//! - [`bench`](mod@bench): `gpux bench …` — throughput and latency measurements (engine,
//!   pipeline embedded or through Kafka, gateway) and the seeded workload they run.
//! - [`replay_cmd`]: `gpux replay …` — the command line of the ledger audit tools.
//! - [`run`]: the wiring of each role — `gpux serve`, `gpux gateway`, `gpux engine`.
//! - [`client`]: `gpux markets`, `buy`, `sell`, `watch`, … — the trading client,
//!   talking to any gpux over HTTP and the WebSocket.
//! - [`config`]: every role's settings — defaults, TOML file, environment, flags.
//! - [`demo`]: simulated traders that keep sample markets moving (`serve --demo`).
//! - [`logging`]: the process's `tracing` subscriber, text or JSON lines.
//! - [`metrics`]: Prometheus metrics of a running exchange.
#![deny(missing_docs)]

pub mod apply;
pub mod bench;
pub mod client;
pub mod config;
pub mod demo;
pub mod demo_delivery;
pub mod logging;
pub mod metrics;
pub mod replay_cmd;
pub mod run;
