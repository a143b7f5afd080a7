//! `GET /v1/stats`: the network in numbers, public. What market data adds up over
//! every book (GPU-hours on offer and sold in the open hours, 24-hour notional)
//! and what only the replica knows (who offers, deliveries scheduled), with a
//! table of the largest providers.
//!
//! Deliveries are not reported yet (the exchange schedules them at each hour's
//! gate and stops there), so nothing here claims delivered hours, reliability or
//! disputes: those figures arrive with settlement.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gpux_engine::{AccountId, Side, FEE_ACCOUNT};
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
    /// USD traded in the 24 hours before `ts_ns` (committed time).
    #[serde(with = "gpux_engine::decimal::strict")]
    pub notional_24h: Decimal,
    /// Accounts with at least one resting ask.
    pub active_providers: usize,
    /// The providers offering the most (then those scheduled the most), at most
    /// 100.
    pub providers: Vec<ProviderStats>,
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
            (!listed.is_zero() || !scheduled.is_zero()).then_some(ProviderStats {
                account,
                gpu_hours_listed: listed,
                gpu_hours_scheduled: scheduled,
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

/// `GET /v1/stats`.
pub async fn stats(State(state): State<AppState>, _: Anonymous) -> Result<Response, ApiError> {
    let net = state
        .market_data
        .network()
        .ok_or(ApiError::from(NotServing::Rebuilding))?;
    let r = state.shared.read();
    let (providers, active_providers) = providers(&r);
    Ok(Json(StatsResponse {
        markets: net.markets,
        open_slots: net.open_slots,
        gpu_hours_listed: net.listed,
        gpu_hours_sold: net.sold,
        gpu_hours_scheduled: r.history.scheduled_total(),
        notional_24h: net.notional_24h,
        active_providers,
        providers,
        ts_ns: net.ts_ns,
        as_of_cmd_seq: r.engine.last_seq(),
    })
    .into_response())
}
