//! The load generator's wire clients: a bare HTTP/1.1 keep-alive client and a bare
//! WebSocket client, both just enough for talking to our own gateway over loopback.
//! Cheap per request and per message (no framework, no copy per frame), so the
//! measurement is of the server, not of the clients sharing its cores.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal HTTP/1.1 keep-alive client: one request at a time, bodies with
/// `Content-Length` (what axum sends). Cheap enough that the load generator leaves
/// the cores to the server.
pub(super) struct Http {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl Http {
    pub(super) async fn connect(base_url: &str) -> Result<Http> {
        let host = base_url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("not an http:// URL: {base_url}"))?
            .trim_end_matches('/')
            .to_string();
        let stream = TcpStream::connect(&host).await?;
        stream.set_nodelay(true)?;
        Ok(Http {
            stream,
            host,
            buf: Vec::with_capacity(8 * 1024),
        })
    }

    pub(super) async fn request(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if let Some(k) = key {
            req.push_str("Authorization: Bearer ");
            req.push_str(k);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        self.stream.write_all(&out).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end])?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line"))?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())
                    .flatten()
            })
            .ok_or_else(|| anyhow!("a response without Content-Length"))?;
        while self.buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection mid-body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buf[head_end..head_end + len].to_vec()))
    }

    pub(super) async fn json(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value)> {
        let (s, b) = self
            .request(method, path, key, body.to_string().as_bytes())
            .await?;
        Ok((s, serde_json::from_slice(&b).unwrap_or(Value::Null)))
    }
}

/// Where `needle` first starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A minimal WebSocket client for the subscribers: text frames in one buffer, no
/// copy and no allocation per message (the server never fragments or masks), so
/// a thousand of them leave the cores to the server.
pub(super) struct RawWs {
    stream: TcpStream,
    /// Bytes read; a [`Frame`]'s payload is a range of it.
    pub(super) buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// A frame: its opcode and where its payload sits in the buffer.
pub(super) type Frame = (u8, std::ops::Range<usize>);

impl RawWs {
    pub(super) async fn connect(url: &str) -> Result<RawWs> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow!("not a ws:// URL: {url}"))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        let mut ws = RawWs {
            stream,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        };
        let req = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.stream.write_all(req.as_bytes()).await?;
        let head_end = loop {
            if let Some(i) = find(&ws.buf[..ws.end], b"\r\n\r\n") {
                break i + 4;
            }
            ws.fill().await?;
        };
        if !ws.buf[..head_end].starts_with(b"HTTP/1.1 101") {
            bail!(
                "upgrade refused: {}",
                String::from_utf8_lossy(&ws.buf[..head_end.min(200)])
            );
        }
        ws.start = head_end;
        Ok(ws)
    }

    /// Reads more bytes after `end`, compacting or growing the buffer first.
    async fn fill(&mut self) -> Result<()> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.end += n;
        Ok(())
    }

    pub(super) async fn send_text(&mut self, text: &str) -> Result<()> {
        let p = text.as_bytes();
        let mut f = vec![0x81u8];
        if p.len() < 126 {
            f.push(0x80 | p.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(p.len() as u16).to_be_bytes());
        }
        let mask = [0x5au8, 0x13, 0xc7, 0x2e];
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&f).await?;
        Ok(())
    }

    /// The next whole frame (cancel-safe: bytes read stay in the buffer).
    pub(super) async fn next_frame(&mut self) -> Result<Frame> {
        loop {
            let b = &self.buf[self.start..self.end];
            if b.len() >= 2 {
                let opcode = b[0] & 0x0f;
                if b[0] & 0x80 == 0 {
                    bail!("a fragmented frame");
                }
                let (len, head) = match b[1] & 0x7f {
                    126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                    127 if b.len() >= 10 => {
                        let mut l = [0u8; 8];
                        l.copy_from_slice(&b[2..10]);
                        (u64::from_be_bytes(l) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && b.len() >= head + len {
                    let at = self.start + head;
                    self.start = at + len;
                    return Ok((opcode, at..at + len));
                }
                if len != usize::MAX && head + len > self.buf.len() {
                    self.buf.resize(head + len + 1024, 0);
                }
            }
            self.fill().await?;
        }
    }
}

/// The `"key":123` integer in a JSON text, found without parsing the rest.
pub(super) fn int_field(text: &[u8], key: &[u8]) -> Option<u64> {
    let i = find(text, key)? + key.len();
    let mut v: u64 = 0;
    let mut any = false;
    for &c in &text[i..] {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        any = true;
    }
    any.then_some(v)
}
