//! Commit statistics: a bounded latency histogram and the group committer's counters.
//!
//! Owns [`LatencyHistogram`] (log-linear buckets, fixed memory, quantiles within ~3%)
//! so a committer can run for days and still report a p99 without storing samples.

use serde::Serialize;

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// A histogram of microsecond latencies with bounded memory: values below 32 are exact,
/// larger ones fall in one of 32 buckets per power of two (relative error under 1/32).
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Box<[u64]>,
    count: u64,
    sum_us: u64,
    max_us: u64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count)
            .field("p50_us", &self.quantile_us(500))
            .field("p99_us", &self.quantile_us(990))
            .field("max_us", &self.max_us)
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let p = 63 - v.leading_zeros();
    let shift = p - SUB_BITS;
    let sub = (v >> shift) & (SUB - 1);
    ((p - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The largest value that falls in bucket `b`.
fn bucket_high(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let p = b / SUB + u64::from(SUB_BITS) - 1;
    let sub = b % SUB;
    let shift = p - u64::from(SUB_BITS);
    let low = (1u64 << p) | (sub << shift);
    low.saturating_add((1u64 << shift) - 1)
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record_us(&mut self, us: u64) {
        self.counts[bucket_of(us)] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest sample.
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// Mean (0 when empty).
    pub fn mean_us(&self) -> u64 {
        self.sum_us.checked_div(self.count).unwrap_or(0)
    }

    /// The value at quantile `per_mille`/1000 (990: p99): an upper bound within 1/32
    /// of the true sample value (0 when empty).
    pub fn quantile_us(&self, per_mille: u32) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let per_mille = u128::from(per_mille.min(1000));
        let rank = (u128::from(self.count) * per_mille).div_ceil(1000).max(1) as u64;
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_high(b).min(self.max_us);
            }
        }
        self.max_us
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
    }
}

/// Counters of a [`GroupCommitter`](crate::GroupCommitter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Synced writes done (batches plus inbox-only writes).
    pub writes: u64,
    /// Ledger batches committed.
    pub batches: u64,
    /// Commands committed.
    pub commands: u64,
    /// Events committed.
    pub events: u64,
    /// Inbox entries journaled.
    pub journaled: u64,
    /// Submissions (appends and journals) merged into writes.
    pub submissions: u64,
    /// Bytes written (keys and values).
    pub bytes: u64,
    /// Writes that failed.
    pub failed_writes: u64,
    /// Time per synced write (encode is done before; this is the write and its fsync).
    pub commit_latency: LatencyHistogram,
}

/// A serializable summary of [`CommitStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitSummary {
    /// Synced writes.
    pub writes: u64,
    /// Batches.
    pub batches: u64,
    /// Commands.
    pub commands: u64,
    /// Events.
    pub events: u64,
    /// Median write latency.
    pub p50_commit_us: u64,
    /// 99th percentile write latency.
    pub p99_commit_us: u64,
    /// Largest write latency.
    pub max_commit_us: u64,
}

impl CommitStats {
    /// The summary.
    pub fn summary(&self) -> CommitSummary {
        CommitSummary {
            writes: self.writes,
            batches: self.batches,
            commands: self.commands,
            events: self.events,
            p50_commit_us: self.commit_latency.quantile_us(500),
            p99_commit_us: self.commit_latency.quantile_us(990),
            max_commit_us: self.commit_latency.max_us(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_and_bound_it() {
        let mut prev = 0;
        for v in (0..5000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < BUCKETS);
            assert!(b >= prev, "buckets are monotonic");
            prev = b;
            assert!(bucket_high(b) >= v);
            assert!(
                bucket_high(b) - v <= v / 32,
                "{v} -> high {}",
                bucket_high(b)
            );
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = LatencyHistogram::default();
        for v in 1..=1000u64 {
            h.record_us(v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max_us(), 1000);
        let p99 = h.quantile_us(990);
        assert!((990..=990 + 990 / 32).contains(&p99), "p99 {p99}");
        assert_eq!(h.quantile_us(0), 1);
        assert_eq!(h.quantile_us(1000), 1000);
        assert_eq!(LatencyHistogram::default().quantile_us(990), 0);
    }
}
