//! The JSON shapes of market data, shared by REST and the WebSocket: L2 levels,
//! trades, tickers, candles, private order updates and fills, acks and errors.
//!
//! Prices and quantities are decimal strings at the market's tick and lot scale
//! (as in `docs/PROTOCOL.md`); every shape is documented in `docs/MARKET_DATA.md`.
//! A message is serialized once ([`to_text`]) and the same bytes are shared by every
//! subscriber.

use axum::extract::ws::Utf8Bytes;
use gpux_engine::market::MarketSpec;
use gpux_engine::{AccountId, Event, MarketId, OrderId, Side, TradeId};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use super::stats::{Candle, TradeRec, Window24h};

/// A decimal written as a JSON string without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec(pub Decimal);

impl Serialize for Dec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A delivery slot (unix seconds) written as people write it,
/// `2026-12-07T09:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotName(pub u64);

impl Serialize for SlotName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&gpux_engine::slot::format_slot(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for SlotName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        gpux_engine::slot::parse_slot(&s)
            .map(SlotName)
            .map_err(serde::de::Error::custom)
    }
}

/// One L2 level as `[price, quantity]`.
pub type Level = (Dec, Dec);

/// Converts `(ticks, lots)` levels to decimal levels.
pub fn levels(spec: &MarketSpec, raw: impl Iterator<Item = (i64, u64)>) -> Vec<Level> {
    raw.map(|(p, q)| (Dec(spec.price(p)), Dec(spec.quantity(q))))
        .collect()
}

/// L2 depth: a REST response, a book snapshot or a book update.
#[derive(Debug, Serialize)]
pub struct BookMsg<'a> {
    /// `snapshot` / `update` on the WebSocket; absent over REST.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// `book.<market>.<slot>` on the WebSocket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// The market.
    pub market: &'a str,
    /// The delivery slot.
    pub slot: SlotName,
    /// `cmd_seq` of the last command whose changes this includes.
    pub seq: u64,
    /// Updates only: `seq` of the previous message of this book.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_seq: Option<u64>,
    /// Bids, best (highest) first.
    pub bids: Vec<Level>,
    /// Asks, best (lowest) first.
    pub asks: Vec<Level>,
    /// On the WebSocket: the [`checksum`] of the book's top levels after this
    /// message is applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<u32>,
}

/// Levels per side the book checksum covers.
pub const CHECKSUM_LEVELS: usize = 10;

/// The book checksum (documented in docs/MARKET_DATA.md): CRC-32 (IEEE, as zlib's
/// `crc32`) of the concatenation, for the best [`CHECKSUM_LEVELS`] asks (lowest
/// first) then the best bids (highest first), of each level's price then quantity
/// as the feed writes them, with the decimal point removed and leading zeros
/// stripped (`"2.40"` → `240`, `"0.5"` → `5`). An empty book's is CRC-32 of
/// nothing, 0.
pub fn checksum(levels_asks: &[Level], levels_bids: &[Level]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for l in levels_asks
        .iter()
        .take(CHECKSUM_LEVELS)
        .chain(levels_bids.iter().take(CHECKSUM_LEVELS))
    {
        for d in [l.0 .0, l.1 .0] {
            let digits: String = d.to_string().chars().filter(|c| *c != '.').collect();
            let trimmed = digits.trim_start_matches('0');
            h.update(if trimmed.is_empty() {
                b"0"
            } else {
                trimmed.as_bytes()
            });
        }
    }
    h.finalize()
}

/// The checksum of `book`'s top levels at `spec`'s scales.
pub fn book_checksum(spec: &MarketSpec, book: &super::book::L2Book) -> u32 {
    checksum(
        &levels(spec, book.levels(Side::Sell, CHECKSUM_LEVELS)),
        &levels(spec, book.levels(Side::Buy, CHECKSUM_LEVELS)),
    )
}

/// Milliseconds since the epoch of a nanosecond timestamp (rounded down): the
/// `*_ms` field the API answers next to every `*_ns` one, for traders' libraries
/// that count in milliseconds.
pub fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

/// A book's `seq` in a [`Heartbeat`].
#[derive(Debug, Serialize)]
pub struct BookBeat<'a> {
    /// `book.<market>.<slot>`.
    pub channel: &'a str,
    /// The `seq` of the last book message sent for it.
    pub seq: u64,
}

/// `{"type":"heartbeat","ts_ns","ts_ms","books":[{"channel","seq"},…]}`: every
/// book heartbeat interval, to each connection subscribed to books.
#[derive(Debug, Serialize)]
pub struct Heartbeat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The latest committed timestamp.
    pub ts_ns: u64,
    /// The same, in milliseconds.
    pub ts_ms: u64,
    /// Every subscribed book, in subscription order.
    pub books: Vec<BookBeat<'a>>,
}

impl<'a> Heartbeat<'a> {
    /// The heartbeat at committed time `ts_ns`.
    pub fn new(ts_ns: u64, books: Vec<BookBeat<'a>>) -> Self {
        Heartbeat {
            kind: "heartbeat",
            ts_ns,
            ts_ms: ms(ts_ns),
            books,
        }
    }
}

/// One public trade.
#[derive(Debug, Serialize)]
pub struct TradeJson {
    /// The engine's trade id.
    pub trade: TradeId,
    /// The command that traded.
    pub seq: u64,
    /// Committed timestamp.
    pub ts_ns: u64,
    /// The same, in milliseconds (`ts_ns / 1e6`, rounded down).
    pub ts_ms: u64,
    /// The maker's price.
    pub price: Dec,
    /// GPU-hours.
    pub quantity: Dec,
    /// The incoming order's side.
    pub taker_side: Side,
}

impl TradeJson {
    /// A trade record at its market's scales.
    pub fn new(spec: &MarketSpec, t: &TradeRec) -> Self {
        Self {
            trade: t.trade,
            seq: t.seq,
            ts_ns: t.ts_ns,
            ts_ms: ms(t.ts_ns),
            price: Dec(spec.price(t.price_ticks)),
            quantity: Dec(spec.quantity(t.lots)),
            taker_side: t.taker_side,
        }
    }
}

/// Recent trades: a REST response, a trades snapshot or a trades update.
#[derive(Debug, Serialize)]
pub struct TradesMsg<'a> {
    /// `snapshot` / `update` on the WebSocket; absent over REST.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// `trades.<market>.<slot>` on the WebSocket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// The market.
    pub market: &'a str,
    /// The delivery slot.
    pub slot: SlotName,
    /// Oldest first.
    pub trades: Vec<TradeJson>,
}

/// A page of a book's trades over REST.
#[derive(Debug, Serialize)]
pub struct TradesPage<'a> {
    /// The market.
    pub market: &'a str,
    /// The delivery slot.
    pub slot: SlotName,
    /// Oldest first.
    pub trades: Vec<TradeJson>,
    /// Older trades are kept: pass this as `before` for the page before this one
    /// (the oldest trade of this page); `null` on the oldest page kept.
    pub next_before: Option<u64>,
}

/// The ticker's numbers, in integer units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickerVal {
    /// Last command reflected.
    pub seq: u64,
    /// Committed time the 24h window ends at.
    pub ts_ns: u64,
    /// Best bid `(ticks, lots)`.
    pub best_bid: Option<(i64, u64)>,
    /// Best ask `(ticks, lots)`.
    pub best_ask: Option<(i64, u64)>,
    /// The last trade.
    pub last: Option<TradeRec>,
    /// 24h figures.
    pub day: Window24h,
    /// Lots traded in the book since it opened.
    pub total_lots: u64,
}

impl TickerVal {
    /// Whether anything but the time and sequence differs.
    pub fn same_figures(&self, other: &TickerVal) -> bool {
        self.best_bid == other.best_bid
            && self.best_ask == other.best_ask
            && self.last.map(|t| t.trade) == other.last.map(|t| t.trade)
            && self.day == other.day
    }
}

/// A ticker: REST response, or snapshot/update on the WebSocket.
#[derive(Debug, Serialize)]
pub struct TickerMsg<'a> {
    /// `snapshot` / `update` on the WebSocket; absent over REST.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// `ticker.<market>.<slot>` on the WebSocket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// The market.
    pub market: &'a str,
    /// The delivery slot.
    pub slot: SlotName,
    /// Last command reflected.
    pub seq: u64,
    /// Committed time the 24h figures end at.
    pub ts_ns: u64,
    /// The same, in milliseconds.
    pub ts_ms: u64,
    /// Highest bid.
    pub best_bid: Option<Dec>,
    /// GPU-hours at the highest bid.
    pub best_bid_quantity: Option<Dec>,
    /// Lowest ask.
    pub best_ask: Option<Dec>,
    /// GPU-hours at the lowest ask.
    pub best_ask_quantity: Option<Dec>,
    /// Price of the last trade ever.
    pub last_price: Option<Dec>,
    /// Quantity of the last trade.
    pub last_quantity: Option<Dec>,
    /// Committed time of the last trade.
    pub last_ts_ns: Option<u64>,
    /// The same, in milliseconds.
    pub last_ts_ms: Option<u64>,
    /// First price in the 24h window.
    pub open_24h: Option<Dec>,
    /// Highest price in the 24h window.
    pub high_24h: Option<Dec>,
    /// Lowest price in the 24h window.
    pub low_24h: Option<Dec>,
    /// GPU-hours traded in the 24h window.
    pub volume_24h: Dec,
    /// Trades in the 24h window.
    pub trades_24h: u64,
}

impl<'a> TickerMsg<'a> {
    /// The message for `v` at the market's scales.
    pub fn new(
        spec: &MarketSpec,
        (market, slot): (&'a str, u64),
        kind: Option<&'static str>,
        channel: Option<&'a str>,
        v: &TickerVal,
    ) -> Self {
        let p = |t: i64| Dec(spec.price(t));
        let q = |l: u64| Dec(spec.quantity(l));
        Self {
            kind,
            channel,
            market,
            slot: SlotName(slot),
            seq: v.seq,
            ts_ns: v.ts_ns,
            ts_ms: ms(v.ts_ns),
            best_bid: v.best_bid.map(|(t, _)| p(t)),
            best_bid_quantity: v.best_bid.map(|(_, l)| q(l)),
            best_ask: v.best_ask.map(|(t, _)| p(t)),
            best_ask_quantity: v.best_ask.map(|(_, l)| q(l)),
            last_price: v.last.map(|t| p(t.price_ticks)),
            last_quantity: v.last.map(|t| q(t.lots)),
            last_ts_ns: v.last.map(|t| t.ts_ns),
            last_ts_ms: v.last.map(|t| ms(t.ts_ns)),
            open_24h: v.day.open.map(p),
            high_24h: v.day.high.map(p),
            low_24h: v.day.low.map(p),
            volume_24h: q(v.day.volume_lots),
            trades_24h: v.day.trades,
        }
    }
}

/// One slot on a market's forward curve.
#[derive(Debug, Serialize)]
pub struct CurveRow {
    /// The delivery slot.
    pub slot: SlotName,
    /// Highest bid.
    pub best_bid: Option<Dec>,
    /// Lowest ask.
    pub best_ask: Option<Dec>,
    /// Price of the slot's last trade.
    pub last_price: Option<Dec>,
    /// GPU-hours traded in the slot so far.
    pub volume: Dec,
    /// Updates only: the slot's gate closed; it has left the curve.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
}

impl CurveRow {
    /// The row of `slot` from its ticker figures.
    pub fn new(spec: &MarketSpec, slot: u64, v: &TickerVal, closed: bool) -> Self {
        Self {
            slot: SlotName(slot),
            best_bid: v.best_bid.map(|(t, _)| Dec(spec.price(t))),
            best_ask: v.best_ask.map(|(t, _)| Dec(spec.price(t))),
            last_price: v.last.map(|t| Dec(spec.price(t.price_ticks))),
            volume: Dec(spec.quantity(v.total_lots)),
            closed,
        }
    }
}

/// A market's forward curve: a REST response, or a `curve.<market>` snapshot
/// (every open slot) or update (the slots that changed).
#[derive(Debug, Serialize)]
pub struct CurveMsg<'a> {
    /// `snapshot` / `update` on the WebSocket; absent over REST.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// `curve.<market>` on the WebSocket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// The market.
    pub market: &'a str,
    /// Slots in order.
    pub slots: Vec<CurveRow>,
}

/// One candle.
#[derive(Debug, Serialize)]
pub struct CandleJson {
    /// Start of the interval, ns since the epoch.
    pub open_ns: u64,
    /// The same, in milliseconds.
    pub open_ms: u64,
    /// First price.
    pub open: Dec,
    /// Highest price.
    pub high: Dec,
    /// Lowest price.
    pub low: Dec,
    /// Last price.
    pub close: Dec,
    /// GPU-hours traded.
    pub volume: Dec,
    /// Number of trades.
    pub trades: u64,
}

impl CandleJson {
    /// A candle at its market's scales.
    pub fn new(spec: &MarketSpec, c: &Candle) -> Self {
        let p = |t: i64| Dec(spec.price(t));
        Self {
            open_ns: c.open_ns,
            open_ms: ms(c.open_ns),
            open: p(c.open),
            high: p(c.high),
            low: p(c.low),
            close: p(c.close),
            volume: Dec(spec.quantity(c.volume_lots)),
            trades: c.trades,
        }
    }
}

/// A REST candles response.
#[derive(Debug, Serialize)]
pub struct CandlesMsg<'a> {
    /// The market.
    pub market: &'a str,
    /// The delivery slot.
    pub slot: SlotName,
    /// `1m` or `1h`.
    pub interval: &'static str,
    /// Oldest first.
    pub candles: Vec<CandleJson>,
}

/// A fill of the subscriber's own order (the counterparty is never named).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fill {
    /// The engine's trade id.
    pub trade: TradeId,
    /// The market.
    pub market: MarketId,
    /// The delivery slot.
    pub slot: SlotName,
    /// The subscriber's order.
    pub order: OrderId,
    /// Its side.
    pub side: Side,
    /// `maker` (it rested) or `taker` (it arrived).
    pub liquidity: &'static str,
    /// Trade price.
    pub price: Dec,
    /// GPU-hours filled.
    pub quantity: Dec,
    /// USD fee the subscriber paid on this fill.
    pub fee: Dec,
    /// The order's quantity still open after this fill.
    pub remaining: Dec,
}

/// One private message for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateMsg {
    /// Who it is for.
    pub account: AccountId,
    /// The command that produced it.
    pub seq: u64,
    /// Its committed timestamp.
    pub ts_ns: u64,
    /// What happened.
    pub body: PrivateBody,
}

/// The body of a [`PrivateMsg`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateBody {
    /// One of the account's own order events, as the protocol writes it.
    Order(Event),
    /// A fill of one of its orders.
    Fill(Fill),
    /// A delivery event naming it as provider or holder (scheduled, reported,
    /// disputed, a trade of it settled, settled), as the protocol writes it.
    Delivery(Event),
}

#[derive(Serialize)]
struct PrivateJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: &'static str,
    seq: u64,
    ts_ns: u64,
    ts_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fill: Option<&'a Fill>,
}

impl PrivateMsg {
    /// Its JSON text.
    pub fn to_text(&self) -> Utf8Bytes {
        let (kind, event, fill) = match &self.body {
            PrivateBody::Order(e) => ("order", Some(e), None),
            PrivateBody::Fill(f) => ("fill", None, Some(f)),
            PrivateBody::Delivery(e) => ("delivery", Some(e), None),
        };
        to_text(&PrivateJson {
            kind,
            channel: "orders",
            seq: self.seq,
            ts_ns: self.ts_ns,
            ts_ms: ms(self.ts_ns),
            event,
            fill,
        })
    }
}

/// A reply to a request: ack or error. `id` echoes the request's `id`.
#[derive(Debug, Serialize)]
pub struct Reply<'a> {
    /// `subscribed`, `unsubscribed`, `authenticated`, `pong` or `error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The channel the request named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// The authenticated account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    /// Errors: stable code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// Errors: explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    /// The request's `id`, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a serde_json::Value>,
}

impl<'a> Reply<'a> {
    /// An ack of kind `kind`.
    pub fn ack(
        kind: &'static str,
        channel: Option<&'a str>,
        id: Option<&'a serde_json::Value>,
    ) -> Self {
        Self {
            kind,
            channel,
            account: None,
            code: None,
            message: None,
            id,
        }
    }

    /// An error.
    pub fn error(
        code: &'static str,
        message: &'a str,
        channel: Option<&'a str>,
        id: Option<&'a serde_json::Value>,
    ) -> Self {
        Self {
            kind: "error",
            channel,
            account: None,
            code: Some(code),
            message: Some(message),
            id,
        }
    }
}

/// Serializes a message once, as WebSocket text.
pub fn to_text<T: Serialize>(msg: &T) -> Utf8Bytes {
    // Serializing these types cannot fail (no maps with non-string keys, no I/O).
    Utf8Bytes::from(serde_json::to_string(msg).expect("market data always encodes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(p: &str, q: &str) -> Level {
        (Dec(p.parse().unwrap()), Dec(q.parse().unwrap()))
    }

    #[test]
    fn the_checksum_is_crc32_of_the_digits_asks_then_bids() {
        let asks = [l("2.40", "4.0"), l("2.45", "3.0")];
        let bids = [l("2.30", "0.5")];
        // "240" "40" "245" "30" "230" "5"
        assert_eq!(checksum(&asks, &bids), crc32fast::hash(b"24040245302305"));
        assert_eq!(checksum(&[], &[]), 0);
        let many: Vec<Level> = (1..=12).map(|i| l(&format!("{i}.00"), "1.0")).collect();
        let ten: String = (1..=10).map(|i| format!("{i}0010")).collect();
        assert_eq!(checksum(&many, &[]), crc32fast::hash(ten.as_bytes()));
    }
}
