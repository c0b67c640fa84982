"""Proxy benchmark: strangler against nginx and a minimal aiohttp proxy, on one machine.

A script, not a pytest test. ``python tests/bench/bench_proxy.py [--quick] [--duration S]``
(or ``./dev bench``) does, in one run:

1. starts a fast upstream: nginx, one worker, on core 0, serving a 200-byte ``/small``, a
   sparse 1 GiB ``/large`` and accepting uploads with WebDAV ``PUT /upload/...`` (nginx
   reads the whole body into a file before answering, so an upload is really consumed;
   the file is checked and removed after each upload);
2. for each target (the upstream directly, nginx ``proxy_pass`` with a keep-alive pool,
   the minimal aiohttp proxy in ``minimal_proxy.py``, strangler with one and with two
   workers) measures with ``wrk`` (core 0) requests/s and p50/p99 latency on ``/small``,
   and the latency at a fixed 1,000 req/s with an open-loop generator (core 0) that
   measures from each request's *intended* send time (no coordinated omission);
3. streams a 1 GiB download and a 1 GiB upload with curl through each proxy and reports
   MB/s (10^6 bytes/s), and strangler's peak RSS;
4. prints one markdown table and whether the issue's targets are met.

The proxy under test runs on core 1; strangler with two workers runs on cores 0 and 1,
which it then shares with wrk and the upstream (the output says so). Everything is
started in a temporary directory (under /dev/shm when it has room) and removed at the
end, with every process this script started, also on Ctrl-C or failure.

``--profile FILE`` also samples the one-worker strangler under wrk load with py-spy
(``pip install py-spy``) and prints the top frames by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TypeVar

HERE: Final = Path(__file__).resolve().parent
REPO: Final = HERE.parents[1]
MINIMAL: Final = HERE / "minimal_proxy.py"

LOAD_CORE: Final = "0"  # wrk, curl, the rate generator and the upstream nginx
PROXY_CORE: Final = "1"  # the proxy under test
BOTH_CORES: Final = "0,1"

SMALL_BODY: Final = ("strangler benchmark: a small response body. " * 5)[:199] + "\n"
# a small JSON answer for a translated route (bench_features.py)
JSON_BODY: Final = '{"customer": {"name": "Ada"}, "state": "paid", "total_cents": 1234}'
GIB: Final = 1 << 30
MIB: Final = 1 << 20

# tool -> the Debian package that brings it
TOOLS: Final = {"nginx": "nginx-light", "wrk": "wrk", "taskset": "util-linux", "curl": "curl"}

_T = TypeVar("_T")

TARGET_KEYS: Final = (
    "upstream",
    "nginx",
    "minimal",
    "minimal-uvloop",
    "strangler-bare",
    "strangler",
    "strangler-llhttp",
    "strangler-2w",
    "strangler-4w",
)
SECTIONS: Final = ("throughput", "latency", "streaming", "scaling")
# The targets each section measures; a target starts once for all its sections.
SECTION_TARGETS: Final[dict[str, tuple[str, ...]]] = {
    "throughput": (
        "upstream",
        "nginx",
        "minimal",
        "minimal-uvloop",
        "strangler-bare",
        "strangler",
        "strangler-llhttp",
    ),
    "latency": ("nginx", "strangler-bare", "strangler", "strangler-llhttp"),  # after a direct one
    "streaming": ("upstream", "nginx", "strangler"),
    "scaling": ("strangler", "strangler-2w", "strangler-4w"),
}


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


def pause(seconds: float) -> None:
    time.sleep(seconds)  # noqa: TID251 - a synchronous script: there is no event loop here


# ---------------------------------------------------------------------------------------
# processes and files


class Processes:
    """Every process the benchmark starts, each in its own session (so Ctrl-C in the
    terminal reaches only this script), stopped in reverse order by ``stop_all``."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self._procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
            env=env,
        )
        self._procs.append((name, proc, log))
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logdir / f"{name}.log"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        """Signal the process, give it 10 s, then kill its whole process group (the group
        is the session this script created for it: only its own children are in it)."""
        entry = next((e for e in self._procs if e[1] is proc), None)
        if entry is None:
            return
        self._procs.remove(entry)
        log = entry[2]
        try:
            if proc.poll() is None:
                proc.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        finally:
            log.close()

    def stop_all(self) -> None:
        for _name, proc, _log in reversed(list(self._procs)):
            self.stop(proc)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], procs: Processes, name: str) -> None:
    """Wait up to 30 s for ``url`` to answer 200; fail early when ``proc`` exits."""
    deadline = time.monotonic() + 30
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with {proc.returncode} before serving:\n{procs.log_tail(name)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        pause(0.1)
    raise BenchError(f"{name} did not answer {url} within 30 s ({last}):\n{procs.log_tail(name)}")


def pick_workdir() -> Path:
    """A temp dir on tmpfs when it has room (uploads land there), else the default."""
    shm = Path("/dev/shm")
    parent: str | None = None
    with contextlib.suppress(OSError):
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > 4 * GIB:
            parent = str(shm)
    return Path(tempfile.mkdtemp(prefix="strangler-bench-", dir=parent))


# ---------------------------------------------------------------------------------------
# configs


def _nginx_common(work: Path, name: str) -> tuple[str, str]:
    """The top of an nginx config (one worker, no daemon, files in ``work``) and the
    shared ``http`` directives."""
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must write in work/
    temp = work / f"{name}-temp"
    temp.mkdir(exist_ok=True)
    return (
        f"{user}worker_processes 1;\ndaemon off;\nmaster_process on;\n"
        f"pid {work}/{name}.pid;\nerror_log {work}/{name}-error.log warn;\n"
        "events { worker_connections 4096; }\n"
    ), (
        f"client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi; uwsgi_temp_path {temp}/uwsgi;\n"
        f"  scgi_temp_path {temp}/scgi;\n"
        "  keepalive_requests 1000000; keepalive_timeout 60s;\n"
    )


def nginx_configs(work: Path, upstream_port: int, proxy_port: int) -> tuple[Path, Path]:
    """The upstream's config and the nginx proxy_pass config."""
    top, http = _nginx_common(work, "upstream")
    (work / "dav").mkdir(exist_ok=True)
    upstream = (
        top
        + "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  "
        + http
        + "  server {\n"
        f"    listen 127.0.0.1:{upstream_port} backlog=4096;\n"
        f'    location = /small {{ default_type text/plain; return 200 "{SMALL_BODY[:-1]}\\n"; }}\n'
        "    location = /json { default_type application/json;"
        f" return 200 '{JSON_BODY}'; }}\n"
        "    location = /v1/traces { client_max_body_size 0; return 200; }  # OTLP (tracing-*)\n"
        "    location = /large { default_type application/octet-stream;"
        f" alias {work}/large.bin; }}\n"
        f"    location /upload/ {{ root {work}/dav; dav_methods PUT; create_full_put_path on;\n"
        "      client_max_body_size 0; client_body_buffer_size 1m; }\n"
        "  }\n}\n"
    )
    top, http = _nginx_common(work, "nginx-proxy")
    proxy = (
        top + "http {\n"
        f"  access_log {work}/nginx-proxy-access.log;\n  " + http + "  upstream up {\n"
        f"    server 127.0.0.1:{upstream_port};\n    keepalive 64;\n"
        "    keepalive_requests 1000000;\n  }\n"
        "  server {\n"
        f"    listen 127.0.0.1:{proxy_port} backlog=4096;\n"
        "    client_max_body_size 0;\n"
        "    location / {\n      proxy_pass http://up;\n      proxy_http_version 1.1;\n"
        '      proxy_set_header Connection "";\n'
        "      proxy_request_buffering off;  # stream uploads, as strangler does\n"
        "      proxy_max_temp_file_size 0;   # stream downloads through memory buffers\n"
        "    }\n  }\n}\n"
    )
    up_path, proxy_path = work / "upstream.conf", work / "nginx-proxy.conf"
    up_path.write_text(upstream)
    proxy_path.write_text(proxy)
    return up_path, proxy_path


ROUTES: Final = 100  # the target config's route count (issue 15: "routing over 100 routes")
BENCH_ROUTE: Final = 50  # the index of the route /small matches: the middle of the list


def filler_route(i: int) -> str:
    """Route ``i`` of a config of team routes, a mix as real route files have: prefixes,
    templates with typed and free segments, a rest-of-path, exact paths, method
    lists; none of them matches the benchmark's paths."""
    team = f"team-{i % 7}"
    kind = i % 6
    if kind == 0:
        match = f"{{path_prefix: /api/v1/service{i}}}"
    elif kind == 1:
        match = f'{{path: "/api/v2/things{i}/{{id:int}}", methods: [GET, HEAD]}}'
    elif kind == 2:
        match = f'{{path: "/api/v1/orders{i}/{{order:uuid}}/items/{{item}}"}}'
    elif kind == 3:
        match = f'{{path: "/static{i}/{{rest:path}}", methods: [GET]}}'
    elif kind == 4:
        match = f"{{path_prefix: /api/v1/write{i}, methods: [POST, PUT, PATCH, DELETE]}}"
    else:
        match = f'{{path: "/api/v3/customers{i}/{{id:int}}/invoices/{{n:int}}"}}'
    to = ("billing", "orders", "legacy")[i % 3]
    return f"  - name: route-{i}\n    owner: {team}\n    match: {match}\n    to: {to}\n"


def strangler_config_text(
    upstream: str, port: int, admin_port: int, access_log: Path, *, routes: bool = True
) -> str:
    """The issue's target config: ``ROUTES`` routes where /small, /large and /upload match
    the ones in the middle (from index ``BENCH_ROUTE``), so a request walks half the
    list; metrics (always on) and a JSON access log to a file. ``routes=False``: the
    same without routes (everything goes to legacy), for comparison."""
    head = f"""\
listen: 127.0.0.1:{port}
admin: {{listen: 127.0.0.1:{admin_port}}}
upstreams:
  legacy: {upstream}
  billing: {upstream}
  orders: {upstream}
limits: {{max_body_bytes: 0}}
access_log: {{format: json, path: {access_log}}}
drain: 2s
"""
    if not routes:
        return head + "routes: []\n"
    bench = (
        "  - name: bench-small\n    owner: bench\n"
        "    match: {path: /small, methods: [GET, HEAD]}\n    to: billing\n"
        "  - name: bench-large\n    owner: bench\n    match: {path: /large}\n    to: billing\n"
        "  - name: bench-upload\n    owner: bench\n    match: {path_prefix: /upload}\n"
        "    to: billing\n"
    )
    fillers = [filler_route(i) for i in range(ROUTES - 3)]
    return (
        head + "routes:\n" + "".join(fillers[:BENCH_ROUTE]) + bench + "".join(fillers[BENCH_ROUTE:])
    )


def strangler_config(
    work: Path,
    upstream_port: int,
    port: int,
    admin_port: int,
    *,
    routes: bool = True,
    access_log: Path | None = None,
) -> Path:
    path = work / ("strangler.yaml" if routes else "strangler-bare.yaml")
    log = access_log or work / "strangler-access.log"
    text = strangler_config_text(
        f"http://127.0.0.1:{upstream_port}", port, admin_port, log, routes=routes
    )
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------
# measurements


@dataclass(slots=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: str  # "" or a short description of non-2xx responses / socket errors
    cpu_us: float | None = None  # the target's CPU (user + system) per request, µs
    proxy_cores: float | None = None  # the target's CPU over the run, in cores
    load_cores: float | None = None  # wrk's and the upstream's CPU over the run, in cores


_UNIT_MS: Final = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and p99 and total):
        raise BenchError(f"cannot read wrk output:\n{out}")
    errors = []
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors.append(f"{m.group(1)} non-2xx")
    if m := re.search(r"Socket errors: (.*)", out):
        errors.append(f"socket errors: {m.group(1).strip()}")
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        requests=int(total.group(1)),
        errors="; ".join(errors),
    )


def run_wrk(url: str, seconds: float, connections: int, headers: Sequence[str] = ()) -> WrkResult:
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    for h in headers:
        argv += ["-H", h]
    argv += ["--latency", "--timeout", "5s", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


@dataclass(slots=True)
class RateResult:
    rate: float  # achieved requests/s (the lowest of the rounds)
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    count: int
    errors: int
    p99_rounds: list[float] = field(default_factory=list)  # each round's p99, in order

    @classmethod
    def of_rounds(cls, runs: Sequence[RateRun]) -> RateResult:
        """Each percentile is the median over the rounds of that round's percentile: one
        round disturbed by another process (this machine is shared) moves it little,
        where pooling the samples would let that round's stalls set the p99."""

        def median_of(q: float) -> float:
            return statistics.median(percentile(sorted(r.latencies_ms), q) for r in runs)

        return cls(
            rate=min(run.rate for run in runs),
            p50_ms=median_of(0.50),
            p99_ms=median_of(0.99),
            p999_ms=median_of(0.999),
            max_ms=max((max(r.latencies_ms, default=math.nan) for r in runs), default=math.nan),
            count=sum(len(r.latencies_ms) for r in runs),
            errors=sum(run.errors for run in runs),
            p99_rounds=[percentile(sorted(r.latencies_ms), 0.99) for r in runs],
        )


@dataclass(slots=True)
class RateRun:
    """One open-loop run, with every recorded latency."""

    rate: float
    errors: int
    latencies_ms: list[float]


def run_rate(url: str, rate: int, seconds: float, work: Path) -> RateRun:
    """The open-loop generator in a child process pinned to the load core; it writes its
    result to a file in ``work`` (a file, not a pipe: the result is ~100 kB)."""
    out = work / "loadgen.json"
    out.unlink(missing_ok=True)
    argv = ["taskset", "-c", LOAD_CORE, sys.executable, str(Path(__file__).resolve())]
    argv += ["--loadgen", url, "--loadgen-out", str(out)]
    argv += ["--rate", str(rate), "--duration", f"{seconds:g}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 90, check=False)
    if done.returncode != 0:
        raise BenchError(f"rate generator failed ({done.returncode}): {done.stderr.strip()}")
    try:
        data: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError) as e:
        raise BenchError(f"rate generator wrote no readable result: {e}") from e
    return RateRun(**data)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


async def loadgen(url: str, rate: int, seconds: float, warmup: float = 1.0) -> RateRun:
    """Send ``rate`` requests/s for ``warmup + seconds`` on a fixed schedule, whatever the
    answers' pace (open loop). Each latency runs from the request's intended send time to
    its last response byte, so a stall counts for every request it delayed."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=10)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(20):  # open a few keep-alive connections before the clock starts
            async with session.get(url) as r:
                await r.read()

        async def one(intended: float, record: bool) -> None:
            nonlocal errors
            try:
                async with session.get(url) as r:
                    await r.read()
                    ok = r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if not ok:
                errors += 1
            elif record:
                latencies.append(time.perf_counter() - intended)

        gc.collect()
        gc.disable()  # the generator's own pauses would count as latency; it runs briefly
        interval = 1.0 / rate
        total = round(rate * (warmup + seconds))
        skip = round(rate * warmup)
        start = time.perf_counter() + 0.05
        async with asyncio.timeout(warmup + seconds + 30), asyncio.TaskGroup() as tg:
            i = 0
            while i < total:
                now = time.perf_counter()
                while i < total and start + i * interval <= now:  # everything that is due
                    tg.create_task(one(start + i * interval, i >= skip))
                    i += 1
                if i < total:
                    await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
        elapsed = time.perf_counter() - start
        gc.enable()
    return RateRun(
        rate=total / elapsed,
        errors=errors,
        latencies_ms=[round(x * 1000.0, 4) for x in latencies],
    )


# ---------------------------------------------------------------------------------------
# a shared machine: wait for quiet, and measure the CPU others used meanwhile

_HZ: Final = os.sysconf("SC_CLK_TCK")


def _user_ticks() -> int:
    """user + nice ticks of the whole machine (/proc/stat). User time only: system time
    also takes in (soft)irq work that no process is charged for, so it cannot be split
    between us and others."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[1]) + int(fields[2])


def _session_ticks(sessions: set[int]) -> tuple[int, int]:
    """(utime, stime) summed over every live process (all threads) in ``sessions``."""
    user = system = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                rest = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(rest[3]) in sessions:
            user += int(rest[11])
            system += int(rest[12])
    return user, system


def _session_user_ticks(sessions: set[int]) -> int:
    """utime of every live process in ``sessions``."""
    return _session_ticks(sessions)[0]


def session_cpu_ticks(session: int) -> int:
    """utime + stime of every live process (all threads) in ``session``: the CPU a
    target server used, whatever else the machine runs."""
    return sum(_session_ticks({session}))


def _own_user_ticks() -> float:
    """This script and the children it has waited for (wrk, curl, the generator)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return (me.ru_utime + kids.ru_utime) * _HZ


class CpuMeter:
    """User CPU used by processes that are not this benchmark's, in cores, over an
    interval: the machine's user time less ours (this script, the children it waited
    for, every process in the sessions of the servers it started). Tick accounting:
    good to about ±0.05 core; it cannot see others' system time."""

    def __init__(self, sessions: set[int]) -> None:
        self.sessions = sessions
        self._t0 = time.monotonic()
        self._user0 = _user_ticks()
        self._ours0 = _session_user_ticks(sessions) + _own_user_ticks()

    def foreign_cores(self) -> float:
        elapsed = time.monotonic() - self._t0
        user = _user_ticks() - self._user0
        ours = _session_user_ticks(self.sessions) + _own_user_ticks() - self._ours0
        return max(0.0, (user - ours) / _HZ / elapsed) if elapsed > 0 else 0.0


QUIET: Final = 0.1  # others' user CPU, in cores, below which the machine counts as quiet


def wait_for_quiet(sessions: set[int], max_wait: float, threshold: float = QUIET) -> float:
    """Wait (up to ``max_wait`` s) until others use less than ``threshold`` cores over one
    second; returns the last reading. Our own servers are idle while this runs."""
    deadline = time.monotonic() + max_wait
    while True:
        meter = CpuMeter(sessions)
        pause(1.0)
        foreign = meter.foreign_cores()
        if foreign < threshold or time.monotonic() >= deadline:
            return foreign


def wait_for_quiet_start(max_wait: float, quiet_for: int = 5) -> tuple[float, float]:
    """Before a run: wait (up to ``max_wait`` s) until other processes have used less
    than ``QUIET`` cores for ``quiet_for`` seconds in a row. Returns (seconds waited,
    the last second's reading)."""
    t0 = time.monotonic()
    streak, foreign = 0, 0.0
    while streak < quiet_for and time.monotonic() - t0 < max_wait:
        foreign = wait_for_quiet(set(), 0.0)  # one second's reading
        streak = streak + 1 if foreign < QUIET else 0
    return time.monotonic() - t0, foreign


@dataclass(slots=True)
class StreamResult:
    down_mbs: float
    up_mbs: float
    runs: int
    cpu_s_per_gib: float | None = None  # the target's CPU per GiB moved, both ways
    downs: list[float] = field(default_factory=list)  # each run's MB/s
    ups: list[float] = field(default_factory=list)


def _curl(argv: list[str], timeout: float) -> tuple[int, int, float]:
    """Run curl on the load core; returns (http code, bytes, bytes/s) from its -w line."""
    full = ["taskset", "-c", LOAD_CORE, "curl", "-sS", "-o", "/dev/null", *argv]
    done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError(f"curl failed ({done.returncode}): {done.stderr.strip()}")
    code, size, speed = done.stdout.split()
    return int(code), int(size), float(speed)


def run_streams(base: str, work: Path, size: int, runs: int) -> StreamResult:
    """Median MB/s over ``runs`` downloads of /large and uploads to /upload/blob. Each
    upload is checked to have reached the upstream whole, then removed."""
    downs, ups = [], []
    blob = work / "dav" / "upload" / "blob"
    for _ in range(runs):
        w = "%{http_code} %{size_download} %{speed_download}"
        code, got, speed = _curl(["-w", w, f"{base}/large"], timeout=600)
        if code != 200 or got != size:
            raise BenchError(f"download: status {code}, {got} of {size} bytes")
        downs.append(speed)
        w = "%{http_code} %{size_upload} %{speed_upload}"
        code, sent, speed = _curl(
            ["-T", str(work / "upload.bin"), "-w", w, f"{base}/upload/blob"], 600
        )
        stored = blob.stat().st_size if blob.exists() else -1
        with contextlib.suppress(FileNotFoundError):
            blob.unlink()
        if code not in (200, 201, 204) or sent != size or stored != size:
            raise BenchError(f"upload: status {code}, sent {sent}, upstream stored {stored}")
        ups.append(speed)
    return StreamResult(
        down_mbs=statistics.median(downs) / 1e6,
        up_mbs=statistics.median(ups) / 1e6,
        runs=runs,
        downs=[d / 1e6 for d in downs],
        ups=[u / 1e6 for u in ups],
    )


def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@contextlib.contextmanager
def rss_sampler(pid: int) -> Iterator[Callable[[], float]]:
    """Samples VmRSS every 20 ms in a thread; yields a function giving the peak (MiB)."""
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _status_kib(pid, "VmRSS") or 0)
            stop.wait(0.02)

    thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield lambda: peak / 1024
    finally:
        stop.set()
        thread.join()


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def profile(pid: int, url: str, seconds: float, connections: int, out: Path) -> list[str]:
    """py-spy samples ``pid`` for ``seconds`` while wrk loads it; returns report lines."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise BenchError("py-spy is not installed: pip install py-spy")
    wrk = subprocess.Popen(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds + 4:g}s", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pause(1.5)  # let the load settle
        argv = ["taskset", "-c", LOAD_CORE, spy, "record", "-p", str(pid), "-d", f"{seconds:g}"]
        argv += ["-r", "250", "-f", "raw", "-o", str(out), "--threads", "--nonblocking"]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"py-spy failed ({done.returncode}): {done.stderr.strip()}")
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            wrk.wait(timeout=seconds + 30)
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    return summarize_profile(out.read_text(), rate=250, seconds=seconds)


def _frame_key(frame: str) -> str:
    """``handle (/x/site-packages/aiohttp/web_protocol.py:512)`` -> without the line
    number and with site-packages and the repository root trimmed."""
    frame = re.sub(r":\d+\)$", ")", frame.strip())
    frame = re.sub(r"\(/\S*?/(?:site|dist)-packages/", "(", frame)
    frame = frame.replace(f"({REPO}/", "(")
    return re.sub(r"\(/\S*/lib/python3\.\d+/", "(stdlib/", frame)


# frames every sample goes through: left out of the inclusive table
_ENTRY_FRAMES: Final = ("main (", "_serve (", "<module> (", "run (", "run_worker (")


def summarize_profile(raw: str, *, rate: int, seconds: float, top: int = 25) -> list[str]:
    """Samples per thread, the top frames by own (leaf) samples, and strangler's own
    functions by inclusive samples, from py-spy's raw output (``--threads``: each stack
    starts with ``thread (TID): NAME``)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "?"
        if frames[0].startswith("thread ("):
            thread = frames.pop(0).partition(": ")[2] or "?"
        keys = [_frame_key(f) for f in frames if not f.startswith("process ")]
        if not keys:
            continue
        total += count
        threads[thread] += count
        own[keys[-1]] += count
        for key in set(keys):
            inclusive[key] += count
    if not total:
        return ["py-spy recorded no samples"]
    expected = rate * seconds
    busy = ", ".join(f"{name} {n / expected:.0%}" for name, n in threads.most_common())
    lines = [
        f"{total} non-idle samples at {rate} Hz over {seconds:g} s; threads busy: {busy} "
        "(of one core; uvloop's C loop, its I/O and C-level callbacks show as Runner.run)",
        "",
        "| # | own % | frame: function (file) |",
        "|---|---|---|",
    ]
    for i, (key, count) in enumerate(own.most_common(top), 1):
        lines.append(f"| {i} | {count / total:.1%} | `{key}` |")
    lines += ["", "strangler's own functions, inclusive:", "", "| incl % | function |", "|---|---|"]
    ours = [
        (k, c)
        for k, c in inclusive.most_common()
        if "(strangler/" in k and not k.startswith(_ENTRY_FRAMES)
    ]
    for key, count in ours[:15]:
        lines.append(f"| {count / total:.1%} | `{key}` |")
    return lines


# ---------------------------------------------------------------------------------------
# the run


@dataclass(slots=True)
class Row:
    key: str
    label: str
    cores: str
    config: str = ""  # what the target does per request, for the table
    wrk_runs: list[WrkResult] = field(default_factory=list)
    rate: RateResult | None = None  # medians over the rounds
    direct_rate: RateResult | None = None  # the upstream, interleaved with this row's rounds
    stream: StreamResult | None = None
    rss_peak_mib: float | None = None
    rss_notes: str = ""
    foreign_cores: float = 0.0  # the most CPU others used during one of this row's runs
    failure: str = ""
    skipped: str = ""  # why the row was not run (the machine has too few cores)
    notes: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float | None:
        return statistics.median(w.rps for w in self.wrk_runs) if self.wrk_runs else None

    def wrk_median(self, attr: str) -> float | None:
        values = [float(v) for w in self.wrk_runs if (v := getattr(w, attr)) is not None]
        return statistics.median(values) if values else None

    def wrk_spread(self, attr: str) -> str:
        """The range over the rounds, as ± percent of the median."""
        values = [float(v) for w in self.wrk_runs if (v := getattr(w, attr)) is not None]
        return spread(values)

    @property
    def spread(self) -> str:
        """req/s range over the rounds, as ± percent of the median."""
        return self.wrk_spread("rps")


def spread(values: Sequence[float]) -> str:
    """``±N%``: half the range of ``values`` as a share of their median ("" for one)."""
    if len(values) < 2:
        return ""
    mid = statistics.median(values)
    return f"±{(max(values) - min(values)) / 2 / mid:.0%}" if mid else ""


@dataclass(slots=True)
class Settings:
    duration: float
    warmup: float
    rate_duration: float
    rounds: int
    connections: int
    rate: int
    stream_size: int
    stream_runs: int
    targets: tuple[str, ...]
    quiet_wait: float
    retries: int
    profile: Path | None
    profile_seconds: float
    revision: str
    sections: tuple[str, ...] = SECTIONS
    started: str = ""  # UTC date and time of the start
    load_before: str = ""  # the machine's load averages at the start


Starter = Callable[[], tuple[subprocess.Popen[bytes], int]]


def usable_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def worker_cores(workers: int) -> str | None:
    """Where ``workers`` strangler workers run: one worker on ``PROXY_CORE``; more on the
    cores after the load's when the machine has that many, else on every core (sharing
    the load's); None when the machine has fewer cores than workers."""
    if workers == 1:
        return PROXY_CORE
    cores = usable_cores()
    if len(cores) > workers:
        return ",".join(str(c) for c in cores[1 : workers + 1])
    if len(cores) == workers:
        return ",".join(str(c) for c in cores)
    return None


ROUTED: Final = (
    f"{ROUTES} routes (/small matches route {BENCH_ROUTE + 1}), metrics, JSON access log to a file"
)
BARE: Final = "no routes (all to legacy), metrics, JSON access log to a file"


class Bench:
    """Starts the upstream, then each target in turn; ``rows`` holds the figures."""

    def __init__(self, settings: Settings, work: Path) -> None:
        self.s = settings
        self.work = work
        self.procs = Processes(work)
        self.upstream_port = free_port()
        self.upstream: subprocess.Popen[bytes] | None = None
        self.current: subprocess.Popen[bytes] | None = None
        self.rows: dict[str, Row] = {}
        self.profile_lines: list[str] = []
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        )
        self.env.pop("STRANGLER_ADMIN_TOKEN", None)

    def sections_of(self, key: str) -> tuple[str, ...]:
        """The chosen sections that measure target ``key`` (none: it is not started)."""
        if key not in self.s.targets:
            return ()
        return tuple(sec for sec in self.s.sections if key in SECTION_TARGETS[sec])

    def run(self) -> None:
        s = self.s
        for name in ("large.bin", "upload.bin"):  # sparse: read as zeros, cost no memory
            with open(self.work / name, "wb") as f:
                f.truncate(s.stream_size)
        proxy_port = free_port()
        up_conf, proxy_conf = nginx_configs(self.work, self.upstream_port, proxy_port)
        argv = ["taskset", "-c", LOAD_CORE, "nginx", "-c", str(up_conf), "-p", str(self.work)]
        upstream = self.upstream = self.procs.start("upstream", argv)
        small = f"http://127.0.0.1:{self.upstream_port}/small"
        wait_http(small, upstream, self.procs, "upstream")
        with urllib.request.urlopen(small, timeout=5) as resp:
            got = resp.read()
        if len(got) != len(SMALL_BODY):
            raise BenchError(f"upstream /small is {len(got)} bytes, expected {len(SMALL_BODY)}")

        plan: list[tuple[str, str, str, str, Starter | None]] = [
            ("upstream", "upstream nginx, direct", LOAD_CORE, "", lambda: (upstream, 0)),
            (
                "nginx",
                "nginx proxy_pass, keepalive 64",
                PROXY_CORE,
                "one catch-all location, access log to a file",
                lambda: self._nginx(proxy_conf, proxy_port),
            ),
            (
                "minimal",
                "minimal aiohttp proxy (asyncio loop)",
                PROXY_CORE,
                "one catch-all route, no log",
                lambda: self._minimal(False),
            ),
            (
                "minimal-uvloop",
                "minimal aiohttp proxy + uvloop",
                PROXY_CORE,
                "one catch-all route, no log",
                lambda: self._minimal(True),
            ),
            (
                "strangler-bare",
                "strangler, 1 worker, no routes",
                PROXY_CORE,
                BARE,
                lambda: self._strangler(1, routes=False),
            ),
            ("strangler", "strangler, 1 worker", PROXY_CORE, ROUTED, lambda: self._strangler(1)),
            (
                "strangler-llhttp",
                "strangler, 1 worker, llhttp listener (experimental)",
                PROXY_CORE,
                f"{ROUTED}; STRANGLER_LISTENER=llhttp",
                lambda: self._strangler(1, llhttp=True),
            ),
        ]
        for n in (2, 4):
            cores = worker_cores(n)
            starter: Starter | None = None
            if cores is not None:
                starter = lambda n=n: self._strangler(n)  # noqa: E731 - one per row
            plan.append(
                (f"strangler-{n}w", f"strangler, {n} workers", cores or "–", ROUTED, starter)
            )
        for key, label, cores, config, start in plan:
            sections = self.sections_of(key)
            if not sections:
                continue
            row = self.rows[key] = Row(key, label, cores, config)
            if start is None:
                row.skipped = f"not run: this machine has {len(usable_cores())} usable cores"
                say(f"== {label}: {row.skipped}")
                continue
            say(f"== {label} (cores {cores}): {', '.join(sections)}")
            try:
                proc, port = start()
                self._measure(row, proc, port or self.upstream_port, sections)
            except BenchError as e:
                row.failure = str(e)
                say(f"   FAILED: {e}")
            finally:
                self._stop_target()

    def _stop_target(self) -> None:
        if self.current is not None:
            self.procs.stop(self.current)
            self.current = None

    def _sessions(self) -> set[int]:
        return {p.pid for p in (self.upstream, self.current) if p is not None}

    def _nginx(self, conf: Path, port: int) -> tuple[subprocess.Popen[bytes], int]:
        argv = ["taskset", "-c", PROXY_CORE, "nginx", "-c", str(conf), "-p", str(self.work)]
        proc = self.current = self.procs.start("nginx-proxy", argv)
        wait_http(f"http://127.0.0.1:{port}/small", proc, self.procs, "nginx-proxy")
        return proc, port

    def _minimal(self, uvloop: bool) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        name = "minimal-uvloop" if uvloop else "minimal"
        argv = ["taskset", "-c", PROXY_CORE, sys.executable, str(MINIMAL)]
        argv += [f"http://127.0.0.1:{self.upstream_port}", "--port", str(port)]
        argv += ["--uvloop"] if uvloop else []
        proc = self.current = self.procs.start(name, argv, env=self.env)
        wait_http(f"http://127.0.0.1:{port}/small", proc, self.procs, name)
        return proc, port

    def _strangler(
        self, workers: int, *, routes: bool = True, llhttp: bool = False
    ) -> tuple[subprocess.Popen[bytes], int]:
        port, admin = free_port(), free_port()
        name = f"strangler{workers}" + ("" if routes else "-bare") + ("-llhttp" if llhttp else "")
        log = self.work / f"{name}-access.log"  # its own: the check below sees its lines only
        config = strangler_config(
            self.work, self.upstream_port, port, admin, routes=routes, access_log=log
        )
        cores = worker_cores(workers)
        assert cores is not None  # the plan starts only what the machine can run
        argv = ["taskset", "-c", cores, sys.executable, "-m", "strangler", "serve"]
        argv += ["--config", str(config), "--workers", str(workers), "--log-level", "WARNING"]
        env = {**self.env, "STRANGLER_LISTENER": "llhttp"} if llhttp else self.env
        proc = self.current = self.procs.start(name, argv, env=env)
        wait_http(f"http://127.0.0.1:{port}/small", proc, self.procs, name)
        check_access_log(log, "bench-small" if routes else "(unrouted)", name)
        return proc, port

    def _metered(self, row: Row, what: str, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on a quiet machine: wait for quiet, run, and run again (up to
        ``retries`` more times) when others used ``QUIET`` cores or more meanwhile.
        Keeps the least disturbed result; the row records how disturbed it was."""
        best: tuple[float, _T] | None = None
        retries = self.s.retries
        for attempt in range(1 + retries):
            wait_for_quiet(self._sessions(), self.s.quiet_wait)
            meter = CpuMeter(self._sessions())
            result = fn()
            foreign = meter.foreign_cores()
            if best is None or foreign < best[0]:
                best = (foreign, result)
            if foreign < QUIET:
                break
            again = "; again" if attempt < retries else "; keeping the least disturbed run"
            say(f"   ({what}: others used {foreign:.2f} cores{again})")
        assert best is not None  # the loop runs at least once
        row.foreign_cores = max(row.foreign_cores, best[0])
        return best[1]

    def _measure(
        self, row: Row, proc: subprocess.Popen[bytes], port: int, sections: Sequence[str]
    ) -> None:
        s = self.s
        base = f"http://127.0.0.1:{port}"
        small = f"{base}/small"
        if "throughput" in sections or "scaling" in sections:
            self._throughput(row, proc, small)
        if "latency" in sections:
            self._latency(row, small)
        if row.key == "strangler-2w" and worker_cores(2) == BOTH_CORES:
            row.notes.append("workers share core 0 with wrk and the upstream")
        if row.key == "strangler" and ("streaming" in sections or s.profile is not None):
            self._strangler_streams(row, proc, base, small, "streaming" in sections)
        elif "streaming" in sections:
            row.stream = self._metered(row, "streams", lambda: self._streams_cpu(proc.pid, base))
        if row.stream is not None:
            say(
                f"   streams: down {row.stream.down_mbs:,.0f} MB/s, "
                f"up {row.stream.up_mbs:,.0f} MB/s, "
                f"{_fmt(row.stream.cpu_s_per_gib, '.2f')} s CPU/GiB"
            )

    def _throughput(self, row: Row, proc: subprocess.Popen[bytes], small: str) -> None:
        s = self.s
        run_wrk(small, s.warmup, s.connections)  # warm the pools and caches
        for _ in range(s.rounds):
            w = self._metered(row, "wrk", lambda: self._wrk_cpu(proc.pid, small))
            row.wrk_runs.append(w)
            say(
                f"   wrk: {w.rps:,.0f} req/s, {_fmt(w.cpu_us, '.1f')} µs CPU/req, "
                f"p50 {w.p50_ms:.2f} ms, p99 {w.p99_ms:.2f} ms {w.errors}"
            )

    def _latency(self, row: Row, small: str) -> None:
        s = self.s
        direct = f"http://127.0.0.1:{self.upstream_port}/small"
        runs: list[RateRun] = []
        direct_runs: list[RateRun] = []
        for _ in range(s.rounds):  # interleaved with the upstream, so both see the same noise
            direct_runs.append(
                self._metered(
                    row,
                    "rate, direct",
                    lambda: run_rate(direct, s.rate, s.rate_duration, self.work),
                )
            )
            runs.append(
                self._metered(
                    row, "rate", lambda: run_rate(small, s.rate, s.rate_duration, self.work)
                )
            )
        row.rate = RateResult.of_rounds(runs)
        row.direct_rate = RateResult.of_rounds(direct_runs)
        say(
            f"   at {s.rate}/s: p50 {row.rate.p50_ms:.2f} ms, p99 {row.rate.p99_ms:.2f} ms "
            f"(upstream direct meanwhile: p50 {row.direct_rate.p50_ms:.2f}, "
            f"p99 {row.direct_rate.p99_ms:.2f}), errors {row.rate.errors}"
        )
        if row.rate.errors:
            row.notes.append(f"{row.rate.errors} errors at {s.rate}/s")

    def _wrk_cpu(self, session: int, url: str) -> WrkResult:
        """One wrk run, with the CPU the target (its whole session) used per request and
        in cores, and the CPU wrk and the upstream used (in cores)."""
        upstream = self.upstream.pid if self.upstream is not None else None
        ticks = session_cpu_ticks(session)
        up_ticks = session_cpu_ticks(upstream) if upstream and upstream != session else 0
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        w = run_wrk(url, self.s.duration, self.s.connections)
        elapsed = time.monotonic() - t0
        used = session_cpu_ticks(session) - ticks
        kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_s = (kids_after.ru_utime + kids_after.ru_stime) - (kids.ru_utime + kids.ru_stime)
        up_used = session_cpu_ticks(upstream) - up_ticks if upstream and upstream != session else 0
        if w.requests:
            w.cpu_us = used / _HZ / w.requests * 1e6
        w.proxy_cores = used / _HZ / elapsed
        w.load_cores = (wrk_s + up_used / _HZ) / elapsed
        return w

    def _streams_cpu(self, session: int, base: str) -> StreamResult:
        """``run_streams``, with the CPU the target used per GiB streamed."""
        ticks = session_cpu_ticks(session)
        st = run_streams(base, self.work, self.s.stream_size, self.s.stream_runs)
        moved = 2 * self.s.stream_size * self.s.stream_runs / GIB
        st.cpu_s_per_gib = (session_cpu_ticks(session) - ticks) / _HZ / moved
        return st

    def _strangler_streams(
        self, row: Row, proc: subprocess.Popen[bytes], base: str, small: str, stream: bool
    ) -> None:
        """Streams with the RSS watched; then, if asked, the profile."""
        s, pid = self.s, proc.pid
        if stream:
            load_peak = (_status_kib(pid, "VmHWM") or 0) / 1024
            rss_now = (_status_kib(pid, "VmRSS") or 0) / 1024
            reset = reset_peak_rss(pid)
            with rss_sampler(pid) as sampled:
                row.stream = self._metered(row, "streams", lambda: self._streams_cpu(pid, base))
                sampled_peak = sampled()
            hwm = (_status_kib(pid, "VmHWM") or 0) / 1024
            stream_peak = hwm if reset else sampled_peak
            row.rss_peak_mib = max(load_peak, stream_peak)
            row.rss_notes = (
                f"{load_peak:.1f} MiB before streaming (then {rss_now:.1f}), "
                f"{stream_peak:.1f} MiB while streaming"
                + ("" if reset else " (sampled every 20 ms)")
            )
        if s.profile is not None:
            say("   profiling with py-spy")
            self.profile_lines = profile(pid, small, s.profile_seconds, s.connections, s.profile)

    def close(self) -> None:
        self._stop_target()
        self.procs.stop_all()


def check_access_log(path: Path, route: str, name: str) -> None:
    """The access log (written by a thread) shows a request routed by ``route``."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    if json.loads(line).get("route") == route:
                        return
        pause(0.1)
    raise BenchError(f"{name}: no access log line for route {route!r} in {path}")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# report


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "–" if value is None or math.isnan(value) else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return out


def _section_table(
    header: Sequence[str],
    rows: dict[str, Row],
    keys: Sequence[str],
    cells: Callable[[str, Row], list[str]],
    *,
    shown: Callable[[Row], object] = lambda row: True,
    label: Callable[[str, Row], str] = lambda key, row: row.label,
) -> list[str]:
    """One section's table: a line per target in ``keys`` order that has a row and is
    ``shown`` by the section (or failed). A failed or skipped row gets its ``label``, the
    reason and dashes; a measured one ``cells(key, row)``, called in ``keys`` order."""
    lines = []
    for key in keys:
        row = rows.get(key)
        if row is None or not (shown(row) or row.failure):
            continue
        if row.failure:
            reason = "FAILED: " + row.failure.splitlines()[0]
        elif row.skipped:
            reason = row.skipped
        else:
            lines.append(cells(key, row))
            continue
        lines.append([label(key, row), reason] + ["–"] * (len(header) - 2))
    return _table(header, lines)


def machine() -> str:
    """The CPU model and the usable cores, for the report's header."""
    model = "an unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return f"{len(usable_cores())} usable cores ({model})"


def loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def report(rows: dict[str, Row], s: Settings, profile_lines: list[str]) -> str:
    out = [
        f"strangler at {s.revision}, started {s.started}, on {machine()}; load average "
        f"(1/5/15 min) {s.load_before} at the start, {loadavg()} at the end.",
        "",
        f"Load (wrk, curl, the rate generator) and the upstream nginx on core {LOAD_CORE}; "
        f"the proxy under test on core {PROXY_CORE} unless noted. Medians over "
        f"{s.rounds} round(s); '±' is half the range over the rounds as a share of the "
        "median (the run-to-run spread). 'others' is the most user CPU, in cores, that "
        "processes outside the benchmark used during one of the row's runs (this machine "
        "may be shared; above about 0.2, take the row with caution).",
    ]
    if "throughput" in s.sections:
        out += ["", *throughput_table(rows, s)]
    if "latency" in s.sections:
        out += ["", *latency_table(rows, s)]
    if "streaming" in s.sections:
        out += ["", *streaming_table(rows, s)]
    if "scaling" in s.sections:
        out += ["", *scaling_table(rows, s)]
    out += ["", "### Targets (issue 15: strangler, one worker, 100 routes, metrics, access log)"]
    out += ["", *targets(rows, s)]
    if profile_lines:
        out += ["", "py-spy, strangler one worker under wrk load, top frames by own time:", ""]
        out += profile_lines
    return "\n".join(out)


THROUGHPUT_ROWS: Final = SECTION_TARGETS["throughput"]


def throughput_table(rows: dict[str, Row], s: Settings) -> list[str]:
    nginx, minimal, uv = (rows.get(k) for k in ("nginx", "minimal", "minimal-uvloop"))
    nginx_rps = nginx.rps if nginx else None
    nginx_cpu = nginx.wrk_median("cpu_us") if nginx else None
    header = [
        "target",
        "per request",
        "req/s",
        "±",
        "CPU µs/req",
        "±",
        "p50 ms",
        "p99 ms",
        "× nginx req/s",
        "× nginx CPU/req",
        "× minimal + uvloop",
        "× minimal (asyncio)",
        "others",
    ]

    def cells(key: str, row: Row) -> list[str]:
        baseline = key in ("upstream", "nginx")
        cpu = row.wrk_median("cpu_us")
        return [
            row.label,
            row.config or "–",
            _fmt(row.rps),
            row.spread or "–",
            _fmt(cpu, ".1f"),
            row.wrk_spread("cpu_us") or "–",
            _fmt(row.wrk_median("p50_ms"), ".2f"),
            _fmt(row.wrk_median("p99_ms"), ".2f"),
            "–" if baseline else _ratio(row.rps, nginx_rps),
            "–" if baseline else _ratio(cpu, nginx_cpu),
            "–" if baseline or key == "minimal-uvloop" else _ratio(row.rps, uv.rps if uv else None),
            "–"
            if baseline or key == "minimal"
            else _ratio(row.rps, minimal.rps if minimal else None),
            _fmt(row.foreign_cores, ".2f"),
        ]

    table = _section_table(
        header, rows, THROUGHPUT_ROWS, cells, shown=lambda row: row.wrk_runs or row.skipped
    )
    return [
        f"### Throughput: /small (200-byte answer), wrk -t1 -c{s.connections}, "
        f"{s.rounds} × {s.duration:g} s",
        "",
        "CPU µs/req: the target's user + system CPU (every process and thread) over a "
        "round, divided by the requests answered. The minimal proxy is the baseline in "
        "like-for-like terms with uvloop, as strangler runs on uvloop.",
        "",
        *table,
    ]


def latency_table(rows: dict[str, Row], s: Settings) -> list[str]:
    header = [
        "target",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "direct p50 / p99 ms",
        "added p50 ms",
        "added p99 ms",
        "p99 by round",
        "direct p99 by round",
        "errors",
        "others",
    ]

    def cells(_key: str, row: Row) -> list[str]:
        r, d = row.rate, row.direct_rate
        assert r is not None  # set with direct_rate
        assert d is not None
        return [
            row.label,
            _fmt(r.p50_ms, ".2f"),
            _fmt(r.p99_ms, ".2f"),
            _fmt(r.p999_ms, ".2f"),
            _fmt(r.max_ms, ".1f"),
            f"{_fmt(d.p50_ms, '.2f')} / {_fmt(d.p99_ms, '.2f')}",
            f"{r.p50_ms - d.p50_ms:+.2f}",
            f"{r.p99_ms - d.p99_ms:+.2f}",
            " / ".join(_fmt(x, ".2f") for x in r.p99_rounds),
            " / ".join(_fmt(x, ".2f") for x in d.p99_rounds),
            str(r.errors + d.errors),
            _fmt(row.foreign_cores, ".2f"),
        ]

    table = _section_table(
        header, rows, SECTION_TARGETS["latency"], cells, shown=lambda row: row.rate
    )
    return [
        f"### Latency at a fixed {s.rate:,} req/s (open loop), {s.rounds} × {s.rate_duration:g} s",
        "",
        "The generator (this script, `--loadgen`, uvloop) sends on a fixed schedule whatever "
        "the answers' pace and measures each latency from the request's intended send time "
        "(no coordinated omission). Each proxy round follows a round sent straight to the "
        "upstream ('direct'); each percentile is the median of the rounds' percentiles; "
        "added = the proxy's minus the direct one's. wrk2 is not packaged in Debian.",
        "",
        *table,
    ]


def streaming_table(rows: dict[str, Row], s: Settings) -> list[str]:
    nginx = rows.get("nginx")
    header = [
        "target",
        "download MB/s",
        "±",
        "× nginx",
        "upload MB/s",
        "±",
        "× nginx",
        "CPU s/GiB",
        "peak RSS MiB",
        "others",
    ]

    def cells(key: str, row: Row) -> list[str]:
        st, ns = row.stream, nginx.stream if nginx else None
        assert st is not None
        proxied = key not in ("upstream", "nginx")
        return [
            row.label,
            _fmt(st.down_mbs),
            spread(st.downs) or "–",
            _ratio(st.down_mbs, ns.down_mbs if ns else None) if proxied else "–",
            _fmt(st.up_mbs),
            spread(st.ups) or "–",
            _ratio(st.up_mbs, ns.up_mbs if ns else None) if proxied else "–",
            _fmt(st.cpu_s_per_gib, ".2f"),
            _fmt(row.rss_peak_mib, ".1f") + (f" ({row.rss_notes})" if row.rss_notes else ""),
            _fmt(row.foreign_cores, ".2f"),
        ]

    table = _section_table(
        header, rows, SECTION_TARGETS["streaming"], cells, shown=lambda row: row.stream
    )
    return [
        f"### Streaming: {s.stream_size / GIB:g} GiB with curl, median of {s.stream_runs}",
        "",
        "MB = 10^6 bytes. Download: GET of a sparse file nginx sends with sendfile; upload: "
        "PUT to nginx's WebDAV, which stores the whole body (checked, then removed). CPU "
        "s/GiB: the target's CPU per GiB moved, both ways. Peak RSS: VmHWM of strangler's "
        "process, reset before the streams.",
        "",
        *table,
    ]


def scaling_table(rows: dict[str, Row], s: Settings) -> list[str]:
    keys = SECTION_TARGETS["scaling"]
    one = rows.get("strangler")
    one_rps = one.rps if one else None
    header = [
        "workers",
        "cores",
        "req/s",
        "±",
        "× 1 worker",
        "efficiency",
        "added by the last workers, per worker",
        "proxy CPU (cores)",
        "wrk + upstream CPU (cores)",
        "others",
    ]
    prev: tuple[int, float] | None = None  # the last row with a req/s: workers, req/s

    def workers_of(key: str) -> int:
        return 1 if key == "strangler" else int(key.split("-")[1].rstrip("w"))

    def cells(key: str, row: Row) -> list[str]:
        nonlocal prev
        workers = workers_of(key)
        rps = row.rps
        efficiency = per_added = None
        if rps and one_rps:
            efficiency = rps / (workers * one_rps)
            if prev is not None:
                per_added = (rps - prev[1]) / (workers - prev[0]) / one_rps
        if rps:
            prev = (workers, rps)
        return [
            str(workers),
            row.cores,
            _fmt(rps),
            row.spread or "–",
            _ratio(rps, one_rps) if workers > 1 else "–",
            _fmt(efficiency, ".0%") if workers > 1 else "–",
            _fmt(per_added, ".0%") if per_added is not None else "–",
            _fmt(row.wrk_median("proxy_cores"), ".2f"),
            _fmt(row.wrk_median("load_cores"), ".2f"),
            _fmt(row.foreign_cores, ".2f"),
        ]

    table = _section_table(header, rows, keys, cells, label=lambda key, _row: str(workers_of(key)))
    cores = len(usable_cores())
    honest = (
        f"This machine has {cores} usable cores. One worker has core {PROXY_CORE} to itself "
        f"and the load (wrk) and the upstream run on core {LOAD_CORE}. "
    )
    if cores <= 2:
        honest += (
            "Two workers run on both cores, so they share core 0 with wrk and the upstream "
            "(their CPU is in the last columns): the second worker only gets what the load "
            "leaves, and the row shows what a second worker adds on a machine whose "
            "clients and upstream are local, not how strangler scales with free cores. "
            "Four workers need at least 4 cores: not run here."
        )
    else:
        honest += (
            "With more cores than workers, the workers run on the cores after the load's, "
            "so each has a core of its own; the load still runs on one core, so a "
            "saturated wrk (its CPU near 1.0) caps the rows with more workers."
        )
    return [
        f"### Worker scaling: strangler ({ROUTES} routes), wrk -t1 -c{s.connections} on /small",
        "",
        "Efficiency: req/s ÷ (workers × one worker's req/s). Per added worker: what each "
        "worker added over the previous row, as a share of one worker's req/s. CPU columns "
        "are medians over the rounds, in cores (1.0 = one core busy).",
        "",
        honest,
        "",
        *table,
    ]


def strangler_revision() -> str:
    """The measured checkout: commit, and whether strangler/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "strangler"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        code = subprocess.run(  # the commit the measured code is from, on any branch
            ["git", "-C", str(REPO), "log", "-1", "--format=%h", "--", "strangler"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "an unknown revision (no git)"
    text = f"commit {head}" + (f" (strangler/ as at {code})" if code and code != head else "")
    return text + (" plus uncommitted changes in strangler/" if dirty else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One of issue 15's targets: ``value`` compared with ``limit``."""

    what: str
    value: float | None
    limit: float
    at_least: bool  # the value must be ≥ the limit (else ≤)
    shown: str  # how the value reads, e.g. "0.31× (11,527 vs 52,000 req/s)"
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None or math.isnan(self.value):
            return None
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def line(self) -> str:
        met = self.met
        if met is None:
            verdict = "not measured"
        elif met:
            verdict = "MET"
        else:
            assert self.value is not None
            gap = abs(self.limit - self.value)
            verdict = f"NOT MET (by {gap:.3g}{self.unit})"
        return f"- {self.what}: {self.shown} → {verdict}"


def targets(rows: dict[str, Row], s: Settings) -> list[str]:
    one, nginx, uv, minimal = (
        rows.get(k) for k in ("strangler", "nginx", "minimal-uvloop", "minimal")
    )

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    rps, cpu = (one.rps, one.wrk_median("cpu_us")) if one else (None, None)
    n_rps, n_cpu = (nginx.rps, nginx.wrk_median("cpu_us")) if nginx else (None, None)
    uv_rps = uv.rps if uv else None
    of_nginx, of_uv, cpu_x = div(rps, n_rps), div(rps, uv_rps), div(cpu, n_cpu)
    added: float | None = None
    if one and one.rate and one.direct_rate:
        added = one.rate.p99_ms - one.direct_rate.p99_ms
    out = [
        Target(
            what="req/s ≥ 40% of nginx proxy_pass's (stretch: 50%)",
            value=None if of_nginx is None else of_nginx * 100,
            limit=40.0,
            at_least=True,
            unit=" percentage points",
            shown=f"{_fmt(of_nginx, '.0%')} ({_fmt(rps)} vs {_fmt(n_rps)} req/s)",
        ),
        Target(
            what="req/s ≥ 3× the minimal aiohttp proxy + uvloop",
            value=of_uv,
            limit=3.0,
            at_least=True,
            unit="×",
            shown=f"{_fmt(of_uv, '.2f')}× ({_fmt(rps)} vs {_fmt(uv_rps)} req/s; "
            f"{_ratio(rps, minimal.rps if minimal else None)} the asyncio-loop variant)",
        ),
        Target(
            what="CPU per request ≤ 2.5× nginx's",
            value=cpu_x,
            limit=2.5,
            at_least=False,
            unit="×",
            shown=f"{_fmt(cpu_x, '.2f')}× ({_fmt(cpu, '.1f')} vs {_fmt(n_cpu, '.1f')} µs)",
        ),
        Target(
            what=f"added p99 at {s.rate:,} req/s ≤ 0.5 ms over the direct upstream",
            value=added,
            limit=0.5,
            at_least=False,
            unit=" ms",
            shown=f"{_fmt(added, '+.2f')} ms",
        ),
    ]
    for what in ("down", "up"):
        mine = getattr(one.stream, f"{what}_mbs") if one and one.stream else None
        theirs = getattr(nginx.stream, f"{what}_mbs") if nginx and nginx.stream else None
        r = div(mine, theirs)
        name = "download" if what == "down" else "upload"
        out.append(
            Target(
                what=f"{name} streaming ≥ nginx's MB/s",
                value=r,
                limit=1.0,
                at_least=True,
                unit="×",
                shown=f"{_fmt(r, '.2f')}× ({_fmt(mine)} vs {_fmt(theirs)} MB/s)",
            )
        )
    rss = one.rss_peak_mib if one else None
    out.append(
        Target(
            what="peak RSS ≤ 64 MiB while streaming",
            value=rss,
            limit=64.0,
            at_least=False,
            unit=" MiB",
            shown=f"{_fmt(rss, '.1f')} MiB",
        )
    )
    return [t.line() for t in out]


# ---------------------------------------------------------------------------------------
# command line


def find_py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def check_tools(profile: bool) -> None:
    missing = [
        f"'{tool}' (apt-get install {pkg})" for tool, pkg in TOOLS.items() if not shutil.which(tool)
    ]
    if missing:
        raise BenchError("missing tools: " + ", ".join(missing))
    if profile and not find_py_spy():
        raise BenchError("--profile needs py-spy: pip install py-spy")
    if len(os.sched_getaffinity(0)) < 2:
        raise BenchError("needs 2 usable cores (load on core 0, the proxy on core 1)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark strangler against nginx proxy_pass and a minimal aiohttp proxy.",
    )
    p.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of the sections {','.join(SECTIONS)} (default: all)",
    )
    p.add_argument("--quick", action="store_true", help="1 round of 3 s, 256 MiB streams")
    p.add_argument("--duration", type=float, help="seconds per wrk and rate run (default 10)")
    p.add_argument("--rounds", type=int, help="wrk and rate runs per target (default 3)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--rate", type=int, default=1000, help="fixed rate, req/s (default 1000)")
    p.add_argument(
        "--targets",
        default=",".join(TARGET_KEYS),
        help=f"comma-separated subset of {','.join(TARGET_KEYS)} (default: all; each "
        "runs in the chosen sections that measure it)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each run, wait up to this many seconds for other processes to "
        "go quiet (default 20)",
    )
    p.add_argument(
        "--start-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before starting, wait up to S seconds until other processes have used less "
        "than 0.1 core for 5 s in a row (default 0: start at once)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="run a measurement again, up to this many times, when other processes "
        "used 0.1 core or more during it (default 1)",
    )
    p.add_argument("--profile", type=Path, metavar="FILE", help="py-spy raw profile to FILE")
    p.add_argument("--profile-seconds", type=float, default=10.0)
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    p.add_argument(
        "--keep", action="store_true", help="keep the temp dir (configs, logs) for a look"
    )
    p.add_argument("--loadgen", metavar="URL", help=argparse.SUPPRESS)  # internal: generator
    p.add_argument("--loadgen-out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.loadgen:
        if args.loadgen_out is None:
            print("bench: --loadgen needs --loadgen-out FILE", file=sys.stderr)
            return 2
        with contextlib.suppress(ImportError):
            import uvloop  # keeps the generator's own overhead low; the same for every target

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        result = asyncio.run(loadgen(args.loadgen, args.rate, args.duration or 10.0))
        tmp = args.loadgen_out.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(result)))
        tmp.replace(args.loadgen_out)  # whole or absent, never half-written
        return 0

    chosen = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    unknown = set(chosen) - set(TARGET_KEYS)
    if unknown:
        print(f"bench: unknown targets {sorted(unknown)}; known: {TARGET_KEYS}", file=sys.stderr)
        return 2
    sections = tuple(t.strip() for t in args.only.split(",") if t.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown or not sections:
        print(f"bench: --only takes sections of {','.join(SECTIONS)}", file=sys.stderr)
        return 2
    if args.rounds is not None and args.rounds < 1:
        print("bench: --rounds must be at least 1", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration < 1:
        print("bench: --duration must be at least 1 second", file=sys.stderr)
        return 2
    duration = args.duration if args.duration is not None else (3.0 if args.quick else 10.0)
    settings = Settings(
        duration=duration,
        warmup=1.0 if args.quick else 2.0,
        rate_duration=duration,
        rounds=args.rounds if args.rounds is not None else (1 if args.quick else 3),
        connections=args.connections,
        rate=args.rate,
        stream_size=256 * MIB if args.quick else GIB,
        stream_runs=1 if args.quick else 3,
        targets=chosen,
        quiet_wait=0.0 if args.quick else args.quiet_wait,
        retries=0 if args.quick else args.retries,
        profile=args.profile,
        profile_seconds=args.profile_seconds,
        revision=strangler_revision(),  # taken at the start: others may commit meanwhile
        sections=tuple(sec for sec in SECTIONS if sec in sections),
        started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        load_before=loadavg(),
    )
    try:
        check_tools(args.profile is not None)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    if args.start_quiet > 0:
        say(f"bench: waiting up to {args.start_quiet:g} s for a quiet machine")
        waited, foreign = wait_for_quiet_start(args.start_quiet)
        say(f"bench: waited {waited:.0f} s; others use {foreign:.2f} cores")
        settings.load_before = loadavg()
        settings.started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    work = pick_workdir()
    bench = Bench(settings, work)
    try:
        bench.run()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        bench.close()
        if args.keep:
            for big in ("large.bin", "upload.bin"):
                (work / big).unlink(missing_ok=True)
            say(f"bench: kept {work} (remove it when done)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(bench.rows, settings, bench.profile_lines))
    if args.json:
        rows = {k: dataclasses.asdict(v) for k, v in bench.rows.items()}
        settings_dict = dataclasses.asdict(settings)
        settings_dict["profile"] = str(settings.profile) if settings.profile else None
        args.json.write_text(json.dumps({"settings": settings_dict, "rows": rows}, indent=2))
    return 0 if all(not r.failure for r in bench.rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
