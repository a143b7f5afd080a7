//! Delivery reports, disputes and their resolution, and the settlement of
//! delivery entries when their time comes.
//!
//! An entry (made at its slot's gate closure) is settled exactly once, by one of:
//!
//! - **no report**: when engine time passes the report deadline (the slot's end +
//!   the market's `report_window_secs`) with no report, as not delivered;
//! - **a report that stands**: when engine time passes the dispute deadline (the
//!   slot's end + `dispute_window_secs`) with no dispute, as reported;
//! - **a resolution**: a disputed entry waits (it blocks nothing else) until an
//!   admin's `resolve_dispute`, and settles at once as decided.
//!
//! Reports are taken from the slot's start until the report deadline (a later one
//! replaces an earlier one), disputes from the slot's start until the dispute
//! deadline, once. Settling pays and refunds along the entry's chain of trades
//! ([`Escrow::settle`](crate::delivery::Escrow::settle)) and adds the entry to its
//! provider's record. Settlements that time makes due happen before the next
//! command, at most [`SETTLEMENTS_PER_COMMAND_MAX`] at a time, earliest due first.

use crate::book::OrderBook;
use crate::command::{DeliveryReport, Dispute, ResolveDispute};
use crate::delivery::Entry;
use crate::event::{
    DeliveryDisputed, DeliveryReported, DeliverySettled, Event, EventSink, SettlementBasis,
    TradeSettled,
};
use crate::limits::SETTLEMENTS_PER_COMMAND_MAX;
use crate::market::MarketSpec;
use crate::reject::RejectReason;
use crate::slot::{NANOS_PER_SEC, SLOT_SECS};
use crate::state::Engine;
use crate::types::{AccountId, FEE_ACCOUNT};
use crate::units::cash_decimal;
use rust_decimal::Decimal;

/// A reported, received or decided quantity in lots: zero (nothing delivered) up
/// to the entry's GPUs, on the lot.
fn entry_lots(spec: &MarketSpec, quantity: Decimal, entry: &Entry) -> Result<u64, RejectReason> {
    let lots = if quantity.is_zero() {
        0
    } else {
        spec.lots(quantity)?
    };
    if lots > entry.lots {
        return Err(RejectReason::QuantityExceedsEntry);
    }
    Ok(lots)
}

impl<B: OrderBook> Engine<B> {
    /// The unsettled entry `id`, checked to be `account`'s as provider (`true`) or
    /// as holder (`false`), with its market's spec.
    fn own_entry(
        &self,
        account: AccountId,
        id: u64,
        as_provider: bool,
    ) -> Result<(&Entry, &MarketSpec), RejectReason> {
        self.account(account)?;
        let entry = self.entries.get(&id).ok_or(RejectReason::UnknownEntry)?;
        let owner = if as_provider {
            entry.provider
        } else {
            entry.holder
        };
        if owner != account {
            return Err(RejectReason::NotYourEntry);
        }
        Ok((entry, &self.markets[entry.market].spec))
    }

    /// `delivery_report`: the provider says how many GPUs it delivered.
    pub(super) fn report_delivery<S: EventSink>(
        &mut self,
        ts_ns: u64,
        c: &DeliveryReport,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let (entry, spec) = self.own_entry(c.account, c.entry, true)?;
        let delivered = entry_lots(spec, c.delivered, entry)?;
        if entry.disputed.is_some() {
            return Err(RejectReason::EntryDisputed);
        }
        let (report_until, dispute_until) = spec.delivery_deadlines(entry.slot);
        if ts_ns < entry.slot * NANOS_PER_SEC || ts_ns > report_until * NANOS_PER_SEC {
            return Err(RejectReason::ReportWindowClosed);
        }
        let event = DeliveryReported {
            entry: c.entry,
            provider: c.account,
            market: spec.id,
            slot: entry.slot,
            delivered: spec.quantity(delivered),
        };
        self.set_due(c.entry, Some(dispute_until * NANOS_PER_SEC));
        self.entries.get_mut(&c.entry).expect("checked").reported = Some(delivered);
        out.push(Event::DeliveryReported(event));
        Ok(())
    }

    /// `dispute`: the holder says it received fewer GPUs; the entry waits for a
    /// resolution.
    pub(super) fn dispute<S: EventSink>(
        &mut self,
        ts_ns: u64,
        c: &Dispute,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let (entry, spec) = self.own_entry(c.account, c.entry, false)?;
        let received = entry_lots(spec, c.received, entry)?;
        if entry.disputed.is_some() {
            return Err(RejectReason::EntryDisputed);
        }
        let (_, dispute_until) = spec.delivery_deadlines(entry.slot);
        if ts_ns < entry.slot * NANOS_PER_SEC || ts_ns > dispute_until * NANOS_PER_SEC {
            return Err(RejectReason::DisputeWindowClosed);
        }
        let event = DeliveryDisputed {
            entry: c.entry,
            holder: c.account,
            market: spec.id,
            slot: entry.slot,
            received: spec.quantity(received),
            reported: entry.reported.map(|r| spec.quantity(r)),
        };
        self.set_due(c.entry, None);
        self.entries.get_mut(&c.entry).expect("checked").disputed = Some(received);
        out.push(Event::DeliveryDisputed(event));
        Ok(())
    }

    /// `resolve_dispute`: an admin decides what a disputed entry delivered; it
    /// settles at once.
    pub(super) fn resolve_dispute<S: EventSink>(
        &mut self,
        c: &ResolveDispute,
        out: &mut S,
    ) -> Result<(), RejectReason> {
        let entry = self
            .entries
            .get(&c.entry)
            .ok_or(RejectReason::UnknownEntry)?;
        let delivered = entry_lots(&self.markets[entry.market].spec, c.delivered, entry)?;
        if entry.disputed.is_none() {
            return Err(RejectReason::NotDisputed);
        }
        self.settle_entry(c.entry, delivered, SettlementBasis::Resolved, out);
        Ok(())
    }

    /// Moves entry `id`'s default settlement to `due_ns` (`None`: it has none).
    fn set_due(&mut self, id: u64, due_ns: Option<u64>) {
        let entry = self.entries.get_mut(&id).expect("an entry");
        if let Some(old) = entry.due_ns {
            self.dues.remove(&(old, id));
        }
        entry.due_ns = due_ns;
        if let Some(new) = due_ns {
            self.dues.insert((new, id));
        }
    }

    /// Settles the entries whose default settlement is before `ts_ns`, at most
    /// [`SETTLEMENTS_PER_COMMAND_MAX`] of them, earliest due first.
    pub(super) fn settle_due<S: EventSink>(&mut self, ts_ns: u64, out: &mut S) {
        for _ in 0..SETTLEMENTS_PER_COMMAND_MAX {
            let Some(&(due, id)) = self.dues.first() else {
                break;
            };
            if due >= ts_ns {
                break;
            }
            let (delivered, basis) = match self.entries[&id].reported {
                Some(r) => (r, SettlementBasis::Reported),
                None => (0, SettlementBasis::Unreported),
            };
            self.settle_entry(id, delivered, basis, out);
        }
    }

    /// Settles entry `id` as `delivered` lots: every trade of its chain pays its
    /// seller for the delivered part and refunds its buyer for the rest (one
    /// `trade_settled` each), the provider's record counts it, and
    /// `delivery_settled` sums it up.
    fn settle_entry<S: EventSink>(
        &mut self,
        id: u64,
        delivered: u64,
        basis: SettlementBasis,
        out: &mut S,
    ) {
        self.set_due(id, None);
        let entry = self.entries.remove(&id).expect("an entry");
        let spec = self.markets[entry.market].spec.clone();
        let (mut paid, mut refunded, mut fees) = (0u64, 0u64, 0u64);
        for &trade in &entry.trades {
            let escrow = self
                .escrows
                .get_mut(trade)
                .expect("an entry's trades are escrowed");
            let leg = escrow.settle(entry.lots, delivered);
            let (buyer, seller) = (escrow.buyer, escrow.seller);
            if escrow.lots == 0 {
                self.escrows.remove(trade);
            }
            let b = self.account_mut(buyer);
            b.escrow -= leg.escrow_out;
            b.cash.available += leg.refunded;
            let s = self.account_mut(seller);
            s.pending -= leg.claim;
            s.cash.available += leg.paid;
            self.account_mut(FEE_ACCOUNT).cash.available += leg.fees;
            (paid, refunded, fees) = (paid + leg.paid, refunded + leg.refunded, fees + leg.fees);
            out.push(Event::TradeSettled(TradeSettled {
                entry: id,
                trade,
                buyer,
                seller,
                quantity: spec.quantity(entry.lots),
                delivered: spec.quantity(delivered),
                paid: cash_decimal(leg.paid),
                refunded: cash_decimal(leg.refunded),
                fees: cash_decimal(leg.fees),
            }));
        }
        let dispute_lost =
            basis == SettlementBasis::Resolved && delivered < entry.reported.unwrap_or(0);
        let hour = self.last_ts_ns / NANOS_PER_SEC / SLOT_SECS;
        self.records.entry(entry.provider).or_default().add(
            hour,
            entry.market as u32,
            entry.lots,
            delivered,
            dispute_lost,
        );
        out.push(Event::DeliverySettled(DeliverySettled {
            entry: id,
            market: spec.id,
            slot: entry.slot,
            provider: entry.provider,
            holder: entry.holder,
            quantity: spec.quantity(entry.lots),
            delivered: spec.quantity(delivered),
            basis,
            dispute_lost,
            paid: cash_decimal(paid),
            refunded: cash_decimal(refunded),
            fees: cash_decimal(fees),
        }));
    }
}
