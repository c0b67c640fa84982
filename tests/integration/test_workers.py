"""``strangler serve --workers 3`` behaves like one proxy: real processes, real signals,
real upstreams, 127.0.0.1 only.

- every admin read (shadow results, audit events, readiness) gives the same answer
  whichever worker takes the connection, and ``/readyz`` names the supervisor;
- ``strangler_config_info`` has one series per live worker, for the live version only,
  and nothing warns at start;
- a worker that replaces one that exited serves the newest config, and with a broken
  file on disk the last config the workers accepted, never the start-up one.

The processes are outside the test's event loop: readiness is each worker's log line
(``tests.serve_support``); what they do not log is a bounded poll (``until``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from strangler.config import load_config
from strangler.shadow.shared import PUBLISH_INTERVAL
from tests.conftest import Upstream
from tests.serve_support import Serving, free_port, serve, until

TOKEN = "workers-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def get(url: str, **kw: Any) -> Any:
    """One GET on a fresh connection (the kernel spreads those over the workers)."""
    async with aiohttp.ClientSession() as s, s.get(url, **kw) as r:
        assert r.status == 200, (url, r.status, await r.text())
        if r.content_type == "application/json":
            return await r.json()
        return await r.text()


async def post(url: str, body: object = None) -> Any:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=AUTH) as r:
        assert r.status == 200, (url, r.status, await r.text())
        return await r.json()


async def _readyz(running: Serving) -> dict[str, Any] | None:
    if running.proc.returncode is not None:
        raise AssertionError(f"strangler exited {running.proc.returncode}: {running.log_text()}")
    try:
        async with aiohttp.ClientSession() as s, s.get(running.admin_url + "/readyz") as r:
            body: dict[str, Any] = await r.json()
    except aiohttp.ClientConnectionError:
        return None
    return body if r.status == 200 else None  # 503: a worker draining


async def replace_one(running: Serving, before: set[int]) -> set[int]:
    """SIGTERM one of the workers ``before``; once its replacement answers, the live
    pids."""
    gone = min(before)
    os.kill(gone, signal.SIGTERM)

    async def probe() -> set[int] | None:
        body = await _readyz(running)
        if body is None:
            return None
        pids = set(body["workers"])
        fresh = body["worker_pid"] not in before and gone not in pids
        return pids if fresh and len(pids) == 3 else None

    return await until(probe, f"a worker replacing {gone}")


async def config_info(running: Serving) -> dict[int, str]:
    """``strangler_config_info`` from ``/metrics``: worker pid -> version (one series
    per pid, asserted)."""
    text = await get(running.admin_url + "/metrics")
    found: dict[int, str] = {}
    for line in text.splitlines():
        if not line.startswith("strangler_config_info{"):
            continue
        labels = dict(
            part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(",")
        )
        pid = int(labels["pid"].strip('"'))
        assert pid not in found, f"two series for worker {pid}:\n{text}"
        found[pid] = labels["version"].strip('"')
    return found


def write_config(
    cfg: Path, port: int, admin: int, legacy: Upstream, new: Upstream, to: str, owner: str
) -> str:
    """Write the config; returns its version (as the proxy computes it)."""
    cfg.write_text(
        f"""
listen: 127.0.0.1:{port}
admin: {{listen: 127.0.0.1:{admin}}}
access_log: {{format: off}}
upstreams:
  legacy: {legacy.url}
  billing: {new.url}
routes:
  - {{name: r, owner: {owner}, match: {{path_prefix: /r}}, to: {to}}}
  - {{name: mirrored, owner: t, match: {{path_prefix: /m}}, to: legacy, shadow: {{to: billing}}}}
  - {{name: s, owner: t, match: {{path_prefix: /s}}, to: legacy,
      canary: {{to: billing, percent: 10}}}}
"""
    )
    return load_config(cfg).version


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", TOKEN)


@pytest.mark.usefixtures("token")
async def test_every_worker_gives_the_same_admin_answers(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    port, admin = free_port(), free_port()
    cfg = tmp_path / "strangler.yaml"
    version = write_config(cfg, port, admin, legacy, newsvc, "legacy", "t")
    async with serve("--config", str(cfg), workers=3, cwd=tmp_path) as running:
        # Traffic on fresh connections: each worker mirrors and compares its share.
        for i in range(30):
            body = await get(f"{running.url}/m/{i}")
            assert body["served_by"] == "legacy"
        # Audited writes, each through whichever worker takes the connection.
        await post(running.admin_url + "/api/routes/s/rollback")
        await post(running.admin_url + "/api/routes/s/enable")
        await post(running.admin_url + "/api/routes/s/percent", {"percent": "20%"})

        async def all_compared() -> dict[str, Any] | None:
            detail: dict[str, Any] = await get(running.admin_url + "/api/shadow/mirrored")
            return detail if detail["compared"] + detail["errors"] == 30 else None

        # Comparisons finish after the answers: poll until one answer has them all.
        detail = await until(all_compared, "every comparison in one answer")
        # The other workers have them within the freshness bound: there is nothing
        # to await across processes, so this waits out the bound (x5: a loaded host).
        await asyncio.sleep(PUBLISH_INTERVAL * 5)
        assert detail["mismatches"] == 30  # the two sides name themselves
        assert len(detail["samples"]) == 20  # the newest 20 of all workers' samples

        summaries, details, events, answered_by = set(), set(), set(), set()
        workers: set[int] = set()
        for _ in range(20):
            summaries.add(json.dumps(await get(running.admin_url + "/api/shadow")))
            details.add(json.dumps(await get(running.admin_url + "/api/shadow/mirrored")))
            events.add(json.dumps(await get(running.admin_url + "/api/events")))
            ready = await get(running.admin_url + "/readyz")
            assert ready["pid"] == running.proc.pid  # the process to signal
            answered_by.add(ready["worker_pid"])
            workers = set(ready["workers"])
        assert len(answered_by) > 1  # the reads did reach several workers
        assert answered_by <= workers
        assert len(workers) == 3
        assert len(summaries) == len(details) == len(events) == 1
        [summary] = [json.loads(s) for s in summaries]
        [mirrored] = [r for r in summary["routes"] if r["route"] == "mirrored"]
        assert mirrored["compared"] + mirrored["errors"] == 30
        [log] = [json.loads(e)["events"] for e in events]
        assert [(e["action"], e["target"]) for e in log] == [
            ("rollback", "s"),
            ("enable", "s"),
            ("set-percent", "s"),
        ]
        # One config_info series per live worker, for the version it serves.
        assert await config_info(running) == dict.fromkeys(workers, version)

        assert await running.stop() == 0
    log_text = running.log_text()
    assert "Warning" not in log_text, log_text
    assert "Traceback" not in log_text, log_text


async def test_a_replacement_worker_serves_the_newest_config(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    port, admin = free_port(), free_port()
    cfg = tmp_path / "strangler.yaml"
    write_config(cfg, port, admin, legacy, newsvc, "legacy", "t0")
    newest = ""
    async with serve("--config", str(cfg), workers=3, cwd=tmp_path) as running:
        # Several reloads; the last moves route r to the new service.
        for n, to in enumerate(("legacy", "legacy", "legacy", "billing"), start=1):
            newest = version = write_config(cfg, port, admin, legacy, newsvc, to, f"t{n}")
            running.proc.send_signal(signal.SIGHUP)

            async def on(v: str = version) -> dict[int, str] | None:
                info = await config_info(running)
                return info if len(info) == 3 and set(info.values()) == {v} else None

            await until(on, f"every worker on version {version}")

        async def r_served_by_new() -> None:
            # Fresh connections reach every worker (30 draws over 3 workers).
            for _ in range(30):
                body = await get(f"{running.url}/r/x")
                assert body["served_by"] == "new"

        pids = await replace_one(running, set(await config_info(running)))
        await r_served_by_new()
        assert await config_info(running) == dict.fromkeys(pids, newest)

        # A broken file on disk when a worker is replaced: the replacement serves the
        # last config the workers accepted, and the supervisor keeps going.
        cfg.write_text(cfg.read_text() + "  - {name: broken, match: {path: 1}}\n")
        pids = await replace_one(running, pids)
        await r_served_by_new()
        assert await config_info(running) == dict.fromkeys(pids, newest)
        assert running.proc.returncode is None
        assert "serving version " + newest in running.log_text()

        assert await running.stop() == 0


async def test_workers_stop_when_the_supervisor_is_killed(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    """A supervisor killed with SIGKILL (the OOM killer, kill -9) leaves no worker
    serving on: each gets SIGTERM from the kernel and drains."""
    port, admin = free_port(), free_port()
    cfg = tmp_path / "strangler.yaml"
    write_config(cfg, port, admin, legacy, newsvc, "legacy", "t0")
    async with serve("--config", str(cfg), workers=2, cwd=tmp_path) as running:
        pids = running.workers
        running.proc.kill()
        await running.proc.wait()

        async def all_gone() -> bool | None:
            alive = []
            for pid in pids:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                alive.append(pid)
            return True if not alive else None

        await until(all_gone, "every worker to exit after the supervisor died")


@pytest.mark.usefixtures("token")
async def test_the_slo_guard_judges_every_workers_answers(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    """30 failures spread over 3 workers trip a guard that needs 30 answers (no worker
    alone saw enough); every worker reports the same window; an enable forgets every
    worker's answers, so no other worker trips the route again on the old ones."""
    port, admin = free_port(), free_port()
    cfg = tmp_path / "strangler.yaml"
    cfg.write_text(
        f"""
listen: 127.0.0.1:{port}
admin: {{listen: 127.0.0.1:{admin}}}
access_log: {{format: off}}
upstreams:
  legacy: {legacy.url}
  billing: {newsvc.url}
routes:
  - name: failing
    owner: t
    match: {{path_prefix: /status}}
    to: billing
    slo: {{error_rate: 10%, min_requests: 30, window: 5m}}
"""
    )
    async with serve("--config", str(cfg), workers=3, cwd=tmp_path) as running:
        for _ in range(30):  # fresh connections: the kernel spreads them over the workers
            async with aiohttp.ClientSession() as s, s.get(f"{running.url}/status/500") as r:
                assert r.status == 500

        async def tripped() -> dict[str, Any] | None:
            route: dict[str, Any] = await get(running.admin_url + "/api/routes/failing")
            return route if route["state"]["guard_tripped"] else None

        route = await until(tripped, "the guard to trip on the workers' 30 answers")
        assert "30 answers failed" in route["state"]["guard_reason"]
        windows, answered_by = set(), set()
        for _ in range(20):
            body = await get(running.admin_url + "/api/routes/failing")
            windows.add((body["guard"]["requests"], body["guard"]["errors"]))
            answered_by.add((await get(running.admin_url + "/readyz"))["worker_pid"])
        assert len(answered_by) > 1
        assert windows == {(30, 30)}  # the same window whichever worker answers

        await post(running.admin_url + "/api/routes/failing/enable")

        async def enabled() -> dict[str, Any] | None:
            route: dict[str, Any] = await get(running.admin_url + "/api/routes/failing")
            return None if route["state"]["guard_tripped"] else route

        forgotten = set()
        for _ in range(20):  # each worker, once it has read the enable from the store
            forgotten.add((await until(enabled, "the enable"))["guard"]["requests"])
        assert forgotten == {0}
