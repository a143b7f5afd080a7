#!/usr/bin/env python3
"""Subscribe to gpux WebSocket channels and print each message as one JSON line.

    python3 scripts/ws-probe.py URL CHANNEL... [--messages N] [--timeout S] [--key KEY]

URL is the server (http://127.0.0.1:8080 or ws://127.0.0.1:8080/v1/ws; /v1/ws is
added when the path is empty). For each CHANNEL (book.<market>, trades.<market>,
ticker.<market>, orders) it sends {"op":"subscribe","channel":…}, then prints every
text message the server sends, one per line, until N messages have been printed
(default 10) and closes the connection normally.

Exit status: 0 when N messages arrived; 2 as soon as a message is
{"type":"error",…} (printed too: a subscription was refused); 1 when the timeout
(default 15 s) passed first or the connection failed.

Only the Python standard library is used (the WebSocket handshake and framing of
RFC 6455, text frames only), so it runs wherever python3 does; `websocat` or a
browser's `new WebSocket(url)` speak the same protocol (docs/MARKET_DATA.md).
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time
import urllib.parse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The server closed the connection."""


def connect(url, key, timeout):
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("ws", "http"):
        sys.exit(f"ws-probe: {url}: expected ws:// or http:// (no TLS here)")
    path = u.path if u.path not in ("", "/") else "/v1/ws"
    sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
    nonce = base64.b64encode(os.urandom(16)).decode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{auth}\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise Closed("connection closed during the handshake")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 101"):
        raise Closed(f"upgrade refused: {lines[0]}")
    want = base64.b64encode(hashlib.sha1((nonce + GUID).encode()).digest()).decode()
    accept = [l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("sec-websocket-accept:")]
    if accept != [want]:
        raise Closed("bad Sec-WebSocket-Accept")
    return sock, rest


class Conn:
    def __init__(self, sock, buffered):
        self.sock, self.buf = sock, buffered

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, opcode, payload=b""):
        """One final, masked frame (clients must mask)."""
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def frame(self):
        b0, b1 = self.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.read_exact(8))
        mask = self.read_exact(4) if b1 & 0x80 else None
        data = self.read_exact(n)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return bool(b0 & 0x80), b0 & 0x0F, data

    def message(self):
        """The next text message; answers pings, raises Closed on a close frame."""
        parts = []
        while True:
            fin, op, data = self.frame()
            if op == OP_PING:
                self.send(OP_PONG, data)
            elif op == OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                raise Closed(f"closed by the server: {code} {data[2:].decode(errors='replace')}")
            elif op in (OP_TEXT, OP_CONT, OP_BINARY):
                parts.append(data)
                if fin:
                    return b"".join(parts).decode()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("channels", nargs="+", metavar="CHANNEL")
    p.add_argument("--messages", type=int, default=10, help="stop after N messages (default 10)")
    p.add_argument("--timeout", type=float, default=15.0, help="give up after S seconds (default 15)")
    p.add_argument("--key", help="API key, sent as Authorization: Bearer (for the orders channel)")
    a = p.parse_args()
    deadline = time.monotonic() + a.timeout
    printed = 0
    error = False
    try:
        sock, rest = connect(a.url, a.key, a.timeout)
        conn = Conn(sock, rest)
        for i, ch in enumerate(a.channels, 1):
            conn.send(OP_TEXT, json.dumps({"op": "subscribe", "channel": ch, "id": i}).encode())
        while printed < a.messages:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            text = conn.message()
            print(text, flush=True)
            printed += 1
            if json.loads(text).get("type") == "error":
                error = True
                break
        conn.send(OP_CLOSE, struct.pack("!H", 1000))
        sock.close()
    except (TimeoutError, socket.timeout):
        print(f"ws-probe: {printed} of {a.messages} messages within {a.timeout:g} s", file=sys.stderr)
        return 1
    except (Closed, OSError) as e:
        print(f"ws-probe: {e}", file=sys.stderr)
        return 1
    return 2 if error else 0


if __name__ == "__main__":
    sys.exit(main())
