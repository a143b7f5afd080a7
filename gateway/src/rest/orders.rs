//! Order entry and order queries for the calling account.
//!
//! Writes (place, cancel, amend, mass cancel) are checked against the replica before
//! anything is submitted, in the engine's own check order and with its own reject
//! codes, so a request that the engine would refuse for its shape never reaches the
//! log. An order that belongs to another account is reported exactly like one that
//! does not exist (404 `unknown_order`). Queries read the replica and the order
//! history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gpux_engine::command::{AmendOrder, CancelOrder, MassCancel, PlaceOrder, Window};
use gpux_engine::market::MarketSpec;
use gpux_engine::{
    AccountId, CancelReason, ClientOrderId, Command, Event, OrderId, OrderView, RejectReason,
};

use super::dto::{
    self, AmendOrderRequest, AmendResponse, AmendStatus, CancelResponse, FillsQuery, FillsResponse,
    MarketQuery, MassCancelResponse, OrderResponse, OrdersResponse, PlaceOrderRequest,
};
use super::extract::{AccountCaller, ApiJson, ApiPath, ApiQuery, IdempotencyKey};
use super::{internal, reject_error, AppState, Executed, Idem};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::history::{zero_like, Fill, OrderRecord, OrderStatus};
use crate::marketdata::wire::SlotName;
use crate::replica::Replica;

/// The idempotency key of a request: the header's, else (for placements) the
/// client order id, in separate namespaces.
fn header_key(key: Option<String>) -> Option<String> {
    key.map(|k| format!("header:{k}"))
}

/// The shape checks of `place_order` that depend only on the command, the market's
/// spec and the time: the engine's own [`MarketSpec::check_order`]. The command's
/// timestamp will be at least `now_ns`, so a good-till in the past or a closed slot
/// is refused for sure; a slot beyond the horizon now may be within it when the
/// command is sequenced, so that one is left to the engine (it is the last check).
pub fn precheck_place(spec: &MarketSpec, o: &PlaceOrder, now_ns: u64) -> Result<(), RejectReason> {
    match spec.check_order(o, now_ns) {
        Ok(_) | Err(RejectReason::SlotBeyondHorizon) => Ok(()),
        Err(r) => Err(r),
    }
}

/// The slot or window of a placement request, in the protocol's unix seconds.
fn order_slots(req: &PlaceOrderRequest) -> Result<(Option<u64>, Option<Window>), ApiError> {
    let slot = req
        .slot
        .as_deref()
        .map(|s| dto::slot("slot", s))
        .transpose()?;
    let window = match &req.window {
        Some(w) => Some(Window {
            from_slot: dto::slot("window.from_slot", &w.from_slot)?,
            to_slot: dto::slot("window.to_slot", &w.to_slot)?,
        }),
        None => None,
    };
    Ok((slot, window))
}

/// `POST /v1/orders`.
pub async fn place(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    place_order(state, account, key, req)
        .await
        .map_err(ApiError::order_rejected)
}

async fn place_order(
    state: AppState,
    account: gpux_engine::AccountId,
    key: Option<String>,
    req: PlaceOrderRequest,
) -> Result<Response, ApiError> {
    let market = dto::market_id(&req.market)?;
    let price = dto::opt_decimal("price", &req.price)?;
    let quantity = dto::decimal("quantity", &req.quantity)?;
    let cap = dto::opt_decimal("cap", &req.cap)?;
    let client_order_id = req
        .client_order_id
        .as_deref()
        .map(dto::client_order_id)
        .transpose()?;
    let (slot, window) = order_slots(&req)?;
    let order = PlaceOrder {
        account,
        market,
        slot,
        window,
        colocate: req.colocate,
        side: req.side,
        order_type: req.order_type,
        price,
        quantity,
        time_in_force: req.time_in_force,
        good_till_ns: req.good_till_ns,
        post_only: req.post_only,
        cap,
        client_order_id,
        stp: req.stp,
        min_reliability: dto::opt_decimal("min_reliability", &req.min_reliability)?,
    };
    let key = header_key(key).or_else(|| client_order_id.map(|c| format!("client_order_id:{c}")));
    let idem = Idem {
        operation: "place_order",
        path: String::new(),
        body: &req,
        key,
    };
    let ex = state
        .execute(Principal::Account(account), idem, |r| {
            let spec = r
                .engine
                .market(&market)
                .ok_or_else(|| reject_error(RejectReason::UnknownMarket))?;
            precheck_place(spec, &order, state.shared.cfg.time.now_ns()).map_err(reject_error)?;
            Ok(Command::PlaceOrder(order))
        })
        .await?;
    ex.accepted(&state)?;
    let o = &ex.outcome;
    let (rec, fills) =
        OrderRecord::from_events(&o.events, account, o.cmd_seq, o.ts_ns).ok_or_else(internal)?;
    Ok(ex.respond(StatusCode::OK, OrderResponse::new(&rec, Some(fills))))
}

/// Which order a cancel or amend names.
#[derive(Debug, Clone, Copy)]
enum OrderRef {
    Id(OrderId),
    Client(ClientOrderId),
}

impl OrderRef {
    fn path(&self) -> String {
        match self {
            OrderRef::Id(id) => format!("id:{id}"),
            OrderRef::Client(c) => format!("client_order_id:{c}"),
        }
    }

    /// The caller's open order it names in the replica, or 404 `unknown_order`.
    fn find(&self, r: &Replica, account: AccountId) -> Result<OrderView, ApiError> {
        let found = match self {
            OrderRef::Id(id) => r.engine.order(*id).filter(|o| o.account == account),
            OrderRef::Client(c) => r
                .engine
                .open_orders(account)
                .and_then(|os| os.into_iter().find(|o| o.client_order_id == Some(*c))),
        };
        found.ok_or_else(|| reject_error(RejectReason::UnknownOrder))
    }

    fn ids(&self) -> (Option<OrderId>, Option<ClientOrderId>) {
        match *self {
            OrderRef::Id(id) => (Some(id), None),
            OrderRef::Client(c) => (None, Some(c)),
        }
    }
}

async fn cancel(
    state: AppState,
    account: AccountId,
    key: Option<String>,
    which: OrderRef,
) -> Result<Response, ApiError> {
    let idem = Idem {
        operation: "cancel_order",
        path: which.path(),
        body: &(),
        key: header_key(key),
    };
    let ex = state
        .execute(Principal::Account(account), idem, |r| {
            which.find(r, account)?;
            let (order_id, client_order_id) = which.ids();
            Ok(Command::CancelOrder(CancelOrder {
                account,
                order_id,
                client_order_id,
            }))
        })
        .await?;
    ex.accepted(&state)?;
    let c = ex
        .outcome
        .events
        .iter()
        .find_map(|e| match e {
            Event::OrderCancelled(c)
                if c.account == account && c.reason == CancelReason::UserRequested =>
            {
                Some(c)
            }
            _ => None,
        })
        .ok_or_else(internal)?;
    Ok(ex.respond(
        StatusCode::OK,
        CancelResponse {
            order_id: c.order,
            market: c.market,
            slot: SlotName(c.slot),
            side: c.side,
            price: c.price,
            cancelled_quantity: c.quantity,
            status: OrderStatus::Cancelled,
            cmd_seq: ex.outcome.cmd_seq,
        },
    ))
}

/// `DELETE /v1/orders/{order_id}`.
pub async fn cancel_by_id(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(order_id): ApiPath<OrderId>,
) -> Result<Response, ApiError> {
    cancel(state, account, key, OrderRef::Id(order_id)).await
}

/// `DELETE /v1/orders/by-client-id/{client_order_id}`.
pub async fn cancel_by_client_id(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(client_order_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let c = dto::client_order_id(&client_order_id)?;
    cancel(state, account, key, OrderRef::Client(c)).await
}

async fn amend(
    state: AppState,
    account: AccountId,
    key: Option<String>,
    which: OrderRef,
    req: AmendOrderRequest,
) -> Result<Response, ApiError> {
    let price = dto::opt_decimal("price", &req.price)?;
    let quantity = dto::opt_decimal("quantity", &req.quantity)?;
    if price.is_none() && quantity.is_none() {
        return Err(reject_error(RejectReason::InvalidAmend));
    }
    let idem = Idem {
        operation: "amend_order",
        path: which.path(),
        body: &req,
        key: header_key(key),
    };
    let ex = state
        .execute(Principal::Account(account), idem, |r| {
            let order = which.find(r, account)?;
            let spec = r.engine.market(&order.market).ok_or_else(internal)?;
            if let Some(p) = price {
                spec.price_ticks(p).map_err(reject_error)?;
            }
            if let Some(q) = quantity {
                spec.order_lots(q).map_err(reject_error)?;
            }
            let (order_id, client_order_id) = which.ids();
            Ok(Command::AmendOrder(AmendOrder {
                account,
                order_id,
                client_order_id,
                price,
                quantity,
            }))
        })
        .await?;
    ex.accepted(&state)?;
    Ok(ex.respond(StatusCode::OK, amend_response(&ex, account)?))
}

fn amend_response(ex: &Executed, account: AccountId) -> Result<AmendResponse, ApiError> {
    let o = &ex.outcome;
    let start = o
        .events
        .iter()
        .position(|e| matches!(e, Event::OrderAmended(a) if a.account == account))
        .ok_or_else(internal)?;
    let Event::OrderAmended(a) = &o.events[start] else {
        return Err(internal());
    };
    let mut resp = AmendResponse {
        order_id: a.order,
        market: a.market,
        slot: SlotName(a.slot),
        side: a.side,
        old_price: a.old_price,
        old_quantity: a.old_quantity,
        price: a.price,
        quantity: a.quantity,
        priority_kept: a.priority_kept,
        remaining: a.quantity,
        status: AmendStatus::Open,
        fills: Vec::new(),
        cmd_seq: o.cmd_seq,
    };
    for ev in &o.events[start + 1..] {
        match ev {
            Event::TradeExecuted(t) if t.taker_order == a.order => {
                resp.fills.extend(
                    Fill::of_trade(t, o.cmd_seq, o.ts_ns)
                        .into_iter()
                        .filter(|(_, f)| f.order_id == a.order)
                        .map(|(_, f)| f),
                );
                resp.remaining = t.taker_remaining;
                if t.taker_remaining.is_zero() {
                    resp.status = AmendStatus::Filled;
                }
            }
            Event::OrderRested(r) if r.order == a.order => resp.remaining = r.quantity,
            Event::OrderCancelled(c) if c.order == a.order => {
                resp.remaining = zero_like(c.quantity);
                resp.status = AmendStatus::Cancelled;
            }
            _ => {}
        }
    }
    Ok(resp)
}

/// `PATCH /v1/orders/{order_id}`.
pub async fn amend_by_id(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(order_id): ApiPath<OrderId>,
    ApiJson(req): ApiJson<AmendOrderRequest>,
) -> Result<Response, ApiError> {
    amend(state, account, key, OrderRef::Id(order_id), req).await
}

/// `PATCH /v1/orders/by-client-id/{client_order_id}`.
pub async fn amend_by_client_id(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(client_order_id): ApiPath<String>,
    ApiJson(req): ApiJson<AmendOrderRequest>,
) -> Result<Response, ApiError> {
    let c = dto::client_order_id(&client_order_id)?;
    amend(state, account, key, OrderRef::Client(c), req).await
}

/// `?market=&slot=`: a slot needs a market (else 400 `invalid_slot_range`, the
/// engine's 212).
fn market_slot(q: &MarketQuery) -> Result<(Option<gpux_engine::MarketId>, Option<u64>), ApiError> {
    let market = q.market.as_deref().map(dto::market_id).transpose()?;
    let slot = q
        .slot
        .as_deref()
        .map(|s| dto::slot("slot", s))
        .transpose()?;
    if slot.is_some() && market.is_none() {
        return Err(reject_error(RejectReason::InvalidSlotRange));
    }
    Ok((market, slot))
}

/// `DELETE /v1/orders[?market=[&slot=]]`: cancel all of the caller's open orders.
pub async fn mass_cancel(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiQuery(q): ApiQuery<MarketQuery>,
) -> Result<Response, ApiError> {
    let (market, slot) = market_slot(&q)?;
    let idem = Idem {
        operation: "mass_cancel",
        path: String::new(),
        body: &q,
        key: header_key(key),
    };
    let ex = state
        .execute(Principal::Account(account), idem, |r| {
            if let Some(m) = &market {
                r.engine
                    .market(m)
                    .ok_or_else(|| reject_error(RejectReason::UnknownMarket))?;
            }
            Ok(Command::MassCancel(MassCancel {
                account,
                market,
                slot,
            }))
        })
        .await?;
    ex.accepted(&state)?;
    let mut cancelled = Vec::new();
    let mut count = None;
    for ev in &ex.outcome.events {
        match ev {
            Event::OrderCancelled(c)
                if c.account == account && c.reason == CancelReason::MassCancel =>
            {
                cancelled.push(c.order)
            }
            Event::MassCancelled(m) if m.account == account => count = Some(m.count),
            _ => {}
        }
    }
    Ok(ex.respond(
        StatusCode::OK,
        MassCancelResponse {
            market,
            slot: slot.map(SlotName),
            cancelled,
            count: count.ok_or_else(internal)?,
            cmd_seq: ex.outcome.cmd_seq,
        },
    ))
}

/// `POST /v1/cancel-after` `{"timeout_ms": N}`: arms (or renews) the caller's
/// dead man's switch: unless renewed within `timeout_ms`, all its open orders are
/// cancelled by a sequenced `mass_cancel` (see [`crate::cancel_after`]); 0
/// disarms it. Not a command itself: nothing is sequenced until it fires.
pub async fn cancel_after(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    ApiJson(req): ApiJson<dto::CancelAfterRequest>,
) -> Result<Response, ApiError> {
    use crate::cancel_after::TIMEOUT_MS_MAX;
    if req.timeout_ms > TIMEOUT_MS_MAX {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("timeout_ms: 0 (disarm) to {TIMEOUT_MS_MAX}"),
        ));
    }
    // One reading of the clock for the answer and the trigger, so that
    // `trigger_time_ms` is exactly `current_time_ms + timeout_ms`.
    let now_ms = crate::replica::now_ns() / 1_000_000;
    let trigger = state.cancel_after.arm(
        account,
        now_ms,
        req.timeout_ms,
        std::sync::Arc::clone(&state.submitter),
    );
    Ok(axum::Json(dto::CancelAfterResponse {
        account,
        current_time_ms: now_ms,
        trigger_time_ms: trigger,
    })
    .into_response())
}

/// `account`'s open orders as the API shows them (without fills), by id.
pub fn open_order_views(
    r: &crate::replica::Replica,
    account: gpux_engine::AccountId,
) -> Vec<OrderResponse> {
    r.engine
        .open_orders(account)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| r.history.order(o.order))
        .map(|rec| OrderResponse::new(rec, None))
        .collect()
}

/// `GET /v1/orders[?market=[&slot=]]`: the caller's open orders.
pub async fn open_orders(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    ApiQuery(q): ApiQuery<MarketQuery>,
) -> Result<Response, ApiError> {
    let (market, slot) = market_slot(&q)?;
    let r = state.shared.read();
    if let Some(m) = &market {
        r.engine
            .market(m)
            .ok_or_else(|| reject_error(RejectReason::UnknownMarket))?;
    }
    let orders = open_order_views(&r, account)
        .into_iter()
        .filter(|o| market.is_none_or(|m| o.market == m) && slot.is_none_or(|s| o.slot.0 == s))
        .collect();
    let body = OrdersResponse {
        orders,
        as_of_cmd_seq: r.engine.last_seq(),
    };
    Ok(Json(body).into_response())
}

fn order_with_fills(
    r: &Replica,
    account: AccountId,
    id: OrderId,
) -> Result<OrderResponse, ApiError> {
    let rec = r
        .history
        .order(id)
        .filter(|o| o.account == account)
        .ok_or_else(|| reject_error(RejectReason::UnknownOrder))?;
    Ok(OrderResponse::new(
        rec,
        Some(r.history.order_fills(account, id)),
    ))
}

/// `GET /v1/orders/{order_id}`: one of the caller's orders (open or recently
/// closed) with its fills.
pub async fn get_order(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    ApiPath(order_id): ApiPath<OrderId>,
) -> Result<Response, ApiError> {
    let r = state.shared.read();
    Ok(Json(order_with_fills(&r, account, order_id)?).into_response())
}

/// `GET /v1/orders/by-client-id/{client_order_id}`: the caller's *open* order with
/// this client id, with its fills.
pub async fn get_order_by_client_id(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    ApiPath(client_order_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let c = dto::client_order_id(&client_order_id)?;
    let r = state.shared.read();
    let id = OrderRef::Client(c).find(&r, account)?.order;
    Ok(Json(order_with_fills(&r, account, id)?).into_response())
}

/// `GET /v1/fills`: the caller's fills, newest first, paginated by trade id.
pub async fn fills(
    State(state): State<AppState>,
    AccountCaller(account): AccountCaller,
    ApiQuery(q): ApiQuery<FillsQuery>,
) -> Result<Response, ApiError> {
    let market = q.market.as_deref().map(dto::market_id).transpose()?;
    let limit = q.limit.unwrap_or(dto::FILLS_LIMIT_DEFAULT);
    if !(1..=dto::FILLS_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {}", dto::FILLS_LIMIT_MAX),
        ));
    }
    let r = state.shared.read();
    let (fills, next_before) = r.history.fills_page(account, market, q.before, limit);
    Ok(Json(FillsResponse { fills, next_before }).into_response())
}
