// The user's jobs page (/jobs/): each row follows its job's live status and progress events.
(function () {
  "use strict";
  if (!window.Live) return;
  // Event type -> the kinds of row it may update (an import job's progress event has no kind;
  // its id is unique across imports and downloads, which share one table).
  const EVENTS = {
    "backtest.status": ["backtest"],
    "backtest.progress": ["backtest"],
    "optimization.status": ["optimization"],
    "optimization.progress": ["optimization"],
    "marketdata.job": ["import", "download"],
    "bot.replay": ["bot_replay"],
    "bot.replay.progress": ["bot_replay"],
  };
  const TONE = { completed: "ok", failed: "err", running: "warn" };

  function update(kinds, data) {
    if (!data || data.id === undefined) return;
    for (const kind of kinds) {
      const row = document.querySelector(`tr[data-job="${kind}-${data.id}"]`);
      if (!row) continue;
      if (data.status) {
        const badge = row.querySelector('[data-field="status"]');
        badge.textContent = data.status;
        badge.className = "badge" + (TONE[data.status] ? " " + TONE[data.status] : "");
      }
      if (typeof data.attempt === "number") {
        const attempt = row.querySelector('[data-field="attempt"]');
        attempt.textContent = "attempt " + data.attempt;
        attempt.hidden = data.attempt < 2;
      }
      if (typeof data.progress === "number") {
        row.querySelector('[data-field="progress-bar"]').value = data.progress;
        row.querySelector('[data-field="progress"]').textContent = data.progress + " %";
      }
    }
  }

  for (const [type, kinds] of Object.entries(EVENTS)) {
    window.Live.on(type, (data) => update(kinds, data));
  }
})();
