//! The network's figures that market data knows, over every market: GPU-hours on
//! offer and sold in the open delivery hours, and the notional traded in the
//! last 24 hours (committed time). Read by `GET /v1/stats`, which adds what only
//! the replica knows (providers, deliveries scheduled).

use std::sync::atomic::Ordering;

use gpux_engine::Side;
use rust_decimal::Decimal;

use super::state::{lock, MarketDataState};

/// What market data adds up over every book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkFigures {
    /// Markets listed.
    pub markets: usize,
    /// Open delivery hours (books whose gate has not closed), over every market.
    pub open_slots: usize,
    /// GPU-hours offered (resting asks) in open hours.
    pub listed: Decimal,
    /// GPU-hours traded in open hours (sold ahead of delivery).
    pub sold: Decimal,
    /// USD traded in the 24 hours before `ts_ns`, every book kept.
    pub notional_24h: Decimal,
    /// The latest committed timestamp: the end of the 24-hour window.
    pub ts_ns: u64,
}

/// `ticks × lots` in USD, at a market's tick and lot size (saturating).
fn usd(notional: u128, tick: Decimal, lot: Decimal) -> Decimal {
    i128::try_from(notional)
        .ok()
        .and_then(|n| Decimal::try_from_i128_with_scale(n, 0).ok())
        .and_then(|n| n.checked_mul(tick))
        .and_then(|n| n.checked_mul(lot))
        .unwrap_or(Decimal::MAX)
}

/// The figures now. O(books + ask levels of open books), each book under its own
/// short locks.
pub fn figures(shared: &MarketDataState) -> NetworkFigures {
    let now_ns = shared.now_ns.load(Ordering::Acquire);
    let mut f = NetworkFigures {
        ts_ns: now_ns,
        ..NetworkFigures::default()
    };
    f.markets = shared.spec_count();
    for e in shared.all_markets() {
        let (tick, lot) = (e.spec.price(1), e.spec.quantity(1));
        let (total_lots, day) = {
            let c = lock(&e.core);
            (c.stats.total_lots(), c.stats.window_24h(now_ns))
        };
        f.notional_24h = f.notional_24h.saturating_add(usd(day.notional, tick, lot));
        if e.closed.load(Ordering::Acquire) {
            continue;
        }
        f.open_slots += 1;
        let asks: u64 = {
            let p = lock(&e.published);
            p.book.levels(Side::Sell, usize::MAX).map(|(_, l)| l).sum()
        };
        f.listed = f.listed.saturating_add(e.spec.quantity(asks));
        f.sold = f.sold.saturating_add(e.spec.quantity(total_lots));
    }
    f
}
