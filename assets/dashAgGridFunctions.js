/* Value formatters and helpers the Vantage grids name in their column definitions. */
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});

function vtMissing(value) {
  return value === null || value === undefined || (typeof value === "number" && isNaN(value));
}

/* 1,234 (whole numbers with separators); an em dash for nothing. */
dagfuncs.vtCount = function (value) {
  return vtMissing(value) ? "—" : Math.round(value).toLocaleString("en-US");
};

/* 1,234.50 */
dagfuncs.vtMoney = function (value) {
  return vtMissing(value)
    ? "—"
    : Number(value).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
};

/* +0.25 / −0.40: sentiment from -1 to 1. */
dagfuncs.vtSigned = function (value) {
  if (vtMissing(value)) return "—";
  var text = Math.abs(value).toFixed(2);
  return (value > 0 ? "+" : value < 0 ? "−" : "") + text;
};

/* 12% */
dagfuncs.vtPercent = function (value) {
  return vtMissing(value) ? "—" : Math.round(value * 100) + "%";
};

function vtPad(n) {
  return (n < 10 ? "0" : "") + n;
}

/* The SLA clock at nowMs for an ISO 8601 UTC deadline: {text, state} with state
   none | running | soon (15 min or less) | breached. "18:42", "1:05:12", "breached 12 min". */
dagfuncs.vtCountdown = function (deadline, nowMs) {
  var at = deadline ? Date.parse(deadline) : NaN;
  if (isNaN(at)) return { text: "—", state: "none" };
  var s = Math.round((at - nowMs) / 1000);
  if (s > 0) {
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var clock = (h > 0 ? h + ":" + vtPad(m) : vtPad(m)) + ":" + vtPad(s % 60);
    return { text: clock, state: s <= 900 ? "soon" : "running" };
  }
  var mins = Math.floor(-s / 60);
  var ago = mins < 1 ? "<1 min" : mins < 90 ? mins + " min" : Math.floor(mins / 60) + " h " + vtPad(mins % 60) + " min";
  return { text: "breached " + ago, state: "breached" };
};
