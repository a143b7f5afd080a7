//! The client's connection to an exchange: the base URL and key it uses, requests
//! over HTTP, and the one error type ([`Failure`]) every client command ends with,
//! which carries the exit status and a message that says what to do.
//!
//! Owns the mapping of what went wrong to an exit status, so scripts can tell a
//! refused request from an unreachable exchange:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | anything else (a local file could not be written, an unexpected answer) |
//! | 2 | bad arguments (clap's usage errors, a time or price that does not parse) |
//! | 3 | the exchange refused the request (a 4xx other than 401/403, and 403 `not_your_entry`): its error code and message are printed |
//! | 4 | no API key, or the exchange refused the key (401/403) |
//! | 5 | the exchange could not be reached, is busy or unavailable (429, 5xx): retry |
//! | 6 | not confirmed: the order was not sent |

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// How long one request may take before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Exit status: anything else.
pub const EXIT_OTHER: u8 = 1;
/// Exit status: bad arguments.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the exchange refused the request.
pub const EXIT_REFUSED: u8 = 3;
/// Exit status: no key, or the key was refused.
pub const EXIT_AUTH: u8 = 4;
/// Exit status: the exchange is unreachable, busy or unavailable.
pub const EXIT_UNAVAILABLE: u8 = 5;
/// Exit status: not confirmed.
pub const EXIT_NOT_CONFIRMED: u8 = 6;

/// Why a client command failed, with the process's exit status.
#[derive(Debug)]
pub struct Failure {
    /// The exit status (the `EXIT_*` constants).
    pub exit: u8,
    /// What happened and what to do, for people.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// A failure with `exit` status.
    pub fn new(exit: u8, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }

    /// Bad arguments.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(EXIT_USAGE, message)
    }
}

/// The result of a client command.
pub type Outcome<T = ()> = Result<T, Failure>;

/// An exchange, as this client reaches it.
pub struct Api {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Api {
    /// A client of the exchange at `base` (`http://host:port`), with `key` if any.
    pub fn new(base: &str, key: Option<String>) -> Outcome<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            return Err(Failure::usage(format!(
                "--api {base:?}: give the exchange's address as http://HOST:PORT (this client speaks plain HTTP; put TLS in front with a proxy)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Failure::new(EXIT_OTHER, format!("cannot make an HTTP client: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new(EXIT_OTHER, format!("cannot start a runtime: {e}")))?;
        Ok(Api {
            base,
            key,
            http,
            rt,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The key, or the failure saying how to give one.
    pub fn key(&self) -> Outcome<&str> {
        self.key.as_deref().ok_or_else(|| {
            Failure::new(
                EXIT_AUTH,
                "no API key: run `gpux login`, or set GPUX_API_KEY",
            )
        })
    }

    /// The runtime requests run on (the WebSocket too).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// `GET path` without a key.
    pub fn public(&self, path: &str) -> Outcome<Value> {
        self.call(Method::GET, path, None, false)
    }

    /// `GET path` with the key.
    pub fn get(&self, path: &str) -> Outcome<Value> {
        self.call(Method::GET, path, None, true)
    }

    /// `method path` without a key or body.
    pub fn send_public(&self, method: Method, path: &str) -> Outcome<Value> {
        self.call(method, path, None, false)
    }

    /// `method path` with the key and a JSON body.
    pub fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Outcome<Value> {
        self.call(method, path, body, true)
    }

    fn call(&self, method: Method, path: &str, body: Option<&Value>, auth: bool) -> Outcome<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if auth {
            req = req.bearer_auth(self.key()?);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| unreachable(&self.base, &e))?;
            let status = resp.status();
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = resp.text().await.map_err(|e| unreachable(&self.base, &e))?;
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(json);
            }
            Err(refusal(
                status.as_u16(),
                &json,
                retry.as_deref(),
                &format!("{method} {path}"),
            ))
        })
    }
}

fn unreachable(base: &str, e: &reqwest::Error) -> Failure {
    let what = if e.is_timeout() {
        "did not answer in time"
    } else {
        "cannot be reached"
    };
    Failure::new(
        EXIT_UNAVAILABLE,
        format!(
            "the exchange at {base} {what} ({e}); is it running, and is --api / GPUX_API right?"
        ),
    )
}

/// The failure for an error answer: its code and message, and what to do.
pub fn refusal(status: u16, body: &Value, retry_after: Option<&str>, what: &str) -> Failure {
    let code = body["code"].as_str().unwrap_or("http_error");
    let message = body["message"].as_str().unwrap_or("no message");
    let mut text = format!("{what}: HTTP {status} {code}: {message}");
    let exit = match status {
        // The engine's refusal of an entry that is not the account's is about the
        // request, not the key.
        401 | 403 if code != "not_your_entry" => {
            let hint = hint(code).unwrap_or("check the key: `gpux login`, or GPUX_API_KEY");
            text.push_str(&format!(" ({hint})"));
            EXIT_AUTH
        }
        429 | 500..=599 => {
            match retry_after {
                Some(s) => text.push_str(&format!(" (retry in {s} s)")),
                None => text.push_str(" (retry later)"),
            }
            EXIT_UNAVAILABLE
        }
        _ => {
            if let Some(hint) = hint(code) {
                text.push_str(&format!(" ({hint})"));
            }
            EXIT_REFUSED
        }
    };
    Failure::new(exit, text)
}

/// What to do about an engine or API refusal, where the message alone does not say.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "unknown_market" => "`gpux markets` lists the markets",
        "unknown_order" => "`gpux orders` lists your open orders",
        "insufficient_funds" => "`gpux balances` shows what you have; deposit, or buy less or lower",
        "window_not_fillable" | "cluster_not_fillable" => {
            "not enough is offered at your limit now: see `gpux book`, raise the limit or ask for fewer GPUs"
        }
        "insufficient_capacity" => "sell what you have: `gpux capacity add` lists your GPUs for those hours",
        "fok_not_fillable" => "not enough is offered at your limit now: see `gpux book`",
        "off_tick_price" | "off_lot_quantity" => "`gpux markets` shows each market's tick and lot",
        "slot_closed" | "slot_not_open" | "slot_beyond_horizon" => {
            "a slot trades until its gate closes, up to the market's horizon: `gpux curve` shows the open ones"
        }
        "unknown_entry" => "`gpux schedule` lists your deliveries, their entry ids and states",
        "not_your_entry" => {
            "only the entry's provider reports and only its holder disputes: `gpux schedule` shows your role; is this the right key?"
        }
        "report_window_closed" | "dispute_window_closed" => {
            "`gpux schedule` shows the entry's report_until and dispute_until; reports and disputes open at the hour's start"
        }
        "quantity_exceeds_entry" => "give at most the entry's GPUs (`gpux schedule`), 0 if none",
        "entry_disputed" => "the entry waits for the exchange's admin to resolve the dispute",
        "insufficient_scope" => "this key's scope does not allow it: use a full key (`gpux keys list` with a full key shows your keys)",
        "unknown_api_key" | "invalid_key_id" => "`gpux keys list` shows your keys' ids",
        "last_api_key" => "create another key first (`gpux keys create`), then revoke this one",
        "too_many_api_keys" => "revoke a key you no longer use (`gpux keys list`, `gpux keys revoke`)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_map_to_exit_statuses_with_the_code_and_what_to_do() {
        let body = json!({"code": "unknown_market", "message": "no such market"});
        let f = refusal(404, &body, None, "GET /v1/markets/x");
        assert_eq!(f.exit, EXIT_REFUSED);
        assert_eq!(
            f.message,
            "GET /v1/markets/x: HTTP 404 unknown_market: no such market (`gpux markets` lists the markets)"
        );
        let f = refusal(
            401,
            &json!({"code": "unauthorized", "message": "m"}),
            None,
            "x",
        );
        assert_eq!(f.exit, EXIT_AUTH);
        let f = refusal(
            429,
            &json!({"code": "rate_limited", "message": "m"}),
            Some("2"),
            "x",
        );
        assert_eq!(f.exit, EXIT_UNAVAILABLE);
        assert!(f.message.ends_with("(retry in 2 s)"), "{}", f.message);
        let f = refusal(
            403,
            &json!({"code": "not_your_entry", "message": "m"}),
            None,
            "x",
        );
        assert_eq!(f.exit, EXIT_REFUSED);
        assert!(f.message.contains("`gpux schedule`"), "{}", f.message);
        let f = refusal(502, &Value::Null, None, "x");
        assert_eq!(f.exit, EXIT_UNAVAILABLE);
        assert!(f.message.contains("http_error"));
    }
}
