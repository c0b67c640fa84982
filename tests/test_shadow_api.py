"""Admin endpoints ``/api/shadow`` and ``/api/shadow/{route}``, and ``strangler diff``
against a real admin app."""

from __future__ import annotations

import argparse
import asyncio
import doctest
import io
import json
import socket

import pytest
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient, AiohttpServer

import strangler.shadow.samples as samples_module
from strangler.config.shadow_model import CompareRules, NoiseSpec, parse_json_path
from strangler.shadow.api import add_shadow_routes
from strangler.shadow.cli import add_diff_command, run_diff
from strangler.shadow.compare import Observed, Rules, compare
from strangler.shadow.metrics import ShadowMetrics
from strangler.shadow.samples import REDACTED, Sample, ShadowResults, Side

JSON = CIMultiDict({"Content-Type": "application/json"})


def test_doctests() -> None:
    assert doctest.testmod(samples_module).failed == 0


def filled() -> ShadowResults:
    """Results as 10 comparisons on 'invoices' leave them: 2 differ on $.items[*].price."""
    results = ShadowResults(ShadowMetrics(CollectorRegistry()), samples=5)
    r = results.route("invoices", NoiseSpec(enabled=True, samples=1, min_observations=1))
    rules = Rules.from_spec(CompareRules())
    for i in range(10):
        a = {"items": [{"price": i}, {"price": 1}]}
        b = {"items": [{"price": i + (i % 5 == 0)}, {"price": 1}]}
        primary = Observed(200, JSON, json.dumps(a).encode())
        shadow = Observed(200, JSON, json.dumps(b).encode())
        v = compare(primary, shadow, rules)
        sample = None
        if not v.match:
            sample = Sample(
                at=1_700_000_000.0 + i,
                outcome="mismatch",
                method="GET",
                target=f"/api/invoices/{i}",
                request_headers=(("Authorization", REDACTED),),
                primary=Side.of(200, JSON, primary.body, 30),
                shadow=Side.of(200, JSON, shadow.body, 30),
                differences=v.differences,
                duration=0.002,
            )
        r.record_verdict(v, 0.002, sample)
    r.noise.observe([parse_json_path("$.generated_at")])
    r.noise.configured = (parse_json_path("$.etag"),)
    r.record_unstable(0.002)
    r.record_error(0.5)
    results.route("search")
    return results


async def test_summary(aiohttp_client: AiohttpClient) -> None:
    app = web.Application()
    add_shadow_routes(app, filled())
    client = await aiohttp_client(app)
    resp = await client.get("/api/shadow")
    assert resp.status == 200
    body = await resp.json()
    [invoices, search] = body["routes"]
    assert invoices["route"] == "invoices"
    assert (invoices["compared"], invoices["matches"], invoices["mismatches"]) == (10, 8, 2)
    assert invoices["parity"] == 0.8
    assert invoices["errors"] == 1
    assert invoices["mismatches_by_kind"] == {"status": 0, "header": 0, "body": 2}
    assert invoices["noisy_paths"] == 1
    assert invoices["unstable"] == 1
    assert search["parity"] is None
    assert search["compared"] == 0


async def test_route_detail(aiohttp_client: AiohttpClient) -> None:
    app = web.Application()
    add_shadow_routes(app, filled())
    client = await aiohttp_client(app)
    resp = await client.get("/api/shadow/invoices")
    assert resp.status == 200
    d = await resp.json()
    assert d["top_paths"] == [{"path": "$.items[*].price", "count": 2}]
    assert d["noise"]["noisy_paths"] == [{"path": "$.generated_at", "differed": 1, "share": 1.0}]
    assert d["gate"]["last_n"] == 1000
    assert d["gate"]["last"]["compared"] == 10
    assert (d["gate"]["recent"]["unstable"], d["gate"]["recent"]["parity"]) == (1, 0.8)
    assert [s["target"] for s in d["samples"]] == ["/api/invoices/5", "/api/invoices/0"]
    first = d["samples"][0]
    assert first["differences"] == [
        {"kind": "body", "where": "$.items[0].price", "primary": "5", "shadow": "6"}
    ]
    assert first["request_headers"] == [["Authorization", REDACTED]]
    assert first["primary"]["status"] == 200


async def test_unknown_route_is_404_listing_known_ones(aiohttp_client: AiohttpClient) -> None:
    app = web.Application()
    add_shadow_routes(app, filled())
    client = await aiohttp_client(app)
    resp = await client.get("/api/shadow/nope")
    assert resp.status == 404
    assert await resp.json() == {
        "error": "no shadow results for route 'nope'",
        "routes": ["invoices", "search"],
    }
    assert (await client.get("/api/shadow/invoices?top=0")).status == 400
    assert (await client.get("/api/shadow/invoices?top=x")).status == 400
    resp = await client.get("/api/shadow/invoices?top=1")
    assert len((await resp.json())["top_paths"]) == 1


# -- strangler diff ---------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="strangler")
    sub = parser.add_subparsers(dest="command", required=True)
    add_diff_command(sub)
    return parser.parse_args(argv)


async def diff(argv: list[str]) -> tuple[int, str, str]:
    """Run ``strangler diff`` in a thread (it blocks on urllib) against the test loop's
    server; returns (exit code, stdout, stderr)."""
    args = parse(["diff", *argv])
    assert args.handler is run_diff
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(run_diff, args, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
async def admin_url(aiohttp_server: AiohttpServer) -> str:
    app = web.Application()
    add_shadow_routes(app, filled())
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_diff_prints_the_report(admin_url: str) -> None:
    code, out, err = await diff(["invoices", "--admin", admin_url])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "route invoices: parity 80.0% (8 of 10 compared)"
    assert lines[1] == (
        "  mismatches 2 (body 2), unstable 1, errors 1, dropped 0, skipped 0, truncated 0"
    )
    assert lines[2].startswith("  last 1000 compared: parity 80.0% (8 of 10), unstable 1")
    assert lines[3] == "  last 5m: parity 80.0% (8 of 10), unstable 1"
    assert "top differing paths:" in lines
    assert "        2  $.items[*].price" in lines
    ignored = lines.index("ignored now:")
    assert lines[ignored + 1] == "  $.etag  (config: compare.ignore)"
    assert lines[ignored + 2] == (
        "  $.generated_at  (noise: the primary's own two answers differed in 1 of 1 pairs "
        "in the last 600s)"
    )
    assert lines[ignored + 3] == (
        "noise (learned, 1 observations in the last 10m; noisy: differed in at least 1 "
        "and 50.0% of at least 1): 1 noisy paths"
    )
    assert "      body $.items[0].price: 5 -> 6" in lines
    assert any("mismatch GET /api/invoices/5" in line for line in lines)


async def test_diff_json(admin_url: str) -> None:
    code, out, _ = await diff(["invoices", "--admin", admin_url + "/", "--json"])
    assert code == 0
    assert json.loads(out)["parity"] == 0.8


async def test_diff_unknown_route(admin_url: str) -> None:
    code, out, err = await diff(["nope", "--admin", admin_url])
    assert (code, out) == (1, "")
    assert err == (
        "strangler diff: no shadow results for route 'nope' "
        "(routes with shadow: invoices, search)\n"
    )


async def test_diff_admin_unreachable_is_one_clear_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = await diff(["invoices", "--admin", f"http://127.0.0.1:{port}"])
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert err.startswith(
        f"strangler diff: cannot reach the admin API at http://127.0.0.1:{port} (from --admin): "
    )
    assert "is strangler running?" in err


async def test_diff_not_an_admin_api(aiohttp_server: AiohttpServer) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/api/shadow/{route}", html)
    server = await aiohttp_server(app)
    code, _, err = await diff(["x", "--admin", str(server.make_url(""))])
    assert code == 1
    assert "did not answer JSON" in err
