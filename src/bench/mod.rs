//! `gpux bench …`: throughput and latency measurements, each printed as one JSON
//! line on standard output.
//!
//! This module owns the `bench` subcommand's flags ([`BenchCmd`]) and sends each
//! one to its measurement; each submodule owns one measurement and its report:
//!
//! - [`engine`]: the matching engine alone (`bench engine`).
//! - [`pipeline`]: the whole embedded pipeline into a durable ledger
//!   (`bench pipeline`).
//! - [`kafka`]: the same pipeline fed by a Kafka broker, against a bare consumer
//!   (`bench pipeline --kafka`).
//! - [`gateway`]: order entry and WebSocket fan-out over loopback (`bench gateway`).
//! - [`disk`]: bytes written to the data directory's device (`/proc/diskstats`).
//! - [`workload`]: the seeded order flow the engine and pipeline benches (and the
//!   criterion benches and end-to-end tests) run.
//!
//! `bench ledger` is the ledger crate's own (`gpux_ledger::bench`).

pub mod disk;
pub mod engine;
pub mod gateway;
pub mod kafka;
pub mod pipeline;
pub mod workload;

use std::path::PathBuf;

use anyhow::Result;
use gpux_sequencer::PipelineOptions;

/// The `gpux bench` subcommands and their flags.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// The matching engine alone, on a seeded realistic order flow.
    Engine {
        /// Order messages to run.
        #[arg(long, default_value_t = 1_000_000)]
        orders: usize,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The workload's shape: everyday flow over a week of slots, or one
        /// slot's deep book (steady, swinging, or through a flash crash).
        #[arg(long, value_enum, default_value_t = workload::Scenario::Week)]
        scenario: workload::Scenario,
    },
    /// The ledger alone: synthetic events through group commit, every batch
    /// fsynced, then a restart from a snapshot plus every event after it.
    Ledger {
        /// Events to write.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Directory for the ledger (default: a temporary one, removed afterwards).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
    /// The whole pipeline: the engine workload submitted to the embedded command
    /// log, decoded, applied and committed to a durable ledger.
    Pipeline(PipelineArgs),
    /// The gateway over loopback: order entry from concurrent HTTP keep-alive clients,
    /// then WebSocket fan-out of book updates to many subscribers.
    Gateway {
        /// Concurrent HTTP clients placing orders.
        #[arg(long, default_value_t = 64)]
        http_clients: usize,
        /// Orders to place.
        #[arg(long, default_value_t = 200_000)]
        orders: u64,
        /// WebSocket subscribers.
        #[arg(long, default_value_t = 1_000)]
        subscribers: usize,
        /// Book updates per second during the WebSocket phase.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Seconds of WebSocket load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Market-data flush (coalescing) interval, ms.
        #[arg(long, default_value_t = 10)]
        flush_ms: u64,
    },
}

/// The flags of `gpux bench pipeline`.
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// Order messages to run (plus the setup commands).
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: usize,
    /// Workload seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Commands per submission to the log.
    #[arg(long, default_value_t = 256)]
    pub chunk: usize,
    /// Most commands submitted but not yet durable (clients waiting).
    #[arg(long, default_value_t = 65_536)]
    pub in_flight: usize,
    /// Open loop: submit at this many commands per second on a fixed schedule,
    /// whatever is still in flight, and time each submission from when it was
    /// due (no coordinated omission). Without it, closed loop at --in-flight.
    #[arg(long, value_name = "COMMANDS_PER_SEC", conflicts_with_all = ["prejournal", "kafka"])]
    pub rate: Option<u64>,
    /// Most commands per synced ledger write (group commit).
    #[arg(long, default_value_t = gpux_ledger::GroupCommitOptions::default().max_commands_per_write)]
    pub write_commands: usize,
    /// Snapshot the engine every this many events (as `gpux serve`'s
    /// `snapshot_every_events`): the engine thread pauses while it serializes
    /// its state, which shows in the latency tail.
    #[arg(long, value_name = "EVENTS", default_value_t = gpux_sequencer::SNAPSHOT_EVERY_EVENTS_DEFAULT)]
    pub snapshot_every: u64,
    /// Journal every command in the ledger's inbox first, then time only log →
    /// engine → ledger (as the Kafka variant does with a pre-filled topic).
    #[arg(long)]
    pub prejournal: bool,
    /// Through a Kafka broker instead (host:port): the workload is produced to a
    /// fresh topic, a bare consumer drains it, then the pipeline consumes it; prints
    /// both rates and their ratio.
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// With --kafka: commands per record of the commands topic. Above 1 the
    /// workload is produced as batch records (`{"v":3,"batch":[…]}`, see
    /// PROTOCOL.md); 1 produces one record per command.
    #[arg(
        long,
        value_name = "COMMANDS",
        default_value_t = 100,
        requires = "kafka",
        value_parser = clap::value_parser!(u32).range(1..=gpux_sequencer::kafka::batch::BATCH_COMMANDS_MAX as i64)
    )]
    pub kafka_batch: u32,
    /// With --kafka: a librdkafka client setting, KEY=VALUE, for every client the
    /// bench makes (repeatable; e.g. `compression.type=lz4` for the producer).
    #[arg(
        long = "kafka-option",
        value_name = "KEY=VALUE",
        requires = "kafka",
        value_parser = crate::config::args::parse_key_value
    )]
    pub kafka_options: Vec<(String, String)>,
    /// Directory for the ledger (default: a temporary one, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Runs one `gpux bench` measurement and prints its report as one JSON line.
pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Engine {
            orders,
            seed,
            scenario,
        } => print_line(&engine::run_scenario(orders, seed, scenario)),
        BenchCmd::Ledger { events, data } => {
            let dir = LedgerDir::new(data)?;
            let opts = gpux_ledger::BenchOptions::default();
            print_line(&gpux_ledger::bench(dir.path(), events, &opts)?)
        }
        BenchCmd::Pipeline(args) => run_pipeline(args),
        BenchCmd::Gateway {
            http_clients,
            orders,
            subscribers,
            rate,
            seconds,
            flush_ms,
        } => print_line(&gateway::run_embedded(&gateway::GatewayBenchOptions {
            http_clients,
            orders,
            ws_subscribers: subscribers,
            ws_rate: rate,
            ws_seconds: seconds,
            flush_ms,
        })?),
    }
}

/// `gpux bench pipeline`: through Kafka with `--kafka`, else embedded.
fn run_pipeline(args: PipelineArgs) -> Result<()> {
    if let Some(brokers) = args.kafka {
        return print_line(&kafka::run(&kafka::KafkaBench {
            orders: args.orders,
            seed: args.seed,
            brokers,
            batch: args.kafka_batch as usize,
            client_settings: args.kafka_options,
        })?);
    }
    let dir = LedgerDir::new(args.data)?;
    let mut opts = PipelineOptions {
        snapshot_every_events: args.snapshot_every,
        ..PipelineOptions::default()
    };
    opts.commit.max_commands_per_write = args.write_commands.max(1);
    let report = pipeline::embedded(
        dir.path(),
        args.orders,
        args.seed,
        pipeline::Shape {
            chunk: args.chunk.max(1),
            in_flight: args.in_flight,
            rate: args.rate.filter(|&r| r > 0),
        },
        opts,
        args.prejournal,
    )?;
    print_line(&report)
}

/// Prints `report` as one line of JSON on standard output.
fn print_line(report: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(report)?);
    Ok(())
}

/// The ledger directory a bench writes to: the one given, or a temporary one
/// removed when this is dropped.
struct LedgerDir {
    path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl LedgerDir {
    fn new(given: Option<PathBuf>) -> Result<Self> {
        Ok(match given {
            Some(path) => LedgerDir { path, _tmp: None },
            None => {
                let tmp = tempfile::tempdir()?;
                LedgerDir {
                    path: tmp.path().to_path_buf(),
                    _tmp: Some(tmp),
                }
            }
        })
    }

    fn path(&self) -> &std::path::Path {
        &self.path
    }
}
