//! `gpux apply`: drive an engine with JSON-lines commands and print every event as
//! one JSON line. The way to use the engine without a server.
//!
//! Each input line is a command envelope (`docs/PROTOCOL.md`):
//! `{"v":1,"ts_ns":…,"command":{"type":…}}`. Blank lines are skipped. The first line
//! that cannot be read or decoded stops the run with an error naming its line
//! number; the events of the lines before it have been printed.
//!
//! Without `--data` the engine is fresh and in memory, and commands are numbered
//! 1, 2, … in input order. With `--data DIR` the commands are journaled in the
//! ledger's embedded command log, applied, and committed to the ledger before their
//! events are printed; running again with the same file resumes: lines already in
//! the command log (counted from the top, blank lines aside) are skipped.

use crate::pipeline::{Committed, PipelineOptions, Sequencer};
use gpux_engine::{CommandEnvelope, Engine, EventEnvelope};
use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;

/// Why `apply` stopped.
#[derive(Debug)]
pub enum ApplyError {
    /// A line that is not a valid command.
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading input or writing output failed.
    Io(std::io::Error),
    /// The ledger failed (only with `--data`).
    Ledger(anyhow::Error),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::BadLine { line, reason } => write!(f, "line {line}: {reason}"),
            ApplyError::Io(e) => write!(f, "i/o error: {e}"),
            ApplyError::Ledger(e) => write!(f, "ledger: {e:#}"),
        }
    }
}

impl std::error::Error for ApplyError {}

impl From<std::io::Error> for ApplyError {
    fn from(e: std::io::Error) -> Self {
        ApplyError::Io(e)
    }
}

impl From<anyhow::Error> for ApplyError {
    fn from(e: anyhow::Error) -> Self {
        ApplyError::Ledger(e)
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApplySummary {
    /// Commands applied.
    pub commands: u64,
    /// Events printed.
    pub events: u64,
    /// Lines skipped because the command log already held them (`--data` only).
    pub resumed: u64,
}

/// The non-blank input lines, each checked to decode, with their line numbers.
fn commands(
    input: impl BufRead,
) -> impl Iterator<Item = Result<(String, CommandEnvelope), ApplyError>> {
    input.lines().enumerate().filter_map(|(i, line)| {
        let bad = |reason: String| ApplyError::BadLine {
            line: i + 1,
            reason,
        };
        let line = match line {
            Ok(l) if l.trim().is_empty() => return None,
            Ok(l) => l,
            Err(e) => return Some(Err(bad(format!("cannot read: {e}")))),
        };
        Some(match CommandEnvelope::from_json(line.as_bytes()) {
            Ok(env) => Ok((line, env)),
            Err(e) => Err(bad(e.to_string())),
        })
    })
}

fn print(out: &mut impl Write, c: &Committed, summary: &mut ApplySummary) -> std::io::Result<()> {
    for event in &c.events {
        let env = EventEnvelope::new(c.seq, c.ts_ns, c.request_id.clone(), event.clone());
        serde_json::to_writer(&mut *out, &env).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        summary.events += 1;
    }
    summary.commands += 1;
    Ok(())
}

/// Applies every command read from `input` to a fresh in-memory engine, writing
/// events to `output` as JSON lines.
pub fn run(input: impl BufRead, mut output: impl Write) -> Result<ApplySummary, ApplyError> {
    let mut engine: Engine = Engine::new();
    let mut summary = ApplySummary::default();
    for item in commands(input) {
        let (_, env) = item?;
        let seq = engine.last_seq() + 1;
        let mut events = Vec::new();
        engine.apply(seq, env.ts_ns, &env.command, &mut events);
        let c = Committed {
            seq,
            ts_ns: engine.last_ts_ns(),
            request_id: env.request_id,
            events,
        };
        print(&mut output, &c, &mut summary)?;
    }
    output.flush()?;
    Ok(summary)
}

/// Lines journaled per synced write to the command log.
const JOURNAL_CHUNK: usize = 1_024;

/// Like [`run`], but durable: commands go through the embedded command log and
/// the ledger in `dir` (created if missing), and a re-run resumes.
pub fn run_durable(
    dir: &Path,
    opts: PipelineOptions,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<ApplySummary, ApplyError> {
    let mut seq = Sequencer::open(dir, opts)?;
    let mut summary = ApplySummary {
        resumed: seq.journaled(),
        ..ApplySummary::default()
    };
    let mut io_result = Ok(());
    let mut drain = |seq: &mut Sequencer, summary: &mut ApplySummary| -> Result<(), ApplyError> {
        seq.drain(|batch| {
            for c in batch {
                if io_result.is_ok() {
                    io_result = print(&mut output, c, summary);
                }
            }
        })?;
        Ok(())
    };
    // Anything journaled by an earlier run but not yet applied goes first.
    drain(&mut seq, &mut summary)?;
    let mut chunk: Vec<String> = Vec::with_capacity(JOURNAL_CHUNK);
    let mut stop = None;
    for item in commands(input).skip(summary.resumed as usize) {
        match item {
            Ok((line, _)) => chunk.push(line),
            Err(e) => {
                stop = Some(e);
                break;
            }
        }
        if chunk.len() == JOURNAL_CHUNK {
            seq.submit(&chunk)?;
            chunk.clear();
            drain(&mut seq, &mut summary)?;
        }
    }
    if !chunk.is_empty() {
        seq.submit(&chunk)?;
        drain(&mut seq, &mut summary)?;
    }
    seq.close()?;
    io_result?;
    output.flush()?;
    match stop {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}
