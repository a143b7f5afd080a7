//! The one way routes are added: [`Routes::add`] routes a handler and records
//! `(method, path)`, so the list of served routes (`crate::served_routes`, for the
//! OpenAPI test and docs) cannot drift from what the router serves. Used by the
//! API's router (`server`) and by market data's (`marketdata::routes`).

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;

/// A router under construction, with the routes it serves so far.
pub(crate) struct Routes<S> {
    pub(crate) router: Router<S>,
    pub(crate) served: Vec<(Method, &'static str)>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes yet.
    pub(crate) fn new() -> Self {
        Self {
            router: Router::new(),
            served: Vec::new(),
        }
    }

    /// Routes `method path` to `handler` and records it.
    pub(crate) fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("{method} is not a method axum can route"));
        self.router = self.router.route(path, on(filter, handler));
        self.served.push((method, path));
        self
    }
}

/// `(method, path)` as the public lists give them (`"GET"`, axum's path syntax).
pub(crate) fn listed(served: Vec<(Method, &'static str)>) -> Vec<(String, String)> {
    served
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}
