// Bot detail: the latest replay's progress and status follow the bot.replay.progress and
// bot.replay live events; a finished replay reloads the page once to show its result.
(function () {
  "use strict";
  if (!window.Live) return;
  const box = document.getElementById("bot-replay");
  if (!box) return;
  const mine = (data) => box.dataset.replay && String(data.id) === box.dataset.replay;
  window.Live.on("bot.replay.progress", (data) => {
    if (!mine(data)) return;
    const progress = document.getElementById("replay-progress");
    if (progress) progress.textContent = data.progress;
  });
  window.Live.on("bot.replay", (data) => {
    if (!mine(data)) return;
    const status = document.getElementById("replay-status");
    if (status) status.textContent = data.status;
    if (["completed", "failed", "cancelled"].includes(data.status)) window.location.reload();
  });
})();
