//! `gpux report` and `gpux dispute`: a provider says what it delivered of a
//! delivery entry, a holder says it received fewer GPUs.
//!
//! Owns the client side of settlement: the entry ids come from `gpux schedule`;
//! `report` without `--gpus` reports the entry's full quantity (read from the
//! account's schedule), `dispute` without `--gpus` says nothing was received. The
//! exchange decides everything else (who may, until when, how much at most) and
//! its refusal is printed with what to do.

use std::str::FromStr;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::api::{Api, Failure, Outcome, EXIT_OTHER, EXIT_REFUSED};
use super::table::{cell, Table};
use super::{print_json, when, Conn};

/// `gpux report ENTRY` / `gpux dispute ENTRY`.
#[derive(Debug, Clone, clap::Args)]
pub struct EntryArgs {
    /// The delivery entry's id (`gpux schedule` lists your entries).
    pub entry: u64,
    /// GPUs delivered (report; default: the entry's full quantity) or received
    /// (dispute; default: 0, none).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub gpus: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// A GPU count: a decimal, zero or more.
fn gpus_arg(s: &str) -> Outcome<String> {
    match Decimal::from_str(s.trim()) {
        Ok(d) if d >= Decimal::ZERO => Ok(s.trim().to_owned()),
        _ => Err(Failure::usage(format!(
            "--gpus: a number of GPUs, 0 or more (e.g. 4 or 3.5); got {s:?}"
        ))),
    }
}

/// The entry `entry` as the key's account's schedule shows it.
fn schedule_entry(api: &Api, entry: u64) -> Outcome<Value> {
    let (account, v) = super::views::my_schedule(api)?;
    v["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["entry"].as_u64() == Some(entry))
        .cloned()
        .ok_or_else(|| {
            Failure::new(
                EXIT_REFUSED,
                format!(
                    "entry {entry} is not in account {account}'s schedule: `gpux schedule` lists your deliveries and their entry ids"
                ),
            )
        })
}

/// `gpux report ENTRY [--gpus N]`.
pub fn report(a: &EntryArgs) -> Outcome {
    let api = a.conn.connect()?;
    let delivered = match &a.gpus {
        Some(g) => gpus_arg(g)?,
        None => {
            let e = schedule_entry(&api, a.entry)?;
            if e["state"] == "settled" {
                return Err(Failure::new(
                    EXIT_REFUSED,
                    format!("entry {} is already settled: nothing to report", a.entry),
                ));
            }
            e["quantity"].as_str().map(str::to_owned).ok_or_else(|| {
                Failure::new(EXIT_OTHER, "the exchange sent an entry without a quantity")
            })?
        }
    };
    let v = api.send(
        Method::POST,
        &format!("/v1/deliveries/{}/report", a.entry),
        Some(&json!({ "delivered": delivered })),
    )?;
    show(a, &v)
}

/// `gpux dispute ENTRY [--gpus N]`.
pub fn dispute(a: &EntryArgs) -> Outcome {
    let received = match &a.gpus {
        Some(g) => gpus_arg(g)?,
        None => "0".to_owned(),
    };
    let v = a.conn.connect()?.send(
        Method::POST,
        &format!("/v1/deliveries/{}/dispute", a.entry),
        Some(&json!({ "received": received })),
    )?;
    show(a, &v)
}

/// The answer: JSON, or one row saying what the entry now is.
fn show(a: &EntryArgs, v: &Value) -> Outcome {
    if a.conn.json {
        print_json(v);
        return Ok(());
    }
    println!("{}", entry_table(v).render());
    Ok(())
}

/// One row from a report, dispute or resolution answer.
pub fn entry_table(v: &Value) -> Table {
    let e = &v["event"];
    let slot = e["slot"]
        .as_u64()
        .map_or_else(|| cell(&e["slot"]), when::show);
    let (what, gpus) = match e["type"].as_str() {
        Some("delivery_reported") => ("reported", cell(&e["delivered"])),
        Some("delivery_disputed") => ("disputed", cell(&e["received"])),
        Some("delivery_settled") => ("settled", cell(&e["delivered"])),
        _ => ("?", "-".to_owned()),
    };
    let mut t = Table::new(&["entry", "market", "slot (UTC)", "now", "gpus", "cmd_seq"]);
    t.row(vec![
        cell(&v["entry"]),
        cell(&e["market"]),
        slot,
        what.into(),
        gpus,
        cell(&v["cmd_seq"]),
    ]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_counts_are_zero_or_more() {
        assert_eq!(gpus_arg(" 3.5 ").unwrap(), "3.5");
        assert_eq!(gpus_arg("0").unwrap(), "0");
        for bad in ["-1", "x", ""] {
            let e = gpus_arg(bad).unwrap_err();
            assert_eq!(e.exit, super::super::api::EXIT_USAGE);
            assert!(e.message.starts_with("--gpus"), "{}", e.message);
        }
    }

    #[test]
    fn the_answer_is_one_row_naming_what_the_entry_now_is() {
        let v = json!({"entry": 7, "cmd_seq": 40, "event": {"type": "delivery_disputed",
            "entry": 7, "holder": 2, "market": "l40s.us-east", "slot": 1_796_634_000u64,
            "received": "1", "reported": "2"}});
        let text = entry_table(&v).render();
        let row = text.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "7",
                "l40s.us-east",
                "2026-12-07T09:00Z",
                "disputed",
                "1",
                "40"
            ]
        );
    }
}
