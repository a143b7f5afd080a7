//! Public REST market data: a market's forward curve, and the depth, recent
//! trades, ticker and candles of one delivery slot of it (one book).
//!
//! The slot is a path segment written as people write it, `2026-12-07T09:00Z`;
//! one that does not parse is a 400 `invalid_slot` with the reason. A slot the
//! gateway has seen nothing of has an empty book (`seq` 0) and no trades.
//!
//! Every handler reads shared state under a short lock and serializes outside it.
//! Query parameters are strict: an unknown parameter, a value that is not a whole
//! number, or one out of range is a 400 with code `invalid_parameter` (the same
//! philosophy as the protocol's unknown-fields rule: a typo is refused, not
//! ignored). An unknown market is a 404 `unknown_market`; a market id that is not
//! even a path segment (`%ff`) a 400 `invalid_path`, in the API's JSON shape.
//!
//! While market data is being rebuilt (the gateway's replica diverged) every
//! handler answers 503 `replica_rebuilding`: it checks the generation before and
//! after reading, so it never answers from a state being reset or rebuilt.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gpux_engine::{MarketId, Side};

use super::state::{lock, MarketDataState, MarketEntry};
use super::stats::{Interval, TradeRec};
use super::wire::{
    self, BookMsg, CandleJson, CandlesMsg, CurveMsg, CurveRow, SlotName, TickerMsg, TickerVal,
    TradeJson, TradesPage,
};
use crate::replica::NotServing;
use crate::rest::extract::ApiPath;
use crate::ApiError;

/// The generation to answer from, or 503 while market data is being rebuilt.
fn serving(shared: &MarketDataState) -> Result<u64, ApiError> {
    shared
        .serving_generation()
        .ok_or_else(|| NotServing::Rebuilding.into())
}

/// `resp`, unless market data was reset since `generation` (then 503).
fn answer(shared: &MarketDataState, generation: u64, resp: Response) -> Result<Response, ApiError> {
    if shared.still_serving(generation) {
        Ok(resp)
    } else {
        Err(NotServing::Rebuilding.into())
    }
}

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// A slot written by a person, or 400 `invalid_slot` with the reason.
pub fn slot_param(s: &str) -> Result<u64, ApiError> {
    gpux_engine::slot::parse_slot(s)
        .map_err(|e| ApiError::bad_request("invalid_slot", format!("slot {s:?}: {e}")))
}

fn market_id(shared: &MarketDataState, name: &str) -> Result<MarketId, ApiError> {
    MarketId::new(name)
        .ok()
        .filter(|id| shared.spec(id).is_some())
        .ok_or_else(|| {
            ApiError::not_found("unknown_market", format!("no market {name:?} is listed"))
        })
}

/// The book of `(market, slot)` named in a path: the registered one, or an empty
/// one for a slot not seen.
fn market(
    shared: &MarketDataState,
    (name, slot): &(String, String),
) -> Result<Arc<MarketEntry>, ApiError> {
    let id = market_id(shared, name)?;
    let slot = slot_param(slot)?;
    match shared.market(&(id, slot)) {
        Some(e) => Ok(e),
        None => {
            let spec = shared.spec(&id).ok_or_else(|| {
                ApiError::not_found("unknown_market", format!("no market {name:?} is listed"))
            })?;
            Ok(shared.detached_book(spec, slot))
        }
    }
}

type BookPath = ApiPath<(String, String)>;

/// The query parameters, checked against the names an endpoint accepts.
fn params(q: Params, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let Query(list) = q.map_err(|e| {
        ApiError::bad_request("invalid_parameter", format!("bad query string: {e}"))
    })?;
    for (k, _) in &list {
        if !allowed.contains(&k.as_str()) {
            let msg = if allowed.is_empty() {
                format!("unknown parameter {k:?}: this endpoint takes none")
            } else {
                format!(
                    "unknown parameter {k:?}: this endpoint takes {}",
                    allowed.join(", ")
                )
            };
            return Err(ApiError::bad_request("invalid_parameter", msg));
        }
    }
    Ok(list)
}

fn one<'a>(list: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut found = list
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let first = found.next();
    if found.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("parameter {name:?} is given more than once"),
        ));
    }
    Ok(first)
}

/// A whole number in `1..=max`, or `default` when absent.
fn count(
    list: &[(String, String)],
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match one(list, name)? {
        None => Ok(default.min(max)),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) && !v.starts_with('+') => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_parameter",
                format!("{name} must be a whole number from 1 to {max}, not {v:?}"),
            )),
        },
    }
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    let body = serde_json::to_vec(v).expect("market data always encodes");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /v1/markets/{market}/slots/{slot}/depth?depth=N`.
pub async fn depth(
    State(shared): State<Arc<MarketDataState>>,
    ApiPath(name): BookPath,
    q: Params,
) -> Result<Response, ApiError> {
    let list = params(q, &["depth"])?;
    let generation = serving(&shared)?;
    let cfg = &shared.cfg;
    let n = count(&list, "depth", cfg.depth_default, cfg.depth_max)?;
    let e = market(&shared, &name)?;
    let (seq, bids, asks) = {
        let p = lock(&e.published);
        (
            p.seq,
            wire::levels(&e.spec, p.book.levels(Side::Buy, n)),
            wire::levels(&e.spec, p.book.levels(Side::Sell, n)),
        )
    };
    let resp = json(&BookMsg {
        kind: None,
        channel: None,
        market: e.id.as_str(),
        slot: SlotName(e.slot),
        seq,
        prev_seq: None,
        bids,
        asks,
        checksum: None,
    });
    answer(&shared, generation, resp)
}

/// A whole number (`u64`) parameter, if given.
fn whole(list: &[(String, String)], name: &str, what: &str) -> Result<Option<u64>, ApiError> {
    match one(list, name)? {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if !v.starts_with('+') => Ok(Some(n)),
            _ => Err(ApiError::bad_request(
                "invalid_parameter",
                format!("{name} must be {what}, not {v:?}"),
            )),
        },
    }
}

/// `GET /v1/markets/{market}/slots/{slot}/trades?limit=N&before=TRADE`: the
/// latest trades, or those before a trade id (walking back page by page with
/// `next_before`).
pub async fn trades(
    State(shared): State<Arc<MarketDataState>>,
    ApiPath(name): BookPath,
    q: Params,
) -> Result<Response, ApiError> {
    let list = params(q, &["limit", "before"])?;
    let generation = serving(&shared)?;
    let cfg = &shared.cfg;
    let n = count(&list, "limit", cfg.trades_default, cfg.recent_trades)?;
    let before = whole(&list, "before", "a trade id (a whole number)")?;
    let e = market(&shared, &name)?;
    let (trades, more): (Vec<TradeRec>, bool) = lock(&e.core).stats.page(before, n);
    let resp = json(&TradesPage {
        market: e.id.as_str(),
        slot: SlotName(e.slot),
        next_before: trades.first().filter(|_| more).map(|t| t.trade),
        trades: trades.iter().map(|t| TradeJson::new(&e.spec, t)).collect(),
    });
    answer(&shared, generation, resp)
}

/// The ticker as of now: best bid/ask from the published book, trade figures
/// from the core side, the 24h window ending at the latest committed timestamp.
pub fn ticker_now(shared: &MarketDataState, e: &MarketEntry) -> TickerVal {
    let now_ns = shared.now_ns.load(Ordering::Acquire);
    let (seq, best_bid, best_ask) = {
        let p = lock(&e.published);
        (p.seq, p.book.best(Side::Buy), p.book.best(Side::Sell))
    };
    let (last, day, total_lots) = {
        let c = lock(&e.core);
        (
            c.stats.last().copied(),
            c.stats.window_24h(now_ns),
            c.stats.total_lots(),
        )
    };
    TickerVal {
        seq: seq.max(last.map_or(0, |t| t.seq)),
        ts_ns: now_ns,
        best_bid,
        best_ask,
        last,
        day,
        total_lots,
    }
}

/// `GET /v1/markets/{market}/slots/{slot}/ticker`.
pub async fn ticker(
    State(shared): State<Arc<MarketDataState>>,
    ApiPath(name): BookPath,
    q: Params,
) -> Result<Response, ApiError> {
    params(q, &[])?;
    let generation = serving(&shared)?;
    let e = market(&shared, &name)?;
    let v = ticker_now(&shared, &e);
    let resp = json(&TickerMsg::new(
        &e.spec,
        (e.id.as_str(), e.slot),
        None,
        None,
        &v,
    ));
    answer(&shared, generation, resp)
}

/// The `start`/`end` range of candles (ns, start inclusive, end exclusive).
fn candle_range(list: &[(String, String)]) -> Result<(u64, u64), ApiError> {
    let what = "a time in ns since the epoch (a whole number)";
    let start = whole(list, "start", what)?.unwrap_or(0);
    let end = whole(list, "end", what)?.unwrap_or(u64::MAX);
    if start >= end {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("start ({start}) must be before end ({end})"),
        ));
    }
    Ok((start, end))
}

/// `GET /v1/markets/{market}/slots/{slot}/candles?interval=1m|5m|15m|1h|1d&limit=N&start=NS&end=NS`.
pub async fn candles(
    State(shared): State<Arc<MarketDataState>>,
    ApiPath(name): BookPath,
    q: Params,
) -> Result<Response, ApiError> {
    let list = params(q, &["interval", "limit", "start", "end"])?;
    let interval = match one(&list, "interval")? {
        None => Interval::M1,
        Some(v) => Interval::parse(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("interval must be 1m, 5m, 15m, 1h or 1d, not {v:?}"),
            )
        })?,
    };
    let range = candle_range(&list)?;
    let generation = serving(&shared)?;
    let e = market(&shared, &name)?;
    let candles: Vec<CandleJson> = {
        let c = lock(&e.core);
        let series = c.stats.series(interval);
        let n = count(
            &list,
            "limit",
            shared.cfg.candles_default,
            series.capacity(),
        )?;
        series
            .read(interval, range, n)
            .iter()
            .map(|k| CandleJson::new(&e.spec, k))
            .collect()
    };
    let resp = json(&CandlesMsg {
        market: e.id.as_str(),
        slot: SlotName(e.slot),
        interval: interval.name(),
        candles,
    });
    answer(&shared, generation, resp)
}

/// `GET /v1/markets/{market}/slots`: the forward curve, one row per open slot
/// (a slot some order, trade or capacity used, whose gate has not closed), in
/// slot order.
pub async fn curve(
    State(shared): State<Arc<MarketDataState>>,
    ApiPath(name): ApiPath<String>,
    q: Params,
) -> Result<Response, ApiError> {
    params(q, &[])?;
    let generation = serving(&shared)?;
    let id = market_id(&shared, &name)?;
    let slots = shared
        .books_of(&id)
        .iter()
        .filter(|e| !e.closed.load(Ordering::Acquire))
        .map(|e| CurveRow::new(&e.spec, e.slot, &ticker_now(&shared, e), false))
        .collect();
    let resp = json(&CurveMsg {
        kind: None,
        channel: None,
        market: id.as_str(),
        slots,
    });
    answer(&shared, generation, resp)
}
