//! # gpux
//!
//! The gpux binary's library: the command-line tools around the engine.
//!
//! - [`apply`]: `gpux apply` — JSON-lines commands in, JSON-lines events out.
//! - [`bench`]: `gpux bench …` — throughput and latency measurements.
//! - [`pipeline`]: the embedded sequencer — command log → engine → ledger.
//! - [`serve`]: `gpux serve` — the embedded exchange with its HTTP gateway.
//! - [`workload`]: the seeded order-flow generator the benches share.
#![deny(missing_docs)]

pub mod apply;
pub mod bench;
pub mod pipeline;
pub mod serve;
pub mod workload;
