// Orders page: the manual order ticket (precision hints, cost and fee preview), cancel and close
// buttons, and live rows over /ws/events/ (order.*, fill.*, position.* events).
(function () {
  "use strict";
  const API = "/api/v1/orders/";
  const markets = {};
  JSON.parse(document.getElementById("ticket-market-data").textContent).forEach((m) => { markets[m.symbol] = m; });
  const $ = (id) => document.getElementById(id);
  const form = $("ticket-form");
  const errorBox = $("ticket-error");
  let lastPrice = null;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function api(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const error = (data && data.error) || {};
      const fields = Object.entries(error.fields || {}).map(([k, v]) => k + ": " + [].concat(v).join(", "));
      const failure = new Error((error.message || "HTTP " + response.status) + (fields.length ? " (" + fields.join("; ") + ")" : ""));
      failure.fields = error.fields || {};
      failure.summary = error.message || "HTTP " + response.status;
      throw failure;
    }
    return data;
  }

  // ------------------------------------------------------------------ ticket
  function market() { return markets[$("ticket-symbol").value.trim().toUpperCase()] || null; }

  const PRICED = ["limit", "stop_limit", "take_profit_limit"];
  const TRIGGERED = ["stop_market", "stop_limit", "take_profit", "take_profit_limit"];
  function showFields() {
    const type = $("ticket-type").value;
    form.querySelector('[data-for="price"]').hidden = !PRICED.includes(type);
    form.querySelector('[data-for="stop_price"]').hidden = !TRIGGERED.includes(type);
    form.querySelector('[data-for="trailing_percent"]').hidden = type !== "trailing_stop";
    form.querySelector('[data-for="bracket"]').hidden = !(type === "market" || type === "limit");
  }

  // The market's precision in the inputs: the step arrows move by its step/tick, and a typed
  // value is rounded to it when the input is left (amounts down, never more than typed).
  function decimals(step) { const text = String(step); return text.includes(".") ? text.split(".")[1].length : 0; }
  function applySteps() {
    const m = market();
    form.querySelectorAll("[data-step]").forEach((input) => {
      const step = m ? (input.dataset.step === "amount" ? m.amount_step : m.price_step) : null;
      input.step = step || "any";
      if (input.dataset.step === "amount" && m && m.min_amount) input.min = m.min_amount;
    });
  }
  function snap(input) {
    const m = market();
    const step = m ? Number(input.dataset.step === "amount" ? m.amount_step : m.price_step) : 0;
    const value = Number(input.value);
    if (!step || !input.value.trim() || !Number.isFinite(value)) return;
    const units = value / step;
    // 1000 / 0.00001 is 99999999.99999999 in floats: a value on the step (to a float's error,
    // relative to its size) keeps its step; otherwise an amount goes down to the step below.
    const near = Math.round(units);
    const onStep = Math.abs(units - near) <= 1e-9 * Math.max(1, Math.abs(units));
    const rounded = input.dataset.step === "amount" && !onStep ? Math.floor(units) : near;
    const text = (rounded * step).toFixed(decimals(input.dataset.step === "amount" ? m.amount_step : m.price_step));
    if (text !== input.value) { input.value = text; preview(); }
  }
  form.querySelectorAll("[data-step]").forEach((input) => input.addEventListener("change", () => snap(input)));

  function clearErrors() {
    form.querySelectorAll("[data-error-for]").forEach((node) => { node.hidden = true; node.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
    errorBox.hidden = true;
  }
  // The one error body names every bad field: show each message under its input.
  function showErrors(error) {
    let placed = 0;
    Object.entries(error.fields || {}).forEach(([name, messages]) => {
      const node = form.querySelector('[data-error-for="' + name + '"]');
      if (!node) return;
      node.textContent = [].concat(messages).join(", ");
      node.hidden = false;
      const input = form.querySelector('[name="' + name + '"]');
      if (input) input.setAttribute("aria-invalid", "true");
      placed += 1;
    });
    errorBox.textContent = placed ? error.summary : error.message;
    errorBox.hidden = false;
  }

  async function refreshPrice() {
    const m = market();
    lastPrice = null;
    $("ticket-amount-hint").textContent = m ? "step " + m.amount_step + ", min " + m.min_amount + " " + m.base : "";
    $("ticket-price-hint").textContent = m ? "tick " + m.price_step + " " + m.quote : "";
    applySteps();
    if (!m) { preview(); return; }
    try {
      const url = "/api/v1/market-data/price/?exchange=binance&symbol=" + encodeURIComponent(m.symbol);
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) lastPrice = Number((await response.json()).price);
    } catch (e) { lastPrice = null; }
    preview();
  }

  function preview() {
    const m = market();
    const amount = Number($("ticket-amount").value);
    const type = $("ticket-type").value;
    const price = type === "market" || type === "trailing_stop" ? lastPrice
      : Number($(PRICED.includes(type) ? "ticket-price" : "ticket-stop-price").value);
    if (!amount || !price) { $("ticket-preview").textContent = "Cost – · fee –"; return; }
    const fee = m ? Number(PRICED.includes(type) ? m.maker_fee : m.taker_fee) : 0.001;
    const cost = amount * price;
    const quote = m ? m.quote : "";
    const min = m && m.min_cost && cost < Number(m.min_cost) ? " · below the minimum of " + m.min_cost + " " + quote : "";
    $("ticket-preview").textContent =
      (type === "market" || type === "trailing_stop" ? "≈ " : "") + "Cost " + cost.toFixed(2) + " " + quote + " · fee " + (cost * fee).toFixed(4) + " " + quote + min;
  }

  function payload() {
    const data = new FormData(form);
    const [kind, id] = data.get("account").split(":");
    const body = { symbol: data.get("symbol").trim().toUpperCase(), side: data.get("side"), type: data.get("type"), amount: data.get("amount").trim() };
    body[kind === "paper" ? "paper_account" : "connection"] = Number(id);
    if (data.get("reduce_only")) body.reduce_only = true;
    ["price", "stop_price", "trailing_percent", "stop_loss", "take_profit"].forEach((name) => {
      const input = form.querySelector('[name="' + name + '"]');
      if (input && !input.closest("[hidden]") && input.value.trim()) body[name] = input.value.trim();
    });
    return body;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    $("ticket-submit").disabled = true;
    try {
      const order = await api(API, payload());
      upsertOrder(order);
    } catch (e) {
      showErrors(e);
    } finally {
      $("ticket-submit").disabled = false;
    }
  });
  // A paper account is offered only the order types the paper exchange simulates (a take-profit
  // limit was stored, then rejected); a live connection, every type its exchange may take.
  function offerTypes() {
    const select = $("ticket-type");
    const paperTypes = select.dataset.paperTypes.split(",");
    const paper = $("ticket-account").value.startsWith("paper:");
    select.querySelectorAll("option").forEach((option) => {
      option.disabled = paper && !paperTypes.includes(option.value);
      option.hidden = option.disabled;
    });
    if (select.selectedOptions[0] && select.selectedOptions[0].disabled) select.value = "limit";
  }
  $("ticket-account").addEventListener("change", () => { offerTypes(); showFields(); preview(); });
  offerTypes();
  ["ticket-type"].forEach((id) => $(id).addEventListener("change", () => { showFields(); preview(); }));
  $("ticket-symbol").addEventListener("change", refreshPrice);
  ["ticket-amount", "ticket-price", "ticket-stop-price"].forEach((id) => $(id).addEventListener("input", preview));
  $("ticket-symbol").addEventListener("input", applySteps);
  showFields();
  refreshPrice();

  // ------------------------------------------------------------------ rows
  const OPEN = ["pending", "open", "partially_filled"];

  const { amount, label } = window.Format;

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text == null ? "–" : text;
    return td;
  }

  function badgeClass(status) {
    return "badge" + (status === "filled" ? " ok" : status === "rejected" ? " err" : OPEN.includes(status) ? " warn" : "");
  }

  function upsertOrder(order) {
    const tbody = document.querySelector("#orders tbody");
    let row = tbody.querySelector('tr[data-order="' + order.id + '"]');
    if (!row) {
      const empty = tbody.querySelector("tr.empty");
      if (empty) empty.remove();
      row = document.createElement("tr");
      row.dataset.order = order.id;
      const status = document.createElement("td");
      status.innerHTML = '<span data-field="status"></span>';
      const actions = document.createElement("td");
      const muted = (text) => { const span = document.createElement("span"); span.className = "muted"; span.textContent = text; return span; };
      const symbol = cell(order.symbol + " ");
      symbol.append(muted(order.exchange || ""));
      const size = cell(amount(order.amount) + " ", "num");
      size.append(muted(order.symbol.split("/")[0]));
      row.append(
        cell(new Date().toISOString().slice(0, 19).replace("T", " "), "muted"), symbol,
        cell(label("side", order.side), order.side === "buy" ? "pos" : "neg"),
        cell(label("type", order.type)), size,
        cell(order.price ? amount(order.price) : order.stop_price ? "stop " + amount(order.stop_price) : "market", "num"),
        cell(amount(order.filled), "num"), cell(amount(order.average_price), "num"), cell("", "num"), status,
        cell(order.bot_id || order.bot ? "bot" : "manual", "muted"), actions,
      );
      row.children[6].dataset.field = "filled";
      row.children[7].dataset.field = "average_price";
      row.children[8].dataset.field = "fee";
      tbody.prepend(row);
    }
    const badge = row.querySelector('[data-field="status"]');
    badge.textContent = label("status", order.status);
    badge.className = badgeClass(order.status);
    badge.title = order.reason || "";
    row.querySelector('[data-field="filled"]').textContent = amount(order.filled);
    const fee = row.querySelector('[data-field="fee"]');
    if (fee && order.fee !== undefined) fee.textContent = amount(order.fee) + (order.fee_asset ? " " + order.fee_asset : "");
    if (order.average_price) row.querySelector('[data-field="average_price"]').textContent = amount(order.average_price);
    const actions = row.lastElementChild;
    if (OPEN.includes(order.status)) {
      if (!actions.querySelector("[data-cancel]")) {
        actions.innerHTML = '<button type="button" class="link" data-cancel="' + order.id + '">Cancel</button>';
      }
    } else {
      actions.textContent = "";
    }
  }

  function upsertPosition(p) {
    const tbody = document.querySelector("#positions tbody");
    let row = tbody.querySelector('tr[data-position="' + p.id + '"]');
    if (Number(p.size) === 0) {
      if (row) row.remove();
      // The last one closed: the table says so, as the page does when it renders none.
      if (!tbody.querySelector("tr")) {
        const empty = document.createElement("tr");
        empty.className = "empty";
        empty.append(cell("No open positions.", "muted"));
        empty.firstChild.colSpan = 7;
        tbody.append(empty);
      }
      return;
    }
    if (!row) {
      const empty = tbody.querySelector("tr.empty");
      if (empty) empty.remove();
      row = document.createElement("tr");
      row.dataset.position = p.id;
      tbody.append(row);
    }
    row.replaceChildren(
      cell(p.symbol), cell(label("position_side", p.side)), cell(amount(p.size), "num"), cell(amount(p.average_entry), "num"),
      cell(amount(p.realized_pnl), "num"), cell(amount(p.unrealized_pnl), "num"),
    );
    const td = document.createElement("td");
    td.innerHTML = '<button type="button" class="link" data-close="' + p.id + '">Close</button>';
    row.append(td);
  }

  document.addEventListener("click", async (event) => {
    const cancel = event.target.closest("[data-cancel]");
    const close = event.target.closest("[data-close]");
    try {
      if (cancel) { cancel.disabled = true; upsertOrder(await api(API + cancel.dataset.cancel + "/cancel/")); }
      if (close) {
        close.disabled = true;
        const order = await api(API + "positions/" + close.dataset.close + "/close/");
        upsertOrder(order);
        // Refused (by the exchange, say): the position is still open, so it can be closed again.
        if (order.status === "rejected") throw new Error("The closing order was rejected: " + (order.reason || "no reason given"));
      }
    } catch (e) {
      if (cancel) cancel.disabled = false;
      if (close) close.disabled = false;
      window.alert(e.message);
    }
  });
  $("cancel-all").addEventListener("click", async () => {
    try { await api(API + "cancel-all/"); } catch (e) { window.alert(e.message); }
  });

  function addTrade(fill) {
    const tbody = document.querySelector("#trades tbody");
    if (!tbody || tbody.querySelector('tr[data-fill="' + fill.id + '"]')) return;
    const empty = tbody.querySelector("tr.empty");
    if (empty) empty.remove();
    const row = document.createElement("tr");
    row.dataset.fill = fill.id;
    row.append(cell(new Date().toISOString().slice(0, 19).replace("T", " "), "muted"), cell(fill.symbol),
      cell(label("side", fill.side), fill.side === "buy" ? "pos" : "neg"), cell(amount(fill.amount), "num"),
      cell(amount(fill.price), "num"), cell(amount(fill.cost), "num"),
      cell(amount(fill.fee) + " " + (fill.fee_asset || ""), "num"), cell(fill.bot_id ? "bot " + fill.bot_id : "manual", "muted"));
    tbody.prepend(row);
  }

  if (window.Live) {
    window.Live.on("fill.created", addTrade);
    window.Live.on("order.created", upsertOrder);
    window.Live.on("order.updated", upsertOrder);
    window.Live.on("position.updated", upsertPosition);
  }
})();
