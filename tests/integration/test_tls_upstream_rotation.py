"""An upstream's TLS files follow their rotation, as the listener's do: 0 failed requests.

A mutual-TLS upstream on 127.0.0.1 demands a client certificate from the CA it
trusts, and closes every connection after its answer, so that each request is a new
handshake with the proxy's client certificate of the moment. Under bounded load (240
requests from 4 clients), the upstream's required client CA moves from ``old`` to
``new`` while the proxy's ``tls.cert`` and ``tls.key`` are replaced by a pair from
``new`` (each file by its own atomic rename, cert first: for a moment the pair on
disk does not fit, which the proxy rides out on the previous context). Then the key
file is broken: the log says so, and the proxy keeps the context it has.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.conftest import MakeProxy
from tests.tls_support import issue, replace, write_ca, write_leaf

TOTAL = 240
CLIENTS = 4


def _trusting(server: trustme.LeafCert, *cas: trustme.CA) -> ssl.SSLContext:
    """The upstream's context: its certificate; clients must present one from ``cas``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    for ca in cas:
        ca.configure_trust(ctx)
    return ctx


async def test_rotated_client_certificate_under_load_fails_no_request(
    make_proxy: MakeProxy,
    aiohttp_server: AiohttpServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server_ca, old, new = trustme.CA(), trustme.CA(), trustme.CA()
    leaf = server_ca.issue_cert("127.0.0.1")
    trust = {"now": _trusting(leaf, old)}  # the client CA the upstream requires, swapped below
    ctx = _trusting(leaf, old)

    def on_hello(conn: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        conn.context = trust["now"]  # every new handshake: the CA required at this moment

    ctx.sni_callback = on_hello
    clients: list[str] = []  # the client certificate of each request, by its name

    async def hello(request: web.Request) -> web.Response:
        assert request.transport is not None
        clients.append(request.transport.get_extra_info("peercert")["subjectAltName"][0][1])
        response = web.Response(text="ok")
        response.force_close()  # the next request is a new handshake
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    upstream = await aiohttp_server(app, ssl=ctx)
    client = write_leaf(old, tmp_path, "client", "gen0.client")
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy:
    url: https://127.0.0.1:{upstream.port}
    tls: {{ca: {write_ca(server_ca, tmp_path)}, cert: {client.cert}, key: {client.key}}}
""",
        watch_interval=0.01,
    )
    pool = proxy.server.forwarder.pool(proxy.server.config.upstreams["legacy"])
    files = pool.files
    assert files is not None
    url = f"http://127.0.0.1:{proxy.server.proxy_port}/x"
    failures: list[str] = []
    issued = 0
    progress = asyncio.Condition()

    async def traffic() -> None:
        nonlocal issued
        async with aiohttp.ClientSession() as session:
            while issued < TOTAL:
                issued += 1
                async with session.get(url) as r:
                    if r.status != 200:
                        failures.append(f"{r.status} {await r.text()}")
                async with progress:
                    progress.notify_all()

    async def reached(share: int) -> None:
        async with progress:
            await progress.wait_for(lambda: issued >= share * TOTAL // 5)

    async def rotate() -> None:
        await reached(1)
        trust["now"] = _trusting(leaf, old, new)  # the upstream accepts both for a while
        cert, key = issue(new, "gen1.client")
        replace(client.cert, cert)
        # the certificate without its key: the proxy must keep the previous context
        await asyncio.wait_for(files.wait_until(lambda f: f.failed >= 1), 10)
        replace(client.key, key)
        await asyncio.wait_for(files.wait_until(lambda f: f.reloads >= 1), 10)
        await reached(2)
        trust["now"] = _trusting(leaf, new)  # the old client CA is no longer accepted
        mark["new only"] = len(clients)
        await reached(3)
        client.key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        await asyncio.wait_for(files.wait_until(lambda f: f.failed >= 2), 10)

    mark: dict[str, int] = {}
    with caplog.at_level(logging.ERROR, logger="strangler.tls"):
        async with asyncio.timeout(60):
            await asyncio.gather(rotate(), *(traffic() for _ in range(CLIENTS)))
    assert failures == []
    assert len(clients) == TOTAL
    assert clients[0] == "gen0.client"
    assert set(clients[mark["new only"] :]) == {"gen1.client"}  # and the upstream took them
    assert files.reloads == 1
    assert files.failed == 2
    broken = [r.getMessage() for r in caplog.records if str(client.key) in r.getMessage()]
    assert broken, [r.getMessage() for r in caplog.records]
    assert broken[-1].startswith("upstream 'legacy' TLS files not reloaded, still using")
