//! The `gpux` command: see `gpux --help`.

use clap::{Parser, Subcommand};
use gpux::config::Config;
use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: the pipeline's stages hand buffers
/// from thread to thread (decoded commands, event encodings, ledger records),
/// and glibc's per-thread arenas made the threads that free them lock and
/// consolidate the arenas of the threads that allocated them (`malloc`,
/// `malloc_consolidate` and `_int_free` were 10-15 % of a pipeline profile).
/// Measured in docs/ARCHITECTURE.md § Measured.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// gpux — an exchange for GPU compute.
#[derive(Parser)]
#[command(
    name = "gpux",
    version,
    about,
    long_about = None,
    after_help = "Client commands (login … watch, report, dispute, keys) talk to the exchange at --api or GPUX_API, with the key from GPUX_API_KEY or `gpux login`; times are UTC. Their exit status: 0 done, 2 bad arguments, 3 the exchange refused the request (its code and message are printed), 4 no key or a refused key, 5 the exchange is unreachable, busy or unavailable (retry), 6 not confirmed, 1 anything else."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Apply JSON-lines commands to a fresh engine and print every event as a JSON line.
    ///
    /// Each line is a command envelope: {"v":3,"ts_ns":…,"command":{"type":…}} (see
    /// docs/PROTOCOL.md). The first bad line stops the run with an error naming it.
    ///
    /// With --data DIR the commands go through the embedded command log and are
    /// applied and committed to DIR's ledger before their events are printed; run
    /// again with the same file, it resumes after the lines already in the ledger.
    Apply(gpux::apply::ApplyArgs),
    /// Run the exchange core in Kafka mode until SIGINT/SIGTERM: commands from a
    /// topic, committed to the ledger in --data, published to the events topic.
    ///
    /// Takes the settings of every role (--config, GPUX_*, the same flags as serve's
    /// for the ledger, logging and Kafka) and needs --kafka BROKERS.
    Engine(#[command(flatten)] gpux::config::EngineArgs),
    /// Measure throughput and latency; prints one JSON line.
    Bench {
        #[command(subcommand)]
        what: gpux::bench::BenchCmd,
    },
    /// Audit a ledger: verify it, rebuild past states, export, statements, diff.
    ///
    /// Every tool opens the ledger read-only and never writes to it. Results are
    /// JSON on standard output (exports: JSON lines or CSV); progress bars go to
    /// standard error when it is a terminal. A failed check prints
    /// {"ok":false,"error":…,"cmd_seq":…,"event_seq":…} and exits non-zero.
    Replay {
        #[command(subcommand)]
        tool: gpux::replay_cmd::ReplayCmd,
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
    /// The trading client: markets, buy, sell, watch, …
    #[command(flatten)]
    Client(gpux::client::ClientCmd),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpux: {e:#}");
            // A client command's failure says what kind it was (see client::api).
            match e.downcast_ref::<gpux::client::api::Failure>() {
                Some(f) => ExitCode::from(f.exit),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Apply(args) => gpux::apply::run_cli(args)?,
        Cmd::Bench { what } => gpux::bench::run(what)?,
        Cmd::Replay { tool } => gpux::replay_cmd::run(tool)?,
        Cmd::Serve(args) => gpux::run::serve(Config::load(&args)?)?,
        Cmd::Demo(mut args) => {
            args.demo.demo = true;
            gpux::run::serve(Config::load(&args)?)?
        }
        Cmd::Engine(args) => gpux::run::engine(Config::load(&args)?, &args)?,
        Cmd::Gateway(args) => gpux::run::gateway(Config::load(&args)?)?,
        Cmd::Client(cmd) => gpux::client::run(cmd)?,
    }
    Ok(())
}
