//! `gpux apply`: drive an engine with JSON-lines commands and print every event as
//! one JSON line. The way to use the engine without a server.
//!
//! Each input line is a command envelope (`docs/PROTOCOL.md`):
//! `{"v":3,"ts_ns":…,"command":{"type":…}}`. Blank lines are skipped. The first line
//! that cannot be read or decoded stops the run with an error naming its line
//! number; the events of the lines before it have been printed.
//!
//! Without `--data` the engine is fresh and in memory, and commands are numbered
//! 1, 2, … in input order. With `--data DIR` the commands go through the embedded
//! command log and the pipeline, and are committed to the ledger before their
//! events are printed; running again with the same file resumes: lines already
//! in the ledger (counted from the top, blank lines aside) are skipped.

use anyhow::Context as _;
use gpux_engine::{CommandEnvelope, Engine, Event, EventEnvelope};
use gpux_ledger::SourceKey;
use gpux_sequencer::{EmbeddedSubmitter, Exchange, Feed, PipelineOptions, SubmitError};
use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

/// The flags of `gpux apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// File of commands, one JSON object per line (default: standard input).
    #[arg(long, value_name = "FILE")]
    pub commands: Option<PathBuf>,
    /// Ledger directory to make the run durable (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// With --data: snapshot the engine every this many events.
    #[arg(long, value_name = "N", default_value_t = gpux_sequencer::SNAPSHOT_EVERY_EVENTS_DEFAULT, requires = "data")]
    pub snapshot_every: u64,
}

/// `gpux apply`: reads the commands file (or standard input) and prints events on
/// standard output, in memory ([`run`]) or durably with `--data` ([`run_durable`]).
pub fn run_cli(args: ApplyArgs) -> anyhow::Result<()> {
    let stdout = BufWriter::new(std::io::stdout().lock());
    let input: Box<dyn BufRead> = match args.commands {
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    match args.data {
        None => {
            run(input, stdout)?;
        }
        Some(dir) => {
            let opts = PipelineOptions {
                snapshot_every_events: args.snapshot_every.max(1),
                ..PipelineOptions::default()
            };
            run_durable(&dir, opts, input, stdout)?;
        }
    }
    Ok(())
}

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

impl From<gpux_sequencer::PipelineError> for ApplyError {
    fn from(e: gpux_sequencer::PipelineError) -> Self {
        ApplyError::Ledger(e.into())
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

/// One applied command's events, as printed.
struct Applied<'a> {
    seq: u64,
    ts_ns: u64,
    request_id: Option<String>,
    events: &'a [Event],
}

fn print(out: &mut impl Write, c: &Applied<'_>, summary: &mut ApplySummary) -> std::io::Result<()> {
    for event in c.events {
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
        engine.apply_request(
            seq,
            env.ts_ns,
            env.idempotent_request_id(),
            &env.command,
            &mut events,
        );
        let c = Applied {
            seq,
            ts_ns: engine.last_ts_ns(),
            request_id: env.request_id,
            events: &events,
        };
        print(&mut output, &c, &mut summary)?;
    }
    output.flush()?;
    Ok(summary)
}

/// Lines per submission to the command log.
const JOURNAL_CHUNK: usize = 1_024;

/// Most submissions not yet durable: enough to keep the pipeline busy (the
/// engine applies one chunk while another is being committed), few enough that
/// a failure is heard soon.
const JOURNAL_IN_FLIGHT: usize = 8;

/// Like [`run`], but durable: commands go through the embedded command log and the
/// pipeline into the ledger in `dir` (created if missing), and a re-run resumes.
/// Events are printed once their batch is durable.
pub fn run_durable(
    dir: &Path,
    opts: PipelineOptions,
    input: impl BufRead,
    output: impl Write,
) -> Result<ApplySummary, ApplyError> {
    let exchange = Exchange::start_embedded(dir, opts)?;
    let submitter = exchange
        .embedded_submitter()
        .ok_or_else(|| anyhow::anyhow!("the embedded pipeline has no submitter"))?;
    // Lines an earlier run put in the ledger (or, from older versions, left in
    // its inbox: those are applied first).
    let journaled = submitter.last_seq();
    // Print everything applied from now on.
    let durable = exchange.stats().durable_seq.load(Ordering::Acquire);
    let mut printer = DurablePrinter {
        feed: exchange.follow(durable + 1),
        output,
        summary: ApplySummary {
            resumed: journaled,
            ..ApplySummary::default()
        },
    };
    let mut journal = Journal {
        submitter,
        chunk: Vec::with_capacity(JOURNAL_CHUNK),
        pending: VecDeque::new(),
        last_seq: journaled,
    };
    let mut stop = None;
    for item in commands(input).skip(journaled as usize) {
        match item {
            Ok((line, _)) => journal.chunk.push(line.into_bytes()),
            Err(e) => {
                stop = Some(e);
                break;
            }
        }
        if journal.chunk.len() == JOURNAL_CHUNK {
            journal.submit()?;
            printer.print_ready(Duration::ZERO)?;
        }
    }
    if !journal.chunk.is_empty() {
        journal.submit()?;
    }
    journal.finish()?;
    printer.print_until_applied(&exchange, journal.last_seq)?;
    let DurablePrinter {
        feed,
        mut output,
        summary,
    } = printer;
    drop(feed);
    exchange.shutdown()?;
    output.flush()?;
    match stop {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Input lines on their way into the embedded command log, `JOURNAL_CHUNK` per
/// submission, at most `JOURNAL_IN_FLIGHT` submissions not yet durable.
struct Journal {
    submitter: EmbeddedSubmitter,
    chunk: Vec<Vec<u8>>,
    /// The answers of the submissions not yet known durable, oldest first.
    pending: VecDeque<mpsc::Receiver<Result<Vec<u64>, SubmitError>>>,
    /// The command log's sequence number of the last line known durable.
    last_seq: u64,
}

impl Journal {
    /// Submits the chunk (waiting while the log is full); then waits for the
    /// oldest submissions while too many are not yet durable.
    fn submit(&mut self) -> Result<(), ApplyError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submitter
            .submit_many(std::mem::take(&mut self.chunk), move |r| {
                let _ = tx.send(r);
            });
        self.pending.push_back(rx);
        while self.pending.len() > JOURNAL_IN_FLIGHT {
            self.wait_oldest()?;
        }
        Ok(())
    }

    /// Waits until every submission is durable.
    fn finish(&mut self) -> Result<(), ApplyError> {
        while !self.pending.is_empty() {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<(), ApplyError> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let seqs = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the command log stopped"))?
            .map_err(anyhow::Error::from)?;
        if let Some(&last) = seqs.last() {
            self.last_seq = last;
        }
        Ok(())
    }
}

/// Prints the commands of a durable run as their batches become durable.
struct DurablePrinter<F, W> {
    feed: F,
    output: W,
    summary: ApplySummary,
}

impl<F: Feed, W: Write> DurablePrinter<F, W> {
    /// Prints every batch durable by now, waiting up to `wait` for the first.
    fn print_ready(&mut self, wait: Duration) -> Result<(), ApplyError> {
        while let Some(batch) = self.feed.recv_timeout(wait).map_err(anyhow::Error::from)? {
            for c in batch.iter() {
                let a = Applied {
                    seq: c.cmd_seq,
                    ts_ns: c.ts_ns,
                    request_id: c.request_id.clone(),
                    events: &c.events,
                };
                print(&mut self.output, &a, &mut self.summary)?;
            }
        }
        Ok(())
    }

    /// Prints until everything journaled up to `last_journaled` is applied and
    /// durable (so it is all printed before the ledger closes).
    fn print_until_applied<S: gpux_ledger::Store>(
        &mut self,
        exchange: &Exchange<S>,
        last_journaled: u64,
    ) -> Result<(), ApplyError> {
        let reader = exchange.reader();
        let stats = exchange.stats();
        loop {
            self.print_ready(Duration::from_millis(20))?;
            let consumed = reader
                .consumed_offset(&SourceKey::Embedded)
                .map_err(anyhow::Error::from)?
                .unwrap_or(0);
            if consumed >= last_journaled
                && self.feed.next_seq() > stats.durable_seq.load(Ordering::Acquire)
            {
                break;
            }
            if let Some(why) = exchange.failure() {
                return Err(ApplyError::Ledger(anyhow::anyhow!(why)));
            }
        }
        self.print_ready(Duration::ZERO)
    }
}
