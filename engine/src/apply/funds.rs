//! Accounts and what moves in and out of them: `create_account`, `deposit`,
//! `withdraw`, `add_capacity` and `remove_capacity`.
//!
//! These are the only commands that change the exchange's totals (USD across all
//! accounts, GPUs per slot) besides a slot's gate closure, which ends its GPUs;
//! trades only move balances between accounts.
//! A transfer in and a transfer out are one operation in two directions
//! ([`Flow`]): each changes an account's available balance and the matching total
//! together, so the two cannot drift apart.

use crate::account::Account;
use crate::book::OrderBook;
use crate::command::{CapacityTransfer, CashTransfer, CreateAccount, KeyScope};
use crate::event::{AccountCreated, CapacityMoved, CashMoved, Event, EventSink};
use crate::limits::{ACCOUNTS_MAX, CASH_TOTAL_MAX_MICROS, LOTS_TOTAL_MAX};
use crate::reject::RejectReason;
use crate::slot::SLOT_SECS;
use crate::state::Engine;
use crate::types::{AccountId, FEE_ACCOUNT};
use crate::units::{cash_decimal, cash_micros};

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Flow {
    /// Into the exchange: `deposit`, `add_capacity`.
    In,
    /// Out of the exchange: `withdraw`, `remove_capacity`.
    Out,
}

impl Flow {
    /// Adds `amount` to `value` (in) or takes it away (out); the caller checked
    /// that the result is in range.
    fn apply(self, value: &mut u64, amount: u64) {
        match self {
            Flow::In => *value += amount,
            Flow::Out => *value -= amount,
        }
    }
}

impl<B: OrderBook> Engine<B> {
    /// Opens an account: the requested id, or the lowest id no account has. Ids
    /// are never freed, so every id below `next_account_id` is taken and the lowest
    /// free id is at most the number of accounts: with fewer than [`ACCOUNTS_MAX`]
    /// accounts there always is one, whatever explicit ids (up to `u64::MAX`) exist.
    pub(super) fn create_account<S: EventSink>(
        &mut self,
        c: &CreateAccount,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let account = match c.account {
            Some(FEE_ACCOUNT) => return Err(RejectReason::ReservedAccount),
            Some(a) if self.accounts.contains_key(&a) => return Err(RejectReason::AccountExists),
            Some(a) => a,
            None => self.next_account_id,
        };
        if self.accounts.len() >= ACCOUNTS_MAX {
            return Err(RejectReason::LimitReached);
        }
        self.add_account(account, Account::default());
        if let Some(digest) = c.api_key_sha256 {
            // A digest some account already has stays that account's: the new
            // account opens without a key (an admin can add one).
            if !self.key_owners.contains_key(&digest) {
                self.insert_key(account, digest, KeyScope::Full);
            }
        }
        // Skip every id now taken (the one just assigned, and explicit ids above it).
        while self.accounts.contains_key(&self.next_account_id) {
            self.next_account_id += 1;
        }
        out.push(Event::AccountCreated(AccountCreated { account }));
        Ok(())
    }

    /// `deposit` (in) or `withdraw` (out). A deposit credits a client account,
    /// within [`CASH_TOTAL_MAX_MICROS`] for the whole exchange; a withdrawal pays
    /// out available USD, and the fee account may make one too: that is how the
    /// exchange takes its fees.
    pub(super) fn transfer_cash<S: EventSink>(
        &mut self,
        c: &CashTransfer,
        flow: Flow,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        match flow {
            Flow::In => {
                self.account(c.account)?;
            }
            Flow::Out => {
                if !self.accounts.contains_key(&c.account) {
                    return Err(RejectReason::UnknownAccount);
                }
            }
        }
        let amount = cash_micros(c.amount).ok_or(RejectReason::InvalidAmount)?;
        match flow {
            Flow::In => {
                if self
                    .cash_total
                    .checked_add(amount)
                    .is_none_or(|t| t > CASH_TOTAL_MAX_MICROS)
                {
                    return Err(RejectReason::BalanceLimitExceeded);
                }
            }
            Flow::Out => {
                if self.accounts[&c.account].cash.available < amount {
                    return Err(RejectReason::InsufficientFunds);
                }
            }
        }
        let moved = self.move_cash(c.account, amount, flow);
        out.push(match flow {
            Flow::In => Event::Deposited(moved),
            Flow::Out => Event::Withdrawn(moved),
        });
        Ok(())
    }

    /// `add_capacity` (in) or `remove_capacity` (out): the same number of GPUs in
    /// every slot of a range, all slots or none. In: credited to the provider's
    /// inventory, within [`LOTS_TOTAL_MAX`] per slot. Out: only unsold inventory
    /// that no open order holds (`min(available, inventory)` in each slot).
    pub(super) fn transfer_capacity<S: EventSink>(
        &mut self,
        ts_ns: u64,
        c: &CapacityTransfer,
        flow: Flow,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let mi = self.market_ix(&c.market)?;
        self.account(c.account)?;
        let spec = &self.markets[mi].spec;
        let lots = spec.lots(c.quantity)?;
        spec.check_range(c.from_slot, c.to_slot, ts_ns)?;
        for slot in (c.from_slot..=c.to_slot).step_by(SLOT_SECS as usize) {
            let bi = self.find_book(mi, slot);
            let ok = match flow {
                Flow::In => bi
                    .map_or(0, |bi| self.bk(bi).lots_total)
                    .checked_add(lots)
                    .is_some_and(|t| t <= LOTS_TOTAL_MAX),
                Flow::Out => bi.is_some_and(|bi| {
                    let own = self.inventory(bi, c.account);
                    self.gpus(bi, c.account).available.min(own) >= lots
                }),
            };
            if !ok {
                return Err(match flow {
                    Flow::In => RejectReason::BalanceLimitExceeded,
                    Flow::Out => RejectReason::InsufficientCapacity,
                });
            }
        }
        for slot in (c.from_slot..=c.to_slot).step_by(SLOT_SECS as usize) {
            let bi = self.book_for(mi, slot);
            self.move_lots(bi, c.account, lots, flow);
        }
        let moved = CapacityMoved {
            account: c.account,
            market: c.market,
            from_slot: c.from_slot,
            to_slot: c.to_slot,
            quantity: self.markets[mi].spec.quantity(lots),
        };
        out.push(match flow {
            Flow::In => Event::CapacityAdded(moved),
            Flow::Out => Event::CapacityRemoved(moved),
        });
        Ok(())
    }

    /// Moves `amount` micro-USD into or out of an account's available USD and the
    /// exchange's total, and describes the move.
    fn move_cash(&mut self, account: AccountId, amount: u64, flow: Flow) -> CashMoved {
        flow.apply(&mut self.cash_total, amount);
        let cash = &mut self.account_mut(account).cash;
        flow.apply(&mut cash.available, amount);
        CashMoved {
            account,
            amount: cash_decimal(amount),
            available: cash_decimal(cash.available),
        }
    }

    /// Moves `lots` into or out of an account's inventory (and available GPUs) in
    /// book `bi`, and the slot's total.
    fn move_lots(&mut self, bi: usize, account: AccountId, lots: u64, flow: Flow) {
        flow.apply(&mut self.bk_mut(bi).lots_total, lots);
        let holding = self.holding_mut(bi, account);
        flow.apply(&mut holding.gpus.available, lots);
        flow.apply(&mut holding.inventory, lots);
    }
}
