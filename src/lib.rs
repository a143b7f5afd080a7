//! # gpux
//!
//! The gpux binary's library: the command-line tools around the engine.
//!
//! - [`apply`]: `gpux apply` — JSON-lines commands in, JSON-lines events out.
//! - [`bench`]: `gpux bench …` — throughput and latency measurements.
//! - [`bench_gateway`]: `gpux bench gateway` — order entry and WebSocket fan-out over loopback.
//! - [`pipeline`]: the embedded sequencer — command log → engine → ledger.
//! - [`workload`]: the seeded order-flow generator the benches share.
#![deny(missing_docs)]

pub mod apply;
pub mod bench;
pub mod bench_gateway;
pub mod pipeline;
pub mod workload;
