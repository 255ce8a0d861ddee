// Numbers shown the way the server's |amount filter shows them (apps/core/templatetags/money.py),
// and the order vocabulary's labels as the server renders them, for rows that live events add or
// change: the page then reads the same before and after an event.
(function () {
  // "1.5E-7" / "0E-18" (Python's str of a Decimal) as plain digits: "0.00000015" / "0".
  function plain(text) {
    const m = /^(-?)(\d*)(?:\.(\d*))?[eE]([+-]?\d+)$/.exec(text);
    if (!m) return text;
    const digits = (m[2] || "") + (m[3] || "");
    const point = (m[2] || "").length + Number(m[4]);
    let out;
    if (point <= 0) out = "0." + "0".repeat(-point) + digits;
    else if (point >= digits.length) out = digits + "0".repeat(point - digits.length);
    else out = digits.slice(0, point) + "." + digits.slice(point);
    out = out.replace(/^0+(?=\d)/, "");
    return (m[1] && /[1-9]/.test(out) ? "-" : "") + out;
  }
  // Decimal strings exactly, no padding zeros, thousands grouped; "—" for nothing.
  function amount(value) {
    if (value === null || value === undefined || value === "") return "—";
    let [whole, fraction] = plain(String(value)).split(".");
    const sign = whole.startsWith("-") ? "-" : "";
    whole = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    fraction = (fraction || "").replace(/0+$/, "");
    return sign + whole + (fraction ? "." + fraction : "");
  }
  // The order vocabulary's labels ("buy" -> "Buy"), from the page's {% order_labels %} data
  // (apps/orders/templatetags/order_labels.py); the value itself where the page has none.
  let labels = null;
  function label(kind, value) {
    if (labels === null) {
      const data = document.getElementById("order-labels");
      labels = data ? JSON.parse(data.textContent) : {};
    }
    return (labels[kind] || {})[value] || value;
  }
  window.Format = { amount, label };
})();
