//! Pay on delivery: the escrow of every trade, the delivery entries a closed slot
//! leaves, and each provider's delivery record.
//!
//! A fill does not pay the seller. The buyer's USD (notional plus its fee) goes
//! into **escrow**, and the seller is owed the notional less its fee (its
//! **pending** USD). When a slot's gate closes, every GPU in it becomes part of one
//! delivery [`Entry`] (provider → final holder, with the chain of trades the GPUs
//! came through). An entry is settled once its delivery is known (see
//! `apply/delivery.rs` for the deadlines): each trade of its chain pays its seller
//! for the delivered part and refunds its buyer for the rest, at that trade's own
//! price, through [`Escrow::settle`]. So a reseller in a chain is paid as buyer and
//! as seller exactly as the delivery went, and no seller is ever paid for a GPU
//! that was not delivered.
//!
//! The arithmetic is integer and exact: a trade's notional is linear in its lots,
//! so any part of it is exact; its fees are split in proportion, rounded down, and
//! the last part settled takes what is left, so what went into escrow comes out to
//! the micro-USD.

use crate::book::OrderBook;
use crate::slot::{NANOS_PER_SEC, SLOT_SECS};
use crate::state::Engine;
use crate::types::{AccountId, MarketId, TradeId};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::{BTreeMap, VecDeque};

/// What is still escrowed of one trade: the part of its GPUs not yet settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Escrow {
    /// The buyer, who paid into escrow.
    pub buyer: AccountId,
    /// The seller, who is owed.
    pub seller: AccountId,
    /// GPUs (lots) not yet settled.
    pub lots: u64,
    /// Their notional, micro-USD.
    pub notional: u64,
    /// The buyer's fee on them, escrowed with the notional.
    pub buyer_fee: u64,
    /// The seller's fee on them, to come out of its payment.
    pub seller_fee: u64,
}

/// Trade ids per chunk of [`Escrows`].
const ESCROW_CHUNK_TRADES: u64 = 512;

/// An older chunk of [`Escrows`] left with at most this many escrows moves
/// them to its spill map and is freed, so a few long-unsettled trades (a
/// dispute awaiting its resolution) never keep a whole chunk each: a chunk
/// holds at most 8 slots per escrow it keeps.
const ESCROW_CHUNK_SPILL_AT: u32 = (ESCROW_CHUNK_TRADES / 8) as u32;

/// One chunk of [`Escrows`]: the escrows of [`ESCROW_CHUNK_TRADES`]
/// consecutive trade ids, and how many of them are escrowed.
#[derive(Debug, Clone)]
struct EscrowChunk {
    live: u32,
    slots: Box<[Option<Escrow>]>,
}

/// The escrows of trades not wholly settled, by trade id.
///
/// Trades are numbered in the order they execute and escrowed as they
/// execute, so the store is a run of chunks of consecutive trade ids (in a
/// `VecDeque`, oldest first): escrowing appends to the newest chunk, finding a
/// trade is an index, and a chunk whose trades are all settled is freed (the
/// run then keeps only a `None` for it until the chunks before it go too). An
/// older chunk left nearly empty moves its escrows to a small ordered map
/// (see [`ESCROW_CHUNK_SPILL_AT`]). No hashing, and no table that rehashes as
/// unsettled trades pile up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Escrows {
    /// Chunk `i` holds trade ids from `(first_chunk + i) × ESCROW_CHUNK_TRADES`;
    /// `None` when none of them is escrowed there. Neither end is `None`.
    chunks: VecDeque<Option<EscrowChunk>>,
    /// The chunk number of `chunks[0]`.
    first_chunk: u64,
    /// Escrows of chunks freed while nearly empty: each trade is here or in
    /// its chunk, never both.
    spill: BTreeMap<TradeId, Escrow>,
}

impl Escrows {
    /// Where trade `trade` sits: its chunk's index in `chunks` (if within the
    /// run) and its slot there.
    #[inline]
    fn place(&self, trade: TradeId) -> (Option<usize>, usize) {
        let chunk = trade / ESCROW_CHUNK_TRADES;
        let slot = (trade % ESCROW_CHUNK_TRADES) as usize;
        let at = chunk
            .checked_sub(self.first_chunk)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.chunks.len());
        (at, slot)
    }

    /// Escrows `trade`, which must not be escrowed already.
    pub fn insert(&mut self, trade: TradeId, escrow: Escrow) {
        let chunk = trade / ESCROW_CHUNK_TRADES;
        // A newer chunk makes the newest one an older one: spill it if it is
        // nearly empty.
        if let Some(last) = self.chunks.len().checked_sub(1) {
            let newer = chunk > self.first_chunk + last as u64;
            if newer
                && self.chunks[last]
                    .as_ref()
                    .is_some_and(|c| c.live <= ESCROW_CHUNK_SPILL_AT)
            {
                self.spill_chunk(last);
            }
        }
        if self.chunks.is_empty() {
            self.first_chunk = chunk;
        }
        while chunk < self.first_chunk {
            self.chunks.push_front(None);
            self.first_chunk -= 1;
        }
        let i = usize::try_from(chunk - self.first_chunk).expect("chunk index fits");
        while self.chunks.len() <= i {
            self.chunks.push_back(None);
        }
        if self.chunks[i].is_none() {
            assert!(
                !self.spill.contains_key(&trade),
                "trade {trade} escrowed once"
            );
        }
        let c = self.chunks[i].get_or_insert_with(|| EscrowChunk {
            live: 0,
            slots: vec![None; ESCROW_CHUNK_TRADES as usize].into_boxed_slice(),
        });
        let slot = &mut c.slots[(trade % ESCROW_CHUNK_TRADES) as usize];
        assert!(slot.is_none(), "trade {trade} escrowed once");
        *slot = Some(escrow);
        c.live += 1;
    }

    /// The escrow of `trade`, if any.
    #[inline]
    pub fn get(&self, trade: TradeId) -> Option<&Escrow> {
        let in_chunk = match self.place(trade) {
            (Some(i), slot) => self.chunks[i].as_ref().and_then(|c| c.slots[slot].as_ref()),
            (None, _) => None,
        };
        in_chunk.or_else(|| self.spill.get(&trade))
    }

    /// The escrow of `trade`, to change, if any.
    #[inline]
    pub fn get_mut(&mut self, trade: TradeId) -> Option<&mut Escrow> {
        if let (Some(i), slot) = self.place(trade) {
            if let Some(c) = self.chunks[i].as_mut() {
                return c.slots[slot].as_mut();
            }
        }
        self.spill.get_mut(&trade)
    }

    /// Takes `trade`'s escrow out, freeing its chunk when it was the last one
    /// there, or moving what is left of an older chunk to the spill map when
    /// it is nearly empty.
    pub fn remove(&mut self, trade: TradeId) -> Option<Escrow> {
        let (Some(i), slot) = self.place(trade) else {
            return self.spill.remove(&trade);
        };
        let newest = i + 1 == self.chunks.len();
        let Some(c) = self.chunks[i].as_mut() else {
            return self.spill.remove(&trade);
        };
        let escrow = c.slots[slot].take()?;
        c.live -= 1;
        if c.live == 0 || (c.live <= ESCROW_CHUNK_SPILL_AT && !newest) {
            self.spill_chunk(i);
        }
        Some(escrow)
    }

    /// Frees chunk `i` (at `chunks[i]`), moving its escrows to the spill map,
    /// and trims the run's ends.
    fn spill_chunk(&mut self, i: usize) {
        let first = (self.first_chunk + i as u64) * ESCROW_CHUNK_TRADES;
        let freed = self.chunks[i].take().expect("a chunk to spill");
        for (e, t) in freed.slots.into_vec().into_iter().zip(first..) {
            if let Some(e) = e {
                self.spill.insert(t, e);
            }
        }
        while self.chunks.front().is_some_and(Option::is_none) {
            self.chunks.pop_front();
            self.first_chunk += 1;
        }
        while self.chunks.back().is_some_and(Option::is_none) {
            self.chunks.pop_back();
        }
    }

    /// The escrows, by trade id.
    pub fn iter(&self) -> impl Iterator<Item = (TradeId, &Escrow)> {
        let first = self.first_chunk;
        let in_chunks = self
            .chunks
            .iter()
            .zip(first..)
            .filter_map(|(c, n)| Some((c.as_ref()?, n)))
            .flat_map(|(c, n)| {
                c.slots
                    .iter()
                    .zip(n * ESCROW_CHUNK_TRADES..)
                    .filter_map(|(e, t)| Some((t, e.as_ref()?)))
            });
        let mut all: Vec<(TradeId, &Escrow)> = in_chunks.collect();
        if !self.spill.is_empty() {
            all.extend(self.spill.iter().map(|(&t, e)| (t, e)));
            all.sort_unstable_by_key(|&(t, _)| t);
        }
        all.into_iter()
    }
}

/// How one part of a trade settled (all micro-USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LegSettlement {
    /// Paid to the seller: the delivered notional less the seller's fee on it.
    pub paid: u64,
    /// Refunded to the buyer: the undelivered notional and the buyer's fee on it.
    pub refunded: u64,
    /// Fees charged (both sides), on the delivered part only.
    pub fees: u64,
    /// What leaves the buyer's escrow: `paid + refunded + fees`.
    pub escrow_out: u64,
    /// What the seller was owed for the part: leaves its pending USD.
    pub claim: u64,
}

/// `a * b / c` rounded down, in 128 bits (`b <= c`, so it fits in 64).
fn part(a: u64, b: u64, c: u64) -> u64 {
    (a as u128 * b as u128 / c as u128) as u64
}

impl Escrow {
    /// Settles `lots` of this trade's unsettled GPUs, `delivered` of them delivered
    /// (`delivered <= lots <= self.lots`), and takes them out of the escrow.
    ///
    /// The part's notional and fees are its share of what is left (the whole of
    /// it for the last part); of those, the delivered share is paid (notional less
    /// the seller's fee to the seller, both fees to the exchange), the rest of the
    /// buyer's money is refunded. Shares round down, so fees are never charged on
    /// more than was delivered.
    pub fn settle(&mut self, lots: u64, delivered: u64) -> LegSettlement {
        assert!(
            delivered <= lots && lots <= self.lots && lots > 0,
            "settle within the escrow"
        );
        let notional = part(self.notional, lots, self.lots);
        let buyer_fee = part(self.buyer_fee, lots, self.lots);
        let seller_fee = part(self.seller_fee, lots, self.lots);
        self.lots -= lots;
        self.notional -= notional;
        self.buyer_fee -= buyer_fee;
        self.seller_fee -= seller_fee;
        let paid_notional = part(notional, delivered, lots);
        let paid_buyer_fee = part(buyer_fee, delivered, lots);
        let paid_seller_fee = part(seller_fee, delivered, lots);
        let paid = paid_notional - paid_seller_fee;
        let fees = paid_buyer_fee + paid_seller_fee;
        let escrow_out = notional + buyer_fee;
        LegSettlement {
            paid,
            refunded: escrow_out - paid - fees,
            fees,
            escrow_out,
            claim: notional - seller_fee,
        }
    }

    /// What the seller is owed for the unsettled part.
    pub fn claim(&self) -> u64 {
        self.notional - self.seller_fee
    }

    /// What the buyer has in escrow for the unsettled part.
    pub fn escrowed(&self) -> u64 {
        self.notional + self.buyer_fee
    }
}

/// Where a delivery entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Awaiting the provider's report.
    Scheduled,
    /// Reported; the holder may still dispute it.
    Reported,
    /// Disputed; awaiting an admin's resolution.
    Disputed,
    /// Settled: paid and refunded (only in events and history, never in the
    /// engine's open entries).
    Settled,
}

/// An unsettled delivery obligation of a closed slot: `provider` delivers `lots`
/// GPUs for the slot's hour to `holder`, settling the chain `trades`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The market's index.
    pub market: usize,
    /// Unix seconds of the slot's start.
    pub slot: u64,
    /// Whose machines deliver.
    pub provider: AccountId,
    /// Who receives.
    pub holder: AccountId,
    /// GPUs, in lots.
    pub lots: u64,
    /// The trades the GPUs came through, oldest first.
    pub trades: SmallVec<[TradeId; 2]>,
    /// What the provider reported delivered, in lots.
    pub reported: Option<u64>,
    /// What the holder, disputing, says it received, in lots.
    pub disputed: Option<u64>,
    /// When it settles by default (engine ns); `None` while disputed.
    pub due_ns: Option<u64>,
}

impl Entry {
    /// Where it stands.
    pub fn state(&self) -> EntryState {
        match (self.disputed, self.reported) {
            (Some(_), _) => EntryState::Disputed,
            (None, Some(_)) => EntryState::Reported,
            (None, None) => EntryState::Scheduled,
        }
    }
}

/// One hour's settled deliveries of one provider in one market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordHour {
    /// The hour of settlement (engine time, unix hours).
    pub hour: u64,
    /// The market's index.
    pub market: u32,
    /// GPUs obligated, in lots.
    pub obligated: u64,
    /// GPUs delivered, in lots.
    pub delivered: u64,
    /// Disputes the provider lost (a resolution below its report).
    pub disputes_lost: u32,
}

/// A provider's settled deliveries over the last [`RECORD_HOURS`] hours of engine
/// time, one bucket per (hour of settlement, market), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProviderRecord {
    pub hours: VecDeque<RecordHour>,
}

/// The rolling window of a provider's record: 30 days, in whole hours of
/// settlement time.
pub const RECORD_HOURS: u64 = 30 * 24;

impl ProviderRecord {
    /// Adds a settled entry at engine hour `hour`, and forgets buckets that fell
    /// out of the window.
    pub fn add(&mut self, hour: u64, market: u32, obligated: u64, delivered: u64, lost: bool) {
        let lost = u32::from(lost);
        match self
            .hours
            .iter_mut()
            .rev()
            .find(|b| b.hour == hour && b.market == market)
        {
            Some(b) => {
                b.obligated += obligated;
                b.delivered += delivered;
                b.disputes_lost += lost;
            }
            None => self.hours.push_back(RecordHour {
                hour,
                market,
                obligated,
                delivered,
                disputes_lost: lost,
            }),
        }
        self.forget_before(hour);
    }

    /// Drops buckets outside the window that ends at `hour`.
    pub fn forget_before(&mut self, hour: u64) {
        while self
            .hours
            .front()
            .is_some_and(|b| b.hour + RECORD_HOURS <= hour)
        {
            self.hours.pop_front();
        }
    }

    /// The buckets inside the window that ends at `hour`.
    pub fn window(&self, hour: u64) -> impl Iterator<Item = &RecordHour> {
        self.hours
            .iter()
            .filter(move |b| b.hour + RECORD_HOURS > hour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escrow(lots: u64, notional: u64, buyer_fee: u64, seller_fee: u64) -> Escrow {
        Escrow {
            buyer: 1,
            seller: 2,
            lots,
            notional,
            buyer_fee,
            seller_fee,
        }
    }

    #[test]
    fn parts_of_a_trade_settle_to_exactly_what_was_escrowed() {
        // 7 lots at 1,000,003 micro-USD, fees that do not divide by 7.
        let mut e = escrow(7, 7_000_021, 3_500, 1_401);
        let (in_escrow, owed) = (e.escrowed(), e.claim());
        let parts = [(2, 1), (3, 3), (2, 0)];
        let legs: Vec<LegSettlement> = parts.iter().map(|&(l, d)| e.settle(l, d)).collect();
        assert_eq!(e.lots, 0);
        assert_eq!((e.notional, e.buyer_fee, e.seller_fee), (0, 0, 0));
        let sum = |f: fn(&LegSettlement) -> u64| legs.iter().map(f).sum::<u64>();
        assert_eq!(sum(|l| l.escrow_out), in_escrow);
        assert_eq!(sum(|l| l.claim), owed);
        assert_eq!(sum(|l| l.paid + l.refunded + l.fees), in_escrow);
        // Nothing is paid for the part not delivered; a full delivery pays all.
        assert_eq!((legs[2].paid, legs[2].fees), (0, 0));
        assert_eq!(legs[1].paid + legs[1].fees, legs[1].escrow_out);
        // The delivered GPU of the first part is paid its own notional exactly.
        assert_eq!(
            legs[0].paid + legs[0].refunded + legs[0].fees,
            2 * 1_000_003 + 1_000
        );
    }

    proptest::proptest! {
        /// Escrowing, finding and settling trades in any pattern, `Escrows`
        /// answers as a sorted map does.
        #[test]
        fn escrows_behave_as_a_sorted_map(
            ops in proptest::collection::vec((proptest::bool::ANY, 0..4_000u64), 1..300),
            start in 0..3_000u64,
        ) {
            let mut store = Escrows::default();
            let mut model = std::collections::BTreeMap::new();
            let mut next = start;
            for (add, pick) in ops {
                if add || model.is_empty() {
                    next += 1 + pick % 700;
                    store.insert(next, escrow(next, 1, 0, 0));
                    model.insert(next, escrow(next, 1, 0, 0));
                } else {
                    let t = *model.keys().nth(pick as usize % model.len()).unwrap();
                    proptest::prop_assert_eq!(store.remove(t), model.remove(&t));
                    proptest::prop_assert_eq!(store.remove(t), None);
                }
                proptest::prop_assert_eq!(store.get(pick), model.get(&pick));
                let listed: Vec<(TradeId, &Escrow)> = store.iter().collect();
                let want: Vec<(TradeId, &Escrow)> = model.iter().map(|(&t, e)| (t, e)).collect();
                proptest::prop_assert_eq!(listed, want);
                proptest::prop_assert!(store.chunks.len() as u64 <= next / ESCROW_CHUNK_TRADES + 1);
                // Neither end of the run is a freed chunk, and every chunk
                // but the newest keeps more than its spill bound.
                proptest::prop_assert!(store.chunks.front().is_none_or(Option::is_some));
                proptest::prop_assert!(store.chunks.back().is_none_or(Option::is_some));
                let n = store.chunks.len();
                for c in store.chunks.iter().take(n.saturating_sub(1)).flatten() {
                    proptest::prop_assert!(c.live > ESCROW_CHUNK_SPILL_AT);
                }
            }
            for t in model.keys() {
                store.remove(*t);
            }
            proptest::prop_assert!(store.chunks.is_empty());
        }
    }

    #[test]
    fn the_record_window_keeps_thirty_days_of_hours() {
        let mut r = ProviderRecord::default();
        r.add(10, 0, 4, 4, false);
        r.add(10, 0, 2, 1, true);
        r.add(11, 1, 3, 0, false);
        assert_eq!(r.hours.len(), 2);
        assert_eq!(
            (
                r.hours[0].obligated,
                r.hours[0].delivered,
                r.hours[0].disputes_lost
            ),
            (6, 5, 1)
        );
        assert_eq!(r.window(10 + RECORD_HOURS).count(), 1);
        r.add(11 + RECORD_HOURS, 0, 1, 1, false);
        assert_eq!(r.hours.len(), 1, "both old hours left the window");
    }
}

/// An unsettled delivery entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// The entry.
    pub entry: u64,
    /// The market.
    pub market: MarketId,
    /// The slot delivered.
    pub slot: u64,
    /// Who delivers.
    pub provider: AccountId,
    /// Who receives.
    pub holder: AccountId,
    /// GPUs for the hour.
    #[serde(with = "crate::decimal::strict")]
    pub quantity: Decimal,
    /// The trades the GPUs came through, oldest first.
    pub trades: Vec<TradeId>,
    /// Where it stands.
    pub state: EntryState,
    /// What the provider reported delivered.
    #[serde(with = "crate::decimal::strict_option")]
    pub reported: Option<Decimal>,
    /// What the holder, disputing, says it received.
    #[serde(with = "crate::decimal::strict_option")]
    pub disputed: Option<Decimal>,
    /// Reports are taken until then (unix seconds).
    pub report_until: u64,
    /// Disputes are taken until then (unix seconds).
    pub dispute_until: u64,
}

/// A provider's delivery record over the last [`RECORD_HOURS`] hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    /// The provider.
    pub account: AccountId,
    /// GPU-hours it had to deliver (settled entries).
    #[serde(with = "crate::decimal::strict")]
    pub obligated: Decimal,
    /// GPU-hours delivered.
    #[serde(with = "crate::decimal::strict")]
    pub delivered: Decimal,
    /// Disputes it lost (a resolution below its report).
    pub disputes_lost: u64,
    /// `delivered / obligated`, rounded down to 4 decimals; `None` (shown as
    /// `new`) with no settled obligation in the window.
    #[serde(with = "crate::decimal::strict_option")]
    pub reliability: Option<Decimal>,
}

/// A provider's GPUs ahead in one market (open slots, summed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAhead {
    /// The market.
    pub market: MarketId,
    /// Own GPU-hours not sold (offered or not).
    #[serde(with = "crate::decimal::strict")]
    pub listed: Decimal,
    /// Own GPU-hours sold, to be delivered.
    #[serde(with = "crate::decimal::strict")]
    pub sold: Decimal,
}

/// Decimal places of [`ProviderView::reliability`].
pub const RELIABILITY_SCALE: u32 = 4;

impl<B: OrderBook> Engine<B> {
    fn entry_view(&self, id: u64, e: &Entry) -> EntryView {
        let spec = &self.markets[e.market].spec;
        let (report_until, dispute_until) = spec.delivery_deadlines(e.slot);
        EntryView {
            entry: id,
            market: spec.id,
            slot: e.slot,
            provider: e.provider,
            holder: e.holder,
            quantity: spec.quantity(e.lots),
            trades: e.trades.to_vec(),
            state: e.state(),
            reported: e.reported.map(|l| spec.quantity(l)),
            disputed: e.disputed.map(|l| spec.quantity(l)),
            report_until,
            dispute_until,
        }
    }

    /// An unsettled delivery entry.
    pub fn entry(&self, id: u64) -> Option<EntryView> {
        self.entries.get(&id).map(|e| self.entry_view(id, e))
    }

    /// An account's unsettled delivery entries, as provider or as holder, by id.
    pub fn entries_of(&self, account: AccountId) -> Vec<EntryView> {
        self.entries
            .iter()
            .filter(|(_, e)| e.provider == account || e.holder == account)
            .map(|(&id, e)| self.entry_view(id, e))
            .collect()
    }

    /// Every unsettled delivery entry, by id.
    pub fn entries(&self) -> Vec<EntryView> {
        self.entries
            .iter()
            .map(|(&id, e)| self.entry_view(id, e))
            .collect()
    }

    /// Number of unsettled delivery entries.
    pub fn unsettled_entries(&self) -> usize {
        self.entries.len()
    }

    /// A provider's record at the engine's current time (`None` for an account
    /// that never had a settled entry in the window, or does not exist).
    pub fn provider(&self, account: AccountId) -> Option<ProviderView> {
        let record = self.records.get(&account)?;
        let hour = self.last_ts_ns / NANOS_PER_SEC / SLOT_SECS;
        let (mut obligated, mut delivered, mut lost) = (Decimal::ZERO, Decimal::ZERO, 0u64);
        for b in record.window(hour) {
            let spec = &self.markets[b.market as usize].spec;
            obligated += spec.quantity(b.obligated);
            delivered += spec.quantity(b.delivered);
            lost += u64::from(b.disputes_lost);
        }
        let reliability = (!obligated.is_zero()).then(|| {
            (delivered / obligated)
                .round_dp_with_strategy(RELIABILITY_SCALE, RoundingStrategy::ToZero)
                .normalize()
        });
        Some(ProviderView {
            account,
            obligated: obligated.normalize(),
            delivered: delivered.normalize(),
            disputes_lost: lost,
            reliability,
        })
    }

    /// What a provider has ahead in open slots, per market in listing order: its
    /// own unsold GPUs (listed) and those it sold, summed over slots (GPU-hours).
    pub fn provider_ahead(&self, account: AccountId) -> Vec<ProviderAhead> {
        let mut ahead = Vec::new();
        for m in &self.markets {
            let (mut listed, mut sold) = (0u64, 0u64);
            for &bi in m.slots.values() {
                if let Some(h) = self.holding(bi, account) {
                    listed += h.inventory;
                    sold += h.sold;
                }
            }
            if listed + sold > 0 {
                ahead.push(ProviderAhead {
                    market: m.spec.id,
                    listed: m.spec.quantity(listed),
                    sold: m.spec.quantity(sold),
                });
            }
        }
        ahead
    }

    /// Every account that is a provider now: a delivery record in the window, or
    /// own GPUs (listed or sold) in an open slot; ascending.
    pub fn provider_accounts(&self) -> Vec<AccountId> {
        let mut ids: Vec<AccountId> = self.providers().iter().map(|p| p.account).collect();
        for m in &self.markets {
            for &bi in m.slots.values() {
                ids.extend(
                    self.holders(bi)
                        .into_iter()
                        .filter(|(_, _, h)| h.inventory + h.sold > 0)
                        .map(|(id, _, _)| id),
                );
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Whether `account`'s delivery record meets `floor`: a reliability at least
    /// `floor` now; with no settled obligation in the window (`new`), only a floor
    /// of 0.
    pub(crate) fn reliable(&self, account: AccountId, floor: Decimal) -> bool {
        if floor.is_zero() {
            return true;
        }
        self.provider(account)
            .and_then(|p| p.reliability)
            .is_some_and(|r| r >= floor)
    }

    /// Every account with a delivery record in the window, by id.
    pub fn providers(&self) -> Vec<ProviderView> {
        self.records
            .keys()
            .filter_map(|&a| self.provider(a))
            .filter(|p| !p.obligated.is_zero())
            .collect()
    }
}
