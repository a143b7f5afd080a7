//! The loop that re-runs a ledger, shared by recovery and the auditors' tools:
//! stream the command records and the event records side by side, apply each
//! command to the engine exactly as gpux did (`apply_json(cmd_seq, ts_ns,
//! payload)`), and compare every produced event's ledger encoding
//! (`Event::encode`, `docs/LEDGER_FORMAT.md` § Event payloads) with the stored
//! payload.
//!
//! One pass, two cursors, no per-command allocation of our own: the produced
//! events and the stored records live in vectors reused from command to command,
//! and each produced event is encoded into one reused buffer.

use gpux_engine::{Engine, Event};
use gpux_ledger::{CommandRecord, EventRecord, LedgerReader, RecordIter, Store};

use super::error::{Divergence, DivergenceKind, RecoveryError};

/// One applied command: its record and the events the engine just produced (equal,
/// byte for byte, to the stored ones, or the step failed).
#[derive(Debug)]
pub struct Step<'a> {
    /// The command record.
    pub command: &'a CommandRecord,
    /// The events the engine produced, in order.
    pub produced: &'a [Event],
}

/// Re-runs commands `from..=to` of a ledger on an engine whose state is the one
/// after `from - 1`.
pub struct Replayer<'r> {
    commands: RecordIter<'r, CommandRecord>,
    events: RecordIter<'r, EventRecord>,
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

impl std::fmt::Debug for Replayer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer")
            .field("next_cmd_seq", &self.next_cmd_seq)
            .field("last_cmd_seq", &self.last_cmd_seq)
            .field("next_event_seq", &self.next_event_seq)
            .finish_non_exhaustive()
    }
}

impl<'r> Replayer<'r> {
    /// Replays from command `from` (whose first event is `first_event_seq`) up to
    /// and including `to`.
    pub fn new<S: Store>(
        reader: &'r LedgerReader<S>,
        from: u64,
        first_event_seq: u64,
        to: u64,
    ) -> Result<Self, RecoveryError> {
        Ok(Replayer {
            commands: reader.commands(from)?,
            events: reader.events(first_event_seq)?,
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
        let c = self.next_command()?;
        self.read_stored_events(&c)?;
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
        engine.apply_json(seq, c.ts_ns, &c.payload, &mut self.produced);
        self.compare(&c)?;
        self.next_cmd_seq += 1;
        self.next_event_seq += u64::from(c.event_count);
        self.commands_done += 1;
        self.events_done += u64::from(c.event_count);
        self.command = Some(c);
        Ok(Some(Step {
            command: self.command.as_ref().expect("just set"),
            produced: &self.produced,
        }))
    }

    /// The next command record, checked to follow the previous one.
    fn next_command(&mut self) -> Result<CommandRecord, RecoveryError> {
        let seq = self.next_cmd_seq;
        let c = match self.commands.next() {
            Some(r) => r?,
            None => {
                return Err(
                    Divergence::new(DivergenceKind::Gap, seq, "command record missing").into(),
                )
            }
        };
        if c.first_event_seq != self.next_event_seq {
            return Err(Divergence::new(
                DivergenceKind::Malformed,
                seq,
                format!(
                    "command's first event is {} but the previous command ended before {}",
                    c.first_event_seq, self.next_event_seq
                ),
            )
            .into());
        }
        Ok(c)
    }

    /// Reads the stored events of command `c` into `self.stored`.
    fn read_stored_events(&mut self, c: &CommandRecord) -> Result<(), RecoveryError> {
        let seq = self.next_cmd_seq;
        self.stored.clear();
        for i in 0..u64::from(c.event_count) {
            let event_seq = c.first_event_seq + i;
            let e = match self.events.next() {
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
            self.stored.push(e);
        }
        Ok(())
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
