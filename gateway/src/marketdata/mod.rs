//! Market data, built from committed commands only: L2 books with sequence numbers,
//! recent trades, tickers, candles; served over REST and the `/v1/ws` WebSocket.
//!
//! (Being built for issue #5.)
