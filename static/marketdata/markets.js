// Markets page: the user's watchlist with last price and 24h change, updated live by "price" events.
(function () {
  const table = document.getElementById("watchlist");
  if (!table) return;
  const body = table.querySelector("tbody");
  const rows = new Map(); // market_id -> <tr>

  function csrf() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  async function api(url, options = {}) {
    const response = await fetch(url, {
      credentials: "same-origin",
      ...options,
      headers: { "X-CSRFToken": csrf(), Accept: "application/json", ...(options.headers || {}) },
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new Error((data && data.error && data.error.message) || response.statusText);
    return data;
  }
  function fmtPct(value) {
    if (value === null || value === undefined) return "–";
    return (value > 0 ? "+" : "") + Number(value).toFixed(2) + " %";
  }
  function fmtNum(value) {
    if (value === null || value === undefined || value === "") return "–";
    const n = Number(value);
    return Math.abs(n) >= 1000 ? n.toLocaleString(undefined, { maximumFractionDigits: 2 }) : String(value);
  }
  function cell(tr, name) { return tr.querySelector(`[data-field="${name}"]`); }

  function render(item) {
    let tr = rows.get(item.market_id);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.marketId = item.market_id;
      const chart = `${table.dataset.chart}?exchange=${encodeURIComponent(item.exchange)}&symbol=${encodeURIComponent(item.symbol)}&timeframe=${encodeURIComponent(item.timeframe || "1h")}`;
      tr.innerHTML = `
        <td><a href="${chart}" data-field="symbol"></a></td><td data-field="exchange"></td>
        <td class="num md-last-cell" data-field="last"></td><td class="num" data-field="percentage"></td>
        <td class="num" data-field="high"></td><td class="num" data-field="low"></td>
        <td class="num" data-field="base_volume"></td><td><span class="badge" data-field="source"></span></td>
        <td><button class="link" data-action="remove">Remove</button></td>`;
      cell(tr, "symbol").textContent = item.symbol;
      cell(tr, "exchange").textContent = item.exchange;
      if (item.subscription_id) tr.dataset.subscriptionId = item.subscription_id;
      body.appendChild(tr);
      rows.set(item.market_id, tr);
    }
    update(tr, item);
  }
  function update(tr, item) {
    const previous = Number(tr.dataset.last || NaN);
    const last = item.last === null || item.last === undefined ? null : Number(item.last);
    cell(tr, "last").textContent = item.error ? item.error : fmtNum(item.last);
    const pct = cell(tr, "percentage");
    pct.textContent = fmtPct(item.percentage);
    pct.className = "num " + (item.percentage > 0 ? "pos" : item.percentage < 0 ? "neg" : "");
    cell(tr, "high").textContent = fmtNum(item.high);
    cell(tr, "low").textContent = fmtNum(item.low);
    cell(tr, "base_volume").textContent = item.base_volume === null || item.base_volume === undefined ? "–" : Number(item.base_volume).toFixed(2);
    const source = cell(tr, "source");
    source.textContent = item.source || "no data";
    source.className = "badge " + (item.source === "live" ? "ok" : item.source === "replay" ? "warn" : "err");
    if (last !== null) {
      tr.classList.toggle("md-flash-up", last > previous);
      tr.classList.toggle("md-flash-down", last < previous);
      tr.dataset.last = String(last);
    }
    tr.dataset.updated = String(Date.now());
  }
  function showEmpty() {
    document.getElementById("watchlist-empty").hidden = rows.size > 0;
  }
  async function load() {
    try {
      const data = await api(table.dataset.api);
      data.results.forEach(render);
    } catch (error) {
      const el = document.getElementById("watchlist-error");
      el.textContent = error.message; el.hidden = false;
    }
    showEmpty();
  }

  window.Live.on("price", (data) => {
    const tr = rows.get(data.market_id);
    if (tr) update(tr, data);
  });

  body.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action=remove]");
    if (!button) return;
    const tr = button.closest("tr");
    try {
      await api(`${table.dataset.subscriptions}${tr.dataset.subscriptionId}/`, { method: "DELETE" });
      rows.delete(Number(tr.dataset.marketId));
      tr.remove();
      showEmpty();
    } catch (error) { alert(error.message); }
  });

  document.getElementById("watch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const errorEl = document.getElementById("watch-error");
    errorEl.hidden = true;
    try {
      await api(table.dataset.subscriptions, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.fromEntries(new FormData(form))),
      });
      form.symbol.value = "";
      rows.forEach((tr) => tr.remove()); rows.clear();
      await load();
    } catch (error) { errorEl.textContent = error.message; errorEl.hidden = false; }
  });

  const importForm = document.getElementById("import-form");
  const status = document.getElementById("import-status");
  let jobId = null;
  importForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(importForm);
    data.append("kind", "import");
    status.hidden = false;
    status.querySelector(".bar").style.width = "0%";
    document.getElementById("import-message").textContent = "Uploading…";
    try {
      const job = await api(importForm.dataset.api, { method: "POST", body: data });
      jobId = job.id;
      showJob(job);
    } catch (error) { document.getElementById("import-message").textContent = error.message; }
  });
  const downloadForm = document.getElementById("download-form");
  downloadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(downloadForm));
    data.kind = "download";
    if (!data.start) delete data.start;
    status.hidden = false;
    status.querySelector(".bar").style.width = "0%";
    document.getElementById("import-message").textContent = "Queued…";
    try {
      const job = await api(downloadForm.dataset.api, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data),
      });
      jobId = job.id;
      showJob(job);
    } catch (error) { document.getElementById("import-message").textContent = error.message; }
  });
  // The states every job has (as backtests): pending, running, completed, failed, cancelled.
  const cancelButton = document.getElementById("import-cancel");
  const FINISHED = ["completed", "failed", "cancelled"];
  function showJob(data) {
    status.querySelector(".bar").style.width = `${data.progress}%`;
    document.getElementById("import-state").textContent = `${data.status} ${data.progress}%`;
    const message = data.message || (data.error && data.error.message) || "";
    document.getElementById("import-message").textContent = message || (data.status === "pending" ? "Queued…" : "");
    cancelButton.hidden = FINISHED.includes(data.status);
  }
  cancelButton.addEventListener("click", async () => {
    if (jobId === null) return;
    try {
      showJob(await api(`${importForm.dataset.api}${jobId}/cancel/`, { method: "POST" }));
    } catch (error) { document.getElementById("import-message").textContent = error.message; }
  });
  window.Live.on("marketdata.job", (data) => {
    if (data.id !== jobId) return;
    showJob(data);
  });

  load();
})();
