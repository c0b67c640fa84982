"""``strangler demo`` end to end: the packaged config, the sample apps and the proxy."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp

from strangler.demo.data import SEED_INVOICES, invoice_v1
from strangler.demo.run import DEMO_CONFIG, demo_async
from strangler.server import ProxyServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_demo_routes_invoices_to_the_new_service(tmp_path: Path) -> None:
    # The packaged demo.yaml on other ports, including the packaged routes file.
    text = DEMO_CONFIG.read_text()
    for old in ("8080", "8081", "8001", "8002"):
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{free_port()}")
    text = text.replace(
        "include: [routes/demo.yaml]", f"include: [{DEMO_CONFIG.parent}/routes/demo.yaml]"
    )
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(text)
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
