//! What the ledger holds about one command, as the rest of the system sees it.
//!
//! Owns [`CommittedCommand`] (a command with its sequence numbers, timestamp, raw
//! payload and decoded events) and [`read_committed`], which reads the same thing back
//! from a ledger. Live publication and ledger catch-up produce identical values, so
//! a follower cannot tell (and need not care) which one served it.

use std::borrow::Cow;
use std::sync::Arc;

use gpux_engine::{CommandEnvelope, Engine, Event, EventSink};
use gpux_ledger::{LedgerReader, Store};

use crate::error::FeedError;

/// One command as committed (durable in the ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedCommand {
    /// Its command sequence number (dense from 1).
    pub cmd_seq: u64,
    /// The timestamp the engine applied it at.
    pub ts_ns: u64,
    /// `event_seq` of its first event (dense from 1 across the ledger); when it has no
    /// events, the `event_seq` the next event will get.
    pub first_event_seq: u64,
    /// The envelope's `request_id`, if the payload decoded and carried one.
    pub request_id: Option<String>,
    /// The command bytes exactly as received (may be malformed: then the only event is
    /// a `rejected` one). `Engine::apply_json(cmd_seq, ts_ns, &payload)` re-produces
    /// `events` on an engine that has applied everything before it.
    pub payload: Vec<u8>,
    /// `payload` decoded, once, where the command entered this process (the
    /// engine's decode stage, a ledger read, an events-topic message); `None` when
    /// it does not decode. [`CommittedCommand::apply_to`] applies it without
    /// parsing the payload again.
    pub command: Option<CommandEnvelope>,
    /// Its events, in order.
    pub events: Vec<Event>,
}

impl CommittedCommand {
    /// Applies this command to `engine` (which has applied everything before it)
    /// as the exchange did, writing its events to `out`: what
    /// `engine.apply_json(cmd_seq, ts_ns, &payload, out)` does, without parsing the
    /// payload when it was decoded already. Returns the decoded envelope.
    pub fn apply_to<S: EventSink>(
        &self,
        engine: &mut Engine,
        out: &mut S,
    ) -> Option<Cow<'_, CommandEnvelope>> {
        match &self.command {
            Some(env) => {
                engine.apply_request(
                    self.cmd_seq,
                    self.ts_ns,
                    env.idempotent_request_id(),
                    &env.command,
                    out,
                );
                Some(Cow::Borrowed(env))
            }
            None => engine
                .apply_json(self.cmd_seq, self.ts_ns, &self.payload, out)
                .map(Cow::Owned),
        }
    }
}

/// `payload` decoded for [`CommittedCommand::command`], and its `request_id`.
pub fn decode_payload(payload: &[u8]) -> (Option<CommandEnvelope>, Option<String>) {
    let command = CommandEnvelope::from_json(payload).ok();
    let request_id = command.as_ref().and_then(|e| e.request_id.clone());
    (command, request_id)
}

/// Consecutive committed commands, shared by every subscriber.
pub type CommittedBatch = Arc<[CommittedCommand]>;

/// The `request_id` of a command payload, if it decodes and carries one.
pub fn request_id_of(payload: &[u8]) -> Option<String> {
    CommandEnvelope::from_json(payload)
        .ok()
        .and_then(|e| e.request_id)
}

/// Reads up to `max` committed commands from `from_cmd_seq` on, with their events.
/// Returns fewer (or none) when the ledger's head is reached.
pub fn read_committed<S: Store>(
    reader: &LedgerReader<S>,
    from_cmd_seq: u64,
    max: usize,
) -> Result<Vec<CommittedCommand>, FeedError> {
    let records = reader.read_commands(from_cmd_seq, max)?;
    let mut out = Vec::with_capacity(records.len());
    let event_count: usize = records.iter().map(|r| r.event_count as usize).sum();
    let mut events = match records.first() {
        Some(first) if event_count > 0 => reader
            .read_events(first.first_event_seq, event_count)?
            .into_iter(),
        _ => Vec::new().into_iter(),
    };
    for r in records {
        let mut evs = Vec::with_capacity(r.event_count as usize);
        for _ in 0..r.event_count {
            let rec = events.next().ok_or(FeedError::Inconsistent {
                cmd_seq: r.cmd_seq,
                what: "fewer events stored than the command record counts",
            })?;
            if rec.cmd_seq != r.cmd_seq {
                return Err(FeedError::Inconsistent {
                    cmd_seq: r.cmd_seq,
                    what: "an event belongs to another command",
                });
            }
            let ev = Event::from_bytes(&rec.payload).map_err(|_| FeedError::Inconsistent {
                cmd_seq: r.cmd_seq,
                what: "a stored event does not decode",
            })?;
            evs.push(ev);
        }
        let (command, request_id) = decode_payload(&r.payload);
        out.push(CommittedCommand {
            cmd_seq: r.cmd_seq,
            ts_ns: r.ts_ns,
            first_event_seq: r.first_event_seq,
            request_id,
            payload: r.payload,
            command,
            events: evs,
        });
    }
    Ok(out)
}
