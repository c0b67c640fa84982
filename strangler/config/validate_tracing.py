"""``tracing: {otlp, sample, service_name}``: read and checked with file:line problems.

Tracing needs the optional OpenTelemetry packages (``pip install 'strangler[otel]'``);
a config that asks for it where they are missing is a problem here, so ``strangler
check`` says so before ``serve`` would fail.

>>> traces_endpoint("http://collector:4318"), traces_endpoint("https://otel/v1/traces")
('http://collector:4318/v1/traces', 'https://otel/v1/traces')
"""

from __future__ import annotations

import importlib.util
from typing import Final

from strangler.config import units
from strangler.config.model import TracingSettings
from strangler.config.source import Node
from strangler.config.values import check_url
from strangler.config.walker import Walker

__all__ = ["OTEL_MODULES", "TRACING_KEYS", "missing_otel", "read_tracing", "traces_endpoint"]

TRACING_KEYS: Final = ("otlp", "sample", "service_name")
OTEL_MODULES: Final = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
)
_TRACES_PATH: Final = "/v1/traces"


def traces_endpoint(url: str) -> str:
    """The OTLP/HTTP traces URL for ``url``: a base URL gets ``/v1/traces`` (as
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` does), a URL already ending with it is kept."""
    return url if url.endswith(_TRACES_PATH) else url + _TRACES_PATH


def missing_otel() -> str | None:
    """The first OpenTelemetry module tracing needs that cannot be imported, or None.
    Looked up, not imported: checking a config stays fast."""
    for name in OTEL_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a parent package missing or blocked
            return name
    return None


def read_tracing(w: Walker, node: Node) -> TracingSettings | None:
    f = w.fields(node, TRACING_KEYS, subject="tracing", where="in tracing", required=("otlp",))
    if f is None:
        return None
    ok = True
    endpoint = None
    if "otlp" in f:
        text = w.string(f["otlp"], "tracing.otlp", hint="the collector, like http://collector:4318")
        url = None if text is None else w.checked(f["otlp"], "tracing.otlp", check_url, text)
        endpoint = None if url is None else traces_endpoint(url)
    sample = 1.0
    if "sample" in f:
        ratio = w.unit(f["sample"], "tracing.sample", units.config_percent)
        ok = ok and ratio is not None
        sample = sample if ratio is None else ratio
    service = "strangler"
    if "service_name" in f:
        name = w.string(f["service_name"], "tracing.service_name")
        ok = ok and name is not None
        service = name or service
    missing = missing_otel()
    if missing is not None:
        w.report(
            node.at,
            f"tracing is configured but the OpenTelemetry packages are not installed "
            f"(no module {missing!r})",
            "pip install 'strangler[otel]', or remove tracing:",
        )
        ok = False
    if not ok or endpoint is None:
        return None
    return TracingSettings(endpoint=endpoint, sample=sample, service_name=service)
