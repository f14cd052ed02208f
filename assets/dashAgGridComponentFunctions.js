/* Cell renderers the Vantage grids name in their column definitions (React, no JSX). */
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

/* Severity as a coloured badge with a symbol and the word: never colour alone. */
dagcomponentfuncs.VtSeverity = function (props) {
  if (!props.value) return null;
  return React.createElement(
    "span",
    { className: "vt-sevbadge vt-sevbadge-" + String(props.value).replace(/[^a-z]/g, "") },
    String(props.value)
  );
};

/* A live SLA countdown from the cell's ISO 8601 UTC deadline, re-drawn every second. */
dagcomponentfuncs.VtCountdown = function (props) {
  var state = React.useState(Date.now());
  var now = state[0];
  var setNow = state[1];
  React.useEffect(
    function () {
      if (!props.value) return undefined;
      var timer = setInterval(function () {
        setNow(Date.now());
      }, 1000);
      return function () {
        clearInterval(timer);
      };
    },
    [props.value]
  );
  var clock = window.dashAgGridFunctions.vtCountdown(props.value, now);
  var title = props.value
    ? "SLA deadline " + String(props.value).replace("T", " ").replace("Z", " UTC")
    : "No SLA clock running";
  return React.createElement("span", { className: "vt-sla vt-sla-" + clock.state, title: title }, clock.text);
};

/* A subscriber id as a link to its 360 view; the id is text (React escapes it) and URL-encoded. */
dagcomponentfuncs.VtSubscriberLink = function (props) {
  if (props.value == null || props.value === "") return null;
  var id = String(props.value);
  return React.createElement(
    "a",
    { href: "/subscribers/" + encodeURIComponent(id), className: "vt-subscriber-link", title: "Open the subscriber's 360 view" },
    id
  );
};

/* An incident's title; one that KPI anomalies opened with no alarm carries its badge first. */
dagcomponentfuncs.VtIncidentTitle = function (props) {
  var title = props.value == null ? "" : String(props.value);
  if (!props.data || props.data.kind !== "detected") return title;
  return React.createElement(
    "span",
    null,
    React.createElement(
      "span",
      { className: "vt-detectedbadge", title: "Opened by Vantage from KPIs outside their usual band; no network alarm explains it" },
      "Detected — no alarm"
    ),
    " ",
    title
  );
};
