// Create-bot form: only the chosen strategy's versions (user strategies only), and the live
// warning with its confirmation only when a live key is chosen.
(function () {
  "use strict";
  const form = document.getElementById("bot-form");
  if (!form) return;
  const strategy = form.querySelector("select[name=strategy]");
  const version = form.querySelector("select[name=strategy_version]");
  const connection = form.querySelector("select[name=connection]");
  const live = document.getElementById("live-confirmation");

  function showVersions() {
    if (!version) return;
    const user = strategy.value.startsWith("user:");
    const field = version.closest("[data-field]") || version.parentElement;
    field.hidden = !user;
    version.querySelectorAll("option[data-strategy]").forEach((option) => {
      option.hidden = option.dataset.strategy !== strategy.value;
      if (option.hidden && option.selected) version.value = "";
    });
  }
  function showLive() {
    if (!live || !connection) return;
    live.hidden = !connection.value;
    if (!connection.value) live.querySelector("input[type=checkbox]").checked = false;
  }
  strategy.addEventListener("change", showVersions);
  if (connection) connection.addEventListener("change", showLive);
  showVersions();
  showLive();
})();
