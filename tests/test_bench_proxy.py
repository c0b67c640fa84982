"""The proxy benchmark's own pieces (tests/bench/bench_proxy.py), fast and without nginx
or wrk: the issue-15 target config served by a real proxy, the open-loop generator
against real servers on 127.0.0.1, and the arithmetic of the report and its targets."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from aiohttp import web
from pytest_aiohttp import AiohttpServer

from strangler.config import load_config_text
from tests.bench import bench_proxy as bp
from tests.conftest import MakeProxy, Upstream


def test_target_config_has_100_routes_with_the_bench_routes_in_the_middle(
    tmp_path: Path,
) -> None:
    text = bp.strangler_config_text("http://127.0.0.1:1", 0, 0, tmp_path / "access.log")
    names = [r.name for r in load_config_text(text).routes]
    assert len(names) == bp.ROUTES == 100
    assert names.index("bench-small") == bp.BENCH_ROUTE == 50
    assert names[51:53] == ["bench-large", "bench-upload"]
    bare = bp.strangler_config_text(
        "http://127.0.0.1:1", 0, 0, tmp_path / "access.log", routes=False
    )
    assert load_config_text(bare).routes == ()


async def test_loadgen_through_the_target_config_logs_every_request_by_its_route(
    make_proxy: MakeProxy, legacy: Upstream, tmp_path: Path
) -> None:
    text = bp.strangler_config_text(legacy.url, 0, 0, tmp_path / "access.log")
    proxy = await make_proxy(text)
    run = await bp.loadgen(f"{proxy.url}/small", 200, 0.5, warmup=0.1)
    assert run.errors == 0
    assert len(run.latencies_ms) == 100  # 0.5 s at 200/s; the warm-up is not recorded
    assert 150 < run.rate < 250
    routes = Counter(str(line["route"]) for line in proxy.access_lines())
    assert routes == {"bench-small": 20 + 120}  # 20 connection openers, 0.6 s at 200/s


async def test_loadgen_counts_a_stall_for_every_request_it_delayed(
    aiohttp_server: AiohttpServer,
) -> None:
    """An upstream that stalls 200 ms once: an open-loop generator keeps sending on
    schedule and charges the stall to every request due meanwhile (about 40 at 200/s,
    about 20 of them 100 ms or more); a closed-loop one would record one slow request."""
    lock = asyncio.Lock()  # one answer at a time, so the stall holds up the others
    served = 0

    async def small(_request: web.Request) -> web.Response:
        nonlocal served
        async with lock:
            served += 1
            if served == 60:  # in the recorded part: 20 openers, then 20 warm-up requests
                await asyncio.sleep(0.2)  # the stall being measured
            return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/small", small)
    server = await aiohttp_server(app)
    run = await bp.loadgen(str(server.make_url("/small")), 200, 0.5, warmup=0.1)
    assert run.errors == 0
    slow = [x for x in run.latencies_ms if x >= 100]
    assert len(slow) >= 15, sorted(run.latencies_ms)[-25:]
    assert max(run.latencies_ms) >= 190


WRK_OUTPUT = """\
Running 2s test @ http://127.0.0.1:8080/small
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  300.00us   5.00ms   90.00%
    Req/Sec    52.00k     1.00k   54.00k    80.00%
  Latency Distribution
     50%  850.00us
     75%    1.30ms
     90%    1.45ms
     99%    1.69ms
  104000 requests in 2.00s, 30.00MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  52000.00
Transfer/sec:     15.00MB
"""


def test_parse_wrk_reads_rate_percentiles_and_errors() -> None:
    w = bp.parse_wrk(WRK_OUTPUT)
    assert (w.rps, w.p50_ms, w.p99_ms, w.requests) == (52000.0, 0.85, 1.69, 104000)
    assert w.errors == "12 non-2xx"


def _settings() -> bp.Settings:
    return bp.Settings(
        duration=10,
        warmup=2,
        rate_duration=10,
        rounds=3,
        connections=64,
        rate=1000,
        stream_size=bp.GIB,
        stream_runs=3,
        targets=bp.TARGET_KEYS,
        quiet_wait=0,
        retries=0,
        profile=None,
        profile_seconds=10,
        revision="commit abc1234",
    )


def _row(key: str, rps: list[float], cpu: float, **kw: object) -> bp.Row:
    row = bp.Row(key, key, "1", **kw)  # type: ignore[arg-type]
    row.wrk_runs = [bp.WrkResult(r, 1.0, 2.0, int(r * 10), "", cpu, 0.9, 0.5) for r in rps]
    return row


def _rate(p99: float) -> bp.RateResult:
    return bp.RateResult(1000, 0.5, p99, p99 + 1, p99 + 2, 30000, 0, [p99, p99])


def test_report_gives_ratios_spreads_scaling_and_verdicts() -> None:
    nginx = _row("nginx", [50_000, 48_000, 52_000], 20.0)
    nginx.stream = bp.StreamResult(1000, 700, 3)
    one = _row("strangler", [21_000, 20_000, 22_000], 45.0)
    one.rate, one.direct_rate = _rate(1.3), _rate(1.0)
    one.stream = bp.StreamResult(1100, 600, 3, 0.5, [1000, 1100, 1200], [600, 600, 600])
    one.rss_peak_mib = 70.0
    rows = {
        "nginx": nginx,
        "minimal-uvloop": _row("minimal-uvloop", [8000], 150.0),
        "strangler": one,
        "strangler-2w": _row("strangler-2w", [31_500], 50.0),
        "strangler-4w": bp.Row("strangler-4w", "4 workers", "–", skipped="not run: 2 cores"),
    }
    text = bp.report(rows, _settings(), [])
    lines = text.splitlines()
    assert "- req/s ≥ 40% of nginx proxy_pass's (stretch: 50%): 42% " in "\n".join(lines)
    verdicts = [line.rpartition("→ ")[2] for line in lines if line.startswith("- ")]
    assert verdicts == [
        "MET",  # 21,000 / 50,000 = 42%
        "NOT MET (by 0.375×)",  # 21,000 / 8,000 = 2.625×
        "MET",  # 45 / 20 = 2.25×
        "MET",  # +0.30 ms
        "MET",  # 1.10× download
        "NOT MET (by 0.143×)",  # 600 / 700 = 0.857× upload
        "NOT MET (by 6 MiB)",
    ]
    scaling = next(line for line in lines if line.startswith("| 2 |"))
    # 31,500 = 1.50× one worker: 75% efficiency, the second worker added 50% of one
    assert "| 1.50× | 75% | 50% |" in scaling
    assert "| 4 | not run: 2 cores |" in text
    strangler = next(line for line in lines if line.startswith("| strangler |"))
    assert "| 21,000 | ±5% | 45.0 |" in strangler  # (22,000 − 20,000) / 2 / 21,000
    assert "| 0.42× | 2.25× | 2.62× |" in strangler
    for title in ("### Throughput", "### Latency", "### Streaming", "### Worker scaling"):
        assert title in text


def test_each_section_lists_a_failed_row_and_hides_a_row_it_did_not_measure() -> None:
    failed = bp.Row("strangler", "strangler, 1 worker", "1", failure="refused\ntraceback")
    rows = {
        "nginx": bp.Row("nginx", "nginx", "0", skipped="no nginx"),  # no figures of any kind
        "strangler": failed,
        "strangler-2w": bp.Row("strangler-2w", "2 workers", "0,1", skipped="not run: 1 core"),
    }
    s = _settings()

    def dashes(n: int) -> str:
        return " | ".join(["–"] * n)

    throughput = bp.throughput_table(rows, s)
    assert f"| strangler, 1 worker | FAILED: refused | {dashes(11)} |" in throughput
    assert f"| nginx | no nginx | {dashes(11)} |" in throughput  # skipped: listed
    for table, width in ((bp.latency_table, 12), (bp.streaming_table, 10)):
        lines = table(rows, s)
        assert f"| strangler, 1 worker | FAILED: refused | {dashes(width - 2)} |" in lines
        assert not [line for line in lines if line.startswith("| nginx |")]  # nothing measured
    scaling = bp.scaling_table(rows, s)
    assert f"| 1 | FAILED: refused | {dashes(8)} |" in scaling
    assert f"| 2 | not run: 1 core | {dashes(8)} |" in scaling
