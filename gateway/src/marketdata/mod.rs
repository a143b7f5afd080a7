//! Market data, built from committed commands only: L2 books with sequence numbers,
//! recent trades, tickers, candles; served over REST and the `/v1/ws` WebSocket.
//!
//! (Being built for issue #5 on branch `gw-md`. This is a stub with the agreed
//! interface so the order-entry half compiles; the real module replaces it whole.)

use std::sync::Arc;

use gpux_engine::Engine;
use gpux_sequencer::CommittedCommand;

/// Market-data settings.
#[derive(Debug, Clone, Default)]
pub struct MarketDataConfig {}

/// Market-data state, owned by the gateway's core thread.
#[derive(Debug)]
pub struct MarketData {}

/// What request handlers use to read market data.
#[derive(Debug, Clone)]
pub struct MarketDataHandle {}

impl MarketData {
    /// New, empty market data and its handle.
    pub fn new(cfg: MarketDataConfig) -> (MarketData, MarketDataHandle) {
        let _ = cfg;
        (MarketData {}, MarketDataHandle {})
    }

    /// After the replica applied `cmd`; `engine` is the replica's state after it.
    pub fn on_command(&mut self, cmd: &CommittedCommand, engine: &Engine) {
        let _ = (cmd, engine);
    }

    /// After a run of commands was processed (a good moment to flush to WebSockets).
    pub fn on_batch_end(&mut self, engine: &Engine) {
        let _ = engine;
    }
}

/// REST market data and `/v1/ws`.
pub fn routes(handle: MarketDataHandle, auth: Arc<dyn crate::Authenticator>) -> axum::Router {
    let _ = (handle, auth);
    axum::Router::new()
}
