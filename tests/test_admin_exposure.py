"""The admin listener is not exposed by mistake, and its query parameters are checked."""

from __future__ import annotations

import doctest
import io
import logging
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from strangler.admin import app as admin_app
from strangler.admin import auth
from strangler.admin.auth import AdminExposed, is_loopback
from strangler.config import load_config_text
from strangler.metrics import Metrics
from strangler.server import ProxyServer, ServeOptions
from tests.conftest import MakeProxy, Upstream

CONFIG = """
listen: 127.0.0.1:0
admin: {{listen: "{admin}:0"{extra}}}
upstreams:
  legacy: {legacy}
routes:
  - {{name: things, owner: t, match: {{path_prefix: /things}}, to: legacy}}
"""


def server(text: str, tmp_path: Path) -> ProxyServer:
    return ProxyServer(
        load_config_text(text),
        ServeOptions(config_path=None, state_dir=tmp_path / "state"),
        metrics=Metrics(),
        access_stream=io.StringIO(),
    )


def test_doctests() -> None:
    for module in (admin_app, auth):
        assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "10.1.2.3", "admin.internal"])
def test_a_public_admin_without_a_token_does_not_start(
    host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRANGLER_ADMIN_TOKEN", raising=False)
    text = CONFIG.format(admin=host, extra="", legacy="http://127.0.0.1:1")
    with pytest.raises(AdminExposed) as info:
        server(text, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "is not a loopback address and no admin token is set" in message
    assert "admin.allow_public_reads: true" in message


async def test_allow_public_reads_starts_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("STRANGLER_ADMIN_TOKEN", raising=False)
    text = CONFIG.format(
        admin="0.0.0.0", extra=", allow_public_reads: true", legacy="http://127.0.0.1:1"
    )
    with caplog.at_level(logging.WARNING, logger="strangler.admin"):
        s = server(text, tmp_path)
    assert "answers reads (routes, upstream URLs, metrics, audit log) without a token" in (
        caplog.text
    )
    await s.stop()


async def test_a_public_admin_with_a_token_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", "s3cret")
    s = server(CONFIG.format(admin="0.0.0.0", extra="", legacy="http://127.0.0.1:1"), tmp_path)
    await s.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "[::1]", "localhost"])
def test_loopback_needs_nothing(host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRANGLER_ADMIN_TOKEN", raising=False)
    assert is_loopback(host.strip("[]"))
    server(CONFIG.format(admin=host, extra="", legacy="http://127.0.0.1:1"), tmp_path)


def test_allow_public_reads_is_validated() -> None:
    from strangler.errors import ConfigError

    text = CONFIG.format(admin="0.0.0.0", extra=", allow_public_reads: yes", legacy="http://x")
    with pytest.raises(ConfigError, match=r"admin.allow_public_reads must be true or false"):
        load_config_text(text)


def test_serve_says_so_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(CONFIG.format(admin="0.0.0.0", extra="", legacy="http://127.0.0.1:1"))
    env = {"PATH": "/usr/bin:/bin", "STRANGLER_STATE_DIR": str(tmp_path)}
    for workers in ("1", "2"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "strangler",
                "serve",
                "--config",
                str(path),
                "--workers",
                workers,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 1
        lines = [line for line in done.stderr.splitlines() if "strangler:" in line]
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("strangler: not starting: admin.listen 0.0.0.0:0 is not a")
        assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------- query


@pytest.fixture
async def admin_url(make_proxy: MakeProxy, legacy: Upstream) -> str:
    proxy = await make_proxy(CONFIG.format(admin="127.0.0.1", extra="", legacy=legacy.url))
    return proxy.admin_url


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("/api/events?limit=-1", "limit must be a whole number from 1 to 1000"),
        ("/api/events?limit=0", "limit must be a whole number from 1 to 1000"),
        ("/api/events?limit=1001", "limit must be a whole number from 1 to 1000"),
        ("/api/events?limit=x", "limit must be a whole number from 1 to 1000"),
        ("/api/events?limit=" + "9" * 5000, "limit must be a whole number from 1 to 1000"),
        ("/api/events?limit=1&limit=2", "query parameter 'limit' is given more than once"),
        ("/api/events?lmit=5", "unknown query parameter 'lmit' (this endpoint takes: limit)"),
        ("/api/routes?format=json", "unknown query parameter 'format' (this endpoint takes: none)"),
        ("/healthz?x", "unknown query parameter 'x' (this endpoint takes: none)"),
        ("/api/routes/things?verbose=1", "unknown query parameter 'verbose'"),
        ("/api/groups?all=1", "unknown query parameter 'all' (this endpoint takes: none)"),
        ("/api/backlog?top=3", "unknown query parameter 'top' (this endpoint takes: limit, all)"),
        ("/api/migrate?route=x", "unknown query parameter 'route' (this endpoint takes: none)"),
        ("/api/plan/config?x=1", "unknown query parameter 'x' (this endpoint takes: none)"),
        ("/api/shadow/r?top=1&top=2", "query parameter 'top' is given more than once"),
    ],
)
async def test_bad_query_parameters_are_400_with_one_line(
    admin_url: str, query: str, reason: str
) -> None:
    async with aiohttp.ClientSession() as s, s.get(admin_url + query) as r:
        assert r.status == 400
        text = await r.text()
    assert text.startswith(reason)
    assert text.count("\n") == 1


@pytest.mark.parametrize(
    "query",
    [
        "/api/events?limit=5",
        "/api/events",
        "/metrics?name[]=strangler_build_info",
        "/?refresh=2",
        "/api/backlog?limit=3",
    ],
)
async def test_good_query_parameters_pass(admin_url: str, query: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(admin_url + query) as r:
        assert r.status == 200


async def test_a_write_with_an_undeclared_query_parameter_is_400(admin_url: str) -> None:
    """Main's write endpoints (``/api/enable``, ``/api/groups/...``) are checked too."""
    for path in ("/api/enable?route=x", "/api/groups/checkout/rollback?only_route=1"):
        async with aiohttp.ClientSession() as s, s.post(admin_url + path) as r:
            assert r.status == 400, path
            assert (await r.text()).startswith("unknown query parameter"), path
