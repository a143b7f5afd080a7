//! Keeps `docs/PROTOCOL.md` true. The document is the protocol's reference for API
//! users, Kafka producers and auditors; this test reads it and checks it against the
//! engine so that it cannot drift:
//!
//! - every ```` ```json command ```` block decodes (`CommandEnvelope::from_json`, or
//!   `Command` when it has no envelope) and re-encodes to the same JSON value;
//! - every ```` ```json event ```` block decodes (`EventEnvelope` or `Event`) and
//!   re-encodes to the same JSON value;
//! - every ```` ```json session NAME ```` block is part of a session: its commands,
//!   applied in document order to a fresh engine with seq 1, 2, 3, …, produce exactly
//!   the events written after each of them, and rebuilding L2 depth from those events
//!   with the document's rules gives the engine's depth after every command;
//! - every command type, event type, field, enum value, cancel reason and reject
//!   reason is documented; the reject table matches `number()`, `code()` and
//!   `message()` exactly; the decoding-error, fee/hold, balance and limits tables
//!   match the engine.
//!
//! Lists of types, fields and enum values are taken from serde itself (the error
//! message for an unknown variant or field names every expected one), so a new
//! variant or field fails this test until it is documented.

use gpux_engine::command::{COMMAND_BYTES_MAX, REQUEST_ID_BYTES_MAX};
use gpux_engine::event::SettlementBasis;
use gpux_engine::limits::{
    ACCOUNTS_MAX, API_KEYS_PER_ACCOUNT_MAX, CASH_TOTAL_MAX_MICROS, EVENTS_PER_COMMAND_WORST,
    EXPIRIES_PER_COMMAND_MAX, FEE_BPS_MAX, GATE_CLOSURE_SECS_MAX, LOTS_TOTAL_MAX, MARKETS_MAX,
    MATCHES_PER_COMMAND_MAX, NOTIONAL_MAX_MICROS, OPEN_ORDERS_PER_ACCOUNT_MAX,
    OPEN_ORDERS_PER_BOOK_MAX, SLOT_HORIZON_HOURS_MAX, WINDOW_SLOTS_MAX,
};
use gpux_engine::limits::{
    DELIVERY_WINDOW_SECS_MAX, GATE_CLOSURE_EVENTS_PER_COMMAND_MAX, REQUEST_IDS_REMEMBERED_MAX,
    REQUEST_ID_WINDOW_NS, SETTLEMENTS_PER_COMMAND_MAX, SETTLEMENT_EVENTS_PER_COMMAND_MAX,
    TRADES_PER_LOT_MAX,
};
use gpux_engine::market::{MarketSpec, SlotRules};
use gpux_engine::slot::{parse_slot, SLOT_SECS};
use gpux_engine::{
    Book, CancelReason, ClientOrderId, Command, CommandEnvelope, Engine, Event, EventEnvelope,
    KeyScope, MarketId, OrderType, RejectReason, Side, StpMode, TimeInForce,
};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

const DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"));

// ----- reading the markdown ------------------------------------------------------

/// A fenced code block tagged `json KIND [NAME]`.
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    kind: String,
    name: Option<String>,
    body: String,
}

fn json_blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    let mut in_comment = false;
    for (i, line) in DOC.lines().enumerate() {
        // HTML comments (the convention note at the top) are not content.
        if open.is_none() && (in_comment || line.trim_start().starts_with("<!--")) {
            in_comment = !line.contains("-->");
            continue;
        }
        if let Some((start, info, body)) = open.as_mut() {
            if line.trim_start().starts_with("```") {
                let mut words = info.split_whitespace();
                if words.next() == Some("json") {
                    blocks.push(Block {
                        line: *start,
                        kind: words.next().unwrap_or("").to_string(),
                        name: words.next().map(str::to_string),
                        body: std::mem::take(body),
                    });
                }
                open = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
        } else if let Some(info) = line.trim_start().strip_prefix("```") {
            open = Some((i + 1, info.trim().to_string(), String::new()));
        }
    }
    assert!(open.is_none(), "unclosed code block in PROTOCOL.md");
    blocks
}

/// The JSON values of a block, each with its own source text.
fn values(block: &Block) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(&block.body).into_iter::<Value>();
    let mut start = 0;
    while let Some(v) = stream.next() {
        let v = v.unwrap_or_else(|e| panic!("block at line {}: not JSON: {e}", block.line));
        let end = stream.byte_offset();
        out.push((block.body[start..end].trim().to_string(), v));
        start = end;
    }
    out
}

/// The rows of the first table after the first heading that contains `heading`
/// (and starts with `level`), as cells.
fn table_under(level: &str, heading: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = DOC.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(level) && l.contains(heading))
        .unwrap_or_else(|| panic!("PROTOCOL.md has no heading containing {heading:?}"));
    let mut rows = Vec::new();
    for line in &lines[at + 1..] {
        let t = line.trim();
        if t.starts_with('#') {
            break;
        }
        if t.starts_with('|') {
            let cells: Vec<String> = t
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            rows.push(cells);
        } else if !rows.is_empty() {
            break;
        }
    }
    assert!(rows.len() >= 2, "no table after heading {heading:?}");
    // Header and separator.
    rows.drain(..2);
    rows
}

/// Whether the text under the first heading containing `heading` (up to the next
/// heading) contains `text`.
fn section_says(level: &str, heading: &str, text: &str) -> bool {
    let lines: Vec<&str> = DOC.lines().collect();
    let Some(at) = lines
        .iter()
        .position(|l| l.starts_with(level) && l.contains(heading))
    else {
        return false;
    };
    lines[at + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.contains(text))
}

fn table_after(heading: &str) -> Vec<Vec<String>> {
    table_under("#", heading)
}

/// The text of a cell that is one code span (`` `x` `` or ``` `` x `` ```).
fn code(cell: &str) -> Option<String> {
    let c = cell.trim();
    if let Some(inner) = c.strip_prefix("``").and_then(|c| c.strip_suffix("``")) {
        return Some(
            inner
                .strip_prefix(' ')
                .unwrap_or(inner)
                .trim_end()
                .to_string(),
        );
    }
    c.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .filter(|c| !c.contains('`'))
        .map(str::to_string)
}

fn decimal(cell: &str) -> Decimal {
    let c = code(cell).unwrap_or_else(|| cell.to_string());
    Decimal::from_str(&c.replace(',', "")).unwrap_or_else(|e| panic!("{cell:?}: {e}"))
}

// ----- what serde knows ----------------------------------------------------------

/// Names serde lists in its error for `probe`: every variant of an enum (unknown
/// variant) or every field of a struct (unknown field), in declaration order.
fn serde_names<T: DeserializeOwned + std::fmt::Debug>(probe: &str) -> Vec<String> {
    let err = serde_json::from_str::<T>(probe)
        .expect_err("the probe must be refused")
        .to_string();
    if err.contains("there are no fields") {
        return Vec::new();
    }
    let (_, expected) = err
        .split_once("expected")
        .unwrap_or_else(|| panic!("unexpected serde message: {err}"));
    let names: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(!names.is_empty(), "no names in serde message: {err}");
    names
}

fn command_types() -> Vec<String> {
    serde_names::<Command>(r#"{"type":"__probe__"}"#)
}

fn event_types() -> Vec<String> {
    serde_names::<Event>(r#"{"type":"__probe__"}"#)
}

fn command_fields(t: &str) -> Vec<String> {
    let probe = format!(r#"{{"type":"{t}","__probe__":0}}"#);
    match serde_json::from_str::<Command>(&probe) {
        // A command without fields (`tick`): serde names none.
        Err(e) if e.to_string().contains("there are no fields") => Vec::new(),
        _ => serde_names::<Command>(&probe),
    }
}

fn event_fields(t: &str) -> Vec<String> {
    serde_names::<Event>(&format!(r#"{{"type":"{t}","__probe__":0}}"#))
}

fn type_of(v: &Value) -> String {
    v["type"].as_str().unwrap_or_default().to_string()
}

// ----- decoding the document's examples ------------------------------------------

fn decode_command(raw: &str, v: &Value, line: usize) -> CommandEnvelope {
    if v.get("v").is_some() {
        CommandEnvelope::from_json(raw.as_bytes())
            .unwrap_or_else(|e| panic!("command at line {line}: {e}\n{raw}"))
    } else {
        let command: Command = serde_json::from_str(raw)
            .unwrap_or_else(|e| panic!("command at line {line}: {e}\n{raw}"));
        CommandEnvelope {
            v: gpux_engine::PROTOCOL_VERSION,
            ts_ns: 0,
            request_id: None,
            idempotent: false,
            command,
        }
    }
}

fn decode_event(raw: &str, v: &Value, line: usize) -> EventEnvelope {
    if v.get("v").is_some() {
        serde_json::from_str(raw).unwrap_or_else(|e| panic!("event at line {line}: {e}\n{raw}"))
    } else {
        let event: Event = serde_json::from_str(raw)
            .unwrap_or_else(|e| panic!("event at line {line}: {e}\n{raw}"));
        EventEnvelope::new(0, 0, None, event)
    }
}

/// Re-encodes what was decoded, in the same shape (envelope or bare).
fn reencode_command(env: &CommandEnvelope, v: &Value) -> Value {
    if v.get("v").is_some() {
        serde_json::to_value(env).unwrap()
    } else {
        serde_json::to_value(&env.command).unwrap()
    }
}

fn reencode_event(env: &EventEnvelope, v: &Value) -> Value {
    if v.get("v").is_some() {
        serde_json::to_value(env).unwrap()
    } else {
        serde_json::to_value(&env.event).unwrap()
    }
}

#[test]
fn every_json_block_is_tagged() {
    for b in json_blocks() {
        match (b.kind.as_str(), &b.name) {
            ("command" | "event", None) | ("session", Some(_)) => {}
            _ => panic!(
                "block at line {}: tag json blocks `json command`, `json event` or \
                 `json session NAME` (see the comment at the top of PROTOCOL.md)",
                b.line
            ),
        }
        assert!(!values(&b).is_empty(), "block at line {} is empty", b.line);
    }
}

#[test]
fn command_blocks_round_trip() {
    let mut n = 0;
    for b in json_blocks().iter().filter(|b| b.kind == "command") {
        for (raw, v) in values(b) {
            let env = decode_command(&raw, &v, b.line);
            assert_eq!(
                reencode_command(&env, &v),
                v,
                "command at line {} does not re-encode to itself (write it in canonical form)",
                b.line
            );
            n += 1;
        }
    }
    assert!(n > 0);
}

#[test]
fn event_blocks_round_trip() {
    let mut n = 0;
    for b in json_blocks().iter().filter(|b| b.kind == "event") {
        for (raw, v) in values(b) {
            let env = decode_event(&raw, &v, b.line);
            assert_eq!(
                reencode_event(&env, &v),
                v,
                "event at line {} does not re-encode to itself",
                b.line
            );
            n += 1;
        }
    }
    assert!(n > 0);
}

// ----- every type, field and value is documented ---------------------------------

/// The text under the first `###` heading naming `t`, up to the next heading.
fn section(t: &str) -> String {
    let heading = format!("`{t}`");
    DOC.lines()
        .skip_while(|l| !(l.starts_with("### ") && l.contains(&heading)))
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first cells (code spans) of the field table under the `###` heading naming
/// `t` (one heading may name two types that share their fields). A type without
/// fields says so in its section instead: "It has no fields."
fn field_table(t: &str) -> Vec<String> {
    let heading = format!("`{t}`");
    if section_says("### ", &heading, "It has no fields.") {
        return Vec::new();
    }
    table_under("### ", &heading)
        .iter()
        .map(|row| code(&row[0]).unwrap_or_else(|| panic!("{t}: field cell {:?}", row[0])))
        .collect()
}

#[test]
fn every_command_type_has_a_field_table_and_an_example() {
    let examples: BTreeSet<String> = json_blocks()
        .iter()
        .filter(|b| b.kind == "command")
        .flat_map(values)
        .map(|(_, v)| type_of(v.get("command").unwrap_or(&v)))
        .collect();
    let types = command_types();
    assert!(
        types.contains(&"place_order".into()),
        "probe failed: {types:?}"
    );
    for t in types {
        let fields = command_fields(&t);
        if fields.is_empty() {
            let text = section(&t);
            assert!(
                text.contains("It has no fields") && !text.contains("| Field |"),
                "command `{t}` has no fields: its section says so, without a table"
            );
        } else {
            assert_eq!(
                field_table(&t),
                fields,
                "field table of command `{t}` (names, in wire order)"
            );
        }
        assert!(examples.contains(&t), "no `json command` example of `{t}`");
    }
}

#[test]
fn every_event_type_has_a_field_table_and_an_example() {
    let examples: BTreeSet<String> = json_blocks()
        .iter()
        .filter(|b| b.kind == "event")
        .flat_map(values)
        .map(|(_, v)| type_of(v.get("event").unwrap_or(&v)))
        .collect();
    let types = event_types();
    assert!(
        types.contains(&"trade_executed".into()),
        "probe failed: {types:?}"
    );
    for t in types {
        assert_eq!(
            field_table(&t),
            event_fields(&t),
            "field table of event `{t}` (names, in wire order)"
        );
        assert!(examples.contains(&t), "no `json event` example of `{t}`");
    }
}

#[test]
fn envelope_tables_list_every_field() {
    let cells = |h: &str| -> Vec<String> {
        table_after(h)
            .iter()
            .map(|r| code(&r[0]).expect("field name in a code span"))
            .collect()
    };
    assert_eq!(
        cells("Command envelope"),
        serde_names::<CommandEnvelope>(r#"{"__probe__":0}"#)
    );
    assert_eq!(
        cells("Event envelope"),
        serde_names::<EventEnvelope>(r#"{"__probe__":0}"#)
    );
}

#[test]
fn enumerations_are_documented() {
    // serde lists every variant, so a new one fails here until it is documented.
    let probe = r#""__probe__""#;
    let cases = [
        ("### `side`", serde_names::<Side>(probe)),
        ("### `order_type`", serde_names::<OrderType>(probe)),
        ("### `time_in_force`", serde_names::<TimeInForce>(probe)),
        ("### `stp`", serde_names::<StpMode>(probe)),
        ("## Cancel reasons", serde_names::<CancelReason>(probe)),
        (
            "### Settlement basis",
            serde_names::<SettlementBasis>(probe),
        ),
        ("### API keys", serde_names::<KeyScope>(probe)),
    ];
    for (heading, values) in cases {
        let documented: Vec<String> = table_after(heading)
            .iter()
            .map(|r| code(&r[0]).expect("value in a code span"))
            .collect();
        assert_eq!(documented, values, "values under {heading:?}");
    }
}

// ----- reject reasons ------------------------------------------------------------

#[test]
fn reject_table_matches_the_engine_exactly() {
    let rows = table_after("## Reject reasons");
    let documented: Vec<(u16, String, String)> = rows
        .iter()
        .map(|r| {
            let n = r[0]
                .parse()
                .unwrap_or_else(|_| panic!("number cell {:?}", r[0]));
            (n, code(&r[1]).expect("code"), code(&r[2]).expect("message"))
        })
        .collect();
    let engine: Vec<(u16, String, String)> = RejectReason::ALL
        .iter()
        .map(|r| (r.number(), r.code().to_string(), r.message().to_string()))
        .collect();
    assert_eq!(
        documented.len(),
        engine.len(),
        "one row per RejectReason::ALL"
    );
    for (d, e) in documented.iter().zip(&engine) {
        assert_eq!(d, e, "reject table row (number, code, message)");
    }
}

#[test]
fn every_reject_reason_has_an_example_event() {
    let mut seen = BTreeSet::new();
    for b in json_blocks()
        .iter()
        .filter(|b| b.kind == "event" || b.kind == "session")
    {
        for (_, v) in values(b) {
            let e = v.get("event").unwrap_or(&v);
            if matches!(type_of(e).as_str(), "order_rejected" | "command_rejected") {
                seen.insert(e["reason"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    for r in RejectReason::ALL {
        assert!(
            seen.contains(r.code()),
            "no example event with reason `{}`",
            r.code()
        );
    }
}

// ----- decoding errors -----------------------------------------------------------

#[test]
fn undecodable_commands_are_refused_as_documented() {
    let rows = table_after("Commands that do not decode");
    assert!(!rows.is_empty());
    for r in rows {
        let input = code(&r[0]).unwrap_or_else(|| panic!("input cell {:?}", r[0]));
        let expected = code(&r[1]).unwrap_or_else(|| panic!("error cell {:?}", r[1]));
        let err = CommandEnvelope::from_json(input.as_bytes())
            .expect_err(&format!("{input} must be refused"))
            .to_string();
        assert!(
            err.contains(&expected),
            "{input}\n  refused with {err:?}\n  doc says {expected:?}"
        );
    }
}

// ----- sessions: commands in, events out ------------------------------------------

/// L2 depth: (market, slot, is a bid, price) → quantity.
type Depth = BTreeMap<(String, u64, bool, Decimal), Decimal>;

/// Applies the document's L2 rules to one event.
fn rebuild(depth: &mut Depth, event: &Event) {
    let mut change = |market: &MarketId, slot: u64, side: Side, price: Decimal, delta: Decimal| {
        let key = (market.to_string(), slot, side == Side::Buy, price);
        let q = depth.entry(key.clone()).or_default();
        *q += delta;
        assert!(*q >= Decimal::ZERO, "depth below zero at {key:?}");
        if q.is_zero() {
            depth.remove(&key);
        }
    };
    match event {
        Event::OrderRested(e) => change(&e.market, e.slot, e.side, e.price, e.quantity),
        Event::TradeExecuted(e) => change(
            &e.market,
            e.slot,
            e.taker_side.opposite(),
            e.price,
            -e.quantity,
        ),
        Event::OrderCancelled(e) if e.resting => change(
            &e.market,
            e.slot,
            e.side,
            e.price.expect("resting orders have a price"),
            -e.quantity,
        ),
        Event::OrderAmended(e) if e.priority_kept => change(
            &e.market,
            e.slot,
            e.side,
            e.price,
            e.quantity - e.old_quantity,
        ),
        Event::OrderAmended(e) => change(&e.market, e.slot, e.side, e.old_price, -e.old_quantity),
        _ => {}
    }
}

fn engine_depth(engine: &Engine<Book>, markets: &[MarketId]) -> Depth {
    let mut d = Depth::new();
    for m in markets {
        for slot in engine.slots(m).unwrap() {
            for side in [Side::Buy, Side::Sell] {
                for l in engine.depth(m, slot, side, usize::MAX).unwrap() {
                    d.insert(
                        (m.to_string(), slot, side == Side::Buy, l.price),
                        l.quantity,
                    );
                }
            }
        }
    }
    d
}

/// One session: the engine after it, and the commands and events as checked.
struct Ran {
    engine: Engine<Book>,
    commands: usize,
}

/// Applies one session command given as its JSON line at `seq`, as the sequencer
/// does: a command that decodes is applied at its own (monotonic) timestamp; one
/// that does not still takes its seq, at the previous timestamp, and is recorded
/// as `malformed_command`. Returns the events and the envelope's request id.
fn apply_session_command(
    engine: &mut Engine<Book>,
    seq: u64,
    raw: &str,
) -> (Vec<Event>, Option<String>) {
    let mut out: Vec<Event> = Vec::new();
    let request_id = match CommandEnvelope::from_json(raw.as_bytes()) {
        Ok(env) => {
            // Session commands may be written in short form (defaults omitted);
            // they must still decode to a stable command.
            let again: CommandEnvelope = serde_json::from_str(&env.to_json()).unwrap();
            assert_eq!(again, env);
            engine.apply_request(
                seq,
                env.ts_ns,
                env.idempotent_request_id(),
                &env.command,
                &mut out,
            );
            env.request_id
        }
        Err(_) => {
            let ts = engine.last_ts_ns();
            assert!(engine
                .apply_json(seq, ts, raw.as_bytes(), &mut out)
                .is_none());
            None
        }
    };
    (out, request_id)
}

/// The event envelopes the document lists after a command, from `items[*i]` up to
/// the next command (each checked to round-trip), as values and as written;
/// leaves `*i` at the next command.
fn expected_events(
    name: &str,
    items: &[(usize, String, Value)],
    i: &mut usize,
) -> (Vec<Value>, Vec<String>) {
    let mut expected = Vec::new();
    let mut expected_lines = Vec::new();
    while *i < items.len() && items[*i].2.get("command").is_none() {
        let (line, raw, v) = &items[*i];
        assert!(
            v.get("event").is_some(),
            "session {name}, line {line}: expected an event envelope, found {raw}"
        );
        let decoded = decode_event(raw, v, *line);
        assert_eq!(
            &reencode_event(&decoded, v),
            v,
            "event at line {line} round trip"
        );
        expected.push(v.clone());
        expected_lines.push(raw.clone());
        *i += 1;
    }
    (expected, expected_lines)
}

fn run_session(name: &str, blocks: &[&Block]) -> Ran {
    run_session_until(name, blocks, u64::MAX)
}

/// [`run_session`], stopping after the command with seq `last`.
fn run_session_until(name: &str, blocks: &[&Block], last: u64) -> Ran {
    let mut items: Vec<(usize, String, Value)> = Vec::new();
    for b in blocks {
        for (raw, v) in values(b) {
            items.push((b.line, raw, v));
        }
    }
    let mut engine: Engine<Book> = Engine::new();
    let mut depth = Depth::new();
    let mut markets: Vec<MarketId> = Vec::new();
    let mut seq = 0;
    let mut i = 0;
    while i < items.len() && seq < last {
        let (line, raw, v) = &items[i];
        assert!(
            v.get("command").is_some(),
            "session {name}, line {line}: expected a command envelope, found {raw}"
        );
        seq += 1;
        let (out, request_id) = apply_session_command(&mut engine, seq, raw);
        // The engine's events as they go on the wire (key order kept, to paste).
        let actual_lines: Vec<String> = out
            .iter()
            .map(|e| {
                EventEnvelope::new(seq, engine.last_ts_ns(), request_id.clone(), e.clone())
                    .to_json()
            })
            .collect();
        let actual: Vec<Value> = actual_lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        i += 1;
        let (expected, expected_lines) = expected_events(name, &items, &mut i);
        assert!(
            expected == actual,
            "session {name}, command at line {line} (seq {seq}):\n{raw}\n\
             the document says:\n{}\nthe engine produces:\n{}",
            expected_lines.join("\n"),
            actual_lines.join("\n")
        );
        for e in &out {
            if let Event::MarketListed(m) = e {
                markets.push(m.market);
            }
            rebuild(&mut depth, e);
        }
        assert_eq!(
            depth,
            engine_depth(&engine, &markets),
            "session {name}, seq {seq}: L2 depth rebuilt from events differs from the engine's"
        );
    }
    Ran {
        engine,
        commands: seq as usize,
    }
}

fn sessions() -> BTreeMap<String, Ran> {
    let blocks = json_blocks();
    let mut by_name: BTreeMap<String, Vec<&Block>> = BTreeMap::new();
    for b in blocks.iter().filter(|b| b.kind == "session") {
        by_name.entry(b.name.clone().unwrap()).or_default().push(b);
    }
    by_name
        .into_iter()
        .map(|(name, bs)| {
            let ran = run_session(&name, &bs);
            (name, ran)
        })
        .collect()
}

#[test]
fn sessions_produce_exactly_the_documented_events() {
    let s = sessions();
    assert!(s.contains_key("e2e"), "the end-to-end session is named e2e");
    assert!(
        s.contains_key("rejects"),
        "the reject examples are session `rejects`"
    );
    for (name, ran) in &s {
        assert!(ran.commands > 0, "session {name} is empty");
    }
}

/// The e2e session's engine after the command with seq `last` (all of it with
/// `u64::MAX`).
fn e2e_until(last: u64) -> Engine<Book> {
    let blocks = json_blocks();
    let e2e: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.kind == "session" && b.name.as_deref() == Some("e2e"))
        .collect();
    run_session_until("e2e", &e2e, last).engine
}

/// Checks a balance table (account; USD available, held, escrow, pending; GPUs
/// available, held in the session's one slot) against the engine.
fn check_balances(engine: &Engine<Book>, heading: &str) {
    let rows = table_after(heading);
    assert!(!rows.is_empty());
    let market: MarketId = "h100-sxm.us-east".parse().unwrap();
    // The session's one slot, as the document names it.
    let slot = parse_slot("2026-01-01T01:00Z").unwrap();
    for r in rows {
        let account: u64 = r[0].parse().unwrap();
        let view = engine.balances(account).expect("account exists");
        let gpu = view
            .gpus
            .iter()
            .find(|p| p.market == market && p.slot == slot)
            .map(|p| (p.balance.available, p.balance.held))
            .unwrap_or_default();
        let documented: Vec<Decimal> = r[1..7].iter().map(|c| decimal(c)).collect();
        let usd = view.usd;
        assert_eq!(
            documented,
            [
                usd.available,
                usd.held,
                usd.escrow,
                usd.pending,
                gpu.0,
                gpu.1
            ],
            "{heading}: balances of account {account}"
        );
    }
}

#[test]
fn balances_before_the_gate_of_the_end_to_end_session() {
    let heading = DOC
        .lines()
        .find(|l| l.starts_with("### Balances before the gate"))
        .expect("a heading \"Balances before the gate (after step N)\"");
    let step: u64 = heading
        .rsplit("after step ")
        .next()
        .and_then(|t| t.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{heading:?} names no step"));
    check_balances(&e2e_until(step), "Balances before the gate");
}

#[test]
fn balances_after_the_end_to_end_session() {
    check_balances(&e2e_until(u64::MAX), "Balances after the session");
}

#[test]
fn provider_records_after_the_end_to_end_session() {
    let engine = e2e_until(u64::MAX);
    let rows = table_after("Provider record after the session");
    assert!(!rows.is_empty());
    for r in rows {
        let account: u64 = r[0].parse().unwrap();
        let p = engine.provider(account).expect("a provider record");
        let reliability = match r[4].as_str() {
            "new" => None,
            cell => Some(decimal(cell)),
        };
        assert_eq!(
            (
                decimal(&r[1]),
                decimal(&r[2]),
                r[3].parse::<u64>().unwrap(),
                reliability
            ),
            (p.obligated, p.delivered, p.disputes_lost, p.reliability),
            "record of provider {account}"
        );
    }
}

// ----- fees, holds, limits -------------------------------------------------------

#[test]
fn fee_and_hold_table_follows_the_market_rules() {
    // The market of the worked example (as listed in the end-to-end session).
    let spec = MarketSpec::new(
        "h100-sxm.us-east".parse().unwrap(),
        Decimal::from_str("0.01").unwrap(),
        Decimal::from_str("0.5").unwrap(),
        10,
        25,
        None,
        None,
        None,
        SlotRules::default(),
    )
    .unwrap();
    let usd = |micros: u64| Decimal::from_i128_with_scale(micros as i128, 6);
    let rows = table_after("Fees and holds, worked");
    assert!(!rows.is_empty());
    for r in rows {
        let ticks = spec.price_ticks(decimal(&r[0])).unwrap();
        let lots = spec.order_lots(decimal(&r[1])).unwrap();
        let notional = spec.notional(ticks, lots);
        let computed = [
            Decimal::from(ticks),
            Decimal::from(lots),
            usd(notional),
            usd(MarketSpec::fee(notional, spec.maker_fee_bps)),
            usd(MarketSpec::fee(notional, spec.taker_fee_bps)),
            usd(spec.buy_hold(ticks, lots)),
        ];
        let documented: Vec<Decimal> = r[2..8].iter().map(|c| decimal(c)).collect();
        assert_eq!(documented, computed, "fee/hold row {r:?}");
    }
}

#[test]
fn limits_table_matches_the_constants() {
    let known: BTreeMap<&str, u128> = [
        ("COMMAND_BYTES_MAX", COMMAND_BYTES_MAX as u128),
        ("REQUEST_ID_BYTES_MAX", REQUEST_ID_BYTES_MAX as u128),
        ("MarketId::MAX_LEN", MarketId::MAX_LEN as u128),
        ("ClientOrderId::MAX_LEN", ClientOrderId::MAX_LEN as u128),
        ("FEE_BPS_MAX", FEE_BPS_MAX as u128),
        ("NOTIONAL_MAX_MICROS", NOTIONAL_MAX_MICROS as u128),
        ("CASH_TOTAL_MAX_MICROS", CASH_TOTAL_MAX_MICROS as u128),
        ("LOTS_TOTAL_MAX", LOTS_TOTAL_MAX as u128),
        (
            "OPEN_ORDERS_PER_ACCOUNT_MAX",
            OPEN_ORDERS_PER_ACCOUNT_MAX as u128,
        ),
        ("OPEN_ORDERS_PER_BOOK_MAX", OPEN_ORDERS_PER_BOOK_MAX as u128),
        ("MARKETS_MAX", MARKETS_MAX as u128),
        ("ACCOUNTS_MAX", ACCOUNTS_MAX as u128),
        ("API_KEYS_PER_ACCOUNT_MAX", API_KEYS_PER_ACCOUNT_MAX as u128),
        ("MATCHES_PER_COMMAND_MAX", MATCHES_PER_COMMAND_MAX as u128),
        ("SLOT_SECS", SLOT_SECS as u128),
        ("SLOT_HORIZON_HOURS_MAX", SLOT_HORIZON_HOURS_MAX as u128),
        ("GATE_CLOSURE_SECS_MAX", GATE_CLOSURE_SECS_MAX as u128),
        ("WINDOW_SLOTS_MAX", WINDOW_SLOTS_MAX as u128),
        ("EXPIRIES_PER_COMMAND_MAX", EXPIRIES_PER_COMMAND_MAX as u128),
        (
            "GATE_CLOSURE_EVENTS_PER_COMMAND_MAX",
            GATE_CLOSURE_EVENTS_PER_COMMAND_MAX as u128,
        ),
        ("TRADES_PER_LOT_MAX", TRADES_PER_LOT_MAX as u128),
        ("DELIVERY_WINDOW_SECS_MAX", DELIVERY_WINDOW_SECS_MAX as u128),
        (
            "SETTLEMENTS_PER_COMMAND_MAX",
            SETTLEMENTS_PER_COMMAND_MAX as u128,
        ),
        (
            "SETTLEMENT_EVENTS_PER_COMMAND_MAX",
            SETTLEMENT_EVENTS_PER_COMMAND_MAX as u128,
        ),
        ("EVENTS_PER_COMMAND_WORST", EVENTS_PER_COMMAND_WORST as u128),
        (
            "REQUEST_IDS_REMEMBERED_MAX",
            REQUEST_IDS_REMEMBERED_MAX as u128,
        ),
        ("REQUEST_ID_WINDOW_NS", REQUEST_ID_WINDOW_NS as u128),
    ]
    .into_iter()
    .collect();
    let rows = table_after("## Limits");
    let mut documented = BTreeSet::new();
    for r in rows {
        let name = code(&r[0]).expect("constant name in a code span");
        let value: u128 = r[1]
            .replace([',', '_'], "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}: value {:?}", r[1]));
        let actual = known
            .get(name.as_str())
            .unwrap_or_else(|| panic!("unknown limit {name}"));
        assert_eq!(value, *actual, "limit {name}");
        documented.insert(name);
    }
    for name in known.keys() {
        assert!(
            documented.contains(*name),
            "limit {name} is not in the table"
        );
    }
}
