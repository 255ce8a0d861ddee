// The portfolio page: Plotly charts from the data the view embeds (#portfolio-data), formatted metrics.
(function () {
  "use strict";
  const source = document.getElementById("portfolio-data");
  if (!source || !window.Plotly) return;
  const data = JSON.parse(source.textContent);
  const theme = {
    paper_bgcolor: "#171e28", plot_bgcolor: "#171e28", font: { color: "#dbe4ee" }, showlegend: false,
    margin: { l: 60, r: 20, t: 10, b: 30 },
  };
  // A new object per axis: Plotly writes the type it guesses into the layout object it is given,
  // so one object shared by x and y made the P&L axis a date axis (bars sideways, "Jan 1, 1970").
  const grid = (more) => Object.assign({ gridcolor: "#2a3544" }, more);
  const config = { responsive: true, displaylogo: false };
  const green = "#22c55e", red = "#ef4444";
  const colors = (values) => values.map((v) => (v < 0 ? red : green));

  const eq = data.equity, dd = data.drawdown;
  Plotly.newPlot("portfolio-equity", [
    { x: eq.timestamps, y: eq.equity, type: "scatter", mode: "lines", name: "Equity (" + eq.currency + ")", line: { color: "#60a5fa", shape: "hv" } },
    { x: dd.timestamps, y: dd.drawdown.map((v) => v * 100), type: "scatter", mode: "lines", fill: "tozeroy",
      name: "Drawdown %", yaxis: "y2", line: { color: red } },
  ], Object.assign({}, theme, {
    xaxis: grid({ type: "date" }),
    yaxis: grid({ domain: [0.35, 1], title: eq.currency }),
    yaxis2: grid({ domain: [0, 0.28], title: "DD %" }),
  }), config);

  // Days on a date axis, at least a week wide: with a day or two of history Plotly zoomed in to
  // milliseconds ("23:59:59.9996").
  function dayAxis(days) {
    const axis = { type: "date", tickformat: "%b %d", hoverformat: "%Y-%m-%d" };
    if (days.length && days.length < 7) {
      const first = Date.parse(days[0] + "T00:00:00Z"), last = Date.parse(days[days.length - 1] + "T00:00:00Z");
      const pad = (7 * 86400000 - (last - first)) / 2;
      axis.range = [new Date(first - pad).toISOString(), new Date(last + pad).toISOString()];
    }
    return axis;
  }
  const daily = data.daily.days;
  Plotly.newPlot("portfolio-daily", [{
    x: daily.map((d) => d.day), y: daily.map((d) => d.pnl), type: "bar", marker: { color: colors(daily.map((d) => d.pnl)) },
  }], Object.assign({}, theme, { xaxis: grid(dayAxis(daily.map((d) => d.day))), yaxis: grid({ type: "linear" }) }), config);

  const months = data.monthly.months;
  Plotly.newPlot("portfolio-monthly", [{
    x: months.map((m) => m.month), y: months.map((m) => m.pnl), type: "bar", marker: { color: colors(months.map((m) => m.pnl)) },
  }], Object.assign({}, theme, { xaxis: grid({ type: "category" }), yaxis: grid({ type: "linear" }) }), config);

  const assets = data.exposure.assets.filter((a) => a.value > 0);
  Plotly.newPlot("portfolio-exposure", [{
    labels: assets.map((a) => a.asset), values: assets.map((a) => a.value), type: "pie", hole: 0.45,
  }], Object.assign({}, theme, { showlegend: true }), config);

  // Metrics arrive as raw numbers; show fractions as percentages and money with two decimals.
  document.querySelectorAll("td[data-kind]").forEach((cell) => {
    if (cell.dataset.value === "") return;
    const v = Number(cell.dataset.value);
    const kind = cell.dataset.kind;
    if (kind === "pct") cell.textContent = (v * 100).toFixed(2) + "%";
    else if (kind === "ratio") cell.textContent = v.toFixed(2);
    else if (kind === "money") cell.textContent = v.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    else cell.textContent = String(Math.round(v));
    if ((kind === "pct" || kind === "money") && v < 0) cell.classList.add("neg");
  });
})();
