"""``strangler demo``: the sample legacy app, the sample new service and the proxy, in one
process. Prints the URLs to try; Ctrl-C stops all.

The ports are ``demo.yaml``'s (8080, 8081, 8001, 8002) unless the command line names
others (``DemoPorts``); a port already in use is reported in one line that names it
and the option that moves it. The routes come from ``./routes/demo.yaml`` when the
working directory has one (a checkout of the repository: edit it and save, the proxy
reloads it), else from the packaged copy; the banner names the file in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web
from yarl import URL

from strangler.config import load_config
from strangler.demo.legacy import build_legacy_app
from strangler.demo.newsvc import build_new_app
from strangler.server import ProxyServer, ServeOptions, install_uvloop

DEMO_CONFIG: Final = Path(__file__).with_name("demo.yaml")
PACKAGED_ROUTES: Final = DEMO_CONFIG.parent / "routes" / "demo.yaml"
LOCAL_ROUTES: Final = Path("routes") / "demo.yaml"  # relative to the working directory


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoPorts:
    """Where the demo listens (all on 127.0.0.1); the defaults are demo.yaml's."""

    proxy: int = 8080
    admin: int = 8081
    legacy: int = 8001
    billing: int = 8002

    def named(self) -> tuple[tuple[int, str, str], ...]:
        """(port, what listens there, the option that moves it), in start order."""
        return (
            (self.legacy, "the sample legacy app", "--legacy-port"),
            (self.billing, "the sample billing service", "--billing-port"),
            (self.proxy, "the proxy", "--port"),
            (self.admin, "the admin API", "--admin-port"),
        )


MOVE_HINT: Final = "choose free ports with --port, --admin-port, --legacy-port, --billing-port"


class PortTaken(Exception):
    """A port the demo needs is in use; the message is the one line to print."""


def demo_routes(cwd: Path | None = None) -> Path:
    """The route file the demo loads: the working directory's routes/demo.yaml if any."""
    local = (cwd or Path.cwd()) / LOCAL_ROUTES
    return local.resolve() if local.is_file() else PACKAGED_ROUTES


def demo_config_text(ports: DemoPorts, routes: Path) -> str:
    """demo.yaml with ``ports`` and ``routes`` (an absolute path) in place."""
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    for default, port in (
        ("8080", ports.proxy),
        ("8081", ports.admin),
        ("8001", ports.legacy),
        ("8002", ports.billing),
    ):
        text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{port}")
    return text.replace("include: [routes/demo.yaml]", f"include: ['{routes}']")


def check_ports(ports: DemoPorts) -> None:
    """Raise ``PortTaken`` naming the first port something else listens on.

    Checked before anything starts, so a taken port costs no half-started demo. The
    probe binds as the servers will (SO_REUSEADDR), so a port in TIME_WAIT is free.
    """
    seen: set[int] = set()
    for port, what, option in ports.named():
        if port in seen:
            raise PortTaken(f"strangler demo: port {port} is given twice; {MOVE_HINT}")
        seen.add(port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as e:
                raise PortTaken(
                    f"strangler demo: port {port} ({what}) is already in use; "
                    f"choose another with {option} PORT"
                ) from e


BANNER: Final = """
strangler demo is running.

  proxy    http://127.0.0.1:{port}      <- talk to this one
  admin    http://127.0.0.1:{admin}      (/healthz /readyz /metrics)
  status   http://127.0.0.1:{admin}/     <- the status page: migration progress
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
Other ports: strangler demo --port P --admin-port P --legacy-port P --billing-port P
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


def run_demo(ports: DemoPorts | None = None) -> int:
    """``strangler demo``: 0 after Ctrl-C or SIGTERM, 1 with one line when a port is taken."""
    ports = ports or DemoPorts()
    try:
        check_ports(ports)
    except PortTaken as e:
        print(e, file=sys.stderr)
        return 1
    install_uvloop()
    with tempfile.TemporaryDirectory(prefix="strangler-demo-") as tmp:
        config = Path(tmp) / "demo.yaml"
        config.write_text(demo_config_text(ports, demo_routes()), encoding="utf-8")
        with contextlib.suppress(KeyboardInterrupt):
            try:
                return asyncio.run(demo_async(config))
            except OSError as e:  # taken between the check and the start
                print(f"strangler demo: cannot listen: {e}; {MOVE_HINT}", file=sys.stderr)
                return 1
    return 0


__all__ = [
    "DEMO_CONFIG",
    "PACKAGED_ROUTES",
    "DemoPorts",
    "PortTaken",
    "check_ports",
    "demo_async",
    "demo_config_text",
    "demo_routes",
    "run_demo",
]
