"""Migration progress under ``--workers 3`` (real processes): whichever worker answers,
``/api/status`` and ``/api/progress/history`` give the same figures once every worker
has flushed its counters (within the flush interval, 5 s), and a reset through one
worker holds for all of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Upstream
from tests.serve_support import free_port, listen_args, serve, until, worker_pids

pytestmark = pytest.mark.slow

TOKEN = "workers-progress-token"
REQUESTS = 30


async def fresh_get(url: str) -> Any:
    """GET on a new connection: the kernel spreads those over the workers."""
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def saved_requests(state_dir: Path) -> int:
    """Requests in the workers' saved files (what a worker's peers see)."""
    total = 0
    for f in state_dir.glob("progress-*.json"):
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now
        total += sum(r["legacy"] + r["new"] for r in doc["routes"].values())
    return total


def figures(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "generated_at"}


async def test_every_worker_answers_the_same_figures(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", TOKEN)
    port, admin = free_port(), free_port()
    cfg = tmp_path / "strangler.yaml"
    cfg.write_text(
        f"""
listen: 127.0.0.1:{port}
admin: {{listen: 127.0.0.1:{admin}}}
access_log: {{format: off}}
upstreams: {{legacy: {legacy.url}, billing: {newsvc.url}}}
routes:
  - {{name: invoices, owner: team-billing, match: {{path_prefix: /invoices}}, to: billing}}
  - {{name: customers, owner: team-crm, match: {{path_prefix: /customers}}, to: legacy}}
"""
    )
    async with serve("--config", str(cfg), workers=3) as running:
        assert len(await worker_pids(admin, 3)) == 3
        base, api = running.url, running.admin_url
        for i in range(REQUESTS):  # fresh connections: every worker answers some
            path = ("/invoices/", "/customers/", "/users/")[i % 3] + str(i)
            await fresh_get(base + path)
        # Wait (bounded) until every worker's file holds its requests: then any
        # worker's answer is complete.
        state_dir = tmp_path / ".strangler"

        async def all_saved() -> bool | None:
            return True if saved_requests(state_dir) == REQUESTS else None

        await until(all_saved, f"{REQUESTS} requests in the workers' files", tries=300)

        async def twenty_reads() -> list[dict[str, Any]]:
            return [
                {
                    "status": figures(await fresh_get(api + "/api/status")),
                    "history": figures(await fresh_get(api + "/api/progress/history")),
                }
                for _ in range(20)
            ]

        reads = await twenty_reads()
        first = reads[0]
        assert first["status"]["overall"]["windows"]["5m"]["requests"] == REQUESTS
        assert first["status"]["overall"]["windows"]["1h"]["new"] == REQUESTS // 3
        assert sum(p["requests"] for p in first["history"]["points"]) == REQUESTS
        for other in reads[1:]:
            assert other == first

        # A reset through one worker holds whichever worker answers afterwards.
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                api + "/api/progress/reset",
                json={"route": "customers"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as r,
        ):
            assert r.status == 200, await r.text()
        reads = await twenty_reads()
        for read in reads:
            rows = {row["name"]: row for row in read["status"]["routes"]}
            assert rows["customers"]["windows"]["all"]["requests"] == 0
            assert rows["invoices"]["windows"]["all"]["requests"] == REQUESTS // 3
            assert read == reads[0]
        audit = (state_dir / "audit.jsonl").read_text()
        assert '"progress-reset"' in audit
        assert TOKEN not in audit
        assert await running.stop() == 0  # the supervisor stops its workers too


async def test_discovery_in_zero_config_mode_survives_the_switch_to_a_config_file(
    tmp_path: Path, legacy: Upstream
) -> None:
    port, admin = free_port(), free_port()
    quiet = ("--access-log", "off")
    async with serve(
        "--legacy", legacy.url, *listen_args(port, admin), *quiet, cwd=tmp_path
    ) as running:
        for path in ("/users/1", "/users/2", "/reports/q1"):
            await fresh_get(running.url + path)
        assert await running.stop() == 0  # the last flush saves the counters
    # The config lives in its own folder: its default state dir is beside it.
    conf = tmp_path / "deploy"
    conf.mkdir()
    (conf / "strangler.yaml").write_text(
        f"listen: 127.0.0.1:{port}\nadmin: {{listen: 127.0.0.1:{admin}}}\n"
        f"upstreams: {{legacy: {legacy.url}}}\n"
    )
    async with serve("--config", "deploy/strangler.yaml", *quiet, cwd=tmp_path) as running:
        backlog = await fresh_get(running.admin_url + "/api/backlog")
        assert {e["endpoint"]: e["requests"] for e in backlog["endpoints"]} == {
            "GET /users/{id}": 2,
            "GET /reports/q1": 1,
        }
        assert await running.stop() == 0
    assert (conf / ".strangler" / "progress-0.json").exists()
    assert (tmp_path / ".strangler" / "progress-0.json").exists()  # copied, not moved
