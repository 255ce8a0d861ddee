// One backtest run: live progress (window.Live events, status polling as a fallback), then the
// results from the run's JSON endpoints: metric cards, candles with trade markers, equity,
// drawdown, monthly returns and the trades table (server-side sorting and paging).
(function () {
  "use strict";
  const page = BT.pageData();
  const ACTIVE = ["pending", "running"];
  const $ = (id) => document.getElementById(id);
  let run = null;
  let loaded = false;
  let pollTimer = null;

  const CARDS = [
    "total_return", "annualized_return", "sharpe_ratio", "sortino_ratio", "max_drawdown", "calmar_ratio",
    "win_rate", "profit_factor", "total_trades", "expectancy", "exposure_time", "total_fees",
    "buy_and_hold_return", "end_equity",
  ];

  // ------------------------------------------------------------------ progress
  function setProgress(pct, stage) {
    const bar = $("run-progress");
    if (!bar) return;
    bar.setAttribute("aria-valuenow", String(pct));
    // The values shown, in order (tests and support read it; cheap).
    const trail = bar.dataset.trail ? bar.dataset.trail.split(",") : [];
    if (trail[trail.length - 1] !== String(pct)) bar.dataset.trail = trail.concat(String(pct)).join(",");
    bar.querySelector(".bar").style.width = pct + "%";
    $("run-progress-pct").textContent = pct + "%";
    if (stage) $("run-stage").textContent = { loading: "Loading candles…", running: "Simulating…", lookahead: "Checking for lookahead bias…", saving: "Saving results…" }[stage] || stage;
  }

  function setStatus(status) {
    $("run-status").innerHTML = BT.statusBadge(status);
    document.body.dataset.runStatus = status;
    $("cancel-button").hidden = !ACTIVE.includes(status);
  }

  function handleStatus(data) {
    if (!run) return;
    run.status = data.status;
    setStatus(data.status);
    if (data.status === "running" && data.progress !== undefined) setProgress(data.progress);
    if (ACTIVE.includes(data.status)) return;
    stopPolling();
    if (data.status === "completed") {
      setProgress(100, "Done");
      $("run-stage").textContent = "Completed";
      setTimeout(() => { $("progress-card").hidden = true; }, 600);
      loadResults();
    } else {
      $("progress-card").hidden = true;
      if (data.error) {
        $("error-card").hidden = false;
        $("error-card").querySelector("h2").textContent = "Run " + data.status;
        $("error-message").textContent = (data.error.line ? "Line " + data.error.line + ": " : "") + data.error.message;
      } else if (data.status === "cancelled") {
        $("error-card").hidden = false;
        $("error-card").querySelector("h2").textContent = "Run cancelled";
        $("error-message").textContent = "The run was cancelled before it finished.";
      }
    }
  }

  function startPolling() {
    // Events are the fast path; the poll covers a socket that was not connected yet or dropped.
    pollTimer = setInterval(async () => {
      try {
        const status = await BT.api(run.urls.status);
        if (status.status === "running") setProgress(status.progress);
        if (status.status !== run.status) handleStatus(status);
      } catch (e) { /* transient; the next tick retries */ }
    }, 3000);
  }
  function stopPolling() { if (pollTimer) clearInterval(pollTimer); pollTimer = null; }

  window.Live.on("backtest.progress", (data) => {
    if (data.id !== page.id) return;
    if (run && run.status === "pending") { run.status = "running"; setStatus("running"); }
    setProgress(data.progress, data.stage);
  });
  window.Live.on("backtest.status", (data) => { if (data.id === page.id) handleStatus(data); });

  $("cancel-button").addEventListener("click", async (event) => {
    event.target.disabled = true;
    try {
      const answer = await BT.api(run.urls.cancel, { method: "POST" });
      $("run-stage").textContent = "Cancelling…";
      if (answer.status === "cancelled") handleStatus(answer);
    } catch (error) {
      alert(error.message);
      event.target.disabled = false;
    }
  });

  $("delete-button").addEventListener("click", async (event) => {
    if (!confirm("Delete backtest #" + page.id + " and its results?")) return;
    try {
      await BT.api(run.urls.self, { method: "DELETE" });
      location.href = event.target.dataset.list;
    } catch (error) {
      alert(error.message);
    }
  });

  // ------------------------------------------------------------------ results
  function metricCards(metrics) {
    const box = $("metric-cards");
    box.innerHTML = "";
    CARDS.forEach((name) => {
      const value = BT.el("div", { class: "value " + BT.tone(name, metrics[name]), text: BT.metric(name, metrics[name]) });
      box.append(BT.el("div", { class: "card metric", "data-metric": name }, [BT.el("div", { class: "label", text: BT.label(name) }), value]));
    });
    const body = $("all-metrics").querySelector("tbody");
    body.innerHTML = "";
    Object.keys(metrics).forEach((name) => {
      body.append(BT.el("tr", { "data-metric": name }, [BT.el("th", { text: BT.label(name) }), BT.el("td", { class: "num " + BT.tone(name, metrics[name]), text: BT.metric(name, metrics[name]) })]));
    });
  }

  async function allTradesForMarkers() {
    // Markers for up to 2,000 trades; past that the chart would be unreadable anyway.
    const trades = [];
    let url = run.urls.trades + "?page_size=500&ordering=entry_time";
    while (url && trades.length < 2000) {
      const pageData = await BT.api(url);
      trades.push(...pageData.results);
      url = pageData.next;
    }
    return { trades, truncated: !!url };
  }

  function priceChart(candles, markers) {
    const x = candles.timestamps.map((ms) => new Date(ms));
    const traces = [{
      type: "candlestick", name: run.symbol, x, open: candles.open, high: candles.high, low: candles.low, close: candles.close,
      increasing: { line: { color: BT.COLORS.green } }, decreasing: { line: { color: BT.COLORS.red } },
    }];
    const longs = markers.trades.filter((t) => t.side === "long");
    const shorts = markers.trades.filter((t) => t.side === "short");
    const entry = (list, name, symbol, color) => ({
      type: "scatter", mode: "markers", name, x: list.map((t) => new Date(t.entry_ts)), y: list.map((t) => Number(t.entry_price)),
      marker: { symbol, size: 10, color, line: { width: 1, color: "#0f141b" } },
      text: list.map((t) => "#" + t.n + " " + t.side + " entry"), hoverinfo: "text+y",
    });
    if (longs.length) traces.push(entry(longs, "Long entry", "triangle-up", BT.COLORS.green));
    if (shorts.length) traces.push(entry(shorts, "Short entry", "triangle-down", BT.COLORS.red));
    if (markers.trades.length) {
      traces.push({
        type: "scatter", mode: "markers", name: "Exit", x: markers.trades.map((t) => new Date(t.exit_ts)),
        y: markers.trades.map((t) => Number(t.exit_price)),
        marker: { symbol: "x", size: 9, color: markers.trades.map((t) => (Number(t.pnl) >= 0 ? BT.COLORS.green : BT.COLORS.red)) },
        text: markers.trades.map((t) => "#" + t.n + " exit (" + t.exit_reason + ") " + BT.metric("return_pct", t.return_pct)), hoverinfo: "text+y",
      });
    }
    $("price-note").textContent = (candles.timeframe !== run.timeframe ? "Candles shown at " + candles.timeframe + " to keep the chart fast. " : "") +
      (markers.truncated ? "Markers for the first " + markers.trades.length + " trades." : "");
    return BT.plot($("chart-price"), traces, { xaxis: Object.assign(BT.layout().xaxis, { rangeslider: { visible: false }, type: "date" }), hovermode: "closest" });
  }

  function equityCharts(equity) {
    const x = equity.timestamps.map((ms) => new Date(ms));
    const eq = BT.plot($("chart-equity"), [{ type: "scatter", mode: "lines", name: "Equity", x, y: equity.equity, line: { color: BT.COLORS.accent, width: 1.5 } }], { showlegend: false });
    const dd = BT.plot($("chart-drawdown"), [{
      type: "scatter", mode: "lines", name: "Drawdown", x, y: equity.drawdown.map((v) => (v === null ? null : -Math.abs(v) * 100)),
      fill: "tozeroy", line: { color: BT.COLORS.red, width: 1 },
    }], { showlegend: false, yaxis: Object.assign(BT.layout().yaxis, { ticksuffix: "%" }) });
    return Promise.all([eq, dd]);
  }

  function monthlyReturns(equity) {
    // Month-end equity against the previous month's end (the first month against the start).
    const ends = new Map();
    let previous = equity.equity.length ? equity.equity[0] : null;
    const starts = new Map();
    equity.timestamps.forEach((ms, i) => {
      const d = new Date(ms);
      const key = d.getUTCFullYear() * 100 + d.getUTCMonth();
      if (!starts.has(key)) starts.set(key, previous);
      ends.set(key, equity.equity[i]);
      previous = equity.equity[i];
    });
    const years = Array.from(new Set(Array.from(ends.keys()).map((k) => Math.floor(k / 100)))).sort();
    const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const z = years.map((y) => months.map((_, m) => {
      const key = y * 100 + m;
      if (!ends.has(key) || !starts.get(key)) return null;
      return (ends.get(key) / starts.get(key) - 1) * 100;
    }));
    const text = z.map((row) => row.map((v) => (v === null ? "" : v.toFixed(1) + "%")));
    return BT.plot($("chart-monthly"), [{
      type: "heatmap", x: months, y: years.map(String), z, text, texttemplate: "%{text}", hoverinfo: "x+y+text",
      colorscale: [[0, BT.COLORS.red], [0.5, "#1e2733"], [1, BT.COLORS.green]], zmid: 0, showscale: false, xgap: 2, ygap: 2,
    }], { yaxis: Object.assign(BT.layout().yaxis, { type: "category", autorange: "reversed" }), hovermode: "closest", height: Math.max(160, 60 + 36 * years.length) });
  }

  // ------------------------------------------------------------------ trades table
  const table = { page: 1, pageSize: 25, ordering: "entry_time", count: 0 };

  function tradeQuery() {
    const params = new URLSearchParams();
    if ($("trade-side").value) params.set("side", $("trade-side").value);
    if ($("trade-outcome").value) params.set("outcome", $("trade-outcome").value);
    return params;
  }

  async function loadTrades() {
    const params = tradeQuery();
    params.set("page", table.page);
    params.set("page_size", table.pageSize);
    params.set("ordering", table.ordering);
    const data = await BT.api(run.urls.trades + "?" + params.toString());
    table.count = data.count;
    const body = $("trades-table").querySelector("tbody");
    body.innerHTML = "";
    if (!data.results.length) body.append(BT.el("tr", {}, [BT.el("td", { colspan: "14", class: "muted", text: "No trades." })]));
    data.results.forEach((t) => {
      const cells = [
        ["num", t.n], ["", t.side], ["", BT.date(t.entry_ts)], ["", BT.date(t.exit_ts)],
        ["num", BT.num(t.entry_price, 2)], ["num", BT.num(t.exit_price, 2)], ["num", BT.num(t.size, 6)],
        ["num " + BT.tone("pnl", t.pnl), BT.num(t.pnl, 2)], ["num " + BT.tone("return_pct", t.return_pct), BT.metric("return_pct", t.return_pct)],
        ["num", BT.num(t.fees, 2)], ["num", BT.metric("mae", t.mae)], ["num", BT.metric("mfe", t.mfe)],
        ["num", BT.duration(t.duration)], ["", t.exit_reason],
      ];
      body.append(BT.el("tr", {}, cells.map(([cls, text]) => BT.el("td", { class: cls, text: String(text) }))));
    });
    const pages = Math.max(1, Math.ceil(table.count / table.pageSize));
    $("trades-page").textContent = "Page " + table.page + " of " + pages + " · " + table.count + " trades";
    $("trades-prev").disabled = table.page <= 1;
    $("trades-next").disabled = table.page >= pages;
    const exportParams = tradeQuery();
    $("export-link").href = run.urls.export + (exportParams.toString() ? "?" + exportParams.toString() : "");
  }

  $("trades-table").querySelectorAll("th.sortable").forEach((th) => {
    th.addEventListener("click", () => {
      const field = th.dataset.order;
      const current = table.ordering.replace("-", "");
      table.ordering = current === field && !table.ordering.startsWith("-") ? "-" + field : field;
      $("trades-table").querySelectorAll("th.sortable").forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
      th.classList.add(table.ordering.startsWith("-") ? "sorted-desc" : "sorted-asc");
      table.page = 1;
      loadTrades();
    });
  });
  $("trades-prev").addEventListener("click", () => { table.page -= 1; loadTrades(); });
  $("trades-next").addEventListener("click", () => { table.page += 1; loadTrades(); });
  $("trade-side").addEventListener("change", () => { table.page = 1; loadTrades(); });
  $("trade-outcome").addEventListener("change", () => { table.page = 1; loadTrades(); });

  // ------------------------------------------------------------------ Monte Carlo
  function showMonteCarlo(mc) {
    $("mc-result").hidden = false;
    $("mc-status").textContent = mc.simulations + " simulations (" + mc.method + ", seed " + mc.seed + ") over " + mc.trades + " trades.";
    const body = $("mc-table").querySelector("tbody");
    body.innerHTML = "";
    [["total_return", "Total return"], ["max_drawdown", "Max drawdown"]].forEach(([key, title]) => {
      const s = mc[key];
      body.append(BT.el("tr", { "data-metric": key }, [BT.el("th", { text: title })].concat(
        ["p5", "p50", "p95", "mean", "original"].map((k) => BT.el("td", { class: "num " + BT.tone(key, s[k]), text: BT.metric(key, s[k]) })))));
    });
    $("mc-loss").textContent = "Probability of ending with a loss: " + BT.metric("win_rate", mc.probability_of_loss);
    const p = mc.paths;
    const line = (name, y, extra) => Object.assign({ type: "scatter", mode: "lines", name, x: p.x, y: y.map((v) => v * 100) }, extra);
    return BT.plot($("chart-monte-carlo"), [
      line("5th pct", p.p5, { line: { color: BT.COLORS.red, width: 1 } }),
      line("95th pct", p.p95, { line: { color: BT.COLORS.green, width: 1 }, fill: "tonexty", fillcolor: "rgba(59,130,246,.12)" }),
      line("Median", p.p50, { line: { color: BT.COLORS.accent, width: 2 } }),
    ], { xaxis: Object.assign(BT.layout().xaxis, { title: { text: "trade" } }), yaxis: Object.assign(BT.layout().yaxis, { ticksuffix: "%", title: { text: "return" } }) });
  }

  $("mc-run").addEventListener("click", async () => {
    $("mc-run").disabled = true;
    $("mc-status").textContent = "Simulating…";
    try {
      const body = { simulations: Number($("mc-simulations").value), method: $("mc-method").value, seed: 0 };
      await showMonteCarlo(await BT.api(run.urls.monte_carlo, { method: "POST", body }));
    } catch (error) {
      $("mc-status").textContent = error.message;
    } finally {
      $("mc-run").disabled = false;
    }
  });

  function loadMonteCarlo() {
    // The page embeds the last stored report; a run that just finished has none yet.
    if (page.monte_carlo) showMonteCarlo(page.monte_carlo);
  }

  function showNoTrades(metrics, info) {
    // A run without trades says why (the engine's info.no_trades_reason).
    if (!metrics || metrics.total_trades || !info || !info.no_trades_reason) return;
    $("no-trades-reason").textContent = info.no_trades_reason;
    $("no-trades-card").hidden = false;
  }

  function showSources(info) {
    if (!info || (!info.funding_note && !info.price_source_note)) return;
    $("funding-note").textContent = info.funding_note || "–";
    $("price-source-note").textContent = info.price_source_note || "–";
    $("sources-card").hidden = false;
  }

  async function loadResults() {
    if (loaded) return;
    loaded = true;
    try {
      const [results, equity, candles, markers, detail] = await Promise.all([
        BT.api(run.urls.results), BT.api(run.urls.equity + "?points=2000"), BT.api(run.urls.candles + "?points=2000"), allTradesForMarkers(),
        BT.api(page.api),
      ]);
      BT.showLookahead(detail.lookahead);
      showSources(results.info);
      showNoTrades(results.metrics, results.info);
      $("results").hidden = false;
      $("export-link").hidden = false;
      metricCards(results.metrics);
      if (results.logs) { $("logs-card").hidden = false; $("logs").textContent = results.logs; }
      await Promise.all([priceChart(candles, markers), equityCharts(equity), monthlyReturns(equity), loadTrades()]);
      document.body.dataset.resultsReady = "1";
      loadMonteCarlo();
    } catch (error) {
      loaded = false;
      $("error-card").hidden = false;
      $("error-card").querySelector("h2").textContent = "Could not load the results";
      $("error-message").textContent = error.message;
    }
  }

  async function start() {
    run = await BT.api(page.api);
    setStatus(run.status);
    if (!ACTIVE.includes(run.status)) handleStatus(run);
    else { setProgress(run.progress); startPolling(); }
  }
  start();
})();
