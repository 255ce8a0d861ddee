// Exchanges page: per-exchange help on the add form and the live "Test" button.
(function () {
  "use strict";
  const supported = JSON.parse(document.getElementById("supported-exchanges").textContent);

  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Per-exchange help: which fields are needed, whether a testnet exists.
  const select = document.querySelector("#add-connection select[name=exchange]");
  const help = document.getElementById("exchange-help");
  function showHelp() {
    if (!select) return;
    const info = supported[select.value];
    if (!info) return;
    const passphrase = document.querySelector('[data-field="passphrase"]');
    const testnet = document.querySelector('[data-field="testnet"]');
    if (passphrase) passphrase.hidden = !info.needs_passphrase;
    if (testnet) testnet.hidden = !info.has_testnet;
    const needs = ["API key", "secret"].concat(info.needs_passphrase ? ["passphrase"] : []);
    help.textContent = info.name + ": needs " + needs.join(", ") +
      (info.has_testnet ? "; testnet available. " : "; no testnet. ") + info.help;
  }
  if (select) { select.addEventListener("change", showHelp); showHelp(); }

  // Test button: POST to the API, show the result in the row without a reload.
  document.querySelectorAll('[data-action="test"]').forEach(function (button) {
    button.addEventListener("click", async function () {
      const row = button.closest("tr");
      const result = row.querySelector('[data-role="result"]');
      const badge = row.querySelector('[data-role="status"]');
      button.disabled = true;
      result.textContent = "Testing…";
      try {
        const response = await fetch(button.dataset.url, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": cookie("csrftoken"), "Accept": "application/json" },
        });
        const body = await response.json();
        if (!response.ok) {
          result.textContent = (body.error && body.error.message) || "Test failed.";
          return;
        }
        const c = body.connection;
        badge.textContent = c.status === "connected" ? "Connected" : c.status === "error" ? "Error" : "Disconnected";
        badge.className = "badge status " + (c.status === "connected" ? "ok" : "err");
        result.textContent = body.message;
        row.querySelector('[data-role="permissions"]').textContent =
          (c.permissions.join(", ") || "—") + (c.warnings.length ? "  ⚠ can withdraw" : "");
        row.querySelector('[data-role="checked"]').textContent = "just now";
      } catch (err) {
        result.textContent = "Test failed: " + err;
      } finally {
        button.disabled = false;
      }
    });
  });
})();

// Forms that ask first (remove a connection, reset the paper account): the question is the
// form's data-confirm (no inline handler: the CSP allows scripts from our own files only).
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});
