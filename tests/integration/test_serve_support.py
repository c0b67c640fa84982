"""The ``strangler serve`` helper of the integration tests (tests/serve_support.py)
keeps its promises: a test that fails inside it leaves no supervisor and no worker
behind, and a process that exits before it is ready fails the wait at once, with
what it wrote."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Upstream
from tests.serve_support import Serving, listen_args, serve


def alive(pid: int) -> bool:
    """Running (a killed worker whose new parent has not reaped it yet is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class Boom(Exception):
    pass


async def test_a_failing_test_leaves_no_process_behind(legacy: Upstream) -> None:
    """The test fails while a worker holds a request: a worker told to drain would
    wait for it (``drain: 30s``), so only a kill of the whole group ends it now."""
    seen: list[Serving] = []
    held: list[asyncio.Future[aiohttp.ClientResponse]] = []

    async def failing_test(client: aiohttp.ClientSession) -> None:
        async with serve("--legacy", legacy.url, *listen_args(), workers=2) as running:
            seen.append(running)
            assert len(running.workers) == 2
            held.append(asyncio.ensure_future(client.get(running.url + "/hold")))
            await asyncio.wait_for(legacy.recorder.arrived.wait(), 10)
            raise Boom

    started = time.monotonic()
    async with aiohttp.ClientSession() as client:
        with pytest.raises(Boom):
            await failing_test(client)
        assert time.monotonic() - started < 10  # not a drain
        with pytest.raises(aiohttp.ClientError):  # the request died with its worker
            await held[0]
    (running,) = seen
    assert running.proc.returncode is not None  # the supervisor, reaped
    assert not [pid for pid in running.workers if alive(pid)]
    legacy.recorder.release.set()


async def test_an_early_exit_fails_the_readiness_wait_at_once(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("upstreams:\n  legacy: ftp://x\n")
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"exited \(1\) before 1 worker\(s\) serving"):
        async with serve("--config", str(cfg)):
            pass
    assert time.monotonic() - started < 10  # not the readiness deadline (30 s)
