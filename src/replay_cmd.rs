//! `gpux replay …`: the command line of the ledger audit tools.
//!
//! The tools themselves live in the `gpux_replay` crate; this module owns their
//! flags ([`ReplayCmd`]), opens standard output and the progress bars for them, and
//! turns a failed check into a non-zero exit.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use gpux_replay::{audit, diff, export, state, statement, verify, Outcome, Progress};

/// The `gpux replay` tools and their flags.
#[derive(Debug, clap::Subcommand)]
pub enum ReplayCmd {
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
    /// Stream trades, deliveries (the delivery schedule), events or commands of a command range as JSON lines or CSV.
    Export {
        /// Ledger directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// What to export.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["trades", "deliveries", "events", "commands"]))]
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

/// Runs one `gpux replay` tool; a failed check (already printed as JSON) is an
/// error, so the exit code is non-zero.
pub fn run(tool: ReplayCmd) -> anyhow::Result<()> {
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
