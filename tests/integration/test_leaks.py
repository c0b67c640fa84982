"""No file descriptors or tasks left behind, whatever clients and upstreams do."""

from __future__ import annotations

import asyncio
import contextlib
import os

import aiohttp

from tests.conftest import MakeProxy, Upstream


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def mixed_traffic(proxy_url: str, port: int, rounds: int) -> None:
    """Normal, failing, aborted and upgraded exchanges, ``rounds`` times each."""
    async with aiohttp.ClientSession() as s:
        for _ in range(rounds):
            async with s.get(proxy_url + "/ok") as r:
                await r.read()
            async with s.get(proxy_url + "/reset") as r:
                assert r.status == 502
            async with s.get(proxy_url + "/partial") as r:
                with contextlib.suppress(aiohttp.ClientPayloadError):
                    await r.read()
            async with s.post(proxy_url + "/up", data=b"x" * 10_000) as r:
                await r.read()
            async with s.ws_connect(proxy_url + "/ws") as ws:
                await ws.send_str("x")
                await ws.receive()
    for _ in range(rounds):  # clients that hang up mid-request
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /stream?chunks=1000&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
        await w.drain()
        w.close()
        await w.wait_closed()


async def test_no_fd_or_task_growth(legacy: Upstream, make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
"""
    )
    await mixed_traffic(proxy.url, proxy.server.proxy_port, 10)  # warm the pools
    await asyncio.sleep(0)
    fds, tasks = open_fds(), len(asyncio.all_tasks())
    await mixed_traffic(proxy.url, proxy.server.proxy_port, 50)
    # Wait (bounded) for the server side to notice the last hang-ups.
    for _ in range(100):
        if open_fds() <= fds and len(asyncio.all_tasks()) <= tasks:
            break
        await asyncio.sleep(0.02)
    assert open_fds() <= fds, f"fds grew from {fds} to {open_fds()}"
    assert len(asyncio.all_tasks()) <= tasks


async def test_stop_releases_everything(legacy: Upstream, make_proxy: MakeProxy) -> None:
    fds = open_fds()
    tasks = {t.get_name() for t in asyncio.all_tasks()}
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
"""
    )
    await mixed_traffic(proxy.url, proxy.server.proxy_port, 5)
    await proxy.server.stop()
    left = {t.get_name() for t in asyncio.all_tasks()} - tasks
    assert left == set()
    # Upstream-side sockets of the test's own server may linger in TIME_WAIT handling,
    # but the proxy's listeners and pooled connections must all be closed.
    for _ in range(100):
        if open_fds() <= fds:
            break
        await asyncio.sleep(0.02)
    assert open_fds() <= fds
