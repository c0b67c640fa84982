"""``strangler demo`` end to end: the packaged config, the sample apps and the proxy."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from strangler.cli import main
from strangler.demo.data import SEED_INVOICES, invoice_v1
from strangler.demo.run import (
    PACKAGED_ROUTES,
    DemoPorts,
    demo_async,
    demo_config_text,
    demo_routes,
)
from strangler.server import ProxyServer
from tests.serve_support import free_port


def free_ports() -> DemoPorts:
    return DemoPorts(proxy=free_port(), admin=free_port(), legacy=free_port(), billing=free_port())


async def test_demo_routes_invoices_to_the_new_service(tmp_path: Path) -> None:
    # The packaged demo.yaml on other ports, including the packaged routes file.
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(demo_config_text(free_ports(), PACKAGED_ROUTES))
    ready: asyncio.Future[ProxyServer] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    demo = asyncio.ensure_future(demo_async(cfg, started=ready.set_result, stop=stop))
    proxy = await asyncio.wait_for(ready, 10)
    base = f"http://127.0.0.1:{proxy.proxy_port}"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/api/v1/invoices/5001") as r:
                assert r.status == 200
                assert r.headers["X-Served-By"] == "new-billing"
                invoice = await r.json()
            async with s.get(base + "/api/v1/invoices/4999") as r:
                assert (r.status, r.headers["X-Served-By"]) == (404, "new-billing")
                missing = await r.json()
            async with s.get(base + "/api/v1/customers/1") as r:
                assert r.status == 200
                assert r.headers["X-Served-By"] == "legacy"
            async with s.get(base + "/api/v1/orders?customer_id=1") as r:
                assert r.headers["X-Served-By"] == "legacy"
    finally:
        stop.set()
        assert await asyncio.wait_for(demo, 10) == 0
    # Billing answers in its own model; the demo routes translate it back to legacy's.
    assert invoice == invoice_v1(SEED_INVOICES[0])
    assert missing == {"error": "invoice 4999 not found"}


def test_a_taken_port_is_one_line_naming_it_and_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ports = free_ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["demo", "--legacy-port", str(ports.legacy), "--billing-port", str(ports.billing)]
        assert main([*argv, "--port", str(port), "--admin-port", str(ports.admin)]) == 1
        err = capsys.readouterr().err
        assert err == (
            f"strangler demo: port {port} (the proxy) is already in use; "
            "choose another with --port PORT\n"
        )
        assert main([*argv, "--port", str(ports.proxy), "--admin-port", str(port)]) == 1
        assert f"port {port} (the admin API)" in capsys.readouterr().err
    # Nothing was started: the legacy port the first try would have used is still free.
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.legacy))


def test_the_routes_come_from_the_working_directory_when_it_has_them(tmp_path: Path) -> None:
    assert demo_routes(tmp_path) == PACKAGED_ROUTES
    local = tmp_path / "routes" / "demo.yaml"
    local.parent.mkdir()
    local.write_bytes(PACKAGED_ROUTES.read_bytes())
    assert demo_routes(tmp_path) == local.resolve()
    # The repository's own copy is the one `./dev demo` (run from the checkout) edits.
    repo = Path(__file__).resolve().parent.parent
    assert demo_routes(repo) == repo / "routes" / "demo.yaml"


def test_the_banner_names_the_status_page_and_the_routes_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = free_ports()
    cfg = tmp_path / "demo.yaml"
    text = demo_config_text(ports, PACKAGED_ROUTES)
    assert not any(f"127.0.0.1:{d}" in text for d in (8080, 8081, 8001, 8002))
    cfg.write_text(text)

    async def run() -> None:
        stop = asyncio.Event()
        demo = asyncio.ensure_future(demo_async(cfg, started=lambda _: stop.set(), stop=stop))
        assert await asyncio.wait_for(demo, 10) == 0

    asyncio.run(run())
    out = capsys.readouterr().out
    assert f"status   http://127.0.0.1:{ports.admin}/ " in out
    assert f"Routes: {PACKAGED_ROUTES}" in out


async def test_the_demo_users_drive_the_route_on_autopilot(tmp_path: Path) -> None:
    """The demo's own traffic reaches the plan: shadow copies of customer-invoices are
    compared, with full parity, so the status page shows the migration starting."""
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(demo_config_text(free_ports(), PACKAGED_ROUTES))
    ready: asyncio.Future[ProxyServer] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    demo = asyncio.ensure_future(
        demo_async(cfg, started=ready.set_result, stop=stop, traffic=100.0)
    )
    proxy = await asyncio.wait_for(ready, 10)
    url = f"http://127.0.0.1:{proxy.admin_port}/api/migrate/customer-invoices"
    view: dict[str, Any] = {}
    gates: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(300):  # the demo users are the clock here: bounded polling
                async with s.get(url) as r:
                    view = await r.json()
                gates = {g["name"]: g for g in view.get("gates", [])}
                if gates.get("parity", {}).get("verdict") == "pass":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"no parity verdict from the demo traffic: {view}")
    finally:
        stop.set()
        assert await asyncio.wait_for(demo, 10) == 0
    assert view["position"] == "shadow"
    assert gates["parity"]["detail"].startswith("parity 100.0000% over ")
