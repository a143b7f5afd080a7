//! `gpux bench engine`: the matching engine alone, no log and no ledger.
//!
//! It runs the [`workload`] through the engine with
//! accounts and holds, events collected in a reused buffer. It makes two passes
//! over the same commands on fresh engines: one untimed per message, for
//! throughput (`msgs_per_sec`), and one timing every message, for latency
//! percentiles (reading the clock costs tens of nanoseconds, which would otherwise
//! distort the throughput figure).

use super::workload::{self, prepared, Scenario, WorkloadConfig};
use gpux_engine::{Command, Event};
use serde::Serialize;
use std::time::Instant;

/// The result of `gpux bench engine`.
#[derive(Debug, Clone, Serialize)]
pub struct EngineBenchReport {
    /// Always `"engine"`.
    pub bench: &'static str,
    /// The workload's shape.
    pub scenario: Scenario,
    /// Workload seed.
    pub seed: u64,
    /// Order messages applied (places, amends, cancels).
    pub messages: u64,
    /// Wall time of the throughput pass.
    pub seconds: f64,
    /// Messages per second in the throughput pass.
    pub msgs_per_sec: f64,
    /// Messages per second of the benchmark thread's own CPU time in the
    /// throughput pass (Linux: `/proc/thread-self/schedstat`), which time spent
    /// waiting for a core on a busy machine does not lower; `None` where the
    /// kernel does not say.
    pub msgs_per_cpu_sec: Option<f64>,
    /// Median latency of one `apply`, nanoseconds (timed pass).
    pub p50_ns: u64,
    /// 99th percentile latency.
    pub p99_ns: u64,
    /// 99.9th percentile latency.
    pub p999_ns: u64,
    /// Slowest message.
    pub max_ns: u64,
    /// Events produced.
    pub events: u64,
    /// Trades executed.
    pub trades: u64,
    /// Rejected messages (e.g. cancels of orders already gone).
    pub rejects: u64,
    /// Orders resting at the end.
    pub resting_orders: usize,
    /// Books (delivery slots) with resting orders at the end.
    pub live_books: usize,
}

/// Runs the engine benchmark over `messages` generated messages of the
/// everyday workload.
pub fn run(messages: usize, seed: u64) -> EngineBenchReport {
    run_scenario(messages, seed, Scenario::Week)
}

/// Runs the engine benchmark over `messages` generated messages of `scenario`.
pub fn run_scenario(messages: usize, seed: u64, scenario: Scenario) -> EngineBenchReport {
    let cfg = WorkloadConfig::scenario(messages, seed, scenario);
    let commands: Vec<Command> = workload::orders(&cfg);

    // Pass 1: throughput.
    let (mut engine, base) = prepared(&cfg);
    let mut events: Vec<Event> = Vec::with_capacity(1_024);
    let (mut n_events, mut trades, mut rejects) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let cpu_start = thread_cpu_ns();
    for (i, cmd) in commands.iter().enumerate() {
        let seq = base + 1 + i as u64;
        events.clear();
        engine.apply(seq, workload::ts_ns(seq), cmd, &mut events);
        n_events += events.len() as u64;
        for e in &events {
            match e {
                Event::TradeExecuted(_) => trades += 1,
                Event::OrderRejected(_) => rejects += 1,
                _ => {}
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = cpu_start
        .zip(thread_cpu_ns())
        .map(|(a, b)| b.saturating_sub(a) as f64 / 1e9);
    let resting_orders = engine.open_order_count();
    let live_books = workload::live_books(&engine);

    // Pass 2: latency of each message.
    let (mut engine, base) = prepared(&cfg);
    let mut latencies: Vec<u64> = Vec::with_capacity(commands.len());
    for (i, cmd) in commands.iter().enumerate() {
        let seq = base + 1 + i as u64;
        events.clear();
        let t = Instant::now();
        engine.apply(seq, workload::ts_ns(seq), cmd, &mut events);
        latencies.push(t.elapsed().as_nanos() as u64);
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    EngineBenchReport {
        bench: "engine",
        scenario,
        seed,
        messages: commands.len() as u64,
        seconds,
        msgs_per_sec: commands.len() as f64 / seconds.max(f64::MIN_POSITIVE),
        msgs_per_cpu_sec: cpu_seconds.map(|s| commands.len() as f64 / s.max(f64::MIN_POSITIVE)),
        p50_ns: pct(0.50),
        p99_ns: pct(0.99),
        p999_ns: pct(0.999),
        max_ns: latencies.last().copied().unwrap_or(0),
        events: n_events,
        trades,
        rejects,
        resting_orders,
        live_books,
    }
}

/// The calling thread's CPU time so far, nanoseconds: the first field of
/// `/proc/thread-self/schedstat` (time spent running on a core).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
