// Bots list and detail: status badges, lifecycle buttons and the event log follow the
// server's bot.status / bot.event live events without a reload.
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

  window.Live.on("bot.status", (data) => {
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
