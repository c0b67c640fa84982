"""``strangler serve`` as a process with a TLS listener: ``--listen`` moves the
listener but keeps its TLS, and a real SIGHUP makes it serve rotated certificate files
on new connections while an open keep-alive connection goes on working."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import trustme

from tests.conftest import Upstream
from tests.serve_support import free_port, serve, until
from tests.tls_support import client_context, peer_names, write_leaf


async def test_serve_with_listen_override_and_sighup_rotation(
    legacy: Upstream, tmp_path: Path
) -> None:
    ca = trustme.CA()
    write_leaf(ca, tmp_path, "proxy", "127.0.0.1", "gen0.example")
    port, admin = free_port(), free_port()
    cfg = tmp_path / "strangler.yaml"
    cfg.write_text(
        f"""
listen: {{address: 127.0.0.1:1, tls: {{cert: proxy.pem, key: proxy.key}}}}
admin: {{listen: 127.0.0.1:{admin}}}
upstreams:
  legacy: {legacy.url}
"""
    )
    args = ("--config", str(cfg), "--listen", f"127.0.0.1:{port}")
    async with serve(*args, cwd=tmp_path) as running:
        assert running.port == port
        assert "gen0.example" in await peer_names(port, ca, "127.0.0.1")
        connector = aiohttp.TCPConnector(ssl=client_context(ca), limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"https://127.0.0.1:{port}/before") as r:
                assert r.status == 200
            write_leaf(ca, tmp_path, "proxy", "127.0.0.1", "gen1.example")
            running.send_signal(signal.SIGHUP)

            async def rotated() -> list[str] | None:
                found = await peer_names(port, ca, "127.0.0.1")
                return found if "gen1.example" in found else None

            await until(rotated, "the rotated certificate")
            async with session.get(f"https://127.0.0.1:{port}/after") as r:
                assert r.status == 200
        assert [s.raw_path for s in legacy.recorder.seen] == ["/before", "/after"]
        assert await running.stop(within=10) == 0
    assert "Traceback" not in running.log_text()
