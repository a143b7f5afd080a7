//! Markets: the public list of markets with their specs, one market, listing a
//! new market (admin), and a slot's ask blocks for cluster buyers (read from the
//! replica, which knows whose inventory backs each ask). Market data of a market
//! (forward curve, depth, trades, ticker, candles) is the `marketdata` module's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gpux_engine::command::ListMarket;
use gpux_engine::market::MarketSpec;
use gpux_engine::{Command, Event, RejectReason};

use super::dto::{
    self, market_view, BlocksResponse, DepthQuery, ListMarketRequest, MarketResponse,
    MarketsResponse,
};
use super::extract::{AdminCaller, Anonymous, ApiJson, ApiPath, ApiQuery, IdempotencyKey};
use super::{internal, reject_error, AppState, Idem};
use crate::auth::Principal;
use crate::error::ApiError;

/// `GET /v1/markets`: every market, in listing order.
pub async fn list(State(state): State<AppState>, _: Anonymous) -> Result<Response, ApiError> {
    let r = state.shared.read();
    let markets = r.engine.markets().map(market_view).collect();
    Ok(Json(MarketsResponse { markets }).into_response())
}

/// `GET /v1/markets/{market}`: one market's spec.
pub async fn get(
    State(state): State<AppState>,
    _: Anonymous,
    ApiPath(market): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = dto::market_id(&market)?;
    let r = state.shared.read();
    let spec = r
        .engine
        .market(&id)
        .ok_or_else(|| reject_error(RejectReason::UnknownMarket))?;
    Ok(Json(MarketResponse {
        market: market_view(spec),
        cmd_seq: None,
    })
    .into_response())
}

/// `GET /v1/markets/{market}/slots/{slot}/blocks?depth=N`: a slot's asks, best
/// first, each with the largest block one provider offers from its own inventory
/// at that price or better (what a `colocate` order limited there can get), read
/// from the replica.
pub async fn blocks(
    State(state): State<AppState>,
    _: Anonymous,
    ApiPath((market, slot)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<DepthQuery>,
) -> Result<Response, ApiError> {
    let id = dto::market_id(&market)?;
    let slot = dto::slot("slot", &slot)?;
    let depth = q.depth.unwrap_or(dto::BLOCKS_DEPTH_DEFAULT);
    if !(1..=dto::BLOCKS_DEPTH_MAX).contains(&depth) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("depth must be 1 to {}", dto::BLOCKS_DEPTH_MAX),
        ));
    }
    let floor = dto::opt_decimal("min_reliability", &q.min_reliability)?;
    if floor.is_some_and(|f| f < rust_decimal::Decimal::ZERO || f > rust_decimal::Decimal::ONE) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "min_reliability must be 0 to 1",
        ));
    }
    let r = state.shared.read();
    let asks = r
        .engine
        .ask_blocks(&id, slot, depth, floor)
        .ok_or_else(|| reject_error(RejectReason::UnknownMarket))?;
    Ok(Json(BlocksResponse {
        market: id,
        slot: crate::marketdata::wire::SlotName(slot),
        asks,
        as_of_cmd_seq: r.engine.last_seq(),
    })
    .into_response())
}

/// `POST /v1/markets` (admin): list a new market.
pub async fn create(
    State(state): State<AppState>,
    _: AdminCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<ListMarketRequest>,
) -> Result<Response, ApiError> {
    let cmd = ListMarket {
        market: dto::market_id(&req.market)?,
        tick_size: dto::decimal("tick_size", &req.tick_size)?,
        lot_size: dto::decimal("lot_size", &req.lot_size)?,
        maker_fee_bps: req.maker_fee_bps,
        taker_fee_bps: req.taker_fee_bps,
        min_price: dto::opt_decimal("min_price", &req.min_price)?,
        max_price: dto::opt_decimal("max_price", &req.max_price)?,
        max_order_quantity: dto::opt_decimal("max_order_quantity", &req.max_order_quantity)?,
        slot_horizon_hours: req.slot_horizon_hours,
        gate_closure_secs: req.gate_closure_secs,
        report_window_secs: req.report_window_secs,
        dispute_window_secs: req.dispute_window_secs,
    };
    let idem = Idem {
        operation: "list_market",
        path: String::new(),
        body: &req,
        key: key.map(|k| format!("header:{k}")),
    };
    let ex = state
        .execute(Principal::Admin, idem, |r| {
            // 101, then 102 (then 305 in the engine).
            MarketSpec::new(
                cmd.market,
                cmd.tick_size,
                cmd.lot_size,
                cmd.maker_fee_bps,
                cmd.taker_fee_bps,
                cmd.min_price,
                cmd.max_price,
                cmd.max_order_quantity,
                cmd.slot_rules(),
            )
            .map_err(reject_error)?;
            if r.engine.market(&cmd.market).is_some() {
                return Err(reject_error(RejectReason::MarketExists));
            }
            Ok(Command::ListMarket(cmd.clone()))
        })
        .await?;
    ex.accepted(&state)?;
    let listed = ex
        .outcome
        .events
        .iter()
        .find_map(|e| match e {
            Event::MarketListed(m) => Some(m.clone()),
            _ => None,
        })
        .ok_or_else(internal)?;
    Ok(ex.respond(
        StatusCode::CREATED,
        MarketResponse {
            market: listed.into(),
            cmd_seq: Some(ex.outcome.cmd_seq),
        },
    ))
}
