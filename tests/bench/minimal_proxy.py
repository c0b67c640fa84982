"""The baseline for the benchmark: a reverse proxy as a Python developer writes one in an
afternoon with aiohttp. One catch-all route, one shared ClientSession, headers copied
(minus hop-by-hop), the request body passed as a stream, the response streamed back with
``iter_chunked``. The default asyncio event loop unless ``--uvloop``; no routing, no
metrics, no access log (aiohttp's own access logger has no handler unless configured).

Run: ``python tests/bench/minimal_proxy.py http://127.0.0.1:8000 --port 8080``
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
HOP_BY_HOP |= {"transfer-encoding", "proxy-authenticate", "proxy-authorization"}
UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def copy_headers(headers: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP]


async def proxy(request: web.Request) -> web.StreamResponse:
    url = request.app[UPSTREAM] + request.path_qs
    body = request.content if request.body_exists else None
    headers = copy_headers(request.headers)
    session = request.app[SESSION]
    async with session.request(
        request.method, url, headers=headers, data=body, allow_redirects=False
    ) as upstream:
        out_headers = copy_headers(upstream.headers)
        response = web.StreamResponse(status=upstream.status, headers=out_headers)
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(64 * 1024):
            await response.write(chunk)
        await response.write_eof()
        return response


async def client_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        app[SESSION] = session
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("upstream", help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--uvloop", action="store_true", help="use uvloop (not the baseline)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application()
    app[UPSTREAM] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(client_session)
    app.router.add_route("*", "/{tail:.*}", proxy)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
