"""The config model: frozen, slotted, keyword-only dataclasses. Data only, no behaviour.

Every node that comes from a file carries a ``Location`` so later checks (and
``strangler check``) can point at the line. Collections are tuples, frozensets and
read-only mappings, so a loaded ``Config`` can be shared by every request safely.
Durations are float seconds, sizes are int bytes (see ``units``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

EMPTY_MAP: Final[Mapping[str, str]] = MappingProxyType({})

LEGACY: Final = "legacy"
"""The name of the upstream that answers every request no route claims."""

UNROUTED: Final = "(unrouted)"
"""The route name used for traffic that matched no route (metrics, access log)."""


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


NOWHERE: Final = Location("<built-in>", 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Per-upstream timeouts in seconds; ``None`` means no limit."""

    connect: float | None = 5.0
    read: float | None = 60.0  # max silence while waiting for response bytes
    total: float | None = None  # whole exchange, headers to last body byte


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    name: str
    url: str  # scheme://host[:port][/base-path], no query
    timeouts: Timeouts = Timeouts()
    max_connections: int = 256  # keep-alive pool size per worker
    host_header: Literal["preserve", "upstream"] = "preserve"
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueMatch:
    """How a header, query parameter or cookie must look for a route to match.

    ``present=True, value=None``: the key must be there (any value).
    ``present=False``: the key must be absent.
    ``value="x"``: the key must be there with exactly that value.
    """

    present: bool = True
    value: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchSpec:
    """What a request must look like. Every given condition must hold (AND).

    ``path`` is exact, or a template with ``{name}``, ``{name:int}``, ``{name:uuid}``
    or a final ``{name:path}`` segment; ``path_prefix`` matches whole segments
    (``/api`` matches ``/api`` and ``/api/x`` but not ``/apix``). At most one of the
    two is set; neither means every path. ``methods`` are upper-case; ``None`` means
    any. ``host`` is exact or ``*.example.com`` (without port), compared lower-case.
    """

    path: str | None = None
    path_prefix: str | None = None
    methods: frozenset[str] | None = None
    host: str | None = None
    headers: Mapping[str, ValueMatch] = field(default_factory=lambda: MappingProxyType({}))
    query: Mapping[str, ValueMatch] = field(default_factory=lambda: MappingProxyType({}))
    cookies: Mapping[str, ValueMatch] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    name: str
    owner: str
    match: MatchSpec
    to: str  # upstream name
    index: int  # declaration order across all files: first match wins
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_header_bytes: int = 8190  # one request line or one header field
    max_headers: int = 128
    max_body_bytes: int = 1 << 30  # request body; 0 = unlimited


@dataclass(frozen=True, slots=True, kw_only=True)
class Forwarded:
    """Which incoming X-Forwarded-*/Forwarded headers to believe.

    ``trusted``: client networks (CIDR) whose forwarded headers are kept and appended
    to; from anyone else they are dropped and replaced.
    """

    trusted: tuple[str, ...] = ()
    headers: bool = True  # add X-Forwarded-For/-Proto/-Host and Forwarded


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLog:
    format: Literal["json", "text", "off"] = "json"
    path: str | None = None  # None = standard output


@dataclass(frozen=True, slots=True, kw_only=True)
class Admin:
    listen: Listen = Listen(host="127.0.0.1", port=8081)
    token_env: str = "STRANGLER_ADMIN_TOKEN"
    token_file: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    listen: Listen = Listen(host="0.0.0.0", port=8080)
    admin: Admin = Admin()
    upstreams: Mapping[str, Upstream]
    routes: tuple[Route, ...] = ()
    limits: Limits = Limits()
    forwarded: Forwarded = Forwarded()
    access_log: AccessLog = AccessLog()
    drain_seconds: float = 30.0
    files: tuple[str, ...] = ()  # every file read, main first: what the reloader watches
    version: str = "builtin"  # short hash of the files' contents
