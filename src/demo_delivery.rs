//! The demo's deliveries: its providers report the hours they sold, its demanders
//! dispute some short ones, and its operator resolves disputes — so settlement,
//! refunds and providers' reliability move on a demo like on a real exchange
//! (fastest with `--time-scale`).
//!
//! The traders read the delivery entries that name their accounts through a
//! [`DeliveryLookup`] (in `gpux serve --demo`, the gateway's replica) and act on
//! each entry once. Each provider has a temperament, by its index: the first
//! always reports in full; the second reports one GPU short now and then; the
//! third forgets about one report in four (an unreported entry settles as not
//! delivered); the others report in full. A demander disputes about half of the
//! short reports it receives, saying it got one GPU fewer, and the operator
//! resolves each dispute at what the holder said. Decisions come from the demo's
//! seeded RNG; which entries exist depends on what traded, so runs differ.

use std::collections::BTreeSet;
use std::sync::Arc;

use gpux_engine::{AccountId, EntryState, EntryView};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::demo::{DEMANDER_FIRST, PROVIDER_FIRST};

/// A function giving the unsettled delivery entries that name any of the given
/// accounts (as provider or holder).
pub type EntriesOf = dyn Fn(&[AccountId]) -> Vec<EntryView> + Send + Sync;

/// Where the demo reads its delivery entries: an [`EntriesOf`].
#[derive(Clone)]
pub struct DeliveryLookup(pub Arc<EntriesOf>);

impl std::fmt::Debug for DeliveryLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryLookup")
    }
}

impl PartialEq for DeliveryLookup {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DeliveryLookup {}

/// Most entries the traders remember having acted on (older ones are settled long
/// since, or will be by time).
const HANDLED_MAX: usize = 100_000;

/// What the demo's traders have done about delivery entries.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    /// Entries reported (or deliberately left unreported) by their provider.
    reported: BTreeSet<u64>,
    /// Entries disputed (or deliberately accepted) by their holder.
    disputed: BTreeSet<u64>,
    /// Disputed entries the operator resolved.
    resolved: BTreeSet<u64>,
}

fn forget_oldest(set: &mut BTreeSet<u64>) {
    while set.len() > HANDLED_MAX {
        set.pop_first();
    }
}

impl Deliveries {
    /// The commands the traders send about `entries` at exchange time `now_ns`.
    pub(crate) fn step(
        &mut self,
        rng: &mut ChaCha8Rng,
        entries: &[EntryView],
        now_ns: u64,
    ) -> Vec<Value> {
        let now_s = now_ns / 1_000_000_000;
        let mut out = Vec::new();
        for e in entries {
            let started = now_s >= e.slot;
            match e.state {
                EntryState::Scheduled
                    if started && now_s <= e.report_until && self.reported.insert(e.entry) =>
                {
                    if let Some(delivered) = provider_report(rng, e) {
                        out.push(json!({"type": "delivery_report", "account": e.provider, "entry": e.entry, "delivered": delivered.to_string()}));
                    }
                }
                EntryState::Reported if now_s <= e.dispute_until && is_demander(e.holder) => {
                    let short = e.reported.is_some_and(|r| r < e.quantity);
                    if self.disputed.insert(e.entry) && short && rng.random_bool(0.5) {
                        let received =
                            (e.reported.unwrap_or_default() - Decimal::ONE).max(Decimal::ZERO);
                        out.push(json!({"type": "dispute", "account": e.holder, "entry": e.entry, "received": received.to_string()}));
                    }
                }
                EntryState::Disputed if self.resolved.insert(e.entry) => {
                    let received = e.disputed.unwrap_or_default();
                    out.push(json!({"type": "resolve_dispute", "entry": e.entry, "delivered": received.to_string()}));
                }
                _ => {}
            }
        }
        forget_oldest(&mut self.reported);
        forget_oldest(&mut self.disputed);
        forget_oldest(&mut self.resolved);
        out
    }
}

fn is_demander(account: AccountId) -> bool {
    account >= DEMANDER_FIRST
}

/// What provider `e.provider` reports for `e`, by its temperament (`None`: it
/// does not report).
fn provider_report(rng: &mut ChaCha8Rng, e: &EntryView) -> Option<Decimal> {
    let q = e.quantity;
    match e.provider.checked_sub(PROVIDER_FIRST) {
        Some(1) if rng.random_bool(0.3) => Some((q - Decimal::ONE).max(Decimal::ZERO)),
        Some(2) if rng.random_bool(0.25) => None,
        _ => Some(q),
    }
}
