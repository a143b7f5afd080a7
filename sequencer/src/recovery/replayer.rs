//! The loop that re-runs a ledger, shared by recovery and the auditors' tools:
//! stream the command records and the event records side by side, apply each
//! command to the engine exactly as gpux did (`apply_json(cmd_seq, ts_ns,
//! payload)`), and compare every produced event's ledger encoding
//! (`Event::encode`, `docs/LEDGER_FORMAT.md` § Event payloads) with the stored
//! payload.
//!
//! Two threads: a read-ahead thread (`gpux-replay-read`) reads the records,
//! checks that they fit together and decodes each command's JSON, a few hundred
//! commands ahead; the calling thread applies them to the engine and compares.
//! Decoding was a quarter to a third of a single-threaded re-run (`perf` of
//! `gpux replay verify` and of a restart), and the engine cannot start a
//! command before the previous one is done, so the decoding goes beside it.
//! What the engine sees is unchanged: `apply_decoded` with what `from_json`
//! gave is `apply_json`. Each produced event is encoded into one reused buffer.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use gpux_engine::{CommandEnvelope, Engine, Event};
use gpux_ledger::{CommandRecord, EventRecord, LedgerReader, RecordIter, Store};

use super::error::{Divergence, DivergenceKind, RecoveryError};

/// Commands the read-ahead thread sends at a time.
const READ_AHEAD_CHUNK: usize = 256;

/// Chunks it may read ahead of the engine.
const READ_AHEAD_CHUNKS: usize = 4;

/// One applied command: its record and the events the engine just produced (equal,
/// byte for byte, to the stored ones, or the step failed).
#[derive(Debug)]
pub struct Step<'a> {
    /// The command record.
    pub command: &'a CommandRecord,
    /// The events the engine produced, in order.
    pub produced: &'a [Event],
}

/// A command read ahead: its record and its decoded payload (`None`: it does
/// not decode, as `apply_json` would find).
struct Prepared {
    command: CommandRecord,
    envelope: Option<CommandEnvelope>,
}

/// Consecutive commands read ahead with their stored events, in order, then
/// possibly the error that stopped the reading (at the command after them).
#[derive(Default)]
struct Chunk {
    commands: VecDeque<Prepared>,
    events: VecDeque<EventRecord>,
    error: Option<RecoveryError>,
}

/// Re-runs commands `from..=to` of a ledger on an engine whose state is the one
/// after `from - 1`.
pub struct Replayer {
    rx: Option<Receiver<Chunk>>,
    thread: Option<JoinHandle<()>>,
    chunk: Chunk,
    next_cmd_seq: u64,
    last_cmd_seq: u64,
    next_event_seq: u64,
    command: Option<CommandRecord>,
    stored: Vec<EventRecord>,
    produced: Vec<Event>,
    buf: Vec<u8>,
    commands_done: u64,
    events_done: u64,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer")
            .field("next_cmd_seq", &self.next_cmd_seq)
            .field("last_cmd_seq", &self.last_cmd_seq)
            .field("next_event_seq", &self.next_event_seq)
            .finish_non_exhaustive()
    }
}

impl Drop for Replayer {
    /// Stops the read-ahead thread (its next send fails) and waits for it, so
    /// that nothing holds the ledger once the replayer is gone.
    fn drop(&mut self) {
        drop(self.rx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Replayer {
    /// Replays from command `from` (whose first event is `first_event_seq`) up to
    /// and including `to`.
    pub fn new<S: Store>(
        reader: &LedgerReader<S>,
        from: u64,
        first_event_seq: u64,
        to: u64,
    ) -> Result<Self, RecoveryError> {
        // Opened here too, so that a ledger that cannot be read fails now.
        drop(reader.commands(from)?);
        drop(reader.events(first_event_seq)?);
        let (tx, rx) = mpsc::sync_channel(READ_AHEAD_CHUNKS);
        let reader = reader.clone();
        let thread = std::thread::Builder::new()
            .name("gpux-replay-read".into())
            .spawn(move || read_ahead(&reader, from, first_event_seq, to, &tx))
            .map_err(|e| RecoveryError::Thread(e.to_string()))?;
        Ok(Replayer {
            rx: Some(rx),
            thread: Some(thread),
            chunk: Chunk::default(),
            next_cmd_seq: from.max(1),
            last_cmd_seq: to,
            next_event_seq: first_event_seq.max(1),
            command: None,
            stored: Vec::new(),
            produced: Vec::new(),
            buf: Vec::with_capacity(512),
            commands_done: 0,
            events_done: 0,
        })
    }

    /// The first event of the next command.
    pub fn next_event_seq(&self) -> u64 {
        self.next_event_seq
    }

    /// Commands applied so far.
    pub fn commands_done(&self) -> u64 {
        self.commands_done
    }

    /// Events compared so far.
    pub fn events_done(&self) -> u64 {
        self.events_done
    }

    /// Applies the next command to `engine` and checks its events; `None` when
    /// every command up to `to` is done. A difference is
    /// [`RecoveryError::Diverged`] naming the command and the event.
    pub fn step(&mut self, engine: &mut Engine) -> Result<Option<Step<'_>>, RecoveryError> {
        if self.next_cmd_seq > self.last_cmd_seq {
            return Ok(None);
        }
        let p = self.next_prepared()?;
        let c = &p.command;
        self.stored.clear();
        let n = (c.event_count as usize).min(self.chunk.events.len());
        self.stored.extend(self.chunk.events.drain(..n));
        let seq = self.next_cmd_seq;
        if engine.last_seq() >= seq {
            return Err(Divergence::new(
                DivergenceKind::Malformed,
                seq,
                format!("engine is already at cmd_seq {}", engine.last_seq()),
            )
            .into());
        }
        self.produced.clear();
        engine.apply_decoded(seq, c.ts_ns, p.envelope.as_ref(), &mut self.produced);
        self.compare(c)?;
        self.next_cmd_seq += 1;
        self.next_event_seq += u64::from(c.event_count);
        self.commands_done += 1;
        self.events_done += u64::from(c.event_count);
        self.command = Some(p.command);
        Ok(Some(Step {
            command: self.command.as_ref().expect("just set"),
            produced: &self.produced,
        }))
    }

    /// The next command read ahead, waiting for it if needed.
    fn next_prepared(&mut self) -> Result<Prepared, RecoveryError> {
        loop {
            if let Some(p) = self.chunk.commands.pop_front() {
                return Ok(p);
            }
            if let Some(e) = self.chunk.error.take() {
                return Err(e);
            }
            let next = self.rx.as_ref().and_then(|rx| rx.recv().ok());
            match next {
                Some(chunk) => self.chunk = chunk,
                None => {
                    // The thread sends every command up to `to` or the error
                    // that stopped it, so it ended early only by panicking:
                    // that panic is this thread's.
                    if let Some(Err(panic)) = self.thread.take().map(JoinHandle::join) {
                        std::panic::resume_unwind(panic);
                    }
                    return Err(Divergence::new(
                        DivergenceKind::Gap,
                        self.next_cmd_seq,
                        "command record missing",
                    )
                    .into());
                }
            }
        }
    }

    /// Compares the produced events with the stored ones, byte for byte.
    fn compare(&mut self, c: &CommandRecord) -> Result<(), RecoveryError> {
        let seq = self.next_cmd_seq;
        for (i, (p, s)) in self.produced.iter().zip(&self.stored).enumerate() {
            self.buf.clear();
            p.encode(&mut self.buf);
            if self.buf != s.payload {
                return Err(Divergence::new(
                    DivergenceKind::EventMismatch,
                    seq,
                    "re-running the command produced a different event than the ledger stores",
                )
                .at_event(c.first_event_seq + i as u64)
                .with_events(Some(self.buf.clone()), Some(s.payload.clone()))
                .into());
            }
        }
        if self.produced.len() != self.stored.len() {
            let n = self.produced.len().min(self.stored.len());
            return Err(Divergence::new(
                DivergenceKind::EventCountMismatch,
                seq,
                format!(
                    "re-running the command produced {} events, the ledger stores {}",
                    self.produced.len(),
                    self.stored.len()
                ),
            )
            .at_event(c.first_event_seq + n as u64)
            .with_events(
                self.produced.get(n).map(Event::to_bytes),
                self.stored.get(n).map(|e| e.payload.clone()),
            )
            .into());
        }
        Ok(())
    }
}

/// The read-ahead thread: reads commands `from..=to` with their events,
/// checks that they follow each other, decodes each payload and sends them in
/// chunks; stops at the first error (sent after the commands before it) or
/// when the replayer is gone.
fn read_ahead<S: Store>(
    reader: &LedgerReader<S>,
    from: u64,
    first_event_seq: u64,
    to: u64,
    tx: &SyncSender<Chunk>,
) {
    let mut chunk = Chunk::default();
    let opened = reader
        .commands(from)
        .and_then(|c| Ok((c, reader.events(first_event_seq)?)));
    let (mut commands, mut events) = match opened {
        Ok(iters) => iters,
        Err(e) => {
            chunk.error = Some(e.into());
            let _ = tx.send(chunk);
            return;
        }
    };
    let mut next_event_seq = first_event_seq.max(1);
    for seq in from.max(1)..=to {
        match read_one(
            &mut commands,
            &mut events,
            seq,
            next_event_seq,
            &mut chunk.events,
        ) {
            Ok(command) => {
                next_event_seq = command.first_event_seq + u64::from(command.event_count);
                let envelope = CommandEnvelope::from_json(&command.payload).ok();
                chunk.commands.push_back(Prepared { command, envelope });
            }
            Err(e) => {
                chunk.error = Some(e);
                let _ = tx.send(chunk);
                return;
            }
        }
        if chunk.commands.len() >= READ_AHEAD_CHUNK && tx.send(std::mem::take(&mut chunk)).is_err()
        {
            return;
        }
    }
    if !chunk.commands.is_empty() {
        let _ = tx.send(chunk);
    }
}

/// Reads command `seq` (whose first event must be `next_event_seq`) and appends
/// its stored events to `out`.
fn read_one(
    commands: &mut RecordIter<'_, CommandRecord>,
    events: &mut RecordIter<'_, EventRecord>,
    seq: u64,
    next_event_seq: u64,
    out: &mut VecDeque<EventRecord>,
) -> Result<CommandRecord, RecoveryError> {
    let c = match commands.next() {
        Some(r) => r?,
        None => {
            return Err(Divergence::new(DivergenceKind::Gap, seq, "command record missing").into())
        }
    };
    if c.first_event_seq != next_event_seq {
        return Err(Divergence::new(
            DivergenceKind::Malformed,
            seq,
            format!(
                "command's first event is {} but the previous command ended before {}",
                c.first_event_seq, next_event_seq
            ),
        )
        .into());
    }
    for i in 0..u64::from(c.event_count) {
        let event_seq = c.first_event_seq + i;
        let e = match events.next() {
            Some(r) => r?,
            None => {
                return Err(
                    Divergence::new(DivergenceKind::Gap, seq, "event record missing")
                        .at_event(event_seq)
                        .into(),
                )
            }
        };
        if e.cmd_seq != seq {
            return Err(Divergence::new(
                DivergenceKind::Malformed,
                seq,
                format!("event belongs to cmd_seq {}", e.cmd_seq),
            )
            .at_event(event_seq)
            .into());
        }
        out.push_back(e);
    }
    Ok(c)
}
