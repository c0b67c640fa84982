"""The ``strangler`` process as an operator runs it: zero-config serve, SIGTERM drain,
SIGHUP reload, ``--workers 2``. Real subprocesses, real signals, 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.conftest import Upstream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def strangler(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``strangler ARGS`` in a fresh temporary working directory (its state files go there)."""
    with tempfile.TemporaryDirectory() as cwd:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "strangler",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def wait_healthy(admin_port: int, proc: asyncio.subprocess.Process) -> None:
    """Poll /healthz of a process we just started (an external process: no event to await)."""
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            if proc.returncode is not None:
                err = await proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"strangler exited {proc.returncode}: {err.decode()}")
            try:
                async with s.get(f"http://127.0.0.1:{admin_port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("strangler did not become healthy in 10 s")


async def worker_pids(admin_port: int, workers: int) -> set[int]:
    """The pids of the workers behind ``admin_port``, from fresh connections (the
    kernel spreads them over the workers sharing the port); bounded."""
    pids: set[int] = set()
    for _ in range(200):
        async with aiohttp.ClientSession() as s:
            try:
                async with s.get(f"http://127.0.0.1:{admin_port}/readyz") as r:
                    pids.add(int((await r.json())["worker_pid"]))
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)  # a worker may still be starting
        if len(pids) == workers:
            return pids
    raise AssertionError(f"saw {len(pids)} of {workers} workers: {pids}")


async def test_zero_config_serve_proxies_everything_and_drains_on_sigterm(
    legacy: Upstream,
) -> None:
    port, admin = free_port(), free_port()
    async with strangler(
        "serve",
        "--legacy",
        legacy.url,
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{admin}",
        "--access-log",
        "off",
    ) as proc:
        await wait_healthy(admin, proc)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/any/path?q=1") as r:
                assert (await r.json())["served_by"] == "legacy"
            # A request in flight when SIGTERM arrives still completes.
            pending = asyncio.ensure_future(s.get(f"http://127.0.0.1:{port}/hold"))
            await asyncio.wait_for(legacy.recorder.arrived.wait(), 5)
            legacy.recorder.arrived.clear()
            proc.send_signal(signal.SIGTERM)
            async with s.get(f"http://127.0.0.1:{admin}/readyz") as r:
                # readiness flips while draining (the admin listener closes after the proxy)
                assert r.status in (200, 503)
            legacy.recorder.release.set()
            resp = await asyncio.wait_for(pending, 10)
            assert resp.status == 200
            assert await resp.text() == "released"
            resp.release()
        assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_sighup_reloads_and_bad_config_keeps_old(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    port, admin = free_port(), free_port()
    cfg = tmp_path / "strangler.yaml"

    def write(to: str) -> None:
        cfg.write_text(
            f"""
listen: 127.0.0.1:{port}
admin: {{listen: 127.0.0.1:{admin}}}
access_log: {{format: off}}
upstreams:
  legacy: {legacy.url}
  billing: {newsvc.url}
routes:
  - {{name: r, owner: t, match: {{path_prefix: /r}}, to: {to}}}
"""
        )

    write("legacy")
    async with strangler("serve", "--config", str(cfg)) as proc:
        await wait_healthy(admin, proc)
        async with aiohttp.ClientSession() as s:

            async def version() -> str:
                async with s.get(f"http://127.0.0.1:{admin}/readyz") as r:
                    return str((await r.json())["version"])

            async def served_by() -> str:
                async with s.get(f"http://127.0.0.1:{port}/r") as r:
                    return str((await r.json())["served_by"])

            v1 = await version()
            assert await served_by() == "legacy"
            write("billing")
            proc.send_signal(signal.SIGHUP)
            for _ in range(200):  # the reload is in another process: poll, bounded
                if await version() != v1:
                    break
                await asyncio.sleep(0.05)
            assert await served_by() == "new"
            v2 = await version()
            write("nowhere")
            proc.send_signal(signal.SIGHUP)
            assert proc.stderr is not None
            line = b""
            for _ in range(100):
                line = await asyncio.wait_for(proc.stderr.readline(), 10)
                if b"rejected" in line:
                    break
            assert b"config reload rejected" in line
            assert await version() == v2
            assert await served_by() == "new"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_two_workers_share_the_port(legacy: Upstream) -> None:
    port, admin = free_port(), free_port()
    async with strangler(
        "serve",
        "--legacy",
        legacy.url,
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{admin}",
        "--workers",
        "2",
        "--access-log",
        "off",
    ) as proc:
        await wait_healthy(admin, proc)
        pids = await worker_pids(admin, 2)
        assert proc.pid not in pids
        for _ in range(20):  # fresh connections: spread over both workers
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/x") as r:
                assert r.status == 200
        # Either worker's /metrics reports the sum over both (multiprocess mode).
        for _ in range(4):
            async with (
                aiohttp.ClientSession() as s,
                s.get(f"http://127.0.0.1:{admin}/metrics") as r,
            ):
                text = await r.text()
            total = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("strangler_requests_total{")
            )
            assert total == 20
            info_pids = {
                line.split('pid="', 1)[1].split('"', 1)[0]
                for line in text.splitlines()
                if line.startswith("strangler_config_info{")
            }
            assert info_pids == {str(p) for p in pids}  # both workers' files are merged
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        for pid in pids:  # no orphaned worker
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"worker {pid} still running")


async def test_serve_with_bad_config_exits_1_with_the_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("upstreams:\n  legacy: ftp://x\n")
    async with strangler("serve", "--config", str(cfg)) as proc:
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 1
    assert f"{cfg}:2" in err.decode()
    assert "Traceback" not in err.decode()
