//! # gpux
//!
//! The gpux binary's library: the command-line tools around the engine.
//!
//! - [`apply`]: `gpux apply` — JSON-lines commands in, JSON-lines events out.
//! - [`bench`]: `gpux bench …` — throughput and latency measurements.
//! - [`bench_pipeline`]: `gpux bench pipeline`, the whole embedded pipeline measured.
//! - [`bench_gateway`]: `gpux bench gateway` — order entry and WebSocket fan-out over loopback.
//! - [`run`]: the wiring of each role — `gpux serve`, `gpux gateway`, `gpux engine`.
//! - [`config`]: every role's settings — defaults, TOML file, environment, flags.
//! - [`demo`]: simulated traders that keep sample markets moving (`serve --demo`).
//! - [`logging`]: the process's `tracing` subscriber, text or JSON lines.
//! - [`metrics`]: Prometheus metrics of a running exchange.
//! - [`workload`]: the seeded order-flow generator the benches share.
#![deny(missing_docs)]

pub mod apply;
pub mod bench;
pub mod bench_gateway;
pub mod bench_kafka;
pub mod bench_pipeline;
pub mod config;
pub mod demo;
pub mod logging;
pub mod metrics;
pub mod run;
pub mod workload;
