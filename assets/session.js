/* When a session ends (idle, too old, the user disabled), the server answers the page's next
   callback with 401. Dash would only log it; this sends the person to the login page instead, and
   brings them back to where they were. */
(function () {
  "use strict";
  if (!window.fetch || window.__vantageSessionWatch) { return; }
  window.__vantageSessionWatch = true;
  var original = window.fetch;
  window.fetch = function (input, init) {
    return original.apply(this, arguments).then(function (response) {
      var url = typeof input === "string" ? input : (input && input.url) || "";
      if (response.status === 401 && url.indexOf("/_dash-update-component") !== -1) {
        var here = window.location.pathname + window.location.search;
        window.location.assign("/login?next=" + encodeURIComponent(here));
      }
      return response;
    });
  };
})();
