//! Trade-derived statistics of one book (a market's delivery slot): the recent-trades ring, 1m and 1h
//! candles (5m, 15m and 1d candles are merged from them when read), and the 24h
//! figures of the ticker and of the network's statistics.
//!
//! Everything is keyed by committed timestamps (`ts_ns` of the command that traded),
//! never by the wall clock, so every gateway that follows the same ledger shows the
//! same candles and the same 24h volume. The 24h window is read off the one-minute
//! candles, so memory stays bounded however many trades there are.

use std::collections::VecDeque;

use gpux_engine::{Side, TradeId};
use serde::{Deserialize, Serialize};

/// Nanoseconds in one minute.
pub const MINUTE_NS: u64 = 60_000_000_000;
/// Nanoseconds in one hour.
pub const HOUR_NS: u64 = 60 * MINUTE_NS;
/// Nanoseconds in the ticker's window (and in a `1d` candle).
pub const DAY_NS: u64 = 24 * HOUR_NS;
/// One-minute candles needed to cover the 24h window (plus the current one).
pub const MINUTES_PER_DAY_PLUS_ONE: usize = 24 * 60 + 1;

/// One public trade (no accounts, no order ids: those are private).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeRec {
    /// The engine's trade id.
    pub trade: TradeId,
    /// The command that produced it.
    pub seq: u64,
    /// Its committed timestamp.
    pub ts_ns: u64,
    /// Price in ticks.
    pub price_ticks: i64,
    /// Quantity in lots.
    pub lots: u64,
    /// The incoming order's side.
    pub taker_side: Side,
}

/// Open-high-low-close-volume of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Start of the interval, ns since the epoch (a multiple of the interval).
    pub open_ns: u64,
    /// First trade's price, ticks.
    pub open: i64,
    /// Highest price, ticks.
    pub high: i64,
    /// Lowest price, ticks.
    pub low: i64,
    /// Last trade's price, ticks.
    pub close: i64,
    /// Lots traded.
    pub volume_lots: u64,
    /// Number of trades.
    pub trades: u64,
    /// Sum of price × quantity of its trades, in ticks × lots.
    pub notional: u128,
}

impl Candle {
    /// Folds `later` (a candle of the same or a later interval) into this one.
    fn merge(&mut self, later: &Candle) {
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.close = later.close;
        self.volume_lots = self.volume_lots.saturating_add(later.volume_lots);
        self.trades += later.trades;
        self.notional = self.notional.saturating_add(later.notional);
    }
}

/// The candle interval of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// One minute (kept).
    M1,
    /// Five minutes (merged from one-minute candles).
    M5,
    /// Fifteen minutes (merged from one-minute candles).
    M15,
    /// One hour (kept).
    H1,
    /// One day, UTC (merged from one-hour candles).
    D1,
}

impl Interval {
    /// Its length in nanoseconds.
    pub fn ns(self) -> u64 {
        match self {
            Interval::M1 => MINUTE_NS,
            Interval::M5 => 5 * MINUTE_NS,
            Interval::M15 => 15 * MINUTE_NS,
            Interval::H1 => HOUR_NS,
            Interval::D1 => DAY_NS,
        }
    }

    /// The kept interval its candles are merged from (itself if kept).
    pub fn base(self) -> Interval {
        match self {
            Interval::M1 | Interval::M5 | Interval::M15 => Interval::M1,
            Interval::H1 | Interval::D1 => Interval::H1,
        }
    }

    /// Every interval, shortest first.
    pub const ALL: [Interval; 5] = [
        Interval::M1,
        Interval::M5,
        Interval::M15,
        Interval::H1,
        Interval::D1,
    ];

    /// Its name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::H1 => "1h",
            Interval::D1 => "1d",
        }
    }

    /// Parses `1m`, `5m`, `15m`, `1h` or `1d`.
    pub fn parse(s: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.name() == s)
    }
}

/// The last `cap` candles of one interval (intervals without trades have none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandleSeries {
    interval_ns: u64,
    cap: usize,
    candles: VecDeque<Candle>,
}

impl CandleSeries {
    /// An empty series keeping at most `cap` candles.
    pub fn new(interval: Interval, cap: usize) -> Self {
        Self {
            interval_ns: interval.ns(),
            cap: cap.max(1),
            candles: VecDeque::new(),
        }
    }

    /// Adds a trade at `ts_ns` (committed timestamps never go backwards).
    pub fn add(&mut self, ts_ns: u64, price_ticks: i64, lots: u64) {
        let open_ns = ts_ns - ts_ns % self.interval_ns;
        match self.candles.back_mut() {
            Some(c) if c.open_ns >= open_ns => {
                c.high = c.high.max(price_ticks);
                c.low = c.low.min(price_ticks);
                c.close = price_ticks;
                c.volume_lots = c.volume_lots.saturating_add(lots);
                c.trades += 1;
                c.notional = c.notional.saturating_add(notional(price_ticks, lots));
            }
            _ => {
                if self.candles.len() == self.cap {
                    self.candles.pop_front();
                }
                self.candles.push_back(Candle {
                    open_ns,
                    open: price_ticks,
                    high: price_ticks,
                    low: price_ticks,
                    close: price_ticks,
                    volume_lots: lots,
                    trades: 1,
                    notional: notional(price_ticks, lots),
                });
            }
        }
    }

    /// The candles of `interval` (this series' own, or merged from it) that open
    /// in `start..end` (ns), the last `n` of them, oldest first.
    pub fn read(&self, interval: Interval, (start, end): (u64, u64), n: usize) -> Vec<Candle> {
        let len = interval.ns().max(self.interval_ns);
        let mut out: Vec<Candle> = Vec::new();
        for c in self.candles.iter() {
            let open_ns = c.open_ns - c.open_ns % len;
            if open_ns < start || open_ns >= end {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.open_ns == open_ns => last.merge(c),
                _ => out.push(Candle { open_ns, ..*c }),
            }
        }
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
        out
    }

    /// The last `n` candles, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &Candle> {
        self.candles
            .iter()
            .skip(self.candles.len().saturating_sub(n))
    }

    /// How many candles are kept at most.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Candles whose interval overlaps `(now - window, now]`, newest first.
    fn within(&self, now_ns: u64, window_ns: u64) -> impl Iterator<Item = &Candle> {
        let start = now_ns.saturating_sub(window_ns);
        let interval = self.interval_ns;
        self.candles
            .iter()
            .rev()
            .take_while(move |c| c.open_ns + interval > start)
    }
}

/// 24h figures of a market as of a committed timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window24h {
    /// Lots traded.
    pub volume_lots: u64,
    /// Highest price, ticks (`None`: no trade in the window).
    pub high: Option<i64>,
    /// Lowest price, ticks.
    pub low: Option<i64>,
    /// Price of the first trade in the window, ticks.
    pub open: Option<i64>,
    /// Number of trades.
    pub trades: u64,
    /// Sum of price × quantity, ticks × lots.
    pub notional: u128,
}

/// Price × quantity of a trade in ticks × lots (prices are positive).
fn notional(price_ticks: i64, lots: u64) -> u128 {
    u128::from(price_ticks.unsigned_abs()) * u128::from(lots)
}

/// Everything trade-derived about one market.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeStats {
    recent: VecDeque<TradeRec>,
    recent_cap: usize,
    /// One-minute candles.
    pub m1: CandleSeries,
    /// One-hour candles.
    pub h1: CandleSeries,
    last: Option<TradeRec>,
    /// Lots traded since the book opened (the forward curve's volume).
    total_lots: u64,
}

impl TradeStats {
    /// Keeps `recent_trades` trades and `candles` candles per interval (at least a
    /// day of one-minute candles, which the 24h window needs).
    pub fn new(recent_trades: usize, candles: usize) -> Self {
        Self {
            recent: VecDeque::new(),
            recent_cap: recent_trades.max(1),
            m1: CandleSeries::new(Interval::M1, candles.max(MINUTES_PER_DAY_PLUS_ONE)),
            h1: CandleSeries::new(Interval::H1, candles),
            last: None,
            total_lots: 0,
        }
    }

    /// Whether `other` keeps as many trades and candles as this.
    pub fn same_bounds(&self, other: &TradeStats) -> bool {
        self.recent_cap == other.recent_cap
            && self.m1.capacity() == other.m1.capacity()
            && self.h1.capacity() == other.h1.capacity()
    }

    /// Records a trade.
    pub fn add(&mut self, t: TradeRec) {
        if self.recent.len() == self.recent_cap {
            self.recent.pop_front();
        }
        self.recent.push_back(t);
        self.m1.add(t.ts_ns, t.price_ticks, t.lots);
        self.h1.add(t.ts_ns, t.price_ticks, t.lots);
        self.last = Some(t);
        self.total_lots = self.total_lots.saturating_add(t.lots);
    }

    /// Lots traded in all.
    pub fn total_lots(&self) -> u64 {
        self.total_lots
    }

    /// The last `n` trades, oldest first.
    pub fn recent(&self, n: usize) -> impl Iterator<Item = &TradeRec> {
        self.recent.iter().skip(self.recent.len().saturating_sub(n))
    }

    /// The last `n` trades before trade `before` (all if `None`), oldest first,
    /// and whether older ones are kept.
    pub fn page(&self, before: Option<TradeId>, n: usize) -> (Vec<TradeRec>, bool) {
        let end = before.map_or(self.recent.len(), |b| {
            self.recent.partition_point(|t| t.trade < b)
        });
        let start = end.saturating_sub(n);
        (self.recent.range(start..end).copied().collect(), start > 0)
    }

    /// How many recent trades are kept at most.
    pub fn recent_capacity(&self) -> usize {
        self.recent_cap
    }

    /// The last trade ever.
    pub fn last(&self) -> Option<&TradeRec> {
        self.last.as_ref()
    }

    /// The candles of an interval.
    pub fn series(&self, interval: Interval) -> &CandleSeries {
        match interval {
            Interval::M1 | Interval::M5 | Interval::M15 => &self.m1,
            Interval::H1 | Interval::D1 => &self.h1,
        }
    }

    /// Volume, high, low and open over the one-minute candles overlapping the 24h
    /// before `now_ns`.
    pub fn window_24h(&self, now_ns: u64) -> Window24h {
        let mut w = Window24h::default();
        for c in self.m1.within(now_ns, DAY_NS) {
            w.volume_lots = w.volume_lots.saturating_add(c.volume_lots);
            w.trades += c.trades;
            w.notional = w.notional.saturating_add(c.notional);
            w.high = Some(w.high.map_or(c.high, |h| h.max(c.high)));
            w.low = Some(w.low.map_or(c.low, |l| l.min(c.low)));
            w.open = Some(c.open); // newest first: the last one seen is the oldest
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(id: u64, ts_ns: u64, price: i64, lots: u64) -> TradeRec {
        TradeRec {
            trade: id,
            seq: id,
            ts_ns,
            price_ticks: price,
            lots,
            taker_side: Side::Buy,
        }
    }

    #[test]
    fn candles_bucket_by_committed_time() {
        let mut s = TradeStats::new(3, 10);
        let t0 = 1_767_225_600_000_000_000; // a whole hour
        s.add(trade(1, t0 + 1, 240, 8));
        s.add(trade(2, t0 + MINUTE_NS - 1, 250, 2));
        s.add(trade(3, t0 + MINUTE_NS, 230, 1));
        s.add(trade(4, t0 + HOUR_NS + 5, 260, 4));
        let m1: Vec<_> = s.m1.last(10).copied().collect();
        assert_eq!(m1.len(), 3);
        assert_eq!(
            m1[0],
            Candle {
                open_ns: t0,
                open: 240,
                high: 250,
                low: 240,
                close: 250,
                volume_lots: 10,
                trades: 2,
                notional: 240 * 8 + 250 * 2,
            }
        );
        assert_eq!(m1[1].open_ns, t0 + MINUTE_NS);
        let h1: Vec<_> = s.h1.last(10).copied().collect();
        assert_eq!(h1.len(), 2);
        assert_eq!(
            (h1[0].open, h1[0].high, h1[0].low, h1[0].close),
            (240, 250, 230, 230)
        );
        assert_eq!(h1[0].volume_lots, 11);
        // The ring keeps the last three trades.
        let ids: Vec<_> = s.recent(10).map(|t| t.trade).collect();
        assert_eq!(ids, vec![2, 3, 4]);
    }

    #[test]
    fn window_24h_slides_with_committed_time() {
        let mut s = TradeStats::new(10, 10);
        let t0 = 1_767_225_600_000_000_000;
        s.add(trade(1, t0, 300, 5));
        s.add(trade(2, t0 + HOUR_NS, 200, 1));
        let w = s.window_24h(t0 + HOUR_NS);
        assert_eq!(
            (w.volume_lots, w.high, w.low, w.open, w.trades, w.notional),
            (6, Some(300), Some(200), Some(300), 2, 300 * 5 + 200)
        );
        // A day and a minute later the first trade's candle has left the window.
        let w = s.window_24h(t0 + DAY_NS + MINUTE_NS);
        assert_eq!((w.volume_lots, w.high, w.low), (1, Some(200), Some(200)));
        let w = s.window_24h(t0 + 3 * DAY_NS);
        assert_eq!(w, Window24h::default());
    }

    #[test]
    fn longer_candles_merge_kept_ones_within_start_and_end() {
        let mut s = TradeStats::new(10, 100);
        let t0 = 1_767_225_600_000_000_000; // midnight UTC
        s.add(trade(1, t0 + MINUTE_NS, 240, 1));
        s.add(trade(2, t0 + 4 * MINUTE_NS, 260, 2));
        s.add(trade(3, t0 + 6 * MINUTE_NS, 230, 3));
        s.add(trade(4, t0 + 20 * MINUTE_NS, 250, 4));
        let all = (0, u64::MAX);
        let m5 = s.m1.read(Interval::M5, all, 100);
        let ohlc: Vec<_> = m5
            .iter()
            .map(|c| {
                (
                    c.open_ns - t0,
                    c.open,
                    c.high,
                    c.low,
                    c.close,
                    c.volume_lots,
                )
            })
            .collect();
        assert_eq!(
            ohlc,
            vec![
                (0, 240, 260, 240, 260, 3),
                (5 * MINUTE_NS, 230, 230, 230, 230, 3),
                (20 * MINUTE_NS, 250, 250, 250, 250, 4),
            ]
        );
        let m15 = s.m1.read(Interval::M15, all, 100);
        assert_eq!(m15.len(), 2);
        assert_eq!((m15[0].trades, m15[0].notional), (3, 240 + 520 + 690));
        let d1 = s.h1.read(Interval::D1, all, 100);
        assert_eq!((d1.len(), d1[0].open_ns, d1[0].volume_lots), (1, t0, 10));
        // start is inclusive, end exclusive; the limit keeps the newest.
        let window = (t0 + 5 * MINUTE_NS, t0 + 20 * MINUTE_NS);
        assert_eq!(s.m1.read(Interval::M5, window, 100).len(), 1);
        assert_eq!(
            s.m1.read(Interval::M5, all, 1)[0].open_ns,
            t0 + 20 * MINUTE_NS
        );
        for i in Interval::ALL {
            assert_eq!(Interval::parse(i.name()), Some(i));
        }
        assert_eq!(Interval::parse("2h"), None);
    }

    #[test]
    fn trade_pages_walk_back_by_trade_id() {
        let mut s = TradeStats::new(10, 10);
        for id in 1..=5 {
            s.add(trade(id, 1_000 + id, 100, 1));
        }
        let ids = |v: Vec<TradeRec>| v.iter().map(|t| t.trade).collect::<Vec<_>>();
        let (page, more) = s.page(None, 2);
        assert_eq!((ids(page), more), (vec![4, 5], true));
        let (page, more) = s.page(Some(4), 2);
        assert_eq!((ids(page), more), (vec![2, 3], true));
        let (page, more) = s.page(Some(2), 2);
        assert_eq!((ids(page), more), (vec![1], false));
        let (page, more) = s.page(Some(1), 2);
        assert_eq!((ids(page), more), (vec![], false));
    }
}
