//! Why the engine refused a command: a stable, documented code for every case.
//!
//! Rejections are data, not errors: a refused command produces an
//! `OrderRejected`/`CommandRejected` event and changes nothing else. The numeric
//! codes group by stage (1xx shape and reference data, 2xx order validation, 3xx
//! risk and limits, 4xx book state, 5xx delivery, 6xx API keys); the order in which each command's checks run
//! is documented per command in `docs/PROTOCOL.md`. Codes and their text names are
//! part of the protocol and never change meaning.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! reject_reasons {
    ($($(#[$doc:meta])* $variant:ident = $num:literal, $code:literal, $msg:literal;)*) => {
        /// A stable reason for refusing a command.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum RejectReason {
            $($(#[$doc])* $variant,)*
        }

        impl RejectReason {
            /// Every reason, in code order.
            pub const ALL: &'static [RejectReason] = &[$(RejectReason::$variant,)*];

            /// The stable numeric code.
            pub fn number(self) -> u16 {
                match self { $(RejectReason::$variant => $num,)* }
            }

            /// The stable text code, as it appears in JSON.
            pub fn code(self) -> &'static str {
                match self { $(RejectReason::$variant => $code,)* }
            }

            /// A human explanation.
            pub fn message(self) -> &'static str {
                match self { $(RejectReason::$variant => $msg,)* }
            }
        }
    };
}

reject_reasons! {
    /// A command could not be decoded (only from `apply_json`).
    MalformedCommand = 100, "malformed_command", "the command could not be decoded (bad JSON, unknown type or field, wrong version, or too large); see docs/PROTOCOL.md";
    /// The market spec breaks a listing rule.
    InvalidMarketSpec = 101, "invalid_market_spec", "invalid market spec: tick and lot sizes must be positive, tick x lot a whole number of micro-USD, fees at most 1000 bps, 0 < min_price <= max_price on the tick grid, max_price x max_order_quantity at most 10^12 USD, slot_horizon_hours 1 to 8760, gate_closure_secs at most 86400, and report_window_secs <= dispute_window_secs <= 604800";
    /// A market with this id is already listed.
    MarketExists = 102, "market_exists", "a market with this id is already listed";
    /// No market with this id.
    UnknownMarket = 103, "unknown_market", "no market with this id is listed";
    /// The exchange's fee account (0) cannot do this.
    ReservedAccount = 104, "reserved_account", "account 0 is the exchange fee account and can only withdraw";
    /// An account with this id already exists.
    AccountExists = 105, "account_exists", "an account with this id already exists";
    /// No account with this id.
    UnknownAccount = 106, "unknown_account", "no account with this id exists";
    /// A cash amount or capacity quantity is zero or negative, or a cash amount is not a
    /// whole number of micro-USD (an off-lot capacity quantity is `off_lot_quantity`).
    InvalidAmount = 107, "invalid_amount", "amount must be positive and a whole number of micro-USD (cash) or lots (capacity)";
    /// The command's fields do not fit its order type or time in force.
    InvalidOrder = 200, "invalid_order", "fields do not fit: a limit order needs a price, a market order takes no price, time in force, post-only or good_till; cap is for market buys; post-only needs gtc or gtd; good_till goes with gtd only; window and colocate orders are IOC/FOK limit orders, colocate buys only";
    /// The price is not a whole number of ticks.
    OffTickPrice = 201, "off_tick_price", "price is not a multiple of the market's tick size";
    /// The price is not positive or outside the market's price band.
    PriceOutOfBand = 202, "price_out_of_band", "price is outside the market's band [min_price, max_price]";
    /// The quantity is zero or negative.
    InvalidQuantity = 203, "invalid_quantity", "quantity must be positive";
    /// The quantity is not a whole number of lots.
    OffLotQuantity = 204, "off_lot_quantity", "quantity is not a multiple of the market's lot size";
    /// The quantity exceeds the market's maximum order quantity.
    QuantityTooLarge = 205, "quantity_too_large", "quantity exceeds the market's max_order_quantity";
    /// A GTD order's `good_till_ns` is not after the command's timestamp.
    GoodTillInPast = 206, "good_till_in_past", "good_till_ns must be later than the command's timestamp";
    /// Cancel/amend must name exactly one of `order_id` and `client_order_id`.
    InvalidOrderRef = 207, "invalid_order_ref", "name exactly one of order_id and client_order_id";
    /// An amend must change the price or the quantity.
    InvalidAmend = 208, "invalid_amend", "an amend must give a new price, a new quantity, or both";
    /// A slot is not the start of a UTC hour.
    SlotNotOnHour = 209, "slot_not_on_hour", "a slot is the start of a UTC hour: unix seconds divisible by 3600";
    /// The slot's gate has closed (or it is in the past).
    SlotClosed = 210, "slot_closed", "trading in this slot has stopped: its gate closed gate_closure_secs before its start";
    /// The slot is further ahead than the market trades.
    SlotBeyondHorizon = 211, "slot_beyond_horizon", "this slot is further ahead than the market's slot_horizon_hours";
    /// A range of slots ends before it starts, or names a slot and a window at once.
    InvalidSlotRange = 212, "invalid_slot_range", "name either slot or window, and a window's to_slot must not be before its from_slot";
    /// A `min_reliability` out of range, or on an order that may rest or sells.
    InvalidMinReliability = 213, "invalid_min_reliability", "min_reliability is a decimal from 0 to 1 with at most 4 decimals, on a buy that never rests (IOC, FOK, market, window or cluster)";
    /// Not enough available USD for the hold (limit price x quantity + worst-case fee) or withdrawal.
    InsufficientFunds = 300, "insufficient_funds", "not enough available USD (a buy holds limit price x quantity plus the worst-case fee)";
    /// Not enough available GPU-hours in this market for the sell or removal.
    InsufficientCapacity = 301, "insufficient_capacity", "not enough available GPU-hours in this market";
    /// The account has the maximum number of open orders.
    TooManyOpenOrders = 302, "too_many_open_orders", "the account has reached its maximum number of open orders";
    /// The book has the maximum number of resting orders.
    BookFull = 303, "book_full", "the book has reached its maximum number of resting orders";
    /// The deposit would take the exchange's total balance past its limit.
    BalanceLimitExceeded = 304, "balance_limit_exceeded", "this would exceed the exchange's total balance limit for the asset";
    /// An exchange-wide limit (number of markets or accounts) is reached.
    LimitReached = 305, "limit_reached", "an exchange-wide limit (markets or accounts) is reached";
    /// No open order with this id (never existed, filled, cancelled or expired).
    UnknownOrder = 400, "unknown_order", "no open order with this id: it never existed, or was filled, cancelled or expired";
    /// The order belongs to another account.
    NotYourOrder = 401, "not_your_order", "the order belongs to another account";
    /// The account already has an open order with this client order id.
    DuplicateClientOrderId = 402, "duplicate_client_order_id", "the account already has an open order with this client_order_id";
    /// A post-only order would have traded on arrival.
    PostOnlyWouldCross = 403, "post_only_would_cross", "a post-only order would trade on arrival";
    /// A FOK order cannot be filled completely right now.
    FokNotFillable = 404, "fok_not_fillable", "a fill-or-kill order cannot be filled completely at its limit now";
    /// A window order cannot fill completely in every slot.
    WindowNotFillable = 405, "window_not_fillable", "a window order cannot be filled completely in every slot of the window at its limit now (your own orders do not count)";
    /// No single provider can fill a cluster order.
    ClusterNotFillable = 406, "cluster_not_fillable", "no single provider's own inventory can fill every GPU of every slot at the limit now";
    /// No unsettled delivery entry with this id.
    UnknownEntry = 500, "unknown_entry", "no unsettled delivery entry with this id: it never existed, or is already settled";
    /// The account is not the entry's provider (a report) or holder (a dispute).
    NotYourEntry = 501, "not_your_entry", "only the entry's provider may report it, and only its holder may dispute it";
    /// A report outside the slot start .. slot end + report_window_secs.
    ReportWindowClosed = 502, "report_window_closed", "deliveries are reported from the slot's start until report_window_secs after its end";
    /// A dispute outside the slot start .. slot end + dispute_window_secs.
    DisputeWindowClosed = 503, "dispute_window_closed", "deliveries are disputed from the slot's start until dispute_window_secs after its end";
    /// The entry is disputed: no more reports or disputes, only a resolution.
    EntryDisputed = 504, "entry_disputed", "the entry is disputed: it waits for an admin's resolution";
    /// A resolution for an entry nobody disputed.
    NotDisputed = 505, "not_disputed", "only a disputed entry can be resolved";
    /// A delivered or received quantity larger than the entry.
    QuantityExceedsEntry = 506, "quantity_exceeds_entry", "the quantity is more than the entry's GPUs (zero is allowed: nothing delivered)";
    /// The account has no key with this digest (never added, or revoked).
    UnknownApiKey = 600, "unknown_api_key", "the account has no API key with this SHA-256: it was never added, or was revoked";
    /// Revoking the account's last key without `allow_last`.
    LastApiKey = 601, "last_api_key", "this is the account's last API key: add another first (rotation), or set allow_last to lock the account out";
    /// The account has the maximum number of keys.
    TooManyApiKeys = 602, "too_many_api_keys", "the account has the most API keys allowed (API_KEYS_PER_ACCOUNT_MAX, 16): revoke one first";
    /// Another key with this digest exists (of this account or another).
    ApiKeyInUse = 603, "api_key_in_use", "an API key with this SHA-256 already exists";
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code(), self.number(), self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_serde_matches_code() {
        let mut nums: Vec<u16> = RejectReason::ALL.iter().map(|r| r.number()).collect();
        let mut codes: Vec<&str> = RejectReason::ALL.iter().map(|r| r.code()).collect();
        nums.sort();
        nums.dedup();
        codes.sort();
        codes.dedup();
        assert_eq!(nums.len(), RejectReason::ALL.len());
        assert_eq!(codes.len(), RejectReason::ALL.len());
        for r in RejectReason::ALL {
            assert_eq!(
                serde_json::to_string(r).unwrap(),
                format!("\"{}\"", r.code())
            );
        }
    }
}
