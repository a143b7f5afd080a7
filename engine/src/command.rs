//! Commands: the only inputs the engine has. Their JSON form is the protocol
//! (`docs/PROTOCOL.md`): the same JSON travels on Kafka, sits in the ledger and is
//! read by auditors. Prices and quantities are decimal strings; unknown fields are
//! errors, so a typo never silently changes an order.

use crate::types::{
    AccountId, ClientOrderId, MarketId, OrderId, OrderType, Side, StpMode, TimeInForce,
};
use rust_decimal::Decimal;
use serde::de::{self, value::MapAccessDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// Version of the JSON encoding of commands and events.
/// Version 2 made time part of the instrument: delivery slots; version 3 pays on
/// delivery (escrow, delivery reports, disputes, settlement).
pub const PROTOCOL_VERSION: u32 = 3;

/// One instruction to the exchange.
///
/// Its JSON is an object tagged by `"type"` (`#[serde(tag = "type")]` for
/// encoding). Decoding is written out (below) so that the usual case, `"type"`
/// first, goes straight into the variant's struct: serde's derived decoding of a
/// tagged enum first buffers the whole object, then decodes it again, which was
/// most of a command's decoding time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Admin: list a new market.
    ListMarket(ListMarket),
    /// Admin: open an account.
    CreateAccount(CreateAccount),
    /// Admin: credit USD that arrived from outside.
    Deposit(CashTransfer),
    /// Pay USD out of an account's available balance.
    Withdraw(CashTransfer),
    /// A provider lists GPU-hours it can sell in a market.
    AddCapacity(CapacityTransfer),
    /// A provider takes available GPU-hours back.
    RemoveCapacity(CapacityTransfer),
    /// Place a limit or market order.
    PlaceOrder(PlaceOrder),
    /// Cancel one open order.
    CancelOrder(CancelOrder),
    /// Change an open order's price and/or remaining quantity.
    AmendOrder(AmendOrder),
    /// Cancel all of an account's open orders, optionally in one market.
    MassCancel(MassCancel),
    /// Engine time passes: no effect but what time does (GTD expiries, gate
    /// closures). Sequenced by the exchange when no other command arrives, so the
    /// log carries time and replay reproduces every time-driven event exactly.
    Tick(Tick),
    /// A provider reports how many GPUs of a delivery entry it delivered.
    DeliveryReport(DeliveryReport),
    /// A holder disputes a delivery entry: it says it received fewer GPUs.
    Dispute(Dispute),
    /// Admin: decide a disputed entry; it settles at once.
    ResolveDispute(ResolveDispute),
    /// Give an account another API key, with a scope.
    AddApiKey(AddApiKey),
    /// Take an API key away from an account.
    RevokeApiKey(RevokeApiKey),
}

/// Every command `"type"`, in declaration order (serde's "expected one of" list).
const COMMAND_TYPES: &[&str] = &[
    "list_market",
    "create_account",
    "deposit",
    "withdraw",
    "add_capacity",
    "remove_capacity",
    "place_order",
    "cancel_order",
    "amend_order",
    "mass_cancel",
    "tick",
    "delivery_report",
    "dispute",
    "resolve_dispute",
    "add_api_key",
    "revoke_api_key",
];

/// Decodes the variant named `tag` from the rest of the command object.
fn command_variant<'de, D: Deserializer<'de>>(tag: &str, d: D) -> Result<Command, D::Error> {
    Ok(match tag {
        "list_market" => Command::ListMarket(Deserialize::deserialize(d)?),
        "create_account" => Command::CreateAccount(Deserialize::deserialize(d)?),
        "deposit" => Command::Deposit(Deserialize::deserialize(d)?),
        "withdraw" => Command::Withdraw(Deserialize::deserialize(d)?),
        "add_capacity" => Command::AddCapacity(Deserialize::deserialize(d)?),
        "remove_capacity" => Command::RemoveCapacity(Deserialize::deserialize(d)?),
        "place_order" => Command::PlaceOrder(Deserialize::deserialize(d)?),
        "cancel_order" => Command::CancelOrder(Deserialize::deserialize(d)?),
        "amend_order" => Command::AmendOrder(Deserialize::deserialize(d)?),
        "mass_cancel" => Command::MassCancel(Deserialize::deserialize(d)?),
        "tick" => Command::Tick(Deserialize::deserialize(d)?),
        "delivery_report" => Command::DeliveryReport(Deserialize::deserialize(d)?),
        "dispute" => Command::Dispute(Deserialize::deserialize(d)?),
        "resolve_dispute" => Command::ResolveDispute(Deserialize::deserialize(d)?),
        "add_api_key" => Command::AddApiKey(Deserialize::deserialize(d)?),
        "revoke_api_key" => Command::RevokeApiKey(Deserialize::deserialize(d)?),
        other => return Err(de::Error::unknown_variant(other, COMMAND_TYPES)),
    })
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(CommandVisitor)
    }
}

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = Command;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a command object with a \"type\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Command, A::Error> {
        let Some(first) = map.next_key::<Cow<'de, str>>()? else {
            return Err(de::Error::missing_field("type"));
        };
        if first == "type" {
            // The usual case: the rest of the object is the variant's fields.
            let tag = map.next_value::<Cow<'de, str>>()?;
            return command_variant(&tag, MapAccessDeserializer::new(map));
        }
        // `"type"` later in the object: gather the object, then take it out.
        let mut object = serde_json::Map::new();
        object.insert(first.into_owned(), map.next_value()?);
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            let value = map.next_value()?;
            object.insert(key, value);
        }
        let tag = match object.remove("type") {
            Some(serde_json::Value::String(t)) => t,
            Some(other) => {
                return Err(de::Error::custom(format_args!(
                    "invalid type: {other}, expected a command type string"
                )))
            }
            None => return Err(de::Error::missing_field("type")),
        };
        command_variant(&tag, serde_json::Value::Object(object)).map_err(de::Error::custom)
    }
}

/// The kind of a command, named as in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// [`Command::ListMarket`].
    ListMarket,
    /// [`Command::CreateAccount`].
    CreateAccount,
    /// [`Command::Deposit`].
    Deposit,
    /// [`Command::Withdraw`].
    Withdraw,
    /// [`Command::AddCapacity`].
    AddCapacity,
    /// [`Command::RemoveCapacity`].
    RemoveCapacity,
    /// [`Command::PlaceOrder`].
    PlaceOrder,
    /// [`Command::CancelOrder`].
    CancelOrder,
    /// [`Command::AmendOrder`].
    AmendOrder,
    /// [`Command::MassCancel`].
    MassCancel,
    /// [`Command::Tick`].
    Tick,
    /// [`Command::DeliveryReport`].
    DeliveryReport,
    /// [`Command::Dispute`].
    Dispute,
    /// [`Command::ResolveDispute`].
    ResolveDispute,
    /// [`Command::AddApiKey`].
    AddApiKey,
    /// [`Command::RevokeApiKey`].
    RevokeApiKey,
    /// A message that could not be decoded into any command.
    Unknown,
}

impl Command {
    /// The command's kind.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::ListMarket(_) => CommandKind::ListMarket,
            Command::CreateAccount(_) => CommandKind::CreateAccount,
            Command::Deposit(_) => CommandKind::Deposit,
            Command::Withdraw(_) => CommandKind::Withdraw,
            Command::AddCapacity(_) => CommandKind::AddCapacity,
            Command::RemoveCapacity(_) => CommandKind::RemoveCapacity,
            Command::PlaceOrder(_) => CommandKind::PlaceOrder,
            Command::CancelOrder(_) => CommandKind::CancelOrder,
            Command::AmendOrder(_) => CommandKind::AmendOrder,
            Command::MassCancel(_) => CommandKind::MassCancel,
            Command::Tick(_) => CommandKind::Tick,
            Command::DeliveryReport(_) => CommandKind::DeliveryReport,
            Command::Dispute(_) => CommandKind::Dispute,
            Command::ResolveDispute(_) => CommandKind::ResolveDispute,
            Command::AddApiKey(_) => CommandKind::AddApiKey,
            Command::RevokeApiKey(_) => CommandKind::RevokeApiKey,
        }
    }

    /// The account the command acts for, if any.
    pub fn account(&self) -> Option<AccountId> {
        match self {
            Command::ListMarket(_) | Command::Tick(_) | Command::ResolveDispute(_) => None,
            Command::DeliveryReport(c) => Some(c.account),
            Command::Dispute(c) => Some(c.account),
            Command::CreateAccount(c) => c.account,
            Command::Deposit(c) | Command::Withdraw(c) => Some(c.account),
            Command::AddCapacity(c) | Command::RemoveCapacity(c) => Some(c.account),
            Command::PlaceOrder(c) => Some(c.account),
            Command::CancelOrder(c) => Some(c.account),
            Command::AmendOrder(c) => Some(c.account),
            Command::MassCancel(c) => Some(c.account),
            Command::AddApiKey(c) => Some(c.account),
            Command::RevokeApiKey(c) => Some(c.account),
        }
    }

    /// The market the command names, if any.
    pub fn market(&self) -> Option<MarketId> {
        match self {
            Command::ListMarket(c) => Some(c.market),
            Command::AddCapacity(c) | Command::RemoveCapacity(c) => Some(c.market),
            Command::PlaceOrder(c) => Some(c.market),
            Command::MassCancel(c) => c.market,
            _ => None,
        }
    }
}

/// List a market. Sizes are decimal strings; limits default as documented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMarket {
    /// `{gpu_model}.{region}`.
    pub market: MarketId,
    /// USD per GPU-hour of one tick.
    #[serde(with = "crate::decimal::strict")]
    pub tick_size: Decimal,
    /// GPU-hours in one lot.
    #[serde(with = "crate::decimal::strict")]
    pub lot_size: Decimal,
    /// Maker fee in basis points (0–1000).
    pub maker_fee_bps: u32,
    /// Taker fee in basis points (0–1000).
    pub taker_fee_bps: u32,
    /// Lowest limit price (default: one tick).
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_price: Option<Decimal>,
    /// Highest limit price (default: 100,000, lowered if needed to keep notionals in range).
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_price: Option<Decimal>,
    /// Largest order quantity (default: 1,000,000 lots).
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_order_quantity: Option<Decimal>,
    /// How many hours ahead slots trade (1–8760, default 168).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_horizon_hours: Option<u32>,
    /// Trading in a slot stops this many seconds before it starts (0–86400,
    /// default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_closure_secs: Option<u32>,
    /// Providers report a slot's deliveries until this many seconds after its end
    /// (0–604800, default 3600, at most `dispute_window_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_window_secs: Option<u32>,
    /// Holders may dispute a delivery until this many seconds after the slot's end
    /// (0–604800, default 7200, at least `report_window_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute_window_secs: Option<u32>,
}

/// See [`Command::DeliveryReport`]. Accepted from the slot's start until the
/// market's `report_window_secs` after its end, while the entry is not disputed;
/// a later report replaces an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryReport {
    /// The entry's provider.
    pub account: AccountId,
    /// The delivery entry (`delivery_scheduled.entry`).
    pub entry: u64,
    /// GPUs delivered for the slot's hour (0 up to the entry's quantity, on the lot).
    #[serde(with = "crate::decimal::strict")]
    pub delivered: Decimal,
}

/// See [`Command::Dispute`]. Accepted from the slot's start until the market's
/// `dispute_window_secs` after its end, once per entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispute {
    /// The entry's holder.
    pub account: AccountId,
    /// The delivery entry.
    pub entry: u64,
    /// GPUs the holder says it received (0 up to the entry's quantity, on the lot).
    #[serde(with = "crate::decimal::strict")]
    pub received: Decimal,
}

/// See [`Command::ResolveDispute`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveDispute {
    /// The disputed entry.
    pub entry: u64,
    /// GPUs delivered, as decided (0 up to the entry's quantity, on the lot).
    #[serde(with = "crate::decimal::strict")]
    pub delivered: Decimal,
}

impl ListMarket {
    /// The slot and delivery rules it asks for, defaults filled in.
    pub fn slot_rules(&self) -> crate::market::SlotRules {
        use crate::market::*;
        SlotRules {
            slot_horizon_hours: self
                .slot_horizon_hours
                .unwrap_or(DEFAULT_SLOT_HORIZON_HOURS),
            gate_closure_secs: self.gate_closure_secs.unwrap_or(DEFAULT_GATE_CLOSURE_SECS),
            report_window_secs: self
                .report_window_secs
                .unwrap_or(DEFAULT_REPORT_WINDOW_SECS),
            dispute_window_secs: self
                .dispute_window_secs
                .unwrap_or(DEFAULT_DISPUTE_WINDOW_SECS),
        }
    }
}

/// Open an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// The new account's id (not 0, which is the fee account). Without it the
    /// engine assigns the lowest id no account has, so any number of gateways can
    /// open accounts without choosing ids; `account_created` says which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    /// SHA-256 of the account's API key: it becomes the account's first key, of
    /// scope `full` (unless another account already has this digest: then the
    /// account opens without a key). It rides in the log so every gateway following
    /// the log, before and after a restart, learns which key belongs to the
    /// account; `account_created` does not repeat it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_sha256: Option<KeyDigest>,
}

/// What an API key may do. The engine only records it; the gateway enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Everything the account may do: trade, withdraw, manage its keys.
    Full,
    /// Read, place and cancel orders, capacity, delivery reports and disputes;
    /// no withdrawals, no key management.
    Trade,
    /// Read the account's own data only.
    Read,
}

impl KeyScope {
    /// The scope as written in JSON.
    pub fn name(self) -> &'static str {
        match self {
            KeyScope::Full => "full",
            KeyScope::Trade => "trade",
            KeyScope::Read => "read",
        }
    }
}

/// See [`Command::AddApiKey`]: a new key for `account`, known by its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddApiKey {
    /// The account.
    pub account: AccountId,
    /// SHA-256 of the new key (64 lowercase hex digits); no account may have it yet.
    pub api_key_sha256: KeyDigest,
    /// What the key may do.
    pub scope: KeyScope,
}

/// See [`Command::RevokeApiKey`]: the key stops working on every gateway once
/// the command is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeApiKey {
    /// The account.
    pub account: AccountId,
    /// SHA-256 of the key to revoke.
    pub api_key_sha256: KeyDigest,
    /// Revoke it even if it is the account's last key, locking the account out
    /// of the API until a key is added (default false: `last_api_key`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_last: bool,
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// Parses exactly 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<KeyDigest> {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(KeyDigest(out))
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyDigest({})", self.to_hex())
    }
}

impl Serialize for KeyDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        KeyDigest::from_hex(&s).ok_or_else(|| {
            serde::de::Error::custom("a SHA-256 digest must be 64 lowercase hex digits")
        })
    }
}

/// Move USD into or out of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CashTransfer {
    /// The account.
    pub account: AccountId,
    /// USD, a whole number of micro-USD.
    #[serde(with = "crate::decimal::strict")]
    pub amount: Decimal,
}

/// Add or remove GPUs a provider can sell in every slot of a range of a market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityTransfer {
    /// The account.
    pub account: AccountId,
    /// The market whose GPUs these are.
    pub market: MarketId,
    /// The first slot (unix seconds of its start).
    pub from_slot: u64,
    /// The last slot, included (equal to `from_slot` for one slot).
    pub to_slot: u64,
    /// GPUs in each slot, a whole number of lots.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
}

/// Consecutive slots, both ends included: `from_slot` ..= `to_slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// The first slot (unix seconds of its start).
    pub from_slot: u64,
    /// The last slot, included.
    pub to_slot: u64,
}

/// Place an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// The account placing it.
    pub account: AccountId,
    /// The market.
    pub market: MarketId,
    /// The delivery slot (unix seconds of its start); or give `window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    /// The same quantity in every slot of a window, all or nothing (IOC/FOK limit
    /// orders only; never rests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// A cluster: every GPU of every slot from one provider's own inventory
    /// (buy limit orders, IOC/FOK only; all or nothing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub colocate: bool,
    /// Buy or sell.
    pub side: Side,
    /// Limit (default) or market.
    #[serde(default)]
    pub order_type: OrderType,
    /// Limit price in USD per GPU-hour; required for limit orders, absent for market.
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub price: Option<Decimal>,
    /// GPU-hours.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// Limit orders only (default `gtc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<TimeInForce>,
    /// With `gtd` only: the order expires at the first command timestamped later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good_till_ns: Option<u64>,
    /// Rest only: reject instead of trading on arrival (gtc/gtd limit orders).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub post_only: bool,
    /// Market buys only: most USD to spend, fees included (default: all available).
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cap: Option<Decimal>,
    /// The client's own id, unique among the account's open orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    /// Self-trade prevention (default `cancel_taker`).
    #[serde(default)]
    pub stp: StpMode,
    /// Buys that never rest (IOC, FOK, market, window, cluster): trade only with
    /// asks whose seller's delivery record is at least this reliable (0 to 1, at
    /// most 4 decimals; a seller with no record, `new`, is below any floor above 0).
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_reliability: Option<Decimal>,
}

/// Cancel one order, named by exactly one of its ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelOrder {
    /// The owner.
    pub account: AccountId,
    /// The engine's order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    /// Or the client's id for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
}

/// Amend one order: a quantity decrease at the same price keeps queue priority;
/// a price change or quantity increase re-queues it (and may trade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmendOrder {
    /// The owner.
    pub account: AccountId,
    /// The engine's order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    /// Or the client's id for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    /// New limit price.
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub price: Option<Decimal>,
    /// New remaining (open) quantity.
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub quantity: Option<Decimal>,
}

/// Engine time passes (no fields: the time is the envelope's `ts_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tick {}

/// Cancel every open order of an account, or only those in one market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MassCancel {
    /// The owner.
    pub account: AccountId,
    /// Only this market (default: all markets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<MarketId>,
    /// Only this slot of `market` (needs `market`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
}

/// A command as it travels: protocol version, timestamp and an optional request id
/// (set by a gateway to correlate its request with the resulting events and, when
/// `idempotent`, to make a retried request take effect once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandEnvelope {
    /// Protocol version; must be [`PROTOCOL_VERSION`].
    pub v: u32,
    /// Nanoseconds since the Unix epoch. The sequencer makes it monotonic.
    pub ts_ns: u64,
    /// Correlation id, echoed in the events' envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The request id names one request, which must take effect once: the engine
    /// applies the first command carrying it and records a later one within its
    /// window ([`REQUEST_IDS_REMEMBERED_MAX`](crate::limits::REQUEST_IDS_REMEMBERED_MAX),
    /// [`REQUEST_ID_WINDOW_NS`](crate::limits::REQUEST_ID_WINDOW_NS)) as
    /// `duplicate_request`, without effect. Needs a `request_id`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent: bool,
    /// The command.
    pub command: Command,
}

/// Why a JSON command could not be decoded.
#[derive(Debug)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Longest accepted encoded command, in bytes.
pub const COMMAND_BYTES_MAX: usize = 4_096;
/// Longest accepted request id, in bytes.
pub const REQUEST_ID_BYTES_MAX: usize = 128;

impl CommandEnvelope {
    /// Decodes one JSON command, checking size and version.
    pub fn from_json(bytes: &[u8]) -> Result<CommandEnvelope, DecodeError> {
        if bytes.len() > COMMAND_BYTES_MAX {
            return Err(DecodeError(format!(
                "command is {} bytes, more than the {COMMAND_BYTES_MAX} allowed",
                bytes.len()
            )));
        }
        let env: CommandEnvelope =
            serde_json::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))?;
        if env.v != PROTOCOL_VERSION {
            return Err(DecodeError(format!(
                "unsupported protocol version {} (this engine speaks {PROTOCOL_VERSION})",
                env.v
            )));
        }
        if env
            .request_id
            .as_ref()
            .is_some_and(|r| r.len() > REQUEST_ID_BYTES_MAX)
        {
            return Err(DecodeError(format!(
                "request_id longer than {REQUEST_ID_BYTES_MAX} bytes"
            )));
        }
        if env.idempotent && env.request_id.is_none() {
            return Err(DecodeError(
                "an idempotent command needs a request_id".to_string(),
            ));
        }
        Ok(env)
    }

    /// The request id the engine applies at most once per window: the
    /// `request_id` of an `idempotent` envelope.
    pub fn idempotent_request_id(&self) -> Option<&str> {
        self.request_id.as_deref().filter(|_| self.idempotent)
    }

    /// Encodes as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("commands always encode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_has_no_fields() {
        let tick: Command = serde_json::from_str(r#"{"type":"tick"}"#).unwrap();
        assert_eq!(tick, Command::Tick(Tick {}));
        assert_eq!(serde_json::to_string(&tick).unwrap(), r#"{"type":"tick"}"#);
        assert_eq!(
            (tick.kind(), tick.account(), tick.market()),
            (CommandKind::Tick, None, None)
        );
        assert!(serde_json::from_str::<Command>(r#"{"type":"tick","account":1}"#).is_err());
    }

    #[test]
    fn create_account_key_digest_round_trips_and_is_strict() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let json = format!(r#"{{"type":"create_account","account":3,"api_key_sha256":"{hex}"}}"#);
        let cmd: Command = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&cmd).unwrap(), json);
        let plain: Command =
            serde_json::from_str(r#"{"type":"create_account","account":3}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"type":"create_account","account":3}"#
        );
        // Without an id, the engine assigns one; the id stays absent on the wire.
        let assigned: Command = serde_json::from_str(r#"{"type":"create_account"}"#).unwrap();
        assert_eq!(
            assigned,
            Command::CreateAccount(CreateAccount {
                account: None,
                api_key_sha256: None
            })
        );
        assert_eq!(
            serde_json::to_string(&assigned).unwrap(),
            r#"{"type":"create_account"}"#
        );
        for bad in [&hex[..62], &hex.to_uppercase(), &format!("{hex}00"), "zz"] {
            let json =
                format!(r#"{{"type":"create_account","account":3,"api_key_sha256":"{bad}"}}"#);
            assert!(serde_json::from_str::<Command>(&json).is_err(), "{bad}");
        }
    }

    /// Commands of several shapes, `"type"` first as the engine writes them.
    const SHAPES: &[&str] = &[
        r#"{"type":"place_order","account":7,"market":"h100-sxm.us-east","slot":3600,"side":"buy","price":"2.35","quantity":"8","time_in_force":"gtd","good_till_ns":5,"client_order_id":"c-1","stp":"cancel_both"}"#,
        r#"{"type":"place_order","account":7,"market":"h100-sxm.us-east","window":{"from_slot":3600,"to_slot":7200},"colocate":true,"side":"buy","price":"2","quantity":"1","time_in_force":"fok","min_reliability":"0.95"}"#,
        r#"{"type":"cancel_order","account":7,"order_id":12}"#,
        r#"{"type":"amend_order","account":7,"client_order_id":"c-1","price":"2.40"}"#,
        r#"{"type":"deposit","account":7,"amount":"100.50"}"#,
        r#"{"type":"mass_cancel","account":7,"market":"h100-sxm.us-east"}"#,
        r#"{"type":"tick"}"#,
    ];

    /// The object's entries (in key order) with `type` moved to position `at`.
    fn with_type_at(json: &str, at: usize) -> String {
        let mut v: Vec<(String, serde_json::Value)> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
                .unwrap()
                .into_iter()
                .collect();
        let i = v.iter().position(|(k, _)| k == "type").unwrap();
        let t = v.remove(i);
        v.insert(at.min(v.len()), t);
        let body: Vec<String> = v
            .iter()
            .map(|(k, x)| format!("{}:{x}", serde_json::to_string(k).unwrap()))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    #[test]
    fn type_anywhere_in_the_object_decodes_the_same() {
        for json in SHAPES {
            let first: Command = serde_json::from_str(json).unwrap();
            let again = serde_json::to_string(&first).unwrap();
            assert!(again.starts_with(r#"{"type":"#), "{again}");
            assert_eq!(serde_json::from_str::<Command>(&again).unwrap(), first);
            for at in 0..12 {
                let moved = with_type_at(json, at);
                let c: Command =
                    serde_json::from_str(&moved).unwrap_or_else(|e| panic!("{moved}: {e}"));
                assert_eq!(c, first, "{moved}");
                // Through a JSON value too (the gateway's path).
                let v: serde_json::Value = serde_json::from_str(&moved).unwrap();
                assert_eq!(serde_json::from_value::<Command>(v).unwrap(), first);
            }
        }
    }

    #[test]
    fn a_command_object_without_one_clear_type_is_refused_with_a_reason() {
        let err = |json: &str| {
            serde_json::from_str::<Command>(json)
                .expect_err(json)
                .to_string()
        };
        assert!(err("{}").contains("missing field `type`"));
        assert!(err(r#"{"account":7}"#).contains("missing field `type`"));
        let unknown = err(r#"{"type":"close_account","account":7}"#);
        assert!(
            unknown.contains("unknown variant `close_account`, expected one of `list_market`"),
            "{unknown}"
        );
        assert!(err(r#"{"account":7,"type":"close_account"}"#).contains("close_account"));
        // Twice, wherever it stands.
        assert!(err(r#"{"type":"tick","type":"tick"}"#).contains("type"));
        assert!(
            err(r#"{"account":7,"type":"deposit","type":"deposit","amount":"1"}"#)
                .contains("duplicate field `type`")
        );
        assert!(
            err(r#"{"account":7,"account":7,"type":"deposit","amount":"1"}"#)
                .contains("duplicate field `account`")
        );
        // Not a string.
        assert!(err(r#"{"type":7}"#).contains("invalid type"));
        assert!(err(r#"{"account":7,"type":null}"#).contains("invalid type"));
        // Unknown and missing fields of the variant, either way.
        for json in [
            r#"{"type":"deposit","account":7,"amount":"1","memo":"x"}"#,
            r#"{"account":7,"type":"deposit","amount":"1","memo":"x"}"#,
        ] {
            assert!(err(json).contains("unknown field `memo`"), "{json}");
        }
        for json in [
            r#"{"type":"withdraw","account":7}"#,
            r#"{"account":7,"type":"withdraw"}"#,
        ] {
            assert!(err(json).contains("missing field `amount`"), "{json}");
        }
        // Not an object at all.
        assert!(err("[]").contains("invalid type"));
        assert!(err(r#""tick""#).contains("invalid type"));
    }
}
