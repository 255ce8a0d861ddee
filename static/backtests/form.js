// Backtest / optimization forms: show the parameter inputs of the selected strategy only
// (the others are disabled so they are neither validated by the browser nor posted),
// and the walk-forward / random-search options only for those kinds.
(function () {
  "use strict";
  const form = document.querySelector("form[data-research-form], #backtest-form, #optimization-form");
  if (!form) return;
  const select = form.querySelector("select[name=strategy]");
  const groups = form.querySelectorAll(".param-group");

  function showStrategy() {
    groups.forEach((group) => {
      const active = group.dataset.strategy === select.value;
      group.hidden = !active;
      group.querySelectorAll("input, select, textarea").forEach((input) => { input.disabled = !active; });
    });
  }
  if (select) { select.addEventListener("change", showStrategy); showStrategy(); }

  const kind = form.querySelector("select[name=kind]");
  function showKind() {
    form.querySelectorAll("[data-kind]").forEach((node) => {
      node.hidden = !node.dataset.kind.split(" ").includes(kind.value);
    });
  }
  if (kind) { kind.addEventListener("change", showKind); showKind(); }

  // Leverage and shorts only make sense on futures.
  const marketType = form.querySelector("select[name=market_type]");
  function showFutures() {
    const futures = marketType.value === "futures";
    ["leverage", "margin_mode", "allow_short"].forEach((name) => {
      const field = form.querySelector('[data-field="' + name + '"]');
      if (field) field.style.opacity = futures ? 1 : 0.5;
    });
  }
  if (marketType) { marketType.addEventListener("change", showFutures); showFutures(); }

  form.addEventListener("submit", () => {
    const button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; button.textContent = "Submitting…"; }
  });
})();
