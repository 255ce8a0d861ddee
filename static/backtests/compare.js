// Compare runs: equity curves as returns since start on one chart, metrics side by side.
(function () {
  "use strict";
  const page = BT.pageData();
  if (!page.ids || page.ids.length < 2) return;
  const ROWS = [
    "total_return", "annualized_return", "sharpe_ratio", "sortino_ratio", "calmar_ratio", "max_drawdown",
    "max_drawdown_duration", "volatility", "win_rate", "profit_factor", "expectancy", "total_trades",
    "avg_trade_return", "avg_trade_duration", "exposure_time", "total_fees", "buy_and_hold_return", "end_equity",
  ];
  const base = document.querySelector("[data-api-base]").dataset.apiBase;
  // Rows where neither direction is "better" get no star.
  const NEUTRAL = new Set(["total_trades", "avg_trade_duration", "exposure_time", "buy_and_hold_return"]);

  function render(runs) {
    const traces = runs.filter((r) => r.equity && r.equity.equity.length).map((run, i) => {
      const first = run.equity.equity[0];
      return {
        type: "scatter", mode: "lines", name: "#" + run.id + " " + (run.name || run.strategy),
        x: run.equity.timestamps.map((ms) => new Date(ms)), y: run.equity.equity.map((v) => (v / first - 1) * 100),
        line: { color: BT.PALETTE[i % BT.PALETTE.length], width: 1.5 },
      };
    });
    BT.plot(document.getElementById("chart-compare"), traces, { yaxis: Object.assign(BT.layout().yaxis, { ticksuffix: "%" }) });

    const table = document.getElementById("compare-table");
    const head = BT.el("tr", {}, [BT.el("th", { text: "Metric" })]);
    runs.forEach((run) => head.append(BT.el("th", { class: "num" }, [BT.el("a", { href: "../" + run.id + "/", text: "#" + run.id + " " + (run.name || run.strategy) }), BT.el("div", { class: "muted", text: run.symbol + " " + run.timeframe + " · " + run.status + (run.metrics && !run.metrics.total_trades ? " · no trades" : "") })])));
    table.querySelector("thead").append(head);
    const body = table.querySelector("tbody");
    // A run that never traded is never "best" (no drawdown, no volatility): it gets no star.
    const traded = runs.map((run) => !!(run.metrics && run.metrics.total_trades));
    ROWS.forEach((name) => {
      const values = runs.map((run) => (run.metrics ? run.metrics[name] : null));
      const numbers = values.filter((v, i) => traded[i] && v !== null && v !== undefined);
      const lower = BT.LOWER_IS_BETTER.has(name);
      const distinct = new Set(numbers).size > 1;
      const best = distinct && !NEUTRAL.has(name) ? (lower ? Math.min(...numbers.map(Math.abs)) : Math.max(...numbers)) : null;
      const tr = BT.el("tr", { "data-metric": name }, [BT.el("th", { text: BT.label(name) })]);
      values.forEach((value, i) => {
        const isBest = best !== null && traded[i] && value !== null && value !== undefined && (lower ? Math.abs(value) === best : value === best);
        tr.append(BT.el("td", { class: "num " + BT.tone(name, value) + (isBest ? " best-cell" : ""), text: BT.metric(name, value) + (isBest ? " ★" : "") }));
      });
      body.append(tr);
    });
  }

  BT.api(base + "compare/?ids=" + page.ids.join(",")).then((data) => render(data.runs)).catch((error) => BT.showError(document.getElementById("compare-error"), error));
})();
