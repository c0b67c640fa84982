"""The ``strangler`` process as an operator runs it: zero-config serve, SIGTERM drain,
SIGHUP reload, ``--workers 2``. Real subprocesses, real signals, 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from tests.conftest import Upstream
from tests.serve_support import free_port, listen_args, serve, worker_pids


async def test_zero_config_serve_proxies_everything_and_drains_on_sigterm(
    legacy: Upstream,
) -> None:
    async with serve("--legacy", legacy.url, *listen_args(), "--access-log", "off") as running:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{running.url}/any/path?q=1") as r:
                assert (await r.json())["served_by"] == "legacy"
            # A request in flight when SIGTERM arrives still completes.
            pending = asyncio.ensure_future(s.get(f"{running.url}/hold"))
            await asyncio.wait_for(legacy.recorder.arrived.wait(), 5)
            legacy.recorder.arrived.clear()
            running.send_signal(signal.SIGTERM)
            async with s.get(f"{running.admin_url}/readyz") as r:
                # readiness flips while draining (the admin listener closes after the proxy)
                assert r.status in (200, 503)
            legacy.recorder.release.set()
            resp = await asyncio.wait_for(pending, 10)
            assert resp.status == 200
            assert await resp.text() == "released"
            resp.release()
        assert await running.exited() == 0


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
    async with serve("--config", str(cfg)) as running:
        async with aiohttp.ClientSession() as s:

            async def version() -> str:
                async with s.get(f"{running.admin_url}/readyz") as r:
                    return str((await r.json())["version"])

            async def served_by() -> str:
                async with s.get(f"{running.url}/r") as r:
                    return str((await r.json())["served_by"])

            v1 = await version()
            assert await served_by() == "legacy"
            write("billing")
            running.send_signal(signal.SIGHUP)
            await running.logged("config reloaded")
            assert await version() != v1
            assert await served_by() == "new"
            v2 = await version()
            write("nowhere")
            running.send_signal(signal.SIGHUP)
            await running.logged("config reload rejected")
            assert await version() == v2
            assert await served_by() == "new"
        assert await running.stop() == 0


async def test_two_workers_share_the_port(legacy: Upstream) -> None:
    async with serve(
        "--legacy", legacy.url, *listen_args(), "--access-log", "off", workers=2
    ) as running:
        pids = await worker_pids(running.admin, 2)
        assert pids == running.workers
        assert running.proc.pid not in pids
        for _ in range(20):  # fresh connections: spread over both workers
            async with aiohttp.ClientSession() as s, s.get(f"{running.url}/x") as r:
                assert r.status == 200
        # Either worker's /metrics reports the sum over both (multiprocess mode).
        for _ in range(4):
            async with (
                aiohttp.ClientSession() as s,
                s.get(f"{running.admin_url}/metrics") as r,
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
        assert await running.stop() == 0
        for pid in pids:  # no orphaned worker
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"worker {pid} still running")


async def test_serve_with_bad_config_exits_1_with_the_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("upstreams:\n  legacy: ftp://x\n")
    async with serve("--config", str(cfg), ready=False) as running:
        assert await running.exited() == 1
    assert f"{cfg}:2" in running.log_text()
    assert "Traceback" not in running.log_text()
