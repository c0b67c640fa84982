"""Certificate rotation under load: 0 failed requests.

Bounded load on 127.0.0.1 (300 requests from 8 concurrent clients, half of them
opening a new TLS connection per request so that handshakes happen while the files
change) while the listener's certificate and key are replaced four times, each file
by its own atomic rename, cert first: for a moment the pair on disk does not fit,
which the proxy must ride out on the previous certificate. The watcher reloads the
files; every request must succeed, and new handshakes must end on the last
certificate.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import trustme

from tests.conftest import MakeProxy, Upstream
from tests.tls_support import client_context, issue, peer_names, replace, write_leaf

TOTAL = 300
CLIENTS = 8
ROTATIONS = 4


async def test_rotation_under_load_fails_no_request(
    make_proxy: MakeProxy, legacy: Upstream, tmp_path: Path
) -> None:
    ca = trustme.CA()
    pems = write_leaf(ca, tmp_path, "proxy", "127.0.0.1", "gen0.example")
    proxy = await make_proxy(
        f"""
listen: {{address: 127.0.0.1:0, tls: {{cert: {pems.cert}, key: {pems.key}}}}}
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
""",
        watch_interval=0.01,
    )
    tls = proxy.server.tls
    assert tls is not None
    url = f"https://127.0.0.1:{proxy.server.proxy_port}/load"
    ctx = client_context(ca)
    failures: list[str] = []
    statuses: list[int] = []
    issued = 0
    progress = asyncio.Condition()

    async def client(fresh_connections: bool) -> None:
        nonlocal issued
        connector = aiohttp.TCPConnector(ssl=ctx, force_close=fresh_connections, limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            while issued < TOTAL:
                issued += 1
                try:
                    async with session.get(url) as r:
                        await r.read()
                        statuses.append(r.status)
                except (aiohttp.ClientError, OSError) as e:
                    failures.append(repr(e))
                async with progress:
                    progress.notify_all()

    async def rotate() -> None:
        for generation in range(1, ROTATIONS + 1):
            due = generation * TOTAL // (ROTATIONS + 2)  # spread the rotations over the run
            async with progress:
                await progress.wait_for(lambda: issued >= due)  # noqa: B023 - awaited here
            cert, key = issue(ca, "127.0.0.1", f"gen{generation}.example")
            failed = tls.failed
            replace(pems.cert, cert)
            # the watcher sees a certificate without its key: it must keep the old pair
            await asyncio.wait_for(tls.wait_until(lambda t: t.failed > failed), 10)  # noqa: B023
            replace(pems.key, key)
            await asyncio.wait_for(tls.wait_until(lambda t: t.reloads >= generation), 10)  # noqa: B023

    async with asyncio.timeout(60):
        await asyncio.gather(rotate(), *(client(n % 2 == 0) for n in range(CLIENTS)))
    assert failures == []
    assert len(statuses) == TOTAL
    assert set(statuses) == {200}
    assert tls.reloads == ROTATIONS
    assert tls.failed == ROTATIONS
    names = await peer_names(proxy.server.proxy_port, ca, "127.0.0.1")
    assert f"gen{ROTATIONS}.example" in names
