//! Every bound the engine enforces, as a named constant. Checked at the edge
//! (a command over a bound is rejected), asserted inside.

use crate::market::usd;

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
/// Most accounts the exchange holds.
pub const ACCOUNTS_MAX: usize = 10_000_000;

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
