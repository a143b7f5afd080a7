//! Small value types shared by commands, events and the book: identifiers, sides,
//! time-in-force, self-trade prevention, and fixed-capacity inline strings.
//!
//! Identifiers that travel in every command and event (`MarketId`, `ClientOrderId`)
//! are `Copy` inline strings so the hot path never allocates. Their syntax is
//! checked when they are parsed, so an invalid one cannot exist as a value.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An account, chosen by whoever creates it (the admin or gateway). `0` is the
/// exchange's own fee account, which exists from genesis.
pub type AccountId = u64;
/// An order, assigned by the engine from a counter starting at 1; never reused.
pub type OrderId = u64;
/// A trade, assigned by the engine from a counter starting at 1.
pub type TradeId = u64;

/// The exchange's fee account: every fee is credited here.
pub const FEE_ACCOUNT: AccountId = 0;

/// Why an inline string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId(pub &'static str);

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidId {}

/// A short ASCII string stored inline (no heap), ordered and hashed by its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Inline<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Inline<N> {
    fn new(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > N || N > u8::MAX as usize {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Inline {
            len: s.len() as u8,
            bytes,
        })
    }

    fn as_str(&self) -> &str {
        // Only ever built from a `&str` whose bytes were checked to be ASCII.
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("inline ids are ASCII")
    }
}

macro_rules! inline_id {
    ($(#[$doc:meta])* $name:ident, $cap:expr, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Inline<$cap>);

        impl $name {
            /// Longest accepted length in bytes.
            pub const MAX_LEN: usize = $cap;

            /// Parses and validates an identifier.
            pub fn new(s: &str) -> Result<Self, InvalidId> {
                let check: fn(&str) -> Result<(), InvalidId> = $check;
                check(s)?;
                Inline::new(s).map($name).ok_or(InvalidId(concat!(
                    stringify!($name),
                    " must be 1 to ",
                    stringify!($cap),
                    " characters"
                )))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                $name::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

inline_id!(
    /// A market: `{gpu_model}.{region}`, e.g. `h100-sxm.us-east`. Lowercase ASCII
    /// letters, digits and `-`, with exactly one `.` between two non-empty parts.
    MarketId,
    32,
    |s| {
        let mut parts = s.split('.');
        let ok_part = |p: Option<&str>| {
            p.is_some_and(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
        };
        if ok_part(parts.next()) && ok_part(parts.next()) && parts.next().is_none() {
            Ok(())
        } else {
            Err(InvalidId(
                "market id must be {gpu_model}.{region} in lowercase letters, digits and '-'",
            ))
        }
    }
);

inline_id!(
    /// A client's own name for an order, unique among that account's open orders.
    /// ASCII letters, digits and `-_.:`; a UUID fits.
    ClientOrderId,
    36,
    |s| {
        if s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            Ok(())
        } else {
            Err(InvalidId(
                "client order id may use only ASCII letters, digits and - _ . :",
            ))
        }
    }
);

/// Which side of the book an order is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// A demander buying GPU-hours.
    Buy,
    /// A provider (or reseller) selling GPU-hours.
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// Whether an order on this side at `limit` may trade with a resting order at
    /// `resting`.
    #[inline]
    pub fn crosses(self, limit_ticks: i64, resting_ticks: i64) -> bool {
        match self {
            Side::Buy => limit_ticks >= resting_ticks,
            Side::Sell => limit_ticks <= resting_ticks,
        }
    }
}

/// How long a limit order stays live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Good till cancelled: the remainder rests.
    #[default]
    Gtc,
    /// Immediate or cancel: the remainder is cancelled.
    Ioc,
    /// Fill or kill: all of it now, or nothing (rejected, with no side effects).
    Fok,
    /// Good till date: rests until a command with a later timestamp than
    /// `good_till_ns` is sequenced.
    Gtd,
}

impl TimeInForce {
    /// Whether a remainder of an order with this time-in-force rests on the book.
    pub fn rests(self) -> bool {
        matches!(self, TimeInForce::Gtc | TimeInForce::Gtd)
    }
}

/// Limit or market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// Trades at its limit price or better.
    #[default]
    Limit,
    /// Trades at any price; the unfilled rest is cancelled, never rested.
    Market,
}

/// Self-trade prevention: what happens when an incoming order would trade with a
/// resting order of the same account. Decided by the incoming (taker) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StpMode {
    /// Cancel the rest of the incoming order (the default: trading with yourself
    /// only pays fees).
    #[default]
    CancelTaker,
    /// Cancel the resting order and keep matching.
    CancelMaker,
    /// Cancel both.
    CancelBoth,
    /// Allow the self-trade (fees are charged as for any trade).
    None,
}

/// Why an order left the book (or never reached it) without being filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The owner cancelled it.
    UserRequested,
    /// The unfilled rest of an IOC order.
    IocRemainder,
    /// The unfilled rest of a market order (no more liquidity, or funds/cap spent).
    MarketRemainder,
    /// Self-trade prevention.
    SelfTradePrevention,
    /// A GTD order whose time passed.
    Expired,
    /// A mass cancel by the owner.
    MassCancel,
    /// The rest of an order that met
    /// [`MATCHES_PER_COMMAND_MAX`](crate::limits::MATCHES_PER_COMMAND_MAX) makers in
    /// one command and would have met more.
    MatchLimit,
    /// Its slot's gate closed: trading in the slot stopped.
    SlotClosed,
}
