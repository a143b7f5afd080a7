//! The OpenAPI 3.1 document of the REST API and market data, served at `GET /v1/openapi.json` and
//! checked in as `docs/openapi.json`.
//!
//! Written by hand here (no generator crate), next to the code it describes. The
//! `openapi` integration test keeps it true: every route the router serves
//! ([`crate::served_routes`]) is documented, every documented operation exists and
//! answers, and `docs/openapi.json` equals what is served.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(s: Value) -> Value {
    json!({ "application/json": { "schema": s } })
}

fn ok(description: &str, name: &str) -> Value {
    json!({ "description": description, "content": json_content(schema(name)) })
}

fn error(description: &str) -> Value {
    json!({ "description": description, "content": json_content(schema("Error")) })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    Account,
    Admin,
    /// The account named in the path, or the admin.
    AccountOrAdmin,
}

struct Op {
    method: &'static str,
    id: &'static str,
    summary: &'static str,
    description: &'static str,
    access: Access,
    write: bool,
    params: Vec<Value>,
    body: Option<&'static str>,
    responses: Vec<(&'static str, Value)>,
}

fn path_param(name: &str, description: &str, s: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": s })
}

fn query_param(name: &str, description: &str, s: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": s })
}

fn idempotency_key() -> Value {
    json!({ "$ref": "#/components/parameters/IdempotencyKey" })
}

impl Op {
    fn to_value(&self) -> Value {
        let mut params = self.params.clone();
        if self.write {
            params.push(idempotency_key());
        }
        let mut responses = Map::new();
        for (code, v) in &self.responses {
            responses.insert((*code).to_string(), v.clone());
        }
        let mut add = |code: &str, v: Value| {
            responses.entry(code.to_string()).or_insert(v);
        };
        if self.write || !self.params.is_empty() {
            add("400", error("Bad input (`invalid_path`, `invalid_query`, `malformed_json`, `invalid_body` (also a body that is not a JSON object), `invalid_decimal`, `repeated_authorization` (more than one Authorization header), an engine shape code such as `off_tick_price`, ...)."));
        }
        if self.access != Access::Public {
            add(
                "400",
                error("`repeated_authorization`: more than one Authorization header."),
            );
            add("401", error("Missing or unknown API key (`unauthorized`)."));
            add(
                "403",
                error(match self.access {
                    Access::Admin => "Not the admin key (`forbidden`).",
                    Access::AccountOrAdmin => "Another account's key (`forbidden`).",
                    _ => "The admin key on an account endpoint (`forbidden`), or a key whose scope does not allow the request (`insufficient_scope`: a `read` key only reads, a `trade` key neither withdraws nor manages keys).",
                }),
            );
        }
        if self.write {
            add("409", error("`idempotency_key_reused`: the key was used for a different request; or an engine conflict code."));
            add("408", error("`body_timeout`: the body did not arrive within the body read timeout (default 30 s) after the headers; the connection is closed."));
            add("413", error("`body_too_large` (over the body limit)."));
            add(
                "415",
                error("`unsupported_media_type`: the body must be application/json."),
            );
        }
        add("429", error("`rate_limited`; see `Retry-After`."));
        add(
            "503",
            error(if self.write {
                "`starting`, `replica_diverged` or `replica_rebuilding` (this gateway's copy of the exchange state disagrees with the ledger and is being rebuilt; nothing is checked or answered from it), `timeout` (retry with the same Idempotency-Key), `overloaded` or `unavailable`; see `Retry-After`."
            } else {
                "`starting` (the gateway is catching up with the exchange), `replica_diverged` or `replica_rebuilding` (its copy of the exchange state disagrees with the ledger and is being rebuilt); see `Retry-After`."
            }),
        );
        let mut op = json!({
            "operationId": self.id,
            "summary": self.summary,
            "description": self.description,
            "tags": [match self.access { Access::Public => "public", Access::Account | Access::AccountOrAdmin => "account", Access::Admin => "admin" }],
            "security": match self.access {
                Access::Public => json!([]),
                Access::Account => json!([{ "accountKey": [] }]),
                Access::Admin => json!([{ "adminKey": [] }]),
                Access::AccountOrAdmin => json!([{ "accountKey": [] }, { "adminKey": [] }]),
            },
            "responses": responses,
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(b) = self.body {
            op["requestBody"] = json!({ "required": true, "content": json_content(schema(b)) });
        }
        op
    }
}

/// A path parameter holding a `u64` id.
fn id_param(name: &str, description: &str) -> Value {
    path_param(
        name,
        description,
        json!({"type": "integer", "format": "uint64", "minimum": 0}),
    )
}

fn order_id_param() -> Value {
    id_param("order_id", "The engine's order id.")
}

fn client_id_param() -> Value {
    path_param(
        "client_order_id",
        "The client's id of an open order.",
        schema("ClientOrderId"),
    )
}

fn account_param() -> Value {
    id_param("account", "Account id.")
}

fn market_query() -> Value {
    query_param("market", "Only this market.", schema("MarketId"))
}

fn slot_query() -> Value {
    query_param(
        "slot",
        "Only this delivery slot of `market` (needs `market`, else 400 `invalid_slot_range`).",
        schema("Slot"),
    )
}

fn slot_param() -> Value {
    path_param(
        "slot",
        "A delivery slot, `2026-12-07T09:00Z`; one that does not parse is 400 `invalid_slot`.",
        schema("Slot"),
    )
}

/// The API's operations (market data's are [`market_data_ops`]), as `(path, operation)`.
fn ops() -> Vec<(&'static str, Op)> {
    [
        system_and_market_ops(),
        convention_ops(),
        account_ops(),
        delivery_ops(),
        key_ops(),
        order_ops(),
        client_order_ops(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// An account's API keys.
fn key_ops() -> Vec<(&'static str, Op)> {
    use Access::*;
    vec![
        ("/v1/keys", Op {
            method: "post", id: "createKey", summary: "Create an API key",
            description: "A new key for the caller's account, generated by the gateway and answered once (only its SHA-256 goes to the log, in `add_api_key`), with a scope: `full` (everything), `trade` (read, orders, capacity, delivery reports and disputes; no withdrawals, no key management) or `read` (GET requests only). Needs a `full` key. Rotation: create a key, switch over, revoke the old one. Codes: `invalid_scope` (400), `too_many_api_keys` (422: 16 keys at most).",
            access: Account, write: true, params: vec![], body: Some("CreateKeyRequest"),
            responses: vec![("201", ok("Created; `api_key` is shown this once.", "CreatedKey")), ("422", error("`too_many_api_keys`."))],
        }),
        ("/v1/keys", Op {
            method: "get", id: "listKeys", summary: "List your API keys",
            description: "The caller's account's keys: each key's id (the first 16 hex digits of its SHA-256), its scope and whether it is the key of this request; never a key. Needs a `full` key.",
            access: Account, write: false, params: vec![], body: None,
            responses: vec![("200", ok("The keys.", "Keys"))],
        }),
        ("/v1/keys/{key_id}", Op {
            method: "delete", id: "revokeKey", summary: "Revoke an API key",
            description: "Revokes one of the caller's account's keys through the log (`revoke_api_key`): from its command on, every gateway refuses it (401). Needs a `full` key; the key of the request itself may be revoked, but not the account's last key. Codes: `invalid_key_id` (400), `unknown_api_key` (404), `last_api_key` (422).",
            access: Account, write: true,
            params: vec![path_param("key_id", "A key's id: the first 16 lowercase hex digits of its SHA-256, as listed.", json!({"type": "string", "pattern": "^[0-9a-f]{16}$"}))],
            body: None,
            responses: vec![("200", ok("Revoked.", "RevokedKey")), ("404", error("`unknown_api_key`.")), ("422", error("`last_api_key`: add another key first."))],
        }),
    ]
}

/// Delivery reports, disputes, resolutions and providers' records.
fn delivery_ops() -> Vec<(&'static str, Op)> {
    use Access::*;
    let entry = || id_param("entry", "Delivery entry id (`entry` of the schedule).");
    vec![
        ("/v1/deliveries/{entry}/report", Op {
            method: "post", id: "reportDelivery", summary: "Report a delivery (provider)",
            description: "The entry's provider reports how many GPUs it delivered for the slot's hour: from the slot's start until `report_until` (the slot's end + the market's `report_window_secs`); a later report replaces an earlier one. Unreported by then, the entry settles as not delivered (the buyers are refunded). A report not disputed by `dispute_until` stands: the entry then settles, paying each seller of its chain for the delivered GPUs and refunding the rest. Codes: `unknown_entry` (404), `not_your_entry` (403), `invalid_decimal`, `invalid_amount`, `off_lot_quantity` (400), `report_window_closed`, `entry_disputed`, `quantity_exceeds_entry` (422).",
            access: Account, write: true, params: vec![entry()], body: Some("DeliveredRequest"),
            responses: vec![("200", ok("Reported.", "DeliveryOutcome")), ("403", error("`not_your_entry`.")), ("404", error("`unknown_entry` (none, or already settled).")), ("422", error("`report_window_closed`, `entry_disputed`, `quantity_exceeds_entry`."))],
        }),
        ("/v1/deliveries/{entry}/dispute", Op {
            method: "post", id: "disputeDelivery", summary: "Dispute a delivery (holder)",
            description: "The entry's holder says how many GPUs it received, once, from the slot's start until `dispute_until`. The entry then waits (it blocks nothing else) for an admin's resolution. Codes: `unknown_entry` (404), `not_your_entry` (403), `dispute_window_closed`, `entry_disputed`, `quantity_exceeds_entry` (422).",
            access: Account, write: true, params: vec![entry()], body: Some("ReceivedRequest"),
            responses: vec![("200", ok("Disputed.", "DeliveryOutcome")), ("403", error("`not_your_entry`.")), ("404", error("`unknown_entry`.")), ("422", error("`dispute_window_closed`, `entry_disputed`, `quantity_exceeds_entry`."))],
        }),
        ("/v1/deliveries/{entry}/resolve", Op {
            method: "post", id: "resolveDispute", summary: "Resolve a dispute (admin)",
            description: "Decides how many GPUs a disputed entry delivered; it settles at once (`delivery_settled` with basis `resolved`; `dispute_lost` when below the provider's report, which counts in its record). Codes: `unknown_entry` (404), `not_disputed`, `quantity_exceeds_entry` (422).",
            access: Admin, write: true, params: vec![entry()], body: Some("DeliveredRequest"),
            responses: vec![("200", ok("Resolved and settled.", "DeliveryOutcome")), ("404", error("`unknown_entry`.")), ("422", error("`not_disputed`, `quantity_exceeds_entry`."))],
        }),
        ("/v1/providers", Op {
            method: "get", id: "listProviders", summary: "Providers and their delivery records",
            description: "Every provider with settled deliveries in the last 30 days of engine time or own GPUs in open slots, by account id (pseudonymous): GPU-hours obligated and delivered, disputes lost, `reliability` = delivered / obligated (4 decimals, rounded down; `new` with nothing settled), and per market the GPUs listed (unsold) and sold ahead.",
            access: Public, write: false, params: vec![], body: None,
            responses: vec![("200", ok("Providers.", "Providers"))],
        }),
        ("/v1/providers/{account}", Op {
            method: "get", id: "getProvider", summary: "One provider's delivery record",
            description: "As in the list; an account that never provided reads as `new`.",
            access: Public, write: false, params: vec![account_param()], body: None,
            responses: vec![("200", ok("The record.", "ProviderRecord")), ("404", error("`unknown_account`."))],
        }),
    ]
}

/// Self-serve signup, the server's time and its limits.
fn convention_ops() -> Vec<(&'static str, Op)> {
    use Access::*;
    vec![
        ("/v1/signup", Op {
            method: "post", id: "signup", summary: "Open an account yourself",
            description: "Self-serve, no KYC: opens an account with no funds through the same sequenced `create_account` an admin sends, and answers its API key, once (only its SHA-256 goes to the log). Limited per client address besides the request limit (`signups_per_ip` in `GET /v1/limits`, 5 an hour by default; 429 `rate_limited` over it); 403 `signup_disabled` where the operator turned it off. Takes no body.",
            access: Public, write: false, params: vec![], body: None,
            responses: vec![
                ("201", ok("Opened; `api_key` is shown this once.", "CreatedAccount")),
                ("403", error("`signup_disabled`: self-serve signup is off on this exchange.")),
            ],
        }),
        ("/v1/time", Op {
            method: "get", id: "serverTime", summary: "Server time",
            description: "The gateway's clock: `ts_ns`, `ts_ms` and ISO 8601 UTC to the millisecond.",
            access: Public, write: false, params: vec![], body: None,
            responses: vec![("200", ok("The time.", "Time"))],
        }),
        ("/v1/limits", Op {
            method: "get", id: "limits", summary: "Limits",
            description: "The rate limits as configured on this gateway (token buckets: `burst` requests back to back, then one more every `replenish_interval_ms`; `null`: no limit), request bounds, and the WebSocket's limits. Where a bucket stands is in the `RateLimit-*` headers of every rate-limited answer.",
            access: Public, write: false, params: vec![], body: None,
            responses: vec![("200", ok("The limits.", "Limits"))],
        }),
    ]
}

/// The operations on the system and on markets.
fn system_and_market_ops() -> Vec<(&'static str, Op)> {
    use Access::*;
    vec![
        ("/v1/health", Op {
            method: "get", id: "health", summary: "Health",
            description: "200 once the gateway's replica has caught up with the exchange and runs; 503 while starting, after its replica diverged from the ledger (`diverged`, then `rebuilding` while it re-follows the log from cmd_seq 1; back to `ok` once rebuilt), while the feed fails, or once stopped. Not rate limited.",
            access: Public, write: false, params: vec![], body: None,
            responses: vec![("200", ok("Ready.", "Health")), ("503", ok("Not ready; `status` says why.", "Health"))],
        }),
        ("/v1/openapi.json", Op {
            method: "get", id: "openapi", summary: "This document",
            description: "The OpenAPI document of the REST API.",
            access: Public, write: false, params: vec![], body: None,
            responses: vec![("200", json!({"description": "The document.", "content": {"application/json": {"schema": {"type": "object"}}}}))],
        }),
        ("/v1/stats", Op {
            method: "get", id: "getStats", summary: "The network in numbers",
            description: "Over every market: markets listed, open delivery hours, GPU-hours offered (resting asks) and sold (traded) in the open hours, GPU-hours scheduled for delivery at the gates so far, USD traded in the 24 hours before `ts_ns` (committed time), accounts with a resting ask, GPU-hours delivered in all (every settled delivery entry), the providers offering the most (at most 100: GPU-hours offered now, GPU-hours scheduled to deliver in all, and from their delivery records over the last 30 days their reliability, GPU-hours delivered and disputes lost), and every provider of `GET /v1/providers` counted by reliability in tenths from 0 to 1 (those with nothing settled in 30 days are counted as `providers_new`). Each provider's full record is at `GET /v1/providers/{account}`. The figures from market data may trail the replica's by one publication interval.",
            access: Public, write: false, params: vec![], body: None,
            responses: vec![("200", ok("The figures.", "Stats"))],
        }),
        ("/v1/markets", Op {
            method: "get", id: "listMarkets", summary: "List markets",
            description: "Every listed market with its spec, in listing order.",
            access: Public, write: false, params: vec![], body: None,
            responses: vec![("200", ok("The markets.", "Markets"))],
        }),
        ("/v1/markets", Op {
            method: "post", id: "listMarket", summary: "List a new market (admin)",
            description: "The protocol's `list_market`. Engine codes: `invalid_market_spec` (400), `market_exists` (409), `limit_reached` (422).",
            access: Admin, write: true, params: vec![], body: Some("ListMarketRequest"),
            responses: vec![("201", ok("Listed; every default resolved.", "Market"))],
        }),
        ("/v1/markets/{market}", Op {
            method: "get", id: "getMarket", summary: "One market",
            description: "A market's spec; 404 `unknown_market`.",
            access: Public, write: false,
            params: vec![path_param("market", "Market id.", schema("MarketId"))], body: None,
            responses: vec![("200", ok("The market.", "Market")), ("404", error("`unknown_market`."))],
        }),
        ("/v1/markets/{market}/slots/{slot}/blocks", Op {
            method: "get", id: "getAskBlocks", summary: "Ask blocks of a slot (for cluster buyers)",
            description: "The slot's asks, best first, each with `largest_block`: the most GPUs one provider offers from its own unsold inventory at that price or better, which is what a `colocate` order limited there can get in this slot. Read from the gateway's replica of the engine, as of `as_of_cmd_seq`. A slot with no book has no asks.",
            access: Public, write: false,
            params: vec![
                path_param("market", "Market id.", schema("MarketId")),
                slot_param(),
                query_param("depth", "Levels, 1 to 1,000 (default 50).", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
                query_param("min_reliability", "Only the asks of sellers whose delivery record is at least this reliable (0 to 1): the depth a buy with this `min_reliability` can trade with.", schema("Decimal")),
            ],
            body: None,
            responses: vec![("200", ok("The asks with their blocks.", "Blocks")), ("404", error("`unknown_market`."))],
        }),
    ]
}

/// The operations on accounts, balances and capacity.
fn account_ops() -> Vec<(&'static str, Op)> {
    use Access::*;
    vec![
        ("/v1/accounts", Op {
            method: "post", id: "createAccount", summary: "Create an account (admin)",
            description: "Opens an account and returns its API key. Without `account` the engine assigns the lowest id no account has, so gateways sharing a log never collide; the response names it. The key is shown only in this response; only its SHA-256 is kept (in the command log). A replay of the same Idempotency-Key returns the account without the key. With `api_key_sha256` the operator supplies the digest of a key it generated, and no key is returned.",
            access: Admin, write: true, params: vec![], body: Some("CreateAccountRequest"),
            responses: vec![("201", ok("Created.", "CreatedAccount")), ("409", error("`account_exists`, or `idempotency_key_reused`.")), ("422", error("`reserved_account` (0), `limit_reached`."))],
        }),
        ("/v1/accounts/{account}/schedule", Op {
            method: "get", id: "getSchedule", summary: "An account's delivery schedule",
            description: "The deliveries fixed at each closed slot's gate that name the account: as `provider` it delivers its GPUs for the hour, as `holder` it receives them (each entry names both, the GPUs and the chain of trades they went through). In the order they were fixed; the most recent 10,000 per account are kept by default (the ledger has all: `gpux replay export --what deliveries`). The account's own key, or the admin's.",
            access: AccountOrAdmin, write: false, params: vec![account_param()], body: None,
            responses: vec![("200", ok("The schedule.", "Schedule")), ("404", error("`unknown_account`."))],
        }),
        ("/v1/accounts/{account}/balances", Op {
            method: "get", id: "getAccountBalances", summary: "Any account's balances (admin)",
            description: "Balances of any account, the fee account 0 included.",
            access: Admin, write: false, params: vec![account_param()], body: None,
            responses: vec![("200", ok("Balances.", "Balances")), ("404", error("`unknown_account`."))],
        }),
        ("/v1/accounts/{account}/deposits", Op {
            method: "post", id: "deposit", summary: "Deposit USD (admin)",
            description: "Credits USD that arrived from outside. Engine codes: `reserved_account` (422), `unknown_account` (404), `invalid_amount` (400), `balance_limit_exceeded` (422).",
            access: Admin, write: true, params: vec![account_param()], body: Some("AmountRequest"),
            responses: vec![("200", ok("Deposited.", "CashMoved")), ("404", error("`unknown_account`.")), ("422", error("`reserved_account`, `balance_limit_exceeded`."))],
        }),
        ("/v1/accounts/{account}/withdrawals", Op {
            method: "post", id: "adminWithdraw", summary: "Withdraw USD from any account (admin)",
            description: "Pays USD out of an account's available balance (the fee account 0 included).",
            access: Admin, write: true, params: vec![account_param()], body: Some("AmountRequest"),
            responses: vec![("200", ok("Withdrawn.", "CashMoved")), ("404", error("`unknown_account`.")), ("422", error("`insufficient_funds`."))],
        }),
        ("/v1/balances", Op {
            method: "get", id: "getBalances", summary: "My balances",
            description: "USD, and GPUs per (market, delivery slot) with any, each available and held, with the account's own unsold inventory among them, as of the replica's last applied command. A slot's GPUs leave the balances when its gate closes (they are delivered: see the schedule).",
            access: Account, write: false, params: vec![], body: None,
            responses: vec![("200", ok("Balances.", "Balances"))],
        }),
        ("/v1/withdrawals", Op {
            method: "post", id: "withdraw", summary: "Withdraw my USD",
            description: "Pays USD out of the caller's available balance (held USD cannot be withdrawn).",
            access: Account, write: true, params: vec![], body: Some("AmountRequest"),
            responses: vec![("200", ok("Withdrawn.", "CashMoved")), ("422", error("`insufficient_funds`."))],
        }),
        ("/v1/capacity/add", Op {
            method: "post", id: "addCapacity", summary: "Add my GPU capacity",
            description: "A provider lists GPUs it can sell in every slot of a range (`from_slot` to `to_slot`, both included), all slots or none. Codes: `unknown_market` (404), `invalid_slot`, `invalid_amount`, `off_lot_quantity`, `invalid_slot_range` (400), `slot_closed`, `slot_beyond_horizon`, `balance_limit_exceeded` (422).",
            access: Account, write: true, params: vec![], body: Some("CapacityRequest"),
            responses: vec![("200", ok("Added.", "CapacityMoved")), ("404", error("`unknown_market`.")), ("422", error("`balance_limit_exceeded`."))],
        }),
        ("/v1/capacity/remove", Op {
            method: "post", id: "removeCapacity", summary: "Remove my GPU capacity",
            description: "Takes unsold GPUs back in every slot of a range, all slots or none (GPUs held by open sells, and GPUs bought from others, cannot be removed).",
            access: Account, write: true, params: vec![], body: Some("CapacityRequest"),
            responses: vec![("200", ok("Removed.", "CapacityMoved")), ("404", error("`unknown_market`.")), ("422", error("`insufficient_capacity`."))],
        }),
    ]
}

/// The operations on orders by id, open orders and mass cancel.
fn order_ops() -> Vec<(&'static str, Op)> {
    use Access::*;
    vec![
        ("/v1/orders", Op {
            method: "post", id: "placeOrder", summary: "Place an order",
            description: "Places a limit or market order in one delivery slot (`slot`), or an all-or-none order over consecutive slots (`window`, IOC/FOK limit orders: the same quantity in every slot), or a cluster buy (`colocate`, IOC/FOK limit buys: every GPU from one provider's own inventory), and answers once it is durable, with its status and the fills it made on arrival (each naming its slot). Without an Idempotency-Key, a `client_order_id` is the idempotency key: within the idempotency window the same client id and body return the first order's result, and another body is 409 `idempotency_key_reused`; send a fresh Idempotency-Key to place a new order under a client id whose order has closed. A slot that does not parse is 400 `invalid_slot`. Rejections carry the engine's code: shape codes 400 (`invalid_order`, `off_tick_price`, `price_out_of_band`, `invalid_quantity`, `off_lot_quantity`, `quantity_too_large`, `good_till_in_past`, `invalid_slot_range`), `unknown_market` 404, `duplicate_client_order_id` 409, and 422 for `slot_closed`, `slot_beyond_horizon`, `insufficient_funds`, `insufficient_capacity`, `post_only_would_cross`, `fok_not_fillable`, `window_not_fillable`, `cluster_not_fillable`, `too_many_open_orders`, `book_full`.",
            access: Account, write: true, params: vec![], body: Some("PlaceOrderRequest"),
            responses: vec![("200", ok("Accepted: resting, partially filled, filled or cancelled (IOC/market remainder, STP).", "Order")), ("404", error("`unknown_market`.")), ("409", error("`duplicate_client_order_id` or `idempotency_key_reused`.")), ("422", error("Refused by the current state (funds, capacity, book)."))],
        }),
        ("/v1/orders", Op {
            method: "get", id: "listOpenOrders", summary: "My open orders",
            description: "The caller's open orders (without fills), by id.",
            access: Account, write: false, params: vec![market_query(), slot_query()], body: None,
            responses: vec![("200", ok("Open orders.", "Orders")), ("404", error("`unknown_market`."))],
        }),
        ("/v1/orders", Op {
            method: "delete", id: "massCancel", summary: "Cancel all my orders",
            description: "Cancels every open order of the caller, or those in one market, or in one slot of one market.",
            access: Account, write: true, params: vec![market_query(), slot_query()], body: None,
            responses: vec![("200", ok("Cancelled.", "MassCancelResult")), ("404", error("`unknown_market`."))],
        }),
        ("/v1/cancel-after", Op {
            method: "post", id: "cancelAfter", summary: "Dead man's switch: cancel all my orders unless renewed",
            description: "Arms (or renews) the caller's switch: unless this is sent again within `timeout_ms`, all the caller's open orders are cancelled by a sequenced `mass_cancel` whose `request_id` is `cancel_after:<account>:<trigger_time_ms>` (so the ledger says why). `timeout_ms` 0 disarms it; at most 86,400,000 (a day). The deadline is kept by the gateway that received the request, in memory: renew through the same gateway; a restart of it drops the switch.",
            access: Account, write: false, params: vec![], body: Some("CancelAfterRequest"),
            responses: vec![
                ("200", ok("Armed (or disarmed).", "CancelAfterResult")),
                ("400", error("`malformed_json`, `invalid_body` (unknown fields, a timeout over a day).")),
            ],
        }),
        ("/v1/orders/{order_id}", Op {
            method: "get", id: "getOrder", summary: "One of my orders, with its fills",
            description: "An open or recently closed order of the caller with its kept fills. Another account's order is 404 `unknown_order`, like one that does not exist.",
            access: Account, write: false, params: vec![order_id_param()], body: None,
            responses: vec![("200", ok("The order.", "Order")), ("404", error("`unknown_order`."))],
        }),
        ("/v1/orders/{order_id}", Op {
            method: "delete", id: "cancelOrder", summary: "Cancel an order",
            description: "Cancels one of the caller's open orders.",
            access: Account, write: true, params: vec![order_id_param()], body: None,
            responses: vec![("200", ok("Cancelled.", "CancelResult")), ("404", error("`unknown_order`."))],
        }),
        ("/v1/orders/{order_id}", Op {
            method: "patch", id: "amendOrder", summary: "Amend an order",
            description: "Changes an open order's price and/or open quantity. A quantity decrease at the same price keeps its place; anything else re-queues it (and it may trade, as taker).",
            access: Account, write: true, params: vec![order_id_param()], body: Some("AmendOrderRequest"),
            responses: vec![("200", ok("Amended.", "AmendResult")), ("404", error("`unknown_order`.")), ("422", error("`insufficient_funds`, `insufficient_capacity`, `post_only_would_cross`."))],
        }),
    ]
}

/// The operations on orders by client order id, and fills.
fn client_order_ops() -> Vec<(&'static str, Op)> {
    use Access::*;
    vec![
        ("/v1/orders/by-client-id/{client_order_id}", Op {
            method: "get", id: "getOrderByClientId", summary: "One of my open orders by client id",
            description: "The caller's open order with this client order id, with its fills.",
            access: Account, write: false, params: vec![client_id_param()], body: None,
            responses: vec![("200", ok("The order.", "Order")), ("404", error("`unknown_order`."))],
        }),
        ("/v1/orders/by-client-id/{client_order_id}", Op {
            method: "delete", id: "cancelOrderByClientId", summary: "Cancel an order by client id",
            description: "Cancels the caller's open order with this client order id.",
            access: Account, write: true, params: vec![client_id_param()], body: None,
            responses: vec![("200", ok("Cancelled.", "CancelResult")), ("404", error("`unknown_order`."))],
        }),
        ("/v1/orders/by-client-id/{client_order_id}", Op {
            method: "patch", id: "amendOrderByClientId", summary: "Amend an order by client id",
            description: "As `amendOrder`, naming the order by its client order id.",
            access: Account, write: true, params: vec![client_id_param()], body: Some("AmendOrderRequest"),
            responses: vec![("200", ok("Amended.", "AmendResult")), ("404", error("`unknown_order`.")), ("422", error("`insufficient_funds`, `insufficient_capacity`, `post_only_would_cross`."))],
        }),
        ("/v1/fills", Op {
            method: "get", id: "listFills", summary: "My fills",
            description: "The caller's fills, newest first, paginated by trade id: pass `next_before` as `before` for the next page. The most recent 10,000 fills per account are kept by default.",
            access: Account, write: false,
            params: vec![
                market_query(),
                query_param("before", "Only fills with a smaller trade id.", json!({"type": "integer", "format": "uint64"})),
                query_param("limit", "Page size, 1 to 1,000 (default 100).", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
            ],
            body: None,
            responses: vec![("200", ok("A page of fills.", "Fills"))],
        }),
    ]
}

/// A public market-data read: `GET`, no key, rate limited per address like every
/// anonymous request, refused while the gateway starts or rebuilds its replica
/// (market data is rebuilt with it), strict query parameters.
fn market_data_get(
    id: &str,
    summary: &str,
    description: &str,
    query: Vec<Value>,
    answer: (&str, &str),
) -> Value {
    let mut params = vec![path_param(
        "market",
        "Market id; a market that is not listed is 404 `unknown_market`.",
        schema("MarketId"),
    )];
    if id != "getForwardCurve" {
        params.push(slot_param());
    }
    params.extend(query);
    json!({
        "operationId": id,
        "summary": summary,
        "description": description,
        "tags": ["public", "market-data"],
        "security": [],
        "parameters": params,
        "responses": {
            "200": ok(answer.0, answer.1),
            "400": error("`invalid_parameter`: an unknown or repeated query parameter, or a value that is not a whole number in range or not one of the listed values; `invalid_slot`: the slot does not parse; `invalid_path`: the market is not a valid path segment (e.g. `%ff`); `repeated_authorization`: more than one Authorization header."),
            "404": error("`unknown_market`."),
            "429": error("`rate_limited`: too many requests from this address (or this key, if a valid one is sent); see `Retry-After`."),
            "503": error("`starting`, `replica_diverged` or `replica_rebuilding`: the gateway is catching up, or rebuilding market data with its replica; see `Retry-After`."),
        },
    })
}

/// Market data's operations (`crate::marketdata::served_routes`), as
/// `(path, method, operation)`. The shapes are `marketdata::wire`'s; the protocol
/// is `docs/MARKET_DATA.md`.
fn market_data_ops() -> Vec<(&'static str, &'static str, Value)> {
    let count = |name: &str, description: &str, max: u64, default: u64| {
        query_param(
            name,
            description,
            json!({"type": "integer", "minimum": 1, "maximum": max, "default": default}),
        )
    };
    vec![
        ("/v1/markets/{market}/slots", "get", market_data_get(
            "getForwardCurve", "Forward curve",
            "One row per open slot of the market (a slot with a book, whose gate has not closed), in slot order: best bid and ask, the slot's last trade price and the GPU-hours traded in it. Takes no query parameters.",
            vec![],
            ("The curve.", "Curve"),
        )),
        ("/v1/markets/{market}/slots/{slot}/depth", "get", market_data_get(
            "getDepth", "L2 depth",
            "The published L2 book of one delivery slot of a market: up to `depth` levels per side, best first, each `[price, quantity]` (the level's total GPU-hours), and the `seq` it reflects (the `cmd_seq` of the last command whose changes it includes, 0 for a slot nothing happened in; it may trail the last committed command by one publication interval, 10 ms by default). With `seq`, WebSocket `book.<market>.<slot>` updates whose `prev_seq` is this `seq` continue it (docs/MARKET_DATA.md, \"Sequence numbers\").",
            vec![count("depth", "Levels per side, 1 to `depth_max` (1,000 by default); default `depth_default` (50).", 1000, 50)],
            ("The book.", "Depth"),
        )),
        ("/v1/markets/{market}/slots/{slot}/trades", "get", market_data_get(
            "getTrades", "Trade history",
            "The slot's public trades, oldest first: the most recent `limit`, or with `before` the `limit` trades before that trade id, so a client walks back page by page passing each page's `next_before` (the last `recent_trades` trades of a slot are kept, 1,000 by default). Accounts and order ids never appear.",
            vec![
                count("limit", "How many, 1 to `recent_trades` (1,000 kept by default); default `trades_default` (100).", 1000, 100),
                query_param("before", "Only trades with a smaller trade id (the previous page's `next_before`).", json!({"type": "integer", "format": "uint64", "minimum": 0})),
            ],
            ("Trades, oldest first.", "TradesPage"),
        )),
        ("/v1/markets/{market}/slots/{slot}/ticker", "get", market_data_get(
            "getTicker", "Ticker",
            "Best bid and ask (from the published book), the last trade, and the 24h figures over the window ending at `ts_ns`, the latest committed timestamp (committed time, never the wall clock). Takes no query parameters.",
            vec![],
            ("The ticker; absent values are `null`.", "Ticker"),
        )),
        ("/v1/markets/{market}/slots/{slot}/candles", "get", market_data_get(
            "getCandles", "Candles",
            "The slot's last candles of one interval that open in `start`..`end`, oldest first. Intervals without trades have no candle. One-minute and one-hour candles are kept (`candles` of each, 1,500 by default, and at least a day of one-minute ones); 5m and 15m candles are merged from the kept one-minute candles and 1d candles (UTC days) from the one-hour candles when read.",
            vec![
                query_param("interval", "Candle length; default `1m`.", json!({"$ref": "#/components/schemas/CandleInterval", "default": "1m"})),
                count("limit", "How many (the newest of those in range), 1 to the candles kept per interval (`candles`, 1,500 by default); default `candles_default` (100).", 1500, 100),
                query_param("start", "Only candles opening at or after this time, ns since the epoch (committed time).", json!({"type": "integer", "format": "uint64", "minimum": 0})),
                query_param("end", "Only candles opening before this time, ns since the epoch; after `start`.", json!({"type": "integer", "format": "uint64", "minimum": 0})),
            ],
            ("Candles, oldest first.", "Candles"),
        )),
        ("/v1/ws", "get", ws_op()),
    ]
}

/// The `/v1/ws` upgrade.
fn ws_op() -> Value {
    let header = |name: &str, description: &str, s: Value| json!({ "name": name, "in": "header", "required": true, "description": description, "schema": s });
    let retry_after = || json!({ "Retry-After": { "description": "Seconds to wait before reconnecting.", "schema": {"type": "integer", "minimum": 0} } });
    json!({
        "operationId": "marketDataWebSocket",
        "summary": "Market-data WebSocket",
        "description": "Upgrades to a WebSocket (RFC 6455) carrying JSON text frames: subscribe to `book.<market>.<slot>` (snapshot, then updates with `seq`/`prev_seq`), `trades.<market>.<slot>`, `ticker.<market>.<slot>`, `curve.<market>` (the shapes of `Depth`, `Trades`, `Ticker` and `Curve` with `type` and `channel` added; a slot is written `2026-12-07T09:00Z`) and, once authenticated, the private `orders` channel. The key is optional: send `Authorization: Bearer <key>` on the upgrade, or authenticate later with `{\"op\":\"auth\",\"key\":…}`. Requests, channels, error codes, limits, heartbeats and close codes: docs/MARKET_DATA.md (\"WebSocket `/v1/ws`\" and the sections after it).",
        "tags": ["public", "market-data"],
        "security": [{}, { "accountKey": [] }, { "adminKey": [] }],
        "parameters": [
            header("Connection", "Must include `Upgrade`.", json!({"type": "string"})),
            header("Upgrade", "`websocket`.", json!({"type": "string", "enum": ["websocket"]})),
            header("Sec-WebSocket-Version", "`13`.", json!({"type": "string", "enum": ["13"]})),
            header("Sec-WebSocket-Key", "The client's nonce (RFC 6455).", json!({"type": "string"})),
        ],
        "responses": {
            "101": {
                "description": "Switching Protocols: the connection is now the market-data WebSocket (docs/MARKET_DATA.md).",
                "headers": { "Sec-WebSocket-Accept": { "description": "RFC 6455 handshake answer.", "schema": {"type": "string"} } },
            },
            "400": error("`websocket_upgrade_required`: a plain request, without the WebSocket upgrade headers; `repeated_authorization`: more than one Authorization header."),
            "401": error("`unauthorized`: an `Authorization` header that is not a known key (no header is fine: the connection is anonymous)."),
            "429": {
                "description": "`too_many_connections`: the account's (16 by default), the anonymous peer address's (64) or the server's (10,000) connection limit is reached.",
                "headers": retry_after(),
                "content": json_content(schema("Error")),
            },
            "503": {
                "description": "`unavailable`: market data is shutting down; `replica_rebuilding`: market data is being rebuilt with the gateway's replica. Reconnect later.",
                "headers": retry_after(),
                "content": json_content(schema("Error")),
            },
        },
    })
}

fn object(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": required, "properties": props })
}

/// Appends `more`'s entries to the object `all`, in their order.
fn extend(all: &mut Value, more: Value) {
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), more) {
        all.extend(more);
    }
}

/// The API's schemas (market data's are [`market_data_schemas`]).
fn schemas() -> Value {
    let mut all = request_schemas();
    extend(&mut all, response_schemas());
    extend(&mut all, slot_schemas());
    extend(&mut all, key_schemas());
    all
}

/// The API keys' schemas.
fn key_schemas() -> Value {
    let e = |values: &[&str]| json!({"type": "string", "enum": values});
    let uint = || json!({"type": "integer", "format": "uint64", "minimum": 0});
    json!({
        "CreatedKey": object(&["account", "key_id", "scope", "cmd_seq"], json!({
            "account": uint(),
            "api_key": {"type": "string", "description": "`gpux_` + 64 hex digits. Shown once (not on an idempotent replay)."},
            "key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "scope": e(&["full", "trade", "read"]),
            "cmd_seq": uint(),
        })),
        "Keys": object(&["account", "keys", "as_of_cmd_seq"], json!({
            "account": uint(),
            "keys": {"type": "array", "items": object(&["key_id", "scope", "current"], json!({
                "key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
                "scope": e(&["full", "trade", "read"]),
                "current": {"type": "boolean", "description": "The key of this request."},
            }))},
            "as_of_cmd_seq": uint(),
        })),
        "RevokedKey": object(&["account", "key_id", "cmd_seq"], json!({
            "account": uint(),
            "key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "cmd_seq": uint(),
        })),
    })
}

/// The error shape, the value types and the request bodies.
fn request_schemas() -> Value {
    let dec = || schema("Decimal");
    let uint = || json!({"type": "integer", "format": "uint64", "minimum": 0});
    let e = |values: &[&str]| json!({"type": "string", "enum": values});
    json!({
        "Error": object(&["code", "message"], json!({
            "code": {"type": "string", "description": "Stable machine-readable code (snake_case); engine rejections use the engine's reject codes (docs/PROTOCOL.md)."},
            "message": {"type": "string", "description": "For humans; never internals."},
            "status": {"type": "string", "enum": ["rejected"], "description": "On the refusal (400, 404, 409 but `idempotency_key_reused`, 422) of an order placement only: the order's status."},
        })),
        "Decimal": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$", "description": "A decimal as a string: plain digits, optionally a fraction. No exponents, signs or JSON numbers.", "examples": ["2.45"]},
        "MarketId": {"type": "string", "pattern": "^[a-z0-9-]+\\.[a-z0-9-]+$", "maxLength": 32, "examples": ["h100-sxm.us-east"]},
        "Slot": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:00(:00)?Z$", "description": "A delivery slot: one UTC hour, named by its start, minutes (and seconds) `00`, zone `Z`. Anything else, an impossible date included, is 400 `invalid_slot`.", "examples": ["2026-12-07T09:00Z"]},
        "Window": object(&["from_slot", "to_slot"], json!({"from_slot": schema("Slot"), "to_slot": schema("Slot")})),
        "ClientOrderId": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,36}$"},
        "Side": e(&["buy", "sell"]),
        "OrderType": e(&["limit", "market"]),
        "TimeInForce": e(&["gtc", "ioc", "fok", "gtd"]),
        "Stp": e(&["cancel_taker", "cancel_maker", "cancel_both", "none"]),
        "OrderStatus": {"type": "string", "enum": ["open", "partially_filled", "filled", "cancelled", "expired"], "description": "Where an order is in its life: open on the book (nothing filled yet), open and partly filled, filled, cancelled (see `cancel_reason`), or expired (a GTD order whose time passed). A placement the exchange refused is an error answer with `\"status\": \"rejected\"`."},
        "CancelReason": e(&["user_requested", "ioc_remainder", "market_remainder", "self_trade_prevention", "expired", "mass_cancel", "match_limit"]),
        "Liquidity": e(&["maker", "taker"]),
        "PlaceOrderRequest": object(&["market", "side", "quantity"], json!({
            "market": schema("MarketId"),
            "slot": schema("Slot"),
            "window": schema("Window"),
            "colocate": {"type": "boolean"},
            "side": schema("Side"),
            "order_type": schema("OrderType"),
            "price": dec(),
            "quantity": dec(),
            "time_in_force": schema("TimeInForce"),
            "good_till_ns": uint(),
            "post_only": {"type": "boolean"},
            "cap": dec(),
            "client_order_id": schema("ClientOrderId"),
            "stp": schema("Stp"),
            "min_reliability": {"allOf": [schema("Decimal")], "description": "Buys that never rest (IOC, FOK, market, window, cluster): trade only with asks whose seller's delivery record is at least this reliable (0 to 1, at most 4 decimals; `new` providers are below any floor above 0). Code `invalid_min_reliability` (400) otherwise."},
        })),
        "AmendOrderRequest": object(&[], json!({"price": dec(), "quantity": dec()})),
        "AmountRequest": object(&["amount"], json!({"amount": dec()})),
        "CapacityRequest": object(&["market", "from_slot", "to_slot", "quantity"], json!({"market": schema("MarketId"), "from_slot": schema("Slot"), "to_slot": schema("Slot"), "quantity": dec()})),
        "CreateAccountRequest": object(&[], json!({
            "account": uint(),
            "api_key_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        })),
        "ListMarketRequest": object(&["market", "tick_size", "lot_size", "maker_fee_bps", "taker_fee_bps"], json!({
            "market": schema("MarketId"),
            "tick_size": dec(),
            "lot_size": dec(),
            "maker_fee_bps": {"type": "integer", "minimum": 0, "maximum": 1000},
            "taker_fee_bps": {"type": "integer", "minimum": 0, "maximum": 1000},
            "min_price": dec(),
            "max_price": dec(),
            "max_order_quantity": dec(),
            "slot_horizon_hours": {"type": "integer", "minimum": 1, "maximum": 8760},
            "gate_closure_secs": {"type": "integer", "minimum": 0, "maximum": 86400},
            "report_window_secs": {"type": "integer", "minimum": 0, "maximum": 604800, "description": "Deliveries are reported until this many seconds after the slot's end (default 3600; at most dispute_window_secs)."},
            "dispute_window_secs": {"type": "integer", "minimum": 0, "maximum": 604800, "description": "Deliveries may be disputed until this many seconds after the slot's end (default 7200)."},
        })),
        "DeliveredRequest": object(&["delivered"], json!({"delivered": dec()})),
        "CreateKeyRequest": object(&["scope"], json!({"scope": e(&["full", "trade", "read"])})),
        "ReceivedRequest": object(&["received"], json!({"received": dec()})),
    })
}

/// The response bodies of the API's operations.
fn response_schemas() -> Value {
    let dec = || schema("Decimal");
    let uint = || json!({"type": "integer", "format": "uint64", "minimum": 0});
    let e = |values: &[&str]| json!({"type": "string", "enum": values});
    json!({
        "Fill": object(&["trade_id", "order_id", "market", "slot", "side", "price", "quantity", "fee", "liquidity", "cmd_seq", "ts_ns", "ts_ms"], json!({
            "trade_id": uint(), "order_id": uint(), "market": schema("MarketId"), "slot": schema("Slot"), "side": schema("Side"),
            "price": dec(), "quantity": dec(), "fee": dec(), "liquidity": schema("Liquidity"),
            "cmd_seq": uint(), "ts_ns": uint(),
            "ts_ms": {"type": "integer", "format": "uint64", "minimum": 0, "description": "`ts_ns` in milliseconds (rounded down)."},
        })),
        "Order": object(&["order_id", "market", "slot", "side", "order_type", "quantity", "filled", "remaining", "status", "time_in_force", "post_only", "stp", "created_cmd_seq", "cmd_seq"], json!({
            "order_id": uint(), "client_order_id": schema("ClientOrderId"), "market": schema("MarketId"),
            "slot": schema("Slot"), "to_slot": schema("Slot"), "colocate": {"type": "boolean"},
            "side": schema("Side"), "order_type": schema("OrderType"), "price": dec(), "quantity": dec(),
            "filled": dec(), "remaining": dec(), "status": schema("OrderStatus"),
            "cancel_reason": schema("CancelReason"), "time_in_force": schema("TimeInForce"),
            "good_till_ns": uint(),
            "good_till_ms": {"type": "integer", "format": "uint64", "minimum": 0, "description": "`good_till_ns` in milliseconds (rounded down)."},
            "post_only": {"type": "boolean"}, "stp": schema("Stp"),
            "fills": {"type": "array", "items": schema("Fill")},
            "created_cmd_seq": uint(), "cmd_seq": uint(),
        })),
        "Orders": object(&["orders", "as_of_cmd_seq"], json!({
            "orders": {"type": "array", "items": schema("Order")}, "as_of_cmd_seq": uint(),
        })),
        "CancelResult": object(&["order_id", "market", "slot", "side", "cancelled_quantity", "status", "cmd_seq"], json!({
            "order_id": uint(), "market": schema("MarketId"), "slot": schema("Slot"), "side": schema("Side"), "price": dec(),
            "cancelled_quantity": dec(), "status": schema("OrderStatus"), "cmd_seq": uint(),
        })),
        "AmendResult": object(&["order_id", "market", "slot", "side", "old_price", "old_quantity", "price", "quantity", "priority_kept", "remaining", "status", "fills", "cmd_seq"], json!({
            "order_id": uint(), "market": schema("MarketId"), "slot": schema("Slot"), "side": schema("Side"),
            "old_price": dec(), "old_quantity": dec(), "price": dec(), "quantity": dec(),
            "priority_kept": {"type": "boolean"}, "remaining": dec(),
            "status": e(&["open", "filled", "cancelled"]),
            "fills": {"type": "array", "items": schema("Fill")}, "cmd_seq": uint(),
        })),
        "MassCancelResult": object(&["cancelled", "count", "cmd_seq"], json!({
            "market": schema("MarketId"), "slot": schema("Slot"), "cancelled": {"type": "array", "items": uint()},
            "count": uint(), "cmd_seq": uint(),
        })),
        "Fills": object(&["fills"], json!({
            "fills": {"type": "array", "items": schema("Fill")}, "next_before": uint(),
        })),
        "Balance": object(&["available", "held"], json!({"available": dec(), "held": dec()})),
        "Usd": object(&["available", "held", "escrow", "pending"], json!({
            "available": dec(), "held": dec(),
            "escrow": {"allOf": [schema("Decimal")], "description": "Paid for GPUs not yet delivered: settled to the sellers, or refunded, after delivery."},
            "pending": {"allOf": [schema("Decimal")], "description": "Owed for GPUs sold: paid once delivered."},
        })),
        "CashMoved": object(&["account", "amount", "available", "cmd_seq"], json!({
            "account": uint(), "amount": dec(), "available": dec(), "cmd_seq": uint(),
        })),
        "CapacityMoved": object(&["account", "market", "from_slot", "to_slot", "quantity", "cmd_seq"], json!({
            "account": uint(), "market": schema("MarketId"), "from_slot": schema("Slot"), "to_slot": schema("Slot"), "quantity": dec(), "cmd_seq": uint(),
        })),
        "CreatedAccount": object(&["account", "cmd_seq"], json!({
            "account": uint(),
            "api_key": {"type": "string", "description": "`gpux_` + 64 hex digits. Shown once."},
            "cmd_seq": uint(),
        })),
        "Markets": object(&["markets"], json!({"markets": {"type": "array", "items": schema("Market")}})),
        "Health": object(&["status", "ready", "applied_seq"], json!({
            "status": e(&["ok", "starting", "diverged", "rebuilding", "feed_failing", "stopped"]),
            "ready": {"type": "boolean"},
            "applied_seq": uint(),
            "diverged_at": uint(),
        })),
    })
}

/// The response bodies about delivery slots: positions per slot, the schedule and
/// ask blocks.
fn slot_schemas() -> Value {
    let dec = || schema("Decimal");
    let uint = || json!({"type": "integer", "format": "uint64", "minimum": 0});
    let e = |values: &[&str]| json!({"type": "string", "enum": values});
    json!({
        "Position": object(&["market", "slot", "available", "held", "inventory", "kept"], json!({
            "market": schema("MarketId"), "slot": schema("Slot"), "available": dec(), "held": dec(),
            "inventory": {"$ref": "#/components/schemas/Decimal", "description": "Of all the GPUs (available + held), the account's own unsold inventory; the rest was bought."},
            "kept": {"$ref": "#/components/schemas/Decimal", "description": "Besides available and held: bought GPUs kept to the gate, having gone through the most trades a GPU may in a slot (16); delivered to this account, never offered again."},
        })),
        "Balances": object(&["account", "usd", "gpus", "as_of_cmd_seq"], json!({
            "account": uint(), "usd": schema("Usd"),
            "gpus": {"type": "array", "items": schema("Position"), "description": "In market, then slot order."}, "as_of_cmd_seq": uint(),
        })),
        "ScheduleEntry": object(&["entry", "market", "slot", "role", "provider", "holder", "quantity", "trades", "state", "report_until", "dispute_until"], json!({
            "entry": uint(), "market": schema("MarketId"), "slot": schema("Slot"),
            "role": e(&["provider", "holder", "both"]),
            "provider": uint(), "holder": uint(), "quantity": dec(),
            "trades": {"type": "array", "items": uint(), "description": "The trades the GPUs went through, from the provider's sale to the holder's purchase."},
            "state": e(&["scheduled", "reported", "disputed", "settled"]),
            "report_until": {"type": "integer", "description": "Unix seconds: the provider reports until then."},
            "dispute_until": {"type": "integer", "description": "Unix seconds: the holder may dispute until then."},
            "reported": dec(), "disputed": dec(),
            "settlement": schema("Settlement"),
        })),
        "Settlement": object(&["delivered", "basis", "dispute_lost", "paid", "refunded", "fees"], json!({
            "delivered": dec(), "basis": e(&["unreported", "reported", "resolved"]), "dispute_lost": {"type": "boolean"},
            "paid": dec(), "refunded": dec(), "fees": dec(),
        })),
        "DeliveryOutcome": object(&["entry", "event", "cmd_seq"], json!({
            "entry": uint(),
            "event": {"type": "object", "description": "The protocol event: `delivery_reported`, `delivery_disputed` or `delivery_settled` (docs/PROTOCOL.md)."},
            "cmd_seq": uint(),
        })),
        "ProviderAhead": object(&["market", "listed", "sold"], json!({"market": schema("MarketId"), "listed": dec(), "sold": dec()})),
        "ProviderRecord": object(&["account", "reliability", "obligated", "delivered", "disputes_lost", "ahead"], json!({
            "account": uint(),
            "reliability": {"type": "string", "description": "`delivered / obligated` as a decimal string (4 decimals, rounded down), or `new`."},
            "obligated": dec(), "delivered": dec(), "disputes_lost": uint(),
            "ahead": {"type": "array", "items": schema("ProviderAhead")},
        })),
        "Providers": object(&["providers", "as_of_cmd_seq"], json!({
            "providers": {"type": "array", "items": schema("ProviderRecord")}, "as_of_cmd_seq": uint(),
        })),
        "Schedule": object(&["account", "entries", "as_of_cmd_seq"], json!({
            "account": uint(), "entries": {"type": "array", "items": schema("ScheduleEntry")}, "as_of_cmd_seq": uint(),
        })),
        "BlockLevel": object(&["price", "quantity", "largest_block"], json!({"price": dec(), "quantity": dec(), "largest_block": dec()})),
        "Blocks": object(&["market", "slot", "asks", "as_of_cmd_seq"], json!({
            "market": schema("MarketId"), "slot": schema("Slot"),
            "asks": {"type": "array", "items": schema("BlockLevel"), "description": "Best (lowest) first."}, "as_of_cmd_seq": uint(),
        })),
    })
}

/// The shapes of `marketdata::wire` as REST serves them (without the WebSocket's
/// `type`/`channel`/`prev_seq`).
fn market_data_schemas() -> Value {
    let dec = || schema("Decimal");
    let uint = || json!({"type": "integer", "format": "uint64", "minimum": 0});
    let opt_dec = || json!({"anyOf": [schema("Decimal"), {"type": "null"}]});
    json!({
        "Level": {
            "type": "array",
            "description": "One L2 level, `[price, quantity]`: the price and the total GPU-hours resting at it, as decimal strings at the market's tick and lot scale.",
            "prefixItems": [dec(), dec()],
            // A pair: `maxItems`, not `"items": false` (a boolean schema, which
            // OpenAPI generators such as openapi-python-client refuse).
            "minItems": 2,
            "maxItems": 2,
            "examples": [["2.45", "1.0"]],
        },
        "Depth": object(&["market", "slot", "seq", "bids", "asks"], json!({
            "market": schema("MarketId"),
            "slot": schema("Slot"),
            "seq": {"type": "integer", "format": "uint64", "minimum": 0, "description": "`cmd_seq` of the last command whose changes this book includes."},
            "bids": {"type": "array", "items": schema("Level"), "description": "Best (highest) first."},
            "asks": {"type": "array", "items": schema("Level"), "description": "Best (lowest) first."},
            "checksum": {"type": "integer", "format": "uint32", "minimum": 0, "description": "WebSocket book messages only: CRC-32 of the top 10 levels of the book after this message (docs/MARKET_DATA.md, \"Book checksum\")."},
        })),
        "Trade": object(&["trade", "seq", "ts_ns", "ts_ms", "price", "quantity", "taker_side"], json!({
            "trade": {"type": "integer", "format": "uint64", "minimum": 0, "description": "The engine's trade id."},
            "seq": {"type": "integer", "format": "uint64", "minimum": 0, "description": "`cmd_seq` of the command that traded."},
            "ts_ns": {"type": "integer", "format": "uint64", "minimum": 0, "description": "Its committed timestamp, ns since the epoch."},
            "ts_ms": {"type": "integer", "format": "uint64", "minimum": 0, "description": "`ts_ns` in milliseconds (rounded down)."},
            "price": dec(), "quantity": dec(),
            "taker_side": schema("Side"),
        })),
        "Trades": object(&["market", "slot", "trades"], json!({
            "market": schema("MarketId"),
            "slot": schema("Slot"),
            "trades": {"type": "array", "items": schema("Trade"), "description": "Oldest first."},
        })),
        "Ticker": object(&["market", "slot", "seq", "ts_ns", "ts_ms", "best_bid", "best_bid_quantity", "best_ask", "best_ask_quantity", "last_price", "last_quantity", "last_ts_ns", "last_ts_ms", "open_24h", "high_24h", "low_24h", "volume_24h", "trades_24h"], json!({
            "market": schema("MarketId"),
            "slot": schema("Slot"),
            "seq": {"type": "integer", "format": "uint64", "minimum": 0, "description": "The last command reflected."},
            "ts_ns": {"type": "integer", "format": "uint64", "minimum": 0, "description": "The latest committed timestamp: the end of the 24h window."},
            "ts_ms": {"type": "integer", "format": "uint64", "minimum": 0, "description": "`ts_ns` in milliseconds (rounded down)."},
            "best_bid": opt_dec(), "best_bid_quantity": opt_dec(),
            "best_ask": opt_dec(), "best_ask_quantity": opt_dec(),
            "last_price": opt_dec(), "last_quantity": opt_dec(),
            "last_ts_ns": {"type": ["integer", "null"], "format": "uint64", "minimum": 0},
            "last_ts_ms": {"type": ["integer", "null"], "format": "uint64", "minimum": 0, "description": "`last_ts_ns` in milliseconds (rounded down)."},
            "open_24h": opt_dec(), "high_24h": opt_dec(), "low_24h": opt_dec(),
            "volume_24h": dec(),
            "trades_24h": uint(),
        })),
        "Candles": object(&["market", "slot", "interval", "candles"], json!({
            "market": schema("MarketId"),
            "slot": schema("Slot"),
            "interval": schema("CandleInterval"),
            "candles": {"type": "array", "items": schema("Candle"), "description": "Oldest first."},
        })),
        "CandleInterval": {"type": "string", "enum": ["1m", "5m", "15m", "1h", "1d"]},
        "CurveRow": object(&["slot", "best_bid", "best_ask", "last_price", "volume"], json!({
            "slot": schema("Slot"),
            "best_bid": opt_dec(), "best_ask": opt_dec(),
            "last_price": {"anyOf": [schema("Decimal"), {"type": "null"}], "description": "The slot's last trade price."},
            "volume": {"$ref": "#/components/schemas/Decimal", "description": "GPU-hours traded in the slot since its book opened."},
            "closed": {"type": "boolean", "description": "WebSocket updates only: the slot's gate closed; it left the curve."},
        })),
        "Curve": object(&["market", "slots"], json!({
            "market": schema("MarketId"),
            "slots": {"type": "array", "items": schema("CurveRow"), "description": "Open slots, in order."},
        })),
    })
}

/// The shapes of the network's statistics and the trade history's pages.
fn history_and_stats_schemas() -> Value {
    let uint = || json!({"type": "integer", "format": "uint64", "minimum": 0});
    json!({
        "TradesPage": object(&["market", "slot", "trades", "next_before"], json!({
            "market": schema("MarketId"),
            "slot": schema("Slot"),
            "trades": {"type": "array", "items": schema("Trade"), "description": "Oldest first."},
            "next_before": {"type": ["integer", "null"], "format": "uint64", "minimum": 0, "description": "Older trades are kept: pass this as `before` for the page before this one; `null` on the oldest page kept."},
        })),
        "Stats": object(&["markets", "open_slots", "gpu_hours_listed", "gpu_hours_sold", "gpu_hours_scheduled", "gpu_hours_delivered", "notional_24h", "active_providers", "providers", "reliability_histogram", "providers_new", "ts_ns", "as_of_cmd_seq"], json!({
            "markets": uint(),
            "open_slots": {"type": "integer", "minimum": 0, "description": "Open delivery hours (books whose gate has not closed), every market."},
            "gpu_hours_listed": {"$ref": "#/components/schemas/Decimal", "description": "GPU-hours offered (resting asks) in open hours."},
            "gpu_hours_sold": {"$ref": "#/components/schemas/Decimal", "description": "GPU-hours traded in open hours: sold ahead of delivery."},
            "gpu_hours_scheduled": {"$ref": "#/components/schemas/Decimal", "description": "GPU-hours scheduled for delivery at the gates, in all."},
            "gpu_hours_delivered": {"$ref": "#/components/schemas/Decimal", "description": "GPU-hours delivered, in all: what every settled delivery entry delivered (as reported, as resolved, or nothing when unreported)."},
            "notional_24h": {"$ref": "#/components/schemas/Decimal", "description": "USD traded in the 24 hours before `ts_ns`."},
            "active_providers": {"type": "integer", "minimum": 0, "description": "Accounts with at least one resting ask."},
            "providers": {"type": "array", "items": schema("ProviderStats"), "description": "The providers offering the most, then those scheduled the most; at most 100."},
            "reliability_histogram": {"type": "array", "items": schema("ReliabilityBucket"), "minItems": 10, "description": "Every provider of `GET /v1/providers` with a reliability, by reliability: ten buckets of a tenth, from 0 to 1."},
            "providers_new": {"type": "integer", "minimum": 0, "description": "Providers of `GET /v1/providers` with nothing settled in the last 30 days (reliability `new`, in no bucket)."},
            "ts_ns": {"type": "integer", "format": "uint64", "minimum": 0, "description": "The latest committed timestamp: the end of the 24-hour window."},
            "as_of_cmd_seq": uint(),
        })),
        "ProviderStats": object(&["account", "gpu_hours_listed", "gpu_hours_scheduled", "reliability", "gpu_hours_delivered_30d", "disputes_lost_30d"], json!({
            "account": uint(),
            "gpu_hours_listed": {"$ref": "#/components/schemas/Decimal", "description": "GPU-hours it offers now (its resting asks)."},
            "gpu_hours_scheduled": {"$ref": "#/components/schemas/Decimal", "description": "GPU-hours it was scheduled to deliver, in all."},
            "reliability": {"type": "string", "description": "Its delivery record's `delivered / obligated` over the last 30 days as a decimal string (4 decimals, rounded down), or `new` with nothing settled in that time."},
            "gpu_hours_delivered_30d": {"$ref": "#/components/schemas/Decimal", "description": "GPU-hours it delivered in the last 30 days (settled entries)."},
            "disputes_lost_30d": {"type": "integer", "minimum": 0, "description": "Disputes it lost in the last 30 days (a resolution below its report)."},
        })),
        "ReliabilityBucket": object(&["from", "to", "providers"], json!({
            "from": {"$ref": "#/components/schemas/Decimal", "description": "Lowest reliability in the bucket (inclusive)."},
            "to": {"$ref": "#/components/schemas/Decimal", "description": "Highest (exclusive; the last bucket, to 1, holds 1)."},
            "providers": {"type": "integer", "minimum": 0, "description": "Providers in it."},
        })),
    })
}

fn all_schemas() -> Value {
    let mut all = schemas();
    extend(&mut all, market_data_schemas());
    extend(&mut all, history_and_stats_schemas());
    extend(&mut all, system_schemas());
    all
}

/// A market's spec and metadata, the server's time and limits, cancel-after, and a
/// market-data candle.
fn system_schemas() -> Value {
    let dec = || schema("Decimal");
    let uint = || json!({"type": "integer", "format": "uint64", "minimum": 0});
    json!({
        "CancelAfterRequest": object(&["timeout_ms"], json!({
            "timeout_ms": {"type": "integer", "format": "uint64", "minimum": 0, "maximum": 86_400_000, "description": "Cancel all my open orders unless renewed within this many ms; 0 disarms."},
        })),
        "CancelAfterResult": object(&["account", "current_time_ms", "trigger_time_ms"], json!({
            "account": uint(),
            "current_time_ms": uint(),
            "trigger_time_ms": {"type": ["integer", "null"], "format": "uint64", "minimum": 0, "description": "When the orders will be cancelled unless renewed, unix ms; null: disarmed."},
        })),
        "Market": object(&["market", "base", "base_unit", "region", "quote", "tick_size", "lot_size", "maker_fee_bps", "taker_fee_bps", "min_price", "max_price", "max_order_quantity", "slot_horizon_hours", "gate_closure_secs", "report_window_secs", "dispute_window_secs"], json!({
            "market": schema("MarketId"),
            "base": {"type": "string", "description": "The GPU model traded: the market id before its dot (`h100-sxm`)."},
            "base_unit": {"type": "string", "enum": ["gpu_hour"], "description": "A quantity of 1 is one GPU for one hour (one delivery slot)."},
            "region": {"type": "string", "description": "Where the GPUs are: the market id after its dot (`us-east`)."},
            "quote": {"type": "string", "enum": ["USD"], "description": "Prices are USD per GPU-hour."},
            "tick_size": {"$ref": "#/components/schemas/Decimal", "description": "Prices are multiples of it."},
            "lot_size": {"$ref": "#/components/schemas/Decimal", "description": "Quantities are multiples of it."},
            "maker_fee_bps": {"type": "integer"}, "taker_fee_bps": {"type": "integer"},
            "min_price": {"$ref": "#/components/schemas/Decimal", "description": "The lowest price an order may carry."},
            "max_price": {"$ref": "#/components/schemas/Decimal", "description": "The highest price an order may carry."},
            "max_order_quantity": {"$ref": "#/components/schemas/Decimal", "description": "The most GPU-hours one order may carry (the least is `lot_size`)."},
            "slot_horizon_hours": {"type": "integer", "description": "How many hours ahead slots trade."},
            "gate_closure_secs": {"type": "integer", "description": "Trading in a slot stops this many seconds before it starts."},
            "report_window_secs": {"type": "integer", "description": "Deliveries are reported until this many seconds after the slot's end."},
            "dispute_window_secs": {"type": "integer", "description": "Deliveries may be disputed until this many seconds after the slot's end."},
            "cmd_seq": uint(),
        })),
        "Time": object(&["ts_ns", "ts_ms", "iso"], json!({
            "ts_ns": uint(), "ts_ms": uint(),
            "iso": {"type": "string", "examples": ["2026-12-07T09:00:00.123Z"]},
        })),
        "Limits": object(&["rest", "websocket"], json!({
            "rest": object(&["per_key", "per_ip_anonymous", "signups_per_ip", "body_bytes_max", "request_timeout_ms"], json!({
                "per_key": {"description": "Per API key.", "anyOf": [schema("Bucket"), {"type": "null"}]},
                "per_ip_anonymous": {"description": "Per client address, for requests without a valid key (public endpoints, market data's REST reads).", "anyOf": [schema("Bucket"), {"type": "null"}]},
                "signups_per_ip": {"description": "Self-serve signups per client address (`null`: self-serve signup is off).", "anyOf": [schema("Bucket"), {"type": "null"}]},
                "body_bytes_max": uint(), "request_timeout_ms": uint(),
            })),
            "websocket": object(&["requests_per_sec", "request_burst", "subscriptions_max", "connections_per_account", "connections_per_address", "request_bytes_max", "frame_bytes_max"], json!({
                "requests_per_sec": uint(), "request_burst": uint(), "subscriptions_max": uint(),
                "connections_per_account": uint(), "connections_per_address": uint(),
                "request_bytes_max": uint(), "frame_bytes_max": uint(),
            })),
        })),
        "Bucket": object(&["burst", "replenish_interval_ms"], json!({
            "burst": uint(), "replenish_interval_ms": uint(),
        })),
        "Candle": object(&["open_ns", "open_ms", "open", "high", "low", "close", "volume", "trades"], json!({
            "open_ns": {"type": "integer", "format": "uint64", "minimum": 0, "description": "Start of the interval (a multiple of its length), ns since the epoch, committed time."},
            "open_ms": {"type": "integer", "format": "uint64", "minimum": 0, "description": "`open_ns` in milliseconds."},
            "open": dec(), "high": dec(), "low": dec(), "close": dec(),
            "volume": dec(),
            "trades": uint(),
        })),
    })
}

/// Paths whose answers carry no `RateLimit-*` headers: not rate limited.
const NOT_RATE_LIMITED: [&str; 3] = ["/v1/health", "/v1/openapi.json", "/v1/ws"];

/// The `RateLimit-*` headers on the success and 429 responses of every
/// rate-limited operation (every other answer of it carries them too; the
/// document's description says so once).
fn add_rate_limit_headers(paths: &mut Map<String, Value>) {
    for (path, methods) in paths.iter_mut() {
        if NOT_RATE_LIMITED.contains(&path.as_str()) {
            continue;
        }
        for op in methods
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            let responses = op["responses"]
                .as_object_mut()
                .into_iter()
                .flat_map(|r| r.iter_mut());
            for (code, resp) in responses {
                if !(code.starts_with('2') || code == "429") {
                    continue;
                }
                let h = &mut resp["headers"];
                if h.is_null() {
                    *h = json!({});
                }
                for name in RATE_LIMIT_HEADERS {
                    h[name] = json!({"$ref": format!("#/components/headers/{name}")});
                }
            }
        }
    }
}

/// The headers saying where a request's rate-limit bucket stands.
const RATE_LIMIT_HEADERS: [&str; 3] = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"];

fn rate_limit_header_components() -> Value {
    let header = |d: &str| json!({"description": d, "schema": {"type": "integer", "minimum": 0}});
    json!({
        "RateLimit-Limit": header("The bucket's size: requests allowed back to back (`GET /v1/limits`)."),
        "RateLimit-Remaining": header("Requests left in the bucket now (0 on a 429)."),
        "RateLimit-Reset": header("Whole seconds until the bucket is full again."),
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (path, op) in ops() {
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[op.method] = op.to_value();
    }
    for (path, method, op) in market_data_ops() {
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[method] = op;
    }
    add_rate_limit_headers(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "gpux REST API",
            "version": "1",
            "description": "Order entry, accounts, markets and market data of gpux, an exchange for GPU compute. Every write answers once its command is durable in the ledger, with what the engine decided. Errors are `{code, message}` with a stable code; engine rejections carry the engine's reject codes (docs/PROTOCOL.md). Decimals are strings. Writes accept an `Idempotency-Key`: a retry with the same key and body returns the original result (header `Idempotent-Replayed: true`) without acting twice. GPU-hours trade per hourly delivery slot (one book per market and slot), written `2026-12-07T09:00Z` everywhere in this API. Market data (the forward curve; per slot depth, trades, ticker, candles; and the `/v1/ws` WebSocket) is derived from committed commands only; its protocol is docs/MARKET_DATA.md. Rate limits (`GET /v1/limits`) are token buckets per key, or per address without a key; every rate-limited answer, a 429 too, says where its bucket stands in `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds until full).",
        },
        "servers": [{ "url": "/" }],
        "tags": [
            { "name": "public", "description": "No key needed." },
            { "name": "account", "description": "A trading account's key: acts for that account only." },
            { "name": "admin", "description": "The operator's admin key." },
            { "name": "market-data", "description": "Public market data over REST and the `/v1/ws` WebSocket (docs/MARKET_DATA.md). Its REST reads are rate limited like every public endpoint (per address, or per key when one is sent); the WebSocket has its own limits (`GET /v1/limits`)." },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "accountKey": { "type": "http", "scheme": "bearer", "description": "An account's API key, `gpux_` + 64 hex digits, returned once by createAccount, signup or createKey; its scope (`full`, `trade`, `read`) limits what it may do." },
                "adminKey": { "type": "http", "scheme": "bearer", "description": "The operator's admin key from the gateway's configuration." },
            },
            "headers": rate_limit_header_components(),
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key", "in": "header", "required": false,
                    "description": "1 to 128 visible ASCII characters. A retry with the same key and body returns the original result; the same key with another body is 409 `idempotency_key_reused`; a retry while the first is in flight waits for it. Remembered for 24 h of exchange time (at most 100,000 keys) by default.",
                    "schema": { "type": "string", "minLength": 1, "maxLength": 128 },
                },
            },
            "schemas": all_schemas(),
        },
    })
}

/// The document as pretty JSON bytes (built once).
pub fn document_bytes() -> Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let mut v = serde_json::to_vec_pretty(&document()).unwrap_or_default();
            v.push(b'\n');
            v
        })
        .clone()
}
