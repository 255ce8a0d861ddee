// Optimization and walk-forward pages: live progress, best parameters, the trials table
// (sorted by any metric or parameter on the server, paged here), the two-parameter heatmap,
// and for walk-forward the in-sample / out-of-sample comparison per window.
(function () {
  "use strict";
  const page = BT.pageData();
  const $ = (id) => document.getElementById(id);
  const ACTIVE = ["pending", "running"];
  let opt = null;
  let loaded = false;
  let pollTimer = null;

  function setProgress(pct, completed, total) {
    $("opt-progress").setAttribute("aria-valuenow", String(pct));
    $("opt-progress").querySelector(".bar").style.width = pct + "%";
    $("opt-progress-pct").textContent = pct + "%";
    if (total) $("opt-stage").textContent = completed + " of " + total + " combinations evaluated";
  }

  function setStatus(status) {
    $("opt-status").innerHTML = BT.statusBadge(status);
    $("cancel-button").hidden = !ACTIVE.includes(status);
    document.body.dataset.optStatus = status;
  }

  async function refresh() {
    opt = await BT.api(page.api);
    setStatus(opt.status);
    setProgress(opt.progress, opt.completed, opt.total);
    if (ACTIVE.includes(opt.status)) {
      if (!pollTimer) pollTimer = setInterval(() => refresh().catch(() => {}), 4000);
      return;
    }
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    $("progress-card").hidden = true;
    if (opt.error) { $("error-card").hidden = false; $("error-message").textContent = opt.error.message; }
    if (opt.status === "completed" && !loaded) { loaded = true; showResults(); }
    // The best parameters' lookahead check follows the sweep as a task of its own.
    if (opt.lookahead) BT.showLookahead(opt.lookahead);
  }

  window.Live.on("optimization.progress", (data) => {
    if (data.id !== page.id) return;
    setStatus("running");
    setProgress(data.progress, data.completed, data.total);
  });
  window.Live.on("optimization.status", (data) => { if (data.id === page.id) refresh(); });

  $("cancel-button").addEventListener("click", async (event) => {
    event.target.disabled = true;
    try { await BT.api(opt.urls.cancel, { method: "POST" }); await refresh(); } catch (error) { alert(error.message); event.target.disabled = false; }
  });

  // ------------------------------------------------------------------ trials table
  const COLUMNS = ["sharpe_ratio", "total_return", "max_drawdown", "win_rate", "profit_factor", "total_trades", "sortino_ratio", "calmar_ratio"];
  const trials = { page: 1, pageSize: 25, ordering: null, window: "" };

  function metricColumns() {
    const list = [page.objective].concat(COLUMNS.filter((name) => name !== page.objective));
    return list.slice(0, 8);
  }

  async function loadTrials() {
    const params = new URLSearchParams({ page: trials.page, page_size: trials.pageSize });
    const objectiveOrder = (opt.maximize ? "-" : "") + page.objective;
    params.set("ordering", trials.ordering || objectiveOrder);
    if (trials.window !== "") params.set("window", trials.window);
    const data = await BT.api(opt.urls.results + "?" + params.toString());
    const table = $("trials-table");
    const columns = metricColumns();
    const walkForward = !!$("wf-table");
    const head = BT.el("tr", {}, [BT.el("th", { text: "#" })]);
    if (walkForward) head.append(BT.el("th", { class: "num", text: "Window" }));
    page.params.forEach((name) => head.append(BT.el("th", { class: "num sortable", "data-order": "param__" + name, text: name })));
    columns.forEach((name) => head.append(BT.el("th", { class: "num sortable", "data-order": name, text: BT.label(name) })));
    head.append(BT.el("th", { text: "" }));
    head.append(BT.el("th", { text: "" }));
    table.querySelector("thead").innerHTML = "";
    table.querySelector("thead").append(head);
    const current = params.get("ordering");
    head.querySelectorAll("th.sortable").forEach((th) => {
      if (current.replace("-", "") === th.dataset.order) th.classList.add(current.startsWith("-") ? "sorted-desc" : "sorted-asc");
      th.addEventListener("click", () => {
        const field = th.dataset.order;
        // Metrics sort best-first on the first click, parameters ascending.
        const firstDesc = !field.startsWith("param__") && !BT.LOWER_IS_BETTER.has(field);
        if (current.replace("-", "") === field) trials.ordering = current.startsWith("-") ? field : "-" + field;
        else trials.ordering = firstDesc ? "-" + field : field;
        trials.page = 1;
        loadTrials();
      });
    });
    const body = table.querySelector("tbody");
    body.innerHTML = "";
    const best = opt.best ? JSON.stringify(opt.best.params) : null;
    data.results.forEach((trial) => {
      const tr = BT.el("tr", {}, [BT.el("td", { class: "num", text: String(trial.index) })]);
      if (walkForward) tr.append(BT.el("td", { class: "num", text: trial.window === null ? "—" : String(trial.window) }));
      // Walk-forward has one best per window (in the windows table), so no row is "the" best here.
      else if (best && JSON.stringify(trial.params) === best) tr.classList.add("best");
      page.params.forEach((name) => tr.append(BT.el("td", { class: "num", text: String(trial.params[name]) })));
      columns.forEach((name) => tr.append(BT.el("td", { class: "num " + BT.tone(name, trial.metrics[name]), text: BT.metric(name, trial.metrics[name]) })));
      tr.append(BT.el("td", { class: "muted", text: trial.error || "" }));
      const bot = new URLSearchParams({ trial: trial.index });
      if (trial.window !== null && trial.window !== undefined) bot.set("window", trial.window);
      tr.append(BT.el("td", {}, trial.error ? [] : [BT.el("a", { class: "start-bot", href: $("links").dataset.newBot + "&" + bot.toString(), text: "Start bot" })]));
      body.append(tr);
    });
    const pages = Math.max(1, Math.ceil(data.count / trials.pageSize));
    $("trials-page").textContent = "Page " + trials.page + " of " + pages + " · " + data.count + " trials";
    $("trials-prev").disabled = trials.page <= 1;
    $("trials-next").disabled = trials.page >= pages;
  }
  $("trials-prev").addEventListener("click", () => { trials.page -= 1; loadTrials(); });
  $("trials-next").addEventListener("click", () => { trials.page += 1; loadTrials(); });

  // ------------------------------------------------------------------ grid / random
  function showBest() {
    if (!opt.best) { $("best-card").hidden = true; return; }
    $("best-params").innerHTML = "";
    Object.entries(opt.best.params).forEach(([k, v]) => $("best-params").append(BT.el("code", { text: k + "=" + v }), " "));
    const box = $("best-metrics");
    box.innerHTML = "";
    metricColumns().slice(0, 6).forEach((name) => {
      box.append(BT.el("div", { class: "card metric" }, [BT.el("div", { class: "label", text: BT.label(name) }), BT.el("div", { class: "value " + BT.tone(name, opt.best.metrics[name]), text: BT.metric(name, opt.best.metrics[name]) })]));
    });
    const links = $("links").dataset;
    const query = new URLSearchParams({ strategy: links.strategy, market: links.market, timeframe: links.timeframe });
    const slug = links.strategy.replace(":", "-");
    Object.entries(Object.assign({}, opt.params || {}, opt.best.params)).forEach(([k, v]) => query.set("p__" + slug + "__" + k, v));
    $("best-run-link").href = links.newRun + "?" + query.toString();
  }

  async function heatmap() {
    const x = $("heat-x").value;
    const y = $("heat-y").value;
    const note = $("heatmap-note");
    if (!x || !y || x === y) { note.textContent = "A heatmap needs two searched parameters."; $("chart-heatmap").hidden = true; return; }
    $("chart-heatmap").hidden = false;
    const params = new URLSearchParams({ x, y, metric: $("heat-metric").value });
    const data = await BT.api(opt.urls.heatmap + "?" + params.toString());
    const metric = data.metric;
    const scale = BT.LOWER_IS_BETTER.has(metric) ? [[0, BT.COLORS.green], [1, BT.COLORS.red]] : [[0, BT.COLORS.red], [0.5, "#1e2733"], [1, BT.COLORS.green]];
    note.textContent = page.params.length > 2 ? "Each cell shows the best value over the other parameters." : "";
    await BT.plot($("chart-heatmap"), [{
      type: "heatmap", x: data.x_values.map(String), y: data.y_values.map(String), z: data.z, colorscale: scale,
      hovertemplate: x + "=%{x}<br>" + y + "=%{y}<br>" + metric + "=%{z:.4f}<extra></extra>", colorbar: { title: { text: BT.label(metric) } },
    }], { xaxis: Object.assign(BT.layout().xaxis, { title: { text: x }, type: "category" }), yaxis: Object.assign(BT.layout().yaxis, { title: { text: y }, type: "category" }), hovermode: "closest" });
  }

  function setupHeatmap() {
    const names = page.params;
    [["heat-x", 0], ["heat-y", 1]].forEach(([id, index]) => {
      names.forEach((name) => $(id).append(BT.el("option", { value: name, text: name })));
      if (names[index]) $(id).value = names[index];
    });
    page.metrics.forEach((name) => $("heat-metric").append(BT.el("option", { value: name, text: BT.label(name) })));
    $("heat-metric").value = page.objective;
    ["heat-x", "heat-y", "heat-metric"].forEach((id) => $(id).addEventListener("change", () => heatmap().catch((e) => { $("heatmap-note").textContent = e.message; })));
    return heatmap();
  }

  // ------------------------------------------------------------------ walk-forward
  function walkForward() {
    const wf = opt.walk_forward;
    if (!wf) return Promise.resolve();
    const objective = page.objective;
    const summary = $("wf-summary");
    summary.innerHTML = "";
    Object.entries(wf.summary || {}).forEach(([name, value]) => {
      if (typeof value === "string") return;
      let base = name.replace(/^(in_sample|out_of_sample)_/, "").replace(/_(mean|compounded)$/, "");
      if (base === "objective") base = objective;
      const title = BT.label(name.replace("objective", objective.replace(/_/g, " ")));
      summary.append(BT.el("div", { class: "card metric", "data-metric": name }, [BT.el("div", { class: "label", text: title }), BT.el("div", { class: "value " + BT.tone(base, value), text: name === "efficiency" ? BT.num(value, 2) : BT.metric(base, value) })]));
    });
    const body = $("wf-table").querySelector("tbody");
    body.innerHTML = "";
    const day = (ms) => (typeof ms === "number" ? BT.date(ms).slice(0, 10) : String(ms).slice(0, 10));
    wf.windows.forEach((w) => {
      const is = w.in_sample_metrics || (w.in_sample && w.in_sample.metrics) || {};
      const oos = w.out_of_sample_metrics || (w.out_of_sample && w.out_of_sample.metrics) || {};
      const range = (part) => (part ? day(part.start) + " → " + day(part.end) : "—");
      const cells = [
        ["num", String(w.index)], ["", range(w.in_sample_range || w.in_sample)], ["", range(w.out_of_sample_range || w.out_of_sample)],
        ["params-list", Object.entries(w.best_params || {}).map(([k, v]) => k + "=" + v).join(" ") + (w.error ? " (" + w.error + ")" : "")],
        ["num", BT.metric(objective, is[objective])], ["num " + BT.tone(objective, oos[objective]), BT.metric(objective, oos[objective])],
        ["num " + BT.tone("total_return", is.total_return), BT.metric("total_return", is.total_return)],
        ["num " + BT.tone("total_return", oos.total_return), BT.metric("total_return", oos.total_return)],
        ["num", BT.metric("max_drawdown", oos.max_drawdown)], ["num", BT.metric("total_trades", oos.total_trades)],
      ];
      body.append(BT.el("tr", {}, cells.map(([cls, text]) => BT.el("td", { class: cls, text }))));
    });
    const select = $("trial-window");
    if (select) {
      select.append(BT.el("option", { value: "", text: "all windows" }));
      wf.windows.forEach((w) => select.append(BT.el("option", { value: String(w.index), text: "window " + w.index })));
      select.addEventListener("change", () => { trials.window = select.value; trials.page = 1; loadTrials(); });
    }
    const labels = wf.windows.map((w) => "W" + w.index);
    const pick = (w, key) => { const m = w[key + "_metrics"] || (w[key] && w[key].metrics) || {}; return m[objective]; };
    return BT.plot($("chart-walk-forward"), [
      { type: "bar", name: "In-sample", x: labels, y: wf.windows.map((w) => pick(w, "in_sample")), marker: { color: BT.COLORS.accent } },
      { type: "bar", name: "Out-of-sample", x: labels, y: wf.windows.map((w) => pick(w, "out_of_sample")), marker: { color: BT.COLORS.amber } },
    ], { barmode: "group", yaxis: Object.assign(BT.layout().yaxis, { title: { text: BT.label(objective) } }) });
  }

  async function showResults() {
    $("opt-results").hidden = false;
    const jobs = [loadTrials()];
    if ($("wf-table")) jobs.push(walkForward());
    else { showBest(); jobs.push(setupHeatmap()); }
    try { await Promise.all(jobs); document.body.dataset.resultsReady = "1"; } catch (error) { $("error-card").hidden = false; $("error-message").textContent = error.message; }
  }

  refresh().catch((error) => { $("error-card").hidden = false; $("error-message").textContent = error.message; });
})();
