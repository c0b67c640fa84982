"""The reload soak script (tests/bench/soak_reload.py): a short real run passes, and its
checks catch what they are there for (a wrong service, a wrong body, an error)."""

from __future__ import annotations

import random
import time

from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.bench import soak_reload


def test_a_short_soak_through_both_listeners_loses_nothing() -> None:
    argv = ["--seconds", "2", "--clients", "4", "--every", "0.2", "--workers", "2"]
    assert soak_reload.main(argv) == 0


async def test_the_checks_count_wrong_answers_and_failures(
    aiohttp_server: AiohttpServer,
) -> None:
    calls = 0

    async def answer(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        body = await request.read()
        if calls % 3 == 0:
            return web.Response(status=502, text="bad gateway")
        # the soak upstream's shape, spoiled: a wrong length, and every other one the
        # wrong service
        return web.json_response(
            {"by": "legacy" if calls % 3 == 1 else "nobody", "path": request.path_qs,
             "length": len(body) + 1, "sha256": ""}
        )  # fmt: skip

    app = web.Application(client_max_size=1 << 20)
    app.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(app)
    tally = soak_reload.Tally()
    deadline = time.monotonic() + 0.3
    await soak_reload.client(str(server.make_url("")), 0, deadline, tally, random.Random(1))
    assert tally.requests == calls > 3
    assert tally.failed == calls // 3
    assert tally.wrong == tally.requests - tally.failed  # every other answer is spoiled
    assert tally.examples[0].startswith(("wrong: ", "failed: "))
