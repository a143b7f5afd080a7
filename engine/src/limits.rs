//! Every bound the engine enforces, as a named constant. Checked at the edge
//! (a command over a bound is rejected), asserted inside.

use crate::units::usd;

/// Highest maker or taker fee, in basis points (10%).
pub const FEE_BPS_MAX: u32 = 1_000;
/// Largest notional of one order, in micro-USD (10^12 USD). Together with the
/// total-cash bound this keeps every sum of cash inside `u64`.
pub const NOTIONAL_MAX_MICROS: u64 = usd(1_000_000_000_000);
/// Largest total of all USD balances on the exchange, in micro-USD (10^12 USD).
pub const CASH_TOTAL_MAX_MICROS: u64 = usd(1_000_000_000_000);
/// Largest total of all GPU-hour balances in one market, in lots.
pub const LOTS_TOTAL_MAX: u64 = 1_000_000_000_000_000;
/// Most open (resting) orders one account may have across all markets.
pub const OPEN_ORDERS_PER_ACCOUNT_MAX: usize = 10_000;
/// Most resting orders in one market's book (both sides).
pub const OPEN_ORDERS_PER_BOOK_MAX: usize = 4_000_000;
/// Most markets the exchange lists.
pub const MARKETS_MAX: usize = 4_096;
/// Longest slot horizon a market may have, in hours (a year).
pub const SLOT_HORIZON_HOURS_MAX: u32 = 8_760;
/// Most slots in one window order (31 days).
pub const WINDOW_SLOTS_MAX: u64 = 744;
/// Longest gate closure a market may have, in seconds (a day).
pub const GATE_CLOSURE_SECS_MAX: u32 = 86_400;
/// Most accounts the exchange holds.
pub const ACCOUNTS_MAX: usize = 10_000_000;
/// Most API keys one account may have at once (rotation adds the new key before
/// revoking the old, so two are needed; a few more let one key per machine or
/// per bot be revoked alone).
pub const API_KEYS_PER_ACCOUNT_MAX: usize = 16;

/// Most makers one order meets in one command (a `place_order`, or an
/// `amend_order` that re-queues): each trade and each resting order that
/// self-trade prevention cancels counts one. An order that would meet more is
/// stopped there and the rest of it is cancelled (`match_limit`); a FOK order
/// that could only fill by meeting more is refused as not fillable.
///
/// Why 10,000: it is the same size as the largest other command
/// ([`OPEN_ORDERS_PER_ACCOUNT_MAX`] cancels of a mass cancel), so no command is
/// much larger than the one the exchange already accepts. A trade event is about
/// 400 bytes of JSON, so such an order writes about 4 MB to the ledger and takes
/// milliseconds to match: a sweep cannot stall the single-threaded engine or the
/// group commit for long. No realistic order meets that many makers: a book of
/// one-lot orders is what it takes (without the bound, a default market's
/// 1,000,000-lot order could meet a million of them).
pub const MATCHES_PER_COMMAND_MAX: usize = 10_000;

/// Most GTD expiries processed before one command. When more orders are due, the
/// earliest-expiring ones are expired (earliest `good_till_ns` first, ties by order
/// id) and the rest, still due, are expired before the next commands, in the same
/// order. Until then they stay on the book like any resting order. 10,000, the
/// size of the other per-command bounds, for the same reasons.
pub const EXPIRIES_PER_COMMAND_MAX: usize = 10_000;

/// Most gate-closure events emitted before one command (`order_cancelled` with
/// `slot_closed`, `delivery_scheduled`, `inventory_expired`, `slot_closed`). A
/// slot whose gate passed is closed in that order, oldest gate first; when the
/// work does not fit, the rest is done before the next commands (the exchange
/// sequences ticks, so it continues on an idle exchange too). A slot part-way
/// closed takes no new orders, capacity or amends (its gate has passed), and its
/// summary comes last. 10,000, the size of the other per-command bounds.
pub const GATE_CLOSURE_EVENTS_PER_COMMAND_MAX: usize = 10_000;

/// Longest a market's `dispute_window_secs` (and so its `report_window_secs`)
/// may be: a week after the slot ends.
pub const DELIVERY_WINDOW_SECS_MAX: u32 = 7 * 86_400;

/// Most delivery entries settled before one command. An entry settles with one
/// `trade_settled` per trade of its chain (at most [`TRADES_PER_LOT_MAX`]) and
/// one `delivery_settled`; entries due are settled earliest due first (ties by
/// entry id), and any left over are settled before the next commands.
pub const SETTLEMENTS_PER_COMMAND_MAX: usize = 500;

/// Most events the settlements before one command emit.
pub const SETTLEMENT_EVENTS_PER_COMMAND_MAX: usize =
    SETTLEMENTS_PER_COMMAND_MAX * (TRADES_PER_LOT_MAX + 1);

/// Most trades one GPU goes through within a slot (a provider's sale and up to
/// 15 resales). GPUs bought through the last of them are kept to the gate: they
/// are the buyer's and are delivered to it, but cannot be offered again. It bounds
/// the trade chain a `delivery_scheduled` carries (and the provenance kept per
/// lot), so every event stays within [`EVENT_JSON_BYTES_MAX`].
pub const TRADES_PER_LOT_MAX: usize = 16;

/// Events of any command that is neither an order command nor a mass cancel, or
/// of a rejection: one, except `resolve_dispute`, which settles its entry at once
/// (one `trade_settled` per trade of its chain, then `delivery_settled`).
const EVENTS_OF_A_SIMPLE_COMMAND: usize = TRADES_PER_LOT_MAX + 1;

/// Most events one command can make the engine emit, whatever the command:
///
/// ```text
///   EXPIRIES_PER_COMMAND_MAX                     expiries before the command
/// + GATE_CLOSURE_EVENTS_PER_COMMAND_MAX          gate closures before the command
/// + SETTLEMENT_EVENTS_PER_COMMAND_MAX            settlements before the command
///                                                (500 entries x (16 + 1) events)
/// + max( 1 + MATCHES_PER_COMMAND_MAX + 1,        place_order: order_accepted, one event
///                                                per maker met (trade_executed, or
///                                                order_cancelled by STP), then
///                                                order_rested or order_cancelled;
///                                                amend_order: order_amended, the same
///        OPEN_ORDERS_PER_ACCOUNT_MAX + 1,        mass_cancel: one order_cancelled per
///                                                open order, then mass_cancelled
///        17 )                                    resolve_dispute (16 trades + 1); any
///                                                other command, or a rejection, 1
/// = 10,000 + 10,000 + 8,500 + max(10,002, 10,001, 17) = 38,502
/// ```
///
/// The ledger refuses a command with more events than it accepts, which would stop
/// the pipeline on every restart; the sequencer asserts at compile time that this
/// is within the ledger's bound.
pub const EVENTS_PER_COMMAND_WORST: usize = {
    let order = 1 + MATCHES_PER_COMMAND_MAX + 1;
    let mass_cancel = OPEN_ORDERS_PER_ACCOUNT_MAX + 1;
    let command = if order > mass_cancel {
        order
    } else {
        mass_cancel
    };
    let command = if command > EVENTS_OF_A_SIMPLE_COMMAND {
        command
    } else {
        EVENTS_OF_A_SIMPLE_COMMAND
    };
    EXPIRIES_PER_COMMAND_MAX
        + GATE_CLOSURE_EVENTS_PER_COMMAND_MAX
        + SETTLEMENT_EVENTS_PER_COMMAND_MAX
        + command
};

/// Longest JSON encoding of one event (as the ledger stores it), in bytes. Every
/// field of every event is bounded: ids are `u64`, market ids at most 32 bytes,
/// client order ids at most 36, decimals at most 28 digits; the widest event
/// (`trade_executed` at its extremes) is 573 bytes. A unit test builds the
/// widest events and checks them against this.
pub const EVENT_JSON_BYTES_MAX: usize = 1_024;

// ----- idempotent request ids --------------------------------------------------
// How long the engine remembers the request ids of idempotent commands (envelopes
// with `idempotent: true`): a repeat of a remembered id is recorded as
// `duplicate_request` and changes nothing. An id is forgotten when either bound
// passes it, whichever comes first.

/// Most idempotent request ids remembered: remembering one more forgets the oldest.
pub const REQUEST_IDS_REMEMBERED_MAX: usize = 100_000;
/// Longest a request id is remembered, in nanoseconds of engine time (one hour)
/// after the timestamp of the command that first carried it.
pub const REQUEST_ID_WINDOW_NS: u64 = 3_600 * 1_000_000_000;
