//! The `gpux` command: see `gpux --help`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::{BufReader, BufWriter};
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
    Apply {
        /// File of commands, one JSON object per line (default: standard input).
        #[arg(long, value_name = "FILE")]
        commands: Option<PathBuf>,
    },
    /// Measure throughput and latency; prints one JSON line.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
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
        Cmd::Apply { commands } => {
            let stdout = BufWriter::new(std::io::stdout().lock());
            match commands {
                Some(path) => {
                    let file = std::fs::File::open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    gpux::apply::run(BufReader::new(file), stdout)?;
                }
                None => {
                    gpux::apply::run(std::io::stdin().lock(), stdout)?;
                }
            }
        }
        Cmd::Bench { what } => match what {
            BenchCmd::Engine { orders, seed } => {
                let report = gpux::bench::engine(orders, seed);
                println!("{}", serde_json::to_string(&report)?);
            }
        },
    }
    Ok(())
}
