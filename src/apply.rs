//! `gpux apply`: drive a fresh engine with JSON-lines commands and print every
//! event as one JSON line. The way to use the engine without a server.
//!
//! Each input line is a command envelope (`docs/PROTOCOL.md`):
//! `{"v":1,"ts_ns":…,"command":{"type":…}}`. Blank lines are skipped. Commands are
//! numbered 1, 2, … in input order (their sequence numbers). The first line that
//! cannot be read or decoded stops the run with an error naming its line number;
//! the events of the lines before it have been printed.

use gpux_engine::{CommandEnvelope, Engine, Event, EventEnvelope};
use std::fmt;
use std::io::{BufRead, Write};

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
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::BadLine { line, reason } => write!(f, "line {line}: {reason}"),
            ApplyError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for ApplyError {}

impl From<std::io::Error> for ApplyError {
    fn from(e: std::io::Error) -> Self {
        ApplyError::Io(e)
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApplySummary {
    /// Commands applied.
    pub commands: u64,
    /// Events printed.
    pub events: u64,
}

/// Applies every command read from `input` to a fresh engine, writing events to
/// `output` as JSON lines.
pub fn run(input: impl BufRead, mut output: impl Write) -> Result<ApplySummary, ApplyError> {
    let mut engine: Engine = Engine::new();
    let mut events: Vec<Event> = Vec::new();
    let mut summary = ApplySummary::default();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| ApplyError::BadLine {
            line: i + 1,
            reason: format!("cannot read: {e}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let env = CommandEnvelope::from_json(line.as_bytes()).map_err(|e| ApplyError::BadLine {
            line: i + 1,
            reason: e.to_string(),
        })?;
        summary.commands += 1;
        let seq = summary.commands;
        events.clear();
        engine.apply(seq, env.ts_ns, &env.command, &mut events);
        let ts_ns = engine.last_ts_ns();
        for event in events.drain(..) {
            let out = EventEnvelope::new(seq, ts_ns, env.request_id.clone(), event);
            serde_json::to_writer(&mut output, &out).map_err(std::io::Error::other)?;
            output.write_all(b"\n")?;
            summary.events += 1;
        }
    }
    output.flush()?;
    Ok(summary)
}
