// Optimizations list: progress bars follow optimization.progress; a finished one reloads the page
// for its best value and parameters (rendered by the server).
(function () {
  "use strict";
  const row = (id) => document.querySelector('tr[data-optimization="' + id + '"]');
  window.Live.on("optimization.progress", (data) => {
    const tr = row(data.id);
    const bar = tr && tr.querySelector(".progress .bar");
    if (bar) bar.style.width = data.progress + "%";
    const count = tr && tr.querySelector(".count-cell");
    if (count) count.textContent = data.completed + " / " + data.total;
  });
  window.Live.on("optimization.status", (data) => {
    if (row(data.id) && ["completed", "failed", "cancelled"].includes(data.status)) location.reload();
  });
})();
