"""Every Prometheus metric of the proxy, on one private ``CollectorRegistry``.

Label children are bound once per route when a snapshot is compiled (``bind_route``)
so the request path only calls ``inc()``/``observe()`` on ready objects. Labels come
from bounded sets only: route names from the config, upstream names, target
(legacy/new), status class. Never a raw path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from strangler import __version__

_MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
_VERSION_PREFIX: Final = "config-version-"  # + worker pid: the version it serves


def enable_multiprocess(directory: Path) -> None:
    """Make every metric created from now on live in ``directory`` (shared mmap files),
    so ``/metrics`` on any worker reports the sum over all workers.

    Called in each worker right after fork, before its ``Metrics`` is built
    (prometheus-client decides the value class when a metric is created).
    """
    os.environ[_MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> Path | None:
    value = os.environ.get(_MULTIPROC_ENV)
    return Path(value) if value else None


def worker_exited(pid: int, directory: Path) -> None:
    """Drop a dead worker's live gauges and its config version (the supervisor calls
    this)."""
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    (directory / f"{_VERSION_PREFIX}{pid}").unlink(missing_ok=True)


def live_workers(directory: Path) -> dict[int, str]:
    """The live workers' pids, each with the config version it serves (what every
    worker published with ``set_config_version``; the supervisor removes a dead
    worker's entry)."""
    found: dict[int, str] = {}
    for f in directory.glob(f"{_VERSION_PREFIX}*"):
        pid = f.name.removeprefix(_VERSION_PREFIX)
        if not pid.isdigit():
            continue  # a temporary file being written
        try:
            found[int(pid)] = f.read_text(encoding="utf-8").strip()
        except OSError:  # removed between the listing and the read: that worker is gone
            continue
    return dict(sorted(found.items()))


class ConfigInfoCollector:
    """``strangler_config_info{version} 1``: the config version this process serves.

    With several workers, one series per *live* worker, ``{version, pid}``, read at
    scrape time from the files the workers publish in the multiprocess directory. A
    version replaced by a reload, or a worker that exited, leaves no series behind
    (a multiprocess gauge cannot drop a label set: it would keep every version ever
    loaded, and a drift alert over it would never clear).
    """

    def __init__(self) -> None:
        self.version = ""

    def collect(self) -> Iterator[Metric]:
        directory = multiprocess_dir()
        doc = (
            "The loaded config's version (a content hash); 1 for the current one. "
            "With several workers each live worker has its own series (pid label): "
            "drift shows."
        )
        if directory is None:
            family = GaugeMetricFamily("strangler_config_info", doc, labels=("version",))
            family.add_metric([self.version], 1.0)
        else:
            family = GaugeMetricFamily("strangler_config_info", doc, labels=("version", "pid"))
            for pid, version in live_workers(directory).items():
                family.add_metric([version, str(pid)], 1.0)
        yield family


STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")
ABORTED: Final = "aborted"  # the client went away, or the upstream failed mid-body
# Buckets in seconds, dense where a proxy's answers live (1 ms .. 10 s).
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class RouteMetrics:
    """Pre-labelled children for one (route, upstream) pair."""

    by_status: tuple[Counter, ...]  # index: status // 100 - 1, then aborted last
    duration: Histogram
    bytes_out: Counter

    def record(self, status: int, seconds: float, nbytes: int, aborted: bool) -> None:
        idx = 5 if aborted else min(max(status // 100, 1), 5) - 1
        self.by_status[idx].inc()
        self.duration.observe(seconds)
        if nbytes:
            self.bytes_out.inc(nbytes)


class Metrics:
    """The proxy's metrics. One per process; tests make a fresh one each."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "strangler_requests",
            "Requests answered, by route, upstream, target (legacy/new) and status class.",
            ("route", "upstream", "target", "status_class"),
            registry=r,
        )
        self.duration = Histogram(
            "strangler_request_duration_seconds",
            "Time from request head to the last byte of the response.",
            ("route", "target"),
            buckets=BUCKETS,
            registry=r,
        )
        self.response_bytes = Counter(
            "strangler_response_bytes",
            "Response body bytes sent to clients.",
            ("route", "target"),
            registry=r,
        )
        self.upstream_errors = Counter(
            "strangler_upstream_errors",
            "Failed upstream exchanges, by upstream, kind and stage.",
            ("upstream", "kind", "stage"),
            registry=r,
        )
        self.release_decisions = Counter(
            "strangler_release_decisions",
            "Release decisions by route and reason (primary, canary, override, killed, "
            "guard, fallback).",
            ("route", "reason"),
            registry=r,
        )
        self.fallbacks = Counter(
            "strangler_fallbacks",
            "Requests the new side failed that were answered by the primary instead.",
            ("route", "failure"),
            registry=r,
        )
        self.translate_errors = Counter(
            "strangler_translate_errors",
            "Requests or answers a route's translation could not handle (side: request or "
            "response); the client got a clear error instead.",
            ("route", "side"),
            registry=r,
        )
        self.migration_transitions = Counter(
            "strangler_migration_transitions",
            "Autopilot stage changes by route, from and to (shadow, canary N%, migrated, "
            "legacy, done) and reason (gates passed, breach, approved, skipped, aborted, "
            "retry, paused, resumed).",
            ("route", "from", "to", "reason"),
            registry=r,
        )
        self.config_reloads = Counter(
            "strangler_config_reloads",
            "Config reloads by result (applied, rejected, unchanged).",
            ("result",),
            registry=r,
        )
        self.config_info = ConfigInfoCollector()
        build = Gauge(
            "strangler_build_info",
            "strangler's version.",
            ("version",),
            registry=r,
            multiprocess_mode="livemax",
        )
        build.labels(__version__).set(1)
        self._collectors: list[Collector] = []
        self.add_collector(self.config_info)
        for result in ("applied", "rejected", "unchanged"):
            self.config_reloads.labels(result)

    def add_collector(self, collector: Collector) -> None:
        """Register a scrape-time collector (facts derived from config: the same in
        every worker, so never summed across workers)."""
        self.registry.register(collector)
        self._collectors.append(collector)

    def exposition(self) -> CollectorRegistry:
        """The registry ``/metrics`` serves: this process's own, or with several
        workers the sum over every worker's files plus the scrape-time collectors."""
        directory = multiprocess_dir()
        if directory is None:
            return self.registry
        merged = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(merged, path=str(directory))  # type: ignore[no-untyped-call]
        for c in self._collectors:
            merged.register(c)
        return merged

    def bind_route(self, route: str, upstream: str, target: str) -> RouteMetrics:
        by_status = tuple(
            self.requests.labels(route, upstream, target, sc) for sc in (*STATUS_CLASSES, ABORTED)
        )
        return RouteMetrics(
            by_status=by_status,
            duration=self.duration.labels(route, target),
            bytes_out=self.response_bytes.labels(route, target),
        )

    def set_config_version(self, version: str) -> None:
        """Export ``version`` as the served config (replacing the one before). With
        several workers, also publish it for the other workers' scrapes and
        ``/readyz``: one small file, written whole (rename), once per load."""
        self.config_info.version = version
        directory = multiprocess_dir()
        if directory is None:
            return
        pid = os.getpid()
        tmp = directory / f".{_VERSION_PREFIX}{pid}.tmp"
        tmp.write_text(version, encoding="utf-8")
        os.replace(tmp, directory / f"{_VERSION_PREFIX}{pid}")
