// Strategy editor: CodeMirror (Python), validate on demand and before every save; issues are
// listed with their line numbers and marked in the gutter. Saving creates the strategy (POST)
// or a new version of it (PATCH) through the API.
(function () {
  "use strict";
  const page = BT.pageData();
  const urls = document.getElementById("api-urls").dataset;
  const $ = (id) => document.getElementById(id);
  let strategyId = page.id;
  let marked = [];

  const editor = CodeMirror.fromTextArea($("source"), {
    mode: { name: "python", version: 3, singleLineStringErrors: false },
    theme: "material-darker", lineNumbers: true, indentUnit: 4, tabSize: 4, indentWithTabs: false,
    matchBrackets: true, styleActiveLine: true, gutters: ["issues", "CodeMirror-linenumbers"],
    extraKeys: {
      Tab: (cm) => cm.replaceSelection("    "),
      "Ctrl-S": () => save(), "Cmd-S": () => save(),
    },
  });
  editor.setValue(page.source || "");
  window.strategyEditor = editor; // for tests and the console

  function status(text, tone) {
    $("editor-status").className = "status-line " + (tone || "muted");
    $("editor-status").textContent = text;
  }

  function clearIssues() {
    marked.forEach((line) => editor.removeLineClass(line, "background", "cm-error-line"));
    marked = [];
    editor.clearGutter("issues");
    $("issues").innerHTML = "";
  }

  function showIssues(issues) {
    clearIssues();
    issues.forEach((issue) => {
      const text = (issue.line ? "Line " + issue.line + (issue.col ? ":" + issue.col : "") + ": " : "") + issue.message;
      const item = BT.el("li", { text, "data-line": issue.line || "" });
      item.addEventListener("click", () => {
        if (!issue.line) return;
        editor.focus();
        editor.setCursor({ line: issue.line - 1, ch: Math.max(0, (issue.col || 1) - 1) });
      });
      $("issues").append(item);
      if (issue.line && issue.line <= editor.lineCount()) {
        const handle = editor.addLineClass(issue.line - 1, "background", "cm-error-line");
        marked.push(handle);
        editor.setGutterMarker(issue.line - 1, "issues", BT.el("span", { class: "issue-marker", title: issue.message, text: "●" }));
      }
    });
  }

  function showDescribed(strategy) {
    $("described").hidden = !strategy;
    if (!strategy) return;
    $("described-name").textContent = strategy.name;
    $("described-style").textContent = strategy.style;
    const params = Object.entries(strategy.params || {});
    $("described-params").innerHTML = "";
    if (!params.length) $("described-params").textContent = "No parameters.";
    params.forEach(([name, spec]) => {
      $("described-params").append(BT.el("code", { text: name + "=" + spec.default + " (" + spec.type + ")" }), " ");
    });
  }

  async function validate() {
    status("Validating…");
    const check = await BT.api(urls.validate, { method: "POST", body: { source: editor.getValue() } });
    showIssues(check.issues || []);
    showDescribed(check.strategy);
    $("check-summary").className = check.valid ? "pos" : "neg";
    $("check-summary").textContent = check.valid ? "No problems found." : check.issues.length + " problem" + (check.issues.length === 1 ? "" : "s") + " found.";
    status(check.valid ? "Valid." : "Fix the problems listed on the right.", check.valid ? "pos" : "neg");
    return check;
  }

  let saving = false;
  async function save() {
    if (saving) return;
    saving = true;
    $("save-button").disabled = true;
    try {
      const check = await validate();
      if (!check.valid) return;
      const body = { source: editor.getValue(), description: $("strategy-description").value };
      const url = strategyId ? urls.list + strategyId + "/" : urls.list;
      const saved = await BT.api(url, { method: strategyId ? "PATCH" : "POST", body });
      const created = !strategyId;
      strategyId = saved.id;
      $("editor-title").innerHTML = "";
      $("editor-title").append(saved.name + " ", BT.el("span", { class: "muted", id: "editor-version", text: "v" + saved.version }));
      $("backtest-link").hidden = false;
      $("backtest-link").href = urls.newRun + "?strategy=user:" + saved.id;
      status("Saved version " + saved.version + ".", "pos");
      if (created) history.replaceState(null, "", urls.editBase + saved.id + "/");
      loadVersions().catch(() => {});
    } catch (error) {
      const issues = (error.fields && error.fields.issues) || (error.body && error.body.error && error.body.error.issues);
      if (Array.isArray(issues)) showIssues(issues);
      const fields = error.fields || {};
      const detail = Object.entries(fields).filter(([key]) => key !== "issues").map(([, v]) => v).flat().join("; ");
      status(detail || error.message, "neg");
    } finally {
      saving = false;
      $("save-button").disabled = false;
    }
  }

  // Saved versions (newest first); loading one puts its code in the editor, saving it makes a new version.
  async function loadVersions() {
    if (!strategyId) return;
    const data = await BT.api(urls.list + strategyId + "/versions/?page_size=100");
    $("versions-card").hidden = false;
    const list = $("versions");
    list.innerHTML = "";
    data.results.forEach((version) => {
      const load = BT.el("button", { type: "button", class: "secondary", text: "Load" });
      load.addEventListener("click", () => {
        editor.setValue(version.source);
        clearIssues();
        status("Loaded version " + version.version + "; save to make it the latest.", "muted");
      });
      list.append(BT.el("li", { "data-version": version.version }, [
        BT.el("span", {}, [BT.el("strong", { text: "v" + version.version }), " ", BT.el("span", { class: "muted", text: version.created_at.slice(0, 16).replace("T", " ") })]),
        load,
      ]));
    });
  }

  $("validate-button").addEventListener("click", () => validate().catch((error) => status(error.message, "neg")));
  $("save-button").addEventListener("click", save);
  loadVersions().catch((error) => status(error.message, "neg"));
})();
