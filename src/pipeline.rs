//! The embedded sequencer: engine + ledger in one thread, commands from the
//! embedded command log (the ledger's inbox).
//!
//! `submit` journals command bytes durably into the inbox; `drain` reads what is
//! journaled after the consumed position, applies it in order, and commits the
//! commands, their events and the new consumed position in one synced batch per
//! chunk. A command's events are only returned after that commit, so nothing is
//! ever reported that the ledger does not hold. On `open` the engine is rebuilt
//! from the latest good snapshot plus the commands after it, and draining resumes
//! at the stored position + 1: a command is applied exactly once across crashes.
//!
//! Issue #4 splits this into bounded stages on separate threads (decode, apply,
//! persist, publish) and adds Kafka as a source; the ordering and durability rules
//! here stay the same.

use anyhow::{Context, Result};
use gpux_engine::{CommandEnvelope, Engine, Event};
use gpux_ledger::{AppliedCommand, Ledger, LedgerOptions, Source, SourceKey};
use std::path::Path;
use std::time::Instant;

/// Tuning of the embedded pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Take a snapshot after at least this many events since the last one.
    pub snapshot_every_events: u64,
    /// Most commands in one committed batch.
    pub max_batch_commands: usize,
    /// Ledger opening options.
    pub ledger: LedgerOptions,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            snapshot_every_events: 100_000,
            max_batch_commands: 4_096,
            ledger: LedgerOptions::default(),
        }
    }
}

/// One applied command and its events, durable when handed out.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The command's sequence number.
    pub seq: u64,
    /// The timestamp the engine used.
    pub ts_ns: u64,
    /// The request id of the command, if it decoded and had one.
    pub request_id: Option<String>,
    /// Its events.
    pub events: Vec<Event>,
}

/// Engine and ledger, driven from the embedded command log.
pub struct Sequencer {
    engine: Engine,
    ledger: Ledger,
    opts: PipelineOptions,
    events_since_snapshot: u64,
    last_snapshot_seq: u64,
}

impl Sequencer {
    /// Opens (or creates) the ledger in `dir`, verifying it, and rebuilds the engine.
    pub fn open(dir: &Path, opts: PipelineOptions) -> Result<Self> {
        let started = Instant::now();
        let ledger = Ledger::open(dir, &opts.ledger)
            .with_context(|| format!("cannot open the ledger in {}", dir.display()))?;
        let engine = gpux_replay::rebuild::state_at(&ledger.reader(), None, None)
            .context("cannot rebuild the engine from the ledger")?;
        tracing::info!(
            seq = engine.last_seq(),
            ms = started.elapsed().as_millis() as u64,
            "engine recovered"
        );
        Ok(Sequencer {
            engine,
            ledger,
            opts,
            events_since_snapshot: 0,
            last_snapshot_seq: 0,
        })
    }

    /// The engine (read-only).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The ledger (read-only).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Last entry journaled in the embedded command log.
    pub fn journaled(&self) -> u64 {
        self.ledger.inbox_last()
    }

    /// Journals commands durably in the embedded command log; returns their
    /// positions. They take effect at the next [`drain`](Self::drain).
    pub fn submit<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<Vec<u64>> {
        Ok(self.ledger.journal(payloads)?)
    }

    /// Applies and commits everything journaled but not yet applied; calls
    /// `on_commit` with each durable batch.
    pub fn drain(&mut self, mut on_commit: impl FnMut(&[Committed])) -> Result<u64> {
        let mut applied = 0;
        loop {
            let from = self
                .ledger
                .consumed_offset(&SourceKey::Embedded)
                .unwrap_or(0)
                + 1;
            let inbox = self.ledger.read_inbox(from, self.opts.max_batch_commands)?;
            if inbox.is_empty() {
                return Ok(applied);
            }
            let mut batch = Vec::with_capacity(inbox.len());
            let mut committed = Vec::with_capacity(inbox.len());
            for (inbox_seq, payload) in inbox {
                let c = self.apply(&payload);
                batch.push(AppliedCommand {
                    cmd_seq: c.seq,
                    ts_ns: c.ts_ns,
                    source: Source::Embedded { seq: inbox_seq },
                    payload,
                    events: c.events.iter().map(Event::to_json_vec).collect(),
                });
                committed.push(c);
            }
            self.ledger.append(&batch)?;
            applied += batch.len() as u64;
            self.events_since_snapshot +=
                committed.iter().map(|c| c.events.len() as u64).sum::<u64>();
            if self.events_since_snapshot >= self.opts.snapshot_every_events {
                self.snapshot()?;
            }
            on_commit(&committed);
        }
    }

    /// Sequences one command: timestamp from its envelope, made monotonic.
    fn apply(&mut self, payload: &[u8]) -> Committed {
        let seq = self.engine.last_seq() + 1;
        let last_ts = self.engine.last_ts_ns();
        let mut events = Vec::new();
        match CommandEnvelope::from_json(payload) {
            Ok(env) => {
                let ts_ns = env.ts_ns.max(last_ts);
                self.engine.apply(seq, ts_ns, &env.command, &mut events);
                Committed {
                    seq,
                    ts_ns,
                    request_id: env.request_id,
                    events,
                }
            }
            Err(_) => {
                // Recorded as a rejection at the current time; never stops the engine.
                self.engine.apply_json(seq, last_ts, payload, &mut events);
                Committed {
                    seq,
                    ts_ns: last_ts,
                    request_id: None,
                    events,
                }
            }
        }
    }

    /// Stores a snapshot of the engine at its last applied command.
    pub fn snapshot(&mut self) -> Result<()> {
        let seq = self.engine.last_seq();
        if seq > 0 && seq != self.last_snapshot_seq {
            self.ledger.put_snapshot(seq, &self.engine.snapshot())?;
            self.last_snapshot_seq = seq;
        }
        self.events_since_snapshot = 0;
        Ok(())
    }

    /// Clean shutdown: a snapshot at the head and the ledger's memtables flushed, so
    /// the next start replays nothing.
    pub fn close(mut self) -> Result<()> {
        self.snapshot()?;
        self.ledger.close()?;
        Ok(())
    }
}
