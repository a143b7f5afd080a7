//! The OpenAPI document is true: every route the router serves is documented,
//! every documented operation exists and answers (not a route 404 or a 405), and
//! `docs/openapi.json` is what the gateway serves (regenerate it with
//! `GPUX_BLESS=1 cargo test -p gpux-gateway --test openapi`).

mod common;

use std::collections::BTreeSet;

use common::Harness;
use reqwest::Method;
use serde_json::Value;

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_matches_the_router_and_the_checked_in_copy() {
    let h = Harness::start().await;
    let served = h.get("/v1/openapi.json", None).await;
    served.expect(200, None);
    let doc = served.body;
    assert_eq!(doc["openapi"], "3.1.0");

    let routes: BTreeSet<(String, String)> = gpux_gateway::served_routes().into_iter().collect();
    assert_eq!(routes, documented(&doc), "router vs document");

    // Every documented operation answers: no key (401), a public answer, or a
    // bad-input/unknown-resource error — never the router's own 404 or a 405.
    for (method, path) in documented(&doc) {
        let concrete = path
            .replace("{order_id}", "1")
            .replace("{client_order_id}", "c-1")
            .replace("{account}", "1")
            .replace("{market}", "h100-sxm.us-east");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = h.send(m, &concrete, None, None, &[]).await;
        assert_ne!(r.status.as_u16(), 405, "{method} {path}: {}", r.body);
        assert_ne!(r.code(), "not_found", "{method} {path}: {}", r.body);
        assert_ne!(r.code(), "method_not_allowed", "{method} {path}");
    }
    // And the router does not answer other methods on documented paths.
    let paths: BTreeSet<String> = documented(&doc).into_iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path
            .replace("{order_id}", "1")
            .replace("{client_order_id}", "c-1")
            .replace("{account}", "1")
            .replace("{market}", "h100-sxm.us-east");
        let r = h.send(Method::PUT, &concrete, None, None, &[]).await;
        r.expect(405, Some("method_not_allowed"));
    }

    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let pretty = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("GPUX_BLESS").is_some() {
        std::fs::write(&file, &pretty).unwrap();
    }
    let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        checked_in == pretty,
        "docs/openapi.json differs from the served document; run GPUX_BLESS=1 cargo test -p gpux-gateway --test openapi"
    );
    h.stop().await;
}
