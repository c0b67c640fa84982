"""WebSocket upgrade relay: the client's socket and the upstream's, message for message.

Pings, pongs and close codes pass through (both sides run with autoping and
autoclose off, so the proxy answers nothing on its own). The upstream's choice of
subprotocol is offered back to the client. An upstream that refuses the upgrade
makes the proxy answer the same status.
"""

from __future__ import annotations

import asyncio
from typing import Final

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict, istr

from strangler.errors import ForwardError
from strangler.forward.headers import connection_tokens
from strangler.forward.pool import UpstreamPool, classify

_WS_HANDSHAKE: Final = tuple(
    istr(h)
    for h in (
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Accept",
    )
)


def is_websocket_upgrade(request: web.BaseRequest) -> bool:
    upgrade = request.headers.get("Upgrade")
    return (
        upgrade is not None
        and upgrade.lower() == "websocket"
        and "upgrade" in connection_tokens(request.headers)
    )


async def _pump(
    src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    counter: list[int],
) -> None:
    while True:
        msg = await src.receive()
        t = msg.type
        if t is WSMsgType.TEXT:
            counter[0] += len(msg.data)
            await dst.send_str(msg.data)
        elif t is WSMsgType.BINARY:
            counter[0] += len(msg.data)
            await dst.send_bytes(msg.data)
        elif t is WSMsgType.PING:
            await dst.ping(msg.data)
        elif t is WSMsgType.PONG:
            await dst.pong(msg.data)
        elif t is WSMsgType.CLOSE:
            await dst.close(code=msg.data, message=(msg.extra or "").encode())
            return
        else:  # CLOSING, CLOSED, ERROR: the other side is gone or going
            await dst.close()
            return


async def relay_websocket(
    request: web.BaseRequest, pool: UpstreamPool, headers: CIMultiDict[str]
) -> tuple[web.StreamResponse, int]:
    """Upgrade both sides and relay until either closes; returns (response, payload bytes)."""
    protocols = tuple(
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    )
    for name in _WS_HANDSHAKE:
        headers.popall(name, None)
    try:
        upstream = await pool.session.ws_connect(
            pool.url_for(request.raw_path),
            headers=headers,
            protocols=protocols,
            ssl=pool.tls.context or True,  # the upstream's verification and client cert
            server_hostname=pool.tls.server_hostname,  # SNI and the name verified
            autoclose=False,
            autoping=False,
            max_msg_size=0,
            compress=0,
        )
    except aiohttp.WSServerHandshakeError as e:
        text = f"upstream {pool.upstream.name!r} refused the WebSocket: {e.message}\n"
        return web.Response(status=e.status or 502, text=text), 0
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        err: ForwardError = classify(pool.upstream.name, e, headers_seen=False)
        raise err from e
    client = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        autoclose=False,
        autoping=False,
        max_msg_size=0,
        compress=False,
    )
    counter = [0]
    try:
        await client.prepare(request)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_pump(client, upstream, counter))
            tg.create_task(_pump(upstream, client, counter))
    finally:
        await upstream.close()
    return client, counter[0]
