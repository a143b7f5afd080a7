//! `export`: trades, events and commands, JSON lines and CSV, by `cmd_seq` range.

use gpux_replay::export::{self, ExportOptions, Format, What};
use gpux_replay::{Progress, ReplayError};
use serde_json::Value;

use crate::common::{standard, Written};

fn export_to_string(dir: &std::path::Path, opts: ExportOptions) -> (export::ExportSummary, String) {
    let mut out = Vec::new();
    let summary = export::export(dir, &opts, &Progress::hidden(), &mut out).expect("export");
    (summary, String::from_utf8(out).expect("utf-8"))
}

fn opts(what: What, format: Format, from: Option<u64>, to: Option<u64>) -> ExportOptions {
    ExportOptions {
        what,
        format,
        from,
        to,
    }
}

/// Splits one CSV line into fields (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[test]
fn trades_as_csv_are_every_trade_with_its_values() {
    let (dir, w) = standard();
    let (summary, text) = export_to_string(dir.path(), opts(What::Trades, Format::Csv, None, None));
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "trade,cmd_seq,ts_ns,market,slot,price,quantity,taker_side,maker_order,maker_account,taker_order,taker_account,maker_fee,taker_fee"
    );
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    assert_eq!(rows.len(), w.trades.len());
    assert_eq!(summary.rows, w.trades.len() as u64);
    assert!(w.trades.len() > 50, "the scenario trades a lot");
    for (row, t) in rows.iter().zip(&w.trades) {
        let tr = &t.trade;
        let side = if tr.taker_side == gpux_engine::Side::Buy {
            "buy"
        } else {
            "sell"
        };
        let expected = [
            tr.trade.to_string(),
            t.cmd_seq.to_string(),
            t.ts_ns.to_string(),
            tr.market.to_string(),
            gpux_engine::slot::format_slot(tr.slot),
            tr.price.to_string(),
            tr.quantity.to_string(),
            side.to_string(),
            tr.maker_order.to_string(),
            tr.maker_account.to_string(),
            tr.taker_order.to_string(),
            tr.taker_account.to_string(),
            tr.maker_fee.to_string(),
            tr.taker_fee.to_string(),
        ];
        assert_eq!(row, &expected);
    }
}

#[test]
fn trades_as_json_lines_carry_their_sequence_numbers_and_the_event() {
    let (dir, w) = standard();
    let (_, text) = export_to_string(dir.path(), opts(What::Trades, Format::Jsonl, None, None));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), w.trades.len());
    for (l, t) in lines.iter().zip(&w.trades) {
        assert_eq!(l["cmd_seq"], t.cmd_seq);
        assert_eq!(l["event_seq"], t.event_seq);
        assert_eq!(l["ts_ns"], t.ts_ns);
        assert_eq!(l["slot"], gpux_engine::slot::format_slot(t.trade.slot));
        let event: gpux_engine::Event = serde_json::from_value(l["event"].clone()).unwrap();
        assert_eq!(event, gpux_engine::Event::TradeExecuted(t.trade));
    }
}

#[test]
fn deliveries_are_the_schedule_with_slots_as_people_write_them() {
    let (dir, w) = standard();
    let entries: Vec<(u64, gpux_engine::event::DeliveryScheduled)> = w
        .events
        .iter()
        .enumerate()
        .flat_map(|(i, evs)| evs.iter().map(move |e| (i as u64 + 1, e)))
        .filter_map(
            |(cmd_seq, e)| match gpux_engine::Event::from_bytes(e).unwrap() {
                gpux_engine::Event::DeliveryScheduled(d) => Some((cmd_seq, d)),
                _ => None,
            },
        )
        .collect();
    assert!(entries.len() > 10, "{}", entries.len());
    let (summary, text) =
        export_to_string(dir.path(), opts(What::Deliveries, Format::Csv, None, None));
    assert_eq!(summary.rows, entries.len() as u64);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "entry,cmd_seq,ts_ns,market,slot,provider,holder,quantity,trades"
    );
    for (row, (cmd_seq, d)) in lines.map(csv_fields).zip(&entries) {
        let trades: Vec<String> = d.trades.iter().map(u64::to_string).collect();
        let expected = [
            d.entry.to_string(),
            cmd_seq.to_string(),
            w.commands[*cmd_seq as usize - 1].ts_ns.to_string(),
            d.market.to_string(),
            "2023-11-14T23:00Z".to_string(),
            d.provider.to_string(),
            d.holder.to_string(),
            d.quantity.to_string(),
            trades.join(" "),
        ];
        assert_eq!(row, expected);
    }
    let (_, text) = export_to_string(
        dir.path(),
        opts(What::Deliveries, Format::Jsonl, None, None),
    );
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["slot"], "2023-11-14T23:00Z");
    assert_eq!(first["event"]["type"], "delivery_scheduled");
    assert_eq!(first["event"]["slot"], crate::common::SLOTS[0]);
}

/// The `(cmd_seq, event_seq, payload)` of every event of commands `from..=to`.
fn events_in(w: &Written, from: u64, to: u64) -> Vec<(u64, u64, Vec<u8>)> {
    let mut event_seq = 1;
    let mut out = Vec::new();
    for (i, events) in w.events.iter().enumerate() {
        let cmd_seq = i as u64 + 1;
        for e in events {
            if (from..=to).contains(&cmd_seq) {
                out.push((cmd_seq, event_seq, e.clone()));
            }
            event_seq += 1;
        }
    }
    out
}

#[test]
fn events_of_a_range_are_exactly_the_events_of_its_commands() {
    let (dir, w) = standard();
    let (from, to) = (100, 260);
    let expected = events_in(&w, from, to);
    let (summary, text) = export_to_string(
        dir.path(),
        opts(What::Events, Format::Jsonl, Some(from), Some(to)),
    );
    assert_eq!(summary.commands, to - from + 1);
    assert_eq!(text.lines().count(), expected.len());
    for (line, (cmd_seq, event_seq, payload)) in text.lines().zip(&expected) {
        let l: Value = serde_json::from_str(line).unwrap();
        assert_eq!(l["cmd_seq"], *cmd_seq);
        assert_eq!(l["event_seq"], *event_seq);
        assert_eq!(l["ts_ns"], w.commands[*cmd_seq as usize - 1].ts_ns);
        // The stored event, as the engine's own JSON of it.
        let json = gpux_engine::Event::from_bytes(payload)
            .unwrap()
            .to_json_vec();
        assert!(line.ends_with(&format!(
            "\"event\":{}}}",
            std::str::from_utf8(&json).unwrap()
        )));
    }

    let (_, csv) = export_to_string(
        dir.path(),
        opts(What::Events, Format::Csv, Some(from), Some(to)),
    );
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "event_seq,cmd_seq,ts_ns,type,json");
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    assert_eq!(rows.len(), expected.len());
    for (row, (cmd_seq, event_seq, payload)) in rows.iter().zip(&expected) {
        assert_eq!(row[0], event_seq.to_string());
        assert_eq!(row[1], cmd_seq.to_string());
        let json = gpux_engine::Event::from_bytes(payload)
            .unwrap()
            .to_json_vec();
        let v: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(row[3], v["type"].as_str().unwrap());
        assert_eq!(row[4].as_bytes(), json.as_slice());
    }
}

#[test]
fn commands_of_a_range_keep_their_payload_source_and_malformed_bytes() {
    let (dir, w) = standard();
    let last = w.last_seq();
    let (from, to) = (last - 30, last);
    let (_, text) = export_to_string(
        dir.path(),
        opts(What::Commands, Format::Jsonl, Some(from), None),
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, to - from + 1);
    for (l, cmd_seq) in lines.iter().zip(from..=to) {
        let c = &w.commands[cmd_seq as usize - 1];
        assert_eq!(l["cmd_seq"], cmd_seq);
        assert_eq!(l["ts_ns"], c.ts_ns);
        assert_eq!(l["source"]["kind"], "embedded");
        assert_eq!(l["source"]["seq"], cmd_seq, "journaled in order");
        assert_eq!(l["event_count"], w.events[cmd_seq as usize - 1].len());
        if gpux_engine::CommandEnvelope::from_json(&c.payload).is_ok() {
            assert_eq!(
                l["command"],
                serde_json::from_slice::<Value>(&c.payload).unwrap()
            );
        } else {
            assert_eq!(l["command"], Value::Null);
            assert_eq!(l["malformed"], String::from_utf8_lossy(&c.payload).as_ref());
        }
    }
    // The scenario ends with bytes that are not JSON.
    assert_eq!(lines.last().unwrap()["command"], Value::Null);

    let (_, csv) = export_to_string(
        dir.path(),
        opts(What::Commands, Format::Csv, Some(3), Some(6)),
    );
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "cmd_seq,ts_ns,source,type,json");
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0][0], "3");
    assert_eq!(rows[0][2], "embedded:3");
    assert_eq!(rows[0][3], "create_account");
    assert_eq!(rows[0][4].as_bytes(), w.commands[2].payload.as_slice());
    assert_eq!(rows[1][3], "deposit");
}

#[test]
fn a_malformed_command_is_typed_malformed_in_csv() {
    let (dir, w) = standard();
    let last = w.last_seq();
    let (_, csv) = export_to_string(
        dir.path(),
        opts(What::Commands, Format::Csv, Some(last), Some(last)),
    );
    let row = csv_fields(csv.lines().nth(1).unwrap());
    assert_eq!(row[0], last.to_string());
    assert_eq!(row[3], "malformed");
}

#[test]
fn a_range_past_the_head_is_clamped_and_an_inverted_one_refused() {
    let (dir, w) = standard();
    let last = w.last_seq();
    let (summary, text) = export_to_string(
        dir.path(),
        opts(
            What::Commands,
            Format::Jsonl,
            Some(last - 1),
            Some(last + 100),
        ),
    );
    assert_eq!(summary.to, last);
    assert_eq!(text.lines().count(), 2);
    let mut out = Vec::new();
    let r = export::export(
        dir.path(),
        &opts(What::Events, Format::Csv, Some(10), Some(9)),
        &Progress::hidden(),
        &mut out,
    );
    assert!(
        matches!(r, Err(ReplayError::InvalidRange { from: 10, to: 9 })),
        "{r:?}"
    );
}
