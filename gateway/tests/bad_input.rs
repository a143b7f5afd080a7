//! Malformed requests: each gets a 4xx with a stable code in the `{code, message}`
//! shape, and changes nothing — the caller's balances and open orders, and the
//! ledger's head and command log, are the same afterwards (nothing was submitted).

mod common;

use common::{md_path, slot_name, Harness, ADMIN, MARKET};
use reqwest::Method;
use serde_json::{json, Value};

enum Body {
    None,
    Json(Value),
    Raw(&'static str, String),
}

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    admin: bool,
    body: Body,
    headers: Vec<(&'static str, String)>,
    status: u16,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: &str,
    body: Body,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        admin: false,
        body,
        headers: Vec::new(),
        status,
        code,
    }
}

fn order(patch: Value) -> Body {
    let mut o = json!({"market": MARKET, "slot": slot_name(), "side": "buy", "price": "2.00", "quantity": "1"});
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            o.as_object_mut().unwrap().remove(k);
        } else {
            o[k] = v.clone();
        }
    }
    Body::Json(o)
}

fn order_case(name: &'static str, body: Body, status: u16, code: &'static str) -> Case {
    case(name, Method::POST, "/v1/orders", body, status, code)
}

fn admin(mut c: Case) -> Case {
    c.admin = true;
    c
}

fn with_header(mut c: Case, h: &'static str, v: &str) -> Case {
    c.headers.push((h, v.to_string()));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_and_change_nothing() {
    let h = Harness::start().await;
    let ((provider, pk), (_, dk)) = h.provider_and_demander().await;
    let resting = h
        .place(
            &pk,
            json!({"market": MARKET, "side": "sell", "price": "3.00", "quantity": "1"}),
        )
        .await;
    resting.expect(200, None);
    let bid = h
        .place(
            &dk,
            json!({"market": MARKET, "side": "buy", "price": "1.00", "quantity": "1"}),
        )
        .await;
    bid.expect(200, None);
    let mine = format!("/v1/orders/{}", bid.body["order_id"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let cases = malformed_cases(&mine, provider, now);

    let before_d = h.snapshot(&dk).await;
    let before_p = h.snapshot(&pk).await;
    let head = h.ledger_head();
    for c in cases {
        let name = c.name;
        expect_refused(&h, &dk, c).await;
        assert_eq!(h.ledger_head(), head, "{name}: nothing is submitted");
    }
    assert_eq!(h.snapshot(&dk).await, before_d);
    assert_eq!(h.snapshot(&pk).await, before_p);
    h.stop().await;
}

/// Every malformed request the test sends: `mine` is the path of one of the
/// caller's open orders, `provider` another account, `now` the wall clock in ns.
#[allow(clippy::too_many_lines)] // a table: one case per malformed request, read top to bottom
fn malformed_cases(mine: &str, provider: u64, now: u64) -> Vec<Case> {
    let raw = |s: &str| Body::Raw("application/json", s.to_string());
    use Method as M;
    vec![
        case(
            "not json",
            M::POST,
            "/v1/orders",
            raw("{\"market\":"),
            400,
            "malformed_json",
        ),
        case(
            "garbage",
            M::POST,
            "/v1/orders",
            raw("hello"),
            400,
            "malformed_json",
        ),
        case(
            "empty body",
            M::POST,
            "/v1/orders",
            raw(""),
            400,
            "malformed_json",
        ),
        case(
            "array",
            M::POST,
            "/v1/orders",
            raw("[]"),
            400,
            "invalid_body",
        ),
        case(
            "unknown field",
            M::POST,
            "/v1/orders",
            order(json!({"post_onyl": true})),
            400,
            "invalid_body",
        ),
        case(
            "missing field",
            M::POST,
            "/v1/orders",
            order(json!({"quantity": null})),
            400,
            "invalid_body",
        ),
        case(
            "number price",
            M::POST,
            "/v1/orders",
            order(json!({"price": 2.0})),
            400,
            "invalid_body",
        ),
        case(
            "bad side",
            M::POST,
            "/v1/orders",
            order(json!({"side": "hold"})),
            400,
            "invalid_body",
        ),
        case(
            "negative good_till",
            M::POST,
            "/v1/orders",
            order(json!({"time_in_force": "gtd", "good_till_ns": -1})),
            400,
            "invalid_body",
        ),
        case(
            "huge integer",
            M::POST,
            "/v1/orders",
            order(json!({"time_in_force": "gtd", "good_till_ns": 1e30})),
            400,
            "invalid_body",
        ),
        case(
            "duplicate field",
            M::POST,
            "/v1/orders",
            raw(
                r#"{"market":"h100-sxm.us-east","side":"buy","side":"sell","price":"2.00","quantity":"1"}"#,
            ),
            400,
            "invalid_body",
        ),
        case(
            "text quantity",
            M::POST,
            "/v1/orders",
            order(json!({"quantity": "abc"})),
            400,
            "invalid_decimal",
        ),
        case(
            "exponent",
            M::POST,
            "/v1/orders",
            order(json!({"price": "1e2"})),
            400,
            "invalid_decimal",
        ),
        case(
            "plus sign",
            M::POST,
            "/v1/orders",
            order(json!({"price": "+2.00"})),
            400,
            "invalid_decimal",
        ),
        case(
            "too precise",
            M::POST,
            "/v1/orders",
            order(json!({"price": "2.000000000000000000000000000001"})),
            400,
            "invalid_decimal",
        ),
        case(
            "off tick",
            M::POST,
            "/v1/orders",
            order(json!({"price": "2.005"})),
            400,
            "off_tick_price",
        ),
        case(
            "zero price",
            M::POST,
            "/v1/orders",
            order(json!({"price": "0"})),
            400,
            "price_out_of_band",
        ),
        case(
            "huge price",
            M::POST,
            "/v1/orders",
            order(json!({"price": "99999999999999999999"})),
            400,
            "price_out_of_band",
        ),
        case(
            "zero quantity",
            M::POST,
            "/v1/orders",
            order(json!({"quantity": "0"})),
            400,
            "invalid_quantity",
        ),
        case(
            "negative quantity",
            M::POST,
            "/v1/orders",
            order(json!({"quantity": "-1"})),
            400,
            "invalid_quantity",
        ),
        case(
            "off lot",
            M::POST,
            "/v1/orders",
            order(json!({"quantity": "0.3"})),
            400,
            "off_lot_quantity",
        ),
        case(
            "huge quantity",
            M::POST,
            "/v1/orders",
            order(json!({"quantity": "99999999999999999999999999"})),
            400,
            "quantity_too_large",
        ),
        case(
            "market with price",
            M::POST,
            "/v1/orders",
            order(json!({"order_type": "market"})),
            400,
            "invalid_order",
        ),
        case(
            "limit without price",
            M::POST,
            "/v1/orders",
            order(json!({"price": null})),
            400,
            "invalid_order",
        ),
        case(
            "gtd without time",
            M::POST,
            "/v1/orders",
            order(json!({"time_in_force": "gtd"})),
            400,
            "invalid_order",
        ),
        case(
            "post-only ioc",
            M::POST,
            "/v1/orders",
            order(json!({"time_in_force": "ioc", "post_only": true})),
            400,
            "invalid_order",
        ),
        case(
            "cap on a limit",
            M::POST,
            "/v1/orders",
            order(json!({"cap": "5"})),
            400,
            "invalid_order",
        ),
        case(
            "gtd in the past",
            M::POST,
            "/v1/orders",
            order(json!({"time_in_force": "gtd", "good_till_ns": now - 1})),
            400,
            "good_till_in_past",
        ),
        case(
            "bad market id",
            M::POST,
            "/v1/orders",
            order(json!({"market": "H100"})),
            400,
            "invalid_market_id",
        ),
        case(
            "unknown market",
            M::POST,
            "/v1/orders",
            order(json!({"market": "a100.mars"})),
            404,
            "unknown_market",
        ),
        case(
            "slot not on the hour",
            M::POST,
            "/v1/orders",
            order(json!({"slot": "2026-12-07T09:30Z"})),
            400,
            "invalid_slot",
        ),
        case(
            "slot with an offset",
            M::POST,
            "/v1/orders",
            order(json!({"slot": "2026-12-07T09:00+01:00"})),
            400,
            "invalid_slot",
        ),
        case(
            "slot as a number",
            M::POST,
            "/v1/orders",
            order(json!({"slot": 1_796_634_000u64})),
            400,
            "invalid_body",
        ),
        case(
            "no slot",
            M::POST,
            "/v1/orders",
            order(json!({"slot": null})),
            400,
            "invalid_slot_range",
        ),
        case(
            "slot and window",
            M::POST,
            "/v1/orders",
            order(
                json!({"time_in_force": "fok", "window": {"from_slot": slot_name(), "to_slot": slot_name()}}),
            ),
            400,
            "invalid_slot_range",
        ),
        case(
            "window ends first",
            M::POST,
            "/v1/orders",
            order(
                json!({"slot": null, "time_in_force": "fok", "window": {"from_slot": gpux_engine::slot::format_slot(common::slot_secs() + 3_600), "to_slot": slot_name()}}),
            ),
            400,
            "invalid_slot_range",
        ),
        case(
            "window slot unreadable",
            M::POST,
            "/v1/orders",
            order(
                json!({"slot": null, "time_in_force": "fok", "window": {"from_slot": "soon", "to_slot": slot_name()}}),
            ),
            400,
            "invalid_slot",
        ),
        case(
            "window that rests",
            M::POST,
            "/v1/orders",
            order(
                json!({"slot": null, "window": {"from_slot": slot_name(), "to_slot": slot_name()}, "time_in_force": "gtc"}),
            ),
            400,
            "invalid_order",
        ),
        case(
            "colocated sell",
            M::POST,
            "/v1/orders",
            order(json!({"side": "sell", "colocate": true, "time_in_force": "fok"})),
            400,
            "invalid_order",
        ),
        case(
            "slot in the past",
            M::POST,
            "/v1/orders",
            order(json!({"slot": "2020-01-01T00:00Z"})),
            422,
            "slot_closed",
        ),
        case(
            "depth of a slot not on the hour",
            M::GET,
            &format!("/v1/markets/{MARKET}/slots/2026-12-07T09:30Z/depth"),
            Body::None,
            400,
            "invalid_slot",
        ),
        case(
            "blocks of an unreadable slot",
            M::GET,
            &format!("/v1/markets/{MARKET}/slots/today/blocks"),
            Body::None,
            400,
            "invalid_slot",
        ),
        case(
            "curve of a market not utf-8",
            M::GET,
            "/v1/markets/%ff/slots",
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "mass cancel of a slot without a market",
            M::DELETE,
            &format!("/v1/orders?slot={}", slot_name()),
            Body::None,
            400,
            "invalid_slot_range",
        ),
        case(
            "bad client id",
            M::POST,
            "/v1/orders",
            order(json!({"client_order_id": "a b"})),
            400,
            "invalid_client_order_id",
        ),
        case(
            "long client id",
            M::POST,
            "/v1/orders",
            order(json!({"client_order_id": "x".repeat(37)})),
            400,
            "invalid_client_order_id",
        ),
        case(
            "oversize body",
            M::POST,
            "/v1/orders",
            order(json!({"client_order_id": "x".repeat(20_000)})),
            413,
            "body_too_large",
        ),
        case(
            "text/plain",
            M::POST,
            "/v1/orders",
            Body::Raw("text/plain", "{}".into()),
            415,
            "unsupported_media_type",
        ),
        with_header(
            case(
                "long idempotency key",
                M::POST,
                "/v1/orders",
                order(json!({})),
                400,
                "invalid_idempotency_key",
            ),
            "idempotency-key",
            &"k".repeat(129),
        ),
        with_header(
            case(
                "control char key",
                M::POST,
                "/v1/orders",
                order(json!({})),
                400,
                "invalid_idempotency_key",
            ),
            "idempotency-key",
            "a b",
        ),
        case(
            "path not a number",
            M::DELETE,
            "/v1/orders/abc",
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "path overflow",
            M::DELETE,
            "/v1/orders/99999999999999999999999",
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "path negative",
            M::GET,
            "/v1/orders/-1",
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "unknown order",
            M::DELETE,
            "/v1/orders/12345",
            Body::None,
            404,
            "unknown_order",
        ),
        case(
            "bad client id path",
            M::DELETE,
            "/v1/orders/by-client-id/a%20b",
            Body::None,
            400,
            "invalid_client_order_id",
        ),
        case(
            "empty amend",
            M::PATCH,
            mine,
            Body::Json(json!({})),
            400,
            "invalid_amend",
        ),
        case(
            "amend off tick",
            M::PATCH,
            mine,
            Body::Json(json!({"price": "3.001"})),
            400,
            "off_tick_price",
        ),
        case(
            "amend to zero",
            M::PATCH,
            mine,
            Body::Json(json!({"quantity": "0"})),
            400,
            "invalid_quantity",
        ),
        case(
            "amend unknown field",
            M::PATCH,
            mine,
            Body::Json(json!({"qty": "1"})),
            400,
            "invalid_body",
        ),
        case(
            "fills limit 0",
            M::GET,
            "/v1/fills?limit=0",
            Body::None,
            400,
            "invalid_query",
        ),
        case(
            "fills limit text",
            M::GET,
            "/v1/fills?limit=abc",
            Body::None,
            400,
            "invalid_query",
        ),
        case(
            "fills unknown param",
            M::GET,
            "/v1/fills?bogus=1",
            Body::None,
            400,
            "invalid_query",
        ),
        case(
            "mass cancel bad market",
            M::DELETE,
            "/v1/orders?market=NOPE",
            Body::None,
            400,
            "invalid_market_id",
        ),
        case(
            "mass cancel unknown market",
            M::DELETE,
            "/v1/orders?market=a100.mars",
            Body::None,
            404,
            "unknown_market",
        ),
        case(
            "withdraw zero",
            M::POST,
            "/v1/withdrawals",
            Body::Json(json!({"amount": "0"})),
            400,
            "invalid_amount",
        ),
        case(
            "withdraw sub-micro",
            M::POST,
            "/v1/withdrawals",
            Body::Json(json!({"amount": "0.0000001"})),
            400,
            "invalid_amount",
        ),
        case(
            "withdraw number",
            M::POST,
            "/v1/withdrawals",
            Body::Json(json!({"amount": 5})),
            400,
            "invalid_body",
        ),
        case(
            "capacity off lot",
            M::POST,
            "/v1/capacity/add",
            Body::Json(
                json!({"market": MARKET, "from_slot": slot_name(), "to_slot": slot_name(), "quantity": "0.3"}),
            ),
            400,
            "off_lot_quantity",
        ),
        case(
            "capacity negative",
            M::POST,
            "/v1/capacity/add",
            Body::Json(
                json!({"market": MARKET, "from_slot": slot_name(), "to_slot": slot_name(), "quantity": "-1"}),
            ),
            400,
            "invalid_amount",
        ),
        case(
            "capacity unknown market",
            M::POST,
            "/v1/capacity/remove",
            Body::Json(
                json!({"market": "a100.mars", "from_slot": slot_name(), "to_slot": slot_name(), "quantity": "1"}),
            ),
            404,
            "unknown_market",
        ),
        case(
            "unknown route",
            M::GET,
            "/v1/nope",
            Body::None,
            404,
            "not_found",
        ),
        case(
            "wrong method",
            M::PUT,
            "/v1/orders",
            Body::None,
            405,
            "method_not_allowed",
        ),
        admin(case(
            "deposit to fee account",
            M::POST,
            "/v1/accounts/0/deposits",
            Body::Json(json!({"amount": "1"})),
            422,
            "reserved_account",
        )),
        admin(case(
            "deposit to nobody",
            M::POST,
            "/v1/accounts/999/deposits",
            Body::Json(json!({"amount": "1"})),
            404,
            "unknown_account",
        )),
        admin(case(
            "deposit bad account path",
            M::POST,
            "/v1/accounts/x/deposits",
            Body::Json(json!({"amount": "1"})),
            400,
            "invalid_path",
        )),
        admin(case(
            "deposit negative",
            M::POST,
            &format!("/v1/accounts/{provider}/deposits"),
            Body::Json(json!({"amount": "-5"})),
            400,
            "invalid_amount",
        )),
        admin(case(
            "balances of nobody",
            M::GET,
            "/v1/accounts/999/balances",
            Body::None,
            404,
            "unknown_account",
        )),
        admin(case(
            "create account 0",
            M::POST,
            "/v1/accounts",
            Body::Json(json!({"account": 0})),
            422,
            "reserved_account",
        )),
        admin(case(
            "create existing account",
            M::POST,
            "/v1/accounts",
            Body::Json(json!({"account": provider})),
            409,
            "account_exists",
        )),
        admin(case(
            "bad key digest",
            M::POST,
            "/v1/accounts",
            Body::Json(json!({"api_key_sha256": "xyz"})),
            400,
            "invalid_api_key_sha256",
        )),
        admin(case(
            "account id text",
            M::POST,
            "/v1/accounts",
            Body::Json(json!({"account": "7"})),
            400,
            "invalid_body",
        )),
        admin(case(
            "bad market spec",
            M::POST,
            "/v1/markets",
            Body::Json(
                json!({"market": "a100.eu", "tick_size": "0", "lot_size": "1", "maker_fee_bps": 0, "taker_fee_bps": 0}),
            ),
            400,
            "invalid_market_spec",
        )),
        admin(case(
            "fee too high",
            M::POST,
            "/v1/markets",
            Body::Json(
                json!({"market": "a100.eu", "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": 5000, "taker_fee_bps": 0}),
            ),
            400,
            "invalid_market_spec",
        )),
        admin(case(
            "negative fee",
            M::POST,
            "/v1/markets",
            Body::Json(
                json!({"market": "a100.eu", "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": -1, "taker_fee_bps": 0}),
            ),
            400,
            "invalid_body",
        )),
        admin(case(
            "market exists",
            M::POST,
            "/v1/markets",
            Body::Json(
                json!({"market": MARKET, "tick_size": "0.01", "lot_size": "1", "maker_fee_bps": 0, "taker_fee_bps": 0}),
            ),
            409,
            "market_exists",
        )),
        case(
            "get unknown market",
            M::GET,
            "/v1/markets/a100.mars",
            Body::None,
            404,
            "unknown_market",
        ),
        case(
            "get bad market",
            M::GET,
            "/v1/markets/A",
            Body::None,
            400,
            "invalid_market_id",
        ),
        // serde's derived structs accept a JSON array, fields by position: this
        // one would place an order. Only a JSON object is a body.
        case(
            "positional array",
            M::POST,
            "/v1/orders",
            raw(&format!(r#"["{MARKET}","buy","limit","2.00","1"]"#)),
            400,
            "invalid_body",
        ),
        case(
            "positional array after whitespace",
            M::POST,
            "/v1/orders",
            raw(&format!(
                " \n\t[\"{MARKET}\",\"buy\",\"limit\",\"2.00\",\"1\"]"
            )),
            400,
            "invalid_body",
        ),
        case(
            "positional amend",
            M::PATCH,
            mine,
            raw(r#"["2.10","1"]"#),
            400,
            "invalid_body",
        ),
        admin(case(
            "positional deposit",
            M::POST,
            &format!("/v1/accounts/{provider}/deposits"),
            raw(r#"["5"]"#),
            400,
            "invalid_body",
        )),
        // A path parameter that is not UTF-8 after percent-decoding: the JSON
        // error shape on every route with a path parameter.
        case(
            "market not utf-8",
            M::GET,
            "/v1/markets/%ff",
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "depth of a market not utf-8",
            M::GET,
            &format!("/v1/markets/%ff/slots/{}/depth", slot_name()),
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "trades of a market not utf-8",
            M::GET,
            &format!("/v1/markets/%ff/slots/{}/trades", slot_name()),
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "ticker of a market not utf-8",
            M::GET,
            &format!("/v1/markets/%ff/slots/{}/ticker", slot_name()),
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "candles of a market not utf-8",
            M::GET,
            &format!("/v1/markets/%ff/slots/{}/candles", slot_name()),
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "order id not utf-8",
            M::GET,
            "/v1/orders/%ff",
            Body::None,
            400,
            "invalid_path",
        ),
        case(
            "client order id not utf-8",
            M::DELETE,
            "/v1/orders/by-client-id/%ff",
            Body::None,
            400,
            "invalid_path",
        ),
        admin(case(
            "account not utf-8",
            M::GET,
            "/v1/accounts/%ff/balances",
            Body::None,
            400,
            "invalid_path",
        )),
        // Two Authorization headers (the loop sends the caller's, this adds the
        // admin's): ambiguous, refused rather than the first one used.
        with_header(
            case(
                "two keys on a read",
                M::GET,
                "/v1/balances",
                Body::None,
                400,
                "repeated_authorization",
            ),
            "authorization",
            &format!("Bearer {ADMIN}"),
        ),
        with_header(
            order_case(
                "two keys on an order",
                order(json!({})),
                400,
                "repeated_authorization",
            ),
            "authorization",
            &format!("Bearer {ADMIN}"),
        ),
        with_header(
            case(
                "two keys on market data",
                M::GET,
                &md_path("depth"),
                Body::None,
                400,
                "repeated_authorization",
            ),
            "authorization",
            &format!("Bearer {ADMIN}"),
        ),
    ]
}

/// Sends case `c` (with the admin's key if it says so, else `caller`'s) and checks
/// the answer: its status and code, and the `{code, message}` JSON shape.
async fn expect_refused(h: &Harness, caller: &str, c: Case) {
    let key = if c.admin { ADMIN } else { caller };
    let mut req = h
        .http
        .request(c.method.clone(), format!("{}{}", h.base, c.path))
        .bearer_auth(key);
    for (k, v) in &c.headers {
        req = req.header(*k, v.as_str());
    }
    req = match c.body {
        Body::None => req,
        Body::Json(v) => req.json(&v),
        Body::Raw(ct, s) => req.header("content-type", ct).body(s),
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{}: body is not JSON: {text}", c.name));
    assert_eq!(
        (status, body["code"].as_str().unwrap_or("")),
        (c.status, c.code),
        "{}: {text}",
        c.name
    );
    assert_eq!(ct.as_deref(), Some("application/json"), "{}", c.name);
    // {code, message}, and `status: rejected` on a refused order placement.
    let with_status = body["status"] == "rejected";
    assert!(
        !with_status || c.path == "/v1/orders" && c.method == Method::POST,
        "{}: {text}",
        c.name
    );
    assert_eq!(
        body.as_object().unwrap().len(),
        2 + usize::from(with_status),
        "{}: {text}",
        c.name
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        c.name
    );
}
