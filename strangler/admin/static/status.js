// strangler status page: fetches api/status and api/routes (relative to this page)
// every REFRESH seconds and fills the page in. Text only: route names and learned
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
    const has = row.requests > 0;
    setText(f.newShare, has ? pct(row.new_share * 100) : "—");
    setText(f.legacyShare, has ? pct((row.legacy / row.requests) * 100) : "—");
    setText(f.requests, count(row.requests));
    setText(f.canary, release ? pct(release.effective_new_percent) : "—");
    setText(f.errorRatio, has ? pct(row.error_ratio * 100) : "—");
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
      ? `${row.name}: ${pct(row.new_share * 100)} answered by the new service, ` +
        `${pct((row.legacy / row.requests) * 100)} by legacy`
      : `${row.name}: no requests yet`;
    setBar(f.bar, row.new, row.legacy, row.requests, label);
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
    const now = Date.now();
    setText($("overall-percent"), pct(o.migrated_ratio * 100));
    setText($("routes-migrated"), count(o.routes_migrated));
    setText($("routes-total"), count(o.routes_total));
    setText($("overall-new"), count(o.new));
    setText($("overall-legacy"), count(o.legacy));
    setText($("overall-requests"), count(o.requests));
    setBar(
      $("overall-bar"),
      o.new,
      o.legacy,
      o.requests,
      o.requests > 0
        ? `${pct(o.migrated_ratio * 100)} of all requests answered by new services`
        : "no requests yet",
    );
    setText($("config-version"), status.version);
    renderRoutes(status, releases);
    renderBacklog(status, now);
    renderDecommission(status, now);
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
      const [status, releases] = await Promise.all([
        fetchJSON("api/status", ctl.signal),
        fetchJSON("api/routes", ctl.signal),
      ]);
      render(status, releases);
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
  refresh();
})();
