/* The NOC wall (/wall): builds its frame inside #wall-root and keeps it current.
 *
 * - Asks GET /api/v1/wall?have=<panel:version,...> and gets only the panels that changed; the next
 *   request is scheduled when the last one answered (never two at once), none while the tab is
 *   hidden (one at once when it shows again), and the page reloads itself after reloadAfterMs.
 * - Updates text and attributes in place inside a fixed grid: no re-render, no layout jump.
 * - Rotates through the playlist; Space pauses, arrow keys step, F asks for full screen. A new
 *   critical or VIP/enterprise incident jumps to the incidents view and is highlighted.
 * - When a source is late (the server says so) or the server cannot be reached, a banner says
 *   DATA STALE since when and why, and the figures are greyed until data returns.
 */
(function () {
  "use strict";

  // The same shapes as the Incidents page's severity badges, so a colour is never the only cue.
  var SEVERITY_MARK = { critical: "▲", major: "◆", minor: "●", warning: "■", indeterminate: "?", impacted: "◇" };
  var STATUS_MARK = { ok: "✓ OK", warning: "◆ WARNING", critical: "▲ CRITICAL", no_data: "? NO DATA" };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }
  function setText(node, text) {
    text = text === null || text === undefined ? "" : String(text);
    if (node.textContent !== text) { node.textContent = text; }
  }
  function setClass(node, cls) {
    if (node.className !== cls) { node.className = cls; }
  }
  function hhmm(date) {
    return ("0" + date.getHours()).slice(-2) + ":" + ("0" + date.getMinutes()).slice(-2);
  }
  function money(v, currency) {
    if (v === null || v === undefined) { return "—"; }
    var n = Math.round(v);
    var s = Math.abs(n) >= 10000 ? (n / 1000).toFixed(n >= 100000 ? 0 : 1) + "k" : n.toLocaleString("en-US");
    return s + " " + currency;
  }
  function num(v, unit) {
    if (v === null || v === undefined) { return "—"; }
    var a = Math.abs(v);
    var s = a >= 1000 ? Math.round(v).toLocaleString("en-US") : a >= 10 ? v.toFixed(1) : v.toPrecision(3);
    return s + (unit ? " " + unit : "");
  }

  // "◆ 3 cells outside usual band" (sites too when any; "3 cells unusual" where tiles are narrow),
  // "✓ cells in usual band" when none, nothing for a KPI without an anomaly rule.
  function outsideText(o) {
    if (!o) { return { text: "", short: "", count: 0 }; }
    var parts = [];
    if (o.cell) { parts.push(o.cell + (o.cell === 1 ? " cell" : " cells")); }
    if (o.site) { parts.push(o.site + (o.site === 1 ? " site" : " sites")); }
    if (!parts.length) { return { text: "✓ cells in usual band", short: "✓ all usual", count: 0 }; }
    var what = "◆ " + parts.join(", ");
    return { text: what + " outside usual band", short: what + " unusual", count: o.cell + o.site };
  }

  // The convex hull of points [x, y] (Andrew's monotone chain), clockwise; one or two points stay as they are.
  function hull(points) {
    var pts = points.slice().sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
    if (pts.length < 3) { return pts; }
    var cross = function (o, a, b) { return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]); };
    var lower = [], upper = [], i;
    for (i = 0; i < pts.length; i++) {
      while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], pts[i]) <= 0) { lower.pop(); }
      lower.push(pts[i]);
    }
    for (i = pts.length - 1; i >= 0; i--) {
      while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], pts[i]) <= 0) { upper.pop(); }
      upper.push(pts[i]);
    }
    return lower.slice(0, -1).concat(upper.slice(0, -1));
  }

  function Wall(root) {
    this.root = root;
    this.cfg = JSON.parse(root.getAttribute("data-config") || "{}");
    this.have = {};
    this.data = {};
    this.viewIndex = 0;
    this.paused = false;
    this.seenAlerts = null; // ids of alert incidents already shown (null until the first answer)
    this.highlight = {}; // incident id -> highlight end (ms)
    this.holdUntil = 0;
    this.offsetMs = 0; // server clock - browser clock
    this.inFlight = false;
    this.timer = null;
    this.failingSince = null;
    this.lastOk = null;
    this.started = Date.now();
    this.stopped = false;
    this.build();
    this.bind();
    this.showView(0);
    this.poll();
    var self = this;
    this.tick = window.setInterval(function () { self.everySecond(); }, 1000);
  }

  Wall.prototype.build = function () {
    var r = this.root;
    r.textContent = "";
    if (this.cfg.kiosk) { document.body.classList.add("vt-kiosk-body"); }
    document.body.classList.add("vt-wall-body");
    this.banner = el("div", "vt-wall-banner", "");
    this.banner.id = "wall-banner";
    this.banner.setAttribute("role", "alert");
    this.banner.hidden = true;
    // While a fresh store is prepared: the step, a bar and the time left, instead of empty panels.
    this.prep = el("div", "vt-wall-prep");
    this.prep.id = "wall-preparing";
    this.prepText = el("div", "vt-wall-prep-text", "");
    this.prepBar = el("div", "vt-wall-prep-bar");
    this.prepFill = el("div", "vt-wall-prep-fill");
    this.prepBar.appendChild(this.prepFill);
    this.prep.appendChild(this.prepText);
    this.prep.appendChild(this.prepBar);
    this.prep.hidden = true;
    var head = el("div", "vt-wall-head");
    head.appendChild(el("div", "vt-wall-brand", "VANTAGE NOC"));
    this.viewName = el("div", "vt-wall-view", "");
    this.viewName.id = "wall-view";
    this.dots = el("div", "vt-wall-dots");
    var self = this;
    this.cfg.playlist.forEach(function (v) {
      var d = el("span", "vt-wall-dot", v.label);
      self.dots.appendChild(d);
    });
    this.pausedBadge = el("div", "vt-wall-paused", "❚❚ ROTATION PAUSED (Space)");
    this.pausedBadge.hidden = true;
    this.clock = el("div", "vt-wall-clock", "");
    this.asOf = el("div", "vt-wall-asof", "waiting for data…");
    this.asOf.id = "wall-asof";
    [this.viewName, this.dots, this.pausedBadge, this.clock, this.asOf].forEach(function (n) { head.appendChild(n); });

    var grid = el("div", "vt-wall-grid");
    this.grid = grid;
    // Queue: a fixed number of row slots, so rows never push the layout around.
    var queue = this.panel("queue", "Top incidents by value at risk");
    var table = el("table", "vt-wall-queue");
    var thead = el("thead");
    var hr = el("tr");
    ["#", "Incident", "At risk / h", "SLA", "VIP · Ent."].forEach(function (h) { hr.appendChild(el("th", "", h)); });
    thead.appendChild(hr);
    table.appendChild(thead);
    this.rows = [];
    var tbody = el("tbody");
    for (var i = 0; i < this.cfg.top; i++) {
      var tr = el("tr", "vt-wall-row vt-empty");
      var cells = {
        rank: el("td", "vt-q-rank"),
        title: el("td", "vt-q-title"),
        rar: el("td", "vt-q-rar"),
        sla: el("td", "vt-q-sla"),
        vip: el("td", "vt-q-vip"),
      };
      cells.sev = el("span", "vt-q-sev");
      cells.kind = el("span", "vt-q-kind");
      cells.name = el("span", "vt-q-name");
      cells.reason = el("div", "vt-q-reason");
      cells.title.appendChild(cells.sev);
      cells.title.appendChild(cells.kind);
      cells.title.appendChild(cells.name);
      cells.title.appendChild(cells.reason);
      ["rank", "title", "rar", "sla", "vip"].forEach(function (k) { tr.appendChild(cells[k]); });
      tbody.appendChild(tr);
      this.rows.push({ tr: tr, cells: cells, id: null });
    }
    table.appendChild(tbody);
    this.queueEmpty = el("div", "vt-wall-empty", "No open incidents");
    queue.appendChild(table);
    queue.appendChild(this.queueEmpty);

    var spot = this.panel("spotlight", "New incident");
    this.spot = {
      box: spot,
      title: el("div", "vt-spot-title"),
      facts: el("div", "vt-spot-facts"),
      reason: el("div", "vt-spot-reason"),
    };
    spot.appendChild(this.spot.title);
    spot.appendChild(this.spot.facts);
    spot.appendChild(this.spot.reason);

    var map = this.panel("map", "Network");
    this.svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    this.svg.setAttribute("class", "vt-wall-map");
    this.svg.setAttribute("viewBox", "0 0 1000 600");
    this.svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    this.svg.id = "wall-map";
    map.appendChild(this.svg);
    var legend = el("div", "vt-map-legend");
    ["critical", "major", "minor", "warning", "impacted"].forEach(function (s) {
      legend.appendChild(el("span", "vt-map-key vt-site-" + s, SEVERITY_MARK[s] + " " + s));
    });
    legend.appendChild(el("span", "vt-map-key vt-site-ok", "· ok"));
    map.appendChild(legend);
    this.siteNodes = {};
    this.badSites = {};

    var kpis = this.panel("kpis", "Network KPIs");
    this.kpiBox = el("div", "vt-wall-kpis");
    this.kpiBox.id = "wall-kpis";
    kpis.appendChild(this.kpiBox);
    this.kpiTiles = {};

    var money = this.panel("money", "Revenue at risk now");
    this.moneyValue = el("div", "vt-money-value", "—");
    this.moneyValue.id = "wall-money";
    this.moneyNote = el("div", "vt-money-note", "");
    money.appendChild(this.moneyValue);
    money.appendChild(this.moneyNote);

    var sources = this.panel("sources", "Sources");
    this.sourceList = el("ul", "vt-wall-sources");
    this.sourceList.id = "wall-sources";
    sources.appendChild(this.sourceList);

    r.appendChild(this.banner);
    r.appendChild(head);
    r.appendChild(this.prep);
    r.appendChild(grid);
  };

  Wall.prototype.panel = function (name, title) {
    var sec = el("section", "vt-wall-panel vt-p-" + name);
    sec.id = "wall-panel-" + name;
    sec.appendChild(el("h2", "vt-wall-h", title));
    this.grid.appendChild(sec);
    return sec;
  };

  Wall.prototype.bind = function () {
    var self = this;
    this.onKey = function (ev) {
      if (ev.target && /input|textarea|select/i.test(ev.target.tagName)) { return; }
      if (ev.code === "Space" || ev.key === " " || ev.key === "p") {
        ev.preventDefault();
        self.setPaused(!self.paused);
      } else if (ev.key === "ArrowRight") {
        self.showView(self.viewIndex + 1);
      } else if (ev.key === "ArrowLeft") {
        self.showView(self.viewIndex - 1 + self.cfg.playlist.length);
      } else if (ev.key === "f" && document.documentElement.requestFullscreen && !document.fullscreenElement) {
        document.documentElement.requestFullscreen().catch(function () { return null; });
      }
    };
    this.onVisible = function () {
      if (document.hidden) {
        window.clearTimeout(self.timer);
        self.timer = null;
      } else if (!self.inFlight && self.timer === null) {
        if (Date.now() - self.started > self.cfg.reloadAfterMs) { window.location.reload(); return; }
        self.poll();
      }
    };
    document.addEventListener("keydown", this.onKey);
    document.addEventListener("visibilitychange", this.onVisible);
    this.onResize = function () { self.fitMap(); };
    window.addEventListener("resize", this.onResize);
  };

  Wall.prototype.stop = function () {
    this.stopped = true;
    window.clearTimeout(this.timer);
    window.clearTimeout(this.viewTimer);
    window.clearInterval(this.tick);
    document.removeEventListener("keydown", this.onKey);
    document.removeEventListener("visibilitychange", this.onVisible);
    window.removeEventListener("resize", this.onResize);
    document.body.classList.remove("vt-kiosk-body", "vt-wall-body");
  };

  Wall.prototype.setPaused = function (paused) {
    this.paused = paused;
    this.pausedBadge.hidden = !paused;
    this.root.setAttribute("data-paused", paused ? "1" : "0");
    if (!paused) { this.showView(this.viewIndex); }
    else { window.clearTimeout(this.viewTimer); }
  };

  Wall.prototype.showView = function (index, holdMs) {
    var list = this.cfg.playlist;
    this.viewIndex = ((index % list.length) + list.length) % list.length;
    var view = list[this.viewIndex];
    this.showNamed(view.view, view.label);
    var kids = this.dots.children;
    for (var i = 0; i < kids.length; i++) { setClass(kids[i], "vt-wall-dot" + (i === this.viewIndex ? " vt-on" : "")); }
    window.clearTimeout(this.viewTimer);
    if (this.paused) { return; }
    var self = this;
    this.viewTimer = window.setTimeout(function () { self.showView(self.viewIndex + 1); }, holdMs || view.ms);
  };

  Wall.prototype.showNamed = function (name, label) {
    this.root.setAttribute("data-view", name);
    setClass(this.grid, "vt-wall-grid vt-view-" + name);
    setText(this.viewName, label);
    this.fitMap();
  };

  // The map's drawing follows its panel's shape: redrawn when the view or the window changes it.
  Wall.prototype.fitMap = function () {
    if (!this.data || !this.data.site_map || !this.svg.getBoundingClientRect) { return; }
    var box = this.svg.getBoundingClientRect();
    var shape = box.width > 0 && box.height > 0 ? Math.round(100 * box.width / box.height) : 0;
    if (!shape || shape === this.mapShape) { return; }
    this.mapShape = shape;
    this.renderSiteMap();
    this.renderSites();
  };

  Wall.prototype.jumpTo = function (incident) {
    var idx = -1;
    this.cfg.playlist.forEach(function (v, i) { if (idx < 0 && v.view === "incidents") { idx = i; } });
    this.highlight[incident.id] = Date.now() + this.cfg.jumpHoldMs;
    this.spotlight = incident;
    this.renderSpotlight();
    this.renderQueue();
    if (idx >= 0) {
      this.showView(idx, this.cfg.jumpHoldMs);
    } else {
      this.showNamed("incidents", "Incidents");
      var self = this;
      window.clearTimeout(this.viewTimer);
      this.viewTimer = window.setTimeout(function () { self.showView(self.viewIndex + 1); }, this.cfg.jumpHoldMs);
    }
  };

  // --- fetching -------------------------------------------------------------------------------

  Wall.prototype.poll = function () {
    if (this.stopped || this.inFlight || document.hidden) { return; }
    if (Date.now() - this.started > this.cfg.reloadAfterMs) { window.location.reload(); return; }
    this.inFlight = true;
    this.timer = null;
    var self = this;
    var have = Object.keys(this.have).map(function (k) { return k + ":" + self.have[k]; }).join(",");
    var ctrl = window.AbortController ? new AbortController() : null;
    var guard = window.setTimeout(function () { if (ctrl) { ctrl.abort(); } }, Math.max(this.cfg.refreshMs, 5000));
    var sent = Date.now();
    fetch(this.cfg.api + "?have=" + encodeURIComponent(have), {
      cache: "no-store",
      credentials: "same-origin",
      // A timer, not a person: the feed does not keep an idle session alive.
      headers: { "X-Vantage-Passive": "1" },
      signal: ctrl ? ctrl.signal : undefined,
    })
      .then(function (resp) {
        if (resp.status === 401) {
          // The session or the kiosk token ended: to the login page, back here afterwards.
          self.stopped = true;
          window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
        }
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.json();
      })
      .then(function (body) { self.apply(body, sent); })
      .catch(function () { self.unreachable(); })
      .then(function () {
        window.clearTimeout(guard);
        self.inFlight = false;
        if (!self.stopped && !document.hidden) {
          self.timer = window.setTimeout(function () { self.poll(); }, self.cfg.refreshMs);
        }
      });
  };

  Wall.prototype.apply = function (body, sent) {
    var self = this;
    var serverNow = Date.parse(body.now);
    var rtt = Date.now() - sent;
    // Set the clock from quick answers only: a slow one would shift every countdown by its delay.
    if (!isNaN(serverNow) && (this.bestRtt === undefined || rtt <= this.bestRtt + 100)) {
      this.offsetMs = serverNow - (sent + Date.now()) / 2;
      this.bestRtt = this.bestRtt === undefined ? rtt : Math.min(this.bestRtt, rtt);
    }
    var p = body.panels || {};
    Object.keys(p).forEach(function (name) { if (name !== "sites_delta") { self.data[name] = p[name]; } });
    var versions = body.versions || {};
    if (p.sites_delta) {
      var d = p.sites_delta;
      if (d.base === this.have.sites && this.data.sites) {
        var next = Object.assign({}, this.data.sites, d.set);
        d.clear.forEach(function (id) { delete next[id]; });
        this.data.sites = next;
        p.sites = next; // render as if the whole panel had come
      } else {
        delete versions.sites; // out of step: ask for the whole panel next time
      }
    }
    this.have = versions;
    this.failingSince = null;
    this.lastOk = new Date();
    this.renderPreparing(body.preparing || null);
    if ("site_map" in p) { this.renderSiteMap(); }
    if ("site_map" in p || "sites" in p) { this.renderSites(); }
    if ("queue" in p) { this.renderQueue(); }
    if ("kpis" in p) { this.renderKpis(); }
    if ("money" in p) { this.renderMoney(); }
    if ("sources" in p) { this.renderSources(); }
    if ("alerts" in p) { this.checkAlerts(); }
    this.renderStale(body.stale || { stale: false });
    setText(this.asOf, "as of " + hhmm(new Date(serverNow || Date.now())));
  };

  Wall.prototype.unreachable = function () {
    if (this.failingSince === null) { this.failingSince = new Date(); }
    var since = this.lastOk || this.failingSince;
    this.renderStale({
      stale: true,
      sinceText: hhmm(since),
      text: "server unreachable since " + hhmm(this.failingSince) + (this.lastOk ? "; figures from " + hhmm(this.lastOk) : ""),
    });
  };

  // --- rendering ------------------------------------------------------------------------------

  Wall.prototype.renderStale = function (s) {
    var stale = !!s.stale;
    this.root.classList.toggle("vt-stale", stale);
    this.banner.hidden = !stale;
    if (stale) {
      var since = s.sinceText || (s.since ? hhmm(new Date(Date.parse(s.since))) : "");
      setText(this.banner, "DATA STALE" + (since ? " since " + since : "") + " — " + (s.text || "a source is late"));
    }
  };

  Wall.prototype.renderPreparing = function (p) {
    this.preparing = p;
    this.prep.hidden = !p;
    if (p) {
      var left = p.remaining_s < 90 ? "about " + p.remaining_s + " s left" : "about " + Math.round(p.remaining_s / 60) + " min left";
      setText(this.prepText, "PREPARING · step " + p.step + " of " + p.steps + ": " + p.label + " · " + p.percent + "% · " + left);
      this.prepFill.style.width = p.percent + "%";
    }
    var was = this.kpiPending;
    this.kpiPending = this.waitingFor(["samples", "evaluation"]);
    setText(this.queueEmpty, this.waitingFor(["events", "queue"]) ? "Incident queue being prepared…" : "No open incidents");
    var kpiWait = this.kpiBox.querySelector(".vt-wall-empty");
    if (kpiWait) { setText(kpiWait, this.kpiPending ? "KPIs being rolled up…" : "KPIs not evaluated yet"); }
    if (was !== undefined && was !== this.kpiPending) { this.renderKpis(); }
  };

  // Whether the preparation of a fresh store has yet to run any of the steps ``keys``.
  Wall.prototype.waitingFor = function (keys) {
    var p = this.preparing;
    return !!p && keys.some(function (k) { return p.done.indexOf(k) < 0 && p.failed.indexOf(k) < 0; });
  };

  Wall.prototype.renderQueue = function () {
    var q = this.data.queue || [];
    var now = Date.now();
    for (var i = 0; i < this.rows.length; i++) {
      var row = this.rows[i];
      var inc = q[i];
      var c = row.cells;
      if (!inc) {
        row.id = null;
        setClass(row.tr, "vt-wall-row vt-empty");
        ["rank", "rar", "sla", "vip"].forEach(function (k) { setText(c[k], ""); });
        setText(c.sev, ""); setText(c.kind, ""); setText(c.name, ""); setText(c.reason, "");
        row.tr.removeAttribute("data-id");
        continue;
      }
      row.id = inc.id;
      row.tr.setAttribute("data-id", inc.id);
      var hl = this.highlight[inc.id] && this.highlight[inc.id] > now;
      setClass(row.tr, "vt-wall-row vt-sev-" + inc.severity + (hl ? " vt-new" : ""));
      setText(c.rank, inc.rank);
      setText(c.sev, (SEVERITY_MARK[inc.severity] || "") + " " + inc.severity.toUpperCase());
      setClass(c.sev, "vt-q-sev vt-sevtext-" + inc.severity);
      setText(c.kind, inc.kind === "detected" ? "◎ DETECTED" : ""); // the reason says "no alarm"
      setText(c.name, inc.title);
      setText(c.reason, inc.reason);
      setText(c.rar, money(inc.rar, this.cfg.currency));
      var parts = [];
      if (inc.vip) { parts.push(Math.round(inc.vip) + " VIP"); }
      if (inc.ent) { parts.push(Math.round(inc.ent) + " ent."); }
      setText(c.vip, parts.join(" · ") || "—");
      row.sla = inc.sla ? Date.parse(inc.sla) : null;
      row.breached = inc.breached > 0;
    }
    this.queueEmpty.hidden = q.length > 0;
    this.renderClocks();
  };

  Wall.prototype.renderClocks = function () {
    var now = Date.now() + this.offsetMs;
    for (var i = 0; i < this.rows.length; i++) {
      var row = this.rows[i];
      var cell = row.cells.sla;
      if (!row.id || (!row.sla && !row.breached)) { setText(cell, row.id ? "—" : ""); setClass(cell, "vt-q-sla"); continue; }
      var left = row.sla ? Math.floor((row.sla - now) / 1000) : -1;
      if (left <= 0 || (row.breached && !row.sla)) {
        setText(cell, "BREACHED");
        setClass(cell, "vt-q-sla vt-sla-breached");
      } else {
        var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
        setText(cell, (h ? h + "h " : "") + ("0" + m).slice(-2) + "m " + ("0" + s).slice(-2) + "s");
        setClass(cell, "vt-q-sla" + (left <= 900 ? " vt-sla-soon" : ""));
      }
    }
  };

  Wall.prototype.checkAlerts = function () {
    var alerts = this.data.alerts || [];
    if (this.seenAlerts === null) { // the first answer: what is already open is not news
      this.seenAlerts = {};
      for (var i = 0; i < alerts.length; i++) { this.seenAlerts[alerts[i].id] = true; }
      return;
    }
    for (var j = alerts.length - 1; j >= 0; j--) {
      var inc = alerts[j];
      if (!this.seenAlerts[inc.id]) {
        this.seenAlerts[inc.id] = true;
        this.jumpTo(inc);
      }
    }
  };

  Wall.prototype.renderSpotlight = function () {
    var inc = this.spotlight;
    if (!inc) { return; }
    this.spot.box.setAttribute("data-id", inc.id);
    setText(this.spot.title, (SEVERITY_MARK[inc.severity] || "") + " " + inc.severity.toUpperCase() +
      (inc.kind === "detected" ? " · ◎ DETECTED — NO ALARM" : "") + " · #" + inc.rank + " " + inc.title);
    var facts = [money(inc.rar, this.cfg.currency) + "/h at risk"];
    if (inc.vip) { facts.push(Math.round(inc.vip) + " VIP lines"); }
    if (inc.ent) { facts.push(Math.round(inc.ent) + " enterprise lines"); }
    if (inc.accounts) { facts.push(inc.accounts + " business accounts"); }
    setText(this.spot.facts, facts.join(" · "));
    setText(this.spot.reason, inc.reason);
  };

  Wall.prototype.renderSiteMap = function () {
    var sites = this.data.site_map || [];
    var svg = this.svg;
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    this.siteNodes = {};
    this.badSites = {};
    if (!sites.length) { return; }
    var minLa = Infinity, maxLa = -Infinity, minLo = Infinity, maxLo = -Infinity;
    sites.forEach(function (s) {
      minLa = Math.min(minLa, s[2]); maxLa = Math.max(maxLa, s[2]);
      minLo = Math.min(minLo, s[3]); maxLo = Math.max(maxLo, s[3]);
    });
    // The drawing takes the network's own shape (equirectangular at its mid latitude), so the SVG
    // fills its panel's height or width instead of a fixed 5:3 box around a tall or wide country.
    var midLa = (minLa + maxLa) / 2 * Math.PI / 180;
    var w = Math.max((maxLo - minLo) * Math.cos(midLa), 1e-6), h = Math.max(maxLa - minLa, 1e-6);
    var box = this.svg.parentNode ? this.svg.getBoundingClientRect() : null;
    var aspect = box && box.width > 0 && box.height > 0 ? box.width / box.height : 5 / 3;
    this.mapShape = Math.round(100 * aspect);
    var H = 600, W = Math.round(H * aspect), pad = 60;
    var scale = Math.min((W - 2 * pad) / w, (H - 2 * pad) / h);
    var ox = (W - w * scale) / 2, oy = (H - h * scale) / 2;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    var regionsLayer = document.createElementNS("http://www.w3.org/2000/svg", "g");
    regionsLayer.setAttribute("class", "vt-regions");
    var ok = document.createElementNS("http://www.w3.org/2000/svg", "g");
    ok.setAttribute("class", "vt-sites-ok");
    this.badLayer = document.createElementNS("http://www.w3.org/2000/svg", "g");
    var self = this;
    this.sitePos = {};
    var byRegion = {};
    sites.forEach(function (s) {
      var x = ox + (s[3] - minLo) * Math.cos(midLa) * scale;
      var y = oy + (maxLa - s[2]) * scale;
      self.sitePos[s[0]] = [x, y, s[1]];
      if (s[4]) { (byRegion[s[4]] = byRegion[s[4]] || []).push([x, y]); }
      var c = document.createElementNS("http://www.w3.org/2000/svg", "circle");
      c.setAttribute("cx", x.toFixed(1)); c.setAttribute("cy", y.toFixed(1)); c.setAttribute("r", "7");
      ok.appendChild(c);
    });
    var placed = []; // label boxes already drawn: a name never lands on another
    Object.keys(byRegion).sort().forEach(function (name) {
      var pts = hull(byRegion[name]);
      var outline = document.createElementNS("http://www.w3.org/2000/svg", "path");
      outline.setAttribute("class", "vt-region");
      outline.setAttribute("d", "M" + pts.map(function (q) { return q[0].toFixed(1) + "," + q[1].toFixed(1); }).join("L") + "Z");
      regionsLayer.appendChild(outline);
      // The name beside the outline, level with its middle, on the side with more room.
      var right = pts.reduce(function (a, q) { return Math.max(a, q[0]); }, -Infinity);
      var left = pts.reduce(function (a, q) { return Math.min(a, q[0]); }, Infinity);
      var cy = pts.reduce(function (a, q) { return a + q[1]; }, 0) / pts.length;
      var onRight = W - right >= left;
      var lx = onRight ? right + 30 : left - 30;
      var width = name.length * 17, x0 = onRight ? lx : lx - width;
      var clash = function (b) { return x0 < b[0] + b[2] && b[0] < x0 + width && Math.abs(cy - b[1]) < 30; };
      for (var tries = 0; tries < 6 && placed.some(clash); tries++) { cy += 32; }
      placed.push([x0, cy, width]);
      var label = document.createElementNS("http://www.w3.org/2000/svg", "text");
      label.setAttribute("class", "vt-region-label");
      label.setAttribute("x", lx.toFixed(1));
      label.setAttribute("y", cy.toFixed(1));
      label.setAttribute("dominant-baseline", "central");
      label.setAttribute("text-anchor", onRight ? "start" : "end");
      label.textContent = name;
      regionsLayer.appendChild(label);
    });
    svg.appendChild(regionsLayer);
    svg.appendChild(ok);
    svg.appendChild(this.badLayer);
  };

  Wall.prototype.renderSites = function () {
    if (!this.sitePos || !this.badLayer) { return; }
    var bad = this.data.sites || {};
    var layer = this.badLayer;
    var self = this;
    Object.keys(this.badSites).forEach(function (id) {
      if (bad[id] !== self.badSites[id].status) { layer.removeChild(self.badSites[id].node); delete self.badSites[id]; }
    });
    Object.keys(bad).forEach(function (id) {
      if (self.badSites[id] || !self.sitePos[id]) { return; }
      var p = self.sitePos[id], status = bad[id];
      var t = document.createElementNS("http://www.w3.org/2000/svg", "text");
      t.setAttribute("x", p[0].toFixed(1)); t.setAttribute("y", p[1].toFixed(1));
      t.setAttribute("class", "vt-site vt-site-" + status);
      t.setAttribute("text-anchor", "middle"); t.setAttribute("dominant-baseline", "central");
      t.textContent = SEVERITY_MARK[status] || "●";
      var title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = p[2] + ": " + status;
      t.appendChild(title);
      layer.appendChild(t);
      self.badSites[id] = { node: t, status: status };
    });
  };

  Wall.prototype.renderKpis = function () {
    var kpis = this.data.kpis || [];
    var self = this;
    var seen = {};
    // One row of tiles on the overview, however many headline KPIs the catalogue has (up to 8).
    this.kpiBox.style.setProperty("--vt-kpi-n", String(Math.max(1, Math.min(kpis.length, 8))));
    var placeholder = this.kpiBox.querySelector(".vt-wall-empty");
    if (placeholder) { this.kpiBox.removeChild(placeholder); }
    kpis.forEach(function (k) {
      seen[k.name] = true;
      var tile = self.kpiTiles[k.name];
      if (!tile) {
        var box = el("div", "vt-kpi-tile");
        box.id = "wall-kpi-" + k.name;
        tile = { box: box, label: el("div", "vt-kpi-label", k.label), value: el("div", "vt-kpi-value"), status: el("div", "vt-kpi-status") };
        // How many cells and sites are outside their usual band: a fixed slot, empty when no rule.
        tile.outside = el("div", "vt-kpi-outside");
        tile.offLong = el("span", "vt-off-long");
        tile.offShort = el("span", "vt-off-short");
        tile.outside.appendChild(tile.offLong);
        tile.outside.appendChild(tile.offShort);
        tile.num = el("span", "vt-kpi-num");
        tile.unit = el("span", "vt-kpi-unit", " " + k.unit);
        tile.value.appendChild(tile.num);
        tile.value.appendChild(tile.unit);
        tile.svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
        tile.svg.setAttribute("viewBox", "0 0 100 24");
        tile.svg.setAttribute("preserveAspectRatio", "none");
        tile.svg.setAttribute("class", "vt-kpi-spark");
        tile.path = document.createElementNS("http://www.w3.org/2000/svg", "path");
        tile.svg.appendChild(tile.path);
        [tile.label, tile.value, tile.status, tile.outside, tile.svg].forEach(function (n) { box.appendChild(n); });
        self.kpiBox.appendChild(box);
        self.kpiTiles[k.name] = tile;
      }
      setClass(tile.box, "vt-kpi-tile vt-kpi-" + k.status);
      setText(tile.num, num(k.value, ""));
      // No data because the roll-ups are still being prepared is not "no data": say which.
      var pending = k.status === "no_data" && self.waitingFor(["samples", "evaluation"]);
      setText(tile.status, pending ? "◌ PREPARING" : STATUS_MARK[k.status] || k.status);
      var off = outsideText(k.outside);
      setText(tile.offLong, off.text);
      setText(tile.offShort, off.short);
      setClass(tile.outside, "vt-kpi-outside" + (off.count ? " vt-off" : ""));
      var pts = (k.spark || []).map(function (v, i) { return [i, v]; }).filter(function (p) { return p[1] !== null; });
      var d = "";
      if (pts.length > 1) {
        var lo = Math.min.apply(null, pts.map(function (p) { return p[1]; }));
        var hi = Math.max.apply(null, pts.map(function (p) { return p[1]; }));
        var span = hi - lo || 1, n = Math.max(k.spark.length - 1, 1);
        d = pts.map(function (p, i) {
          return (i ? "L" : "M") + (p[0] * 100 / n).toFixed(1) + "," + (22 - (p[1] - lo) * 20 / span).toFixed(1);
        }).join(" ");
      }
      if (tile.path.getAttribute("d") !== d) { tile.path.setAttribute("d", d); }
    });
    Object.keys(this.kpiTiles).forEach(function (name) {
      if (!seen[name]) { self.kpiBox.removeChild(self.kpiTiles[name].box); delete self.kpiTiles[name]; }
    });
    if (!kpis.length) { setText(this.kpiBox, ""); this.kpiBox.appendChild(el("div", "vt-wall-empty", "KPIs not evaluated yet")); this.kpiTiles = {}; }
  };

  Wall.prototype.renderMoney = function () {
    var m = this.data.money || {};
    setText(this.moneyValue, money(m.rar, m.currency || this.cfg.currency) + " / h");
    var open = m.incidents || 0;
    setText(this.moneyNote, open + (open === 1 ? " open incident" : " open incidents") +
      (m.detected ? " · ◎ " + m.detected + " detected, no alarm" : "") +
      (m.breached ? " · " + m.breached + " SLA breached" : ""));
  };

  Wall.prototype.renderSources = function () {
    var list = this.sourceList;
    var sources = this.data.sources || [];
    while (list.children.length > sources.length) { list.removeChild(list.lastChild); }
    sources.forEach(function (s, i) {
      var li = list.children[i];
      if (!li) { li = el("li"); list.appendChild(li); }
      setClass(li, "vt-source " + (s.fresh ? "vt-source-fresh" : "vt-source-stale"));
      var last = s.last ? hhmm(new Date(Date.parse(s.last))) : "never";
      setText(li, (s.fresh ? "● " : "▲ ") + s.name + " — " + (s.fresh ? "fresh, " + last : s.freshness.toUpperCase() + " (" + s.state + "), last " + last));
    });
  };

  Wall.prototype.everySecond = function () {
    if (!document.body.contains(this.root)) { this.stop(); return; }
    var now = new Date(Date.now() + this.offsetMs);
    setText(this.clock, hhmm(now) + ":" + ("0" + now.getSeconds()).slice(-2));
    this.renderClocks();
    var t = Date.now(), changed = false, self = this;
    Object.keys(this.highlight).forEach(function (id) { if (self.highlight[id] <= t) { delete self.highlight[id]; changed = true; } });
    if (changed) { this.renderQueue(); }
    if (this.failingSince !== null) { this.unreachable(); }
  };

  // Dash renders pages after load and on navigation: start when the frame appears.
  var current = null;
  function watch() {
    var root = document.getElementById("wall-root");
    if (root && (!current || current.root !== root)) {
      if (current) { current.stop(); }
      current = new Wall(root);
      window.vantageWall = current;
    } else if (!root && current) {
      current.stop();
      current = null;
    }
  }
  new MutationObserver(watch).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", watch);
})();
