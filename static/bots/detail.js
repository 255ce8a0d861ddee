// Bot detail: the price chart (Plotly candles from the market-data API) with the bot's fills as
// markers and its open orders as lines, the performance cards, open orders with cancel and the
// trades table, all following order.* / fill.* / price live events without a reload.
(function () {
  "use strict";
  const el = document.getElementById("bot-chart");
  if (!el) return;
  const botId = Number(el.dataset.bot);
  const { amount, label } = window.Format;
  const TF_MS = { "1m": 6e4, "3m": 18e4, "5m": 3e5, "15m": 9e5, "30m": 18e5, "1h": 36e5, "2h": 72e5, "4h": 144e5,
    "6h": 216e5, "8h": 288e5, "12h": 432e5, "1d": 864e5, "3d": 2592e5, "1w": 6048e5 };
  const OPEN = ["pending", "open", "partially_filled"];
  const state = { candles: null, fills: [], orders: {}, lastEvent: 0 };
  const errorEl = document.getElementById("bot-chart-error");
  const query = (params) => new URLSearchParams(params).toString();
  const market = { exchange: el.dataset.exchange, symbol: el.dataset.symbol };

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error((data && data.error && data.error.message) || response.statusText);
    return data;
  }
  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body || {}),
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error((data && data.error && data.error.message) || response.statusText);
    return data;
  }

  // ------------------------------------------------------------------ chart
  function draw() {
    const c = state.candles;
    if (!c) return;
    const x = c.timestamp.map((t) => new Date(t));
    const traces = [{ type: "candlestick", name: market.symbol, x, open: c.open, high: c.high, low: c.low, close: c.close,
      increasing: { line: { color: "#22c55e" } }, decreasing: { line: { color: "#ef4444" } } }];
    ["buy", "sell"].forEach((side) => {
      const fills = state.fills.filter((f) => f.side === side);
      traces.push({ type: "scatter", mode: "markers", name: side, x: fills.map((f) => new Date(f.timestamp)),
        y: fills.map((f) => Number(f.price)), text: fills.map((f) => side + " " + amount(f.amount) + " @ " + amount(f.price)),
        hoverinfo: "text+x", marker: { size: 11, symbol: side === "buy" ? "triangle-up" : "triangle-down",
          color: side === "buy" ? "#22c55e" : "#ef4444", line: { color: "#fff", width: 1 } } });
    });
    const open = Object.values(state.orders).filter((o) => OPEN.includes(o.status));
    const shapes = [];
    const annotations = [];
    open.forEach((o) => {
      const level = Number(o.price || o.stop_price);
      if (!level) return;
      const color = o.side === "buy" ? "#22c55e" : "#ef4444";
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: level, y1: level, line: { color, width: 1, dash: "dash" } });
      annotations.push({ xref: "paper", x: 1, xanchor: "right", y: level, yanchor: "bottom", showarrow: false,
        text: o.side + " " + o.type + " " + amount(o.amount), font: { size: 10, color } });
    });
    const layout = {
      paper_bgcolor: "#171e28", plot_bgcolor: "#171e28", font: { color: "#dbe4ee" }, showlegend: false,
      margin: { l: 60, r: 20, t: 10, b: 30 }, uirevision: "bot-" + botId, shapes, annotations,
      xaxis: { type: "date", rangeslider: { visible: false }, gridcolor: "#2a3544" },
      yaxis: { gridcolor: "#2a3544" },
    };
    Plotly.react(el, traces, layout, { responsive: true, displaylogo: false, scrollZoom: true });
    el.dataset.candles = String(c.timestamp.length);
    el.dataset.fills = String(state.fills.length);
    el.dataset.openOrders = String(open.length);  // not dataset.orders: that is the orders API URL
  }

  async function loadCandles() {
    // Ends at the current price (offline, the replay feed's moment), with the ticker it used.
    const params = { ...market, timeframe: el.dataset.timeframe, limit: 300, live: "true" };
    state.candles = await getJSON(el.dataset.ohlc + "?" + query(params));
    showLast(state.candles.ticker);
  }
  async function loadFills() {
    state.fills = (await getJSON(el.dataset.trades + "?page_size=500")).results;
  }
  async function loadOrders() {
    state.orders = {};
    (await getJSON(el.dataset.orders + "?open=true&page_size=200")).results.forEach((o) => { state.orders[o.id] = o; });
  }
  function showLast(t) {
    const last = document.getElementById("bot-chart-last");
    if (last && t && t.last != null) last.textContent = String(t.last);
  }

  function onPrice(data) {
    if (data.symbol !== market.symbol || data.exchange !== market.exchange || !state.candles) return;
    showLast(data);
    const step = TF_MS[el.dataset.timeframe];
    const c = state.candles;
    const n = c.timestamp.length;
    const price = Number(data.last);
    if (!step || !n || !Number.isFinite(price)) return;
    const origin = el.dataset.timeframe === "1w" ? 4 * 864e5 : 0;
    const t = Math.floor((Number(data.timestamp) - origin) / step) * step + origin;
    const lastT = c.timestamp[n - 1];
    if (t === lastT) {
      c.close[n - 1] = price;
      c.high[n - 1] = Math.max(c.high[n - 1], price);
      c.low[n - 1] = Math.min(c.low[n - 1], price);
    } else if (t > lastT && t - lastT <= 5 * step) {
      ["timestamp", "open", "high", "low", "close", "volume"].forEach((k) =>
        c[k].push(k === "timestamp" ? t : k === "volume" ? 0 : price));
    } else {
      return;
    }
    draw();
  }

  // ------------------------------------------------------------------ performance
  const perfBox = document.getElementById("bot-performance");
  const fmt = (v, places) => (v == null ? "–" : Number(v).toFixed(places));
  async function refreshPerformance() {
    if (!perfBox) return;
    try {
      const p = await getJSON(perfBox.dataset.performance);
      const set = (name, text) => { const node = perfBox.querySelector('[data-perf="' + name + '"]'); if (node) node.textContent = text; };
      set("total_pnl", fmt(p.total_pnl, 2) + " " + p.currency);
      const total = perfBox.querySelector('[data-perf="total_pnl"]');
      total.classList.toggle("pos", p.total_pnl > 0);
      total.classList.toggle("neg", p.total_pnl < 0);
      set("realized_pnl", fmt(p.realized_pnl, 2));
      set("unrealized_pnl", fmt(p.unrealized_pnl, 2));
      set("position", p.position.size ? p.position.side + " " + p.position.size + " @ " + p.position.average_entry : "flat");
      set("total_trades", String(p.metrics.total_trades ?? 0));
      set("win_rate", p.metrics.win_rate == null ? "–" : Math.round(p.metrics.win_rate * 100) + " %");
      set("max_drawdown", p.metrics.max_drawdown == null ? "–" : (p.metrics.max_drawdown * 100).toFixed(0) + " %");
      set("fees", fmt(p.fees, 4));
    } catch (e) { /* keep the last figures */ }
  }

  // ------------------------------------------------------------------ tables
  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text == null ? "–" : text;
    return td;
  }
  function upsertOrder(order) {
    state.orders[order.id] = { ...(state.orders[order.id] || {}), ...order };
    const tbody = document.querySelector("#bot-open-orders tbody");
    let row = tbody.querySelector('tr[data-order="' + order.id + '"]');
    if (!OPEN.includes(order.status)) {
      if (row) row.remove();
      if (!tbody.querySelector("tr[data-order]") && !tbody.querySelector("tr.empty")) {
        const empty = document.createElement("tr");
        empty.className = "empty";
        empty.innerHTML = '<td colspan="8" class="muted">No open orders.</td>';
        tbody.append(empty);
      }
      draw();
      return;
    }
    if (!row) {
      const empty = tbody.querySelector("tr.empty");
      if (empty) empty.remove();
      row = document.createElement("tr");
      row.dataset.order = order.id;
      const status = document.createElement("td");
      status.innerHTML = '<span class="badge warn" data-field="status"></span>';
      const actions = document.createElement("td");
      actions.innerHTML = '<button type="button" class="link" data-cancel="' + order.id + '">Cancel</button>';
      row.append(cell(new Date().toISOString().slice(0, 19).replace("T", " "), "muted"),
        cell(label("side", order.side), order.side === "buy" ? "pos" : "neg"), cell(label("type", order.type)),
        cell(amount(order.amount), "num"),
        cell(order.price ? amount(order.price) : order.stop_price ? "stop " + amount(order.stop_price) : "market", "num"),
        cell(amount(order.filled), "num"), status, actions);
      tbody.prepend(row);
    }
    row.querySelector('[data-field="status"]').textContent = label("status", order.status);
    row.children[5].textContent = amount(order.filled);
    draw();
  }
  function addTrade(fill) {
    const tbody = document.querySelector("#bot-trades tbody");
    if (!tbody || tbody.querySelector('tr[data-fill="' + fill.id + '"]')) return;
    const empty = tbody.querySelector("tr.empty");
    if (empty) empty.remove();
    const row = document.createElement("tr");
    row.dataset.fill = fill.id;
    row.append(cell(new Date().toISOString().slice(0, 19).replace("T", " "), "muted"),
      cell(label("side", fill.side), fill.side === "buy" ? "pos" : "neg"),
      cell(amount(fill.amount), "num"), cell(amount(fill.price), "num"),
      cell(amount(fill.fee) + " " + (fill.fee_asset || ""), "num"));
    tbody.prepend(row);
  }

  document.addEventListener("click", async (event) => {
    const cancel = event.target.closest("#bot-open-orders [data-cancel]");
    if (!cancel) return;
    cancel.disabled = true;
    try { upsertOrder(await post("/api/v1/orders/" + cancel.dataset.cancel + "/cancel/")); } catch (e) {
      cancel.disabled = false;
      window.alert(e.message);
    }
  });
  const cancelAll = document.getElementById("bot-cancel-all");
  if (cancelAll) cancelAll.addEventListener("click", async () => {
    try { await post("/api/v1/orders/cancel-all/", { bot: botId }); } catch (e) { window.alert(e.message); }
  });

  // ------------------------------------------------------------------ live
  if (window.Live) {
    const mine = (data) => Number(data.bot_id) === botId;
    window.Live.on("order.created", (data) => { if (mine(data)) upsertOrder(data); });
    window.Live.on("order.updated", (data) => { if (mine(data)) upsertOrder(data); });
    window.Live.on("fill.created", async (data) => {
      if (!mine(data)) return;
      addTrade(data);
      refreshPerformance();
      try { await loadFills(); draw(); } catch (e) { /* the next fill redraws */ }
    });
    window.Live.on("price", (data) => { state.lastEvent = Date.now(); onPrice(data); });
    // A reconnect catches up on the events it missed; when they are no longer kept, re-read.
    let first = true;
    window.Live.on("live.reset", async () => {
      if (first) { first = false; return; }  // the initial load below covers the first connect
      refreshPerformance();
      try { await Promise.all([loadFills(), loadOrders()]); draw(); } catch (e) { /* keep */ }
    });
  }
  // Price events come for watched markets only; otherwise poll the (cached) ticker.
  setInterval(async () => {
    if (document.hidden || Date.now() - state.lastEvent < 15000) return;
    try { onPrice(await getJSON(el.dataset.ticker + "?" + query(market))); } catch (e) { /* keep */ }
  }, 5000);

  (async () => {
    try {
      await Promise.all([loadCandles(), loadFills(), loadOrders()]);
      draw();
    } catch (error) {
      errorEl.textContent = error.message;
      errorEl.hidden = false;
      try { await Promise.all([loadFills(), loadOrders()]); } catch (e) { /* shown above */ }
    }
  })();
})();
