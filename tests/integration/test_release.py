"""Release controls end to end: real legacy and new upstreams, a real proxy, real admin API.

Shares are measured, stickiness and monotonicity checked per user, overrides,
kill switch, fallback, SLO guard, token refusal, and state surviving a restart.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from strangler.cli import main as cli_main
from strangler.config import load_config_text
from strangler.metrics import Metrics
from strangler.server import ProxyServer, ServeOptions
from tests.conftest import MakeProxy, RunningProxy, Upstream
from tests.serve_support import free_port, serve, worker_pids

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def config(legacy: Upstream, new: str, routes: str) -> str:
    return f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
access_log: {{format: off}}
upstreams:
  legacy: {legacy.url}
  billing: {new}
routes:
{routes}
"""


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def served_by(s: aiohttp.ClientSession, url: str, **headers: str) -> str:
    async with s.get(url, headers=headers) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["served_by"])


async def admin(
    s: aiohttp.ClientSession, proxy: RunningProxy, method: str, path: str, **kw: object
) -> tuple[int, dict[str, object]]:
    async with s.request(method, proxy.admin_url + path, **kw) as r:  # type: ignore[arg-type]
        body = await r.json() if r.content_type == "application/json" else {"text": await r.text()}
        return r.status, body


async def test_canary_share_is_measured(
    legacy: Upstream, newsvc: Upstream, make_proxy: MakeProxy, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        config(
            legacy,
            newsvc.url,
            "  - {name: inv, owner: t, match: {path_prefix: /inv}, to: legacy,"
            " canary: {to: billing, percent: 30%}}",
        )
    )
    seen = Counter([await served_by(session, proxy.url + "/inv/1") for _ in range(1500)])
    assert abs(seen["new"] / 1500 - 0.30) < 0.05, seen
    m = proxy.server.metrics.registry
    assert (
        m.get_sample_value(
            "strangler_release_decisions_total", {"route": "inv", "reason": "canary"}
        )
        == seen["new"]
    )


async def test_sticky_cohorts_are_stable_and_raising_only_adds_users(
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: str,
) -> None:
    proxy = await make_proxy(
        config(
            legacy,
            newsvc.url,
            "  - {name: inv, owner: t, match: {path_prefix: /inv}, to: legacy,"
            " canary: {to: billing, percent: 20%, sticky: header:X-User-Id}}",
        )
    )
    users = [f"user-{i}" for i in range(300)]
    first = {}
    for u in users:
        sides = {
            await served_by(session, proxy.url + "/inv/1", **{"X-User-Id": u}) for _ in range(3)
        }
        assert len(sides) == 1, f"{u} moved between backends: {sides}"
        first[u] = sides.pop()
    share = sum(1 for v in first.values() if v == "new") / len(users)
    assert 0.12 < share < 0.28
    status, _ = await admin(
        session, proxy, "POST", "/api/routes/inv/percent", json={"percent": "50%"}, headers=AUTH
    )
    assert status == 200
    after = {u: await served_by(session, proxy.url + "/inv/1", **{"X-User-Id": u}) for u in users}
    assert all(after[u] == "new" for u in users if first[u] == "new")  # nobody moved back
    assert sum(1 for v in after.values() if v == "new") > sum(
        1 for v in first.values() if v == "new"
    )


async def test_override_header_only_where_allowed(
    legacy: Upstream, newsvc: Upstream, make_proxy: MakeProxy, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        config(
            legacy,
            newsvc.url,
            "  - {name: open, owner: t, match: {path_prefix: /open}, to: legacy, overrides: true,"
            " canary: {to: billing, percent: 0%}}\n"
            "  - {name: closed, owner: t, match: {path_prefix: /closed}, to: legacy,"
            " canary: {to: billing, percent: 0%}}\n"
            "  - {name: office, owner: t, match: {path_prefix: /office}, to: legacy,"
            " canary: {to: billing, percent: 0%},"
            " overrides: {networks: [10.0.0.0/8]}}",
        )
    )
    force = {"X-Strangler-Backend": "billing"}
    assert await served_by(session, proxy.url + "/open/1", **force) == "new"
    assert await served_by(session, proxy.url + "/open/1") == "legacy"
    assert newsvc.recorder.header(0, "X-Strangler-Backend") == []  # not forwarded
    assert await served_by(session, proxy.url + "/closed/1", **force) == "legacy"
    assert await served_by(session, proxy.url + "/office/1", **force) == "legacy"  # not 10/8
    async with session.get(
        proxy.url + "/open/1", headers={"Cookie": "strangler_backend=billing"}
    ) as r:
        assert (await r.json())["served_by"] == "new"


async def test_kill_switch_and_enable_need_the_token(
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: str,
) -> None:
    proxy = await make_proxy(
        config(
            legacy, newsvc.url, "  - {name: inv, owner: t, match: {path_prefix: /inv}, to: billing}"
        )
    )
    assert await served_by(session, proxy.url + "/inv/1") == "new"
    status, _ = await admin(session, proxy, "POST", "/api/routes/inv/rollback")
    assert status == 401
    status, _ = await admin(
        session, proxy, "POST", "/api/routes/inv/rollback", headers={"Authorization": "Bearer no"}
    )
    assert status == 401
    assert await served_by(session, proxy.url + "/inv/1") == "new"
    status, body = await admin(session, proxy, "POST", "/api/routes/inv/rollback", headers=AUTH)
    assert status == 200, body
    assert await served_by(session, proxy.url + "/inv/1") == "legacy"
    status, body = await admin(session, proxy, "GET", "/api/routes/inv")
    assert body["status"] == "rolled-back"
    assert body["effective_new_percent"] == 0
    status, body = await admin(session, proxy, "GET", "/api/events")
    events = body["events"]
    assert isinstance(events, list)
    assert events[-1]["action"] == "rollback"
    assert events[-1]["who"] == "admin@127.0.0.1"
    assert TOKEN not in str(events)
    status, _ = await admin(session, proxy, "POST", "/api/routes/inv/enable", headers=AUTH)
    assert status == 200
    assert await served_by(session, proxy.url + "/inv/1") == "new"
    status, _ = await admin(session, proxy, "POST", "/api/routes/nope/rollback", headers=AUTH)
    assert status == 404
    text = await (await session.get(proxy.admin_url + "/metrics")).text()
    assert 'strangler_route_killed{route="inv"} 0.0' in text


async def test_writes_refused_without_a_configured_token(
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STRANGLER_ADMIN_TOKEN", raising=False)
    proxy = await make_proxy(
        config(
            legacy, newsvc.url, "  - {name: inv, owner: t, match: {path_prefix: /inv}, to: billing}"
        )
    )
    status, body = await admin(
        session, proxy, "POST", "/api/routes/inv/rollback", headers={"Authorization": "Bearer x"}
    )
    assert status == 403
    assert "no admin token is configured" in str(body)


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_fallback_to_legacy_when_the_new_side_is_down(
    legacy: Upstream, make_proxy: MakeProxy, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        config(
            legacy,
            f"http://127.0.0.1:{dead_port()}",
            "  - {name: inv, owner: t, match: {path_prefix: /inv}, to: billing}",
        )
    )
    for _ in range(20):  # zero client-visible errors for idempotent requests
        assert await served_by(session, proxy.url + "/inv/1") == "legacy"
    async with session.put(proxy.url + "/inv/1", data=b"replayed body") as r:
        assert r.status == 200
        assert (await r.json())["body_len"] == len(b"replayed body")
    async with session.post(proxy.url + "/inv/1", data=b"x") as r:
        assert r.status == 502  # never for a non-idempotent request
    m = proxy.server.metrics.registry
    assert (
        m.get_sample_value("strangler_fallbacks_total", {"route": "inv", "failure": "refused"})
        == 21
    )
    labels = {"route": "inv", "upstream": "legacy", "target": "legacy", "status_class": "2xx"}
    assert m.get_sample_value("strangler_requests_total", labels) == 21


async def test_fallback_on_5xx_from_the_new_side(
    legacy: Upstream, newsvc: Upstream, make_proxy: MakeProxy, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        config(
            legacy,
            newsvc.url,
            "  - {name: st, owner: t, match: {path_prefix: /status}, to: billing}",
        )
    )
    async with session.get(proxy.url + "/status/503") as r:
        assert r.status == 503  # legacy's own answer to the same request
    m = proxy.server.metrics.registry
    assert m.get_sample_value("strangler_fallbacks_total", {"route": "st", "failure": "5xx"}) == 1
    by = {"route": "st", "status_class": "5xx"}
    assert (
        m.get_sample_value(
            "strangler_requests_total", {**by, "upstream": "legacy", "target": "legacy"}
        )
        == 1
    )
    assert (
        m.get_sample_value(
            "strangler_requests_total", {**by, "upstream": "billing", "target": "new"}
        )
        == 0
    )


async def wait_status(
    s: aiohttp.ClientSession, proxy: RunningProxy, route: str, want: str
) -> dict[str, object]:
    body: dict[str, object] = {}
    for _ in range(100):  # the guard is evaluated every second: poll, bounded
        _, body = await admin(s, proxy, "GET", f"/api/routes/{route}")
        if body["status"] == want:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"route {route} never reached {want}: {body}")


async def test_guard_trips_on_error_rate_and_stays_until_enabled(
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: str,
) -> None:
    proxy = await make_proxy(
        config(
            legacy,
            newsvc.url,
            "  - {name: st, owner: t, match: {path_prefix: /status}, to: billing,"
            " fallback: false, slo: {error_rate: 10%, window: 30s, min_requests: 20}}",
        )
    )
    for i in range(40):
        async with session.get(proxy.url + ("/status/500" if i % 3 == 0 else "/status/200")) as r:
            await r.read()
    body = await wait_status(session, proxy, "st", "guard-tripped")
    state = body["state"]
    assert isinstance(state, dict)
    assert "error" in str(state["guard_reason"])
    async with session.get(proxy.url + "/status/500") as r:
        assert r.status == 500
    m = proxy.server.metrics.registry
    assert (
        m.get_sample_value("strangler_release_decisions_total", {"route": "st", "reason": "guard"})
        == 1
    )
    text = await (await session.get(proxy.admin_url + "/metrics")).text()
    assert 'strangler_guard_tripped{route="st"} 1.0' in text
    # The trip holds in memory at once; its store write and audit line follow it.
    listed: object = []
    for _ in range(100):  # bounded poll, like wait_status
        _, events = await admin(session, proxy, "GET", "/api/events")
        listed = events["events"]
        if listed:
            break
        await asyncio.sleep(0.05)
    assert isinstance(listed, list)
    assert [e["who"] for e in listed] == ["guard"]
    status, _ = await admin(session, proxy, "POST", "/api/routes/st/enable", headers=AUTH)
    assert status == 200
    await wait_status(session, proxy, "st", "active")


async def test_guard_trips_on_latency(
    legacy: Upstream, newsvc: Upstream, make_proxy: MakeProxy, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        config(
            legacy,
            newsvc.url,
            "  - {name: slow, owner: t, match: {path_prefix: /slow}, to: billing,"
            " slo: {latency_p99: 20ms, window: 30s, min_requests: 10}}",
        )
    )
    await asyncio.gather(*(served_by(session, proxy.url + "/slow?ms=60") for _ in range(12)))
    await wait_status(session, proxy, "slow", "guard-tripped")
    assert await served_by(session, proxy.url + "/slow?ms=1") == "legacy"


async def test_state_survives_a_restart(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream, token: str
) -> None:
    text = config(
        legacy, newsvc.url, "  - {name: inv, owner: t, match: {path_prefix: /inv}, to: billing}"
    )

    async def start() -> ProxyServer:
        server = ProxyServer(
            load_config_text(text),
            ServeOptions(config_path=None, state_dir=tmp_path / "state"),
            metrics=Metrics(),
            access_stream=io.StringIO(),
        )
        await server.start()
        return server

    first = await start()
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"http://127.0.0.1:{first.admin_port}/api/routes/inv/rollback", headers=AUTH
        ) as r:
            assert r.status == 200
        await first.stop()
        second = await start()
        try:
            url = f"http://127.0.0.1:{second.proxy_port}/inv/1"
            assert await served_by(s, url) == "legacy"
        finally:
            await second.stop()


async def test_cli_routes_set_rollback_enable(
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = await make_proxy(
        config(
            legacy,
            newsvc.url,
            "  - {name: inv, owner: team-billing, match: {path_prefix: /inv, methods: [GET]},"
            " to: legacy, canary: {to: billing, percent: 10%}}",
        )
    )
    adm = ["--admin", proxy.admin_url]
    assert await asyncio.to_thread(cli_main, ["routes", *adm]) == 0
    out = capsys.readouterr().out
    assert "inv" in out
    assert "team-billing" in out
    assert "GET /inv" in out
    assert "10%" in out
    assert await asyncio.to_thread(cli_main, ["set", "inv", "--percent", "100%", *adm]) == 0
    assert await served_by(session, proxy.url + "/inv/1") == "new"
    assert await asyncio.to_thread(cli_main, ["rollback", "--all", *adm]) == 0
    assert await served_by(session, proxy.url + "/inv/1") == "legacy"
    assert await asyncio.to_thread(cli_main, ["enable", "inv", *adm]) == 0
    assert await served_by(session, proxy.url + "/inv/1") == "new"
    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, ["routes", "--admin", "http://127.0.0.1:9"]) == 1
    assert "cannot reach the admin API" in capsys.readouterr().err


async def test_kill_switch_reaches_every_worker_within_a_second(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream, token: str
) -> None:
    port, admin_port = free_port(), free_port()
    cfg = tmp_path / "strangler.yaml"
    cfg.write_text(
        config(
            legacy, newsvc.url, "  - {name: inv, owner: t, match: {path_prefix: /inv}, to: billing}"
        )
        .replace("listen: 127.0.0.1:0", f"listen: 127.0.0.1:{port}", 1)
        .replace("{listen: 127.0.0.1:0}", f"{{listen: 127.0.0.1:{admin_port}}}")
    )
    async with serve("--config", str(cfg), workers=2) as running:
        await worker_pids(admin_port, 2)
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"http://127.0.0.1:{admin_port}/api/routes/inv/rollback", headers=AUTH) as r,
        ):
            assert r.status == 200
        await asyncio.sleep(1.0)  # the promise under test: every worker within one second
        for _ in range(30):  # fresh connections: both workers answer some
            async with aiohttp.ClientSession() as s:
                assert await served_by(s, f"http://127.0.0.1:{port}/inv/1") == "legacy"
        assert await running.stop() == 0
