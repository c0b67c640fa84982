// strangler status page: fetches api/status, api/routes and api/progress/history
// (relative to this page) every REFRESH seconds and fills the page in. The shares shown
// are those of the chosen window (?window=5m|1h|24h|all, default 1h). Text only: route names and learned
// legacy paths come from config and from clients, so nothing is ever parsed as HTML.
//
// Number formats (tests read them through the data-testid attributes):
//   percentages  x.toFixed(1) + "%"   e.g. "37.5%"  ("—" for a route with no requests)
//   counts       en-US grouping       e.g. "12,345"
//   timestamps   "YYYY-MM-DD HH:MM:SS UTC", the API's ISO time in the datetime attribute
"use strict";

(() => {
  const params = new URLSearchParams(window.location.search);
  const REFRESH_S = clamp(Math.round(Number(params.get("refresh")) || 5), 1, 300);
  const TIMEOUT_MS = 5000; // a fetch with no answer by then counts as "unreachable"
  const BACKLOG_ROWS = 20;
  const WINDOWS = { "5m": "last 5 minutes", "1h": "last hour", "24h": "last 24 hours", all: "since tracking began" };
  let win = WINDOWS[params.get("window")] ? params.get("window") : "1h";
  let lastData = null; // [status, releases]: re-rendered when the window changes
  const SVG = "http://www.w3.org/2000/svg";
  const COUNT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const STATUS_TEXT = {
    active: "active",
    "rolled-back": "rolled back",
    "guard-tripped": "guard tripped",
  };

  const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
  const main = document.getElementById("main");
  const routesBox = $("routes");
  const cards = new Map(); // route name -> {root, fields}
  let lastOk = null;
  let lastBacklogKey = "";
  let lastDecomKey = "";
  let lastHistoryKey = "";
  let cardSeq = 0;

  function clamp(x, lo, hi) {
    return Math.min(hi, Math.max(lo, x));
  }

  function pct(x) {
    return `${Number(x).toFixed(1)}%`;
  }

  function count(n) {
    return COUNT.format(n);
  }

  // "2026-01-31T12:00:00Z" -> "2026-01-31 12:00:00 UTC", in two spans that wrap as wholes
  function utcNodes(iso) {
    if (!iso) return ["never"];
    const [date, time] = iso.replace("Z", "").split("T");
    return [el("span", { class: "nowrap" }, date), " ", el("span", { class: "nowrap" }, `${time} UTC`)];
  }

  function ago(iso, now) {
    const s = Math.max(0, (now - Date.parse(iso)) / 1000);
    if (s < 60) return "under a minute ago"; // tables are redrawn once a minute at most
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  // Only touch a node whose text changes, so aria-live regions announce real changes.
  function setText(el, text) {
    const value = String(text);
    if (el.textContent !== value) el.textContent = value;
  }

  function setAttr(el, name, value) {
    if (el.getAttribute(name) !== value) el.setAttribute(name, value);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  // A route's (or the overall) figures in the chosen window; the cumulative ones from
  // an older proxy that serves no windows.
  function fig(row) {
    const w = row.windows && row.windows[win];
    if (w) return w;
    const share = row.new_share !== undefined ? row.new_share : row.migrated_ratio;
    return { requests: row.requests, new: row.new, legacy: row.legacy, new_share: share };
  }

  function setBar(bar, newPart, legacyPart, total, label) {
    const [segNew, segLegacy] = bar.children;
    const n = total > 0 ? (100 * newPart) / total : 0;
    const l = total > 0 ? (100 * legacyPart) / total : 0;
    segNew.style.width = `${n}%`;
    segLegacy.style.width = `${l}%`;
    bar.classList.toggle("split", n > 0 && l > 0); // a gap between the two parts
    setAttr(bar, "aria-label", label);
  }

  function bar(testid) {
    return el(
      "div",
      { class: "bar", role: "img", "data-testid": testid, "aria-label": "" },
      el("span", { class: "seg new" }),
      el("span", { class: "seg legacy" }),
    );
  }

  function fact(label, testid) {
    const dd = el("dd", { "data-testid": testid });
    return [el("div", {}, el("dt", {}, label), dd), dd];
  }

  function makeCard(name) {
    const id = `route-h-${++cardSeq}`;
    const t = (suffix) => `route-${name}-${suffix}`;
    const f = {};
    f.name = el("span", { "data-testid": t("name") }, name);
    f.owner = el("span", { "data-testid": t("owner") });
    f.state = el("span", { class: "badge", "data-testid": t("state") });
    f.status = el("span", { class: "badge", "data-testid": t("status") });
    f.bar = bar(t("bar"));
    const facts = el("dl", { class: "facts" });
    for (const [key, label, suffix] of [
      ["newShare", "New service", "new-share"],
      ["legacyShare", "Legacy", "legacy-share"],
      ["requests", "Requests", "requests"],
      ["canary", "New side gets now", "canary"],
    ]) {
      const [box, dd] = fact(label, t(suffix));
      f[key] = dd;
      facts.append(box);
    }
    f.errorRatio = el("span", { "data-testid": t("error-ratio") });
    f.health = el("span", { class: "health", "data-testid": t("health") });
    facts.append(el("div", {}, el("dt", {}, "Errors"), el("dd", {}, f.errorRatio, f.health)));
    f.guard = el("p", { class: "guard-reason", "data-testid": t("guard-reason"), hidden: "" });
    f.slo = el("p", { class: "slo", "data-testid": t("slo"), hidden: "" });
    const root = el(
      "article",
      { class: "route", "data-testid": `route-${name}`, "aria-labelledby": id },
      el(
        "div",
        { class: "route-head" },
        el("h3", { id }, f.name),
        el("p", { class: "owner" }, "Owner ", f.owner),
        el("p", { class: "badges" }, f.state, " ", f.status),
      ),
      el("div", { class: "route-body" }, f.bar, facts, f.guard, f.slo),
    );
    return { root, f };
  }

  function health(row, release) {
    const guard = release && release.guard;
    if ((release && release.status === "guard-tripped") || (guard && guard.breached)) {
      return ["breached", "SLO breached"];
    }
    if (row.requests === 0) return ["idle", "no traffic"];
    if (row.errors > 0) return ["errors", `${count(row.errors)} failed`];
    return ["ok", "no errors"];
  }

  function sloText(release) {
    if (!release || !release.slo || !release.guard) return "";
    const g = release.guard;
    const slo = release.slo;
    const parts = [`SLO window (new side): ${count(g.requests)} answers`];
    if (slo.error_rate !== null && slo.error_rate !== undefined) {
      parts.push(`errors ${pct(g.error_ratio * 100)} of ${pct(slo.error_rate * 100)} allowed`);
    }
    if (g.budget_remaining !== null && g.budget_remaining !== undefined) {
      parts.push(`error budget left ${pct(g.budget_remaining * 100)}`);
    }
    if (!g.enough) parts.push(`judged from ${count(slo.min_requests)} answers`);
    return parts.join(" · ");
  }

  function renderRoute(card, row, release) {
    const f = card.f;
    setText(f.owner, row.owner || "—");
    setText(f.state, row.state);
    setAttr(f.state, "class", `badge state-${row.state}`);
    const status = release ? release.status : "unknown";
    setText(f.status, STATUS_TEXT[status] || status);
    setAttr(f.status, "class", `badge status-${status}`);
    const w = fig(row);
    const has = w.requests > 0;
    setText(f.newShare, has ? pct(w.new_share * 100) : "—");
    setText(f.legacyShare, has ? pct((w.legacy / w.requests) * 100) : "—");
    setText(f.requests, count(w.requests));
    setText(f.canary, release ? pct(release.effective_new_percent) : "—");
    setText(f.errorRatio, row.requests > 0 ? pct(row.error_ratio * 100) : "—");
    const [word, text] = health(row, release);
    setText(f.health, text);
    setAttr(f.health, "class", `health health-${word}`);
    const reason =
      release && release.state && release.state.guard_reason ? release.state.guard_reason : "";
    const bad = status === "rolled-back" || status === "guard-tripped";
    let guardText = "";
    if (status === "guard-tripped") guardText = `Guard tripped: ${reason || "SLO breached"}`;
    else if (status === "rolled-back") guardText = "Rolled back: every request goes to its primary";
    setText(f.guard, guardText);
    f.guard.hidden = guardText === "";
    const slo = sloText(release);
    setText(f.slo, slo);
    f.slo.hidden = slo === "";
    card.root.classList.toggle("is-bad", bad);
    const label = has
      ? `${row.name}: ${pct(w.new_share * 100)} answered by the new service, ` +
        `${pct((w.legacy / w.requests) * 100)} by legacy (${WINDOWS[win]})`
      : `${row.name}: no requests (${WINDOWS[win]})`;
    setBar(f.bar, w.new, w.legacy, w.requests, label);
  }

  function renderRoutes(status, releases) {
    const byName = new Map((releases.routes || []).map((r) => [r.name, r]));
    const seen = new Set();
    let previous = null;
    for (const row of status.routes) {
      seen.add(row.name);
      let card = cards.get(row.name);
      if (!card) {
        card = makeCard(row.name);
        cards.set(row.name, card);
      }
      renderRoute(card, row, byName.get(row.name));
      // keep config order without re-inserting nodes that are already in place
      const want = previous ? previous.nextSibling : routesBox.firstChild;
      if (want !== card.root) routesBox.insertBefore(card.root, want);
      previous = card.root;
    }
    for (const [name, card] of cards) {
      if (!seen.has(name)) {
        card.root.remove();
        cards.delete(name);
      }
    }
    setText($("routes-count"), `(${status.routes.length})`);
    $("routes-empty").hidden = status.routes.length > 0;
  }

  // "GET /a/b" with a line-break opportunity after each "/" (long paths wrap whole segments)
  function endpointNodes(endpoint) {
    const out = [];
    endpoint.split("/").forEach((part, i, all) => {
      out.push(i < all.length - 1 ? `${part}/` : part);
      if (i < all.length - 1) out.push(el("wbr"));
    });
    return out;
  }

  function timeCell(iso, now, testid) {
    return el(
      "td",
      {},
      el("time", { datetime: iso || "", "data-testid": testid }, ...utcNodes(iso)),
      el("span", { class: "ago" }, iso ? ago(iso, now) : ""),
    );
  }

  function renderBacklog(status, now) {
    const rows = status.backlog.slice(0, BACKLOG_ROWS);
    setText($("backlog-shown"), count(rows.length));
    setText($("backlog-total"), count(status.backlog_total));
    const empty = $("backlog-empty");
    setText(
      empty,
      status.overall.requests > 0
        ? "Nothing left: every request seen was claimed by a route."
        : "No requests seen yet.",
    );
    empty.hidden = rows.length > 0;
    $("backlog-table").hidden = rows.length === 0;
    // rebuilt only when the figures change; "ago" texts refresh with them
    const key = JSON.stringify(rows) + Math.floor(now / 60000);
    if (key === lastBacklogKey) return;
    lastBacklogKey = key;
    const body = $("backlog-body");
    body.replaceChildren(
      ...rows.map((e) => {
        const req = el("td", { class: "num" }, el("span", { "data-testid": "backlog-requests" }, count(e.requests)));
        if (e.overcount > 0) {
          req.append(el("span", { class: "approx" }, `estimate: at most ${count(e.overcount)} high`));
        }
        return el(
          "tr",
          { "data-testid": "backlog-row" },
          el("td", {}, el("code", { "data-testid": "backlog-endpoint" }, ...endpointNodes(e.endpoint))),
          req,
          el("td", { class: "num", "data-testid": "backlog-share" }, pct(e.share * 100)),
          timeCell(e.last_seen, now, "backlog-last-seen"),
        );
      }),
    );
  }

  function renderDecommission(status, now) {
    const rows = status.decommission;
    setText($("idle-after-days"), String(status.idle_after_days));
    $("decommission-empty").hidden = rows.length > 0;
    $("decommission-table").hidden = rows.length === 0;
    const key = JSON.stringify(rows) + Math.floor(now / 60000);
    if (key === lastDecomKey) return;
    lastDecomKey = key;
    $("decommission-body").replaceChildren(
      ...rows.map((c) =>
        el(
          "tr",
          { "data-testid": "decommission-row" },
          el(
            "td",
            {},
            el("code", { "data-testid": "decommission-name" }, ...endpointNodes(c.name)),
            el("span", { class: "kind", "data-testid": "decommission-kind" }, c.kind),
          ),
          timeCell(c.last_legacy_at, now, "decommission-last-legacy"),
          el("td", { class: "num", "data-testid": "decommission-idle-days" }, `${c.idle_days.toFixed(1)} days`),
        ),
      ),
    );
  }

  function render(status, releases) {
    const o = status.overall;
    const w = fig(o);
    const now = Date.now();
    setText($("window-caption"), WINDOWS[win]);
    setText($("overall-percent"), w.requests > 0 ? pct(w.new_share * 100) : "—");
    setText($("routes-migrated"), count(o.routes_migrated));
    setText($("routes-total"), count(o.routes_total));
    setText($("overall-new"), count(w.new));
    setText($("overall-legacy"), count(w.legacy));
    setText($("overall-requests"), count(w.requests));
    const cov = o.coverage || { endpoints_seen: 0, endpoints_moved: 0, ratio: 0 };
    setText($("endpoints-moved"), count(cov.endpoints_moved));
    setText($("endpoints-seen"), count(cov.endpoints_seen));
    setText($("coverage-percent"), pct(cov.ratio * 100));
    setBar(
      $("overall-bar"),
      w.new,
      w.legacy,
      w.requests,
      w.requests > 0
        ? `${pct(w.new_share * 100)} of all requests answered by new services (${WINDOWS[win]})`
        : `no requests (${WINDOWS[win]})`,
    );
    setText($("config-version"), status.version);
    renderRoutes(status, releases);
    renderBacklog(status, now);
    renderDecommission(status, now);
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const c of children) node.append(c);
    return node;
  }

  // The history as an inline SVG: share answered by new services (solid line over a
  // light area) and share of routes migrated (dashed steps), 0-100% against time.
  function renderHistory(history) {
    const box = $("history-chart");
    const points = (history && history.points) || [];
    const shares = points.filter((p) => p.new_share !== null);
    const marks = points.filter((p) => p.routes_total);
    $("history-empty").hidden = shares.length + marks.length > 0;
    box.hidden = shares.length + marks.length === 0;
    if (box.hidden) return;
    // drawn in the box's own pixels, so labels keep their size on a narrow screen
    const W = Math.max(320, Math.min(1200, Math.round(box.clientWidth || 800)));
    const H = 200, L = 44, R = 10, T = 10, B = 24;
    const key = W + JSON.stringify(points);
    if (key === lastHistoryKey) return;
    lastHistoryKey = key;
    const times = points.map((p) => Date.parse(p.t) + p.step_seconds * 500); // mid-bucket
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const x = (t) => (t1 > t0 ? L + ((t - t0) / (t1 - t0)) * (W - L - R) : (L + W - R) / 2);
    const y = (share) => T + (1 - share) * (H - T - B);
    const at = (p) => times[points.indexOf(p)];
    const parts = [];
    for (const v of [0, 0.5, 1]) {
      parts.push(svg("line", { class: v === 0 ? "axis" : "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      parts.push(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, `${v * 100}%`));
    }
    const label = (t) => new Date(t).toISOString().slice(0, 16).replace("T", " ") + " UTC";
    parts.push(svg("text", { x: L, y: H - 6 }, label(t0)));
    parts.push(svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, label(t1)));
    if (shares.length) {
      const line = shares.map((p) => `${x(at(p)).toFixed(1)},${y(p.new_share).toFixed(1)}`);
      const first = x(at(shares[0])).toFixed(1), last = x(at(shares[shares.length - 1])).toFixed(1);
      parts.push(svg("polygon", { class: "area", points: `${first},${y(0)} ${line.join(" ")} ${last},${y(0)}` }));
      parts.push(svg("polyline", { class: "share", "data-testid": "history-share", points: line.join(" ") }));
      // dots while they are few enough to tell apart; the latest point always
      const dotted = shares.length <= 60 ? shares : [shares[shares.length - 1]];
      for (const p of dotted) {
        parts.push(svg("circle", { class: "dot", cx: x(at(p)).toFixed(1), cy: y(p.new_share).toFixed(1), r: 3 }));
      }
    }
    if (marks.length) {
      const steps = [];
      marks.forEach((p, i) => {
        const yy = y(p.routes_migrated / p.routes_total).toFixed(1);
        if (i > 0) steps.push(`${x(at(p)).toFixed(1)},${steps[steps.length - 1].split(",")[1]}`);
        steps.push(`${x(at(p)).toFixed(1)},${yy}`);
      });
      if (steps.length === 1) steps.push(`${(W - R).toFixed(1)},${steps[0].split(",")[1]}`);
      parts.push(svg("polyline", { class: "migrated", "data-testid": "history-migrated", points: steps.join(" ") }));
    }
    box.replaceChildren(svg("svg", { viewBox: `0 0 ${W} ${H}`, "aria-hidden": "true", focusable: "false" }, ...parts));
    const latest = shares[shares.length - 1];
    setAttr(
      box,
      "aria-label",
      latest
        ? `${shares.length} points from ${label(t0)} to ${label(t1)}; latest share answered by new services ${pct(latest.new_share * 100)}`
        : "no traffic in the history yet",
    );
  }

  async function fetchJSON(path, signal) {
    const resp = await fetch(path, {
      cache: "no-store",
      signal,
      headers: { Accept: "application/json" },
    });
    if (!resp.ok) throw new Error(`${path} answered HTTP ${resp.status}`);
    return resp.json();
  }

  function reasonOf(err) {
    if (err && err.name === "AbortError") return `no answer within ${TIMEOUT_MS / 1000} s`;
    if (err instanceof TypeError) return "the connection failed";
    return err && err.message ? err.message : String(err);
  }

  function clock(date) {
    return date.toLocaleTimeString("en-GB", { hour12: false });
  }

  function showError(err) {
    const box = $("api-error");
    const since = lastOk
      ? `The figures below are from ${clock(lastOk)} and may be out of date.`
      : "No figures yet.";
    setText(
      box,
      `Can't reach the strangler admin API (${reasonOf(err)}). ${since} ` +
        `Retrying every ${REFRESH_S} s.`,
    );
    box.hidden = false;
    main.dataset.state = lastOk ? "stale" : "error";
  }

  async function refresh() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const [status, releases, history] = await Promise.all([
        fetchJSON("api/status", ctl.signal),
        fetchJSON("api/routes", ctl.signal),
        fetchJSON("api/progress/history", ctl.signal),
      ]);
      lastData = [status, releases];
      render(status, releases);
      renderHistory(history);
      lastOk = new Date();
      const stamp = $("last-refresh");
      setAttr(stamp, "datetime", lastOk.toISOString());
      setText(stamp, clock(lastOk));
      $("api-error").hidden = true;
      main.dataset.state = "ok";
    } catch (err) {
      showError(err);
    } finally {
      clearTimeout(timer);
      setTimeout(refresh, REFRESH_S * 1000); // after the answer: refreshes never overlap
    }
  }

  setText($("refresh-period"), REFRESH_S);
  for (const radio of document.querySelectorAll('input[name="window"]')) {
    radio.checked = radio.value === win;
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      win = radio.value;
      const url = new URL(window.location.href);
      url.searchParams.set("window", win);
      window.history.replaceState(null, "", url);
      if (lastData) render(...lastData);
    });
  }
  refresh();
})();
