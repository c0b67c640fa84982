"""What each feature adds to strangler's CPU per request: a script, not a pytest test.

One worker (core 1) serves a config of 100 routes; the benchmark route is the last
one, so every request walks the router. For each variant of that route, wrk (core 0)
loads it and the worker's CPU (user + system, all threads) is divided by the requests
answered. The table gives the median over the rounds and what the variant adds over
the plain route measured in the same run. CPU per request moves much less with other
load on the machine than req/s does, but a busy machine still inflates it a little
(shared caches): compare figures of one run.

CPU per request still depends on the machine: with spare CPU the worker wakes for
fewer requests at a time and pays more per request; with other load it batches more.
``--callgrind`` counts instructions instead (valgrind's callgrind, instrumentation
switched on only around the measured wrk runs): other load changes it less, but
later rounds have read up to 40% higher than the first for the same code (see
tests/bench/README.md): compare round by round.

    python tests/bench/bench_features.py                  # about 4 minutes
    python tests/bench/bench_features.py --rounds 5 --duration 5
    python tests/bench/bench_features.py --only plain,canary-sticky
    python tests/bench/bench_features.py --callgrind      # about 15 minutes

Needs nginx (the upstream), wrk and taskset, as bench_proxy.py does; valgrind (and
its callgrind_control) for ``--callgrind``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

if __package__ in (None, ""):  # run as a script: make ``tests.bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_proxy import (
    _HZ,
    JSON_BODY,
    LOAD_CORE,
    PROXY_CORE,
    REPO,
    TOOLS,
    BenchError,
    Processes,
    free_port,
    nginx_configs,
    pause,
    pick_workdir,
    run_wrk,
    say,
    session_cpu_ticks,
    strangler_revision,
    wait_http,
)

FILLER_ROUTES: Final = 99
CALLGRIND_CONNECTIONS: Final = 32  # keeps a worker under callgrind saturated (batching alike)


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    key: str
    what: str
    route: str  # the YAML of the benchmark route's keys after match/to
    path: str = "/small"
    access_log: str = "json"
    to: str = "billing"
    top: str = ""  # extra top-level YAML
    headers: tuple[str, ...] = ()  # wrk -H
    # Off unless measured: fallback is on by default for a route with a new side.
    fallback: str = "false"


VARIANTS: Final = (
    Variant(key="plain", what="a plain route (JSON access log, metrics, fallback off)", route=""),
    Variant(
        key="canary-sticky",
        what="a sticky canary at 50% (header cohort)",
        to="legacy",
        route="    canary: {to: billing, percent: 50%, sticky: header:X-User-Id}\n",
        headers=("X-User-Id: user-42",),
    ),
    Variant(
        key="translate-json",
        what="translation of a small JSON answer (rename, map)",
        path="/json",
        route="    translate: {use: bench}\n",
        top=(
            "translators:\n"
            "  bench:\n"
            "    response:\n"
            "      - json: [{rename: {from: customer.name, to: name}},"
            " {map: {path: state, values: {paid: PAID}}}]\n"
        ),
    ),
    Variant(
        key="shadow-10",
        what="shadow to another upstream at 10%",
        route="    shadow: {to: orders, percent: 10%}\n",
    ),
    Variant(
        key="fallback",
        what="fallback on (the default for a route with a new side)",
        route="",
        fallback="",
    ),
    Variant(
        key="tracing-0",
        what="tracing on, sample 0% (spans made, none recorded or exported)",
        route="",
        top="tracing: {otlp: @UPSTREAM@, sample: 0%}\n",
    ),
    Variant(
        key="tracing-100",
        what="tracing on, sample 100% (every span exported to the upstream nginx)",
        route="",
        top="tracing: {otlp: @UPSTREAM@, sample: 100%}\n",
    ),
    Variant(key="log-text", what="text access log instead of JSON", route="", access_log="text"),
    Variant(key="log-off", what="access log off", route="", access_log="off"),
)


def config(v: Variant, work: Path, upstream_port: int, port: int, admin: int) -> Path:
    up = f"http://127.0.0.1:{upstream_port}"
    log = (
        "access_log: {format: off}"
        if v.access_log == "off"
        else f"access_log: {{format: {v.access_log}, path: {work}/features-access.log}}"
    )
    filler = "".join(
        f"  - name: filler-{i}\n    owner: bench\n"
        f'    match: {{path: "/api/v{i % 3}/things{i}/{{id:int}}", methods: [GET]}}\n'
        "    to: legacy\n"
        for i in range(FILLER_ROUTES)
    )
    text = (
        f"listen: 127.0.0.1:{port}\nadmin: {{listen: 127.0.0.1:{admin}}}\n"
        f"upstreams:\n  legacy: {up}\n  billing: {up}\n  orders: {up}\n"
        f"limits: {{max_body_bytes: 0}}\n{log}\ndrain: 1s\n"
        f"{v.top.replace('@UPSTREAM@', up)}routes:\n{filler}"
        f"  - name: bench\n    owner: bench\n    match: {{path: {v.path}}}\n"
        f"    to: {v.to}\n{v.route}" + (f"    fallback: {v.fallback}\n" if v.fallback else "")
    )
    path = work / f"features-{v.key}.yaml"
    path.write_text(text)
    return path


@dataclass(slots=True)
class Result:
    variant: Variant
    cpu_us: list[float]
    rps: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.cpu_us)


def _start(
    v: Variant, work: Path, procs: Processes, upstream_port: int, wrapper: Sequence[str]
) -> tuple[subprocess.Popen[bytes], str]:
    port, admin = free_port(), free_port()
    path = config(v, work, upstream_port, port, admin)
    argv = ["taskset", "-c", PROXY_CORE, *wrapper, sys.executable, "-m", "strangler", "serve"]
    argv += ["--config", str(path), "--workers", "1", "--log-level", "WARNING"]
    # A fixed hash seed: dict and set layouts (and so probe counts) alike in every run.
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONHASHSEED="0")
    env.pop("STRANGLER_ADMIN_TOKEN", None)
    proc = procs.start(f"strangler-{v.key}", argv, env=env)
    url = f"http://127.0.0.1:{port}{v.path}"
    _wait(url, proc, procs, v.key, 300 if wrapper else 30)
    if v.key == "translate-json":  # the answer really is translated
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.loads(resp.read())
        if body.get("name") != "Ada" or body.get("state") != "PAID":
            raise BenchError(f"translate-json: not translated: {body}")
    return proc, url


def _wait(
    url: str, proc: subprocess.Popen[bytes], procs: Processes, name: str, limit: float
) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                resp.read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{name} did not answer:\n{procs.log_tail(name)}") from None
            pause(0.5)


def measure_all(
    variants: Sequence[Variant],
    work: Path,
    procs: Processes,
    upstream_port: int,
    args: argparse.Namespace,
) -> list[Result]:
    """CPU per request, the variants taken in turn within each round: every worker
    runs from the start (an idle one costs about 0.3% of a core), so a drift of the
    machine over the run touches every variant alike instead of the last ones."""
    started = [(v, *_start(v, work, procs, upstream_port, ())) for v in variants]
    results = [Result(v, [], []) for v in variants]
    try:
        for v, _proc, url in started:
            run_wrk(url, args.warmup, args.connections, headers=v.headers)
        for i in range(args.rounds):
            say(f"== round {i + 1} of {args.rounds}")
            for (v, proc, url), result in zip(started, results, strict=True):
                ticks = session_cpu_ticks(proc.pid)
                w = run_wrk(url, args.duration, args.connections, headers=v.headers)
                used = session_cpu_ticks(proc.pid) - ticks
                if w.errors:
                    raise BenchError(f"{v.key}: {w.errors}")
                result.cpu_us.append(used / _HZ / w.requests * 1e6)
                result.rps.append(w.rps)
                say(f"   {v.key}: {result.cpu_us[-1]:.1f} µs CPU/req, {w.rps:,.0f} req/s")
        return results
    finally:
        for _v, proc, _url in started:
            procs.stop(proc)


def measure_callgrind(
    v: Variant, work: Path, procs: Processes, upstream_port: int, args: argparse.Namespace
) -> Result:
    """Instructions per request (thousands), counted by callgrind over one wrk run."""
    out = work / f"callgrind-{v.key}.out"
    wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}")
    proc, url = _start(v, work, procs, upstream_port, wrapper)
    try:
        control = ["callgrind_control"]
        subprocess.run([*control, "-i", "on", str(proc.pid)], check=True, capture_output=True)
        run_wrk(url, args.warmup * 2, CALLGRIND_CONNECTIONS, headers=v.headers)
        counts, rps = [], []
        for i in range(args.rounds):
            subprocess.run([*control, "-z", str(proc.pid)], check=True, capture_output=True)
            w = run_wrk(url, args.duration * 3, CALLGRIND_CONNECTIONS, headers=v.headers)
            subprocess.run([*control, "-d", str(proc.pid)], check=True, capture_output=True)
            dump = _dump(work, out, i + 1)
            if w.errors or dump is None or not w.requests:
                raise BenchError(f"{v.key}: no callgrind dump or errors ({w.errors})")
            m = re.search(r"^(?:summary|totals):\s+(\d+)", dump.read_text(errors="replace"), re.M)
            if m is None:
                raise BenchError(f"{v.key}: cannot read {dump}")
            counts.append(int(m.group(1)) / w.requests / 1000)
            rps.append(w.rps)
        say(f"   {v.key}: " + ", ".join(f"{k:,.0f}" for k in counts) + " k instructions/req")
        return Result(v, counts, rps)
    finally:
        procs.stop(proc)


def _dump(work: Path, out: Path, n: int) -> Path | None:
    """The ``n``-th dump callgrind wrote (``out.n``; it may take a moment)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        path = work / f"{out.name}.{n}"
        if path.exists() and path.stat().st_size:
            return path
        pause(0.2)
    return None


def report(results: Sequence[Result], args: argparse.Namespace) -> str:
    base = next((r.median for r in results if r.variant.key == "plain"), None)
    if args.callgrind:
        how = (
            f"under callgrind, wrk -c{CALLGRIND_CONNECTIONS} on core {LOAD_CORE}, "
            f"{args.rounds} × {args.duration * 3:g} s per variant"
        )
        unit = "k instructions/req (median)"
    else:
        how = (
            f"wrk -c{args.connections} on core {LOAD_CORE}, {args.rounds} × "
            f"{args.duration:g} s per variant"
        )
        unit = "CPU µs/req (median)"
    out = [
        f"strangler at {strangler_revision()}: one worker on core {PROXY_CORE}, {how}, "
        f"{FILLER_ROUTES + 1} routes (the benchmark route last).",
        "",
        f"| variant | {unit} | added over plain | rounds | req/s (median) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        added = "–" if base is None or r.variant.key == "plain" else f"{r.median - base:+.1f}"
        rounds = " / ".join(f"{c:.1f}" for c in r.cpu_us)
        out.append(
            f"| {r.variant.what} | {r.median:.1f} | {added} | {rounds} | "
            f"{statistics.median(r.rps):,.0f} |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk round")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--only", default="", help="comma-separated variant keys")
    p.add_argument(
        "--callgrind", action="store_true", help="count instructions per request (valgrind)"
    )
    args = p.parse_args(argv)
    tools = dict(TOOLS, valgrind="valgrind") if args.callgrind else TOOLS
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        say("missing: " + ", ".join(f"{t} (Debian package {tools[t]})" for t in missing))
        return 2
    chosen = [v for v in VARIANTS if not args.only or v.key in args.only.split(",")]
    work = pick_workdir()
    procs = Processes(work)
    try:
        upstream_port = free_port()
        up_conf, _ = nginx_configs(work, upstream_port, free_port())
        (work / "large.bin").touch()
        argv = ["taskset", "-c", LOAD_CORE, "nginx", "-c", str(up_conf), "-p", str(work)]
        upstream = procs.start("upstream", argv)
        wait_http(f"http://127.0.0.1:{upstream_port}/json", upstream, procs, "upstream")
        with urllib.request.urlopen(f"http://127.0.0.1:{upstream_port}/json", timeout=5) as r:
            if json.loads(r.read()) != json.loads(JSON_BODY):
                raise BenchError("upstream /json answers something else")
        if args.callgrind:
            results = []
            for v in chosen:
                say(f"== {v.key}: {v.what}")
                results.append(measure_callgrind(v, work, procs, upstream_port, args))
        else:
            results = measure_all(chosen, work, procs, upstream_port, args)
        print(report(results, args))
        return 0
    except BenchError as e:
        say(f"FAILED: {e}")
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
