// Numbers shown the way the server's |amount filter shows them (apps/core/templatetags/money.py),
// for rows that live events add or change: the page then reads the same before and after an event.
(function () {
  // Decimal strings exactly, no padding zeros, thousands grouped; "—" for nothing.
  function amount(value) {
    if (value === null || value === undefined || value === "") return "—";
    let [whole, fraction] = String(value).split(".");
    const sign = whole.startsWith("-") ? "-" : "";
    whole = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    fraction = (fraction || "").replace(/0+$/, "");
    return sign + whole + (fraction ? "." + fraction : "");
  }
  window.Format = { amount };
})();
