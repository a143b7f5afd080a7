//! The loop every re-running tool shares: stream the command records and the event
//! records side by side, apply each command to the engine exactly as gpux did
//! (`apply_json(cmd_seq, ts_ns, payload)`), and compare every produced event's
//! `to_json_vec()` bytes with the stored payload.
//!
//! One pass, two cursors, no per-command allocation of our own: the produced
//! events and the stored records live in vectors reused from command to command,
//! and each produced event is encoded into one reused buffer (byte-identical to
//! `Event::to_json_vec`, which is `serde_json::to_vec`).

use gpux_engine::{Engine, Event};
use gpux_ledger::{CommandRecord, EventRecord, LedgerReader, RecordIter, Store};

use crate::error::{Failure, FailureKind, Result};

/// One applied command: its record and the events the engine just produced (equal,
/// byte for byte, to the stored ones, or the step failed).
pub(crate) struct Step<'a> {
    /// The command record.
    pub command: &'a CommandRecord,
    /// The events the engine produced, in order.
    pub produced: &'a [Event],
}

/// Re-runs commands `from..=to` of a ledger on an engine whose state is the one
/// after `from - 1`.
pub(crate) struct Replayer<'r> {
    commands: RecordIter<'r, CommandRecord>,
    events: RecordIter<'r, EventRecord>,
    next_cmd_seq: u64,
    last_cmd_seq: u64,
    next_event_seq: u64,
    command: Option<CommandRecord>,
    stored: Vec<EventRecord>,
    produced: Vec<Event>,
    buf: Vec<u8>,
    /// Commands applied so far.
    pub commands_done: u64,
    /// Events compared so far.
    pub events_done: u64,
}

impl<'r> Replayer<'r> {
    /// Replays from command `from` (whose first event is `first_event_seq`) up to
    /// and including `to`.
    pub fn new<S: Store>(
        reader: &'r LedgerReader<S>,
        from: u64,
        first_event_seq: u64,
        to: u64,
    ) -> Result<Self> {
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

    /// Applies the next command to `engine` and checks its events; `None` when
    /// every command up to `to` is done. A difference is returned as
    /// `Err(ReplayError::Failed)` naming the command and the event.
    pub fn step(&mut self, engine: &mut Engine) -> Result<Option<Step<'_>>> {
        if self.next_cmd_seq > self.last_cmd_seq {
            return Ok(None);
        }
        let seq = self.next_cmd_seq;
        let c = match self.commands.next() {
            Some(r) => r?,
            None => {
                return Err(Failure::new(FailureKind::Gap, "command record missing")
                    .at_cmd(seq)
                    .into())
            }
        };
        if c.first_event_seq != self.next_event_seq {
            return Err(Failure::new(
                FailureKind::Malformed,
                format!(
                    "command's first event is {} but the previous command ended before {}",
                    c.first_event_seq, self.next_event_seq
                ),
            )
            .at_cmd(seq)
            .into());
        }
        self.stored.clear();
        for i in 0..u64::from(c.event_count) {
            let event_seq = c.first_event_seq + i;
            let e = match self.events.next() {
                Some(r) => r?,
                None => {
                    return Err(Failure::new(FailureKind::Gap, "event record missing")
                        .at_cmd(seq)
                        .at_event(event_seq)
                        .into())
                }
            };
            if e.cmd_seq != seq {
                return Err(Failure::new(
                    FailureKind::Malformed,
                    format!("event belongs to cmd_seq {}", e.cmd_seq),
                )
                .at_cmd(seq)
                .at_event(event_seq)
                .into());
            }
            self.stored.push(e);
        }
        if engine.last_seq() >= seq {
            return Err(Failure::new(
                FailureKind::Malformed,
                format!("engine is already at cmd_seq {}", engine.last_seq()),
            )
            .at_cmd(seq)
            .into());
        }
        self.produced.clear();
        engine.apply_json(seq, c.ts_ns, &c.payload, &mut self.produced);
        for (i, (p, s)) in self.produced.iter().zip(&self.stored).enumerate() {
            self.buf.clear();
            serde_json::to_writer(&mut self.buf, p).expect("events always encode");
            if self.buf != s.payload {
                return Err(Failure::new(
                    FailureKind::EventMismatch,
                    "re-running the command produced a different event than the ledger stores",
                )
                .at_cmd(seq)
                .at_event(c.first_event_seq + i as u64)
                .with_values(json_value(&self.buf), json_value(&s.payload))
                .into());
            }
        }
        if self.produced.len() != self.stored.len() {
            let n = self.produced.len().min(self.stored.len());
            let extra = |v: Option<serde_json::Value>| v.unwrap_or(serde_json::Value::Null);
            return Err(Failure::new(
                FailureKind::EventCountMismatch,
                format!(
                    "re-running the command produced {} events, the ledger stores {}",
                    self.produced.len(),
                    self.stored.len()
                ),
            )
            .at_cmd(seq)
            .at_event(c.first_event_seq + n as u64)
            .with_values(
                extra(self.produced.get(n).map(|e| json_value(&e.to_json_vec()))),
                extra(self.stored.get(n).map(|e| json_value(&e.payload))),
            )
            .into());
        }
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
}

/// Bytes as a JSON value for reports: parsed when they are JSON, else as text.
pub(crate) fn json_value(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
