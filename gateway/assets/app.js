// gpux explorer, provider dashboard and demander console.
//
// A client of the public API only: REST under /v1 and the /v1/ws WebSocket
// (docs/MARKET_DATA.md), on the origin that served this page. No build step, no
// framework; charts by TradingView's lightweight-charts (window.LightweightCharts).
'use strict';

(function () {
  const LC = window.LightweightCharts;
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = 'gpux.api_key';
  const TRADES_SHOWN = 50;
  const RECONNECT_MAX_MS = 10000;
  const REFRESH_MS = 10000;

  // ───────────────────────── helpers ─────────────────────────

  /** Shows an API error's message (or any failure) in the banner. */
  function showError(msg) {
    const el = $('error');
    el.textContent = msg;
    el.hidden = false;
  }
  function clearError() {
    $('error').hidden = true;
    $('error').textContent = '';
  }

  /** An API call: JSON in and out; a non-2xx answer throws `code: message`. */
  async function api(path, opts = {}) {
    const headers = { Accept: 'application/json' };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (opts.auth) {
      const key = sessionStorage.getItem(KEY_STORE);
      if (!key) throw new Error('no API key: enter one above');
      headers.Authorization = 'Bearer ' + key;
    }
    let resp;
    try {
      resp = await fetch(path, {
        method: opts.method || 'GET',
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    } catch (e) {
      throw new Error('the gateway cannot be reached (' + e.message + ')');
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    if (!resp.ok) {
      const msg = json && json.message
        ? json.code + ': ' + json.message
        : 'HTTP ' + resp.status + (text ? ': ' + text.slice(0, 200) : '');
      const err = new Error(msg);
      err.code = json && json.code;
      throw err;
    }
    return json;
  }

  /** Runs an async action; its failure is shown, never swallowed. */
  function guard(fn) {
    return async (...args) => {
      try { return await fn(...args); } catch (e) { showError(e.message); }
    };
  }

  const num = (s) => (s === null || s === undefined ? null : Number(s));
  const slotSecs = (slot) => Date.parse(slot) / 1000;
  const slotName = (date) => date.toISOString().slice(0, 13) + ':00Z';
  const hourLabel = (slot) => slot.slice(5, 10) + ' ' + slot.slice(11, 16);
  const fmt = (v) => (v === null || v === undefined ? '—' : String(v));
  const money = (x) => '$' + x.toFixed(2);
  /** The hour `n` hours after the one holding `nowMs` (the exchange's clock). */
  function nextHours(n, nowMs) {
    const d = new Date(nowMs);
    d.setUTCMinutes(0, 0, 0);
    d.setUTCHours(d.getUTCHours() + n);
    return slotName(d);
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function row(cells, cls) {
    const tr = el('tr');
    if (cls) tr.className = cls;
    for (const c of cells) {
      if (c instanceof Node) { const td = el('td'); td.appendChild(c); tr.appendChild(td); }
      else tr.appendChild(el('td', fmt(c)));
    }
    return tr;
  }
  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }
  function card(k, v, pending) {
    const c = el('div', undefined, 'card' + (pending ? ' pending' : ''));
    c.appendChild(el('div', v, 'v'));
    c.appendChild(el('div', k, 'k'));
    return c;
  }
  function throttle(fn, ms) {
    let timer = null;
    return () => {
      if (timer) return;
      timer = setTimeout(() => { timer = null; fn(); }, ms);
    };
  }

  // ───────────────────────── charts ─────────────────────────

  const dark = {
    layout: { background: { color: '#171d24' }, textColor: '#8894a2', fontFamily: 'system-ui, sans-serif' },
    grid: { vertLines: { color: '#222a33' }, horzLines: { color: '#222a33' } },
    autoSize: true,
  };
  const charts = {};
  function makeCharts() {
    charts.curve = LC.createChart($('curve-chart'), {
      ...dark, timeScale: { timeVisible: true, secondsVisible: false },
    });
    charts.curveBid = charts.curve.addSeries(LC.LineSeries, { color: '#26a69a', lineWidth: 2, title: 'bid' });
    charts.curveAsk = charts.curve.addSeries(LC.LineSeries, { color: '#ef5350', lineWidth: 2, title: 'ask' });
    charts.curveLast = charts.curve.addSeries(LC.LineSeries, {
      color: '#4f8cff', lineWidth: 1, lineStyle: 2, title: 'last',
    });
    charts.curve.subscribeClick((p) => {
      if (p.time === undefined) return;
      const slot = slotName(new Date(p.time * 1000));
      if (S.curve.has(slot)) guard(selectSlot)(slot);
    });
    charts.depth = LC.createOptionsChart($('depth-chart'), { ...dark, localization: { precision: 2 } });
    charts.depthBid = charts.depth.addSeries(LC.AreaSeries, {
      lineColor: '#26a69a', topColor: 'rgba(38,166,154,.4)', bottomColor: 'rgba(38,166,154,.05)', title: 'bids', lineType: 1,
    });
    charts.depthAsk = charts.depth.addSeries(LC.AreaSeries, {
      lineColor: '#ef5350', topColor: 'rgba(239,83,80,.4)', bottomColor: 'rgba(239,83,80,.05)', title: 'asks', lineType: 1,
    });
    charts.candles = LC.createChart($('candle-chart'), {
      ...dark, timeScale: { timeVisible: true, secondsVisible: false },
    });
    charts.candleSeries = charts.candles.addSeries(LC.CandlestickSeries, {
      upColor: '#26a69a', downColor: '#ef5350', wickUpColor: '#26a69a', wickDownColor: '#ef5350', borderVisible: false,
    });
    charts.volume = charts.candles.addSeries(LC.HistogramSeries, {
      color: 'rgba(79,140,255,.5)', priceScaleId: 'vol', priceFormat: { type: 'volume' },
    });
    charts.candles.priceScale('vol').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    // Providers by reliability: a bar per tenth, at its lower bound.
    charts.rel = LC.createOptionsChart($('rel-chart'), { ...dark, localization: { precision: 1 } });
    charts.relBars = charts.rel.addSeries(LC.HistogramSeries, {
      color: '#4f8cff', lastValueVisible: false, priceLineVisible: false,
      priceFormat: { type: 'price', precision: 0, minMove: 1 },
    });
  }

  // ───────────────────────── explorer state ─────────────────────────

  const S = {
    markets: [],          // specs from /v1/markets
    summaries: new Map(), // market -> curve rows
    market: null,
    slot: null,
    curve: new Map(),     // slot -> row (the chosen market)
    book: { seq: null, bids: new Map(), asks: new Map(), resyncing: false },
    trades: new Map(),    // trade id -> trade (the chosen slot)
    oldestTrade: null,
    interval: '1m',
  };

  function renderMarkets() {
    const rows = S.markets.map((m) => {
      const slots = S.summaries.get(m.market) || [];
      const next = slots[0];
      const volume = slots.reduce((a, r) => a + Number(r.volume), 0);
      const tr = row([
        m.market, slots.length, next ? hourLabel(next.slot) : null,
        next && next.best_bid, next && next.best_ask, next && next.last_price, volume.toFixed(1),
      ], m.market === S.market ? 'selected' : '');
      tr.dataset.market = m.market;
      tr.addEventListener('click', () => selectMarket(m.market));
      return tr;
    });
    fill($('markets').tBodies[0], rows);
  }

  function renderCurve() {
    const rows = [...S.curve.values()].sort((a, b) => slotSecs(a.slot) - slotSecs(b.slot));
    const line = (field) => rows.map((r) => (r[field] === null
      ? { time: slotSecs(r.slot) }
      : { time: slotSecs(r.slot), value: Number(r[field]) }));
    charts.curveBid.setData(line('best_bid'));
    charts.curveAsk.setData(line('best_ask'));
    charts.curveLast.setData(line('last_price'));
    $('curve-market').textContent = S.market || '';
    const sel = $('slot-select');
    const keep = S.slot;
    sel.replaceChildren(...rows.map((r) => {
      const o = el('option', hourLabel(r.slot) + ' UTC');
      o.value = r.slot;
      return o;
    }));
    if (keep && !S.curve.has(keep)) {
      const o = el('option', hourLabel(keep) + ' UTC (closed)');
      o.value = keep;
      sel.appendChild(o);
    }
    if (keep) sel.value = keep;
    S.summaries.set(S.market, rows);
    renderMarkets();
  }

  function renderBook() {
    const asks = [...S.book.asks.entries()].sort((a, b) => a[0] - b[0]);
    const bids = [...S.book.bids.entries()].sort((a, b) => b[0] - a[0]);
    const cum = (levels) => {
      let t = 0;
      return levels.map(([p, q]) => { t += q.n; return [p, q, t]; });
    };
    const askRows = cum(asks).slice(0, 15).reverse()
      .map(([, q, t]) => row([q.price, q.qty, t.toFixed(1)]));
    const bidRows = cum(bids).slice(0, 15).map(([, q, t]) => row([q.price, q.qty, t.toFixed(1)]));
    fill($('book-asks'), askRows);
    fill($('book-bids'), bidRows);
    $('book-seq').textContent = S.book.seq === null ? '' : 'seq ' + S.book.seq;
    // Depth: cumulative GPUs against price, ascending price for the chart.
    charts.depthAsk.setData(cum(asks).map(([p, , t]) => ({ time: p, value: t })));
    charts.depthBid.setData(cum(bids).reverse().map(([p, , t]) => ({ time: p, value: t })));
    charts.depth.timeScale().fitContent();
  }

  function setLevels(map, levels) {
    for (const [price, qty] of levels) {
      const n = Number(qty);
      if (n === 0) map.delete(Number(price));
      else map.set(Number(price), { price, qty, n });
    }
  }

  function renderTrades() {
    const list = [...S.trades.values()].sort((a, b) => b.trade - a.trade).slice(0, 200);
    fill($('trades').tBodies[0], list.map((t) => {
      const tr = row([new Date(t.ts_ns / 1e6).toISOString().slice(11, 19), t.price, t.quantity, t.taker_side]);
      tr.cells[3].className = t.taker_side;
      return tr;
    }));
  }
  function addTrades(list) {
    for (const t of list) S.trades.set(t.trade, t);
    renderTrades();
  }

  function renderTicker(t) {
    $('ticker').textContent = 'last ' + fmt(t.last_price) + ' · 24h vol ' + fmt(t.volume_24h)
      + ' · 24h range ' + fmt(t.low_24h) + '–' + fmt(t.high_24h);
  }

  const slotPath = () => '/v1/markets/' + encodeURIComponent(S.market) + '/slots/' + S.slot;

  const loadCandles = guard(async () => {
    if (!S.market || !S.slot) return;
    const c = await api(slotPath() + '/candles?interval=' + S.interval + '&limit=500');
    charts.candleSeries.setData(c.candles.map((k) => ({
      time: k.open_ns / 1e9, open: Number(k.open), high: Number(k.high), low: Number(k.low), close: Number(k.close),
    })));
    charts.volume.setData(c.candles.map((k) => ({ time: k.open_ns / 1e9, value: Number(k.volume) })));
    charts.candles.timeScale().fitContent();
  });
  const refreshCandles = throttle(loadCandles, 2000);

  const loadOlderTrades = guard(async () => {
    if (!S.market || !S.slot) return;
    const q = S.oldestTrade ? '&before=' + S.oldestTrade : '';
    const r = await api(slotPath() + '/trades?limit=' + TRADES_SHOWN + q);
    if (r.trades.length) S.oldestTrade = r.trades[0].trade;
    $('trades-more').disabled = r.next_before === null || r.next_before === undefined;
    addTrades(r.trades);
  });

  /** Stops following the chosen hour's channels. */
  function leaveSlot() {
    if (S.market && S.slot) {
      for (const k of ['book', 'trades', 'ticker']) ws.unsubscribe(k + '.' + S.market + '.' + S.slot);
    }
  }

  async function selectSlot(slot) {
    leaveSlot();
    S.slot = slot;
    $('slot-select').value = slot;
    S.book = { seq: null, bids: new Map(), asks: new Map(), resyncing: false };
    S.trades = new Map();
    S.oldestTrade = null;
    renderBook();
    renderTrades();
    for (const k of ['book', 'trades', 'ticker']) ws.subscribe(k + '.' + S.market + '.' + slot);
    await loadOlderTrades();
    await loadCandles();
  }

  const selectMarket = guard(async (market) => {
    const c = await api('/v1/markets/' + encodeURIComponent(market) + '/slots');
    leaveSlot();
    if (S.market && S.market !== market) ws.unsubscribe('curve.' + S.market);
    S.market = market;
    S.curve = new Map(c.slots.map((r) => [r.slot, r]));
    S.slot = null;
    ws.subscribe('curve.' + market);
    renderCurve();
    charts.curve.timeScale().fitContent();
    const rows = c.slots;
    const pick = rows.find((r) => r.best_bid && r.best_ask && r.last_price)
      || rows.find((r) => r.best_bid || r.best_ask) || rows[0];
    if (pick) await selectSlot(pick.slot);
  });

  const loadMarkets = guard(async () => {
    const m = await api('/v1/markets');
    S.markets = m.markets;
    for (const sel of document.querySelectorAll('.market-select')) {
      const keep = sel.value;
      sel.replaceChildren(...S.markets.map((x) => { const o = el('option', x.market); o.value = x.market; return o; }));
      if (keep) sel.value = keep;
    }
    await Promise.all(S.markets.map(async (x) => {
      const c = await api('/v1/markets/' + encodeURIComponent(x.market) + '/slots');
      if (x.market !== S.market) S.summaries.set(x.market, c.slots);
    }));
    renderMarkets();
    if (!S.market && S.markets.length) await selectMarket(busiestMarket());
  });

  /** The market a newcomer sees first: the most GPU-hours traded over its open
   * slots, then the most slots quoted, then the first listed. */
  function busiestMarket() {
    const score = (m) => {
      const slots = S.summaries.get(m.market) || [];
      return [slots.reduce((a, r) => a + Number(r.volume), 0),
        slots.filter((r) => r.best_bid || r.best_ask).length];
    };
    let best = S.markets[0];
    let top = score(best);
    for (const m of S.markets.slice(1)) {
      const s = score(m);
      if (s[0] > top[0] || (s[0] === top[0] && s[1] > top[1])) { best = m; top = s; }
    }
    return best.market;
  }

  /** The reliability histogram: bars, and the same counts as a table. */
  function renderHistogram(s) {
    const buckets = s.reliability_histogram;
    charts.relBars.setData(buckets.map((b) => ({ time: Number(b.from), value: b.providers })));
    charts.rel.timeScale().fitContent();
    const rated = buckets.reduce((a, b) => a + b.providers, 0);
    const n = (k, what) => k + ' ' + what + (k === 1 ? '' : 's');
    $('rel-summary').textContent = n(rated, 'provider') + ' with a reliability, ' + s.providers_new
      + ' new (nothing settled in 30 days).';
    fill($('rel-table').tBodies[0], buckets.map((b, i) => row([
      b.from + (i === buckets.length - 1 ? '–' + b.to : '–<' + b.to), String(b.providers),
    ])));
  }

  const loadStats = guard(async () => {
    const s = await api('/v1/stats');
    $('stats').replaceChildren(
      card('GPU-hours listed ahead', s.gpu_hours_listed),
      card('GPU-hours sold ahead', s.gpu_hours_sold),
      card('GPU-hours scheduled for delivery', s.gpu_hours_scheduled),
      card('GPU-hours delivered', s.gpu_hours_delivered),
      card('24 h notional (USD)', s.notional_24h),
      card('active providers', String(s.active_providers)),
      card('markets', String(s.markets)),
    );
    $('stats').dataset.delivered = s.gpu_hours_delivered;
    renderHistogram(s);
    fill($('providers').tBodies[0], s.providers.map((p) => {
      const tr = row([
        String(p.account), p.gpu_hours_listed, p.gpu_hours_scheduled,
        p.reliability, p.gpu_hours_delivered_30d, String(p.disputes_lost_30d),
      ]);
      tr.dataset.account = String(p.account);
      return tr;
    }));
  });

  // ───────────────────────── WebSocket ─────────────────────────

  const ws = {
    sock: null,
    channels: new Set(),
    backoff: 500,
    status(s) {
      const e = $('status');
      e.textContent = s;
      e.className = 'status ' + s;
    },
    send(o) {
      if (this.sock && this.sock.readyState === WebSocket.OPEN) this.sock.send(JSON.stringify(o));
    },
    subscribe(ch) {
      if (this.channels.has(ch)) return;
      this.channels.add(ch);
      this.send({ op: 'subscribe', channel: ch });
    },
    unsubscribe(ch) {
      if (!this.channels.delete(ch)) return;
      this.send({ op: 'unsubscribe', channel: ch });
    },
    connect() {
      const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/ws';
      const sock = new WebSocket(url);
      this.sock = sock;
      sock.onopen = () => {
        this.backoff = 500;
        // Behind until the book's fresh snapshot arrives (then live).
        this.status([...this.channels].some((c) => c.startsWith('book.')) ? 'behind' : 'live');
        for (const ch of this.channels) this.send({ op: 'subscribe', channel: ch });
      };
      sock.onmessage = (ev) => onMessage(JSON.parse(ev.data));
      sock.onclose = () => {
        if (this.sock !== sock) return;
        this.reconnects += 1;
        this.status('reconnecting');
        S.book.seq = null;
        S.book.resyncing = true;
        setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, RECONNECT_MAX_MS);
      };
    },
    resyncs: 0,
    reconnects: 0,
    /** A gap in a book's seq: fresh snapshot by subscribing again. */
    resync(ch) {
      this.resyncs += 1;
      this.status('behind');
      S.book.resyncing = true;
      this.send({ op: 'unsubscribe', channel: ch });
      this.send({ op: 'subscribe', channel: ch });
    },
  };

  const bookChannel = () => 'book.' + S.market + '.' + S.slot;
  const ours = (m) => m.market === S.market && m.slot === S.slot;
  const refreshCurve = throttle(renderCurve, 250);

  function onMessage(m) {
    if (m.type === 'error') { showError('WebSocket ' + m.code + ': ' + m.message); return; }
    const kind = m.channel ? m.channel.split('.')[0] : '';
    if (kind === 'book' && ours(m)) onBook(m);
    else if (kind === 'trades' && ours(m)) { addTrades(m.trades); refreshCandles(); }
    else if (kind === 'ticker' && ours(m)) renderTicker(m);
    else if (kind === 'curve' && m.market === S.market) {
      if (m.type === 'snapshot') S.curve = new Map();
      for (const r of m.slots) {
        if (r.closed) S.curve.delete(r.slot); else S.curve.set(r.slot, r);
      }
      refreshCurve();
    }
  }

  function onBook(m) {
    if (m.type === 'snapshot') {
      S.book.bids = new Map();
      S.book.asks = new Map();
      S.book.resyncing = false;
      ws.status('live');
    } else if (S.book.resyncing) {
      return; // waiting for the fresh snapshot
    } else if (m.prev_seq !== S.book.seq) {
      ws.resync(bookChannel());
      return;
    }
    S.book.seq = m.seq;
    setLevels(S.book.bids, m.bids);
    setLevels(S.book.asks, m.asks);
    renderBook();
  }

  // ───────────────────────── account pages ─────────────────────────

  // typed: what was typed into a schedule row's quantity box, kept across redraws.
  const A = { account: null, nowS: null, typed: new Map() };

  /** Adds decimal strings exactly ("1.5" + "2.25" = "3.75"). */
  function decSum(list) {
    let scale = 0;
    for (const x of list) { const i = x.indexOf('.'); if (i >= 0) scale = Math.max(scale, x.length - i - 1); }
    let total = 0n;
    for (const x of list) { const [w, f = ''] = x.split('.'); total += BigInt(w + f.padEnd(scale, '0')); }
    const t = total.toString().padStart(scale + 1, '0');
    return scale ? t.slice(0, -scale) + '.' + t.slice(-scale) : t;
  }
  const when = (secs) => new Date(secs * 1000).toISOString().slice(5, 16).replace('T', ' ');

  const loadAccount = guard(async () => {
    if (!sessionStorage.getItem(KEY_STORE)) { $('account-id').textContent = '—'; return; }
    const b = await api('/v1/balances', { auth: true });
    A.account = b.account;
    $('account-id').textContent = String(b.account);
    fill($('p-positions').tBodies[0], b.gpus.map((g) => row([g.market, hourLabel(g.slot), g.available, g.held, g.inventory, g.kept])));
    // Upcoming hours held: bought GPUs (not the provider's own inventory) in hours not yet fixed.
    const held = b.gpus.filter((g) => Number(g.available) + Number(g.held) - Number(g.inventory) > 0);
    fill($('d-upcoming').tBodies[0], held.map((g) => {
      const tr = row([g.market, hourLabel(g.slot) + ' UTC',
        (Number(g.available) + Number(g.held) - Number(g.inventory)).toString()]);
      tr.dataset.market = g.market;
      tr.dataset.slot = g.slot;
      return tr;
    }));
    // The exchange's clock (a demo's may run fast): which hours are to come, which windows open.
    A.nowS = (await api('/v1/time')).ts_ns / 1e9;
    defaultHours(A.nowS * 1000);
    const [entries] = await Promise.all([loadSchedule(), loadOrders(), loadSold(), loadRecord()]);
    renderMoney(b.usd, entries);
  });

  /** USD cards: what is free, held, in escrow and pending; paid and refunded on settled deliveries. */
  function renderMoney(usd, entries) {
    const settled = (role) => entries.filter((e) => e.settlement && e.role !== role);
    $('p-usd').replaceChildren(
      card('USD available', usd.available), card('USD held (open buys)', usd.held),
      card('pending: sold, paid on delivery', usd.pending),
      card('paid for settled deliveries', decSum(settled('holder').map((e) => e.settlement.paid))),
    );
    $('d-usd').replaceChildren(
      card('USD available', usd.available), card('USD held (open buys)', usd.held),
      card('escrow: paid, awaiting delivery', usd.escrow),
      card('refunded on settled deliveries', decSum(settled('provider').map((e) => e.settlement.refunded))),
    );
    for (const [id, v] of [['p-usd', usd.pending], ['d-usd', usd.escrow]]) $(id).dataset.held = v;
  }

  /** The provider's delivery record (last 30 days) as the explorer shows it. */
  async function loadRecord() {
    const r = await api('/v1/providers/' + A.account);
    $('p-record').replaceChildren(
      card('reliability (30 days)', r.reliability), card('GPU-hours due (30 days)', r.obligated),
      card('GPU-hours delivered (30 days)', r.delivered), card('disputes lost (30 days)', String(r.disputes_lost)),
    );
    $('p-record').dataset.reliability = r.reliability;
  }

  /** Delivered ÷ due over this account's settled entries (kept schedule), cumulative by hour. */
  function renderReliability(entries) {
    const byHour = new Map();
    for (const e of entries) {
      if (!e.settlement || e.role === 'holder') continue;
      const t = slotSecs(e.slot);
      const [due, got] = byHour.get(t) || [0, 0];
      byHour.set(t, [due + Number(e.quantity), got + Number(e.settlement.delivered)]);
    }
    let due = 0; let got = 0;
    const points = [...byHour.entries()].sort((a, b) => a[0] - b[0]).map(([t, [d, g]]) => {
      due += d; got += g;
      return { time: t, value: due > 0 ? got / due : 1 };
    });
    if (!charts.relOverTime) {
      charts.relOverTime = LC.createChart($('p-reliability-chart'), {
        ...dark, timeScale: { timeVisible: true, secondsVisible: false },
      });
      charts.relLine = charts.relOverTime.addSeries(LC.LineSeries, {
        color: '#26a69a', lineWidth: 2, title: 'delivered ÷ due', priceFormat: { type: 'price', precision: 4, minMove: 0.0001 },
      });
    }
    charts.relLine.setData(points);
    charts.relOverTime.timeScale().fitContent();
    $('p-reliability-empty').hidden = points.length > 0;
  }

  async function loadOrders() {
    const o = await api('/v1/orders', { auth: true });
    const cancel = (id) => {
      const b = el('button', 'Cancel', 'cancel');
      b.type = 'button';
      b.addEventListener('click', guard(async () => {
        await api('/v1/orders/' + id, { method: 'DELETE', auth: true });
        await loadAccount();
      }));
      return b;
    };
    const amend = (order) => {
      const b = el('button', 'Amend', 'amend');
      b.type = 'button';
      b.addEventListener('click', guard(async () => {
        const price = prompt('New price (USD per GPU-hour)', order.price);
        if (price === null) return;
        const quantity = prompt('New quantity (GPUs)', order.remaining);
        if (quantity === null) return;
        await api('/v1/orders/' + order.order_id, { method: 'PATCH', auth: true, body: { price, quantity } });
        await loadAccount();
      }));
      return b;
    };
    const actions = (order) => { const s = el('span'); s.append(amend(order), ' ', cancel(order.order_id)); return s; };
    const tagged = (tr, x) => { tr.dataset.order = String(x.order_id); return tr; };
    fill($('p-orders').tBodies[0], o.orders.filter((x) => x.side === 'sell')
      .map((x) => tagged(row([String(x.order_id), x.market, hourLabel(x.slot), x.price, x.remaining, actions(x)]), x)));
    fill($('d-orders').tBodies[0], o.orders
      .map((x) => tagged(row([String(x.order_id), x.market, hourLabel(x.slot), x.side, x.price, x.remaining, actions(x)]), x)));
  }

  /** Sells in hours still to come (by the exchange's clock), from the latest page of fills. */
  async function loadSold() {
    const f = await api('/v1/fills?limit=100', { auth: true });
    const now = A.nowS;
    fill($('p-sold').tBodies[0], f.fills.filter((x) => x.side === 'sell' && slotSecs(x.slot) > now)
      .map((x) => {
        const tr = row([String(x.trade_id), x.market, hourLabel(x.slot), x.price, x.quantity]);
        tr.dataset.market = x.market;
        tr.dataset.slot = x.slot;
        return tr;
      }));
  }

  /** A quantity box and an action button for one schedule entry. */
  function entryAction(e, kind) {
    const key = kind + e.entry;
    const input = el('input', undefined, 'qty');
    input.inputMode = 'decimal';
    input.setAttribute('aria-label', (kind === 'report' ? 'GPUs delivered' : 'GPUs received') + ', entry ' + e.entry);
    input.value = A.typed.has(key) ? A.typed.get(key) : (kind === 'report' ? e.reported || e.quantity : '');
    if (kind === 'dispute') input.placeholder = 'received';
    input.addEventListener('input', () => A.typed.set(key, input.value));
    const b = el('button', kind === 'report' ? 'Report delivered' : 'Dispute', kind);
    b.type = 'button';
    b.addEventListener('click', guard(async () => {
      clearError();
      const qty = input.value.trim();
      const body = kind === 'report' ? { delivered: qty } : { received: qty };
      const r = await api('/v1/deliveries/' + e.entry + '/' + kind, { method: 'POST', auth: true, body });
      A.typed.delete(key);
      $(kind === 'report' ? 'p-schedule-result' : 'd-schedule-result').textContent = 'Entry ' + e.entry + ': '
        + (kind === 'report' ? 'reported ' + qty + ' GPUs delivered' : 'disputed, ' + qty + ' GPUs received')
        + ' (' + r.event.type + ', cmd_seq ' + r.cmd_seq + ')';
      await loadAccount();
    }));
    const span = el('span', undefined, 'act');
    span.append(input, ' ', b);
    return span;
  }

  /** What settled (or what was said so far). */
  function settlementText(e) {
    const s = e.settlement;
    if (s) {
      return s.delivered + ' delivered (' + s.basis + (s.dispute_lost ? ', dispute lost' : '') + '), paid $'
        + s.paid + ', refunded $' + s.refunded;
    }
    if (e.disputed) return 'reported ' + e.reported + ', holder received ' + e.disputed + ': awaiting resolution';
    if (e.reported) return 'reported ' + e.reported;
    return '—';
  }

  function scheduleRow(e, cells) {
    const st = el('span', e.state, 'state ' + e.state);
    const tr = row(cells.concat([st, settlementText(e)]));
    tr.dataset.entry = String(e.entry);
    tr.dataset.state = e.state;
    return tr;
  }

  /** The account's delivery entries with their state and settlement; its actions. */
  async function loadSchedule() {
    const s = await api('/v1/accounts/' + A.account + '/schedule', { auth: true });
    const open = (e, until) => e.state !== 'settled' && e.state !== 'disputed'
      && A.nowS >= slotSecs(e.slot) && A.nowS <= until;
    const waiting = (e) => (A.nowS < slotSecs(e.slot) ? 'from ' + hourLabel(e.slot) : '—');
    const newest = [...s.entries].reverse();
    // One table per side: entries where this account is not only the other party
    // (`other`: its role and id field), the deadline that closes this side's
    // action, and the action itself.
    const table = (id, other, until, action) => fill($(id).tBodies[0],
      newest.filter((e) => e.role !== other).map((e) => {
        const tr = scheduleRow(e, [String(e.entry), e.market, hourLabel(e.slot), String(e[other]), e.quantity]);
        tr.appendChild(el('td', when(e[until])));
        const td = el('td');
        if (open(e, e[until])) td.appendChild(entryAction(e, action)); else td.textContent = waiting(e);
        tr.appendChild(td);
        return tr;
      }));
    table('p-schedule', 'holder', 'report_until', 'report');
    table('d-schedule', 'provider', 'dispute_until', 'dispute');
    renderReliability(s.entries);
    return s.entries;
  }

  function capacity(add) {
    return guard(async (ev) => {
      if (ev) ev.preventDefault();
      clearError();
      const body = {
        market: $('cap-market').value, from_slot: $('cap-from').value.trim(),
        to_slot: $('cap-to').value.trim(), quantity: $('cap-qty').value.trim(),
      };
      const r = await api('/v1/capacity/' + (add ? 'add' : 'remove'), { method: 'POST', auth: true, body });
      $('cap-result').textContent = (add ? 'Added ' : 'Removed ') + r.quantity + ' GPUs in ' + r.market
        + ', every hour ' + r.from_slot + ' to ' + r.to_slot + ' (cmd_seq ' + r.cmd_seq + ')';
      await loadAccount();
    });
  }

  const placeAsk = guard(async (ev) => {
    ev.preventDefault();
    clearError();
    const r = await api('/v1/orders', {
      method: 'POST', auth: true,
      body: {
        market: $('ask-market').value, slot: $('ask-slot').value.trim(), side: 'sell',
        price: $('ask-price').value.trim(), quantity: $('ask-qty').value.trim(),
      },
    });
    $('ask-result').textContent = 'Order ' + r.order_id + ': ' + r.status + ', ' + r.remaining + ' GPUs resting';
    await loadAccount();
  });

  // ───────────────────────── buying ─────────────────────────

  function hoursOf(from, to) {
    const out = [];
    for (let t = slotSecs(from); t <= slotSecs(to) && out.length <= 168; t += 3600) out.push(slotName(new Date(t * 1000)));
    return out;
  }

  /** Walks a slot's asks for `qty` GPUs: cost and worst price, or null if short. */
  function walk(asks, qty) {
    let left = qty; let cost = 0; let worst = null;
    for (const [p, q] of asks) {
      const take = Math.min(left, Number(q));
      cost += take * Number(p); worst = p; left -= take;
      if (left <= 1e-9) return { cost, worst };
    }
    return null;
  }

  /** The preview: "8 × h100, 09:00–17:00 UTC (8 h), est. $X, one provider". */
  async function preview() {
    const market = $('buy-market').value;
    const kind = $('buy-kind').value;
    const from = $('buy-from').value.trim();
    const to = kind === 'slot' ? from : $('buy-to').value.trim();
    const qty = Number($('buy-qty').value);
    if (!(qty > 0)) throw new Error('the quantity must be a positive number of GPUs');
    const hours = hoursOf(from, to);
    if (!hours.length || Number.isNaN(slotSecs(from))) throw new Error('from/to must be hours written like 2026-12-07T09:00Z');
    let cost = 0; let worst = 0;
    for (const h of hours) {
      const base = '/v1/markets/' + encodeURIComponent(market) + '/slots/' + h;
      let got = null;
      if (kind === 'cluster') {
        const b = await api(base + '/blocks?depth=100');
        const lvl = b.asks.find((a) => Number(a.largest_block) >= qty);
        if (lvl) got = { cost: qty * Number(lvl.price), worst: lvl.price };
      } else {
        const d = await api(base + '/depth?depth=1000');
        got = walk(d.asks, qty);
      }
      if (!got) return { text: 'Not enough offered in ' + h + (kind === 'cluster' ? ' by one provider' : ''), ok: false };
      cost += got.cost; worst = Math.max(worst, Number(got.worst));
    }
    const span = hours.length === 1 ? hourLabel(from) + ' UTC (1 h)'
      : hourLabel(from) + '–' + hours[hours.length - 1].slice(11, 13) + ':59 UTC (' + hours.length + ' h)';
    const who = kind === 'cluster' ? ', one provider' : kind === 'window' ? ', the same GPUs every hour' : '';
    return {
      ok: true, worst,
      text: qty + ' × ' + market + ', ' + span + ', est. ' + money(cost) + ' (up to ' + worst.toFixed(2) + '/GPU-hour)' + who,
    };
  }

  const showPreview = guard(async () => {
    clearError();
    const p = await preview();
    $('buy-preview').textContent = p.text;
    return p;
  });

  const buy = guard(async (ev) => {
    ev.preventDefault();
    clearError();
    const kind = $('buy-kind').value;
    const market = $('buy-market').value;
    let price = $('buy-price').value.trim();
    if (!price) {
      const p = await preview();
      $('buy-preview').textContent = p.text;
      if (!p.ok) throw new Error(p.text);
      price = p.worst.toFixed(2);
    }
    const body = { market, side: 'buy', price, quantity: $('buy-qty').value.trim(), time_in_force: 'fok' };
    if (kind === 'slot') body.slot = $('buy-from').value.trim();
    else body.window = { from_slot: $('buy-from').value.trim(), to_slot: $('buy-to').value.trim() };
    if (kind === 'cluster') body.colocate = true;
    if (kind === 'cluster' && body.window.from_slot === body.window.to_slot) {
      body.slot = body.window.from_slot; delete body.window;
    }
    const r = await api('/v1/orders', { method: 'POST', auth: true, body });
    $('buy-result').textContent = 'Order ' + r.order_id + ': ' + r.status + ', ' + r.filled + ' GPUs bought'
      + (r.fills && r.fills.length ? ' at ' + r.fills.map((f) => f.price).join(', ') : '');
    await loadAccount();
  });

  // ───────────────────────── pages ─────────────────────────

  function route() {
    const page = (location.hash || '#explorer').slice(1);
    const known = ['explorer', 'provider', 'demander'].includes(page) ? page : 'explorer';
    for (const p of ['explorer', 'provider', 'demander']) {
      $('page-' + p).hidden = p !== known;
      $('nav-' + p).classList.toggle('active', p === known);
    }
    $('keybox').hidden = known === 'explorer';
    if (known !== 'explorer') loadAccount();
  }

  /** Hours the forms start with, by the exchange's clock (a demo's may run far
   * ahead of this computer's): from two hours ahead, past the gate. A field the
   * person has been in keeps what it holds. */
  const DEFAULT_HOURS = { 'cap-from': 2, 'cap-to': 9, 'ask-slot': 2, 'buy-from': 2, 'buy-to': 5 };
  function defaultHours(nowMs) {
    for (const i of document.querySelectorAll('.slot-input')) i.placeholder = nextHours(2, nowMs);
    for (const [id, n] of Object.entries(DEFAULT_HOURS)) {
      if (!$(id).dataset.typed) $(id).value = nextHours(n, nowMs);
    }
  }
  const loadDefaultHours = guard(async () => {
    defaultHours((await api('/v1/time')).ts_ns / 1e6);
  });

  function init() {
    makeCharts();
    for (const id of Object.keys(DEFAULT_HOURS)) {
      // Once the person is in a field, it is theirs: never changed under them.
      for (const ev of ['focus', 'input']) $(id).addEventListener(ev, () => { $(id).dataset.typed = '1'; });
    }
    defaultHours(Date.now());
    loadDefaultHours();
    const saved = sessionStorage.getItem(KEY_STORE);
    if (saved) $('key-input').value = saved;
    $('key-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      clearError();
      sessionStorage.setItem(KEY_STORE, $('key-input').value.trim());
      loadAccount();
    });
    $('key-forget').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORE);
      $('key-input').value = '';
      A.account = null;
      $('account-id').textContent = '—';
    });
    $('cap-form').addEventListener('submit', capacity(true));
    $('cap-remove').addEventListener('click', capacity(false));
    $('ask-form').addEventListener('submit', placeAsk);
    $('buy-form').addEventListener('submit', buy);
    $('buy-preview-btn').addEventListener('click', showPreview);
    $('buy-kind').addEventListener('change', () => { $('buy-to-label').hidden = $('buy-kind').value === 'slot'; });
    $('buy-to-label').hidden = true;
    $('slot-select').addEventListener('change', guard(() => selectSlot($('slot-select').value)));
    $('interval').addEventListener('change', () => { S.interval = $('interval').value; loadCandles(); });
    $('trades-more').addEventListener('click', loadOlderTrades);
    $('error').addEventListener('click', clearError);
    window.addEventListener('hashchange', route);
    ws.connect();
    loadMarkets();
    loadStats();
    setInterval(loadStats, REFRESH_MS);
    setInterval(() => { if (!$('page-explorer').hidden) loadMarkets(); }, REFRESH_MS);
    // Deliveries move with time (gates, windows, settlement): the account pages follow.
    setInterval(() => { if ($('page-explorer').hidden) loadAccount(); }, REFRESH_MS);
    route();
  }

  init();
  // For tests and debugging: feed a message as if it came over the WebSocket,
  // count the book resyncs (seq gaps) and reconnections so far, list the channels
  // followed, drop the connection.
  window.gpuxExplorer = {
    inject: onMessage,
    resyncs: () => ws.resyncs,
    reconnects: () => ws.reconnects,
    channels: () => [...ws.channels].sort(),
    disconnect: () => ws.sock.close(),
  };
}());
