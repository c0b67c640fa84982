"""A reload never dies and never lies: any failure is a counted, logged rejection, and
the file watcher and the SIGHUP handler keep working after one."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from strangler.config import load_config
from strangler.metrics import Metrics
from strangler.server import ProxyServer, ServeOptions
from tests.conftest import Upstream

CONFIG = """
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy}
routes:
  - {{name: things, owner: t, match: {{path_prefix: /things}}, to: {to}}}
"""
BAD_URL = 'listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0}\nupstreams:\n  legacy: "http://[::1"\n'


class Rejections(logging.Handler):
    """Sets an event for each "config reload rejected" log record: the thing to await."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("config reload rejected"):
            self.messages.append(record.getMessage())
            self.seen.set()


@pytest.fixture
def rejections() -> Iterator[Rejections]:
    handler = Rejections()
    logger = logging.getLogger("strangler")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def start(path: Path, **options: object) -> ProxyServer:
    return ProxyServer(
        load_config(path),
        ServeOptions(config_path=path, state_dir=path.parent / "state", **options),  # type: ignore[arg-type]
        metrics=Metrics(),
        access_stream=io.StringIO(),
    )


@pytest.fixture
async def watched(tmp_path: Path, legacy: Upstream) -> AsyncIterator[ProxyServer]:
    path = tmp_path / "strangler.yaml"
    path.write_text(CONFIG.format(legacy=legacy.url, to="legacy"))
    server = start(path, watch_interval=0.02, handle_signals=True)
    await server.start()
    yield server
    await server.stop()


def rejected(server: ProxyServer) -> float | None:
    return server.metrics.registry.get_sample_value(
        "strangler_config_reloads_total", {"result": "rejected"}
    )


async def test_a_bad_url_through_the_watcher_is_rejected_and_watching_goes_on(
    watched: ProxyServer, rejections: Rejections, legacy: Upstream
) -> None:
    path = watched.options.config_path
    assert path is not None
    before = watched.config.version
    path.write_text(BAD_URL)
    await asyncio.wait_for(rejections.seen.wait(), 10)
    assert rejected(watched) == 1
    assert watched.config.version == before
    assert (
        f"{path}:4: upstreams.legacy: URL 'http://[::1' is not a valid URL"
        in (rejections.messages[0])
    )
    # The watcher is alive: the next edit is applied without a SIGHUP.
    path.write_text(CONFIG.format(legacy=legacy.url, to="legacy") + "# edited\n")
    await asyncio.wait_for(watched.wait_for_generation(2), 10)
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{watched.proxy_port}/things/1") as r,
    ):
        assert r.status == 200


async def test_a_bad_url_through_sighup_is_rejected(
    watched: ProxyServer, rejections: Rejections, caplog: pytest.LogCaptureFixture
) -> None:
    path = watched.options.config_path
    assert path is not None
    path.write_text(BAD_URL)
    os.kill(os.getpid(), signal.SIGHUP)
    await asyncio.wait_for(rejections.seen.wait(), 10)
    assert rejected(watched) == 1
    assert "never retrieved" not in caplog.text


async def test_an_unexpected_failure_is_a_rejection_and_the_watcher_lives(
    watched: ProxyServer,
    rejections: Rejections,
    legacy: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fault injection: a bug of ours in loading (any exception, not a ConfigError)."""
    import strangler.server

    real = strangler.config.load_config

    def broken(path: str | Path) -> object:
        raise RuntimeError("a bug in the loader")

    path = watched.options.config_path
    assert path is not None
    monkeypatch.setattr(strangler.server, "load_config", broken)
    path.write_text(CONFIG.format(legacy=legacy.url, to="legacy") + "# one\n")
    await asyncio.wait_for(rejections.seen.wait(), 10)
    assert rejected(watched) == 1
    assert rejections.messages[0].endswith(
        f"{path}: cannot load the config: RuntimeError: a bug in the loader"
    )
    monkeypatch.setattr(strangler.server, "load_config", real)
    path.write_text(CONFIG.format(legacy=legacy.url, to="legacy") + "# two\n")
    await asyncio.wait_for(watched.wait_for_generation(2), 10)


async def test_an_unexpected_failure_through_sighup_is_a_rejection(
    tmp_path: Path,
    legacy: Upstream,
    rejections: Rejections,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import strangler.server

    def broken(path: str | Path) -> object:
        raise RuntimeError("a bug in the loader")

    path = tmp_path / "strangler.yaml"
    path.write_text(CONFIG.format(legacy=legacy.url, to="legacy"))
    server = start(path, watch_interval=0, handle_signals=True)
    await server.start()
    try:
        monkeypatch.setattr(strangler.server, "load_config", broken)
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(rejections.seen.wait(), 10)
        assert rejected(server) == 1
        assert "never retrieved" not in caplog.text
    finally:
        await server.stop()
