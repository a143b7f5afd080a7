//! Accounts and what moves in and out of them: `create_account`, `deposit`,
//! `withdraw`, `add_capacity` and `remove_capacity`.
//!
//! These are the only commands that change the exchange's totals (USD across all
//! accounts, GPU-hours per market); trades only move balances between accounts.
//! A transfer in and a transfer out are one operation in two directions
//! ([`Flow`]): each changes an account's available balance and the matching total
//! together, so the two cannot drift apart.

use crate::account::Account;
use crate::book::OrderBook;
use crate::command::{CapacityTransfer, CashTransfer, CreateAccount};
use crate::event::{AccountCreated, CapacityMoved, CashMoved, Event, EventSink};
use crate::limits::{ACCOUNTS_MAX, CASH_TOTAL_MAX_MICROS, LOTS_TOTAL_MAX};
use crate::reject::RejectReason;
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
        self.accounts.insert(account, Account::default());
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

    /// `add_capacity` (in) or `remove_capacity` (out): GPU-hours in a market
    /// credited to a client account, within [`LOTS_TOTAL_MAX`] for the market, or
    /// taken out of its available GPU-hours.
    pub(super) fn transfer_capacity<S: EventSink>(
        &mut self,
        c: &CapacityTransfer,
        flow: Flow,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let mi = self.market_ix(&c.market)?;
        let account = self.account(c.account)?;
        let lots = self.markets[mi].spec.lots(c.quantity)?;
        match flow {
            Flow::In => {
                if self.markets[mi]
                    .lots_total
                    .checked_add(lots)
                    .is_none_or(|t| t > LOTS_TOTAL_MAX)
                {
                    return Err(RejectReason::BalanceLimitExceeded);
                }
            }
            Flow::Out => {
                if account.position(mi).available < lots {
                    return Err(RejectReason::InsufficientCapacity);
                }
            }
        }
        let moved = self.move_lots(mi, c.account, lots, flow);
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

    /// Moves `lots` into or out of an account's available GPU-hours in market `mi`
    /// and the market's total, and describes the move.
    fn move_lots(&mut self, mi: usize, account: AccountId, lots: u64, flow: Flow) -> CapacityMoved {
        flow.apply(&mut self.markets[mi].lots_total, lots);
        let position = self.account_mut(account).position_mut(mi);
        flow.apply(&mut position.available, lots);
        let available = position.available;
        let spec = &self.markets[mi].spec;
        CapacityMoved {
            account,
            market: spec.id,
            quantity: spec.quantity(lots),
            available: spec.quantity(available),
        }
    }
}
