//! Events: everything the engine decided, in past tense. Together they are enough
//! to rebuild balances and L2 depth without the engine:
//!
//! - `OrderRested` adds `quantity` at `price` on `side`;
//! - `TradeExecuted` removes `quantity` at `price` from the maker's side;
//! - `OrderCancelled` with `resting: true` removes `quantity` at `price`;
//! - `OrderAmended` with `priority_kept: true` changes the level at `price` by
//!   `quantity - old_quantity`; with `priority_kept: false` it removes
//!   `old_quantity` at `old_price` (the order then trades and/or rests anew).

use crate::command::{CommandKind, KeyDigest, KeyScope, PROTOCOL_VERSION};
use crate::reject::RejectReason;
use crate::types::{
    AccountId, CancelReason, ClientOrderId, MarketId, OrderId, OrderType, Side, StpMode,
    TimeInForce, TradeId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A market was listed.
    MarketListed(MarketListed),
    /// An account was opened.
    AccountCreated(AccountCreated),
    /// USD was credited from outside.
    Deposited(CashMoved),
    /// USD was paid out.
    Withdrawn(CashMoved),
    /// A provider's GPUs were added to its inventory in every slot of a range.
    CapacityAdded(CapacityMoved),
    /// Unsold GPUs were taken out of a provider's inventory in every slot of a range.
    CapacityRemoved(CapacityMoved),
    /// An order passed validation and risk checks; its hold is taken.
    OrderAccepted(OrderAccepted),
    /// An order command (place, cancel, amend, mass cancel) was refused; nothing changed.
    OrderRejected(Rejection),
    /// Any other command was refused; nothing changed.
    CommandRejected(Rejection),
    /// Two orders traded at the maker's price.
    TradeExecuted(TradeExecuted),
    /// An order's remainder now rests on the book.
    OrderRested(OrderRested),
    /// An order (or an incoming order's remainder) was cancelled; its hold released.
    OrderCancelled(OrderCancelled),
    /// An open order's price and/or quantity changed.
    OrderAmended(OrderAmended),
    /// A mass cancel finished (after one `OrderCancelled` per order).
    MassCancelled(MassCancelled),
    /// The command repeated an idempotent request the engine had already applied
    /// (within its window); it changed nothing.
    DuplicateRequest(DuplicateRequest),
    /// A closed slot's delivery obligation: one provider delivers GPUs to one
    /// final holder, settling a chain of trades.
    DeliveryScheduled(DeliveryScheduled),
    /// A provider's unsold inventory in a closed slot is gone.
    InventoryExpired(InventoryExpired),
    /// A slot's gate closed: its resting orders were cancelled (before), its
    /// schedule emitted, its book removed.
    SlotClosed(SlotClosed),
    /// A provider reported what it delivered of an entry.
    DeliveryReported(DeliveryReported),
    /// A holder disputed an entry; it waits for a resolution.
    DeliveryDisputed(DeliveryDisputed),
    /// One trade of a settled entry's chain paid its seller for the delivered
    /// GPUs and refunded its buyer for the rest (before its `delivery_settled`).
    TradeSettled(TradeSettled),
    /// An entry settled: its delivery is final, its escrow paid out and refunded.
    DeliverySettled(DeliverySettled),
    /// An account got an API key (`add_api_key`; `create_account`'s first key is
    /// known from the command itself).
    ApiKeyAdded(ApiKeyAdded),
    /// An account's API key was revoked: from this event on it opens nothing.
    ApiKeyRevoked(ApiKeyRevoked),
}

/// See [`Event::ApiKeyAdded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyAdded {
    /// The account.
    pub account: AccountId,
    /// SHA-256 of the key.
    pub api_key_sha256: KeyDigest,
    /// What it may do.
    pub scope: KeyScope,
}

/// See [`Event::ApiKeyRevoked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRevoked {
    /// The account.
    pub account: AccountId,
    /// SHA-256 of the key.
    pub api_key_sha256: KeyDigest,
}

/// See [`Event::DeliveryScheduled`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryScheduled {
    /// The entry's id (ascending over the exchange's life).
    pub entry: u64,
    /// The market.
    pub market: MarketId,
    /// The slot delivered.
    pub slot: u64,
    /// Whose inventory the GPUs are: it delivers them.
    pub provider: AccountId,
    /// Who holds them at the gate: it receives them.
    pub holder: AccountId,
    /// GPUs for the hour.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// The trades these GPUs went through, from the provider's sale to the
    /// holder's purchase.
    pub trades: Vec<TradeId>,
    /// The provider reports the delivery until then (unix seconds); unreported
    /// then, it settles as not delivered.
    pub report_until: u64,
    /// The holder may dispute until then (unix seconds); a report not disputed
    /// by then stands.
    pub dispute_until: u64,
}

/// See [`Event::DeliveryReported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryReported {
    /// The entry.
    pub entry: u64,
    /// Its provider.
    pub provider: AccountId,
    /// The market.
    pub market: MarketId,
    /// The slot.
    pub slot: u64,
    /// GPUs delivered, as reported.
    #[serde(with = "crate::decimal::strict")]
    pub delivered: Decimal,
}

/// See [`Event::DeliveryDisputed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryDisputed {
    /// The entry.
    pub entry: u64,
    /// Its holder.
    pub holder: AccountId,
    /// The market.
    pub market: MarketId,
    /// The slot.
    pub slot: u64,
    /// GPUs the holder says it received.
    #[serde(with = "crate::decimal::strict")]
    pub received: Decimal,
    /// What the provider had reported, if it had.
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub reported: Option<Decimal>,
}

/// See [`Event::TradeSettled`]. Amounts in USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeSettled {
    /// The entry settling.
    pub entry: u64,
    /// The trade.
    pub trade: TradeId,
    /// Its buyer (refunded).
    pub buyer: AccountId,
    /// Its seller (paid).
    pub seller: AccountId,
    /// The entry's GPUs (this part of the trade).
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// Of which delivered.
    #[serde(with = "crate::decimal::strict")]
    pub delivered: Decimal,
    /// Paid to the seller: the delivered notional less its fee.
    #[serde(with = "crate::decimal::strict")]
    pub paid: Decimal,
    /// Refunded to the buyer: the undelivered notional and its fee on it.
    #[serde(with = "crate::decimal::strict")]
    pub refunded: Decimal,
    /// Fees charged, both sides, on the delivered part only.
    #[serde(with = "crate::decimal::strict")]
    pub fees: Decimal,
}

/// On what a settlement's delivered quantity rests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementBasis {
    /// No report by the report deadline: nothing delivered.
    Unreported,
    /// The provider's report, not disputed by the dispute deadline.
    Reported,
    /// An admin's resolution of a dispute.
    Resolved,
}

/// See [`Event::DeliverySettled`]. Amounts in USD, summed over its
/// `trade_settled` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettled {
    /// The entry.
    pub entry: u64,
    /// The market.
    pub market: MarketId,
    /// The slot.
    pub slot: u64,
    /// Its provider.
    pub provider: AccountId,
    /// Its holder.
    pub holder: AccountId,
    /// The entry's GPUs.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// Of which delivered.
    #[serde(with = "crate::decimal::strict")]
    pub delivered: Decimal,
    /// What decided `delivered`.
    pub basis: SettlementBasis,
    /// A resolution found less than the provider reported (counts against it).
    pub dispute_lost: bool,
    /// Paid to sellers.
    #[serde(with = "crate::decimal::strict")]
    pub paid: Decimal,
    /// Refunded to buyers.
    #[serde(with = "crate::decimal::strict")]
    pub refunded: Decimal,
    /// Fees charged.
    #[serde(with = "crate::decimal::strict")]
    pub fees: Decimal,
}

/// See [`Event::InventoryExpired`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryExpired {
    /// The provider.
    pub account: AccountId,
    /// The market.
    pub market: MarketId,
    /// The closed slot.
    pub slot: u64,
    /// Unsold GPUs.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
}

/// See [`Event::SlotClosed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotClosed {
    /// The market.
    pub market: MarketId,
    /// The slot.
    pub slot: u64,
    /// GPUs scheduled for delivery (sum of its `delivery_scheduled`).
    #[serde(with = "crate::decimal::strict")]
    pub scheduled: Decimal,
    /// Unsold inventory expired (sum of its `inventory_expired`).
    #[serde(with = "crate::decimal::strict")]
    pub expired: Decimal,
}

impl Event {
    /// The event's protocol JSON, the bare `event` object (the ledger stores
    /// [`Event::to_bytes`] instead, which decodes back to exactly this).
    pub fn to_json_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("events always encode")
    }
}

/// See [`Event::MarketListed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketListed {
    /// The market.
    pub market: MarketId,
    /// USD per GPU-hour of one tick.
    #[serde(with = "crate::decimal::strict")]
    pub tick_size: Decimal,
    /// GPU-hours in one lot.
    #[serde(with = "crate::decimal::strict")]
    pub lot_size: Decimal,
    /// Maker fee, basis points.
    pub maker_fee_bps: u32,
    /// Taker fee, basis points.
    pub taker_fee_bps: u32,
    /// Lowest limit price.
    #[serde(with = "crate::decimal::strict")]
    pub min_price: Decimal,
    /// Highest limit price.
    #[serde(with = "crate::decimal::strict")]
    pub max_price: Decimal,
    /// Largest order quantity.
    #[serde(with = "crate::decimal::strict")]
    pub max_order_quantity: Decimal,
    /// How many hours ahead slots trade.
    pub slot_horizon_hours: u32,
    /// Trading in a slot stops this many seconds before it starts.
    pub gate_closure_secs: u32,
    /// Providers report a slot's deliveries until this many seconds after its end.
    pub report_window_secs: u32,
    /// Holders may dispute a delivery until this many seconds after the slot's end.
    pub dispute_window_secs: u32,
}

/// See [`Event::AccountCreated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountCreated {
    /// The account.
    pub account: AccountId,
}

/// See [`Event::Deposited`] and [`Event::Withdrawn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CashMoved {
    /// The account.
    pub account: AccountId,
    /// USD moved.
    #[serde(with = "crate::decimal::strict")]
    pub amount: Decimal,
    /// Available USD after the move.
    #[serde(with = "crate::decimal::strict")]
    pub available: Decimal,
}

/// See [`Event::CapacityAdded`] and [`Event::CapacityRemoved`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityMoved {
    /// The account.
    pub account: AccountId,
    /// The market.
    pub market: MarketId,
    /// The first slot.
    pub from_slot: u64,
    /// The last slot (included).
    pub to_slot: u64,
    /// GPUs moved in each slot.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
}

/// See [`Event::OrderAccepted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderAccepted {
    /// The engine's id for the order.
    pub order: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The market.
    pub market: MarketId,
    /// The delivery slot (a window's first slot).
    pub slot: u64,
    /// A window's last slot (included); absent for one slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_slot: Option<u64>,
    /// A cluster order: all from one provider's own inventory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub colocate: bool,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// Limit price (absent for market orders).
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub price: Option<Decimal>,
    /// Ordered quantity.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// Time in force (market orders: `ioc`).
    pub time_in_force: TimeInForce,
    /// GTD expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good_till_ns: Option<u64>,
    /// Post-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub post_only: bool,
    /// Self-trade prevention mode.
    pub stp: StpMode,
    /// The client's id, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
}

/// See [`Event::OrderRejected`] and [`Event::CommandRejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// What was refused.
    pub command: CommandKind,
    /// The account it acted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    /// The market it named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<MarketId>,
    /// The order id it named (cancel, amend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderId>,
    /// The client order id it named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    /// Why; see [`RejectReason`].
    pub reason: RejectReason,
}

/// See [`Event::TradeExecuted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeExecuted {
    /// The engine's id for the trade.
    pub trade: TradeId,
    /// The market.
    pub market: MarketId,
    /// The delivery slot (unix seconds of its start).
    pub slot: u64,
    /// The maker's price.
    #[serde(with = "crate::decimal::strict")]
    pub price: Decimal,
    /// GPU-hours traded.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// The side of the incoming order (the maker was on the other side).
    pub taker_side: Side,
    /// The resting order.
    pub maker_order: OrderId,
    /// Its owner.
    pub maker_account: AccountId,
    /// The incoming order.
    pub taker_order: OrderId,
    /// Its owner.
    pub taker_account: AccountId,
    /// USD fee charged to the maker.
    #[serde(with = "crate::decimal::strict")]
    pub maker_fee: Decimal,
    /// USD fee charged to the taker.
    #[serde(with = "crate::decimal::strict")]
    pub taker_fee: Decimal,
    /// Quantity of the maker order left open after this trade.
    #[serde(with = "crate::decimal::strict")]
    pub maker_remaining: Decimal,
    /// Quantity of the incoming order left after this trade.
    #[serde(with = "crate::decimal::strict")]
    pub taker_remaining: Decimal,
}

/// See [`Event::OrderRested`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRested {
    /// The order.
    pub order: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The market.
    pub market: MarketId,
    /// The delivery slot (unix seconds of its start).
    pub slot: u64,
    /// Its side.
    pub side: Side,
    /// Its limit price.
    #[serde(with = "crate::decimal::strict")]
    pub price: Decimal,
    /// Quantity now resting.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
}

/// See [`Event::OrderCancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    /// The order.
    pub order: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The market.
    pub market: MarketId,
    /// The delivery slot (unix seconds of its start).
    pub slot: u64,
    /// Its side.
    pub side: Side,
    /// Its limit price (absent for market orders).
    #[serde(
        default,
        with = "crate::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub price: Option<Decimal>,
    /// Quantity cancelled (what was still open).
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// Why.
    pub reason: CancelReason,
    /// Whether the quantity was resting on the book (and so leaves the depth).
    pub resting: bool,
}

/// See [`Event::OrderAmended`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderAmended {
    /// The order.
    pub order: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The market.
    pub market: MarketId,
    /// The delivery slot (unix seconds of its start).
    pub slot: u64,
    /// Its side.
    pub side: Side,
    /// Price before.
    #[serde(with = "crate::decimal::strict")]
    pub old_price: Decimal,
    /// Open quantity before.
    #[serde(with = "crate::decimal::strict")]
    pub old_quantity: Decimal,
    /// Price after.
    #[serde(with = "crate::decimal::strict")]
    pub price: Decimal,
    /// Open quantity after (before any trading the amend causes).
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// True when the order kept its place in the queue (a quantity decrease at the
    /// same price); false when it was taken off and re-queued.
    pub priority_kept: bool,
}

/// See [`Event::MassCancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MassCancelled {
    /// The owner.
    pub account: AccountId,
    /// The market, if the mass cancel was limited to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<MarketId>,
    /// The slot, if it was limited to one slot of that market.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    /// How many orders were cancelled.
    pub count: u64,
}

/// See [`Event::DuplicateRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateRequest {
    /// The repeated request id (also in the envelope).
    pub request_id: String,
    /// Sequence number of the command that first carried it and took effect: its
    /// events are the request's outcome.
    pub original_cmd_seq: u64,
}

/// An event as it travels and is stored: the command's sequence number and
/// timestamp, and the request id of the command that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope {
    /// Protocol version.
    pub v: u32,
    /// Sequence number of the command that produced the event.
    pub seq: u64,
    /// The command's (sequenced, monotonic) timestamp, nanoseconds since the epoch.
    pub ts_ns: u64,
    /// The command's request id, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The event.
    pub event: Event,
}

impl EventEnvelope {
    /// Wraps an event at the current protocol version.
    pub fn new(seq: u64, ts_ns: u64, request_id: Option<String>, event: Event) -> Self {
        EventEnvelope {
            v: PROTOCOL_VERSION,
            seq,
            ts_ns,
            request_id,
            event,
        }
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always encode")
    }
}

/// Where `apply` writes its events. A `Vec<Event>` is one; so is anything that
/// forwards them without allocating.
pub trait EventSink {
    /// Receives the next event.
    fn push(&mut self, event: Event);
}

impl EventSink for Vec<Event> {
    #[inline]
    fn push(&mut self, event: Event) {
        Vec::push(self, event)
    }
}
