//! Market-data test helpers: command envelopes, a WebSocket client that times out
//! instead of hanging, and a client-side L2 mirror that checks the `seq`/`prev_seq`
//! chain exactly as a real client must.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const MARKET: &str = "h100-sxm.us-east";
/// 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600_000_000_000;
pub const SEC: u64 = 1_000_000_000;
/// The delivery slot the tests trade: 2026-01-02T02:00Z, 26 hours after `T0`
/// (its gate closes after every test's last command).
pub const SLOT: u64 = T0 / SEC + 26 * 3_600;
/// `SLOT` as people write it.
pub const SLOT_NAME: &str = "2026-01-02T02:00Z";

/// A command envelope at `ts_ns`.
pub fn env(ts_ns: u64, command: Value) -> Value {
    json!({"v": 3, "ts_ns": ts_ns, "command": command})
}

/// The end-to-end example's market (tick 0.01, lot 0.5, fees 10/25 bp), accounts
/// 1 (provider, 1,000 GPU-hours, 1,000 USD), 2 and 3 (buyers, 100,000 USD each).
pub fn setup_commands() -> Vec<Value> {
    let mut v = vec![env(
        T0,
        json!({"type":"list_market","market":MARKET,"tick_size":"0.01","lot_size":"0.5","maker_fee_bps":10,"taker_fee_bps":25}),
    )];
    for a in [1, 2, 3] {
        v.push(env(T0, json!({"type":"create_account","account":a})));
        v.push(env(
            T0,
            json!({"type":"deposit","account":a,"amount":"100000"}),
        ));
        v.push(env(
            T0,
            json!({"type":"add_capacity","account":a,"market":MARKET,"from_slot":SLOT,"to_slot":SLOT,"quantity":"1000"}),
        ));
    }
    v
}

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub fn dv(v: &Value) -> Decimal {
    d(v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}")))
}

/// Levels `(price, quantity)`, best first: bids, asks.
pub type Depth = (Vec<(Decimal, Decimal)>, Vec<(Decimal, Decimal)>);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client whose reads time out (a test never hangs).
pub struct Client {
    pub ws: Ws,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Client { ws }
    }

    /// Connects with `Authorization: Bearer key`; `Err(status)` when refused.
    pub async fn connect_with_key(url: &str, key: Option<&str>) -> Result<Client, u16> {
        let mut req = url.into_client_request().unwrap();
        if let Some(k) = key {
            req.headers_mut()
                .insert("authorization", format!("Bearer {k}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Client { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("ws connect: {e}"),
        }
    }

    /// Connects over a socket with a small receive buffer (slow-reader tests).
    pub async fn connect_small_buffer(url: &str, recv_buffer: u32) -> Client {
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(recv_buffer).unwrap();
        let stream = sock.connect(addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("ws handshake");
        Client { ws }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    /// The next frame, whatever it is (`None`: the stream ended).
    pub async fn next_frame(&mut self) -> Option<Message> {
        match tokio::time::timeout(Duration::from_secs(20), self.ws.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("no frame within 20 s"),
        }
    }

    /// The next JSON text message (pings and pongs skipped). Panics on close.
    pub async fn recv(&mut self) -> Value {
        loop {
            match self.next_frame().await {
                Some(Message::Text(t)) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Message::Ping(_)) | Some(Message::Pong(_)) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Reads until a message satisfies `pred` and returns it.
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let v = self.recv().await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// Sends a request and returns the reply (ack or error) to it.
    pub async fn request(&mut self, v: Value) -> Value {
        self.send(v).await;
        self.recv_until(|m| {
            matches!(
                m["type"].as_str(),
                Some("subscribed" | "unsubscribed" | "authenticated" | "pong" | "error")
            )
        })
        .await
    }

    /// Reads until the close frame; its code and reason (`None`: ended without one).
    pub async fn closed(&mut self) -> Option<(u16, String)> {
        loop {
            match self.next_frame().await {
                Some(Message::Close(Some(f))) => {
                    return Some((u16::from(f.code), f.reason.as_str().to_string()))
                }
                Some(Message::Close(None)) | None => return None,
                Some(_) => continue,
            }
        }
    }
}

pub fn close_code(c: CloseCode) -> u16 {
    u16::from(c)
}

/// A client's L2 book for one market, rebuilt from a snapshot and updates.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BookMirror {
    pub bids: BTreeMap<Decimal, Decimal>,
    pub asks: BTreeMap<Decimal, Decimal>,
    pub seq: u64,
    pub snapshots: usize,
    pub updates: usize,
    pub synced: bool,
    /// Messages whose `checksum` matched the rebuilt book.
    pub checksums: usize,
}

/// The book checksum as docs/MARKET_DATA.md defines it, written from the doc: CRC-32
/// of the best 10 asks (lowest first) then the best 10 bids (highest first), each
/// level's price then quantity with the decimal point removed and leading zeros
/// stripped.
pub fn doc_checksum(asks: &[(Decimal, Decimal)], bids: &[(Decimal, Decimal)]) -> u32 {
    let mut text = String::new();
    for (p, q) in asks.iter().take(10).chain(bids.iter().take(10)) {
        for d in [p, q] {
            let digits = d.to_string().replace('.', "");
            let digits = digits.trim_start_matches('0');
            text.push_str(if digits.is_empty() { "0" } else { digits });
        }
    }
    crc32fast::hash(text.as_bytes())
}

fn set_levels(side: &mut BTreeMap<Decimal, Decimal>, levels: &Value) {
    for l in levels.as_array().unwrap() {
        let (p, q) = (dv(&l[0]), dv(&l[1]));
        if q.is_zero() {
            side.remove(&p);
        } else {
            side.insert(p, q);
        }
    }
}

impl BookMirror {
    /// Applies a `book.*` message; an update that does not continue the chain is an
    /// error (the gap a client must detect).
    pub fn apply(&mut self, m: &Value) -> Result<(), String> {
        match m["type"].as_str() {
            Some("snapshot") => {
                self.bids.clear();
                self.asks.clear();
                set_levels(&mut self.bids, &m["bids"]);
                set_levels(&mut self.asks, &m["asks"]);
                self.seq = m["seq"].as_u64().unwrap();
                self.snapshots += 1;
                self.synced = true;
                Ok(())
            }
            Some("update") => {
                let prev = m["prev_seq"].as_u64().unwrap();
                let seq = m["seq"].as_u64().unwrap();
                if !self.synced || prev != self.seq {
                    return Err(format!(
                        "gap: update prev_seq {prev} after seq {} (synced: {})",
                        self.seq, self.synced
                    ));
                }
                if seq < prev {
                    return Err(format!("seq {seq} before prev_seq {prev}"));
                }
                set_levels(&mut self.bids, &m["bids"]);
                set_levels(&mut self.asks, &m["asks"]);
                self.seq = seq;
                self.updates += 1;
                Ok(())
            }
            other => Err(format!("not a book message: {other:?}")),
        }?;
        if let Some(sum) = m["checksum"].as_u64() {
            let (bids, asks) = self.as_depth();
            let mine = doc_checksum(&asks, &bids);
            if u64::from(mine) != sum {
                return Err(format!(
                    "checksum {sum} at seq {}, but the rebuilt book's is {mine}",
                    self.seq
                ));
            }
            self.checksums += 1;
        }
        Ok(())
    }

    /// The book as REST depth writes it: bids best first, asks best first.
    pub fn as_depth(&self) -> Depth {
        (
            self.bids.iter().rev().map(|(p, q)| (*p, *q)).collect(),
            self.asks.iter().map(|(p, q)| (*p, *q)).collect(),
        )
    }
}

/// REST depth's levels as decimals.
pub fn depth_levels(v: &Value) -> Depth {
    let side = |s: &Value| {
        s.as_array()
            .unwrap()
            .iter()
            .map(|l| (dv(&l[0]), dv(&l[1])))
            .collect()
    };
    (side(&v["bids"]), side(&v["asks"]))
}
