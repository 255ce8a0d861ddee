// Risk page: new alerts arrive live (risk.alert over /ws/events/); acknowledging posts to the API.
(function () {
  "use strict";
  const rows = document.getElementById("alert-rows");
  if (!rows) return;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function acknowledge(id, cell) {
    const response = await fetch("/api/v1/risk/alerts/" + id + "/acknowledge/", {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    });
    if (response.ok) {
      const alert = await response.json();
      cell.textContent = "";
      cell.previousElementSibling.textContent = alert.acknowledged_at.slice(11, 16);
    }
  }

  rows.addEventListener("submit", (event) => {
    const form = event.target.closest("form.ack");
    if (!form) return;
    event.preventDefault();
    acknowledge(form.closest("tr").dataset.alert, form.parentElement);
  });

  function row(alert) {
    const tr = document.createElement("tr");
    tr.dataset.alert = alert.id;
    tr.className = "alert-" + alert.severity;
    const cells = [alert.created_at ? alert.created_at.slice(0, 16).replace("T", " ") : "", "", alert.message, "", ""];
    cells.forEach((text) => { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); });
    const badge = document.createElement("span");
    badge.className = "badge " + (alert.severity === "critical" ? "err" : alert.severity === "warning" ? "warn" : "");
    badge.textContent = alert.severity;
    tr.children[1].appendChild(badge);
    const form = document.createElement("form");
    form.className = "inline ack";
    const button = document.createElement("button");
    button.className = "secondary";
    button.textContent = "Acknowledge";
    form.appendChild(button);
    tr.children[4].appendChild(form);
    return tr;
  }

  if (window.Live) {
    window.Live.on("risk.alert", (alert) => {
      const empty = rows.querySelector("tr.empty");
      if (empty) empty.remove();
      if (!rows.querySelector('tr[data-alert="' + alert.id + '"]')) rows.prepend(row(alert));
    });
  }
})();
