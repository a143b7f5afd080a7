//! Slow clients cannot hold connections for ever: a client that trickles its
//! headers is disconnected after `header_read_timeout`, one that trickles its body
//! is answered 408 `body_timeout` after `body_read_timeout` and disconnected. The
//! timeouts are made short here; the test waits for the server to act (the
//! answer, then end of stream), never for a fixed time.

mod common;

use std::time::Duration;

use common::{config, Harness, ADMIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bounds the wait for the server to act (a hang guard, not a timing check).
const GUARD: Duration = Duration::from_secs(60);

async fn harness() -> Harness {
    let mut cfg = config();
    cfg.header_read_timeout = Duration::from_millis(300);
    cfg.body_read_timeout = Duration::from_millis(300);
    Harness::start_with(cfg).await
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("reading the answer: {e}"),
            }
        }
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("the server closed the connection");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_disconnected() {
    let h = harness().await;
    let mut tcp = TcpStream::connect(h.gateway.as_ref().unwrap().addr)
        .await
        .unwrap();
    // Half a request head, and nothing more.
    tcp.write_all(b"GET /v1/health HTTP/1.1\r\nHost: gpux\r\nX-Slow: 1")
        .await
        .unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(
        !answer.contains("200 OK"),
        "the request was never complete: {answer}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_body_gets_408_and_is_disconnected() {
    let h = harness().await;
    let (head, inbox) = h.ledger_head();
    let mut tcp = TcpStream::connect(h.gateway.as_ref().unwrap().addr)
        .await
        .unwrap();
    let req = format!(
        "POST /v1/accounts HTTP/1.1\r\nHost: gpux\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    // The rest of the body never comes.
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(h.ledger_head(), (head, inbox), "nothing was submitted");
    // A client that sends its request at once is served as usual.
    let mut tcp = TcpStream::connect(h.gateway.as_ref().unwrap().addr)
        .await
        .unwrap();
    tcp.write_all(b"GET /v1/health HTTP/1.1\r\nHost: gpux\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    h.stop().await;
}
