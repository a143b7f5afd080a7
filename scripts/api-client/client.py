#!/usr/bin/env python3
"""A gpux client written only from the published API: docs/openapi.json and docs/MARKET_DATA.md.

    client.py --api http://127.0.0.1:PORT [--admin-key-file FILE] [--seconds 60]

Run by scripts/api-client-check, with the REST client that openapi-python-client
generated from docs/openapi.json importable as `gpux_api` (nothing of it is
checked in or edited). It proves that those two documents are enough to trade
and to follow the market:

- REST, through the generated client only: open an account (`signup`), list GPUs
  (`add_capacity`), place a resting limit sell, see it open (`get_order`,
  `list_open_orders`, `get_depth`), cancel it, see it cancelled; with the admin key, deposit
  USD into the account and do the same with a limit buy, cancelled by its client
  order id; and one refused order, whose error has the documented shape.
- WebSocket (`websockets`), from MARKET_DATA.md: subscribe to the books of the
  demo's open slots, rebuild each from its snapshot and updates, and compute the
  CRC-32 top-10 checksum as the document says after every message: it must
  match on EVERY update for the whole run. A `prev_seq` that is not the book's
  `seq` (a gap) is handled as the document says (subscribe again) and fails the
  check, as does a heartbeat naming a `seq` the rebuilt book has not reached, a
  run with no update at all, or a book that never shows the orders placed over
  REST (and their removal once cancelled).

Prints one JSON summary line; exit status 0 when everything held, 1 otherwise.
"""

import argparse
import asyncio
import datetime
import json
import sys
import time
import uuid
import zlib
from decimal import Decimal

import websockets
from gpux_api import AuthenticatedClient, Client
from gpux_api.api.account import (
    add_capacity,
    cancel_order,
    cancel_order_by_client_id,
    get_order,
    list_open_orders,
    place_order,
)
from gpux_api.api.admin import deposit
from gpux_api.api.public import get_depth, get_forward_curve, get_market, list_markets, server_time, signup
from gpux_api.models import (
    AmountRequest,
    CancelResult,
    CapacityMoved,
    CapacityRequest,
    CashMoved,
    CreatedAccount,
    Curve,
    Depth,
    Error,
    Market,
    Markets,
    Order,
    Orders,
    OrderStatus,
    PlaceOrderRequest,
    Side,
    Time,
    TimeInForce,
)

MAX_SUBSCRIPTIONS = 32  # MARKET_DATA.md: at most 32 channels on one connection
WAIT_SECS = 15  # how long a REST step waits for the book to show it
# Our orders go to a slot whose gate stays open this long past the run's start.
SLOT_MARGIN_SECS = 3600


class CheckFailed(Exception):
    """The published API did not behave as its documents say."""


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def parsed(response, kind, what):
    """The generated client's parsed answer, which must be of model `kind`."""
    body = response.parsed
    if not isinstance(body, kind):
        raise CheckFailed(
            f"{what}: HTTP {int(response.status_code)} {response.content[:300]!r}, expected a {kind.__name__}"
        )
    return body


# ---------------------------------------------------------------- the book ---


def checksum_field(text):
    """MARKET_DATA.md, "Book checksum", step 2: the decimal point removed, leading zeros stripped."""
    return text.replace(".", "").lstrip("0") or "0"


def self_test():
    """The document's own examples ("Book checksum", and the session in "WebSocket")."""
    book = Book("example")
    book.load({"seq": 7, "bids": [], "asks": [["2.40", "4.0"], ["2.45", "3.0"]]})
    expect(book.checksum() == 1970309323, f"the session example's snapshot: {book.checksum()}")
    book.update({"seq": 8, "bids": [], "asks": [["2.40", "0.0"], ["2.45", "1.5"]]})
    expect(book.checksum() == 3502544871, f"the checksum example: {book.checksum()}")
    expect(Book("empty").checksum() == 0, "an empty book's checksum is 0")


class Book:
    """One book rebuilt from a `book.<market>.<slot>` channel's snapshot and updates."""

    def __init__(self, channel):
        self.channel = channel
        self.seq = None  # None: waiting for a snapshot
        self.bids = {}  # Decimal price -> (price text, quantity text), as the feed wrote them
        self.asks = {}

    def load(self, msg):
        self.bids, self.asks = {}, {}
        self._apply(msg)
        self.seq = msg["seq"]

    def update(self, msg):
        self._apply(msg)
        self.seq = msg["seq"]

    def _apply(self, msg):
        for side, levels in ((self.bids, msg["bids"]), (self.asks, msg["asks"])):
            for price, quantity in levels:
                # Levels are absolute; a zero quantity (at the lot's scale) removes the level.
                if Decimal(quantity) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = (price, quantity)

    def checksum(self):
        asks = [self.asks[p] for p in sorted(self.asks)[:10]]
        bids = [self.bids[p] for p in sorted(self.bids, reverse=True)[:10]]
        text = "".join(checksum_field(x) for level in asks + bids for x in level)
        return zlib.crc32(text.encode("ascii"))

    def quantity_at(self, side, price):
        levels = self.bids if side == "buy" else self.asks
        level = levels.get(Decimal(price))
        return Decimal(level[1]) if level else Decimal(0)


class Feed:
    """The WebSocket connection and the books it rebuilds, with the run's counts."""

    def __init__(self, url, channels):
        self.url = url
        self.books = {c: Book(c) for c in channels}
        self.updates = 0
        self.snapshots = 0
        self.heartbeats = 0
        self.gaps = []
        self.mismatches = []
        self.behind = []
        self.errors = []
        self.ws = None

    def failures(self):
        out = []
        if self.updates == 0:
            out.append("no book update arrived")
        out += [f"checksum mismatch: {m}" for m in self.mismatches[:5]]
        out += [f"gap: {g}" for g in self.gaps[:5]]
        out += [f"heartbeat ahead of the rebuilt book: {b}" for b in self.behind[:5]]
        out += [f"error message: {e}" for e in self.errors[:5]]
        return out

    async def subscribe(self, channels, op="subscribe"):
        await self.ws.send(json.dumps({"op": op, "channels": channels, "id": op}))

    async def resubscribe(self, book):
        """MARKET_DATA.md: a gap means fetching a fresh snapshot: subscribe again."""
        book.seq = None
        await self.subscribe([book.channel], "unsubscribe")
        await self.subscribe([book.channel])

    def verify(self, book, msg):
        got = book.checksum()
        if got != msg["checksum"]:
            self.mismatches.append(
                f"{book.channel} seq {msg['seq']}: rebuilt {got}, server {msg['checksum']}"
            )

    async def on_message(self, msg):
        kind = msg.get("type")
        book = self.books.get(msg.get("channel"))
        if kind == "snapshot" and book:
            book.load(msg)
            self.snapshots += 1
            self.verify(book, msg)
        elif kind == "update" and book:
            if book.seq is None:
                return  # resubscribing: the snapshot on its way replaces the book
            if msg["prev_seq"] != book.seq:
                self.gaps.append(
                    f"{book.channel}: had seq {book.seq}, update {msg['prev_seq']}->{msg['seq']}"
                )
                await self.resubscribe(book)
                return
            book.update(msg)
            self.updates += 1
            self.verify(book, msg)
        elif kind == "heartbeat":
            self.heartbeats += 1
            for entry in msg["books"]:
                b = self.books.get(entry["channel"])
                if b and b.seq is not None and b.seq < entry["seq"]:
                    self.behind.append(f"{b.channel}: rebuilt at seq {b.seq}, heartbeat {entry['seq']}")
                    await self.resubscribe(b)
        elif kind == "error":
            self.errors.append(json.dumps(msg))
        elif kind not in ("subscribed", "unsubscribed"):
            self.errors.append(f"unexpected message {json.dumps(msg)[:200]}")

    async def run(self, seconds, started):
        async with websockets.connect(self.url, max_size=1 << 20) as ws:
            self.ws = ws
            await self.subscribe(list(self.books))
            started.set()
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=left)
                except TimeoutError:
                    break
                await self.on_message(json.loads(raw))


# ---------------------------------------------------------------- REST -------


async def until(what, cond):
    """Waits (up to WAIT_SECS) for cond() to hold."""
    deadline = time.monotonic() + WAIT_SECS
    while not cond():
        if time.monotonic() > deadline:
            raise CheckFailed(f"not seen within {WAIT_SECS}s: {what}")
        await asyncio.sleep(0.05)


def slot_secs(slot):
    """Seconds since the epoch of a slot written `2026-12-07T09:00Z`."""
    return datetime.datetime.strptime(slot, "%Y-%m-%dT%H:%MZ").replace(tzinfo=datetime.UTC).timestamp()


async def pick_books(client):
    """The books to follow: the demo's open slots (forward curve rows) of every market,
    and first among them the one our orders go to: a slot of the first market that
    trades on both sides and whose gate stays open past the run (None while there
    is no such slot)."""
    now = parsed(await server_time.asyncio_detailed(client=client), Time, "server_time").ts_ns / 1e9
    markets = parsed(await list_markets.asyncio_detailed(client=client), Markets, "list_markets")
    expect(markets.markets, "list_markets: no markets")
    per_market = []
    for m in markets.markets:
        curve = parsed(
            await get_forward_curve.asyncio_detailed(m.market, client=client), Curve, "get_forward_curve"
        )
        per_market.append((m.market, [row for row in curve.slots if not row.closed]))
    # The first market's slot with both sides gets our orders; then the other slots, round robin.
    first_market, rows = per_market[0]
    later = [r for r in rows if slot_secs(r.slot) > now + SLOT_MARGIN_SECS]
    two_sided = [r for r in later if r.best_bid is not None and r.best_ask is not None]
    if not later:
        return None
    target = (first_market, (two_sided or later)[0].slot)
    books = [target]
    depth = max(len(r) for _, r in per_market)
    for i in range(depth):
        for market, rs in per_market:
            if i < len(rs) and (market, rs[i].slot) != target:
                books.append((market, rs[i].slot))
    return target, books[:MAX_SUBSCRIPTIONS]


async def wait_for_books(client):
    """pick_books, once the demo has quoted a slot an hour ahead (it starts quoting
    when it starts, so this is at once but for a server that has just started)."""
    deadline = time.monotonic() + WAIT_SECS
    while (picked := await pick_books(client)) is None:
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"no open slot an hour ahead on the first market's forward curve in {WAIT_SECS}s"
            )
        await asyncio.sleep(0.2)
    return picked


async def place_see_cancel(acct, feed, channel, req, cancel, what):
    """Places `req`, sees it open over REST and in the rebuilt book, cancels it with
    `cancel(order)`, and sees it cancelled over REST and gone from the book."""
    book = feed.books[channel]
    order = parsed(
        await place_order.asyncio_detailed(client=acct, body=req, idempotency_key=str(uuid.uuid4())),
        Order,
        f"place_order ({what})",
    )
    expect(order.status == OrderStatus.OPEN, f"{what}: placed with status {order.status}, not open")
    expect(Decimal(order.remaining) == Decimal(req.quantity), f"{what}: remaining {order.remaining}")
    got = parsed(await get_order.asyncio_detailed(order.order_id, client=acct), Order, "get_order")
    expect(got.status == OrderStatus.OPEN, f"{what}: get_order says {got.status}")
    open_ = parsed(await list_open_orders.asyncio_detailed(client=acct), Orders, "list_open_orders")
    expect(order.order_id in [o.order_id for o in open_.orders], f"{what}: not among the open orders")
    side = str(req.side)
    await until(
        f"{what} in the rebuilt book {channel}",
        lambda: (
            book.seq is not None
            and book.seq >= order.cmd_seq
            and book.quantity_at(side, req.price) >= Decimal(req.quantity)
        ),
    )
    # The REST depth shows it too (the book's levels are [price, quantity] pairs).
    depth = parsed(
        await get_depth.asyncio_detailed(req.market, req.slot, client=acct, depth=1000), Depth, "get_depth"
    )
    levels = depth.bids if side == "buy" else depth.asks
    expect(all(len(level) == 2 for level in levels), f"get_depth: a level that is not a pair: {levels}")
    expect(
        any(Decimal(p) == Decimal(req.price) and Decimal(q) >= Decimal(req.quantity) for p, q in levels),
        f"{what}: not in GET depth (seq {depth.seq})",
    )
    before = book.quantity_at(side, req.price)
    result = parsed(await cancel(order), CancelResult, f"cancel ({what})")
    expect(result.status == OrderStatus.CANCELLED, f"{what}: cancel answered status {result.status}")
    got = parsed(await get_order.asyncio_detailed(order.order_id, client=acct), Order, "get_order")
    expect(got.status == OrderStatus.CANCELLED, f"{what}: after cancel, get_order says {got.status}")
    open_ = parsed(await list_open_orders.asyncio_detailed(client=acct), Orders, "list_open_orders")
    expect(order.order_id not in [o.order_id for o in open_.orders], f"{what}: still among the open orders")
    await until(
        f"{what} gone from the rebuilt book {channel}",
        lambda: (
            book.seq is not None
            and book.seq >= result.cmd_seq
            and book.quantity_at(side, req.price) <= before - Decimal(req.quantity)
        ),
    )
    return order.order_id


async def trade(api, admin_key, feed, target):
    """The REST half: returns what it did, for the summary."""
    market, slot = target
    channel = f"book.{market}.{slot}"
    public = Client(base_url=api, raise_on_unexpected_status=True, timeout=10)
    spec = parsed(await get_market.asyncio_detailed(market, client=public), Market, "get_market")
    created = parsed(await signup.asyncio_detailed(client=public), CreatedAccount, "signup")
    expect(isinstance(created.api_key, str) and created.api_key, "signup: no api_key")
    acct = AuthenticatedClient(
        base_url=api, token=created.api_key, raise_on_unexpected_status=True, timeout=10
    )
    done = {"account": created.account, "market": market, "slot": slot}

    lot = spec.lot_size
    parsed(
        await add_capacity.asyncio_detailed(
            client=acct, body=CapacityRequest(market=market, from_slot=slot, to_slot=slot, quantity=lot)
        ),
        CapacityMoved,
        "add_capacity",
    )
    # An ask far above the demo's prices (it never trades), post-only to be sure.
    ask = str(Decimal(spec.max_price) - Decimal(spec.tick_size) * 7)
    sell = PlaceOrderRequest(
        market=market,
        slot=slot,
        side=Side.SELL,
        price=ask,
        quantity=lot,
        post_only=True,
        time_in_force=TimeInForce.GTC,
        client_order_id=f"sell-{uuid.uuid4().hex[:12]}",
    )
    done["sell_order"] = await place_see_cancel(
        acct,
        feed,
        channel,
        sell,
        lambda o: cancel_order.asyncio_detailed(o.order_id, client=acct),
        "the limit sell",
    )

    # A refusal has the documented Error shape: a price off the market's tick.
    off_tick = str(Decimal(ask) + Decimal(spec.tick_size) / 2)
    bad = PlaceOrderRequest(market=market, slot=slot, side=Side.SELL, price=off_tick, quantity=lot)
    r = await place_order.asyncio_detailed(client=acct, body=bad)
    err = parsed(r, Error, "place_order (off tick)")
    expect(
        int(r.status_code) == 400 and err.code == "off_tick_price",
        f"off-tick order: {r.status_code} {err.code}",
    )
    done["refused"] = err.code

    if admin_key:
        admin = AuthenticatedClient(
            base_url=api, token=admin_key, raise_on_unexpected_status=True, timeout=10
        )
        parsed(
            await deposit.asyncio_detailed(created.account, client=admin, body=AmountRequest(amount="100")),
            CashMoved,
            "deposit",
        )
        bid = str(Decimal(spec.min_price) + Decimal(spec.tick_size) * 3)
        cid = f"buy-{uuid.uuid4().hex[:12]}"
        buy = PlaceOrderRequest(
            market=market,
            slot=slot,
            side=Side.BUY,
            price=bid,
            quantity=lot,
            post_only=True,
            time_in_force=TimeInForce.GTC,
            client_order_id=cid,
        )
        done["buy_order"] = await place_see_cancel(
            acct,
            feed,
            channel,
            buy,
            lambda o: cancel_order_by_client_id.asyncio_detailed(cid, client=acct),
            "the limit buy",
        )
    return done


# ---------------------------------------------------------------- main -------


async def main(args):
    self_test()
    admin_key = None
    if args.admin_key_file:
        with open(args.admin_key_file) as f:
            admin_key = f.read().strip()
    api = args.api.rstrip("/")
    public = Client(base_url=api, raise_on_unexpected_status=True, timeout=10)
    try:
        target, books = await wait_for_books(public)
    except CheckFailed as e:
        print(json.dumps({"ok": False, "failures": [f"REST: {e}"]}))
        return 1
    ws_url = "ws" + api[len("http") :] + "/v1/ws"
    feed = Feed(ws_url, [f"book.{m}.{s}" for m, s in books])
    started = asyncio.Event()
    t0 = time.monotonic()
    ws_task = asyncio.create_task(feed.run(args.seconds, started))
    summary = {"books": len(books)}
    failures = []
    await asyncio.wait({ws_task, asyncio.create_task(started.wait())}, return_when=asyncio.FIRST_COMPLETED)
    try:
        if started.is_set():
            summary["rest"] = await trade(api, admin_key, feed, target)
    except CheckFailed as e:
        failures.append(f"REST: {e}")
    except Exception as e:  # the generated client's own: an undocumented status, a body unlike its model
        failures.append(f"REST: {type(e).__name__}: {e}")
    try:
        await ws_task
    except Exception as e:  # the connection failed or closed early
        failures.append(f"WebSocket: {type(e).__name__}: {e}")
    failures += feed.failures()
    summary.update(
        seconds=round(time.monotonic() - t0, 1),
        updates=feed.updates,
        snapshots=feed.snapshots,
        heartbeats=feed.heartbeats,
        checksums_verified=feed.updates + feed.snapshots,
        gaps=len(feed.gaps),
        mismatches=len(feed.mismatches),
        ok=not failures,
        failures=failures,
    )
    print(json.dumps(summary))
    return 0 if not failures else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--api", required=True, help="the exchange, http://HOST:PORT")
    p.add_argument("--admin-key-file", help="the admin key, to deposit USD (else only the self-serve steps)")
    p.add_argument("--seconds", type=float, default=60, help="how long to follow the books")
    sys.exit(asyncio.run(main(p.parse_args())))
