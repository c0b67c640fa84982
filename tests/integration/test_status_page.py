"""The admin status page in a real headless Chromium, against a real proxy.

Real legacy and new upstreams, a proxy with two routes (``invoices`` migrated to the
new service, ``customers`` still on legacy) and known traffic; the page at the admin
port's ``/`` must show exactly what ``/api/status`` and ``/api/routes`` say, update
itself when traffic moves, and say so plainly when the API goes away. Every wait is
on the DOM (``Page.wait_for``: a MutationObserver with a deadline), never a sleep.

Screenshots land in ``artifacts/`` (git-ignored): ``status-page.png`` (1280x800),
``status-page-rolled-back.png``, ``status-page-unreachable.png``,
``status-page-guard-tripped.png``, and ``status-page-narrow.png`` and
``status-page-narrow-dark.png`` (400 px wide).

Needs Debian's ``chromium`` (``apt-get install -y --no-install-recommends chromium``);
without it these tests fail, they do not skip.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient, AiohttpServer

from strangler.admin.status_page import add_status_page
from tests.browser import Browser, Page
from tests.conftest import MakeProxy, RunningProxy, Upstream

pytestmark = pytest.mark.slow

ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "artifacts"
TOKEN: Final = "status-page-test-token"
REFRESH: Final = 1  # seconds: the page's ?refresh= so the self-update shows quickly
BACKLOG_ROWS: Final = 20

INVOICES: Final = ["/invoices/1"] * 6  # new service
CUSTOMERS: Final = ["/customers/7"] * 4  # legacy, through a route
UNROUTED: Final = ["/users/1", "/users/2", "/users/3", "/old-home", "/old-home", "/report.csv"]

# Everything the page shows that the tests check, read in one go.
READ_PAGE: Final = """(() => {
  const text = (root, id) => {
    const el = root.querySelector(`[data-testid="${id}"]`);
    return el === null ? null : el.textContent;
  };
  const rows = (id, fields) => [...document.querySelectorAll(`[data-testid="${id}"]`)].map(
    (tr) => Object.fromEntries(fields.map((f) => [f, text(tr, `${id.replace("-row", "")}-${f}`)])));
  const routes = {};
  for (const card of document.querySelectorAll("article.route")) {
    const name = card.querySelector("h3").textContent;
    const t = (suffix) => text(card, `route-${name}-${suffix}`);
    routes[name] = {owner: t("owner"), state: t("state"), status: t("status"),
      new_share: t("new-share"), legacy_share: t("legacy-share"), requests: t("requests"),
      canary: t("canary"), error_ratio: t("error-ratio")};
  }
  return {
    overall_percent: text(document, "overall-percent"),
    routes_migrated: text(document, "routes-migrated"),
    routes_total: text(document, "routes-total"),
    requests: text(document, "overall-requests"),
    new: text(document, "overall-new"),
    legacy: text(document, "overall-legacy"),
    version: text(document, "config-version"),
    routes,
    backlog_total: text(document, "backlog-total"),
    backlog: rows("backlog-row", ["endpoint", "requests", "share"]).map((r, i) => ({...r,
      last_seen: document.querySelectorAll('[data-testid="backlog-last-seen"]')[i]
        .getAttribute("datetime")})),
    decommission: rows("decommission-row", ["kind", "name", "idle-days"]),
  };
})()"""


def one_decimal(value: float) -> str:
    """JavaScript's ``x.toFixed(1)``: it rounds the exact binary value half up, so
    Decimal(float) with ROUND_HALF_UP gives the same digits."""
    return str(Decimal(value).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def pct(value: float) -> str:
    """The page's percentages: ``x.toFixed(1) + "%"``."""
    return f"{one_decimal(value)}%"


def count(n: int) -> str:
    return f"{n:,}"  # Intl.NumberFormat("en-US")


STATUS_WORDS: Final = {
    "active": "active",
    "rolled-back": "rolled back",
    "guard-tripped": "guard tripped",
}


def expected(status: dict[str, Any], routes: dict[str, Any], window: str = "1h") -> dict[str, Any]:
    """What the page must show for these two API answers, with ``window`` chosen."""
    o = status["overall"]
    ow = o["windows"][window]
    release = {r["name"]: r for r in routes["routes"]}
    shown: dict[str, Any] = {}
    for r in status["routes"]:
        w = r["windows"][window]
        has = w["requests"] > 0
        rel = release[r["name"]]
        shown[r["name"]] = {
            "owner": r["owner"],
            "state": r["state"],
            "status": STATUS_WORDS[rel["status"]],
            "new_share": pct(w["new_share"] * 100) if has else "—",
            "legacy_share": pct(w["legacy"] / w["requests"] * 100) if has else "—",
            "requests": count(w["requests"]),
            "canary": pct(rel["effective_new_percent"]),
            "error_ratio": pct(r["error_ratio"] * 100) if r["requests"] else "—",
        }
    return {
        "overall_percent": pct(ow["new_share"] * 100) if ow["requests"] else "—",
        "routes_migrated": count(o["routes_migrated"]),
        "routes_total": count(o["routes_total"]),
        "requests": count(ow["requests"]),
        "new": count(ow["new"]),
        "legacy": count(ow["legacy"]),
        "version": status["version"],
        "routes": shown,
        "backlog_total": count(status["backlog_total"]),
        "backlog": [
            {
                "endpoint": e["endpoint"],
                "requests": count(e["requests"]),
                "share": pct(e["share"] * 100),
                "last_seen": e["last_seen"],
            }
            for e in status["backlog"][:BACKLOG_ROWS]
        ],
        "decommission": [
            {
                "kind": c["kind"],
                "name": c["name"],
                "idle-days": f"{one_decimal(c['idle_days'])} days",
            }
            for c in status["decommission"]
        ],
    }


def config(legacy: Upstream, newsvc: Upstream) -> str:
    return f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
access_log: {{format: off}}
upstreams:
  legacy: {legacy.url}
  billing: {newsvc.url}
routes:
  - {{name: invoices, owner: team-billing, match: {{path_prefix: /invoices}}, to: billing}}
  - {{name: customers, owner: team-crm, match: {{path_prefix: /customers}}, to: legacy}}
"""


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def proxy(
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningProxy:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", TOKEN)
    return await make_proxy(config(legacy, newsvc))


async def drive(s: aiohttp.ClientSession, proxy: RunningProxy, paths: list[str]) -> None:
    """GET each path through the proxy, one after the other; ``/status/N`` answers N."""
    for path in paths:
        async with s.get(proxy.url + path) as r:
            want = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
            assert r.status == want, await r.text()
            await r.read()


async def api(s: aiohttp.ClientSession, proxy: RunningProxy, path: str) -> dict[str, Any]:
    async with s.get(proxy.admin_url + path) as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        return body


async def wait_text(page: Page, testid: str, text: str, within: float = 10.0) -> None:
    """Wait until the element ``testid`` shows ``text``."""
    sel = json.dumps(f'[data-testid="{testid}"]')
    await page.wait_for(
        f"document.querySelector({sel})?.textContent === {json.dumps(text)}", within
    )


async def assert_page_matches_api(
    page: Page, s: aiohttp.ClientSession, proxy: RunningProxy, window: str = "1h"
) -> dict[str, Any]:
    status = await api(s, proxy, "/api/status")
    routes = await api(s, proxy, "/api/routes")
    shown = await page.evaluate(READ_PAGE)
    assert shown == expected(status, routes, window)
    return status


# The overall bar's parts, in pixels, as drawn right now.
BAR_PARTS: Final = """(() => {
  const bar = document.querySelector('[data-testid="overall-bar"]');
  const [n, l] = [...bar.children].map((s) => s.getBoundingClientRect().width);
  return {new: n, legacy: l, inner: bar.clientWidth};
})()"""


async def no_horizontal_scroll(page: Page) -> None:
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width[0]}px in {width[1]}px"


async def test_page_shows_the_api_figures_and_refreshes_itself(
    browser: Browser, proxy: RunningProxy, session: aiohttp.ClientSession
) -> None:
    await drive(session, proxy, INVOICES + CUSTOMERS + UNROUTED)
    page = await browser.new_page(1280, 800)
    await page.goto(f"{proxy.admin_url}/?refresh={REFRESH}")

    # 16 requests, 6 of them answered by the new service
    await wait_text(page, "overall-requests", "16")
    status = await assert_page_matches_api(page, session, proxy)
    assert await page.evaluate(READ_PAGE + ".overall_percent") == "37.5%"
    assert [r["name"] for r in status["routes"]] == ["invoices", "customers"]
    assert {e["endpoint"] for e in status["backlog"]} >= {"GET /old-home"}
    assert await page.evaluate(
        """document.querySelector('[data-testid="route-invoices-new-share"]').textContent"""
    ) == ("100.0%")
    # the layout at 1280x800: no sideways scroll; a route's bar sits beside its name
    await no_horizontal_scroll(page)
    head_right, body_left = await page.evaluate(
        """(() => {
          const card = document.querySelector('[data-testid="route-invoices"]');
          return [card.querySelector(".route-head").getBoundingClientRect().right,
                  card.querySelector(".route-body").getBoundingClientRect().left];
        })()"""
    )
    assert head_right <= body_left

    # more traffic moves the numbers without anyone reloading the page
    await drive(session, proxy, ["/invoices/2"] * 10)
    await wait_text(page, "overall-requests", "26")
    await assert_page_matches_api(page, session, proxy)
    assert await page.evaluate(READ_PAGE + ".overall_percent") == "61.5%"
    await page.screenshot(ARTIFACTS / "status-page.png")

    # a rollback shows as text (not only colour) and the new side's share drops to 0
    async with session.post(
        f"{proxy.admin_url}/api/routes/invoices/rollback",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as r:
        assert r.status == 200, await r.text()
    await wait_text(page, "route-invoices-status", "rolled back")
    await assert_page_matches_api(page, session, proxy)
    assert await page.evaluate(READ_PAGE + ".routes.invoices.canary") == "0.0%"
    await page.screenshot(ARTIFACTS / "status-page-rolled-back.png")

    # nothing went anywhere but the admin port, and the page threw nothing
    assert page.errors == []
    assert page.requests, "the page made no requests at all"
    assert all(u.startswith(proxy.admin_url + "/") for u in page.requests), page.requests

    # the admin API goes away: a plain message, the last figures kept (marked stale)
    await proxy.server.stop()
    message = await page.wait_for(
        """(() => { const e = document.querySelector('[data-testid="api-error"]');
                    return !e.hidden && e.textContent; })()""",
        within=10.0,
    )
    assert "Can't reach the strangler admin API" in message
    assert "may be out of date" in message
    assert await page.evaluate("document.getElementById('main').dataset.state") == "stale"
    assert await page.evaluate(READ_PAGE + ".overall_percent") == "61.5%"
    await page.screenshot(ARTIFACTS / "status-page-unreachable.png")


async def test_bars_are_right_the_moment_they_are_drawn_and_follow_the_window(
    browser: Browser, proxy: RunningProxy, session: aiohttp.ClientSession
) -> None:
    await drive(session, proxy, INVOICES + CUSTOMERS + UNROUTED)
    page = await browser.new_page(1280, 800)
    await page.goto(f"{proxy.admin_url}/?refresh={REFRESH}")
    # The very first frame with figures: no animation may leave part of the bar grey.
    parts = await page.wait_for(
        """(() => { const e = document.querySelector('[data-testid="overall-requests"]');
                    return e.textContent === "16" && """
        + BAR_PARTS
        + """; })()"""
    )
    assert parts["new"] + parts["legacy"] >= parts["inner"] - 3, parts
    assert abs(parts["new"] / (parts["new"] + parts["legacy"]) - 6 / 16) < 0.02, parts
    # The chart shows the history: one point so far, drawn as inline SVG (no CDN).
    await page.wait_for("document.querySelector('[data-testid=\"history-chart\"] svg') !== null")
    history = await api(session, proxy, "/api/progress/history")
    assert [p["requests"] for p in history["points"] if p["requests"]] == [16]
    # Endpoint coverage sits beside the share.
    status = await api(session, proxy, "/api/status")
    cov = status["overall"]["coverage"]
    assert cov["endpoints_seen"] == 3  # GET /users/{id}, /old-home, /report.csv
    seen = await page.evaluate(
        "document.querySelector('[data-testid=\"endpoints-seen\"]').textContent"
    )
    assert seen == count(cov["endpoints_seen"])
    # Another window: the figures follow, and the URL remembers it.
    await page.evaluate("document.querySelector('input[value=\"all\"]').click()")
    await wait_text(page, "window-caption", "since tracking began")
    await assert_page_matches_api(page, session, proxy, "all")
    assert "window=all" in await page.evaluate("window.location.search")
    await page.screenshot(ARTIFACTS / "status-page-history.png")
    assert page.errors == []


async def test_page_is_readable_on_a_narrow_screen(
    browser: Browser, proxy: RunningProxy, session: aiohttp.ClientSession
) -> None:
    await drive(session, proxy, INVOICES + CUSTOMERS + UNROUTED)
    # Shorten the idle period to a millisecond: everything legacy answered becomes a
    # decommission candidate, so that table is filled (and laid out) too.
    proxy.server.progress.idle_after = 0.001
    page = await browser.new_page(400, 800)
    await page.goto(f"{proxy.admin_url}/?refresh={REFRESH}")
    await wait_text(page, "overall-requests", "16")
    status = await assert_page_matches_api(page, session, proxy)
    assert {(c["kind"], c["name"]) for c in status["decommission"]} >= {
        ("route", "customers"),
        ("endpoint", "GET /old-home"),
    }
    await no_horizontal_scroll(page)
    # one column: each route's bar is under its name, and fits the screen
    layout = await page.evaluate(
        """(() => {
          const card = document.querySelector('[data-testid="route-customers"]');
          const head = card.querySelector(".route-head").getBoundingClientRect();
          const bar = card.querySelector(".bar").getBoundingClientRect();
          return {headBottom: head.bottom, barTop: bar.top, barRight: bar.right,
                  barWidth: bar.width, width: window.innerWidth};
        })()"""
    )
    assert layout["barTop"] >= layout["headBottom"], layout
    assert layout["barWidth"] > 0, layout
    assert layout["barRight"] <= layout["width"], layout
    # the tables fit too: nothing to scroll sideways inside them either
    overflowing = await page.evaluate(
        """[...document.querySelectorAll(".table-scroll")]
             .filter((t) => !t.hidden && t.scrollWidth > t.clientWidth)
             .map((t) => t.dataset.testid)"""
    )
    assert overflowing == []
    # the big number still reads as the headline
    size = await page.evaluate(
        """parseFloat(getComputedStyle(
             document.querySelector('[data-testid="overall-percent"]')).fontSize)"""
    )
    assert size >= 32
    assert page.errors == []
    await page.screenshot(ARTIFACTS / "status-page-narrow.png")
    # the dark scheme (the page follows the system's) keeps the same layout
    await page.send(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    await no_horizontal_scroll(page)
    await page.screenshot(ARTIFACTS / "status-page-narrow-dark.png")


async def test_a_tripped_guard_shows_its_reason(
    browser: Browser,
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
) -> None:
    proxy = await make_proxy(
        config(legacy, newsvc)
        + "  - {name: reports, owner: team-reports, match: {path_prefix: /status},"
        " to: billing, fallback: false, slo: {error_rate: 10%, window: 30s, min_requests: 20}}\n"
    )
    page = await browser.new_page(1280, 800)
    await page.goto(f"{proxy.admin_url}/?refresh={REFRESH}")
    await wait_text(page, "route-reports-health", "no traffic")
    # a third of the new service's answers fail: over the 10% the SLO allows
    await drive(session, proxy, ["/status/500", "/status/200", "/status/200"] * 10)
    await wait_text(page, "route-reports-status", "guard tripped")
    await wait_text(page, "overall-requests", "30")
    await assert_page_matches_api(page, session, proxy)
    routes = await api(session, proxy, "/api/routes")
    (reports,) = [r for r in routes["routes"] if r["name"] == "reports"]
    reason = await page.evaluate(
        """document.querySelector('[data-testid="route-reports-guard-reason"]').textContent"""
    )
    assert reason == f"Guard tripped: {reports['state']['guard_reason']}"
    assert "error" in reason
    assert await page.evaluate(READ_PAGE + ".routes.reports.error_ratio") == "33.3%"
    health = await page.evaluate(
        """document.querySelector('[data-testid="route-reports-health"]').textContent"""
    )
    assert health == "SLO breached"
    assert page.errors == []
    await page.screenshot(ARTIFACTS / "status-page-guard-tripped.png")


# ---------------------------------------------------------------- without a browser


async def test_page_and_assets_are_served_with_a_strict_policy(
    aiohttp_client: AiohttpClient,
) -> None:
    from aiohttp import web

    app = web.Application()
    add_status_page(app)
    client = await aiohttp_client(app)
    page = await client.get("/")
    assert page.status == 200
    assert page.content_type == "text/html"
    body = await page.text()
    assert 'data-testid="overall-percent"' in body
    assert "http://" not in body  # self-contained: no CDN, no web fonts
    assert "https://" not in body
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    for name, ctype in (("status.css", "text/css"), ("status.js", "text/javascript")):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200
        assert resp.content_type == ctype
        assert "https://" not in await resp.text()
    for bad in ("/static/status.html", "/static/nope.js", "/static/..%2Fstatus_page.py"):
        assert (await client.get(bad)).status == 404, bad


HISTORY_CONFIG: Final = """
upstreams:
  legacy: http://127.0.0.1:1
  billing: http://127.0.0.1:2
routes:
  - {name: invoices, owner: team-billing, match: {path_prefix: /invoices}, to: TARGET}
  - {name: customers, owner: team-crm, match: {path_prefix: /customers}, to: legacy}
"""


async def test_history_chart_shows_the_migration_and_a_rollback_as_a_dip(
    browser: Browser, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    """Three days of history through a tracker with a controlled clock: invoices moves
    to billing over the first two days (the config says so from day two on), rolls back
    for half an hour on day three, then comes back."""
    from aiohttp import web

    from strangler.admin.progress_api import add_progress_routes
    from strangler.config import load_config_text
    from strangler.metrics import Metrics
    from strangler.progress import ProgressTracker
    from strangler.runtime import SnapshotHolder, compile_snapshot
    from tests.test_progress import T0, Clock

    def snap(target: str) -> Any:
        return compile_snapshot(
            load_config_text(HISTORY_CONFIG.replace("TARGET", target)), Metrics()
        )

    start = T0 - T0 % 3600
    clock = Clock(start)
    holder = SnapshotHolder(snap("legacy"))
    tracker = ProgressTracker(holder, clock=clock)
    steps = 3 * 24 * 12  # 5-minute steps
    for step in range(steps):
        clock.t = start + step * 300
        if step == 2 * 24 * 12:
            holder.swap(snap("billing"))
        rolled_back = 2 * 24 * 12 + 120 <= step < 2 * 24 * 12 + 126
        share = 0.0 if rolled_back else min(step / (2 * 24 * 12), 1.0) * 0.9
        new = round(20 * share)
        for _ in range(new):
            tracker.record("invoices", "new", "GET", "/invoices/1", 200)
        for _ in range(20 - new):
            tracker.record("invoices", "legacy", "GET", "/invoices/1", 200)
        for _ in range(5):
            tracker.record("customers", "legacy", "GET", "/customers/1", 200)
        tracker.rotate()

    async def no_release_state(request: web.Request) -> web.Response:
        return web.json_response({"routes": []})

    app = web.Application()
    add_status_page(app)
    add_progress_routes(app, tracker, holder, tmp_path)
    app.router.add_get("/api/routes", no_release_state)
    server = await aiohttp_server(app)
    history = await (await server_get(server, "/api/progress/history")).json()
    shares = [p["new_share"] for p in history["points"] if p["new_share"] is not None]
    hourly = [p for p in history["points"] if p["step_seconds"] == 3600]
    assert len(hourly) == 24  # day one, older than 48 hours
    assert len(shares) == 24 + 2 * 24 * 12
    dip = shares.index(0.0, 30)
    assert shares[dip - 1] > 0.7
    assert shares[dip + 6] > 0.7
    migrated = [p["routes_migrated"] for p in history["points"]]
    assert migrated[0] == 0
    assert migrated[-1] == 1

    page = await browser.new_page(1280, 800)
    await page.goto(f"{str(server.make_url('/')).rstrip('/')}/?refresh={REFRESH}&window=24h")
    drawn = await page.wait_for(
        """(() => { const l = document.querySelector('[data-testid="history-share"]');
                    return l && l.getAttribute("points").split(" ").length; })()"""
    )
    assert drawn == len(shares)
    # the dip is drawn: the lowest point of the line's last day is at the 0% line
    lowest, zero = await page.evaluate(
        """(() => {
          const pts = document.querySelector('[data-testid="history-share"]')
            .getAttribute("points").split(" ").map((p) => p.split(",").map(Number));
          const tail = pts.slice(-200);
          const axis = document.querySelector('[data-testid="history-chart"] line.axis');
          return [Math.max(...tail.map((p) => p[1])), Number(axis.getAttribute("y1"))];
        })()"""
    )
    assert abs(lowest - zero) < 1
    assert await page.evaluate(
        "document.querySelector('[data-testid=\"history-migrated\"]') !== null"
    )
    label = await page.evaluate(
        "document.querySelector('[data-testid=\"history-chart\"]').getAttribute('aria-label')"
    )
    assert "latest share answered by new services 72.0%" in label  # 18 of 25
    assert page.errors == []
    await page.screenshot(ARTIFACTS / "status-page-history-3-days.png")


async def server_get(server: Any, path: str) -> aiohttp.ClientResponse:
    session = aiohttp.ClientSession()
    try:
        resp = await session.get(server.make_url(path))
        await resp.read()
        return resp
    finally:
        await session.close()
