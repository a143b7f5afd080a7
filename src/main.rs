//! The `gpux` command: see `gpux --help`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gpux::config::Config;
use gpux_sequencer::PipelineOptions;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

/// gpux — an exchange for GPU compute.
#[derive(Parser)]
#[command(name = "gpux", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Apply JSON-lines commands to a fresh engine and print every event as a JSON line.
    ///
    /// Each line is a command envelope: {"v":1,"ts_ns":…,"command":{"type":…}} (see
    /// docs/PROTOCOL.md). The first bad line stops the run with an error naming it.
    ///
    /// With --data DIR the commands are journaled in DIR's embedded command log,
    /// applied, and committed to its ledger before their events are printed; run
    /// again with the same file, it resumes after the lines already in the log.
    Apply {
        /// File of commands, one JSON object per line (default: standard input).
        #[arg(long, value_name = "FILE")]
        commands: Option<PathBuf>,
        /// Ledger directory to make the run durable (created if missing).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// With --data: snapshot the engine every this many events.
        #[arg(long, value_name = "N", default_value_t = gpux_sequencer::SNAPSHOT_EVERY_EVENTS_DEFAULT, requires = "data")]
        snapshot_every: u64,
    },
    /// Run the exchange core in Kafka mode until SIGINT/SIGTERM: commands from a
    /// topic, committed to the ledger in --data, published to the events topic.
    ///
    /// Takes the settings of every role (--config, GPUX_*, the same flags as serve's
    /// for the ledger, logging and Kafka) and needs --kafka BROKERS.
    Engine(#[command(flatten)] gpux::config::EngineArgs),
    /// Measure throughput and latency; prints one JSON line.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Audit a ledger: verify it, rebuild past states, export, statements, diff.
    ///
    /// Every tool opens the ledger read-only and never writes to it. Results are
    /// JSON on standard output (exports: JSON lines or CSV); progress bars go to
    /// standard error when it is a terminal. A failed check prints
    /// {"ok":false,"error":…,"cmd_seq":…,"event_seq":…} and exits non-zero.
    Replay {
        #[command(subcommand)]
        tool: ReplayCmd,
    },
    /// Run the exchange: command log, engine, ledger and the HTTP/WebSocket gateway.
    ///
    /// By default everything runs in this process with the command log embedded in
    /// the ledger (DIR, default ./gpux-data); with --kafka the commands go through a
    /// Kafka topic. The gateway serves REST order entry and market data under /v1
    /// (described at /v1/openapi.json), the WebSocket at /v1/ws, health at
    /// /v1/health and Prometheus metrics at /metrics. --demo adds simulated traders on
    /// sample markets. Settings come from flags, then GPUX_* environment variables,
    /// then the --config TOML file (docs/gpux.example.toml), then defaults. Prints
    /// one JSON line with the listen address and useful URLs once ready; stops
    /// cleanly (batch committed, snapshot, ledger closed) on Ctrl-C or SIGTERM.
    Serve(#[command(flatten)] gpux::config::ServeArgs),
    /// Run the HTTP/WebSocket gateway alone, in front of a `gpux engine` on Kafka.
    ///
    /// Takes serve's settings and needs --kafka BROKERS: orders are produced to the
    /// commands topic, and the gateway's replica follows the events topic the
    /// engine publishes, so it answers an order once the engine has committed it.
    /// Run as many as you like; give them all the same --admin-key (API keys come
    /// from the log). --data DIR holds only a generated admin key. Prints the same
    /// ready line as serve (with "mode":"gateway") once caught up with the topic.
    Gateway(#[command(flatten)] gpux::config::ServeArgs),
    /// `gpux serve --demo`: the exchange with simulated providers and demanders
    /// quoting and trading on sample H100, A100 and RTX 4090 markets.
    Demo(#[command(flatten)] gpux::config::ServeArgs),
}

#[derive(Subcommand)]
enum ReplayCmd {
    /// Check every checksum and the whole hash chain, then re-run every command
    /// through a fresh engine and compare each event byte-for-byte with the stored
    /// one, and the state hash at every snapshot.
    Verify {
        /// Ledger directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
    },
    /// The state after command SEQ: each market's spec and top price levels, every
    /// account's balances and open orders.
    State {
        /// Ledger directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Command sequence number (default: the last one).
        #[arg(long, value_name = "SEQ")]
        at: Option<u64>,
        /// Price levels per side.
        #[arg(long, value_name = "N", default_value_t = gpux_replay::state::LEVELS_DEFAULT)]
        levels: usize,
    },
    /// Stream trades, events or commands of a command range as JSON lines or CSV.
    Export {
        /// Ledger directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// What to export.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["trades", "events", "commands"]))]
        what: String,
        /// Output format.
        #[arg(long, default_value = "jsonl", value_parser = clap::builder::PossibleValuesParser::new(["jsonl", "csv"]))]
        format: String,
        /// First command sequence number (default: 1).
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        /// Last command sequence number, inclusive (default: the last one).
        #[arg(long, value_name = "SEQ")]
        to: Option<u64>,
    },
    /// An account's history with running balances from the events, reconciled
    /// against the engine's state (account 0 is the fee account).
    Statement {
        /// Ledger directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Account id.
        #[arg(long, value_name = "ID")]
        account: u64,
    },
    /// Re-run from genesis checking the engine's invariants after every command,
    /// no crossed book, and conservation of USD and GPU-hours from the events.
    Audit {
        /// Ledger directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Run the full invariant check every N commands (and after the last).
        #[arg(long, value_name = "N", default_value_t = 1)]
        invariants_every: u64,
    },
    /// The first command at which two ledgers diverge (hot-standby check).
    Diff {
        /// First ledger directory.
        a: PathBuf,
        /// Second ledger directory.
        b: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// The matching engine alone, on a seeded realistic order flow.
    Engine {
        /// Order messages to run.
        #[arg(long, default_value_t = 1_000_000)]
        orders: usize,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
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
    /// The whole pipeline: the engine workload journaled into the embedded command
    /// log, decoded, applied and committed to a durable ledger.
    Pipeline {
        /// Order messages to run (plus the setup commands).
        #[arg(long, default_value_t = 1_000_000)]
        orders: usize,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Commands per submission to the log.
        #[arg(long, default_value_t = 256)]
        chunk: usize,
        /// Most commands submitted but not yet durable (clients waiting).
        #[arg(long, default_value_t = 65_536)]
        in_flight: usize,
        /// Most commands per synced ledger write (group commit).
        #[arg(long, default_value_t = gpux_ledger::GroupCommitOptions::default().max_commands_per_write)]
        write_commands: usize,
        /// Journal every command first, then time only log → engine → ledger (as the
        /// Kafka variant does with a pre-filled topic).
        #[arg(long)]
        prejournal: bool,
        /// Through a Kafka broker instead (host:port): the workload is produced to a
        /// fresh topic, a bare consumer drains it, then the pipeline consumes it; prints
        /// both rates and their ratio.
        #[arg(long, value_name = "BROKERS")]
        kafka: Option<String>,
        /// Directory for the ledger (default: a temporary one, removed afterwards).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpux: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Apply {
            commands,
            data,
            snapshot_every,
        } => {
            let stdout = BufWriter::new(std::io::stdout().lock());
            let input: Box<dyn BufRead> = match commands {
                Some(path) => Box::new(BufReader::new(
                    std::fs::File::open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?,
                )),
                None => Box::new(std::io::stdin().lock()),
            };
            match data {
                None => {
                    gpux::apply::run(input, stdout)?;
                }
                Some(dir) => {
                    let opts = PipelineOptions {
                        snapshot_every_events: snapshot_every.max(1),
                        ..PipelineOptions::default()
                    };
                    gpux::apply::run_durable(&dir, opts, input, stdout)?;
                }
            }
        }
        Cmd::Bench { what } => match what {
            BenchCmd::Gateway {
                http_clients,
                orders,
                subscribers,
                rate,
                seconds,
                flush_ms,
            } => {
                let opts = gpux::bench_gateway::GatewayBenchOptions {
                    http_clients,
                    orders,
                    ws_subscribers: subscribers,
                    ws_rate: rate,
                    ws_seconds: seconds,
                    flush_ms,
                };
                let dir = tempfile::tempdir()?;
                let report = tokio::runtime::Runtime::new()?.block_on(async {
                    let target = gpux::bench_gateway::gateway_target(dir.path(), &opts).await?;
                    gpux::bench_gateway::run(&opts, target).await
                })?;
                println!("{report}");
            }
            BenchCmd::Engine { orders, seed } => {
                let report = gpux::bench::engine(orders, seed);
                println!("{}", serde_json::to_string(&report)?);
            }
            BenchCmd::Ledger { events, data } => {
                let tmp;
                let dir = match data {
                    Some(d) => d,
                    None => {
                        tmp = tempfile::tempdir()?;
                        tmp.path().to_path_buf()
                    }
                };
                let report =
                    gpux_ledger::bench(&dir, events, &gpux_ledger::BenchOptions::default())?;
                println!("{}", serde_json::to_string(&report)?);
            }
            BenchCmd::Pipeline {
                orders,
                seed,
                chunk,
                in_flight,
                write_commands,
                prejournal,
                kafka,
                data,
            } => {
                if let Some(brokers) = kafka {
                    let report = gpux::bench_kafka::run(orders, seed, &brokers)?;
                    println!("{}", serde_json::to_string(&report)?);
                    return Ok(());
                }
                let tmp;
                let dir = match data {
                    Some(d) => d,
                    None => {
                        tmp = tempfile::tempdir()?;
                        tmp.path().to_path_buf()
                    }
                };
                let mut opts = PipelineOptions::default();
                opts.commit.max_commands_per_write = write_commands.max(1);
                let report = gpux::bench_pipeline::embedded(
                    &dir, orders, seed, chunk, in_flight, opts, prejournal,
                )?;
                println!("{}", serde_json::to_string(&report)?);
            }
        },
        Cmd::Replay { tool } => replay(tool)?,
        Cmd::Serve(args) => gpux::run::serve(Config::load(&args)?)?,
        Cmd::Demo(mut args) => {
            args.demo.demo = true;
            gpux::run::serve(Config::load(&args)?)?
        }
        Cmd::Engine(args) => gpux::run::engine(Config::load(&args)?, &args)?,
        Cmd::Gateway(args) => gpux::run::gateway(Config::load(&args)?)?,
    }
    Ok(())
}

/// Runs one `gpux replay` tool; a failed check (already printed as JSON) is an
/// error, so the exit code is non-zero.
fn replay(tool: ReplayCmd) -> anyhow::Result<()> {
    use gpux_replay::{audit, diff, export, state, statement, verify, Outcome, Progress};
    use std::io::Write;
    let progress = Progress::stderr();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let (name, outcome) = match tool {
        ReplayCmd::Verify { data } => ("verify", verify::run(&data, &progress, &mut out)?),
        ReplayCmd::State { data, at, levels } => {
            ("state", state::run(&data, at, levels, &progress, &mut out)?)
        }
        ReplayCmd::Export {
            data,
            what,
            format,
            from,
            to,
        } => {
            let opts = export::ExportOptions {
                what: what.parse()?,
                format: format.parse()?,
                from,
                to,
            };
            ("export", export::run(&data, &opts, &progress, &mut out)?)
        }
        ReplayCmd::Statement { data, account } => (
            "statement",
            statement::run(&data, account, &progress, &mut out)?,
        ),
        ReplayCmd::Audit {
            data,
            invariants_every,
        } => {
            let opts = audit::AuditOptions { invariants_every };
            ("audit", audit::run(&data, &opts, &progress, &mut out)?)
        }
        ReplayCmd::Diff { a, b } => ("diff", diff::run(&a, &b, &progress, &mut out)?),
    };
    out.flush()?;
    match outcome {
        Outcome::Success => Ok(()),
        Outcome::Failure(f) => anyhow::bail!("replay {name}: {f}"),
    }
}
