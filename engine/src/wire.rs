//! Events as compact bytes: the ledger's event payloads.
//!
//! The ledger stores every event the engine emits, and replay and recovery re-run
//! the engine and compare each re-produced event's bytes with the stored ones. As
//! protocol JSON that cost an encode per event (decimals to strings, keys, escapes),
//! ~250 bytes copied and hashed per event, and a JSON parse for every reader. This
//! encoding is what the ledger holds instead (`docs/LEDGER_FORMAT.md` § Event
//! payloads is its specification): a variant tag, then the event's fields in the
//! order its JSON lists them, integers as LEB128 varints, decimals as sign, scale and
//! mantissa. JSON stays the protocol at the edges (the events topic, REST,
//! WebSocket, `replay export`): [`Event::from_bytes`] then [`Event::to_json_vec`]
//! gives exactly the JSON the engine would have written, scale included.
//!
//! The encoding is canonical: the engine's events encode one way only, and
//! [`Event::from_bytes`] refuses anything [`Event::encode`] would not write
//! (overlong varints, unknown tags or codes, bytes left over), so equal bytes mean
//! equal events and a decoded event encodes back to the same bytes.

use crate::command::{CommandKind, DecodeError, KeyDigest, KeyScope};
use crate::event::{
    AccountCreated, ApiKeyAdded, ApiKeyRevoked, CapacityMoved, CashMoved, DeliveryDisputed,
    DeliveryReported, DeliveryScheduled, DeliverySettled, DuplicateRequest, Event,
    InventoryExpired, MarketListed, MassCancelled, OrderAccepted, OrderAmended, OrderCancelled,
    OrderRested, Rejection, SettlementBasis, SlotClosed, TradeExecuted, TradeSettled,
};
use crate::reject::RejectReason;
use crate::types::{CancelReason, ClientOrderId, MarketId, OrderType, Side, StpMode, TimeInForce};
use rust_decimal::Decimal;

/// Reads an encoded event front to back.
struct Reader<'a> {
    bytes: &'a [u8],
}

fn err(what: impl Into<String>) -> DecodeError {
    DecodeError(format!("stored event: {}", what.into()))
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.bytes.split_first().ok_or_else(|| err("truncated"))?;
        self.bytes = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(err("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// An unsigned LEB128 varint of at most `bits` bits, in its shortest form.
    fn varint(&mut self, bits: u32) -> Result<u128, DecodeError> {
        let mut v: u128 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            let part = u128::from(b & 0x7f);
            if shift >= bits || (bits - shift < 7 && part >> (bits - shift) != 0) {
                return Err(err(format!("varint wider than {bits} bits")));
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(err("varint not in its shortest form"));
                }
                return Ok(v);
            }
            shift += 7;
        }
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint(32)? as usize;
        if n > self.bytes.len() {
            return Err(err("length beyond the end"));
        }
        Ok(n)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One field's encoding.
trait Wire: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

impl Wire for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(out, u128::from(*self));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.varint(64)? as u64)
    }
}

impl Wire for u32 {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(out, u128::from(*self));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.varint(32)? as u32)
    }
}

impl Wire for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(err(format!("bool byte {b}"))),
        }
    }
}

/// Sign and scale in one byte (bit 7 the sign, bits 0–6 the scale, 0 to 28), then
/// the mantissa's magnitude as a varint of at most 96 bits: `-0.50` is
/// `0x82, 50`. Exactly the decimal the engine held, scale and sign included.
impl Wire for Decimal {
    fn put(&self, out: &mut Vec<u8>) {
        let sign = if self.is_sign_negative() { 0x80 } else { 0 };
        out.push(sign | self.scale() as u8);
        put_varint(out, self.mantissa().unsigned_abs());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let head = r.byte()?;
        let scale = u32::from(head & 0x7f);
        if scale > 28 {
            return Err(err(format!("decimal scale {scale}")));
        }
        let m = r.varint(96)?;
        let mut d = Decimal::from_parts(m as u32, (m >> 32) as u32, (m >> 64) as u32, false, scale);
        // Set apart: `from_parts` drops the sign of a zero, and `-0` is a decimal
        // the engine can hold (and whose JSON is "-0").
        d.set_sign_negative(head & 0x80 != 0);
        Ok(d)
    }
}

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u128);
        out.extend_from_slice(self.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.len()?;
        let b = r.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| err("text is not UTF-8"))
    }
}

macro_rules! wire_inline_id {
    ($($ty:ident),*) => {$(
        impl Wire for $ty {
            fn put(&self, out: &mut Vec<u8>) {
                let s = self.as_str();
                put_varint(out, s.len() as u128);
                out.extend_from_slice(s.as_bytes());
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let n = r.len()?;
                let s = std::str::from_utf8(r.take(n)?).map_err(|_| err("id is not UTF-8"))?;
                $ty::new(s).map_err(|e| err(e.to_string()))
            }
        }
    )*};
}
wire_inline_id!(MarketId, ClientOrderId);

impl Wire for KeyDigest {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut d = [0u8; 32];
        d.copy_from_slice(r.take(32)?);
        Ok(KeyDigest(d))
    }
}

/// A reason's stable numeric code (`docs/PROTOCOL.md`), as a varint.
impl Wire for RejectReason {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(out, u128::from(self.number()));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.varint(16)? as u16;
        RejectReason::ALL
            .iter()
            .copied()
            .find(|x| x.number() == n)
            .ok_or_else(|| err(format!("reject code {n}")))
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.put(out);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.byte()? {
            0 => Ok(None),
            1 => T::get(r).map(Some),
            b => Err(err(format!("option byte {b}"))),
        }
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u128);
        for v in self {
            v.put(out);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // Every element takes at least one byte, so `len` bounds the allocation.
        let n = r.len()?;
        (0..n).map(|_| T::get(r)).collect()
    }
}

/// Fieldless enums: one byte per variant, the codes `docs/LEDGER_FORMAT.md` lists.
macro_rules! wire_enum {
    ($($ty:ident { $($v:ident = $n:literal),* $(,)? })*) => {$(
        impl Wire for $ty {
            fn put(&self, out: &mut Vec<u8>) {
                out.push(match self { $($ty::$v => $n,)* });
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                match r.byte()? {
                    $($n => Ok($ty::$v),)*
                    b => Err(err(format!(concat!(stringify!($ty), " code {}"), b))),
                }
            }
        }
    )*};
}

wire_enum! {
    Side { Buy = 0, Sell = 1 }
    OrderType { Limit = 0, Market = 1 }
    TimeInForce { Gtc = 0, Ioc = 1, Fok = 2, Gtd = 3 }
    StpMode { CancelTaker = 0, CancelMaker = 1, CancelBoth = 2, None = 3 }
    CancelReason {
        UserRequested = 0, IocRemainder = 1, MarketRemainder = 2, SelfTradePrevention = 3,
        Expired = 4, MassCancel = 5, MatchLimit = 6, SlotClosed = 7,
    }
    KeyScope { Full = 0, Trade = 1, Read = 2 }
    SettlementBasis { Unreported = 0, Reported = 1, Resolved = 2 }
    CommandKind {
        ListMarket = 0, CreateAccount = 1, Deposit = 2, Withdraw = 3, AddCapacity = 4,
        RemoveCapacity = 5, PlaceOrder = 6, CancelOrder = 7, AmendOrder = 8, MassCancel = 9,
        Tick = 10, DeliveryReport = 11, Dispute = 12, ResolveDispute = 13, AddApiKey = 14,
        RevokeApiKey = 15, Unknown = 16,
    }
}

/// Field names in encoding order, for the tests that hold the encoding to the
/// JSON's field order and to `docs/LEDGER_FORMAT.md`.
#[cfg(test)]
trait Fields {
    const FIELDS: &'static [&'static str];
}

/// Structs: every field, in the order listed (the struct's, which is its JSON's).
/// Destructuring without `..` makes a field added to the struct and not here a
/// compile error.
macro_rules! wire_struct {
    ($($ty:ident { $($f:ident),* $(,)? })*) => {$(
        impl Wire for $ty {
            fn put(&self, out: &mut Vec<u8>) {
                let $ty { $($f),* } = self;
                $($f.put(out);)*
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok($ty { $($f: Wire::get(r)?),* })
            }
        }
        #[cfg(test)]
        impl Fields for $ty {
            const FIELDS: &'static [&'static str] = &[$(stringify!($f)),*];
        }
    )*};
}

wire_struct! {
    MarketListed {
        market, tick_size, lot_size, maker_fee_bps, taker_fee_bps, min_price, max_price,
        max_order_quantity, slot_horizon_hours, gate_closure_secs, report_window_secs,
        dispute_window_secs,
    }
    AccountCreated { account }
    CashMoved { account, amount, available }
    CapacityMoved { account, market, from_slot, to_slot, quantity }
    OrderAccepted {
        order, account, market, slot, to_slot, colocate, side, order_type, price, quantity,
        time_in_force, good_till_ns, post_only, stp, client_order_id,
    }
    Rejection { command, account, market, order, client_order_id, reason }
    TradeExecuted {
        trade, market, slot, price, quantity, taker_side, maker_order, maker_account,
        taker_order, taker_account, maker_fee, taker_fee, maker_remaining, taker_remaining,
    }
    OrderRested { order, account, market, slot, side, price, quantity }
    OrderCancelled { order, account, market, slot, side, price, quantity, reason, resting }
    OrderAmended {
        order, account, market, slot, side, old_price, old_quantity, price, quantity,
        priority_kept,
    }
    MassCancelled { account, market, slot, count }
    DuplicateRequest { request_id, original_cmd_seq }
    DeliveryScheduled {
        entry, market, slot, provider, holder, quantity, trades, report_until, dispute_until,
    }
    InventoryExpired { account, market, slot, quantity }
    SlotClosed { market, slot, scheduled, expired }
    DeliveryReported { entry, provider, market, slot, delivered }
    DeliveryDisputed { entry, holder, market, slot, received, reported }
    TradeSettled { entry, trade, buyer, seller, quantity, delivered, paid, refunded, fees }
    DeliverySettled {
        entry, market, slot, provider, holder, quantity, delivered, basis, dispute_lost, paid,
        refunded, fees,
    }
    ApiKeyAdded { account, api_key_sha256, scope }
    ApiKeyRevoked { account, api_key_sha256 }
}

/// The variants and their tags, the first byte of every encoded event.
macro_rules! wire_events {
    ($($tag:literal => $v:ident($ty:ident)),* $(,)?) => {
        impl Event {
            /// Appends the event's ledger encoding (`docs/LEDGER_FORMAT.md` § Event
            /// payloads) to `out`.
            pub fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $(Event::$v(e) => {
                        out.push($tag);
                        e.put(out);
                    })*
                }
            }

            /// Decodes one event from exactly `bytes` (its ledger encoding).
            pub fn from_bytes(bytes: &[u8]) -> Result<Event, DecodeError> {
                let mut r = Reader { bytes };
                let event = match r.byte()? {
                    $($tag => Event::$v(Wire::get(&mut r)?),)*
                    t => return Err(err(format!("unknown event tag {t}"))),
                };
                if !r.bytes.is_empty() {
                    return Err(err(format!("{} bytes after the event", r.bytes.len())));
                }
                Ok(event)
            }
        }

        /// `(tag, variant name, fields)` of every variant, in tag order.
        #[cfg(test)]
        const VARIANTS: &[(u8, &str, &[&str])] =
            &[$(($tag, stringify!($v), <$ty as Fields>::FIELDS)),*];
    };
}

wire_events! {
    1 => MarketListed(MarketListed),
    2 => AccountCreated(AccountCreated),
    3 => Deposited(CashMoved),
    4 => Withdrawn(CashMoved),
    5 => CapacityAdded(CapacityMoved),
    6 => CapacityRemoved(CapacityMoved),
    7 => OrderAccepted(OrderAccepted),
    8 => OrderRejected(Rejection),
    9 => CommandRejected(Rejection),
    10 => TradeExecuted(TradeExecuted),
    11 => OrderRested(OrderRested),
    12 => OrderCancelled(OrderCancelled),
    13 => OrderAmended(OrderAmended),
    14 => MassCancelled(MassCancelled),
    15 => DuplicateRequest(DuplicateRequest),
    16 => DeliveryScheduled(DeliveryScheduled),
    17 => InventoryExpired(InventoryExpired),
    18 => SlotClosed(SlotClosed),
    19 => DeliveryReported(DeliveryReported),
    20 => DeliveryDisputed(DeliveryDisputed),
    21 => TradeSettled(TradeSettled),
    22 => DeliverySettled(DeliverySettled),
    23 => ApiKeyAdded(ApiKeyAdded),
    24 => ApiKeyRevoked(ApiKeyRevoked),
}

impl Event {
    /// The event's ledger encoding as a new vector (see [`Event::encode`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One event of every variant, every optional field present, in JSON.
    const SAMPLES: &[&str] = &[
        r#"{"type":"market_listed","market":"h100-sxm.us-east","tick_size":"0.01","lot_size":"1","maker_fee_bps":2,"taker_fee_bps":5,"min_price":"0.01","max_price":"100.00","max_order_quantity":"10000","slot_horizon_hours":168,"gate_closure_secs":300,"report_window_secs":3600,"dispute_window_secs":7200}"#,
        r#"{"type":"account_created","account":7}"#,
        r#"{"type":"deposited","account":7,"amount":"1000.000000","available":"1000.000000"}"#,
        r#"{"type":"withdrawn","account":7,"amount":"-0.50","available":"0"}"#,
        r#"{"type":"capacity_added","account":7,"market":"h100-sxm.us-east","from_slot":1796637600,"to_slot":1796641200,"quantity":"8"}"#,
        r#"{"type":"capacity_removed","account":7,"market":"h100-sxm.us-east","from_slot":1796637600,"to_slot":1796637600,"quantity":"2"}"#,
        r#"{"type":"order_accepted","order":18446744073709551615,"account":7,"market":"h100-sxm.us-east","slot":1796637600,"to_slot":1796641200,"colocate":true,"side":"buy","order_type":"limit","price":"2.35","quantity":"8","time_in_force":"gtd","good_till_ns":1796637000000000000,"post_only":true,"stp":"cancel_both","client_order_id":"my-order:1"}"#,
        r#"{"type":"order_rejected","command":"place_order","account":7,"market":"h100-sxm.us-east","order":3,"client_order_id":"c-1","reason":"insufficient_funds"}"#,
        r#"{"type":"command_rejected","command":"deposit","account":7,"market":"h100-sxm.us-east","order":3,"client_order_id":"c-2","reason":"unknown_account"}"#,
        r#"{"type":"trade_executed","trade":9,"market":"h100-sxm.us-east","slot":1796637600,"price":"2.35","quantity":"4","taker_side":"sell","maker_order":3,"maker_account":7,"taker_order":4,"taker_account":8,"maker_fee":"0.001880","taker_fee":"0.004700","maker_remaining":"4","taker_remaining":"0"}"#,
        r#"{"type":"order_rested","order":3,"account":7,"market":"h100-sxm.us-east","slot":1796637600,"side":"buy","price":"2.35","quantity":"8"}"#,
        r#"{"type":"order_cancelled","order":3,"account":7,"market":"h100-sxm.us-east","slot":1796637600,"side":"buy","price":"2.35","quantity":"4","reason":"slot_closed","resting":true}"#,
        r#"{"type":"order_amended","order":3,"account":7,"market":"h100-sxm.us-east","slot":1796637600,"side":"sell","old_price":"2.35","old_quantity":"4","price":"2.40","quantity":"3","priority_kept":false}"#,
        r#"{"type":"mass_cancelled","account":7,"market":"h100-sxm.us-east","slot":1796637600,"count":12}"#,
        r#"{"type":"duplicate_request","request_id":"r-\"1\"\\é","original_cmd_seq":41}"#,
        r#"{"type":"delivery_scheduled","entry":5,"market":"h100-sxm.us-east","slot":1796637600,"provider":7,"holder":8,"quantity":"4","trades":[9,10,11],"report_until":1796644800,"dispute_until":1796652000}"#,
        r#"{"type":"inventory_expired","account":7,"market":"h100-sxm.us-east","slot":1796637600,"quantity":"4"}"#,
        r#"{"type":"slot_closed","market":"h100-sxm.us-east","slot":1796637600,"scheduled":"4","expired":"4"}"#,
        r#"{"type":"delivery_reported","entry":5,"provider":7,"market":"h100-sxm.us-east","slot":1796637600,"delivered":"3.5"}"#,
        r#"{"type":"delivery_disputed","entry":5,"holder":8,"market":"h100-sxm.us-east","slot":1796637600,"received":"3","reported":"3.5"}"#,
        r#"{"type":"trade_settled","entry":5,"trade":9,"buyer":8,"seller":7,"quantity":"4","delivered":"3","paid":"7.050000","refunded":"2.350000","fees":"0.006580"}"#,
        r#"{"type":"delivery_settled","entry":5,"market":"h100-sxm.us-east","slot":1796637600,"provider":7,"holder":8,"quantity":"4","delivered":"3","basis":"resolved","dispute_lost":true,"paid":"7.050000","refunded":"2.350000","fees":"0.006580"}"#,
        r#"{"type":"api_key_added","account":7,"api_key_sha256":"00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff","scope":"trade"}"#,
        r#"{"type":"api_key_revoked","account":7,"api_key_sha256":"00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff"}"#,
    ];

    /// Events with optional fields left out or null.
    const SPARSE: &[&str] = &[
        r#"{"type":"command_rejected","command":"unknown","reason":"malformed_command"}"#,
        r#"{"type":"order_accepted","order":1,"account":7,"market":"h100-sxm.us-east","slot":1796637600,"side":"sell","order_type":"market","price":null,"quantity":"1","time_in_force":"ioc","stp":"none"}"#,
        r#"{"type":"order_cancelled","order":1,"account":7,"market":"h100-sxm.us-east","slot":1796637600,"side":"sell","price":null,"quantity":"1","reason":"market_remainder","resting":false}"#,
        r#"{"type":"mass_cancelled","account":7,"count":0}"#,
        r#"{"type":"delivery_disputed","entry":5,"holder":8,"market":"h100-sxm.us-east","slot":1796637600,"received":"0","reported":null}"#,
        r#"{"type":"delivery_scheduled","entry":5,"market":"h100-sxm.us-east","slot":1796637600,"provider":7,"holder":8,"quantity":"4","trades":[],"report_until":0,"dispute_until":0}"#,
    ];

    fn parse(list: &[&str]) -> Vec<Event> {
        list.iter()
            .map(|s| serde_json::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}")))
            .collect()
    }

    fn samples() -> Vec<Event> {
        parse(SAMPLES)
    }

    /// The keys of a JSON object, in the order they are written.
    fn keys_in_order(json: &[u8]) -> Vec<String> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(keys)
            }
        }
        let mut de = serde_json::Deserializer::from_slice(json);
        serde::Deserializer::deserialize_map(&mut de, Keys).unwrap()
    }

    fn snake(name: &str) -> String {
        let mut s = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        }
        s
    }

    #[test]
    fn every_variant_round_trips_to_the_same_json_and_bytes() {
        let events = samples();
        assert_eq!(events.len(), VARIANTS.len(), "a sample per variant");
        for (e, (tag, name, _)) in events.iter().zip(VARIANTS) {
            let bytes = e.to_bytes();
            assert_eq!(bytes[0], *tag, "{name}");
            let back = Event::from_bytes(&bytes).unwrap_or_else(|x| panic!("{name}: {x}"));
            assert_eq!(back.to_json_vec(), e.to_json_vec(), "{name}");
            assert_eq!(back.to_bytes(), bytes, "{name}");
            assert!(
                bytes.len() * 2 < e.to_json_vec().len(),
                "{name}: {} bytes against {} of JSON",
                bytes.len(),
                e.to_json_vec().len()
            );
        }
    }

    #[test]
    fn events_without_their_optional_fields_round_trip() {
        for e in parse(SPARSE) {
            let bytes = e.to_bytes();
            let back = Event::from_bytes(&bytes).unwrap_or_else(|x| panic!("{e:?}: {x}"));
            assert_eq!(back.to_json_vec(), e.to_json_vec());
            assert_eq!(back.to_bytes(), bytes);
        }
    }

    #[test]
    fn fields_are_encoded_in_the_order_the_json_lists_them() {
        for (e, (_, name, fields)) in samples().iter().zip(VARIANTS) {
            let keys = keys_in_order(&e.to_json_vec());
            assert_eq!(keys[0], "type");
            assert_eq!(&keys[1..], *fields, "{name}");
        }
    }

    #[test]
    fn every_truncation_and_every_extra_byte_is_refused() {
        for e in samples().into_iter().chain(parse(SPARSE)) {
            let bytes = e.to_bytes();
            for n in 0..bytes.len() {
                assert!(Event::from_bytes(&bytes[..n]).is_err(), "{e:?} cut at {n}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(
                Event::from_bytes(&longer).is_err(),
                "{e:?} with a byte more"
            );
        }
    }

    #[test]
    fn non_canonical_and_unknown_encodings_are_refused() {
        // Tag 2 (account_created), account 1 written in two bytes.
        assert!(Event::from_bytes(&[2, 0x81, 0x00]).is_err());
        assert!(Event::from_bytes(&[2, 1]).is_ok());
        // A u64 wider than 64 bits.
        let mut wide = vec![2];
        wide.extend([0xff; 9]);
        wide.push(0x02);
        assert!(Event::from_bytes(&wide).is_err());
        // Unknown tags.
        for t in [0u8, 25, 255] {
            assert!(Event::from_bytes(&[t, 1]).is_err(), "tag {t}");
        }
        // Negative zero keeps its sign (its JSON is "-0"), at any scale.
        for bytes in [[3u8, 1, 0x80, 0, 0x82, 0], [3, 1, 0x82, 0, 0, 0]] {
            let e = Event::from_bytes(&bytes).unwrap();
            assert_eq!(e.to_bytes(), bytes);
        }
        let e = Event::Deposited(CashMoved {
            account: 1,
            amount: -Decimal::ZERO,
            available: Decimal::ZERO,
        });
        let back = Event::from_bytes(&e.to_bytes()).unwrap();
        assert_eq!(back.to_json_vec(), e.to_json_vec());
        assert!(String::from_utf8(back.to_json_vec())
            .unwrap()
            .contains(r#""amount":"-0""#));
        // A decimal scale above 28 (deposited: account 1, amount, available).
        assert!(Event::from_bytes(&[3, 1, 29, 1, 0, 1]).is_err());
        assert!(Event::from_bytes(&[3, 1, 28, 1, 0, 1]).is_ok());
    }

    /// `docs/LEDGER_FORMAT.md` § Event payloads lists every tag, type and field
    /// exactly as encoded.
    #[test]
    fn the_ledger_format_page_lists_every_variant_as_encoded() {
        let doc = include_str!("../../docs/LEDGER_FORMAT.md");
        for (tag, name, fields) in VARIANTS {
            let row = format!("| {tag} | `{}` | {} |", snake(name), fields.join(", "));
            assert!(doc.contains(&row), "LEDGER_FORMAT.md lacks the row\n{row}");
        }
    }

    proptest! {
        #[test]
        fn decimals_keep_value_scale_and_sign(
            lo in any::<u32>(), mid in any::<u32>(), hi in any::<u32>(),
            negative in any::<bool>(), scale in 0u32..=28,
        ) {
            let d = Decimal::from_parts(lo, mid, hi, negative, scale);
            let e = Event::Deposited(CashMoved { account: 1, amount: d, available: -d });
            let back = Event::from_bytes(&e.to_bytes()).unwrap();
            prop_assert_eq!(back.to_json_vec(), e.to_json_vec());
            let Event::Deposited(c) = back else { panic!("variant") };
            prop_assert_eq!(c.amount.scale(), d.scale());
            prop_assert_eq!(c.amount.is_sign_negative(), d.is_sign_negative());
            prop_assert_eq!(c.amount.mantissa(), d.mantissa());
        }

        /// Whatever the bytes, decoding returns (never panics), and what decodes
        /// encodes back to exactly those bytes.
        #[test]
        fn any_bytes_decode_without_panic_and_canonically(
            bytes in proptest::collection::vec(any::<u8>(), 0..96),
        ) {
            if let Ok(e) = Event::from_bytes(&bytes) {
                prop_assert_eq!(e.to_bytes(), bytes);
            }
        }

        /// Sample events with bytes flipped: same property, from valid starts.
        #[test]
        fn damaged_events_decode_canonically_or_not_at_all(
            which in 0usize..24, at in any::<prop::sample::Index>(), to in any::<u8>(),
        ) {
            let mut bytes = samples()[which].to_bytes();
            let i = at.index(bytes.len());
            bytes[i] = to;
            if let Ok(e) = Event::from_bytes(&bytes) {
                prop_assert_eq!(e.to_bytes(), bytes);
            }
        }
    }
}
