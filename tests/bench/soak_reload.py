"""Reload soak: traffic through ``strangler serve --workers N`` while its routes change.

A script, not a pytest test (it runs for minutes). It starts a legacy and a new service
(small aiohttp apps in their own processes), strangler in front of them with a route
file that includes ``/api/orders``, and clients that keep sending a mix of requests:
reads of ``/api/orders/N`` (routed to the new service, a 50% canary, or nowhere: legacy,
depending on the version of the route file), uploads to ``/api/orders`` whose answer
must carry the upload's length and SHA-256, slow reads (80 ms upstream) that are in
flight when a reload swaps the routes, unrouted reads, and a new connection now and
then. Meanwhile the route file is rewritten (whole, renamed into place) and applied in
turn by the file watcher, by SIGHUP to the supervisor and by ``POST /reload``, and the
next rewrite waits until ``/readyz`` shows the new version.

Every answer is checked: ``failed`` counts errors and statuses other than 200 (a reload
must never cost a request), ``wrong`` counts answers from the wrong service or with the
wrong body. At the end strangler gets SIGTERM and must exit 0 within its drain.

    python tests/bench/soak_reload.py                        # both listeners, 60 s each
    python tests/bench/soak_reload.py --listener llhttp --seconds 300 --workers 4

Traffic goes to 127.0.0.1 only; it is bounded by ``--seconds`` and ``--clients``. The
exit code is 0 when no request failed and no answer was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_proxy import REPO, Processes, _table, free_port, wait_http

TOKEN = "soak-token"
SLOW = 0.08  # seconds the upstream takes for /slow: requests in flight across reloads

VARIANTS = (
    # the new service answers /api/orders
    "routes:\n  - name: orders\n    owner: soak\n    match: {path_prefix: /api/orders}\n"
    "    to: new\n",
    # half of the clients (sticky by a header), the other half legacy
    "routes:\n  - name: orders\n    owner: soak\n    match: {path_prefix: /api/orders}\n"
    "    to: legacy\n    canary: {to: new, percent: 50%, sticky: header:X-Client}\n",
    # nothing routed: legacy answers everything
    "routes: []\n",
    # the new service again, behind 60 routes that do not match (a bigger table to swap)
    "routes:\n"
    + "".join(
        f"  - name: filler-{i}\n    owner: soak\n    match: {{path_prefix: /filler{i}}}\n"
        "    to: legacy\n"
        for i in range(60)
    )
    + "  - name: orders\n    owner: soak\n    match: {path_prefix: /api/orders}\n    to: new\n",
)


def upstream_app(name: str) -> aiohttp.web.Application:
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/slow":
            await asyncio.sleep(SLOW)
        body = await request.read()
        return web.json_response(
            {
                "by": name,
                "path": request.path_qs,
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        )

    app = web.Application(client_max_size=1 << 20)
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def serve_upstream(name: str, port: int) -> None:
    from aiohttp import web

    web.run_app(upstream_app(name), host="127.0.0.1", port=port, print=None, access_log=None)


@dataclass(slots=True)
class Tally:
    requests: int = 0
    failed: int = 0
    wrong: int = 0
    reloads: dict[str, int] = field(default_factory=lambda: {"file": 0, "sighup": 0, "api": 0})
    unapplied: int = 0
    examples: list[str] = field(default_factory=list)

    def bad(self, kind: str, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {what}")


async def client(base: str, index: int, deadline: float, tally: Tally, rng: random.Random) -> None:
    """One client: its own keep-alive connection(s), a sticky ``X-Client``."""
    headers = {"X-Client": f"client-{index}"}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            pick = rng.random()
            extra = {"Connection": "close"} if n % 25 == 0 else {}
            body = b""
            if pick < 0.55:
                method, path, allowed = "GET", f"/api/orders/{index}-{n}", {"new", "legacy"}
            elif pick < 0.75:
                method, path, allowed = "POST", "/api/orders", {"new", "legacy"}
                body = rng.randbytes(rng.randint(1, 64 * 1024))
            elif pick < 0.9:
                method, path, allowed = "GET", "/slow", {"legacy"}
            else:
                method, path, allowed = "GET", f"/other/{n}?q={index}", {"legacy"}
            what = f"{method} {path}"
            tally.requests += 1
            try:
                async with session.request(
                    method, base + path, data=body or None, headers=extra
                ) as resp:
                    data = await resp.read()
                    if resp.status != 200:
                        tally.bad("failed", f"{what}: {resp.status} {data[:200]!r}")
                        continue
            except (aiohttp.ClientError, TimeoutError) as e:
                tally.bad("failed", f"{what}: {type(e).__name__}: {e}")
                continue
            try:
                got = json.loads(data)
            except ValueError:
                tally.bad("wrong", f"{what}: not JSON: {data[:200]!r}")
                continue
            expected = (path, len(body), hashlib.sha256(body).hexdigest())
            if (
                got.get("by") not in allowed
                or (
                    got.get("path"),
                    got.get("length"),
                    got.get("sha256"),
                )
                != expected
            ):
                tally.bad("wrong", f"{what}: {got}")


async def readyz_version(session: aiohttp.ClientSession, admin: str) -> str | None:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
        async with session.get(f"{admin}/readyz") as resp:
            return str((await resp.json())["version"])
    return None


async def reloader(
    work: Path, admin: str, supervisor: int, deadline: float, every: float, tally: Tally
) -> None:
    """Rewrite the route file every ``every`` seconds, applied by the watcher, SIGHUP and
    the admin API in turn; wait (up to 10 s) until ``/readyz`` shows a new version."""
    routes = work / "routes" / "soak.yaml"
    ways = ("file", "sighup", "api")
    i = 0
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            await asyncio.sleep(every)
            before = await readyz_version(session, admin)
            i += 1
            tmp = routes.with_suffix(".tmp")
            tmp.write_text(VARIANTS[i % len(VARIANTS)])
            os.replace(tmp, routes)
            way = ways[i % len(ways)]
            if way == "sighup":
                os.kill(supervisor, signal.SIGHUP)
            elif way == "api":
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.post(
                        f"{admin}/reload", headers={"Authorization": f"Bearer {TOKEN}"}
                    ) as resp:
                        await resp.read()
            give_up = time.monotonic() + 10
            while time.monotonic() < give_up:
                now = await readyz_version(session, admin)
                if now is not None and now != before:
                    tally.reloads[way] += 1
                    break
                await asyncio.sleep(0.02)
            else:
                tally.unapplied += 1


def write_config(work: Path, port: int, admin: int, legacy: int, new: int) -> Path:
    (work / "routes").mkdir(exist_ok=True)
    (work / "routes" / "soak.yaml").write_text(VARIANTS[0])
    (work / "token").write_text(TOKEN)
    config = work / "strangler.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"admin: {{listen: 127.0.0.1:{admin}, token_file: token}}\n"
        f"upstreams:\n  legacy: http://127.0.0.1:{legacy}\n  new: http://127.0.0.1:{new}\n"
        "drain: 5s\n"
        "include: [routes/*.yaml]\n"
    )
    return config


@dataclass(slots=True)
class Result:
    listener: str
    workers: int
    seconds: float
    tally: Tally
    exit_code: int | None


def soak(listener: str, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="strangler-soak-") as tmp:
        work = Path(tmp)
        procs = Processes(work)
        try:
            legacy, new, port, admin = free_port(), free_port(), free_port(), free_port()
            for name, p in (("legacy", legacy), ("new", new)):
                argv = [sys.executable, __file__, "--upstream", name, str(p)]
                proc = procs.start(name, argv)
                wait_http(f"http://127.0.0.1:{p}/ready", proc, procs, name)
            config = write_config(work, port, admin, legacy, new)
            env = {k: v for k, v in os.environ.items() if k != "STRANGLER_ADMIN_TOKEN"}
            env["PYTHONPATH"] = str(REPO)
            if listener == "llhttp":
                env["STRANGLER_LISTENER"] = "llhttp"
            argv = [sys.executable, "-m", "strangler", "serve", "--config", str(config)]
            argv += ["--workers", str(args.workers), "--log-level", "WARNING"]
            proxy = procs.start("strangler", argv, env=env)
            wait_http(f"http://127.0.0.1:{admin}/readyz", proxy, procs, "strangler")
            tally = Tally()
            started = time.monotonic()
            asyncio.run(run_load(work, port, admin, proxy.pid, args, tally))
            seconds = time.monotonic() - started
            proxy.send_signal(signal.SIGTERM)
            try:
                code: int | None = proxy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                code = None
            if code != 0:
                print(procs.log_tail("strangler", 30), file=sys.stderr)
            return Result(listener, args.workers, seconds, tally, code)
        finally:
            procs.stop_all()


async def run_load(
    work: Path, port: int, admin: int, supervisor: int, args: argparse.Namespace, tally: Tally
) -> None:
    deadline = time.monotonic() + args.seconds
    base, admin_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"
    rng = random.Random(args.seed)
    async with asyncio.TaskGroup() as tg:
        for i in range(args.clients):
            tg.create_task(client(base, i, deadline, tally, random.Random(rng.random())))
        tg.create_task(reloader(work, admin_url, supervisor, deadline, args.every, tally))


def report(results: list[Result]) -> str:
    head = ("listener", "workers", "seconds", "requests", "req/s", "failed", "wrong",
            "reloads file/SIGHUP/api", "not applied", "exit")  # fmt: skip
    rows = [
        (
            r.listener,
            str(r.workers),
            f"{r.seconds:.0f}",
            f"{r.tally.requests:,}",
            f"{r.tally.requests / r.seconds:,.0f}",
            str(r.tally.failed),
            str(r.tally.wrong),
            "/".join(str(r.tally.reloads[k]) for k in ("file", "sighup", "api")),
            str(r.tally.unapplied),
            "timeout" if r.exit_code is None else str(r.exit_code),
        )
        for r in results
    ]
    out = _table(head, rows)
    for r in results:
        out += [f"{r.listener}: {e}" for e in r.tally.examples]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listener", choices=("default", "llhttp", "both"), default="both")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--every", type=float, default=0.3, help="seconds between route rewrites")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--upstream", nargs=2, metavar=("NAME", "PORT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.upstream:
        serve_upstream(args.upstream[0], int(args.upstream[1]))
        return 0
    listeners = ("default", "llhttp") if args.listener == "both" else (args.listener,)
    results = []
    for listener in listeners:
        print(f"== {listener} listener, {args.workers} workers, {args.seconds:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        results.append(soak(listener, args))
    print(report(results))
    clean = all(r.tally.failed == r.tally.wrong == 0 and r.exit_code == 0 for r in results)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
