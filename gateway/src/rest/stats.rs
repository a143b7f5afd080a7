//! `GET /v1/stats`: the network in numbers, public. What market data adds up over
//! every book (GPU-hours on offer and sold in the open hours, 24-hour notional)
//! and what only the replica knows (who offers, deliveries scheduled and
//! delivered, providers' delivery records), with a table of the largest
//! providers and a histogram of providers' reliability.
//!
//! Delivered hours in all come from the replica's history (every settled
//! entry); reliability and disputes lost are the engine's provider records over
//! their window (the last 30 days, as `GET /v1/providers` shows them), so the
//! explorer's figures and the provider records agree.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gpux_engine::{AccountId, ProviderView, Side, FEE_ACCOUNT};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use super::extract::Anonymous;
use super::AppState;
use crate::error::ApiError;
use crate::replica::NotServing;

/// Rows of the provider table at most (the largest offers first).
pub const PROVIDERS_LISTED_MAX: usize = 100;

/// One provider's row.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ProviderStats {
    /// The provider's account.
    pub account: AccountId,
    /// GPU-hours it offers now (its resting asks), every market and hour.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub gpu_hours_listed: Decimal,
    /// GPU-hours it was scheduled to deliver (fixed at the gates), in all.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub gpu_hours_scheduled: Decimal,
    /// Its delivery record's `delivered / obligated` over the last 30 days (4
    /// decimals, rounded down), or `new` with nothing settled in that time.
    pub reliability: String,
    /// GPU-hours it delivered, last 30 days (settled entries).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub gpu_hours_delivered_30d: Decimal,
    /// Disputes it lost, last 30 days.
    pub disputes_lost_30d: u64,
}

/// Buckets of the reliability histogram: tenths of the range 0 to 1.
pub const RELIABILITY_BUCKETS: usize = 10;

/// Providers whose reliability falls in `[from, to)` (the last bucket holds 1).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ReliabilityBucket {
    /// Lowest reliability in the bucket (inclusive).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub from: Decimal,
    /// Highest (exclusive, but for the last bucket, which holds 1).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub to: Decimal,
    /// Providers in it.
    pub providers: usize,
}

/// The answer of `GET /v1/stats`.
#[derive(Debug, Serialize)]
pub struct StatsResponse {
    /// Markets listed.
    pub markets: usize,
    /// Open delivery hours, every market.
    pub open_slots: usize,
    /// GPU-hours offered in open hours (resting asks).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub gpu_hours_listed: Decimal,
    /// GPU-hours traded in open hours: sold ahead of delivery.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub gpu_hours_sold: Decimal,
    /// GPU-hours scheduled for delivery at the gates, in all.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub gpu_hours_scheduled: Decimal,
    /// GPU-hours delivered, in all: what every settled delivery entry delivered.
    #[serde(with = "gpux_engine::decimal::strict")]
    pub gpu_hours_delivered: Decimal,
    /// USD traded in the 24 hours before `ts_ns` (committed time).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub notional_24h: Decimal,
    /// Accounts with at least one resting ask.
    pub active_providers: usize,
    /// The providers offering the most (then those scheduled the most), at most
    /// 100.
    pub providers: Vec<ProviderStats>,
    /// Every provider with a reliability (something settled in the last 30
    /// days), by reliability: [`RELIABILITY_BUCKETS`] buckets from 0 to 1.
    pub reliability_histogram: Vec<ReliabilityBucket>,
    /// Providers (as `GET /v1/providers` lists them) with nothing settled in the
    /// last 30 days: reliability `new`, in no bucket.
    pub providers_new: usize,
    /// The latest committed timestamp (the end of the 24-hour window).
    pub ts_ns: u64,
    /// The replica's last command.
    pub as_of_cmd_seq: u64,
}

/// Every account that offers or was scheduled to deliver, largest first, and
/// how many offer now. O(accounts + open orders) under the replica's read lock.
fn providers(r: &crate::replica::Replica) -> (Vec<ProviderStats>, usize) {
    let mut rows: Vec<ProviderStats> = r
        .engine
        .account_ids()
        .into_iter()
        .filter(|&a| a != FEE_ACCOUNT)
        .filter_map(|account| {
            let listed = r
                .engine
                .open_orders(account)?
                .iter()
                .filter(|o| o.side == Side::Sell)
                .fold(Decimal::ZERO, |t, o| t.saturating_add(o.quantity));
            let scheduled = r.history.provided(account);
            let record = r.engine.provider(account);
            (!listed.is_zero() || !scheduled.is_zero()).then(|| ProviderStats {
                account,
                gpu_hours_listed: listed,
                gpu_hours_scheduled: scheduled,
                reliability: reliability_text(record.as_ref()),
                gpu_hours_delivered_30d: record.as_ref().map_or(Decimal::ZERO, |v| v.delivered),
                disputes_lost_30d: record.as_ref().map_or(0, |v| v.disputes_lost),
            })
        })
        .collect();
    let active = rows
        .iter()
        .filter(|p| !p.gpu_hours_listed.is_zero())
        .count();
    rows.sort_by(|a, b| {
        (b.gpu_hours_listed, b.gpu_hours_scheduled, a.account).cmp(&(
            a.gpu_hours_listed,
            a.gpu_hours_scheduled,
            b.account,
        ))
    });
    rows.truncate(PROVIDERS_LISTED_MAX);
    (rows, active)
}

/// A record's reliability as the API writes it (`new` without one).
fn reliability_text(record: Option<&ProviderView>) -> String {
    record
        .and_then(|v| v.reliability)
        .map_or_else(|| "new".to_owned(), |r| r.to_string())
}

/// Every provider (`GET /v1/providers`' list) by reliability bucket, and how
/// many are new. O(providers × their record's hours) under the read lock.
fn reliability_histogram(r: &crate::replica::Replica) -> (Vec<ReliabilityBucket>, usize) {
    let mut counts = [0usize; RELIABILITY_BUCKETS];
    let mut new = 0;
    for account in r.engine.provider_accounts() {
        match r.engine.provider(account).and_then(|v| v.reliability) {
            Some(rel) => counts[bucket_of(rel)] += 1,
            None => new += 1,
        }
    }
    let tenth = |i: usize| Decimal::new(i64::try_from(i).unwrap_or(i64::MAX), 1);
    let buckets = counts
        .iter()
        .enumerate()
        .map(|(i, &providers)| ReliabilityBucket {
            from: tenth(i),
            to: tenth(i + 1),
            providers,
        })
        .collect();
    (buckets, new)
}

/// The bucket of a reliability (0 to 1; 1 in the last bucket).
fn bucket_of(reliability: Decimal) -> usize {
    (reliability * Decimal::TEN)
        .floor()
        .to_usize()
        .unwrap_or(0)
        .min(RELIABILITY_BUCKETS - 1)
}

/// `GET /v1/stats`.
pub async fn stats(State(state): State<AppState>, _: Anonymous) -> Result<Response, ApiError> {
    let net = state
        .market_data
        .network()
        .ok_or(ApiError::from(NotServing::Rebuilding))?;
    let r = state.shared.read();
    let (providers, active_providers) = providers(&r);
    let (reliability_histogram, providers_new) = reliability_histogram(&r);
    Ok(Json(StatsResponse {
        markets: net.markets,
        open_slots: net.open_slots,
        gpu_hours_listed: net.listed,
        gpu_hours_sold: net.sold,
        gpu_hours_scheduled: r.history.scheduled_total(),
        gpu_hours_delivered: r.history.delivered_total(),
        notional_24h: net.notional_24h,
        active_providers,
        providers,
        reliability_histogram,
        providers_new,
        ts_ns: net.ts_ns,
        as_of_cmd_seq: r.engine.last_seq(),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reliability_falls_in_tenths_with_one_in_the_last_bucket() {
        let b = |s: &str| bucket_of(s.parse().unwrap());
        assert_eq!(
            [
                b("0"),
                b("0.0999"),
                b("0.1"),
                b("0.5"),
                b("0.9"),
                b("0.9999"),
                b("1")
            ],
            [0, 0, 1, 5, 9, 9, 9]
        );
    }
}
