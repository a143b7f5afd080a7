//! `gpux watch MARKET [SLOT]`: a delivery hour's book and trades live, over the
//! WebSocket (`/v1/ws`, docs/MARKET_DATA.md); without SLOT, the market's forward
//! curve.
//!
//! Owns the client's copy of a watched book: the snapshot, then each update's
//! absolute levels applied in `seq` order (an update whose `prev_seq` is not the
//! last applied `seq` is a gap: the command stops and says to watch again), each
//! checked against the message's `checksum` of the top levels. People
//! get one line per message — the touch after a book update, each trade, the
//! changed curve rows; `--json` prints the frames as they arrive.

use std::collections::BTreeMap;
use std::str::FromStr;

use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::api::{refusal, Failure, Outcome, EXIT_OTHER, EXIT_UNAVAILABLE};
use super::table::cell;
use super::{print_json, slot_arg, when, Conn};

/// `gpux watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// The market.
    pub market: String,
    /// The delivery hour, UTC (`tomorrow 09:00`, `2026-12-07T09:00Z`, …); without
    /// it, the market's forward curve.
    pub slot: Option<String>,
    /// Stop after this many updates (snapshots not counted); default: until Ctrl-C
    #[arg(long, value_name = "N")]
    pub updates: Option<u64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Conn,
}

/// A book as the feed describes it: price → GPUs, per side.
#[derive(Debug, Default)]
pub struct Book {
    /// Bids.
    pub bids: BTreeMap<Decimal, Decimal>,
    /// Asks.
    pub asks: BTreeMap<Decimal, Decimal>,
    /// The last `seq` applied.
    pub seq: u64,
}

impl Book {
    /// Applies a snapshot (replacing everything) or an update (absolute levels,
    /// zero removes); an update that does not follow the last `seq` is an error.
    pub fn apply(&mut self, msg: &Value) -> Result<(), String> {
        let seq = msg["seq"].as_u64().ok_or("a book message without seq")?;
        if msg["type"] == "snapshot" {
            self.bids.clear();
            self.asks.clear();
        } else if msg["prev_seq"].as_u64() != Some(self.seq) {
            return Err(format!(
                "a gap in the book feed: an update after seq {} expected, got one after {}; watch again",
                self.seq,
                cell(&msg["prev_seq"])
            ));
        }
        for (key, side) in [("bids", &mut self.bids), ("asks", &mut self.asks)] {
            for l in msg[key].as_array().into_iter().flatten() {
                let num = |v: &Value| v.as_str().and_then(|s| Decimal::from_str(s).ok());
                let (Some(p), Some(q)) = (num(&l[0]), num(&l[1])) else {
                    return Err(format!("a book level that is not [price, quantity]: {l}"));
                };
                if q.is_zero() {
                    side.remove(&p);
                } else {
                    side.insert(p, q);
                }
            }
        }
        self.seq = seq;
        match msg["checksum"].as_u64() {
            Some(sum) if sum != u64::from(self.checksum()) => Err(format!(
                "the book rebuilt from the feed does not match the exchange's checksum at seq {seq}; watch again"
            )),
            _ => Ok(()),
        }
    }

    /// The checksum of the top 10 levels (docs/MARKET_DATA.md, "Book checksum").
    pub fn checksum(&self) -> u32 {
        let mut text = String::new();
        for (p, q) in self
            .asks
            .iter()
            .take(10)
            .chain(self.bids.iter().rev().take(10))
        {
            for d in [p, q] {
                let digits = d.to_string().replace('.', "");
                let digits = digits.trim_start_matches('0');
                text.push_str(if digits.is_empty() { "0" } else { digits });
            }
        }
        crc32fast::hash(text.as_bytes())
    }

    /// `bid 2.39 × 1 | ask 2.41 × 4`, the touch.
    pub fn touch(&self) -> String {
        let bid = self.bids.iter().next_back();
        let ask = self.asks.iter().next();
        let side =
            |l: Option<(&Decimal, &Decimal)>| l.map_or("-".into(), |(p, q)| format!("{p} × {q}"));
        format!("bid {} | ask {}", side(bid), side(ask))
    }
}

/// Runs `gpux watch`.
pub fn run(a: &WatchArgs) -> Outcome {
    let api = a.conn.connect()?;
    let channels = match &a.slot {
        Some(s) => {
            let slot = when::show(slot_arg("SLOT", s)?);
            vec![
                format!("book.{}.{slot}", a.market),
                format!("trades.{}.{slot}", a.market),
            ]
        }
        None => vec![format!("curve.{}", a.market)],
    };
    let url = format!("ws{}/v1/ws", api.base().trim_start_matches("http"));
    api.runtime().block_on(stream(&url, &channels, a))
}

async fn stream(url: &str, channels: &[String], a: &WatchArgs) -> Outcome {
    let down = |e: &dyn std::fmt::Display| {
        Failure::new(
            EXIT_UNAVAILABLE,
            format!("the WebSocket at {url}: {e}; is the exchange running, and is --api right?"),
        )
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| down(&e))?;
    for ch in channels {
        let req = json!({"op": "subscribe", "channel": ch}).to_string();
        ws.send(Message::text(req)).await.map_err(|e| down(&e))?;
    }
    let mut book = Book::default();
    let mut updates = 0;
    while a.updates.is_none_or(|n| updates < n) {
        let msg = match ws.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(f))) => {
                return Err(down(&format!("closed by the exchange: {f:?}")))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(down(&e)),
            None => return Err(down(&"closed")),
        };
        let v: Value = serde_json::from_str(&msg)
            .map_err(|e| Failure::new(EXIT_OTHER, format!("not JSON from the exchange: {e}")))?;
        if v["type"] == "error" {
            return Err(refusal(
                400,
                &v,
                None,
                &format!("subscribe {}", cell(&v["channel"])),
            ));
        }
        if v["type"] == "update" {
            updates += 1;
        }
        if a.conn.json {
            print_json(&v);
            continue;
        }
        if let Some(line) = describe(&v, &mut book).map_err(|e| Failure::new(EXIT_OTHER, e))? {
            println!("{line}");
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// A line for people about one frame (`None` for acks).
fn describe(v: &Value, book: &mut Book) -> Result<Option<String>, String> {
    let ch = v["channel"].as_str().unwrap_or("");
    let kind = v["type"].as_str().unwrap_or("");
    if kind != "snapshot" && kind != "update" {
        return Ok(None);
    }
    if ch.starts_with("book.") {
        book.apply(v)?;
        return Ok(Some(format!(
            "{kind:<8} seq {:>6}  {}",
            book.seq,
            book.touch()
        )));
    }
    if ch.starts_with("trades.") {
        let lines: Vec<String> = v["trades"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "trade    seq {:>6}  {} × {} ({} took)",
                    cell(&t["seq"]),
                    cell(&t["price"]),
                    cell(&t["quantity"]),
                    cell(&t["taker_side"])
                )
            })
            .collect();
        return Ok((!lines.is_empty()).then(|| lines.join("\n")));
    }
    let rows: Vec<String> = v["slots"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{kind:<8} {}  bid {}  ask {}  last {}  volume {}",
                cell(&r["slot"]),
                cell(&r["best_bid"]),
                cell(&r["best_ask"]),
                cell(&r["last_price"]),
                cell(&r["volume"])
            )
        })
        .collect();
    Ok((!rows.is_empty()).then(|| rows.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_book_follows_its_feed_and_refuses_a_gap() {
        let mut b = Book::default();
        b.apply(&json!({"type":"snapshot","seq":7,"bids":[["2.30","1.0"]],"asks":[["2.40","4.0"],["2.45","3.0"]]})).unwrap();
        assert_eq!(b.checksum(), crc32fast::hash(b"240402453023010"));
        assert_eq!(b.touch(), "bid 2.30 × 1.0 | ask 2.40 × 4.0");
        b.apply(&json!({"type":"update","seq":8,"prev_seq":7,"bids":[],"asks":[["2.40","0.0"],["2.45","1.5"]]})).unwrap();
        assert_eq!(b.touch(), "bid 2.30 × 1.0 | ask 2.45 × 1.5");
        let e = b
            .apply(&json!({"type":"update","seq":12,"prev_seq":10,"bids":[],"asks":[]}))
            .unwrap_err();
        assert!(e.contains("gap"), "{e}");
    }
}
