//! The web pages the gateway serves itself: the explorer (`/`), with the provider
//! dashboard and the demander console on the same page (`/#provider`,
//! `/#demander`).
//!
//! Owns the embedded assets and their routes. The files live in
//! `gateway/assets/` and are compiled into the binary (`include_str!` /
//! `include_bytes!`), so there is no build step and nothing to install beside the
//! binary. The pages are a client of the public REST and WebSocket API like any
//! other (no route exists for them alone), which is why they are not part of the
//! API's route table or its OpenAPI document: they are static files, answered
//! without touching the replica, the rate limiter or market data.
//!
//! The page keeps its own state in the browser; for the browser tests and for
//! debugging it exposes `window.gpuxExplorer` (feed a message as if from the
//! WebSocket, count book resyncs and reconnections, list the channels followed,
//! drop the connection).
//!
//! Every answer carries a Content-Security-Policy that allows only this origin
//! (scripts, styles, images, fetch and WebSocket), so the pages cannot make a
//! request anywhere else (no fonts, no CDNs), and the browser enforces it.
//! The chart library is TradingView's lightweight-charts, pinned and vendored in
//! `gateway/assets/vendor/lightweight-charts/` with its licence
//! ([`CHARTS_VERSION`]).

use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::routes::{listed, Routes};

/// The version of lightweight-charts vendored (its standalone production build).
pub const CHARTS_VERSION: &str = "5.3.0";

/// The page's HTML.
const INDEX_HTML: &str = include_str!("../assets/index.html");
/// The page's script.
const APP_JS: &str = include_str!("../assets/app.js");
/// The page's styles.
const APP_CSS: &str = include_str!("../assets/app.css");
/// lightweight-charts' standalone production build.
const CHARTS_JS: &[u8] = include_bytes!(
    "../assets/vendor/lightweight-charts/lightweight-charts.standalone.production.js"
);
/// Its licence (Apache-2.0).
const CHARTS_LICENSE: &str = include_str!("../assets/vendor/lightweight-charts/LICENSE");

/// Only this origin: no request can leave for another host. Styles may be inline
/// because the chart library positions its elements with `style` attributes.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// How long browsers may reuse an asset without asking again. Short: a newer
/// binary's pages must show up on the next reload.
const CACHE_CONTROL: &str = "no-cache";

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    resp
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML.as_bytes())
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS.as_bytes())
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS.as_bytes())
}

async fn charts_js() -> Response {
    asset("text/javascript; charset=utf-8", CHARTS_JS)
}

async fn charts_license() -> Response {
    asset("text/plain; charset=utf-8", CHARTS_LICENSE.as_bytes())
}

fn page_routes() -> Routes<()> {
    Routes::new()
        .add(Method::GET, "/", index)
        .add(Method::GET, "/explorer/app.js", app_js)
        .add(Method::GET, "/explorer/app.css", app_css)
        .add(
            Method::GET,
            "/explorer/vendor/lightweight-charts.js",
            charts_js,
        )
        .add(
            Method::GET,
            "/explorer/vendor/lightweight-charts.LICENSE",
            charts_license,
        )
}

/// The pages' routes (merged into the gateway's router).
pub(crate) fn routes() -> Router {
    page_routes().router
}

/// Every `(method, path)` the pages are served at (not API routes: static files).
pub fn served_pages() -> Vec<(String, String)> {
    listed(page_routes().served)
}
