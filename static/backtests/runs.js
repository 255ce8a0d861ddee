// Runs list: metric cells formatted, live status/progress of pending and running rows, compare picker.
(function () {
  "use strict";
  document.querySelectorAll(".metric-cell").forEach((cell) => {
    const value = cell.dataset.value === "" ? null : Number(cell.dataset.value);
    cell.textContent = BT.metric(cell.dataset.metric, value);
    const tone = BT.tone(cell.dataset.metric, value);
    if (tone) cell.classList.add(tone);
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
    // A finished run's headline numbers come with the server-rendered row.
    if (["completed", "failed", "cancelled"].includes(data.status)) location.reload();
    else tr.querySelector(".status-cell .badge").outerHTML = BT.statusBadge(data.status);
  });
})();
