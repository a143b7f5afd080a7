//! The `/v1/ws` endpoint: upgrade, connection limits, and one session per socket.
//!
//! A session is two tasks around the connection's [`OutQueue`]: the reader parses
//! requests (subscribe, unsubscribe, auth, ping), answers what it can itself and
//! forwards subscriptions to the hub; the writer drains the queue into the socket
//! (one flush per wake-up), sends a ping every heartbeat interval, and gives up on a
//! peer that accepts nothing for `write_timeout`. The reader closes a peer that sent
//! nothing (not even a pong) for `idle_timeout`. Limits (subscriptions per
//! connection, connections per account and per anonymous peer address) are answered
//! with errors, never enforced by silently dropping.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use gpux_engine::MarketId;
use serde::Deserialize;

use super::close;
use super::inbox::{ChannelReq, ConnId, HubMsg};
use super::queue::{CloseReason, Out, OutQueue};
use super::state::{lock, ConnKey, MarketDataState};
use super::wire::{self, Reply};
use crate::auth::{bearer, Bearer};
use crate::rest::extract::repeated_authorization;
use crate::{ApiError, Authenticator, Principal};

/// A counted connection; uncounted on drop.
#[derive(Debug)]
pub struct Slot {
    shared: Arc<MarketDataState>,
    key: ConnKey,
}

impl Slot {
    /// Counts a connection against `key`, if its limit allows.
    pub fn acquire(shared: &Arc<MarketDataState>, key: ConnKey) -> Result<Slot, String> {
        let cfg = &shared.cfg;
        let max = match key {
            ConnKey::Account(_) | ConnKey::Admin => cfg.max_connections_per_account,
            ConnKey::Peer(_) | ConnKey::Unknown => cfg.max_connections_per_peer,
        };
        let mut counts = lock(&shared.conn_counts);
        let total: usize = counts.values().sum();
        if total >= cfg.max_connections {
            return Err(format!(
                "the server holds its maximum of {} WebSocket connections",
                cfg.max_connections
            ));
        }
        let n = counts.entry(key).or_default();
        if *n >= max {
            let who = match key {
                ConnKey::Account(_) | ConnKey::Admin => "per account",
                _ => "per anonymous peer address",
            };
            if *n == 0 {
                counts.remove(&key);
            }
            return Err(format!("at most {max} WebSocket connections {who}"));
        }
        *n += 1;
        Ok(Slot {
            shared: Arc::clone(shared),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.shared.conn_counts);
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// What the WebSocket handlers share.
#[derive(Clone)]
pub struct WsState {
    /// Market data.
    pub shared: Arc<MarketDataState>,
    /// The hub's inbox.
    pub hub: SyncSender<HubMsg>,
    /// API keys.
    pub auth: Arc<dyn Authenticator>,
}

fn key_of(p: Principal) -> ConnKey {
    match p {
        Principal::Account(a) => ConnKey::Account(a),
        Principal::Admin => ConnKey::Admin,
    }
}

/// `GET /v1/ws`: authenticates the upgrade request (optional), counts the
/// connection, and upgrades.
pub async fn upgrade(
    State(st): State<WsState>,
    headers: HeaderMap,
    ext: Extensions,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if st.shared.stopped.load(Ordering::Acquire) {
        return ApiError::unavailable("market data is shutting down; reconnect later")
            .into_response();
    }
    if st.shared.serving_generation().is_none() {
        return ApiError::from(crate::replica::NotServing::Rebuilding).into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "websocket_upgrade_required",
                format!("/v1/ws is a WebSocket endpoint: {e}"),
            )
            .into_response()
        }
    };
    let (principal, api_key) = match bearer(&headers) {
        Bearer::Absent => (None, None),
        Bearer::Repeated => return repeated_authorization().into_response(),
        Bearer::Malformed | Bearer::Key("") => return ApiError::unauthorized().into_response(),
        Bearer::Key(k) => match st.auth.principal(k) {
            Some(p) => (Some(p), Some(k.to_owned())),
            None => return ApiError::unauthorized().into_response(),
        },
    };
    let peer = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let key = principal.map_or(peer.map_or(ConnKey::Unknown, ConnKey::Peer), key_of);
    let slot = match Slot::acquire(&st.shared, key) {
        Ok(s) => s,
        Err(msg) => {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_connections", msg)
                .retry_after(1)
                .into_response()
        }
    };
    let cfg = &st.shared.cfg;
    ws.max_message_size(cfg.max_frame_bytes)
        .max_frame_size(cfg.max_frame_bytes)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| session(socket, st, principal, api_key, slot))
}

/// A receiver of key changes that reports one at once, so the connection
/// checks its key again first: a revocation between the key's check and this
/// subscription is not missed.
fn fresh_key_changes(auth: &dyn Authenticator) -> Option<tokio::sync::watch::Receiver<u64>> {
    let mut rx = auth.key_changes()?;
    rx.mark_changed();
    Some(rx)
}

/// Completes when `changes` moves (never without a receiver, or once its
/// sender is gone).
async fn key_changed(changes: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    if let Some(rx) = changes {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

fn closed_frame(c: &CloseReason) -> Message {
    let mut reason = c.reason.clone();
    if reason.len() > 123 {
        let mut cut = 123;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    Message::Close(Some(CloseFrame {
        code: c.code,
        reason: Utf8Bytes::from(reason),
    }))
}

async fn session(
    socket: WebSocket,
    st: WsState,
    principal: Option<Principal>,
    api_key: Option<String>,
    slot: Slot,
) {
    let shared = Arc::clone(&st.shared);
    let cfg = shared.cfg.clone();
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let queue = Arc::new(OutQueue::new(cfg.queue_messages, cfg.queue_bytes));
    let (mut sink, stream) = socket.split();
    if st
        .hub
        .try_send(HubMsg::Register {
            conn,
            queue: Arc::clone(&queue),
        })
        .is_err()
    {
        let _ = sink
            .send(closed_frame(&CloseReason {
                code: close::TRY_AGAIN_LATER,
                reason: "market data is busy or shutting down; reconnect later".into(),
            }))
            .await;
        return;
    }
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    let mut writer = tokio::spawn(write_loop(
        sink,
        Arc::clone(&queue),
        cfg.heartbeat_interval,
        cfg.write_timeout,
    ));
    let mut reader = Reader {
        st: st.clone(),
        conn,
        queue: Arc::clone(&queue),
        principal,
        key_changes: api_key.as_ref().and_then(|_| fresh_key_changes(&*st.auth)),
        api_key,
        slot,
        tokens: 2.0 * f64::from(cfg.max_requests_per_sec.max(1)),
        counted: tokio::time::Instant::now(),
    };
    let mut stream = stream;
    let closed_cleanly = tokio::select! {
        _ = reader.run(&mut stream) => {
            queue.close(CloseReason { code: close::NORMAL, reason: "bye".into() }, false);
            match tokio::time::timeout(cfg.write_timeout, &mut writer).await {
                Ok(Ok(sent_close)) => sent_close,
                _ => {
                    writer.abort();
                    false
                }
            }
        }
        w = &mut writer => w.unwrap_or(false),
    };
    if closed_cleanly {
        await_peer_close(&mut stream, CLOSE_LINGER.min(cfg.write_timeout)).await;
    }
    tell_hub_closed(st.hub.clone(), conn);
    shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
}

/// The closing handshake: gives the peer up to `linger` to read our close frame
/// and answer it before the socket goes (closing at once can reset the connection
/// and lose the close frame, and its reason, on the way).
async fn await_peer_close(stream: &mut SplitStream<WebSocket>, linger: Duration) {
    let _ = tokio::time::timeout(linger, async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Tells the hub that `conn` ended: it must hear of the end, even if its inbox is
/// momentarily full.
fn tell_hub_closed(hub: SyncSender<HubMsg>, conn: ConnId) {
    match hub.try_send(HubMsg::Closed { conn }) {
        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
        Err(TrySendError::Full(m)) => {
            tokio::task::spawn_blocking(move || {
                let _ = hub.send(m);
            });
        }
    }
}

/// How long a session waits for the peer's answer to its close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// Writes until the queue closes; true when the close frame was sent.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    queue: Arc<OutQueue>,
    heartbeat: Duration,
    write_timeout: Duration,
) -> bool {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf: Vec<Out> = Vec::new();
    loop {
        let mut send_ping = false;
        tokio::select! {
            _ = queue.wait() => {}
            _ = ping.tick() => send_ping = true,
        }
        let close = queue.take(&mut buf);
        let wrote = tokio::time::timeout(write_timeout, async {
            for o in buf.drain(..) {
                let m = match o {
                    Out::Text(t) => Message::Text(t),
                    Out::Ping => Message::Ping(Bytes::new()),
                };
                sink.feed(m).await?;
            }
            if send_ping {
                sink.feed(Message::Ping(Bytes::new())).await?;
            }
            if let Some(c) = &close {
                sink.feed(closed_frame(c)).await?;
            }
            sink.flush().await
        })
        .await;
        match wrote {
            Ok(Ok(())) if close.is_none() => {}
            Ok(Ok(())) => return true,
            // Failed, or the peer accepted nothing for `write_timeout`.
            _ => return false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    op: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

struct Reader {
    st: WsState,
    conn: ConnId,
    queue: Arc<OutQueue>,
    principal: Option<Principal>,
    /// The key the connection authenticated with, checked again whenever
    /// `key_changes` moves: a revoked key ends the connection.
    api_key: Option<String>,
    key_changes: Option<tokio::sync::watch::Receiver<u64>>,
    slot: Slot,
    /// Request tokens left, and when they were last counted.
    tokens: f64,
    counted: tokio::time::Instant,
}

impl Reader {
    /// Takes one request token; false when the connection sends too fast.
    fn allow(&mut self) -> bool {
        let rate = f64::from(self.st.shared.cfg.max_requests_per_sec.max(1));
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.counted).as_secs_f64();
        self.counted = now;
        self.tokens = (self.tokens + elapsed * rate).min(2.0 * rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    async fn run(&mut self, stream: &mut SplitStream<WebSocket>) {
        let cfg = self.st.shared.cfg.clone();
        loop {
            // Wait for a message until the idle deadline, checking the key
            // again whenever keys change (which does not move the deadline).
            let deadline = tokio::time::Instant::now() + cfg.idle_timeout;
            let next = loop {
                tokio::select! {
                    next = tokio::time::timeout_at(deadline, stream.next()) => break next,
                    () = key_changed(&mut self.key_changes) => {
                        if self.key_revoked() {
                            return;
                        }
                    }
                }
            };
            let msg = match next {
                Err(_) => {
                    self.queue.close(
                        CloseReason {
                            code: close::HEARTBEAT_TIMEOUT,
                            reason: format!(
                                "heartbeat timeout: nothing received for {} ms",
                                cfg.idle_timeout.as_millis()
                            ),
                        },
                        false,
                    );
                    return;
                }
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    let text = e.to_string();
                    let (code, reason) = if text.contains("Space limit exceeded") {
                        (
                            close::MESSAGE_TOO_BIG,
                            format!("message too big: at most {} bytes", cfg.max_frame_bytes),
                        )
                    } else if text.contains("UTF-8") {
                        (close::INVALID_DATA, "text frames must be UTF-8".to_string())
                    } else {
                        (close::PROTOCOL, "WebSocket protocol error".to_string())
                    };
                    self.queue.close(CloseReason { code, reason }, true);
                    return;
                }
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(_) | Message::Binary(_) if !self.allow() => {
                    let msg = format!(
                        "at most {} requests per second per connection",
                        cfg.max_requests_per_sec
                    );
                    self.error("rate_limited", &msg, None, None)
                }
                Message::Text(t) => self.request(t.as_str()),
                Message::Binary(_) => self.error(
                    "binary_not_supported",
                    "send requests as JSON text frames",
                    None,
                    None,
                ),
                Message::Ping(_) | Message::Pong(_) => {}
                Message::Close(_) => return,
            }
        }
    }

    fn send(&self, r: &Reply<'_>) {
        if self.queue.push(Out::Text(wire::to_text(r))).is_err() && !self.queue.is_closed() {
            let _ = self.st.hub.try_send(HubMsg::Resync { conn: self.conn });
        }
    }

    fn error(
        &self,
        code: &'static str,
        message: &str,
        channel: Option<&str>,
        id: Option<&serde_json::Value>,
    ) {
        self.send(&Reply::error(code, message, channel, id));
    }

    fn request(&mut self, text: &str) {
        let max = self.st.shared.cfg.max_request_bytes;
        if text.len() > max {
            let msg = format!("a request is at most {max} bytes");
            return self.error("request_too_large", &msg, None, None);
        }
        let req: Request = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!(
                    "a request is a JSON object {{\"op\": ..., \"channel\": ..., \"id\": ...}}: {e}"
                );
                return self.error("malformed_request", &msg, None, None);
            }
        };
        let id = req.id.as_ref();
        if id.is_some_and(|v| v.is_object() || v.is_array()) {
            return self.error(
                "malformed_request",
                "id must be a string, number, boolean or null",
                None,
                None,
            );
        }
        match req.op.as_str() {
            "subscribe" | "unsubscribe" => {
                let names: Vec<&str> = match (&req.channel, &req.channels) {
                    (Some(one), None) => vec![one.as_str()],
                    (None, Some(list)) if !list.is_empty() => {
                        list.iter().map(String::as_str).collect()
                    }
                    _ => return self.error(
                        "malformed_request",
                        "subscribe and unsubscribe need a channel, or a non-empty list of channels",
                        None,
                        id,
                    ),
                };
                let max = self.st.shared.cfg.max_subscriptions;
                if names.len() > max {
                    let msg = format!("at most {max} channels in one request");
                    return self.error("too_many_subscriptions", &msg, None, id);
                }
                for name in names {
                    self.channel_op(req.op == "subscribe", name, req.id.as_ref());
                }
            }
            "auth" => self.auth(req.key.as_deref(), id),
            "ping" => self.send(&Reply::ack("pong", None, id)),
            other => {
                let msg = format!("unknown op {other:?}: use subscribe, unsubscribe, auth or ping");
                self.error("unknown_op", &msg, None, id)
            }
        }
    }

    /// Subscribes to (or unsubscribes from) one channel; its ack or error comes
    /// from the hub (or from here when the name is wrong or the hub is busy).
    fn channel_op(&mut self, subscribe: bool, name: &str, id: Option<&serde_json::Value>) {
        let channel = match self.channel(name) {
            Ok(c) => c,
            Err((code, msg)) => return self.error(code, &msg, Some(name), id),
        };
        let (conn, name_owned, id_owned) = (self.conn, name.to_string(), id.cloned());
        let msg = if subscribe {
            HubMsg::Subscribe {
                conn,
                channel,
                name: name_owned,
                id: id_owned,
            }
        } else {
            HubMsg::Unsubscribe {
                conn,
                channel,
                name: name_owned,
                id: id_owned,
            }
        };
        if self.st.hub.try_send(msg).is_err() {
            self.error(
                "server_busy",
                "market data is busy; retry the request",
                Some(name),
                id,
            );
        }
    }

    fn channel(&self, name: &str) -> Result<ChannelReq, (&'static str, String)> {
        if name == "orders" {
            return match self.principal {
                Some(Principal::Account(a)) => Ok(ChannelReq::Orders(a)),
                Some(Principal::Admin) => Err((
                    "forbidden",
                    "the orders channel belongs to trading accounts; the admin key has none"
                        .to_string(),
                )),
                None => Err((
                    "unauthorized",
                    "authenticate first: Authorization: Bearer <key> on the upgrade request, or {\"op\":\"auth\",\"key\":...}".to_string(),
                )),
            };
        }
        const USE: &str = "use book.<market>.<slot>, trades.<market>.<slot>, ticker.<market>.<slot>, curve.<market> or orders (a slot is written 2026-12-07T09:00Z)";
        let unknown = || {
            (
                "unknown_channel",
                format!("unknown channel {name:?}: {USE}"),
            )
        };
        let (kind, rest) = name.split_once('.').ok_or_else(unknown)?;
        let parse = |m: &str| {
            MarketId::new(m).map_err(|_| ("unknown_market", format!("no market {m:?} is listed")))
        };
        let book = |rest: &str| {
            let (market, slot) = rest.rsplit_once('.').ok_or_else(unknown)?;
            let slot = gpux_engine::slot::parse_slot(slot)
                .map_err(|e| ("invalid_slot", format!("{name:?}: {e}")))?;
            Ok::<_, (&'static str, String)>((parse(market)?, slot))
        };
        match kind {
            "book" => Ok(ChannelReq::Book(book(rest)?)),
            "trades" => Ok(ChannelReq::Trades(book(rest)?)),
            "ticker" => Ok(ChannelReq::Ticker(book(rest)?)),
            "curve" => Ok(ChannelReq::Curve(parse(rest)?)),
            _ => Err(unknown()),
        }
    }

    /// Whether the connection's key no longer opens what it opened; if so,
    /// closes the connection with [`close::KEY_REVOKED`].
    fn key_revoked(&mut self) -> bool {
        let Some(key) = &self.api_key else {
            return false;
        };
        if self.st.auth.principal(key) == self.principal {
            return false;
        }
        self.queue.close(
            CloseReason {
                code: close::KEY_REVOKED,
                reason: "the API key of this connection was revoked".into(),
            },
            false,
        );
        true
    }

    fn auth(&mut self, key: Option<&str>, id: Option<&serde_json::Value>) {
        if self.principal.is_some() {
            return self.error(
                "already_authenticated",
                "this connection is already authenticated",
                None,
                id,
            );
        }
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return self.error("malformed_request", "auth needs a key", None, id);
        };
        let Some(p) = self.st.auth.principal(key) else {
            return self.error("unauthorized", "unknown API key", None, id);
        };
        match Slot::acquire(&self.st.shared, key_of(p)) {
            Ok(slot) => {
                // Counted against the account from now on, not the peer address.
                self.slot = slot;
                self.principal = Some(p);
                self.api_key = Some(key.to_owned());
                self.key_changes = fresh_key_changes(&*self.st.auth);
                let mut r = Reply::ack("authenticated", None, id);
                if let Principal::Account(a) = p {
                    r.account = Some(a);
                }
                self.send(&r);
            }
            Err(msg) => self.error("too_many_connections", &msg, None, id),
        }
    }
}
