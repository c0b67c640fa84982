"""Integration fixtures: a real third-party WSGI app (httpbin under gunicorn) as legacy.

``httpbin`` is session-scoped: one gunicorn master with two gthread workers on a free
127.0.0.1 port, started once and stopped at the end of the session. Readiness is
polled with a bounded number of HTTP requests; between tries the fixture waits on the
gunicorn process itself, so a gunicorn that dies on start fails the session at once
with its own output instead of timing out.

``strangler_proxy`` is a real ``ProxyServer`` with no routes in front of it (every
request is unrouted and goes to legacy), started per test by ``make_proxy``.
"""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import pytest

from tests.browser import APT_PACKAGE, Browser, find_chromium, launch
from tests.conftest import BASE_CONFIG, MakeProxy, RunningProxy
from tests.serve_support import free_port

HOST: Final = "127.0.0.1"
START_DEADLINE: Final = 10.0  # seconds gunicorn gets to answer its first request
POLL_INTERVAL: Final = 0.05  # seconds between readiness tries (waited on the process)


@dataclass(frozen=True, slots=True)
class Httpbin:
    """A running httpbin (gunicorn) the tests can reach directly."""

    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def _answers(port: int, timeout: float) -> bool:
    """True once gunicorn answers a real HTTP request on ``port``."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/status/200")
        return conn.getresponse().status == 200
    except OSError:  # refused while gunicorn binds, or no worker accepted in time
        return False
    finally:
        conn.close()


def _wait_until_answering(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    tries = int(START_DEADLINE / POLL_INTERVAL)
    for _ in range(tries):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if _answers(port, timeout=min(1.0, remaining)):
            return
        # The pause between tries is a wait on gunicorn itself: it returns at once
        # (with the exit code) if gunicorn died, instead of sleeping blind.
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = proc.wait(timeout=POLL_INTERVAL)
            pytest.fail(f"gunicorn exited with {code} on start:\n{log.read_text()}")
    pytest.fail(f"gunicorn did not answer within {START_DEADLINE}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def httpbin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Httpbin]:
    """httpbin under gunicorn on a free port, for the whole session."""
    workdir = tmp_path_factory.mktemp("httpbin")  # no stray gunicorn.conf.py gets picked up
    log = workdir / "gunicorn.log"
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-b",
        f"{HOST}:{port}",
        "-w",
        "2",
        "--worker-class",
        "gthread",
        "--threads",
        "8",
        "--graceful-timeout",
        "5",
        "httpbin:app",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_answering(proc, port, log)
        yield Httpbin(port=port, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def strangler_proxy(make_proxy: MakeProxy, httpbin: Httpbin) -> RunningProxy:
    """strangler with no routes at all in front of httpbin."""
    return await make_proxy(BASE_CONFIG.format(legacy=httpbin.url, extra=""))


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that changes nothing it receives and keeps no state between requests.

    No decompression (compressed bytes are compared as they are), no cookie jar (a
    cookie set by one answer must not be sent with the next request), no redirects
    followed (``allow_redirects=False`` per request in the tests).
    """
    async with aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session


# ---------------------------------------------------------------- headless Chromium


@pytest.fixture
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.fail(
            "the status page tests need headless Chromium and found none ($CHROMIUM, "
            f"'chromium' on PATH, /usr/bin/chromium): install the Debian package "
            f"'{APT_PACKAGE}' (apt-get install -y --no-install-recommends {APT_PACKAGE})",
            pytrace=False,
        )
    return path


@pytest.fixture
async def browser(chromium: str, tmp_path: Path) -> AsyncIterator[Browser]:
    async with launch(chromium, tmp_path / "chromium-profile") as b:
        yield b
