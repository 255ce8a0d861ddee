// Bots list and detail: status badges, lifecycle buttons, P&L and the event log follow the
// server's bot.status / bot.event / fill.* / price live events without a reload.
(function () {
  "use strict";
  if (!window.Live) return;
  const LABELS = { stopped: "Stopped", starting: "Starting", running: "Running", paused: "Paused", stopping: "Stopping", error: "Error" };
  const TONE = { running: "ok", error: "err", paused: "warn", starting: "warn", stopping: "warn" };
  // Which buttons each status offers (the same table as templates/bots/_actions.html).
  const ACTIONS = {
    stopped: ["start"], error: ["start", "stop"], starting: ["stop"],
    running: ["pause", "stop"], paused: ["resume", "stop"], stopping: [],
  };

  function showStatus(data) {
    document.querySelectorAll('[data-bot-status="' + data.bot + '"]').forEach((badge) => {
      badge.textContent = LABELS[data.status] || data.status;
      badge.dataset.status = data.status;
      badge.className = "badge" + (TONE[data.status] ? " " + TONE[data.status] : "");
    });
    document.querySelectorAll('[data-bot-actions="' + data.bot + '"] button[data-action]').forEach((button) => {
      button.closest("form").hidden = !(ACTIONS[data.status] || []).includes(button.dataset.action);
    });
    const page = document.querySelector("[data-bot-page]");
    const box = document.getElementById("bot-error");
    if (page && box && String(data.bot) === page.dataset.botPage) {
      box.textContent = data.error || "";
      box.hidden = !data.error;
    }
  }
  // bot.status events applied per bot: a status read while one arrived is older than it.
  const applied = {};
  window.Live.on("bot.status", (data) => {
    applied[String(data.bot)] = (applied[String(data.bot)] || 0) + 1;
    showStatus(data);
  });
  // A status that changed before this page's socket was open (a start redirects here while
  // the worker activates the bot) is read once the socket is live, and again after a gap in
  // the events too long to catch up on; an event that arrives while it is read wins.
  window.Live.on("live.reset", () => {
    const ids = new Set();
    document.querySelectorAll("[data-bot-status]").forEach((badge) => ids.add(badge.dataset.botStatus));
    ids.forEach(async (id) => {
      const before = applied[id] || 0;
      try {
        const response = await fetch("/api/v1/bots/" + id + "/", { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const bot = await response.json();
        if ((applied[id] || 0) === before) showStatus({ bot: bot.id, status: bot.status, error: bot.error });
      } catch (e) { /* the next event updates it */ }
    });
  });

  // ------------------------------------------------------------------ P&L
  function showPnl(cell) {
    const size = Number(cell.dataset.size || 0);
    const entry = Number(cell.dataset.entry || 0);
    const last = Number(cell.dataset.last || 0);
    const unrealized = size && entry && last ? size * (last - entry) : Number(cell.dataset.unrealized || 0);
    const total = Number(cell.dataset.realized || 0) + unrealized;
    cell.textContent = total.toFixed(2) + " " + cell.dataset.currency;
    cell.classList.toggle("pos", total > 0);
    cell.classList.toggle("neg", total < 0);
    cell.title = "realized " + Number(cell.dataset.realized || 0).toFixed(2) + " · unrealized " + unrealized.toFixed(2) + " " + cell.dataset.currency;
  }
  const pending = {};
  // A fill changes the bot's position and realized P&L: ask the server (once per burst).
  function refreshPnl(botId) {
    const cells = document.querySelectorAll('[data-bot-pnl="' + botId + '"]');
    if (!cells.length || pending[botId]) return;
    pending[botId] = setTimeout(async () => {
      delete pending[botId];
      try {
        const response = await fetch("/api/v1/bots/" + botId + "/performance/", { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const p = await response.json();
        cells.forEach((cell) => {
          cell.dataset.realized = p.realized_pnl;
          cell.dataset.unrealized = p.unrealized_pnl;
          cell.dataset.size = p.position.side === "short" ? -p.position.size : p.position.size;
          cell.dataset.entry = p.position.average_entry == null ? "" : p.position.average_entry;
          cell.dataset.last = p.last_price == null ? "" : p.last_price;
          showPnl(cell);
          cell.dispatchEvent(new CustomEvent("bot:performance", { bubbles: true, detail: p }));
        });
      } catch (e) { /* keep the last figures */ }
    }, 250);
  }
  window.Live.on("fill.created", (data) => { if (data.bot_id) refreshPnl(data.bot_id); });
  window.Live.on("order.updated", (data) => { if (data.bot_id && data.status === "filled") refreshPnl(data.bot_id); });
  // A price moves the open position's unrealized P&L: re-mark it here.
  window.Live.on("price", (data) => {
    document.querySelectorAll("[data-bot-pnl]").forEach((cell) => {
      if (cell.dataset.symbol !== data.symbol || cell.dataset.exchange !== data.exchange || data.last == null) return;
      cell.dataset.last = data.last;
      if (Number(cell.dataset.size || 0)) showPnl(cell);
    });
  });

  const log = document.getElementById("bot-events");
  const page = document.querySelector("[data-bot-page]");
  if (!log || !page) return;
  window.Live.on("bot.event", (data) => {
    if (String(data.bot) !== page.dataset.botPage || log.querySelector('[data-event="' + data.id + '"]')) return;
    const empty = log.querySelector("tr.empty");
    if (empty) empty.remove();
    const row = document.createElement("tr");
    row.dataset.event = data.id;
    const when = document.createElement("td");
    when.className = "muted";
    when.textContent = data.created_at.replace("T", " ").slice(0, 19);
    const kind = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge" + (data.kind === "error" ? " err" : "");
    badge.textContent = data.kind;
    kind.appendChild(badge);
    const what = document.createElement("td");
    what.textContent = data.message;
    row.append(when, kind, what);
    log.prepend(row);
  });
})();

// A shown-once webhook URL selects itself on a click, ready to copy (no inline handler: the CSP
// allows scripts from our own files only).
document.querySelectorAll("input[data-select-on-click]").forEach((input) => {
  input.addEventListener("click", () => input.select());
});
