//! Accounts and their balances: USD, and GPU-hours per market, each split into
//! available and held. Holds are taken when an order is accepted and released as
//! it fills or is cancelled; the engine keeps `held` equal to what the account's
//! open orders still need.

use crate::types::{ClientOrderId, OrderId};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One asset's balance in integer units (micro-USD or lots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Free to spend, sell or withdraw.
    pub available: u64,
    /// Reserved for open orders.
    pub held: u64,
}

impl Balance {
    /// `available + held`.
    pub fn total(&self) -> u64 {
        self.available + self.held
    }

    /// Moves `amount` from available to held; the caller checked it is available.
    #[inline]
    pub(crate) fn hold(&mut self, amount: u64) {
        assert!(self.available >= amount, "hold within available");
        self.available -= amount;
        self.held += amount;
    }

    /// Moves `amount` from held back to available.
    #[inline]
    pub(crate) fn release(&mut self, amount: u64) {
        assert!(self.held >= amount, "release within held");
        self.held -= amount;
        self.available += amount;
    }

    /// Takes `amount` out of held (it leaves the account).
    #[inline]
    pub(crate) fn spend_held(&mut self, amount: u64) {
        assert!(self.held >= amount, "spend within held");
        self.held -= amount;
    }
}

/// An account's state inside the engine.
#[derive(Debug, Clone, Default)]
pub(crate) struct Account {
    pub cash: Balance,
    /// GPU-hours by market index; grows when first used.
    pub positions: Vec<Balance>,
    /// Open (resting) orders, in id order.
    pub open_orders: BTreeSet<OrderId>,
    /// Client order ids of open orders.
    pub client_ids: FxHashMap<ClientOrderId, OrderId>,
}

impl Account {
    /// The GPU-hour balance in market index `market`, to change (created empty
    /// when first used).
    #[inline]
    pub fn position_mut(&mut self, market: usize) -> &mut Balance {
        if self.positions.len() <= market {
            self.positions.resize(market + 1, Balance::default());
        }
        &mut self.positions[market]
    }

    /// The GPU-hour balance in market index `market`, read-only (zero when never
    /// used).
    #[inline]
    pub fn position(&self, market: usize) -> Balance {
        self.positions.get(market).copied().unwrap_or_default()
    }
}
