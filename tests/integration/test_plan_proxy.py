"""strangler plan against real proxies: plan from the access log a real proxy wrote,
check the plan's prediction against a proxy running the proposed config, plan against
a running proxy's admin API, and record a sample with ``--record``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from strangler.cli import main
from strangler.config import load_config_text
from strangler.plan.replay import Replayer, backend_of, plan
from strangler.plan.traffic import read_sources
from tests.conftest import MakeProxy, RunningProxy, Upstream

INVOICES = """
  - name: invoices
    owner: team-billing
    match: {{path: "/api/invoices/{{id:int}}", methods: [GET]}}
    to: new
"""
USERS = """
  - name: users-beta
    owner: team-users
    match: {{path_prefix: /api/users, headers: {{x-beta: "on"}}}}
    to: new
  - name: users
    owner: team-users
    match: {{path_prefix: /api/users, methods: [GET]}}
    to: legacy
"""
ROUTES_NOW = "routes:" + INVOICES + USERS

# Billing's new catch-all above the users routes takes the users' traffic too; and a
# reports route fully on its canary.
BILLING_API = """
  - name: billing-api
    owner: team-billing
    match: {{path_prefix: /api, query: {{v: "2"}}}}
    to: new
"""
REPORTS = """
  - name: reports
    owner: team-reports
    match: {{path_prefix: /reports}}
    to: legacy
    canary: {{to: new, percent: 100}}
"""
ROUTES_PROPOSED = "routes:" + INVOICES + BILLING_API + USERS + REPORTS

# (method, path, query, headers): the traffic the tests send.
TRAFFIC: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
    ("GET", "/api/invoices/1", {}, {}),
    ("GET", "/api/invoices/2", {"v": "2"}, {}),
    ("GET", "/api/invoices/abc", {}, {}),
    ("GET", "/api/users/7", {}, {}),
    ("GET", "/api/users/8", {"v": "2"}, {}),
    ("GET", "/api/users/9", {}, {"X-Beta": "on"}),
    ("POST", "/api/users", {"v": "2"}, {}),
    ("POST", "/api/orders", {}, {}),
    ("GET", "/reports/2026-12-01", {}, {}),
    ("GET", "/", {}, {}),
]


def _config(legacy: Upstream, newsvc: Upstream, routes: str, extra: str = "") -> str:
    return (
        "listen: 127.0.0.1:0\n"
        "admin: {listen: 127.0.0.1:0}\n"
        f"upstreams:\n  legacy: {legacy.url}\n  new: {newsvc.url}\n" + routes.format() + extra
    )


async def _send(proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as s:
        for method, path, query, headers in TRAFFIC:
            async with s.request(method, proxy.url + path, params=query, headers=headers) as r:
                assert r.status == 200
                await r.read()


def _access_log(proxy: RunningProxy, path: Path) -> Path:
    proxy.server.access_log.close()  # flush the writer thread
    path.write_text(proxy.log.getvalue(), encoding="utf-8")
    return path


def _har(path: Path) -> Path:
    entries = [
        {
            "request": {
                "method": m,
                "url": "http://shop.example.com"
                + p
                + ("?" + "&".join(f"{k}={v}" for k, v in q.items()) if q else ""),
                "headers": [{"name": k, "value": v} for k, v in h.items()],
                "cookies": [],
            }
        }
        for m, p, q, h in TRAFFIC
    ]
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}, indent=1))
    return path


async def test_plan_from_a_real_proxys_access_log(
    make_proxy: MakeProxy, legacy: Upstream, newsvc: Upstream, tmp_path: Path
) -> None:
    now_text = _config(legacy, newsvc, ROUTES_NOW)
    proxy = await make_proxy(now_text)
    await _send(proxy)
    log = _access_log(proxy, tmp_path / "access.log")
    traffic = read_sources([str(log)])
    assert (traffic.formats, traffic.requests, traffic.bad) == ({"strangler"}, 10, 0)

    proposed = load_config_text(_config(legacy, newsvc, ROUTES_PROPOSED))
    result = plan(load_config_text(now_text), proposed, traffic)
    # The access log has no query string: billing-api's "v" condition cannot be
    # evaluated, so the plan says so and nothing lands on billing-api.
    assert ("billing-api", "query parameter v") in {
        (u.route, u.condition) for u in result.unevaluated
    }
    assert ("users-beta", "header x-beta") in {(u.route, u.condition) for u in result.unevaluated}
    assert "billing-api" in result.idle_routes
    assert [(g.old_route, g.new_route, g.requests) for g in result.groups] == [
        ("(unrouted)", "reports", 1)
    ]
    assert result.before.migrated_share == pytest.approx(2 / 10)
    assert result.after.migrated_share == pytest.approx(3 / 10)

    # With a proposed change that moves nothing, the CLI says so and a CI gate passes.
    now_file = tmp_path / "now.yaml"
    now_file.write_text(now_text)
    args = ["plan", "-c", str(now_file), "--current", str(now_file), "-t", str(log)]
    assert main([*args, "--fail-if-moved", "0%", "--fail-if-owner-changes"]) == 0


async def test_plan_prediction_matches_the_proxy_running_the_new_config(
    make_proxy: MakeProxy, legacy: Upstream, newsvc: Upstream, tmp_path: Path
) -> None:
    now_text = _config(legacy, newsvc, ROUTES_NOW)
    new_text = _config(legacy, newsvc, ROUTES_PROPOSED)
    traffic = read_sources([str(_har(tmp_path / "sample.har"))])
    result = plan(load_config_text(now_text), load_config_text(new_text), traffic)
    assert [(o.old_route, o.new_route, o.requests) for o in result.owner_changes] == [
        ("users", "billing-api", 1)
    ]

    # The same requests, one by one, through a real proxy running the proposed config.
    proxy = await make_proxy(new_text)
    await _send(proxy)
    served = [
        (str(line["path"]), str(line["route"]), str(line["backend"]))
        for line in proxy.access_lines()
    ]
    replayer = Replayer(load_config_text(now_text), load_config_text(new_text))
    predicted = []
    for key in traffic.counts:  # HAR order: one distinct request per entry
        route = replayer.routes(key)[1]
        predicted.append((key.path, route.name, backend_of(route)))
    assert served == predicted
    # ...and the "after" figures are what that proxy did.
    answered_new = sum(1 for _, _, backend in served if backend == "new")
    assert result.after.new == pytest.approx(answered_new)
    assert result.route_requests["billing-api"] == sum(1 for s in served if s[1] == "billing-api")


async def test_plan_against_a_running_proxys_admin_api(
    make_proxy: MakeProxy, legacy: Upstream, newsvc: Upstream, tmp_path: Path
) -> None:
    now_text = _config(legacy, newsvc, ROUTES_NOW)
    proxy = await make_proxy(now_text)
    new_file = tmp_path / "new.yaml"
    new_file.write_text(_config(legacy, newsvc, ROUTES_PROPOSED))
    har = _har(tmp_path / "sample.har")
    args = ["plan", "-c", str(new_file), "--admin", proxy.admin_url, "-t", str(har), "--json"]
    # The CLI runs its own event loop: give it a thread.
    out = tmp_path / "out.json"

    def run() -> int:
        import contextlib

        with out.open("w") as f, contextlib.redirect_stdout(f):
            return main(args)

    assert await asyncio.to_thread(run) == 0
    doc = json.loads(out.read_text())
    assert doc["owner_changes"][0]["old_route"] == "users"
    assert doc["owner_changes"][0]["new_route"] == "billing-api"


async def test_record_a_privacy_safe_sample_and_plan_with_it(
    make_proxy: MakeProxy,
    legacy: Upstream,
    newsvc: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", "s3cret")
    now_text = _config(legacy, newsvc, ROUTES_NOW)
    proxy = await make_proxy(now_text)
    assert proxy.server.proxy.recording.sampler is None  # off: nothing per request
    sample = tmp_path / "sample.jsonl"
    args = ["plan", "--record", str(sample), "--admin", proxy.admin_url,
            "--max", str(len(TRAFFIC)), "--duration", "20"]  # fmt: skip
    task = asyncio.ensure_future(asyncio.to_thread(main, args))
    async with aiohttp.ClientSession() as s:
        for _ in range(200):  # bounded: the CLI starts recording within a few tries
            async with s.get(proxy.admin_url + "/api/plan/record") as r:
                if (await r.json())["recording"]:
                    break
            await asyncio.sleep(0.02)
    await _send(proxy)  # fills the sample: the CLI stops at --max
    assert await asyncio.wait_for(task, 15) == 0
    assert proxy.server.proxy.recording.sampler is None
    lines = [json.loads(x) for x in sample.read_text().splitlines()]
    assert len(lines) == len(TRAFFIC)
    by_path = {x["path"]: x for x in lines}
    assert by_path["/api/users/8"]["query_keys"] == ["v"]
    assert by_path["/api/users/9"]["header_names"] == ["x-beta"]
    assert by_path["/api/users/9"]["route"] == "users-beta"
    assert "2" not in json.dumps(by_path["/api/users/8"])  # no query values

    # A recording carries query names and the route headers: those conditions count.
    traffic = read_sources([str(sample)])
    result = plan(
        load_config_text(now_text),
        load_config_text(_config(legacy, newsvc, ROUTES_PROPOSED)),
        traffic,
    )
    assert ("users-beta", "header x-beta") not in {
        (u.route, u.condition) for u in result.unevaluated
    }
    assert ("billing-api", "query parameter v (value)") in {
        (u.route, u.condition) for u in result.unevaluated
    }


async def test_record_needs_the_token(
    make_proxy: MakeProxy, legacy: Upstream, newsvc: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", "s3cret")
    proxy = await make_proxy(_config(legacy, newsvc, ROUTES_NOW))
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.admin_url + "/api/plan/record", json={}) as r:
            assert r.status == 401
        auth = {"Authorization": "Bearer s3cret"}
        async with s.post(
            proxy.admin_url + "/api/plan/record", json={"rate": 2}, headers=auth
        ) as r:
            assert r.status == 400
            assert "'rate' must be a number" in await r.text()
    assert proxy.server.proxy.recording.sampler is None


async def test_admin_plan_shows_a_runtime_override_that_survives_the_reload(
    make_proxy: MakeProxy,
    legacy: Upstream,
    newsvc: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", "s3cret")
    canary = """
routes:
  - name: users
    owner: team-users
    match: {{path_prefix: /api/users}}
    to: legacy
    canary: {{to: new, percent: {pct}}}
"""
    proxy = await make_proxy(_config(legacy, newsvc, canary.replace("{pct}", "10")))
    auth = {"Authorization": "Bearer s3cret"}
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            proxy.admin_url + "/api/routes/users/percent", json={"percent": "25%"}, headers=auth
        ) as r,
    ):
        assert r.status == 200
    new_file = tmp_path / "new.yaml"
    new_file.write_text(_config(legacy, newsvc, canary.replace("{pct}", "50")))
    out = tmp_path / "out.json"

    def run() -> int:
        import contextlib

        args = ["plan", "-c", str(new_file), "--admin", proxy.admin_url]
        args += ["-t", str(_har(tmp_path / "s.har")), "--json"]
        with out.open("w") as f, contextlib.redirect_stdout(f):
            return main(args)

    assert await asyncio.to_thread(run) == 0
    (row,) = json.loads(out.read_text())["release"]
    assert row == {
        "route": "users",
        "change": "changed",
        "before": "canary 10% → new",
        "after": "canary 50% → new",
        "requests": 4,  # the /api/users requests of TRAFFIC
        "runtime": "canary percent overridden to 25%",
    }
