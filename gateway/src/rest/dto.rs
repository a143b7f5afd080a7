//! Request and response bodies of the REST API, and the parsing of their fields.
//!
//! Requests deny unknown fields (a typo must never silently change an order) and
//! carry decimals as strings, exactly as the protocol does (`docs/PROTOCOL.md`):
//! plain digits with an optional fraction, no exponents, no JSON numbers. Ids are
//! checked by the engine's own types. Every parse error is a 400 with a stable code
//! naming the field.

use gpux_engine::event::SettlementBasis;
use gpux_engine::{
    AccountId, CancelReason, ClientOrderId, EntryState, MarketId, OrderId, OrderType, PositionView,
    ProviderView, Side, StpMode, TimeInForce, TradeId, UsdView,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::history::{Fill, OrderRecord, OrderStatus};
use crate::marketdata::wire::SlotName;

/// Parses a decimal string field.
pub fn decimal(field: &str, s: &str) -> Result<Decimal, ApiError> {
    gpux_engine::decimal::parse(s)
        .map_err(|e| ApiError::bad_request("invalid_decimal", format!("{field}: {e}")))
}

/// Parses an optional decimal string field.
pub fn opt_decimal(field: &str, s: &Option<String>) -> Result<Option<Decimal>, ApiError> {
    s.as_deref().map(|s| decimal(field, s)).transpose()
}

/// Parses a market id.
pub fn market_id(s: &str) -> Result<MarketId, ApiError> {
    MarketId::new(s).map_err(|e| ApiError::bad_request("invalid_market_id", e.to_string()))
}

/// Parses a slot written `2026-12-07T09:00Z`; 400 `invalid_slot` naming the
/// field and the reason otherwise.
pub fn slot(field: &str, s: &str) -> Result<u64, ApiError> {
    gpux_engine::slot::parse_slot(s)
        .map_err(|e| ApiError::bad_request("invalid_slot", format!("{field}: {e}")))
}

/// Parses a client order id.
pub fn client_order_id(s: &str) -> Result<ClientOrderId, ApiError> {
    ClientOrderId::new(s)
        .map_err(|e| ApiError::bad_request("invalid_client_order_id", e.to_string()))
}

// ----- requests ------------------------------------------------------------------

/// `POST /v1/orders`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    /// Market id.
    pub market: String,
    /// The delivery slot, `2026-12-07T09:00Z`; or give `window`.
    #[serde(default)]
    pub slot: Option<String>,
    /// The same quantity in every slot of a range, all or nothing (IOC/FOK limit
    /// orders).
    #[serde(default)]
    pub window: Option<WindowRequest>,
    /// A cluster: every GPU from one provider's own inventory (IOC/FOK limit buys).
    #[serde(default)]
    pub colocate: bool,
    /// `buy` or `sell`.
    pub side: Side,
    /// `limit` (default) or `market`.
    #[serde(default)]
    pub order_type: OrderType,
    /// Limit price (limit orders only).
    #[serde(default)]
    pub price: Option<String>,
    /// GPU-hours.
    pub quantity: String,
    /// Limit orders only; default `gtc`.
    #[serde(default)]
    pub time_in_force: Option<TimeInForce>,
    /// With `gtd` only.
    #[serde(default)]
    pub good_till_ns: Option<u64>,
    /// Rest only (gtc/gtd limit orders).
    #[serde(default)]
    pub post_only: bool,
    /// Market buys only: most USD to spend, fees included.
    #[serde(default)]
    pub cap: Option<String>,
    /// The client's id for the order; also its idempotency key when no
    /// `Idempotency-Key` header is sent.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// Self-trade prevention; default `cancel_taker`.
    #[serde(default)]
    pub stp: StpMode,
    /// Buys that never rest: trade only with sellers at least this reliable
    /// (0 to 1, at most 4 decimals).
    #[serde(default)]
    pub min_reliability: Option<String>,
}

/// Consecutive slots, both ends included.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowRequest {
    /// The first slot, `2026-12-07T09:00Z`.
    pub from_slot: String,
    /// The last slot (included).
    pub to_slot: String,
}

/// `PATCH /v1/orders/{order_id}` and `PATCH /v1/orders/by-client-id/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmendOrderRequest {
    /// New limit price.
    #[serde(default)]
    pub price: Option<String>,
    /// New open quantity.
    #[serde(default)]
    pub quantity: Option<String>,
}

/// `POST /v1/cancel-after`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelAfterRequest {
    /// Cancel all open orders unless renewed within this many milliseconds; 0
    /// disarms.
    pub timeout_ms: u64,
}

/// The answer to `POST /v1/cancel-after`.
#[derive(Debug, Clone, Serialize)]
pub struct CancelAfterResponse {
    /// The account.
    pub account: AccountId,
    /// The gateway's clock, unix ms.
    pub current_time_ms: u64,
    /// When its open orders will be cancelled unless renewed, unix ms; `null`:
    /// disarmed.
    pub trigger_time_ms: Option<u64>,
}

/// `?market=&slot=` of open orders and mass cancel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketQuery {
    /// Only this market.
    #[serde(default)]
    pub market: Option<String>,
    /// Only this slot of `market` (needs `market`).
    #[serde(default)]
    pub slot: Option<String>,
}

/// Default page size of `GET /v1/fills`.
pub const FILLS_LIMIT_DEFAULT: usize = 100;
/// Largest page size of `GET /v1/fills`.
pub const FILLS_LIMIT_MAX: usize = 1_000;

/// `GET /v1/fills` query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillsQuery {
    /// Only this market.
    #[serde(default)]
    pub market: Option<String>,
    /// Only fills with a trade id below this (the previous page's `next_before`).
    #[serde(default)]
    pub before: Option<TradeId>,
    /// Page size, 1 to 1,000 (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Deposits and withdrawals.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// USD, a whole number of micro-USD.
    pub amount: String,
}

/// `POST /v1/capacity/add|remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityRequest {
    /// Market id.
    pub market: String,
    /// The first slot, `2026-12-07T09:00Z`.
    pub from_slot: String,
    /// The last slot, included (equal to `from_slot` for one slot).
    pub to_slot: String,
    /// GPUs in each slot, a whole number of lots.
    pub quantity: String,
}

/// `POST /v1/accounts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    /// The id to give the account (default: the lowest free id, which the engine
    /// assigns).
    #[serde(default)]
    pub account: Option<AccountId>,
    /// SHA-256 (64 lowercase hex digits) of a key the operator generated; then the
    /// gateway generates none and returns none.
    #[serde(default)]
    pub api_key_sha256: Option<String>,
}

/// `POST /v1/markets`: the protocol's `list_market` fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMarketRequest {
    /// `{gpu_model}.{region}`.
    pub market: String,
    /// USD per GPU-hour of one price step.
    pub tick_size: String,
    /// GPU-hours in one quantity step.
    pub lot_size: String,
    /// Maker fee, basis points (0 to 1,000).
    pub maker_fee_bps: u32,
    /// Taker fee, basis points (0 to 1,000).
    pub taker_fee_bps: u32,
    /// Lowest limit price (default one tick).
    #[serde(default)]
    pub min_price: Option<String>,
    /// Highest limit price.
    #[serde(default)]
    pub max_price: Option<String>,
    /// Largest order quantity.
    #[serde(default)]
    pub max_order_quantity: Option<String>,
    /// How many hours ahead slots trade (1 to 8,760; default 168).
    #[serde(default)]
    pub slot_horizon_hours: Option<u32>,
    /// Trading in a slot stops this many seconds before it starts (0 to 86,400;
    /// default 300).
    #[serde(default)]
    pub gate_closure_secs: Option<u32>,
    /// Providers report a slot's deliveries until this many seconds after its
    /// end (0 to 604,800; default 3,600; at most `dispute_window_secs`).
    #[serde(default)]
    pub report_window_secs: Option<u32>,
    /// Holders may dispute a delivery until this many seconds after the slot's
    /// end (0 to 604,800; default 7,200).
    #[serde(default)]
    pub dispute_window_secs: Option<u32>,
}

// ----- responses -----------------------------------------------------------------

/// An order with its fills.
#[derive(Debug, Clone, Serialize)]
pub struct OrderResponse {
    /// The engine's id.
    pub order_id: OrderId,
    /// The client's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    /// The market.
    pub market: MarketId,
    /// The delivery slot (a window's first).
    pub slot: SlotName,
    /// A window's last slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_slot: Option<SlotName>,
    /// A cluster order.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub colocate: bool,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// Limit price (absent for market orders).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "gpux_engine::decimal::strict_option"
    )]
    pub price: Option<Decimal>,
    /// Ordered GPU-hours (a window: the quantity in each slot times its slots).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub quantity: Decimal,
    /// GPU-hours filled.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub filled: Decimal,
    /// GPU-hours open on the book (zero once closed).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub remaining: Decimal,
    /// `open`, `partially_filled`, `filled`, `cancelled` or `expired`.
    pub status: OrderStatus,
    /// Why it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<CancelReason>,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// GTD expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub good_till_ns: Option<u64>,
    /// The same, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub good_till_ms: Option<u64>,
    /// Post-only.
    pub post_only: bool,
    /// Self-trade prevention.
    pub stp: StpMode,
    /// Fills (for a placement: those of the placing command; for a lookup: all
    /// kept; absent in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fills: Option<Vec<Fill>>,
    /// The command that placed it.
    pub created_cmd_seq: u64,
    /// The last command that changed it (for a placement: the placing command).
    pub cmd_seq: u64,
}

impl OrderResponse {
    /// From a record and fills.
    pub fn new(r: &OrderRecord, fills: Option<Vec<Fill>>) -> Self {
        OrderResponse {
            order_id: r.order_id,
            client_order_id: r.client_order_id,
            market: r.market,
            slot: SlotName(r.slot),
            to_slot: r.to_slot.map(SlotName),
            colocate: r.colocate,
            side: r.side,
            order_type: r.order_type,
            price: r.price,
            quantity: r.quantity,
            filled: r.filled,
            remaining: r.remaining,
            status: r.status,
            cancel_reason: r.cancel_reason,
            time_in_force: r.time_in_force,
            good_till_ns: r.good_till_ns,
            good_till_ms: r.good_till_ns.map(crate::marketdata::wire::ms),
            post_only: r.post_only,
            stp: r.stp,
            fills,
            created_cmd_seq: r.created_cmd_seq,
            cmd_seq: r.updated_cmd_seq,
        }
    }
}

/// A list of orders.
#[derive(Debug, Clone, Serialize)]
pub struct OrdersResponse {
    /// The orders, by id.
    pub orders: Vec<OrderResponse>,
    /// The replica's last applied command.
    pub as_of_cmd_seq: u64,
}

/// The result of a cancel.
#[derive(Debug, Clone, Serialize)]
pub struct CancelResponse {
    /// The order.
    pub order_id: OrderId,
    /// Its market.
    pub market: MarketId,
    /// Its slot.
    pub slot: SlotName,
    /// Its side.
    pub side: Side,
    /// Its limit price.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "gpux_engine::decimal::strict_option"
    )]
    pub price: Option<Decimal>,
    /// GPU-hours that were open and are now cancelled.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub cancelled_quantity: Decimal,
    /// Always `cancelled`.
    pub status: OrderStatus,
    /// The cancelling command.
    pub cmd_seq: u64,
}

/// Where an amended order ended up after the amend's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AmendStatus {
    /// Still on the book.
    Open,
    /// Filled by the trades the amend caused.
    Filled,
    /// Cancelled by self-trade prevention after re-queueing.
    Cancelled,
}

/// The result of an amend.
#[derive(Debug, Clone, Serialize)]
pub struct AmendResponse {
    /// The order.
    pub order_id: OrderId,
    /// Its market.
    pub market: MarketId,
    /// Its slot.
    pub slot: SlotName,
    /// Its side.
    pub side: Side,
    /// Price before.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub old_price: Decimal,
    /// Open quantity before.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub old_quantity: Decimal,
    /// Price after.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub price: Decimal,
    /// Open quantity after the amend, before any trading it caused.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub quantity: Decimal,
    /// Whether it kept its place in the queue.
    pub priority_kept: bool,
    /// Open quantity after the command (zero if filled or cancelled).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub remaining: Decimal,
    /// `open`, `filled` or `cancelled`.
    pub status: AmendStatus,
    /// Fills the amend caused (as taker).
    pub fills: Vec<Fill>,
    /// The amending command.
    pub cmd_seq: u64,
}

/// The result of a mass cancel.
#[derive(Debug, Clone, Serialize)]
pub struct MassCancelResponse {
    /// The market it was limited to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market: Option<MarketId>,
    /// The slot it was limited to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<SlotName>,
    /// The cancelled orders, ascending.
    pub cancelled: Vec<OrderId>,
    /// How many.
    pub count: u64,
    /// The command.
    pub cmd_seq: u64,
}

/// A page of fills.
#[derive(Debug, Clone, Serialize)]
pub struct FillsResponse {
    /// Newest first.
    pub fills: Vec<Fill>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<TradeId>,
}

/// An account's balances.
#[derive(Debug, Clone, Serialize)]
pub struct BalancesResponse {
    /// The account.
    pub account: AccountId,
    /// USD: available, held, in escrow (paid for GPUs not yet delivered) and
    /// pending (owed for GPUs sold, paid on delivery).
    pub usd: UsdView,
    /// GPUs per (market, slot) with any, in market then slot order.
    pub gpus: Vec<PositionJson>,
    /// The replica's last applied command.
    pub as_of_cmd_seq: u64,
}

/// GPUs of one slot of one market.
#[derive(Debug, Clone, Serialize)]
pub struct PositionJson {
    /// The market.
    pub market: MarketId,
    /// The delivery slot.
    pub slot: SlotName,
    /// Free to sell.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub available: Decimal,
    /// Held by open sells.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub held: Decimal,
    /// Of all the GPUs, the account's own unsold inventory (the rest was bought).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub inventory: Decimal,
    /// Besides these, bought GPUs kept to the gate: they went through the most
    /// trades a GPU may in a slot, so they are delivered here and cannot be offered.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub kept: Decimal,
}

impl From<&PositionView> for PositionJson {
    fn from(p: &PositionView) -> Self {
        PositionJson {
            market: p.market,
            slot: SlotName(p.slot),
            available: p.balance.available,
            held: p.balance.held,
            inventory: p.inventory,
            kept: p.kept,
        }
    }
}

/// A deposit or withdrawal done.
#[derive(Debug, Clone, Serialize)]
pub struct CashResponse {
    /// The account.
    pub account: AccountId,
    /// USD moved.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub amount: Decimal,
    /// Available USD after it.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub available: Decimal,
    /// The command.
    pub cmd_seq: u64,
}

/// Capacity added or removed.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityResponse {
    /// The account.
    pub account: AccountId,
    /// The market.
    pub market: MarketId,
    /// The first slot.
    pub from_slot: SlotName,
    /// The last slot (included).
    pub to_slot: SlotName,
    /// GPUs moved in each slot.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub quantity: Decimal,
    /// The command.
    pub cmd_seq: u64,
}

/// An account created.
#[derive(Debug, Clone, Serialize)]
pub struct CreateAccountResponse {
    /// The new account's id.
    pub account: AccountId,
    /// Its API key: shown only in the response of the request that created it
    /// (absent on idempotent replays and when the operator supplied the digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The command.
    pub cmd_seq: u64,
}

/// The markets.
#[derive(Debug, Clone, Serialize)]
pub struct MarketsResponse {
    /// In listing order.
    pub markets: Vec<MarketView>,
}

/// A listed market with its command.
#[derive(Debug, Clone, Serialize)]
pub struct MarketResponse {
    /// The spec, every default resolved.
    #[serde(flatten)]
    pub market: MarketView,
    /// The listing command, when answering a listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd_seq: Option<u64>,
}

/// What one unit of every market is: one GPU for one hour.
pub const BASE_UNIT: &str = "gpu_hour";
/// The currency every price is in.
pub const QUOTE: &str = "USD";

/// A market as the API shows it: its spec (the `market_listed` event's fields) and
/// what is traded for what — `base` the GPU model (the market id before its dot),
/// one unit of which is one GPU for one hour (`base_unit`), in `region` (after the
/// dot), priced in `quote` per unit.
#[derive(Debug, Clone, Serialize)]
pub struct MarketView {
    /// The spec, every default resolved.
    #[serde(flatten)]
    pub spec: gpux_engine::event::MarketListed,
    /// The GPU model, e.g. `h100-sxm`.
    pub base: String,
    /// `gpu_hour`: a quantity of 1 is one GPU for one hour.
    pub base_unit: &'static str,
    /// The region, e.g. `us-east`.
    pub region: String,
    /// `USD`.
    pub quote: &'static str,
}

impl From<gpux_engine::event::MarketListed> for MarketView {
    fn from(spec: gpux_engine::event::MarketListed) -> Self {
        let id = spec.market.as_str().to_owned();
        let (base, region) = id.split_once('.').unwrap_or((id.as_str(), ""));
        MarketView {
            base: base.to_owned(),
            base_unit: BASE_UNIT,
            region: region.to_owned(),
            quote: QUOTE,
            spec,
        }
    }
}

/// A market's spec as the API shows it.
pub fn market_view(spec: &gpux_engine::market::MarketSpec) -> MarketView {
    MarketView::from(gpux_engine::event::MarketListed::from(spec))
}

/// An account's delivery schedule.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleResponse {
    /// The account.
    pub account: AccountId,
    /// Entries naming it, in the order they were fixed (gate closures).
    pub entries: Vec<ScheduleEntry>,
    /// The replica's last applied command.
    pub as_of_cmd_seq: u64,
}

/// One delivery: a provider's GPUs to their final holder for one slot.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleEntry {
    /// The entry's id.
    pub entry: u64,
    /// The market.
    pub market: MarketId,
    /// The slot delivered.
    pub slot: SlotName,
    /// `provider` (the account delivers), `holder` (it receives) or `both`.
    pub role: &'static str,
    /// Who delivers.
    pub provider: AccountId,
    /// Who receives.
    pub holder: AccountId,
    /// GPUs for the hour.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub quantity: Decimal,
    /// The trades the GPUs went through, from the provider's sale to the
    /// holder's purchase.
    pub trades: Vec<TradeId>,
    /// `scheduled`, `reported`, `disputed` or `settled`.
    pub state: EntryState,
    /// The provider reports until then (unix seconds).
    pub report_until: u64,
    /// The holder may dispute until then (unix seconds).
    pub dispute_until: u64,
    /// What the provider reported delivered.
    #[serde(
        with = "gpux_engine::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub reported: Option<Decimal>,
    /// What the holder, disputing, said it received.
    #[serde(
        with = "gpux_engine::decimal::strict_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub disputed: Option<Decimal>,
    /// Its settlement, once settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settlement: Option<Settlement>,
}

/// How a delivery entry settled (USD summed over its chain of trades).
#[derive(Debug, Clone, Serialize)]
pub struct Settlement {
    /// GPUs delivered.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub delivered: Decimal,
    /// `unreported`, `reported` or `resolved`.
    pub basis: SettlementBasis,
    /// A resolution found less than the provider reported.
    pub dispute_lost: bool,
    /// Paid to sellers.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub paid: Decimal,
    /// Refunded to buyers.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub refunded: Decimal,
    /// Fees charged.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub fees: Decimal,
}

impl ScheduleEntry {
    /// The entry as `account` sees it.
    pub fn new(account: AccountId, r: &crate::history::DeliveryRecord) -> Self {
        let d = &r.scheduled;
        let role = match (d.provider == account, d.holder == account) {
            (true, true) => "both",
            (true, false) => "provider",
            _ => "holder",
        };
        ScheduleEntry {
            entry: d.entry,
            market: d.market,
            slot: SlotName(d.slot),
            role,
            provider: d.provider,
            holder: d.holder,
            quantity: d.quantity,
            trades: d.trades.clone(),
            state: r.state(),
            report_until: d.report_until,
            dispute_until: d.dispute_until,
            reported: r.reported,
            disputed: r.disputed,
            settlement: r.settled.map(|s| Settlement {
                delivered: s.delivered,
                basis: s.basis,
                dispute_lost: s.dispute_lost,
                paid: s.paid,
                refunded: s.refunded,
                fees: s.fees,
            }),
        }
    }
}

/// `GET /v1/markets/{market}/slots/{slot}/blocks`: asks with the largest block
/// one provider offers from its own inventory at each price or better.
#[derive(Debug, Clone, Serialize)]
pub struct BlocksResponse {
    /// The market.
    pub market: MarketId,
    /// The slot.
    pub slot: SlotName,
    /// Best (lowest) first.
    pub asks: Vec<gpux_engine::BlockLevel>,
    /// The replica's last applied command.
    pub as_of_cmd_seq: u64,
}

/// `?depth=` of the blocks endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthQuery {
    /// Levels, 1 to 1,000 (default 50).
    #[serde(default)]
    pub depth: Option<usize>,
    /// Only the asks of sellers at least this reliable (0 to 1).
    #[serde(default)]
    pub min_reliability: Option<String>,
}

/// Default levels of `/blocks`.
pub const BLOCKS_DEPTH_DEFAULT: usize = 50;
/// Most levels of `/blocks`.
pub const BLOCKS_DEPTH_MAX: usize = 1_000;

/// `POST /v1/deliveries/{entry}/report` and `/resolve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveredRequest {
    /// GPUs delivered for the slot's hour: 0 up to the entry's quantity, on the
    /// lot.
    pub delivered: String,
}

/// `POST /v1/deliveries/{entry}/dispute`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceivedRequest {
    /// GPUs the holder received: 0 up to the entry's quantity, on the lot.
    pub received: String,
}

/// What a report, dispute or resolution did.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryResponse {
    /// The entry.
    pub entry: u64,
    /// The event: `delivery_reported`, `delivery_disputed` or `delivery_settled`.
    pub event: gpux_engine::Event,
    /// The command's sequence number.
    pub cmd_seq: u64,
}

/// A provider's public record.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderRecord {
    /// The provider's account.
    pub account: AccountId,
    /// `delivered / obligated` over the last 30 days (4 decimals, rounded down),
    /// or `"new"` with nothing settled in that time.
    pub reliability: String,
    /// GPU-hours it had to deliver (settled entries, last 30 days).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub obligated: Decimal,
    /// GPU-hours delivered (last 30 days).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub delivered: Decimal,
    /// Disputes lost (last 30 days).
    pub disputes_lost: u64,
    /// Its own GPUs in open slots, by market: listed (unsold) and sold.
    pub ahead: Vec<gpux_engine::ProviderAhead>,
}

impl ProviderRecord {
    /// The record of `account` from the engine's view (`None`: never settled).
    pub fn new(
        view: Option<ProviderView>,
        account: AccountId,
        ahead: &[gpux_engine::ProviderAhead],
    ) -> Self {
        let (obligated, delivered, disputes_lost, reliability) = view
            .map_or((Decimal::ZERO, Decimal::ZERO, 0, None), |v| {
                (v.obligated, v.delivered, v.disputes_lost, v.reliability)
            });
        ProviderRecord {
            account,
            reliability: reliability.map_or_else(|| "new".to_owned(), |r| r.to_string()),
            obligated,
            delivered,
            disputes_lost,
            ahead: ahead.to_vec(),
        }
    }
}

/// `GET /v1/providers`.
#[derive(Debug, Clone, Serialize)]
pub struct ProvidersResponse {
    /// Providers by account.
    pub providers: Vec<ProviderRecord>,
    /// The replica's last applied command.
    pub as_of_cmd_seq: u64,
}
