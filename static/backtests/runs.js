// Runs list: metric cells formatted, live status/progress of pending and running rows, compare picker.
(function () {
  "use strict";
  function fill(cell, value) {
    cell.textContent = BT.metric(cell.dataset.metric, value);
    cell.classList.remove("pos", "neg");
    const tone = BT.tone(cell.dataset.metric, value);
    if (tone) cell.classList.add(tone);
  }
  document.querySelectorAll(".metric-cell").forEach((cell) => {
    fill(cell, cell.dataset.value === "" ? null : Number(cell.dataset.value));
  });

  const button = document.getElementById("compare-button");
  const picks = () => Array.from(document.querySelectorAll(".compare-pick:checked")).map((box) => box.value);
  document.addEventListener("change", (event) => {
    if (event.target.classList.contains("compare-pick") && button) button.disabled = picks().length < 2;
  });
  if (button) button.addEventListener("click", () => { location.href = button.dataset.url + "?ids=" + picks().join(","); });

  function row(id) { return document.querySelector('tr[data-run="' + id + '"]'); }
  window.Live.on("backtest.progress", (data) => {
    const tr = row(data.id);
    const bar = tr && tr.querySelector(".progress .bar");
    if (bar) bar.style.width = data.progress + "%";
  });
  window.Live.on("backtest.status", (data) => {
    const tr = row(data.id);
    if (!tr) return;
    // Update the row in place (a reload would lose the compare ticks).
    tr.dataset.status = data.status;
    tr.querySelector(".status-cell .badge").outerHTML = BT.statusBadge(data.status);
    if (["completed", "failed", "cancelled"].includes(data.status)) {
      const bar = tr.querySelector(".status-cell .progress");
      if (bar) bar.remove();
    }
    if (data.status === "completed" && data.headline) {
      tr.querySelectorAll(".metric-cell").forEach((cell) => fill(cell, data.headline[cell.dataset.metric]));
      tr.querySelector(".trades-cell").textContent = data.headline.total_trades;
      tr.querySelector(".compare-pick").disabled = false;
    }
  });
})();
