//! The one place each `gpux` role is wired: what starts, in which order, and what
//! stops it (the way exchange-core's `ExchangeCore` constructor lists its stages).
//!
//! Every role takes the same [`Config`] (one layered configuration: flags →
//! environment → file → defaults, see [`crate::config`]) and installs the same
//! logging ([`crate::logging`]) first. Then:
//!
//! - **`gpux serve`** (and `gpux demo`), [`serve`]: admin key → ledger, command
//!   log (embedded, or the commands topic with `--kafka`) and pipeline
//!   (`gpux_sequencer::Exchange`, with its clock ticking after `clock_tick_ms`
//!   without a command) → gateway following the ledger → ready line once
//!   caught up → demo traders → serving until a signal or the exchange's failure →
//!   demo, gateway, then the exchange stopped (batch committed, snapshot, ledger
//!   closed). See [`http`].
//! - **`gpux gateway`**, [`gateway`]: admin key → producer to the commands topic
//!   and feed of the events topic → gateway → ready line → serving until a signal
//!   → gateway stopped, producer flushed. See [`http`].
//! - **`gpux engine`**, [`engine()`]: topics (`--create-topics`) → ledger and
//!   pipeline on the commands topic (its clock producing ticks to it, unless
//!   `--no-events`) → events publisher (unless `--no-events`) →
//!   ready line → running until a signal or a failure → exchange stopped. See
//!   [`mod@engine`].
//!
//! A failure of the pipeline ends every role with an error naming the cmd_seq, so
//! the process exits non-zero.

use std::io::Write;

use anyhow::Result;

use crate::config::{Config, EngineArgs};

pub mod engine;
pub mod http;

pub use http::{gateway_until, serve_until, ADMIN_KEY_FILE};

/// Runs `gpux serve` until Ctrl-C or SIGTERM, printing the ready line on stdout.
pub fn serve(cfg: Config) -> Result<()> {
    crate::logging::init_from(&cfg.log)?;
    serve_until(cfg, &mut std::io::stdout(), stop_signal())
}

/// Runs `gpux gateway` until Ctrl-C or SIGTERM, printing the ready line on stdout.
pub fn gateway(cfg: Config) -> Result<()> {
    crate::logging::init_from(&cfg.log)?;
    gateway_until(cfg, &mut std::io::stdout(), stop_signal())
}

/// Runs `gpux engine` until SIGINT or SIGTERM (clean shutdown, `Ok`) or until the
/// pipeline fails (`Err` with the reason: the process should exit non-zero and be
/// restarted), printing its ready and stopped lines on stdout.
pub fn engine(cfg: Config, args: &EngineArgs) -> Result<()> {
    crate::logging::init_from(&cfg.log)?;
    engine::run_until_signal(&cfg, args, &mut std::io::stdout())
}

/// Completes on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Writes one machine-readable JSON line and flushes it.
fn print_line(out: &mut (impl Write + ?Sized), line: &serde_json::Value) -> Result<()> {
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
