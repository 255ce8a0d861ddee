// The home page: the summary cards and the equity curve follow portfolio.equity; open orders,
// positions, risk alerts and watched prices follow their live events. Bots' status and P&L are
// kept by static/bots/bots.js (the same badges and cells as the bots list).
(function () {
  "use strict";
  if (!window.Live) return;
  const live = document.getElementById("dash-live");
  const connected = () => { if (live) live.textContent = "connected"; };
  window.Live.on("connected", connected);
  window.Live.on("live.open", connected);

  const OPEN = ["pending", "open", "partially_filled"];
  const MAX_ALERTS = 5;

  const { amount, label } = window.Format;
  function tone(el, value) {
    el.classList.toggle("pos", Number(value) > 0);
    el.classList.toggle("neg", Number(value) < 0);
  }
  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }
  // Keep a table's "nothing here" row only while it has no other row.
  function syncEmpty(tbody, colspan, html) {
    const empty = tbody.querySelector("tr.empty");
    const rows = tbody.querySelectorAll("tr:not(.empty)").length;
    if (rows && empty) empty.remove();
    if (!rows && !empty) {
      const row = document.createElement("tr");
      row.className = "empty";
      row.innerHTML = '<td colspan="' + colspan + '" class="muted">' + html + "</td>";
      tbody.appendChild(row);
    }
  }

  // ------------------------------------------------------------------ summary and equity
  const summary = document.getElementById("home-summary");
  const chart = document.getElementById("home-equity");
  const source = document.getElementById("home-equity-data");

  function showSummary(data) {
    if (!summary) return;
    ["equity", "cash", "positions_value", "today_pnl", "total_pnl"].forEach((name) => {
      const el = summary.querySelector('[data-field="' + name + '"]');
      if (!el || !(name in data)) return;
      // To the cent, as the page renders them (templatetags money): a float-fed sum has 18 places.
      el.textContent = amount(data[name] === null || data[name] === undefined || data[name] === "" ? data[name] : Number(data[name]).toFixed(2));
      if (name.endsWith("_pnl")) tone(el, data[name]);
    });
    const asOf = summary.querySelector('[data-field="as_of"]');
    if (asOf && data.timestamp) asOf.textContent = data.timestamp.slice(0, 16).replace("T", " ") + " UTC";
  }

  if (chart && source && window.Plotly) {
    const curve = JSON.parse(source.textContent);
    const grid = { gridcolor: "#2a3544" };
    Plotly.newPlot(chart, [{
      x: curve.timestamps, y: curve.equity, type: "scatter", mode: "lines",
      // Steps: equity is known at each snapshot, not between (a deposit is not a slope of gains).
      name: "Equity (" + curve.currency + ")", line: { color: "#60a5fa", shape: "hv" },
    }], {
      paper_bgcolor: "#171e28", plot_bgcolor: "#171e28", font: { color: "#dbe4ee" }, showlegend: false,
      margin: { l: 60, r: 20, t: 10, b: 30 },
      xaxis: Object.assign({ type: "date" }, grid), yaxis: Object.assign({ title: curve.currency }, grid),
    }, { responsive: true, displaylogo: false });

    window.Live.on("portfolio.equity", (data) => {
      showSummary(data);
      const wait = document.getElementById("home-equity-wait");
      if (wait) wait.remove();
      const trace = chart.data[0];
      const last = trace.x.length - 1;
      // A snapshot in the same minute replaces that minute's point (as the server stores it).
      if (last >= 0 && trace.x[last] === data.timestamp) {
        trace.y[last] = Number(data.equity);
        Plotly.redraw(chart);
      } else {
        Plotly.extendTraces(chart, { x: [[data.timestamp]], y: [[Number(data.equity)]] }, [0]);
      }
      chart.dataset.points = String(trace.x.length);
    });
  }

  // A reconnect catches up on missed events; after a gap too long for that (and on the first
  // connection, which may follow events sent before the socket existed) re-read the summary.
  window.Live.on("live.reset", async () => {
    if (!summary) return;
    try {
      const response = await fetch("/api/v1/portfolio/summary/", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      if (data.as_of) showSummary(Object.assign({}, data, { timestamp: data.as_of }));
    } catch (e) { /* the next event updates it */ }
  });

  // ------------------------------------------------------------------ open orders
  const orders = document.querySelector("#home-orders tbody");
  function showOrder(data) {
    if (!orders) return;
    let row = orders.querySelector('tr[data-order="' + data.id + '"]');
    if (!OPEN.includes(data.status)) {
      if (row) row.remove();
    } else {
      if (!row) {
        row = document.createElement("tr");
        row.dataset.order = data.id;
        row.append(cell(data.symbol), cell(label("side", data.side)), cell(label("type", data.type)),
          cell(amount(data.amount), "num"), cell(data.price == null ? "market" : amount(data.price), "num"), cell(""));
        row.lastChild.dataset.field = "status";
        orders.prepend(row);
      }
      row.querySelector('[data-field="status"]').textContent = label("status", data.status);
    }
    syncEmpty(orders, 6, "No open order.");
  }
  window.Live.on("order.created", showOrder);
  window.Live.on("order.updated", showOrder);

  // ------------------------------------------------------------------ positions
  const positions = document.querySelector("#home-positions tbody");
  window.Live.on("position.updated", (data) => {
    if (!positions) return;
    let row = positions.querySelector('tr[data-position="' + data.id + '"]');
    if (!Number(data.size)) {
      if (row) row.remove();
    } else {
      if (!row) {
        row = document.createElement("tr");
        row.dataset.position = data.id;
        row.append(cell(data.symbol));
        ["side", "size", "average_entry", "unrealized_pnl"].forEach((name) => {
          const td = cell("", name === "side" ? "" : "num");
          td.dataset.field = name;
          row.append(td);
        });
        positions.appendChild(row);
      }
      row.querySelector('[data-field="side"]').textContent = label("position_side", data.side);
      row.querySelector('[data-field="size"]').textContent = amount(data.size);
      row.querySelector('[data-field="average_entry"]').textContent = amount(data.average_entry);
      const pnl = row.querySelector('[data-field="unrealized_pnl"]');
      pnl.textContent = amount(data.unrealized_pnl);
      tone(pnl, data.unrealized_pnl);
    }
    syncEmpty(positions, 5, "No open position.");
  });

  // ------------------------------------------------------------------ risk alerts
  const alerts = document.querySelector("#home-alerts tbody");
  window.Live.on("risk.alert", (data) => {
    if (!alerts || alerts.querySelector('tr[data-alert="' + data.id + '"]')) return;
    const row = document.createElement("tr");
    row.dataset.alert = data.id;
    const badge = document.createElement("span");
    badge.className = "badge" + (data.severity === "critical" ? " err" : data.severity === "warning" ? " warn" : "");
    badge.textContent = data.severity;
    const severity = document.createElement("td");
    severity.append(badge);
    row.append(cell((data.created_at || "").slice(0, 16).replace("T", " "), "muted"), severity, cell(data.message));
    alerts.prepend(row);
    alerts.querySelectorAll("tr[data-alert]").forEach((r, i) => { if (i >= MAX_ALERTS) r.remove(); });
    syncEmpty(alerts, 3, "No alerts.");
  });

  // ------------------------------------------------------------------ watched prices
  window.Live.on("price", (data) => {
    document.querySelectorAll("#home-prices tr[data-symbol]").forEach((row) => {
      if (row.dataset.symbol !== data.symbol || row.dataset.exchange !== data.exchange) return;
      if (data.last != null) row.querySelector('[data-field="last"]').textContent = data.last;
      const pct = row.querySelector('[data-field="percentage"]');
      if (data.percentage != null) {
        pct.textContent = Number(data.percentage).toFixed(2) + "%";
        tone(pct, data.percentage);
      }
    });
  });
})();
