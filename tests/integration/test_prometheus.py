"""The recording rules on a real Prometheus scraping two real ``strangler serve`` processes.

Two proxies (separate processes and ports) stand in front of the same legacy upstream
and the same new service, with one route (``billing``) to the new service. A real
``prometheus`` (Debian package ``prometheus``) scrapes both admin ports every second
and evaluates ``deploy/prometheus/rules/*.yml`` every second. After a known traffic
mix (300 requests, 30% on the migrated route, half through each proxy), Prometheus's
HTTP API must report the sent share and the sent total, summed over both processes,
and every query of ``deploy/grafana/strangler-dashboard.json`` must run on it.

Prometheus is an external process: its results are polled over HTTP with a bounded
loop (short poll interval, overall deadline), never waited for with a fixed sleep.
Its first scrape comes about 5 s after start (target discovery settles every 5 s), so
it is started together with the proxies.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import pytest

from tests.conftest import Upstream
from tests.serve_support import Serving, free_port, serve
from tests.test_grafana_dashboard import all_panels, dashboard_queries, load_dashboard, substitute

pytestmark = pytest.mark.slow

HOST: Final = "127.0.0.1"
RULES_DIR: Final = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
JOB: Final = "strangler"
TOTAL: Final = 300  # requests sent, half through each proxy
NEW_SHARE: Final = 0.3  # of them on the route to the new service
POLL: Final = 0.1  # seconds between polls of an external process
START_DEADLINE: Final = 15.0  # seconds a process gets to answer its readiness endpoint
SCRAPE_DEADLINE: Final = 20.0  # seconds Prometheus gets to show what it should


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail(
            "the 'prometheus' binary is missing: run `apt-get install prometheus` "
            "(Debian package 'prometheus'; ./dev test installs it)"
        )
    return path


def log_tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True, slots=True)
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log: Path


@asynccontextmanager
async def spawned(name: str, argv: Sequence[str], log: Path) -> AsyncIterator[Proc]:
    """Start ``argv`` with its output in ``log``; SIGTERM (then SIGKILL) it on exit."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    try:
        yield Proc(name, proc, log)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_ready(session: aiohttp.ClientSession, url: str, proc: Proc) -> None:
    """Poll ``url`` until 200; fail at once with the process's output if it exits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_DEADLINE
    while loop.time() < deadline:
        if proc.process.returncode is not None:
            raise AssertionError(
                f"{proc.name} exited {proc.process.returncode}:\n{log_tail(proc.log)}"
            )
        try:
            async with session.get(url) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(POLL)
    raise AssertionError(
        f"{proc.name} not ready at {url} in {START_DEADLINE} s:\n{log_tail(proc.log)}"
    )


Sample = tuple[dict[str, str], float]


class PromAPI:
    def __init__(self, session: aiohttp.ClientSession, base: str, proc: Proc) -> None:
        self.session, self.base, self.proc = session, base, proc

    async def query(self, promql: str, what: str = "") -> list[Sample]:
        async with self.session.get(f"{self.base}/api/v1/query", params={"query": promql}) as r:
            body = await r.json()
        assert body["status"] == "success", f"{what} {promql}: {body}"
        assert body["data"]["resultType"] == "vector", f"{what} {promql}: {body}"
        return [(dict(s["metric"]), float(s["value"][1])) for s in body["data"]["result"]]

    async def eventually(self, what: str, check: Callable[[], Awaitable[str | None]]) -> None:
        """Poll ``check`` (None: satisfied, else what it saw) until the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SCRAPE_DEADLINE
        seen: str | None = "nothing yet"
        while loop.time() < deadline:
            if self.proc.process.returncode is not None:
                raise AssertionError(f"prometheus exited:\n{log_tail(self.proc.log)}")
            seen = await check()
            if seen is None:
                return
            await asyncio.sleep(POLL)
        raise AssertionError(
            f"Prometheus did not show {what} within {SCRAPE_DEADLINE} s; last seen: {seen}\n"
            f"prometheus log:\n{log_tail(self.proc.log)}"
        )


def strangler_config(port: int, admin: int, legacy: Upstream, new: Upstream) -> str:
    return f"""
listen: {HOST}:{port}
admin: {{listen: {HOST}:{admin}}}
access_log: {{format: off}}
upstreams:
  legacy: {legacy.url}
  billing: {new.url}
routes:
  - {{name: billing, owner: team-billing, match: {{path_prefix: /billing}}, to: billing}}
"""


def prometheus_config(admin_ports: Sequence[int]) -> str:
    return json.dumps(  # JSON is YAML
        {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [
                str(RULES_DIR / "strangler-recording.yml"),
                str(RULES_DIR / "strangler-alerts.yml"),
            ],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [{"targets": [f"{HOST}:{p}" for p in admin_ports]}],
                }
            ],
        }
    )


def by_label(samples: list[Sample], label: str) -> dict[str, float]:
    return {labels.get(label, ""): value for labels, value in samples}


async def test_prometheus_records_the_migration_ratio_over_two_processes(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream
) -> None:
    prometheus = prometheus_binary()
    ports = [(free_port(), free_port()) for _ in range(2)]
    prom_port = free_port()
    admins = [f"{HOST}:{admin}" for _, admin in ports]
    (tmp_path / "prometheus.yml").write_text(prometheus_config([a for _, a in ports]))

    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16))
        )
        prom = await stack.enter_async_context(
            spawned(
                "prometheus",
                [
                    prometheus,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address={HOST}:{prom_port}",
                    "--log.level=warn",
                ],
                tmp_path / "prometheus.log",
            )
        )
        proxies: list[Serving] = []
        for i, (port, admin) in enumerate(ports):
            cfg = tmp_path / f"strangler-{i}.yaml"
            cfg.write_text(strangler_config(port, admin, legacy, newsvc))
            proxies.append(
                await stack.enter_async_context(serve("--config", str(cfg), ready=False))
            )
        await asyncio.gather(
            wait_ready(session, f"http://{HOST}:{prom_port}/-/ready", prom),
            *(proxy.serving(1) for proxy in proxies),
        )
        api = PromAPI(session, f"http://{HOST}:{prom_port}", prom)

        # The rules files loaded into the real server (not only promtool's parser).
        async with session.get(f"http://{HOST}:{prom_port}/api/v1/rules") as r:
            groups = {g["name"]: g for g in (await r.json())["data"]["groups"]}
        assert set(groups) == {"strangler.recording", "strangler.alerts"}
        assert all(rule["health"] != "err" for g in groups.values() for rule in g["rules"])

        # Wait for a first scrape of both processes before any traffic, so every
        # counter's first sample is its pre-initialised 0 (rate() then sees it all).
        async def both_scraped() -> str | None:
            up = by_label(await api.query(f'up{{job="{JOB}"}}'), "instance")
            seen = by_label(
                await api.query(f'sum by (instance) (strangler_requests_total{{job="{JOB}"}})'),
                "instance",
            )
            ok = up == dict.fromkeys(admins, 1.0) and seen == dict.fromkeys(admins, 0.0)
            return None if ok else f"up={up} requests={seen}"

        await api.eventually("a first scrape of both proxies", both_scraped)

        # Traffic: blocks of 10 requests, 3 of them on the billing route, alternating
        # between the proxies: 150 through each, 30% migrated on each. (The same mix
        # on both matters for the rate5m ratio: rate() extrapolates each process's
        # counters by its own scrape times; the since-start ratio is exact anyway.)
        def path(i: int) -> str:
            return f"/billing/invoices/{i}" if i % 10 < 3 else f"/legacy/page/{i}"

        async def send(i: int) -> tuple[str, str]:
            port = ports[(i // 10) % 2][0]
            async with session.get(f"http://{HOST}:{port}{path(i)}") as r:
                assert r.status == 200
                return path(i), str((await r.json())["served_by"])

        answers = await asyncio.gather(*(send(i) for i in range(TOTAL)))
        assert all(by == ("new" if p.startswith("/billing") else "legacy") for p, by in answers)
        sent_new = sum(1 for p, _ in answers if p.startswith("/billing"))
        assert sent_new == TOTAL * NEW_SHARE
        assert len(newsvc.recorder.seen) == sent_new
        assert len(legacy.recorder.seen) == TOTAL - sent_new

        async def migration_recorded() -> str | None:
            total = await api.query(f'sum(strangler_requests_total{{job="{JOB}"}})')
            per_proc = by_label(
                await api.query(f'sum by (instance) (strangler_requests_total{{job="{JOB}"}})'),
                "instance",
            )
            ratio_total = await api.query(f'strangler:migration_ratio:total{{job="{JOB}"}}')
            ratio_rate = await api.query(f'strangler:migration_ratio:rate5m{{job="{JOB}"}}')
            per_route = by_label(
                await api.query(f'strangler:route_migration_ratio:rate5m{{job="{JOB}"}}'),
                "route",
            )
            p99 = await api.query(
                f'strangler:request_duration_seconds:p99_rate5m{{job="{JOB}",route="billing"}}'
            )
            seen = (
                f"total={total} per_process={per_proc} ratio:total={ratio_total} "
                f"ratio:rate5m={ratio_rate} per_route={per_route} p99={p99}"
            )
            ok = (
                [v for _, v in total] == [TOTAL]
                and per_proc == dict.fromkeys(admins, TOTAL / 2)
                and len(ratio_total) == 1
                and math.isclose(ratio_total[0][1], NEW_SHARE, abs_tol=1e-9)
                and len(ratio_rate) == 1
                and math.isclose(ratio_rate[0][1], NEW_SHARE, abs_tol=0.005)
                and per_route.keys() == {"billing", "(unrouted)"}
                and math.isclose(per_route["billing"], 1.0)
                and per_route["(unrouted)"] == 0.0
                and len(p99) == 1
                and 0 < p99[0][1] <= 10
            )
            return None if ok else seen

        await api.eventually(
            f"{TOTAL} requests and a migration ratio of {NEW_SHARE}", migration_recorded
        )

        # Every query of the Grafana dashboard runs on the real server with the
        # variables as Grafana substitutes them, and the headline panels read the truth.
        dashboard = load_dashboard()
        for where, expr in dashboard_queries(dashboard):
            await api.query(substitute(expr, job=JOB), where)  # asserts status "success"
        headline = next(p for p in all_panels(dashboard) if p["title"] == "Traffic on new services")
        (share,) = await api.query(substitute(headline["targets"][0]["expr"], job=JOB))
        assert math.isclose(share[1], NEW_SHARE, abs_tol=0.005), headline["targets"][0]["expr"]
        migrated = next(p for p in all_panels(dashboard) if p["title"] == "Routes migrated")
        counts = [
            [v for _, v in await api.query(substitute(t["expr"], job=JOB))]
            for t in migrated["targets"]
        ]
        assert counts == [[1.0], [1.0]], "expected 1 route of 1 migrated"  # migrated, routes
        route_var = dict(dashboard_queries(dashboard))["variable $route"]
        routes = await api.query(f"group by (route) ({substitute(route_var, job=JOB)})")
        assert {labels["route"] for labels, _ in routes} == {"billing", "(unrouted)"}

        # Nothing to alert on in a healthy run.
        firing = await api.query('ALERTS{alertstate="firing"}')
        assert firing == []

        for proxy in proxies:
            proxy.send_signal(signal.SIGTERM)
        prom.process.terminate()
        for proxy in proxies:
            assert await proxy.exited() == 0, proxy.log_text()
        code = await asyncio.wait_for(prom.process.wait(), 15)
        assert code == 0, f"prometheus exited {code}:\n{log_tail(prom.log)}"
