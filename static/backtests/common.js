// Backtests pages: shared helpers (JSON API calls with the session cookie + CSRF header,
// number formatting, the Plotly theme). Exposed as window.BT.
(function () {
  "use strict";

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) return meta.content;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || "Request failed (HTTP " + status + ")");
      this.status = status;
      this.code = error.code;
      this.fields = error.fields || {};
      this.body = body;
    }
  }

  async function api(url, options) {
    const opts = Object.assign({ method: "GET" }, options || {});
    const headers = { Accept: "application/json" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.body);
    }
    if (opts.method !== "GET") headers["X-CSRFToken"] = csrfToken();
    const response = await fetch(url, Object.assign(opts, { headers, credentials: "same-origin" }));
    if (response.status === 204) return null;
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // Metric formatting: which metrics are fractions (shown in %), durations (seconds) or plain numbers.
  // Money amounts (net_profit, avg_win, avg_loss, largest_win, largest_loss, fees, funding: quote
  // currency, docs/engine.md) are plain numbers, never percentages.
  const PERCENT = new Set([
    "total_return", "annualized_return", "volatility", "max_drawdown", "win_rate", "avg_trade_return",
    "exposure_time", "var_95", "cvar_95", "best_day", "worst_day", "risk_of_ruin", "buy_and_hold_return",
    "alpha", "return_pct", "mae", "mfe",
  ]);
  const DURATION = new Set(["max_drawdown_duration", "avg_trade_duration", "duration"]);
  const INTEGER = new Set([
    "total_trades", "long_trades", "short_trades", "winning_trades", "losing_trades",
    "max_consecutive_wins", "max_consecutive_losses", "trading_days", "liquidations",
  ]);
  // Metrics where a higher value is worse (for colouring and default sort direction).
  const LOWER_IS_BETTER = new Set(["max_drawdown", "max_drawdown_duration", "volatility", "total_fees", "risk_of_ruin", "losing_trades", "max_consecutive_losses"]);

  function num(value, digits) {
    if (value === null || value === undefined || value === "") return "—";
    const n = Number(value);
    if (!isFinite(n)) return "—";
    return n.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Number(seconds);
    if (s < 3600) return Math.round(s / 60) + "m";
    if (s < 86400 * 2) return (s / 3600).toFixed(1) + "h";
    return (s / 86400).toFixed(1) + "d";
  }

  function metric(name, value) {
    if (value === null || value === undefined) return "—";
    if (PERCENT.has(name)) return num(value * 100, 2) + "%";
    if (DURATION.has(name)) return duration(value);
    if (INTEGER.has(name)) return num(value, 0);
    const abs = Math.abs(Number(value));
    return num(value, abs >= 1000 ? 2 : abs >= 1 ? 3 : 4);
  }

  function tone(name, value) {
    if (value === null || value === undefined) return "";
    const n = Number(value);
    if (["total_return", "annualized_return", "net_profit", "sharpe_ratio", "sortino_ratio", "calmar_ratio", "expectancy", "avg_trade_return", "alpha", "pnl", "return_pct"].includes(name)) {
      return n > 0 ? "pos" : n < 0 ? "neg" : "";
    }
    if (name === "max_drawdown") return n !== 0 ? "neg" : "";
    return "";
  }

  function label(name) {
    const text = name.replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function date(ms) {
    return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    });
    (children || []).forEach((child) => node.append(child));
    return node;
  }

  function statusBadge(status) {
    const tone = { completed: "ok", failed: "err", cancelled: "warn" }[status] || status;
    return '<span class="badge ' + tone + '" data-status="' + status + '">' + status + "</span>";
  }

  // Plotly: the dark theme of app.css; charts resize with the page.
  const theme = getComputedStyle(document.documentElement);
  const color = (name, fallback) => (theme.getPropertyValue(name) || fallback).trim();
  const COLORS = {
    text: color("--text", "#dbe4ee"), muted: color("--muted", "#8a9bb0"), grid: color("--border", "#2a3544"),
    accent: color("--accent", "#3b82f6"), green: color("--green", "#22c55e"), red: color("--red", "#ef4444"),
    amber: color("--amber", "#f59e0b"),
  };
  const PALETTE = [COLORS.accent, COLORS.amber, COLORS.green, "#a855f7", "#ec4899", "#14b8a6", "#eab308", "#f97316", "#64748b", COLORS.red];

  function layout(extra) {
    const axis = { gridcolor: COLORS.grid, zerolinecolor: COLORS.grid, linecolor: COLORS.grid, color: COLORS.muted };
    return Object.assign({
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: COLORS.text, family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
      margin: { l: 60, r: 20, t: 30, b: 40 }, xaxis: Object.assign({}, axis), yaxis: Object.assign({}, axis),
      legend: { orientation: "h", y: 1.1 }, hovermode: "x unified",
    }, extra || {});
  }
  const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function plot(node, traces, extraLayout) {
    node.dataset.rendered = "0";
    return window.Plotly.newPlot(node, traces, layout(extraLayout), CONFIG).then(() => {
      node.dataset.rendered = "1";
    });
  }

  function pageData(id) {
    const node = document.getElementById(id || "page-data");
    return node ? JSON.parse(node.textContent) : {};
  }

  function showError(node, error) {
    node.hidden = false;
    node.textContent = error && error.message ? error.message : String(error);
  }

  // The lookahead verdict card of a run or of an optimization's best parameters (_lookahead.html).
  function showLookahead(report) {
    const card = document.getElementById("lookahead-card");
    if (!report || !card) return;
    const labels = { ok: ["ok", "OK"], lookahead_detected: ["err", "Lookahead detected"], pending: ["warn", "Checking…"] };
    const [cls, text] = labels[report.verdict] || ["warn", "Not checked"];
    const box = document.getElementById("lookahead-verdict");
    box.className = report.verdict === "lookahead_detected" ? "error-box" : "";
    box.textContent = "";
    const badge = document.createElement("span");
    badge.className = "badge " + cls;
    badge.textContent = text;
    box.append(badge, " ");
    if (report.line) {
      const line = document.createElement("strong");
      line.id = "lookahead-line";
      line.textContent = "Line " + report.line;
      box.append(line, ": ");
    }
    const summary = document.createElement("span");
    summary.id = "lookahead-summary";
    summary.textContent = report.summary || "";
    box.append(summary);
    card.dataset.verdict = report.verdict || "";
    card.hidden = false;
  }

  window.BT = { showLookahead, api, ApiError, metric, tone, label, num, date, duration, el, statusBadge, plot, layout, COLORS, PALETTE, pageData, showError, LOWER_IS_BETTER, PERCENT };
})();
