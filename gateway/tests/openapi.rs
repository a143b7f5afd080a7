//! The OpenAPI document is true: every route the router serves (the API's and
//! market data's) is documented, every documented operation exists and answers
//! (not a route 404 or a 405) with a documented status and a body of the documented
//! schema, the WebSocket upgrade it documents happens, and `docs/openapi.json` is
//! what the gateway serves (regenerate it with
//! `GPUX_BLESS=1 cargo test -p gpux-gateway --test openapi`).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{slot_name, Harness, MARKET};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::Message;

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    &doc["paths"][path][method.to_lowercase()]
}

fn concrete(path: &str) -> String {
    path.replace("{order_id}", "1")
        .replace("{client_order_id}", "c-1")
        .replace("{account}", "1")
        .replace("{entry}", "1")
        .replace("{key_id}", "0123456789abcdef")
        .replace("{market}", MARKET)
        .replace("{slot}", slot_name())
}

/// `#/components/schemas/Name` (or any other local pointer) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local references: {reference}"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("dangling reference {reference}"))
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        other => panic!("unknown JSON Schema type {other:?}"),
    }
}

/// Checks `v` against `schema`, for the keywords the document uses. A keyword it
/// does not know fails the test, so the document cannot use one unchecked.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return match schema.as_bool() {
            Some(true) => Ok(()),
            Some(false) => Err(format!("{at}: nothing is allowed here, got {v}")),
            None => panic!("{at}: a schema is an object or a boolean: {schema}"),
        };
    };
    let keyword = |kw, arg| Keyword {
        doc,
        schema: s,
        kw,
        arg,
        v,
        at,
    };
    for (kw, arg) in s {
        match kw.as_str() {
            "description" | "examples" | "format" | "default" => {}
            "$ref" => check(doc, resolve(doc, arg.as_str().unwrap()), v, at)?,
            "anyOf" => check_any_of(doc, arg, v, at)?,
            "type" | "enum" | "pattern" | "minimum" | "maximum" | "minLength" | "maxLength" => {
                check_scalar(kw, arg, v, at)?;
            }
            "required" | "properties" | "additionalProperties" => {
                check_object(&keyword(kw.as_str(), arg))?
            }
            "prefixItems" | "items" | "minItems" | "maxItems" => {
                check_array(&keyword(kw.as_str(), arg))?;
            }
            other => panic!("{at}: the test does not check the keyword {other:?}"),
        }
    }
    Ok(())
}

/// `anyOf`: at least one alternative matches.
fn check_any_of(doc: &Value, arg: &Value, v: &Value, at: &str) -> Result<(), String> {
    let errs: Vec<String> = arg
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|alt| check(doc, alt, v, at).err())
        .collect();
    if errs.len() == arg.as_array().unwrap().len() {
        return Err(format!("{at}: no alternative matches: {errs:?}"));
    }
    Ok(())
}

/// `type`, `enum`, `pattern` and the bounds of numbers and strings.
fn check_scalar(kw: &str, arg: &Value, v: &Value, at: &str) -> Result<(), String> {
    match kw {
        "type" => {
            let ok = match arg {
                Value::String(t) => type_matches(t, v),
                Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
                _ => panic!("{at}: bad type {arg}"),
            };
            if !ok {
                return Err(format!("{at}: {v} is not of type {arg}"));
            }
        }
        "enum" => {
            if !arg.as_array().unwrap().contains(v) {
                return Err(format!("{at}: {v} is not one of {arg}"));
            }
        }
        "pattern" => {
            if let Some(text) = v.as_str() {
                let re = regex::Regex::new(arg.as_str().unwrap()).unwrap();
                if !re.is_match(text) {
                    return Err(format!("{at}: {v} does not match {arg}"));
                }
            }
        }
        "minimum" | "maximum" => {
            if let Some(n) = v.as_f64() {
                let bound = arg.as_f64().unwrap();
                if (kw == "minimum" && n < bound) || (kw == "maximum" && n > bound) {
                    return Err(format!("{at}: {v} is out of {kw} {bound}"));
                }
            }
        }
        "minLength" | "maxLength" => {
            if let Some(text) = v.as_str() {
                let n = text.chars().count() as u64;
                let bound = arg.as_u64().unwrap();
                if (kw == "minLength" && n < bound) || (kw == "maxLength" && n > bound) {
                    return Err(format!("{at}: {v} breaks {kw} {bound}"));
                }
            }
        }
        _ => unreachable!("{kw} is not a keyword of this group"),
    }
    Ok(())
}

/// One keyword of an object schema, and the value it is checked against.
#[derive(Clone, Copy)]
struct Keyword<'a> {
    doc: &'a Value,
    schema: &'a Map<String, Value>,
    kw: &'a str,
    arg: &'a Value,
    v: &'a Value,
    at: &'a str,
}

/// The schema's document, the schema, the keyword, its argument, the value and
/// where the value is.
type Parts<'a> = (
    &'a Value,
    &'a Map<String, Value>,
    &'a str,
    &'a Value,
    &'a Value,
    &'a str,
);

impl<'a> Keyword<'a> {
    fn parts(&self) -> Parts<'a> {
        (self.doc, self.schema, self.kw, self.arg, self.v, self.at)
    }
}

/// The object keywords; `s` is the whole schema (for `properties`).
fn check_object(k: &Keyword<'_>) -> Result<(), String> {
    let (doc, s, kw, arg, v, at) = k.parts();
    match kw {
        "required" => {
            if let Some(o) = v.as_object() {
                for name in arg.as_array().unwrap() {
                    if !o.contains_key(name.as_str().unwrap()) {
                        return Err(format!("{at}: {name} is missing from {v}"));
                    }
                }
            }
        }
        "properties" => {
            if let Some(o) = v.as_object() {
                for (name, sub) in arg.as_object().unwrap() {
                    if let Some(field) = o.get(name) {
                        check(doc, sub, field, &format!("{at}.{name}"))?;
                    }
                }
            }
        }
        "additionalProperties" => {
            assert_eq!(arg, &json!(false), "{at}: only `false` is supported");
            if let Some(o) = v.as_object() {
                let known = s.get("properties").and_then(Value::as_object);
                for name in o.keys() {
                    if !known.is_some_and(|k| k.contains_key(name)) {
                        return Err(format!("{at}: undocumented field {name:?} in {v}"));
                    }
                }
            }
        }
        _ => unreachable!("{kw} is not a keyword of this group"),
    }
    Ok(())
}

/// The array keywords (`prefixItems`, `items`, `minItems`, `maxItems`); `s` is
/// the whole schema (for `prefixItems`).
fn check_array(k: &Keyword<'_>) -> Result<(), String> {
    let (doc, s, kw, arg, v, at) = k.parts();
    let Some(items) = v.as_array() else {
        return Ok(());
    };
    let prefix = s
        .get("prefixItems")
        .and_then(Value::as_array)
        .map_or(&[][..], |p| &p[..]);
    match kw {
        "prefixItems" => {
            for (i, (sub, item)) in prefix.iter().zip(items).enumerate() {
                check(doc, sub, item, &format!("{at}[{i}]"))?;
            }
        }
        "items" => {
            for (i, item) in items.iter().enumerate().skip(prefix.len()) {
                check(doc, arg, item, &format!("{at}[{i}]"))?;
            }
        }
        "minItems" => {
            if (items.len() as u64) < arg.as_u64().unwrap() {
                return Err(format!("{at}: fewer than {arg} items in {v}"));
            }
        }
        _ => {
            if (items.len() as u64) > arg.as_u64().unwrap() {
                return Err(format!("{at}: more than {arg} items in {v}"));
            }
        }
    }
    Ok(())
}

/// The boolean subschemas (`true`/`false` where a schema goes) under `v`, as
/// paths; `additionalProperties: false` is not one of them (generators take it).
fn boolean_schemas(v: &Value, at: &str, found: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, sub) in map {
                let here = format!("{at}/{k}");
                let lists_schemas =
                    matches!(k.as_str(), "prefixItems" | "anyOf" | "allOf" | "oneOf");
                match sub {
                    Value::Bool(_) if matches!(k.as_str(), "items" | "contains" | "not") => {
                        found.push(here.clone());
                    }
                    Value::Array(xs) if lists_schemas => found.extend(
                        xs.iter()
                            .enumerate()
                            .filter(|(_, x)| x.is_boolean())
                            .map(|(i, _)| format!("{here}/{i}")),
                    ),
                    Value::Object(props) if k == "properties" => found.extend(
                        props
                            .iter()
                            .filter(|(_, x)| x.is_boolean())
                            .map(|(name, _)| format!("{here}/{name}")),
                    ),
                    _ => {}
                }
                boolean_schemas(sub, &here, found);
            }
        }
        Value::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                boolean_schemas(x, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// Client generators can read the document: it has no boolean subschemas, which
/// JSON Schema allows but openapi-python-client (scripts/api-client-check) and
/// others refuse.
#[test]
fn the_document_has_no_boolean_schemas() {
    let mut found = Vec::new();
    boolean_schemas(&gpux_gateway::openapi::document(), "#", &mut found);
    assert!(found.is_empty(), "boolean schemas at {found:?}");
}

/// The status is documented for the operation, and the body (if the operation
/// documents one) has the documented schema.
fn check_answer(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let op = operation(doc, method, path);
    let answer = &op["responses"][status.to_string()];
    assert!(
        answer.is_object(),
        "{method} {path}: status {status} is not documented: {body}"
    );
    if let Some(s) = answer["content"]["application/json"]["schema"].as_object() {
        if let Err(e) = check(doc, &Value::Object(s.clone()), body, "body") {
            panic!("{method} {path} ({status}): {e}");
        }
    }
}

/// Every `{name}` in a path is a documented path parameter, and nothing more.
fn check_path_params(doc: &Value, method: &str, path: &str) {
    let op = operation(doc, method, path);
    let declared: BTreeSet<&str> = op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default();
    let in_path: BTreeSet<&str> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    assert_eq!(declared, in_path, "{method} {path}: path parameters");
}

/// Some book, trades and candles, so the market-data answers have content to check.
async fn trade_a_little(h: &Harness) {
    let ((_, provider), (_, demander)) = h.provider_and_demander().await;
    for (key, side, price, quantity) in [
        (&provider, "sell", "2.45", "1.0"),
        (&demander, "buy", "2.45", "0.5"),
        (&demander, "buy", "2.30", "1.0"),
    ] {
        h.place(
            key,
            json!({"market": MARKET, "slot": slot_name(), "side": side, "price": price, "quantity": quantity}),
        )
        .await
        .expect(200, None);
    }
    // Depth is the published book: wait for the publication after the last order.
    let depth = common::md_path("depth");
    for _ in 0..500 {
        let b = h.get(&depth, None).await.body;
        if b["bids"].as_array().is_some_and(|l| !l.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the book was never published");
}

/// The WebSocket upgrade happens (101), and its snapshots are the documented REST
/// shapes plus `type` and `channel`.
async fn check_websocket(h: &Harness, doc: &Value, path: &str) {
    let url = format!("{}{}", h.base.replacen("http", "ws", 1), path);
    let (mut ws, resp) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: no WebSocket: {e}"));
    assert_eq!(resp.status().as_u16(), 101, "GET {path}");
    assert!(operation(doc, "GET", path)["responses"]["101"].is_object());
    for (channel, shape) in [
        ("book", "Depth"),
        ("trades", "Trades"),
        ("ticker", "Ticker"),
        ("curve", "Curve"),
    ] {
        let channel = if channel == "curve" {
            format!("curve.{MARKET}")
        } else {
            format!("{channel}.{MARKET}.{}", slot_name())
        };
        let req = json!({"op": "subscribe", "channel": channel});
        ws.send(Message::text(req.to_string())).await.unwrap();
        let mut snapshot = loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("a snapshot in time")
                .expect("the socket stays open")
                .unwrap();
            let Message::Text(t) = frame else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "snapshot" && v["channel"] == channel.as_str() {
                break v;
            }
            assert_ne!(v["type"], "error", "{v}");
        };
        let o = snapshot.as_object_mut().unwrap();
        o.remove("type");
        o.remove("channel");
        let schema = json!({ "$ref": format!("#/components/schemas/{shape}") });
        if let Err(e) = check(doc, &schema, &snapshot, &channel) {
            panic!("GET {path}: {e}");
        }
    }
    let _ = ws.close(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_matches_the_router_and_the_checked_in_copy() {
    let h = Harness::start().await;
    trade_a_little(&h).await;
    let served = h.get("/v1/openapi.json", None).await;
    served.expect(200, None);
    let doc = served.body;
    assert_eq!(doc["openapi"], "3.1.0");

    let routes: BTreeSet<(String, String)> = gpux_gateway::served_routes().into_iter().collect();
    assert_eq!(routes, documented(&doc), "router vs document");
    let market_data: BTreeSet<(String, String)> = gpux_gateway::marketdata::served_routes()
        .into_iter()
        .collect();
    assert!(
        market_data.contains(&("GET".into(), "/v1/ws".into())) && market_data.is_subset(&routes),
        "market data's routes are among the served routes: {market_data:?}"
    );

    // Every documented operation answers: no key (401), a public answer, or a
    // bad-input/unknown-resource error — never the router's own 404 or a 405 — with
    // a documented status and body. A plain GET of the WebSocket is a 400.
    for (method, path) in documented(&doc) {
        check_path_params(&doc, &method, &path);
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = h.send(m, &concrete(&path), None, None, &[]).await;
        assert_ne!(r.status.as_u16(), 405, "{method} {path}: {}", r.body);
        assert_ne!(r.code(), "not_found", "{method} {path}: {}", r.body);
        assert_ne!(r.code(), "method_not_allowed", "{method} {path}");
        check_answer(&doc, &method, &path, r.status.as_u16(), &r.body);
        if operation(&doc, &method, &path)["responses"]["101"].is_object() {
            check_websocket(&h, &doc, &path).await;
        }
    }
    // The documented bad-input answers of market data are what it answers.
    for (path, status) in [
        (common::md_path("depth?depth=0"), 400),
        (common::md_path("trades?limit=1001"), 400),
        (common::md_path("ticker?depth=1"), 400),
        (common::md_path("candles?interval=2h"), 400),
        (
            format!("/v1/markets/{MARKET}/slots/2026-12-07T09:30Z/depth"),
            400,
        ),
        (format!("/v1/markets/{MARKET}/slots?x=1"), 400),
        (
            format!("/v1/markets/a100.eu-west/slots/{}/depth", slot_name()),
            404,
        ),
    ] {
        let r = h.get(&path, None).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.body);
        let template = path
            .split('?')
            .next()
            .unwrap()
            .replace(MARKET, "{market}")
            .replace("a100.eu-west", "{market}")
            .replace(slot_name(), "{slot}")
            .replace("2026-12-07T09:30Z", "{slot}");
        check_answer(&doc, "GET", &template, status, &r.body);
    }
    // And the router does not answer other methods on documented paths.
    let paths: BTreeSet<String> = documented(&doc).into_iter().map(|(_, p)| p).collect();
    for path in paths {
        let r = h.send(Method::PUT, &concrete(&path), None, None, &[]).await;
        r.expect(405, Some("method_not_allowed"));
    }

    check_checked_in_copy(&doc);
    h.stop().await;
}

/// `docs/openapi.json` is the served document `doc` (written there with
/// `GPUX_BLESS=1`).
fn check_checked_in_copy(doc: &Value) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let pretty = serde_json::to_string_pretty(doc).unwrap() + "\n";
    if std::env::var_os("GPUX_BLESS").is_some() {
        std::fs::write(&file, &pretty).unwrap();
    }
    // Compared as JSON values: the key order of objects depends on serde_json's
    // features, which a workspace build may unify differently from this package's.
    let checked_in: Option<Value> = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    assert!(
        checked_in.as_ref() == Some(doc),
        "docs/openapi.json differs from the served document; run GPUX_BLESS=1 cargo test -p gpux-gateway --test openapi"
    );
}
