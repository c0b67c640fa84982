"""``strangler demo``: the sample legacy app, the sample new service and the proxy, in one
process, on the ports ``demo.yaml`` names. Prints the URLs to try; Ctrl-C stops all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Final

from aiohttp import web
from yarl import URL

from strangler.config import load_config
from strangler.demo.legacy import build_legacy_app
from strangler.demo.newsvc import build_new_app
from strangler.server import ProxyServer, ServeOptions, install_uvloop

DEMO_CONFIG: Final = Path(__file__).with_name("demo.yaml")

BANNER: Final = """
strangler demo is running.

  proxy    http://127.0.0.1:{port}      <- talk to this one
  admin    http://127.0.0.1:{admin}      (/healthz /readyz /metrics)
  legacy   http://127.0.0.1:{legacy}      (Acme ERP v1, the app being replaced)
  billing  http://127.0.0.1:{new}      (the new invoices service)

Try:
  curl -i http://127.0.0.1:{port}/api/v1/invoices/5001        # X-Served-By: new-billing
  curl -i http://127.0.0.1:{port}/api/v1/customers/1/invoices # X-Served-By: new-billing
  curl -i http://127.0.0.1:{port}/api/v1/customers/1          # X-Served-By: legacy
  curl -i http://127.0.0.1:{port}/api/v1/orders?customer_id=1 # X-Served-By: legacy
  curl -s http://127.0.0.1:{admin}/metrics | grep strangler_requests_total

Routes: {routes}
Edit that file and save: the proxy reloads it (a broken edit is rejected and logged).
Ctrl-C stops everything.
"""


async def _start_app(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def _port(url: str) -> int:
    port = URL(url).port
    assert port is not None  # http URLs always have one (default 80)
    return port


async def demo_async(
    config_path: Path = DEMO_CONFIG,
    *,
    started: Callable[[ProxyServer], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run the demo until SIGTERM/SIGINT (or until ``stop`` is set, for tests).

    The sample apps listen where the config's ``legacy`` and ``billing`` upstreams
    point, so a copy of demo.yaml with other ports runs side by side.
    """
    config = load_config(config_path)
    legacy_port = _port(config.upstreams["legacy"].url)
    new_port = _port(config.upstreams["billing"].url)
    legacy = await _start_app(build_legacy_app(), legacy_port)
    new = await _start_app(build_new_app(), new_port)
    proxy = ProxyServer(config, ServeOptions(config_path=config_path, handle_signals=stop is None))
    try:
        await proxy.start()
        if started is not None:
            started(proxy)
        print(
            BANNER.format(
                port=proxy.proxy_port,
                admin=proxy.admin_port,
                legacy=legacy_port,
                new=new_port,
                routes=config.files[1] if len(config.files) > 1 else config.files[0],
            ),
            flush=True,
        )
        await (stop.wait() if stop is not None else proxy.wait_for_stop_signal())
    finally:
        await proxy.stop()
        await new.cleanup()
        await legacy.cleanup()
    return 0


def run_demo() -> int:
    install_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(demo_async())
    return 0


__all__ = ["DEMO_CONFIG", "demo_async", "run_demo"]
