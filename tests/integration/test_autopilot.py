"""The autopilot end to end: a legacy app, a new service whose error rate can be changed
while it runs, sticky users sending traffic through a real proxy, and a plan with
short durations. A healthy new service is promoted through every stage to done with no
client-visible error; 20% errors injected at 25% roll the route back, after which no
user is answered by the new side; with ``--workers 3`` one process advances the plan.
Everything on 127.0.0.1, bounded in requests and time."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.browser import Browser
from tests.conftest import MakeProxy, RunningProxy
from tests.integration.test_status_page import ARTIFACTS
from tests.serve_support import free_port, serve

USERS: Final = 60
DEADLINE: Final = 60.0  # seconds any one migration may take here (it takes a few)

PLAN: Final = """
    migrate:
      stages:
        - shadow: {min_compared: 20, parity: 100%, for: 200ms}
        - canary: {percent: [10%, 25%, 50%], step_every: 300ms, min_requests: 10}
        - migrated: {hold: 500ms}
      gates: {error_rate_vs_primary: +2%, min_primary: 10}
      interval: 100ms
"""


def config(legacy: str, new: str, plan: str = PLAN, top: str = "") -> str:
    route = textwrap.indent(textwrap.dedent(plan).strip("\n"), "    ")
    return (
        "listen: 127.0.0.1:0\n"
        "admin: {listen: 127.0.0.1:0}\n"
        "access_log: {format: off}\n"
        f"upstreams: {{legacy: '{legacy}', orders: '{new}'}}\n" + top + "routes:\n"
        "  - name: orders-read\n"
        "    owner: team-orders\n"
        '    match: {path: "/orders/{id:int}", methods: [GET]}\n'
        "    to: legacy\n"
        '    canary: {to: orders, percent: 0%, sticky: "header:X-User-Id"}\n'
        "    shadow: {to: orders, percent: 100%}\n"
        f"{route}\n"
    )


@dataclass
class NewService:
    """Answers like legacy; ``error_every``: every Nth answer is a 500 (0: none)."""

    url: str = ""
    error_every: int = 0
    served: int = 0


async def _legacy(request: web.Request) -> web.Response:
    return web.json_response({"id": int(request.match_info["id"])}, headers={"X-Side": "legacy"})


NEW: Final = web.AppKey("new", NewService)


async def _new(request: web.Request) -> web.Response:
    svc = request.app[NEW]
    svc.served += 1
    if svc.error_every and svc.served % svc.error_every == 0:
        return web.json_response({"error": "injected"}, status=500, headers={"X-Side": "new"})
    return web.json_response({"id": int(request.match_info["id"])}, headers={"X-Side": "new"})


@pytest.fixture
async def apps(aiohttp_server: AiohttpServer) -> tuple[str, NewService]:
    legacy = web.Application()
    legacy.router.add_get("/orders/{id}", _legacy)
    new_app = web.Application()
    svc = NewService()
    new_app[NEW] = svc
    new_app.router.add_get("/orders/{id}", _new)
    legacy_server = await aiohttp_server(legacy)
    new_server = await aiohttp_server(new_app)
    svc.url = str(new_server.make_url("")).rstrip("/")
    return str(legacy_server.make_url("")).rstrip("/"), svc


@dataclass
class Answer:
    at: float
    user: int
    side: str
    status: int


@dataclass
class Load:
    """Sticky users sending reads through the proxy, one at a time, recording who answered."""

    url: str
    answers: list[Answer] = field(default_factory=list)
    sent: int = 0

    async def burst(self, session: aiohttp.ClientSession, n: int = 20) -> None:
        for _ in range(n):
            user = self.sent % USERS
            self.sent += 1
            headers = {"X-User-Id": f"u{user}"}
            async with session.get(f"{self.url}/orders/{self.sent}", headers=headers) as r:
                await r.read()
                self.answers.append(Answer(time.monotonic(), user, r.headers["X-Side"], r.status))


def overrides(events: list[dict[str, Any]], who: str) -> list[float | None]:
    """The percent overrides ``who`` wrote, from audit events, in order."""
    return [
        e["after"]["percent_override"]
        for e in events
        if e["who"] == who and e["action"] == "set-percent"
    ]


async def views(admin: str, session: aiohttp.ClientSession) -> dict[str, Any]:
    async with session.get(f"{admin}/api/migrate/orders-read") as r:
        assert r.status == 200, await r.text()
        view: dict[str, Any] = await r.json()
        return view


async def drive_until(
    proxy_url: str, admin: str, done: set[str], load: Load | None = None
) -> tuple[Load, dict[str, Any]]:
    """Send traffic until the plan's status is in ``done``; bounded by ``DEADLINE``."""
    load = load or Load(proxy_url)
    deadline = time.monotonic() + DEADLINE
    view: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            await load.burst(session)
            view = await views(admin, session)
            if view.get("status") in done:
                return load, view
    raise AssertionError(f"the plan did not reach {done} in {DEADLINE}s: {view}")


async def test_a_healthy_new_service_is_promoted_through_every_stage(
    make_proxy: MakeProxy, apps: tuple[str, NewService]
) -> None:
    legacy, new = apps
    proxy: RunningProxy = await make_proxy(config(legacy, new.url))
    load, view = await drive_until(proxy.url, proxy.admin_url, {"done"})
    assert [a for a in load.answers if a.status != 200] == []  # no client-visible error
    moves = [(t["from"], t["to"]) for t in view["history"]]
    assert moves == [
        ("shadow", "canary 10%"),
        ("canary 10%", "canary 25%"),
        ("canary 25%", "canary 50%"),
        ("canary 50%", "migrated"),
        ("migrated", "done"),
    ]
    # The share only ever grew: once on the new side, a user stayed there.
    first_new: dict[int, float] = {}
    for a in load.answers:
        if a.side == "new":
            first_new.setdefault(a.user, a.at)
        elif a.user in first_new:
            raise AssertionError(f"user {a.user} went back to legacy after the new side")
    assert len(first_new) == USERS  # at 100% every user is on the new side
    # The audit log says who moved the route: the autopilot, one write per step.
    events = proxy.server.release.events(100)
    assert overrides(events, "autopilot") == [0.0, 0.1, 0.25, 0.5, 1.0]
    # The last evaluation's figures are gauges too.
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.admin_url}/metrics") as r:
        metrics = await r.text()
    assert 'strangler_migration_figure{figure="new_requests",route="orders-read"}' in metrics
    assert 'strangler_migration_stage{route="orders-read"} 3.0' in metrics
    # The strangler's point: legacy's endpoint for the route can go, and says why.
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{proxy.admin_url}/api/decommission") as r,
    ):
        candidates = (await r.json())["decommission"]
    (route,) = [c for c in candidates if c["name"] == "orders-read"]
    assert route["kind"] == "route"
    assert route["evidence"].startswith(
        "autopilot: migrated held 0.5s with every gate passing and no fallback to legacy; done at "
    )


async def test_injected_errors_at_25_percent_roll_the_route_back(
    make_proxy: MakeProxy, apps: tuple[str, NewService]
) -> None:
    legacy, new = apps
    proxy = await make_proxy(config(legacy, new.url))
    async with aiohttp.ClientSession() as session:
        load = Load(proxy.url)
        deadline = time.monotonic() + DEADLINE
        while (await views(proxy.admin_url, session))["position"] != "canary 25%":
            assert time.monotonic() < deadline, "never reached 25%"
            await load.burst(session)
    new.error_every = 5  # 20% of the new side's answers fail from now on
    injected = len(load.answers)
    load, view = await drive_until(proxy.url, proxy.admin_url, {"aborted"}, load)
    assert view["position"] == "legacy"
    assert view["share"] == 0.0
    last = view["history"][-1]
    assert last["from"] == "canary 25%"
    assert last["to"] == "legacy"
    assert last["reason"].startswith("breach: new ")
    assert last["figures"]["new_errors"] > 0
    # Fallback answered every failed request from legacy: still no client-visible error.
    assert [a for a in load.answers[injected:] if a.status != 200] == []
    # Rolled back within a bounded number of requests after the injection (the window
    # since the 25% step began also holds its healthy answers from before it).
    assert len(load.answers) - injected <= 1000
    # After the rollback no user is answered by the new side.
    async with aiohttp.ClientSession() as session:
        after = Load(proxy.url, sent=load.sent)
        await after.burst(session, 3 * USERS)
    assert {a.side for a in after.answers} == {"legacy"}


async def test_operator_actions_through_the_api_are_audited_and_refused_when_they_do_not_apply(
    make_proxy: MakeProxy, apps: tuple[str, NewService], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", "t0ken")
    legacy, new = apps
    proxy = await make_proxy(config(legacy, new.url))
    auth = {"Authorization": "Bearer t0ken"}
    base = f"{proxy.admin_url}/api/migrate/orders-read"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/abort") as r:
            assert r.status == 401
        async with s.post(f"{base}/retry", headers=auth) as r:
            assert r.status == 409
            assert "abort it before retrying" in await r.text()
        async with s.post(f"{base}/skip", headers=auth, json={"reason": "reads proven"}) as r:
            assert r.status == 200
            assert (await r.json())["share"] == 0.1
        async with s.post(f"{base}/abort", headers=auth, json={"reason": "incident 7"}) as r:
            body = await r.json()
            assert (body["status"], body["share"]) == ("aborted", 0.0)
        async with s.post(f"{base}/retry", headers=auth, json={"stage": "canary"}) as r:
            assert (await r.json())["share"] == 0.1
        async with s.post(f"{proxy.admin_url}/api/migrate/nope/pause", headers=auth) as r:
            assert r.status == 404
        async with s.post(f"{base}/fly", headers=auth) as r:
            assert r.status == 400
        view = await views(proxy.admin_url, s)
    reasons = [t["reason"] for t in view["history"]]
    assert reasons == ["skipped: reads proven", "aborted: incident 7", "retry"]
    actors = {t["actor"] for t in view["history"]}
    assert actors == {"admin@127.0.0.1"}
    events = proxy.server.release.events(100)
    writes = overrides(events, "admin@127.0.0.1")
    assert writes == [0.1, 0.0, 0.1]
    actions = []
    for e in events:
        after = e["after"]
        if str(e["action"]).startswith("migrate-") and isinstance(after, dict):
            actions.append((e["action"], after["position"], e.get("reason")))
    assert actions == [
        ("migrate-skip", "canary 10%", "reads proven"),
        ("migrate-abort", "legacy", "incident 7"),
        ("migrate-retry", "canary 10%", None),
    ]


async def test_with_three_workers_one_process_advances_the_plan(
    tmp_path: Path, apps: tuple[str, NewService]
) -> None:
    legacy, new = apps
    port, admin = free_port(), free_port()
    text = config(legacy, new.url).replace("127.0.0.1:0", f"127.0.0.1:{port}", 1)
    text = text.replace("admin: {listen: 127.0.0.1:0}", f"admin: {{listen: 127.0.0.1:{admin}}}")
    cfg = tmp_path / "strangler.yaml"
    cfg.write_text(text + f"state: {{dir: '{tmp_path / 'state'}'}}\n")
    async with serve("--config", str(cfg), workers=3) as running:
        load, view = await drive_until(running.url, running.admin_url, {"done"})
        assert [a for a in load.answers if a.status != 200] == []
        history = view["history"]
        assert isinstance(history, list)
        assert len(history) == 5
        # Every worker's /metrics sums every worker's transitions: exactly one each.
        async with aiohttp.ClientSession() as s, s.get(f"{running.admin_url}/metrics") as r:
            text = await r.text()
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("strangler_migration_transitions_total{")
        )
        assert counted == 5
        # and the audit log holds one autopilot write per step, never a duplicate
        events = [
            json.loads(line)
            for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()
        ]
        assert overrides(events, "autopilot") == [0.0, 0.1, 0.25, 0.5, 1.0]
        assert await running.stop() == 0
    assert not (tmp_path / "state" / "migrate.lease").exists()  # given up on stop


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "strangler",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_shows_the_plan_and_steers_it(
    make_proxy: MakeProxy, apps: tuple[str, NewService], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", "t0ken")
    legacy, new = apps
    # The shadow stage waits for more comparisons than this test sends: it is still in
    # shadow however long the CLI takes to start on a loaded machine.
    plan = PLAN.replace("min_compared: 20", "min_compared: 100000")
    proxy = await make_proxy(config(legacy, new.url, plan))
    async with aiohttp.ClientSession() as session:
        load = Load(proxy.url)
        while (await views(proxy.admin_url, session))["position"] == "not started":
            await load.burst(session, 1)
    code, out, _ = await cli("migrate", "status", "--admin", proxy.admin_url)
    assert code == 0
    assert out.startswith("orders-read: shadow (running, new side 0%, in stage ")
    code, out, err = await cli(
        "migrate", "pause", "orders-read", "--reason", "change freeze", "--admin", proxy.admin_url
    )
    assert (code, err) == (0, "")
    assert out == "orders-read: shadow -> shadow (paused: change freeze) by admin@127.0.0.1\n"
    code, out, err = await cli("migrate", "approve", "orders-read", "--admin", proxy.admin_url)
    assert code == 1
    assert "409" in err
    assert "nothing waits for an approval" in err
    code, out, _ = await cli("migrate", "status", "orders-read", "--admin", proxy.admin_url)
    assert "paused by admin@127.0.0.1: change freeze" in out
    assert "shadow -> shadow: paused: change freeze (admin@127.0.0.1)" in out


async def test_a_new_step_shows_its_own_gates_not_the_ones_that_ended_the_last(
    make_proxy: MakeProxy, apps: tuple[str, NewService]
) -> None:
    """Right after the plan moves on, the view (API, page, CLI, metrics) shows the new
    step's gates over its empty window, not the shadow stage's parity that moved it: the
    transition keeps those. A 1 s interval leaves a second to look between two ticks."""
    legacy, new = apps
    plan = PLAN.replace("interval: 100ms", "interval: 1s").replace("for: 200ms", "for: 0s")
    proxy = await make_proxy(config(legacy, new.url, plan))
    async with aiohttp.ClientSession() as session:
        load = Load(proxy.url)
        deadline = time.monotonic() + DEADLINE
        while (view := await views(proxy.admin_url, session))["position"] in (
            "not started",
            "shadow",
        ):
            assert time.monotonic() < deadline, "the plan never left the shadow stage"
            await load.burst(session, 5)
    assert view["position"] == "canary 10%"
    assert [(g["name"], g["verdict"]) for g in view["gates"]] == [
        ("traffic", "waiting"),
        ("error_rate", "waiting"),
    ]
    assert view["figures"]["new_requests"] == 0
    assert view["history"][-1]["reason"] == "gates passed"


async def test_the_status_page_shows_the_plan_moving(
    make_proxy: MakeProxy, apps: tuple[str, NewService], browser: Browser
) -> None:
    """Headless Chromium: the Autopilot panel names the position, the gates with their
    verdicts, and the transitions as the plan moves; hidden on a proxy without plans."""
    legacy, new = apps
    proxy = await make_proxy(config(legacy, new.url))
    page = await browser.new_page(1280, 900)
    await page.goto(f"{proxy.admin_url}/?refresh=1")
    await page.wait_for(
        """document.querySelector('[data-testid="autopilot"]')?.hidden === false""", 10
    )
    async with aiohttp.ClientSession() as session:
        load = Load(proxy.url)
        deadline = time.monotonic() + DEADLINE
        while (await views(proxy.admin_url, session))["position"] in ("not started", "shadow"):
            assert time.monotonic() < deadline, "the plan never left the shadow stage"
            await load.burst(session)
        await load.burst(session)
    await page.wait_for(
        """document.querySelector('[data-testid="autopilot-orders-read-position"]')"""
        """?.textContent.startsWith('canary')""",
        10,
    )
    shown = await page.evaluate(
        """(() => {
        const q = (id) => document.querySelector(`[data-testid="${id}"]`);
        return {
          status: q("autopilot-orders-read-status").textContent,
          gates: [...q("autopilot-orders-read-gates").children].map((li) => li.textContent),
          timeline: q("autopilot-orders-read-timeline").children[0].textContent,
          leader: q("autopilot-leader").textContent,
        };
        })()"""
    )
    assert shown["status"] == "running"
    # a fresh step: each gate passes or waits for the step's traffic, never fails
    verdicts = {g.split(":")[0].split()[-1]: g.split()[0] for g in shown["gates"]}
    assert set(verdicts) == {"traffic", "error_rate"}
    assert set(verdicts.values()) <= {"pass", "waiting"}
    assert "shadow → canary 10%: gates passed (autopilot)" in shown["timeline"]
    assert shown["leader"] == proxy.server.autopilot.store.owner
    assert page.errors == []
    await page.screenshot(ARTIFACTS / "status-page-autopilot.png")
