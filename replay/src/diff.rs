//! `gpux replay diff DIR_A DIR_B`: the first `cmd_seq` at which two ledgers
//! diverge — the hot-standby check (a standby consuming the same partition must
//! hold the same commands and events).
//!
//! Commands are compared in order — timestamp, source, payload bytes, event count —
//! and so is every event payload; the first difference, or the end of the shorter
//! ledger, is the divergence. Both chain heads are reported: with identical
//! contents they are equal too unless the two ledgers cut their batches
//! differently (the chain hashes batches), which `same_chain_head` shows.
//!
//! Prints `{"identical":true,…}` or
//! `{"identical":false,"first_divergence":{"cmd_seq":…,"what":…},…}`.

use std::io::Write;
use std::path::Path;

use gpux_ledger::{hex, CommandRecord, EventRecord, LedgerReader, RecordIter, Store};
use serde::Serialize;

use crate::error::{event_value, json_value};
use crate::error::{Failure, FailureKind, Outcome, Result};
use crate::export::source_text;
use crate::progress::Progress;

/// One side's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerSide {
    /// The directory (or a label).
    pub path: String,
    /// Last `cmd_seq`.
    pub last_cmd_seq: u64,
    /// Last `event_seq`.
    pub last_event_seq: u64,
    /// Last batch.
    pub last_batch_no: u64,
    /// Chain head, hex.
    pub chain_head: String,
}

/// Where two ledgers first differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// The command's timestamp.
    TsNs,
    /// The command's source position.
    Source,
    /// The command's payload bytes.
    Payload,
    /// An event payload.
    Event,
    /// How many events the command produced.
    EventCount,
    /// Ledger A has no such command (it ends earlier).
    AEnds,
    /// Ledger B has no such command (it ends earlier).
    BEnds,
}

/// The first divergence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// The first command that differs.
    pub cmd_seq: u64,
    /// What differs.
    pub what: What,
    /// The event, when an event differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_seq: Option<u64>,
    /// Ledger A's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<serde_json::Value>,
    /// Ledger B's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<serde_json::Value>,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffReport {
    /// Same commands and events, in the same order, same length.
    pub identical: bool,
    /// The first divergence, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_divergence: Option<Divergence>,
    /// Commands found equal.
    pub commands_compared: u64,
    /// Events found equal.
    pub events_compared: u64,
    /// Whether the chain heads are equal.
    pub same_chain_head: bool,
    /// Ledger A.
    pub a: LedgerSide,
    /// Ledger B.
    pub b: LedgerSide,
}

/// Compares the ledgers in `a` and `b` (both opened read-only).
pub fn diff(a: &Path, b: &Path, progress: &Progress) -> Result<DiffReport> {
    let la = crate::open_or_fail(a)?;
    let lb = crate::open_or_fail(b)?;
    diff_readers(
        (&a.display().to_string(), &la.reader()),
        (&b.display().to_string(), &lb.reader()),
        progress,
    )
}

/// `gpux replay diff`: writes the report to `out`; a divergence is the outcome's
/// failure.
pub fn run(a: &Path, b: &Path, progress: &Progress, out: &mut dyn Write) -> Result<Outcome> {
    let r = diff(a, b, progress).and_then(|report| {
        crate::write_json_line(out, &report)?;
        Ok(match &report.first_divergence {
            None => Outcome::Success,
            Some(d) => {
                let mut f = Failure::new(
                    FailureKind::Diverged,
                    format!(
                        "the ledgers diverge at cmd_seq {} ({:?})",
                        d.cmd_seq, d.what
                    ),
                )
                .at_cmd(d.cmd_seq);
                f.event_seq = d.event_seq;
                Outcome::Failure(f)
            }
        })
    });
    crate::settle(out, r)
}

fn side<S: Store>(label: &str, r: &LedgerReader<S>) -> Result<LedgerSide> {
    let h = r.head()?;
    Ok(LedgerSide {
        path: label.to_string(),
        last_cmd_seq: h.last_cmd_seq,
        last_event_seq: h.last_event_seq,
        last_batch_no: h.last_batch_no,
        chain_head: hex(&h.hash),
    })
}

/// Compares two ledgers through any readers, each given with a label.
pub fn diff_readers<A: Store, B: Store>(
    (label_a, a): (&str, &LedgerReader<A>),
    (label_b, b): (&str, &LedgerReader<B>),
    progress: &Progress,
) -> Result<DiffReport> {
    let side_a = side(label_a, a)?;
    let side_b = side(label_b, b)?;
    let mut cmds_a = a.commands(1)?;
    let mut cmds_b = b.commands(1)?;
    let mut evs_a = a.events(1)?;
    let mut evs_b = b.events(1)?;
    let last = side_a.last_cmd_seq.max(side_b.last_cmd_seq);
    let bar = progress.bar(last, "diff");
    let mut commands = 0u64;
    let mut events = 0u64;
    let mut first = None;
    for seq in 1..=last {
        if seq % 1024 == 0 {
            bar.set(seq);
        }
        let div = |what| Divergence {
            cmd_seq: seq,
            what,
            event_seq: None,
            a: None,
            b: None,
        };
        if seq > side_a.last_cmd_seq {
            first = Some(div(What::AEnds));
            break;
        }
        if seq > side_b.last_cmd_seq {
            first = Some(div(What::BEnds));
            break;
        }
        let ca = next_command(&mut cmds_a, seq)?;
        let cb = next_command(&mut cmds_b, seq)?;
        if let Some(d) = compare_commands(&ca, &cb) {
            first = Some(d);
            break;
        }
        let mut d = None;
        for i in 0..u64::from(ca.event_count) {
            let event_seq = ca.first_event_seq + i;
            let ea = next_event(&mut evs_a, &ca, event_seq)?;
            let eb = next_event(&mut evs_b, &cb, event_seq)?;
            if ea.payload != eb.payload {
                d = Some(Divergence {
                    cmd_seq: seq,
                    what: What::Event,
                    event_seq: Some(event_seq),
                    a: Some(event_value(&ea.payload)),
                    b: Some(event_value(&eb.payload)),
                });
                break;
            }
            events += 1;
        }
        if d.is_some() {
            first = d;
            break;
        }
        commands += 1;
    }
    drop(bar);
    Ok(DiffReport {
        identical: first.is_none(),
        first_divergence: first,
        commands_compared: commands,
        events_compared: events,
        same_chain_head: side_a.chain_head == side_b.chain_head,
        a: side_a,
        b: side_b,
    })
}

fn compare_commands(a: &CommandRecord, b: &CommandRecord) -> Option<Divergence> {
    let (what, va, vb) = if a.ts_ns != b.ts_ns {
        (What::TsNs, a.ts_ns.into(), b.ts_ns.into())
    } else if a.source != b.source {
        (
            What::Source,
            source_text(&a.source).into(),
            source_text(&b.source).into(),
        )
    } else if a.payload != b.payload {
        (
            What::Payload,
            json_value(&a.payload),
            json_value(&b.payload),
        )
    } else if a.event_count != b.event_count {
        (What::EventCount, a.event_count.into(), b.event_count.into())
    } else {
        return None;
    };
    Some(Divergence {
        cmd_seq: a.cmd_seq,
        what,
        event_seq: None,
        a: Some(va),
        b: Some(vb),
    })
}

fn next_command(it: &mut RecordIter<'_, CommandRecord>, seq: u64) -> Result<CommandRecord> {
    match it.next() {
        Some(c) => Ok(c?),
        None => Err(Failure::new(FailureKind::Gap, "command record missing")
            .at_cmd(seq)
            .into()),
    }
}

fn next_event(
    it: &mut RecordIter<'_, EventRecord>,
    c: &CommandRecord,
    event_seq: u64,
) -> Result<EventRecord> {
    match it.next() {
        Some(e) => {
            let e = e?;
            if e.cmd_seq != c.cmd_seq {
                return Err(Failure::new(
                    FailureKind::Malformed,
                    format!("event belongs to cmd_seq {}", e.cmd_seq),
                )
                .at_cmd(c.cmd_seq)
                .at_event(event_seq)
                .into());
            }
            Ok(e)
        }
        None => Err(Failure::new(FailureKind::Gap, "event record missing")
            .at_cmd(c.cmd_seq)
            .at_event(event_seq)
            .into()),
    }
}
