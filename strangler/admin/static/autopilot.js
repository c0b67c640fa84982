// strangler status page, the Autopilot panel: fetches api/migrate (relative to this page)
// every REFRESH seconds and shows each planned route's position, status, share, time in
// stage, what it waits for, its gates (pass / FAIL / waiting, with their figures) and the
// latest transitions. The panel stays hidden when no route has a migrate plan. Text only
// (textContent): route names and reasons come from config and operators.
"use strict";

(() => {
  const params = new URLSearchParams(window.location.search);
  const REFRESH_S = Math.min(300, Math.max(1, Math.round(Number(params.get("refresh")) || 5)));
  const TIMELINE = 5; // transitions shown per route, newest first
  const VERDICT = { pass: "pass", fail: "FAIL", waiting: "waiting" };
  const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
  const panel = $("autopilot");
  const box = $("autopilot-routes");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  }

  function clock(epochSeconds) {
    return new Date(epochSeconds * 1000).toISOString().slice(11, 19) + " UTC";
  }

  function card(view) {
    const id = (suffix) => ({ "data-testid": `autopilot-${view.route}-${suffix}` });
    const root = el("article", { class: "pilot", "data-testid": `autopilot-${view.route}` });
    if (!("stage" in view)) {
      root.append(el("h3", {}, view.route), el("p", { class: "empty" }, "not started yet"));
      return root;
    }
    const share = `${(Number(view.share) * 100).toFixed(1)}% new`;
    root.classList.toggle("is-bad", view.status === "aborted");
    root.append(
      el(
        "h3",
        {},
        view.route,
        " ",
        el("span", { class: `badge pilot-${view.status}`, ...id("status") }, view.status.replace("_", " ")),
      ),
      el(
        "p",
        { class: "pilot-where" },
        el("strong", id("position"), view.position),
        ` · ${share} · in stage `,
        el("span", id("in-stage"), duration(view.in_stage_seconds)),
        view.eta_seconds != null ? ` · done in ${duration(view.eta_seconds)} at the earliest` : "",
      ),
      el("p", { class: "pilot-stages" }, `Stages: ${view.stages.join(" → ")}`),
    );
    if (view.note) root.append(el("p", { class: "pilot-note", ...id("note") }, view.note));
    const gates = el("ul", { class: "gates", ...id("gates") });
    for (const g of view.gates || []) {
      gates.append(
        el(
          "li",
          { class: `gate gate-${g.verdict}`, "data-testid": `autopilot-${view.route}-gate-${g.name}` },
          el("span", { class: "gate-verdict" }, VERDICT[g.verdict] || g.verdict),
          ` ${g.name}: ${g.detail}`,
        ),
      );
    }
    if (gates.children.length) root.append(gates);
    const history = (view.history || []).slice(-TIMELINE).reverse();
    if (history.length) {
      const list = el("ol", { class: "timeline", ...id("timeline") });
      for (const t of history) {
        list.append(el("li", {}, `${clock(t.at)} ${t.from} → ${t.to}: ${t.reason} (${t.actor})`));
      }
      root.append(el("p", { class: "sub" }, "Latest changes"), list);
    }
    return root;
  }

  async function refresh() {
    try {
      const resp = await fetch("api/migrate", { cache: "no-store", headers: { Accept: "application/json" } });
      if (resp.ok) {
        const data = await resp.json();
        const routes = data.routes || [];
        panel.hidden = routes.length === 0;
        box.replaceChildren(...routes.map(card));
        $("autopilot-leader").textContent = data.leader || "nobody (no plan is being evaluated)";
      }
    } catch (err) {
      // The main panel reports an unreachable admin API; this one keeps its last figures.
    } finally {
      setTimeout(refresh, REFRESH_S * 1000);
    }
  }

  refresh();
})();
