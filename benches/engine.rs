//! Criterion benches for the engine's hot operations and the realistic workload.
//! Run: `cargo bench --bench engine`. Figures are for comparison between
//! commits on one machine; nothing here asserts a time.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gpux::bench::workload::{self, limit_order, prepared, Scenario, WorkloadConfig};
use gpux_engine::command::CancelOrder;
use gpux_engine::{Command, Engine, Event, Side, TimeInForce};
use std::hint::black_box;

/// The funded accounts of the everyday workload, no orders.
fn funded() -> (Engine, u64) {
    prepared(&WorkloadConfig::new(0, 0))
}

/// A limit order for the first slot of the benchmark market.
fn limit(account: u64, side: Side, ticks: i64, lots: u64, tif: TimeInForce) -> Command {
    limit_order(account, workload::slot(0), side, ticks, lots, tif)
}

fn ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));

    // Place a passive order and cancel it: the commonest pair in real flow.
    g.bench_function("place_then_cancel", |b| {
        let (mut engine, mut seq) = funded();
        let mut events: Vec<Event> = Vec::with_capacity(16);
        let mut id = 0;
        b.iter(|| {
            seq += 1;
            id += 1;
            events.clear();
            engine.apply(
                seq,
                workload::ts_ns(seq),
                &limit(1, Side::Buy, 2_400, 5, TimeInForce::Gtc),
                &mut events,
            );
            seq += 1;
            let cancel = Command::CancelOrder(CancelOrder {
                account: 1,
                order_id: Some(id),
                client_order_id: None,
            });
            engine.apply(seq, workload::ts_ns(seq), &cancel, &mut events);
            black_box(events.len())
        })
    });

    // An IOC that sweeps three price levels of a prepared book.
    g.bench_function("ioc_sweep_3_levels", |b| {
        b.iter_batched(
            || {
                let (mut engine, mut seq) = funded();
                let mut events = Vec::new();
                for (i, t) in [2_501, 2_502, 2_503].iter().enumerate() {
                    seq += 1;
                    engine.apply(
                        seq,
                        workload::ts_ns(seq),
                        &limit(2 + i as u64, Side::Sell, *t, 4, TimeInForce::Gtc),
                        &mut events,
                    );
                }
                (engine, seq)
            },
            |(mut engine, seq)| {
                let mut events: Vec<Event> = Vec::with_capacity(16);
                engine.apply(
                    seq + 1,
                    workload::ts_ns(seq + 1),
                    &limit(1, Side::Buy, 2_503, 12, TimeInForce::Ioc),
                    &mut events,
                );
                black_box(events.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// 100,000 messages of each workload scenario: the everyday week of slots, and
/// one slot's deep book steady, swinging and through a flash crash.
fn flow(c: &mut Criterion) {
    let mut g = c.benchmark_group("workload");
    g.sample_size(10);
    for scenario in [
        Scenario::Week,
        Scenario::Deep,
        Scenario::Swing,
        Scenario::Crash,
    ] {
        let cfg = WorkloadConfig::scenario(100_000, 1, scenario);
        let commands = workload::orders(&cfg);
        g.throughput(Throughput::Elements(commands.len() as u64));
        let name = format!("{scenario:?}_100k").to_lowercase();
        g.bench_function(name, |b| {
            b.iter_batched(
                || prepared(&cfg),
                |(mut engine, base)| {
                    let mut events: Vec<Event> = Vec::with_capacity(64);
                    for (i, cmd) in commands.iter().enumerate() {
                        let seq = base + 1 + i as u64;
                        events.clear();
                        engine.apply(seq, workload::ts_ns(seq), cmd, &mut events);
                    }
                    black_box(engine.open_order_count())
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// What a periodic snapshot costs the engine thread: serializing the whole state
/// (`snapshot`, what the engine thread did until the pipeline took snapshots of a
/// copy) against copying it (`clone`, what it does now), on the state 300,000
/// messages of each scenario leave.
fn state(c: &mut Criterion) {
    let mut g = c.benchmark_group("state");
    g.sample_size(10);
    for scenario in [Scenario::Week, Scenario::Deep] {
        let cfg = WorkloadConfig::scenario(300_000, 1, scenario);
        let (mut engine, base) = prepared(&cfg);
        let mut events: Vec<Event> = Vec::with_capacity(64);
        for (i, cmd) in workload::orders(&cfg).iter().enumerate() {
            let seq = base + 1 + i as u64;
            events.clear();
            engine.apply(seq, workload::ts_ns(seq), cmd, &mut events);
        }
        let name = format!("{scenario:?}").to_lowercase();
        g.bench_function(format!("{name}_snapshot"), |b| {
            b.iter(|| black_box(engine.snapshot().len()))
        });
        g.bench_function(format!("{name}_clone"), |b| {
            b.iter(|| black_box(engine.clone().open_order_count()))
        });
    }
    g.finish();
}

criterion_group!(benches, ops, flow, state);
criterion_main!(benches);
