"""Hot reload: validated off the request path, swapped atomically, never dropping a request."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from strangler.config import load_config
from strangler.metrics import Metrics
from strangler.server import ProxyServer, ServeOptions
from tests.conftest import Upstream

MAIN = """
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy}
  billing: {new}
include: [routes/*.yaml]
"""

TEAM = """
routes:
  - name: things
    owner: team-things
    match: {{path_prefix: /things}}
    to: {to}
"""


def write_config(tmp: Path, legacy: Upstream, new: Upstream, to: str) -> Path:
    (tmp / "routes").mkdir(exist_ok=True)
    main = tmp / "strangler.yaml"
    main.write_text(MAIN.format(legacy=legacy.url, new=new.url))
    (tmp / "routes" / "team.yaml").write_text(TEAM.format(to=to))
    return main


@pytest.fixture
async def served(tmp_path: Path, legacy: Upstream, newsvc: Upstream) -> AsyncIterator[ProxyServer]:
    path = write_config(tmp_path, legacy, newsvc, "legacy")
    server = ProxyServer(
        load_config(path),
        ServeOptions(config_path=path, watch_interval=0),
        metrics=Metrics(),
        access_stream=io.StringIO(),
    )
    await server.start()
    yield server
    await server.stop()


async def test_200_reloads_under_load_lose_no_request(
    served: ProxyServer, tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    url = f"http://127.0.0.1:{served.proxy_port}/things/1"
    stop = asyncio.Event()
    outcomes: list[int | str] = []

    async def client() -> None:
        async with aiohttp.ClientSession() as s:
            for _ in range(100_000):  # bounded; stops when the reloads are done
                if stop.is_set():
                    return
                try:
                    async with s.get(url) as r:
                        await r.read()
                        outcomes.append(r.status)
                except aiohttp.ClientError as e:
                    outcomes.append(repr(e))

    clients = [asyncio.ensure_future(client()) for _ in range(8)]
    try:
        for i in range(200):
            write_config(tmp_path, legacy, newsvc, "billing" if i % 2 == 0 else "legacy")
            result, message = await served.reload()
            assert result == "applied", message
            await asyncio.sleep(0)  # let requests run between reloads
    finally:
        stop.set()
        await asyncio.gather(*clients)
    errors = [o for o in outcomes if o != 200]
    assert errors == []
    assert len(outcomes) > 200
    assert legacy.recorder.seen
    assert newsvc.recorder.seen
    assert (
        served.metrics.registry.get_sample_value(
            "strangler_config_reloads_total", {"result": "applied"}
        )
        == 200
    )


async def test_bad_config_is_rejected_and_old_one_keeps_serving(
    served: ProxyServer, tmp_path: Path
) -> None:
    before = served.holder.current.version
    (tmp_path / "routes" / "team.yaml").write_text(TEAM.format(to="nowhere"))
    result, message = await served.reload()
    assert result == "rejected"
    assert "team.yaml:6" in message
    assert "nowhere" in message
    assert served.holder.current.version == before
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{served.proxy_port}/things/1") as r,
    ):
        assert r.status == 200
    assert (
        served.metrics.registry.get_sample_value(
            "strangler_config_reloads_total", {"result": "rejected"}
        )
        == 1
    )


async def test_in_flight_request_finishes_on_its_snapshot(
    served: ProxyServer, tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    async with aiohttp.ClientSession() as s:
        pending = asyncio.ensure_future(s.get(f"http://127.0.0.1:{served.proxy_port}/hold"))
        await asyncio.wait_for(legacy.recorder.arrived.wait(), 5)
        write_config(tmp_path, legacy, newsvc, "billing")
        assert (await served.reload())[0] == "applied"
        legacy.recorder.release.set()
        resp = await asyncio.wait_for(pending, 5)
        assert resp.status == 200
        assert await resp.text() == "released"
        resp.release()


async def test_websocket_stays_open_across_reload(
    served: ProxyServer, tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(f"http://127.0.0.1:{served.proxy_port}/ws") as ws,
    ):
        await ws.send_str("before")
        assert (await ws.receive()).data == "echo:before"
        write_config(tmp_path, legacy, newsvc, "billing")
        assert (await served.reload())[0] == "applied"
        await ws.send_str("after")
        assert (await ws.receive()).data == "echo:after"


async def test_file_change_triggers_reload(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    path = write_config(tmp_path, legacy, newsvc, "legacy")
    server = ProxyServer(
        load_config(path),
        ServeOptions(config_path=path, watch_interval=0.05),
        metrics=Metrics(),
        access_stream=io.StringIO(),
    )
    await server.start()
    try:
        first = server.holder.current.version
        write_config(tmp_path, legacy, newsvc, "billing")
        await asyncio.wait_for(server.wait_for_generation(2), 10)
        assert server.holder.current.version != first
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{server.proxy_port}/things/x") as r,
        ):
            assert (await r.json())["served_by"] == "new"
    finally:
        await server.stop()


async def test_admin_reload_needs_token(
    served: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = f"http://127.0.0.1:{served.admin_port}"
    async with aiohttp.ClientSession() as s:
        async with s.post(admin + "/reload") as r:
            assert r.status == 403  # no token configured: writes refused
        async with s.get(admin + "/readyz") as r:
            body = await r.json()
            assert r.status == 200
            assert body["version"] == served.holder.current.version
            assert body["ready"] is True
        async with s.get(admin + "/healthz") as r:
            assert (await r.json())["status"] == "ok"
