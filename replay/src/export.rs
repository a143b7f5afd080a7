//! `gpux replay export --data DIR --what trades|deliveries|events|commands --format jsonl|csv
//! [--from SEQ] [--to SEQ]`: the history of a `cmd_seq` range (inclusive), streamed
//! record by record to a writer — the ledger is never loaded into memory.
//!
//! JSON lines:
//! - events, trades and deliveries: `{"cmd_seq":…,"event_seq":…,"ts_ns":…,
//!   "slot":"2026-12-07T09:00Z","event":{…}}`, the event exactly as stored (its
//!   `type` tag included; slots in it are unix seconds, as the protocol writes
//!   them), with `slot` in human form when the event names one slot;
//! - commands: `{"cmd_seq":…,"ts_ns":…,"source":{…},"first_event_seq":…,
//!   "event_count":…,"command":{…}}` with the command envelope as stored, or
//!   `"command":null,"malformed":"…"` for bytes that never decoded.
//!
//! CSV has a header row and fixed columns:
//! - trades: `trade,cmd_seq,ts_ns,market,slot,price,quantity,taker_side,
//!   maker_order,maker_account,taker_order,taker_account,maker_fee,taker_fee`;
//! - deliveries (`delivery_scheduled`, fixed at each gate closure):
//!   `entry,cmd_seq,ts_ns,market,slot,provider,holder,quantity,trades` (trade ids
//!   separated by spaces);
//! - events: `event_seq,cmd_seq,ts_ns,type,json`;
//! - commands: `cmd_seq,ts_ns,source,type,json` (`type` is `malformed` for bytes
//!   that never decoded).

use std::fmt;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

use gpux_engine::slot::format_slot;
use gpux_engine::{Command, CommandEnvelope, Event, Side};
use gpux_ledger::{CommandRecord, EventRecord, LedgerReader, RecordIter, Source, Store};
use serde::Serialize;

use crate::error::{Failure, FailureKind, Outcome, ReplayError, Result};
use crate::progress::Progress;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// `trade_executed` events only.
    Trades,
    /// `delivery_scheduled` events only: the delivery schedule.
    Deliveries,
    /// Every event.
    Events,
    /// Every command record.
    Commands,
}

/// How to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row (RFC 4180 quoting).
    Csv,
}

/// An unknown `--what` or `--format` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct ParseError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl FromStr for What {
    type Err = ParseError;
    fn from_str(s: &str) -> std::result::Result<Self, ParseError> {
        match s {
            "trades" => Ok(What::Trades),
            "deliveries" => Ok(What::Deliveries),
            "events" => Ok(What::Events),
            "commands" => Ok(What::Commands),
            _ => Err(ParseError {
                what: "export kind",
                value: s.into(),
                expected: "trades, deliveries, events, commands",
            }),
        }
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            What::Trades => "trades",
            What::Deliveries => "deliveries",
            What::Events => "events",
            What::Commands => "commands",
        })
    }
}

impl FromStr for Format {
    type Err = ParseError;
    fn from_str(s: &str) -> std::result::Result<Self, ParseError> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            _ => Err(ParseError {
                what: "export format",
                value: s.into(),
                expected: "jsonl, csv",
            }),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        })
    }
}

/// What to export, how, and which commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// Trades, events or commands.
    pub what: What,
    /// JSON lines or CSV.
    pub format: Format,
    /// First `cmd_seq` (default 1).
    pub from: Option<u64>,
    /// Last `cmd_seq`, inclusive (default and at most: the head).
    pub to: Option<u64>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Trades, events or commands.
    pub what: What,
    /// The format.
    pub format: Format,
    /// First `cmd_seq` of the range.
    pub from: u64,
    /// Last `cmd_seq` of the range (clamped to the head).
    pub to: u64,
    /// Commands read.
    pub commands: u64,
    /// Rows (lines) written, the CSV header not counted.
    pub rows: u64,
}

/// Exports from the ledger in `data` (opened read-only) to `out`.
pub fn export(
    data: &Path,
    opts: &ExportOptions,
    progress: &Progress,
    out: &mut dyn Write,
) -> Result<ExportSummary> {
    let ledger = crate::open_or_fail(data)?;
    export_reader(&ledger.reader(), opts, progress, out)
}

/// `gpux replay export`: the rows go to `out`; a ledger found corrupt while
/// reading ends the output with a failure line (`{"ok":false,…}`).
pub fn run(
    data: &Path,
    opts: &ExportOptions,
    progress: &Progress,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let r = export(data, opts, progress, out).map(|_| Outcome::Success);
    crate::settle(out, r)
}

/// Exports through any reader.
pub fn export_reader<S: Store>(
    reader: &LedgerReader<S>,
    opts: &ExportOptions,
    progress: &Progress,
    out: &mut dyn Write,
) -> Result<ExportSummary> {
    let head = reader.head()?;
    let from = opts.from.unwrap_or(1).max(1);
    let to = opts.to.unwrap_or(head.last_cmd_seq).min(head.last_cmd_seq);
    if let Some(last) = opts.to.filter(|&t| from > t) {
        return Err(ReplayError::InvalidRange { from, to: last });
    }
    let mut w = BufWriter::with_capacity(1 << 16, out);
    let mut summary = ExportSummary {
        what: opts.what,
        format: opts.format,
        from,
        to,
        commands: 0,
        rows: 0,
    };
    if opts.format == Format::Csv {
        w.write_all(csv_header(opts.what))?;
    }
    let bar = progress.bar(to.saturating_sub(from) + 1, "export");
    let mut commands = reader.commands(from)?;
    let mut events: Option<RecordIter<'_, EventRecord>> = None;
    for seq in from..=to {
        let c = match commands.next() {
            Some(c) => c?,
            None => {
                return Err(Failure::new(FailureKind::Gap, "command record missing")
                    .at_cmd(seq)
                    .into())
            }
        };
        summary.commands += 1;
        if seq % 1024 == 0 {
            bar.set(seq + 1 - from);
        }
        if opts.what == What::Commands {
            write_command(&mut w, opts.format, &c)?;
            summary.rows += 1;
            continue;
        }
        let events = match &mut events {
            Some(e) => e,
            None => events.insert(reader.events(c.first_event_seq)?),
        };
        for i in 0..u64::from(c.event_count) {
            let event_seq = c.first_event_seq + i;
            let e = match events.next() {
                Some(e) => e?,
                None => {
                    return Err(Failure::new(FailureKind::Gap, "event record missing")
                        .at_cmd(seq)
                        .at_event(event_seq)
                        .into())
                }
            };
            let event = decode_event(&c, &e, event_seq)?;
            match (opts.what, &event) {
                (What::Events, _) => {}
                (What::Trades, Event::TradeExecuted(_)) => {}
                (What::Deliveries, Event::DeliveryScheduled(_)) => {}
                _ => continue,
            }
            write_event(&mut w, opts, &c, &e, &event)?;
            summary.rows += 1;
        }
    }
    w.flush()?;
    Ok(summary)
}

/// The header row of a CSV export.
fn csv_header(what: What) -> &'static [u8] {
    match what {
        What::Trades => b"trade,cmd_seq,ts_ns,market,slot,price,quantity,taker_side,maker_order,maker_account,taker_order,taker_account,maker_fee,taker_fee\n",
        What::Deliveries => b"entry,cmd_seq,ts_ns,market,slot,provider,holder,quantity,trades\n",
        What::Events => b"event_seq,cmd_seq,ts_ns,type,json\n",
        What::Commands => b"cmd_seq,ts_ns,source,type,json\n",
    }
}

/// Decodes a stored event, checking it belongs to `c` and sits at `event_seq`.
fn decode_event(c: &CommandRecord, e: &EventRecord, event_seq: u64) -> Result<Event> {
    if e.cmd_seq != c.cmd_seq || e.event_seq != event_seq {
        return Err(Failure::new(
            FailureKind::Malformed,
            format!("event {} belongs to cmd_seq {}", e.event_seq, e.cmd_seq),
        )
        .at_cmd(c.cmd_seq)
        .at_event(event_seq)
        .into());
    }
    Event::from_bytes(&e.payload).map_err(|err| {
        Failure::new(
            FailureKind::Malformed,
            format!("stored event does not decode: {err}"),
        )
        .at_cmd(c.cmd_seq)
        .at_event(event_seq)
        .into()
    })
}

fn write_event(
    w: &mut impl Write,
    opts: &ExportOptions,
    c: &CommandRecord,
    e: &EventRecord,
    event: &Event,
) -> Result<()> {
    match (opts.format, event) {
        (Format::Jsonl, _) => {
            write!(
                w,
                "{{\"cmd_seq\":{},\"event_seq\":{},\"ts_ns\":{},",
                c.cmd_seq, e.event_seq, c.ts_ns
            )?;
            if let Some(slot) = event_slot(event) {
                write!(w, "\"slot\":\"{}\",", format_slot(slot))?;
            }
            w.write_all(b"\"event\":")?;
            // The stored event as protocol JSON (exactly what the engine's JSON
            // encoding of it gives, as the ledger held before format 3).
            w.write_all(&event.to_json_vec())?;
            w.write_all(b"}\n")?;
        }
        (Format::Csv, Event::TradeExecuted(t)) if opts.what == What::Trades => {
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                t.trade,
                c.cmd_seq,
                c.ts_ns,
                t.market,
                format_slot(t.slot),
                t.price,
                t.quantity,
                side_name(t.taker_side),
                t.maker_order,
                t.maker_account,
                t.taker_order,
                t.taker_account,
                t.maker_fee,
                t.taker_fee
            )?;
        }
        (Format::Csv, Event::DeliveryScheduled(d)) if opts.what == What::Deliveries => {
            let trades: Vec<String> = d.trades.iter().map(u64::to_string).collect();
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{}",
                d.entry,
                c.cmd_seq,
                c.ts_ns,
                d.market,
                format_slot(d.slot),
                d.provider,
                d.holder,
                d.quantity,
                trades.join(" ")
            )?;
        }
        (Format::Csv, _) => {
            write!(
                w,
                "{},{},{},{},",
                e.event_seq,
                c.cmd_seq,
                c.ts_ns,
                event_type(event)
            )?;
            csv_field(w, &String::from_utf8_lossy(&event.to_json_vec()))?;
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// A command's source in JSON.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum SourceView<'a> {
    Embedded {
        seq: u64,
    },
    Kafka {
        topic: &'a str,
        partition: i32,
        offset: u64,
        /// The command's index in its batch record (absent: the record is this
        /// one command).
        #[serde(skip_serializing_if = "Option::is_none")]
        index: Option<u32>,
    },
}

fn source_view(s: &Source) -> SourceView<'_> {
    match s {
        Source::Embedded { seq } => SourceView::Embedded { seq: *seq },
        Source::Kafka {
            topic,
            partition,
            offset,
            index,
        } => SourceView::Kafka {
            topic,
            partition: *partition,
            offset: *offset,
            index: *index,
        },
    }
}

/// A command's source as text: `embedded:SEQ`, `kafka:TOPIC/PARTITION@OFFSET`, or
/// `kafka:TOPIC/PARTITION@OFFSET#INDEX` for a command of a batch record.
pub fn source_text(s: &Source) -> String {
    match s {
        Source::Embedded { seq } => format!("embedded:{seq}"),
        Source::Kafka {
            topic,
            partition,
            offset,
            index: None,
        } => format!("kafka:{topic}/{partition}@{offset}"),
        Source::Kafka {
            topic,
            partition,
            offset,
            index: Some(i),
        } => format!("kafka:{topic}/{partition}@{offset}#{i}"),
    }
}

fn write_command(w: &mut impl Write, format: Format, c: &CommandRecord) -> Result<()> {
    let decoded = CommandEnvelope::from_json(&c.payload).ok();
    match format {
        Format::Jsonl => {
            write!(
                w,
                "{{\"cmd_seq\":{},\"ts_ns\":{},\"source\":",
                c.cmd_seq, c.ts_ns
            )?;
            serde_json::to_writer(&mut *w, &source_view(&c.source))?;
            write!(
                w,
                ",\"first_event_seq\":{},\"event_count\":{},\"command\":",
                c.first_event_seq, c.event_count
            )?;
            match decoded {
                // It decoded, so it is JSON: embed it as stored.
                Some(_) => w.write_all(&c.payload)?,
                None => {
                    w.write_all(b"null,\"malformed\":")?;
                    serde_json::to_writer(&mut *w, &String::from_utf8_lossy(&c.payload))?;
                }
            }
            w.write_all(b"}\n")?;
        }
        Format::Csv => {
            write!(w, "{},{},", c.cmd_seq, c.ts_ns)?;
            csv_field(w, &source_text(&c.source))?;
            let kind = decoded.map_or("malformed", |env| command_type(&env.command));
            write!(w, ",{kind},")?;
            csv_field(w, &String::from_utf8_lossy(&c.payload))?;
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Writes one CSV field, quoted (with `"` doubled) when it holds a comma, a quote
/// or a line break.
fn csv_field(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    if s.contains([',', '"', '\n', '\r']) {
        w.write_all(b"\"")?;
        w.write_all(s.replace('"', "\"\"").as_bytes())?;
        w.write_all(b"\"")
    } else {
        w.write_all(s.as_bytes())
    }
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// An event's `type` tag.
pub fn event_type(e: &Event) -> &'static str {
    match e {
        Event::MarketListed(_) => "market_listed",
        Event::AccountCreated(_) => "account_created",
        Event::Deposited(_) => "deposited",
        Event::Withdrawn(_) => "withdrawn",
        Event::CapacityAdded(_) => "capacity_added",
        Event::CapacityRemoved(_) => "capacity_removed",
        Event::OrderAccepted(_) => "order_accepted",
        Event::OrderRejected(_) => "order_rejected",
        Event::CommandRejected(_) => "command_rejected",
        Event::TradeExecuted(_) => "trade_executed",
        Event::OrderRested(_) => "order_rested",
        Event::OrderCancelled(_) => "order_cancelled",
        Event::OrderAmended(_) => "order_amended",
        Event::MassCancelled(_) => "mass_cancelled",
        Event::DuplicateRequest(_) => "duplicate_request",
        Event::DeliveryScheduled(_) => "delivery_scheduled",
        Event::InventoryExpired(_) => "inventory_expired",
        Event::SlotClosed(_) => "slot_closed",
        Event::DeliveryReported(_) => "delivery_reported",
        Event::DeliveryDisputed(_) => "delivery_disputed",
        Event::TradeSettled(_) => "trade_settled",
        Event::DeliverySettled(_) => "delivery_settled",
        Event::ApiKeyAdded(_) => "api_key_added",
        Event::ApiKeyRevoked(_) => "api_key_revoked",
    }
}

/// The one slot an event names, if it names exactly one (a capacity range names
/// none unless it is one slot).
pub fn event_slot(e: &Event) -> Option<u64> {
    match e {
        Event::CapacityAdded(c) | Event::CapacityRemoved(c) => {
            (c.from_slot == c.to_slot).then_some(c.from_slot)
        }
        Event::OrderAccepted(o) => o.to_slot.is_none().then_some(o.slot),
        Event::TradeExecuted(t) => Some(t.slot),
        Event::OrderRested(o) => Some(o.slot),
        Event::OrderCancelled(o) => Some(o.slot),
        Event::OrderAmended(o) => Some(o.slot),
        Event::MassCancelled(m) => m.slot,
        Event::DeliveryScheduled(d) => Some(d.slot),
        Event::InventoryExpired(x) => Some(x.slot),
        Event::SlotClosed(x) => Some(x.slot),
        Event::DeliveryReported(x) => Some(x.slot),
        Event::DeliveryDisputed(x) => Some(x.slot),
        Event::DeliverySettled(x) => Some(x.slot),
        _ => None,
    }
}

/// A command's `type` tag.
pub fn command_type(c: &Command) -> &'static str {
    match c {
        Command::ListMarket(_) => "list_market",
        Command::CreateAccount(_) => "create_account",
        Command::Deposit(_) => "deposit",
        Command::Withdraw(_) => "withdraw",
        Command::AddCapacity(_) => "add_capacity",
        Command::RemoveCapacity(_) => "remove_capacity",
        Command::PlaceOrder(_) => "place_order",
        Command::CancelOrder(_) => "cancel_order",
        Command::AmendOrder(_) => "amend_order",
        Command::MassCancel(_) => "mass_cancel",
        Command::Tick(_) => "tick",
        Command::DeliveryReport(_) => "delivery_report",
        Command::Dispute(_) => "dispute",
        Command::ResolveDispute(_) => "resolve_dispute",
        Command::AddApiKey(_) => "add_api_key",
        Command::RevokeApiKey(_) => "revoke_api_key",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut v = Vec::new();
        csv_field(&mut v, "plain").unwrap();
        v.push(b'|');
        csv_field(&mut v, r#"{"a":1,"b":"x"}"#).unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            r#"plain|"{""a"":1,""b"":""x""}""#
        );
    }

    #[test]
    fn type_tags_match_the_json_encoding() {
        let e: Event = serde_json::from_str(r#"{"type":"account_created","account":3}"#).unwrap();
        assert_eq!(event_type(&e), "account_created");
        let c: Command = serde_json::from_str(r#"{"type":"mass_cancel","account":3}"#).unwrap();
        assert_eq!(command_type(&c), "mass_cancel");
    }
}
