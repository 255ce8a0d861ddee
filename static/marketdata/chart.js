// Chart page: Plotly candlesticks + volume, timeframe switch, range zoom, live last-candle updates.
(function () {
  const el = document.getElementById("chart");
  if (!el) return;
  const TF_MS = { "1m": 6e4, "3m": 18e4, "5m": 3e5, "15m": 9e5, "30m": 18e5, "1h": 36e5, "2h": 72e5, "4h": 144e5,
    "6h": 216e5, "8h": 288e5, "12h": 432e5, "1d": 864e5, "3d": 2592e5, "1w": 6048e5 };
  const state = { exchange: el.dataset.exchange, symbol: el.dataset.symbol, timeframe: el.dataset.timeframe, candles: null, source: null };
  const errorEl = document.getElementById("chart-error");

  function query(params) { return new URLSearchParams(params).toString(); }
  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error((data && data.error && data.error.message) || response.statusText);
    return data;
  }
  function bucket(ts) {
    const step = TF_MS[state.timeframe];
    if (!step) return null;
    // Binance weeks start on Monday (1970-01-05 was one).
    const origin = state.timeframe === "1w" ? 4 * 864e5 : 0;
    return Math.floor((ts - origin) / step) * step + origin;
  }
  function showTicker(t) {
    if (!t) return;
    document.getElementById("chart-last").textContent = t.last ?? "–";
    const change = document.getElementById("chart-change");
    if (t.percentage !== null && t.percentage !== undefined) {
      change.textContent = (t.percentage > 0 ? "+" : "") + Number(t.percentage).toFixed(2) + " %";
      change.className = t.percentage >= 0 ? "pos" : "neg";
    }
    const source = document.getElementById("chart-source");
    source.textContent = t.source;
    source.className = "badge " + (t.source === "live" ? "ok" : "warn");
    state.source = t.source;
  }
  function draw() {
    const c = state.candles;
    const x = c.timestamp.map((t) => new Date(t));
    const up = c.close.map((v, i) => (v >= c.open[i] ? "rgba(34,197,94,.55)" : "rgba(239,68,68,.55)"));
    const traces = [
      { type: "candlestick", name: state.symbol, x, open: c.open, high: c.high, low: c.low, close: c.close,
        increasing: { line: { color: "#22c55e" } }, decreasing: { line: { color: "#ef4444" } }, yaxis: "y" },
      { type: "bar", name: "volume", x, y: c.volume, marker: { color: up }, yaxis: "y2", hoverinfo: "x+y" },
    ];
    const layout = {
      paper_bgcolor: "#171e28", plot_bgcolor: "#171e28", font: { color: "#dbe4ee" }, showlegend: false,
      margin: { l: 60, r: 20, t: 10, b: 30 }, dragmode: "zoom", uirevision: `${state.symbol}-${state.timeframe}`,
      xaxis: { type: "date", rangeslider: { visible: false }, gridcolor: "#2a3544",
        rangeselector: { bgcolor: "#1e2733", activecolor: "#3b82f6", buttons: [
          { count: 1, label: "1d", step: "day", stepmode: "backward" },
          { count: 7, label: "1w", step: "day", stepmode: "backward" },
          { count: 1, label: "1M", step: "month", stepmode: "backward" },
          { count: 6, label: "6M", step: "month", stepmode: "backward" },
          { step: "all", label: "all" } ] } },
      yaxis: { domain: [0.25, 1], gridcolor: "#2a3544", fixedrange: false },
      yaxis2: { domain: [0, 0.2], gridcolor: "#2a3544", showticklabels: false },
    };
    Plotly.react(el, traces, layout, { responsive: true, displaylogo: false, scrollZoom: true });
    el.dataset.count = String(c.timestamp.length);
  }
  async function load() {
    errorEl.hidden = true;
    try {
      // live: the server ends the candles at the current price (offline, the replay feed's moment)
      // and sends the ticker it used, so the chart's end and the price shown are one reading.
      const params = { exchange: state.exchange, symbol: state.symbol, timeframe: state.timeframe, limit: 1500, live: "true" };
      state.candles = await getJSON(`${el.dataset.ohlc}?${query(params)}`);
      showTicker(state.candles.ticker);
      document.getElementById("chart-note").textContent =
        `${state.candles.count} candles` + (state.candles.source_timeframe !== state.timeframe
          ? ` (built from stored ${state.candles.source_timeframe})` : "") +
        (state.source === "replay" ? " · offline: replaying stored candles" : "");
      draw();
    } catch (error) {
      errorEl.textContent = error.message; errorEl.hidden = false;
    }
  }
  function onPrice(data) {
    if (data.symbol !== state.symbol || data.exchange !== state.exchange || !state.candles) return;
    showTicker(data);
    const price = Number(data.last);
    const t = bucket(Number(data.timestamp));
    const c = state.candles;
    const n = c.timestamp.length;
    if (t === null || !Number.isFinite(price) || n === 0) return;
    const lastT = c.timestamp[n - 1];
    if (t === lastT) {
      c.close[n - 1] = price;
      c.high[n - 1] = Math.max(c.high[n - 1], price);
      c.low[n - 1] = Math.min(c.low[n - 1], price);
    } else if (t > lastT && t - lastT <= 5 * TF_MS[state.timeframe]) {
      ["timestamp", "open", "high", "low", "close", "volume"].forEach((k) =>
        c[k].push(k === "timestamp" ? t : k === "volume" ? 0 : price));
    } else {
      return; // a replay wrap-around or a far jump: keep the chart as it is
    }
    draw();
    el.dataset.lastUpdate = String(Date.now());
  }
  window.Live.on("price", (data) => { state.lastEvent = Date.now(); onPrice(data); });
  // Price events come for watched markets; for any other market poll the (cached) ticker.
  setInterval(async () => {
    if (document.hidden || (state.lastEvent && Date.now() - state.lastEvent < 15000)) return;
    try {
      onPrice(await getJSON(`${el.dataset.ticker}?${query({ exchange: state.exchange, symbol: state.symbol })}`));
    } catch (e) { /* keep the last state */ }
  }, 5000);
  document.querySelectorAll(".md-tf").forEach((button) => button.addEventListener("click", () => {
    document.querySelectorAll(".md-tf").forEach((b) => b.classList.toggle("active", b === button));
    state.timeframe = button.dataset.tf;
    const url = new URL(window.location);
    url.searchParams.set("timeframe", state.timeframe);
    history.replaceState(null, "", url);
    load();
  }));
  load();
})();
