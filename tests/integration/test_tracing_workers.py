"""``strangler serve --workers 2`` with tracing: each worker exports its own spans and
flushes them when SIGTERM drains it. Real processes, a real OTLP/HTTP receiver."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pytest_aiohttp import AiohttpServer

from tests.conftest import Upstream
from tests.otlp_support import attrs, start_receiver
from tests.serve_support import free_port, serve, worker_pids

REQUESTS = 20


async def test_each_worker_exports_its_spans_and_flushes_them_on_drain(
    legacy: Upstream, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    receiver = await start_receiver(aiohttp_server)
    port, admin = free_port(), free_port()
    path = tmp_path / "strangler.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{port}\nadmin: {{listen: 127.0.0.1:{admin}}}\n"
        f"upstreams: {{legacy: {legacy.url}}}\naccess_log: {{format: off}}\n"
        # The batch processor's own delay (5 s) is far longer than this test: every
        # span arrives through the flush at the drain.
        f"tracing: {{otlp: {receiver.url}, sample: 100%}}\n"
    )
    async with serve("--config", str(path), workers=2) as running:
        pids = await worker_pids(admin, 2)
        for i in range(REQUESTS):  # fresh connections: spread over both workers
            async with (
                aiohttp.ClientSession() as s,
                s.get(f"http://127.0.0.1:{port}/r{i}") as r,
            ):
                assert r.status == 200
        assert await running.stop(within=30) == 0

    servers = receiver.of_kind(Span.SPAN_KIND_SERVER)
    assert sorted(str(attrs(s)["url.path"]) for s in servers) == sorted(
        f"/r{i}" for i in range(REQUESTS)
    )
    host = socket.gethostname()
    assert receiver.instances == {f"{host}:{pid}" for pid in pids}
